/* operator.h: the one interface between the pipeline and an operator.
 *
 * The pipeline knows operators only through struct eddy_operator and never
 * touches their internals; an operator knows nothing of Kafka or Avro. It
 * reads and writes state only through state/state.h and hands its outputs to
 * the eddy_emit callbacks, which the pipeline turns into Avro records on
 * output topics (or into files, in replay).
 *
 * Call order, all on one thread:
 *   create -> (process* -> flush -> [checkpoint])* -> destroy
 * flush() is called after every batch of input records with the watermark of
 * the operator's clock input: the lowest, over that topic's partitions, of
 * the highest event time seen (ms). Time-based work (refresh debounce, budget
 * slot boundaries) is driven by event time only, never by wall time, and
 * must not depend on where batches happen to end, so that the same input
 * gives the same state however it was batched or interrupted.
 * checkpoint() is called before each state commit, for operators that keep
 * something in memory only (they save it with state_blob_set()).
 *
 * Queries: readers (the HTTP API, the backtest) ask the chain a typed
 * question by kind (pipeline/run/chain.h: chain_query()); the operator that
 * declares the kind answers it. An answer is read from the state alone, not
 * from an operator instance, because the HTTP API holds the state but no
 * chain; it changes nothing in the state. Pointers in an answer borrow from
 * the state and are valid until the next state commit.
 *
 * An operator describes itself in its struct eddy_operator: its config
 * section and keys, the input kinds it consumes, what it outputs, the keyed
 * state stores it owns and the queries it answers. The chain (pipeline/
 * chain.h) takes everything from there, so adding an operator is its own
 * files and one line in the chain's table. */
#ifndef EDDY_OPERATOR_H
#define EDDY_OPERATOR_H

#include "operators/params.h"
#include "schemas/records.h"

struct eddy_state;
struct campaign_ledger;
struct state_codec;

struct eddy_emit {
    void (*recommendation)(void *ctx, const struct recommendation *rec);
    void (*decision)(void *ctx, const struct budget_decision *dec);
    /* A record that decoded but that the operator cannot apply (e.g. a budget
     * period shorter than its slots): the pipeline logs and counts it, so
     * nothing is dropped silently. Optional. */
    void (*rejected)(void *ctx, const char *operator_name, const char *reason);
    void *ctx;
};

enum eddy_query_kind {
    QUERY_USER_RECOMMENDATIONS, /* u.recs */
    QUERY_CAMPAIGN_LEDGER,      /* u.ledger */
    QUERY_KINDS
};

/* A user's top k from live state, as the recommender would publish them. */
struct user_recs_query {
    struct eddy_str user_id;
    int k;
    struct rec_item *items;     /* room for k; filled best first */
    int n;                      /* answer: items written */
};

struct campaign_ledger_query {
    struct eddy_str campaign_id;
    const struct campaign_ledger *ledger; /* answer */
};

struct eddy_query {
    enum eddy_query_kind kind;
    union {
        struct user_recs_query recs;
        struct campaign_ledger_query ledger;
    } u;
};

#define QUERY_BIT(kind) (1u << (kind))

/* An input kind (schemas/records.h: enum eddy_event_kind) as a bit of
 * eddy_operator.inputs. */
#define EVENT_BIT(kind) (1u << (kind))

/* What an operator produces, as bits (OUTPUT_BIT()) of eddy_operator.outputs:
 * records it emits through struct eddy_emit, which the sinks write to output
 * topics or files, or values it leaves in the state for the operators after
 * it. */
enum eddy_output_kind {
    OUTPUT_STATE,           /* values in its stores that later operators read (embeddings'
                               vectors, cooccur's neighbour lists): nothing emitted */
    OUTPUT_RECOMMENDATIONS, /* eddy_emit.recommendation */
    OUTPUT_DECISIONS,       /* eddy_emit.decision */
    OUTPUT_KINDS
};

#define OUTPUT_BIT(kind) (1u << (kind))

struct eddy_operator {
    const char *name;
    /* Its configuration: the section [section], introduced by section_help
     * (lines, each ending in a period), holds the keys params[0..n_params).
     * The pipeline fills a zeroed parameter struct of params_size bytes from
     * them (params.h) and hands it to create(). */
    const char *section;
    const char *section_help;
    const struct eddy_param *params;
    size_t n_params;
    size_t params_size;
    /* params: the operator's own parameter struct (see its header), filled
     * as above. Returns NULL and fills err on failure. */
    void *(*create)(const void *params, struct eddy_state *st,
                    const struct eddy_emit *emit, char *err, size_t errlen);
    /* Called only with the kinds in inputs (the chain filters); the
     * operators still ignore other kinds, so a unit test may feed them
     * anything. */
    void (*process)(void *self, const struct eddy_event *ev);
    void (*flush)(void *self, int64_t watermark_ms);
    void (*checkpoint)(void *self); /* optional */
    void (*destroy)(void *self);
    enum eddy_event_kind clock;     /* the input whose event time drives flush() */
    /* The input kinds it consumes, as EVENT_BIT()s: the chain hands process()
     * only these, and `eddy --help` lists them, so what feeds an operator is
     * read here rather than out of its process(). */
    unsigned inputs;
    /* What it produces, as OUTPUT_BIT()s: a description (`eddy --help`,
     * the unit test that every operator produces something); the sinks
     * route emitted records by their type, not by this. */
    unsigned outputs;
    /* The stores it owns (state/state.h: struct state_codec: keyed,
     * partitioned or dense), NULL-terminated; NULL if none. Every state the
     * chain runs on is opened with the union of its operators' stores
     * (chain_stores()), so a new store is declared here and nowhere else.
     * Embeddings declares users and items (operators/users.h). */
    const struct state_codec *const *stores;
    /* The query kinds this operator answers, as QUERY_BIT()s; 0 if none. */
    unsigned answers;
    /* Answers q, whose kind is one of answers: true, or false when its
     * subject (user, campaign) is unknown. NULL if answers is 0. */
    bool (*query)(struct eddy_state *st, struct eddy_query *q);
};

#endif
