/* state.h: all of eddy's durable state, behind one small API.
 *
 * RocksDB (one database, one column family per kind of state) is the source
 * of truth. In front of it sits an in-memory cache: operators get pointers to
 * cached entries, change them in place, mark them dirty, and state_commit()
 * writes every dirty entry together with the consumed input offsets in ONE
 * atomic WriteBatch (WAL on). So after a crash the state and the offsets it
 * covers always agree: exactly-once state.
 *
 * Besides the users and items the recommender shares, the state offers
 * keyed stores: a column family of values whose layout, encoding and JSON
 * rendering belong to the operator that declares the store (struct
 * state_codec); the state caches, writes and checkpoints them without
 * knowing what they hold.
 *
 * Ownership: entries returned by state_user()/state_get()/state_find() (and
 * passed to a state_foreach() callback) belong to the state; their pointers
 * stay valid until the next state_commit() or state_close(), and no longer.
 * The cache keeps users and keyed values within their share of
 * state_options.cache_bytes by evicting, with CLOCK, clean entries not
 * handed out since the last commit.
 * So an operator may hold entries across further state_user() and
 * state_get() calls within one process() or flush(), but must not keep
 * them across a commit. The cache exceeds its budget only when the entries
 * touched since the last commit alone do (dirty ones are among them). The
 * foreach callback must not call state_user() or state_get().
 *
 * Item vectors are not part of that budget: they live, all of them, in
 * one dense row-major float matrix (rows x dim) so the recommender can score
 * with sgemm; a pointer into it is valid only until the next state_item_add(),
 * which may grow (move) the matrix.
 *
 * Not thread-safe: one thread (the pipeline's loop thread) owns a state. */
#ifndef EDDY_STATE_H
#define EDDY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

#define STATE_FORMAT_VERSION 3 /* 2: users keyed by partition; 3: ledger price sums */
#define STATE_NO_OFFSET (-1)
#define STATE_BUSY (-2)      /* state_open(): another process holds the database */

struct eddy_state;
struct state_store;

struct state_options {
    const char *dir;
    int dim;               /* embedding dimension; must match a stored one;
                              0 takes the stored one (an existing state only) */
    bool create_if_missing;
    bool read_only;        /* for inspection tools */
    size_t cache_bytes;    /* memory budget: cached users and keyed values and RocksDB's
                              memtables and block cache, not the item matrix;
                              0 = unlimited (and RocksDB's default sizes) */
    /* The keyed stores, NULL-terminated (NULL: none). A stored database must
     * hold exactly these besides the state's own column families; a new
     * one gets them. */
    const struct state_codec *const *stores;
};

struct json_t; /* jansson's */

/* A keyed store's values: the operator that owns the store owns this. The
 * state keeps each value in memory as a struct of value_size bytes (zeroed,
 * then init() or decode()), stores it as one version byte followed by what
 * encode() writes, and refuses a stored value of another version. */
struct state_codec {
    const char *name;      /* its column family, e.g. "campaigns" */
    const char *kind;      /* one value, e.g. "campaign": the "kind" of its JSON
                              and the kind `eddy state get` takes */
    uint8_t version;       /* of the encoding; 0 is not valid */
    size_t value_size;
    void (*init)(void *value);                /* a value new to the store */
    size_t (*encoded_size)(const void *value);
    void (*encode)(const void *value, char *out); /* encoded_size() bytes */
    /* Reads what encode() wrote (the version byte stripped); false and why
     * if it is corrupt. value may own memory even then: free() frees it. */
    bool (*decode)(const char *in, size_t len, void *value, char *why, size_t whylen);
    size_t (*heap_bytes)(const void *value);  /* held outside value_size, for
                                                 the cache budget; NULL: none */
    void (*free)(void *value);                /* what the value owns; NULL: nothing */
    /* Sets the value's fields on the JSON object doc (whose "kind" and "id"
     * are set) as `eddy state get/export` show them; returns doc, or NULL
     * (doc freed) if jansson runs out of memory. */
    struct json_t *(*to_json)(struct json_t *doc, const void *value);
};

struct user_state {
    int64_t last_refresh_ms;  /* event time of last published recs; INT64_MIN if never */
    int64_t last_event_ms;    /* event time of the last click event applied */
    uint64_t n_events;
    uint32_t n_seen, seen_cap;
    uint32_t *seen;           /* sorted item rows the user interacted with */
    float *vec;               /* dim floats */
    bool is_new;              /* created by this call, vector not initialised yet */
};

struct state_stats {
    uint64_t users_cached, items, keyed_cached, dirty; /* keyed: cached store values */
    uint64_t disk_bytes;       /* RocksDB estimate of live data size */
    uint64_t model_version;
    uint64_t cache_hits;         /* user and keyed lookups served from memory */
    uint64_t cache_misses;       /* lookups that read RocksDB, found or not */
    uint64_t cache_evictions;
    uint64_t cache_bytes;        /* estimated bytes of cached users and keyed values */
    uint64_t memtable_bytes;     /* RocksDB's memtables, all column families */
    uint64_t block_cache_bytes;  /* RocksDB's block cache in use */
    uint64_t checkpoint_us;      /* duration of the last commit that wrote anything */
    uint64_t checkpoint_bytes;   /* size of its WriteBatch */
    int64_t checkpoint_unix_ms;  /* wall time it ended; 0 if none since state_open() */
    uint64_t restore_us;         /* duration of state_open() */
};

