/* kafka.h: librdkafka client construction from eddy's config, and the
 * embedded mock cluster, for the Kafka sources and sink (source_kafka.c,
 * source_kafka_range.c, sink_kafka.c), `eddy broker`, `eddy gen` and
 * `replay --speed`: the only places that touch librdkafka. */
#ifndef EDDY_KAFKA_H
#define EDDY_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "pipeline/run/config.h"

/* A conf with `defaults` (key, value pairs), then bootstrap.servers and every
 * kafka.* pass-through key set. Errors name the key but never echo its value
 * (it may be a secret). Caller owns the conf. */
rd_kafka_conf_t *kafka_conf_new(const struct eddy_config *cfg, const char *const (*defaults)[2],
                                size_t n_defaults, char *err, size_t errlen);
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                   char *err, size_t errlen);

typedef int kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque);

/* The producer eddy (and `eddy gen`) writes with: idempotent, small
 * linger. opaque is passed to the callbacks; stats_cb (optional) gets
 * librdkafka's statistics every second. */
rd_kafka_t *kafka_producer_new(const struct eddy_config *cfg,
                               void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                               kafka_stats_cb *stats_cb, void *opaque, char *err, size_t errlen);

/* Queues a copy of one record for topic and partition (RD_KAFKA_PARTITION_UA:
 * librdkafka's partitioner picks it from the key; key may be NULL). A full
 * local queue is waited out in place, serving delivery reports with
 * rd_kafka_poll() until there is room: the client's message.timeout.ms
 * bounds that wait, because librdkafka fails (and reports) queued records
 * it cannot deliver in time, which makes room. Returns 0, or the error that
 * kept the record from being queued, for the caller to report; delivery
 * errors come later, to the delivery report callback. */
rd_kafka_resp_err_t kafka_produce_copy(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       const void *key, size_t key_len, const void *value,
                                       size_t len);

/* What eddy reads from a librdkafka statistics document (every second). */
struct kafka_stats {
    int brokers_up;         /* brokers in state UP; -1: the document did not parse */
    int64_t queued_bytes;   /* messages held: the producer's queue, the consumer's prefetch */
};

void kafka_stats_read(const char *json, size_t len, struct kafka_stats *out);

/* An in-process mock cluster with eddy's topics created. Caller frees with
 * kafka_mock_free(). */
struct kafka_mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *cluster;
};
int kafka_mock_new(struct kafka_mock *m, const struct eddy_config *cfg, int brokers,
                   int partitions, char *err, size_t errlen);
const char *kafka_mock_bootstraps(const struct kafka_mock *m);
void kafka_mock_free(struct kafka_mock *m);

#endif
