/* state.c: eddy's state on RocksDB, with an in-memory write-back cache.
 *
 * Layout: one RocksDB with a column family per store (struct state_codec)
 * and the state's own (cf_names[]: offsets, meta). Every value starts with
 * a 1-byte encoding version; the state's own values and dense rows follow it
 * with fixed-width little-endian fields, a keyed store's with the codec's
 * bytes, opaque here. A value of the wrong size or version is reported as
 * corruption, never read past.
 *
 * Cache: keyed values are loaded on first access; a dense store's rows are
 * all loaded at open into one row-major matrix so an operator can run sgemm
 * over it. Changed values are listed as dirty until state_commit() writes
 * them, the model version and the offsets in one WriteBatch.
 * One cache serves every keyed store: each store has a compact index
 * (open addressing, 8 bytes a slot) and a CLOCK hand over its slots, and
 * all share one byte budget. Each commit starts a new epoch; an entry handed
 * out in the current epoch is never evicted, which keeps every pointer valid
 * until the next commit (the contract in state.h) and, as dirty entries were
 * handed out in it too, keeps dirty entries in memory until they are
 * written.
 *
 * Write-behind: state_commit() encodes the dirty entries into a WriteBatch
 * on the caller's thread and hands it to one writer thread, which writes it
 * (WAL on) while the caller goes on. One batch is in flight at a time: the
 * next commit and state_sync() wait for it first. A cache miss does not:
 * nothing is evicted while a commit is being encoded or written
 * (cache_trim()), and a deleted value stays cached as a tombstone until its
 * delete is written, so every value of an unwritten commit is in the cache
 * and a miss never concerns one. (A miss used to wait for the write: with
 * live traffic, new users and items miss all the time, and the loop stopped
 * for the whole write of a checkpoint, 0.3-0.5 s every 5 s.) Scans and blob
 * reads still wait. A failed write is a sticky error like those below: its
 * entries were already marked clean, so the process must restart from the
 * last durable commit.
 *
 * Incremental commits (state_commit_begin()): encoding a checkpoint's dirty
 * values (tens of thousands of neighbour lists after 5 s of live traffic)
 * took 100 ms of the loop thread, a stall every checkpoint. So the live
 * pipeline takes the snapshot at once and encodes it in slices between
 * batches of input: the dirty lists become the snapshot's frozen lists and
 * the next epoch starts. An entry still dirty from an earlier epoch is
 * frozen: it is in the snapshot and not encoded yet. Whatever hands it out
 * (cache_touch(), the one door to a cached entry) encodes it first, so its
 * snapshot value is the one it had at the commit, however it changes after;
 * a frozen dense row is encoded by state_rows_vec(), which writers go
 * through. When the last one is encoded, the batch goes to the writer as a
 * whole commit would.
 *
 * Errors while lazily loading an entry (corrupt value, I/O error) cannot be
 * returned through state_get() & co.; they are kept as a sticky error that
 * makes every later state_commit() fail, so nothing computed from a bad read
 * is ever persisted. Out of memory aborts, like uthash does. */
#include "state/state.h"
#include "state/state_internal.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>
#include <xxhash.h>

/* XXH3: ~2 ns per 10-byte id here, against ~9.5 ns for uthash's default Jenkins. */
#define HASH_FUNCTION(keyptr, keylen, hashv) \
    ((hashv) = (unsigned)XXH3_64bits((keyptr), (keylen)))
#include <uthash.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "value encodings are little-endian memcpy; add byte swaps for this host");

#define ENC_VERSION 1
#define DENSE_INITIAL_ROWS 1024
#define ERR_ID_MAX 64 /* characters of an id quoted in an error message */
/* rocksdb::InfoLogLevel::HEADER_LEVEL (rocksdb/env.h); the C API has no name for it. */
#define ROCKSDB_LOG_HEADER_ONLY 5

/* The state's own column families; the stores' come between default and
 * offsets (cf_at()), where `eddy state` lists them. */
enum cf_index { CF_DEFAULT, CF_OFFSETS, CF_META, CF_COUNT };
static const char *const cf_names[CF_COUNT] = {"default", "offsets", "meta"};

/* A cached entry's bookkeeping for CLOCK, the budget and the commit. */
struct cache_meta {
    uint64_t epoch;  /* st->epoch when last handed out */
    uint32_t bytes;  /* what it counts against the budget */
    bool ref;        /* CLOCK reference bit */
    bool dirty;
    bool deleted;    /* state_delete(): absent to readers; the commit deletes
                      * it from RocksDB (it is dirty until then), and it is
                      * freed once that commit is written */
};

/* A cached value of a keyed store: 24 bytes besides the value and its key
 * (a user took 80 when users had an entry type of their own, and 176 with
 * a uthash handle, a CLOCK ring and a dirty list), which matters at
 * millions of users. No store pointer: every way to an entry is through
 * its store. One allocation: header, value (and vector), key. */
struct entry {
    struct cache_meta m;
    uint32_t key_len;
    uint32_t key_at;       /* the key's offset from the entry */
    uint64_t value[];      /* the codec's value_size bytes (then dim floats), 8-aligned */
};

/* A store's cached entries by key: a linear-probing table of entry
 * pointers, each tagged in its top 16 bits (unused by user-space addresses
 * on x86-64 and AArch64) with 16 bits of the key's hash, so that a probe
 * seldom follows a pointer that cannot match. 8 bytes a slot at most 3/4
 * full, against uthash's 56-byte handle plus a bucket per entry. */
struct index {
    uintptr_t *slot; /* 0: empty */
    size_t cap;      /* a power of two, or 0 */
    size_t count;
};

/* A dirty entry, kept with the first 12 bytes of its key inline,
 * big-endian and zero-padded, so that the commit's sort compares integers
 * instead of chasing two pointers per comparison (cache misses: that took
 * ~1.5 us per dirty user); 12 bytes cover a partition and 8 bytes of id. */
struct sort_rec {
    uint64_t hi;
    uint32_t lo;
    struct entry *e;
};

/* A dense store's row ids. */
struct dense_id {
    UT_hash_handle hh;
    uint32_t row;
    size_t id_len;
    char id[];
};

struct dense {
    struct dense_id *ids;            /* by id */
    struct dense_id **by_row;
    float *matrix;                   /* cap x dim, n used */
    uint32_t n, cap;
    uint32_t *dirty_rows;
    uint32_t n_dirty, dirty_cap;
    uint32_t *frozen_rows;           /* the open snapshot's (see below) */
    uint32_t n_frozen, frozen_cap, frozen_next;
    uint8_t *row_dirty;              /* by row: ROW_DIRTY if in dirty_rows,
                                      * ROW_FROZEN if in the open snapshot
                                      * and not encoded yet; its own array,
                                      * as every click marks a row and the
                                      * id entries are cache misses */
};

enum { ROW_CLEAN, ROW_DIRTY, ROW_FROZEN };

struct state_store {
    struct eddy_state *st;
    const struct state_codec *codec;
    rocksdb_column_family_handle_t *cf;
    /* keyed */
    struct index ix;
    size_t hand;              /* CLOCK hand: a slot of ix */
    uint64_t stale;           /* cached, not handed out in this epoch */
    struct sort_rec *dirty;   /* sorted at commit: no link in every entry */
    size_t n_dirty, dirty_cap;
    struct sort_rec *frozen;  /* the open snapshot's, see snapshot_begin() */
    size_t n_frozen, frozen_cap, frozen_next;
    struct entry **order;     /* state_foreach(): the cached entries by key */
    size_t order_cap;
    bool scanned;             /* all stored values are cached */
    bool ordered;             /* order holds every cached entry */
    int32_t max_partition;    /* highest partition cached; -1 none */
    /* dense */
    struct dense d;
};

struct offset_entry {
    UT_hash_handle hh;
    int64_t next_offset;
    bool dirty;
    size_t key_len;
    char key[];            /* topic '\0' partition (4 bytes big-endian) */
};

/* An operator's or the runtime's opaque blob, staged for the next commit. */
struct blob_entry {
    struct blob_entry *next;
    char *key;
    void *data;
    size_t len;
};

/* A deleted entry whose delete is in a batch not written yet. */
struct tombstone {
    struct state_store *s;
    struct entry *e;
};

/* The write-behind thread (see the top of the file). */
struct writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rocksdb_writebatch_t *batch;  /* handed over and not yet written; NULL idle */
    bool stop;
    char *error;                  /* of the write just done (rocksdb_free) */
    uint64_t write_us;
};

struct eddy_state {
    char *dir;
    int dim;
    bool read_only;

    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writebatch_t *batch;    /* the next commit's, filled here */
    rocksdb_writebatch_t *spare;    /* swapped with batch at each hand-over */
    size_t spare_bytes;             /* what the spare held when handed over */
    struct writer w;
    bool writer_started;
    bool in_flight;                 /* a batch was handed over, not yet waited for */
    uint64_t encode_us;             /* of the batch in flight */
    bool snapshot_open;             /* batch holds a commit still being encoded */
    struct tombstone *tombs;        /* deleted entries of unwritten commits: */
    size_t n_tombs, tombs_cap;      /* freed once their delete is written, */
    size_t tombs_in_flight;         /* these first ones with the batch in flight */
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_cache_t *block_cache;   /* NULL: RocksDB's default one */

    struct state_store *stores;
    size_t n_stores;
    struct offset_entry *offsets;

    struct blob_entry *blobs;        /* staged, newest first */

    uint64_t model_version;
    bool model_dirty;
    uint64_t n_dirty;

    size_t cache_bytes, cache_limit;
    size_t dirty_bytes, dirty_limit;  /* encoded size of what the next commit writes */
    uint64_t epoch;           /* number of successful commits */
    uint64_t hits, misses, evictions;
    uint64_t ckpt_us, ckpt_bytes, restore_us;
    int64_t ckpt_unix_ms;

    char *buf;                /* scratch for encoding values and keys */
    size_t buf_cap;
    char *key;                /* scratch for part_key() */
    size_t key_cap;

    uint64_t bg_errors;       /* RocksDB's background errors already checked */
    bool failed;              /* sticky error, see the top of the file */
    char err[512];
};

static void wait_writes(struct eddy_state *st);
static char *db_get(struct eddy_state *st, rocksdb_column_family_handle_t *cf, const char *key,
                    size_t klen, size_t *vlen, char **err);
static rocksdb_iterator_t *db_iterator(struct eddy_state *st, rocksdb_column_family_handle_t *cf);

