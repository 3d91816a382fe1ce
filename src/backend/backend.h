/* backend.h: the backend vtable and the weight-tensor descriptor the ops compute on. A backend
 * implements ~12 ops over its own memory; model/forward.c composes them into the one forward.
 * Never includes model or tokenizer code. */
#ifndef BRISK_BACKEND_H
#define BRISK_BACKEND_H

#include "brisk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Storage type of a weight matrix or of its quantization scales/biases. */
typedef enum brisk_wtype {
    BRISK_W_F32 = 0,
    BRISK_W_F16,
    BRISK_W_BF16,
    BRISK_W_QAFFINE, /* MLX affine: packed uint32 words + per-group scales and biases */
} brisk_wtype;

/* A weight matrix [rows, cols] used as y = W x (rows = out features, cols = in features), or an
 * embedding table [vocab, dim]. Row-major. For BRISK_W_QAFFINE each row is a little-endian bit
 * stream of `bits`-bit codes (cols*bits/32 uint32 words per row) and element c of row r is
 * scales[r][c/group_size] * q + biases[r][c/group_size]. Data pointers may be unaligned (MLX
 * files are unpadded): read them with memcpy. */
typedef struct brisk_tensor {
    brisk_wtype type;
    int64_t rows, cols;
    const void *data;
    const void *scales, *biases; /* QAFFINE only: [rows, cols/group_size] of stype */
    brisk_wtype stype;
    int bits, group_size;
    const char *name; /* the tensor's name in the file, for messages */
    int id;           /* index in brisk_backend_init.tensors: a backend's key for its own copy */
} brisk_tensor;

/* Bytes of the stored tensor (codes + scales + biases). */
uint64_t brisk_tensor_bytes(const brisk_tensor *t);

/* The tokens of one forward step as attention sees them. Token i belongs to sequence seq[i], sits
 * at position pos[i] of it and writes its k/v to cache slot slot[i]; it attends to positions
 * max(0, pos[i]-window+1) .. pos[i] of its sequence, whose slots come from the sequence's block
 * table: slot(p) = table[p / block_size] * block_size + p % block_size. */
typedef struct brisk_attn_batch {
    int n_tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int32_t *slot;
    const int32_t *const *block_tables;
    int block_size;
    int sliding_window; /* 0 = none */
} brisk_attn_batch;

typedef struct brisk_backend brisk_backend;

/* The filters and temperature of one row for end_step_sample, as engine/sampler.c defines them:
 * on the log-probabilities at temperature 1, keep the top_k best ids (ties: the lower id), then
 * the shortest prefix of the rest (by logit desc, id asc) whose probabilities sum to >= top_p,
 * then the ids whose logit >= max + log_min_p; draw from softmax(logits * inv_temp) over the kept
 * ids walked in ascending id order. The host computes the two derived floats (inv_temp =
 * 1.0f / temperature, log_min_p = logf(min_p)) so both sides use the same bits. */
typedef struct brisk_sample_params {
    float inv_temp;  /* 1 / temperature, > 0 */
    int top_k;       /* 0 or >= V: off */
    float top_p;     /* off unless 0 < top_p < 1 */
    float log_min_p; /* logf(min_p); -INFINITY: off */
} brisk_sample_params;

/* What a backend instance is created with: every weight matrix (so a device backend can upload
 * or repack them once), the f32 vectors buffer (norms, biases: a device copies it whole and maps
 * pointers by offset), and the sizes that bound its scratch. */
typedef struct brisk_backend_init {
    const brisk_tensor *const *tensors; /* [n_tensors], tensors[i]->id == i */
    int n_tensors;
    const float *small; /* every f32 vector the ops receive points in here */
    size_t n_small;
    int max_tokens;   /* tokens per step */
    int max_ctx;      /* positions per sequence */
    int64_t max_cols; /* widest matrix row */
    int n_threads;    /* CPU threads; 0 = all cores */
} brisk_backend_init;

/* Memory the ops read and write (activations, KV caches) comes from alloc(): host memory on the
 * CPU, device memory on a GPU. Activations are float32 [n, dim] row-major. Caches are
 * [n_slots, n_head_kv * head_dim] per layer with elements of kv_elem_size bytes. Index arrays
 * (token ids, positions, slots, block tables) are host arrays given to begin_step(), which a
 * device backend copies over once per step; the ops then receive the same host pointers and a
 * device backend reads its copies. Vectors (norm weights, biases) point into init.small. */
