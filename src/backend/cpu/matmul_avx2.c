/* matmul_avx2.c: AVX2+FMA+F16C kernels (compiled with those flags only; picked at run time by
 * cpuid): integer dot products for 4/8-bit MLX weights, f16/bf16/f32 dots and row conversions. */
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "backend/cpu/x86_qmm.h"

#include <string.h>

void brisk_cpu_cvt_f32_avx2(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out);
void brisk_cpu_cvt_f32_avx2(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out) {
    int64_t i = 0;
    /* one loop per type: the decode set-up converts a few dozen values per call */
    switch (t) {
    case BRISK_W_BF16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(BRISK_W_BF16, base, i0 + i));
        break;
    case BRISK_W_F16:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(BRISK_W_F16, base, i0 + i));
        break;
    default:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(BRISK_W_F32, base, i0 + i));
        break;
    }
    if (i < n) brisk_cpu_load_f32(t, base, i0 + i, n - i, out + i);
}

float brisk_cpu_dot_avx2(const float *a, const float *b, int64_t n) {
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
float brisk_cpu_dot_w_avx2(const brisk_tensor *W, int64_t r, const float *x) {
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

void brisk_cpu_row_f32_avx2(const brisk_tensor *W, int64_t r, float *out) {
    brisk_cpu_cvt_f32_avx2(W->type, W->data, r * W->cols, W->cols, out);
}

/* 4-bit codes of one 64-value chunk against its activations x[0..3] (brisk_qact layout): four
 * mask/shift ops split the 16-bit words, four multiply-adds -> 8 int32 sums (lane L = values
 * [32L, 32L+32)). 13 vector ops per 32 bytes with the convert and FMA, against 17 when nibbles
 * were widened by unpacking. */
INLINE __m256i q4_chunk(const uint8_t *w, const int16_t *x) {
    const __m256i mf = _mm256_set1_epi16(0x000f), mff = _mm256_set1_epi16(0x00ff);
    const __m256i v = _mm256_loadu_si256((const __m256i *)w);
    const __m256i t = _mm256_srli_epi16(v, 8);
    const __m256i *xv = (const __m256i *)x; /* loads fold into the multiply-adds */
    const __m256i p01 =
        _mm256_add_epi32(_mm256_madd_epi16(_mm256_and_si256(v, mf), _mm256_loadu_si256(xv)),
                         _mm256_madd_epi16(_mm256_and_si256(v, mff), _mm256_loadu_si256(xv + 1)));
    const __m256i p23 =
        _mm256_add_epi32(_mm256_madd_epi16(_mm256_and_si256(t, mf), _mm256_loadu_si256(xv + 2)),
                         _mm256_madd_epi16(t, _mm256_loadu_si256(xv + 3)));
    return _mm256_add_epi32(p01, p23);
}

/* 8-bit codes of one 32-value block against x[0..31]: low and high bytes of each word. */
INLINE __m256i q8_block(const uint8_t *w, const int16_t *x) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)w);
    const __m256i *xv = (const __m256i *)x;
    return _mm256_add_epi32(
        _mm256_madd_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x00ff)), _mm256_loadu_si256(xv)),
        _mm256_madd_epi16(_mm256_srli_epi16(v, 8), _mm256_loadu_si256(xv + 1)));
}

INLINE __m256i qstep(const uint8_t *w, const int16_t *x, int bits) {
    return bits == 4 ? q4_chunk(w, x) : q8_block(w, x);
}

/* The f32 scale of a 32-byte step: G = 32 puts two groups in one 4-bit chunk, one per lane. */
INLINE __m256 step_scale(const float *sd, int64_t i, int G, int bits) {
    if (bits == 4 && G == 32) {
        const __m128 pair = load_pair(sd + 2 * i);
        return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(pair),
                                        _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    }
    return _mm256_broadcast_ss(sd + i * (bits == 4 ? 64 : 32) / G);
}

/* R rows (contiguous, rb bytes apart) against one token: acc[k] += per step, the integer dot of
 * 32 bytes of codes, converted, times sd[k][group] = scale * d (folded by the caller). Steps that
 * share a group (G = 128 on 4-bit, G >= 64 on 8-bit) add in int32 before one convert. The loads
 * of the activations are shared by the R rows. While it runs it prefetches QMM_PREFETCH bytes
 * ahead of the block in address order, R lines per two steps (the rows are contiguous): a decode
 * thread streams its rows once, and the hardware prefetcher alone left ~25% of the DRAM rate on
 * the table. bits, G and R are compile-time constants at every call. */
