/* model.h: the loaded model (config + mapped weights + RoPE table) and the one forward pass.
 * forward.c composes backend ops; it never includes a CUDA header. */
#ifndef BRISK_MODEL_MODEL_H
#define BRISK_MODEL_MODEL_H

#include "backend/backend.h"
#include "format/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

struct brisk_model {
    brisk_config cfg;
    brisk_st_set *st; /* owns the mappings the weights point into */
    brisk_weights w;
    void *synthetic; /* weight memory of a synthetic model (brisk_model_create_synthetic) */
    brisk_backend_kind backend;
    int n_threads;
};

/* Activation scratch for up to max_tokens tokens per step, planned once per context, in the
 * backend's memory. */
#define BRISK_LOGIT_ROWS     16  /* output-projection rows per chunk, at least ... */
#define BRISK_LOGIT_ROWS_MAX 256 /* ... and at most (bounds the logits scratch) */
typedef struct brisk_fwd_scratch {
    int max_tokens;
    int logit_rows; /* output rows per chunk: a decode step of every sequence is one chunk (one
                       output projection, one end_step) up to BRISK_LOGIT_ROWS_MAX sequences */
    float *logits;  /* [logit_rows, n_vocab] */
    float *x;       /* [T, n_embd] residual stream */
    float *xb;      /* [T, n_embd] normed input / gathered output rows */
    float *q;       /* [T, n_head*head_dim] */
    float *k;       /* [T, n_head_kv*head_dim] */
    float *v;       /* [T, n_head_kv*head_dim] */
    float *att;     /* [T, n_head*head_dim] attention output */
    float *proj;    /* [T, n_embd] o_proj / down_proj output */
    float *gate;    /* [T, n_ff] */
    float *up;      /* [T, n_ff] */
} brisk_fwd_scratch;

brisk_status brisk_fwd_scratch_create(brisk_backend *be, const brisk_config *cfg, int max_tokens,
                                      int n_seqs, brisk_fwd_scratch *s);
void brisk_fwd_scratch_free(brisk_backend *be, brisk_fwd_scratch *s);

/* One forward step over a batch of tokens (several sequences may share it). k/v of every token
 * go into the per-layer caches first, then each token attends over its sequence (b->attn). The
 * rows listed in out_rows get logits, written contiguously to host logits[n_out, n_vocab]. */
typedef struct brisk_fwd_batch {
    const int32_t *tokens; /* [n_tokens]; NULL: the previous step's chosen ids (begin_step) */
    brisk_attn_batch attn; /* n_tokens, positions, sequences, slots, block tables */
    int n_out;
    const int32_t *out_rows; /* [n_out] indices into tokens */
    /* When not NULL: the greedy token and its log-probability of each output row instead of its
     * logits (on the device when the backend can; else from logits, which must then be a host
     * buffer of the scratch's logit_rows rows). */
    int32_t *greedy_ids;
    float *greedy_lp;
    /* With greedy_ids, when not NULL (only for a backend that has end_step_sample): each output
     * row's token is drawn by the chain sample[i] with the uniform sample_u[i] instead. */
    const brisk_sample_params *sample;
    const double *sample_u;
    /* With greedy_ids and a backend that has end_step_launch: the step ends queued (one chunk of
     * output rows at most), its ids left for step_collect; greedy_ids is then not written. */
    bool launch;
} brisk_fwd_batch;

/* Greedy token of one row of logits (the first maximum) and its log-probability; an error on NaN.
 */
brisk_status brisk_greedy_row(const float *logits, int V, int32_t *id, float *lp);

brisk_status brisk_forward(const brisk_model *m, brisk_backend *be, brisk_fwd_scratch *s,
                           void *const *kcache, void *const *vcache, const brisk_fwd_batch *b,
                           int max_blocks_per_seq, int n_seqs, float *logits);

#endif
