/* cpu_kernels.h: what one ISA file (portable C, AVX2, NEON) gives the CPU backend: the int8
 * quantized-activation matmul for 4/8-bit MLX weights, float dots and row conversions. */
#ifndef BRISK_CPU_KERNELS_H
#define BRISK_CPU_KERNELS_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Activations x[n, cols] quantized to int16 with one scale per weight group (G = the weight's
 * group_size, 32..128): x[t][c] ~= d[t][c/G] * q[t][c] (|q| <= 32767, so the relative error is
 * ~1e-5 and whole-model logits stay within ~1e-4 of the reference; int8 measured 1.5-6e-2).
 * s[t][g] is the float sum of x over the group (the bias term of an affine-quantized weight is
 * bias_g * s_g). Within a 64-value chunk (4-bit) or 32-value block (8-bit) the values sit in the
 * order the SIMD unpack of packed codes produces (brisk_qact_pos), so codes meet their
 * activations with plain loads. */
typedef struct brisk_qact {
    int16_t *q; /* [n, cols] */
    float *d;   /* [n, cols/G] */
    float *s;   /* [n, cols/G] */
    int64_t cols;
    int G, n;
} brisk_qact;

/* Prefill GEMM blocking: panels of NR weight rows, KC columns at a time. */
#define BRISK_GEMM_NR 16
#define BRISK_GEMM_KC 128
/* Steps with at least this many tokens use the GEMM; fewer use the decode kernels. */
#define BRISK_GEMM_MIN_N 6

/* One matmul y[n, W.rows] = x[n, W.cols] W^T (+ bias) as the kernels see it. */
typedef struct brisk_mm {
    const brisk_tensor *W;
    const float *bias; /* [W.rows] or NULL */
    const float *x;    /* [n, W.cols] */
    const brisk_qact *qa;
    int n;
    float *y; /* [n, W.rows] */
} brisk_mm;

/* Per-thread scratch the kernels may use (planned at create from max_cols). */
typedef struct brisk_cpu_scratch {
    float *row;    /* [max_cols]: one weight row as f32 */
    float *sr;     /* [max_cols/32]: one row's group scales as f32 */
    float *br;     /* [max_cols/32]: one row's group biases as f32 */
    float *scores; /* [max_ctx]: attention scores */
    float *pack;   /* [BRISK_GEMM_KC * BRISK_GEMM_NR]: a dequantized weight panel, k-major */
} brisk_cpu_scratch;

typedef struct brisk_cpu_isa {
    const char *name;
    /* Rows [r0, r1) of y for all n tokens of a 4- or 8-bit QAFFINE W from m->qa; NULL when the
     * ISA has no int8 path (the generic row path runs instead). */
    void (*qmm)(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s);
    /* Panels [p0, p1) of BRISK_GEMM_NR rows x all n tokens, any weight type, f32 FMA (prefill);
     * NULL when the ISA has none (the row path runs instead). */
    void (*gemm)(const brisk_mm *m, int64_t p0, int64_t p1, brisk_cpu_scratch *s);
    /* brisk_cpu_quant_act for one row (NULL: the portable one). */
    void (*quant)(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d, float *s);
    /* sum a[i] * b[i]. */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* Dot of row r of an F32/F16/BF16 W with x (decode: reads the weights once, no copy). */
    float (*dot_w)(const brisk_tensor *W, int64_t r, const float *x);
    /* Row r of an F32/F16/BF16 W as f32. */
    void (*row_f32)(const brisk_tensor *W, int64_t r, float *out);
    /* out[i] = silu(g[i]) * u[i] over n values (out may alias g). */
    void (*swiglu)(const float *g, const float *u, size_t n, float *out);
} brisk_cpu_isa;

/* Whether the integer path handles W: 4 or 8 bits, group 32/64/128, whole 64-value chunks. */
static inline bool brisk_qmm_supported(const brisk_tensor *W) {
    return W->type == BRISK_W_QAFFINE && (W->bits == 4 || W->bits == 8) &&
           (W->group_size == 32 || W->group_size == 64 || W->group_size == 128) &&
           W->cols % 64 == 0;
}

/* Where value e of a chunk sits in brisk_qact. 4-bit, per 64: 32 packed bytes, low nibbles =
 * even values and high = odd; the four int16 vectors are unpacklo/unpackhi (per 128-bit lane)
 * of the low then of the high nibbles, so lane L of each holds values of 32L..32L+31 (one
 * 32-group per lane). 8-bit, per 32: unpacklo then unpackhi of the 32 bytes. */
static inline int64_t brisk_qact_pos(int64_t c, int bits) {
    if (bits == 4) {
        const int64_t e = c & 63, o = e & 1, ee = e - o, L = ee >> 5, j = (ee & 31) >> 1;
        return (c & ~63) + (2 * o + (j >= 8)) * 16 + L * 8 + (j & 7);
    }
    const int64_t e = c & 31, L = e >> 4, j = e & 15;
    return (c & ~31) + (j >= 8) * 16 + L * 8 + (j & 7);
}

/* Portable pieces shared by every ISA (cpu_generic.c). */
void brisk_cpu_quant_act(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d,
                         float *s);
/* Values [c0, c0 + n) of row r of any W as f32 (c0 a multiple of 8 for QAFFINE). */
void brisk_cpu_dequant_range(const brisk_tensor *W, int64_t r, int64_t c0, int64_t n, float *out);
void brisk_cpu_dequant_row(const brisk_tensor *W, int64_t r, float *out);
/* Converts n stored values (F32/F16/BF16) starting at element i0 of base to f32. */
void brisk_cpu_load_f32(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out);

const brisk_cpu_isa *brisk_cpu_isa_generic(void);
const brisk_cpu_isa *brisk_cpu_isa_avx2(void); /* NULL when not built for x86 */
const brisk_cpu_isa *brisk_cpu_isa_neon(void); /* NULL when not built for ARM64 */

#endif