INLINE void qrows(const uint8_t *w, int64_t rb, const float *sd, int64_t ng, const int16_t *q,
                  int64_t cols, int bits, int G, int R, __m256 *out) {
    const int64_t span = bits == 4 ? 64 : 32, steps = cols / span;
    const int per = G > span ? G / (int)span : 1; /* steps per convert */
    const char *pf = (const char *)w + QMM_PREFETCH;
    /* local accumulators: through `out` (__m256 may alias) every step stored all R of them */
    __m256 acc[BRISK_QMM_ROWS];
    for (int k = 0; k < R; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < steps; i += per) {
        if ((i & 1) == 0)
            for (int k = 0; k < R; k++) _mm_prefetch(pf + i * 32 * R + k * 64, _MM_HINT_T0);
        if (per == 1) { /* one group per step: no int32 partial sums to keep live */
            for (int k = 0; k < R; k++)
                acc[k] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(qstep(w + k * rb + i * 32, q + i * span, bits)),
                    step_scale(sd + k * ng, i, G, bits), acc[k]);
            continue;
        }
        for (int k = 0; k < R; k++) {
            __m256i is = qstep(w + k * rb + i * 32, q + i * span, bits);
            for (int u = 1; u < per; u++) {
                if (((i + u) & 1) == 0 && k == 0)
                    for (int kk = 0; kk < R; kk++)
                        _mm_prefetch(pf + (i + u) * 32 * R + kk * 64, _MM_HINT_T0);
                is = _mm256_add_epi32(is,
                                      qstep(w + k * rb + (i + u) * 32, q + (i + u) * span, bits));
            }
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), step_scale(sd + k * ng, i, G, bits),
                                     acc[k]);
        }
    }
    for (int k = 0; k < R; k++) out[k] = acc[k];
}

/* Fills brisk_qact's order and values (cpu_kernels.h) for one row, bytes identical to the
 * portable brisk_cpu_quant_act: vector max, scale, clamp, the 1/16 fold of odd values (4-bit),
 * round to nearest even, X0 - c1 by a 64-bit shift, and a position table for the order. */
void brisk_cpu_quant_avx2(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d,
                          float *s) {
    static int16_t pos4[64], pos8[32];
    if (pos4[63] == 0) { /* idempotent: racing threads write the same values */
        for (int i = 0; i < 64; i++) pos4[i] = (int16_t)brisk_qact_pos(i, 4);
        for (int i = 0; i < 32; i++) pos8[i] = (int16_t)brisk_qact_pos(i, 8);
    }
    const int16_t *pos = bits == 4 ? pos4 : pos8;
    const int span = bits == 4 ? 64 : 32;
    const float limf = bits == 4 ? BRISK_QACT_MAX4 : BRISK_QACT_MAX8;
    const __m256 sign = _mm256_set1_ps(-0.0f), lim = _mm256_set1_ps(limf);
    const __m256 nlim = _mm256_set1_ps(-limf);
    /* odd values: x 1/16 (4-bit); their effective X is 16 c */
    const __m256 fold = bits == 4
                            ? _mm256_setr_ps(1, 1.0f / 16, 1, 1.0f / 16, 1, 1.0f / 16, 1, 1.0f / 16)
                            : _mm256_set1_ps(1.0f);
    const __m256i unfold =
        bits == 4 ? _mm256_setr_epi32(1, 16, 1, 16, 1, 16, 1, 16) : _mm256_set1_epi32(1);
    int32_t tmp[128];
    for (int64_t g = 0; g < cols / G; g++) {
        const float *xg = x + g * G;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < G; i += 8) /* NaN in the first operand: max keeps mx */
            mx = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xg + i)), mx);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        d[g] = amax / limf;
        const __m256 id = _mm256_set1_ps(amax > 0 ? limf / amax : 0.0f);
        __m256i sum = _mm256_setzero_si256();
        for (int i = 0; i < G; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xg + i), id);
            v = _mm256_max_ps(_mm256_min_ps(v, lim), nlim); /* NaN -> lim, as the portable */
            const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(v, fold));
            sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(r, unfold));
            /* 4-bit: even lanes X0 - c1 (the odd neighbour shifted down within 64 bits) */
            const __m256i c = bits == 4 ? _mm256_sub_epi32(r, _mm256_srli_epi64(r, 32)) : r;
            _mm256_storeu_si256((__m256i *)(tmp + i), c);
        }
        const __m128i s4 =
            _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s[g] = d[g] * (float)(_mm_cvtsi128_si32(s2) + _mm_extract_epi32(s2, 1));
        for (int i = 0; i < G; i++) {
            const int64_t c = g * G + i;
            q[(c & ~(int64_t)(span - 1)) + pos[c & (span - 1)]] = (int16_t)tmp[i];
        }
    }
}

/* avx2_qmm: rows [r0, r1) for the n (< BRISK_GEMM_MIN_N) tokens of a decode step, BRISK_QMM_ROWS
 * rows per pass over each token's activations (the block stays in L1 across tokens). Measured (AMD
 * EPYC Zen 3 VM, 4-bit g64, 2048 cols, 1 thread): see bench/RESULTS.md. */
QMM_DEFINE(avx2, qrows)

static const brisk_cpu_isa AVX2 = {
    .name = "avx2",
    .swiglu = brisk_cpu_swiglu_avx2,
    .attn = brisk_cpu_attn_avx2,
    .to_f16 = brisk_cpu_to_f16_avx2,
    .quant = brisk_cpu_quant_avx2,
    .gemm = brisk_cpu_gemm_avx2,
    .qmm = avx2_qmm,
    .dot = brisk_cpu_dot_avx2,
    .dot_w = brisk_cpu_dot_w_avx2,
    .row_f32 = brisk_cpu_row_f32_avx2,
};

const brisk_cpu_isa *brisk_cpu_isa_avx2(void) {
    return &AVX2;
}

#else
const brisk_cpu_isa *brisk_cpu_isa_avx2(void) {
    return NULL;
}
#endif
