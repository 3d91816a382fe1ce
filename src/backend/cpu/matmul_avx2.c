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
    case BRISK_W_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(base + 2 * i)));
    case BRISK_W_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(base + 2 * i))), 16));
    default: return _mm256_loadu_ps((const float *)(base + 4 * i));
    }
}

static void cvt_f32(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out) {
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
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
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
    cvt_f32(W->type, W->data, r * W->cols, W->cols, out);
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

/* One 4-bit weight row against T tokens. Per 64 values: 32 bytes of codes split into low and
 * high nibbles, widened to int16 by unpacking with zero (in-lane, matching brisk_qact_pos), four
 * madds against the int16 activations, then one scale by d[t][g] * s[r][g] per chunk. */
INLINE void q4_tile(const uint8_t *w, const float *sr, const brisk_qact *qa, int t0, int T,
                    __m256 *acc) {
    const int64_t cols = qa->cols, ng = cols / qa->G;
    const int G = qa->G;
    const __m256i m4 = _mm256_set1_epi8(0x0f), z = _mm256_setzero_si256();
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t c = 0; c < cols / 64; c++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + c * 32));
        const __m256i lo = _mm256_and_si256(v, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        const __m256i v0 = _mm256_unpacklo_epi8(lo, z), v1 = _mm256_unpackhi_epi8(lo, z);
        const __m256i v2 = _mm256_unpacklo_epi8(hi, z), v3 = _mm256_unpackhi_epi8(hi, z);
        const __m256 S = chunk_scale(sr, c, G);
        for (int t = 0; t < T; t++) {
            const __m256i *q = (const __m256i *)(qa->q + (size_t)(t0 + t) * cols + c * 64);
            const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(v0, _mm256_loadu_si256(q)),
                                                 _mm256_madd_epi16(v1, _mm256_loadu_si256(q + 1)));
            const __m256i p23 = _mm256_add_epi32(_mm256_madd_epi16(v2, _mm256_loadu_si256(q + 2)),
                                                 _mm256_madd_epi16(v3, _mm256_loadu_si256(q + 3)));
            const __m256 f = _mm256_cvtepi32_ps(_mm256_add_epi32(p01, p23));
            const __m256 D = chunk_scale(qa->d + (size_t)(t0 + t) * ng, c, G);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(f, D), S, acc[t]);
        }
    }
}

/* One 8-bit weight row against T tokens: 32 codes widened to int16 (unpack with zero), two
 * madds (255 * 32767 * 2 fits int32 with room for the 16 pairs a lane sums per group of 128). */
INLINE void q8_tile(const uint8_t *w, const float *sr, const brisk_qact *qa, int t0, int T,
                    __m256 *acc) {
    const int64_t cols = qa->cols, ng = cols / qa->G;
    const int G = qa->G;
    const __m256i z = _mm256_setzero_si256();
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < cols / 32; b++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + b * 32));
        const __m256i v0 = _mm256_unpacklo_epi8(v, z), v1 = _mm256_unpackhi_epi8(v, z);
        const int64_t g = b * 32 / G;
        const __m256 S = _mm256_broadcast_ss(sr + g);
        for (int t = 0; t < T; t++) {
            const __m256i *q = (const __m256i *)(qa->q + (size_t)(t0 + t) * cols + b * 32);
            const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(v0, _mm256_loadu_si256(q)),
                                               _mm256_madd_epi16(v1, _mm256_loadu_si256(q + 1)));
            const __m256 D = _mm256_broadcast_ss(qa->d + (size_t)(t0 + t) * ng + g);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p), D), S, acc[t]);
        }
    }
}

INLINE void tile(const brisk_mm *m, const uint8_t *w, const float *sr, int t0, int T, __m256 *acc) {
    if (m->W->bits == 4) q4_tile(w, sr, m->qa, t0, T, acc);
    else q8_tile(w, sr, m->qa, t0, T, acc);
}

/* Rows [r0, r1) x all tokens. Tokens go in blocks whose activations fit in L2 (~256 KB),
 * and within a block 4 at a time per weight row, so a row is unpacked once per 4 tokens.
 * Decode (n = 1) streams each row once: 4-bit llama3.2-1b reaches ~see bench/RESULTS.md. */
static void avx2_qmm(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {
    const brisk_tensor *W = m->W;
    const brisk_qact *qa = m->qa;
    const int64_t cols = W->cols, ng = cols / W->group_size, rowbytes = cols * W->bits / 8;
    int TB = (int)((128 * 1024) / cols) & ~3;
    if (TB < 4) TB = 4;
    for (int tb = 0; tb < m->n; tb += TB) {
        const int te = tb + TB < m->n ? tb + TB : m->n;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w = (const uint8_t *)W->data + r * rowbytes;
            cvt_f32(W->stype, W->scales, r * ng, ng, s->sr);
            cvt_f32(W->stype, W->biases, r * ng, ng, s->br);
            const float bias = m->bias ? m->bias[r] : 0.0f;
            for (int t = tb; t < te; t += 4) {
                __m256 acc[4];
                const int T = te - t < 4 ? te - t : 4;
                switch (T) {
                case 4: tile(m, w, s->sr, t, 4, acc); break;
                case 3: tile(m, w, s->sr, t, 3, acc); break;
                case 2: tile(m, w, s->sr, t, 2, acc); break;
                default: tile(m, w, s->sr, t, 1, acc); break;
                }
                for (int k = 0; k < T; k++)
                    m->y[(size_t)(t + k) * W->rows + r] =
                        hsum(acc[k]) + avx2_dot(s->br, qa->s + (size_t)(t + k) * ng, ng) + bias;
            }
        }
    }
}

void brisk_cpu_swiglu_avx2(const float *g, const float *u, size_t n, float *out);

static const brisk_cpu_isa AVX2 = {
    .name = "avx2",
    .swiglu = brisk_cpu_swiglu_avx2,
    .qmm = avx2_qmm,
    .dot = avx2_dot,
    .dot_w = avx2_dot_w,
    .row_f32 = avx2_row_f32,
};

const brisk_cpu_isa *brisk_cpu_isa_avx2(void) { return &AVX2; }

#else
const brisk_cpu_isa *brisk_cpu_isa_avx2(void) { return NULL; }
#endif
