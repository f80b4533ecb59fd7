/* auction.h: the second-price auction simulator and the bidding baselines
 * of a backtest, under the budget protocol of Cai et al. (WSDM 2017).
 *
 * A log of auctions (event time, pCTR, market price, whether the impression
 * was clicked) is cut into episodes of `episode` consecutive auctions; each
 * episode has its own budget, c0 x episode x (mean market price of the log
 * being evaluated). A bid wins when bid >= market price and pays the market
 * price; an auction whose price exceeds what is left of the episode's budget
 * cannot be won, so no policy ever overspends. The click of a won auction is
 * the logged click.
 *
 * Policies:
 *   lin:    bid = b0 * pCTR / mean_pctr, no pacing (Perlich et al.); b0 is
 *           tuned on a training log by lin_tune(): the b0 of a fixed
 *           log-spaced grid with the most clicks (ties: the lower b0).
 *   oracle: per episode, in hindsight, a greedy knapsack: auctions sorted by
 *           pCTR / price (descending; price 0 first; ties by position), taken
 *           while the price fits in what is left. An upper bound for any
 *           policy bidding on pCTR.
 *   eddy:   simulated by the budget operator itself (operators/budget.c);
 *           the replay books each of its wins here with bid_result_book().
 *
 * Per-slot spend: each episode is cut into `slots` equal slots by auction
 * index (slot = index_in_episode * slots / episode); spend per slot is summed
 * over episodes, against the even plan budget / slots per episode. */
#ifndef EDDY_AUCTION_H
#define EDDY_AUCTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auction {
    int64_t t_ms;
    double pctr;
    int64_t price_micros;
    bool click;
};

#define AUCTION_MAX_SLOTS 96

struct bid_result {
    uint64_t auctions, wins, clicks;
    double value;                    /* conversion value (AdEvent.value) of won auctions */
    int64_t spend_micros;
    int64_t budget_micros;           /* summed over the episodes */
    uint64_t episodes;
    uint64_t episodes_exhausted;     /* episodes whose budget ran out (see below) */
    int64_t first_exhausted_ms;      /* event time the budget first ran out; -1 never */
    int64_t max_overspend_micros;    /* max over episodes of spend - budget (<= 0) */
    /* run parameters, from bid_result_init() */
    uint64_t episode;
    int64_t episode_budget_micros;
    double mean_price;
    int slots;
    /* running episode: auctions seen and spend in it, whether it ran out,
     * and the time of its latest auction */
    uint64_t in_episode;
    int64_t episode_spend_micros;
    bool episode_ran_out;
    int64_t last_auction_ms;
    int64_t slot_spend_micros[AUCTION_MAX_SLOTS]; /* summed over episodes */
};
/* "Ran out": what is left is less than the log's mean market price, i.e.
 * it no longer pays for a typical win. */

/* Mean market price and mean pCTR of a log (0 for an empty one). */
void auction_means(const struct auction *a, size_t n, double *mean_price, double *mean_pctr);

/* The Cai et al. episode budget. */
int64_t auction_episode_budget(double c0, uint64_t episode, double mean_price);

/* Starts a run: episodes of `episode` auctions with `budget_micros` each,
 * `slots` slots per episode (1..AUCTION_MAX_SLOTS); mean_price is the log's,
 * for "ran out". */
void bid_result_init(struct bid_result *r, uint64_t episode, int64_t budget_micros,
                     double mean_price, int slots);

/* Incremental booking, for a policy simulated elsewhere (eddy): call
 * bid_result_auction() for every auction in order, and bid_result_book()
 * for an auction won, right after its bid_result_auction(), and
 * bid_result_click() when that auction's impression was clicked. */
void bid_result_auction(struct bid_result *r, int64_t t_ms);
void bid_result_book(struct bid_result *r, int64_t price_micros);
/* Closes the open episode early: for a policy whose episodes are periods
 * of event time (eddy), which may hold fewer auctions than `episode`. */
void bid_result_end_episode(struct bid_result *r);
/* The logged click of the auction booked last. */
void bid_result_click(struct bid_result *r);
/* A conversion of the auction booked last, worth value. */
void bid_result_value(struct bid_result *r, double value);
/* Closes the last (possibly partial) episode. lin_simulate() and
 * oracle_simulate() call it themselves. */
void bid_result_finish(struct bid_result *r);

/* Both start `out` with bid_result_init(out, episode, budget_micros,
 * mean price of a[], slots) and finish it. */
void lin_simulate(const struct auction *a, size_t n, uint64_t episode, int64_t budget_micros,
                  double b0, double mean_pctr, int slots, struct bid_result *out);
double lin_tune(const struct auction *train, size_t n, uint64_t episode, double c0, int slots);
void oracle_simulate(const struct auction *a, size_t n, uint64_t episode,
                     int64_t budget_micros, int slots, struct bid_result *out);

#endif
