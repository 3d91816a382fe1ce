/* cuda_backend.cu: the CUDA backend instance: weight upload and repack, device memory, per-step
 * index upload, the op log that lets a decode step run as a CUDA graph, and the prefill path
 * (dequantized half tiles + cuBLAS, the dequantize of the next tile on a side stream under the
 * GEMM of this one). The switches are cuda_switches.cu, the card probe cuda_probe.cu; kernels
 * live in cuda_gemv.cu, cuda_gemv_tma.cu, cuda_gemv_batch.cu, cuda_ops.cu, cuda_attn.cu (decode
 * attention), cuda_fattn.cu (prefill attention) and cuda_sample.cu.
 *
 * Every op call becomes a record. Prefill steps run each record at once. A decode step (one
 * token, or up to cu_graph_max_t tokens each in its own sequence) only logs its records; end_step
 * looks the log's hash up among the captured graphs and launches the match, or captures the log
 * into a new graph when this exact sequence already ran once eagerly (so lazily sized buffers
 * exist before capture), or else runs it. The kernels read positions, slots and block tables from
 * device buffers refreshed by begin_step, so one graph serves every decode step of its shape. */
#include "cuda_internal.h"
#include "cuda_switches.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend/backend.h"
#include "util/error.h"
}

#define GEMV_MAX_N cu_gemv_max_n
#define N_GRAPHS   4

/* ---------------------------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------------------------- */

enum op_code {
    OP_EMBED = 1,
    OP_RMSNORM,
    OP_MATMUL,
    OP_ROPE,
    OP_ROPE_STORE,
    OP_KV_STORE,
    OP_ATTN,
    OP_SWIGLU,
    OP_ADD,
    OP_GET_ROWS,
    OP_ARGMAX,
    OP_SAMPLE
};

/* One logged op: every pointer already mapped to device memory. Zeroed before filling, so its
 * bytes hash reproducibly. */
typedef struct op_rec {
    int code;
    int n, dim, epi, nmat, i0, i1, i2;
    float eps;
    size_t count;
    const cu_weight *w[3];
    const float *bias[3];
    float *y[3];
    const void *p0, *p1, *p2, *p3, *p4, *p5, *p6;
    /* OP_ATTN with the preceding OP_ROPE_STORE folded in (fused = 1): its k, v, inv_freq, slot */
    const void *p7, *p8, *p9, *p10;
    int fused;
    int32_t rows[16];
} op_rec;

typedef struct graph_ent {
    uint64_t hash;
    cudaGraphExec_t exec;
} graph_ent;

typedef struct cu_state {
    cudaStream_t st;
    cublasHandle_t blas;
    cu_weight *w;
    int n_w;
    const float *h_small;
    float *d_small;
    size_t n_small;
    int max_tokens, max_ctx;
    int64_t max_cols;
    /* step index arrays: pinned staging and device copy [tokens|pos|seq|slot|tables] */
    int32_t *h_idx, *d_idx;
    size_t idx_cap;
    const int32_t *hp_tokens, *hp_pos, *hp_seq, *hp_slot;
    int32_t *d_tokens, *d_pos, *d_seq, *d_slot, *d_tables;
    int max_blocks, T, max_pos;
    /* scratch */
    float *part; /* attention partials */
    size_t part_cap;
    int *count; /* flash-decoding arrival counters [count_cap], zero between launches */
    size_t count_cap;
    int n_sm;
    void *deq, *xh; /* prefill: dequantized tiles (two halves when overlapping), x in half */
    size_t deq_cap, xh_cap;
    /* prefill overlap: dequantize on st2 into half b of deq while st's GEMM reads the other half;
     * ev_deq[b]: tile in half b ready; ev_gemm[b]: the last GEMM that read half b is done */
    cudaStream_t st2;
    cudaEvent_t ev_deq[2], ev_gemm[2];
    int deq_next; /* the half the next pipelined tile goes to */
    int fattn;    /* prefill attention on the tensor-core kernel (BRISK_CUDA_FATTN=0: off) */
    float *tmp;   /* [max_tokens, max_cols] */
    cu_batch_scratch bsc; /* the batched GEMV's (steps of 2-64 tokens); xq NULL: none */
    float *h_logits;
    size_t h_logits_cap;
    /* greedy tokens: device [part | ids | lp] and pinned [ids | lp] for am_cap rows */
    float *d_am;
    int32_t *h_am;
    int am_cap;
    /* a rope_kv_store held back until the next record shows whether the attention takes it */
    op_rec pending;
    int has_pending;
    /* sampled tokens: device scratch of cu_sample_bytes(samp_cap) whose inputs are refreshed per
     * step, pinned staging for the inputs and outputs */
    void *d_samp;
    cu_sample_in *h_samp_in;
    cu_sample_out *h_samp_out;
    int samp_cap;
    /* op log and graphs */
    int logging;
    op_rec *log;
    int n_log, log_cap;
    uint64_t hash;
    uint64_t seen[N_GRAPHS]; /* sequences run eagerly once, ready to capture */
    int n_seen;
    graph_ent graphs[N_GRAPHS];
    int n_graphs;
    unsigned long long *trace; /* BRISK_CUDA_TRACE: attention stage times (measuring aid) */
    /* first failure of an op (ops return void); end_step reports it */
    brisk_status err;
    char errmsg[200];
} cu_state;

static cu_state *S(brisk_backend *be) {
    return (cu_state *)be->impl;
}

static void fail(cu_state *s, brisk_status st, const char *fmt, ...) {
    if (s->err != BRISK_OK) return;
    s->err = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

static bool chk(cu_state *s, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    fail(s, e == cudaErrorMemoryAllocation ? BRISK_ERR_OOM : BRISK_ERR_BACKEND, "%s: %s", what,
         cudaGetErrorString(e));
    return false;
}

static bool blas_chk(cu_state *s, cublasStatus_t e, const char *what) {
    if (e == CUBLAS_STATUS_SUCCESS) return true;
    fail(s, e == CUBLAS_STATUS_ALLOC_FAILED ? BRISK_ERR_OOM : BRISK_ERR_BACKEND,
         "%s: cuBLAS status %d", what, (int)e);
    return false;
}

static void *dalloc(cu_state *s, size_t bytes, const char *what) {
    void *p = NULL;
    if (!chk(s, cudaMalloc(&p, bytes ? bytes : 16), what)) return NULL;
    return p;
}

/* Host f32 vector (init.small) -> its device copy. */
static const float *dvec(cu_state *s, const float *p) {
    if (!p) return NULL;
    if (p >= s->h_small && p < s->h_small + s->n_small) return s->d_small + (p - s->h_small);
    fail(s, BRISK_ERR_INVALID_ARG, "cuda: a vector argument does not point into init.small");
    return NULL;
}

/* Host index array given to begin_step -> its device copy. */
static const int32_t *didx(cu_state *s, const int32_t *p) {
    if (p == s->hp_tokens) return s->d_tokens;
    if (p == s->hp_pos) return s->d_pos;
    if (p == s->hp_seq) return s->d_seq;
    if (p == s->hp_slot) return s->d_slot;
    fail(s, BRISK_ERR_INVALID_ARG, "cuda: an index array was not given to begin_step");
    return NULL;
}

static const cu_weight *dw(cu_state *s, const brisk_tensor *t) {
    if (t->id < 0 || t->id >= s->n_w) {
        fail(s, BRISK_ERR_INVALID_ARG, "cuda: tensor '%s' was not given at create", t->name);
        return NULL;
    }
    return &s->w[t->id];
}

/* ---------------------------------------------------------------------------------------------
 * Executing records
 * ------------------------------------------------------------------------------------------- */

static bool capturing(cu_state *s) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(s->st, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone;
}

/* cuBLAS path of one matrix: y[n, rows] (=|+=) x[n, K] W^T (+ bias). */
static void blas_matmul(cu_state *s, const cu_weight *w, const float *bias, const float *x, int n,
                        float *y, int epi) {
    const int64_t K = w->cols, R = w->rows;
    float beta = 0.f;
    const float one = 1.f;
    if (epi == CU_EPI_ADD)
        beta = 1.f;
    else if (bias) {
        if (!chk(s, cu_add_bias(s->st, y, bias, n, (int)R), "cuda matmul bias")) return;
        beta = 1.f;
    }
    if (w->type == BRISK_W_F32) {
        blas_chk(s,
                 cublasSgemm(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)R, n, (int)K, &one,
                             (const float *)w->data, (int)K, x, (int)K, &beta, y, (int)R),
                 "cuda matmul (sgemm)");
        return;
    }
    const bool bf = w->type == BRISK_W_BF16;
    if ((size_t)n * K * 2 > s->xh_cap) {
        fail(s, BRISK_ERR_BACKEND, "cuda matmul: half scratch too small");
        return;
    }
    if (!chk(s, cu_f32_to_half(s->st, x, (size_t)n * K, s->xh, bf), "cuda matmul convert")) return;
    const cudaDataType dt = bf ? CUDA_R_16BF : CUDA_R_16F;
    if (w->type != BRISK_W_QAFFINE) {
        blas_chk(s,
                 cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)R, n, (int)K, &one, w->data,
                              dt, (int)K, s->xh, dt, (int)K, &beta, y, CUDA_R_32F, (int)R,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cuda matmul (gemm)");
        return;
    }
    const int64_t tile = (int64_t)(s->deq_cap / ((size_t)K * 2));
    if (tile < 1) {
        fail(s, BRISK_ERR_BACKEND, "cuda matmul: dequant scratch too small");
        return;
    }
    for (int64_t r0 = 0; r0 < R; r0 += tile) {
        const int64_t nr = R - r0 < tile ? R - r0 : tile;
        if (!chk(s, cu_dequant_half(s->st, w, r0, nr, s->deq), "cuda dequant")) return;
        if (!blas_chk(s,
                      cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, n, (int)K, &one,
                                   s->deq, CUDA_R_16F, (int)K, s->xh, CUDA_R_16F, (int)K, &beta,
                                   y + r0, CUDA_R_32F, (int)R, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
                      "cuda matmul (gemm)"))
            return;
    }
    /* the whole scratch was read on st: later side-stream dequants wait for it */
    if (s->st2 && !capturing(s))
        for (int b = 0; b < 2; b++) chk(s, cudaEventRecord(s->ev_gemm[b], s->st), "cuda event");
}