/* ---- small helpers ------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "eddy state: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "eddy state: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* Empty ids may come as {NULL, 0}; memcmp/memcpy must not see NULL. */
static struct eddy_str nonnull(struct eddy_str s)
{
    if (!s.ptr)
        s.ptr = "";
    return s;
}

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Records the first lazy-load error; state_commit() reports it. */
static void fail(struct eddy_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct eddy_state *st, const char *fmt, ...)
{
    va_list ap;
    if (st->failed)
        return;
    st->failed = true;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
}

static char *scratch(struct eddy_state *st, size_t n)
{
    if (n > st->buf_cap) {
        st->buf_cap = n > 2 * st->buf_cap ? n : 2 * st->buf_cap;
        st->buf = xrealloc(st->buf, st->buf_cap);
    }
    return st->buf;
}

static char *put(char *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

/* A partitioned store's keys: the input partition as 4 bytes big-endian,
 * then the id, so that one partition's entries are one contiguous key range
 * that a scale-out can hand to another instance. */
#define PART_PREFIX 4

static struct eddy_str part_key(struct eddy_state *st, int32_t partition, struct eddy_str id)
{
    size_t n = PART_PREFIX + id.len;
    if (n > st->key_cap) {
        st->key_cap = n * 2;
        st->key = xrealloc(st->key, st->key_cap);
    }
    uint32_t be = __builtin_bswap32((uint32_t)partition);
    memcpy(st->key, &be, PART_PREFIX);
    if (id.len)
        memcpy(st->key + PART_PREFIX, id.ptr, id.len);
    return (struct eddy_str){st->key, n};
}

/* A stored key shorter than the prefix is caught by state_key_split(). */
static struct eddy_str key_id(struct eddy_str key)
{
    return key.len < PART_PREFIX ? (struct eddy_str){key.ptr, 0}
                                 : (struct eddy_str){key.ptr + PART_PREFIX, key.len - PART_PREFIX};
}

static int32_t key_partition(struct eddy_str key)
{
    uint32_t be = 0;
    if (key.len >= PART_PREFIX)
        memcpy(&be, key.ptr, PART_PREFIX);
    return (int32_t)__builtin_bswap32(be);
}

bool state_key_split(struct eddy_str key, int32_t *partition, struct eddy_str *id)
{
    if (key.len < PART_PREFIX)
        return false;
    *partition = key_partition(key);
    *id = key_id(key);
    return true;
}

static int id_quote_len(size_t len)
{
    return (int)(len < ERR_ID_MAX ? len : ERR_ID_MAX);
}

/* Checks a value's version byte and size. On mismatch writes the reason. */
static bool value_ok(const char *v, size_t len, size_t want, char *why, size_t whylen)
{
    if (len < 1 || (uint8_t)v[0] != ENC_VERSION) {
        snprintf(why, whylen, "unknown value encoding %d", len ? (uint8_t)v[0] : -1);
        return false;
    }
    if (len != want) {
        snprintf(why, whylen, "value is %zu bytes, expected %zu", len, want);
        return false;
    }
    return true;
}

static uint64_t clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- value encodings ---------------------------------------------------- */

/* A dense row: the version byte, the row (4 bytes), dim floats. */
static size_t dense_value_size(int dim)
{
    return 1 + 4 + (size_t)dim * 4;
}

static size_t dense_encode(struct eddy_state *st, const struct dense *d, uint32_t row)
{
    size_t n = dense_value_size(st->dim);
    char *p = scratch(st, n);
    *p++ = ENC_VERSION;
    p = put(p, &row, 4);
    put(p, d->matrix + (size_t)row * st->dim, (size_t)st->dim * 4);
    return n;
}

/* A keyed value: the codec's version byte, then the codec's bytes. */
static size_t keyed_encode(struct eddy_state *st, const struct state_codec *c,
                           const void *value)
{
    size_t n = 1 + c->encoded_size(value, st->dim);
    char *p = scratch(st, n);
    p[0] = (char)c->version;
    c->encode(value, st->dim, p + 1);
    return n;
}

static bool keyed_decode(const struct state_codec *c, int dim, const char *v, size_t len,
                         void *value, char *why, size_t whylen)
{
    if (len < 1 || (uint8_t)v[0] != c->version) {
        snprintf(why, whylen, "value version %d, this eddy reads %s values of version %d",
                 len ? (uint8_t)v[0] : -1, c->kind, c->version);
        return false;
    }
    return c->decode(v + 1, len - 1, dim, value, why, whylen);
}

/* int64 values (offsets, meta): version byte + 8 bytes. */
static void i64_encode(char v[9], int64_t x)
{
    v[0] = ENC_VERSION;
    memcpy(v + 1, &x, 8);
}

static bool i64_decode(const char *v, size_t len, int64_t *x, char *why, size_t whylen)
{
    if (!value_ok(v, len, 9, why, whylen))
        return false;
    memcpy(x, v + 1, 8);
    return true;
}

/* ---- opening ------------------------------------------------------------ */

/* A directory that does not exist or is empty gets a new database. */
static int dir_is_fresh(const char *dir, bool *fresh, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT) {
            fmt_err(err, errlen, "state %s: %s", dir, strerror(errno));
            return -1;
        }
        *fresh = true;
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fmt_err(err, errlen, "state %s: exists and is not a directory", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fmt_err(err, errlen, "state %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    *fresh = true;
    while (*fresh && (de = readdir(d)))
        *fresh = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return 0;
}

/* The stores of the codecs in opt, in their order. */
static void init_stores(struct eddy_state *st, const struct state_options *opt)
{
    while (opt->stores && opt->stores[st->n_stores])
        st->n_stores++;
    st->stores = xcalloc(st->n_stores * sizeof *st->stores);
    for (size_t i = 0; i < st->n_stores; i++)
        st->stores[i] = (struct state_store){.st = st, .codec = opt->stores[i],
                                             .max_partition = -1};
}

static size_t cf_count(const struct eddy_state *st)
{
    return CF_COUNT + st->n_stores;
}

/* The k-th column family, in the order `eddy state` shows them (default,
 * the stores in their order, offsets, meta): sets its name and returns
 * where its handle is kept. k < cf_count(). */
static rocksdb_column_family_handle_t **cf_at(struct eddy_state *st, size_t k,
                                              const char **name)
{
    if (k > CF_DEFAULT && k - 1 < st->n_stores) {
        struct state_store *s = &st->stores[k - 1];
        *name = s->codec->name;
        return &s->cf;
    }
    k = k == CF_DEFAULT ? k : k - st->n_stores;
    *name = cf_names[k];
    return &st->cf[k];
}

/* The index of the column family of that name; cf_count() if none. */
static size_t cf_find(struct eddy_state *st, const char *name)
{
    size_t k = 0;
    const char *n;
    for (; k < cf_count(st); k++) {
        cf_at(st, k, &n);
        if (!strcmp(n, name))
            break;
    }
    return k;
}

/* An existing directory must hold a RocksDB whose column families are all
 * eddy's (the state's own and the stores'), including `meta`; missing ones
 * are created only when allowed. */
static int check_column_families(struct eddy_state *st, bool may_create,
                                 char *err, size_t errlen)
{
    char *rerr = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(st->opts, st->dir, &n, &rerr);
    if (rerr) {
        rocksdb_list_column_families_destroy(names, n); /* allocated even on error */
        fmt_err(err, errlen, "state %s: not a readable RocksDB database: %s", st->dir, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    bool *present = xcalloc(cf_count(st) * sizeof *present);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t k = cf_find(st, names[i]);
        if (k == cf_count(st)) {
            fmt_err(err, errlen, "state %s: not an eddy state database "
                    "(unexpected column family '%s')", st->dir, names[i]);
            rc = -1;
        } else {
            present[k] = true;
        }
    }
    rocksdb_list_column_families_destroy(names, n);
    if (rc == 0 && !present[cf_find(st, "meta")]) {
        fmt_err(err, errlen, "state %s: not an eddy state database (no 'meta' column family)",
                st->dir);
        rc = -1;
    }
    for (size_t k = 0; k < cf_count(st) && rc == 0; k++) {
        const char *name;
        cf_at(st, k, &name);
        if (!present[k] && !may_create) {
            fmt_err(err, errlen, "state %s: column family '%s' is missing", st->dir, name);
            rc = -1;
        }
    }
    free(present);
    return rc;
}

/* A memory budget is the state's, not just the cache's. A commit holds the
 * values it writes twice more for a moment, in the WriteBatch and in a
 * memtable (which grows past its size to take a whole batch), and with
 * write-behind the next batch fills while one is written, so the split
 * reserves room for that: cached entries get 7/16 of the budget; the dirty
 * values of one checkpoint 1/16 (state_commit_due() says when they reach
 * it), which two WriteBatches and the memtable copy (1/4 in all); the other
 * memtables 1/8 (1/16 per column family, so that one can flush while the
 * next fills); the block cache 1/32; the rest is headroom for malloc's
 * overhead and RocksDB's table readers. `make bench` checks peak RSS. */
static void size_memory(struct eddy_state *st, size_t budget,
                        rocksdb_block_based_table_options_t *bbo)
{
    if (!budget) {
        st->cache_limit = SIZE_MAX;
        st->dirty_limit = SIZE_MAX;
        return; /* RocksDB's defaults: 64 MB memtables, an 8 MB block cache */
    }
    st->cache_limit = budget / 16 * 7;
    st->dirty_limit = budget / 16;
    rocksdb_options_set_write_buffer_size(st->opts, budget / 16);
    rocksdb_options_set_db_write_buffer_size(st->opts, budget / 8);
    st->block_cache = rocksdb_cache_create_lru(budget / 32);
    rocksdb_block_based_options_set_block_cache(bbo, st->block_cache);
}

static void make_options(struct eddy_state *st, bool create, size_t budget)
{
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, create);
    rocksdb_options_set_error_if_exists(st->opts, create);
    rocksdb_options_set_create_missing_column_families(st->opts, !st->read_only);
    /* Bloom filters: first accesses of new users and keys are point misses;
     * and a cache miss is a point lookup that a memtable bloom filter lets
     * skip the memtable's skiplist (measured: a miss ~30% cheaper). */
    rocksdb_block_based_table_options_t *bbo = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(bbo, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_memtable_whole_key_filtering(st->opts, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->opts, 0.02);
    size_memory(st, budget, bbo);
    /* Float vectors hardly compress: snappy only cost CPU in flushes and
     * compactions and a copy per block read (measured with perf). */
    rocksdb_options_set_compression(st->opts, rocksdb_no_compression);
    /* RocksDB's info LOG is a file in the state directory. Once a write to
     * it fails (a full disk), its writer is marked failed and the LOG's next
     * line trips an assertion that Debian's 7.8.3 keeps
     * (WritableFileWriter::AssertFalseAndGetStatusForPrevError): on a full
     * disk the SstFileManager's recovery thread logs an ERROR every few
     * seconds, and eddy aborted there (exit 134) instead of reporting the
     * failed write. The 7.8 C API cannot install another logger. At HEADER
     * level RocksDB writes the LOG at open only (the options dump), so no
     * line ever follows a failed write to it. RocksDB's errors still reach
     * eddy as the status of each call, and eddy logs those. */
    rocksdb_options_set_info_log_level(st->opts, ROCKSDB_LOG_HEADER_ONLY);
    rocksdb_options_set_block_based_table_factory(st->opts, bbo);
    rocksdb_block_based_options_destroy(bbo);
    st->ropts = rocksdb_readoptions_create();
    st->wopts = rocksdb_writeoptions_create(); /* WAL on, no fsync */
    st->batch = rocksdb_writebatch_create();
    st->spare = rocksdb_writebatch_create();
}

static int open_db(struct eddy_state *st, char *err, size_t errlen)
{
    size_t n = cf_count(st);
    const char **names = xcalloc(n * sizeof *names);
    const rocksdb_options_t **cf_opts = xcalloc(n * sizeof *cf_opts);
    rocksdb_column_family_handle_t **cf = xcalloc(n * sizeof *cf);
    char *rerr = NULL;
    for (size_t k = 0; k < n; k++) {
        cf_at(st, k, &names[k]);
        cf_opts[k] = st->opts;
    }
    if (st->read_only)
        st->db = rocksdb_open_for_read_only_column_families(
            st->opts, st->dir, (int)n, names, cf_opts, cf, 0, &rerr);
    else
        st->db = rocksdb_open_column_families(st->opts, st->dir, (int)n, names, cf_opts, cf,
                                              &rerr);
    for (size_t k = 0; k < n && !rerr; k++)
        *cf_at(st, k, &names[k]) = cf[k];
    free(names);
    free(cf_opts);
    free(cf);
    if (rerr) {
        /* RocksDB's LOCK file: another process (or handle) owns the state. */
        int rc = strstr(rerr, "lock") ? STATE_BUSY : -1;
        fmt_err(err, errlen, "state %s: cannot open: %s", st->dir, rerr);
        rocksdb_free(rerr);
        st->db = NULL;
        return rc;
    }
    return 0;
}

/* Reads meta[key]; returns 1 if found, 0 if absent, -1 on error. */
static int meta_get(struct eddy_state *st, const char *key, int64_t *x,
                    char *err, size_t errlen)
{
    char *rerr = NULL, why[128];
    size_t len = 0;
    char *v = db_get(st, st->cf[CF_META], key, strlen(key), &len, &rerr);
    int rc = 1;
    if (rerr) {
        fmt_err(err, errlen, "state %s: reading meta/%s: %s", st->dir, key, rerr);
        rc = -1;
    } else if (!v) {
        rc = 0;
    } else if (!i64_decode(v, len, x, why, sizeof why)) {
        fmt_err(err, errlen, "state %s: corrupt meta/%s: %s", st->dir, key, why);
        rc = -1;
    }
    rocksdb_free(rerr);
    rocksdb_free(v);
    return rc;
}

static void batch_put_i64(struct eddy_state *st, enum cf_index cf, const char *key,
                          size_t klen, int64_t x)
{
    char v[9];
    i64_encode(v, x);
    rocksdb_writebatch_put_cf(st->batch, st->cf[cf], key, klen, v, sizeof v);
}

/* ---- write-behind ---------------------------------------------------------- */

static void *writer_main(void *arg)
{
    struct eddy_state *st = arg;
    struct writer *w = &st->w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->batch && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->batch)
            break;
        rocksdb_writebatch_t *b = w->batch;
        pthread_mutex_unlock(&w->mu);
        uint64_t t0 = clock_us(CLOCK_MONOTONIC);
        char *rerr = NULL;
        rocksdb_write(st->db, st->wopts, b, &rerr);
        rocksdb_writebatch_clear(b);
        uint64_t us = clock_us(CLOCK_MONOTONIC) - t0;
        pthread_mutex_lock(&w->mu);
        w->error = rerr;
        w->write_us = us;
        w->batch = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void start_writer(struct eddy_state *st)
{
    pthread_mutex_init(&st->w.mu, NULL);
    pthread_cond_init(&st->w.cv, NULL);
    if (pthread_create(&st->w.thread, NULL, writer_main, st)) {
        fprintf(stderr, "eddy state: cannot start the writer thread\n");
        abort();
    }
    st->writer_started = true;
}

static void stop_writer(struct eddy_state *st)
{
    if (!st->writer_started)
        return;
    pthread_mutex_lock(&st->w.mu);
    st->w.stop = true;
    pthread_cond_broadcast(&st->w.cv);
    pthread_mutex_unlock(&st->w.mu);
    pthread_join(st->w.thread, NULL);
    pthread_cond_destroy(&st->w.cv);
    pthread_mutex_destroy(&st->w.mu);
    st->writer_started = false;
}

/* A written batch is cleared for reuse, and clearing keeps its buffer at
 * its high-water mark. A catch-up's checkpoints (up to 1/16 of the budget)
 * are many times a steady one's, so such a buffer stayed resident: in the
 * soak, up to 70 MB outside what the state's metrics show until the next
 * checkpoint. A batch that held more than this is freed once written. */
#define BATCH_KEEP_BYTES (8u << 20)

/* Ends the write of the batch in flight, if any: a failed write becomes the
 * sticky error, and a large batch is freed. block: wait for the write;
 * otherwise return at once if it is still going. */
static void free_tombstones(struct eddy_state *st);

static void finish_write(struct eddy_state *st, bool block)
{
    if (!st->in_flight)
        return;
    struct writer *w = &st->w;
    pthread_mutex_lock(&w->mu);
    if (!block && w->batch) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    while (w->batch)
        pthread_cond_wait(&w->cv, &w->mu);
    char *rerr = w->error;
    w->error = NULL;
    uint64_t us = w->write_us;
    pthread_mutex_unlock(&w->mu);
    st->in_flight = false;
    free_tombstones(st);
    if (st->spare_bytes > BATCH_KEEP_BYTES) {
        rocksdb_writebatch_destroy(st->spare);
        st->spare = rocksdb_writebatch_create();
    }
    if (rerr) {
        fail(st, "state %s: commit: %s", st->dir, rerr);
        rocksdb_free(rerr);
        return;
    }
    st->ckpt_us = st->encode_us + us;
    st->ckpt_unix_ms = (int64_t)(clock_us(CLOCK_REALTIME) / 1000);
}

/* Waits until the batch in flight, if any, is written. Cheap when nothing
 * is in flight. */
static void wait_writes(struct eddy_state *st)
{
    finish_write(st, true);
}

/* Hands st->batch (bytes long) to the writer; the spare, written and
 * cleared by then, becomes the one to fill. */
static void hand_over(struct eddy_state *st, size_t bytes)
{
    rocksdb_writebatch_t *b = st->batch;
    st->batch = st->spare;
    st->spare = b;
    st->spare_bytes = bytes;
    pthread_mutex_lock(&st->w.mu);
    st->w.batch = b;
    pthread_cond_broadcast(&st->w.cv);
    pthread_mutex_unlock(&st->w.mu);
    st->in_flight = true;
    st->tombs_in_flight = st->n_tombs;
}

/* Every read of RocksDB but a cached store's (entry_load()) goes through
 * these two: they wait for the batch in flight first, so no read returns a
 * value older than a commit. */
static char *db_get(struct eddy_state *st, rocksdb_column_family_handle_t *cf, const char *key,
                    size_t klen, size_t *vlen, char **err)
{
    wait_writes(st);
    return rocksdb_get_cf(st->db, st->ropts, cf, key, klen, vlen, err);
}

static rocksdb_iterator_t *db_iterator(struct eddy_state *st, rocksdb_column_family_handle_t *cf)
{
    wait_writes(st);
    return rocksdb_create_iterator_cf(st->db, st->ropts, cf);
}

static int write_batch(struct eddy_state *st, const char *what, char *err, size_t errlen)
{
    char *rerr = NULL;
    wait_writes(st);
    rocksdb_write(st->db, st->wopts, st->batch, &rerr);
    rocksdb_writebatch_clear(st->batch);
    if (rerr) {
        fmt_err(err, errlen, "state %s: %s: %s", st->dir, what, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

static int init_meta(struct eddy_state *st, char *err, size_t errlen)
{
    batch_put_i64(st, CF_META, "format_version", 14, STATE_FORMAT_VERSION);
    batch_put_i64(st, CF_META, "dim", 3, st->dim);
    batch_put_i64(st, CF_META, "model_version", 13, 0);
    return write_batch(st, "writing meta", err, errlen);
}

/* Reads a meta key that must be there once format_version is. */
static int meta_require(struct eddy_state *st, const char *key, int64_t *x,
                        char *err, size_t errlen)
{
    int rc = meta_get(st, key, x, err, errlen);
    if (rc == 0)
        fmt_err(err, errlen, "state %s: corrupt: meta/%s is missing", st->dir, key);
    return rc == 1 ? 0 : -1;
}

static int check_meta(struct eddy_state *st, char *err, size_t errlen)
{
    int64_t version = 0, dim = 0, mv = 0;
    int rc = meta_get(st, "format_version", &version, err, errlen);
    if (rc == 0)
        fmt_err(err, errlen, "state %s: not an eddy state database (no meta/format_version)",
                st->dir);
    if (rc <= 0)
        return -1;
    if (version != STATE_FORMAT_VERSION) {
        fmt_err(err, errlen, "state %s: format version %lld, this eddy reads version %d",
                st->dir, (long long)version, STATE_FORMAT_VERSION);
        return -1;
    }
    if (meta_require(st, "dim", &dim, err, errlen) ||
        meta_require(st, "model_version", &mv, err, errlen))
        return -1;
    if (st->dim == 0 && dim >= 1 && dim <= 1 << 16)
        st->dim = (int)dim; /* dim 0 asks for the stored one, see state_options */
    if (dim != st->dim) {
        fmt_err(err, errlen, "state %s: stored embedding dim is %lld, configured dim is %d",
                st->dir, (long long)dim, st->dim);
        return -1;
    }
    st->model_version = (uint64_t)mv;
    return 0;
}

static void dense_grow(struct eddy_state *st, struct dense *d, uint32_t rows)
{
    if (rows <= d->cap)
        return;
    uint32_t cap = d->cap ? d->cap : DENSE_INITIAL_ROWS;
    while (cap < rows)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    d->matrix = xrealloc(d->matrix, (size_t)cap * st->dim * sizeof(float));
    d->by_row = xrealloc(d->by_row, (size_t)cap * sizeof *d->by_row);
    memset(d->by_row + d->cap, 0, (size_t)(cap - d->cap) * sizeof *d->by_row);
    d->row_dirty = xrealloc(d->row_dirty, cap);
    memset(d->row_dirty + d->cap, 0, cap - d->cap);
    d->cap = cap;
}

static void dense_insert(struct dense *d, struct eddy_str id, uint32_t row)
{
    struct dense_id *e = xcalloc(sizeof *e + id.len);
    e->row = row;
    e->id_len = id.len;
    put(e->id, id.ptr, id.len);
    HASH_ADD_KEYPTR(hh, d->ids, e->id, e->id_len, e);
    d->by_row[row] = e;
}

static int count_keys(struct state_store *s, uint32_t *n, char *err, size_t errlen)
{
    rocksdb_iterator_t *it = db_iterator(s->st, s->cf);
    char *rerr = NULL;
    *n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        (*n)++;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr) {
        fmt_err(err, errlen, "state %s: reading %s: %s", s->st->dir, s->codec->name, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

static int load_row(struct state_store *s, const char *k, size_t klen, const char *v,
                    size_t vlen, uint32_t n, char *err, size_t errlen)
{
    struct eddy_state *st = s->st;
    char why[128];
    uint32_t row;
    if (!value_ok(v, vlen, dense_value_size(st->dim), why, sizeof why)) {
        fmt_err(err, errlen, "state %s: corrupt %s/%.*s: %s", st->dir, s->codec->name,
                id_quote_len(klen), k, why);
        return -1;
    }
    memcpy(&row, v + 1, 4);
    if (row >= n || s->d.by_row[row]) {
        fmt_err(err, errlen, "state %s: corrupt %s/%.*s: row %u duplicate or beyond %u rows",
                st->dir, s->codec->name, id_quote_len(klen), k, row, n);
        return -1;
    }
    memcpy(s->d.matrix + (size_t)row * st->dim, v + 5, (size_t)st->dim * 4);
    dense_insert(&s->d, (struct eddy_str){k, klen}, row);
    return 0;
}

/* A dense store is loaded whole: n distinct rows below n cover 0..n-1 exactly. */
static int load_dense(struct state_store *s, char *err, size_t errlen)
{
    uint32_t n;
    if (count_keys(s, &n, err, errlen))
        return -1;
    dense_grow(s->st, &s->d, n);
    rocksdb_iterator_t *it = db_iterator(s->st, s->cf);
    uint32_t loaded = 0;
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = load_row(s, k, klen, v, vlen, n, err, errlen)) == 0)
            loaded++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rc == 0 && (rerr || loaded != n)) {
        fmt_err(err, errlen, "state %s: reading %s: %s", s->st->dir, s->codec->name,
                rerr ? rerr : "row count changed while loading");
        rc = -1;
    }
    rocksdb_free(rerr);
    s->d.n = loaded;
    return rc;
}

static int load_dense_stores(struct eddy_state *st, char *err, size_t errlen)
{
    for (size_t i = 0; i < st->n_stores; i++)
        if (st->stores[i].codec->layout == STATE_DENSE &&
            load_dense(&st->stores[i], err, errlen))
            return -1;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A new state is made whole in a sibling directory, then renamed into
 * place: RocksDB writes CURRENT before it adds the column families, and the
 * meta record comes after them, so a process killed while creating the
 * state in place left a database that later opens refused. Killed here, it
 * leaves DIR.creating.PID, which no open looks at. */
static int create_state(const struct state_options *opt, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.creating.%ld", opt->dir, (long)getpid()) >=
        (int)sizeof tmp) {
        fmt_err(err, errlen, "state %s: path too long", opt->dir);
        return -1;
    }
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* a pid's leftover */
    struct eddy_state *st = xcalloc(sizeof *st);
    st->dir = xstrdup(tmp);
    st->dim = opt->dim;
    init_stores(st, opt);
    make_options(st, true, opt->cache_bytes);
    int rc = open_db(st, err, errlen);
    if (rc == 0)
        rc = init_meta(st, err, errlen);
    state_close(st);
    if (rc == 0 && rename(tmp, opt->dir)) {
        fmt_err(err, errlen, "state %s: cannot move the new state into place: %s", opt->dir,
                strerror(errno));
        rc = -1;
    }
    if (rc)
        nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc == STATE_BUSY ? STATE_BUSY : rc ? -1 : 0;
}

int state_open(const struct state_options *opt, struct eddy_state **out,
               char *err, size_t errlen)
{
    bool fresh = false;
    uint64_t t0 = clock_us(CLOCK_MONOTONIC);
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!opt->dir || !*opt->dir || opt->dim < 0 || opt->dim > 1 << 16) {
        fmt_err(err, errlen, "state %s: need a directory and a dim in 0..65536 (got %d)",
                opt->dir ? opt->dir : "(null)", opt->dim);
        return -1;
    }
    if (dir_is_fresh(opt->dir, &fresh, err, errlen))
        return -1;
    if (fresh && opt->dim == 0 && opt->create_if_missing && !opt->read_only) {
        fmt_err(err, errlen, "state %s: creating a state needs a dim (got 0)", opt->dir);
        return -1;
    }
    if (fresh && (!opt->create_if_missing || opt->read_only)) {
        fmt_err(err, errlen, "state %s: no state database there%s", opt->dir,
                opt->read_only ? "" : " (create_if_missing is off)");
        return -1;
    }
    if (fresh) {
        int created = create_state(opt, err, errlen);
        if (created)
            return created;
    }
    struct eddy_state *st = xcalloc(sizeof *st);
    st->dir = xstrdup(opt->dir);
    st->dim = opt->dim;
    st->read_only = opt->read_only;
    init_stores(st, opt);
    make_options(st, false, opt->cache_bytes);
    int rc = check_column_families(st, opt->create_if_missing && !opt->read_only, err, errlen);
    if (rc == 0)
        rc = open_db(st, err, errlen);
    if (rc == 0)
        rc = check_meta(st, err, errlen);
    if (rc == 0)
        rc = load_dense_stores(st, err, errlen);
    if (rc) {
        state_close(st);
        return rc == STATE_BUSY ? STATE_BUSY : -1;
    }
    st->restore_us = clock_us(CLOCK_MONOTONIC) - t0;
    *out = st;
    return 0;
}

int state_dim(const struct eddy_state *st)
{
    return st->dim;
}

/* ---- index: a store's cached entries by key ------------------------------ */

#define TAG_SHIFT 48
#define ADDR_MASK (((uintptr_t)1 << TAG_SHIFT) - 1)

static uint64_t key_hash(const char *key, size_t len)
{
    return XXH3_64bits(key, len);
}

static char *entry_key(const struct entry *e)
{
    return (char *)e + e->key_at;
}

static uint64_t entry_hash(const struct entry *e)
{
    return key_hash(entry_key(e), e->key_len);
}

static struct entry *slot_entry(uintptr_t slot)
{
    return (struct entry *)(slot & ADDR_MASK);
}

static uintptr_t slot_tag(uint64_t hash)
{
    return (uintptr_t)(hash >> TAG_SHIFT) << TAG_SHIFT;
}

static void index_place(uintptr_t *slot, size_t cap, uintptr_t s, uint64_t hash)
{
    size_t i = hash & (cap - 1);
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = s;
}

static void index_grow(struct index *ix)
{
    size_t cap = ix->cap ? 2 * ix->cap : 1024;
    uintptr_t *slot = xcalloc(cap * sizeof *slot);
    for (size_t i = 0; i < ix->cap; i++) {
        const struct entry *e = slot_entry(ix->slot[i]);
        if (e)
            index_place(slot, cap, ix->slot[i], entry_hash(e));
    }
    free(ix->slot);
    ix->slot = slot;
    ix->cap = cap;
}

static struct entry *index_find(const struct index *ix, const char *key, size_t len)
{
    if (!ix->count)
        return NULL;
    uint64_t h = key_hash(key, len);
    uintptr_t tag = slot_tag(h);
    for (size_t i = h & (ix->cap - 1); ix->slot[i]; i = (i + 1) & (ix->cap - 1)) {
        struct entry *e = slot_entry(ix->slot[i]);
        if ((ix->slot[i] & ~ADDR_MASK) == tag && e->key_len == len &&
            !memcmp(entry_key(e), key, len))
            return e;
    }
    return NULL;
}

/* Adds an entry whose key is not in the index. */
static void index_add(struct index *ix, struct entry *e)
{
    if ((uintptr_t)e & ~ADDR_MASK) {
        fprintf(stderr, "eddy state: heap address %p has its top 16 bits set\n", (void *)e);
        abort();
    }
    if ((ix->count + 1) * 4 > ix->cap * 3)
        index_grow(ix);
    uint64_t h = entry_hash(e);
    index_place(ix->slot, ix->cap, (uintptr_t)e | slot_tag(h), h);
    ix->count++;
}

/* Removes an entry, then closes the gap: each later entry of the probe run
 * whose home slot is not between the gap and itself moves into the gap. */
static void index_del(struct index *ix, const struct entry *e)
{
    size_t mask = ix->cap - 1, i = entry_hash(e) & mask;
    while (slot_entry(ix->slot[i]) != e)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; ix->slot[j]; j = (j + 1) & mask) {
        size_t home = entry_hash(slot_entry(ix->slot[j])) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->slot[i] = ix->slot[j];
            i = j;
        }
    }
    ix->slot[i] = 0;
    ix->count--;
}

/* ---- cache: CLOCK over every keyed store's entries ----------------------- */

/* Memory an entry costs besides its own fields: glibc's chunk header and
 * rounding per allocation, and its share of the index (8-byte slots at most
 * 3/4 full: 11 to 21 bytes an entry). An estimate; `make bench` compares
 * the budget with peak RSS. */
#define MALLOC_OVERHEAD 16
#define BUCKET_OVERHEAD 16

/* Where a store's entries keep their key: after the header, the value and
 * its vector. */
static size_t entry_size(const struct state_store *s)
{
    const struct state_codec *c = s->codec;
    return sizeof(struct entry) + c->value_size +
           (c->vector ? (size_t)s->st->dim * sizeof(float) : 0);
}

static size_t entry_bytes(const struct state_store *s, const struct entry *e)
{
    const struct state_codec *c = s->codec;
    size_t heap = c->heap_bytes ? c->heap_bytes(e->value) : 0;
    return e->key_at + e->key_len + MALLOC_OVERHEAD + BUCKET_OVERHEAD +
           (heap ? heap + MALLOC_OVERHEAD : 0);
}

static void entry_free(const struct state_store *s, struct entry *e)
{
    if (s->codec->free)
        s->codec->free(e->value);
    free(e);
}

/* Re-counts an entry whose size changed (its value's heap grew). */
static void cache_account(struct eddy_state *st, struct cache_meta *m, size_t bytes)
{
    st->cache_bytes = st->cache_bytes - m->bytes + bytes;
    m->bytes = (uint32_t)bytes;
}

/* An entry handed out: CLOCK gives it a second chance, and it stays until
 * the next commit at least, since the caller may hold its pointer until
 * then. */
static void snapshot_put(struct state_store *s, struct entry *e);
static int snapshot_finish(struct eddy_state *st, char *err, size_t errlen);

static void cache_touch(struct state_store *s, struct entry *e)
{
    e->m.ref = true;
    if (e->m.epoch != s->st->epoch) {
        if (e->m.dirty) /* frozen: its snapshot value first (see the top) */
            snapshot_put(s, e);
        else
            s->stale--;
        e->m.epoch = s->st->epoch;
    }
}

/* Counts a new entry, handed out in this epoch. */
static void cache_add(struct eddy_state *st, struct cache_meta *m, size_t bytes)
{
    m->epoch = st->epoch;
    m->ref = true;
    m->bytes = (uint32_t)bytes;
    st->cache_bytes += bytes;
}

/* Frees a stale entry. A stale entry is clean: marking dirty needs a
 * pointer handed out in this epoch, and a commit cleans all before a new
 * epoch. */
static void evict(struct state_store *s, struct entry *e)
{
    index_del(&s->ix, e);
    s->st->cache_bytes -= e->m.bytes;
    s->stale--;
    s->st->evictions++;
    s->scanned = false; /* state_foreach() must read it again */
    s->ordered = false;
    entry_free(s, e);
}

/* One step of a store's CLOCK hand, which sweeps its index's slots (no list
 * through the entries: 16 bytes an entry saved). Evicting an entry may move
 * a later one of its probe run into the slot: the hand stays there. */
static void sweep(struct state_store *s)
{
    size_t i = s->hand & (s->ix.cap - 1);
    struct entry *e = slot_entry(s->ix.slot[i]);
    s->hand = i + 1;
    if (!e || e->m.epoch == s->st->epoch)
        return;
    if (e->m.ref) {
        e->m.ref = false;
        return;
    }
    evict(s, e);
    s->hand = i;
}

/* The store with the most stale entries, which CLOCK sweeps next: the
 * large ones (users) before the few, small and hot ones (campaigns). NULL
 * if none has any. */
static struct state_store *most_stale(struct eddy_state *st)
{
    struct state_store *best = NULL;
    for (size_t i = 0; i < st->n_stores; i++)
        if (st->stores[i].stale && (!best || st->stores[i].stale > best->stale))
            best = &st->stores[i];
    return best;
}

/* CLOCK: while over budget, a hand clears reference bits and evicts the
 * first stale entry found with its bit clear. Entries of this epoch are
 * passed over; with a stale entry left, the hand finds a victim within two
 * turns. */
static void cache_trim(struct eddy_state *st)
{
    finish_write(st, false); /* a write just done lets values go */
    if (st->snapshot_open || st->in_flight)
        return; /* see the top: a miss must not concern an unwritten value */
    struct state_store *s;
    while (st->cache_bytes > st->cache_limit && (s = most_stale(st)))
        while (st->cache_bytes > st->cache_limit && s->stale)
            sweep(s); /* the same store: the choice is not redone per step */
}

/* After a commit nothing is dirty and no pointer handed out before is valid:
 * every entry but the frozen ones may go, and the cache shrinks to its
 * budget. */
static void cache_new_epoch(struct eddy_state *st)
{
    st->epoch++;
    for (size_t i = 0; i < st->n_stores; i++)
        st->stores[i].stale = st->stores[i].ix.count - st->stores[i].n_frozen;
    cache_trim(st);
}

/* Slot by slot; after an eviction the same slot is looked at again, since
 * closing the gap may have moved a later entry into it (an entry moves only
 * into the gap, which goes forward, or within slots already looked at). */
void state_store_drop_partition(struct state_store *s, int32_t partition)
{
    char err[8];
    snapshot_finish(s->st, err, sizeof err); /* nothing unwritten may go (see the top); */
    wait_writes(s->st);                     /* an error is sticky */
    for (size_t i = 0; i < s->ix.cap;) {
        struct entry *e = slot_entry(s->ix.slot[i]);
        if (e && e->m.epoch != s->st->epoch &&
            key_partition((struct eddy_str){entry_key(e), e->key_len}) == partition)
            evict(s, e);
        else
            i++;
    }
}

void state_drop_partition(struct eddy_state *st, int32_t partition)
{
    for (size_t i = 0; i < st->n_stores; i++)
        if (st->stores[i].codec->layout == STATE_PARTITIONED)
            state_store_drop_partition(&st->stores[i], partition);
}

/* ---- dense stores ---------------------------------------------------------- */

int32_t state_rows_find(struct state_store *s, struct eddy_str id)
{
    struct dense_id *e;
    id = nonnull(id);
    HASH_FIND(hh, s->d.ids, id.ptr, id.len, e);
    return e ? (int32_t)e->row : -1;
}

int32_t state_rows_add(struct state_store *s, struct eddy_str id, const float *vec)
{
    struct dense *d = &s->d;
    int dim = s->st->dim;
    id = nonnull(id);
    int32_t row = state_rows_find(s, id);
    if (row >= 0)
        return row;
    if (d->n == INT32_MAX)
        return -1;
    dense_grow(s->st, d, d->n + 1);
    row = (int32_t)d->n++;
    dense_insert(d, id, (uint32_t)row);
    float *dst = d->matrix + (size_t)row * dim;
    if (vec)
        memcpy(dst, vec, (size_t)dim * sizeof(float));
    else
        memset(dst, 0, (size_t)dim * sizeof(float));
    state_rows_dirty(s, (uint32_t)row); /* a row assignment must persist */
    return row;
}

static void snapshot_put_row(struct state_store *s, uint32_t row);

float *state_rows_vec(struct state_store *s, uint32_t row)
{
    if (row >= s->d.n)
        return NULL;
    if (s->d.row_dirty[row] == ROW_FROZEN) /* its snapshot value first (see the top) */
        snapshot_put_row(s, row);
    return s->d.matrix + (size_t)row * s->st->dim;
}

void state_rows_dirty(struct state_store *s, uint32_t row)
{
    struct dense *d = &s->d;
    if (row >= d->n || d->row_dirty[row] == ROW_DIRTY)
        return;
    if (d->row_dirty[row] == ROW_FROZEN)
        snapshot_put_row(s, row); /* a writer that did not use state_rows_vec() */
    if (d->n_dirty == d->dirty_cap) {
        d->dirty_cap = d->dirty_cap ? 2 * d->dirty_cap : 256;
        d->dirty_rows = xrealloc(d->dirty_rows, (size_t)d->dirty_cap * 4);
    }
    d->row_dirty[row] = ROW_DIRTY;
    d->dirty_rows[d->n_dirty++] = row;
    s->st->n_dirty++;
    s->st->dirty_bytes += dense_value_size(s->st->dim) + d->by_row[row]->id_len;
}

const float *state_rows_matrix(const struct state_store *s, uint32_t *n_rows)
{
    *n_rows = s->d.n;
    return s->d.matrix;
}

struct eddy_str state_rows_id(const struct state_store *s, uint32_t row)
{
    if (row >= s->d.n)
        return (struct eddy_str){NULL, 0};
    const struct dense_id *e = s->d.by_row[row];
    return (struct eddy_str){e->id, e->id_len};
}

/* ---- keyed stores -------------------------------------------------------- */

struct state_store *state_store(struct eddy_state *st, const struct state_codec *codec)
{
    for (size_t i = 0; i < st->n_stores; i++)
        if (!strcmp(st->stores[i].codec->name, codec->name))
            return &st->stores[i];
    return NULL;
}

uint64_t state_store_count(const struct state_store *s)
{
    return s->codec->layout == STATE_DENSE ? s->d.n : s->ix.count;
}

static struct entry *entry_of(const void *value)
{
    return (struct entry *)((char *)value - offsetof(struct entry, value));
}

struct eddy_str state_key(const void *value)
{
    const struct entry *e = entry_of(value);
    return (struct eddy_str){entry_key(e), e->key_len};
}

/* A zeroed value. */
static struct entry *entry_alloc(struct state_store *s, struct eddy_str key)
{
    size_t at = entry_size(s);
    struct entry *e = xcalloc(at + key.len);
    e->key_at = (uint32_t)at;
    e->key_len = (uint32_t)key.len;
    put(entry_key(e), key.ptr, key.len);
    return e;
}

/* An id for messages: a partitioned key's id part. */
static struct eddy_str quoted_id(const struct state_store *s, struct eddy_str key)
{
    return s->codec->layout == STATE_PARTITIONED ? key_id(key) : key;
}

/* Decodes a stored value; NULL and a sticky error if it is corrupt. */
static struct entry *entry_from_value(struct state_store *s, struct eddy_str key,
                                      const char *v, size_t len)
{
    char why[128];
    struct entry *e = entry_alloc(s, key);
    if (!keyed_decode(s->codec, s->st->dim, v, len, e->value, why, sizeof why)) {
        struct eddy_str id = quoted_id(s, key);
        fail(s->st, "state %s: corrupt %s/%.*s: %s", s->st->dir, s->codec->name,
             id_quote_len(id.len), id.ptr, why);
        entry_free(s, e);
        return NULL;
    }
    return e;
}

static struct entry *entry_load(struct state_store *s, struct eddy_str key)
{
    char *rerr = NULL;
    size_t len = 0;
    /* Not db_get(): no wait for a write in flight (see the top). */
    char *v = rocksdb_get_cf(s->st->db, s->st->ropts, s->cf, key.ptr, key.len, &len, &rerr);
    struct entry *e = NULL;
    if (rerr) {
        struct eddy_str id = quoted_id(s, key);
        fail(s->st, "state %s: reading %s/%.*s: %s", s->st->dir, s->codec->name,
             id_quote_len(id.len), id.ptr, rerr);
    } else if (v) {
        e = entry_from_value(s, key, v, len);
    }
    rocksdb_free(rerr);
    rocksdb_free(v);
    return e;
}

static void entry_insert(struct state_store *s, struct entry *e)
{
    index_add(&s->ix, e);
    cache_add(s->st, &e->m, entry_bytes(s, e));
    s->ordered = false;
    if (s->codec->layout == STATE_PARTITIONED) {
        int32_t p = key_partition((struct eddy_str){entry_key(e), e->key_len});
        s->max_partition = p > s->max_partition ? p : s->max_partition;
    }
}

/* The cached entry of key, loaded from RocksDB on a miss, or made by the
 * codec's init() if create; NULL if none. */
static struct entry *entry_lookup(struct state_store *s, struct eddy_str key, bool create)
{
    struct eddy_state *st = s->st;
    struct entry *e = index_find(&s->ix, key.ptr, key.len);
    if (e) {
        st->hits++;
        cache_touch(s, e);
        if (e->m.deleted) { /* absent until the commit, or made anew */
            if (!create)
                return NULL;
            e->m.deleted = false;
            if (s->codec->init)
                s->codec->init(e->value, st->dim);
        }
        return e;
    }
    st->misses++;
    e = entry_load(s, key);
    if (!e && create) {
        e = entry_alloc(s, key);
        if (s->codec->init)
            s->codec->init(e->value, st->dim);
    }
    if (!e)
        return NULL;
    entry_insert(s, e);
    cache_trim(st);
    return e;
}

void *state_get(struct state_store *s, struct eddy_str key, bool create)
{
    struct entry *e = entry_lookup(s, nonnull(key), create);
    return e ? e->value : NULL;
}

const void *state_find(struct state_store *s, struct eddy_str key)
{
    return state_get(s, key, false);
}

void *state_get_in(struct state_store *s, int32_t partition, struct eddy_str id, bool create)
{
    return state_get(s, part_key(s->st, partition, id), create);
}

/* Seeks to each candidate partition's key in turn: a few seeks, not a scan. */
int32_t state_stored_partition(struct state_store *s, struct eddy_str id, int32_t from)
{
    rocksdb_iterator_t *it = db_iterator(s->st, s->cf);
    int32_t found = -1;
    for (int32_t p = from; p >= 0 && found < 0;) {
        struct eddy_str want = part_key(s->st, p, nonnull(id));
        rocksdb_iter_seek(it, want.ptr, want.len);
        if (!rocksdb_iter_valid(it))
            break;
        struct eddy_str key;
        key.ptr = rocksdb_iter_key(it, &key.len);
        int32_t q = key_partition(key);
        if (q == p && key.len == want.len && !memcmp(key.ptr, want.ptr, want.len))
            found = p;
        else
            p = q > p ? q : (p == INT32_MAX ? -1 : p + 1);
    }
    rocksdb_iter_destroy(it);
    return found;
}

void *state_find_any(struct state_store *s, struct eddy_str id)
{
    for (int32_t p = 0; p <= s->max_partition; p++) {
        struct eddy_str key = part_key(s->st, p, id);
        if (index_find(&s->ix, key.ptr, key.len))
            return state_get_in(s, p, id, false);
    }
    int32_t p = state_stored_partition(s, nonnull(id), 0);
    return p < 0 ? NULL : state_get_in(s, p, id, false);
}

static struct sort_rec sort_rec_of(struct entry *e)
{
    unsigned char b[12] = {0};
    uint64_t hi;
    uint32_t lo;
    memcpy(b, entry_key(e), e->key_len < 12 ? e->key_len : 12);
    memcpy(&hi, b, 8);
    memcpy(&lo, b + 8, 4);
    return (struct sort_rec){__builtin_bswap64(hi), __builtin_bswap32(lo), e};
}

/* Puts an entry on its store's dirty list, once; false if it was on it. */
static bool dirty_add(struct state_store *s, struct entry *e)
{
    if (e->m.dirty)
        return false;
    e->m.dirty = true;
    if (s->n_dirty == s->dirty_cap) {
        s->dirty_cap = s->dirty_cap ? 2 * s->dirty_cap : 1024;
        s->dirty = xrealloc(s->dirty, s->dirty_cap * sizeof *s->dirty);
    }
    s->dirty[s->n_dirty++] = sort_rec_of(e);
    s->st->n_dirty++;
    return true;
}

void state_dirty(struct state_store *s, void *value)
{
    struct eddy_state *st = s->st;
    struct entry *e = entry_of(value);
    cache_account(st, &e->m, entry_bytes(s, e)); /* the value may have grown */
    if (dirty_add(s, e))
        st->dirty_bytes += 1 + s->codec->encoded_size(value, st->dim) + e->key_len;
}

void state_delete(struct state_store *s, void *value)
{
    struct entry *e = entry_of(value);
    if (e->m.deleted)
        return;
    if (s->codec->free)
        s->codec->free(e->value);
    memset(e->value, 0, entry_size(s) - sizeof *e);
    e->m.deleted = true;
    cache_account(s->st, &e->m, entry_bytes(s, e));
    if (dirty_add(s, e))
        s->st->dirty_bytes += 1 + e->key_len;
}

/* Ends a scan of a store: its error, if any, fails the state. */
static void store_iter_end(struct state_store *s, rocksdb_iterator_t *it)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        fail(s->st, "state %s: reading %s: %s", s->st->dir, s->codec->name, rerr);
    rocksdb_free(rerr);
}

/* Caches every stored value not cached yet (cached ones may be newer). */
static void keyed_scan(struct state_store *s)
{
    rocksdb_iterator_t *it = db_iterator(s->st, s->cf);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        struct eddy_str key, v;
        key.ptr = rocksdb_iter_key(it, &key.len);
        v.ptr = rocksdb_iter_value(it, &v.len);
        struct entry *e;
        if (!index_find(&s->ix, key.ptr, key.len) &&
            (e = entry_from_value(s, key, v.ptr, v.len)))
            entry_insert(s, e);
    }
    store_iter_end(s, it);
    s->scanned = true;
}

