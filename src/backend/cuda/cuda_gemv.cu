/* cuda_gemv.cu: matrix-vector products for decode (fused dequantize + dot, 16-byte loads), the
 * generic any-format fallback, and the weight repack / dequantize-to-half kernels of prefill. */
#include "cuda_mma.cuh"

/* ---------------------------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------------------------- */

/* (scale, bias) of group g of a row, from the interleaved pairs. */
template <int ST> __device__ __forceinline__ float2 load_sb(const void *sb, int64_t i) {
    if constexpr (ST == BRISK_W_F32) {
        return __ldg((const float2 *)sb + i);
    } else {
        const uint32_t p = __ldg((const uint32_t *)sb + i);
        if constexpr (ST == BRISK_W_BF16)
            return make_float2(bf16_bits(p & 0xffff), bf16_bits(p >> 16));
        else
            return make_float2(f16_bits(p & 0xffff), f16_bits(p >> 16));
    }
}

/* Byte k of v (0..255 each) as float, exactly: 0x4B0000xx is 2^23 + xx. */
__device__ __forceinline__ float byte_f(uint32_t v, int k) {
    return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7650u | k)) - 8388608.0f;
}

/* sum_i code_i * x[i] over the codes of one 32-bit word. */
template <int BITS> __device__ __forceinline__ float dot_word(uint32_t w, const float *x) {
    if constexpr (BITS == 4) {
        const uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
        float s = byte_f(lo, 0) * x[0];
        s = fmaf(byte_f(hi, 0), x[1], s);
        s = fmaf(byte_f(lo, 1), x[2], s);
        s = fmaf(byte_f(hi, 1), x[3], s);
        s = fmaf(byte_f(lo, 2), x[4], s);
        s = fmaf(byte_f(hi, 2), x[5], s);
        s = fmaf(byte_f(lo, 3), x[6], s);
        return fmaf(byte_f(hi, 3), x[7], s);
    } else {
        float s = byte_f(w, 0) * x[0];
        s = fmaf(byte_f(w, 1), x[1], s);
        s = fmaf(byte_f(w, 2), x[2], s);
        return fmaf(byte_f(w, 3), x[3], s);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Fast GEMV. Each warp owns R rows of one matrix (NM = 2: the same R rows of two matrices) and
 * walks the row in 512-byte chunks: per chunk one uint4 per lane per row, x for those columns
 * loaded once into registers and reused over the R rows. Block = 4 warps.
 * KIND: 4 / 8 = QAFFINE bits (repacked), 16 = F16, 17 = BF16, 32 = F32.
 * ------------------------------------------------------------------------------------------- */

#define GEMV_R 4

struct gemv_mat_d {
    const uint8_t *w;
    const void *sb;
    const float *bias;
    float *y;
    int rows, warps; /* warps = ceil(rows / rows per warp) */
    int64_t ystride; /* floats between tokens' outputs (v3 kernel) */
};

struct gemv_args {
    gemv_mat_d m[3];
    int nmat;
    int K, gs, gshift; /* gshift = log2(gs) when gs is a power of two, else -1 */
    int nt;            /* tokens (v3 kernel) */
    int64_t row_bytes;
    const float *x;
};

template <int KIND> struct kind_traits;
template <> struct kind_traits<4> {
    enum { EPL = 32, CPW = 8 };
}; /* elements per lane-uint4 */
template <> struct kind_traits<8> {
    enum { EPL = 16, CPW = 4 };
};
template <> struct kind_traits<16> {
    enum { EPL = 8, CPW = 2 };
};
template <> struct kind_traits<17> {
    enum { EPL = 8, CPW = 2 };
};
template <> struct kind_traits<32> {
    enum { EPL = 4, CPW = 1 };
};

/* Column of the first element of word j of lane `lane`'s uint4 in chunk c (full chunk: permuted
 * for QAFFINE, consecutive for dense; a partial chunk is always consecutive). */
template <int KIND> __device__ __forceinline__ int word_col(int c, int lane, int j, bool full) {
    constexpr int CPW = kind_traits<KIND>::CPW;
    const int w = (KIND <= 8 && full) ? 32 * j + lane : 4 * lane + j;
    return (c * 128 + w) * CPW;
}

/* Dot of one lane-uint4 of a row with the lane's x slice; QAFFINE applies each word's group. */
template <int KIND, int ST>
__device__ __forceinline__ float chunk_dot(uint4 q, const float *xs, const float *xsum,
                                           const void *sb_row, const int *grp) {
    const uint32_t wv[4] = {q.x, q.y, q.z, q.w};
    float acc = 0.f;
    if constexpr (KIND <= 8) {
        constexpr int CPW = kind_traits<KIND>::CPW;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float d = dot_word<KIND>(wv[j], xs + j * CPW);
            const float2 sb = load_sb<ST>(sb_row, grp[j]);
            acc = fmaf(sb.x, d, fmaf(sb.y, xsum[j], acc));
        }
    } else if constexpr (KIND == 32) {
#pragma unroll
        for (int j = 0; j < 4; j++) acc = fmaf(__uint_as_float(wv[j]), xs[j], acc);
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const float lo = KIND == 17 ? bf16_bits(wv[j] & 0xffff) : f16_bits(wv[j] & 0xffff);
            const float hi = KIND == 17 ? bf16_bits(wv[j] >> 16) : f16_bits(wv[j] >> 16);
            acc = fmaf(lo, xs[2 * j], fmaf(hi, xs[2 * j + 1], acc));
        }
    }
    return acc;
}

template <int KIND, int ST, int NM, int EPI>
__global__ void __launch_bounds__(128) k_gemv(const __grid_constant__ gemv_args a) {
    constexpr int EPL = kind_traits<KIND>::EPL, CPW = kind_traits<KIND>::CPW;
    pdl_launch();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    int warp = blockIdx.x * 4 + (threadIdx.x >> 5);
    int m = 0;
    while (m < a.nmat && warp >= a.m[m].warps) warp -= a.m[m++].warps;
    if (m >= a.nmat) return;
    const gemv_mat_d &M = a.m[m];
    const int r0 = warp * GEMV_R;
    const int nfull = (int)(a.row_bytes / 512);
    const int tail_lanes = (int)(a.row_bytes % 512) / 16;
    const int nchunks = nfull + (tail_lanes > 0);
    const int ngroups = KIND <= 8 ? a.K / a.gs : 1;

    const uint8_t *wrow[NM][GEMV_R];
    const void *sbrow[NM][GEMV_R];
#pragma unroll
    for (int t = 0; t < NM; t++)
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) {
            const int row = min(r0 + r, M.rows - 1); /* clipped rows compute, never store */
            const gemv_mat_d &MM = t == 0 ? M : a.m[1];
            wrow[t][r] = MM.w + (int64_t)row * a.row_bytes;
            sbrow[t][r] = KIND <= 8 ? (const uint8_t *)MM.sb +
                                          (int64_t)row * ngroups * (ST == BRISK_W_F32 ? 8 : 4)
                                    : nullptr;
        }
    float acc[NM][GEMV_R];
