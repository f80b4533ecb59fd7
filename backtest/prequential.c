/* prequential.c: see prequential.h.
 *
 * Items and users are interned to dense indexes (uthash over their ids).
 * The popularity baseline keeps every item in one array sorted by count,
 * descending, in blocks of equal count; an increment swaps the item with
 * the first item of its block and moves the block boundary, so it costs
 * O(1) and the array stays sorted. The baseline's top-K for a user is the
 * first K items of that array the user has not interacted with. The
 * item-kNN baseline (backtest/knn.c) shares the dense indexes and the
 * "interacted" set, so its exclusions are exactly popularity's. */
#include "backtest/prequential.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "backtest/grow.h"
#include "backtest/knn.h"

struct name {
    char *id;
    uint32_t idx;
    UT_hash_handle hh;
};

struct item {
    uint64_t count;
    int64_t pos;                 /* in pop_order; -1 until first observed */
    bool in_eddy, in_pop, in_knn; /* appeared in a scored list */
};

struct block {
    uint64_t start, len;
};

/* (user, item) pairs seen: open addressing over 64-bit keys, 0 is empty
 * (keys are stored + 1). */
struct pair_set {
    uint64_t *slots;
    size_t cap, n;
};

struct preq {
    int k;
    uint64_t window_events;
    struct name *items_by_id, *users_by_id;
    struct item *items;
    size_t n_items, cap_items;
    uint32_t n_users;
    uint64_t catalog, observed, eddy_items, pop_items, knn_items;
    uint32_t *pop_order;         /* observed item indexes, count descending */
    size_t n_order, cap_order;
    struct block *blocks;        /* by count: where its items sit in pop_order */
    size_t cap_blocks;
    struct pair_set seen;
    struct preq_metrics eddy, pop, knn;
    struct preq_bucket buckets[PREQ_BUCKETS];
    struct preq_window *windows; /* closed ones, then the open one */
    size_t n_closed, cap_windows;
    uint32_t *pop_top;           /* scratch: the baseline's list */
    struct knn *model;           /* item-kNN */
    uint32_t *knn_top;           /* scratch: item-kNN's list */
};

enum model { M_EDDY, M_POP, M_KNN };

/* The bucket bounds, inclusive. */
static const uint64_t BUCKET_MAX[PREQ_BUCKETS] = {0, 5, 20, UINT64_MAX};
static const char *const BUCKET_LABEL[PREQ_BUCKETS] = {"0", "1-5", "6-20", ">20"};

const char *preq_bucket_label(size_t b)
{
    return b < PREQ_BUCKETS ? BUCKET_LABEL[b] : NULL;
}

static size_t bucket_of(uint64_t positives)
{
    size_t b = 0;
    while (positives > BUCKET_MAX[b])
        b++;
    return b;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static bool pair_set_has(const struct pair_set *s, uint64_t key)
{
    if (!s->cap)
        return false;
    for (size_t i = mix64(key) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == 0)
            return false;
        if (s->slots[i] == key + 1)
            return true;
    }
}

static void pair_set_put_slot(struct pair_set *s, uint64_t key)
{
    size_t i = mix64(key) & (s->cap - 1);
    while (s->slots[i] && s->slots[i] != key + 1)
        i = (i + 1) & (s->cap - 1);
    s->n += s->slots[i] == 0;
    s->slots[i] = key + 1;
}

static bool pair_set_add(struct pair_set *s, uint64_t key)
{
    if ((s->n + 1) * 2 > s->cap) {   /* keep the load under 1/2 */
        struct pair_set bigger = {calloc(s->cap ? s->cap * 2 : 1024, sizeof(uint64_t)),
                                  s->cap ? s->cap * 2 : 1024, 0};
        if (!bigger.slots)
            return false;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                pair_set_put_slot(&bigger, s->slots[i] - 1);
        free(s->slots);
        *s = bigger;
    }
    pair_set_put_slot(s, key);
    return true;
}

/* The index of id, interned when create; UINT32_MAX when absent or out of
 * memory. */
static uint32_t intern(struct name **table, uint32_t next, struct eddy_str id, bool create)
{
    struct name *n;
    HASH_FIND(hh, *table, id.ptr, id.len, n);
    if (n || !create)
        return n ? n->idx : UINT32_MAX;
    n = malloc(sizeof *n);
    char *copy = malloc(id.len + 1);
    if (!n || !copy) {
        free(n);
        free(copy);
        return UINT32_MAX;
    }
    memcpy(copy, id.ptr, id.len);
    copy[id.len] = '\0';
    *n = (struct name){.id = copy, .idx = next};
    HASH_ADD_KEYPTR(hh, *table, n->id, id.len, n);
    return next;
}

