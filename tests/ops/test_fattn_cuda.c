/* test_fattn_cuda.c: the CUDA backend's prefill attention (the tensor-core flash kernel, and the
 * split kernels it hands short runs to) against the scalar reference through the ops vtable:
 * one sequence of T tokens after 0 or 37 cached positions, two sequences in one step, a mixed
 * step (prefill runs around single decode tokens), shuffled positions, shuffled block tables of 16,
 * GQA groups 1/4/8, head_dim 64/128, sliding window on/off. Label gpu; exits 77 without a card. */
#include "backend/backend.h"
#include "check.h"
#include "gpu_test.h"
#include "util/fp.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BS      16   /* KV block size */
#define MAX_T   560  /* tokens per step */
#define MAX_CTX 1024 /* positions per sequence */
#define MAX_SEQ 6

/* a value the float16 cache stores exactly, so the reference sees the same keys and values */
static float hrnd(void) {
    return brisk_f16_to_f32(brisk_f32_to_f16(gt_frnd()));
}

static brisk_backend *ref, *gpu;

static void *dev_upload(const void *h, size_t bytes) {
    void *d = gpu->ops->alloc(gpu, bytes);
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize(); /* pageable copies are not ordered with the backend's stream */
    return d;
}

/* One step's tokens: tok i of sequence seq[i] at position pos[i]. */
typedef struct step {
    int n;
    int32_t pos[MAX_T], seq[MAX_T], slot[MAX_T], ids[MAX_T];
} step;

typedef struct kvcase {
    int H, HKV, hd, window, n_seqs;
    int32_t *tables[MAX_SEQ];
    int max_blocks;
    int64_t n_slots;
    float *kc_ref, *vc_ref; /* [n_slots, kv_dim] f32 */
    void *kc_gpu, *vc_gpu;  /* [n_slots, kv_dim] f16 */
} kvcase;

static void fill_slots(const kvcase *c, step *s) {
    for (int i = 0; i < s->n; i++) {
        const int p = s->pos[i];
        s->slot[i] = c->tables[s->seq[i]][p / BS] * BS + p % BS;
        s->ids[i] = 0;
    }
}

static brisk_attn_batch batch_of(const kvcase *c, step *s) {
    brisk_attn_batch b = {.n_tokens = s->n,
                          .pos = s->pos,
                          .seq = s->seq,
                          .slot = s->slot,
                          .block_tables = (const int32_t *const *)c->tables,
                          .block_size = BS,
                          .sliding_window = c->window};
    return b;
}

/* Stores random (float16-exact) k/v rows of the step's tokens in both backends' caches; the
 * device copies of k/v go to dkv[2], freed by the caller after end_step (the store is queued). */
static void store_step(kvcase *c, step *s, float **dkv) {
    const int kv_dim = c->HKV * c->hd;
    float *k = malloc((size_t)s->n * kv_dim * 4), *v = malloc((size_t)s->n * kv_dim * 4);
    for (int i = 0; i < s->n * kv_dim; i++) k[i] = hrnd(), v[i] = hrnd();
    float *dk = dev_upload(k, (size_t)s->n * kv_dim * 4),
          *dv = dev_upload(v, (size_t)s->n * kv_dim * 4);
    ref->ops->kv_store(ref, c->kc_ref, c->vc_ref, k, v, s->slot, s->n, kv_dim);
    gpu->ops->kv_store(gpu, c->kc_gpu, c->vc_gpu, dk, dv, s->slot, s->n, kv_dim);
    dkv[0] = dk, dkv[1] = dv;
    free(k), free(v);
}

