/* test_budget.c: the budget pacing operator against a real state store.
 *
 * Each test gets a fresh state directory (mkdtemp, removed afterwards) and
 * records every published decision, so it can check decisions exactly. */
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
#include "state/state.h"

#define MAX_DECISIONS 8192

struct decision {
    char campaign[32];
    struct budget_decision d; /* d.campaign_id is cleared: see campaign */
};

struct fx {
    char dir[64];
    struct bid_params p;
    struct eddy_state *st;
    void *op;
    struct decision *dec;
    size_t n_dec;
    size_t n_rejected;
};

static const struct bid_params default_params = {
    .slots = 4,
    .buckets = 2,
    .n_actions = 2,
    .multipliers = {1.0, 0.5},
    .alpha = 0.5,
    .gamma = 0.9,
    .epsilon = 0.0,
    .overspend_penalty = 2.0,
    .explore_cap = 100.0,
    .half_life = 10.0,
    .pacing = PACING_EVEN,
    .reward = REWARD_CLICKS,
    .seed = 42,
};

static void on_decision(void *ctx, const struct budget_decision *d)
{
    struct fx *f = ctx;
    assert_true(f->n_dec < MAX_DECISIONS);
    assert_true(d->campaign_id.len < sizeof f->dec[0].campaign);
    struct decision *out = &f->dec[f->n_dec++];
    memcpy(out->campaign, d->campaign_id.ptr, d->campaign_id.len);
    out->campaign[d->campaign_id.len] = '\0';
    out->d = *d;
    out->d.campaign_id = (struct eddy_str){NULL, 0};
}

static void on_rejected(void *ctx, const char *op, const char *reason)
{
    struct fx *f = ctx;
    assert_string_equal(op, "budget");
    assert_non_null(strstr(reason, "CampaignBudget"));
    f->n_rejected++;
}

/* Opens the state in f->dir and creates the operator on it. */
static void fx_open(struct fx *f)
{
    char err[256];
    static const struct state_codec *const stores[] = {&budget_campaigns, NULL};
    struct state_options opt = {.dir = f->dir, .dim = 4, .create_if_missing = true,
                                .stores = stores};
    assert_int_equal(state_open(&opt, &f->st, err, sizeof err), 0);
    struct eddy_emit emit = {.decision = on_decision, .rejected = on_rejected, .ctx = f};
    f->op = eddy_op_budget.create(&f->p, f->st, &emit, err, sizeof err);
    assert_non_null(f->op);
}

static void fx_close(struct fx *f)
{
    eddy_op_budget.destroy(f->op);
    state_close(f->st);
    f->op = NULL;
    f->st = NULL;
}

static struct fx *fx_new(const struct bid_params *p)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dec = calloc(MAX_DECISIONS, sizeof *f->dec);
    assert_non_null(f->dec);
    f->p = *p;
    strcpy(f->dir, "/tmp/eddy-test-budget-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fx_open(f);
    return f;
}

static void fx_free(struct fx *f)
{
    if (f->op)
        fx_close(f);
    assert_int_equal(tmpdir_remove(f->dir), 0);
    free(f->dec);
    free(f);
}

static int setup(void **s)
{
    *s = fx_new(&default_params);
    return 0;
}

static int teardown(void **s)
{
    fx_free(*s);
    return 0;
}

/* --- input ------------------------------------------------------------- */

static void configure(struct fx *f, const char *id, int64_t budget, int64_t period,
                      int64_t base_bid)
{
    struct eddy_event ev = {.kind = EV_CAMPAIGN};
    ev.u.campaign = (struct campaign_budget){eddy_str_c(id), budget, period, base_bid};
    eddy_op_budget.process(f->op, &ev);
}

static void ad(struct fx *f, const char *id, enum ad_type type, int64_t t)
{
    struct eddy_event ev = {.kind = EV_AD};
    ev.u.ad = (struct ad_event){.campaign_id = eddy_str_c(id), .type = type, .timestamp_ms = t};
    eddy_op_budget.process(f->op, &ev);
}

static void auction(struct fx *f, const char *id, int64_t t, double pctr, int64_t price)
{
    struct eddy_event ev = {.kind = EV_AD};
    ev.u.ad = (struct ad_event){
        .campaign_id = eddy_str_c(id), .type = AD_AUCTION, .timestamp_ms = t,
        .has_pctr = true, .pctr = pctr, .has_market_price = true, .market_price_micros = price,
    };
    eddy_op_budget.process(f->op, &ev);
}

static struct state_store *store(struct fx *f)
{
    return state_store(f->st, &budget_campaigns);
}

