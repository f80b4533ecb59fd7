/* budget.c: per-campaign budget pacing: a market-model plan corrected by
 * tabular Q-learning.
 *
 * The model and every rule below are written down in docs/budget.md; this
 * file follows it. All a campaign's state lives in its ledger, market
 * histogram and Q-table in the state's campaigns store, whose value layout,
 * encoding and JSON are defined here; the operator itself holds only its
 * parameters, and a restart from committed state continues exactly where it
 * left off. */
#include "operators/budget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "operators/common.h"
#include "state/json.h"
#include "state/state.h"

/* Domain tags keep the draws made for different purposes independent even
 * when the rest of their key coincides. */
enum draw_tag { DRAW_EXPLORE = 1, DRAW_ACTION, DRAW_THROTTLE };

#define STR_(x) #x
#define STR(x) STR_(x)

/* The last slot's spend against its plan, and its CPM against the
 * market's: below LOW is bucket 0, above HIGH bucket 2, else 1. */
#define MARKET_LOW 0.8
#define MARKET_HIGH 1.25
#define MARKET_STATES 9 /* 3 pace x 3 CPM buckets */

struct budget {
    struct bid_params p;
    struct state_store *store;
    struct eddy_emit emit;
    int64_t n_states; /* slots * buckets * MARKET_STATES */
    uint32_t n_q;     /* n_states * n_actions */
    double decay;     /* of the market per slot: 0.5^(1 / (half_life * slots)) */
};

/* --- pure helpers ------------------------------------------------------ */

/* A uniform draw in [0,1) that is a pure function of the seed, the campaign
 * and the key: a replay of the same input makes the same draws. */
static double draw(const struct budget *b, struct eddy_str id, uint64_t tag,
                   uint64_t x, uint64_t y, uint64_t z)
{
    uint64_t key[4] = {tag, x, y, z};
    uint64_t h = XXH64(key, sizeof key, XXH64(id.ptr, id.len, b->p.seed));
    return (double)(h >> 11) * 0x1.0p-53;
}

static int64_t remaining(const struct campaign_ledger *l)
{
    return l->budget_micros - l->spent_micros;
}

/* Ties go to the lowest index, so an untrained row picks action 0. */
static int64_t argmax(const double *row, int n)
{
    int64_t best = 0;
    for (int a = 1; a < n; a++)
        if (row[a] > row[best])
            best = a;
    return best;
}

static double *q_row(const struct budget *b, struct campaign_state *c, int64_t s)
{
    return c->q + s * b->p.n_actions;
}

/* Start of the ledger's current slot: the first ms t of the period with
 * (t - period_start) * slots / period_ms == slot. */
static int64_t slot_start(const struct budget *b, const struct campaign_ledger *l)
{
    return l->period_start_ms + (l->slot * l->period_ms + b->p.slots - 1) / b->p.slots;
}

/* Q-state of the current slot with the budget left now and the market
 * state of the slot closed last. */
static int64_t q_state(const struct budget *b, const struct campaign_ledger *l)
{
    double left = (double)remaining(l) / (double)l->budget_micros;
    int64_t bucket = left > 0 ? (int64_t)(left * b->p.buckets) : 0;
    if (bucket > b->p.buckets - 1)
        bucket = b->p.buckets - 1;
    return (l->slot * b->p.buckets + bucket) * MARKET_STATES + l->market_state;
}

/* Clicks (or conversion value) won in the slot, minus the penalty for being
 * ahead of an even plan at its end, measured in slots' worth of budget. */
static double slot_reward(const struct budget *b, const struct campaign_ledger *l)
{
    double budget = (double)l->budget_micros;
    double plan = budget * (double)(l->slot + 1) / b->p.slots;
    double ahead = ((double)l->spent_micros - plan) / budget * b->p.slots;
    double won = b->p.reward == REWARD_VALUE ? l->slot_value : (double)l->slot_clicks;
    return won - b->p.overspend_penalty * fmax(0.0, ahead);
}

/* 0, 1 or 2: x / expected below MARKET_LOW, between, above MARKET_HIGH; 1
 * when nothing was expected. */
static int64_t level(double x, double expected)
{
    if (!(expected > 0))
        return 1;
    return x < MARKET_LOW * expected ? 0 : x > MARKET_HIGH * expected ? 2 : 1;
}

/* --- the market ---------------------------------------------------------- */

/* The bin of an auction: the bid multiplier its price needed, in
 * 1/MARKET_PER_DECADE decades around 1, rounded up; pCTR or base bid 0
 * (no bid wins a priced auction) goes to the last bin. */