/* One matrix of a pipelined prefill matmul: y[n, w.rows] (=|+=) x W^T (+ bias). */
typedef struct blas_job {
    const cu_weight *w;
    const float *bias;
    float *y;
    int epi;
} blas_job;

typedef struct deq_tile {
    int j;          /* job */
    int64_t r0, nr; /* rows [r0, r0 + nr) of its matrix */
} deq_tile;

#define DQ_SPLIT_ROWS 2048 /* matrices of at least this many rows go in >= 2 tiles */

/* QAFFINE prefill matmuls of one x (qkv, gate+up, or one matrix) with the dequantize of tile i+1
 * (side stream st2, into half b^1 of the scratch) running while cuBLAS multiplies tile i (st,
 * from half b). Tiles of every job form one sequence, so k's dequantize hides under q's GEMM.
 * Ordering: a dequantize into half b waits for ev_gemm[b] (the last GEMM that read it: WAR, also
 * across calls, so the first dequantize of this call may run under the attention or norm before
 * it); each GEMM waits for ev_deq of its half (RAW); st's last GEMM waited for st2's last
 * dequantize, so st is after all side work when this returns (the join). Never used during a
 * graph capture (decode uses the GEMV; capturing() guards anyway). Returns false when the
 * pipeline does not apply; the caller then runs blas_matmul per job. */
static bool blas_pipeline(cu_state *s, const blas_job *jobs, int nj, const float *x, int n) {
    if (!s->st2 || capturing(s)) return false;
    for (int j = 0; j < nj; j++)
        if (jobs[j].w->type != BRISK_W_QAFFINE || jobs[j].w->cols != jobs[0].w->cols) return false;
    const int64_t K = jobs[0].w->cols;
    const size_t half = (s->deq_cap / 2) & ~(size_t)255;
    const int64_t tmax = (int64_t)(half / ((size_t)K * 2)) & ~(int64_t)15;
    if (tmax < 16) return false;
    if ((size_t)n * K * 2 > s->xh_cap) {
        fail(s, BRISK_ERR_BACKEND, "cuda matmul: half scratch too small");
        return true;
    }
    void *buf[2] = {s->deq, (uint8_t *)s->deq + half};
    const float one = 1.f;
    float beta[3];
    int64_t tr[3]; /* rows per tile of each job */
    for (int j = 0; j < nj; j++) {
        const int64_t R = jobs[j].w->rows;
        beta[j] = 0.f;
        if (jobs[j].epi == CU_EPI_ADD)
            beta[j] = 1.f;
        else if (jobs[j].bias) {
            if (!chk(s, cu_add_bias(s->st, jobs[j].y, jobs[j].bias, n, (int)R), "cuda matmul bias"))
                return true;
            beta[j] = 1.f;
        }
        int64_t nt = (R + tmax - 1) / tmax;
        if (nt == 1 && R >= DQ_SPLIT_ROWS) nt = 2;
        int64_t t = ((R + nt - 1) / nt + 15) & ~(int64_t)15;
        tr[j] = t < tmax ? t : tmax;
    }
    if (!chk(s, cu_f32_to_half(s->st, x, (size_t)n * K, s->xh, 0), "cuda matmul convert"))
        return true;
    int cj = 0;
    int64_t cr = 0; /* cursor: the next tile to dequantize */
    auto take = [&](deq_tile *t) -> bool {
        if (cj >= nj) return false;
        const int64_t R = jobs[cj].w->rows;
        t->j = cj, t->r0 = cr, t->nr = R - cr < tr[cj] ? R - cr : tr[cj];
        cr += t->nr;
        if (cr >= R) cj++, cr = 0;
        return true;
    };
    auto dequant = [&](const deq_tile &t, int b) -> bool {
        return chk(s, cudaStreamWaitEvent(s->st2, s->ev_gemm[b], 0), "cuda event wait") &&
               chk(s, cu_dequant_half(s->st2, jobs[t.j].w, t.r0, t.nr, buf[b]), "cuda dequant") &&
               chk(s, cudaEventRecord(s->ev_deq[b], s->st2), "cuda event");
    };
    deq_tile cur, nx;
    int b = s->deq_next & 1;
    if (!take(&cur) || !dequant(cur, b)) return true;
    for (;;) {
        const bool more = take(&nx);
        if (more && !dequant(nx, b ^ 1)) return true;
        const blas_job *J = &jobs[cur.j];
        if (!chk(s, cudaStreamWaitEvent(s->st, s->ev_deq[b], 0), "cuda event wait") ||
            !blas_chk(s,
                      cublasGemmEx(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)cur.nr, n, (int)K, &one,
                                   buf[b], CUDA_R_16F, (int)K, s->xh, CUDA_R_16F, (int)K,
                                   &beta[cur.j], J->y + cur.r0, CUDA_R_32F, (int)J->w->rows,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "cuda matmul (gemm)") ||
            !chk(s, cudaEventRecord(s->ev_gemm[b], s->st), "cuda event"))
            return true;
        if (!more) break;
        cur = nx, b ^= 1;
    }
    s->deq_next = b ^ 1;
    return true;
}

/* Bytes of a fast == 2 weight's codes on the device (whole 16-row tiles; the upload allocates
 * this, the prefetch planner walks it). */
static uint64_t w_bytes(const cu_weight *w) {
    return (uint64_t)((w->rows + 15) / 16 * 16) * (uint64_t)w->row_bytes;
}

static bool gemv_pf(const cu_state *s, const op_rec *r, cu_pf *pf);

