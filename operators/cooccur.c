/* cooccur.c: the co-occurrence operator and its retrieval (cooccur.h).
 *
 * One value layout serves its three stores: a list of (row, weight)
 * entries with a count and the event time the weights were decayed to.
 *   cooccur_users:    the user's last interactions, oldest first (weight:
 *                     the type's; t_ref: the last event's time);
 *   cooccur_items:    the item's neighbours and its decayed count;
 *   cooccur_trending: one value, the trending items and their counts.
 * Users are keyed by id alone, not by (partition, id) as the state keys
 * their vectors: a user's clicks all come from one partition, and readers
 * (the HTTP API) know the id only. Handing a partition's users to another
 * instance will have to select them by the partitioner's hash of the id.
 * The count-min sketch behind min.count is a blob (saved at checkpoint),
 * and expiry (ttl.ms) is measured against the trending list's time, so
 * everything is a function of event times and input order only: a replay
 * and a restarted run build the same lists bit for bit. */
#include "operators/cooccur.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "operators/common.h"
#include "operators/users.h"
#include "state/json.h"
#include "state/state.h"

struct cooc_entry {
    uint32_t row;
    float w;
    float err;  /* Space-Saving's over-estimate: the weight inherited on entry */
    float norm; /* neighbours: the neighbour's count^-popularity_exponent when
                 * the entry last changed, decayed with the list since: so
                 * retrieval needs no lookup per candidate */
};

struct cooc_list {
    double count;
    int64_t t_ref;
    float self_norm; /* items: count^(a - 1), a the popularity exponent, kept by
                      * the writer so that readers need not know a */
    uint32_t n, cap;
    struct cooc_entry *e;
};

/* The count-min sketch of clicks per item that gates pairing (min.count):
 * depth rows of width saturating 8-bit counters, conservative update. It
 * lives in memory and is saved, page by page, as blobs at each checkpoint
 * (only the pages changed since the last one), so a restart reads back
 * exactly what the last commit covered. */
#define SKETCH_PAGE 1024      /* counters per blob */
#define SKETCH_BLOB "cooccur.sketch."
#define SKETCH_MAX 255

struct cooc {
    struct cooc_params p;
    struct eddy_state *st;
    struct state_store *users, *items, *trending;
    struct state_store *item_rows; /* embeddings' items (operators/users.h) */
    uint8_t *sketch;          /* depth x width; NULL without a gate */
    uint8_t *page_dirty;      /* one byte per page */
    size_t n_pages;
};

/* ---- the lists' codec --------------------------------------------------- */

#define LIST_HEAD 24 /* count, t_ref, n, self_norm */

static void list_init(void *value, int dim)
{
    (void)dim;
    ((struct cooc_list *)value)->t_ref = INT64_MIN;
}

static size_t list_encoded_size(const void *value, int dim)
{
    (void)dim;
    return LIST_HEAD + ((const struct cooc_list *)value)->n * sizeof(struct cooc_entry);
}

static void list_encode(const void *value, int dim, char *out)
{
    (void)dim;
    const struct cooc_list *l = value;
    memcpy(out, &l->count, 8);
    memcpy(out + 8, &l->t_ref, 8);
    memcpy(out + 16, &l->n, 4);
    memcpy(out + 20, &l->self_norm, 4);
    if (l->n)
        memcpy(out + LIST_HEAD, l->e, l->n * sizeof *l->e);
}

static bool list_decode(const char *in, size_t len, int dim, void *value, char *why,
                        size_t whylen)
{
    (void)dim;
    struct cooc_list *l = value;
    uint32_t n = 0;
    if (len >= LIST_HEAD)
        memcpy(&n, in + 16, 4);
    if (len < LIST_HEAD || n > COOC_MAX_NEIGHBOURS ||
        len != LIST_HEAD + (size_t)n * sizeof *l->e) {
        snprintf(why, whylen, "a list of %zu bytes, not %d + %zu per entry (at most %d)", len,
                 LIST_HEAD, sizeof *l->e, COOC_MAX_NEIGHBOURS);
        return false;
    }
    memcpy(&l->count, in, 8);
    memcpy(&l->t_ref, in + 8, 8);
    memcpy(&l->self_norm, in + 20, 4);
    l->n = l->cap = n;
    l->e = n ? xrealloc(NULL, n * sizeof *l->e) : NULL;
    if (n)
        memcpy(l->e, in + LIST_HEAD, n * sizeof *l->e);
    return true;
}

