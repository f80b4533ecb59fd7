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
