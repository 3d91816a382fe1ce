/* synthetic.c: models of real shapes (Llama 3.x, Qwen3, Mistral) with random weights made in
 * memory, in any storage format brisk reads, so speed can be measured without downloads. */
#include "model/model.h"
#include "util/error.h"
#include "util/fp.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

typedef struct shape_row {
    const char *name, *model_type;
    int n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab;
    bool tied;
    double theta;
    double llama3_factor; /* 0 = plain RoPE */
} shape_row;

/* Sizes from the models' own config.json files. */
static const shape_row SHAPES[] = {
    {"llama3.2-1b", "llama", 2048, 8192, 16, 32, 8, 64, 128256, true, 500000, 32},
    {"llama3.2-3b", "llama", 3072, 8192, 28, 24, 8, 128, 128256, true, 500000, 32},
    {"llama3-8b", "llama", 4096, 14336, 32, 32, 8, 128, 128256, false, 500000, 0},
    {"qwen3-0.6b", "qwen3", 1024, 3072, 28, 16, 8, 128, 151936, true, 1000000, 0},
    {"qwen3-4b", "qwen3", 2560, 9728, 36, 32, 8, 128, 151936, true, 1000000, 0},
    {"mistral-7b", "mistral", 4096, 14336, 32, 32, 8, 128, 32768, false, 1000000, 0},
    {"tiny", "llama", 128, 256, 2, 4, 2, 32, 512, false, 10000, 0}, /* tests */
};

const char *brisk_synthetic_shapes(void) {
    return "llama3.2-1b, llama3.2-3b, llama3-8b, qwen3-0.6b, qwen3-4b, mistral-7b, tiny";
}

typedef struct wfmt {
    brisk_wtype type;
    int bits, group_size;
} wfmt;

static int parse_quant(const char *q, wfmt *f) {
    memset(f, 0, sizeof *f);
    if (!strcmp(q, "f32"))
        f->type = BRISK_W_F32;
    else if (!strcmp(q, "f16"))
        f->type = BRISK_W_F16;
    else if (!strcmp(q, "bf16"))
        f->type = BRISK_W_BF16;
    else {
        char tail;
        if (sscanf(q, "q%dg%d%c", &f->bits, &f->group_size, &tail) != 2) return 0;
        if (f->bits < 2 || f->bits > 8 || f->bits == 7) return 0;
        if (f->group_size != 32 && f->group_size != 64 && f->group_size != 128) return 0;
        f->type = BRISK_W_QAFFINE;
    }
    return 1;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Fills n bytes with values that decode to small weights (|w| ~ 0.01-0.03) in format f. */
static void fill(uint8_t *p, size_t n, brisk_wtype t, uint64_t *rng) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = rng_next(rng);
        if (t == BRISK_W_BF16) /* keep sign + 7 mantissa bits, exponent 2^-6 */
            r = (r & 0x807f807f807f807fULL) | 0x3c803c803c803c80ULL;
        else if (t == BRISK_W_F16) /* sign + 10 mantissa bits, exponent 2^-6 */
            r = (r & 0x83ff83ff83ff83ffULL) | 0x2400240024002400ULL;
        else if (t == BRISK_W_F32) /* sign + 23 mantissa bits, exponent 2^-6 */
            r = (r & 0x807fffff807fffffULL) | 0x3c8000003c800000ULL;
        memcpy(p + i, &r, 8);
    }
    for (; i < n; i++) p[i] = 0;
}

static void fill_const16(uint8_t *p, size_t n, uint16_t v) {
    for (size_t i = 0; i + 2 <= n; i += 2) memcpy(p + i, &v, 2);
}