/* A campaign the operator made: its Q-table has the operator's size. */
static struct campaign_state *campaign(struct fx *f, const char *id)
{
    struct campaign_state *c = state_get(store(f), eddy_str_c(id), false);
    assert_non_null(c);
    assert_int_equal(c->n_q, f->p.slots * f->p.buckets * 9 * f->p.n_actions);
    return c;
}

static void assert_decision(const struct fx *f, size_t i, int32_t slot, int64_t t)
{
    assert_true(i < f->n_dec);
    assert_int_equal(f->dec[i].d.slot, slot);
    assert_int_equal(f->dec[i].d.event_time_ms, t);
}

/* --- a pseudo-random stream, a pure function of (seed, index) ------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double unit(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

/* Event i of the stream over campaigns "a" and "b": mostly auctions with
 * prices up to the budget, some clicks and impressions, a flush every 16
 * events, and time that mostly moves forward but sometimes jumps back. */
static void stream_event(struct fx *f, uint64_t seed, int i)
{
    uint64_t h = mix(seed ^ mix((uint64_t)i));
    const char *id = h & 1 ? "a" : "b";
    int64_t t = (int64_t)i * 45 + (int64_t)(mix(h) % 100) - 50;
    if (i % 16 == 15)
        eddy_op_budget.flush(f->op, t);
    else if ((h >> 8) % 8 < 5)
        auction(f, id, t, unit(mix(h + 1)), 1 + (int64_t)(mix(h + 2) % 100000));
    else
        ad(f, id, (h >> 8) % 8 == 5 ? AD_CLICK : AD_IMPRESSION, t);
}

static void stream(struct fx *f, uint64_t seed, int from, int to)
{
    for (int i = from; i < to; i++) {
        stream_event(f, seed, i);
        assert_true(campaign(f, "a")->l.spent_micros <= campaign(f, "a")->l.budget_micros);
        assert_true(campaign(f, "b")->l.spent_micros <= campaign(f, "b")->l.budget_micros);
    }
}

static void configure_stream(struct fx *f)
{
    configure(f, "a", 100000, 4000, 60000);
    configure(f, "b", 250000, 3000, 50000);
}

static void assert_same_run(struct fx *x, struct fx *y)
{
    assert_int_equal(x->n_dec, y->n_dec);
    for (size_t i = 0; i < x->n_dec; i++) {
        const struct budget_decision *a = &x->dec[i].d, *b = &y->dec[i].d;
        assert_string_equal(x->dec[i].campaign, y->dec[i].campaign);
        assert_int_equal(a->slot, b->slot);
        assert_memory_equal(&a->bid_multiplier, &b->bid_multiplier, sizeof(double));
        assert_memory_equal(&a->pacing_rate, &b->pacing_rate, sizeof(double));
        assert_int_equal(a->spent_micros, b->spent_micros);
        assert_int_equal(a->remaining_micros, b->remaining_micros);
        assert_int_equal(a->event_time_ms, b->event_time_ms);
    }
    static const char *const ids[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        struct campaign_state *a = campaign(x, ids[i]), *b = campaign(y, ids[i]);
        assert_int_equal(a->n_q, b->n_q);
        assert_memory_equal(a->q, b->q, a->n_q * sizeof(double));
        assert_memory_equal(&a->l, &b->l, sizeof a->l);
    }
}

/* --- tests ------------------------------------------------------------- */

/* slots=4 over 4000 ms: a slot per 1000 ms, periods aligned to the epoch. */
static void test_decision_timing(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 1000000, 4000, 1000);
    ad(f, "c", AD_IMPRESSION, 0);
    assert_int_equal(f->n_dec, 1);
    ad(f, "c", AD_IMPRESSION, 1500);
    ad(f, "c", AD_IMPRESSION, 3999);
    ad(f, "c", AD_IMPRESSION, 4100);
    assert_int_equal(f->n_dec, 5);
    assert_decision(f, 0, 0, 0);
    assert_decision(f, 1, 1, 1000);
    assert_decision(f, 2, 2, 2000);
    assert_decision(f, 3, 3, 3000);
    assert_decision(f, 4, 0, 4000);
    for (size_t i = 0; i < f->n_dec; i++) {
        assert_string_equal(f->dec[i].campaign, "c");
        assert_int_equal(f->dec[i].d.spent_micros, 0);
        assert_int_equal(f->dec[i].d.remaining_micros, 1000000);
        assert_true(f->dec[i].d.bid_multiplier == 1.0); /* untrained: nearest 1 */
    }
    /* An event older than the current slot changes nothing. */
    ad(f, "c", AD_IMPRESSION, 2000);
    assert_int_equal(f->n_dec, 5);
    assert_int_equal(campaign(f, "c")->l.decisions, 5);
}

