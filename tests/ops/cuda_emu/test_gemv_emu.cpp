/* test_gemv_emu.cpp: the one-token persistent GEMV (v7, k_gemv_persist of
 * src/backend/cuda/cuda_gemv_tma.cu, copied unchanged but for its dynamic shared-memory
 * declaration: run.sh) on the CPU under emu_cuda.h, through its real launcher cu_gemv_tma, against
 * a double-precision reference: random 4-bit MLX-affine weights packed into the mma layout as the
 * backend's upload does (k_repack_mma, k_interleave of cuda_gemv.cu, ported below), every
 * epilogue, 1-3 matrices, the folded RMSNorm, K from 64 to 16384, partial tiles, 8 and 16 consumer
 * warps, the three scale types. Each case runs twice (another thread and copy order) and must give
 * the same bits. What it checks is the kernel's logic (hangs, divergent collectives, indexing,
 * reads of stages before their copies land, barrier use), not its speed.
 * `bash tests/ops/cuda_emu/run.sh gemv` (EMU_SMS: blocks of the launch, default 7; EMU_SEED). */
#include "cuda_internal.h"
#include "cuda_mma.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

int cu_sm90 = 1, cu_skip = 0, cu_pdl = 0;
extern int cu_v7_cw, cu_v7_ring, cu_v7_pace, cu_v7_slim;
static int ring_default;

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

struct gcase {
    const char *name;
    int epi, K, gs, st, cw; /* cw: cu_v7_cw (8, 16, or 1: the default mix) */
    int rows[3], nmat;
    bool bias, norm;
    int stages; /* ring stages (0: the launcher's): fewer than a block's items wrap the ring */
};

enum { GUARD = 16 };
static const uint32_t SENTINEL = 0x7fbadbadu; /* a NaN no computation gives */

static double half_round(double v) {
    return emu_h2f(emu_f2h((float)v));
}

