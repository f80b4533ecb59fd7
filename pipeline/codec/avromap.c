/* avromap.c: see avromap.h.
 *
 * Avro C 1.11.1's resolver refuses a writer that lacks a field of the
 * reader's schema, defaults or not. So a reader for such a writer resolves it
 * against eddy's schema less those fields (a "projection"), decodes into a
 * value of the projection, and reads the missing fields from a value holding
 * eddy's defaults, built once per map. Fields are read by indexes looked up
 * once per reader; nothing on the read path allocates, apart from what Avro C
 * does for each string. */
#include "pipeline/codec/avromap.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/run/log.h"
#include "pipeline/codec/validate.h"

#define MAX_FIELDS 8
#define MAX_SYMS   8 /* symbols of records.h's enums */

/* Field constants, in the order of field_names. */
enum { FC_USER, FC_ITEM, FC_TYPE, FC_TS, FC_SESSION };
enum { FA_CAMPAIGN, FA_TYPE, FA_TS, FA_USER, FA_PCTR, FA_PRICE, FA_COST, FA_VALUE };
enum { FB_CAMPAIGN, FB_BUDGET, FB_PERIOD, FB_BASE_BID };
enum { FR_USER, FR_ITEMS, FR_TIME, FR_MODEL };
enum { FI_ID, FI_SCORE, FI_BECAUSE };
enum { FD_CAMPAIGN, FD_SLOT, FD_MULT, FD_PACING, FD_SPENT, FD_REMAINING, FD_TIME };

static const char *const record_names[REC_TYPE_COUNT] = {
    [REC_CLICK] = "ClickEvent",
    [REC_AD] = "AdEvent",
    [REC_CAMPAIGN] = "CampaignBudget",
    [REC_RECOMMENDATION] = "Recommendation",
    [REC_DECISION] = "BudgetDecision",
};

static const char *const field_names[REC_TYPE_COUNT][MAX_FIELDS] = {
    [REC_CLICK] = {"user_id", "item_id", "event_type", "timestamp", "session_id"},
    [REC_AD] = {"campaign_id", "event_type", "timestamp", "user_id", "pctr", "market_price_micros",
                "cost_micros", "value"},
    [REC_CAMPAIGN] = {"campaign_id", "budget_micros", "period_ms", "base_bid_micros"},
    [REC_RECOMMENDATION] = {"user_id", "items", "event_time", "model_version"},
    [REC_DECISION] = {"campaign_id", "slot", "bid_multiplier", "pacing_rate", "spent_micros",
                      "remaining_micros", "event_time"},
};
#define N_ITEM_FIELDS 3
static const char *const item_field_names[N_ITEM_FIELDS] = {"item_id", "score", "because"};

/* Enum symbols in the order of records.h's C enums. */
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

struct avromap {
    enum eddy_record_type type;
    avro_schema_t schema;
    json_t *json;          /* the same schema, for its defaults and projections */
    size_t f[MAX_FIELDS];  /* index in schema of each field constant */
    size_t item_f[N_ITEM_FIELDS]; /* RecommendedItem's fields */
    int sym[MAX_SYMS];     /* C enum value -> symbol index in schema */
    avro_value_t enc;      /* the record being encoded */
    avro_value_t defaults; /* the fields that have a default hold it */
    char *scratch;         /* NUL-terminated copy of a string being encoded */
    size_t scap;
};

/* Where a reader finds one field. */
struct field_at {
    avro_value_t *rec;
    size_t index;
};

struct avromap_reader {
    struct avromap *m;
    avro_value_t dec;      /* the record decoded, in the projection */
    avro_value_t resolved; /* resolves the writer into dec; self is NULL when
                            * the writer's schema is eddy's own */
    struct field_at at[MAX_FIELDS]; /* in dec, or in m->defaults */
    long item_at[N_ITEM_FIELDS];    /* RecommendedItem's fields in dec's items;
                                     * -1: the writer lacks it, read its (null)
                                     * default */
    int *enum_map;                  /* writer's symbol index -> C enum value or -1 */
    size_t n_enum;
    struct rec_item *items; /* decoded Recommendation items */
    size_t icap;
};

const char *avromap_record_name(enum eddy_record_type type)
{
    return record_names[type];
}

avro_schema_t avromap_schema(const struct avromap *m)
{
    return m->schema;
}

/* ---- eddy's schema ------------------------------------------------------- */

