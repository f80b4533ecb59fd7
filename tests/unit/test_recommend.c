/* test_recommend.c: top-k selection, exclusion, debounce and batching. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/cooccur.h"
#include "operators/recommend.h"
#include "operators/vecmath.h"
#include "state/state.h"
#include "tests/unit/users_store.h"

#define DIM 4
#define MAX_RECS 128
#define MAX_K 16
#define S(s) eddy_str_c(s)

struct got_rec {
    char user[16];
    size_t n;
    char items[MAX_K][16];
    char because[MAX_K][16];
    float scores[MAX_K];
    int64_t time, model_version;
};

struct fx {
    char dir[64];
    struct eddy_state *st;
    int n;
    struct got_rec recs[MAX_RECS];
};

static int setup_dim(void **state, int dim)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[256];
    strcpy(f->dir, "/tmp/eddy-test-rec-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    static const struct state_codec *stores[8] = {&users_store, &items_store};
    for (int i = 0; eddy_op_cooccur.stores[i]; i++) /* two-stage reads cooccur's */
        stores[2 + i] = eddy_op_cooccur.stores[i];
    struct state_options o = {.dir = f->dir, .dim = dim, .create_if_missing = true,
                              .stores = stores};
    if (state_open(&o, &f->st, err, sizeof err))
        fail_msg("state_open: %s", err);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_dim(state, DIM);
}

/* Wide enough for sgemm's blocking to differ with the batch size. */
static int setup_wide(void **state)
{
    return setup_dim(state, 64);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    state_close(f->st);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Copies a recommendation: its strings are borrowed for the call only. */
static void on_rec(void *ctx, const struct recommendation *rec)
{
    struct fx *f = ctx;
    assert_true(f->n < MAX_RECS);
    assert_true(rec->n_items <= MAX_K);
    struct got_rec *g = &f->recs[f->n++];
    snprintf(g->user, sizeof g->user, "%.*s", (int)rec->user_id.len, rec->user_id.ptr);
    g->n = rec->n_items;
    for (size_t i = 0; i < rec->n_items; i++) {
        snprintf(g->items[i], sizeof g->items[i], "%.*s", (int)rec->items[i].item_id.len,
                 rec->items[i].item_id.ptr);
        g->scores[i] = rec->items[i].score;
        snprintf(g->because[i], sizeof g->because[i], "%.*s", (int)rec->items[i].because.len,
                 rec->items[i].because.ptr ? rec->items[i].because.ptr : "");
    }
    g->time = rec->event_time_ms;
    g->model_version = rec->model_version;
}

static void *op_new(struct fx *f, int k, int64_t interval, int batch)
{
    struct rec_params p = {.k = k, .refresh_interval_ms = interval, .batch_users = batch};
    struct eddy_emit emit = {.recommendation = on_rec, .ctx = f};
    char err[256];
    void *op = eddy_op_recommend.create(&p, f->st, &emit, err, sizeof err);
    if (!op)
        fail_msg("create: %s", err);
    return op;
}

/* The operator's answer to QUERY_USER_RECOMMENDATIONS: how many items it
 * wrote to out, or -1 for an unknown user. */
static int top_k(struct fx *f, const char *user, int k, struct rec_item *out)
{
    assert_true(eddy_op_recommend.answers & QUERY_BIT(QUERY_USER_RECOMMENDATIONS));
    struct eddy_query q = {.kind = QUERY_USER_RECOMMENDATIONS,
                           .u.recs = {.user_id = S(user), .k = k, .items = out}};
    return eddy_op_recommend.query(f->st, &q) ? q.u.recs.n : -1;
}

static void click(void *op, const char *user, int64_t ts)
{
    struct eddy_event ev = {.kind = EV_CLICK};
    ev.u.click.user_id = S(user);
    ev.u.click.item_id = S("whatever");
    ev.u.click.timestamp_ms = ts;
    eddy_op_recommend.process(op, &ev);
}

static struct user_state *user(struct fx *f, const char *id, const float *vec)
{
    struct user_state *u = user_get(f->st, 0, S(id), true);
    memcpy(u->vec, vec, (size_t)state_dim(f->st) * sizeof(float));
    u->is_new = false;
    return u;
}

/* Scores against u = (1, .5, 0, 0): i0 1, i1 1 (tie: i0 first), i2 2,
 * i3 0, i4 -1, i5 1.5. All exact in binary, so no rounding questions. */
static void hand_items(struct fx *f)
{
    static const float v[6][DIM] = {{1, 0, 0, 0}, {0, 2, 0, 0}, {2, 0, 0, 0},
                                    {0, 0, 5, 0}, {-1, 0, 0, 0}, {1, 1, 0, 0}};
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof id, "i%d", i);
        assert_int_equal(state_rows_add(items_of(f->st), S(id), v[i]), i);
    }
}

