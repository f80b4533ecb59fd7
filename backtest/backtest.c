/* backtest.c: see backtest.h. */
#include "backtest/backtest.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "backtest/prequential.h"
#include "operators/budget.h"
#include "pipeline/run/chain.h"
#include "pipeline/run/log.h"
#include "state/state.h"

#define MAX_FRACTIONS 16

/* What the budget operator did for one campaign, from its ledger and its
 * decisions. */
struct camp {
    UT_hash_handle hh;
    char *id;
    struct bid_result r;             /* booked here field by field: periods are in time */
    int64_t budget_micros, period_ms;
    uint64_t wins_before;
    int64_t period;                  /* index of the period of the last decision; -1 none */
    int64_t period_spent, closed_spent, closed_budget;
    struct report_spend_point *points;
    size_t n_points, cap_points;
};

struct fraction {
    char label[16];
    double c0;
    char *id;                        /* "<campaign>@<label>" */
    int64_t budget_micros, base_bid_micros;
    double lin_b0;
    struct bid_result eddy, lin, oracle;
    struct report_training train;    /* the pre-training's episodes */
    struct report_episode shown;     /* the representative evaluated episode */
    uint64_t wins_before;            /* during the pre-training */
    int64_t period;                  /* of eddy's latest auction; its episodes are periods */
};

struct backtest {
    struct backtest_options o;
    struct eddy_state *st;
    struct preq *preq;
    struct rec_item *top;
    struct eddy_str *top_ids;
    struct camp *camps;
    /* the protocol */
    char *campaign;                  /* NULL: off */
    struct fraction f[MAX_FRACTIONS];
    size_t n_f;
    struct eddy_event fan[MAX_FRACTIONS];
    int64_t period_ms;               /* of the evaluated log */
    int64_t shown_period;            /* index (t / period_ms) of the representative episode */
    /* The pre-training: the tuning log's auctions, moved back in time by
     * shift_ms (whole periods) so they end before the evaluated log; run
     * once, before the evaluated log's first auction, on a fresh state. */
    struct auction *tune;
    size_t n_tune;
    int64_t shift_ms, train_first_period;
    bool pretraining;
};

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        abort();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s ? s : "", n);
    if (!p)
        abort();
    return p;
}

struct backtest *backtest_new(const struct backtest_options *o, struct eddy_state *st,
                              char *err, size_t errlen)
{
    if (o->k < 1 || !o->window_events || o->slots < 1 || o->slots > AUCTION_MAX_SLOTS) {
        snprintf(err, errlen, "evaluation: K >= 1, window >= 1 and 1..%d slots needed",
                 AUCTION_MAX_SLOTS);
        return NULL;
    }
    struct backtest *b = xcalloc(sizeof *b);
    b->o = *o;
    b->st = st;
    b->preq = preq_new(o->k, o->window_events);
    b->top = xcalloc((size_t)o->k * sizeof *b->top);
    b->top_ids = xcalloc((size_t)o->k * sizeof *b->top_ids);
    if (!b->preq)
        abort();
    return b;
}

void backtest_free(struct backtest *b)
{
    if (!b)
        return;
    struct camp *c, *t;
    HASH_ITER(hh, b->camps, c, t) {
        HASH_DEL(b->camps, c);
        free(c->id);
        free(c->points);
        free(c);
    }
    for (size_t i = 0; i < b->n_f; i++) {
        free(b->f[i].id);
        free(b->f[i].train.clicks);
        free(b->f[i].train.spend_micros);
    }
    free(b->tune);
    free(b->campaign);
    preq_free(b->preq);
    free(b->top);
    free(b->top_ids);
    free(b);
}

/* ---- the protocol's pre-pass ------------------------------------------- */

