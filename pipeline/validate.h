/* validate.h: the rules a decoded input record must meet before operators
 * see it, shared by every source (Kafka through the codec, event-log files). */
#ifndef EDDY_VALIDATE_H
#define EDDY_VALIDATE_H

#include "operators/records.h"

/* NULL when ev is valid, else a short reason ("empty user_id", ...). */
const char *event_invalid(const struct eddy_event *ev);

#endif
