/* state.h: all of eddy's durable state, behind one small API.
 *
 * RocksDB (one database, one column family per store) is the source of
 * truth. In front of it sits an in-memory cache: operators get pointers to
 * cached values, change them in place, mark them dirty, and state_commit()
 * writes every dirty value together with the consumed input offsets in ONE
 * atomic WriteBatch (WAL on). So after a crash the state and the offsets it
 * covers always agree: exactly-once state.
 *
 * The state knows no operator's values. An operator declares stores (struct
 * state_codec): a column family, a kind, and for a keyed store a versioned
 * value codec whose layout, encoding and JSON belong to the operator (the
 * users of operators/users.h, the campaigns of operators/budget.c). A keyed
 * store may be partitioned: its keys are an input partition, then an id, so
 * that one partition's values are one key range (STATE_PARTITIONED). A
 * dense store (STATE_DENSE) is the other layout: id -> one row of dim
 * floats, rows in arrival order, all rows in one matrix for sgemm.
 *
 * Ownership: values returned by state_get()/state_get_in()/state_find*()
 * (and passed to a state_foreach() callback) belong to the state; their
 * pointers stay valid until the next state_commit() or state_close(), and
 * no longer. One cache holds every keyed store's values within
 * state_options.cache_bytes, evicting with CLOCK the clean values not handed
 * out since the last commit. So an operator may hold values across further
 * state_get() calls within one process() or flush(), but must not keep
 * them across a commit. The cache exceeds its budget only when the values
 * touched since the last commit alone do (dirty ones are among them), or
 * while a commit is encoded or written: nothing is evicted then. The
 * foreach callback must not call state_get().
 *
 * Dense rows are not part of that budget: they live, all of them, in one
 * row-major float matrix (rows x dim); a pointer into it is valid only until
 * the next state_rows_add() on that store, which may grow (move) it.
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
    size_t cache_bytes;    /* memory budget: cached keyed values and RocksDB's
                              memtables and block cache, not dense rows;
                              0 = unlimited (and RocksDB's default sizes) */
    /* The stores, NULL-terminated (NULL: none). A stored database must
     * hold exactly these besides the state's own column families (default,
     * offsets, meta); a new one gets them. */
    const struct state_codec *const *stores;
};

struct json_t; /* jansson's */

/* The layout of a store's values. */
enum state_layout {
    STATE_KEYED,       /* key -> a value the codec defines, cached on demand */
    STATE_PARTITIONED, /* STATE_KEYED, keys being a partition (4 bytes
                          big-endian) then an id: see state_get_in() */
    STATE_DENSE,       /* id -> a row of dim floats, all loaded at open; the
                          codec's value callbacks are not used */
};

/* A store, declared by the operator that owns it. A keyed store's values
 * are the operator's: the state keeps each one in memory as a struct of
 * value_size bytes, aligned to 8 (zeroed, then init() or decode()), followed
 * by dim floats if vector is set (a flexible array member of the struct),
 * stores it as one version byte followed by what encode() writes, and
 * refuses a stored value of another version. dim is the state's
 * (state_dim()). */
struct state_codec {
    const char *name;      /* its column family, e.g. "campaigns" */
    const char *kind;      /* one value, e.g. "campaign": the "kind" of its JSON
                              and the kind `eddy state get` takes */
    enum state_layout layout;
    uint8_t version;       /* of the encoding; 0 is not valid */
    size_t value_size;
    bool vector;           /* the value ends in dim floats */
    void (*init)(void *value, int dim);       /* a value new to the store */
    size_t (*encoded_size)(const void *value, int dim);
    void (*encode)(const void *value, int dim, char *out); /* encoded_size() bytes */
    /* Reads what encode() wrote (the version byte stripped); false and why
     * if it is corrupt. value may own memory even then: free() frees it. */
    bool (*decode)(const char *in, size_t len, int dim, void *value, char *why,
                   size_t whylen);
    size_t (*heap_bytes)(const void *value);  /* held outside value_size, for
                                                 the cache budget; NULL: none */
    void (*free)(void *value);                /* what the value owns; NULL: nothing */
    /* Sets the value's fields on the JSON object doc (whose "kind" and "id",
     * and "partition" for a partitioned store, are set) as `eddy state
     * get/export` show them; st is the state it was read from (read-only).
     * Returns doc, or NULL (doc freed) if jansson runs out of memory. */
    struct json_t *(*to_json)(struct json_t *doc, const void *value, struct eddy_state *st);
};