static const float U_ALICE[DIM] = {1, 0.5f, 0, 0};

static void expect(const struct got_rec *g, const char *user, size_t n, const char *const *items,
                   const float *scores)
{
    assert_string_equal(g->user, user);
    assert_int_equal(g->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(g->items[i], items[i]);
        assert_true(g->scores[i] == scores[i]);
    }
}

static void test_top_k_exact(void **state)
{
    struct fx *f = *state;
    hand_items(f);
    user(f, "alice", U_ALICE);
    for (int i = 0; i < 7; i++)
        state_model_version_bump(f->st);
    void *op = op_new(f, 3, 1000, 8);
    click(op, "alice", 5);
    eddy_op_recommend.flush(op, 999); /* due at the end of its interval */
    assert_int_equal(f->n, 0);
    eddy_op_recommend.flush(op, 1042);
    assert_int_equal(f->n, 1);
    expect(&f->recs[0], "alice", 3, (const char *const[]){"i2", "i5", "i0"},
           (const float[]){2, 1.5f, 1});
    /* Stamped with the end of the click's interval, not the flush's
     * watermark, so that batching does not change the state. */
    assert_int_equal(f->recs[0].time, 1000);
    assert_int_equal(f->recs[0].model_version, 7);
    struct user_state *u = user_get(f->st, 0, S("alice"), false);
    assert_int_equal(u->last_refresh_ms, 1000);
    struct state_stats ss;
    state_stats(f->st, &ss);
    assert_true(ss.dirty > 0);
    eddy_op_recommend.destroy(op);
}

/* Seen items are excluded; k beyond what is left returns what is left. */
static void test_seen_excluded_k_large(void **state)
{
    struct fx *f = *state;
    hand_items(f);
    struct user_state *u = user(f, "alice", U_ALICE);
    user_seen_add(u, 2);
    user_seen_add(u, 4);
    void *op = op_new(f, 10, 0, 8);
    click(op, "alice", 1);
    eddy_op_recommend.flush(op, 1);
    assert_int_equal(f->n, 1);
    expect(&f->recs[0], "alice", 4, (const char *const[]){"i5", "i0", "i1", "i3"},
           (const float[]){1.5f, 1, 1, 0});
    struct rec_item out[10];
    assert_int_equal(top_k(f, "alice", 10, out), 4);
    assert_int_equal(out[2].item_id.len, 2);
    assert_memory_equal(out[2].item_id.ptr, "i1", 2);
    assert_true(out[0].score == 1.5f);
    assert_int_equal(top_k(f, "nobody", 10, out), -1);
    eddy_op_recommend.destroy(op);
}

/* Before any item exists a due user still gets its (empty) list. */
static void test_no_items(void **state)
{
    struct fx *f = *state;
    user(f, "alice", U_ALICE);
    void *op = op_new(f, 3, 0, 8);
    click(op, "alice", 1);
    eddy_op_recommend.flush(op, 1);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->recs[0].n, 0);
    struct rec_item out[3];
    assert_int_equal(top_k(f, "alice", 3, out), 0);
    eddy_op_recommend.destroy(op);
}

