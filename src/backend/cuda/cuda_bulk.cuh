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
 * transaction bytes) and empty[s] (32 arrivals per consumer warp: ring_release); then the block
 * syncs. */
__device__ __forceinline__ void ring_init(uint64_t *full, uint64_t *empty, int stages,
                                          int consumer_warps) {
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; s++)
            mbar_init(&full[s], 1), mbar_init(&empty[s], consumer_warps * 32);
        mbar_init_fence();
    }
    __syncthreads();
}

/* A consumer warp is done with a stage: every lane arrives, each after its own reads of it. (One
 * lane arriving after __syncwarp is what CUTLASS-style rings do, but compute-sanitizer's racecheck
 * orders only a thread's own reads before its arrival: a 1B decode, whose rings wrap, reported
 * ~100K hazards between the producer's bulk copies and the consumers' reads that way, and none
 * with every lane arriving. Its cost on an H100, three interleaved rounds against the one-lane
 * arrival (round 24): 8B -0.65%, 1B within its spread. A named barrier instead (bar.arrive by the
 * consumers, bar.sync by the producer; branch named-release) left the ~100K hazards and read 8B
 * -0.4% against this. The batch GEMV: 8B batch 8 +0.5%, batch 64 the same (three rounds each).) */
__device__ __forceinline__ void ring_release(uint64_t *empty) {
    mbar_arrive(empty);
}

#endif
