/* metrics.c: the Prometheus text exposition format, version 0.0.4. */
#include "pipeline/run/metrics.h"

#include <stdio.h>
#include <stdlib.h>

#define LATENCY "eddy_processing_latency_seconds"

/* Upper bounds of the latency buckets: 0.5 ms to 10 s in 1-2.5-5 steps. */
static const double lat_le[METRICS_LAT_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

#define M(field) offsetof(struct eddy_metrics, field)

static const struct {
    const char *name, *help;
    size_t off; /* of a uint64_t[IN_COUNT] */
} per_topic[] = {
    {"eddy_events_in_total", "Input records decoded and processed.", M(events_in)},
    {"eddy_dlq_total", "Input records sent to the dead-letter topic.", M(dlq)},
};

static const struct {
    const char *name, *type, *help;
    size_t off; /* of a uint64_t */
} scalars[] = {
    {"eddy_recommendations_out_total", "counter", "Recommendations delivered to Kafka.",
     M(recommendations_out)},
    {"eddy_decisions_out_total", "counter", "Budget decisions delivered to Kafka.",
     M(decisions_out)},
    {"eddy_produce_errors_total", "counter",
     "Outputs (DLQ records included) that could not be encoded, queued or delivered; the "
     "first stops eddy without a checkpoint, so that a restart reprocesses their input.",
     M(produce_errors)},
    {"eddy_outputs_unacked", "gauge",
     "Outputs sent and not yet acknowledged by the broker; checkpoints wait for zero.",
     M(outputs_unacked)},
    {"eddy_dlq_truncated_total", "counter",
     "Dead letters cut to [kafka] dlq.max.bytes (headers keep the original sizes).",
     M(dlq_truncated)},
    {"eddy_offset_resets_total", "counter",
     "Partitions resumed at the log start past a gap, their stored offset out of range "
     "(offset.reset = earliest).",
     M(offset_resets)},
    {"eddy_offset_gap_records_total", "counter",
     "Input records skipped by those resets: they were gone from the log.", M(offset_gap)},
    {"eddy_http_connections", "gauge", "Open HTTP connections.", M(http_connections)},
    {"eddy_http_rejected_total", "counter",
     "HTTP requests answered 503 because of [http] max.connections.", M(http_rejected)},
    {"eddy_http_evicted_total", "counter",
     "Idle HTTP connections closed to make room for new ones.", M(http_evicted)},
    {"eddy_rejected_total", "counter",
     "Records that decoded but that an operator could not apply (logged with the reason).",
     M(rejected)},
    {"eddy_commits_total", "counter", "Checkpoints: state and input offsets written together.", M(commits)},
    {"eddy_state_bytes", "gauge", "Estimated live bytes of the state store.", M(state_bytes)},
    {"eddy_state_users", "gauge", "Users cached in memory.", M(state_users)},
    {"eddy_state_items", "gauge", "Items with an embedding.", M(state_items)},
    {"eddy_state_campaigns", "gauge", "Campaigns cached in memory.", M(state_campaigns)},
    {"eddy_state_cache_hits_total", "counter",
     "User and campaign lookups served from the cache (hit ratio: hits / (hits + misses)).",
     M(cache_hits)},
    {"eddy_state_cache_misses_total", "counter", "User and campaign lookups that read RocksDB.",
     M(cache_misses)},
    {"eddy_state_cache_evictions_total", "counter", "Clean entries evicted from the cache.",
     M(cache_evictions)},
    {"eddy_state_cache_bytes", "gauge", "Estimated bytes of cached users and campaigns.",
     M(cache_bytes)},
    {"eddy_state_memtable_bytes", "gauge",
     "Bytes in RocksDB's memtables (part of the [state] cache.bytes budget).",
     M(memtable_bytes)},
    {"eddy_state_block_cache_bytes", "gauge",
     "Bytes in RocksDB's block cache (part of the [state] cache.bytes budget).",
     M(block_cache_bytes)},
    {"eddy_kafka_consumer_queued_bytes", "gauge",
     "Input fetched by librdkafka and not yet processed (its statistics, every second).",
     M(consumer_queued_bytes)},
    {"eddy_kafka_producer_queued_bytes", "gauge",
     "Outputs in librdkafka's producer queue, not yet acknowledged (every second).",
     M(producer_queued_bytes)},
    {"eddy_heap_in_use_bytes", "gauge",
     "Bytes malloc has handed out (glibc mallinfo2, every 10 s, after returning free pages).",
     M(heap_in_use_bytes)},
    {"eddy_heap_free_bytes", "gauge",
     "Bytes free inside malloc's heaps that it could not return to the kernel: fragmentation.",
     M(heap_free_bytes)},
    {"eddy_state_dirty_entries", "gauge", "Changed entries waiting for the next checkpoint.",
     M(dirty_entries)},
    {"eddy_checkpoint_last_duration_microseconds", "gauge",
     "Duration of the last checkpoint's RocksDB write.", M(checkpoint_us)},
    {"eddy_checkpoint_last_bytes", "gauge", "Size of the last checkpoint's WriteBatch.",
     M(checkpoint_bytes)},
    {"eddy_state_restore_microseconds", "gauge",
     "Time it took to open the state (and load the item matrix) at start.", M(restore_us)},
};

void metrics_observe_latency(struct eddy_metrics *m, double seconds)
{
    /* A clock step can make a latency negative: the sum must never shrink. */
    if (!(seconds >= 0))
        return;
    int i = 0;
    while (i < METRICS_LAT_BUCKETS && seconds > lat_le[i])
        i++;
    if (i < METRICS_LAT_BUCKETS)
        m->lat_bucket[i]++;
    m->lat_count++;
    m->lat_sum_seconds += seconds;
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with '\', '"' and newline escaped, as the format requires. */
static void label_value(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void render_per_topic(FILE *f, const struct eddy_metrics *m)
{
    for (size_t i = 0; i < sizeof per_topic / sizeof per_topic[0]; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)m + per_topic[i].off);
        header(f, per_topic[i].name, "counter", per_topic[i].help);
        for (int t = 0; t < IN_COUNT; t++) {
            if (!m->input_topic[t])
                continue; /* not configured: no series rather than an unlabelled one */
            fprintf(f, "%s{topic=\"", per_topic[i].name);
            label_value(f, m->input_topic[t]);
            fprintf(f, "\"} %llu\n", (unsigned long long)v[t]);
        }
    }
}

static void render_scalars(FILE *f, const struct eddy_metrics *m)
{
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)m + scalars[i].off);
        header(f, scalars[i].name, scalars[i].type, scalars[i].help);
        fprintf(f, "%s %llu\n", scalars[i].name, (unsigned long long)*v);
    }
    header(f, "eddy_assigned_partitions", "gauge",
           "Input partitions assigned to this process");
    fprintf(f, "eddy_assigned_partitions %llu\n", (unsigned long long)m->assigned_partitions);
    header(f, "eddy_consumer_lag", "gauge",
           "Records behind the end of the assigned partitions; -1 while unknown.");
    fprintf(f, "eddy_consumer_lag %lld\n", (long long)m->consumer_lag);
}

static void render_latency(FILE *f, const struct eddy_metrics *m)
{
    uint64_t cumulative = 0;
    header(f, LATENCY, "histogram",
           "Seconds from an input record's Kafka timestamp to the end of its batch.");
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
        cumulative += m->lat_bucket[i];
        fprintf(f, LATENCY "_bucket{le=\"%g\"} %llu\n", lat_le[i],
                (unsigned long long)cumulative);
    }
    fprintf(f, LATENCY "_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->lat_count);
    fprintf(f, LATENCY "_sum %.17g\n", m->lat_sum_seconds);
    fprintf(f, LATENCY "_count %llu\n", (unsigned long long)m->lat_count);
}

char *metrics_render(const struct eddy_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    render_per_topic(f, m);
    render_scalars(f, m);
    render_latency(f, m);
    int failed = ferror(f);
    if (fclose(f) || failed) {
        free(text);
        return NULL;
    }
    return text;
}
