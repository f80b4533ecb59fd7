/* test_import.c: eddy import's three importers on small inline fixtures, read
 * back through pipeline/codec/eventlog.c; and eventlog's schema resolution. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/codec/eventlog.h"
#include "pipeline/tools/import.h"

#define MAX_GOT 16

struct fx {
    char dir[64], in[128], out[128], err[512];
    struct import_options o;
    struct import_counts c;
};

/* One record read back, with its strings copied. */
struct got {
    char a[32], b[32], s[32]; /* click: user, item, session; ad: campaign, user */
    int type;
    int64_t ts;
    bool has_pctr, has_price;
    double pctr;
    int64_t price;
    struct campaign_budget camp;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/eddy-test-import-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->out, sizeof f->out, "%s/out", f->dir);
    import_options_default(&f->o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void write_input(struct fx *f, const char *name, const char *text)
{
    snprintf(f->in, sizeof f->in, "%s/%s", f->dir, name);
    FILE *fp = fopen(f->in, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void copy_str(char *dst, struct eddy_str s)
{
    snprintf(dst, 32, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

static void keep(const struct eddy_event *ev, struct got *g)
{
    memset(g, 0, sizeof *g);
    if (ev->kind == EV_CLICK) {
        copy_str(g->a, ev->u.click.user_id);
        copy_str(g->b, ev->u.click.item_id);
        copy_str(g->s, ev->u.click.session_id);
        g->type = (int)ev->u.click.type;
        g->ts = ev->u.click.timestamp_ms;
    } else if (ev->kind == EV_AD) {
        const struct ad_event *a = &ev->u.ad;
        copy_str(g->a, a->campaign_id);
        assert_null(a->user_id.ptr);
        g->type = (int)a->type;
        g->ts = a->timestamp_ms;
        g->has_pctr = a->has_pctr, g->pctr = a->pctr;
        g->has_price = a->has_market_price, g->price = a->market_price_micros;
    } else {
        copy_str(g->a, ev->u.campaign.campaign_id);
        g->camp = ev->u.campaign;
        g->camp.campaign_id = (struct eddy_str){NULL, 0};
    }
}

/* Reads every record of dir/name, which must hold records of `type`. */
static size_t read_all(const char *dir, const char *name, enum eddy_record_type type,
                       struct got *g)
{
    char path[256], err[512];
    struct eventlog_reader *r;
    struct eddy_event ev;
    size_t n = 0;
    int rc;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (eventlog_reader_new(path, &r, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(eventlog_reader_type(r), type);
    while ((rc = eventlog_next(r, &ev, err, sizeof err)) == 1) {
        assert_true(n < MAX_GOT);
        keep(&ev, &g[n++]);
    }
    if (rc)
        fail_msg("%s", err);
    eventlog_reader_free(r);
    return n;
}

static void assert_click(const struct got *g, const char *user, const char *item, int type,
                         int64_t ts, const char *session)
{
    assert_string_equal(g->a, user);
    assert_string_equal(g->b, item);
    assert_int_equal(g->type, type);
    assert_int_equal(g->ts, ts);
    assert_string_equal(g->s, session);
}

static void assert_missing(const struct fx *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->out, name);
    assert_int_not_equal(access(path, F_OK), 0);
    strcat(path, ".tmp");
    assert_int_not_equal(access(path, F_OK), 0);
}

/* ---- MovieLens ------------------------------------------------------------- */

static const char ml_ok[] = "userId,movieId,rating,timestamp\n"
                            "2,10,4.5,1000\n"
                            "1,20,3.0,1000\r\n"
                            "1,10,4.0,999\n"
                            "3,5,0.5,2000\n";

static void test_movielens_sorted(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "ratings.csv", ml_ok);
    if (import_movielens(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 4);
    assert_int_equal(f->c.records, 4);
    assert_int_equal(f->c.by_type[CLICK_PURCHASE], 2);
    assert_int_equal(f->c.by_type[CLICK_VIEW], 2);
    assert_int_equal(f->c.first_ms, 999000);
    assert_int_equal(f->c.last_ms, 2000000);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 4);
    /* By time, then user, then item; rating 4.0 is PURCHASE, 3.0 VIEW. */
    assert_click(&g[0], "u1", "m10", CLICK_PURCHASE, 999000, "");
    assert_click(&g[1], "u1", "m20", CLICK_VIEW, 1000000, "");
    assert_click(&g[2], "u2", "m10", CLICK_PURCHASE, 1000000, "");
    assert_click(&g[3], "u3", "m5", CLICK_VIEW, 2000000, "");
}

static void expect_ml_error(struct fx *f, const char *text, const char *where, const char *what)
{
    write_input(f, "ratings.csv", text);
    assert_int_equal(import_movielens(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    if (!strstr(f->err, where) || !strstr(f->err, what))
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", f->err, where, what);
    assert_missing(f, "clicks.avro");
}

static void test_movielens_bad_rows(void **state)
{
    struct fx *f = *state;
    const char *h = "userId,movieId,rating,timestamp\n1,1,4,5\n";
    char text[256];
    static const struct {
        const char *row, *what;
    } cases[] = {
        {"1,2,3\n", "4 comma-separated columns"},
        {"1,2,3,4,5\n", "4 comma-separated columns"},
        {"x,2,3,4\n", "userId"},
        {"1,-2,3,4\n", "movieId"},
        {"1,2,5.5,4\n", "rating"},
        {"1,2,0.4,4\n", "rating"},
        {"1,2,nan,4\n", "rating"},
        {"1,2,3,4.5\n", "timestamp"},
        {"\n", "4 comma-separated columns"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", h, cases[i].row);
        expect_ml_error(f, text, "ratings.csv:3: ", cases[i].what);
    }
    expect_ml_error(f, "user,movie,rating,ts\n1,1,4,5\n", "ratings.csv:1: ", "header");
    expect_ml_error(f, "", "ratings.csv:1: ", "header");
}

static void test_movielens_skip_bad(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "ratings.csv",
                "userId,movieId,rating,timestamp\n1,1,4,5\n1,2,9,6\n2,1,1,7\nbad\n");
    f->o.skip_bad = true;
    if (import_movielens(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 4);
    assert_int_equal(f->c.skipped, 2);
    assert_int_equal(f->c.records, 2);
    assert_non_null(strstr(f->c.first_bad, "ratings.csv:3: rating"));
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 2);
    assert_click(&g[0], "u1", "m1", CLICK_PURCHASE, 5000, "");
    assert_click(&g[1], "u2", "m1", CLICK_VIEW, 7000, "");
}

/* ---- iPinYou --------------------------------------------------------------- */

static void assert_ad(const struct got *g, int type, int64_t ts, double pctr, int64_t price)
{
    assert_string_equal(g->a, "c7");
    assert_int_equal(g->type, type);
    assert_int_equal(g->ts, ts);
    assert_int_equal(g->has_pctr, type == AD_AUCTION);
    assert_int_equal(g->has_price, type == AD_AUCTION);
    if (type == AD_AUCTION) {
        assert_true(g->pctr == pctr);
        assert_int_equal(g->price, price);
    }
}

static void test_ipinyou(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "train.txt", "0\t50\t0.001\n1\t100\t0.003\t2\n0\t30\t0.002\n1\t20\t0.002\n");
    f->o.campaign_id = "c7";
    f->o.rate_per_s = 2; /* 500 ms between rows */
    f->o.start_ms = 5000;
    f->o.episode = 2;
    f->o.budget_c0 = 0.5;
    if (import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 4);
    assert_int_equal(f->c.records, 6);
    assert_int_equal(f->c.by_type[AD_AUCTION], 4);
    assert_int_equal(f->c.by_type[AD_CLICK], 2);
    assert_int_equal(read_all(f->out, "ad-events.avro", REC_AD, g), 6);
    /* Prices are CPM in fen: x 1000 gives micro-fen per impression. A CLICK
     * follows its auction at the same time. */
    assert_ad(&g[0], AD_AUCTION, 5000, 0.001, 50000);
    assert_ad(&g[1], AD_AUCTION, 5500, 0.003, 100000);
    assert_ad(&g[2], AD_CLICK, 5500, 0, 0);
    assert_ad(&g[3], AD_AUCTION, 6000, 0.002, 30000);
    assert_ad(&g[4], AD_AUCTION, 6500, 0.002, 20000);
    assert_ad(&g[5], AD_CLICK, 6500, 0, 0);

    /* Mean price 50000 micros, mean pCTR 0.002: budget 0.5 x 2 x 50000,
     * base bid 50000 / 0.002, period 2 auctions at 2/s. */
    assert_int_equal(read_all(f->out, "campaigns.avro", REC_CAMPAIGN, g), 1);
    assert_string_equal(g[0].a, "c7");
    assert_int_equal(g[0].camp.budget_micros, 50000);
    assert_int_equal(g[0].camp.base_bid_micros, 25000000);
    assert_int_equal(g[0].camp.period_ms, 1000);
    assert_int_equal(f->c.campaign.budget_micros, 50000);
}

static void test_ipinyou_errors(void **state)
{
    struct fx *f = *state;
    write_input(f, "t.tsv", "0\t50\t0.001\n2\t50\t0.001\n");
    assert_int_equal(import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "t.tsv:2: click"));
    assert_missing(f, "ad-events.avro");
    assert_missing(f, "campaigns.avro");

    write_input(f, "t.tsv", "0\t50\n");
    assert_int_equal(import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "t.tsv:1: expected 3 or 4"));

    write_input(f, "t.tsv", "0\t50\t1.5\n");
    assert_int_equal(import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "t.tsv:1: pCTR"));

    /* A pCTR so small that price / pCTR overflows the base bid (found by
     * fuzz_import_ipinyou: the bid came out negative). */
    write_input(f, "t.tsv", "0\t95\t0.00000000000000000013\n");
    assert_int_equal(import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "does not fit in 64 bits"));
    assert_missing(f, "campaigns.avro");

    /* Periods must be whole milliseconds. */
    write_input(f, "t.tsv", "0\t50\t0.001\n");
    f->o.episode = 3;
    f->o.rate_per_s = 7;
    assert_int_equal(import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "multiple of the rate"));
}

static void test_ipinyou_skip_bad(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "t.tsv", "0\t40\t0.001\nnope\n0\t60\t0.003\n");
    f->o.skip_bad = true;
    f->o.campaign_id = "c7";
    f->o.start_ms = 0;
    if (import_ipinyou(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.skipped, 1);
    assert_non_null(strstr(f->c.first_bad, "t.tsv:2: "));
    /* Skipped rows leave no gap in event time: 1000 rows/s by default. */
    assert_int_equal(read_all(f->out, "ad-events.avro", REC_AD, g), 2);
    assert_ad(&g[0], AD_AUCTION, 0, 0.001, 40000);
    assert_ad(&g[1], AD_AUCTION, 1, 0.003, 60000);
    assert_int_equal(read_all(f->out, "campaigns.avro", REC_CAMPAIGN, g), 1);
    assert_int_equal(g[0].camp.budget_micros, 6250000); /* 1/8 x 1000 x 50000 */
    assert_int_equal(g[0].camp.base_bid_micros, 25000000);
    assert_int_equal(g[0].camp.period_ms, 1000);
}

/* ---- OTTO ------------------------------------------------------------------ */

static const char otto_ok[] =
    "{\"session\":5,\"events\":[{\"aid\":7,\"ts\":1659304800025,\"type\":\"clicks\"},"
    "{\"aid\":8,\"ts\":1659304800000,\"type\":\"carts\"}]}\n"
    "{\"session\":3,\"events\":[{\"aid\":9,\"ts\":1659304800,\"type\":\"orders\"}]}\n";

static void test_otto(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "train.jsonl", otto_ok);
    f->o.codec = "null";
    if (import_otto(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 2);
    assert_int_equal(f->c.records, 3);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 3);
    /* The second line's ts is in seconds. */
    assert_click(&g[0], "s3", "a9", CLICK_PURCHASE, 1659304800000, "s3");
    assert_click(&g[1], "s5", "a8", CLICK_ADD_TO_CART, 1659304800000, "s5");
    assert_click(&g[2], "s5", "a7", CLICK_CLICK, 1659304800025, "s5");
}

