/* vecmath.h: the dot product every operator uses where a result is stored
 * or emitted. Eight independent partial sums in a fixed order: the same bits
 * on every host (unlike OpenBLAS, whose kernels differ by CPU), and not one
 * long dependency chain. */
#ifndef EDDY_VECMATH_H
#define EDDY_VECMATH_H

static inline float dot_fixed(const float *a, const float *b, int n)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        acc[i & 7] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#endif
