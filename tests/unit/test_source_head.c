/* test_source_head.c: the head of a bounded source (pipeline/source/
 * source_head.h), behind `eddy replay --first N|P%`: exactly the first n
 * records, then the end without reading on; counting; the percentage's
 * rounding. The inner source is a fake that numbers its records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/source/source_head.h"

struct fake {
    struct eddy_source base;
    uint64_t n, handed, calls;
    int fail_at; /* 1-based record whose next fails; 0: none */
    int *freed;
};

static int fake_next(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen)
{
    struct fake *f = (struct fake *)s;
    f->calls++;
    if (f->fail_at && f->handed + 1 == (uint64_t)f->fail_at) {
        snprintf(err, errlen, "bad record %d", f->fail_at);
        return EDDY_SOURCE_ERROR;
    }
    if (f->handed == f->n)
        return EDDY_SOURCE_END;
    memset(ev, 0, sizeof *ev);
    ev->kind = EV_CLICK;
    ev->u.click.timestamp_ms = (int64_t)++f->handed;
    return EDDY_SOURCE_RECORD;
}

static double fake_done(const struct eddy_source *s, uint64_t resumed_at)
{
    (void)s, (void)resumed_at;
    return -1;
}

static void fake_describe(const struct eddy_source *s, char *buf, size_t len)
{
    (void)s;
    snprintf(buf, len, "2 log files");
}

static void fake_free(struct eddy_source *s)
{
    struct fake *f = (struct fake *)s;
    (*f->freed)++;
    free(f);
}

static const struct eddy_source_ops fake_ops = {fake_next, fake_done, fake_describe, fake_free,
                                                NULL, NULL, NULL, NULL, NULL};

static struct fake *fake_new(uint64_t n, int *freed)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    *f = (struct fake){.base.ops = &fake_ops, .n = n, .freed = freed};
    return f;
}

static void test_hands_out_exactly_the_head(void **state)
{
    (void)state;
    int freed = 0;
    struct fake *f = fake_new(10, &freed);
    struct eddy_source *h = headsource_wrap(&f->base, 4);
    assert_non_null(h);
    struct eddy_event ev;
    char err[64], line[128];
    for (int64_t i = 1; i <= 4; i++) {
        assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_RECORD);
        assert_int_equal(ev.u.click.timestamp_ms, i); /* in the inner order */
    }
    assert_true(h->ops->done(h, 0) == 1.0);
    for (int i = 0; i < 3; i++) /* the end stays the end */
        assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_END);
    assert_int_equal(f->calls, 4); /* the fifth record was never read */
    h->ops->describe(h, line, sizeof line);
    assert_string_equal(line, "2 log files, first 4 events");
    h->ops->free(h);
    assert_int_equal(freed, 1);
}

static void test_shorter_input_and_errors(void **state)
{
    (void)state;
    int freed = 0;
    struct eddy_event ev;
    char err[64] = "";
    struct eddy_source *h = headsource_wrap(&fake_new(2, &freed)->base, 5);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_RECORD);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_RECORD);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_END);
    assert_true(h->ops->done(h, 0) == 0.4);
    h->ops->free(h);

    struct fake *f = fake_new(9, &freed);
    f->fail_at = 3;
    h = headsource_wrap(&f->base, 5);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_RECORD);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_RECORD);
    assert_int_equal(h->ops->next(h, &ev, err, sizeof err), EDDY_SOURCE_ERROR);
    assert_string_equal(err, "bad record 3");
    h->ops->free(h);
    assert_int_equal(freed, 2);
}

static void test_count(void **state)
{
    (void)state;
    int freed = 0;
    uint64_t n = 99;
    char err[64] = "";
    struct fake *f = fake_new(1234, &freed);
    assert_int_equal(source_count(&f->base, &n, err, sizeof err), 0);
    assert_int_equal(n, 1234);
    f->base.ops->free(&f->base);
    f = fake_new(10, &freed);
    f->fail_at = 7;
    assert_int_equal(source_count(&f->base, &n, err, sizeof err), -1);
    assert_string_equal(err, "bad record 7");
    f->base.ops->free(&f->base);
}

static void test_percent_rounds_down(void **state)
{
    (void)state;
    assert_int_equal(head_of_percent(1000, 20), 200);
    assert_int_equal(head_of_percent(1000, 0.7), 7); /* 0.7 is a hair below in binary */
    assert_int_equal(head_of_percent(30000, 20), 6000);
    assert_int_equal(head_of_percent(9, 50), 4);
    assert_int_equal(head_of_percent(9, 100), 9);
    assert_int_equal(head_of_percent(3, 33.4), 1);
    assert_int_equal(head_of_percent(3, 33.3), 0); /* the caller refuses "no event" */
    assert_int_equal(head_of_percent(0, 100), 0);
    assert_true(head_of_percent(UINT64_MAX, 100) == UINT64_MAX);
    for (uint64_t total = 1; total < 2000; total += 7) /* never more than P% of it */
        for (int p = 1; p <= 100; p++)
            assert_true(head_of_percent(total, p) == total * (uint64_t)p / 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hands_out_exactly_the_head),
        cmocka_unit_test(test_shorter_input_and_errors),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_percent_rounds_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