int auction_log_add(struct auction_log *l, const struct eddy_event *ev, char *err, size_t errlen)
{
    struct eddy_str id = ev->kind == EV_AD ? ev->u.ad.campaign_id
                       : ev->kind == EV_CAMPAIGN ? ev->u.campaign.campaign_id
                                                 : (struct eddy_str){NULL, 0};
    if (ev->kind == EV_CLICK)
        return 0;
    if (!l->campaign) {
        l->campaign = xstrndup(id.ptr, id.len);
    } else if (strlen(l->campaign) != id.len || memcmp(l->campaign, id.ptr, id.len)) {
        snprintf(err, errlen, "the budget protocol needs a log of one campaign; found \"%s\" "
                 "and \"%.*s\"", l->campaign, (int)(id.len > 64 ? 64 : id.len), id.ptr);
        return -1;
    }
    if (ev->kind == EV_CAMPAIGN) {
        l->period_ms = ev->u.campaign.period_ms;
        l->base_bid_micros = ev->u.campaign.base_bid_micros;
    } else if (ev->u.ad.type == AD_AUCTION && ev->u.ad.has_pctr && ev->u.ad.has_market_price) {
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 4096;
            l->a = realloc(l->a, l->cap * sizeof *l->a);
            if (!l->a)
                abort();
        }
        l->a[l->n++] = (struct auction){ev->u.ad.timestamp_ms, ev->u.ad.pctr,
                                        ev->u.ad.market_price_micros, false};
    } else if (ev->u.ad.type == AD_CLICK && l->n) {
        l->a[l->n - 1].click = true;
    }
    return 0;
}

void auction_log_free(struct auction_log *l)
{
    free(l->a);
    free(l->campaign);
    *l = (struct auction_log){0};
}

/* Auctions per budget period: the most any period of the log holds (the
 * first and last may be partial). */
static uint64_t episode_of(const struct auction_log *l)
{
    uint64_t best = 0, run = 0;
    int64_t cur = INT64_MIN;
    for (size_t i = 0; i < l->n; i++) {
        int64_t p = l->a[i].t_ms / l->period_ms;
        run = p == cur ? run + 1 : 1;
        cur = p;
        if (run > best)
            best = run;
    }
    return best;
}

static int parse_fraction(const char *s, double *c0)
{
    char *end;
    double num = strtod(s, &end), den = 1;
    if (*end == '/')
        den = strtod(end + 1, &end);
    *c0 = num / den;
    return *end || !(*c0 > 0) || !isfinite(*c0) ? -1 : 0;
}

static int parse_fractions(struct backtest *b, const char *list, char *err, size_t errlen)
{
    char *copy = xstrndup(list, strlen(list)), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        struct fraction *f = &b->f[b->n_f];
        if (b->n_f == MAX_FRACTIONS || strlen(tok) >= sizeof f->label ||
            parse_fraction(tok, &f->c0)) {
            snprintf(err, errlen, "--budget-fractions: bad fraction \"%s\" (want e.g. 1/32 or "
                     "0.25, at most %d of them)", tok, MAX_FRACTIONS);
            rc = -1;
            break;
        }
        snprintf(f->label, sizeof f->label, "%s", tok);
        b->n_f++;
    }
    free(copy);
    if (!rc && !b->n_f) {
        snprintf(err, errlen, "--budget-fractions: empty list");
        rc = -1;
    }
    return rc;
}

/* ---- the pre-training ---------------------------------------------------- */

static bool is_protocol_campaign(const struct backtest *b, struct eddy_str id);

static void keep_tuning_log(struct backtest *b, const struct auction_log *eval,
                            const struct auction_log *tune)
{
    b->tune = malloc(tune->n * sizeof *b->tune);
    if (!b->tune)
        abort();
    memcpy(b->tune, tune->a, tune->n * sizeof *b->tune);
    b->n_tune = tune->n;
    int64_t gap = tune->a[tune->n - 1].t_ms - eval->a[0].t_ms;
    int64_t periods = gap >= 0 ? gap / eval->period_ms + 1 : 0;
    b->shift_ms = periods * eval->period_ms;
    b->train_first_period = (tune->a[0].t_ms - b->shift_ms) / eval->period_ms;
    size_t n = (size_t)((tune->a[tune->n - 1].t_ms - b->shift_ms) / eval->period_ms -
                        b->train_first_period + 1);
    for (size_t i = 0; i < b->n_f; i++) {
        struct report_training *t = &b->f[i].train;
        t->n = n;
        t->budget_micros = b->f[i].budget_micros;
        t->clicks = xcalloc(n * sizeof *t->clicks);
        t->spend_micros = xcalloc(n * sizeof *t->spend_micros);
    }
}

