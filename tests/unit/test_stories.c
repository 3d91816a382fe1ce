/* test_stories.c: stories260K (a real trained tiny Llama) through the public API: position-0
 * logits vs the f64 reference, 200 greedy tokens exactly, and prefill == chunked == decode. */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SHARED;
/* The reference path is held to float64-level agreement. argv[2] = "cpu": the fast CPU backend
 * decodes 4/8-bit weights against int16 activations (measured ~1.4e-4 on the MLX folders) while
 * its prefill GEMM is f32, so both tolerances are 1e-3 there (issue 6 asks 1e-2). argv[2] =
 * "cuda": float16 KV cache and half tensor-core prefill, issue 7's 2e-2, and a greedy run that
 * may part at a near tie. */
static brisk_backend_kind BACKEND = BRISK_BACKEND_CPU_REF;
static double TOL0 = 1e-4, TOLC = 1e-5;
static int MIN_MATCH = 200, skipped;

static int read_floats(const char *path, float *out, int cap) {
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f) return -1;
    while (n < cap && fscanf(f, "%f", &out[n]) == 1) n++;
    fclose(f);
    return n;
}

static int read_ints(const char *path, int32_t *out, int cap) {
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f) return -1;
    while (n < cap && fscanf(f, "%d", &out[n]) == 1) n++;
    fclose(f);
    return n;
}

/* Pipelined decoding picks exactly the tokens one step at a time picks, greedy and drawn, each
 * launch after the first fed from the step before (token NULL); a drop ends the sequence before
 * the dropped tokens, and the context refuses other calls while launches are uncollected. */
static void test_pipeline(brisk_context *ctx, const int32_t *got, const char *name) {
    enum { KEEP = 20, N = 40 };
    brisk_sampler_params sps[3] = {brisk_sampler_default_params(), brisk_sampler_default_params(),
                                   brisk_sampler_default_params()};
    sps[1].temperature = 0.9f, sps[1].top_p = 0.95f, sps[1].top_k = 40, sps[1].seed = 7;
    sps[2].repetition_penalty = 1.2f, sps[2].penalty_window = 64;
    for (int v = 0; v < 2; v++) {
        brisk_sampler *smp = NULL;
        CHECK(brisk_sampler_create(&sps[v], 512, &smp) == BRISK_OK);
        if (!smp) return;
        int32_t want[N], have[N], t = got[KEEP];
        float wlp[N], hlp[N];
        CHECK(brisk_context_seq_truncate(ctx, 1, KEEP) == BRISK_OK);
        for (int i = 0; i < N; i++) {
            CHECK(brisk_context_eval_sample(ctx, 1, &t, 1, smp, &want[i], &wlp[i]) == BRISK_OK);
            t = want[i];
        }
        CHECK(brisk_context_seq_truncate(ctx, 1, KEEP) == BRISK_OK);
        brisk_sampler_reset(smp, sps[v].seed);
        CHECK(brisk_context_decode_launch(ctx, 1, &got[KEEP], smp) == BRISK_OK);
        int same = 0;
        for (int i = 0; i < N; i++) {
            if (i + 1 < N) CHECK(brisk_context_decode_launch(ctx, 1, NULL, smp) == BRISK_OK);
            have[i] = -1;
            CHECK(brisk_context_decode_collect(ctx, &have[i], &hlp[i]) == BRISK_OK);
            const int ok =
                have[i] == want[i] && fabsf(hlp[i] - wlp[i]) <= 1e-5f * (1 + fabsf(wlp[i]));
            if (!ok && same == i)
                printf("%s: step %d: pipelined %d (lp %.7g), one at a time %d (lp %.7g)\n", name, i,
                       have[i], hlp[i], want[i], wlp[i]);
            same += ok;
        }
        CHECK_MSG(same == N, "%s: pipelined %s decode: %d of %d steps as one at a time", name,
                  v ? "sampled" : "greedy", same, N);
        printf("%s: pipelined %s decode: %d of %d steps as one at a time\n", name,
               v ? "sampled" : "greedy", same, N);
        CHECK(brisk_context_seq_len(ctx, 1) == KEEP + N);

        /* two in flight; everything else is refused until they are dropped */
        CHECK(brisk_context_decode_launch(ctx, 1, &have[N - 1], smp) == BRISK_OK);
        CHECK(brisk_context_decode_launch(ctx, 1, NULL, smp) == BRISK_OK);
        CHECK(brisk_context_seq_len(ctx, 1) == KEEP + N + 2);
        CHECK(brisk_context_decode_launch(ctx, 1, NULL, smp) == BRISK_ERR_INVALID_ARG);
        CHECK(strstr(brisk_last_error(), "not collected") != NULL);
        CHECK(brisk_context_eval(ctx, 0, &t, 1, NULL, true) == BRISK_ERR_INVALID_ARG);
        CHECK(brisk_context_seq_truncate(ctx, 1, 3) == BRISK_ERR_INVALID_ARG);
        brisk_context_decode_drop(ctx);
        CHECK(brisk_context_seq_len(ctx, 1) == KEEP + N);
        int32_t next;
        CHECK(brisk_context_decode_collect(ctx, &next, NULL) == BRISK_ERR_INVALID_ARG);
        CHECK(brisk_context_decode_launch(ctx, 1, NULL, smp) == BRISK_ERR_INVALID_ARG);
        int32_t bad = 512;
        CHECK(brisk_context_decode_launch(ctx, 1, &bad, smp) == BRISK_ERR_INVALID_ARG);
        CHECK(brisk_context_seq_len(ctx, 1) == KEEP + N);
        /* one in flight, then the sequence goes on one step at a time after it */
        CHECK(brisk_context_decode_launch(ctx, 1, &have[N - 1], smp) == BRISK_OK);
        CHECK(brisk_context_decode_launch(ctx, 0, &t, smp) == BRISK_ERR_INVALID_ARG);
        CHECK(brisk_context_decode_collect(ctx, &next, NULL) == BRISK_OK);
        CHECK(brisk_context_eval_sample(ctx, 1, &next, 1, smp, &t, NULL) == BRISK_OK);
        CHECK(brisk_context_seq_len(ctx, 1) == KEEP + N + 2);
        brisk_sampler_destroy(smp);
    }
    brisk_sampler *pen = NULL;
    CHECK(brisk_sampler_create(&sps[2], 512, &pen) == BRISK_OK);
    CHECK(!brisk_sampler_can_pipeline(pen));
    CHECK(brisk_context_decode_launch(ctx, 1, got, pen) == BRISK_ERR_INVALID_ARG);
    CHECK(strstr(brisk_last_error(), "penalties") != NULL);
    brisk_sampler_destroy(pen);
}

