/* emu_cuda.h: just enough of the CUDA runtime and device intrinsics to run a .cu kernel file on the
 * CPU (x86-64): every block's threads are fibers on one OS thread, switched only at
 * __syncthreads and the warp intrinsics, resumed in a shuffled order each round so a missing
 * barrier shows up as a wrong or changing result; a barrier only part of a block (or warp) reaches
 * aborts as a deadlock. Blocks run one after another, in a shuffled order (any may be the last
 * to arrive), so __shared__ is a static. A development aid for kernels written without a GPU at
 * hand (tests/ops/cuda_emu/run.sh), not a simulator of timing or of the memory model. */
#ifndef BRISK_EMU_CUDA_H
#define BRISK_EMU_CUDA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__      static
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef void *cudaStream_t;
typedef enum cudaError { cudaSuccess = 0, cudaErrorInvalidValue = 1 } cudaError_t;

extern dim3 threadIdx, blockIdx, blockDim, gridDim;

/* The scheduler (emu_cuda.cpp). */
enum { EMU_BAR = 1, EMU_WARP = 2 };
void emu_wait(int kind);   /* this fiber waits for its block / warp */
uint64_t *emu_slots(void); /* one exchange slot per thread of the block */
void emu_run(dim3 grid, dim3 block, const std::function<void()> &body);

static inline void __syncthreads(void) {
    emu_wait(EMU_BAR);
}
static inline int __syncthreads_or(int p) {
    uint64_t *s = emu_slots();
    s[threadIdx.x] = p != 0;
    emu_wait(EMU_BAR);
    int r = 0;
    for (unsigned t = 0; t < blockDim.x; t++) r |= (int)s[t];
    emu_wait(EMU_BAR);
    return r;
}
static inline void __threadfence(void) {}

template <typename T> static inline T emu_exchange(T v, int src_lane) {
    uint64_t *s = emu_slots();
    const unsigned base = threadIdx.x & ~31u;
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    s[threadIdx.x] = b;
    emu_wait(EMU_WARP);
    T r;
    memcpy(&r, &s[base + (unsigned)src_lane], sizeof r);
    emu_wait(EMU_WARP);
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int o) {
    return emu_exchange(v, (int)(threadIdx.x & 31) ^ o);
}
template <typename T> static inline T __shfl_up_sync(unsigned, T v, int d) {
    const int lane = (int)(threadIdx.x & 31);
    return emu_exchange(v, lane >= d ? lane - d : lane);
}
template <typename T> static inline T __shfl_sync(unsigned, T v, int src) {
    return emu_exchange(v, src);
}
static inline unsigned __ballot_sync(unsigned, int p) {
    uint64_t *s = emu_slots();
    const unsigned base = threadIdx.x & ~31u;
    s[threadIdx.x] = p != 0;
    emu_wait(EMU_WARP);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; l++) r |= (unsigned)s[base + l] << l;
    emu_wait(EMU_WARP);
    return r;
}
static inline int __ffs(unsigned x) {
    return x ? __builtin_ctz(x) + 1 : 0;
}
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}

/* Fibers switch only at the waits above, so read-modify-write is atomic as written. */
template <typename T> static inline T atomicAdd(T *p, T v) {
    const T o = *p;
    *p = o + v;
    return o;
}
template <typename T> static inline T atomicAnd(T *p, T v) {
    const T o = *p;
    *p = o & v;
    return o;
}
template <typename T> static inline T atomicOr(T *p, T v) {
    const T o = *p;
    *p = o | v;
    return o;
}
template <typename T> static inline T atomicMin(T *p, T v) {
    const T o = *p;
    *p = v < o ? v : o;
    return o;
}
template <typename T> static inline T __ldcg(const T *p) {
    return *p;
}

static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int __float_as_int(float f) {
    int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* built with -ffp-contract=off: plain operations are the _rn intrinsics */
static inline float __fadd_rn(float a, float b) {
    return a + b;
}
static inline float __fsub_rn(float a, float b) {
    return a - b;
}
static inline float __fmul_rn(float a, float b) {
    return a * b;
}
static inline unsigned long long __double2ull_rn(double d) {
    return d <= 0 ? 0ull : (unsigned long long)nearbyint(d);
}
static inline int min(int a, int b) {
    return a < b ? a : b;
}
static inline int max(int a, int b) {
    return a > b ? a : b;
}

#endif
