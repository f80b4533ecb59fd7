#include "pipeline/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "pipeline/api.h"
#include "pipeline/chain.h"
#include "pipeline/codec.h"
#include "pipeline/http.h"
#include "pipeline/kafka.h"
#include "pipeline/log.h"
#include "state/state.h"

#define BATCH_MAX 2048
#define TICK_MS 100
#define SHUTDOWN_FLUSH_MS 30000
#define STANDBY_RETRY_MS 500

/* Tag carried by each produced message to its delivery report. */
enum out_kind { OUT_RECOMMENDATION = 1, OUT_DECISION, OUT_DLQ };

struct runtime {
    const struct eddy_config *cfg;
    const struct runtime_observer *obs;
    uv_loop_t loop;
    uv_poll_t consumer_poll, producer_poll;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    int consumer_pipe[2], producer_pipe[2];
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *consumer_q, *producer_q;
    rd_kafka_topic_partition_list_t *assigned;  /* our current assignment */
    rd_kafka_topic_partition_list_t *to_commit; /* processed since last checkpoint */
    rd_kafka_topic_partition_list_t *writing;   /* in the state batch being written */
    int64_t reset_offset; /* where a partition with no stored offset starts */
    struct eddy_codec *codec;
    struct eddy_state *st;
    struct http_server *http;
    struct api_ctx api;
    struct eddy_metrics metrics;
    struct op_chain ops;
    struct eddy_emit emit;
    struct partition_clock *clocks;   /* highest event time per input partition */
    size_t n_clocks;
    uint64_t since_checkpoint;        /* input records not yet checkpointed */
    uint64_t last_checkpoint_ms;      /* monotonic */
    uv_timer_t retry_open;            /* standby: waiting for the state's lock */
    bool started, stopping;
    int exit_code;
};

struct partition_clock {
    char topic[256];
    int32_t partition;
    int64_t max_ms;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void begin_shutdown(struct runtime *rt, int exit_code);

/* ---- output ------------------------------------------------------------ */

/* Produces one message; on a full local queue it serves delivery reports
 * and retries, which is eddy's back-pressure. Takes ownership of hdrs. */
static void produce(struct runtime *rt, const char *topic, struct eddy_str key,
                    const void *value, size_t len, enum out_kind kind,
                    rd_kafka_headers_t *hdrs)
{
    rd_kafka_vu_t vu[6] = {
        {.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
        {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key.ptr, key.len}},
        {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)value, len}},
        {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
        {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = (void *)(intptr_t)kind},
        {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hdrs},
    };
    size_t n = hdrs ? 6 : 5;
    for (;;) {
        rd_kafka_error_t *error = rd_kafka_produceva(rt->producer, vu, n);
        if (!error)
            return;
        rd_kafka_resp_err_t code = rd_kafka_error_code(error);
        if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            log_error("produce to %s failed: %s", topic, rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            rt->metrics.produce_errors++;
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return;
        }
        rd_kafka_error_destroy(error);
        rd_kafka_poll(rt->producer, 50);
    }
}

static void emit_encoded(struct runtime *rt, enum eddy_record_type type, const void *record,
                         const char *topic, struct eddy_str key, enum out_kind kind)
{
    const void *buf;
    size_t len;
    char err[256];
    if (codec_encode(rt->codec, type, record, &buf, &len, err, sizeof err)) {
        log_error("cannot encode output for %s: %s", topic, err);
        rt->metrics.produce_errors++;
        return;
    }
    produce(rt, topic, key, buf, len, kind, NULL);
}

static void emit_recommendation(void *ctx, const struct recommendation *rec)
{
    struct runtime *rt = ctx;
    if (rt->obs && rt->obs->recommendation)
        rt->obs->recommendation(rt->obs->ctx, rec);
    emit_encoded(rt, REC_RECOMMENDATION, rec, rt->cfg->topic_recommendations, rec->user_id,
                 OUT_RECOMMENDATION);
}

