/* embeddings.c: online matrix factorisation, one SGD step per click.
 *
 * The vector arithmetic is plain C loops, not CBLAS: the updates change
 * state, which must be a pure function of the input, and Debian's OpenBLAS
 * picks its sdot/saxpy kernels by CPU at run time (different summation
 * orders, different last bits on another host). At d=64 the loops below
 * measured slightly faster than cblas_sdot/saxpy anyway (no call dispatch).
 *
 * Steady state allocates nothing: vectors live in the state's cache. */
#include "operators/embeddings.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "operators/common.h"
#include "operators/users.h"
#include "operators/vecmath.h"
#include "state/state.h"

struct mf {
    struct mf_params p;
    struct eddy_state *st;
    struct state_store *users, *items; /* operators/users.h */
    int64_t clock;                     /* latest event time applied; INT64_MIN: none */
    bool clock_dirty;
};

#define CLOCK_BLOB "embeddings.clock"

/* ---- expiry (ttl.ms) -----------------------------------------------------
 *
 * A user whose last click is more than ttl.ms of event time old expires:
 * when the operator's clock (the latest event time it applied, saved with
 * each commit) crosses a multiple of ttl/4, a sweep deletes every user
 * whose last click is before that multiple minus ttl. Event time alone
 * decides, so a restart or another batching sweeps at the same points and
 * the state stays a function of the input. A user lives at most 1.25 ttl
 * past their last click; one who comes back starts anew (a new vector, an
 * empty seen set). Items are rows of a dense matrix, which cannot delete
 * one: they do not expire (docs/recommender.md, "Bounded state"). */

static bool user_expired(const void *value, void *cutoff)
{
    return ((const struct user_state *)value)->last_event_ms < *(const int64_t *)cutoff;
}

static void advance_clock(struct mf *m, int64_t t)
{
    const int64_t before = m->clock;
    if (t <= before)
        return;
    m->clock = t;
    m->clock_dirty = true;
    int64_t cutoff;
    if (ttl_sweep_due(before, t, m->p.ttl_ms, &cutoff))
        state_sweep(m->users, user_expired, &cutoff);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A new vector depends only on the id: uniform in [-scale, scale). */
static void init_vec(float *v, int dim, struct eddy_str id, float scale)
{
    uint64_t s = XXH64(id.ptr, id.len, 0);
    for (int j = 0; j < dim; j++) {
        float u = (float)(splitmix64(&s) >> 40) * 0x1p-24f; /* 24 bits: exact in a float */
        v[j] = (2.0f * u - 1.0f) * scale;
    }
}

/* One SGD step pulling dot(p, q) towards target with confidence w. Fused:
 * each q[j] update sees p[j] from before the step, as the maths requires. */
static void sgd_step(const struct mf_params *mp, float *p, float *q, float target, float w)
{
    const float lr = mp->learning_rate, reg = mp->regularization;
    const float we = w * (target - dot_fixed(p, q, mp->dim));
    for (int j = 0; j < mp->dim; j++) {
        const float pj = p[j], qj = q[j];
        p[j] = pj + lr * (we * qj - reg * pj);
        q[j] = qj + lr * (we * pj - reg * qj);
    }
}

/* Pushes `negatives` items towards 0 for this user. The draw depends only on
 * the event's content and the item count, so replays draw the same rows. */
static void negative_steps(struct mf *m, float *p, uint32_t pos, const struct click_event *c)
{
    uint32_t n;
    state_rows_matrix(m->items, &n);
    if (n < 2)
        return;
    uint64_t s = XXH64(c->user_id.ptr, c->user_id.len,
                       XXH64(c->item_id.ptr, c->item_id.len, (uint64_t)c->timestamp_ms));
    for (int i = 0; i < m->p.negatives; i++) {
        uint32_t row = (uint32_t)(splitmix64(&s) % (n - 1));
        row += row >= pos; /* every row but the positive, one draw */
        sgd_step(&m->p, p, state_rows_vec(m->items, row), 0.0f, 1.0f);
        state_rows_dirty(m->items, row);
    }
}

/* The item's row, adding it with its initial vector if new; -1 on failure. */
static int32_t item_row(struct mf *m, struct eddy_str id)
{
    int32_t row = state_rows_find(m->items, id);
    if (row >= 0)
        return row;
    row = state_rows_add(m->items, id, NULL);
    if (row >= 0)
        init_vec(state_rows_vec(m->items, (uint32_t)row), m->p.dim, id, m->p.init_scale);
    return row;
}

static void mf_process(void *self, const struct eddy_event *ev)
{
    struct mf *m = self;
    if (ev->kind != EV_CLICK || (unsigned)ev->u.click.type >= CLICK_TYPE_COUNT)
        return;
    const struct click_event *c = &ev->u.click;
    advance_clock(m, c->timestamp_ms);
    struct user_state *u = state_get_in(m->users, ev->partition, c->user_id, true);
    int32_t row = item_row(m, c->item_id);
    if (!u || row < 0)
        return;
    if (u->is_new) {
        init_vec(u->vec, m->p.dim, c->user_id, m->p.init_scale);
        u->is_new = false;
    }
    const float w = m->p.weight[c->type];
    if (w != 0.0f) {
        sgd_step(&m->p, u->vec, state_rows_vec(m->items, (uint32_t)row), 1.0f, w);
        state_rows_dirty(m->items, (uint32_t)row);
        negative_steps(m, u->vec, (uint32_t)row, c);
        state_model_version_bump(m->st);
    }
    user_seen_add(u, (uint32_t)row);
    u->n_events++;
    u->last_event_ms = c->timestamp_ms;
    state_dirty(m->users, u);
}

static bool params_ok(const struct mf_params *p, int state_dim, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (p->dim != state_dim)
        bad = "dim differs from the state's";
    else if (p->negatives < 0)
        bad = "negatives must be >= 0";
    else if (!(p->learning_rate > 0) || !isfinite(p->learning_rate))
        bad = "learning_rate must be > 0";
    else if (!(p->regularization >= 0) || !isfinite(p->regularization))
        bad = "regularization must be >= 0";
    else if (!(p->init_scale > 0) || !isfinite(p->init_scale))
        bad = "init_scale must be > 0 (zero vectors never move)";
    for (int t = 0; !bad && t < CLICK_TYPE_COUNT; t++)
        if (!(p->weight[t] >= 0) || !isfinite(p->weight[t]))
            bad = "weights must be finite and >= 0";
    if (bad)
        snprintf(err, errlen, "embeddings: %s (dim %d, state dim %d)", bad, p->dim, state_dim);
    return !bad;
}

static void *mf_create(const void *params, struct eddy_state *st,
                       const struct eddy_emit *emit, char *err, size_t errlen)
{
    (void)emit; /* the model has no outputs of its own */
    const struct mf_params *p = params;
    if (!params_ok(p, state_dim(st), err, errlen))
        return NULL;
    if (!state_store(st, &users_store) || !state_store(st, &items_store)) {
        snprintf(err, errlen, "embeddings: the state was opened without its stores");
        return NULL;
    }
    struct mf *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "embeddings: out of memory");
        return NULL;
    }
    m->p = *p;
    m->st = st;
    m->users = state_store(st, &users_store);
    m->items = state_store(st, &items_store);
    m->clock = INT64_MIN;
    void *blob;
    size_t len;
    if (state_blob_get(st, CLOCK_BLOB, &blob, &len) == 0) {
        if (len == sizeof m->clock)
            memcpy(&m->clock, blob, len);
        free(blob);
    }
    return m;
}