static size_t list_heap_bytes(const void *value)
{
    return ((const struct cooc_list *)value)->cap * sizeof(struct cooc_entry);
}

static void list_free(void *value)
{
    free(((struct cooc_list *)value)->e);
}

static json_t *list_json(json_t *doc, const void *value, struct eddy_state *st)
{
    (void)st;
    const struct cooc_list *l = value;
    json_t *entries = json_array();
    for (uint32_t i = 0; entries && i < l->n; i++) {
        json_t *e = json_pack("{s:I, s:f, s:f}", "row", (json_int_t)l->e[i].row, "weight",
                              (double)l->e[i].w, "error", (double)l->e[i].err);
        if (!e || json_array_append_new(entries, e)) {
            json_decref(entries);
            entries = NULL;
        }
    }
    doc = sjson_with(doc, "count", sjson_real(l->count));
    doc = sjson_with(doc, "self_norm", sjson_real(l->self_norm));
    doc = sjson_with(doc, "time_ms", l->t_ref == INT64_MIN ? json_null() : json_integer(l->t_ref));
    return sjson_with(doc, "entries", entries);
}

#define LIST_CODEC(store, what)                                                            \
    {.name = store, .kind = what, .version = 1, .value_size = sizeof(struct cooc_list),  \
     .init = list_init, .encoded_size = list_encoded_size, .encode = list_encode,         \
     .decode = list_decode, .heap_bytes = list_heap_bytes, .free = list_free,             \
     .to_json = list_json}

static const struct state_codec cooc_users_codec = LIST_CODEC("cooccur_users", "history");
static const struct state_codec cooc_items_codec = LIST_CODEC("cooccur_items", "neighbours");
static const struct state_codec cooc_trending_codec = LIST_CODEC("cooccur_trending", "trending");

/* ---- keys --------------------------------------------------------------- */

#define TRENDING_KEY ((struct eddy_str){"all", 3})

struct row_key {
    char b[4];
};

/* Big-endian, so that `eddy state export` lists items in row order. */
static struct eddy_str row_key(uint32_t row, struct row_key *k)
{
    uint32_t be = __builtin_bswap32(row);
    memcpy(k->b, &be, 4);
    return (struct eddy_str){k->b, 4};
}

/* ---- list arithmetic ---------------------------------------------------- */

static double decay(int64_t dt_ms, int64_t half_life_ms)
{
    return half_life_ms > 0 && dt_ms > 0 ? exp2(-(double)dt_ms / (double)half_life_ms) : 1.0;
}

/* Brings the list's weights to event time t (never backwards) and returns
 * the factor for an increment made at t: below 1 for a late event. */
static double list_advance(struct cooc_list *l, int64_t t, const struct cooc_params *p)
{
    if (l->t_ref == INT64_MIN || t > l->t_ref) {
        if (l->t_ref != INT64_MIN && p->half_life_ms > 0 && l->n + l->count > 0) {
            double f = decay(t - l->t_ref, p->half_life_ms);
            float fn = (float)pow(f, -p->popularity_exponent);
            l->count *= f;
            l->self_norm *= (float)pow(f, p->popularity_exponent - 1);
            /* Within about 0.6 s at a 180-day half-life both factors round
             * to 1.0f, and the entries would not change by a bit. */
            for (uint32_t i = 0; ((float)f != 1.0f || fn != 1.0f) && i < l->n; i++) {
                l->e[i].w *= (float)f;
                l->e[i].err *= (float)f;
                l->e[i].norm *= fn;
            }
        }
        l->t_ref = t;
        return 1.0;
    }
    return decay(l->t_ref - t, p->half_life_ms);
}

/* Adds x to row's weight in a list of at most max entries, Space-Saving:
 * a row new to a full list replaces the weakest and starts from its
 * weight (ties: the earliest entry), which it records as its error.
 * Readers use weight - error, the part surely earned: the inherited part
 * grows with a list's turnover, and ranking by it (tried on MovieLens)
 * favoured whatever arrived last. */
