/* blas.h: OpenBLAS kernel choice.
 *
 * OpenBLAS picks its kernels from the CPU model when it is loaded. Under
 * hypervisors that report a model it does not know (this machine's
 * "Intel(R) Xeon(R) Processor"), it falls back to Prescott's SSE3 kernels:
 * sgemm for 128 users x 100k items x d=64 ran 3.3x slower here than with
 * its AVX-512 ones. The choice can only be made before the library loads,
 * through OPENBLAS_CORETYPE; so, when it is not set and the fallback was
 * taken on a CPU with AVX2 or AVX-512, the process re-executes itself once
 * with the variable set by the CPU's features. */
#ifndef EDDY_BLAS_H
#define EDDY_BLAS_H

/* Call first thing in main(); returns only if no re-execution happened (or
 * it failed, leaving the slow kernels). */
void blas_pick_kernels(char **argv);

#endif
