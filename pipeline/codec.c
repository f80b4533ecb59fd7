/* codec.c: Avro C encoding and decoding of eddy's records, with framing.
 * See codec.h for the contract.
 *
 * Decoding a message:
 *   1. the framing names the writer schema (a fingerprint or a registry id);
 *   2. a small skipper walks the writer schema over the body and checks every
 *      length, count and index against the bytes present, because Avro C
 *      1.11.1 hands declared lengths straight to malloc;
 *   3. Avro C reads the body into the reader value, straight when the writer
 *      is eddy's own schema, else through the resolver cached for the
 *      (writer, reader) pair;
 *   4. fields are read by indexes looked up once, then validated.
 * Nothing on this path allocates, apart from what avro_value_read itself
 * does (each string). */
#include "pipeline/log.h"
#include "pipeline/validate.h"
#include "pipeline/codec.h"

#include <avro.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/registry.h"

#define DEFAULT_MAX_RECORD (1u << 20)
#define SKIP_MAX_DEPTH     64  /* nesting the skipper follows: deeper data is hostile */
#define CANON_MAX_DEPTH    100 /* nesting of schema JSON we canonicalise */
#define NAME_LEN           512 /* longest full name in a schema */
#define WHY_LEN            256 /* cached failure reasons */
#define SO_HDR             10  /* C3 01 + 8-byte little-endian fingerprint */
#define CF_HDR             5   /* 00 + 4-byte big-endian schema id */
#define MAX_FIELDS         8
#define MAX_SYMS           8 /* symbols of records.h's enums */
/* A registry lookup that failed is not retried sooner than this: with a 5 s
 * timeout per try, retrying per message would stall the pipeline. */
#define REGISTRY_RETRY_MS 10000
/* Failed lookups remembered at most: ids come from message bytes, and each
 * one kept costs about 2 KB and a step of every lookup's scan. */
#define MAX_FAILED_IDS 64

/* ---- Parsing Canonical Form and CRC-64-AVRO ---------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A JSON string literal. UTF-8 is written as is (the STRINGS rule); only
 * what JSON requires is escaped. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    char esc[8];
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            sb_put(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

struct canon {
    struct sbuf out;
    json_t *names; /* full names defined so far, as a set */
    int depth;
    char *err;
    size_t errlen;
};

static int canon_schema(struct canon *k, json_t *s, const char *ns);

static bool is_primitive(const char *s)
{
    static const char *const prim[] = {"null",  "boolean", "int",   "long",
                                       "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        if (strcmp(s, prim[i]) == 0)
            return true;
    return false;
}

/* FULLNAMES: a dotted name is already full; else it takes namespace ns. */
static int full_name(struct canon *k, const char *name, const char *ns, char *out)
{
    int n = strchr(name, '.') || !*ns ? snprintf(out, NAME_LEN, "%s", name)
                                      : snprintf(out, NAME_LEN, "%s.%s", ns, name);
    return n < NAME_LEN ? 0 : errf(k->err, k->errlen, "name too long: %.40s...", name);
}

/* A reference to a primitive or to a named type defined earlier. Like the
 * Java implementation, an unqualified name not found in the enclosing
 * namespace is looked up in the null namespace. */
static int canon_ref(struct canon *k, const char *name, const char *ns)
{
    char full[NAME_LEN];
    if (is_primitive(name)) {
        sb_json_str(&k->out, name);
        return 0;
    }
    if (full_name(k, name, ns, full))
        return -1;
    if (!json_object_get(k->names, full)) {
        if (strchr(name, '.') || !json_object_get(k->names, name))
            return errf(k->err, k->errlen, "unknown type \"%.100s\"", name);
        snprintf(full, sizeof full, "%s", name);
    }
    sb_json_str(&k->out, full);
    return 0;
}

/* Defines the named type s and writes {"name":"<full name>". A "namespace"
 * attribute overrides the enclosing namespace ns. */
static int canon_name(struct canon *k, json_t *s, const char *ns, char *full)
{
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *jns = json_object_get(s, "namespace");

    if (!name)
        return errf(k->err, k->errlen, "named type without a \"name\"");
    if (json_is_string(jns))
        ns = json_string_value(jns);
    if (full_name(k, name, ns, full))
        return -1;
    if (json_object_get(k->names, full))
        return errf(k->err, k->errlen, "type %.100s defined twice", full);
    if (json_object_set_new(k->names, full, json_true()))
        return errf(k->err, k->errlen, "out of memory");
    sb_puts(&k->out, "{\"name\":");
    sb_json_str(&k->out, full);
    return 0;
}

static int canon_record(struct canon *k, json_t *s, const char *type, const char *ns)
{
    char full[NAME_LEN], inner[NAME_LEN];
    json_t *fields = json_object_get(s, "fields"), *f;
    size_t i;

    if (!json_is_array(fields))
        return errf(k->err, k->errlen, "record without \"fields\"");
    if (canon_name(k, s, ns, full))
        return -1;
    /* The record's own namespace encloses its fields' types. */
    const char *dot = strrchr(full, '.');
    snprintf(inner, sizeof inner, "%.*s", dot ? (int)(dot - full) : 0, full);
    sb_puts(&k->out, ",\"type\":");
    sb_json_str(&k->out, type);
    sb_puts(&k->out, ",\"fields\":[");
    json_array_foreach (fields, i, f) {
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *ftype = json_object_get(f, "type");
        if (!fname || !ftype)
            return errf(k->err, k->errlen, "field without \"name\" or \"type\"");
        sb_puts(&k->out, i ? ",{\"name\":" : "{\"name\":");
        sb_json_str(&k->out, fname);
        sb_puts(&k->out, ",\"type\":");
        if (canon_schema(k, ftype, inner))
            return -1;
        sb_puts(&k->out, "}");
    }
    sb_puts(&k->out, "]}");
    return 0;
}

static int canon_enum(struct canon *k, json_t *s, const char *ns)
{
    char full[NAME_LEN];
    json_t *syms = json_object_get(s, "symbols"), *sym;
    size_t i;

    if (!json_is_array(syms))
        return errf(k->err, k->errlen, "enum without \"symbols\"");
    if (canon_name(k, s, ns, full))
        return -1;
    sb_puts(&k->out, ",\"type\":\"enum\",\"symbols\":[");
    json_array_foreach (syms, i, sym) {
        if (!json_is_string(sym))
            return errf(k->err, k->errlen, "enum %.100s: symbol is not a string", full);
        if (i)
            sb_puts(&k->out, ",");
        sb_json_str(&k->out, json_string_value(sym));
    }
    sb_puts(&k->out, "]}");
    return 0;
}

static int canon_fixed(struct canon *k, json_t *s, const char *ns)
{
    char full[NAME_LEN], size[32];
    json_t *jsize = json_object_get(s, "size");

    if (!json_is_integer(jsize) || json_integer_value(jsize) < 0)
        return errf(k->err, k->errlen, "fixed without a valid \"size\"");
    if (canon_name(k, s, ns, full))
        return -1;
    /* INTEGERS: no quotes, no leading zeros (jansson already parsed it). */
    snprintf(size, sizeof size, "%" JSON_INTEGER_FORMAT, json_integer_value(jsize));
    sb_puts(&k->out, ",\"type\":\"fixed\",\"size\":");
    sb_puts(&k->out, size);
    sb_puts(&k->out, "}");
    return 0;
}

/* array and map: {"type":"array","items":...} / {"type":"map","values":...} */
static int canon_container(struct canon *k, json_t *s, const char *type, const char *key,
                           const char *ns)
{
    json_t *inner = json_object_get(s, key);
    if (!inner)
        return errf(k->err, k->errlen, "%s without \"%s\"", type, key);
    sb_puts(&k->out, "{\"type\":");
    sb_json_str(&k->out, type);
    sb_puts(&k->out, ",\"");
    sb_puts(&k->out, key);
    sb_puts(&k->out, "\":");
    if (canon_schema(k, inner, ns))
        return -1;
    sb_puts(&k->out, "}");
    return 0;
}

static int canon_union(struct canon *k, json_t *s, const char *ns)
{
    json_t *branch;
    size_t i;
    sb_puts(&k->out, "[");
    json_array_foreach (s, i, branch) {
        if (i)
            sb_puts(&k->out, ",");
        if (canon_schema(k, branch, ns))
            return -1;
    }
    sb_puts(&k->out, "]");
    return 0;
}

/* Writes the canonical form of any schema. Attributes other than the ones
 * written are dropped (STRIP), and keys come in the spec's order (ORDER). */
static int canon_dispatch(struct canon *k, json_t *s, const char *ns)
{
    if (json_is_string(s))
        return canon_ref(k, json_string_value(s), ns);
    if (json_is_array(s))
        return canon_union(k, s, ns);
    const char *type = json_string_value(json_object_get(s, "type"));
    if (!json_is_object(s) || !type)
        return errf(k->err, k->errlen,
                    "schema is neither a name, a union nor an object with a \"type\"");
    if (is_primitive(type)) {
        sb_json_str(&k->out, type); /* PRIMITIVES: {"type":"int",...} is "int" */
        return 0;
    }
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0)
        return canon_record(k, s, type, ns);
    if (strcmp(type, "enum") == 0)
        return canon_enum(k, s, ns);
    if (strcmp(type, "fixed") == 0)
        return canon_fixed(k, s, ns);
    if (strcmp(type, "array") == 0)
        return canon_container(k, s, "array", "items", ns);
    if (strcmp(type, "map") == 0)
        return canon_container(k, s, "map", "values", ns);
    return canon_ref(k, type, ns);
}

