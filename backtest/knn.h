/* knn.h: the classic item-kNN baseline of the prequential evaluation.
 *
 * Cosine over co-occurrence in users' recent positives, exact and
 * unbounded (docs/backtest.md, "item-kNN"):
 *   n[i]    = positives on item i so far;
 *   c[i][j] = times a positive on j arrived while i was in that user's last
 *             KNN_HISTORY positive items, or the other way round (both are
 *             incremented; i == j never is);
 *   score(u, j) = sum over i in u's last KNN_HISTORY of
 *                 c[i][j] / sqrt(n[i] * n[j]).
 * A list holds the items with a score > 0 the caller does not skip, best
 * first, ties to the lower item index; it is shorter than k when fewer
 * items score. Users and items are the caller's dense indexes (0, 1, ...).
 *
 * A pure function of the call sequence: deterministic. */
#ifndef EDDY_KNN_H
#define EDDY_KNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KNN_HISTORY 30

struct knn;

/* True when the item must not be in the list (e.g. the user has seen it). */
typedef bool (*knn_skip_fn)(void *ctx, uint32_t item);

struct knn *knn_new(void);
void knn_free(struct knn *k);

/* Learns one positive of user u on item i. False on out of memory (the
 * model then misses part of that event). */
bool knn_observe(struct knn *k, uint32_t u, uint32_t i);

/* Writes u's top (at most n) items to out, best first; returns how many. */
size_t knn_top(struct knn *k, uint32_t u, size_t n, knn_skip_fn skip, void *ctx, uint32_t *out);

/* Positives learnt for u so far (all of them, not only the last
 * KNN_HISTORY); 0 for a user never seen. */
uint64_t knn_positives(const struct knn *k, uint32_t u);

#endif
