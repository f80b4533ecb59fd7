/* test_driver.c: the driver's checkpoint protocol (pipeline/run/driver.h) over
 * stand-in sources and sinks: driver_run() checkpoints every N records
 * behind the sink's barrier, with the sink's mark and the position in the
 * same commit; a restart resumes after the position; a failed barrier
 * stores nothing. A readiness-driven source (as the live one) is taken a
 * batch at a time, its dead letters go to the hook, and its own mark and
 * committed ops stand in for the position. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/embeddings.h"
#include "pipeline/run/config.h"
#include "pipeline/run/driver.h"
#include "state/state.h"

/* n click events, each its own user and item, a second apart. */
struct fake_source {
    struct eddy_source base;
    uint64_t n, next;
    char user[32], item[32];
};

static int src_next(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct fake_source *f = (struct fake_source *)s;
    if (f->next == f->n)
        return 0;
    snprintf(f->user, sizeof f->user, "u%llu", (unsigned long long)f->next % 7);
    snprintf(f->item, sizeof f->item, "i%llu", (unsigned long long)f->next % 11);
    *ev = (struct eddy_event){.kind = EV_CLICK};
    ev->u.click = (struct click_event){.user_id = {f->user, strlen(f->user)},
                                       .item_id = {f->item, strlen(f->item)},
                                       .type = CLICK_VIEW,
                                       .timestamp_ms = 1000 * (int64_t)++f->next};
    return 1;
}

static double src_done(const struct eddy_source *s, uint64_t resumed_at)
{
    (void)s, (void)resumed_at;
    return -1;
}

static void src_describe(const struct eddy_source *s, char *buf, size_t len)
{
    (void)s;
    snprintf(buf, len, "fake");
}

static void src_free(struct eddy_source *s)
{
    (void)s;
}

static const struct eddy_source_ops fake_source_ops = {.next = src_next, .done = src_done,
                                                       .describe = src_describe,
                                                       .free = src_free};

/* Counts what the driver asks of it; its mark is the outputs written. */
struct fake_sink {
    struct eddy_sink base;
    uint64_t written, barriers, marks;
    bool fail_barrier;
};

static int sink_write(struct eddy_sink *s, enum eddy_record_type type, struct eddy_str key,
                      const void *record)
{
    (void)type, (void)key, (void)record;
    ((struct fake_sink *)s)->written++;
    return 0;
}

static int sink_barrier(struct eddy_sink *s, uint64_t timeout_ms)
{
    struct fake_sink *f = (struct fake_sink *)s;
    assert_true(timeout_ms == SINK_WAIT_FOREVER);
    f->barriers++;
    return f->fail_barrier ? -1 : 0;
}

static void sink_mark(struct eddy_sink *s, struct eddy_state *st)
{
    struct fake_sink *f = (struct fake_sink *)s;
    f->marks++;
    state_blob_set(st, "test.sink", &f->written, sizeof f->written);
}

static void sink_free(struct eddy_sink *s)
{
    (void)s;
}

static const struct eddy_sink_ops fake_sink_ops = {sink_write, sink_barrier, sink_mark,
                                                   sink_free};

struct fx {
    char dir[64];
    struct eddy_config cfg;
    struct eddy_state *st;
};

static void fx_open_state(struct fx *f)
{
    char err[512];
    const struct mf_params *mf = config_op_params(&f->cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = f->dir, .dim = mf->dim, .create_if_missing = true,
                               .stores = chain_stores()};
    if (state_open(&so, &f->st, err, sizeof err))
        fail_msg("state_open: %s", err);
}

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    strcpy(f->dir, "/tmp/eddy-test-driver-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (config_load(&f->cfg, NULL, err, sizeof err))
        fail_msg("config: %s", err);
    fx_open_state(f);
    return f;
}

static void fx_reopen(struct fx *f)
{
    state_close(f->st);
    fx_open_state(f);
}

static void fx_free(struct fx *f)
{
    state_close(f->st);
    config_free(&f->cfg);
    assert_int_equal(tmpdir_remove(f->dir), 0);
    free(f);
}

