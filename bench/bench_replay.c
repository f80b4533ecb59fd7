/* bench_replay.c: replay throughput, issue 5's scenario 1, at a size that
 * fits `make bench`'s time.
 *
 * Usage: bench_replay ROWS.json EDDY [EVENTS]   (EVENTS defaults to 200k)
 *
 * `EDDY gen --out` writes EVENTS events with the scenario's mix and
 * cardinalities: 80% clicks and 20% ad events, 1M users, 100k items; they
 * are the first EVENTS events of the scenario's 5M-event log (the generator
 * is sequential). Figure: `EDDY replay --no-eval` over them at d=64, all
 * operators, state cache and checkpoints on, events per second as it
 * reports them. Reference, same run: a bare loop that reads and decodes the
 * same files through the same log source. Median of 3 each.
 *
 * Why not the whole 5M: with 1M users nearly every click is due a refresh,
 * and a refresh scores all 100k items (docs/performance.md): the full log
 * would take longer than all of `make bench` may. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "pipeline/source/source_logs.h"

#define RUNS 3

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_replay: %s: %s\n", what, why);
    exit(1);
}

/* Runs a shell command, returns its stdout (malloc'd). */
static char *run(const char *cmd)
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
    if (pclose(p) != 0 || !out)
        die("command failed", cmd);
    out[len] = '\0';
    return out;
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

static double replay(const char *eddy, const char *dir, const char *log, int i)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "EDDY_EMBEDDINGS_DIM=64 %s replay --no-eval -q -s %s/state%d -o %s/out%d %s",
             eddy, dir, i, dir, i, log);
    char *out = run(cmd);
    const char *at = strstr(out, " events/s");
    const char *start = at;
    while (start && start > out && start[-1] != ' ')
        start--;
    if (!at)
        die("no throughput in the replay's output", out);
    double rate = strtod(start, NULL);
    free(out);
    return rate;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: bench_replay ROWS.json EDDY [EVENTS]\n");
        return 2;
    }
    unsigned long events = argc == 4 ? strtoul(argv[3], NULL, 10) : 200000;
    char dir[] = "/tmp/eddy-bench-replay-XXXXXX", log[64], cmd[1024];
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    fprintf(stderr, "bench_replay: %lu events, 1M users, 100k items, d=64 ", events);
    snprintf(cmd, sizeof cmd,
             "%s gen --out %s -n %lu --users 1000000 --items 100000 --campaigns 20 "
             "--ad-fraction 0.2 > /dev/null 2>&1", argv[2], log, events);
    free(run(cmd));
    double full[RUNS], bare[RUNS];
    for (int i = 0; i < RUNS; i++) {
        bare[i] = decode_only(log);
        full[i] = replay(argv[2], dir, log, i);
        fprintf(stderr, ".");
    }
    remove_tree(dir);
    double fig = median_of(full, RUNS), ref = median_of(bare, RUNS);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        die(argv[1], "cannot write");
    fprintf(f, "{\"bench\": \"replay\", \"events\": %lu, \"users\": 1000000, \"items\": 100000, "
            "\"dim\": 64, \"runs\": %d, \"rows\": [\n"
            "  {\"scenario\": \"replay, first %luk events of 5M, 1M users (ref: decode only)\", "
            "\"unit\": \"ev/s\", \"figure\": %.6g, \"reference\": %.6g, \"ratio\": %.4g}\n]}\n",
            events, RUNS, events / 1000, fig, ref, fig / ref);
    fclose(f);
    fprintf(stderr, "\n");
    return 0;
}
