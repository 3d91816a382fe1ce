/* cuda_attn.cu: causal GQA attention over the paged float16 KV cache: the flash-decoding kernel
 * (warps on independent 32-position tiles, the split combine folded in) and the older split-K pair
 * kept for head sizes the new kernel does not take (head_dim % 8 != 0 or > 256). */
#include "cuda_internal.h"
#include "cuda_mma.cuh"
#include "cuda_switches.h"
#include "cuda_tc.cuh"

#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <type_traits>

namespace cg = cooperative_groups;

/* Cluster barrier and distributed shared memory (sm_90); never reached in code built for older
 * cards (the cluster variant is launched only with sm_90 device code). */
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cg::this_cluster().sync();
#endif
}
/* The split barrier: cluster_split<true>() arrives (no ordering) at entry, cluster_split<false>()
 * waits before the first access to another block's shared memory, which must not come before that
 * block has started. */
template <bool ARRIVE> __device__ __forceinline__ void cluster_split() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (ARRIVE)
        asm volatile("barrier.cluster.arrive.relaxed;" ::: "memory");
    else
        asm volatile("barrier.cluster.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ float *cluster_smem(float *p, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    return cg::this_cluster().map_shared_rank(p, rank);
#else
    (void)rank;
    return p;
#endif
}

extern "C" {
#include "backend/backend.h"
}

/* ---------------------------------------------------------------------------------------------
 * Flash-decoding. Grid (split, kv head, token), 4 warps per block. The token's context
 * [first, p] is cut into n_act <= n_split pieces of `chunk` positions (a multiple of 32, chosen
 * here from the actual context, so the grid depends only on n_split, which the host derives from
 * the SM count and max_ctx: a captured graph replays it at any length); blocks past n_act exit.
 * Inside a block, warp w takes the 32-position tiles w, w+4, ... of its piece:
 *   q.k:  lane j owns position tb+j and reads its whole key row (hd/8 16-byte loads, all issued
 *         before any math) against q of all G heads of the kv head (shared memory, broadcast);
 *   softmax: online, in registers, log2 domain (q pre-scaled by log2(e)/sqrt(hd)); p goes to a
 *         per-warp shared row [32][GP];
 *   p.v:  lanes lie along head_dim: LPR = 8/16/32 lanes x 8 halves cover a row (hd <= 64, 128,
 *         256), so a warp reads 4/2/1 V rows per 16-byte load instruction; lane (r, c) adds rows
 *         r, r+RPW, ... of the tile into o[g][8] for all G heads. V loads are issued right after
 *         the K loads, so both round trips overlap (not for G > 4 with head_dim > 64: registers).
 * Each K/V row is read once for the G query heads. Warps merge their (m, l, o) in shared memory;
 * a piece-count of 1 writes the output directly, otherwise the block writes its partial, and the
 * last block of the (token, kv head) to arrive (device-scope counter after __threadfence) merges
 * all partials in split order (deterministic) and resets the counter for the next launch. The
 * cluster variant (CL, <= 8 pieces) merges through distributed shared memory instead: see the
 * merge below (a.slice: each block merges one slice of the output).
 * ------------------------------------------------------------------------------------------- */

#define FD_WARPS       4
#define FD_THREADS     (FD_WARPS * 32)
#define FD_MAX_SPLIT   256
#define FD_MAX_CLUSTER 8 /* pieces merged through distributed shared memory (portable size) */
#define FD_SM_SMEM     (228 << 10) /* shared memory of an SM (sm_90) */
#define FD_LOG2E       1.4426950408889634f

__device__ __forceinline__ void h8_to_f(const uint4 &raw, float *f) {
    const __half2 *h2 = reinterpret_cast<const __half2 *>(&raw);
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const float2 v = __half22float2(h2[e]);
        f[2 * e] = v.x, f[2 * e + 1] = v.y;
    }
}

/* Halves of the TC variant's per-warp K/V tiles, [warp][buffer (nb)][K, V][32][hd + 8], and then
 * the token's new K and V rows [2][hd] (fused RoPE: the tile that holds the new position takes its
 * row from there, not from the cache it was just stored to). */
__host__ __device__ __forceinline__ int tc_kv_halves(int hd, int nb = 2) {
    return FD_WARPS * nb * 2 * 32 * (hd + 8) + 2 * hd;
}

/* Measuring aid (env BRISK_CUDA_TRACE): block (0, 0, 0) adds its stage times (globaltimer ns)
 * since `from` to slot k of a.trace; the host prints the sums at destroy. */
__device__ __forceinline__ void tr_add(unsigned long long *tr, int k, uint64_t from) {
    atomicAdd(tr + k, (unsigned long long)(gtime() - from));
}

/* This block's share of the L2 prefetch ranges (cu_attn_args.pf), by warp 0: pieces of 16 KB
 * over its lanes. The shares are the whole grid's: blocks past n_act exit first and leave theirs
 * (sharing over the active pieces only lost, bench/cuda-notes.md round 15). */
__device__ __forceinline__ void attn_prefetch(const cu_attn_args &a) {
    const uint32_t nb = gridDim.x * gridDim.y * gridDim.z;
    const uint32_t b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    pf_issue(a.pf, b, nb, threadIdx.x, 32, 16u << 10);
}

/* SV 0: the general kernel. 1: slim (fd_launch: the fused RoPE, the slice merge), without the
 * measuring aids; 2: slim with them. */
/* NB: the TC tiles' buffers a warp: 2 (a tile copied while the one before is computed), or 1
 * where that lets two blocks share an SM in a grid of more than one wave (fd_launch): ~81 KB a
 * block instead of ~147 at head_dim 128, and one block's prologue overlaps the other's tiles
 * (each warp then waits for its tile's copy). */
