/* vmath.c: the array loops of vmath.h. Blocks of 64: the exps of a block go to a small array,
 * then 8 lane sums add them in a fixed order (a plain float reduction would not vectorise without
 * -ffast-math), and a double takes the block totals. */
#include "util/vmath.h"

#define VBLK 64

/* x86-64 builds are baseline SSE2 unless BRISK_NATIVE: the two loops also get an AVX2 clone,
 * picked at load time by CPU feature (GCC function multiversioning; 128k exps on this machine:
 * 220 us SSE2, ~70 us AVX2, 1.3 ms for libm exp). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define VCLONES __attribute__((target_clones("avx2", "default")))
#else
#define VCLONES
#endif

static inline float block_sum(const float *e) {
    float lane[8] = {0};
    for (int j = 0; j < VBLK; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += e[j + l];
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) +
           ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

VCLONES double brisk_sum_exp(const float *x, int n, float m) {
    double total = 0;
    float e[VBLK];
    int i = 0;
    for (; i + VBLK <= n; i += VBLK) {
        for (int j = 0; j < VBLK; j++) e[j] = brisk_exp_nonpos(x[i + j] - m);
        total += block_sum(e);
    }
    for (; i < n; i++) total += brisk_exp_nonpos(x[i] - m);
    return total;
}

VCLONES double brisk_exp_scaled(const float *x, int n, float m, float scale, float *y) {
    double total = 0;
    int i = 0;
    for (; i + VBLK <= n; i += VBLK) {
        for (int j = 0; j < VBLK; j++) y[i + j] = brisk_exp_nonpos((x[i + j] - m) * scale);
        total += block_sum(y + i);
    }
    for (; i < n; i++) total += y[i] = brisk_exp_nonpos((x[i] - m) * scale);
    return total;
}
