/* cuda_tc.cuh: PTX pieces of the tensor-core attention kernels (cuda_fattn.cu: prefill,
 * cuda_attn.cu: the decode kernel's TC tiles): ldmatrix, 16-byte cp.async with zero fill, and
 * half2 packing (sm_80+; launchers pick these kernels only where the device code has them; the
 * MMA itself is mma16816 in cuda_mma.cuh). nvcc only. */
#ifndef BRISK_CUDA_TC_CUH
#define BRISK_CUDA_TC_CUH

#include <cuda_fp16.h>
#include <stdint.h>

/* Four 8x8 half matrices (TR: transposed); lane l gives the row address of matrix l/8, row l%8. */
template <bool TR> __device__ __forceinline__ void tc_ldm4(uint32_t (&r)[4], const __half *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    if constexpr (TR)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(s));
#else
    (void)p, r[0] = r[1] = r[2] = r[3] = 0;
#endif
}
__device__ __forceinline__ void tc_cp16(__half *dst, const __half *src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(ok ? 16 : 0)
                 : "memory");
#else
    (void)dst, (void)src, (void)ok;
#endif
}
__device__ __forceinline__ void tc_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void tc_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ uint32_t tc_pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

#endif
