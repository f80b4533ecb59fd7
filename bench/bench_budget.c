/* bench_budget.c: the budget controller's row of `make bench` (issue 13).
 *
 * Usage: bench_budget ROWS.json [AUCTIONS]  (bench/report.py prints the row)
 *
 * Bid decisions per second through the budget operator: AUCTIONs of one
 * campaign (pCTR and market price from a hash of the index, a period of
 * 1000 auctions, budget c0 = 1/8 of the Cai et al. protocol) go through
 * eddy_op_budget.process() with the default [bidding] parameters (market
 * pacing, its plan re-made and a Q-update at every slot boundary) on a real
 * state, uncommitted as between two checkpoints. Reference: Lin's bidder
 * (backtest/auction.h) on the same auctions in the same run. Median of
 * RUNS runs each. No threshold: the row shows the cost of the controller
 * against the cheapest possible bidder. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backtest/auction.h"
#include "bench/bench.h"
#include "operators/budget.h"
#include "pipeline/run/config.h"
#include "state/state.h"

#define RUNS 5
#define EPISODE 1000
#define MS_PER_AUCTION 10

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_budget: %s: %s\n", what, why ? why : "failed");
    exit(1);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* pCTR around 0.001, prices around 70000 micros: iPinYou's scale. */
static struct auction *make_auctions(size_t n)
{
    struct auction *a = malloc(n * sizeof *a);
    if (!a)
        die("malloc", NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t h = mix(i);
        a[i] = (struct auction){(int64_t)i * MS_PER_AUCTION,
                                0.002 * (double)(h >> 11) * 0x1.0p-53,
                                (int64_t)(140000 * (double)(mix(h) >> 11) * 0x1.0p-53),
                                (h & 1023) == 0};
    }
    return a;
}

static void on_decision(void *ctx, const struct budget_decision *d)
{
    (*(uint64_t *)ctx)++;
    (void)d;
}

/* Auctions per second through the operator, on a fresh state. */
static double run_operator(const struct bid_params *p, const struct auction *a, size_t n,
                           int64_t budget, int run)
{
    char dir[64], err[512];
    snprintf(dir, sizeof dir, "/tmp/eddy-bench-budget-%d-%d", (int)getpid(), run);
    static const struct state_codec *const stores[] = {&budget_campaigns, NULL};
    struct state_options o = {.dir = dir, .dim = 4, .create_if_missing = true, .stores = stores};
    struct eddy_state *st;
    if (state_open(&o, &st, err, sizeof err))
        die("state_open", err);
    uint64_t decisions = 0;
    struct eddy_emit emit = {.decision = on_decision, .ctx = &decisions};
    void *op = eddy_op_budget.create(p, st, &emit, err, sizeof err);
    if (!op)
        die("create", err);
    struct eddy_event ev = {.kind = EV_CAMPAIGN};
    ev.u.campaign = (struct campaign_budget){eddy_str_c("c"), budget,
                                             EPISODE * MS_PER_AUCTION, 700000000};
    eddy_op_budget.process(op, &ev);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        ev = (struct eddy_event){.kind = EV_AD};
        ev.u.ad = (struct ad_event){.campaign_id = eddy_str_c("c"), .type = AD_AUCTION,
                                    .timestamp_ms = a[i].t_ms, .has_pctr = true,
                                    .pctr = a[i].pctr, .has_market_price = true,
                                    .market_price_micros = a[i].price_micros};
        eddy_op_budget.process(op, &ev);
    }
    double secs = now_s() - t0;
    const struct campaign_state *c = state_find(state_store(st, &budget_campaigns),
                                                eddy_str_c("c"));
    if (!decisions || !c || !c->l.wins)
        die("operator", "published no decision or won nothing");
    if (run == 0)
        fprintf(stderr, "budget operator: %" PRIu64 " slot decisions, %" PRId64 " of %zu "
                "auctions won\n", decisions, c->l.wins, n);
    eddy_op_budget.destroy(op);
    state_close(st);
    remove_tree(dir);
    return (double)n / secs;
}

static double run_lin(const struct auction *a, size_t n, int64_t budget)
{
    double mean_price, mean_pctr;
    auction_means(a, n, &mean_price, &mean_pctr);
    struct bid_result r;
    double t0 = now_s();
    lin_simulate(a, n, EPISODE, budget, mean_price, mean_pctr, 24, &r);
    double secs = now_s() - t0;
    if (!r.auctions)
        die("lin", "no auction");
    return (double)n / secs;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_budget ROWS.json [AUCTIONS]\n");
        return 2;
    }
    size_t n = argc == 3 ? strtoull(argv[2], NULL, 10) : 2000000;
    struct eddy_config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err))
        die("config", err);
    const struct bid_params *p = config_op_params(&cfg, &eddy_op_budget);
    struct auction *a = make_auctions(n);
    double mean_price, mean_pctr;
    auction_means(a, n, &mean_price, &mean_pctr);
    int64_t budget = auction_episode_budget(1.0 / 8, EPISODE, mean_price);
    double op[RUNS], lin[RUNS];
    for (int i = 0; i < RUNS; i++) {
        op[i] = run_operator(p, a, n, budget, i);
        lin[i] = run_lin(a, n, budget);
        fprintf(stderr, ".");
    }
    fprintf(stderr, "\n");
    double figure = median_of(op, RUNS), reference = median_of(lin, RUNS);
    FILE *f = fopen(argv[1], "w");
    if (!f)
        die(argv[1], "cannot write");
    fprintf(f, "{\"bench\": \"budget\", \"auctions\": %zu, \"runs\": %d, \"rows\": [\n"
               "  {\"scenario\": \"budget operator, market pacing: bid decisions/s (ref: Lin's "
               "bidder)\", \"unit\": \"dec/s\", \"figure\": %.6g, \"reference\": %.6g, "
               "\"ratio\": %.6g}\n]}\n",
            n, RUNS, figure, reference, figure / reference);
    if (fclose(f))
        die(argv[1], "cannot write");
    free(a);
    config_free(&cfg);
    return 0;
}
