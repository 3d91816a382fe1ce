/* testutil.h: helpers the tests share: whole-file reads, the relative L2 error every parity check
 * uses, argmax. Header-only (static) so each test stays one translation unit. */
#ifndef BRISK_TEST_UTIL_H
#define BRISK_TEST_UTIL_H

#include "brisk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file, NUL-terminated and malloc'd (NULL when unreadable); *len gets its size. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = buf ? fread(buf, 1, (size_t)(n > 0 ? n : 0), f) : 0;
    fclose(f);
    if (buf) buf[got] = 0;
    if (len) *len = got;
    return buf;
}

/* A file of little-endian float32 values; *n gets their count. */
static inline float *test_read_f32(const char *path, size_t *n) {
    size_t len = 0;
    char *buf = test_read_file(path, &len);
    *n = len / sizeof(float);
    return (float *)buf;
}

/* ||a - b|| / ||b|| in double. */
static inline double test_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* Index of the largest value (the first on ties, like greedy sampling). */
static inline int test_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Loads a model folder on `backend`. Returns 1 when loaded, 0 when the backend cannot run here
 * (CUDA built but no usable card: the caller skips, the reason printed once through *skipped),
 * -1 on any other failure (the caller's checks report it). */
static inline int test_load_model(const char *dir, brisk_backend_kind backend, brisk_model **m,
                                  int *skipped) {
    brisk_model_params mp = brisk_model_default_params();
    mp.backend = backend;
    brisk_status st = brisk_model_load(dir, &mp, m);
    if (st == BRISK_ERR_UNSUPPORTED && backend == BRISK_BACKEND_CUDA) {
        if (!*skipped) printf("skipped: %s\n", brisk_last_error());
        *skipped = 1;
        return 0;
    }
    return st == BRISK_OK ? 1 : -1;
}

#endif
