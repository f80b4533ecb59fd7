/* test_prequential.c: test-then-train metrics and the popularity baseline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backtest/knn.h"
#include "backtest/prequential.h"

static struct eddy_str S(const char *s)
{
    return (struct eddy_str){s, strlen(s)};
}

static void observe_n(struct preq *p, const char *user, const char *item, int n)
{
    for (int i = 0; i < n; i++)
        preq_observe(p, S(user), S(item), true);
}

static void test_bad_arguments(void **unused)
{
    (void)unused;
    assert_null(preq_new(0, 10));
    assert_null(preq_new(10, 0));
}

static void test_is_new_per_user_and_item(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(3, 10);
    assert_true(preq_is_new(p, S("u"), S("a")));
    preq_observe(p, S("u"), S("a"), true);
    assert_false(preq_is_new(p, S("u"), S("a")));
    assert_true(preq_is_new(p, S("u"), S("b")));
    assert_true(preq_is_new(p, S("v"), S("a")));
    preq_free(p);
}

/* a x3, b x2, c x1; u has seen a. u's new event on b: eddy ranks it 2nd,
 * popularity (a excluded) ranks it 1st. */
static void test_scores_both_models(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(2, 100);
    observe_n(p, "x", "a", 2);
    observe_n(p, "u", "a", 1);
    observe_n(p, "x", "b", 2);
    observe_n(p, "x", "c", 1);
    const struct eddy_str eddy[] = {S("c"), S("b")};
    preq_score(p, 1000, S("u"), S("b"), eddy, 2);
    preq_observe(p, S("u"), S("b"), true);
    struct preq_summary s;
    preq_summary(p, &s);
    assert_int_equal(s.eddy.events, 1);
    assert_true(s.eddy.hits == 1.0);
    assert_true(fabs(s.eddy.ndcg - 1.0 / log2(3.0)) < 1e-12);
    assert_true(s.eddy.rr == 0.5);
    assert_true(s.pop.hits == 1.0 && s.pop.ndcg == 1.0 && s.pop.rr == 1.0);
    assert_int_equal(s.catalog_items, 3);
    assert_int_equal(s.users, 2);
    assert_int_equal(s.observed, 7);
    assert_int_equal(s.eddy_items_recommended, 2);   /* c, b */
    assert_int_equal(s.pop_items_recommended, 2);    /* b, c */
    preq_free(p);
}

static void test_miss_and_unknown_user(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(1, 100);
    observe_n(p, "x", "a", 2);
    observe_n(p, "x", "b", 1);
    preq_score(p, 5, S("new"), S("b"), NULL, 0); /* eddy: nothing; pop: [a] */
    struct preq_summary s;
    preq_summary(p, &s);
    assert_int_equal(s.eddy.events, 1);
    assert_true(s.eddy.hits == 0 && s.eddy.ndcg == 0 && s.eddy.rr == 0);
    assert_true(s.pop.hits == 0);
    assert_int_equal(s.eddy_items_recommended, 0);
    preq_free(p);
}

static void test_windows_close_every_n_scored_events(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(1, 2);
    observe_n(p, "x", "a", 1);
    const struct eddy_str hit[] = {S("a")};
    for (int i = 0; i < 5; i++) {
        char user[16];
        snprintf(user, sizeof user, "u%d", i);
        preq_score(p, 100 * (i + 1), S(user), S("a"), i % 2 ? NULL : hit, i % 2 ? 0 : 1);
    }
    struct preq_summary s;
    preq_summary(p, &s);
    assert_int_equal(s.n_windows, 3);
    assert_int_equal(s.windows[0].first_ms, 100);
    assert_int_equal(s.windows[0].last_ms, 200);
    assert_int_equal(s.windows[0].eddy.events, 2);
    assert_true(s.windows[0].eddy.hits == 1.0);
    assert_true(s.windows[0].pop.hits == 2.0);
    assert_int_equal(s.windows[2].first_ms, 500);
    assert_int_equal(s.windows[2].eddy.events, 1);
    assert_int_equal(s.eddy.events, 5);
    assert_true(s.eddy.hits == 3.0);
    preq_free(p);
}

/* Against a brute-force count: for a user who has seen nothing, an item
 * whose count is above the K-th largest is always in the baseline's list,
 * one below it never is. */
static void test_popularity_order_matches_counts(void **unused)
{
    (void)unused;
    enum { ITEMS = 60, K = 7, EVENTS = 20000 };
    struct preq *p = preq_new(K, 1000000);
    uint64_t count[ITEMS] = {0}, x = 12345;
    char name[ITEMS][16];
    for (int i = 0; i < ITEMS; i++)
        snprintf(name[i], sizeof name[i], "i%d", i);
    for (int e = 0; e < EVENTS; e++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int i = (int)((x >> 33) % ITEMS);
        i = i * i / ITEMS; /* skewed */
        count[i]++;
        preq_observe(p, S("x"), S(name[i]), true);
        if (e % 997)
            continue;
        uint64_t sorted[ITEMS];
        memcpy(sorted, count, sizeof sorted);
        for (int a = 0; a < ITEMS; a++)          /* descending selection sort */
            for (int b = a + 1; b < ITEMS; b++)
                if (sorted[b] > sorted[a]) {
                    uint64_t t = sorted[a]; sorted[a] = sorted[b]; sorted[b] = t;
                }
        uint64_t kth = sorted[K - 1];
        for (int i2 = 0; i2 < ITEMS; i2++) {
            if (!count[i2] || count[i2] == kth)
                continue;
            struct preq_summary before, after;
            preq_summary(p, &before);
            preq_score(p, e, S("fresh"), S(name[i2]), NULL, 0);
            preq_summary(p, &after);
            assert_int_equal(after.pop.hits - before.pop.hits, count[i2] > kth ? 1 : 0);
        }
    }
    preq_free(p);
}

