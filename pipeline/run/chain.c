/* chain.c: CHAIN_TABLE's operators as one unit. What it knows of an
 * operator (config, inputs, outputs, stores, queries) comes from the
 * operator's own struct eddy_operator; nothing here names one. */
#include "pipeline/run/chain.h"

#include <pthread.h>
#include <stdlib.h>

#include "pipeline/run/config.h"
#include "state/state.h"

/* The table's operators, declared from their names, so that adding one
 * needs no #include here either. */
#define CHAIN_EXTERN_(name) extern const struct eddy_operator eddy_op_##name;
CHAIN_TABLE(CHAIN_EXTERN_)

#define CHAIN_ENTRY_(name) &eddy_op_##name,
const struct eddy_operator *const chain_operators[CHAIN_OPS] = {CHAIN_TABLE(CHAIN_ENTRY_)};

/* Room for the union of the stores, NULL-terminated. Operators own a store
 * or two; a chain with more than this aborts in its first chain_stores(),
 * so test_chain fails before anything ships (raise it then). */
enum { CHAIN_STORES_MAX = 16 };
static const struct state_codec *union_stores[CHAIN_STORES_MAX + 1];
static pthread_once_t union_once = PTHREAD_ONCE_INIT;

static bool store_listed(const struct state_codec *codec, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (union_stores[i] == codec)
            return true;
    return false;
}

/* Operators sharing a store would declare it each: it is listed once, as a
 * state opens each column family once. */
static void collect_stores(void)
{
    size_t n = 0;
    for (int i = 0; i < CHAIN_OPS; i++)
        for (const struct state_codec *const *s = chain_operators[i]->stores; s && *s; s++) {
            if (store_listed(*s, n))
                continue;
            if (n == CHAIN_STORES_MAX) {
                fprintf(stderr, "eddy: over %d state stores: raise CHAIN_STORES_MAX\n",
                        CHAIN_STORES_MAX);
                abort();
            }
            union_stores[n++] = *s;
        }
}

const struct state_codec *const *chain_stores(void)
{
    pthread_once(&union_once, collect_stores);
    return union_stores;
}

/* Names as the [topics] keys of the inputs and outputs have them. */
static const char *const input_names[EV_KINDS] = {
    [EV_CLICK] = "clicks", [EV_AD] = "ad_events", [EV_CAMPAIGN] = "campaigns"};
static const char *const output_names[OUTPUT_KINDS] = {
    [OUTPUT_STATE] = "state (for later operators)", [OUTPUT_RECOMMENDATIONS] = "recommendations",
    [OUTPUT_DECISIONS] = "decisions"};

/* Writes label and the names of the bits set in mask, comma separated. */
static void put_bits(FILE *out, const char *label, unsigned mask, const char *const *names,
                     int n)
{
    const char *sep = label;
    for (int k = 0; k < n; k++)
        if (mask & (1u << k)) {
            fprintf(out, "%s%s", sep, names[k]);
            sep = ", ";
        }
}

void chain_describe(FILE *out)
{
    for (int i = 0; i < CHAIN_OPS; i++) {
        const struct eddy_operator *o = chain_operators[i];
        fprintf(out, "  %-11s", o->name);
        put_bits(out, "in: ", o->inputs, input_names, EV_KINDS);
        put_bits(out, "; out: ", o->outputs, output_names, OUTPUT_KINDS);
        const char *sep = "; stores: ";
        for (const struct state_codec *const *s = o->stores; s && *s; s++, sep = ", ")
            fprintf(out, "%s%s", sep, (*s)->name);
        fputc('\n', out);
    }
}

int chain_create(struct op_chain *c, const struct eddy_config *cfg, struct eddy_state *st,
                 const struct eddy_emit *emit, char *err, size_t errlen)
{
    *c = (struct op_chain){.lateness_ms = cfg->lateness_ms};
    for (int i = 0; i < CHAIN_OPS; i++) {
        c->op[i] = chain_operators[i]->create(cfg->op_params[i], st, emit, err, errlen);
        if (!c->op[i]) {
            chain_destroy(c);
            return -1;
        }
    }
    return 0;
}

void chain_process(struct op_chain *c, const struct eddy_event *ev)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        if (chain_operators[i]->inputs & EVENT_BIT(ev->kind))
            chain_operators[i]->process(c->op[i], ev);
}

static int64_t less_lateness(const struct op_chain *c, int64_t watermark_ms)
{
    return watermark_ms < INT64_MIN + c->lateness_ms ? INT64_MIN : watermark_ms - c->lateness_ms;
}

void chain_flush(struct op_chain *c, int64_t click_watermark_ms, int64_t ad_watermark_ms)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        chain_operators[i]->flush(c->op[i],
                                  less_lateness(c, chain_operators[i]->clock == EV_AD
                                                       ? ad_watermark_ms
                                                       : click_watermark_ms));
}

void chain_checkpoint(struct op_chain *c)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        if (chain_operators[i]->checkpoint)
            chain_operators[i]->checkpoint(c->op[i]);
}

void chain_destroy(struct op_chain *c)
{
    for (int i = CHAIN_OPS - 1; i >= 0; i--)
        if (c->op[i]) {
            chain_operators[i]->destroy(c->op[i]);
            c->op[i] = NULL;
        }
}

bool chain_query(struct eddy_state *st, struct eddy_query *q)
{
    for (int i = 0; i < CHAIN_OPS; i++)
        if (chain_operators[i]->answers & QUERY_BIT(q->kind))
            return chain_operators[i]->query(st, q);
    return false;
}
