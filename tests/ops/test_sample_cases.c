/* test_sample_cases.c: the cases of sample_cases.h checked with the host sampler standing in for
 * the device op (each row's brisk_sample_params mapped back to the case it came from), over the
 * same stream of rows as test_sample_cuda's first run (the small-V set, 100 batches), then the
 * huge-bin rows: every row must be one the op samples (some finite logit, no NaN or +inf), else
 * the GPU test reports the op failing where it only did its job. On a CPU, in seconds (label
 * unit). */
#include "check.h"
#include "sample_cases.h"
#include "util/error.h"

/* The case a row's device parameters came from (the tables of sc_make), or -1. */
static int case_of(const brisk_sample_params *p, sc_case *k) {
    int t = -1, m = -1;
    for (int i = 0; i < 4; i++) {
        if (1.0f / sc_temps[i] == p->inv_temp) t = i;
        if ((sc_min_ps[i] > 0.0f ? logf(sc_min_ps[i]) : -INFINITY) == p->log_min_p) m = i;
    }
    if (t < 0 || m < 0) return -1;
    k->temp = sc_temps[t], k->min_p = sc_min_ps[m], k->top_k = p->top_k, k->top_p = p->top_p;
    return 0;
}

/* The op's contract on the host: the sampler's token, or id -1 and BRISK_ERR_BACKEND for a row
 * with a NaN or +inf, or only -inf. */
static brisk_status host_op(void *ctx, const float *logits, int n, int V,
                            const brisk_sample_params *p, const double *u, int32_t *ids,
                            float *lp) {
    (void)ctx;
    float *row = malloc(sizeof *row * (size_t)V);
    brisk_status st = BRISK_OK;
    for (int r = 0; r < n; r++) {
        const float *x = logits + (size_t)r * V;
        int finite = 0, bad = 0;
        for (int i = 0; i < V; i++)
            finite |= x[i] > -INFINITY, bad |= x[i] != x[i] || x[i] == INFINITY;
        sc_case k;
        brisk_sampler *s = NULL;
        ids[r] = -1, lp[r] = NAN;
        if (!bad && finite && case_of(&p[r], &k) == 0 && (s = sc_sampler(&k, V)) != NULL) {
            memcpy(row, x, sizeof *row * (size_t)V);
            if (brisk_sampler_sample_u(s, row, u[r], &ids[r], &lp[r]) != BRISK_OK) ids[r] = -1;
        }
        brisk_sampler_destroy(s);
        if (ids[r] < 0) st = brisk_errorf(BRISK_ERR_BACKEND, "host: row %d can't be sampled", r);
    }
    free(row);
    return st;
}

int main(void) {
    static const int small_v[] = {1, 2, 7, 33, 1000, 4099};
    CHECK(sc_run(host_op, NULL, small_v, 6, 100) == 0); /* as test_sample_cuda.c */
    static const int huge_v[] = {4099, 5000, 32000};
    CHECK(sc_run_huge(host_op, NULL, huge_v, 3, SC_H_NFILTERS) == 0);
    CHECK_DONE();
}