#pragma unroll
    for (int t = 0; t < NM; t++)
#pragma unroll
        for (int r = 0; r < GEMV_R; r++) acc[t][r] = 0.f;

    uint4 cur[NM][GEMV_R], nxt[NM][GEMV_R];
    auto load_chunk = [&](int c, uint4(&dst)[NM][GEMV_R]) {
        const bool active = c < nfull || lane < tail_lanes;
#pragma unroll
        for (int t = 0; t < NM; t++)
#pragma unroll
            for (int r = 0; r < GEMV_R; r++)
                dst[t][r] = active ? __ldg((const uint4 *)(wrow[t][r] + (int64_t)c * 512) + lane)
                                   : make_uint4(0, 0, 0, 0);
    };
    if (nchunks > 0) load_chunk(0, cur);
    for (int c = 0; c < nchunks; c++) {
        if (c + 1 < nchunks) load_chunk(c + 1, nxt);
        const bool full = c < nfull;
        if (full || lane < tail_lanes) {
            float xs[EPL], xsum[4];
            int grp[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int col = word_col<KIND>(c, lane, j, full);
                if constexpr (CPW >= 4) {
#pragma unroll
                    for (int e = 0; e < CPW; e += 4) {
                        const float4 v = __ldg((const float4 *)(a.x + col + e));
                        xs[j * CPW + e] = v.x, xs[j * CPW + e + 1] = v.y;
                        xs[j * CPW + e + 2] = v.z, xs[j * CPW + e + 3] = v.w;
                    }
                } else if constexpr (CPW == 2) {
                    const float2 v = __ldg((const float2 *)(a.x + col));
                    xs[2 * j] = v.x, xs[2 * j + 1] = v.y;
                } else {
                    xs[j] = __ldg(a.x + col);
                }
                if constexpr (KIND <= 8) {
                    float s = 0.f;
#pragma unroll
                    for (int e = 0; e < CPW; e++) s += xs[j * CPW + e];
                    xsum[j] = s;
                    grp[j] = col / a.gs;
                }
            }
#pragma unroll
            for (int t = 0; t < NM; t++)
#pragma unroll
                for (int r = 0; r < GEMV_R; r++)
                    acc[t][r] += chunk_dot<KIND, ST>(cur[t][r], xs, xsum, sbrow[t][r], grp);
        }
        if (c + 1 < nchunks) {
#pragma unroll
            for (int t = 0; t < NM; t++)
#pragma unroll
                for (int r = 0; r < GEMV_R; r++) cur[t][r] = nxt[t][r];
        }
    }
#pragma unroll
    for (int t = 0; t < NM; t++)
