/* records.h: eddy's domain records, as operators see them: the C form of
 * the Avro schemas beside this file, shared by every layer.
 *
 * These are plain C views of the Avro records. Strings are
 * borrowed (pointer + length, not NUL-terminated): they stay valid only for
 * the duration of the call that hands the record over. Operators never see
 * Avro or Kafka; pipeline/codec/codec.c converts between the two worlds. */
#ifndef EDDY_RECORDS_H
#define EDDY_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct eddy_str {
    const char *ptr;
    size_t len;
};

enum click_type { CLICK_VIEW, CLICK_CLICK, CLICK_ADD_TO_CART, CLICK_PURCHASE, CLICK_TYPE_COUNT };

struct click_event {
    struct eddy_str user_id;
    struct eddy_str item_id;
    enum click_type type;
    int64_t timestamp_ms;
    struct eddy_str session_id; /* len 0 and ptr NULL when null */
};

enum ad_type { AD_AUCTION, AD_IMPRESSION, AD_CLICK, AD_CONVERSION, AD_TYPE_COUNT };

struct ad_event {
    struct eddy_str campaign_id;
    enum ad_type type;
    int64_t timestamp_ms;
    struct eddy_str user_id; /* ptr NULL when null */
    bool has_pctr, has_market_price, has_cost, has_value;
    double pctr;
    int64_t market_price_micros;
    int64_t cost_micros;
    double value;
};

struct campaign_budget {
    struct eddy_str campaign_id;
    int64_t budget_micros;
    int64_t period_ms;
    int64_t base_bid_micros;
};

struct rec_item {
    struct eddy_str item_id;
    float score;
    struct eddy_str because; /* the user's recent item whose neighbour this is;
                              * len 0 for null (trending, MF) */
};

struct recommendation {
    struct eddy_str user_id;
    const struct rec_item *items; /* best first */
    size_t n_items;
    int64_t event_time_ms;
    int64_t model_version;
};

struct budget_decision {
    struct eddy_str campaign_id;
    int32_t slot;
    double bid_multiplier;
    double pacing_rate; /* in [0,1]; 0 once the budget is spent */
    int64_t spent_micros;
    int64_t remaining_micros;
    int64_t event_time_ms;
};

enum eddy_event_kind { EV_CLICK, EV_AD, EV_CAMPAIGN, EV_KINDS /* the count, not a kind */ };

/* One decoded, validated input record. */
struct eddy_event {
    enum eddy_event_kind kind;
    int32_t partition; /* the input partition it came from (0 for a log file):
                        * users and campaigns are keyed by it */
    union {
        struct click_event click;
        struct ad_event ad;
        struct campaign_budget campaign;
    } u;
};

/* An event's event time; INT64_MIN for a CampaignBudget, which has none
 * (merges put budgets first, clocks ignore them). */
static inline int64_t eddy_event_time(const struct eddy_event *ev)
{
    return ev->kind == EV_CLICK ? ev->u.click.timestamp_ms
         : ev->kind == EV_AD    ? ev->u.ad.timestamp_ms
                                : INT64_MIN;
}

static inline struct eddy_str eddy_str_c(const char *s)
{
    struct eddy_str r = {s, 0};
    while (s && s[r.len])
        r.len++;
    return r;
}

#endif