/* Runs one step (kv_store of its tokens, then attention) on both backends and compares. */
static void run_case(const char *what, kvcase *c, step *prior, step *s) {
    const int H = c->H, hd = c->hd;
    if (prior && prior->n > 0) { /* cached context from an earlier step */
        fill_slots(c, prior);
        brisk_attn_batch pb = batch_of(c, prior);
        CHECK(gpu->ops->begin_step(gpu, prior->ids, &pb, c->max_blocks, c->n_seqs) == BRISK_OK);
        ref->ops->begin_step(ref, prior->ids, &pb, c->max_blocks, c->n_seqs);
        float *dkv[2];
        store_step(c, prior, dkv);
        CHECK(gpu->ops->end_step(gpu, NULL, 0, 0, NULL) == BRISK_OK);
        gpu->ops->free(gpu, dkv[0]), gpu->ops->free(gpu, dkv[1]);
    }
    fill_slots(c, s);
    brisk_attn_batch b = batch_of(c, s);
    const size_t nq = (size_t)s->n * H * hd;
    float *q = malloc(nq * 4), *oref = malloc(nq * 4), *ogpu = malloc(nq * 4);
    for (size_t i = 0; i < nq; i++) q[i] = 2.5f * gt_frnd(); /* peaked softmax rows */
    float *dq = dev_upload(q, nq * 4);
    float *dout = gpu->ops->alloc(gpu, nq * 4);
    brisk_status st = gpu->ops->begin_step(gpu, s->ids, &b, c->max_blocks, c->n_seqs);
    CHECK_MSG(st == BRISK_OK, "%s: %s", what, brisk_last_error());
    ref->ops->begin_step(ref, s->ids, &b, c->max_blocks, c->n_seqs);
    float *dkv[2];
    store_step(c, s, dkv);
    ref->ops->attention(ref, q, c->kc_ref, c->vc_ref, &b, H, c->HKV, hd, oref);
    gpu->ops->attention(gpu, dq, c->kc_gpu, c->vc_gpu, &b, H, c->HKV, hd, dout);
    st = gpu->ops->end_step(gpu, NULL, 0, 0, NULL);
    CHECK_MSG(st == BRISK_OK, "%s: %s", what, brisk_last_error());
    cudaMemcpy(ogpu, dout, nq * 4, cudaMemcpyDeviceToHost);
    const double e = gt_rel_l2(ogpu, oref, nq, NULL);
    printf("  %-58s rel L2 %.2e\n", what, e);
    if (!(e <= 3e-3)) { /* where: the first tokens off */
        int shown = 0;
        for (int i = 0; i < s->n && shown < 4; i++) {
            const double ei = gt_rel_l2(ogpu + (size_t)i * H * hd, oref + (size_t)i * H * hd,
                                        (size_t)H * hd, NULL);
            if (ei > 3e-3)
                printf("    token %d (seq %d pos %d): rel L2 %.3g, gpu %.5g ref %.5g\n", i,
                       s->seq[i], s->pos[i], ei, ogpu[(size_t)i * H * hd],
                       oref[(size_t)i * H * hd]),
                    shown++;
        }
    }
    CHECK_MSG(e <= 3e-3, "%s: rel L2 %.3g", what, e);
    gpu->ops->free(gpu, dq), gpu->ops->free(gpu, dout);
    gpu->ops->free(gpu, dkv[0]), gpu->ops->free(gpu, dkv[1]);
    free(q), free(oref), free(ogpu);
}

