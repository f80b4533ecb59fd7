/* cmd_run.c: `eddy run`, the live pipeline (pipeline/run/runtime.h). */
#include <getopt.h>
#include <stdio.h>

#include "pipeline/cli/cli.h"
#include "pipeline/cli/commands.h"
#include "pipeline/run/config.h"
#include "pipeline/run/log.h"
#include "pipeline/run/runtime.h"

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

int cmd_run(int argc, char **argv)
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
    if (cli_load_config(path, &cfg))
        return 1;
    int rc = runtime_run(&cfg, NULL);
    config_free(&cfg);
    return rc;
}
