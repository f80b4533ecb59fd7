/* test_report.c: report.json and report.html from a hand-built report.
 *
 * Each test gets a fresh directory (mkdtemp, removed afterwards). The JSON
 * is parsed back with jansson and checked value by value; the HTML is
 * checked for its charts, escaping and self-containedness. Setting
 * EDDY_TEST_REPORT_KEEP=dir copies the full report.html there (for the
 * render check, tests/integration/check_report_render.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "backtest/report.h"

struct fx {
    char dir[64];
    char json[128], html[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/eddy_test_report_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->json, sizeof f->json, "%s/report.json", f->dir);
    snprintf(f->html, sizeof f->html, "%s/report.html", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tmpdir_remove(f->dir), 0);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- the hand-built report */

static const struct report_kv config[] = {
    {"k", "10"},
    {"budget.slots", "4"},
    {"quote\"key", "it's <b>"},
};
static const struct report_kv run[] = {
    {"input", "events.avro"},
    {"records", "1234"},
};

static const struct preq_window windows[] = {
    {.first_ms = 1500000000000, .last_ms = 1500003600000,
     .eddy = {.events = 4, .hits = 3, .ndcg = 2.0, .rr = 1.5},
     .pop = {.events = 4, .hits = 1, .ndcg = 0.5, .rr = 0.25},
     .knn = {.events = 4, .hits = 2, .ndcg = 1.0, .rr = 0.5}},
    {.first_ms = 1500003600001, .last_ms = 1500007200000,
     .eddy = {.events = 2, .hits = 1, .ndcg = 0.5, .rr = 0.5},
     .pop = {.events = 2, .hits = 0, .ndcg = 0, .rr = 0},
     .knn = {.events = 2, .hits = 2, .ndcg = 2.0, .rr = 2.0}},
};

static struct preq_summary rec_summary(void)
{
    struct preq_summary s = {
        .k = 10,
        .eddy = {.events = 6, .hits = 4, .ndcg = 2.5, .rr = 2.0},
        .pop = {.events = 6, .hits = 1, .ndcg = 0.5, .rr = 0.25},
        .eddy_items_recommended = 30,
        .knn = {.events = 6, .hits = 4, .ndcg = 3.0, .rr = 2.5},
        .pop_items_recommended = 12,
        .knn_items_recommended = 20,
        .knn_history = 30,
        .buckets = {
            {0, 0, .eddy = {.events = 1}, .pop = {.events = 1, .hits = 1, .ndcg = 1, .rr = 1},
             .knn = {.events = 1}},
            {1, 5, .eddy = {.events = 2, .hits = 1, .ndcg = 0.5, .rr = 0.5},
             .pop = {.events = 2}, .knn = {.events = 2, .hits = 2, .ndcg = 1.5, .rr = 1.25}},
            {6, 20, .eddy = {.events = 3, .hits = 3, .ndcg = 2.0, .rr = 1.5},
             .pop = {.events = 3}, .knn = {.events = 3, .hits = 2, .ndcg = 1.5, .rr = 1.25}},
            {21, UINT64_MAX},
        },
        .catalog_items = 40,
        .users = 7,
        .observed = 99,
        .windows = windows,
        .n_windows = 2,
    };
    return s;
}

static const struct report_spend_point points[] = {
    {1500000000000, 0, 0},
    {1500003600000, 400000, 500000},
    {1500007200000, 900000, 1000000},
};

static struct bid_result bid(uint64_t auctions, uint64_t wins, uint64_t clicks, int64_t spend)
{
    struct bid_result b = {
        .auctions = auctions,
        .wins = wins,
        .clicks = clicks,
        .spend_micros = spend,
        .budget_micros = 2000000,
        .episodes = 2,
        .episodes_exhausted = 1,
        .first_exhausted_ms = -1,
        .max_overspend_micros = -5000,
        .episode = 100,
        .episode_budget_micros = 1000000,
        .mean_price = 1234.5,
        .slots = 4,
        .slot_spend_micros = {100000, 200000, 300000, spend - 600000},
    };
    return b;
}