template <int GP, int LPR, bool CL, int TC, int SV, int NB = 2>
__global__ void __launch_bounds__(FD_THREADS, 2)
    k_attn_decode(const __grid_constant__ cu_attn_args a) {
    unsigned long long *const trace = SV == 1 ? nullptr : a.trace;
    unsigned long long *const tl = SV == 1 ? nullptr : a.tl;
    const bool fused = SV != 0 || a.k_new != nullptr, empty = SV == 0 && a.empty;
    const uint64_t T0 = trace ? gtime() : 0;
    pdl_launch();
    tl_mark(tl, TL_ENTRY, true);
    if constexpr (CL) cluster_split<true>(); /* every block started: waited for at the push */
    /* Fused (a.k_new): everything this block reads from the cache except each token's own new
     * position was written by earlier steps, and pos/seq/slot/tables by the step's upload, so
     * the first tile's K/V loads go out before the wait for the previous kernel (the q, k, v
     * GEMV), as the GEMVs issue their weights; the new position is re-read after the owner block
     * stored it. Unfused, the previous kernel (rope + KV store) wrote the cache: wait first. */
    const bool pre = fused && !empty;
    if (!pre) pdl_wait(), tl_mark(tl, TL_WAIT, true);
    if (empty) return;
    const bool tr = trace && threadIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0;
    uint64_t T1 = T0;
    /* element e of the output, and its half where the o projection stages that (a.outq) */
    auto put_out = [&](int64_t e, float v) {
        a.out[e] = v;
        if (a.outq) ((__half *)a.outq)[e] = __float2half_rn(v);
    };
    constexpr int RPW = 32 / LPR;            /* V rows per warp load instruction */
    constexpr int VR = 32 / RPW;             /* V rows per lane per tile */
    constexpr int VCH = VR < 16 ? VR : 16;   /* V rows loaded per round */
    constexpr int KCH = LPR < 16 ? LPR : 16; /* K chunks of 8 halves loaded per round */
    /* V loads go out with the K loads, except where K + V + o would pass 255 registers */
    constexpr bool VEARLY = !(GP == 8 && LPR >= 16);
    const int s = blockIdx.x, kvh = blockIdx.y, i = blockIdx.z;
    const int HKV = a.n_head_kv, G = a.n_head / HKV, hd = a.head_dim, ns = a.n_split;
    const int p = a.pos[i];
    const int first = a.window > 0 && p - a.window + 1 > 0 ? p - a.window + 1 : 0;
    const int L = p - first + 1; /* >= 1 */
    /* a piece is at least one tile per warp: a block with idle warps costs the same latency, and
     * fewer pieces make a shorter merge (ctx 600 at 20 splits: 5 pieces of 128, not 19 of 32) */
    const int chunk = max((((L + ns - 1) / ns) + 31) & ~31, FD_WARPS * 32 * max(a.min_tiles, 1));
    const int n_act = (L + chunk - 1) / chunk;
    if (s >= n_act) { /* the whole block: before any barrier */
        if constexpr (CL) cluster_split<false>(), cluster_sync(); /* both count every block */
        return;
    }
    const int t0 = first + s * chunk, t1 = min(t0 + chunk, p + 1); /* [t0, t1), non-empty */

    extern __shared__ float4 fd_sm4[];
    float *qs = reinterpret_cast<float *>(fd_sm4); /* [G][hd], scaled */
    float *ps = qs + G * hd;                       /* [warp][32][GP]: p of the current tile */
    float *wml = ps + FD_WARPS * 32 * GP;          /* [warp][G][2]: m, l */
    float *wo = wml + FD_WARPS * G * 2;            /* [warp][G][hd]; later the combine weights */
    /* TC: the warps' K/V tiles after wo (16-byte aligned: every part above is a multiple of 4
     * floats) */
    __half *kvs = reinterpret_cast<__half *>(wo + ((max(FD_WARPS * G * hd, G * ns) + 3) & ~3));
    /* CL: the pieces' partials [ns][G][hd] and (m, l) [ns][G][2], after the tiles and new rows;
     * every block pushes its partial into block 0's, or (a.slice) slice j of it into block j's
     * (a region no block uses for anything else, so a push may land while the receiver is still
     * in its tiles) */
    float *rcv = reinterpret_cast<float *>(kvs + (TC != 0 ? tc_kv_halves(hd, NB) : 0));
    float *rml = rcv + ns * G * hd;
    __shared__ int is_last;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int64_t head0 = (int64_t)i * a.n_head + (int64_t)kvh * G; /* first q head */
    const int64_t kv_dim = (int64_t)HKV * hd;

    const int32_t *table = a.tables + (int64_t)a.seq[i] * a.max_blocks;
    const __half *kbase = (const __half *)a.kc + (int64_t)kvh * hd;
    const __half *vbase = (const __half *)a.vc + (int64_t)kvh * hd;
    const int nch = hd >> 3;
    const int vr = lane / LPR, vc8 = (lane % LPR) * 8; /* p.v layout: row in group, first dim */
    const bool vlane = vc8 < hd;
    const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
    const int ntile = (t1 - t0 + 31) >> 5;
    int tile = warp, t = 0, slot = -1;
    bool valid = false;
    const __half *kr = kbase;
    uint4 kb[KCH], vb[VCH];
    auto setup = [&]() {
        t = t0 + tile * 32 + lane;
        valid = t < t1;
        slot = valid ? table[t / a.block_size] * a.block_size + t % a.block_size : -1;
        kr = kbase + (valid ? (int64_t)slot * kv_dim : 0);
    };
    auto load_k = [&](int c0) {
#pragma unroll
        for (int u = 0; u < KCH; u++)
            kb[u] = valid && c0 + u < nch ? __ldcg((const uint4 *)(kr + 8 * (c0 + u))) : zero4;
    };
    /* V rows (u0 + u) * RPW + vr of the tile; only == want (>= 0) when want is given */
    auto load_v = [&](int u0, int want) {
#pragma unroll
        for (int u = 0; u < VCH; u++) {
            const int sj = __shfl_sync(0xffffffffu, slot, (u0 + u) * RPW + vr);
            if (want >= 0 && sj != want) continue;
            vb[u] = sj >= 0 && vlane ? __ldcg((const uint4 *)(vbase + (int64_t)sj * kv_dim + vc8))
                                     : zero4;
        }
    };
    /* TC: copies 32-position tile tl of this piece into buffer buf of the warp's K/V tiles
     * (positions past t1 zero); want >= 0: only the row in that slot, skip >= 0: all but it */
    constexpr int TLD = TC + 8;
    __half *kvw = kvs + warp * (NB * 2 * 32 * TLD);
    __half *nrow = kvs + FD_WARPS * NB * 2 * 32 * TLD; /* TC: the new K and V rows */
    /* NB 1: the same copies with less address arithmetic (ncu, round 34: ~300 of a tile's ~980
     * instructions were its copies' addresses): each lane's row as a 32-bit offset in 16-byte
     * units (fd_launch takes this form only for caches below 32 GB), one shuffle a copy pair, a
     * lane's column and shared-memory row fixed. SKIP: leave out the row in slot `skip` (the new
     * row, stored from nrow later: a zero-filling copy could land after that store). */
    auto tc_issue1 = [&](int tl, int skip, auto skipc) {
        if constexpr (TC != 0) {
            constexpr bool SKIP = decltype(skipc)::value;
            constexpr int CPR = TC / 8, RPI = 32 / CPR; /* 16-byte chunks a row, rows a copy */
            const int tj = t0 + tl * 32 + lane;
            const int sl =
                tj < t1 ? table[tj / a.block_size] * a.block_size + tj % a.block_size : -1;
            const int r16 = sl < 0               ? -1
                            : SKIP && sl == skip ? -2
                                                 : (int)((uint32_t)sl * (uint32_t)(kv_dim >> 3));
            const int jl = lane / CPR, cl = lane % CPR;
            __half *kd = kvw + jl * TLD + cl * 8, *vd = kd + 32 * TLD;
            const uint4 *kb4 = (const uint4 *)kbase + cl, *vb4 = (const uint4 *)vbase + cl;
#pragma unroll
            for (int u = 0; u < CPR; u++) {
                const int rj = __shfl_sync(0xffffffffu, r16, u * RPI + jl);
                if (SKIP && rj == -2) continue;
                const bool ok = rj >= 0;
                const uint32_t o = ok ? (uint32_t)rj : 0u;
                tc_cp16(kd + u * RPI * TLD, (const __half *)(kb4 + o), ok);
                tc_cp16(vd + u * RPI * TLD, (const __half *)(vb4 + o), ok);
            }
        }
    };
    auto tc_issue = [&](int tl, int buf, int want, int skip) {
        if constexpr (TC != 0) {
            const int tj = t0 + tl * 32 + lane;
            const int sl =
                tj < t1 ? table[tj / a.block_size] * a.block_size + tj % a.block_size : -1;
            __half *kd = kvw + buf * (2 * 32 * TLD), *vd = kd + 32 * TLD;
#pragma unroll
            for (int u = 0; u < TC / 8; u++) {
                const int c = u * 32 + lane, j = c / (TC / 8), col = (c % (TC / 8)) * 8;
                const int sj = __shfl_sync(0xffffffffu, sl, j);
                if ((want >= 0 && sj != want) || (skip >= 0 && sj == skip)) continue;
                const bool ok = sj >= 0;
                const int64_t off = ok ? (int64_t)sj * kv_dim + col : 0;
                tc_cp16(kd + j * TLD + col, kbase + off, ok);
                tc_cp16(vd + j * TLD + col, vbase + off, ok);
            }
        }
    };
    /* RoPE angles of position p (no dependency on the previous kernel): cos, sin [hd/2] in wo,
     * which is free until the warps merge */
    float *rcs = wo;
    if (fused)
        for (int j = tid; j < (hd >> 1); j += FD_THREADS)
            sincosf((float)p * a.inv_freq[j], &rcs[2 * j + 1], &rcs[2 * j]);
    if (pre) {
        if (tile < ntile) {
            if constexpr (TC != 0) { /* all but the token's own new row, which comes later */
                if constexpr (NB == 1)
                    tc_issue1(tile, a.slot[i], std::true_type{});
                else
                    tc_issue(tile, 0, -1, a.slot[i]);
                tc_commit();
            } else {
                setup();
                load_k(0);
                if (VEARLY) load_v(0, -1);
            }
        }
        pdl_wait();
        tl_mark(tl, TL_WAIT, true);
    }
    if (trace && threadIdx.x == 0) T1 = gtime();
    if (tr) tr_add(trace, 0, T0); /* entry -> wait released */
    {
        const float qscale = rsqrtf((float)hd) * FD_LOG2E;
        const float *qg = a.q + head0 * hd;
        if (fused) {
            /* rotate_half RoPE as k_rope_store: dims d and d + hd/2 pair. Raw q first (loads
             * independent of each other), then the rotation from shared memory: a loop with
             * the rotation inside paid one L2 round trip per iteration (3.3 us, 8B shape) */
            const int half = hd >> 1;
            float *raw = wo + hd;            /* after the angles; wo holds 4 * G * hd */
            const bool own = s == n_act - 1; /* this piece holds p: store its k and v first */
            const float *kg = a.k_new + ((int64_t)i * HKV + kvh) * hd;
            const float *vg = a.v_new + ((int64_t)i * HKV + kvh) * hd;
            float kx[2] = {0.f, 0.f}, ky[2] = {0.f, 0.f}, vx[2] = {0.f, 0.f};
            /* the new k and v before q's loop: its shared stores may alias them for the compiler,
             * which kept these loads behind them (two L2 round trips in a row on the piece that
             * the cluster's merge waits for) */
            if (own)
                for (int u = 0; u < 2; u++) {
                    const int d = tid + u * FD_THREADS;
                    if (d < hd) {
                        kx[u] = kg[d], ky[u] = kg[d < half ? d + half : d - half], vx[u] = vg[d];
                    }
                }
            /* q in rounds of 8 predicated loads a thread, all issued before their stores (as a
             * plain loop, the compiler peeled the trip count's remainder into iterations of one
             * load and its store each: 1B's q, 2 a thread, took two round trips; unrolled, it
             * moved stores between the loads) */
            for (int e0 = tid; e0 < G * hd; e0 += 8 * FD_THREADS) {
                float qr[8];
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    const int e = e0 + u * FD_THREADS;
                    qr[u] = e < G * hd ? qg[e] : 0.f;
                }
                __threadfence_block(); /* no store moves above a load (ptxas moved them) */
#pragma unroll
                for (int u = 0; u < 8; u++)
                    if (e0 + u * FD_THREADS < G * hd) raw[e0 + u * FD_THREADS] = qr[u];
            }
            __syncthreads(); /* raw q and the angles */
            for (int e = tid; e < G * hd; e += FD_THREADS) {
                const int d = e % hd, lo = d < half, j = lo ? d : d - half;
                const float cs = rcs[2 * j], sn = rcs[2 * j + 1];
                const float x = raw[e], y = raw[lo ? e + half : e - half];
                qs[e] = (lo ? x * cs - y * sn : x * cs + y * sn) * qscale;
            }
            if (own) {
                const int64_t off = (int64_t)a.slot[i] * kv_dim + (int64_t)kvh * hd;
                __half *kd = (__half *)a.kc + off, *vd = (__half *)a.vc + off;
                for (int u = 0; u < 2; u++) {
                    const int d = tid + u * FD_THREADS;
                    if (d < hd) {
                        const int lo = d < half, j = lo ? d : d - half;
                        const float cs = rcs[2 * j], sn = rcs[2 * j + 1];
                        const __half kh =
                            __float2half_rn(lo ? kx[u] * cs - ky[u] * sn : kx[u] * cs + ky[u] * sn);
                        const __half vh = __float2half_rn(vx[u]);
                        kd[d] = kh, vd[d] = vh;
                        if constexpr (TC != 0) nrow[d] = kh, nrow[hd + d] = vh;
                    }
                }
            }
        } else {
            for (int e = tid; e < G * hd; e += FD_THREADS) qs[e] = qg[e] * qscale;
        }
    }
    if (tr) tr_add(trace, 1, T1); /* -> q (and the new k/v) done */
    __syncthreads(); /* also orders the k/v stores above before this block's cache loads, which
                      * therefore go through L2 (ld.cg), never the non-coherent path */

    if constexpr (TC != 0) {
        /* Tensor-core tiles: the G heads are the rows of the MMA's A operand (rows >= G and
         * 8..15 zero), 32 positions of K/V per tile as B (ldmatrix from the warp's copy of the
         * tile; V transposed), the tile after next copied while this one is computed. */
        constexpr int KS = TC / 16, ND = TC / 8;
        const int g = lane >> 2, tq = lane & 3;
        uint32_t qf[KS][2]; /* A fragments of row g: columns 16kk + 2tq (+8) */
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            const int d = kk * 16 + 2 * tq;
            float2 lo = make_float2(0.f, 0.f), hi = lo;
            if (g < G)
                lo = *(const float2 *)(qs + g * TC + d),
                hi = *(const float2 *)(qs + g * TC + d + 8);
            qf[kk][0] = tc_pack(lo.x, lo.y), qf[kk][1] = tc_pack(hi.x, hi.y);
        }
        float o[ND][4];
