/* cuda_gemv_tma.cu: a persistent, warp-specialised tensor-core GEMV for one-token steps over
 * 4-bit weights in the mma layout (fast == 2): the default for those (bench/cuda-notes.md,
 * round 5); steps of 2-64 tokens go to the batched v8 (cuda_gemv_batch.cu), built on the same
 * pipeline.
 *
 * Why: v4 (cuda_gemv.cu) keeps its next chunks in registers and loads them in dependent rounds:
 * ncu on an H100 (8B decode) showed ~26-34% of issue slots used, 0.9-2.0 TB/s, against the
 * 3.0-3.1 TB/s a plain streaming read of the same sizes reaches in a chain of kernels
 * (bench/readbw.cu), and a bulk-copy (cp.async.bulk) read of the same slices alone 2.7-3.1 TB/s.
 * A first bulk-copy GEMV (v6: one short-lived block per tile slice, x read from global per
 * chunk, slices merged across a cluster) lost to v4 (266 vs 334 tok/s): per-block set-up,
 * cluster barriers and x loads after every block's weights made the SMs idle a third of the time.
 *
 * Here one block per SM lives for the whole launch. A producer warp streams the block's work
 * items (tile group x slice of K: 32 chunks of 512 bytes per tile, plus their (scale, bias)
 * pairs, contiguous in the layout) with bulk copies into a ring of stages, each with a `full`
 * mbarrier (transaction bytes) and an `empty` one (every consumer lane arrives: ring_release); it
 * starts before griddepcontrol.wait, so the ring fills while the previous kernel ends. The consumer
 * warps (CW: 16, or 8 for SwiGLU) first stage x as half in shared memory with its sum per chunk
 * (once per launch), then per stage take 32 / CW chunks each: the v4 math (LOP3 codes -> half, 4
 * MMAs per chunk and tile, scale/bias per chunk in f32), accumulating in registers across the
 * slices of a tile group, so K needs no cross-block merge; after its last slice the consumers
 * reduce over warps in shared memory (fixed order: deterministic) and write the epilogue (store +
 * bias, residual add, or SwiGLU of the gate and up tiles). Tile groups go to blocks round-robin. */
#include "cuda_bulk.cuh"
#include "cuda_mma.cuh"
#include "cuda_switches.h"

#define P_CPS   32          /* chunks per stage and tile */
#define P_MAXST 8           /* stages at most */
#define P_RING  (128 << 10) /* bytes of the ring (160 KB before round 21: see cu_v7_dyn) */
#define P_MAXK  (16 << 10)  /* x staged as half: K <= 16384 */
#define P_BAR   1           /* named barrier of the consumer warps */
#define P_XU    8           /* float4 of x per consumer thread in flight (staging) */

struct p_args {
    mma_mat_d m[3];
    int nmat;           /* matrices enumerated (1 for SwiGLU: m[1] is `up`) */
    int K, nch, gshift; /* nch = K / 64 */
    int groups;         /* tile groups over the enumerated matrices */
    int nsl, stages;    /* slices per tile group, ring stages */
    int stage_bytes, gmax;
    const float *x;
    const __half *xq; /* x as half (the same values rounded), or NULL: read instead of x */
    __half *yq;       /* SwiGLU: its output as half too, or NULL */
    const float *nw;  /* the RMSNorm of x (weight nw, eps) folded into the staging; NULL: none */
    float eps;
    int pre;  /* stages issued before the consumers have staged x (< stages: a measuring aid) */
    int l2;   /* measuring aid (BRISK_CUDA_SKIP=hbm): every item copies tile 0's slice */
    int pace; /* > 0: until the consumers' loads of x are issued, at most `pace` stages in flight */
    int nomath; /* measuring aids: 1 (BRISK_CUDA_SKIP=math) the consumers only take and free stages,
                 * 2 (=copy) the producer frees stages without copying the weights */
    cu_pf pf;   /* a later kernel's weights into L2, after this block's copies */
    unsigned long long *tl; /* measuring aid (BRISK_CUDA_TL): this launch's timeline slot */
};

template <int CW> __device__ __forceinline__ void consumers_sync() {
    named_sync(P_BAR, CW * 32);
}

__host__ __device__ __forceinline__ int p_align(int v) {
    return (v + 127) & ~127;
}

/* Shared memory: ring [stages][stage_bytes] | x as half [K] | the chunk sums of x [K / 64]
 * floats | red [CW][NTL][2][32] floats | full[P_MAXST], empty[P_MAXST], xready, xgo barriers | the
 * tile group of each stage [P_MAXST] ints (drawn groups). A stage: codes [NTL][P_CPS][512] |
 * pairs [NTL][gmax][16]. */
