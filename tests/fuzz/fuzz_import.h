/* fuzz_import.h: the harness shared by the three importer targets
 * (fuzz_import_movielens.c, fuzz_import_ipinyou.c, fuzz_import_otto.c).
 *
 * Input: the contents of the importer's input file, handed over through an
 * in-memory file; the outputs go to a scratch directory (in RAM when
 * /dev/shm exists). Each input is imported twice: failing on the first bad
 * row (the default) and with skip_bad.
 *
 * Checks, from import.h's contract: a failed import explains itself and
 * leaves no output file (nor a .tmp); a successful one leaves logs that read
 * back through eventlog.c with every record valid, as many as it counted,
 * in event-time order, within the time range it reported; iPinYou's
 * campaigns.avro holds exactly the CampaignBudget it reported. */
#ifndef EDDY_FUZZ_IMPORT_H
#define EDDY_FUZZ_IMPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/codec/eventlog.h"
#include "pipeline/tools/import.h"
#include "tests/fuzz/fuzz_util.h"

typedef int (*importer)(const char *in, const char *out_dir, const struct import_options *o,
                        struct import_counts *c, char *err, size_t errlen);

static const char *const outputs[] = {"clicks.avro", "ad-events.avro", "campaigns.avro"};

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "import: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void out_file(const char *name, const char *suffix, char *path, size_t n)
{
    snprintf(path, n, "%s/%s%s", fuzz_scratch_dir(), name, suffix);
}

static void remove_outputs(void)
{
    char path[256];
    for (size_t i = 0; i < 3; i++) {
        out_file(outputs[i], "", path, sizeof path);
        unlink(path);
        out_file(outputs[i], ".tmp", path, sizeof path);
        unlink(path);
    }
}

/* Reads name back; returns the number of records, checking each as above. */
static uint64_t read_back(const char *name, const struct import_counts *c,
                          struct campaign_budget *campaign)
{
    char path[256], err[1024];
    struct eventlog_reader *r;
    struct eddy_event ev;
    uint64_t n = 0;
    int64_t last = INT64_MIN;
    int rc;

    out_file(name, "", path, sizeof path);
    if (eventlog_reader_new(path, &r, err, sizeof err))
        fail("an imported log does not open", err);
    while ((rc = eventlog_next(r, &ev, err, sizeof err)) == 1) {
        n++;
        if (ev.kind == EV_CAMPAIGN) {
            *campaign = ev.u.campaign;
            if (n == 1 && (ev.u.campaign.campaign_id.len != c->campaign.campaign_id.len ||
                           memcmp(ev.u.campaign.campaign_id.ptr, c->campaign.campaign_id.ptr,
                                  ev.u.campaign.campaign_id.len)))
                fail("campaigns.avro names another campaign", NULL);
            continue;
        }
        int64_t t = eddy_event_time(&ev);
        if (t < last)
            fail("an imported log is not in event-time order", path);
        if (t < c->first_ms || t > c->last_ms)
            fail("an event outside the reported time range", path);
        last = t;
    }
    if (rc)
        fail("an imported log does not read back", err);
    eventlog_reader_free(r);
    return n;
}

static void check_success(const struct import_counts *c)
{
    char path[256];
    struct campaign_budget got = {{NULL, 0}, 0, 0, 0};
    bool ads = false;
    for (size_t i = 0; i < 2; i++) {
        out_file(outputs[i], "", path, sizeof path);
        if (access(path, F_OK))
            continue;
        ads = i == 1;
        if (read_back(outputs[i], c, &got) != c->records)
            fail("the log holds another number of records than reported", outputs[i]);
    }
    if (!ads)
        return;
    if (read_back("campaigns.avro", c, &got) != 1)
        fail("campaigns.avro does not hold exactly one CampaignBudget", NULL);
    if (got.budget_micros != c->campaign.budget_micros ||
        got.period_ms != c->campaign.period_ms ||
        got.base_bid_micros != c->campaign.base_bid_micros)
        fail("campaigns.avro holds another budget than reported", NULL);
}

static void check_failure(const char *err)
{
    char path[256];
    if (!err[0])
        fail("an import failed without a message", NULL);
    for (size_t i = 0; i < 3; i++) {
        out_file(outputs[i], "", path, sizeof path);
        if (!access(path, F_OK))
            fail("a failed import left an output", path);
        out_file(outputs[i], ".tmp", path, sizeof path);
        if (!access(path, F_OK))
            fail("a failed import left a temporary file", path);
    }
}

static int fuzz_import(importer fn, const uint8_t *data, size_t size)
{
    const char *in = fuzz_input_file(data, size);
    for (int skip = 0; skip < 2; skip++) {
        struct import_options o;
        struct import_counts c;
        char err[1024] = "";
        import_options_default(&o);
        o.codec = "null"; /* deflate is zlib's business, and slow */
        o.skip_bad = skip;
        remove_outputs();
        if (fn(in, fuzz_scratch_dir(), &o, &c, err, sizeof err))
            check_failure(err);
        else
            check_success(&c);
    }
    return 0;
}

#endif
