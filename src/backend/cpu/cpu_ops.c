/* cpu_ops.c: the CPU backend's non-matmul ops: embedding, RMSNorm, RoPE, KV store, attention
 * over the paged f16 cache, SwiGLU, add. Small ops stay on the caller; large ones use the pool. */
#include "backend/cpu/cpu_backend.h"
#include "util/error.h"
#include "util/fp.h"

#include <math.h>
#include <string.h>

/* Below this many values an op runs on the calling thread: waking the pool costs more. */
enum { PAR_MIN = 1 << 15 };

typedef void (*range_fn)(void *ctx, int64_t i0, int64_t i1);

typedef struct range_job {
    range_fn fn;
    void *ctx;
    int64_t n, step;
    atomic_int_fast64_t next;
} range_job;

static void range_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    range_job *j = arg;
    for (int64_t i0; (i0 = brisk_pool_next(&j->next, j->step)) < j->n;)
        j->fn(j->ctx, i0, i0 + j->step < j->n ? i0 + j->step : j->n);
}

/* Runs fn over [0, n) in pieces of `step` (a multiple of `align`), in parallel when the work
 * (n * cost values) is large enough to pay for the wake-up. */
static void par_range(brisk_cpu_state *st, int64_t n, int64_t cost, int64_t align, range_fn fn,
                      void *ctx) {
    if (n <= 0) return;
    if (st->nth == 1 || n * cost < PAR_MIN || n < 2) {
        fn(ctx, 0, n);
        return;
    }
    int64_t step = (n + st->nth * 4 - 1) / (st->nth * 4);
    step = (step + align - 1) / align * align;
    range_job j = {.fn = fn, .ctx = ctx, .n = n, .step = step};
    atomic_init(&j.next, 0);
    brisk_pool_run(st->pool, range_worker, &j);
}

void brisk_cpu_embed(brisk_backend *be, const brisk_tensor *E, const int32_t *ids, int n,
                     float *out) {
    brisk_cpu_state *st = be->impl;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * E->cols;
        if (E->type == BRISK_W_QAFFINE)
            brisk_cpu_dequant_row(E, ids[i], o);
        else
            st->isa->row_f32(E, ids[i], o);
    }
}

typedef struct norm_ctx {
    const float *x, *w;
    int dim;
    float eps, *out;
} norm_ctx;

static void norm_rows(void *v, int64_t i0, int64_t i1) {
    const norm_ctx *c = v;
    for (int64_t i = i0; i < i1; i++) {
        const float *xi = c->x + i * c->dim;
        float *o = c->out + i * c->dim;
        float acc[8] = {0};
        int j = 0;
        for (; j + 8 <= c->dim; j += 8)
            for (int k = 0; k < 8; k++) acc[k] += xi[j + k] * xi[j + k];
        double ss = 0;
        for (; j < c->dim; j++) ss += (double)xi[j] * xi[j];
        for (int k = 0; k < 8; k++) ss += acc[k];
        const float inv = (float)(1.0 / sqrt(ss / c->dim + c->eps));
        for (j = 0; j < c->dim; j++) o[j] = c->w[j] * (xi[j] * inv);
    }
}

void brisk_cpu_rmsnorm(brisk_backend *be, const float *x, const float *w, int n, int dim, float eps,
                       float *out) {
    norm_ctx c = {x, w, dim, eps, out};
    par_range(be->impl, n, dim, 1, norm_rows, &c);
}

typedef struct rope_ctx {
    float *x;
    const int32_t *pos;
    int n_heads, head_dim;
    const float *inv_freq;
} rope_ctx;

static void rope_rows(void *v, int64_t i0, int64_t i1) {
    const rope_ctx *c = v;
    const int half = c->head_dim / 2;
    for (int64_t i = i0; i < i1; i++) {
        for (int j = 0; j < half; j++) {
            /* As transformers: the angle in float32, then cos/sin (matches ops_ref.c). */
            const float angle = (float)c->pos[i] * c->inv_freq[j];
            const float cs = cosf(angle), sn = sinf(angle);
            for (int h = 0; h < c->n_heads; h++) {
                float *p = c->x + (i * c->n_heads + h) * c->head_dim;
                const float a = p[j], b = p[j + half];
                p[j] = a * cs - b * sn;
                p[j + half] = b * cs + a * sn;
            }
        }
    }
}

