#include "pipeline/chain.h"

#include "operators/budget.h"
#include "operators/embeddings.h"
#include "operators/recommend.h"
#include "pipeline/config.h"

const struct eddy_operator *const chain_operators[CHAIN_OPS] = {
    &eddy_op_embeddings,
    &eddy_op_recommend,
    &eddy_op_budget,
};

const struct state_codec *const chain_stores[] = {
    &budget_campaigns,
    NULL,
};

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
