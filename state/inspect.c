/* inspect.c: see inspect.h. One function per column family turns a stored
 * (key, value) into a JSON object; get and export both go through it, so a
 * `get` line is exactly the line `export` writes for that entry. Values are
 * decoded with state.c's own decoders (state_internal.h), a keyed store's
 * with its codec, which also renders them. */
#include "state/inspect.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "state/json.h"
#include "state/state_internal.h"

/* Compact, keys in insertion order; 17 digits round-trip floats and doubles. */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))
#define ERR_KEY_MAX 64 /* characters of a key quoted in an error message */

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int key_quote_len(struct eddy_str key)
{
    return (int)(key.len < ERR_KEY_MAX ? key.len : ERR_KEY_MAX);
}

/* ---- JSON values ---------------------------------------------------------- */

static json_t *kind_json(const char *kind)
{
    return sjson_with(json_object(), "kind", json_string(kind));
}

/* ---- one function per column family ---------------------------------------
 * Each returns a new JSON object, or NULL: with why set if the stored entry
 * is corrupt, with why empty if jansson ran out of memory. */

/* "partition" and "id" of a partitioned store's key (state_key_split()). */
static json_t *with_key(json_t *doc, struct eddy_str key)
{
    int32_t partition = 0;
    struct eddy_str id = key;
    state_key_split(key, &partition, &id);
    doc = sjson_with(doc, "partition", json_integer(partition));
    return sjson_with(doc, "id", sjson_id(id));
}

typedef json_t *(*entry_fn)(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                            char *why, size_t whylen);

/* state_open() validated and loaded every stored row into the matrix, so
 * the in-memory row and vector are exactly what is stored. */
static json_t *dense_entry(struct eddy_state *st, const struct state_codec *c,
                           struct eddy_str key, char *why, size_t whylen)
{
    struct state_store *s = state_store(st, c);
    int32_t row = state_rows_find(s, key);
    if (row < 0) {
        snprintf(why, whylen, "stored after the state was opened");
        return NULL;
    }
    json_t *doc = kind_json(c->kind);
    doc = sjson_with(doc, "id", sjson_id(key));
    doc = sjson_with(doc, "row", json_integer(row));
    return sjson_with(doc, "vector", sjson_floats(state_rows_vec(s, (uint32_t)row),
                                                  (size_t)state_dim(st)));
}

/* A keyed store's value, rendered by its codec. */
static json_t *keyed_entry(struct eddy_state *st, const struct state_codec *c,
                           struct eddy_str key, struct eddy_str value, char *why,
                           size_t whylen)
{
    void *v = calloc(1, state_value_bytes(st, c));
    json_t *doc = NULL;
    if (v && state_value_decode(st, c, value.ptr, value.len, v, why, whylen)) {
        doc = kind_json(c->kind);
        doc = c->layout == STATE_PARTITIONED ? with_key(doc, key)
                                             : sjson_with(doc, "id", sjson_id(key));
        doc = c->to_json(doc, v, st);
    }
    if (v && c->free)
        c->free(v);
    free(v);
    return doc;
}

/* A store's entry. */
static json_t *store_entry(struct eddy_state *st, const struct state_codec *c,
                           struct eddy_str key, struct eddy_str value, char *why,
                           size_t whylen)
{
    if (c->layout != STATE_DENSE)
        return keyed_entry(st, c, key, value, why, whylen);
    return dense_entry(st, c, key, why, whylen);
}

/* Offsets keys are topic, '\0', partition as 4 bytes big-endian. */
static bool offset_decode(struct eddy_str key, struct eddy_str value, struct eddy_str *topic,
                          int32_t *partition, int64_t *next, char *why, size_t whylen)
{
    size_t tlen = strnlen(key.ptr, key.len);
    if (tlen + 5 != key.len) {
        snprintf(why, whylen, "key is not topic, NUL, 4-byte partition");
        return false;
    }
    const unsigned char *p = (const unsigned char *)key.ptr + tlen + 1;
    *topic = (struct eddy_str){key.ptr, tlen};
    *partition = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                           (uint32_t)p[2] << 8 | p[3]);
    return state_i64_decode(value.ptr, value.len, next, why, whylen);
}

