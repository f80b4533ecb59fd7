/* test_chain.c: the operator chain as the runtime and the replay drive it:
 * that watermarks trail the event time by [time] lateness.ms, that queries
 * reach the operator that answers them, and that what the chain derives from
 * its operators' declarations (stores, inputs) matches them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "operators/budget.h"
#include "operators/embeddings.h"
#include "operators/recommend.h"
#include "pipeline/run/chain.h"
#include "pipeline/run/config.h"
#include "state/state.h"

struct fx {
    char dir[64];
    struct eddy_config cfg;
    struct eddy_state *st;
    struct op_chain chain;
    int recs;
};

static void on_rec(void *ctx, const struct recommendation *rec)
{
    (void)rec;
    ((struct fx *)ctx)->recs++;
}

static void on_dec(void *ctx, const struct budget_decision *d)
{
    (void)ctx, (void)d;
}

static struct fx *fx_new(int64_t lateness_ms)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[512];
    strcpy(f->dir, "/tmp/eddy-test-chain-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (config_load(&f->cfg, NULL, err, sizeof err))
        fail_msg("config: %s", err);
    f->cfg.lateness_ms = lateness_ms;
    struct rec_params *rec = config_op_params(&f->cfg, &eddy_op_recommend);
    rec->refresh_interval_ms = 0;
    const struct mf_params *mf = config_op_params(&f->cfg, &eddy_op_embeddings);
    struct state_options so = {.dir = f->dir, .dim = mf->dim, .create_if_missing = true,
                               .stores = chain_stores()};
    if (state_open(&so, &f->st, err, sizeof err))
        fail_msg("state_open: %s", err);
    struct eddy_emit emit = {.recommendation = on_rec, .decision = on_dec, .ctx = f};
    if (chain_create(&f->chain, &f->cfg, f->st, &emit, err, sizeof err))
        fail_msg("chain_create: %s", err);
    return f;
}

static void fx_free(struct fx *f)
{
    chain_destroy(&f->chain);
    state_close(f->st);
    config_free(&f->cfg);
    assert_int_equal(tmpdir_remove(f->dir), 0);
    free(f);
}

static void click(struct fx *f, const char *user, const char *item, int64_t t)
{
    struct eddy_event ev = {.kind = EV_CLICK};
    ev.u.click = (struct click_event){.user_id = {user, strlen(user)},
                                      .item_id = {item, strlen(item)},
                                      .type = CLICK_PURCHASE, .timestamp_ms = t};
    chain_process(&f->chain, &ev);
}

/* A refresh due at event time 1000 goes out on a watermark of 1000 without
 * lateness, and only on 1500 with 500 ms of it. */
static void test_lateness_delays_what_the_watermark_drives(void **unused)
{
    (void)unused;
    for (int late = 0; late < 2; late++) {
        struct fx *f = fx_new(late ? 500 : 0);
        click(f, "u1", "i1", 1000);
        chain_flush(&f->chain, 1000, INT64_MIN);
        assert_int_equal(f->recs, late ? 0 : 1);
        chain_flush(&f->chain, 1499, INT64_MIN);
        assert_int_equal(f->recs, late ? 0 : 1);
        chain_flush(&f->chain, 1500, INT64_MIN);
        assert_int_equal(f->recs, 1);
        fx_free(f);
    }
}

/* No event yet (INT64_MIN) stays "no event", not a wrapped-around time. */
static void test_no_watermark_stays_none(void **unused)
{
    (void)unused;
    struct fx *f = fx_new(500);
    click(f, "u1", "i1", INT64_MIN + 100);
    chain_flush(&f->chain, INT64_MIN + 100, INT64_MIN);
    assert_int_equal(f->recs, 0);
    fx_free(f);
}

/* A query kind no operator answers, or two do, would be a silent gap or an
 * ambiguity: chain_query() asks the first. */
static void test_each_query_kind_has_one_operator(void **unused)
{
    (void)unused;
    for (int kind = 0; kind < QUERY_KINDS; kind++) {
        int answering = 0;
        for (int i = 0; i < CHAIN_OPS; i++)
            answering += !!(chain_operators[i]->answers & QUERY_BIT(kind));
        assert_int_equal(answering, 1);
    }
    for (int i = 0; i < CHAIN_OPS; i++)
        assert_int_equal(!chain_operators[i]->answers, !chain_operators[i]->query);
}

static int declared_by(const struct state_codec *codec)
{
    int n = 0;
    for (int i = 0; i < CHAIN_OPS; i++)
        for (const struct state_codec *const *s = chain_operators[i]->stores; s && *s; s++)
            n += *s == codec;
    return n;
}

