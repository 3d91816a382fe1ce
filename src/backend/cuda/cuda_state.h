/* cuda_state.h: the CUDA backend instance's private state, shared by the host files that run its
 * op records: the op codes, the logged record (op_rec), the captured graphs and cu_state itself,
 * the helpers that record a failure into it (cuda_backend.cu), the L2 prefetch planner's entry
 * points (cuda_prefetch.cu) and the attention record's execution (cuda_attn_exec.cu). C++ (nvcc)
 * only. */
#ifndef BRISK_CUDA_STATE_H
#define BRISK_CUDA_STATE_H

#include "cuda_internal.h"

#include <cublas_v2.h>

#define N_GRAPHS 8 /* argmax or sampled one-token steps, fed by the host or by the step before */

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
    unsigned long long *ctr; /* its GEMVs' group counters (cu_group_plan), or NULL */
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
    /* step index arrays: pinned staging (two halves, used by alternate steps: a launched step's
     * upload may still be queued when the next step stages) and device copy
     * [tokens|pos|seq|slot|out (4 words: the host slot of the chosen rows)|tables] */
    int32_t *h_idx, *d_idx;
    size_t idx_cap;       /* of one half */
    int half;             /* the half this step stages in (its sample inputs too) */
    const int32_t *h_cur; /* the step's staged arrays: h_idx + half * idx_cap */
    const int32_t *hp_tokens, *hp_pos, *hp_seq, *hp_slot;
    int32_t *d_tokens, *d_pos, *d_seq, *d_slot, *d_out, *d_tables;
    int max_blocks, T, max_pos;
    /* scratch */
    float *part; /* attention partials */
    size_t part_cap;
    int *count; /* flash-decoding arrival counters [count_cap], zero between launches */
    size_t count_cap;
    int n_sm;
    size_t max_alloc; /* the largest cu_op_alloc (a layer's K or V cache is one): the decode
                       * attention's 32-bit copy offsets need it below 32 GB (cu_attn_args.wide) */
    void *deq, *xh;   /* prefill: dequantized tiles (two halves when overlapping), x in half */
    size_t deq_cap, xh_cap;
    /* a one-token activation as half [max_cols], written beside the floats by the op before a
     * GEMV without a norm, which stages it instead of them (the same bits): the SwiGLU's output
     * for the down projection (cu_v7_actq), the decode attention's for the o projection
     * (cu_attn_outq); actq_of: the floats it copies, set only from that op to the next op's */
    void *actq;
    const float *actq_of;
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
    /* greedy tokens: the argmax's scratch for am_cap rows (cu_argmax_bytes) */
    void *d_am;
    int am_cap;
    /* a rope_kv_store held back until the next record shows whether the attention takes it */
    op_rec pending;
    int has_pending;
    /* sampled tokens: device scratch of cu_sample_bytes(samp_cap) whose inputs are refreshed per
     * step, pinned staging for the inputs */
    void *d_samp;
    cu_sample_in *h_samp_in;
    int samp_cap;
    /* the chosen rows of a step (argmax or sampler), written by its last kernel into slot
     * out_slot() (cuda_backend.cu) of h_ch: mapped pinned memory [2][ch_cap] (d_ch its device
     * address), read once the step is done; and, in a step, into d_tokens, where a step begun
     * with tokens NULL finds them. The slot word is d_out in a step (uploaded), else
     * d_slots[out_slot()] ({0, 1}). */
    cu_sample_out *h_ch, *d_ch;
    int ch_cap, in_step;
    int32_t *d_slots;
    int chain_n; /* rows the last step chose (0: it chose none, nothing to feed the next) */
    /* launched steps (end_step_launch), collected oldest first: launch k wrote slot k of h_ch and
     * recorded fl[k].ev after it */
    struct {
        cudaEvent_t ev;
        int n, V, sampled;
    } fl[2];
    int fl_head, n_fl;
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
    /* the one-token step being captured: its v7 GEMVs' group counters (device, zeroed once; NULL:
     * none) and each logged record's counter (-1: none) */
    unsigned long long *ctr;
    int *ctr_idx;
    int ctr_idx_cap;
    /* first failure of an op (ops return void); end_step reports it */
    brisk_status err;
    char errmsg[200];
} cu_state;

/* The first failure of an op is kept (ops return void) and end_step reports it (cuda_backend.cu):
 * cu_fail records a message, cu_chk a CUDA error (false when e is one), cu_dalloc a failed
 * cudaMalloc (NULL). */
void cu_fail(cu_state *s, brisk_status st, const char *fmt, ...);
bool cu_chk(cu_state *s, cudaError_t e, const char *what);
void *cu_dalloc(cu_state *s, size_t bytes, const char *what);

/* Bytes of a fast == 2 weight's codes on the device (whole 16-row tiles; the upload allocates
 * this, the prefetch planner walks it). */
static inline uint64_t cu_w_bytes(const cu_weight *w) {
    return (uint64_t)((w->rows + 15) / 16 * 16) * (uint64_t)w->row_bytes;
}

/* The L2 prefetch shares of a one-token step's GEMV and decode attention (cuda_prefetch.cu), and
 * the GEMV's group counter while a step with counters is captured. */
bool cu_gemv_pf(const cu_state *s, const op_rec *r, cu_pf *pf);
/* Counters for the tile groups of the logged one-token step's v7 GEMVs (cuda_prefetch.cu):
 * allocates and zeroes s->ctr (NULL: none: off, not one token, no such GEMV, or no memory). */
void cu_group_plan(cu_state *s);
void cu_attn_pf_ranges(cu_state *s, const op_rec *r, cu_attn_args *a);

/* Runs an attention record (cuda_attn_exec.cu): a prefill step's long runs of one sequence on the
 * flash kernel, everything else on the decode (flash-decoding or split-K) kernels. */
void cu_exec_attn(cu_state *s, const op_rec *r);

#endif
