/* recommend.c: debounced top-K recommendations, scored in sgemm batches.
 *
 * Pending users sit in a hash (dedup by id) and in a min-heap ordered by the
 * event time from which they may be refreshed, then by arrival: flush() pops
 * only the due ones, so a large backlog of not-yet-due users costs nothing
 * per flush, and the output order is a function of the input alone.
 *
 * Selection uses the sgemm scores; the k winners are then rescored with a
 * fixed-order dot product. OpenBLAS's sgemm results differ in the last bits
 * with the batch size and CPU, so without the rescoring the published scores
 * (and recommend_user()'s) would depend on how users happened to be batched.
 *
 * Buffers (pending entries, heap, batch matrices) are reused; steady state
 * allocates only when the item matrix or the backlog outgrows them. */
#include "operators/recommend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <jansson.h>
#include <xxhash.h>

#define HASH_FUNCTION(keyptr, keylen, hashv) \
    ((hashv) = (unsigned)XXH3_64bits((keyptr), (keylen)))
#include <uthash.h>

#include "operators/blas.h"
#include "operators/common.h"
#include "operators/cooccur.h"
#include "operators/users.h"
#include "operators/vecmath.h"
#include "state/json.h"
#include "state/state.h"

#define REC_MAX_K 10000
#define BLOCK_BYTES (4u << 20)
#define CHUNK 64
#define LANES 16

struct pending {
    UT_hash_handle hh;
    struct pending *next_free;
    int64_t due;     /* event time of the refresh */
    int64_t next;    /* a later refresh owed by clicks seen meanwhile; INT64_MIN: none */
    size_t len, cap;
    char *id;        /* owned: the user's partition (4 bytes big-endian), then
                      * the user id, so that order and the blob cover both */
};

struct cand {
    float score;
    uint32_t row;
    int32_t because; /* two-stage: the history row behind it; -1: none */
    uint32_t unused; /* to 16 bytes, for swap16() */
};

/* A user's selection in progress: its heap of candidates and its place in
 * its (sorted) seen set, carried from one block of items to the next. */
struct selection {
    struct cand *h;
    size_t len;
    uint32_t next_seen;
};

/* A user's seen rows as bits by item row, set for one refresh and cleared
 * after it: the seen test of each candidate is then one load, where a
 * binary search of a seen set of hundreds was 12% of a replay of `eddy
 * gen`'s traffic. Setting and clearing cost the seen set's size. */
struct seen_bits {
    uint64_t *w;
    size_t n_words; /* all zero between refreshes */
};

/* Scratch for select_block(): chunk maxima of a block, and k floats. */
struct select_scratch {
    float *cmax;
    float *kth;
};

struct rec {
    struct rec_params p;
    struct eddy_state *st;
    struct eddy_emit emit;
    int dim;

    struct pending *set;        /* by partition + user id */
    char *key;                  /* scratch for pending keys */
    size_t key_cap;
    struct pending **heap;      /* min-heap by (due, id) */
    size_t n_heap, heap_cap;
    struct pending *free_list;

    struct pending **batch;     /* batch_users */
    struct user_state **batch_u;
    float *U;                   /* batch_users x dim */
    float *S;                   /* batch_users x block scores */
    uint32_t block;             /* items scored per sgemm */
    struct cand *tops;          /* batch_users x k */
    struct selection *sel;      /* batch_users */
    struct select_scratch scratch; /* block / CHUNK + 1 and k floats */
    struct rec_item *out;       /* k */
    struct cooc_scratch *retrieval; /* REC_TWO_STAGE */
    struct seen_bits seen;          /* REC_TWO_STAGE */
    struct state_store *users, *items; /* embeddings' (operators/users.h) */
};

/* ---- top-k selection ---------------------------------------------------- */

/* Higher score first; equal scores: lower row first (deterministic output).
 * 1 or 0, without a branch: select16()'s comparison too. */
static size_t cand_before(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return (size_t)((x->score > y->score) | ((x->score == y->score) & (x->row < y->row)));
}

static bool better(struct cand a, struct cand b)
{
    return cand_before(&a, &b);
}

