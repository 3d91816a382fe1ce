/* cuda_internal.h (emulated): what the kernel files run here (cuda_sample.cu, cuda_gemv_tma.cu,
 * cuda_gemv_batch.cu) need from src/backend/cuda/cuda_internal.h, over emu_cuda.h instead of the
 * CUDA runtime: the sampling entry points (the real backend/cuda/cuda_sample.h), the device
 * descriptors (the real backend/cuda/cuda_desc.h), the batched GEMV's launcher, PDL and the
 * timeline as no-ops, and cu_launch running the grid on the fiber scheduler with its dynamic
 * shared memory. */
#ifndef BRISK_CUDA_INTERNAL_H
#define BRISK_CUDA_INTERNAL_H

#include "emu_cuda.h"

extern "C" {
#include "backend/backend.h"
}

#include "backend/cuda/cuda_desc.h"
#include "backend/cuda/cuda_sample.h"

static inline void pdl_launch() {}
static inline void pdl_wait() {}

/* the timeline (a measuring aid) is off here: no slot, no stamps */
static inline uint64_t gtime() {
    return 0;
}
static inline void tl_span(unsigned long long *tl, int k, uint64_t t0) {
    (void)tl, (void)k, (void)t0;
}
static inline void tl_mark(unsigned long long *tl, int k, bool first_last) {
    (void)tl, (void)k, (void)first_last;
}
static inline unsigned long long *cu_tl_take(const char *kind) {
    (void)kind;
    return NULL;
}

extern int cu_pdl;
extern int cu_sm90;     /* the test sets it: the sm_90 kernels are the ones emulated */
extern int cu_wgmma_ok; /* likewise: the wgmma layouts are emulated (emu_wgmma) */

/* The batched GEMV's launcher and scratch sizes (the real header's declarations) */
size_t cu_gemv_batch_xq_bytes(int64_t max_cols);
size_t cu_gemv_batch_xs_floats(int64_t max_cols);
cudaError_t cu_gemv_batch(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                          int n, const float *nw, float eps, const cu_batch_scratch *sc);

/* An H100's limit of dynamic shared memory per block (227 KB): a launch over it fails. */
static inline cudaError_t cu_smem_optin(const void *k, size_t smem) {
    (void)k;
    return smem <= 227 * 1024 ? cudaSuccess : cudaErrorInvalidValue;
}

template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                    cudaStream_t st, Args... args) {
    (void)st;
    if (smem > 227 * 1024) return cudaErrorInvalidValue;
    emu_run(
        grid, block, [&]() { k(args...); }, smem);
    return cudaSuccess;
}

#endif
