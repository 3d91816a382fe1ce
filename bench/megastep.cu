/* bench/megastep.cu: does one persistent kernel for the whole decode step beat a chain of launches
 * on the llama3.2-1b shape? A design experiment for the 1B goal (bench/cuda-notes.md, round 24),
 * not part of the build:
 *   nvcc -O3 -std=c++17 -Isrc -Iinclude -DMS_CW=16 -gencode=arch=compute_90a,code=sm_90a \
 *     -o megastep bench/megastep.cu && ./megastep [attention stand-in ns ...]
 * (-DMS_CW: consumer warps, 8 by default; -DMS_NST: ring stages; -DMS_INFL: stages in flight;
 * -DMS_ONERED=1: one reduction over the warps a phase; -DMS_CHAINS=2 or 4: a chunk's MMAs in that
 * many accumulator chains. MS_PROFILE=mode in the environment: three steps of that mode only,
 * for ncu.)
 *
 * The step: 16 layers of five phases over q4g64 weights in the mma layout (cuda_mma.cuh's chunk
 * math, f16 (scale, bias) pairs): q, k, v (3072 x 2048, the RMSNorm of h folded into x's staging),
 * an attention stand-in (32 blocks, one per head: out = q + v of its kv head, then a spin of A ns;
 * the real attention, RoPE and the KV cache are not here), o (2048 x 2048, h += o x), gate and up
 * (2 x 8192 x 2048, SwiGLU, x normed) and down (2048 x 8192, h += down x). Every block of one
 * per SM runs a producer warp that streams its tiles' slices with bulk copies through a ring of
 * stages (mbarriers) and MS_CW consumer warps that stage x as half (with per-chunk sums), take the
 * stages and write each 16-row tile's epilogue. The same kernel runs the step these ways:
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
 * It prints one stamped step of each (per phase kind: the span from the previous phase's last
 * block to this one's, and per block the release after that, the staging of x and the work)
 * and then microseconds a step and a layer over 200 steps, three rounds interleaved.
 * Checks: mega, mega-flags and split give the same bits; each against a CPU reference of the same
 * step (double sums of the dequantised weights times x rounded to half) within 1e-2 relative L2.
 *
 * H100, round 24 (MS_CW=16, 10 stages, attention 0 ns), us a layer: split 23.0, mega 25.1,
 * mega-flags 30.7; without copies split 19.7, mega 20.8. The persistent form loses: its grid
 * barrier releases after 0.8 us without the stream and 2.2-2.3 us with it (q, k, v and down), the
 * launch chain's PDL release after 0.7-1.1; and its stream running ahead buys nothing, because
 * the consumers' work (x's staging, the chunk math, a block-wide reduction per tile) runs at about
 * the HBM rate: gate+up takes 5.2 us of work with no copies at all. That work is latency-bound
 * (ncu: 0.41 instructions a cycle a scheduler at 4 warps, stalls spread over fixed-latency
 * waits, barriers and shared-memory loads); one reduction a phase instead of a tile, and 2 or 4
 * MMA chains a chunk instead of 1, each left it within 0.2 us. */
#include "../src/backend/cuda/cuda_mma.cuh"
#include "bench_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <type_traits>
#include <vector>

enum { HD = 2048, NQKV = 3072, FF = 8192, NL = 16, NPH = 5, NHEAD = 32, HDIM = 64 };
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
enum { M_MEGA = 1, M_SPLIT = 2, M_NOWAIT = 4, M_NOCOPY = 8, M_FLAGS = 16 };
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

/* A warp's share of one stage (slice sl of the NTL tiles it holds): chunks wid, wid + CW, ... of
 * each tile, unrolled so that their loads and MMA chains overlap, into acc; then the warp hands
 * the stage back. */
