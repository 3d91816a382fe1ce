/* weights.c: binds tensors by their transformers/mlx-lm names, resolves MLX quantization per
 * module (config override, else presence of .scales), and checks every shape against the config. */
#include "model/weights.h"
#include "util/error.h"
#include "util/fp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct binder {
    const brisk_config *cfg;
    const brisk_st_set *st;
    unsigned char *used; /* per tensor of the set */
    float *small;        /* f32 vectors, bump-allocated */
    size_t small_len, small_cap;
    uint64_t n_params, bytes;
} binder;

static const brisk_st_tensor *take(binder *b, const char *name) {
    const brisk_st_tensor *t = brisk_st_find(b->st, name);
    if (t) b->used[t - brisk_st_at(b->st, 0)] = 1;
    return t;
}

static const char *file_of(const binder *b, const brisk_st_tensor *t) {
    return brisk_st_file_path(b->st, t->file);
}

static int float_type(brisk_dtype dt, brisk_wtype *out) {
    switch (dt) {
    case BRISK_DT_F32:
        *out = BRISK_W_F32;
        return 1;
    case BRISK_DT_F16:
        *out = BRISK_W_F16;
        return 1;
    case BRISK_DT_BF16:
        *out = BRISK_W_BF16;
        return 1;
    default:
        return 0;
    }
}

static void shape_str(const brisk_st_tensor *t, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static brisk_status check_2d(binder *b, const brisk_st_tensor *t, int64_t rows, int64_t cols,
                             const char *why) {
    if (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols) return BRISK_OK;
    char got[128];
    shape_str(t, got, sizeof got);
    return brisk_errorf(BRISK_ERR_FORMAT,
                        "brisk_model_load: %s: tensor '%s' has shape %s but the config implies "
                        "[%lld, %lld]%s",
                        file_of(b, t), t->name, got, (long long)rows, (long long)cols, why);
}

/* Binds module `path` (".weight" + MLX ".scales"/".biases") as a [rows, cols] matrix. */
static brisk_status bind_matrix(binder *b, const char *path, int64_t rows, int64_t cols,
                                brisk_tensor *out) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", path);
    const brisk_st_tensor *t = take(b, name);
    if (!t)
        return brisk_errorf(BRISK_ERR_NOT_FOUND, "brisk_model_load: tensor '%s' is missing", name);
    snprintf(name, sizeof name, "%s.scales", path);
    const brisk_st_tensor *ts = take(b, name);
    snprintf(name, sizeof name, "%s.biases", path);
    const brisk_st_tensor *tb = take(b, name);
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->rows = rows;
    out->cols = cols;
    out->data = t->data;
    const brisk_quant_override *ov = brisk_config_quant_override(b->cfg, path);
    if (float_type(t->dtype, &out->type)) {
        if (ts)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_model_load: %s: tensor '%s' is %s but '%s.scales' exists "
                                "(quantized weights are stored as U32)",
                                file_of(b, t), t->name, brisk_dtype_name(t->dtype), path);
        if (ov && !ov->disabled)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_model_load: %s: config quantizes '%s' but tensor '%s' is %s",
                                file_of(b, t), path, t->name, brisk_dtype_name(t->dtype));
        brisk_status st = check_2d(b, t, rows, cols, "");
        if (st != BRISK_OK) return st;
    } else if (t->dtype == BRISK_DT_U32) {
        if (!b->cfg->quant.present)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_model_load: %s: tensor '%s' is U32 (quantized) but "
                                "config.json has no 'quantization'",
                                file_of(b, t), t->name);
        if (ov && ov->disabled)
            return brisk_errorf(
                BRISK_ERR_FORMAT,
                "brisk_model_load: %s: tensor '%s' is U32 but config says '%s': false "
                "(not quantized)",
                file_of(b, t), t->name, path);
        if (!ts || !tb)
            return brisk_errorf(BRISK_ERR_NOT_FOUND,
                                "brisk_model_load: %s: quantized tensor '%s' needs '%s.%s' (MLX "
                                "affine mode)",
                                file_of(b, t), t->name, path, ts ? "biases" : "scales");
        out->type = BRISK_W_QAFFINE;
        out->bits = ov ? ov->bits : b->cfg->quant.bits;
        out->group_size = ov ? ov->group_size : b->cfg->quant.group_size;
        if (!float_type(ts->dtype, &out->stype) || tb->dtype != ts->dtype)
            return brisk_errorf(
                BRISK_ERR_UNSUPPORTED,
                "brisk_model_load: %s: '%s' is %s and '%s' is %s; scales and biases "
                "must share one float dtype (F32, F16, BF16)",
                file_of(b, ts), ts->name, brisk_dtype_name(ts->dtype), tb->name,
                brisk_dtype_name(tb->dtype));
        if ((cols * out->bits) % 32 || cols % out->group_size)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_model_load: %s: '%s': %lld input features cannot be packed "
                                "at %d bits with group size %d",
                                file_of(b, t), t->name, (long long)cols, out->bits,
                                out->group_size);
        char why[96];
        snprintf(why, sizeof why, " (%d-bit, group size %d)", out->bits, out->group_size);
        brisk_status st = check_2d(b, t, rows, cols * out->bits / 32, why);
        if (st == BRISK_OK) st = check_2d(b, ts, rows, cols / out->group_size, why);
        if (st == BRISK_OK) st = check_2d(b, tb, rows, cols / out->group_size, why);
        if (st != BRISK_OK) return st;
        out->scales = ts->data;
        out->biases = tb->data;
    } else {
        return brisk_errorf(
            BRISK_ERR_UNSUPPORTED,
            "brisk_model_load: %s: tensor '%s' has dtype %s, which is not supported "
            "for weights (supported: F32, F16, BF16, U32 MLX-quantized)",
            file_of(b, t), t->name, brisk_dtype_name(t->dtype));
    }
    b->n_params += (uint64_t)(rows * cols);
    b->bytes += brisk_tensor_bytes(out);
    return BRISK_OK;
}

