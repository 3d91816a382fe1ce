/* ops_ref.c: the scalar reference backend: plain C, float32 activations, double accumulators.
 * It is the oracle for every fast path (tests/ops compares them), so it favours clarity. */
#include "backend/backend.h"
#include "util/error.h"
#include "util/fp.h"
#include "util/membw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_state {
    float *row; /* one dequantized weight row (max cols seen so far) */
    size_t row_cap;
    float *scores; /* attention scores of one (token, head): max_ctx */
    int max_ctx;
} ref_state;

/* ---------------------------------------------------------------------------------------------
 * Reading stored values
 * ------------------------------------------------------------------------------------------- */

static inline float load_scalar(brisk_wtype t, const void *base, int64_t i) {
    const uint8_t *p = base;
    switch (t) {
    case BRISK_W_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case BRISK_W_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return brisk_f16_to_f32(h);
    }
    case BRISK_W_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return brisk_bf16_to_f32(h);
    }
    default:
        return 0.0f;
    }
}

/* Code k of a little-endian bit stream of `bits`-bit values (bits <= 8). */
static inline uint32_t load_code(const uint8_t *row, int64_t k, int bits) {
    int64_t bit = k * bits;
    uint16_t two = 0;
    /* A code spans at most two bytes; never read past the row's last byte. */
    int64_t byte = bit >> 3;
    int64_t last = ((k + 1) * bits - 1) >> 3;
    memcpy(&two, row + byte, (size_t)(last - byte + 1));
    return (uint32_t)(two >> (bit & 7)) & ((1u << bits) - 1u);
}

/* Dequantizes (or converts) row r of W into out[W.cols]. */
static void load_row(const brisk_tensor *W, int64_t r, float *out) {
    const int64_t cols = W->cols;
    if (W->type != BRISK_W_QAFFINE) {
        for (int64_t c = 0; c < cols; c++) out[c] = load_scalar(W->type, W->data, r * cols + c);
        return;
    }
    const uint8_t *row = (const uint8_t *)W->data + (size_t)(r * cols * W->bits / 8);
    const int64_t groups = cols / W->group_size;
    for (int64_t g = 0; g < groups; g++) {
        const float s = load_scalar(W->stype, W->scales, r * groups + g);
        const float b = load_scalar(W->stype, W->biases, r * groups + g);
        for (int64_t c = g * W->group_size; c < (g + 1) * W->group_size; c++)
            out[c] = s * (float)load_code(row, c, W->bits) + b;
    }
}

static float *row_buf(ref_state *s, int64_t cols) {
    BRISK_ASSERT((size_t)cols <= s->row_cap); /* planned at create from the widest matrix */
    return s->row;
}

/* ---------------------------------------------------------------------------------------------
 * Ops
 * ------------------------------------------------------------------------------------------- */

static void ref_embed(brisk_backend *be, const brisk_tensor *E, const int32_t *ids, int n,
                      float *out) {
    (void)be;
    for (int i = 0; i < n; i++) load_row(E, ids[i], out + (size_t)i * E->cols);
}

static void ref_rmsnorm(brisk_backend *be, const float *x, const float *w, int n, int dim,
                        float eps, float *out) {
    (void)be;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        const float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int j = 0; j < dim; j++) out[(size_t)i * dim + j] = w[j] * (xi[j] * inv);
    }
}

static void ref_matmul(brisk_backend *be, const brisk_tensor *W, const float *bias, const float *x,
                       int n, float *y) {
    ref_state *s = be->impl;
    float *w = row_buf(s, W->cols);
    for (int64_t r = 0; r < W->rows; r++) {
        load_row(W, r, w);
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * W->cols;
            double acc = 0;
            for (int64_t c = 0; c < W->cols; c++) acc += (double)w[c] * xi[c];
            y[(size_t)i * W->rows + r] = (float)acc + (bias ? bias[r] : 0.0f);
        }
    }
}

static void ref_rope(brisk_backend *be, float *x, const int32_t *pos, int n, int n_heads,
                     int head_dim, const float *inv_freq) {
    (void)be;
    const int half = head_dim / 2;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < half; j++) {
            /* transformers: freqs = (inv_freq @ position) in float32, then cos/sin. */
            const float angle = (float)pos[i] * inv_freq[j];
            const float c = cosf(angle), sn = sinf(angle);
            for (int h = 0; h < n_heads; h++) {
                float *v = x + ((size_t)i * n_heads + h) * head_dim;
                const float a = v[j], b = v[j + half];
                v[j] = a * c - b * sn;
                v[j + half] = b * c + a * sn;
            }
        }
    }
}

static void ref_kv_store(brisk_backend *be, void *kc, void *vc, const float *k, const float *v,
                         const int32_t *slot, int n, int kv_dim) {
    (void)be;
    float *kcache = kc, *vcache = vc;
    for (int i = 0; i < n; i++) {
        memcpy(kcache + (size_t)slot[i] * kv_dim, k + (size_t)i * kv_dim, (size_t)kv_dim * 4);
        memcpy(vcache + (size_t)slot[i] * kv_dim, v + (size_t)i * kv_dim, (size_t)kv_dim * 4);
    }
}