template <int NTL>
__device__ __forceinline__ void stage_math(float (&acc)[NTL][4], const uint8_t *sb,
                                           const uint32_t *xp, const float *X, int sl, int wid,
                                           int lane, uint64_t *empty) {
    constexpr int CPSN = CPS / NTL, CPW = CPSN / CW;
    static_assert(CPW >= 1, "chunks a warp");
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int vv = 0; vv < CPW; vv++) {
        const int j = wid + CW * vv, c = sl * CPSN + j;
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
    if (lane == 0) mbar_arrive(empty);
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
    float *red = X + FF / 64;                      /* [CW][8][16] */
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
        unsigned long long *tp =
            ts && has && tid == 0 ? ts + ((size_t)p * G + blockIdx.x) * 4 : nullptr;
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
                    P.y[h * HDIM + i] =
                        __ldcg(P.x + h * HDIM + i) + __ldcg(P.x + 2560 + (h / 4) * HDIM + i);
                if (tid == 0 && attn_ns > 0) {
                    const uint64_t t0 = gtime();
                    while (gtime() - t0 < (uint64_t)attn_ns) {
                    }
                }
            } else {
                /* x as half pairs (normed: x * rsqrt(mean(x^2) + eps)) and the chunks' sums of
                 * them: a thread's U float4 are contiguous (U <= 8), all its loads in flight at
                 * once, and a chunk's threads are neighbouring lanes */
                const int K = P.K, U = K / (CW * 128), base = tid * U * 4;
                float4 v[8];
#pragma unroll
                for (int u = 0; u < 8; u++)
                    if (u < U) v[u] = __ldcg((const float4 *)(P.x + base + u * 4));
                float rs = 1.f;
                if (P.norm) {
                    float ss = 0.f;
#pragma unroll
                    for (int u = 0; u < 8; u++)
                        if (u < U) ss = sq4(v[u], ss);
                    rs = rsqrtf(block_sum<CW * 32>(ss, tid, misc, csync) / K + 1e-5f);
                }
                float cs = 0.f;
#pragma unroll
                for (int u = 0; u < 8; u++)
                    if (u < U) {
                        const uint32_t a = h2_bits(v[u].x * rs, v[u].y * rs);
                        const uint32_t b = h2_bits(v[u].z * rs, v[u].w * rs);
                        xp[xperm(base + u * 4)] = a, xp[xperm(base + u * 4 + 2)] = b;
                        const __half2 ha = *(const __half2 *)&a, hb = *(const __half2 *)&b;
                        cs +=
                            __low2float(ha) + __high2float(ha) + __low2float(hb) + __high2float(hb);
                    }
                const int tpc = 16 / U; /* threads a chunk */
                for (int o = 1; o < tpc; o <<= 1) cs += __shfl_xor_sync(0xffffffffu, cs, o);
                if (tid % tpc == 0) X[base / 64] = cs;
                csync();
                if (tp) tp[2] = gtime();
                /* the phase's tiles, NTL a stage (2: gate and up); every warp's chunks of a stage
                 * unrolled, so their loads and MMA chains overlap */
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
                            stage_math<NTL>(acc, ring + st * STAGE, xp, X, sl, wid, lane,
                                            &empty[st]);
                        }
                        if (t == 0)