/* chain_stores() is every store an operator declares, each once, and no
 * other; two stores sharing a column family or a kind would clash in the
 * state and in `eddy state get`. */
static void test_stores_are_the_operators_stores(void **unused)
{
    (void)unused;
    const struct state_codec *const *all = chain_stores();
    size_t n = 0;
    for (; all[n]; n++) {
        assert_true(declared_by(all[n]) > 0);
        for (size_t j = 0; j < n; j++) {
            assert_ptr_not_equal(all[j], all[n]);
            assert_string_not_equal(all[j]->name, all[n]->name);
            assert_string_not_equal(all[j]->kind, all[n]->kind);
        }
    }
    for (int i = 0; i < CHAIN_OPS; i++)
        for (const struct state_codec *const *s = chain_operators[i]->stores; s && *s; s++) {
            size_t k = 0;
            while (k < n && all[k] != *s)
                k++;
            assert_true(k < n);
        }
    assert_int_equal(declared_by(&budget_campaigns), 1); /* the one store today */
    assert_ptr_equal(chain_stores(), all); /* built once */
}

/* Every operator reads something, produces something, and is clocked by
 * an input it reads; every input kind feeds some operator, else a topic
 * would be consumed for nothing. */
static void test_operators_declare_inputs_and_outputs(void **unused)
{
    (void)unused;
    unsigned read = 0;
    for (int i = 0; i < CHAIN_OPS; i++) {
        const struct eddy_operator *o = chain_operators[i];
        assert_int_not_equal(o->inputs, 0);
        assert_int_equal(o->inputs & ~(EVENT_BIT(EV_KINDS) - 1), 0);
        assert_true(o->inputs & EVENT_BIT(o->clock));
        assert_int_not_equal(o->outputs, 0);
        assert_int_equal(o->outputs & ~(OUTPUT_BIT(OUTPUT_KINDS) - 1), 0);
        read |= o->inputs;
    }
    assert_int_equal(read, EVENT_BIT(EV_KINDS) - 1);
}

/* `eddy --help` lists each operator with names for all it declares. */
static void test_describe_lists_every_operator(void **unused)
{
    (void)unused;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    chain_describe(out);
    assert_int_equal(fclose(out), 0);
    for (int i = 0; i < CHAIN_OPS; i++)
        assert_non_null(strstr(text, chain_operators[i]->name));
    assert_non_null(strstr(text, "in: ad_events, campaigns; out: decisions; stores: campaigns"));
    assert_null(strstr(text, "(null)"));
    free(text);
}

static void configure(struct fx *f, const char *campaign, int64_t budget_micros)
{
    struct eddy_event ev = {.kind = EV_CAMPAIGN};
    ev.u.campaign = (struct campaign_budget){.campaign_id = {campaign, strlen(campaign)},
                                             .budget_micros = budget_micros,
                                             .period_ms = 86400000};
    chain_process(&f->chain, &ev);
}

static void test_queries_answer_from_the_state(void **unused)
{
    (void)unused;
    struct fx *f = fx_new(0);
    click(f, "u1", "i1", 1000);
    click(f, "u2", "i2", 1000);
    configure(f, "c1", 5000000);

    struct rec_item items[4];
    struct eddy_query q = {.kind = QUERY_USER_RECOMMENDATIONS,
                           .u.recs = {.user_id = {"u1", 2}, .k = 4, .items = items}};
    assert_true(chain_query(f->st, &q));
    assert_int_equal(q.u.recs.n, 1); /* i2: i1 is u1's own */
    assert_memory_equal(items[0].item_id.ptr, "i2", 2);
    q.u.recs.user_id = (struct eddy_str){"nobody", 6};
    assert_false(chain_query(f->st, &q));

    q = (struct eddy_query){.kind = QUERY_CAMPAIGN_LEDGER, .u.ledger = {.campaign_id = {"c1", 2}}};
    assert_true(chain_query(f->st, &q));
    assert_int_equal(q.u.ledger.ledger->budget_micros, 5000000);
    q.u.ledger.campaign_id = (struct eddy_str){"c2", 2};
    assert_false(chain_query(f->st, &q));
    assert_null(q.u.ledger.ledger);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lateness_delays_what_the_watermark_drives),
        cmocka_unit_test(test_no_watermark_stays_none),
        cmocka_unit_test(test_each_query_kind_has_one_operator),
        cmocka_unit_test(test_queries_answer_from_the_state),
        cmocka_unit_test(test_stores_are_the_operators_stores),
        cmocka_unit_test(test_operators_declare_inputs_and_outputs),
        cmocka_unit_test(test_describe_lists_every_operator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
