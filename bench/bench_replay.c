/* bench_replay.c: end-to-end replay throughput on the bench's traffic
 * (issue 12; issue 5's scenario 1).
 *
 * Usage: bench_replay ROWS.json EDDY [EVENTS]   (EVENTS: the log, default 4M)
 *
 * The log is `EDDY gen --traffic sessions` (docs/performance.md, "Bench
 * traffic"): 1M Zipf(0.8) users, 100k Zipf(1.0) items in 10 clusters,
 * sessions of about 6 clicks a few seconds apart, 20 campaigns, 20% ad
 * events, 200 events/s of event time (4M events: 5.6 hours).
 *
 * Figure: `EDDY replay --no-eval` with all operators and default settings
 * (no configuration file: d=32, the default retrieval, state cache and
 * checkpoints on), events per second as it reports them. Reference, same
 * run: a bare loop that reads and decodes the same files through the same
 * log source. Median of 3 each.
 *
 * So that the row takes about a minute whatever the operators cost, it runs
 * on the log's first N events (the generator is sequential: `-n N` is that
 * prefix), N sized from a calibration replay of the first 20k events for
 * about 15 seconds a replay (RUN_S), at least 20k, at most EVENTS; the row says
 * N. With perf available, one more replay runs under `perf record` and the
 * row file gets the share of samples per library and the top symbols:
 * where the time goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "pipeline/source/source_logs.h"

#define RUNS 3
#define USERS 1000000
#define ITEMS 100000
#define CALIBRATION 20000
/* Seconds a replay would take at the calibration's rate. A longer prefix
 * runs slower (more users in the state, a cold cache for each new one):
 * 330k events ran at a third of the 20k calibration's rate, so this gives
 * about 15 s a replay, a minute for the row with the profile. */
#define RUN_S 5.0
#define GEN_ARGS "--traffic sessions --users 1000000 --items 100000 --segments 10 " \
                 "--campaigns 20 --ad-fraction 0.2 --step-us 5000 --seed 1"
#define PROFILE_ROWS 12

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_replay: %s: %s\n", what, why);
    exit(1);
}

/* Runs a shell command, returns its stdout (malloc'd); NULL if it failed
 * and may_fail. */
static char *run_cmd(const char *cmd, int may_fail)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        die("popen", cmd);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t n;
    while (out && (n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap && !(out = realloc(out, cap *= 2)))
            break;
    }
    if (pclose(p) != 0 || !out) {
        if (may_fail) {
            free(out);
            return NULL;
        }
        die("command failed", cmd);
    }
    out[len] = '\0';
    return out;
}

static char *run(const char *cmd)
{
    return run_cmd(cmd, 0);
}

static void gen(const char *eddy, const char *log, unsigned long events)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && %s gen --out %s -n %lu " GEN_ARGS " > /dev/null 2>&1",
             log, eddy, log, events);
    free(run(cmd));
}

static double decode_only(const char *log)
{
    char *paths[] = {(char *)log}, err[512];
    struct logsource *src;
    if (logsource_open(paths, 1, &src, err, sizeof err))
        die("logsource", err);
    struct eddy_event ev;
    uint64_t n = 0;
    int rc;
    double t0 = now_s();
    while ((rc = logsource_next(src, &ev, err, sizeof err)) == 1)
        n++;
    double secs = now_s() - t0;
    if (rc < 0)
        die("logsource", err);
    logsource_free(src);
    return (double)n / secs;
}

/* One replay on a fresh state directory; PREFIX wraps the command (perf). */
static double replay(const char *prefix, const char *eddy, const char *dir, const char *log,
                     const char *tag)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf %s/state-%s %s/out-%s && %s %s replay --no-eval -q "
             "-s %s/state-%s -o %s/out-%s %s",
             dir, tag, dir, tag, prefix, eddy, dir, tag, dir, tag, log);
    char *out = run(cmd);
    const char *at = strstr(out, " events/s");
    const char *start = at;
    while (start && start > out && start[-1] != ' ')
        start--;
    if (!at)
        die("no throughput in the replay's output", out);
    double rate = strtod(start, NULL);
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf %s/state-%s %s/out-%s", dir, tag, dir, tag);
    free(run(cmd));
    return rate;
}