void brisk_cpu_rope(brisk_backend *be, float *x, const int32_t *pos, int n, int n_heads,
                    int head_dim, const float *inv_freq) {
    rope_ctx c = {x, pos, n_heads, head_dim, inv_freq};
    par_range(be->impl, n, (int64_t)n_heads * head_dim * 4, 1, rope_rows, &c);
}

/* The cache is IEEE f16 (kv_elem_size 2, as on CUDA): half the memory and the bytes attention
 * streams; values round to nearest even, attention converts back and accumulates in f32. */
static void to_f16_scalar(const float *x, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = brisk_f32_to_f16(x[i]);
}

static float dot_f16_scalar(const float *q, const uint16_t *k, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i] * brisk_f16_to_f32(k[i]);
    return s;
}

static void axpy_f16_scalar(float w, const uint16_t *v, int64_t n, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += w * brisk_f16_to_f32(v[i]);
}

void brisk_cpu_kv_store(brisk_backend *be, void *kc, void *vc, const float *k, const float *v,
                        const int32_t *slot, int n, int kv_dim) {
    const brisk_cpu_state *st = be->impl;
    void (*cvt)(const float *, int64_t, uint16_t *) =
        st->isa->to_f16 ? st->isa->to_f16 : to_f16_scalar;
    uint16_t *kcache = kc, *vcache = vc;
    for (int i = 0; i < n; i++) {
        cvt(k + (size_t)i * kv_dim, kv_dim, kcache + (size_t)slot[i] * kv_dim);
        cvt(v + (size_t)i * kv_dim, kv_dim, vcache + (size_t)slot[i] * kv_dim);
    }
}

typedef struct attn_job {
    brisk_cpu_state *st;
    const float *q;
    const uint16_t *kcache, *vcache;
    const brisk_attn_batch *b;
    int n_head, n_head_kv, head_dim;
    float *out;
    atomic_int_fast64_t next;
} attn_job;

/* The portable kernel: per query head, two passes (scores + max, then exp and the weighted V
 * sum) with scores[last + 1]. */