static int map_indexes(struct avromap *m, char *err, size_t errlen)
{
    const enum eddy_record_type t = m->type;
    for (int i = 0; i < MAX_FIELDS && field_names[t][i]; i++) {
        int idx = avro_schema_record_field_get_index(m->schema, field_names[t][i]);
        if (idx < 0)
            return errf(err, errlen, "eddy's %s schema has no field %s", record_names[t],
                        field_names[t][i]);
        m->f[i] = (size_t)idx;
    }
    if (t == REC_RECOMMENDATION) {
        avro_schema_t items = avro_schema_record_field_get_by_index(m->schema, (int)m->f[FR_ITEMS]);
        avro_schema_t item = avro_schema_array_items(items);
        for (int i = 0; i < N_ITEM_FIELDS; i++) {
            int idx = avro_schema_record_field_get_index(item, item_field_names[i]);
            if (idx < 0)
                return errf(err, errlen, "RecommendedItem has no field %s", item_field_names[i]);
            m->item_f[i] = (size_t)idx;
        }
    }
    const struct enum_field *e = &enums[t];
    avro_schema_t es =
        e->n ? avro_schema_record_field_get_by_index(m->schema, (int)m->f[e->field]) : NULL;
    for (int i = 0; i < e->n; i++)
        if ((m->sym[i] = avro_schema_enum_get_by_name(es, e->syms[i])) < 0)
            return errf(err, errlen, "eddy's %s schema lacks enum symbol %s", record_names[t],
                        e->syms[i]);
    return 0;
}

static int new_value(avro_schema_t schema, avro_value_t *v)
{
    avro_value_iface_t *cls = avro_generic_class_from_schema(schema);
    int rc = !cls || avro_generic_value_new(cls, v);
    if (cls)
        avro_value_iface_decref(cls); /* the value holds its own reference (NOTES.md) */
    return rc ? -1 : 0;
}

/* Sets v to a field's default. A union's default is one of its first branch
 * (the specification's rule). eddy's schemas give defaults only to optional
 * fields, ["null", T] with null, and only that is supported: a schema with
 * another default fails avromap_new, so the unit tests catch it. */
static int set_default(avro_value_t *v, json_t *dflt)
{
    avro_value_t branch;
    if (avro_value_get_type(v) == AVRO_UNION)
        return avro_value_set_branch(v, 0, &branch) ? -1 : set_default(&branch, dflt);
    return avro_value_get_type(v) == AVRO_NULL && json_is_null(dflt) ? avro_value_set_null(v) : -1;
}

/* The fields of the record an array field holds (a Recommendation's items),
 * or NULL when fld is not an array of records defined in place. */
static json_t *array_record_fields(json_t *fld)
{
    json_t *type = json_object_get(fld, "type");
    json_t *items = json_is_object(type) ? json_object_get(type, "items") : NULL;
    const char *t = json_string_value(json_object_get(type, "type"));
    const char *it = json_string_value(json_object_get(items, "type"));
    return t && it && !strcmp(t, "array") && !strcmp(it, "record")
               ? json_object_get(items, "fields")
               : NULL;
}

/* A nested record's field (a RecommendedItem's because) has no value in
 * m->defaults to read from: its default must be null and its type a union
 * whose first branch is "null", which the readers then return as absent. */
static int nested_defaults(const struct avromap *m, json_t *fields, char *err, size_t errlen)
{
    json_t *fld, *dflt, *type;
    size_t i;
    json_array_foreach (fields, i, fld)
        if ((dflt = json_object_get(fld, "default")) &&
            (!json_is_null(dflt) || !json_is_array(type = json_object_get(fld, "type")) ||
             strcmp(json_string_value(json_array_get(type, 0)) ?: "", "null")))
            return errf(err, errlen,
                        "eddy's %s schema: nested field %s: only null defaults of [\"null\", T] "
                        "are supported",
                        record_names[m->type], json_string_value(json_object_get(fld, "name")));
    return 0;
}

static int map_defaults(struct avromap *m, char *err, size_t errlen)
{
    json_t *fields = json_object_get(m->json, "fields"), *fld, *dflt, *nested;
    avro_value_t v;
    size_t i;
    json_array_foreach (fields, i, fld) { /* Avro C keeps the fields in this order */
        if ((dflt = json_object_get(fld, "default")) &&
            (avro_value_get_by_index(&m->defaults, i, &v, NULL) || set_default(&v, dflt)))
            return errf(err, errlen, "eddy's %s schema: field %s: only null defaults are supported",
                        record_names[m->type], json_string_value(json_object_get(fld, "name")));
        if ((nested = array_record_fields(fld)) && nested_defaults(m, nested, err, errlen))
            return -1;
    }
    return 0;
}

