/* cuda_mma.cuh: what the two tensor-core GEMV files share (cuda_gemv.cu: v3/v4 and the rest;
 * cuda_gemv_tma.cu: the persistent v7): scale decoding, the mma-layout matrix descriptor, the
 * per-chunk math over the m16n8k16 MMA and the nibble-to-half LOP3 (both in cuda_ptx.cuh), and the
 * SM count. nvcc only. */
#ifndef BRISK_CUDA_MMA_CUH
#define BRISK_CUDA_MMA_CUH

#include "cuda_bulk.cuh"
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

extern "C" {
#include "backend/backend.h"
}

__device__ __forceinline__ float bf16_bits(uint32_t h) {
    return __uint_as_float(h << 16);
}
__device__ __forceinline__ float f16_bits(uint32_t h) {
    return __half2float(__ushort_as_half((unsigned short)h));
}

template <int ST> struct sb_raw { typedef uint32_t T; };
template <> struct sb_raw<BRISK_W_F32> { typedef uint2 T; };

__device__ __forceinline__ float2 sb_dec16(uint32_t p, int st) {
    return st == BRISK_W_BF16 ? make_float2(bf16_bits(p & 0xffff), bf16_bits(p >> 16))
                              : make_float2(f16_bits(p & 0xffff), f16_bits(p >> 16));
}
template <int ST> __device__ __forceinline__ float2 sb_dec(uint32_t p) {
    return sb_dec16(p, ST);
}
template <int ST> __device__ __forceinline__ float2 sb_dec(uint2 p) {
    return make_float2(__uint_as_float(p.x), __uint_as_float(p.y));
}

/* One matrix of a tensor-core GEMV launch (the mma layout: 16-row tiles of 64-column chunks). */
struct mma_mat_d {
    const uint8_t *w;
    const void *sb;
    const float *bias;
    float *y;
    int rows, tiles, blocks;
    int64_t ystride;
};

__device__ __forceinline__ uint32_t h2_bits(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
}

/* The per-chunk math of the tensor-core GEMVs (v4 in cuda_gemv.cu, v7 in cuda_gemv_tma.cu). A chunk
 * is 64 columns of a 16-row tile: 4 k-steps of m16n8k16, the MMA's 8 columns are tokens. bx0/bx1:
 * the lane's B fragments (x as half) of the 4 k-steps. */

/* X = the chunk's sums of x per token (an all-ones A operand: exact half products, f32 sums). */
__device__ __forceinline__ void mma_chunk_xsum(float (&X)[4], const uint32_t (&bx0)[4],
                                               const uint32_t (&bx1)[4]) {
    X[0] = X[1] = X[2] = X[3] = 0.f;
#pragma unroll
    for (int s = 0; s < 4; s++)
        mma16816(X, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, bx0[s], bx1[s]);
}

/* The lane's A fragments of a chunk (4 k-steps x 4 registers): the codes q (nibbles to half
 * 1024 + q by LOP3, rows g+8 as 1024 + 16q). Decoded once, they serve every token group. */
__device__ __forceinline__ void mma_chunk_decode(uint32_t (&A)[4][4], const uint4 &q) {
#pragma unroll
    for (int s = 0; s < 4; s++) {
        const uint32_t w = s == 0 ? q.x : s == 1 ? q.y : s == 2 ? q.z : q.w;
        const uint32_t w8 = w >> 8;
        A[s][0] = lop_or(w, 0x000F000Fu), A[s][1] = lop_or(w, 0x00F000F0u);
        A[s][2] = lop_or(w8, 0x000F000Fu), A[s][3] = lop_or(w8, 0x00F000F0u);
    }
}

/* acc += the chunk's products C (A times x: 4 k-steps of MMA into zero) with the group's
 * (scale, bias) r0 of row g and r1 of row g + 8 applied in f32: y += s*C + (b - 1024 s)*X
 * (rows g+8: s/16, b - 64 s). */
template <int ST>
__device__ __forceinline__ void mma_chunk_scale(float (&acc)[4], const float (&C)[4],
                                                typename sb_raw<ST>::T r0,
                                                typename sb_raw<ST>::T r1, const float (&X)[4]) {
    const float2 p0 = sb_dec<ST>(r0), p1 = sb_dec<ST>(r1);
    const float bb0 = fmaf(-1024.f, p0.x, p0.y), sc1 = 0.0625f * p1.x;
    const float bb1 = fmaf(-64.f, p1.x, p1.y);
    acc[0] = fmaf(p0.x, C[0], fmaf(bb0, X[0], acc[0]));
    acc[1] = fmaf(p0.x, C[1], fmaf(bb0, X[1], acc[1]));
    acc[2] = fmaf(sc1, C[2], fmaf(bb1, X[2], acc[2]));
    acc[3] = fmaf(sc1, C[3], fmaf(bb1, X[3], acc[3]));
}

/* acc (rows g, g+8 x tokens 2t, 2t+1) += the decoded chunk A times x, scaled as above. */
template <int ST>
__device__ __forceinline__ void
mma_chunk_acc_dec(float (&acc)[4], const uint32_t (&A)[4][4], typename sb_raw<ST>::T r0,
                  typename sb_raw<ST>::T r1, const uint32_t (&bx0)[4], const uint32_t (&bx1)[4],
                  const float (&X)[4]) {
    float C[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int s = 0; s < 4; s++) mma16816(C, A[s][0], A[s][1], A[s][2], A[s][3], bx0[s], bx1[s]);
    mma_chunk_scale<ST>(acc, C, r0, r1, X);
}