__host__ __device__ __forceinline__ int p_smem(int stages, int stage_bytes, int K, int ntl,
                                               int cw) {
    return stages * stage_bytes + p_align(K * 2) + p_align(K / 16) +
           p_align(cw * ntl * 2 * 32 * 4) + (2 * P_MAXST + 2) * 8 + P_MAXST * 4;
}

/* acc (rows g and g + 8 of the tile, the one token) += a chunk's products: the codes q decoded
 * (LOP3 to half 1024 + q; rows g+8: 1024 + 16q), 4 k-steps of MMA in two chains, then the group's
 * (scale, bias) r0 (row g) and r1 (row g + 8) in f32: y += s*C + (b - 1024 s)*X, X the chunk's sum
 * of x (rows g+8: s/16, b - 64 s). x fills all 8 MMA columns alike, so column 2t (C[0], C[2]) is
 * the token's. */
template <int ST>
__device__ __forceinline__ void p_chunk(float (&acc)[2], const uint4 &q, typename sb_raw<ST>::T r0,
                                        typename sb_raw<ST>::T r1, const uint32_t (&bx0)[4],
                                        const uint32_t (&bx1)[4], float X) {
    uint32_t A[4][4];
    mma_chunk_decode(A, q);
    float C0[4] = {0.f, 0.f, 0.f, 0.f}, C1[4] = {0.f, 0.f, 0.f, 0.f};
    mma16816(C0, A[0][0], A[0][1], A[0][2], A[0][3], bx0[0], bx1[0]);
    mma16816(C1, A[2][0], A[2][1], A[2][2], A[2][3], bx0[2], bx1[2]);
    mma16816(C0, A[1][0], A[1][1], A[1][2], A[1][3], bx0[1], bx1[1]);
    mma16816(C1, A[3][0], A[3][1], A[3][2], A[3][3], bx0[3], bx1[3]);
    const float2 p0 = sb_dec<ST>(r0), p1 = sb_dec<ST>(r1);
    acc[0] = fmaf(p0.x, C0[0] + C1[0], fmaf(fmaf(-1024.f, p0.x, p0.y), X, acc[0]));
    acc[1] = fmaf(0.0625f * p1.x, C0[2] + C1[2], fmaf(fmaf(-64.f, p1.x, p1.y), X, acc[1]));
}

/* V 0: the general kernel. Otherwise a slim one (launch_p): x is whole staging rounds that fit the
 * registers and the slices are whole stages (LEAN), x comes as halves (the ADD epilogue: the o and
 * down projections) or as floats (the others, with the norm where nw), only SwiGLU draws its tile
 * groups, and the measuring aids are compiled in only with V & 4. */
