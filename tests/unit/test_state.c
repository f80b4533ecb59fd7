/* test_state.c: state/state.c round trips, refusals and cache structures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/state.h"
#include "tests/unit/users_store.h"
#include "state/state_raw.h"

#define DIM 8

/* A keyed store for these tests, shaped like the budget's campaigns: fixed
 * fields, then a table of doubles that the value owns. */
struct tally {
    int64_t n;     /* -1 when new */
    double x;
    uint32_t n_q;
    double *q;
};

#define TALLY_Q_AT 20 /* n, x, n_q */

static void tally_init(void *value, int dim)
{
    (void)dim;
    ((struct tally *)value)->n = -1;
}

static size_t tally_encoded_size(const void *value, int dim)
{
    (void)dim;
    return TALLY_Q_AT + (size_t)((const struct tally *)value)->n_q * 8;
}

static void tally_encode(const void *value, int dim, char *out)
{
    (void)dim;
    const struct tally *t = value;
    memcpy(out, &t->n, 8);
    memcpy(out + 8, &t->x, 8);
    memcpy(out + 16, &t->n_q, 4);
    if (t->n_q)
        memcpy(out + TALLY_Q_AT, t->q, (size_t)t->n_q * 8);
}

static bool tally_decode(const char *in, size_t len, int dim, void *value, char *why,
                         size_t whylen)
{
    (void)dim;
    struct tally *t = value;
    if (len < TALLY_Q_AT) {
        snprintf(why, whylen, "short");
        return false;
    }
    memcpy(&t->n, in, 8);
    memcpy(&t->x, in + 8, 8);
    memcpy(&t->n_q, in + 16, 4);
    t->q = calloc(t->n_q + 1, 8);
    if (len != TALLY_Q_AT + (size_t)t->n_q * 8) {
        snprintf(why, whylen, "table size");
        return false;
    }
    memcpy(t->q, in + TALLY_Q_AT, (size_t)t->n_q * 8);
    return true;
}

static size_t tally_heap_bytes(const void *value)
{
    return (size_t)((const struct tally *)value)->n_q * 8;
}

static void tally_free(void *value)
{
    free(((struct tally *)value)->q);
}

static const struct state_codec tallies = {
    .name = "tallies",
    .kind = "tally",
    .version = 1,
    .value_size = sizeof(struct tally),
    .init = tally_init,
    .encoded_size = tally_encoded_size,
    .encode = tally_encode,
    .decode = tally_decode,
    .heap_bytes = tally_heap_bytes,
    .free = tally_free,
};
static const struct state_codec *const stores[] = {&users_store, &items_store, &tallies, NULL};

/* Gives a tally a zeroed table of n doubles. */
static void tally_resize(struct tally *t, uint32_t n)
{
    free(t->q);
    t->n_q = n;
    t->q = calloc(n, 8);
}