/* A stored value the cache does not hold: deleted through a cached
 * tombstone if expired, else dropped again (the sweep caches no live
 * value, so that it stays within the budget). */
static size_t sweep_stored(struct state_store *s, struct eddy_str key, struct eddy_str v,
                           bool (*expired)(const void *value, void *ctx), void *ctx)
{
    struct entry *e = entry_from_value(s, key, v.ptr, v.len);
    if (!e)
        return 0;
    if (!expired(e->value, ctx)) {
        entry_free(s, e);
        return 0;
    }
    entry_insert(s, e); /* handed out in this epoch: kept until the commit */
    state_delete(s, e->value);
    return 1;
}

size_t state_sweep(struct state_store *s, bool (*expired)(const void *value, void *ctx),
                   void *ctx)
{
    size_t deleted = 0;
    for (size_t i = 0; i < s->ix.cap; i++) { /* the cached ones are the newest */
        struct entry *e = slot_entry(s->ix.slot[i]);
        if (e && !e->m.deleted && expired(e->value, ctx)) {
            cache_touch(s, e); /* a dirty entry must be of this epoch */
            state_delete(s, e->value);
            deleted++;
        }
    }
    rocksdb_iterator_t *it = db_iterator(s->st, s->cf);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        struct eddy_str key, v;
        key.ptr = rocksdb_iter_key(it, &key.len);
        if (index_find(&s->ix, key.ptr, key.len))
            continue;
        v.ptr = rocksdb_iter_value(it, &v.len);
        deleted += sweep_stored(s, key, v, expired, ctx);
    }
    store_iter_end(s, it);
    return deleted;
}

