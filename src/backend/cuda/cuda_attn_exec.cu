/* cuda_attn_exec.cu: how the CUDA backend runs an attention record: the decode (flash-decoding,
 * or the split-K pair) kernels over a range of the step's tokens with their partials and arrival
 * counters sized at the first attention, and prefill records cut into runs of one sequence, the
 * long runs to the tensor-core flash kernel (cuda_fattn.cu) in tiles of 64 tokens and the short
 * ones to the decode kernels. The kernels themselves are cuda_attn.cu and cuda_fattn.cu. */
#include "cuda_state.h"
#include "cuda_switches.h"

#include <string.h>

/* Attention partials: sized once (at the first attention). The flash-decoding kernel (every
 * shape it takes, decode and prefill alike) needs n_tokens * n_split(n_tokens) <= n_tokens +
 * 2*SMs/n_head_kv + 1 partial rows per head, so its scratch covers max_tokens in one launch. The
 * split-K pair (other head sizes, or BRISK_CUDA_ATTN=split) sizes for the larger of a decode step
 * over max_ctx and a prefill chunk; longer prefills run in token chunks. */
#define ATT_SPLIT_DECODE  32 /* 64 gave 8-80 blocks at short contexts (132 SMs) */
#define ATT_SPLIT_PREFILL 256
#define ATT_PART_BUDGET   ((size_t)32 << 20) /* floats */

/* The split kernels over tokens [b0, b0 + nb) of the step. */
static void attn_split(cu_state *s, const op_rec *r, int b0, int nb) {
    const int H = r->i0, HKV = r->i1, hd = r->i2;
    cu_attn_args a;
    memset(&a, 0, sizeof a);
    a.kc = r->p1, a.vc = r->p2;
    a.max_blocks = s->max_blocks, a.block_size = r->dim, a.window = r->epi;
    a.n_head = H, a.n_head_kv = HKV, a.head_dim = hd;
    a.tables = s->d_tables;
    const bool fd = !cu_attn_split && cu_attn_decode_ok(H, HKV, hd);
    const size_t per_split = (size_t)H * (hd + 2);
    if (!s->part) {
        if (fd) {
            int dev = 0;
            if (!cu_chk(s, cudaGetDevice(&dev), "cuda device") ||
                !cu_chk(s, cudaDeviceGetAttribute(&s->n_sm, cudaDevAttrMultiProcessorCount, dev),
                        "cuda SM count"))
                return;
            s->part_cap = per_split * ((size_t)s->max_tokens + (2 * s->n_sm + HKV - 1) / HKV + 1);
            s->count_cap = (size_t)s->max_tokens * HKV;
            s->count = (int *)cu_dalloc(s, s->count_cap * sizeof(int), "cuda attention counters");
            if (!s->count ||
                !cu_chk(s, cudaMemsetAsync(s->count, 0, s->count_cap * sizeof(int), s->st),
                        "cuda attention counters"))
                return;
        } else {
            size_t dec = per_split * ((s->max_ctx + ATT_SPLIT_DECODE - 1) / ATT_SPLIT_DECODE);
            size_t pre = per_split * ((s->max_ctx + ATT_SPLIT_PREFILL - 1) / ATT_SPLIT_PREFILL) *
                         (size_t)s->max_tokens;
            if (pre > ATT_PART_BUDGET) pre = ATT_PART_BUDGET;
            s->part_cap = dec > pre ? dec : pre;
        }
        s->part = (float *)cu_dalloc(s, s->part_cap * sizeof(float), "cuda attention scratch");
        if (!s->part) return;
    }
    if (fd && !s->count) {
        cu_fail(s, BRISK_ERR_BACKEND, "cuda attention: scratch was sized for the split-K kernel");
        return;
    }
    if (fd) {
        /* fixed by the token count, the card and max_ctx only: the graph replays it at any
         * context length */
        a.n_split = cu_attn_decode_splits(s->n_sm, HKV, nb, s->max_ctx);
        a.count = s->count;
        const int cl =
            cu_attn_cluster && cu_sm90 ? cu_attn_cluster_splits(a.n_split, s->max_ctx) : 0;
        if (cl) a.n_split = cl, a.cluster = 1;
    } else if (r->n == 1) {
        a.split = ATT_SPLIT_DECODE;
        a.n_split = (s->max_ctx + a.split - 1) / a.split; /* fixed: the graph replays it */
    } else {
        a.split = ATT_SPLIT_PREFILL;
        a.n_split = (s->max_pos + a.split) / a.split;
    }
    int chunk = (int)(s->part_cap / (per_split * a.n_split));
    if (fd && (size_t)chunk * HKV > s->count_cap) chunk = (int)(s->count_cap / HKV);
    if (chunk > 65535) chunk = 65535; /* tokens go in a grid dimension */
    if (chunk < 1) {
        cu_fail(s, BRISK_ERR_BACKEND, "cuda attention: scratch too small");
        return;
    }
    for (int t0 = b0; t0 < b0 + nb; t0 += chunk) {
        a.n_tokens = b0 + nb - t0 < chunk ? b0 + nb - t0 : chunk;
        a.q = (const float *)r->p0 + (size_t)t0 * H * hd;
        a.out = (float *)r->p3 + (size_t)t0 * H * hd;
        a.pos = (const int32_t *)r->p4 + t0;
        a.seq = (const int32_t *)r->p5 + t0;
        a.part_o = s->part;
        a.part_ml = s->part + (size_t)a.n_tokens * H * a.n_split * hd;
        a.empty = cu_skip & SKIP_ATTNBODY ? 1 : 0;
        a.min_tiles = cu_attn_min_tiles;
        a.wide = s->max_alloc >= (size_t)1 << 35;
        a.trace = s->trace;
        if (fd) cu_attn_pf_ranges(s, r, &a);
        a.tl = cu_tl_take("attn");
        if (r->fused) {
            a.k_new = (const float *)r->p7 + (size_t)t0 * HKV * hd;
            a.v_new = (const float *)r->p8 + (size_t)t0 * HKV * hd;
            a.inv_freq = (const float *)r->p9, a.slot = (const int32_t *)r->p10 + t0;
        }
        /* one token: its output as half too, which the o projection right after stages instead
         * of the floats (the same bits: it rounds x to half) */
        const bool outq = fd && r->n == 1 && cu_attn_outq && s->actq && H * hd <= s->max_cols;
        a.outq = outq ? s->actq : NULL;
        if (!cu_chk(s, cu_attention(s->st, &a), "cuda attention")) return;
        if (outq) s->actq_of = a.out;
    }
}