static uint32_t item_index(struct preq *p, struct eddy_str id)
{
    uint32_t idx = intern(&p->items_by_id, (uint32_t)p->n_items, id, true);
    if (idx == UINT32_MAX || idx < p->n_items)
        return idx;
    if (!array_grow((void **)&p->items, &p->cap_items, p->n_items + 1, sizeof *p->items))
        return UINT32_MAX; /* interned but never used: harmless */
    p->items[idx] = (struct item){.pos = -1};
    p->n_items++;
    return idx;
}

static uint64_t pair_key(uint32_t user, uint32_t item)
{
    return (uint64_t)user << 32 | item;
}

struct preq *preq_new(int k, uint64_t window_events)
{
    if (k < 1 || window_events < 1)
        return NULL;
    struct preq *p = calloc(1, sizeof *p);
    if (!p || !(p->pop_top = calloc((size_t)k, sizeof *p->pop_top)) ||
        !(p->knn_top = calloc((size_t)k, sizeof *p->knn_top)) || !(p->model = knn_new()) ||
        !array_grow((void **)&p->windows, &p->cap_windows, 1, sizeof *p->windows)) {
        preq_free(p);
        return NULL;
    }
    p->k = k;
    p->window_events = window_events;
    for (size_t b = 0; b < PREQ_BUCKETS; b++) {
        p->buckets[b].min_positives = b ? BUCKET_MAX[b - 1] + 1 : 0;
        p->buckets[b].max_positives = BUCKET_MAX[b];
    }
    return p;
}

static void free_names(struct name **table)
{
    struct name *n, *tmp;
    HASH_ITER(hh, *table, n, tmp) {
        HASH_DEL(*table, n);
        free(n->id);
        free(n);
    }
}

void preq_free(struct preq *p)
{
    if (!p)
        return;
    free_names(&p->items_by_id);
    free_names(&p->users_by_id);
    free(p->items);
    free(p->pop_order);
    free(p->blocks);
    free(p->seen.slots);
    free(p->windows);
    free(p->pop_top);
    free(p->knn_top);
    knn_free(p->model);
    free(p);
}

bool preq_is_new(struct preq *p, struct eddy_str user, struct eddy_str item)
{
    uint32_t u = intern(&p->users_by_id, p->n_users, user, false);
    uint32_t i = intern(&p->items_by_id, (uint32_t)p->n_items, item, false);
    return u == UINT32_MAX || i == UINT32_MAX || !pair_set_has(&p->seen, pair_key(u, i));
}

/* 1-based rank of item in list, 0 if absent. */
static size_t rank_of(const uint32_t *list, size_t n, uint32_t item)
{
    for (size_t r = 0; r < n; r++)
        if (list[r] == item)
            return r + 1;
    return 0;
}

static void add_rank(struct preq_metrics *m, size_t r)
{
    m->events++;
    if (r) {
        m->hits += 1;
        m->ndcg += 1.0 / log2((double)r + 1);
        m->rr += 1.0 / (double)r;
    }
}

/* The baseline's list for user u: the most observed items u has not seen. */
static size_t pop_list(struct preq *p, uint32_t u)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_order && n < (size_t)p->k; i++) {
        uint32_t it = p->pop_order[i];
        if (u == UINT32_MAX || !pair_set_has(&p->seen, pair_key(u, it)))
            p->pop_top[n++] = it;
    }
    return n;
}

struct seen_ctx {
    const struct preq *p;
    uint32_t user;
};

static bool seen_by(void *ctx, uint32_t item)
{
    const struct seen_ctx *c = ctx;
    return pair_set_has(&c->p->seen, pair_key(c->user, item));
}

/* item-kNN's list for user u (UINT32_MAX: unknown, so no history and an
 * empty list), excluding what u has interacted with, like pop_list(). */
static size_t knn_list(struct preq *p, uint32_t u)
{
    if (u == UINT32_MAX)
        return 0;
    struct seen_ctx c = {p, u};
    return knn_top(p->model, u, (size_t)p->k, seen_by, &c, p->knn_top);
}

static void mark_recommended(struct preq *p, const uint32_t *list, size_t n, enum model m)
{
    for (size_t r = 0; r < n; r++) {
        struct item *it = &p->items[list[r]];
        bool *flag = m == M_EDDY ? &it->in_eddy : m == M_POP ? &it->in_pop : &it->in_knn;
        if (!*flag) {
            *flag = true;
            (*(m == M_EDDY ? &p->eddy_items : m == M_POP ? &p->pop_items : &p->knn_items))++;
        }
    }
}

/* The 1-based ranks of the target in eddy's, popularity's and item-kNN's
 * lists, 0 when absent. */
struct ranks {
    size_t eddy, pop, knn;
};

/* The three models' metrics of one tally (overall, a bucket, a window). */
static void add_ranks(struct preq_metrics *eddy, struct preq_metrics *pop,
                      struct preq_metrics *knn, struct ranks r)
{
    add_rank(eddy, r.eddy);
    add_rank(pop, r.pop);
    add_rank(knn, r.knn);
}