static void exec_matmul(cu_state *s, const op_rec *r) {
    const float *x = (const float *)r->p0;
    const int n = r->n;
    cu_gemv_mat m[3];
    for (int i = 0; i < r->nmat; i++) m[i].w = r->w[i], m[i].bias = r->bias[i], m[i].y = r->y[i];
    cu_pf pf;
    if (n >= (cu_v8_one ? 1 : 2) && (n <= GEMV_MAX_N || cu_batch_prefill) && s->bsc.xq) {
        /* every weight once per 64 tokens */
        const cudaError_t e =
            cu_gemv_batch(s->st, m, r->nmat, r->epi, x, n, (const float *)r->p1, r->eps, &s->bsc);
        if (e != cudaErrorNotSupported) {
            chk(s, e, r->p1 ? "cuda rmsnorm+matmul (batch)" : "cuda matmul (batch)");
            return;
        }
    }
    if (r->p1) { /* rmsnorm(x) first: fused into the GEMV when a kernel has it */
        if (n <= GEMV_MAX_N) {
            cudaError_t e = cu_gemv_norm(s->st, m, r->nmat, r->epi, x, n, (const float *)r->p1,
                                         r->eps, gemv_pf(s, r, &pf) ? &pf : NULL);
            if (e != cudaErrorNotSupported) {
                chk(s, e, "cuda rmsnorm+matmul");
                return;
            }
        }
        float *xn = (float *)r->p2;
        if (!chk(s, cu_rmsnorm(s->st, x, (const float *)r->p1, n, (int)r->w[0]->cols, r->eps, xn),
                 "cuda rmsnorm"))
            return;
        x = xn;
    }
    if (n <= GEMV_MAX_N || !s->deq) {
        cudaError_t e = cu_gemv(s->st, m, r->nmat, r->epi, x, n, gemv_pf(s, r, &pf) ? &pf : NULL);
        if (e == cudaErrorInvalidValue && r->epi == CU_EPI_SWIGLU) {
            /* gate and up differ in format: two matmuls then swiglu */
            cu_gemv_mat u = {r->w[1], NULL, s->tmp};
            m[0].y = r->y[0];
            e = cu_gemv(s->st, m, 1, CU_EPI_STORE, x, n);
            if (e == cudaSuccess) e = cu_gemv(s->st, &u, 1, CU_EPI_STORE, x, n);
            if (e == cudaSuccess)
                e = cu_swiglu(s->st, r->y[0], s->tmp, (size_t)n * r->w[0]->rows, r->y[0]);
        }
        chk(s, e, "cuda matmul");
        return;
    }
    blas_job jobs[3];
    const bool swi = r->epi == CU_EPI_SWIGLU;
    for (int i = 0; i < r->nmat; i++) {
        jobs[i].w = r->w[i], jobs[i].bias = swi ? NULL : r->bias[i];
        jobs[i].y = swi && i == 1 ? s->tmp : r->y[i], jobs[i].epi = swi ? CU_EPI_STORE : r->epi;
    }
    if (!blas_pipeline(s, jobs, r->nmat, x, n))
        for (int i = 0; i < r->nmat; i++)
            blas_matmul(s, jobs[i].w, jobs[i].bias, x, n, jobs[i].y, jobs[i].epi);
    if (swi)
        chk(s, cu_swiglu(s->st, r->y[0], s->tmp, (size_t)n * r->w[0]->rows, r->y[0]),
            "cuda swiglu");
}

/* Attention partials: sized once (at the first attention). The flash-decoding kernel (every
 * shape it takes, decode and prefill alike) needs n_tokens * n_split(n_tokens) <= n_tokens +
 * 2*SMs/n_head_kv + 1 partial rows per head, so its scratch covers max_tokens in one launch. The
 * split-K pair (other head sizes, or BRISK_CUDA_ATTN=split) sizes for the larger of a decode step
 * over max_ctx and a prefill chunk; longer prefills run in token chunks. */
#define ATT_SPLIT_DECODE  32 /* 64 gave 8-80 blocks at short contexts (132 SMs) */
#define ATT_SPLIT_PREFILL 256
#define ATT_PART_BUDGET   ((size_t)32 << 20) /* floats */

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
        b += w_bytes(q->w[j]);
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
            const uint64_t wb = w_bytes(w);
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
 * L2, 20 MB on an H100; env BRISK_CUDA_V7_PF MB, negative: after its x is staged), the
 * attention after its K/V loads (default the o projection's bytes; env BRISK_CUDA_ATTN_PF MB)
 * and the o GEMV after its own copies (default none; env BRISK_CUDA_V7_OPF MB). Measured on an
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
    share[0] = cu_v7_pf_auto ? (iq >= 0 && s->log[iq].code == OP_MATMUL ? l2_bytes() * 2 / 5 : 0)
                             : mb(cu_v7_pf);
    share[1] = cu_attn_pf_auto ? rec_bytes(o) : mb(cu_attn_pf);
    share[2] = mb(cu_v7_opf);
    uint64_t off = 0;
    for (int i = 0; i < who; i++) off += share[i];
    if (!share[who]) return false;
    pf_walk(s, ra, off, share[who], pf);
    pf->late = who == 0 && !cu_v7_pf_auto && cu_v7_pf < 0;
    return pf->n > 0;
}

static void attn_pf_ranges(cu_state *s, const op_rec *r, cu_attn_args *a) {
    if (a->n_tokens != 1 || !mlp_pf(s, r, 1, &a->pf)) a->pf.n = 0;
}

/* The prefetch share of matmul record r's GEMV (mlp_pf) when it is a one-token step's q, k, v
 * (an attention record follows) or o projection (one precedes). */
static bool gemv_pf(const cu_state *s, const op_rec *r, cu_pf *pf) {
    pf->n = 0;
    if (r->n != 1 || r < s->log || r >= s->log + s->n_log) return false;
    for (const op_rec *q = r + 1; q < s->log + s->n_log && q->code != OP_MATMUL; q++)
        if (q->code == OP_ATTN) return mlp_pf(s, q, 0, pf);
    for (ptrdiff_t i = r - s->log - 1; i >= 0 && s->log[i].code != OP_MATMUL; i--)
        if (s->log[i].code == OP_ATTN) return mlp_pf(s, &s->log[i], 2, pf);
    return false;
}

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
            if (!chk(s, cudaGetDevice(&dev), "cuda device") ||
                !chk(s, cudaDeviceGetAttribute(&s->n_sm, cudaDevAttrMultiProcessorCount, dev),
                     "cuda SM count"))
                return;
            s->part_cap = per_split * ((size_t)s->max_tokens + (2 * s->n_sm + HKV - 1) / HKV + 1);
            s->count_cap = (size_t)s->max_tokens * HKV;
            s->count = (int *)dalloc(s, s->count_cap * sizeof(int), "cuda attention counters");
            if (!s->count ||
                !chk(s, cudaMemsetAsync(s->count, 0, s->count_cap * sizeof(int), s->st),
                     "cuda attention counters"))
                return;
        } else {
            size_t dec = per_split * ((s->max_ctx + ATT_SPLIT_DECODE - 1) / ATT_SPLIT_DECODE);
            size_t pre = per_split * ((s->max_ctx + ATT_SPLIT_PREFILL - 1) / ATT_SPLIT_PREFILL) *
                         (size_t)s->max_tokens;
            if (pre > ATT_PART_BUDGET) pre = ATT_PART_BUDGET;
            s->part_cap = dec > pre ? dec : pre;
        }
        s->part = (float *)dalloc(s, s->part_cap * sizeof(float), "cuda attention scratch");
        if (!s->part) return;
    }
    if (fd && !s->count) {
        fail(s, BRISK_ERR_BACKEND, "cuda attention: scratch was sized for the split-K kernel");
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
        fail(s, BRISK_ERR_BACKEND, "cuda attention: scratch too small");
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
        a.trace = s->trace;
        if (fd) attn_pf_ranges(s, r, &a);
        a.tl = cu_tl_take("attn");
        if (r->fused) {
            a.k_new = (const float *)r->p7 + (size_t)t0 * HKV * hd;
            a.v_new = (const float *)r->p8 + (size_t)t0 * HKV * hd;
            a.inv_freq = (const float *)r->p9, a.slot = (const int32_t *)r->p10 + t0;
        }
        if (!chk(s, cu_attention(s->st, &a), "cuda attention")) return;
    }
}

/* Prefill attention: runs of >= FATTN_MIN_RUN consecutive tokens of one sequence go to the
 * tensor-core flash kernel in tiles of 64 tokens; shorter runs (the decode tokens of a mixed
 * batch) to the split kernels. The runs come from the host copy of seq[] that begin_step staged
 * (prefill records execute while the step's arrays are current). */
#define FATTN_MIN_TOKENS 8 /* steps up to this many tokens stay on the split kernels */
#define FATTN_MIN_RUN    8

static void flush_fattn(cu_state *s, cu_fattn_args *fa) {
    if (fa->n_tiles > 0) chk(s, cu_fattn(s->st, fa), "cuda flash attention");
    fa->n_tiles = 0;
}