struct fx {
    char dir[64];
    char err[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/eddy-test-state-XXXXXX");
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

static struct eddy_state *open_dim(struct fx *f, int dim, bool create, bool ro)
{
    struct state_options o = {.dir = f->dir, .dim = dim, .create_if_missing = create,
                              .read_only = ro, .stores = stores};
    struct eddy_state *st = NULL;
    f->err[0] = '\0';
    if (state_open(&o, &st, f->err, sizeof f->err) != 0)
        return NULL;
    return st;
}

static struct eddy_state *open_ok(struct fx *f)
{
    struct eddy_state *st = open_dim(f, DIM, true, false);
    if (!st)
        fail_msg("state_open: %s", f->err);
    return st;
}

static void commit_ok(struct fx *f, struct eddy_state *st)
{
    if (state_commit(st, f->err, sizeof f->err) != 0)
        fail_msg("state_commit: %s", f->err);
}

#define S(s) eddy_str_c(s)

static struct tally *tally(struct eddy_state *st, const char *id, bool create)
{
    return state_get(state_store(st, &tallies), S(id), create);
}

static struct state_stats stats_of(struct eddy_state *st)
{
    struct state_stats s;
    state_stats(st, &s);
    return s;
}

static void tally_dirty(struct eddy_state *st, struct tally *t)
{
    state_dirty(state_store(st, &tallies), t);
}

static void fill(float *v, float base)
{
    for (int j = 0; j < DIM; j++)
        v[j] = base + 0.125f * (float)j;
}

/* Writes one raw value into an eddy column family, bypassing state.c. */
static void raw_put(const char *dir, const char *cf, const char *key, size_t klen,
                    const char *val, size_t vlen)
{
    static const char *const names[] = {"default", "users", "items", "tallies",
                                        "offsets", "meta", NULL};
    char err[512];
    struct state_raw *db = state_raw_open(dir, names, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(state_raw_put(db, cf, key, klen, val, vlen, err, sizeof err), 0);
    state_raw_close(db);
}

/* ---- round trip ---------------------------------------------------------- */

static void populate(struct eddy_state *st)
{
    float v[DIM];
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "item%d", i);
        fill(v, (float)i);
        assert_int_equal(state_rows_add(items_of(st), S(id), v), i);
    }
    struct user_state *u = user_get(st, 0, S("alice"), true);
    assert_true(u->is_new);
    fill(u->vec, -1.5f);
    u->vec[3] = 1e-30f; /* a denormal-ish value must survive bit for bit */
    u->last_refresh_ms = 1000;
    u->last_event_ms = 2000;
    u->n_events = 7;
    user_seen_add(u, 2);
    user_seen_add(u, 0);
    user_dirty(st, u);
    u = user_get(st, 0, S("bob"), true); /* never refreshed */
    fill(u->vec, 3.0f);
    user_dirty(st, u);

    struct tally *t = tally(st, "camp", true);
    assert_int_equal(t->n, -1);
    t->n = 123456789;
    t->x = 2.5;
    tally_resize(t, 6);
    for (uint32_t i = 0; i < t->n_q; i++)
        t->q[i] = 0.5 * i - 1;
    tally_dirty(st, t);

    state_offset_set(st, "clicks", 0, 100);
    state_offset_set(st, "clicks", 3, 7);
    state_offset_set(st, "ads", 0, 5);
    state_model_version_bump(st);
    state_model_version_bump(st);
}

static void check_populated(struct eddy_state *st)
{
    float v[DIM];
    uint32_t n;
    state_rows_matrix(items_of(st), &n);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "item%d", i);
        assert_int_equal(state_rows_find(items_of(st), S(id)), i);
        struct eddy_str got = state_rows_id(items_of(st), (uint32_t)i);
        assert_int_equal(got.len, strlen(id));
        assert_memory_equal(got.ptr, id, got.len);
        fill(v, (float)i);
        assert_memory_equal(state_rows_vec(items_of(st), (uint32_t)i), v, sizeof v);
    }
    struct user_state *u = user_get(st, 0, S("alice"), false);
    assert_non_null(u);
    fill(v, -1.5f);
    v[3] = 1e-30f;
    assert_memory_equal(u->vec, v, sizeof v);
    assert_int_equal(u->last_refresh_ms, 1000);
    assert_int_equal(u->last_event_ms, 2000);
    assert_int_equal(u->n_events, 7);
    assert_int_equal(u->n_seen, 2);
    assert_int_equal(u->seen[0], 0);
    assert_int_equal(u->seen[1], 2);
    u = user_get(st, 0, S("bob"), false);
    assert_non_null(u);
    assert_true(u->last_refresh_ms == INT64_MIN);
    assert_int_equal(u->n_seen, 0);

    struct tally *t = tally(st, "camp", false);
    assert_non_null(t);
    assert_int_equal(t->n, 123456789);
    assert_true(t->x == 2.5);
    assert_int_equal(t->n_q, 6);
    for (uint32_t i = 0; i < 6; i++)
        assert_true(t->q[i] == 0.5 * i - 1);

    assert_int_equal(state_offset_get(st, "clicks", 0), 100);
    assert_int_equal(state_offset_get(st, "clicks", 3), 7);
    assert_int_equal(state_offset_get(st, "ads", 0), 5);
    assert_int_equal(state_offset_get(st, "ads", 1), STATE_NO_OFFSET);
    assert_int_equal(state_model_version(st), 2);
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    assert_int_equal(state_dim(st), DIM);
    populate(st);
    struct state_stats ss;
    state_stats(st, &ss);
    assert_true(ss.dirty > 0);
    commit_ok(f, st);
    state_stats(st, &ss);
    assert_int_equal(ss.dirty, 0);
    assert_int_equal(ss.rows, 3);
    check_populated(st); /* the cache itself */
    state_close(st);

    st = open_ok(f);
    check_populated(st);
    assert_false(user_get(st, 0, S("alice"), false)->is_new);
    assert_null(user_get(st, 0, S("nobody"), false));
    assert_null(tally(st, "nocamp", false));
    state_stats(st, &ss);
    assert_int_equal(state_store_count(users_of(st)), 2);
    assert_int_equal(ss.model_version, 2);
    state_close(st);
}

static void test_uncommitted_lost(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    populate(st);
    commit_ok(f, st);
    struct user_state *u = user_get(st, 0, S("alice"), true);
    u->vec[0] = 42.0f;
    user_seen_add(u, 1);
    user_dirty(st, u);
    user_dirty(st, user_get(st, 0, S("carol"), true));
    float v[DIM] = {0};
    state_rows_add(items_of(st), S("item9"), v);
    state_rows_vec(items_of(st), 0)[0] = 42.0f;
    state_rows_dirty(items_of(st), 0);
    struct tally *t = tally(st, "camp", true);
    t->n = 1;
    tally_dirty(st, t);
    state_offset_set(st, "clicks", 0, 999);
    state_model_version_bump(st);
    state_close(st);

    st = open_ok(f);
    check_populated(st);
    assert_null(user_get(st, 0, S("carol"), false));
    assert_int_equal(state_rows_find(items_of(st), S("item9")), -1);
    state_close(st);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_dim_mismatch(void **state)
{
    struct fx *f = *state;
    state_close(open_ok(f));
    assert_null(open_dim(f, DIM * 2, true, false));
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "dim"));
    /* and the database was left alone */
    state_close(open_ok(f));
}

static void test_missing_dir(void **state)
{
    struct fx *f = *state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/none", f->dir);
    struct state_options o = {.dir = sub, .dim = DIM};
    struct eddy_state *st = NULL;
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), -1);
    assert_null(st);
    assert_non_null(strstr(f->err, sub));
    o.read_only = true;
    o.create_if_missing = true;
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), -1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_garbage_current(void **state)
{
    struct fx *f = *state;
    write_file(f->dir, "CURRENT", "junk\n");
    assert_null(open_dim(f, DIM, true, false));
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "RocksDB"));
}

static void test_not_a_db(void **state)
{
    struct fx *f = *state;
    write_file(f->dir, "notes.txt", "not a database\n");
    assert_null(open_dim(f, DIM, true, false));
    assert_non_null(strstr(f->err, f->dir));
}

static void test_foreign_rocksdb(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct state_raw *db = state_raw_open(f->dir, NULL, err, sizeof err);
    assert_non_null(db);
    state_raw_close(db);
    assert_null(open_dim(f, DIM, true, false));
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "not an eddy"));
}

