/* cooccur.h: item-to-item co-occurrence, learnt incrementally from clicks,
 * and the retrieval stage of the recommender that reads it.
 *
 * Write side (the operator, after embeddings in the chain): every click
 * event (user u, item j, type) pairs j with each of u's last `history`
 * interactions i: i's neighbour list gains j with weight
 * w(type_i) * w(type_j), and j's list gains i with `reverse.weight` times
 * that (what follows an item says more than what came before it). Each
 * item keeps at most `neighbours` neighbours (Space-Saving: a newcomer to a
 * full list takes the place of the weakest and inherits its weight), and a
 * type-weighted count. Weights and counts decay with a half-life in event
 * time. A bounded list of trending items (decayed counts over all items,
 * Space-Saving again) serves users with no history. docs/recommender.md
 * gives the defaults and how they were chosen.
 *
 * Bounded state (both off by default): with `min.count` above 1, a
 * count-min sketch counts each item's clicks, and an item is paired, kept
 * in histories and trending only from its min.count-th click on; with
 * `ttl.ms`, histories and neighbour lists not touched for that long in
 * event time are absent to readers and deleted by a periodic sweep.
 *
 * Items are the rows of embeddings' item store (operators/users.h), which
 * embeddings assigns before this operator sees the event: the same row
 * joins the neighbour lists, the MF vectors and users' seen sets.
 *
 * Read side (cooc_retrieve()): a pure function of the state, used by the
 * recommender's refresh and by its query alike. */
#ifndef EDDY_COOCCUR_H
#define EDDY_COOCCUR_H

#include <stdint.h>

#include "operators/operator.h"

#define COOC_MAX_HISTORY 32
#define COOC_MAX_NEIGHBOURS 1000

struct cooc_params {
    int history;                        /* interactions kept per user */
    int neighbours;                     /* per item */
    int trending;                       /* items in the trending list */
    float weight[CLICK_TYPE_COUNT];     /* by click type */
    float reverse_weight;
    float popularity_exponent;
    int64_t half_life_ms;               /* 0: no decay */
    int min_count;                      /* clicks before an item is paired; 1: no gate */
    int sketch_width;                   /* counters per row of the count-min sketch */
    int sketch_depth;                   /* its rows */
    int64_t ttl_ms;                     /* histories and lists untouched this long
                                           (event time) expire; 0: never */
};

extern const struct eddy_operator eddy_op_cooccur;

/* What retrieval needs to know; the recommender's parameters. */
struct cooc_read_params {
    int history;            /* the user's most recent interactions used */
    float recency;          /* weight halves every `recency` interactions back */
    int candidates;         /* at most this many, by co-occurrence score */
    int trending;           /* and at most this many trending items */
};


struct cooc_candidate {
    uint32_t row;
    float cooc;      /* co-occurrence score, 0 for a trending-only candidate */
    float trend;     /* its decayed count over the trending list's largest, 0..1 */
    int32_t because; /* the history row that contributed most; -1: none */
};

struct cooc_scratch;
struct cooc_scratch *cooc_scratch_new(void);
void cooc_scratch_free(struct cooc_scratch *s);

/* The candidates for user_id: the best (at most p->candidates) neighbours
 * of their recent items, then trending items not among them (at most
 * p->trending), each part in no particular order: the ranking orders them.
 * *out points into s, valid until the next call. Returns how many. */
size_t cooc_retrieve(struct eddy_state *st, const struct cooc_read_params *p,
                     struct eddy_str user_id, struct cooc_scratch *s,
                     const struct cooc_candidate **out);

#endif