/* A clock starts with the campaign's own first event, mid-period at its own
 * slot, never with a flush (whose watermark depends on batching); once
 * running, flushes publish the boundaries of a campaign with no traffic. */
static void test_flush_advances_idle_campaign(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 1000000, 4000, 1000);
    eddy_op_budget.flush(f->op, INT64_MIN); /* no event time yet: nothing */
    eddy_op_budget.flush(f->op, 5200);      /* no event of its own yet: nothing */
    assert_int_equal(f->n_dec, 0);
    ad(f, "c", AD_IMPRESSION, 5200);
    assert_int_equal(f->n_dec, 1);
    assert_decision(f, 0, 1, 5000);
    eddy_op_budget.flush(f->op, 7000);
    assert_int_equal(f->n_dec, 3);
    assert_decision(f, 1, 2, 6000);
    assert_decision(f, 2, 3, 7000);
}

/* The Q-updates of a hand-made run, against hand computation. Params: 4
 * slots, 2 buckets, actions {1.0, 0.5}, alpha 0.5, gamma 0.9, penalty 2,
 * even pacing; budget 10000, period 4000, base bid 1000. Q index = state * 2
 * + action, state = (slot * 2 + bucket) * 9 + 3 * pace + cpm, where pace and
 * cpm are the last slot's spend against its plan and its CPM against the
 * market's (0 below, 1 on, 2 above; 4 = on plan before any slot closed). */
static void test_q_update(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000);
    ad(f, "c", AD_IMPRESSION, 0); /* slot 0, full budget: bucket 1, state 13 */
    assert_int_equal(campaign(f, "c")->l.q_state, 13);
    for (int t = 100; t <= 300; t += 100)
        auction(f, "c", t, 1.0, 1000); /* bid 1000 >= 1000: won, pacing is 1 */
    ad(f, "c", AD_CLICK, 400);
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.spent_micros, 3000);
    assert_int_equal(c->l.slot_clicks, 1);

    /* Close slot 0: r = 1 - 2 * (3000 - 2500) / 10000 * 4 = 0.6; 3000 spent
     * against a slot plan of 2500 is on plan (below 1.25 x), at the market's
     * CPM: next state 31 (slot 1, 7000 left: bucket 1, market 4) has Q 0:
     * Q[13,0] = 0.5 * 0.6. The click at 1500 goes to slot 1: the latest
     * auction was won. */
    ad(f, "c", AD_CLICK, 1500);
    assert_float_equal(c->q[13 * 2 + 0], 0.3, 1e-12);
    assert_int_equal(c->l.q_state, 31);
    assert_float_equal(f->dec[1].d.pacing_rate, 0.7 / 0.75, 1e-12);
    assert_int_equal(f->dec[1].d.spent_micros, 3000);
    assert_int_equal(f->dec[1].d.remaining_micros, 7000);

    /* Close slot 1: r = 1 (under plan); Q[31,0] = 0.5 * 1. Nothing was
     * spent in it: under its plan, so the market state is 1 from now on. */
    ad(f, "c", AD_IMPRESSION, 2000);
    assert_float_equal(c->q[31 * 2 + 0], 0.5, 1e-12);
    assert_int_equal(c->l.q_state, (2 * 2 + 1) * 9 + 1);

    /* Slots 2 and 3 close with r = 0 (slot 3 terminal); the new period
     * resets spend and starts in state 10 (slot 0, bucket 1, market 1). */
    ad(f, "c", AD_IMPRESSION, 4000);
    assert_int_equal(c->l.spent_micros, 0);
    assert_int_equal(c->l.q_state, 10);
    assert_int_equal(c->l.action, 0);

    /* Close it with r = 0: bootstraps from max Q[28,.] (slot 1, bucket 1,
     * market 1), set here to 0.5: Q[10,0] = 0.5 * (0.9 * 0.5) = 0.225. */
    c->q[28 * 2 + 0] = 0.5;
    ad(f, "c", AD_IMPRESSION, 5000);
    assert_float_equal(c->q[10 * 2 + 0], 0.225, 1e-12);
    assert_int_equal(c->l.q_state, 28);

    /* Six wins in slot 1: 6000 spent against a plan of 5000, r = -2 * 0.4,
     * next state (2 * 2 + 0) * 9 + 7 = 43 (4000 left: bucket 0; over its
     * slot plan of 3333), untrained: Q[28,0] = 0.5 + 0.5 * (-0.8 - 0.5). */
    for (int t = 5100; t <= 5600; t += 100)
        auction(f, "c", t, 1.0, 1000);
    ad(f, "c", AD_IMPRESSION, 6000);
    assert_float_equal(c->q[28 * 2 + 0], -0.15, 1e-12);
    assert_int_equal(c->l.q_state, 43);

    /* Next period, slot 1 (state 28 again): action 1 is now the greedy one;
     * closing slot 0 (state 10) bootstrapped from max(-0.15, 0) = 0. */
    ad(f, "c", AD_IMPRESSION, 9000);
    assert_int_equal(c->l.q_state, 28);
    assert_int_equal(c->l.action, 1);
    assert_true(f->dec[f->n_dec - 1].d.bid_multiplier == 0.5);
    assert_float_equal(c->q[10 * 2 + 0], 0.1125, 1e-12);
}

