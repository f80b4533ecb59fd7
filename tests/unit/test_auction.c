/* test_auction.c: the auction simulator and the lin / oracle baselines.
 *
 * Hand fixtures use pCTRs that are exact in binary (0.125, 0.25, ...) and a
 * given mean_pctr of 0.25, so bids are exact and ties (bid == price) are
 * deterministic. The generated log checks the budget invariants at scale. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "backtest/auction.h"

/* t = 1000 * (i + 1). With b0 = 100 and mean_pctr = 0.25, bid = 400 * pctr:
 *   i  pctr   price  bid  click  pctr/price
 *   0  0.5    100    200  1      0.005
 *   1  0.25   100    100  0      0.0025   (bid == price: wins)
 *   2  0.125  80     50   1      0.0015625 (loses on price)
 *   3  1.0    300    400  1      1/300
 *   4  0.5    150    200  1      1/300    (ties with 3: 3 goes first)
 *   5  0.25   60     100  0      0.004167
 * mean price 790 / 6 = 131.67. */
static const struct auction fixture[6] = {
    {1000, 0.5, 100, true},  {2000, 0.25, 100, false}, {3000, 0.125, 80, true},
    {4000, 1.0, 300, true},  {5000, 0.5, 150, true},   {6000, 0.25, 60, false},
};

static void test_means(void **state)
{
    (void)state;
    const struct auction a[4] = {
        {0, 0.125, 100, false}, {1, 0.25, 200, false}, {2, 0.375, 300, false}, {3, 0.25, 400, true}};
    double mp = -1, mc = -1;
    auction_means(a, 4, &mp, &mc);
    assert_true(mp == 250.0);
    assert_true(mc == 0.25);
    auction_means(NULL, 0, &mp, &mc);
    assert_true(mp == 0 && mc == 0);
}

static void test_episode_budget(void **state)
{
    (void)state;
    assert_int_equal(auction_episode_budget(0.5, 4, 250.0), 500);
    assert_int_equal(auction_episode_budget(0.25, 2, 3.0), 2); /* 1.5 rounds away from 0 */
    assert_int_equal(auction_episode_budget(0, 1000, 250.0), 0);
    assert_int_equal(auction_episode_budget(1.0 / 16, 1000, 1e6), 62500000);
}

/* One episode of 6, budget 500: wins 0 (100), 1 (100, a tie), loses 2 on
 * price, wins 3 (300, exactly what is left), then 4 and 5 no longer fit. */
static void test_lin_wins(void **state)
{
    (void)state;
    struct bid_result r;
    lin_simulate(fixture, 6, 6, 500, 100, 0.25, 2, &r);
    assert_int_equal(r.auctions, 6);
    assert_int_equal(r.wins, 3);
    assert_int_equal(r.clicks, 2);
    assert_int_equal(r.spend_micros, 500);
    assert_int_equal(r.budget_micros, 500);
    assert_int_equal(r.episodes, 1);
    assert_int_equal(r.max_overspend_micros, 0);
    /* Left after auction 3 is 0 < 131.67: ran out there. */
    assert_int_equal(r.episodes_exhausted, 1);
    assert_int_equal(r.first_exhausted_ms, 4000);
    /* Slot = index * 2 / 6: 0..2 -> 0, 3..5 -> 1. */
    assert_int_equal(r.slot_spend_micros[0], 200);
    assert_int_equal(r.slot_spend_micros[1], 300);
    assert_int_equal(r.slot_spend_micros[2], 0);
    assert_int_equal(r.slots, 2);
}

/* No pCTR information (mean_pctr 0): bid 0 wins only free auctions. */
static void test_lin_zero_mean_pctr(void **state)
{
    (void)state;
    const struct auction a[3] = {{1, 0.5, 10, true}, {2, 0.5, 0, true}, {3, 0.5, 5, false}};
    struct bid_result r;
    lin_simulate(a, 3, 3, 100, 1000, 0, 1, &r);
    assert_int_equal(r.wins, 1);
    assert_int_equal(r.clicks, 1);
    assert_int_equal(r.spend_micros, 0);
}

/* Two episodes of 3, budget 250 each:
 *   A (0, 1, 2): wins 0 and 1 (left 50 < 131.67 at t 2000), loses 2;
 *   B (3, 4, 5): 3 does not fit (300 > 250), wins 4 (left 100: ran out at
 *   t 5000) and 5 (left 40). */
static void test_episode_rollover(void **state)
{
    (void)state;
    struct bid_result r;
    lin_simulate(fixture, 6, 3, 250, 100, 0.25, 3, &r);
    assert_int_equal(r.episodes, 2);
    assert_int_equal(r.budget_micros, 2 * 250);
    assert_int_equal(r.wins, 4);
    assert_int_equal(r.clicks, 2);
    assert_int_equal(r.spend_micros, 200 + 210);
    assert_int_equal(r.max_overspend_micros, -40); /* max(200 - 250, 210 - 250) */
    assert_int_equal(r.episodes_exhausted, 2);
    assert_int_equal(r.first_exhausted_ms, 2000);
    /* Slot = index in episode (B: 3 -> 0, 4 -> 1, 5 -> 2), summed over
     * both episodes. */
    assert_int_equal(r.slot_spend_micros[0], 100);
    assert_int_equal(r.slot_spend_micros[1], 100 + 150);
    assert_int_equal(r.slot_spend_micros[2], 60);
    assert_int_equal(r.in_episode, 0); /* closed by finish */
}

