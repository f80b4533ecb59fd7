/* bench.h: what every `make bench` program needs: a clock, removal of its
 * temporary trees, and the median of its runs. */
#ifndef EDDY_BENCH_H
#define EDDY_BENCH_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it. */
static inline void remove_tree(const char *dir)
{
    nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int bench_by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static inline double median_of(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_by_value);
    return v[n / 2];
}

#endif
