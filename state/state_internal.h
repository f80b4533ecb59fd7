/* state_internal.h: raw access to the state's RocksDB, for inspection tools
 * in state/ (inspect.c) only. Operators and the runtime use state.h: reading
 * RocksDB directly bypasses the cache, so it sees only committed state.
 *
 * Value layouts are described at the top of state.c. Keys:
 *   a partitioned store's: the partition (4 bytes big-endian), then the id
 *   any other store's: its keys (ids) as given
 *   offsets: topic, '\0', partition as 4 bytes big-endian
 *   meta: "format_version", "dim", "model_version" (int64 values) and
 *         STATE_BLOB_PREFIX + key (state_blob_set() bytes, as given) */
#ifndef EDDY_STATE_INTERNAL_H
#define EDDY_STATE_INTERNAL_H

#include <rocksdb/c.h>

#include "state/state.h"

#define STATE_BLOB_PREFIX "blob." /* must match blob_key() in state.c */

/* The directory the state was opened with, for messages. */
const char *state_dir(const struct eddy_state *st);
/* Owned by the state: valid until state_close(). */
rocksdb_t *state_db(struct eddy_state *st);
/* The k-th column family's name, k from 0, in the order `eddy state` shows
 * them (the stores' between default and offsets); NULL past the last. */
const char *state_cf_name(struct eddy_state *st, size_t k);
/* NULL if there is no column family of that name. */
rocksdb_column_family_handle_t *state_cf(struct eddy_state *st, const char *name);
/* The codec of the keyed store of that name; NULL if it is not a store. */
const struct state_codec *state_cf_codec(struct eddy_state *st, const char *name);

/* The first partition >= from holding a committed value with this id in
 * the partitioned store s; -1 if none. */
int32_t state_stored_partition(struct state_store *s, struct eddy_str id, int32_t from);

/* Decoders of stored values; false (and why) for a corrupt value.
 * state_value_decode() checks the version byte and decodes a keyed store's
 * value into value (state_value_bytes() bytes, zeroed), which the caller
 * frees with the codec's free() either way. */
size_t state_value_bytes(const struct eddy_state *st, const struct state_codec *c);
bool state_value_decode(struct eddy_state *st, const struct state_codec *c, const char *v,
                        size_t len, void *value, char *why, size_t whylen);
bool state_i64_decode(const char *v, size_t len, int64_t *x, char *why, size_t whylen);

#endif
