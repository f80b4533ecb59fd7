/* driver.h: the core both `eddy run` and `eddy replay` drive: the operator
 * chain between a source and a sink (pipeline/source.h, pipeline/sink.h,
 * pipeline/chain.h), and the checkpoint protocol.
 *
 * The core takes decoded records (driver_process()), runs them through the
 * chain, hands the outputs to the sink, and commits checkpoints
 * (driver_commit()): once the sink's barrier holds (every output so far
 * durable or acknowledged), the sink's mark, the source's position and the
 * operators' state go into one state commit, so a checkpoint never covers
 * an output that could still be lost.
 *
 * How records arrive is the source's: driver_run() pulls from a struct
 * eddy_source until it ends (log files, a Kafka range: `eddy replay`);
 * pipeline/runtime.c calls driver_process() from its event loop as the live
 * Kafka source delivers (`eddy run`).
 *
 * driver_run(): take the next record, run it, flush the chain with the
 * event-time watermarks (per record, so operators see the same watermarks
 * however the input is cut into checkpoints). Every checkpoint_events
 * records (or sooner, when the state's memory budget asks) and at the end, a
 * checkpoint whose source position is the number of records taken. A driver
 * started again on the same state takes and drops that many records first
 * (pull sources give the same order every time) and goes on: exactly-once
 * state, and outputs as the sink guarantees them. */
#ifndef EDDY_DRIVER_H
#define EDDY_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "pipeline/chain.h"
#include "pipeline/config.h"
#include "pipeline/sink.h"
#include "pipeline/source.h"

/* Optional; called on the driver's thread. */
struct driver_hooks {
    /* Runs one record through the chain instead of chain_process(): the
     * replay's evaluation fans an auction out and scores around it. */
    void (*process)(void *ctx, struct op_chain *ops, const struct eddy_event *ev);
    /* See each output before the sink does. */
    void (*recommendation)(void *ctx, const struct recommendation *rec);
    void (*decision)(void *ctx, const struct budget_decision *d);
    /* An operator ignored a record; without the hook it is logged. */
    void (*rejected)(void *ctx, const char *op, const char *reason);
    /* driver_run(): called every 1024 records. */
    void (*progress)(void *ctx);
    void *ctx;
};

struct driver {
    struct eddy_state *st;
    struct eddy_sink *sink;
    struct driver_hooks hooks;
    struct op_chain ops;
    struct eddy_emit emit;
    bool failed;                      /* the sink refused an output */
    uint64_t rejected;                /* records the operators rejected */
    /* driver_run() */
    uint64_t position;                /* records taken from the source */
    uint64_t resumed_at;              /* the position this run started from */
    uint64_t since_checkpoint;
    int64_t wm_click, wm_ad;          /* watermarks: highest event time per clock input */
    int64_t first_ms, last_ms;        /* event time of the first and last timed record */
    uint64_t by_kind[3];              /* records per enum eddy_event_kind */
};

/* driver_run()'s position stored with st's last checkpoint (0: none), which
 * sinks that resume need before the driver opens. */
uint64_t driver_stored_position(struct eddy_state *st);

/* Creates the chain over st, its outputs to sink (which the caller frees
 * after driver_close()); driver_run() continues from the stored position. */
int driver_open(struct driver *d, const struct eddy_config *cfg, struct eddy_state *st,
                struct eddy_sink *sink, const struct driver_hooks *hooks, char *err,
                size_t errlen);

/* One record through the chain. */
void driver_process(struct driver *d, const struct eddy_event *ev);

/* Commits a checkpoint whose outputs the caller has seen through the sink's
 * barrier: the operators' pending state and the sink's mark, with what the
 * caller put into the state's batch (the source's position); durable waits
 * until it is on disk. 0, or -1 with err set. */
int driver_commit(struct driver *d, bool durable, char *err, size_t errlen);

/* Pulls source to its end, checkpointing as above (durably at the end): 0,
 * or -1 with err set (no checkpoint past an output the sink did not take). */
int driver_run(struct driver *d, struct eddy_source *source, uint64_t checkpoint_events,
               char *err, size_t errlen);

/* Destroys the chain. A zeroed driver is a no-op. */
void driver_close(struct driver *d);

#endif