/* ---- item-kNN ------------------------------------------------------------ */

static bool skip_none(void *ctx, uint32_t item)
{
    (void)ctx, (void)item;
    return false;
}

/* ctx: a bitmask of the items to skip (items < 32). */
static bool skip_mask(void *ctx, uint32_t item)
{
    return item < 32 && (*(const uint32_t *)ctx >> item & 1);
}

#define LIST(...) ((const uint32_t[]){__VA_ARGS__}), sizeof((const uint32_t[]){__VA_ARGS__}) / 4

static void assert_list(struct knn *k, uint32_t u, size_t n, uint32_t skip, const uint32_t *want,
                        size_t n_want)
{
    uint32_t got[64];
    size_t len = knn_top(k, u, n, skip ? skip_mask : skip_none, &skip, got);
    assert_int_equal(len, n_want);
    for (size_t r = 0; r < len; r++)
        assert_int_equal(got[r], want[r]);
}

/* Users A=0, B=1, C=2; by hand after the positives below:
 *   n = {2, 2, 2, 1}, c01 = 1, c02 = 2, c12 = 1, c13 = 1.
 * A's history [2, 1, 0]: score(0) = c20/2 + c10/2 = 1.5,
 * score(2) = c12/2 + c02/2 = 1.5, score(1) = 0.5 + 0.5 = 1,
 * score(3) = c13/sqrt(2 * 1) = 0.707. */
static void test_knn_exact_lists(void **unused)
{
    (void)unused;
    struct knn *k = knn_new();
    const uint32_t ev[][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 2}, {0, 2}, {2, 1}};
    for (size_t e = 0; e < sizeof ev / sizeof *ev; e++)
        assert_true(knn_observe(k, ev[e][0], ev[e][1]));
    /* C's history [1]: items 0 and 2 both score 1/2, the lower index first */
    assert_list(k, 2, 10, 0, LIST(0, 2));
    assert_list(k, 2, 1, 0, LIST(0));
    /* B's history [2, 0]: 0, 1 and 2 all score exactly 1 */
    assert_list(k, 1, 10, 0, LIST(0, 1, 2));
    /* ... and B has seen 0 and 2 */
    assert_list(k, 1, 10, 1u << 0 | 1u << 2, LIST(1));
    assert_true(knn_observe(k, 2, 3));
    assert_list(k, 0, 10, 0, LIST(0, 2, 1, 3));
    assert_list(k, 0, 3, 0, LIST(0, 2, 1));
    assert_list(k, 0, 10, 1u << 0 | 1u << 1 | 1u << 2, LIST(3));
    /* unknown user, or one whose items co-occur with nothing: empty */
    assert_list(k, 7, 10, 0, NULL, 0);
    assert_int_equal(knn_positives(k, 0), 3);
    assert_int_equal(knn_positives(k, 2), 2);
    assert_int_equal(knn_positives(k, 7), 0);
    knn_free(k);
}

/* The history holds the last KNN_HISTORY positives: the 31st pushes out the
 * first, which then never co-occurs with what comes next. */
static void test_knn_history_is_bounded(void **unused)
{
    (void)unused;
    struct knn *k = knn_new();
    for (uint32_t i = 100; i <= 100 + KNN_HISTORY; i++)   /* 31 items */
        knn_observe(k, 0, i);
    knn_observe(k, 0, 200);   /* co-occurs with 101..130 */
    knn_observe(k, 1, 200);
    uint32_t got[64];
    size_t len = knn_top(k, 1, 64, skip_none, NULL, got);
    assert_int_equal(len, KNN_HISTORY);
    for (size_t r = 0; r < len; r++)
        assert_true(got[r] >= 101 && got[r] <= 130);   /* all equal: by index */
    assert_int_equal(got[0], 101);
    assert_int_equal(got[KNN_HISTORY - 1], 130);
    knn_free(k);
}

/* A repeat positive moves its item to the front of the history instead of
 * taking a second place: after 1..30, 1 again and 31, the item pushed out
 * is 2, the oldest, so the next positive (32) co-occurs with 1 and 3..31. */
