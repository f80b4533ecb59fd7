/* test_cooccur.c: the co-occurrence operator's lists and its retrieval:
 * pairs both ways, Space-Saving bounds, the history bound, decay in event
 * time, trending items for a user without history, type weights, the
 * same answers after a commit and a reopen, the count-min gate
 * (min.count) and its sketch across a reopen, and expiry (ttl.ms): absent
 * to readers, started anew by the writer, deleted by the sweep, and the
 * same with and without restarts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/cooccur.h"
#include "tests/unit/users_store.h"
#include "state/state.h"
#include "state/state_internal.h"

#define S(s) eddy_str_c(s)
#define HOUR 3600000LL

struct fx {
    char dir[64];
    struct eddy_state *st;
    struct cooc_params p;
    void *op;
    struct cooc_scratch *scratch;
};

static struct cooc_params default_params(void)
{
    return (struct cooc_params){.history = 10, .neighbours = 100, .trending = 100,
                                .weight = {1, 1, 1, 1}, .reverse_weight = 0.5f,
                                .popularity_exponent = 0.5f, .min_count = 1,
                                .sketch_width = 1024, .sketch_depth = 4};
}

static void open_state(struct fx *f)
{
    char err[256];
    static const struct state_codec *stores[8] = {&items_store};
    for (int i = 0; eddy_op_cooccur.stores[i]; i++)
        stores[1 + i] = eddy_op_cooccur.stores[i];
    struct state_options o = {.dir = f->dir, .dim = 2, .create_if_missing = true,
                              .stores = stores};
    if (state_open(&o, &f->st, err, sizeof err))
        fail_msg("state_open: %s", err);
}

static void start(struct fx *f)
{
    char err[256];
    struct eddy_emit emit = {0};
    f->op = eddy_op_cooccur.create(&f->p, f->st, &emit, err, sizeof err);
    if (!f->op)
        fail_msg("create: %s", err);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/eddy-test-cooc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    open_state(f);
    f->p = default_params();
    f->scratch = cooc_scratch_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->op)
        eddy_op_cooccur.destroy(f->op);
    state_close(f->st);
    cooc_scratch_free(f->scratch);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* The item's row, given it one if new (embeddings does that in the chain). */
static uint32_t row_of(struct fx *f, const char *item)
{
    int32_t row = state_rows_find(items_of(f->st), S(item));
    if (row < 0)
        row = state_rows_add(items_of(f->st), S(item), NULL);
    assert_true(row >= 0);
    return (uint32_t)row;
}

static void click_type(struct fx *f, const char *user, const char *item, int64_t ts,
                       enum click_type type)
{
    row_of(f, item);
    struct eddy_event ev = {.kind = EV_CLICK};
    ev.u.click.user_id = S(user);
    ev.u.click.item_id = S(item);
    ev.u.click.type = type;
    ev.u.click.timestamp_ms = ts;
    eddy_op_cooccur.process(f->op, &ev);
}

static void click(struct fx *f, const char *user, const char *item, int64_t ts)
{
    click_type(f, user, item, ts, CLICK_PURCHASE);
}

static struct cooc_read_params read_params(void)
{
    return (struct cooc_read_params){.history = 10, .recency = 8, .candidates = 300,
                                     .trending = 100};
}

/* The candidate for item, or NULL. */
static const struct cooc_candidate *find(struct fx *f, const struct cooc_candidate *c,
                                         size_t n, const char *item)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].row == (uint32_t)state_rows_find(items_of(f->st), S(item)))
            return &c[i];
    return NULL;
}

static size_t retrieve(struct fx *f, const char *user, const struct cooc_candidate **c)
{
    struct cooc_read_params rp = read_params();
    return cooc_retrieve(f->st, &rp, S(user), f->scratch, c);
}

/* u1 saw a then b: a user who saw a is offered b because of a, and a user
 * who saw b is offered a, with half the weight (read backwards). */
