/* chain.h: eddy's operators, in order, as one unit. The live runtime and
 * the replay drive the same chain, so a replay runs exactly the code a live
 * run does. */
#ifndef EDDY_CHAIN_H
#define EDDY_CHAIN_H

#include <stddef.h>

#include "operators/operator.h"

struct eddy_config;
struct state_codec;

enum { CHAIN_OPS = 3 }; /* the length of chain_operators[] */

struct op_chain {
    void *op[CHAIN_OPS];
    int64_t lateness_ms;      /* [time] lateness.ms: subtracted from watermarks */
};

/* The operators, embeddings first: the recommender scores updated vectors.
 * Each declares its configuration section (operator.h), which config.c
 * reads from here. */
extern const struct eddy_operator *const chain_operators[CHAIN_OPS];

/* The operators' keyed stores (state.h), NULL-terminated: what
 * state_options.stores takes, for every state the chain runs on. */
extern const struct state_codec *const chain_stores[];

/* Creates every operator with its parameter struct from cfg (config.h:
 * op_params). On failure the ones created are destroyed, err says why, and
 * -1 is returned. */
int chain_create(struct op_chain *c, const struct eddy_config *cfg, struct eddy_state *st,
                 const struct eddy_emit *emit, char *err, size_t errlen);
void chain_process(struct op_chain *c, const struct eddy_event *ev);
/* Flushes each operator with the watermark of its clock input, less the
 * configured lateness (INT64_MIN, no event yet, stays INT64_MIN). */
void chain_flush(struct op_chain *c, int64_t click_watermark_ms, int64_t ad_watermark_ms);
void chain_checkpoint(struct op_chain *c);
void chain_destroy(struct op_chain *c);
/* Asks the operator that answers q->kind (operator.h) and returns its
 * answer: true, or false when q's subject is unknown. It takes the state,
 * not a chain: answers come from the state alone, and the HTTP API holds no
 * chain. */
bool chain_query(struct eddy_state *st, struct eddy_query *q);

#endif