static void test_debounce(void **state)
{
    struct fx *f = *state;
    hand_items(f);
    user(f, "alice", U_ALICE);
    void *op = op_new(f, 2, 1000, 8);
    click(op, "alice", 0);
    click(op, "alice", 1); /* same interval: one refresh */
    click(op, "ghost", 1); /* no model state: dropped at flush */
    eddy_op_recommend.flush(op, 999);
    assert_int_equal(f->n, 0);
    eddy_op_recommend.flush(op, 1000);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->recs[0].time, 1000);
    click(op, "alice", 1500);
    eddy_op_recommend.flush(op, 1999);
    assert_int_equal(f->n, 1);
    eddy_op_recommend.flush(op, 2000);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->recs[1].time, 2000);
    eddy_op_recommend.flush(op, 5000); /* no new click: nothing */
    assert_int_equal(f->n, 2);
    eddy_op_recommend.destroy(op);
}

/* Clicks in several intervals before one flush give the same refresh times
 * as flushing after each: state must not depend on batching. */
static void test_batching_does_not_change_refresh_times(void **state)
{
    struct fx *f = *state;
    hand_items(f);
    user(f, "alice", U_ALICE);
    void *op = op_new(f, 2, 1000, 8);
    click(op, "alice", 10);
    click(op, "alice", 1500);
    click(op, "alice", 3200);
    eddy_op_recommend.flush(op, 5000);
    assert_int_equal(f->n, 2); /* the last owed refresh covers 1500 and 3200 */
    assert_int_equal(f->recs[0].time, 1000);
    assert_int_equal(f->recs[1].time, 4000);
    assert_int_equal(user_get(f->st, 0, S("alice"), false)->last_refresh_ms, 4000);
    click(op, "alice", 3999); /* covered by the refresh at 4000 */
    eddy_op_recommend.flush(op, 9000);
    assert_int_equal(f->n, 2);
    eddy_op_recommend.destroy(op);
}

/* Users waiting for their refresh survive a checkpoint and a restart. */
static void test_pending_survives_restart(void **state)
{
    struct fx *f = *state;
    hand_items(f);
    user(f, "alice", U_ALICE);
    void *op = op_new(f, 2, 1000, 8);
    click(op, "alice", 0);
    eddy_op_recommend.flush(op, 1000);
    click(op, "alice", 1010); /* due at 2000 */
    eddy_op_recommend.checkpoint(op);
    eddy_op_recommend.destroy(op);
    char err[256];
    assert_int_equal(state_commit(f->st, err, sizeof err), 0);

    op = op_new(f, 2, 1000, 8);
    eddy_op_recommend.flush(op, 1999);
    assert_int_equal(f->n, 1);
    eddy_op_recommend.flush(op, 2000);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->recs[1].time, 2000);
    eddy_op_recommend.destroy(op);
}

/* ---- batching ----------------------------------------------------------- */

#define N_USERS 40
#define N_ITEMS 300

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(*s >> 40) * 0x1p-24f - 0.5f;
}

static void random_world(struct fx *f)
{
    uint64_t s = 1;
    const int dim = state_dim(f->st);
    float v[64];
    char id[16];
    for (int i = 0; i < N_ITEMS; i++) {
        for (int j = 0; j < dim; j++)
            v[j] = rnd(&s);
        snprintf(id, sizeof id, "i%d", i);
        state_rows_add(items_of(f->st), S(id), v);
    }
    for (int u = 0; u < N_USERS; u++) {
        for (int j = 0; j < dim; j++)
            v[j] = rnd(&s);
        snprintf(id, sizeof id, "u%d", u);
        struct user_state *us = user(f, id, v);
        for (int k = 0; k < u % 5; k++)
            user_seen_add(us, (uint32_t)((rnd(&s) + 0.5f) * (N_ITEMS - 1)));
    }
}