static void test_pairs_both_ways(void **state)
{
    struct fx *f = *state;
    start(f);
    click(f, "u1", "a", 1000);
    click(f, "u1", "b", 2000);
    click(f, "u2", "a", 3000);
    click(f, "u3", "b", 3000);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u2", &c);
    const struct cooc_candidate *b = find(f, c, n, "b");
    assert_non_null(b);
    assert_true(b->cooc > 0);
    assert_int_equal(b->because, state_rows_find(items_of(f->st), S("a")));
    float forwards = b->cooc;
    n = retrieve(f, "u3", &c);
    const struct cooc_candidate *a = find(f, c, n, "a");
    assert_non_null(a);
    assert_int_equal(a->because, state_rows_find(items_of(f->st), S("b")));
    /* counts: a 2, b 2; the same normalisation both ways */
    assert_float_equal(a->cooc, forwards * 0.5f, 1e-6);
}

/* With 2 neighbours per item, a third one takes the weakest's place and
 * is read with only what it earned itself. */
static void test_space_saving_bound(void **state)
{
    struct fx *f = *state;
    f->p.neighbours = 2;
    f->p.reverse_weight = 0;
    start(f);
    click(f, "u1", "a", 1);
    click(f, "u1", "b", 2); /* a: b 1 */
    click(f, "u2", "a", 3);
    click(f, "u2", "b", 4); /* a: b 2 */
    click(f, "u3", "a", 5);
    click(f, "u3", "c", 6); /* a: b 2, c 1 */
    click(f, "u4", "a", 7);
    click(f, "u4", "d", 8); /* full: d replaces c (1 + 1, error 1) */
    click(f, "u5", "a", 9);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u5", &c);
    const struct cooc_candidate *b = find(f, c, n, "b"), *d = find(f, c, n, "d");
    assert_non_null(b);
    assert_non_null(d);
    const struct cooc_candidate *cc = find(f, c, n, "c");
    assert_true(!cc || cc->cooc == 0); /* only trending can bring it now */
    /* d earned 1 of its 2, b earned 2: read with what they earned over
     * count^0.5 (b 2, d 1), b scores 2/sqrt(2) and d 1/1, whereas d's full
     * weight would have put it first. */
    assert_float_equal(b->cooc / d->cooc, sqrtf(2.0f), 1e-5);
}

/* With a history of 2, a new item pairs only with the last two. */
static void test_history_bound(void **state)
{
    struct fx *f = *state;
    f->p.history = 2;
    start(f);
    click(f, "u1", "a", 1);
    click(f, "u1", "b", 2);
    click(f, "u1", "c", 3);
    click(f, "u1", "d", 4); /* pairs with b and c, not a */
    click(f, "u2", "a", 5);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u2", &c);
    const struct cooc_candidate *d = find(f, c, n, "d");
    assert_true(!d || d->cooc == 0);
    assert_non_null(find(f, c, n, "c"));
}

/* A user without history gets the trending items, the most recent
 * counting most: after one half-life, x's count is half of y's. */
static void test_trending_decays(void **state)
{
    struct fx *f = *state;
    f->p.half_life_ms = HOUR;
    start(f);
    click(f, "u1", "x", 0);
    click(f, "u2", "y", HOUR);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "nobody", &c);
    assert_int_equal(n, 2);
    const struct cooc_candidate *x = find(f, c, n, "x"), *y = find(f, c, n, "y");
    assert_non_null(x);
    assert_non_null(y);
    assert_float_equal(y->trend, 1.0f, 1e-6);
    assert_float_equal(x->trend, 0.5f, 1e-6);
    assert_int_equal(x->because, -1);
}

/* Before any click there is nothing to retrieve, and no crash. */
static void test_empty_state(void **state)
{
    struct fx *f = *state;
    start(f);
    const struct cooc_candidate *c;
    assert_int_equal(retrieve(f, "nobody", &c), 0);
}

