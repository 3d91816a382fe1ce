/* weights.h: the model's weights bound by name from the safetensors set, checked against the
 * config (shapes, quantization params), with shape comments on every field. */
#ifndef BRISK_MODEL_WEIGHTS_H
#define BRISK_MODEL_WEIGHTS_H

#include "backend/backend.h"
#include "format/safetensors.h"
#include "model/config.h"

#include <stdbool.h>

typedef struct brisk_layer_weights {
    float *attn_norm;       /* [n_embd] input_layernorm */
    brisk_tensor wq;        /* [n_head*head_dim, n_embd] */
    brisk_tensor wk;        /* [n_head_kv*head_dim, n_embd] */
    brisk_tensor wv;        /* [n_head_kv*head_dim, n_embd] */
    float *bq, *bk, *bv;    /* q/k/v biases (Qwen2) or NULL */
    float *q_norm, *k_norm; /* [head_dim] (Qwen3) or NULL */
    brisk_tensor wo;        /* [n_embd, n_head*head_dim] */
    float *ffn_norm;        /* [n_embd] post_attention_layernorm */
    brisk_tensor w_gate;    /* [n_ff, n_embd] */
    brisk_tensor w_up;      /* [n_ff, n_embd] */
    brisk_tensor w_down;    /* [n_embd, n_ff] */
} brisk_layer_weights;

typedef struct brisk_weights {
    brisk_tensor tok_embd;       /* [n_vocab, n_embd] */
    brisk_layer_weights *layers; /* [n_layer] */
    float *out_norm;             /* [n_embd] */
    brisk_tensor output;         /* [n_vocab, n_embd]; == tok_embd when tied */
    bool tied;
    float *inv_freq; /* [head_dim/2] RoPE inverse frequencies (float32, as HF) */
    float *small;    /* owns every float vector above (norms, biases, inv_freq) */
    size_t n_small;
    const brisk_tensor **all; /* every distinct matrix, all[i]->id == i (backend init) */
    int n_all;
    uint64_t n_params;
    uint64_t bytes;
} brisk_weights;

/* Binds every tensor the config needs; an absent, extra or mis-shaped tensor is an error that
 * names it. Matrices point into the mapping; vectors are converted to f32 copies. */
brisk_status brisk_weights_bind(const brisk_config *cfg, const brisk_st_set *st, brisk_weights *w);
void brisk_weights_free(brisk_weights *w);

/* Floats the vector buffer `small` needs for this config (norms, biases, RoPE table). */
size_t brisk_weights_small_cap(const brisk_config *cfg);
/* Completes bound weights: appends the RoPE table to `small` (n_small grows) and builds the
 * id-indexed matrix list `all`. Used by the file binder and by synthetic models. */
brisk_status brisk_weights_finish(const brisk_config *cfg, brisk_weights *w);

#endif
