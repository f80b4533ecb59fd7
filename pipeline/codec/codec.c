/* codec.c: Avro C encoding and decoding of eddy's records, with framing.
 * See codec.h for the contract.
 *
 * Decoding a message:
 *   1. the framing names the writer schema (a fingerprint or a registry id);
 *   2. a small skipper walks the writer schema over the body and checks every
 *      length, count and index against the bytes present, because Avro C
 *      1.11.1 hands declared lengths straight to malloc;
 *   3. the avromap reader cached for the (writer, record type) pair decodes
 *      the body and maps it to the C struct, then it is validated
 *      (pipeline/codec/avromap.h).
 * Nothing on this path allocates, apart from what avro_value_read itself
 * does (each string). */
#include "pipeline/run/log.h"
#include "pipeline/codec/codec.h"

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

#include "pipeline/codec/avromap.h"
#include "pipeline/codec/registry.h"

#define DEFAULT_MAX_RECORD (1u << 20)
#define SKIP_MAX_DEPTH     64  /* nesting the skipper follows: deeper data is hostile */
#define CANON_MAX_DEPTH    100 /* nesting of schema JSON we canonicalise */
#define NAME_LEN           512 /* longest full name in a schema */
#define WHY_LEN            256 /* cached failure reasons */
#define SO_HDR             10  /* C3 01 + 8-byte little-endian fingerprint */
#define CF_HDR             5   /* 00 + 4-byte big-endian schema id */
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

struct reader {
    struct avromap *map; /* eddy's schema for the type */
    uint64_t fp;
    int64_t out_id; /* Confluent id to encode with; -1: single-object */
};

struct resolver {
    int state;                 /* 0: not built yet; 1: ready; -1: failed, see why */
    struct avromap_reader *rd; /* reads the writer's records as the type */
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
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int reader_init(struct reader *r, enum eddy_record_type t, char *err, size_t errlen)
{
    r->out_id = -1;
    if (avromap_new(t, &r->map, err, errlen))
        return -1;
    return schema_fingerprint(codec_schema_json(t), &r->fp, err, errlen);
}

static void writer_free(struct writer *w)
{
    for (int t = 0; t < REC_TYPE_COUNT; t++)
        avromap_reader_free(w->res[t].rd);
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
        if (add_known(c, avro_schema_incref(avromap_schema(c->rd[t].map)), c->rd[t].fp)) {
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
        avromap_free(c->rd[t].map);
    if (c->in)
        avro_reader_free(c->in);
    if (c->out)
        avro_writer_free(c->out);
    registry_free(c->reg);
    free(c->obuf);
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

/* The reader of w's records as type t, built on first use; a failure is
 * cached too. */
static int reader_for(struct eddy_codec *c, struct writer *w, enum eddy_record_type t,
                      struct avromap_reader **out, char *reason, size_t rlen)
{
    struct resolver *res = &w->res[t];
    if (res->state == 0) {
        int rc = avromap_reader_new(c->rd[t].map, w->schema, &res->rd, res->why, sizeof res->why);
        res->state = rc ? -1 : 1;
    }
    if (res->state < 0)
        return errf(reason, rlen, "%s", res->why);
    *out = res->rd;
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

/* Decodes a framed message of type t; *rd is the reader that holds it. */
static int decode_value(struct eddy_codec *c, enum eddy_record_type t, const void *buf, size_t len,
                        struct avromap_reader **rd, char *reason, size_t rlen)
{
    const uint8_t *p = buf;
    struct writer *w;
    size_t hdr = 0;

    if (framing(c, p, len, &w, &hdr, reason, rlen) || reader_for(c, w, t, rd, reason, rlen))
        return -1;
    if (len - hdr > c->max_record)
        return errf(reason, rlen, "record of %zu bytes exceeds the limit of %zu", len - hdr,
                    c->max_record);
    if (check_body(&w->prog, p + hdr, len - hdr, reason, rlen))
        return -1;
    avro_reader_memory_set_source(c->in, (const char *)p + hdr, (int64_t)(len - hdr));
    if (avro_value_read(c->in, avromap_reader_value(*rd)))
        return errf(reason, rlen, "avro: %s", avro_strerror());
    return 0;
}

int codec_decode(struct eddy_codec *c, enum eddy_record_type expect, const void *buf, size_t len,
                 struct eddy_event *ev, char *reason, size_t reasonlen)
{
    struct avromap_reader *rd;
    if ((unsigned)expect > REC_CAMPAIGN)
        return errf(reason, reasonlen, "codec_decode: type %d is not an input record", expect);
    return decode_value(c, expect, buf, len, &rd, reason, reasonlen)
               ? -1
               : avromap_read_event(rd, ev, reason, reasonlen);
}

int codec_decode_recommendation(struct eddy_codec *c, const void *buf, size_t len,
                                struct recommendation *out, char *reason, size_t reasonlen)
{
    struct avromap_reader *rd;
    return decode_value(c, REC_RECOMMENDATION, buf, len, &rd, reason, reasonlen)
               ? -1
               : avromap_read_recommendation(rd, out, reason, reasonlen);
}

int codec_decode_decision(struct eddy_codec *c, const void *buf, size_t len,
                          struct budget_decision *out, char *reason, size_t reasonlen)
{
    struct avromap_reader *rd;
    return decode_value(c, REC_DECISION, buf, len, &rd, reason, reasonlen)
               ? -1
               : avromap_read_decision(rd, out, reason, reasonlen);
}

/* ---- Encoding ------------------------------------------------------------ */

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

/* The record's Avro body, after its framing header when `framed`. */
static int encode(struct eddy_codec *c, enum eddy_record_type type, const void *record, bool framed,
                  const void **out, size_t *outlen, char *err, size_t errlen)
{
    unsigned char hdr[SO_HDR];
    avro_value_t *value;
    size_t size, n;

    if ((unsigned)type >= REC_TYPE_COUNT)
        return errf(err, errlen, "codec_encode: bad record type %d", type);
    struct reader *r = &c->rd[type];
    if (avromap_encode(r->map, record, &value) || avro_value_sizeof(value, &size))
        return errf(err, errlen, "cannot encode %s: %s", avromap_record_name(type),
                    avro_strerror());
    n = framed ? put_header(r, hdr) : 0;
    if (GROW(c->obuf, c->ocap, n + size))
        return errf(err, errlen, "codec: out of memory");
    memcpy(c->obuf, hdr, n);
    avro_writer_memory_set_dest(c->out, (const char *)c->obuf + n, (int64_t)size);
    if (avro_value_write(c->out, value))
        return errf(err, errlen, "cannot encode %s: %s", avromap_record_name(type),
                    avro_strerror());
    *out = c->obuf;
    *outlen = n + size;
    return 0;
}

int codec_encode(struct eddy_codec *c, enum eddy_record_type type, const void *record,
                 const void **out, size_t *outlen, char *err, size_t errlen)
{
    return encode(c, type, record, true, out, outlen, err, errlen);
}

int codec_encode_body(struct eddy_codec *c, enum eddy_record_type type, const void *record,
                      const void **out, size_t *outlen, char *err, size_t errlen)
{
    return encode(c, type, record, false, out, outlen, err, errlen);
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
    if (!w->schema &&
        writer_set(w, avro_schema_incref(avromap_schema(c->rd[type].map)), c->rd[type].fp))
        return errf(err, errlen, "codec: out of memory");
    c->rd[type].out_id = id;
    return 0;
}
