/* test_attn_cuda.c: the CUDA attention op (flash-decoding kernel, and the split-K pair for head
 * sizes it does not take) against the reference backend: decode batches over shuffled paged block
 * tables, prefill-shaped steps, one-token steps replayed as a CUDA graph. Label gpu; exits 77
 * (skip) without a card. */
#include "backend/backend.h"
#include "check.h"
#include "gpu_test.h"
#include "util/fp.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* k/v values exact in float16 (k/1024, |k| < 1024), so both backends hold the same cache */
static float hrnd(void) {
    return (float)((int)(gt_rnd() % 2001) - 1000) / 1024.0f;
}

#define MAX_CTX    4400
#define MAX_TOKENS 320
#define NSEQ       8 /* 7 decode sequences + 1 prefill sequence */
#define PRE        50

static const int CTX[NSEQ] = {1, 2, 31, 33, 511, 1000, 4000, PRE + 300};

typedef struct cfg {
    int hkv, g, hd, bs, win;
    const char *why;
} cfg;

typedef struct fixture {
    const cfg *c;
    brisk_backend *gpu, *ref;
    int H, kv_dim, max_blocks;
    int32_t *tables[NSEQ];
    void *kc, *vc;    /* device, float16 */
    float *rkc, *rvc; /* host, float32 */
    float *dq, *dout; /* device [MAX_TOKENS, H*hd] */
    float *q, *out, *rout;
    float *small; /* init.small: RoPE frequencies */
} fixture;

/* x rounded to float16 and back (round to nearest even), as the GPU's cache stores keys. */
static float half_round(float x) {
    return brisk_f16_to_f32(brisk_f32_to_f16(x));
}

static brisk_attn_batch batch_of(const fixture *f, int T, const int32_t *pos, const int32_t *seq,
                                 const int32_t *slot) {
    brisk_attn_batch b = {.n_tokens = T,
                          .pos = pos,
                          .seq = seq,
                          .slot = slot,
                          .block_tables = (const int32_t *const *)f->tables,
                          .block_size = f->c->bs,
                          .sliding_window = f->c->win};
    return b;
}

/* The GPU output f->out against the reference's f->rout for T tokens: rel L2 <= 2e-3, all
 * finite; on failure the first elements that are off. */
static void compare_out(fixture *f, const char *what, int T, const int32_t *pos,
                        const int32_t *seq) {
    const cfg *c = f->c;
    const size_t n = (size_t)T * f->H * c->hd;
    int bad = 0;
    const double e = gt_rel_l2(f->out, f->rout, n, &bad);
    const int ok = bad == 0 && e <= 2e-3;
    printf("  %-44s T=%-3d rel L2 %.2e%s\n", what, T, e, bad ? "  NON-FINITE" : "");
    if (!ok) {
        int shown = 0;
        for (size_t k = 0; k < n && shown < 6; k++)
            if (!(fabs((double)f->out[k] - f->rout[k]) <=
                  1e-3 * (fabs((double)f->rout[k]) + 1e-2))) {
                const size_t row = (size_t)f->H * c->hd, tok = k / row;
                printf("    token %zu (seq %d pos %d) head %zu dim %zu: gpu %.6g ref %.6g\n", tok,
                       seq[tok], pos[tok], (k % row) / c->hd, k % c->hd, f->out[k], f->rout[k]);
                shown++;
            }
    }
    CHECK_MSG(ok, "%s T=%d: rel L2 %.3g (bound 2e-3), %d non-finite outputs", what, T, e, bad);
}

