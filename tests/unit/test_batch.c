/* test_batch.c: continuous-batching decode: several sequences stepping together through one
 * forward pass (brisk_context_decode_batch) give the same logits and tokens as each sequence
 * decoded alone, across KV block boundaries; a full pool fails the step and changes nothing;
 * brisk_context_eval_greedy follows the logits' argmax; brisk_context_decode_batch_sample picks
 * the ids the host's samplers pick from decode_batch's logits; brisk_context_kv_bytes_per_token
 * counts every layer's K and V row. Argument 2 "cuda": the CUDA backend
 * (its decode steps of several sequences replay as graphs from the third step: the comparison with
 * the one-sequence steps covers the replays), within 2e-2. */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* brisk_context_decode_batch_sample against decode_batch's logits sampled on the host by twin
 * samplers (same parameters and seeds), for three sequences whose samplers are built by kind[k]:
 * 'g' greedy, 'd' a drawing chain the backend can run, 'p' a chain with a repetition penalty
 * (host only). Both contexts are fed the sampled ids; ids must match and logprobs within lp_tol.
 * Returns the number of mismatching ids. */
static brisk_sampler *make_sampler(char kind, int k) {
    brisk_sampler_params p = brisk_sampler_default_params();
    if (kind != 'g') p.temperature = 0.9f, p.top_k = 60, p.top_p = 0.95f, p.min_p = 0.01f;
    if (kind == 'p') p.repetition_penalty = 1.3f;
    p.seed = 7 + (uint64_t)k;
    brisk_sampler *s = NULL;
    CHECK(brisk_sampler_create(&p, 512, &s) == BRISK_OK);
    return s;
}

