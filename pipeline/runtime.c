#include "pipeline/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "operators/embeddings.h"
#include "operators/recommend.h"
#include "pipeline/api.h"
#include "pipeline/chain.h"
#include "pipeline/codec.h"
#include "pipeline/http.h"
#include "pipeline/kafka.h"
#include "pipeline/log.h"
#include "state/state.h"

#define BATCH_MAX 2048
#define TICK_MS 100
#define STANDBY_RETRY_MS 500
#define SLICE_MS 20           /* of consuming before the loop serves HTTP and timers */
/* Outputs waiting for acknowledgement past which consuming pauses: half of
 * librdkafka's default queue.buffering.max.messages, so that a batch's
 * outputs still fit and produce() rarely has to wait in place. */
#define UNACKED_HIGH 50000
/* librdkafka fails an output after message.timeout.ms; an output still not
 * acknowledged well past that is stuck (seen once with the idempotent
 * producer after an outage at start) and is failed by eddy. */
#define ACK_GRACE_MS 10000
/* How often freed heap memory is handed back to the kernel (below). */
#define MEMORY_TRIM_MS 10000

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
    rd_kafka_topic_partition_list_t *gaps;      /* reset to the log start from .offset */
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
    uv_idle_t resume;                 /* continues consuming that yielded to the loop */
    uv_work_t open_work;              /* opens the state off the loop */
    int open_rc;
    char open_err[512];
    bool standby;
    bool started, stopping;
    bool checkpoint_waiting;          /* due, waiting for every output to be acknowledged */
    uint64_t waiting_since_ms;
    uint64_t ack_timeout_ms;          /* message.timeout.ms + ACK_GRACE_MS; 0: none */
    bool no_checkpoint;               /* outputs or state failed: store nothing more */
    bool consumer_closed;
    uint64_t shutdown_deadline_ms;    /* monotonic */
    /* Health (monotonic ms; 0: not so) */
    uint64_t last_progress_ms;        /* a record was processed */
    uint64_t last_tick_ms;
    uint64_t last_trim_ms;
    uint64_t loop_stalled_until_ms;   /* /healthz fails until then */
    uint64_t brokers_down_since[2];   /* consumer, producer: none reachable since */
    char state_error[512];            /* the state write that failed, for /healthz */
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
static void on_retry_open(uv_timer_t *t);

/* ---- output ------------------------------------------------------------ */

/* Outputs handed to librdkafka that the broker has not yet acknowledged (nor
 * failed): a checkpoint may store input offsets only when this is zero. */
static int outputs_unacked(const struct runtime *rt)
{
    return rt->producer ? rd_kafka_outq_len(rt->producer) : 0;
}

/* An output that cannot be delivered: its input must be processed again, so
 * no checkpoint may be stored from now on, and eddy stops (check_failed()
 * begins the shutdown from the loop, outside librdkafka's callbacks). */
static void output_failed(struct runtime *rt, const char *topic, const char *why)
{
    rt->metrics.produce_errors++;
    if (rt->no_checkpoint)
        return; /* the first failure was logged; the count is in the metric */
    rt->no_checkpoint = true;
    log_error("output to %s failed: %s; stopping without a checkpoint (exit %d): a restart "
              "reprocesses the input since the last checkpoint",
              topic, why, RUNTIME_UNDELIVERED);
}

static void check_failed(struct runtime *rt)
{
    if (rt->no_checkpoint && !rt->stopping)
        begin_shutdown(rt, rt->state_error[0] ? RUNTIME_ERROR : RUNTIME_UNDELIVERED);
}

/* Produces one message. A full local queue is waited out in place, serving
 * delivery reports (consume_available() pauses long before that normally
 * happens). Takes ownership of hdrs. */
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
    while (!rt->no_checkpoint) {
        rd_kafka_error_t *error = rd_kafka_produceva(rt->producer, vu, n);
        if (!error)
            return; /* the headers belong to the message now */
        rd_kafka_resp_err_t code = rd_kafka_error_code(error);
        if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            output_failed(rt, topic, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rt->producer, 50);
    }
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
}

