/* test_embeddings.c: the online MF operator's arithmetic and determinism. */
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

#include "operators/embeddings.h"
#include "state/state.h"
#include "tests/unit/users_store.h"

#define DIM 16
#define S(s) eddy_str_c(s)

struct fx {
    char dir[64];
    char err[256];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/eddy-test-emb-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Opens state in subdirectory `name` of the fixture's temp dir. */
static struct eddy_state *open_sub(struct fx *f, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    static const struct state_codec *const stores[] = {&users_store, &items_store, NULL};
    struct state_options o = {.dir = path, .dim = DIM, .create_if_missing = true,
                              .stores = stores};
    struct eddy_state *st = NULL;
    if (state_open(&o, &st, f->err, sizeof f->err))
        fail_msg("state_open: %s", f->err);
    return st;
}

static struct mf_params params(int negatives)
{
    struct mf_params p = {.dim = DIM, .learning_rate = 0.05f, .regularization = 0.01f,
                          .negatives = negatives, .init_scale = 0.1f,
                          .weight = {1.0f, 2.0f, 3.0f, 4.0f}};
    return p;
}

static void *op_new(struct eddy_state *st, const struct mf_params *p)
{
    struct eddy_emit emit = {0};
    char err[256];
    void *op = eddy_op_embeddings.create(p, st, &emit, err, sizeof err);
    if (!op)
        fail_msg("create: %s", err);
    return op;
}

static void click(void *op, const char *user, const char *item, enum click_type t, int64_t ts)
{
    struct eddy_event ev = {.kind = EV_CLICK};
    ev.u.click.user_id = S(user);
    ev.u.click.item_id = S(item);
    ev.u.click.type = t;
    ev.u.click.timestamp_ms = ts;
    eddy_op_embeddings.process(op, &ev);
}

/* A fixed pseudo-random event stream: event i of it. */
static void stream_event(void *op, int i)
{
    char user[16], item[16];
    uint32_t h = (uint32_t)i * 2654435761u;
    snprintf(user, sizeof user, "u%u", h % 13);
    snprintf(item, sizeof item, "i%u", (h >> 8) % 29);
    click(op, user, item, (enum click_type)((h >> 16) % CLICK_TYPE_COUNT), 1000 + i);
}

static void assert_states_equal(struct eddy_state *a, struct eddy_state *b)
{
    uint32_t na, nb;
    const float *ma = state_rows_matrix(items_of(a), &na), *mb = state_rows_matrix(items_of(b), &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ma, mb, (size_t)na * DIM * sizeof(float));
    for (uint32_t r = 0; r < na; r++) {
        struct eddy_str ia = state_rows_id(items_of(a), r), ib = state_rows_id(items_of(b), r);
        assert_int_equal(ia.len, ib.len);
        assert_memory_equal(ia.ptr, ib.ptr, ia.len);
    }
    for (int i = 0; i < 13; i++) {
        char user[16];
        snprintf(user, sizeof user, "u%d", i);
        struct user_state *ua = user_get(a, 0, S(user), false), *ub = user_get(b, 0, S(user), false);
        assert_non_null(ua);
        assert_non_null(ub);
        assert_memory_equal(ua->vec, ub->vec, DIM * sizeof(float));
        assert_int_equal(ua->n_seen, ub->n_seen);
        assert_memory_equal(ua->seen, ub->seen, ua->n_seen * sizeof(uint32_t));
        assert_int_equal(ua->n_events, ub->n_events);
    }
    assert_int_equal(state_model_version(a), state_model_version(b));
}

/* Same events, same bits: in one go, and across a commit/close/reopen. */
static void test_deterministic(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(3);
    struct eddy_state *a = open_sub(f, "a"), *b = open_sub(f, "b");
    void *oa = op_new(a, &p), *ob = op_new(b, &p);
    for (int i = 0; i < 400; i++)
        stream_event(oa, i);
    for (int i = 0; i < 250; i++)
        stream_event(ob, i);
    eddy_op_embeddings.destroy(ob);
    if (state_commit(b, f->err, sizeof f->err))
        fail_msg("commit: %s", f->err);
    state_close(b);
    b = open_sub(f, "b");
    ob = op_new(b, &p);
    for (int i = 250; i < 400; i++)
        stream_event(ob, i);
    assert_states_equal(a, b);
    assert_true(state_model_version(a) > 0);
    eddy_op_embeddings.destroy(oa);
    eddy_op_embeddings.destroy(ob);
    state_close(a);
    state_close(b);
}

#define HOUR 3600000LL

static void commit_checkpointed(struct fx *f, struct eddy_state *st, void *op)
{
    eddy_op_embeddings.checkpoint(op);
    if (state_commit(st, f->err, sizeof f->err))
        fail_msg("commit: %s", f->err);
}

/* ttl 10 h: when the clock crosses a multiple of 2.5 h, users whose last
 * click is before that multiple minus 10 h are deleted, and one who comes
 * back starts anew. The clock goes with the commit: after a reopen the
 * operator sweeps where one that ran on would. */
static void test_ttl(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(0);
    p.ttl_ms = 10 * HOUR;
    struct eddy_state *st = open_sub(f, "a");
    void *op = op_new(st, &p);
    click(op, "u1", "i1", CLICK_CLICK, 1 * HOUR);
    click(op, "u2", "i2", CLICK_CLICK, 4 * HOUR);
    click(op, "u3", "i1", CLICK_CLICK, 12 * HOUR); /* sweep at 10 h: cutoff 0 */
    assert_non_null(user_get(st, 0, S("u1"), false));
    click(op, "u3", "i2", CLICK_CLICK, 13 * HOUR); /* at 12.5 h: cutoff 2.5 h */
    assert_null(user_get(st, 0, S("u1"), false));
    assert_non_null(user_get(st, 0, S("u2"), false));
    click(op, "u1", "i2", CLICK_CLICK, 13 * HOUR + 1);
    struct user_state *u1 = user_get(st, 0, S("u1"), false);
    assert_non_null(u1);
    assert_int_equal(u1->n_events, 1);
    assert_int_equal(u1->n_seen, 1);
    commit_checkpointed(f, st, op);
    eddy_op_embeddings.destroy(op);
    state_close(st);

    st = open_sub(f, "a");
    op = op_new(st, &p);
    click(op, "u3", "i1", CLICK_CLICK, 15 * HOUR + 1); /* at 15 h: cutoff 5 h */
    assert_null(user_get(st, 0, S("u2"), false));
    assert_non_null(user_get(st, 0, S("u1"), false));
    commit_checkpointed(f, st, op);
    eddy_op_embeddings.destroy(op);
    state_close(st);
    st = open_sub(f, "a");
    assert_null(user_get(st, 0, S("u2"), false));
    assert_non_null(user_get(st, 0, S("u3"), false));
    state_close(st);
}

static double dotd(const float *a, const float *b)
{
    double s = 0;
    for (int j = 0; j < DIM; j++)
        s += (double)a[j] * b[j];
    return s;
}

static void test_positive_increases_dot(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(0);
    struct eddy_state *st = open_sub(f, "s");
    void *op = op_new(st, &p);
    click(op, "alice", "book", CLICK_VIEW, 1);
    struct user_state *u = user_get(st, 0, S("alice"), false);
    const float *q = state_rows_vec(items_of(st), 0);
    double before = dotd(u->vec, q);
    for (int j = 0; j < DIM; j++) /* initial vectors: seeded, small, not zero */
        assert_true(fabsf(u->vec[j]) <= 0.1f);
    click(op, "alice", "book", CLICK_CLICK, 2);
    assert_true(dotd(u->vec, state_rows_vec(items_of(st), 0)) > before);
    assert_int_equal(u->n_events, 2);
    assert_int_equal(u->last_event_ms, 2);
    assert_int_equal(state_model_version(st), 2);
    eddy_op_embeddings.destroy(op);
    state_close(st);
}

/* One step against the formula, computed here in double precision. */
static void test_one_step_numeric(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(0);
    p.regularization = 0.1f;
    struct eddy_state *st = open_sub(f, "s");
    float pu[DIM], qi[DIM];
    for (int j = 0; j < DIM; j++) {
        pu[j] = 0.05f * (float)(j % 5) - 0.1f;
        qi[j] = 0.03f * (float)(j % 7) - 0.05f;
    }
    struct user_state *u = user_get(st, 0, S("alice"), true);
    memcpy(u->vec, pu, sizeof pu);
    u->is_new = false;
    state_rows_add(items_of(st), S("book"), qi);
    void *op = op_new(st, &p);
    click(op, "alice", "book", CLICK_ADD_TO_CART, 5); /* weight 3 */

    const double lr = p.learning_rate, reg = p.regularization, w = 3.0;
    const double e = 1.0 - dotd(pu, qi);
    const float *q = state_rows_vec(items_of(st), 0);
    for (int j = 0; j < DIM; j++) {
        double wp = pu[j] + lr * (w * e * qi[j] - reg * pu[j]);
        double wq = qi[j] + lr * (w * e * pu[j] - reg * qi[j]);
        assert_true(fabs(u->vec[j] - wp) < 1e-6);
        assert_true(fabs(q[j] - wq) < 1e-6);
    }
    assert_true(user_has_seen(u, 0));
    eddy_op_embeddings.destroy(op);
    state_close(st);
}

static void test_weight_zero(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(2);
    p.weight[CLICK_VIEW] = 0.0f;
    struct eddy_state *st = open_sub(f, "s");
    void *op = op_new(st, &p);
    click(op, "alice", "a", CLICK_CLICK, 1);
    click(op, "alice", "b", CLICK_CLICK, 2);
    uint64_t mv = state_model_version(st);
    struct user_state *u = user_get(st, 0, S("alice"), false);
    float pu[DIM];
    memcpy(pu, u->vec, sizeof pu);
    uint32_t n;
    state_rows_matrix(items_of(st), &n);
    size_t msize = (size_t)n * DIM * sizeof(float);
    float *m = malloc(msize);
    memcpy(m, state_rows_matrix(items_of(st), &n), msize);

    click(op, "alice", "a", CLICK_VIEW, 3);   /* seen already */
    click(op, "bob", "b", CLICK_VIEW, 4);     /* new user: initialised, not trained */
    assert_memory_equal(u->vec, pu, sizeof pu);
    assert_memory_equal(state_rows_matrix(items_of(st), &n), m, msize);
    assert_int_equal(state_model_version(st), mv);
    struct user_state *bob = user_get(st, 0, S("bob"), false);
    assert_true(user_has_seen(bob, 1));
    assert_false(user_has_seen(bob, 0));
    assert_int_equal(bob->n_events, 1);
    assert_int_equal(u->n_events, 3);
    free(m);
    eddy_op_embeddings.destroy(op);
    state_close(st);
}

/* With two items every negative is the other item, never the positive. */
static void test_negatives_move_others(void **state)
{
    struct fx *f = *state;
    struct mf_params p = params(4);
    struct eddy_state *st = open_sub(f, "s");
    void *op = op_new(st, &p);
    click(op, "bob", "other", CLICK_CLICK, 1);
    float other[DIM];
    memcpy(other, state_rows_vec(items_of(st), 0), sizeof other);
    struct eddy_event ad = {.kind = EV_AD};
    ad.u.ad.campaign_id = S("c");
    eddy_op_embeddings.process(op, &ad); /* ignored */
    click(op, "alice", "book", CLICK_CLICK, 2);
    assert_memory_not_equal(state_rows_vec(items_of(st), 0), other, sizeof other);
    struct user_state *u = user_get(st, 0, S("alice"), false);
    assert_int_equal(u->n_seen, 1);
    assert_true(user_has_seen(u, 1));
    eddy_op_embeddings.destroy(op);
    state_close(st);
}

static void test_bad_params(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_sub(f, "s");
    struct eddy_emit emit = {0};
    char err[256];
    struct mf_params p = params(1);
    p.dim = DIM + 1;
    assert_null(eddy_op_embeddings.create(&p, st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "dim"));
    p = params(1);
    p.init_scale = 0;
    assert_null(eddy_op_embeddings.create(&p, st, &emit, err, sizeof err));
    state_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positive_increases_dot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_step_numeric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weight_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negatives_move_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
