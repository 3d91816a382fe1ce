/* cuda_fattn.cu: tensor-core flash attention for prefill steps (many tokens per step) over the
 * paged float16 KV cache: mma.sync m16n8k16 f16 x f16 -> f32, online softmax in registers.
 *
 * Block = (query head h, tile of <= 64 tokens of one sequence), 4 warps; warp w owns query rows
 * 16w..16w+15 of the tile (row r = token tile_start + r). The tile's q rows are converted to half
 * (times 1/sqrt(hd) * log2(e), so the softmax runs on exp2) into shared memory once and kept as
 * A fragments in registers. K/V tiles of 64 positions of the sequence (positions lo + 64k + j,
 * lo = the smallest first position any row attends) are gathered row by row through the block
 * table with 16-byte cp.async into a double buffer (zero-filled past the last position), so the
 * load of tile k+1 runs under the math of tile k. Per tile and warp: S = Q K^T (8 n8 tiles of
 * keys x hd/16 k-steps, K fragments by ldmatrix), mask per element by the row's own window
 * [first, pos] (rows may hold arbitrary positions), online softmax (row max over the quad of 4
 * lanes that share a row), P rounded to half and reused in registers as the A operand of O += P V
 * (V fragments by ldmatrix.trans). A warp whose rows attend nothing of a tile skips it.
 * Shared memory: Q [64][hd+8] + K, V [2][64][hd+8] halves (87 KB at hd 128: 2 blocks per SM); the
 * 8-half row pad makes the ldmatrix row addresses of 8 lanes fall in distinct bank quads. */
#include "cuda_internal.h"
#include "cuda_mma.cuh"
#include "cuda_tc.cuh"

#include <cuda_fp16.h>
#include <limits.h>

#define FA_BM      64 /* query rows per block */
#define FA_BN      64 /* key positions per K/V tile */
#define FA_THREADS 128

/* ---------------------------------------------------------------------------------------------
 * The kernel
 * ------------------------------------------------------------------------------------------- */

