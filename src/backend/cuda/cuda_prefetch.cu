/* cuda_prefetch.cu: the L2 prefetch planner of one-token steps. From the step's op log it picks
 * the byte ranges of the layer's MLP weights that the q, k, v GEMV, the decode attention and the
 * o projection's GEMV prefetch into L2 while the card's memory would otherwise idle (mlp_pf), and
 * hands each kernel its share (cu_gemv_pf, cu_attn_pf_ranges); the kernels issue them
 * (pf_issue, cuda_bulk.cuh). It also gives a captured step's v7 GEMVs their tile-group counters
 * (cu_group_plan). Host code: it reads the op records and allocates the counters. */
#include "cuda_state.h"
#include "cuda_mma.cuh"
#include "cuda_switches.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The first matmul record after r in the step's log, before the next attention (NULL: none). */
static const op_rec *next_matmul(const cu_state *s, const op_rec *r) {
    for (const op_rec *q = r + 1; q < s->log + s->n_log && q->code != OP_ATTN; q++)
        if (q->code == OP_MATMUL) return q;
    return NULL;
}

/* Bytes of a matmul record's fast == 2 weights (0 if any has another layout). */
static uint64_t rec_bytes(const op_rec *q) {
    uint64_t b = 0;
    for (int j = 0; j < q->nmat; j++) {
        if (q->w[j]->fast != 2) return 0;
        b += cu_w_bytes(q->w[j]);
    }
    return b;
}

/* Bytes [off, off + len) of the weights of the matmuls after the o projection that follows
 * attention record ra, in address order, as prefetch ranges. SwiGLU's gate before its up: its
 * kernel then still reads from HBM all along (gate's first 25 MB and up from HBM, 8B: gate+up
 * 20.0 us; the same bytes as equal parts of both, its first tile groups all from L2: 22.4). */
static void pf_walk(const cu_state *s, const op_rec *ra, uint64_t off, uint64_t len, cu_pf *pf) {
    pf->n = 0;
    const op_rec *q = next_matmul(s, ra);
    for (q = q ? next_matmul(s, q) : NULL; q && len; q = next_matmul(s, q)) {
        for (int j = 0; j < q->nmat && len; j++) {
            const cu_weight *w = q->w[j];
            if (w->fast != 2 || pf->n == 4) return;
            const uint64_t wb = cu_w_bytes(w);
            if (off >= wb) {
                off -= wb;
                continue;
            }
            const uint64_t t = wb - off < len ? wb - off : len;
            pf->p[pf->n] = w->data + off, pf->bytes[pf->n++] = (uint32_t)(t & ~15ull);
            len -= t, off = 0;
        }
    }
}

/* The card's L2 size (50 MB when it cannot be read), read once. */
static uint64_t l2_bytes(void) {
    static uint64_t b = 0;
    if (!b) {
        int dev = 0, v = 0;
        cudaGetDevice(&dev);
        b = cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, dev) == cudaSuccess && v > 0
                ? (uint64_t)v
                : 50ull << 20;
    }
    return b;
}

/* A one-token step leaves the card's memory idle through the q, k, v GEMV's staging, the decode
 * attention and the o projection's staging; in those gaps its kernels prefetch the layer's MLP
 * weights into L2, in consecutive shares: the q, k, v GEMV after its own copies (default 2/5 of the
 * L2, 20 MB on an H100, but at most twice its own weights' bytes: the attention's release waits
 * for the launch's prefetches to land, 1B 2.3 -> 1.1 us with 8 MB instead of 20, round 10; env
 * BRISK_CUDA_V7_PF MB, negative: after its x is staged), the
 * attention after its K/V loads (default the o projection's bytes; env BRISK_CUDA_ATTN_PF MB; its
 * blocks split the share over the whole grid, so the pieces that hold no positions and exit at
 * entry leave theirs unissued: 5/8 of it at context 640, 1/8 up to 128; issuing all of it lost,
 * round 15)
 * and the o GEMV after its own copies (default none; env BRISK_CUDA_V7_OPF MB, negative: that
 * many MB from the start of the down projection instead, A/B). Measured on an
 * H100, bench/cuda-notes.md round 9. who: 0 q/k/v, 1 attention, 2 o; ra: the attention record.
 * Records run eagerly have no log: nothing. */