static void test_otto_bad_lines(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    char text[1024];
    snprintf(text, sizeof text, "%s%s", otto_ok,
             "{\"session\":1,\"events\":[{\"aid\":1,\"ts\":5,\"type\":\"clicks\"},"
             "{\"aid\":1,\"ts\":5,\"type\":\"views\"}]}\n"
             "{\"session\":1,\n");
    write_input(f, "o.jsonl", text);
    assert_int_equal(import_otto(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "o.jsonl:3: event 1: type \"views\""));
    assert_missing(f, "clicks.avro");

    /* A bad event drops its whole session line, not just the event. */
    f->o.skip_bad = true;
    if (import_otto(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 4);
    assert_int_equal(f->c.skipped, 2);
    assert_int_equal(f->c.records, 3);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 3);
}

/* Found by fuzzing (tests/fuzz/regressions/import_movielens, import_otto):
 * with no rows, the rows array is NULL, and it went to qsort, whose
 * argument must not be NULL (undefined behaviour; UBSan stops the test). An
 * input without rows gives an empty log. */
static void test_no_rows(void **state)
{
    struct fx *f = *state;
    struct got g[MAX_GOT];
    write_input(f, "ratings.csv", "userId,movieId,rating,timestamp\n");
    if (import_movielens(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.records, 0);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 0);

    write_input(f, "train.jsonl", "");
    if (import_otto(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.rows, 0);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 0);

    /* Every row skipped as bad: the same. */
    write_input(f, "train.jsonl", "not json\n");
    f->o.skip_bad = true;
    if (import_otto(f->in, f->out, &f->o, &f->c, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(f->c.skipped, 1);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 0);
}

/* ---- eventlog ---------------------------------------------------------------- */

/* Writes one record with schema_json, as another producer might: strings
 * "u9" (field 1) and "i9", enum symbol 3, longs 42, ints 7, unions null. */
static void write_foreign(const char *path, const char *schema_json)
{
    avro_schema_t s;
    avro_file_writer_t w;
    avro_value_iface_t *cls;
    avro_value_t v, fld, b;
    assert_int_equal(avro_schema_from_json_length(schema_json, strlen(schema_json), &s), 0);
    assert_int_equal(avro_file_writer_create_with_codec(path, s, &w, "null", 0), 0);
    cls = avro_generic_class_from_schema(s);
    assert_int_equal(avro_generic_value_new(cls, &v), 0);
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
        assert_int_equal(avro_value_get_by_index(&v, i, &fld, NULL), 0);
        if (avro_value_get_type(&fld) == AVRO_STRING)
            avro_value_set_string(&fld, i == 1 ? "u9" : "i9");
        else if (avro_value_get_type(&fld) == AVRO_ENUM)
            avro_value_set_enum(&fld, 3);
        else if (avro_value_get_type(&fld) == AVRO_INT64)
            avro_value_set_long(&fld, 42);
        else if (avro_value_get_type(&fld) == AVRO_UNION)
            assert_int_equal(avro_value_set_branch(&fld, 0, &b) || avro_value_set_null(&b), 0);
        else
            avro_value_set_int(&fld, 7);
    }
    assert_int_equal(avro_file_writer_append_value(w, &v), 0);
    avro_file_writer_close(w);
    avro_value_decref(&v);
    avro_value_iface_decref(cls);
    avro_schema_decref(s);
}

