/* cuda_internal.h: what the CUDA backend's .cu files share: the device copy of a weight matrix
 * (and its repacked layout), the kernel launchers, and error helpers. C++ (nvcc) only. */
#ifndef BRISK_CUDA_INTERNAL_H
#define BRISK_CUDA_INTERNAL_H

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
}

#include "cuda_desc.h"

/* Launchers (cuda_gemv.cu). All return cudaSuccess or the launch error. v7 (when set): whether
 * the one-token GEMV of cuda_gemv_tma.cu ran, which alone reads xq (x as half, the same values
 * rounded) and writes m[0].yq (cu_gemv_tma). */
cudaError_t cu_gemv(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x, int n,
                    const cu_pf *pf = NULL, const void *xq = NULL, bool *v7 = NULL);
/* The same over rmsnorm(x) with weight nw (eps): the norm fused into the GEMV. Returns
 * cudaErrorNotSupported (nothing launched) when these matrices have no fused kernel; the caller
 * then normalises first. */
cudaError_t cu_gemv_norm(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                         int n, const float *nw, float eps, const cu_pf *pf = NULL,
                         bool *v7 = NULL);
/* The batched GEMV's scratch (cu_batch_scratch: cuda_desc.h) */
size_t cu_gemv_batch_xq_bytes(int64_t max_cols);
size_t cu_gemv_batch_xs_floats(int64_t max_cols);
/* Steps of 2-64 tokens over 4-bit mma-layout weights: every weight read once (one launch that
 * prepares x, with rmsnorm(x) by nw when given, and one GEMV launch); more tokens go in passes
 * of 64. cudaErrorNotSupported
 * (nothing launched) for other shapes or when off (env BRISK_CUDA_BATCH=0). */
cudaError_t cu_gemv_batch(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                          int n, const float *nw, float eps, const cu_batch_scratch *sc);
/* dst[r0.., cols] = W rows [r0, r0+nr) as half, row-major (for the cuBLAS prefill path). */
cudaError_t cu_dequant_half(cudaStream_t st, const cu_weight *w, int64_t r0, int64_t nr, void *dst);
/* Repacks QAFFINE codes in place order for the fast layout: src (file order) -> dst. */
cudaError_t cu_repack_codes(cudaStream_t st, const uint8_t *src, uint8_t *dst, int64_t rows,
                            int64_t row_bytes);
/* Repacks 4-bit QAFFINE codes for the tensor-core GEMV (fast == 2): 16-row tiles, rows rounded up
 * to 16 (dst holds ceil(rows/16)*16 rows of row_bytes, the padding rows zero). */
cudaError_t cu_repack_mma(cudaStream_t st, const uint8_t *src, uint8_t *dst, int64_t rows,
                          int64_t row_bytes);
/* Interleaves scales and biases [rows, ngroups] of elem bytes each into pairs: row-major, or
 * tile-major (mma_sb_index; dst holds ceil(rows/16)*16 rows, the padding left as it was). */
cudaError_t cu_interleave_sb(cudaStream_t st, const void *s, const void *b, void *dst, int64_t rows,
                             int64_t ngroups, int elem, bool tiles);

/* Element-wise, normalisation, RoPE (cuda_ops.cu). */
/* out[i] = row ids[i] of E (an id outside E reads row 0). */
cudaError_t cu_embed(cudaStream_t st, const cu_weight *E, const int32_t *ids, int n, float *out);
cudaError_t cu_rmsnorm(cudaStream_t st, const float *x, const float *w, int n, int dim, float eps,
                       float *out);
cudaError_t cu_rope_store(cudaStream_t st, float *q, int n_head, float *k, int n_head_kv,
                          const float *v, const int32_t *pos, int n, int head_dim,
                          const float *inv_freq, void *kc, void *vc, const int32_t *slot);
cudaError_t cu_kv_store(cudaStream_t st, void *kc, void *vc, const float *k, const float *v,
                        const int32_t *slot, int n, int kv_dim);