static void test_format_version(void **state)
{
    struct fx *f = *state;
    state_close(open_ok(f));
    char v[9] = {1, 99};
    raw_put(f->dir, "meta", "format_version", 14, v, sizeof v);
    assert_null(open_dim(f, DIM, true, false));
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "format version 99"));
}

static void test_corrupt_item(void **state)
{
    struct fx *f = *state;
    state_close(open_ok(f));
    char v[5] = {1, 0, 0, 0, 0}; /* a row but no vector */
    raw_put(f->dir, "items", "short", 5, v, sizeof v);
    assert_null(open_dim(f, DIM, true, false));
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "corrupt items/short"));
}

/* A user is loaded lazily: the error surfaces at the next commit, and the
 * commit refuses, so nothing derived from the bad read is persisted. */
static void test_corrupt_user(void **state)
{
    struct fx *f = *state;
    state_close(open_ok(f));
    char v[40] = {1};
    raw_put(f->dir, "users", "\0\0\0\0mallory", 11, v, sizeof v); /* partition 0 */
    char v2[9] = {7};
    raw_put(f->dir, "offsets", "t\0\0\0\0\0", 6, v2, sizeof v2);
    struct eddy_state *st = open_ok(f);
    assert_null(user_get(st, 0, S("mallory"), false));
    state_offset_get(st, "t", 0);
    user_dirty(st, user_get(st, 0, S("fine"), true));
    assert_int_equal(state_commit(st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, f->dir));
    assert_non_null(strstr(f->err, "corrupt users/mallory"));
    state_close(st);
    st = open_ok(f);
    assert_null(user_get(st, 0, S("fine"), false));
    state_close(st);
}

static void test_read_only(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    populate(st);
    commit_ok(f, st);
    state_close(st);
    st = open_dim(f, DIM, false, true);
    assert_non_null(st);
    check_populated(st);
    state_model_version_bump(st);
    assert_int_equal(state_commit(st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "read-only"));
    state_close(st);
}

/* ---- structures --------------------------------------------------------- */

static void test_seen_set(void **state)
{
    (void)state;
    struct user_state u = {0};
    const uint32_t in[] = {5, 1, 3, 1, 5, 9, 0, 3};
    const bool added[] = {true, true, true, false, false, true, true, false};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(user_seen_add(&u, in[i]), added[i]);
    const uint32_t want[] = {0, 1, 3, 5, 9};
    assert_int_equal(u.n_seen, 5);
    assert_memory_equal(u.seen, want, sizeof want);
    assert_true(user_has_seen(&u, 9));
    assert_false(user_has_seen(&u, 2));
    assert_false(user_has_seen(&u, 10));
    /* growth, inserting in descending order */
    for (uint32_t r = 200; r > 100; r--)
        assert_true(user_seen_add(&u, r));
    assert_int_equal(u.n_seen, 105);
    for (uint32_t i = 1; i < u.n_seen; i++)
        assert_true(u.seen[i - 1] < u.seen[i]);
    free(u.seen);
}

static void test_matrix_growth(void **state)
{
    struct fx *f = *state;
    const uint32_t n = 3000; /* several doublings past the initial capacity */
    struct eddy_state *st = open_ok(f);
    float v[DIM];
    char id[16];
    for (uint32_t r = 0; r < n; r++) {
        snprintf(id, sizeof id, "i%u", r);
        fill(v, (float)r);
        assert_int_equal(state_rows_add(items_of(st), S(id), v), r);
    }
    assert_int_equal(state_rows_add(items_of(st), S("i7"), NULL), 7); /* existing: same row */
    commit_ok(f, st);
    state_close(st);
    st = open_ok(f);
    uint32_t rows;
    const float *m = state_rows_matrix(items_of(st), &rows);
    assert_int_equal(rows, n);
    for (uint32_t r = 0; r < n; r++) {
        snprintf(id, sizeof id, "i%u", r);
        fill(v, (float)r);
        assert_memory_equal(m + (size_t)r * DIM, v, sizeof v);
        assert_int_equal(state_rows_find(items_of(st), S(id)), r);
    }
    assert_null(state_rows_vec(items_of(st), n));
    state_close(st);
}

static void collect(void *value, void *ctx)
{
    struct eddy_str id = state_key(value);
    strncat(ctx, id.ptr, id.len);
    strcat(ctx, ",");
}

static void test_keyed_store(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    const char *ids[] = {"c3", "c1", "c20"};
    for (int i = 0; i < 3; i++) {
        struct tally *t = tally(st, ids[i], true);
        tally_resize(t, 4);
        t->q[3] = i + 1;
        tally_dirty(st, t);
    }
    commit_ok(f, st);
    state_close(st);

    st = open_ok(f);
    /* cached first, then the rest from disk: order is by id regardless */
    assert_true(tally(st, "c3", true)->q[3] == 1);
    tally(st, "c0", true);
    char seen[64] = "";
    state_foreach(state_store(st, &tallies), collect, seen);
    assert_string_equal(seen, "c0,c1,c20,c3,");
    /* a value that grew is counted again when marked dirty */
    uint64_t before = stats_of(st).cache_bytes;
    struct tally *t = tally(st, "c1", false);
    tally_resize(t, 8);
    tally_dirty(st, t);
    assert_int_equal(stats_of(st).cache_bytes, before + 4 * 8);
    commit_ok(f, st);
    state_close(st);
    st = open_ok(f);
    assert_int_equal(tally(st, "c1", false)->n_q, 8);
    assert_null(state_store(st, &(struct state_codec){.name = "other"}));
    state_close(st);
}

/* A deleted value is absent at once (to state_find() and state_foreach()),
 * made anew by init() if asked for again, and gone from RocksDB and the
 * cache after the commit. */
