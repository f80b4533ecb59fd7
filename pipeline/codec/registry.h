/* registry.h: a minimal Confluent Schema Registry client (libcurl, blocking).
 *
 * Speaks exactly two calls:
 *   GET  {url}/schemas/ids/{id}              -> {"schema": "..."}
 *   POST {url}/subjects/{subject}/versions   <- {"schema": "..."} -> {"id": N}
 * Every request has a 5 s connect and a 5 s total timeout. The client does no
 * caching: ids never change, so callers (codec.c) cache what they fetch.
 * Error messages never contain the URL's user:password part.
 *
 * One client per thread; not thread-safe. */
#ifndef EDDY_REGISTRY_H
#define EDDY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct registry;

/* url is the registry's base URL (e.g. "http://user:pw@host:8081"); copied. */
int registry_new(const char *url, struct registry **out, char *err, size_t errlen);
void registry_free(struct registry *r);

/* Fetches the Avro schema text registered under id. On success *schema_json
 * is a NUL-terminated string that the caller frees. */
int registry_get_schema(struct registry *r, int32_t id, char **schema_json, char *err,
                        size_t errlen);

/* Registers schema_json under subject (idempotent on the registry's side) and
 * returns its id in *id. */
int registry_register(struct registry *r, const char *subject, const char *schema_json, int32_t *id,
                      char *err, size_t errlen);

#endif
