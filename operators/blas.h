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

/* Sets OpenBLAS's thread count for the next calls from their work in
 * floating-point operations: one thread below BLAS_PARALLEL_MIN_FLOPS, all
 * of them above. OpenBLAS wakes its workers for any but tiny products, and
 * after each call they spin in sched_yield for about 0.1 s waiting for more.
 * Live traffic flushes small batches every few ms, so the workers never
 * slept: at 20k events/s, 45% of eddy's CPU was that spinning, on the core
 * that librdkafka (and, on a shared box, the broker) needs. Below the
 * threshold one thread takes under about 1 ms here. */
#define BLAS_PARALLEL_MIN_FLOPS 1e8
void blas_threads_for(double flops);

#endif