/* Prefill attention: runs of >= FATTN_MIN_RUN consecutive tokens of one sequence go to the
 * tensor-core flash kernel in tiles of 64 tokens; shorter runs (the decode tokens of a mixed
 * batch) to the split kernels. The runs come from the host copy of seq[] that begin_step staged
 * (prefill records execute while the step's arrays are current). */
#define FATTN_MIN_TOKENS 8 /* steps up to this many tokens stay on the split kernels */
#define FATTN_MIN_RUN    8

static void flush_fattn(cu_state *s, cu_fattn_args *fa) {
    if (fa->n_tiles > 0) cu_chk(s, cu_fattn(s->st, fa), "cuda flash attention");
    fa->n_tiles = 0;
}

void cu_exec_attn(cu_state *s, const op_rec *r) {
    const int T = r->n, hd = r->i2;
    if (r->fused || T <= FATTN_MIN_TOKENS || !s->fattn || !cu_fattn_supported(hd) ||
        ((uintptr_t)r->p0 & 15) || ((uintptr_t)r->p3 & 7)) {
        attn_split(s, r, 0, T);
        return;
    }
    const int32_t *hseq = s->h_cur + 2 * (size_t)s->max_tokens;
    cu_fattn_args fa;
    memset(&fa, 0, sizeof fa);
    fa.q = (const float *)r->p0, fa.kc = r->p1, fa.vc = r->p2, fa.out = (float *)r->p3;
    fa.pos = (const int32_t *)r->p4, fa.seq = (const int32_t *)r->p5, fa.tables = s->d_tables;
    fa.max_blocks = s->max_blocks, fa.block_size = r->dim, fa.window = r->epi;
    fa.n_head = r->i0, fa.n_head_kv = r->i1, fa.head_dim = hd;
    int short0 = -1; /* start of the pending range of short runs */
    for (int i = 0; i < T && s->err == BRISK_OK;) {
        int j = i + 1;
        while (j < T && hseq[j] == hseq[i]) j++;
        if (j - i < FATTN_MIN_RUN) {
            if (short0 < 0) short0 = i;
        } else {
            if (short0 >= 0) attn_split(s, r, short0, i - short0);
            short0 = -1;
            for (int k = i; k < j; k += 64) {
                fa.tile_start[fa.n_tiles] = k;
                fa.tile_count[fa.n_tiles] = j - k < 64 ? j - k : 64;
                if (++fa.n_tiles == CU_FATTN_MAX_TILES) flush_fattn(s, &fa);
            }
        }
        i = j;
    }
    if (short0 >= 0 && s->err == BRISK_OK) attn_split(s, r, short0, T - short0);
    if (s->err == BRISK_OK) flush_fattn(s, &fa);
}
