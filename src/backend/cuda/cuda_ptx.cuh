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

/* wgmma (sm_90a only: compute_90 PTX has no wgmma, so other builds compile these out and
 * cu_wgmma_ok, from the probe in cuda_probe.cu, keeps such code from being launched). One warpgroup
 * (4 consecutive warps, the first's index a multiple of 4) computes D [64 x N] += A [64 x 16] B
 * [16 x N] with A in registers: warp w of the group supplies rows 16w.. in mma.m16n8k16's A
 * fragment (a[0] row g k 2t, a[1] row g + 8, a[2] row g k 2t + 8, a[3] row g + 8 k 2t + 8) and
 * receives the same rows of D in the m16n8 C layout repeated over N / 8 column blocks (d[4j..]).
 * B is in shared memory, K-major without swizzle: 8 x 8 core matrices of 8 rows (n) x 16 bytes (8
 * k), element (k, n) at b + (n / 8) * sbo + (k / 8) * lbo + (n % 8) * 16 + (k % 8) * 2. Async:
 * wg_fence before the first wgmma after A or D were written by other instructions, wg_commit
 * after a batch, wg_wait<0> before A, D or B are touched again. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define P_WGMMA 1
#else
#define P_WGMMA 0
#endif
__device__ __forceinline__ void wg_fence() {
#if P_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#if P_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wg_wait() {
#if P_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
/* B's descriptor: the address field (bits 0-13, address / 16) in lo with lbo, sbo in hi, so that
 * wg_boff moves it with one 32-bit add (a shared-memory address + offset stays below 256 KB: no
 * carry out of the field). Made once a stage, not per wgmma: the 4 descriptors of a chunk cost ~20
 * uniform instructions a unit when each was built from a pointer. */
struct wg_bd {
    uint32_t lo, hi;
};
__device__ __forceinline__ wg_bd wg_bdesc(const void *b, uint32_t lbo, uint32_t sbo) {
    return {((smem_addr(b) & 0x3FFFF) >> 4) | (lbo >> 4) << 16, sbo >> 4};
}
__device__ __forceinline__ wg_bd wg_boff(wg_bd d, uint32_t bytes) {
    return {d.lo + (bytes >> 4), d.hi};
}
/* d (N / 2 floats a thread) += A B, N = 32 or 64 */
template <int N>
__device__ __forceinline__ void wgmma_rs(float *d, const uint32_t (&a)[4], wg_bd bd) {
#if P_WGMMA
    const uint64_t desc = (uint64_t)bd.hi << 32 | bd.lo;
    if constexpr (N == 32)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
                     "{%16,%17,%18,%19}, %20, p, 1, 1, 0;\n"
                     "}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                       "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                       "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1)
                     : "memory");
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
                     "{%32,%33,%34,%35}, %36, p, 1, 1, 0;\n"
                     "}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                       "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                       "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                       "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                       "+f"(d[30]), "+f"(d[31])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1)
                     : "memory");
#else
    (void)d, (void)a, (void)bd;
#endif
}

#endif
