/* cmd_state.c: `eddy state SUBCOMMAND`, the command line over state/inspect.h.
 * Every subcommand opens the state read-only: RocksDB takes no lock then, so
 * it works next to a running eddy. Usage errors are found before the state
 * is opened. */
#include "pipeline/cli/commands.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "operators/embeddings.h"
#include "pipeline/run/chain.h"
#include "pipeline/run/config.h"
#include "state/inspect.h"
#include "state/state.h"

static const char usage_state[] =
    "usage: eddy state stats [-d DIR | -c FILE]\n"
    "       eddy state get user|item|campaign ID [-d DIR | -c FILE]\n"
    "       eddy state export [--format jsonl] [-d DIR | -c FILE]\n"
    "       eddy state backup DEST [-d DIR | -c FILE]\n"
    "\n"
    "Reads a state directory read-only and without taking its lock, so it works\n"
    "while eddy runs; it sees what the last checkpoint before it wrote.\n"
    "\n"
    "  stats    format version, dim, model version, key counts per column family,\n"
    "           bytes on disk and every stored input offset\n"
    "  get      one user, item or campaign as a line of JSON; exit 1 if absent\n"
    "  export   every stored entry, one JSON object per line with a \"kind\",\n"
    "           ordered by column family then key: equal states give identical\n"
    "           output, floats and doubles are exact (17 digits)\n"
    "  backup   write a RocksDB checkpoint of the state into DEST, which must\n"
    "           not exist; eddy runs on it with [state] dir = DEST\n"
    "\n"
    "  -d, --dir DIR       the state directory; its dim is read from it\n"
    "  -c, --config FILE   take [state] dir and [embeddings] dim from FILE (which\n"
    "                      must match the stored dim); without -d or -c they come\n"
    "                      from the built-in defaults and EDDY_* variables\n"
    "      --format FMT    export format: jsonl, the only one and the default\n"
    "  -h, --help          show this help\n";

struct state_args {
    const char *dir, *config, *format;
    char **pos; /* arguments after the subcommand and its options */
    int n_pos;
};

/* A subcommand on the opened state: 0 done, else err says why (exit 1). */
typedef int (*state_fn)(struct eddy_state *st, const struct state_args *a, char *err,
                        size_t errlen);

static int run_stats(struct eddy_state *st, const struct state_args *a, char *err,
                     size_t errlen)
{
    (void)a;
    return inspect_stats(st, stdout, err, errlen);
}

static int run_get(struct eddy_state *st, const struct state_args *a, char *err,
                   size_t errlen)
{
    int rc = inspect_get(st, inspect_kind_cf(a->pos[0], chain_stores()), eddy_str_c(a->pos[1]),
                         stdout, err, errlen);
    if (rc == 1)
        snprintf(err, errlen, "%s \"%s\" not found", a->pos[0], a->pos[1]);
    return rc;
}

static int run_export(struct eddy_state *st, const struct state_args *a, char *err,
                      size_t errlen)
{
    (void)a; /* check_args() let only jsonl through */
    return inspect_export_jsonl(st, stdout, err, errlen);
}

static int run_backup(struct eddy_state *st, const struct state_args *a, char *err,
                      size_t errlen)
{
    if (inspect_backup(st, a->pos[0], err, errlen))
        return -1;
    printf("checkpoint of state %s written to %s\n", a->dir, a->pos[0]);
    return 0;
}

static const struct {
    const char *name;
    int n_pos;
    state_fn run;
} subcommands[] = {
    {"stats", 0, run_stats},
    {"get", 2, run_get},
    {"export", 0, run_export},
    {"backup", 1, run_backup},
};

static int usage_error(const char *sub, const char *msg)
{
    fprintf(stderr, "eddy state %s: %s (see eddy state --help)\n", sub, msg);
    return 2;
}

/* argv[0] is the subcommand. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct state_args *a)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"config", required_argument, 0, 'c'},
                                         {"format", required_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "d:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->dir = optarg; break;
        case 'c': a->config = optarg; break;
        case 'F': a->format = optarg; break;
        case 'h': fputs(usage_state, stdout); return 0;
        default: return 2;
        }
    }
    a->pos = argv + optind;
    a->n_pos = argc - optind;
    return -1;
}

static int check_args(const char *sub, int n_pos, const struct state_args *a)
{
    if (a->n_pos != n_pos)
        return usage_error(sub, "wrong number of arguments");
    if (a->dir && a->config)
        return usage_error(sub, "give -d or -c, not both");
    if (a->format && strcmp(sub, "export"))
        return usage_error(sub, "--format is for export only");
    if (a->format && strcmp(a->format, "jsonl"))
        return usage_error(sub, "the only --format is jsonl");
    if (!strcmp(sub, "get") && !inspect_kind_cf(a->pos[0], chain_stores()))
        return usage_error(sub, "the kind must be user, item or campaign");
    return 0;
}

/* Opens the state, runs fn on it and flushes its output: stdout may be a
 * pipe or a full disk, and a truncated export must not exit 0. */
static int run_on_state(const char *sub, state_fn fn, struct state_args *a)
{
    struct eddy_config cfg = {0};
    struct state_options o = {.dir = a->dir, .read_only = true, /* dim 0: the stored one */
                              .stores = chain_stores()};
    struct eddy_state *st = NULL;
    char err[1024];
    int rc = 1;
    if (!a->dir) {
        if (config_load(&cfg, a->config, err, sizeof err))
            goto out;
        const struct mf_params *mf = config_op_params(&cfg, &eddy_op_embeddings);
        a->dir = o.dir = cfg.state_dir;
        o.dim = mf->dim;
    }
    if (state_open(&o, &st, err, sizeof err) || fn(st, a, err, sizeof err))
        goto out;
    if (fflush(stdout) || ferror(stdout)) {
        snprintf(err, sizeof err, "writing output: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "eddy state %s: %s\n", sub, err);
    state_close(st);
    config_free(&cfg);
    return rc;
}

int cmd_state(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_state, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(argv[1], subcommands[i].name))
            continue;
        struct state_args a = {0};
        int rc = parse_args(argc - 1, argv + 1, &a);
        if (rc >= 0)
            return rc;
        rc = check_args(argv[1], subcommands[i].n_pos, &a);
        return rc ? rc : run_on_state(argv[1], subcommands[i].run, &a);
    }
    fprintf(stderr, "eddy state: unknown subcommand \"%s\"\n\n%s", argv[1], usage_state);
    return 2;
}
