/* eventlog.c: Avro Object Container Files of eddy's input records.
 * See eventlog.h for the contract.
 *
 * Each reader or writer parses eddy's schema for its type once, looks up the
 * field indexes and enum symbols once, and reuses one generic value (reset
 * per record), as STYLE.md asks of the hot path. */
#include "pipeline/log.h"
#include "pipeline/validate.h"
#include "pipeline/eventlog.h"

#include <avro.h>
#include <xxhash.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 8
#define MAX_SYMS   4
#define BLOCK_SIZE (64 * 1024) /* bytes of records per container block */

enum { FC_USER, FC_ITEM, FC_TYPE, FC_TS, FC_SESSION };
enum { FA_CAMPAIGN, FA_TYPE, FA_TS, FA_USER, FA_PCTR, FA_PRICE, FA_COST, FA_VALUE };
enum { FB_CAMPAIGN, FB_BUDGET, FB_PERIOD, FB_BASE_BID };

/* Field names in the order of the F* constants above, and the enum symbols
 * in the order of records.h's enums. */
static const struct type_info {
    const char *name;
    const char *fields[MAX_FIELDS];
    size_t n_fields;
    const char *syms[MAX_SYMS];
    size_t n_syms;
    size_t enum_field;
} info[] = {
    [REC_CLICK] = {"ClickEvent",
                   {"user_id", "item_id", "event_type", "timestamp", "session_id"},
                   5,
                   {"VIEW", "CLICK", "ADD_TO_CART", "PURCHASE"},
                   CLICK_TYPE_COUNT,
                   FC_TYPE},
    [REC_AD] = {"AdEvent",
                {"campaign_id", "event_type", "timestamp", "user_id", "pctr",
                 "market_price_micros", "cost_micros", "value"},
                8,
                {"AUCTION", "IMPRESSION", "CLICK", "CONVERSION"},
                AD_TYPE_COUNT,
                FA_TYPE},
    [REC_CAMPAIGN] = {"CampaignBudget",
                      {"campaign_id", "budget_micros", "period_ms", "base_bid_micros"},
                      4,
                      {0},
                      0,
                      0},
};

/* eddy's schema for one record type, with indexes looked up once. */
struct layout {
    enum eddy_record_type type;
    avro_schema_t schema;
    avro_value_t val; /* reused for every record */
    bool has_val;
    size_t f[MAX_FIELDS]; /* schema field index of each F* constant */
    int sym[MAX_SYMS];    /* schema symbol index of each records.h enum value */
};

static int layout_indexes(struct layout *l, const struct type_info *ti, char *err, size_t errlen)
{
    for (size_t i = 0; i < ti->n_fields; i++) {
        int idx = avro_schema_record_field_get_index(l->schema, ti->fields[i]);
        if (idx < 0)
            return errf(err, errlen, "eddy's %s schema has no field %s", ti->name, ti->fields[i]);
        l->f[i] = (size_t)idx;
    }
    if (!ti->n_syms)
        return 0;
    avro_schema_t e = avro_schema_record_field_get_by_index(l->schema, (int)l->f[ti->enum_field]);
    for (size_t i = 0; i < ti->n_syms; i++) {
        l->sym[i] = avro_schema_enum_get_by_name(e, ti->syms[i]);
        if (l->sym[i] < 0)
            return errf(err, errlen, "eddy's %s schema has no symbol %s", ti->name, ti->syms[i]);
    }
    return 0;
}

static int layout_init(struct layout *l, enum eddy_record_type type, char *err, size_t errlen)
{
    const char *json = codec_schema_json(type);
    avro_value_iface_t *cls = NULL;
    int rc = -1;

    l->type = type;
    if (avro_schema_from_json_length(json, strlen(json), &l->schema)) {
        l->schema = NULL;
        errf(err, errlen, "eddy's %s schema: %s", info[type].name, avro_strerror());
        goto out;
    }
    if (layout_indexes(l, &info[type], err, errlen))
        goto out;
    /* The value holds its own reference to the class: drop ours (NOTES.md). */
    cls = avro_generic_class_from_schema(l->schema);
    if (!cls || avro_generic_value_new(cls, &l->val)) {
        errf(err, errlen, "%s value: %s", info[type].name, avro_strerror());
        goto out;
    }
    l->has_val = true;
    rc = 0;
out:
    if (cls)
        avro_value_iface_decref(cls);
    return rc;
}

