/* bench/megastep.cu: does one persistent kernel for the whole decode step beat a chain of launches
 * on the llama3.2-1b shape, and what do other step shapes buy? Design experiments for the 1B goal
 * (bench/cuda-notes.md, rounds 24 and 25), built with the CUDA backend and run by hand on a card:
 *   nvcc -O3 -std=c++17 -Isrc -Iinclude -DMS_CW=16 -gencode=arch=compute_90a,code=sm_90a \
 *     -o megastep bench/megastep.cu && ./megastep [attention stand-in ns ...]
 * (-DMS_CW: consumer warps, 8 by default; -DMS_NST: ring stages; -DMS_INFL: stages in flight;
 * -DMS_ONERED=1: one reduction over the warps a phase; -DMS_CHAINS=2 or 4: a chunk's MMAs in that
 * many accumulator chains; -DMS_INT8=1: x as int8 per 64-chunk and m16n8k32 u8 x s8 MMAs on the
 * mma layout's words as they are (int8_chunk); -DMS_8B=1: the llama3-8b widths (FF 16384); -DMS_CL,
 * -DMS_CTX: the cluster size and context of split-real / split-fused below. MS_PROFILE=mode in the
 * environment: three steps of that mode only, for ncu.)
 *
 * The step: 16 layers of five phases over q4g64 weights in the mma layout (cuda_mma.cuh's chunk
 * math, f16 (scale, bias) pairs): q, k, v (3072 x 2048, the RMSNorm of h folded into x's staging),
 * an attention stand-in (32 blocks, one per head: out = q + v of its kv head, then a spin of A ns;
 * RoPE is not here), o (2048 x 2048, h += o x), gate and up (2 x 8192 x 2048, SwiGLU, x normed)
 * and down (2048 x 8192, h += down x). Every block of one per SM runs a producer warp that streams
 * its tiles' slices with bulk copies through a ring of stages (mbarriers) and MS_CW consumer warps
 * that stage x as half (with per-chunk sums), take the stages and write each 16-row tile's
 * epilogue. The same kernel runs the step these ways:
 *   mega:   one launch for all 80 phases. The producer never waits for data (weights do not depend
 *           on it), so its stream runs ahead across phases and layers, as far as the ring allows;
 *           the consumers wait at a grid barrier (a counter per phase) before staging a phase's x.
 *   mega-flags: the same with a flag per block and phase, polled by one thread per block, instead
 *           of the counter's 132 atomics on one word.
 *   split:  one launch per phase (80 launches, a CUDA graph, programmatic dependent launch): the
 *           chain today's engine runs, each launch's ring filling anew after the previous exits.
 *   nowait: mega with the consumers not waiting (wrong results): the stream's own bound.
 *   -nocopy: the producer hands out stages without copying (stale weights): the chain without
 *           the weight stream.
 *   split-real: split with a real attention launch (k_attn: a cluster of MS_CL blocks per kv head
 *           over a KV cache of MS_CTX positions, its rows bulk-copied before the PDL wait, FMA
 *           scores, softmax and P V, the partials merged through distributed shared memory).
 *   split-fused: k_qkva, one cluster launch per layer for q, k, v and that attention: the kv
 *           head's 24 tiles over its cluster, the rows exchanged in distributed shared memory
 *           after a cluster barrier, then the same attention code (no PDL release, no q round
 * trip). It prints one stamped step of each (per phase kind: the span from the previous phase's
 * last block to this one's, and per block the release after that, the staging of x and the work;
 * split-real and split-fused also inside the attention) and then microseconds a step and a layer
 * over 200 steps, three rounds interleaved.
 * Checks: mega, mega-flags and split give the same bits, split-real and split-fused too; each
 * against a CPU reference of the same step (double sums of the dequantised weights times x
 * rounded as staged) within 1e-2 relative L2.
 *
 * H100, round 24 (MS_CW=16, 10 stages, attention 0 ns), us a layer: split 23.0, mega 25.1,
 * mega-flags 30.7; without copies split 19.7, mega 20.8. The persistent form loses: its grid
 * barrier releases after 0.8 us without the stream and 2.2-2.3 us with it (q, k, v and down), the
 * launch chain's PDL release after 0.7-1.1; and its stream running ahead buys nothing, because
 * the consumers' work (x's staging, the chunk math, a block-wide reduction per tile) runs at about
 * the HBM rate: gate+up takes 5.2 us of work with no copies at all. That work is latency-bound
 * (ncu: 0.41 instructions a cycle a scheduler at 4 warps, stalls spread over fixed-latency
 * waits, barriers and shared-memory loads); one reduction a phase instead of a tile, and 2 or 4
 * MMA chains a chunk instead of 1, each left it within 0.2 us.
 * Round 25: split-fused 28.49 against split-real 28.37 (clusters of 8, context 576; 4: 31.4
 * against 29.6): the cluster barrier releases in 0.3 us instead of the PDL's 0.9 and q arrives
 * 0.1 us sooner, but q, k, v on 64 SMs take 0.6 us longer. MS_INT8: the chunk math's work falls
 * 12-23% (8B gate+up without copies 17.4 -> 13.4 us, the 8B step without copies 46.6 -> 42.4)
 * but staging x as int8 takes 0.4-2 us longer a launch (8B's down excepted), so the step with its
 * weights does not move (1B split 23.62 against 23.30, 8B 59.9 against 59.3). */
#include "../src/backend/cuda/cuda_mma.cuh"
#include "bench_cuda.h"

#include <cooperative_groups.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#ifndef MS_8B
#define MS_8B 0 /* 1: the llama3-8b shape's widths (FF 16384 for 14336, so x's staging divides) */
#endif
#if MS_8B
enum { HD = 4096, NQKV = 6144, FF = 16384, NL = 16, NPH = 5, NHEAD = 32, HDIM = 128 };
#else
enum { HD = 2048, NQKV = 3072, FF = 8192, NL = 16, NPH = 5, NHEAD = 32, HDIM = 64 };
#endif
#ifndef MS_INT8
#define MS_INT8 0 /* 1: x as int8 per 64-chunk, m16n8k32 u8 x s8 MMAs (int8_chunk) */
#endif
#ifndef MS_NST
#define MS_NST 10 /* ring stages (-DMS_NST=n: another depth) */
#endif
/* stages in flight at most (issued, not landed); the rest of the ring holds landed ones */
#ifndef MS_INFL
#define MS_INFL 3
#endif
#ifndef MS_ONERED
#define MS_ONERED 0 /* 1: one reduction over the warps a phase, not one a tile */
#endif
#ifndef MS_CW
#define MS_CW 8 /* consumer warps (-DMS_CW=16: more) */
#endif
enum { CW = MS_CW, NTHR = (CW + 1) * 32, CPS = 32, NST = MS_NST };
enum { STAGE = CPS * 512 + CPS * 64 }; /* codes of 32 chunks | their 32 x 16 pairs */
enum { EPI_STORE, EPI_ATTN, EPI_ADD, EPI_SWIGLU };
enum {
    M_MEGA = 1,
    M_SPLIT = 2,
    M_NOWAIT = 4,
    M_NOCOPY = 8,
    M_FLAGS = 16,
    M_REAL = 32,
    M_FUSED = 64
};
#define ST BRISK_W_F16

struct Mat {
    const uint8_t *codes;  /* [tile][chunk][512] */
    const uint32_t *pairs; /* [tile][chunk][16]: (scale, bias) as f16, rows of the tile */
};
struct Phase {
    Mat m[2];
    int ntl, K, tiles, epi, norm; /* ntl: tiles a stage (2: gate and up) */
    const float *x;
    float *y;
};
__constant__ Phase c_ph[NL * NPH];

/* x's half pairs in the order the MMA's B fragments take them: chunk c, lane quarter t: k-steps
 * s = 0..3 of (x[16s + 2t], x[16s + 2t + 1]) and (x[16s + 2t + 8], x[16s + 2t + 9]). */
__device__ __forceinline__ int xperm(int k) { /* k even: the pair's uint32 index */
    const int c = k >> 6, kk = k & 63, s = kk >> 4, r = kk & 15;
    const int t = (r & 7) >> 1, j = r >> 3;
    return (c * 4 + t) * 8 + 2 * s + j;
}

#ifndef MS_CHAINS
#define MS_CHAINS 1 /* a chunk's 4 k-step MMAs in 1, 2 or 4 independent accumulator chains */
#endif
/* cuda_mma.cuh's mma_chunk_acc with the k-steps split over MS_CHAINS accumulators, summed before
 * the scale (1: mma_chunk_acc itself) */