/* All users once, in order, later in event time than any earlier run (a
 * refresh already published at or after a click's time covers it); returns
 * the index of the first record. */
static int run_all(struct fx *f, int batch)
{
    int first = f->n;
    int64_t t0 = (int64_t)first * 1000;
    void *op = op_new(f, 7, 0, batch);
    char id[16];
    for (int u = 0; u < N_USERS; u++) {
        snprintf(id, sizeof id, "u%d", u);
        click(op, id, t0 + u);
    }
    eddy_op_recommend.flush(op, t0 + 100);
    eddy_op_recommend.destroy(op);
    assert_int_equal(f->n - first, N_USERS);
    return first;
}

static void test_batches_agree(void **state)
{
    struct fx *f = *state;
    random_world(f);
    int one = run_all(f, 1), some = run_all(f, 16), all = run_all(f, 64);
    for (int u = 0; u < N_USERS; u++) {
        const struct got_rec *a = &f->recs[one + u], *b = &f->recs[some + u],
                             *c = &f->recs[all + u];
        assert_int_equal(a->n, 7);
        struct got_rec x = *a, y = *b, z = *c; /* the runs differ in event time only */
        x.time = y.time = z.time = 0;
        assert_memory_equal(&x, &y, sizeof x);
        assert_memory_equal(&x, &z, sizeof x);
        struct rec_item out[7];
        assert_int_equal(top_k(f, a->user, 7, out), 7);
        for (int i = 0; i < 7; i++) {
            assert_int_equal(out[i].item_id.len, strlen(a->items[i]));
            assert_memory_equal(out[i].item_id.ptr, a->items[i], out[i].item_id.len);
            assert_true(out[i].score == a->scores[i]);
            if (i)
                assert_true(a->scores[i - 1] >= a->scores[i]);
        }
    }
}

/* More items than one scoring block (8192 rows for a batch of 128), with
 * seen items on both sides of the block edges and among each user's best:
 * the output must be the brute-force top k of the unseen items. */
