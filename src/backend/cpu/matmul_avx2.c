/* matmul_avx2.c: AVX2+FMA+F16C kernels (compiled with those flags only; picked at run time by
 * cpuid): integer dot products for 4/8-bit MLX weights, f16/bf16/f32 dots and row conversions. */
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
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

void brisk_cpu_cvt_f32_avx2(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out);
void brisk_cpu_cvt_f32_avx2(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(t, base, i0 + i));
    if (i < n) brisk_cpu_load_f32(t, base, i0 + i, n - i, out + i);
}

static float avx2_dot(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* Decode over F32/F16/BF16 weights: converts in registers, 4 independent FMA chains. */
static float avx2_dot_w(const brisk_tensor *W, int64_t r, const float *x) {
    const uint8_t *p = W->data;
    const brisk_wtype t = W->type;
    const int64_t n = W->cols, o = r * n;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load8(t, p, o + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load8(t, p, o + i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(load8(t, p, o + i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(load8(t, p, o + i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load8(t, p, o + i), _mm256_loadu_ps(x + i), s0);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    if (i < n) {
        float tail[8];
        brisk_cpu_load_f32(t, p, o + i, n - i, tail);
        for (int64_t k = 0; k < n - i; k++) sum += tail[k] * x[i + k];
    }
    return sum;
}

static void avx2_row_f32(const brisk_tensor *W, int64_t r, float *out) {
    brisk_cpu_cvt_f32_avx2(W->type, W->data, r * W->cols, W->cols, out);
}

/* [a[0] x4 | a[1] x4]: the scales of two 32-groups that share one 64-value chunk. */
INLINE __m256 bcast_pair(const float *a) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_broadcast_ss(a)),
                                _mm_broadcast_ss(a + 1), 1);
}

/* Per-group values for 64-value chunk c: G = 32 puts two groups in one chunk (one per lane). */
INLINE __m256 chunk_scale(const float *a, int64_t c, int G) {
    return G == 32 ? bcast_pair(a + 2 * c) : _mm256_broadcast_ss(a + (c * 64) / G);
}

/* 4-bit codes of one 64-value chunk against its int16 activations x[0..3] (brisk_qact_pos):
 * low/high nibbles widened by unpacking with zero (in-lane), four madds -> 8 int32 sums. */
INLINE __m256i q4_chunk(const uint8_t *w, const __m256i *x) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), z = _mm256_setzero_si256();
    const __m256i v = _mm256_loadu_si256((const __m256i *)w);
    const __m256i lo = _mm256_and_si256(v, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi8(lo, z), x[0]),
                                         _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, z), x[1]));
    const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi8(hi, z), x[2]),
                                         _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, z), x[3]));
    return _mm256_add_epi32(p01, p23);
}

/* 8-bit codes of one 32-value block against x[0..1]: widened with zero, two madds. */
INLINE __m256i q8_block(const uint8_t *w, const __m256i *x) {
    const __m256i z = _mm256_setzero_si256();
    const __m256i v = _mm256_loadu_si256((const __m256i *)w);
    return _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi8(v, z), x[0]),
                            _mm256_madd_epi16(_mm256_unpackhi_epi8(v, z), x[1]));
}

/* Two weight rows (R = 1 or 2) against one token; sd[k][g] = scale[k][g] * d[g] was folded in
 * by the caller, so a chunk costs its integer dot, one convert and one FMA per row. G is a
 * compile-time constant at every call (no division in the loop). */
INLINE void qrows(const uint8_t *w0, const uint8_t *w1, const float *sd0, const float *sd1,
                  const int16_t *q, int64_t cols, int bits, int G, int R, __m256 *a0, __m256 *a1) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    if (bits == 4) {
        for (int64_t c = 0; c < cols / 64; c++) {
            __m256i x[4];
            for (int k = 0; k < 4; k++)
                x[k] = _mm256_loadu_si256((const __m256i *)(q + c * 64) + k);
            _mm_prefetch((const char *)(w0 + c * 32) + 1024, _MM_HINT_T0);
            if (R == 2) _mm_prefetch((const char *)(w1 + c * 32) + 1024, _MM_HINT_T0);
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_chunk(w0 + c * 32, x)),
                                   chunk_scale(sd0, c, G), acc0);
            if (R == 2)
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_chunk(w1 + c * 32, x)),
                                       chunk_scale(sd1, c, G), acc1);
        }
    } else {
        for (int64_t b = 0; b < cols / 32; b++) {
            __m256i x[2];
            for (int k = 0; k < 2; k++)
                x[k] = _mm256_loadu_si256((const __m256i *)(q + b * 32) + k);
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_block(w0 + b * 32, x)),
                                   _mm256_broadcast_ss(sd0 + b * 32 / G), acc0);
            if (R == 2)
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_block(w1 + b * 32, x)),
                                       _mm256_broadcast_ss(sd1 + b * 32 / G), acc1);
        }
    }
    *a0 = acc0;
    *a1 = acc1;
}

/* Row k's per-group products sd = scale * d[t] into out, and its bias term sum_g bias_g * s[t][g].
 */
static float row_prep(const brisk_tensor *W, int64_t r, const float *d, const float *sx, float *sd,
                      float *bs) {
    const int64_t ng = W->cols / W->group_size;
    brisk_cpu_cvt_f32_avx2(W->stype, W->scales, r * ng, ng, sd);
    brisk_cpu_cvt_f32_avx2(W->stype, W->biases, r * ng, ng, bs);
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8)
        _mm256_storeu_ps(sd + g, _mm256_mul_ps(_mm256_loadu_ps(sd + g), _mm256_loadu_ps(d + g)));
    for (; g < ng; g++) sd[g] *= d[g];
    return avx2_dot(bs, sx, ng);
}