static void test_folder(const char *name) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/models/%s", SHARED, name);
    brisk_model *m = NULL;
    const int loaded = test_load_model(dir, BACKEND, &m, &skipped);
    CHECK_MSG(loaded >= 0, "%s: %s", name, brisk_last_error());
    if (loaded <= 0) return;
    brisk_status st;
    brisk_model_info info;
    brisk_model_get_info(m, &info);
    CHECK(info.n_vocab == 512 && info.n_layer == 5 && info.tied_embeddings);
    CHECK(info.bos_id == 1 && info.n_eos == 1 && info.eos_ids[0] == 2);

    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = 256;
    cp.n_seq_max = 2;
    cp.n_batch = 64;
    brisk_context *ctx = NULL;
    st = brisk_context_create(m, &cp, &ctx);
    if (st == BRISK_ERR_UNSUPPORTED && BACKEND == BRISK_BACKEND_CUDA) {
        if (!skipped) printf("skipped: %s\n", brisk_last_error());
        skipped = 1;
        brisk_model_free(m);
        return;
    }
    CHECK_MSG(st == BRISK_OK, "%s", brisk_last_error());
    if (st != BRISK_OK) {
        brisk_model_free(m);
        return;
    }
    float logits[512], expect[512];
    snprintf(path, sizeof path, "%s/expected_logits_pos0.txt", dir);
    CHECK(read_floats(path, expect, 512) == 512);
    int32_t tok = 1;
    CHECK(brisk_context_eval(ctx, 0, &tok, 1, logits, true) == BRISK_OK);
    double err = test_rel_l2(logits, expect, 512);
    CHECK_MSG(err <= TOL0, "%s: position-0 logits rel L2 %.3g", name, err);
    printf("%s: position-0 logits rel L2 %.3g\n", name, err);

    /* 200 greedy tokens, one decode step at a time. */
    int32_t want[200], got[201];
    snprintf(path, sizeof path, "%s/expected_tokens.txt", dir);
    CHECK(read_ints(path, want, 200) == 200);
    int match = 0;
    got[0] = 1;
    for (int i = 0; i < 200; i++) {
        got[i + 1] = test_argmax(logits, 512);
        if (got[i + 1] == want[i]) match++;
        if (brisk_context_eval(ctx, 0, &got[i + 1], 1, logits, true) != BRISK_OK) break;
    }
    CHECK_MSG(match >= MIN_MATCH, "%s: %d of 200 greedy tokens match", name, match);
    printf("%s: %d of 200 greedy tokens match\n", name, match);

    /* The same 201 tokens as one chunked prefill in sequence 1 must give the same logits at
     * every position as the decode steps did (checked at the last position and one middle). */
    float *all = malloc(sizeof(float) * 201 * 512);
    CHECK(brisk_context_eval(ctx, 1, got, 201, all, false) == BRISK_OK);
    err = test_rel_l2(all + 200 * 512, logits, 512);
    printf("%s: prefill vs decode logits rel L2 %.3g\n", name, err);
    CHECK(err < TOLC);
    CHECK(BACKEND != BRISK_BACKEND_CPU_REF || test_argmax(all + 100 * 512, 512) == got[101]);

    /* Truncate and re-run: KV blocks come back and the result repeats. */
    CHECK(brisk_context_seq_truncate(ctx, 1, 150) == BRISK_OK);
    CHECK(brisk_context_seq_len(ctx, 1) == 150);
    float again[512];
    CHECK(brisk_context_eval(ctx, 1, got + 150, 51, again, true) == BRISK_OK);
    CHECK(test_rel_l2(again, logits, 512) < TOLC);

    test_pipeline(ctx, got, name);

    /* Errors leave the sequence unchanged. */
    int32_t bad = 512;
    CHECK(brisk_context_eval(ctx, 0, &bad, 1, logits, true) == BRISK_ERR_INVALID_ARG);
    CHECK(strstr(brisk_last_error(), "outside the vocabulary") != NULL);
    CHECK(brisk_context_eval(ctx, 5, &tok, 1, logits, true) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_context_seq_len(ctx, 0) == 201);
    int32_t *many = calloc(100, sizeof *many);
    CHECK(brisk_context_eval(ctx, 0, many, 100, NULL, true) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_context_seq_len(ctx, 0) == 201);
    free(many);
    free(all);
    brisk_context_destroy(ctx);
    brisk_model_free(m);
}

