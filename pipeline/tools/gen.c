#include "pipeline/tools/gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pipeline/codec/eventlog.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"

struct campaign_model {
    double base_ctr;
    double mean_price_micros;
    int64_t budget_micros;
    int64_t base_bid_micros;
};

struct gen {
    struct gen_options o;
    uint64_t rng;
    uint64_t emitted;        /* all records so far, campaigns included */
    uint64_t events;         /* click/ad events so far */
    int next_campaign;       /* campaign records still to send first */
    struct campaign_model *camp;
    int pending_click;       /* campaign index whose CLICK follows, or -1 */
    int64_t pending_ts;
    unsigned char *buf;      /* for corrupted encodings */
    size_t cap;
};

void gen_options_default(struct gen_options *o)
{
    *o = (struct gen_options){
        .seed = 1,
        .events = 200000,
        .users = 1000,
        .items = 5000,
        .segments = 10,
        .campaigns = 5,
        .ad_fraction = 0.2,
        .affinity = 0.9,
        .start_ms = 1767225600000LL, /* 2026-01-01T00:00:00Z */
        .step_us = 1000,
        .period_ms = 60000,
        .budget_scale = 1.0,
    };
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(struct gen *g)
{
    return (double)(splitmix64(&g->rng) >> 11) * 0x1.0p-53;
}

static uint64_t below(struct gen *g, uint64_t n)
{
    return splitmix64(&g->rng) % n;
}

static double normal(struct gen *g)
{
    double u1 = uniform(g), u2 = uniform(g);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(2.0 * M_PI * u2);
}

/* Budgets are sized so that a campaign can afford roughly a third of the
 * auctions it sees in a period at its mean price: pacing matters. */
static void model_campaigns(struct gen *g)
{
    const struct gen_options *o = &g->o;
    double events_per_period = (double)o->period_ms * 1000.0 / (double)o->step_us;
    double auctions = events_per_period * o->ad_fraction / (1.0 + 0.01) / o->campaigns;
    g->camp = calloc((size_t)o->campaigns, sizeof *g->camp);
    for (int c = 0; c < o->campaigns; c++) {
        struct campaign_model *m = &g->camp[c];
        m->base_ctr = 0.01 + 0.04 * uniform(g);
        m->mean_price_micros = 50000 + 100000 * uniform(g);
        m->budget_micros = (int64_t)(o->budget_scale * auctions * m->mean_price_micros / 3.0);
        if (m->budget_micros < 1000000)
            m->budget_micros = 1000000;
        m->base_bid_micros = (int64_t)(m->mean_price_micros / m->base_ctr);
    }
}

struct gen *gen_new(const struct gen_options *o)
{
    struct gen *g = calloc(1, sizeof *g);
    g->o = *o;
    g->rng = o->seed;
    g->pending_click = -1;
    model_campaigns(g);
    if (o->no_budgets)
        g->next_campaign = o->campaigns;
    return g;
}

void gen_free(struct gen *g)
{
    if (!g)
        return;
    free(g->camp);
    free(g->buf);
    free(g);
}

static struct eddy_str id(char *buf, size_t size, char prefix, uint64_t n)
{
    int len = snprintf(buf, size, "%c%llu", prefix, (unsigned long long)n);
    return (struct eddy_str){buf, (size_t)len};
}

static void next_campaign_budget(struct gen *g, struct gen_record *r)
{
    int c = g->next_campaign++;
    r->type = REC_CAMPAIGN;
    r->ev.kind = EV_CAMPAIGN;
    r->ev.u.campaign = (struct campaign_budget){
        .campaign_id = id(r->id1, sizeof r->id1, 'c', (uint64_t)c),
        .budget_micros = g->camp[c].budget_micros,
        .period_ms = g->o.period_ms,
        .base_bid_micros = g->camp[c].base_bid_micros,
    };
}

static void next_click(struct gen *g, struct gen_record *r, int64_t ts)
{
    const struct gen_options *o = &g->o;
    uint64_t user = below(g, (uint64_t)o->users);
    uint64_t item;
    if (uniform(g) < o->affinity) {
        uint64_t segment = user % (uint64_t)o->segments;
        uint64_t per_cluster = ((uint64_t)o->items + (uint64_t)o->segments - 1 - segment) /
                               (uint64_t)o->segments;
        item = segment + (uint64_t)o->segments * below(g, per_cluster ? per_cluster : 1);
    } else {
        item = below(g, (uint64_t)o->items);
    }
    double u = uniform(g);
    enum click_type type = u < 0.6 ? CLICK_VIEW : u < 0.85 ? CLICK_CLICK
                         : u < 0.95 ? CLICK_ADD_TO_CART : CLICK_PURCHASE;
    r->type = REC_CLICK;
    r->ev.kind = EV_CLICK;
    r->ev.u.click = (struct click_event){
        .user_id = id(r->id1, sizeof r->id1, 'u', user),
        .item_id = id(r->id2, sizeof r->id2, 'i', item),
        .type = type,
        .timestamp_ms = ts,
    };
    if (user % 10 == 0) /* some producers send sessions, most don't */
        r->ev.u.click.session_id = id(r->id3, sizeof r->id3, 's', user * 1000 + (uint64_t)ts / 1800000);
}

static void next_ad(struct gen *g, struct gen_record *r, int64_t ts)
{
    r->type = REC_AD;
    r->ev.kind = EV_AD;
    struct ad_event *a = &r->ev.u.ad;
    if (g->pending_click >= 0) { /* the CLICK that follows a won-or-not AUCTION */
        *a = (struct ad_event){.campaign_id = id(r->id1, sizeof r->id1, 'c', (uint64_t)g->pending_click),
                               .type = AD_CLICK, .timestamp_ms = g->pending_ts};
        g->pending_click = -1;
        return;
    }
    int c = (int)below(g, (uint64_t)g->o.campaigns);
    const struct campaign_model *m = &g->camp[c];
    double pctr = fmin(1.0, m->base_ctr * exp(0.5 * normal(g)));
    *a = (struct ad_event){
        .campaign_id = id(r->id1, sizeof r->id1, 'c', (uint64_t)c),
        .type = AD_AUCTION,
        .timestamp_ms = ts,
        .has_pctr = true,
        .pctr = pctr,
        .has_market_price = true,
        .market_price_micros = (int64_t)(m->mean_price_micros * exp(0.4 * normal(g))),
    };
    if (uniform(g) < pctr) {
        g->pending_click = c;
        g->pending_ts = ts;
    }
}

/* Bad records whose damage is in the field values are made here; byte-level
 * damage is applied in gen_encode(). */
static void make_bad(struct gen *g, struct gen_record *r)
{
    r->bad = (enum gen_bad)(1 + (g->emitted / g->o.bad_every - 1) % (GEN_BAD_COUNT - 1));
    if (r->bad == GEN_BAD_EMPTY_ID) {
        if (r->type == REC_CLICK)
            r->ev.u.click.user_id.len = 0;
        else
            r->ev.u.ad.campaign_id.len = 0;
    } else if (r->bad == GEN_BAD_NAN || r->bad == GEN_BAD_NEGATIVE_PRICE) {
        /* These need an ad record: turn whatever this is into an auction. */
        struct ad_event *a = &r->ev.u.ad;
        r->type = REC_AD;
        r->ev.kind = EV_AD;
        *a = (struct ad_event){.campaign_id = id(r->id1, sizeof r->id1, 'c', 0),
                               .type = AD_AUCTION, .timestamp_ms = g->o.start_ms,
                               .has_pctr = true, .pctr = 0.01, .has_market_price = true,
                               .market_price_micros = 1000};
        if (r->bad == GEN_BAD_NAN)
            a->pctr = NAN;
        else
            a->market_price_micros = -1000;
    }
}

bool gen_next(struct gen *g, struct gen_record *r)
{
    memset(r, 0, sizeof *r);
    if (g->next_campaign < g->o.campaigns) {
        next_campaign_budget(g, r);
    } else {
        if (g->events >= g->o.events)
            return false;
        int64_t ts = g->o.start_ms + (int64_t)(g->events * (uint64_t)g->o.step_us / 1000);
        if (g->pending_click >= 0 || uniform(g) < g->o.ad_fraction)
            next_ad(g, r, ts);
        else
            next_click(g, r, ts);
        g->events++;
    }
    g->emitted++;
    if (g->o.bad_every && g->emitted % g->o.bad_every == 0 && r->type != REC_CAMPAIGN)
        make_bad(g, r);
    return true;
}

int gen_encode(struct gen *g, struct eddy_codec *codec, const struct gen_record *r,
               const void **out, size_t *len, char *err, size_t errlen)
{
    if (codec_encode(codec, r->type, &r->ev.u, out, len, err, errlen))
        return -1;
    if (r->bad != GEN_BAD_GARBAGE && r->bad != GEN_BAD_FINGERPRINT && r->bad != GEN_BAD_TRUNCATED)
        return 0;
    if (g->cap < *len) {
        g->cap = *len * 2;
        g->buf = realloc(g->buf, g->cap);
    }
    memcpy(g->buf, *out, *len);
    if (r->bad == GEN_BAD_GARBAGE)
        for (size_t i = 0; i < *len; i++)
            g->buf[i] = (unsigned char)(0x40 + splitmix64(&g->rng) % 64); /* never a framing byte */
    else if (r->bad == GEN_BAD_FINGERPRINT)
        g->buf[2] ^= 0x5a;
    else
        *len = *len / 2;
    *out = g->buf;
    return 0;
}

int gen_segment_of(struct eddy_str s, int segments)
{
    if (s.len < 2 || (s.ptr[0] != 'u' && s.ptr[0] != 'i'))
        return -1;
    uint64_t n = 0;
    for (size_t i = 1; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    return (int)(n % (uint64_t)segments);
}

/* ---- producing into Kafka --------------------------------------------- */

struct delivery_count {
    uint64_t ok, failed;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct delivery_count *d = opaque;
    if (m->err) {
        d->failed++;
        log_error("gen: delivery failed: %s", rd_kafka_err2str(m->err));
    } else {
        d->ok++;
    }
}

static void pace(const struct gen_options *o, uint64_t n, const struct timespec *t0)
{
    if (o->rate <= 0)
        return;
    double due = (double)n / o->rate;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
    if (due > elapsed) {
        double wait = due - elapsed;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static struct eddy_str record_key(const struct gen_record *r)
{
    switch (r->type) {
    case REC_CLICK: return r->ev.u.click.user_id;
    case REC_AD: return r->ev.u.ad.campaign_id;
    default: return r->ev.u.campaign.campaign_id;
    }
}

static const char *record_topic(const struct eddy_config *cfg, enum eddy_record_type t)
{
    return t == REC_CLICK ? cfg->topic_clicks : t == REC_AD ? cfg->topic_ad_events
                                                            : cfg->topic_campaigns;
}

static int produce_one(rd_kafka_t *rk, const char *topic, struct eddy_str key,
                       const void *buf, size_t len)
{
    rd_kafka_resp_err_t e =
        kafka_produce_copy(rk, topic, RD_KAFKA_PARTITION_UA, key.ptr, key.len, buf, len);
    if (e)
        log_error("gen: produce to %s failed: %s", topic, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* Event time = now, for --wall-time. */
static void stamp_now(struct gen_record *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (r->ev.kind == EV_CLICK)
        r->ev.u.click.timestamp_ms = ms;
    else if (r->ev.kind == EV_AD)
        r->ev.u.ad.timestamp_ms = ms;
}

int gen_to_kafka(const struct gen_options *o, const struct eddy_config *cfg,
                 volatile bool *stop, uint64_t *produced)
{
    char err[512];
    struct delivery_count dc = {0, 0};
    struct eddy_codec *codec = NULL;
    struct codec_options co = {.registry_url = cfg->registry_url[0] ? cfg->registry_url : NULL};
    struct gen *g = gen_new(o);
    rd_kafka_t *rk = kafka_producer_new(cfg, on_delivery, NULL, &dc, err, sizeof err);
    int rc = -1;
    if (!rk || codec_new(&co, &codec, err, sizeof err)) {
        log_error("gen: %s", err);
        goto out;
    }
    for (int t = REC_CLICK; co.registry_url && t <= REC_CAMPAIGN; t++)
        if (codec_register(codec, (enum eddy_record_type)t, record_topic(cfg, t), err, sizeof err)) {
            log_error("gen: %s", err);
            goto out;
        }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct gen_record r;
    uint64_t n = 0;
    while (!(stop && *stop) && gen_next(g, &r)) {
        const void *buf;
        size_t len;
        if (o->wall_time)
            stamp_now(&r);
        if (gen_encode(g, codec, &r, &buf, &len, err, sizeof err)) {
            log_error("gen: %s", err);
            goto out;
        }
        if (produce_one(rk, record_topic(cfg, r.type), record_key(&r), buf, len))
            goto out;
        rd_kafka_poll(rk, 0);
        pace(o, ++n, &t0);
        if (r.type == REC_CAMPAIGN && n == (uint64_t)o->campaigns)
            rd_kafka_flush(rk, 10000); /* budgets land before the events that use them */
    }
    rc = rd_kafka_flush(rk, 60000) || dc.failed ? -1 : 0;
out:
    if (produced)
        *produced = dc.ok;
    if (rk)
        rd_kafka_destroy(rk);
    codec_free(codec);
    gen_free(g);
    return rc;
}

int gen_to_files(const struct gen_options *o, const char *dir, uint64_t *written, char *err,
                 size_t errlen)
{
    static const char *const names[3] = {"clicks.avro", "ad-events.avro", "campaigns.avro"};
    struct eventlog_writer *w[3] = {NULL, NULL, NULL};
    int rc = 0;
    *written = 0;
    if (o->bad_every)
        return errf(err, errlen, "--bad-every needs Kafka: a log file holds records, not bytes");
    if (mkdir(dir, 0777) && errno != EEXIST)
        return errf(err, errlen, "%s: %s", dir, strerror(errno));
    for (int t = REC_CLICK; t <= REC_CAMPAIGN && !rc; t++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[t]);
        rc = eventlog_writer_new(path, (enum eddy_record_type)t, "deflate", &w[t], err, errlen);
    }
    struct gen *g = gen_new(o);
    struct gen_record r;
    while (!rc && gen_next(g, &r)) {
        rc = eventlog_append(w[r.type], &r.ev.u, err, errlen);
        ++*written;
    }
    gen_free(g);
    for (int t = REC_CLICK; t <= REC_CAMPAIGN; t++) {
        if (rc)
            eventlog_writer_discard(w[t]);
        else
            rc = eventlog_writer_finish(w[t], err, errlen);
    }
    return rc;
}