/* Exhaustion: once less than the mean market price so far is left, a
 * pacing-0 decision goes out at once, and no further win happens in the
 * period. */
static void test_pacing_zero_once_spent(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 3000);
    auction(f, "c", 0, 1.0, 3000);
    auction(f, "c", 10, 1.0, 3000);
    assert_int_equal(f->n_dec, 1);
    auction(f, "c", 20, 1.0, 3000); /* 1000 left < 3000 */
    assert_int_equal(f->n_dec, 2);
    assert_decision(f, 1, 0, 20);
    assert_true(f->dec[1].d.pacing_rate == 0.0);
    assert_int_equal(f->dec[1].d.spent_micros, 9000);
    assert_int_equal(f->dec[1].d.remaining_micros, 1000);

    auction(f, "c", 30, 1.0, 500); /* affordable, but throttled */
    auction(f, "c", 40, 1.0, 3000);
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.wins, 3);
    assert_int_equal(c->l.auctions, 5);
    assert_int_equal(f->n_dec, 2);

    auction(f, "c", 1000, 1.0, 500); /* boundary: still spent */
    assert_int_equal(f->n_dec, 3);
    assert_decision(f, 2, 1, 1000);
    assert_true(f->dec[2].d.pacing_rate == 0.0);
    auction(f, "c", 4000, 1.0, 500); /* new period: full budget again */
    assert_true(f->dec[f->n_dec - 1].d.pacing_rate == 1.0);
    assert_int_equal(c->l.wins, 4);
}

/* The base bid is the bid at pCTR 1, far above any price when pCTRs are
 * small (iPinYou: 100x): it must not count the budget as spent. */
static void test_spent_means_below_a_typical_price(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000000);
    auction(f, "c", 0, 0.01, 3000);  /* bid 10000: wins, 7000 left */
    auction(f, "c", 10, 0.01, 3000); /* wins, 4000 left */
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.wins, 2);
    assert_true(f->dec[f->n_dec - 1].d.pacing_rate > 0);
    auction(f, "c", 20, 0.01, 3500); /* wins, 500 left < mean price 3166 */
    assert_int_equal(c->l.wins, 3);
    assert_true(f->dec[f->n_dec - 1].d.pacing_rate == 0.0);
    assert_int_equal(f->dec[f->n_dec - 1].d.remaining_micros, 500);
}

/* Many auctions with prices up to the budget: spend stays within it after
 * every event (checked inside stream()) and in every decision. */
static void test_never_overspends(void **s)
{
    struct fx *f = *s;
    f->p.multipliers[1] = 2.0;
    fx_close(f);
    fx_open(f);
    configure_stream(f);
    stream(f, 7, 0, 20000);
    int64_t wins = campaign(f, "a")->l.wins + campaign(f, "b")->l.wins;
    assert_true(wins > 100);
    int spent_decisions = 0;
    for (size_t i = 0; i < f->n_dec; i++) {
        assert_true(f->dec[i].d.remaining_micros >= 0);
        spent_decisions += f->dec[i].d.pacing_rate == 0.0;
    }
    assert_true(spent_decisions > 0); /* the budgets did run out */
}

/* Market pacing, 24 slots, actions far from the plan and exploring, so the
 * no-overspend and cap checks see every action. */
static struct bid_params market_params(void)
{
    struct bid_params p = default_params;
    p.slots = 24;
    p.buckets = 4;
    p.n_actions = 3;
    p.multipliers[0] = 0.25, p.multipliers[1] = 1.0, p.multipliers[2] = 4.0;
    p.explore_cap = 4.0;
    p.epsilon = 0.3;
    p.alpha = 0.1;
    p.pacing = PACING_MARKET;
    return p;
}

/* The no-overspend guarantee under market pacing and its action space:
 * multipliers up to 16x the plan, explored, never spend past a budget. */
