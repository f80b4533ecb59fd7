/* runtime.h: the live pipeline, the event-loop driver. One libuv loop
 * drives the live Kafka source (pipeline/source/source_kafka.h) and the topic sink
 * (pipeline/sink/sink_kafka.h) by their event descriptors, a 100 ms housekeeping
 * timer, SIGINT/SIGTERM and the HTTP endpoint. Input records are decoded by
 * the source and run through the operators by the driver core that
 * `eddy replay` uses too (pipeline/run/driver.h: driver_batch()), and at every
 * checkpoint, once every output is acknowledged, the state and the offsets
 * it covers are committed in one RocksDB WriteBatch (driver_commit()); only
 * then are the offsets committed to Kafka (for lag monitoring: RocksDB is
 * the source of truth). */
#ifndef EDDY_RUNTIME_H
#define EDDY_RUNTIME_H

#include <stdbool.h>

#include "schemas/records.h"
#include "pipeline/run/config.h"
#include "pipeline/run/metrics.h"

/* Optional hooks, called on the loop thread (the demo prints from them). */
struct runtime_observer {
    void (*recommendation)(void *ctx, const struct recommendation *rec);
    void (*decision)(void *ctx, const struct budget_decision *dec);
    /* Polled every housekeeping tick; returning true stops the pipeline
     * gracefully, as SIGTERM would. */
    bool (*should_stop)(void *ctx, const struct eddy_metrics *m);
    /* Called once after shutdown with the final counters. */
    void (*finished)(void *ctx, const struct eddy_metrics *m);
    void *ctx;
};

/* Exit codes of `eddy run`; docs/design.md says what each asks of an
 * operator. */
enum runtime_exit {
    RUNTIME_OK = 0,
    RUNTIME_ERROR = 1,               /* config, state or Kafka client failure */
    RUNTIME_UNDELIVERED = 3,         /* outputs not acknowledged: no checkpoint past them */
    RUNTIME_OFFSET_OUT_OF_RANGE = 4, /* a stored offset is outside its partition's log */
};

/* Runs until SIGINT/SIGTERM (or observer->should_stop). Returns RUNTIME_OK
 * after a clean shutdown, another runtime_exit after a failure (logged). */
int runtime_run(const struct eddy_config *cfg, const struct runtime_observer *observer);

#endif
