/* cuda_gemv_batch.cu: the tensor-core GEMV for steps of 2-64 tokens over 4-bit weights in the mma
 * layout (fast == 2), reading every weight once per step (v8; bench/cuda-notes.md, round 6).
 *
 * Why: v4 takes 8 tokens per launch (the MMA's 8 columns), so a step of 64 tokens read the
 * weights 8 times (8B: ~3.5 ms per pass, 33 ms per step at batch 64), and the dequantize + cuBLAS
 * path costs a full half-precision copy of every matrix per step.
 *
 * Two launches per matmul:
 *  1. k_xprep: x [n, K] (f32; with the RMSNorm of the input folded in when nw is given) -> half
 *     in B-fragment order, per chunk of 64 columns and group of 8 tokens one 1 KB block (lane
 *     4g+t's 16-byte words of token g at 16l and 512 + 16l: conflict-free shared-memory loads),
 *     and the chunk sums of those halves [chunk][token] (the X of the v4 formula). Tokens up to
 *     the padded count are zero.
 *  2. k_gemv_batch: one persistent block per SM, the v7 pipeline (a producer warp bulk-copies
 *     stages into an mbarrier ring; it issues the first ring's weights before the PDL wait).
 *     A work item is (group of 8 or 16 16-row tiles, slice of K); a stage holds S chunks of the
 *     group's codes and (scale, bias) pairs plus the same chunks of the prepared x and sums. The
 *     consumer warps (16; 8 at 25-64 tokens on wgmma, or for SwiGLU at 33-64 on mma.sync,
 *     cu_v8_cw) split the item's tiles x token groups (b_wn, b_tg; no reduction over warps):
 *     each decodes its tile's chunk once (LOP3 -> half A fragments) and runs it against each of
 *     its token groups (4 MMAs each), so the tensor cores see up to 64 columns per weight load.
 *     Small matrices split K over B_MAXKS items per group to fill the SMs; the partial sums go
 *     to scratch and the last item of a group to finish (a device-scope counter) adds them in
 *     split order (deterministic) and applies the epilogue: store + bias, residual add, or
 *     SwiGLU (gate and up tiles in one item, never split: SwiGLU takes fewer tiles an item
 *     instead where that fills more SMs).
 *     At 25-64 tokens the MMAs are wgmma where the code has them (sm_90a; BRISK_CUDA_WG=0: all
 *     mma.sync). */
#include "cuda_bulk.cuh"
#include "cuda_mma.cuh"
#include "cuda_switches.h"

#define B_MAXST 8           /* ring stages at most */
#define B_RING  (192 << 10) /* bytes of the ring */
#define B_MAXKS 8           /* K splits per tile group at most */
#define B_BAR   1           /* named barrier of the consumer warps */

struct b_args {
    mma_mat_d m[3];
    int nmat;                  /* matrices enumerated (1 for SwiGLU: m[1] is `up`) */
    int gbase[4];              /* first tile group of matrix i; gbase[nmat] = groups */
    int K, nch, gshift, n, ks; /* ks: items (K slices) per tile group */
    int cpi, S, tg;            /* chunks per item, chunks per stage, tiles per item */
    int stages, stage_bytes, gmax, off_pairs, off_x, off_xs;
    const uint8_t *xq; /* k_xprep's output */
    const float *xs;
    float *part; /* [group][ks][npad][tg * 16] when ks > 1 */
    int *count;  /* [group], zero between launches */
    int aid;     /* measuring aids (BRISK_CUDA_SKIP), the producer's only (a test in the
                  * consumers spills at 4 groups): 2 copy (no weight copies), 4 xcopy (no x) */
};

/* The consumer warps' layout for NG token groups and NTL matrices a tile (2: SwiGLU's gate and
 * up): b_wn warps along the token groups, CW / b_wn along the b_tg 16-row tiles of an item, and
 * b_s chunks a stage. Each warp decodes its tiles' chunks once for its NG / b_wn groups, so b_wn
 * warps decode every chunk. 4 groups (25-32 tokens): every group in one warp (SwiGLU: two), 16
 * tiles, 2 chunks a stage: +10% on 8B at batch 32 against 4 warps of one group each (round 25).
 * The same one-warp layout lost 17% with 2 groups (16 tiles, 4 chunks), so those keep 2 warps.
 * 8 groups: 2 warps of 4 groups each over 8-tile items (SwiGLU too, there with 2-chunk stages),
 * with the folded scales below. SwiGLU at 4 warps of 2 groups and 4-chunk stages was 4.5% slower
 * on 8B and 6% on 1B at batch 64 (round 27, H200). One warp of all 8 groups over 16-tile items
 * was +3.7% on 8B at batch 64 but -12% on 1B (its matrices give fewer items than SMs) and reads
 * every group's x in every warp (round 26); beside this SwiGLU, -2% on 8B and -19% on 1B (round
 * 27, H200). */
/* cw 8 (wgmma at 4 or 8 groups, or mma.sync at 8 and cu_v8_cw): 8 consumer warps over 8-tile
 * items, each warp with all the groups of one tile (SwiGLU: its gate and up tiles, each group's x
 * loaded once a chunk for both). A tile's chunk is decoded once (the 16-warp layout: twice) and
 * SwiGLU's x reads halve. Half the instructions (ncu, 8B batch 64), but 2 warps a scheduler: SwiGLU
 * +3.5% on 8B, +0.3-2% on 1B (same bits). The plain matmuls lose: with 2 adjacent tiles a warp over
 * 16-tile items 8% / 29% at batch 64 (the items left SMs idle; round 28), with one tile a warp over
 * the same 8-tile items as the 16-warp layout still 10% / 11% (round 29, H200): the loss is the
 * warps' IPC. 4-chunk stages (2 in the ring): SwiGLU +3.6% on 8B and +4% on 1B at batch 64 against
 * 2-chunk stages (1-chunk: -12%; round 29, BRISK_CUDA_V8_S). */
