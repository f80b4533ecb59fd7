/* json.h: building JSON with jansson for the views of stored values
 * (state/inspect.c, and the stores' to_json renderers in their operators).
 *
 * Every function returns a new reference or NULL. with() and append()
 * take over value and free the container when it cannot be added, so calls
 * chain and the first failure carries through. Reals are written with 17
 * significant digits by inspect.c, so every float and double reads back bit
 * for bit; NaN and the infinities, which JSON lacks, become the strings
 * "NaN", "Infinity" and "-Infinity". */
#ifndef EDDY_STATE_JSON_H
#define EDDY_STATE_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "schemas/records.h"

/* Sets doc[key] = value and returns doc, or NULL (doc freed). */
json_t *sjson_with(json_t *doc, const char *key, json_t *value);
/* Appends value to arr and returns arr, or NULL (arr freed). */
json_t *sjson_append(json_t *arr, json_t *value);
json_t *sjson_real(double d);
json_t *sjson_floats(const float *v, size_t n);
json_t *sjson_doubles(const double *v, size_t n);
/* Bytes as lowercase hex digits. */
json_t *sjson_hex(struct eddy_str bytes);
/* An id: a string, or {"hex": "..."} when its bytes are not UTF-8 (JSON
 * strings must be). */
json_t *sjson_id(struct eddy_str id);

#endif
