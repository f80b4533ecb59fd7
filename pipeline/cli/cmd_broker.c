/* cmd_broker.c: `eddy broker`, librdkafka's mock cluster with eddy's topics and
 * the fault-injection channel of mockctl.h on stdin. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "pipeline/cli/cli.h"
#include "pipeline/cli/commands.h"
#include "pipeline/run/config.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/tools/mockctl.h"

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

/* SIGINT and SIGTERM, blocked in this thread (and so in the threads it
 * starts later), to be taken with sigwait(). */
static void block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int cmd_broker(int argc, char **argv)
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
            if (cli_parse_int(optarg, 1, 9, &brokers, why, sizeof why))
                return cli_bad_value("broker", "brokers", optarg, why);
            break;
        case 'P':
            if (cli_parse_int(optarg, 1, 256, &partitions, why, sizeof why))
                return cli_bad_value("broker", "partitions", optarg, why);
            break;
        case 'h': fputs(usage_broker, stdout); return 0;
        default: return 2;
        }
    }
    /* Before librdkafka starts its threads, so they inherit the mask and
     * sigwait() below receives the signals. */
    sigset_t stop;
    block_stop_signals(&stop);

    struct eddy_config cfg;
    struct kafka_mock mock;
    char err[512];
    if (cli_load_config(path, &cfg))
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
    int sig;
    sigwait(&stop, &sig);
    mockctl_serve_stop(ctl);
    kafka_mock_free(&mock);
    config_free(&cfg);
    return 0;
}
