/* x86_qmm.h: AVX2 pieces the x86 decode kernels share (matmul_avx2.c, matmul_avx512.c):
 * horizontal sums, stored-value loads, the per-block scale/bias set-up and its prefetch. Include
 * only from files compiled with -mavx2 -mfma -mf16c (or more). */
#ifndef BRISK_X86_QMM_H
#define BRISK_X86_QMM_H

#include "backend/cpu/cpu_kernels.h"

#include <immintrin.h>

/* The AVX2 ISA table's entries (matmul_avx2.c, ops_avx2.c, gemm_avx2.c), which the AVX-512 table
 * reuses. */
float brisk_cpu_dot_avx2(const float *a, const float *b, int64_t n);
float brisk_cpu_dot_w_avx2(const brisk_tensor *W, int64_t r, const float *x);
void brisk_cpu_row_f32_avx2(const brisk_tensor *W, int64_t r, float *out);
void brisk_cpu_quant_avx2(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d,
                          float *s);
void brisk_cpu_swiglu_avx2(const float *g, const float *u, size_t n, float *out);
void brisk_cpu_gemm_avx2(const brisk_mm *m, int64_t p0, int64_t p1, brisk_cpu_scratch *s);
void brisk_cpu_attn_avx2(const brisk_attn_item *a, float *scratch, int64_t cap);
void brisk_cpu_to_f16_avx2(const float *x, int64_t n, uint16_t *out);

#define INLINE static inline __attribute__((always_inline))

/* Two consecutive floats (4-byte aligned) in the low half of a vector: one 8-byte load through the
 * unaligned-safe movq form (_mm_load_sd of a cast pointer is a misaligned double load, undefined
 * behaviour that UBSan reports whenever a scale pair starts off an 8-byte boundary). */
INLINE __m128 load_pair(const float *p) {
    return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p));
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* hsum of four vectors at once (hadd tree): out[k] = sum of v[k]. hsum1 adds one vector in the
 * same order, so a row's result does not depend on whether it went through a 4-row block or the
 * 1-row tail (the fused ops must match the composition bit for bit whatever their chunking). */
INLINE void hsum4(const __m256 *v, float *out) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

INLINE float hsum1(__m256 v) {
    __m256 h = _mm256_hadd_ps(v, v);
    h = _mm256_hadd_ps(h, h);
    return _mm_cvtss_f32(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

/* 8 stored values (F32/F16/BF16) at element i of base as f32; unaligned is fine. */
INLINE __m256 load8(brisk_wtype t, const uint8_t *base, int64_t i) {
    switch (t) {
    case BRISK_W_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(base + 2 * i)));
    case BRISK_W_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(base + 2 * i))), 16));
    default:
        return _mm256_loadu_ps((const float *)(base + 4 * i));
    }
}

/* How far ahead (bytes, in address order) the decode kernel prefetches. Measured with
 * bench/qmm_bench.c, 256 MB q4g64 from DRAM in 2 MB pages, 2048 cols: 8 KB 24.6-24.9 GB/s on 2
 * threads, 16 KB 18.5-26.9, 32 KB 25.4-25.7, 64 KB 24.1-24.9 (8192 cols: 22-26 at every
 * distance). Until round four it covered only every other 128-byte step of a 4-row block (R/2
 * lines per two steps); covering all of them took 2 threads from 17.7-19.8 to 23.9-31.3 GB/s and
 * 1 thread from 8.8-10.5 to 13.6-17.6 (2048 cols). */
#define QMM_PREFETCH (16 * 1024)

/* Per token, for R rows: sd[k][g] = scale[k][g] * d[g] and the bias term bt[k] = sum_g
 * bias[k][g] * s[g], reading the stored scales/biases (type T, a constant at every call) and
 * converting in registers. It used to convert them to an f32 scratch first, once per block
 * (brisk_cpu_cvt_f32_avx2: 6-8% of decode samples on 2048-wide rows, whose 4-row blocks are
 * only 4 KB of codes). */
INLINE void rows_token_t(brisk_wtype T, const uint8_t *sc, const uint8_t *bi, int64_t o,
                         const float *d, const float *sx, int R, int64_t ng, float *sd, float *bt) {
    if (R == BRISK_QMM_ROWS && ng % 8 == 0) {
        /* 4 rows at once; the four bias sums fold together with hadd */
        __m256 a[4];
        for (int k = 0; k < 4; k++) a[k] = _mm256_setzero_ps();
        for (int64_t g = 0; g < ng; g += 8) {
            const __m256 dv = _mm256_loadu_ps(d + g), sv = _mm256_loadu_ps(sx + g);
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(sd + k * ng + g, _mm256_mul_ps(load8(T, sc, o + k * ng + g), dv));
                a[k] = _mm256_fmadd_ps(load8(T, bi, o + k * ng + g), sv, a[k]);
            }
        }
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
        _mm_storeu_ps(bt, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        return;
    }
    for (int k = 0; k < R; k++) {
        const int64_t ok = o + k * ng;
        float *sk = sd + k * ng;
        __m256 a = _mm256_setzero_ps();
        int64_t g = 0;
        for (; g + 8 <= ng; g += 8) {
            _mm256_storeu_ps(sk + g, _mm256_mul_ps(load8(T, sc, ok + g), _mm256_loadu_ps(d + g)));
            a = _mm256_fmadd_ps(load8(T, bi, ok + g), _mm256_loadu_ps(sx + g), a);
        }
        float b = hsum1(a);
        if (g < ng) {
            float ws[8], bs[8];
            brisk_cpu_load_f32(T, sc, ok + g, ng - g, ws);
            brisk_cpu_load_f32(T, bi, ok + g, ng - g, bs);
            for (int64_t u = 0; u < ng - g; u++) {
                sk[g + u] = ws[u] * d[g + u];
                b += bs[u] * sx[g + u];
            }
        }
        bt[k] = b;
    }
}

