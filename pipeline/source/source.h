/* source.h: where input records come from, for the driver core
 * (pipeline/run/driver.h), in `eddy replay` and `eddy run` alike.
 *
 * A source hands out decoded records (schemas/records.h) in the order the
 * chain must see them, one per call of ops->next. The implementations are
 *   - Avro log files (pipeline/source/source_logs.h),
 *   - a bounded range of the input topics (pipeline/source/source_kafka_range.h),
 *     both merged by event time (pipeline/source/merge.h), so the same input always
 *     gives the same stream, and
 *   - the live input topics as a consumer group member
 *     (pipeline/source/source_kafka.h), which has no end.
 *
 * Bounded sources implement next, done, describe and free, and leave the
 * optional ops NULL: the driver then keeps the event-time watermarks itself
 * (the records come in event-time order), flushes the chain after every
 * record, and stores as the source's position the number of records taken
 * (a restart takes, and drops, that many again: driver_run()).
 *
 * A source driven by readiness (the live one) also implements the optional
 * ops: next returns EDDY_SOURCE_IDLE when nothing waits (wait for events_fd
 * to turn readable), hands out what it fetched at once as a batch that ends
 * with EDDY_SOURCE_BATCH_END (the driver flushes the chain there with the
 * source's watermarks), may hand out inputs that did not decode
 * (EDDY_SOURCE_DEAD_LETTER), and keeps its own position: mark puts it into
 * the state's pending batch for a checkpoint, committed hears that the state
 * holds it.
 *
 * Each implementation's struct starts with a struct eddy_source, which its
 * open function gives out; ops->free frees the whole. */
#ifndef EDDY_SOURCE_H
#define EDDY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

struct eddy_source;
struct eddy_state;

/* What ops->next returns. */
enum {
    EDDY_SOURCE_ERROR = -1,      /* err says which record of which input */
    EDDY_SOURCE_END = 0,         /* the input ended (bounded sources) */
    EDDY_SOURCE_RECORD = 1,      /* *ev is the next record */
    EDDY_SOURCE_DEAD_LETTER = 2, /* the next input did not decode: ops->dead_letter */
    EDDY_SOURCE_BATCH_END = 3,   /* what was fetched together is handed out */
    EDDY_SOURCE_IDLE = 4,        /* nothing waits now: wait for ops->events_fd */
};

/* A record that did not decode, and where it was read: for the dead-letter
 * topic (pipeline/sink/sink_kafka.h: sink_kafka_dead_letter()). */
struct dead_letter {
    const char *reason;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key, *value;
    size_t key_len, len;
};

struct eddy_source_ops {
    /* The next input, one of the EDDY_SOURCE_ codes above; bounded sources
     * return only RECORD, END and ERROR. ev's strings (and a dead letter's
     * bytes) stay valid until the next call. */
    int (*next)(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen);
    /* How much of the input is read, 0..1, or -1 when unknown (a source
     * with no end): for progress estimates. resumed_at records were taken
     * only to resume after. */
    double (*done)(const struct eddy_source *s, uint64_t resumed_at);
    /* One line naming the input, for the replay's report. */
    void (*describe)(const struct eddy_source *s, char *buf, size_t len);
    /* Frees it and everything it holds. */
    void (*free)(struct eddy_source *s);

    /* Optional: NULL for bounded sources. */

    /* A descriptor that turns readable when next would return something
     * other than EDDY_SOURCE_IDLE: read it empty, then call next until it
     * returns EDDY_SOURCE_IDLE (it signals only when inputs start waiting). */
    int (*events_fd)(const struct eddy_source *s);
    /* After EDDY_SOURCE_DEAD_LETTER: the input that did not decode, valid
     * until the next call. Required of a source that returns it. */
    const struct dead_letter *(*dead_letter)(const struct eddy_source *s);
    /* The event-time watermarks of the clicks and ad events (INT64_MIN:
     * none yet), read at EDDY_SOURCE_BATCH_END. Required of a source that
     * returns it. */
    void (*watermarks)(const struct eddy_source *s, int64_t *click, int64_t *ad);
    /* Puts the source's position into st's pending batch, for a checkpoint.
     * NULL: the driver stores the number of records taken. */
    void (*mark)(struct eddy_source *s, struct eddy_state *st);
    /* The state committed the batch of the last mark (durable: and it is
     * on disk). */
    void (*committed)(struct eddy_source *s, bool durable);
};

struct eddy_source {
    const struct eddy_source_ops *ops;
};

#endif
