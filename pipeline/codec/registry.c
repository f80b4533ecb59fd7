/* registry.c: Confluent Schema Registry client on the libcurl easy API.
 * See registry.h for the contract. */
#include "pipeline/codec/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REG_TIMEOUT_MS   5000L
#define REG_MAX_REPLY    (1u << 20) /* schemas are small: refuse a runaway reply */
#define REG_SNIPPET      120        /* bytes of a reply body quoted in errors */
#define REG_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"

struct registry {
    CURL *curl; /* one handle, so connections are kept alive */
    struct curl_slist *headers;
    char *base;  /* as given (may hold credentials), no trailing '/' */
    char *shown; /* base without user:password or query: for messages */
    char *reply; /* last reply body, always NUL-terminated */
    size_t len, cap;
    char curl_err[CURL_ERROR_SIZE];
};

static void strip_slashes(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
}

/* The URL minus user:password and query, for error messages; NULL if url
 * does not parse (the caller must then not print url at all). */
static char *shown_url(const char *url)
{
    CURLU *u = curl_url();
    char *s = NULL, *out = NULL;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
        out = strdup(s);
    curl_free(s);
    curl_url_cleanup(u);
    if (out)
        strip_slashes(out);
    return out;
}

static size_t on_reply(char *data, size_t size, size_t n, void *arg)
{
    struct registry *r = arg;
    size_t add = size * n;

    if (r->len + add >= REG_MAX_REPLY)
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    if (r->len + add >= r->cap) {
        size_t cap = r->cap * 2 > r->len + add + 1 ? r->cap * 2 : r->len + add + 1;
        char *p = realloc(r->reply, cap);
        if (!p)
            return 0;
        r->reply = p;
        r->cap = cap;
    }
    memcpy(r->reply + r->len, data, add);
    r->len += add;
    r->reply[r->len] = '\0';
    return add;
}

int registry_new(const char *url, struct registry **out, char *err, size_t errlen)
{
    struct registry *r = calloc(1, sizeof(*r));
    int rc = -1;

    *out = NULL;
    if (!r || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "registry: out of memory or curl init failed");
        free(r);
        return -1;
    }
    r->base = strdup(url);
    r->shown = shown_url(url);
    r->cap = 4096;
    r->reply = malloc(r->cap);
    r->curl = curl_easy_init();
    r->headers = curl_slist_append(NULL, "Content-Type: " REG_CONTENT_TYPE);
    r->headers = r->headers ? curl_slist_append(r->headers, "Accept: " REG_CONTENT_TYPE) : NULL;
    if (!r->shown) {
        snprintf(err, errlen, "registry URL does not parse (want scheme://host[:port])");
        goto out;
    }
    if (!r->base || !r->reply || !r->curl || !r->headers) {
        snprintf(err, errlen, "registry: out of memory");
        goto out;
    }
    strip_slashes(r->base);
    r->reply[0] = '\0';
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS, REG_TIMEOUT_MS);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, REG_TIMEOUT_MS);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a threaded program */
    curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = 0;
out:
    if (rc == 0)
        *out = r;
    else
        registry_free(r);
    return rc;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    curl_easy_cleanup(r->curl);
    curl_slist_free_all(r->headers);
    free(r->base);
    free(r->shown);
    free(r->reply);
    free(r);
    curl_global_cleanup();
}

/* The start of the last reply, with anything unprintable replaced. */
static const char *snippet(struct registry *r, char *buf, size_t buflen)
{
    size_t i;
    for (i = 0; i + 1 < buflen && i < r->len && i < REG_SNIPPET; i++)
        buf[i] = isprint((unsigned char)r->reply[i]) ? r->reply[i] : '.';
    buf[i] = '\0';
    return buf;
}

/* Performs one request (POST when body is non-NULL) and parses a 200 reply
 * as a JSON object into *json (caller decrefs). path starts with '/'. */
static int request(struct registry *r, const char *path, const char *body, json_t **json, char *err,
                   size_t errlen)
{
    const char *method = body ? "POST" : "GET";
    char *url = NULL, snip[REG_SNIPPET + 1];
    long status = 0;
    json_error_t jerr;
    int rc = -1;

    *json = NULL;
    if (asprintf(&url, "%s%s", r->base, path) < 0) {
        url = NULL;
        snprintf(err, errlen, "registry: out of memory");
        goto out;
    }
    r->len = 0;
    r->reply[0] = '\0';
    r->curl_err[0] = '\0';
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt(r->curl, CURLOPT_HTTPGET, 1L);
    CURLcode cc = curl_easy_perform(r->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "registry %s %s%s: %s", method, r->shown, path,
                 r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(err, errlen, "registry %s %s%s: HTTP %ld: %s", method, r->shown, path, status,
                 snippet(r, snip, sizeof(snip)));
        goto out;
    }
    *json = json_loadb(r->reply, r->len, 0, &jerr);
    if (!json_is_object(*json)) {
        snprintf(err, errlen, "registry %s %s%s: reply is not a JSON object: %s", method, r->shown,
                 path, snippet(r, snip, sizeof(snip)));
        json_decref(*json);
        *json = NULL;
        goto out;
    }
    rc = 0;
out:
    free(url);
    return rc;
}

int registry_get_schema(struct registry *r, int32_t id, char **schema_json, char *err,
                        size_t errlen)
{
    char path[64];
    json_t *reply = NULL;
    int rc = -1;

    *schema_json = NULL;
    snprintf(path, sizeof(path), "/schemas/ids/%" PRId32, id);
    if (request(r, path, NULL, &reply, err, errlen))
        goto out;
    const char *type = json_string_value(json_object_get(reply, "schemaType"));
    const char *text = json_string_value(json_object_get(reply, "schema"));
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(err, errlen, "registry: schema id %" PRId32 " is %.32s, not Avro", id, type);
        goto out;
    }
    if (!text) {
        snprintf(err, errlen, "registry: reply for schema id %" PRId32 " has no \"schema\"", id);
        goto out;
    }
    *schema_json = strdup(text);
    if (!*schema_json) {
        snprintf(err, errlen, "registry: out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(reply);
    return rc;
}

int registry_register(struct registry *r, const char *subject, const char *schema_json, int32_t *id,
                      char *err, size_t errlen)
{
    char *esc = curl_easy_escape(r->curl, subject, 0);
    char *path = NULL, *body = NULL;
    json_t *req = json_pack("{s:s}", "schema", schema_json), *reply = NULL;
    int rc = -1;

    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!esc || !body || asprintf(&path, "/subjects/%s/versions", esc) < 0) {
        path = NULL;
        snprintf(err, errlen, "registry: out of memory");
        goto out;
    }
    if (request(r, path, body, &reply, err, errlen))
        goto out;
    json_t *jid = json_object_get(reply, "id");
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT32_MAX) {
        snprintf(err, errlen, "registry: reply for subject %s has no valid \"id\"", subject);
        goto out;
    }
    *id = (int32_t)json_integer_value(jid);
    rc = 0;
out:
    curl_free(esc);
    free(path);
    free(body);
    json_decref(req);
    json_decref(reply);
    return rc;
}