#pragma unroll
        for (int jd = 0; jd < ND; jd++) o[jd][0] = o[jd][1] = o[jd][2] = o[jd][3] = 0.f;
        float mr = -INFINITY, lr = 0.f;
        if (tile < ntile) {
            if (!pre && NB == 1) {
                tc_issue1(tile, -1, std::false_type{});
            } else if (!pre) {
                tc_issue(tile, 0, -1, -1);
            } else if (t1 == p + 1 && tile == (p - t0) >> 5) {
                /* the new row (skipped by the copy before the wait) from nrow: reading it back
                 * from the cache cost an L2 round trip on the last piece's path. A later round's
                 * tile copies it from the cache, after the store, in the loop's prefetch. */
                const int jr = (p - t0) & 31;
                for (int c = lane; c < 2 * (hd >> 3); c += 32) {
                    const int kv = c >= (hd >> 3), col = (c - kv * (hd >> 3)) * 8;
                    *(uint4 *)(kvw + (kv * 32 + jr) * TLD + col) =
                        *(const uint4 *)(nrow + kv * hd + col);
                }
            }
            tc_commit();
        }
        for (int buf = 0; tile < ntile; tile += FD_WARPS, buf ^= NB - 1) {
            if (NB == 2 && tile + FD_WARPS < ntile) {
                tc_issue(tile + FD_WARPS, buf ^ 1, -1, -1);
                tc_commit();
                tc_wait<1>();
            } else {
                tc_wait<0>();
            }
            __syncwarp();
            const __half *Kb = kvw + buf * (2 * 32 * TLD), *Vb = Kb + 32 * TLD;
            tc_attn_tile<KS, ND, true>(o, mr, lr, qf, Kb, Vb, TLD, lane, t0 + tile * 32, t1);
            __syncwarp(); /* the buffer is refilled two tiles on (NB 1: now) */
            if (NB == 1 && tile + FD_WARPS < ntile) {
                tc_issue1(tile + FD_WARPS, -1, std::false_type{});
                tc_commit();
            }
        }
        if (tr) tr_add(trace, 2, T1); /* -> tiles done */
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        if (g < G) {
            if (tq == 0) wml[(warp * G + g) * 2] = mr, wml[(warp * G + g) * 2 + 1] = lr;
            float *dst = wo + (warp * G + g) * TC + 2 * tq;
#pragma unroll
            for (int jd = 0; jd < ND; jd++)
                *(float2 *)(dst + jd * 8) = make_float2(o[jd][0], o[jd][1]);
        }
    } else {
        float m[GP], l[GP], o[GP][8];
#pragma unroll
        for (int g = 0; g < GP; g++) {
            m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++) o[g][e] = 0.f;
        }
        float *pw = ps + warp * 32 * GP;
        const int newslot = pre ? a.slot[i] : -1;
        for (; tile < ntile; tile += FD_WARPS) {
            if (pre && tile == warp) { /* loaded before the wait: re-read the token's new k/v */
                if (slot == newslot) load_k(0);
                if (VEARLY) load_v(0, newslot);
            } else {
                setup();
                load_k(0);
                if (VEARLY) load_v(0, -1);
            }

            /* q.k for the lane's position, two partial sums per head */
            float sa[GP], sb[GP];
#pragma unroll
            for (int g = 0; g < GP; g++) sa[g] = 0.f, sb[g] = 0.f;
            for (int c0 = 0;;) {
#pragma unroll
                for (int u = 0; u < KCH; u++) {
                    if (c0 + u < nch) {
                        float kf[8];
                        h8_to_f(kb[u], kf);
                        const int d = 8 * (c0 + u);
#pragma unroll
                        for (int g = 0; g < GP; g++) {
                            if (g < G) {
                                const float4 q0 = *(const float4 *)(qs + g * hd + d);
                                const float4 q1 = *(const float4 *)(qs + g * hd + d + 4);
                                sa[g] = fmaf(q0.x, kf[0], sa[g]);
                                sb[g] = fmaf(q0.y, kf[1], sb[g]);
                                sa[g] = fmaf(q0.z, kf[2], sa[g]);
                                sb[g] = fmaf(q0.w, kf[3], sb[g]);
                                sa[g] = fmaf(q1.x, kf[4], sa[g]);
                                sb[g] = fmaf(q1.y, kf[5], sb[g]);
                                sa[g] = fmaf(q1.z, kf[6], sa[g]);
                                sb[g] = fmaf(q1.w, kf[7], sb[g]);
                            }
                        }
                    }
                }
                c0 += KCH;
                if (c0 >= nch) break;
                load_k(c0); /* head_dim > 128 only */
            }

            /* online softmax (per head: the tile max over the warp, then rescale) */
            float pv[GP];
#pragma unroll
            for (int g = 0; g < GP; g++) {
                const float x = valid ? sa[g] + sb[g] : -INFINITY;
                float mx = x;
#pragma unroll
                for (int off = 16; off > 0; off >>= 1)
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
                const float mn = fmaxf(m[g], mx); /* finite: lane 0 is always valid */
                const float corr = exp2f(m[g] - mn);
                pv[g] = exp2f(x - mn);
                l[g] = fmaf(l[g], corr, pv[g]);
#pragma unroll
                for (int e = 0; e < 8; e++) o[g][e] *= corr;
                m[g] = mn;
            }
            if constexpr (GP >= 4) {
#pragma unroll
                for (int g = 0; g < GP; g += 4)
                    *(float4 *)(pw + lane * GP + g) =
                        make_float4(pv[g], pv[g + 1], pv[g + 2], pv[g + 3]);
            } else {
#pragma unroll
                for (int g = 0; g < GP; g++) pw[lane * GP + g] = pv[g];
            }
            __syncwarp();

            if (!VEARLY) load_v(0, -1);
            /* p.v: rows (u0 + u) * RPW + vr of the tile */
            auto pv_round = [&](int u0) {
#pragma unroll
                for (int u = 0; u < VCH; u++) {
                    const int j = (u0 + u) * RPW + vr;
                    float vf[8];
                    h8_to_f(vb[u], vf);
                    float pj[GP];
                    if constexpr (GP >= 4) {
#pragma unroll
                        for (int g = 0; g < GP; g += 4) {
                            const float4 q4 = *(const float4 *)(pw + j * GP + g);
                            pj[g] = q4.x, pj[g + 1] = q4.y, pj[g + 2] = q4.z, pj[g + 3] = q4.w;
                        }
                    } else {
#pragma unroll
                        for (int g = 0; g < GP; g++) pj[g] = pw[j * GP + g];
                    }
#pragma unroll
                    for (int g = 0; g < GP; g++)
#pragma unroll
                        for (int e = 0; e < 8; e++) o[g][e] = fmaf(pj[g], vf[e], o[g][e]);
                }
            };
            pv_round(0);
#pragma unroll
            for (int u0 = VCH; u0 < VR; u0 += VCH) { /* head_dim > 128 only */
                load_v(u0, -1);
                pv_round(u0);
            }
            __syncwarp(); /* the next tile rewrites pw */
        }

        if (tr) tr_add(trace, 2, T1); /* -> tiles done */

            /* the warp's (m, l, o): sum l over lanes (positions) and o over the RPW row groups */
