/* membw.c: measures how fast this machine streams memory into the cores (read-only, the access
 * pattern of a batch-1 decode), so benchmarks report their fraction of it. */
#include "util/membw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* The 1 GB probe buffer in 2 MB pages where the kernel gives them, as the synthetic weights
 * (model/synthetic.c): the floor and the decode it judges stream through the same page size. */
static void *probe_alloc(size_t bytes) {
    void *p = aligned_alloc((size_t)2 << 20, bytes);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* Keeps the sums alive so the reads cannot be optimised away. */
static volatile uint64_t g_sink;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sums 64-bit words with 4 independent accumulators so the loop is bound by loads. */
static uint64_t read_sum(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    return a ^ b ^ c ^ d;
}

double brisk_measure_read_bandwidth(void) {
    const size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = probe_alloc(bytes);
    if (!buf) return 0;
    memset(buf, 1, bytes); /* fault every page in before timing */
    double best = 0;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = now_s();
        g_sink += read_sum(buf, n);
        double dt = now_s() - t0;
        if (dt > 0 && bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    free(buf);
    return best;
}

typedef struct mt_read {
    uint64_t *buf;
    size_t n;
    int fill;
    volatile uint64_t sink[64];
} mt_read;

static void mt_slice(void *arg, int ith, int nth) {
    mt_read *m = arg;
    const size_t per = m->n / (size_t)nth / 8 * 8, at = per * (size_t)ith;
    if (m->fill)
        memset(m->buf + at, 1, per * 8);
    else
        m->sink[ith & 63] += read_sum(m->buf + at, per);
}

double brisk_measure_read_bandwidth_mt(brisk_par_run run, void *runner) {
    const size_t bytes = (size_t)1 << 30;
    mt_read m = {.buf = probe_alloc(bytes), .n = bytes / 8, .fill = 1};
    if (!m.buf) return 0;
    run(runner, mt_slice, &m); /* fault every page in, each on the thread that reads it */
    m.fill = 0;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        run(runner, mt_slice, &m);
        double dt = now_s() - t0;
        if (dt > 0 && bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    free(m.buf);
    return best;
}