static void test_blocks_agree_with_brute_force(void **state)
{
    enum { ITEMS = 20000, USERS = 5, K = 10, D = 64 };
    struct fx *f = *state;
    uint32_t x = 7;
    float v[D];
    for (int i = 0; i < ITEMS; i++) {
        char id[16];
        for (int j = 0; j < D; j++) {
            x = x * 1664525u + 1013904223u;
            v[j] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
        snprintf(id, sizeof id, "i%d", i);
        state_rows_add(items_of(f->st), S(id), v);
    }
    static const uint32_t edges[] = {0, 8191, 8192, 8193, 16383, 16384, 19999};
    void *op = op_new(f, K, 0, 128);
    for (int u = 0; u < USERS; u++) {
        char id[16];
        snprintf(id, sizeof id, "u%d", u);
        for (int j = 0; j < D; j++) {
            x = x * 1664525u + 1013904223u;
            v[j] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
        struct user_state *us = user(f, id, v);
        for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
            user_seen_add(us, edges[e]);
        for (uint32_t r = (uint32_t)u; r < ITEMS; r += 97) /* some of its best, surely */
            user_seen_add(us, r);
        click(op, id, 100);
    }
    eddy_op_recommend.flush(op, 100);
    assert_int_equal(f->n, USERS);
    for (int u = 0; u < USERS; u++) {
        const struct got_rec *g = &f->recs[u];
        struct user_state *us = user_get(f->st, 0, S(g->user), false);
        /* Brute force in double: the k best unseen rows, best first. */
        int best[K];
        double best_s[K];
        int n = 0;
        for (uint32_t r = 0; r < ITEMS; r++) {
            if (user_has_seen(us, r))
                continue;
            const float *iv = state_rows_vec(items_of(f->st), r);
            double sc = 0;
            for (int j = 0; j < D; j++)
                sc += (double)us->vec[j] * iv[j];
            int pos = n < K ? n++ : K;
            while (pos > 0 && best_s[pos - 1] < sc) {
                if (pos < K)
                    best[pos] = best[pos - 1], best_s[pos] = best_s[pos - 1];
                pos--;
            }
            if (pos < K)
                best[pos] = (int)r, best_s[pos] = sc;
        }
        assert_int_equal(g->n, K);
        for (int i = 0; i < K; i++) {
            char want[16];
            snprintf(want, sizeof want, "i%d", best[i]);
            assert_string_equal(g->items[i], want);
        }
    }
    eddy_op_recommend.destroy(op);
}

/* Ties and NaN: rows r >= 64 with r = 3 (mod 7) share the user's own
 * vector and tie for best; every other row scores lower. NaN vectors (a
 * diverged model) sit at the first row of ranges of 64 unseen rows (0,
 * and 96 and 672 after the seen rows 24 and 31) and inside the tied group
 * (94).
 * Equal scores rank by row, NaN never ranks, whatever the batch. */
static void test_ties_and_nan(void **state)
{
    enum { ITEMS = 3000, K = 10, D = DIM };
    struct fx *f = *state;
    const float w[D] = {1, 1, 1, 1};
    uint32_t x = 11;
    for (int i = 0; i < ITEMS; i++) {
        float v[D];
        for (int j = 0; j < D; j++) {
            x = x * 1664525u + 1013904223u;
            v[j] = i >= 64 && i % 7 == 3 ? w[j] : (float)(x >> 8) / 16777216.0f * 0.1f;
        }
        if (i == 0 || i == 94 || i == 96 || i == 672)
            for (int j = 0; j < D; j++)
                v[j] = NAN;
        char id[16];
        snprintf(id, sizeof id, "i%d", i);
        state_rows_add(items_of(f->st), S(id), v);
    }
    static const char *const want[K] = {"i66", "i73", "i80", "i87", "i101",
                                        "i108", "i115", "i122", "i129", "i136"};
    for (int batch = 1; batch <= 2; batch++) {
        void *op = op_new(f, K, 0, batch);
        int first = f->n;
        for (int u = 0; u < 2; u++) {
            char id[16];
            snprintf(id, sizeof id, "t%d", u);
            struct user_state *us = user(f, id, w);
            user_seen_add(us, 24);
            user_seen_add(us, 31);
            click(op, id, 100 * batch);
        }
        eddy_op_recommend.flush(op, 100 * batch);
        eddy_op_recommend.destroy(op);
        assert_int_equal(f->n - first, 2);
        for (int u = 0; u < 2; u++) {
            const struct got_rec *g = &f->recs[first + u];
            assert_int_equal(g->n, K);
            for (int i = 0; i < K; i++)
                assert_string_equal(g->items[i], want[i]);
        }
    }
}

static void test_bad_params(void **state)
{
    struct fx *f = *state;
    struct rec_params p = {.k = 0, .refresh_interval_ms = 0, .batch_users = 1};
    struct eddy_emit emit = {0};
    char err[256];
    assert_null(eddy_op_recommend.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "k"));
}

/* Two-stage: a user who saw a is offered b, which followed a in another
 * user's history, "because" of a; a seen item is never offered; a user
 * with no history gets the trending items, with no because. The query
 * answers what the refresh published. */
static void test_two_stage_because(void **state)
{
    struct fx *f = *state;
    struct cooc_params cp = {.history = 10, .neighbours = 100, .trending = 10,
                             .weight = {1, 1, 1, 1}, .reverse_weight = 0.5f,
                             .popularity_exponent = 0.5f};
    struct rec_params rp = {.k = 3, .refresh_interval_ms = 0, .batch_users = 4,
                            .retrieval = REC_TWO_STAGE, .rerank = 50,
                            .read = {.history = 10, .recency = 8, .candidates = 300,
                                     .trending = 10},
                            .blend = {.trending = 0.1f, .mf = 0}};
    struct eddy_emit emit = {.recommendation = on_rec, .ctx = f};
    char err[256];
    void *co = eddy_op_cooccur.create(&cp, f->st, &emit, err, sizeof err);
    void *rec = co ? eddy_op_recommend.create(&rp, f->st, &emit, err, sizeof err) : NULL;
    if (!rec)
        fail_msg("create: %s", err);
    const char *seq[][2] = {{"u1", "a"}, {"u1", "b"}, {"u2", "a"}};
    for (int i = 0; i < 3; i++) {
        if (state_rows_find(items_of(f->st), S(seq[i][1])) < 0)
            state_rows_add(items_of(f->st), S(seq[i][1]), NULL);
        struct user_state *u = user_get(f->st, 0, S(seq[i][0]), true);
        user_seen_add(u, (uint32_t)state_rows_find(items_of(f->st), S(seq[i][1])));
        user_dirty(f->st, u);
        struct eddy_event ev = {.kind = EV_CLICK};
        ev.u.click = (struct click_event){.user_id = S(seq[i][0]), .item_id = S(seq[i][1]),
                                          .type = CLICK_PURCHASE, .timestamp_ms = 10 + i};
        eddy_op_recommend.process(rec, &ev);
        eddy_op_cooccur.process(co, &ev);
    }
    user_get(f->st, 0, S("u3"), true); /* known, no history */
    struct eddy_event ev = {.kind = EV_CLICK};
    ev.u.click = (struct click_event){.user_id = S("u3"), .item_id = S("a"), .timestamp_ms = 13};
    eddy_op_recommend.process(rec, &ev);
    eddy_op_recommend.flush(rec, 100);
    const struct got_rec *u2 = NULL, *u3 = NULL;
    for (int i = 0; i < f->n; i++) {
        if (!strcmp(f->recs[i].user, "u2"))
            u2 = &f->recs[i];
        if (!strcmp(f->recs[i].user, "u3"))
            u3 = &f->recs[i];
    }
    assert_non_null(u2);
    assert_int_equal(u2->n, 1); /* b; a is seen */
    assert_string_equal(u2->items[0], "b");
    assert_string_equal(u2->because[0], "a");
    assert_non_null(u3);
    assert_int_equal(u3->n, 2); /* trending: a and b, a counted twice */
    assert_string_equal(u3->items[0], "a");
    assert_string_equal(u3->because[0], "");
    struct rec_item out[3];
    assert_int_equal(top_k(f, "u2", 3, out), 1);
    assert_true(out[0].because.len == 1 && out[0].because.ptr[0] == 'a');
    eddy_op_recommend.destroy(rec);
    eddy_op_cooccur.destroy(co);
}

struct scored {
    float score;
    uint32_t row;
};

/* Best first; ties: the lower row. */
static int by_score(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Two-stage ranking against brute force, on a pool large enough that both
 * of its cuts bite (candidates > rerank > k): every unseen candidate that
 * cooc_retrieve() offers, ranked by the blend without MF, the best `rerank`
 * of them rescored with it, the best k of those. Every user with history. */
static void test_two_stage_matches_brute_force(void **state)
{
    enum { ITEMS = 200, USERS = 60, CLICKS = 12, K = 10, RERANK = 25 };
    struct fx *f = *state;
    struct cooc_params cp = {.history = 10, .neighbours = 100, .trending = 80,
                             .weight = {1, 1, 1, 1}, .reverse_weight = 0.5f,
                             .popularity_exponent = 0.5f};
    struct rec_params rp = {.k = K, .refresh_interval_ms = 0, .batch_users = 4,
                            .retrieval = REC_TWO_STAGE, .rerank = RERANK,
                            .read = {.history = 10, .recency = 8, .candidates = 100,
                                     .trending = 80},
                            .blend = {.trending = 0.3f, .mf = 0.5f}};
    struct eddy_emit emit = {.recommendation = on_rec, .ctx = f};
    char err[256], id[16];
    void *co = eddy_op_cooccur.create(&cp, f->st, &emit, err, sizeof err);
    void *rec = co ? eddy_op_recommend.create(&rp, f->st, &emit, err, sizeof err) : NULL;
    if (!rec)
        fail_msg("create: %s", err);
    uint64_t seed = 7;
    float v[DIM];
    for (int i = 0; i < ITEMS; i++) {
        for (int j = 0; j < DIM; j++)
            v[j] = rnd(&seed);
        snprintf(id, sizeof id, "i%d", i);
        state_rows_add(items_of(f->st), S(id), v);
    }
    for (int c = 0; c < USERS * CLICKS; c++) { /* skewed items, users in turn */
        char uid[16];
        snprintf(uid, sizeof uid, "u%d", c % USERS);
        float x = rnd(&seed) + 0.5f;
        snprintf(id, sizeof id, "i%d", (int)(x * x * (ITEMS - 1)));
        for (int j = 0; j < DIM; j++)
            v[j] = rnd(&seed);
        struct user_state *u = user_get(f->st, 0, S(uid), false);
        if (!u)
            u = user(f, uid, v);
        user_seen_add(u, (uint32_t)state_rows_find(items_of(f->st), S(id)));
        user_dirty(f->st, u);
        struct eddy_event ev = {.kind = EV_CLICK};
        ev.u.click = (struct click_event){.user_id = S(uid), .item_id = S(id),
                                          .type = CLICK_PURCHASE, .timestamp_ms = 10 + c};
        eddy_op_cooccur.process(co, &ev);
    }
    struct cooc_scratch *scratch = cooc_scratch_new();
    struct scored want[ITEMS];
    struct rec_item got[K];
    for (int uix = 0; uix < USERS; uix++) {
        snprintf(id, sizeof id, "u%d", uix);
        const struct user_state *u = user_get(f->st, 0, S(id), false);
        const struct cooc_candidate *c;
        size_t n = cooc_retrieve(f->st, &rp.read, S(id), scratch, &c), len = 0;
        float best = 0;
        for (size_t i = 0; i < n; i++)
            best = c[i].cooc > best ? c[i].cooc : best;
        for (size_t i = 0; i < n; i++)
            if (!user_has_seen(u, c[i].row))
                want[len++] = (struct scored){c[i].cooc / best + rp.blend.trending * c[i].trend +
                                                  rp.blend.mf * 0.0f,
                                              c[i].row};
        assert_true(len > RERANK);
        qsort(want, len, sizeof *want, by_score);
        for (size_t i = 0; i < RERANK; i++)
            want[i].score +=
                rp.blend.mf * dot_fixed(u->vec, state_rows_vec(items_of(f->st), want[i].row), DIM);
        qsort(want, RERANK, sizeof *want, by_score);
        assert_int_equal(top_k(f, id, K, got), K);
        for (int i = 0; i < K; i++) {
            char w[16];
            snprintf(w, sizeof w, "i%u", (unsigned)want[i].row);
            assert_int_equal(got[i].item_id.len, strlen(w));
            assert_memory_equal(got[i].item_id.ptr, w, strlen(w));
        }
    }
    cooc_scratch_free(scratch);
    eddy_op_recommend.destroy(rec);
    eddy_op_cooccur.destroy(co);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_top_k_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seen_excluded_k_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debounce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching_does_not_change_refresh_times, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batches_agree, setup_wide, teardown),
        cmocka_unit_test_setup_teardown(test_blocks_agree_with_brute_force, setup_wide, teardown),
        cmocka_unit_test_setup_teardown(test_ties_and_nan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stage_because, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stage_matches_brute_force, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