#pragma unroll
        for (int g = 0; g < GP; g++) {
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) l[g] += __shfl_xor_sync(0xffffffffu, l[g], off);
#pragma unroll
            for (int off = LPR; off < 32; off <<= 1)
#pragma unroll
                for (int e = 0; e < 8; e++) o[g][e] += __shfl_xor_sync(0xffffffffu, o[g][e], off);
        }
#pragma unroll
        for (int g = 0; g < GP; g++) {
            if (g < G) {
                if (lane == 0) wml[(warp * G + g) * 2] = m[g], wml[(warp * G + g) * 2 + 1] = l[g];
                if (vr == 0 && vlane) {
                    float *dst = wo + (warp * G + g) * hd + vc8;
                    *(float4 *)dst = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
                    *(float4 *)(dst + 4) = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
                }
            }
        }
    }
    __syncthreads();

    /* merge the warps (a warp without tiles has m = -inf, l = 0, o = 0: weight 0); HD: the
     * head size as a constant where the variant has one (no runtime division per element) */
    const int HD = TC != 0 ? TC : hd;
    const int64_t cbase = ((int64_t)i * HKV + kvh) * ns * G; /* partial (split 0, head 0) */
    const int64_t pb = cbase + (int64_t)s * G;
    /* CL: block 0's receive buffers (distributed shared memory), written once block 0 has
     * started (the split barrier's wait). a.slice: element e of the partial goes to block e / SL
     * instead (slot s of its [n_act][SL]) and (m, l) to every block, so each block receives one
     * partial's worth and merges its own SL elements of the output */
    float *dst_o = rcv, *dst_ml = rml;
    const bool slice = CL && (SV != 0 || a.slice) && n_act > 1;
    const int SL = (((G * HD + n_act - 1) / n_act) + 7) & ~7;
    if constexpr (CL) {
        cluster_split<false>();
        if (n_act > 1 && !slice) /* the slice stores map their receiver per element */
            dst_o = cluster_smem(rcv, 0) + s * G * HD, dst_ml = cluster_smem(rml, 0) + s * G * 2;
    }
    for (int e = tid; e < G * HD; e += FD_THREADS) {
        const int g = e / HD, d = e - g * HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < FD_WARPS; w++) M = fmaxf(M, wml[(w * G + g) * 2]);
        float acc = 0.f, den = 0.f;