static void ref_attention(brisk_backend *be, const float *q, const void *kc, const void *vc,
                          const brisk_attn_batch *b, int n_head, int n_head_kv, int head_dim,
                          float *out) {
    ref_state *s = be->impl;
    const float *kcache = kc, *vcache = vc;
    const int kv_dim = n_head_kv * head_dim, group = n_head / n_head_kv;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int i = 0; i < b->n_tokens; i++) {
        const int32_t *table = b->block_tables[b->seq[i]];
        const int p = b->pos[i];
        const int first =
            b->sliding_window > 0 && p - b->sliding_window + 1 > 0 ? p - b->sliding_window + 1 : 0;
        BRISK_ASSERT(p < s->max_ctx);
        for (int h = 0; h < n_head; h++) {
            const float *qh = q + ((size_t)i * n_head + h) * head_dim;
            const int kvh = h / group;
            float mx = -INFINITY;
            for (int t = first; t <= p; t++) {
                const int64_t slot =
                    (int64_t)table[t / b->block_size] * b->block_size + t % b->block_size;
                const float *kt = kcache + slot * kv_dim + kvh * head_dim;
                double dot = 0;
                for (int d = 0; d < head_dim; d++) dot += (double)qh[d] * kt[d];
                s->scores[t] = (float)dot * scale;
                if (s->scores[t] > mx) mx = s->scores[t];
            }
            double sum = 0;
            for (int t = first; t <= p; t++) {
                s->scores[t] = expf(s->scores[t] - mx);
                sum += s->scores[t];
            }
            float *oh = out + ((size_t)i * n_head + h) * head_dim;
            for (int d = 0; d < head_dim; d++) {
                double acc = 0;
                for (int t = first; t <= p; t++) {
                    const int64_t slot =
                        (int64_t)table[t / b->block_size] * b->block_size + t % b->block_size;
                    acc += (double)s->scores[t] * vcache[slot * kv_dim + kvh * head_dim + d];
                }
                oh[d] = (float)(acc / sum);
            }
        }
    }
}

static void ref_swiglu(brisk_backend *be, const float *gate, const float *up, size_t n,
                       float *out) {
    (void)be;
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void ref_add(brisk_backend *be, float *x, const float *y, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void ref_get_rows(brisk_backend *be, const float *src, const int32_t *rows, int n, int dim,
                         float *dst) {
    (void)be;
    for (int i = 0; i < n; i++)
        memmove(dst + (size_t)i * dim, src + (size_t)rows[i] * dim, (size_t)dim * sizeof *dst);
}

static void *ref_alloc(brisk_backend *be, size_t bytes) {
    (void)be;
    return calloc(1, bytes ? bytes : 1);
}

static void ref_free(brisk_backend *be, void *p) {
    (void)be;
    free(p);
}

static brisk_status ref_begin_step(brisk_backend *be, const int32_t *tokens,
                                   const brisk_attn_batch *b, int max_blocks, int n_seqs) {
    (void)be, (void)tokens, (void)b, (void)max_blocks, (void)n_seqs;
    return BRISK_OK; /* host memory: nothing to copy */
}

static brisk_status ref_end_step(brisk_backend *be, const float *logits, int n, int V, float *out) {
    (void)be;
    if (out && logits != out) memcpy(out, logits, (size_t)n * (size_t)V * sizeof *out);
    return BRISK_OK;
}

/* One thread streaming over a buffer far larger than the caches: the reference path's floor. */
static double ref_measure_bandwidth(brisk_backend *be) {
    (void)be;
    return brisk_measure_read_bandwidth();
}

static void ref_destroy(brisk_backend *be) {
    if (!be) return;
    ref_state *s = be->impl;
    if (s) {
        free(s->row);
        free(s->scores);
        free(s);
    }
    free(be);
}

static const brisk_backend_ops REF_OPS = {
    .name = "cpu-ref",
    .kv_elem_size = sizeof(float),
    .destroy = ref_destroy,
    .alloc = ref_alloc,
    .free = ref_free,
    .begin_step = ref_begin_step,
    .end_step = ref_end_step,
    .get_rows = ref_get_rows,
    .measure_bandwidth = ref_measure_bandwidth,
    .embed = ref_embed,
    .rmsnorm = ref_rmsnorm,
    .matmul = ref_matmul,
    .rope = ref_rope,
    .kv_store = ref_kv_store,
    .attention = ref_attention,
    .swiglu = ref_swiglu,
    .add = ref_add,
};

brisk_status brisk_backend_ref_create(const brisk_backend_init *init, brisk_backend **out) {
    *out = NULL;
    const int max_ctx = init->max_ctx;
    const int64_t max_cols = init->max_cols;
    brisk_backend *be = calloc(1, sizeof *be);
    ref_state *s = calloc(1, sizeof *s);
    if (s) {
        s->scores = malloc((size_t)(max_ctx > 0 ? max_ctx : 1) * sizeof *s->scores);
        s->row = malloc((size_t)(max_cols > 0 ? max_cols : 1) * sizeof *s->row);
        s->row_cap = (size_t)max_cols;
    }
    if (!be || !s || !s->scores || !s->row) {
        if (s) free(s->scores), free(s->row);
        free(s);
        free(be);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_backend_ref_create: out of memory");
    }
    s->max_ctx = max_ctx;
    be->ops = &REF_OPS;
    be->impl = s;
    *out = be;
    return BRISK_OK;
}
