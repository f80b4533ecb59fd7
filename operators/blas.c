/* blas.c: see blas.h. */
#include "operators/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Kernels OpenBLAS falls back to for a CPU model it does not recognise. */
static int is_fallback(const char *core)
{
    static const char *const generic[] = {"prescott", "core2", "katmai", "coppermine",
                                          "northwood", "banias", "unknown"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (core && !strcasecmp(core, generic[i]))
            return 1;
    return 0;
}

void blas_pick_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || !is_fallback(openblas_get_corename()))
        return;
    __builtin_cpu_init();
    const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                     : __builtin_cpu_supports("avx2")    ? "Haswell"
                                                         : NULL;
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1))
        return;
    execv("/proc/self/exe", argv); /* only returns on failure: carry on */
    unsetenv("OPENBLAS_CORETYPE");
}

void blas_threads_for(double flops)
{
    static int all, now;
    if (!all)
        all = now = openblas_get_num_threads();
    int want = flops < BLAS_PARALLEL_MIN_FLOPS ? 1 : all;
    if (want != now) /* cheap: the workers stay, only the count changes */
        openblas_set_num_threads(now = want);
}