static void layout_free(struct layout *l)
{
    if (l->has_val)
        avro_value_decref(&l->val);
    if (l->schema)
        avro_schema_decref(l->schema);
}

/* ---- Writing --------------------------------------------------------------- */

static void ocf_put_long(FILE *f, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    do {
        uint8_t b = z & 0x7f;
        z >>= 7;
        fputc(b | (z ? 0x80 : 0), f);
    } while (z);
}

static void ocf_put_bytes(FILE *f, const char *s, size_t len)
{
    ocf_put_long(f, (int64_t)len);
    fwrite(s, 1, len, f);
}

int eventlog_ocf_create(const char *path, enum eddy_record_type type, const char *codec,
                        char *err, size_t errlen)
{
    const char *json = codec_schema_json(type);
    FILE *f = fopen(path, "wb");
    if (!f)
        return errf(err, errlen, "%s: %s", path, strerror(errno));
    fwrite("Obj\x01", 1, 4, f);
    ocf_put_long(f, 2); /* the metadata map: one block of two entries */
    ocf_put_bytes(f, "avro.schema", 11);
    ocf_put_bytes(f, json, strlen(json));
    ocf_put_bytes(f, "avro.codec", 10);
    ocf_put_bytes(f, codec, strlen(codec));
    ocf_put_long(f, 0);
    /* The sync marker is a function of the schema: same input, same bytes. */
    XXH128_hash_t h = XXH3_128bits(json, strlen(json));
    fwrite(&h.low64, 8, 1, f);
    fwrite(&h.high64, 8, 1, f);
    if ((ferror(f) | fclose(f)))
        return errf(err, errlen, "%s: write error: %s", path, strerror(errno));
    return 0;
}

struct eventlog_writer {
    struct layout l;
    avro_file_writer_t fw;
    char *path, *tmp;
    char *scratch; /* NUL-terminated copy of the string being set */
    size_t scap;
};

/* Avro C copies a string only from a NUL-terminated buffer whose size counts
 * the NUL; records.h strings are not terminated. */
static int set_str(struct eventlog_writer *w, avro_value_t *f, struct eddy_str s)
{
    if (s.len + 1 > w->scap) {
        char *p = realloc(w->scratch, s.len + 1);
        if (!p) {
            avro_set_error("out of memory");
            return ENOMEM;
        }
        w->scratch = p;
        w->scap = s.len + 1;
    }
    if (s.len)
        memcpy(w->scratch, s.ptr, s.len);
    w->scratch[s.len] = '\0';
    return avro_value_set_string_len(f, w->scratch, s.len + 1);
}

static int field(avro_value_t *rec, size_t i, avro_value_t *f)
{
    return avro_value_get_by_index(rec, i, f, NULL);
}

static int put_str(struct eventlog_writer *w, size_t i, struct eddy_str s)
{
    avro_value_t f;
    return field(&w->l.val, w->l.f[i], &f) || set_str(w, &f, s);
}

static int put_long(struct eventlog_writer *w, size_t i, int64_t v)
{
    avro_value_t f;
    return field(&w->l.val, w->l.f[i], &f) || avro_value_set_long(&f, v);
}

static int put_enum(struct eventlog_writer *w, size_t i, int v)
{
    avro_value_t f;
    if (v < 0 || (size_t)v >= info[w->l.type].n_syms) {
        avro_set_error("event type %d out of range", v);
        return EINVAL;
    }
    return field(&w->l.val, w->l.f[i], &f) || avro_value_set_enum(&f, w->l.sym[v]);
}

/* eddy's optional fields are ["null", T]: branch 0 is null, 1 the value. */
static int put_opt(struct eventlog_writer *w, size_t i, bool present, avro_value_t *branch)
{
    avro_value_t f;
    if (field(&w->l.val, w->l.f[i], &f) || avro_value_set_branch(&f, present, branch))
        return -1;
    return present ? 0 : avro_value_set_null(branch);
}

static int put_opt_str(struct eventlog_writer *w, size_t i, struct eddy_str s)
{
    avro_value_t b;
    return put_opt(w, i, s.ptr != NULL, &b) || (s.ptr && set_str(w, &b, s));
}

static int put_opt_double(struct eventlog_writer *w, size_t i, bool present, double v)
{
    avro_value_t b;
    return put_opt(w, i, present, &b) || (present && avro_value_set_double(&b, v));
}

