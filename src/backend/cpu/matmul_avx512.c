/* matmul_avx512.c: the AVX-512 ISA table (compiled with -mavx512f/bw/vl/vnni on x86-64 only;
 * picked at run time when cpuid and XCR0 say the CPU and the OS have AVX512F+BW+VL+VNNI). Every
 * op is the AVX2 one except the decode matvec for 4/8-bit weights, which does the AVX2 kernel's
 * integer arithmetic on 64 bytes of codes per step with VPDPWSSD (multiply-add and accumulate in
 * one instruction, where AVX2 needs VPMADDWD + VPADDD). It reads the same brisk_qact as AVX2 (the
 * same quantizer): the two 32-byte chunks of a 64-byte step take their activations from two
 * 32-byte loads joined once per step and shared by the 4 rows. The integer group sums equal the
 * AVX2 path's; the float accumulation runs in 16 lanes instead of 8, so results agree to
 * rounding, not bit for bit. */
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) &&                        \
    defined(__AVX512VL__) && defined(__AVX512VNNI__) && defined(__FMA__) && defined(__F16C__)
#include "backend/cpu/x86_qmm.h"

/* The activations of a 64-byte step (two 32-byte pieces of codes, each covering S = 64 (4-bit)
 * or 32 (8-bit) values): x[k] joins the k-th 16 words of each piece's activations. */
INLINE void step_x(const int16_t *q, int S, int nk, __m512i *x) {
    for (int k = 0; k < nk; k++)
        x[k] = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q + 16 * k))),
            _mm256_loadu_si256((const __m256i *)(q + S + 16 * k)), 1);
}

/* Integer dot of 64 bytes of codes against x (step_x): 4-bit splits each word into w & 0xF,
 * w & 0xFF, (w >> 8) & 0xF, w >> 8 as AVX2 does; 8-bit into w & 0xFF, w >> 8. Two chains of
 * VPDPWSSD so the latency of one does not serialize the step. Lane L (128 bits) of the result
 * covers values [32L, 32L + 32) (4-bit) or [16L, 16L + 16) (8-bit) of the step. */
INLINE __m512i qstep512(const uint8_t *w, const __m512i *x, int bits) {
    const __m512i v = _mm512_loadu_si512((const void *)w), t = _mm512_srli_epi16(v, 8);
    const __m512i mff = _mm512_set1_epi16(0x00ff), z = _mm512_setzero_si512();
    if (bits == 8)
        return _mm512_add_epi32(_mm512_dpwssd_epi32(z, _mm512_and_si512(v, mff), x[0]),
                                _mm512_dpwssd_epi32(z, t, x[1]));
    const __m512i mf = _mm512_set1_epi16(0x000f);
    const __m512i a = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, _mm512_and_si512(v, mf), x[0]),
                                          _mm512_and_si512(v, mff), x[1]);
    const __m512i b =
        _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(z, _mm512_and_si512(t, mf), x[2]), t, x[3]);
    return _mm512_add_epi32(a, b);
}

/* The one 32-byte 4-bit chunk left when cols % 128 == 64 (AVX2's q4_chunk with VNNI on 256
 * bits). */
INLINE __m256i q4_tail(const uint8_t *w, const int16_t *x) {
    const __m256i mf = _mm256_set1_epi16(0x000f), mff = _mm256_set1_epi16(0x00ff);
    const __m256i v = _mm256_loadu_si256((const __m256i *)w), t = _mm256_srli_epi16(v, 8);
    const __m256i *xv = (const __m256i *)x, z = _mm256_setzero_si256();
    const __m256i a =
        _mm256_dpwssd_epi32(_mm256_dpwssd_epi32(z, _mm256_and_si256(v, mf), _mm256_loadu_si256(xv)),
                            _mm256_and_si256(v, mff), _mm256_loadu_si256(xv + 1));
    const __m256i b = _mm256_dpwssd_epi32(
        _mm256_dpwssd_epi32(z, _mm256_and_si256(t, mf), _mm256_loadu_si256(xv + 2)), t,
        _mm256_loadu_si256(xv + 3));
    return _mm256_add_epi32(a, b);
}

/* The f32 scale of 64-byte step i (V values, gs = V / G groups: 4, 2 or 1) from sd = scale x d
 * per group; lane l gets group l * gs / 16. With G > V (8-bit G = 128) the caller passes the
 * group index. */
