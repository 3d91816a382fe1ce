/* cuda_mma.cuh: what the two tensor-core GEMV files share (cuda_gemv.cu: v3/v4 and the rest;
 * cuda_gemv_tma.cu: the persistent v7): scale decoding, the mma-layout matrix descriptor, the
 * m16n8k16 MMA and the nibble-to-half LOP3, and the SM count. nvcc only. */
#ifndef BRISK_CUDA_MMA_CUH
#define BRISK_CUDA_MMA_CUH

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

__device__ __forceinline__ void mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
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

__device__ __forceinline__ uint32_t h2_bits(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const uint32_t *)&h;
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
 * off or the shape has no such launch; the caller then uses v4. */
extern int cu_gemv_v7;
cudaError_t cu_gemv_tma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                        int n);

#endif