/* The ledger of a fan-out campaign; NULL if unknown. */
static const struct campaign_ledger *ledger_of(struct backtest *b, struct eddy_str id);

static void pretrain_event(struct backtest *b, struct op_chain *ops, struct fraction *f,
                           const struct auction *a, size_t episode)
{
    struct eddy_str id = eddy_str_c(f->id);
    struct eddy_event ev = {.kind = EV_AD};
    ev.u.ad = (struct ad_event){.campaign_id = id, .type = AD_AUCTION,
                                .timestamp_ms = a->t_ms - b->shift_ms, .has_pctr = true,
                                .pctr = a->pctr, .has_market_price = true,
                                .market_price_micros = a->price_micros};
    chain_process(ops, &ev);
    const struct campaign_ledger *l = ledger_of(b, id);
    if (!l || (uint64_t)l->wins == f->wins_before)
        return;
    f->wins_before = (uint64_t)l->wins;
    f->train.spend_micros[episode] += a->price_micros;
    if (!a->click)
        return;
    ev.u.ad = (struct ad_event){.campaign_id = id, .type = AD_CLICK,
                                .timestamp_ms = a->t_ms - b->shift_ms};
    chain_process(ops, &ev);
    f->train.clicks[episode]++;
}

void backtest_pretrain(struct backtest *b, struct op_chain *ops, const struct eddy_event *ev)
{
    if (!b->n_tune || ev->kind != EV_CAMPAIGN ||
        !is_protocol_campaign(b, ev->u.campaign.campaign_id))
        return;
    for (size_t i = 0; i < b->n_f; i++) {
        const struct campaign_ledger *l = ledger_of(b, eddy_str_c(b->f[i].id));
        if (!l || l->auctions) /* trained already: a state resumed past this */
            return;
    }
    b->pretraining = true;
    for (size_t i = 0; i < b->n_f; i++)
        for (size_t k = 0; k < b->n_tune; k++) {
            int64_t t = b->tune[k].t_ms - b->shift_ms;
            size_t episode = (size_t)(t / b->period_ms - b->train_first_period);
            pretrain_event(b, ops, &b->f[i], &b->tune[k], episode);
        }
    b->pretraining = false;
}

int backtest_protocol(struct backtest *b, const char *fractions, const struct auction_log *eval,
                      const struct auction_log *tune, char *err, size_t errlen)
{
    if (parse_fractions(b, fractions, err, errlen))
        return -1;
    if (!eval->n || eval->period_ms <= 0) {
        snprintf(err, errlen, "the budget protocol needs auctions with pCTR and market price "
                 "and a CampaignBudget in the log");
        return -1;
    }
    if (tune && (!tune->n || tune->period_ms <= 0)) {
        snprintf(err, errlen, "--tune-on: no auctions or no CampaignBudget in the training log");
        return -1;
    }
    double mean_price, mean_pctr, tune_price = 0, tune_pctr = 0;
    auction_means(eval->a, eval->n, &mean_price, &mean_pctr);
    if (tune)
        auction_means(tune->a, tune->n, &tune_price, &tune_pctr);
    uint64_t n_ep = episode_of(eval);
    b->campaign = xstrndup(eval->campaign, strlen(eval->campaign));
    b->period_ms = eval->period_ms;
    b->shown_period = eval->a[0].t_ms / eval->period_ms + (int64_t)(n_ep ? eval->n / n_ep / 2 : 0);
    for (size_t i = 0; i < b->n_f; i++) {
        struct fraction *f = &b->f[i];
        if (asprintf(&f->id, "%s@%s", eval->campaign, f->label) < 0)
            abort();
        f->budget_micros = auction_episode_budget(f->c0, n_ep, mean_price);
        f->base_bid_micros = eval->base_bid_micros;
        if (tune) {
            f->lin_b0 = lin_tune(tune->a, tune->n, episode_of(tune), f->c0, b->o.slots);
            f->base_bid_micros = tune_pctr > 0 ? llround(f->lin_b0 / tune_pctr) : 0;
            lin_simulate(eval->a, eval->n, n_ep, f->budget_micros, f->lin_b0, tune_pctr,
                         b->o.slots, &f->lin);
        }
        oracle_simulate(eval->a, eval->n, n_ep, f->budget_micros, b->o.slots, &f->oracle);
        bid_result_init(&f->eddy, n_ep, f->budget_micros, mean_price, b->o.slots);
    }
    if (tune)
        keep_tuning_log(b, eval, tune);
    return 0;
}

