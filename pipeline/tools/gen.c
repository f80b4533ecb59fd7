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

/* Zipf over 1..n by rejection-inversion (Hörmann and Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions",
 * 1996): O(1) time and memory for any n, any exponent >= 0. */
struct zipf {
    double s, n, h_x1, h_n, threshold;
};

/* A session in progress (GEN_SESSIONS). */
struct session {
    int64_t next_ms;   /* event time of its next click */
    uint64_t id;
    uint32_t user, segment;
    uint32_t anchor;   /* rank, within the segment, of the item it browses around */
    uint32_t last;     /* rank of its last item */
    uint32_t left;     /* clicks still to come */
    bool carted;       /* its last click was an ADD_TO_CART */
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
    /* GEN_SESSIONS */
    struct zipf user_pop, item_pop;
    uint64_t user_mult, item_mult[2]; /* rank -> id permutations, see scramble() */
    int64_t *free_at;        /* per user: event time its next session may start */
    struct session *heap;    /* sessions in progress, min-heap on next_ms */
    size_t nheap, capheap;
    uint64_t sessions;       /* sessions started */
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
        .traffic = GEN_UNIFORM,
        .user_zipf = 0.8,
        .item_zipf = 1.0,
        .session_events = 6.0,
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

static struct eddy_str id(char *buf, size_t size, char prefix, uint64_t n)
{
    int len = snprintf(buf, size, "%c%llu", prefix, (unsigned long long)n);
    return (struct eddy_str){buf, (size_t)len};
}

/* ---- GEN_SESSIONS: Zipf, sessions ----------------------------------- */

static double helper1(double x) /* log1p(x) / x */
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double helper2(double x) /* expm1(x) / x */
{
    return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}

static double zipf_h_integral(const struct zipf *z, double x)
{
    double lx = log(x);
    return helper2((1.0 - z->s) * lx) * lx;
}

static double zipf_h(const struct zipf *z, double x)
{
    return exp(-z->s * log(x));
}

static double zipf_h_integral_inv(const struct zipf *z, double x)
{
    double t = x * (1.0 - z->s);
    if (t < -1.0)
        t = -1.0;
    return exp(helper1(t) * x);
}

static void zipf_init(struct zipf *z, double s, uint64_t n)
{
    z->s = s;
    z->n = (double)n;
    z->h_x1 = zipf_h_integral(z, 1.5) - 1.0;
    z->h_n = zipf_h_integral(z, z->n + 0.5);
    z->threshold = 2.0 - zipf_h_integral_inv(z, zipf_h_integral(z, 2.5) - zipf_h(z, 2.0));
}

/* A rank in [0, min(n, limit)): 0 is the most popular. */
static uint64_t zipf_draw(struct gen *g, const struct zipf *z, uint64_t limit)
{
    for (;;) {
        double u = z->h_n + uniform(g) * (z->h_x1 - z->h_n);
        double x = zipf_h_integral_inv(z, u);
        double k = floor(x + 0.5);
        if (k < 1.0)
            k = 1.0;
        else if (k > z->n)
            k = z->n;
        if ((k - x <= z->threshold || u >= zipf_h_integral(z, k + 0.5) - zipf_h(z, k)) &&
            (uint64_t)k <= limit)
            return (uint64_t)k - 1;
    }
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A multiplier coprime to n, so rank -> rank * mult % n is a permutation: ids
 * carry no popularity (u0 is not the most active user). */
static uint64_t coprime_mult(uint64_t n)
{
    uint64_t m = n > 1 ? 0x9e3779b97f4a7c15ULL % n : 1;
    while (n > 1 && (m < 2 || gcd(m, n) != 1))
        m = (m + 1) % n;
    return m ? m : 1;
}

static uint64_t scramble(uint64_t rank, uint64_t mult, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rank * mult + n / 3) % n);
}

static uint64_t per_segment(const struct gen_options *o, uint64_t segment)
{
    uint64_t s = (uint64_t)o->segments, per = ((uint64_t)o->items + s - 1 - segment) / s;
    return per ? per : 1;
}