static int sample_vs_host(brisk_model *m, const brisk_context_params *cp, const char *kind,
                          double lp_tol) {
    brisk_context *a = NULL, *b = NULL;
    CHECK(brisk_context_create(m, cp, &a) == BRISK_OK);
    CHECK(brisk_context_create(m, cp, &b) == BRISK_OK);
    brisk_sampler *sa[3], *sb[3];
    int seqs[3] = {1, 2, 0}, bad = 0;
    int32_t next[3], want[3];
    float lp[3], lb[3 * 512];
    for (int k = 0; k < 3; k++) {
        sa[k] = make_sampler(kind[k], k), sb[k] = make_sampler(kind[k], k);
        const int32_t prompt[3] = {1, 300 + 20 * k, 280};
        CHECK(brisk_context_eval(a, seqs[k], prompt, 3, NULL, true) == BRISK_OK);
        CHECK(brisk_context_eval(b, seqs[k], prompt, 3, NULL, true) == BRISK_OK);
        next[k] = 400 + k;
    }
    for (int step = 0; step < 10; step++) {
        CHECK(brisk_context_decode_batch(b, seqs, next, 3, lb) == BRISK_OK);
        CHECK(brisk_context_decode_batch_sample(a, seqs, next, 3, sa, next, step % 3 ? lp : NULL) ==
              BRISK_OK);
        for (int k = 0; k < 3; k++) {
            float l = 0;
            CHECK(brisk_sampler_sample(sb[k], lb + k * 512, &want[k], &l) == BRISK_OK);
            bad += next[k] != want[k];
            if (step % 3)
                CHECK_MSG(fabs(lp[k] - l) < lp_tol, "%s step %d row %d: logprob %g vs %g", kind,
                          step, k, lp[k], l);
            brisk_sampler_accept(sa[k], next[k]);
            brisk_sampler_accept(sb[k], want[k]);
        }
    }
    for (int k = 0; k < 3; k++) brisk_sampler_destroy(sa[k]), brisk_sampler_destroy(sb[k]);
    brisk_context_destroy(a);
    brisk_context_destroy(b);
    return bad;
}

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
    brisk_model_info info;
    brisk_model_get_info(m, &info); /* K and V rows of every layer: f16 on CUDA, f32 on ref */
    CHECK(brisk_context_kv_bytes_per_token(batched) ==
          (size_t)2 * info.n_layer * info.n_head_kv * info.head_dim * (cuda ? 2 : 4));
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

    /* brisk_context_decode_batch_sample: all greedy (the argmax where the logits are), drawing
     * chains with and without greedy rows among them (on the backend when it has a sampler), and
     * a penalty (every row's logits to the host). A device draws with the same uniforms: equal
     * ids up to float rounding at a filter's edge, so one miss in 30 is allowed there. */
    {
        const char *kinds[] = {"ggg", "ddd", "gdg", "pgd"};
        for (int i = 0; i < 4; i++) {
            const int bad = sample_vs_host(m, &cp, kinds[i], lp_tol);
            CHECK_MSG(bad <= (cuda && kinds[i][0] != 'p' && strchr(kinds[i], 'd') ? 1 : 0),
                      "decode_batch_sample %s: %d of 30 ids differ from the host's", kinds[i], bad);
        }
        /* errors: nothing moves (the next step matches a twin that never saw them) */
        brisk_context *e = NULL;
        CHECK(brisk_context_create(m, &cp, &e) == BRISK_OK);
        brisk_sampler *sm[3] = {make_sampler('d', 0), make_sampler('g', 1), make_sampler('d', 2)};
        brisk_sampler *tw = make_sampler('d', 0);
        int32_t ids[3] = {1, 1, 1}, one = 1;
        CHECK(brisk_context_decode_batch_sample(e, seqs, ids, 3, NULL, ids, NULL) ==
              BRISK_ERR_INVALID_ARG);
        brisk_sampler *twice[3] = {sm[0], sm[1], sm[0]}; /* one drawing sampler twice */
        CHECK(brisk_context_decode_batch_sample(e, seqs, ids, 3, twice, ids, NULL) ==
              BRISK_ERR_INVALID_ARG);
        brisk_sampler_params wp = brisk_sampler_default_params();
        brisk_sampler *wrong = NULL;
        CHECK(brisk_sampler_create(&wp, 100, &wrong) == BRISK_OK);
        brisk_sampler *wv[3] = {sm[0], wrong, sm[2]};
        CHECK(brisk_context_decode_batch_sample(e, seqs, ids, 3, wv, ids, NULL) ==
              BRISK_ERR_INVALID_ARG);
        int32_t oov[3] = {1, 512, 1};
        CHECK(brisk_context_decode_batch_sample(e, seqs, oov, 3, sm, ids, NULL) ==
              BRISK_ERR_INVALID_ARG);
        CHECK(ids[0] == 1 && ids[1] == 1 && ids[2] == 1);
        for (int k = 0; k < 3; k++) CHECK(brisk_context_seq_len(e, seqs[k]) == 0);
        brisk_sampler *greedy2[2] = {sm[1], sm[1]}; /* a greedy sampler may serve two rows */
        CHECK(brisk_context_decode_batch_sample(e, seqs, ids, 2, greedy2, ids, NULL) == BRISK_OK);
        CHECK(brisk_context_seq_len(e, seqs[0]) == 1 && brisk_context_seq_len(e, seqs[2]) == 0);
        brisk_context *f = NULL; /* the twin: the same steps without the failed ones */
        CHECK(brisk_context_create(m, &cp, &f) == BRISK_OK);
        float lf[512];
        int32_t tw_id = -1, e_ids[1], f_ids[2], ones[2] = {1, 1};
        int s0 = 0;
        CHECK(brisk_context_decode_batch_sample(f, seqs, ones, 2, greedy2, f_ids, NULL) ==
              BRISK_OK);
        CHECK(brisk_context_decode_batch(f, &s0, &one, 1, lf) == BRISK_OK);
        CHECK(brisk_sampler_sample(tw, lf, &tw_id, NULL) == BRISK_OK);
        CHECK(brisk_context_decode_batch_sample(e, &s0, &one, 1, sm, e_ids, NULL) == BRISK_OK);
        CHECK_MSG(cuda || e_ids[0] == tw_id, "after errors: %d vs the twin's %d", e_ids[0], tw_id);
        for (int k = 0; k < 3; k++) brisk_sampler_destroy(sm[k]);
        brisk_sampler_destroy(tw), brisk_sampler_destroy(wrong);
        brisk_context_destroy(f);
        brisk_context_destroy(e);
    }

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
