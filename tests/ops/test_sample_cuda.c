/* test_sample_cuda.c: the CUDA backend's end_step_sample (temperature, top-k, top-p, min-p and the
 * draw on the device) against the host sampler with the same uniform: the cases of
 * sample_cases.h (V 1..128256, random and adversarial rows, every filter combination, batches
 * of rows with their own filters, bit-identical reruns, NaN / +inf / all -inf rows, edge bins of
 * more than 4096 ids: flat rows, huge tie groups, dense distinct logits), the op
 * replayed as a CUDA graph inside one-token steps, and its cost next to the argmax op and to
 * copying the logits for the host sampler. Label gpu; exits 77 (skip) without a card. */
#include "backend/backend.h"
#include "check.h"
#include "gpu_test.h"
#include "sample_cases.h"

#include <cuda_runtime.h>
#include <time.h>

#define MAX_ROWS 16
#define MAX_V    128256

typedef struct fixture {
    brisk_backend *gpu;
    float *dl; /* device [MAX_ROWS, MAX_V] */
} fixture;

/* The logits to the device, landed. A plain cudaMemcpy from pageable memory returns once the
 * data is staged, before its DMA lands (CUDA's "API synchronization behavior"), and it runs on the
 * legacy default stream, which does not order the backend's non-blocking stream: without the
 * device sync the op's kernels read the old tail of the buffer (the batch's last row, the
 * one-finite shape) while it changes under them: the four launches then disagree about the row
 * (a logit above launch 1's max puts a bin below 0; the edge bin holds more ids in launch 3 than
 * launch 2 counted, past SP_CAP into the next row's state) -- the wrong id with other bits on the
 * rerun (which copies the same data again) seen on the H100, and out-of-range writes, the likely
 * source of its illegal instruction. tests/ops/cuda_emu replays this with EMU_LAG=bytes. */
static cudaError_t upload(float *d, const float *h, size_t count) {
    const cudaError_t e = cudaMemcpy(d, h, sizeof *h * count, cudaMemcpyHostToDevice);
    return e != cudaSuccess ? e : cudaDeviceSynchronize();
}