/* Binds a float vector [n] and converts it to f32 in the binder's buffer. Optional when
 * `required` is false (returns with *out NULL when absent). */
static brisk_status bind_vector(binder *b, const char *name, int64_t n, bool required,
                                float **out) {
    *out = NULL;
    const brisk_st_tensor *t = take(b, name);
    if (!t) {
        if (!required) return BRISK_OK;
        return brisk_errorf(BRISK_ERR_NOT_FOUND, "brisk_model_load: tensor '%s' is missing", name);
    }
    brisk_wtype wt;
    if (!float_type(t->dtype, &wt))
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_model_load: %s: tensor '%s' has dtype %s; expected F32, F16 or "
                            "BF16",
                            file_of(b, t), t->name, brisk_dtype_name(t->dtype));
    if (t->ndim != 1 || t->shape[0] != n) {
        char got[128];
        shape_str(t, got, sizeof got);
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_model_load: %s: tensor '%s' has shape %s but the config implies "
                            "[%lld]",
                            file_of(b, t), t->name, got, (long long)n);
    }
    BRISK_ASSERT(b->small_len + (size_t)n <= b->small_cap);
    float *v = b->small + b->small_len;
    b->small_len += (size_t)n;
    for (int64_t i = 0; i < n; i++) {
        uint16_t u16;
        switch (wt) {
        case BRISK_W_F32:
            memcpy(&v[i], t->data + 4 * i, 4);
            break;
        case BRISK_W_F16:
            memcpy(&u16, t->data + 2 * i, 2);
            v[i] = brisk_f16_to_f32(u16);
            break;
        default:
            memcpy(&u16, t->data + 2 * i, 2);
            v[i] = brisk_bf16_to_f32(u16);
            break;
        }
    }
    *out = v;
    b->n_params += (uint64_t)n;
    b->bytes += t->nbytes;
    return BRISK_OK;
}

static brisk_status bind_layer(binder *b, int l, brisk_layer_weights *L) {
    const brisk_config *c = b->cfg;
    const int64_t D = c->n_embd, F = c->n_ff, Q = (int64_t)c->n_head * c->head_dim,
                  KV = (int64_t)c->n_head_kv * c->head_dim;
    char p[256], n[300];
    brisk_status st;
#define MAT(field, suffix, rows, cols)                                                             \
    snprintf(p, sizeof p, "model.layers.%d.%s", l, suffix);                                        \
    if ((st = bind_matrix(b, p, rows, cols, &L->field)) != BRISK_OK) return st;
#define VEC(field, suffix, len, req)                                                               \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                        \
    if ((st = bind_vector(b, n, len, req, &L->field)) != BRISK_OK) return st;
    VEC(attn_norm, "input_layernorm.weight", D, true);
    VEC(ffn_norm, "post_attention_layernorm.weight", D, true);
    MAT(wq, "self_attn.q_proj", Q, D);
    MAT(wk, "self_attn.k_proj", KV, D);
    MAT(wv, "self_attn.v_proj", KV, D);
    MAT(wo, "self_attn.o_proj", D, Q);
    MAT(w_gate, "mlp.gate_proj", F, D);
    MAT(w_up, "mlp.up_proj", F, D);
    MAT(w_down, "mlp.down_proj", D, F);
    const bool bias = c->arch->qkv_bias, qk = c->arch->qk_norm;
    VEC(bq, "self_attn.q_proj.bias", Q, bias);
    VEC(bk, "self_attn.k_proj.bias", KV, bias);
    VEC(bv, "self_attn.v_proj.bias", KV, bias);
    VEC(q_norm, "self_attn.q_norm.weight", c->head_dim, qk);
    VEC(k_norm, "self_attn.k_norm.weight", c->head_dim, qk);
#undef MAT
#undef VEC
    /* Llama checkpoints with attention_bias carry all three; accept what the file has but
     * reject a lone o_proj bias we would silently drop. */
    snprintf(n, sizeof n, "model.layers.%d.self_attn.o_proj.bias", l);
    if (brisk_st_find(b->st, n))
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_model_load: tensor '%s': an o_proj bias is not supported", n);
    return BRISK_OK;
}

