/* arch.c: config.json -> brisk_config, with one traits row per supported family, and the RoPE
 * frequency tables (default, linear, llama3) computed exactly as transformers computes them. */
#include "model/config.h"
#include "util/error.h"
#include "util/fsutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One row per family. Mistral is Llama with an optional sliding window; Qwen2 adds q/k/v bias;
 * Qwen3 adds per-head q/k RMSNorm and an explicit head_dim. */
static const brisk_arch ARCHS[] = {
    {"llama", false, false, false, 1e-6f},
    {"mistral", false, false, true, 1e-6f},
    {"qwen2", true, false, false, 1e-6f},
    {"qwen3", false, true, false, 1e-6f},
};

const brisk_arch *brisk_arch_find(const char *model_type) {
    for (size_t i = 0; i < BRISK_ARRAY_LEN(ARCHS); i++)
        if (!strcmp(ARCHS[i].model_type, model_type)) return &ARCHS[i];
    return NULL;
}

static const int LIMIT_DIM = 1 << 20; /* sanity bound on every size, far above real models */

typedef struct {
    const char *fname;
    brisk_status st;
} parse_ctx;

/* Reads an optional integer field; absent or null keeps *out. */
static int get_int(parse_ctx *pc, const cJSON *o, const char *key, int *out, int lo, int hi) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo ||
        j->valuedouble > hi) {
        pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_config_load: %s: '%s' must be an integer in [%d, %d]",
                              pc->fname, key, lo, hi);
        return -1;
    }
    *out = (int)j->valuedouble;
    return 1;
}

static int get_num(parse_ctx *pc, const cJSON *o, const char *key, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
        pc->st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: '%s' must be a number",
                              pc->fname, key);
        return -1;
    }
    *out = j->valuedouble;
    return 1;
}

/* Appends the eos ids of `j` (an int or a list of ints) to cfg, skipping duplicates. */
static brisk_status add_eos(parse_ctx *pc, brisk_config *cfg, const cJSON *j, const char *fname) {
    if (!j || cJSON_IsNull(j)) return BRISK_OK;
    const cJSON *items = j;
    int single = cJSON_IsNumber(j);
    if (!single && !cJSON_IsArray(j))
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: 'eos_token_id' must be an integer or "
                                     "a list of integers",
                                     fname);
    for (const cJSON *e = single ? items : items->child; e; e = single ? NULL : e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 ||
            e->valuedouble != floor(e->valuedouble))
            return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                         "brisk_config_load: %s: 'eos_token_id' holds a value that "
                                         "is not a token id",
                                         fname);
        int id = (int)e->valuedouble, dup = 0;
        for (int i = 0; i < cfg->n_eos; i++) dup |= cfg->eos_ids[i] == id;
        if (dup) continue;
        if (cfg->n_eos == BRISK_MAX_EOS)
            return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                         "brisk_config_load: %s: more than %d eos ids", fname,
                                         BRISK_MAX_EOS);
        cfg->eos_ids[cfg->n_eos++] = id;
    }
    return BRISK_OK;
}

