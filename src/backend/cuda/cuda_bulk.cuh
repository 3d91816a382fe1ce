/* cuda_bulk.cuh: the Hopper bulk-copy pipeline pieces the persistent GEMVs share
 * (cuda_gemv_tma.cu: one-token steps, cuda_gemv_batch.cu: 2-64 tokens): shared-memory mbarriers
 * with transaction counts and cp.async.bulk global -> shared copies. nvcc only. */
#ifndef BRISK_CUDA_BULK_CUH
#define BRISK_CUDA_BULK_CUH

#include "cuda_ptx.cuh"

#include <stdint.h>

/* Thread 0 initialises a ring's barriers: full[s] (one arrival, the producer's, plus the
 * transaction bytes) and empty[s] (one arrival per consumer warp); then the block syncs. */
__device__ __forceinline__ void ring_init(uint64_t *full, uint64_t *empty, int stages,
                                          int consumers) {
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; s++) mbar_init(&full[s], 1), mbar_init(&empty[s], consumers);
        mbar_init_fence();
    }
    __syncthreads();
}

#endif
