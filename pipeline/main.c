/* main.c: eddy's command line. Each command parses its own options with
 * getopt_long and has a --help that lists exactly those options. */
#include <float.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "operators/blas.h"
#include "pipeline/cli.h"
#include "pipeline/cmd_import.h"
#include "pipeline/cmd_replay.h"
#include "pipeline/cmd_state.h"
#include "pipeline/config.h"
#include "pipeline/demo.h"
#include "pipeline/gen.h"
#include "pipeline/kafka.h"
#include "pipeline/log.h"
#include "pipeline/mockctl.h"
#include "pipeline/runtime.h"

#define EDDY_VERSION "0.1.0"

static const char usage_main[] =
    "usage: eddy COMMAND [OPTIONS]\n"
    "\n"
    "Streaming recommendations and budget pacing over Kafka.\n"
    "\n"
    "commands:\n"
    "  run      run the pipeline (consume, update state, publish)\n"
    "  broker   run an embedded mock Kafka cluster with eddy's topics\n"
    "  gen      produce synthetic events with planted structure\n"
    "  demo     broker + generator + pipeline in one process, printing results\n"
    "  state    inspect, export or back up a state directory (read-only)\n"
    "  import   turn MovieLens, iPinYou or OTTO files into Avro event logs\n"
    "  replay   run the operators over event logs: backtest report, outputs, state\n"
    "  help     show this help\n"
    "\n"
    "`eddy COMMAND --help` describes each command. Version " EDDY_VERSION ".\n";

static const char usage_run[] =
    "usage: eddy run [-c FILE]\n"
    "\n"
    "Consumes the clicks, ad-events and campaigns topics as a consumer group,\n"
    "updates embeddings and budget Q-tables in RocksDB, and publishes\n"
    "recommendations and budget decisions. Stops cleanly on SIGINT/SIGTERM.\n"
    "\n"
    "  -c, --config FILE   configuration file (default: built-in defaults)\n"
    "  -q, --quiet         log errors and warnings only\n"
    "  -h, --help          show this help and the configuration keys\n"
    "\n"
    "Every key can be overridden by an environment variable EDDY_SECTION_KEY,\n"
    "e.g. EDDY_KAFKA_BOOTSTRAP_SERVERS; kafka.* keys go to librdkafka as is.\n"
    "\n"
    "configuration keys and defaults:\n";

static const char usage_broker[] =
    "usage: eddy broker [-c FILE] [--brokers N] [--partitions N]\n"
    "\n"
    "Starts librdkafka's mock Kafka cluster on 127.0.0.1 (random ports), creates\n"
    "the topics named in the configuration, prints one line\n"
    "  bootstrap.servers=HOST:PORT[,...]\n"
    "and runs until SIGINT/SIGTERM. For tests and demos only: it keeps a few MB\n"
    "per partition and loses everything when it exits.\n"
    "\n"
    "  -c, --config FILE    configuration file (topic names)\n"
    "      --brokers N      number of brokers, ids 1..N (default 1)\n"
    "      --partitions N   partitions per topic (default 4; campaigns has 1)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Fault injection: unless stdin is a terminal, commands are read from it, one\n"
    "a line, and each is answered with one line on stdout, \"ok\" or\n"
    "\"error: WHY\". End of stdin does not stop the broker; only a signal does.\n"
    "  down B | up B                take broker B down (connections refused) / up\n"
    "  rtt B MS                     delay broker B's responses by MS ms (0: none)\n"
    "  errors API COUNT ERR [B]     the next COUNT API requests (to broker B, or\n"
    "                               to any) fail with Kafka error ERR. API: produce,\n"
    "                               fetch, listoffsets, metadata, commit, offsetfetch,\n"
    "                               findcoordinator, joingroup, heartbeat, leavegroup,\n"
    "                               syncgroup, initproducerid. ERR: a name such as\n"
    "                               NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT,\n"
    "                               BROKER_NOT_AVAILABLE, LEADER_NOT_AVAILABLE,\n"
    "                               NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,\n"
    "                               UNKNOWN_TOPIC_OR_PART, MSG_SIZE_TOO_LARGE\n"
    "  leader TOPIC P|* B           make B the leader of partition P (* = all)\n"
    "  coordinator group GROUP B    make B the coordinator of consumer group GROUP\n"
    "  produce TOPIC P COUNT SIZE   append COUNT records of SIZE random bytes to\n"
    "                               partition P (pushes its log start forward)\n"
    "An empty line or a # comment is answered \"ok\". See docs/reliability.md.\n";

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
    "      --affinity F       chance a click stays in the user's cluster (default %.2f)\n"
    "      --period-ms MS     campaign budget period in event time (default %lld)\n"
    "      --budget-scale F   multiply the campaigns' budgets (default %.1f)\n"
    "      --step-us US       event time between events, microseconds (default %lld)\n"
    "      --start-ms MS      event time of the first event (default %lld)\n"
    "      --bad-every N      make every Nth record bad, for DLQ tests (default 0: none)\n"
    "      --no-budgets       do not send the CampaignBudget records\n"
    "      --wall-time        stamp each event with the wall time it is produced\n"
    "                         (Kafka only, for latency measurements)\n"
    "  -h, --help             show this help\n";

