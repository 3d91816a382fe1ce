/* cuda_attn_tail.cuh: one token's decode attention as the tail of its q, k, v GEMV launch
 * (cuda_gemv_tma.cu, kernels with V & 8). The launch's first hkv x S blocks take no tile groups:
 * block h S + s copies piece s of kv head h's cached K and V rows of the earlier positions into its
 * shared memory while the other blocks compute q, k and v, waits until those blocks have written
 * all of h's tiles (their arrival counter, cnt[h]), rotates q and the new k (RoPE), stores the new
 * row to the cache, and runs flash attention over its piece of the context on its warps, each
 * taking 32-position tiles (tensor cores, fp16 operands, fp32 softmax in the log2 domain, as
 * cuda_attn.cu's TC tiles), merged over the warps in a fixed order. This removes the decode
 * attention's own launch: its release after the GEMV's last block, its q round trip and its cluster
 * merge. The context must fit the shared memory (p_att.cap positions: the backend uses this launch
 * only for steps that fit, and the separate kernel otherwise). Built from the PTX pieces the CPU
 * emulator has (cp.async, mma.sync, atomics), which checks it (tests/ops/cuda_emu, run.sh gemv).
 *
 * Off by default (env BRISK_CUDA_ATTN_TAIL=1): on an H100 (1B, context 640, round 22) one block a
 * kv head ran 3.6% below the decode kernel at best. One SM per kv head is too little: its rows'
 * copies (160 KB) take ~6 us and, issued early, slow the GEMV blocks' staging of x by 1-2 us; its
 * 20 tiles and the merge take ~3 us on one SM, where the decode kernel spreads them over 40. So a
 * kv head now runs on S blocks (p_att.S, env BRISK_CUDA_ATTN_TAIL_S, default 4), each over a run
 * of the context's tiles, their partials merged through global memory by the last to finish
 * (built after round 22's device time: checked by the emulator, not yet timed). */
#ifndef BRISK_CUDA_ATTN_TAIL_CUH
#define BRISK_CUDA_ATTN_TAIL_CUH

#include "cuda_bulk.cuh"
#include "cuda_mma.cuh"
#include "cuda_tc.cuh"

#include <stdint.h>

/* The attention of a fused q, k, v launch (one token; the caches are this layer's). */
struct p_att {
    __half *kc, *vc;                          /* [slots][hkv * hd] */
    const int32_t *tables, *pos, *seq, *slot; /* the step's arrays (token 0) */
    const float *inv_freq;                    /* RoPE: [hd / 2] */
    float *out;                               /* [n_head * hd] */
    __half *outq;  /* the same as half (the o projection stages it), or NULL */
    unsigned *cnt; /* [hkv]: tile groups of each kv head written, then [hkv] pieces done; 0
                    * between launches */
    float *part;   /* S > 1: the pieces' partials [hkv][S][G] x (o [hd], m, l) */
    int max_blocks, block_size, window;
    int G, hkv, hd;
    int S;   /* blocks (pieces of the context) a kv head: blocks 0 .. hkv S - 1 run the attention */
    int gb;  /* the GEMV's blocks (hkv S .. hkv S + gb - 1) */
    int cap; /* positions a block's shared memory holds */
    cu_pf pf; /* a later kernel's weights into L2, split over the attention blocks */
};

/* Shared memory of an attention block: K and V rows [cap][hd + 8] halves each, the warps' partial
 * outputs [nw][G][hd] (first the earlier positions' cache slots) and (m, l) [nw][G][2], q [G][hd],
 * RoPE's (cos, sin) [hd / 2][2]. */
__host__ __device__ __forceinline__ int att_smem(int cap, int hd, int G, int nw) {
    const int wo = nw * G * hd > cap ? nw * G * hd : cap;
    return cap * 2 * (hd + 8) * 2 + (wo + nw * G * 2 + G * hd + hd) * 4;
}

/* The tile groups of kv head h (q's G heads, k, v): 16-row tiles, hd a multiple of 16. */
__host__ __device__ __forceinline__ unsigned att_tiles(int G, int hd) {
    return (unsigned)((G + 2) * hd / 16);
}

/* Block-wide (NT threads): piece ps (of t.S) of kv head kvh's attention for token 0. qg, kg, vg:
 * its q (G heads), k and v as the GEMV wrote them (un-rotated floats). With S > 1 each piece holds
 * a run of the context's tiles and writes its partial; the last piece to finish merges them (in
 * piece order: deterministic) and sets the counters back to 0. */