struct full {
    struct preq_summary rec;
    struct report_campaign camp;
    struct report_fraction fr[2];
    struct report r;
};

static void full_report(struct full *u, const char *title)
{
    memset(u, 0, sizeof *u);
    u->rec = rec_summary();
    u->camp.id = "camp-1";
    u->camp.eddy = bid(200, 50, 3, 900000);
    u->camp.eddy.first_exhausted_ms = 1500005000000;
    u->camp.points = points;
    u->camp.n_points = 3;
    u->fr[0].label = "1/32";
    u->fr[0].c0 = 1.0 / 32;
    u->fr[0].lin_b0 = 81234.5;
    u->fr[0].eddy = bid(200, 10, 1, 700000);
    u->fr[0].lin = bid(200, 8, 0, 650000);
    u->fr[0].oracle = bid(200, 20, 4, 690000);
    u->fr[1].label = "1/16";
    u->fr[1].c0 = 1.0 / 16;
    u->fr[1].lin_b0 = 95000;
    u->fr[1].eddy = bid(200, 20, 2, 1400000);
    u->fr[1].lin = bid(200, 18, 2, 1300000);
    u->fr[1].oracle = bid(200, 40, 7, 1390000);
    u->r = (struct report){
        .title = title,
        .config = config,
        .n_config = sizeof config / sizeof config[0],
        .run = run,
        .n_run = sizeof run / sizeof run[0],
        .rec = &u->rec,
        .campaigns = &u->camp,
        .n_campaigns = 1,
        .fractions = u->fr,
        .n_fractions = 2,
    };
}

/* ---- helpers on parsed JSON */

static json_t *get(json_t *o, const char *path)
{
    /* dotted path; a numeric component indexes an array */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok;
         tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v))
            v = json_array_get(v, (size_t)strtoul(tok, NULL, 10));
        else
            v = json_object_get(v, tok);
        if (!v)
            fail_msg("no %s in the JSON (at %s)", path, tok);
    }
    return v;
}

static void assert_jint(json_t *o, const char *path, long long want)
{
    json_t *v = get(o, path);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", path);
    assert_int_equal(json_integer_value(v), want);
}

static void assert_jreal(json_t *o, const char *path, double want)
{
    json_t *v = get(o, path);
    if (!json_is_number(v))
        fail_msg("%s is not a number", path);
    double got = json_number_value(v);
    if (fabs(got - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1))
        fail_msg("%s: %.12g, want %.12g", path, got, want);
}

static void assert_jstr(json_t *o, const char *path, const char *want)
{
    json_t *v = get(o, path);
    if (!json_is_string(v))
        fail_msg("%s is not a string", path);
    assert_string_equal(json_string_value(v), want);
}

static void assert_self_contained(const char *html)
{
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<SCRIPT"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "https://"));
    const char *ns = "http://www.w3.org/2000/svg";
    for (const char *p = strstr(html, "http://"); p; p = strstr(p + 1, "http://"))
        assert_int_equal(strncmp(p, ns, strlen(ns)), 0);
    assert_null(strstr(html, "NaN"));
    assert_null(strstr(html, "nan"));
    assert_null(strstr(html, "inf"));
    assert_null(strstr(html, "Inf"));
    assert_non_null(strstr(html, "</html>"));
}

/* The SVG charts in a report's HTML. */
static int charts(const char *html)
{
    int n = 0;
    for (const char *p = strstr(html, "<svg"); p; p = strstr(p + 1, "<svg"))
        n++;
    return n;
}

static void keep_copy(const char *html, const char *name)
{
    const char *dir = getenv("EDDY_TEST_REPORT_KEEP");
    if (!dir || !*dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(html, fp);
        fclose(fp);
    }
}

/* ---- tests */