__device__ __forceinline__ void chunk_acc(float (&acc)[4], const uint4 &q, uint32_t r0, uint32_t r1,
                                          const uint32_t (&bx0)[4], const uint32_t (&bx1)[4],
                                          const float (&X)[4]) {
    if (MS_CHAINS == 1) {
        mma_chunk_acc<ST>(acc, q, r0, r1, bx0, bx1, X);
        return;
    }
    uint32_t A[4][4];
    mma_chunk_decode(A, q);
    float C[4][4] = {};
#pragma unroll
    for (int s = 0; s < 4; s++)
        mma16816(C[s % MS_CHAINS], A[s][0], A[s][1], A[s][2], A[s][3], bx0[s], bx1[s]);
#pragma unroll
    for (int c = 1; c < MS_CHAINS; c++)
#pragma unroll
        for (int j = 0; j < 4; j++) C[0][j] += C[c][j];
    mma_chunk_scale<ST>(acc, C[0], r0, r1, X);
}

/* c += A (16 x 32 u8, row-major) times B (32 x 8 s8, column-major), int32 */
__device__ __forceinline__ void mma_u8s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    (void)c, (void)a0, (void)a1, (void)a2, (void)a3, (void)b0, (void)b1;
    __trap();
#endif
}
/* MS_INT8: acc[0], acc[2] (rows g, g + 8: the only columns the reduction reads) += a chunk's
 * products with x as int8 (scale sx; Xs: the chunk's float sum, for the bias), on the mma
 * layout's words as they are: W[s] & 0x0F0F0F0F holds row g's nibbles 0, 2, 4, 6 as bytes, at
 * columns 16 s + 2 t + (i >> 1) + 8 (i & 1) for byte i, and (W[s] >> 4) & .. row g + 8's; the MMA
 * takes byte i of word s as k = 4 t + i (+ 16 for odd s), so x is staged in that order (stage_x)
 * and no weight is repacked. */
__device__ __forceinline__ void int8_chunk(float (&acc)[4], const uint4 &q, uint32_t r0,
                                           uint32_t r1, const uint4 &xw, float sx, float Xs) {
    const uint32_t M = 0x0F0F0F0Fu;
    int C[4] = {0, 0, 0, 0};
    mma_u8s8(C, q.x & M, (q.x >> 4) & M, q.y & M, (q.y >> 4) & M, xw.x, xw.y);
    mma_u8s8(C, q.z & M, (q.z >> 4) & M, q.w & M, (q.w >> 4) & M, xw.z, xw.w);
    const float2 p0 = sb_dec<ST>(r0), p1 = sb_dec<ST>(r1);
    acc[0] = fmaf(p0.x * sx, (float)C[0], fmaf(p0.y, Xs, acc[0]));
    acc[2] = fmaf(p1.x * sx, (float)C[2], fmaf(p1.y, Xs, acc[2]));
}
/* A warp's share of one stage (slice sl of the NTL tiles it holds): chunks wid, wid + CW, ... of
 * each tile, unrolled so that their loads and MMA chains overlap, into acc; then the warp hands
 * the stage back. */
template <int NTL>
__device__ __forceinline__ void stage_math(float (&acc)[NTL][4], const uint8_t *sb,
                                           const uint32_t *xp, const float *X, const float *XS,
                                           int sl, int wid, int lane, uint64_t *empty) {
    constexpr int CPSN = CPS / NTL, CPW = CPSN / CW;
    static_assert(CPW >= 1, "chunks a warp");
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int vv = 0; vv < CPW; vv++) {
        const int j = wid + CW * vv, c = sl * CPSN + j;
        if (MS_INT8) {
            const uint4 xw = *(const uint4 *)&xp[c * 16 + t * 4];
            const float sx = XS[c], Xs = X[c];
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                const uint4 q = *(const uint4 *)(sb + (i * CPSN + j) * 512 + lane * 16);
                const uint32_t *pr = (const uint32_t *)(sb + CPS * 512) + (i * CPSN + j) * 16;
                int8_chunk(acc[i], q, pr[g], pr[g + 8], xw, sx, Xs);
            }
            continue;
        }
        const uint4 xa = *(const uint4 *)&xp[(c * 4 + t) * 8];
        const uint4 xb = *(const uint4 *)&xp[(c * 4 + t) * 8 + 4];
        const uint32_t bx0[4] = {xa.x, xa.z, xb.x, xb.z};
        const uint32_t bx1[4] = {xa.y, xa.w, xb.y, xb.w};
        const float Xc[4] = {X[c], X[c], X[c], X[c]};
#pragma unroll
        for (int i = 0; i < NTL; i++) {
            const uint4 q = *(const uint4 *)(sb + (i * CPSN + j) * 512 + lane * 16);
            const uint32_t *pr = (const uint32_t *)(sb + CPS * 512) + (i * CPSN + j) * 16;
            chunk_acc(acc[i], q, pr[g], pr[g + 8], bx0, bx1, Xc);
        }
    }
    __syncwarp();
    if (lane == 0 && empty) mbar_arrive(empty); /* none: a stage that is not refilled */
}

/* x as half pairs (normed: x * rsqrt(mean(x^2) + eps)) and the chunks' sums of them, by the
 * consumer threads: a thread's U float4 are contiguous (U <= 8), all its loads in flight at once,
 * and a chunk's threads are neighbouring lanes; ends with the consumers' barrier */
template <class Sync>
__device__ __forceinline__ void stage_x(const float *x, int K, int norm, uint32_t *xp, float *X,
                                        float *XS, float *misc, int tid, Sync csync) {
    const int U = K / (CW * 128), base = tid * U * 4;
    if (MS_INT8) { /* int8_chunk's words: x[16 s + 2 t + {0, 8, 1, 9}] from float2 pairs */
        const int tpc = 16 / U;
        float cs = 0.f;
        float2 lo[8], hi[8];
        float mx = 0.f, ss = 0.f;
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < U) {
                const int w = tid * U + u, e0 = (w >> 4) * 64 + 16 * (w & 3) + 2 * ((w >> 2) & 3);
                lo[u] = __ldcg((const float2 *)(x + e0)),
                hi[u] = __ldcg((const float2 *)(x + e0 + 8));
            }
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < U) {
                mx = fmaxf(mx, fmaxf(fmaxf(fabsf(lo[u].x), fabsf(lo[u].y)),
                                     fmaxf(fabsf(hi[u].x), fabsf(hi[u].y))));
                ss = fmaf(lo[u].x, lo[u].x, fmaf(lo[u].y, lo[u].y, ss));
                ss = fmaf(hi[u].x, hi[u].x, fmaf(hi[u].y, hi[u].y, ss));
                cs += (lo[u].x + lo[u].y) + (hi[u].x + hi[u].y);
            }
        for (int o = 1; o < tpc; o <<= 1) {
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            cs += __shfl_xor_sync(0xffffffffu, cs, o);
        }
        const float rs8 = norm ? rsqrtf(block_sum<CW * 32>(ss, tid, misc, csync) / K + 1e-5f) : 1.f;
        mx *= rs8;
        const float sx = mx > 0.f ? mx * (1.f / 127.f) : 1.f, inv = __frcp_rn(sx) * rs8;
        /* round to nearest even through the magic 1.5 * 2^23: the low byte is round(a) */
        auto q8 = [&](float a) { return __float_as_uint(fmaf(a, inv, 12582912.f)); };
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < U) {
                const uint32_t w01 = __byte_perm(q8(lo[u].x), q8(hi[u].x), 0x0040);
                const uint32_t w23 = __byte_perm(q8(lo[u].y), q8(hi[u].y), 0x0040);
                xp[tid * U + u] = __byte_perm(w01, w23, 0x5410);
            }
        if (tid % tpc == 0) X[tid * U / 16] = cs * rs8, XS[tid * U / 16] = sx;
        csync();
        return;
    }
    float4 v[8];
#pragma unroll
    for (int u = 0; u < 8; u++)
        if (u < U) v[u] = __ldcg((const float4 *)(x + base + u * 4));
    float rs = 1.f;
    if (norm) {
        float ss = 0.f;
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < U) ss = sq4(v[u], ss);
        rs = rsqrtf(block_sum<CW * 32>(ss, tid, misc, csync) / K + 1e-5f);
    }
    const int tpc = 16 / U; /* threads a chunk */
    float cs = 0.f;
