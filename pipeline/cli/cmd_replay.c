/* cmd_replay.c: the command line of `eddy replay` (pipeline/run/replay.h). */
#include "pipeline/cli/commands.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "operators/recommend.h"
#include "pipeline/cli/cli.h"
#include "pipeline/run/config.h"
#include "pipeline/run/log.h"
#include "pipeline/run/replay.h"

#define DEFAULT_OUT "replay-out"
#define DEFAULT_WINDOW 2000

static const char usage_replay[] =
    "usage: eddy replay [-c FILE] [-o DIR] [OPTIONS] LOG...\n"
    "       eddy replay [-c FILE] [-o DIR] [OPTIONS] --kafka [--from B] [--to B]\n"
    "       eddy replay [-c FILE] --speed N LOG...\n"
    "\n"
    "Runs eddy's operators over event logs (Avro Object Container Files; a\n"
    "directory stands for the *.avro files in it), merged in event-time order,\n"
    "as fast as they go. Every time-based decision uses event time, so the same\n"
    "logs and configuration give byte-identical outputs and state. Outputs go\n"
    "to DIR/recommendations.avro and DIR/decisions.avro, state to the\n"
    "configured state directory ([state] dir). Run again on the same state\n"
    "directory after a crash, it resumes from its last checkpoint with the\n"
    "same result. The same pass evaluates the recommender (prequential HR@K,\n"
    "NDCG@K, MRR@K, coverage, against popularity) and the budget controller,\n"
    "and writes DIR/report.json and DIR/report.html. See README, Backtesting.\n"
    "\n"
    "--kafka replays a bounded range of the configured input topics instead of\n"
    "files. A bound B is a time (ms since the epoch, or YYYY-MM-DDTHH:MM:SSZ,\n"
    "resolved per partition with offsetsForTimes) or offsets\n"
    "topic=N or topic:partition=N, comma-separated. --from is inclusive\n"
    "(default: the earliest offsets), --to exclusive (default: the end of each\n"
    "partition when the replay starts).\n"
    "\n"
    "--speed N instead produces the logs into the configured input topics at N\n"
    "times their event-time pace (fractions allowed), for demos and load tests.\n"
    "\n"
    "--first N replays only the first N events of the merged event-time stream\n"
    "(campaign budgets, which come first, count as events), --first P%% the\n"
    "first P percent of them by count, rounded down (a first pass counts the\n"
    "input); then the replay stops as at the end of the log, and the outputs,\n"
    "state and report cover exactly those events: report.json's \"events\". For\n"
    "tuning on the head of a log (docs/backtest.md). Give each --first its own\n"
    "state directory: a state that replayed more is refused.\n"
    "\n"
    "  -c, --config FILE          configuration (operator parameters, state dir)\n"
    "  -s, --state DIR            state directory (overrides [state] dir)\n"
    "  -o, --out DIR              outputs and report (default " DEFAULT_OUT ")\n"
    "      --kafka                read the input topics' range, not LOG files\n"
    "      --from B, --to B       the range's bounds (with --kafka)\n"
    "      --speed N              produce LOG into the input topics at N x pace\n"
    "      --first N|P%%           only the first N events, or P percent of them\n"
    "                             (0 < P <= 100), in event-time order\n"
    "      --to-kafka             produce outputs to the configured output topics\n"
    "                             instead of files\n"
    "      --no-eval              no evaluation and no report (fastest)\n"
    "  -k, --k K                  K of HR@K, NDCG@K, MRR@K (default: [recommend] k)\n"
    "      --window N             scored events per point of the HR@K chart\n"
    "                             (default %d)\n"
    "      --budget-fractions L   Cai et al. budget protocol: fan the log's one\n"
    "                             campaign out to one per fraction c0 in L, e.g.\n"
    "                             1/32,1/16,1/8,1/4,1/2 (default: off)\n"
    "      --tune-on LOG          ad log Lin's base bid is tuned on (repeatable);\n"
    "                             with the protocol, eddy bids from the same base\n"
    "                             and its controller is first trained on LOG\n"
    "      --checkpoint-events N  checkpoint every N events (default: [state]\n"
    "                             checkpoint.events)\n"
    "      --progress             progress bar (default when stderr is a TTY)\n"
    "      --no-progress          plain progress lines every 5 s\n"
    "  -q, --quiet                only warnings and errors on stderr, no progress\n"
    "                             (the summary still goes to stdout)\n"
    "  -h, --help                 show this help\n";

