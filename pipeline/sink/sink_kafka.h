/* sink_kafka.h: the topic sink (pipeline/sink/sink.h): the outputs produced into
 * the configured output topics ([topics] recommendations, decisions), and
 * records that do not decode into the dead-letter topic, for `eddy run` and
 * `eddy replay --to-kafka`.
 *
 * At least once: barrier() waits for the broker to acknowledge every output
 * produced so far (bounded by its timeout and by the producer's
 * message.timeout.ms, after which librdkafka fails what is left) and fails
 * if any was not, so a checkpoint never covers a lost output; a restart
 * produces again what followed the last checkpoint. A full local queue is
 * waited out in place, serving delivery reports, so nothing is dropped
 * unless hooks->given_up says the outputs are lost anyway. */
#ifndef EDDY_SINK_KAFKA_H
#define EDDY_SINK_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/codec/codec.h"
#include "pipeline/run/config.h"
#include "pipeline/sink/sink.h"
#include "pipeline/source/source.h" /* struct dead_letter */

/* What the live driver learns from the sink, on its thread (delivery
 * reports are served by sink_kafka_serve(), barrier() and waits for room).
 * Every member is optional. */
struct sink_kafka_hooks {
    /* An output could not be queued, or the broker will never acknowledge
     * it. Without the hook the first is logged and barrier() fails. */
    void (*failed)(void *ctx, const char *topic, const char *why);
    /* The broker acknowledged an output of type (not dead letters). */
    void (*delivered)(void *ctx, enum eddy_record_type type);
    /* True: stop waiting for room in a full queue, and drop the output:
     * nothing will be checkpointed past it any more. */
    bool (*given_up)(void *ctx);
    /* From the producer's statistics every second: brokers UP (-1:
     * unknown), and bytes of outputs queued. */
    void (*stats)(void *ctx, int brokers_up, int64_t queued_bytes);
    void *ctx;
};

/* co: how outputs are encoded; with a registry URL, their schemas are
 * registered (Confluent framing). hooks may be NULL. */
int sink_kafka_open(const struct eddy_config *cfg, const struct codec_options *co,
                    const struct sink_kafka_hooks *hooks, struct eddy_sink **out, char *err,
                    size_t errlen);

/* Produces dl (a record the live source could not decode) into the
 * dead-letter topic ([kafka] dlq.max.bytes: see sink_kafka.c). Returns
 * true when the record had to be truncated. */
bool sink_kafka_dead_letter(struct eddy_sink *s, const struct dead_letter *dl);

/* For an event loop: a descriptor that turns readable when delivery
 * reports wait (read it empty, then call sink_kafka_serve()), or -1. */
int sink_kafka_events_fd(struct eddy_sink *s);
void sink_kafka_serve(struct eddy_sink *s);

/* Outputs not yet acknowledged (nor failed). */
int sink_kafka_unacked(const struct eddy_sink *s);

/* How long an output may go unacknowledged before it counts as failed:
 * message.timeout.ms plus a grace; 0 when librdkafka retries forever. */
uint64_t sink_kafka_ack_timeout_ms(const struct eddy_sink *s);

/* Drops every output still queued or in flight, for a stop that cannot
 * wait for them (destroying the producer would). */
void sink_kafka_purge(struct eddy_sink *s);

#endif
