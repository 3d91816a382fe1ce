/* cuda_tc.cuh: PTX pieces of the tensor-core attention kernels (cuda_fattn.cu: prefill,
 * cuda_attn.cu: the decode kernel's TC tiles): ldmatrix, 16-byte cp.async with zero fill, and
 * half2 packing (sm_80+; launchers pick these kernels only where the device code has them; the
 * MMA itself is mma16816 in cuda_ptx.cuh), and the decode kernel's tile (tc_attn_tile). nvcc
 * only. */
#ifndef BRISK_CUDA_TC_CUH
#define BRISK_CUDA_TC_CUH

#include "cuda_ptx.cuh"

#include <cuda_fp16.h>
#include <math.h>
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

/* One 32-position tile of the decode attention on tensor cores (cuda_attn.cu; bench/kvread.cu runs
 * the same code as its stand-in): S = q K^T over KS k16-steps, q's A fragments qf (the G heads in
 * rows g < G, the others zero) against the tile's K rows (ldmatrix, rows tld halves apart); MASK:
 * positions tb + 8j + 2tq + e at or past `end` out; the online softmax in the log2 domain (mr the
 * running max, lr this lane's columns' sum, to be summed over the quad); then o = o alpha + P V
 * over the ND n8-tiles of head_dim from the V rows (transposed ldmatrix). Row g of the MMA: lane
 * (g, tq). */
template <int KS, int ND, bool MASK>
__device__ __forceinline__ void tc_attn_tile(float (&o)[ND][4], float &mr, float &lr,
                                             const uint32_t (&qf)[KS][2], const __half *Kb,
                                             const __half *Vb, int tld, int lane, int tb, int end) {
    const int tq = lane & 3;
    float sc[4][4];
#pragma unroll
    for (int j = 0; j < 4; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; kk += 2)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            uint32_t b[4];
            tc_ldm4<false>(b, Kb + (j * 8 + (lane & 7)) * tld + kk * 16 + (lane >> 3) * 8);
            mma16816(sc[j], qf[kk][0], 0u, qf[kk][1], 0u, b[0], b[1]);
            mma16816(sc[j], qf[kk + 1][0], 0u, qf[kk + 1][1], 0u, b[2], b[3]);
        }
    /* row g: position tb + 8j + 2tq + e (e = 0, 1) */
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            if (MASK && tb + 8 * j + 2 * tq + e >= end) sc[j][e] = -INFINITY;
            mx = fmaxf(mx, sc[j][e]);
        }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(mr, mx); /* finite: a tile holds at least one position */
    const float alpha = exp2f(mr - mn);
    mr = mn;
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        sc[j][0] = exp2f(sc[j][0] - mn), sc[j][1] = exp2f(sc[j][1] - mn);
        sum += sc[j][0] + sc[j][1];
    }
    lr = fmaf(lr, alpha, sum); /* this lane's columns; summed over the quad at the end */
#pragma unroll
    for (int jd = 0; jd < ND; jd++) o[jd][0] *= alpha, o[jd][1] *= alpha;
#pragma unroll
    for (int k2 = 0; k2 < 2; k2++) {
        const uint32_t p0 = tc_pack(sc[2 * k2][0], sc[2 * k2][1]);
        const uint32_t p2 = tc_pack(sc[2 * k2 + 1][0], sc[2 * k2 + 1][1]);
#pragma unroll
        for (int jd = 0; jd < ND; jd += 2) {
            uint32_t b[4];
            tc_ldm4<true>(b, Vb + (k2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * tld + jd * 8 +
                                 (lane >> 4) * 8);
            mma16816(o[jd], p0, 0u, p2, 0u, b[0], b[1]); /* A rows 8-15 zero */
            mma16816(o[jd + 1], p0, 0u, p2, 0u, b[2], b[3]);
        }
    }
}

#endif