#pragma unroll
                            for (int i = 0; i < NTL; i++) {
                                red[(wid * 8 + i) * 16 + g] = acc[i][0];
                                red[(wid * 8 + i) * 16 + g + 8] = acc[i][2];
                            }
                        csync();
                        if (tid < 128) { /* row r8's sums: 8 lanes, each over warps part + 8n */
                            float sum[NTL];
#pragma unroll
                            for (int i = 0; i < NTL; i++) {
                                sum[i] = 0.f;
                                for (int w = part; w < CW; w += 8)
                                    sum[i] += red[(w * 8 + i) * 16 + r8];
#pragma unroll
                                for (int o = 1; o < 8; o <<= 1)
                                    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], o);
                            }
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
                            stage_math<NTL>(acc[n], ring + st * STAGE, xp, X, sl, wid, lane,
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
    const int smem = NST * STAGE + FF * 2 + FF / 64 * 4 + CW * 8 * 16 * 4 + 32 * 4 + 2 * NST * 8;
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
    auto step = [&](int mode, int ans) { /* one decode step */
                                         if (mode & M_SPLIT)
                                             for (int p = 0; p < NL * NPH; p++)
                                                 launch(p, p + 1, mode, ans);
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
    std::vector<float> out[3];
    const int cm[3] = {M_MEGA, M_SPLIT, M_MEGA | M_FLAGS};
    const char *cn[3] = {"mega", "split", "mega-flags"};
    for (int v = 0; v < 3; v++) {
        reset();
        step(cm[v], 0);
        CK(cudaStreamSynchronize(s));
        out[v].resize(HD);
        CK(cudaMemcpy(out[v].data(), h, HD * 4, cudaMemcpyDeviceToHost));
    }
    {
        std::vector<float> hh = h0, x(FF);
        std::vector<double> y(FF), y2(FF);
        auto normed = [&](const std::vector<float> &v, int K) {
            double ss = 0;
            for (int i = 0; i < K; i++) ss += (double)v[i] * v[i];
            const float rs = (float)(1.0 / sqrt(ss / K + 1e-5));
            for (int i = 0; i < K; i++) x[i] = h16(v[i] * rs);
        };
        for (int l = 0; l < NL; l++) {
            const HMat *m = &hm[l * 5];
            normed(hh, HD);
            ref_gemv(m[0], x.data(), y.data());
            std::vector<float> q(NQKV), a(HD);
            for (int i = 0; i < NQKV; i++) q[i] = (float)y[i];
            for (int hd = 0; hd < NHEAD; hd++)
                for (int i = 0; i < HDIM; i++)
                    a[hd * HDIM + i] = q[hd * HDIM + i] + q[2560 + (hd / 4) * HDIM + i];
            for (int i = 0; i < HD; i++) x[i] = h16(a[i]);
            ref_gemv(m[1], x.data(), y.data());
            for (int i = 0; i < HD; i++) hh[i] += (float)y[i];
            normed(hh, HD);
            ref_gemv(m[2], x.data(), y.data());
            ref_gemv(m[3], x.data(), y2.data());
            for (int i = 0; i < FF; i++) {
                const float gt = (float)y[i], up = (float)y2[i];
                x[i] = h16(gt / (1.f + expf(-gt)) * up);
            }
            ref_gemv(m[4], x.data(), y.data());
            for (int i = 0; i < HD; i++) hh[i] += (float)y[i];
        }
        for (int v = 0; v < 3; v++) {
            double e = 0, n = 0;
            for (int i = 0; i < HD; i++) e += pow(out[v][i] - hh[i], 2), n += (double)hh[i] * hh[i];
            printf("%s: rel L2 against the reference %.2e (%s)\n", cn[v], sqrt(e / n),
                   sqrt(e / n) < 1e-2 ? "ok" : "FAIL");
        }
        printf("mega, split and mega-flags %s\n",
               memcmp(out[0].data(), out[1].data(), HD * 4) ||
                       memcmp(out[2].data(), out[1].data(), HD * 4)
                   ? "DIFFER"
                   : "agree bit for bit");
    }

    /* where a step's time goes: one stamped step each way (spans over the phases of each kind,
     * averaged over the layers; release: from the previous phase's last block end to a block's
     * release, staged: x staged, work: to the block's end; means over blocks, max in brackets) */
    {
        const char *kind[NPH] = {"qkv", "attn", "o", "gate+up", "down"};
        const char *nm[5] = {"mega", "split", "mega-nocopy", "split-nocopy", "mega-flags"};
        const int md[5] = {M_MEGA, M_SPLIT, M_MEGA | M_NOCOPY, M_SPLIT | M_NOCOPY,
                           M_MEGA | M_FLAGS};
        std::vector<unsigned long long> hts(nts);
        for (int a : std::vector<int>{0, 3000})
            for (int v = 0; v < 5; v++) {
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
    const char *names[7] = {"mega",         "split",      "nowait",      "mega-nocopy",
                            "split-nocopy", "mega-flags", "flags-nocopy"};
    const int modes[7] = {M_MEGA,
                          M_SPLIT,
                          M_MEGA | M_NOWAIT,
                          M_MEGA | M_NOCOPY,
                          M_SPLIT | M_NOCOPY,
                          M_MEGA | M_FLAGS,
                          M_MEGA | M_FLAGS | M_NOCOPY};
    for (int a : ans) {
        /* split: one step's 80 launches captured once, replayed */
        cudaGraph_t gr[2];
        cudaGraphExec_t gx[2];
        for (int c = 0; c < 2; c++) {
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
            step(M_SPLIT | (c ? M_NOCOPY : 0), a);
            CK(cudaStreamEndCapture(s, &gr[c]));
            CK(cudaGraphInstantiate(&gx[c], gr[c], 0));
        }
        for (int round = 0; round < 3; round++)
            for (int v = 0; v < 7; v++) {
                const int N = 200;
                auto run = [&] {
                    if (modes[v] & M_SPLIT)
                        CK(cudaGraphLaunch(gx[(modes[v] & M_NOCOPY) ? 1 : 0], s));
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
                printf("attn %4d ns  %-6s round %d: %7.1f us a step, %5.2f us a layer, %.0f GB/s\n",
                       a, names[v], round, us, us / NL, bytes / us / 1e3);
            }
        for (int c = 0; c < 2; c++) {
            CK(cudaGraphExecDestroy(gx[c]));
            CK(cudaGraphDestroy(gr[c]));
        }
    }
    return 0;
}