int avromap_new(enum eddy_record_type type, struct avromap **out, char *err, size_t errlen)
{
    const char *json = codec_schema_json(type);
    struct avromap *m = calloc(1, sizeof *m);
    json_error_t jerr;
    int rc = -1;

    *out = NULL;
    if (!m)
        return errf(err, errlen, "out of memory");
    m->type = type;
    if (!(m->json = json_loads(json, 0, &jerr))) {
        errf(err, errlen, "eddy's %s schema: %s", record_names[type], jerr.text);
        goto out;
    }
    if (avro_schema_from_json_length(json, strlen(json), &m->schema)) {
        m->schema = NULL;
        errf(err, errlen, "eddy's %s schema: %s", record_names[type], avro_strerror());
        goto out;
    }
    if (map_indexes(m, err, errlen))
        goto out;
    if (new_value(m->schema, &m->enc) || new_value(m->schema, &m->defaults)) {
        errf(err, errlen, "avro: %s", avro_strerror());
        goto out;
    }
    rc = map_defaults(m, err, errlen);
out:
    if (rc)
        avromap_free(m);
    else
        *out = m;
    return rc;
}

void avromap_free(struct avromap *m)
{
    if (!m)
        return;
    if (m->enc.self)
        avro_value_decref(&m->enc);
    if (m->defaults.self)
        avro_value_decref(&m->defaults);
    if (m->schema)
        avro_schema_decref(m->schema);
    json_decref(m->json);
    free(m->scratch);
    free(m);
}

/* ---- Encoding -------------------------------------------------------------- */

static int enc_field(struct avromap *m, size_t k, avro_value_t *f)
{
    return avro_value_get_by_index(&m->enc, m->f[k], f, NULL);
}

/* Avro C copies a string only from a NUL-terminated buffer whose size counts
 * the NUL; records.h strings are not terminated, so go through m->scratch. */
static int set_str(struct avromap *m, avro_value_t *f, struct eddy_str s)
{
    if (s.len + 1 > m->scap) {
        char *p = realloc(m->scratch, s.len + 1);
        if (!p) {
            avro_set_error("out of memory");
            return ENOMEM;
        }
        m->scratch = p;
        m->scap = s.len + 1;
    }
    if (s.len)
        memcpy(m->scratch, s.ptr, s.len);
    m->scratch[s.len] = '\0';
    return avro_value_set_string_len(f, m->scratch, s.len + 1);
}

static int put_str(struct avromap *m, size_t k, struct eddy_str s)
{
    avro_value_t f;
    return enc_field(m, k, &f) || set_str(m, &f, s);
}

static int put_long(struct avromap *m, size_t k, int64_t v)
{
    avro_value_t f;
    return enc_field(m, k, &f) || avro_value_set_long(&f, v);
}

static int put_double(struct avromap *m, size_t k, double v)
{
    avro_value_t f;
    return enc_field(m, k, &f) || avro_value_set_double(&f, v);
}

static int put_enum(struct avromap *m, size_t k, int v)
{
    avro_value_t f;
    if (v < 0 || v >= enums[m->type].n) {
        avro_set_error("event type %d out of range", v);
        return EINVAL;
    }
    return enc_field(m, k, &f) || avro_value_set_enum(&f, m->sym[v]);
}

/* Selects null (branch 0) or the value branch of an ["null", T] field. */
static int put_opt(struct avromap *m, size_t k, bool present, avro_value_t *branch)
{
    avro_value_t f;
    if (enc_field(m, k, &f) || avro_value_set_branch(&f, present, branch))
        return -1;
    return present ? 0 : avro_value_set_null(branch);
}

static int put_opt_str(struct avromap *m, size_t k, struct eddy_str s)
{
    avro_value_t b;
    return put_opt(m, k, s.ptr != NULL, &b) || (s.ptr && set_str(m, &b, s));
}

static int put_opt_double(struct avromap *m, size_t k, bool present, double v)
{
    avro_value_t b;
    return put_opt(m, k, present, &b) || (present && avro_value_set_double(&b, v));
}

static int put_opt_long(struct avromap *m, size_t k, bool present, int64_t v)
{
    avro_value_t b;
    return put_opt(m, k, present, &b) || (present && avro_value_set_long(&b, v));
}

