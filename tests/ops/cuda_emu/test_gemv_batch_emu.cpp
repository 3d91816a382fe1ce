/* test_gemv_batch_emu.cpp: the batched GEMV for steps of 2-64 tokens (v8: k_xprep and
 * k_gemv_batch of src/backend/cuda/cuda_gemv_batch.cu, copied unchanged but for its dynamic
 * shared-memory declaration: run.sh) on the CPU under emu_cuda.h, through its real launcher
 * cu_gemv_batch, against a double-precision reference: random 4-bit MLX-affine weights in the mma
 * layout (emu_weights.h), token counts in each of the 1, 2, 4 and 8 token-group layouts (b_wn,
 * b_tg, b_s) and a step of more than 64 (two passes), every epilogue, 1-3 matrices, the folded
 * RMSNorm, group sizes 64 and 128, the three scale types, and matrices small enough that the
 * launcher splits K over work items (partials merged by a group's last item through a counter).
 * 25-64-token cases run on mma.sync and on wgmma (cu_v8_wg; the emulator runs a wgmma only when a
 * wait retires it, so the double-buffered A and the wait before a stage's release are checked),
 * 33-64 on mma.sync with 16 and 8 warps (cu_v8_cw).
 * Each case runs twice (another thread and copy order) and must give the same bits, write no row
 * or token past its own, and leave the counters at zero. What it checks is the kernels' logic
 * (hangs, divergent collectives, indexing, stage and barrier use), not their speed.
 * `bash tests/ops/cuda_emu/run.sh gemv_batch` (EMU_SMS: blocks of the launch, default 7;
 * EMU_SEED; EMU_CASE=substring: those cases only). */
#include "cuda_internal.h"
#include "cuda_mma.cuh"
#include "cuda_switches.h"
#include "emu_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

int cu_sm90 = 1, cu_pdl = 0, cu_wgmma_ok = 1, cu_skip = 0;

struct bcase {
    const char *name;
    int epi, K, gs, st, n; /* n: tokens of the step */
    int rows[3], nmat;
    bool bias, norm;
    bool refused = false; /* the launcher must return cudaErrorNotSupported, launching nothing */
};