/* One attention step on both backends; compares, and returns the GPU output in f->out. */
static void step(fixture *f, const char *what, int T, const int32_t *pos, const int32_t *seq) {
    const cfg *c = f->c;
    const size_t n = (size_t)T * f->H * c->hd;
    int32_t tokens[MAX_TOKENS], slot[MAX_TOKENS];
    for (int i = 0; i < T; i++) tokens[i] = 0, slot[i] = 0;
    brisk_attn_batch b = batch_of(f, T, pos, seq, slot);
    for (size_t e = 0; e < n; e++) f->q[e] = 3.0f * gt_frnd();
    cudaMemcpy(f->dq, f->q, n * 4, cudaMemcpyHostToDevice);
    cudaMemset(f->dout, 0xff, n * 4); /* NaN: an output the kernel does not write shows */
    cudaDeviceSynchronize();
    brisk_status st = f->gpu->ops->begin_step(f->gpu, tokens, &b, f->max_blocks, NSEQ);
    CHECK_MSG(st == BRISK_OK, "%s: begin_step: %s", what, brisk_last_error());
    f->gpu->ops->attention(f->gpu, f->dq, f->kc, f->vc, &b, f->H, c->hkv, c->hd, f->dout);
    st = f->gpu->ops->end_step(f->gpu, NULL, 0, 0, NULL);
    CHECK_MSG(st == BRISK_OK, "%s: %s", what, brisk_last_error());
    cudaError_t ce = cudaMemcpy(f->out, f->dout, n * 4, cudaMemcpyDeviceToHost);
    CHECK_MSG(ce == cudaSuccess, "%s: %s", what, cudaGetErrorString(ce));
    f->ref->ops->attention(f->ref, f->q, f->rkc, f->rvc, &b, f->H, c->hkv, c->hd, f->rout);
    compare_out(f, what, T, pos, seq);
}