static void emit_decision(void *ctx, const struct budget_decision *dec)
{
    struct runtime *rt = ctx;
    if (rt->obs && rt->obs->decision)
        rt->obs->decision(rt->obs->ctx, dec);
    emit_encoded(rt, REC_DECISION, dec, rt->cfg->topic_decisions, dec->campaign_id,
                 OUT_DECISION);
}

static void on_rejected(void *ctx, const char *op, const char *reason)
{
    struct runtime *rt = ctx;
    rt->metrics.rejected++;
    log_warn("%s: ignored a record: %s", op, reason);
}

static void send_to_dlq(struct runtime *rt, const rd_kafka_message_t *m, const char *reason)
{
    char partition[16], offset[24];
    snprintf(partition, sizeof partition, "%d", (int)m->partition);
    snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "eddy.reason", -1, reason, -1);
    rd_kafka_header_add(h, "eddy.source.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    rd_kafka_header_add(h, "eddy.source.partition", -1, partition, -1);
    rd_kafka_header_add(h, "eddy.source.offset", -1, offset, -1);
    struct eddy_str key = {m->key, m->key_len};
    produce(rt, rt->cfg->topic_dlq, key, m->payload, m->len, OUT_DLQ, h);
    log_warn("dead-lettered %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset, reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct runtime *rt = opaque;
    if (m->err) {
        rt->metrics.produce_errors++;
        log_error("delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                  rd_kafka_err2str(m->err));
        return;
    }
    switch ((enum out_kind)(intptr_t)m->_private) {
    case OUT_RECOMMENDATION: rt->metrics.recommendations_out++; break;
    case OUT_DECISION: rt->metrics.decisions_out++; break;
    case OUT_DLQ: break;
    }
}

/* ---- input ------------------------------------------------------------- */

static int input_of(const struct runtime *rt, const char *topic, enum eddy_record_type *type)
{
    static const enum eddy_record_type types[IN_COUNT] = {REC_CLICK, REC_AD, REC_CAMPAIGN};
    for (int i = 0; i < IN_COUNT; i++)
        if (!strcmp(topic, rt->metrics.input_topic[i])) {
            *type = types[i];
            return i;
        }
    return -1;
}

/* ---- event-time clocks --------------------------------------------------- */

static struct partition_clock *clock_of(struct runtime *rt, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < rt->n_clocks; i++)
        if (rt->clocks[i].partition == partition && !strcmp(rt->clocks[i].topic, topic))
            return &rt->clocks[i];
    rt->clocks = realloc(rt->clocks, (rt->n_clocks + 1) * sizeof *rt->clocks);
    if (!rt->clocks)
        abort();
    struct partition_clock *c = &rt->clocks[rt->n_clocks++];
    memset(c, 0, sizeof *c); /* saved as raw bytes: no stray padding */
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    c->partition = partition;
    c->max_ms = INT64_MIN;
    return c;
}

/* A topic's watermark: the lowest, over its assigned partitions that have
 * delivered anything, of the highest event time seen. Partitions are read in
 * order, so (with in-order producers) nothing older is still to come. */
static int64_t topic_watermark(const struct runtime *rt, const char *topic)
{
    int64_t wm = INT64_MAX;
    for (size_t i = 0; i < rt->n_clocks; i++) {
        const struct partition_clock *c = &rt->clocks[i];
        if (c->max_ms != INT64_MIN && !strcmp(c->topic, topic) &&
            rd_kafka_topic_partition_list_find(rt->assigned, topic, c->partition) &&
            c->max_ms < wm)
            wm = c->max_ms;
    }
    return wm == INT64_MAX ? INT64_MIN : wm;
}

#define CLOCKS_BLOB "runtime.clocks"

static int clock_cmp(const void *a, const void *b)
{
    const struct partition_clock *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The clocks are saved with every checkpoint so that a restart resumes the
 * same event-time watermarks. Layout: per partition, the clock struct, in
 * (topic, partition) order so that equal clocks give equal bytes. */
static void save_clocks(struct runtime *rt)
{
    if (rt->n_clocks)
        qsort(rt->clocks, rt->n_clocks, sizeof *rt->clocks, clock_cmp);
    state_blob_set(rt->st, CLOCKS_BLOB, rt->clocks, rt->n_clocks * sizeof *rt->clocks);
}

static int restore_clocks(struct runtime *rt, char *err, size_t errlen)
{
    void *blob;
    size_t len;
    int rc = state_blob_get(rt->st, CLOCKS_BLOB, &blob, &len);
    if (rc < 0 || (rc == 0 && len % sizeof *rt->clocks)) {
        snprintf(err, errlen, "state %s: unreadable %s", rt->cfg->state_dir, CLOCKS_BLOB);
        if (rc == 0)
            free(blob);
        return -1;
    }
    if (rc == 0) {
        rt->clocks = blob;
        rt->n_clocks = len / sizeof *rt->clocks;
    }
    return 0;
}

static void note_offset(rd_kafka_topic_partition_list_t *list, const char *topic,
                        int32_t partition, int64_t next)
{
    rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(list, topic, partition);
    if (!p)
        p = rd_kafka_topic_partition_list_add(list, topic, partition);
    p->offset = next;
}

/* Consecutive messages of one partition: the per-partition lookups and the
 * offset and clock bookkeeping are done once per run, not per message. */
struct partition_run {
    rd_kafka_topic_t *rkt;       /* NULL: no run open */
    int32_t partition;
    const char *topic;
    int in;                      /* input index; -1: not ours or not assigned */
    enum eddy_record_type type;
    int64_t next_offset;         /* -1: nothing consumed in this run */
    int64_t max_ms;
};

static void end_run(struct runtime *rt, struct partition_run *r)
{
    if (r->rkt && r->next_offset >= 0) {
        state_offset_set(rt->st, r->topic, r->partition, r->next_offset);
        note_offset(rt->to_commit, r->topic, r->partition, r->next_offset);
        if (r->max_ms != INT64_MIN) {
            struct partition_clock *c = clock_of(rt, r->topic, r->partition);
            if (r->max_ms > c->max_ms)
                c->max_ms = r->max_ms;
        }
    }
    r->rkt = NULL;
}

static void start_run(struct runtime *rt, struct partition_run *r, const rd_kafka_message_t *m)
{
    *r = (struct partition_run){.rkt = m->rkt, .partition = m->partition,
                                .topic = rd_kafka_topic_name(m->rkt), .next_offset = -1,
                                .max_ms = INT64_MIN};
    /* A message fetched before a revoke belongs to the partition's new owner. */
    r->in = rd_kafka_topic_partition_list_find(rt->assigned, r->topic, r->partition)
                ? input_of(rt, r->topic, &r->type)
                : -1;
}

static void handle_message(struct runtime *rt, struct partition_run *r,
                           const rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consumer: %s", rd_kafka_message_errstr(m));
        return;
    }
    if (m->rkt != r->rkt || m->partition != r->partition) {
        end_run(rt, r);
        start_run(rt, r, m);
    }
    if (r->in < 0)
        return;

    struct eddy_event ev;
    char reason[256];
    if (codec_decode(rt->codec, r->type, m->payload, m->len, &ev, reason, sizeof reason)) {
        send_to_dlq(rt, m, reason);
        rt->metrics.dlq[r->in]++;
    } else {
        ev.partition = m->partition;
        chain_process(&rt->ops, &ev);
        int64_t t = eddy_event_time(&ev);
        if (t > r->max_ms)
            r->max_ms = t;
        rt->metrics.events_in[r->in]++;
    }
    r->next_offset = m->offset + 1;
    rt->since_checkpoint++;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Tells Kafka the offsets of a list (for lag monitoring only) and empties it. */
static void kafka_commit(struct runtime *rt, rd_kafka_topic_partition_list_t **list)
{
    if ((*list)->cnt == 0)
        return;
    rd_kafka_resp_err_t e = rd_kafka_commit(rt->consumer, *list, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("offset commit to Kafka failed: %s", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(*list);
    *list = rd_kafka_topic_partition_list_new(8);
}

/* Persists state and offsets atomically (written behind, see state.h);
 * durable waits until they are on disk, for a revoke or a shutdown. Kafka
 * hears of offsets only once RocksDB holds them: state_commit() waited for
 * the previous batch, so that one's offsets go now. A failed state write is
 * fatal: carrying on would acknowledge input whose effect is not durable. */
static int checkpoint(struct runtime *rt, bool durable)
{
    char err[512];
    chain_checkpoint(&rt->ops);
    save_clocks(rt);
    if (state_commit(rt->st, err, sizeof err) ||
        (durable && state_sync(rt->st, err, sizeof err))) {
        log_error("state commit failed: %s", err);
        rt->exit_code = 1;
        begin_shutdown(rt, 1);
        return -1;
    }
    kafka_commit(rt, &rt->writing);
    rd_kafka_topic_partition_list_t *t = rt->writing;
    rt->writing = rt->to_commit;
    rt->to_commit = t;
    if (durable)
        kafka_commit(rt, &rt->writing);
    rt->since_checkpoint = 0;
    rt->last_checkpoint_ms = monotonic_ms();
    rt->metrics.commits++;
    return 0;
}

/* Checkpoints when due by record count or wall time, or sooner when the
 * state's memory budget needs its dirty entries written. */
static void maybe_checkpoint(struct runtime *rt)
{
    if (rt->since_checkpoint == 0)
        return;
    if (rt->since_checkpoint >= (uint64_t)rt->cfg->checkpoint_events ||
        monotonic_ms() - rt->last_checkpoint_ms >= (uint64_t)rt->cfg->checkpoint_interval_ms ||
        state_commit_due(rt->st))
        checkpoint(rt, false);
}

static void process_batch(struct runtime *rt, rd_kafka_message_t **msgs, ssize_t n)
{
    struct partition_run run = {.rkt = NULL};
    for (ssize_t i = 0; i < n; i++)
        handle_message(rt, &run, msgs[i]);
    end_run(rt, &run);
    chain_flush(&rt->ops, topic_watermark(rt, rt->cfg->topic_clicks),
                topic_watermark(rt, rt->cfg->topic_ad_events));
    maybe_checkpoint(rt);

    int64_t now = wall_ms();
    for (ssize_t i = 0; i < n; i++) {
        int64_t ts = rd_kafka_message_timestamp(msgs[i], NULL);
        if (!msgs[i]->err && ts > 0 && now >= ts)
            metrics_observe_latency(&rt->metrics, (double)(now - ts) / 1000.0);
        rd_kafka_message_destroy(msgs[i]);
    }
}

static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void on_consumer_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct runtime *rt = h->data;
    drain_pipe(rt->consumer_pipe[0]);
    /* librdkafka signals only when the queue turns non-empty: drain it all. */
    rd_kafka_message_t *msgs[BATCH_MAX];
    ssize_t n;
    while (!rt->stopping &&
           (n = rd_kafka_consume_batch_queue(rt->consumer_q, 0, msgs, BATCH_MAX)) > 0)
        process_batch(rt, msgs, n);
}

static void on_producer_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct runtime *rt = h->data;
    drain_pipe(rt->producer_pipe[0]);
    while (rd_kafka_poll(rt->producer, 0) > 0)
        ;
}

/* ---- rebalance ---------------------------------------------------------- */

static void on_assign(struct runtime *rt, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                      bool cooperative)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t stored = state_offset_get(rt->st, p->topic, p->partition);
        p->offset = stored >= 0 ? stored : rt->reset_offset;
        rd_kafka_topic_partition_list_add(rt->assigned, p->topic, p->partition);
        log_info("assigned %s[%d] from %s %lld", p->topic, (int)p->partition,
                 stored >= 0 ? "stored offset" : "reset offset", (long long)p->offset);
    }
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            log_error("incremental assign failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, parts);
    }
}