/* Runs case c; returns true when it passes. */
static bool run_case(const gcase &c) {
    arena A;
    const int K = c.K, nm = c.nmat;
    std::vector<matrix> M((size_t)nm);
    for (int i = 0; i < nm; i++) make_matrix(M[(size_t)i], A, c.rows[i], K, c.gs, c.st);
    float *x = A.alloc<float>((size_t)K), *nw = c.norm ? A.alloc<float>((size_t)K) : NULL;
    for (int k = 0; k < K; k++) x[k] = (float)uniform(-2.0, 2.0);
    if (nw)
        for (int k = 0; k < K; k++) nw[k] = (float)uniform(0.5, 1.5);
    const float eps = 1e-5f;
    /* the reference reads x as the kernel stages it: normalised (in double), rounded to half */
    std::vector<double> xh((size_t)K);
    double ss = 0.0;
    for (int k = 0; k < K; k++) ss += (double)x[k] * x[k];
    const double rs = nw ? 1.0 / sqrt(ss / K + eps) : 1.0;
    for (int k = 0; k < K; k++) xh[(size_t)k] = half_round(nw ? x[k] * rs * nw[k] : x[k]);
    std::vector<std::vector<double>> wx((size_t)nm);
    for (int i = 0; i < nm; i++) {
        wx[(size_t)i].assign((size_t)c.rows[i], 0.0);
        for (int r = 0; r < c.rows[i]; r++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) acc += M[(size_t)i].ref[(size_t)r * K + k] * xh[(size_t)k];
            wx[(size_t)i][(size_t)r] = acc;
        }
    }
    /* outputs (a guard of sentinels after each), biases, the residual's y0 */
    const int ny = c.epi == CU_EPI_SWIGLU ? 1 : nm;
    std::vector<float *> y((size_t)ny), bias((size_t)nm, (float *)NULL);
    std::vector<std::vector<float>> y0((size_t)ny);
    for (int i = 0; i < ny; i++) {
        const int rows = c.rows[i];
        y[(size_t)i] = A.alloc<float>((size_t)(rows + GUARD));
        y0[(size_t)i].resize((size_t)rows);
        for (int r = 0; r < rows; r++)
            y0[(size_t)i][(size_t)r] = c.epi == CU_EPI_ADD ? (float)uniform(-1.0, 1.0) : 0.f;
    }
    if (c.bias)
        for (int i = 0; i < nm; i++) {
            bias[(size_t)i] = A.alloc<float>((size_t)c.rows[i]);
            for (int r = 0; r < c.rows[i]; r++) bias[(size_t)i][r] = (float)uniform(-0.5, 0.5);
        }
    std::vector<cu_gemv_mat> gm((size_t)nm);
    for (int i = 0; i < nm; i++)
        gm[(size_t)i] = cu_gemv_mat{&M[(size_t)i].w, bias[(size_t)i],
                                    c.epi == CU_EPI_SWIGLU ? y[0] : y[(size_t)i], NULL};
    /* SwiGLU writes its output as half too (yq: every row, then a guard); with no norm, run 3
     * reads x as half (xq) and must give run 0's bits */
    uint16_t *yq = NULL, *xq = NULL;
    if (c.epi == CU_EPI_SWIGLU) gm[0].yq = yq = A.alloc<uint16_t>((size_t)(c.rows[0] + GUARD));
    if (!nw) {
        xq = A.alloc<uint16_t>((size_t)K);
        for (int k = 0; k < K; k++) xq[k] = emu_f2h(x[k]);
    }
    cu_v7_cw = c.cw;
    /* cu_v7_ring (bytes of stages) for c.stages stages: the launcher's stage size */
    const int ntl = c.epi == CU_EPI_SWIGLU ? 2 : 1, d = c.gs == 128 ? 1 : 0;
    const int ps = c.st == BRISK_W_F32 ? 8 : 4, gmax = (31 >> d) + 2;
    const int stage_bytes = (ntl * (32 * 512 + gmax * 16 * ps) + 127) & ~127;
    cu_v7_ring = c.stages ? c.stages * stage_bytes : ring_default;
    std::vector<std::vector<float>> first((size_t)ny);
    bool ok = true;
    double worst = 0.0;
    /* runs 1 and 2 draw their tile groups from a counter (cu_pf.ctr) where there are more groups
     * than blocks: the same bits, and each run draws exactly `groups` tickets, so the counter ends
     * run 2 at twice that */
    unsigned long long *ctr = A.alloc<unsigned long long>(1);
    *ctr = 0;
    cu_pf pf = {};
    pf.ctr = ctr;
    int groups = 0;
    for (int i = 0; i < (c.epi == CU_EPI_SWIGLU ? 1 : nm); i++) groups += (c.rows[i] + 15) / 16;
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const unsigned long long draws = groups > sms ? (unsigned long long)groups : 0;
    for (int rep = 0; rep < (xq ? 4 : 3) && ok; rep++) {
        if (yq) {
            emu_poison(yq, (size_t)c.rows[0] * 2);
            for (int r = c.rows[0]; r < c.rows[0] + GUARD; r++) yq[r] = 0x7bad;
        }
        for (int i = 0; i < ny; i++) {
            const int rows = c.rows[i];
            float *yi = y[(size_t)i];
            if (c.epi == CU_EPI_ADD)
                memcpy(yi, y0[(size_t)i].data(), (size_t)rows * sizeof(float));
            else
                emu_poison(yi, (size_t)rows * sizeof(float)); /* every row is written */
            for (int r = rows; r < rows + GUARD; r++) memcpy(&yi[r], &SENTINEL, 4);
        }
        /* run 3 (x as half) without the counter: the launches the slim kernels take */
        const cudaError_t e = cu_gemv_tma(NULL, gm.data(), nm, c.epi, x, 1, nw, eps,
                                          rep == 1 || rep == 2 ? &pf : NULL, rep == 3 ? xq : NULL);
        if (e != cudaSuccess) {
            printf("  %s: cu_gemv_tma returned %d\n", c.name, (int)e);
            return false;
        }
        for (int i = 0; i < ny; i++) {
            const int rows = c.rows[i];
            const float *yi = y[(size_t)i];
            double num = 0.0, den = 0.0;
            for (int r = 0; r < rows; r++) {
                double want = wx[(size_t)i][(size_t)r];
                if (c.epi == CU_EPI_SWIGLU) {
                    const double u = wx[1][(size_t)r];
                    want = want / (1.0 + exp(-want)) * u;
                } else if (c.bias) {
                    want += bias[(size_t)i][r];
                }
                const double got = (double)yi[r] - y0[(size_t)i][(size_t)r];
                num += (got - want) * (got - want), den += want * want;
            }
            const double rel = sqrt(num / (den > 0 ? den : 1e-30));
            if (!(rel < 2e-3)) {
                printf("  %s: matrix %d: relative L2 error %.3g\n", c.name, i, rel);
                ok = false;
            }
            if (rel > worst || rel != rel) worst = rel;
            for (int r = rows; r < rows + GUARD; r++)
                if (memcmp(&yi[r], &SENTINEL, 4)) {
                    printf("  %s: matrix %d: wrote past its %d rows (y[%d])\n", c.name, i, rows, r);
                    ok = false;
                    break;
                }
            if (rep == 0) {
                first[(size_t)i].assign(yi, yi + rows);
            } else if (memcmp(first[(size_t)i].data(), yi, (size_t)rows * sizeof(float))) {
                printf("  %s: matrix %d: %s gave other bits\n", c.name, i,
                       rep == 3 ? "x as half (xq)" : "another thread order");
                ok = false;
            }
        }
        for (int r = 0; yq && r < c.rows[0] + GUARD; r++)
            if (yq[r] != (r < c.rows[0] ? emu_f2h(y[0][r]) : 0x7bad)) {
                printf("  %s: the half output's row %d is not y's rounded\n", c.name, r);
                ok = false;
                break;
            }
        if (ok && rep == 2 && *ctr != 2 * draws) {
            printf("  %s: the group counter reads %llu after two runs, not 2 x %llu\n", c.name,
                   *ctr, draws);
            ok = false;
        }
    }
    printf("%-4s %-44s rel L2 %.2e\n", ok ? "ok" : "FAIL", c.name, worst);
    return ok;
}

