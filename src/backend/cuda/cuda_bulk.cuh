/* cuda_bulk.cuh: the Hopper bulk-copy pipeline pieces the persistent GEMVs share
 * (cuda_gemv_tma.cu: one-token steps, cuda_gemv_batch.cu: 2-64 tokens): shared-memory mbarriers
 * with transaction counts and cp.async.bulk global -> shared copies. nvcc only. */
#ifndef BRISK_CUDA_BULK_CUH
#define BRISK_CUDA_BULK_CUH

#include "cuda_ptx.cuh"

#include <stdint.h>

/* Share `part` of `parts` of each range of pf (a cu_pf, cuda_desc.h: a later kernel's weights)
 * prefetched into L2 by lanes lane, lane + nl, ... in pieces of at most `piece` bytes. */
template <class PF>
__device__ __forceinline__ void pf_issue(const PF &pf, uint32_t part, uint32_t parts, uint32_t lane,
                                         uint32_t nl, uint32_t piece) {
    for (int i = 0; i < pf.n; i++) {
        const uint32_t share = ((pf.bytes[i] + parts - 1) / parts + 15) & ~15u;
        const uint32_t lo = part * share, hi = min(lo + share, pf.bytes[i]);
        for (uint32_t o = lo + lane * piece; o < hi; o += nl * piece)
            bulk_prefetch_l2(pf.p[i] + o, min(piece, hi - o));
    }
}

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