static int market_bin(double pctr, int64_t base_bid, int64_t price)
{
    if (price <= 0)
        return 0;
    double needed = (double)price / (pctr * (double)base_bid);
    if (!(needed < INFINITY))
        return MARKET_BINS - 1;
    double k = ceil(log10(needed) * MARKET_PER_DECADE) + MARKET_ONE;
    return k < 0 ? 0 : k > MARKET_BINS - 1 ? MARKET_BINS - 1 : (int)k;
}

/* The multiplier that wins every auction of bins 0..k. */
static double bin_multiplier(int k)
{
    return pow(10.0, (double)(k - MARKET_ONE) / MARKET_PER_DECADE);
}

/* The highest bin a multiplier m wins whole; -1: none. */
static int bins_won(double m)
{
    if (!(m > 0))
        return -1;
    double k = floor(log10(m) * MARKET_PER_DECADE + 1e-9) + MARKET_ONE;
    return k < 0 ? -1 : k > MARKET_BINS - 1 ? MARKET_BINS - 1 : (int)k;
}

/* Expected spend per auction at multiplier m, by the market; 0 without one. */
static double cost_per_auction(const struct market *m, double multiplier)
{
    double cost = 0;
    int top = bins_won(multiplier);
    for (int k = 0; k <= top; k++)
        cost += m->cost_micros[k];
    return m->total > 0 ? cost / m->total : 0;
}

static void market_add(struct market *m, int bin, int64_t price)
{
    m->auctions[bin] += 1;
    m->cost_micros[bin] += (double)price;
    m->total += 1;
}

static void market_decay(struct market *m, double f)
{
    for (int k = 0; k < MARKET_BINS; k++) {
        m->auctions[k] *= f;
        m->cost_micros[k] *= f;
    }
    m->total *= f;
}

/* Mean price of the market; 0 without one. */
static double market_cpm(const struct market *m)
{
    double cost = 0;
    for (int k = 0; k < MARKET_BINS; k++)
        cost += m->cost_micros[k];
    return m->total > 0 ? cost / m->total : 0;
}

/* The market plan: the highest multiplier whose expected spend over the
 * auctions left in the period fits in the budget left. The expected spend
 * is scaled by how the period's closed slots spent against their
 * expectation (kappa), so a market that turned dearer or cheaper than the
 * histogram re-paces at once. 1 when there is no market yet. */
static double market_plan(const struct budget *b, const struct campaign_state *c)
{
    const struct campaign_ledger *l = &c->l;
    if (!(c->m.total > 0) || !(l->auctions_per_slot > 0) || l->base_bid_micros <= 0)
        return 1.0;
    double left_auctions = l->auctions_per_slot * (double)(b->p.slots - l->slot);
    double one_slot = (double)l->budget_micros / b->p.slots;
    double kappa = ((double)l->spent_micros + one_slot) / (l->period_expected_micros + one_slot);
    double budget_left = (double)(remaining(l) > 0 ? remaining(l) : 0);
    double cost = 0;
    int best = 0;
    for (int k = 0; k < MARKET_BINS - 1; k++) {
        cost += c->m.cost_micros[k];
        if (left_auctions * kappa * cost / c->m.total > budget_left)
            break;
        best = k;
    }
    return bin_multiplier(best);
}

/* Spent: what is left no longer pays for a typical win, the mean market
 * price of the campaign's auctions so far (or nothing is left at all). */
static bool budget_spent(const struct campaign_ledger *l)
{
    int64_t typical = l->priced_auctions ? l->price_sum_micros / l->priced_auctions : 0;
    return remaining(l) <= 0 || remaining(l) < typical;
}

/* Even pacing: the share of the remaining budget over the share of the
 * period left at `at`; market pacing paces by the multiplier and takes
 * every auction. Zero once the budget is spent. */
static double pacing_rate(const struct budget *b, const struct campaign_ledger *l, int64_t at)
{
    if (budget_spent(l))
        return 0.0;
    if (b->p.pacing == PACING_MARKET)
        return 1.0;
    double budget_left = (double)remaining(l) / (double)l->budget_micros;
    double time_left = (double)(l->period_ms - (at - l->period_start_ms)) / (double)l->period_ms;
    return fmin(1.0, fmax(0.0, budget_left / time_left));
}

/* A ledger written under other params (slots, buckets, actions) may point
 * outside this Q-table; such a clock is restarted rather than trusted. The
 * table itself has this operator's size: every caller got c from
 * campaign(), which sizes it, or checked it. */
static bool clock_fits(const struct budget *b, const struct campaign_state *c)
{
    const struct campaign_ledger *l = &c->l;
    return l->slot >= 0 && l->slot < b->p.slots &&
           l->q_state >= 0 && l->q_state < b->n_states &&
           l->action >= 0 && l->action < b->p.n_actions;
}

