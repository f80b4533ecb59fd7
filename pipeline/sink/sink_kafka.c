/* sink_kafka.c: see sink_kafka.h. */
#include "pipeline/sink/sink_kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/kafka/kafka.h"
#include "pipeline/run/log.h"

#define QUEUE_FULL_POLL_MS 10
/* librdkafka fails an output after message.timeout.ms; an output still not
 * acknowledged well past that is stuck (seen once with the idempotent
 * producer after an outage at start) and is failed by eddy. */
#define ACK_GRACE_MS 10000

/* Tag carried by each produced message to its delivery report. */
enum out_kind { OUT_DLQ = -1 };  /* else the enum eddy_record_type of an output */

struct kafka_sink {
    struct eddy_sink base;
    const struct eddy_config *cfg;
    struct sink_kafka_hooks hooks;
    rd_kafka_t *producer;
    rd_kafka_queue_t *events;   /* the main queue, signalled on pipe[1] */
    int pipe[2];
    struct eddy_codec *codec;
    uint64_t errors;            /* outputs not queued or not acknowledged */
};

static void fail(struct kafka_sink *ks, const char *topic, const char *why)
{
    if (ks->hooks.failed)
        ks->hooks.failed(ks->hooks.ctx, topic, why);
    else if (ks->errors == 0)
        log_error("output to %s failed: %s", topic, why);
    ks->errors++;
}

static bool given_up(const struct kafka_sink *ks)
{
    return ks->hooks.given_up && ks->hooks.given_up(ks->hooks.ctx);
}

/* Produces a copy of one message, partitioned by its key. A full local
 * queue is waited out in place, serving delivery reports. Takes ownership
 * of hdrs. */
static int produce(struct kafka_sink *ks, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t len, int kind, rd_kafka_headers_t *hdrs)
{
    rd_kafka_vu_t vu[6] = {
        {.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
        {.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, key_len}},
        {.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)value, len}},
        {.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
        {.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = (void *)(intptr_t)kind},
        {.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hdrs},
    };
    size_t n = hdrs ? 6 : 5;
    while (!given_up(ks)) {
        rd_kafka_error_t *error = rd_kafka_produceva(ks->producer, vu, n);
        if (!error)
            return 0; /* the headers belong to the message now */
        rd_kafka_resp_err_t code = rd_kafka_error_code(error);
        if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            fail(ks, topic, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(ks->producer, QUEUE_FULL_POLL_MS);
    }
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    return -1;
}

static const char *topic_of(const struct kafka_sink *ks, enum eddy_record_type type)
{
    return type == REC_DECISION ? ks->cfg->topic_decisions : ks->cfg->topic_recommendations;
}

static int write_record(struct eddy_sink *s, enum eddy_record_type type, struct eddy_str key,
                        const void *record)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    const char *topic = topic_of(ks, type);
    const void *buf;
    size_t len;
    char err[256];
    if (codec_encode(ks->codec, type, record, &buf, &len, err, sizeof err)) {
        fail(ks, topic, err);
        return -1;
    }
    return produce(ks, topic, key.ptr, key.len, buf, len, (int)type, NULL);
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
bool sink_kafka_dead_letter(struct eddy_sink *s, const struct dead_letter *dl)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    size_t max = (size_t)ks->cfg->dlq_max_bytes, key_len = dl->key_len, len = dl->len;
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, "eddy.reason", -1, dl->reason, -1);
    rd_kafka_header_add(h, "eddy.source.topic", -1, dl->topic, -1);
    add_header_num(h, "eddy.source.partition", dl->partition);
    add_header_num(h, "eddy.source.offset", dl->offset);
    bool truncated = key_len + len > max;
    if (truncated) {
        if (key_len > max / 4)
            key_len = max / 4;
        if (len > max - key_len)
            len = max - key_len;
        add_header_num(h, "eddy.original.value.size", (long long)dl->len);
        add_header_num(h, "eddy.original.key.size", (long long)dl->key_len);
    }
    produce(ks, ks->cfg->topic_dlq, dl->key, key_len, dl->value, len, OUT_DLQ, h);
    log_warn("dead-lettered %s[%d]@%lld%s: %s", dl->topic, (int)dl->partition,
             (long long)dl->offset, len < dl->len ? " (truncated)" : "", dl->reason);
    return truncated;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_sink *ks = opaque;
    int kind = (int)(intptr_t)m->_private;
    if (m->err)
        fail(ks, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    else if (kind != OUT_DLQ && ks->hooks.delivered)
        ks->hooks.delivered(ks->hooks.ctx, (enum eddy_record_type)kind);
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    struct kafka_sink *ks = opaque;
    struct kafka_stats k;
    kafka_stats_read(json, len, &k);
    ks->hooks.stats(ks->hooks.ctx, k.brokers_up, k.queued_bytes);
    return 0; /* librdkafka frees json */
}