/* A type weighted 0 is ignored: a VIEW pairs with nothing. */
static void test_zero_weight_ignored(void **state)
{
    struct fx *f = *state;
    f->p.weight[CLICK_VIEW] = 0;
    start(f);
    click_type(f, "u1", "a", 1, CLICK_VIEW);
    click(f, "u1", "b", 2);
    click(f, "u2", "b", 3);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u2", &c);
    const struct cooc_candidate *a = find(f, c, n, "a");
    assert_null(a); /* not a neighbour, not trending either */
}

/* Candidates beyond `candidates` are cut, best first; trending fill is
 * bounded by `trending`. */
static void test_candidate_limits(void **state)
{
    struct fx *f = *state;
    start(f);
    const char *items[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        click(f, "u1", items[i], i);
    click(f, "u2", "a", 10);
    struct cooc_read_params rp = read_params();
    rp.candidates = 2;
    rp.trending = 1;
    const struct cooc_candidate *c;
    size_t n = cooc_retrieve(f->st, &rp, S("u2"), f->scratch, &c);
    assert_int_equal(n, 3);
    /* the two best neighbours of a, in either order: e and b (one
     * interaction away) beat c and d (read backwards, or further back) */
    struct cooc_read_params all = rp;
    all.candidates = 300;
    const struct cooc_candidate *full;
    struct cooc_scratch *s2 = cooc_scratch_new();
    size_t m = cooc_retrieve(f->st, &all, S("u2"), s2, &full);
    float kept = c[0].cooc < c[1].cooc ? c[0].cooc : c[1].cooc;
    size_t better_than_kept = 0;
    for (size_t i = 0; i < m; i++)
        better_than_kept += full[i].cooc > kept;
    assert_true(better_than_kept <= 1);
    assert_true(c[0].cooc > 0 && c[1].cooc > 0 && c[0].row != c[1].row);
    assert_true(c[2].cooc == 0 && c[2].trend > 0);
    cooc_scratch_free(s2);
}

static void dump(struct fx *f, const char *user, char *out, size_t len)
{
    const struct cooc_candidate *c;
    size_t n = retrieve(f, user, &c), used = 0;
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%u %a %a %d;", c[i].row,
                                 (double)c[i].cooc, (double)c[i].trend, c[i].because);
}

/* Committed, closed and reopened, the state answers exactly as before. */
static void test_same_after_reopen(void **state)
{
    struct fx *f = *state;
    f->p.half_life_ms = HOUR;
    start(f);
    const char *items[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 40; i++)
        click(f, i % 3 ? "u1" : "u2", items[(i * 7) % 4], i * 60000);
    char before[4096], after[4096], err[256];
    dump(f, "u1", before, sizeof before);
    if (state_commit(f->st, err, sizeof err) || state_sync(f->st, err, sizeof err))
        fail_msg("commit: %s", err);
    eddy_op_cooccur.destroy(f->op);
    f->op = NULL;
    state_close(f->st);
    open_state(f);
    dump(f, "u1", after, sizeof after);
    assert_string_equal(before, after);
    assert_true(strlen(before) > 0);
}


/* Commits (the operator saves its sketch first, as the pipeline has it
 * do), closes, reopens and restarts the operator. */
static void restart(struct fx *f)
{
    char err[256];
    eddy_op_cooccur.checkpoint(f->op);
    if (state_commit(f->st, err, sizeof err) || state_sync(f->st, err, sizeof err))
        fail_msg("commit: %s", err);
    eddy_op_cooccur.destroy(f->op);
    f->op = NULL;
    state_close(f->st);
    open_state(f);
    start(f);
}

static void commit(struct fx *f)
{
    char err[256];
    eddy_op_cooccur.checkpoint(f->op);
    if (state_commit(f->st, err, sizeof err) || state_sync(f->st, err, sizeof err))
        fail_msg("commit: %s", err);
}

/* Keys committed in one of the state's column families. */
static size_t stored_keys(struct fx *f, const char *cf)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(state_db(f->st), ro, state_cf(f->st, cf));
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

/* With min.count 2, an item clicked once is neither paired nor trending;
 * once clicked twice it is. */