/* --- the slot clock ---------------------------------------------------- */

static void publish(struct budget *b, struct campaign_state *c, int64_t event_time)
{
    struct campaign_ledger *l = &c->l;
    struct budget_decision d = {
        .campaign_id = state_key(c),
        .slot = (int32_t)l->slot,
        .bid_multiplier = l->bid_multiplier,
        .pacing_rate = l->pacing_rate,
        .spent_micros = l->spent_micros,
        .remaining_micros = remaining(l),
        .event_time_ms = event_time,
    };
    l->decisions++;
    state_dirty(b->store, c);
    b->emit.decision(b->emit.ctx, &d);
}

/* The best action; among equal values the multiplier nearest 1 (the base
 * bid as it is), so an untrained campaign bids its base bid rather than the
 * first multiplier listed. Then the lower index. */
static int64_t greedy(const struct budget *b, const double *row)
{
    int64_t best = 0;
    for (int a = 1; a < b->p.n_actions; a++) {
        double d = fabs(log(b->p.multipliers[a])), d_best = fabs(log(b->p.multipliers[best]));
        if (row[a] > row[best] || (row[a] == row[best] && d < d_best))
            best = a;
    }
    return best;
}

static int64_t choose_action(const struct budget *b, struct campaign_state *c)
{
    const struct campaign_ledger *l = &c->l;
    uint64_t period = (uint64_t)l->period_start_ms, slot = (uint64_t)l->slot;
    struct eddy_str id = state_key(c);
    if (draw(b, id, DRAW_EXPLORE, period, slot, 0) < b->p.epsilon)
        return (int64_t)(draw(b, id, DRAW_ACTION, period, slot, 0) * b->p.n_actions);
    return greedy(b, q_row(b, c, l->q_state));
}

/* The action's factor on the plan, held within [1 / cap, cap]: however
 * the Q-table learns or explores, a decision stays near the plan. */
static double capped_factor(const struct budget *b, int64_t action)
{
    double f = b->p.multipliers[action];
    return fmin(b->p.explore_cap, fmax(1.0 / b->p.explore_cap, f));
}

/* Opens the ledger's current slot: makes the plan, picks the action for its
 * Q-state, derives the pacing rate and publishes the decision, stamped with
 * the slot start. */
static void open_slot(struct budget *b, struct campaign_state *c)
{
    struct campaign_ledger *l = &c->l;
    int64_t start = slot_start(b, l);
    if (l->slot == 0)
        l->period_expected_micros = 0;
    l->plan_multiplier = b->p.pacing == PACING_MARKET ? market_plan(b, c) : 1.0;
    l->q_state = q_state(b, l);
    l->action = choose_action(b, c);
    l->bid_multiplier = l->plan_multiplier * capped_factor(b, l->action);
    l->pacing_rate = pacing_rate(b, l, start);
    l->slot_cost_per_auction = cost_per_auction(&c->m, l->bid_multiplier);
    l->slot_plan_micros = (double)(remaining(l) > 0 ? remaining(l) : 0) /
                          (double)(b->p.slots - l->slot);
    l->slot_spent_micros = 0;
    l->slot_clicks = 0;
    l->slot_value = 0;
    l->slot_auctions = 0;
    l->slot_price_sum_micros = 0;
    publish(b, c, start);
}

/* What the slot just closed tells the next: its pace and CPM buckets, its
 * expected spend, the auction rate; and the market forgets a little. */
static void observe_slot(const struct budget *b, struct campaign_state *c)
{
    struct campaign_ledger *l = &c->l;
    double n = (double)l->slot_auctions;
    double cpm = n > 0 ? (double)l->slot_price_sum_micros / n : 0;
    int64_t pace = level((double)l->slot_spent_micros, l->slot_plan_micros);
    l->market_state = 3 * pace + (n > 0 ? level(cpm, market_cpm(&c->m)) : 1);
    l->period_expected_micros += n * l->slot_cost_per_auction;
    l->auctions_per_slot = l->auctions_per_slot > 0
                               ? b->decay * l->auctions_per_slot + (1 - b->decay) * n
                               : n;
    market_decay(&c->m, b->decay);
}

/* One Q-learning step for the action taken in the slot just closed. next is
 * the Q-row of the state the clock moved to, NULL when the period ended
 * (terminal: the next period's budget is a fresh episode). */
static void q_update(const struct budget *b, struct campaign_state *c, double r,
                     const double *next)
{
    double *q = &q_row(b, c, c->l.q_state)[c->l.action];
    double target = r + (next ? b->p.gamma * next[argmax(next, b->p.n_actions)] : 0.0);
    *q += b->p.alpha * (target - *q);
}