static bool mlp_pf(const cu_state *s, const op_rec *ra, int who, cu_pf *pf) {
    pf->n = 0, pf->late = 0;
    if (ra < s->log || ra >= s->log + s->n_log || ra->code != OP_ATTN || ra->n != 1) return false;
    const op_rec *o = next_matmul(s, ra);
    ptrdiff_t iq = ra - s->log - 1; /* the q, k, v matmul before the attention, if any */
    while (iq >= 0 && s->log[iq].code != OP_MATMUL && s->log[iq].code != OP_ATTN) iq--;
    if (!o) return false;
    auto mb = [](int v) { return (uint64_t)(v < 0 ? -v : v) << 20; }; /* env MB, either sign */
    uint64_t share[3];
    uint64_t qkv = iq >= 0 && s->log[iq].code == OP_MATMUL ? 2 * rec_bytes(&s->log[iq]) : 0;
    if (qkv > l2_bytes() * 2 / 5) qkv = l2_bytes() * 2 / 5;
    share[0] = cu_v7_pf_auto ? qkv : mb(cu_v7_pf);
    share[1] = cu_attn_pf_auto ? rec_bytes(o) : mb(cu_attn_pf);
    share[2] = mb(cu_v7_opf);
    uint64_t off = 0;
    for (int i = 0; i < who; i++) off += share[i];
    if (who == 2 && cu_v7_opf < 0) { /* the o GEMV's share from the start of down (A/B) */
        const op_rec *gu = next_matmul(s, o);
        off = gu ? rec_bytes(gu) : 0;
    }
    if (!share[who]) return false;
    pf_walk(s, ra, off, share[who], pf);
    pf->late = who == 0 && !cu_v7_pf_auto && cu_v7_pf < 0;
    return pf->n > 0;
}

void cu_attn_pf_ranges(cu_state *s, const op_rec *r, cu_attn_args *a) {
    if (a->n_tokens != 1 || !mlp_pf(s, r, 1, &a->pf)) a->pf.n = 0;
}

/* The prefetch share of one-token matmul record r's GEMV (mlp_pf) when it is a step's q, k, v
 * (an attention record follows) or o projection (one precedes). */
static bool gemv_share(const cu_state *s, const op_rec *r, cu_pf *pf) {
    for (const op_rec *q = r + 1; q < s->log + s->n_log && q->code != OP_MATMUL; q++)
        if (q->code == OP_ATTN) return mlp_pf(s, q, 0, pf);
    for (ptrdiff_t i = r - s->log - 1; i >= 0 && s->log[i].code != OP_MATMUL; i--)
        if (s->log[i].code == OP_ATTN) return mlp_pf(s, &s->log[i], 2, pf);
    return false;
}

bool cu_gemv_pf(const cu_state *s, const op_rec *r, cu_pf *pf) {
    memset(pf, 0, sizeof *pf);
    if (r->n != 1 || r < s->log || r >= s->log + s->n_log) return false;
    const int i = s->ctr ? s->ctr_idx[r - s->log] : -1;
    if (i >= 0 && (cu_v7_dyn == 1 || (cu_v7_dyn == 2 && r->epi == CU_EPI_SWIGLU)))
        pf->ctr = s->ctr + i;
    return gemv_share(s, r, pf) || pf->ctr;
}

/* A record that gets a counter: a one-token matmul that the v7 GEMV runs. */
static bool group_rec(const op_rec *r) {
    return r->code == OP_MATMUL && r->n == 1 && !cu_v8_one && cu_gemv_tma_takes(r->w[0]);
}

void cu_group_plan(cu_state *s) {
    s->ctr = NULL;
    if (!cu_v7_dyn || s->T != 1 || !s->n_log) return;
    if (s->n_log > s->ctr_idx_cap) {
        int *ni = (int *)realloc(s->ctr_idx, (size_t)s->n_log * sizeof *ni);
        if (!ni) return; /* the step runs round-robin */
        s->ctr_idx = ni, s->ctr_idx_cap = s->n_log;
    }
    int n = 0;
    for (int i = 0; i < s->n_log; i++) s->ctr_idx[i] = group_rec(&s->log[i]) ? n++ : -1;
    void *d = NULL;
    if (!n || cudaMalloc(&d, (size_t)n * 8) != cudaSuccess ||
        cudaMemset(d, 0, (size_t)n * 8) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(d);
        return;
    }
    s->ctr = (unsigned long long *)d;
}
