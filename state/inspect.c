/* inspect.c: see inspect.h. One function per column family turns a stored
 * (key, value) into a JSON object; get and export both go through it, so a
 * `get` line is exactly the line `export` writes for that entry. Values are
 * decoded with state.c's own decoders (state_internal.h). */
#include "state/inspect.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Sets doc[key] = value and returns doc. jansson frees value when it cannot
 * be set (also when doc is NULL); then doc is freed too and NULL returned,
 * so calls chain and the first failure carries through. */
static json_t *with(json_t *doc, const char *key, json_t *value)
{
    if (json_object_set_new(doc, key, value)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The array-append counterpart of with(). */
static json_t *append(json_t *arr, json_t *value)
{
    if (json_array_append_new(arr, value)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *hex_json(struct eddy_str bytes)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * bytes.len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < bytes.len; i++) {
        s[2 * i] = digits[(unsigned char)bytes.ptr[i] >> 4];
        s[2 * i + 1] = digits[(unsigned char)bytes.ptr[i] & 15];
    }
    json_t *j = json_stringn(s, 2 * bytes.len);
    free(s);
    return j;
}

/* JSON strings must be UTF-8; ids are bytes, so others go out as hex. */
static json_t *id_json(struct eddy_str id)
{
    json_t *s = json_stringn(id.ptr ? id.ptr : "", id.len);
    return s ? s : with(json_object(), "hex", hex_json(id));
}

/* JSON has no NaN or infinities; json_real() refuses them. */
static json_t *real_json(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *floats_json(const float *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        arr = append(arr, real_json(v[i]));
    return arr;
}

static json_t *doubles_json(const double *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        arr = append(arr, real_json(v[i]));
    return arr;
}

static json_t *kind_json(const char *kind)
{
    return with(json_object(), "kind", json_string(kind));
}

/* ---- one function per column family ---------------------------------------
 * Each returns a new JSON object, or NULL: with why set if the stored entry
 * is corrupt, with why empty if jansson ran out of memory. */

/* "partition" and "id" of a user key (state_key_split()). */
static json_t *with_key(json_t *doc, struct eddy_str key)
{
    int32_t partition = 0;
    struct eddy_str id = key;
    state_key_split(key, &partition, &id);
    doc = with(doc, "partition", json_integer(partition));
    return with(doc, "id", id_json(id));
}

typedef json_t *(*entry_fn)(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                            char *why, size_t whylen);

static json_t *seen_json(struct eddy_state *st, const struct user_state *u)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < u->n_seen; i++)
        arr = append(arr, id_json(state_item_id(st, u->seen[i])));
    return arr;
}

static json_t *user_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                          char *why, size_t whylen)
{
    size_t dim = (size_t)state_dim(st);
    struct user_state u = {.vec = malloc(dim * sizeof(float))};
    json_t *doc = NULL;
    if (!u.vec || !state_user_decode(st, value.ptr, value.len, &u, why, whylen))
        goto out;
    doc = kind_json("user");
    doc = with_key(doc, key);
    doc = with(doc, "last_refresh_ms", json_integer(u.last_refresh_ms));
    doc = with(doc, "last_event_ms", json_integer(u.last_event_ms));
    doc = with(doc, "n_events", json_integer((json_int_t)u.n_events));
    doc = with(doc, "vector", floats_json(u.vec, dim));
    doc = with(doc, "seen", seen_json(st, &u));
out:
    free(u.seen);
    free(u.vec);
    return doc;
}

/* state_open() validated and loaded every stored item into the matrix, so
 * the in-memory row and vector are exactly what is stored. */
static json_t *item_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                          char *why, size_t whylen)
{
    (void)value;
    int32_t row = state_item_row(st, key);
    if (row < 0) {
        snprintf(why, whylen, "stored after the state was opened");
        return NULL;
    }
    json_t *doc = kind_json("item");
    doc = with(doc, "id", id_json(key));
    doc = with(doc, "row", json_integer(row));
    return with(doc, "vector", floats_json(state_item_vec(st, (uint32_t)row),
                                           (size_t)state_dim(st)));
}

/* The one table of struct campaign_ledger's fields, in stored order, for
 * every JSON view of a ledger (the export and get here, the HTTP API). */
enum ledger_kind {
    L_INT,
    L_FLAG,  /* 0 or 1 */
    L_TIME,  /* ms; INT64_MIN: not set yet */
    L_REAL,
};
#define LEDGER(field, kind) {#field, offsetof(struct campaign_ledger, field), kind}
static const struct {
    const char *name;
    size_t off;
    enum ledger_kind kind;
} ledger_fields[] = {
    LEDGER(configured, L_FLAG),          LEDGER(budget_micros, L_INT),
    LEDGER(period_ms, L_INT),            LEDGER(base_bid_micros, L_INT),
    LEDGER(period_start_ms, L_TIME),     LEDGER(slot, L_INT),
    LEDGER(action, L_INT),               LEDGER(q_state, L_INT),
    LEDGER(spent_micros, L_INT),         LEDGER(slot_spent_micros, L_INT),
    LEDGER(slot_clicks, L_INT),          LEDGER(last_auction_won, L_FLAG),
    LEDGER(auctions, L_INT),             LEDGER(wins, L_INT),
    LEDGER(clicks, L_INT),               LEDGER(impressions, L_INT),
    LEDGER(conversions, L_INT),          LEDGER(reported_cost_micros, L_INT),
    LEDGER(priced_auctions, L_INT),      LEDGER(price_sum_micros, L_INT),
    LEDGER(conversion_value, L_REAL),    LEDGER(bid_multiplier, L_REAL),
    LEDGER(pacing_rate, L_REAL),         LEDGER(decisions, L_INT),
};
_Static_assert(sizeof ledger_fields / sizeof ledger_fields[0] * 8 ==
                   sizeof(struct campaign_ledger),
               "ledger_fields must list every field of struct campaign_ledger");