static bool is_protocol_campaign(const struct backtest *b, struct eddy_str id)
{
    return b->campaign && strlen(b->campaign) == id.len && !memcmp(b->campaign, id.ptr, id.len);
}

size_t backtest_expand(struct backtest *b, const struct eddy_event *ev,
                       const struct eddy_event **out)
{
    *out = ev;
    struct eddy_str id = ev->kind == EV_AD ? ev->u.ad.campaign_id
                       : ev->kind == EV_CAMPAIGN ? ev->u.campaign.campaign_id
                                                 : (struct eddy_str){NULL, 0};
    if (ev->kind == EV_CLICK || !is_protocol_campaign(b, id))
        return 1;
    for (size_t i = 0; i < b->n_f; i++) {
        struct eddy_event *e = &b->fan[i];
        *e = *ev;
        if (ev->kind == EV_AD) {
            e->u.ad.campaign_id = eddy_str_c(b->f[i].id);
        } else {
            e->u.campaign.campaign_id = eddy_str_c(b->f[i].id);
            e->u.campaign.budget_micros = b->f[i].budget_micros;
            e->u.campaign.base_bid_micros = b->f[i].base_bid_micros;
        }
    }
    *out = b->fan;
    return b->n_f;
}

/* ---- per event ----------------------------------------------------------- */

static struct camp *camp_of(struct backtest *b, struct eddy_str id)
{
    struct camp *c;
    HASH_FIND(hh, b->camps, id.ptr, id.len, c);
    if (c)
        return c;
    c = xcalloc(sizeof *c);
    c->id = xstrndup(id.ptr, id.len);
    c->period = -1;
    c->r.first_exhausted_ms = -1;
    c->r.max_overspend_micros = INT64_MIN;
    c->r.slots = b->o.slots;
    HASH_ADD_KEYPTR(hh, b->camps, c->id, id.len, c);
    return c;
}

static struct fraction *fraction_of(struct backtest *b, struct eddy_str id)
{
    for (size_t i = 0; i < b->n_f; i++)
        if (strlen(b->f[i].id) == id.len && !memcmp(b->f[i].id, id.ptr, id.len))
            return &b->f[i];
    return NULL;
}

static void score_click(struct backtest *b, const struct click_event *c)
{
    if (c->type == CLICK_VIEW || !preq_is_new(b->preq, c->user_id, c->item_id))
        return;
    struct eddy_query q = {.kind = QUERY_USER_RECOMMENDATIONS,
                           .u.recs = {.user_id = c->user_id, .k = b->o.k, .items = b->top}};
    int n = chain_query(b->st, &q) ? q.u.recs.n : 0;
    for (int i = 0; i < n; i++)
        b->top_ids[i] = b->top[i].item_id;
    preq_score(b->preq, c->timestamp_ms, c->user_id, c->item_id, b->top_ids, (size_t)n);
}

/* The campaign's ledger as the budget operator left it; NULL if unknown. */
static const struct campaign_ledger *ledger_of(struct backtest *b, struct eddy_str id)
{
    struct eddy_query q = {.kind = QUERY_CAMPAIGN_LEDGER, .u.ledger = {.campaign_id = id}};
    return chain_query(b->st, &q) ? q.u.ledger.ledger : NULL;
}