/* Runs n events through a new driver: driver_run()'s result. */
static int run(struct fx *f, struct fake_sink *sink, uint64_t n, uint64_t every,
               struct driver *d, char *err, size_t errlen)
{
    struct fake_source src = {.base.ops = &fake_source_ops, .n = n};
    struct driver_hooks hooks = {0};
    if (driver_open(d, &f->cfg, f->st, &sink->base, &hooks, err, errlen))
        fail_msg("driver_open: %s", err);
    int rc = driver_run(d, &src.base, every, err, errlen);
    driver_close(d);
    return rc;
}

static uint64_t stored_mark(struct fx *f)
{
    void *blob;
    size_t len;
    uint64_t v = 0;
    if (state_blob_get(f->st, "test.sink", &blob, &len) == 0) {
        assert_int_equal(len, sizeof v);
        memcpy(&v, blob, len);
        free(blob);
    }
    return v;
}

static void test_checkpoints_behind_the_barrier(void **unused)
{
    (void)unused;
    struct fx *f = fx_new();
    struct fake_sink sink = {.base.ops = &fake_sink_ops};
    struct driver d;
    char err[512];
    assert_int_equal(run(f, &sink, 25, 10, &d, err, sizeof err), 0);
    /* At 10 and 20, and at the end. */
    assert_int_equal(sink.barriers, 3);
    assert_int_equal(sink.marks, 3);
    assert_int_equal(d.position, 25);
    fx_reopen(f);
    assert_int_equal(driver_stored_position(f->st), 25);
    assert_int_equal(stored_mark(f), sink.written);
    fx_free(f);
}

static void test_resumes_after_the_position(void **unused)
{
    (void)unused;
    struct fx *f = fx_new();
    struct fake_sink sink = {.base.ops = &fake_sink_ops};
    struct driver d;
    char err[512];
    assert_int_equal(run(f, &sink, 15, 10, &d, err, sizeof err), 0);
    fx_reopen(f);
    assert_int_equal(run(f, &sink, 40, 10, &d, err, sizeof err), 0);
    assert_int_equal(d.resumed_at, 15);
    assert_int_equal(d.by_kind[EV_CLICK], 25);
    fx_reopen(f);
    assert_int_equal(driver_stored_position(f->st), 40);
    /* A shorter input than the position is another input. */
    assert_int_equal(run(f, &sink, 30, 10, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "fewer events"));
    fx_free(f);
}

static void test_a_failed_barrier_stores_nothing(void **unused)
{
    (void)unused;
    struct fx *f = fx_new();
    struct fake_sink sink = {.base.ops = &fake_sink_ops, .fail_barrier = true};
    struct driver d;
    char err[512];
    assert_int_equal(run(f, &sink, 25, 10, &d, err, sizeof err), -1);
    assert_int_equal(sink.barriers, 1);
    assert_int_equal(sink.marks, 0);
    fx_reopen(f);
    assert_int_equal(driver_stored_position(f->st), 0);
    fx_free(f);
}

/* A readiness-driven source: script[] is what next() returns in turn, then
 * EDDY_SOURCE_IDLE for ever. */
struct live_source {
    struct eddy_source base;
    const int *script;
    size_t n, at;
    int64_t t;
    uint64_t watermark_calls, marks, commits, durable_commits;
    struct dead_letter dl;
};

static int live_next(struct eddy_source *s, struct eddy_event *ev, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    struct live_source *l = (struct live_source *)s;
    if (l->at == l->n)
        return EDDY_SOURCE_IDLE;
    int rc = l->script[l->at++];
    if (rc == EDDY_SOURCE_RECORD) {
        *ev = (struct eddy_event){.kind = EV_CLICK};
        ev->u.click = (struct click_event){.user_id = {"u", 1}, .item_id = {"i", 1},
                                           .type = CLICK_VIEW, .timestamp_ms = ++l->t};
    }
    return rc;
}

static const struct dead_letter *live_dead_letter(const struct eddy_source *s)
{
    return &((const struct live_source *)s)->dl;
}