static const char usage_demo[] =
    "usage: eddy demo [--events N] [--rate R] [--seconds S] [--fault]\n"
    "\n"
    "Runs an embedded mock Kafka cluster, the generator and the real pipeline in\n"
    "one process and prints recommendations for users u1-u3 and budget decisions\n"
    "for campaigns c0-c1 as they change. Exits when the pipeline has caught up.\n"
    "\n"
    "  -n, --events N    events to generate (default 400000)\n"
    "  -r, --rate R      generator rate, records/s (default 40000)\n"
    "      --seconds S   hard time limit (default 50)\n"
    "      --fault       put the output topics on a second broker and take it down\n"
    "                    from 3 s to 8 s: consuming pauses, nothing is lost\n"
    "  -h, --help        show this help\n";

/* An int option's value, by cli.h's rules; min and max fit an int. */
static int parse_int(const char *s, int min, int max, int *out, char *why, size_t whylen)
{
    uint64_t u;
    if (cli_parse_u64(s, (uint64_t)min, (uint64_t)max, &u, why, whylen))
        return -1;
    *out = (int)u;
    return 0;
}

/* An int64_t option's value from min up, by cli.h's rules. */
static int parse_i64(const char *s, int64_t min, int64_t *out, char *why, size_t whylen)
{
    uint64_t u;
    if (cli_parse_u64(s, (uint64_t)min, INT64_MAX, &u, why, whylen))
        return -1;
    *out = (int64_t)u;
    return 0;
}

/* The long name of option c, so that an error names --events also for -n. */
static const char *long_name(const struct option *opts, int c)
{
    while (opts->name && opts->val != c)
        opts++;
    return opts->name ? opts->name : "?";
}

static int load_config(const char *path, struct eddy_config *cfg)
{
    char err[512];
    if (config_load(cfg, path, err, sizeof err)) {
        fprintf(stderr, "eddy: %s\n", err);
        config_free(cfg);
        return -1;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'q': log_threshold = LOG_WARN; break;
        case 'h': fputs(usage_run, stdout); config_print_keys(stdout); return 0;
        default: return 2;
        }
    }
    struct eddy_config cfg;
    if (load_config(path, &cfg))
        return 1;
    int rc = runtime_run(&cfg, NULL);
    config_free(&cfg);
    return rc;
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return sigwait(&set, &sig);
}

static int cmd_broker(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"brokers", required_argument, 0, 'B'},
                                         {"partitions", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *path = NULL;
    int brokers = 1, partitions = 4;
    char why[128];
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'B':
            if (parse_int(optarg, 1, 9, &brokers, why, sizeof why))
                return cli_bad_value("broker", "brokers", optarg, why);
            break;
        case 'P':
            if (parse_int(optarg, 1, 256, &partitions, why, sizeof why))
                return cli_bad_value("broker", "partitions", optarg, why);
            break;
        case 'h': fputs(usage_broker, stdout); return 0;
        default: return 2;
        }
    }
    /* Block the signals before librdkafka starts its threads, so they inherit
     * the mask and sigwait() below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct eddy_config cfg;
    struct kafka_mock mock;
    char err[512];
    if (load_config(path, &cfg))
        return 1;
    if (kafka_mock_new(&mock, &cfg, brokers, partitions, err, sizeof err)) {
        fprintf(stderr, "eddy broker: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    printf("bootstrap.servers=%s\n", kafka_mock_bootstraps(&mock));
    fflush(stdout);
    /* The fault-injection channel (mockctl.h). Not on a terminal, so that an
     * interactive `eddy broker &` does not compete with the shell for input.
     * A reader gone from stdout must not kill the cluster with SIGPIPE. */
    struct mockctl_server *ctl = NULL;
    signal(SIGPIPE, SIG_IGN);
    if (!isatty(STDIN_FILENO) &&
        mockctl_serve_start(&ctl, mock.cluster, STDIN_FILENO, stdout, err, sizeof err))
        fprintf(stderr, "eddy broker: no fault injection: %s\n", err);
    wait_for_signal();
    mockctl_serve_stop(ctl);
    kafka_mock_free(&mock);
    config_free(&cfg);
    return 0;
}

