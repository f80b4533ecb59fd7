/* budget.h: per-campaign budget pacing by tabular Q-learning.
 *
 * See docs/budget.md for the model. In short: the Q-state is (slot within
 * the budget period, budget-remaining bucket); the actions are bid
 * multipliers; the reward of a slot is the clicks won in it minus a penalty
 * for spending ahead of an even plan. On AUCTION events the controller runs
 * the deterministic bidding rule the bidder applies (bid = pCTR x base bid x
 * multiplier, throttled by pacing_rate) and, when the clearing price is
 * known, books the win at that price; a win is only possible when the price
 * fits in the remaining budget, so spend never exceeds the budget. At every
 * slot boundary in event time it publishes a BudgetDecision.
 *
 * It keeps each campaign, its ledger and Q-table, in a keyed store of the
 * state (budget_campaigns: the layout below, its encoding and its JSON are
 * this operator's), and answers QUERY_CAMPAIGN_LEDGER (operator.h): a
 * campaign's ledger as the state holds it now; false if it is unknown. */
#ifndef EDDY_BUDGET_H
#define EDDY_BUDGET_H

#include <jansson.h>

#include "operators/operator.h"
#include "state/state.h"

#define BID_MAX_ACTIONS 16

struct bid_params {
    int slots;                 /* slots per budget period */
    int buckets;               /* budget-remaining buckets */
    int n_actions;
    double multipliers[BID_MAX_ACTIONS];
    double alpha, gamma, epsilon;
    double overspend_penalty;
    uint64_t seed;             /* for epsilon-greedy draws; mixed with event content */
};

/* Campaign ledger: plain 8-byte fields only, so it is stored as is. */
struct campaign_ledger {
    int64_t configured;        /* 1 once a CampaignBudget record was seen */
    int64_t budget_micros;
    int64_t period_ms;
    int64_t base_bid_micros;
    int64_t period_start_ms;   /* INT64_MIN before the first event */
    int64_t slot;              /* current slot within the period, -1 before the first */
    int64_t action;            /* index of the bid multiplier in force */
    int64_t q_state;           /* Q-table state index the action was chosen in */
    int64_t spent_micros;      /* in the current period */
    int64_t slot_spent_micros;
    int64_t slot_clicks;
    int64_t last_auction_won;  /* 1 if the latest AUCTION was won (CLICKs attribute to it) */
    int64_t auctions, wins, clicks, impressions, conversions; /* lifetime counters */
    int64_t reported_cost_micros; /* sum of IMPRESSION cost_micros, for reconciliation */
    int64_t priced_auctions;   /* AUCTIONs with a market price, and the sum of those */
    int64_t price_sum_micros;  /* prices: their mean is a typical win's cost */
    double conversion_value;
    double bid_multiplier;     /* current decision */
    double pacing_rate;
    int64_t decisions;         /* decisions published so far */
};

/* A campaign's value in the budget_campaigns store (its id is the key:
 * state_key()). Stored as version 1: the ledger, n_q (4 bytes) and the
 * Q-table, little-endian. */
struct campaign_state {
    struct campaign_ledger l;
    uint32_t n_q;              /* Q-table size: slots * buckets * actions */
    double *q;                 /* malloc'd; resized to the operator's size on use */
};

/* The keyed store of the campaigns (column family "campaigns"). */
extern const struct state_codec budget_campaigns;

/* How a ledger shows: RAW as stored, every field a number (`eddy state`);
 * READABLE for people (the HTTP API): flags as true/false, a time not set
 * yet as null. Reals are written as state/json.h says in both. */
enum ledger_style { LEDGER_RAW, LEDGER_READABLE };

/* Sets every field of the ledger on the JSON object doc, in stored order.
 * Returns doc, or NULL (doc freed) if jansson runs out of memory; a NULL
 * doc gives NULL. */
json_t *budget_ledger_json(json_t *doc, const struct campaign_ledger *l,
                           enum ledger_style style);

extern const struct eddy_operator eddy_op_budget;

#endif