struct state_stats {
    uint64_t cached, rows, dirty; /* cached keyed values; dense rows */
    uint64_t disk_bytes;       /* RocksDB estimate of live data size */
    uint64_t model_version;
    uint64_t cache_hits;         /* keyed lookups served from memory */
    uint64_t cache_misses;       /* lookups that read RocksDB, found or not */
    uint64_t cache_evictions;
    uint64_t cache_bytes;        /* estimated bytes of cached keyed values */
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

/* The store of a codec given to state_open() (matched by name), valid
 * until state_close(); NULL if it was not given. */
struct state_store *state_store(struct eddy_state *st, const struct state_codec *codec);
/* Cached values of a keyed store, or rows of a dense one. */
uint64_t state_store_count(const struct state_store *s);

/* Keyed stores. The value of key (cached, or read from RocksDB), or a new
 * one made by init() if create; NULL if none. A partitioned store's key
 * is the 4-byte partition and the id (state_get_in() builds it). */
void *state_get(struct state_store *s, struct eddy_str key, bool create);
/* state_get() without create, for readers that change nothing. */
const void *state_find(struct state_store *s, struct eddy_str key);
/* Marks a value from state_get() changed: the next commit writes it. Call
 * it again after the value's heap_bytes() changed, so the budget counts it. */
void state_dirty(struct state_store *s, void *value);
/* Deletes a value from state_get() (its key stays valid until the next
 * commit): readers find none, state_foreach() skips it, state_get() with
 * create makes it anew by init(), and the next commit deletes it from
 * RocksDB; a tombstone stays cached until evicted. Keyed and partitioned
 * stores only. */
void state_delete(struct state_store *s, void *value);
/* Deletes every value of the store, cached or only stored, for which
 * expired(value, ctx) is true, as state_delete() does; returns how many.
 * Unlike state_foreach() it caches no value it keeps: a stored value is
 * decoded, judged and dropped, so a sweep of a store larger than the cache
 * budget stays within it (a deleted value keeps a small tombstone in the
 * cache until the commit is written). Keyed and partitioned stores. */
size_t state_sweep(struct state_store *s, bool (*expired)(const void *value, void *ctx),
                   void *ctx);
/* The key of a value handed out by the state. */
struct eddy_str state_key(const void *value);
/* Visits every value of the store, stored or cached, in key order: the
 * order must not depend on what happens to be cached. */
void state_foreach(struct state_store *s, void (*fn)(void *value, void *ctx), void *ctx);

/* Partitioned stores: values are keyed by (input partition, id), so that
 * one partition's values are one contiguous key range, ready to be handed
 * to another instance. Log files (replay) are partition 0. */
void *state_get_in(struct state_store *s, int32_t partition, struct eddy_str id, bool create);
/* The value with this id in whichever partition holds it (the lowest if
 * several do), cached or committed, for readers that do not know the
 * partition (the HTTP API); NULL if none. */
void *state_find_any(struct state_store *s, struct eddy_str id);
/* Evicts the cached values of one partition not handed out since the last
 * commit (call it right after one: then that is all of them). Used when
 * the partition is revoked: its next owner may change them. */
void state_store_drop_partition(struct state_store *s, int32_t partition);
/* state_store_drop_partition() on every partitioned store. */
void state_drop_partition(struct eddy_state *st, int32_t partition);
/* Splits a partitioned key; false if it is too short. */
bool state_key_split(struct eddy_str key, int32_t *partition, struct eddy_str *id);

/* Dense stores: rows are assigned in arrival order and never change. A
 * writer changes a row only through the pointer state_rows_vec() returned
 * since the last commit (which saves an open snapshot's value first). */
int32_t state_rows_find(struct state_store *s, struct eddy_str id); /* -1 if unknown */
/* Adds a row of vec (zeros if NULL) for an id not there yet; its row, or
 * the existing row; -1 if the store is full. */
int32_t state_rows_add(struct state_store *s, struct eddy_str id, const float *vec);
float *state_rows_vec(struct state_store *s, uint32_t row); /* NULL past the last */
void state_rows_dirty(struct state_store *s, uint32_t row);
const float *state_rows_matrix(const struct state_store *s, uint32_t *n_rows);
struct eddy_str state_rows_id(const struct state_store *s, uint32_t row);

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
 * keyed value pointer handed out is invalid and the cache is shrunk to its
 * budget. */
int state_commit(struct eddy_state *st, char *err, size_t errlen);

/* state_commit() in slices, for a loop that must not stop for it (the live
 * pipeline: encoding a checkpoint took it 100 ms). state_commit_begin()
 * takes the commit's snapshot at once: the offsets and blobs set so far and
 * every value as it is now, whatever changes later; after it, as after
 * state_commit(), pointers handed out before are invalid. It first ends the
 * snapshot before it, if open, and waits for its write: like state_commit(),
 * the commit before is durable when it returns 0. state_commit_step()
 * encodes the snapshot for at most about max_us and returns 1 while some is
 * left; 0 once the batch went to the writer (or none was open); -1 with the
 * error of the write before. state_commit() and state_sync() end an open
 * snapshot first; state_close() drops it unwritten. A commit that deletes
 * values is encoded whole by state_commit_begin(). */
int state_commit_begin(struct eddy_state *st, char *err, size_t errlen);
int state_commit_step(struct eddy_state *st, uint64_t max_us, char *err, size_t errlen);

/* Waits until every commit is written: 0, or -1 with the write's error. */
int state_sync(struct eddy_state *st, char *err, size_t errlen);

/* True when the caller should commit now, before its next checkpoint is
 * due by time or event count, to stay within cache_bytes: the values
 * waiting to be written reached their share of the budget (a commit copies
 * them twice, see state.c), or the cache is over budget with nothing it may
 * evict before a commit. Always false without a budget. Cheap: check it
 * after every event. */
bool state_commit_due(const struct eddy_state *st);

void state_stats(struct eddy_state *st, struct state_stats *out);

#endif