/* brisk_cpu_quant_act with vector max/sum/convert; values land in brisk_qact order through a
 * position table (the portable version's lrintf loop cost ~25 us per 2048-wide decode row). */
static void avx2_quant(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d,
                       float *s) {
    static int16_t pos4[64], pos8[32];
    if (pos4[63] == 0) { /* idempotent: racing threads write the same values */
        for (int i = 0; i < 64; i++) pos4[i] = (int16_t)brisk_qact_pos(i, 4);
        for (int i = 0; i < 32; i++) pos8[i] = (int16_t)brisk_qact_pos(i, 8);
    }
    const int16_t *pos = bits == 4 ? pos4 : pos8;
    const int span = bits == 4 ? 64 : 32;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    int32_t tmp[128];
    for (int64_t g = 0; g < cols / G; g++) {
        const float *xg = x + g * G;
        __m256 mx = _mm256_setzero_ps(), sm = _mm256_setzero_ps();
        for (int i = 0; i < G; i += 8) {
            const __m256 v = _mm256_loadu_ps(xg + i);
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v));
            sm = _mm256_add_ps(sm, v);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        d[g] = amax / 32767.0f;
        s[g] = hsum(sm);
        const __m256 id = _mm256_set1_ps(amax > 0 ? 32767.0f / amax : 0.0f);
        const __m256 lim = _mm256_set1_ps(32767.0f);
        for (int i = 0; i < G; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xg + i), id);
            v = _mm256_max_ps(_mm256_min_ps(v, lim), _mm256_sub_ps(_mm256_setzero_ps(), lim));
            _mm256_storeu_si256((__m256i *)(tmp + i), _mm256_cvtps_epi32(v));
        }
        for (int i = 0; i < G; i++) {
            const int64_t c = g * G + i;
            q[(c & ~(int64_t)(span - 1)) + pos[c & (span - 1)]] = (int16_t)tmp[i];
        }
    }
}

/* Rows [r0, r1) for the n (< BRISK_GEMM_MIN_N) tokens of a decode step: two rows at a time share
 * the activation loads; per row pair each token is a pass over 2 rows that stay in L1.
 * Decode: a thread streams its rows once, sequentially (rows are contiguous in the file).
 * Measured (AMD EPYC Zen 3 VM, 4-bit g64, 2048 cols): 10-11.6 GB/s per core with the weights in
 * L2, 8.2 GB/s per core from DRAM: compute-bound (~17 vector ops per 32 bytes), not memory. */
static void avx2_qmm(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {
    const brisk_tensor *W = m->W;
    const brisk_qact *qa = m->qa;
    const int64_t cols = W->cols, ng = cols / W->group_size, rowbytes = cols * W->bits / 8;
    const int bits = W->bits, G = W->group_size;
    float *sd0 = s->sr, *sd1 = s->sr + ng, *bs = s->br;
    for (int64_t r = r0; r < r1; r += 2) {
        const int R = r + 1 < r1 ? 2 : 1;
        const uint8_t *w0 = (const uint8_t *)W->data + r * rowbytes, *w1 = w0 + rowbytes;
        for (int t = 0; t < m->n; t++) {
            const float *d = qa->d + (size_t)t * ng, *sx = qa->s + (size_t)t * ng;
            const int16_t *q = qa->q + (size_t)t * cols;
            const float bt0 = row_prep(W, r, d, sx, sd0, bs);
            const float bt1 = R == 2 ? row_prep(W, r + 1, d, sx, sd1, bs) : 0.0f;
            __m256 a0, a1;
#define QROWS(B, GG)                                                                               \
    (R == 2 ? qrows(w0, w1, sd0, sd1, q, cols, B, GG, 2, &a0, &a1)                                 \
            : qrows(w0, w1, sd0, sd1, q, cols, B, GG, 1, &a0, &a1))
            if (bits == 4) {
                if (G == 32)
                    QROWS(4, 32);
                else if (G == 64)
                    QROWS(4, 64);
                else
                    QROWS(4, 128);
            } else {
                if (G == 32)
                    QROWS(8, 32);
                else if (G == 64)
                    QROWS(8, 64);
                else
                    QROWS(8, 128);
            }
#undef QROWS
            float *y = m->y + (size_t)t * W->rows;
            y[r] = hsum(a0) + bt0 + (m->bias ? m->bias[r] : 0.0f);
            if (R == 2) y[r + 1] = hsum(a1) + bt1 + (m->bias ? m->bias[r + 1] : 0.0f);
        }
    }
}

void brisk_cpu_swiglu_avx2(const float *g, const float *u, size_t n, float *out);
void brisk_cpu_gemm_avx2(const brisk_mm *m, int64_t p0, int64_t p1, brisk_cpu_scratch *s);

static const brisk_cpu_isa AVX2 = {
    .name = "avx2",
    .swiglu = brisk_cpu_swiglu_avx2,
    .quant = avx2_quant,
    .gemm = brisk_cpu_gemm_avx2,
    .qmm = avx2_qmm,
    .dot = avx2_dot,
    .dot_w = avx2_dot_w,
    .row_f32 = avx2_row_f32,
};

const brisk_cpu_isa *brisk_cpu_isa_avx2(void) {
    return &AVX2;
}

#else
const brisk_cpu_isa *brisk_cpu_isa_avx2(void) {
    return NULL;
}
#endif