/* Attention (cuda_attn.cu). count != NULL runs the flash-decoding kernel: n_split blocks per
 * (token, kv head) (cu_attn_decode_splits; split unused), partials [n_tokens*n_head*n_split]
 * x head_dim and x 2 when n_split > 1, count [n_tokens*n_head_kv] arrival counters that are zero
 * before the launch and left zero after it. count == NULL runs the split-K pair: `split`
 * positions per block, n_split splits per token covering the longest context. */
typedef struct cu_attn_args {
    const float *q;
    const void *kc, *vc;
    const int32_t *pos, *seq, *tables;
    int n_tokens, max_blocks, block_size, window;
    int n_head, n_head_kv, head_dim;
    int split, n_split;
    float *part_o, *part_ml; /* [n_tokens*n_head*n_split*head_dim], [.. *2] */
    int *count;
    float *out;
    void *outq; /* flash-decoding: the output as half too, or NULL (one token: the o projection
                 * after it stages these halves, cu_attn_outq) */
    /* RoPE and the KV store fused in (flash-decoding kernel, tokens of distinct sequences only):
     * when k_new is set, q holds the tokens' un-rotated queries, and the block whose piece holds
     * the token's own position first writes its rotated key (k_new) and value (v_new) [n_tokens,
     * n_head_kv * head_dim] to cache slot slot[i]; NULL: q is rotated and the cache is current */
    const float *k_new, *v_new, *inv_freq;
    const int32_t *slot;
    int cluster; /* flash-decoding: the n_split (<= 8) pieces are one thread-block cluster and
                  * merge through distributed shared memory instead of part_* and count */
    int slice;   /* set by the launch (cu_attn_slice): each block of a cluster merges its slice of
                  * the output (block 0 all of it otherwise) */
    int empty; /* measuring aid (BRISK_CUDA_SKIP=attnbody): the kernel returns after the PDL wait */
    int min_tiles; /* flash-decoding: 32-position tiles per warp a piece holds at least (>= 1) */
    int wide;      /* the caches may pass 32 GB: no single-buffered tiles (their copies' 32-bit row
                    * offsets in 16-byte units would overflow) */
    unsigned long long *trace; /* measuring aid (BRISK_CUDA_TRACE): stage times, cuda_attn.cu */
    unsigned long long *tl;    /* measuring aid (BRISK_CUDA_TL): this launch's timeline slot */
    /* flash-decoding: byte ranges (the next matmuls' weights) the blocks prefetch into L2 before
     * their wait, split evenly over the grid, while the card's memory is otherwise idle */
    cu_pf pf;
} cu_attn_args;
cudaError_t cu_attention(cudaStream_t st, const cu_attn_args *a);
/* The flash-decoding kernel takes this shape (G <= 8, head_dim % 8 == 0, <= 256). */
int cu_attn_decode_ok(int n_head, int n_head_kv, int head_dim);
/* Its blocks per (token, kv head): ~2 blocks per SM over all pairs, from max_ctx (not the actual
 * context) so a captured graph replays at any length; at most 256. */
int cu_attn_decode_splits(int n_sm, int n_head_kv, int n_tokens, int max_ctx);
/* Pieces of the cluster variant (cu_attn_args.cluster), or 0 where the counter merge is used. */
int cu_attn_cluster_splits(int n_splits, int max_ctx);

/* Tensor-core flash attention for prefill (cuda_fattn.cu): block = (query head, tile of <= 64
 * tokens tile_start..tile_start+count-1 of the step, all of one sequence, any positions). q and out
 * are the step's whole [n_tokens, n_head*head_dim] arrays (16-byte aligned); pos/seq/tables as in
 * cu_attn_args. head_dim 64 or 128 (cu_fattn_supported), device code sm_80+. */