static void test_gate(void **state)
{
    struct fx *f = *state;
    f->p.min_count = 2;
    start(f);
    click(f, "u1", "a", 1); /* a 1: gated */
    click(f, "u1", "b", 2); /* b 1: gated, not paired with a */
    click(f, "u2", "a", 3); /* a 2: in, with no neighbours yet */
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u2", &c);
    assert_null(find(f, c, n, "b")); /* no pair, and not trending either */
    assert_non_null(find(f, c, n, "a"));
    assert_int_equal(n, 1);
    click(f, "u2", "b", 4); /* b 2: in, paired with a */
    click(f, "u3", "a", 5);
    n = retrieve(f, "u3", &c);
    const struct cooc_candidate *b = find(f, c, n, "b");
    assert_non_null(b);
    assert_true(b->cooc > 0);
    assert_int_equal(b->because, state_rows_find(items_of(f->st), S("a")));
}

/* The sketch's counts survive a commit and a reopen: an item clicked
 * twice before and once after is in at min.count 3. And a sketch of
 * another size is refused. */
static void test_sketch_survives_reopen(void **state)
{
    struct fx *f = *state;
    f->p.min_count = 3;
    start(f);
    click(f, "u1", "a", 1);
    click(f, "u2", "a", 2);
    const struct cooc_candidate *c;
    assert_int_equal(retrieve(f, "nobody", &c), 0);
    restart(f);
    click(f, "u3", "a", 3);
    size_t n = retrieve(f, "nobody", &c);
    assert_int_equal(n, 1);
    assert_non_null(find(f, c, n, "a"));

    char err[256];
    eddy_op_cooccur.destroy(f->op);
    f->op = NULL;
    struct cooc_params p = f->p;
    p.sketch_width = 2048;
    struct eddy_emit emit = {0};
    assert_null(eddy_op_cooccur.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "sketch"));
}

/* ttl 10 h: a history and a list untouched for longer are absent to
 * retrieval, ones touched within it stay; a sweep (every ttl/4 of event
 * time) then deletes the expired ones from the state. */
static void test_ttl_expiry(void **state)
{
    struct fx *f = *state;
    f->p.ttl_ms = 10 * HOUR;
    start(f);
    click(f, "u1", "a", 1);
    click(f, "u1", "b", 2);
    click(f, "u2", "a", 3); /* u2: a; a: b */
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u2", &c);
    assert_true(find(f, c, n, "b") && find(f, c, n, "b")->cooc > 0);
    click(f, "u4", "c", 5 * HOUR);
    click(f, "u4", "d", 5 * HOUR + 1);
    click(f, "u5", "c", 6 * HOUR);
    click(f, "u7", "a", 9 * HOUR);
    click(f, "u7", "e", 9 * HOUR + 1); /* a: b (stale), e */
    click(f, "u3", "z", 11 * HOUR); /* the clock: u1, u2 and b expired, a not */
    n = retrieve(f, "u2", &c);
    const struct cooc_candidate *b = find(f, c, n, "b");
    assert_true(!b || (b->cooc == 0 && b->because == -1)); /* trending only */
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].cooc == 0);
    n = retrieve(f, "u5", &c);
    const struct cooc_candidate *d = find(f, c, n, "d");
    assert_non_null(d);
    assert_true(d->cooc > 0);
    /* Not swept yet (the sweep at 10 h deletes what expired before 0 h). */
    commit(f);
    assert_int_equal(stored_keys(f, "cooccur_users"), 6);
    assert_int_equal(stored_keys(f, "cooccur_items"), 6);
    click(f, "u6", "y", 13 * HOUR); /* sweeps at 12.5 h: u1, u2 and b go */
    n = retrieve(f, "u2", &c);
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].cooc == 0);
    commit(f);
    assert_int_equal(stored_keys(f, "cooccur_users"), 5);  /* u3..u7 */
    assert_int_equal(stored_keys(f, "cooccur_items"), 6);  /* a, c, d, e, z, y */
    n = retrieve(f, "u7", &c);
    assert_true(find(f, c, n, "e") && find(f, c, n, "e")->cooc > 0);
    n = retrieve(f, "u5", &c);
    assert_true(find(f, c, n, "d") && find(f, c, n, "d")->cooc > 0);
}

