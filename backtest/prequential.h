/* prequential.h: test-then-train evaluation of top-K recommendations.
 *
 * For every positive event (user u, item i) whose item u has not interacted
 * with before, the replay asks eddy for u's current top-K (computed from the
 * live model before the event is trained on, items u already interacted with
 * excluded) and hands it here with preq_score(). This module scores that
 * list and, in the same call, the list of a popularity baseline: the K items
 * with the most interactions so far that u has not interacted with yet
 * (ties in an order fixed by the sequence of events), and the list of an
 * item-kNN baseline (backtest/knn.h: cosine over co-occurrence in the user's
 * last 30 positives), both excluding what u has interacted with. Every
 * event, positive or not, is then recorded with preq_observe() so the
 * baselines and the "already interacted" sets stay current; only positives
 * teach item-kNN.
 *
 * Metrics per scored event, with rank r (1-based) of i in a list, 0 if absent:
 *   hit  = r > 0            (HR@K is the mean)
 *   ndcg = 1 / log2(r + 1)   (0 if absent; one relevant item, so IDCG = 1)
 *   rr   = 1 / r            (0 if absent; MRR@K is the mean)
 * Coverage of a model: distinct items that appeared in its scored lists,
 * over distinct items seen in the log so far (at the end of the run).
 *
 * History buckets: each scored event also counts in the bucket of the
 * number of positives its user had before it: 0, 1-5, 6-20, more than 20
 * (PREQ_BUCKETS; preq_bucket_label() names them).
 *
 * Windows: every `window_events` scored events close a window, which keeps
 * its first and last event time, so "HR@10 over time" has an x axis in event
 * time whatever the log's span; the last window may be shorter.
 *
 * Everything is a pure function of the call sequence: deterministic. */
#ifndef EDDY_PREQUENTIAL_H
#define EDDY_PREQUENTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schemas/records.h"

struct preq_metrics {
    uint64_t events;            /* scored events */
    double hits, ndcg, rr;      /* sums over scored events */
};

struct preq_window {
    int64_t first_ms, last_ms;  /* event-time span of its scored events */
    struct preq_metrics eddy, pop, knn;
};

/* Scored events by the user's prior positives: 0, 1-5, 6-20, > 20. */
#define PREQ_BUCKETS 4

struct preq_bucket {
    uint64_t min_positives, max_positives; /* inclusive; UINT64_MAX: open */
    struct preq_metrics eddy, pop, knn;
};

/* "0", "1-5", "6-20", ">20"; NULL out of range. */
const char *preq_bucket_label(size_t b);

struct preq_summary {
    int k;
    struct preq_metrics eddy, pop;     /* overall */
    struct preq_metrics knn;           /* item-kNN, overall */
    uint64_t eddy_items_recommended;   /* distinct items in eddy's scored lists */
    uint64_t pop_items_recommended;
    uint64_t knn_items_recommended;
    int knn_history;                   /* KNN_HISTORY */
    struct preq_bucket buckets[PREQ_BUCKETS];
    uint64_t catalog_items;            /* distinct items seen in the log */
    uint64_t users;                    /* distinct users seen */
    uint64_t observed;                 /* events passed to preq_observe() */
    const struct preq_window *windows; /* borrowed from the preq; valid until preq_free() */
    size_t n_windows;
};

struct preq;

/* NULL on out of memory or bad arguments (k < 1, window_events < 1). */
struct preq *preq_new(int k, uint64_t window_events);
void preq_free(struct preq *p);

/* True when (user, item) is u's first interaction with i: only those are
 * scored (a repeat cannot be in a list that excludes what u has seen). */
bool preq_is_new(struct preq *p, struct eddy_str user, struct eddy_str item);

/* Scores one positive, new event at event time t_ms: eddy_top holds eddy's
 * current list for the user, best first (n may be 0 for an unknown user,
 * which then counts as a miss). Call it before preq_observe() of the same
 * event. */
void preq_score(struct preq *p, int64_t t_ms, struct eddy_str user, struct eddy_str item,
                const struct eddy_str *eddy_top, size_t n);

/* Records an interaction (any event type): the item's popularity count and
 * the user's interacted set; a positive one (any click type but VIEW, what
 * preq_score() scores) also teaches item-kNN and counts in the user's
 * history bucket. */
void preq_observe(struct preq *p, struct eddy_str user, struct eddy_str item, bool positive);

/* Overall and per-window figures so far; closes no window. */
void preq_summary(const struct preq *p, struct preq_summary *out);

#endif