static void test_keyed_delete(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    struct state_store *s = state_store(st, &tallies);
    const char *ids[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct tally *t = tally(st, ids[i], true);
        t->n = i;
        tally_resize(t, 4);
        tally_dirty(st, t);
    }
    commit_ok(f, st);
    uint64_t cached = stats_of(st).cached;
    state_delete(s, tally(st, "a", false));
    state_delete(s, tally(st, "b", false));
    assert_null(state_find(s, S("a")));
    char seen[64] = "";
    state_foreach(s, collect, seen);
    assert_string_equal(seen, "c,");
    struct tally *b = tally(st, "b", true); /* anew */
    assert_int_equal(b->n, -1);
    assert_int_equal(b->n_q, 0);
    b->n = 7;
    tally_dirty(st, b);
    commit_ok(f, st);
    assert_int_equal(stats_of(st).cached, cached - 1);
    assert_null(state_find(s, S("a")));
    state_close(st);

    st = open_ok(f);
    s = state_store(st, &tallies);
    assert_null(state_find(s, S("a")));
    assert_int_equal(tally(st, "b", false)->n, 7);
    assert_int_equal(tally(st, "c", false)->n, 2);
    seen[0] = 0;
    state_foreach(s, collect, seen);
    assert_string_equal(seen, "b,c,");
    state_close(st);
}

static bool n_is_even(const void *value, void *ctx)
{
    (void)ctx;
    return ((const struct tally *)value)->n % 2 == 0;
}

/* A sweep deletes what its predicate picks, cached or only stored, and
 * caches none of the values it keeps: after a reopen (nothing cached) it
 * leaves only the tombstones of the two it deleted in the cache. */
static void test_keyed_sweep(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    const char *ids[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        struct tally *t = tally(st, ids[i], true);
        t->n = i; /* a, c, e even */
        tally_resize(t, 4);
        tally_dirty(st, t);
    }
    commit_ok(f, st);
    state_close(st);
    st = open_ok(f);
    struct state_store *s = state_store(st, &tallies);
    tally(st, "e", false); /* one cached, the rest only stored */
    assert_int_equal(stats_of(st).cached, 1);
    assert_int_equal(state_sweep(s, n_is_even, NULL), 3);
    assert_int_equal(stats_of(st).cached, 3); /* e, and the tombstones of a and c */
    assert_null(state_find(s, S("a")));
    assert_null(state_find(s, S("e")));
    assert_int_equal(state_sweep(s, n_is_even, NULL), 0);
    commit_ok(f, st);
    state_close(st);
    st = open_ok(f);
    s = state_store(st, &tallies);
    char seen[64] = "";
    state_foreach(s, collect, seen);
    assert_string_equal(seen, "b,d,");
    state_close(st);
}

/* A stored value of another version is refused, naming it; so is a state
 * whose stores are not the ones it was made with. */
static void test_keyed_version(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    tally_dirty(st, tally(st, "t", true));
    commit_ok(f, st);
    state_close(st);

    struct state_codec v2 = tallies;
    v2.version = 2;
    const struct state_codec *const v2_stores[] = {&users_store, &items_store, &v2, NULL};
    struct state_options o = {.dir = f->dir, .dim = DIM, .stores = v2_stores};
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), 0);
    assert_null(state_get(state_store(st, &v2), S("t"), false));
    assert_int_equal(state_commit(st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "corrupt tallies/t: value version 1, this eddy reads "
                                   "tally values of version 2"));
    state_close(st);

    const struct state_codec *const no_tallies[] = {&users_store, &items_store, NULL};
    o.stores = no_tallies;
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "unexpected column family 'tallies'"));
}

/* ---- bounded cache ------------------------------------------------------- */

#define CACHE_BUDGET (48 * 1024) /* users get 7/16: about 70 at DIM 8 */
#define N_CACHE_USERS 10000

static struct eddy_state *open_budget(struct fx *f)
{
    struct state_options o = {.dir = f->dir, .dim = DIM, .create_if_missing = true,
                              .cache_bytes = CACHE_BUDGET, .stores = stores};
    struct eddy_state *st = NULL;
    if (state_open(&o, &st, f->err, sizeof f->err) != 0)
        fail_msg("state_open: %s", f->err);
    return st;
}

static struct eddy_str user_id(char *buf, int i)
{
    snprintf(buf, 16, "u%d", i);
    return S(buf);
}

/* Arbitrary bit patterns (NaNs and denormals included): compared bitwise. */
static void user_bits(float *v, int i)
{
    for (int j = 0; j < DIM; j++) {
        uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)j * 40503u;
        x ^= x >> 13;
        memcpy(&v[j], &x, sizeof x);
    }
}

static void check_user(struct eddy_state *st, int i)
{
    char id[16];
    float v[DIM];
    struct user_state *u = user_get(st, 0, user_id(id, i), false);
    assert_non_null(u);
    user_bits(v, i);
    assert_memory_equal(u->vec, v, sizeof v);
    assert_int_equal(u->n_events, i);
    assert_int_equal(u->n_seen, 1);
    assert_int_equal(u->seen[0], i % 3);
}

/* Writes users u0.. with a commit every 1000, checking on the way that the
 * dirty users of each commit all stay, over budget, and that a commit
 * brings the cache back under it. */