template <int HD, int NT>
__device__ __forceinline__ void att_tail(const p_att &t, const float *qg, const float *kg,
                                         const float *vg, uint8_t *sm, int kvh, int ps,
                                         unsigned long long *tl) {
    const uint64_t t0 = tl ? gtime() : 0; /* measuring aid: phases from this block's entry */
    constexpr int LD = HD + 8, NW = NT / 32, KS = HD / 16, ND = HD / 8, HALF = HD / 2;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int G = t.G, cap = t.cap;
    const int p = t.pos[0];
    const int first = t.window > 0 && p - t.window + 1 > 0 ? p - t.window + 1 : 0;
    const int L = p - first + 1; /* L <= cap S: the launcher */
    /* this piece: positions [pt0, pt1) of the context (relative to first), ntile tiles of them */
    const int tp = (((L + 31) >> 5) + t.S - 1) / t.S, pt0 = ps * tp * 32;
    const int pt1 = min(pt0 + tp * 32, L), npos = max(pt1 - pt0, 0), ntile = (npos + 31) >> 5;
    const bool own = pt0 <= L - 1 && L - 1 < pt1;   /* holds the new position */
    const int nold = max(min(pt1, L - 1) - pt0, 0); /* its earlier positions (copied) */
    __half *ks = (__half *)sm, *vs = ks + cap * LD;
    float *wo = (float *)(vs + cap * LD); /* [NW][G][HD]; before the tiles the slots [nold] */
    float *wml = wo + (NW * G * HD > cap ? NW * G * HD : cap); /* [NW][G][2] */
    float *qs = wml + NW * G * 2;                              /* [G][HD], rotated and scaled */
    float *rcs = qs + G * HD;                                  /* [HALF][2]: cos, sin */
    const int64_t kv_dim = (int64_t)t.hkv * HD;
    const __half *kb = t.kc + (int64_t)kvh * HD, *vb = t.vc + (int64_t)kvh * HD;
    const int32_t *table = t.tables + (int64_t)t.seq[0] * t.max_blocks;

    /* The earlier positions' rows (written by earlier steps, so readable before the wait) by
     * cp.async, 16 bytes a copy, all in flight together (128-byte bulk copies, one per row, took
     * ~1.6 us more a layer: 1B, H100, round 22), from their slots (looked up once); the tiles'
     * rows past L zeroed (their scores are masked, but 0 x NaN would not be) */
    int *sls = (int *)wo;
    for (int r = tid; r < nold; r += NT) {
        const int tq = first + pt0 + r;
        sls[r] = table[tq / t.block_size] * t.block_size + tq % t.block_size;
    }
    __syncthreads();
    /* the pages of the earlier positions (all kv heads: contiguous) into L2 first, split over the
     * attention blocks (a few bulk prefetches each), so that the rows' 16-byte copies mostly hit
     * L2: one SM's copies of 160 KB from HBM took ~7 us (1B, ctx 640, H100, round 22) */
    const int64_t page = (int64_t)t.block_size * kv_dim * 2; /* bytes of K (or V) a page */
    if (warp == NW - 1 && page % 16 == 0 && page < (1 << 20))
        for (int bp = (first + pt0) / t.block_size + kvh + t.hkv * (lane >> 1);
             bp * t.block_size < first + pt0 + nold; bp += t.hkv * 16) {
            const int64_t o = (int64_t)table[bp] * page;
            bulk_prefetch_l2((const uint8_t *)((lane & 1) ? t.vc : t.kc) + o, (uint32_t)page);
        }
    for (int r = npos + warp; r < ntile * 32; r += NW)
        for (int c = lane; c < HD / 8; c += 32) {
            *(uint4 *)(ks + r * LD + c * 8) = make_uint4(0u, 0u, 0u, 0u);
            *(uint4 *)(vs + r * LD + c * 8) = make_uint4(0u, 0u, 0u, 0u);
        }
    for (int j = tid; j < HALF; j += NT)
        sincosf((float)p * t.inv_freq[j], &rcs[2 * j + 1], &rcs[2 * j]);
    pdl_wait();
    /* the rows' copies after the release (the GEMV's blocks then still stage x and compute for
     * microseconds): by then the pages' prefetches have mostly landed in L2 */
    constexpr int PER = HD / 8; /* 16-byte pieces a row */
    for (int i = tid; i < 2 * nold * PER; i += NT) {
        const int r = i / (2 * PER), c = i - r * 2 * PER, kv = c >= PER, c8 = (c - kv * PER) * 8;
        const int64_t off = (int64_t)sls[r] * kv_dim + c8;
        tc_cp16((kv ? vs : ks) + r * LD + c8, (kv ? vb : kb) + off, true);
    }
    tc_commit();
    tl_span(tl, TL_PART + 2 * 5, t0);

    /* q, k and v of this kv head are written once every one of its tile groups has arrived; the
     * counter goes back to 0 for the next launch (whose blocks add only after their own wait,
     * that is after this launch has ended) */
    if (tid == 0) {
        const unsigned want = att_tiles(G, HD);
        while (*(volatile unsigned *)(t.cnt + kvh) < want) spin_pause();
        __threadfence();
        if (t.S == 1) t.cnt[kvh] = 0; /* (S > 1: the merging piece, once all have passed here) */
    }
    __syncthreads();
    tl_span(tl, TL_PART + 2 * 6, t0);

    /* rotate_half RoPE (dims d and d + HD/2 pair) as the decode kernel's: q scaled for the log2
     * softmax; the new k and v to the cache slot and to the last row of the tiles */
    const float qscale = rsqrtf((float)HD) * 1.4426950408889634f;
    for (int e = tid; e < G * HD; e += NT) {
        const int d = e % HD, lo = d < HALF, j = lo ? d : d - HALF;
        const float x = __ldcg(qg + e), y = __ldcg(qg + (lo ? e + HALF : e - HALF));
        const float cs = rcs[2 * j], sn = rcs[2 * j + 1];
        qs[e] = (lo ? x * cs - y * sn : x * cs + y * sn) * qscale;
    }
    const int64_t orow = (int64_t)t.slot[0] * kv_dim + (int64_t)kvh * HD;
    for (int d = tid; own && d < HD; d += NT) {
        const int lo = d < HALF, j = lo ? d : d - HALF;
        const float x = __ldcg(kg + d), y = __ldcg(kg + (lo ? d + HALF : d - HALF));
        const float v = __ldcg(vg + d), cs = rcs[2 * j], sn = rcs[2 * j + 1];
        const __half kh = __float2half_rn(lo ? x * cs - y * sn : x * cs + y * sn);
        const __half vh = __float2half_rn(v);
        t.kc[orow + d] = kh, t.vc[orow + d] = vh;
        ks[(L - 1 - pt0) * LD + d] = kh, vs[(L - 1 - pt0) * LD + d] = vh;
    }
    tc_wait<0>();
    __syncthreads();
    tl_span(tl, TL_PART + 2 * 7, t0);

    /* warp w: tiles w, w + NW, ...; A = q (rows g < G; rows 8-15 zero), B = the tile's K (scores)
     * and V (output) rows from shared memory */
    const int g = lane >> 2, tq = lane & 3;
    uint32_t qf[KS][2];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        const int d = kk * 16 + 2 * tq;
        const float *qr = qs + (g < G ? g : 0) * HD + d;
        qf[kk][0] = g < G ? h2_bits(qr[0], qr[1]) : 0u;
        qf[kk][1] = g < G ? h2_bits(qr[8], qr[9]) : 0u;
    }
    float o[ND][4];