static int put_opt_long(struct eventlog_writer *w, size_t i, bool present, int64_t v)
{
    avro_value_t b;
    return put_opt(w, i, present, &b) || (present && avro_value_set_long(&b, v));
}

static int fill_click(struct eventlog_writer *w, const struct click_event *e)
{
    return put_str(w, FC_USER, e->user_id) || put_str(w, FC_ITEM, e->item_id) ||
           put_enum(w, FC_TYPE, (int)e->type) || put_long(w, FC_TS, e->timestamp_ms) ||
           put_opt_str(w, FC_SESSION, e->session_id);
}

static int fill_ad(struct eventlog_writer *w, const struct ad_event *e)
{
    return put_str(w, FA_CAMPAIGN, e->campaign_id) || put_enum(w, FA_TYPE, (int)e->type) ||
           put_long(w, FA_TS, e->timestamp_ms) || put_opt_str(w, FA_USER, e->user_id) ||
           put_opt_double(w, FA_PCTR, e->has_pctr, e->pctr) ||
           put_opt_long(w, FA_PRICE, e->has_market_price, e->market_price_micros) ||
           put_opt_long(w, FA_COST, e->has_cost, e->cost_micros) ||
           put_opt_double(w, FA_VALUE, e->has_value, e->value);
}

static int fill_campaign(struct eventlog_writer *w, const struct campaign_budget *e)
{
    return put_str(w, FB_CAMPAIGN, e->campaign_id) || put_long(w, FB_BUDGET, e->budget_micros) ||
           put_long(w, FB_PERIOD, e->period_ms) || put_long(w, FB_BASE_BID, e->base_bid_micros);
}

int eventlog_writer_new(const char *path, enum eddy_record_type type, const char *codec,
                        struct eventlog_writer **out, char *err, size_t errlen)
{
    struct eventlog_writer *w = calloc(1, sizeof *w);
    int rc = -1;

    *out = NULL;
    if (!w)
        return errf(err, errlen, "out of memory");
    if ((unsigned)type > REC_CAMPAIGN) {
        errf(err, errlen, "eventlog: type %d is not an input record", (int)type);
        goto out;
    }
    if (strcmp(codec, "deflate") && strcmp(codec, "null")) {
        errf(err, errlen, "unknown Avro codec \"%s\" (deflate or null)", codec);
        goto out;
    }
    if (!(w->path = strdup(path)) || asprintf(&w->tmp, "%s.tmp", path) < 0) {
        w->tmp = NULL;
        errf(err, errlen, "out of memory");
        goto out;
    }
    if (layout_init(&w->l, type, err, errlen))
        goto out;
    /* Our own header (replacing a stale .tmp), then Avro C appends. */
    if (eventlog_ocf_create(w->tmp, type, codec, err, errlen))
        goto out;
    if (avro_file_writer_open_bs(w->tmp, &w->fw, BLOCK_SIZE)) {
        w->fw = NULL;
        errf(err, errlen, "%s: %s", w->tmp, avro_strerror());
        goto out;
    }
    rc = 0;
out:
    if (rc)
        eventlog_writer_discard(w);
    else
        *out = w;
    return rc;
}

int eventlog_append(struct eventlog_writer *w, const void *record, char *err, size_t errlen)
{
    int bad;
    avro_value_reset(&w->l.val);
    switch (w->l.type) {
    case REC_CLICK: bad = fill_click(w, record); break;
    case REC_AD: bad = fill_ad(w, record); break;
    default: bad = fill_campaign(w, record); break;
    }
    if (bad || avro_file_writer_append_value(w->fw, &w->l.val))
        return errf(err, errlen, "%s: cannot append %s: %s", w->tmp, info[w->l.type].name,
                    avro_strerror());
    return 0;
}

