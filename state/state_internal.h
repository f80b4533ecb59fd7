/* state_internal.h: raw access to the state's RocksDB, for inspection tools
 * in state/ (inspect.c) only. Operators and the runtime use state.h: reading
 * RocksDB directly bypasses the cache, so it sees only committed state.
 *
 * Value layouts are described at the top of state.c. Keys:
 *   users: clicks partition (4 bytes big-endian), then the id
 *   items: the id bytes; a keyed store's: its keys as given
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
 * them (the stores' between items and offsets); NULL past the last. */
const char *state_cf_name(struct eddy_state *st, size_t k);
/* NULL if there is no column family of that name. */
rocksdb_column_family_handle_t *state_cf(struct eddy_state *st, const char *name);
/* The codec of the keyed store of that name; NULL if it is not a store. */
const struct state_codec *state_cf_codec(struct eddy_state *st, const char *name);

/* The first partition >= from holding a committed user with this id; -1
 * if none. */
int32_t state_stored_partition(struct eddy_state *st, struct eddy_str id, int32_t from);

/* Decoders of stored values; false (and why) for a corrupt value.
 * state_user_decode() fills u, whose vec must hold state_dim() floats and
 * whose seen must be NULL; it may set u->seen to a malloc'd array even when
 * it fails: the caller frees u->seen either way. Seen rows are checked
 * against the items loaded at open. state_value_decode() checks the version
 * byte and decodes a keyed store's value into value (value_size bytes,
 * zeroed), which the caller frees with the codec's free() either way. */
bool state_user_decode(struct eddy_state *st, const char *v, size_t len,
                       struct user_state *u, char *why, size_t whylen);
bool state_value_decode(const struct state_codec *c, const char *v, size_t len, void *value,
                        char *why, size_t whylen);
bool state_i64_decode(const char *v, size_t len, int64_t *x, char *why, size_t whylen);

#endif