static void emit_encoded(struct runtime *rt, enum eddy_record_type type, const void *record,
                         const char *topic, struct eddy_str key, enum out_kind kind)
{
    const void *buf;
    size_t len;
    char err[256];
    if (codec_encode(rt->codec, type, record, &buf, &len, err, sizeof err)) {
        output_failed(rt, topic, err);
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

static void add_header_num(rd_kafka_headers_t *h, const char *name, long long v)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", v);
    rd_kafka_header_add(h, name, -1, text, -1);
}

/* The record goes byte for byte with its key, unless the two exceed
 * [kafka] dlq.max.bytes, which the broker would refuse: then the key keeps
 * at most a quarter of the room, the value the rest, and headers give the
 * original sizes. Either way the source's coordinates are in the headers. */
static void send_to_dlq(struct runtime *rt, const rd_kafka_message_t *m, const char *reason)
{
    size_t max = (size_t)rt->cfg->dlq_max_bytes, key_len = m->key_len, len = m->len;
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, "eddy.reason", -1, reason, -1);
    rd_kafka_header_add(h, "eddy.source.topic", -1, rd_kafka_topic_name(m->rkt), -1);
    add_header_num(h, "eddy.source.partition", m->partition);
    add_header_num(h, "eddy.source.offset", m->offset);
    if (key_len + len > max) {
        if (key_len > max / 4)
            key_len = max / 4;
        if (len > max - key_len)
            len = max - key_len;
        add_header_num(h, "eddy.original.value.size", (long long)m->len);
        add_header_num(h, "eddy.original.key.size", (long long)m->key_len);
        rt->metrics.dlq_truncated++;
    }
    struct eddy_str key = {m->key, key_len};
    produce(rt, rt->cfg->topic_dlq, key, m->payload, len, OUT_DLQ, h);
    log_warn("dead-lettered %s[%d]@%lld%s: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset, len < m->len ? " (truncated)" : "", reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct runtime *rt = opaque;
    if (m->err) {
        output_failed(rt, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
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

/* The first record after a reset to the log start tells how many records
 * the reset skipped. */
static void count_gap(struct runtime *rt, const char *topic, int32_t partition, int64_t first)
{
    rd_kafka_topic_partition_t *g = rd_kafka_topic_partition_list_find(rt->gaps, topic, partition);
    if (!g)
        return;
    int64_t gap = first > g->offset ? first - g->offset : 0;
    rt->metrics.offset_gap += (uint64_t)gap;
    log_warn("%s[%d]: skipped %lld records (offsets %lld to %lld, gone from the log), as "
             "[kafka] offset.reset = earliest allows", topic, (int)partition, (long long)gap,
             (long long)g->offset, (long long)first - 1);
    rd_kafka_topic_partition_list_del(rt->gaps, topic, partition);
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
    if (rt->gaps->cnt && r->in >= 0)
        count_gap(rt, r->topic, r->partition, m->offset);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Where a partition starts: at the offset stored with the state, or, if the
 * state has seen nothing of it, at the beginning of its log. Kafka's
 * committed offsets are never used: they would skip input the state never
 * saw. */
static int64_t start_offset(struct runtime *rt, const char *topic, int32_t partition)
{
    int64_t stored = state_offset_get(rt->st, topic, partition);
    return stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
}

/* Where a partition with no record fetched yet restarts: at the log start
 * if it was reset there already and waits for its first record (its stored
 * offset is out of range: going back to it would make two partitions out of
 * range at once reset each other in turn, for good), else where it starts. */
static int64_t resume_offset(struct runtime *rt, const char *topic, int32_t partition)
{
    return rd_kafka_topic_partition_list_find(rt->gaps, topic, partition)
               ? RD_KAFKA_OFFSET_BEGINNING
               : start_offset(rt, topic, partition);
}

static bool cooperative(rd_kafka_t *rk)
{
    return !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
}

/* librdkafka stops fetching a partition whose offset was out of range and
 * refuses to seek it ("Erroneous state"); assigning it again restarts it.
 * Under the eager protocol that means the whole assignment, the others at
 * their positions (messages already handed to eddy are not fetched again). */
static int restart_partition_at(struct runtime *rt, const char *topic, int32_t partition,
                                int64_t offset)
{
    rd_kafka_error_t *e = NULL;
    rd_kafka_topic_partition_list_t *parts;
    if (cooperative(rt->consumer)) {
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = offset;
        e = rd_kafka_incremental_unassign(rt->consumer, parts);
        if (!e)
            e = rd_kafka_incremental_assign(rt->consumer, parts);
    } else {
        parts = rd_kafka_topic_partition_list_copy(rt->assigned);
        rd_kafka_position(rt->consumer, parts);
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            if (p->partition == partition && !strcmp(p->topic, topic))
                p->offset = offset;
            else if (p->offset < 0)
                p->offset = resume_offset(rt, p->topic, p->partition);
        }
        rd_kafka_resp_err_t err = rd_kafka_assign(rt->consumer, parts);
        if (err)
            e = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(parts);
    if (!e)
        return 0;
    log_error("%s[%d]: cannot restart fetching at %lld: %s", topic, (int)partition,
              (long long)offset, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return -1;
}

/* librdkafka reports a fetch offset outside the partition's log (retention
 * passed it, or the topic was recreated) instead of jumping, because eddy
 * sets auto.offset.reset=error. Under [kafka] offset.reset = fail that stops
 * eddy; under earliest it resumes at the log start, and count_gap() counts
 * what was skipped when the first record arrives: the log's bounds may not
 * be known now (a leader moving, say). */
static void on_offset_out_of_range(struct runtime *rt, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    char bounds[128];
    int64_t lo, hi;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rt->consumer, topic, m->partition, &lo, &hi, 5000);
    if (e)
        snprintf(bounds, sizeof bounds, "the log's bounds are unknown (%s)", rd_kafka_err2str(e));
    else
        snprintf(bounds, sizeof bounds, "the log holds offsets %lld to %lld", (long long)lo,
                 (long long)hi - 1);
    if (!rt->cfg->offset_reset_earliest) {
        log_error("%s[%d]: offset %lld is out of range: %s; stopping without skipping anything "
                  "(exit %d). To resume at the log start and accept the gap, set [kafka] "
                  "offset.reset = earliest",
                  topic, (int)m->partition, (long long)m->offset, bounds,
                  RUNTIME_OFFSET_OUT_OF_RANGE);
        begin_shutdown(rt, RUNTIME_OFFSET_OUT_OF_RANGE);
        return;
    }
    log_warn("%s[%d]: offset %lld is out of range (%s): resuming at the log start, as [kafka] "
             "offset.reset = earliest allows", topic, (int)m->partition, (long long)m->offset,
             bounds);
    if (restart_partition_at(rt, topic, m->partition, RD_KAFKA_OFFSET_BEGINNING)) {
        begin_shutdown(rt, RUNTIME_ERROR);
        return;
    }
    /* A partition may be reported again before its first record: the log
     * start moved on meanwhile, or librdkafka reports a fetch of the old
     * assignment. It is restarted again, but it is still the same gap,
     * which starts at the first offset reported and is counted once. */
    rd_kafka_topic_partition_t *g =
        rd_kafka_topic_partition_list_find(rt->gaps, topic, m->partition);
    if (!g) {
        rt->metrics.offset_resets++;
        rd_kafka_topic_partition_list_add(rt->gaps, topic, m->partition)->offset = m->offset;
    }
}

static void on_consumer_error(struct runtime *rt, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && m->rkt) {
        on_offset_out_of_range(rt, m);
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rt->consumer, why, sizeof why);
        log_error("consumer: fatal error: %s", why);
        begin_shutdown(rt, RUNTIME_ERROR);
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log_warn("consumer: %s", rd_kafka_message_errstr(m));
    }
}

static void handle_message(struct runtime *rt, struct partition_run *r,
                           const rd_kafka_message_t *m)
{
    if (m->err) {
        end_run(rt, r); /* the offsets processed so far go with any checkpoint it makes */
        on_consumer_error(rt, m);
        return;
    }
    if (m->rkt != r->rkt || m->partition != r->partition) {
        end_run(rt, r);
        start_run(rt, r, m);
    }
    if (r->in < 0 || rt->stopping)
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
 * durable waits until they are on disk, for a revoke or a shutdown. Callers
 * first make sure every output is acknowledged (outputs_unacked() == 0), so
 * the offsets stored never pass an input whose outputs could still be lost.
 * Kafka hears of offsets only once RocksDB holds them: state_commit() waited
 * for the previous batch, so that one's offsets go now. A failed state write
 * is fatal: carrying on would acknowledge input whose effect is not durable. */
static int checkpoint(struct runtime *rt, bool durable)
{
    char err[512];
    if (rt->no_checkpoint || outputs_unacked(rt) > 0)
        return -1;
    chain_checkpoint(&rt->ops);
    save_clocks(rt);
    if (state_commit(rt->st, err, sizeof err) ||
        (durable && state_sync(rt->st, err, sizeof err))) {
        log_error("state commit failed: %s", err);
        snprintf(rt->state_error, sizeof rt->state_error, "%s", err);
        rt->no_checkpoint = true;
        begin_shutdown(rt, RUNTIME_ERROR);
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

/* Waits up to timeout_ms for every output to be acknowledged, serving
 * delivery reports: before a checkpoint that cannot wait for the loop (a
 * revoke, a shutdown). Returns 0 when all are. */
static int flush_outputs(struct runtime *rt, uint64_t timeout_ms)
{
    if (!rt->no_checkpoint)
        rd_kafka_flush(rt->producer, (int)(timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms));
    int left = outputs_unacked(rt);
    if (left > 0 && !rt->no_checkpoint)
        log_error("%d outputs not acknowledged by the broker within %llu ms", left,
                  (unsigned long long)timeout_ms);
    return left > 0 || rt->no_checkpoint ? -1 : 0;
}

/* Due by record count or wall time, or sooner when the state's memory
 * budget needs its dirty entries written. */
static bool checkpoint_due(const struct runtime *rt)
{
    return rt->since_checkpoint > 0 &&
           (rt->since_checkpoint >= (uint64_t)rt->cfg->checkpoint_events ||
            monotonic_ms() - rt->last_checkpoint_ms >= (uint64_t)rt->cfg->checkpoint_interval_ms ||
            state_commit_due(rt->st));
}

/* A due checkpoint pauses consuming until the outputs of everything
 * consumed so far are acknowledged; the loop serves delivery reports, HTTP
 * and signals meanwhile. finish_checkpoint() writes it once they are. */
static void maybe_checkpoint(struct runtime *rt)
{
    if (!rt->checkpoint_waiting && checkpoint_due(rt)) {
        rt->checkpoint_waiting = true;
        rt->waiting_since_ms = monotonic_ms();
    }
}

/* A checkpoint that has waited past message.timeout.ms (+ a grace) for its
 * acknowledgements will not get them: treated as a failed delivery. */
static void check_ack_timeout(struct runtime *rt)
{
    if (rt->checkpoint_waiting && rt->ack_timeout_ms &&
        monotonic_ms() - rt->waiting_since_ms > rt->ack_timeout_ms) {
        char why[128];
        snprintf(why, sizeof why, "%d outputs not acknowledged within %llu ms",
                 outputs_unacked(rt), (unsigned long long)rt->ack_timeout_ms);
        output_failed(rt, "the output topics", why);
    }
}

static void finish_checkpoint(struct runtime *rt)
{
    if (rt->checkpoint_waiting && !rt->no_checkpoint && outputs_unacked(rt) == 0) {
        rt->checkpoint_waiting = false;
        checkpoint(rt, false);
    }
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
    rt->last_progress_ms = monotonic_ms();
}

/* Consuming pauses for a checkpoint that waits for acknowledgements, and
 * while too many outputs wait for theirs (back-pressure). */
static bool may_consume(const struct runtime *rt)
{
    return rt->started && !rt->stopping && !rt->no_checkpoint && !rt->checkpoint_waiting &&
           outputs_unacked(rt) < UNACKED_HIGH;
}

static void on_resume(uv_idle_t *h);

/* Processes what the consumer queue holds, for at most SLICE_MS at a time
 * so that a backlog does not keep HTTP, timers and signals waiting; the
 * idle handle continues it on the next loop iteration. librdkafka signals
 * the queue's fd only when the queue turns non-empty, so whatever stops
 * early must come back here: the idle handle, or the end of a pause. */
static void consume_available(struct runtime *rt)
{
    rd_kafka_message_t *msgs[BATCH_MAX];
    uint64_t start = monotonic_ms();
    while (may_consume(rt)) {
        ssize_t n = rd_kafka_consume_batch_queue(rt->consumer_q, 0, msgs, BATCH_MAX);
        if (n <= 0)
            break;
        process_batch(rt, msgs, n);
        if (monotonic_ms() - start >= SLICE_MS && may_consume(rt)) {
            uv_idle_start(&rt->resume, on_resume);
            return;
        }
    }
    uv_idle_stop(&rt->resume);
    finish_checkpoint(rt);
    check_failed(rt);
}

static void on_resume(uv_idle_t *h)
{
    consume_available(h->data);
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
    consume_available(rt);
}

/* Delivery reports: they may end a checkpoint's wait or a back-pressure
 * pause, and so resume consuming. */
static void on_producer_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct runtime *rt = h->data;
    drain_pipe(rt->producer_pipe[0]);
    while (rd_kafka_poll(rt->producer, 0) > 0)
        ;
    finish_checkpoint(rt);
    if (may_consume(rt))
        consume_available(rt);
    check_failed(rt);
}

/* ---- rebalance ---------------------------------------------------------- */

static void on_assign(struct runtime *rt, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                      bool incremental)
{
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t stored = state_offset_get(rt->st, p->topic, p->partition);
        p->offset = start_offset(rt, p->topic, p->partition);
        rd_kafka_topic_partition_list_add(rt->assigned, p->topic, p->partition);
        log_info("assigned %s[%d] from %s %lld", p->topic, (int)p->partition,
                 stored >= 0 ? "stored offset" : "the beginning", (long long)p->offset);
    }
    if (incremental) {
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
                      bool incremental)
{
    /* The next owner of a revoked partition may change its entries, so the
     * cached ones go (clean, right after the checkpoint). A revoke that
     * cannot checkpoint leaves them dirty: this process must not write them
     * any more, so it stops, and the new owner reprocesses from the last
     * checkpoint. */
    bool committed = !rt->no_checkpoint &&
                     flush_outputs(rt, (uint64_t)rt->cfg->shutdown_timeout_ms) == 0 &&
                     checkpoint(rt, true) == 0;
    if (!committed && !rt->no_checkpoint) {
        log_error("revoke: cannot checkpoint before giving up partitions: stopping");
        rt->no_checkpoint = true;
    }
    for (int i = 0; i < parts->cnt; i++) {
        if (committed && !strcmp(parts->elems[i].topic, rt->cfg->topic_clicks))
            state_cache_drop_users(rt->st, parts->elems[i].partition);
        rd_kafka_topic_partition_list_del(rt->assigned, parts->elems[i].topic,
                                          parts->elems[i].partition);
        log_info("revoked %s[%d]", parts->elems[i].topic, (int)parts->elems[i].partition);
    }
    if (incremental) {
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
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(rt, rk, parts, cooperative(rk));
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(rt, rk, parts, cooperative(rk));
    } else {
        log_error("rebalance failed: %s", rd_kafka_err2str(err));
        on_revoke(rt, rk, parts, cooperative(rk));
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

/* Broker reachability for /readyz, from librdkafka's statistics: a client
 * is cut off from Kafka while no broker of its is UP. Statistics of the
 * consumer arrive only while it is served, so a pause changes nothing. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct runtime *rt = opaque;
    int up = kafka_stats_brokers_up(json, len);
    uint64_t *since = &rt->brokers_down_since[rd_kafka_type(rk) == RD_KAFKA_PRODUCER];
    if (up > 0)
        *since = 0;
    else if (up == 0 && !*since)
        *since = monotonic_ms();
    return 0; /* librdkafka frees json */
}

static void update_state_metrics(struct runtime *rt)
{
    struct state_stats s;
    state_stats(rt->st, &s);
    rt->metrics.state_bytes = s.disk_bytes;
    rt->metrics.state_users = s.users_cached;
    rt->metrics.state_items = s.items;
    rt->metrics.state_campaigns = s.keyed_cached; /* the one store: campaigns */
    rt->metrics.cache_hits = s.cache_hits;
    rt->metrics.cache_misses = s.cache_misses;
    rt->metrics.cache_evictions = s.cache_evictions;
    rt->metrics.cache_bytes = s.cache_bytes;
    rt->metrics.memtable_bytes = s.memtable_bytes;
    rt->metrics.block_cache_bytes = s.block_cache_bytes;
    rt->metrics.dirty_entries = s.dirty;
    rt->metrics.checkpoint_us = s.checkpoint_us;
    rt->metrics.checkpoint_bytes = s.checkpoint_bytes;
    rt->metrics.restore_us = s.restore_us;
}

static void update_http_metrics(struct runtime *rt)
{
    struct http_stats h = {0};
    if (rt->http)
        http_stats(rt->http, &h);
    rt->metrics.http_connections = h.connections;
    rt->metrics.http_rejected = h.rejected;
    rt->metrics.http_evicted = h.evicted;
}

/* A tick that comes much later than TICK_MS means the loop was stuck in
 * something; /healthz reports it for as long again, so that a probe which
 * lands between two stalls still sees them. */
static void note_loop_stall(struct runtime *rt, uint64_t now)
{
    if (rt->last_tick_ms && now - rt->last_tick_ms > (uint64_t)rt->cfg->loop_stall_ms) {
        log_warn("the event loop was stalled for %llu ms",
                 (unsigned long long)(now - rt->last_tick_ms));
        rt->loop_stalled_until_ms = now + (uint64_t)rt->cfg->loop_stall_ms;
    }
    rt->last_tick_ms = now;
}

/* glibc returns freed memory to the kernel only from the top of a heap, and
 * librdkafka's threads allocate in arenas of their own: after a catch-up,
 * freed messages stay resident for good and RSS shows the peak, not what
 * eddy holds. malloc_trim() releases every arena's free pages. */
static void trim_memory(struct runtime *rt, uint64_t now)
{
#ifdef __GLIBC__
    if (now - rt->last_trim_ms < MEMORY_TRIM_MS)
        return;
    rt->last_trim_ms = now;
    malloc_trim(0);
#else
    (void)rt, (void)now;
#endif
}

static void on_tick(uv_timer_t *t)
{
    struct runtime *rt = t->data;
    uint64_t now = monotonic_ms();
    note_loop_stall(rt, now);
    trim_memory(rt, now);
    update_http_metrics(rt);
    if (!rt->started || rt->stopping)
        return;
    update_state_metrics(rt);
    rt->metrics.consumer_lag = consumer_lag(rt);
    rt->metrics.assigned_partitions = (uint64_t)rt->assigned->cnt;
    rt->metrics.outputs_unacked = (uint64_t)outputs_unacked(rt);
    maybe_checkpoint(rt);
    finish_checkpoint(rt);
    check_ack_timeout(rt);
    if (may_consume(rt))
        consume_available(rt);
    check_failed(rt);
    if (rt->obs && rt->obs->should_stop && rt->obs->should_stop(rt->obs->ctx, &rt->metrics))
        begin_shutdown(rt, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    log_info("received %s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(s->data, 0);
}

/* ---- health ------------------------------------------------------------- */

/* Liveness: false (with the reason) when a restart is what would help. */
static bool is_live(void *ctx, char *why, size_t n)
{
    struct runtime *rt = ctx;
    if (rt->state_error[0]) {
        snprintf(why, n, "state writes fail: %s", rt->state_error);
        return false;
    }
    if (monotonic_ms() < rt->loop_stalled_until_ms) {
        snprintf(why, n, "the event loop stalled for more than %lld ms",
                 (long long)rt->cfg->loop_stall_ms);
        return false;
    }
    return true;
}

static bool brokers_down_too_long(const struct runtime *rt, uint64_t now, char *why, size_t n)
{
    static const char *const client[2] = {"consumer", "producer"};
    for (int i = 0; i < 2; i++) {
        uint64_t since = rt->brokers_down_since[i];
        if (since && now - since > (uint64_t)rt->cfg->broker_timeout_ms) {
            snprintf(why, n, "no Kafka broker reachable by the %s for %llu ms", client[i],
                     (unsigned long long)(now - since));
            return true;
        }
    }
    return false;
}

/* Readiness: false (with the reason) while eddy cannot do its work. */
static bool is_ready(void *ctx, char *why, size_t n)
{
    struct runtime *rt = ctx;
    uint64_t now = monotonic_ms();
    if (rt->stopping) {
        snprintf(why, n, "shutting down");
        return false;
    }
    if (!rt->started) {
        snprintf(why, n, "%s %s", rt->standby ? "standing by for the state directory" :
                 "opening the state in", rt->cfg->state_dir);
        return false;
    }
    if (brokers_down_too_long(rt, now, why, n))
        return false;
    if (rt->metrics.consumer_lag > 0 && now - rt->last_progress_ms > (uint64_t)rt->cfg->stall_timeout_ms) {
        snprintf(why, n, "consumer lag %lld with no record processed for %llu ms%s",
                 (long long)rt->metrics.consumer_lag,
                 (unsigned long long)(now - rt->last_progress_ms),
                 rt->checkpoint_waiting ? " (waiting for outputs to be acknowledged)" : "");
        return false;
    }
    return true;
}

/* ---- start and stop ----------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static uint64_t ms_left(const struct runtime *rt)
{
    uint64_t now = monotonic_ms();
    return now < rt->shutdown_deadline_ms ? rt->shutdown_deadline_ms - now : 0;
}

/* Leaves the group within the shutdown deadline. The revoke this triggers
 * arrives as an event on the queue served here (other events, such as
 * messages still fetched, are dropped: nothing more is processed). A consumer that could not
 * close in time (no broker) is destroyed without closing in runtime_free():
 * the group then notices its absence by the session timeout. */
static void close_consumer(struct runtime *rt)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rt->consumer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(rt->consumer, q);
    if (e) {
        log_warn("consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        while (!rd_kafka_consumer_closed(rt->consumer) && ms_left(rt) > 0) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(ms_left(rt) < 100 ? ms_left(rt) : 100));
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                on_rebalance(rt->consumer, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), rt);
            rd_kafka_event_destroy(ev); /* NULL is fine */
        }
        rt->consumer_closed = rd_kafka_consumer_closed(rt->consumer);
        if (!rt->consumer_closed)
            log_warn("leaving the consumer group timed out after [kafka] "
                     "shutdown.timeout.ms = %lld ms", (long long)rt->cfg->shutdown_timeout_ms);
    }
    rd_kafka_queue_destroy(q);
}

/* Persists state and offsets at a stop, if every output is acknowledged
 * within the deadline; otherwise the stop is an error, and a restart
 * reprocesses from the last checkpoint. */
static void final_checkpoint(struct runtime *rt)
{
    if (rt->no_checkpoint)
        return;
    if (flush_outputs(rt, ms_left(rt)) == 0 && checkpoint(rt, true) == 0) {
        log_info("state and offsets persisted");
        return;
    }
    rt->no_checkpoint = true;
    if (!rt->exit_code)
        rt->exit_code = RUNTIME_UNDELIVERED;
    log_error("outputs not delivered: state and offsets stay at the last checkpoint, and a "
              "restart reprocesses the input since then (exit %d)", rt->exit_code);
}

/* A stop must end within [kafka] shutdown.timeout.ms even where librdkafka
 * would wait longer for a broker that is gone: destroying a consumer whose
 * leave of the group is pending blocks until its requests time out. By the
 * deadline the final checkpoint is written or known to have failed, so
 * exiting at once is as safe as a crash, which recovery handles exactly.
 * One runtime per process: the exit code lives in a global. */
static atomic_int stuck_exit_code;
static atomic_bool stopped; /* runtime_run() returned: nothing is stuck */

static void *shutdown_watchdog(void *arg)
{
    uint64_t ms = (uint64_t)(uintptr_t)arg;
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) && errno == EINTR)
        ;
    if (atomic_load(&stopped))
        return NULL;
    int code = atomic_load(&stuck_exit_code);
    log_error("shutdown took longer than [kafka] shutdown.timeout.ms: exiting now (exit %d)",
              code);
    _exit(code);
    return NULL;
}

static void arm_shutdown_watchdog(struct runtime *rt)
{
    pthread_t t;
    /* Half a second past the deadline: the steps before it use it up. */
    uintptr_t ms = (uintptr_t)rt->cfg->shutdown_timeout_ms + 500;
    atomic_store(&stuck_exit_code, rt->exit_code ? rt->exit_code : RUNTIME_UNDELIVERED);
    if (pthread_create(&t, NULL, shutdown_watchdog, (void *)ms) == 0)
        pthread_detach(t);
}

/* Graceful stop, bounded by [kafka] shutdown.timeout.ms: no more input;
 * wait for outputs; persist state and offsets; then leave the group. Also
 * undoes a start that failed part-way. Runs at most once; the loop ends
 * when every handle is closed. */
static void begin_shutdown(struct runtime *rt, int exit_code)
{
    if (rt->stopping)
        return;
    rt->stopping = true;
    rt->exit_code = exit_code;
    rt->shutdown_deadline_ms = monotonic_ms() + (uint64_t)rt->cfg->shutdown_timeout_ms;
    arm_shutdown_watchdog(rt);
    if (rt->started) {
        uv_poll_stop(&rt->consumer_poll);
        final_checkpoint(rt);
    }
    atomic_store(&stuck_exit_code, rt->exit_code);
    if (rt->consumer)
        close_consumer(rt);
    if (rt->producer && outputs_unacked(rt) > 0) /* else destroying it would wait for them */
        rd_kafka_purge(rt->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
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

static int start_consumer(struct runtime *rt, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},      /* eddy commits after its state */
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        /* Out-of-range offsets come to eddy as errors, never as a silent
         * jump: see on_offset_out_of_range(). */
        {"auto.offset.reset", "error"},
        {"statistics.interval.ms", "1000"}, /* broker reachability for /readyz */
        /* Prefetch a few batches, not librdkafka's 100,000 messages and
         * 64 MB: a catch-up would otherwise fill that much, and the heap
         * keeps the high-water mark (see docs/reliability.md, Soak). */
        {"queued.min.messages", "20000"},
        {"queued.max.messages.kbytes", "16384"},
    };
    rd_kafka_conf_t *conf =
        kafka_conf_new(rt->cfg, defaults, sizeof defaults / sizeof defaults[0], err, errlen);
    if (!conf || kafka_conf_set(conf, "group.id", rt->cfg->group_id, err, errlen)) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
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

static uint64_t ack_timeout_of(rd_kafka_t *producer)
{
    char text[32];
    size_t size = sizeof text;
    unsigned long long ms = 0;
    if (rd_kafka_conf_get(rd_kafka_conf(producer), "message.timeout.ms", text, &size) ==
            RD_KAFKA_CONF_OK)
        ms = strtoull(text, NULL, 10);
    return ms ? ms + ACK_GRACE_MS : 0; /* 0: librdkafka retries forever, so does eddy */
}

static int start_outputs(struct runtime *rt, char *err, size_t errlen)
{
    rt->producer = kafka_producer_new(rt->cfg, on_delivery, on_stats, rt, err, errlen);
    if (!rt->producer)
        return -1;
    rt->producer_q = rd_kafka_queue_get_main(rt->producer);
    rt->ack_timeout_ms = ack_timeout_of(rt->producer);
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
    const struct mf_params *mf = config_op_params(rt->cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = rt->cfg->state_dir, .dim = mf->dim,
                               .create_if_missing = true, .cache_bytes = rt->cfg->cache_bytes,
                               .stores = chain_stores};
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
    uv_idle_init(&rt->loop, &rt->resume);
    rt->tick.data = rt->retry_open.data = rt->resume.data = rt->open_work.data = rt;
    uv_timer_start(&rt->tick, on_tick, TICK_MS, TICK_MS);
}

/* Started before the state opens, so that /healthz answers and /readyz says
 * why eddy is not ready yet while a large state restores. */
static int start_http(struct runtime *rt, char *err, size_t errlen)
{
    static const char *const probes[] = {"/healthz", "/readyz", "/metrics", NULL};
    if (!rt->cfg->http_listen[0])
        return 0;
    const struct rec_params *rec = config_op_params(rt->cfg, &eddy_op_recommend);
    rt->api = (struct api_ctx){.metrics = &rt->metrics, .k = rec->k,
                               .live = is_live, .ready = is_ready, .health_ctx = rt};
    struct http_options ho = {.max_connections = rt->cfg->http_max_connections,
                              .idle_timeout_ms = (uint64_t)rt->cfg->http_idle_timeout_ms,
                              .probe_paths = probes};
    if (http_start(&rt->loop, rt->cfg->http_listen, &ho, api_handle, &rt->api, &rt->http, err,
                   errlen))
        return -1;
    log_info("http: listening on %s", rt->cfg->http_listen);
    return 0;
}

/* Everything after the state is open. */
static void start_pipeline(struct runtime *rt)
{
    char err[512] = "";
    if (start_operators(rt, err, sizeof err) || start_outputs(rt, err, sizeof err) ||
        start_consumer(rt, err, sizeof err)) {
        log_error("%s", err);
        begin_shutdown(rt, RUNTIME_ERROR);
        return;
    }
    rt->api.st = rt->st;
    rt->started = true;
    rt->last_checkpoint_ms = rt->last_progress_ms = monotonic_ms();
    log_info("running: consuming %s, %s, %s from %s as group %s", rt->cfg->topic_clicks,
             rt->cfg->topic_ad_events, rt->cfg->topic_campaigns, rt->cfg->bootstrap_servers,
             rt->cfg->group_id);
}

/* The state opens on a worker thread (restoring a large one takes a while)
 * while the loop serves HTTP and signals. Standby: another eddy process
 * owns the state directory. RocksDB's lock is released when that process
 * exits, however it exits; then this one opens the state, joins the group
 * and resumes from the stored offsets. */
static void open_state_work(uv_work_t *w)
{
    struct runtime *rt = w->data;
    rt->open_rc = open_state(rt, rt->open_err, sizeof rt->open_err);
}

static void on_state_opened(uv_work_t *w, int status)
{
    struct runtime *rt = w->data;
    if (status == UV_ECANCELED || rt->stopping)
        return;
    if (rt->open_rc == STATE_BUSY) {
        if (!rt->standby)
            log_warn("state directory %s is in use by another eddy process: standing by to "
                     "take over when it exits", rt->cfg->state_dir);
        rt->standby = true;
        uv_timer_start(&rt->retry_open, on_retry_open, STANDBY_RETRY_MS, 0);
    } else if (rt->open_rc) {
        log_error("%s", rt->open_err);
        begin_shutdown(rt, RUNTIME_ERROR);
    } else {
        if (rt->standby)
            log_info("state directory %s is free now: taking over", rt->cfg->state_dir);
        start_pipeline(rt);
    }
}

static void open_state_async(struct runtime *rt)
{
    uv_queue_work(&rt->loop, &rt->open_work, open_state_work, on_state_opened);
}

static void on_retry_open(uv_timer_t *t)
{
    open_state_async(t->data);
}

static void runtime_free(struct runtime *rt)
{
    if (rt->consumer) {
        rd_kafka_queue_destroy(rt->consumer_q);
        rd_kafka_destroy_flags(rt->consumer,
                               rt->consumer_closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
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
    rd_kafka_topic_partition_list_destroy(rt->gaps);
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
        .gaps = rd_kafka_topic_partition_list_new(4),
        .metrics.input_topic = {cfg->topic_clicks, cfg->topic_ad_events, cfg->topic_campaigns},
        .metrics.consumer_lag = -1,
    };
    char err[512] = "";
    uv_loop_init(&rt.loop);
    start_loop_handles(&rt);
    if (start_http(&rt, err, sizeof err)) {
        log_error("%s", err);
        begin_shutdown(&rt, RUNTIME_ERROR);
    } else {
        open_state_async(&rt);
    }
    uv_run(&rt.loop, UV_RUN_DEFAULT);
    if (observer && observer->finished)
        observer->finished(observer->ctx, &rt.metrics);
    runtime_free(&rt);
    atomic_store(&stopped, true);
    return rt.exit_code;
}