/* Key order: unsigned bytes, then the shorter first. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int entry_ptr_cmp(const void *x, const void *y)
{
    const struct entry *a = *(struct entry *const *)x, *b = *(struct entry *const *)y;
    return key_cmp(entry_key(a), a->key_len, entry_key(b), b->key_len);
}

/* Lists the cached entries by key, unless nothing was added or evicted
 * since the last time. */
static void order_entries(struct state_store *s)
{
    if (s->ordered)
        return;
    if (s->order_cap < s->ix.count) {
        s->order_cap = s->ix.count;
        s->order = xrealloc(s->order, s->order_cap * sizeof *s->order);
    }
    size_t n = 0;
    for (size_t i = 0; i < s->ix.cap; i++)
        if (s->ix.slot[i])
            s->order[n++] = slot_entry(s->ix.slot[i]);
    if (n)
        qsort(s->order, n, sizeof *s->order, entry_ptr_cmp);
    s->ordered = true;
}

/* In key order, so that replays publish alike whatever is cached. */
void state_foreach(struct state_store *s, void (*fn)(void *value, void *ctx), void *ctx)
{
    if (!s->scanned)
        keyed_scan(s);
    order_entries(s);
    size_t n = s->ix.count;
    /* Every value is handed out, so none may go while fn runs. */
    for (size_t i = 0; i < n; i++)
        cache_touch(s, s->order[i]);
    for (size_t i = 0; i < n; i++)
        if (!s->order[i]->m.deleted)
            fn(s->order[i]->value, ctx);
}