/* An expired list not swept yet is started anew when touched, exactly as
 * a deleted one would be: a's old neighbour b is gone. */
static void test_ttl_writer_resets(void **state)
{
    struct fx *f = *state;
    f->p.ttl_ms = 10 * HOUR;
    start(f);
    click(f, "u1", "a", 1);
    click(f, "u1", "b", 2);                 /* a: b */
    click(f, "u2", "a", 10 * HOUR + 100);   /* expired (before 100 ms), not swept */
    click(f, "u2", "c", 10 * HOUR + 101);   /* a: c */
    click(f, "u3", "a", 10 * HOUR + 102);
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u3", &c);
    const struct cooc_candidate *b = find(f, c, n, "b"), *cc = find(f, c, n, "c");
    assert_non_null(cc);
    assert_true(cc->cooc > 0);
    assert_true(!b || b->cooc == 0);
}

/* A late click makes a list that is expired at once, inside a live
 * history: retrieval skips that list (x, which only a's list holds as a
 * neighbour, is no candidate). */
static void test_ttl_late_item(void **state)
{
    struct fx *f = *state;
    f->p.ttl_ms = 10 * HOUR;
    start(f);
    click(f, "u1", "x", 12 * HOUR);
    click(f, "u1", "a", 1 * HOUR); /* late: a's list (x) is of 1 h, before 2 h */
    const struct cooc_candidate *c;
    size_t n = retrieve(f, "u1", &c);
    const struct cooc_candidate *x = find(f, c, n, "x"), *a = find(f, c, n, "a");
    assert_true(!x || x->cooc == 0);
    assert_non_null(a); /* x's list is live and holds a */
    assert_true(a->cooc > 0);
}

static void run_mixed(struct fx *f, int restart_every, char *out, size_t len)
{
    f->p.ttl_ms = 3 * HOUR;
    f->p.min_count = 2;
    f->p.half_life_ms = HOUR;
    start(f);
    const char *users[] = {"u0", "u1", "u2", "u3", "u4"};
    const char *items[] = {"a", "b", "c", "d", "e", "f", "g"};
    for (int i = 0; i < 120; i++) {
        /* gaps of up to 4 h, some events late */
        int64_t t = (int64_t)i * 20 * 60000 + (i % 13 == 0 ? 4 * HOUR : 0) -
                    (i % 5 == 0 ? 30 * 60000 : 0);
        click(f, users[(i * 3) % 5], items[(i * i + 3 * i) % 7], t);
        if (restart_every && i % restart_every == restart_every - 1)
            restart(f);
    }
    size_t used = 0;
    for (int u = 0; u < 5 && used < len; u++) {
        dump(f, users[u], out + used, len - used);
        used = strlen(out);
    }
    commit(f);
    used += (size_t)snprintf(out + used, len - used, "| %zu %zu", stored_keys(f, "cooccur_users"),
                             stored_keys(f, "cooccur_items"));
}

/* The same clicks with and without restarts (commit, close, reopen)
 * give the same candidates and the same stored values. */
static void test_ttl_gate_deterministic(void **state)
{
    struct fx *f = *state;
    static char straight[16384], restarted[16384];
    run_mixed(f, 0, straight, sizeof straight);
    struct fx *g = calloc(1, sizeof *g);
    strcpy(g->dir, "/tmp/eddy-test-cooc-XXXXXX");
    assert_non_null(mkdtemp(g->dir));
    open_state(g);
    g->p = default_params();
    g->scratch = cooc_scratch_new();
    run_mixed(g, 7, restarted, sizeof restarted);
    void *gs = g;
    teardown(&gs);
    assert_string_equal(straight, restarted);
    assert_true(strlen(straight) > 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pairs_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_space_saving_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trending_decays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_weight_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sketch_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_writer_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_late_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_gate_deterministic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