brisk_status brisk_weights_bind(const brisk_config *cfg, const brisk_st_set *st, brisk_weights *w) {
    memset(w, 0, sizeof *w);
    binder b = {.cfg = cfg, .st = st};
    const int nt = brisk_st_count(st);
    b.used = calloc((size_t)nt + 1, 1);
    b.small_cap = brisk_weights_small_cap(cfg);
    b.small = malloc(b.small_cap * sizeof *b.small);
    w->layers = calloc((size_t)cfg->n_layer, sizeof *w->layers);
    brisk_status s = BRISK_OK;
    if (!b.used || !b.small || !w->layers) {
        s = brisk_errorf(BRISK_ERR_OOM, "brisk_model_load: out of memory for weight tables");
        goto done;
    }
    w->small = b.small;
    if ((s = bind_matrix(&b, "model.embed_tokens", cfg->n_vocab, cfg->n_embd, &w->tok_embd)))
        goto done;
    for (int l = 0; l < cfg->n_layer; l++)
        if ((s = bind_layer(&b, l, &w->layers[l]))) goto done;
    if ((s = bind_vector(&b, "model.norm.weight", cfg->n_embd, true, &w->out_norm))) goto done;
    /* Tied iff lm_head.weight is absent (HF omits it when tied; mlx-lm drops it). */
    if (brisk_st_find(st, "lm_head.weight")) {
        if ((s = bind_matrix(&b, "lm_head", cfg->n_vocab, cfg->n_embd, &w->output))) goto done;
    } else {
        w->tied = true;
        w->output = w->tok_embd;
    }
    /* Anything left over means the config and the file disagree (e.g. more layers stored). */
    for (int i = 0; i < nt; i++) {
        const brisk_st_tensor *t = brisk_st_at(st, i);
        if (b.used[i] || strstr(t->name, "rotary_emb.inv_freq")) continue;
        s = brisk_errorf(BRISK_ERR_FORMAT,
                         "brisk_model_load: %s: unexpected tensor '%s' (the config describes %d "
                         "layers of model_type '%s')",
                         brisk_st_file_path(st, t->file), t->name, cfg->n_layer,
                         cfg->arch->model_type);
        goto done;
    }
    w->n_small = b.small_len;
    if ((s = brisk_weights_finish(cfg, w)) != BRISK_OK) goto done;
    w->n_params = b.n_params;
    w->bytes = b.bytes;
done:
    free(b.used);
    if (s != BRISK_OK) brisk_weights_free(w);
    return s;
}

size_t brisk_weights_small_cap(const brisk_config *cfg) {
    /* Per layer: 2 norms + q/k/v biases + 2 head norms; then the final norm and the RoPE table. */
    return (size_t)cfg->n_layer *
               (2 * (size_t)cfg->n_embd +
                ((size_t)cfg->n_head + 2 * (size_t)cfg->n_head_kv) * cfg->head_dim +
                2 * (size_t)cfg->head_dim) +
           (size_t)cfg->n_embd + (size_t)cfg->head_dim / 2;
}

brisk_status brisk_weights_finish(const brisk_config *cfg, brisk_weights *w) {
    /* RoPE table lives with the other vectors so a device backend copies one buffer. */
    BRISK_ASSERT(w->n_small + (size_t)cfg->head_dim / 2 <= brisk_weights_small_cap(cfg));
    w->inv_freq = w->small + w->n_small;
    w->n_small += (size_t)cfg->head_dim / 2;
    brisk_rope_inv_freq(&cfg->rope, cfg->head_dim, w->inv_freq);
    /* The matrix list a backend is created with; ids index it. */
    w->all = calloc((size_t)cfg->n_layer * 7 + 2, sizeof *w->all);
    if (!w->all)
        return brisk_errorf(BRISK_ERR_OOM, "brisk_model_load: out of memory for weight tables");
    w->n_all = 0;
    w->tok_embd.id = w->n_all;
    w->all[w->n_all++] = &w->tok_embd;
    for (int l = 0; l < cfg->n_layer; l++) {
        brisk_layer_weights *L = &w->layers[l];
        brisk_tensor *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t k = 0; k < BRISK_ARRAY_LEN(mats); k++) {
            mats[k]->id = w->n_all;
            w->all[w->n_all++] = mats[k];
        }
    }
    if (w->tied) {
        w->output = w->tok_embd;
    } else {
        w->output.id = w->n_all;
        w->all[w->n_all++] = &w->output;
    }
    return BRISK_OK;
}

void brisk_weights_free(brisk_weights *w) {
    free(w->all);
    free(w->layers);
    free(w->small);
    memset(w, 0, sizeof *w);
}