static void test_market_never_overspends(void **s)
{
    (void)s;
    struct bid_params p = market_params();
    struct fx *f = fx_new(&p);
    configure(f, "a", 100000, 24000, 60000);
    configure(f, "b", 250000, 24000, 50000);
    stream(f, 17, 0, 20000);
    assert_true(campaign(f, "a")->l.wins + campaign(f, "b")->l.wins > 100);
    for (size_t i = 0; i < f->n_dec; i++)
        assert_true(f->dec[i].d.remaining_micros >= 0);
    fx_free(f);
}

/* One period of 24 slots x 40 auctions from t0: pCTR in [0.001, 0.011),
 * price uniform in [0, 2 x mean) (mean 50000), times `jump` from the
 * middle of the period on. Returns the spend at the period's end. */
static int64_t generated_period(struct fx *f, uint64_t seed, int64_t t0, double jump)
{
    for (int i = 0; i < 24 * 40; i++) {
        uint64_t h = mix(seed ^ mix((uint64_t)(t0 + i)));
        double pctr = 0.001 + 0.01 * unit(h);
        double price = 100000 * unit(mix(h)) * (i >= 12 * 40 ? jump : 1.0);
        auction(f, "c", t0 + i * 25, pctr, (int64_t)price);
        assert_true(campaign(f, "c")->l.spent_micros <= campaign(f, "c")->l.budget_micros);
    }
    return campaign(f, "c")->l.spent_micros;
}

/* The spend at the open of `slot` in the last period decided. */
static int64_t spent_at_slot(const struct fx *f, int32_t slot)
{
    for (size_t i = f->n_dec; i-- > 0;)
        if (f->dec[i].d.slot == slot && f->dec[i].d.pacing_rate > 0)
            return f->dec[i].d.spent_micros;
    return -1;
}

/* Five periods teach the market; then prices double (or halve) halfway
 * through a period. The base bid is 5 times too low, so bidding it as it
 * is (even pacing) spends a fifth of the budget: the multiplier must come
 * from the market. The plan re-paces on what is left: half the budget by
 * the jump, the budget lasting to the last slots after it, and the period
 * spends within 5% of its budget, never more. */
static void run_price_jump(double jump)
{
    struct bid_params p = market_params();
    p.multipliers[0] = 0.9, p.multipliers[1] = 1.0, p.multipliers[2] = 1.1;
    p.explore_cap = 1.1;
    p.epsilon = 0.05;
    struct fx *f = fx_new(&p);
    int64_t budget = 24 * 40 * 50000 / 8; /* c0 = 1/8 */
    configure(f, "c", budget, 24000, 2000000); /* pCTR 0.005 bids 10000 at multiplier 1 */
    for (int k = 0; k < 5; k++)
        generated_period(f, 1, k * 24000, 1.0);
    int64_t spent = generated_period(f, 2, 5 * 24000, jump);
    assert_true(spent <= budget);
    assert_true(spent >= budget * 0.95);
    int64_t at_jump = spent_at_slot(f, 12), late = spent_at_slot(f, 22);
    assert_true(at_jump >= budget * 0.4 && at_jump <= budget * 0.6);
    assert_true(late > 0 && late < budget); /* still bidding in slot 22 */
    fx_free(f);
}

static void test_repaces_after_price_jump_up(void **s)
{
    (void)s;
    run_price_jump(2.0);
}

static void test_repaces_after_price_jump_down(void **s)
{
    (void)s;
    run_price_jump(0.5);
}

/* However far the actions are from the plan, a decision stays within
 * [plan / cap, plan x cap]. */
static void test_explore_cap(void **s)
{
    (void)s;
    struct bid_params p = market_params();
    p.epsilon = 1.0;
    p.explore_cap = 1.5;
    struct fx *f = fx_new(&p);
    configure(f, "c", 1000000, 24000, 10000000);
    generated_period(f, 3, 0, 1.0);
    generated_period(f, 4, 24000, 1.0);
    const struct campaign_ledger *l = &campaign(f, "c")->l;
    assert_true(l->plan_multiplier != 1.0); /* the market made the plan */
    double ratio = l->bid_multiplier / l->plan_multiplier;
    assert_true(ratio >= 1 / 1.5 - 1e-12 && ratio <= 1.5 + 1e-12);
    bool low = false, high = false;
    for (size_t i = 0; i < f->n_dec; i++) {
        low |= f->dec[i].d.bid_multiplier < 0.99 * l->plan_multiplier;
        high |= f->dec[i].d.bid_multiplier > 1.01 * l->plan_multiplier;
    }
    assert_true(low && high); /* it explored both ways */
    fx_free(f);
}

