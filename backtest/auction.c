/* auction.c: the second-price auction simulator and the lin / oracle
 * baselines of a backtest (see auction.h for the protocol).
 *
 * Episode bookkeeping: an episode is "open" exactly when in_episode > 0
 * between calls. bid_result_auction() opens one lazily (so a run with no
 * auctions has no episodes), and closing resets in_episode to 0, which is
 * what makes bid_result_finish() idempotent without an extra field. */
#include "backtest/auction.h"

#include <math.h>
#include <stdlib.h>

void auction_means(const struct auction *a, size_t n, double *mean_price, double *mean_pctr)
{
    double sp = 0, sc = 0;
    for (size_t i = 0; i < n; i++) {
        sp += (double)a[i].price_micros;
        sc += a[i].pctr;
    }
    *mean_price = n ? sp / (double)n : 0;
    *mean_pctr = n ? sc / (double)n : 0;
}

int64_t auction_episode_budget(double c0, uint64_t episode, double mean_price)
{
    return llround(c0 * (double)episode * mean_price);
}

void bid_result_init(struct bid_result *r, uint64_t episode, int64_t budget_micros,
                     double mean_price, int slots)
{
    *r = (struct bid_result){0};
    /* An episode of 0 auctions is meaningless (and would divide by zero in
     * the slot index): treat it as 1. */
    r->episode = episode ? episode : 1;
    r->episode_budget_micros = budget_micros;
    r->mean_price = mean_price;
    r->slots = slots < 1 ? 1 : slots > AUCTION_MAX_SLOTS ? AUCTION_MAX_SLOTS : slots;
    r->first_exhausted_ms = -1;
    /* Sentinel: the first closed episode replaces it; finish() turns it
     * into 0 when no episode was ever opened. */
    r->max_overspend_micros = INT64_MIN;
}

static int64_t remaining(const struct bid_result *r)
{
    return r->episode_budget_micros - r->episode_spend_micros;
}

static bool ran_out(const struct bid_result *r)
{
    return (double)remaining(r) < r->mean_price;
}

static void close_episode(struct bid_result *r)
{
    int64_t over = r->episode_spend_micros - r->episode_budget_micros;
    if (over > r->max_overspend_micros)
        r->max_overspend_micros = over;
    r->in_episode = 0;
    r->episode_spend_micros = 0;
}

static void mark_exhausted(struct bid_result *r)
{
    r->episode_ran_out = true;
    r->episodes_exhausted++;
    if (r->first_exhausted_ms < 0)
        r->first_exhausted_ms = r->last_auction_ms;
}

/* An episode whose budget does not even pay for a typical win has run out
 * from its first auction. */
static void open_episode(struct bid_result *r)
{
    r->episodes++;
    r->budget_micros += r->episode_budget_micros;
    r->episode_spend_micros = 0;
    r->episode_ran_out = false;
    r->in_episode = 0;
    if (ran_out(r))
        mark_exhausted(r);
}

void bid_result_auction(struct bid_result *r, int64_t t_ms)
{
    r->last_auction_ms = t_ms;
    if (r->in_episode == r->episode)
        close_episode(r);
    if (r->in_episode == 0)
        open_episode(r);
    r->auctions++;
    r->in_episode++;
}

static int slot_of(const struct bid_result *r)
{
    /* 128 bits: index * slots must not wrap for a huge episode. */
    unsigned __int128 s = (unsigned __int128)(r->in_episode - 1) * (unsigned)r->slots / r->episode;
    return s < (unsigned)r->slots ? (int)s : r->slots - 1;
}

void bid_result_book(struct bid_result *r, int64_t price_micros)
{
    /* Booking without an auction is a caller bug; ignore it rather than
     * charge a closed episode. */
    if (r->in_episode == 0)
        return;
    r->wins++;
    r->spend_micros += price_micros;
    r->episode_spend_micros += price_micros;
    r->slot_spend_micros[slot_of(r)] += price_micros;
    if (!r->episode_ran_out && ran_out(r))
        mark_exhausted(r);
}

void bid_result_end_episode(struct bid_result *r)
{
    if (r->in_episode > 0)
        close_episode(r);
}

void bid_result_click(struct bid_result *r)
{
    r->clicks++;
}

void bid_result_value(struct bid_result *r, double value)
{
    r->value += value;
}

void bid_result_finish(struct bid_result *r)
{
    if (r->in_episode > 0)
        close_episode(r); /* sets in_episode = 0: a second finish is a no-op */
    if (r->episodes == 0)
        r->max_overspend_micros = 0;
}