static int canon_schema(struct canon *k, json_t *s, const char *ns)
{
    if (k->depth >= CANON_MAX_DEPTH)
        return errf(k->err, k->errlen, "schema nested deeper than %d", CANON_MAX_DEPTH);
    k->depth++;
    int rc = canon_dispatch(k, s, ns);
    k->depth--;
    return rc;
}

int avro_canonical_form(const char *schema_json, char **out, char *err, size_t errlen)
{
    struct canon k = {.names = json_object(), .err = err, .errlen = errlen};
    json_error_t jerr;
    json_t *root = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
    int rc = -1;

    *out = NULL;
    if (!root) {
        snprintf(err, errlen, "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
        goto out;
    }
    if (!k.names || canon_schema(&k, root, ""))
        goto out;
    if (k.out.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *out = k.out.p;
    k.out.p = NULL;
    rc = 0;
out:
    free(k.out.p);
    json_decref(root);
    json_decref(k.names);
    return rc;
}

uint64_t avro_crc64(const void *buf, size_t len)
{
    /* Bit by bit rather than table-driven: fingerprints are computed only
     * when a schema is loaded, never per message. */
    const uint64_t empty = 0xc15d213aa4d7a795ULL;
    const unsigned char *p = buf;
    uint64_t fp = empty;
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int b = 0; b < 8; b++)
            fp = (fp >> 1) ^ (empty & (0 - (fp & 1)));
    }
    return fp;
}

static int schema_fingerprint(const char *json, uint64_t *fp, char *err, size_t errlen)
{
    char *canon;
    if (avro_canonical_form(json, &canon, err, errlen))
        return -1;
    *fp = avro_crc64(canon, strlen(canon));
    free(canon);
    return 0;
}

/* ---- Skipper: checks a body against the writer schema before Avro C ---- */

/* The writer schema flattened once into an array, so the per-message walk
 * neither calls into Avro C's schema tables nor chases its links. */
struct snode {
    avro_type_t type;
    uint32_t kids; /* record fields, union branches, array items or map values
                    * start at prog.kid[kids] */
    uint64_t n;    /* fields, branches, symbols, or fixed size */
};

struct named {
    avro_schema_t schema;
    uint32_t node;
};

struct prog {
    struct snode *node;
    uint32_t *kid;
    size_t n_node, n_kid, cap_node, cap_kid;
    struct named *named; /* while compiling: named types flattened so far */
    size_t n_named, cap_named;
};

/* Grows the array arr of cap elements to hold at least need; 0, or -1 when
 * out of memory (arr unchanged). */
#define GROW(arr, cap, need)                                            \
    __extension__({                                                     \
        int rc_ = 0;                                                    \
        if ((need) > (cap)) {                                           \
            size_t ncap_ = (cap) ? (cap)*2 : 16;                        \
            while (ncap_ < (need))                                      \
                ncap_ *= 2;                                             \
            __typeof__(arr) p_ = realloc((arr), ncap_ * sizeof *(arr)); \
            if (p_) {                                                   \
                (arr) = p_;                                             \
                (cap) = ncap_;                                          \
            } else {                                                    \
                rc_ = -1;                                               \
            }                                                           \
        }                                                               \
        rc_;                                                            \
    })

static int64_t compile(struct prog *p, avro_schema_t s);

/* Reserves n child slots and flattens children child(s, i) into them. */
static int compile_kids(struct prog *p, uint32_t self, avro_schema_t s, size_t n,
                        avro_schema_t (*child)(avro_schema_t, size_t))
{
    if (GROW(p->kid, p->cap_kid, p->n_kid + n))
        return -1;
    size_t first = p->n_kid;
    p->n_kid += n;
    p->node[self].kids = (uint32_t)first;
    for (size_t i = 0; i < n; i++) {
        int64_t k = compile(p, child(s, i));
        if (k < 0)
            return -1;
        p->kid[first + i] = (uint32_t)k; /* p->kid may have moved: index again */
    }
    return 0;
}

static avro_schema_t field_at(avro_schema_t s, size_t i)
{
    return avro_schema_record_field_get_by_index(s, (int)i);
}

static avro_schema_t branch_at(avro_schema_t s, size_t i)
{
    return avro_schema_union_branch(s, (int)i);
}

static avro_schema_t items_of(avro_schema_t s, size_t i)
{
    (void)i;
    return is_avro_array(s) ? avro_schema_array_items(s) : avro_schema_map_values(s);
}