static void test_json_values(void **state)
{
    struct fx *f = *state;
    struct full u;
    full_report(&u, "backtest of events.avro");
    char err[256] = "";
    assert_int_equal(report_write_json(&u.r, f->json, err, sizeof err), 0);
    assert_true(exists(f->json));
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->json);
    assert_false(exists(tmp));

    json_error_t je;
    json_t *root = json_load_file(f->json, 0, &je);
    if (!root)
        fail_msg("report.json does not parse: %s (line %d)", je.text, je.line);

    /* the values the integration test reads */
    assert_jstr(root, "title", "backtest of events.avro");
    assert_jstr(root, "config.k", "10");
    const struct preq_metrics *m = &u.rec.eddy;
    assert_jreal(root, "recommendations.eddy.hr", m->hits / (double)m->events);
    assert_jstr(root, "campaigns.0.id", "camp-1");
    assert_jstr(root, "fractions.1.label", "1/16");
    assert_jint(root, "fractions.1.oracle.clicks", 7);
    json_decref(root);
}

static void test_json_all_fields(void **state)
{
    struct fx *f = *state;
    struct full u;
    full_report(&u, "t");
    char err[256] = "";
    assert_int_equal(report_write_json(&u.r, f->json, err, sizeof err), 0);
    json_error_t je;
    json_t *root = json_load_file(f->json, 0, &je);
    assert_non_null(root);

    /* config/run: string values, keys as given (dots are not paths) */
    json_t *cfg = json_object_get(root, "config");
    assert_true(json_is_object(cfg));
    assert_int_equal(json_object_size(cfg), 3);
    assert_string_equal(json_string_value(json_object_get(cfg, "budget.slots")), "4");
    assert_string_equal(json_string_value(json_object_get(cfg, "quote\"key")), "it's <b>");
    assert_jstr(root, "run.input", "events.avro");
    assert_jstr(root, "run.records", "1234");

    /* recommendations */
    assert_jint(root, "recommendations.k", 10);
    assert_jint(root, "recommendations.users", 7);
    assert_jint(root, "recommendations.catalog_items", 40);
    assert_jint(root, "recommendations.observed", 99);
    assert_jint(root, "recommendations.eddy.events", 6);
    assert_jreal(root, "recommendations.eddy.hr", 4.0 / 6.0);
    assert_jreal(root, "recommendations.eddy.ndcg", 2.5 / 6.0);
    assert_jreal(root, "recommendations.eddy.mrr", 2.0 / 6.0);
    assert_jreal(root, "recommendations.eddy.coverage", 30.0 / 40.0);
    assert_jint(root, "recommendations.popularity.events", 6);
    assert_jreal(root, "recommendations.popularity.hr", 1.0 / 6.0);
    assert_jreal(root, "recommendations.popularity.mrr", 0.25 / 6.0);
    assert_jreal(root, "recommendations.popularity.coverage", 12.0 / 40.0);
    assert_int_equal(json_array_size(get(root, "recommendations.windows")), 2);
    assert_jint(root, "recommendations.windows.0.first_ms", 1500000000000);
    assert_jint(root, "recommendations.windows.1.last_ms", 1500007200000);
    assert_jint(root, "recommendations.windows.0.events", 4);
    assert_jreal(root, "recommendations.windows.0.eddy.hr", 0.75);
    assert_jreal(root, "recommendations.windows.0.popularity.ndcg", 0.125);
    assert_jreal(root, "recommendations.windows.1.eddy.mrr", 0.25);
    assert_jreal(root, "recommendations.windows.1.popularity.hr", 0.0);
    assert_jint(root, "recommendations.item_knn.events", 6);
    assert_jreal(root, "recommendations.item_knn.hr", 4.0 / 6.0);
    assert_jreal(root, "recommendations.item_knn.ndcg", 3.0 / 6.0);
    assert_jreal(root, "recommendations.item_knn.mrr", 2.5 / 6.0);
    assert_jreal(root, "recommendations.item_knn.coverage", 20.0 / 40.0);
    assert_jint(root, "recommendations.item_knn.history", 30);
    assert_jreal(root, "recommendations.windows.0.item_knn.hr", 0.5);
    assert_jreal(root, "recommendations.windows.1.item_knn.mrr", 1.0);
    /* history buckets: labels, bounds (the last is open), counts, means */
    assert_int_equal(json_array_size(get(root, "recommendations.history_buckets")), 4);
    assert_jstr(root, "recommendations.history_buckets.0.label", "0");
    assert_jstr(root, "recommendations.history_buckets.1.label", "1-5");
    assert_jstr(root, "recommendations.history_buckets.2.label", "6-20");
    assert_jstr(root, "recommendations.history_buckets.3.label", ">20");
    assert_jint(root, "recommendations.history_buckets.2.min_positives", 6);
    assert_jint(root, "recommendations.history_buckets.2.max_positives", 20);
    assert_true(json_is_null(get(root, "recommendations.history_buckets.3.max_positives")));
    assert_jint(root, "recommendations.history_buckets.1.events", 2);
    assert_jreal(root, "recommendations.history_buckets.0.popularity.hr", 1.0);
    assert_jreal(root, "recommendations.history_buckets.1.eddy.ndcg", 0.25);
    assert_jreal(root, "recommendations.history_buckets.1.item_knn.mrr", 0.625);
    assert_jreal(root, "recommendations.history_buckets.2.item_knn.hr", 2.0 / 3.0);
    assert_jint(root, "recommendations.history_buckets.3.events", 0);
    assert_jreal(root, "recommendations.history_buckets.3.eddy.hr", 0.0);

    /* campaigns */
    assert_int_equal(json_array_size(get(root, "campaigns")), 1);
    assert_jstr(root, "campaigns.0.id", "camp-1");
    assert_jint(root, "campaigns.0.auctions", 200);
    assert_jint(root, "campaigns.0.wins", 50);
    assert_jint(root, "campaigns.0.clicks", 3);
    assert_jint(root, "campaigns.0.spend_micros", 900000);
    assert_jint(root, "campaigns.0.budget_micros", 2000000);
    assert_jint(root, "campaigns.0.episodes", 2);
    assert_jint(root, "campaigns.0.episodes_exhausted", 1);
    assert_jint(root, "campaigns.0.first_exhausted_ms", 1500005000000);
    assert_jint(root, "campaigns.0.max_overspend_micros", -5000);
    assert_jint(root, "campaigns.0.episode", 100);
    assert_jint(root, "campaigns.0.episode_budget_micros", 1000000);
    assert_jint(root, "campaigns.0.slots", 4);
    assert_jreal(root, "campaigns.0.win_rate", 0.25);
    assert_jreal(root, "campaigns.0.ecpc_micros", 300000.0);
    assert_jreal(root, "campaigns.0.budget_used", 0.45);
    assert_int_equal(json_array_size(get(root, "campaigns.0.slot_spend_micros")), 4);
    assert_jint(root, "campaigns.0.slot_spend_micros.2", 300000);
    assert_jint(root, "campaigns.0.slot_spend_micros.3", 300000);
    assert_jreal(root, "campaigns.0.slot_plan_micros", 2.0 * 1000000 / 4);
    assert_int_equal(json_array_size(get(root, "campaigns.0.points")), 3);
    assert_jint(root, "campaigns.0.points.1.0", 1500003600000);
    assert_jint(root, "campaigns.0.points.1.1", 400000);
    assert_jint(root, "campaigns.0.points.2.2", 1000000);

    /* fractions */
    assert_int_equal(json_array_size(get(root, "fractions")), 2);
    assert_jstr(root, "fractions.0.label", "1/32");
    assert_jstr(root, "fractions.1.label", "1/16");
    assert_jreal(root, "fractions.0.c0", 0.03125);
    assert_jreal(root, "fractions.0.lin_b0", 81234.5);
    assert_jint(root, "fractions.1.oracle.clicks", 7);
    assert_jint(root, "fractions.0.oracle.clicks", 4);
    assert_jint(root, "fractions.1.lin.spend_micros", 1300000);
    assert_jint(root, "fractions.0.eddy.wins", 10);
    assert_jreal(root, "fractions.0.eddy.win_rate", 0.05);
    assert_jint(root, "fractions.0.eddy.first_exhausted_ms", -1);
    /* Lin had no clicks at 1/32: no eCPC */
    assert_true(json_is_null(get(root, "fractions.0.lin.ecpc_micros")));
    assert_jreal(root, "fractions.0.oracle.ecpc_micros", 690000.0 / 4);
    json_decref(root);
}