static int fill_click(struct avromap *m, const void *rec)
{
    const struct click_event *e = rec;
    return put_str(m, FC_USER, e->user_id) || put_str(m, FC_ITEM, e->item_id) ||
           put_enum(m, FC_TYPE, (int)e->type) || put_long(m, FC_TS, e->timestamp_ms) ||
           put_opt_str(m, FC_SESSION, e->session_id);
}

static int fill_ad(struct avromap *m, const void *rec)
{
    const struct ad_event *e = rec;
    return put_str(m, FA_CAMPAIGN, e->campaign_id) || put_enum(m, FA_TYPE, (int)e->type) ||
           put_long(m, FA_TS, e->timestamp_ms) || put_opt_str(m, FA_USER, e->user_id) ||
           put_opt_double(m, FA_PCTR, e->has_pctr, e->pctr) ||
           put_opt_long(m, FA_PRICE, e->has_market_price, e->market_price_micros) ||
           put_opt_long(m, FA_COST, e->has_cost, e->cost_micros) ||
           put_opt_double(m, FA_VALUE, e->has_value, e->value);
}

static int fill_campaign(struct avromap *m, const void *rec)
{
    const struct campaign_budget *e = rec;
    return put_str(m, FB_CAMPAIGN, e->campaign_id) || put_long(m, FB_BUDGET, e->budget_micros) ||
           put_long(m, FB_PERIOD, e->period_ms) || put_long(m, FB_BASE_BID, e->base_bid_micros);
}

/* Appends to the array emptied by avro_value_reset, whose element storage
 * Avro C keeps for reuse. */
static int fill_recommendation(struct avromap *m, const void *rec)
{
    const struct recommendation *e = rec;
    avro_value_t items, it, f;
    if (put_str(m, FR_USER, e->user_id) || enc_field(m, FR_ITEMS, &items) ||
        put_long(m, FR_TIME, e->event_time_ms) || put_long(m, FR_MODEL, e->model_version))
        return -1;
    for (size_t i = 0; i < e->n_items; i++) {
        const struct rec_item *ri = &e->items[i];
        bool because = ri->because.len > 0; /* empty is null */
        avro_value_t b;
        if (avro_value_append(&items, &it, NULL) ||
            avro_value_get_by_index(&it, m->item_f[FI_ID], &f, NULL) ||
            set_str(m, &f, ri->item_id) ||
            avro_value_get_by_index(&it, m->item_f[FI_SCORE], &f, NULL) ||
            avro_value_set_float(&f, ri->score) ||
            avro_value_get_by_index(&it, m->item_f[FI_BECAUSE], &f, NULL) ||
            avro_value_set_branch(&f, because, &b) ||
            (because ? set_str(m, &b, ri->because) : avro_value_set_null(&b)))
            return -1;
    }
    return 0;
}

static int fill_decision(struct avromap *m, const void *rec)
{
    const struct budget_decision *e = rec;
    avro_value_t slot;
    return put_str(m, FD_CAMPAIGN, e->campaign_id) || enc_field(m, FD_SLOT, &slot) ||
           avro_value_set_int(&slot, e->slot) || put_double(m, FD_MULT, e->bid_multiplier) ||
           put_double(m, FD_PACING, e->pacing_rate) || put_long(m, FD_SPENT, e->spent_micros) ||
           put_long(m, FD_REMAINING, e->remaining_micros) ||
           put_long(m, FD_TIME, e->event_time_ms);
}

int avromap_encode(struct avromap *m, const void *record, avro_value_t **value)
{
    static int (*const fill[REC_TYPE_COUNT])(struct avromap *, const void *) = {
        fill_click, fill_ad, fill_campaign, fill_recommendation, fill_decision};
    *value = &m->enc;
    return avro_value_reset(&m->enc) || fill[m->type](m, record) ? -1 : 0;
}

/* ---- Readers --------------------------------------------------------------- */

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

/* The record the writer's array field `name` holds, or NULL if it is not an
 * array of records. */
static avro_schema_t writer_array_record(avro_schema_t writer, const char *name)
{
    avro_schema_t f = unlink_schema(avro_schema_record_field_get(writer, name));
    f = f && is_avro_array(f) ? unlink_schema(avro_schema_array_items(f)) : NULL;
    return f && is_avro_record(f) ? f : NULL;
}