#pragma unroll
    for (int jd = 0; jd < ND; jd++) o[jd][0] = o[jd][1] = o[jd][2] = o[jd][3] = 0.f;
    float mr = -INFINITY, lr = 0.f;
    for (int tile = warp; tile < ntile; tile += NW) {
        const int tb = tile * 32;
        float sc[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const __half *kr = ks + (tb + 8 * j + g) * LD + kk * 16 + 2 * tq;
                mma16816(sc[j], qf[kk][0], 0u, qf[kk][1], 0u, *(const uint32_t *)kr,
                         *(const uint32_t *)(kr + 8));
            }
        tc_softmax_tile<ND>(sc, o, mr, lr, tb, tq, npos); /* row g: positions tb + 8j + 2tq + e */
#pragma unroll
        for (int k2 = 0; k2 < 2; k2++) {
            const uint32_t p0 = h2_bits(sc[2 * k2][0], sc[2 * k2][1]);
            const uint32_t p2 = h2_bits(sc[2 * k2 + 1][0], sc[2 * k2 + 1][1]);
#pragma unroll
            for (int jd = 0; jd < ND; jd++) {
                /* B[k][n] = V[tb + 16 k2 + k][8 jd + n]: rows 2tq, 2tq + 1 (+8) of column g */
                const uint16_t *vr =
                    (const uint16_t *)(vs + (tb + 16 * k2 + 2 * tq) * LD + jd * 8 + g);
                const uint32_t b0 = vr[0] | (uint32_t)vr[LD] << 16;
                const uint32_t b1 = vr[8 * LD] | (uint32_t)vr[9 * LD] << 16;
                mma16816(o[jd], p0, 0u, p2, 0u, b0, b1);
            }
        }
    }
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    /* every K/V read is done: the prefetches no longer delay them (as the decode kernel) */
    if (t.pf.n && warp == NW - 1) pf_issue(t.pf, kvh, t.hkv, lane, 32, 16u << 10);
    if (g < G) {
        if (tq == 0) wml[(warp * G + g) * 2] = mr, wml[(warp * G + g) * 2 + 1] = lr;
#pragma unroll
        for (int jd = 0; jd < ND; jd++)
            wo[(warp * G + g) * HD + jd * 8 + 2 * tq] = o[jd][0],
                                                  wo[(warp * G + g) * HD + jd * 8 + 2 * tq + 1] =
                                                      o[jd][1];
    }
    __syncthreads();
    /* n partials (m, l, o) of an output element combined in order (deterministic): num and den
     * with weights 2^(m_i - M), none where every m_i is -inf (warps or pieces without a tile);
     * returns M */
    auto combine = [](int n, auto m_at, auto l_at, auto o_at, float &num, float &den) {
        float M = -INFINITY;
        for (int i = 0; i < n; i++) M = fmaxf(M, m_at(i));
        num = den = 0.f;
        for (int i = 0; i < n; i++) {
            const float f = M == -INFINITY ? 0.f : exp2f(m_at(i) - M);
            den = fmaf(f, l_at(i), den);
            num = fmaf(f, o_at(i), num);
        }
        return M;
    };
    auto put = [&](int e, float num, float den) { /* output element e of this kv head */
                                                  const float r = num / den;
                                                  const int64_t oe = (int64_t)kvh * G * HD + e;
                                                  t.out[oe] = r;
                                                  if (t.outq) t.outq[oe] = __float2half_rn(r);
    };
    /* the warps' partials in warp order; a piece without a tile (S > 1, a short context) holds
     * m = -inf too */
    const int PW = G * (HD + 2); /* a piece's partial: o [G][HD], then (m, l) [G] */
    float *mine = t.S > 1 ? t.part + ((int64_t)kvh * t.S + ps) * PW : nullptr;
    for (int e = tid; e < G * HD; e += NT) {
        const int gg = e / HD;
        float num, den;
        const float M = combine(
            NW, [&](int w) { return wml[(w * G + gg) * 2]; },
            [&](int w) { return wml[(w * G + gg) * 2 + 1]; },
            [&](int w) { return wo[(w * G + gg) * HD + e % HD]; }, num, den);
        if (!mine) {
            put(e, num, den);
        } else {
            mine[e] = num;
            if (e % HD == 0) mine[G * HD + 2 * gg] = M, mine[G * HD + 2 * gg + 1] = den;
        }
    }
    if (mine) { /* the last piece to finish merges the kv head's S partials */
        /* its flag in RoPE's (cos, sin), long read: no static shared memory, which would push
         * the launch past the 227 KB a block may have */
        int *last = (int *)rcs;
        __syncthreads();
        if (tid == 0) {
            __threadfence();
            *last = atomicAdd(t.cnt + t.hkv + kvh, 1u) == (unsigned)t.S - 1;
            if (*last) __threadfence();
        }
        __syncthreads();
        if (*last) {
            const float *pk = t.part + (int64_t)kvh * t.S * PW;
            for (int e = tid; e < G * HD; e += NT) {
                const float *pm = pk + G * HD + 2 * (e / HD); /* piece 0's (m, l) of e's head */
                float num, den;
                combine(
                    t.S, [&](int q) { return __ldcg(pm + q * PW); },
                    [&](int q) { return __ldcg(pm + q * PW + 1); },
                    [&](int q) { return __ldcg(pk + q * PW + e); }, num, den);
                put(e, num, den);
            }
            if (tid == 0) t.cnt[kvh] = 0, t.cnt[t.hkv + kvh] = 0; /* every piece passed the wait */
        }
    }
    tl_span(tl, TL_PART + 2 * 8, t0);
}

#endif