static int run_cfg(const cfg *c) {
    fixture F, *f = &F;
    memset(f, 0, sizeof F);
    f->c = c;
    f->H = c->hkv * c->g;
    f->kv_dim = c->hkv * c->hd;
    f->max_blocks = (MAX_CTX + c->bs - 1) / c->bs;
    static float small[128]; /* RoPE frequencies: the GPU copies init.small at create */
    f->small = small;
    for (int j = 0; j < 128; j++) small[j] = j < c->hd / 2 ? powf(10000.f, -2.f * j / c->hd) : 0.f;
    brisk_backend_init init = {.tensors = NULL,
                               .n_tensors = 0,
                               .small = small,
                               .n_small = 128,
                               .max_tokens = MAX_TOKENS,
                               .max_ctx = MAX_CTX,
                               .max_cols = 4096,
                               .n_threads = 1};
    const int rc = gt_cuda_create(&init, &f->gpu);
    if (rc) return rc;
    CHECK(brisk_backend_ref_create(&init, &f->ref) == BRISK_OK);
    printf("kv heads %d, group %d, head_dim %d, block %d, window %d (%s)\n", c->hkv, c->g, c->hd,
           c->bs, c->win, c->why);

    /* block tables over a shuffled pool: no sequence's blocks are contiguous or in order */
    int nb = 0;
    for (int q = 0; q < NSEQ; q++) nb += (CTX[q] + c->bs - 1) / c->bs;
    nb += 3; /* a few blocks nobody uses */
    int32_t *perm = malloc((size_t)nb * 4);
    for (int k = 0; k < nb; k++) perm[k] = k;
    for (int k = nb - 1; k > 0; k--) {
        const int j = (int)(gt_rnd() % (uint32_t)(k + 1));
        const int32_t t = perm[k];
        perm[k] = perm[j], perm[j] = t;
    }
    int used = 0;
    for (int q = 0; q < NSEQ; q++) {
        f->tables[q] = malloc((size_t)f->max_blocks * 4);
        for (int k = 0; k < f->max_blocks; k++) f->tables[q][k] = -1; /* never read */
        for (int k = 0; k < (CTX[q] + c->bs - 1) / c->bs; k++) f->tables[q][k] = perm[used++];
    }
    const size_t slots = (size_t)nb * c->bs;
    f->kc = f->gpu->ops->alloc(f->gpu, slots * f->kv_dim * 2);
    f->vc = f->gpu->ops->alloc(f->gpu, slots * f->kv_dim * 2);
    f->rkc = calloc(slots * f->kv_dim, 4), f->rvc = calloc(slots * f->kv_dim, 4);
    const size_t qn = (size_t)MAX_TOKENS * f->H * c->hd;
    f->dq = f->gpu->ops->alloc(f->gpu, qn * 4), f->dout = f->gpu->ops->alloc(f->gpu, qn * 4);
    f->q = malloc(qn * 4), f->out = malloc(qn * 4), f->rout = malloc(qn * 4);
    CHECK(f->kc && f->vc && f->rkc && f->rvc && f->dq && f->dout && f->q && f->out && f->rout);

    /* fill every position of every sequence through kv_store (chunks of MAX_TOKENS rows) */
    {
        const size_t rn = (size_t)MAX_TOKENS * f->kv_dim;
        float *k = malloc(rn * 4), *v = malloc(rn * 4);
        float *dk = f->gpu->ops->alloc(f->gpu, rn * 4), *dv = f->gpu->ops->alloc(f->gpu, rn * 4);
        int32_t pos[MAX_TOKENS], seq[MAX_TOKENS], slot[MAX_TOKENS], tokens[MAX_TOKENS] = {0};
        for (int q = 0; q < NSEQ; q++)
            for (int t0 = 0; t0 < CTX[q]; t0 += MAX_TOKENS) {
                const int n = CTX[q] - t0 < MAX_TOKENS ? CTX[q] - t0 : MAX_TOKENS;
                for (int i = 0; i < n; i++) {
                    const int t = t0 + i;
                    pos[i] = t, seq[i] = q;
                    slot[i] = f->tables[q][t / c->bs] * c->bs + t % c->bs;
                }
                for (size_t e = 0; e < (size_t)n * f->kv_dim; e++) k[e] = hrnd(), v[e] = hrnd();
                cudaMemcpy(dk, k, (size_t)n * f->kv_dim * 4, cudaMemcpyHostToDevice);
                cudaMemcpy(dv, v, (size_t)n * f->kv_dim * 4, cudaMemcpyHostToDevice);
                cudaDeviceSynchronize();
                brisk_attn_batch b = {.n_tokens = n,
                                      .pos = pos,
                                      .seq = seq,
                                      .slot = slot,
                                      .block_tables = (const int32_t *const *)f->tables,
                                      .block_size = c->bs};
                CHECK(f->gpu->ops->begin_step(f->gpu, tokens, &b, f->max_blocks, NSEQ) == BRISK_OK);
                f->gpu->ops->kv_store(f->gpu, f->kc, f->vc, dk, dv, slot, n, f->kv_dim);
                CHECK(f->gpu->ops->end_step(f->gpu, NULL, 0, 0, NULL) == BRISK_OK);
                f->ref->ops->kv_store(f->ref, f->rkc, f->rvc, k, v, slot, n, f->kv_dim);
            }
        f->gpu->ops->free(f->gpu, dk), f->gpu->ops->free(f->gpu, dv);
        free(k), free(v);
    }

    /* decode batch: one token per sequence at its last position, sequences out of order */
    {
        static const int32_t order[7] = {3, 0, 6, 1, 5, 2, 4};
        int32_t pos[7], seq[7];
        for (int i = 0; i < 7; i++) seq[i] = order[i], pos[i] = CTX[order[i]] - 1;
        step(f, "decode batch, contexts 1..4000", 7, pos, seq);
        /* each context alone at one token: the one-token path, logged and replayed as a graph
         * (first run eager, second captured, then replays: the arrival counters must be reset) */
        static const int32_t one_pos[] = {599, 3999, 0, 32, 1999, 3999};
        for (int r = 0; r < (int)(sizeof one_pos / sizeof one_pos[0]); r++) {
            int32_t p1[1] = {one_pos[r]}, s1[1] = {6};
            char what[80];
            snprintf(what, sizeof what, "one token at pos %d (run %d: %s)", p1[0], r,
                     r == 0   ? "eager"
                     : r == 1 ? "capture"
                              : "graph replay");
            step(f, what, 1, p1, s1);
        }
    }
    /* determinism: the same q twice through the batched path gives the same bits */
    {
        static const int32_t order[7] = {6, 5, 4, 3, 2, 1, 0};
        int32_t pos[7], seq[7];
        for (int i = 0; i < 7; i++) seq[i] = order[i], pos[i] = CTX[order[i]] - 1;
        const uint64_t keep = gt_rng;
        step(f, "decode batch (determinism, run 1)", 7, pos, seq);
        const size_t n = (size_t)7 * f->H * c->hd;
        float *a = malloc(n * 4);
        memcpy(a, f->out, n * 4);
        gt_rng = keep;
        step(f, "decode batch (determinism, run 2)", 7, pos, seq);
        CHECK_MSG(memcmp(a, f->out, n * 4) == 0, "attention is not deterministic run to run");
        free(a);
    }
    /* RoPE + KV store fused into the decode kernel (rope_kv_store then attention, tokens of
     * distinct sequences): new k/v at each token's position, against the reference's rope,
     * kv_store and attention; then a plain attention step over the same positions checks that
     * the fused launch wrote the caches */
    if (c->hd % 8 == 0 && c->hd <= 256) {
        static const int32_t order[7] = {2, 6, 0, 5, 1, 3, 4};
        const int hd = c->hd;
        float *invf = f->small; /* in init.small: the GPU maps it */
        for (int r = 0; r < 4; r++) {
            const int T = r == 0 ? 7 : 1; /* then one token: eager, capture, graph replay */
            int32_t pos[7], seq[7], slot[7], tokens[7] = {0};
            for (int i = 0; i < T; i++) {
                seq[i] = r == 0 ? order[i] : 6;
                pos[i] = r == 0 ? CTX[seq[i]] - 1 : 3999 - 7 * r;
                slot[i] = f->tables[seq[i]][pos[i] / c->bs] * c->bs + pos[i] % c->bs;
            }
            const size_t nq = (size_t)T * f->H * hd, nk = (size_t)T * f->kv_dim;
            float *k = malloc(nk * 4), *v = malloc(nk * 4);
            for (size_t e = 0; e < nq; e++) f->q[e] = 3.0f * gt_frnd();
            for (size_t e = 0; e < nk; e++) k[e] = hrnd(), v[e] = hrnd();
            float *dk = f->gpu->ops->alloc(f->gpu, nk * 4),
                  *dv = f->gpu->ops->alloc(f->gpu, nk * 4);
            cudaMemcpy(f->dq, f->q, nq * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dk, k, nk * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dv, v, nk * 4, cudaMemcpyHostToDevice);
            cudaMemset(f->dout, 0xff, nq * 4);
            cudaDeviceSynchronize();
            brisk_attn_batch b = batch_of(f, T, pos, seq, slot);
            CHECK(f->gpu->ops->begin_step(f->gpu, tokens, &b, f->max_blocks, NSEQ) == BRISK_OK);
            f->gpu->ops->rope_kv_store(f->gpu, f->dq, dk, dv, pos, T, f->H, c->hkv, hd, invf, f->kc,
                                       f->vc, slot);
            f->gpu->ops->attention(f->gpu, f->dq, f->kc, f->vc, &b, f->H, c->hkv, hd, f->dout);
            brisk_status st = f->gpu->ops->end_step(f->gpu, NULL, 0, 0, NULL);
            CHECK_MSG(st == BRISK_OK, "fused rope: %s", brisk_last_error());
            cudaMemcpy(f->out, f->dout, nq * 4, cudaMemcpyDeviceToHost);
            f->ref->ops->rope(f->ref, f->q, pos, T, f->H, hd, invf);
            f->ref->ops->rope(f->ref, k, pos, T, c->hkv, hd, invf);
            for (size_t e = 0; e < nk; e++) k[e] = half_round(k[e]); /* as the GPU cache holds */
            f->ref->ops->kv_store(f->ref, f->rkc, f->rvc, k, v, slot, T, f->kv_dim);
            f->ref->ops->attention(f->ref, f->q, f->rkc, f->rvc, &b, f->H, c->hkv, hd, f->rout);
            compare_out(f, "rope + kv store fused into attention", T, pos, seq);
            f->gpu->ops->free(f->gpu, dk), f->gpu->ops->free(f->gpu, dv);
            free(k), free(v);
            step(f, "the caches the fused launch wrote", T, pos, seq);
        }
    }
    /* prefill-shaped steps: T tokens of one sequence after PRE positions of context */
    {
        static const int Ts[] = {1, 2, 7, 64, 300};
        int32_t pos[MAX_TOKENS], seq[MAX_TOKENS];
        for (int k = 0; k < (int)(sizeof Ts / sizeof Ts[0]); k++) {
            const int T = Ts[k];
            for (int i = 0; i < T; i++) pos[i] = PRE + i, seq[i] = 7;
            char what[80];
            snprintf(what, sizeof what, "prefill after %d positions", PRE);
            step(f, what, T, pos, seq);
        }
        /* a mixed step: prefill tokens of one sequence and decode tokens of others */
        int T = 0;
        for (int i = 0; i < 40; i++) pos[T] = PRE + 200 + i, seq[T++] = 7;
        for (int q = 0; q < 7; q++)
            pos[T] = CTX[q] - 1 - (int)(gt_rnd() % (uint32_t)CTX[q]) / 2, seq[T++] = q;
        step(f, "mixed prefill + decode", T, pos, seq);
    }

    for (int q = 0; q < NSEQ; q++) free(f->tables[q]);
    free(perm);
    f->gpu->ops->free(f->gpu, f->kc), f->gpu->ops->free(f->gpu, f->vc);
    f->gpu->ops->free(f->gpu, f->dq), f->gpu->ops->free(f->gpu, f->dout);
    free(f->rkc), free(f->rvc), free(f->q), free(f->out), free(f->rout);
    f->gpu->ops->destroy(f->gpu);
    f->ref->ops->destroy(f->ref);
    return 0;
}