static int keep_writers_fields(const struct avromap *m, json_t *fields, avro_schema_t writer,
                               const char *rec, json_t *kept, char *err, size_t errlen);

/* fld, an array of records the writer also has, with the fields of that
 * record the writer lacks left out (a RecommendedItem without because, from
 * before it): a copy of fld in *out when something was left out, else fld. */
static int keep_nested_fields(const struct avromap *m, json_t *fld, avro_schema_t writer,
                              json_t **out, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(fld, "name"));
    json_t *fields = array_record_fields(fld), *kept = NULL, *copy = NULL;
    avro_schema_t wrec = fields ? writer_array_record(writer, name) : NULL;
    int rc = -1;
    *out = fld;
    if (!wrec) /* not an array of records: the resolver judges it */
        return 0;
    if (!(kept = json_array())) {
        errf(err, errlen, "out of memory");
    } else if (keep_writers_fields(m, fields, wrec, avro_schema_name(wrec), kept, err, errlen) ==
               0) {
        if (json_array_size(kept) == json_array_size(fields)) {
            rc = 0;
        } else if (!(copy = json_deep_copy(fld)) ||
                   json_object_set(json_object_get(json_object_get(copy, "type"), "items"),
                                   "fields", kept)) {
            errf(err, errlen, "out of memory");
        } else {
            *out = copy;
            copy = NULL;
            rc = 0;
        }
    }
    json_decref(copy);
    json_decref(kept);
    return rc;
}

/* Appends to `kept` eddy's schema for the fields of record `rec` (eddy's
 * `fields`) that the writer has, with the same rule inside an array of
 * records (a Recommendation's items); a field the writer lacks is left out
 * if it has a default, else refused. */
static int keep_writers_fields(const struct avromap *m, json_t *fields, avro_schema_t writer,
                               const char *rec, json_t *kept, char *err, size_t errlen)
{
    json_t *fld, *keep;
    size_t i;
    json_array_foreach (fields, i, fld) {
        const char *name = json_string_value(json_object_get(fld, "name"));
        if (avro_schema_record_field_get_index(writer, name) < 0) {
            if (!json_object_get(fld, "default"))
                return errf(err, errlen,
                            "writer schema %s lacks field %s, which has no default in eddy's",
                            rec, name);
            continue;
        }
        if (keep_nested_fields(m, fld, writer, &keep, err, errlen))
            return -1;
        int rc = keep == fld ? json_array_append(kept, fld) : json_array_append_new(kept, keep);
        if (rc)
            return errf(err, errlen, "out of memory");
    }
    return 0;
}

/* Whether `kept` (eddy's fields as a projection keeps them) is all of them. */
static bool keeps_all(const struct avromap *m, json_t *kept)
{
    json_t *fields = json_object_get(m->json, "fields");
    size_t i;
    if (json_array_size(kept) != json_array_size(fields))
        return false;
    for (i = 0; i < json_array_size(kept); i++)
        if (json_array_get(kept, i) != json_array_get(fields, i)) /* a copy: nested fields left out */
            return false;
    return true;
}

/* eddy's schema with `fields` in place of its own. */
static int parse_with_fields(const struct avromap *m, json_t *fields, avro_schema_t *out,
                             char *err, size_t errlen)
{
    json_t *s = json_copy(m->json); /* shallow: only "fields" is replaced */
    char *text = NULL;
    int rc = -1;
    if (!s || json_object_set(s, "fields", fields) || !(text = json_dumps(s, JSON_COMPACT)))
        errf(err, errlen, "out of memory");
    else if (avro_schema_from_json_length(text, strlen(text), out))
        errf(err, errlen, "eddy's %s schema without the writer's missing fields: %s",
             record_names[m->type], avro_strerror());
    else
        rc = 0;
    free(text);
    json_decref(s);
    return rc;
}

/* The projection: eddy's schema less the fields the writer lacks, which Avro
 * C's resolver would refuse. */
static int projection(const struct avromap *m, avro_schema_t writer, avro_schema_t *out,
                      char *err, size_t errlen)
{
    json_t *kept = json_array();
    int rc = -1;
    if (!kept)
        return errf(err, errlen, "out of memory");
    if (keep_writers_fields(m, json_object_get(m->json, "fields"), writer, record_names[m->type],
                            kept, err, errlen) == 0) {
        if (keeps_all(m, kept)) {
            *out = avro_schema_incref(m->schema);
            rc = 0;
        } else {
            rc = parse_with_fields(m, kept, out, err, errlen);
        }
    }
    json_decref(kept);
    return rc;
}

