/* source_kafka.h: the live Kafka source, for `eddy run`: the input topics
 * consumed as a member of the consumer group [kafka] group.id, as a struct
 * eddy_source (pipeline/source/source.h) with the optional ops of a source that
 * has no end and is driven by readiness.
 *
 * ops->events_fd turns readable when messages (or rebalances) wait; the
 * event loop (pipeline/run/runtime.c) reads it empty and calls driver_batch()
 * until it returns EDDY_SOURCE_IDLE. Each ops->next call on an empty batch
 * takes what is fetched (up to 2048 messages, serving rebalances), then
 * hands the messages out one by one: a decoded record
 * (EDDY_SOURCE_RECORD), or one that does not decode
 * (EDDY_SOURCE_DEAD_LETTER, ops->dead_letter: the driver gives it to the
 * runtime's hook, which produces it to the DLQ), skipping error events and
 * messages of partitions no longer assigned, and everything once
 * hooks->stopping; then EDDY_SOURCE_BATCH_END, after which ops->watermarks
 * gives per topic the lowest, over its assigned partitions that have
 * delivered anything, of the highest event time seen (INT64_MIN: none).
 *
 * Positions are per partition: each partition starts at the offset stored
 * with the state (or at the log's start when the state has none: Kafka's
 * committed offsets are never used). The next offset of every partition
 * handed out goes into the state's pending batch as the batch ends (or
 * before an error event is handled), so it goes with any state commit;
 * ops->mark adds the event-time clocks, and ops->committed tells Kafka the
 * offsets once the state holds them (for lag monitoring only). Before
 * partitions are given up in a rebalance, hooks->checkpoint must persist
 * what was processed of them.
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

#include "pipeline/run/config.h"
#include "pipeline/run/metrics.h"
#include "pipeline/source/source.h"
#include "schemas/records.h"

struct eddy_state;
struct source_kafka;

/* Called on the loop thread, from ops->next and source_kafka_close()
 * (rebalances, errors). All are required. */
struct source_kafka_hooks {
    /* Persists state and offsets before partitions are revoked: 0, or -1
     * when it could not (this process must then stop writing state). */
    int (*checkpoint)(void *ctx);
    /* Begins a stop with an exit code (enum runtime_exit). */
    void (*stop)(void *ctx, int exit_code);
    /* True once stopping: records fetched are no longer handed out. */
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

/* s as a struct eddy_source: its free frees s (a consumer that did not
 * leave the group is destroyed without closing). */
struct eddy_source *source_kafka_source(struct source_kafka *s);

/* What is particular to a consumer group member, beside the interface: */

/* Records in the assigned partitions not yet consumed; -1: not known yet. */
int64_t source_kafka_lag(struct source_kafka *s);
int source_kafka_assigned(const struct source_kafka *s);

/* Leaves the group by deadline_ms (monotonic); the revoke this brings is
 * served here. */
void source_kafka_close(struct source_kafka *s, uint64_t deadline_ms);

#endif