/* Opens (or creates) the database. Refuses, with a message naming the
 * directory, a database of another format version or dimension. Returns 0,
 * -1 on error, or STATE_BUSY when another process has it open. */
int state_open(const struct state_options *opt, struct eddy_state **out,
               char *err, size_t errlen);
void state_close(struct eddy_state *st);
int state_dim(const struct eddy_state *st);

/* Users are keyed by (clicks partition, user id): one partition's users
 * are one contiguous key range, ready to be handed to another instance.
 * Log files (replay) are partition 0. Items (one shared model) are keyed
 * by id alone.
 *
 * Users. Returns NULL only when !create and the user is unknown. A new
 * user's vector is zeroed and is_new is set: the caller initialises it. */
struct user_state *state_user(struct eddy_state *st, int32_t partition, struct eddy_str id,
                              bool create);
/* The user with this id in whichever partition holds it (the lowest if
 * several do), cached or committed, for readers that do not know the
 * partition (the HTTP API); NULL if none. */
struct user_state *state_user_find(struct eddy_state *st, struct eddy_str id);
void state_user_dirty(struct eddy_state *st, struct user_state *u);
/* Adds an item row to the user's seen set; returns false if already there. */
bool state_user_seen_add(struct user_state *u, uint32_t row);
bool state_user_has_seen(const struct user_state *u, uint32_t row);

/* Items: rows are assigned in arrival order and never change. */
int32_t state_item_row(struct eddy_state *st, struct eddy_str id); /* -1 if unknown */
int32_t state_item_add(struct eddy_state *st, struct eddy_str id, const float *vec);
float *state_item_vec(struct eddy_state *st, uint32_t row);
void state_item_dirty(struct eddy_state *st, uint32_t row);
const float *state_item_matrix(const struct eddy_state *st, uint32_t *n_rows);
struct eddy_str state_item_id(const struct eddy_state *st, uint32_t row);

/* Keyed stores. The store of a codec given to state_open() (matched by
 * name), valid until state_close(); NULL if it was not given. */
struct state_store *state_store(struct eddy_state *st, const struct state_codec *codec);
/* The value of key (cached, or read from RocksDB), or a new one made by
 * init() if create; NULL if none. */
void *state_get(struct state_store *s, struct eddy_str key, bool create);
/* state_get() without create, for readers that change nothing. */
const void *state_find(struct state_store *s, struct eddy_str key);
/* Marks a value from state_get() changed: the next commit writes it. Call
 * it again after the value's heap_bytes() changed, so the budget counts it. */
void state_dirty(struct state_store *s, void *value);
/* Deletes a value from state_get() (its key stays valid until the next
 * commit): readers find none, state_foreach() skips it, state_get() with
 * create makes it anew by init(), and the next commit deletes it from
 * RocksDB and frees it. */
void state_delete(struct state_store *s, void *value);
/* The key of a value handed out by the state. */
struct eddy_str state_key(const void *value);
/* Visits every value of the store, stored or cached, in key order: the
 * order must not depend on what happens to be cached. */
void state_foreach(struct state_store *s, void (*fn)(void *value, void *ctx), void *ctx);

/* Splits a stored user key; false if it is too short. */
bool state_key_split(struct eddy_str key, int32_t *partition, struct eddy_str *id);

/* Model version: a counter of embedding updates, persisted with the state. */
uint64_t state_model_version(const struct eddy_state *st);
void state_model_version_bump(struct eddy_state *st);

/* Consumed offsets: the next offset to read per (topic, partition). */
int64_t state_offset_get(struct eddy_state *st, const char *topic, int32_t partition);
void state_offset_set(struct eddy_state *st, const char *topic, int32_t partition,
                      int64_t next_offset);

/* Blobs: small opaque values an operator or the runtime keeps with the state
 * (e.g. the recommender's pending users). state_blob_set() stages a copy that
 * the next state_commit() writes in its batch. state_blob_get() returns a
 * malloc'd copy (caller frees): 0 found, 1 absent, -1 read error. */
void state_blob_set(struct eddy_state *st, const char *key, const void *data, size_t len);
int state_blob_get(struct eddy_state *st, const char *key, void **data, size_t *len);

/* Encodes every dirty entry and all offsets set since the last commit into
 * one atomic WriteBatch and hands it to a writer thread (write-behind): the
 * batch is durable once the next state_commit() or state_sync() returns 0,
 * which wait for it. It fails with the error of the previous batch's write,
 * if that failed (then nothing after the last durable commit is kept; the
 * caller must stop). After it succeeds (even with nothing to write), every
 * user and keyed value pointer handed out is invalid and the cache is shrunk to its
 * budget. */
int state_commit(struct eddy_state *st, char *err, size_t errlen);

/* Waits until every commit is written: 0, or -1 with the write's error. */
int state_sync(struct eddy_state *st, char *err, size_t errlen);

/* True when the caller should commit now, before its next checkpoint is
 * due by time or event count, to stay within cache_bytes: the values
 * waiting to be written reached their share of the budget (a commit copies
 * them twice, see state.c), or the cache is over budget with nothing it may
 * evict before a commit. Always false without a budget. Cheap: check it
 * after every event. */
bool state_commit_due(const struct eddy_state *st);

/* Evicts the cached users of one clicks partition not handed out since the
 * last commit (call it right after one: then that is all of them). Used
 * when the partition is revoked: its next owner may change them. */
void state_cache_drop_users(struct eddy_state *st, int32_t partition);

void state_stats(struct eddy_state *st, struct state_stats *out);

#endif