template <int ST, int NM, int EPI, int CW, int V>
__global__ void __launch_bounds__((CW + 1) * 32, 1)
    k_gemv_persist(const __grid_constant__ p_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int NTL = NM == 2 ? 2 : 1;
    constexpr int PS = sizeof(SBT);
    constexpr bool LEAN = V != 0, AIDS = V == 0 || (V & 4) != 0;
    constexpr int XM = V == 0 ? 0 : EPI == CU_EPI_ADD ? 1 : 2; /* x: 1 halves, 2 floats, 0 either */
    unsigned long long *const tl = AIDS ? a.tl : nullptr;
    const int nomath_a = AIDS ? a.nomath : 0, l2 = AIDS ? a.l2 : 0, pace = AIDS ? a.pace : 0;
    const bool hx = XM == 1 || (XM == 0 && a.xq != nullptr); /* x as halves */
    const float *const nw = XM == 1 ? nullptr : a.nw; /* (no norm with halves: the launcher) */
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    tl_mark(tl, TL_ENTRY, true);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int d = a.gshift - 6;
    /* tile groups: the block's first is blockIdx.x; then round-robin, or (pf.ctr, more groups than
     * blocks) drawn from a counter by the producer: a block that drains faster takes more (8B
     * gate+up's finish spread 5.5 -> 1.4 us) */
    const bool dyn = (V == 0 || NM == 2) && a.pf.ctr != nullptr && a.groups > (int)gridDim.x;
    uint8_t *ring = sm;
    __half *xh = (__half *)(sm + a.stages * a.stage_bytes);
    float *xs = (float *)((uint8_t *)xh + p_align(a.K * 2));
    float *red = (float *)((uint8_t *)xs + p_align(a.K / 16));
    uint64_t *full = (uint64_t *)((uint8_t *)red + p_align(CW * NTL * 2 * 32 * 4));
    uint64_t *empty = full + P_MAXST;
    uint64_t *xready = empty + P_MAXST; /* x staged (one arrival) */
    uint64_t *xgo = xready + 1;         /* x's loads issued (one arrival per consumer warp) */
    int *sgid = (int *)(xgo + 1);       /* drawn groups: the group of a stage's first slice */
    if (threadIdx.x == 0) mbar_init(xready, 1), mbar_init(xgo, CW);
    ring_init(full, empty, a.stages, CW);

    /* the items of this block, in order: (tile group ug, slice sl) */
    auto locate = [&](int ug, int &m, int &tile) {
        m = 0, tile = ug;
        while (m < a.nmat - 1 && tile >= a.m[m].tiles) tile -= a.m[m++].tiles;
    };

    if (wid == CW) { /* producer */
        if (lane == 0) {
            const uint64_t pol = policy_evict_first();
            int k = 0, st = 0;
            uint32_t ph = 1; /* the empty barriers' phase to wait for, from the second round */
            bool go = pace <= 0;
            /* the second group's ticket at entry: its round trip overlaps the first group's
             * copies (1B, one slice per group: drawn after them, q, k, v lost 3 us a launch) */
            unsigned long long tk = dyn ? atomicAdd(a.pf.ctr, 1ull) : 0;
            for (int ug = blockIdx.x; ug < a.groups;) {
                int m, tile;
                locate(ug, m, tile);
                for (int sl = 0; sl < a.nsl; sl++, k++) {
                    /* a later group's ticket: its round trip overlaps the wait for a free stage */
                    if (dyn && sl == a.nsl - 1 && ug != (int)blockIdx.x)
                        tk = atomicAdd(a.pf.ctr, 1ull);
                    if (k >= a.stages) mbar_wait(&empty[st], ph);
                    /* paced: x's loads (L2 hits) queue behind the copies in flight, so until they
                     * are issued a stage waits for the one `pace` before it to land */
                    if (!go && k >= pace) {
                        const int kp = k - pace;
                        const uint32_t sp = kp % a.stages, pp = (kp / a.stages) & 1;
                        while (!(go = mbar_test(xgo, 0)) && !mbar_test(&full[sp], pp)) spin_pause();
                    }
                    if (k == a.pre) mbar_wait(xready, 0);
                    const int c0 = sl * P_CPS, nc = min(P_CPS, a.nch - c0);
                    if (sl == 0) sgid[st] = ug; /* released to the consumers with the arrival */
                    if (nomath_a & 2) { /* measuring aid: no copies (the stage's bytes are stale) */
                        mbar_arrive(&full[st]);
                        if (++st == a.stages) st = 0, ph ^= 1;
                        continue;
                    }
                    mbar_expect(&full[st], NTL * tile_slice_bytes<ST>(c0, nc, d));
                    uint8_t *dst = ring + st * a.stage_bytes;
#pragma unroll
                    for (int i = 0; i < NTL; i++)
                        bulk_tile_slice<ST>(
                            dst + i * P_CPS * 512, dst + NTL * P_CPS * 512 + i * a.gmax * 16 * PS,
                            a.m[NM == 2 ? i : m], l2 ? 0 : tile, a.nch, c0, nc, d, &full[st], pol);
                    if (++st == a.stages) st = 0, ph ^= 1;
                }
                /* every run of a launch draws exactly `groups` tickets (each block draws until one
                 * fails: groups - grid succeed, one fails per block), so the counter starts every
                 * run at a multiple of groups */
                ug = dyn ? gridDim.x + (int)(tk % (unsigned)a.groups) : ug + gridDim.x;
            }
            /* the end: a stage with no copies, group `groups` */
            if (dyn) {
                if (k >= a.stages) mbar_wait(&empty[st], ph);
                sgid[st] = a.groups;
                mbar_arrive(&full[st]);
            }
            if (a.pf.n) { /* this block's share of the prefetch ranges */
                if (a.pf.late) mbar_wait(xready, 0);
                pf_issue(a.pf, blockIdx.x, gridDim.x, 0, 1, 64u << 10);
            }
        }
        return;
    }

    /* consumers: x as half, once; with nw the RMSNorm too (its sum of squares over the block's
     * own pass of x, warps added in a fixed order, so every block gets the same scale). Where a
     * thread's share of x fits in P_XU float4 registers (K <= 1024 x CW: 8192 or 16384), the norm's
     * weights are loaded before the wait (they are not written by earlier kernels, and a miss under
     * the weight stream costs microseconds) and x is loaded once, all of a thread's loads in flight
     * together; otherwise two passes, P_XU loads in flight per round. */
    constexpr int NT = CW * 32, RB = NT * 4; /* RB: x's floats in one float4 per thread */
    const int tid = threadIdx.x;
    const bool fit = LEAN || a.K <= RB * P_XU;
    float4 w[P_XU], v[P_XU];
    /* A round from b0 holds the float4s at c = b0 + 4 tid + u RB, u < P_XU. Its u-th are in x for
     * every thread (`whole`), for some (the tail: a bound per element), or for none (a break). The
     * whole and break tests are uniform over the block: every shape we run has K a multiple of RB,
     * so its staging has no bound per element (with one, the staging took ~78 instructions a
     * float4, 8B down, issued after the release by every warp of the SM at once; now ~26) */
    auto whole = [&](int b0, int u) { return b0 + (u + 1) * RB <= a.K; };
    auto some = [&](int b0, int u) { return b0 + u * RB < a.K; };
    auto at = [&](int b0, int u) { return b0 + tid * 4 + u * RB; };
    /* this thread's (LEAN: K is whole rounds) */
    auto in = [&](int b0, int u) { return LEAN || whole(b0, u) || at(b0, u) < a.K; };
    if (nw && fit)
#pragma unroll
        for (int u = 0; u < P_XU; u++) {
            if (!some(0, u)) break;
            if (in(0, u)) w[u] = __ldg((const float4 *)(nw + at(0, u)));
        }
    pdl_wait();
    tl_mark(tl, TL_WAIT, true);
    const uint64_t tw = tl ? gtime() : 0; /* measuring aid: this block's release */
    float rs = 1.f;
    /* a round's float4s of x (and, in two passes, the norm's weights) */
    auto load = [&](int b0) {
#pragma unroll
        for (int u = 0; u < P_XU; u++) {
            if (!some(b0, u)) break;
            const int c = at(b0, u);
            if (in(b0, u)) {
                if (hx) { /* the halves' bits in v[u].x and .y */
                    const uint2 h = __ldg((const uint2 *)(a.xq + c));
                    v[u].x = __uint_as_float(h.x), v[u].y = __uint_as_float(h.y);
                } else {
                    v[u] = __ldg((const float4 *)(a.x + c));
                }
                if (!fit && nw) w[u] = __ldg((const float4 *)(nw + c));
            }
        }
    };
    /* a round's float4s as halves into xh (normalised); a half warp's 16 float4 are one chunk,
     * whose sum of halves goes to xs (all its lanes shuffle: a chunk is all in x or all out) */
    auto put = [&](int b0) {
#pragma unroll
        for (int u = 0; u < P_XU; u++) {
            if (!some(b0, u)) break;
            const int c = at(b0, u);
            const bool inx = in(b0, u);
            uint32_t h0 = 0, h1 = 0; /* x[c, c + 4) as two half2 (0 outside x) */
            if (hx) {                /* already halves (no norm with xq: the launcher) */
                if (inx) h0 = __float_as_uint(v[u].x), h1 = __float_as_uint(v[u].y);
            } else {
                float4 y = inx ? v[u] : make_float4(0.f, 0.f, 0.f, 0.f);
                if (nw && inx)
                    y = make_float4(y.x * rs * w[u].x, y.y * rs * w[u].y, y.z * rs * w[u].z,
                                    y.w * rs * w[u].w);
                const __half2 p0 = __floats2half2_rn(y.x, y.y), p1 = __floats2half2_rn(y.z, y.w);
                h0 = *(const uint32_t *)&p0, h1 = *(const uint32_t *)&p1;
            }
            const float2 f0 = __half22float2(*(const __half2 *)&h0),
                         f1 = __half22float2(*(const __half2 *)&h1);
            float cs = (f0.x + f0.y) + (f1.x + f1.y);
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) cs += __shfl_xor_sync(0xffffffffu, cs, o);
            if (inx) {
                *(uint2 *)(xh + c) = make_uint2(h0, h1);
                if ((lane & 15) == 0) xs[c >> 6] = cs;
            }
        }
    };
    if (fit) {
        load(0);
        if (lane == 0) mbar_arrive(xgo); /* this warp's loads of x are issued (pace) */
        /* measuring aid: staging point k stamped once `dep` is known (a branch on it waits for
         * the loads it names) */
        auto stamp = [&](int k, float dep) {
            if (tl && dep != -0.12345f) tl_span(tl, TL_PART + 2 * k, tw);
        };
        if (tl && tid == 0) {
            float z = v[0].x;
            stamp(0, z);
            if (nw) stamp(1, w[0].x);
#pragma unroll
            for (int u = 0; u < P_XU; u++)
                if (some(0, u)) z += v[u].y + (nw ? w[u].y : 0.f);
            stamp(2, z);
        }
        if (nw) {
            float ss = 0.f;
#pragma unroll
            for (int u = 0; u < P_XU; u++) {
                if (!some(0, u)) break;
                if (in(0, u)) ss = sq4(v[u], ss);
            }
            rs = rsqrtf(block_sum<NT>(ss, tid, red, consumers_sync<CW>) / (float)a.K + a.eps);
            stamp(3, rs);
        }
        put(0);
        stamp(4, 0.f); /* (after thread 0's stores) */
    } else {
        if (lane == 0) mbar_arrive(xgo);
        if (nw) rs = rms_scale<NT>(a.x, a.K, a.eps, tid, red, consumers_sync<CW>);
        for (int b0 = 0; b0 < a.K; b0 += RB * P_XU) load(b0), put(b0);
    }
    consumers_sync<CW>(); /* xh complete, and red read before the epilogue rewrites it */
    if (tid == 0) mbar_arrive(xready);
    tl_mark(tl, TL_STAGED, false);
    tl_span(tl, TL_SOWN, tw);

    const int g = lane >> 2, t = lane & 3;
    /* SwiGLU on 16 warps splits them by tile: warps [0, 8) take the gate tile's chunks, [8, 16)
     * up's (NTW: the tiles a warp takes, CWT: the warps that take a tile, wt: this one's rank) */
    constexpr bool SPLIT = NTL == 2 && CW == 16;
    constexpr int NTW = SPLIT ? 1 : NTL, CWT = SPLIT ? CW / 2 : CW;
    const int ti = SPLIT ? wid / CWT : 0, wt = SPLIT ? wid % CWT : wid;
    float acc[NTW][2];
