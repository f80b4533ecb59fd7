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
 *
 * Then, at 100k and 1M items, the same operator on the bench's traffic
 * (docs/performance.md, "Bench traffic"): the whole chain (every operator of
 * CHAIN_TABLE, built from the default configuration with d=64, as eddy
 * builds it) first takes WARMUP events of `eddy gen --traffic sessions`
 * with its refreshes held back, so users have recent histories and every
 * operator its state; then the next events are processed in batches of
 * 2048, as the driver does, and each batch's flush is timed: it scores the
 * refreshes that fell due; until MEASURE_S seconds of flushes are timed.
 * The reference takes the same events, or fewer if it reaches MEASURE_S
 * first (a slower path would otherwise take minutes). Figure: refreshes per second of flush with the
 * default [recommend] settings; reference, same run and traffic:
 * `retrieval = exact`, the full-catalogue sgemm. A build whose recommend
 * has no `retrieval` key has only the exact path: both rows then measure
 * it, and the row file says so ("retrieval_key": false).
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
#include "pipeline/run/chain.h"
#include "pipeline/run/config.h"
#include "pipeline/tools/gen.h"
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

/* ---- the bench's traffic through the whole chain ---------------------- */

#define WARMUP 200000         /* events before the timed part */
#define MEASURE_MAX 1000000   /* events at most in the timed part */
#define MEASURE_S 3.0         /* seconds of flush to time, at least */
#define DRIVER_BATCH 2048     /* events between flushes, as the driver's batch */

static uint64_t chain_emitted;

static void on_chain_rec(void *ctx, const struct recommendation *rec)
{
    (void)ctx, (void)rec;
    chain_emitted++;
}

/* Loads the default configuration with d=64 and, if retrieval, that
 * [recommend] retrieval; false when this build's recommend has no such key. */
static bool load_config(struct eddy_config *cfg, const char *retrieval, int64_t interval_ms)
{
    char err[512], iv[32];
    setenv("EDDY_EMBEDDINGS_DIM", "64", 1);
    snprintf(iv, sizeof iv, "%lld", (long long)interval_ms);
    if (interval_ms >= 0)
        setenv("EDDY_RECOMMEND_REFRESH_INTERVAL_MS", iv, 1);
    if (retrieval)
        setenv("EDDY_RECOMMEND_RETRIEVAL", retrieval, 1);
    int rc = config_load(cfg, NULL, err, sizeof err);
    unsetenv("EDDY_RECOMMEND_RETRIEVAL");
    unsetenv("EDDY_RECOMMEND_REFRESH_INTERVAL_MS");
    unsetenv("EDDY_EMBEDDINGS_DIM");
    if (rc && retrieval)
        return false;
    if (rc)
        die("config", err);
    return true;
}

static void feed(struct op_chain *c, struct gen *g, uint64_t n, int64_t *last_ts)
{
    struct gen_record r;
    for (uint64_t i = 0; i < n && gen_next(g, &r); i++) {
        if (r.ev.kind == EV_CLICK)
            *last_ts = r.ev.u.click.timestamp_ms;
        else if (r.ev.kind == EV_AD)
            *last_ts = r.ev.u.ad.timestamp_ms;
        chain_process(c, &r.ev);
        if ((i + 1) % DRIVER_BATCH == 0)
            chain_flush(c, *last_ts, *last_ts);
    }
}

/* Refreshes per second of flush on the sessions traffic at `items` items,
 * with the given retrieval (NULL: the default); *known false when the key is
 * not this build's. */