/* Shapes the launcher must refuse (cudaErrorNotSupported, nothing launched). */
static bool refusals(void) {
    arena A;
    float *x = A.alloc<float>(16448), *y = A.alloc<float>(64);
    struct {
        int K, gs;
        const char *why;
    } bad[] = {{2048, 32, "group size 32"},
               {2048, 1024, "group size 1024 (more chunks than the consumer warps)"},
               {96, 64, "K % 64"},
               {16448, 64, "K > 16384"}};
    bool ok = true;
    for (const auto &b : bad) {
        cu_weight w = {BRISK_W_QAFFINE, BRISK_W_F16, 4, b.gs, 2, 16, b.K, b.K / 2, NULL, NULL};
        w.data = A.alloc<uint8_t>(16), w.sb = A.alloc<uint8_t>(16);
        const cu_gemv_mat m = {&w, NULL, y, NULL};
        const cudaError_t e = cu_gemv_tma(NULL, &m, 1, CU_EPI_STORE, x, 1);
        if (e != cudaErrorNotSupported) {
            printf("  refusals: %s: returned %d\n", b.why, (int)e);
            ok = false;
        }
    }
    printf("%-4s %-44s\n", ok ? "ok" : "FAIL", "refusals (gs 32, gs 1024, K % 64, K > 16384)");
    return ok;
}