/* ---- model version and offsets ------------------------------------------ */

uint64_t state_model_version(const struct eddy_state *st)
{
    return st->model_version;
}

void state_model_version_bump(struct eddy_state *st)
{
    st->model_version++;
    if (!st->model_dirty)
        st->n_dirty++;
    st->model_dirty = true;
}

/* Builds the offsets key in the scratch buffer. */
static size_t offset_key(struct eddy_state *st, const char *topic, int32_t partition)
{
    size_t tlen = strlen(topic);
    char *k = scratch(st, tlen + 5);
    uint32_t p = (uint32_t)partition;
    memcpy(k, topic, tlen + 1);
    k[tlen + 1] = (char)(p >> 24);
    k[tlen + 2] = (char)(p >> 16);
    k[tlen + 3] = (char)(p >> 8);
    k[tlen + 4] = (char)p;
    return tlen + 5;
}

static struct offset_entry *offset_cached(struct eddy_state *st, const char *key,
                                          size_t klen, int64_t value)
{
    struct offset_entry *e = xcalloc(sizeof *e + klen);
    e->next_offset = value;
    e->key_len = klen;
    memcpy(e->key, key, klen);
    HASH_ADD_KEYPTR(hh, st->offsets, e->key, e->key_len, e);
    return e;
}