/* wg (cw 8 only, sm_90a): the same layout with wgmma for the MMAs: each warpgroup's 4 warps
 * decode their tiles' chunk (A from registers, double-buffered so that a unit's decode overlaps
 * the previous unit's wgmmas) and one m64n64k16 (4 groups: m64n32k16) a k-step takes all the
 * tokens, B (x) straight from the stage (k_xprep's wgmma order). Against mma.sync on 8 warps
 * (SwiGLU) and 16 (the others): +11.5% on 8B and +5.8% on 1B at batch 64; at batch 32, against
 * the one-warp layout above, +24% and +22% (round 32, H200). The 17-warp wgmma forms tried before
 * (rounds 27-32: two warpgroups of 32 tokens over 8-tile items, one of 64 over 16) left ~96
 * registers a thread, and ptxas serialized their wgmmas: 7-14% slower than mma.sync. */
__host__ __device__ constexpr int b_wn(int ng, int ntl, int cw = 16) {
    return cw == 8 ? 1 : ng == 4 ? ntl : ng == 8 ? 2 : ng;
}
__host__ __device__ constexpr int b_tg(int ng, int ntl, int cw = 16) {
    return cw == 8 ? 8 : ng == 1 || (ng == 4 && ntl == 1) ? 16 : 8;
}
__host__ __device__ constexpr int b_s(int ng, int ntl, int cw = 16) {
    return cw == 8 ? 4 : ng <= 2 ? 8 : (ng == 4 && ntl == 1) || (ng == 8 && ntl == 2) ? 2 : 4;
}
/* 8 groups (33-64 tokens) and every wgmma form (which accumulates straight into the sums) fold
 * each row's (scale, bias) into the decoded A fragments once a chunk
 * (fold_scale: fp16 weights s*q + b, as the prefill's dequantized tiles) and accumulate the MMAs
 * straight into the sums: per group 4 MMAs and no scale step (8 FMAs and a load of the chunk
 * sums). +1.1-1.5% on 8B at batch 64, 1B unchanged (round 26). */
__host__ __device__ constexpr bool b_fold(int ng, int wg = 0) {
    return ng == 8 || wg;
}

template <int CW> __device__ __forceinline__ void batch_sync() {
    named_sync(B_BAR, CW * 32);
}

/* x in a chunk's block for wgmma: the B fragments' k order (word i of lane (g, t)'s 16-byte unit
 * h, k-step s = 2h + i / 2, its k half kb = i % 2 at k 2t of that half) laid out as wgmma's
 * K-major core matrices, [s][kb][token group][token g][16 bytes]: for k-step s, B starts at
 * s * 2 * ng * 128 (+ 128 per group), k halves ng * 128 apart (lbo), groups 128 (sbo). */
__host__ __device__ constexpr int b_wg_off(int ng, int grp, int g, int t, int h, int i) {
    return (((2 * h + (i >> 1)) * 2 + (i & 1)) * ng + grp) * 128 + g * 16 + t * 4;
}

/* ------------------------------------------------------------------------------------------ */

/* Block (token of the padded count, slice): x row -> half B fragments and chunk sums, units
 * 256 * (blockIdx.y + gridDim.y * k) of the row (one pass a block at the launcher's grid), the
 * RMSNorm's scale over the whole row in every block of the token (the same sum in the same
 * order). One block a token took a round trip to L2 a pass, 7 in a row for 8B's down (14,336
 * columns), on as many blocks as tokens (8 at batch 8). wg: the chunk's block of ng KB in wgmma's
 * B order instead (b_wg_off). */
