/* ops_avx2.c: AVX2+FMA elementwise kernels: SwiGLU with a vector exp (Cephes-style polynomial
 * on the reduced argument), so the MLP's n_ff exps per token are not scalar libm calls; and
 * the f32 -> f16 KV store (F16C, round to nearest even) and attention over the paged f16 KV
 * cache (one kv head's query group per call; F16C loads, f32 math). */
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "util/error.h"
#include "util/fp.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

void brisk_cpu_swiglu_avx2(const float *g, const float *u, size_t n, float *out);
void brisk_cpu_attn_avx2(const brisk_attn_item *a, float *scratch, int64_t cap);
void brisk_cpu_to_f16_avx2(const float *x, int64_t n, uint16_t *out);

/* exp(x) for x in [-87, 88]: x = k ln2 + r, |r| <= ln2/2; exp(r) = 1 + r + r^2 P(r) with a
 * degree-5 P (relative error ~2e-7), times 2^k built in the exponent bits. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 swiglu8(__m256 x, __m256 u) {
    const __m256 den =
        _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
    return _mm256_mul_ps(_mm256_div_ps(x, den), u);
}

/* The tail goes through the same vector math (padded), so every value is computed the same way
 * wherever a range starts: matmul_swiglu applies it per row chunk and must match the whole-vector
 * op bit for bit. */
void brisk_cpu_swiglu_avx2(const float *g, const float *u, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        float tg[8] = {0}, tu[8] = {0}, to[8];
        memcpy(tg, g + i, (n - i) * sizeof *tg);
        memcpy(tu, u + i, (n - i) * sizeof *tu);
        _mm256_storeu_ps(to, swiglu8(_mm256_loadu_ps(tg), _mm256_loadu_ps(tu)));
        memcpy(out + i, to, (n - i) * sizeof *to);
    }
}

/* The tail goes through the scalar util/fp.h conversion, which rounds the same way. */
void brisk_cpu_to_f16_avx2(const float *x, int64_t n, uint16_t *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) out[i] = brisk_f32_to_f16(x[i]);
}

/* Eight f16 values as f32. */
static inline __m256 load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* Positions per chunk of the online softmax (the chunk's scores for the whole group stay in L1). */
enum { ATTN_CHUNK = 128 };
/* Positions ahead the score loop prefetches K rows. */
enum { ATTN_PF = 8 };

/* Dots of nq (1..4) query rows with one f16 key row: out[g] = q[g] . k. The key is loaded (and
 * converted) once per 8 values for all the rows; the sums fold with hadd (lane g of the result is
 * row g). */
static inline void dots4(const float *q, int hd, const uint16_t *k, int nq, float *out) {
    const int hd8 = hd & ~7;
    const float *q1 = q + (nq > 1 ? hd : 0), *q2 = q + (nq > 2 ? 2 * hd : 0),
                *q3 = q + (nq > 3 ? 3 * hd : 0);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int d = 0; d < hd8; d += 8) {
        const __m256 kv = load_f16(k + d);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), kv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q1 + d), kv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q2 + d), kv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q3 + d), kv, a3);
    }
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    float r[4];
    _mm_storeu_ps(r, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int g = 0; g < nq; g++) {
        const float *qg = q + (size_t)g * hd;
        for (int d = hd8; d < hd; d++) r[g] += qg[d] * brisk_f16_to_f32(k[d]);
        out[g] = r[g];
    }
}

/* Online softmax over chunks of ATTN_CHUNK positions: per chunk, the group's scores (each key row
 * read once for all query heads), then per head the new running max, the exps (exp8) and the
 * rescale of the running sum and output, then the weighted V rows (each read once per group).
 * scratch: running max [group], running sum [group], scores [group][chunk]. */
