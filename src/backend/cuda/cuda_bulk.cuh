/* cuda_bulk.cuh: the Hopper bulk-copy pipeline pieces the persistent GEMVs share
 * (cuda_gemv_tma.cu: one-token steps, cuda_gemv_batch.cu: 2-64 tokens): shared-memory mbarriers
 * with transaction counts and cp.async.bulk global -> shared copies. nvcc only. */
#ifndef BRISK_CUDA_BULK_CUH
#define BRISK_CUDA_BULK_CUH

#include <stdint.h>

/* The Hopper instructions below (mbarrier transactions, bulk copies, cache policies) exist in
 * sm_90 code only; builds for older cards compile them out (cu_gemv_tma launches nothing there). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define P_SM90 1
#else
#define P_SM90 0
#endif

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void mbar_init(uint64_t *b, int count) {
#if P_SM90
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(b)), "r"(count)
                 : "memory");
#else
    (void)b, (void)count;
#endif
}
__device__ __forceinline__ void mbar_expect(uint64_t *b, uint32_t bytes) {
#if P_SM90
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)),
                 "r"(bytes)
                 : "memory");
#else
    (void)b, (void)bytes;
#endif
}
__device__ __forceinline__ void mbar_arrive(uint64_t *b) {
#if P_SM90
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(b)) : "memory");
#else
    (void)b;
#endif
}
__device__ __forceinline__ void mbar_wait(uint64_t *b, uint32_t parity) {
#if P_SM90
    uint32_t done;
    do {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(smem_addr(b)), "r"(parity)
                     : "memory");
    } while (!done);
#else
    (void)b, (void)parity;
#endif
}
/* Global -> shared bulk copy (16-byte aligned, a multiple of 16 bytes) completing on barrier b;
 * weights are read once per step: evict them first from L2. */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *b,
                                          uint64_t policy) {
#if P_SM90
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                 " [%0], [%1], %2, [%3], %4;" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(b)), "l"(policy)
                 : "memory");
#else
    (void)dst, (void)src, (void)bytes, (void)b, (void)policy;
#endif
}

/* Global -> L2 prefetch of bytes at src (16-byte aligned, a multiple of 16 bytes). */
__device__ __forceinline__ void bulk_prefetch_l2(const void *src, uint32_t bytes) {
#if P_SM90
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src), "r"(bytes) : "memory");
#else
    (void)src, (void)bytes;
#endif
}

/* Thread 0 initialises a ring's barriers: full[s] (one arrival, the producer's, plus the
 * transaction bytes) and empty[s] (one arrival per consumer warp); then the block syncs. */
__device__ __forceinline__ void ring_init(uint64_t *full, uint64_t *empty, int stages,
                                          int consumers) {
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; s++) mbar_init(&full[s], 1), mbar_init(&empty[s], consumers);
#if P_SM90
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
    }
    __syncthreads();
}

/* Named barrier `id` over `threads` threads (the consumer warps of a warp-specialised block). */
__device__ __forceinline__ void named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/* An L2 policy for data read once per step (the weights): evict first. */
__device__ __forceinline__ uint64_t policy_evict_first() {
    uint64_t pol = 0;
#if P_SM90
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
#endif
    return pol;
}

#endif