#pragma unroll
    for (int u = 0; u < 8; u++)
        if (u < U) {
            const uint32_t a = h2_bits(v[u].x * rs, v[u].y * rs);
            const uint32_t b = h2_bits(v[u].z * rs, v[u].w * rs);
            xp[xperm(base + u * 4)] = a, xp[xperm(base + u * 4 + 2)] = b;
            const __half2 ha = *(const __half2 *)&a, hb = *(const __half2 *)&b;
            cs += __low2float(ha) + __high2float(ha) + __low2float(hb) + __high2float(hb);
        }
    for (int o = 1; o < tpc; o <<= 1) cs += __shfl_xor_sync(0xffffffffu, cs, o);
    if (tid % tpc == 0) X[base / 64] = cs;
    csync();
}

/* A tile's sums over the consumer warps: each warp's accumulators through red, then row r8 =
 * tid >> 3's over 8 lanes (threads tid < 128; lane part = tid & 7 == 0 holds the row's sums) */
template <int NTL, class Sync>
__device__ __forceinline__ void tile_sum(const float (&acc)[NTL][4], float *red, int tid,
                                         float (&sum)[NTL], Sync csync) {
    const int lane = tid & 31, wid = tid >> 5, g = lane >> 2, t = lane & 3;
    if (t == 0)
#pragma unroll
        for (int i = 0; i < NTL; i++) {
            red[(wid * 8 + i) * 16 + g] = acc[i][0];
            red[(wid * 8 + i) * 16 + g + 8] = acc[i][2];
        }
    csync();
    if (tid < 128) {
        const int r8 = tid >> 3, part = tid & 7;
#pragma unroll
        for (int i = 0; i < NTL; i++) {
            sum[i] = 0.f;
            for (int w = part; w < CW; w += 8) sum[i] += red[(w * 8 + i) * 16 + r8];
#pragma unroll
            for (int o = 1; o < 8; o <<= 1) sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], o);
        }
    }
}

/* Thread 0's measuring-aid stamps of phase p in this block (entry, release, x staged, end), or
 * null: none taken (no ts, the block not in the phase, or another thread) */
__device__ __forceinline__ unsigned long long *stamp_slot(unsigned long long *ts, bool in, int tid,
                                                          int p, int G) {
    return ts && in && tid == 0 ? ts + ((size_t)p * G + blockIdx.x) * 4 : nullptr;
}

__device__ __forceinline__ uint32_t ld_acquire(const unsigned *p) {
    uint32_t v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__global__ void __launch_bounds__(NTHR, 1)
    k_step(int p0, int p1, unsigned target, int mode, unsigned *cnt, int attn_ns,
           unsigned long long *ts) {
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    uint8_t *ring = sm;
    uint32_t *xp = (uint32_t *)(sm + NST * STAGE); /* FF / 2 pairs */
    float *X = (float *)(xp + FF / 2);             /* FF / 64 chunk sums */
    float *XS = X + FF / 64;                       /* MS_INT8: FF / 64 chunk scales */
    float *red = XS + FF / 64;                     /* [CW][8][16] */
    float *misc = red + CW * 8 * 16;               /* [CW] */
    uint64_t *full = (uint64_t *)(misc + 32);
    uint64_t *empty = full + NST;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, G = gridDim.x;
    if (threadIdx.x == 0) {
        for (int s = 0; s < NST; s++) mbar_init(&full[s], 1), mbar_init(&empty[s], CW);
        mbar_init_fence();
    }
    __syncthreads();

    if (wid == CW) { /* producer: every phase's slices of this block's tiles, in order */
        if (lane != 0) return;
        const uint64_t pol = policy_evict_first();
        int k = 0;
        for (int p = p0; p < p1; p++) {
            const Phase &P = c_ph[p];
            if (P.epi == EPI_ATTN) continue;
            const int nch = P.K / 64, cps = CPS / P.ntl, nsl = nch / cps;
            for (int tile = blockIdx.x; tile < P.tiles; tile += G)
                for (int sl = 0; sl < nsl; sl++, k++) {
                    const int st = k % NST;
                    if (k >= NST) mbar_wait(&empty[st], ((k / NST) - 1) & 1);
                    /* paced: the SM's loads (x, the grid barrier's counter, the residual) queue
                     * behind the bulk copies in flight, so at most MS_INFL stages are */
                    if (k >= MS_INFL)
                        mbar_wait(&full[(k - MS_INFL) % NST], ((k - MS_INFL) / NST) & 1);
                    if (mode & M_NOCOPY) { /* the chain without the weight stream (stale stages) */
                        mbar_arrive(&full[st]);
                        continue;
                    }
                    mbar_expect(&full[st], P.ntl * cps * (512 + 64));
                    uint8_t *dst = ring + st * STAGE;
                    for (int i = 0; i < P.ntl; i++) {
                        const int64_t c0 = (int64_t)tile * nch + sl * cps;
                        bulk_copy(dst + i * cps * 512, P.m[i].codes + c0 * 512, cps * 512,
                                  &full[st], pol);
                        bulk_copy(dst + CPS * 512 + i * cps * 64, P.m[i].pairs + c0 * 16, cps * 64,
                                  &full[st], pol);
                    }
                }
        }
        return;
    }

    const int tid = threadIdx.x, g = lane >> 2, t = lane & 3;
    auto csync = [] { named_sync(1, CW * 32); };
    int k = 0;
    for (int p = p0; p < p1; p++) {
        const Phase &P = c_ph[p];
        const bool has = P.epi == EPI_ATTN ? (int)blockIdx.x < NHEAD : (int)blockIdx.x < P.tiles;
        /* measuring aid: thread 0 stamps the phase's entry, release, staged x, end */
        unsigned long long *tp = stamp_slot(ts, has, tid, p, G);
        if (tp) tp[0] = gtime();
        if (has) {
            /* the inputs: the previous phase's outputs */
            if (mode & M_SPLIT) {
                pdl_wait();
            } else if (p > p0 && (mode & M_MEGA) && !(mode & M_NOWAIT)) {
                if (mode & M_FLAGS) { /* thread b polls block b's flag: no atomics on one word */
                    if (tid < G)
                        while (ld_acquire(cnt + NL * NPH + (p - 1) * G + tid) < target / G)
                            __nanosleep(32);
                } else if (tid == 0) {
                    while (ld_acquire(cnt + p - 1) < target) __nanosleep(32);
                }
                csync();
            }
            if (tp) tp[1] = gtime();
            if (P.epi == EPI_ATTN) { /* the stand-in: head h's q plus its kv head's v */
                const int h = blockIdx.x;
                for (int i = tid; i < HDIM; i += CW * 32)
                    P.y[h * HDIM + i] = __ldcg(P.x + h * HDIM + i) +
                                        __ldcg(P.x + HD + 8 * HDIM + (h / 4) * HDIM + i);
                if (tid == 0 && attn_ns > 0) {
                    const uint64_t t0 = gtime();
                    while (gtime() - t0 < (uint64_t)attn_ns) {
                    }
                }
            } else {
                stage_x(P.x, P.K, P.norm, xp, X, XS, misc, tid, csync);
                const int K = P.K;
                if (tp) tp[2] = gtime();
                /* the phase's tiles, NTL a stage (2: gate and up); every warp's chunks of a
                 * stage unrolled, so their loads and MMA chains overlap */
                auto tiles = [&](auto ntl_c) {
                    constexpr int NTL = decltype(ntl_c)::value, CPSN = CPS / NTL;
                    const int nsl = K / 64 / CPSN, r8 = tid >> 3, part = tid & 7;
                    for (int tile = blockIdx.x; tile < P.tiles; tile += G) {
                        float acc[NTL][4] = {};
                        /* the residual's round trip overlaps the tile's stages */
                        const float yo = P.epi == EPI_ADD && tid < 128 && part == 0
                                             ? __ldcg(P.y + tile * 16 + r8)
                                             : 0.f;
                        for (int sl = 0; sl < nsl; sl++, k++) {
                            const int st = k % NST;
                            mbar_wait(&full[st], (k / NST) & 1);
                            stage_math<NTL>(acc, ring + st * STAGE, xp, X, XS, sl, wid, lane,
                                            &empty[st]);
                        }
                        float sum[NTL];
                        tile_sum<NTL>(acc, red, tid, sum, csync);
                        if (tid < 128) {
                            const int row = tile * 16 + r8;
                            if (part == 0) {
                                if (NTL == 2)
                                    P.y[row] = sum[0] / (1.f + expf(-sum[0])) * sum[NTL - 1];
                                else if (P.epi == EPI_ADD)
                                    P.y[row] = yo + sum[0];
                                else
                                    P.y[row] = sum[0];
                            }
                        }
                        csync();
                    }
                };
                /* MS_ONERED: all of the block's tiles of the phase (MT at most) accumulate in
                 * registers and are reduced over the warps once, one barrier pair a phase */
                auto tiles_once = [&](auto ntl_c, auto mt_c) {
                    constexpr int NTL = decltype(ntl_c)::value, MT = decltype(mt_c)::value,
                                  CPSN = CPS / NTL;
                    static_assert(MT * NTL <= 8, "red's size");
                    const int nsl = K / 64 / CPSN, r8 = tid >> 3, part = tid & 7;
                    float acc[MT][NTL][4] = {}, yo[MT];
#pragma unroll
                    for (int n = 0; n < MT; n++) {
                        const int tile = blockIdx.x + n * G;
                        yo[n] = P.epi == EPI_ADD && tile < P.tiles && tid < 128 && part == 0
                                    ? __ldcg(P.y + tile * 16 + r8)
                                    : 0.f;
                    }
#pragma unroll
                    for (int n = 0; n < MT; n++) {
                        if ((int)blockIdx.x + n * G >= P.tiles) break;
                        for (int sl = 0; sl < nsl; sl++, k++) {
                            const int st = k % NST;
                            mbar_wait(&full[st], (k / NST) & 1);
                            stage_math<NTL>(acc[n], ring + st * STAGE, xp, X, XS, sl, wid, lane,
                                            &empty[st]);
                        }
                    }
                    if (t == 0)
#pragma unroll
                        for (int n = 0; n < MT; n++)
#pragma unroll
                            for (int i = 0; i < NTL; i++) {
                                red[(wid * 8 + n * NTL + i) * 16 + g] = acc[n][i][0];
                                red[(wid * 8 + n * NTL + i) * 16 + g + 8] = acc[n][i][2];
                            }
                    csync();
                    if (tid < 128) /* row r8 of each tile: 8 lanes, each over warps part + 8m */
#pragma unroll
                        for (int n = 0; n < MT; n++) {
                            const int tile = blockIdx.x + n * G;
                            float sum[NTL];
#pragma unroll
                            for (int i = 0; i < NTL; i++) {
                                sum[i] = 0.f;
                                for (int w = part; w < CW; w += 8)
                                    sum[i] += red[(w * 8 + n * NTL + i) * 16 + r8];
#pragma unroll
                                for (int o = 1; o < 8; o <<= 1)
                                    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], o);
                            }
                            if (part == 0 && tile < P.tiles) {
                                const int row = tile * 16 + r8;
                                if (NTL == 2)
                                    P.y[row] = sum[0] / (1.f + expf(-sum[0])) * sum[NTL - 1];
                                else if (P.epi == EPI_ADD)
                                    P.y[row] = yo[n] + sum[0];
                                else
                                    P.y[row] = sum[0];
                            }
                        }
                    csync();
                };
                using I1 = std::integral_constant<int, 1>;
                using I2 = std::integral_constant<int, 2>;
                using I4 = std::integral_constant<int, 4>;
                const int mt = (P.tiles - (int)blockIdx.x + G - 1) / G; /* this block's tiles */
                if (!MS_ONERED) {
                    if (P.ntl == 2)
                        tiles(I2());
                    else
                        tiles(I1());
                } else if (P.ntl == 2) {
                    if (mt <= 4)
                        tiles_once(I2(), I4());
                    else
                        tiles(I2());
                } else if (mt <= 1) {
                    tiles_once(I1(), I1());
                } else if (mt <= 2) {
                    tiles_once(I1(), I2());
                } else {
                    tiles(I1());
                }
            }
        }
        if (tp) tp[3] = gtime();
        if (mode & M_MEGA) { /* this block is done with phase p */
            csync();
            if (tid == 0) {
                __threadfence();
                if (mode & M_FLAGS) /* this block's flag: the step's number */
                    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(cnt + NL * NPH +
                                                                             p * G + blockIdx.x),
                                 "r"(target / G)
                                 : "memory");
                else
                    atomicAdd(cnt + p, 1u);
            }
        }
    }
}