/* Runs case c; returns true when it passes. */
static bool run_case(const bcase &c) {
    arena A;
    const int K = c.K, nm = c.nmat, n = c.n;
    std::vector<matrix> M((size_t)nm);
    for (int i = 0; i < nm; i++) make_matrix(M[(size_t)i], A, c.rows[i], K, c.gs, c.st);
    float *x = A.alloc<float>((size_t)n * K), *nw = c.norm ? A.alloc<float>((size_t)K) : NULL;
    for (int64_t e = 0; e < (int64_t)n * K; e++) x[e] = (float)uniform(-2.0, 2.0);
    if (nw)
        for (int k = 0; k < K; k++) nw[k] = (float)uniform(0.5, 1.5);
    const float eps = 1e-5f;
    /* the reference reads x as k_xprep stages it: normalised (in double), rounded to half */
    std::vector<double> xh((size_t)n * K);
    for (int t = 0; t < n; t++) {
        const float *xr = x + (int64_t)t * K;
        double ss = 0.0;
        for (int k = 0; k < K; k++) ss += (double)xr[k] * xr[k];
        const double rs = nw ? 1.0 / sqrt(ss / K + eps) : 1.0;
        for (int k = 0; k < K; k++)
            xh[(size_t)t * K + k] = half_round(nw ? xr[k] * rs * nw[k] : xr[k]);
    }
    std::vector<std::vector<double>> wx((size_t)nm); /* [token][row] */
    for (int i = 0; i < nm; i++) {
        const int rows = c.rows[i];
        wx[(size_t)i].assign((size_t)n * rows, 0.0);
        for (int t = 0; t < n; t++)
            for (int r = 0; r < rows; r++) {
                double acc = 0.0;
                for (int k = 0; k < K; k++)
                    acc += M[(size_t)i].ref[(size_t)r * K + k] * xh[(size_t)t * K + k];
                wx[(size_t)i][(size_t)t * rows + r] = acc;
            }
    }
    const int ny = c.epi == CU_EPI_SWIGLU ? 1 : nm;
    outputs O;
    make_outputs(O, A, M, c.epi, c.rows, nm, n, c.bias);
    std::vector<float *> &y = O.y, &bias = O.bias;
    std::vector<std::vector<float>> &y0 = O.y0;
    std::vector<cu_gemv_mat> &gm = O.gm;
    /* the backend's scratch sizes (cuda_backend.cu): 4M floats of partials, 4,096 counters */
    cu_batch_scratch sc = {};
    sc.max_cols = K;
    sc.xq = A.alloc<uint8_t>(cu_gemv_batch_xq_bytes(K));
    sc.xs = A.alloc<float>(cu_gemv_batch_xs_floats(K));
    sc.part_cap = (size_t)4 << 20, sc.part = A.alloc<float>(sc.part_cap);
    sc.count_cap = 4096, sc.count = A.alloc<int>((size_t)sc.count_cap);
    std::vector<std::vector<float>> first((size_t)ny);
    bool ok = true;
    double worst = 0.0;
    for (int rep = 0; rep < 2 && ok; rep++) {
        for (int i = 0; i < ny; i++) {
            const size_t sz = (size_t)n * c.rows[i];
            float *yi = y[(size_t)i];
            if (c.epi == CU_EPI_ADD)
                memcpy(yi, y0[(size_t)i].data(), sz * sizeof(float));
            else
                emu_poison(yi, sz * sizeof(float)); /* every row of every token is written */
            for (size_t r = c.refused ? 0 : sz; r < sz + GUARD; r++) memcpy(&yi[r], &SENTINEL, 4);
        }
        emu_poison(sc.part, sc.part_cap * sizeof(float));
        const cudaError_t e = cu_gemv_batch(NULL, gm.data(), nm, c.epi, x, n, nw, eps, &sc);
        if (c.refused) {
            for (int i = 0; i < ny && e == cudaErrorNotSupported; i++)
                for (size_t r = 0; r < (size_t)n * c.rows[i] + GUARD; r++)
                    if (memcmp(&y[(size_t)i][r], &SENTINEL, 4)) {
                        printf("  %s: refused, but wrote y\n", c.name);
                        return false;
                    }
            const bool ok2 = e == cudaErrorNotSupported;
            printf("%-4s %-46s %s\n", ok2 ? "ok" : "FAIL", c.name, ok2 ? "refused" : "not refused");
            return ok2;
        }
        if (e != cudaSuccess) {
            printf("  %s: cu_gemv_batch returned %d\n", c.name, (int)e);
            return false;
        }
        for (int i = 0; i < ny; i++) {
            const int rows = c.rows[i];
            const size_t sz = (size_t)n * rows;
            const float *yi = y[(size_t)i];
            if (!check_output(c.name, i, c.epi, yi, y0[(size_t)i].data(), wx[(size_t)i],
                              c.epi == CU_EPI_SWIGLU ? &wx[1] : NULL, bias[(size_t)i], rows, sz, n,
                              "tokens", &worst))
                ok = false;
            if (rep == 0) {
                first[(size_t)i].assign(yi, yi + sz);
            } else if (memcmp(first[(size_t)i].data(), yi, sz * sizeof(float))) {
                printf("  %s: matrix %d: another thread order gave other bits\n", c.name, i);
                ok = false;
            }
        }
        for (int g = 0; g < sc.count_cap; g++)
            if (sc.count[g]) {
                printf("  %s: counter %d reads %d after the launch, not 0\n", c.name, g,
                       sc.count[g]);
                ok = false;
                break;
            }
    }
    printf("%-4s %-46s rel L2 %.2e%s\n", ok ? "ok" : "FAIL", c.name, worst,
           n > 24 ? (cu_v8_wg        ? "  (wgmma)"
                     : n <= 32       ? "  (mma)"
                     : cu_v8_cw == 8 ? "  (mma, 8 warps)"
                                     : "  (mma, 16 warps)")
                  : "");
    return ok;
}

