/* replay.c: see replay.h. Opens the source, the state and the sink for the
 * driver (pipeline/run/driver.h: driver_run()), evaluates in the same pass,
 * reports. */
#include "pipeline/run/replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backtest/backtest.h"
#include "operators/budget.h"
#include "operators/embeddings.h"
#include "pipeline/codec/codec.h"
#include "pipeline/run/driver.h"
#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"
#include "pipeline/sink/sink_files.h"
#include "pipeline/sink/sink_kafka.h"
#include "pipeline/source/source_head.h"
#include "pipeline/source/source_kafka_range.h"
#include "pipeline/source/source_logs.h"
#include "state/state.h"

struct replay {
    const struct eddy_config *cfg;
    const struct replay_options *o;
    struct eddy_state *st;
    struct eddy_source *src;     /* log files or a Kafka range */
    struct eddy_sink *sink;      /* files or topics */
    struct eddy_sink *files;     /* sink, when it is the files */
    struct driver drv;
    struct backtest *bt;
    struct logsource *log;       /* src, or what src wraps, when it is log files */
    uint64_t first;              /* --first resolved: events replayed at most; 0: all */
    uint64_t counted;            /* with --first P%: the events counted in the input */
    /* --speed */
    struct eddy_codec *codec;
    uint64_t produced, produce_errors;
    double t0;
    double last_progress;
};