/* `perf report` lines "  12.34%  name" into JSON objects; returns how many. */
static int perf_rows(FILE *f, const char *report, const char *key)
{
    int rows = 0;
    for (const char *line = report; *line && rows < PROFILE_ROWS;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        double share;
        int used = 0;
        if (line[0] != '#' && sscanf(line, " %lf%% %n", &share, &used) == 1 && used > 0 &&
            share >= 0.5) {
            char name[256];
            size_t nl = len - (size_t)used < sizeof name - 1 ? len - (size_t)used : sizeof name - 1;
            memcpy(name, line + used, nl);
            name[nl] = '\0';
            while (nl > 0 && name[nl - 1] == ' ')
                name[--nl] = '\0';
            for (char *c = name; *c; c++)
                if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                    *c = ' ';
            fprintf(f, "%s{\"%s\": \"%s\", \"share\": %.1f}", rows ? ", " : "", key, name, share);
            fprintf(stderr, "  %5.1f%%  %s\n", share, name);
            rows++;
        }
        line += len + (end ? 1 : 0);
    }
    return rows;
}

/* One replay under perf record; writes "profile" members into f. */
static void profile(FILE *f, const char *eddy, const char *dir, const char *log)
{
    char prefix[512], cmd[1024];
    snprintf(prefix, sizeof prefix, "perf record -q -F 499 -o %s/perf.data --", dir);
    snprintf(cmd, sizeof cmd, "%s true > /dev/null 2>&1", prefix);
    char *ok = run_cmd(cmd, 1); /* perf may be installed but not allowed (perf_event_paranoid) */
    if (!ok) {
        fprintf(stderr, "bench_replay: perf record does not run here: no profile\n");
        return;
    }
    free(ok);
    replay(prefix, eddy, dir, log, "perf");
    static const char *const sorts[2][2] = {{"dso", "dso"}, {"dso,sym", "symbol"}};
    for (int s = 0; s < 2; s++) {
        snprintf(cmd, sizeof cmd, "perf report -i %s/perf.data --stdio -q --sort %s "
                 "2> /dev/null", dir, sorts[s][0]);
        char *rep = run_cmd(cmd, 1);
        if (!rep)
            return;
        fprintf(stderr, "bench_replay: share of samples by %s:\n", sorts[s][1]);
        fprintf(f, ",\n \"profile_by_%s\": [", sorts[s][1]);
        perf_rows(f, rep, sorts[s][1]);
        fprintf(f, "]");
        free(rep);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: bench_replay ROWS.json EDDY [EVENTS]\n");
        return 2;
    }
    unsigned long max = argc == 4 ? strtoul(argv[3], NULL, 10) : 4000000;
    if (max < CALIBRATION)
        max = CALIBRATION;
    char dir[] = "/tmp/eddy-bench-replay-XXXXXX", log[64];
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    const char *eddy = argv[2];

    gen(eddy, log, CALIBRATION);
    double cal = replay("", eddy, dir, log, "cal");
    double want = cal * RUN_S;
    unsigned long events = want >= (double)max ? max
                         : want <= CALIBRATION ? CALIBRATION
                         : (unsigned long)want / 10000 * 10000;
    fprintf(stderr, "bench_replay: calibration %.0f events/s; %lu events of the %luk-event "
            "sessions log, %d users, %d items, default settings ", cal, events, max / 1000,
            USERS, ITEMS);
    if (events != CALIBRATION)
        gen(eddy, log, events);
    double full[RUNS], bare[RUNS];
    for (int i = 0; i < RUNS; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%d", i);
        bare[i] = decode_only(log);
        full[i] = replay("", eddy, dir, log, tag);
        fprintf(stderr, ".");
    }
    fprintf(stderr, "\n");
    double fig = median_of(full, RUNS), ref = median_of(bare, RUNS);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        die(argv[1], "cannot write");
    fprintf(f, "{\"bench\": \"replay\", \"traffic\": \"eddy gen %s\", \"events\": %lu, "
            "\"log_events\": %lu, \"calibration_events_per_s\": %.6g, \"runs\": %d, "
            "\"rows\": [\n"
            "  {\"scenario\": \"replay, %luk events of sessions traffic, defaults (ref: decode "
            "only)\", \"unit\": \"ev/s\", \"figure\": %.6g, \"reference\": %.6g, "
            "\"ratio\": %.4g}\n]",
            GEN_ARGS, events, max, cal, RUNS, events / 1000, fig, ref, fig / ref);
    if (!getenv("BENCH_NO_PERF") && system("perf --version > /dev/null 2>&1") == 0)
        profile(f, eddy, dir, log);
    fprintf(f, "}\n");
    fclose(f);
    remove_tree(dir);
    return 0;
}