/* Closes the current slot and opens the next. After the last slot of a
 * period the clock goes to `period`, the period of the time being advanced
 * to, so whole periods without events are skipped in one step. */
static void next_slot(struct budget *b, struct campaign_state *c, int64_t period)
{
    struct campaign_ledger *l = &c->l;
    double r = slot_reward(b, l);
    bool period_ends = l->slot + 1 == b->p.slots;
    observe_slot(b, c);
    if (period_ends) {
        l->period_start_ms = period;
        l->slot = 0;
        l->spent_micros = 0;
    } else {
        l->slot++;
    }
    q_update(b, c, r, period_ends ? NULL : q_row(b, c, q_state(b, l)));
    open_slot(b, c);
}

/* (Re)starts a clock at (period, slot) without learning from the past.
 * Spend stays when the period is the one it was made in. */
static void start_clock(struct budget *b, struct campaign_state *c, int64_t period,
                        int64_t slot)
{
    struct campaign_ledger *l = &c->l;
    if (period != l->period_start_ms)
        l->spent_micros = 0;
    l->period_start_ms = period;
    l->slot = slot;
    open_slot(b, c);
}

/* Moves a configured campaign's clock forward to event time t, one decision
 * per slot boundary crossed. Time never goes back: a t before the current
 * slot changes nothing. Times before the epoch count as the epoch. */
static void advance(struct budget *b, struct campaign_state *c, int64_t t)
{
    struct campaign_ledger *l = &c->l;
    t = t < 0 ? 0 : t;
    int64_t period = t / l->period_ms * l->period_ms;
    int64_t slot = (t - period) * b->p.slots / l->period_ms;
    if (!clock_fits(b, c)) {
        start_clock(b, c, period, slot);
        return;
    }
    if (period < l->period_start_ms)
        return;
    while (l->period_start_ms < period || l->slot < slot)
        next_slot(b, c, period);
}

/* --- events ------------------------------------------------------------ */

/* The campaign, created if new. A Q-table of another size (stored under
 * other params, or new) is replaced by zeros of this operator's size. */
static struct campaign_state *campaign(struct budget *b, struct eddy_str id)
{
    struct campaign_state *c = state_get(b->store, id, true);
    if (c->n_q != b->n_q) {
        free(c->q);
        c->n_q = b->n_q;
        c->q = xcalloc(b->n_q, sizeof *c->q);
        state_dirty(b->store, c);
    }
    return c;
}

/* Period lengths below one ms per slot would make empty slots, and longer
 * than INT64_MAX / slots would overflow the slot arithmetic. */
static bool config_valid(const struct budget *b, const struct campaign_budget *cb)
{
    return cb->budget_micros > 0 && cb->base_bid_micros >= 0 &&
           cb->period_ms >= b->p.slots && cb->period_ms <= INT64_MAX / b->p.slots;
}

/* Puts a running clock on the grid of a new period length: the current slot
 * becomes the slot of the new grid that holds its start time. */
static void regrid(const struct budget *b, struct campaign_ledger *l, int64_t period_ms)
{
    int64_t start = slot_start(b, l);
    l->period_start_ms = start / period_ms * period_ms;
    l->slot = (start - l->period_start_ms) * b->p.slots / period_ms;
}

static void on_campaign(struct budget *b, const struct campaign_budget *cb)
{
    if (!config_valid(b, cb)) {
        char why[160];
        snprintf(why, sizeof why, "CampaignBudget %.*s: period_ms %lld does not fit %d slots, "
                 "or budget <= 0", (int)(cb->campaign_id.len > 64 ? 64 : cb->campaign_id.len),
                 cb->campaign_id.ptr, (long long)cb->period_ms, b->p.slots);
        if (b->emit.rejected)
            b->emit.rejected(b->emit.ctx, "budget", why);
        return;
    }
    struct campaign_state *c = campaign(b, cb->campaign_id);
    struct campaign_ledger *l = &c->l;
    if (l->configured && clock_fits(b, c) && l->period_ms != cb->period_ms)
        regrid(b, l, cb->period_ms);
    l->configured = 1;
    l->budget_micros = cb->budget_micros;
    l->period_ms = cb->period_ms;
    l->base_bid_micros = cb->base_bid_micros;
    state_dirty(b->store, c);
}

/* The throttle: a deterministic coin with P(heads) = pacing_rate, keyed by
 * the auction's content. */