/* reward = value: a slot's reward is the conversion value of won auctions,
 * not the clicks. */
static void test_reward_value(void **s)
{
    (void)s;
    struct bid_params p = default_params;
    p.reward = REWARD_VALUE;
    p.overspend_penalty = 0;
    struct fx *f = fx_new(&p);
    configure(f, "c", 10000, 4000, 1000);
    auction(f, "c", 0, 1.0, 500); /* won */
    ad(f, "c", AD_CLICK, 10);
    struct eddy_event ev = {.kind = EV_AD};
    ev.u.ad = (struct ad_event){.campaign_id = eddy_str_c("c"), .type = AD_CONVERSION,
                                .timestamp_ms = 20, .has_value = true, .value = 7.5};
    eddy_op_budget.process(f->op, &ev);
    struct campaign_state *c = campaign(f, "c");
    int64_t s0 = c->l.q_state;
    ad(f, "c", AD_IMPRESSION, 1000); /* closes slot 0: Q = 0.5 * 7.5 */
    assert_float_equal(c->q[s0 * 2 + c->l.action], 3.75, 1e-12);
    assert_float_equal(c->l.conversion_value, 7.5, 1e-12);
    fx_free(f);
}

static struct bid_params exploring_params(void)
{
    struct bid_params p = default_params;
    p.n_actions = 4;
    p.multipliers[0] = 0.5, p.multipliers[1] = 1.0, p.multipliers[2] = 1.5;
    p.multipliers[3] = 2.0;
    p.buckets = 3;
    p.epsilon = 0.3;
    return p;
}

/* Untrained (all Q equal), the greedy choice is the multiplier nearest 1,
 * not the first listed: a new campaign bids its base bid. */
static void test_untrained_bids_the_base_bid(void **s)
{
    (void)s;
    struct bid_params p = exploring_params();
    p.epsilon = 0;
    struct fx *f = fx_new(&p);
    configure(f, "c", 1000000, 4000, 1000);
    ad(f, "c", AD_IMPRESSION, 0);
    assert_int_equal(f->n_dec, 1);
    assert_true(f->dec[0].d.bid_multiplier == 1.0);
    fx_free(f);
}

/* With epsilon 1 every slot's action is drawn: over 40 slots all four
 * multipliers show up, where the greedy choice would always be 1.0. */
static void test_explores(void **s)
{
    (void)s;
    struct bid_params p = exploring_params();
    p.epsilon = 1.0;
    struct fx *f = fx_new(&p);
    configure(f, "c", 1000000, 4000, 1000);
    ad(f, "c", AD_IMPRESSION, 0); /* starts the clock */
    for (int64_t t = 1000; t < 40000; t += 1000) /* one slot at a time */
        eddy_op_budget.flush(f->op, t);
    assert_int_equal(f->n_dec, 40);
    bool seen[4] = {false};
    for (size_t i = 0; i < f->n_dec; i++)
        for (int a = 0; a < 4; a++)
            seen[a] |= f->dec[i].d.bid_multiplier == p.multipliers[a];
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
    fx_free(f);
}

/* Two fresh states over the same stream: identical decisions, bitwise
 * identical Q-tables and ledgers. */
static void test_deterministic(void **s)
{
    (void)s;
    struct bid_params p = exploring_params();
    struct fx *x = fx_new(&p), *y = fx_new(&p);
    configure_stream(x);
    configure_stream(y);
    stream(x, 11, 0, 5000);
    stream(y, 11, 0, 5000);
    assert_true(x->n_dec > 50);
    assert_same_run(x, y);
    fx_free(x);
    fx_free(y);
}

/* Committing, closing and reopening half-way changes nothing. */
static void test_restart(void **s)
{
    (void)s;
    struct bid_params p = exploring_params();
    struct fx *x = fx_new(&p), *y = fx_new(&p);
    char err[256];
    configure_stream(x);
    configure_stream(y);
    stream(x, 13, 0, 5000);
    stream(y, 13, 0, 2500);
    assert_int_equal(state_commit(y->st, err, sizeof err), 0);
    fx_close(y);
    fx_open(y);
    stream(y, 13, 2500, 5000);
    assert_same_run(x, y);
    fx_free(x);
    fx_free(y);
}

/* A budget the controller cannot run (a period shorter than its slots, no
 * money) is reported, not dropped silently, and configures nothing. */
static void test_unusable_budget_is_reported(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 1000, 3, 10);  /* 3 ms for 4 slots */
    configure(f, "d", 0, 4000, 10);  /* no budget */
    assert_int_equal(f->n_rejected, 2);
    assert_null(state_get(store(f), eddy_str_c("c"), false));
}

