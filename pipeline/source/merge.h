/* merge.h: the order in which replay merges several inputs (log files,
 * Kafka partitions) into one stream. One rule for every source, because a
 * replay's outputs are a function of this order: the input whose next event
 * (its head) has the earliest event time goes first; budgets, which carry no
 * time (eddy_event_time() is INT64_MIN), before any timed event; on equal
 * times, the input listed first. The same inputs therefore always give the
 * same stream, whatever the timing of their reads. */
#ifndef EDDY_MERGE_H
#define EDDY_MERGE_H

#include <stddef.h>
#include <sys/types.h>

#include "schemas/records.h"

/* Input i's head, or NULL when input i has none (it is exhausted). */
typedef const struct eddy_event *merge_head_fn(const void *inputs, size_t i);

/* The next event of the merged stream: copies the head that goes next into
 * *ev and returns its input's index, for the caller to advance that input
 * once ev is used; -1, and ev untouched, when no input of the n has a head. */
ssize_t merge_next(const void *inputs, size_t n, merge_head_fn *head, struct eddy_event *ev);

#endif