int main(void) {
    enum { S = CU_EPI_STORE, ADD = CU_EPI_ADD, SW = CU_EPI_SWIGLU };
    enum { F16 = BRISK_W_F16, BF16 = BRISK_W_BF16, F32 = BRISK_W_F32 };
    /* name, epi, K, gs, scale type, tokens, rows, nmat, bias, norm. Token groups: n <= 8 one,
     * <= 16 two, <= 32 four, else eight; more than 64 tokens run in passes of 64. */
    static const bcase cases[] = {
        {"store n=2 K=64 rows=40", S, 64, 64, F16, 2, {40}, 1, false, false},
        {"store+bias n=8 K=1024 rows=48", S, 1024, 64, F16, 8, {48}, 1, true, false},
        {"store n=9 K=1024 gs128 rows=40 norm", S, 1024, 128, F16, 9, {40}, 1, false, true},
        {"add n=16 K=2048 rows=64", ADD, 2048, 64, F16, 16, {64}, 1, false, false},
        {"add n=17 K=1024 rows=264 (17 tiles)", ADD, 1024, 64, F16, 17, {264}, 1, false, false},
        {"add n=32 K=2048 rows=64", ADD, 2048, 64, F16, 32, {64}, 1, false, false},
        {"add n=25 K=1024 gs128 rows=520 norm", ADD, 1024, 128, F16, 25, {520}, 1, false, true},
        {"add n=33 K=1024 rows=48", ADD, 1024, 64, F16, 33, {48}, 1, false, false},
        {"add n=64 K=2048 gs128 rows=40", ADD, 2048, 128, F16, 64, {40}, 1, false, false},
        {"qkv n=3 K=1024 rows=64,32,32 norm", S, 1024, 64, F16, 3, {64, 32, 32}, 3, false, true},
        {"qkv+bias n=12 K=1024 rows=64,32,32 norm",
         S,
         1024,
         64,
         F16,
         12,
         {64, 32, 32},
         3,
         true,
         true},
        {"qkv n=30 K=2048 rows=128,64,64 norm",
         S,
         2048,
         64,
         F16,
         30,
         {128, 64, 64},
         3,
         false,
         true},
        {"qkv+bias n=64 K=1024 rows=64,32,32", S, 1024, 64, F16, 64, {64, 32, 32}, 3, true, false},
        /* SwiGLU at 1-8 tokens: a stage of 16 tiles x 2 matrices x 8 chunks leaves the ring one
         * stage, so the launcher refuses (the backend runs those steps on v4) */
        {"swiglu n=5 K=1024 rows=40 norm (refused)",
         SW,
         1024,
         64,
         F16,
         5,
         {40, 40},
         2,
         false,
         true,
         true},
        {"swiglu n=14 K=1024 rows=40 norm", SW, 1024, 64, F16, 14, {40, 40}, 2, false, true},
        {"swiglu n=28 K=2048 rows=264 norm", SW, 2048, 64, F16, 28, {264, 264}, 2, false, true},
        {"swiglu n=40 K=1024 gs128 rows=72", SW, 1024, 128, F16, 40, {72, 72}, 2, false, false},
        {"swiglu n=64 K=2048 rows=136 norm", SW, 2048, 64, F16, 64, {136, 136}, 2, false, true},
        {"down add n=32 K=4096 rows=32", ADD, 4096, 64, F16, 32, {32}, 1, false, false},
        /* K of 3 x-staging passes with the norm (every pass's block recomputes its scale) */
        {"swiglu n=36 K=5120 rows=40 norm", SW, 5120, 64, F16, 36, {40, 40}, 2, false, true},
        /* rows not a multiple of 4: the K split's merge takes its scalar path */
        {"add n=40 K=2048 rows=42", ADD, 2048, 64, F16, 40, {42}, 1, false, false},
        {"store+bias n=12 K=2048 rows=38", S, 2048, 64, F16, 12, {38}, 1, true, false},
        {"store+bias bf16 scales n=20 K=1024 rows=40", S, 1024, 64, BF16, 20, {40}, 1, true, false},
        {"add f32 scales n=24 K=1024 rows=40", ADD, 1024, 64, F32, 24, {40}, 1, false, false},
        {"swiglu f32 scales n=31 K=1024 rows=24 norm",
         SW,
         1024,
         64,
         F32,
         31,
         {24, 24},
         2,
         false,
         true},
        {"swiglu bf16 scales n=48 K=1024 rows=40",
         SW,
         1024,
         64,
         BF16,
         48,
         {40, 40},
         2,
         false,
         false},
        {"add n=70 K=1024 rows=48 (passes of 64 and 6)",
         ADD,
         1024,
         64,
         F16,
         70,
         {48},
         1,
         false,
         false},
    };
    const char *only = getenv("EMU_CASE"); /* a substring of the case names to run */
    int passed = 0, failed = 0;
    for (const bcase &c : cases) {
        if (only && !strstr(c.name, only)) continue;
        /* 25-64 tokens: mma.sync (33-64: on 16 warps, then 8: cu_v8_cw) and wgmma */
        static const int form[3][2] = {{16, 0}, {8, 1}, {8, 0}}; /* cu_v8_cw, cu_v8_wg */
        for (int f = 0; f < (c.n > 32 ? 3 : c.n > 24 ? 2 : 1); f++) {
            cu_v8_cw = form[f][0], cu_v8_wg = form[f][1];
            (run_case(c) ? passed : failed)++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