static void list_add(struct cooc_list *l, uint32_t row, float x, float norm, uint32_t max)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->e[i].row == row) {
            l->e[i].w += x;
            l->e[i].norm = norm;
            return;
        }
    }
    if (l->n < max) {
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 4;
            if (l->cap > max)
                l->cap = max;
            l->e = xrealloc(l->e, l->cap * sizeof *l->e);
        }
        l->e[l->n++] = (struct cooc_entry){row, x, 0, norm};
    } else if (l->n) {
        /* Searched only now: most adds find their row, or room (one loop
         * doing both was 22% of a replay of `eddy gen`'s traffic). */
        uint32_t weakest = 0;
        float least = l->e[0].w;
        for (uint32_t i = 1; i < l->n; i++)
            if (l->e[i].w < least) /* strict: the earliest of equals */
                least = l->e[i].w, weakest = i;
        const float inherited = l->e[weakest].w;
        l->e[weakest] = (struct cooc_entry){row, inherited + x, inherited, norm};
    }
}

/* Appends to a user's history, dropping the oldest beyond max. */
static void history_push(struct cooc_list *h, uint32_t row, float w, uint32_t max)
{
    if (h->n == max) {
        memmove(h->e, h->e + 1, (max - 1) * sizeof *h->e);
        h->n--;
    } else if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 4;
        if (h->cap > max)
            h->cap = max;
        h->e = xrealloc(h->e, h->cap * sizeof *h->e);
    }
    h->e[h->n++] = (struct cooc_entry){row, w, 0, 0};
}

/* ---- the operator ------------------------------------------------------- */

/* ---- expiry (ttl.ms) ----------------------------------------------------
 *
 * A history or a neighbour list whose time (t_ref: the event time it was
 * last touched at) is before clock - ttl is expired, clock being the
 * latest event time the operator has applied (the trending list's t_ref,
 * in the state). Readers treat it as absent; the writer, touching it,
 * starts it anew as if it were absent; and a sweep every ttl/4 of event
 * time deletes the expired ones from the state. So whether a value was
 * swept yet changes nothing anyone sees, and everything stays a function
 * of the input: the same after a restart as without one. */

/* The time before which a value is expired at clock; INT64_MIN: none is. */
static int64_t expiry_cutoff(int64_t clock, int64_t ttl_ms)
{
    if (ttl_ms <= 0 || clock == INT64_MIN || clock < INT64_MIN + ttl_ms)
        return INT64_MIN;
    return clock - ttl_ms;
}

static bool expired(const struct cooc_list *l, int64_t cutoff)
{
    return l->t_ref < cutoff;
}

/* An expired value, started anew: what state_get() makes of a deleted one. */
static void list_reset(struct cooc_list *l)
{
    free(l->e);
    *l = (struct cooc_list){0};
    list_init(l, 0);
}

static struct cooc_list *live_get(struct state_store *s, struct eddy_str key, int64_t cutoff)
{
    struct cooc_list *l = state_get(s, key, true);
    if (expired(l, cutoff) && l->t_ref != INT64_MIN)
        list_reset(l);
    return l;
}

static struct cooc_list *item_list(struct cooc *c, uint32_t row, int64_t cutoff)
{
    struct row_key k;
    return live_get(c->items, row_key(row, &k), cutoff);
}

static bool expired_at(const void *value, void *cutoff)
{
    return expired(value, *(const int64_t *)cutoff);
}

/* Deletes every history and list expired when the clock crosses a sweep
 * point (operators/common.h). */
static void maybe_sweep(struct cooc *c, int64_t before, int64_t clock)
{
    int64_t cutoff;
    if (!ttl_sweep_due(before, clock, c->p.ttl_ms, &cutoff))
        return;
    state_sweep(c->users, expired_at, &cutoff);
    state_sweep(c->items, expired_at, &cutoff);
}

/* ---- the count-min sketch (min.count) ----------------------------------- */

/* Counts one click on the item; returns its estimated count so far. */
static int sketch_add(struct cooc *c, struct eddy_str id)
{
    const uint64_t h = XXH64(id.ptr, id.len, 0x5eed);
    const uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1;
    const size_t width = (size_t)c->p.sketch_width;
    size_t at[64];
    int est = SKETCH_MAX;
    for (int r = 0; r < c->p.sketch_depth; r++) {
        at[r] = (size_t)r * width + (h1 + (uint32_t)r * h2) % width;
        if (c->sketch[at[r]] < est)
            est = c->sketch[at[r]];
    }
    if (est == SKETCH_MAX)
        return est;
    est++;
    /* Conservative update: raise only the counters below the new estimate,
     * which keeps the over-estimate of rare items (the ones gated) small. */
    for (int r = 0; r < c->p.sketch_depth; r++)
        if (c->sketch[at[r]] < est) {
            c->sketch[at[r]] = (uint8_t)est;
            c->page_dirty[at[r] / SKETCH_PAGE] = 1;
        }
    return est;
}