__global__ void __launch_bounds__(256)
    k_xprep(const float *x, int n, int K, int ng, const float *nw, float eps, uint8_t *xq,
            float *xs, int wg) {
    pdl_launch();
    pdl_wait();
    const int tok = blockIdx.x, grp = tok >> 3, g = tok & 7, tid = threadIdx.x;
    const int e0 = 256 * blockIdx.y, estep = 256 * gridDim.y;
    const bool live = tok < n;
    const float *xr = x + (int64_t)(live ? tok : 0) * K;
    __shared__ float red[8];
    const float rs =
        nw && live ? rms_scale<256>(xr, K, eps, tid, red, [] { __syncthreads(); }) : 1.f;
    /* unit e = (chunk c, u): 8 halves, columns 64c + 8u; u = 2t + h -> half h of lane (g, t) */
    const int units = (K >> 6) * 8, span = (units + 255) & ~255; /* whole warps in the loop */
    for (int e = e0 + tid; e < span; e += estep) {
        const bool act = e < units;
        const int c = e >> 3, u = e & 7, t = u >> 1, h = u & 1;
        float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        if (act && live) {
            const int col = 64 * c + 8 * u;
            const float4 a = __ldg((const float4 *)(xr + col)),
                         b = __ldg((const float4 *)(xr + col + 4));
            v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
            v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
            if (nw) {
                const float4 wa = __ldg((const float4 *)(nw + col)),
                             wb = __ldg((const float4 *)(nw + col + 4));
                const float w[8] = {wa.x, wa.y, wa.z, wa.w, wb.x, wb.y, wb.z, wb.w};
#pragma unroll
                for (int i = 0; i < 8; i++) v[i] = v[i] * rs * w[i];
            }
        }
        uint32_t hw[4];
        float sum = 0.f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const __half2 p = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
            hw[i] = *(const uint32_t *)&p;
            const float2 f = __half22float2(p);
            sum += f.x + f.y;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        sum += __shfl_xor_sync(0xffffffffu, sum, 4);
        if (act) {
            uint8_t *blk = xq + (int64_t)c * ng * 1024;
            if (wg) {
#pragma unroll
                for (int i = 0; i < 4; i++)
                    *(uint32_t *)(blk + b_wg_off(ng, grp, g, t, h, i)) = hw[i];
            } else {
                *(uint4 *)(blk + grp * 1024 + h * 512 + (4 * g + t) * 16) =
                    make_uint4(hw[0], hw[1], hw[2], hw[3]);
            }
            if (u == 0) xs[((int64_t)c * ng + grp) * 8 + g] = sum;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */

/* Work item `it`: tile group grp (tiles tile0.. of matrix m), K slice ks = chunks [cb, ce). */
struct b_item {
    int grp, ks, m, tile0, cb, ce;
};
__device__ __forceinline__ b_item item_of(const b_args &a, int it) {
    b_item r;
    r.grp = it / a.ks, r.ks = it - r.grp * a.ks;
    r.m = 0;
    while (r.m < a.nmat - 1 && r.grp >= a.gbase[r.m + 1]) r.m++;
    r.tile0 = (r.grp - a.gbase[r.m]) * a.tg;
    r.cb = r.ks * a.cpi, r.ce = min(a.nch, r.cb + a.cpi);
    return r;
}

/* Walks this block's stages in order: f(k, m, tile0, c0, nc) for stage k of the item (tile group
 * starting at tile0 of matrix m, chunks [c0, c0 + nc)); stops when f returns false. */
template <class F> __device__ __forceinline__ void each_stage(const b_args &a, F &&f) {
    int k = 0;
    const int items = a.gbase[a.nmat] * a.ks;
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const b_item w = item_of(a, it);
        for (int c0 = w.cb; c0 < w.ce; c0 += a.S, k++)
            if (!f(k, w.m, w.tile0, c0, min(a.S, w.ce - c0))) return;
    }
}

/* One output's epilogue (not SwiGLU): residual add, or store + bias. */
template <int EPI>
__device__ __forceinline__ void b_epi(const mma_mat_d &M, float *y, int row, float v) {
    if constexpr (EPI == CU_EPI_ADD)
        *y += v;
    else
        *y = v + (M.bias ? M.bias[row] : 0.f);
}

/* The K splits' merge, by the group's last item: y rows tile0 * 16.. (R of them) x the n tokens
 * = the splits' partials added in split order (deterministic), plus the epilogue (store + bias or
 * residual add). Four rows a thread as float4 with H x ks loads in flight (H 2 at 8 token
 * groups; 1 below, where 2 spilled and there are half the tokens or fewer): the merge was one
 * 4-byte load a split per thread and round trip, 16 round trips to L2 for a 64-token group, and
 * it runs once per round of items while the other SMs wait (8B batch 64: q, k, v 54.6 us a
 * launch in ncu, ~3 rounds of 8 chunks). Same sums in the same order as the scalar form, which
 * stays for outputs that are not 16-byte aligned. */
template <int EPI, int R, int NT, int H>
__device__ __forceinline__ void b_merge(const b_args &a, const mma_mat_d &M, int grp, int tile0,
                                        int npad) {
    const float *P0 = a.part + (int64_t)grp * a.ks * npad * R;
    const int64_t ss = (int64_t)npad * R; /* one split's floats */
    if (((uintptr_t)M.y & 15) || (M.ystride & 3)) {
        for (int e = threadIdx.x; e < a.n * R; e += NT) {
            const int tok = e / R, row = tile0 * 16 + e % R;
            if (row >= M.rows) continue;
            float p[B_MAXKS]; /* every split's load in flight at once */
#pragma unroll
            for (int s = 0; s < B_MAXKS; s++) p[s] = s < a.ks ? __ldcg(P0 + s * ss + e) : 0.f;
            float v = 0.f;
#pragma unroll
            for (int s = 0; s < B_MAXKS; s++) v += p[s];
            b_epi<EPI>(M, M.y + (int64_t)tok * M.ystride + row, row, v);
        }
        return;
    }
    constexpr int U = R / 4; /* float4 units a token */
    const int units = a.n * U;
    for (int u0 = threadIdx.x; u0 < units; u0 += H * NT) {
        float4 p[H][B_MAXKS];
#pragma unroll
        for (int h = 0; h < H; h++)
#pragma unroll
            for (int s = 0; s < B_MAXKS; s++)
                p[h][s] = s < a.ks && u0 + h * NT < units
                              ? __ldcg((const float4 *)(P0 + s * ss) + u0 + h * NT)
                              : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int h = 0; h < H; h++) {
            const int u = u0 + h * NT;
            if (u >= units) break;
            const int tok = u / U, row = tile0 * 16 + 4 * (u % U);
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int s = 0; s < B_MAXKS; s++)
                v.x += p[h][s].x, v.y += p[h][s].y, v.z += p[h][s].z, v.w += p[h][s].w;
            float *y = M.y + (int64_t)tok * M.ystride + row;
            if (row + 3 < M.rows) {
                float4 o = v;
                if constexpr (EPI == CU_EPI_ADD) {
                    const float4 r = *(const float4 *)y;
                    o.x += r.x, o.y += r.y, o.z += r.z, o.w += r.w;
                } else if (M.bias) {
                    o.x += M.bias[row], o.y += M.bias[row + 1], o.z += M.bias[row + 2],
                        o.w += M.bias[row + 3];
                }
                *(float4 *)y = o;
            } else {
                const float f[4] = {v.x, v.y, v.z, v.w};
                for (int i = 0; i < 4 && row + i < M.rows; i++) b_epi<EPI>(M, y + i, row + i, f[i]);
            }
        }
    }
}

