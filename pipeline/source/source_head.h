/* source_head.h: the head of a bounded source (pipeline/source/source.h):
 * its first n records, in the order it hands them out, then its end. For
 * `eddy replay --first N|P%` (pipeline/run/replay.h): tuning on the head of
 * a log without the rest reaching the operators, the evaluation or the
 * outputs. */
#ifndef EDDY_SOURCE_HEAD_H
#define EDDY_SOURCE_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/source/source.h"

/* A source that hands out the first n (> 0) records of inner and then
 * ends; it owns inner (its free frees inner). describe adds ", first n
 * events" to inner's line. NULL when out of memory (inner is then freed). */
struct eddy_source *headsource_wrap(struct eddy_source *inner, uint64_t n);

/* Counts the records of a bounded source by taking them all (for a
 * percentage of a log); the source is spent afterwards. 0, or -1 with err. */
int source_count(struct eddy_source *s, uint64_t *n, char *err, size_t errlen);

/* The first pct percent (0 < pct <= 100) of total records, rounded down. */
uint64_t head_of_percent(uint64_t total, double pct);

#endif