/* What the state holds in memory at the end, against its budget. */
static void print_state_memory(struct replay *r)
{
    struct state_stats s;
    char budget[32] = "no budget";
    state_stats(r->st, &s);
    if (r->cfg->cache_bytes)
        snprintf(budget, sizeof budget, "budget %.0f MiB", (double)r->cfg->cache_bytes / 1048576);
    printf("replay: state cache %" PRIu64 " values, %.1f MiB (%s), %" PRIu64
           " evictions; %" PRIu64 " dense rows beside it\n",
           s.cached, (double)s.cache_bytes / 1048576, budget, s.cache_evictions, s.rows);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- progress ----------------------------------------------------------- */

/* An event time for the progress line and the report; "-" before any. */
static void fmt_time(char *buf, size_t len, int64_t ms)
{
    if (ms == INT64_MIN)
        snprintf(buf, len, "-");
    else
        fmt_utc(buf, len, ms, "%Y-%m-%d %H:%M:%S");
}

/* "ETA 1m05s" from the progress made since the start of this run. */
static void fmt_eta(const struct replay *r, double secs, char *buf, size_t len)
{
    double f = r->src ? r->src->ops->done(r->src, r->drv.resumed_at) : -1;
    if (f <= 0 || secs <= 0) {
        snprintf(buf, len, "ETA -");
        return;
    }
    double eta = secs * (1 - f) / f;
    if (eta < 0)
        eta = 0;
    snprintf(buf, len, "ETA %dm%02ds", (int)eta / 60, (int)eta % 60);
}

/* position: events taken from the source; last_ms: the last one's time. */
static void progress(struct replay *r, uint64_t position, int64_t last_ms, bool final)
{
    double now = now_s();
    if (r->o->progress < 0 || (!final && now - r->last_progress < (r->o->progress ? 0.2 : 5)))
        return;
    r->last_progress = now;
    double secs = now - r->t0;
    double rate = (double)(position - r->drv.resumed_at) / (secs > 0 ? secs : 1);
    char at[32];
    fmt_time(at, sizeof at, last_ms);
    char eta[32];
    fmt_eta(r, secs, eta, sizeof eta);
    if (r->o->progress > 0) {
        fprintf(stderr, "\r%12" PRIu64 " events  %9.0f ev/s  event time %s  %s  ", position,
                rate, at, final ? "done\n" : eta);
    } else {
        fprintf(stderr, "replay: %" PRIu64 " events, %.0f ev/s, event time %s, %s\n",
                position, rate, at, final ? "done" : eta);
    }
    fflush(stderr);
}

/* ---- the driver's hooks: the evaluation and progress ------------------------ */

/* Runs one log event, or its protocol fan-out, through the chain, scoring
 * around each. */
static void evaluate_event(void *ctx, struct op_chain *ops, const struct eddy_event *ev)
{
    struct replay *r = ctx;
    const struct eddy_event *evs = ev;
    size_t n = backtest_expand(r->bt, ev, &evs);
    for (size_t i = 0; i < n; i++) {
        backtest_before(r->bt, &evs[i]);
        chain_process(ops, &evs[i]);
        backtest_after(r->bt, &evs[i]);
    }
    backtest_pretrain(r->bt, ops, ev);
}

static void evaluate_decision(void *ctx, const struct budget_decision *d)
{
    struct replay *r = ctx;
    backtest_decision(r->bt, d);
}

static void on_progress(void *ctx)
{
    struct replay *r = ctx;
    progress(r, r->drv.position, r->drv.last_ms, false);
}

/* ---- set-up -------------------------------------------------------------- */

/* The auctions of the first `limit` events (0: all) of the logs. */
static int read_auctions(char *const *paths, size_t n, uint64_t limit, struct auction_log *l,
                         char *err, size_t errlen)
{
    struct logsource *s;
    if (logsource_open(paths, n, &s, err, errlen))
        return -1;
    struct eddy_event ev;
    int rc = 0;
    for (uint64_t taken = 0; (!limit || taken < limit) &&
                             (rc = logsource_next(s, &ev, err, errlen)) == 1; taken++)
        if (auction_log_add(l, &ev, err, errlen)) {
            rc = -1;
            break;
        }
    logsource_free(s);
    return rc < 0 ? -1 : 0;
}

static int start_protocol(struct replay *r, char *err, size_t errlen)
{
    struct auction_log eval = {0}, tune = {0};
    /* Only the head replayed is evaluated: its auctions alone make the
     * protocol's budgets. The tuning logs are other logs, read whole. */
    int rc = read_auctions(r->o->logs, r->o->n_logs, r->first, &eval, err, errlen);
    if (!rc && r->o->n_tune_logs)
        rc = read_auctions(r->o->tune_logs, r->o->n_tune_logs, 0, &tune, err, errlen);
    if (!rc)
        rc = backtest_protocol(r->bt, r->o->fractions, &eval, r->o->n_tune_logs ? &tune : NULL,
                               err, errlen);
    auction_log_free(&eval);
    auction_log_free(&tune);
    return rc;
}

static int open_source(struct replay *r, struct eddy_source **src, struct logsource **log,
                       char *err, size_t errlen)
{
    if (r->o->from_kafka)
        return kafkasource_open(r->cfg, r->o->from, r->o->to, src, err, errlen);
    if (logsource_open(r->o->logs, r->o->n_logs, log, err, errlen))
        return -1;
    *src = logsource_source(*log);
    return 0;
}

/* --first: r->first from a count, or from a percentage of the events the
 * input holds, which a pass over a second copy of the input counts. */
static int resolve_first(struct replay *r, char *err, size_t errlen)
{
    if (r->o->first_pct <= 0) {
        r->first = r->o->first_n;
        return 0;
    }
    struct eddy_source *src = NULL;
    struct logsource *log = NULL;
    if (open_source(r, &src, &log, err, errlen))
        return -1;
    int rc = source_count(src, &r->counted, err, errlen);
    src->ops->free(src);
    if (rc)
        return -1;
    r->first = head_of_percent(r->counted, r->o->first_pct);
    if (!r->first)
        return errf(err, errlen, "--first %g%% of the input's %" PRIu64 " events is no event",
                    r->o->first_pct, r->counted);
    log_info("--first %g%%: the first %" PRIu64 " of %" PRIu64 " events", r->o->first_pct,
             r->first, r->counted);
    return 0;
}

static int open_input(struct replay *r, char *err, size_t errlen)
{
    if (resolve_first(r, err, errlen) || open_source(r, &r->src, &r->log, err, errlen))
        return -1;
    if (r->first && !(r->src = headsource_wrap(r->src, r->first)))
        return errf(err, errlen, "out of memory");
    return 0;
}

/* The outputs, resumed at the state's last checkpoint. */
static int open_output(struct replay *r, char *err, size_t errlen)
{
    if (r->o->to_kafka)
        return sink_kafka_open(r->cfg, &(struct codec_options){0}, NULL, &r->sink, err, errlen);
    if (sink_files_open(r->cfg, r->o->out_dir, r->st, driver_stored_position(r->st), &r->sink,
                        err, errlen))
        return -1;
    r->files = r->sink;
    return 0;
}

static int start(struct replay *r, char *err, size_t errlen)
{
    const struct eddy_config *cfg = r->cfg;
    if (r->o->fractions && (!r->o->evaluate || r->o->from_kafka))
        return errf(err, errlen, "--budget-fractions needs the evaluation and log files");
    /* The input first: a bad path creates no output or state directory. */
    if (open_input(r, err, errlen))
        return -1;
    if (mkdir(r->o->out_dir, 0777) && errno != EEXIST)
        return errf(err, errlen, "%s: %s", r->o->out_dir, strerror(errno));
    const struct mf_params *mf = config_op_params(cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = cfg->state_dir, .dim = mf->dim,
                               .create_if_missing = true, .cache_bytes = cfg->cache_bytes,
                               .stores = chain_stores()};
    int rc = state_open(&so, &r->st, err, errlen);
    if (rc == STATE_BUSY)
        return errf(err, errlen, "state %s is in use by another eddy", cfg->state_dir);
    /* Before the outputs are opened (and truncated to the state's checkpoint). */
    uint64_t at = rc ? 0 : driver_stored_position(r->st);
    if (r->first && at > r->first)
        return errf(err, errlen,
                    "the state %s has replayed %" PRIu64 " events, past --first's %" PRIu64
                    ": give each --first its own state directory",
                    cfg->state_dir, at, r->first);
    if (rc || open_output(r, err, errlen))
        return -1;
    struct driver_hooks hooks = {.process = r->o->evaluate ? evaluate_event : NULL,
                                 .decision = r->o->evaluate ? evaluate_decision : NULL,
                                 .progress = on_progress, .ctx = r};
    if (driver_open(&r->drv, cfg, r->st, r->sink, &hooks, err, errlen))
        return -1;
    if (r->o->evaluate) {
        const struct bid_params *bid = config_op_params(cfg, &eddy_op_budget);
        struct backtest_options bo = {.k = r->o->eval_k, .window_events = r->o->eval_window,
                                      .slots = bid->slots};
        if (!(r->bt = backtest_new(&bo, r->st, err, errlen)))
            return -1;
    }
    return r->o->fractions ? start_protocol(r, err, errlen) : 0;
}

/* ---- the report ------------------------------------------------------------ */

/* The effective configuration as report rows (copies of the values). */
struct config_list {
    struct report_kv kv[64];
    size_t n;
};

static void add_config(void *ctx, const char *key, const char *value)
{
    struct config_list *cl = ctx;
    char *k = strdup(key), *v = strdup(value);
    if (k && v && cl->n < sizeof cl->kv / sizeof cl->kv[0]) {
        cl->kv[cl->n++] = (struct report_kv){k, v};
        return;
    }
    free(k);
    free(v);
}

static void config_list_free(struct config_list *cl)
{
    for (size_t i = 0; i < cl->n; i++) {
        free((char *)cl->kv[i].key);
        free((char *)cl->kv[i].value);
    }
}

/* How many outputs went to files; none are counted when they go to topics. */
static uint64_t written(const struct replay *r, enum eddy_record_type type)
{
    return r->files ? sink_files_records(r->files, type) : 0;
}

static int write_report(struct replay *r, double wall_s, char *err, size_t errlen)
{
    const struct driver *d = &r->drv;
    char buf[12][256];
    char from[32], to[32];
    fmt_time(from, sizeof from, d->first_ms);
    fmt_time(to, sizeof to, d->last_ms);
    snprintf(buf[0], sizeof buf[0], "%" PRIu64, d->position);
    snprintf(buf[1], sizeof buf[1], "%" PRIu64, d->by_kind[EV_CLICK]);
    snprintf(buf[2], sizeof buf[2], "%" PRIu64, d->by_kind[EV_AD]);
    snprintf(buf[3], sizeof buf[3], "%" PRIu64, d->by_kind[EV_CAMPAIGN]);
    snprintf(buf[4], sizeof buf[4], "%s to %s UTC", from, to);
    snprintf(buf[5], sizeof buf[5], "%.2f s", wall_s);
    snprintf(buf[6], sizeof buf[6], "%" PRIu64, d->resumed_at);
    snprintf(buf[7], sizeof buf[7], "%" PRIu64, written(r, REC_RECOMMENDATION));
    snprintf(buf[8], sizeof buf[8], "%" PRIu64, written(r, REC_DECISION));
    r->src->ops->describe(r->src, buf[9], sizeof buf[9]);
    struct report_kv run[] = {
        {"input", buf[9]},               {"events", buf[0]},
        {"click events", buf[1]},        {"ad events", buf[2]},
        {"campaign budgets", buf[3]},    {"event time", buf[4]},
        {"wall time", buf[5]},           {"resumed at event", buf[6]},
        {"recommendations written", buf[7]}, {"decisions written", buf[8]},
    };
    struct report_kv with_first[sizeof run / sizeof run[0] + 1];
    size_t n_run = sizeof run / sizeof run[0];
    char first[96], first_opt[48];
    if (r->first) { /* only then: a report without --first is as it was */
        if (r->o->first_pct > 0) {
            snprintf(first, sizeof first, "%" PRIu64 " of %" PRIu64 " (%g%%)", r->first,
                     r->counted, r->o->first_pct);
            snprintf(first_opt, sizeof first_opt, "%g%%", r->o->first_pct);
        } else {
            snprintf(first, sizeof first, "%" PRIu64, r->first);
            snprintf(first_opt, sizeof first_opt, "%" PRIu64, r->first);
        }
        memcpy(with_first, run, sizeof run);
        with_first[n_run++] = (struct report_kv){"first events (--first)", first};
    }
    struct config_list cl = {0};
    config_each_model_value(r->cfg, add_config, &cl);
    char k[16], window[32];
    snprintf(k, sizeof k, "%d", r->o->eval_k);
    snprintf(window, sizeof window, "%" PRIu64, r->o->eval_window);
    add_config(&cl, "replay --k", k);
    add_config(&cl, "replay --window (scored events)", window);
    add_config(&cl, "replay --budget-fractions", r->o->fractions ? r->o->fractions : "(off)");
    if (r->first)
        add_config(&cl, "replay --first", first_opt);
    int rc = backtest_report(r->bt, r->o->out_dir, "eddy backtest", cl.kv, cl.n,
                             r->first ? with_first : run, n_run, err, errlen);
    config_list_free(&cl);
    return rc;
}

static void finish(struct replay *r)
{
    if (r->sink)
        r->sink->ops->free(r->sink);
    backtest_free(r->bt);
    driver_close(&r->drv);
    if (r->src)
        r->src->ops->free(r->src);
    codec_free(r->codec);
    state_close(r->st);
}

/* ---- --speed: the log into live topics at its own pace ------------------- */

static const char *input_topic(const struct eddy_config *cfg, const struct eddy_event *ev,
                               struct eddy_str *key, enum eddy_record_type *type)
{
    switch (ev->kind) {
    case EV_CLICK:
        *key = ev->u.click.user_id, *type = REC_CLICK;
        return cfg->topic_clicks;
    case EV_AD:
        *key = ev->u.ad.campaign_id, *type = REC_AD;
        return cfg->topic_ad_events;
    default:
        *key = ev->u.campaign.campaign_id, *type = REC_CAMPAIGN;
        return cfg->topic_campaigns;
    }
}

/* Sleeps until the wall time at which event time t is due. */
static void pace(double speed, int64_t first_ms, int64_t t, double start_s)
{
    if (first_ms == INT64_MIN || t == INT64_MIN)
        return;
    double due = start_s + (double)(t - first_ms) / 1000.0 / speed, now = now_s();
    if (due > now) {
        struct timespec ts = {(time_t)(due - now), (long)((due - now - (double)(time_t)(due - now)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static void on_speed_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct replay *r = opaque;
    if (m->err && r->produce_errors++ == 0)
        log_error("output to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

static int produce_log(struct replay *r, rd_kafka_t *producer, char *err, size_t errlen)
{
    struct eddy_event ev;
    int rc = 0;
    int64_t first_ms = INT64_MIN, last_ms = INT64_MIN;
    while ((!r->first || r->produced < r->first) &&
           (rc = logsource_next(r->log, &ev, err, errlen)) == 1) {
        int64_t t = eddy_event_time(&ev);
        if (first_ms == INT64_MIN && t != INT64_MIN)
            first_ms = t;
        pace(r->o->speed, first_ms, t, r->t0);
        struct eddy_str key;
        enum eddy_record_type type;
        const char *topic = input_topic(r->cfg, &ev, &key, &type);
        const void *buf;
        size_t len;
        if (codec_encode(r->codec, type, &ev.u, &buf, &len, err, errlen))
            return -1;
        rd_kafka_resp_err_t e = kafka_produce_copy(producer, topic, RD_KAFKA_PARTITION_UA,
                                                   key.ptr, key.len, buf, len);
        if (e)
            return errf(err, errlen, "produce to %s failed: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(producer, 0);
        last_ms = t != INT64_MIN ? t : last_ms;
        r->produced++;
        if ((r->produced & 1023) == 0)
            progress(r, r->produced, last_ms, false);
    }
    if (rc < 0)
        return -1;
    if (rd_kafka_flush(producer, 60000) || r->produce_errors)
        return errf(err, errlen, "%" PRIu64 " records were not delivered", r->produce_errors);
    progress(r, r->produced, last_ms, true);
    return 0;
}

static int replay_speed(struct replay *r, char *err, size_t errlen)
{
    struct codec_options co = {0};
    if (codec_new(&co, &r->codec, err, errlen) || resolve_first(r, err, errlen) ||
        logsource_open(r->o->logs, r->o->n_logs, &r->log, err, errlen))
        return -1;
    r->src = logsource_source(r->log);
    rd_kafka_t *producer = kafka_producer_new(r->cfg, on_speed_delivery, NULL, r, err, errlen);
    if (!producer)
        return -1;
    int rc = produce_log(r, producer, err, errlen);
    rd_kafka_flush(producer, 30000);
    rd_kafka_destroy(producer);
    if (!rc)
        printf("replay: %" PRIu64 " records produced at %gx in %.1f s\n", r->produced,
               r->o->speed, now_s() - r->t0);
    return rc;
}

int replay_run(const struct eddy_config *cfg, const struct replay_options *o)
{
    struct replay r = {.cfg = cfg, .o = o};
    const struct driver *d = &r.drv;
    char err[1024];
    r.t0 = now_s();
    if (o->speed > 0) {
        int rc = replay_speed(&r, err, sizeof err);
        if (rc)
            log_error("replay: %s", err);
        finish(&r);
        return rc ? 1 : 0;
    }
    int rc = start(&r, err, sizeof err);
    if (!rc && d->position)
        log_info("resuming the replay after event %" PRIu64, d->position);
    if (!rc)
        rc = driver_run(&r.drv, r.src, o->checkpoint_events, err, sizeof err);
    double wall = now_s() - r.t0;
    if (!rc) {
        progress(&r, d->position, d->last_ms, true);
        printf("replay: %" PRIu64 " events (%" PRIu64 " clicks, %" PRIu64 " ad events, %" PRIu64
               " budgets) in %.2f s, %.0f events/s; %" PRIu64 " recommendations, %" PRIu64
               " decisions%s%s\n",
               d->position, d->by_kind[EV_CLICK], d->by_kind[EV_AD], d->by_kind[EV_CAMPAIGN], wall,
               (double)(d->position - d->resumed_at) / (wall > 0 ? wall : 1),
               written(&r, REC_RECOMMENDATION), written(&r, REC_DECISION),
               o->to_kafka ? "" : " written to ", o->to_kafka ? "" : o->out_dir);
        if (d->rejected)
            printf("replay: %" PRIu64 " records rejected by operators (see the log)\n",
                   d->rejected);
        print_state_memory(&r);
    }
    if (!rc && r.bt)
        rc = write_report(&r, wall, err, sizeof err);
    if (!rc && r.bt)
        printf("replay: report in %s/report.html and report.json\n", o->out_dir);
    if (rc)
        log_error("replay: %s", err);
    finish(&r);
    return rc ? 1 : 0;
}
