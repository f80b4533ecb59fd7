/* users.c: the user value's layout and encoding, and the item store's
 * declaration (see users.h).
 *
 * Encoding (version 1, the bytes users had when they were the state's own
 * kind, so existing states read as before), little-endian: i64
 * last_refresh_ms, i64 last_event_ms, u64 n_events, dim f32 vector, u32
 * n_seen, n_seen u32 rows, ascending. */
#include "operators/users.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/common.h"
#include "state/json.h"

#define SEEN_INITIAL 8

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the encoding is little-endian memcpy; add byte swaps for this host");

static char *put(char *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static const char *get(const char *p, void *dst, size_t n)
{
    if (n)
        memcpy(dst, p, n);
    return p + n;
}

/* Without the version byte. */
static size_t user_size(int dim, uint32_t n_seen)
{
    return 3 * 8 + (size_t)dim * 4 + 4 + (size_t)n_seen * 4;
}

static void user_init(void *value, int dim)
{
    (void)dim; /* the vector is zeroed: embeddings draws it, seeing is_new */
    struct user_state *u = value;
    u->last_refresh_ms = INT64_MIN;
    u->last_event_ms = INT64_MIN;
    u->is_new = true;
}

static size_t user_encoded_size(const void *value, int dim)
{
    return user_size(dim, ((const struct user_state *)value)->n_seen);
}

static void user_encode(const void *value, int dim, char *p)
{
    const struct user_state *u = value;
    p = put(p, &u->last_refresh_ms, 8);
    p = put(p, &u->last_event_ms, 8);
    p = put(p, &u->n_events, 8);
    p = put(p, u->vec, (size_t)dim * 4);
    p = put(p, &u->n_seen, 4);
    put(p, u->seen, (size_t)u->n_seen * 4);
}

/* Sizes in messages count the version byte, as the stored value does. */
static bool user_decode(const char *v, size_t len, int dim, void *value, char *why,
                        size_t whylen)
{
    struct user_state *u = value;
    size_t fixed = user_size(dim, 0);
    uint32_t n_seen = 0;
    if (len >= fixed)
        memcpy(&n_seen, v + fixed - 4, 4);
    if (len != user_size(dim, n_seen)) {
        snprintf(why, whylen, "value is %zu bytes, expected %zu", len + 1,
                 user_size(dim, n_seen) + 1);
        return false;
    }
    const char *p = v;
    p = get(p, &u->last_refresh_ms, 8);
    p = get(p, &u->last_event_ms, 8);
    p = get(p, &u->n_events, 8);
    p = get(p, u->vec, (size_t)dim * 4);
    p += 4;
    u->seen = n_seen ? xrealloc(NULL, (size_t)n_seen * 4) : NULL;
    u->n_seen = u->seen_cap = n_seen;
    get(p, u->seen, (size_t)n_seen * 4);
    /* user_has_seen() binary-searches, so order is an invariant. */
    for (uint32_t i = 1; i < n_seen; i++) {
        if (u->seen[i] <= u->seen[i - 1]) {
            snprintf(why, whylen, "seen set not sorted at row %u", u->seen[i]);
            return false;
        }
    }
    return true;
}

static size_t user_heap_bytes(const void *value)
{
    const struct user_state *u = value;
    return u->seen ? (size_t)u->seen_cap * sizeof *u->seen : 0;
}

static void user_free(void *value)
{
    free(((struct user_state *)value)->seen);
}

/* The seen rows as the items' ids. */
static json_t *seen_json(struct eddy_state *st, const struct user_state *u)
{
    const struct state_store *items = state_store(st, &items_store);
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < u->n_seen; i++)
        arr = sjson_append(arr, sjson_id(items ? state_rows_id(items, u->seen[i])
                                                : (struct eddy_str){NULL, 0}));
    return arr;
}

static json_t *user_json(json_t *doc, const void *value, struct eddy_state *st)
{
    const struct user_state *u = value;
    doc = sjson_with(doc, "last_refresh_ms", json_integer(u->last_refresh_ms));
    doc = sjson_with(doc, "last_event_ms", json_integer(u->last_event_ms));
    doc = sjson_with(doc, "n_events", json_integer((json_int_t)u->n_events));
    doc = sjson_with(doc, "vector", sjson_floats(u->vec, (size_t)state_dim(st)));
    return sjson_with(doc, "seen", seen_json(st, u));
}

const struct state_codec users_store = {
    .name = "users",
    .kind = "user",
    .layout = STATE_PARTITIONED,
    .version = 1,
    .value_size = sizeof(struct user_state),
    .vector = true,
    .init = user_init,
    .encoded_size = user_encoded_size,
    .encode = user_encode,
    .decode = user_decode,
    .heap_bytes = user_heap_bytes,
    .free = user_free,
    .to_json = user_json,
};

/* Rows of dim floats, encoded by the state. */
const struct state_codec items_store = {
    .name = "items",
    .kind = "item",
    .layout = STATE_DENSE,
    .version = 1,
};

/* First index whose row is >= row. Branch-free: a refresh asks about a
 * few hundred candidates, and a mispredicted branch per halving cost more
 * than the halving. */
static inline uint32_t seen_lower_bound(const struct user_state *u, uint32_t row)
{
    const uint32_t *base = u->seen;
    uint32_t n = u->n_seen;
    if (n == 0)
        return 0;
    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half - 1] < row ? base + half : base;
        n -= half;
    }
    return (uint32_t)(base - u->seen) + (*base < row);
}

bool user_seen_add(struct user_state *u, uint32_t row)
{
    uint32_t pos = seen_lower_bound(u, row);
    if (pos < u->n_seen && u->seen[pos] == row)
        return false;
    if (u->n_seen == u->seen_cap) {
        u->seen_cap = u->seen_cap ? 2 * u->seen_cap : SEEN_INITIAL;
        u->seen = xrealloc(u->seen, (size_t)u->seen_cap * sizeof *u->seen);
    }
    memmove(u->seen + pos + 1, u->seen + pos, (size_t)(u->n_seen - pos) * sizeof *u->seen);
    u->seen[pos] = row;
    u->n_seen++;
    return true;
}

bool user_has_seen(const struct user_state *u, uint32_t row)
{
    uint32_t pos = seen_lower_bound(u, row);
    return pos < u->n_seen && u->seen[pos] == row;
}