/* Applies one generator option; -1 with why when its value is invalid. */
static int gen_option(int c, const char *arg, struct gen_options *o, char *why, size_t n)
{
    switch (c) {
    case 'n': return cli_parse_u64(arg, 0, UINT64_MAX, &o->events, why, n);
    case 's': return cli_parse_u64(arg, 0, UINT64_MAX, &o->seed, why, n);
    case 'B': return cli_parse_u64(arg, 0, UINT64_MAX, &o->bad_every, why, n);
    case 'U': return parse_int(arg, 1, 1 << 30, &o->users, why, n);
    case 'I': return parse_int(arg, 1, 1 << 30, &o->items, why, n);
    case 'S': return parse_int(arg, 1, 1 << 20, &o->segments, why, n);
    case 'C': return parse_int(arg, 1, 1 << 20, &o->campaigns, why, n);
    case 'p': return parse_i64(arg, 1, &o->period_ms, why, n);
    case 't': return parse_i64(arg, 1, &o->step_us, why, n);
    case 'T': return parse_i64(arg, 0, &o->start_ms, why, n);
    case 'r': return cli_parse_double(arg, 0, DBL_MAX, &o->rate, why, n);
    case 'A': return cli_parse_double(arg, 0, 1, &o->ad_fraction, why, n);
    case 'a': return cli_parse_double(arg, 0, 1, &o->affinity, why, n);
    case 'N': o->no_budgets = true; return 0;
    case 'W': o->wall_time = true; return 0;
    case 'k': return cli_parse_positive(arg, &o->budget_scale, why, n);
    default: return errf(why, n, "is for an option eddy gen does not know");
    }
}

static int cmd_gen(int argc, char **argv)
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
        {"wall-time", no_argument, 0, 'W'},
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
                   o.items, o.segments, o.campaigns, o.ad_fraction, o.affinity,
                   (long long)o.period_ms, o.budget_scale, (long long)o.step_us,
                   (long long)o.start_ms);
            return 0;
        } else if (c == '?') {
            return 2;
        } else if (gen_option(c, optarg, &o, why, sizeof why)) {
            return cli_bad_value("gen", long_name(opts, c), optarg, why);
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
    if (load_config(path, &cfg))
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

static int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"events", required_argument, 0, 'n'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"seconds", required_argument, 0, 'S'},
                                         {"fault", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct demo_options o = {.events = 400000, .rate = 40000, .max_seconds = 50};
    char why[128];
    int c;
    while ((c = getopt_long(argc, argv, "n:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (cli_parse_u64(optarg, 1, UINT64_MAX, &o.events, why, sizeof why))
                return cli_bad_value("demo", "events", optarg, why);
            break;
        case 'r':
            if (cli_parse_positive(optarg, &o.rate, why, sizeof why))
                return cli_bad_value("demo", "rate", optarg, why);
            break;
        case 'S':
            if (parse_int(optarg, 1, 3600, &o.max_seconds, why, sizeof why))
                return cli_bad_value("demo", "seconds", optarg, why);
            break;
        case 'F': o.fault = true; break;
        case 'h': fputs(usage_demo, stdout); return 0;
        default: return 2;
        }
    }
    return demo_run(&o);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {{"run", cmd_run}, {"broker", cmd_broker}, {"gen", cmd_gen}, {"demo", cmd_demo},
                    {"state", cmd_state}, {"import", cmd_import},
                    {"replay", cmd_replay}};

    blas_pick_kernels(argv);

    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("eddy " EDDY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "eddy: unknown command \"%s\"\n\n%s", argv[1], usage_main);
    return 2;
}