static void on_revoke(struct runtime *rt, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                      bool cooperative)
{
    /* The next owner of a revoked partition may change its entries, so the
     * cached ones go (clean, right after the checkpoint). */
    bool committed = checkpoint(rt, true) == 0;
    for (int i = 0; i < parts->cnt; i++) {
        if (committed && !strcmp(parts->elems[i].topic, rt->cfg->topic_clicks))
            state_cache_drop_users(rt->st, parts->elems[i].partition);
        rd_kafka_topic_partition_list_del(rt->assigned, parts->elems[i].topic,
                                          parts->elems[i].partition);
        log_info("revoked %s[%d]", parts->elems[i].topic, (int)parts->elems[i].partition);
    }
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct runtime *rt = opaque;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(rt, rk, parts, cooperative);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(rt, rk, parts, cooperative);
    } else {
        log_error("rebalance failed: %s", rd_kafka_err2str(err));
        on_revoke(rt, rk, parts, cooperative);
    }
}

/* ---- housekeeping ------------------------------------------------------- */

static int64_t consumer_lag(struct runtime *rt)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_copy(rt->assigned);
    rd_kafka_position(rt->consumer, parts);
    int64_t lag = 0;
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo, hi;
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (rd_kafka_get_watermark_offsets(rt->consumer, p->topic, p->partition, &lo, &hi) ||
            hi < 0) {
            lag = -1; /* not fetched yet: unknown, not zero */
            break;
        }
        /* Before the first fetch the position is unknown: use where we seek to. */
        int64_t pos = p->offset >= 0 ? p->offset : state_offset_get(rt->st, p->topic, p->partition);
        if (pos < 0)
            pos = lo;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