/* --speed N, also as "Nx", which the help's "N x pace" invites. */
static int parse_speed(const char *s, double *speed, char *why, size_t whylen)
{
    char num[64];
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == 'x' && len <= sizeof num) {
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        s = num;
    }
    return cli_parse_positive(s, speed, why, whylen);
}

int cmd_replay(int argc, char **argv)
{
    enum { O_TO_KAFKA = 256, O_NO_EVAL, O_WINDOW, O_FRACTIONS, O_TUNE, O_CKPT, O_PROGRESS,
           O_NO_PROGRESS, O_KAFKA, O_FROM, O_TO, O_SPEED, O_FIRST };
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"state", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},    {"to-kafka", no_argument, 0, O_TO_KAFKA},
        {"no-eval", no_argument, 0, O_NO_EVAL}, {"k", required_argument, 0, 'k'},
        {"window", required_argument, 0, O_WINDOW},
        {"budget-fractions", required_argument, 0, O_FRACTIONS},
        {"tune-on", required_argument, 0, O_TUNE},
        {"checkpoint-events", required_argument, 0, O_CKPT},
        {"progress", no_argument, 0, O_PROGRESS}, {"no-progress", no_argument, 0, O_NO_PROGRESS},
        {"kafka", no_argument, 0, O_KAFKA},    {"from", required_argument, 0, O_FROM},
        {"to", required_argument, 0, O_TO},    {"speed", required_argument, 0, O_SPEED},
        {"first", required_argument, 0, O_FIRST},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    struct replay_options o = {.out_dir = DEFAULT_OUT, .evaluate = true,
                               .eval_window = DEFAULT_WINDOW,
                               .progress = isatty(2) ? 1 : 0};
    const char *path = NULL, *state = NULL;
    char *tune[64];
    char why[128];
    uint64_t u;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:o:k:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's': state = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_TO_KAFKA: o.to_kafka = true; break;
        case O_NO_EVAL: o.evaluate = false; break;
        case 'k':
            if (cli_parse_u64(optarg, 1, 10000, &u, why, sizeof why))
                return cli_bad_value("replay", "k", optarg, why);
            o.eval_k = (int)u;
            break;
        case O_WINDOW:
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &o.eval_window, why, sizeof why))
                return cli_bad_value("replay", "window", optarg, why);
            break;
        case O_FRACTIONS: o.fractions = optarg; break;
        case O_TUNE:
            if (o.n_tune_logs == sizeof tune / sizeof tune[0])
                return cli_bad_value("replay", "tune-on", optarg,
                                     "is one log too many (64 at most)");
            tune[o.n_tune_logs++] = optarg;
            break;
        case O_CKPT:
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &o.checkpoint_events, why, sizeof why))
                return cli_bad_value("replay", "checkpoint-events", optarg, why);
            break;
        case O_KAFKA: o.from_kafka = true; break;
        case O_FROM: o.from = optarg; break;
        case O_TO: o.to = optarg; break;
        case O_SPEED:
            if (parse_speed(optarg, &o.speed, why, sizeof why))
                return cli_bad_value("replay", "speed", optarg, why);
            break;
        case O_FIRST:
            if (cli_parse_count_or_percent(optarg, &o.first_n, &o.first_pct, why, sizeof why))
                return cli_bad_value("replay", "first", optarg, why);
            break;
        case O_PROGRESS: o.progress = 1; break;
        case O_NO_PROGRESS: o.progress = 0; break;
        case 'q': log_threshold = LOG_WARN; o.progress = -1; break;
        case 'h': printf(usage_replay, DEFAULT_WINDOW); return 0;
        default: return 2;
        }
    }
    if ((optind >= argc) != o.from_kafka || (o.from_kafka && o.speed > 0) ||
        ((o.from || o.to) && !o.from_kafka)) {
        fprintf(stderr, "eddy replay: give LOG files, or --kafka (with --from/--to), not "
                        "both; --speed needs LOG files (see eddy replay --help)\n");
        return 2;
    }
    o.logs = argv + optind;
    o.n_logs = (size_t)(argc - optind);
    o.tune_logs = tune;
    struct eddy_config cfg;
    char err[512];
    if (config_load(&cfg, path, err, sizeof err)) {
        fprintf(stderr, "eddy replay: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (state) {
        free(cfg.state_dir);
        cfg.state_dir = strdup(state);
    }
    const struct rec_params *rec = config_op_params(&cfg, &eddy_op_recommend);
    if (!o.eval_k)
        o.eval_k = rec->k;
    if (!o.checkpoint_events)
        o.checkpoint_events = (uint64_t)cfg.checkpoint_events;
    int rc = replay_run(&cfg, &o);
    config_free(&cfg);
    return rc;
}