/* Carves a [rows, cols] matrix out of the arena and fills it. */
static void make_matrix(uint8_t **arena, const wfmt *f, int64_t rows, int64_t cols,
                        const char *name, uint64_t *rng, brisk_tensor *t) {
    memset(t, 0, sizeof *t);
    t->type = f->type;
    t->rows = rows;
    t->cols = cols;
    t->name = name;
    const size_t es = f->type == BRISK_W_F32 ? 4 : 2;
    if (f->type != BRISK_W_QAFFINE) {
        const size_t n = (size_t)(rows * cols) * es;
        t->data = *arena;
        fill(*arena, n, f->type, rng);
        *arena += (n + 63) & ~(size_t)63;
        return;
    }
    t->bits = f->bits;
    t->group_size = f->group_size;
    t->stype = BRISK_W_BF16;
    const size_t codes = (size_t)(rows * cols * f->bits / 8),
                 sb = (size_t)(rows * (cols / f->group_size)) * 2;
    t->data = *arena;
    fill(*arena, codes, BRISK_W_QAFFINE, rng);
    *arena += (codes + 63) & ~(size_t)63;
    /* Codes are uniform in [0, 2^bits): w = scale*q + bias spans about [-0.02, 0.02]. */
    const float scale = 0.04f / (float)((1 << f->bits) - 1);
    t->scales = *arena;
    fill_const16(*arena, sb, brisk_f32_to_bf16(scale));
    *arena += (sb + 63) & ~(size_t)63;
    t->biases = *arena;
    fill_const16(*arena, sb, brisk_f32_to_bf16(-0.02f));
    *arena += (sb + 63) & ~(size_t)63;
}

static size_t matrix_bytes(const wfmt *f, int64_t rows, int64_t cols) {
    if (f->type != BRISK_W_QAFFINE) {
        size_t n = (size_t)(rows * cols) * (f->type == BRISK_W_F32 ? 4 : 2);
        return (n + 63) & ~(size_t)63;
    }
    const size_t codes = (size_t)(rows * cols * f->bits / 8),
                 sb = (size_t)(rows * (cols / f->group_size)) * 2;
    return ((codes + 63) & ~(size_t)63) + 2 * ((sb + 63) & ~(size_t)63);
}

