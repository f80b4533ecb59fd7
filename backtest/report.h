/* report.h: a backtest's report, as report.json and report.html.
 *
 * report.json holds every number and the config used. report.html is one
 * self-contained file: summary tables and inline SVG charts drawn here, no
 * JavaScript, no external resources (a person opens it from disk):
 *   - HR@K over time (per prequential window), eddy against popularity and
 *     item-kNN, and the three models by the users' history;
 *   - cumulative spend against the even plan, per campaign;
 *   - clicks against the budget fraction c0, for eddy, Lin and the oracle;
 *   - per c0, one evaluated episode of eddy's: spend against the even plan
 *     and its bid multiplier against the market plan, slot by slot; and the
 *     learning curve of its pre-training on the tuning log.
 * A section without data (no click events, no auctions, no fractions) says
 * so in a sentence instead of showing an empty chart.
 *
 * The writer only reads the struct; strings are NUL-terminated and are
 * escaped for HTML and JSON. Both files are written to "<path>.tmp" and
 * renamed, so a report is never half-written. */
#ifndef EDDY_REPORT_H
#define EDDY_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "backtest/auction.h"
#include "backtest/prequential.h"

struct report_kv {
    const char *key, *value;
};

/* One point of a campaign's cumulative spend: at event time t_ms, spend so
 * far over the whole run, and what an even plan would have spent by then. */
struct report_spend_point {
    int64_t t_ms;
    int64_t spent_micros, plan_micros;
};

struct report_campaign {
    const char *id;
    struct bid_result eddy;                  /* the budget operator's bidding */
    const struct report_spend_point *points; /* in time order */
    size_t n_points;
};

/* eddy's pre-training on the tuning log: clicks and spend per episode. */
struct report_training {
    size_t n;
    uint32_t *clicks;
    int64_t *spend_micros;
    int64_t budget_micros;  /* of each episode */
};

/* One evaluated episode of eddy, slot by slot at each slot's open: spend so
 * far, the bid multiplier in force and the plan's. */
struct report_episode {
    int slots;              /* 0: none recorded */
    int64_t budget_micros;
    bool seen[AUCTION_MAX_SLOTS];
    int64_t spent_micros[AUCTION_MAX_SLOTS];
    double multiplier[AUCTION_MAX_SLOTS], plan_multiplier[AUCTION_MAX_SLOTS];
};

/* One row of the Cai et al. protocol: a budget fraction and the three
 * policies on the evaluated log. */
struct report_fraction {
    const char *label;      /* "1/32" */
    double c0;
    double lin_b0;          /* Lin's tuned base bid (micros) */
    struct bid_result eddy, lin, oracle;
    const struct report_training *train; /* NULL or n 0: no pre-training */
    const struct report_episode *shown;  /* NULL or slots 0: none */
};

struct report {
    const char *title;
    const struct report_kv *config; /* effective configuration */
    size_t n_config;
    const struct report_kv *run;    /* inputs, record counts, event-time span, wall time */
    size_t n_run;
    const struct preq_summary *rec; /* NULL: no recommendation evaluation */
    const struct report_campaign *campaigns;
    size_t n_campaigns;
    const struct report_fraction *fractions;
    size_t n_fractions;
};

int report_write_json(const struct report *r, const char *path, char *err, size_t errlen);
int report_write_html(const struct report *r, const char *path, char *err, size_t errlen);

#endif