#pragma unroll
    for (int i = 0; i < NTW; i++) acc[i][0] = acc[i][1] = 0.f;
    /* A warp takes chunks wt + v CWT (v < P_CPS / CWT) of each stage. Their codes, x, chunk sums
     * and (scale, bias) pairs sit at this warp's fixed offsets from the stage's and the slice's
     * bases, so a stage costs no per-chunk address arithmetic: a group spans 1 << d chunks (d <= 3:
     * cu_gemv_tma_takes), which divides CWT and P_CPS, so chunk c's group in its slice is c >> d =
     * (wt >> d) + v (CWT >> d). */
    const int pt = a.gmax * 16 * PS;                        /* pairs: the next tile's */
    const int oq = ti * P_CPS * 512 + wt * 512 + lane * 16; /* codes, bytes */
    const int ox = wt * 64 + 16 * t;                        /* x, halves */
    const int op = NTL * P_CPS * 512 + ti * pt + ((wt >> d) * 16 + 2 * g) * PS; /* pairs, bytes */
    const int pv = (CWT >> d) * 16 * PS; /* pairs: the next v's */
    const bool nomath = nomath_a & 1;
    /* the stage and its full barrier's phase run along: a division per stage cost ~20 of a
     * warp's ~160 instructions a stage (16 warps, 32 chunks) */
    int st = 0;
    uint32_t ph = 0;
    for (int ug = blockIdx.x; ug < a.groups;) {
        int m, tile;
        locate(ug, m, tile);
        /* the epilogue's other operand (the residual, or the bias) loaded now: its round trip
         * overlaps the stages instead of holding every consumer warp at the group's end (x is
         * staged, so the previous kernels are done; no other block writes these rows) */
        float yo = 0.f;
        if (EPI != CU_EPI_SWIGLU && wid < 2 && t == 0) {
            const mma_mat_d &M = a.m[m];
            const int row = tile * 16 + g + 8 * wid;
            if (row < M.rows) yo = EPI == CU_EPI_ADD ? M.y[row] : M.bias ? M.bias[row] : 0.f;
        }
        for (int c0 = 0; c0 < a.nch; c0 += P_CPS) {
            const int nc = a.nch - c0; /* the slice's chunks: P_CPS or more, or its last few */
            const uint8_t *sb = ring + st * a.stage_bytes;
            const __half *xc = xh + c0 * 64 + ox;
            const float *Xc = xs + c0 + wt;
            mbar_wait(&full[st], ph);
            /* this warp's v-th chunk of the stage */
            auto chunk = [&](int v) {
                const uint4 xa = *(const uint4 *)(xc + v * CWT * 64);
                const uint4 xb = *(const uint4 *)(xc + v * CWT * 64 + 8);
                const uint32_t bx0[4] = {xa.x, xa.z, xb.x, xb.z};
                const uint32_t bx1[4] = {xa.y, xa.w, xb.y, xb.w};
                const float X = Xc[v * CWT];
#pragma unroll
                for (int i = 0; i < NTW; i++) {
                    const uint4 q = *(const uint4 *)(sb + oq + (i * P_CPS + v * CWT) * 512);
                    SBT r0, r1;
                    ld_pair2<ST, false>((const SBT *)(sb + op + i * pt + v * pv), r0, r1);
                    p_chunk<ST>(acc[i], q, r0, r1, bx0, bx1, X);
                }
            };
            /* a whole stage without a bound per chunk, so a warp's chunks overlap (with the bound,
             * each chunk's loads waited behind the previous chunk's MMAs and FMAs) */
            if (nomath) {
                /* measuring aid: the stage is taken and freed without its math */
            } else if (LEAN || nc >= P_CPS) {
#pragma unroll
                for (int v = 0; v < P_CPS / CWT; v++) chunk(v);
            } else {
#pragma unroll
                for (int v = 0; v < P_CPS / CWT; v++)
                    if (wt + v * CWT < nc) chunk(v);
            }
            ring_release(&empty[st]); /* this warp is done with the stage */
            if (++st == a.stages) st = 0, ph ^= 1;
        }
        /* the tile group is complete: warps -> rows (fixed order), then the epilogue */
#pragma unroll
        for (int i = 0; i < NTW; i++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                red[((wid * NTW + i) * 2 + j) * 32 + lane] = acc[i][j];
                acc[i][j] = 0.f;
            }
        consumers_sync<CW>();
        if (wid < 2) { /* warp j: rows g + 8j (and `up`'s for SwiGLU), lanes t == 0 */
            const mma_mat_d &M = a.m[m];
            float v[NTL];
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                v[i] = 0.f;
#pragma unroll
                for (int w = 0; w < CWT; w++)
                    v[i] +=
                        red[(((SPLIT ? i * CWT + w : w) * NTW + (SPLIT ? 0 : i)) * 2 + wid) * 32 +
                            lane];
            }
            const int row = tile * 16 + g + 8 * wid;
            if (t == 0 && row < M.rows) {
                float *y = M.y + row;
                if constexpr (EPI == CU_EPI_SWIGLU) {
                    const float r = v[0] / (1.0f + expf(-v[0])) * v[NTL - 1];
                    *y = r;
                    if (a.yq) a.yq[row] = __float2half_rn(r);
                } else if constexpr (EPI == CU_EPI_ADD)
                    *y = yo + v[0];
                else
                    *y = v[0] + yo;
            }
        }
        consumers_sync<CW>(); /* red is rewritten by the next group */
        if (dyn) {            /* the next stage's group (`groups` at the end) */
            mbar_wait(&full[st], ph);
            ug = sgid[st];
        } else {
            ug += gridDim.x;
        }
    }
    tl_mark(tl, TL_DONE, true);
}

