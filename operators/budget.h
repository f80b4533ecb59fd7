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
 * It answers QUERY_CAMPAIGN_LEDGER (operator.h): a campaign's ledger as the
 * state holds it now (state/state.h); false if the campaign is unknown. */
#ifndef EDDY_BUDGET_H
#define EDDY_BUDGET_H

#include "operators/operator.h"

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

extern const struct eddy_operator eddy_op_budget;

#endif