#define CU_FATTN_MAX_TILES 96 /* tiles per launch: the lists travel as kernel arguments */
typedef struct cu_fattn_args {
    const float *q;
    const void *kc, *vc;
    const int32_t *pos, *seq, *tables;
    int max_blocks, block_size, window;
    int n_head, n_head_kv, head_dim;
    float *out;
    int n_tiles;
    int tile_start[CU_FATTN_MAX_TILES], tile_count[CU_FATTN_MAX_TILES];
} cu_fattn_args;
bool cu_fattn_supported(int head_dim);
cudaError_t cu_fattn(cudaStream_t st, const cu_fattn_args *a);
cudaError_t cu_swiglu(cudaStream_t st, const float *g, const float *u, size_t n, float *out);
cudaError_t cu_add(cudaStream_t st, float *x, const float *y, size_t n);
cudaError_t cu_add_bias(cudaStream_t st, float *y, const float *bias, int n, int rows);
cudaError_t cu_get_rows(cudaStream_t st, const float *src, const int32_t *rows, int n, int dim,
                        float *dst);
#include "cuda_sample.h"
cudaError_t cu_f32_to_half(cudaStream_t st, const float *x, size_t n, void *dst, int bf16);

/* Opts kernel k into `smem` bytes of dynamic shared memory (a launch over 48 KB needs it), once
 * per kernel and size: the largest so far is remembered (cuda_ops.cu). */
cudaError_t cu_smem_optin(const void *k, size_t smem);

/* The device code of this build that the card runs (cuda_probe.cu): its sm version as 10 * major
 * + minor (binary) and that of its PTX; false (both 0) when it cannot run. */
bool cu_code_version(int *binary, int *ptx);
/* whether the loaded device code was built for sm_90a (wgmma): one probe launch */
bool cu_code_wgmma(void);

/* Programmatic dependent launch (sm_90): every kernel of the backend is launched through
 * cu_launch, which lets the next kernel of the stream start while this one finishes. Each kernel
 * calls pdl_launch() first and pdl_wait() before it touches memory an earlier kernel writes
 * (the GEMV issues its weight loads first). cu_pdl = 0 (env BRISK_CUDA_PDL=0) launches plainly;
 * then both are no-ops. */
#ifdef __CUDACC__
__device__ __forceinline__ void pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
/* The timeline's stamps (its slot fields, TL_*, are in cuda_desc.h). */
__device__ __forceinline__ uint64_t gtime() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
/* the shortest (k, inverted) and longest (k + 1) time since t0 over the blocks, from thread 0 */
__device__ __forceinline__ void tl_span(unsigned long long *tl, int k, uint64_t t0) {
    if (!tl || threadIdx.x != 0) return;
    const unsigned long long dt = gtime() - t0;
    atomicMax(tl + k, ~dt);
    atomicMax(tl + k + 1, dt);
}
/* stamps k (and k + 1 with first_last: earliest, latest) when tl is set, from thread 0 */
__device__ __forceinline__ void tl_mark(unsigned long long *tl, int k, bool first_last) {
    if (!tl || threadIdx.x != 0) return;
    const unsigned long long t = gtime();
    if (first_last) {
        atomicMax(tl + k, ~t);
        atomicMax(tl + k + 1, t);
    } else {
        atomicMax(tl + k, t);
    }
}
#endif
/* the next timeline slot of this step for a launch of `kind` (a short label), NULL when off */
unsigned long long *cu_tl_take(const char *kind);
void cu_tl_init(void);            /* at backend creation: allocates when BRISK_CUDA_TL=1 */
void cu_tl_step(cudaStream_t st); /* at a step's start: slots from 0, cleared */
void cu_tl_dump(void);            /* at destroy: prints the last step */
extern int cu_pdl;
extern int cu_sm90; /* the loaded device code is sm_90+: the cluster and bulk-copy kernels */
/* ... and sm_90a machine code: wgmma (cu_code_wgmma; probed unless BRISK_CUDA_WG=0) */
extern int cu_wgmma_ok;
template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                    cudaStream_t st, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at, cfg.numAttrs = cu_pdl ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, k, args...);
    return e != cudaSuccess ? e : cudaGetLastError();
}

#endif