/* Reads through Avro C's resolver unless the writer's schema is eddy's own. */
static int resolve(struct avromap_reader *r, avro_schema_t writer, avro_schema_t schema,
                   char *err, size_t errlen)
{
    if (avro_schema_equal(writer, schema))
        return 0;
    avro_value_iface_t *res = avro_resolved_writer_new(writer, schema);
    if (!res)
        return errf(err, errlen, "writer schema %s does not resolve: %s", record_names[r->m->type],
                    avro_strerror());
    int rc = avro_resolved_writer_new_value(res, &r->resolved);
    avro_value_iface_decref(res); /* the value holds its own reference */
    if (rc)
        return errf(err, errlen, "avro: %s", avro_strerror());
    avro_resolved_writer_set_dest(&r->resolved, &r->dec);
    return 0;
}

/* Each field is read from dec, or from the defaults when the writer lacks it. */
static void locate_fields(struct avromap_reader *r, avro_schema_t schema)
{
    const char *const *names = field_names[r->m->type];
    for (int k = 0; k < MAX_FIELDS && names[k]; k++) {
        int idx = avro_schema_record_field_get_index(schema, names[k]);
        r->at[k] = idx >= 0 ? (struct field_at){&r->dec, (size_t)idx}
                            : (struct field_at){&r->m->defaults, r->m->f[k]};
    }
    if (r->m->type == REC_RECOMMENDATION) { /* items is required: the projection has it */
        avro_schema_t item = writer_array_record(schema, names[FR_ITEMS]);
        for (int k = 0; k < N_ITEM_FIELDS; k++)
            r->item_at[k] = item ? avro_schema_record_field_get_index(item, item_field_names[k]) : -1;
    }
}

/* Maps the writer's symbols of the type's enum field to C enum values, since
 * Avro C 1.11.1 passes a writer's enum index through to the reader unchanged. */
static int build_enum_map(struct avromap_reader *r, avro_schema_t writer, char *err,
                          size_t errlen)
{
    const struct enum_field *e = &enums[r->m->type];
    if (!e->n)
        return 0;
    const char *name = field_names[r->m->type][e->field];
    avro_schema_t ws = avro_schema_record_field_get(writer, name);
    while (is_avro_link(ws))
        ws = avro_schema_link_target(ws);
    if (!is_avro_enum(ws))
        return errf(err, errlen, "writer field %s is not an enum", name);
    r->n_enum = (size_t)avro_schema_enum_number_of_symbols(ws);
    r->enum_map = calloc(r->n_enum ? r->n_enum : 1, sizeof *r->enum_map);
    if (!r->enum_map)
        return errf(err, errlen, "out of memory");
    for (size_t i = 0; i < r->n_enum; i++) {
        const char *sym = avro_schema_enum_get(ws, (int)i);
        r->enum_map[i] = -1;
        for (int k = 0; k < e->n; k++)
            if (strcmp(sym, e->syms[k]) == 0)
                r->enum_map[i] = k;
    }
    return 0;
}

int avromap_reader_new(struct avromap *m, avro_schema_t writer, struct avromap_reader **out,
                       char *err, size_t errlen)
{
    struct avromap_reader *r = calloc(1, sizeof *r);
    avro_schema_t schema = NULL;
    int rc = -1;

    *out = NULL;
    if (!r)
        return errf(err, errlen, "out of memory");
    r->m = m;
    /* Avro C matches record names without namespaces; so do we. */
    if (!is_avro_record(writer) || strcmp(avro_schema_name(writer), record_names[m->type]) != 0) {
        errf(err, errlen, "writer schema %s cannot be read as %s", avro_schema_type_name(writer),
             record_names[m->type]);
        goto out;
    }
    if (projection(m, writer, &schema, err, errlen))
        goto out;
    if (new_value(schema, &r->dec)) {
        errf(err, errlen, "avro: %s", avro_strerror());
        goto out;
    }
    if (resolve(r, writer, schema, err, errlen) || build_enum_map(r, writer, err, errlen))
        goto out;
    locate_fields(r, schema);
    rc = 0;
out:
    if (schema)
        avro_schema_decref(schema);
    if (rc)
        avromap_reader_free(r);
    else
        *out = r;
    return rc;
}

