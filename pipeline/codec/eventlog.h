/* eventlog.h: event logs as Avro Object Container Files.
 *
 * One file holds records of one type (ClickEvent, AdEvent or
 * CampaignBudget), written with eddy's own schema (codec_schema_json) as the
 * file's writer schema. Files are written to "<path>.tmp" and renamed into
 * place only by eventlog_writer_finish(), so a failed import never leaves a
 * truncated log under the final name.
 *
 * Reading takes the record type from the file's writer schema (by record
 * name) and resolves that schema against eddy's (pipeline/codec/avromap.h), so
 * files written by other producers whose schema adds or reorders fields, or
 * lacks a field that eddy's schema gives a default, read as well. Records read
 * are validated like codec_decode's (no empty ids, no negative time or
 * prices, pctr in [0,1]).
 *
 * Not thread-safe: one reader or writer per thread. */
#ifndef EDDY_EVENTLOG_H
#define EDDY_EVENTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"
#include "pipeline/codec/codec.h"

struct eventlog_writer;
struct eventlog_reader;

/* Writes the header of an empty Object Container File for records of `type`
 * to path, replacing it: eddy's schema JSON as it is (Avro C's own writer
 * drops attributes such as logicalType "timestamp-millis" from the header),
 * the codec ("deflate" or "null") and a sync marker derived from the schema,
 * so the same records give the same bytes. Avro C's
 * avro_file_writer_open_bs() then appends to it. `type` may be any record
 * type, outputs included. */
int eventlog_ocf_create(const char *path, enum eddy_record_type type, const char *codec,
                        char *err, size_t errlen);

/* Creates "<path>.tmp" for records of `type` (REC_CLICK, REC_AD or
 * REC_CAMPAIGN), compressed with `codec`: "deflate" or "null". */
int eventlog_writer_new(const char *path, enum eddy_record_type type, const char *codec,
                        struct eventlog_writer **out, char *err, size_t errlen);

/* Appends one record: a struct click_event, ad_event or campaign_budget
 * matching the writer's type. */
int eventlog_append(struct eventlog_writer *w, const void *record, char *err, size_t errlen);

/* Flushes and closes the file and renames it to its final path. Frees w
 * whatever the outcome; on failure the .tmp file is removed. */
int eventlog_writer_finish(struct eventlog_writer *w, char *err, size_t errlen);

/* Closes and removes the .tmp file, for error paths. NULL is a no-op. */
void eventlog_writer_discard(struct eventlog_writer *w);

int eventlog_reader_new(const char *path, struct eventlog_reader **out, char *err,
                        size_t errlen);

/* REC_CLICK, REC_AD or REC_CAMPAIGN, from the file's schema. */
enum eddy_record_type eventlog_reader_type(const struct eventlog_reader *r);

/* Reads the next record into ev: 1 when one was read, 0 at the end of the
 * file, -1 on a read or validation error (err names the file and record
 * number). ev's strings borrow from the reader until the next call. */
int eventlog_next(struct eventlog_reader *r, struct eddy_event *ev, char *err, size_t errlen);

/* NULL is a no-op. */
/* Bytes of the file read so far (read-ahead included): for progress. */
uint64_t eventlog_reader_offset(const struct eventlog_reader *r);
void eventlog_reader_free(struct eventlog_reader *r);

#endif