static void exec_attn(cu_state *s, const op_rec *r) {
    const int T = r->n, hd = r->i2;
    if (r->fused || T <= FATTN_MIN_TOKENS || !s->fattn || !cu_fattn_supported(hd) ||
        ((uintptr_t)r->p0 & 15) || ((uintptr_t)r->p3 & 7)) {
        attn_split(s, r, 0, T);
        return;
    }
    const int32_t *hseq = s->h_idx + 2 * (size_t)s->max_tokens;
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

static bool skipped(const op_rec *r) {
    switch (r->code) {
    case OP_RMSNORM:
        return cu_skip & SKIP_NORM;
    case OP_ROPE:
    case OP_ROPE_STORE:
        return cu_skip & SKIP_ROPE;
    case OP_ATTN:
        return cu_skip & SKIP_ATTN;
    case OP_MATMUL:
        if (r->epi == CU_EPI_SWIGLU) return cu_skip & SKIP_SWIGLU;
        if (r->epi == CU_EPI_ADD) return cu_skip & SKIP_ADD;
        return cu_skip & (r->nmat == 3 ? SKIP_QKV : SKIP_HEAD);
    default:
        return false;
    }
}

static void exec_rec(cu_state *s, const op_rec *r) {
    if (s->err != BRISK_OK) return;
    if (cu_skip && skipped(r)) return;
    switch (r->code) {
    case OP_EMBED:
        chk(s, cu_embed(s->st, r->w[0], (const int32_t *)r->p0, r->n, (float *)r->p1),
            "cuda embed");
        break;
    case OP_RMSNORM:
        chk(s,
            cu_rmsnorm(s->st, (const float *)r->p0, (const float *)r->p1, r->n, r->dim, r->eps,
                       (float *)r->p2),
            "cuda rmsnorm");
        break;
    case OP_MATMUL:
        exec_matmul(s, r);
        break;
    case OP_ROPE:
        chk(s,
            cu_rope_store(s->st, (float *)r->p0, r->i0, NULL, 0, NULL, (const int32_t *)r->p1, r->n,
                          r->dim, (const float *)r->p2, NULL, NULL, NULL),
            "cuda rope");
        break;
    case OP_ROPE_STORE:
        chk(s,
            cu_rope_store(s->st, (float *)r->p0, r->i0, (float *)r->p1, r->i1, (const float *)r->p2,
                          (const int32_t *)r->p3, r->n, r->dim, (const float *)r->p4, (void *)r->p5,
                          (void *)r->p6, (const int32_t *)r->bias[0]),
            "cuda rope_kv_store");
        break;
    case OP_KV_STORE:
        chk(s,
            cu_kv_store(s->st, (void *)r->p0, (void *)r->p1, (const float *)r->p2,
                        (const float *)r->p3, (const int32_t *)r->p4, r->n, r->dim),
            "cuda kv_store");
        break;
    case OP_ATTN:
        exec_attn(s, r);
        break;
    case OP_SWIGLU:
        chk(s,
            cu_swiglu(s->st, (const float *)r->p0, (const float *)r->p1, r->count, (float *)r->p2),
            "cuda swiglu");
        break;
    case OP_ADD:
        chk(s, cu_add(s->st, (float *)r->p0, (const float *)r->p1, r->count), "cuda add");
        break;
    case OP_ARGMAX: {
        float *part = (float *)r->p1;
        int32_t *ids = (int32_t *)(part + (size_t)r->i0 * cu_argmax_part_floats);
        chk(s,
            cu_argmax(s->st, (const float *)r->p0, r->n, r->dim, part, ids, (float *)(ids + r->i0)),
            "cuda argmax");
        break;
    }
    case OP_SAMPLE:
        chk(s, cu_sample(s->st, (const float *)r->p0, r->n, r->dim, (void *)r->p1, r->i0),
            "cuda sample");
        break;
    case OP_GET_ROWS:
        chk(s, cu_get_rows(s->st, (const float *)r->p0, r->rows, r->n, r->dim, (float *)r->p1),
            "cuda get_rows");
        break;
    }
}

#define FNV_BASIS 1469598103934665603ULL

/* FNV-1a over 8-byte words (records are hashed on every step: bytes cost 8x the time) */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 1099511628211ULL;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The op log: empty, not logging. */
static void log_reset(cu_state *s) {
    s->logging = 0;
    s->n_log = 0;
    s->hash = FNV_BASIS;
}

/* Runs the logged records now, in order (eagerly, or into a capture). */
static void exec_log(cu_state *s) {
    for (int i = 0; i < s->n_log && s->err == BRISK_OK; i++) exec_rec(s, &s->log[i]);
}

/* Runs the record now, or logs it during a graphed step. */
static void submit_now(cu_state *s, const op_rec *r) {
    if (s->err != BRISK_OK) return;
    if (!s->logging) {
        exec_rec(s, r);
        return;
    }
    if (s->n_log == s->log_cap) { /* grows during the first steps only */
        int cap = s->log_cap ? 2 * s->log_cap : 512;
        op_rec *nl = (op_rec *)realloc(s->log, (size_t)cap * sizeof *nl);
        if (!nl) {
            fail(s, BRISK_ERR_OOM, "cuda: out of memory for the op log");
            return;
        }
        s->log = nl, s->log_cap = cap;
    }
    s->log[s->n_log++] = *r;
    s->hash = fnv(s->hash, r, sizeof *r);
}

static void flush_pending(cu_state *s) {
    if (!s->has_pending) return;
    s->has_pending = 0;
    submit_now(s, &s->pending);
}

/* Is each of the n tokens in a sequence of its own? */
static bool seqs_distinct(const int32_t *seq, int n) {
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            if (seq[i] == seq[j]) return false;
    return true;
}

/* Can attention record `at` do the pending rope_kv_store itself? The same q and caches, the
 * flash-decoding kernel, and every token of the step in its own sequence (no token attends to a
 * key another block of the same launch is writing). */
static bool rope_fusable(cu_state *s, const op_rec *rp, const op_rec *at) {
    if (at->code != OP_ATTN || at->p0 != rp->p0 || at->p1 != rp->p5 || at->p2 != rp->p6 ||
        at->n != rp->n || at->i0 != rp->i0 || at->i1 != rp->i1 || at->i2 != rp->dim ||
        cu_attn_split || !cu_attn_decode_ok(at->i0, at->i1, at->i2) || at->n > 64 || !s->h_idx)
        return false;
    return seqs_distinct(s->h_idx + 2 * (size_t)s->max_tokens, at->n);
}

/* The op entry points' way in: a rope_kv_store waits for the next record, which is the
 * attention that reads it in every forward; fused, it costs no kernel of its own. */
static void submit(cu_state *s, const op_rec *r) {
    if (s->err != BRISK_OK) return;
    if (s->has_pending) {
        if (rope_fusable(s, &s->pending, r)) {
            op_rec f = *r;
            f.fused = 1;
            f.p7 = s->pending.p1, f.p8 = s->pending.p2, f.p9 = s->pending.p4;
            f.p10 = s->pending.bias[0];
            s->has_pending = 0;
            submit_now(s, &f);
            return;
        }
        flush_pending(s);
    }
    if (r->code == OP_ROPE_STORE && cu_rope_fuse) {
        s->pending = *r;
        s->has_pending = 1;
        return;
    }
    submit_now(s, r);
}

/* ---------------------------------------------------------------------------------------------
 * Ops
 * ------------------------------------------------------------------------------------------- */

#define REC(name, c)                                                                               \
    op_rec name;                                                                                   \
    memset(&name, 0, sizeof name);                                                                 \
    name.code = c

static void cu_op_embed(brisk_backend *be, const brisk_tensor *E, const int32_t *ids, int n,
                        float *out) {
    cu_state *s = S(be);
    REC(r, OP_EMBED);
    r.w[0] = dw(s, E), r.p0 = didx(s, ids), r.n = n, r.p1 = out;
    submit(s, &r);
}

static void cu_op_rmsnorm(brisk_backend *be, const float *x, const float *w, int n, int dim,
                          float eps, float *out) {
    cu_state *s = S(be);
    REC(r, OP_RMSNORM);
    r.p0 = x, r.p1 = dvec(s, w), r.n = n, r.dim = dim, r.eps = eps, r.p2 = out;
    submit(s, &r);
}

static void matmul_rec(cu_state *s, int nmat, const brisk_tensor *const *W,
                       const float *const *bias, const float *x, int n, float *const *y, int epi) {
    REC(r, OP_MATMUL);
    r.nmat = nmat, r.epi = epi, r.n = n, r.p0 = x;
    for (int i = 0; i < nmat; i++) {
        r.w[i] = dw(s, W[i]);
        r.bias[i] = bias ? dvec(s, bias[i]) : NULL;
        r.y[i] = y[i];
        if (W[i]->cols != W[0]->cols) fail(s, BRISK_ERR_INVALID_ARG, "cuda matmul: widths differ");
    }
    submit(s, &r);
}

static void cu_op_rmsnorm_matmul(brisk_backend *be, const float *x, const float *norm_w, float eps,
                                 int n, int nmat, const brisk_tensor *const *W,
                                 const float *const *bias, float *const *y, bool swiglu,
                                 float *xn) {
    cu_state *s = S(be);
    REC(r, OP_MATMUL);
    r.nmat = nmat, r.epi = swiglu ? CU_EPI_SWIGLU : CU_EPI_STORE, r.n = n, r.p0 = x;
    r.p1 = dvec(s, norm_w), r.eps = eps, r.p2 = xn;
    for (int i = 0; i < nmat; i++) {
        r.w[i] = dw(s, W[i]);
        r.bias[i] = bias && bias[i] ? dvec(s, bias[i]) : NULL;
        r.y[i] = y[i];
        if (W[i]->cols != W[0]->cols) fail(s, BRISK_ERR_INVALID_ARG, "cuda matmul: widths differ");
    }
    if (swiglu && s->err == BRISK_OK && (nmat != 2 || W[0]->rows != W[1]->rows))
        fail(s, BRISK_ERR_INVALID_ARG, "cuda rmsnorm+swiglu: gate and up differ");
    submit(s, &r);
}

static void cu_op_matmul(brisk_backend *be, const brisk_tensor *W, const float *bias,
                         const float *x, int n, float *y) {
    matmul_rec(S(be), 1, &W, &bias, x, n, &y, CU_EPI_STORE);
}

static void cu_op_matmul_qkv(brisk_backend *be, const brisk_tensor *wq, const brisk_tensor *wk,
                             const brisk_tensor *wv, const float *bq, const float *bk,
                             const float *bv, const float *x, int n, float *q, float *k, float *v) {
    const brisk_tensor *W[3] = {wq, wk, wv};
    const float *B[3] = {bq, bk, bv};
    float *Y[3] = {q, k, v};
    matmul_rec(S(be), 3, W, B, x, n, Y, CU_EPI_STORE);
}

static void cu_op_matmul_add(brisk_backend *be, const brisk_tensor *W, const float *x, int n,
                             float *y) {
    matmul_rec(S(be), 1, &W, NULL, x, n, &y, CU_EPI_ADD);
}

static void cu_op_matmul_swiglu(brisk_backend *be, const brisk_tensor *wg, const brisk_tensor *wu,
                                const float *x, int n, float *out) {
    const brisk_tensor *W[2] = {wg, wu};
    float *Y[2] = {out, NULL};
    if (wg->rows != wu->rows) {
        fail(S(be), BRISK_ERR_INVALID_ARG, "cuda matmul_swiglu: gate and up differ in rows");
        return;
    }
    matmul_rec(S(be), 2, W, NULL, x, n, Y, CU_EPI_SWIGLU);
}

static void cu_op_rope(brisk_backend *be, float *x, const int32_t *pos, int n, int n_heads,
                       int head_dim, const float *inv_freq) {
    cu_state *s = S(be);
    REC(r, OP_ROPE);
    r.p0 = x, r.p1 = didx(s, pos), r.n = n, r.i0 = n_heads, r.dim = head_dim;
    r.p2 = dvec(s, inv_freq);
    submit(s, &r);
}

static void cu_op_rope_kv_store(brisk_backend *be, float *q, float *k, const float *v,
                                const int32_t *pos, int n, int n_head, int n_head_kv, int head_dim,
                                const float *inv_freq, void *kcache, void *vcache,
                                const int32_t *slot) {
    cu_state *s = S(be);
    REC(r, OP_ROPE_STORE);
    r.p0 = q, r.p1 = k, r.p2 = v, r.p3 = didx(s, pos), r.n = n, r.i0 = n_head, r.i1 = n_head_kv;
    r.dim = head_dim, r.p4 = dvec(s, inv_freq), r.p5 = kcache, r.p6 = vcache;
    r.bias[0] = (const float *)didx(s, slot);
    submit(s, &r);
}

static void cu_op_kv_store(brisk_backend *be, void *kc, void *vc, const float *k, const float *v,
                           const int32_t *slot, int n, int kv_dim) {
    cu_state *s = S(be);
    REC(r, OP_KV_STORE);
    r.p0 = kc, r.p1 = vc, r.p2 = k, r.p3 = v, r.p4 = didx(s, slot), r.n = n, r.dim = kv_dim;
    submit(s, &r);
}

static void unlog(cu_state *s);

static void cu_op_attention(brisk_backend *be, const float *q, const void *kc, const void *vc,
                            const brisk_attn_batch *b, int n_head, int n_head_kv, int head_dim,
                            float *out) {
    cu_state *s = S(be);
    REC(r, OP_ATTN);
    r.p0 = q, r.p1 = kc, r.p2 = vc, r.p3 = out, r.p4 = didx(s, b->pos), r.p5 = didx(s, b->seq);
    r.n = b->n_tokens, r.dim = b->block_size, r.epi = b->sliding_window;
    r.i0 = n_head, r.i1 = n_head_kv, r.i2 = head_dim;
    if (n_head_kv <= 0 || n_head % n_head_kv || n_head / n_head_kv > 8 || head_dim > 1024) {
        fail(s, BRISK_ERR_UNSUPPORTED,
             "cuda attention: %d heads over %d kv heads of size %d are not supported", n_head,
             n_head_kv, head_dim);
        return;
    }
    if (s->logging && r.n > 1 && (cu_attn_split || !cu_attn_decode_ok(n_head, n_head_kv, head_dim)))
        unlog(s); /* the split-K pair sizes a multi-token launch by this step's context */
    submit(s, &r);
}

static void cu_op_swiglu(brisk_backend *be, const float *gate, const float *up, size_t n,
                         float *out) {
    cu_state *s = S(be);
    REC(r, OP_SWIGLU);
    r.p0 = gate, r.p1 = up, r.count = n, r.p2 = out;
    submit(s, &r);
}

static void cu_op_add(brisk_backend *be, float *x, const float *y, size_t n) {
    cu_state *s = S(be);
    REC(r, OP_ADD);
    r.p0 = x, r.p1 = y, r.count = n;
    submit(s, &r);
}

static void cu_op_get_rows(brisk_backend *be, const float *src, const int32_t *rows, int n, int dim,
                           float *dst) {
    cu_state *s = S(be);
    if (s->logging && n > 16) {
        fail(s, BRISK_ERR_BACKEND, "cuda get_rows: %d rows in a graphed step", n);
        return;
    }
    REC(r, OP_GET_ROWS);
    r.p0 = src, r.p1 = dst, r.n = n, r.dim = dim;
    flush_pending(s);
    if (!s->logging) {
        /* values travel as kernel arguments: launch directly */
        if (s->err == BRISK_OK) chk(s, cu_get_rows(s->st, src, rows, n, dim, dst), "cuda get_rows");
        return;
    }
    memcpy(r.rows, rows, (size_t)n * sizeof *rows);
    submit(s, &r);
}

/* ---------------------------------------------------------------------------------------------
 * Memory, steps, graphs
 * ------------------------------------------------------------------------------------------- */

static void *cu_op_alloc(brisk_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    if (cudaMemset(p, 0, bytes ? bytes : 16) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    (void)be;
    return p;
}

static void cu_op_free(brisk_backend *be, void *p) {
    (void)be;
    cudaFree(p);
}

static brisk_status report(cu_state *s) {
    brisk_status st = s->err;
    s->err = BRISK_OK;
    return brisk_errorf(st, "%s", s->errmsg);
}

static void drop_graphs(cu_state *s) {
    for (int i = 0; i < s->n_graphs; i++) cudaGraphExecDestroy(s->graphs[i].exec);
    s->n_graphs = 0;
    s->n_seen = 0;
}

static brisk_status cu_op_begin_step(brisk_backend *be, const int32_t *tokens,
                                     const brisk_attn_batch *b, int max_blocks, int n_seqs) {
    cu_state *s = S(be);
    if (s->err != BRISK_OK) return report(s);
    const int T = b->n_tokens;
    if (T < 1 || T > s->max_tokens || n_seqs < 1 || max_blocks < 1)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "cuda begin_step: %d tokens (max %d), %d sequences, %d blocks", T,
                            s->max_tokens, n_seqs, max_blocks);
    const size_t need = 4 * (size_t)s->max_tokens + (size_t)n_seqs * max_blocks;
    if (need > s->idx_cap) { /* first step, or more sequences: graphs hold the old buffer */
        drop_graphs(s);
        cudaFreeHost(s->h_idx);
        cudaFree(s->d_idx);
        s->h_idx = NULL, s->d_idx = NULL, s->idx_cap = 0;
        if (cudaMallocHost((void **)&s->h_idx, need * 4) != cudaSuccess ||
            cudaMalloc((void **)&s->d_idx, need * 4) != cudaSuccess) {
            cudaGetLastError();
            return brisk_errorf(BRISK_ERR_OOM, "cuda begin_step: out of memory for index arrays");
        }
        s->idx_cap = need;
        const int M = s->max_tokens;
        s->d_tokens = s->d_idx, s->d_pos = s->d_idx + M, s->d_seq = s->d_idx + 2 * M;
        s->d_slot = s->d_idx + 3 * M, s->d_tables = s->d_idx + 4 * M;
    }
    const int M = s->max_tokens;
    int32_t *h = s->h_idx;
    memcpy(h, tokens, (size_t)T * 4);
    memcpy(h + M, b->pos, (size_t)T * 4);
    memcpy(h + 2 * M, b->seq, (size_t)T * 4);
    memcpy(h + 3 * M, b->slot, (size_t)T * 4);
    int max_pos = 0;
    for (int i = 0; i < T; i++) {
        if (b->pos[i] >= s->max_ctx || b->pos[i] < 0 || b->seq[i] < 0 || b->seq[i] >= n_seqs)
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "cuda begin_step: token %d at position %d of sequence %d is out of "
                                "range",
                                i, b->pos[i], b->seq[i]);
        if (b->pos[i] > max_pos) max_pos = b->pos[i];
    }
    for (int q = 0; q < n_seqs; q++) {
        if (b->block_tables[q])
            memcpy(h + 4 * M + (size_t)q * max_blocks, b->block_tables[q], (size_t)max_blocks * 4);
        else
            memset(h + 4 * M + (size_t)q * max_blocks, 0, (size_t)max_blocks * 4);
    }
    if (max_blocks != s->max_blocks) drop_graphs(s);
    /* one copy: [tokens|pos|seq|slot] of this step plus the tables */
    cudaError_t e = cudaMemcpyAsync(s->d_idx, h, need * 4, cudaMemcpyHostToDevice, s->st);
    if (e != cudaSuccess) {
        chk(s, e, "cuda begin_step upload");
        return report(s);
    }
    s->hp_tokens = tokens, s->hp_pos = b->pos, s->hp_seq = b->seq, s->hp_slot = b->slot;
    s->max_blocks = max_blocks, s->T = T, s->max_pos = max_pos;
    /* one-token steps and decode steps of up to cu_graph_max_t tokens, one per sequence, replay as
     * graphs (their records depend on the step's shape only); prefill chunks run eagerly */
    cu_tl_step(s->st);
    log_reset(s);
    s->logging = T <= cu_graph_max_t && seqs_distinct(b->seq, T);
    s->has_pending = 0; /* a record of a step that failed before its end */
    return BRISK_OK;
}

