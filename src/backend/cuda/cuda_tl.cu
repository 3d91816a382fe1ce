/* cuda_tl.cu: the step timeline (env BRISK_CUDA_TL=1), a measuring aid. The traced kernels (v7
 * GEMVs, decode attention) stamp their slot (cuda_internal.h, tl_mark); this file hands out the
 * slots in launch order, clears them before every step and prints the last step at exit: per
 * kind of launch, the average of its marginal time in the chain (latest finish minus the
 * previous launch's latest finish) and its parts. ncu serialises kernels, so only stamps taken
 * inside the replayed graph show where PDL overlaps neighbours and where it cannot. The slots are
 * process-wide and live until exit: another backend's captured graphs may still stamp them after
 * one backend is destroyed and prints. */
#include "cuda_internal.h"
#include "cuda_switches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TL_SLOTS 1024

static unsigned long long *tl_buf; /* device [TL_SLOTS][TL_N] */
static const char *tl_kind[TL_SLOTS];
static int tl_n, tl_hi;

void cu_tl_init(void) {
    const char *e = getenv("BRISK_CUDA_TL");
    if (!e || e[0] != '1' || tl_buf) return;
    if (cudaMalloc((void **)&tl_buf, sizeof(unsigned long long) * TL_SLOTS * TL_N) != cudaSuccess) {
        cudaGetLastError();
        tl_buf = NULL;
    }
}

unsigned long long *cu_tl_take(const char *kind) {
    if (!tl_buf || tl_n >= TL_SLOTS) return NULL;
    tl_kind[tl_n] = kind;
    if (tl_n + 1 > tl_hi) tl_hi = tl_n + 1;
    return tl_buf + (size_t)TL_N * tl_n++;
}

void cu_tl_step(cudaStream_t st) {
    if (!tl_buf) return;
    tl_n = 0;
    cudaMemsetAsync(tl_buf, 0, sizeof(unsigned long long) * TL_SLOTS * TL_N, st);
}

void cu_tl_dump(void) {
    if (!tl_buf) return;
    static unsigned long long h[TL_SLOTS][TL_N];
    const int n = tl_hi;
    if (cudaDeviceSynchronize() != cudaSuccess ||
        cudaMemcpy(h, tl_buf, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    if (n < 2) return;
    for (int j = 0; j < n; j++)
        h[j][TL_ENTRY] = ~h[j][TL_ENTRY], h[j][TL_WAIT] = ~h[j][TL_WAIT],
        h[j][TL_DONE] = ~h[j][TL_DONE], h[j][TL_SOWN] = ~h[j][TL_SOWN];
    for (int j = 0; j < n; j++)
        for (int i = 0; i < TL_NPART; i++) h[j][TL_PART + 2 * i] = ~h[j][TL_PART + 2 * i];
    const double t0 = (double)h[0][TL_ENTRY];
    fprintf(stderr, "cuda timeline: last step, %d traced launches over %.1f us\n", n,
            (h[n - 1][TL_DONE_MAX] - t0) / 1e3);
    /* one layer in full (launches 5-9 hold the second layer in a one-token Llama step) */
    for (int j = 0; j < n && j < 10; j++)
        fprintf(stderr,
                "  %2d %-9s entry %8.2f..%8.2f  wait %8.2f..%8.2f  staged %8.2f  done "
                "%8.2f..%8.2f us\n",
                j, tl_kind[j], (h[j][TL_ENTRY] - t0) / 1e3, (h[j][TL_ENTRY_MAX] - t0) / 1e3,
                (h[j][TL_WAIT] - t0) / 1e3, (h[j][TL_WAIT_MAX] - t0) / 1e3,
                h[j][TL_STAGED] ? (h[j][TL_STAGED] - t0) / 1e3 : 0.0, (h[j][TL_DONE] - t0) / 1e3,
                (h[j][TL_DONE_MAX] - t0) / 1e3);
    /* per kind, launches after the first: marginal = done_max - previous done_max, of which
     * release = wait_min - previous done_max, staged = staged - wait_min (v7), and the spread
     * of the blocks' finish times */
    const char *kinds[8];
    int nk = 0;
    for (int j = 1; j < n; j++) {
        int k = 0;
        while (k < nk && strcmp(kinds[k], tl_kind[j])) k++;
        if (k == nk && nk < 8) kinds[nk++] = tl_kind[j];
    }
    static const char *part[TL_NPART] = {"x", "norm w", "all loads", "norm scale", "halves stored"};
    for (int k = 0; k < nk; k++) {
        double c = 0, marg = 0, rel = 0, stg = 0, spread = 0, early = 0, so0 = 0, so1 = 0;
        double p0[TL_NPART] = {0}, p1[TL_NPART] = {0};
        for (int j = 1; j < n; j++) {
            if (strcmp(kinds[k], tl_kind[j])) continue;
            const double pd = (double)h[j - 1][TL_DONE_MAX];
            c++;
            marg += h[j][TL_DONE_MAX] - pd;
            rel += (double)h[j][TL_WAIT] - pd;
            stg += h[j][TL_STAGED] ? (double)h[j][TL_STAGED] - (double)h[j][TL_WAIT] : 0;
            spread += (double)h[j][TL_DONE_MAX] - (double)h[j][TL_DONE];
            early += (double)h[j][TL_WAIT] - (double)h[j][TL_ENTRY];
            if (h[j][TL_SOWN_MAX]) so0 += (double)h[j][TL_SOWN], so1 += (double)h[j][TL_SOWN_MAX];
            for (int i = 0; i < TL_NPART; i++)
                if (h[j][TL_PART + 2 * i + 1])
                    p0[i] += (double)h[j][TL_PART + 2 * i],
                        p1[i] += (double)h[j][TL_PART + 2 * i + 1];
        }
        fprintf(stderr,
                "  %-9s x%4.0f: marginal %7.2f us = release %5.2f + staged %5.2f + rest; finish "
                "spread %5.2f; first entry %5.2f before the release; a block's own staging "
                "%5.2f..%5.2f",
                kinds[k], c, marg / c / 1e3, rel / c / 1e3, stg / c / 1e3, spread / c / 1e3,
                early / c / 1e3, so0 / c / 1e3, so1 / c / 1e3);
        for (int i = 0; i < TL_NPART; i++)
            if (p1[i] > 0)
                fprintf(stderr, "; %s %.2f..%.2f", part[i], p0[i] / c / 1e3, p1[i] / c / 1e3);
        fprintf(stderr, "\n");
    }
}
