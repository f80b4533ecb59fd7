/* import.c: MovieLens, iPinYou and OTTO files to eddy's Avro event logs.
 * See import.h for the contract and docs/import.md for the mappings.
 *
 * MovieLens and OTTO rows are collected in memory and sorted by event time
 * before writing, because a replay needs a log in time order and neither
 * file is in time order. iPinYou rows carry no time: they are written as
 * they come, with synthesised event time, so nothing is held in memory. */
#include "pipeline/run/log.h"
#include "pipeline/tools/import.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/codec/eventlog.h"

#define ID_LEN 32 /* a one-letter prefix and a 64-bit number */
/* OTTO ts values below this are seconds, others milliseconds: 1e11 ms is in
 * 1973, 1e11 s in the year 5138, so real data is never ambiguous. */
#define OTTO_SECONDS_BELOW 100000000000LL

void import_options_default(struct import_options *o)
{
    *o = (struct import_options){
        .codec = "deflate",
        .campaign_id = "1458",
        .rate_per_s = 1000,
        .start_ms = 1767225600000LL, /* 2026-01-01T00:00:00Z, as eddy gen */
        .budget_c0 = 1.0 / 8,
        .episode = 1000,
    };
}

/* ---- Input lines and fields ------------------------------------------------ */

struct lines {
    FILE *fp;
    const char *path;
    char *buf;
    size_t cap;
    uint64_t no; /* line number of buf, from 1 */
};

static int lines_open(struct lines *l, const char *path, char *err, size_t errlen)
{
    *l = (struct lines){.path = path};
    if (!(l->fp = fopen(path, "r")))
        return errf(err, errlen, "%s: %s", path, strerror(errno));
    return 0;
}

/* The next line without its "\n" or "\r\n" in l->buf; false at the end of
 * the file or on a read error (lines_error tells). */
static bool lines_next(struct lines *l)
{
    ssize_t n = getline(&l->buf, &l->cap, l->fp);
    if (n < 0)
        return false;
    l->no++;
    while (n && (l->buf[n - 1] == '\n' || l->buf[n - 1] == '\r'))
        l->buf[--n] = '\0';
    return true;
}

static int lines_error(const struct lines *l, char *err, size_t errlen)
{
    return ferror(l->fp) ? errf(err, errlen, "%s: read error", l->path) : 0;
}

static void lines_close(struct lines *l)
{
    if (l->fp)
        fclose(l->fp);
    free(l->buf);
}

/* A malformed row: fails the import, or with skip_bad is counted. */
static int bad_row(const struct import_options *o, struct import_counts *c, const struct lines *l,
                   const char *why, char *err, size_t errlen)
{
    if (!o->skip_bad)
        return errf(err, errlen, "%s:%" PRIu64 ": %s", l->path, l->no, why);
    if (!c->skipped++)
        snprintf(c->first_bad, sizeof c->first_bad, "%s:%" PRIu64 ": %s", l->path, l->no, why);
    return 0;
}

/* Splits line at sep in place into f[0..max-1]; the number of fields, or
 * max + 1 when there are more. */
static int split(char *line, char sep, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++) {
        if (*p != sep)
            continue;
        *p = '\0';
        if (n == max)
            return max + 1;
        f[n++] = p + 1;
    }
    return n;
}

/* Digits only: no sign, no spaces, no overflow. */
static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return *end || errno ? -1 : 0;
}

/* A finite decimal number with nothing around it. */
static int parse_num(const char *s, double *v)
{
    char *end;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    *v = strtod(s, &end);
    return *end || !isfinite(*v) ? -1 : 0;
}

/* ---- Output ------------------------------------------------------------------ */

