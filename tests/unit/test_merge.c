/* test_merge.c: the merge order of replay's inputs (pipeline/source/merge.h):
 * budgets first, then earliest event time, ties to the input listed
 * first; exhausted inputs are passed over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/source/merge.h"

#define MAX_EVENTS 8

/* An input: its events in its own order, and how many were taken. */
struct input {
    struct eddy_event ev[MAX_EVENTS];
    size_t n, next;
};

static const struct eddy_event *input_head(const void *inputs, size_t i)
{
    const struct input *in = (const struct input *)inputs + i;
    return in->next < in->n ? &in->ev[in->next] : NULL;
}

/* Events are labelled through their partition field, which the merge
 * does not look at. */
static void add(struct input *in, enum eddy_event_kind kind, int64_t t, int32_t label)
{
    struct eddy_event *ev = &in->ev[in->n++];
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ev->partition = label;
    if (kind == EV_CLICK)
        ev->u.click.timestamp_ms = t;
    else if (kind == EV_AD)
        ev->u.ad.timestamp_ms = t;
}

/* The input merge_next() picks, checking that it hands out that input's head. */
static ssize_t pick(struct input *in, size_t n)
{
    struct eddy_event ev = {.partition = -1};
    ssize_t best = merge_next(in, n, input_head, &ev);
    if (best < 0)
        assert_int_equal(ev.partition, -1); /* untouched */
    else /* labels are unique */
        assert_int_equal(ev.partition, in[best].ev[in[best].next].partition);
    return best;
}

/* Merges the inputs to the end; the labels in merge order. */
static size_t merge_all(struct input *in, size_t n, int32_t *labels)
{
    size_t out = 0;
    for (ssize_t best; (best = pick(in, n)) >= 0;)
        labels[out++] = in[best].ev[in[best].next++].partition;
    return out;
}

static void test_no_heads_is_the_end(void **state)
{
    (void)state;
    struct input in[2] = {0};
    assert_int_equal(pick(in, 0), -1);
    assert_int_equal(pick(in, 2), -1);
}

static void test_earliest_time_first(void **state)
{
    (void)state;
    struct input in[3] = {0};
    add(&in[0], EV_CLICK, 300, 1);
    add(&in[1], EV_AD, 100, 2);
    add(&in[2], EV_CLICK, 200, 3);
    assert_int_equal(pick(in, 3), 1);
}

static void test_budgets_before_any_time(void **state)
{
    (void)state;
    struct input in[2] = {0};
    add(&in[0], EV_CLICK, INT64_MIN + 1, 1);
    add(&in[1], EV_CAMPAIGN, 0, 2);
    assert_int_equal(pick(in, 2), 1);
}

/* Equal times, budgets among them: the input listed first goes first,
 * whichever kind its event is. */
static void test_ties_go_to_the_input_listed_first(void **state)
{
    (void)state;
    struct input in[3] = {0};
    add(&in[0], EV_AD, 100, 1);
    add(&in[1], EV_CLICK, 100, 2);
    add(&in[2], EV_CLICK, 100, 3);
    assert_int_equal(pick(in, 3), 0);
    in[0].next = 1; /* exhausted: passed over */
    assert_int_equal(pick(in, 3), 1);

    struct input budgets[2] = {0};
    add(&budgets[0], EV_CAMPAIGN, 0, 1);
    add(&budgets[1], EV_CAMPAIGN, 0, 2);
    assert_int_equal(pick(budgets, 2), 0);
}

/* A whole merge: each input keeps its own order (even out of time order),
 * ties resolve by input, budgets lead wherever they are listed. */
static void test_whole_merge_order(void **state)
{
    (void)state;
    struct input in[3] = {0};
    add(&in[0], EV_CLICK, 10, 1);
    add(&in[0], EV_CLICK, 20, 2);
    add(&in[0], EV_CLICK, 20, 3);
    add(&in[0], EV_CLICK, 15, 4); /* late: comes when it is the head */
    add(&in[1], EV_AD, 10, 5);
    add(&in[1], EV_AD, 20, 6);
    add(&in[1], EV_AD, 30, 7);
    add(&in[2], EV_CAMPAIGN, 0, 8);
    add(&in[2], EV_CAMPAIGN, 0, 9);
    add(&in[2], EV_CLICK, 5, 10);
    int32_t got[3 * MAX_EVENTS];
    const int32_t want[] = {8, 9, 10, 1, 5, 2, 3, 4, 6, 7};
    assert_int_equal(merge_all(in, 3, got), sizeof want / sizeof want[0]);
    assert_memory_equal(got, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_heads_is_the_end),
        cmocka_unit_test(test_earliest_time_first),
        cmocka_unit_test(test_budgets_before_any_time),
        cmocka_unit_test(test_ties_go_to_the_input_listed_first),
        cmocka_unit_test(test_whole_merge_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
