/* emu512.c: plain-C stand-ins for the AVX-512 intrinsics matmul_avx512.c uses, so its kernel
 * logic (layout, lanes, scales, tails) runs through tests/ops on an AVX2 machine. Not part of the
 * build: run.sh compiles it. It checks the arithmetic, not the real instructions' encoding or
 * speed. */
#include <immintrin.h>
#include <string.h>
#include <stdint.h>
typedef union {
    __m512i v;
    int16_t h[32];
    int32_t i[16];
    uint8_t b[64];
    uint16_t uh[32];
} UI;
typedef union {
    __m512 v;
    float f[16];
} UF;
typedef union {
    __m512d v;
    double d[8];
    float f[16];
} UD;
typedef union {
    __m256i v;
    int16_t h[16];
    int32_t i[8];
} UI2;
static inline __m512i e_loadu_si512(const void *p) {
    UI u;
    memcpy(u.b, p, 64);
    return u.v;
}
static inline __m512i e_castsi256_si512(__m256i a) {
    UI u;
    memset(&u, 0x5a, 64);
    memcpy(u.b, &a, 32);
    return u.v;
}
static inline __m512i e_inserti64x4(__m512i a, __m256i b, int imm) {
    UI u;
    u.v = a;
    memcpy(u.b + 32 * (imm & 1), &b, 32);
    return u.v;
}
static inline __m512i e_srli_epi16(__m512i a, int s) {
    UI u;
    u.v = a;
    for (int k = 0; k < 32; k++) u.uh[k] = (uint16_t)(u.uh[k] >> s);
    return u.v;
}
static inline __m512i e_set1_epi16(short x) {
    UI u;
    for (int k = 0; k < 32; k++) u.h[k] = x;
    return u.v;
}
static inline __m512i e_setzero_si512(void) {
    UI u;
    memset(&u, 0, 64);
    return u.v;
}
static inline __m512i e_and_si512(__m512i a, __m512i b) {
    UI x, y;
    x.v = a;
    y.v = b;
    for (int k = 0; k < 64; k++) x.b[k] &= y.b[k];
    return x.v;
}
static inline __m512i e_add_epi32(__m512i a, __m512i b) {
    UI x, y;
    x.v = a;
    y.v = b;
    for (int k = 0; k < 16; k++) x.i[k] = (int32_t)((uint32_t)x.i[k] + (uint32_t)y.i[k]);
    return x.v;
}
static inline __m512i e_dpwssd512(__m512i s, __m512i a, __m512i b) {
    UI r, x, y;
    r.v = s;
    x.v = a;
    y.v = b;
    for (int k = 0; k < 16; k++)
        r.i[k] = (int32_t)((uint32_t)r.i[k] + (uint32_t)(x.h[2 * k] * y.h[2 * k]) +
                           (uint32_t)(x.h[2 * k + 1] * y.h[2 * k + 1]));
    return r.v;
}
static inline __m256i e_dpwssd256(__m256i s, __m256i a, __m256i b) {
    UI2 r, x, y;
    r.v = s;
    x.v = a;
    y.v = b;
    for (int k = 0; k < 8; k++)
        r.i[k] = (int32_t)((uint32_t)r.i[k] + (uint32_t)(x.h[2 * k] * y.h[2 * k]) +
                           (uint32_t)(x.h[2 * k + 1] * y.h[2 * k + 1]));
    return r.v;
}
static inline __m512i e_setr_epi32(int a0, int a1, int a2, int a3, int a4, int a5, int a6, int a7,
                                   int a8, int a9, int a10, int a11, int a12, int a13, int a14,
                                   int a15) {
    UI u;
    int t[16] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15};
    memcpy(u.i, t, 64);
    return u.v;
}
static inline __m512 e_permutexvar_ps(__m512i idx, __m512 a) {
    UI ix;
    UF x, r;
    ix.v = idx;
    x.v = a;
    for (int k = 0; k < 16; k++) r.f[k] = x.f[ix.i[k] & 15];
    return r.v;
}
static inline __m512 e_castps128_ps512(__m128 a) {
    UF u;
    for (int k = 0; k < 16; k++) u.f[k] = 1e30f;
    memcpy(u.f, &a, 16);
    return u.v;
}
static inline __m512 e_set1_ps(float a) {
    UF u;
    for (int k = 0; k < 16; k++) u.f[k] = a;
    return u.v;
}
static inline __m512 e_setzero_ps(void) {
    return e_set1_ps(0.0f);
}
static inline __m512 e_fmadd_ps(__m512 a, __m512 b, __m512 c) {
    UF x, y, z;
    x.v = a;
    y.v = b;
    z.v = c;
    for (int k = 0; k < 16; k++) z.f[k] = __builtin_fmaf(x.f[k], y.f[k], z.f[k]);
    return z.v;
}
static inline __m512 e_cvtepi32_ps(__m512i a) {
    UI x;
    UF r;
    x.v = a;
    for (int k = 0; k < 16; k++) r.f[k] = (float)x.i[k];
    return r.v;
}
static inline __m256 e_castps512_ps256(__m512 a) {
    __m256 r;
    memcpy(&r, &a, 32);
    return r;
}
static inline __m512d e_castps_pd(__m512 a) {
    __m512d r;
    memcpy(&r, &a, 64);
    return r;
}
static inline __m256d e_extractf64x4_pd(__m512d a, int imm) {
    __m256d r;
    memcpy(&r, (char *)&a + 32 * (imm & 1), 32);
    return r;
}
#define _mm512_loadu_si512     e_loadu_si512
#define _mm512_castsi256_si512 e_castsi256_si512
#define _mm512_inserti64x4     e_inserti64x4
#define _mm512_srli_epi16      e_srli_epi16
#define _mm512_set1_epi16      e_set1_epi16
#define _mm512_setzero_si512   e_setzero_si512
#define _mm512_and_si512       e_and_si512
#define _mm512_add_epi32       e_add_epi32
#define _mm512_dpwssd_epi32    e_dpwssd512
#undef _mm256_dpwssd_epi32
#define _mm256_dpwssd_epi32 e_dpwssd256
#undef _mm512_setr_epi32
#define _mm512_setr_epi32      e_setr_epi32
#define _mm512_permutexvar_ps  e_permutexvar_ps
#define _mm512_castps128_ps512 e_castps128_ps512
#define _mm512_set1_ps         e_set1_ps
#define _mm512_setzero_ps      e_setzero_ps
#define _mm512_fmadd_ps        e_fmadd_ps
#define _mm512_cvtepi32_ps     e_cvtepi32_ps
#define _mm512_castps512_ps256 e_castps512_ps256
#define _mm512_castps_pd       e_castps_pd
#define _mm512_extractf64x4_pd e_extractf64x4_pd
#define __AVX512F__            1
#define __AVX512BW__           1
#define __AVX512VL__           1
#define __AVX512VNNI__         1
#include "backend/cpu/matmul_avx512.c"