static bool participates(const struct budget *b, const struct campaign_state *c,
                         const struct ad_event *ev)
{
    uint64_t pctr_bits;
    memcpy(&pctr_bits, &ev->pctr, sizeof pctr_bits);
    return draw(b, state_key(c), DRAW_THROTTLE, (uint64_t)ev->timestamp_ms,
                (uint64_t)ev->market_price_micros, pctr_bits) < c->l.pacing_rate;
}

/* Books a won auction. The price always fits in the remaining budget, so
 * spend never exceeds the budget; once too little is left for a typical
 * win the stop is published at once rather than at the next boundary. */
static void book_win(struct budget *b, struct campaign_state *c, const struct ad_event *ev)
{
    struct campaign_ledger *l = &c->l;
    l->spent_micros += ev->market_price_micros;
    l->slot_spent_micros += ev->market_price_micros;
    l->wins++;
    l->last_auction_won = 1;
    if (l->pacing_rate > 0 && budget_spent(l)) {
        int64_t start = slot_start(b, l);
        l->pacing_rate = 0;
        publish(b, c, ev->timestamp_ms > start ? ev->timestamp_ms : start);
    }
}

static void on_auction(struct budget *b, struct campaign_state *c, const struct ad_event *ev)
{
    struct campaign_ledger *l = &c->l;
    l->auctions++;
    l->last_auction_won = 0;
    if (!l->configured || !ev->has_pctr || !ev->has_market_price)
        return;
    int64_t price = ev->market_price_micros;
    if (price >= 0) {
        l->priced_auctions++;
        l->price_sum_micros += price;
        l->slot_auctions++;
        l->slot_price_sum_micros += price;
        market_add(&c->m, market_bin(ev->pctr, l->base_bid_micros, price), price);
    }
    double bid = ev->pctr * (double)l->base_bid_micros * l->bid_multiplier;
    /* Written as !(bid >= price) so that a NaN bid loses. */
    if (price < 0 || price > remaining(l) || !(bid >= (double)price) || !participates(b, c, ev))
        return;
    book_win(b, c, ev);
}

static void on_ad(struct budget *b, const struct ad_event *ev)
{
    struct campaign_state *c = campaign(b, ev->campaign_id);
    struct campaign_ledger *l = &c->l;
    if (l->configured)
        advance(b, c, ev->timestamp_ms);
    switch (ev->type) {
    case AD_AUCTION:
        on_auction(b, c, ev);
        break;
    case AD_CLICK:
        l->clicks++;
        l->slot_clicks += l->last_auction_won;
        break;
    case AD_IMPRESSION:
        l->impressions++;
        if (ev->has_cost)
            l->reported_cost_micros += ev->cost_micros;
        break;
    case AD_CONVERSION:
        l->conversions++;
        if (ev->has_value) {
            l->conversion_value += ev->value;
            if (l->last_auction_won)
                l->slot_value += ev->value;
        }
        break;
    case AD_TYPE_COUNT:
        break;
    }
    state_dirty(b->store, c);
}

/* --- the operator ------------------------------------------------------ */

static int check_params(const struct bid_params *p, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (p->slots < 1 || p->buckets < 1)
        bad = "slots and buckets must be at least 1";
    else if (p->n_actions < 1 || p->n_actions > BID_MAX_ACTIONS)
        bad = "n_actions must be between 1 and " STR(BID_MAX_ACTIONS);
    else if ((int64_t)p->slots * p->buckets * MARKET_STATES >
             (int64_t)(UINT32_MAX / (uint32_t)p->n_actions))
        bad = "slots * buckets * 9 * n_actions does not fit a Q-table";
    else if (!(p->alpha >= 0 && p->alpha <= 1) || !(p->gamma >= 0 && p->gamma <= 1) ||
             !(p->epsilon >= 0 && p->epsilon <= 1))
        bad = "alpha, gamma and epsilon must be in [0,1]";
    else if (!(p->overspend_penalty >= 0) || !isfinite(p->overspend_penalty))
        bad = "overspend_penalty must be finite and >= 0";
    else if (!(p->explore_cap >= 1))
        bad = "explore.cap must be >= 1";
    else if (!(p->half_life > 0) || !isfinite(p->half_life))
        bad = "market.half_life must be finite and > 0";
    else if (p->pacing != PACING_EVEN && p->pacing != PACING_MARKET)
        bad = "pacing must be even or market";
    else if (p->reward != REWARD_CLICKS && p->reward != REWARD_VALUE)
        bad = "reward must be clicks or value";
    for (int a = 0; !bad && a < p->n_actions; a++)
        if (!(p->multipliers[a] >= 0) || !isfinite(p->multipliers[a]))
            bad = "multipliers must be finite and >= 0";
    if (bad)
        snprintf(err, errlen, "budget: %s", bad);
    return bad ? -1 : 0;
}