/* A campaign with no CampaignBudget record is counted but never bids; once
 * configured, it does. */
static void test_unknown_campaign(void **s)
{
    struct fx *f = *s;
    auction(f, "ghost", 0, 1.0, 1);
    ad(f, "ghost", AD_CLICK, 10);
    ad(f, "ghost", AD_IMPRESSION, 20);
    eddy_op_budget.flush(f->op, 5000);
    struct campaign_state *c = campaign(f, "ghost");
    assert_int_equal(c->l.auctions, 1);
    assert_int_equal(c->l.clicks, 1);
    assert_int_equal(c->l.impressions, 1);
    assert_int_equal(c->l.wins, 0);
    assert_int_equal(c->l.spent_micros, 0);
    assert_int_equal(f->n_dec, 0);

    configure(f, "ghost", 10000, 4000, 1000);
    auction(f, "ghost", 6000, 1.0, 1);
    assert_int_equal(c->l.wins, 1);
    assert_int_equal(f->n_dec, 1);
    assert_decision(f, 0, 2, 6000);
}

static const struct campaign_ledger *queried_ledger(struct fx *f, const char *id)
{
    assert_true(eddy_op_budget.answers & QUERY_BIT(QUERY_CAMPAIGN_LEDGER));
    struct eddy_query q = {.kind = QUERY_CAMPAIGN_LEDGER,
                           .u.ledger = {.campaign_id = eddy_str_c(id)}};
    bool found = eddy_op_budget.query(f->st, &q);
    assert_int_equal(found, q.u.ledger.ledger != NULL);
    return q.u.ledger.ledger;
}

/* The ledger query answers from the state and changes nothing in it, not
 * even the Q-table of a campaign stored under other params. */
static void test_ledger_query(void **s)
{
    struct fx *f = *s;
    configure(f, "a", 10000, 4000, 1000);
    auction(f, "a", 1000, 1.0, 7);
    assert_ptr_equal(queried_ledger(f, "a"), &campaign(f, "a")->l);
    assert_int_equal(queried_ledger(f, "a")->wins, 1);
    assert_null(queried_ledger(f, "nobody"));

    struct campaign_state *other = state_get(store(f), eddy_str_c("other"), true);
    other->n_q = 3;
    other->q = calloc(3, sizeof *other->q);
    other->q[2] = 1.5;
    assert_non_null(queried_ledger(f, "other"));
    assert_int_equal(other->n_q, 3);
    assert_true(other->q[2] == 1.5);
}

/* A jump of about 36 million years: the rest of the old period, then straight
 * to the new one, in a handful of decisions. */
static void test_huge_time_jump(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000);
    auction(f, "c", 0, 1.0, 1000);
    int64_t t = ((int64_t)1 << 60) + 2500;
    int64_t period = t / 4000 * 4000;
    int64_t slot = (t - period) * 4 / 4000;
    ad(f, "c", AD_IMPRESSION, t);
    assert_int_equal(f->n_dec, (size_t)(1 + 3 + slot + 1));
    assert_decision(f, 3, 3, 3000);
    assert_decision(f, 4, 0, period);
    assert_decision(f, f->n_dec - 1, (int32_t)slot, period + slot * 1000);
    assert_int_equal(campaign(f, "c")->l.spent_micros, 0);
}

/* A config change takes effect at once and keeps the period's spend. */
static void test_config_change_keeps_spend(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000);
    auction(f, "c", 0, 1.0, 1000);
    configure(f, "c", 20000, 4000, 2000);
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.spent_micros, 1000);
    auction(f, "c", 10, 1.0, 2000); /* bid 2000 with the new base bid */
    assert_int_equal(c->l.spent_micros, 3000);
    ad(f, "c", AD_IMPRESSION, 1000);
    assert_int_equal(f->dec[f->n_dec - 1].d.remaining_micros, 17000);
}

/* A click is credited to the reward iff the latest auction was won. */
static void test_click_attribution(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000);
    auction(f, "c", 0, 1.0, 2000); /* bid 1000 < 2000: lost */
    ad(f, "c", AD_CLICK, 10);
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.slot_clicks, 0);
    auction(f, "c", 20, 1.0, 500); /* won */
    ad(f, "c", AD_CLICK, 30);
    ad(f, "c", AD_CLICK, 40);
    assert_int_equal(c->l.slot_clicks, 2);
    struct eddy_event ev = {.kind = EV_AD};
    ev.u.ad = (struct ad_event){.campaign_id = eddy_str_c("c"), .type = AD_AUCTION,
                                .timestamp_ms = 50, .has_pctr = true, .pctr = 1.0};
    eddy_op_budget.process(f->op, &ev); /* no price: no bid, not won */
    ad(f, "c", AD_CLICK, 60);
    assert_int_equal(c->l.slot_clicks, 2);
    assert_int_equal(c->l.clicks, 4);
    assert_int_equal(c->l.auctions, 3);
    assert_int_equal(c->l.wins, 1);
}

