/* backtest.h: the evaluation a replay runs over its own stream.
 *
 * Recommendations, prequential (backtest/prequential.h): for each positive
 * click event (anything but VIEW) on an item the user has not interacted
 * with, eddy's current top-K for the user is taken from the live model
 * before the event is trained on, and scored against a popularity baseline.
 *
 * Bidding: for every campaign the budget operator runs, its wins, spend and
 * clicks are read from its ledger around each AdEvent, and its decisions
 * give the cumulative spend against the even plan.
 *
 * Protocol (Cai et al., WSDM 2017), when fractions are given: the log must
 * hold one campaign. Each of its AdEvents and its CampaignBudget is fanned
 * out to one campaign per fraction c0, "<id>@<c0>", with budget c0 x N x
 * mean market price of the log (N: the auctions of one budget period) and,
 * when Lin was tuned, Lin's base bid for that c0 divided by the training
 * log's mean pCTR: eddy then bids what Lin would, times its controller's
 * multiplier (docs/budget.md), pre-trained on the tuning log (see
 * backtest_pretrain()). Lin and the oracle run on the same auctions
 * (backtest/auction.h); eddy's episodes are its budget periods. */
#ifndef EDDY_BACKTEST_H
#define EDDY_BACKTEST_H

#include <stddef.h>
#include <stdint.h>

#include "backtest/auction.h"
#include "backtest/report.h"
#include "schemas/records.h"

struct eddy_state;

struct backtest_options {
    int k;
    uint64_t window_events;
    int slots;                  /* the budget operator's slots per period */
};

struct backtest;

struct backtest *backtest_new(const struct backtest_options *o, struct eddy_state *st,
                              char *err, size_t errlen);
void backtest_free(struct backtest *b);

/* The auctions of one campaign's ad events, in order; a CLICK marks the
 * auction before it. For the protocol's pre-pass. */
struct auction_log {
    struct auction *a;
    size_t n, cap;
    char *campaign;             /* the one campaign seen; NULL if none */
    int64_t period_ms, base_bid_micros;  /* from its CampaignBudget; 0 if none */
};
int auction_log_add(struct auction_log *l, const struct eddy_event *ev, char *err, size_t errlen);
void auction_log_free(struct auction_log *l);

/* Sets up the protocol over the evaluated log's auctions: fractions like
 * "1/32,1/16,1/8,1/4,1/2"; tune may be NULL (no Lin, eddy keeps the
 * campaign's base bid). Runs Lin and the oracle. */
int backtest_protocol(struct backtest *b, const char *fractions, const struct auction_log *eval,
                      const struct auction_log *tune, char *err, size_t errlen);

/* With a tuning log: before the evaluated log, the fan-out campaigns are
 * trained on it. Call after the chain processed ev (expanded): on the
 * protocol campaign's CampaignBudget, while no fan-out campaign has seen an
 * auction (a fresh state; a resumed one trained already), every auction of
 * the tuning log and its click go through ops for each fan-out campaign,
 * moved back in event time by whole periods so that they end before the
 * evaluated log. Their decisions are not booked; each training episode's
 * clicks and spend are, for the learning curve. */
struct op_chain;
void backtest_pretrain(struct backtest *b, struct op_chain *ops, const struct eddy_event *ev);

/* The events the chain runs for ev: ev itself, or its fan-out under the
 * protocol. Valid until the next call. */
size_t backtest_expand(struct backtest *b, const struct eddy_event *ev,
                       const struct eddy_event **out);

/* Around the chain's processing of each (expanded) event. */
void backtest_before(struct backtest *b, const struct eddy_event *ev);
void backtest_after(struct backtest *b, const struct eddy_event *ev);
/* Every BudgetDecision the chain emits. */
void backtest_decision(struct backtest *b, const struct budget_decision *d);

/* Writes report.json and report.html into dir. */
int backtest_report(struct backtest *b, const char *dir, const char *title,
                    const struct report_kv *config, size_t n_config,
                    const struct report_kv *run, size_t n_run, char *err, size_t errlen);

#endif
