/* cmd_gen.c: `eddy gen`, the seeded synthetic stream (pipeline/tools/gen.h). */
#include <float.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/cli/cli.h"
#include "pipeline/cli/commands.h"
#include "pipeline/run/config.h"
#include "pipeline/tools/gen.h"
#include "pipeline/run/log.h"

static const char usage_gen[] =
    "usage: eddy gen [-c FILE] [-b SERVERS] [OPTIONS]\n"
    "       eddy gen --out DIR [OPTIONS]\n"
    "\n"
    "Produces a seeded synthetic stream: first one CampaignBudget per campaign,\n"
    "then click and ad events. Users u<n> are in segment n %% segments and mostly\n"
    "click items i<m> of cluster m %% segments. The same options give the same\n"
    "records. Exits 0 once every record is delivered. With --out, writes them as\n"
    "event logs instead (DIR/campaigns.avro, clicks.avro, ad-events.avro), for\n"
    "`eddy replay`.\n"
    "\n"
    "Clicks are either independent draws of a uniform user and an item of its\n"
    "cluster (--traffic uniform, the default), or sessions (--traffic sessions,\n"
    "what `make bench` uses; docs/performance.md, \"Bench traffic\"): Zipf-popular\n"
    "users start sessions of clicks a few seconds apart, sessions of a user\n"
    "minutes to hours apart; a session browses around one Zipf-popular item of\n"
    "one cluster (the user's with probability --affinity).\n"
    "\n"
    "  -c, --config FILE      configuration file (Kafka settings, topic names)\n"
    "  -b, --bootstrap LIST   bootstrap servers (overrides the configuration)\n"
    "  -o, --out DIR          write Avro event logs into DIR instead of Kafka\n"
    "  -n, --events N         click + ad events (default %llu)\n"
    "  -r, --rate R           records per second, 0 = as fast as possible (default 0)\n"
    "  -s, --seed S           random seed (default %llu)\n"
    "      --users N          users (default %d)\n"
    "      --items N          items (default %d)\n"
    "      --segments N       user segments = item clusters (default %d)\n"
    "      --campaigns N      campaigns (default %d)\n"
    "      --ad-fraction F    share of ad events (default %.2f)\n"
    "      --affinity F       chance a click (a session, with sessions) stays in the\n"
    "                         user's cluster (default %.2f)\n"
    "      --traffic KIND     uniform or sessions (default uniform)\n"
    "      --user-zipf S      sessions: Zipf exponent of user popularity (default %.2f)\n"
    "      --item-zipf S      sessions: Zipf exponent of item popularity (default %.2f)\n"
    "      --session-events F sessions: mean clicks per session (default %.1f)\n"
    "      --period-ms MS     campaign budget period in event time (default %lld)\n"
    "      --budget-scale F   multiply the campaigns' budgets (default %.1f)\n"
    "      --step-us US       event time between events, microseconds (default %lld)\n"
    "      --start-ms MS      event time of the first event (default %lld)\n"
    "      --bad-every N      make every Nth record bad, for DLQ tests (default 0: none)\n"
    "      --no-budgets       do not send the CampaignBudget records\n"
    "      --wall-time        stamp each event with the wall time it is produced\n"
    "                         (Kafka only, for latency measurements)\n"
    "  -h, --help             show this help\n";