static brisk_status parse_rope(parse_ctx *pc, const cJSON *root, brisk_config *cfg) {
    brisk_rope_config *r = &cfg->rope;
    r->type = BRISK_ROPE_DEFAULT;
    r->theta = 10000.0;
    r->factor = 1.0;
    /* transformers v5 nests everything (theta included) in rope_parameters; v4 writes rope_theta
     * beside rope_scaling; very old files say "type" instead of "rope_type". */
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (get_num(pc, root, "rope_theta", &r->theta) < 0) return pc->st;
    const cJSON *s = NULL;
    if (cJSON_IsObject(params)) {
        if (get_num(pc, params, "rope_theta", &r->theta) < 0) return pc->st;
        s = params;
    } else if (params && !cJSON_IsNull(params)) {
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: 'rope_parameters' must be an object",
                                     pc->fname);
    }
    if (cJSON_IsObject(scaling))
        s = scaling;
    else if (scaling && !cJSON_IsNull(scaling))
        return pc->st = brisk_errorf(
                   BRISK_ERR_FORMAT,
                   "brisk_config_load: %s: 'rope_scaling' must be an object or null", pc->fname);
    if (!(r->theta > 0))
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: rope_theta must be > 0", pc->fname);
    if (!s) return BRISK_OK;
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(s, "rope_type");
    if (!cJSON_IsString(jt)) jt = cJSON_GetObjectItemCaseSensitive(s, "type");
    const char *type = cJSON_IsString(jt) ? jt->valuestring : "default";
    if (!strcmp(type, "default")) return BRISK_OK;
    if (get_num(pc, s, "factor", &r->factor) < 0) return pc->st;
    if (!strcmp(type, "linear")) {
        r->type = BRISK_ROPE_LINEAR;
    } else if (!strcmp(type, "llama3")) {
        r->type = BRISK_ROPE_LLAMA3;
        r->low_freq_factor = 1.0;
        r->high_freq_factor = 4.0;
        r->original_max_pos = 8192;
        if (get_num(pc, s, "low_freq_factor", &r->low_freq_factor) < 0 ||
            get_num(pc, s, "high_freq_factor", &r->high_freq_factor) < 0 ||
            get_num(pc, s, "original_max_position_embeddings", &r->original_max_pos) < 0)
            return pc->st;
        if (!(r->high_freq_factor > r->low_freq_factor) || !(r->low_freq_factor > 0) ||
            !(r->original_max_pos > 0))
            return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                         "brisk_config_load: %s: llama3 rope_scaling needs "
                                         "high_freq_factor > low_freq_factor > 0 and "
                                         "original_max_position_embeddings > 0",
                                         pc->fname);
    } else {
        return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                     "brisk_config_load: %s: rope type '%s' is not supported "
                                     "(supported: default, linear, llama3)",
                                     pc->fname, type);
    }
    if (!(r->factor > 0))
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: rope scaling factor must be > 0",
                                     pc->fname);
    return BRISK_OK;
}

static int valid_bits(int b) {
    return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8;
}
static int valid_gs(int g) {
    return g == 32 || g == 64 || g == 128;
}

/* Reads bits/group_size/mode of one quantization dict (global or per layer). */
static brisk_status parse_qparams(parse_ctx *pc, const cJSON *o, const char *where, int *bits,
                                  int *gs) {
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
    if (mode && !(cJSON_IsString(mode) && !strcmp(mode->valuestring, "affine")))
        return pc->st =
                   brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                "brisk_config_load: %s: quantization mode '%s' of %s is not "
                                "supported (supported: affine)",
                                pc->fname, cJSON_IsString(mode) ? mode->valuestring : "?", where);
    if (get_int(pc, o, "bits", bits, 0, 64) < 0 || get_int(pc, o, "group_size", gs, 0, 1 << 20) < 0)
        return pc->st;
    if (!valid_bits(*bits))
        return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                     "brisk_config_load: %s: %s: %d-bit quantization is not "
                                     "supported (allowed: 2, 3, 4, 5, 6, 8)",
                                     pc->fname, where, *bits);
    if (!valid_gs(*gs))
        return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                     "brisk_config_load: %s: %s: group size %d is not supported "
                                     "(allowed: 32, 64, 128)",
                                     pc->fname, where, *gs);
    return BRISK_OK;
}

static brisk_status parse_quant(parse_ctx *pc, const cJSON *root, brisk_config *cfg) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization");
    if (!q || cJSON_IsNull(q)) {
        const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
        if (cJSON_IsObject(qc) && cJSON_GetObjectItemCaseSensitive(qc, "quant_method")) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
            return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                         "brisk_config_load: %s: quant_method '%s' (Hugging Face "
                                         "quantization) is not supported; convert the model with "
                                         "mlx_lm.convert",
                                         pc->fname, cJSON_IsString(m) ? m->valuestring : "?");
        }
        return BRISK_OK;
    }
    if (!cJSON_IsObject(q))
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: 'quantization' must be an object",
                                     pc->fname);
    brisk_quant_config *qc = &cfg->quant;
    qc->present = true;
    qc->bits = 4;
    qc->group_size = 64;
    if (parse_qparams(pc, q, "quantization", &qc->bits, &qc->group_size) != BRISK_OK) return pc->st;
    int n = 0;
    for (const cJSON *e = q->child; e; e = e->next) n += cJSON_IsObject(e) || cJSON_IsFalse(e);
    qc->overrides = calloc(n ? (size_t)n : 1, sizeof *qc->overrides);
    if (!qc->overrides)
        return pc->st = brisk_errorf(BRISK_ERR_OOM, "brisk_config_load: out of memory");
    for (const cJSON *e = q->child; e; e = e->next) {
        if (!cJSON_IsObject(e) && !cJSON_IsFalse(e)) continue; /* bits, group_size, mode */
        brisk_quant_override *o = &qc->overrides[qc->n_overrides];
        o->path = strdup(e->string ? e->string : "");
        if (!o->path)
            return pc->st = brisk_errorf(BRISK_ERR_OOM, "brisk_config_load: out of memory");
        qc->n_overrides++;
        if (cJSON_IsFalse(e)) {
            o->disabled = true;
            continue;
        }
        /* Fields a per-layer dict omits take the defaults of the affine mode, as mlx does. */
        o->bits = 4;
        o->group_size = 64;
        if (parse_qparams(pc, e, o->path, &o->bits, &o->group_size) != BRISK_OK) return pc->st;
    }
    return BRISK_OK;
}

