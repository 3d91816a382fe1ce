/* emu_weights.h: what the emulator's GEMV tests share (test_gemv_emu.cpp: v7;
 * test_gemv_batch_emu.cpp: v8): a seeded generator, "device" memory, and random 4-bit MLX-affine
 * matrices packed into the mma layout as the backend's upload does (k_repack_mma, k_interleave of
 * cuda_gemv.cu, ported), with their values as doubles for the references. Include after
 * cuda_internal.h and cuda_mma.cuh (emu_cuda.h's half conversions, cu_weight, mma_sb_index). */
#ifndef BRISK_EMU_WEIGHTS_H
#define BRISK_EMU_WEIGHTS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <vector>

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_u64(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static double uniform(double lo, double hi) { /* [lo, hi) */
    return lo + (hi - lo) * (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* "Device" memory: 64-byte aligned host memory, freed with the case. */
struct arena {
    std::vector<std::unique_ptr<void, void (*)(void *)>> bufs;
    template <typename T> T *alloc(size_t n) {
        const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        void *p = aligned_alloc(64, bytes ? bytes : 64);
        memset(p, 0, bytes);
        bufs.emplace_back(p, free);
        return (T *)p;
    }
};

/* A scale or bias as stored in scale type st (bits in *out), and the value the kernel decodes. */
static double store_sb(double v, int st, uint8_t *out) {
    if (st == BRISK_W_F32) {
        const float f = (float)v;
        memcpy(out, &f, 4);
        return f;
    }
    uint16_t h;
    if (st == BRISK_W_F16) {
        h = emu_f2h((float)v);
    } else { /* bf16, rounded to nearest even */
        const uint32_t u = emu_bits<uint32_t>((float)v);
        h = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    memcpy(out, &h, 2);
    return st == BRISK_W_F16 ? emu_h2f(h) : (double)emu_bits<float>((uint32_t)h << 16);
}

/* One random 4-bit matrix [rows, K]: w = scale * q + bias per group of gs columns, in the
 * device's mma layout (cu_weight fast == 2) and as doubles for the reference. */
struct matrix {
    cu_weight w;
    std::vector<double> ref; /* [rows][K] */
};

static void make_matrix(matrix &M, arena &A, int rows, int K, int gs, int st) {
    const int64_t row_bytes = K / 2, ng = K / gs, tiles = (rows + 15) / 16;
    const int elem = st == BRISK_W_F32 ? 4 : 2;
    /* the file's order: a little-endian stream of 4-bit codes per row */
    std::vector<uint8_t> codes((size_t)(rows * row_bytes));
    for (auto &c : codes) c = (uint8_t)next_u64();
    std::vector<uint8_t> sc((size_t)(rows * ng * elem)), bi(sc.size());
    std::vector<double> s((size_t)(rows * ng)), b(s.size());
    for (int64_t i = 0; i < rows * ng; i++) {
        const double scale = uniform(0.004, 0.02);
        s[(size_t)i] = store_sb(scale, st, &sc[(size_t)(i * elem)]);
        b[(size_t)i] = store_sb(-scale * uniform(6.0, 9.0), st, &bi[(size_t)(i * elem)]);
    }
    M.ref.assign((size_t)rows * K, 0.0);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < K; k++) {
            const int q = (codes[(size_t)(r * row_bytes + k / 2)] >> (4 * (k & 1))) & 15;
            const size_t g = (size_t)(r * ng + k / gs);
            M.ref[(size_t)r * K + k] = s[g] * q + b[g];
        }
    /* k_repack_mma: tile T, chunk ch, lane, word s holds rows T*16 + lane/4 (nibbles 0, 2, 4, 6
     * after the interleave below) and + 8 (1, 3, 5, 7) at columns ch*64 + 16*(lane%4) + 4s + 0..3;
     * padding rows zero */
    const int64_t nch = row_bytes / 32;
    uint32_t *dst = A.alloc<uint32_t>((size_t)(tiles * 16 * row_bytes / 4));
    for (int64_t i = 0; i < tiles * nch * 128; i++) {
        const int sw = (int)(i & 3), lane = (int)((i >> 2) & 31);
        const int64_t ch = (i >> 7) % nch, T = (i >> 7) / nch;
        const int64_t col = ch * 64 + 16 * (lane & 3) + 4 * sw, ra = T * 16 + (lane >> 2),
                      rb = ra + 8;
        uint32_t a = 0, bb = 0;
        if (ra < rows) memcpy(&a, &codes[(size_t)(ra * row_bytes + col / 2)], 2);
        if (rb < rows) memcpy(&bb, &codes[(size_t)(rb * row_bytes + col / 2)], 2);
        uint32_t v = 0;
        for (int e = 0; e < 4; e++) {
            const int nib = (e & 1) * 4 + (e >> 1) * 2;
            v |= ((a >> (4 * e)) & 15u) << (4 * nib);
            v |= ((bb >> (4 * e)) & 15u) << (4 * (nib + 1));
        }
        dst[i] = v;
    }
    /* k_interleave (tiles): pair mma_sb_index(r, g) = (scale, bias); padding rows' pairs zero */
    uint8_t *sb = A.alloc<uint8_t>((size_t)(2 * tiles * 16 * ng * elem));
    for (int64_t i = 0; i < rows * ng; i++) {
        const int64_t o = mma_sb_index(i / ng, i % ng, ng);
        memcpy(sb + 2 * o * elem, &sc[(size_t)(i * elem)], (size_t)elem);
        memcpy(sb + (2 * o + 1) * elem, &bi[(size_t)(i * elem)], (size_t)elem);
    }
    M.w = cu_weight{BRISK_W_QAFFINE, st, 4, gs, 2, rows, K, row_bytes, (uint8_t *)dst, sb};
}

enum { GUARD = 16 };
static const uint32_t SENTINEL = 0x7fbadbadu; /* a NaN no computation gives */

static double half_round(double v) {
    return emu_h2f(emu_f2h((float)v));
}

/* The outputs of a GEMV launch over matrices M (rows[i] each, nm of them) for `tokens` tokens:
 * y[i] ([token][row], then GUARD values; SwiGLU: y[0] only), the residual y0 it starts from
 * (random for ADD, else zeros), random biases when `bias`, and the launcher's descriptors gm. */
struct outputs {
    std::vector<float *> y, bias;
    std::vector<std::vector<float>> y0;
    std::vector<cu_gemv_mat> gm;
};
static void make_outputs(outputs &o, arena &A, std::vector<matrix> &M, int epi, const int *rows,
                         int nm, int tokens, bool bias) {
    const int ny = epi == CU_EPI_SWIGLU ? 1 : nm;
    o.y.assign((size_t)ny, NULL), o.bias.assign((size_t)nm, NULL), o.y0.assign((size_t)ny, {});
    for (int i = 0; i < ny; i++) {
        const size_t sz = (size_t)tokens * rows[i];
        o.y[(size_t)i] = A.alloc<float>(sz + GUARD);
        o.y0[(size_t)i].resize(sz);
        for (auto &v : o.y0[(size_t)i]) v = epi == CU_EPI_ADD ? (float)uniform(-1.0, 1.0) : 0.f;
    }
    if (bias)
        for (int i = 0; i < nm; i++) {
            o.bias[(size_t)i] = A.alloc<float>((size_t)rows[i]);
            for (int r = 0; r < rows[i]; r++) o.bias[(size_t)i][r] = (float)uniform(-0.5, 0.5);
        }
    o.gm.resize((size_t)nm);
    for (int i = 0; i < nm; i++)
        o.gm[(size_t)i] = cu_gemv_mat{&M[(size_t)i].w, o.bias[(size_t)i],
                                      epi == CU_EPI_SWIGLU ? o.y[0] : o.y[(size_t)i], NULL};
}

/* Output y (sz = tokens x rows values, then a guard of SENTINEL) of matrix i against the
 * reference: wx (W x, [token][row]), through the epilogue (SwiGLU with wu, the up's W x; else
 * + bias), y minus y0 (the residual it started from; zeros otherwise). Prints what fails and
 * returns false: relative L2 error 2e-3 or more, or a guard value overwritten (past `count`
 * `what`). worst: the largest error seen. */
static bool check_output(const char *name, int i, int epi, const float *y, const float *y0,
                         const std::vector<double> &wx, const std::vector<double> *wu,
                         const float *bias, int rows, size_t sz, int count, const char *what,
                         double *worst) {
    bool ok = true;
    double num = 0.0, den = 0.0;
    for (size_t e = 0; e < sz; e++) {
        double want = wx[e];
        if (epi == CU_EPI_SWIGLU)
            want = want / (1.0 + exp(-want)) * (*wu)[e];
        else if (bias)
            want += bias[e % (size_t)rows];
        const double got = (double)y[e] - y0[e];
        num += (got - want) * (got - want), den += want * want;
    }
    const double rel = sqrt(num / (den > 0 ? den : 1e-30));
    if (!(rel < 2e-3)) {
        printf("  %s: matrix %d: relative L2 error %.3g\n", name, i, rel);
        ok = false;
    }
    if (rel > *worst || rel != rel) *worst = rel;
    for (size_t r = sz; r < sz + GUARD; r++)
        if (memcmp(&y[r], &SENTINEL, 4)) {
            printf("  %s: matrix %d: wrote past its %d %s (y[%zu])\n", name, i, count, what, r);
            ok = false;
            break;
        }
    return ok;
}

#endif
