/* recommend.h: top-K recommendations by dot product, scored in batches.
 *
 * A click event queues a refresh of its user at the end of the
 * refresh_interval_ms-long interval of event time (a fixed grid) that holds
 * the click; with interval 0, at the click. So a user is republished at most
 * once per interval, and the refresh times depend only on event times, not on
 * batching. On flush(watermark), every refresh due by the watermark is
 * scored against the whole item matrix with one cblas_sgemm per batch of up
 * to batch_users users; items the user already interacted with are
 * excluded; the top k are emitted best first, stamped with the refresh time.
 *
 * It answers QUERY_USER_RECOMMENDATIONS (operator.h): one user's top k,
 * scored on demand from live state; false if the user is unknown. */
#ifndef EDDY_RECOMMEND_H
#define EDDY_RECOMMEND_H

#include "operators/cooccur.h"
#include "operators/operator.h"

enum rec_retrieval {
    REC_EXACT,      /* every item scored by its MF dot product (sgemm) */
    REC_TWO_STAGE,  /* candidates from cooccur.h, then ranked */
};

/* Two-stage ranking: score = co-occurrence share + trending * trending
 * share + mf * the embeddings' dot product. */
struct rec_blend {
    float trending, mf;
};

struct rec_params {
    int k;
    int64_t refresh_interval_ms;
    int batch_users;
    int retrieval;                  /* enum rec_retrieval */
    struct cooc_read_params read;   /* REC_TWO_STAGE's retrieval */
    struct rec_blend blend;         /* and ranking */
    int rerank;                     /* candidates given the MF term */
    float learn_rate;               /* of the blend; 0: blend as configured */
};

extern const struct eddy_operator eddy_op_recommend;

#endif
