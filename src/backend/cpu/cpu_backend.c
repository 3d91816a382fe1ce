/* cpu_backend.c: the fast CPU backend: vtable, ISA choice by cpuid/hwcap at create, scratch
 * planning, and the threaded matmul dispatch (integer path, prefill GEMM, float-weight dots,
 * generic row path). */
#include "backend/cpu/cpu_backend.h"
#include "util/error.h"
#include "util/membw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* ---------------------------------------------------------------------------------------------
 * ISA choice
 * ------------------------------------------------------------------------------------------- */

static bool cpu_has_avx2(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
    if (!fma || !osxsave || !f16c) return false;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return false; /* the OS saves XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return b & (1u << 5);
#else
    return false;
#endif
}

/* AVX512F+BW+VL (cpuid 7.0 EBX bits 16, 30, 31) and AVX512_VNNI (ECX bit 11), with the OS saving
 * the opmask and ZMM state (XCR0 bits 5-7) besides XMM/YMM; the table also runs the AVX2 ops. */
static bool cpu_has_avx512(void) {
#if defined(__x86_64__)
    if (!cpu_has_avx2()) return false; /* also checks OSXSAVE before xgetbv */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const unsigned need_b = (1u << 16) | (1u << 30) | (1u << 31);
    return (b & need_b) == need_b && (c & (1u << 11));
#else
    return false;
#endif
}

static bool cpu_has_neon_dotprod(void) {
#if defined(__aarch64__) && defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__aarch64__) && defined(__APPLE__)
    return true; /* every Apple-silicon core has dotprod */
#else
    return false;
#endif
}

static const brisk_cpu_isa *isa_by_name(const char *name) {
    if (!strcmp(name, "generic")) return brisk_cpu_isa_generic();
    if (!strcmp(name, "avx512")) return cpu_has_avx512() ? brisk_cpu_isa_avx512() : NULL;
    if (!strcmp(name, "avx2")) return cpu_has_avx2() ? brisk_cpu_isa_avx2() : NULL;
    if (!strcmp(name, "neon")) return cpu_has_neon_dotprod() ? brisk_cpu_isa_neon() : NULL;
    return NULL;
}

const char *brisk_cpu_isas_available(void) {
    static char buf[64];
    buf[0] = 0;
    static const char *const all[] = {"avx512", "avx2", "neon", "generic"};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(all); i++) {
        if (!isa_by_name(all[i])) continue;
        if (buf[0]) strcat(buf, ",");
        strcat(buf, all[i]);
    }
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Matmul
 * ------------------------------------------------------------------------------------------- */

enum mm_kind { MM_DOT_W, MM_ROW, MM_GEMM };

typedef struct mm_job {
    brisk_mm mm;
    brisk_cpu_state *st;
    enum mm_kind kind;
    int64_t step;
    atomic_int_fast64_t next;
} mm_job;

/* Threads take `step` rows at a time; each row's outputs for all tokens belong to its taker. */
static void mm_worker(void *arg, int ith, int nth) {
    (void)nth;
    mm_job *j = arg;
    const brisk_mm *m = &j->mm;
    const brisk_tensor *W = m->W;
    const brisk_cpu_isa *isa = j->st->isa;
    brisk_cpu_scratch *s = &j->st->scr[ith];
    const int64_t n_items =
        j->kind == MM_GEMM ? (W->rows + BRISK_GEMM_NR - 1) / BRISK_GEMM_NR : W->rows;
    for (;;) {
        const int64_t r0 = brisk_pool_next(&j->next, j->step);
        if (r0 >= n_items) break;
        if (j->kind == MM_GEMM) {
            isa->gemm(m, r0, r0 + j->step < n_items ? r0 + j->step : n_items, s);
            continue;
        }
        const int64_t r1 = r0 + j->step < W->rows ? r0 + j->step : W->rows;
        switch (j->kind) {
        case MM_GEMM:
            break; /* handled above */
        case MM_DOT_W:
            for (int64_t r = r0; r < r1; r++)
                m->y[r] = isa->dot_w(W, r, m->x) + (m->bias ? m->bias[r] : 0.0f);
            break;
        case MM_ROW:
            for (int64_t r = r0; r < r1; r++) {
                if (W->type == BRISK_W_QAFFINE)
                    brisk_cpu_dequant_row(W, r, s->row);
                else
                    isa->row_f32(W, r, s->row);
                const float b = m->bias ? m->bias[r] : 0.0f;
                for (int t = 0; t < m->n; t++)
                    m->y[(size_t)t * W->rows + r] =
                        isa->dot(s->row, m->x + (size_t)t * W->cols, W->cols) + b;
            }
            break;
        }
    }
}

typedef struct quant_job {
    const float *x;
    const brisk_tensor *W;
    brisk_qact *qa;
    void (*quant)(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d, float *s);
    atomic_int_fast64_t next;
} quant_job;

static void quant_worker(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    quant_job *j = arg;
    const int64_t cols = j->W->cols, ng = cols / j->W->group_size;
    for (int64_t t; (t = brisk_pool_next(&j->next, 1)) < j->qa->n;)
        j->quant(j->x + t * cols, cols, j->W->group_size, j->W->bits, j->qa->q + t * cols,
                 j->qa->d + t * ng, j->qa->s + t * ng);
}

/* Quantizes x [n, W.cols] into st->qa for W's group size and bits (once per x: the fused ops'
 * matrices share it). */
static brisk_qact *quantize_x(brisk_cpu_state *st, const brisk_tensor *W, const float *x, int n) {
    brisk_qact *qa = &st->qa;
    qa->cols = W->cols;
    qa->G = W->group_size;
    qa->n = n;
    void (*quant)(const float *, int64_t, int, int, int16_t *, float *, float *) =
        st->isa->quant ? st->isa->quant : brisk_cpu_quant_act;
    if (n == 1) {
        quant(x, W->cols, W->group_size, W->bits, qa->q, qa->d, qa->s);
    } else {
        quant_job q = {.x = x, .W = W, .qa = qa, .quant = quant};
        atomic_init(&q.next, 0);
        brisk_pool_run(st->pool, quant_worker, &q);
    }
    return qa;
}

static void cpu_matmul(brisk_backend *be, const brisk_tensor *W, const float *bias, const float *x,
                       int n, float *y);

/* ---------------------------------------------------------------------------------------------
 * Decode matmuls (the integer path): one pool job over the rows of up to three matrices of one
 * x, with an optional epilogue per chunk (residual add, SwiGLU), so a fused op is one dispatch
 * and one quantization of x.
 * ------------------------------------------------------------------------------------------- */

enum qmm_epi { EPI_NONE, EPI_ADD, EPI_SWIGLU };

typedef struct qmm_job {
    brisk_cpu_state *st;
    brisk_mm mm[3];
    int nseg;
    int64_t start[4]; /* row space: matrix s owns [start[s], start[s] + rows), starts 4-aligned */
    enum qmm_epi epi;
    float *out; /* EPI_ADD: out[n, rows] += mm[0].y; EPI_SWIGLU: silu(mm[0].y) * mm[1].y */
    int64_t step;
} qmm_job;

static void qmm_chunk(const qmm_job *j, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {
    const brisk_cpu_isa *isa = j->st->isa;
    if (j->epi == EPI_SWIGLU) { /* gate rows, up rows, then out = silu(gate) * up */
        isa->qmm(&j->mm[0], r0, r1, s);
        isa->qmm(&j->mm[1], r0, r1, s);
        const int64_t rows = j->mm[0].W->rows;
        for (int t = 0; t < j->mm[0].n; t++) {
            const size_t o = (size_t)t * rows + r0;
            const float *g = j->mm[0].y + o, *u = j->mm[1].y + o;
            if (isa->swiglu) {
                isa->swiglu(g, u, (size_t)(r1 - r0), j->out + o);
                continue;
            }
            for (int64_t i = 0; i < r1 - r0; i++)
                j->out[o + i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
        return;
    }
    for (int sg = 0; sg < j->nseg; sg++) {
        const int64_t end = j->start[sg] + j->mm[sg].W->rows;
        const int64_t lo = r0 > j->start[sg] ? r0 : j->start[sg], hi = r1 < end ? r1 : end;
        if (lo < hi) isa->qmm(&j->mm[sg], lo - j->start[sg], hi - j->start[sg], s);
    }
    if (j->epi == EPI_ADD) { /* the residual add of these rows, as brisk_cpu_add does it */
        const int64_t rows = j->mm[0].W->rows;
        for (int t = 0; t < j->mm[0].n; t++) {
            const size_t o = (size_t)t * rows;
            for (int64_t r = r0; r < r1; r++) j->out[o + r] += j->mm[0].y[o + r];
        }
    }
}

/* Each thread streams its own contiguous share of the rows (the software prefetch in the kernel
 * runs ahead in address order and stays useful across chunks), then helps the others from their
 * fronts so a preempted core does not hold the job up. */
static void qmm_worker(void *arg, int ith, int nth) {
    qmm_job *j = arg;
    brisk_cpu_scratch *s = &j->st->scr[ith];
    for (int v = 0; v < nth; v++) {
        brisk_cpu_cursor *c = &j->st->cur[(ith + v) % nth];
        for (;;) {
            const int64_t r0 = brisk_pool_next(&c->next, j->step);
            if (r0 >= c->end) break;
            qmm_chunk(j, r0, r0 + j->step < c->end ? r0 + j->step : c->end, s);
        }
    }
}

static void qmm_run(brisk_cpu_state *st, qmm_job *j) {
    const int64_t total = j->start[j->nseg], nth = st->nth;
    const brisk_tensor *W = j->mm[0].W;
    /* ~16 KB of codes per chunk: stealing granularity; whole 4-row blocks */
    const int64_t rb = W->cols * W->bits / 8, step = 16384 / rb / BRISK_QMM_ROWS * BRISK_QMM_ROWS;
    j->step = step < BRISK_QMM_ROWS ? BRISK_QMM_ROWS : step;
    for (int64_t i = 0; i < nth; i++) {
        const int64_t b = total * i / nth / BRISK_QMM_ROWS * BRISK_QMM_ROWS;
        const int64_t e =
            i + 1 == nth ? total : total * (i + 1) / nth / BRISK_QMM_ROWS * BRISK_QMM_ROWS;
        atomic_init(&st->cur[i].next, b);
        st->cur[i].end = e;
    }
    brisk_pool_run(st->pool, qmm_worker, j);
}

/* Whether the decode integer path takes these matrices of one x together. */
static bool qmm_ok(const brisk_cpu_state *st, int n, const brisk_tensor *const *W, int nw) {
    if (!st->isa->qmm || n >= BRISK_GEMM_MIN_N || n > st->max_tokens) return false;
    for (int i = 0; i < nw; i++) {
        if (!brisk_qmm_supported(W[i]) || W[i]->cols != W[0]->cols || W[i]->bits != W[0]->bits ||
            W[i]->group_size != W[0]->group_size)
            return false;
    }
    return true;
}

static void cpu_matmul_chunk(brisk_cpu_state *st, const brisk_tensor *W, const float *bias,
                             const float *x, int n, float *y) {
    if (!(st->isa->gemm && n >= BRISK_GEMM_MIN_N) && qmm_ok(st, n, &W, 1)) {
        qmm_job q = {.st = st, .nseg = 1, .start = {0, W->rows}};
        q.mm[0] =
            (brisk_mm){.W = W, .bias = bias, .x = x, .n = n, .y = y, .qa = quantize_x(st, W, x, n)};
        qmm_run(st, &q);
        return;
    }
    mm_job j = {.mm = {.W = W, .bias = bias, .x = x, .n = n, .y = y}, .st = st};
    if (st->isa->gemm && n >= BRISK_GEMM_MIN_N)
        j.kind = MM_GEMM;
    else
        j.kind = n == 1 && W->type != BRISK_W_QAFFINE ? MM_DOT_W : MM_ROW;
    /* ~16 chunks per thread: small enough to even out a preempted core, large enough that a
     * chunk streams tens of KB of contiguous weights. */
    if (j.kind == MM_GEMM) {
        j.step = 1; /* a 16-row panel x all tokens is already ~n * 64K FMAs */
    } else {
        const int64_t step = W->rows / ((int64_t)st->nth * 16);
        j.step = step < 1 ? 1 : step;
    }
    atomic_init(&j.next, 0);
    brisk_pool_run(st->pool, mm_worker, &j);
}

static void cpu_matmul(brisk_backend *be, const brisk_tensor *W, const float *bias, const float *x,
                       int n, float *y) {
    brisk_cpu_state *st = be->impl;
    BRISK_ASSERT(W->cols <= st->max_cols); /* planned at create from the widest matrix */
    /* The activation scratch holds max_tokens rows; longer inputs go through in pieces, so y
     * for tokens [t0, t0+k) is a contiguous block of the row-major output. */
    for (int t0 = 0; t0 < n; t0 += st->max_tokens) {
        const int k = n - t0 < st->max_tokens ? n - t0 : st->max_tokens;
        cpu_matmul_chunk(st, W, bias, x + (size_t)t0 * W->cols, k, y + (size_t)t0 * W->rows);
    }
}

static void cpu_matmul_qkv(brisk_backend *be, const brisk_tensor *wq, const brisk_tensor *wk,
                           const brisk_tensor *wv, const float *bq, const float *bk,
                           const float *bv, const float *x, int n, float *q, float *k, float *v) {
    brisk_cpu_state *st = be->impl;
    const brisk_tensor *W[3] = {wq, wk, wv};
    if (!qmm_ok(st, n, W, 3)) {
        cpu_matmul(be, wq, bq, x, n, q);
        cpu_matmul(be, wk, bk, x, n, k);
        cpu_matmul(be, wv, bv, x, n, v);
        return;
    }
    const brisk_qact *qa = quantize_x(st, wq, x, n);
    /* each matrix starts on a 4-row boundary of the joint row space, so chunks cut it into the
     * same 4-row blocks as a matmul of its own */
    const int64_t a4 = BRISK_QMM_ROWS;
    const int64_t sk = (wq->rows + a4 - 1) / a4 * a4, sv = sk + (wk->rows + a4 - 1) / a4 * a4;
    qmm_job j = {.st = st, .nseg = 3, .start = {0, sk, sv, sv + wv->rows}};
    const float *b[3] = {bq, bk, bv};
    float *y[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        j.mm[i] = (brisk_mm){.W = W[i], .bias = b[i], .x = x, .n = n, .y = y[i], .qa = qa};
    qmm_run(st, &j);
}

/* Tokens per piece when a fused op composes the basic ops through st->tmp (prefill, or a matrix
 * the decode job does not take): the whole input when it fits, else as many tokens as fit. */
static int tmp_tokens(const brisk_cpu_state *st, int64_t rows, int n) {
    const int64_t c = st->tmp_cap / rows;
    BRISK_ASSERT(c >= 1); /* tmp holds a row of every matrix but the vocabulary-sized ones */
    return c < n ? (int)c : n;
}

static void cpu_matmul_add(brisk_backend *be, const brisk_tensor *W, const float *x, int n,
                           float *y) {
    brisk_cpu_state *st = be->impl;
    if (!qmm_ok(st, n, &W, 1) || W->rows > st->tmp_cap / n) {
        for (int t0 = 0; t0 < n;) { /* matmul then add, as forward.c composes them */
            const int k = tmp_tokens(st, W->rows, n - t0);
            cpu_matmul(be, W, NULL, x + (size_t)t0 * W->cols, k, st->tmp);
            brisk_cpu_add(be, y + (size_t)t0 * W->rows, st->tmp, (size_t)k * (size_t)W->rows);
            t0 += k;
        }
        return;
    }
    qmm_job j = {.st = st, .nseg = 1, .start = {0, W->rows}, .epi = EPI_ADD, .out = y};
    j.mm[0] = (brisk_mm){.W = W, .x = x, .n = n, .y = st->tmp, .qa = quantize_x(st, W, x, n)};
    qmm_run(st, &j);
}

static void cpu_matmul_swiglu(brisk_backend *be, const brisk_tensor *wg, const brisk_tensor *wu,
                              const float *x, int n, float *out) {
    brisk_cpu_state *st = be->impl;
    const brisk_tensor *W[2] = {wg, wu};
    if (!qmm_ok(st, n, W, 2) || wg->rows != wu->rows || wu->rows > st->tmp_cap / n) {
        for (int t0 = 0; t0 < n;) { /* gate, up, swiglu, as forward.c composes them */
            const int k = tmp_tokens(st, wu->rows, n - t0);
            const size_t nv = (size_t)k * (size_t)wg->rows;
            float *o = out + (size_t)t0 * wg->rows;
            cpu_matmul(be, wg, NULL, x + (size_t)t0 * wg->cols, k, o);
            cpu_matmul(be, wu, NULL, x + (size_t)t0 * wu->cols, k, st->tmp);
            brisk_cpu_swiglu(be, o, st->tmp, nv, o);
            t0 += k;
        }
        return;
    }
    const brisk_qact *qa = quantize_x(st, wg, x, n);
    qmm_job j = {.st = st, .nseg = 1, .start = {0, wg->rows}, .epi = EPI_SWIGLU, .out = out};
    j.mm[0] = (brisk_mm){.W = wg, .x = x, .n = n, .y = out, .qa = qa};
    j.mm[1] = (brisk_mm){.W = wu, .x = x, .n = n, .y = st->tmp, .qa = qa};
    qmm_run(st, &j);
}

/* ---------------------------------------------------------------------------------------------
 * Memory, steps, bandwidth
 * ------------------------------------------------------------------------------------------- */

static void *cpu_alloc(brisk_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(brisk_backend *be, void *p) {
    (void)be;
    free(p);
}

static brisk_status cpu_begin_step(brisk_backend *be, const int32_t *tokens,
                                   const brisk_attn_batch *b, int max_blocks, int n_seqs) {
    (void)be, (void)tokens, (void)b, (void)max_blocks, (void)n_seqs;
    return BRISK_OK; /* host memory: nothing to copy */
}

static brisk_status cpu_end_step(brisk_backend *be, const float *logits, int n, int V, float *out) {
    (void)be;
    if (out && logits != out) memcpy(out, logits, (size_t)n * (size_t)V * sizeof *out);
    return BRISK_OK;
}

static void pool_runner(void *runner, brisk_par_job job, void *arg) {
    brisk_pool_run(runner, job, arg);
}

/* All the backend's threads streaming at once: the floor a threaded decode is held to. */
static double cpu_measure_bandwidth(brisk_backend *be) {
    brisk_cpu_state *st = be->impl;
    return brisk_measure_read_bandwidth_mt(pool_runner, st->pool);
}

static void cpu_destroy(brisk_backend *be) {
    if (!be) return;
    brisk_cpu_state *st = be->impl;
    if (st) {
        brisk_pool_destroy(st->pool);
        for (int i = 0; st->scr && i < st->nth; i++) {
            free(st->scr[i].row);
            free(st->scr[i].sr);
            free(st->scr[i].br);
            free(st->scr[i].scores);
            free(st->scr[i].pack);
        }
        free(st->scr);
        free(st->cur);
        free(st->tmp);
        free(st->qa.q);
        free(st->qa.d);
        free(st->qa.s);
        free(st);
    }
    free(be);
}

static const brisk_backend_ops CPU_OPS = {
    .name = "cpu",
    .kv_elem_size = sizeof(uint16_t), /* IEEE f16, as on CUDA (cpu_ops.c) */
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .begin_step = cpu_begin_step,
    .end_step = cpu_end_step,
    .get_rows = brisk_cpu_get_rows,
    .measure_bandwidth = cpu_measure_bandwidth,
    .embed = brisk_cpu_embed,
    .rmsnorm = brisk_cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = brisk_cpu_rope,
    .kv_store = brisk_cpu_kv_store,
    .attention = brisk_cpu_attention,
    .swiglu = brisk_cpu_swiglu,
    .add = brisk_cpu_add,
    .matmul_qkv = cpu_matmul_qkv,
    .matmul_add = cpu_matmul_add,
    .matmul_swiglu = cpu_matmul_swiglu,
};

static void *alloc_aligned(size_t bytes) {
    void *p = NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

brisk_status brisk_backend_cpu_create_isa(const brisk_backend_init *init, const char *isa,
                                          brisk_backend **out) {
    *out = NULL;
    const brisk_cpu_isa *chosen = NULL;
    if (!isa) isa = getenv("BRISK_CPU_ISA");
    if (isa && *isa) {
        chosen = isa_by_name(isa);
        if (!chosen)
            return brisk_errorf(
                BRISK_ERR_UNSUPPORTED,
                "brisk_backend_cpu_create: ISA '%s' is not available here (have %s)", isa,
                brisk_cpu_isas_available());
    } else {
        static const char *const best[] = {"avx512", "avx2", "neon", "generic"};
        for (size_t i = 0; !chosen && i < BRISK_ARRAY_LEN(best); i++) chosen = isa_by_name(best[i]);
    }
    int nth = init->n_threads;
    if (nth <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nth = c > 0 ? (int)c : 1;
    }
    if (nth > 256) nth = 256;
    brisk_backend *be = calloc(1, sizeof *be);
    brisk_cpu_state *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_backend_cpu_create: out of memory");
    }
    st->isa = chosen;
    st->nth = nth;
    snprintf(st->name, sizeof st->name, "cpu-%s", chosen->name);
    st->ops = CPU_OPS;
    st->ops.name = st->name;
    be->ops = &st->ops;
    be->impl = st;
    st->max_tokens = init->max_tokens > 0 ? init->max_tokens : 1;
    st->max_ctx = init->max_ctx > 0 ? init->max_ctx : 1;
    st->max_cols = init->max_cols > 0 ? init->max_cols : 1;
    const size_t cols = (size_t)st->max_cols, groups = cols / 32 + 1;
    st->qa.q = alloc_aligned((size_t)st->max_tokens * cols * sizeof(int16_t));
    st->qa.d = alloc_aligned((size_t)st->max_tokens * groups * sizeof(float));
    st->qa.s = alloc_aligned((size_t)st->max_tokens * groups * sizeof(float));
    st->scr = calloc((size_t)nth, sizeof *st->scr);
    st->cur = alloc_aligned((size_t)nth * sizeof *st->cur);
    /* The fused ops' second output (SwiGLU's up, matmul_add's product): max_tokens rows of up
     * to max_cols values. Every layer matrix's rows are the columns of another (q/o, gate/down,
     * down/q), so only the vocabulary-sized ones (embedding, output projection) are wider, and
     * those never go through a fused op; any matrix still gets a whole decode step. */
    int64_t top = 0;
    for (int i = 0; i < init->n_tensors; i++)
        top = init->tensors[i]->rows > top ? init->tensors[i]->rows : top;
    st->tmp_cap = (int64_t)st->max_tokens * st->max_cols;
    if (st->tmp_cap < BRISK_GEMM_MIN_N * top) st->tmp_cap = BRISK_GEMM_MIN_N * top;
    st->tmp = alloc_aligned((size_t)st->tmp_cap * sizeof(float));
    bool ok = st->qa.q && st->qa.d && st->qa.s && st->scr && st->cur && st->tmp;
    for (int i = 0; ok && i < nth; i++) {
        brisk_cpu_scratch *s = &st->scr[i];
        s->row = alloc_aligned(cols * sizeof(float));
        s->sr = alloc_aligned(2 * BRISK_QMM_ROWS * groups * sizeof(float));
        s->br = alloc_aligned(BRISK_QMM_ROWS * groups * sizeof(float));
        s->scores = alloc_aligned((size_t)brisk_attn_scratch(st->max_ctx) * sizeof(float));
        s->pack = alloc_aligned((size_t)BRISK_GEMM_KC * BRISK_GEMM_NR * sizeof(float));
        ok = s->row && s->sr && s->br && s->scores && s->pack;
    }
    if (ok) st->pool = brisk_pool_create(nth);
    if (!ok || !st->pool) {
        cpu_destroy(be);
        return brisk_errorf(BRISK_ERR_OOM,
                            "brisk_backend_cpu_create: out of memory for %d threads' scratch", nth);
    }
    *out = be;
    return BRISK_OK;
}

brisk_status brisk_backend_cpu_create(const brisk_backend_init *init, brisk_backend **out) {
    return brisk_backend_cpu_create_isa(init, NULL, out);
}
