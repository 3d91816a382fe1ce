/* cpu_kernels.h: what one ISA file (portable C, AVX2, NEON) gives the CPU backend: the int8
 * quantized-activation matmul for 4/8-bit MLX weights, float dots and row conversions. */
#ifndef BRISK_CPU_KERNELS_H
#define BRISK_CPU_KERNELS_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Activations x[n, cols] quantized to int16 with one scale per weight group (G = the weight's
 * group_size, 32..128): x[t][c] ~= d[t][c/G] * X[t][c]. s[t][g] = d * sum of X over the group
 * (the quantized x, not the float x: the bias term of an affine weight, bias_g * s_g, then pairs
 * with the codes' term into sum (scale*q + bias) * Xd, whose error is that of the centred weight,
 * about half of what a float sum leaves). Int8 activations measured 1.6-2.3e-2 on the golden
 * logits even so (issue 6 asks 1e-2); ~11 bits measure ~2e-3, 15 bits ~2e-4.
 *
 * Stored order and values, chosen so that a SIMD kernel splits packed codes with masks and one
 * shift per 16-bit word (no unpacks) and meets its activations with plain loads:
 * - 4-bit, per 64-value chunk = 32 bytes = 16 words; word j holds nibbles n0..n3 of values
 *   4j..4j+3. The kernel forms e0 = w & 0xF (n0), e1 = w & 0xFF (n0 + 16 n1), e2 = (w >> 8) & 0xF
 *   (n2), e3 = w >> 8 (n2 + 16 n3) and sums e_k * q[16k + j] (16-bit multiply-adds). So
 *   q[16+j] = c1 = round(x1/16), q[48+j] = c3 = round(x3/16), q[j] = X0 - c1, q[32+j] = X2 - c3:
 *   values 4j+1 and 4j+3 carry 11 bits (X = 16 c), 4j and 4j+2 carry 15. |X| <= 30000 keeps the
 *   differences in int16. brisk_qact_x() gives the X a kernel effectively multiplies by.
 * - 8-bit, per 32-value block = 16 words; word j holds values 2j, 2j+1: q[16k + j] = X(2j+k),
 *   the kernel forms w & 0xFF and w >> 8. |X| <= 32767.
 * In both, 16-byte lane L of a 32-byte chunk covers values [32L, 32L+32) (4-bit) or
 * [16L, 16L+16) (8-bit), so a G = 32 group never straddles lanes. */
typedef struct brisk_qact {
    int16_t *q; /* [n, cols] */
    float *d;   /* [n, cols/G] */
    float *s;   /* [n, cols/G] */
    int64_t cols;
    int G, n;
} brisk_qact;

/* Prefill GEMM blocking: panels of NR weight rows, KC columns at a time. KC = 1024 (a 64 KB
 * panel, L2) rather than 128: each K block re-reads and re-writes the panel's y for all tokens
 * (perf: 11% of prefill samples on that load at 128); llama3.2-1b 512-token prefill, 2 threads,
 * same machine minutes apart: KC 128 39-47 tok/s, 512 45-66, 1024 46-56. */
#define BRISK_GEMM_NR 16
#define BRISK_GEMM_KC 1024
/* Weight rows the decode kernels take per pass over the activations. */
#define BRISK_QMM_ROWS 4
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

/* One attention work item: the `group` consecutive query heads of one token that share a kv
 * head, over positions first..last of its sequence. The kernel writes out[group, head_dim]. */
typedef struct brisk_attn_item {
    const float *q;       /* [group, head_dim] */
    const uint16_t *k;    /* f16 kcache + kv head * head_dim: slot s's row at k + s * kv_dim */
    const uint16_t *v;    /* same for vcache */
    int64_t kv_dim;       /* halves per cache slot */
    const int32_t *table; /* slot(p) = table[p / block_size] * block_size + p % block_size */
    int block_size, first, last, group, head_dim;
    float scale; /* 1/sqrt(head_dim) */
    float *out;  /* [group, head_dim] */
} brisk_attn_item;