/* Runs the logged step: as a graph when one matches, captured the second time. */
static void run_log(cu_state *s) {
    for (int i = 0; i < s->n_graphs; i++)
        if (s->graphs[i].hash == s->hash) {
            chk(s, cudaGraphLaunch(s->graphs[i].exec, s->st), "cuda graph launch");
            return;
        }
    bool seen = false;
    for (int i = 0; i < s->n_seen; i++) seen = seen || s->seen[i] == s->hash;
    if (!seen || s->n_graphs == N_GRAPHS) {
        exec_log(s);
        if (!seen && s->n_seen < N_GRAPHS) s->seen[s->n_seen++] = s->hash;
        return;
    }
    cudaGraph_t g = NULL;
    if (!chk(s, cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal), "cuda capture"))
        return;
    exec_log(s);
    cudaError_t e = cudaStreamEndCapture(s->st, &g);
    if (s->err != BRISK_OK || !chk(s, e, "cuda capture end")) {
        if (g) cudaGraphDestroy(g);
        return;
    }
    cudaGraphExec_t ex = NULL;
    e = cudaGraphInstantiate(&ex, g, 0);
    cudaGraphDestroy(g);
    if (!chk(s, e, "cuda graph instantiate")) return;
    s->graphs[s->n_graphs].hash = s->hash;
    s->graphs[s->n_graphs++].exec = ex;
    chk(s, cudaGraphLaunch(ex, s->st), "cuda graph launch");
}

