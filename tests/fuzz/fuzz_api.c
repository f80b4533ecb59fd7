/* fuzz_api.c: libFuzzer target for eddy's HTTP routes (pipeline/http/api.c):
 * routing, percent-decoding of ids, and the JSON and text built from live
 * state, without the socket layer (fuzz_http.c covers that).
 *
 * Input: "METHOD PATH", as the server hands them to the handler (a path with
 * no query, cut at the first NUL); without a space, all of it is the path
 * and the method is GET. Each input is routed twice: against a small open
 * state (users, items and campaigns, some with ids that need escaping) whose
 * readiness check fails, and against a pipeline whose state is not open yet.
 *
 * Checks: the status is one eddy sends; every body is NUL-free UTF-8 of the
 * stated length; a JSON body parses. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/blas.h"
#include "operators/budget.h"
#include "pipeline/run/chain.h"
#include "pipeline/http/api.h"
#include "pipeline/run/metrics.h"
#include "pipeline/codec/validate.h"
#include "state/state.h"
#include "tests/unit/users_store.h"
#include "tests/fuzz/fuzz_util.h"

#define DIM 4
#define N_Q 8

static struct eddy_state *st;
static struct eddy_metrics metrics = {
    .input_topic = {"clicks", "ad-events", "campaigns"},
    .events_in = {120, 7, 1},
    .dlq = {3, 0, 0},
    .consumer_lag = -1,
};
static char *buf;

static bool live_ok(void *ctx, char *why, size_t n)
{
    (void)ctx, (void)why, (void)n;
    return true;
}

/* A reason as long as the buffer allows: the probe appends "\n" to it. */
static bool ready_never(void *ctx, char *why, size_t n)
{
    (void)ctx;
    memset(why, 'x', n - 1);
    why[n - 1] = '\0';
    memcpy(why, "brokers unreachable ", 20);
    return false;
}

static struct api_ctx open_api = {.metrics = &metrics, .k = 3, .live = live_ok,
                                  .ready = ready_never};
static struct api_ctx starting_api = {.metrics = &metrics, .k = 3};

static struct eddy_str S(const char *s)
{
    return eddy_str_c(s);
}

static void close_all(void)
{
    state_close(st);
    free(buf);
}

/* Users, items and campaigns whose ids exercise escaping: a slash (%2F in a
 * path), a space, UTF-8, JSON's quote and backslash. */
static void fill_state(void)
{
    static const char *const items[] = {"i0", "i1", "i\"2\\", "caf\xc3\xa9", "i4", "i5"};
    static const char *const users[] = {"u1", "J\xc3\xb6rg", "a b", "x/y", "q\"\\"};
    static const char *const campaigns[] = {"c0", "c/1", "1458", "\xe2\x82\xac"};
    char err[512];

    for (int i = 0; i < 6; i++) {
        float v[DIM] = {(float)i, 1.0f - (float)i / 4, 0.5f, (float)(i % 2)};
        FUZZ_CHECK(state_rows_add(items_of(st), S(items[i]), v) == i);
    }
    for (int i = 0; i < 5; i++) {
        struct user_state *u = user_get(st, i % 2, S(users[i]), true);
        FUZZ_CHECK(u);
        for (int d = 0; d < DIM; d++)
            u->vec[d] = 0.25f * (float)(d + i);
        u->is_new = false;
        user_seen_add(u, (uint32_t)i);
        user_dirty(st, u);
    }
    for (int i = 0; i < 4; i++) {
        struct state_store *store = state_store(st, &budget_campaigns);
        struct campaign_state *c = state_get(store, S(campaigns[i]), true);
        FUZZ_CHECK(c);
        c->n_q = N_Q;
        c->q = calloc(N_Q, sizeof *c->q);
        c->l.configured = i != 3;
        c->l.budget_micros = 1000000 * (i + 1);
        c->l.period_ms = 86400000;
        c->l.period_start_ms = i ? 1767225600000LL : INT64_MIN;
        c->l.bid_multiplier = 1.0 + i / 10.0;
        c->l.pacing_rate = 0.5;
        c->l.conversion_value = i == 2 ? 1e300 : -0.0;
        state_dirty(store, c);
    }
    if (state_commit(st, err, sizeof err) || state_sync(st, err, sizeof err)) {
        fprintf(stderr, "state: %s\n", err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[128], err[512];
    blas_threads_for(0); /* one OpenBLAS thread: the products here are tiny */
    snprintf(dir, sizeof dir, "%s/state", fuzz_scratch_dir());
    struct state_options o = {.dir = dir, .dim = DIM, .create_if_missing = true,
                              .stores = chain_stores()};
    if (state_open(&o, &st, err, sizeof err)) {
        fprintf(stderr, "state_open: %s\n", err);
        abort();
    }
    atexit(close_all); /* runs before the scratch directory is removed */
    fill_state();
    open_api.st = st;
    return 0;
}

static void check(const char *method, const char *path, const struct http_response *r)
{
    const char *bad = NULL;
    if (r->status != 200 && r->status != 400 && r->status != 404 && r->status != 500 &&
        r->status != 503)
        bad = "unexpected status";
    else if (!r->content_type)
        bad = "no content type";
    else if (r->body_len && !r->body)
        bad = "a length without a body";
    else if (r->body && memchr(r->body, '\0', r->body_len))
        bad = "a NUL inside the body";
    else if (r->body && utf8_invalid(r->body, r->body_len))
        bad = "a body that is not UTF-8";
    else if (r->body && r->body[r->body_len] != '\0')
        bad = "body_len short of the body";
    else if (!strncmp(r->content_type, "application/json", 16)) {
        /* An id may hold %00: JSON escapes it as \u0000, which is valid. */
        json_t *doc = json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL);
        if (!doc)
            bad = "a JSON body that does not parse";
        json_decref(doc);
    }
    if (bad) {
        fprintf(stderr, "%s %s -> %d: %s\n", method, path, r->status, bad);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK((buf = realloc(buf, size + 1)));
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *method = "GET", *path = buf;
    char *space = strchr(buf, ' ');
    if (space) {
        *space = '\0';
        method = buf;
        path = space + 1;
    }
    struct api_ctx *apis[] = {&open_api, &starting_api};
    for (int i = 0; i < 2; i++) {
        /* As the server prepares it before calling the handler. */
        struct http_response r = {.status = 500, .content_type = "text/plain; charset=utf-8"};
        api_handle(apis[i], method, path, &r);
        check(method, path, &r);
        free(r.body);
    }
    return 0;
}
