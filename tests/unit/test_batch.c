/* test_batch.c: continuous-batching decode: several sequences stepping together through one
 * forward pass (brisk_context_decode_batch) give the same logits and tokens as each sequence
 * decoded alone, across KV block boundaries; a full pool fails the step and changes nothing;
 * brisk_context_eval_greedy follows the logits' argmax. Argument 2 "cuda": the CUDA backend (its
 * decode steps of several sequences replay as graphs from the third step: the comparison with
 * the one-sequence steps covers the replays), within 2e-2. */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f32", shared);
    const int cuda = argc > 2 && !strcmp(argv[2], "cuda");
    const double tol = cuda ? 2e-2 : 1e-5, lp_tol = cuda ? 1e-3 : 1e-5;
    brisk_model *m = NULL;
    int skipped = 0;
    const int loaded =
        test_load_model(dir, cuda ? BRISK_BACKEND_CUDA : BRISK_BACKEND_CPU_REF, &m, &skipped);
    if (loaded == 0) return 0;
    if (loaded < 0) return 1;
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = 64;
    cp.n_seq_max = 3;
    cp.kv_block = 4;
    brisk_context *batched = NULL, *alone = NULL;
    CHECK(brisk_context_create(m, &cp, &batched) == BRISK_OK);
    CHECK(brisk_context_create(m, &cp, &alone) == BRISK_OK);
    const int32_t prompts[3][6] = {
        {1, 403, 407, 261, 378, 0}, {1, 317, 391, 0}, {1, 291, 280, 294, 0}};
    const int lens[3] = {5, 3, 4};
    float lb[3 * 512], la[512];
    int32_t next[3];
    int seqs[3] = {2, 0, 1}; /* batch order differs from sequence numbers */
    for (int k = 0; k < 3; k++) {
        CHECK(brisk_context_eval(batched, seqs[k], prompts[k], lens[k], la, true) == BRISK_OK);
        CHECK(brisk_context_eval(alone, seqs[k], prompts[k], lens[k], NULL, true) == BRISK_OK);
        next[k] = test_argmax(la, 512);
    }
    double worst = 0;
    int same = 1;
    for (int step = 0; step < 12; step++) {
        CHECK(brisk_context_decode_batch(batched, seqs, next, 3, lb) == BRISK_OK);
        for (int k = 0; k < 3; k++) {
            CHECK(brisk_context_eval(alone, seqs[k], &next[k], 1, la, true) == BRISK_OK);
            double e = test_rel_l2(lb + k * 512, la, 512);
            worst = e > worst ? e : worst;
            same &= test_argmax(lb + k * 512, 512) == test_argmax(la, 512);
            next[k] = test_argmax(la, 512);
        }
    }
    CHECK_MSG(worst < tol && same, "batched vs alone: rel L2 %.3g, tokens same %d", worst, same);
    /* brisk_context_eval_greedy: the argmax of what brisk_context_eval returns and its
     * log-softmax, without the caller seeing logits (the host fallback on this backend) */
    {
        brisk_context *g = NULL, *l = NULL;
        CHECK(brisk_context_create(m, &cp, &g) == BRISK_OK);
        CHECK(brisk_context_create(m, &cp, &l) == BRISK_OK);
        int32_t tg = -1, tl = prompts[0][0];
        float lp = 1;
        CHECK(brisk_context_eval_greedy(g, 0, prompts[0], lens[0], &tg, &lp) == BRISK_OK);
        CHECK(brisk_context_eval(l, 0, prompts[0], lens[0], la, true) == BRISK_OK);
        for (int step = 0; step < 20; step++) {
            tl = test_argmax(la, 512);
            double mx = la[tl], sum = 0;
            for (int i = 0; i < 512; i++) sum += exp((double)la[i] - mx);
            CHECK_MSG(tg == tl && fabs(lp + log(sum)) < lp_tol,
                      "step %d: greedy %d (%g) vs %d (%g)", step, tg, lp, tl, -log(sum));
            CHECK(brisk_context_eval_greedy(g, 0, &tg, 1, &tg, step % 2 ? &lp : NULL) == BRISK_OK);
            CHECK(brisk_context_eval(l, 0, &tl, 1, la, true) == BRISK_OK);
            if (step % 2 == 0) { /* lp was not asked for: recompute it from the reference */
                const int t = test_argmax(la, 512);
                double s2 = 0;
                for (int i = 0; i < 512; i++) s2 += exp((double)la[i] - la[t]);
                lp = (float)-log(s2);
            }
        }
        CHECK(brisk_context_seq_len(g, 0) == brisk_context_seq_len(l, 0));
        CHECK(brisk_context_eval_greedy(g, 0, &tg, 1, NULL, NULL) == BRISK_ERR_INVALID_ARG);
        const int32_t bad = 100000;
        CHECK(brisk_context_eval_greedy(g, 0, &bad, 1, &tg, NULL) == BRISK_ERR_INVALID_ARG);
        brisk_context_destroy(g);
        brisk_context_destroy(l);
    }
    for (int k = 0; k < 3; k++) CHECK(brisk_context_seq_len(batched, seqs[k]) == lens[k] + 12);

    /* Errors: duplicate sequence, bad token, and a pool too small for the step. */
    int dup[2] = {0, 0};
    CHECK(brisk_context_decode_batch(batched, dup, next, 2, NULL) == BRISK_ERR_INVALID_ARG);
    int32_t bad[3] = {1, 600, 1};
    CHECK(brisk_context_decode_batch(batched, seqs, bad, 3, NULL) == BRISK_ERR_INVALID_ARG);
    brisk_context_params small = cp;
    small.n_kv_blocks = 3;
    brisk_context *tight = NULL;
    CHECK(brisk_context_create(m, &small, &tight) == BRISK_OK);
    int32_t four[4] = {1, 2, 3, 4};
    CHECK(brisk_context_eval(tight, 0, four, 4, NULL, true) == BRISK_OK); /* block 0 full */
    CHECK(brisk_context_eval(tight, 1, four, 4, NULL, true) == BRISK_OK); /* block 1 full */
    CHECK(brisk_context_eval(tight, 2, four, 4, NULL, true) == BRISK_OK); /* block 2 full */
    int all3[3] = {0, 1, 2};
    CHECK(brisk_context_decode_batch(tight, all3, four, 3, NULL) == BRISK_ERR_KV_FULL);
    CHECK(brisk_context_seq_len(tight, 0) == 4 && brisk_context_seq_len(tight, 2) == 4);
    CHECK(brisk_context_seq_truncate(tight, 1, 0) == BRISK_OK);
    int two[2] = {0, 2};
    CHECK(brisk_context_decode_batch(tight, two, four, 2, NULL) == BRISK_ERR_KV_FULL);
    CHECK(brisk_context_seq_truncate(tight, 0, 0) == BRISK_OK);
    CHECK(brisk_context_decode_batch(tight, two, four, 2, NULL) == BRISK_OK);
    CHECK(brisk_context_seq_len(tight, 0) == 1 && brisk_context_seq_len(tight, 2) == 5);
    brisk_context_destroy(tight);
    brisk_context_destroy(batched);
    brisk_context_destroy(alone);
    brisk_model_free(m);
    CHECK_DONE();
}