static json_t *offset_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                            char *why, size_t whylen)
{
    (void)st;
    struct eddy_str topic;
    int32_t partition;
    int64_t next;
    if (!offset_decode(key, value, &topic, &partition, &next, why, whylen))
        return NULL;
    json_t *doc = kind_json("offset");
    doc = sjson_with(doc, "topic", sjson_id(topic));
    doc = sjson_with(doc, "partition", json_integer(partition));
    return sjson_with(doc, "next_offset", json_integer(next));
}

/* meta holds int64 values, except blobs, whose bytes are opaque here. */
static json_t *meta_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                          char *why, size_t whylen)
{
    (void)st;
    const size_t plen = strlen(STATE_BLOB_PREFIX);
    if (key.len >= plen && !memcmp(key.ptr, STATE_BLOB_PREFIX, plen)) {
        json_t *doc = kind_json("blob");
        doc = sjson_with(doc, "key", sjson_id((struct eddy_str){key.ptr + plen, key.len - plen}));
        return sjson_with(doc, "hex", sjson_hex(value));
    }
    int64_t x;
    if (!state_i64_decode(value.ptr, value.len, &x, why, whylen))
        return NULL;
    json_t *doc = kind_json("meta");
    doc = sjson_with(doc, "key", sjson_id(key));
    return sjson_with(doc, "value", json_integer(x));
}

/* The state's own column families with entries to show; the stores' show
 * through their codecs. */
static const struct {
    const char *cf;
    entry_fn entry;
} own_cfs[] = {
    {"offsets", offset_entry},
    {"meta", meta_entry},
};
#define N_OWN (sizeof own_cfs / sizeof own_cfs[0])

/* The entry's JSON object; NULL with why set if it is corrupt, with why
 * empty if jansson ran out of memory, and for a column family not shown
 * ("default"). */
static json_t *entry_json(struct eddy_state *st, const char *cf, struct eddy_str key,
                          struct eddy_str value, char *why, size_t whylen)
{
    const struct state_codec *c = state_cf_codec(st, cf);
    if (c)
        return store_entry(st, c, key, value, why, whylen);
    for (size_t i = 0; i < N_OWN; i++)
        if (!strcmp(own_cfs[i].cf, cf))
            return own_cfs[i].entry(st, key, value, why, whylen);
    return NULL;
}

static bool shown(struct eddy_state *st, const char *cf)
{
    if (state_cf_codec(st, cf))
        return true;
    for (size_t i = 0; i < N_OWN; i++)
        if (!strcmp(own_cfs[i].cf, cf))
            return true;
    return false;
}

/* Writes the JSON line of one stored entry of the column family cf. */
static int entry_line(struct eddy_state *st, const char *cf, struct eddy_str key,
                      struct eddy_str value, FILE *out, char *err, size_t errlen)
{
    char why[160] = "";
    json_t *doc = entry_json(st, cf, key, value, why, sizeof why);
    int rc = -1;
    if (!doc && why[0])
        fmt_err(err, errlen, "state %s: corrupt %s/%.*s: %s", state_dir(st), cf,
                key_quote_len(key), key.ptr, why);
    else if (!doc)
        fmt_err(err, errlen, "state %s: out of memory writing %s as JSON", state_dir(st), cf);
    else if (json_dumpf(doc, out, JSON_FLAGS) || fputc('\n', out) == EOF)
        fmt_err(err, errlen, "state %s: writing JSON: %s", state_dir(st), strerror(errno));
    else
        rc = 0;
    json_decref(doc);
    return rc;
}

/* ---- iteration ------------------------------------------------------------ */

typedef int (*visit_fn)(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                        void *ctx, char *err, size_t errlen);

/* Calls fn on every entry of the column family in key order, until fn
 * returns non-zero (which is returned). */