static void sessions_init(struct gen *g)
{
    const struct gen_options *o = &g->o;
    uint64_t s = (uint64_t)o->segments;
    zipf_init(&g->user_pop, o->user_zipf, (uint64_t)o->users);
    zipf_init(&g->item_pop, o->item_zipf, per_segment(o, 0));
    g->user_mult = coprime_mult((uint64_t)o->users);
    g->item_mult[0] = coprime_mult(per_segment(o, 0));
    g->item_mult[1] = coprime_mult(per_segment(o, s - 1));
    g->free_at = calloc((size_t)o->users, sizeof *g->free_at);
    if (!g->free_at)
        abort();
}

static bool session_before(const struct session *a, const struct session *b)
{
    return a->next_ms < b->next_ms || (a->next_ms == b->next_ms && a->id < b->id);
}

static void heap_push(struct gen *g, const struct session *s)
{
    if (g->nheap == g->capheap) {
        g->capheap = g->capheap ? g->capheap * 2 : 1024;
        g->heap = realloc(g->heap, g->capheap * sizeof *g->heap);
        if (!g->heap)
            abort();
    }
    size_t i = g->nheap++;
    while (i > 0 && session_before(s, &g->heap[(i - 1) / 2])) {
        g->heap[i] = g->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->heap[i] = *s;
}

static struct session heap_pop(struct gen *g)
{
    struct session top = g->heap[0], last = g->heap[--g->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g->nheap)
            break;
        if (c + 1 < g->nheap && session_before(&g->heap[c + 1], &g->heap[c]))
            c++;
        if (!session_before(&g->heap[c], &last))
            break;
        g->heap[i] = g->heap[c];
        i = c;
    }
    if (g->nheap)
        g->heap[i] = last;
    return top;
}

/* exp(N(log median, sigma)) milliseconds, at least floor_ms. */
static int64_t lognormal_ms(struct gen *g, double median_ms, double sigma, int64_t floor_ms)
{
    double v = median_ms * exp(sigma * normal(g));
    return v < (double)floor_ms ? floor_ms : v > 1e12 ? (int64_t)1e12 : (int64_t)v;
}

/* Gaps between a session's clicks: median 4 s, 90% within 1.3 to 13 s. */
#define CLICK_GAP_MEDIAN_MS 4000.0
#define CLICK_GAP_SIGMA 0.7
/* Gaps between a user's sessions (at least; the popularity draw adds to it
 * for all but the busiest users): median 30 min, 90% within 4 min to 3.6 h. */
#define SESSION_GAP_MEDIAN_MS 1800000.0
#define SESSION_GAP_SIGMA 1.2
/* A session's next item: near its anchor (|offset| geometric, mean 4 ranks)
 * with this probability, else a fresh popularity draw in its cluster. */
#define NEAR_ANCHOR 0.7
#define NEAR_MEAN 4.0
/* Tries at a Zipf user who is not in a session or its gap, before taking
 * whoever came up (only when nearly all users are busy: tiny --users). */
#define USER_TRIES 16

/* A new session at ts: its user, cluster, anchor and length. */
static struct session session_start(struct gen *g, int64_t ts)
{
    const struct gen_options *o = &g->o;
    uint64_t n = (uint64_t)o->users, user = 0;
    for (int t = 0; t < USER_TRIES; t++) {
        user = scramble(zipf_draw(g, &g->user_pop, n), g->user_mult, n);
        if (g->free_at[user] <= ts)
            break;
    }
    struct session s = {.id = ++g->sessions, .user = (uint32_t)user};
    s.segment = (uint32_t)(uniform(g) < o->affinity ? user % (uint64_t)o->segments
                                                    : below(g, (uint64_t)o->segments));
    s.anchor = s.last = (uint32_t)zipf_draw(g, &g->item_pop, per_segment(o, s.segment));
    /* Geometric length with the given mean, at least one click. */
    double p = 1.0 / fmax(1.0, o->session_events), len = 1.0;
    if (p < 1.0)
        len += floor(log(1.0 - uniform(g)) / log(1.0 - p));
    s.left = len > 1e6 ? 1000000 : (uint32_t)len;
    g->free_at[user] = INT64_MAX; /* busy until its session ends */
    return s;
}

