/* metrics.h: counters and a latency histogram, rendered as Prometheus text.
 * Updated on the loop thread only; read by the HTTP handler on that thread. */
#ifndef EDDY_METRICS_H
#define EDDY_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metrics_input { IN_CLICKS, IN_AD_EVENTS, IN_CAMPAIGNS, IN_COUNT };

#define METRICS_LAT_BUCKETS 14

struct eddy_metrics {
    const char *input_topic[IN_COUNT];
    uint64_t events_in[IN_COUNT];
    uint64_t dlq[IN_COUNT];
    uint64_t recommendations_out, decisions_out;   /* delivered */
    uint64_t produce_errors;                        /* outputs not delivered: eddy stops */
    uint64_t outputs_unacked;                       /* waiting for the broker */
    uint64_t dlq_truncated;
    uint64_t offset_resets, offset_gap;             /* under offset.reset = earliest */
    uint64_t http_connections, http_rejected, http_evicted;
    uint64_t rejected;                              /* decoded, but an operator could not apply it */
    uint64_t commits;
    int64_t consumer_lag;                           /* sum over assigned partitions, -1 unknown */
    uint64_t assigned_partitions;
    uint64_t state_bytes, state_users, state_items, state_campaigns;
    uint64_t cache_hits, cache_misses, cache_evictions, cache_bytes, dirty_entries;
    uint64_t memtable_bytes, block_cache_bytes;
    uint64_t consumer_queued_bytes, producer_queued_bytes; /* librdkafka's, every second */
    uint64_t heap_in_use_bytes, heap_free_bytes;           /* malloc's, after each trim */
    uint64_t checkpoint_us, checkpoint_bytes, restore_us;
    uint64_t lat_bucket[METRICS_LAT_BUCKETS];       /* non-cumulative counts */
    uint64_t lat_count;
    double lat_sum_seconds;
};

void metrics_observe_latency(struct eddy_metrics *m, double seconds);
/* Appends Prometheus text exposition (version 0.0.4) to a malloc'd string. */
char *metrics_render(const struct eddy_metrics *m);

#endif