static void write_users(struct fx *f, struct eddy_state *st)
{
    struct user_state *held[1000];
    char id[16];
    for (int i = 0; i < N_CACHE_USERS; i++) {
        struct user_state *u = user_get(st, 0, user_id(id, i), true);
        assert_true(u->is_new);
        user_bits(u->vec, i);
        u->n_events = (uint64_t)i;
        user_seen_add(u, (uint32_t)(i % 3));
        user_dirty(st, u);
        held[i % 1000] = u;
        if (i % 1000 < 999)
            continue;
        /* 1000 dirty users are far over budget: none went, pointers hold */
        assert_true(stats_of(st).cache_bytes > CACHE_BUDGET);
        for (int k = 0; k < 1000; k++) {
            float v[DIM];
            user_bits(v, i - 999 + k);
            assert_memory_equal(held[k]->vec, v, sizeof v);
        }
        commit_ok(f, st);
        assert_true(stats_of(st).cache_bytes <= CACHE_BUDGET);
    }
}

static void test_cache_bounded(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_budget(f);
    populate(st); /* items 0..2, for the seen rows */
    commit_ok(f, st);
    write_users(f, st);
    struct state_stats s = stats_of(st);
    assert_true(s.cache_evictions > 0);
    assert_true(state_store_count(users_of(st)) < N_CACHE_USERS / 10);
    assert_true(s.checkpoint_bytes > 1000 * DIM * sizeof(float));
    assert_true(s.checkpoint_unix_ms > 0);
    /* read back through the small cache, some hits, mostly loads */
    for (int i = 0; i < N_CACHE_USERS; i++) {
        check_user(st, i);
        if (i % 500 == 499) {
            commit_ok(f, st); /* nothing dirty: only lets the cache shrink */
            assert_true(stats_of(st).cache_bytes <= CACHE_BUDGET);
        }
    }
    assert_true(stats_of(st).cache_misses > N_CACHE_USERS);
    state_close(st);

    st = open_budget(f);
    assert_true(stats_of(st).restore_us > 0);
    assert_int_equal(state_store_count(users_of(st)), 0); /* users load lazily */
    for (int i = N_CACHE_USERS - 1; i >= 0; i--)
        check_user(st, i);
    check_populated(st);
    state_close(st);
}

/* Users made dirty where they sit on the CLOCK ring, between clean ones,
 * stay cached and changed (their pointers too) while the clean ones around
 * them are evicted, and their change is what the commit writes. */
static void test_cache_dirty_survives(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_budget(f);
    populate(st);
    write_users(f, st);
    char id[16];
    struct user_state *held[60];
    for (int i = 0; i < 60; i++) /* about 18 kB: all stay cached */
        user_get(st, 0, user_id(id, i), false);
    commit_ok(f, st); /* nothing dirty: all 60 are now evictable */
    uint64_t hits = stats_of(st).cache_hits;
    for (int i = 0; i < 60; i += 2) {
        held[i] = user_get(st, 0, user_id(id, i), false);
        held[i]->n_events = 424242;
        user_dirty(st, held[i]);
    }
    assert_int_equal(stats_of(st).cache_hits, hits + 30);
    for (int i = 1001; i < 2000; i += 2) /* the odd ones of 0..59 must go */
        user_get(st, 0, user_id(id, i), false);
    hits = stats_of(st).cache_hits;
    for (int i = 0; i < 60; i += 2) {
        assert_int_equal(held[i]->n_events, 424242);
        assert_ptr_equal(user_get(st, 0, user_id(id, i), false), held[i]);
    }
    assert_int_equal(stats_of(st).cache_hits, hits + 30);
    uint64_t misses = stats_of(st).cache_misses;
    check_user(st, 1); /* evicted, read back */
    assert_int_equal(stats_of(st).cache_misses, misses + 1);
    commit_ok(f, st);
    state_close(st);

    st = open_budget(f);
    for (int i = 0; i < 60; i++)
        assert_int_equal(user_get(st, 0, user_id(id, i), false)->n_events,
                         i % 2 ? (uint64_t)i : 424242);
    state_close(st);
}

/* ---- incremental commits (state_commit_begin/step) ----------------------- */

#define N_SNAP_USERS 400

/* Sets users u0.. to n_events = base + i, item0's row to base, the tally's
 * x to base and the offset to base: one version of everything. */
static void write_version(struct eddy_state *st, int base)
{
    char id[16];
    for (int i = 0; i < N_SNAP_USERS; i++) {
        struct user_state *u = user_get(st, 0, user_id(id, i), true);
        user_bits(u->vec, i + base);
        u->n_events = (uint64_t)(base + i);
        user_dirty(st, u);
    }
    fill(state_rows_vec(items_of(st), 0), (float)base);
    state_rows_dirty(items_of(st), 0);
    struct tally *t = tally(st, "camp", true);
    t->x = base;
    tally_dirty(st, t);
    state_offset_set(st, "clicks", 0, base);
}

static void check_version(struct eddy_state *st, int base)
{
    char id[16];
    float v[DIM];
    for (int i = 0; i < N_SNAP_USERS; i++) {
        struct user_state *u = user_get(st, 0, user_id(id, i), false);
        assert_non_null(u);
        assert_int_equal(u->n_events, base + i);
        user_bits(v, i + base);
        assert_memory_equal(u->vec, v, sizeof v);
    }
    fill(v, (float)base);
    assert_memory_equal(state_rows_vec(items_of(st), 0), v, sizeof v);
    assert_true(tally(st, "camp", false)->x == base);
    assert_int_equal(state_offset_get(st, "clicks", 0), base);
}

/* A state with version 1000 committed and a commit of version 2000 begun. */
static struct eddy_state *begin_version_2000(struct fx *f)
{
    struct eddy_state *st = open_budget(f);
    populate(st);
    write_version(st, 1000);
    commit_ok(f, st);
    write_version(st, 2000);
    assert_int_equal(state_commit_begin(st, f->err, sizeof f->err), 0);
    return st;
}

