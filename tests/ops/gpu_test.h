/* gpu_test.h: what the GPU op tests share: a seeded xorshift generator, the relative L2 error with
 * a count of non-finite values, and creating the CUDA backend or skipping (exit code 77) when this
 * machine has no usable card. Header-only (static) so each test stays one translation unit. */
#ifndef BRISK_GPU_TEST_H
#define BRISK_GPU_TEST_H

#include "backend/backend.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t gt_rng = 0x9E3779B97F4A7C15ULL;

static inline uint32_t gt_rnd(void) {
    gt_rng ^= gt_rng << 13, gt_rng ^= gt_rng >> 7, gt_rng ^= gt_rng << 17;
    return (uint32_t)(gt_rng >> 16);
}

/* Uniform in [-1, 1] on a 1e-4 grid. */
static inline float gt_frnd(void) {
    return (float)(gt_rnd() % 20001) / 10000.0f - 1.0f;
}

/* ||a - b|| / ||b|| over the finite pairs; *nonfinite (when not NULL) counts the others, and any
 * makes the result infinite so a NaN can never pass a bound. */
static inline double gt_rel_l2(const float *a, const float *b, size_t n, int *nonfinite) {
    double num = 0, den = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            bad++;
            continue;
        }
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    if (nonfinite) *nonfinite = bad;
    return bad ? INFINITY : sqrt(num / (den > 0 ? den : 1));
}

/* The CUDA backend over init: 0 when created, 77 (print why) when there is no usable card, 1 on
 * any other failure (printed). */
static inline int gt_cuda_create(const brisk_backend_init *init, brisk_backend **gpu) {
    brisk_status st = brisk_backend_cuda_create(init, gpu);
    if (st == BRISK_ERR_UNSUPPORTED) {
        printf("skipped: %s\n", brisk_last_error());
        return 77;
    }
    if (st != BRISK_OK) {
        printf("FAIL: cuda backend: %s\n", brisk_last_error());
        return 1;
    }
    return 0;
}

#endif
