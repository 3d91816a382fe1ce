/* test_gemv_emu.cpp: the one-token persistent GEMV (v7, k_gemv_persist of
 * src/backend/cuda/cuda_gemv_tma.cu, copied unchanged but for its dynamic shared-memory
 * declaration: run.sh) on the CPU under emu_cuda.h, through its real launcher cu_gemv_tma, against
 * a double-precision reference: random 4-bit MLX-affine weights packed into the mma layout as the
 * backend's upload does (emu_weights.h), every
 * epilogue, 1-3 matrices, the folded RMSNorm, K from 64 to 16384, partial tiles, 8 and 16 consumer
 * warps, the three scale types. Each case runs twice (another thread and copy order) and must give
 * the same bits. What it checks is the kernel's logic (hangs, divergent collectives, indexing,
 * reads of stages before their copies land, barrier use), not its speed.
 * `bash tests/ops/cuda_emu/run.sh gemv` (EMU_SMS: blocks of the launch, default 7; EMU_SEED). */
#include "cuda_internal.h"
#include "cuda_mma.cuh"
#include "emu_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

int cu_sm90 = 1, cu_skip = 0, cu_pdl = 0;
extern int cu_v7_cw, cu_v7_ring, cu_v7_pace, cu_v7_slim;
static int ring_default;

struct gcase {
    const char *name;
    int epi, K, gs, st, cw; /* cw: cu_v7_cw (8, 16, or 1: the default mix) */
    int rows[3], nmat;
    bool bias, norm;
    int stages; /* ring stages (0: the launcher's): fewer than a block's items wrap the ring */
};

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
    const int ny = c.epi == CU_EPI_SWIGLU ? 1 : nm;
    outputs O;
    make_outputs(O, A, M, c.epi, c.rows, nm, 1, c.bias);
    std::vector<float *> &y = O.y, &bias = O.bias;
    std::vector<std::vector<float>> &y0 = O.y0;
    std::vector<cu_gemv_mat> &gm = O.gm;
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
            if (!check_output(c.name, i, c.epi, yi, y0[(size_t)i].data(), wx[(size_t)i],
                              c.epi == CU_EPI_SWIGLU ? &wx[1] : NULL, bias[(size_t)i], rows,
                              (size_t)rows, rows, "rows", &worst))
                ok = false;
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
