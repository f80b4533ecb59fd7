/* main.c: eddy's command line: dispatches `eddy COMMAND` to the command's
 * own file (pipeline/cli/cmd_*.c), which parses its options with getopt_long and
 * has a --help that lists exactly those options. */
#include <stdio.h>
#include <string.h>

#include "operators/blas.h"
#include "pipeline/run/chain.h"
#include "pipeline/cli/commands.h"

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
    "operators, in chain order: what each reads, outputs and stores:\n";
static const char usage_tail[] =
    "\n"
    "`eddy COMMAND --help` describes each command. Version " EDDY_VERSION ".\n";

static void usage(FILE *out)
{
    fputs(usage_main, out);
    chain_describe(out);
    fputs(usage_tail, out);
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
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        puts("eddy " EDDY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "eddy: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
