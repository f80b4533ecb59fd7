/* api.c: eddy's HTTP routes over live state. JSON is built with jansson.
 * Ids in paths are percent-decoded; an id that is not UTF-8 cannot be put
 * in JSON (nor be a valid Avro string in the state) and gets 400. */
#include "pipeline/http/api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "operators/budget.h"
#include "pipeline/run/chain.h"
#include "pipeline/run/metrics.h"

#define USERS "/users/"
#define RECS "/recommendations"
#define CAMPAIGNS "/campaigns/"

#define TEXT "text/plain; charset=utf-8"
#define JSON "application/json"

static void set_text(struct http_response *r, int status, const char *text)
{
    r->status = status;
    r->content_type = TEXT;
    r->body = strdup(text);
    r->body_len = r->body ? strlen(text) : 0;
}

/* Takes the reference to doc. NULL doc (a failed build) is a 500. */
static void set_json(struct http_response *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        set_text(r, 500, "internal error\n");
        return;
    }
    r->status = status;
    r->content_type = JSON;
    r->body = text;
    r->body_len = strlen(text);
}

static void set_error(struct http_response *r, int status, const char *msg, const char *key,
                      json_t *jid)
{
    set_json(r, status, json_pack("{s:s, s:O}", "error", msg, key, jid));
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes of s[0..len) into out (at least len bytes). Returns
 * the decoded length, or -1 on a malformed escape. */
static long percent_decode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hex(s[i + 1]) : -1, lo = hi >= 0 ? hex(s[i + 2]) : -1;
        if (lo < 0)
            return -1;
        out[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    return (long)n;
}

static json_t *items_json(const struct rec_item *items, int n)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) {
        const struct rec_item *it = &items[i];
        json_t *because = it->because.len ? json_stringn(it->because.ptr, it->because.len)
                                          : json_null();
        json_t *item = json_pack("{s:s%, s:f, s:o}", "item_id", it->item_id.ptr,
                                 it->item_id.len, "score", (double)it->score, "because", because);
        if (json_array_append_new(arr, item)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static void user_recommendations(struct api_ctx *api, struct eddy_str id, json_t *jid,
                                 struct http_response *r)
{
    struct rec_item *items = calloc((size_t)api->k, sizeof *items);
    if (!items) {
        set_text(r, 500, "internal error\n");
        return;
    }
    struct eddy_query q = {.kind = QUERY_USER_RECOMMENDATIONS,
                           .u.recs = {.user_id = id, .k = api->k, .items = items}};
    if (!chain_query(api->st, &q))
        set_error(r, 404, "unknown user", "user_id", jid);
    else
        set_json(r, 200, json_pack("{s:O, s:o}", "user_id", jid, "items",
                                   items_json(items, q.u.recs.n)));
    free(items);
}

static void campaign(struct api_ctx *api, struct eddy_str id, json_t *jid,
                     struct http_response *r)
{
    struct eddy_query q = {.kind = QUERY_CAMPAIGN_LEDGER,
                           .u.ledger = {.campaign_id = id}};
    if (!chain_query(api->st, &q))
        set_error(r, 404, "unknown campaign", "campaign_id", jid);
    else
        set_json(r, 200, budget_ledger_json(json_pack("{s:O}", "campaign_id", jid),
                                            q.u.ledger.ledger, LEDGER_READABLE));
}

/* The raw id of path if it is prefix + id + suffix, with no '/' in id. */
static bool route_id(const char *path, const char *prefix, const char *suffix,
                     struct eddy_str *raw)
{
    size_t len = strlen(path), pre = strlen(prefix), suf = strlen(suffix);
    if (len <= pre + suf || strncmp(path, prefix, pre) || strcmp(path + len - suf, suffix))
        return false;
    *raw = (struct eddy_str){path + pre, len - pre - suf};
    return !memchr(raw->ptr, '/', raw->len);
}

typedef void (*id_route)(struct api_ctx *api, struct eddy_str id, json_t *jid,
                         struct http_response *r);

/* Decodes the raw id and hands it to route both as bytes (for the state) and
 * as a JSON string (for the response), which also proves it is UTF-8. */
static void by_id(struct api_ctx *api, struct eddy_str raw, id_route route,
                  struct http_response *r)
{
    json_t *jid = NULL;
    char *id = malloc(raw.len);
    long n = id ? percent_decode(raw.ptr, raw.len, id) : -1;
    if (!id)
        set_text(r, 500, "internal error\n");
    else if (n < 0)
        set_text(r, 400, "malformed percent-encoding in the path\n");
    else if (!(jid = json_stringn(id, (size_t)n)))
        set_text(r, 400, "the id is not UTF-8\n");
    else
        route(api, (struct eddy_str){id, (size_t)n}, jid, r);
    json_decref(jid);
    free(id);
}

/* A health probe: 200 "ok", or 503 with the reason. No check set: ok. */
static void probe(struct api_ctx *api, bool (*check)(void *, char *, size_t),
                  struct http_response *r)
{
    char why[512];
    if (!check || check(api->health_ctx, why, sizeof why - 1)) {
        set_text(r, 200, "ok\n");
        return;
    }
    strcat(why, "\n");
    set_text(r, 503, why);
}

void api_handle(void *api_ctx, const char *method, const char *path, struct http_response *resp)
{
    (void)method; /* the server lets only GET and HEAD through */
    struct api_ctx *api = api_ctx;
    struct eddy_str raw;
    if (!strcmp(path, "/metrics")) {
        char *text = metrics_render(api->metrics);
        if (!text) {
            set_text(resp, 500, "internal error\n");
            return;
        }
        *resp = (struct http_response){200, "text/plain; version=0.0.4", text, strlen(text)};
    } else if (!strcmp(path, "/healthz")) {
        probe(api, api->live, resp);
    } else if (!strcmp(path, "/readyz")) {
        probe(api, api->ready, resp);
    } else if (!api->st && (route_id(path, USERS, RECS, &raw) || route_id(path, CAMPAIGNS, "", &raw))) {
        set_text(resp, 503, "the state is not open yet\n");
    } else if (route_id(path, USERS, RECS, &raw)) {
        by_id(api, raw, user_recommendations, resp);
    } else if (route_id(path, CAMPAIGNS, "", &raw)) {
        by_id(api, raw, campaign, resp);
    } else {
        set_text(resp, 404, "not found\n");
    }
}
