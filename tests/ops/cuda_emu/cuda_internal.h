/* cuda_internal.h (emulated): what cuda_sample.cu needs from src/backend/cuda/cuda_internal.h,
 * over emu_cuda.h instead of the CUDA runtime: the sampling entry points, PDL as no-ops and
 * cu_launch running the grid on the fiber scheduler. The sampling declarations are the real
 * backend/cuda/cuda_sample.h. */
#ifndef BRISK_CUDA_INTERNAL_H
#define BRISK_CUDA_INTERNAL_H

#include "emu_cuda.h"

extern "C" {
#include "backend/backend.h"
}

#include "backend/cuda/cuda_sample.h"

static inline void pdl_launch() {}
static inline void pdl_wait() {}

template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                    cudaStream_t st, Args... args) {
    (void)smem, (void)st;
    emu_run(grid, block, [&]() { k(args...); });
    return cudaSuccess;
}

#endif