static int64_t offset_load(struct eddy_state *st, const char *key, size_t klen)
{
    char *rerr = NULL, why[128];
    size_t len = 0;
    int64_t x = STATE_NO_OFFSET;
    char *v = db_get(st, st->cf[CF_OFFSETS], key, klen, &len, &rerr);
    if (rerr)
        fail(st, "state %s: reading offsets/%s: %s", st->dir, key, rerr);
    else if (v && !i64_decode(v, len, &x, why, sizeof why))
        fail(st, "state %s: corrupt offsets/%s: %s", st->dir, key, why);
    rocksdb_free(rerr);
    rocksdb_free(v);
    return x;
}

int64_t state_offset_get(struct eddy_state *st, const char *topic, int32_t partition)
{
    size_t klen = offset_key(st, topic, partition);
    struct offset_entry *e;
    HASH_FIND(hh, st->offsets, st->buf, klen, e);
    if (!e)
        e = offset_cached(st, st->buf, klen, offset_load(st, st->buf, klen));
    return e->next_offset;
}

void state_offset_set(struct eddy_state *st, const char *topic, int32_t partition,
                      int64_t next_offset)
{
    size_t klen = offset_key(st, topic, partition);
    struct offset_entry *e;
    HASH_FIND(hh, st->offsets, st->buf, klen, e);
    if (!e)
        e = offset_cached(st, st->buf, klen, STATE_NO_OFFSET);
    e->next_offset = next_offset;
    if (!e->dirty)
        st->n_dirty++;
    e->dirty = true;
}