static void sketch_blob_key(char *buf, size_t len, size_t page)
{
    snprintf(buf, len, SKETCH_BLOB "%zu", page);
}

static void cooc_checkpoint(void *self)
{
    struct cooc *c = self;
    char key[64];
    for (size_t i = 0; i < c->n_pages; i++)
        if (c->page_dirty[i]) {
            sketch_blob_key(key, sizeof key, i);
            state_blob_set(c->st, key, c->sketch + i * SKETCH_PAGE, SKETCH_PAGE);
            c->page_dirty[i] = 0;
        }
}

/* Reads back the pages the last commit covered; the others are zero. */
static int sketch_restore(struct cooc *c, char *err, size_t errlen)
{
    char key[64];
    for (size_t i = 0; i < c->n_pages; i++) {
        void *blob;
        size_t len;
        sketch_blob_key(key, sizeof key, i);
        int rc = state_blob_get(c->st, key, &blob, &len);
        if (rc < 0 || (rc == 0 && len != SKETCH_PAGE)) {
            if (rc == 0)
                free(blob);
            snprintf(err, errlen, "cooccur: cannot read the sketch's blob %s", key);
            return -1;
        }
        if (rc == 0) {
            memcpy(c->sketch + i * SKETCH_PAGE, blob, SKETCH_PAGE);
            free(blob);
        }
    }
    return 0;
}

/* Pairs item j with each item of the user's history, both ways. */
static void pair_with_history(struct cooc *c, const struct cooc_list *h, uint32_t j, float wj,
                              int64_t t, int64_t cutoff)
{
    const double a = c->p.popularity_exponent;
    const uint32_t max = (uint32_t)c->p.neighbours;
    struct cooc_list *lj = item_list(c, j, cutoff);
    const double fj = list_advance(lj, t, &c->p);
    lj->count += wj * fj;
    lj->self_norm = (float)pow(lj->count, a - 1);
    const float norm_j = (float)pow(lj->count, -a);
    for (uint32_t k = 0; k < h->n; k++) {
        uint32_t i = h->e[k].row;
        if (i == j)
            continue;
        struct cooc_list *li = item_list(c, i, cutoff);
        const double fi = list_advance(li, t, &c->p);
        const float x = h->e[k].w * wj;
        list_add(li, j, (float)(x * fi), norm_j, max);
        if (li->count > 0)
            list_add(lj, i, (float)(x * fj * c->p.reverse_weight), (float)pow(li->count, -a),
                     max);
        state_dirty(c->items, li);
    }
    state_dirty(c->items, lj);
}

static void cooc_process(void *self, const struct eddy_event *ev)
{
    struct cooc *c = self;
    if (ev->kind != EV_CLICK || (unsigned)ev->u.click.type >= CLICK_TYPE_COUNT)
        return;
    const struct click_event *e = &ev->u.click;
    const float w = c->p.weight[e->type];
    int32_t row = state_rows_find(c->item_rows, e->item_id);
    if (row < 0 || !(w > 0))
        return; /* embeddings gives every clicked item a row; a weight of 0 ignores the type */
    /* The trending list's time is the operator's clock: the latest event
     * time applied, which expiry is measured against. */
    struct cooc_list *tr = state_get(c->trending, TRENDING_KEY, true);
    const int64_t before = tr->t_ref;
    const double f = list_advance(tr, e->timestamp_ms, &c->p);
    state_dirty(c->trending, tr);
    maybe_sweep(c, before, tr->t_ref);
    /* An item below min.count is counted and nothing else: no list, no
     * pairs, no place in histories or trending. */
    if (c->sketch && sketch_add(c, e->item_id) < c->p.min_count)
        return;
    const int64_t cutoff = expiry_cutoff(tr->t_ref, c->p.ttl_ms);
    list_add(tr, (uint32_t)row, (float)(w * f), 0, (uint32_t)c->p.trending);
    struct cooc_list *h = live_get(c->users, e->user_id, cutoff);
    pair_with_history(c, h, (uint32_t)row, w, e->timestamp_ms, cutoff);
    history_push(h, (uint32_t)row, w, (uint32_t)c->p.history);
    if (e->timestamp_ms > h->t_ref)
        h->t_ref = e->timestamp_ms;
    state_dirty(c->users, h);
}