/* A commit begun, then encoded in slices while everything it holds changes
 * again (before and after its slice reached it) and new values push the
 * cache far over its budget, writes the values as they were when it began:
 * no later change reaches it, and nothing is evicted until it is written. */
static void test_incremental_commit_is_a_snapshot(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = begin_version_2000(f);
    assert_int_equal(state_commit_step(st, 1, f->err, sizeof f->err), 1); /* a slice */
    uint64_t evictions = stats_of(st).cache_evictions;
    char id[16];
    for (int i = N_SNAP_USERS; i < 3 * N_SNAP_USERS; i++) /* far over the budget */
        user_get(st, 0, user_id(id, i), true);
    write_version(st, 3000); /* touches the encoded and the frozen alike */
    int rc;
    while ((rc = state_commit_step(st, 50, f->err, sizeof f->err)) == 1)
        ;
    assert_int_equal(rc, 0);
    assert_int_equal(stats_of(st).cache_evictions, evictions);
    check_version(st, 3000); /* the live values are the newest */
    assert_int_equal(state_sync(st, f->err, sizeof f->err), 0);
    state_close(st); /* version 3000 is never committed */

    st = open_budget(f);
    check_version(st, 2000);
    state_close(st);
}

/* A begun commit that never finished is dropped by state_close(), and the
 * state stays at the commit before; state_commit() finishes an open one
 * before its own, so both are written. */
static void test_incremental_commit_unfinished(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = begin_version_2000(f);
    state_close(st);
    st = open_budget(f);
    check_version(st, 1000);

    write_version(st, 2000);
    assert_int_equal(state_commit_begin(st, f->err, sizeof f->err), 0);
    write_version(st, 3000);
    commit_ok(f, st);
    assert_int_equal(state_commit_step(st, 50, f->err, sizeof f->err), 0); /* none open */
    state_close(st);
    st = open_budget(f);
    check_version(st, 3000);
    state_close(st);
}

/* A sliced commit's delete holds, while it is encoded and written and
 * after, even for a value made anew meanwhile; the tombstone leaves the
 * cache once written. */
static void test_incremental_commit_deletes(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_budget(f);
    populate(st);
    commit_ok(f, st);
    struct state_store *s = state_store(st, &tallies);
    state_delete(s, tally(st, "camp", false));
    struct user_state *u = user_get(st, 0, S("alice"), false);
    u->n_events = 99;
    user_dirty(st, u);
    uint64_t cached = stats_of(st).cached;
    assert_int_equal(state_commit_begin(st, f->err, sizeof f->err), 0);
    assert_null(state_find(s, S("camp")));
    while (state_commit_step(st, 50, f->err, sizeof f->err) == 1)
        ;
    assert_null(state_find(s, S("camp")));
    assert_int_equal(state_sync(st, f->err, sizeof f->err), 0);
    assert_int_equal(stats_of(st).cached, cached - 1);
    assert_null(state_find(s, S("camp")));
    tally_dirty(st, tally(st, "new", true));
    assert_int_equal(state_commit_begin(st, f->err, sizeof f->err), 0);
    struct tally *t = tally(st, "new", true); /* deleted after the snapshot */
    state_delete(s, t);
    assert_int_equal(state_sync(st, f->err, sizeof f->err), 0);
    state_close(st);
    st = open_budget(f);
    s = state_store(st, &tallies);
    assert_null(state_find(s, S("camp")));
    assert_non_null(state_find(s, S("new")));
    assert_int_equal(user_get(st, 0, S("alice"), false)->n_events, 99);
    state_close(st);
}

/* Tally "c%03d" of number i has q[1] == i. */
static void check_q(void *value, void *ctx)
{
    const struct tally *t = value;
    struct eddy_str key = state_key(t);
    int *n = ctx;
    char id[16];
    snprintf(id, sizeof id, "c%03d", *n);
    assert_int_equal(key.len, strlen(id));
    assert_memory_equal(key.ptr, id, key.len);
    assert_true(t->q[1] == *n);
    (*n)++;
}

/* foreach visits evicted values too, reading them back from RocksDB. */
static void test_cache_keyed(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_budget(f);
    char id[16];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "c%03d", i);
        struct tally *t = tally(st, id, true);
        tally_resize(t, 64); /* ~700 B */
        t->q[1] = i;
        tally_dirty(st, t);
    }
    commit_ok(f, st);
    struct state_stats s = stats_of(st);
    assert_true(state_store_count(state_store(st, &tallies)) < 200);
    assert_true(s.cache_evictions > 0);
    for (int round = 0; round < 2; round++) {
        int n = 0;
        state_foreach(state_store(st, &tallies), check_q, &n);
        assert_int_equal(n, 200);
        commit_ok(f, st); /* evicts again: the next round reads them back */
        assert_true(stats_of(st).cache_bytes <= CACHE_BUDGET);
    }
    state_close(st);
}

static void set_vec(struct user_state *u, float base)
{
    for (int i = 0; i < DIM; i++)
        u->vec[i] = base + (float)i / 3.0f;
}

/* Users are keyed by partition: the same id in two partitions is two
 * entries. Dropping one partition's cache keeps the other's; dropped
 * entries come back from RocksDB unchanged; state_find_any() finds a user
 * whatever its partition, cached or not. */
/* Commits are written behind, on another thread: a read of RocksDB right
 * after one (the entry evicted in between) must still see it, every time. */
static void test_write_behind_reads_see_commits(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_dim(f, DIM, true, false);
    for (int round = 0; round < 50; round++) {
        struct user_state *u = user_get(st, 3, eddy_str_c("w"), true);
        set_vec(u, (float)round);
        u->n_events = (uint64_t)round;
        user_dirty(st, u);
        commit_ok(f, st);
        state_drop_partition(st, 3); /* the next read goes to RocksDB */
        u = user_get(st, 3, eddy_str_c("w"), false);
        assert_non_null(u);
        assert_int_equal(u->n_events, round);
        assert_true(u->vec[1] == (float)round + 1.0f / 3.0f);
    }
    char err[256];
    assert_int_equal(state_sync(st, err, sizeof err), 0);
    state_close(st);
}