template <int ST, int EPI, int NG, int WG, int CW>
__global__ void __launch_bounds__((CW + 1) * 32, 1) k_gemv_batch(const __grid_constant__ b_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int NTL = EPI == CU_EPI_SWIGLU ? 2 : 1;
    constexpr int PS = sizeof(SBT);
    constexpr int WN = b_wn(NG, NTL, CW); /* warps along the token groups */
    constexpr int TPN = NG / WN;          /* token groups per warp */
    constexpr int WT = CW / WN;           /* warps along the tiles */
    constexpr int TG = b_tg(NG, NTL, CW); /* tiles per item */
    constexpr int TPW = TG / WT;          /* tiles per warp */
    constexpr bool FOLD = b_fold(NG, WG);
    static_assert(TPW * WT == TG && NTL * TG <= 32, "warp layout");
    static_assert(!WG || ((NG == 8 || NG == 4) && FOLD && TPW == 1 && CW == 8), "wgmma layout");
    static_assert(CW == 16 || ((NG == 8 || WG) && FOLD && TPW == 1), "8-warp layout");
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int d = a.gshift - 6;
    uint8_t *ring = sm;
    uint64_t *full = (uint64_t *)(sm + a.stages * a.stage_bytes);
    uint64_t *empty = full + B_MAXST;
    int *flag = (int *)(empty + B_MAXST);
    ring_init(full, empty, a.stages, CW);

    if (wid == CW) { /* producer: lane i copies tile i's codes and pairs, lane 31 the x part */
        const uint64_t pol = policy_evict_first();
        auto weights = [&](int st, int m, int tile0, int c0, int nc) {
            const int nt = min(a.tg, a.m[m].tiles - tile0);
            const uint32_t xb = a.aid & 4 ? 0 : nc * NG * (1024 + 32);
            const uint32_t wb = a.aid & 2 ? 0 : NTL * nt * tile_slice_bytes<ST>(c0, nc, d);
            if (lane == 0) mbar_expect(&full[st], wb + xb);
            __syncwarp();
            const int i = lane / TG, tt = lane % TG;
            if (i < NTL && tt < nt && !(a.aid & 2)) {
                uint8_t *dst = ring + st * a.stage_bytes;
                bulk_tile_slice<ST>(dst + (i * TG + tt) * a.S * 512,
                                    dst + a.off_pairs + (i * TG + tt) * a.gmax * 16 * PS,
                                    a.m[NTL == 2 ? i : m], tile0 + tt, a.nch, c0, nc, d, &full[st],
                                    pol);
            }
        };
        auto xpart = [&](int st, int c0, int nc) {
            if (lane != 31 || (a.aid & 4)) return;
            uint8_t *dst = ring + st * a.stage_bytes;
            bulk_copy(dst + a.off_x, a.xq + (int64_t)c0 * NG * 1024, nc * NG * 1024, &full[st], 0);
            bulk_copy(dst + a.off_xs, a.xs + (int64_t)c0 * NG * 8, nc * NG * 32, &full[st], 0);
        };
        /* the first ring's weights before the wait (they never depend on earlier kernels) */
        each_stage(a, [&](int k, int m, int tile0, int c0, int nc) {
            if (k >= a.stages) return false;
            weights(k, m, tile0, c0, nc);
            return true;
        });
        pdl_wait();
        each_stage(a, [&](int k, int m, int tile0, int c0, int nc) {
            const int st = k % a.stages;
            if (k >= a.stages) {
                mbar_wait(&empty[st], ((k / a.stages) - 1) & 1);
                weights(st, m, tile0, c0, nc);
            }
            xpart(st, c0, nc);
            return true;
        });
        return;
    }

    pdl_wait(); /* the epilogue reads y (residual add), which earlier kernels wrote */
    const int g = lane >> 2, t = lane & 3;
    const int wn = wid % WN, wt = wid / WN; /* wgmma: warpgroup wid / 4 has tiles 4 (wid / 4).. */
    float acc[NTL][TPW][TPN][4];
    uint32_t WA[2][4][4];              /* wgmma: A double-buffered */
    int pw = wt * a.gmax * 16 + 2 * g; /* wgmma: this warp's pairs in a stage (opaque: kept) */
    asm("" : "+r"(pw));
    /* a tile's chunk q (its 16 rows' 4 k-steps, lane's words) with pairs r0, r1 -> half A
     * fragments (LOP3; FOLD: with the rows' scale and bias folded in) */
    auto dec = [&](const uint4 &q, const SBT &r0, const SBT &r1, uint32_t(&A)[4][4]) {
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint32_t w = s == 0 ? q.x : s == 1 ? q.y : s == 2 ? q.z : q.w;
            A[s][0] = lop_or(w, 0x000F000Fu), A[s][1] = lop_or(w, 0x00F000F0u);
            A[s][2] = lop_or(w >> 8, 0x000F000Fu), A[s][3] = lop_or(w >> 8, 0x00F000F0u);
        }
        if constexpr (FOLD) { /* rows g: s, b; rows g + 8 hold 16 c: s / 16, b */
            const float2 p0 = sb_dec<ST>(r0), p1 = sb_dec<ST>(r1);
            const __half2 s0 = __float2half2_rn(p0.x), b0 = __float2half2_rn(p0.y);
            const __half2 s1 = __float2half2_rn(0.0625f * p1.x), b1 = __float2half2_rn(p1.y);
            const uint32_t S0 = *(const uint32_t *)&s0, B0 = *(const uint32_t *)&b0;
            const uint32_t S1 = *(const uint32_t *)&s1, B1 = *(const uint32_t *)&b1;
#pragma unroll
            for (int s = 0; s < 4; s++) {
                A[s][0] = fold_scale(A[s][0], S0, B0);
                A[s][1] = fold_scale(A[s][1], S1, B1);
                A[s][2] = fold_scale(A[s][2], S0, B0);
                A[s][3] = fold_scale(A[s][3], S1, B1);
            }
        }
    };
    int k = 0;
    const int items = a.gbase[a.nmat] * a.ks;
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const b_item w = item_of(a, it);
        const int grp = w.grp, ks = w.ks, tile0 = w.tile0, cb = w.cb, ce = w.ce;
        const mma_mat_d &M = a.m[w.m];
        const int nt = min(a.tg, M.tiles - tile0);
        /* a warp (wgmma: warpgroup) whose tiles are all past the item's only takes the stages */
        const bool idle = (WG ? (wt & ~3) : wt * TPW) >= nt;