/* argv[1], optional: only the configurations whose name holds it (a short run, e.g. under
 * compute-sanitizer --tool racecheck: test_attn_cuda llama3-8b) */
int main(int argc, char **argv) {
    static const cfg C[] = {
        {8, 4, 128, 16, 0, "llama3-8b"},
        {8, 4, 64, 32, 0, "llama3.2-1b"},
        {2, 1, 128, 16, 0, "no grouping"},
        {4, 2, 64, 32, 100, "window 100"},
        {2, 7, 128, 16, 0, "group 7"},
        {1, 8, 128, 32, 0, "group 8, late V loads"},
        {2, 8, 64, 16, 37, "group 8, window 37"},
        {3, 2, 96, 16, 0, "head_dim 96: idle lanes"},
        {1, 4, 256, 16, 300, "head_dim 256: two load rounds, window 300"},
        {2, 3, 40, 16, 0, "head_dim 40"},
        {2, 2, 20, 16, 50, "head_dim 20: the split-K kernel"},
    };
    int ran = 0;
    for (int k = 0; k < (int)(sizeof C / sizeof C[0]); k++) {
        if (argc > 1 && !strstr(C[k].why, argv[1])) continue;
        ran++;
        const int r = run_cfg(&C[k]);
        if (r == 77) return 77;
        if (r) break;
    }
    if (!ran) {
        fprintf(stderr, "test_attn_cuda: no configuration named like '%s'\n", argv[1]);
        return 2;
    }
    CHECK_DONE();
}