static void test_json_derived_zero(void **state)
{
    struct fx *f = *state;
    struct report_campaign c = {.id = "idle", .eddy = {.first_exhausted_ms = -1}};
    struct preq_summary s = {.k = 5};
    struct report r = {.title = "zeros", .rec = &s, .campaigns = &c, .n_campaigns = 1};
    char err[256] = "";
    assert_int_equal(report_write_json(&r, f->json, err, sizeof err), 0);
    json_t *root = json_load_file(f->json, 0, NULL);
    assert_non_null(root);
    assert_jreal(root, "recommendations.eddy.hr", 0.0);
    assert_jreal(root, "recommendations.eddy.coverage", 0.0);
    assert_int_equal(json_array_size(get(root, "recommendations.windows")), 0);
    assert_jreal(root, "campaigns.0.win_rate", 0.0);
    assert_jreal(root, "campaigns.0.budget_used", 0.0);
    assert_true(json_is_null(get(root, "campaigns.0.ecpc_micros")));
    assert_jreal(root, "campaigns.0.slot_plan_micros", 0.0);
    assert_int_equal(json_array_size(get(root, "campaigns.0.slot_spend_micros")), 0);
    assert_int_equal(json_array_size(get(root, "campaigns.0.points")), 0);
    json_decref(root);
    /* and the HTML of the same report has no NaN or chart for no data */
    assert_int_equal(report_write_html(&r, f->html, err, sizeof err), 0);
    char *html = slurp(f->html);
    assert_self_contained(html);
    assert_non_null(strstr(html, "no positive click events"));
    free(html);
}