static int out_path(const char *dir, const char *name, char *path, char *err, size_t errlen)
{
    if (mkdir(dir, 0777) && errno != EEXIST)
        return errf(err, errlen, "%s: %s", dir, strerror(errno));
    if (snprintf(path, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        return errf(err, errlen, "%s: path too long", dir);
    return 0;
}

static void count(struct import_counts *c, int type, int64_t ts)
{
    if (!c->records++)
        c->first_ms = ts;
    c->last_ms = ts;
    c->by_type[type]++;
}

/* A click-like row of MovieLens or OTTO, before sorting. */
struct row {
    int64_t ts_ms;
    uint64_t user, item;
    uint64_t seq; /* input order: the last tie-breaker, for a total order */
    enum click_type type;
};

struct rows {
    struct row *v;
    size_t n, cap;
};

static int rows_push(struct rows *r, const struct row *x)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        struct row *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = *x;
    return 0;
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b))

static int row_cmp(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    int c = CMP(a->ts_ms, b->ts_ms);
    if (!c)
        c = CMP(a->user, b->user);
    if (!c)
        c = CMP(a->item, b->item);
    return c ? c : CMP(a->seq, b->seq);
}

/* Sorts rows by (time, user, item, input order) and writes them to
 * dir/clicks.avro as ClickEvents with ids "<up><user>" and "<ip><item>";
 * with_session sets session_id to the user id. */
static int write_clicks(struct rows *r, const char *dir, const char *up, const char *ip,
                        bool with_session, const struct import_options *o,
                        struct import_counts *c, char *err, size_t errlen)
{
    char path[PATH_MAX], user[ID_LEN], item[ID_LEN];
    struct eventlog_writer *w = NULL;

    if (out_path(dir, "clicks.avro", path, err, errlen) ||
        eventlog_writer_new(path, REC_CLICK, o->codec, &w, err, errlen))
        return -1;
    if (r->n) /* no rows: r->v is NULL, which qsort must not be given */
        qsort(r->v, r->n, sizeof *r->v, row_cmp);
    for (size_t i = 0; i < r->n; i++) {
        const struct row *x = &r->v[i];
        snprintf(user, sizeof user, "%s%" PRIu64, up, x->user);
        snprintf(item, sizeof item, "%s%" PRIu64, ip, x->item);
        struct click_event e = {.user_id = eddy_str_c(user),
                                .item_id = eddy_str_c(item),
                                .type = x->type,
                                .timestamp_ms = x->ts_ms,
                                .session_id = with_session ? eddy_str_c(user)
                                                           : (struct eddy_str){NULL, 0}};
        if (eventlog_append(w, &e, err, errlen)) {
            eventlog_writer_discard(w);
            return -1;
        }
        count(c, x->type, x->ts_ms);
    }
    return eventlog_writer_finish(w, err, errlen);
}

/* ---- MovieLens ---------------------------------------------------------------- */

static const char ml_header[] = "userId,movieId,rating,timestamp";

static int ml_row(char *line, struct row *x, char *why, size_t wlen)
{
    char *f[4];
    uint64_t ts;
    double rating;
    if (split(line, ',', f, 4) != 4)
        return errf(why, wlen, "expected 4 comma-separated columns %s", ml_header);
    if (parse_u64(f[0], &x->user))
        return errf(why, wlen, "userId \"%.32s\" is not a non-negative integer", f[0]);
    if (parse_u64(f[1], &x->item))
        return errf(why, wlen, "movieId \"%.32s\" is not a non-negative integer", f[1]);
    if (parse_num(f[2], &rating) || rating < 0.5 || rating > 5)
        return errf(why, wlen, "rating \"%.32s\" is not a number in 0.5..5", f[2]);
    if (parse_u64(f[3], &ts) || ts > INT64_MAX / 1000)
        return errf(why, wlen, "timestamp \"%.32s\" is not Unix seconds", f[3]);
    x->ts_ms = (int64_t)ts * 1000;
    x->type = rating >= 4 ? CLICK_PURCHASE : CLICK_VIEW;
    return 0;
}

int import_movielens(const char *in, const char *out_dir, const struct import_options *o,
                     struct import_counts *c, char *err, size_t errlen)
{
    struct lines l;
    struct rows r = {0};
    char why[160];
    int rc = -1;