/* ---- the q, k, v GEMV and the attention of one kv head in one cluster (M_FUSED), against a
 * separate attention launch with the same math (M_REAL) ---- */
#ifndef MS_CL
#define MS_CL 8 /* blocks a cluster: one cluster a kv head (24 tiles of q, k, v rows over them) */
#endif
#ifndef MS_CTX
#define MS_CTX 576 /* cached positions before this step's (its row goes to slot MS_CTX) */
#endif
enum {
    NKV = 8,
    GQ = NHEAD / NKV,
    CL = MS_CL,
    CTX = MS_CTX,
    HT = HDIM / 16,      /* tiles a head's rows */
    KVT = (GQ + 2) * HT, /* a kv head's q, k, v tiles */
    TPB = KVT / CL,      /* tiles a block */
    NR = CTX / CL + 1,   /* K/V rows a block */
    QST = TPB            /* ring stages */
};
static_assert(KVT % CL == 0 && CTX % CL == 0 && GQ * HDIM % CL == 0, "cluster size");
static_assert(MS_8B || HD / 64 == CPS, "one stage a q, k, v tile"); /* 8B: not run */
/* k_qkva's attention region: after the ring, x, its chunk sums, red, misc and the barriers */
enum {
    QA_OFF =
        (QST * STAGE + HD * 2 + 2 * HD / 64 * 4 + CW * 8 * 16 * 4 + 32 * 4 + (QST + 1) * 8 + 127) /
        128 * 128
};
/* the attention region (k_qkva: at QA_OFF; k_attn: after its barrier): K, V rows (half), q (float,
 * scaled by 1/sqrt(HDIM)), the scores, the V partials of the warp groups, this block's partial
 * (m[GQ], l[GQ], o[GQ][HDIM]) and the block's q, k, v rows */
enum {
    A_K = 0,
    A_V = A_K + NR * HDIM * 2,
    A_Q = A_V + NR * HDIM * 2,
    A_SC = A_Q + GQ * HDIM * 4,
    A_VA = A_SC + GQ * NR * 4,
    A_PART = A_VA + (CW / GQ) * GQ * HDIM * 4,
    A_ROWS = A_PART + (2 * GQ + GQ * HDIM) * 4,
    A_BYTES = A_ROWS + TPB * 16 * 4
};
__device__ __half *g_kvc; /* [NL][NKV][2][CTX + 1][HDIM]: K then V, slot CTX this step's row */
/* measuring aid: thread 0's stamps inside the attention, [layer][block][AS_N] (null: none) */
enum { AS_N = 8 };
__device__ unsigned long long *g_ast;
__device__ __forceinline__ void astamp(int layer, int tid, int k) {
    if (g_ast && tid == 0) g_ast[((size_t)layer * gridDim.x + blockIdx.x) * AS_N + k] = gtime();
}

/* The attention of q (GQ heads, in A_Q) over the n rows in A_K / A_V, by the consumer threads:
 * scores, softmax, and the block's partial (m, l, unnormalised o) in A_PART. */