void backtest_before(struct backtest *b, const struct eddy_event *ev)
{
    if (ev->kind == EV_CLICK) {
        score_click(b, &ev->u.click);
    } else if (ev->kind == EV_AD) {
        const struct campaign_ledger *l = ledger_of(b, ev->u.ad.campaign_id);
        camp_of(b, ev->u.ad.campaign_id)->wins_before = l ? (uint64_t)l->wins : 0;
    }
}

static void after_ad(struct backtest *b, const struct ad_event *ev)
{
    struct camp *c = camp_of(b, ev->campaign_id);
    struct fraction *f = fraction_of(b, ev->campaign_id);
    const struct campaign_ledger *l = ledger_of(b, ev->campaign_id);
    if (ev->type == AD_AUCTION) {
        c->r.auctions++;
        if (f && b->period_ms && ev->timestamp_ms / b->period_ms != f->period) {
            bid_result_end_episode(&f->eddy);
            f->period = ev->timestamp_ms / b->period_ms;
        }
        if (f)
            bid_result_auction(&f->eddy, ev->timestamp_ms);
        if (l && (uint64_t)l->wins > c->wins_before) {
            c->r.wins++;
            c->r.spend_micros += ev->market_price_micros;
            if (l->slot >= 0 && l->slot < AUCTION_MAX_SLOTS)
                c->r.slot_spend_micros[l->slot] += ev->market_price_micros;
            if (f)
                bid_result_book(&f->eddy, ev->market_price_micros);
        }
    } else if (ev->type == AD_CLICK && l && l->last_auction_won) {
        c->r.clicks++;
        if (f)
            bid_result_click(&f->eddy);
    } else if (ev->type == AD_CONVERSION && ev->has_value && l && l->last_auction_won) {
        bid_result_value(&c->r, ev->value);
        if (f)
            bid_result_value(&f->eddy, ev->value);
    }
}

void backtest_after(struct backtest *b, const struct eddy_event *ev)
{
    if (ev->kind == EV_CLICK) {
        preq_observe(b->preq, ev->u.click.user_id, ev->u.click.item_id,
                     ev->u.click.type != CLICK_VIEW);
    } else if (ev->kind == EV_AD) {
        after_ad(b, &ev->u.ad);
    } else {
        struct camp *c = camp_of(b, ev->u.campaign.campaign_id);
        c->budget_micros = ev->u.campaign.budget_micros;
        c->period_ms = ev->u.campaign.period_ms;
    }
}

static void add_point(struct camp *c, struct report_spend_point p)
{
    if (c->n_points == c->cap_points) {
        c->cap_points = c->cap_points ? 2 * c->cap_points : 256;
        c->points = realloc(c->points, c->cap_points * sizeof *c->points);
        if (!c->points)
            abort();
    }
    c->points[c->n_points++] = p;
}

/* The decisions that open each slot of the representative episode: spend
 * so far, the multiplier in force and the plan's. */
static void show_decision(struct backtest *b, const struct budget_decision *d)
{
    struct fraction *f = fraction_of(b, d->campaign_id);
    if (!f || !b->period_ms || d->event_time_ms / b->period_ms != b->shown_period ||
        d->slot < 0 || d->slot >= AUCTION_MAX_SLOTS || f->shown.seen[d->slot])
        return;
    const struct campaign_ledger *l = ledger_of(b, d->campaign_id);
    struct report_episode *e = &f->shown;
    e->seen[d->slot] = true;
    e->slots = b->o.slots;
    e->budget_micros = d->spent_micros + d->remaining_micros;
    e->spent_micros[d->slot] = d->spent_micros;
    e->multiplier[d->slot] = d->bid_multiplier;
    e->plan_multiplier[d->slot] = l ? l->plan_multiplier : NAN;
}

/* Closes the previous period when a decision opens a new one, then adds the
 * point "spent so far against the even plan so far". The pre-training's
 * decisions are not booked. */
