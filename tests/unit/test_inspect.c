/* test_inspect.c: state/inspect.c over a state built with the state API:
 * exact export lines, get, stats, backup and the state comparison the
 * export exists for. */
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

#include "operators/budget.h"
#include "state/inspect.h"
#include "state/state.h"
#include "tests/unit/users_store.h"
#include "state/state_raw.h"

#define STR_(x) #x
#define XSTR(x) STR_(x)

#define DIM 2
#define S(s) eddy_str_c(s)

static const struct state_codec *const stores[] = {&users_store, &items_store,
                                                   &budget_campaigns, NULL};

struct fx {
    char dir[64];
    char a[96], b[96], c[96]; /* state directories, not created yet */
    char err[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/eddy-test-inspect-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->a, sizeof f->a, "%s/a", f->dir);
    snprintf(f->b, sizeof f->b, "%s/b", f->dir);
    snprintf(f->c, sizeof f->c, "%s/c", f->dir);
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

static struct eddy_state *open_at(struct fx *f, const char *dir, int dim, bool ro)
{
    struct state_options o = {.dir = dir, .dim = dim, .create_if_missing = !ro,
                              .read_only = ro, .stores = stores};
    struct eddy_state *st = NULL;
    f->err[0] = '\0';
    if (state_open(&o, &st, f->err, sizeof f->err))
        fail_msg("state_open %s: %s", dir, f->err);
    return st;
}

static void add_user(struct eddy_state *st, const char *id, float v0, float v1,
                     const uint32_t *seen, int n_seen)
{
    struct user_state *u = user_get(st, 0, S(id), true);
    u->vec[0] = v0;
    u->vec[1] = v1;
    u->last_refresh_ms = 1000;
    u->last_event_ms = 2000;
    u->n_events = 3;
    for (int i = 0; i < n_seen; i++)
        user_seen_add(u, seen[i]);
    user_dirty(st, u);
}

/* users u1, \xff (not UTF-8), u0; items i2 (row 0), i1 (row 1); campaign c1;
 * three offsets; a blob; model version 1. */
static void build(struct fx *f, const char *dir, float u1_v0)
{
    struct eddy_state *st = open_at(f, dir, DIM, false);
    const float i2[DIM] = {1.0f, 0.1f}, i1[DIM] = {-0.5f, 3.0f};
    const uint32_t seen[] = {1, 0};
    state_rows_add(items_of(st), S("i2"), i2);
    state_rows_add(items_of(st), S("i1"), i1);
    add_user(st, "u1", u1_v0, -1.25f, seen, 2);
    add_user(st, "\xff", NAN, -INFINITY, NULL, 0);
    add_user(st, "u0", 0.0f, 2.0f, seen, 1);
    struct state_store *campaigns = state_store(st, &budget_campaigns);
    struct campaign_state *c = state_get(campaigns, S("c1"), true);
    c->n_q = 3;
    c->q = calloc(3, sizeof *c->q);
    c->l.configured = 1;
    c->l.budget_micros = 5000000;
    c->l.spent_micros = 1234;
    c->l.bid_multiplier = 1.1;
    c->q[0] = 0.1;
    c->q[1] = -2.5;
    state_dirty(campaigns, c);
    state_offset_set(st, "clicks", 1, 11);
    state_offset_set(st, "clicks", 0, 10);
    state_offset_set(st, "ads", 2, 7);
    state_blob_set(st, "x", "\x01\xff", 2);
    state_model_version_bump(st);
    if (state_commit(st, f->err, sizeof f->err))
        fail_msg("state_commit: %s", f->err);
    state_close(st);
}

/* Calls fn with a memory stream; returns what it wrote (caller frees). */
static char *capture(int (*fn)(struct eddy_state *, FILE *, char *, size_t),
                     struct eddy_state *st, struct fx *f, int want_rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    int rc = fn(st, out, f->err, sizeof f->err);
    fclose(out);
    if (rc != want_rc)
        fail_msg("rc %d, expected %d: %s", rc, want_rc, f->err);
    return text;
}

static char *export_of(struct fx *f, const char *dir)
{
    struct eddy_state *st = open_at(f, dir, 0, true);
    char *text = capture(inspect_export_jsonl, st, f, 0);
    state_close(st);
    return text;
}

/* An empty market histogram: MARKET_BINS (161) zeros. */
#define ZEROS_10 "0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,"
#define ZEROS_160 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 \
                  ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10 ZEROS_10
#define ZEROS_161 ZEROS_160 "0.0"
_Static_assert(MARKET_BINS == 161, "ZEROS_161 is an empty market");
#define CAMPAIGN_LINE                                                                        \
    "{\"kind\":\"campaign\",\"id\":\"c1\",\"configured\":1,\"budget_micros\":5000000,"      \
    "\"period_ms\":0,\"base_bid_micros\":0,\"period_start_ms\":-9223372036854775808,"         \
    "\"slot\":-1,\"action\":0,\"q_state\":0,\"spent_micros\":1234,\"slot_spent_micros\":0,"   \
    "\"slot_clicks\":0,\"last_auction_won\":0,\"auctions\":0,\"wins\":0,\"clicks\":0,"       \
    "\"impressions\":0,\"conversions\":0,\"reported_cost_micros\":0,"                          \
    "\"priced_auctions\":0,\"price_sum_micros\":0,"                                          \
    "\"conversion_value\":0.0,\"bid_multiplier\":1.1000000000000001,\"pacing_rate\":1.0,"    \
    "\"decisions\":0,\"plan_multiplier\":1.0,\"market_state\":4,\"slot_auctions\":0,"      \
    "\"slot_price_sum_micros\":0,\"slot_plan_micros\":0.0,\"slot_cost_per_auction\":0.0,"    \
    "\"period_expected_micros\":0.0,\"auctions_per_slot\":0.0,\"slot_value\":0.0,"           \
    "\"market_auctions\":[" ZEROS_161 "],\"market_cost_micros\":[" ZEROS_161 "],"           \
    "\"market_total\":0.0,\"q\":[0.10000000000000001,-2.5,0.0]}\n"
#define U1_LINE                                                                              \
    "{\"kind\":\"user\",\"partition\":0,\"id\":\"u1\",\"last_refresh_ms\":1000,\"last_event_ms\":2000,"       \
    "\"n_events\":3,\"vector\":[0.5,-1.25],\"seen\":[\"i2\",\"i1\"]}\n"
#define I2_LINE "{\"kind\":\"item\",\"id\":\"i2\",\"row\":0,\"vector\":[1.0,0.10000000149011612]}\n"

/* Users, items, campaigns, offsets, meta; each by key bytes. */
static const char expected_export[] =
    "{\"kind\":\"user\",\"partition\":0,\"id\":\"u0\",\"last_refresh_ms\":1000,\"last_event_ms\":2000,"
    "\"n_events\":3,\"vector\":[0.0,2.0],\"seen\":[\"i1\"]}\n"
    U1_LINE
    "{\"kind\":\"user\",\"partition\":0,\"id\":{\"hex\":\"ff\"},\"last_refresh_ms\":1000,\"last_event_ms\":2000,"
    "\"n_events\":3,\"vector\":[\"NaN\",\"-Infinity\"],\"seen\":[]}\n"
    "{\"kind\":\"item\",\"id\":\"i1\",\"row\":1,\"vector\":[-0.5,3.0]}\n"
    I2_LINE
    CAMPAIGN_LINE
    "{\"kind\":\"offset\",\"topic\":\"ads\",\"partition\":2,\"next_offset\":7}\n"
    "{\"kind\":\"offset\",\"topic\":\"clicks\",\"partition\":0,\"next_offset\":10}\n"
    "{\"kind\":\"offset\",\"topic\":\"clicks\",\"partition\":1,\"next_offset\":11}\n"
    "{\"kind\":\"blob\",\"key\":\"x\",\"hex\":\"01ff\"}\n"
    "{\"kind\":\"meta\",\"key\":\"dim\",\"value\":2}\n"
    "{\"kind\":\"meta\",\"key\":\"format_version\",\"value\":" XSTR(STATE_FORMAT_VERSION) "}\n"
    "{\"kind\":\"meta\",\"key\":\"model_version\",\"value\":1}\n";

static void test_export_exact(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    char *text = export_of(f, f->a);
    assert_string_equal(text, expected_export);
    free(text);
}

/* Runs inspect_get into a string; returns what it wrote (caller frees). */
static char *get(struct fx *f, struct eddy_state *st, const char *cf, const char *id,
                 int want_rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    int rc = inspect_get(st, cf, S(id), out, f->err, sizeof f->err);
    fclose(out);
    if (rc != want_rc)
        fail_msg("get %s: rc %d, expected %d: %s", id, rc, want_rc, f->err);
    return text;
}

static void test_get(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    struct eddy_state *st = open_at(f, f->a, 0, true);
    const struct {
        const char *cf, *id, *line;
    } cases[] = {{"users", "u1", U1_LINE}, {"items", "i2", I2_LINE},
                 {"campaigns", "c1", CAMPAIGN_LINE}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = get(f, st, cases[i].cf, cases[i].id, 0);
        assert_string_equal(text, cases[i].line);
        free(text);
    }
    /* An id of another kind is absent, and nothing is written. */
    const char *absent[] = {"u1", "i2", "c9"};
    const char *cfs[] = {"items", "campaigns", "campaigns"};
    for (size_t i = 0; i < 3; i++) {
        char *text = get(f, st, cfs[i], absent[i], 1);
        assert_string_equal(text, "");
        free(text);
    }
    state_close(st);
}

static void test_kind_cf(void **state)
{
    (void)state;
    assert_string_equal(inspect_kind_cf("user", stores), "users");
    assert_null(inspect_kind_cf("user", NULL));
    assert_string_equal(inspect_kind_cf("item", stores), "items");
    assert_string_equal(inspect_kind_cf("campaign", stores), "campaigns");
    assert_null(inspect_kind_cf("campaign", NULL));
    assert_null(inspect_kind_cf("users", stores));
}

static void test_stats(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    struct eddy_state *st = open_at(f, f->a, 0, true);
    char *text = capture(inspect_stats, st, f, 0);
    state_close(st);
    const char *want[] = {
        "format version  " XSTR(STATE_FORMAT_VERSION) "\n", "dim             2\n", "model version   1\n",
        "last checkpoint unknown (not recorded in the state)\n",
        "keys            default 0, users 3, items 2, campaigns 1, offsets 3, meta 4\n",
        "offset          ads 2 next 7\noffset          clicks 0 next 10\n"
        "offset          clicks 1 next 11\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("stats lacks \"%s\":\n%s", want[i], text);
    assert_non_null(strstr(text, "disk bytes      "));
    free(text);
}

/* The backup (taken read-only, so from the WAL) opens and exports the same. */
static void test_backup(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    struct eddy_state *st = open_at(f, f->a, 0, true);
    assert_int_equal(inspect_backup(st, f->c, f->err, sizeof f->err), 0);
    assert_int_equal(inspect_backup(st, f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "already exists"));
    state_close(st);

    char *a = export_of(f, f->a), *c = export_of(f, f->c);
    assert_string_equal(a, c);
    free(a);
    free(c);
}

/* Equal states export byte-identically; one float ulp apart they do not. */
static void test_compare_states(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    build(f, f->b, 0.5f);
    build(f, f->c, nextafterf(0.5f, 1.0f));
    char *a = export_of(f, f->a), *b = export_of(f, f->b),
         *c = export_of(f, f->c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_non_null(strstr(c, "\"vector\":[0.50000005960464478,-1.25]"));
    free(a);
    free(b);
    free(c);
}

/* A corrupt value fails the export with a message naming dir and entry. */
static void test_corrupt_entry(void **state)
{
    struct fx *f = *state;
    build(f, f->a, 0.5f);
    static const char *const cfs[] = {"default", "users", "items", "campaigns",
                                      "offsets", "meta", NULL};
    struct state_raw *db = state_raw_open(f->a, cfs, f->err, sizeof f->err);
    assert_non_null(db);
    assert_int_equal(state_raw_put(db, "users", "u5", 2, "\x01\x02", 2, f->err, sizeof f->err), 0);
    state_raw_close(db);
    struct eddy_state *st = open_at(f, f->a, DIM, false);
    free(capture(inspect_export_jsonl, st, f, -1));
    assert_non_null(strstr(f->err, f->a));
    assert_non_null(strstr(f->err, "corrupt users/u5: value is 2 bytes"));
    state_close(st);
}

/* dim 0 takes the stored dim, and cannot create a state. */
static void test_dim_zero(void **state)
{
    struct fx *f = *state;
    struct eddy_state *st = NULL;
    struct state_options o = {.dir = f->a, .dim = 0, .create_if_missing = true,
                              .stores = stores};
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "creating a state needs a dim"));
    build(f, f->a, 0.5f);
    st = open_at(f, f->a, 0, true);
    assert_int_equal(state_dim(st), DIM);
    state_close(st);
    o.dim = DIM + 1;
    o.read_only = true;
    assert_int_equal(state_open(&o, &st, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "stored embedding dim is 2, configured dim is 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_export_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test(test_kind_cf),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dim_zero, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