/* v7 (this file) for one-token steps: the default (env BRISK_CUDA_GEMV=4: v4, for A/B).
 * Measured on an H100 (round 5): 8B q4 decode 376.6 vs 338.7 tok/s with v4, 1B 1,396.6 vs
 * 1,330.2. */
int cu_gemv_v7 = 1;
int cu_v7_ring = P_RING; /* bytes of stages per block (env BRISK_CUDA_V7_RING, KB) */
/* Consumer warps: 16, or 8 for SwiGLU (env BRISK_CUDA_V7_CW=8 or 16: all alike; SwiGLU on 16
 * splits them by tile, 8 a tile, each with one tile's registers). With 8, a
 * one-tile launch issued too slowly to drain its ring (ncu, 8B down alone: 1.25 TB/s, 0.22
 * instructions per cycle per scheduler; 16: 1.71 TB/s); SwiGLU's two tiles share x, and with 16
 * warps' 96 registers it spills. H100, round 8: 8B 462.5 tok/s vs 437.5 with 8 everywhere, 460.4
 * with 16 everywhere. Measuring aids, off: stages capped at a block's own items so that the next
 * kernel's blocks fit beside it (env BRISK_CUDA_V7_FIT=1), stages issued before x is staged (env
 * BRISK_CUDA_V7_PRE; 0: all). The q, k, v launch alone issues 3 stages before x by default (env
 * BRISK_CUDA_V7_PREQ; its whole share is in the ring at entry, and x's loads queue behind those
 * copies): H100, two calls, 8B +0.8% and +0.5%, 1B +1.3% and +0.2%, round 10. A launch whose
 * blocks' whole shares fit the ring (every 1B launch; 8B's q, k, v and o) issues 2 (env
 * BRISK_CUDA_V7_PREF; 0: all, or the q, k, v launch's 3): the ring is full before the release
 * anyway, and x's loads come back sooner. H100, round 16, against the old rule in one call: 8B
 * +1.7%, 1B +1.8% (2 in every launch, where the share streams all launch long too: 8B -0.4..-2%).
 * x is staged without per-element bounds where K is a multiple of 4 x the consumer threads: H100,
 * round 18, one call, 8B +0.8%, 1B +2.3%. Until the consumers have issued their loads of x, each
 * stage after the first `pace` waits for the one `pace` before it to land (env BRISK_CUDA_V7_PACE;
 * 0: off), so that x's loads queue behind fewer copies.
 */