static int scan_cf(struct eddy_state *st, const char *cf, visit_fn fn, void *ctx,
                   char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(state_db(st), ro, state_cf(st, cf));
    char *rerr = NULL;
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        struct eddy_str key, value;
        key.ptr = rocksdb_iter_key(it, &key.len);
        value.ptr = rocksdb_iter_value(it, &value.len);
        rc = fn(st, key, value, ctx, err, errlen);
    }
    rocksdb_iter_get_error(it, &rerr);
    if (rc == 0 && rerr) {
        fmt_err(err, errlen, "state %s: reading %s: %s", state_dir(st), cf, rerr);
        rc = -1;
    }
    rocksdb_free(rerr);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

struct export_ctx {
    const char *cf;
    FILE *out;
};

static int export_visit(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                        void *ctx, char *err, size_t errlen)
{
    struct export_ctx *x = ctx;
    return entry_line(st, x->cf, key, value, x->out, err, errlen);
}

int inspect_export_jsonl(struct eddy_state *st, FILE *out, char *err, size_t errlen)
{
    struct export_ctx x = {NULL, out};
    int rc = 0;
    for (size_t k = 0; rc == 0 && (x.cf = state_cf_name(st, k)); k++)
        if (shown(st, x.cf))
            rc = scan_cf(st, x.cf, export_visit, &x, err, errlen);
    return rc;
}

const char *inspect_kind_cf(const char *kind, const struct state_codec *const *stores)
{
    for (; stores && *stores; stores++)
        if (!strcmp(kind, (*stores)->kind))
            return (*stores)->name;
    return NULL;
}

static int get_one(struct eddy_state *st, const char *cf, struct eddy_str key, FILE *out,
                   char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *rerr = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(state_db(st), ro, state_cf(st, cf), key.ptr, key.len, &len, &rerr);
    int rc = 1;
    if (rerr) {
        fmt_err(err, errlen, "state %s: reading %s/%.*s: %s", state_dir(st), cf,
                key_quote_len(key), key.ptr, rerr);
        rc = -1;
    } else if (v) {
        rc = entry_line(st, cf, key, (struct eddy_str){v, len}, out, err, errlen);
    }
    rocksdb_free(rerr);
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* A partitioned store: one line per partition holding the id. */
static int get_partitioned(struct eddy_state *st, const char *cf, struct eddy_str id,
                           FILE *out, char *err, size_t errlen)
{
    struct state_store *s = state_store(st, state_cf_codec(st, cf));
    int rc = 1;
    for (int32_t p = 0; p >= 0;) {
        p = state_stored_partition(s, id, p);
        if (p < 0)
            break;
        char *key = malloc(4 + id.len);
        if (!key) {
            fmt_err(err, errlen, "state %s: out of memory", state_dir(st));
            return -1;
        }
        uint32_t be = __builtin_bswap32((uint32_t)p);
        memcpy(key, &be, 4);
        if (id.len)
            memcpy(key + 4, id.ptr, id.len);
        int one = get_one(st, cf, (struct eddy_str){key, 4 + id.len}, out, err, errlen);
        free(key);
        if (one < 0)
            return -1;
        rc = one == 0 ? 0 : rc;
        p = p == INT32_MAX ? -1 : p + 1;
    }
    return rc;
}

int inspect_get(struct eddy_state *st, const char *cf, struct eddy_str id, FILE *out,
                char *err, size_t errlen)
{
    if (!state_cf(st, cf) || !shown(st, cf)) {
        fmt_err(err, errlen, "state %s: no column family '%s' to show", state_dir(st), cf);
        return -1;
    }
    const struct state_codec *c = state_cf_codec(st, cf);
    if (c && c->layout == STATE_PARTITIONED)
        return get_partitioned(st, cf, id, out, err, errlen);
    return get_one(st, cf, id, out, err, errlen);
}

/* ---- stats ---------------------------------------------------------------- */

static int count_visit(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                       void *ctx, char *err, size_t errlen)
{
    (void)st, (void)key, (void)value, (void)err, (void)errlen;
    ++*(uint64_t *)ctx;
    return 0;
}

/* Exact counts: RocksDB's estimate-num-keys counts overwrites twice. */
static int print_key_counts(struct eddy_state *st, FILE *out, char *err, size_t errlen)
{
    const char *cf;
    fprintf(out, "keys            ");
    for (size_t k = 0; (cf = state_cf_name(st, k)); k++) {
        uint64_t n = 0;
        if (scan_cf(st, cf, count_visit, &n, err, errlen))
            return -1;
        fprintf(out, "%s%s %llu", k ? ", " : "", cf, (unsigned long long)n);
    }
    fputc('\n', out);
    return 0;
}

/* RocksDB's own total over the column families, not a directory scan: the
 * directory may still hold obsolete files awaiting deletion. */
static uint64_t sst_bytes(struct eddy_state *st)
{
    const char *cf;
    uint64_t sum = 0;
    for (size_t k = 0; (cf = state_cf_name(st, k)); k++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(state_db(st), state_cf(st, cf),
                                    "rocksdb.total-sst-files-size", &v) == 0)
            sum += v;
    }
    return sum;
}

