/* cmd_demo.c: `eddy demo`, broker, generator and pipeline in one process. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "pipeline/cli/cli.h"
#include "pipeline/cli/commands.h"
#include "pipeline/tools/demo.h"

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

int cmd_demo(int argc, char **argv)
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
            if (cli_parse_int(optarg, 1, 3600, &o.max_seconds, why, sizeof why))
                return cli_bad_value("demo", "seconds", optarg, why);
            break;
        case 'F': o.fault = true; break;
        case 'h': fputs(usage_demo, stdout); return 0;
        default: return 2;
        }
    }
    return demo_run(&o);
}
