/* test_sample_emu.c: the device sampling cases of tests/ops/sample_cases.h against the kernels of
 * src/backend/cuda/cuda_sample.cu run on the CPU (emu_cuda.h): the kernels' logic, checked without
 * a GPU. `bash tests/ops/cuda_emu/run.sh [quick]`. */
#include "sample_cases.h"

brisk_status emu_end_step_sample(const float *logits, int n, int V, const brisk_sample_params *p,
                                 const double *u, int32_t *ids, float *lp);
void emu_sample_paths(void);

static brisk_status dev(void *ctx, const float *logits, int n, int V, const brisk_sample_params *p,
                        const double *u, int32_t *ids, float *lp) {
    (void)ctx;
    return emu_end_step_sample(logits, n, V, p, u, ids, lp);
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && !strcmp(argv[1], "quick");
    static const int small[] = {1, 2, 7, 33, 1000, 4099};
    static const int big[] = {32000, 128256};
    int failed = sc_run(dev, NULL, small, 6, quick ? 8 : 80);
    failed += sc_run(dev, NULL, big, 2, quick ? 1 : 6);
    emu_sample_paths();
    printf("%s\n", failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