static brisk_status parse_root(parse_ctx *pc, const cJSON *root, brisk_config *cfg) {
    if (!cJSON_IsObject(root))
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: not a JSON object",
                                     pc->fname);
    /* Multimodal checkpoints nest the language model's settings under text_config. */
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *lm =
        cJSON_IsObject(text) && cJSON_GetObjectItemCaseSensitive(text, "hidden_size") ? text : root;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(lm, "model_type");
    if (!cJSON_IsString(mt)) mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return pc->st =
                   brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_config_load: %s: missing string 'model_type'", pc->fname);
    cfg->arch = brisk_arch_find(mt->valuestring);
    if (!cfg->arch) {
        char list[256] = "";
        for (size_t i = 0; i < BRISK_ARRAY_LEN(ARCHS); i++) {
            if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, ARCHS[i].model_type, sizeof list - strlen(list) - 1);
        }
        return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                     "brisk_config_load: %s: model_type '%s' is not supported "
                                     "(supported: %s)",
                                     pc->fname, mt->valuestring, list);
    }
    static const char *const required[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "vocab_size"};
    int *dst[] = {&cfg->n_embd, &cfg->n_ff, &cfg->n_layer, &cfg->n_head, &cfg->n_vocab};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(required); i++) {
        int r = get_int(pc, lm, required[i], dst[i], 1, i == 4 ? (1 << 24) : LIMIT_DIM);
        if (r < 0) return pc->st;
        if (r == 0)
            return pc->st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: missing '%s'",
                                         pc->fname, required[i]);
    }
    cfg->n_head_kv = cfg->n_head;
    if (get_int(pc, lm, "num_key_value_heads", &cfg->n_head_kv, 1, LIMIT_DIM) < 0) return pc->st;
    if (cfg->n_head % cfg->n_head_kv)
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                     "brisk_config_load: %s: num_attention_heads %d is not a "
                                     "multiple of num_key_value_heads %d",
                                     pc->fname, cfg->n_head, cfg->n_head_kv);
    cfg->head_dim = 0;
    if (get_int(pc, lm, "head_dim", &cfg->head_dim, 2, 4096) < 0) return pc->st;
    if (!cfg->head_dim) {
        if (cfg->n_embd % cfg->n_head)
            return pc->st = brisk_errorf(BRISK_ERR_FORMAT,
                                         "brisk_config_load: %s: hidden_size %d is not a multiple "
                                         "of num_attention_heads %d and head_dim is not given",
                                         pc->fname, cfg->n_embd, cfg->n_head);
        cfg->head_dim = cfg->n_embd / cfg->n_head;
    }
    if (cfg->head_dim % 2)
        return pc->st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: head_dim %d is odd",
                                     pc->fname, cfg->head_dim);
    if ((int64_t)cfg->n_head * cfg->head_dim > LIMIT_DIM)
        return pc->st =
                   brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_config_load: %s: heads x head_dim is too large", pc->fname);
    cfg->max_position = 4096;
    if (get_int(pc, lm, "max_position_embeddings", &cfg->max_position, 1, 1 << 24) < 0)
        return pc->st;
    double eps = cfg->arch->eps_default;
    if (get_num(pc, lm, "rms_norm_eps", &eps) < 0) return pc->st;
    if (!(eps > 0 && eps < 1))
        return pc->st =
                   brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_config_load: %s: rms_norm_eps must be in (0, 1)", pc->fname);
    cfg->norm_eps = (float)eps;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(lm, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0)
        return pc->st = brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                     "brisk_config_load: %s: hidden_act '%s' is not supported "
                                     "(supported: silu)",
                                     pc->fname, act->valuestring);
    const cJSON *mlp_bias = cJSON_GetObjectItemCaseSensitive(lm, "mlp_bias");
    if (cJSON_IsTrue(mlp_bias))
        return pc->st =
                   brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                "brisk_config_load: %s: mlp_bias true is not supported", pc->fname);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(lm, "tie_word_embeddings");
    if (!tie) tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    cfg->has_tie_flag = cJSON_IsBool(tie);
    cfg->tie_word_embeddings = cJSON_IsTrue(tie);
    if (cfg->arch->sliding &&
        get_int(pc, lm, "sliding_window", &cfg->sliding_window, 0, 1 << 30) < 0)
        return pc->st;
    cfg->bos_id = -1;
    int has_bos = get_int(pc, lm, "bos_token_id", &cfg->bos_id, 0, 1 << 30);
    if (has_bos < 0) return pc->st;
    if (!has_bos && lm != root && get_int(pc, root, "bos_token_id", &cfg->bos_id, 0, 1 << 30) < 0)
        return pc->st;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(lm, "eos_token_id");
    if (!eos) eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (add_eos(pc, cfg, eos, pc->fname) != BRISK_OK) return pc->st;
    if (parse_rope(pc, lm, cfg) != BRISK_OK) return pc->st;
    return parse_quant(pc, root, cfg);
}

