/* vmath.h: exp over float arrays, fast enough to run over a 128k-entry vocabulary every token
 * (the sampler and the greedy path). A range-reduced polynomial for exp(x), x <= 0: relative
 * error below 3e-7 down to x = -87, exactly 0 below that (so a -inf logit bias stays impossible);
 * the array loops run in fixed blocks so the compiler vectorises them. */
#ifndef BRISK_UTIL_VMATH_H
#define BRISK_UTIL_VMATH_H

#include <stdint.h>

/* exp(x) for x <= 0 (NaN-free input). */
static inline float brisk_exp_nonpos(float x) {
    /* the range test in integers (float compares are not if-converted under -ftrapping-math, so
     * they would keep the loops scalar): for x <= 0, x >= -87 is bits(x) <= bits(-87) unsigned */
    union {
        float f;
        uint32_t u;
    } xu = {x}, zu, pu;
    const uint32_t in = (uint32_t)0 - (uint32_t)(xu.u <= 0xC2AE0000u); /* all ones when kept */
    xu.u = (xu.u & in) | (0xC2AE0000u & ~in);
    const float t = xu.f * 1.44269504088896341f; /* x / ln 2 */
    zu.f = t + 12582912.0f;                      /* 1.5 * 2^23: rounds t to an integer k */
    const float f = t - (zu.f - 12582912.0f);    /* in [-0.5, 0.5] */
    /* 2^f, Taylor in f ln 2 to degree 6 (error ~1.2e-7 on [-0.5, 0.5]) */
    float p = 1.5403530e-4f;
    p = p * f + 1.3333558e-3f;
    p = p * f + 9.6181291e-3f;
    p = p * f + 5.5504109e-2f;
    p = p * f + 2.4022651e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    pu.f = p;
    pu.u += (zu.u - 0x4B400000u) << 23; /* times 2^k (k <= 0: wraps as intended) */
    pu.u &= in;                         /* 0 below -87: no denormals, -inf gives 0 */
    return pu.f;
}

/* Sum over i of exp(x[i] - m), every x[i] <= m. */
double brisk_sum_exp(const float *x, int n, float m);

/* y[i] = exp((x[i] - m) * scale) for x[i] <= m, scale > 0; returns their sum. */
double brisk_exp_scaled(const float *x, int n, float m, float scale, float *y);

#endif