/* A pool smaller than two sequences: the second fails with KV_FULL and holds nothing. */
static void test_kv_full(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f32", SHARED);
    brisk_model *m = NULL;
    brisk_model_params mp = brisk_model_default_params();
    mp.backend = BACKEND;
    if (brisk_model_load(dir, &mp, &m) != BRISK_OK) {
        CHECK(0);
        return;
    }
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = 64;
    cp.n_seq_max = 2;
    cp.kv_block = 16;
    cp.n_kv_blocks = 5;
    brisk_context *ctx = NULL;
    if (brisk_context_create(m, &cp, &ctx) != BRISK_OK) {
        CHECK(skipped);
        brisk_model_free(m);
        return;
    }
    int32_t toks[64] = {1};
    CHECK(brisk_context_eval(ctx, 0, toks, 64, NULL, true) == BRISK_OK);
    CHECK(brisk_context_eval(ctx, 1, toks, 17, NULL, true) == BRISK_ERR_KV_FULL);
    CHECK(brisk_context_seq_len(ctx, 1) == 0);
    CHECK(brisk_context_eval(ctx, 1, toks, 16, NULL, true) == BRISK_OK);
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    CHECK(brisk_context_eval(ctx, 1, toks, 17, NULL, true) == BRISK_OK);
    brisk_context_destroy(ctx);
    brisk_model_free(m);
}

int main(int argc, char **argv) {
    SHARED = argc > 1 ? argv[1] : "../shared";
    if (argc > 2 && !strcmp(argv[2], "cuda")) {
        BACKEND = BRISK_BACKEND_CUDA, TOL0 = 2e-2, TOLC = 2e-2, MIN_MATCH = 50;
    }
    if (argc > 2 && !strcmp(argv[2], "cpu")) BACKEND = BRISK_BACKEND_CPU, TOL0 = TOLC = 1e-3;
    test_folder("stories260K-hf-f32");
    test_folder("stories260K-hf-bf16");
    test_folder("stories260K-mlx-4bit");
    test_folder("stories260K-mlx-mixed");
    test_kv_full();
    if (skipped) return 77;
    CHECK_DONE();
}
