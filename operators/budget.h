/* budget.h: per-campaign budget pacing: a market-model plan corrected by
 * tabular Q-learning.
 *
 * See docs/budget.md for the model. In short: at every slot boundary a
 * planner picks the bid multiplier whose expected spend over the auctions
 * left in the period, by the campaign's online histogram of the multiplier
 * each auction needed to win (market pacing), uses up the budget left; the
 * Q-agent scales that plan up or down within explore.cap. The Q-state is
 * (slot, budget-remaining bucket, last slot's spend against its plan, last
 * slot's CPM against the market's); the reward of a slot is the clicks (or
 * conversion value) won in it minus a penalty for spending ahead of an even
 * plan. On AUCTION events the controller runs the deterministic bidding rule
 * the bidder applies (bid = pCTR x base bid x multiplier, throttled by
 * pacing_rate) and, when the clearing price is known, books the win at that
 * price; a win is only possible when the price fits in the remaining budget,
 * so spend never exceeds the budget. At every slot boundary in event time it
 * publishes a BudgetDecision.
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

/* How a slot's plan is made (docs/budget.md, "Plan"). */
enum bid_pacing {
    PACING_EVEN,               /* multiplier 1, auctions throttled to an even spend */
    PACING_MARKET,             /* multiplier from the market histogram, no throttle */
};

/* What a slot's reward counts. */
enum bid_reward { REWARD_CLICKS, REWARD_VALUE };

struct bid_params {
    int slots;                 /* slots per budget period */
    int buckets;               /* budget-remaining buckets */
    int n_actions;
    double multipliers[BID_MAX_ACTIONS]; /* the actions: factors on the plan */
    double alpha, gamma, epsilon;
    double overspend_penalty;
    double explore_cap;        /* a decision stays within [plan / cap, plan x cap] */
    double half_life;          /* of the market histogram, in budget periods */
    int pacing;                /* enum bid_pacing */
    int reward;                /* enum bid_reward */
    uint64_t seed;             /* for epsilon-greedy draws; mixed with event content */
};

/* Market histogram bins: bin k holds the auctions whose price needed a bid
 * multiplier x (price = pCTR x base bid x x) with x <= 10^((k - MARKET_ONE)
 * / MARKET_PER_DECADE), and above the bin before; from 10^-4 to 10^4, the
 * last bin also taking everything above (and pCTR 0). */
#define MARKET_PER_DECADE 20
#define MARKET_ONE 80
#define MARKET_BINS 161

/* The campaign's market, recency-weighted: auctions and their price sum per
 * bin, decayed at every slot boundary by the half-life. Plain doubles. */
struct market {
    double auctions[MARKET_BINS];
    double cost_micros[MARKET_BINS];
    double total;              /* sum of auctions[] */
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
    double bid_multiplier;     /* current decision: plan_multiplier x the action's factor */
    double pacing_rate;
    int64_t decisions;         /* decisions published so far */
    double plan_multiplier;    /* the plan of the current slot */
    int64_t market_state;      /* 3 x pace + cpm bucket of the slot closed last */
    int64_t slot_auctions;     /* priced AUCTIONs in the current slot, and their */
    int64_t slot_price_sum_micros; /* price sum */
    double slot_plan_micros;   /* even share of the budget left at the slot's open */
    double slot_cost_per_auction; /* expected spend per auction at the multiplier */
    double period_expected_micros; /* expected spend of the period's closed slots */
    double auctions_per_slot;  /* recency-weighted auctions per slot */
    double slot_value;         /* conversion value of won auctions in the slot */
};

/* A campaign's value in the budget_campaigns store (its id is the key:
 * state_key()). Stored as version 2: the ledger, the market, n_q (4 bytes)
 * and the Q-table, little-endian. */
struct campaign_state {
    struct campaign_ledger l;
    struct market m;
    uint32_t n_q;              /* Q-table size: slots * buckets * 9 * actions */
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
