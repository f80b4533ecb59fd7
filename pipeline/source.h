/* source.h: where input records come from, for the pull driver
 * (pipeline/driver.h: driver_run()).
 *
 * A source hands out decoded records (schemas/records.h) in the order the
 * chain must see them, one at a time, until its input ends. The
 * implementations are
 *   - Avro log files (pipeline/source_logs.h), and
 *   - a bounded range of the input topics (pipeline/source_kafka_range.h),
 * both merged by event time (pipeline/merge.h), so the same input always
 * gives the same stream: the driver's checkpoint stores the number of
 * records taken, and a restart takes (and drops) that many again. The live
 * Kafka source (pipeline/source_kafka.h) has no end and its own position
 * per partition: the event loop of pipeline/runtime.c drives it instead.
 *
 * Each implementation's struct starts with a struct eddy_source, which its
 * open function gives out; ops->free frees the whole. */
#ifndef EDDY_SOURCE_H
#define EDDY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

struct eddy_source;

struct eddy_source_ops {
    /* The next record into *ev: 1, 0 at the end of the input, -1 on an
     * error (err says which record of which input). ev's strings stay
     * valid until the next call. */
    int (*next)(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen);
    /* How much of the input is read, 0..1, or -1 when unknown: for progress
     * estimates. resumed_at records were taken only to resume after. */
    double (*done)(const struct eddy_source *s, uint64_t resumed_at);
    /* One line naming the input, for the replay's report. */
    void (*describe)(const struct eddy_source *s, char *buf, size_t len);
    /* Frees it and everything it holds. */
    void (*free)(struct eddy_source *s);
};

struct eddy_source {
    const struct eddy_source_ops *ops;
};

#endif
