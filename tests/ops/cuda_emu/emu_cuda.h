/* emu_cuda.h: just enough of the CUDA runtime and device intrinsics to run a .cu kernel file on the
 * CPU (x86-64): every block's threads are fibers on one OS thread, switched only at
 * __syncthreads and the warp intrinsics, resumed in a shuffled order each round so a missing
 * barrier shows up as a wrong or changing result. Each barrier must be reached by every thread of
 * the block, at the same call (source line) and as the same n-th barrier of each thread, and each
 * *_sync warp intrinsic by all 32 lanes of the warp together, with a full mask: a thread that has
 * returned, a lane on another branch or at another intrinsic aborts the run with the line (on a
 * GPU that is undefined; on an H100, at times, "an illegal instruction"). Blocks run one after
 * another, in a shuffled order (any may be the last to arrive), so __shared__ is a static; the
 * dynamic shared memory of a launch is one buffer, random bytes before each block. A thread that
 * spins (an mbarrier try_wait loop: cuda_ptx.cuh) yields to the next round; the run aborts as a
 * hang when only such spinning is left for many rounds. Named barriers (bar.sync id, n) release
 * when n threads wait at the same one. A development aid for kernels written without a GPU at hand
 * (tests/ops/cuda_emu/run.sh), not a simulator of timing or of the memory model. */
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
/* every __shared__ variable in one section (a function template's too: emu_shared.ld), which
 * emu_run fills with random bytes before each block (a GPU's shared memory holds whatever ran there
 * before): a read of shared memory no thread of the block wrote gives a wrong or changing result */
#define __shared__ static __attribute__((section("emu_shared")))
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))

/* The vector types, aligned as CUDA's (a uint4 load of an unaligned address is a GPU fault, here
 * at least UB the sanitizers know). */
struct __align__(8) float2 {
    float x, y;
};
struct __align__(16) float4 {
    float x, y, z, w;
};
struct __align__(8) uint2 {
    unsigned x, y;
};
struct __align__(16) uint4 {
    unsigned x, y, z, w;
};
static inline float2 make_float2(float x, float y) {
    return float2{x, y};
}
static inline float4 make_float4(float x, float y, float z, float w) {
    return float4{x, y, z, w};
}
static inline uint2 make_uint2(unsigned x, unsigned y) {
    return uint2{x, y};
}
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    return uint4{x, y, z, w};
}

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef void *cudaStream_t;
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorNotSupported = 801
} cudaError_t;
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
/* Device 0, whose SM count is env EMU_SMS (default 7: an odd count, so work splits unevenly over
 * the blocks of a persistent kernel). */
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev);

extern dim3 threadIdx, blockIdx, blockDim, gridDim;

/* The scheduler (emu_cuda.cpp). */
enum { EMU_BAR = 1, EMU_WARP = 2, EMU_YIELD = 3, EMU_NAMED = 4 };
/* This fiber waits for its block (EMU_BAR) or for the lanes of mask in its warp (EMU_WARP) at the
 * call on source line `line`; EMU_YIELD: it spins there and runs again next round. */
void emu_wait(int kind, int line, unsigned mask);
/* bar.sync id, n: waits until n threads (whole warps) wait at named barrier id, at the same call
 * (line) and as the same n-th named barrier of each. */
void emu_named_bar(int id, int n, int line);
uint64_t *emu_slots(void); /* one exchange slot per thread of the block */
/* Runs body as every thread of every block of the grid; dyn_smem: bytes of dynamic shared memory
 * (emu_dyn_smem), random before each block, with an unmapped page right after its end. */
void emu_run(dim3 grid, dim3 block, const std::function<void()> &body, size_t dyn_smem = 0);
uint8_t *emu_dyn_smem(void);
/* mbarriers (cuda_ptx.cuh over these): a 64-bit word in shared memory. arrive: one arrival with
 * tx more transaction bytes expected; complete_tx: bytes landed; test: the phase of parity p has
 * completed. */
void emu_mbar_init(uint64_t *b, int count);
void emu_mbar_arrive(uint64_t *b, uint32_t tx);
void emu_mbar_complete_tx(uint64_t *b, uint32_t bytes);
bool emu_mbar_test(uint64_t *b, uint32_t parity, int line);
/* Bulk copy global -> shared completing on mbarrier b: the destination turns to random bytes at
 * once and receives the data at a random later round. */
void emu_bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *b);
/* mma.sync.m16n8k16.row.col f32.f16.f16.f32 as a warp collective (c += A B). */
void emu_mma16816(int line, float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                  uint32_t b0, uint32_t b1);
/* wgmma.mma_async m64nNk16 f32.f16.f16, A in registers, as one warp of the group sees it
 * (cuda_ptx.cuh's wgmma_rs: d += A B), queued; commit closes the thread's open group; wait(n)
 * runs the queued wgmmas of all but the n most recent committed groups, reading A, B and D then.
 * A thread that exits with wgmmas queued aborts. */
void emu_wgmma(int line, float *d, int N, const uint32_t (&a)[4], const void *b, uint32_t lbo,
               uint32_t sbo);
void emu_wg_commit(void);
void emu_wg_wait(int n);
void emu_poison(void *p, size_t n); /* fills n bytes with the scheduler's random bytes */
uint64_t emu_random(void);
extern void (*emu_block_hook)(void); /* when set: called before each block runs */