/* The controller's section: the first fraction pre-trained (3 episodes)
 * with its middle episode recorded at slots 0 and 2 of 4 (slot 1 had no
 * decision); the second neither. */
static void test_controller(void **state)
{
    struct fx *f = *state;
    struct full u;
    full_report(&u, "controller");
    uint32_t clicks[3] = {1, 0, 2};
    int64_t spend[3] = {900, 1000, 950};
    struct report_training train = {3, clicks, spend, 1000};
    struct report_episode shown = {.slots = 4, .budget_micros = 1000};
    shown.seen[0] = shown.seen[2] = true;
    shown.spent_micros[2] = 480;
    shown.multiplier[0] = 1.5, shown.plan_multiplier[0] = 1.25;
    shown.multiplier[2] = 0.9, shown.plan_multiplier[2] = 1.0;
    u.fr[0].train = &train;
    u.fr[0].shown = &shown;
    char err[256] = "";
    assert_int_equal(report_write_json(&u.r, f->json, err, sizeof err), 0);
    json_error_t je;
    json_t *root = json_load_file(f->json, 0, &je);
    assert_non_null(root);
    assert_jint(root, "fractions.0.training.budget_micros", 1000);
    assert_jint(root, "fractions.0.training.clicks.2", 2);
    assert_jint(root, "fractions.0.training.spend_micros.1", 1000);
    assert_jint(root, "fractions.0.episode.spent_micros.2", 480);
    assert_true(json_is_null(get(root, "fractions.0.episode.spent_micros.1")));
    assert_jreal(root, "fractions.0.episode.bid_multiplier.0", 1.5);
    assert_jreal(root, "fractions.0.episode.plan_multiplier.2", 1.0);
    assert_true(json_is_null(get(root, "fractions.1.training")));
    assert_true(json_is_null(get(root, "fractions.1.episode")));
    json_decref(root);

    assert_int_equal(report_write_html(&u.r, f->html, err, sizeof err), 0);
    char *html = slurp(f->html);
    assert_self_contained(html);
    assert_non_null(strstr(html, "The budget controller"));
    assert_non_null(strstr(html, "c0 1/32: spend at each slot&#39;s open vs plan"));
    assert_non_null(strstr(html, "c0 1/32: bid multiplier by slot"));
    assert_null(strstr(html, "c0 1/16: bid multiplier"));
    assert_non_null(strstr(html, "Learning curve"));
    /* 3 charts as before, 2 for the episode, 2 for the learning curve */
    assert_int_equal(charts(html), 7);
    free(html);
}

