/* bench_refresh.c: recommendation refresh throughput, issue 5's scenario 4.
 *
 * Usage: bench_refresh ROWS.json
 *
 * For 10k, 100k and 1M items at d=64, K=10: USERS users, each with a vector
 * and 20 seen items, are queued for a refresh (one click event each, to the
 * real recommend operator with eddy's default batch of 128 users), then one
 * flush refreshes them all: sgemm per batch, top-K selection, seen-item
 * filtering, rescoring and the emitted record. Figure: user refreshes per
 * second. Reference, in the same run: bare cblas_sgemm of the same shapes
 * (128 users x d times d x items), no selection. Median of 3 runs each.
 * Writes its rows to ROWS.json; bench/report.py prints them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "bench/bench.h"
#include "operators/blas.h"
#include "operators/recommend.h"
#include "operators/users.h"
#include "state/state.h"

#define DIM 64
#define K 10
#define BATCH 128
#define SEEN 20
#define RUNS 3

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_refresh: %s: %s\n", what, err);
    exit(1);
}

/* A fixed pseudo-random vector per seed: the same inputs every run. */
static void fill(float *v, uint32_t seed)
{
    for (int j = 0; j < DIM; j++) {
        seed = seed * 1664525u + 1013904223u;
        v[j] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

static uint64_t emitted;

static void on_rec(void *ctx, const struct recommendation *rec)
{
    (void)ctx, (void)rec;
    emitted++;
}

static void on_dec(void *ctx, const struct budget_decision *d)
{
    (void)ctx, (void)d;
}

static struct eddy_state *make_state(const char *dir, uint32_t items, uint32_t users)
{
    static const struct state_codec *const stores[] = {&users_store, &items_store, NULL};
    struct state_options o = {.dir = dir, .dim = DIM, .create_if_missing = true,
                              .stores = stores};
    struct eddy_state *st;
    char err[512], id[24];
    if (state_open(&o, &st, err, sizeof err))
        die("state_open", err);
    float v[DIM];
    struct state_store *users_st = state_store(st, &users_store);
    for (uint32_t i = 0; i < items; i++) {
        snprintf(id, sizeof id, "i%u", i);
        fill(v, i + 1);
        state_rows_add(state_store(st, &items_store), eddy_str_c(id), v);
    }
    for (uint32_t u = 0; u < users; u++) {
        snprintf(id, sizeof id, "u%u", u);
        struct user_state *us = state_get_in(users_st, 0, eddy_str_c(id), true);
        fill(us->vec, 1000000007u + u);
        us->is_new = false;
        for (uint32_t s = 0; s < SEEN; s++)
            user_seen_add(us, (u * 7919u + s * 104729u) % items);
        state_dirty(users_st, us);
    }
    if (state_commit(st, err, sizeof err) || state_sync(st, err, sizeof err))
        die("state_commit", err);
    return st;
}

static void *make_op(struct eddy_state *st)
{
    struct rec_params p = {.k = K, .refresh_interval_ms = 0, .batch_users = BATCH};
    struct eddy_emit emit = {.recommendation = on_rec, .decision = on_dec};
    char err[512];
    void *op = eddy_op_recommend.create(&p, st, &emit, err, sizeof err);
    if (!op)
        die("recommend", err);
    return op;
}

/* Refreshes every user once through the operator (a long-lived one, as in
 * eddy: its buffers are warm); refreshes per second. t_ms must grow from
 * run to run, as a user is refreshed once per event time. */
static double run_operator(void *op, uint32_t users, int64_t t_ms)
{
    char id[24];
    for (uint32_t u = 0; u < users; u++) {
        snprintf(id, sizeof id, "u%u", u);
        struct eddy_event ev = {.kind = EV_CLICK};
        ev.u.click = (struct click_event){.user_id = eddy_str_c(id), .item_id = eddy_str_c("i0"),
                                          .type = CLICK_CLICK, .timestamp_ms = t_ms};
        eddy_op_recommend.process(op, &ev);
    }
    emitted = 0;
    double t0 = now_s();
    eddy_op_recommend.flush(op, t_ms);
    double secs = now_s() - t0;
    if (emitted != users)
        die("recommend", "not every user was refreshed");
    return users / secs;
}

/* The same shapes through bare sgemm: user-scorings per second. */
static double run_sgemm(uint32_t items, uint32_t users)
{
    float *U = malloc(sizeof(float) * BATCH * DIM), *M = malloc(sizeof(float) * items * DIM);
    float *S = malloc(sizeof(float) * (size_t)BATCH * items);
    if (!U || !M || !S)
        die("sgemm", "out of memory");
    for (uint32_t i = 0; i < BATCH; i++)
        fill(U + (size_t)i * DIM, 1000000007u + i);
    for (uint32_t i = 0; i < items; i++)
        fill(M + (size_t)i * DIM, i + 1);
    double t0 = now_s();
    for (uint32_t done = 0; done < users; done += BATCH)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, (int)items, DIM, 1.0f, U, DIM,
                    M, DIM, 0.0f, S, (int)items);
    double secs = now_s() - t0;
    free(U), free(M), free(S);
    return ((users + BATCH - 1) / BATCH * BATCH) / secs;
}

int main(int argc, char **argv)
{
    blas_pick_kernels(argv);
    if (argc != 2) {
        fprintf(stderr, "usage: bench_refresh RESULTS.json\n");
        return 2;
    }
    static const uint32_t items[] = {10000, 100000, 1000000};
    static const uint32_t users[] = {8192, 2048, 512}; /* about the same time each */
    FILE *out = fopen(argv[1], "w");
    if (!out)
        die(argv[1], "cannot write");
    fprintf(stderr, "bench_refresh: d=%d, K=%d, batches of %d users, OpenBLAS %s ", DIM, K, BATCH,
            openblas_get_corename());
    fprintf(out, "{\"bench\": \"refresh\", \"dim\": %d, \"k\": %d, \"batch_users\": %d, "
            "\"openblas_core\": \"%s\", \"runs\": %d, \"rows\": [\n", DIM, K, BATCH,
            openblas_get_corename(), RUNS);
    for (int s = 0; s < 3; s++) {
        char dir[] = "/tmp/eddy-bench-refresh-XXXXXX";
        if (!mkdtemp(dir))
            die("mkdtemp", dir);
        struct eddy_state *st = make_state(dir, items[s], users[s]);
        void *rec = make_op(st);
        run_operator(rec, users[s], 1000); /* warm-up: first touch of the buffers */
        double op[RUNS], raw[RUNS];
        for (int r = 0; r < RUNS; r++) {
            op[r] = run_operator(rec, users[s], 1000 * (r + 2));
            raw[r] = run_sgemm(items[s], users[s]);
            fprintf(stderr, ".");
        }
        eddy_op_recommend.destroy(rec);
        state_close(st);
        remove_tree(dir);
        double f = median_of(op, RUNS), ref = median_of(raw, RUNS);
        fprintf(out,
                "  {\"scenario\": \"refresh, %uk items, d=64, K=10, seen filtered (ref: raw "
                "sgemm)\", \"unit\": \"users/s\", \"figure\": %.6g, \"reference\": %.6g, "
                "\"ratio\": %.4g}%s\n",
                items[s] / 1000, f, ref, f / ref, s < 2 ? "," : "");
    }
    fprintf(out, "]}\n");
    fclose(out);
    fprintf(stderr, "\n");
    return 0;
}