/* The heap keeps the worst candidate at the root. */
static void cand_sift_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(h[w], h[l]))
            w = l;
        if (r < n && better(h[w], h[r]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void cand_sift_up(struct cand *h, size_t i)
{
    while (i > 0 && better(h[(i - 1) / 2], h[i])) {
        struct cand t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* Offers c to the heap h of len (at most k) candidates; the new length. */
static size_t offer(struct cand *h, size_t len, size_t k, struct cand c)
{
    if (len < k) {
        h[len] = c;
        cand_sift_up(h, len++);
    } else if (better(c, h[0])) {
        h[0] = c;
        cand_sift_down(h, k, 0);
    }
    return len;
}

/* Offers rows [lo, hi) to the heap h of len (at most k) candidates, one at
 * a time; sc0[0] is the score of row lo. */
static size_t offer_each(const float *sc0, uint32_t lo, uint32_t hi, struct cand *h,
                         size_t len, size_t k)
{
    for (uint32_t row = lo; row < hi; row++) {
        const float sc = sc0[row - lo];
        if (len == k && !(sc >= h[0].score))
            continue; /* the common case: worse than the worst kept, or NaN */
        if (sc != sc)
            continue; /* NaN: a seen item, or a diverged vector, must not rank */
        len = offer(h, len, k, (struct cand){.score = sc, .row = row, .because = -1});
    }
    return len;
}

/* cmax[c] = the largest score of chunk c of sc[0..n), NaN ignored
 * (-INFINITY if none). This is the one pass over every score: 16
 * independent lanes, which GCC vectorises; built for AVX2 and AVX-512 too,
 * picked at run time. */
#if !defined(__SANITIZE_THREAD__)
/* Not under ThreadSanitizer: the clones' resolver runs while the program is
 * relocated, before its runtime is up, and its instrumentation crashes. */
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void chunk_maxima(const float *sc, uint32_t n, float *cmax)
{
    uint32_t row = 0, c = 0;
    for (; row + CHUNK <= n; row += CHUNK, c++) {
        const float *x = sc + row; /* not sc[row + ...]: uint32_t sums may wrap,
                                    * which kept GCC from loading vectors */
        float lane[LANES];
        for (int l = 0; l < LANES; l++)
            lane[l] = -INFINITY;
        for (int j = 0; j < CHUNK; j += LANES)
            for (int l = 0; l < LANES; l++)
                lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
        float best = -INFINITY;
        for (int l = 0; l < LANES; l++)
            best = lane[l] > best ? lane[l] : best;
        cmax[c] = best;
    }
    if (row < n) {
        float best = -INFINITY;
        for (; row < n; row++)
            best = sc[row] > best ? sc[row] : best;
        cmax[c] = best;
    }
}

/* The k-th largest of x[0..n), or -INFINITY when n < k; heap: k floats. */
static float kth_largest(const float *x, uint32_t n, size_t k, float *heap)
{
    if (n < k)
        return -INFINITY;
    size_t len = 0; /* a min-heap of the k largest so far */
    for (uint32_t i = 0; i < n; i++) {
        if (len == k && !(x[i] > heap[0]))
            continue;
        size_t j;
        if (len < k) { /* sift up */
            for (j = len++; j > 0 && x[i] < heap[(j - 1) / 2]; j = (j - 1) / 2)
                heap[j] = heap[(j - 1) / 2];
        } else { /* replace the root, sift down */
            for (j = 0;;) {
                size_t c = 2 * j + 1;
                if (c + 1 < k && heap[c + 1] < heap[c])
                    c++;
                if (c >= k || !(heap[c] < x[i]))
                    break;
                heap[j] = heap[c];
                j = c;
            }
        }
        heap[j] = x[i];
    }
    return heap[0];
}

/* Offers the rows [lo, hi) that the user has not seen; sc[0] is row lo's
 * score. The seen rows' scores are overwritten with NaN first, which never
 * ranks. Nearly every score loses, so most chunks of CHUNK rows are ruled
 * out by their maximum alone, against two bars:
 *  - the worst of the user's k kept so far (once there are k);
 *  - while there are fewer, the k-th largest chunk maximum of this block:
 *    k chunks each hold a row scoring at least that, so the final k-th best
 *    does too.
 * The second bar is what keeps the heap's fill-up cheap: scanning rows in
 * order, its worst rose slowly and with 5000 items most chunks still held a
 * winner (selection was 46% of eddy's CPU in the Kafka bench). Now about k
 * chunks of a block are looked at row by row. */
static void select_block(float *sc, uint32_t lo, uint32_t hi, const struct user_state *u,
                         struct selection *s, size_t k, const struct select_scratch *x)
{
    uint32_t n = hi - lo, chunks = (n + CHUNK - 1) / CHUNK, j = s->next_seen;
    for (; j < u->n_seen && u->seen[j] < hi; j++) /* j local: kept in a register */
        if (u->seen[j] >= lo)
            sc[u->seen[j] - lo] = NAN;
    s->next_seen = j;
    chunk_maxima(sc, n, x->cmax);
    /* Once the heap is full its worst is the k-th best of every earlier
     * block, which rarely loses to this block's bar: skip computing it. */
    const float floor = s->len < k ? kth_largest(x->cmax, chunks, k, x->kth) : -INFINITY;
    for (uint32_t c = 0; c < chunks; c++) {
        float bar = s->len == k && s->h[0].score > floor ? s->h[0].score : floor;
        if (x->cmax[c] >= bar) {
            uint32_t clo = lo + c * CHUNK, chi = hi - clo < CHUNK ? hi : clo + CHUNK;
            s->len = offer_each(sc + (clo - lo), clo, chi, s->h, s->len, k);
        }
    }
}

/* Writes the heap's candidates to out, best first. */
static void heap_to_items(struct eddy_state *st, struct cand *h, size_t len,
                          struct rec_item *out)
{
    const struct state_store *items = state_store(st, &items_store);
    for (size_t i = len / 2; i-- > 0;)
        cand_sift_down(h, len, i);
    for (size_t i = len; i-- > 0;) { /* heap sort: worst to the back */
        struct cand worst = h[0];
        h[0] = h[i];
        cand_sift_down(h, i, 0);
        out[i] = (struct rec_item){.item_id = state_rows_id(items, worst.row), .score = worst.score};
        if (worst.because >= 0)
            out[i].because = state_rows_id(items, (uint32_t)worst.because);
    }
}

/* Rescores the winners exactly and writes them to out, best first. */
static void finish_top(struct eddy_state *st, const float *uvec, struct cand *h, size_t len,
                       struct rec_item *out)
{
    int dim = state_dim(st);
    struct state_store *items = state_store(st, &items_store);
    for (size_t i = 0; i < len; i++)
        h[i].score = dot_fixed(uvec, state_rows_vec(items, h[i].row), dim);
    heap_to_items(st, h, len, out);
}

/* ---- the learnt blend --------------------------------------------------- */

/* With learn.rate > 0 the blend's weights are learnt from the stream and
 * kept in the state (one value), so that a restart and the query rank with
 * what was learnt; starting from [recommend] blend.*. */
struct rec_model {
    struct rec_blend w;
    uint64_t steps;  /* pairwise steps taken; 0: w not set yet */
};

static size_t model_encoded_size(const void *value, int dim)
{
    (void)value, (void)dim;
    return sizeof(struct rec_model);
}

static void model_encode(const void *value, int dim, char *out)
{
    (void)dim;
    memcpy(out, value, sizeof(struct rec_model));
}

static bool model_decode(const char *in, size_t len, int dim, void *value, char *why,
                         size_t whylen)
{
    (void)dim;
    if (len != sizeof(struct rec_model)) {
        snprintf(why, whylen, "value is %zu bytes, expected %zu", len,
                 sizeof(struct rec_model));
        return false;
    }
    memcpy(value, in, len);
    return true;
}

static json_t *model_json(json_t *doc, const void *value, struct eddy_state *st)
{
    (void)st;
    const struct rec_model *m = value;
    doc = sjson_with(doc, "trending", sjson_real(m->w.trending));
    doc = sjson_with(doc, "mf", sjson_real(m->w.mf));
    return sjson_with(doc, "steps", json_integer((json_int_t)m->steps));
}

static void model_init(void *value, int dim)
{
    (void)value, (void)dim; /* zeroed: steps 0 */
}

static const struct state_codec rec_model_codec = {
    .name = "recommend_model",
    .kind = "blend",
    .version = 1,
    .value_size = sizeof(struct rec_model),
    .init = model_init,
    .encoded_size = model_encoded_size,
    .encode = model_encode,
    .decode = model_decode,
    .to_json = model_json,
};

#define MODEL_KEY ((struct eddy_str){"blend", 5})

/* The weights to rank with: the configured ones, or what was learnt. */
static struct rec_blend blend_of(struct eddy_state *st, const struct rec_params *p)
{
    if (!(p->learn_rate > 0))
        return p->blend;
    struct state_store *s = state_store(st, &rec_model_codec);
    const struct rec_model *m = s ? state_find(s, MODEL_KEY) : NULL;
    return m && m->steps ? m->w : p->blend;
}

/* ---- two-stage: retrieval (cooccur.h), then ranking --------------------- */

/* The ranking: a blend of the candidate's co-occurrence (as a share of the
 * best candidate's), its trending count (as a share of the top one's) and
 * its MF dot product with the user's vector. */
static float rank_score(const struct rec_blend *b, const struct cooc_candidate *c,
                        float best_cooc, float mf)
{
    return c->cooc / best_cooc + b->trending * c->trend + b->mf * mf;
}

/* Moves the best k of c[0..n) to its front, in no particular order
 * (quickselect: cheaper than a heap of k when most of c is kept). */
static void cand_select(struct cand *c, size_t n, size_t k)
{
    _Static_assert(sizeof *c == 16, "select16() moves candidates");
    select16(c, n, k, cand_before);
}

/* Sets (on) or clears the bits of u's seen rows. */
static void seen_bits_mark(struct seen_bits *b, const struct user_state *u, bool on)
{
    if (!u->n_seen)
        return;
    size_t need = u->seen[u->n_seen - 1] / 64 + 1; /* the set is sorted */
    if (need > b->n_words) {
        b->w = xrealloc(b->w, need * sizeof *b->w);
        memset(b->w + b->n_words, 0, (need - b->n_words) * sizeof *b->w);
        b->n_words = need;
    }
    for (uint32_t i = 0; i < u->n_seen; i++) {
        uint64_t *w = &b->w[u->seen[i] / 64], bit = (uint64_t)1 << (u->seen[i] % 64);
        *w = on ? *w | bit : *w & ~bit;
    }
}

static bool seen_bit(const struct seen_bits *b, uint32_t row)
{
    return row / 64 < b->n_words && (b->w[row / 64] >> (row % 64) & 1);
}

/* The user's top k (at most) into out, best first, items they have seen
 * left out. Candidates are first ranked without the MF term; only the best
 * p->rerank of them get it (a dot product is a cache miss into the item
 * matrix: most of a refresh's cost when every candidate had one). pool:
 * room for two_stage_pool(p). */
static size_t two_stage_top(struct eddy_state *st, const struct rec_params *p,
                            struct cooc_scratch *s, struct seen_bits *seen,
                            const struct user_state *u, struct eddy_str user_id, size_t k,
                            struct cand *pool, struct rec_item *out)
{
    const struct cooc_candidate *c;
    size_t n = cooc_retrieve(st, &p->read, user_id, s, &c), len = 0;
    float best = 0;
    for (size_t i = 0; i < n; i++)
        best = c[i].cooc > best ? c[i].cooc : best;
    if (!(best > 0))
        best = 1;
    const struct rec_blend b = blend_of(st, p);
    const bool mf = u && b.mf != 0;
    if (u)
        seen_bits_mark(seen, u, true);
    for (size_t i = 0; i < n; i++)
        if (!seen_bit(seen, c[i].row))
            pool[len++] = (struct cand){.score = rank_score(&b, &c[i], best, 0), .row = c[i].row,
                                        .because = c[i].because};
    if (u)
        seen_bits_mark(seen, u, false);
    if (mf) {
        const size_t first = (size_t)p->rerank > k ? (size_t)p->rerank : k;
        cand_select(pool, len, first);
        len = len < first ? len : first;
        const int dim = state_dim(st);
        struct state_store *items = state_store(st, &items_store);
        for (size_t i = 0; i < len; i++) /* the rows' misses overlap, not queue */
            for (int j = 0; j < dim; j += 16)
                __builtin_prefetch(state_rows_vec(items, pool[i].row) + j);
        for (size_t i = 0; i < len; i++)
            pool[i].score += b.mf * dot_fixed(u->vec, state_rows_vec(items, pool[i].row), dim);
    }
    cand_select(pool, len, k);
    len = len < k ? len : k;
    heap_to_items(st, pool, len, out);
    return len;
}

/* Candidates two_stage_top() may be handed: its pool's size. */
static size_t two_stage_pool(const struct rec_params *p)
{
    size_t n = (size_t)p->read.candidates + (size_t)p->read.trending;
    return n > (size_t)p->k ? n : (size_t)p->k;
}

/* ---- pending users ------------------------------------------------------ */

static bool due_before(const struct pending *a, const struct pending *b)
{
    if (a->due != b->due)
        return a->due < b->due;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->id, b->id, n);
    return c < 0 || (c == 0 && a->len < b->len);
}

static void heap_push(struct rec *r, struct pending *p)
{
    if (r->n_heap == r->heap_cap) {
        r->heap_cap = r->heap_cap ? 2 * r->heap_cap : 256;
        r->heap = xrealloc(r->heap, r->heap_cap * sizeof *r->heap);
    }
    size_t i = r->n_heap++;
    while (i > 0 && due_before(p, r->heap[(i - 1) / 2])) {
        r->heap[i] = r->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->heap[i] = p;
}

static struct pending *heap_pop(struct rec *r)
{
    struct pending *top = r->heap[0], *last = r->heap[--r->n_heap];
    size_t i = 0, n = r->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && due_before(r->heap[c + 1], r->heap[c]))
            c++;
        if (!due_before(r->heap[c], last))
            break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (n)
        r->heap[i] = last;
    return top;
}

/* A pending entry holding a copy of id, recycled when possible. */
static struct pending *pending_new(struct rec *r, struct eddy_str id)
{
    struct pending *p = r->free_list;
    if (p) {
        r->free_list = p->next_free;
    } else {
        p = xrealloc(NULL, sizeof *p);
        p->id = NULL;
        p->cap = 0;
    }
    if (id.len > p->cap) {
        p->cap = id.len;
        p->id = xrealloc(p->id, p->cap);
    }
    p->len = id.len;
    if (id.len)
        memcpy(p->id, id.ptr, id.len);
    return p;
}

static void pending_recycle(struct rec *r, struct pending *p)
{
    p->next_free = r->free_list;
    r->free_list = p;
}

/* Refreshes happen at the end of the interval of event time (on a fixed grid)
 * in which a click fell: at most one per interval, and the time depends only
 * on the click's timestamp, never on how input was batched. With interval 0,
 * at the click itself. Timestamps are >= 0 (the codec rejects others). */
static int64_t refresh_time(int64_t ts, int64_t interval)
{
    if (interval == 0)
        return ts;
    int64_t end = ts - ts % interval;
    return __builtin_add_overflow(end, interval, &end) ? INT64_MAX : end;
}

/* Queues a refresh of the user at event time `due`. A user already queued
 * for an earlier time owes one more refresh, at the latest `due` seen. */
static void mark_pending(struct rec *r, struct eddy_str id, int64_t due, int64_t next)
{
    struct pending *p;
    if (!id.ptr)
        id.ptr = ""; /* uthash memcmp()s the key */
    HASH_FIND(hh, r->set, id.ptr, id.len, p);
    if (p) {
        if (due > p->due && due > p->next)
            p->next = due;
        return;
    }
    p = pending_new(r, id);
    p->due = due;
    p->next = next;
    HASH_ADD_KEYPTR(hh, r->set, p->id, p->len, p);
    heap_push(r, p);
}

static struct eddy_str pending_key(struct rec *r, int32_t partition, struct eddy_str id)
{
    if (4 + id.len > r->key_cap) {
        r->key_cap = 2 * (4 + id.len);
        r->key = xrealloc(r->key, r->key_cap);
    }
    uint32_t be = __builtin_bswap32((uint32_t)partition);
    memcpy(r->key, &be, 4);
    if (id.len)
        memcpy(r->key + 4, id.ptr, id.len);
    return (struct eddy_str){r->key, 4 + id.len};
}

/* The user id part of a pending key, and its partition. */
static struct eddy_str pending_user(const struct pending *p, int32_t *partition)
{
    uint32_t be;
    memcpy(&be, p->id, 4);
    *partition = (int32_t)__builtin_bswap32(be);
    return (struct eddy_str){p->id + 4, p->len - 4};
}

/* A candidate's features: co-occurrence share, trending share, MF dot. */
static void features(const struct rec *r, const struct user_state *u,
                     const struct cooc_candidate *c, float best, uint32_t row, float f[3])
{
    f[0] = c ? c->cooc / best : 0;
    f[1] = c ? c->trend : 0;
    f[2] = dot_fixed(u->vec, state_rows_vec(r->items, row), r->dim);
}

/* One pairwise (BPR) step on the blend at a positive click on an item the
 * user had not seen: the clicked item against one candidate drawn by a hash
 * of the event, both scored from the state before the event (recommend
 * runs first in the chain), so the step learns what the ranking would have
 * needed. The co-occurrence weight stays 1: it sets the scale. */
static void learn_step(struct rec *r, const struct eddy_event *ev, const struct user_state *u)
{
    const struct click_event *e = &ev->u.click;
    int32_t pos = state_rows_find(r->items, e->item_id);
    if (!u || pos < 0 || user_has_seen(u, (uint32_t)pos))
        return;
    const struct cooc_candidate *c;
    size_t n = cooc_retrieve(r->st, &r->p.read, e->user_id, r->retrieval, &c);
    if (n < 2)
        return;
    float best = 0;
    const struct cooc_candidate *cp = NULL;
    for (size_t i = 0; i < n; i++) {
        best = c[i].cooc > best ? c[i].cooc : best;
        cp = c[i].row == (uint32_t)pos ? &c[i] : cp;
    }
    if (!cp)
        return; /* ranking only orders candidates: nothing to learn from a miss */
    best = best > 0 ? best : 1;
    /* The negative: the unseen candidate the current blend ranks first,
     * the one the positive had to beat for the top of the list. */
    const struct rec_blend b = blend_of(r->st, &r->p);
    float fp[3], fn[3] = {0}, f[3], top = -INFINITY;
    uint32_t top_row = UINT32_MAX;
    features(r, u, cp, best, (uint32_t)pos, fp);
    for (size_t i = 0; i < n; i++) {
        if (&c[i] == cp || user_has_seen(u, c[i].row))
            continue;
        features(r, u, &c[i], best, c[i].row, f);
        float score = f[0] + b.trending * f[1] + b.mf * f[2];
        if (score > top || (score == top && c[i].row < top_row)) { /* c's order is no rule */
            top = score;
            top_row = c[i].row;
            memcpy(fn, f, sizeof fn);
        }
    }
    if (top == -INFINITY)
        return;
    struct state_store *s = state_store(r->st, &rec_model_codec);
    struct rec_model *m = state_get(s, MODEL_KEY, true);
    if (!m->steps)
        m->w = r->p.blend;
    const float x[3] = {fp[0] - fn[0], fp[1] - fn[1], fp[2] - fn[2]};
    const float margin = x[0] + m->w.trending * x[1] + m->w.mf * x[2];
    const float g = r->p.learn_rate / (1.0f + expf(margin)); /* lr * sigmoid(-margin) */
    m->w.trending = fmaxf(0, m->w.trending + g * x[1]);
    m->w.mf = fmaxf(0, m->w.mf + g * x[2]);
    m->steps++;
    state_dirty(s, m);
}

static void rec_process(void *self, const struct eddy_event *ev)
{
    struct rec *r = self;
    if (ev->kind != EV_CLICK)
        return;
    if (r->p.retrieval == REC_TWO_STAGE && r->p.learn_rate > 0 &&
        ev->u.click.type != CLICK_VIEW)
        learn_step(r, ev, state_get_in(r->users, ev->partition, ev->u.click.user_id, false));
    struct eddy_str id = ev->u.click.user_id;
    int64_t due = refresh_time(ev->u.click.timestamp_ms, r->p.refresh_interval_ms);
    const struct user_state *u = state_get_in(r->users, ev->partition, id, false);
    if (u && u->last_refresh_ms >= due)
        return; /* a refresh at or after this click's slot was published */
    mark_pending(r, pending_key(r, ev->partition, id), due, INT64_MIN);
}

/* ---- scoring ------------------------------------------------------------ */

/* Emits r->out[0..len) as the user's recommendation and queues the
 * refresh they still owe, if any. */
static void publish(struct rec *r, struct pending *p, struct user_state *u, size_t len)
{
    int32_t partition;
    struct recommendation rec = {
        .user_id = pending_user(p, &partition),
        .items = r->out,
        .n_items = len,
        .event_time_ms = p->due,
        .model_version = (int64_t)state_model_version(r->st),
    };
    if (r->emit.recommendation)
        r->emit.recommendation(r->emit.ctx, &rec);
    u->last_refresh_ms = p->due;
    state_dirty(r->users, u);
    if (p->next > p->due) { /* clicks after this refresh's slot were seen */
        p->due = p->next;
        p->next = INT64_MIN;
        HASH_ADD_KEYPTR(hh, r->set, p->id, p->len, p);
        heap_push(r, p);
    } else {
        pending_recycle(r, p);
    }
}

/* Scores batch[0..b) against the item matrix one block of items at a time
 * (one sgemm each) and selects from each block while its scores are still
 * in cache, then publishes. A block is sized so that its scores for a full
 * batch stay within a few MB: scoring all items at once wrote and re-read
 * b x items floats from memory (51 MB for 128 users and 100k items). */
static void score_batch(struct rec *r, size_t b)
{
    uint32_t n;
    const float *M = state_rows_matrix(r->items, &n);
    size_t k = (size_t)r->p.k;
    for (size_t i = 0; i < b; i++) {
        memcpy(r->U + i * r->dim, r->batch_u[i]->vec, (size_t)r->dim * sizeof(float));
        r->sel[i] = (struct selection){r->tops + i * k, 0, 0};
    }
    blas_threads_for(2.0 * (double)b * n * r->dim);
    for (uint32_t lo = 0; lo < n; lo += r->block) {
        uint32_t m = n - lo < r->block ? n - lo : r->block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)m, r->dim, 1.0f,
                    r->U, r->dim, M + (size_t)lo * r->dim, r->dim, 0.0f, r->S, (int)m);
        for (size_t i = 0; i < b; i++)
            select_block(r->S + i * m, lo, lo + m, r->batch_u[i], &r->sel[i], k, &r->scratch);
    }
    for (size_t i = 0; i < b; i++) {
        finish_top(r->st, r->batch_u[i]->vec, r->sel[i].h, r->sel[i].len, r->out);
        publish(r, r->batch[i], r->batch_u[i], r->sel[i].len);
    }
}

static void refresh_two_stage(struct rec *r, size_t b)
{
    for (size_t i = 0; i < b; i++) {
        int32_t partition;
        struct eddy_str id = pending_user(r->batch[i], &partition);
        size_t len = two_stage_top(r->st, &r->p, r->retrieval, &r->seen, r->batch_u[i], id,
                                   (size_t)r->p.k, r->tops, r->out);
        publish(r, r->batch[i], r->batch_u[i], len);
    }
}

static void rec_flush(void *self, int64_t watermark_ms)
{
    struct rec *r = self;
    for (;;) {
        size_t b = 0;
        while (b < (size_t)r->p.batch_users && r->n_heap && r->heap[0]->due <= watermark_ms) {
            struct pending *p = heap_pop(r);
            HASH_DEL(r->set, p);
            int32_t partition;
            struct eddy_str id = pending_user(p, &partition);
            struct user_state *u = state_get_in(r->users, partition, id, false);
            if (!u) { /* no model for this user: nothing to recommend */
                pending_recycle(r, p);
                continue;
            }
            r->batch[b] = p;
            r->batch_u[b++] = u;
        }
        if (!b)
            return;
        if (r->p.retrieval == REC_TWO_STAGE) /* either may queue owed refreshes again: loop */
            refresh_two_stage(r, b);
        else
            score_batch(r, b);
    }
}

/* ---- persistence of the pending set ------------------------------------- */

#define PENDING_BLOB "recommend.pending"

/* Blob layout (host byte order, like the rest of the state), users in id
 * order so that equal pending sets give equal bytes: per user i64 due,
 * i64 next, u32 key length, key bytes (partition, then user id). */
static int by_id(const void *a, const void *b)
{
    const struct pending *x = *(struct pending *const *)a, *y = *(struct pending *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void rec_checkpoint(void *self)
{
    struct rec *r = self;
    size_t n = HASH_COUNT(r->set), len = 0, i = 0;
    struct pending **all = xrealloc(NULL, n * sizeof *all);
    for (struct pending *p = r->set; p; p = p->hh.next, i++) {
        all[i] = p;
        len += 20 + p->len;
    }
    qsort(all, n, sizeof *all, by_id);
    char *buf = xrealloc(NULL, len), *w = buf;
    for (i = 0; i < n; i++) {
        uint32_t idlen = (uint32_t)all[i]->len;
        memcpy(w, &all[i]->due, 8), w += 8;
        memcpy(w, &all[i]->next, 8), w += 8;
        memcpy(w, &idlen, 4), w += 4;
        memcpy(w, all[i]->id, idlen), w += idlen;
    }
    state_blob_set(r->st, PENDING_BLOB, buf, len);
    free(all);
    free(buf);
}

static int restore_pending(struct rec *r, char *err, size_t errlen)
{
    void *blob;
    size_t len;
    int rc = state_blob_get(r->st, PENDING_BLOB, &blob, &len);
    if (rc)
        return rc > 0 ? 0 : (snprintf(err, errlen, "recommend: cannot read pending users"), -1);
    const char *p = blob, *end = p + len;
    while (p < end) {
        int64_t due, next;
        uint32_t n;
        if (end - p < 20)
            goto corrupt;
        memcpy(&due, p, 8), memcpy(&next, p + 8, 8), memcpy(&n, p + 16, 4), p += 20;
        if ((size_t)(end - p) < n || n < 4)
            goto corrupt;
        mark_pending(r, (struct eddy_str){p, n}, due, next);
        p += n;
    }
    free(blob);
    return 0;
corrupt:
    free(blob);
    snprintf(err, errlen, "recommend: corrupt %s blob in the state", PENDING_BLOB);
    return -1;
}

/* ---- lifecycle ---------------------------------------------------------- */

#define PARAMS_BLOB "recommend.params"

/* The parameters the recommender runs with, as it recorded them in the
 * state; exact retrieval with defaults if it never ran on it. */
static struct rec_params stored_params(struct eddy_state *st)
{
    struct rec_params p = {.retrieval = REC_EXACT};
    void *blob;
    size_t len;
    if (state_blob_get(st, PARAMS_BLOB, &blob, &len) == 0) {
        if (len == sizeof p)
            memcpy(&p, blob, sizeof p);
        free(blob);
    }
    return p;
}

static void rec_destroy(void *self)
{
    struct rec *r = self;
    struct pending *p, *t;
    if (!r)
        return;
    HASH_ITER(hh, r->set, p, t) {
        HASH_DEL(r->set, p);
        pending_recycle(r, p);
    }
    for (p = r->free_list; p; p = t) {
        t = p->next_free;
        free(p->id);
        free(p);
    }
    free(r->heap);
    free(r->batch);
    free(r->batch_u);
    free(r->U);
    free(r->S);
    free(r->tops);
    free(r->sel);
    free(r->scratch.cmax);
    free(r->scratch.kth);
    free(r->out);
    free(r->key);
    cooc_scratch_free(r->retrieval);
    free(r->seen.w);
    free(r);
}

static void *rec_create(const void *params, struct eddy_state *st,
                        const struct eddy_emit *emit, char *err, size_t errlen)
{
    const struct rec_params *p = params;
    if (p->k < 1 || p->k > REC_MAX_K || p->batch_users < 1 || p->refresh_interval_ms < 0) {
        snprintf(err, errlen, "recommend: need 1 <= k <= %d (got %d), batch_users >= 1 "
                 "(got %d), refresh_interval_ms >= 0 (got %lld)", REC_MAX_K, p->k,
                 p->batch_users, (long long)p->refresh_interval_ms);
        return NULL;
    }
    if (p->retrieval == REC_TWO_STAGE &&
        (p->read.history < 1 || !(p->read.recency > 0) || p->read.candidates < 1 ||
         p->read.trending < 0)) {
        snprintf(err, errlen, "recommend: two-stage retrieval needs history >= 1, "
                 "recency > 0, candidates >= 1 and trending >= 0");
        return NULL;
    }
    if (!state_store(st, &users_store) || !state_store(st, &items_store)) {
        snprintf(err, errlen, "recommend: the state was opened without embeddings' stores");
        return NULL;
    }
    struct rec *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "recommend: out of memory");
        return NULL;
    }
    r->p = *p;
    r->users = state_store(st, &users_store);
    r->items = state_store(st, &items_store);
    /* Queries read the state alone: they find these parameters there. */
    state_blob_set(st, PARAMS_BLOB, &r->p, sizeof r->p);
    r->st = st;
    r->emit = *emit;
    r->dim = state_dim(st);
    size_t bu = (size_t)p->batch_users;
    r->batch = calloc(bu, sizeof *r->batch);
    r->batch_u = calloc(bu, sizeof *r->batch_u);
    r->U = calloc(bu * (size_t)r->dim, sizeof *r->U);
    /* A block's scores for a full batch: about 4 MB, to stay in cache. */
    r->block = (uint32_t)((BLOCK_BYTES / sizeof(float) / bu + 15) / 16 * 16);
    r->S = malloc(bu * r->block * sizeof *r->S);
    /* sized for a sgemm batch's heaps, and for two-stage's candidates */
    size_t pool = two_stage_pool(p);
    r->tops = calloc(bu * (size_t)p->k > pool ? bu * (size_t)p->k : pool, sizeof *r->tops);
    r->sel = calloc(bu, sizeof *r->sel);
    r->scratch.cmax = malloc((r->block / CHUNK + 1) * sizeof *r->scratch.cmax);
    r->scratch.kth = malloc((size_t)p->k * sizeof *r->scratch.kth);
    r->out = calloc((size_t)p->k, sizeof *r->out);
    r->retrieval = cooc_scratch_new();
    if (!r->retrieval || !r->batch || !r->batch_u || !r->U || !r->S || !r->tops || !r->sel ||
        !r->scratch.cmax || !r->scratch.kth || !r->out) {
        snprintf(err, errlen, "recommend: out of memory for %d users x dim %d",
                 p->batch_users, r->dim);
        rec_destroy(r);
        return NULL;
    }
    if (restore_pending(r, err, errlen)) {
        rec_destroy(r);
        return NULL;
    }
    return r;
}

/* ---- one user, on demand ------------------------------------------------ */

static int two_stage_user(struct eddy_state *st, const struct rec_params *rp,
                          const struct user_state *u, struct eddy_str user_id, int k,
                          struct rec_item *out)
{
    struct cooc_scratch *s = cooc_scratch_new();
    struct seen_bits seen = {NULL, 0};
    size_t pool = two_stage_pool(rp);
    struct cand *h = malloc((pool > (size_t)k ? pool : (size_t)k) * sizeof *h);
    int n = -1;
    if (s && h)
        n = k > 0 ? (int)two_stage_top(st, rp, s, &seen, u, user_id, (size_t)k, h,
                                       out) : 0;
    cooc_scratch_free(s);
    free(seen.w);
    free(h);
    return n;
}

/* Top-k for one user: up to k items into out (best first; item ids borrow
 * from the state); how many, or -1 if the user is unknown. */
static int recommend_user(struct eddy_state *st, struct eddy_str user_id, int k,
                          struct rec_item *out)
{
    struct state_store *users = state_store(st, &users_store);
    struct state_store *items = state_store(st, &items_store);
    const struct user_state *u = users && items ? state_find_any(users, user_id) : NULL;
    if (!u)
        return -1;
    const struct rec_params p = stored_params(st);
    if (p.retrieval == REC_TWO_STAGE)
        return two_stage_user(st, &p, u, user_id, k, out);
    uint32_t n;
    const float *M = state_rows_matrix(items, &n);
    if (k <= 0 || n == 0)
        return 0;
    size_t kk = (uint32_t)k < n ? (size_t)k : n;
    int dim = state_dim(st);
    float *scores = malloc((size_t)n * sizeof *scores);
    struct cand *h = malloc(kk * sizeof *h);
    struct select_scratch x = {malloc((n / CHUNK + 1) * sizeof(float)), malloc(kk * sizeof(float))};
    bool ok = scores && h && x.cmax && x.kth;
    size_t len = 0;
    if (ok) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, dim, 1.0f, M, dim, u->vec, 1, 0.0f,
                    scores, 1);
        struct selection sel = {h, 0, 0};
        select_block(scores, 0, n, u, &sel, kk, &x);
        len = sel.len;
        finish_top(st, u->vec, h, len, out);
    }
    free(scores);
    free(h);
    free(x.cmax);
    free(x.kth);
    return ok ? (int)len : -1;
}