void backtest_decision(struct backtest *b, const struct budget_decision *d)
{
    if (b->pretraining)
        return;
    show_decision(b, d);
    struct camp *c = camp_of(b, d->campaign_id);
    int64_t budget = d->spent_micros + d->remaining_micros;
    int64_t period = c->period_ms > 0 ? d->event_time_ms / c->period_ms : 0;
    if (period != c->period) {
        if (c->period >= 0) {
            c->closed_spent += c->period_spent;
            c->closed_budget += c->budget_micros;
        }
        c->period = period;
        c->r.episodes++;
        c->r.budget_micros += budget;
        c->r.episode_ran_out = false;
    }
    c->r.episode_budget_micros = budget; /* the even plan per slot is this / slots */
    c->period_spent = d->spent_micros;
    if (d->spent_micros - budget > c->r.max_overspend_micros)
        c->r.max_overspend_micros = d->spent_micros - budget;
    if (d->pacing_rate == 0 && !c->r.episode_ran_out) {
        c->r.episode_ran_out = true;
        c->r.episodes_exhausted++;
        if (c->r.first_exhausted_ms < 0)
            c->r.first_exhausted_ms = d->event_time_ms;
    }
    int64_t plan = c->closed_budget + budget * (int64_t)d->slot / b->o.slots;
    add_point(c, (struct report_spend_point){d->event_time_ms, c->closed_spent + d->spent_micros,
                                             plan});
}

/* ---- the report ---------------------------------------------------------- */

/* The conversion value column shows only when the log has conversion values. */
static bool any_value(const struct backtest *b)
{
    for (const struct camp *c = b->camps; c; c = c->hh.next)
        if (c->r.value != 0)
            return true;
    return false;
}

static void print_campaigns(struct backtest *b)
{
    if (!b->camps)
        return;
    bool value = any_value(b);
    printf("\nbidding, the budget operator, per campaign (money in currency units)\n");
    printf("  %-14s %9s %7s %7s %10s %7s %8s  %-*s%s\n", "campaign", "auctions", "win",
           "clicks", "spend", "used", "eCPC", value ? 19 : 0, "first ran out",
           value ? "  conversion value" : "");
    for (struct camp *c = b->camps; c; c = c->hh.next) {
        const struct bid_result *r = &c->r;
        char ran_out[32] = "never";
        if (r->first_exhausted_ms >= 0)
            fmt_utc(ran_out, sizeof ran_out, r->first_exhausted_ms, "%Y-%m-%d %H:%M:%S");
        printf("  %-14s %9" PRIu64 " %6.1f%% %7" PRIu64 " %10.2f %6.1f%% %8.2f  %-*s", c->id,
               r->auctions, r->auctions ? 100.0 * (double)r->wins / (double)r->auctions : 0.0,
               r->clicks, (double)r->spend_micros / 1e6,
               r->budget_micros ? 100.0 * (double)r->spend_micros / (double)r->budget_micros : 0.0,
               r->clicks ? (double)r->spend_micros / 1e6 / (double)r->clicks : 0.0,
               value ? 19 : 0, ran_out);
        if (value)
            printf("  %16.2f", r->value);
        printf("\n");
    }
}

static void print_metrics(const char *name, const struct preq_metrics *m)
{
    printf("  %-12s %8.4f %8.4f %8.4f", name, m->events ? m->hits / (double)m->events : 0.0,
           m->events ? m->ndcg / (double)m->events : 0.0,
           m->events ? m->rr / (double)m->events : 0.0);
}

/* HR/NDCG/MRR by the user's positives before the scored event: where each
 * model wins (cold users against long histories). */
static void print_buckets(const struct preq_summary *s)
{
    printf("\n  by the user's prior positives: HR@K / NDCG@K / MRR@K\n");
    printf("  %-6s %8s    %-20s    %-20s    %s\n", "prior", "events", "eddy", "popularity",
           "item-kNN");
    for (size_t i = 0; i < PREQ_BUCKETS; i++) {
        const struct preq_bucket *bk = &s->buckets[i];
        const struct preq_metrics *m[3] = {&bk->eddy, &bk->pop, &bk->knn};
        double n = bk->eddy.events ? (double)bk->eddy.events : 1.0;
        printf("  %-6s %8" PRIu64, preq_bucket_label(i), bk->eddy.events);
        for (int k = 0; k < 3; k++)
            printf("    %6.4f/%6.4f/%6.4f", m[k]->hits / n, m[k]->ndcg / n, m[k]->rr / n);
        printf("\n");
    }
}

