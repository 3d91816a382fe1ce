/* gemm_avx2.c: the AVX2+FMA prefill GEMM: weights of any type dequantized once per panel of 16
 * rows x 128 columns into L1 (k-major), then a 6-token x 16-row FMA micro-kernel over it. */
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define NR     BRISK_GEMM_NR
#define KC     BRISK_GEMM_KC
#define MR     6

void brisk_cpu_gemm_avx2(const brisk_mm *m, int64_t p0, int64_t p1, brisk_cpu_scratch *s);
void brisk_cpu_cvt_f32_avx2(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out);

/* Values [c0, c0+kc) of row r as f32, 8 at a time for 4/8-bit codes (a broadcast word shifted
 * per lane, or 8 bytes widened), with the group's scale and bias in one FMA. */
static void dq_range(const brisk_tensor *W, int64_t r, int64_t c0, int kc, float *out) {
    const int64_t cols = W->cols;
    if (W->type != BRISK_W_QAFFINE) {
        brisk_cpu_cvt_f32_avx2(W->type, W->data, r * cols + c0, kc, out);
        return;
    }
    const int G = W->group_size, bits = W->bits;
    if ((bits != 4 && bits != 8) || kc % 8 || G % 8 || c0 % G) {
        brisk_cpu_dequant_range(W, r, c0, kc, out);
        return;
    }
    float sc[KC / 8 + 1], bi[KC / 8 + 1];
    const int64_t ng = cols / G, g0 = c0 / G;
    const int gn = (kc + G - 1) / G;
    brisk_cpu_cvt_f32_avx2(W->stype, W->scales, r * ng + g0, gn, sc);
    brisk_cpu_cvt_f32_avx2(W->stype, W->biases, r * ng + g0, gn, bi);
    const uint8_t *base = (const uint8_t *)W->data + (r * cols + c0) * bits / 8;
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i m4 = _mm256_set1_epi32(15);
    for (int c = 0; c < kc; c += 8) {
        __m256i v;
        if (bits == 4) {
            uint32_t word;
            memcpy(&word, base + c / 2, 4);
            v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)word), shifts), m4);
        } else {
            v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(base + c)));
        }
        const int g = c / G;
        _mm256_storeu_ps(out + c, _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(sc[g]),
                                                  _mm256_set1_ps(bi[g])));
    }
}

/* acc[i] += x[t+i][k0..k0+kc) . pack: 12 accumulators, per k two panel loads, MR broadcasts and
 * 2*MR FMAs, so the loop is FMA-bound (peak 2 FMA/cycle/core). */
INLINE void micro(const float *pack, int kc, const float *x, int64_t ldx, int mr, __m256 *out) {
    /* Local accumulators: __m256 may alias floats, so accumulating through `out` would store
     * all 12 every iteration (measured: half the loop's time). */
    __m256 acc[2 * MR];
    for (int i = 0; i < 2 * MR; i++) acc[i] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(pack + k * NR), b1 = _mm256_load_ps(pack + k * NR + 8);
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(x + i * ldx + k);
            acc[2 * i] = _mm256_fmadd_ps(a, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm256_fmadd_ps(a, b1, acc[2 * i + 1]);
        }
    }
    for (int i = 0; i < 2 * mr; i++) out[i] = acc[i];
}

/* Measured: llama3.2-1b q4g64, 512 tokens, 2 threads: see bench/RESULTS.md (KC = 128: 94 GFLOP/s,
 * 60% of the 156 GFLOP/s FMA peak at 2.45 GHz (bench/RESULTS.md). Panel p owns output columns [16p,
 * 16p+16) of every token: y is written only by its taker. */
void brisk_cpu_gemm_avx2(const brisk_mm *m, int64_t p0, int64_t p1, brisk_cpu_scratch *s) {
    const brisk_tensor *W = m->W;
    const int64_t rows = W->rows, cols = W->cols;
    float *pack = s->pack, *tmp = s->row;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t r0 = p * NR;
        const int nr = rows - r0 < NR ? (int)(rows - r0) : NR;
        for (int64_t k0 = 0; k0 < cols; k0 += KC) {
            const int kc = cols - k0 < KC ? (int)(cols - k0) : KC;
            for (int i = 0; i < NR; i++) {
                if (i < nr)
                    dq_range(W, r0 + i, k0, kc, tmp);
                else
                    memset(tmp, 0, (size_t)kc * sizeof *tmp);
                for (int k = 0; k < kc; k++) pack[k * NR + i] = tmp[k];
            }
            for (int t = 0; t < m->n; t += MR) {
                const int mr = m->n - t < MR ? m->n - t : MR;
                __m256 acc[2 * MR];
                const float *x = m->x + (size_t)t * cols + k0;
                switch (mr) {
                case 6:
                    micro(pack, kc, x, cols, 6, acc);
                    break;
                case 5:
                    micro(pack, kc, x, cols, 5, acc);
                    break;
                case 4:
                    micro(pack, kc, x, cols, 4, acc);
                    break;
                case 3:
                    micro(pack, kc, x, cols, 3, acc);
                    break;
                case 2:
                    micro(pack, kc, x, cols, 2, acc);
                    break;
                default:
                    micro(pack, kc, x, cols, 1, acc);
                    break;
                }
                for (int i = 0; i < mr; i++) {
                    float *y = m->y + (size_t)(t + i) * rows + r0;
                    float out[NR];
                    _mm256_storeu_ps(out, acc[2 * i]);
                    _mm256_storeu_ps(out + 8, acc[2 * i + 1]);
                    for (int j = 0; j < nr; j++) {
                        const float init = k0 == 0 ? (m->bias ? m->bias[r0 + j] : 0.0f) : y[j];
                        y[j] = init + out[j];
                    }
                }
            }
        }
    }
}
#endif