static bool rec_query(struct eddy_state *st, struct eddy_query *q)
{
    struct user_recs_query *r = &q->u.recs;
    r->n = recommend_user(st, r->user_id, r->k, r->items);
    return r->n >= 0;
}

/* The keys of [recommend], which the pipeline reads into struct rec_params. */
#define REC(field) offsetof(struct rec_params, field)
static const struct eddy_param rec_keys[] = {
    {.key = "k", .type = PARAM_INT, .def = "10", .off = REC(k), .min = 1, .max = 1000,
     .help = "Items per recommendation"},
    {.key = "refresh.interval.ms", .type = PARAM_INT64, .def = "1000",
     .off = REC(refresh_interval_ms), .min = 0, .max = INFINITY,
     .help = "Least event time between two recommendations for one user, in ms"},
    {.key = "batch.users", .type = PARAM_INT, .def = "128", .off = REC(batch_users), .min = 1,
     .max = 4096, .help = "Users scored together in one matrix product (exact retrieval)"},
    {.key = "retrieval", .type = PARAM_CHOICE, .def = "two-stage", .off = REC(retrieval),
     .choices = (const char *const[]){"exact", "two-stage", NULL},
     .help = "two-stage: candidates from co-occurrence and trending items, then ranked; "
     "exact: every item scored by its embedding (small catalogues, a reference)"},
    {.key = "history", .type = PARAM_INT, .def = "10", .off = REC(read.history), .min = 1,
     .max = COOC_MAX_HISTORY, .help = "The user's most recent interactions whose neighbours "
     "are candidates"},
    {.key = "recency", .type = PARAM_FLOAT, .def = "8", .off = REC(read.recency), .min = 0.01,
     .max = INFINITY, .help = "An interaction's weight halves every this many interactions back"},
    {.key = "candidates", .type = PARAM_INT, .def = "100", .off = REC(read.candidates),
     .min = 1, .max = 100000, .help = "Most co-occurrence candidates ranked per refresh"},
    {.key = "trending", .type = PARAM_INT, .def = "100", .off = REC(read.trending), .min = 0,
     .max = 100000, .help = "Most trending items added to them"},
    {.key = "blend.trending", .type = PARAM_FLOAT, .def = "0.1", .off = REC(blend.trending),
     .min = 0, .max = INFINITY, .help = "Weight of a candidate's trending share in its rank "
     "score (its co-occurrence share weighs 1)"},
    {.key = "rerank", .type = PARAM_INT, .def = "50", .off = REC(rerank), .min = 1,
     .max = 10000, .help = "The best candidates by co-occurrence and trending whose "
     "embedding dot product is added to their score"},
    {.key = "learn.rate", .type = PARAM_FLOAT, .def = "0", .off = REC(learn_rate), .min = 0,
     .max = 1, .help = "Learning rate of the blend's weights, one pairwise step per positive "
     "click (0: the blend.* weights as configured)"},
    {.key = "blend.mf", .type = PARAM_FLOAT, .def = "0.2", .off = REC(blend.mf), .min = 0,
     .max = INFINITY, .help = "Weight of its embedding dot product"},
};

static const struct state_codec *const rec_stores[] = {&rec_model_codec, NULL};

const struct eddy_operator eddy_op_recommend = {
    .name = "recommend",
    .section = "recommend",
    .section_help = "Top-K recommendations.",
    .params = rec_keys,
    .n_params = sizeof rec_keys / sizeof rec_keys[0],
    .params_size = sizeof(struct rec_params),
    .create = rec_create,
    .process = rec_process,
    .flush = rec_flush,
    .checkpoint = rec_checkpoint,
    .destroy = rec_destroy,
    .clock = EV_CLICK,
    .inputs = EVENT_BIT(EV_CLICK), /* whose users to refresh; it scores embeddings' vectors */
    .outputs = OUTPUT_BIT(OUTPUT_RECOMMENDATIONS),
    .stores = rec_stores, /* its pending refreshes are a blob (checkpoint) */
    .answers = QUERY_BIT(QUERY_USER_RECOMMENDATIONS),
    .query = rec_query,
};