/* Applies one generator option; -1 with why when its value is invalid. */
static int gen_option(int c, const char *arg, struct gen_options *o, char *why, size_t n)
{
    switch (c) {
    case 'n': return cli_parse_u64(arg, 0, UINT64_MAX, &o->events, why, n);
    case 's': return cli_parse_u64(arg, 0, UINT64_MAX, &o->seed, why, n);
    case 'B': return cli_parse_u64(arg, 0, UINT64_MAX, &o->bad_every, why, n);
    case 'U': return cli_parse_int(arg, 1, 1 << 30, &o->users, why, n);
    case 'I': return cli_parse_int(arg, 1, 1 << 30, &o->items, why, n);
    case 'S': return cli_parse_int(arg, 1, 1 << 20, &o->segments, why, n);
    case 'C': return cli_parse_int(arg, 1, 1 << 20, &o->campaigns, why, n);
    case 'p': return cli_parse_i64(arg, 1, &o->period_ms, why, n);
    case 't': return cli_parse_i64(arg, 1, &o->step_us, why, n);
    case 'T': return cli_parse_i64(arg, 0, &o->start_ms, why, n);
    case 'r': return cli_parse_double(arg, 0, DBL_MAX, &o->rate, why, n);
    case 'A': return cli_parse_double(arg, 0, 1, &o->ad_fraction, why, n);
    case 'a': return cli_parse_double(arg, 0, 1, &o->affinity, why, n);
    case 'N': o->no_budgets = true; return 0;
    case 'W': o->wall_time = true; return 0;
    case 'k': return cli_parse_positive(arg, &o->budget_scale, why, n);
    case 'X':
        if (!strcmp(arg, "uniform"))
            o->traffic = GEN_UNIFORM;
        else if (!strcmp(arg, "sessions"))
            o->traffic = GEN_SESSIONS;
        else
            return errf(why, n, "is neither uniform nor sessions");
        return 0;
    case 'Y': return cli_parse_double(arg, 0, 10, &o->user_zipf, why, n);
    case 'Z': return cli_parse_double(arg, 0, 10, &o->item_zipf, why, n);
    case 'E': return cli_parse_double(arg, 1, 1e6, &o->session_events, why, n);
    default: return errf(why, n, "is for an option eddy gen does not know");
    }
}

int cmd_gen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"bootstrap", required_argument, 0, 'b'},
        {"events", required_argument, 0, 'n'},   {"rate", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 's'},     {"users", required_argument, 0, 'U'},
        {"items", required_argument, 0, 'I'},    {"segments", required_argument, 0, 'S'},
        {"campaigns", required_argument, 0, 'C'}, {"ad-fraction", required_argument, 0, 'A'},
        {"affinity", required_argument, 0, 'a'}, {"period-ms", required_argument, 0, 'p'},
        {"step-us", required_argument, 0, 't'},  {"start-ms", required_argument, 0, 'T'},
        {"bad-every", required_argument, 0, 'B'}, {"budget-scale", required_argument, 0, 'k'},
        {"no-budgets", no_argument, 0, 'N'},     {"out", required_argument, 0, 'o'},
        {"wall-time", no_argument, 0, 'W'},      {"traffic", required_argument, 0, 'X'},
        {"user-zipf", required_argument, 0, 'Y'}, {"item-zipf", required_argument, 0, 'Z'},
        {"session-events", required_argument, 0, 'E'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    struct gen_options o;
    gen_options_default(&o);
    const char *path = NULL, *bootstrap = NULL, *out = NULL;
    char why[128];
    int c;
    while ((c = getopt_long(argc, argv, "c:b:n:r:s:o:h", opts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'o') {
            out = optarg;
        } else if (c == 'b') {
            bootstrap = optarg;
        } else if (c == 'h') {
            printf(usage_gen, (unsigned long long)o.events, (unsigned long long)o.seed, o.users,
                   o.items, o.segments, o.campaigns, o.ad_fraction, o.affinity, o.user_zipf,
                   o.item_zipf, o.session_events,
                   (long long)o.period_ms, o.budget_scale, (long long)o.step_us,
                   (long long)o.start_ms);
            return 0;
        } else if (c == '?') {
            return 2;
        } else if (gen_option(c, optarg, &o, why, sizeof why)) {
            return cli_bad_value("gen", cli_long_name(opts, c), optarg, why);
        }
    }
    if (out && o.wall_time) {
        fprintf(stderr, "eddy gen: --wall-time is for Kafka; event logs keep event time "
                        "deterministic\n");
        return 2;
    }
    if (out) {
        char err[512];
        uint64_t written;
        if (gen_to_files(&o, out, &written, err, sizeof err)) {
            fprintf(stderr, "eddy gen: %s\n", err);
            return 1;
        }
        fprintf(stderr, "eddy gen: %llu records written to %s\n", (unsigned long long)written,
                out);
        return 0;
    }
    struct eddy_config cfg;
    if (cli_load_config(path, &cfg))
        return 1;
    if (bootstrap) {
        free(cfg.bootstrap_servers);
        cfg.bootstrap_servers = strdup(bootstrap);
    }
    uint64_t produced = 0;
    int rc = gen_to_kafka(&o, &cfg, NULL, &produced);
    fprintf(stderr, "eddy gen: %llu records delivered\n", (unsigned long long)produced);
    config_free(&cfg);
    return rc ? 1 : 0;
}