static void test_knn_repeat_refreshes_history(void **unused)
{
    (void)unused;
    struct knn *k = knn_new();
    for (uint32_t i = 1; i <= KNN_HISTORY; i++)
        knn_observe(k, 0, i);
    knn_observe(k, 0, 1);
    knn_observe(k, 0, 31);
    knn_observe(k, 0, 32);
    knn_observe(k, 1, 32);
    uint32_t got[64];
    size_t len = knn_top(k, 1, 64, skip_none, NULL, got);
    assert_int_equal(len, KNN_HISTORY);
    /* c[32][j] = 1 for each; n[32] = 2, n[1] = 2 (the repeat), n[j] = 1 for
     * the others: 3..31 score 1/sqrt(2) (by index), then 1 scores 1/2 */
    for (size_t r = 0; r + 1 < len; r++)
        assert_int_equal(got[r], r + 3);
    assert_int_equal(got[len - 1], 1);
    knn_free(k);
}

/* Through the prequential: item-kNN excludes what the user interacted with
 * (VIEWs too), learns only from positives, and each scored event lands in
 * the bucket of its user's prior positives. */
static void test_knn_in_prequential(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(2, 100);
    preq_observe(p, S("A"), S("a"), true);
    preq_observe(p, S("A"), S("b"), true);
    preq_observe(p, S("B"), S("a"), true);
    preq_observe(p, S("B"), S("c"), false);   /* a VIEW: c co-occurs with nothing */
    preq_score(p, 1, S("B"), S("b"), NULL, 0); /* kNN [b]: hit at 1; bucket 1-5 */
    preq_observe(p, S("B"), S("b"), true);
    preq_observe(p, S("C"), S("c"), false);
    preq_score(p, 2, S("C"), S("a"), NULL, 0); /* no positives: kNN []; bucket 0 */
    preq_score(p, 3, S("D"), S("a"), NULL, 0); /* unknown: kNN []; bucket 0 */
    preq_observe(p, S("A"), S("c"), true);
    const struct eddy_str hit[] = {S("a")};
    preq_score(p, 4, S("B"), S("c"), hit, 1); /* B has seen c: never in a list */
    struct preq_summary s;
    preq_summary(p, &s);
    assert_int_equal(s.knn.events, 4);
    assert_true(s.knn.hits == 1 && s.knn.rr == 1 && s.knn.ndcg == 1);
    assert_int_equal(s.knn_items_recommended, 1);   /* b; for B at t=4: nothing new */
    assert_int_equal(s.knn_history, KNN_HISTORY);
    assert_int_equal(s.buckets[0].eddy.events, 2);
    assert_true(s.buckets[0].knn.hits == 0 && s.buckets[0].pop.hits == 2);
    assert_int_equal(s.buckets[1].eddy.events, 2);
    assert_true(s.buckets[1].knn.hits == 1 && s.buckets[1].pop.hits == 1);
    assert_true(s.buckets[1].eddy.hits == 0);
    assert_int_equal(s.buckets[2].eddy.events + s.buckets[3].eddy.events, 0);
    assert_int_equal(s.windows[0].knn.events, 4);
    assert_true(s.windows[0].knn.hits == 1);
    preq_free(p);
}

/* Bucket bounds: 0 | 1-5 | 6-20 | > 20 prior positives. */
static void test_history_buckets(void **unused)
{
    (void)unused;
    struct preq *p = preq_new(1, 1000);
    for (int n = 0; n <= 22; n++) {
        char item[16];
        snprintf(item, sizeof item, "i%d", n);
        preq_score(p, n, S("u"), S(item), NULL, 0);
        preq_observe(p, S("u"), S(item), true);
        preq_observe(p, S("u"), S("viewed"), false);   /* not a positive */
    }
    struct preq_summary s;
    preq_summary(p, &s);
    const uint64_t want[PREQ_BUCKETS] = {1, 5, 15, 2};
    const uint64_t lo[PREQ_BUCKETS] = {0, 1, 6, 21}, hi[PREQ_BUCKETS] = {0, 5, 20, UINT64_MAX};
    for (size_t b = 0; b < PREQ_BUCKETS; b++) {
        assert_int_equal(s.buckets[b].eddy.events, want[b]);
        assert_int_equal(s.buckets[b].knn.events, want[b]);
        assert_int_equal(s.buckets[b].min_positives, lo[b]);
        assert_true(s.buckets[b].max_positives == hi[b]);
    }
    assert_string_equal(preq_bucket_label(0), "0");
    assert_string_equal(preq_bucket_label(1), "1-5");
    assert_string_equal(preq_bucket_label(2), "6-20");
    assert_string_equal(preq_bucket_label(3), ">20");
    assert_null(preq_bucket_label(4));
    preq_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_is_new_per_user_and_item),
        cmocka_unit_test(test_scores_both_models),
        cmocka_unit_test(test_miss_and_unknown_user),
        cmocka_unit_test(test_windows_close_every_n_scored_events),
        cmocka_unit_test(test_popularity_order_matches_counts),
        cmocka_unit_test(test_knn_exact_lists),
        cmocka_unit_test(test_knn_history_is_bounded),
        cmocka_unit_test(test_knn_repeat_refreshes_history),
        cmocka_unit_test(test_knn_in_prequential),
        cmocka_unit_test(test_history_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
