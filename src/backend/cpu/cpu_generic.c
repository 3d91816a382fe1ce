/* cpu_generic.c: the portable pieces of the CPU backend: activation quantization, MLX affine
 * dequantization of any bit width, stored-type conversion, and a plain-C kernel table. */
#include "backend/cpu/cpu_kernels.h"
#include "util/fp.h"

#include <math.h>
#include <string.h>

/* The portable quantizer: fills brisk_qact's order and values (cpu_kernels.h) one value at a
 * time; the ISA versions must produce the same bytes. */
void brisk_cpu_quant_act(const float *x, int64_t cols, int G, int bits, int16_t *q, float *d,
                         float *s) {
    const float lim = bits == 4 ? BRISK_QACT_MAX4 : BRISK_QACT_MAX8;
    for (int64_t g = 0; g < cols / G; g++) {
        const float *xg = x + g * G;
        float amax = 0;
        for (int i = 0; i < G; i++) {
            const float a = fabsf(xg[i]);
            amax = a > amax ? a : amax; /* NaN never wins: the group quantizes to lim */
        }
        const float id = amax > 0 ? lim / amax : 0.0f;
        d[g] = amax / lim;
        int64_t sum = 0;
        for (int i = 0; i < G; i++) {
            const int64_t c = g * G + i;
            /* 4-bit: values 4j+1, 4j+3 are stored as X/16 (same rounding as the AVX2 path:
             * multiply by the float factor, then round to nearest even). */
            const int folded = bits == 4 && (c & 1);
            float v = xg[i] * id;
            v = v > lim ? lim : v < -lim ? -lim : v;
            if (v != v) v = lim;
            if (folded) v *= 1.0f / 16.0f;
            q[brisk_qact_pos(c, bits)] = (int16_t)lrintf(v);
        }
        if (bits == 4) /* X0 -> X0 - c1, X2 -> X2 - c3 (pairs inside one group: G >= 32) */
            for (int64_t c = g * G; c < (g + 1) * G; c += 2)
                q[brisk_qact_pos(c, 4)] -= q[brisk_qact_pos(c + 1, 4)];
        for (int64_t c = g * G; c < (g + 1) * G; c++) sum += brisk_qact_x(q, c, bits);
        s[g] = d[g] * (float)sum;
    }
}

void brisk_cpu_load_f32(brisk_wtype t, const void *base, int64_t i0, int64_t n, float *out) {
    const uint8_t *p = base;
    switch (t) {
    case BRISK_W_F32:
        memcpy(out, p + 4 * i0, (size_t)n * 4);
        break;
    case BRISK_W_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (i0 + i), 2);
            out[i] = brisk_f16_to_f32(h);
        }
        break;
    case BRISK_W_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * (i0 + i), 2);
            out[i] = brisk_bf16_to_f32(h);
        }
        break;
    default:
        memset(out, 0, (size_t)n * sizeof *out);
        break;
    }
}

/* Values [c0, c0+n) of row r: codes come off a bit buffer refilled a byte at a time (bits <= 8),
 * so any width works and nothing past the row's last byte is read. */
void brisk_cpu_dequant_range(const brisk_tensor *W, int64_t r, int64_t c0, int64_t n, float *out) {
    if (W->type != BRISK_W_QAFFINE) {
        brisk_cpu_load_f32(W->type, W->data, r * W->cols + c0, n, out);
        return;
    }
    const int bits = W->bits, G = W->group_size;
    const int64_t groups = W->cols / G;
    const uint8_t *p = (const uint8_t *)W->data + (size_t)((r * W->cols + c0) * bits / 8);
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t buf = 0;
    int nb = 0;
    float sc = 0, bi = 0;
    for (int64_t c = c0; c < c0 + n; c++) {
        if (c == c0 || c % G == 0) {
            brisk_cpu_load_f32(W->stype, W->scales, r * groups + c / G, 1, &sc);
            brisk_cpu_load_f32(W->stype, W->biases, r * groups + c / G, 1, &bi);
        }
        if (nb < bits) {
            buf |= (uint32_t)*p++ << nb;
            nb += 8;
        }
        out[c - c0] = sc * (float)(buf & mask) + bi;
        buf >>= bits;
        nb -= bits;
    }
}

void brisk_cpu_dequant_row(const brisk_tensor *W, int64_t r, float *out) {
    brisk_cpu_dequant_range(W, r, 0, W->cols, out);
}

static float gen_dot(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float sum = 0;
    for (; i < n; i++) sum += a[i] * b[i];
    for (int k = 0; k < 8; k++) sum += acc[k];
    return sum;
}

static void gen_row_f32(const brisk_tensor *W, int64_t r, float *out) {
    brisk_cpu_load_f32(W->type, W->data, r * W->cols, W->cols, out);
}

static float gen_dot_w(const brisk_tensor *W, int64_t r, const float *x) {
    float tmp[256], sum = 0;
    for (int64_t c = 0; c < W->cols; c += 256) {
        const int64_t k = W->cols - c < 256 ? W->cols - c : 256;
        brisk_cpu_load_f32(W->type, W->data, r * W->cols + c, k, tmp);
        sum += gen_dot(tmp, x + c, k);
    }
    return sum;
}

/* Scalar integer path: the layout oracle for the SIMD qmm kernels and the ARM fallback. */
static void gen_qmm(const brisk_mm *m, int64_t r0, int64_t r1, brisk_cpu_scratch *s) {
    const brisk_tensor *W = m->W;
    const brisk_qact *qa = m->qa;
    const int G = W->group_size, bits = W->bits;
    const int64_t cols = W->cols, ng = cols / G, rowbytes = cols * bits / 8;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)W->data + r * rowbytes;
        brisk_cpu_load_f32(W->stype, W->scales, r * ng, ng, s->sr);
        brisk_cpu_load_f32(W->stype, W->biases, r * ng, ng, s->br);
        for (int t = 0; t < m->n; t++) {
            const int16_t *q = qa->q + (size_t)t * cols;
            const float *d = qa->d + (size_t)t * ng, *sx = qa->s + (size_t)t * ng;
            float acc = 0;
            for (int64_t g = 0; g < ng; g++) {
                int64_t isum = 0;
                for (int64_t c = g * G; c < (g + 1) * G; c++) {
                    const int code = bits == 8 ? w[c] : (w[c >> 1] >> ((c & 1) * 4)) & 15;
                    isum += code * brisk_qact_x(q, c, bits);
                }
                acc += s->sr[g] * d[g] * (float)isum + s->br[g] * sx[g];
            }
            m->y[(size_t)t * W->rows + r] = acc + (m->bias ? m->bias[r] : 0.0f);
        }
    }
}

static const brisk_cpu_isa GENERIC = {
    .name = "generic",
    .qmm = gen_qmm,
    .dot = gen_dot,
    .dot_w = gen_dot_w,
    .row_f32 = gen_row_f32,
};

const brisk_cpu_isa *brisk_cpu_isa_generic(void) {
    return &GENERIC;
}
