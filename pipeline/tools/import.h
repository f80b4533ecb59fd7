/* import.h: public data sets turned into eddy's Avro event logs.
 *
 * Each importer reads one input file and writes Avro Object Container Files
 * (pipeline/codec/eventlog.h) into out_dir, which is created when missing (one
 * level). docs/import.md describes the formats, mappings and units.
 *
 *   MovieLens ratings.csv  -> out_dir/clicks.avro      (ClickEvent)
 *   iPinYou-style TSV      -> out_dir/ad-events.avro   (AdEvent)
 *                             out_dir/campaigns.avro   (one CampaignBudget)
 *   OTTO jsonl             -> out_dir/clicks.avro      (ClickEvent)
 *
 * A malformed input row fails the import with an error "FILE:LINE: reason",
 * unless skip_bad is set: then the row is skipped and counted. Output files
 * appear only when the import succeeds. */
#ifndef EDDY_IMPORT_H
#define EDDY_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

struct import_options {
    const char *codec; /* Avro block codec: "deflate" or "null" */
    bool skip_bad;     /* skip and count malformed rows instead of failing */
    /* iPinYou only */
    const char *campaign_id; /* every AdEvent's and the CampaignBudget's campaign */
    uint64_t rate_per_s;     /* rows (auctions) per second of synthesised event time */
    int64_t start_ms;        /* event time of the first row */
    double budget_c0;        /* budget = c0 x episode x mean market price */
    uint64_t episode;        /* auctions per budget period; episode*1000 % rate == 0 */
};

/* The defaults the --help of `eddy import` shows. */
void import_options_default(struct import_options *o);

struct import_counts {
    uint64_t rows;        /* input rows read, header excluded (OTTO: sessions) */
    uint64_t skipped;     /* malformed rows skipped (skip_bad) */
    char first_bad[256];  /* "FILE:LINE: reason" of the first one skipped */
    uint64_t records;     /* events written to clicks.avro or ad-events.avro */
    uint64_t by_type[4];  /* of those, per enum click_type or enum ad_type */
    int64_t first_ms, last_ms;       /* event-time range written */
    struct campaign_budget campaign; /* iPinYou: what campaigns.avro holds
                                      * (campaign_id borrows from the options) */
};

/* Each returns 0, or -1 with err naming the file (and line) at fault. */
int import_movielens(const char *in, const char *out_dir, const struct import_options *o,
                     struct import_counts *c, char *err, size_t errlen);
int import_ipinyou(const char *in, const char *out_dir, const struct import_options *o,
                   struct import_counts *c, char *err, size_t errlen);
int import_otto(const char *in, const char *out_dir, const struct import_options *o,
                struct import_counts *c, char *err, size_t errlen);

#endif