void lin_simulate(const struct auction *a, size_t n, uint64_t episode, int64_t budget_micros,
                  double b0, double mean_pctr, int slots, struct bid_result *out)
{
    double mean_price, unused;
    auction_means(a, n, &mean_price, &unused);
    bid_result_init(out, episode, budget_micros, mean_price, slots);
    for (size_t i = 0; i < n; i++) {
        bid_result_auction(out, a[i].t_ms);
        double bid = mean_pctr > 0 ? b0 * a[i].pctr / mean_pctr : 0;
        if (bid >= (double)a[i].price_micros && a[i].price_micros <= remaining(out)) {
            bid_result_book(out, a[i].price_micros);
            if (a[i].click)
                bid_result_click(out);
        }
    }
    bid_result_finish(out);
}

/* The fixed grid: 10 points per decade from mean_price / 100 to
 * mean_price * 100, so b0 is in the units of the price (micros). */
#define LIN_GRID_POINTS 61
#define LIN_GRID_MID 30

static double lin_grid(double mean_price, int k)
{
    return mean_price * pow(10.0, (double)(k - LIN_GRID_MID) / 10.0);
}

double lin_tune(const struct auction *train, size_t n, uint64_t episode, double c0, int slots)
{
    if (n == 0)
        return 0;
    double mean_price, mean_pctr;
    auction_means(train, n, &mean_price, &mean_pctr);
    int64_t budget = auction_episode_budget(c0, episode, mean_price);
    double best = 0;
    uint64_t best_clicks = 0;
    struct bid_result r;
    for (int k = 0; k < LIN_GRID_POINTS; k++) {
        double b0 = lin_grid(mean_price, k);
        lin_simulate(train, n, episode, budget, b0, mean_pctr, slots, &r);
        /* Strictly more: ties keep the lower b0 found first. */
        if (k == 0 || r.clicks > best_clicks) {
            best = b0;
            best_clicks = r.clicks;
        }
    }
    return best;
}

/* Oracle: one episode's items, sorted by value per price. */
struct item {
    double key;   /* pctr / price; +inf for a free auction */
    size_t pos;   /* position in the log, for ties and for the replay */
};

static double item_key(const struct auction *x)
{
    if (x->price_micros <= 0)
        return INFINITY; /* free: always worth taking first */
    double k = x->pctr / (double)x->price_micros;
    return isnan(k) ? -INFINITY : k; /* a NaN would break the total order */
}

static int by_key_desc(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Marks won[] for the episode a[0..m) given the sort scratch it[]. */
static void oracle_choose(const struct auction *a, size_t m, int64_t budget, struct item *it,
                          bool *won)
{
    for (size_t i = 0; i < m; i++) {
        it[i] = (struct item){item_key(&a[i]), i};
        won[i] = false;
    }
    qsort(it, m, sizeof *it, by_key_desc);
    int64_t left = budget;
    for (size_t i = 0; i < m; i++) {
        int64_t p = a[it[i].pos].price_micros;
        if (p <= left) { /* a misfit is skipped: a cheaper one may still fit */
            won[it[i].pos] = true;
            left -= p;
        }
    }
}

void oracle_simulate(const struct auction *a, size_t n, uint64_t episode,
                     int64_t budget_micros, int slots, struct bid_result *out)
{
    double mean_price, unused;
    auction_means(a, n, &mean_price, &unused);
    bid_result_init(out, episode, budget_micros, mean_price, slots);
    size_t ep = out->episode < n ? (size_t)out->episode : n;
    struct item *it = ep ? malloc(ep * sizeof *it) : NULL;
    bool *won = ep ? calloc(ep, sizeof *won) : NULL;
    /* Out of memory: replay with no wins rather than abort the backtest. */
    bool ok = it && won;
    for (size_t s = 0; s < n; s += ep) {
        size_t m = n - s < ep ? n - s : ep;
        if (ok)
            oracle_choose(a + s, m, budget_micros, it, won);
        /* Replay in time order so slots and exhaustion times are right;
         * the chosen set fits the budget, so every booking fits too. */
        for (size_t i = 0; i < m; i++) {
            bid_result_auction(out, a[s + i].t_ms);
            if (ok && won[i] && a[s + i].price_micros <= remaining(out)) {
                bid_result_book(out, a[s + i].price_micros);
                if (a[s + i].click)
                    bid_result_click(out);
            }
        }
    }
    free(it);
    free(won);
    bid_result_finish(out);
}