#pragma unroll
        for (int i = 0; i < NTL; i++)
#pragma unroll
            for (int ti = 0; ti < TPW; ti++)
#pragma unroll
                for (int jn = 0; jn < TPN; jn++)
#pragma unroll
                    for (int j = 0; j < 4; j++) acc[i][ti][jn][j] = 0.f;
        for (int c0 = cb; c0 < ce; c0 += a.S, k++) {
            const int st = k % a.stages, nc = min(a.S, ce - c0), g0 = c0 >> d;
            const uint8_t *base = ring + st * a.stage_bytes;
            const SBT *pairs = (const SBT *)(base + a.off_pairs);
            mbar_wait(&full[st], (k / a.stages) & 1);
            /* chunk c of the stage (the mma.sync forms) */
            auto chunk = [&](const int c) {
                const int gl = ((c0 + c) >> d) - g0;
                /* tile tt's chunk of matrix i (SwiGLU: 0 gate, 1 up) decoded (LOP3 -> half A
                 * fragments of its 4 k-steps; FOLD: with the rows' scale and bias folded in) */
                auto decode = [&](int i, int tt, uint32_t(&A)[4][4], SBT &r0, SBT &r1) {
                    const uint4 q =
                        *(const uint4 *)(base + ((i * TG + tt) * a.S + c) * 512 + lane * 16);
                    ld_pair2<ST, false>(pairs + ((i * TG + tt) * a.gmax + gl) * 16 + 2 * g, r0, r1);
                    dec(q, r0, r1, A);
                };
                /* token group tg's x (B fragments of the chunk's 4 k-steps) */
                auto xfrag = [&](int tg, uint32_t(&bx0)[4], uint32_t(&bx1)[4]) {
                    const uint8_t *xp = base + a.off_x + (c * NG + tg) * 1024 + lane * 16;
                    const uint4 xa = *(const uint4 *)xp, xb = *(const uint4 *)(xp + 512);
                    bx0[0] = xa.x, bx0[1] = xa.z, bx0[2] = xb.x, bx0[3] = xb.z;
                    bx1[0] = xa.y, bx1[1] = xa.w, bx1[2] = xb.y, bx1[3] = xb.w;
                };
                if constexpr (CW == 8) { /* both A tiles decoded, then x once a group */
                    uint32_t A[NTL * TPW][4][4];
#pragma unroll
                    for (int ti = 0; ti < TPW; ti++)
#pragma unroll
                        for (int i = 0; i < NTL; i++) {
                            SBT r0, r1;
                            decode(i, wt * TPW + ti, A[ti * NTL + i], r0, r1);
                        }
#pragma unroll
                    for (int jn = 0; jn < TPN; jn++) {
                        uint32_t bx0[4], bx1[4];
                        xfrag(jn, bx0, bx1);
#pragma unroll
                        for (int ti = 0; ti < TPW; ti++)
#pragma unroll
                            for (int i = 0; i < NTL; i++)
#pragma unroll
                                for (int s = 0; s < 4; s++) {
                                    const uint32_t *f = A[ti * NTL + i][s];
                                    mma16816(acc[i][ti][jn], f[0], f[1], f[2], f[3], bx0[s],
                                             bx1[s]);
                                }
                    }
                } else {
                    /* per matrix (SwiGLU: gate, then up): the tile's chunk decoded once and then
                     * run against each token group: its 4 k-steps' MMAs in one chain (the groups'
                     * chains independent), then the group's scale/bias (FOLD: none). One matrix's
                     * fragments at a time keep SwiGLU's 2 x TPN accumulators out of local memory.
                     * (Tiles past the matrix compute stale data never stored.) */
#pragma unroll
                    for (int ti = 0; ti < TPW; ti++)
#pragma unroll
                        for (int i = 0; i < NTL; i++) {
                            SBT r0, r1;
                            uint32_t A[4][4];
                            decode(i, wt * TPW + ti, A, r0, r1);
#pragma unroll
                            for (int jn = 0; jn < TPN; jn++) {
                                const int tg = wn * TPN + jn;
                                uint32_t bx0[4], bx1[4];
                                xfrag(tg, bx0, bx1);
                                if constexpr (FOLD) {
#pragma unroll
                                    for (int s = 0; s < 4; s++)
                                        mma16816(acc[i][ti][jn], A[s][0], A[s][1], A[s][2], A[s][3],
                                                 bx0[s], bx1[s]);
                                    continue;
                                }
                                const float2 s2 =
                                    *(const float2 *)(base + a.off_xs +
                                                      ((c * NG + tg) * 8 + 2 * t) * 4);
                                const float X[4] = {s2.x, s2.y, s2.x, s2.y};
                                float C[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                                for (int s = 0; s < 4; s++)
                                    mma16816(C, A[s][0], A[s][1], A[s][2], A[s][3], bx0[s], bx1[s]);
                                mma_chunk_scale<ST>(acc[i][ti][jn], C, r0, r1, X);
                            }
                        }
                }
            };
            if constexpr (WG != 0) {
                /* the warpgroup's 4 tiles x its tokens, unit u = (chunk u / NTL, matrix u % NTL):
                 * unit u + 1's codes and pairs loaded before unit u's decode (their latency under
                 * it), unit u decoded into WA[u & 1] while unit u - 1's wgmmas run, then its own
                 * issued; wait<1> leaves only these in flight, so unit u + 1 may rewrite the other
                 * buffer. The addresses and B's descriptor are made once a stage (SC, the stage's
                 * chunks, is a.S here): 110 -> 87 instructions a unit of the plain matmuls, 90 ->
                 * 79 of SwiGLU's (SASS; ~52 of them the decode itself). */
                constexpr int SC = b_s(NG, NTL, CW), NU = SC * NTL;
                const int nu = idle ? 0 : nc * NTL, cm = c0 & ((1 << d) - 1);
                const uint8_t *cp = base + wt * SC * 512 + lane * 16;
                const SBT *pp = pairs + pw;
                int po[SC]; /* chunk c's pairs: its group of the stage (opaque: kept, not remade) */
#pragma unroll
                for (int c = 0; c < SC; c++) {
                    po[c] = ((cm + c) >> d) * 16;
                    asm("" : "+r"(po[c]));
                }
                const wg_bd xd = wg_bdesc(base + a.off_x, NG * 128, 128);
                uint4 q[2];
                SBT r0[2], r1[2];
                auto load = [&](int u) {
                    const int c = u / NTL, i = u % NTL;
                    q[u & 1] = *(const uint4 *)(cp + (i * TG * SC + c) * 512);
                    ld_pair2<ST, false>(pp + i * TG * a.gmax * 16 + po[c], r0[u & 1], r1[u & 1]);
                };
                if (nu > 0) load(0);
#pragma unroll
                for (int u = 0; u < NU; u++) {
                    if (u >= nu) break;
                    if (u + 1 < NU && u + 1 < nu) load(u + 1);
                    const int c = u / NTL, i = u % NTL;
                    dec(q[u & 1], r0[u & 1], r1[u & 1], WA[u & 1]);
                    wg_fence();
#pragma unroll
                    for (int s = 0; s < 4; s++)
                        wgmma_rs<8 * TPN>(&acc[i][0][0][0], WA[u & 1][s],
                                          wg_boff(xd, (c * NG * 8 + s * 2 * NG) * 128));
                    wg_commit();
                    wg_wait<1>();
                }
                wg_wait<0>(); /* the stage's wgmmas read x from it */
            } else {
                for (int c = 0; c < (idle ? 0 : nc); c++) chunk(c);
            }
            ring_release(&empty[st]); /* this warp is done with the stage */
        }

        /* the item's sums: lane (g, t) holds rows g, g + 8 x tokens 2t, 2t + 1 of each tile and
         * token group */
        if (a.ks == 1) {
#pragma unroll
            for (int ti = 0; ti < TPW; ti++) {
                const int tt = wt * TPW + ti;
                if (tt >= nt) break;
#pragma unroll
                for (int jn = 0; jn < TPN; jn++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const int row = (tile0 + tt) * 16 + g + 8 * (j >> 1);
                        const int tok = (wn * TPN + jn) * 8 + 2 * t + (j & 1);
                        if (tok >= a.n || row >= M.rows) continue;
                        float *y = M.y + (int64_t)tok * M.ystride + row;
                        const float v = acc[0][ti][jn][j];
                        if constexpr (EPI == CU_EPI_SWIGLU)
                            *y = v / (1.0f + expf(-v)) * acc[NTL - 1][ti][jn][j];
                        else
                            b_epi<EPI>(M, y, row, v);
                    }
            }
            continue;
        }
        if constexpr (NTL == 1) {
            /* K split: the partial to scratch; the group's last item adds the splits in order */
            const int npad = NG * 8;
            float *P = a.part + ((int64_t)grp * a.ks + ks) * npad * (TG * 16);
#pragma unroll
            for (int ti = 0; ti < TPW; ti++) {
                const int tt = wt * TPW + ti;
#pragma unroll
                for (int jn = 0; jn < TPN; jn++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const int r = tt * 16 + g + 8 * (j >> 1);
                        const int tok = (wn * TPN + jn) * 8 + 2 * t + (j & 1);
                        P[tok * (TG * 16) + r] = acc[0][ti][jn][j];
                    }
            }
            __threadfence();
            batch_sync<CW>();
            if (threadIdx.x == 0) *flag = atomicAdd(a.count + grp, 1) == a.ks - 1;
            batch_sync<CW>();
            if (*flag) {
                __threadfence();
                b_merge<EPI, TG * 16, CW * 32, NG == 8 ? 2 : 1>(a, M, grp, tile0, npad);
                if (threadIdx.x == 0) a.count[grp] = 0; /* ready for the next launch */
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */

int cu_gemv_v8 = 1; /* env BRISK_CUDA_BATCH=0: steps of several tokens on v4 (A/B) */

/* env BRISK_CUDA_WG=0: the 25-64-token launches on mma.sync, not wgmma (A/B; wgmma needs
 * cu_wgmma_ok too) */
int cu_v8_wg = 1;

/* env BRISK_CUDA_V8_CW (mma.sync only, BRISK_CUDA_WG=0): which 8-group launches run on 8 consumer
 * warps (b_wn): 0 SwiGLU's, 8 every one, 16 none (16 warps of 1 A tile and 4 groups each, as
 * before round 28; A/B). */
int cu_v8_cw = 0;
int cu_v8_s[2] = {0, 0};
/* env BRISK_CUDA_V8_KS (forced K splits) and BRISK_CUDA_V8_KSM (the split model's merge cost):
 * tuning (cuda_switches.h) */
int cu_v8_ks = 0, cu_v8_ksm = 8;

template <int ST, int EPI, int NG, int WG = 0, int CW = 16>
static cudaError_t launch_b(cudaStream_t st, const b_args &a, int smem) {
    return launch_persistent(k_gemv_batch<ST, EPI, NG, WG, CW>, smem, (CW + 1) * 32, st, a);
}

template <int ST, int EPI>
static cudaError_t launch_b_ng(cudaStream_t st, const b_args &a, int smem, int ng, int wg, int cw) {
    return ng == 1   ? launch_b<ST, EPI, 1>(st, a, smem)
           : ng == 2 ? launch_b<ST, EPI, 2>(st, a, smem)
           : ng == 4
               ? (wg ? launch_b<ST, EPI, 4, 1, 8>(st, a, smem) : launch_b<ST, EPI, 4>(st, a, smem))
           : wg      ? launch_b<ST, EPI, 8, 1, 8>(st, a, smem)
           : cw == 8 ? launch_b<ST, EPI, 8, 0, 8>(st, a, smem)
                     : launch_b<ST, EPI, 8>(st, a, smem);
}

template <int ST>
static cudaError_t launch_b_epi(cudaStream_t st, const b_args &a, int smem, int epi, int ng, int wg,
                                int cw) {
    if (epi == CU_EPI_SWIGLU) return launch_b_ng<ST, CU_EPI_SWIGLU>(st, a, smem, ng, wg, cw);
    if (epi == CU_EPI_ADD) return launch_b_ng<ST, CU_EPI_ADD>(st, a, smem, ng, wg, cw);
    return launch_b_ng<ST, CU_EPI_STORE>(st, a, smem, ng, wg, cw);
}

size_t cu_gemv_batch_xq_bytes(int64_t max_cols) {
    return (size_t)(max_cols / 64) * 8 * 1024;
}
size_t cu_gemv_batch_xs_floats(int64_t max_cols) {
    return (size_t)(max_cols / 64) * 64;
}

cudaError_t cu_gemv_batch(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                          int n, const float *nw, float eps, const cu_batch_scratch *sc) {
    const int ntl = epi == CU_EPI_SWIGLU ? 2 : 1;
    const cu_weight *w0 = m[0].w;
    if (n > 64) { /* a prefill: 64 tokens per pass over the weights */
        for (int t0 = 0; t0 < n; t0 += 64) {
            cu_gemv_mat c[3];
            for (int i = 0; i < nmat; i++)
                c[i] = m[i], c[i].y = m[i].y + (int64_t)t0 * m[i].w->rows;
            const cudaError_t e = cu_gemv_batch(st, c, nmat, epi, x + (int64_t)t0 * w0->cols,
                                                n - t0 < 64 ? n - t0 : 64, nw, eps, sc);
            if (e != cudaSuccess) return e; /* NotSupported comes from the first chunk only */
        }
        return cudaSuccess;
    }
    if (!cu_gemv_v8 || !cu_sm90 || !sc || !sc->xq || n < 1 || w0->fast != 2 || w0->cols % 64 ||
        w0->gs < 64 || w0->cols > sc->max_cols || ((uintptr_t)x & 15) ||
        (nw && ((uintptr_t)nw & 15)))
        return cudaErrorNotSupported;
    for (int i = 1; i < nmat; i++)
        if (m[i].w->fast != 2 || m[i].w->cols != w0->cols || m[i].w->gs != w0->gs ||
            m[i].w->stype != w0->stype)
            return cudaErrorNotSupported;
    if (epi == CU_EPI_SWIGLU && (nmat != 2 || m[1].w->rows != w0->rows))
        return cudaErrorNotSupported;
    const int ng = n <= 8 ? 1 : n <= 16 ? 2 : n <= 32 ? 4 : 8, npad = ng * 8;
    const int wg = ng >= 4 && cu_wgmma_ok && cu_v8_wg;
    const int cw = wg || (ng == 8 && (cu_v8_cw == 8 || (cu_v8_cw == 0 && ntl == 2))) ? 8 : 16;
    const int tg = b_tg(ng, ntl, cw); /* the stage's tile slots */
    const int nsm = sm_count();
    b_args a = {};
    /* SwiGLU (no K split: its epilogue needs whole sums): fewer tiles an item where that cuts
     * the busiest block's tiles by a quarter or more. 1B at batch 64: 512 tiles, 64 items of 8 on
     * 132 SMs, 128 of 4: +11.6% (batch 32 and 16 +7%). A block's time is not in proportion to its
     * tiles: 8B's 896 tiles in 128 items of 7 instead of 112 of 8 lost 3% at batch 32 (round 27,
     * H200). wgmma: whole warpgroups of tiles. */
    a.tg = tg;
    if (ntl == 2) {
        const int tiles = (int)((w0->rows + 15) / 16);
        const auto cost = [&](int t) { return ((tiles + t - 1) / t + nsm - 1) / nsm * t; };
        int best = cost(tg);
        for (int t = tg - (wg ? 4 : 1); t >= 1; t -= wg ? 4 : 1)
            if (cost(t) * 4 <= cost(tg) * 3 && cost(t) < best) best = cost(t), a.tg = t;
    }
    a.nmat = ntl == 2 ? 1 : nmat;
    a.K = (int)w0->cols, a.nch = a.K / 64, a.n = n;
    while ((1 << a.gshift) < w0->gs) a.gshift++;
    const int d = a.gshift - 6;
    for (int i = 0; i < nmat; i++) {
        const cu_weight *w = m[i].w;
        a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias, a.m[i].y = m[i].y;
        a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
        a.m[i].tiles = (int)((w->rows + 15) / 16);
        a.m[i].blocks = (a.m[i].tiles + a.tg - 1) / a.tg;
    }
    for (int i = 0; i < a.nmat; i++) a.gbase[i + 1] = a.gbase[i] + a.m[i].blocks;
    const int groups = a.gbase[a.nmat];

    /* stage: codes [NTL*tg][S][512] | pairs [NTL*tg][gmax][16] | x [S][ng][1 KB] | sums */
    a.S = b_s(ng, ntl, cw);
    if (ng == 8 && !wg && cu_v8_s[ntl - 1] >= 1 && cu_v8_s[ntl - 1] <= 8) a.S = cu_v8_s[ntl - 1];
    const int ps = w0->stype == BRISK_W_F32 ? 8 : 4;
    a.gmax = ((a.S - 1) >> d) + 2;
    a.off_pairs = ntl * tg * a.S * 512;
    a.off_x = a.off_pairs + ((ntl * tg * a.gmax * 16 * ps + 127) & ~127);
    a.off_xs = a.off_x + a.S * ng * 1024;
    a.stage_bytes = (a.off_xs + a.S * ng * 32 + 127) & ~127;
    a.stages = B_RING / a.stage_bytes;
    if (a.stages > B_MAXST) a.stages = B_MAXST;
    const int tail = 2 * B_MAXST * 8 + 16;
    while (a.stages > 2 && a.stages * a.stage_bytes + tail > 227 * 1024) a.stages--;
    if (a.stages < 2 || a.stages * a.stage_bytes + tail > 227 * 1024) return cudaErrorNotSupported;

    /* K splits: the fewest that keep the SMs busy, by the time of the busiest block in chunks:
     * its rounds of items, each with a merge (cu_v8_ksm chunks, env BRISK_CUDA_V8_KSM; a
     * group's splits run in the same round, so every round ends in merges), within the scratch.
     * 8B batch 64: q, k, v in 2 splits (96 items, one round) instead of 8 (3 rounds): +4.4%;
     * a merge of 2 or 4 chunks picks 5 (+2.7%); -1 is the older model (one merge in all, 4
     * chunks). No other shape of 8B or 1B at 1-64 tokens changes (round 30, H200). */
    a.ks = 1;
    if (ntl == 1 && sc->part && sc->count && groups <= sc->count_cap) {
        double best = 1e30;
        for (int ks = 1; ks <= B_MAXKS && ks <= a.nch; ks++) {
            if ((size_t)groups * ks * npad * (tg * 16) > sc->part_cap) break;
            const int cpi = (a.nch + ks - 1) / ks;
            const int rounds = (groups * ks + nsm - 1) / nsm;
            const double cost = cu_v8_ksm < 0 ? (double)rounds * cpi + (ks > 1 ? 4 : 0)
                                              : (double)rounds * (cpi + (ks > 1 ? cu_v8_ksm : 0));
            if (cost < best - 1e-9) best = cost, a.ks = ks;
            if (ks == cu_v8_ks) { /* forced (tuning) */
                a.ks = ks;
                break;
            }
        }
    }
    a.cpi = (a.nch + a.ks - 1) / a.ks;
    a.xq = (const uint8_t *)sc->xq, a.xs = sc->xs, a.part = sc->part, a.count = sc->count;
    a.aid = (cu_skip & SKIP_COPY ? 2 : 0) | (cu_skip & SKIP_XCOPY ? 4 : 0);

    const int passes = (a.nch * 8 + 255) / 256; /* of 256 units (8 a chunk) */
    cudaError_t e = cu_launch(k_xprep, dim3(npad, passes), dim3(256), 0, st, x, n, a.K, ng, nw, eps,
                              (uint8_t *)sc->xq, sc->xs, wg);
    if (e != cudaSuccess) return e;
    const int smem = a.stages * a.stage_bytes + tail;
    if (w0->stype == BRISK_W_BF16) return launch_b_epi<BRISK_W_BF16>(st, a, smem, epi, ng, wg, cw);
    if (w0->stype == BRISK_W_F32) return launch_b_epi<BRISK_W_F32>(st, a, smem, epi, ng, wg, cw);
    return launch_b_epi<BRISK_W_F16>(st, a, smem, epi, ng, wg, cw);
}