template <int HD>
__global__ void __launch_bounds__(FA_THREADS, 2) k_fattn(const __grid_constant__ cu_fattn_args a) {
    pdl_launch();
    pdl_wait(); /* q, the caches (rope/kv_store) and the index arrays come from earlier work */
    constexpr int LD = HD + 8;  /* halves per shared row */
    constexpr int CPR = HD / 8; /* 16-byte chunks per row */
    constexpr int KS = HD / 16; /* k-steps of S = Q K^T */
    constexpr int ND = HD / 8;  /* n8 tiles of O */
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __half *Qs = (__half *)fa_smem;   /* [FA_BM][LD] */
    __half *Ks = Qs + FA_BM * LD;     /* [2][FA_BN][LD] */
    __half *Vs = Ks + 2 * FA_BN * LD; /* [2][FA_BN][LD] */
    __shared__ int s_lo, s_hi;

    const int h = blockIdx.x;
    const int tile = a.n_tiles - 1 - (int)blockIdx.y; /* later tokens (more keys) first */
    const int t0 = a.tile_start[tile], cnt = a.tile_count[tile];
    const int kvh = h / (a.n_head / a.n_head_kv);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, tq = lane & 3; /* mma fragment row group / column pair */
    const int32_t *table = a.tables + (int64_t)a.seq[t0] * a.max_blocks;
    const int64_t kv_dim = (int64_t)a.n_head_kv * HD;
    const __half *kc = (const __half *)a.kc, *vc = (const __half *)a.vc;

    if (tid == 0) s_lo = INT_MAX, s_hi = -1;
    /* Q rows -> half, scaled; rows past cnt are zero */
    const float qscale = rsqrtf((float)HD) * 1.4426950408889634f;
    for (int e = tid; e < FA_BM * (HD / 4); e += FA_THREADS) {
        const int r = e / (HD / 4), c = (e % (HD / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < cnt) v = *(const float4 *)(a.q + ((int64_t)(t0 + r) * a.n_head + h) * HD + c);
        uint2 pk;
        pk.x = tc_pack(v.x * qscale, v.y * qscale);
        pk.y = tc_pack(v.z * qscale, v.w * qscale);
        *(uint2 *)(Qs + r * LD + c) = pk;
    }
    /* my two rows (16w + g, 16w + g + 8): attended positions [rlo, rhi]; empty when inactive */
    int rlo[2], rhi[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int r = warp * 16 + g + 8 * hr;
        rlo[hr] = INT_MAX, rhi[hr] = -1;
        if (r < cnt) {
            const int p = a.pos[t0 + r];
            rhi[hr] = p;
            rlo[hr] = a.window > 0 && p - a.window + 1 > 0 ? p - a.window + 1 : 0;
        }
    }
    int wlo = min(rlo[0], rlo[1]), whi = max(rhi[0], rhi[1]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        wlo = min(wlo, __shfl_xor_sync(0xffffffffu, wlo, o));
        whi = max(whi, __shfl_xor_sync(0xffffffffu, whi, o));
    }
    __syncthreads(); /* s_lo/s_hi initialised, Q tile written */
    if (lane == 0 && whi >= 0) atomicMin(&s_lo, wlo), atomicMax(&s_hi, whi);
    uint32_t qf[KS][4]; /* A fragments of my 16 rows */
#pragma unroll
    for (int kk = 0; kk < KS; kk++)
        tc_ldm4<false>(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                                   kk * 16 + (lane >> 4) * 8);
    __syncthreads();
    const int lo = s_lo, hi = s_hi;
    if (hi < 0) return; /* no active row (cnt >= 1 makes this unreachable) */
    const int n_kt = (hi - lo) / FA_BN + 1;

    /* K/V tile kt (positions lo + kt*64 + j) -> buffer buf; positions past hi are zero-filled */
    auto load_kv = [&](int kt, int buf) {
        const int kb = lo + kt * FA_BN;
        for (int c = tid; c < FA_BN * CPR; c += FA_THREADS) {
            const int j = c / CPR, col = (c % CPR) * 8;
            const int p = kb + j;
            const bool ok = p <= hi;
            int64_t off = 0;
            if (ok) {
                const int64_t slot =
                    (int64_t)table[p / a.block_size] * a.block_size + p % a.block_size;
                off = slot * kv_dim + (int64_t)kvh * HD + col;
            }
            const int so = (buf * FA_BN + j) * LD + col;
            tc_cp16(Ks + so, kc + off, ok);
            tc_cp16(Vs + so, vc + off, ok);
        }
        tc_commit();
    };

    float o[ND][4];
#pragma unroll
    for (int jd = 0; jd < ND; jd++) o[jd][0] = o[jd][1] = o[jd][2] = o[jd][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

    load_kv(0, 0);
    for (int kt = 0; kt < n_kt; kt++) {
        if (kt + 1 < n_kt) {
            load_kv(kt + 1, (kt + 1) & 1); /* that buffer was released by the last barrier */
            tc_wait<1>();
        } else {
            tc_wait<0>();
        }
        __syncthreads(); /* tile kt landed for every thread */
        const int kb = lo + kt * FA_BN;
        if (whi >= kb && wlo <= kb + FA_BN - 1) { /* warp-uniform */
            const __half *Kb = Ks + (kt & 1) * FA_BN * LD, *Vb = Vs + (kt & 1) * FA_BN * LD;
            float sc[8][4];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
            }
            /* S = Q K^T: n8 tile j = keys 8j..8j+7; one ldmatrix.x4 = B of k-steps kk, kk+1 */
#pragma unroll
            for (int kk = 0; kk < KS; kk += 2) {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    uint32_t b[4];
                    tc_ldm4<false>(b, Kb + (j * 8 + (lane & 7)) * LD + kk * 16 + (lane >> 3) * 8);
                    mma16816(sc[j], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], b[0], b[1]);
                    mma16816(sc[j], qf[kk + 1][0], qf[kk + 1][1], qf[kk + 1][2], qf[kk + 1][3],
                             b[2], b[3]);
                }
            }
            /* mask: element e of tile j is row g + 8*(e>>1), key kb + 8j + 2tq + (e&1) */
#pragma unroll
            for (int j = 0; j < 8; j++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int kp = kb + j * 8 + 2 * tq + (e & 1), hr = e >> 1;
                    if (kp < rlo[hr] || kp > rhi[hr]) sc[j][e] = -INFINITY;
                }
            }
            /* online softmax per row (the 4 lanes of a quad share a row) */
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                float mx = -INFINITY;
#pragma unroll
                for (int j = 0; j < 8; j++) mx = fmaxf(mx, fmaxf(sc[j][2 * hr], sc[j][2 * hr + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mn = fmaxf(m[hr], mx);
                const float mu = mn == -INFINITY ? 0.f : mn; /* row with nothing yet: no NaN */
                const float alpha = exp2f(m[hr] - mu);
                m[hr] = mn;
                float sum = 0.f;
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const float p0 = exp2f(sc[j][2 * hr] - mu), p1 = exp2f(sc[j][2 * hr + 1] - mu);
                    sc[j][2 * hr] = p0, sc[j][2 * hr + 1] = p1;
                    sum += p0 + p1;
                }
                l[hr] = l[hr] * alpha + sum; /* this lane's columns; quad-summed at the end */
#pragma unroll
                for (int jd = 0; jd < ND; jd++) o[jd][2 * hr] *= alpha, o[jd][2 * hr + 1] *= alpha;
            }
            /* O += P V: k-step kk2 = keys 16kk2..16kk2+15 = S tiles 2kk2, 2kk2+1 as A */
#pragma unroll
            for (int kk2 = 0; kk2 < FA_BN / 16; kk2++) {
                uint32_t pa[4];
                pa[0] = tc_pack(sc[2 * kk2][0], sc[2 * kk2][1]);
                pa[1] = tc_pack(sc[2 * kk2][2], sc[2 * kk2][3]);
                pa[2] = tc_pack(sc[2 * kk2 + 1][0], sc[2 * kk2 + 1][1]);
                pa[3] = tc_pack(sc[2 * kk2 + 1][2], sc[2 * kk2 + 1][3]);
#pragma unroll
                for (int jd = 0; jd < ND; jd += 2) {
                    uint32_t b[4];
                    tc_ldm4<true>(b, Vb + (kk2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                                         jd * 8 + (lane >> 4) * 8);
                    mma16816(o[jd], pa[0], pa[1], pa[2], pa[3], b[0], b[1]);
                    mma16816(o[jd + 1], pa[0], pa[1], pa[2], pa[3], b[2], b[3]);
                }
            }
        }
        __syncthreads(); /* everyone is done with buffer kt&1 before it is refilled */
    }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        float sum = l[hr];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int r = warp * 16 + g + 8 * hr;
        if (r >= cnt) continue;
        const float inv = 1.f / sum; /* > 0: the row attends at least its own position */
        float *out = a.out + ((int64_t)(t0 + r) * a.n_head + h) * HD + 2 * tq;
#pragma unroll
        for (int jd = 0; jd < ND; jd++)
            *(float2 *)(out + jd * 8) = make_float2(o[jd][2 * hr] * inv, o[jd][2 * hr + 1] * inv);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Launcher
 * ------------------------------------------------------------------------------------------- */

bool cu_fattn_supported(int head_dim) {
    return head_dim == 64 || head_dim == 128;
}

template <int HD> static cudaError_t fattn_launch(cudaStream_t st, const cu_fattn_args *a) {
    const size_t smem = (size_t)(FA_BM + 4 * FA_BN) * (HD + 8) * sizeof(__half);
    const cudaError_t e = cu_smem_optin((const void *)k_fattn<HD>, smem); /* > 48 KB */
    if (e != cudaSuccess) return e;
    return cu_launch(k_fattn<HD>, dim3(a->n_head, a->n_tiles), FA_THREADS, smem, st, *a);
}

cudaError_t cu_fattn(cudaStream_t st, const cu_fattn_args *a) {
    if (a->n_tiles < 1 || a->n_tiles > CU_FATTN_MAX_TILES || a->n_head_kv < 1 ||
        a->n_head % a->n_head_kv)
        return cudaErrorInvalidValue;
    if (a->head_dim == 128) return fattn_launch<128>(st, a);
    if (a->head_dim == 64) return fattn_launch<64>(st, a);
    return cudaErrorInvalidValue;
}