/* Leaves graph mode for the rest of this step: what was logged runs now, the rest eagerly. */
static void unlog(cu_state *s) {
    flush_pending(s);
    exec_log(s);
    log_reset(s);
}

static void finish_log(cu_state *s) {
    flush_pending(s);
    if (s->logging && s->err == BRISK_OK) run_log(s);
    log_reset(s);
}

static brisk_status cu_op_end_step(brisk_backend *be, const float *logits, int n, int V,
                                   float *out) {
    cu_state *s = S(be);
    finish_log(s);
    const size_t bytes = (size_t)n * (size_t)V * sizeof(float);
    if (s->err == BRISK_OK && n > 0 && out) {
        if (bytes > s->h_logits_cap) {
            cudaStreamSynchronize(s->st);
            cudaFreeHost(s->h_logits);
            s->h_logits = NULL, s->h_logits_cap = 0;
            if (chk(s, cudaMallocHost((void **)&s->h_logits, bytes), "cuda logits staging"))
                s->h_logits_cap = bytes;
        }
        if (s->err == BRISK_OK)
            chk(s, cudaMemcpyAsync(s->h_logits, logits, bytes, cudaMemcpyDeviceToHost, s->st),
                "cuda logits copy");
    }
    chk(s, cudaStreamSynchronize(s->st), "cuda step");
    if (s->err != BRISK_OK) return report(s);
    if (n > 0 && out) memcpy(out, s->h_logits, bytes);
    return BRISK_OK;
}

/* The greedy step: argmax and log-probability on the device (logged, so graphs include it), and
 * only n (id, logprob) pairs cross to the host. */
static brisk_status cu_op_end_step_argmax(brisk_backend *be, const float *logits, int n, int V,
                                          int32_t *ids, float *lp) {
    cu_state *s = S(be);
    if (n > s->am_cap && s->err == BRISK_OK) {
        /* grows outside any capture: captures happen in finish_log, after this */
        cudaStreamSynchronize(s->st);
        drop_graphs(s); /* they point at the old buffer */
        cudaFree(s->d_am), cudaFreeHost(s->h_am);
        s->d_am = NULL, s->h_am = NULL, s->am_cap = 0;
        const size_t per = cu_argmax_part_floats + 2;
        s->d_am = (float *)dalloc(s, (size_t)n * per * sizeof(float), "cuda argmax scratch");
        if (s->d_am &&
            chk(s, cudaMallocHost((void **)&s->h_am, (size_t)n * 8), "cuda argmax staging"))
            s->am_cap = n;
    }
    if (s->err == BRISK_OK) {
        REC(r, OP_ARGMAX);
        r.p0 = logits, r.n = n, r.dim = V, r.p1 = s->d_am, r.i0 = s->am_cap;
        submit(s, &r);
    }
    finish_log(s);
    if (s->err == BRISK_OK) {
        const int32_t *d_ids =
            (const int32_t *)(s->d_am + (size_t)s->am_cap * cu_argmax_part_floats);
        chk(s, cudaMemcpyAsync(s->h_am, d_ids, (size_t)n * 4, cudaMemcpyDeviceToHost, s->st),
            "cuda argmax copy");
        chk(s,
            cudaMemcpyAsync(s->h_am + n, d_ids + s->am_cap, (size_t)n * 4, cudaMemcpyDeviceToHost,
                            s->st),
            "cuda argmax copy");
    }
    chk(s, cudaStreamSynchronize(s->st), "cuda step");
    if (s->err != BRISK_OK) return report(s);
    for (int i = 0; i < n; i++) {
        if (cu_skip && (s->h_am[i] < 0 || s->h_am[i] >= V)) s->h_am[i] = 0; /* garbage anyway */
        if (s->h_am[i] < 0 || s->h_am[i] >= V)
            return brisk_errorf(BRISK_ERR_BACKEND, "cuda: logits of row %d hold NaN", i);
        ids[i] = s->h_am[i];
        memcpy(&lp[i], &s->h_am[n + i], 4);
    }
    return BRISK_OK;
}

/* The sampled step: the chain of each row on the device (cuda_sample.cu, logged like the argmax).
 * The rows' filters and uniforms go into the scratch by a copy issued now, ahead of the step's
 * graph, so the graph (whose record holds only pointers and sizes) replays any step. */
static brisk_status cu_op_end_step_sample(brisk_backend *be, const float *logits, int n, int V,
                                          const brisk_sample_params *p, const double *u,
                                          int32_t *ids, float *lp) {
    cu_state *s = S(be);
    if (n > s->samp_cap && s->err == BRISK_OK) {
        /* grows outside any capture (captures happen in finish_log, after this) */
        cudaStreamSynchronize(s->st);
        drop_graphs(s); /* they point at the old buffer */
        cudaFree(s->d_samp), cudaFreeHost(s->h_samp_in), cudaFreeHost(s->h_samp_out);
        s->d_samp = NULL, s->h_samp_in = NULL, s->h_samp_out = NULL, s->samp_cap = 0;
        const size_t bytes = cu_sample_bytes(n);
        s->d_samp = dalloc(s, bytes, "cuda sample scratch");
        if (s->d_samp && chk(s, cudaMemsetAsync(s->d_samp, 0, bytes, s->st), "cuda sample") &&
            chk(s, cudaMallocHost((void **)&s->h_samp_in, (size_t)n * sizeof(cu_sample_in)),
                "cuda sample staging") &&
            chk(s, cudaMallocHost((void **)&s->h_samp_out, (size_t)n * sizeof(cu_sample_out)),
                "cuda sample staging"))
            s->samp_cap = n;
    }
    if (s->err == BRISK_OK) {
        for (int i = 0; i < n; i++) s->h_samp_in[i].p = p[i], s->h_samp_in[i].u = u[i];
        chk(s,
            cudaMemcpyAsync(s->d_samp, s->h_samp_in, (size_t)n * sizeof(cu_sample_in),
                            cudaMemcpyHostToDevice, s->st),
            "cuda sample inputs");
    }
    if (s->err == BRISK_OK) {
        REC(r, OP_SAMPLE);
        r.p0 = logits, r.n = n, r.dim = V, r.p1 = s->d_samp, r.i0 = s->samp_cap;
        submit(s, &r);
    }
    finish_log(s);
    if (s->err == BRISK_OK)
        chk(s,
            cudaMemcpyAsync(s->h_samp_out,
                            (const char *)s->d_samp + cu_sample_out_offset(s->samp_cap),
                            (size_t)n * sizeof(cu_sample_out), cudaMemcpyDeviceToHost, s->st),
            "cuda sample copy");
    chk(s, cudaStreamSynchronize(s->st), "cuda step");
    if (s->err != BRISK_OK) return report(s);
    int bad = -1;
    for (int i = 0; i < n; i++) {
        ids[i] = s->h_samp_out[i].id, lp[i] = s->h_samp_out[i].lp;
        if (cu_skip && (ids[i] < 0 || ids[i] >= V)) ids[i] = 0; /* garbage anyway */
        if ((ids[i] < 0 || ids[i] >= V) && bad < 0) bad = i;
    }
    if (bad >= 0)
        return brisk_errorf(BRISK_ERR_BACKEND,
                            "cuda: logits of row %d hold NaN or +inf, or only -inf", bad);
    return BRISK_OK;
}