/* Greedy by pCTR / price over one episode of 6, budget 500: takes 0 (100),
 * 5 (60), 3 (300, before 4 on the tie) = 460; 4, 1 and 2 no longer fit. */
static void test_oracle_fixture(void **state)
{
    (void)state;
    struct bid_result r;
    oracle_simulate(fixture, 6, 6, 500, 2, &r);
    assert_int_equal(r.wins, 3);
    assert_int_equal(r.spend_micros, 460);
    assert_int_equal(r.clicks, 2);
    assert_int_equal(r.max_overspend_micros, -40);
    /* Replayed in time order: 0 (left 400), 3 (left 100 < 131.67), 5. */
    assert_int_equal(r.first_exhausted_ms, 4000);
    assert_int_equal(r.episodes_exhausted, 1);
    assert_int_equal(r.slot_spend_micros[0], 100);
    assert_int_equal(r.slot_spend_micros[1], 300 + 60);
}

/* Free auctions come first whatever their pCTR; a partial last episode. */
static void test_oracle_free_first(void **state)
{
    (void)state;
    const struct auction a[5] = {
        {1, 0.5, 50, true}, {2, 0.0, 0, true}, {3, 0.25, 40, false}, /* episode 1 */
        {4, 0.5, 50, true}, {5, 0.125, 10, true},                    /* episode 2, partial */
    };
    struct bid_result r;
    /* Budget 45: episode 1 takes the free 1, then 2 (40); 0 (50) misfits.
     * Episode 2: 4 (0.0125) first takes 10, then 3 (0.01, 50) misfits. */
    oracle_simulate(a, 5, 3, 45, 1, &r);
    assert_int_equal(r.episodes, 2);
    assert_int_equal(r.budget_micros, 90);
    assert_int_equal(r.wins, 3);
    assert_int_equal(r.spend_micros, 50);
    assert_int_equal(r.clicks, 2);
    assert_int_equal(r.max_overspend_micros, -5);
}

static void test_finish_idempotent(void **state)
{
    (void)state;
    struct bid_result r;
    bid_result_init(&r, 3, 100, 50.0, 500); /* slots clamp to the max */
    assert_int_equal(r.slots, AUCTION_MAX_SLOTS);
    bid_result_auction(&r, 10);
    bid_result_book(&r, 30);
    bid_result_click(&r);
    assert_true(r.first_exhausted_ms < 0);
    bid_result_finish(&r);
    struct bid_result once = r;
    bid_result_finish(&r);
    assert_memory_equal(&once, &r, sizeof r);
    assert_int_equal(r.episodes, 1);
    assert_int_equal(r.budget_micros, 100);
    assert_int_equal(r.max_overspend_micros, -70);
    assert_int_equal(r.first_exhausted_ms, -1);
    assert_int_equal(r.wins, 1);
    assert_int_equal(r.clicks, 1);
    assert_int_equal(r.slot_spend_micros[0], 30);
}

/* Incremental booking: exhaustion marks once per episode, at the time of
 * the auction whose booking made it run out. */
static void test_incremental_exhaustion(void **state)
{
    (void)state;
    struct bid_result r;
    bid_result_init(&r, 2, 100, 40.0, 0); /* slots clamp to 1 */
    assert_int_equal(r.slots, 1);
    bid_result_auction(&r, 7);
    bid_result_book(&r, 50); /* left 50 >= 40 */
    bid_result_auction(&r, 8);
    bid_result_book(&r, 20); /* left 30 < 40: ran out at 8 */
    bid_result_auction(&r, 9); /* new episode */
    bid_result_book(&r, 70); /* left 30: ran out at 9 */
    bid_result_finish(&r);
    assert_int_equal(r.episodes, 2);
    assert_int_equal(r.episodes_exhausted, 2);
    assert_int_equal(r.first_exhausted_ms, 8);
    assert_int_equal(r.max_overspend_micros, -30);
    assert_int_equal(r.spend_micros, 140);
}

static void test_empty_log(void **state)
{
    (void)state;
    struct bid_result r;
    lin_simulate(NULL, 0, 100, 500, 1000, 0.1, 4, &r);
    assert_int_equal(r.auctions, 0);
    assert_int_equal(r.episodes, 0);
    assert_int_equal(r.budget_micros, 0);
    assert_int_equal(r.max_overspend_micros, 0);
    assert_int_equal(r.first_exhausted_ms, -1);
    oracle_simulate(NULL, 0, 100, 500, 4, &r);
    assert_int_equal(r.wins, 0);
    assert_int_equal(r.episodes, 0);
    assert_int_equal(r.max_overspend_micros, 0);
    assert_true(lin_tune(NULL, 0, 100, 0.5, 4) == 0);
}