static void on_tick(uv_timer_t *t)
{
    struct runtime *rt = t->data;
    struct state_stats s;
    state_stats(rt->st, &s);
    rt->metrics.state_bytes = s.disk_bytes;
    rt->metrics.state_users = s.users_cached;
    rt->metrics.state_items = s.items;
    rt->metrics.state_campaigns = s.campaigns;
    rt->metrics.cache_hits = s.cache_hits;
    rt->metrics.cache_misses = s.cache_misses;
    rt->metrics.cache_evictions = s.cache_evictions;
    rt->metrics.cache_bytes = s.cache_bytes;
    rt->metrics.dirty_entries = s.dirty;
    rt->metrics.checkpoint_us = s.checkpoint_us;
    rt->metrics.checkpoint_bytes = s.checkpoint_bytes;
    rt->metrics.restore_us = s.restore_us;
    rt->metrics.consumer_lag = consumer_lag(rt);
    rt->metrics.assigned_partitions = (uint64_t)rt->assigned->cnt;
    maybe_checkpoint(rt);
    if (rt->obs && rt->obs->should_stop && rt->obs->should_stop(rt->obs->ctx, &rt->metrics))
        begin_shutdown(rt, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    log_info("received %s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(s->data, 0);
}

/* ---- start and stop ----------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Graceful stop: no more input; flush the producer; persist state and
 * offsets; then leave the group. Also undoes a start that failed part-way.
 * Runs at most once; the loop ends when every handle is closed. */
static void begin_shutdown(struct runtime *rt, int exit_code)
{
    if (rt->stopping)
        return;
    rt->stopping = true;
    rt->exit_code = exit_code;
    if (rt->started) {
        uv_poll_stop(&rt->consumer_poll);
        if (rd_kafka_flush(rt->producer, SHUTDOWN_FLUSH_MS))
            log_error("producer flush timed out: %d messages undelivered",
                      rd_kafka_outq_len(rt->producer));
        if (exit_code == 0 && checkpoint(rt, true) == 0)
            log_info("state and offsets persisted");
    }
    if (rt->consumer)
        rd_kafka_consumer_close(rt->consumer);
    if (rt->http)
        http_stop(rt->http);
    uv_walk(&rt->loop, close_handle, NULL);
}

static int pipe_events(struct runtime *rt, rd_kafka_queue_t *q, int fds[2], uv_poll_t *poll,
                       uv_poll_cb cb)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC)) {
        log_error("pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
    uv_poll_init(&rt->loop, poll, fds[0]);
    poll->data = rt;
    return uv_poll_start(poll, UV_READABLE, cb);
}

static int64_t reset_offset_of(const struct eddy_config *cfg)
{
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (!strcmp(cfg->kafka_props[i].key, "auto.offset.reset")) {
            const char *v = cfg->kafka_props[i].value;
            if (!strcmp(v, "latest") || !strcmp(v, "largest") || !strcmp(v, "end"))
                return RD_KAFKA_OFFSET_END;
        }
    return RD_KAFKA_OFFSET_BEGINNING;
}

static int start_consumer(struct runtime *rt, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},      /* eddy commits after its state */
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
    };
    rd_kafka_conf_t *conf =
        kafka_conf_new(rt->cfg, defaults, sizeof defaults / sizeof defaults[0], err, errlen);
    if (!conf || kafka_conf_set(conf, "group.id", rt->cfg->group_id, err, errlen)) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, rt);
    rt->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!rt->consumer) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_poll_set_consumer(rt->consumer);
    rt->consumer_q = rd_kafka_queue_get_consumer(rt->consumer);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(IN_COUNT);
    for (int i = 0; i < IN_COUNT; i++)
        rd_kafka_topic_partition_list_add(topics, rt->metrics.input_topic[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rt->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "subscribe failed: %s", rd_kafka_err2str(e));
        return -1;
    }
    return pipe_events(rt, rt->consumer_q, rt->consumer_pipe, &rt->consumer_poll,
                       on_consumer_readable);
}