/* RocksDB keeps its write-ahead logs in the state directory as NNNNNN.log
 * (its info log is LOG, without the suffix). */
static int wal_bytes(const char *dir, uint64_t *bytes, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat sb;
    *bytes = 0;
    if (!d) {
        fmt_err(err, errlen, "state %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 4 && !strcmp(de->d_name + n - 4, ".log") &&
            fstatat(dirfd(d), de->d_name, &sb, 0) == 0)
            *bytes += (uint64_t)sb.st_size;
    }
    closedir(d);
    return 0;
}

static int print_disk(struct eddy_state *st, FILE *out, char *err, size_t errlen)
{
    uint64_t wal, sst = sst_bytes(st);
    if (wal_bytes(state_dir(st), &wal, err, errlen))
        return -1;
    fprintf(out, "disk bytes      %llu (SST %llu, WAL %llu)\n", (unsigned long long)(sst + wal),
            (unsigned long long)sst, (unsigned long long)wal);
    return 0;
}

static int offset_visit(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                        void *ctx, char *err, size_t errlen)
{
    char why[128];
    struct eddy_str topic;
    int32_t partition;
    int64_t next;
    if (!offset_decode(key, value, &topic, &partition, &next, why, sizeof why)) {
        fmt_err(err, errlen, "state %s: corrupt offsets/%.*s: %s", state_dir(st),
                key_quote_len(key), key.ptr, why);
        return -1;
    }
    fprintf(ctx, "offset          %.*s %d next %lld\n", (int)topic.len, topic.ptr, partition,
            (long long)next);
    return 0;
}

int inspect_stats(struct eddy_state *st, FILE *out, char *err, size_t errlen)
{
    fprintf(out, "state           %s\n", state_dir(st));
    /* state_open() refuses any other format version. */
    fprintf(out, "format version  %d\n", STATE_FORMAT_VERSION);
    fprintf(out, "dim             %d\n", state_dim(st));
    fprintf(out, "model version   %llu\n", (unsigned long long)state_model_version(st));
    /* No checkpoint time is stored: wall time in the state would make two
     * runs over the same input differ. */
    fprintf(out, "last checkpoint unknown (not recorded in the state)\n");
    if (print_key_counts(st, out, err, errlen) || print_disk(st, out, err, errlen))
        return -1;
    return scan_cf(st, "offsets", offset_visit, out, err, errlen);
}

/* ---- backup --------------------------------------------------------------- */

int inspect_backup(struct eddy_state *st, const char *dest, char *err, size_t errlen)
{
    struct stat sb;
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = NULL;
    int rc = -1;
    bool exists = lstat(dest, &sb) == 0;
    if (exists || errno != ENOENT) {
        fmt_err(err, errlen, "backup %s: %s", dest, exists ? "already exists" : strerror(errno));
        goto out;
    }
    cp = rocksdb_checkpoint_object_create(state_db(st), &rerr);
    /* No flush (log size limit UINT64_MAX): the WAL is copied instead, so the
     * source directory is left exactly as it was. */
    if (!rerr)
        rocksdb_checkpoint_create(cp, dest, UINT64_MAX, &rerr);
    if (rerr) {
        fmt_err(err, errlen, "state %s: backup to %s: %s", state_dir(st), dest, rerr);
        goto out;
    }
    rc = 0;
out:
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    rocksdb_free(rerr);
    return rc;
}