/* ClickEvent schemas as other producers might write them: an extra field
 * first, then eddy's fields in another order, some of them left out. */
#define FOREIGN_CLICK(fields)                                                           \
    "{\"type\":\"record\",\"name\":\"ClickEvent\",\"namespace\":\"eddy\",\"fields\":["  \
    "{\"name\":\"extra\",\"type\":\"int\"},{\"name\":\"user_id\",\"type\":\"string\"}," \
    "{\"name\":\"timestamp\",\"type\":\"long\"}" fields "]}"
#define ITEM_ID ",{\"name\":\"item_id\",\"type\":\"string\"}"
#define EVENT_TYPE(symbols)                                                         \
    ",{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\"," \
    "\"symbols\":[" symbols "]}}"
#define EDDYS_SYMBOLS     "\"VIEW\",\"CLICK\",\"ADD_TO_CART\",\"PURCHASE\""
#define REORDERED_SYMBOLS "\"PURCHASE\",\"VIEW\",\"ADD_TO_CART\",\"CLICK\""
#define SESSION_ID        ",{\"name\":\"session_id\",\"type\":[\"null\",\"string\"]}"

/* Writes f->out/clicks.avro with write_foreign() and reads its one record. */
static void read_foreign_click(struct fx *f, const char *schema_json, struct got *g)
{
    char path[256];
    assert_int_equal(mkdir(f->out, 0777), 0);
    snprintf(path, sizeof path, "%s/clicks.avro", f->out);
    write_foreign(path, schema_json);
    assert_int_equal(read_all(f->out, "clicks.avro", REC_CLICK, g), 1);
}

