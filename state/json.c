/* json.c: see json.h. */
#include "state/json.h"

#include <math.h>
#include <stdlib.h>

json_t *sjson_with(json_t *doc, const char *key, json_t *value)
{
    if (json_object_set_new(doc, key, value)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

json_t *sjson_append(json_t *arr, json_t *value)
{
    if (json_array_append_new(arr, value)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* JSON has no NaN or infinities; json_real() refuses them. */
json_t *sjson_real(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

json_t *sjson_floats(const float *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        arr = sjson_append(arr, sjson_real(v[i]));
    return arr;
}

json_t *sjson_doubles(const double *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        arr = sjson_append(arr, sjson_real(v[i]));
    return arr;
}

json_t *sjson_hex(struct eddy_str bytes)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * bytes.len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < bytes.len; i++) {
        s[2 * i] = digits[(unsigned char)bytes.ptr[i] >> 4];
        s[2 * i + 1] = digits[(unsigned char)bytes.ptr[i] & 15];
    }
    json_t *j = json_stringn(s, 2 * bytes.len);
    free(s);
    return j;
}

json_t *sjson_id(struct eddy_str id)
{
    json_t *s = json_stringn(id.ptr ? id.ptr : "", id.len);
    return s ? s : sjson_with(json_object(), "hex", sjson_hex(id));
}