#pragma unroll
        for (int w = 0; w < FD_WARPS; w++) {
            const float f = exp2f(wml[(w * G + g) * 2] - M);
            den = fmaf(wml[(w * G + g) * 2 + 1], f, den);
            acc = fmaf(wo[(w * G + g) * HD + d], f, acc);
        }
        if (n_act == 1)
            put_out(head0 * HD + e, acc / den);
        else if constexpr (CL) { /* pushed: remote stores, no round trip on this block's path */
            if (slice) {
                const int own = e / SL;
                cluster_smem(rcv, own)[s * SL + e - own * SL] = acc;
                if (d < n_act) { /* HD >= 8 >= n_act: one store per (head, block) */
                    float *ml = cluster_smem(rml, d) + (s * G + g) * 2;
                    ml[0] = M, ml[1] = den;
                }
            } else {
                dst_o[e] = acc;
                if (d == 0) dst_ml[2 * g] = M, dst_ml[2 * g + 1] = den;
            }
        } else {
            a.part_o[(pb + g) * HD + d] = acc;
            if (d == 0) a.part_ml[2 * (pb + g)] = M, a.part_ml[2 * (pb + g) + 1] = den;
        }
    }
    /* every K/V load of this block is done: the prefetches no longer delay them */
    if (a.pf.n && threadIdx.x < 32) attn_prefetch(a);
    if (tr) tr_add(trace, 3, T1), atomicAdd(trace + 6, 1ull); /* -> partial/output written */
    if constexpr (CL) {
        /* the pieces are the blocks of one cluster: past the barrier (release/acquire) block 0
         * holds every piece's partial and merges them from its own shared memory in rank order
         * (deterministic), no global partials, fence or counter, and no block reads another's
         * shared memory, so none waits for another before it exits. a.slice: every block holds
         * its SL elements of every piece's partial and merges those */
        cluster_sync();
        if (n_act > 1 && (slice || s == 0)) {
            const int lo = slice ? s * SL : 0, hi = slice ? min(lo + SL, G * HD) : G * HD;
            const int stride = slice ? SL : G * HD; /* between two pieces' parts in rcv */
            for (int e = lo + tid; e < hi; e += FD_THREADS) {
                const int g = e / HD;
                float M = -INFINITY;
#pragma unroll
                for (int r = 0; r < FD_MAX_CLUSTER; r++)
                    if (r < n_act) M = fmaxf(M, rml[(r * G + g) * 2]);
                float acc = 0.f, den = 0.f;
#pragma unroll
                for (int r = 0; r < FD_MAX_CLUSTER; r++)
                    if (r < n_act) {
                        const float f = exp2f(rml[(r * G + g) * 2] - M);
                        den = fmaf(rml[(r * G + g) * 2 + 1], f, den);
                        acc = fmaf(rcv[r * stride + e - lo], f, acc);
                    }
                put_out(head0 * HD + e, acc / den);
            }
            if (tid == 0 && s == 0 && trace && kvh == 0 && i == 0)
                tr_add(trace, 4, T1), atomicAdd(trace + 5, 1ull);
        }
        tl_mark(tl, TL_DONE, true);
        return;
    }
    if (n_act == 1) {
        tl_mark(tl, TL_DONE, true);
        return;
    }

    /* the last block of this (token, kv head) merges the n_act partials */
    int *cnt = a.count + (int64_t)i * HKV + kvh;
    __threadfence();
    __syncthreads();
    if (tid == 0) is_last = atomicAdd(cnt, 1) == n_act - 1;
    __syncthreads();
    if (!is_last) {
        tl_mark(tl, TL_DONE, true);
        return;
    }
    __threadfence();
    float *cw = wo; /* [G][n_act]: exp2(m_s - M) / den; wo is free after the barrier above */
    for (int g = warp; g < G; g += FD_WARPS) {
        float M = -INFINITY;
        for (int x = lane; x < n_act; x += 32)
            M = fmaxf(M, __ldcg(a.part_ml + 2 * (cbase + (int64_t)x * G + g)));
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
        float den = 0.f;
        for (int x = lane; x < n_act; x += 32) {
            const float *ml = a.part_ml + 2 * (cbase + (int64_t)x * G + g);
            den = fmaf(__ldcg(ml + 1), exp2f(__ldcg(ml) - M), den);
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) den += __shfl_xor_sync(0xffffffffu, den, off);
        const float inv = 1.f / __shfl_sync(0xffffffffu, den, 0);
        for (int x = lane; x < n_act; x += 32)
            cw[g * n_act + x] =
                exp2f(__ldcg(a.part_ml + 2 * (cbase + (int64_t)x * G + g)) - M) * inv;
    }
    __syncthreads();
    for (int e = tid; e < G * hd; e += FD_THREADS) {
        const int g = e / hd, d = e - g * hd;
        const float *po = a.part_o + (cbase + g) * hd + d;
        float acc = 0.f;
#pragma unroll 8
        for (int x = 0; x < n_act; x++)
            acc = fmaf(cw[g * n_act + x], __ldcg(po + (int64_t)x * G * hd), acc);
        put_out((head0 + g) * hd + d, acc);
    }
    if (tid == 0) *cnt = 0; /* ready for the next launch (graph replay, next layer) */
    if (tid == 0 && trace && kvh == 0 && i == 0) /* the merging block: its wait -> merged */
        tr_add(trace, 4, T1), atomicAdd(trace + 5, 1ull);
    tl_mark(tl, TL_DONE, true);
}