#define PARAMS_BLOB "cooccur.params"

/* What readers and a restarted writer need of the writer's parameters. A
 * state without it (written before the TTL and the sketch) had neither. */
struct cooc_written {
    int32_t sketch_width, sketch_depth; /* 0: no sketch was kept */
    int64_t ttl_ms;
};
_Static_assert(sizeof(struct cooc_written) == 16, "struct cooc_written has padding");

static struct cooc_written written_params(struct eddy_state *st)
{
    void *blob;
    size_t len;
    struct cooc_written w = {0, 0, 0};
    if (state_blob_get(st, PARAMS_BLOB, &blob, &len) == 0) {
        if (len == sizeof w)
            memcpy(&w, blob, len);
        free(blob);
    }
    return w;
}

static int64_t cooc_ttl(struct eddy_state *st)
{
    return written_params(st).ttl_ms;
}

static void cooc_flush(void *self, int64_t watermark_ms)
{
    (void)self, (void)watermark_ms; /* all its work is done per event */
}

static void cooc_destroy(void *self)
{
    struct cooc *c = self;
    if (c) {
        free(c->sketch);
        free(c->page_dirty);
        free(c);
    }
}

static void *cooc_create(const void *params, struct eddy_state *st,
                         const struct eddy_emit *emit, char *err, size_t errlen)
{
    (void)emit;
    const struct cooc_params *p = params;
    struct cooc *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "cooccur: out of memory");
        return NULL;
    }
    c->p = *p;
    c->st = st;
    c->users = state_store(st, &cooc_users_codec);
    c->items = state_store(st, &cooc_items_codec);
    c->trending = state_store(st, &cooc_trending_codec);
    c->item_rows = state_store(st, &items_store);
    if (!c->users || !c->items || !c->trending || !c->item_rows) {
        snprintf(err, errlen, "cooccur: the state was opened without its stores");
        free(c);
        return NULL;
    }
    const bool gate = p->min_count > 1;
    if (gate && (p->sketch_depth < 1 || p->sketch_depth > 64 || p->sketch_width < SKETCH_PAGE ||
                 p->sketch_width % SKETCH_PAGE)) {
        snprintf(err, errlen, "cooccur: sketch.depth must be 1 to 64 and sketch.width a "
                 "multiple of %d (got %d x %d)", SKETCH_PAGE, p->sketch_depth, p->sketch_width);
        free(c);
        return NULL;
    }
    /* The sketch's counters mean nothing at another size: refuse to read
     * them as if they did. */
    struct cooc_written old = written_params(st);
    if (gate && old.sketch_width &&
        (old.sketch_width != p->sketch_width || old.sketch_depth != p->sketch_depth)) {
        snprintf(err, errlen, "cooccur: the state's count-min sketch is %d x %d, not %d x %d "
                 "(sketch.width x sketch.depth); keep its size or start a new state",
                 old.sketch_width, old.sketch_depth, p->sketch_width, p->sketch_depth);
        free(c);
        return NULL;
    }
    if (gate) {
        size_t counters = (size_t)p->sketch_width * (size_t)p->sketch_depth;
        c->n_pages = counters / SKETCH_PAGE;
        c->sketch = calloc(counters, 1);
        c->page_dirty = calloc(c->n_pages, 1);
        if (!c->sketch || !c->page_dirty) {
            snprintf(err, errlen, "cooccur: out of memory for the sketch (%zu bytes)", counters);
            cooc_destroy(c);
            return NULL;
        }
        if (sketch_restore(c, err, errlen)) {
            cooc_destroy(c);
            return NULL;
        }
    }
    /* Readers expire with the writer's TTL. A sketch once kept keeps its
     * size recorded, gate on or off. */
    struct cooc_written w = {gate ? p->sketch_width : old.sketch_width,
                             gate ? p->sketch_depth : old.sketch_depth, p->ttl_ms};
    state_blob_set(st, PARAMS_BLOB, &w, sizeof w);
    return c;
}