static int64_t compile(struct prog *p, avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    for (size_t i = 0; i < p->n_named; i++)
        if (p->named[i].schema == s)
            return p->named[i].node;
    if (GROW(p->node, p->cap_node, p->n_node + 1) || GROW(p->named, p->cap_named, p->n_named + 1))
        return -1;
    uint32_t self = (uint32_t)p->n_node++;
    p->node[self] = (struct snode){.type = avro_typeof(s)};
    if (is_avro_named_type(s))
        p->named[p->n_named++] = (struct named){s, self};
    switch (avro_typeof(s)) {
    case AVRO_RECORD:
        p->node[self].n = avro_schema_record_size(s);
        return compile_kids(p, self, s, p->node[self].n, field_at) ? -1 : (int64_t)self;
    case AVRO_UNION:
        p->node[self].n = avro_schema_union_size(s);
        return compile_kids(p, self, s, p->node[self].n, branch_at) ? -1 : (int64_t)self;
    case AVRO_ARRAY:
    case AVRO_MAP:
        return compile_kids(p, self, s, 1, items_of) ? -1 : (int64_t)self;
    case AVRO_ENUM:
        p->node[self].n = (uint64_t)avro_schema_enum_number_of_symbols(s);
        return self;
    case AVRO_FIXED:
        p->node[self].n = (uint64_t)avro_schema_fixed_size(s);
        return self;
    default:
        return self;
    }
}

struct cur {
    const uint8_t *p, *end;
    size_t items_left; /* array/map items still allowed: one per body byte */
    char *why;
    size_t whylen;
};

#define BAD(c, ...) errf((c)->why, (c)->whylen, __VA_ARGS__)

static size_t left(const struct cur *c)
{
    return (size_t)(c->end - c->p);
}

/* A zig-zag varint of at most maxbytes bytes (5 for int, 10 for long). */
static int varint(struct cur *c, int maxbytes, int64_t *out)
{
    uint64_t v = 0;
    *out = 0;
    for (int i = 0; i < maxbytes; i++) {
        if (c->p == c->end)
            return BAD(c, "truncated record");
        uint8_t b = *c->p++;
        if (i == 9 && b > 1)
            break; /* bits beyond 64 */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
            return 0;
        }
    }
    return BAD(c, "malformed varint");
}

static int take(struct cur *c, uint64_t n)
{
    if (n > left(c))
        return BAD(c, "truncated record");
    c->p += n;
    return 0;
}

/* string and bytes: a length, then that many bytes, which must be present. */
static int skip_len(struct cur *c, const char *what)
{
    int64_t n;
    if (varint(c, 10, &n))
        return -1;
    if (n < 0)
        return BAD(c, "negative %s length %" PRId64, what, n);
    if ((uint64_t)n > left(c))
        return BAD(c, "%s length %" PRId64 " exceeds the %zu bytes left", what, n, left(c));
    c->p += n;
    return 0;
}

static int skip(const struct prog *p, uint32_t i, struct cur *c, int depth);

/* Array and map blocks. A block's count must fit in the bytes left, and
 * all blocks together in the item budget: items of zero bytes (null, empty
 * records) would otherwise let a few bytes ask Avro C for billions. */
static int skip_blocks(const struct prog *p, const struct snode *n, struct cur *c, int depth)
{
    const char *what = n->type == AVRO_MAP ? "map" : "array";
    int64_t count, size;
    for (;;) {
        if (varint(c, 10, &count))
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) { /* -count items follow, preceded by their size in bytes */
            if (count == INT64_MIN)
                return BAD(c, "bad %s block count", what);
            if (varint(c, 10, &size))
                return -1;
            if (size < 0 || (uint64_t)size > left(c))
                return BAD(c, "%s block size %" PRId64 " exceeds the %zu bytes left", what, size,
                           left(c));
            count = -count;
        }
        if ((uint64_t)count > left(c))
            return BAD(c, "%s block count %" PRId64 " exceeds the %zu bytes left", what, count,
                       left(c));
        if ((uint64_t)count > c->items_left)
            return BAD(c, "too many %s items", what);
        c->items_left -= (size_t)count;
        for (int64_t k = 0; k < count; k++)
            if ((n->type == AVRO_MAP && skip_len(c, "map key")) ||
                skip(p, p->kid[n->kids], c, depth + 1))
                return -1;
    }
}

/* An enum or union index, which Avro C 1.11.1 uses unchecked. */
static int skip_index(struct cur *c, uint64_t n, const char *what, int64_t *v)
{
    if (varint(c, 10, v))
        return -1;
    if (*v < 0 || (uint64_t)*v >= n)
        return BAD(c, "%s index %" PRId64 " out of range", what, *v);
    return 0;
}

static int skip(const struct prog *p, uint32_t i, struct cur *c, int depth)
{
    const struct snode *n = &p->node[i];
    int64_t v;

    if (depth > SKIP_MAX_DEPTH)
        return BAD(c, "record nested deeper than %d", SKIP_MAX_DEPTH);
    switch (n->type) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        if (take(c, 1))
            return -1;
        return c->p[-1] > 1 ? BAD(c, "bad boolean byte 0x%02x", c->p[-1]) : 0;
    case AVRO_INT32:
        if (varint(c, 5, &v))
            return -1;
        return v < INT32_MIN || v > INT32_MAX ? BAD(c, "int out of range") : 0;
    case AVRO_INT64:
        return varint(c, 10, &v);
    case AVRO_FLOAT:
        return take(c, 4);
    case AVRO_DOUBLE:
        return take(c, 8);
    case AVRO_STRING:
        return skip_len(c, "string");
    case AVRO_BYTES:
        return skip_len(c, "bytes");
    case AVRO_FIXED:
        return take(c, n->n);
    case AVRO_ENUM:
        return skip_index(c, n->n, "enum", &v);
    case AVRO_UNION:
        if (skip_index(c, n->n, "union", &v))
            return -1;
        return skip(p, p->kid[n->kids + (uint64_t)v], c, depth + 1);
    case AVRO_RECORD:
        for (uint64_t k = 0; k < n->n; k++)
            if (skip(p, p->kid[n->kids + k], c, depth + 1))
                return -1;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP:
        return skip_blocks(p, n, c, depth);
    default:
        return BAD(c, "unsupported schema type %d", (int)n->type);
    }
}

static int check_body(const struct prog *p, const uint8_t *body, size_t len, char *why,
                      size_t whylen)
{
    struct cur c = {body, body + len, len, why, whylen};
    if (skip(p, 0, &c, 0))
        return -1;
    return c.p == c.end ? 0 : BAD(&c, "%zu trailing bytes", left(&c));
}

/* ---- Schemas, readers, writers ------------------------------------------ */

/* Field indexes, looked up by name once in codec_new. */
enum { FC_USER, FC_ITEM, FC_TYPE, FC_TS, FC_SESSION };
enum { FA_CAMPAIGN, FA_TYPE, FA_TS, FA_USER, FA_PCTR, FA_PRICE, FA_COST, FA_VALUE };
enum { FB_CAMPAIGN, FB_BUDGET, FB_PERIOD, FB_BASE_BID };
enum { FR_USER, FR_ITEMS, FR_TIME, FR_MODEL };
enum { FI_ID, FI_SCORE };
enum { FD_CAMPAIGN, FD_SLOT, FD_MULT, FD_PACING, FD_SPENT, FD_REMAINING, FD_TIME };

static const char *const field_names[REC_TYPE_COUNT][MAX_FIELDS] = {
    [REC_CLICK] = {"user_id", "item_id", "event_type", "timestamp", "session_id"},
    [REC_AD] = {"campaign_id", "event_type", "timestamp", "user_id", "pctr", "market_price_micros",
                "cost_micros", "value"},
    [REC_CAMPAIGN] = {"campaign_id", "budget_micros", "period_ms", "base_bid_micros"},
    [REC_RECOMMENDATION] = {"user_id", "items", "event_time", "model_version"},
    [REC_DECISION] = {"campaign_id", "slot", "bid_multiplier", "pacing_rate", "spent_micros",
                      "remaining_micros", "event_time"},
};
static const char *const item_field_names[] = {"item_id", "score"};