typedef void (*fd_kernel)(cu_attn_args);

/* The TC kernel of a cluster (CL), variant SV and tile buffers nb (1 or 2). */
template <bool CL, int SV> static fd_kernel fd_tc(int tc, int nb) {
    if (tc == 64)
        return nb == 1 ? k_attn_decode<1, 8, CL, 64, SV, 1> : k_attn_decode<1, 8, CL, 64, SV>;
    return nb == 1 ? k_attn_decode<1, 8, CL, 128, SV, 1> : k_attn_decode<1, 8, CL, 128, SV>;
}

template <bool CL> static fd_kernel fd_pick(int gp, int lpr, int tc, int nb) {
    if (tc) return fd_tc<CL, 0>(tc, nb);
#define FD_LPR(gp)                                                                                 \
    (lpr == 8    ? k_attn_decode<gp, 8, CL, 0, 0>                                                  \
     : lpr == 16 ? k_attn_decode<gp, 16, CL, 0, 0>                                                 \
                 : k_attn_decode<gp, 32, CL, 0, 0>)
    return gp == 1 ? FD_LPR(1) : gp == 2 ? FD_LPR(2) : gp == 4 ? FD_LPR(4) : FD_LPR(8);
#undef FD_LPR
}

/* The tensor-core tiles (env BRISK_CUDA_ATTN_TC=0: the FMA tiles, for A/B). */
int cu_attn_tc = 1;
int cu_attn_nb = 0; /* cuda_switches.h */
/* A launch with tensor-core tiles and the fused RoPE runs a slim kernel: the same code less the
 * unfused and block-0 merge paths and the measuring aids. A cluster launch with the slice merge
 * (the default) takes it, with the aids where one is on; one without a cluster (steps of tokens x
 * kv heads >= 2 blocks an SM, 8B from 33 tokens on an H100; contexts past 8,192) takes it where no
 * aid is on (env BRISK_CUDA_ATTN_SLIM=0: the general kernel, A/B). As for the GEMVs
 * (cuda_gemv_tma.cu, launch_p), code a kernel never runs still costs time. */
int cu_attn_slim = 1;

int cu_attn_decode_ok(int n_head, int n_head_kv, int head_dim) {
    return n_head_kv > 0 && n_head % n_head_kv == 0 && n_head / n_head_kv <= 8 && head_dim >= 8 &&
           head_dim % 8 == 0 && head_dim <= 256;
}