/* ---- retrieval ---------------------------------------------------------- */

/* Candidates accumulate in an open-addressing table keyed by row. */
struct acc {
    uint32_t row;     /* UINT32_MAX: empty */
    float score, best, trend;
    int32_t because;
};

struct cooc_scratch {
    struct acc *t;
    uint32_t cap, n;       /* n: slots in use, listed in used[] (in order) */
    uint32_t *used;
    struct cooc_candidate *out;
    size_t out_cap;
    bool ttl_known;        /* ttl_ms read from the state yet */
    int64_t ttl_ms;        /* the writer's, read at the first retrieval: it
                            * records it when created, after any reader */
};

struct cooc_scratch *cooc_scratch_new(void)
{
    return calloc(1, sizeof(struct cooc_scratch));
}

void cooc_scratch_free(struct cooc_scratch *s)
{
    if (s) {
        free(s->t);
        free(s->used);
        free(s->out);
        free(s);
    }
}

/* Empties the table (only the slots the last user filled: a refresh costs
 * what it gathers, not the table's size) with room for want rows. */
static void acc_reset(struct cooc_scratch *s, uint32_t want)
{
    uint32_t cap = 64;
    while (cap < 2 * want)
        cap *= 2;
    if (cap > s->cap) {
        s->t = xrealloc(s->t, cap * sizeof *s->t);
        s->used = xrealloc(s->used, cap / 2 * sizeof *s->used);
        for (uint32_t i = 0; i < cap; i++)
            s->t[i].row = UINT32_MAX;
        s->cap = cap;
    } else {
        for (uint32_t i = 0; i < s->n; i++)
            s->t[s->used[i]].row = UINT32_MAX;
    }
    s->n = 0;
}

static void acc_add(struct cooc_scratch *s, uint32_t row, float x, int32_t because)
{
    uint32_t i = (row * 2654435761u) & (s->cap - 1);
    while (s->t[i].row != UINT32_MAX && s->t[i].row != row)
        i = (i + 1) & (s->cap - 1);
    struct acc *a = &s->t[i];
    if (a->row == UINT32_MAX) {
        *a = (struct acc){row, 0, 0, 0, -1};
        s->used[s->n++] = i;
    }
    a->score += x;
    if (x > a->best) {
        a->best = x;
        a->because = because;
    }
}

static struct acc *acc_find(struct cooc_scratch *s, uint32_t row)
{
    uint32_t i = (row * 2654435761u) & (s->cap - 1);
    while (s->t[i].row != UINT32_MAX && s->t[i].row != row)
        i = (i + 1) & (s->cap - 1);
    return s->t[i].row == row ? &s->t[i] : NULL;
}

/* Sums, for each neighbour j of the user's recent items i, the weight of
 * (i, j) over count_i^(1-a) count_j^a, times i's recency and type weight.
 * Weights and counts are read as of i's list's time: they decay by the
 * same factor, which cancels out of the ratio. */
static void gather_neighbours(struct state_store *items, const struct cooc_list *h,
                              const struct cooc_read_params *p, int64_t cutoff,
                              struct cooc_scratch *s)
{
    const uint32_t used = h && h->n < (uint32_t)p->history ? h->n
                          : h                                 ? (uint32_t)p->history
                                                              : 0;
    const struct cooc_list *list[COOC_MAX_HISTORY];
    uint32_t entries = 0;
    for (uint32_t k = 0; k < used; k++) {
        struct row_key key;
        list[k] = state_find(items, row_key(h->e[h->n - 1 - k].row, &key));
        if (list[k] && expired(list[k], cutoff))
            list[k] = NULL;
        entries += list[k] ? list[k]->n : 0;
        if (list[k]) /* its first entries' miss overlaps the next lookup */
            __builtin_prefetch(list[k]->e);
    }
    acc_reset(s, entries);
    for (uint32_t k = 0; k < used; k++) {
        const struct cooc_entry *hi = &h->e[h->n - 1 - k];
        const struct cooc_list *li = list[k];
        if (!li || !(li->count > 0))
            continue;
        const float base = (float)(exp2(-(double)k / p->recency) * hi->w) * li->self_norm;
        for (uint32_t q = 0; q < li->n; q++)
            if (li->e[q].w > li->e[q].err)
                acc_add(s, li->e[q].row, base * (li->e[q].w - li->e[q].err) * li->e[q].norm,
                        (int32_t)hi->row);
    }
}