static void window_add(struct preq *p, int64_t t_ms, struct ranks r)
{
    struct preq_window *w = &p->windows[p->n_closed];
    if (w->eddy.events == 0)
        w->first_ms = t_ms;
    w->last_ms = t_ms;
    add_ranks(&w->eddy, &w->pop, &w->knn, r);
    if (w->eddy.events < p->window_events)
        return;
    /* Out of memory: the open window keeps growing instead of closing. */
    if (array_grow((void **)&p->windows, &p->cap_windows, p->n_closed + 2, sizeof *p->windows))
        p->n_closed++;
}

void preq_score(struct preq *p, int64_t t_ms, struct eddy_str user, struct eddy_str item,
                const struct eddy_str *eddy_top, size_t n)
{
    uint32_t target = item_index(p, item);
    if (n > (size_t)p->k)
        n = (size_t)p->k;
    uint32_t eddy_list[n ? n : 1];
    size_t n_eddy = 0;
    for (size_t r = 0; r < n; r++) {
        uint32_t idx = item_index(p, eddy_top[r]);
        if (idx != UINT32_MAX)
            eddy_list[n_eddy++] = idx;
    }
    uint32_t u = intern(&p->users_by_id, p->n_users, user, false);
    size_t n_pop = pop_list(p, u);
    size_t n_knn = knn_list(p, u);
    struct ranks r = {0, 0, 0};
    if (target != UINT32_MAX)
        r = (struct ranks){rank_of(eddy_list, n_eddy, target),
                           rank_of(p->pop_top, n_pop, target),
                           rank_of(p->knn_top, n_knn, target)};
    add_ranks(&p->eddy, &p->pop, &p->knn, r);
    /* The user's positives before this event: it is scored before learnt. */
    struct preq_bucket *b =
        &p->buckets[bucket_of(u == UINT32_MAX ? 0 : knn_positives(p->model, u))];
    add_ranks(&b->eddy, &b->pop, &b->knn, r);
    mark_recommended(p, eddy_list, n_eddy, M_EDDY);
    mark_recommended(p, p->pop_top, n_pop, M_POP);
    mark_recommended(p, p->knn_top, n_knn, M_KNN);
    window_add(p, t_ms, r);
}

/* Counts one more interaction with item idx, keeping pop_order sorted:
 * the item first joins the tail as a count-0 block of its own. */
static bool pop_increment(struct preq *p, uint32_t idx)
{
    struct item *it = &p->items[idx];
    if (!array_grow((void **)&p->blocks, &p->cap_blocks, it->count + 2, sizeof *p->blocks))
        return false;
    if (it->pos < 0) {
        if (!array_grow((void **)&p->pop_order, &p->cap_order, p->n_order + 1, sizeof *p->pop_order))
            return false;
        it->pos = (int64_t)p->n_order;
        p->pop_order[p->n_order++] = idx;
        p->blocks[0] = (struct block){.start = (uint64_t)it->pos, .len = 1};
        p->catalog++;
    }
    struct block *from = &p->blocks[it->count], *to = &p->blocks[it->count + 1];
    uint64_t first = from->start;
    uint32_t other = p->pop_order[first];
    p->pop_order[it->pos] = other;
    p->items[other].pos = it->pos;
    p->pop_order[first] = idx;
    it->pos = (int64_t)first;
    from->start++;
    from->len--;
    if (to->len++ == 0)
        to->start = first;
    it->count++;
    return true;
}

void preq_observe(struct preq *p, struct eddy_str user, struct eddy_str item, bool positive)
{
    p->observed++;
    uint32_t i = item_index(p, item);
    uint32_t u = intern(&p->users_by_id, p->n_users, user, true);
    if (u == p->n_users)
        p->n_users++;
    if (i == UINT32_MAX || u == UINT32_MAX)
        return;
    pop_increment(p, i);
    pair_set_add(&p->seen, pair_key(u, i));
    if (positive)
        knn_observe(p->model, u, i);
}

void preq_summary(const struct preq *p, struct preq_summary *out)
{
    const struct preq_window *open = &p->windows[p->n_closed];
    *out = (struct preq_summary){
        .k = p->k,
        .eddy = p->eddy,
        .pop = p->pop,
        .knn = p->knn,
        .eddy_items_recommended = p->eddy_items,
        .pop_items_recommended = p->pop_items,
        .knn_items_recommended = p->knn_items,
        .knn_history = KNN_HISTORY,
        .catalog_items = p->catalog,
        .users = p->n_users,
        .observed = p->observed,
        .windows = p->windows,
        .n_windows = p->n_closed + (open->eddy.events > 0),
    };
    memcpy(out->buckets, p->buckets, sizeof out->buckets);
}