    memset(c, 0, sizeof *c);
    if (lines_open(&l, in, err, errlen))
        return -1;
    if (!lines_next(&l) || strcmp(l.buf, ml_header)) {
        errf(err, errlen, "%s:1: expected the header line \"%s\"", in, ml_header);
        goto out;
    }
    while (lines_next(&l)) {
        struct row x = {.seq = c->rows++};
        if (ml_row(l.buf, &x, why, sizeof why)) {
            if (bad_row(o, c, &l, why, err, errlen))
                goto out;
        } else if (rows_push(&r, &x)) {
            errf(err, errlen, "out of memory after %zu ratings", r.n);
            goto out;
        }
    }
    if (lines_error(&l, err, errlen))
        goto out;
    rc = write_clicks(&r, out_dir, "u", "m", false, o, c, err, errlen);
out:
    lines_close(&l);
    free(r.v);
    return rc;
}

/* ---- iPinYou ------------------------------------------------------------------ */

struct ipy_row {
    bool click;
    int64_t price_micros;
    double pctr;
};

static int ipy_row(char *line, struct ipy_row *x, char *why, size_t wlen)
{
    char *f[4];
    double price;
    int n = split(line, '\t', f, 4);
    if (n < 3 || n > 4)
        return errf(why, wlen,
                    "expected 3 or 4 tab-separated columns click, market_price, pCTR[, exchange]");
    if (strcmp(f[0], "0") && strcmp(f[0], "1"))
        return errf(why, wlen, "click \"%.32s\" is not 0 or 1", f[0]);
    if (parse_num(f[1], &price) || price < 0 || price > 1e12)
        return errf(why, wlen, "market_price \"%.32s\" is not a non-negative number", f[1]);
    if (parse_num(f[2], &x->pctr) || x->pctr < 0 || x->pctr > 1)
        return errf(why, wlen, "pCTR \"%.32s\" is not a number in [0,1]", f[2]);
    x->click = f[0][0] == '1';
    /* CPM in fen (1/100 CNY) per 1000 impressions = fen/1000 per impression,
     * i.e. price * 1000 micro-fen per impression. */
    x->price_micros = llround(price * 1000);
    return 0;
}

/* Running sums over the auctions written, for the CampaignBudget. */
struct ipy_sums {
    uint64_t auctions;
    int64_t price_micros;
    double pctr;
};

/* The start, rounded up to a whole budget period: eddy aligns periods to the
 * Unix epoch, so then each period holds exactly one episode of N auctions. */
static int64_t ipy_start(const struct import_options *o)
{
    int64_t period = (int64_t)(o->episode * 1000 / o->rate_per_s);
    return (o->start_ms + period - 1) / period * period;
}

/* The AUCTION of the idx-th accepted row, and its CLICK when click is 1. */
static int ipy_emit(struct eventlog_writer *w, const struct import_options *o, struct ipy_sums *s,
                    const struct ipy_row *x, struct import_counts *c, char *err, size_t errlen)
{
    int64_t ts = ipy_start(o) + (int64_t)(s->auctions * 1000 / o->rate_per_s);
    struct ad_event e = {.campaign_id = eddy_str_c(o->campaign_id),
                         .type = AD_AUCTION,
                         .timestamp_ms = ts,
                         .has_pctr = true,
                         .pctr = x->pctr,
                         .has_market_price = true,
                         .market_price_micros = x->price_micros};
    if (eventlog_append(w, &e, err, errlen))
        return -1;
    count(c, AD_AUCTION, ts);
    s->auctions++;
    s->price_micros += x->price_micros;
    s->pctr += x->pctr;
    if (!x->click)
        return 0;
    struct ad_event k = {.campaign_id = e.campaign_id, .type = AD_CLICK, .timestamp_ms = ts};
    if (eventlog_append(w, &k, err, errlen))
        return -1;
    count(c, AD_CLICK, ts);
    return 0;
}