static json_t *ledger_field_json(const struct campaign_ledger *l, size_t i,
                                 enum ledger_style style)
{
    const char *p = (const char *)l + ledger_fields[i].off;
    enum ledger_kind kind = ledger_fields[i].kind;
    int64_t v;
    double d;
    memcpy(&v, p, sizeof v);
    memcpy(&d, p, sizeof d);
    if (kind == L_REAL)
        return real_json(d);
    if (style == LEDGER_READABLE && kind == L_FLAG)
        return json_boolean(v);
    if (style == LEDGER_READABLE && kind == L_TIME && v == INT64_MIN)
        return json_null();
    return json_integer(v);
}

json_t *inspect_ledger_json(json_t *doc, const struct campaign_ledger *l,
                            enum ledger_style style)
{
    for (size_t i = 0; i < sizeof ledger_fields / sizeof ledger_fields[0]; i++)
        doc = with(doc, ledger_fields[i].name, ledger_field_json(l, i, style));
    return doc;
}

static json_t *campaign_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                              char *why, size_t whylen)
{
    (void)st;
    struct campaign_state c = {0};
    if (!state_campaign_decode(value.ptr, value.len, &c, why, whylen))
        return NULL;
    json_t *doc = kind_json("campaign");
    doc = with(doc, "id", id_json(key));
    doc = inspect_ledger_json(doc, &c.l, LEDGER_RAW);
    doc = with(doc, "q", doubles_json(c.q, c.n_q));
    free(c.q);
    return doc;
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
    doc = with(doc, "topic", id_json(topic));
    doc = with(doc, "partition", json_integer(partition));
    return with(doc, "next_offset", json_integer(next));
}

/* meta holds int64 values, except blobs, whose bytes are opaque here. */
static json_t *meta_entry(struct eddy_state *st, struct eddy_str key, struct eddy_str value,
                          char *why, size_t whylen)
{
    (void)st;
    const size_t plen = strlen(STATE_BLOB_PREFIX);
    if (key.len >= plen && !memcmp(key.ptr, STATE_BLOB_PREFIX, plen)) {
        json_t *doc = kind_json("blob");
        doc = with(doc, "key", id_json((struct eddy_str){key.ptr + plen, key.len - plen}));
        return with(doc, "hex", hex_json(value));
    }
    int64_t x;
    if (!state_i64_decode(value.ptr, value.len, &x, why, whylen))
        return NULL;
    json_t *doc = kind_json("meta");
    doc = with(doc, "key", id_json(key));
    return with(doc, "value", json_integer(x));
}

/* In export order; the first ones are indexed by enum inspect_kind. */
static const struct {
    const char *cf;
    entry_fn entry;
} column_families[] = {
    [INSPECT_USER] = {"users", user_entry},
    [INSPECT_ITEM] = {"items", item_entry},
    [INSPECT_CAMPAIGN] = {"campaigns", campaign_entry},
    {"offsets", offset_entry},
    {"meta", meta_entry},
};
#define N_EXPORTED (sizeof column_families / sizeof column_families[0])

/* Writes the JSON line of one stored entry of column_families[cf]. */
static int entry_line(struct eddy_state *st, size_t cf, struct eddy_str key,
                      struct eddy_str value, FILE *out, char *err, size_t errlen)
{
    char why[160] = "";
    json_t *doc = column_families[cf].entry(st, key, value, why, sizeof why);
    int rc = -1;
    if (!doc && why[0])
        fmt_err(err, errlen, "state %s: corrupt %s/%.*s: %s", state_dir(st),
                column_families[cf].cf, key_quote_len(key), key.ptr, why);
    else if (!doc)
        fmt_err(err, errlen, "state %s: out of memory writing %s as JSON", state_dir(st),
                column_families[cf].cf);
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
    size_t cf;
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
    struct export_ctx x = {0, out};
    int rc = 0;
    for (; rc == 0 && x.cf < N_EXPORTED; x.cf++)
        rc = scan_cf(st, column_families[x.cf].cf, export_visit, &x, err, errlen);
    return rc;
}

int inspect_kind_parse(const char *name)
{
    static const char *const kinds[] = {
        [INSPECT_USER] = "user", [INSPECT_ITEM] = "item", [INSPECT_CAMPAIGN] = "campaign"};
    for (int k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); k++)
        if (!strcmp(name, kinds[k]))
            return k;
    return -1;
}

static int get_one(struct eddy_state *st, enum inspect_kind kind, struct eddy_str key,
                   FILE *out, char *err, size_t errlen)
{
    const char *cf = column_families[kind].cf;
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
        rc = entry_line(st, kind, key, (struct eddy_str){v, len}, out, err, errlen);
    }
    rocksdb_free(rerr);
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* Users: one line per partition holding the id. */
int inspect_get(struct eddy_state *st, enum inspect_kind kind, struct eddy_str id,
                FILE *out, char *err, size_t errlen)
{
    if (kind != INSPECT_USER)
        return get_one(st, kind, id, out, err, errlen);
    int rc = 1;
    for (int32_t p = 0; p >= 0;) {
        p = state_stored_partition(st, id, p);
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
        int one = get_one(st, kind, (struct eddy_str){key, 4 + id.len}, out, err, errlen);
        free(key);
        if (one < 0)
            return -1;
        rc = one == 0 ? 0 : rc;
        p = p == INT32_MAX ? -1 : p + 1;
    }
    return rc;
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
    for (int k = 0; (cf = state_cf_name(k)); k++) {
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
    for (int k = 0; (cf = state_cf_name(k)); k++) {
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
