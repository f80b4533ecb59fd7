/* codec.h: Avro encoding and decoding of eddy's records, with framing.
 *
 * Decoding recognises the framing by its first bytes:
 *   C3 01 + 8-byte little-endian CRC-64-AVRO fingerprint  (single-object)
 *   00 + 4-byte big-endian schema id                      (Confluent)
 * The writer schema is looked up (by fingerprint among eddy's own schemas and
 * every *.avsc in writers_dir; by id in the schema registry, cached forever)
 * and resolved against eddy's reader schema for the expected record type
 * (pipeline/codec/avromap.h), so a producer whose schema adds or reorders fields,
 * or lacks a field that eddy's schema gives a default, decodes.
 * Lengths are checked against the bytes present before Avro C sees them.
 * Decoded records are validated (no empty ids, no NaN, no negative prices).
 *
 * Encoding writes single-object framing, or Confluent framing with the id the
 * registry returned for that record type's subject (codec_register()).
 *
 * One codec per thread; not thread-safe. */
#ifndef EDDY_CODEC_H
#define EDDY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

enum eddy_record_type {
    REC_CLICK,
    REC_AD,
    REC_CAMPAIGN,
    REC_RECOMMENDATION,
    REC_DECISION,
    REC_TYPE_COUNT
};

struct codec_options {
    const char *writers_dir;   /* extra known writer schemas; NULL for none */
    const char *registry_url;  /* NULL: single-object encoding only */
    size_t max_record_bytes;   /* 0: default 1 MiB */
};

struct eddy_codec;

int codec_new(const struct codec_options *opt, struct eddy_codec **out,
              char *err, size_t errlen);
void codec_free(struct eddy_codec *c);

/* Decodes one framed message that should hold a record of type `expect`
 * (REC_CLICK, REC_AD or REC_CAMPAIGN). On success fills ev; its strings
 * borrow from the codec and stay valid until the next codec_decode().
 * On failure returns -1 and writes a short reason (e.g. "unknown schema
 * fingerprint 0x...", "empty user_id") to reason. */
int codec_decode(struct eddy_codec *c, enum eddy_record_type expect,
                 const void *buf, size_t len, struct eddy_event *ev,
                 char *reason, size_t reasonlen);

/* Decodes a framed output record (REC_RECOMMENDATION or REC_DECISION), for
 * tests and tools. Strings borrow from the codec as above. */
int codec_decode_recommendation(struct eddy_codec *c, const void *buf, size_t len,
                                struct recommendation *out, char *reason, size_t reasonlen);
int codec_decode_decision(struct eddy_codec *c, const void *buf, size_t len,
                          struct budget_decision *out, char *reason, size_t reasonlen);

/* Encodes `record` (a struct click_event, ad_event, campaign_budget,
 * recommendation or budget_decision, matching type) with framing. *out
 * points into a codec buffer valid until the next encode. */
int codec_encode(struct eddy_codec *c, enum eddy_record_type type, const void *record,
                 const void **out, size_t *outlen, char *err, size_t errlen);

/* The same without the framing: the bare Avro body, as Object Container
 * Files hold records. */
int codec_encode_body(struct eddy_codec *c, enum eddy_record_type type, const void *record,
                      const void **out, size_t *outlen, char *err, size_t errlen);

/* With a registry: registers eddy's schema for `type` under subject
 * "<topic>-value" and encodes that type with Confluent framing from then on. */
int codec_register(struct eddy_codec *c, enum eddy_record_type type, const char *topic,
                   char *err, size_t errlen);

/* eddy's own schema text for a type (from the schemas/ directory). */
const char *codec_schema_json(enum eddy_record_type type);

/* Parsing Canonical Form and CRC-64-AVRO, per the Avro specification. */
int avro_canonical_form(const char *schema_json, char **out, char *err, size_t errlen);
uint64_t avro_crc64(const void *buf, size_t len);

#endif