static void *budget_create(const void *params, struct eddy_state *st,
                           const struct eddy_emit *emit, char *err, size_t errlen)
{
    const struct bid_params *p = params;
    if (check_params(p, err, errlen))
        return NULL;
    if (!emit || !emit->decision) {
        snprintf(err, errlen, "budget: no decision output");
        return NULL;
    }
    struct state_store *store = state_store(st, &budget_campaigns);
    if (!store) {
        snprintf(err, errlen, "budget: the state was opened without the %s store",
                 budget_campaigns.name);
        return NULL;
    }
    struct budget *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "budget: out of memory");
        return NULL;
    }
    b->p = *p;
    b->store = store;
    b->emit = *emit;
    b->n_states = (int64_t)p->slots * p->buckets * MARKET_STATES;
    b->n_q = (uint32_t)(b->n_states * p->n_actions);
    b->decay = pow(0.5, 1.0 / (p->half_life * p->slots));
    return b;
}

static void budget_process(void *self, const struct eddy_event *ev)
{
    if (ev->kind == EV_CAMPAIGN)
        on_campaign(self, &ev->u.campaign);
    else if (ev->kind == EV_AD)
        on_ad(self, &ev->u.ad);
}

struct flush_ctx {
    struct budget *b;
    int64_t watermark_ms;
};

/* A campaign whose Q-table still has another size (params changed since it
 * was stored) is skipped: its next record resizes the table first. */
static void flush_campaign(void *value, void *ctx)
{
    struct campaign_state *c = value;
    struct flush_ctx *f = ctx;
    /* Only running clocks: a clock starts at the campaign's own first event,
     * never at a flush, whose watermark depends on where batches end. */
    if (c->l.configured && c->n_q == f->b->n_q && clock_fits(f->b, c))
        advance(f->b, c, f->watermark_ms);
}

/* Publishes the decisions of every slot boundary the watermark crossed, for
 * running campaigns with no traffic too. INT64_MIN means no event time yet. */
static void budget_flush(void *self, int64_t watermark_ms)
{
    struct budget *b = self;
    struct flush_ctx f = {b, watermark_ms};
    if (watermark_ms != INT64_MIN)
        state_foreach(b->store, flush_campaign, &f);
}

static void budget_destroy(void *self)
{
    free(self);
}

/* A lookup that changes nothing: campaign() would resize the Q-table of a
 * campaign stored with another size, and only an instance knows the size. */
static bool budget_query(struct eddy_state *st, struct eddy_query *q)
{
    struct state_store *store = state_store(st, &budget_campaigns);
    const struct campaign_state *c =
        store ? state_find(store, q->u.ledger.campaign_id) : NULL;
    q->u.ledger.ledger = c ? &c->l : NULL;
    return c != NULL;
}

/* --- the campaigns store ---------------------------------------------- */

_Static_assert(sizeof(struct campaign_ledger) % 8 == 0,
               "campaign_ledger must hold 8-byte fields only (no padding)");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the campaign encoding is little-endian memcpy; add byte swaps for this host");

_Static_assert(sizeof(struct market) == (2 * MARKET_BINS + 1) * sizeof(double),
               "struct market must be plain doubles (no padding)");

#define N_AT (sizeof(struct campaign_ledger) + sizeof(struct market)) /* where n_q is */
#define Q_AT (N_AT + 4) /* where the Q-table starts */

static void campaign_init(void *value, int dim)
{
    (void)dim; /* a campaign holds no vector */
    struct campaign_ledger *l = &((struct campaign_state *)value)->l;
    l->period_start_ms = INT64_MIN;
    l->slot = -1;
    l->bid_multiplier = 1.0;
    l->plan_multiplier = 1.0;
    l->pacing_rate = 1.0;
    l->market_state = 4; /* on plan, CPM as the market's */
}

static size_t campaign_encoded_size(const void *value, int dim)
{
    (void)dim;
    return Q_AT + (size_t)((const struct campaign_state *)value)->n_q * sizeof(double);
}

static void campaign_encode(const void *value, int dim, char *out)
{
    (void)dim;
    const struct campaign_state *c = value;
    memcpy(out, &c->l, sizeof c->l);
    memcpy(out + sizeof c->l, &c->m, sizeof c->m);
    memcpy(out + N_AT, &c->n_q, 4);
    if (c->n_q)
        memcpy(out + Q_AT, c->q, (size_t)c->n_q * sizeof(double));
}