void brisk_cpu_attn_avx2(const brisk_attn_item *a, float *scratch, int64_t cap) {
    const int G = a->group, hd = a->head_dim, hd8 = hd & ~7, bs = a->block_size;
    int64_t C = (cap - 2 * (int64_t)G) / G;
    C = C > ATTN_CHUNK ? ATTN_CHUNK : C;
    BRISK_ASSERT(C >= 1);
    float *mx = scratch, *sum = scratch + G, *sc = scratch + 2 * G;
    for (int g = 0; g < G; g++) mx[g] = -INFINITY, sum[g] = 0;
    memset(a->out, 0, (size_t)G * hd * sizeof *a->out);
    for (int t0 = a->first; t0 <= a->last; t0 += (int)C) {
        const int n = a->last - t0 + 1 < C ? a->last - t0 + 1 : (int)C;
        for (int u = 0; u < n; u++) {
            const int t = t0 + u;
            const int64_t row = ((int64_t)a->table[t / bs] * bs + t % bs) * a->kv_dim;
            const uint16_t *kt = a->k + row;
            /* A head's f16 row is only hd * 2 bytes of each kv_dim-wide slot: the hardware
             * prefetchers miss such sparse rows, so fetch the K row ATTN_PF positions ahead and
             * this position's V row (read after the chunk's softmax). */
            if (t + ATTN_PF <= a->last) {
                const int tp = t + ATTN_PF;
                const char *kp =
                    (const char *)(a->k + ((int64_t)a->table[tp / bs] * bs + tp % bs) * a->kv_dim);
                for (int b = 0; b < hd * 2; b += 64) _mm_prefetch(kp + b, _MM_HINT_T0);
            }
            for (int b = 0; b < hd * 2; b += 64)
                _mm_prefetch((const char *)(a->v + row) + b, _MM_HINT_T0);
            for (int g = 0; g < G; g += 4) {
                float r[4];
                const int nq = G - g < 4 ? G - g : 4;
                dots4(a->q + (size_t)g * hd, hd, kt, nq, r);
                for (int e = 0; e < nq; e++) sc[(g + e) * C + u] = r[e] * a->scale;
            }
        }
        for (int g = 0; g < G; g++) {
            float *s = sc + g * C, m = mx[g];
            for (int u = 0; u < n; u++) m = s[u] > m ? s[u] : m;
            const float corr = expf(mx[g] - m); /* 0 on the first chunk (-inf) */
            mx[g] = m;
            const __m256 vm = _mm256_set1_ps(m);
            __m256 vs = _mm256_setzero_ps();
            int u = 0;
            for (; u + 8 <= n; u += 8) {
                const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + u), vm));
                _mm256_storeu_ps(s + u, e);
                vs = _mm256_add_ps(vs, e);
            }
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(vs), _mm256_extractf128_ps(vs, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            float cs = _mm_cvtss_f32(h);
            for (; u < n; u++) cs += s[u] = expf(s[u] - m);
            sum[g] = sum[g] * corr + cs;
            if (corr != 1.0f) {
                float *o = a->out + (size_t)g * hd;
                const __m256 vc = _mm256_set1_ps(corr);
                int d = 0;
                for (; d < hd8; d += 8)
                    _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), vc));
                for (; d < hd; d++) o[d] *= corr;
            }
        }
        for (int u = 0; u < n; u++) {
            const int t = t0 + u;
            const uint16_t *vt = a->v + ((int64_t)a->table[t / bs] * bs + t % bs) * a->kv_dim;
            /* Each 8 values of the row converted once, then added to every head's output. */
            int d = 0;
            for (; d < hd8; d += 8) {
                const __m256 v8 = load_f16(vt + d);
                for (int g = 0; g < G; g++) {
                    float *o = a->out + (size_t)g * hd + d;
                    _mm256_storeu_ps(
                        o, _mm256_fmadd_ps(_mm256_set1_ps(sc[g * C + u]), v8, _mm256_loadu_ps(o)));
                }
            }
            for (; d < hd; d++) {
                const float vf = brisk_f16_to_f32(vt[d]);
                for (int g = 0; g < G; g++) a->out[(size_t)g * hd + d] += sc[g * C + u] * vf;
            }
        }
    }
    for (int g = 0; g < G; g++) {
        float *o = a->out + (size_t)g * hd;
        const float inv = 1.0f / sum[g];
        const __m256 vi = _mm256_set1_ps(inv);
        int d = 0;
        for (; d < hd8; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), vi));
        for (; d < hd; d++) o[d] *= inv;
    }
}
#endif