static void test_html(void **state)
{
    struct fx *f = *state;
    struct full u;
    full_report(&u, "a<b&c \"q\" 'x'");
    char err[256] = "";
    assert_int_equal(report_write_html(&u.r, f->html, err, sizeof err), 0);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->html);
    assert_false(exists(tmp));
    char *html = slurp(f->html);
    keep_copy(html, "report_full.html");

    assert_self_contained(html);
    assert_non_null(strstr(html, "<h1>a&lt;b&amp;c &quot;q&quot; &#39;x&#39;</h1>"));
    assert_null(strstr(html, "a<b"));
    assert_null(strstr(html, "'x'"));
    /* config strings are escaped too */
    assert_non_null(strstr(html, "quote&quot;key"));
    assert_non_null(strstr(html, "it&#39;s &lt;b&gt;"));
    assert_null(strstr(html, "<b>"));

    /* three charts: HR over time, one campaign, fractions */
    assert_int_equal(charts(html), 3);
    assert_non_null(strstr(html, "HR@10 over time"));
    assert_non_null(strstr(html, "cumulative spend vs plan"));
    assert_non_null(strstr(html, "clicks vs budget fraction"));
    assert_non_null(strstr(html, "<polyline"));
    assert_non_null(strstr(html, "stroke-dasharray"));
    /* windows ending an hour apart: HH:MM labels */
    assert_non_null(strstr(html, ">03:40<"));
    assert_non_null(strstr(html, ">04:40<"));
    /* the summary table: eddy HR = 4/6; item-kNN's row: HR 4/6, NDCG 0.5,
     * MRR 2.5/6, coverage 50% */
    assert_non_null(strstr(html, "<td>0.6667</td>"));
    assert_non_null(strstr(html, "<td class=\"l\">item-kNN</td><td>0.6667</td><td>0.5000</td>"
                                 "<td>0.4167</td><td>50.0%</td><td>6</td>"));
    /* HR over time has a third series */
    assert_non_null(strstr(html, ">item-kNN</text>"));
    /* the history table: 1-5 has 2 events, HR eddy 0.5, pop 0, kNN 1 */
    assert_non_null(strstr(html, "By the user's history"));
    assert_non_null(strstr(html, "<td class=\"l\">1-5</td><td>2</td><td>0.5000</td>"
                                 "<td>0.0000</td><td>1.0000</td>"));
    assert_non_null(strstr(html, "<td class=\"l\">&gt;20</td><td>0</td><td>0.0000</td>"));
    /* money as units: spend 900000 micros */
    assert_non_null(strstr(html, "<td>0.90</td>"));
    /* eCPC 0.30, first ran out as a UTC time */
    assert_non_null(strstr(html, "<td>0.30</td>"));
    assert_non_null(strstr(html, "2017-07-14 04:03:20 UTC"));
    assert_non_null(strstr(html, "1/32"));
    assert_non_null(strstr(html, "1/16"));
    assert_null(strstr(html, "not run"));
    assert_null(strstr(html, "no positive click events"));
    free(html);
}

