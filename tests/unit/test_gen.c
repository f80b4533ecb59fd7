/* test_gen.c: eddy gen's sessions traffic (pipeline/tools/gen.h,
 * GEN_SESSIONS): deterministic from the seed, a prefix for a smaller -n,
 * sessions of one user with clicks seconds apart and sessions of a user
 * minutes apart, Zipf-popular items, and the uniform traffic unchanged by
 * the new options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/tools/gen.h"

#define N 60000

/* One click as plain numbers. */
struct click {
    uint64_t user, item, session;
    int64_t ts;
    int type;
};

static uint64_t num(struct eddy_str s)
{
    uint64_t n = 0;
    for (size_t i = 1; i < s.len; i++)
        n = n * 10 + (uint64_t)(s.ptr[i] - '0');
    return n;
}

static struct gen_options sessions(uint64_t events)
{
    struct gen_options o;
    gen_options_default(&o);
    o.traffic = GEN_SESSIONS;
    o.events = events;
    o.users = 100000;
    o.items = 20000;
    o.ad_fraction = 0.1;
    o.step_us = 20000;
    return o;
}

/* The clicks of a stream, with how many records it had. */
static size_t clicks_of(const struct gen_options *o, struct click *out, size_t cap, size_t *records)
{
    struct gen *g = gen_new(o);
    struct gen_record r;
    size_t n = 0;
    *records = 0;
    while (gen_next(g, &r)) {
        ++*records;
        if (r.type != REC_CLICK || n == cap)
            continue;
        const struct click_event *c = &r.ev.u.click;
        if (o->traffic == GEN_SESSIONS)
            assert_true(c->session_id.len > 1);
        out[n++] = (struct click){num(c->user_id), num(c->item_id),
                                  c->session_id.len ? num(c->session_id) : 0,
                                  c->timestamp_ms, (int)c->type};
    }
    gen_free(g);
    return n;
}

static void test_deterministic_and_prefix(void **state)
{
    (void)state;
    struct click *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b), *c = calloc(N, sizeof *c);
    struct gen_options o = sessions(N);
    size_t ra, rb, rc;
    size_t na = clicks_of(&o, a, N, &ra), nb = clicks_of(&o, b, N, &rb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    o.events = N / 2;
    size_t nc = clicks_of(&o, c, N, &rc);
    assert_true(nc > 0 && nc < na);
    assert_memory_equal(a, c, nc * sizeof *a);
    o = sessions(N);
    o.seed = 2;
    nb = clicks_of(&o, b, N, &rb);
    assert_true(memcmp(a, b, (na < nb ? na : nb) * sizeof *a) != 0);
    free(a), free(b), free(c);
}

static int by_session_then_time(const void *x, const void *y)
{
    const struct click *a = x, *b = y;
    if (a->session != b->session)
        return a->session < b->session ? -1 : 1;
    return a->ts < b->ts ? -1 : a->ts > b->ts;
}

static void test_sessions(void **state)
{
    (void)state;
    struct click *a = calloc(N, sizeof *a);
    struct gen_options o = sessions(N);
    size_t records, n = clicks_of(&o, a, N, &records);
    assert_int_equal(records, N + (size_t)o.campaigns);
    qsort(a, n, sizeof *a, by_session_then_time);
    size_t sessions_n = 0, gaps = 0, seconds = 0, same_cluster = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || a[i].session != a[i - 1].session) {
            sessions_n++;
            continue;
        }
        assert_int_equal(a[i].user, a[i - 1].user); /* one user per session */
        int64_t gap = a[i].ts - a[i - 1].ts;
        assert_true(gap >= 200);
        gaps++;
        seconds += gap <= 30000;
        same_cluster += a[i].item % 10 == a[i - 1].item % 10;
    }
    double mean = (double)n / (double)sessions_n;
    assert_true(mean > 4.0 && mean < 8.0);
    assert_true(seconds > gaps * 9 / 10);   /* a few seconds apart */
    assert_int_equal(same_cluster, gaps);   /* a session stays in its cluster */
    free(a);
}

static int by_user_then_time(const void *x, const void *y)
{
    const struct click *a = x, *b = y;
    if (a->user != b->user)
        return a->user < b->user ? -1 : 1;
    return a->ts < b->ts ? -1 : a->ts > b->ts;
}

static void test_sessions_of_a_user_are_minutes_apart(void **state)
{
    (void)state;
    struct click *a = calloc(N, sizeof *a);
    struct gen_options o = sessions(N);
    size_t records, n = clicks_of(&o, a, N, &records);
    qsort(a, n, sizeof *a, by_user_then_time);
    size_t changes = 0;
    for (size_t i = 1; i < n; i++)
        if (a[i].user == a[i - 1].user && a[i].session != a[i - 1].session) {
            assert_true(a[i].ts - a[i - 1].ts >= 60000);
            changes++;
        }
    assert_true(changes > 0);
    free(a);
}

static int by_count_desc(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

static void test_items_are_zipf_popular(void **state)
{
    (void)state;
    struct click *a = calloc(N, sizeof *a);
    struct gen_options o = sessions(N);
    size_t records, n = clicks_of(&o, a, N, &records);
    uint32_t *count = calloc((size_t)o.items, sizeof *count);
    size_t types[CLICK_TYPE_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i].item < (uint64_t)o.items);
        assert_true(a[i].user < (uint64_t)o.users);
        count[a[i].item]++;
        types[a[i].type]++;
    }
    qsort(count, (size_t)o.items, sizeof *count, by_count_desc);
    size_t top = 0;
    for (int i = 0; i < o.items / 100; i++)
        top += count[i];
    assert_true(top > n / 5); /* the top 1% of items: over 20% of the clicks */
    assert_true(types[CLICK_VIEW] > n / 2 && types[CLICK_VIEW] > types[CLICK_CLICK] &&
                types[CLICK_CLICK] > types[CLICK_ADD_TO_CART] && types[CLICK_PURCHASE] > 0);
    free(count), free(a);
}

/* A handful of users: sessions still come, users just get reused. */
static void test_tiny_population(void **state)
{
    (void)state;
    struct gen_options o = sessions(2000);
    o.users = 3;
    o.items = 1;
    o.segments = 1;
    struct click a[2000];
    size_t records, n = clicks_of(&o, a, 2000, &records);
    assert_true(n > 1000);
    for (size_t i = 0; i < n; i++)
        assert_true(a[i].user < 3 && a[i].item == 0);
}

static void test_uniform_unchanged_by_session_options(void **state)
{
    (void)state;
    struct click *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b);
    struct gen_options o = sessions(N);
    o.traffic = GEN_UNIFORM;
    size_t ra, rb, na = clicks_of(&o, a, N, &ra);
    o.user_zipf = 0.3, o.item_zipf = 2, o.session_events = 20;
    size_t nb = clicks_of(&o, b, N, &rb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a), free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_and_prefix),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_sessions_of_a_user_are_minutes_apart),
        cmocka_unit_test(test_items_are_zipf_popular),
        cmocka_unit_test(test_tiny_population),
        cmocka_unit_test(test_uniform_unchanged_by_session_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