static bool campaign_decode(const char *in, size_t len, int dim, void *value, char *why,
                            size_t whylen)
{
    (void)dim;
    struct campaign_state *c = value;
    uint32_t n_q = 0;
    if (len >= Q_AT)
        memcpy(&n_q, in + N_AT, 4);
    if (len < Q_AT || len != Q_AT + (size_t)n_q * sizeof(double)) {
        snprintf(why, whylen, "value is %zu bytes, expected %zu", len + 1,
                 Q_AT + (size_t)n_q * sizeof(double) + 1); /* counting the version byte */
        return false;
    }
    memcpy(&c->l, in, sizeof c->l);
    memcpy(&c->m, in + sizeof c->l, sizeof c->m);
    c->n_q = n_q;
    c->q = xcalloc(n_q, sizeof *c->q);
    memcpy(c->q, in + Q_AT, (size_t)n_q * sizeof(double));
    return true;
}

static size_t campaign_heap_bytes(const void *value)
{
    return (size_t)((const struct campaign_state *)value)->n_q * sizeof(double);
}

static void campaign_free(void *value)
{
    free(((struct campaign_state *)value)->q);
}

/* The one table of struct campaign_ledger's fields, in stored order, for
 * every JSON view of a ledger (`eddy state`, the HTTP API). */
enum ledger_kind {
    L_INT,
    L_FLAG,  /* 0 or 1 */
    L_TIME,  /* ms; INT64_MIN: not set yet */
    L_REAL,
};
#define LEDGER(field, kind) {#field, offsetof(struct campaign_ledger, field), kind}
static const struct {
    const char *name;
    size_t off;
    enum ledger_kind kind;
} ledger_fields[] = {
    LEDGER(configured, L_FLAG),          LEDGER(budget_micros, L_INT),
    LEDGER(period_ms, L_INT),            LEDGER(base_bid_micros, L_INT),
    LEDGER(period_start_ms, L_TIME),     LEDGER(slot, L_INT),
    LEDGER(action, L_INT),               LEDGER(q_state, L_INT),
    LEDGER(spent_micros, L_INT),         LEDGER(slot_spent_micros, L_INT),
    LEDGER(slot_clicks, L_INT),          LEDGER(last_auction_won, L_FLAG),
    LEDGER(auctions, L_INT),             LEDGER(wins, L_INT),
    LEDGER(clicks, L_INT),               LEDGER(impressions, L_INT),
    LEDGER(conversions, L_INT),          LEDGER(reported_cost_micros, L_INT),
    LEDGER(priced_auctions, L_INT),      LEDGER(price_sum_micros, L_INT),
    LEDGER(conversion_value, L_REAL),    LEDGER(bid_multiplier, L_REAL),
    LEDGER(pacing_rate, L_REAL),         LEDGER(decisions, L_INT),
    LEDGER(plan_multiplier, L_REAL),     LEDGER(market_state, L_INT),
    LEDGER(slot_auctions, L_INT),        LEDGER(slot_price_sum_micros, L_INT),
    LEDGER(slot_plan_micros, L_REAL),    LEDGER(slot_cost_per_auction, L_REAL),
    LEDGER(period_expected_micros, L_REAL), LEDGER(auctions_per_slot, L_REAL),
    LEDGER(slot_value, L_REAL),
};
_Static_assert(sizeof ledger_fields / sizeof ledger_fields[0] * 8 ==
                   sizeof(struct campaign_ledger),
               "ledger_fields must list every field of struct campaign_ledger");

static json_t *ledger_field_json(const struct campaign_ledger *l, size_t i,
                                 enum ledger_style style)
{
    const char *p = (const char *)l + ledger_fields[i].off;
    enum ledger_kind kind = ledger_fields[i].kind;
    int64_t v;
    double d;
    memcpy(&v, p, sizeof v);
    memcpy(&d, p, sizeof d);
    if (kind == L_REAL)
        return sjson_real(d);
    if (style == LEDGER_READABLE && kind == L_FLAG)
        return json_boolean(v);
    if (style == LEDGER_READABLE && kind == L_TIME && v == INT64_MIN)
        return json_null();
    return json_integer(v);
}

json_t *budget_ledger_json(json_t *doc, const struct campaign_ledger *l,
                           enum ledger_style style)
{
    for (size_t i = 0; i < sizeof ledger_fields / sizeof ledger_fields[0]; i++)
        doc = sjson_with(doc, ledger_fields[i].name, ledger_field_json(l, i, style));
    return doc;
}