/* Cai et al. (WSDM 2017): budget = c0 x N x mean market price per episode
 * of N auctions; base bid such that pCTR x base bid is the mean price at
 * the mean pCTR. */
static int ipy_budget(const char *in, const struct import_options *o, const struct ipy_sums *s,
                      struct campaign_budget *b, char *err, size_t errlen)
{
    if (!s->auctions)
        return errf(err, errlen, "%s: no auctions, so no budget can be sized", in);
    double price = (double)s->price_micros / (double)s->auctions;
    double pctr = s->pctr / (double)s->auctions;
    if (pctr <= 0)
        return errf(err, errlen, "%s: mean pCTR is 0, so no base bid can be set", in);
    const double budget = o->budget_c0 * (double)o->episode * price, bid = price / pctr;
    /* llround() of what an int64 cannot hold is undefined (a negative bid
     * here, which no reader takes). */
    if (!(budget < 0x1p63) || !(bid < 0x1p63))
        return errf(err, errlen, "%s: the budget (%.3g micros) or the base bid (%.3g micros, the "
                    "mean price %.3g micros over the mean pCTR %.3g) does not fit in 64 bits",
                    in, budget, bid, price, pctr);
    *b = (struct campaign_budget){
        .campaign_id = eddy_str_c(o->campaign_id),
        .budget_micros = llround(budget),
        .period_ms = (int64_t)(o->episode * 1000 / o->rate_per_s),
        .base_bid_micros = llround(bid),
    };
    return 0;
}

static int ipy_check(const struct import_options *o, char *err, size_t errlen)
{
    if (!o->campaign_id || !*o->campaign_id)
        return errf(err, errlen, "empty campaign id");
    if (!o->rate_per_s || !o->episode || o->start_ms < 0 || !(o->budget_c0 > 0))
        return errf(err, errlen, "rate, episode and c0 must be positive, start time >= 0");
    /* Then episode k holds exactly the auctions N*k .. N*(k+1)-1. */
    if (o->episode * 1000 % o->rate_per_s)
        return errf(err, errlen, "episode (%" PRIu64 ") x 1000 must be a multiple of the rate "
                    "(%" PRIu64 "/s) so that periods are whole milliseconds",
                    o->episode, o->rate_per_s);
    return 0;
}

/* Writes campaigns.avro, then renames ad-events.avro into place. */
static int ipy_finish(const char *out_dir, const struct import_options *o,
                      struct eventlog_writer *ads, const struct campaign_budget *b, char *err,
                      size_t errlen)
{
    char path[PATH_MAX];
    struct eventlog_writer *w = NULL;
    if (out_path(out_dir, "campaigns.avro", path, err, errlen) ||
        eventlog_writer_new(path, REC_CAMPAIGN, o->codec, &w, err, errlen) ||
        eventlog_append(w, b, err, errlen)) {
        eventlog_writer_discard(w);
        eventlog_writer_discard(ads);
        return -1;
    }
    if (eventlog_writer_finish(ads, err, errlen)) {
        eventlog_writer_discard(w);
        return -1;
    }
    return eventlog_writer_finish(w, err, errlen);
}

int import_ipinyou(const char *in, const char *out_dir, const struct import_options *o,
                   struct import_counts *c, char *err, size_t errlen)
{
    char path[PATH_MAX], why[160];
    struct lines l = {0};
    struct eventlog_writer *w = NULL;
    struct ipy_sums s = {0};
    int rc = -1;

