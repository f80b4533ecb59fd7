/* fuzz_codec.c: libFuzzer target for the record decoder (pipeline/codec/codec.c).
 *
 * Input: one selector byte, then a framed message. The selector, modulo 5,
 * is the record type the decoder expects: ClickEvent, AdEvent,
 * CampaignBudget (codec_decode) or Recommendation, BudgetDecision (the
 * output decoders). Both framings reach a writer schema:
 *   C3 01 + fingerprint: eddy's five schemas and the variants below, which
 *       codec_new() loads from a writers_dir made at start-up;
 *   00 + id: a stand-in for pipeline/codec/registry.c, linked in its place, knows
 *       ids 1-5 (eddy's schemas, in enum eddy_record_type order), 6-10 (the
 *       variants, in the order below), 11 (a schema that is not a record) and
 *       12 (text that is not JSON); any other id is a 404. No network.
 *
 * Beyond "no crash, no leak, no undefined behaviour", it checks that every
 * record decoded re-encodes (codec_encode) to a message that decodes to the
 * same record, and that input records pass event_invalid(), as codec.h
 * promises. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec/codec.h"
#include "pipeline/codec/registry.h"
#include "pipeline/codec/validate.h"
#include "tests/fuzz/fuzz_util.h"

#define CLICK_FIELDS(ts_type)                                                                  \
    "{\"name\":\"user_id\",\"type\":\"string\"},{\"name\":\"item_id\",\"type\":\"string\"},"   \
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","              \
    "\"symbols\":[\"VIEW\",\"CLICK\",\"ADD_TO_CART\",\"PURCHASE\"]}},"                          \
    "{\"name\":\"timestamp\",\"type\":\"" ts_type "\"},"                                       \
    "{\"name\":\"session_id\",\"type\":[\"null\",\"string\"]}"

/* Writers a producer other than eddy might use: each resolves against
 * eddy's reader schema in its own way. Seeds in tests/fuzz/corpus/codec/
 * use them. (Parentheses: each element is several literals, on purpose.) */
static const char *const variants[] = {
    /* 6: fields reordered, an extra optional field, enum symbols reordered
     * with one eddy does not know (tests/unit/test_codec.c's v2). */
    ("{\"type\":\"record\",\"name\":\"ClickEvent\",\"namespace\":\"eddy\",\"fields\":["
    "{\"name\":\"timestamp\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"referrer\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
    "\"symbols\":[\"PURCHASE\",\"SHARE\",\"VIEW\",\"CLICK\",\"ADD_TO_CART\"]}},"
    "{\"name\":\"session_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"item_id\",\"type\":\"string\"},"
    "{\"name\":\"user_id\",\"type\":\"string\"}]}"),
    /* 7: a recursive extra field, which the skipper follows through links;
     * also an int timestamp, promoted to long. */
    ("{\"type\":\"record\",\"name\":\"ClickEvent\",\"namespace\":\"eddy\",\"fields\":["
    CLICK_FIELDS("int") ","
    "{\"name\":\"chain\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Node\","
    "\"fields\":[{\"name\":\"next\",\"type\":[\"null\",\"Node\"]},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"bytes\"}}]}]}]}"),
    /* 8: AdEvent with every optional field first, an array, a fixed, a
     * float pctr (promoted to double) and an extra enum symbol. */
    ("{\"type\":\"record\",\"name\":\"AdEvent\",\"namespace\":\"eddy\",\"fields\":["
    "{\"name\":\"value\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"cost_micros\",\"type\":[\"null\",\"long\"]},"
    "{\"name\":\"market_price_micros\",\"type\":[\"null\",\"int\"]},"
    "{\"name\":\"pctr\",\"type\":[\"null\",\"float\"]},"
    "{\"name\":\"user_id\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"bids\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
    "{\"name\":\"req\",\"type\":{\"type\":\"fixed\",\"name\":\"ReqId\",\"size\":4}},"
    "{\"name\":\"flag\",\"type\":\"boolean\"},"
    "{\"name\":\"timestamp\",\"type\":\"long\"},"
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"AdEventType\","
    "\"symbols\":[\"WIN\",\"CONVERSION\",\"CLICK\",\"IMPRESSION\",\"AUCTION\"]}},"
    "{\"name\":\"campaign_id\",\"type\":\"string\"}]}"),
    /* 9: CampaignBudget with ints promoted to longs. */
    ("{\"type\":\"record\",\"name\":\"CampaignBudget\",\"namespace\":\"eddy\",\"fields\":["
    "{\"name\":\"campaign_id\",\"type\":\"string\"},"
    "{\"name\":\"budget_micros\",\"type\":\"int\"},"
    "{\"name\":\"period_ms\",\"type\":\"int\"},"
    "{\"name\":\"base_bid_micros\",\"type\":\"long\"},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\",\"bytes\"]}]}"),
    /* 10: a record eddy does not read. */
    ("{\"type\":\"record\",\"name\":\"Other\",\"namespace\":\"eddy\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"int\"}]}"),
};
#define N_VARIANTS (sizeof variants / sizeof variants[0])
#define ID_NOT_RECORD (6 + N_VARIANTS)
#define ID_NOT_JSON (ID_NOT_RECORD + 1)