static void live_watermarks(const struct eddy_source *s, int64_t *click, int64_t *ad)
{
    struct live_source *l = (struct live_source *)s;
    l->watermark_calls++;
    *click = l->t;
    *ad = INT64_MIN;
}

static void live_mark(struct eddy_source *s, struct eddy_state *st)
{
    struct live_source *l = (struct live_source *)s;
    l->marks++;
    state_offset_set(st, "clicks", 0, (int64_t)l->at);
}

static void live_committed(struct eddy_source *s, bool durable)
{
    struct live_source *l = (struct live_source *)s;
    l->commits++;
    l->durable_commits += durable;
}

static const struct eddy_source_ops live_source_ops = {
    .next = live_next, .done = src_done, .describe = src_describe, .free = src_free,
    .dead_letter = live_dead_letter, .watermarks = live_watermarks, .mark = live_mark,
    .committed = live_committed,
};

static void count_dead_letter(void *ctx, const struct dead_letter *dl)
{
    assert_string_equal(dl->reason, "bad");
    (*(int *)ctx)++;
}

static void test_a_readiness_driven_source(void **unused)
{
    (void)unused;
    static const int script[] = {EDDY_SOURCE_RECORD, EDDY_SOURCE_DEAD_LETTER,
                                 EDDY_SOURCE_RECORD, EDDY_SOURCE_BATCH_END,
                                 EDDY_SOURCE_RECORD, EDDY_SOURCE_BATCH_END};
    struct fx *f = fx_new();
    struct fake_sink sink = {.base.ops = &fake_sink_ops};
    struct live_source src = {.base.ops = &live_source_ops, .script = script,
                              .n = sizeof script / sizeof script[0],
                              .dl = {.reason = "bad", .topic = "clicks"}};
    int dead = 0;
    struct driver_hooks hooks = {.dead_letter = count_dead_letter, .ctx = &dead};
    struct driver d;
    char err[512];
    if (driver_open(&d, &f->cfg, f->st, &sink.base, &hooks, err, sizeof err))
        fail_msg("driver_open: %s", err);
    /* A batch is taken whole: two records and a dead letter, one flush. */
    assert_int_equal(driver_batch(&d, &src.base, err, sizeof err), EDDY_SOURCE_BATCH_END);
    assert_int_equal(src.at, 4);
    assert_int_equal(dead, 1);
    assert_int_equal(src.watermark_calls, 1);
    assert_int_equal(d.since_checkpoint, 3);
    assert_int_equal(driver_batch(&d, &src.base, err, sizeof err), EDDY_SOURCE_BATCH_END);
    assert_int_equal(driver_batch(&d, &src.base, err, sizeof err), EDDY_SOURCE_IDLE);
    assert_int_equal(d.since_checkpoint, 4);
    /* The source's mark is its position; committed follows the commit. */
    assert_int_equal(driver_commit(&d, &src.base, true, err, sizeof err), 0);
    assert_int_equal(src.marks, 1);
    assert_int_equal(src.commits, 1);
    assert_int_equal(src.durable_commits, 1);
    assert_int_equal(sink.marks, 1);
    assert_int_equal(d.since_checkpoint, 0);
    driver_close(&d);
    fx_reopen(f);
    assert_int_equal(state_offset_get(f->st, "clicks", 0), 6);
    assert_int_equal(driver_stored_position(f->st), 0);
    /* It has no end: not for driver_run(). */
    struct live_source idle = {.base.ops = &live_source_ops};
    if (driver_open(&d, &f->cfg, f->st, &sink.base, &hooks, err, sizeof err))
        fail_msg("driver_open: %s", err);
    int rc = driver_run(&d, &idle.base, 10, err, sizeof err);
    driver_close(&d);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "no end"));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoints_behind_the_barrier),
        cmocka_unit_test(test_resumes_after_the_position),
        cmocka_unit_test(test_a_failed_barrier_stores_nothing),
        cmocka_unit_test(test_a_readiness_driven_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
