/* cmd_import.c: `eddy import FORMAT FILE -o DIR`, the command line over
 * pipeline/tools/import.h. Counts go to stdout, skipped rows and errors to
 * stderr. */
#include "pipeline/cli/commands.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pipeline/cli/cli.h"
#include "pipeline/tools/import.h"
#include "pipeline/run/log.h"

static const char usage_import[] =
    "usage: eddy import movielens RATINGS.csv -o DIR [--skip-bad] [--codec C]\n"
    "       eddy import ipinyou FILE.tsv -o DIR [--campaign ID] [--rate-per-s N]\n"
    "                  [--start-ms MS] [--budget-c0 F] [--episode N] [--skip-bad]\n"
    "                  [--codec C]\n"
    "       eddy import otto FILE.jsonl -o DIR [--skip-bad] [--codec C]\n"
    "\n"
    "Turns a public data set into eddy's event logs: Avro Object Container Files\n"
    "written with eddy's ClickEvent, AdEvent and CampaignBudget schemas. The\n"
    "files appear only when the import succeeds; a malformed row stops it with\n"
    "FILE:LINE and the reason. See docs/import.md.\n"
    "\n"
    "movielens  ratings.csv, header userId,movieId,rating,timestamp (seconds),\n"
    "           to DIR/clicks.avro: user \"u<userId>\", item \"m<movieId>\", rating\n"
    "           >= 4 PURCHASE, else VIEW, time in ms; sorted by (time, userId,\n"
    "           movieId). The sort is in memory, 40 bytes a rating: ml-25m\n"
    "           needs 1 GB.\n"
    "ipinyou    rows click<TAB>market_price<TAB>pCTR[<TAB>exchange] to\n"
    "           DIR/ad-events.avro: an AUCTION per row with its pctr and\n"
    "           market_price_micros = market_price x 1000 (iPinYou prices are CPM\n"
    "           in fen, so this is micro-fen per impression), and a CLICK with\n"
    "           the same time when click is 1; exchange is ignored. Rows carry no\n"
    "           time: the i-th good row (from 0) gets start + i x 1000 / rate ms,\n"
    "           the start rounded up to a whole period (periods are aligned to\n"
    "           the Unix epoch, so each holds exactly N auctions).\n"
    "           DIR/campaigns.avro gets one CampaignBudget (Cai et al., WSDM\n"
    "           2017): period = an episode of N auctions in event time, budget =\n"
    "           c0 x N x mean market price, base bid = mean market price / mean\n"
    "           pCTR, so that pCTR x base bid is the mean price at the mean pCTR.\n"
    "           Rows are streamed: no size limit.\n"
    "otto       OTTO session lines {\"session\":N,\"events\":[{\"aid\",\"ts\",\"type\"}]}\n"
    "           to DIR/clicks.avro: user and session \"s<session>\", item\n"
    "           \"a<aid>\", clicks CLICK, carts ADD_TO_CART, orders PURCHASE; a ts\n"
    "           below 1e11 is seconds, else ms. Sorted like movielens, in memory\n"
    "           (40 bytes an event).\n"
    "\n"
    "  -o, --out DIR        output directory, created if missing (required)\n"
    "      --skip-bad       skip malformed rows and report how many on stderr\n"
    "      --codec C        Avro block codec: deflate, snappy or null (default %s)\n"
    "ipinyou only:\n"
    "      --campaign ID    campaign id (default %s)\n"
    "      --rate-per-s N   rows per second of event time (default %" PRIu64 ")\n"
    "      --start-ms MS    event time of the first row (default %" PRId64 ",\n"
    "                       2026-01-01T00:00:00Z)\n"
    "      --episode N      auctions per budget period (default %" PRIu64 "); N x 1000\n"
    "                       must be a multiple of the rate\n"
    "      --budget-c0 F    budget fraction c0, a number or A/B (default 1/8)\n"
    "  -h, --help           show this help\n";

enum { O_SKIP = 256, O_CODEC, O_CAMPAIGN, O_RATE, O_START, O_EPISODE, O_C0 };

/* Applies one ipinyou-only option; -1 with why when its value is invalid. */
static int ipinyou_option(int c, const char *arg, struct import_options *o, char *why,
                          size_t n)
{
    uint64_t u;
    switch (c) {
    case O_CAMPAIGN:
        o->campaign_id = arg;
        return *arg ? 0 : errf(why, n, "is empty");
    case O_RATE: return cli_parse_u64(arg, 1, UINT64_MAX, &o->rate_per_s, why, n);
    case O_START:
        if (cli_parse_u64(arg, 0, INT64_MAX / 2, &u, why, n))
            return -1;
        o->start_ms = (int64_t)u;
        return 0;
    case O_EPISODE: return cli_parse_u64(arg, 1, UINT64_MAX / 1000, &o->episode, why, n);
    default: return cli_parse_fraction(arg, &o->budget_c0, why, n);
    }
}