static int by_trend(const void *a, const void *b)
{
    const struct cooc_candidate *x = a, *y = b;
    if (x->trend != y->trend)
        return x->trend > y->trend ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Higher co-occurrence first; ties: the lower row. A total order, so the
 * selection below is the same whatever order it is handed. */
static size_t cooc_before(const void *a, const void *b)
{
    const struct cooc_candidate *x = a, *y = b;
    return (size_t)((x->cooc > y->cooc) | ((x->cooc == y->cooc) & (x->row < y->row)));
}

/* Moves the best k of c[0..n) to its front, in no particular order. */
static void select_best(struct cooc_candidate *c, size_t n, size_t k)
{
    _Static_assert(sizeof *c == 16, "select16() moves candidates");
    select16(c, n, k, cooc_before);
}

static void out_reserve(struct cooc_scratch *s, size_t n)
{
    if (n == 0)
        n = 1; /* out is never NULL: an empty state (all gated) has no candidates */
    if (n > s->out_cap) {
        s->out_cap = n;
        s->out = xrealloc(s->out, n * sizeof *s->out);
    }
}

/* The trending list's entries, by their surely-earned count over the
 * largest: those among the neighbours get it as their trend feature, the
 * others go to out (at most max, best first). Returns how many went. */
static size_t add_trending(const struct cooc_list *tr, struct cooc_scratch *s, size_t max,
                           struct cooc_candidate *out)
{
    float top = 0;
    for (uint32_t i = 0; i < tr->n; i++)
        top = tr->e[i].w - tr->e[i].err > top ? tr->e[i].w - tr->e[i].err : top;
    size_t n = 0;
    for (uint32_t i = 0; top > 0 && i < tr->n; i++) {
        const float trend = (tr->e[i].w - tr->e[i].err) / top;
        struct acc *a = acc_find(s, tr->e[i].row);
        if (a)
            a->trend = trend;
        else if (trend > 0)
            out[n++] = (struct cooc_candidate){tr->e[i].row, 0, trend, -1};
    }
    if (n <= max)
        return n; /* the default: the whole list, in no particular order */
    qsort(out, n, sizeof *out, by_trend);
    return max;
}

size_t cooc_retrieve(struct eddy_state *st, const struct cooc_read_params *p,
                     struct eddy_str user_id, struct cooc_scratch *s,
                     const struct cooc_candidate **out)
{
    struct state_store *users = state_store(st, &cooc_users_codec);
    struct state_store *items = state_store(st, &cooc_items_codec);
    struct state_store *trending = state_store(st, &cooc_trending_codec);
    *out = NULL;
    if (!users || !items || !trending)
        return 0;
    const struct cooc_list *tr = state_find(trending, TRENDING_KEY);
    if (!s->ttl_known) {
        s->ttl_ms = cooc_ttl(st);
        s->ttl_known = true;
    }
    const int64_t cutoff = expiry_cutoff(tr ? tr->t_ref : INT64_MIN, s->ttl_ms);
    const struct cooc_list *h = state_find(users, user_id);
    gather_neighbours(items, h && !expired(h, cutoff) ? h : NULL, p, cutoff, s);
    out_reserve(s, 1 + s->n + 2 * (tr ? tr->n : 0));
    /* The trending-only ones wait at the far end of out. */
    struct cooc_candidate *tail = s->out + s->out_cap - (tr ? tr->n : 0);
    size_t n_trending = tr ? add_trending(tr, s, (size_t)p->trending, tail) : 0;
    size_t n = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct acc *a = &s->t[s->used[i]];
        if (a->score > 0)
            s->out[n++] = (struct cooc_candidate){a->row, a->score, a->trend, a->because};
    }
    if (n > (size_t)p->candidates) {
        select_best(s->out, n, (size_t)p->candidates);
        n = (size_t)p->candidates;
    }
    if (n_trending)
        memmove(s->out + n, tail, n_trending * sizeof *tail);
    *out = s->out;
    return n + n_trending;
}

/* The keys of [cooccur], which the pipeline reads into struct cooc_params.
 * The defaults were chosen on the first 20% of the MovieLens log only
 * (docs/recommender.md, "Tuning"). */
