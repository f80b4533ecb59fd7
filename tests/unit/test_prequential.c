/* test_prequential.c: test-then-train metrics and the popularity baseline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backtest/prequential.h"

static struct eddy_str S(const char *s)
{
    return (struct eddy_str){s, strlen(s)};
}

static void observe_n(struct preq *p, const char *user, const char *item, int n)
{
    for (int i = 0; i < n; i++)
        preq_observe(p, S(user), S(item));
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
    preq_observe(p, S("u"), S("a"));
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
    preq_observe(p, S("u"), S("b"));
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
        preq_observe(p, S("x"), S(name[i]));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_is_new_per_user_and_item),
        cmocka_unit_test(test_scores_both_models),
        cmocka_unit_test(test_miss_and_unknown_user),
        cmocka_unit_test(test_windows_close_every_n_scored_events),
        cmocka_unit_test(test_popularity_order_matches_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
