/* validate.h: the rules a decoded input record must meet before operators
 * see it, shared by every source (Kafka through the codec, event-log files). */
#ifndef EDDY_VALIDATE_H
#define EDDY_VALIDATE_H

#include <stddef.h>

#include "schemas/records.h"

/* NULL when ev is valid, else a short reason that names the field at fault
 * ("empty user_id", "item_id is not valid UTF-8", ...). Every string field
 * must be strict UTF-8 without NUL bytes (utf8_invalid()). */
const char *event_invalid(const struct eddy_event *ev);

/* NULL when s[0..len) is strict UTF-8 (RFC 3629) with no NUL byte, else
 * why not: "NUL byte", "invalid byte", "unexpected continuation byte",
 * "overlong encoding", "UTF-16 surrogate", "code point above U+10FFFF" or
 * "truncated sequence". Noncharacters such as U+FFFE are valid UTF-8 and
 * pass. NUL is refused because eddy hands ids on as C strings in places
 * (JSON, logs), where one would cut the id short. */
const char *utf8_invalid(const char *s, size_t len);

#endif
