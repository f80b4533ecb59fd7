/* grow.h: the backtest's one helper for arrays that grow as ids appear. */
#ifndef EDDY_BACKTEST_GROW_H
#define EDDY_BACKTEST_GROW_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Makes *p (of *cap elements of elem bytes) hold at least need, doubling,
 * with the new elements zeroed: false, *p unchanged, when out of memory. */
static inline bool array_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    memset((char *)q + *cap * elem, 0, (n - *cap) * elem);
    *p = q;
    *cap = n;
    return true;
}

#endif