int cu_attn_decode_splits(int n_sm, int n_head_kv, int n_tokens, int max_ctx) {
    /* ~2 blocks per SM for the (token, kv head) pairs; no piece shorter than 32 positions */
    const int per = n_head_kv * n_tokens;
    int ns = (2 * n_sm + per - 1) / per;
    const int cap = (max_ctx + 31) / 32;
    if (ns > cap) ns = cap;
    if (ns > FD_MAX_SPLIT) ns = FD_MAX_SPLIT;
    return ns < 1 ? 1 : ns;
}

/* The cluster merge (measured on an H100, 8B shape at context ~600: the counter merge's fence,
 * atomic and partial reads took ~7 us of the kernel's ~17 after its wait) for contexts up to
 * 8192: at most 8 pieces, so a warp walks up to 8 tiles; longer contexts keep the wide split. */
int cu_attn_cluster_splits(int n_splits, int max_ctx) {
    if (n_splits < 2 || max_ctx > 8192) return 0;
    const int cap = cu_attn_cl_max < FD_MAX_CLUSTER ? cu_attn_cl_max : FD_MAX_CLUSTER;
    return n_splits < cap ? n_splits : cap;
}

/* The cluster's pieces merge the output in slices, one per block (env BRISK_CUDA_ATTN_SLICE=0:
 * all in block 0, for A/B). */
int cu_attn_slice = 1;
/* A one-token decode's output also as half, which the o projection after it stages (env
 * BRISK_CUDA_ATTN_OUTQ=0: the floats, for A/B) */
int cu_attn_outq = 1;

static cudaError_t fd_launch(cudaStream_t st, const cu_attn_args *a) {
    const int G = a->n_head / a->n_head_kv, hd = a->head_dim;
    if (!cu_attn_decode_ok(a->n_head, a->n_head_kv, hd) || a->n_split < 1 ||
        a->n_split > FD_MAX_SPLIT || (a->n_split > 1 && (!a->part_o || !a->part_ml)))
        return cudaErrorInvalidValue;
    const int tc = cu_attn_tc && (hd == 64 || hd == 128) ? hd : 0;
    const int gp = tc ? 1 : G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : 8;
    const int lpr = hd <= 64 ? 8 : hd <= 128 ? 16 : 32;
    size_t wo = (size_t)FD_WARPS * G * hd;
    if ((size_t)G * a->n_split > wo) wo = (size_t)G * a->n_split;
    wo = (wo + 3) & ~(size_t)3;
    /* cluster: block 0's receive buffers for the pieces' partials (allocated in every block) */
    const size_t rcv = a->cluster ? (size_t)a->n_split * G * (hd + 2) : 0;
    const size_t fixed = ((size_t)G * hd + FD_WARPS * 32 * gp + FD_WARPS * G * 2 + wo + rcv) * 4;
    /* TC tile buffers a warp: one where the double buffers leave one block an SM and the grid is
     * more than one wave of those (8B shape at batch 64: 512 blocks of ~147 KB ran as 4 waves,
     * each paying its prologue alone; single-buffered, ~81 KB, two share an SM: +4% a step,
     * round 31). Env BRISK_CUDA_ATTN_NB=1 / 2 forces one (A/B). Caches past 32 GB (a->wide):
     * two, whose copies take 64-bit offsets. */
    int nb = 2;
    if (tc && !a->wide) {
        const size_t half_sm = FD_SM_SMEM / 2 - 1024; /* two blocks, each with its reserved KB */
        const long blocks = (long)a->n_split * a->n_head_kv * a->n_tokens;
        nb = cu_attn_nb ? cu_attn_nb
             : fixed + (size_t)tc_kv_halves(hd, 2) * 2 > half_sm &&
                     fixed + (size_t)tc_kv_halves(hd, 1) * 2 <= half_sm && blocks > sm_count()
                 ? 1
                 : 2;
    }
    const size_t smem = fixed + (tc ? (size_t)tc_kv_halves(hd, nb) * 2 : 0);
    if (smem > 200 * 1024) return cudaErrorInvalidValue; /* within the opt-in maximum */
    fd_kernel k = a->cluster ? fd_pick<true>(gp, lpr, tc, nb) : fd_pick<false>(gp, lpr, tc, nb);
    if (cu_attn_slim && tc && a->k_new && !a->empty) {
        const bool aids = a->trace || a->tl;
        if (a->cluster && cu_attn_slice)
            k = aids ? fd_tc<true, 2>(tc, nb) : fd_tc<true, 1>(tc, nb);
        else if (!a->cluster && !aids) /* batches: one piece, or the counter merge */
            k = fd_tc<false, 1>(tc, nb);
    }
    if (smem > 48 * 1024) {
        const cudaError_t e = cu_smem_optin((const void *)k, smem);
        if (e != cudaSuccess) return e;
    }
    cu_attn_args b = *a;
    b.slice = a->cluster && cu_attn_slice;
    if (!a->cluster)
        return cu_launch(k, dim3(a->n_split, a->n_head_kv, a->n_tokens), FD_THREADS, smem, st, b);
    if (a->n_split > FD_MAX_CLUSTER) return cudaErrorInvalidValue;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(a->n_split, a->n_head_kv, a->n_tokens), cfg.blockDim = FD_THREADS;
    cfg.dynamicSmemBytes = smem, cfg.stream = st;
    cudaLaunchAttribute at[2];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = (unsigned)a->n_split, at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at, cfg.numAttrs = cu_pdl ? 2 : 1;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, k, b);
    return e != cudaSuccess ? e : cudaGetLastError();
}

/* ---------------------------------------------------------------------------------------------
 * Split-K pair (the round-2 kernel; head sizes the decode kernel does not take, and the A/B
 * baseline under BRISK_CUDA_ATTN=split). Pass 1: block (kv head, token, split) scores `split`
 * positions for the G query heads that share the kv head (K and V read once for the group): thread
 * t owns one position and reads its key row with 16-byte loads while q comes from shared memory
 * (broadcast); a warp per head does the softmax of the split; thread d accumulates output dim d.
 * Unnormalised partial output, max and sum go to part_*; pass 2 merges the splits of each (token,
 * head).
 * ------------------------------------------------------------------------------------------- */

#define ATT_MAX_G     8
#define ATT_MAX_SPLIT 256
#define ATT_THREADS   128