/* ---- blobs ---------------------------------------------------------------- */

/* Blobs live in the meta column family under "blob.<key>". */
static size_t blob_key(struct eddy_state *st, const char *key)
{
    size_t klen = strlen(key);
    char *k = scratch(st, klen + 5);
    memcpy(k, "blob.", 5);
    memcpy(k + 5, key, klen);
    return klen + 5;
}

static struct blob_entry *blob_staged(struct eddy_state *st, const char *key)
{
    for (struct blob_entry *b = st->blobs; b; b = b->next)
        if (!strcmp(b->key, key))
            return b;
    return NULL;
}

void state_blob_set(struct eddy_state *st, const char *key, const void *data, size_t len)
{
    struct blob_entry *b = blob_staged(st, key);
    if (!b) {
        b = xcalloc(sizeof *b);
        b->key = xstrdup(key);
        b->next = st->blobs;
        st->blobs = b;
        st->n_dirty++;
    }
    free(b->data);
    b->data = xrealloc(NULL, len);
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
}

int state_blob_get(struct eddy_state *st, const char *key, void **data, size_t *len)
{
    const struct blob_entry *b = blob_staged(st, key);
    if (b) {
        *data = xrealloc(NULL, b->len);
        if (b->len)
            memcpy(*data, b->data, b->len);
        *len = b->len;
        return 0;
    }
    char *rerr = NULL;
    size_t klen = blob_key(st, key);
    char *v = db_get(st, st->cf[CF_META], st->buf, klen, len, &rerr);
    if (rerr) {
        fail(st, "state %s: reading blob %s: %s", st->dir, key, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (!v)
        return 1;
    *data = xrealloc(NULL, *len);
    memcpy(*data, v, *len);
    rocksdb_free(v);
    return 0;
}

static void free_blobs(struct eddy_state *st)
{
    struct blob_entry *b, *next;
    for (b = st->blobs; b; b = next) {
        next = b->next;
        free(b->key);
        free(b->data);
        free(b);
    }
    st->blobs = NULL;
}

static void batch_add_blobs(struct eddy_state *st)
{
    for (struct blob_entry *b = st->blobs; b; b = b->next) {
        size_t klen = blob_key(st, b->key);
        rocksdb_writebatch_put_cf(st->batch, st->cf[CF_META], st->buf, klen, b->data, b->len);
    }
}

/* ---- commit ------------------------------------------------------------- */

static int sort_rec_cmp(const void *a, const void *b)
{
    const struct sort_rec *x = a, *y = b;
    if (x->hi != y->hi)
        return (x->hi > y->hi) - (x->hi < y->hi);
    if (x->lo != y->lo)
        return (x->lo > y->lo) - (x->lo < y->lo);
    const struct entry *p = x->e, *q = y->e;
    return key_cmp(entry_key(p), p->key_len, entry_key(q), q->key_len);
}

/* The written commit's deleted entries leave the cache, unless deleted
 * again or made anew since (no pointer to a deleted entry is handed out:
 * lookups return NULL for it). Nothing was evicted meanwhile (cache_trim()),
 * so all are there. */
static void free_tombstones(struct eddy_state *st)
{
    for (size_t i = 0; i < st->tombs_in_flight; i++) {
        struct state_store *s = st->tombs[i].s;
        struct entry *e = st->tombs[i].e;
        if (!e->m.deleted || e->m.dirty)
            continue;
        index_del(&s->ix, e);
        st->cache_bytes -= e->m.bytes;
        s->stale -= e->m.epoch != st->epoch;
        s->ordered = false;
        entry_free(s, e);
    }
    st->n_tombs -= st->tombs_in_flight;
    if (st->n_tombs)
        memmove(st->tombs, st->tombs + st->tombs_in_flight, st->n_tombs * sizeof *st->tombs);
    st->tombs_in_flight = 0;
}

/* The snapshot value of a frozen entry, or a dirty one at a commit encoded
 * at once, into the batch; the entry is clean from here on. A deleted one
 * stays cached, absent to readers, until its delete is written (a read of
 * RocksDB would find the old value). */
static void snapshot_put(struct state_store *s, struct entry *e)
{
    struct eddy_state *st = s->st;
    e->m.dirty = false;
    if (e->m.deleted) {
        rocksdb_writebatch_delete_cf(st->batch, s->cf, entry_key(e), e->key_len);
        if (st->n_tombs == st->tombs_cap) {
            st->tombs_cap = st->tombs_cap ? 2 * st->tombs_cap : 64;
            st->tombs = xrealloc(st->tombs, st->tombs_cap * sizeof *st->tombs);
        }
        st->tombs[st->n_tombs++] = (struct tombstone){s, e};
        return;
    }
    size_t len = keyed_encode(st, s->codec, e->value);
    rocksdb_writebatch_put_cf(st->batch, s->cf, entry_key(e), e->key_len, st->buf, len);
    cache_account(st, &e->m, entry_bytes(s, e)); /* grown since marked */
}

static void snapshot_put_row(struct state_store *s, uint32_t row)
{
    struct dense *d = &s->d;
    const struct dense_id *e = d->by_row[row];
    size_t n = dense_encode(s->st, d, row);
    rocksdb_writebatch_put_cf(s->st->batch, s->cf, e->id, e->id_len, s->st->buf, n);
    d->row_dirty[row] = ROW_CLEAN;
}

/* Takes the snapshot of a commit: the dirty lists become the frozen ones
 * (sorted if sort: a keyed store's values then go into the batch in key
 * order, and RocksDB's memtable inserts each next to the previous one
 * instead of searching its skiplist from the top, which makes a large
 * checkpoint much faster), and the offsets, the model version and the
 * blobs, few and small, go into the batch now. The caller starts the next
 * epoch, which makes the frozen entries frozen. */
static void snapshot_begin(struct eddy_state *st, bool sort)
{
    for (size_t i = 0; i < st->n_stores; i++) {
        struct state_store *s = &st->stores[i];
        struct sort_rec *t = s->frozen;
        size_t cap = s->frozen_cap;
        s->frozen = s->dirty, s->frozen_cap = s->dirty_cap;
        s->dirty = t, s->dirty_cap = cap;
        s->n_frozen = s->n_dirty, s->frozen_next = 0, s->n_dirty = 0;
        if (sort && s->n_frozen)
            qsort(s->frozen, s->n_frozen, sizeof *s->frozen, sort_rec_cmp);
        struct dense *d = &s->d;
        uint32_t *r = d->frozen_rows, rcap = d->frozen_cap;
        d->frozen_rows = d->dirty_rows, d->frozen_cap = d->dirty_cap;
        d->dirty_rows = r, d->dirty_cap = rcap;
        d->n_frozen = d->n_dirty, d->frozen_next = 0, d->n_dirty = 0;
        for (uint32_t k = 0; k < d->n_frozen; k++)
            d->row_dirty[d->frozen_rows[k]] = ROW_FROZEN;
    }
    for (struct offset_entry *e = st->offsets; e; e = e->hh.next) {
        if (e->dirty)
            batch_put_i64(st, CF_OFFSETS, e->key, e->key_len, e->next_offset);
        e->dirty = false;
    }
    if (st->model_dirty)
        batch_put_i64(st, CF_META, "model_version", 13, (int64_t)st->model_version);
    st->model_dirty = false;
    batch_add_blobs(st);
    free_blobs(st);
    st->n_dirty = 0;
    st->dirty_bytes = 0;
    st->snapshot_open = true;
}

/* Encodes the open snapshot's values not encoded yet, until the monotonic
 * clock passes deadline_us (0: all of them). True when all are. */
static bool snapshot_fill(struct eddy_state *st, uint64_t deadline_us)
{
    uint64_t t0 = clock_us(CLOCK_MONOTONIC), n = 0;
    bool done = false;
    for (size_t i = 0; i < st->n_stores; i++) {
        struct state_store *s = &st->stores[i];
        for (; s->frozen_next < s->n_frozen; s->frozen_next++, n++) {
            if (deadline_us && n % 64 == 63 && clock_us(CLOCK_MONOTONIC) >= deadline_us)
                goto out;
            struct entry *e = s->frozen[s->frozen_next].e;
            if (e->m.dirty && e->m.epoch != st->epoch) { /* still frozen */
                snapshot_put(s, e);
                s->stale++;
            }
        }
        struct dense *d = &s->d;
        for (; d->frozen_next < d->n_frozen; d->frozen_next++, n++) {
            if (deadline_us && n % 64 == 63 && clock_us(CLOCK_MONOTONIC) >= deadline_us)
                goto out;
            if (d->row_dirty[d->frozen_rows[d->frozen_next]] == ROW_FROZEN)
                snapshot_put_row(s, d->frozen_rows[d->frozen_next]);
        }
    }
    done = true;
out:
    st->encode_us += clock_us(CLOCK_MONOTONIC) - t0;
    return done;
}

/* Hands the snapshot, all encoded, to the writer, once the batch before it
 * is written. */
static int snapshot_hand_over(struct eddy_state *st, char *err, size_t errlen)
{
    size_t bytes;
    rocksdb_writebatch_data(st->batch, &bytes);
    for (size_t i = 0; i < st->n_stores; i++)
        st->stores[i].n_frozen = st->stores[i].d.n_frozen = 0;
    st->snapshot_open = false;
    wait_writes(st); /* one batch in flight at a time */
    if (st->failed) {
        rocksdb_writebatch_clear(st->batch);
        fmt_err(err, errlen, "%s", st->err);
        return -1;
    }
    if (!st->writer_started)
        start_writer(st);
    st->ckpt_bytes = bytes;
    hand_over(st, bytes);
    return 0;
}

/* Ends the open snapshot, if any, encoding what is left of it at once. */
static int snapshot_finish(struct eddy_state *st, char *err, size_t errlen)
{
    if (!st->snapshot_open)
        return 0;
    snapshot_fill(st, 0);
    return snapshot_hand_over(st, err, errlen);
}

static int commit_check(struct eddy_state *st, char *err, size_t errlen)
{
    if (st->failed) {
        fmt_err(err, errlen, "%s", st->err);
        return -1;
    }
    if (st->read_only) {
        fmt_err(err, errlen, "state %s: opened read-only, cannot commit", st->dir);
        return -1;
    }
    return 0;
}

/* A memtable flush or a compaction that failed (a full disk) stops
 * RocksDB's writes until it recovers (it retries once there is room), and
 * no commit of ours may come to see it. RocksDB counts those errors but does
 * not say whether it recovered: a write does. An empty batch returns the
 * background error while writes are stopped; it is tried only after a new
 * one, since on a full disk even its empty WAL record cannot be written and
 * that alone says nothing about the commits already written. */
static void check_background(struct eddy_state *st)
{
    uint64_t n = 0;
    if (st->read_only || st->failed ||
        rocksdb_property_int(st->db, "rocksdb.background-errors", &n) || n <= st->bg_errors)
        return;
    st->bg_errors = n;
    char *rerr = NULL;
    rocksdb_writebatch_t *probe = rocksdb_writebatch_create();
    rocksdb_write(st->db, st->wopts, probe, &rerr);
    rocksdb_writebatch_destroy(probe);
    if (rerr) {
        fail(st, "state %s: RocksDB stopped writing: %s", st->dir, rerr);
    } else {
        /* A "soft" error: a flush or compaction failed, and RocksDB keeps
         * taking writes into its log and memtables while it waits to
         * resume. On a full disk that only lasts until the log's
         * preallocated space or the memtables run out (then writes block),
         * so stop now, while the state is whole, and say why. */
        struct statvfs fs;
        bool full = statvfs(st->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (1u << 20);
        fail(st, "state %s: a RocksDB flush or compaction failed%s", st->dir,
             full ? ": No space left on device" : "; restart eddy to retry");
    }
    rocksdb_free(rerr);
}

int state_sync(struct eddy_state *st, char *err, size_t errlen)
{
    if (snapshot_finish(st, err, errlen))
        return -1;
    wait_writes(st);
    check_background(st);
    if (st->failed) {
        fmt_err(err, errlen, "%s", st->err);
        return -1;
    }
    return 0;
}

int state_commit(struct eddy_state *st, char *err, size_t errlen)
{
    if (commit_check(st, err, errlen) || snapshot_finish(st, err, errlen))
        return -1;
    if (st->n_dirty) {
        st->encode_us = 0;
        snapshot_begin(st, true);
    }
    cache_new_epoch(st);
    if (snapshot_finish(st, err, errlen))
        return -1;
    /* Nothing went meanwhile (see the top): what is over the budget, and
     * the deleted entries, go once the batch is written. */
    if (st->cache_bytes > st->cache_limit || st->n_tombs) {
        wait_writes(st);
        cache_trim(st);
    }
    return 0;
}

int state_commit_begin(struct eddy_state *st, char *err, size_t errlen)
{
    if (commit_check(st, err, errlen) || snapshot_finish(st, err, errlen))
        return -1;
    wait_writes(st); /* the commit before is durable when this returns */
    if (st->failed) {
        fmt_err(err, errlen, "%s", st->err);
        return -1;
    }
    st->encode_us = 0;
    if (st->n_dirty)
        snapshot_begin(st, false);
    cache_new_epoch(st);
    return 0;
}

int state_commit_step(struct eddy_state *st, uint64_t max_us, char *err, size_t errlen)
{
    if (!st->snapshot_open)
        return 0;
    if (!snapshot_fill(st, clock_us(CLOCK_MONOTONIC) + (max_us ? max_us : 1)))
        return 1;
    return snapshot_hand_over(st, err, errlen) ? -1 : 0;
}


/* The cache is over budget with nothing it may evict before a commit. */
static bool cache_stuck(const struct eddy_state *st)
{
    if (st->cache_bytes <= st->cache_limit)
        return false;
    for (size_t i = 0; i < st->n_stores; i++)
        if (st->stores[i].stale)
            return false;
    return true;
}

bool state_commit_due(const struct eddy_state *st)
{
    return st->dirty_bytes >= st->dirty_limit || cache_stuck(st);
}

void state_stats(struct eddy_state *st, struct state_stats *out)
{
    finish_write(st, false); /* a finished write's large batch is freed now */
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < st->n_stores; i++) {
        if (st->stores[i].codec->layout == STATE_DENSE)
            out->rows += st->stores[i].d.n;
        else
            out->cached += st->stores[i].ix.count;
    }
    out->dirty = st->n_dirty;

    out->model_version = st->model_version;
    out->cache_hits = st->hits;
    out->cache_misses = st->misses;
    out->cache_evictions = st->evictions;
    out->cache_bytes = st->cache_bytes;
    out->checkpoint_us = st->ckpt_us;
    out->checkpoint_bytes = st->ckpt_bytes;
    out->checkpoint_unix_ms = st->ckpt_unix_ms;
    out->restore_us = st->restore_us;
    for (size_t k = 0; k < cf_count(st); k++) {
        const char *name;
        rocksdb_column_family_handle_t *cf = *cf_at(st, k, &name);
        uint64_t v = 0;
        if (rocksdb_property_int_cf(st->db, cf, "rocksdb.estimate-live-data-size", &v) == 0)
            out->disk_bytes += v;
        if (rocksdb_property_int_cf(st->db, cf, "rocksdb.cur-size-all-mem-tables", &v) == 0)
            out->memtable_bytes += v;
    }
    if (st->block_cache)
        out->block_cache_bytes = rocksdb_cache_get_usage(st->block_cache);
}

/* ---- close -------------------------------------------------------------- */

static void free_store(struct state_store *s)
{
    for (size_t i = 0; i < s->ix.cap; i++)
        if (s->ix.slot[i])
            entry_free(s, slot_entry(s->ix.slot[i]));
    free(s->ix.slot);
    free(s->dirty);
    free(s->frozen);
    free(s->order);
    struct dense_id *i, *it;
    HASH_ITER(hh, s->d.ids, i, it) {
        HASH_DEL(s->d.ids, i);
        free(i);
    }
    free(s->d.matrix);
    free(s->d.by_row);
    free(s->d.row_dirty);
    free(s->d.dirty_rows);
    free(s->d.frozen_rows);
}

static void free_cache(struct eddy_state *st)
{
    for (size_t s = 0; s < st->n_stores; s++)
        free_store(&st->stores[s]);
    struct offset_entry *o, *ot;
    HASH_ITER(hh, st->offsets, o, ot) {
        HASH_DEL(st->offsets, o);
        free(o);
    }
    free(st->buf);
    free(st->key);
    free(st->tombs);
}

/* Does not commit: uncommitted changes are dropped. */
void state_close(struct eddy_state *st)
{
    if (!st)
        return;
    wait_writes(st);
    stop_writer(st);
    /* Flushing the memtables empties the WAL: the next state_open() then
     * need not replay it, which is faster and needs no memtable memory. */
    if (st->db && !st->read_only && !st->failed) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        char *rerr = NULL;
        rocksdb_flushoptions_set_wait(fo, 1);
        const char *name;
        for (size_t k = 0; k < cf_count(st); k++) {
            rocksdb_flush_cf(st->db, fo, *cf_at(st, k, &name), &rerr);
            rocksdb_free(rerr); /* best effort: the WAL still has everything */
            rerr = NULL;
        }
        rocksdb_flushoptions_destroy(fo);
    }
    free_cache(st);
    free_blobs(st);
    for (size_t k = 0; k < cf_count(st); k++) {
        const char *name;
        rocksdb_column_family_handle_t *cf = *cf_at(st, k, &name);
        if (cf)
            rocksdb_column_family_handle_destroy(cf);
    }
    free(st->stores);
    if (st->db)
        rocksdb_close(st->db);
    rocksdb_writebatch_destroy(st->batch);
    if (st->spare)
        rocksdb_writebatch_destroy(st->spare);
    rocksdb_writeoptions_destroy(st->wopts);
    rocksdb_readoptions_destroy(st->ropts);
    rocksdb_options_destroy(st->opts);
    if (st->block_cache)
        rocksdb_cache_destroy(st->block_cache);
    free(st->dir);
    free(st);
}

/* ---- raw access for inspection tools (state/state_internal.h) ----------- */

const char *state_dir(const struct eddy_state *st)
{
    return st->dir;
}

rocksdb_t *state_db(struct eddy_state *st)
{
    wait_writes(st); /* raw readers see every commit */
    return st->db;
}

const char *state_cf_name(struct eddy_state *st, size_t k)
{
    const char *name = NULL;
    if (k < cf_count(st))
        cf_at(st, k, &name);
    return name;
}

rocksdb_column_family_handle_t *state_cf(struct eddy_state *st, const char *name)
{
    size_t k = cf_find(st, name);
    return k < cf_count(st) ? *cf_at(st, k, &name) : NULL;
}

const struct state_codec *state_cf_codec(struct eddy_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_stores; i++)
        if (!strcmp(st->stores[i].codec->name, name))
            return st->stores[i].codec;
    return NULL;
}

size_t state_value_bytes(const struct eddy_state *st, const struct state_codec *c)
{
    return c->value_size + (c->vector ? (size_t)st->dim * sizeof(float) : 0);
}

bool state_value_decode(struct eddy_state *st, const struct state_codec *c, const char *v,
                        size_t len, void *value, char *why, size_t whylen)
{
    return keyed_decode(c, st->dim, v, len, value, why, whylen);
}

bool state_i64_decode(const char *v, size_t len, int64_t *x, char *why, size_t whylen)
{
    return i64_decode(v, len, x, why, whylen);
}