/* Enum symbols in the order of records.h's C enums. Writers' symbols are
 * mapped by name, since Avro C 1.11.1 passes a writer's enum index through
 * to the reader unchanged. */
static const char *const click_syms[CLICK_TYPE_COUNT] = {"VIEW", "CLICK", "ADD_TO_CART",
                                                         "PURCHASE"};
static const char *const ad_syms[AD_TYPE_COUNT] = {"AUCTION", "IMPRESSION", "CLICK", "CONVERSION"};
_Static_assert(CLICK_TYPE_COUNT <= MAX_SYMS && AD_TYPE_COUNT <= MAX_SYMS, "raise MAX_SYMS");
static const struct enum_field {
    size_t field;
    const char *const *syms;
    int n; /* 0: the type has no enum */
} enums[REC_TYPE_COUNT] = {
    [REC_CLICK] = {FC_TYPE, click_syms, CLICK_TYPE_COUNT},
    [REC_AD] = {FA_TYPE, ad_syms, AD_TYPE_COUNT},
};

struct reader {
    avro_schema_t schema; /* eddy's schema for the type */
    uint64_t fp;
    avro_value_t dec, enc; /* decode into dec; encode from enc (so encoding
                            * leaves decoded strings alone) */
    size_t f[MAX_FIELDS];
    size_t item_f[2];       /* RecommendedItem fields */
    int enc_enum[MAX_SYMS]; /* C enum value -> symbol index in schema */
    int64_t out_id;         /* Confluent id to encode with; -1: single-object */
};

struct resolver {
    int state;                 /* 0: not built yet; 1: ready; -1: failed, see why */
    avro_value_iface_t *iface; /* resolved writer; NULL when writer == reader */
    avro_value_t value;        /* an instance writing into the reader's dec */
    int *enum_map;             /* writer symbol index -> C enum value or -1 */
    size_t n_enum;
    char why[WHY_LEN];
};

struct writer {
    uint64_t fp;          /* of the canonical form */
    int64_t id;           /* Confluent schema id; -1: found by fingerprint */
    avro_schema_t schema; /* NULL: registry lookup failed (why), until retry_ms */
    struct prog prog;
    int64_t retry_ms;
    char why[WHY_LEN];
    struct resolver res[REC_TYPE_COUNT];
};

struct eddy_codec {
    struct reader rd[REC_TYPE_COUNT];
    struct writer **w;
    size_t n_w, cap_w;
    struct registry *reg;
    size_t max_record;
    avro_reader_t in;
    avro_writer_t out;
    unsigned char *obuf; /* encoded message */
    size_t ocap;
    char *scratch; /* NUL-terminated copy of a string being encoded */
    size_t scap;
    struct rec_item *items; /* decoded Recommendation items */
    size_t icap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int reader_fields(struct reader *r, enum eddy_record_type t, char *err, size_t errlen)
{
    for (int i = 0; i < MAX_FIELDS && field_names[t][i]; i++) {
        int idx = avro_schema_record_field_get_index(r->schema, field_names[t][i]);
        if (idx < 0)
            return errf(err, errlen, "schema %s has no field %s", avro_schema_name(r->schema),
                        field_names[t][i]);
        r->f[i] = (size_t)idx;
    }
    if (t == REC_RECOMMENDATION) {
        avro_schema_t items = avro_schema_record_field_get_by_index(r->schema, (int)r->f[FR_ITEMS]);
        avro_schema_t item = avro_schema_array_items(items);
        for (int i = 0; i < 2; i++) {
            int idx = avro_schema_record_field_get_index(item, item_field_names[i]);
            if (idx < 0)
                return errf(err, errlen, "RecommendedItem has no field %s", item_field_names[i]);
            r->item_f[i] = (size_t)idx;
        }
    }
    const struct enum_field *e = &enums[t];
    avro_schema_t es =
        e->n ? avro_schema_record_field_get_by_index(r->schema, (int)r->f[e->field]) : NULL;
    for (int i = 0; i < e->n; i++)
        if ((r->enc_enum[i] = avro_schema_enum_get_by_name(es, e->syms[i])) < 0)
            return errf(err, errlen, "schema %s lacks enum symbol %s", avro_schema_name(r->schema),
                        e->syms[i]);
    return 0;
}

static int reader_init(struct reader *r, enum eddy_record_type t, char *err, size_t errlen)
{
    const char *json = codec_schema_json(t);
    avro_value_iface_t *cls = NULL;
    int rc = -1;

    r->out_id = -1;
    if (avro_schema_from_json_length(json, strlen(json), &r->schema)) {
        r->schema = NULL;
        errf(err, errlen, "eddy schema %d: %s", (int)t, avro_strerror());
        goto out;
    }
    if (schema_fingerprint(json, &r->fp, err, errlen))
        goto out;
    cls = avro_generic_class_from_schema(r->schema);
    if (!cls || avro_generic_value_new(cls, &r->dec) || avro_generic_value_new(cls, &r->enc)) {
        errf(err, errlen, "avro: %s", avro_strerror());
        goto out;
    }
    rc = reader_fields(r, t, err, errlen);
out:
    if (cls)
        avro_value_iface_decref(cls); /* the values hold their own references */
    return rc;
}

static void reader_done(struct reader *r)
{
    if (r->dec.self)
        avro_value_decref(&r->dec);
    if (r->enc.self)
        avro_value_decref(&r->enc);
    if (r->schema)
        avro_schema_decref(r->schema);
}

static void writer_free(struct writer *w)
{
    for (int t = 0; t < REC_TYPE_COUNT; t++) {
        struct resolver *res = &w->res[t];
        if (res->value.self)
            avro_value_decref(&res->value);
        if (res->iface)
            avro_value_iface_decref(res->iface);
        free(res->enum_map);
    }
    if (w->schema)
        avro_schema_decref(w->schema);
    free(w->prog.node);
    free(w->prog.kid);
    free(w->prog.named);
    free(w);
}

/* Appends an empty writer entry (no schema yet). */
static struct writer *writer_new(struct eddy_codec *c, int64_t id)
{
    struct writer *w = calloc(1, sizeof *w);
    if (!w || GROW(c->w, c->cap_w, c->n_w + 1)) {
        free(w);
        return NULL;
    }
    w->id = id;
    c->w[c->n_w++] = w;
    return w;
}

/* Gives w its schema (takes ownership) and flattens it for the skipper. On
 * failure w is left without a schema, as it was. */
static int writer_set(struct writer *w, avro_schema_t schema, uint64_t fp)
{
    struct prog p = {0};
    int rc = compile(&p, schema) < 0 ? -1 : 0;

    free(p.named); /* only needed while compiling */
    if (rc) {
        free(p.node);
        free(p.kid);
        avro_schema_decref(schema);
        return -1;
    }
    p.named = NULL;
    p.n_named = p.cap_named = 0;
    w->prog = p;
    w->schema = schema;
    w->fp = fp;
    return 0;
}

static int parse_schema(const char *json, avro_schema_t *schema, uint64_t *fp, char *err,
                        size_t errlen)
{
    if (avro_schema_from_json_length(json, strlen(json), schema))
        return errf(err, errlen, "%s", avro_strerror());
    if (schema_fingerprint(json, fp, err, errlen)) {
        avro_schema_decref(*schema);
        return -1;
    }
    return 0;
}

/* A codec knows a handful of writer schemas: a linear scan is as fast as a
 * hash and simpler. */
static struct writer *find_fp(struct eddy_codec *c, uint64_t fp)
{
    for (size_t i = 0; i < c->n_w; i++)
        if (c->w[i]->id < 0 && c->w[i]->fp == fp)
            return c->w[i];
    return NULL;
}

static struct writer *find_id(struct eddy_codec *c, int64_t id)
{
    for (size_t i = 0; i < c->n_w; i++)
        if (c->w[i]->id == id)
            return c->w[i];
    return NULL;
}

/* Adds a single-object writer schema unless its fingerprint is known. */
static int add_known(struct eddy_codec *c, avro_schema_t schema, uint64_t fp)
{
    if (find_fp(c, fp)) {
        avro_schema_decref(schema);
        return 0;
    }
    struct writer *w = writer_new(c, -1);
    if (!w) {
        avro_schema_decref(schema);
        return -1;
    }
    return writer_set(w, schema, fp);
}

static int read_text_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n = 1;
    int rc = -1;

