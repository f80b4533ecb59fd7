/* common.h: what several operators need alike: allocation that treats out
 * of memory as fatal (as the state does: an operator cannot drop an event's
 * effect and go on), and when an event-time TTL's periodic sweep is due. */
#ifndef EDDY_OPERATORS_COMMON_H
#define EDDY_OPERATORS_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "eddy: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "eddy: out of memory (%zu x %zu bytes)\n", n, size);
        abort();
    }
    return p;
}

/* Swaps two 16-byte values, each moved as one load and one store. The
 * partition loop below reads back what its previous step stored; moved
 * field by field, a wide load met several narrower stores, which the CPU
 * cannot forward, and every step stalled (half of a partition's time). */
static inline void swap16(void *a, void *b)
{
    typedef uint32_t v16 __attribute__((vector_size(16)));
    v16 x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    memcpy(a, &y, sizeof y);
    memcpy(b, &x, sizeof x);
}

/* 1 if a ranks before b, else 0, computed without a branch. */
typedef size_t (*rank_before_fn)(const void *a, const void *b);

/* Moves the best k of n 16-byte values at base to the front, in no
 * particular order (quickselect: what follows needs the set, not a sorted
 * list). before must be a total order, so that the set does not depend on
 * the input's order. Lomuto's partition, storing every step and advancing
 * by the comparison's bit: comparisons of scores are coin flips to a branch
 * predictor, and branching partitions were 15% of a replay. Inlined, so
 * that before is a direct call. */
static inline __attribute__((always_inline)) void select16(void *base, size_t n, size_t k,
                                                           rank_before_fn before)
{
    unsigned char *c = base, pivot[16];
    size_t lo = 0, hi = n; /* the k-th best is in [lo, hi) */
    if (k == 0 || k >= n)
        return;
    while (hi - lo > 1) {
        size_t last = hi - 1, store = lo;
        memcpy(pivot, c + 16 * (lo + (hi - lo) / 2), 16);
        memcpy(c + 16 * (lo + (hi - lo) / 2), c + 16 * last, 16);
        for (size_t i = lo; i < last; i++) {
            const size_t b = before(c + 16 * i, pivot);
            swap16(c + 16 * i, c + 16 * store);
            store += b;
        }
        /* [lo, store) rank before the pivot, (store, hi) do not */
        memcpy(c + 16 * last, c + 16 * store, 16);
        memcpy(c + 16 * store, pivot, 16);
        if (store == k - 1)
            return;
        if (store > k - 1)
            hi = store;
        else
            lo = store + 1;
    }
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* A TTL's sweep runs when an operator's clock (the latest event time it
 * applied) moves from `before` to `now` across a multiple of ttl/4: event
 * time alone decides, so where batches or restarts fall does not matter,
 * and a value lives at most 1.25 ttl past its last touch. True if one is
 * due, with *cutoff the time before which a value is expired (that
 * multiple minus ttl). */
static inline bool ttl_sweep_due(int64_t before, int64_t now, int64_t ttl_ms, int64_t *cutoff)
{
    const int64_t every = ttl_ms / 4 > 0 ? ttl_ms / 4 : 1;
    if (ttl_ms <= 0 || before == INT64_MIN || now <= before ||
        floor_div(now, every) == floor_div(before, every))
        return false;
    return !__builtin_sub_overflow(floor_div(now, every) * every, ttl_ms, cutoff);
}

#endif