static void print_summary(struct backtest *b, const struct preq_summary *s)
{
    if (s->eddy.events) {
        printf("\nrecommendations, prequential, %" PRIu64 " scored events, K=%d\n", s->eddy.events,
               s->k);
        printf("  %-12s %8s %8s %8s %9s\n", "model", "HR@K", "NDCG@K", "MRR@K", "coverage");
        const struct preq_metrics *m[3] = {&s->eddy, &s->pop, &s->knn};
        const uint64_t items[3] = {s->eddy_items_recommended, s->pop_items_recommended,
                                   s->knn_items_recommended};
        const char *name[3] = {"eddy", "popularity", "item-kNN"};
        for (int i = 0; i < 3; i++) {
            print_metrics(name[i], m[i]);
            printf(" %9.4f\n",
                   s->catalog_items ? (double)items[i] / (double)s->catalog_items : 0.0);
        }
        print_buckets(s);
    }
    print_campaigns(b);
    if (!b->n_f)
        return;
    printf("\nbidding, Cai et al. protocol, campaign %s (clicks / spend in currency units)\n",
           b->campaign);
    printf("  %-6s %14s %14s %14s %12s\n", "c0", "eddy", "Lin", "oracle", "Lin b0");
    int64_t worst = INT64_MIN;
    for (size_t i = 0; i < b->n_f; i++) {
        const struct fraction *f = &b->f[i];
        printf("  %-6s %5" PRIu64 " / %6.0f %5" PRIu64 " / %6.0f %5" PRIu64 " / %6.0f %12.4f\n",
               f->label, f->eddy.clicks, (double)f->eddy.spend_micros / 1e6, f->lin.clicks,
               (double)f->lin.spend_micros / 1e6, f->oracle.clicks,
               (double)f->oracle.spend_micros / 1e6, f->lin_b0 / 1e6);
        const struct bid_result *r[3] = {&f->eddy, &f->lin, &f->oracle};
        for (int k = 0; k < 3; k++)
            worst = r[k]->max_overspend_micros > worst ? r[k]->max_overspend_micros : worst;
    }
    printf("  worst episode overspend of any policy: %" PRId64 " micros (%s)\n", worst,
           worst <= 0 ? "no episode overspent" : "OVERSPENT");
}

int backtest_report(struct backtest *b, const char *dir, const char *title,
                    const struct report_kv *config, size_t n_config,
                    const struct report_kv *run, size_t n_run, char *err, size_t errlen)
{
    struct preq_summary s;
    preq_summary(b->preq, &s);
    /* Campaigns stay in the order they first appeared: the log's, and the
     * fractions' order under the protocol. */
    size_t n_c = HASH_COUNT(b->camps), i = 0;
    struct report_campaign *rc = xcalloc((n_c + 1) * sizeof *rc);
    for (struct camp *c = b->camps; c; c = c->hh.next, i++) {
        if (c->r.max_overspend_micros == INT64_MIN)
            c->r.max_overspend_micros = 0;
        rc[i] = (struct report_campaign){c->id, c->r, c->points, c->n_points};
    }
    struct report_fraction rf[MAX_FRACTIONS];
    for (i = 0; i < b->n_f; i++) {
        bid_result_finish(&b->f[i].eddy);
        rf[i] = (struct report_fraction){b->f[i].label, b->f[i].c0, b->f[i].lin_b0,
                                         b->f[i].eddy, b->f[i].lin, b->f[i].oracle,
                                         &b->f[i].train, &b->f[i].shown};
    }
    struct report r = {title, config, n_config, run, n_run, s.eddy.events ? &s : NULL,
                       rc, n_c, rf, b->n_f};
    char json[4096], html[4096];
    snprintf(json, sizeof json, "%s/report.json", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    int rv = report_write_json(&r, json, err, errlen) || report_write_html(&r, html, err, errlen);
    if (!rv)
        print_summary(b, &s);
    free(rc);
    return rv ? -1 : 0;
}