/* The rank of the session's next item (its first is the anchor). */
static uint32_t session_item(struct gen *g, struct session *s, bool first)
{
    if (first)
        return s->anchor;
    uint64_t per = per_segment(&g->o, s->segment);
    if (uniform(g) >= NEAR_ANCHOR)
        return (uint32_t)zipf_draw(g, &g->item_pop, per);
    double q = 1.0 / NEAR_MEAN;
    int64_t off = 1 + (int64_t)floor(log(1.0 - uniform(g)) / log(1.0 - q));
    int64_t r = uniform(g) < 0.5 ? (int64_t)s->anchor - off : (int64_t)s->anchor + off;
    if (r < 0) /* reflect at the ends of the cluster */
        r = -r;
    if (r >= (int64_t)per)
        r = (int64_t)per - 1 - (r - (int64_t)per) % (int64_t)per;
    return (uint32_t)(r < 0 ? 0 : r);
}

static void next_session_click(struct gen *g, struct gen_record *r, int64_t ts)
{
    const struct gen_options *o = &g->o;
    struct session s;
    bool first = !(g->nheap && g->heap[0].next_ms <= ts);
    s = first ? session_start(g, ts) : heap_pop(g);
    enum click_type type;
    uint32_t rank;
    if (!first && s.carted && uniform(g) < 0.4) { /* buys what it just put in the cart */
        rank = s.last;
        type = CLICK_PURCHASE;
    } else {
        rank = session_item(g, &s, first);
        double u = uniform(g);
        type = u < 0.72 ? CLICK_VIEW : u < 0.90 ? CLICK_CLICK
             : u < 0.97 ? CLICK_ADD_TO_CART : CLICK_PURCHASE;
    }
    s.last = rank;
    s.carted = type == CLICK_ADD_TO_CART;
    uint64_t seg = s.segment, per = per_segment(o, seg);
    uint64_t item = seg + (uint64_t)o->segments *
                              scramble(rank, g->item_mult[per == per_segment(o, 0) ? 0 : 1], per);
    r->type = REC_CLICK;
    r->ev.kind = EV_CLICK;
    r->ev.u.click = (struct click_event){
        .user_id = id(r->id1, sizeof r->id1, 'u', s.user),
        .item_id = id(r->id2, sizeof r->id2, 'i', item),
        .type = type,
        .timestamp_ms = ts,
        .session_id = id(r->id3, sizeof r->id3, 's', s.id),
    };
    if (--s.left > 0) {
        s.next_ms = ts + lognormal_ms(g, CLICK_GAP_MEDIAN_MS, CLICK_GAP_SIGMA, 200);
        heap_push(g, &s);
    } else {
        g->free_at[s.user] = ts + lognormal_ms(g, SESSION_GAP_MEDIAN_MS, SESSION_GAP_SIGMA, 60000);
    }
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
    if (o->traffic == GEN_SESSIONS)
        sessions_init(g);
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
    free(g->free_at);
    free(g->heap);
    free(g);
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
        else if (g->o.traffic == GEN_SESSIONS)
            next_session_click(g, r, ts);
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

/* Sleeps only once the generator is a millisecond ahead, so that at high rates
 * it wakes once per millisecond, not once per record: at 20k records/s the
 * generator used a third of a core with a sleep per record and a sixth
 * without, and on a small machine that came out of the broker's and the
 * consumer's share. */
#define PACE_AHEAD_S 0.001

static void pace(const struct gen_options *o, uint64_t n, const struct timespec *t0)
{
    if (o->rate <= 0)
        return;
    double due = (double)n / o->rate;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
    if (due > elapsed + PACE_AHEAD_S) {
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