__global__ void __launch_bounds__(ATT_THREADS)
    k_attn_split(const __grid_constant__ cu_attn_args a) {
    pdl_launch();
    pdl_wait();
    extern __shared__ float sm[];
    const int kvh = blockIdx.x, i = blockIdx.y, sp = blockIdx.z;
    const int G = a.n_head / a.n_head_kv, hd = a.head_dim, S = a.split;
    float *qs = sm;          /* [G][hd] */
    float *sc = sm + G * hd; /* [G][S] */
    float *red = sc + G * S; /* [G][2]: max, sum */
    const int p = a.pos[i];
    const int first = a.window > 0 && p - a.window + 1 > 0 ? p - a.window + 1 : 0;
    const int t0 = max(sp * S, first), t1 = min(sp * S + S, p + 1); /* [t0, t1) */
    const int64_t part = ((int64_t)i * a.n_head + kvh * G) * a.n_split + sp;
    if (t0 >= t1) {
        if (threadIdx.x < G) {
            float *ml = a.part_ml + 2 * (part + (int64_t)threadIdx.x * a.n_split);
            ml[0] = -INFINITY, ml[1] = 0.f;
        }
        return;
    }
    const float scale = rsqrtf((float)hd);
    for (int e = threadIdx.x; e < G * hd; e += blockDim.x)
        qs[e] = a.q[((int64_t)i * a.n_head + kvh * G) * hd + e] * scale;
    __syncthreads();
    const int32_t *table = a.tables + (int64_t)a.seq[i] * a.max_blocks;
    const int kv_dim = a.n_head_kv * hd;
    const __half *kc = (const __half *)a.kc, *vc = (const __half *)a.vc;
    __shared__ int slots[ATT_MAX_SPLIT]; /* the PV loop reads these instead of the table */
    for (int t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
        const int64_t slot = (int64_t)table[t / a.block_size] * a.block_size + t % a.block_size;
        slots[t - t0] = (int)slot;
        const __half *kr = kc + slot * kv_dim + kvh * hd;
        float acc[ATT_MAX_G];
#pragma unroll
        for (int g = 0; g < ATT_MAX_G; g++) acc[g] = 0.f;
        int d = 0;
        if ((hd & 7) == 0) {
#pragma unroll 4
            for (; d < hd; d += 8) {
                const uint4 raw = *(const uint4 *)(kr + d);
                const __half2 *h2 = (const __half2 *)&raw;
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float2 f = __half22float2(h2[e]);
                    kf[2 * e] = f.x, kf[2 * e + 1] = f.y;
                }
#pragma unroll
                for (int g = 0; g < ATT_MAX_G; g++)
                    if (g < G)
#pragma unroll
                        for (int e = 0; e < 8; e++)
                            acc[g] = fmaf(qs[g * hd + d + e], kf[e], acc[g]);
            }
        }
        for (; d < hd; d++) {
            const float kf = __half2float(kr[d]);
#pragma unroll
            for (int g = 0; g < ATT_MAX_G; g++)
                if (g < G) acc[g] = fmaf(qs[g * hd + d], kf, acc[g]);
        }
#pragma unroll
        for (int g = 0; g < ATT_MAX_G; g++)
            if (g < G) sc[g * S + (t - t0)] = acc[g];
    }
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n = t1 - t0;
    for (int g = warp; g < G; g += ATT_THREADS / 32) {
        float mx = -INFINITY;
        for (int t = lane; t < n; t += 32) mx = fmaxf(mx, sc[g * S + t]);
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float sum = 0.f;
        for (int t = lane; t < n; t += 32) {
            const float e = expf(sc[g * S + t] - mx);
            sc[g * S + t] = e;
            sum += e;
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) red[2 * g] = mx, red[2 * g + 1] = sum;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc[ATT_MAX_G];
#pragma unroll
        for (int g = 0; g < ATT_MAX_G; g++) acc[g] = 0.f;
#pragma unroll 8
        for (int t = t0; t < t1; t++) {
            const int64_t slot = slots[t - t0];
            const float vf = __half2float(vc[slot * kv_dim + kvh * hd + d]);
#pragma unroll
            for (int g = 0; g < ATT_MAX_G; g++)
                if (g < G) acc[g] = fmaf(sc[g * S + t - t0], vf, acc[g]);
        }
#pragma unroll
        for (int g = 0; g < ATT_MAX_G; g++)
            if (g < G) a.part_o[(part + (int64_t)g * a.n_split) * hd + d] = acc[g];
    }
    if (threadIdx.x < G) {
        float *ml = a.part_ml + 2 * (part + (int64_t)threadIdx.x * a.n_split);
        ml[0] = red[2 * threadIdx.x], ml[1] = red[2 * threadIdx.x + 1];
    }
}

/* Pass 2: block (head, token); merges the splits with the usual rescaling. */
__global__ void k_attn_combine(const __grid_constant__ cu_attn_args a) {
    pdl_launch();
    pdl_wait();
    const int h = blockIdx.x, i = blockIdx.y, hd = a.head_dim;
    const int64_t base = ((int64_t)i * a.n_head + h) * a.n_split;
    const int p = a.pos[i];
    const int last = min(a.n_split - 1, p / a.split); /* later splits hold nothing */
    float M = -INFINITY;
    for (int s = 0; s <= last; s++) M = fmaxf(M, a.part_ml[2 * (base + s)]);
    float den = 0.f;
    for (int s = 0; s <= last; s++) {
        const float l = a.part_ml[2 * (base + s) + 1];
        if (l > 0.f) den += l * expf(a.part_ml[2 * (base + s)] - M);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.f;
        for (int s = 0; s <= last; s++) {
            const float l = a.part_ml[2 * (base + s) + 1];
            if (l > 0.f) o += a.part_o[(base + s) * hd + d] * expf(a.part_ml[2 * (base + s)] - M);
        }
        a.out[((int64_t)i * a.n_head + h) * hd + d] = o / den;
    }
}

cudaError_t cu_attention(cudaStream_t st, const cu_attn_args *a) {
    if (a->count) return fd_launch(st, a);
    const int G = a->n_head / a->n_head_kv;
    if (G > ATT_MAX_G || a->split > ATT_MAX_SPLIT || a->n_head % a->n_head_kv)
        return cudaErrorInvalidValue;
    const size_t smem = (size_t)(G * a->head_dim + G * a->split + 2 * G) * sizeof(float);
    if (smem > 48 * 1024) return cudaErrorInvalidValue;
    cudaError_t e = cu_launch(k_attn_split, dim3(a->n_head_kv, a->n_tokens, a->n_split),
                              ATT_THREADS, smem, st, *a);
    if (e != cudaSuccess) return e;
    return cu_launch(k_attn_combine, dim3(a->n_head, a->n_tokens), 128, 0, st, *a);
}
