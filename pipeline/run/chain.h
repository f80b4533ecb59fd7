/* chain.h: eddy's operators, in order, as one unit. The live runtime and
 * the replay drive the same chain, so a replay runs exactly the code a live
 * run does. */
#ifndef EDDY_CHAIN_H
#define EDDY_CHAIN_H

#include <stddef.h>
#include <stdio.h>

#include "operators/operator.h"

struct eddy_config;
struct state_codec;

/* The chain's table: its operators in order, one line each, X(NAME) for
 * eddy_op_NAME (operators/NAME.h). The recommender first: its process()
 * queues refreshes and takes its learning step on the state as it was
 * before the event; it scores in flush(), after embeddings and cooccur
 * have applied the batch (their flush() does nothing). Everything else
 * about an operator it declares
 * itself (operator.h). The table is here, not in chain.c, because
 * CHAIN_OPS, which sizes arrays in this header and in config.h, is counted
 * from it: no count to keep in step by hand. */
#define CHAIN_TABLE(X) \
    X(recommend)       \
    X(embeddings)      \
    X(cooccur)         \
    X(budget)

#define CHAIN_COUNT_(name) +1
enum { CHAIN_OPS = 0 CHAIN_TABLE(CHAIN_COUNT_) }; /* the length of chain_operators[] */

struct op_chain {
    void *op[CHAIN_OPS];
    int64_t lateness_ms;      /* [time] lateness.ms: subtracted from watermarks */
};

/* CHAIN_TABLE's operators, in its order. Each declares its configuration
 * section (operator.h), which config.c reads from here. */
extern const struct eddy_operator *const chain_operators[CHAIN_OPS];

/* The union of the operators' keyed stores (operator.h: stores), in chain
 * order, each once, NULL-terminated: what state_options.stores takes, for
 * every state the chain runs on. Built on the first call, from any thread
 * (the runtime opens its state on libuv's thread pool); never freed. */
const struct state_codec *const *chain_stores(void);

/* Writes one line per operator, in chain order: its name, inputs, outputs
 * and stores, for `eddy --help`. */
void chain_describe(FILE *out);

/* Creates every operator with its parameter struct from cfg (config.h:
 * op_params). On failure the ones created are destroyed, err says why, and
 * -1 is returned. */
int chain_create(struct op_chain *c, const struct eddy_config *cfg, struct eddy_state *st,
                 const struct eddy_emit *emit, char *err, size_t errlen);
/* Hands ev to each operator that declares its kind among its inputs. */
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