#define CO(field) offsetof(struct cooc_params, field)
static const struct eddy_param cooc_keys[] = {
    {.key = "history", .type = PARAM_INT, .def = "10", .off = CO(history), .min = 1,
     .max = COOC_MAX_HISTORY, .help = "Recent interactions kept per user and paired with "
     "each new one"},
    {.key = "neighbours", .type = PARAM_INT, .def = "100", .off = CO(neighbours), .min = 1,
     .max = COOC_MAX_NEIGHBOURS, .help = "Neighbours kept per item (the strongest, "
     "Space-Saving)"},
    {.key = "trending", .type = PARAM_INT, .def = "100", .off = CO(trending), .min = 1,
     .max = COOC_MAX_NEIGHBOURS, .help = "Items kept in the trending list"},
    {.key = "weight.view", .type = PARAM_FLOAT, .def = "0.4", .off = CO(weight[CLICK_VIEW]),
     .min = 0, .max = INFINITY, .help = "Weight of a VIEW event (0: ignored)"},
    {.key = "weight.click", .type = PARAM_FLOAT, .def = "1.0", .off = CO(weight[CLICK_CLICK]),
     .min = 0, .max = INFINITY, .help = "Weight of a CLICK event"},
    {.key = "weight.add_to_cart", .type = PARAM_FLOAT, .def = "1.0",
     .off = CO(weight[CLICK_ADD_TO_CART]), .min = 0, .max = INFINITY,
     .help = "Weight of an ADD_TO_CART event"},
    {.key = "weight.purchase", .type = PARAM_FLOAT, .def = "1.0",
     .off = CO(weight[CLICK_PURCHASE]), .min = 0, .max = INFINITY,
     .help = "Weight of a PURCHASE event"},
    {.key = "reverse.weight", .type = PARAM_FLOAT, .def = "0.5", .off = CO(reverse_weight),
     .min = 0, .max = INFINITY, .help = "Weight of a pair read backwards (j before i) "
     "against forwards"},
    {.key = "popularity.exponent", .type = PARAM_FLOAT, .def = "0.4",
     .off = CO(popularity_exponent), .min = 0, .max = 1,
     .help = "A pair's weight is divided by the neighbour's count to this power and by "
     "the item's to the rest"},
    {.key = "half_life.ms", .type = PARAM_INT64, .def = "15552000000", .off = CO(half_life_ms),
     .min = 0, .max = INFINITY, .help = "Half-life of co-occurrence weights and counts in "
     "event time, in ms (0: no decay; the default is 180 days)"},
    {.key = "min.count", .type = PARAM_INT, .def = "1", .off = CO(min_count), .min = 1,
     .max = SKETCH_MAX, .help = "Clicks (counted by a count-min sketch) before an item is "
     "paired and gets a neighbour list (1: every item at once)"},
    {.key = "sketch.width", .type = PARAM_INT, .def = "1048576", .off = CO(sketch_width),
     .min = SKETCH_PAGE, .max = 1e8, .help = "Counters per row of the count-min sketch, "
     "a multiple of 1024 (one byte each; keep it above 4x the distinct items)"},
    {.key = "sketch.depth", .type = PARAM_INT, .def = "4", .off = CO(sketch_depth), .min = 1,
     .max = 64, .help = "Rows of the count-min sketch"},
    {.key = "ttl.ms", .type = PARAM_INT64, .def = "0", .off = CO(ttl_ms), .min = 0,
     .max = INFINITY, .help = "User histories and item neighbour lists not touched for this "
     "long in event time expire, in ms (0: never)"},
};

static const struct state_codec *const cooc_stores[] = {&cooc_users_codec, &cooc_items_codec,
                                                        &cooc_trending_codec, NULL};

const struct eddy_operator eddy_op_cooccur = {
    .name = "cooccur",
    .section = "cooccur",
    .section_help = "Item-to-item co-occurrence: the recommender's candidates.",
    .params = cooc_keys,
    .n_params = sizeof cooc_keys / sizeof cooc_keys[0],
    .params_size = sizeof(struct cooc_params),
    .create = cooc_create,
    .process = cooc_process,
    .flush = cooc_flush,
    .checkpoint = cooc_checkpoint,
    .destroy = cooc_destroy,
    .clock = EV_CLICK,
    .inputs = EVENT_BIT(EV_CLICK),
    .outputs = OUTPUT_BIT(OUTPUT_STATE),
    .stores = cooc_stores,
};