static double run_traffic(uint32_t items, const char *retrieval, bool *known, uint64_t *refreshes,
                          uint64_t *events, uint64_t max_events)
{
    char dir[] = "/tmp/eddy-bench-refresh-XXXXXX", err[512], id[24];
    if (!mkdtemp(dir))
        die("mkdtemp", dir);
    struct eddy_config cfg;
    *known = load_config(&cfg, retrieval, -1);
    if (!*known)
        load_config(&cfg, NULL, -1);
    struct eddy_config warm;
    load_config(&warm, NULL, (int64_t)1e15); /* refreshes never fall due */
    struct state_options so = {.dir = dir, .dim = DIM, .create_if_missing = true,
                               .stores = chain_stores()};
    struct eddy_state *st;
    if (state_open(&so, &st, err, sizeof err))
        die("state_open", err);
    float v[DIM];
    for (uint32_t i = 0; i < items; i++) { /* gen's ids, so the traffic's items are these */
        snprintf(id, sizeof id, "i%u", i);
        fill(v, i + 1);
        state_rows_add(state_store(st, &items_store), eddy_str_c(id), v);
    }
    struct gen_options go;
    gen_options_default(&go);
    go.traffic = GEN_SESSIONS;
    go.users = 1000000;
    go.items = (int)items;
    go.campaigns = 1;
    go.ad_fraction = 0;
    go.step_us = 5000;
    go.events = WARMUP + MEASURE_MAX;
    struct gen *g = gen_new(&go);
    struct eddy_emit emit = {.recommendation = on_chain_rec, .decision = on_dec};
    struct op_chain c;
    int64_t ts = go.start_ms;
    if (chain_create(&c, &warm, st, &emit, err, sizeof err))
        die("chain", err);
    feed(&c, g, WARMUP, &ts);
    chain_checkpoint(&c);
    chain_destroy(&c);
    if (state_commit(st, err, sizeof err) || state_sync(st, err, sizeof err))
        die("state_commit", err);
    if (chain_create(&c, &cfg, st, &emit, err, sizeof err))
        die("chain", err);
    double secs = 0;
    uint64_t fed = 0, n = 0;
    struct gen_record r;
    while ((secs < MEASURE_S || n == 0) && fed < max_events) {
        for (int i = 0; i < DRIVER_BATCH && gen_next(g, &r); i++, fed++) {
            ts = r.ev.kind == EV_CLICK ? r.ev.u.click.timestamp_ms : ts;
            chain_process(&c, &r.ev);
        }
        chain_emitted = 0;
        double t0 = now_s();
        chain_flush(&c, ts, ts);
        secs += now_s() - t0;
        n += chain_emitted;
    }
    chain_destroy(&c);
    gen_free(g);
    state_close(st);
    remove_tree(dir);
    config_free(&cfg);
    config_free(&warm);
    *refreshes = n;
    *events = fed;
    return secs > 0 ? (double)n / secs : 0;
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
                "\"ratio\": %.4g},\n",
                items[s] / 1000, f, ref, f / ref);
    }
    static const uint32_t traffic_items[] = {100000, 1000000};
    bool known = true;
    for (int s = 0; s < 2; s++) {
        uint64_t n_def, n_exact, e_def, e_exact;
        bool k1, k2;
        double f = run_traffic(traffic_items[s], NULL, &k1, &n_def, &e_def, MEASURE_MAX);
        fprintf(stderr, ".");
        /* The same events, or as many as it scores in the time */
        double ref = run_traffic(traffic_items[s], "exact", &k2, &n_exact, &e_exact, e_def);
        fprintf(stderr, ".");
        known = known && k2;
        fprintf(out,
                "  {\"scenario\": \"refresh, %uk items, sessions traffic, d=64, defaults (ref: "
                "exact)\", \"unit\": \"users/s\", \"figure\": %.6g, \"reference\": %.6g, "
                "\"ratio\": %.4g, \"refreshes\": %llu, \"refreshes_reference\": %llu, "
                "\"events\": %llu, \"events_reference\": %llu}%s\n",
                traffic_items[s] / 1000, f, ref, f / ref, (unsigned long long)n_def,
                (unsigned long long)n_exact, (unsigned long long)e_def,
                (unsigned long long)e_exact, s < 1 ? "," : "");
    }
    fprintf(out, "], \"retrieval_key\": %s, \"traffic_warmup_events\": %d}\n",
            known ? "true" : "false", WARMUP);
    fclose(out);
    fprintf(stderr, "\n");
    return 0;
}
