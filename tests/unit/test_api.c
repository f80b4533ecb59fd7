/* test_api.c: the JSON of GET /users/{id}/recommendations
 * (pipeline/http/api.c), each item with its "because": null for an item
 * that no recent item led to (trending, MF), else that item's id.
 *
 * chain_query() is stubbed here: it answers the user "u1" with the items in
 * `answer`, and no one else, so the test sees exactly what api.c makes of
 * the operators' answer. The other routes' collaborators are stubbed too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "operators/budget.h"
#include "pipeline/http/api.h"
#include "pipeline/run/chain.h"
#include "pipeline/run/metrics.h"

static struct rec_item answer[3];
static int n_answer;
static int last_k;

bool chain_query(struct eddy_state *st, struct eddy_query *q)
{
    (void)st;
    if (q->kind != QUERY_USER_RECOMMENDATIONS || q->u.recs.user_id.len != 2 ||
        memcmp(q->u.recs.user_id.ptr, "u1", 2))
        return false;
    last_k = q->u.recs.k;
    int n = n_answer < q->u.recs.k ? n_answer : q->u.recs.k;
    memcpy(q->u.recs.items, answer, (size_t)n * sizeof *answer);
    q->u.recs.n = n;
    return true;
}

json_t *budget_ledger_json(json_t *doc, const struct campaign_ledger *l, enum ledger_style how)
{
    (void)l, (void)how;
    return doc;
}

char *metrics_render(const struct eddy_metrics *m)
{
    (void)m;
    return strdup("");
}

/* GET path through api_handle(); the body parsed as JSON. */
static json_t *get_json(const char *path, int want_status)
{
    struct api_ctx api = {.st = (struct eddy_state *)&answer, /* opaque: only the stub sees it */
                          .k = 3};
    struct http_response r = {0};
    api_handle(&api, "GET", path, &r);
    assert_int_equal(r.status, want_status);
    assert_string_equal(r.content_type, "application/json");
    json_error_t jerr;
    json_t *doc = json_loadb(r.body, r.body_len, 0, &jerr);
    assert_non_null(doc);
    free(r.body);
    return doc;
}

static json_t *item(json_t *doc, size_t i)
{
    json_t *it = json_array_get(json_object_get(doc, "items"), i);
    assert_non_null(it);
    return it;
}

static void test_because_null_and_set(void **state)
{
    (void)state;
    answer[0] = (struct rec_item){.item_id = eddy_str_c("i7"), .score = 2.5f,
                                  .because = eddy_str_c("i3")};
    answer[1] = (struct rec_item){.item_id = eddy_str_c("i9"), .score = 1.0f}; /* trending */
    /* A because that is not NUL-terminated: records.h strings are borrowed
     * slices; only its length counts. */
    answer[2] = (struct rec_item){.item_id = eddy_str_c("i11"), .score = 0.5f,
                                  .because = {"i42-and-more", 3}};
    n_answer = 3;

    json_t *doc = get_json("/users/u1/recommendations", 200);
    assert_string_equal(json_string_value(json_object_get(doc, "user_id")), "u1");
    assert_int_equal(json_array_size(json_object_get(doc, "items")), 3);
    assert_int_equal(last_k, 3);

    assert_string_equal(json_string_value(json_object_get(item(doc, 0), "item_id")), "i7");
    assert_true(json_real_value(json_object_get(item(doc, 0), "score")) == 2.5);
    assert_string_equal(json_string_value(json_object_get(item(doc, 0), "because")), "i3");

    /* Null is served as null, not left out: a client can rely on the key. */
    json_t *b = json_object_get(item(doc, 1), "because");
    assert_non_null(b);
    assert_true(json_is_null(b));
    assert_string_equal(json_string_value(json_object_get(item(doc, 1), "item_id")), "i9");

    assert_string_equal(json_string_value(json_object_get(item(doc, 2), "because")), "i42");
    json_decref(doc);
}

static void test_unknown_user_and_empty_list(void **state)
{
    (void)state;
    json_t *doc = get_json("/users/nobody/recommendations", 404);
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "unknown user");
    json_decref(doc);

    n_answer = 0;
    doc = get_json("/users/u1/recommendations", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "items")), 0);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_because_null_and_set),
        cmocka_unit_test(test_unknown_user_and_empty_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