static json_t *campaign_json(json_t *doc, const void *value, struct eddy_state *st)
{
    (void)st;
    const struct campaign_state *c = value;
    doc = budget_ledger_json(doc, &c->l, LEDGER_RAW);
    doc = sjson_with(doc, "market_auctions", sjson_doubles(c->m.auctions, MARKET_BINS));
    doc = sjson_with(doc, "market_cost_micros", sjson_doubles(c->m.cost_micros, MARKET_BINS));
    doc = sjson_with(doc, "market_total", sjson_real(c->m.total));
    return sjson_with(doc, "q", sjson_doubles(c->q, c->n_q));
}

const struct state_codec budget_campaigns = {
    .name = "campaigns",
    .kind = "campaign",
    .version = 2,
    .value_size = sizeof(struct campaign_state),
    .init = campaign_init,
    .encoded_size = campaign_encoded_size,
    .encode = campaign_encode,
    .decode = campaign_decode,
    .heap_bytes = campaign_heap_bytes,
    .free = campaign_free,
    .to_json = campaign_json,
};

static const char *const pacing_choices[] = {"even", "market", NULL};
static const char *const reward_choices[] = {"clicks", "value", NULL};

/* The keys of [bidding], which the pipeline reads into struct bid_params. */
#define BID(field) offsetof(struct bid_params, field)
static const struct eddy_param bid_keys[] = {
    {.key = "slots", .type = PARAM_INT, .def = "24", .off = BID(slots), .min = 1, .max = 1440,
     .help = "Decision slots per budget period"},
    {.key = "budget.buckets", .type = PARAM_INT, .def = "4", .off = BID(buckets), .min = 1,
     .max = 100, .help = "Buckets of remaining budget in the Q-state"},
    {.key = "pacing", .type = PARAM_CHOICE, .def = "market", .off = BID(pacing),
     .choices = pacing_choices,
     .help = "The plan: market (multiplier from the market histogram) or even (throttle)"},
    {.key = "multipliers", .type = PARAM_POSITIVE_LIST, .def = "0.9,1.0,1.1",
     .off = BID(multipliers), .count_off = BID(n_actions), .max_count = BID_MAX_ACTIONS,
     .help = "The actions: factors on the plan's bid multiplier, comma separated, 1 to 16 "
             "values, each > 0"},
    {.key = "explore.cap", .type = PARAM_DOUBLE, .def = "1.1", .off = BID(explore_cap),
     .min = 1, .max = INFINITY,
     .help = "A decision's multiplier stays within [plan / cap, plan x cap]"},
    {.key = "market.half_life", .type = PARAM_DOUBLE, .def = "10", .off = BID(half_life),
     .min = 0.01, .max = 1e6, .help = "Half-life of the market histogram, in budget periods"},
    {.key = "reward", .type = PARAM_CHOICE, .def = "clicks", .off = BID(reward),
     .choices = reward_choices,
     .help = "What a slot's reward counts: clicks, or value (AdEvent.value of conversions)"},
    {.key = "alpha", .type = PARAM_DOUBLE, .def = "0.1", .off = BID(alpha), .min = 0, .max = 1,
     .help = "Q-learning rate"},
    {.key = "gamma", .type = PARAM_DOUBLE, .def = "0.95", .off = BID(gamma), .min = 0, .max = 1,
     .help = "Discount of future rewards"},
    {.key = "epsilon", .type = PARAM_DOUBLE, .def = "0.05", .off = BID(epsilon), .min = 0,
     .max = 1, .help = "Probability of exploring a random action"},
    {.key = "overspend.penalty", .type = PARAM_DOUBLE, .def = "1.0", .off = BID(overspend_penalty),
     .min = 0, .max = INFINITY, .help = "Reward penalty for spending ahead of an even plan"},
    {.key = "seed", .type = PARAM_UINT64, .def = "42", .off = BID(seed),
     .help = "Seed of the exploration draws (mixed with event content)"},
};

static const struct state_codec *const budget_stores[] = {&budget_campaigns, NULL};

const struct eddy_operator eddy_op_budget = {
    .name = "budget",
    .section = "bidding",
    .section_help = "Budget pacing: a market plan corrected by Q-learning (see docs/budget.md).",
    .params = bid_keys,
    .n_params = sizeof bid_keys / sizeof bid_keys[0],
    .params_size = sizeof(struct bid_params),
    .create = budget_create,
    .process = budget_process,
    .flush = budget_flush,
    .destroy = budget_destroy,
    .clock = EV_AD,
    .inputs = EVENT_BIT(EV_AD) | EVENT_BIT(EV_CAMPAIGN),
    .outputs = OUTPUT_BIT(OUTPUT_DECISIONS),
    .stores = budget_stores,
    .answers = QUERY_BIT(QUERY_CAMPAIGN_LEDGER),
    .query = budget_query,
};