/* The intrinsics are macros that pass their call's line to the scheduler's checks. */
#define __syncthreads()       emu_syncthreads(__LINE__)
#define __syncthreads_or(p)   emu_syncthreads_or(p, __LINE__)
#define __syncwarp            emu_syncwarp(__LINE__) /* then (mask), by default all lanes */
#define __shfl_xor_sync(...)  emu_shfl_xor(__LINE__, __VA_ARGS__)
#define __shfl_up_sync(...)   emu_shfl_up(__LINE__, __VA_ARGS__)
#define __shfl_sync(...)      emu_shfl(__LINE__, __VA_ARGS__)
#define __ballot_sync(...)    emu_ballot(__LINE__, __VA_ARGS__)
#define __match_any_sync(...) emu_match_any(__LINE__, __VA_ARGS__)

static inline void emu_syncthreads(int line) {
    emu_wait(EMU_BAR, line, 0);
}
static inline int emu_syncthreads_or(int p, int line) {
    uint64_t *s = emu_slots();
    s[threadIdx.x] = p != 0;
    emu_wait(EMU_BAR, line, 0);
    int r = 0;
    for (unsigned t = 0; t < blockDim.x; t++) r |= (int)s[t];
    emu_wait(EMU_BAR, line, 0);
    return r;
}
struct emu_syncwarp {
    int line;
    explicit emu_syncwarp(int l) : line(l) {}
    void operator()(unsigned mask = 0xffffffffu) const { emu_wait(EMU_WARP, line, mask); }
};
static inline void __threadfence(void) {}

/* A warp collective: this lane publishes word b; once every lane of the warp has, f reads the
 * warp's 32 words (w[lane]); the second wait keeps the slots until every lane has read them. */
template <class F> static inline auto emu_warp_op(int line, unsigned mask, uint64_t b, F f) {
    uint64_t *s = emu_slots();
    s[threadIdx.x] = b;
    emu_wait(EMU_WARP, line, mask);
    const auto r = f(s + (threadIdx.x & ~31u));
    emu_wait(EMU_WARP, line, mask);
    return r;
}
template <typename T> static inline T emu_exchange(T v, int src_lane, int line, unsigned mask) {
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return emu_warp_op(line, mask, b, [&](const uint64_t *w) {
        T r;
        memcpy(&r, &w[src_lane], sizeof r);
        return r;
    });
}
template <typename T> static inline T emu_shfl_xor(int line, unsigned mask, T v, int o) {
    return emu_exchange(v, (int)(threadIdx.x & 31) ^ o, line, mask);
}
template <typename T> static inline T emu_shfl_up(int line, unsigned mask, T v, int d) {
    const int lane = (int)(threadIdx.x & 31);
    return emu_exchange(v, lane >= d ? lane - d : lane, line, mask);
}
template <typename T> static inline T emu_shfl(int line, unsigned mask, T v, int src) {
    return emu_exchange(v, src, line, mask);
}
static inline unsigned emu_ballot(int line, unsigned mask, int p) {
    return emu_warp_op(line, mask, p != 0, [](const uint64_t *w) {
        unsigned r = 0;
        for (unsigned l = 0; l < 32; l++) r |= (unsigned)w[l] << l;
        return r;
    });
}
/* The lanes whose v equals this lane's (32- or 64-bit v). */
template <typename T> static inline unsigned emu_match_any(int line, unsigned mask, T v) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "a 32- or 64-bit value");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return emu_warp_op(line, mask, b, [&](const uint64_t *w) {
        unsigned r = 0;
        for (unsigned l = 0; l < 32; l++) r |= (unsigned)(w[l] == b) << l;
        return r;
    });
}
static inline int __ffs(unsigned x) {
    return x ? __builtin_ctz(x) + 1 : 0;
}
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
static inline int __clz(unsigned x) {
    return x ? __builtin_clz(x) : 32;
}

/* Fibers switch only at the waits above, so read-modify-write is atomic as written: *p = f(*p),
 * the old value returned. */
template <typename T, typename F> static inline T emu_rmw(T *p, F f) {
    const T o = *p;
    *p = f(o);
    return o;
}
template <typename T> static inline T atomicAdd(T *p, T v) {
    return emu_rmw(p, [v](T o) { return o + v; });
}
template <typename T> static inline T atomicAnd(T *p, T v) {
    return emu_rmw(p, [v](T o) { return o & v; });
}
template <typename T> static inline T atomicOr(T *p, T v) {
    return emu_rmw(p, [v](T o) { return o | v; });
}
template <typename T> static inline T atomicMin(T *p, T v) {
    return emu_rmw(p, [v](T o) { return v < o ? v : o; });
}
template <typename T> static inline T atomicMax(T *p, T v) {
    return emu_rmw(p, [v](T o) { return v > o ? v : o; });
}
template <typename T> static inline T __ldcg(const T *p) {
    return *p;
}
template <typename T> static inline T __ldg(const T *p) {
    return *p;
}
static inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}

/* The bits of a 4-byte value as another 4-byte type. */
template <typename To, typename From> static inline To emu_bits(From v) {
    static_assert(sizeof(To) == sizeof(From), "same size");
    To r;
    memcpy(&r, &v, sizeof r);
    return r;
}
static inline unsigned __float_as_uint(float f) {
    return emu_bits<unsigned>(f);
}
static inline float __uint_as_float(unsigned u) {
    return emu_bits<float>(u);
}
static inline int __float_as_int(float f) {
    return emu_bits<int>(f);
}
static inline float __int_as_float(int u) {
    return emu_bits<float>(u);
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
