/* embeddings.h: online matrix factorisation on implicit feedback.
 *
 * Every click event (u, i, type) is a positive example with confidence
 * weight[type]: one SGD step pulls user u's and item i's vectors towards
 * dot(p_u, q_i) = 1, and `negatives` items sampled deterministically from the
 * event's content are pushed towards 0. New vectors start from a seeded
 * pseudo-random draw derived from the id, so state is a pure function of the
 * input sequence. */
#ifndef EDDY_EMBEDDINGS_H
#define EDDY_EMBEDDINGS_H

#include "operators/operator.h"

struct mf_params {
    int dim;
    float learning_rate;
    float regularization;
    int negatives;
    float init_scale;              /* std-dev-like scale of initial vectors */
    float weight[CLICK_TYPE_COUNT]; /* confidence per event type */
    int64_t ttl_ms;                /* users without a click this long expire; 0: never */
};

extern const struct eddy_operator eddy_op_embeddings;

#endif