static int start_outputs(struct runtime *rt, char *err, size_t errlen)
{
    rt->producer = kafka_producer_new(rt->cfg, on_delivery, rt, err, errlen);
    if (!rt->producer)
        return -1;
    rt->producer_q = rd_kafka_queue_get_main(rt->producer);
    if (pipe_events(rt, rt->producer_q, rt->producer_pipe, &rt->producer_poll,
                    on_producer_readable))
        return -1;
    if (rt->cfg->registry_url[0] &&
        (codec_register(rt->codec, REC_RECOMMENDATION, rt->cfg->topic_recommendations, err,
                        errlen) ||
         codec_register(rt->codec, REC_DECISION, rt->cfg->topic_decisions, err, errlen)))
        return -1;
    return 0;
}

/* Returns 0, -1 or STATE_BUSY (another process owns the state directory). */
static int open_state(struct runtime *rt, char *err, size_t errlen)
{
    struct state_options so = {
        .dir = rt->cfg->state_dir, .dim = rt->cfg->mf.dim, .create_if_missing = true,
        .cache_bytes = rt->cfg->cache_bytes};
    int rc = state_open(&so, &rt->st, err, errlen);
    return rc ? rc : restore_clocks(rt, err, errlen);
}

static int start_operators(struct runtime *rt, char *err, size_t errlen)
{
    struct codec_options co = {
        .writers_dir = rt->cfg->writers_dir[0] ? rt->cfg->writers_dir : NULL,
        .registry_url = rt->cfg->registry_url[0] ? rt->cfg->registry_url : NULL,
    };
    if (codec_new(&co, &rt->codec, err, errlen))
        return -1;
    rt->emit = (struct eddy_emit){emit_recommendation, emit_decision, on_rejected, rt};
    return chain_create(&rt->ops, rt->cfg, rt->st, &rt->emit, err, errlen);
}