static void test_html_single_point_constant(void **state)
{
    /* one window, one spend point, one fraction, everything constant */
    struct fx *f = *state;
    struct full u;
    full_report(&u, "single");
    u.rec.n_windows = 1;
    u.camp.n_points = 1;
    u.r.n_fractions = 1;
    u.fr[0].eddy.clicks = u.fr[0].lin.clicks = u.fr[0].oracle.clicks = 0;
    char err[256] = "";
    assert_int_equal(report_write_html(&u.r, f->html, err, sizeof err), 0);
    char *html = slurp(f->html);
    assert_self_contained(html);
    assert_non_null(strstr(html, "<circle"));
    free(html);
}

static void test_empty(void **state)
{
    struct fx *f = *state;
    struct report r = {.title = "empty"};
    char err[256] = "";
    assert_int_equal(report_write_json(&r, f->json, err, sizeof err), 0);
    assert_int_equal(report_write_html(&r, f->html, err, sizeof err), 0);

    json_error_t je;
    json_t *root = json_load_file(f->json, 0, &je);
    if (!root)
        fail_msg("report.json does not parse: %s", je.text);
    assert_true(json_is_null(json_object_get(root, "recommendations")));
    assert_int_equal(json_array_size(json_object_get(root, "campaigns")), 0);
    assert_true(json_is_array(json_object_get(root, "campaigns")));
    assert_int_equal(json_array_size(json_object_get(root, "fractions")), 0);
    assert_true(json_is_array(json_object_get(root, "fractions")));
    assert_int_equal(json_object_size(json_object_get(root, "config")), 0);
    assert_int_equal(json_object_size(json_object_get(root, "run")), 0);
    assert_jstr(root, "title", "empty");
    json_decref(root);
    char *text = slurp(f->json);
    assert_non_null(strstr(text, "\"recommendations\": null"));
    free(text);

    char *html = slurp(f->html);
    keep_copy(html, "report_empty.html");
    assert_self_contained(html);
    assert_null(strstr(html, "<svg"));
    assert_non_null(strstr(html, "no positive click events to evaluate"));
    assert_non_null(strstr(html, "No campaigns"));
    assert_non_null(strstr(html, "not run (pass --budget-fractions)"));
    free(html);
}

static void test_write_errors(void **state)
{
    struct fx *f = *state;
    struct full u;
    full_report(&u, "err");
    char path[192], err[512];
    snprintf(path, sizeof path, "%s/no/such/dir/report.json", f->dir);
    strcpy(err, "");
    assert_int_equal(report_write_json(&u.r, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));

    snprintf(path, sizeof path, "%s/no/such/dir/report.html", f->dir);
    strcpy(err, "");
    assert_int_equal(report_write_html(&u.r, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));

    /* a rename onto a directory fails and leaves no .tmp behind */
    snprintf(path, sizeof path, "%s/isdir", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/x", path);
    FILE *fp = fopen(sub, "w");
    assert_non_null(fp);
    fclose(fp);
    strcpy(err, "");
    assert_int_equal(report_write_html(&u.r, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(exists(tmp));

    /* a tiny error buffer is not overrun */
    char small[8];
    memset(small, 'x', sizeof small);
    assert_int_equal(report_write_json(&u.r, "/nonexistent-dir/r.json", small, sizeof small),
                     -1);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_overwrite(void **state)
{
    /* writing again replaces the previous report */
    struct fx *f = *state;
    struct report r = {.title = "first"};
    char err[256];
    assert_int_equal(report_write_json(&r, f->json, err, sizeof err), 0);
    r.title = "second";
    assert_int_equal(report_write_json(&r, f->json, err, sizeof err), 0);
    json_t *root = json_load_file(f->json, 0, NULL);
    assert_non_null(root);
    assert_jstr(root, "title", "second");
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_all_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_derived_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html, setup, teardown),
        cmocka_unit_test_setup_teardown(test_controller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_single_point_constant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
