/* cuda_internal.h (emulated): what cuda_sample.cu needs from src/backend/cuda/cuda_internal.h,
 * over emu_cuda.h instead of the CUDA runtime: the sampling entry points, PDL as no-ops and
 * cu_launch running the grid on the fiber scheduler. Keep the declarations in step with the real
 * header. */
#ifndef BRISK_CUDA_INTERNAL_H
#define BRISK_CUDA_INTERNAL_H

#include "emu_cuda.h"

extern "C" {
#include "backend/backend.h"
}

typedef struct cu_sample_in {
    brisk_sample_params p;
    double u;
} cu_sample_in;
typedef struct cu_sample_out {
    int32_t id;
    float lp;
} cu_sample_out;
size_t cu_sample_bytes(int cap);
size_t cu_sample_out_offset(int cap);
cudaError_t cu_sample(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap);

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
