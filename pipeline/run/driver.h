/* driver.h: the core both `eddy run` and `eddy replay` drive: the operator
 * chain between a source and a sink (pipeline/source/source.h, pipeline/sink/sink.h,
 * pipeline/run/chain.h), and the checkpoint protocol.
 *
 * driver_batch() takes one batch from a struct eddy_source and runs its
 * records through the chain (driver_process()), the outputs going to the
 * sink, then flushes the chain with the event-time watermarks: after every
 * record of a bounded source (its records come in event-time order, and the
 * driver keeps the watermarks), or at the end of what a readiness-driven
 * source fetched together (with the source's watermarks). Inputs that did
 * not decode go to hooks->dead_letter. driver_commit() commits a checkpoint:
 * once the sink's barrier holds (every output so far durable or
 * acknowledged), the source's position (its mark, or the number of records
 * taken), the operators' state and the sink's mark go into one state
 * commit, so a checkpoint never covers an output that could still be lost;
 * then the source hears that it is committed.
 *
 * Who calls them is the one difference between the commands:
 *   - `eddy replay`: driver_run() calls driver_batch() until a bounded
 *     source ends (log files, a Kafka range), and every checkpoint_events
 *     records (or sooner, when the state's memory budget asks) and at the
 *     end waits for the sink's barrier and commits, the position being the
 *     number of records taken (flushing per record, operators see the same
 *     watermarks however the input is cut into checkpoints). A driver
 *     started again on the same state takes and drops that many records
 *     first (bounded sources give the same order every time) and goes on:
 *     exactly-once state, and outputs as the sink guarantees them.
 *   - `eddy run`: pipeline/run/runtime.c calls driver_batch() on the live Kafka
 *     source (pipeline/source/source_kafka.h) from its event loop when the
 *     source's descriptor turns readable, until it is idle, and commits
 *     once the topic sink has no output unacknowledged, waiting for that in
 *     the loop rather than in barrier(). */
#ifndef EDDY_DRIVER_H
#define EDDY_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "pipeline/run/chain.h"
#include "pipeline/run/config.h"
#include "pipeline/sink/sink.h"
#include "pipeline/source/source.h"

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
    /* An input the source could not decode (EDDY_SOURCE_DEAD_LETTER: the
     * live source); without the hook it is logged and dropped. */
    void (*dead_letter)(void *ctx, const struct dead_letter *dl);
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
    uint64_t position;                /* records taken from the source */
    uint64_t resumed_at;              /* the position this run started from */
    uint64_t since_checkpoint;        /* inputs (records, dead letters) not yet committed */
    /* The driver's watermarks (highest event time per clock input), which
     * flush the chain for a source without its own (a bounded source). */
    int64_t wm_click, wm_ad;
    int64_t first_ms, last_ms;        /* event time of the first and last timed record */
    uint64_t by_kind[3];              /* records per enum eddy_event_kind */
};

/* driver_run()'s position stored with st's last checkpoint (0: none), which
 * sinks that resume need before the driver opens. */
uint64_t driver_stored_position(struct eddy_state *st);

/* Creates the chain over st, its outputs to sink (which the caller frees
 * after driver_close()); position starts at the stored one, which
 * driver_run() continues from. */
int driver_open(struct driver *d, const struct eddy_config *cfg, struct eddy_state *st,
                struct eddy_sink *sink, const struct driver_hooks *hooks, char *err,
                size_t errlen);

/* One record through the chain. */
void driver_process(struct driver *d, const struct eddy_event *ev);

/* Takes one batch from source through the chain (see above): returns
 * EDDY_SOURCE_BATCH_END when one went through, EDDY_SOURCE_IDLE when
 * nothing waits, EDDY_SOURCE_END at the end of the input, or
 * EDDY_SOURCE_ERROR with err set. A batch is always taken whole. */
int driver_batch(struct driver *d, struct eddy_source *source, char *err, size_t errlen);

/* How driver_commit() writes: behind the caller (state_commit()), the same
 * and waiting until it is on disk (state_sync()), or in slices that the
 * caller then drives with state_commit_step() (state_commit_begin()). */
enum driver_commit_mode { COMMIT_BEHIND, COMMIT_DURABLE, COMMIT_SLICED };

/* Commits a checkpoint whose outputs the caller has seen through the sink's
 * barrier: source's position (ops->mark, or without one the number of
 * records taken), the operators' pending state and the sink's mark, in one
 * state commit, written as mode says. Then source->ops->committed and
 * since_checkpoint = 0. 0, or -1 with err set (nothing heard of it). */
int driver_commit(struct driver *d, struct eddy_source *source, enum driver_commit_mode mode,
                  char *err, size_t errlen);

/* Takes a bounded source to its end, checkpointing as above (durably at
 * the end): 0, or -1 with err set (no checkpoint past an output the sink
 * did not take). */
int driver_run(struct driver *d, struct eddy_source *source, uint64_t checkpoint_events,
               char *err, size_t errlen);

/* Destroys the chain. A zeroed driver is a no-op. */
void driver_close(struct driver *d);

#endif