INLINE __m512 step_scale512(const float *sd, int64_t g, int gs) {
    if (gs == 4)
        return _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
            _mm512_castps128_ps512(_mm_loadu_ps(sd + g)));
    if (gs == 2)
        return _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_castps128_ps512(load_pair(sd + g)));
    return _mm512_set1_ps(sd[g]);
}

/* R rows (contiguous, rb bytes apart) against one token, AVX2's qrows on 64-byte steps: acc[k]
 * (8 floats) = per-lane sums of the integer step dots times sd[k][group]. Steps sharing a group
 * (8-bit G = 128) add in int32 before one convert. Prefetch: R lines per 64-byte step, which is
 * what the block consumes (R rows x 64 bytes), QMM_PREFETCH ahead in address order, and the
 * 4-bit tail chunk's R x 32 bytes get (R + 1) / 2 more, so every line of the block is covered. */
INLINE void qrows512(const uint8_t *w, int64_t rb, const float *sd, int64_t ng, const int16_t *q,
                     int64_t cols, int bits, int G, int R, __m256 *out) {
    const int S = bits == 4 ? 64 : 32, V = 2 * S; /* values per 32-byte piece, per step */
    const int64_t steps = cols / V;
    const int per = G > V ? G / V : 1, gs = G < V ? V / G : 1;
    const int nk = bits == 4 ? 4 : 2;
    const char *pf = (const char *)w + QMM_PREFETCH;
    __m512 acc[BRISK_QMM_ROWS];
    for (int k = 0; k < R; k++) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < steps; i += per) {
        __m512i x[4], is[BRISK_QMM_ROWS];
        for (int k = 0; k < R; k++) _mm_prefetch(pf + i * 64 * R + k * 64, _MM_HINT_T0);
        step_x(q + i * V, S, nk, x);
        for (int k = 0; k < R; k++) is[k] = qstep512(w + k * rb + i * 64, x, bits);
        for (int u = 1; u < per; u++) {
            for (int k = 0; k < R; k++) _mm_prefetch(pf + (i + u) * 64 * R + k * 64, _MM_HINT_T0);
            step_x(q + (i + u) * V, S, nk, x);
            for (int k = 0; k < R; k++)
                is[k] = _mm512_add_epi32(is[k], qstep512(w + k * rb + (i + u) * 64, x, bits));
        }
        for (int k = 0; k < R; k++)
            acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[k]),
                                     step_scale512(sd + k * ng, i * V / G, gs), acc[k]);
    }
    for (int k = 0; k < R; k++)
        out[k] =
            _mm256_add_ps(_mm512_castps512_ps256(acc[k]),
                          _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[k]), 1)));
    if (bits == 4 && cols % V) { /* one 64-value chunk left (G = 32 or 64) */
        for (int k = 0; k < (R + 1) / 2; k++)
            _mm_prefetch(pf + steps * 64 * R + k * 64, _MM_HINT_T0);
        const int64_t g = steps * V / G;
        for (int k = 0; k < R; k++) {
            const float *sk = sd + k * ng + g;
            const __m256 sc =
                G == 32 ? _mm256_permutevar8x32_ps(_mm256_castps128_ps256(load_pair(sk)),
                                                   _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1))
                        : _mm256_broadcast_ss(sk);
            out[k] = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(q4_tail(w + k * rb + steps * 64, q + steps * V)), sc, out[k]);
        }
    }
}

QMM_DEFINE(avx512, qrows512)

static const brisk_cpu_isa AVX512 = {
    .name = "avx512",
    .swiglu = brisk_cpu_swiglu_avx2,
    .attn = brisk_cpu_attn_avx2,
    .to_f16 = brisk_cpu_to_f16_avx2,
    .quant = brisk_cpu_quant_avx2,
    .gemm = brisk_cpu_gemm_avx2,
    .qmm = avx512_qmm,
    .dot = brisk_cpu_dot_avx2,
    .dot_w = brisk_cpu_dot_w_avx2,
    .row_f32 = brisk_cpu_row_f32_avx2,
};

const brisk_cpu_isa *brisk_cpu_isa_avx512(void) {
    return &AVX512;
}

#else
const brisk_cpu_isa *brisk_cpu_isa_avx512(void) {
    return NULL;
}
#endif
