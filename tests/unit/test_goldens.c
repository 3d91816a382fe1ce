/* test_goldens.c: logits parity with Hugging Face transformers (float64 run, logits.f32) and with
 * mlx_lm itself (float32 run, logits_mlx.f32) on the fixtures of tests/golden/models/, made by
 * scripts/make_goldens.py: llama/mistral/qwen2/qwen3 in bf16, MLX 4-bit g64, 8-bit g32, mixed. */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative L2 of the logits. The reference backend: measured ~2e-7, issue 2 asks 1e-4. The fast
 * CPU backend (argv[2] = "cpu"): issue 6 asks 1e-2. The CUDA backend (argv[2] = "cuda"; float16
 * KV cache, half tensor-core prefill): issue 7 asks 2e-2. */
static double TOL = 1e-5;
static brisk_backend_kind BACKEND = BRISK_BACKEND_CPU_REF;
static int skipped;
static double worst;

static void check_fixture(const char *golden, const char *name) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/models/%s", golden, name);
    int32_t toks[64];
    int n = 0;
    snprintf(path, sizeof path, "%s/tokens.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s: no tokens.txt", name);
    while (f && n < 64 && fscanf(f, "%d", &toks[n]) == 1) n++;
    if (f) fclose(f);
    brisk_model *m = NULL;
    const int loaded = test_load_model(dir, BACKEND, &m, &skipped);
    CHECK_MSG(loaded >= 0, "%s: %s", name, brisk_last_error());
    if (loaded <= 0) return;
    brisk_status st;
    brisk_model_info info;
    brisk_model_get_info(m, &info);
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = 64;
    cp.kv_block = 4; /* several blocks per sequence even for 12 tokens */
    brisk_context *ctx = NULL;
    st = brisk_context_create(m, &cp, &ctx);
    if (st == BRISK_ERR_UNSUPPORTED && BACKEND == BRISK_BACKEND_CUDA) {
        if (!skipped) printf("skipped: %s\n", brisk_last_error());
        skipped = 1;
        brisk_model_free(m);
        return;
    }
    CHECK_MSG(st == BRISK_OK, "%s: %s", name, brisk_last_error());
    const size_t V = (size_t)info.n_vocab;
    float *logits = malloc((size_t)n * V * sizeof *logits);
    CHECK(ctx && brisk_context_eval(ctx, 0, toks, n, logits, false) == BRISK_OK);
    const char *refs[] = {"logits.f32", "logits_mlx.f32"};
    printf("%-18s", name);
    for (int r = 0; r < 2; r++) {
        snprintf(path, sizeof path, "%s/%s", dir, refs[r]);
        size_t cnt;
        float *ref = test_read_f32(path, &cnt);
        if (!ref) {
            CHECK_MSG(r == 1, "%s: missing %s", name, refs[r]);
            printf("  %-14s %9s", refs[r], "-");
            continue;
        }
        CHECK_MSG(cnt == (size_t)n * V, "%s: %s holds %zu floats, expected %zu", name, refs[r], cnt,
                  (size_t)n * V);
        double e = cnt == (size_t)n * V ? test_rel_l2(logits, ref, cnt) : 1.0;
        CHECK_MSG(e <= TOL, "%s: %s rel L2 %.3g > %.0e", name, refs[r], e, TOL);
        if (e > worst) worst = e;
        printf("  %-14s %9.2e", refs[r], e);
        free(ref);
    }
    /* The fast CPU backend runs steps of fewer than BRISK_GEMM_MIN_N tokens through its
     * integer decode kernels (quantized activations), which the one-pass eval above never
     * reaches: evaluate every position as a single-token step and hold it to the same bound. */
    if (BACKEND == BRISK_BACKEND_CPU) {
        CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
        for (int i = 0; i < n; i++)
            CHECK(brisk_context_eval(ctx, 0, toks + i, 1, logits + i * V, true) == BRISK_OK);
        snprintf(path, sizeof path, "%s/%s", dir, refs[0]);
        size_t cnt1;
        float *ref = test_read_f32(path, &cnt1);
        if (ref && cnt1 == (size_t)n * V) {
            double e = test_rel_l2(logits, ref, cnt1);
            CHECK_MSG(e <= TOL, "%s: single-token steps rel L2 %.3g", name, e);
            if (e > worst) worst = e;
            printf("  %-6s %9.2e", "steps", e);
        }
        free(ref);
    }
    /* Incremental decode against transformers' own cached decode (llama-bf16 carries it):
     * prefill 8, then 4 single-token steps. */
    snprintf(path, sizeof path, "%s/logits_decode.f32", dir);
    size_t cnt;
    float *dec = test_read_f32(path, &cnt);
    if (dec && cnt == 4 * V) {
        CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
        CHECK(brisk_context_eval(ctx, 0, toks, 8, NULL, true) == BRISK_OK);
        for (int i = 0; i < 4; i++)
            CHECK(brisk_context_eval(ctx, 0, toks + 8 + i, 1, logits + i * V, true) == BRISK_OK);
        double e = test_rel_l2(logits, dec, 4 * V);
        CHECK_MSG(e <= TOL, "%s: decode rel L2 %.3g", name, e);
        if (e > worst) worst = e;
        printf("  %-14s %9.2e", "decode", e);
    }
    printf("\n");
    free(dec);
    free(logits);
    brisk_context_destroy(ctx);
    brisk_model_free(m);
}

int main(int argc, char **argv) {
    const char *golden = argc > 1 ? argv[1] : "tests/golden";
    if (argc > 2 && !strcmp(argv[2], "cuda")) BACKEND = BRISK_BACKEND_CUDA, TOL = 2e-2;
    if (argc > 2 && !strcmp(argv[2], "cpu")) BACKEND = BRISK_BACKEND_CPU, TOL = 1e-2;
    static const char *const fixtures[] = {
        "llama-bf16",    "llama-q4g64",       "llama-q8g32",      "llama-mixed",   "llama-f16",
        "llama-f32",     "llama-linear-rope", "llama-ropeparams", "llama-sharded", "mistral-bf16",
        "mistral-q4g64", "mistral-q8g32",     "qwen2-bf16",       "qwen2-q4g64",   "qwen2-q8g32",
        "qwen3-bf16",    "qwen3-q4g64",       "qwen3-q8g32",
    };
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
        check_fixture(golden, fixtures[i]);
    if (skipped) return 77;
    printf("worst rel L2 %.3g (tolerance %.0e)\n", worst, TOL);
    CHECK_DONE();
}