static void rows_token(const brisk_tensor *W, int64_t r, int R, int64_t ng, const float *d,
                       const float *sx, float *sd, float *bt) {
    const uint8_t *sc = W->scales, *bi = W->biases;
    switch (W->stype) {
    case BRISK_W_BF16:
        rows_token_t(BRISK_W_BF16, sc, bi, r * ng, d, sx, R, ng, sd, bt);
        break;
    case BRISK_W_F16:
        rows_token_t(BRISK_W_F16, sc, bi, r * ng, d, sx, R, ng, sd, bt);
        break;
    default:
        rows_token_t(BRISK_W_F32, sc, bi, r * ng, d, sx, R, ng, sd, bt);
        break;
    }
}

/* Prefetch of the scales and biases of the rows QMM_PREFETCH bytes of codes ahead: they are
 * separate streams (1/8 of the code bytes each at G = 64 with 16-bit scales) that cross a 4 KB
 * page every few blocks, where the hardware prefetcher stops. */
INLINE void prefetch_sb(const brisk_tensor *W, int64_t r, int R, int64_t ng, int64_t rb) {
    const int64_t ahead = r + (QMM_PREFETCH + rb - 1) / rb;
    if (ahead >= W->rows) return;
    const int64_t es = W->stype == BRISK_W_F32 ? 4 : 2, o = ahead * ng * es, n = R * ng * es;
    for (int64_t b = 0; b < n; b += 64) {
        _mm_prefetch((const char *)W->scales + o + b, _MM_HINT_T0);
        _mm_prefetch((const char *)W->biases + o + b, _MM_HINT_T0);
    }
}

/* The decode matvec driver both x86 kernels instantiate: for each (bits, G), blocks of
 * BRISK_QMM_ROWS rows then single rows for the tail (the same per-row arithmetic and final hadd
 * order either way, so fused ops match the composition bit for bit), ROWS(w, rb, sd, ng, q, cols,
 * bits, G, R, acc) being the ISA's row kernel. QMM_DEFINE(PREFIX, ROWS) defines PREFIX_qmm, the
 * ISA table's qmm entry. */
#define QMM_FN(NAME, ROWS, BITS, GG)                                                               \
    static void NAME(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {            \
        const brisk_tensor *W = m->W;                                                              \
        const int64_t cols = W->cols, ng = cols / GG, rb = cols * BITS / 8;                        \
        float *sd = s->sr;                                                                         \
        for (int64_t r = r0; r < r1;) {                                                            \
            const int R = r + BRISK_QMM_ROWS <= r1 ? BRISK_QMM_ROWS : 1;                           \
            const uint8_t *w = (const uint8_t *)W->data + r * rb;                                  \
            prefetch_sb(W, r, R, ng, rb);                                                          \
            for (int t = 0; t < m->n; t++) {                                                       \
                const float *d = m->qa->d + (size_t)t * ng, *sx = m->qa->s + (size_t)t * ng;       \
                const int16_t *q = m->qa->q + (size_t)t * cols;                                    \
                float bt[BRISK_QMM_ROWS];                                                          \
                __m256 acc[BRISK_QMM_ROWS];                                                        \
                rows_token(W, r, R, ng, d, sx, sd, bt);                                            \
                if (R == BRISK_QMM_ROWS)                                                           \
                    ROWS(w, rb, sd, ng, q, cols, BITS, GG, BRISK_QMM_ROWS, acc);                   \
                else                                                                               \
                    ROWS(w, rb, sd, ng, q, cols, BITS, GG, 1, acc);                                \
                float *y = m->y + (size_t)t * W->rows + r;                                         \
                if (R == BRISK_QMM_ROWS) {                                                         \
                    float h[BRISK_QMM_ROWS];                                                       \
                    hsum4(acc, h);                                                                 \
                    for (int k = 0; k < BRISK_QMM_ROWS; k++)                                       \
                        y[k] = h[k] + bt[k] + (m->bias ? m->bias[r + k] : 0.0f);                   \
                } else {                                                                           \
                    y[0] = hsum1(acc[0]) + bt[0] + (m->bias ? m->bias[r] : 0.0f);                  \
                }                                                                                  \
            }                                                                                      \
            r += R;                                                                                \
        }                                                                                          \
    }

#define QMM_DEFINE(PREFIX, ROWS)                                                                   \
    QMM_FN(PREFIX##_qmm4_32, ROWS, 4, 32)                                                          \
    QMM_FN(PREFIX##_qmm4_64, ROWS, 4, 64)                                                          \
    QMM_FN(PREFIX##_qmm4_128, ROWS, 4, 128)                                                        \
    QMM_FN(PREFIX##_qmm8_32, ROWS, 8, 32)                                                          \
    QMM_FN(PREFIX##_qmm8_64, ROWS, 8, 64)                                                          \
    QMM_FN(PREFIX##_qmm8_128, ROWS, 8, 128)                                                        \
    static void PREFIX##_qmm(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {    \
        const int G = m->W->group_size;                                                            \
        if (m->W->bits == 4)                                                                       \
            (G == 32   ? PREFIX##_qmm4_32                                                          \
             : G == 64 ? PREFIX##_qmm4_64                                                          \
                       : PREFIX##_qmm4_128)(m, r0, r1, s);                                         \
        else                                                                                       \
            (G == 32   ? PREFIX##_qmm8_32                                                          \
             : G == 64 ? PREFIX##_qmm8_64                                                          \
                       : PREFIX##_qmm8_128)(m, r0, r1, s);                                         \
    }

#endif
