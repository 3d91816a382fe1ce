/* qmm_bench.c: the CPU backend's decode matvec alone (one q<bits>g<G> matrix x one token), in
 * GB/s of weights+scales+biases read, with the matrix resident in L2 and streamed from DRAM.
 * usage: qmm_bench [threads=1] [cols=2048] [bits=4] [G=64] [isa] */
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *huge_alloc(size_t bytes) {
    const size_t h = (size_t)2 << 20;
    bytes = (bytes + h - 1) / h * h;
    void *p = aligned_alloc(h, bytes);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? atoi(argv[1]) : 1;
    const int64_t cols = argc > 2 ? atoll(argv[2]) : 2048;
    const int bits = argc > 3 ? atoi(argv[3]) : 4, G = argc > 4 ? atoi(argv[4]) : 64;
    const char *isa = argc > 5 ? argv[5] : NULL;
    const brisk_backend_init init = {
        .max_tokens = 1, .max_ctx = 1, .max_cols = cols, .n_threads = nth};
    brisk_backend *be = NULL;
    if (brisk_backend_cpu_create_isa(&init, isa, &be) != BRISK_OK) return 1;
    const int64_t big = ((int64_t)256 << 20) / (cols * bits / 8); /* 256 MB of codes */
    const size_t cb = (size_t)(big * cols * bits / 8), ng = (size_t)(big * cols / G);
    /* in 2 MB pages where the kernel gives them, as the synthetic weights of brisk bench */
    uint8_t *codes = huge_alloc(cb);
    uint16_t *sc = huge_alloc(ng * 2), *bi = huge_alloc(ng * 2);
    for (size_t i = 0; i < cb; i++) codes[i] = (uint8_t)((i * 2654435761u) >> 13);
    for (size_t i = 0; i < ng; i++) sc[i] = 0x3c00, bi[i] = 0xbc00; /* bf16 ~0.0078, -0.0078 */
    float *x = malloc((size_t)cols * 4), *y = malloc((size_t)big * 4);
    for (int64_t i = 0; i < cols; i++) x[i] = (float)((i * 37) % 2001 - 1000) / 1000.0f;
    printf("%s, %d thread(s), q%dg%d, %lld cols\n", be->ops->name, nth, bits, G, (long long)cols);
    const int64_t sizes[] = {nth * 256 * 1024 / (cols * bits / 8), big};
    for (int si = 0; si < 2; si++) {
        brisk_tensor W = {.type = BRISK_W_QAFFINE,
                          .rows = sizes[si],
                          .cols = cols,
                          .bits = bits,
                          .group_size = G,
                          .stype = BRISK_W_BF16,
                          .data = codes,
                          .scales = sc,
                          .biases = bi,
                          .name = "bench"};
        const double bytes = (double)W.rows * (cols * bits / 8 + 4 * cols / G);
        const int iters = si == 0 ? 2000 : 1;
        double best = 0, sum = 0;
        for (int rep = 0; rep < 7; rep++) {
            if (si == 1) W.data = codes, W.rows = big; /* the whole 256 MB: no cache reuse */
            const double t0 = now();
            for (int it = 0; it < iters; it++) be->ops->matmul(be, &W, NULL, x, 1, y);
            const double gbs = bytes * iters / (now() - t0) / 1e9;
            best = gbs > best ? gbs : best;
            sum += gbs;
        }
        printf("  %-5s %8lld rows: best %6.2f GB/s, mean %6.2f GB/s (y0 %g)\n",
               si == 0 ? "L2" : "DRAM", (long long)W.rows, best, sum / 7, y[0]);
    }
    be->ops->destroy(be);
    free(codes), free(sc), free(bi), free(x), free(y);
    return 0;
}
