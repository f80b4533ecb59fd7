#include "pipeline/kafka/kafka.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                   char *err, size_t errlen)
{
    char rderr[256];
    if (rd_kafka_conf_set(conf, key, value, rderr, sizeof rderr) != RD_KAFKA_CONF_OK) {
        /* rderr may quote the value; name the key only. */
        snprintf(err, errlen, "kafka property \"%s\" rejected by librdkafka", key);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct eddy_config *cfg, const char *const (*defaults)[2],
                                size_t n_defaults, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* eddy's defaults first, so that kafka.* pass-through keys override them.
     * Nagle held small requests back: with it, latency at 20k events/s had
     * 40-60 ms spikes (TCP's delayed ACK); Kafka's Java client turns it off. */
    if (kafka_conf_set(conf, "socket.nagle.disable", "true", err, errlen))
        goto fail;
    for (size_t i = 0; i < n_defaults; i++)
        if (kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, errlen))
            goto fail;
    if (kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap_servers, err, errlen))
        goto fail;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (kafka_conf_set(conf, cfg->kafka_props[i].key, cfg->kafka_props[i].value, err, errlen))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *kafka_producer_new(const struct eddy_config *cfg,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               kafka_stats_cb *stats_cb, void *opaque, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"linger.ms", "5"},
        {"statistics.interval.ms", "1000"}, /* the last: only with a stats_cb */
    };
    size_t n_defaults = sizeof defaults / sizeof defaults[0] - !stats_cb;
    rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, n_defaults, err, errlen);
    if (!conf)
        return NULL;
    if (dr_cb)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    if (stats_cb)
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes ownership only on success */
    return rk;
}

/* How long one wait for room in a full queue lasts at most; rd_kafka_poll()
 * returns sooner, as soon as it has served a delivery report. */
#define QUEUE_FULL_POLL_MS 10

rd_kafka_resp_err_t kafka_produce_copy(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       const void *key, size_t key_len, const void *value,
                                       size_t len)
{
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                  RD_KAFKA_V_KEY(key, key_len),
                                  RD_KAFKA_V_VALUE((void *)value, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, QUEUE_FULL_POLL_MS);
    return e;
}

/* fetchq_size: bytes fetched and not yet consumed. A group consumer's
 * partitions all forward to its one queue, and each reports that queue's
 * size, so the largest is the total (a sum would count it per partition). */
static int64_t prefetched_bytes(json_t *topics)
{
    int64_t max = 0;
    const char *name, *id;
    json_t *t, *p;
    json_object_foreach(topics, name, t) {
        json_object_foreach(json_object_get(t, "partitions"), id, p) {
            json_int_t size = json_integer_value(json_object_get(p, "fetchq_size"));
            max = size > max ? size : max;
        }
    }
    return max;
}

void kafka_stats_read(const char *json, size_t len, struct kafka_stats *out)
{
    *out = (struct kafka_stats){.brokers_up = -1};
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *brokers = json_object_get(root, "brokers");
    if (json_is_object(brokers)) {
        const char *name;
        json_t *b;
        out->brokers_up = 0;
        json_object_foreach(brokers, name, b)
            out->brokers_up += !strcmp(json_string_value(json_object_get(b, "state")) ?: "", "UP");
        out->queued_bytes = json_integer_value(json_object_get(root, "msg_size")) +
                            prefetched_bytes(json_object_get(root, "topics"));
    }
    json_decref(root);
}

int kafka_mock_new(struct kafka_mock *m, const struct eddy_config *cfg, int brokers,
                   int partitions, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle exists only to own the cluster; keep it quiet. */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_conf_set(conf, "socket.nagle.disable", "true", NULL, 0); /* see kafka_conf_new */
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    m->cluster = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (!m->cluster) {
        snprintf(err, errlen, "cannot start the mock Kafka cluster");
        goto fail;
    }
    const char *topics[] = {cfg->topic_clicks, cfg->topic_ad_events, cfg->topic_campaigns,
                            cfg->topic_recommendations, cfg->topic_decisions, cfg->topic_dlq};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        int n = topics[i] == cfg->topic_campaigns ? 1 : partitions;
        if (rd_kafka_mock_topic_create(m->cluster, topics[i], n, brokers < 3 ? brokers : 3)) {
            snprintf(err, errlen, "cannot create topic %s on the mock cluster", topics[i]);
            goto fail;
        }
    }
    return 0;
fail:
    kafka_mock_free(m);
    return -1;
}

const char *kafka_mock_bootstraps(const struct kafka_mock *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->cluster);
}

void kafka_mock_free(struct kafka_mock *m)
{
    if (m->cluster)
        rd_kafka_mock_cluster_destroy(m->cluster);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    memset(m, 0, sizeof *m);
}