static brisk_status dev_sample(void *ctx, const float *logits, int n, int V,
                               const brisk_sample_params *p, const double *u, int32_t *ids,
                               float *lp) {
    fixture *f = ctx;
    if (upload(f->dl, logits, (size_t)n * V) != cudaSuccess) return BRISK_ERR_BACKEND;
    return f->gpu->ops->end_step_sample(f->gpu, f->dl, n, V, p, u, ids, lp);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* One-token steps (logged, so the op runs inside the step's CUDA graph: eager the first time,
 * captured the second, replayed after) with new logits, filters and uniforms each step: the
 * tokens must match the host's and the same inputs run outside a step, bit for bit. */
static void graph_steps(fixture *f) {
    const int V = 50000, n = 3;
    float *x = malloc(sizeof *x * (size_t)n * V);
    int32_t tok[1] = {0}, pos[1] = {0}, seq[1] = {0}, slot[1] = {0}, table[1] = {0};
    const int32_t *tables[1] = {table};
    const brisk_attn_batch b = {.n_tokens = 1,
                                .pos = pos,
                                .seq = seq,
                                .slot = slot,
                                .block_tables = tables,
                                .block_size = 16,
                                .sliding_window = 0};
    sc_stats st = {0, 0, 0, 0, 0.0};
    int same = 1;
    for (int step = 0; step < 8; step++) {
        brisk_sample_params p[3];
        sc_case k[3];
        double u[3];
        for (int r = 0; r < n; r++) {
            sc_fill(x + (size_t)r * V, V, (step + r) % SC_NSHAPES);
            k[r] = sc_make(step * 31 + r * 5, V);
            brisk_sampler *s = sc_sampler(&k[r], V);
            CHECK(s && brisk_sampler_device_params(s, &p[r]));
            brisk_sampler_destroy(s);
            u[r] = k[r].u;
        }
        CHECK(upload(f->dl, x, (size_t)n * V) == cudaSuccess);
        int32_t ids[3], ids2[3];
        float lp[3], lp2[3];
        CHECK(f->gpu->ops->begin_step(f->gpu, tok, &b, 1, 1) == BRISK_OK);
        brisk_status e = f->gpu->ops->end_step_sample(f->gpu, f->dl, n, V, p, u, ids, lp);
        CHECK_MSG(e == BRISK_OK, "graph step %d: %s", step, brisk_last_error());
        e = f->gpu->ops->end_step_sample(f->gpu, f->dl, n, V, p, u, ids2, lp2); /* no step */
        CHECK_MSG(e == BRISK_OK, "eager: %s", brisk_last_error());
        same &= !memcmp(ids, ids2, sizeof ids) && !memcmp(lp, lp2, sizeof lp);
        for (int r = 0; r < n; r++) {
            char what[64];
            snprintf(what, sizeof what, "graph step %d row %d (%s)", step, r,
                     sc_shape_name[(step + r) % SC_NSHAPES]);
            sc_check(x + (size_t)r * V, V, &k[r], ids[r], lp[r], what, &st);
        }
    }
    printf("graph steps: %d rows, %d equal to the host, %d rounding edges, %d failed; %s the "
           "eager op\n",
           st.cases, st.equal, st.edges, st.failed, same ? "bit-identical to" : "DIFFERENT from");
    CHECK(st.failed == 0 && same);
    free(x);
}

/* Wall time per call (op + copies + synchronisation) on an LM-like row of 128256 logits. */
static void timing(fixture *f) {
    const int V = MAX_V, iters = 200;
    float *x = malloc(sizeof *x * (size_t)MAX_ROWS * V), *host = malloc(sizeof *host * (size_t)V);
    for (int r = 0; r < MAX_ROWS; r++) sc_fill(x + (size_t)r * V, V, SC_LM);
    upload(f->dl, x, (size_t)MAX_ROWS * V);
    const sc_case k = {0.8f, 0.95f, 0.05f, 40, 0.5};
    brisk_sampler *s = sc_sampler(&k, V);
    brisk_sample_params p[MAX_ROWS];
    double u[MAX_ROWS];
    for (int r = 0; r < MAX_ROWS; r++) brisk_sampler_device_params(s, &p[r]), u[r] = 0.37;
    int32_t ids[MAX_ROWS];
    float lp[MAX_ROWS];
    for (int n = 1; n <= MAX_ROWS; n *= 4) {
        f->gpu->ops->end_step_sample(f->gpu, f->dl, n, V, p, u, ids, lp); /* warm up */
        double t0 = now_us();
        for (int i = 0; i < iters; i++)
            f->gpu->ops->end_step_sample(f->gpu, f->dl, n, V, p, u, ids, lp);
        const double ts = (now_us() - t0) / iters;
        f->gpu->ops->end_step_argmax(f->gpu, f->dl, n, V, ids, lp);
        t0 = now_us();
        for (int i = 0; i < iters; i++) f->gpu->ops->end_step_argmax(f->gpu, f->dl, n, V, ids, lp);
        const double ta = (now_us() - t0) / iters;
        printf("V %d, %2d rows: sample op %.1f us, argmax op %.1f us per call (top-k 40, top-p "
               "0.95, min-p 0.05, T 0.8)\n",
               V, n, ts, ta);
    }
    /* the selection over the row (edge bins of more than 4096 ids): near-flat rows, under the
     * filters above and under top-p 0.9 alone */
    const sc_case k9 = {0.7f, 0.9f, 0.0f, 0, 0.5};
    brisk_sampler *s9 = sc_sampler(&k9, V);
    brisk_sample_params p9[1];
    brisk_sampler_device_params(s9, &p9[0]);
    brisk_sampler_destroy(s9);
    for (int shape = 0; shape < 6; shape++) {
        const int sh[3] = {SC_FLAT, SC_NEARFLAT, SC_TIES};
        const brisk_sample_params *ps = shape < 3 ? p : p9;
        sc_fill(x, V, sh[shape % 3]);
        upload(f->dl, x, (size_t)V);
        f->gpu->ops->end_step_sample(f->gpu, f->dl, 1, V, ps, u, ids, lp);
        const double t0 = now_us();
        for (int i = 0; i < iters / 4; i++)
            f->gpu->ops->end_step_sample(f->gpu, f->dl, 1, V, ps, u, ids, lp);
        printf("V %d, 1 %s row (%s): sample op %.1f us per call\n", V, sc_shape_name[sh[shape % 3]],
               shape < 3 ? "the filters above" : "top-p 0.9, T 0.7", (now_us() - t0) / (iters / 4));
    }
    /* the host path it replaces: the row to the host, then the sampler */
    sc_fill(x, V, SC_LM);
    upload(f->dl, x, (size_t)V);
    double t0 = now_us();
    for (int i = 0; i < iters; i++) f->gpu->ops->end_step(f->gpu, f->dl, 1, V, host);
    const double tc = (now_us() - t0) / iters;
    t0 = now_us();
    for (int i = 0; i < iters; i++) {
        int32_t t;
        cudaMemcpy(host, f->dl, sizeof *host * (size_t)V, cudaMemcpyDeviceToHost);
        brisk_sampler_sample_u(s, host, 0.37, &t, NULL);
    }
    printf("host path: logits copy %.1f us per call, copy + host sampler %.1f us\n", tc,
           (now_us() - t0) / iters);
    brisk_sampler_destroy(s);
    free(x), free(host);
}

int main(void) {
    setenv("BRISK_CUDA_SAMPLE", "1", 1); /* the op on, whatever the caller's environment */
    float small[8] = {0};
    brisk_backend_init init = {.tensors = NULL,
                               .n_tensors = 0,
                               .small = small,
                               .n_small = 8,
                               .max_tokens = 16,
                               .max_ctx = 64,
                               .max_cols = 4096,
                               .n_threads = 1};
    fixture f = {0};
    const int rc = gt_cuda_create(&init, &f.gpu);
    if (rc) return rc;
    CHECK(f.gpu->ops->end_step_sample != NULL);
    f.dl = f.gpu->ops->alloc(f.gpu, sizeof(float) * (size_t)MAX_ROWS * MAX_V);
    CHECK(f.dl != NULL);
    static const int small_v[] = {1, 2, 7, 33, 1000, 4099};
    static const int big_v[] = {32000, 128256};
    CHECK(sc_run(dev_sample, &f, small_v, 6, 100) == 0);
    CHECK(sc_run(dev_sample, &f, big_v, 2, 40) == 0);
    static const int huge_v[] = {4099, 5000, 32000, 128256};
    CHECK(sc_run_huge(dev_sample, &f, huge_v, 4, 4 * SC_H_NFILTERS) == 0);
    graph_steps(&f);
    timing(&f);
    f.gpu->ops->free(f.gpu, f.dl);
    f.gpu->ops->destroy(f.gpu);
    CHECK_DONE();
}