void avromap_reader_free(struct avromap_reader *r)
{
    if (!r)
        return;
    if (r->resolved.self)
        avro_value_decref(&r->resolved);
    if (r->dec.self)
        avro_value_decref(&r->dec);
    free(r->enum_map);
    free(r->items);
    free(r);
}

avro_value_t *avromap_reader_value(struct avromap_reader *r)
{
    return r->resolved.self ? &r->resolved : &r->dec;
}

/* ---- Reading decoded records ----------------------------------------------- */

static int get(const struct avromap_reader *r, size_t k, avro_value_t *f)
{
    return avro_value_get_by_index(r->at[k].rec, r->at[k].index, f, NULL);
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

static int get_str(const struct avromap_reader *r, size_t k, struct eddy_str *s)
{
    avro_value_t f;
    return get(r, k, &f) || str_of(&f, s);
}

static int get_long(const struct avromap_reader *r, size_t k, int64_t *v)
{
    avro_value_t f;
    return get(r, k, &f) || avro_value_get_long(&f, v);
}

static int get_double(const struct avromap_reader *r, size_t k, double *v)
{
    avro_value_t f;
    return get(r, k, &f) || avro_value_get_double(&f, v);
}

/* An ["null", T] field: *present, and its value in *branch if so. */
static int get_opt(const struct avromap_reader *r, size_t k, bool *present, avro_value_t *branch)
{
    avro_value_t f;
    int d;
    if (get(r, k, &f) || avro_value_get_discriminant(&f, &d))
        return -1;
    *present = d != 0; /* eddy's unions put "null" first */
    return *present ? avro_value_get_current_branch(&f, branch) : 0;
}

static int get_opt_str(const struct avromap_reader *r, size_t k, struct eddy_str *s)
{
    avro_value_t b;
    bool present;
    *s = (struct eddy_str){NULL, 0};
    return get_opt(r, k, &present, &b) || (present && str_of(&b, s));
}

static int get_opt_double(const struct avromap_reader *r, size_t k, bool *present, double *v)
{
    avro_value_t b;
    *v = 0;
    return get_opt(r, k, present, &b) || (*present && avro_value_get_double(&b, v));
}

static int get_opt_long(const struct avromap_reader *r, size_t k, bool *present, int64_t *v)
{
    avro_value_t b;
    *v = 0;
    return get_opt(r, k, present, &b) || (*present && avro_value_get_long(&b, v));
}

/* The C enum value of the type's enum field, or -1 for a symbol eddy lacks. */
static int get_enum(const struct avromap_reader *r, size_t k, int *v)
{
    avro_value_t f;
    int idx;
    if (get(r, k, &f) || avro_value_get_enum(&f, &idx))
        return -1;
    *v = idx >= 0 && (size_t)idx < r->n_enum ? r->enum_map[idx] : -1;
    return 0;
}

static int read_click(const struct avromap_reader *r, struct click_event *e, char *reason,
                      size_t rlen)
{
    int type;
    if (get_str(r, FC_USER, &e->user_id) || get_str(r, FC_ITEM, &e->item_id) ||
        get_enum(r, FC_TYPE, &type) || get_long(r, FC_TS, &e->timestamp_ms) ||
        get_opt_str(r, FC_SESSION, &e->session_id))
        return errf(reason, rlen, "avro: cannot read ClickEvent fields");
    if (type < 0)
        return errf(reason, rlen, "unknown event_type symbol");
    e->type = (enum click_type)type;
    return 0;
}

static int read_ad(const struct avromap_reader *r, struct ad_event *e, char *reason, size_t rlen)
{
    int type;
    if (get_str(r, FA_CAMPAIGN, &e->campaign_id) || get_enum(r, FA_TYPE, &type) ||
        get_long(r, FA_TS, &e->timestamp_ms) || get_opt_str(r, FA_USER, &e->user_id) ||
        get_opt_double(r, FA_PCTR, &e->has_pctr, &e->pctr) ||
        get_opt_long(r, FA_PRICE, &e->has_market_price, &e->market_price_micros) ||
        get_opt_long(r, FA_COST, &e->has_cost, &e->cost_micros) ||
        get_opt_double(r, FA_VALUE, &e->has_value, &e->value))
        return errf(reason, rlen, "avro: cannot read AdEvent fields");
    if (type < 0)
        return errf(reason, rlen, "unknown event_type symbol");
    e->type = (enum ad_type)type;
    return 0;
}

static int read_campaign(const struct avromap_reader *r, struct campaign_budget *e,
                         char *reason, size_t rlen)
{
    if (get_str(r, FB_CAMPAIGN, &e->campaign_id) || get_long(r, FB_BUDGET, &e->budget_micros) ||
        get_long(r, FB_PERIOD, &e->period_ms) || get_long(r, FB_BASE_BID, &e->base_bid_micros))
        return errf(reason, rlen, "avro: cannot read CampaignBudget fields");
    return 0;
}

int avromap_read_event(struct avromap_reader *r, struct eddy_event *ev, char *reason,
                       size_t rlen)
{
    int rc;
    ev->partition = 0; /* the caller sets the real one */
    switch (r->m->type) {
    case REC_CLICK:
        ev->kind = EV_CLICK;
        rc = read_click(r, &ev->u.click, reason, rlen);
        break;
    case REC_AD:
        ev->kind = EV_AD;
        rc = read_ad(r, &ev->u.ad, reason, rlen);
        break;
    default:
        ev->kind = EV_CAMPAIGN;
        rc = read_campaign(r, &ev->u.campaign, reason, rlen);
    }
    const char *why = rc ? NULL : event_invalid(ev);
    return why ? errf(reason, rlen, "%s", why) : rc;
}

static int reserve_items(struct avromap_reader *r, size_t n)
{
    if (n <= r->icap)
        return 0;
    struct rec_item *p = realloc(r->items, n * sizeof *p);
    if (!p)
        return -1;
    r->items = p;
    r->icap = n;
    return 0;
}

/* An item's because: null ({NULL, 0}) when the writer's items lack it (its
 * default, null), hold null, or hold "" (records.h: empty is null, so that
 * what decodes encodes back to the same). */
static int read_because(const struct avromap_reader *r, avro_value_t *it, struct eddy_str *s)
{
    avro_value_t f, b;
    int d;
    *s = (struct eddy_str){NULL, 0};
    if (r->item_at[FI_BECAUSE] < 0)
        return 0;
    if (avro_value_get_by_index(it, (size_t)r->item_at[FI_BECAUSE], &f, NULL) ||
        avro_value_get_discriminant(&f, &d))
        return -1;
    if (d != 0 && (avro_value_get_current_branch(&f, &b) || str_of(&b, s)))
        return -1;
    if (!s->len)
        *s = (struct eddy_str){NULL, 0};
    return 0;
}

static int read_items(struct avromap_reader *r, struct recommendation *out)
{
    const long *item_at = r->item_at;
    avro_value_t items, it, f;
    size_t n;
    if (get(r, FR_ITEMS, &items) || avro_value_get_size(&items, &n) || reserve_items(r, n) ||
        item_at[FI_ID] < 0 || item_at[FI_SCORE] < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (avro_value_get_by_index(&items, i, &it, NULL) ||
            avro_value_get_by_index(&it, (size_t)item_at[FI_ID], &f, NULL) ||
            str_of(&f, &r->items[i].item_id) ||
            avro_value_get_by_index(&it, (size_t)item_at[FI_SCORE], &f, NULL) ||
            avro_value_get_float(&f, &r->items[i].score) ||
            read_because(r, &it, &r->items[i].because))
            return -1;
    out->items = r->items;
    out->n_items = n;
    return 0;
}

int avromap_read_recommendation(struct avromap_reader *r, struct recommendation *out,
                                char *reason, size_t rlen)
{
    if (get_str(r, FR_USER, &out->user_id) || read_items(r, out) ||
        get_long(r, FR_TIME, &out->event_time_ms) || get_long(r, FR_MODEL, &out->model_version))
        return errf(reason, rlen, "avro: cannot read Recommendation fields");
    return 0;
}

int avromap_read_decision(struct avromap_reader *r, struct budget_decision *out, char *reason,
                          size_t rlen)
{
    avro_value_t slot;
    if (get_str(r, FD_CAMPAIGN, &out->campaign_id) || get(r, FD_SLOT, &slot) ||
        avro_value_get_int(&slot, &out->slot) || get_double(r, FD_MULT, &out->bid_multiplier) ||
        get_double(r, FD_PACING, &out->pacing_rate) || get_long(r, FD_SPENT, &out->spent_micros) ||
        get_long(r, FD_REMAINING, &out->remaining_micros) ||
        get_long(r, FD_TIME, &out->event_time_ms))
        return errf(reason, rlen, "avro: cannot read BudgetDecision fields");
    return 0;
}
