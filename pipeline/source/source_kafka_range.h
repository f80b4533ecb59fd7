/* source_kafka_range.h: the bounded-Kafka-range source (pipeline/source/source.h):
 * a range of eddy's input topics, read as one stream, for
 * `eddy replay --kafka`.
 *
 * Bounds (--from, inclusive; --to, exclusive), each either
 *   a time: milliseconds since the epoch, or UTC "YYYY-MM-DDTHH:MM:SSZ",
 *     meaning per partition the first message whose timestamp is at or
 *     after it: found with librdkafka's offsetsForTimes, and checked on the
 *     message timestamps while reading, which also covers brokers that do
 *     not answer timestamp lookups (librdkafka 2.0's mock cluster), or
 *   offsets: "topic=N" (every partition of the topic) and/or
 *     "topic:partition=N", comma-separated; topics not named keep the
 *     default.
 * Defaults: from the earliest offset; to the end of each partition when the
 * replay starts (its high watermark), so the range is fixed up front.
 *
 * Partitions are merged in event-time order (pipeline/source/merge.h: budgets,
 * which carry no time, first; ties by topic, then partition), so the same
 * range gives the same stream whatever the fetch timing. A record that does
 * not decode is skipped and counted (it is in the DLQ already from the live
 * run). */
#ifndef EDDY_SOURCE_KAFKA_RANGE_H
#define EDDY_SOURCE_KAFKA_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"
#include "pipeline/run/config.h"
#include "pipeline/source/source.h"

/* Opens the range; from and to must outlive the source (its description
 * names them). */
int kafkasource_open(const struct eddy_config *cfg, const char *from, const char *to,
                     struct eddy_source **out, char *err, size_t errlen);

#endif