int main(void) {
    enum { S = CU_EPI_STORE, ADD = CU_EPI_ADD, SW = CU_EPI_SWIGLU };
    enum { F16 = BRISK_W_F16, BF16 = BRISK_W_BF16, F32 = BRISK_W_F32 };
    static const gcase cases[] = {
        /* name, epi, K, gs, scale type, cw, rows, nmat, bias, norm */
        {"store K=64 rows=40 cw16", S, 64, 64, F16, 16, {40}, 1, false, false, 0},
        {"store+bias K=64 rows=40 cw8", S, 64, 64, F16, 8, {40}, 1, true, false, 0},
        {"store+bias K=2048 rows=48 cw16", S, 2048, 64, F16, 16, {48}, 1, true, false, 0},
        {"store K=2048 gs128 rows=40 cw8 norm", S, 2048, 128, F16, 8, {40}, 1, false, true, 0},
        {"add K=2048 rows=64 cw16", ADD, 2048, 64, F16, 16, {64}, 1, false, false, 0},
        {"add K=4096 gs128 rows=40 cw8", ADD, 4096, 128, F16, 8, {40}, 1, false, false, 0},
        {"qkv K=64 rows=64,32,32 cw16 norm", S, 64, 64, F16, 16, {64, 32, 32}, 3, false, true, 0},
        {"qkv+bias K=2048 rows=64,32,32 cw1 norm",
         S,
         2048,
         64,
         F16,
         1,
         {64, 32, 32},
         3,
         true,
         true,
         0},
        {"qkv K=4096 rows=64,32,32 cw8 norm", S, 4096, 64, F16, 8, {64, 32, 32}, 3, false, true, 0},
        {"qkv K=2048 gs128 rows=40,24,24 cw16",
         S,
         2048,
         128,
         F16,
         16,
         {40, 24, 24},
         3,
         false,
         false,
         0},
        {"swiglu K=64 rows=40 cw8 norm", SW, 64, 64, F16, 8, {40, 40}, 2, false, true, 0},
        {"swiglu K=2048 rows=40 cw1 norm", SW, 2048, 64, F16, 1, {40, 40}, 2, false, true, 0},
        {"swiglu K=4096 gs128 rows=32 cw16", SW, 4096, 128, F16, 16, {32, 32}, 2, false, false, 0},
        {"down add K=14336 rows=32 cw16", ADD, 14336, 64, F16, 16, {32}, 1, false, false, 0},
        {"down add K=14336 gs128 rows=16 cw8 norm",
         ADD,
         14336,
         128,
         F16,
         8,
         {16},
         1,
         false,
         true,
         0},
        {"store K=16384 rows=24 cw16 norm", S, 16384, 64, F16, 16, {24}, 1, false, true, 0},
        {"store K=1024 rows=200 cw1 norm (13 tiles)",
         S,
         1024,
         64,
         F16,
         1,
         {200},
         1,
         false,
         true,
         0},
        {"store+bias bf16 scales K=1024 rows=40 cw16",
         S,
         1024,
         64,
         BF16,
         16,
         {40},
         1,
         true,
         false,
         0},
        {"add f32 scales K=1024 rows=40 cw8", ADD, 1024, 64, F32, 8, {40}, 1, false, false, 0},
        {"swiglu f32 scales K=1024 rows=24 cw16",
         SW,
         1024,
         64,
         F32,
         16,
         {24, 24},
         2,
         false,
         true,
         0},
        /* rings shorter than a block's items: stages are refilled while others are read */
        {"down add K=14336 rows=32 cw16 2 stages",
         ADD,
         14336,
         64,
         F16,
         16,
         {32},
         1,
         false,
         false,
         2},
        {"down add K=14336 gs128 rows=48 cw8 3 stages",
         ADD,
         14336,
         128,
         F16,
         8,
         {48},
         1,
         false,
         true,
         3},
        {"qkv K=4096 rows=128,64,64 cw1 2 stages norm",
         S,
         4096,
         64,
         F16,
         1,
         {128, 64, 64},
         3,
         false,
         true,
         2},
        {"swiglu K=4096 rows=72 cw1 2 stages norm",
         SW,
         4096,
         64,
         F16,
         1,
         {72, 72},
         2,
         false,
         true,
         2},
        {"swiglu f32 scales K=2048 rows=40 cw16 3 stages",
         SW,
         2048,
         64,
         F32,
         16,
         {40, 40},
         2,
         false,
         false,
         3},
    };
    ring_default = cu_v7_ring;
    const char *only = getenv("EMU_CASE"); /* a substring of the case names to run */
    int passed = 0, failed = 0;
    /* each case unpaced and paced (cu_v7_pace 2: a stage waits for the one two before it until
     * x's loads are issued), paced on the general kernel (cu_v7_slim 0) and on the slim one with
     * its measuring aids: the shapes the slim kernel takes run on all three kernels */
    for (int pass = 0; pass < 3; pass++) {
        const int pace = pass ? 2 : 0;
        cu_v7_pace = pace, cu_v7_slim = pass != 1;
        for (const gcase &c : cases) {
            if (only && !strstr(c.name, only)) continue;
            const bool ok = run_case(c);
            if (!ok) printf("  (pace %d, slim %d)\n", pace, cu_v7_slim);
            (ok ? passed : failed)++;
        }
    }
    if (!only) (refusals() ? passed : failed)++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
