/* cuda_ptx.cuh: the inline-PTX primitives of the bulk-copy pipeline (cuda_bulk.cuh) and the
 * tensor-core GEMVs (cuda_mma.cuh), alone in one header so that the CPU emulator
 * (tests/ops/cuda_emu/cuda_ptx.cuh, found first through -I) can give each its CPU semantics while
 * the files that use them compile unchanged. nvcc only. */
#ifndef BRISK_CUDA_PTX_CUH
#define BRISK_CUDA_PTX_CUH

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
/* mbarrier.test_wait.parity: whether the phase of that parity has completed (no wait). */
__device__ __forceinline__ bool mbar_test(uint64_t *b, uint32_t parity) {
#if P_SM90
    uint32_t done;
    asm volatile("{\n .reg .pred p;\n mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 " selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(smem_addr(b)), "r"(parity)
                 : "memory");
    return done != 0;
#else
    (void)b, (void)parity;
    return true;
#endif
}
/* A spinning thread's pause between tests. */
__device__ __forceinline__ void spin_pause() {
#if P_SM90
    __nanosleep(32);
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

/* Makes thread 0's mbarrier inits visible to the block (and the async proxy) before the block
 * syncs (ring_init). */
__device__ __forceinline__ void mbar_init_fence() {
#if P_SM90
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
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

__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    /* not volatile: no side effects, so independent MMAs may be scheduled around each other */
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else /* never launched: the mma layout is chosen only when the binary has sm_80+ code */
    (void)c, (void)a0, (void)a1, (void)a2, (void)a3, (void)b0, (void)b1;
#endif
}

__device__ __forceinline__ uint32_t lop_or(uint32_t v, uint32_t mask) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(v), "r"(mask), "r"(0x64006400u));
    return r; /* (v & mask) | 0x64006400 */
}

/* A half2 word of lop_or's output (1024 + c each) dequantized: (h - 1024) * s + b per half, the
 * subtraction exact (c and 1024 are halves), then one rounding. */
__device__ __forceinline__ uint32_t fold_scale(uint32_t h, uint32_t s, uint32_t b) {
    uint32_t r;
    asm("sub.rn.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(h), "r"(0x64006400u));
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(r), "r"(s), "r"(b));
    return r;
}

#endif