static void start_loop_handles(struct runtime *rt)
{
    uv_signal_init(&rt->loop, &rt->sigint);
    uv_signal_init(&rt->loop, &rt->sigterm);
    rt->sigint.data = rt->sigterm.data = rt;
    uv_signal_start(&rt->sigint, on_signal, SIGINT);
    uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
    uv_timer_init(&rt->loop, &rt->tick);
    uv_timer_init(&rt->loop, &rt->retry_open);
    rt->tick.data = rt->retry_open.data = rt;
}

static int start_http(struct runtime *rt, char *err, size_t errlen)
{
    if (!rt->cfg->http_listen[0])
        return 0;
    rt->api = (struct api_ctx){.st = rt->st, .metrics = &rt->metrics, .k = rt->cfg->rec.k,
                               .healthy = true};
    if (http_start(&rt->loop, rt->cfg->http_listen, api_handle, &rt->api, &rt->http, err, errlen))
        return -1;
    log_info("http: listening on %s", rt->cfg->http_listen);
    return 0;
}

/* Everything after the state is open. */
static void start_pipeline(struct runtime *rt)
{
    char err[512] = "";
    if (start_operators(rt, err, sizeof err) || start_outputs(rt, err, sizeof err) ||
        start_consumer(rt, err, sizeof err) || start_http(rt, err, sizeof err)) {
        log_error("%s", err);
        begin_shutdown(rt, 1);
        return;
    }
    rt->started = true;
    rt->last_checkpoint_ms = monotonic_ms();
    uv_timer_start(&rt->tick, on_tick, TICK_MS, TICK_MS);
    log_info("running: consuming %s, %s, %s from %s as group %s", rt->cfg->topic_clicks,
             rt->cfg->topic_ad_events, rt->cfg->topic_campaigns, rt->cfg->bootstrap_servers,
             rt->cfg->group_id);
}

