/* source_kafka.h: the live Kafka source, for `eddy run`: the input topics
 * consumed as a member of the consumer group [kafka] group.id.
 *
 * Unlike the bounded sources (pipeline/source.h), which the driver pulls
 * from until they end, this one is driven by an event loop: its descriptor
 * turns readable when records wait, and source_kafka_consume() then decodes
 * a batch and hands each record to hooks->process; records that do not
 * decode go to hooks->dead_letter. Positions are per partition: each
 * partition starts at the offset stored with the state (or at the log's
 * start when the state has none: Kafka's committed offsets are never used),
 * source_kafka_mark() puts the offsets processed (they go with every state
 * commit) and the event-time clocks into the state's pending batch, and
 * source_kafka_committed() tells Kafka the offsets once the state holds them
 * (for lag monitoring only). Before partitions are given up in a rebalance,
 * hooks->checkpoint must persist what was processed of them.
 *
 * A stored offset outside its partition's log stops eddy (hooks->stop with
 * RUNTIME_OFFSET_OUT_OF_RANGE) under [kafka] offset.reset = fail, and
 * resumes at the log start under earliest, counting the records skipped. */
#ifndef EDDY_SOURCE_KAFKA_H
#define EDDY_SOURCE_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pipeline/config.h"
#include "pipeline/metrics.h"
#include "pipeline/sink_kafka.h"
#include "schemas/records.h"

struct eddy_state;
struct source_kafka;

/* Called on the loop thread, from source_kafka_consume() and
 * source_kafka_close() (rebalances). All are required. */
struct source_kafka_hooks {
    void (*process)(void *ctx, const struct eddy_event *ev);
    void (*dead_letter)(void *ctx, const struct dead_letter *dl);
    /* Persists state and offsets before partitions are revoked: 0, or -1
     * when it could not (this process must then stop writing state). */
    int (*checkpoint)(void *ctx);
    /* Begins a stop with an exit code (enum runtime_exit). */
    void (*stop)(void *ctx, int exit_code);
    /* True once stopping: records fetched are no longer processed. */
    bool (*stopping)(void *ctx);
    /* From the consumer's statistics every second: brokers UP (-1:
     * unknown), and bytes fetched ahead of processing. */
    void (*stats)(void *ctx, int brokers_up, int64_t queued_bytes);
    void *ctx;
};

/* Restores the clocks from st, joins the group and subscribes to the input
 * topics (metrics->input_topic). Counters go to metrics: events_in, dlq,
 * offset_resets, offset_gap and the latency histogram. */
int source_kafka_open(const struct eddy_config *cfg, struct eddy_state *st,
                      struct eddy_metrics *metrics, const struct source_kafka_hooks *hooks,
                      struct source_kafka **out, char *err, size_t errlen);

/* Readable when records (or rebalances) wait: read it empty, then call
 * source_kafka_consume() until it returns 0. librdkafka signals only when
 * its queue turns non-empty. */
int source_kafka_events_fd(const struct source_kafka *s);

/* Processes one batch of what is fetched: the number of messages taken, 0
 * when none waited. */
ssize_t source_kafka_consume(struct source_kafka *s);

/* A topic's watermark: the lowest, over its assigned partitions that have
 * delivered anything, of the highest event time seen; INT64_MIN: none. */
int64_t source_kafka_watermark(const struct source_kafka *s, const char *topic);

/* The clocks into the state's pending batch (the offsets are there
 * already), for a checkpoint. */
void source_kafka_mark(struct source_kafka *s);

/* The state committed the batch of the last mark: Kafka hears of the
 * offsets of the batch before it (state_commit() waited for that one's
 * write), or, durable, of this one's too. */
void source_kafka_committed(struct source_kafka *s, bool durable);

/* Records in the assigned partitions not yet consumed; -1: not known yet. */
int64_t source_kafka_lag(struct source_kafka *s);
int source_kafka_assigned(const struct source_kafka *s);

/* Leaves the group by deadline_ms (monotonic); the revoke this brings is
 * served here. */
void source_kafka_close(struct source_kafka *s, uint64_t deadline_ms);

/* NULL is a no-op. */
void source_kafka_free(struct source_kafka *s);

#endif