/* Caches and shuffled block tables for n_seqs sequences of up to ctx[q] positions. */
static void case_create(kvcase *c, int H, int HKV, int hd, int window, int n_seqs, const int *ctx) {
    memset(c, 0, sizeof *c);
    c->H = H, c->HKV = HKV, c->hd = hd, c->window = window, c->n_seqs = n_seqs;
    int total = 0, nb[MAX_SEQ];
    for (int q = 0; q < n_seqs; q++) {
        nb[q] = (ctx[q] + BS - 1) / BS;
        total += nb[q];
        if (nb[q] > c->max_blocks) c->max_blocks = nb[q];
    }
    int *perm = malloc((size_t)total * sizeof *perm);
    for (int i = 0; i < total; i++) perm[i] = i;
    for (int i = total - 1; i > 0; i--) {
        const int j = (int)(gt_rnd() % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int used = 0;
    for (int q = 0; q < n_seqs; q++) {
        c->tables[q] = calloc((size_t)c->max_blocks, sizeof(int32_t));
        for (int k = 0; k < nb[q]; k++) c->tables[q][k] = perm[used++];
    }
    free(perm);
    c->n_slots = (int64_t)total * BS;
    const size_t n = (size_t)c->n_slots * HKV * hd;
    c->kc_ref = calloc(n, 4), c->vc_ref = calloc(n, 4);
    c->kc_gpu = gpu->ops->alloc(gpu, n * 2), c->vc_gpu = gpu->ops->alloc(gpu, n * 2);
}

static void case_destroy(kvcase *c) {
    for (int q = 0; q < c->n_seqs; q++) free(c->tables[q]);
    free(c->kc_ref), free(c->vc_ref);
    gpu->ops->free(gpu, c->kc_gpu), gpu->ops->free(gpu, c->vc_gpu);
}

static step S0, S1; /* large: static */

static void range(step *s, int seq, int p0, int n) {
    for (int i = 0; i < n; i++) s->seq[s->n + i] = seq, s->pos[s->n + i] = p0 + i;
    s->n += n;
}

int main(void) {
    float small[16] = {0};
    brisk_backend_init init = {.tensors = NULL,
                               .n_tensors = 0,
                               .small = small,
                               .n_small = 16,
                               .max_tokens = MAX_T,
                               .max_ctx = MAX_CTX,
                               .max_cols = 64,
                               .n_threads = 1};
    const int rc = gt_cuda_create(&init, &gpu);
    if (rc) return rc;
    CHECK(brisk_backend_ref_create(&init, &ref) == BRISK_OK);

    static const int GH[3][2] = {{4, 4}, {8, 2}, {16, 2}}; /* (H, HKV): G = 1, 4, 8 */
    static const int HDS[2] = {64, 128};
    static const int TS[5] = {9, 64, 65, 200, 513};
    char what[128];
    for (int gi = 0; gi < 3; gi++)
        for (int hi = 0; hi < 2; hi++)
            for (int wi = 0; wi < 2; wi++) {
                const int H = GH[gi][0], HKV = GH[gi][1], hd = HDS[hi], window = wi ? 50 : 0;
                printf("G %d hd %d window %d\n", H / HKV, hd, window);
                for (int ti = 0; ti < 5; ti++)
                    for (int start = 0; start <= 37; start += 37) {
                        const int T = TS[ti], ctx = start + T;
                        kvcase c;
                        case_create(&c, H, HKV, hd, window, 1, &ctx);
                        S0.n = S1.n = 0;
                        range(&S0, 0, 0, start);
                        range(&S1, 0, start, T);
                        snprintf(what, sizeof what, "one sequence T %d after %d", T, start);
                        run_case(what, &c, &S0, &S1);
                        case_destroy(&c);
                    }
                /* two sequences in one step: 100 new tokens of seq 0 after 0, 165 of seq 1
                 * after 37 */
                {
                    const int ctx[2] = {100, 37 + 165};
                    kvcase c;
                    case_create(&c, H, HKV, hd, window, 2, ctx);
                    S0.n = S1.n = 0;
                    range(&S0, 1, 0, 37);
                    range(&S1, 0, 0, 100);
                    range(&S1, 1, 37, 165);
                    run_case("two sequences (100 after 0, 165 after 37)", &c, &S0, &S1);
                    case_destroy(&c);
                }
                /* mixed step: a prefill run, three decode tokens (split kernels), a short run,
                 * another prefill run */
                {
                    const int ctx[5] = {70, 301, 90, 26, 40};
                    kvcase c;
                    case_create(&c, H, HKV, hd, window, 5, ctx);
                    S0.n = S1.n = 0;
                    range(&S0, 1, 0, 300);
                    range(&S0, 2, 0, 89);
                    range(&S0, 3, 0, 20);
                    range(&S1, 0, 0, 70);
                    range(&S1, 1, 300, 1);
                    range(&S1, 2, 89, 1);
                    range(&S1, 3, 20, 6);
                    range(&S1, 4, 0, 40);
                    run_case("mixed (run 70, decode x2, run 6, run 40)", &c, &S0, &S1);
                    case_destroy(&c);
                }
                /* one sequence whose tokens come in shuffled position order */
                {
                    const int ctx = 37 + 150;
                    kvcase c;
                    case_create(&c, H, HKV, hd, window, 1, &ctx);
                    S0.n = S1.n = 0;
                    range(&S0, 0, 0, 37);
                    range(&S1, 0, 37, 150);
                    for (int i = S1.n - 1; i > 0; i--) {
                        const int j = (int)(gt_rnd() % (uint32_t)(i + 1)), t = S1.pos[i];
                        S1.pos[i] = S1.pos[j], S1.pos[j] = t;
                    }
                    run_case("one sequence, 150 shuffled positions after 37", &c, &S0, &S1);
                    case_destroy(&c);
                }
            }
    gpu->ops->destroy(gpu);
    ref->ops->destroy(ref);
    CHECK_DONE();
}
