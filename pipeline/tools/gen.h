/* gen.h: a seeded synthetic event source with planted structure.
 *
 * Users "u<n>" belong to segment n % segments; items "i<m>" to cluster
 * m % segments. A click event goes to an item of the user's own cluster with
 * probability `affinity`, else to any item, so a working recommender ranks a
 * user's cluster first. Campaigns "c<n>" have their own pCTR and market-price
 * distributions and a budget per period; each AUCTION may be followed by a
 * CLICK (with probability pCTR) for the same campaign and event time.
 * The same options always give the same records: event time is synthetic
 * (start_ms + i * step_us / 1000), never wall time.
 *
 * Two kinds of click traffic (`traffic`):
 * - GEN_UNIFORM, the default of `eddy gen` and what the tests were written
 *   against: each click is an independent draw, a uniform user and an item of
 *   the user's cluster (or any item).
 * - GEN_SESSIONS, the bench's (docs/performance.md, "Bench traffic"): users
 *   drawn Zipf(user_zipf)-popular start sessions of about session_events
 *   clicks a few seconds apart (all with the session's id), sessions of one
 *   user minutes to hours apart; a session stays in one item cluster (the
 *   user's with probability affinity) and mostly near one Zipf(item_zipf)-
 *   popular anchor item of it, so items seen together share a neighbourhood.
 *   Event types are mixed as in e-commerce: mostly VIEW, then CLICK,
 *   ADD_TO_CART and PURCHASE (often of the item just put in the cart). */
#ifndef EDDY_GEN_H
#define EDDY_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "schemas/records.h"
#include "pipeline/codec/codec.h"
#include "pipeline/run/config.h"

enum gen_traffic { GEN_UNIFORM, GEN_SESSIONS };

struct gen_options {
    uint64_t seed;
    uint64_t events;       /* click + ad events, after the campaign records */
    int users, items, segments, campaigns;
    double ad_fraction;    /* share of ad events among all events */
    double affinity;       /* chance a click stays in the user's segment cluster */
    int64_t start_ms;      /* event time of the first event */
    int64_t step_us;       /* event time between consecutive events */
    int64_t period_ms;     /* campaigns' budget period */
    double budget_scale;   /* multiplies the modelled budgets (1: about a third of
                              the auctions at the mean price) */
    uint64_t bad_every;    /* every Nth record is made bad; 0: none */
    double rate;           /* records per second when producing; 0: as fast as possible */
    bool no_budgets;       /* skip the CampaignBudget records (sent by an earlier run) */
    bool wall_time;        /* Kafka only: events carry the wall time they are produced
                            * (for latency tests), not start_ms + i * step_us */
    enum gen_traffic traffic;
    double user_zipf;      /* GEN_SESSIONS: Zipf exponent of the users' popularity */
    double item_zipf;      /* GEN_SESSIONS: Zipf exponent of the items' popularity */
    double session_events; /* GEN_SESSIONS: mean clicks per session (geometric, >= 1) */
};

void gen_options_default(struct gen_options *o);

/* The kinds of bad record gen writes, in rotation. */
enum gen_bad {
    GEN_OK,
    GEN_BAD_GARBAGE,      /* random bytes */
    GEN_BAD_FINGERPRINT,  /* single-object header with an unknown fingerprint */
    GEN_BAD_TRUNCATED,    /* valid record cut short */
    GEN_BAD_EMPTY_ID,     /* decodes, fails validation */
    GEN_BAD_NAN,          /* pctr NaN */
    GEN_BAD_NEGATIVE_PRICE,
    GEN_BAD_COUNT
};

struct gen_record {
    enum eddy_record_type type; /* REC_CLICK, REC_AD or REC_CAMPAIGN */
    struct eddy_event ev;       /* strings point into the buffers below */
    enum gen_bad bad;
    char id1[32], id2[32], id3[32];
};

struct gen;

struct gen *gen_new(const struct gen_options *o);
void gen_free(struct gen *g);
/* Fills r with the next record; returns false when all events are out. */
bool gen_next(struct gen *g, struct gen_record *r);
/* Encodes r, applying its byte-level corruption if any. *out points into a
 * buffer owned by g, valid until the next call. */
int gen_encode(struct gen *g, struct eddy_codec *codec, const struct gen_record *r,
               const void **out, size_t *len, char *err, size_t errlen);
/* The segment of user "u<n>" / cluster of item "i<m>", -1 if not gen's id. */
int gen_segment_of(struct eddy_str id, int segments);

/* Produces the whole stream into the config's input topics, keyed by user
 * (clicks) and campaign (ad events, budgets). Stops early when *stop turns
 * true. Returns 0 when every record was delivered. */
int gen_to_kafka(const struct gen_options *o, const struct eddy_config *cfg,
                 volatile bool *stop, uint64_t *produced);

/* Writes the stream as event logs instead: dir/campaigns.avro,
 * dir/clicks.avro and dir/ad-events.avro (bad_every must be 0: a log file
 * holds records, not bytes). Returns 0, or -1 with err set. */
int gen_to_files(const struct gen_options *o, const char *dir, uint64_t *written, char *err,
                 size_t errlen);

#endif