/* Standby: another eddy process owns the state directory. RocksDB's lock is
 * released when that process exits, however it exits; then this one opens
 * the state, joins the group and resumes from the stored offsets. */
static void on_retry_open(uv_timer_t *t)
{
    struct runtime *rt = t->data;
    char err[512] = "";
    int rc = open_state(rt, err, sizeof err);
    if (rc == STATE_BUSY)
        return;
    uv_timer_stop(t);
    if (rc) {
        log_error("%s", err);
        begin_shutdown(rt, 1);
        return;
    }
    log_info("state directory %s is free now: taking over", rt->cfg->state_dir);
    start_pipeline(rt);
}

static void runtime_free(struct runtime *rt)
{
    if (rt->consumer)
        rd_kafka_queue_destroy(rt->consumer_q), rd_kafka_destroy(rt->consumer);
    if (rt->producer)
        rd_kafka_queue_destroy(rt->producer_q), rd_kafka_destroy(rt->producer);
    for (int i = 0; i < 2; i++) {
        if (rt->consumer_pipe[i] > 0)
            close(rt->consumer_pipe[i]);
        if (rt->producer_pipe[i] > 0)
            close(rt->producer_pipe[i]);
    }
    chain_destroy(&rt->ops);
    if (rt->codec)
        codec_free(rt->codec);
    if (rt->st)
        state_close(rt->st);
    rd_kafka_topic_partition_list_destroy(rt->assigned);
    rd_kafka_topic_partition_list_destroy(rt->to_commit);
    rd_kafka_topic_partition_list_destroy(rt->writing);
    free(rt->clocks);
    uv_loop_close(&rt->loop);
}

int runtime_run(const struct eddy_config *cfg, const struct runtime_observer *observer)
{
    struct runtime rt = {
        .cfg = cfg,
        .obs = observer,
        .consumer_pipe = {-1, -1},
        .producer_pipe = {-1, -1},
        .assigned = rd_kafka_topic_partition_list_new(16),
        .to_commit = rd_kafka_topic_partition_list_new(16),
        .writing = rd_kafka_topic_partition_list_new(16),
        .reset_offset = reset_offset_of(cfg),
        .metrics.input_topic = {cfg->topic_clicks, cfg->topic_ad_events, cfg->topic_campaigns},
        .metrics.consumer_lag = -1,
    };
    char err[512] = "";
    uv_loop_init(&rt.loop);
    start_loop_handles(&rt);
    int rc = open_state(&rt, err, sizeof err);
    if (rc == STATE_BUSY) {
        log_warn("state directory %s is in use by another eddy process: standing by to "
                 "take over when it exits", cfg->state_dir);
        uv_timer_start(&rt.retry_open, on_retry_open, STANDBY_RETRY_MS, STANDBY_RETRY_MS);
    } else if (rc) {
        log_error("%s", err);
        begin_shutdown(&rt, 1);
    } else {
        start_pipeline(&rt);
    }
    uv_run(&rt.loop, UV_RUN_DEFAULT);
    if (observer && observer->finished)
        observer->finished(observer->ctx, &rt.metrics);
    runtime_free(&rt);
    return rt.exit_code;
}