static void attn_portable(const brisk_cpu_isa *isa, const brisk_attn_item *a, float *sc) {
    const int hd = a->head_dim, bs = a->block_size;
    float (*dot)(const float *, const uint16_t *, int64_t) =
        isa->dot_f16 ? isa->dot_f16 : dot_f16_scalar;
    void (*axpy)(float, const uint16_t *, int64_t, float *) =
        isa->axpy_f16 ? isa->axpy_f16 : axpy_f16_scalar;
    for (int g = 0; g < a->group; g++) {
        const float *qh = a->q + (size_t)g * hd;
        float mx = -INFINITY;
        for (int t = a->first; t <= a->last; t++) {
            const int64_t slot = (int64_t)a->table[t / bs] * bs + t % bs;
            sc[t] = dot(qh, a->k + slot * a->kv_dim, hd) * a->scale;
            mx = sc[t] > mx ? sc[t] : mx;
        }
        float sum = 0;
        for (int t = a->first; t <= a->last; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        float *oh = a->out + (size_t)g * hd;
        memset(oh, 0, (size_t)hd * sizeof *oh);
        for (int t = a->first; t <= a->last; t++) {
            const int64_t slot = (int64_t)a->table[t / bs] * bs + t % bs;
            axpy(sc[t], a->v + slot * a->kv_dim, hd, oh);
        }
        const float inv = 1.0f / sum;
        for (int d = 0; d < hd; d++) oh[d] *= inv;
    }
}

/* Work items are (token, kv head) pairs: the group of query heads sharing the kv head goes
 * together (an ISA kernel reads each K/V row once for the group). The thread that takes one owns
 * its output rows and uses its own scores scratch. */
static void attn_worker(void *arg, int ith, int nth) {
    (void)nth;
    attn_job *j = arg;
    const brisk_attn_batch *b = j->b;
    const int hd = j->head_dim, kv_dim = j->n_head_kv * hd, group = j->n_head / j->n_head_kv;
    float *sc = j->st->scr[ith].scores;
    const int64_t cap = brisk_attn_scratch(j->st->max_ctx);
    const brisk_cpu_isa *isa = j->st->isa;
    const int64_t items = (int64_t)b->n_tokens * j->n_head_kv;
    for (int64_t it; (it = brisk_pool_next(&j->next, 1)) < items;) {
        const int i = (int)(it / j->n_head_kv), kvh = (int)(it % j->n_head_kv);
        const int p = b->pos[i];
        BRISK_ASSERT(p < j->st->max_ctx);
        const size_t row = ((size_t)i * j->n_head + (size_t)kvh * group) * hd;
        const brisk_attn_item a = {
            .q = j->q + row,
            .k = j->kcache + (size_t)kvh * hd,
            .v = j->vcache + (size_t)kvh * hd,
            .kv_dim = kv_dim,
            .table = b->block_tables[b->seq[i]],
            .block_size = b->block_size,
            .first = b->sliding_window > 0 && p - b->sliding_window + 1 > 0
                         ? p - b->sliding_window + 1
                         : 0,
            .last = p,
            .group = group,
            .head_dim = hd,
            .scale = 1.0f / sqrtf((float)hd),
            .out = j->out + row,
        };
        if (isa->attn)
            isa->attn(&a, sc, cap);
        else
            attn_portable(isa, &a, sc);
    }
}

void brisk_cpu_attention(brisk_backend *be, const float *q, const void *kcache, const void *vcache,
                         const brisk_attn_batch *b, int n_head, int n_head_kv, int head_dim,
                         float *out) {
    brisk_cpu_state *st = be->impl;
    attn_job j = {.st = st,
                  .q = q,
                  .kcache = kcache,
                  .vcache = vcache,
                  .b = b,
                  .n_head = n_head,
                  .n_head_kv = n_head_kv,
                  .head_dim = head_dim,
                  .out = out};
    atomic_init(&j.next, 0);
    brisk_pool_run(st->pool, attn_worker, &j);
}

typedef struct ew_ctx {
    const brisk_cpu_isa *isa;
    const float *a, *b;
    float *out;
} ew_ctx;

static void swiglu_range(void *v, int64_t i0, int64_t i1) {
    const ew_ctx *c = v;
    if (c->isa->swiglu) {
        c->isa->swiglu(c->a + i0, c->b + i0, (size_t)(i1 - i0), c->out + i0);
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        const float g = c->a[i];
        c->out[i] = g / (1.0f + expf(-g)) * c->b[i];
    }
}

void brisk_cpu_swiglu(brisk_backend *be, const float *gate, const float *up, size_t n, float *out) {
    brisk_cpu_state *st = be->impl;
    ew_ctx c = {st->isa, gate, up, out};
    par_range(st, (int64_t)n, 4, 64, swiglu_range, &c);
}

static void add_range(void *v, int64_t i0, int64_t i1) {
    const ew_ctx *c = v;
    for (int64_t i = i0; i < i1; i++) c->out[i] += c->b[i];
}

void brisk_cpu_add(brisk_backend *be, float *x, const float *y, size_t n) {
    ew_ctx c = {NULL, NULL, y, x};
    par_range(be->impl, (int64_t)n, 1, 64, add_range, &c);
}

void brisk_cpu_get_rows(brisk_backend *be, const float *src, const int32_t *rows, int n, int dim,
                        float *dst) {
    (void)be;
    for (int i = 0; i < n; i++)
        memmove(dst + (size_t)i * dim, src + (size_t)rows[i] * dim, (size_t)dim * sizeof *dst);
}