template <class Sync>
__device__ __forceinline__ void attn_part(uint8_t *a, int n, int tid, Sync csync, int layer) {
    astamp(layer, tid, 0);
    const __half *Ks = (const __half *)(a + A_K), *Vs = (const __half *)(a + A_V);
    const float *qs = (const float *)(a + A_Q);
    float *sc = (float *)(a + A_SC), *va = (float *)(a + A_VA), *part = (float *)(a + A_PART);
    const int lane = tid & 31, wid = tid >> 5;
    for (int i = tid; i < GQ * n; i += CW * 32) { /* row p, head h; 16-byte pieces rotated by p */
        const int p = i / GQ, h = i % GQ;
        float dd[4] = {};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float &d = dd[j & 3];
            const int jj = (j + p) & 7;
            const uint4 kw = *(const uint4 *)(Ks + p * HDIM + jj * 8);
            const float4 qa = *(const float4 *)(qs + h * HDIM + jj * 8);
            const float4 qb = *(const float4 *)(qs + h * HDIM + jj * 8 + 4);
            const float2 k0 = __half22float2(*(const __half2 *)&kw.x);
            const float2 k1 = __half22float2(*(const __half2 *)&kw.y);
            const float2 k2 = __half22float2(*(const __half2 *)&kw.z);
            const float2 k3 = __half22float2(*(const __half2 *)&kw.w);
            d = fmaf(qa.x, k0.x, fmaf(qa.y, k0.y, fmaf(qa.z, k1.x, fmaf(qa.w, k1.y, d))));
            d = fmaf(qb.x, k2.x, fmaf(qb.y, k2.y, fmaf(qb.z, k3.x, fmaf(qb.w, k3.y, d))));
        }
        sc[h * NR + p] = (dd[0] + dd[1]) + (dd[2] + dd[3]);
    }
    csync();
    astamp(layer, tid, 1);
    if (wid < GQ) { /* warp h: head h's max, exponentials and sum */
        float m = -INFINITY;
        for (int p = lane; p < n; p += 32) m = fmaxf(m, sc[wid * NR + p]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        float l = 0.f;
        for (int p = lane; p < n; p += 32) {
            const float e = __expf(sc[wid * NR + p] - m);
            sc[wid * NR + p] = e, l += e;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
        if (lane == 0) part[wid] = m, part[GQ + wid] = l;
    }
    csync();
    astamp(layer, tid, 2);
    { /* warp w: head w % GQ over rows w / GQ + (CW / GQ) j; lane: columns 2 lane, 2 lane + 1 */
        const int h = wid % GQ, sub = wid / GQ;
        float o0 = 0.f, o1 = 0.f;
        for (int p = sub; p < n; p += CW / GQ) {
            const float e = sc[h * NR + p];
            const float2 v = __half22float2(*(const __half2 *)(Vs + p * HDIM + 2 * lane));
            o0 = fmaf(e, v.x, o0), o1 = fmaf(e, v.y, o1);
        }
        va[(sub * GQ + h) * HDIM + 2 * lane] = o0, va[(sub * GQ + h) * HDIM + 2 * lane + 1] = o1;
    }
    csync();
    astamp(layer, tid, 3);
    if (tid < GQ * HDIM) {
        float o = 0.f;
        for (int sub = 0; sub < CW / GQ; sub++) o += va[sub * GQ * HDIM + tid];
        part[2 * GQ + tid] = o;
    }
}

/* Rank r's share of the kv head's output: the cluster's partials merged, o / l to out. Called
 * between two cluster barriers (the partials written before, no block leaving before all read).
 */
__device__ __forceinline__ void attn_merge(uint8_t *a, int kvh, int tid, float *out) {
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    const int r = (int)cl.block_rank();
    constexpr int PER = GQ * HDIM / CL;
    if (tid < PER) {
        const int i = r * PER + tid, h = i / HDIM;
        float *part = (float *)(a + A_PART);
        float m[CL], l[CL], o[CL], M = -INFINITY;
#pragma unroll
        for (int b = 0; b < CL; b++) {
            const float *pb = cl.map_shared_rank(part, b);
            m[b] = pb[h], l[b] = pb[GQ + h], o[b] = pb[2 * GQ + i];
        }
#pragma unroll
        for (int b = 0; b < CL; b++) M = fmaxf(M, m[b]);
        float L = 0.f, O = 0.f;
#pragma unroll
        for (int b = 0; b < CL; b++) {
            const float e = __expf(m[b] - M);
            L = fmaf(l[b], e, L), O = fmaf(o[b], e, O);
        }
        out[kvh * GQ * HDIM + i] = O / L;
    }
}

/* The K, V rows of rank r's share of the context: one bulk copy each, completing on bar */
__device__ __forceinline__ void kv_load(uint8_t *a, int layer, int kvh, int r, uint64_t *bar) {
    const int n0 = r * (CTX / CL), n = CTX / CL;
    const __half *k = g_kvc + ((size_t)(layer * NKV + kvh) * 2) * (CTX + 1) * HDIM;
    mbar_expect(bar, 2 * n * HDIM * 2);
    bulk_copy(a + A_K, k + (size_t)n0 * HDIM, n * HDIM * 2, bar, policy_evict_first());
    bulk_copy(a + A_V, k + (size_t)(CTX + 1 + n0) * HDIM, n * HDIM * 2, bar, policy_evict_first());
}

/* q (scaled), and on the last rank this step's K, V row (row NR - 1, and the cache's slot CTX),
 * from row(j): the kv head's j-th q, k, v row (GQ * HDIM q rows, then HDIM k, HDIM v) */
template <class Row>
__device__ __forceinline__ void attn_inputs(uint8_t *a, int layer, int kvh, int tid, bool last,
                                            Row row) {
    float *qs = (float *)(a + A_Q);
    for (int j = tid; j < (GQ + 2) * HDIM; j += CW * 32) {
        const float v = row(j);
        if (j < GQ * HDIM) {
            qs[j] = v * 0.125f; /* 1 / sqrt(HDIM) */
        } else if (last) {
            const int kv = j / HDIM - GQ, d = j % HDIM;
            ((__half *)(a + (kv ? A_V : A_K)))[(NR - 1) * HDIM + d] = __float2half(v);
            g_kvc[((size_t)(layer * NKV + kvh) * 2 + kv) * (CTX + 1) * HDIM + CTX * HDIM + d] =
                __float2half(v);
        }
    }
}

/* Both kernels' end, once q and this step's row are in place: the K, V rows landed, the block's
 * partial (attn_part), the cluster's merge between two cluster barriers (every rank's partial
 * written; no rank leaving while another reads its partial), stamps in t1 [2] and [3]. */
template <class Sync>
__device__ __forceinline__ void attn_finish(uint8_t *a, int layer, int kvh, int tid,
                                            uint64_t *kvbar, unsigned long long *t1, Sync csync) {
    cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
    const bool last = (int)cl.block_rank() == CL - 1;
    mbar_wait(kvbar, 0);
    csync();
    if (t1) t1[2] = gtime();
    attn_part(a, last ? NR : NR - 1, tid, csync, layer);
    astamp(layer, tid, 4);
    cl.sync();
    astamp(layer, tid, 5);
    attn_merge(a, kvh, tid, c_ph[layer * NPH + 1].y);
    astamp(layer, tid, 6);
    cl.sync();
    if (t1) t1[3] = gtime();
}

/* q, k, v of kv head blockIdx.x / CL (its KVT tiles: GQ * HT of q, HT of k, HT of v; rank r takes
 * r, r + CL, ...), exchanged in the cluster, and its attention over the context split by rank
 */
__global__ void __launch_bounds__(NTHR, 1)
    k_qkva(int layer, int mode, unsigned long long *ts, int G) {
    namespace cg = cooperative_groups;
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    cg::cluster_group cl = cg::this_cluster();
    uint8_t *ring = sm;
    uint32_t *xp = (uint32_t *)(sm + QST * STAGE);
    float *X = (float *)(xp + HD / 2), *XS = X + HD / 64, *red = XS + HD / 64;
    float *misc = red + CW * 8 * 16;
    uint64_t *full = (uint64_t *)(misc + 32), *kvbar = full + QST;
    uint8_t *a = sm + QA_OFF;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, tid = threadIdx.x;
    const int r = (int)cl.block_rank(), kvh = blockIdx.x / CL;
    const Phase &P = c_ph[layer * NPH];
    auto tile_of = [&](int j) { /* the kv head's j-th tile's index in the q, k, v matrix */
                                const int q = GQ * HT; /* the rows of q, k, v start at tiles 0, HD /
                                                          16, (HD + NKV HDIM) / 16 */
                                return j < q ? kvh * q + j
                                       : j < q + HT
                                           ? HD / 16 + kvh * HT + (j - q)
                                           : (HD + NKV * HDIM) / 16 + kvh * HT + (j - q - HT);
    };
    if (tid == 0) {
        for (int s = 0; s < QST; s++) mbar_init(&full[s], 1);
        mbar_init(kvbar, 1);
        mbar_init_fence();
    }
    __syncthreads();
    unsigned long long *t0 = stamp_slot(ts, true, tid, layer * NPH, G),
                       *t1 = stamp_slot(ts, true, tid, layer * NPH + 1, G);
    if (t0) t0[0] = gtime();
    if (wid == CW) { /* producer: the K, V rows and the block's tiles, one stage each */
        if (lane == 0) {
            kv_load(a, layer, kvh, r, kvbar);
            for (int i = 0; i < TPB; i++) {
                const int tile = tile_of(r + CL * i);
                if (mode & M_NOCOPY) {
                    mbar_arrive(&full[i]);
                    continue;
                }
                mbar_expect(&full[i], CPS * (512 + 64));
                bulk_copy(ring + i * STAGE, P.m[0].codes + (size_t)tile * CPS * 512, CPS * 512,
                          &full[i], policy_evict_first());
                bulk_copy(ring + i * STAGE + CPS * 512, P.m[0].pairs + (size_t)tile * CPS * 16,
                          CPS * 64, &full[i], policy_evict_first());
            }
        }
        cl.sync();
        cl.sync();
        cl.sync();
        return;
    }
    auto csync = [] { named_sync(1, CW * 32); };
    pdl_wait();
    if (t0) t0[1] = gtime();
    stage_x(P.x, HD, 1, xp, X, XS, misc, tid, csync);
    if (t0) t0[2] = gtime();
    float *rows = (float *)(a + A_ROWS);
    for (int i = 0; i < TPB; i++) {
        float acc[1][4] = {};
        mbar_wait(&full[i], 0);
        stage_math<1>(acc, ring + i * STAGE, xp, X, XS, 0, wid, lane, nullptr);
        float sum[1];
        tile_sum<1>(acc, red, tid, sum, csync);
        if (tid < 128 && (tid & 7) == 0) rows[i * 16 + (tid >> 3)] = sum[0];
        csync();
    }
    if (t0) t0[3] = gtime();
    cl.sync(); /* every rank's rows written */
    if (t1) t1[0] = t1[1] = gtime();
    attn_inputs(a, layer, kvh, tid, r == CL - 1, [&](int j) {
        const int jt = j / 16; /* the kv head's tile jt: rank jt % CL's slot jt / CL */
        return cl.map_shared_rank(rows, jt % CL)[(jt / CL) * 16 + j % 16];
    });
    attn_finish(a, layer, kvh, tid, kvbar, t1, csync);
}

/* The same attention as a launch of its own after the q, k, v GEMV (rows from global memory) */
__global__ void __launch_bounds__(CW * 32, 1) k_attn(int layer, unsigned long long *ts, int G) {
    namespace cg = cooperative_groups;
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    cg::cluster_group cl = cg::this_cluster();
    uint64_t *kvbar = (uint64_t *)sm;
    uint8_t *a = sm + 128;
    const int tid = threadIdx.x, r = (int)cl.block_rank(), kvh = blockIdx.x / CL;
    unsigned long long *t1 = stamp_slot(ts, true, tid, layer * NPH + 1, G);
    if (t1) t1[0] = gtime();
    if (tid == 0) {
        mbar_init(kvbar, 1);
        mbar_init_fence();
        kv_load(a, layer, kvh, r, kvbar);
    }
    auto csync = [] { named_sync(1, CW * 32); };
    csync();
    pdl_wait();
    if (t1) t1[1] = gtime();
    const float *qkv = c_ph[layer * NPH].y;
    attn_inputs(a, layer, kvh, tid, r == CL - 1, [&](int j) {
        const int row = j < GQ * HDIM ? kvh * GQ * HDIM + j
                        : j < (GQ + 1) * HDIM
                            ? HD + kvh * HDIM + (j - GQ * HDIM)
                            : HD + NKV * HDIM + kvh * HDIM + (j - (GQ + 1) * HDIM);
        return __ldcg(qkv + row);
    });
    attn_finish(a, layer, kvh, tid, kvbar, t1, csync);
}

/* ---- host ---- */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd() {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand() {
    return (rnd() & 0xFFFFFF) / 16777216.f;
}

struct HMat { /* host copy, for the reference */
    std::vector<uint8_t> codes;
    std::vector<uint32_t> pairs;
    int rows, K;
};
static HMat make_mat(int rows, int K) {
    HMat m;
    m.rows = rows, m.K = K;
    m.codes.resize((size_t)rows * K / 2);
    for (size_t i = 0; i < m.codes.size(); i += 2) {
        const uint32_t v = rnd();
        m.codes[i] = (uint8_t)v, m.codes[i + 1] = (uint8_t)(v >> 8);
    }
    m.pairs.resize((size_t)rows * K / 64);
    for (auto &p : m.pairs) {
        const float s = (0.5f + frand()) * 0.6f / sqrtf((float)K);
        const __half hs = __float2half(s), hb = __float2half(-8.f * s);
        p = (uint32_t)__half_as_ushort(hs) | (uint32_t)__half_as_ushort(hb) << 16;
    }
    return m;
}
/* tile `tile` of the dequantised matrix, rows [16][K] (the mma layout of cuda_mma.cuh's chunk
 * math: lane (g, t), k-step s, nibble n of its word is row g + 8 (n & 1), column
 * 16 s + 2 t + (n >> 2 & 1) + 8 (n >> 1 & 1) of the chunk) */
static void dequant_tile(const HMat &m, int tile, std::vector<float> &w) {
    const int nch = m.K / 64;
    for (int c = 0; c < nch; c++) {
        const uint8_t *ch = &m.codes[((size_t)tile * nch + c) * 512];
        float sc[16], bi[16];
        for (int r = 0; r < 16; r++) {
            const uint32_t pr = m.pairs[((size_t)tile * nch + c) * 16 + r];
            sc[r] = __half2float(__ushort_as_half((unsigned short)(pr & 0xffff)));
            bi[r] = __half2float(__ushort_as_half((unsigned short)(pr >> 16)));
        }
        for (int lane = 0; lane < 32; lane++)
            for (int s4 = 0; s4 < 4; s4++) {
                uint32_t wd;
                memcpy(&wd, ch + lane * 16 + s4 * 4, 4);
                const int gg = lane >> 2, tt = lane & 3;
                for (int n = 0; n < 8; n++) {
                    const int row = gg + 8 * (n & 1);
                    const int col = 16 * s4 + 2 * tt + ((n >> 2) & 1) + 8 * ((n >> 1) & 1);
                    w[(size_t)row * m.K + c * 64 + col] =
                        sc[row] * (float)((wd >> (4 * n)) & 15) + bi[row];
                }
            }
    }
}
static float h16(float v) {
    return __half2float(__float2half(v));
}
/* x as the kernels stage it: rounded to half, or (MS_INT8) to int8 per 64-chunk times its scale
 */
static void stage_ref(float *x, int K) {
    if (!MS_INT8)
        for (int i = 0; i < K; i++) x[i] = h16(x[i]);
    else
        for (int c = 0; c < K; c += 64) {
            float mx = 0.f;
            for (int i = c; i < c + 64; i++) mx = fmaxf(mx, fabsf(x[i]));
            const float sx = mx > 0.f ? mx / 127.f : 1.f;
            for (int i = c; i < c + 64; i++)
                x[i] = sx * nearbyintf(fminf(fmaxf(x[i] / sx, -127.f), 127.f));
        }
}
static void ref_gemv(const HMat &m, const float *x, double *y) {
    std::vector<float> w((size_t)16 * m.K);
    for (int tile = 0; tile < m.rows / 16; tile++) {
        dequant_tile(m, tile, w);
        for (int r = 0; r < 16; r++) {
            double s = 0;
            for (int k = 0; k < m.K; k++) s += (double)w[(size_t)r * m.K + k] * x[k];
            y[tile * 16 + r] = s;
        }
    }
}

int main(int argc, char **argv) {
    int dev = 0, G = 0;
    CK(cudaDeviceGetAttribute(&G, cudaDevAttrMultiProcessorCount, dev));
    const int smem =
        NST * STAGE + FF * 2 + 2 * FF / 64 * 4 + CW * 8 * 16 * 4 + 32 * 4 + 2 * NST * 8;
    CK(cudaFuncSetAttribute(k_step, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    /* weights: per layer qkv, o, gate, up, down */
    std::vector<HMat> hm;
    size_t bytes = 0;
    for (int l = 0; l < NL; l++) {
        hm.push_back(make_mat(NQKV, HD));
        hm.push_back(make_mat(HD, HD));
        hm.push_back(make_mat(FF, HD));
        hm.push_back(make_mat(FF, HD));
        hm.push_back(make_mat(HD, FF));
    }
    std::vector<Mat> dm;
    for (auto &m : hm) {
        Mat d;
        uint8_t *c;
        uint32_t *p;
        CK(cudaMalloc(&c, m.codes.size()));
        CK(cudaMalloc(&p, m.pairs.size() * 4));
        CK(cudaMemcpy(c, m.codes.data(), m.codes.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(p, m.pairs.data(), m.pairs.size() * 4, cudaMemcpyHostToDevice));
        d.codes = c, d.pairs = p;
        dm.push_back(d);
        bytes += m.codes.size() + m.pairs.size() * 4;
    }
    float *h, *qkv, *att, *act;
    unsigned *cnt;
    CK(cudaMalloc(&h, HD * 4));
    CK(cudaMalloc(&qkv, NQKV * 4));
    CK(cudaMalloc(&att, HD * 4));
    CK(cudaMalloc(&act, FF * 4));
    CK(cudaMalloc(&cnt, (size_t)NL * NPH * (G + 1) * 4)); /* counters | flags [phase][block] */
    std::vector<Phase> ph(NL * NPH);
    for (int l = 0; l < NL; l++) {
        const Mat *m = &dm[l * 5];
        Phase *P = &ph[l * NPH];
        P[0] = Phase{{m[0], m[0]}, 1, HD, NQKV / 16, EPI_STORE, 1, h, qkv};
        P[1] = Phase{{m[0], m[0]}, 1, HD, 0, EPI_ATTN, 0, qkv, att};
        P[2] = Phase{{m[1], m[1]}, 1, HD, HD / 16, EPI_ADD, 0, att, h};
        P[3] = Phase{{m[2], m[3]}, 2, HD, FF / 16, EPI_SWIGLU, 1, h, act};
        P[4] = Phase{{m[4], m[4]}, 1, FF, HD / 16, EPI_ADD, 0, act, h};
    }
    CK(cudaMemcpyToSymbol(c_ph, ph.data(), sizeof(Phase) * ph.size()));
    /* the KV cache (M_REAL, M_FUSED): random rows, slot CTX rewritten by every step */
    const size_t nkv = (size_t)NL * NKV * 2 * (CTX + 1) * HDIM;
    std::vector<__half> hkv(nkv);
    for (auto &v : hkv) v = __float2half(frand() * 2.f - 1.f);
    __half *kvc;
    CK(cudaMalloc(&kvc, nkv * 2));
    CK(cudaMemcpy(kvc, hkv.data(), nkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpyToSymbol(g_kvc, &kvc, sizeof(kvc)));
    const int qsmem = QA_OFF + A_BYTES, asmem = 128 + A_BYTES;
    CK(cudaFuncSetAttribute(k_qkva, cudaFuncAttributeMaxDynamicSharedMemorySize, qsmem));
    CK(cudaFuncSetAttribute(k_attn, cudaFuncAttributeMaxDynamicSharedMemorySize, asmem));
    if (CL > 8) {
        CK(cudaFuncSetAttribute(k_qkva, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
        CK(cudaFuncSetAttribute(k_attn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    }
    printf("clusters of %d (q, k, v: %d tiles a block), context %d (%d rows a block), shared "
           "memory: k_step %d, k_qkva %d, k_attn %d bytes\n",
           CL, TPB, CTX, CTX / CL, smem, qsmem, asmem);
    std::vector<float> h0(HD);
    for (auto &v : h0) v = frand() * 2.f - 1.f;

    unsigned long long *tsd = nullptr; /* the stamps, for one step at a time */
    const size_t nts = (size_t)NL * NPH * G * 4;
    CK(cudaMalloc(&tsd, nts * 8));
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    unsigned epoch = 0;
    auto reset = [&] {
        CK(cudaMemcpyAsync(h, h0.data(), HD * 4, cudaMemcpyHostToDevice, s));
        CK(cudaMemsetAsync(cnt, 0, (size_t)NL * NPH * (G + 1) * 4, s));
        epoch = 0;
    };
    auto launch = [&](int p0, int p1, int mode, int ans) {
        cudaLaunchConfig_t cf = {};
        cf.gridDim = dim3(G), cf.blockDim = dim3(NTHR), cf.dynamicSmemBytes = smem, cf.stream = s;
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cf.attrs = at, cf.numAttrs = (mode & M_SPLIT) ? 1 : 0;
        CK(cudaLaunchKernelEx(&cf, k_step, p0, p1, (unsigned)G * (epoch + 1), mode, cnt, ans, tsd));
    };
    /* M_FUSED: k_qkva for a layer's q, k, v and attention; M_REAL: k_attn after q, k, v */
    auto launch_cl = [&](int layer, int mode) {
        cudaLaunchConfig_t cf = {};
        const bool fused = mode & M_FUSED;
        cf.gridDim = dim3(NKV * CL), cf.blockDim = dim3(fused ? NTHR : CW * 32),
        cf.dynamicSmemBytes = fused ? qsmem : asmem, cf.stream = s;
        cudaLaunchAttribute at[2];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        at[1].id = cudaLaunchAttributeClusterDimension;
        at[1].val.clusterDim.x = CL, at[1].val.clusterDim.y = 1, at[1].val.clusterDim.z = 1;
        cf.attrs = at, cf.numAttrs = 2;
        if (fused)
            CK(cudaLaunchKernelEx(&cf, k_qkva, layer, mode, tsd, G));
        else
            CK(cudaLaunchKernelEx(&cf, k_attn, layer, tsd, G));
    };
    auto step = [&](int mode, int ans) { /* one decode step */
                                         if (mode & M_SPLIT)
                                             for (int p = 0; p < NL * NPH; p++) {
                                                 const int kd = p % NPH;
                                                 if ((mode & M_FUSED) && kd <= 1) {
                                                     if (kd == 0) launch_cl(p / NPH, mode);
                                                 } else if ((mode & M_REAL) && kd == 1) {
                                                     launch_cl(p / NPH, mode);
                                                 } else {
                                                     launch(p, p + 1, mode, ans);
                                                 }
                                             }
                                         else
                                             launch(0, NL * NPH, mode, ans), epoch++;
    };

    /* MS_PROFILE=m (a mode's bits, e.g. 2 split, 10 split without copies): three steps of that
     * mode and nothing else, for ncu (a split step's phase p is launch 80 s + p) */
    if (getenv("MS_PROFILE")) {
        reset();
        for (int i = 0; i < 3; i++) step(atoi(getenv("MS_PROFILE")), 0);
        CK(cudaStreamSynchronize(s));
        return 0;
    }

    /* correctness: one step each way against the reference */
    std::vector<float> out[5];
    const int cm[5] = {M_MEGA, M_SPLIT, M_MEGA | M_FLAGS, M_SPLIT | M_REAL, M_SPLIT | M_FUSED};
    const char *cn[5] = {"mega", "split", "mega-flags", "split-real", "split-fused"};
    const int nchk = MS_8B ? 3 : 5; /* the 8B shape runs no real attention */
    for (int v = 0; v < nchk; v++) {
        reset();
        step(cm[v], 0);
        CK(cudaStreamSynchronize(s));
        out[v].resize(HD);
        CK(cudaMemcpy(out[v].data(), h, HD * 4, cudaMemcpyDeviceToHost));
    }
    for (int real = 0; real < (MS_8B ? 1 : 2); real++) {
        std::vector<float> hh = h0, x(FF);
        std::vector<double> y(FF), y2(FF);
        auto normed = [&](const std::vector<float> &v, int K) {
            double ss = 0;
            for (int i = 0; i < K; i++) ss += (double)v[i] * v[i];
            const float rs = (float)(1.0 / sqrt(ss / K + 1e-5));
            for (int i = 0; i < K; i++) x[i] = v[i] * rs;
            stage_ref(x.data(), K);
        };
        for (int l = 0; l < NL; l++) {
            const HMat *m = &hm[l * 5];
            normed(hh, HD);
            ref_gemv(m[0], x.data(), y.data());
            std::vector<float> q(NQKV), a(HD);
            for (int i = 0; i < NQKV; i++) q[i] = (float)y[i];
            for (int hd = 0; hd < NHEAD && !real; hd++)
                for (int i = 0; i < HDIM; i++)
                    a[hd * HDIM + i] = q[hd * HDIM + i] + q[HD + 8 * HDIM + (hd / 4) * HDIM + i];
            for (int hd = 0; hd < NHEAD && real; hd++) { /* cached rows, then this step's */
                const int kvh = hd / GQ;
                const __half *kc = &hkv[((size_t)(l * NKV + kvh) * 2) * (CTX + 1) * HDIM];
                const __half *vc = kc + (size_t)(CTX + 1) * HDIM;
                std::vector<double> sc(CTX + 1);
                double mx = -1e300, den = 0;
                for (int p = 0; p <= CTX; p++) {
                    double d = 0;
                    for (int i = 0; i < HDIM; i++) {
                        const float kv = p < CTX ? __half2float(kc[(size_t)p * HDIM + i])
                                                 : h16(q[HD + kvh * HDIM + i]);
                        d += (double)q[hd * HDIM + i] * 0.125 * kv;
                    }
                    sc[p] = d, mx = std::max(mx, d);
                }
                for (int p = 0; p <= CTX; p++) sc[p] = exp(sc[p] - mx), den += sc[p];
                for (int i = 0; i < HDIM; i++) {
                    double o = 0;
                    for (int p = 0; p <= CTX; p++)
                        o += sc[p] * (p < CTX ? __half2float(vc[(size_t)p * HDIM + i])
                                              : h16(q[HD + NKV * HDIM + kvh * HDIM + i]));
                    a[hd * HDIM + i] = (float)(o / den);
                }
            }
            for (int i = 0; i < HD; i++) x[i] = a[i];
            stage_ref(x.data(), HD);
            ref_gemv(m[1], x.data(), y.data());
            for (int i = 0; i < HD; i++) hh[i] += (float)y[i];
            normed(hh, HD);
            ref_gemv(m[2], x.data(), y.data());
            ref_gemv(m[3], x.data(), y2.data());
            for (int i = 0; i < FF; i++) {
                const float gt = (float)y[i], up = (float)y2[i];
                x[i] = gt / (1.f + expf(-gt)) * up;
            }
            stage_ref(x.data(), FF);
            ref_gemv(m[4], x.data(), y.data());
            for (int i = 0; i < HD; i++) hh[i] += (float)y[i];
        }
        for (int v = real ? 3 : 0; v < (real ? 5 : 3); v++) {
            double e = 0, n = 0;
            for (int i = 0; i < HD; i++) e += pow(out[v][i] - hh[i], 2), n += (double)hh[i] * hh[i];
            printf("%s: rel L2 against the reference %.2e (%s)\n", cn[v], sqrt(e / n),
                   sqrt(e / n) < 1e-2 ? "ok" : "FAIL");
        }
        if (!real)
            printf("mega, split and mega-flags %s\n",
                   memcmp(out[0].data(), out[1].data(), HD * 4) ||
                           memcmp(out[2].data(), out[1].data(), HD * 4)
                       ? "DIFFER"
                       : "agree bit for bit");
        else
            printf("split-real and split-fused %s\n",
                   memcmp(out[3].data(), out[4].data(), HD * 4) ? "DIFFER" : "agree bit for bit");
    }

    /* where a step's time goes: one stamped step each way (spans over the phases of each kind,
     * averaged over the layers; release: from the previous phase's last block end to a block's
     * release, staged: x staged, work: to the block's end; means over blocks, max in brackets)
     */
    {
        const char *kind[NPH] = {"qkv", "attn", "o", "gate+up", "down"};
        const char *nm[7] = {"mega",       "split",      "mega-nocopy", "split-nocopy",
                             "mega-flags", "split-real", "split-fused"};
        const int md[7] = {
            M_MEGA,           M_SPLIT,          M_MEGA | M_NOCOPY, M_SPLIT | M_NOCOPY,
            M_MEGA | M_FLAGS, M_SPLIT | M_REAL, M_SPLIT | M_FUSED};
        std::vector<unsigned long long> hts(nts);
        for (int a : std::vector<int>{0, 3000})
            for (int v = 0; v < (MS_8B ? 5 : 7); v++) {
                for (int r = 0; r < 3; r++) { /* the last of three */
                    reset();
                    CK(cudaMemsetAsync(tsd, 0, nts * 8, s));
                    step(md[v], a);
                }
                CK(cudaStreamSynchronize(s));
                CK(cudaMemcpy(hts.data(), tsd, nts * 8, cudaMemcpyDeviceToHost));
                double span[NPH] = {}, rel[NPH] = {}, relx[NPH] = {}, stg[NPH] = {}, wk[NPH] = {},
                       wkx[NPH] = {};
                int n[NPH] = {}, nl[NPH] = {};
                for (int p = 1; p < NL * NPH; p++) {
                    unsigned long long last = 0, end = 0;
                    for (int b = 0; b < G; b++) {
                        last = std::max(last, hts[((size_t)(p - 1) * G + b) * 4 + 3]);
                        end = std::max(end, hts[((size_t)p * G + b) * 4 + 3]);
                    }
                    const int kd = p % NPH;
                    span[kd] += (end - last) / 1e3, nl[kd]++;
                    double mx = 0, wmx = 0;
                    for (int b = 0; b < G; b++) {
                        const unsigned long long *q = &hts[((size_t)p * G + b) * 4];
                        if (!q[3]) continue;
                        const double r1 = ((double)q[1] - (double)last) / 1e3;
                        rel[kd] += r1, mx = std::max(mx, r1);
                        if (q[2]) stg[kd] += (q[2] - q[1]) / 1e3;
                        wk[kd] += (q[3] - (q[2] ? q[2] : q[1])) / 1e3;
                        wmx = std::max(wmx, (q[3] - (q[2] ? q[2] : q[1])) / 1e3);
                        n[kd]++;
                    }
                    relx[kd] += mx, wkx[kd] += wmx;
                }
                if (a == 0 && (md[v] & (M_REAL | M_FUSED))) { /* one more step, stamped inside */
                    const size_t na = (size_t)NL * NKV * CL * AS_N;
                    unsigned long long *ad;
                    CK(cudaMalloc(&ad, na * 8));
                    CK(cudaMemset(ad, 0, na * 8));
                    CK(cudaMemcpyToSymbol(g_ast, &ad, sizeof(ad)));
                    step(md[v], a);
                    CK(cudaStreamSynchronize(s));
                    std::vector<unsigned long long> h(na);
                    CK(cudaMemcpy(h.data(), ad, na * 8, cudaMemcpyDeviceToHost));
                    unsigned long long *nul = nullptr;
                    CK(cudaMemcpyToSymbol(g_ast, &nul, sizeof(nul)));
                    CK(cudaFree(ad));
                    double d[AS_N] = {};
                    for (size_t b = 0; b < (size_t)NL * NKV * CL; b++)
                        for (int k2 = 1; k2 < 7; k2++)
                            d[k2] +=
                                (h[b * AS_N + k2] - h[b * AS_N + k2 - 1]) / 1e3 / (NL * NKV * CL);
                    printf("%s inside the attention, us: scores %.2f softmax %.2f V %.2f partial "
                           "%.2f cluster barrier %.2f merge %.2f\n",
                           nm[v], d[1], d[2], d[3], d[4], d[5], d[6]);
                }
                printf("stamps attn %d %s:", a, nm[v]);
                for (int kd = 0; kd < NPH; kd++)
                    printf(" | %s span %.2f release %.2f [%.2f] staged %.2f work %.2f [%.2f]",
                           kind[kd], span[kd] / nl[kd], rel[kd] / n[kd], relx[kd] / nl[kd],
                           stg[kd] / n[kd], wk[kd] / n[kd], wkx[kd] / nl[kd]);
                printf("\n");
            }
    }
    tsd = nullptr;

    /* timing: steps per variant, interleaved rounds; a CUDA graph of one step each */
    std::vector<int> ans = {0};
    for (int i = 1; i < argc; i++) ans.push_back(atoi(argv[i]));
    const double floor_us = bytes / 3.0e6; /* a step at 3.0 TB/s */
    printf("weights %.1f MB a step (%.2f MB a layer): %.1f us a layer at 3.0 TB/s\n", bytes / 1e6,
           bytes / 1e6 / NL, floor_us / NL);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    enum { NV = 11 };
    const char *names[NV] = {"mega",         "split",       "nowait",       "mega-nocopy",
                             "split-nocopy", "mega-flags",  "flags-nocopy", "split-real",
                             "split-fused",  "real-nocopy", "fused-nocopy"};
    const int modes[NV] = {M_MEGA,
                           M_SPLIT,
                           M_MEGA | M_NOWAIT,
                           M_MEGA | M_NOCOPY,
                           M_SPLIT | M_NOCOPY,
                           M_MEGA | M_FLAGS,
                           M_MEGA | M_FLAGS | M_NOCOPY,
                           M_SPLIT | M_REAL,
                           M_SPLIT | M_FUSED,
                           M_SPLIT | M_REAL | M_NOCOPY,
                           M_SPLIT | M_FUSED | M_NOCOPY};
    for (int a : ans) {
        /* split modes: one step's launches captured once, replayed */
        cudaGraph_t gr[NV] = {};
        cudaGraphExec_t gx[NV] = {};
        for (int c = 0; c < NV; c++)
            if ((modes[c] & M_SPLIT) && !(MS_8B && (modes[c] & (M_REAL | M_FUSED)))) {
                CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
                step(modes[c], a);
                CK(cudaStreamEndCapture(s, &gr[c]));
                CK(cudaGraphInstantiate(&gx[c], gr[c], 0));
            }
        for (int round = 0; round < 3; round++)
            for (int v = 0; v < NV; v++) {
                if (MS_8B && (modes[v] & (M_REAL | M_FUSED))) continue;
                const int N = 200;
                auto run = [&] {
                    if (modes[v] & M_SPLIT)
                        CK(cudaGraphLaunch(gx[v], s));
                    else
                        step(modes[v], a);
                };
                reset();
                for (int i = 0; i < 5; i++) run();
                CK(cudaEventRecord(e0, s));
                for (int i = 0; i < N; i++) run();
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                const double us = ms * 1e3 / N;
                printf("attn %4d ns  %-6s round %d: %7.1f us a step, %5.2f us a layer, %.0f "
                       "GB/s\n",
                       a, names[v], round, us, us / NL, bytes / us / 1e3);
            }
        for (int c = 0; c < NV; c++)
            if (gx[c]) {
                CK(cudaGraphExecDestroy(gx[c]));
                CK(cudaGraphDestroy(gr[c]));
            }
    }
    return 0;
}