/* Device-to-device copy bandwidth, counting bytes read plus bytes written (METHOD.md): a 1 GiB
 * copy repeated, timed with events, the best of several rounds. */
static double cu_op_measure_bandwidth(brisk_backend *be) {
    cu_state *s = S(be);
    size_t bytes = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    while (bytes >= ((size_t)1 << 26)) {
        if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess) break;
        cudaFree(a), cudaFree(b);
        a = b = NULL;
        cudaGetLastError();
        bytes /= 2;
    }
    if (!a || !b) return 0;
    cudaMemsetAsync(a, 1, bytes, s->st);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    double best = 0;
    for (int round = 0; round < 6; round++) {
        cudaEventRecord(e0, s->st);
        for (int i = 0; i < 5; i++) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s->st);
        cudaEventRecord(e1, s->st);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        const double gbps = 2.0 * 5 * bytes / (ms * 1e-3) / 1e9;
        if (round > 0 && gbps > best) best = gbps; /* round 0 warms up */
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(a), cudaFree(b);
    return cudaGetLastError() == cudaSuccess ? best : 0;
}

static void cu_op_destroy(brisk_backend *be) {
    if (!be) return;
    cu_state *s = S(be);
    if (s) {
        if (s->st) cudaStreamSynchronize(s->st);
        if (s->trace) {
            unsigned long long t[8] = {0};
            cudaMemcpy(t, s->trace, sizeof t, cudaMemcpyDeviceToHost);
            const double n = t[6] ? (double)t[6] : 1, m = t[5] ? (double)t[5] : 1;
            fprintf(stderr,
                    "cuda trace: attention block (0,0,0) over %llu launches: entry -> wait "
                    "released %.2f us, -> q ready %.2f, -> tiles done %.2f, -> written %.2f; "
                    "merging block over %llu: wait released -> merged %.2f us\n",
                    t[6], t[0] / n / 1e3, t[1] / n / 1e3, t[2] / n / 1e3, t[3] / n / 1e3, t[5],
                    t[4] / m / 1e3);
            cudaFree(s->trace);
        }
        cu_tl_dump();
        drop_graphs(s);
        for (int i = 0; s->w && i < s->n_w; i++) cudaFree(s->w[i].data), cudaFree(s->w[i].sb);
        free(s->w);
        cudaFree(s->d_small);
        cudaFreeHost(s->h_idx);
        cudaFree(s->d_idx);
        cudaFree(s->part);
        cudaFree(s->count);
        if (s->st2) cudaStreamSynchronize(s->st2), cudaStreamDestroy(s->st2);
        for (int b = 0; b < 2; b++) {
            if (s->ev_deq[b]) cudaEventDestroy(s->ev_deq[b]);
            if (s->ev_gemm[b]) cudaEventDestroy(s->ev_gemm[b]);
        }
        cudaFree(s->deq);
        cudaFree(s->xh);
        cudaFree(s->tmp);
        cudaFree(s->bsc.xq), cudaFree(s->bsc.xs), cudaFree(s->bsc.part), cudaFree(s->bsc.count);
        cudaFreeHost(s->h_logits);
        cudaFree(s->d_am);
        cudaFreeHost(s->h_am);
        cudaFree(s->d_samp);
        cudaFreeHost(s->h_samp_in);
        cudaFreeHost(s->h_samp_out);
        free(s->log);
        if (s->blas) cublasDestroy(s->blas);
        if (s->st) cudaStreamDestroy(s->st);
        free(s);
    }
    free(be);
}

static const brisk_backend_ops CUDA_OPS = {
    .name = "cuda",
    .kv_elem_size = 2, /* float16 KV cache */
    .destroy = cu_op_destroy,
    .alloc = cu_op_alloc,
    .free = cu_op_free,
    .begin_step = cu_op_begin_step,
    .end_step = cu_op_end_step,
    .embed = cu_op_embed,
    .rmsnorm = cu_op_rmsnorm,
    .matmul = cu_op_matmul,
    .rope = cu_op_rope,
    .kv_store = cu_op_kv_store,
    .attention = cu_op_attention,
    .swiglu = cu_op_swiglu,
    .add = cu_op_add,
    .measure_bandwidth = cu_op_measure_bandwidth,
    .get_rows = cu_op_get_rows,
    .matmul_qkv = cu_op_matmul_qkv,
    .matmul_add = cu_op_matmul_add,
    .matmul_swiglu = cu_op_matmul_swiglu,
    .rope_kv_store = cu_op_rope_kv_store,
    .rmsnorm_matmul = cu_op_rmsnorm_matmul,
    .end_step_argmax = cu_op_end_step_argmax,
};

/* The sampler chain on the device is opt-in (env BRISK_CUDA_SAMPLE=1) until its GPU test passes
 * at full speed (a race on degenerate rows: bench/cuda-notes.md, round 5); without the op,
 * brisk_context_eval_sample copies the logits and samples on the host. */
static brisk_backend_ops cuda_ops_sample;

/* ---------------------------------------------------------------------------------------------
 * Create: upload (and repack) every weight once
 * ------------------------------------------------------------------------------------------- */

/* Every host->device copy goes on the backend's own (non-blocking) stream: a plain cudaMemcpy
 * from pageable memory may return before its DMA lands, and it is not ordered with s->st, so the
 * repack/interleave kernels read stale staging (seen as NaN/wrong rows in the last rows of large
 * tensors: the failing "q4g32 bf16 swiglu" op test of round 1, and others run to run). */
