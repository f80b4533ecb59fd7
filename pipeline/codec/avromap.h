/* avromap.h: the one mapping between eddy's Avro records and the C structs of
 * schemas/records.h. codec.c (Kafka messages) and eventlog.c (Object
 * Container Files) both encode and decode through it.
 *
 * An avromap holds eddy's schema for one record type (from schemas/), its
 * field indexes and enum symbols looked up once, and one value reused for
 * every record it encodes.
 *
 * Records are decoded through an avromap_reader, built once per writer
 * schema. It resolves the writer's schema against eddy's as the Avro
 * specification says, including two rules Avro C 1.11.1's resolver lacks:
 *   - a field of eddy's schema that the writer's lacks reads as the default
 *     eddy's schema gives it; without a default, that writer is refused with
 *     a reason naming the field. The same holds inside an array of records
 *     (a Recommendation's items: a RecommendedItem from before `because`
 *     reads with because null), where only null defaults of ["null", T]
 *     fields are supported;
 *   - enum symbols are matched by name, not by position.
 *
 * Not thread-safe: a map and its readers belong to one thread. */
#ifndef EDDY_AVROMAP_H
#define EDDY_AVROMAP_H

#include <avro.h>
#include <stddef.h>

#include "schemas/records.h"
#include "pipeline/codec/codec.h"

struct avromap;
struct avromap_reader;

int avromap_new(enum eddy_record_type type, struct avromap **out, char *err, size_t errlen);

/* Free a map's readers first. NULL is a no-op. */
void avromap_free(struct avromap *m);

/* The record's name in eddy's schema for `type`, e.g. "ClickEvent". */
const char *avromap_record_name(enum eddy_record_type type);

/* eddy's schema for the map's type, owned by the map. */
avro_schema_t avromap_schema(const struct avromap *m);

/* Sets the map's value from `record` (a struct click_event, ad_event,
 * campaign_budget, recommendation or budget_decision: the map's type) and
 * points *value at it, until the next call. -1 on failure, when
 * avro_strerror() says why. */
int avromap_encode(struct avromap *m, const void *record, avro_value_t **value);

/* A reader of records written with schema `writer` (borrowed while building
 * the reader). -1, with the reason in err, when the writer's schema is not a
 * record of the same name (namespaces aside, as Avro C matches them), lacks a
 * field of eddy's schema that has no default, or does not resolve. */
int avromap_reader_new(struct avromap *m, avro_schema_t writer, struct avromap_reader **out,
                       char *err, size_t errlen);

/* NULL is a no-op. */
void avromap_reader_free(struct avromap_reader *r);

/* The value one record's body is decoded into, with avro_value_read() or
 * avro_file_reader_read_value(). */
avro_value_t *avromap_reader_value(struct avromap_reader *r);

/* Read the record just decoded. Strings borrow from the reader until its next
 * decode. -1 with a short reason on failure. avromap_read_event() is for the
 * input types (REC_CLICK, REC_AD, REC_CAMPAIGN) and also validates the event
 * (event_invalid()). */
int avromap_read_event(struct avromap_reader *r, struct eddy_event *ev, char *reason,
                       size_t rlen);
int avromap_read_recommendation(struct avromap_reader *r, struct recommendation *out,
                                char *reason, size_t rlen);
int avromap_read_decision(struct avromap_reader *r, struct budget_decision *out, char *reason,
                          size_t rlen);

#endif