/* A new period length moves the running slot onto the new grid. */
static void test_period_change(void **s)
{
    struct fx *f = *s;
    configure(f, "c", 10000, 4000, 1000);
    auction(f, "c", 5500, 1.0, 1000); /* period 4000, slot 1 from 5000 */
    configure(f, "c", 10000, 8000, 1000); /* 5000 is slot 2 of period 0 */
    struct campaign_state *c = campaign(f, "c");
    assert_int_equal(c->l.period_start_ms, 0);
    assert_int_equal(c->l.slot, 2);
    ad(f, "c", AD_IMPRESSION, 6100);
    assert_int_equal(f->n_dec, 2);
    assert_decision(f, 1, 3, 6000);
    assert_int_equal(f->dec[1].d.spent_micros, 1000);
}

static void test_rejects_bad_params(void **s)
{
    struct fx *f = *s;
    char err[256];
    struct eddy_emit emit = {.decision = on_decision, .ctx = f};
    struct bid_params p = default_params;
    p.n_actions = 0;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "n_actions"));
    p = default_params;
    p.epsilon = 0.0 / 0.0;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "epsilon"));
    p = default_params;
    p.explore_cap = 0.5;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "explore.cap"));
    p = default_params;
    p.half_life = 0;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "half_life"));
    p = default_params;
    p.pacing = 7;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
    assert_non_null(strstr(err, "pacing"));
    p = default_params;
    emit.decision = NULL;
    assert_null(eddy_op_budget.create(&p, f->st, &emit, err, sizeof err));
}

/* The HTTP API's view of a ledger: the export's fields, but flags as
 * booleans and a time not set yet as null. */
static void test_ledger_readable(void **state)
{
    (void)state;
    struct campaign_ledger l = {.configured = 1, .period_start_ms = INT64_MIN, .slot = -1,
                                .priced_auctions = 2, .bid_multiplier = 1.1, .pacing_rate = NAN};
    json_t *doc = budget_ledger_json(json_object(), &l, LEDGER_READABLE);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
    assert_string_equal(text,
        "{\"configured\":true,\"budget_micros\":0,\"period_ms\":0,\"base_bid_micros\":0,"
        "\"period_start_ms\":null,\"slot\":-1,\"action\":0,\"q_state\":0,\"spent_micros\":0,"
        "\"slot_spent_micros\":0,\"slot_clicks\":0,\"last_auction_won\":false,\"auctions\":0,"
        "\"wins\":0,\"clicks\":0,\"impressions\":0,\"conversions\":0,"
        "\"reported_cost_micros\":0,\"priced_auctions\":2,\"price_sum_micros\":0,"
        "\"conversion_value\":0.0,\"bid_multiplier\":1.1000000000000001,"
        "\"pacing_rate\":\"NaN\",\"decisions\":0,\"plan_multiplier\":0.0,"
        "\"market_state\":0,\"slot_auctions\":0,\"slot_price_sum_micros\":0,"
        "\"slot_plan_micros\":0.0,\"slot_cost_per_auction\":0.0,"
        "\"period_expected_micros\":0.0,\"auctions_per_slot\":0.0,\"slot_value\":0.0}");
    l.period_start_ms = 0;
    json_decref(doc);
    doc = budget_ledger_json(json_object(), &l, LEDGER_READABLE);
    assert_int_equal(json_integer_value(json_object_get(doc, "period_start_ms")), 0);
    json_decref(doc);
    free(text);
    assert_null(budget_ledger_json(NULL, &l, LEDGER_RAW));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decision_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_advances_idle_campaign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_budget_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_q_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pacing_zero_once_spent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spent_means_below_a_typical_price, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_overspends, setup, teardown),
        cmocka_unit_test(test_market_never_overspends),
        cmocka_unit_test(test_repaces_after_price_jump_up),
        cmocka_unit_test(test_repaces_after_price_jump_down),
        cmocka_unit_test(test_explore_cap),
        cmocka_unit_test(test_reward_value),
        cmocka_unit_test(test_untrained_bids_the_base_bid),
        cmocka_unit_test(test_explores),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_restart),
        cmocka_unit_test_setup_teardown(test_unknown_campaign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_time_jump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_change_keeps_spend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_click_attribution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_bad_params, setup, teardown),
        cmocka_unit_test(test_ledger_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