int cu_v7_cw = 1, cu_v7_fit = 0, cu_v7_pre = 0, cu_v7_preq = 3, cu_v7_pref = 2, cu_v7_pace = 0;
/* A one-token SwiGLU writes its output as half beside the floats, and the down projection after
 * it stages those (env BRISK_CUDA_V7_ACTQ=0: the floats): every block reads all of x from L2
 * after the release (8B down: 57 KB a block, 7.6 MB over 132), and x is rounded to half in the
 * staging anyway, so the bits are the same. */
int cu_v7_actq = 1;

static int p_cw(int ntl) { /* cu_v7_cw 1: the default mix */
    return cu_v7_cw == 16 || (cu_v7_cw == 1 && ntl == 1) ? 16 : 8;
}

/* A launch whose x is whole staging rounds that fit the registers, whose slices are whole stages
 * (every shape we run) and whose x comes as the slim kernel takes it (halves for ADD, floats for
 * the others) and that draws its tile groups only if it is SwiGLU's (the default) runs the slim
 * kernel (V != 0): the same code less the two-pass staging, the per-element bounds, the partial
 * stage, the other form of x, the drawn groups of one-tile launches and, unless one is on, the
 * measuring aids. Env BRISK_CUDA_V7_SLIM=0: the general kernel (A/B). Only for the default consumer
 * warps (16, or 8 for SwiGLU). Code these kernels never run still costs: H100, round 21, one call,
 * 8B +6.1% and 1B +5.8% with the slim kernel (2.3K SASS instructions against 3.8K), +6.8% and +8.3%
 * without its measuring aids (2.1K). */