    if (!f)
        return -1;
    while (n > 0) {
        if (GROW(buf, cap, len + 4096))
            goto out;
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    }
    if (ferror(f))
        goto out;
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int load_writer_file(struct eddy_codec *c, const char *dir, const char *name, char *err,
                            size_t errlen)
{
    char path[4096], why[256], *json = NULL;
    avro_schema_t schema;
    uint64_t fp;
    int rc = -1;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (read_text_file(path, &json)) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (parse_schema(json, &schema, &fp, why, sizeof why)) {
        errf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    if (add_known(c, schema, fp)) {
        errf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    rc = 0;
out:
    free(json);
    return rc;
}

static int load_writers_dir(struct eddy_codec *c, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return errf(err, errlen, "writers_dir %s: %s", dir, strerror(errno));
    while (rc == 0 && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 5 && strcmp(de->d_name + n - 5, ".avsc") == 0)
            rc = load_writer_file(c, dir, de->d_name, err, errlen);
    }
    closedir(d);
    return rc;
}

int codec_new(const struct codec_options *opt, struct eddy_codec **out, char *err, size_t errlen)
{
    static char empty[1];
    struct eddy_codec *c = calloc(1, sizeof *c);
    int rc = -1;

    *out = NULL;
    if (!c || !(c->in = avro_reader_memory(empty, 0)) || !(c->out = avro_writer_memory(empty, 0))) {
        errf(err, errlen, "codec: out of memory");
        goto out;
    }
    c->max_record = opt && opt->max_record_bytes ? opt->max_record_bytes : DEFAULT_MAX_RECORD;
    for (int t = 0; t < REC_TYPE_COUNT; t++) {
        if (reader_init(&c->rd[t], t, err, errlen))
            goto out;
        if (add_known(c, avro_schema_incref(c->rd[t].schema), c->rd[t].fp)) {
            errf(err, errlen, "codec: out of memory");
            goto out;
        }
    }
    if (opt && opt->writers_dir && load_writers_dir(c, opt->writers_dir, err, errlen))
        goto out;
    if (opt && opt->registry_url && registry_new(opt->registry_url, &c->reg, err, errlen))
        goto out;
    rc = 0;
out:
    if (rc == 0)
        *out = c;
    else
        codec_free(c);
    return rc;
}

void codec_free(struct eddy_codec *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_w; i++)
        writer_free(c->w[i]);
    free(c->w);
    for (int t = 0; t < REC_TYPE_COUNT; t++)
        reader_done(&c->rd[t]);
    if (c->in)
        avro_reader_free(c->in);
    if (c->out)
        avro_writer_free(c->out);
    registry_free(c->reg);
    free(c->obuf);
    free(c->scratch);
    free(c->items);
    free(c);
}

/* ---- Finding the writer and its resolver -------------------------------- */

/* Fetches the schema registered under id into w; on failure w->why says why. */
static int fetch_schema(struct registry *reg, struct writer *w, uint32_t id)
{
    char why[WHY_LEN - 32], *json = NULL;
    avro_schema_t schema;
    uint64_t fp;
    int rc = -1;

    if (id > INT32_MAX)
        errf(why, sizeof why, "not a valid id");
    else if (registry_get_schema(reg, (int32_t)id, &json, why, sizeof why) == 0 &&
             parse_schema(json, &schema, &fp, why, sizeof why) == 0)
        rc = writer_set(w, schema, fp) ? errf(why, sizeof why, "out of memory") : 0;
    if (rc)
        errf(w->why, sizeof w->why, "schema id %" PRIu32 ": %s", id, why);
    free(json);
    return rc;
}

/* Makes room for one more failed lookup when MAX_FAILED_IDS are kept, by
 * forgetting the one due for a retry first. Without the cap, messages with
 * ever new ids (garbage after a 0 byte) grew the list without end: 100k of
 * them held 185 MB and made each decode scan them all (0.5 ms). */
static void forget_a_failure(struct eddy_codec *c)
{
    size_t n = 0, drop = 0;
    for (size_t i = 0; i < c->n_w; i++) {
        if (c->w[i]->schema)
            continue;
        if (!n++ || c->w[i]->retry_ms < c->w[drop]->retry_ms)
            drop = i;
    }
    if (n < MAX_FAILED_IDS)
        return;
    writer_free(c->w[drop]); /* no schema: no resolver refers to it */
    c->w[drop] = c->w[--c->n_w];
}

/* The writer schema registered under id: cached, else fetched (a failed
 * fetch is remembered for REGISTRY_RETRY_MS, MAX_FAILED_IDS at most). */
static int writer_by_id(struct eddy_codec *c, uint32_t id, struct writer **out, char *reason,
                        size_t rlen)
{
    struct writer *w = find_id(c, id);

    if (w && w->schema) {
        *out = w;
        return 0;
    }
    if (!c->reg)
        return errf(reason, rlen, "schema id %" PRIu32 ": no registry configured", id);
    if (!w)
        forget_a_failure(c);
    if (!w && !(w = writer_new(c, id)))
        return errf(reason, rlen, "out of memory");
    if (now_ms() >= w->retry_ms) {
        if (fetch_schema(c->reg, w, id) == 0) {
            *out = w;
            return 0;
        }
        w->retry_ms = now_ms() + REGISTRY_RETRY_MS;
    }
    return errf(reason, rlen, "%s", w->why);
}

/* Maps the writer's symbols of the type's enum field to C enum values. */
static int build_enum_map(const struct writer *w, enum eddy_record_type t, struct resolver *res)
{
    const struct enum_field *e = &enums[t];
    if (!e->n)
        return 0;
    avro_schema_t ws = avro_schema_record_field_get(w->schema, field_names[t][e->field]);
    while (is_avro_link(ws))
        ws = avro_schema_link_target(ws);
    if (!is_avro_enum(ws))
        return errf(res->why, sizeof res->why, "writer field %s is not an enum",
                    field_names[t][e->field]);
    res->n_enum = (size_t)avro_schema_enum_number_of_symbols(ws);
    res->enum_map = calloc(res->n_enum ? res->n_enum : 1, sizeof *res->enum_map);
    if (!res->enum_map)
        return errf(res->why, sizeof res->why, "out of memory");
    for (size_t i = 0; i < res->n_enum; i++) {
        const char *sym = avro_schema_enum_get(ws, (int)i);
        res->enum_map[i] = -1;
        for (int k = 0; k < e->n; k++)
            if (strcmp(sym, e->syms[k]) == 0)
                res->enum_map[i] = k;
    }
    return 0;
}

static int build_resolver(struct eddy_codec *c, const struct writer *w, enum eddy_record_type t,
                          struct resolver *res)
{
    struct reader *r = &c->rd[t];
    const char *rname = avro_schema_name(r->schema);