static void test_partitions(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = open_dim(f, DIM, true, false);
    struct user_state *a = user_get(st, 0, eddy_str_c("u1"), true);
    struct user_state *b = user_get(st, 7, eddy_str_c("u1"), true);
    assert_ptr_not_equal(a, b);
    set_vec(a, 0.0f);
    set_vec(b, 100.0f);
    user_dirty(st, a);
    user_dirty(st, b);
    user_dirty(st, user_get(st, 7, eddy_str_c("only7"), true));
    commit_ok(f, st);

    state_drop_partition(st, 7);
    struct state_stats ss;
    state_stats(st, &ss);
    assert_int_equal(state_store_count(users_of(st)), 1); /* partition 0's u1 */

    b = user_get(st, 7, eddy_str_c("u1"), false);
    assert_non_null(b);
    assert_true(b->vec[1] == 100.0f + 1.0f / 3.0f);
    assert_true(user_get(st, 0, eddy_str_c("u1"), false)->vec[1] == 1.0f / 3.0f);
    state_drop_partition(st, 7); /* handed out this epoch: stays */
    state_stats(st, &ss);
    assert_int_equal(state_store_count(users_of(st)), 2);

    commit_ok(f, st);
    state_drop_partition(st, 7);
    struct user_state *found = state_find_any(users_of(st), eddy_str_c("only7")); /* stored */
    assert_non_null(found);
    assert_ptr_equal(found, user_get(st, 7, eddy_str_c("only7"), false));
    const struct user_state *lowest = state_find_any(users_of(st), eddy_str_c("u1"));
    assert_true(lowest->vec[1] == 1.0f / 3.0f);
    assert_null(state_find_any(users_of(st), eddy_str_c("nobody")));
    state_close(st);
}

/* The users' index across growth and removals from the middle of probe
 * runs: after half the users (two of four partitions) are dropped, the kept
 * half is all still found in memory, the dropped half all comes back from
 * RocksDB unchanged, and then everything is found in memory, once. */
static void lookup_all(struct eddy_state *st, int users, int parity, uint64_t hits,
                       uint64_t misses)
{
    struct state_stats before = stats_of(st), after;
    char id[16];
    for (int i = 0; i < users; i++) {
        if (parity >= 0 && i % 2 != parity)
            continue;
        struct user_state *u = user_get(st, i % 4, user_id(id, i), false);
        assert_non_null(u);
        assert_true(u->vec[1] == (float)i + 1.0f / 3.0f);
    }
    after = stats_of(st);
    assert_int_equal(after.cache_hits - before.cache_hits, hits);
    assert_int_equal(after.cache_misses - before.cache_misses, misses);
}

static void test_index_survives_removals(void **state)
{
    enum { USERS = 5000 };
    struct fx *f = *state;
    struct eddy_state *st = open_ok(f);
    char id[16];
    for (int i = 0; i < USERS; i++) {
        struct user_state *u = user_get(st, i % 4, user_id(id, i), true);
        set_vec(u, (float)i);
        user_dirty(st, u);
    }
    commit_ok(f, st);
    state_drop_partition(st, 1);
    state_drop_partition(st, 3);
    assert_int_equal(state_store_count(users_of(st)), USERS / 2);
    lookup_all(st, USERS, 0, USERS / 2, 0);  /* partitions 0 and 2: kept */
    lookup_all(st, USERS, 1, 0, USERS / 2);  /* 1 and 3: read back */
    lookup_all(st, USERS, -1, USERS, 0);
    assert_int_equal(state_store_count(users_of(st)), USERS);
    state_close(st);
}

/* ---- a full disk ---------------------------------------------------------
 *
 * The state on a small tmpfs, filled up: the failed write must come back
 * from state_commit()/state_sync() naming the directory and the OS error,
 * state_close() must return, and once there is room the state must open
 * with every commit that succeeded and nothing of the one that failed.
 * RocksDB 7.8.3 used to abort here (an assertion on its info LOG).
 *
 * Mounting needs CAP_SYS_ADMIN: a forked child makes a mount namespace of
 * its own (so the tmpfs vanishes with it, whatever happens) and re-executes
 * this binary there. Re-executing, not carrying on in the fork, because the
 * parent's RocksDB thread pools do not survive a fork and a flush scheduled
 * on them would never run. Without the right to mount, the test skips. */

#define FULL_DISK_ARG "--full-disk-child"
#define FULL_DISK_SKIP 77
#define FULL_DISK_BASE 100 /* the offset of the first commit */

/* In the child cmocka is not in charge: a failed check prints and exits. */
#define CHILD_CHECK(cond, ...)                                   \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "full disk, line %d: ", __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
            _exit(1);                                            \
        }                                                        \
    } while (0)

static struct eddy_state *child_open(const char *dir, size_t cache_bytes, bool create)
{
    struct state_options o = {.dir = dir, .dim = DIM, .create_if_missing = create,
                              .cache_bytes = cache_bytes, .stores = stores};
    struct eddy_state *st = NULL;
    char err[512];
    CHILD_CHECK(state_open(&o, &st, err, sizeof err) == 0, "state_open: %s", err);
    return st;
}