    memset(c, 0, sizeof *c);
    if (ipy_check(o, err, errlen) || lines_open(&l, in, err, errlen))
        goto out;
    if (out_path(out_dir, "ad-events.avro", path, err, errlen) ||
        eventlog_writer_new(path, REC_AD, o->codec, &w, err, errlen))
        goto out;
    while (lines_next(&l)) {
        struct ipy_row x;
        c->rows++;
        if (ipy_row(l.buf, &x, why, sizeof why)) {
            if (bad_row(o, c, &l, why, err, errlen))
                goto out;
        } else if (ipy_emit(w, o, &s, &x, c, err, errlen)) {
            goto out;
        }
    }
    if (lines_error(&l, err, errlen) || ipy_budget(in, o, &s, &c->campaign, err, errlen))
        goto out;
    rc = ipy_finish(out_dir, o, w, &c->campaign, err, errlen);
    w = NULL; /* ipy_finish took it */
out:
    eventlog_writer_discard(w);
    lines_close(&l);
    return rc;
}

/* ---- OTTO -------------------------------------------------------------------- */

static int otto_event(json_t *ev, size_t i, struct row *x, char *why, size_t wlen)
{
    static const struct {
        const char *name;
        enum click_type type;
    } types[] = {{"clicks", CLICK_CLICK}, {"carts", CLICK_ADD_TO_CART}, {"orders", CLICK_PURCHASE}};
    json_int_t aid, ts;
    const char *type;

    if (json_unpack(ev, "{s:I, s:I, s:s}", "aid", &aid, "ts", &ts, "type", &type) || aid < 0 ||
        ts < 0 || ts > INT64_MAX / 1000)
        return errf(why, wlen, "event %zu: expected {\"aid\": N, \"ts\": N, \"type\": S}, N >= 0",
                    i);
    x->item = (uint64_t)aid;
    x->ts_ms = ts < OTTO_SECONDS_BELOW ? ts * 1000 : ts;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        if (!strcmp(type, types[k].name)) {
            x->type = types[k].type;
            return 0;
        }
    return errf(why, wlen, "event %zu: type \"%.32s\" is not clicks, carts or orders", i, type);
}

/* Appends the events of one session line to r: 0, -1 when the line is
 * malformed (why says how), -2 when out of memory; on failure r is unchanged. */
static int otto_line(const char *line, struct rows *r, uint64_t *seq, char *why, size_t wlen)
{
    json_error_t jerr;
    json_t *root = json_loads(line, 0, &jerr), *events, *ev;
    json_int_t session;
    size_t i, n0 = r->n;
    int rc = -1;

    if (!root) {
        errf(why, wlen, "not JSON: %s", jerr.text);
        goto out;
    }
    if (json_unpack(root, "{s:I, s:o}", "session", &session, "events", &events) ||
        session < 0 || !json_is_array(events)) {
        errf(why, wlen, "expected {\"session\": N, \"events\": [...]}, N >= 0");
        goto out;
    }
    json_array_foreach (events, i, ev) {
        struct row x = {.user = (uint64_t)session, .seq = (*seq)++};
        if (otto_event(ev, i, &x, why, wlen))
            goto out;
        if (rows_push(r, &x)) {
            rc = -2;
            goto out;
        }
    }
    rc = 0;
out:
    if (rc)
        r->n = n0;
    json_decref(root);
    return rc;
}

int import_otto(const char *in, const char *out_dir, const struct import_options *o,
                struct import_counts *c, char *err, size_t errlen)
{
    struct lines l;
    struct rows r = {0};
    uint64_t seq = 0;
    char why[160];
    int rc = -1;

    memset(c, 0, sizeof *c);
    if (lines_open(&l, in, err, errlen))
        return -1;
    while (lines_next(&l)) {
        int bad = otto_line(l.buf, &r, &seq, why, sizeof why);
        c->rows++;
        if (bad == -2) {
            errf(err, errlen, "out of memory after %zu events", r.n);
            goto out;
        }
        if (bad && bad_row(o, c, &l, why, err, errlen))
            goto out;
    }
    if (lines_error(&l, err, errlen))
        goto out;
    rc = write_clicks(&r, out_dir, "s", "a", true, o, c, err, errlen);
out:
    lines_close(&l);
    free(r.v);
    return rc;
}