static void writer_free(struct eventlog_writer *w)
{
    layout_free(&w->l);
    free(w->scratch);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* Flushes and closes Avro's writer; -1 when it reports an error. */
static int writer_close(struct eventlog_writer *w, char *err, size_t errlen)
{
    int rc = 0;
    if (w->fw && (avro_file_writer_flush(w->fw) | avro_file_writer_close(w->fw)))
        rc = errf(err, errlen, "%s: write error: %s", w->tmp, avro_strerror());
    w->fw = NULL;
    return rc;
}

int eventlog_writer_finish(struct eventlog_writer *w, char *err, size_t errlen)
{
    int rc = writer_close(w, err, errlen);
    if (!rc && rename(w->tmp, w->path))
        rc = errf(err, errlen, "rename %s: %s", w->tmp, strerror(errno));
    if (rc)
        remove(w->tmp);
    writer_free(w);
    return rc;
}

void eventlog_writer_discard(struct eventlog_writer *w)
{
    char ignored[8];
    if (!w)
        return;
    if (w->tmp) {
        writer_close(w, ignored, sizeof ignored);
        remove(w->tmp);
    }
    writer_free(w);
}

/* ---- Reading --------------------------------------------------------------- */

struct eventlog_reader {
    struct layout l;
    avro_file_reader_t fr;
    FILE *fp;              /* ours, for the read position (progress ETA) */
    avro_value_t resolved; /* writes into l.val when the file's schema differs */
    bool resolving;
    char *path;
    uint64_t n; /* records read so far */
};

static int get_str(avro_value_t *rec, size_t i, struct eddy_str *s)
{
    avro_value_t f;
    size_t size;
    if (field(rec, i, &f) || avro_value_get_string(&f, &s->ptr, &size))
        return -1;
    s->len = size ? size - 1 : 0; /* Avro C counts the NUL */
    return 0;
}

static int get_long(avro_value_t *rec, size_t i, int64_t *v)
{
    avro_value_t f;
    return field(rec, i, &f) || avro_value_get_long(&f, v);
}

/* Maps the schema's symbol index back to records.h's enum value. */
static int get_enum(struct layout *l, size_t i, int *v)
{
    avro_value_t f;
    int idx;
    if (field(&l->val, l->f[i], &f) || avro_value_get_enum(&f, &idx))
        return -1;
    for (size_t k = 0; k < info[l->type].n_syms; k++)
        if (l->sym[k] == idx) {
            *v = (int)k;
            return 0;
        }
    return -1;
}

/* The current branch of an ["null", T] field, and whether it is T. */
static int get_opt(avro_value_t *rec, size_t i, bool *present, avro_value_t *b)
{
    avro_value_t f;
    int disc;
    if (field(rec, i, &f) || avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, b))
        return -1;
    *present = disc == 1;
    return 0;
}