/* The clock goes with the commit, so a restart sweeps where a run without
 * one would. */
static void mf_checkpoint(void *self)
{
    struct mf *m = self;
    if (m->clock_dirty)
        state_blob_set(m->st, CLOCK_BLOB, &m->clock, sizeof m->clock);
    m->clock_dirty = false;
}

static void mf_flush(void *self, int64_t watermark_ms)
{
    (void)self, (void)watermark_ms; /* updates are applied per event */
}

static void mf_destroy(void *self)
{
    free(self);
}

/* The keys of [embeddings], which the pipeline reads into struct mf_params. */
#define MF(field) offsetof(struct mf_params, field)
static const struct eddy_param mf_keys[] = {
    {.key = "dim", .type = PARAM_INT, .def = "32", .off = MF(dim), .min = 1, .max = 1024,
     .help = "Embedding dimension; must match existing state"},
    {.key = "learning_rate", .type = PARAM_FLOAT, .def = "0.05", .off = MF(learning_rate),
     .min = 0, .max = 1, .help = "SGD step size"},
    {.key = "regularization", .type = PARAM_FLOAT, .def = "0.01", .off = MF(regularization),
     .min = 0, .max = 1, .help = "L2 regularisation applied at each step"},
    {.key = "negatives", .type = PARAM_INT, .def = "4", .off = MF(negatives), .min = 0,
     .max = 64, .help = "Negative items sampled per event"},
    {.key = "init_scale", .type = PARAM_FLOAT, .def = "0.1", .off = MF(init_scale), .min = 0,
     .max = 1, .help = "Scale of the pseudo-random initial vectors"},
    {.key = "weight.view", .type = PARAM_FLOAT, .def = "0.5", .off = MF(weight[CLICK_VIEW]),
     .min = 0, .max = INFINITY, .help = "Confidence weight of a VIEW event"},
    {.key = "weight.click", .type = PARAM_FLOAT, .def = "1.0", .off = MF(weight[CLICK_CLICK]),
     .min = 0, .max = INFINITY, .help = "Confidence weight of a CLICK event"},
    {.key = "weight.add_to_cart", .type = PARAM_FLOAT, .def = "2.0",
     .off = MF(weight[CLICK_ADD_TO_CART]), .min = 0, .max = INFINITY,
     .help = "Confidence weight of an ADD_TO_CART event"},
    {.key = "weight.purchase", .type = PARAM_FLOAT, .def = "4.0",
     .off = MF(weight[CLICK_PURCHASE]), .min = 0, .max = INFINITY,
     .help = "Confidence weight of a PURCHASE event"},
    {.key = "ttl.ms", .type = PARAM_INT64, .def = "0", .off = MF(ttl_ms), .min = 0,
     .max = INFINITY,
     .help = "Users without a click for this long in event time expire (vector and seen "
             "set), in ms (0: never)"},
};

/* Users before items: `eddy state` lists them in this order. */
static const struct state_codec *const mf_stores[] = {&users_store, &items_store, NULL};

const struct eddy_operator eddy_op_embeddings = {
    .name = "embeddings",
    .section = "embeddings",
    .section_help = "Online matrix factorisation of click events.",
    .params = mf_keys,
    .n_params = sizeof mf_keys / sizeof mf_keys[0],
    .params_size = sizeof(struct mf_params),
    .create = mf_create,
    .process = mf_process,
    .flush = mf_flush,
    .checkpoint = mf_checkpoint,
    .destroy = mf_destroy,
    .clock = EV_CLICK,
    .inputs = EVENT_BIT(EV_CLICK),
    .outputs = OUTPUT_BIT(OUTPUT_STATE),
    .stores = mf_stores, /* recommend reads them too */
};
