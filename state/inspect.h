/* inspect.h: read-only views of a whole state, for `eddy state`: a summary,
 * one entry as JSON, a JSON Lines export and a backup; and a campaign
 * ledger as JSON, for those and for the HTTP API.
 *
 * They read committed values straight from RocksDB, not through the cache.
 * To inspect the state of a running eddy, open it with read_only set (no
 * lock is taken) and dim 0 (the stored dim is used); the view is then fixed
 * as of the open.
 *
 * JSON: an id is a string, or {"hex": "..."} when its bytes are not UTF-8.
 * Floats and doubles are written with 17 significant digits, so every value
 * reads back bit for bit; NaN and the infinities, which JSON lacks, are the
 * strings "NaN", "Infinity" and "-Infinity". Errors name the directory. */
#ifndef EDDY_INSPECT_H
#define EDDY_INSPECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "state/state.h"

enum inspect_kind { INSPECT_USER, INSPECT_ITEM, INSPECT_CAMPAIGN };

/* "user", "item" or "campaign"; -1 for anything else. */
int inspect_kind_parse(const char *name);

/* Writes a summary as text: format version, dim, model version, key counts
 * per column family, bytes on disk and every stored offset. */
int inspect_stats(struct eddy_state *st, FILE *out, char *err, size_t errlen);

/* Writes the entry as one line of JSON, the same line inspect_export_jsonl()
 * writes for it; a user id held in several partitions gives one
 * line per partition. 0 written, 1 no such entry (nothing written), -1 error. */
int inspect_get(struct eddy_state *st, enum inspect_kind kind, struct eddy_str id,
                FILE *out, char *err, size_t errlen);

/* Writes every stored entry as one compact JSON object per line, ordered by
 * column family (users, items, campaigns, offsets, meta), then by key bytes.
 * Each object starts with "kind": user, item, campaign, offset, meta (an
 * integer) or blob (state_blob_set() bytes, in hex). Equal states give
 * byte-identical output, so it can compare two state directories. */
int inspect_export_jsonl(struct eddy_state *st, FILE *out, char *err, size_t errlen);

/* How a ledger shows: RAW as stored, every field a number (get, export);
 * READABLE for people (the HTTP API): flags as true/false, a time not set
 * yet as null. Reals are written as above in both. */
enum ledger_style { LEDGER_RAW, LEDGER_READABLE };

/* Sets every field of the ledger on the JSON object doc, in stored order.
 * Returns doc, or NULL (doc freed) if jansson runs out of memory; a NULL
 * doc gives NULL. */
json_t *inspect_ledger_json(json_t *doc, const struct campaign_ledger *l,
                            enum ledger_style style);

/* Writes a RocksDB checkpoint of the state into dest, which must not exist.
 * The copy opens with state_open() like the original; its SST files are
 * hard links when dest is on the same filesystem. */
int inspect_backup(struct eddy_state *st, const char *dest, char *err, size_t errlen);

#endif