static int get_opt_str(avro_value_t *rec, size_t i, struct eddy_str *s)
{
    avro_value_t b;
    bool present;
    size_t size;
    *s = (struct eddy_str){NULL, 0};
    if (get_opt(rec, i, &present, &b) ||
        (present && avro_value_get_string(&b, &s->ptr, &size)))
        return -1;
    if (present)
        s->len = size ? size - 1 : 0;
    return 0;
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

static int read_click(struct layout *l, struct click_event *e)
{
    avro_value_t *v = &l->val;
    int type = 0;
    int bad = get_str(v, l->f[FC_USER], &e->user_id) || get_str(v, l->f[FC_ITEM], &e->item_id) ||
              get_enum(l, FC_TYPE, &type) || get_long(v, l->f[FC_TS], &e->timestamp_ms) ||
              get_opt_str(v, l->f[FC_SESSION], &e->session_id);
    e->type = (enum click_type)type;
    return bad ? -1 : 0;
}

static int read_ad(struct layout *l, struct ad_event *e)
{
    avro_value_t *v = &l->val;
    int type = 0;
    int bad = get_str(v, l->f[FA_CAMPAIGN], &e->campaign_id) || get_enum(l, FA_TYPE, &type) ||
              get_long(v, l->f[FA_TS], &e->timestamp_ms) ||
              get_opt_str(v, l->f[FA_USER], &e->user_id) ||
              get_opt_double(v, l->f[FA_PCTR], &e->has_pctr, &e->pctr) ||
              get_opt_long(v, l->f[FA_PRICE], &e->has_market_price, &e->market_price_micros) ||
              get_opt_long(v, l->f[FA_COST], &e->has_cost, &e->cost_micros) ||
              get_opt_double(v, l->f[FA_VALUE], &e->has_value, &e->value);
    e->type = (enum ad_type)type;
    return bad ? -1 : 0;
}

static int read_campaign(struct layout *l, struct campaign_budget *e)
{
    avro_value_t *v = &l->val;
    return get_str(v, l->f[FB_CAMPAIGN], &e->campaign_id) ||
           get_long(v, l->f[FB_BUDGET], &e->budget_micros) ||
           get_long(v, l->f[FB_PERIOD], &e->period_ms) ||
           get_long(v, l->f[FB_BASE_BID], &e->base_bid_micros);
}

/* The same rules as codec_decode's: NULL when valid, else the reason. */
/* The record type named by the file's schema; -1 when it is none of ours. */
static int file_type(avro_schema_t ws)
{
    if (!is_avro_record(ws))
        return -1;
    for (int t = REC_CLICK; t <= REC_CAMPAIGN; t++)
        if (!strcmp(avro_schema_name(ws), info[t].name))
            return t;
    return -1;
}

/* Reads through a resolver when the file's schema is not exactly eddy's. */
static int reader_resolve(struct eventlog_reader *r, avro_schema_t ws, char *err, size_t errlen)
{
    if (avro_schema_equal(ws, r->l.schema))
        return 0;
    avro_value_iface_t *res = avro_resolved_writer_new(ws, r->l.schema);
    if (!res)
        return errf(err, errlen, "%s: its %s schema does not resolve against eddy's: %s",
                    r->path, info[r->l.type].name, avro_strerror());
    int rc = avro_resolved_writer_new_value(res, &r->resolved);
    avro_value_iface_decref(res); /* the value holds its own reference */
    if (rc)
        return errf(err, errlen, "%s: resolver: %s", r->path, avro_strerror());
    avro_resolved_writer_set_dest(&r->resolved, &r->l.val);
    r->resolving = true;
    return 0;
}

int eventlog_reader_new(const char *path, struct eventlog_reader **out, char *err, size_t errlen)
{
    struct eventlog_reader *r = calloc(1, sizeof *r);
    avro_schema_t ws = NULL;
    int rc = -1, type;

    *out = NULL;
    if (!r || !(r->path = strdup(path))) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    if (!(r->fp = fopen(path, "rb"))) {
        errf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (avro_file_reader_fp(r->fp, path, 0, &r->fr)) {
        r->fr = NULL;
        errf(err, errlen, "%s: not a readable Avro container file: %s", path, avro_strerror());
        goto out;
    }
    ws = avro_file_reader_get_writer_schema(r->fr); /* a new reference */
    if ((type = file_type(ws)) < 0) {
        errf(err, errlen, "%s: holds %s records, not ClickEvent, AdEvent or CampaignBudget",
             path, is_avro_record(ws) ? avro_schema_name(ws) : "non-record");
        goto out;
    }
    if (layout_init(&r->l, (enum eddy_record_type)type, err, errlen) ||
        reader_resolve(r, ws, err, errlen))
        goto out;
    rc = 0;
out:
    if (ws)
        avro_schema_decref(ws);
    if (rc)
        eventlog_reader_free(r);
    else
        *out = r;
    return rc;
}

enum eddy_record_type eventlog_reader_type(const struct eventlog_reader *r)
{
    return r->l.type;
}

int eventlog_next(struct eventlog_reader *r, struct eddy_event *ev, char *err, size_t errlen)
{
    static const enum eddy_event_kind kind[] = {EV_CLICK, EV_AD, EV_CAMPAIGN};
    avro_value_reset(&r->l.val);
    int rc = avro_file_reader_read_value(r->fr, r->resolving ? &r->resolved : &r->l.val);
    if (rc == EOF)
        return 0;
    r->n++;
    if (rc)
        return errf(err, errlen, "%s: record %llu: %s", r->path, (unsigned long long)r->n,
                    avro_strerror());
    ev->kind = kind[r->l.type];
    ev->partition = 0;
    int bad = r->l.type == REC_CLICK ? read_click(&r->l, &ev->u.click)
              : r->l.type == REC_AD  ? read_ad(&r->l, &ev->u.ad)
                                     : read_campaign(&r->l, &ev->u.campaign);
    const char *why = bad ? "cannot read its fields" : event_invalid(ev);
    if (why)
        return errf(err, errlen, "%s: record %llu: %s", r->path, (unsigned long long)r->n, why);
    return 1;
}

uint64_t eventlog_reader_offset(const struct eventlog_reader *r)
{
    long off = ftell(r->fp);
    return off > 0 ? (uint64_t)off : 0;
}

void eventlog_reader_free(struct eventlog_reader *r)
{
    if (!r)
        return;
    if (r->resolving)
        avro_value_decref(&r->resolved);
    if (r->fr)
        avro_file_reader_close(r->fr);
    if (r->fp)
        fclose(r->fp);
    layout_free(&r->l);
    free(r->path);
    free(r);
}