    /* Avro C matches record names without namespaces; so do we. */
    if (!is_avro_record(w->schema) || strcmp(avro_schema_name(w->schema), rname) != 0)
        return errf(res->why, sizeof res->why, "writer schema %s cannot be read as %s",
                    avro_schema_type_name(w->schema), rname);
    if (w->fp != r->fp) { /* else read straight into the reader's value */
        res->iface = avro_resolved_writer_new(w->schema, r->schema);
        if (!res->iface)
            return errf(res->why, sizeof res->why, "writer schema %s does not resolve: %s", rname,
                        avro_strerror());
        if (avro_resolved_writer_new_value(res->iface, &res->value))
            return errf(res->why, sizeof res->why, "avro: %s", avro_strerror());
        avro_resolved_writer_set_dest(&res->value, &r->dec);
    }
    return build_enum_map(w, t, res);
}

/* The resolver for (w, t), built on first use; a failure is cached too. */
static int resolver_for(struct eddy_codec *c, struct writer *w, enum eddy_record_type t,
                        struct resolver **out, char *reason, size_t rlen)
{
    struct resolver *res = &w->res[t];
    if (res->state == 0)
        res->state = build_resolver(c, w, t, res) ? -1 : 1;
    if (res->state < 0)
        return errf(reason, rlen, "%s", res->why);
    *out = res;
    return 0;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Reads the framing: the writer, and the length of the header. */
static int framing(struct eddy_codec *c, const uint8_t *p, size_t len, struct writer **w,
                   size_t *hdr, char *reason, size_t rlen)
{
    if (len == 0)
        return errf(reason, rlen, "empty message");
    if (p[0] == 0xc3) {
        if (len < SO_HDR || p[1] != 0x01)
            return errf(reason, rlen, "bad single-object header");
        *hdr = SO_HDR;
        if (!(*w = find_fp(c, le64(p + 2))))
            return errf(reason, rlen, "unknown schema fingerprint 0x%016" PRIx64, le64(p + 2));
        return 0;
    }
    if (p[0] == 0x00) {
        if (len < CF_HDR)
            return errf(reason, rlen, "bad Confluent header");
        *hdr = CF_HDR;
        uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        return writer_by_id(c, id, w, reason, rlen);
    }
    return errf(reason, rlen, "unknown framing byte 0x%02x", p[0]);
}

/* Decodes a framed message into c->rd[t].dec; *res is the resolver used. */
static int decode_value(struct eddy_codec *c, enum eddy_record_type t, const void *buf, size_t len,
                        struct resolver **res, char *reason, size_t rlen)
{
    const uint8_t *p = buf;
    struct writer *w;
    size_t hdr = 0;