/* An extra field and another field order resolve. */
static void test_eventlog_resolves_foreign_schema(void **state)
{
    struct got g[MAX_GOT];
    read_foreign_click(*state, FOREIGN_CLICK(ITEM_ID EVENT_TYPE(EDDYS_SYMBOLS) SESSION_ID), g);
    assert_click(&g[0], "u9", "i9", CLICK_PURCHASE, 42, "");
}

/* A file from an older writer without session_id reads it as the default of
 * eddy's schema (null); one without item_id, which has no default, is refused
 * with a reason naming the field. */
static void test_eventlog_reads_older_schema(void **state)
{
    struct fx *f = *state;
    struct eventlog_reader *r = NULL;
    struct got g[MAX_GOT];
    char path[256];
    read_foreign_click(f, FOREIGN_CLICK(ITEM_ID EVENT_TYPE(EDDYS_SYMBOLS)), g);
    assert_click(&g[0], "u9", "i9", CLICK_PURCHASE, 42, "");

    snprintf(path, sizeof path, "%s/noitem.avro", f->out);
    write_foreign(path, FOREIGN_CLICK(EVENT_TYPE(EDDYS_SYMBOLS) SESSION_ID));
    assert_int_equal(eventlog_reader_new(path, &r, f->err, sizeof f->err), -1);
    assert_null(r);
    assert_non_null(strstr(f->err, "noitem.avro: writer schema ClickEvent lacks field item_id"));
}