int cu_v7_slim = 1;

template <int ST, int NM, int EPI, int CW, int V>
static cudaError_t launch_v(cudaStream_t st, const p_args &a, int smem) {
    return launch_persistent(k_gemv_persist<ST, NM, EPI, CW, V>, smem, (CW + 1) * 32, st, a);
}

/* A measuring aid is on: the fields a slim kernel reads only with V & 4. */
static bool p_aids(const p_args &a) {
    return a.tl || a.nomath || a.l2 || a.pace > 0;
}

template <int ST, int NM, int EPI>
static cudaError_t launch_p(cudaStream_t st, const p_args &a, int smem) {
    constexpr int DCW = NM == 2 ? 8 : 16;
    const int cw = p_cw(NM == 2 ? 2 : 1), rb = cw * 32 * 4; /* rb: x's floats in one round */
    const bool xform = (EPI == CU_EPI_ADD) == (a.xq != nullptr);
    if (cu_v7_slim && cw == DCW && xform && (NM == 2 || !a.pf.ctr) && a.K % rb == 0 &&
        a.K <= rb * P_XU && a.nch % P_CPS == 0)
        return p_aids(a) ? launch_v<ST, NM, EPI, DCW, 5>(st, a, smem)
                         : launch_v<ST, NM, EPI, DCW, 1>(st, a, smem);
    if (cw == 16) return launch_v<ST, NM, EPI, 16, 0>(st, a, smem);
    return launch_v<ST, NM, EPI, 8, 0>(st, a, smem);
}