int sink_kafka_unacked(const struct eddy_sink *s)
{
    const struct kafka_sink *ks = (const struct kafka_sink *)s;
    return rd_kafka_outq_len(ks->producer);
}

static int barrier(struct eddy_sink *s, uint64_t timeout_ms)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    rd_kafka_flush(ks->producer, timeout_ms > INT32_MAX ? -1 : (int)timeout_ms);
    if (ks->errors) { /* hooks->failed, if any, heard of each */
        if (!ks->hooks.failed)
            log_error("%" PRIu64 " outputs were not delivered: stopping without a checkpoint",
                      ks->errors);
        return -1;
    }
    int left = sink_kafka_unacked(s);
    if (left > 0)
        log_error("%d outputs not acknowledged by the broker within %llu ms", left,
                  (unsigned long long)timeout_ms);
    return left > 0 ? -1 : 0;
}

int sink_kafka_events_fd(struct eddy_sink *s)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    if (ks->pipe[0] < 0) {
        if (pipe2(ks->pipe, O_NONBLOCK | O_CLOEXEC)) {
            log_error("pipe: %s", strerror(errno));
            return -1;
        }
        ks->events = rd_kafka_queue_get_main(ks->producer);
        rd_kafka_queue_io_event_enable(ks->events, ks->pipe[1], "1", 1);
    }
    return ks->pipe[0];
}

void sink_kafka_serve(struct eddy_sink *s)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    while (rd_kafka_poll(ks->producer, 0) > 0)
        ;
}

uint64_t sink_kafka_ack_timeout_ms(const struct eddy_sink *s)
{
    const struct kafka_sink *ks = (const struct kafka_sink *)s;
    char text[32];
    size_t size = sizeof text;
    unsigned long long ms = 0;
    if (rd_kafka_conf_get(rd_kafka_conf(ks->producer), "message.timeout.ms", text, &size) ==
            RD_KAFKA_CONF_OK)
        ms = strtoull(text, NULL, 10);
    return ms ? ms + ACK_GRACE_MS : 0; /* 0: librdkafka retries forever, so does eddy */
}

void sink_kafka_purge(struct eddy_sink *s)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    if (sink_kafka_unacked(s) > 0) /* else destroying the producer would wait for them */
        rd_kafka_purge(ks->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

static void sink_free(struct eddy_sink *s)
{
    struct kafka_sink *ks = (struct kafka_sink *)s;
    if (!ks)
        return;
    if (ks->events)
        rd_kafka_queue_destroy(ks->events);
    if (ks->producer) {
        rd_kafka_flush(ks->producer, 30000);
        rd_kafka_destroy(ks->producer);
    }
    for (int i = 0; i < 2; i++)
        if (ks->pipe[i] >= 0)
            close(ks->pipe[i]);
    codec_free(ks->codec);
    free(ks);
}

static const struct eddy_sink_ops kafka_ops = {write_record, barrier, NULL, sink_free};

static int register_schemas(struct kafka_sink *ks, char *err, size_t errlen)
{
    return codec_register(ks->codec, REC_RECOMMENDATION, ks->cfg->topic_recommendations, err,
                          errlen) ||
           codec_register(ks->codec, REC_DECISION, ks->cfg->topic_decisions, err, errlen);
}

int sink_kafka_open(const struct eddy_config *cfg, const struct codec_options *co,
                    const struct sink_kafka_hooks *hooks, struct eddy_sink **out, char *err,
                    size_t errlen)
{
    struct kafka_sink *ks = calloc(1, sizeof *ks);
    *out = NULL;
    if (!ks)
        return errf(err, errlen, "out of memory");
    *ks = (struct kafka_sink){.base.ops = &kafka_ops, .cfg = cfg, .pipe = {-1, -1}};
    if (hooks)
        ks->hooks = *hooks;
    int rc = codec_new(co, &ks->codec, err, errlen);
    if (!rc && !(ks->producer = kafka_producer_new(cfg, on_delivery,
                                                   ks->hooks.stats ? on_stats : NULL, ks,
                                                   err, errlen)))
        rc = -1;
    if (!rc && co->registry_url)
        rc = register_schemas(ks, err, errlen);
    if (rc) {
        sink_free(&ks->base);
        return -1;
    }
    *out = &ks->base;
    return 0;
}
