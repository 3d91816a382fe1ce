/* config.h: a model's hyper-parameters read from config.json (+ generation_config.json) and the
 * architecture traits of its family: one table row per family, no per-model switches elsewhere. */
#ifndef BRISK_MODEL_CONFIG_H
#define BRISK_MODEL_CONFIG_H

#include "brisk.h"

#include <stdbool.h>
#include <stdint.h>

/* What differs between the supported families (one row each in arch.c). */
typedef struct brisk_arch {
    const char *model_type;
    bool qkv_bias; /* q/k/v projections carry a bias (Qwen2) */
    bool qk_norm;  /* RMSNorm over head_dim on q and k before RoPE (Qwen3) */
    bool sliding;  /* honours config sliding_window (Mistral) */
    float eps_default;
} brisk_arch;

typedef enum brisk_rope_type {
    BRISK_ROPE_DEFAULT = 0,
    BRISK_ROPE_LINEAR,
    BRISK_ROPE_LLAMA3,
} brisk_rope_type;

typedef struct brisk_rope_config {
    brisk_rope_type type;
    double theta;
    double factor;           /* linear, llama3 */
    double low_freq_factor;  /* llama3 */
    double high_freq_factor; /* llama3 */
    double original_max_pos; /* llama3 */
} brisk_rope_config;

/* One per-layer entry of MLX's "quantization" dict. */
typedef struct brisk_quant_override {
    char *path; /* module path without ".weight" */
    bool disabled;
    int bits, group_size;
} brisk_quant_override;

typedef struct brisk_quant_config {
    bool present; /* config has "quantization" (MLX affine) */
    int bits, group_size;
    brisk_quant_override *overrides;
    int n_overrides;
} brisk_quant_config;

#define BRISK_MAX_EOS 16

typedef struct brisk_config {
    const brisk_arch *arch;
    int n_embd;         /* hidden_size */
    int n_ff;           /* intermediate_size */
    int n_layer;        /* num_hidden_layers */
    int n_head;         /* num_attention_heads */
    int n_head_kv;      /* num_key_value_heads */
    int head_dim;       /* head_dim, else hidden/heads */
    int n_vocab;        /* vocab_size */
    int max_position;   /* max_position_embeddings */
    int sliding_window; /* 0 = none */
    float norm_eps;
    bool tie_word_embeddings; /* the flag as written; the tensors decide (weights.c) */
    bool has_tie_flag;
    brisk_rope_config rope;
    brisk_quant_config quant;
    int bos_id; /* -1 = none */
    int n_eos;
    int32_t eos_ids[BRISK_MAX_EOS];
} brisk_config;

/* The traits row of a model_type, or NULL when unsupported. */
const brisk_arch *brisk_arch_find(const char *model_type);

/* Reads DIR/config.json (and DIR/generation_config.json for eos ids when present). */
brisk_status brisk_config_load(const char *dir, brisk_config *cfg);
/* Parses config.json text; `fname` labels errors. Used by load and by the fuzz target. */
brisk_status brisk_config_parse(const char *json, size_t len, const char *fname, brisk_config *cfg);
void brisk_config_free(brisk_config *cfg);

/* The per-layer quantization entry for a module path, or NULL. */
const brisk_quant_override *brisk_config_quant_override(const brisk_config *cfg, const char *path);

/* RoPE inverse frequencies, head_dim/2 floats, computed in float32 as transformers does. */
void brisk_rope_inv_freq(const brisk_rope_config *rope, int head_dim, float *inv_freq);

#endif
