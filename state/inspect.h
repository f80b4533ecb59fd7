/* inspect.h: read-only views of a whole state, for `eddy state`: a summary,
 * one entry as JSON, a JSON Lines export and a backup. A keyed store's
 * values are rendered by its codec (state.h: struct state_codec).
 *
 * They read committed values straight from RocksDB, not through the cache.
 * To inspect the state of a running eddy, open it with read_only set (no
 * lock is taken) and dim 0 (the stored dim is used); the view is then fixed
 * as of the open.
 *
 * JSON: an id is a string, or {"hex": "..."} when its bytes are not UTF-8.
 * Reals are written as state/json.h says, so they read back bit for bit.
 * Errors name the directory. */
#ifndef EDDY_INSPECT_H
#define EDDY_INSPECT_H

#include <stddef.h>
#include <stdio.h>

#include "state/state.h"

/* The column family of a kind of entry: the kind of one of the stores
 * (NULL-terminated, as given to state_open()), e.g. "user", "item",
 * "campaign"; NULL for anything else. */
const char *inspect_kind_cf(const char *kind, const struct state_codec *const *stores);

/* Writes a summary as text: format version, dim, model version, key counts
 * per column family, bytes on disk and every stored offset. */
int inspect_stats(struct eddy_state *st, FILE *out, char *err, size_t errlen);

/* Writes the entry of column family cf (see inspect_kind_cf()) as one line
 * of JSON, the same line inspect_export_jsonl() writes for it; an id of a
 * partitioned store held in several partitions gives one line per
 * partition. 0 written, 1 no such entry (nothing written), -1 error. */
int inspect_get(struct eddy_state *st, const char *cf, struct eddy_str id, FILE *out,
                char *err, size_t errlen);

/* Writes every stored entry as one compact JSON object per line, ordered by
 * column family (the stores in their order, e.g. users, items, campaigns;
 * then offsets, meta), then by key bytes. Each object starts with "kind": a
 * store's kind (then "partition" for a partitioned store, "id", and what its
 * codec renders, or a dense row's "row" and "vector"), offset, meta (an
 * integer) or blob (state_blob_set() bytes, in hex). Equal states give
 * byte-identical output, so it can compare two state directories. */
int inspect_export_jsonl(struct eddy_state *st, FILE *out, char *err, size_t errlen);

/* Writes a RocksDB checkpoint of the state into dest, which must not exist.
 * The copy opens with state_open() like the original; its SST files are
 * hard links when dest is on the same filesystem. */
int inspect_backup(struct eddy_state *st, const char *dest, char *err, size_t errlen);

#endif