/* Users u0..u(n-1) with their vectors and offset BASE + n in one commit. */
static int child_commit(struct eddy_state *st, int from, int n, char *err, size_t errlen)
{
    char id[16];
    for (int i = from; i < from + n; i++) {
        struct user_state *u = user_get(st, 0, user_id(id, i), true);
        set_vec(u, (float)i);
        u->n_events = (uint64_t)i;
        user_dirty(st, u);
    }
    state_offset_set(st, "clicks", 0, FULL_DISK_BASE + from + n);
    return state_commit(st, err, errlen);
}

/* Writes zeros to path until the filesystem has no room left. */
static void child_fill(const char *path)
{
    static const char zeros[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHILD_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
    for (size_t chunk = sizeof zeros; chunk >= 4096; chunk /= 16)
        while (write(fd, zeros, chunk) > 0)
            ;
    CHILD_CHECK(errno == ENOSPC, "filling %s: %s", path, strerror(errno));
    close(fd);
}

static int full_disk_child(const char *mnt, size_t cache_bytes)
{
    char dir[256], filler[256], err[512];
    snprintf(dir, sizeof dir, "%s/state", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);

    struct eddy_state *st = child_open(dir, cache_bytes, true);
    int users = 10;
    CHILD_CHECK(child_commit(st, 0, users, err, sizeof err) == 0, "first commit: %s", err);
    CHILD_CHECK(state_sync(st, err, sizeof err) == 0, "first sync: %s", err);

    child_fill(filler);
    int rc = 0;
    for (int round = 0; round < 2000 && rc == 0; round++) {
        rc = child_commit(st, users, 200, err, sizeof err);
        if (rc == 0)
            users += 200;
    }
    if (rc == 0)
        rc = state_sync(st, err, sizeof err);
    CHILD_CHECK(rc != 0, "%d users written to a full disk without an error", users);
    CHILD_CHECK(strstr(err, dir) && strstr(err, "No space left on device"),
                "the error names neither the directory nor the OS error: %s", err);
    /* sticky: nothing is written after a failed commit */
    CHILD_CHECK(state_sync(st, err, sizeof err) != 0, "state_sync after the failure: 0");
    CHILD_CHECK(child_commit(st, users, 1, err, sizeof err) != 0, "commit after the failure: 0");
    state_close(st);

    CHILD_CHECK(unlink(filler) == 0, "%s: %s", filler, strerror(errno));
    st = child_open(dir, cache_bytes, false);
    /* the offset says which commits made it; those users are all there, with
     * their values, and none of a commit that did not */
    int64_t next = state_offset_get(st, "clicks", 0);
    int stored = (int)(next - FULL_DISK_BASE);
    CHILD_CHECK(stored >= 10 && stored <= users, "stored offset %lld, %d users committed",
                (long long)next, users);
    char id[16];
    for (int i = 0; i < stored; i++) {
        struct user_state *u = user_get(st, 0, user_id(id, i), false);
        CHILD_CHECK(u && u->n_events == (uint64_t)i && u->vec[1] == (float)i + 1.0f / 3.0f,
                    "user %d of %d is missing or wrong", i, stored);
    }
    CHILD_CHECK(!user_get(st, 0, user_id(id, stored), false),
                "user %d is there, beyond the stored offset", stored);
    /* and it takes writes again */
    CHILD_CHECK(child_commit(st, stored, 10, err, sizeof err) == 0 &&
                    state_sync(st, err, sizeof err) == 0,
                "commit after freeing space: %s", err);
    state_close(st);
    return 0;
}

/* In the forked child: a mount namespace of our own, a small tmpfs on dir,
 * then this binary again to run full_disk_child() in a fresh process. */
static void full_disk_exec(const char *dir, size_t cache_bytes)
{
    char cache[32];
    snprintf(cache, sizeof cache, "%zu", cache_bytes);
    alarm(120); /* kept across exec: a hang ends in SIGALRM, not a stuck test run */
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mount("tmpfs", dir, "tmpfs", 0, "size=8m")) {
        fprintf(stderr, "cannot mount a small tmpfs to fill (%s; needs CAP_SYS_ADMIN): "
                        "full-disk test skipped\n", strerror(errno));
        _exit(FULL_DISK_SKIP);
    }
    execl("/proc/self/exe", "test_state", FULL_DISK_ARG, dir, cache, (char *)NULL);
    fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
    _exit(2);
}

static void full_disk(void **state, size_t cache_bytes)
{
    struct fx *f = *state;
    fflush(NULL); /* the child must not write our buffered output again */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        full_disk_exec(f->dir, cache_bytes);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("full disk, cache %zu bytes: killed by signal %d (%s)", cache_bytes,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (WEXITSTATUS(status) == FULL_DISK_SKIP)
        skip();
    if (WEXITSTATUS(status) != 0)
        fail_msg("full disk, cache %zu bytes: exit %d (its message is above)", cache_bytes,
                 WEXITSTATUS(status));
}

/* No budget (RocksDB's 64 MB memtables: the WAL append fails), eddy's
 * default of 1 GiB (the same, with a memory budget), and 16 MiB (1 MiB
 * memtables: a memtable flush fails first, a background error). */
static void test_full_disk_unbudgeted(void **state) { full_disk(state, 0); }
static void test_full_disk_default_budget(void **state) { full_disk(state, (size_t)1 << 30); }
static void test_full_disk_small_budget(void **state) { full_disk(state, (size_t)16 << 20); }

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], FULL_DISK_ARG))
        return full_disk_child(argv[2], (size_t)strtoull(argv[3], NULL, 10));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_behind_reads_see_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncommitted_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dim_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_current, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_rocksdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test(test_seen_set),
        cmocka_unit_test_setup_teardown(test_matrix_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_dirty_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_commit_is_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_commit_unfinished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incremental_commit_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_survives_removals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_unbudgeted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_default_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_small_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