/* The same from the raw codes (one token group). */
template <int ST>
__device__ __forceinline__ void
mma_chunk_acc(float (&acc)[4], const uint4 &q, typename sb_raw<ST>::T r0, typename sb_raw<ST>::T r1,
              const uint32_t (&bx0)[4], const uint32_t (&bx1)[4], const float (&X)[4]) {
    uint32_t A[4][4];
    mma_chunk_decode(A, q);
    mma_chunk_acc_dec<ST>(acc, A, r0, r1, bx0, bx1, X);
}

/* A tile's slice of K (chunks [c0, c0 + nc), groups of 64 << d columns) in the mma layout: its
 * codes are nc * 512 contiguous bytes and its (scale, bias) pairs one run over the groups the
 * slice touches. tile_slice_bytes: what bulk_tile_slice copies (a barrier's transaction count). */
template <int ST> __device__ __forceinline__ uint32_t tile_slice_bytes(int c0, int nc, int d) {
    const int g0 = c0 >> d, gps = ((c0 + nc - 1) >> d) - g0 + 1;
    return nc * 512 + gps * 16 * (int)sizeof(typename sb_raw<ST>::T);
}
/* Bulk copies of that slice of matrix M's tile to codes and pairs (shared memory), completing on
 * barrier bar; nch = chunks per row. */
template <int ST>
__device__ __forceinline__ void bulk_tile_slice(uint8_t *codes, uint8_t *pairs, const mma_mat_d &M,
                                                int tile, int nch, int c0, int nc, int d,
                                                uint64_t *bar, uint64_t pol) {
    typedef typename sb_raw<ST>::T SBT;
    const int g0 = c0 >> d, gps = ((c0 + nc - 1) >> d) - g0 + 1;
    bulk_copy(codes, M.w + ((int64_t)tile * nch + c0) * 512, nc * 512, bar, pol);
    bulk_copy(pairs, (const SBT *)M.sb + mma_sb_index((int64_t)tile * 16, g0, nch >> d),
              gps * 16 * (int)sizeof(SBT), bar, pol);
}

/* ss summed over the NT threads t = 0..NT-1 (whole warps) that call it: each warp's by shuffles,
 * then the warps' sums in a fixed order through red[NT / 32], so every caller gets the same
 * value; sync: the barrier of those threads. */
template <int NT, class Sync>
__device__ __forceinline__ float block_sum(float ss, int t, float *red, Sync sync) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((t & 31) == 0) red[t >> 5] = ss;
    sync();
    ss = 0.f;
#pragma unroll
    for (int w = 0; w < NT / 32; w++) ss += red[w];
    return ss;
}

/* The sum of squares of float4 v, added to ss in a fixed order. */
__device__ __forceinline__ float sq4(float4 v, float ss) {
    return fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, ss))));
}

/* rsqrt(mean(x[0..K)^2) + eps), the RMSNorm scale, computed by the NT threads that call it
 * (block_sum): float4 sums per thread, then over the threads. */
template <int NT, class Sync>
__device__ __forceinline__ float rms_scale(const float *x, int K, float eps, int t, float *red,
                                           Sync sync) {
    float ss = 0.f;
    for (int c = t * 4; c < K; c += NT * 4) ss = sq4(__ldg((const float4 *)(x + c)), ss);
    return rsqrtf(block_sum<NT>(ss, t, red, sync) / (float)K + eps);
}

/* SMs of the current device (132 when it cannot be read), read once. */
static inline int sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0, v = 0;
        cudaGetDevice(&dev);
        n = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && v > 0
                ? v
                : 132;
    }
    return n;
}

/* One block per SM of a persistent kernel k with `smem` bytes of dynamic shared memory. */
template <typename A>
static cudaError_t launch_persistent(void (*k)(A), int smem, int threads, cudaStream_t st,
                                     const A &a) {
    const cudaError_t e = cu_smem_optin((const void *)k, (size_t)smem);
    if (e != cudaSuccess) return e;
    return cu_launch(k, dim3(sm_count()), dim3(threads), (size_t)smem, st, a);
}

/* The (scale, bias) pairs of rows g and g + 8 of a tile for one group: p points at row g's pair
 * in the tile-major layout (mma_sb_index), which row g + 8's follows. One 8-byte load (16 for
 * f32). G: global (__ldg) or any generic pointer (shared memory). */
template <int ST, bool G = true>
__device__ __forceinline__ void ld_pair2(const typename sb_raw<ST>::T *p, typename sb_raw<ST>::T &a,
                                         typename sb_raw<ST>::T &b) {
    if constexpr (ST == BRISK_W_F32) {
        const uint4 v = G ? __ldg((const uint4 *)p) : *(const uint4 *)p;
        a = make_uint2(v.x, v.y), b = make_uint2(v.z, v.w);
    } else {
        const uint2 v = G ? __ldg((const uint2 *)p) : *(const uint2 *)p;
        a = v.x, b = v.y;
    }
}

/* The persistent bulk-copy GEMV (cuda_gemv_tma.cu) for one-token steps over fast == 2 weights
 * (cu_gemv_v7, on unless env BRISK_CUDA_GEMV=4): cudaErrorNotSupported (nothing launched) when
 * off or the shape has no such launch; the caller then uses v4. nw: the RMSNorm of x (weight nw,
 * eps) folded into its staging of x. xq (with no nw): x as half, the same values rounded to
 * nearest (a SwiGLU launch's m[0].yq), read instead of x: half the bytes every block stages.
 * With SwiGLU, m[0].yq (when set) receives the output as half too. */
extern int cu_gemv_v7;
cudaError_t cu_gemv_tma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                        int n, const float *nw = NULL, float eps = 0.f, const cu_pf *pf = NULL,
                        const void *xq = NULL);
/* Whether v7 takes one-token matmuls of weight w (its shape and the loaded code). */
bool cu_gemv_tma_takes(const cu_weight *w);

#endif