brisk_status brisk_model_create_synthetic(const char *shape, const char *quant,
                                          const brisk_model_params *params, brisk_model **out) {
    if (!out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_model_create_synthetic: out is NULL");
    *out = NULL;
    const shape_row *row = NULL;
    for (size_t i = 0; shape && i < BRISK_ARRAY_LEN(SHAPES); i++)
        if (!strcmp(SHAPES[i].name, shape)) row = &SHAPES[i];
    if (!row)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_model_create_synthetic: unknown shape '%s' (known: %s)",
                            shape ? shape : "(null)", brisk_synthetic_shapes());
    wfmt f;
    if (!quant || !parse_quant(quant, &f))
        return brisk_errorf(
            BRISK_ERR_INVALID_ARG,
            "brisk_model_create_synthetic: unknown weight format '%s' (use f32, f16, "
            "bf16 or q<bits>g<group>, bits 2-6 or 8, group 32/64/128, e.g. q4g64)",
            quant ? quant : "(null)");
    brisk_model_params p = params ? *params : brisk_model_default_params();
    brisk_model *m = calloc(1, sizeof *m);
    if (!m) return brisk_errorf(BRISK_ERR_OOM, "brisk_model_create_synthetic: out of memory");
    m->backend = p.backend;
    m->n_threads = p.n_threads;
    brisk_config *c = &m->cfg;
    c->arch = brisk_arch_find(row->model_type);
    c->n_embd = row->n_embd;
    c->n_ff = row->n_ff;
    c->n_layer = row->n_layer;
    c->n_head = row->n_head;
    c->n_head_kv = row->n_head_kv;
    c->head_dim = row->head_dim;
    c->n_vocab = row->n_vocab;
    c->max_position = 131072;
    c->norm_eps = 1e-5f;
    c->bos_id = 1;
    c->rope.theta = row->theta;
    c->rope.factor = 1;
    if (row->llama3_factor > 0)
        c->rope =
            (brisk_rope_config){BRISK_ROPE_LLAMA3, row->theta, row->llama3_factor, 1, 4, 8192};
    const int64_t D = c->n_embd, F = c->n_ff, Q = (int64_t)c->n_head * c->head_dim,
                  KV = (int64_t)c->n_head_kv * c->head_dim;
    size_t total = matrix_bytes(&f, c->n_vocab, D) * (row->tied ? 1 : 2);
    total += (size_t)c->n_layer *
             (matrix_bytes(&f, Q, D) + 2 * matrix_bytes(&f, KV, D) + matrix_bytes(&f, D, Q) +
              2 * matrix_bytes(&f, F, D) + matrix_bytes(&f, D, F));
    brisk_weights *w = &m->w;
    /* 2 MB pages where the kernel gives them (transparent huge pages on madvise): a decode
     * streams every weight once per token, and on 4 KB pages the TLB walks cost the 4-bit matvec
     * ~8-10% (bench/qmm_bench, this VM). The bandwidth probe (util/membw.c) asks for the same. */
    const size_t huge = (size_t)2 << 20;
    total = (total + huge - 1) / huge * huge;
    m->synthetic = aligned_alloc(huge, total);
#ifdef MADV_HUGEPAGE
    if (m->synthetic) (void)madvise(m->synthetic, total, MADV_HUGEPAGE); /* a hint: may fail */
#endif
    w->layers = calloc((size_t)c->n_layer, sizeof *w->layers);
    w->small = calloc(brisk_weights_small_cap(c), sizeof *w->small);
    if (!m->synthetic || !w->layers || !w->small) {
        brisk_model_free(m);
        return brisk_errorf(BRISK_ERR_OOM,
                            "brisk_model_create_synthetic: cannot allocate %.2f GB for %s %s",
                            total / 1e9, shape, quant);
    }
    uint8_t *arena = m->synthetic;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    /* Vectors: norms are 1, biases and head norms absent (they do not change bandwidth). */
    float *v = w->small;
    make_matrix(&arena, &f, c->n_vocab, D, "model.embed_tokens.weight", &rng, &w->tok_embd);
    for (int l = 0; l < c->n_layer; l++) {
        brisk_layer_weights *L = &w->layers[l];
        L->attn_norm = v;
        v += D;
        L->ffn_norm = v;
        v += D;
        if (c->arch->qk_norm) {
            L->q_norm = v;
            v += c->head_dim;
            L->k_norm = v;
            v += c->head_dim;
        }
        make_matrix(&arena, &f, Q, D, "q_proj", &rng, &L->wq);
        make_matrix(&arena, &f, KV, D, "k_proj", &rng, &L->wk);
        make_matrix(&arena, &f, KV, D, "v_proj", &rng, &L->wv);
        make_matrix(&arena, &f, D, Q, "o_proj", &rng, &L->wo);
        make_matrix(&arena, &f, F, D, "gate_proj", &rng, &L->w_gate);
        make_matrix(&arena, &f, F, D, "up_proj", &rng, &L->w_up);
        make_matrix(&arena, &f, D, F, "down_proj", &rng, &L->w_down);
    }
    w->out_norm = v;
    v += D;
    for (float *x = w->small; x < v; x++) *x = 1.0f;
    w->n_small = (size_t)(v - w->small);
    w->tied = row->tied;
    if (!row->tied) make_matrix(&arena, &f, c->n_vocab, D, "lm_head.weight", &rng, &w->output);
    brisk_status st = brisk_weights_finish(c, w);
    if (st != BRISK_OK) {
        brisk_model_free(m);
        return st;
    }
    for (int i = 0; i < w->n_all; i++) {
        w->n_params += (uint64_t)(w->all[i]->rows * w->all[i]->cols);
        w->bytes += brisk_tensor_bytes(w->all[i]);
    }
    w->bytes += w->n_small * sizeof(float);
    *out = m;
    return BRISK_OK;
}