/* Floats of the per-thread scores scratch: the portable attention needs max_ctx (two passes over
 * one head); a chunked kernel needs a few chunks of group rows whatever the context. */
#define BRISK_ATTN_SCRATCH_MIN 4096
static inline int64_t brisk_attn_scratch(int max_ctx) {
    return max_ctx > BRISK_ATTN_SCRATCH_MIN ? max_ctx : BRISK_ATTN_SCRATCH_MIN;
}

/* Per-thread scratch the kernels may use (planned at create from max_cols). */
typedef struct brisk_cpu_scratch {
    float *row;    /* [max_cols]: one weight row as f32 */
    float *sr;     /* [2 * BRISK_QMM_ROWS * (max_cols/32 + 1)]: group scales as f32, x d */
    float *br;     /* [BRISK_QMM_ROWS * (max_cols/32 + 1)]: group biases as f32 */
    float *scores; /* [brisk_attn_scratch(max_ctx)]: attention scores */
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
    /* One attention work item with scratch[cap] (cap = brisk_attn_scratch(max_ctx)); NULL: the
     * portable two-pass path in cpu_ops.c. */
    void (*attn)(const brisk_attn_item *a, float *scratch, int64_t cap);
    /* The f16 KV cache (IEEE half, round to nearest even); each NULL: scalar util/fp.h code.
     * out[i] = f16(x[i]) (kv_store). */
    void (*to_f16)(const float *x, int64_t n, uint16_t *out);
    /* sum q[i] * f32(k[i]) (the portable attention's scores). */
    float (*dot_f16)(const float *q, const uint16_t *k, int64_t n);
    /* y[i] += w * f32(v[i]) (the portable attention's weighted V sum). */
    void (*axpy_f16)(float w, const uint16_t *v, int64_t n, float *y);
} brisk_cpu_isa;

/* Whether the integer path handles W: 4 or 8 bits, group 32/64/128, whole 64-value chunks. */
static inline bool brisk_qmm_supported(const brisk_tensor *W) {
    return W->type == BRISK_W_QAFFINE && (W->bits == 4 || W->bits == 8) &&
           (W->group_size == 32 || W->group_size == 64 || W->group_size == 128) &&
           W->cols % 64 == 0;
}

/* Where value c sits in brisk_qact (see the layout above). */
static inline int64_t brisk_qact_pos(int64_t c, int bits) {
    if (bits == 4) return (c & ~(int64_t)63) + (c & 3) * 16 + ((c & 63) >> 2);
    return (c & ~(int64_t)31) + (c & 1) * 16 + ((c & 31) >> 1);
}

/* The integer activation a kernel effectively multiplies value c by (4-bit: undoes the c1/c3
 * folding; 8-bit: q itself). q points at the row of brisk_qact. */
static inline int32_t brisk_qact_x(const int16_t *q, int64_t c, int bits) {
    if (bits != 4) return q[brisk_qact_pos(c, bits)];
    const int64_t base = c & ~(int64_t)63, j = (c & 63) >> 2;
    switch (c & 3) {
    case 0:
        return q[base + j] + q[base + 16 + j];
    case 1:
        return 16 * q[base + 16 + j];
    case 2:
        return q[base + 32 + j] + q[base + 48 + j];
    default:
        return 16 * q[base + 48 + j];
    }
}

/* Largest |X| the quantizer maps a group's max to, per bit width (see the layout above). */
#define BRISK_QACT_MAX4 30000.0f
#define BRISK_QACT_MAX8 32767.0f

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
/* AVX-512 F+BW+VL+VNNI: the AVX2 table with a 512-bit VPDPWSSD decode matvec (NULL off x86). */
const brisk_cpu_isa *brisk_cpu_isa_avx512(void);
const brisk_cpu_isa *brisk_cpu_isa_neon(void); /* NULL when not built for ARM64 */

#endif
