/* runtime.h: the live pipeline. One libuv loop drives librdkafka's queue
 * events (consumer and producer), a 100 ms housekeeping timer, SIGINT/SIGTERM
 * and the HTTP endpoint. Input records are decoded, run through the
 * operators, and after every batch the state and the offsets it covers are
 * committed in one RocksDB WriteBatch; only then are the offsets committed
 * to Kafka (for lag monitoring: RocksDB is the source of truth). */
#ifndef EDDY_RUNTIME_H
#define EDDY_RUNTIME_H

#include <stdbool.h>

#include "operators/records.h"
#include "pipeline/config.h"
#include "pipeline/metrics.h"

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

/* Runs until SIGINT/SIGTERM (or observer->should_stop). Returns 0 after a
 * clean shutdown, non-zero after a fatal error (already logged). */
int runtime_run(const struct eddy_config *cfg, const struct runtime_observer *observer);

#endif