    if (framing(c, p, len, &w, &hdr, reason, rlen) || resolver_for(c, w, t, res, reason, rlen))
        return -1;
    if (len - hdr > c->max_record)
        return errf(reason, rlen, "record of %zu bytes exceeds the limit of %zu", len - hdr,
                    c->max_record);
    if (check_body(&w->prog, p + hdr, len - hdr, reason, rlen))
        return -1;
    avro_reader_memory_set_source(c->in, (const char *)p + hdr, (int64_t)(len - hdr));
    if (avro_value_read(c->in, (*res)->iface ? &(*res)->value : &c->rd[t].dec))
        return errf(reason, rlen, "avro: %s", avro_strerror());
    return 0;
}

/* ---- Reading decoded values --------------------------------------------- */

static int get(avro_value_t *rec, size_t i, avro_value_t *f)
{
    return avro_value_get_by_index(rec, i, f, NULL);
}

static int str_of(avro_value_t *f, struct eddy_str *s)
{
    const char *p;
    size_t n;
    if (avro_value_get_string(f, &p, &n))
        return -1;
    s->ptr = p;
    s->len = n ? n - 1 : 0; /* Avro C's size counts the NUL */
    return 0;
}

static int get_str(avro_value_t *rec, size_t i, struct eddy_str *s)
{
    avro_value_t f;
    return get(rec, i, &f) || str_of(&f, s);
}

static int get_long(avro_value_t *rec, size_t i, int64_t *v)
{
    avro_value_t f;
    return get(rec, i, &f) || avro_value_get_long(&f, v);
}

static int get_double(avro_value_t *rec, size_t i, double *v)
{
    avro_value_t f;
    return get(rec, i, &f) || avro_value_get_double(&f, v);
}

/* An ["null", T] field: *present, and its value in *branch if so. */
static int get_opt(avro_value_t *rec, size_t i, bool *present, avro_value_t *branch)
{
    avro_value_t f;
    int d;
    if (get(rec, i, &f) || avro_value_get_discriminant(&f, &d))
        return -1;
    *present = d != 0; /* eddy's unions put "null" first */
    return *present ? avro_value_get_current_branch(&f, branch) : 0;
}

static int get_opt_str(avro_value_t *rec, size_t i, struct eddy_str *s)
{
    avro_value_t b;
    bool present;
    *s = (struct eddy_str){NULL, 0};
    return get_opt(rec, i, &present, &b) || (present && str_of(&b, s));
}

static int get_opt_double(avro_value_t *rec, size_t i, bool *present, double *v)
{
    avro_value_t b;
    *v = 0;
    return get_opt(rec, i, present, &b) || (*present && avro_value_get_double(&b, v));
}

static int get_opt_long(avro_value_t *rec, size_t i, bool *present, int64_t *v)
{
    avro_value_t b;
    *v = 0;
    return get_opt(rec, i, present, &b) || (*present && avro_value_get_long(&b, v));
}

/* The C enum value of the type's enum field, or -1 for a symbol eddy lacks. */
static int get_enum(avro_value_t *rec, size_t i, const struct resolver *res, int *v)
{
    avro_value_t f;
    int idx;
    if (get(rec, i, &f) || avro_value_get_enum(&f, &idx))
        return -1;
    *v = idx >= 0 && (size_t)idx < res->n_enum ? res->enum_map[idx] : -1;
    return 0;
}

static int read_click(struct eddy_codec *c, const struct resolver *res, struct click_event *e,
                      char *reason, size_t rlen)
{
    struct reader *r = &c->rd[REC_CLICK];
    int type;
    if (get_str(&r->dec, r->f[FC_USER], &e->user_id) ||
        get_str(&r->dec, r->f[FC_ITEM], &e->item_id) ||
        get_enum(&r->dec, r->f[FC_TYPE], res, &type) ||
        get_long(&r->dec, r->f[FC_TS], &e->timestamp_ms) ||
        get_opt_str(&r->dec, r->f[FC_SESSION], &e->session_id))
        return errf(reason, rlen, "avro: cannot read ClickEvent fields");
    if (type < 0)
        return errf(reason, rlen, "unknown event_type symbol");
    e->type = (enum click_type)type;
    return 0;
}

static int read_ad(struct eddy_codec *c, const struct resolver *res, struct ad_event *e,
                   char *reason, size_t rlen)
{
    struct reader *r = &c->rd[REC_AD];
    int type;
    if (get_str(&r->dec, r->f[FA_CAMPAIGN], &e->campaign_id) ||
        get_enum(&r->dec, r->f[FA_TYPE], res, &type) ||
        get_long(&r->dec, r->f[FA_TS], &e->timestamp_ms) ||
        get_opt_str(&r->dec, r->f[FA_USER], &e->user_id) ||
        get_opt_double(&r->dec, r->f[FA_PCTR], &e->has_pctr, &e->pctr) ||
        get_opt_long(&r->dec, r->f[FA_PRICE], &e->has_market_price, &e->market_price_micros) ||
        get_opt_long(&r->dec, r->f[FA_COST], &e->has_cost, &e->cost_micros) ||
        get_opt_double(&r->dec, r->f[FA_VALUE], &e->has_value, &e->value))
        return errf(reason, rlen, "avro: cannot read AdEvent fields");
    if (type < 0)
        return errf(reason, rlen, "unknown event_type symbol");
    e->type = (enum ad_type)type;
    return 0;
}

static int read_campaign(struct eddy_codec *c, struct campaign_budget *e, char *reason, size_t rlen)
{
    struct reader *r = &c->rd[REC_CAMPAIGN];
    if (get_str(&r->dec, r->f[FB_CAMPAIGN], &e->campaign_id) ||
        get_long(&r->dec, r->f[FB_BUDGET], &e->budget_micros) ||
        get_long(&r->dec, r->f[FB_PERIOD], &e->period_ms) ||
        get_long(&r->dec, r->f[FB_BASE_BID], &e->base_bid_micros))
        return errf(reason, rlen, "avro: cannot read CampaignBudget fields");
    return 0;
}

int codec_decode(struct eddy_codec *c, enum eddy_record_type expect, const void *buf, size_t len,
                 struct eddy_event *ev, char *reason, size_t reasonlen)
{
    struct resolver *res;
    if ((unsigned)expect > REC_CAMPAIGN)
        return errf(reason, reasonlen, "codec_decode: type %d is not an input record", expect);
    if (decode_value(c, expect, buf, len, &res, reason, reasonlen))
        return -1;
    int rc;
    ev->partition = 0; /* the caller sets the real one */
    switch (expect) {
    case REC_CLICK:
        ev->kind = EV_CLICK;
        rc = read_click(c, res, &ev->u.click, reason, reasonlen);
        break;
    case REC_AD:
        ev->kind = EV_AD;
        rc = read_ad(c, res, &ev->u.ad, reason, reasonlen);
        break;
    default:
        ev->kind = EV_CAMPAIGN;
        rc = read_campaign(c, &ev->u.campaign, reason, reasonlen);
    }
    const char *why = rc ? NULL : event_invalid(ev);
    return why ? errf(reason, reasonlen, "%s", why) : rc;
}

static int read_items(struct eddy_codec *c, struct reader *r, struct recommendation *out)
{
    avro_value_t items, it, f;
    size_t n;
    if (get(&r->dec, r->f[FR_ITEMS], &items) || avro_value_get_size(&items, &n) ||
        GROW(c->items, c->icap, n))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (avro_value_get_by_index(&items, i, &it, NULL) ||
            get_str(&it, r->item_f[FI_ID], &c->items[i].item_id) ||
            get(&it, r->item_f[FI_SCORE], &f) || avro_value_get_float(&f, &c->items[i].score))
            return -1;
    out->items = c->items;
    out->n_items = n;
    return 0;
}

int codec_decode_recommendation(struct eddy_codec *c, const void *buf, size_t len,
                                struct recommendation *out, char *reason, size_t reasonlen)
{
    struct reader *r = &c->rd[REC_RECOMMENDATION];
    struct resolver *res;
    if (decode_value(c, REC_RECOMMENDATION, buf, len, &res, reason, reasonlen))
        return -1;
    if (get_str(&r->dec, r->f[FR_USER], &out->user_id) || read_items(c, r, out) ||
        get_long(&r->dec, r->f[FR_TIME], &out->event_time_ms) ||
        get_long(&r->dec, r->f[FR_MODEL], &out->model_version))
        return errf(reason, reasonlen, "avro: cannot read Recommendation fields");
    return 0;
}

int codec_decode_decision(struct eddy_codec *c, const void *buf, size_t len,
                          struct budget_decision *out, char *reason, size_t reasonlen)
{
    struct reader *r = &c->rd[REC_DECISION];
    struct resolver *res;
    avro_value_t slot;
    if (decode_value(c, REC_DECISION, buf, len, &res, reason, reasonlen))
        return -1;
    if (get_str(&r->dec, r->f[FD_CAMPAIGN], &out->campaign_id) ||
        get(&r->dec, r->f[FD_SLOT], &slot) || avro_value_get_int(&slot, &out->slot) ||
        get_double(&r->dec, r->f[FD_MULT], &out->bid_multiplier) ||
        get_double(&r->dec, r->f[FD_PACING], &out->pacing_rate) ||
        get_long(&r->dec, r->f[FD_SPENT], &out->spent_micros) ||
        get_long(&r->dec, r->f[FD_REMAINING], &out->remaining_micros) ||
        get_long(&r->dec, r->f[FD_TIME], &out->event_time_ms))
        return errf(reason, reasonlen, "avro: cannot read BudgetDecision fields");
    return 0;
}

/* ---- Encoding ------------------------------------------------------------ */

/* Avro C copies a string only from a NUL-terminated buffer whose size counts
 * the NUL; eddy's strings are not terminated, so go through c->scratch. */
static int set_str(struct eddy_codec *c, avro_value_t *f, struct eddy_str s)
{
    if (GROW(c->scratch, c->scap, s.len + 1)) {
        avro_set_error("out of memory");
        return ENOMEM;
    }
    if (s.len)
        memcpy(c->scratch, s.ptr, s.len);
    c->scratch[s.len] = '\0';
    return avro_value_set_string_len(f, c->scratch, s.len + 1);
}

static int put_str(struct eddy_codec *c, avro_value_t *rec, size_t i, struct eddy_str s)
{
    avro_value_t f;
    return get(rec, i, &f) || set_str(c, &f, s);
}

static int put_long(avro_value_t *rec, size_t i, int64_t v)
{
    avro_value_t f;
    return get(rec, i, &f) || avro_value_set_long(&f, v);
}

static int put_double(avro_value_t *rec, size_t i, double v)
{
    avro_value_t f;
    return get(rec, i, &f) || avro_value_set_double(&f, v);
}

static int put_enum(const struct reader *r, avro_value_t *rec, size_t i, int v, int n)
{
    avro_value_t f;
    if (v < 0 || v >= n) {
        avro_set_error("event type %d out of range", v);
        return EINVAL;
    }
    return get(rec, i, &f) || avro_value_set_enum(&f, r->enc_enum[v]);
}

/* Selects null (branch 0) or the value branch of an ["null", T] field. */
static int put_opt(avro_value_t *rec, size_t i, bool present, avro_value_t *branch)
{
    avro_value_t f;
    if (get(rec, i, &f) || avro_value_set_branch(&f, present, branch))
        return -1;
    return present ? 0 : avro_value_set_null(branch);
}

static int put_opt_str(struct eddy_codec *c, avro_value_t *rec, size_t i, struct eddy_str s)
{
    avro_value_t b;
    return put_opt(rec, i, s.ptr != NULL, &b) || (s.ptr && set_str(c, &b, s));
}

static int put_opt_double(avro_value_t *rec, size_t i, bool present, double v)
{
    avro_value_t b;
    return put_opt(rec, i, present, &b) || (present && avro_value_set_double(&b, v));
}

static int put_opt_long(avro_value_t *rec, size_t i, bool present, int64_t v)
{
    avro_value_t b;
    return put_opt(rec, i, present, &b) || (present && avro_value_set_long(&b, v));
}

static int fill_click(struct eddy_codec *c, struct reader *r, const void *rec)
{
    const struct click_event *e = rec;
    return put_str(c, &r->enc, r->f[FC_USER], e->user_id) ||
           put_str(c, &r->enc, r->f[FC_ITEM], e->item_id) ||
           put_enum(r, &r->enc, r->f[FC_TYPE], (int)e->type, CLICK_TYPE_COUNT) ||
           put_long(&r->enc, r->f[FC_TS], e->timestamp_ms) ||
           put_opt_str(c, &r->enc, r->f[FC_SESSION], e->session_id);
}

static int fill_ad(struct eddy_codec *c, struct reader *r, const void *rec)
{
    const struct ad_event *e = rec;
    return put_str(c, &r->enc, r->f[FA_CAMPAIGN], e->campaign_id) ||
           put_enum(r, &r->enc, r->f[FA_TYPE], (int)e->type, AD_TYPE_COUNT) ||
           put_long(&r->enc, r->f[FA_TS], e->timestamp_ms) ||
           put_opt_str(c, &r->enc, r->f[FA_USER], e->user_id) ||
           put_opt_double(&r->enc, r->f[FA_PCTR], e->has_pctr, e->pctr) ||
           put_opt_long(&r->enc, r->f[FA_PRICE], e->has_market_price, e->market_price_micros) ||
           put_opt_long(&r->enc, r->f[FA_COST], e->has_cost, e->cost_micros) ||
           put_opt_double(&r->enc, r->f[FA_VALUE], e->has_value, e->value);
}

static int fill_campaign(struct eddy_codec *c, struct reader *r, const void *rec)
{
    const struct campaign_budget *e = rec;
    return put_str(c, &r->enc, r->f[FB_CAMPAIGN], e->campaign_id) ||
           put_long(&r->enc, r->f[FB_BUDGET], e->budget_micros) ||
           put_long(&r->enc, r->f[FB_PERIOD], e->period_ms) ||
           put_long(&r->enc, r->f[FB_BASE_BID], e->base_bid_micros);
}

/* Appends to the array emptied by avro_value_reset, whose element storage
 * Avro C keeps for reuse. */
static int fill_recommendation(struct eddy_codec *c, struct reader *r, const void *rec)
{
    const struct recommendation *e = rec;
    avro_value_t items, it, f;
    if (put_str(c, &r->enc, r->f[FR_USER], e->user_id) || get(&r->enc, r->f[FR_ITEMS], &items) ||
        put_long(&r->enc, r->f[FR_TIME], e->event_time_ms) ||
        put_long(&r->enc, r->f[FR_MODEL], e->model_version))
        return -1;
    for (size_t i = 0; i < e->n_items; i++)
        if (avro_value_append(&items, &it, NULL) ||
            put_str(c, &it, r->item_f[FI_ID], e->items[i].item_id) ||
            get(&it, r->item_f[FI_SCORE], &f) || avro_value_set_float(&f, e->items[i].score))
            return -1;
    return 0;
}

static int fill_decision(struct eddy_codec *c, struct reader *r, const void *rec)
{
    const struct budget_decision *e = rec;
    avro_value_t slot;
    return put_str(c, &r->enc, r->f[FD_CAMPAIGN], e->campaign_id) ||
           get(&r->enc, r->f[FD_SLOT], &slot) || avro_value_set_int(&slot, e->slot) ||
           put_double(&r->enc, r->f[FD_MULT], e->bid_multiplier) ||
           put_double(&r->enc, r->f[FD_PACING], e->pacing_rate) ||
           put_long(&r->enc, r->f[FD_SPENT], e->spent_micros) ||
           put_long(&r->enc, r->f[FD_REMAINING], e->remaining_micros) ||
           put_long(&r->enc, r->f[FD_TIME], e->event_time_ms);
}

static size_t put_header(const struct reader *r, unsigned char *p)
{
    if (r->out_id >= 0) {
        p[0] = 0x00;
        for (int i = 0; i < 4; i++)
            p[1 + i] = (unsigned char)((uint64_t)r->out_id >> (24 - 8 * i));
        return CF_HDR;
    }
    p[0] = 0xc3;
    p[1] = 0x01;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)(r->fp >> (8 * i));
    return SO_HDR;
}

int codec_encode(struct eddy_codec *c, enum eddy_record_type type, const void *record,
                 const void **out, size_t *outlen, char *err, size_t errlen)
{
    static int (*const fill[REC_TYPE_COUNT])(struct eddy_codec *, struct reader *, const void *) = {
        fill_click, fill_ad, fill_campaign, fill_recommendation, fill_decision};
    unsigned char hdr[SO_HDR];
    size_t size, n;

    if ((unsigned)type >= REC_TYPE_COUNT)
        return errf(err, errlen, "codec_encode: bad record type %d", type);
    struct reader *r = &c->rd[type];
    if (avro_value_reset(&r->enc) || fill[type](c, r, record) || avro_value_sizeof(&r->enc, &size))
        return errf(err, errlen, "cannot encode %s: %s", avro_schema_name(r->schema),
                    avro_strerror());
    n = put_header(r, hdr);
    if (GROW(c->obuf, c->ocap, n + size))
        return errf(err, errlen, "codec: out of memory");
    memcpy(c->obuf, hdr, n);
    avro_writer_memory_set_dest(c->out, (const char *)c->obuf + n, (int64_t)size);
    if (avro_value_write(c->out, &r->enc))
        return errf(err, errlen, "cannot encode %s: %s", avro_schema_name(r->schema),
                    avro_strerror());
    *out = c->obuf;
    *outlen = n + size;
    return 0;
}

int codec_register(struct eddy_codec *c, enum eddy_record_type type, const char *topic, char *err,
                   size_t errlen)
{
    char subject[512];
    int32_t id;

    if (!c->reg)
        return errf(err, errlen, "codec_register: no schema registry configured");
    if ((unsigned)type >= REC_TYPE_COUNT)
        return errf(err, errlen, "codec_register: bad record type %d", type);
    if ((size_t)snprintf(subject, sizeof subject, "%s-value", topic) >= sizeof subject)
        return errf(err, errlen, "codec_register: topic name too long");
    if (registry_register(c->reg, subject, codec_schema_json(type), &id, err, errlen))
        return -1;
    /* Knowing the id's schema spares a registry lookup when decoding our own output. */
    struct writer *w = find_id(c, id);
    if (!w && !(w = writer_new(c, id)))
        return errf(err, errlen, "codec: out of memory");
    if (!w->schema && writer_set(w, avro_schema_incref(c->rd[type].schema), c->rd[type].fp))
        return errf(err, errlen, "codec: out of memory");
    c->rd[type].out_id = id;
    return 0;
}
