/* replay.c: see replay.h. One thread, no event loop: the log is read, run
 * through the operator chain and checkpointed as fast as the parts go. */
#include "pipeline/replay.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backtest/backtest.h"
#include "operators/budget.h"
#include "operators/embeddings.h"
#include "pipeline/chain.h"
#include "pipeline/codec.h"
#include "pipeline/eventlog.h"
#include "pipeline/kafka.h"
#include "pipeline/kafkasource.h"
#include "pipeline/log.h"
#include "pipeline/logsource.h"
#include "state/state.h"

#define POSITION_TOPIC "replay" /* the log position, as an offset in the state */
#define OUTPUTS_BLOB "replay.outputs"
#define BLOCK_SIZE (64 * 1024)

enum { OUT_RECS, OUT_DECS, N_OUT };

static const char *const out_names[N_OUT] = {"recommendations.avro", "decisions.avro"};
static const enum eddy_record_type out_types[N_OUT] = {REC_RECOMMENDATION, REC_DECISION};

/* An output file, appended to and truncated back to its checkpointed
 * length after a crash. */
struct outfile {
    char *path;
    avro_file_writer_t fw;
    uint64_t records;
};

struct replay {
    const struct eddy_config *cfg;
    const struct replay_options *o;
    struct eddy_state *st;
    struct eddy_codec *codec;
    struct op_chain ops;
    struct eddy_emit emit;
    struct backtest *bt;
    struct logsource *src;       /* the stream: log files ... */
    struct kafkasource *ksrc;    /* ... or a Kafka range */
    struct outfile out[N_OUT];
    rd_kafka_t *producer;        /* to_kafka */
    uint64_t position;           /* log events consumed */
    uint64_t resumed_at;
    uint64_t since_checkpoint;
    int64_t wm_click, wm_ad;     /* watermarks: highest event time per clock input */
    int64_t first_ms, last_ms;
    uint64_t by_kind[3], rejected, produce_errors;
    double t0;
    double last_progress;
    bool failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- outputs ------------------------------------------------------------- */

static int out_open(struct outfile *f, const char *dir, int i, uint64_t keep_bytes,
                    uint64_t keep_records, char *err, size_t errlen)
{
    if (asprintf(&f->path, "%s/%s", dir, out_names[i]) < 0) {
        f->path = NULL;
        return errf(err, errlen, "out of memory");
    }
    f->records = keep_records;
    if (keep_bytes) { /* resume: drop what was written after the checkpoint */
        if (truncate(f->path, (off_t)keep_bytes))
            return errf(err, errlen, "%s: cannot truncate to the checkpoint: %s", f->path,
                        strerror(errno));
        if (avro_file_writer_open_bs(f->path, &f->fw, BLOCK_SIZE))
            return errf(err, errlen, "%s: %s", f->path, avro_strerror());
        return 0;
    }
    if (eventlog_ocf_create(f->path, out_types[i], "deflate", err, errlen))
        return -1;
    if (avro_file_writer_open_bs(f->path, &f->fw, BLOCK_SIZE))
        return errf(err, errlen, "%s: %s", f->path, avro_strerror());
    return 0;
}

static void out_close(struct outfile *f)
{
    if (f->fw)
        avro_file_writer_close(f->fw);
    free(f->path);
    *f = (struct outfile){0};
}

/* The blob: per output file, its length and record count at the checkpoint. */
struct out_mark {
    uint64_t bytes, records;
};

static int out_flush(struct replay *r, struct out_mark marks[N_OUT])
{
    for (int i = 0; i < N_OUT; i++) {
        struct stat sb;
        if (avro_file_writer_flush(r->out[i].fw) || stat(r->out[i].path, &sb)) {
            log_error("%s: cannot flush: %s", r->out[i].path, avro_strerror());
            return -1;
        }
        marks[i] = (struct out_mark){(uint64_t)sb.st_size, r->out[i].records};
    }
    return 0;
}

/* Produces a copy of buf, waiting for room when the local queue is full
 * (kafka.h): a replay never drops a record. Returns the error that kept it
 * from being queued; delivery errors are counted by on_delivery(). */
static rd_kafka_resp_err_t produce(rd_kafka_t *p, const char *topic, struct eddy_str key,
                                   const void *buf, size_t len)
{
    return kafka_produce_copy(p, topic, RD_KAFKA_PARTITION_UA, key.ptr, key.len, buf, len);
}

/* Appends the encoded record to its file (a bare body), or produces it
 * (framed). */
static void emit_record(struct replay *r, int i, struct eddy_str key, const void *record)
{
    const void *buf;
    size_t len;
    char err[256];
    struct eddy_codec *c = r->codec;
    int rc = r->producer ? codec_encode(c, out_types[i], record, &buf, &len, err, sizeof err)
                         : codec_encode_body(c, out_types[i], record, &buf, &len, err, sizeof err);
    if (rc) {
        log_error("encode: %s", err);
        r->failed = true;
        return;
    }
    if (r->producer) {
        const char *topic = i == OUT_RECS ? r->cfg->topic_recommendations : r->cfg->topic_decisions;
        rd_kafka_resp_err_t e = produce(r->producer, topic, key, buf, len);
        if (e) {
            log_error("output to %s failed: %s", topic, rd_kafka_err2str(e));
            r->failed = true;
        }
        return;
    }
    if (avro_file_writer_append_encoded(r->out[i].fw, buf, (int64_t)len)) {
        log_error("%s: %s", r->out[i].path, avro_strerror());
        r->failed = true;
        return;
    }
    r->out[i].records++;
}

static void on_recommendation(void *ctx, const struct recommendation *rec)
{
    emit_record(ctx, OUT_RECS, rec->user_id, rec);
}

static void on_decision(void *ctx, const struct budget_decision *d)
{
    struct replay *r = ctx;
    if (r->bt)
        backtest_decision(r->bt, d);
    emit_record(r, OUT_DECS, d->campaign_id, d);
}

static void on_rejected(void *ctx, const char *op, const char *reason)
{
    struct replay *r = ctx;
    r->rejected++;
    log_warn("%s rejected a record: %s", op, reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct replay *r = opaque;
    if (m->err && r->produce_errors++ == 0)
        log_error("output to %s failed: %s", rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

/* --to-kafka: as in `eddy run`, a checkpoint must not cover outputs the
 * broker has not acknowledged. The wait is bounded by the producer's
 * message.timeout.ms, after which librdkafka fails what is left. */
static int outputs_delivered(struct replay *r)
{
    rd_kafka_flush(r->producer, -1);
    if (!r->produce_errors)
        return 0;
    log_error("%" PRIu64 " outputs were not delivered: stopping without a checkpoint",
              r->produce_errors);
    return -1;
}

/* ---- checkpoints ----------------------------------------------------------- */

static int checkpoint(struct replay *r, bool durable)
{
    char err[512];
    struct out_mark marks[N_OUT];
    chain_checkpoint(&r->ops);
    if (r->producer && outputs_delivered(r))
        return -1;
    if (!r->producer) {
        if (out_flush(r, marks))
            return -1;
        state_blob_set(r->st, OUTPUTS_BLOB, marks, sizeof marks);
    }
    state_offset_set(r->st, POSITION_TOPIC, 0, (int64_t)r->position);
    if (state_commit(r->st, err, sizeof err) || (durable && state_sync(r->st, err, sizeof err))) {
        log_error("state commit failed: %s", err);
        return -1;
    }
    r->since_checkpoint = 0;
    return 0;
}

/* Where a previous replay into this state stopped, and its outputs then. */
static int resume_point(struct replay *r, struct out_mark marks[N_OUT], char *err,
                        size_t errlen)
{
    memset(marks, 0, N_OUT * sizeof *marks);
    int64_t pos = state_offset_get(r->st, POSITION_TOPIC, 0);
    r->position = pos > 0 ? (uint64_t)pos : 0;
    if (r->position == 0 || r->o->to_kafka)
        return 0;
    void *blob;
    size_t len;
    int rc = state_blob_get(r->st, OUTPUTS_BLOB, &blob, &len);
    if (rc == 0 && len == N_OUT * sizeof *marks)
        memcpy(marks, blob, len);
    if (rc == 0)
        free(blob);
    if (rc != 0 || len != N_OUT * sizeof *marks)
        return errf(err, errlen, "state %s: replay position %" PRIu64 " but no record of the "
                    "output files: resume with --to-kafka, or use a fresh state directory",
                    r->cfg->state_dir, r->position);
    return 0;
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

/* How much of this run's input is done, 0..1; -1 when unknown. (A resumed
 * file replay re-reads what it skips, so that counts as progress too.) */
static double done_fraction(const struct replay *r)
{
    if (r->ksrc) {
        uint64_t size = kafkasource_size(r->ksrc);
        return size > r->resumed_at ? (double)(r->position - r->resumed_at) /
                                          (double)(size - r->resumed_at)
                                    : -1;
    }
    uint64_t total = r->src ? logsource_bytes(r->src) : 0;
    return total ? (double)logsource_bytes_read(r->src) / (double)total : -1;
}

/* "ETA 1m05s" from the progress made since the start of this run. */
static void fmt_eta(const struct replay *r, double secs, char *buf, size_t len)
{
    double f = done_fraction(r);
    if (f <= 0 || secs <= 0) {
        snprintf(buf, len, "ETA -");
        return;
    }
    double eta = secs * (1 - f) / f;
    if (eta < 0)
        eta = 0;
    snprintf(buf, len, "ETA %dm%02ds", (int)eta / 60, (int)eta % 60);
}

static void progress(struct replay *r, bool final)
{
    double now = now_s();
    if (r->o->progress < 0 || (!final && now - r->last_progress < (r->o->progress ? 0.2 : 5)))
        return;
    r->last_progress = now;
    double secs = now - r->t0, rate = (double)(r->position - r->resumed_at) / (secs > 0 ? secs : 1);
    char at[32];
    fmt_time(at, sizeof at, r->last_ms);
    char eta[32];
    fmt_eta(r, secs, eta, sizeof eta);
    if (r->o->progress > 0) {
        fprintf(stderr, "\r%12" PRIu64 " events  %9.0f ev/s  event time %s  %s  ", r->position,
                rate, at, final ? "done\n" : eta);
    } else {
        fprintf(stderr, "replay: %" PRIu64 " events, %.0f ev/s, event time %s, %s\n",
                r->position, rate, at, final ? "done" : eta);
    }
    fflush(stderr);
}

/* ---- the loop ----------------------------------------------------------- */

/* Runs one log event (or its protocol fan-out) through the chain. The
 * watermark moves per event: the log is in event-time order. */
static void run_event(struct replay *r, const struct eddy_event *ev)
{
    const struct eddy_event *evs = ev;
    size_t n = r->bt ? backtest_expand(r->bt, ev, &evs) : 1;
    for (size_t i = 0; i < n; i++) {
        if (r->bt)
            backtest_before(r->bt, &evs[i]);
        chain_process(&r->ops, &evs[i]);
        if (r->bt)
            backtest_after(r->bt, &evs[i]);
    }
    int64_t t = eddy_event_time(ev);
    if (ev->kind == EV_CLICK && t > r->wm_click)
        r->wm_click = t;
    if (ev->kind == EV_AD && t > r->wm_ad)
        r->wm_ad = t;
    if (t != INT64_MIN) {
        if (r->first_ms == INT64_MIN)
            r->first_ms = t;
        r->last_ms = t;
    }
    r->by_kind[ev->kind]++;
}

static int source_next(struct replay *r, struct eddy_event *ev, char *err, size_t errlen)
{
    return r->ksrc ? kafkasource_next(r->ksrc, ev, err, errlen)
                   : logsource_next(r->src, ev, err, errlen);
}

static int replay_loop(struct replay *r, char *err, size_t errlen)
{
    struct eddy_event ev;
    int rc;
    uint64_t skip = r->position;
    for (uint64_t i = 0; i < skip; i++) /* resume: the merge order is deterministic */
        if ((rc = source_next(r, &ev, err, errlen)) <= 0)
            return rc < 0 ? -1 : errf(err, errlen, "the log has fewer events (%" PRIu64 ") than "
                                      "the state's replay position (%" PRIu64 "): another log?",
                                      i, skip);
    while ((rc = source_next(r, &ev, err, errlen)) == 1) {
        run_event(r, &ev);
        r->position++;
        /* Flush per event: operators see the same watermarks however the
         * log is cut into checkpoints. */
        chain_flush(&r->ops, r->wm_click, r->wm_ad);
        if (r->failed)
            return errf(err, errlen, "output failed (see above)");
        if (++r->since_checkpoint >= r->o->checkpoint_events || state_commit_due(r->st))
            if (checkpoint(r, false))
                return errf(err, errlen, "checkpoint failed");
        if ((r->position & 1023) == 0)
            progress(r, false);
    }
    if (rc < 0)
        return -1;
    return checkpoint(r, true) ? errf(err, errlen, "checkpoint failed") : 0;
}

/* ---- set-up -------------------------------------------------------------- */

static int read_auctions(char *const *paths, size_t n, struct auction_log *l, char *err,
                         size_t errlen)
{
    struct logsource *s;
    if (logsource_open(paths, n, &s, err, errlen))
        return -1;
    struct eddy_event ev;
    int rc;
    while ((rc = logsource_next(s, &ev, err, errlen)) == 1)
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
    int rc = read_auctions(r->o->logs, r->o->n_logs, &eval, err, errlen);
    if (!rc && r->o->n_tune_logs)
        rc = read_auctions(r->o->tune_logs, r->o->n_tune_logs, &tune, err, errlen);
    if (!rc)
        rc = backtest_protocol(r->bt, r->o->fractions, &eval, r->o->n_tune_logs ? &tune : NULL,
                               err, errlen);
    auction_log_free(&eval);
    auction_log_free(&tune);
    return rc;
}

static int start(struct replay *r, char *err, size_t errlen)
{
    const struct eddy_config *cfg = r->cfg;
    if (r->o->fractions && (!r->o->evaluate || r->o->from_kafka))
        return errf(err, errlen, "--budget-fractions needs the evaluation and log files");
    /* The input first: a bad path creates no output or state directory. */
    int rc = r->o->from_kafka
                 ? kafkasource_open(cfg, r->o->from, r->o->to, &r->ksrc, err, errlen)
                 : logsource_open(r->o->logs, r->o->n_logs, &r->src, err, errlen);
    if (rc)
        return -1;
    if (mkdir(r->o->out_dir, 0777) && errno != EEXIST)
        return errf(err, errlen, "%s: %s", r->o->out_dir, strerror(errno));
    const struct mf_params *mf = config_op_params(cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = cfg->state_dir, .dim = mf->dim,
                               .create_if_missing = true, .cache_bytes = cfg->cache_bytes,
                               .stores = chain_stores};
    rc = state_open(&so, &r->st, err, errlen);
    if (rc == STATE_BUSY)
        return errf(err, errlen, "state %s is in use by another eddy", cfg->state_dir);
    if (rc)
        return -1;
    struct codec_options co = {0};
    if (codec_new(&co, &r->codec, err, errlen))
        return -1;
    struct out_mark marks[N_OUT];
    if (resume_point(r, marks, err, errlen))
        return -1;
    r->resumed_at = r->position;
    if (r->o->to_kafka) {
        r->producer = kafka_producer_new(cfg, on_delivery, NULL, r, err, errlen);
        if (!r->producer)
            return -1;
    } else {
        for (int i = 0; i < N_OUT; i++)
            if (out_open(&r->out[i], r->o->out_dir, i, marks[i].bytes, marks[i].records, err,
                         errlen))
                return -1;
    }
    r->emit = (struct eddy_emit){on_recommendation, on_decision, on_rejected, r};
    if (chain_create(&r->ops, cfg, r->st, &r->emit, err, errlen))
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

static int write_report(struct replay *r, double wall_s, char *err, size_t errlen)
{
    char buf[12][256];
    char from[32], to[32];
    fmt_time(from, sizeof from, r->first_ms);
    fmt_time(to, sizeof to, r->last_ms);
    snprintf(buf[0], sizeof buf[0], "%" PRIu64, r->position);
    snprintf(buf[1], sizeof buf[1], "%" PRIu64, r->by_kind[EV_CLICK]);
    snprintf(buf[2], sizeof buf[2], "%" PRIu64, r->by_kind[EV_AD]);
    snprintf(buf[3], sizeof buf[3], "%" PRIu64, r->by_kind[EV_CAMPAIGN]);
    snprintf(buf[4], sizeof buf[4], "%s to %s UTC", from, to);
    snprintf(buf[5], sizeof buf[5], "%.2f s", wall_s);
    snprintf(buf[6], sizeof buf[6], "%" PRIu64, r->resumed_at);
    snprintf(buf[7], sizeof buf[7], "%" PRIu64, r->out[OUT_RECS].records);
    snprintf(buf[8], sizeof buf[8], "%" PRIu64, r->out[OUT_DECS].records);
    if (r->ksrc)
        snprintf(buf[9], sizeof buf[9], "the input topics, from %s to %s (%" PRIu64
                 " undecodable records skipped)", r->o->from ? r->o->from : "the start",
                 r->o->to ? r->o->to : "the end", kafkasource_skipped(r->ksrc));
    else
        snprintf(buf[9], sizeof buf[9], "%zu log files", logsource_files(r->src));
    struct report_kv run[] = {
        {"input", buf[9]},               {"events", buf[0]},
        {"click events", buf[1]},        {"ad events", buf[2]},
        {"campaign budgets", buf[3]},    {"event time", buf[4]},
        {"wall time", buf[5]},           {"resumed at event", buf[6]},
        {"recommendations written", buf[7]}, {"decisions written", buf[8]},
    };
    size_t n_run = sizeof run / sizeof run[0];
    struct config_list cl = {0};
    config_each_model_value(r->cfg, add_config, &cl);
    char k[16], window[32];
    snprintf(k, sizeof k, "%d", r->o->eval_k);
    snprintf(window, sizeof window, "%" PRIu64, r->o->eval_window);
    add_config(&cl, "replay --k", k);
    add_config(&cl, "replay --window (scored events)", window);
    add_config(&cl, "replay --budget-fractions", r->o->fractions ? r->o->fractions : "(off)");
    int rc = backtest_report(r->bt, r->o->out_dir, "eddy backtest", cl.kv, cl.n, run, n_run,
                             err, errlen);
    config_list_free(&cl);
    return rc;
}

static void finish(struct replay *r)
{
    if (r->producer) {
        rd_kafka_flush(r->producer, 30000);
        rd_kafka_destroy(r->producer);
    }
    for (int i = 0; i < N_OUT; i++)
        out_close(&r->out[i]);
    backtest_free(r->bt);
    chain_destroy(&r->ops);
    logsource_free(r->src);
    kafkasource_free(r->ksrc);
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

static int replay_speed(struct replay *r, char *err, size_t errlen)
{
    struct codec_options co = {0};
    if (codec_new(&co, &r->codec, err, errlen) ||
        logsource_open(r->o->logs, r->o->n_logs, &r->src, err, errlen) ||
        !(r->producer = kafka_producer_new(r->cfg, on_delivery, NULL, r, err, errlen)))
        return -1;
    struct eddy_event ev;
    int rc;
    while ((rc = logsource_next(r->src, &ev, err, errlen)) == 1) {
        int64_t t = eddy_event_time(&ev);
        if (r->first_ms == INT64_MIN && t != INT64_MIN)
            r->first_ms = t;
        pace(r->o->speed, r->first_ms, t, r->t0);
        struct eddy_str key;
        enum eddy_record_type type;
        const char *topic = input_topic(r->cfg, &ev, &key, &type);
        const void *buf;
        size_t len;
        if (codec_encode(r->codec, type, &ev.u, &buf, &len, err, errlen))
            return -1;
        rd_kafka_resp_err_t e = produce(r->producer, topic, key, buf, len);
        if (e)
            return errf(err, errlen, "produce to %s failed: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(r->producer, 0);
        r->last_ms = t != INT64_MIN ? t : r->last_ms;
        r->position++;
        if ((r->position & 1023) == 0)
            progress(r, false);
    }
    if (rc < 0)
        return -1;
    if (rd_kafka_flush(r->producer, 60000) || r->produce_errors)
        return errf(err, errlen, "%" PRIu64 " records were not delivered", r->produce_errors);
    progress(r, true);
    printf("replay: %" PRIu64 " records produced at %gx in %.1f s\n", r->position, r->o->speed,
           now_s() - r->t0);
    return 0;
}

int replay_run(const struct eddy_config *cfg, const struct replay_options *o)
{
    struct replay r = {.cfg = cfg, .o = o, .wm_click = INT64_MIN, .wm_ad = INT64_MIN,
                       .first_ms = INT64_MIN, .last_ms = INT64_MIN};
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
    if (!rc && r.position)
        log_info("resuming the replay after event %" PRIu64, r.position);
    if (!rc)
        rc = replay_loop(&r, err, sizeof err);
    double wall = now_s() - r.t0;
    if (!rc) {
        progress(&r, true);
        printf("replay: %" PRIu64 " events (%" PRIu64 " clicks, %" PRIu64 " ad events, %" PRIu64
               " budgets) in %.2f s, %.0f events/s; %" PRIu64 " recommendations, %" PRIu64
               " decisions%s%s\n",
               r.position, r.by_kind[EV_CLICK], r.by_kind[EV_AD], r.by_kind[EV_CAMPAIGN], wall,
               (double)(r.position - r.resumed_at) / (wall > 0 ? wall : 1),
               r.out[OUT_RECS].records, r.out[OUT_DECS].records,
               o->to_kafka ? "" : " written to ", o->to_kafka ? "" : o->out_dir);
        if (r.rejected)
            printf("replay: %" PRIu64 " records rejected by operators (see the log)\n",
                   r.rejected);
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