#pragma unroll
        for (int r = 0; r < GEMV_R; r++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[t][r] += __shfl_xor_sync(0xffffffffu, acc[t][r], o);
    if (lane < GEMV_R) {
        float v0 = acc[0][0], v1 = NM > 1 ? acc[NM - 1][0] : 0.f;
#pragma unroll
        for (int r = 1; r < GEMV_R; r++)
            if (lane == r) v0 = acc[0][r], v1 = NM > 1 ? acc[NM - 1][r] : 0.f;
        const int row = r0 + lane;
        if (row < M.rows) {
            if constexpr (EPI == CU_EPI_SWIGLU) {
                M.y[row] = v0 / (1.0f + expf(-v0)) * v1;
            } else if constexpr (EPI == CU_EPI_ADD) {
                M.y[row] += v0;
            } else {
                M.y[row] = v0 + (M.bias ? M.bias[row] : 0.f);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * v3 GEMV for the repacked 4/8-bit formats (the decode hot path). Measured on v2: the (scale,
 * bias) loads were issued only after the codes arrived, inside the math, so every chunk paid a
 * second DRAM latency, and 128-168 registers left 12 warps per SM. Here a warp owns RW rows (of
 * each of NM matrices) and issues the codes AND the (scale, bias) words of U chunks together
 * before any math; x stays an L1-cached float load per chunk. NT tokens (decode of several
 * sequences) share every weight load: the codes are decoded again per token but read once.
 * Launched with programmatic dependent launch: the first batch of weight loads is issued before
 * griddepcontrol.wait, so it overlaps the previous kernel's tail.
 * ------------------------------------------------------------------------------------------- */

/* sum_e (0.5 + q_e/256) * x[e] over the 8 codes of a 4-bit word: PRMT drops each nibble into
 * mantissa bits 16..19 of 0.5f (0x3F0q0000 is 0.5 + q/256 exactly), so a code costs one PRMT and
 * one FFMA instead of PRMT + FADD + FFMA; the caller recovers sum q*x = 256 * (d - xsum/2). The
 * products stay at x's magnitude (no 2^23 offset), so float32 keeps ~1e-6 relative. */
__device__ __forceinline__ float dot_word4_half_off(uint32_t w, const float *x) {
    const uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
    const uint32_t C = 0x3F000000u;
    float s = __uint_as_float(__byte_perm(lo, C, 0x7054)) * x[0];
    s = fmaf(__uint_as_float(__byte_perm(hi, C, 0x7054)), x[1], s);
    s = fmaf(__uint_as_float(__byte_perm(lo, C, 0x7154)), x[2], s);
    s = fmaf(__uint_as_float(__byte_perm(hi, C, 0x7154)), x[3], s);
    s = fmaf(__uint_as_float(__byte_perm(lo, C, 0x7254)), x[4], s);
    s = fmaf(__uint_as_float(__byte_perm(hi, C, 0x7254)), x[5], s);
    s = fmaf(__uint_as_float(__byte_perm(lo, C, 0x7354)), x[6], s);
    return fmaf(__uint_as_float(__byte_perm(hi, C, 0x7354)), x[7], s);
}

#define GEMV_WARPS 4
#define GEMV_U     2
#define GEMV_NT    8 /* tokens per launch of the v3 kernel (batched decode) */

template <int KIND, int ST, int NM, int EPI, int RW, int NT>
__global__ void __launch_bounds__(128, NT == 1 ? 5 : 3)
    k_gemvq(const __grid_constant__ gemv_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int EPL = kind_traits<KIND>::EPL, CPW = kind_traits<KIND>::CPW, U = GEMV_U;
    pdl_launch();
    const int lane = threadIdx.x & 31;
    int warp = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    int m = 0;
    while (m < a.nmat && warp >= a.m[m].warps) warp -= a.m[m++].warps;
    if (m >= a.nmat) return;
    const gemv_mat_d &M = a.m[m];
    const int r0 = warp * RW;
    const int nfull = (int)(a.row_bytes / 512);
    const int tail_lanes = (int)(a.row_bytes % 512) / 16;
    const int nchunks = nfull + (tail_lanes > 0);
    const int ngroups = a.K / a.gs;

    const uint8_t *wrow[NM][RW];
    const SBT *sbrow[NM][RW];
#pragma unroll
    for (int t = 0; t < NM; t++)
#pragma unroll
        for (int r = 0; r < RW; r++) {
            const int row = min(r0 + r, M.rows - 1); /* clipped rows compute, never store */
            const gemv_mat_d &MM = t == 0 ? M : a.m[1];
            wrow[t][r] = MM.w + (int64_t)row * a.row_bytes;
            sbrow[t][r] = (const SBT *)MM.sb + (int64_t)row * ngroups;
        }
    float acc[NT][NM][RW];
#pragma unroll
    for (int k = 0; k < NT; k++)
#pragma unroll
        for (int t = 0; t < NM; t++)
#pragma unroll
            for (int r = 0; r < RW; r++) acc[k][t][r] = 0.f;

    bool waited = false;
    for (int c0 = 0; c0 < nchunks; c0 += U) {
        uint4 q[U][NM][RW];
        SBT sb[U][NM][RW][4];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u;
            const bool full = c < nfull;
            const bool active = c < nchunks && (full || lane < tail_lanes);
            int grp[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int col = word_col<KIND>(c, lane, j, full);
                grp[j] = a.gshift >= 0 ? col >> a.gshift : col / a.gs;
            }
#pragma unroll
            for (int t = 0; t < NM; t++)
#pragma unroll
                for (int r = 0; r < RW; r++) {
                    if (active) {
                        q[u][t][r] = __ldg((const uint4 *)(wrow[t][r] + (int64_t)c * 512) + lane);
#pragma unroll
                        for (int j = 0; j < 4; j++) sb[u][t][r][j] = __ldg(sbrow[t][r] + grp[j]);
                    } else {
                        q[u][t][r] = make_uint4(0, 0, 0, 0);
#pragma unroll
                        for (int j = 0; j < 4; j++) sb[u][t][r][j] = SBT();
                    }
                }
        }
        if (!waited) { /* weights never depend on the previous kernel; x does */
            pdl_wait();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u;
            const bool full = c < nfull;
            if (c >= nchunks || !(full || lane < tail_lanes)) continue;
#pragma unroll
            for (int k = 0; k < NT; k++) {
                if (k >= a.nt) break;
                const float *x = a.x + (int64_t)k * a.K;
                float xs[EPL], xsum[4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int col = word_col<KIND>(c, lane, j, full);
                    float s = 0.f;
#pragma unroll
                    for (int e = 0; e < CPW; e += 4) {
                        const float4 v = __ldg((const float4 *)(x + col + e));
                        xs[j * CPW + e] = v.x, xs[j * CPW + e + 1] = v.y;
                        xs[j * CPW + e + 2] = v.z, xs[j * CPW + e + 3] = v.w;
                        s += (v.x + v.y) + (v.z + v.w);
                    }
                    xsum[j] = s;
                }
#pragma unroll
                for (int t = 0; t < NM; t++)
#pragma unroll
                    for (int r = 0; r < RW; r++) {
                        const uint32_t wv[4] = {q[u][t][r].x, q[u][t][r].y, q[u][t][r].z,
                                                q[u][t][r].w};
                        float s = acc[k][t][r];
#pragma unroll
                        for (int j = 0; j < 4; j++) {
                            const float2 p = sb_dec<ST>(sb[u][t][r][j]);
                            if constexpr (KIND == 4) {
                                const float d = dot_word4_half_off(wv[j], xs + j * CPW);
                                s = fmaf(256.f * p.x, d, fmaf(fmaf(-128.f, p.x, p.y), xsum[j], s));
                            } else {
                                const float d = dot_word<KIND>(wv[j], xs + j * CPW);
                                s = fmaf(p.x, d, fmaf(p.y, xsum[j], s));
                            }
                        }
                        acc[k][t][r] = s;
                    }
            }
        }
    }
    if (!waited) pdl_wait();
#pragma unroll
    for (int k = 0; k < NT; k++) {
        if (k >= a.nt) break;
#pragma unroll
        for (int t = 0; t < NM; t++)
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int o = 16; o > 0; o >>= 1)
                    acc[k][t][r] += __shfl_xor_sync(0xffffffffu, acc[k][t][r], o);
        if (lane < RW) {
            float v0 = acc[k][0][0], v1 = NM > 1 ? acc[k][NM - 1][0] : 0.f;
#pragma unroll
            for (int r = 1; r < RW; r++)
                if (lane == r) v0 = acc[k][0][r], v1 = NM > 1 ? acc[k][NM - 1][r] : 0.f;
            const int row = r0 + lane;
            if (row < M.rows) {
                float *y = M.y + (int64_t)k * M.ystride;
                if constexpr (EPI == CU_EPI_SWIGLU) {
                    y[row] = v0 / (1.0f + expf(-v0)) * v1;
                } else if constexpr (EPI == CU_EPI_ADD) {
                    y[row] += v0;
                } else {
                    y[row] = v0 + (M.bias ? M.bias[row] : 0.f);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * v4 GEMV: tensor-core dot for 4-bit QAFFINE in the "mma" layout (cu_weight.fast == 2).
 * Round 2 measured the v3 kernel issue-bound at ~30 warp-instructions per 256 weights (8 per
 * lane). Here the 16x16 weight tile of one m16n8k16 is one 32-bit word per lane, already in the
 * A-fragment order: a LOP3 turns two nibbles into a half2 (q | 0x6400 = 1024 + q, exact) and the
 * MMA multiplies them by x (as half, the B operand) with exact products and f32 accumulation, so
 * 1024 * X (X = sum of the same half x over the group, from a second MMA with A = ones) is
 * removed in f32 with the group's scale and bias: y += s*C + (b - 1024 s)*X. Rows g+8 take the
 * nibble at bit 4 unshifted (1024 + 16q): y += s/16*C + (b - 64 s)*X, saving two shifts.
 * Layout: tile T (rows 16T..16T+15) x chunk c (64 columns) is 512 contiguous bytes; lane l
 * (g = l/4, t = l%4) holds word s = 0..3 at byte 16l + 4s: rows g and g+8, columns
 * 64c + 16t + 4s + {0..3}, nibbles 0,4,2,6 = row g cols +0..3, nibbles 1,5,3,7 = row g+8. Inside
 * a chunk lane t's B operand is then 16 consecutive x values: four float4 loads.
 * Columns of the MMA are tokens: up to 8 tokens share every weight load and every instruction.
 * Per 256 weights (one MMA): 1 SHF + 4 LOP3 + 1 HMMA + 1/4 LDG.128, plus per-chunk x and
 * per-group scale work shared over the 16 rows.
 * ------------------------------------------------------------------------------------------- */

#define MMA_W 8 /* warps per block, splitting the chunks of the same tile(s) */
#define MMA_U 4 /* chunks per warp issued before any math */

struct mma_args {
    mma_mat_d m[3];
    int nmat, K, gs, gshift, nt; /* gs = 1 << gshift */
    const float *x;
    const float *nw; /* NORM: RMSNorm weight [K]: x is multiplied by rsqrt(mean x^2 + eps) * nw */
    float eps;
};

/* NS = spans (scale groups) per 64-column chunk. Only NS = 1 (gs a power of two >= 64) is used: a
 * k-step's columns 16t + 4s + e span all four lanes t, i.e. the whole chunk, so a group of 32
 * would mix two scales in one MMA (measured: q4g32 rel L2 0.5-1); gs 32 keeps the v3 layout. */
template <int ST, int NM, int EPI, int TT, int NS, int NORM, int U>
__global__ void __launch_bounds__(MMA_W * 32, 2) k_gemv_mma(const __grid_constant__ mma_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int NTL = NM == 2 ? 2 : TT; /* tiles per block */
    pdl_launch();
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    int b = blockIdx.x, m = 0;
    while (m < a.nmat && b >= a.m[m].blocks) b -= a.m[m++].blocks;
    if (m >= a.nmat) return;
    const mma_mat_d &M = a.m[m];
    const int nch = a.K >> 6, ngroups = a.K / a.gs;
    const uint4 *wp[NTL];
    const SBT *sp0[NTL];
    int tile[NTL];
#pragma unroll
    for (int i = 0; i < NTL; i++) {
        const mma_mat_d &MM = NM == 2 ? a.m[i] : M;
        tile[i] = NM == 2 ? b : min(b * TT + i, M.tiles - 1);
        wp[i] = (const uint4 *)MM.w + (int64_t)tile[i] * nch * 32 + lane;
        sp0[i] = (const SBT *)MM.sb + mma_sb_index((int64_t)tile[i] * 16 + g, 0, ngroups);
    }
    const int tok = min(g, a.nt - 1);
    const float *xrow = a.x + (int64_t)tok * a.K + 16 * t;
    const int S = 64 / NS;
    float acc[NTL][4];
#pragma unroll
    for (int i = 0; i < NTL; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

    bool waited = false;
    __shared__ float nrm[NORM ? MMA_W : 1][8];
    float rtok = 1.f;
    for (int c0 = wid; c0 < nch; c0 += MMA_W * U) {
        uint4 q[U][NTL];
        SBT s0[U][NTL][NS], s1[U][NTL][NS];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * MMA_W;
            const bool active = c < nch;
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                q[u][i] = active ? __ldg(wp[i] + (int64_t)c * 32) : make_uint4(0, 0, 0, 0);
#pragma unroll
                for (int sp = 0; sp < NS; sp++) {
                    const int grp = (c * 64 + sp * S) >> a.gshift;
                    if (active)
                        ld_pair2<ST>(sp0[i] + grp * 16, s0[u][i][sp], s1[u][i][sp]);
                    else
                        s0[u][i][sp] = s1[u][i][sp] = SBT();
                }
            }
        }
        if (!waited) { /* weights never depend on the previous kernel; x does */
            pdl_wait();
            waited = true;
            if constexpr (NORM) {
                /* every warp is here (K >= 64 * MMA_W): the block's norm scale of each token,
                 * while the first loads are in flight */
#pragma unroll
                for (int tk = 0; tk < 8; tk++) {
                    float part = 0.f;
                    if (tk < a.nt) {
                        const float4 *xr = (const float4 *)(a.x + (int64_t)tk * a.K);
                        for (int i = threadIdx.x; i < (a.K >> 2); i += MMA_W * 32) {
                            const float4 v = __ldg(xr + i);
                            part = fmaf(v.x, v.x,
                                        fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, part))));
                        }
#pragma unroll
                        for (int o = 16; o > 0; o >>= 1)
                            part += __shfl_xor_sync(0xffffffffu, part, o);
                        if (lane == 0) nrm[wid][tk] = part;
                    }
                }
                __syncthreads();
                float ss = 0.f;
#pragma unroll
                for (int w = 0; w < MMA_W; w++) ss += nrm[w][tok];
                rtok = rsqrtf(ss / (float)a.K + a.eps);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + u * MMA_W;
            if (c >= nch) break;
            uint32_t bx0[4], bx1[4];
#pragma unroll
            for (int s = 0; s < 4; s++) {
                float4 v = __ldg((const float4 *)(xrow + c * 64 + 4 * s));
                if constexpr (NORM) {
                    const float4 w = __ldg((const float4 *)(a.nw + c * 64 + 16 * t + 4 * s));
                    v.x = v.x * rtok * w.x, v.y = v.y * rtok * w.y, v.z = v.z * rtok * w.z,
                    v.w = v.w * rtok * w.w;
                }
                bx0[s] = h2_bits(v.x, v.y), bx1[s] = h2_bits(v.z, v.w);
            }
            static_assert(NS == 1, "one scale group per chunk");
            float X[4];
            mma_chunk_xsum(X, bx0, bx1);
#pragma unroll
            for (int i = 0; i < NTL; i++)
                mma_chunk_acc<ST>(acc[i], q[u][i], s0[u][i][0], s1[u][i][0], bx0, bx1, X);
        }
    }
    if (!waited) pdl_wait();
    __shared__ float red[MMA_W][NTL][4][32];
#pragma unroll
    for (int i = 0; i < NTL; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) red[wid][i][j][lane] = acc[i][j];
    __syncthreads();
    /* warp w finishes slot (i, j) = w (NTL * 4 <= MMA_W) */
    if (wid >= NTL * 4) return;
    const int i = wid >> 2, j = wid & 3;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < MMA_W; w++) v += red[w][i][j][lane];
    const int row = (i == 0 ? tile[0] : tile[NTL - 1]) * 16 + g + 8 * (j >> 1),
              tk = 2 * t + (j & 1);
    if (tk >= a.nt) return;
    if constexpr (EPI == CU_EPI_SWIGLU) {
        if (i != 0) return;
        float up = 0.f;
#pragma unroll
        for (int w = 0; w < MMA_W; w++) up += red[w][1][j][lane];
        if (row < M.rows) M.y[(int64_t)tk * M.ystride + row] = v / (1.0f + expf(-v)) * up;
    } else {
        if (NM == 1 && TT > 1 && b * TT + i >= M.tiles) return; /* clipped duplicate tile */
        if (row >= M.rows) return;
        float *y = M.y + (int64_t)tk * M.ystride;
        if constexpr (EPI == CU_EPI_ADD)
            y[row] += v;
        else
            y[row] = v + (M.bias ? M.bias[row] : 0.f);
    }
}

/* Element (r, c) code of the mma layout (generic readers: embedding rows, the slow path). */
__device__ __forceinline__ uint32_t mma_code(const uint8_t *data, int64_t cols, int64_t r,
                                             int64_t c) {
    const int64_t T = r >> 4, ch = c >> 6, nch = cols >> 6;
    const int rr = (int)(r & 15), cc = (int)(c & 63);
    const int lane = 4 * (rr & 7) + (cc >> 4), s = (cc & 15) >> 2, e = cc & 3;
    const uint32_t w = ((const uint32_t *)data)[((T * nch + ch) * 32 + lane) * 4 + s];
    const int nib = (e & 1) * 4 + (e >> 1) * 2 + (rr >> 3);
    return (w >> (4 * nib)) & 15u;
}

/* ---------------------------------------------------------------------------------------------
 * Generic path: any format and layout, one warp per row, one element per lane per step.
 * ------------------------------------------------------------------------------------------- */

struct wdesc {
    const uint8_t *data;
    const void *sb;
    int64_t cols, row_bytes;
    int type, stype, bits, gs, fast;
};

static wdesc make_desc(const cu_weight *w) {
    wdesc d;
    d.data = w->data, d.sb = w->sb, d.cols = w->cols, d.row_bytes = w->row_bytes;
    d.type = w->type, d.stype = w->stype, d.bits = w->bits, d.gs = w->gs, d.fast = w->fast;
    return d;
}

__device__ float dq_elem(const wdesc &w, int64_t r, int64_t c) {
    const uint8_t *row = w.data + r * w.row_bytes;
    switch (w.type) {
    case BRISK_W_F32:
        return ((const float *)row)[c];
    case BRISK_W_F16:
        return f16_bits(((const uint16_t *)row)[c]);
    case BRISK_W_BF16:
        return bf16_bits(((const uint16_t *)row)[c]);
    default:
        break;
    }
    uint32_t q;
    if (w.fast == 2) {
        q = mma_code(w.data, w.cols, r, c);
    } else if (w.fast) {
        const int cpw = 32 / w.bits;
        const int64_t wi = c / cpw, nfull = w.row_bytes / 512;
        int64_t p = wi;
        if (wi < nfull * 128) {
            const int64_t k = wi % 128;
            p = wi - k + 4 * (k % 32) + k / 32;
        }
        const uint32_t word = ((const uint32_t *)row)[p];
        q = (word >> ((c % cpw) * w.bits)) & ((1u << w.bits) - 1u);
    } else {
        const int64_t bit = c * w.bits, byte = bit >> 3;
        uint32_t two = row[byte];
        if (byte + 1 < w.row_bytes) two |= (uint32_t)row[byte + 1] << 8;
        q = (two >> (bit & 7)) & ((1u << w.bits) - 1u);
    }
    const int64_t gi =
        w.fast == 2 ? mma_sb_index(r, c / w.gs, w.cols / w.gs) : r * (w.cols / w.gs) + c / w.gs;
    float2 sb;
    if (w.stype == BRISK_W_F32)
        sb = load_sb<BRISK_W_F32>(w.sb, gi);
    else if (w.stype == BRISK_W_BF16)
        sb = load_sb<BRISK_W_BF16>(w.sb, gi);
    else
        sb = load_sb<BRISK_W_F16>(w.sb, gi);
    return sb.x * (float)q + sb.y;
}

struct generic_args {
    wdesc w[3];
    const float *bias[3];
    float *y[3];
    int64_t rows[3];
    int nmat, epi, n;
    const float *x;
};

__global__ void k_gemv_generic(const __grid_constant__ generic_args a) {
    pdl_launch();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    int m = 0;
    if (a.epi != CU_EPI_SWIGLU)
        while (m < a.nmat && row >= a.rows[m]) row -= a.rows[m++];
    if (m >= a.nmat || row >= a.rows[m]) return;
    const wdesc &W = a.w[m];
    for (int t = 0; t < a.n; t++) {
        const float *x = a.x + (int64_t)t * W.cols;
        float s0 = 0.f, s1 = 0.f;
        for (int64_t c = lane; c < W.cols; c += 32) {
            s0 += dq_elem(W, row, c) * x[c];
            if (a.epi == CU_EPI_SWIGLU) s1 += dq_elem(a.w[1], row, c) * x[c];
        }
        for (int o = 16; o > 0; o >>= 1) {
            s0 += __shfl_xor_sync(0xffffffffu, s0, o);
            s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        }
        if (lane == 0) {
            float *y = a.y[m] + (int64_t)t * a.rows[m] + row;
            if (a.epi == CU_EPI_SWIGLU)
                *y = s0 / (1.0f + expf(-s0)) * s1;
            else if (a.epi == CU_EPI_ADD)
                *y += s0;
            else
                *y = s0 + (a.bias[m] ? a.bias[m][row] : 0.f);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Launchers
 * ------------------------------------------------------------------------------------------- */

static int fast_kind(const cu_weight *w) {
    if (!w->fast) return 0;
    switch (w->type) {
    case BRISK_W_QAFFINE:
        return w->bits;
    case BRISK_W_F16:
        return 16;
    case BRISK_W_BF16:
        return 17;
    case BRISK_W_F32:
        return 32;
    }
    return 0;
}

template <int KIND, int ST, int NM, int EPI>
static cudaError_t launch_fast(cudaStream_t st, const gemv_args &a, int warps) {
    return cu_launch(k_gemv<KIND, ST, NM, EPI>, (warps + 3) / 4, 128, 0, st, a);
}

template <int KIND, int ST>
static cudaError_t launch_epi(cudaStream_t st, const gemv_args &a, int warps, int epi) {
    if (epi == CU_EPI_SWIGLU) return launch_fast<KIND, ST, 2, CU_EPI_SWIGLU>(st, a, warps);
    if (epi == CU_EPI_ADD) return launch_fast<KIND, ST, 1, CU_EPI_ADD>(st, a, warps);
    return launch_fast<KIND, ST, 1, CU_EPI_STORE>(st, a, warps);
}

static cudaError_t launch_kind(cudaStream_t st, int kind, int stype, const gemv_args &a, int warps,
                               int epi) {
    switch (kind) {
    case 4:
        if (stype == BRISK_W_BF16) return launch_epi<4, BRISK_W_BF16>(st, a, warps, epi);
        if (stype == BRISK_W_F32) return launch_epi<4, BRISK_W_F32>(st, a, warps, epi);
        return launch_epi<4, BRISK_W_F16>(st, a, warps, epi);
    case 8:
        if (stype == BRISK_W_BF16) return launch_epi<8, BRISK_W_BF16>(st, a, warps, epi);
        if (stype == BRISK_W_F32) return launch_epi<8, BRISK_W_F32>(st, a, warps, epi);
        return launch_epi<8, BRISK_W_F16>(st, a, warps, epi);
    case 16:
        return launch_epi<16, 0>(st, a, warps, epi);
    case 17:
        return launch_epi<17, 0>(st, a, warps, epi);
    case 32:
        return launch_epi<32, 0>(st, a, warps, epi);
    }
    return cudaErrorInvalidValue;
}

int cu_gemv_v2 = 0; /* env BRISK_CUDA_GEMV=2: the v2 kernel for 4/8-bit (A/B timing) */

/* Rows per warp of the v3 kernel: 2 of one matrix, or 1 of each of gate and up. */
#define V3_RW(NM) ((NM) == 2 ? 1 : 2)

template <int KIND, int ST, int NM, int EPI>
static cudaError_t launch_v3(cudaStream_t st, const gemv_args &a, int warps) {
    const unsigned blocks = (unsigned)((warps + GEMV_WARPS - 1) / GEMV_WARPS);
    if (a.nt == 1)
        return cu_launch(k_gemvq<KIND, ST, NM, EPI, V3_RW(NM), 1>, blocks, 128, 0, st, a);
    return cu_launch(k_gemvq<KIND, ST, NM, EPI, V3_RW(NM), GEMV_NT>, blocks, 128, 0, st, a);
}

template <int KIND, int ST>
static cudaError_t launch_v3_epi(cudaStream_t st, const gemv_args &a, int warps, int epi) {
    if (epi == CU_EPI_SWIGLU) return launch_v3<KIND, ST, 2, CU_EPI_SWIGLU>(st, a, warps);
    if (epi == CU_EPI_ADD) return launch_v3<KIND, ST, 1, CU_EPI_ADD>(st, a, warps);
    return launch_v3<KIND, ST, 1, CU_EPI_STORE>(st, a, warps);
}

static cudaError_t launch_v3_kind(cudaStream_t st, int kind, int stype, const gemv_args &a,
                                  int warps, int epi) {
    if (kind == 4) {
        if (stype == BRISK_W_BF16) return launch_v3_epi<4, BRISK_W_BF16>(st, a, warps, epi);
        if (stype == BRISK_W_F32) return launch_v3_epi<4, BRISK_W_F32>(st, a, warps, epi);
        return launch_v3_epi<4, BRISK_W_F16>(st, a, warps, epi);
    }
    if (stype == BRISK_W_BF16) return launch_v3_epi<8, BRISK_W_BF16>(st, a, warps, epi);
    if (stype == BRISK_W_F32) return launch_v3_epi<8, BRISK_W_F32>(st, a, warps, epi);
    return launch_v3_epi<8, BRISK_W_F16>(st, a, warps, epi);
}

/* Chunks per warp in flight for the one-tile kernels: 4, or 8 with env BRISK_CUDA_MMA_U=8 (A/B;
 * the two-tile kernels stay at 4: 8 would not fit 128 registers). */
int cu_mma_u = 4;
int cu_mma_tt = 0; /* 0: tiles per block by grid size; 1 or 2 forced (env BRISK_CUDA_MMA_TT) */

template <int ST, int NM, int EPI, int TT>
static cudaError_t launch_mma_ns(cudaStream_t st, const mma_args &a, unsigned blocks) {
    if (a.nw) {
        if constexpr (EPI != CU_EPI_ADD && TT == 1)
            return cu_launch(k_gemv_mma<ST, NM, EPI, TT, 1, 1, MMA_U>, blocks, MMA_W * 32, 0, st,
                             a);
        return cudaErrorInvalidValue;
    }
    if constexpr (NM == 1 && TT == 1)
        if (cu_mma_u == 8)
            return cu_launch(k_gemv_mma<ST, NM, EPI, TT, 1, 0, 8>, blocks, MMA_W * 32, 0, st, a);
    return cu_launch(k_gemv_mma<ST, NM, EPI, TT, 1, 0, MMA_U>, blocks, MMA_W * 32, 0, st, a);
}

template <int ST>
static cudaError_t launch_mma_epi(cudaStream_t st, const mma_args &a, unsigned blocks, int epi,
                                  int tt) {
    if (epi == CU_EPI_SWIGLU) return launch_mma_ns<ST, 2, CU_EPI_SWIGLU, 1>(st, a, blocks);
    if (epi == CU_EPI_ADD)
        return tt == 2 ? launch_mma_ns<ST, 1, CU_EPI_ADD, 2>(st, a, blocks)
                       : launch_mma_ns<ST, 1, CU_EPI_ADD, 1>(st, a, blocks);
    return tt == 2 ? launch_mma_ns<ST, 1, CU_EPI_STORE, 2>(st, a, blocks)
                   : launch_mma_ns<ST, 1, CU_EPI_STORE, 1>(st, a, blocks);
}

static cudaError_t gemv_mma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi,
                            const float *x, int n, const float *nw = NULL, float eps = 0.f) {
    const int64_t K = m[0].w->cols;
    const int nm = epi == CU_EPI_SWIGLU ? 2 : 1;
    int tiles = 0;
    for (int i = 0; i < (nm == 2 ? 1 : nmat); i++) tiles += (int)((m[i].w->rows + 15) / 16);
    /* share x over 2 tiles when the grid is large (env BRISK_CUDA_MMA_TT=1/2 forces, for A/B) */
    const int tt = nm == 1 && !nw && (cu_mma_tt ? cu_mma_tt == 2 : tiles >= 4 * sm_count()) ? 2 : 1;
    for (int t0 = 0; t0 < n; t0 += 8) {
        mma_args a = {};
        a.nmat = nm == 2 ? 1 : nmat;
        a.K = (int)K, a.gs = m[0].w->gs, a.nt = n - t0 < 8 ? n - t0 : 8;
        while ((1 << a.gshift) < a.gs) a.gshift++;
        a.x = x + (int64_t)t0 * K, a.nw = nw, a.eps = eps;
        unsigned blocks = 0;
        for (int i = 0; i < nmat; i++) {
            const cu_weight *w = m[i].w;
            a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias;
            a.m[i].y = m[i].y + (int64_t)t0 * w->rows;
            a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
            a.m[i].tiles = (int)((w->rows + 15) / 16);
            a.m[i].blocks = nm == 2 ? a.m[i].tiles : (a.m[i].tiles + tt - 1) / tt;
            if (i < a.nmat) blocks += (unsigned)a.m[i].blocks;
        }
        cudaError_t e;
        if (m[0].w->stype == BRISK_W_BF16)
            e = launch_mma_epi<BRISK_W_BF16>(st, a, blocks, epi, tt);
        else if (m[0].w->stype == BRISK_W_F32)
            e = launch_mma_epi<BRISK_W_F32>(st, a, blocks, epi, tt);
        else
            e = launch_mma_epi<BRISK_W_F16>(st, a, blocks, epi, tt);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

/* Same format, width and layout: one fused launch is possible. */
static bool same_fmt(const cu_weight *a, const cu_weight *b) {
    return a->type == b->type && a->stype == b->stype && a->bits == b->bits && a->gs == b->gs &&
           a->cols == b->cols && a->row_bytes == b->row_bytes && a->fast == b->fast;
}

/* The RMSNorm fused into the v4 GEMV: off unless env BRISK_CUDA_NORMFUSE=1. Measured on H100 (8B
 * q4 decode): fused 282.5 tok/s vs 317.4 with the norm as its own kernel (the v4 kernel's gate+up
 * went 38 -> 51 us: 128 registers with spills, and the prologue delays the math of every block). */
int cu_norm_fuse = 0;
/* The RMSNorm folded into the v7 GEMV's staging of x (env BRISK_CUDA_V7NORM=0: the norm kernel,
 * for A/B). */
int cu_v7_norm = 1;

cudaError_t cu_gemv_norm(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                         int n, const float *nw, float eps, const cu_pf *pf, bool *v7) {
    if (v7) *v7 = false;
    bool ok = epi != CU_EPI_ADD; /* one fused launch: the same format and width */
    for (int i = 1; i < nmat; i++) ok = ok && same_fmt(m[0].w, m[i].w);
    if (epi == CU_EPI_SWIGLU) ok = ok && nmat == 2 && m[0].w->rows == m[1].w->rows;
    if (!ok) return cudaErrorNotSupported;
    if (cu_v7_norm) { /* v7 (one-token steps): the norm in its one pass over x */
        const cudaError_t e = cu_gemv_tma(st, m, nmat, epi, x, n, nw, eps, pf);
        if (e != cudaErrorNotSupported) {
            if (v7) *v7 = true;
            return e;
        }
    }
    if (!cu_norm_fuse || m[0].w->fast != 2 || m[0].w->cols < 64 * MMA_W)
        return cudaErrorNotSupported;
    return gemv_mma(st, m, nmat, epi, x, n, nw, eps);
}

cudaError_t cu_gemv(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x, int n,
                    const cu_pf *pf, const void *xq, bool *v7) {
    if (v7) *v7 = false;
    bool fused = true;
    for (int i = 1; i < nmat; i++) fused = fused && same_fmt(m[0].w, m[i].w);
    if (epi == CU_EPI_SWIGLU) fused = fused && m[0].w->rows == m[1].w->rows;
    if (!fused) {
        if (epi == CU_EPI_SWIGLU) return cudaErrorInvalidValue; /* caller composes instead */
        for (int i = 0; i < nmat; i++) {
            cudaError_t e = cu_gemv(st, &m[i], 1, epi, x, n);
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    }
    if (m[0].w->fast == 2) {
        const cudaError_t e =
            cu_gemv_tma(st, m, nmat, epi, x, n, NULL, 0.f, pf, xq); /* one token */
        if (e != cudaErrorNotSupported) {
            if (v7) *v7 = true;
            return e;
        }
        return gemv_mma(st, m, nmat, epi, x, n);
    }
    const int kind = fast_kind(m[0].w);
    const int64_t K = m[0].w->cols;
    if ((kind == 4 || kind == 8) && !cu_gemv_v2) {
        /* v3: up to GEMV_NT tokens per launch, every weight read once per launch */
        const int nm = epi == CU_EPI_SWIGLU ? 2 : 1;
        const int rw = nm == 2 ? 1 : 2;
        int gs = m[0].w->gs, gshift = -1;
        for (int b = 0; b < 31; b++)
            if (gs == (1 << b)) gshift = b;
        for (int t0 = 0; t0 < n; t0 += GEMV_NT) {
            gemv_args a = {};
            a.nmat = epi == CU_EPI_SWIGLU ? 1 : nmat;
            a.K = (int)K, a.gs = gs, a.gshift = gshift, a.row_bytes = m[0].w->row_bytes;
            a.nt = n - t0 < GEMV_NT ? n - t0 : GEMV_NT;
            a.x = x + (int64_t)t0 * K;
            int warps = 0;
            for (int i = 0; i < nmat; i++) {
                const cu_weight *w = m[i].w;
                a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias;
                a.m[i].y = m[i].y + (int64_t)t0 * w->rows;
                a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
                a.m[i].warps = (int)((w->rows + rw - 1) / rw);
                if (i < a.nmat) warps += a.m[i].warps;
            }
            cudaError_t e = launch_v3_kind(st, kind, m[0].w->stype, a, warps, epi);
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    }
    if (kind) {
        for (int t = 0; t < n; t++) {
            gemv_args a = {};
            a.nmat = epi == CU_EPI_SWIGLU ? 1 : nmat;
            a.K = (int)K, a.gs = m[0].w->gs, a.row_bytes = m[0].w->row_bytes;
            a.x = x + (int64_t)t * K;
            int warps = 0;
            for (int i = 0; i < nmat; i++) {
                const cu_weight *w = m[i].w;
                a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias;
                a.m[i].y = m[i].y + (int64_t)t * w->rows;
                a.m[i].rows = (int)w->rows;
                a.m[i].warps = (int)((w->rows + GEMV_R - 1) / GEMV_R);
                if (i < a.nmat) warps += a.m[i].warps;
            }
            cudaError_t e = launch_kind(st, kind, m[0].w->stype, a, warps, epi);
            if (e != cudaSuccess) return e;
        }
        return cudaSuccess;
    }
    generic_args g = {};
    g.nmat = nmat, g.epi = epi, g.n = n, g.x = x;
    int64_t rows = 0;
    for (int i = 0; i < nmat; i++) {
        g.w[i] = make_desc(m[i].w), g.bias[i] = m[i].bias, g.y[i] = m[i].y;
        g.rows[i] = m[i].w->rows;
        rows += epi == CU_EPI_SWIGLU ? (i == 0 ? g.rows[i] : 0) : g.rows[i];
    }
    return cu_launch(k_gemv_generic, (unsigned)((rows + 3) / 4), 128, 0, st, g);
}

/* ---------------------------------------------------------------------------------------------
 * Prefill: weights to half, tile by tile (then cuBLAS); the load-time repack.
 * ------------------------------------------------------------------------------------------- */

/* Fast QAFFINE: one thread per stored 32-bit word -> CPW halves. */
template <int BITS, int ST>
__global__ void k_dequant_fast(const uint8_t *data, const void *sb, int64_t row_bytes, int64_t cols,
                               int gs, int64_t r0, int64_t nr, __half *dst) {
    constexpr int CPW = 32 / BITS;
    const int64_t wpr = row_bytes / 4;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * wpr) return;
    const int64_t r = i / wpr, p = i % wpr, nfull = row_bytes / 512;
    int64_t w = p;
    if (p < nfull * 128) {
        const int64_t k = p % 128;
        w = p - k + 32 * (k % 4) + k / 4;
    }
    const uint32_t word = ((const uint32_t *)(data + (r0 + r) * row_bytes))[p];
    const int64_t c0 = w * CPW;
    const float2 s = load_sb<ST>(sb, (r0 + r) * (cols / gs) + c0 / gs);
    __align__(16) __half h[CPW];
#pragma unroll
    for (int e = 0; e < CPW; e++)
        h[e] = __float2half_rn(s.x * (float)((word >> (e * BITS)) & ((1u << BITS) - 1u)) + s.y);
    __half *o = dst + r * cols + c0;
    if constexpr (CPW == 8)
        *(uint4 *)o = *(const uint4 *)h;
    else
        *(uint2 *)o = *(const uint2 *)h;
}

__global__ void k_dequant_generic(const wdesc w, int64_t r0, int64_t nr, __half *dst) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr * w.cols) return;
    dst[i] = __float2half_rn(dq_elem(w, r0 + i / w.cols, i % w.cols));
}

/* mma layout: one thread per stored word -> 4 halves of each of its 2 rows, where in [r0, r0+nr).
 */
template <int ST>
__global__ void k_dequant_mma(const uint8_t *data, const void *sb, int64_t rows, int64_t cols,
                              int gs, int64_t r0, int64_t nr, __half *dst) {
    const int64_t nch = cols >> 6, T0 = r0 >> 4;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t T = T0 + i / (nch * 128);
    if (T * 16 >= r0 + nr) return;
    const int64_t rest = i % (nch * 128), ch = rest / 128;
    const int lane = (int)(rest % 128) / 4, s = (int)(rest % 4);
    const uint32_t w = ((const uint32_t *)data)[(T * nch + ch) * 128 + lane * 4 + s];
    const int64_t col = ch * 64 + 16 * (lane & 3) + 4 * s;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int64_t r = T * 16 + (lane >> 2) + 8 * h;
        if (r < r0 || r >= r0 + nr || r >= rows) continue;
        const float2 p = load_sb<ST>(sb, mma_sb_index(r, col / gs, cols / gs));
        __align__(8) __half o[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int nib = (e & 1) * 4 + (e >> 1) * 2 + h;
            o[e] = __float2half_rn(p.x * (float)((w >> (4 * nib)) & 15u) + p.y);
        }
        *(uint2 *)(dst + (r - r0) * cols + col) = *(const uint2 *)o;
    }
}

cudaError_t cu_dequant_half(cudaStream_t st, const cu_weight *w, int64_t r0, int64_t nr,
                            void *dst) {
    __half *d = (__half *)dst;
    if (w->type == BRISK_W_QAFFINE && w->fast == 2) {
        const int64_t T0 = r0 >> 4, T1 = (r0 + nr + 15) >> 4;
        const int64_t n = (T1 - T0) * (w->cols >> 6) * 128;
        const unsigned blocks = (unsigned)((n + 255) / 256);
        if (w->stype == BRISK_W_BF16)
            k_dequant_mma<BRISK_W_BF16>
                <<<blocks, 256, 0, st>>>(w->data, w->sb, w->rows, w->cols, w->gs, r0, nr, d);
        else if (w->stype == BRISK_W_F32)
            k_dequant_mma<BRISK_W_F32>
                <<<blocks, 256, 0, st>>>(w->data, w->sb, w->rows, w->cols, w->gs, r0, nr, d);
        else
            k_dequant_mma<BRISK_W_F16>
                <<<blocks, 256, 0, st>>>(w->data, w->sb, w->rows, w->cols, w->gs, r0, nr, d);
        return cudaGetLastError();
    }
    if (w->type == BRISK_W_QAFFINE && w->fast) {
        const int64_t n = nr * (w->row_bytes / 4);
        const unsigned blocks = (unsigned)((n + 255) / 256);
#define DQ(B, S)                                                                                   \
    k_dequant_fast<B, S>                                                                           \
        <<<blocks, 256, 0, st>>>(w->data, w->sb, w->row_bytes, w->cols, w->gs, r0, nr, d)
        if (w->bits == 4) {
            if (w->stype == BRISK_W_BF16)
                DQ(4, BRISK_W_BF16);
            else if (w->stype == BRISK_W_F32)
                DQ(4, BRISK_W_F32);
            else
                DQ(4, BRISK_W_F16);
        } else {
            if (w->stype == BRISK_W_BF16)
                DQ(8, BRISK_W_BF16);
            else if (w->stype == BRISK_W_F32)
                DQ(8, BRISK_W_F32);
            else
                DQ(8, BRISK_W_F16);
        }
#undef DQ
    } else {
        const int64_t n = nr * w->cols;
        k_dequant_generic<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(make_desc(w), r0, nr, d);
    }
    return cudaGetLastError();
}

__global__ void k_repack(const uint32_t *src, uint32_t *dst, int64_t rows, int64_t wpr) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * wpr) return;
    const int64_t p = i % wpr, nfull = wpr / 128;
    int64_t w = p;
    if (p < nfull * 128) {
        const int64_t k = p % 128;
        w = p - k + 32 * (k % 4) + k / 4; /* stored 4l+j <- original 32j+l */
    }
    dst[i] = src[i - p + w];
}

cudaError_t cu_repack_codes(cudaStream_t st, const uint8_t *src, uint8_t *dst, int64_t rows,
                            int64_t row_bytes) {
    const int64_t n = rows * (row_bytes / 4);
    k_repack<<<(unsigned)((n + 255) / 256), 256, 0, st>>>((const uint32_t *)src, (uint32_t *)dst,
                                                          rows, row_bytes / 4);
    return cudaGetLastError();
}

/* File order -> mma layout (see k_gemv_mma); rows past the end (the last partial tile) get 0. */
__global__ void k_repack_mma(const uint8_t *src, uint32_t *dst, int64_t rows, int64_t row_bytes) {
    const int64_t nch = row_bytes / 32, tiles = (rows + 15) / 16;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= tiles * nch * 128) return;
    const int s = (int)(i & 3), lane = (int)((i >> 2) & 31);
    const int64_t ch = (i >> 7) % nch, T = (i >> 7) / nch;
    const int64_t col = ch * 64 + 16 * (lane & 3) + 4 * s, ra = T * 16 + (lane >> 2), rb = ra + 8;
    const uint32_t A = ra < rows ? *(const uint16_t *)(src + ra * row_bytes + col / 2) : 0u;
    const uint32_t B = rb < rows ? *(const uint16_t *)(src + rb * row_bytes + col / 2) : 0u;
    uint32_t w = 0;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const int nib = (e & 1) * 4 + (e >> 1) * 2;
        w |= ((A >> (4 * e)) & 15u) << (4 * nib);
        w |= ((B >> (4 * e)) & 15u) << (4 * (nib + 1));
    }
    dst[i] = w;
}

cudaError_t cu_repack_mma(cudaStream_t st, const uint8_t *src, uint8_t *dst, int64_t rows,
                          int64_t row_bytes) {
    const int64_t n = (rows + 15) / 16 * (row_bytes / 32) * 128;
    k_repack_mma<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(src, (uint32_t *)dst, rows,
                                                              row_bytes);
    return cudaGetLastError();
}

__global__ void k_interleave(const uint8_t *s, const uint8_t *b, uint8_t *dst, int64_t rows,
                             int64_t ngroups, int elem, bool tiles) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * ngroups) return;
    const int64_t o = tiles ? mma_sb_index(i / ngroups, i % ngroups, ngroups) : i;
    for (int e = 0; e < elem; e++) {
        dst[2 * o * elem + e] = s[i * elem + e];
        dst[(2 * o + 1) * elem + e] = b[i * elem + e];
    }
}

cudaError_t cu_interleave_sb(cudaStream_t st, const void *s, const void *b, void *dst, int64_t rows,
                             int64_t ngroups, int elem, bool tiles) {
    const int64_t n = rows * ngroups;
    k_interleave<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(
        (const uint8_t *)s, (const uint8_t *)b, (uint8_t *)dst, rows, ngroups, elem, tiles);
    return cudaGetLastError();
}