/* ---- the stand-in registry (replaces pipeline/codec/registry.c) ---------------- */

struct registry {
    int unused;
};

int registry_new(const char *url, struct registry **out, char *err, size_t errlen)
{
    (void)url, (void)err, (void)errlen;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -1;
}

void registry_free(struct registry *r)
{
    free(r);
}

int registry_get_schema(struct registry *r, int32_t id, char **schema_json, char *err,
                        size_t errlen)
{
    (void)r;
    const char *json = id >= 1 && id <= REC_TYPE_COUNT ? codec_schema_json(id - 1)
                       : id >= 6 && (size_t)id < 6 + N_VARIANTS ? variants[id - 6]
                       : (size_t)id == ID_NOT_RECORD              ? "\"string\""
                       : (size_t)id == ID_NOT_JSON                ? "{\"type\":"
                                                                  : NULL;
    if (!json) {
        snprintf(err, errlen, "registry GET /schemas/ids/%d: HTTP 404", (int)id);
        return -1;
    }
    return (*schema_json = strdup(json)) ? 0 : -1;
}

int registry_register(struct registry *r, const char *subject, const char *schema_json,
                      int32_t *id, char *err, size_t errlen)
{
    (void)r, (void)subject, (void)schema_json, (void)id;
    snprintf(err, errlen, "the fuzz registry registers nothing");
    return -1;
}

/* ---- a record as bytes, to compare two decodes --------------------------- */

struct flat {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct flat *f, const void *p, size_t n)
{
    if (f->len + n > f->cap) {
        f->cap = (f->len + n) * 2 + 64;
        FUZZ_CHECK((f->p = realloc(f->p, f->cap)));
    }
    if (n)
        memcpy(f->p + f->len, p, n);
    f->len += n;
}

#define PUT(f, v) put((f), &(v), sizeof(v))

static void put_str(struct flat *f, struct eddy_str s)
{
    bool present = s.ptr != NULL;
    PUT(f, present);
    PUT(f, s.len);
    put(f, s.ptr, s.len);
}

static void flatten(struct flat *f, enum eddy_record_type t, const void *rec)
{
    f->len = 0;
    if (t == REC_CLICK) {
        const struct click_event *e = rec;
        put_str(f, e->user_id), put_str(f, e->item_id), put_str(f, e->session_id);
        PUT(f, e->type), PUT(f, e->timestamp_ms);
    } else if (t == REC_AD) {
        const struct ad_event *e = rec;
        put_str(f, e->campaign_id), put_str(f, e->user_id);
        PUT(f, e->type), PUT(f, e->timestamp_ms);
        PUT(f, e->has_pctr), PUT(f, e->has_market_price), PUT(f, e->has_cost);
        PUT(f, e->has_value), PUT(f, e->pctr), PUT(f, e->market_price_micros);
        PUT(f, e->cost_micros), PUT(f, e->value);
    } else if (t == REC_CAMPAIGN) {
        const struct campaign_budget *e = rec;
        put_str(f, e->campaign_id);
        PUT(f, e->budget_micros), PUT(f, e->period_ms), PUT(f, e->base_bid_micros);
    } else if (t == REC_RECOMMENDATION) {
        const struct recommendation *e = rec;
        put_str(f, e->user_id);
        PUT(f, e->n_items), PUT(f, e->event_time_ms), PUT(f, e->model_version);
        for (size_t i = 0; i < e->n_items; i++)
            put_str(f, e->items[i].item_id), PUT(f, e->items[i].score),
                put_str(f, e->items[i].because);
    } else {
        const struct budget_decision *e = rec;
        put_str(f, e->campaign_id);
        PUT(f, e->slot), PUT(f, e->bid_multiplier), PUT(f, e->pacing_rate);
        PUT(f, e->spent_micros), PUT(f, e->remaining_micros), PUT(f, e->event_time_ms);
    }
}