static brisk_status upload_weight(cu_state *s, const brisk_tensor *t, cu_weight *w, void **stage,
                                  size_t *stage_cap) {
    memset(w, 0, sizeof *w);
    w->type = t->type, w->rows = t->rows, w->cols = t->cols;
    w->bits = t->bits, w->gs = t->group_size, w->stype = t->stype;
    const char *what = t->name ? t->name : "?";
    if (t->type == BRISK_W_QAFFINE) {
        if (t->bits < 2 || t->bits > 8 || t->group_size <= 0 || t->cols % t->group_size)
            return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                "brisk_backend_cuda_create: tensor '%s': "
                                "%d-bit group %d is not supported",
                                what, t->bits, t->group_size);
        w->row_bytes = t->cols * t->bits / 8;
        w->fast =
            (t->bits == 4 || t->bits == 8) && w->row_bytes % 16 == 0 && t->group_size % 8 == 0;
        if (t->bits == 4 && cu_mma_ok && !cu_gemv_v2 && !cu_gemv_v3 && t->cols % 64 == 0 &&
            t->group_size >= 64 && (t->group_size & (t->group_size - 1)) == 0)
            w->fast = 2;
        const size_t codes = (size_t)(t->rows * w->row_bytes);
        const size_t dcodes = w->fast == 2 ? (size_t)w_bytes(w) : codes;
        const int elem = t->stype == BRISK_W_F32 ? 4 : 2;
        const size_t ng = (size_t)(t->rows * (t->cols / t->group_size));
        /* the mma layout's pairs cover the padding rows of the last tile too */
        const size_t dng =
            w->fast == 2 ? (size_t)((t->rows + 15) / 16 * 16 * (t->cols / t->group_size)) : ng;
        const size_t need = codes > 2 * ng * elem ? codes : 2 * ng * elem;
        if (need > *stage_cap) {
            cudaFree(*stage);
            *stage = NULL, *stage_cap = 0;
            if (!(*stage = dalloc(s, need, "upload staging"))) goto oom;
            *stage_cap = need;
        }
        if (!(w->data = (uint8_t *)dalloc(s, dcodes, what))) goto oom;
        if (!(w->sb = dalloc(s, 2 * dng * elem, what))) goto oom;
        if (dng != ng && !chk(s, cudaMemsetAsync(w->sb, 0, 2 * dng * elem, s->st), what)) goto fail;
        if (!chk(s, cudaMemcpyAsync(*stage, t->data, codes, cudaMemcpyHostToDevice, s->st), what))
            goto fail;
        if (w->fast == 2) {
            if (!chk(s,
                     cu_repack_mma(s->st, (const uint8_t *)*stage, w->data, t->rows, w->row_bytes),
                     what))
                goto fail;
        } else if (w->fast) {
            if (!chk(
                    s,
                    cu_repack_codes(s->st, (const uint8_t *)*stage, w->data, t->rows, w->row_bytes),
                    what))
                goto fail;
        } else if (!chk(s, cudaMemcpyAsync(w->data, *stage, codes, cudaMemcpyDeviceToDevice, s->st),
                        what))
            goto fail;
        if (!chk(s, cudaStreamSynchronize(s->st), what)) goto fail;
        uint8_t *sbst = (uint8_t *)*stage;
        if (!chk(s, cudaMemcpyAsync(sbst, t->scales, ng * elem, cudaMemcpyHostToDevice, s->st),
                 what) ||
            !chk(s,
                 cudaMemcpyAsync(sbst + ng * elem, t->biases, ng * elem, cudaMemcpyHostToDevice,
                                 s->st),
                 what) ||
            !chk(s,
                 cu_interleave_sb(s->st, sbst, sbst + ng * elem, w->sb, t->rows,
                                  t->cols / t->group_size, elem, w->fast == 2),
                 what) ||
            !chk(s, cudaStreamSynchronize(s->st), what))
            goto fail;
        return BRISK_OK;
    }
    {
        const int esz = t->type == BRISK_W_F32 ? 4 : 2;
        w->row_bytes = t->cols * esz;
        w->fast = w->row_bytes % 16 == 0;
        const size_t bytes = (size_t)(t->rows * w->row_bytes);
        if (!(w->data = (uint8_t *)dalloc(s, bytes, what))) goto oom;
        if (!chk(s, cudaMemcpyAsync(w->data, t->data, bytes, cudaMemcpyHostToDevice, s->st),
                 what) ||
            !chk(s, cudaStreamSynchronize(s->st), what))
            goto fail;
        return BRISK_OK;
    }
oom:
fail:
    return report(s);
}

extern "C" brisk_status brisk_backend_cuda_create(const brisk_backend_init *init,
                                                  brisk_backend **out) {
    *out = NULL;
    if (!brisk_backend_cuda_available())
        return brisk_errorf(BRISK_ERR_UNSUPPORTED, "brisk_backend_cuda_create: %s",
                            brisk_backend_cuda_unavailable());
    brisk_backend *be = (brisk_backend *)calloc(1, sizeof *be);
    cu_state *s = (cu_state *)calloc(1, sizeof *s);
    if (!be || !s) {
        free(be), free(s);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_backend_cuda_create: out of memory");
    }
    be->ops = &CUDA_OPS;
    {
        const char *e = getenv("BRISK_CUDA_SAMPLE");
        if (e && e[0] == '1') {
            cuda_ops_sample = CUDA_OPS;
            cuda_ops_sample.end_step_sample = cu_op_end_step_sample;
            be->ops = &cuda_ops_sample;
        }
    }
    be->impl = s;
    cu_switches_read();
    { /* this instance's measuring aid and prefill attention switch */
        const char *e = getenv("BRISK_CUDA_TRACE");
        if (e && e[0] == '1') {
            s->trace = (unsigned long long *)dalloc(s, 8 * sizeof(unsigned long long), "trace");
            if (s->trace) cudaMemset(s->trace, 0, 8 * sizeof(unsigned long long));
        }
        e = getenv("BRISK_CUDA_FATTN"); /* 0: prefill attention on the split/decode kernels */
        s->fattn = cu_mma_ok && !(e && e[0] == '0');
    }
    s->max_tokens = init->max_tokens > 0 ? init->max_tokens : 1;
    s->max_ctx = init->max_ctx > 0 ? init->max_ctx : 1;
    s->max_cols = init->max_cols;
    brisk_status st = BRISK_OK;
    void *stage = NULL;
    size_t stage_cap = 0;
    int64_t max_q = 0;
    if (!chk(s, cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking), "cuda stream")) goto err;
    if (!blas_chk(s, cublasCreate(&s->blas), "cublasCreate") ||
        !blas_chk(s, cublasSetStream(s->blas, s->st), "cublasSetStream"))
        goto err;
    s->h_small = init->small, s->n_small = init->n_small;
    if (!(s->d_small = (float *)dalloc(s, init->n_small * sizeof(float), "cuda vectors"))) goto err;
    if (init->n_small &&
        (!chk(s,
              cudaMemcpyAsync(s->d_small, init->small, init->n_small * sizeof(float),
                              cudaMemcpyHostToDevice, s->st),
              "cuda vectors") ||
         !chk(s, cudaStreamSynchronize(s->st), "cuda vectors")))
        goto err;
    s->w = (cu_weight *)calloc((size_t)(init->n_tensors > 0 ? init->n_tensors : 1), sizeof *s->w);
    if (!s->w) {
        fail(s, BRISK_ERR_OOM, "brisk_backend_cuda_create: out of memory");
        goto err;
    }
    s->n_w = init->n_tensors;
    for (int i = 0; i < init->n_tensors && st == BRISK_OK; i++) {
        const brisk_tensor *t = init->tensors[i];
        st = upload_weight(s, t, &s->w[i], &stage, &stage_cap);
        if (t->type == BRISK_W_QAFFINE && t->rows * t->cols > max_q) max_q = t->rows * t->cols;
    }
    cudaFree(stage);
    if (st != BRISK_OK) {
        cu_op_destroy(be);
        return st;
    }
    s->tmp = (float *)dalloc(s, (size_t)s->max_tokens * (size_t)s->max_cols * sizeof(float),
                             "cuda scratch");
    if (!s->tmp) goto err;
    if (s->max_tokens >= 2 && cu_sm90) { /* the batched GEMV's scratch */
        cu_batch_scratch *b = &s->bsc;
        b->max_cols = s->max_cols;
        b->part_cap = (size_t)4 << 20; /* floats: 16 MB */
        b->count_cap = 4096;
        if (!(b->xq = dalloc(s, cu_gemv_batch_xq_bytes(s->max_cols), "cuda batch scratch")) ||
            !(b->xs = (float *)dalloc(s, cu_gemv_batch_xs_floats(s->max_cols) * 4,
                                      "cuda batch scratch")) ||
            !(b->part = (float *)dalloc(s, b->part_cap * 4, "cuda batch scratch")) ||
            !(b->count = (int *)dalloc(s, (size_t)b->count_cap * 4, "cuda batch scratch")) ||
            !chk(s, cudaMemsetAsync(b->count, 0, (size_t)b->count_cap * 4, s->st),
                 "cuda batch scratch"))
            goto err;
    }
    if (s->max_tokens > GEMV_MAX_N) { /* the prefill path */
        s->xh_cap = (size_t)s->max_tokens * (size_t)s->max_cols * 2;
        if (!(s->xh = dalloc(s, s->xh_cap, "cuda prefill scratch"))) goto err;
        size_t cap = (size_t)128 << 20;
        if ((size_t)max_q * 2 < cap) cap = (size_t)max_q * 2;
        if (cap < (size_t)s->max_cols * 2 * 64) cap = (size_t)s->max_cols * 2 * 64;
        s->deq_cap = cap;
        if (!(s->deq = dalloc(s, cap, "cuda prefill scratch"))) goto err;
        const char *e = getenv("BRISK_CUDA_OVERLAP"); /* 0: dequantize and GEMM in turn on st */
        if (!(e && e[0] == '0')) {
            if (!chk(s, cudaStreamCreateWithFlags(&s->st2, cudaStreamNonBlocking), "cuda stream"))
                goto err;
            for (int b = 0; b < 2; b++)
                if (!chk(s, cudaEventCreateWithFlags(&s->ev_deq[b], cudaEventDisableTiming),
                         "cuda event") ||
                    !chk(s, cudaEventCreateWithFlags(&s->ev_gemm[b], cudaEventDisableTiming),
                         "cuda event"))
                    goto err;
        }
    }
    *out = be;
    return BRISK_OK;
err:
    st = report(s);
    cu_op_destroy(be);
    return st;
}
