/* emu_sample.cpp: the device sampling op of the CUDA backend (cu_op_end_step_sample) over the
 * emulated kernels of cuda_sample.cu (compiled into this file, so it can also count which path
 * each row took): host memory stands for device memory. */
#include "cuda_sample_emu.cpp"

#include <stdio.h>
#include <stdlib.h>

static int g_paths[4][2]; /* [mode][edge bin listed 0 / over the row 1] */
static int g_second;      /* top-p edge bin that also holds the top-k / min-p edge */

extern "C" brisk_status emu_end_step_sample(const float *logits, int n, int V,
                                            const brisk_sample_params *p, const double *u,
                                            int32_t *ids, float *lp) {
    static void *scratch;
    static int cap;
    if (n > cap) { /* zeroed once, as the backend allocates it */
        free(scratch);
        scratch = calloc(1, cu_sample_bytes(n));
        cap = n;
    }
    cu_sample_in *in = (cu_sample_in *)scratch;
    for (int i = 0; i < n; i++) in[i].p = p[i], in[i].u = u[i];
    if (cu_sample(NULL, logits, n, V, scratch, cap) != cudaSuccess) return BRISK_ERR_BACKEND;
    const cu_sample_out *out = (const cu_sample_out *)((char *)scratch + cu_sample_out_offset(cap));
    brisk_status st = BRISK_OK;
    for (int i = 0; i < n; i++) {
        ids[i] = out[i].id, lp[i] = out[i].lp;
        if (ids[i] < 0 || ids[i] >= V) st = BRISK_ERR_BACKEND;
        const sp_row *R = &buf_of((char *)scratch, cap, i)->r;
        for (int k = 0; k < 4; k++)
            if (R->done[k]) {
                fprintf(stderr, "emu: row %d: launch %d left its counter at %u\n", i, k,
                        R->done[k]);
                st = BRISK_ERR_BACKEND;
            }
        if (R->bad) continue;
        g_paths[R->mode][R->mode >= SEL_RANK && R->bin_count > SP_CAP]++;
        g_second += R->mode == SEL_MASS && R->rank > 0;
    }
    return st;
}

extern "C" void emu_sample_paths(void) {
    printf("paths: all %d, min-p key %d, top-k rank %d (+%d over the row), top-p mass %d (+%d "
           "over the row; %d with the top-k / min-p edge in the same bin)\n",
           g_paths[SEL_ALL][0], g_paths[SEL_KEY][0], g_paths[SEL_RANK][0], g_paths[SEL_RANK][1],
           g_paths[SEL_MASS][0], g_paths[SEL_MASS][1], g_second);
}