/* One line of counts: rows read, records per type, event-time range. */
static void report(const char *fmt, const char *in, const char *dir, const struct import_counts *c,
                   double secs)
{
    static const char *const click_names[] = {"VIEW", "CLICK", "ADD_TO_CART", "PURCHASE"};
    static const char *const ad_names[] = {"AUCTION", "IMPRESSION", "CLICK", "CONVERSION"};
    bool ads = !strcmp(fmt, "ipinyou");
    char first[32] = "-", last[32] = "-";

    if (c->records) {
        fmt_utc(first, sizeof first, c->first_ms, "%Y-%m-%dT%H:%M:%SZ");
        fmt_utc(last, sizeof last, c->last_ms, "%Y-%m-%dT%H:%M:%SZ");
    }
    printf("eddy import %s: %s: %" PRIu64 " rows -> %" PRIu64 " %s in %s/%s (", fmt, in, c->rows,
           c->records, ads ? "AdEvents" : "ClickEvents", dir, ads ? "ad-events.avro" : "clicks.avro");
    for (int t = 0, sep = 0; t < 4; t++)
        if (c->by_type[t])
            printf("%s%s %" PRIu64, sep++ ? ", " : "", (ads ? ad_names : click_names)[t],
                   c->by_type[t]);
    printf("), event time %s .. %s, %.2f s\n", first, last, secs);
    if (ads)
        printf("eddy import %s: %s/campaigns.avro: campaign %s budget_micros %" PRId64
               " period_ms %" PRId64 " base_bid_micros %" PRId64 "\n",
               fmt, dir, c->campaign.campaign_id.ptr, c->campaign.budget_micros,
               c->campaign.period_ms, c->campaign.base_bid_micros);
    if (c->skipped)
        fprintf(stderr, "eddy import %s: skipped %" PRIu64 " bad rows; the first: %s\n", fmt,
                c->skipped, c->first_bad);
}

static int run(const char *fmt, const char *in, const char *dir, const struct import_options *o)
{
    static const struct {
        const char *name;
        int (*fn)(const char *, const char *, const struct import_options *,
                  struct import_counts *, char *, size_t);
    } formats[] = {{"movielens", import_movielens}, {"ipinyou", import_ipinyou},
                   {"otto", import_otto}};
    struct import_counts c;
    struct timespec t0, t1;
    char err[512];

    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (strcmp(fmt, formats[i].name))
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (formats[i].fn(in, dir, o, &c, err, sizeof err)) {
            fprintf(stderr, "eddy import %s: %s\n", fmt, err);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        report(fmt, in, dir, &c, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        return 0;
    }
    fprintf(stderr, "eddy import: unknown format \"%s\" (movielens, ipinyou or otto)\n", fmt);
    return 2;
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},          {"skip-bad", no_argument, 0, O_SKIP},
        {"codec", required_argument, 0, O_CODEC},    {"campaign", required_argument, 0, O_CAMPAIGN},
        {"rate-per-s", required_argument, 0, O_RATE}, {"start-ms", required_argument, 0, O_START},
        {"episode", required_argument, 0, O_EPISODE}, {"budget-c0", required_argument, 0, O_C0},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    struct import_options o;
    const char *dir = NULL, *ipinyou_only = NULL;
    char why[128];
    int c, idx;

    import_options_default(&o);
    while ((c = getopt_long(argc, argv, "o:h", opts, &idx)) != -1) {
        switch (c) {
        case 'o': dir = optarg; break;
        case O_SKIP: o.skip_bad = true; break;
        case O_CODEC:
            if (strcmp(optarg, "deflate") && strcmp(optarg, "snappy") && strcmp(optarg, "null"))
                return cli_bad_value("import", "codec", optarg,
                                     "is none of deflate, snappy and null");
            o.codec = optarg;
            break;
        case 'h':
            printf(usage_import, o.codec, o.campaign_id, o.rate_per_s, o.start_ms, o.episode);
            return 0;
        case '?': return 2;
        default:
            ipinyou_only = opts[idx].name;
            if (ipinyou_option(c, optarg, &o, why, sizeof why))
                return cli_bad_value("import", opts[idx].name, optarg, why);
        }
    }
    if (argc - optind != 2 || !dir) {
        fprintf(stderr, "eddy import: expected FORMAT FILE -o DIR (see eddy import --help)\n");
        return 2;
    }
    if (ipinyou_only && strcmp(argv[optind], "ipinyou")) {
        fprintf(stderr, "eddy import: --%s applies to ipinyou only\n", ipinyou_only);
        return 2;
    }
    return run(argv[optind], argv[optind + 1], dir, &o);
}