/* ---- the target ---------------------------------------------------------- */

static struct eddy_codec *codec;
static struct flat first, second;
static uint8_t *copy;

static void free_all(void)
{
    codec_free(codec);
    free(first.p);
    free(second.p);
    free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[128], err[512];
    const char *dir = fuzz_scratch_dir();
    for (size_t i = 0; i < N_VARIANTS; i++) {
        snprintf(path, sizeof path, "%s/v%zu.avsc", dir, i + 6);
        FILE *f = fopen(path, "w");
        FUZZ_CHECK(f && fputs(variants[i], f) >= 0 && fclose(f) == 0);
    }
    /* Any registry URL: the stand-in above ignores it. */
    struct codec_options o = {.writers_dir = dir, .registry_url = "http://fuzz.invalid"};
    if (codec_new(&o, &codec, err, sizeof err)) {
        fprintf(stderr, "codec_new: %s\n", err);
        abort();
    }
    atexit(free_all);
    return 0;
}

/* Decodes msg as type t into *rec; 0 or -1 with reason. */
static int decode(enum eddy_record_type t, const uint8_t *msg, size_t len, void *rec,
                  char *reason, size_t rlen)
{
    if (t == REC_RECOMMENDATION)
        return codec_decode_recommendation(codec, msg, len, rec, reason, rlen);
    if (t == REC_DECISION)
        return codec_decode_decision(codec, msg, len, rec, reason, rlen);
    struct eddy_event *ev = rec;
    if (codec_decode(codec, t, msg, len, ev, reason, rlen))
        return -1;
    const char *why = event_invalid(ev);
    if (why) {
        fprintf(stderr, "codec_decode accepted an invalid record: %s\n", why);
        abort();
    }
    return 0;
}

/* The record inside a decoded struct, for codec_encode and flatten. */
static const void *record_of(enum eddy_record_type t, const void *rec)
{
    const struct eddy_event *ev = rec;
    return t == REC_CLICK      ? (const void *)&ev->u.click
           : t == REC_AD       ? (const void *)&ev->u.ad
           : t == REC_CAMPAIGN ? (const void *)&ev->u.campaign
                               : rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    union {
        struct eddy_event ev;
        struct recommendation rec;
        struct budget_decision dec;
    } a, b;
    char reason[512], err[512];
    const void *out;
    size_t outlen;

    if (size < 1)
        return 0;
    enum eddy_record_type t = (enum eddy_record_type)(data[0] % REC_TYPE_COUNT);
    if (decode(t, data + 1, size - 1, &a, reason, sizeof reason))
        return 0;
    flatten(&first, t, record_of(t, &a));
    if (codec_encode(codec, t, record_of(t, &a), &out, &outlen, err, sizeof err)) {
        fprintf(stderr, "a decoded record does not encode: %s\n", err);
        abort();
    }
    /* The next decode reuses the codec's buffers: work on a copy. */
    FUZZ_CHECK((copy = realloc(copy, outlen)));
    memcpy(copy, out, outlen);
    if (decode(t, copy, outlen, &b, reason, sizeof reason)) {
        fprintf(stderr, "a re-encoded record does not decode: %s\n", reason);
        abort();
    }
    flatten(&second, t, record_of(t, &b));
    if (first.len != second.len || memcmp(first.p, second.p, first.len)) {
        fprintf(stderr, "a record changed through encode and decode\n");
        abort();
    }
    return 0;
}