typedef struct brisk_backend_ops {
    const char *name;
    size_t kv_elem_size;
    void (*destroy)(brisk_backend *be);
    void *(*alloc)(brisk_backend *be, size_t bytes); /* zeroed; NULL when out of memory */
    void (*free)(brisk_backend *be, void *p);
    /* Starts a step over these index arrays (tokens, positions, slots, block tables). tokens NULL
     * (only for a backend with end_step_launch): token i is the id the previous step's
     * end_step_argmax, end_step_sample or end_step_launch chose for its row i, still where it was
     * chosen (the step after a launched one starts before the host knows that id); the step then
     * has as many tokens as that one had rows, and embed() gets ids NULL. */
    brisk_status (*begin_step)(brisk_backend *be, const int32_t *tokens, const brisk_attn_batch *b,
                               int max_blocks_per_seq, int n_seqs);
    /* Ends a step: copies n rows of logits [n, V] from backend memory to host `out`. */
    brisk_status (*end_step)(brisk_backend *be, const float *logits, int n, int V, float *out);
    /* out[i] = row ids[i] of E, dequantized. */
    void (*embed)(brisk_backend *be, const brisk_tensor *E, const int32_t *ids, int n, float *out);
    /* out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, for n rows of dim (in place allowed). */
    void (*rmsnorm)(brisk_backend *be, const float *x, const float *w, int n, int dim, float eps,
                    float *out);
    /* y[n, W.rows] = x[n, W.cols] W^T (+ bias[W.rows] when not NULL). */
    void (*matmul)(brisk_backend *be, const brisk_tensor *W, const float *bias, const float *x,
                   int n, float *y);
    /* Rotates n rows of n_heads heads in place: dims i and i + head_dim/2 pair (rotate_half),
     * angle pos[row] * inv_freq[i] in float32 (inv_freq points into init.small). */
    void (*rope)(brisk_backend *be, float *x, const int32_t *pos, int n, int n_heads, int head_dim,
                 const float *inv_freq);
    /* Writes k/v rows into their cache slots. */
    void (*kv_store)(brisk_backend *be, void *kcache, void *vcache, const float *k, const float *v,
                     const int32_t *slot, int n, int kv_dim);
    /* Causal grouped-query attention of each token over its sequence's cached keys/values:
     * out[n, n_head*head_dim]. Query head h reads kv head h / (n_head / n_head_kv). */
    void (*attention)(brisk_backend *be, const float *q, const void *kcache, const void *vcache,
                      const brisk_attn_batch *b, int n_head, int n_head_kv, int head_dim,
                      float *out);
    /* out = silu(gate) * up, elementwise over n values (out may alias gate). */
    void (*swiglu)(brisk_backend *be, const float *gate, const float *up, size_t n, float *out);
    /* x += y over n values. */
    void (*add)(brisk_backend *be, float *x, const float *y, size_t n);
    /* Read bandwidth of the backend's memory in GB/s (a ~1 s streaming read). */
    double (*measure_bandwidth)(brisk_backend *be);
    /* dst[i] = src[rows[i]] for n rows of dim floats (gathers the rows that want logits). */
    void (*get_rows)(brisk_backend *be, const float *src, const int32_t *rows, int n, int dim,
                     float *dst);

    /* Optional fused ops: NULL means forward.c composes the ops above; when set, each computes
     * exactly what its composition does (a device backend saves launches and passes over memory).
     */
    /* q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv (biases may be NULL): three matmuls of one x.
     */
    void (*matmul_qkv)(brisk_backend *be, const brisk_tensor *wq, const brisk_tensor *wk,
                       const brisk_tensor *wv, const float *bq, const float *bk, const float *bv,
                       const float *x, int n, float *q, float *k, float *v);
    /* y[n, W.rows] += x[n, W.cols] W^T: matmul then add (the residual update), without a temp. */
    void (*matmul_add)(brisk_backend *be, const brisk_tensor *W, const float *x, int n, float *y);
    /* out[n, Wg.rows] = silu(x Wg^T) * (x Wu^T): the gate and up matmuls then swiglu. */
    void (*matmul_swiglu)(brisk_backend *be, const brisk_tensor *wg, const brisk_tensor *wu,
                          const float *x, int n, float *out);
    /* rope(q), rope(k), then kv_store(k, v): the three ops in one pass. */
    void (*rope_kv_store)(brisk_backend *be, float *q, float *k, const float *v, const int32_t *pos,
                          int n, int n_head, int n_head_kv, int head_dim, const float *inv_freq,
                          void *kcache, void *vcache, const int32_t *slot);
    /* y[i] = rmsnorm(x, norm_w, eps) W[i]^T (+ bias[i] when bias and bias[i] are not NULL) for
     * i < nmat (1..3 matrices of the same cols); swiglu (nmat 2, same rows): y[0] =
     * silu(.. W[0]^T) * (.. W[1]^T). xn [n, cols] is scratch the backend may write the normalised
     * rows to (its contents afterwards are unspecified). */
    void (*rmsnorm_matmul)(brisk_backend *be, const float *x, const float *norm_w, float eps, int n,
                           int nmat, const brisk_tensor *const *W, const float *const *bias,
                           float *const *y, bool swiglu, float *xn);
    /* Ends a step like end_step, but instead of the logits returns the greedy token of each of the
     * n rows: ids[i] = argmax (the lowest index among equal maxima) and lp[i] its log-probability
     * (log-softmax at temperature 1). BRISK_ERR_BACKEND when a row holds NaN. */
    brisk_status (*end_step_argmax)(brisk_backend *be, const float *logits, int n, int V,
                                    int32_t *ids, float *lp);
    /* Ends a step like end_step_argmax, but samples each of the n rows with the chain of p[i]
     * (brisk_sample_params) and the uniform u[i] in [0, 1) that the host sampler's generator drew:
     * ids[i] is the kept id where the running sum of the kept weights, walked in id order, first
     * exceeds u[i] times their total (the last kept id when rounding leaves none), lp[i] its
     * log-probability at temperature 1. BRISK_ERR_BACKEND (and ids[i] = -1) when a row holds NaN
     * or +inf, or only -inf. */
    brisk_status (*end_step_sample)(brisk_backend *be, const float *logits, int n, int V,
                                    const brisk_sample_params *p, const double *u, int32_t *ids,
                                    float *lp);
    /* Optional pipelined steps (NULL on a backend whose steps finish inside their calls). Ends a
     * step like end_step_sample (p and u not NULL) or end_step_argmax (p NULL), but returns once
     * the step is queued: step_collect waits for it and returns its ids and log-probabilities.
     * At most two launched steps are uncollected at a time, and while any is, the only other
     * calls are begin_step and the ops of the next step (which may end with another launch). */
    brisk_status (*end_step_launch)(brisk_backend *be, const float *logits, int n, int V,
                                    const brisk_sample_params *p, const double *u);
    /* Waits for the oldest uncollected launched step of n rows: its results as end_step_argmax or
     * end_step_sample returns them (with their errors). */
    brisk_status (*step_collect)(brisk_backend *be, int n, int32_t *ids, float *lp);
} brisk_backend_ops;

struct brisk_backend {
    const brisk_backend_ops *ops;
    void *impl;
};

/* Creates an instance of the backend of that kind (BRISK_BACKEND_AUTO picks CUDA when usable,
 * else the fastest CPU path). One instance per context: it owns the context's scratch and, on a
 * device, its copy of the weights. */
brisk_status brisk_backend_create(brisk_backend_kind kind, const brisk_backend_init *init,
                                  brisk_backend **out);

/* The scalar reference backend (ops_ref.c): the oracle every other path is tested against. */
brisk_status brisk_backend_ref_create(const brisk_backend_init *init, brisk_backend **out);

/* The fast CPU backend (backend/cpu/): the best ISA this CPU has, threaded over init.n_threads. */
brisk_status brisk_backend_cpu_create(const brisk_backend_init *init, brisk_backend **out);

/* The CUDA backend (backend/cuda/, or cuda_stub.c when built without CUDA). available() says
 * whether a usable card is present; unavailable() says why not (one line). */
bool brisk_backend_cuda_available(void);
brisk_status brisk_backend_cuda_create(const brisk_backend_init *init, brisk_backend **out);
/* Why CUDA is unavailable (one line). */
const char *brisk_backend_cuda_unavailable(void);

#endif