/* Enum symbols map by name: Avro C 1.11.1's resolver passes the writer's
 * index through, and write_foreign's symbol 3 is CLICK here. */
static void test_eventlog_maps_enum_symbols_by_name(void **state)
{
    struct got g[MAX_GOT];
    read_foreign_click(*state, FOREIGN_CLICK(ITEM_ID EVENT_TYPE(REORDERED_SYMBOLS) SESSION_ID), g);
    assert_click(&g[0], "u9", "i9", CLICK_CLICK, 42, "");
}

static void test_eventlog_refuses_other_records(void **state)
{
    struct fx *f = *state;
    struct eventlog_reader *r = NULL;
    char path[256];
    assert_int_equal(mkdir(f->out, 0777), 0);
    snprintf(path, sizeof path, "%s/x.avro", f->out);
    write_foreign(path, "{\"type\":\"record\",\"name\":\"Other\",\"fields\":"
                        "[{\"name\":\"n\",\"type\":\"int\"}]}");
    assert_int_equal(eventlog_reader_new(path, &r, f->err, sizeof f->err), -1);
    assert_null(r);
    assert_non_null(strstr(f->err, "holds Other records"));

    snprintf(path, sizeof path, "%s/missing.avro", f->out);
    assert_int_equal(eventlog_reader_new(path, &r, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "missing.avro"));
}

/* A log is read with codec_decode's rules: a string field that is not UTF-8
 * fails the read, naming the record and the field. */
static void test_eventlog_rejects_invalid_utf8(void **state)
{
    struct fx *f = *state;
    struct eventlog_writer *w = NULL;
    struct eventlog_reader *r = NULL;
    struct eddy_event ev;
    char path[256];
    const struct click_event ok = {eddy_str_c("u1"), eddy_str_c("i1"), CLICK_VIEW, 1, {NULL, 0}};
    struct click_event bad = ok;
    bad.user_id = (struct eddy_str){"\xff\xfe", 2};

    assert_int_equal(mkdir(f->out, 0777), 0);
    snprintf(path, sizeof path, "%s/clicks.avro", f->out);
    if (eventlog_writer_new(path, REC_CLICK, "null", &w, f->err, sizeof f->err) ||
        eventlog_append(w, &ok, f->err, sizeof f->err) ||
        eventlog_append(w, &bad, f->err, sizeof f->err) ||
        eventlog_writer_finish(w, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    if (eventlog_reader_new(path, &r, f->err, sizeof f->err))
        fail_msg("%s", f->err);
    assert_int_equal(eventlog_next(r, &ev, f->err, sizeof f->err), 1);
    assert_int_equal(eventlog_next(r, &ev, f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "record 2: user_id is not valid UTF-8"));
    eventlog_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_movielens_sorted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_movielens_bad_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_movielens_skip_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipinyou, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipinyou_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipinyou_skip_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_otto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_otto_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventlog_resolves_foreign_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventlog_reads_older_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventlog_maps_enum_symbols_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventlog_refuses_other_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eventlog_rejects_invalid_utf8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