brisk_status brisk_config_parse(const char *json, size_t len, const char *fname,
                                brisk_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    parse_ctx pc = {fname, BRISK_OK};
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: not valid JSON", fname);
    parse_root(&pc, root, cfg);
    cJSON_Delete(root);
    if (pc.st != BRISK_OK) brisk_config_free(cfg);
    return pc.st;
}

brisk_status brisk_config_load(const char *dir, brisk_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char *path = brisk_path_join(dir, "config.json");
    if (!path) return brisk_errorf(BRISK_ERR_OOM, "brisk_config_load: out of memory");
    size_t len;
    char *text = brisk_read_file(path, &len);
    if (!text) {
        brisk_status st =
            brisk_errorf(errno == ENOENT ? BRISK_ERR_NOT_FOUND : BRISK_ERR_IO,
                         "brisk_config_load: %s: cannot read: %s", path, strerror(errno));
        free(path);
        return st;
    }
    brisk_status st = brisk_config_parse(text, len, path, cfg);
    free(text);
    free(path);
    if (st != BRISK_OK) return st;
    /* generation_config.json adds the eos ids generation stops on (Llama 3 Instruct lists
     * <|eot_id|> only there). */
    path = brisk_path_join(dir, "generation_config.json");
    text = path ? brisk_read_file(path, &len) : NULL;
    if (text) {
        cJSON *g = cJSON_ParseWithLength(text, len);
        parse_ctx pc = {path, BRISK_OK};
        if (!cJSON_IsObject(g))
            st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_config_load: %s: not a JSON object", path);
        else
            st = add_eos(&pc, cfg, cJSON_GetObjectItemCaseSensitive(g, "eos_token_id"), path);
        cJSON_Delete(g);
        free(text);
    }
    free(path);
    if (st != BRISK_OK) brisk_config_free(cfg);
    return st;
}

void brisk_config_free(brisk_config *cfg) {
    for (int i = 0; i < cfg->quant.n_overrides; i++) free(cfg->quant.overrides[i].path);
    free(cfg->quant.overrides);
    cfg->quant.overrides = NULL;
    cfg->quant.n_overrides = 0;
}

const brisk_quant_override *brisk_config_quant_override(const brisk_config *cfg, const char *path) {
    for (int i = 0; i < cfg->quant.n_overrides; i++)
        if (!strcmp(cfg->quant.overrides[i].path, path)) return &cfg->quant.overrides[i];
    return NULL;
}

void brisk_rope_inv_freq(const brisk_rope_config *rope, int head_dim, float *inv_freq) {
    const int half = head_dim / 2;
    /* transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32. */
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf((float)rope->theta, e);
    }
    if (rope->type == BRISK_ROPE_LINEAR) {
        for (int i = 0; i < half; i++) inv_freq[i] = inv_freq[i] / (float)rope->factor;
    } else if (rope->type == BRISK_ROPE_LLAMA3) {
        const float factor = (float)rope->factor, lo = (float)rope->low_freq_factor,
                    hi = (float)rope->high_freq_factor, old_ctx = (float)rope->original_max_pos;
        const float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
        for (int i = 0; i < half; i++) {
            float f = inv_freq[i];
            float wavelen = (float)(2.0 * M_PI) / f;
            float scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                float smooth = (old_ctx / wavelen - lo) / (hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            inv_freq[i] = scaled;
        }
    }
}