template <int ST>
static cudaError_t launch_p_epi(cudaStream_t st, const p_args &a, int smem, int epi) {
    if (epi == CU_EPI_SWIGLU) return launch_p<ST, 2, CU_EPI_SWIGLU>(st, a, smem);
    if (epi == CU_EPI_ADD) return launch_p<ST, 1, CU_EPI_ADD>(st, a, smem);
    return launch_p<ST, 1, CU_EPI_STORE>(st, a, smem);
}

bool cu_gemv_tma_takes(const cu_weight *w) {
    /* cu_sm90: bulk copies and mbarrier transactions in the loaded code */
    return cu_gemv_v7 && cu_sm90 && w->fast == 2 && w->cols % 64 == 0 && w->gs >= 64 &&
           w->gs <= 512 && w->cols <= P_MAXK;
}

cudaError_t cu_gemv_tma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                        int n, const float *nw, float eps, const cu_pf *pf, const void *xq) {
    const int ntl = epi == CU_EPI_SWIGLU ? 2 : 1;
    const cu_weight *w0 = m[0].w;
    if (n != 1 || !cu_gemv_tma_takes(w0) || ((uintptr_t)x & 15)) return cudaErrorNotSupported;
    p_args a = {};
    a.nmat = ntl == 2 ? 1 : nmat;
    a.K = (int)w0->cols, a.nch = a.K / 64, a.x = x, a.nw = nw, a.eps = eps;
    a.xq = nw || ((uintptr_t)xq & 7) ? NULL : (const __half *)xq; /* halves 8 bytes a thread */
    a.yq = ntl == 2 && !((uintptr_t)m[0].yq & 1) ? (__half *)m[0].yq : NULL;
    if (nw && ((uintptr_t)nw & 15)) return cudaErrorNotSupported;
    while ((1 << a.gshift) < w0->gs) a.gshift++;
    const int d = a.gshift - 6;
    a.nsl = (a.nch + P_CPS - 1) / P_CPS;
    a.gmax = ((P_CPS - 1) >> d) + 2; /* a slice's groups, at most */
    const int ps = w0->stype == BRISK_W_F32 ? 8 : 4;
    a.stage_bytes = p_align(ntl * (P_CPS * 512 + a.gmax * 16 * ps));
    a.stages = cu_v7_ring / a.stage_bytes;
    if (a.stages > P_MAXST) a.stages = P_MAXST;
    const int cw = p_cw(ntl);
    while (a.stages > 2 && p_smem(a.stages, a.stage_bytes, a.K, ntl, cw) > 227 * 1024) a.stages--;
    if (a.stages < 2 || p_smem(a.stages, a.stage_bytes, a.K, ntl, cw) > 227 * 1024)
        return cudaErrorNotSupported;
    for (int i = 0; i < nmat; i++) {
        const cu_weight *w = m[i].w;
        a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias, a.m[i].y = m[i].y;
        a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
        a.m[i].tiles = a.m[i].blocks = (int)((w->rows + 15) / 16);
        if (i < a.nmat) a.groups += a.m[i].tiles;
    }
    const int items = (a.groups + sm_count() - 1) / sm_count() * a.nsl;  /* tile groups x slices */
    if (cu_v7_fit && a.stages > items) a.stages = items < 2 ? 2 : items; /* no more than those */
    const int pre = cu_v7_pre > 0                         ? cu_v7_pre
                    : cu_v7_pref > 0 && items <= a.stages ? cu_v7_pref
                    : nmat == 3                           ? cu_v7_preq
                                                          : 0;
    a.pre = pre > 0 && pre < a.stages ? pre : -1;
    a.l2 = (cu_skip & SKIP_HBM) != 0;
    a.pace = cu_v7_pace;
    a.nomath = ((cu_skip & SKIP_MATH) != 0) | ((cu_skip & SKIP_COPY) != 0) << 1;
    if (pf) a.pf = *pf;
    const int smem = p_smem(a.stages, a.stage_bytes, a.K, ntl, cw);
    a.tl = cu_tl_take(epi == CU_EPI_SWIGLU ? "gate+up" : epi == CU_EPI_ADD ? "gemv+add" : "gemv");
    if (w0->stype == BRISK_W_BF16) return launch_p_epi<BRISK_W_BF16>(st, a, smem, epi);
    if (w0->stype == BRISK_W_F32) return launch_p_epi<BRISK_W_F32>(st, a, smem, epi);
    return launch_p_epi<BRISK_W_F16>(st, a, smem, epi);
}