/* A generated log: 10000 auctions, episodes of 1000. Prices 1..1e6 micros,
 * pCTR up to 0.1, clicks drawn with probability pCTR * 4. */
#define BIG_N 10000
#define BIG_EPISODE 1000
#define BIG_SLOTS 8

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static int big_setup(void **state)
{
    struct auction *a = calloc(BIG_N, sizeof *a);
    if (!a)
        return -1;
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < BIG_N; i++) {
        a[i].t_ms = 1700000000000 + 100 * (int64_t)i;
        a[i].pctr = 0.1 * rng_unit(&s);
        a[i].price_micros = 1 + (int64_t)(rng_next(&s) % 1000000);
        a[i].click = rng_unit(&s) < 4 * a[i].pctr;
    }
    *state = a;
    return 0;
}

static int big_teardown(void **state)
{
    free(*state);
    return 0;
}

static const double big_c0[] = {1.0 / 32, 1.0 / 8, 1.0 / 2, 1.0, 2.0};

static void check_budget(const struct bid_result *r, int64_t episode_budget)
{
    assert_int_equal(r->auctions, BIG_N);
    assert_int_equal(r->episodes, BIG_N / BIG_EPISODE);
    assert_int_equal(r->budget_micros, (int64_t)(BIG_N / BIG_EPISODE) * episode_budget);
    assert_true(r->spend_micros <= r->budget_micros);
    assert_true(r->max_overspend_micros <= 0);
    int64_t sum = 0;
    for (int k = 0; k < AUCTION_MAX_SLOTS; k++)
        sum += r->slot_spend_micros[k];
    assert_int_equal(sum, r->spend_micros);
}

static void test_never_overspends(void **state)
{
    const struct auction *a = *state;
    double mp, mc;
    auction_means(a, BIG_N, &mp, &mc);
    for (size_t i = 0; i < sizeof big_c0 / sizeof *big_c0; i++) {
        int64_t budget = auction_episode_budget(big_c0[i], BIG_EPISODE, mp);
        struct bid_result lin, big, oracle;
        double b0 = lin_tune(a, BIG_N, BIG_EPISODE, big_c0[i], BIG_SLOTS);
        lin_simulate(a, BIG_N, BIG_EPISODE, budget, b0, mc, BIG_SLOTS, &lin);
        check_budget(&lin, budget);
        /* A huge bid wins everything that fits: the budget is what stops it. */
        lin_simulate(a, BIG_N, BIG_EPISODE, budget, 1e12, mc, BIG_SLOTS, &big);
        check_budget(&big, budget);
        oracle_simulate(a, BIG_N, BIG_EPISODE, budget, BIG_SLOTS, &oracle);
        check_budget(&oracle, budget);
        assert_true(oracle.clicks >= lin.clicks);
        assert_true(oracle.wins > 0);
    }
}

/* lin_tune returns a grid point (mean price x 10^(k/10), k = -30..30) with
 * the most clicks, and no lower grid point has as many. */
static void test_lin_tune_best(void **state)
{
    const struct auction *a = *state;
    double mp, mc;
    auction_means(a, BIG_N, &mp, &mc);
    const double c0 = 1.0 / 8;
    int64_t budget = auction_episode_budget(c0, BIG_EPISODE, mp);
    double b0 = lin_tune(a, BIG_N, BIG_EPISODE, c0, BIG_SLOTS);
    int best = -1;
    for (int k = 0; k <= 60; k++)
        if (fabs(b0 - mp * pow(10.0, (k - 30) / 10.0)) <= 1e-9 * b0)
            best = k;
    assert_true(best >= 0);
    struct bid_result r;
    lin_simulate(a, BIG_N, BIG_EPISODE, budget, b0, mc, BIG_SLOTS, &r);
    uint64_t clicks = r.clicks;
    for (int k = 0; k <= 60; k++) {
        lin_simulate(a, BIG_N, BIG_EPISODE, budget, mp * pow(10.0, (k - 30) / 10.0), mc,
                     BIG_SLOTS, &r);
        if (k < best)
            assert_true(r.clicks < clicks);
        else
            assert_true(r.clicks <= clicks);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_means),
        cmocka_unit_test(test_episode_budget),
        cmocka_unit_test(test_lin_wins),
        cmocka_unit_test(test_lin_zero_mean_pctr),
        cmocka_unit_test(test_episode_rollover),
        cmocka_unit_test(test_oracle_fixture),
        cmocka_unit_test(test_oracle_free_first),
        cmocka_unit_test(test_finish_idempotent),
        cmocka_unit_test(test_incremental_exhaustion),
        cmocka_unit_test(test_empty_log),
        cmocka_unit_test_setup_teardown(test_never_overspends, big_setup, big_teardown),
        cmocka_unit_test_setup_teardown(test_lin_tune_best, big_setup, big_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
