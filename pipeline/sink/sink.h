/* sink.h: where outputs go. One interface for every output, so that the
 * driver core (pipeline/run/driver.h) writes to any of them and checkpoints
 * them the same way, live or replaying.
 *
 * A sink takes the chain's outputs (a struct recommendation or
 * budget_decision, schemas/records.h) and encodes them itself. The
 * implementations are
 *   - Avro files in a directory (pipeline/sink/sink_files.h), and
 *   - the output topics (pipeline/sink/sink_kafka.h).
 *
 * The checkpoint protocol: the driver calls barrier(), which returns 0 only
 * once everything written so far is durable (a file flushed) or
 * acknowledged (by the broker); then mark(), which puts the sink's own
 * position into the state's pending batch; then it commits that batch with
 * the source's position. A checkpoint therefore never covers an output that
 * could still be lost.
 *
 * Each implementation's struct starts with a struct eddy_sink, which its
 * open function gives out; ops->free frees the whole. */
#ifndef EDDY_SINK_H
#define EDDY_SINK_H

#include <stdint.h>

#include "pipeline/codec/codec.h" /* enum eddy_record_type */
#include "schemas/records.h"

struct eddy_state;
struct eddy_sink;

#define SINK_WAIT_FOREVER UINT64_MAX

struct eddy_sink_ops {
    /* Takes one output of `type` (REC_RECOMMENDATION or REC_DECISION),
     * partitioned by key: 0, or -1 once it cannot (logged). */
    int (*write)(struct eddy_sink *s, enum eddy_record_type type, struct eddy_str key,
                 const void *record);
    /* 0 once every output written so far is durable or acknowledged,
     * waiting for that at most timeout_ms (SINK_WAIT_FOREVER: as long as
     * the sink's own timeouts allow); -1 (logged) when some are not: no
     * checkpoint may follow. */
    int (*barrier)(struct eddy_sink *s, uint64_t timeout_ms);
    /* Sets what a restart resumes the sink from in the state's pending
     * batch (state/state.h: blobs). NULL: nothing to resume (a topic
     * takes duplicates instead). */
    void (*mark)(struct eddy_sink *s, struct eddy_state *st);
    /* Frees it and everything it holds. */
    void (*free)(struct eddy_sink *s);
};

struct eddy_sink {
    const struct eddy_sink_ops *ops;
};

#endif
