/* test_generate.c: brisk_generate's stop conditions and text contract on stories260K: EOS,
 * extra EOS, length, context, cancellation, a stop inside a UTF-8 character (never half a
 * character), what the sequence holds afterwards, and that text equals decode(all tokens). */
#include "brisk.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct collected {
    char text[8192];
    size_t len;
    int32_t ids[512];
    int n;
    int cancel_after; /* 0 = never */
} collected;

static bool collect(void *user, const char *text, size_t len, int32_t token, float logprob) {
    (void)logprob;
    collected *c = user;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    if (token >= 0 && c->n < 512) c->ids[c->n++] = token;
    return !(c->cancel_after && c->n >= c->cancel_after);
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + (size_t)k > n) return 0;
        for (int j = 1; j < k; j++)
            if (((unsigned char)s[i + j] >> 6) != 2) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* brisk_context_eval_sample gives the tokens (and logprobs) of brisk_context_eval followed by
 * brisk_sampler_sample with a sampler of the same seed, whichever way it takes (greedy, the
 * backend's chain, or the host for a penalised chain). */
static void eval_sample_matches(brisk_context *ctx, const brisk_sampler_params *sp, int n_vocab,
                                const char *what) {
    enum { N = 24 };
    const int32_t prompt[] = {1, 403, 407, 261, 378};
    int32_t a[N], b[N];
    float la[N], lb[N];
    float *logits = malloc(sizeof(float) * (size_t)n_vocab);
    brisk_sampler *s = NULL;
    int ok = brisk_sampler_create(sp, n_vocab, &s) == BRISK_OK && logits;
    ok &= brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK;
    for (int i = 0; i < 5; i++) brisk_sampler_accept(s, prompt[i]);
    for (int i = 0; ok && i < N; i++) {
        ok &= brisk_context_eval_sample(ctx, 0, i ? &a[i - 1] : prompt, i ? 1 : 5, s, &a[i],
                                        &la[i]) == BRISK_OK;
        brisk_sampler_accept(s, a[i]);
    }
    brisk_sampler_reset(s, sp->seed);
    ok &= brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK;
    for (int i = 0; i < 5; i++) brisk_sampler_accept(s, prompt[i]);
    for (int i = 0; ok && i < N; i++) {
        ok &=
            brisk_context_eval(ctx, 0, i ? &b[i - 1] : prompt, i ? 1 : 5, logits, true) == BRISK_OK;
        ok &= brisk_sampler_sample(s, logits, &b[i], &lb[i]) == BRISK_OK;
        brisk_sampler_accept(s, b[i]);
    }
    int same = ok;
    for (int i = 0; same && i < N; i++) same = a[i] == b[i] && fabsf(la[i] - lb[i]) < 1e-4f;
    CHECK_MSG(same, "%s: eval_sample and eval + sample differ (%s)", what, brisk_last_error());
    /* a sampler of another vocabulary is refused, and nothing is evaluated */
    brisk_sampler *w = NULL;
    int32_t t;
    CHECK(brisk_sampler_create(sp, n_vocab + 1, &w) == BRISK_OK);
    const int len = brisk_context_seq_len(ctx, 0);
    CHECK(brisk_context_eval_sample(ctx, 0, prompt, 1, w, &t, NULL) == BRISK_ERR_INVALID_ARG &&
          brisk_context_seq_len(ctx, 0) == len);
    brisk_sampler_destroy(w);
    brisk_sampler_destroy(s);
    free(logits);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-mlx-4bit", shared);
    brisk_model *m = NULL;
    brisk_tokenizer *tok = NULL;
    brisk_context *ctx = NULL;
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = 64;
    if (brisk_model_load(dir, NULL, &m) != BRISK_OK ||
        brisk_tokenizer_load(dir, &tok) != BRISK_OK ||
        brisk_context_create(m, &cp, &ctx) != BRISK_OK) {
        fprintf(stderr, "setup: %s\n", brisk_last_error());
        return 1;
    }
    const int32_t prompt[] = {1, 403, 407, 261, 378}; /* <s> Once upon a time */
    brisk_generate_stats st;

    /* Length: 20 tokens, text == decode(prompt + generated) minus the decoded prompt. */
    collected c = {0};
    brisk_generate_params gp = brisk_generate_default_params();
    gp.max_tokens = 20;
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_LENGTH && st.n_generated == 20 && c.n == 20 && st.n_prompt == 5);
    CHECK(brisk_context_seq_len(ctx, 0) == 5 + 19); /* the last token was not fed back */
    int32_t all[32];
    memcpy(all, prompt, sizeof prompt);
    memcpy(all + 5, c.ids, 20 * sizeof(int32_t));
    char full[4096], head[4096];
    size_t fl, hl;
    CHECK(brisk_tokenizer_decode(tok, all, 25, true, full, sizeof full, &fl) == BRISK_OK);
    CHECK(brisk_tokenizer_decode(tok, prompt, 5, true, head, sizeof head, &hl) == BRISK_OK);
    CHECK(fl == hl + c.len && !memcmp(full + hl, c.text, c.len));
    CHECK(!strncmp(c.text, ", there was", 11)); /* llama2.c's greedy continuation */

    /* Continue the same sequence: the chat path. Positions keep counting. */
    collected c2 = {0};
    gp.max_tokens = 5;
    CHECK(brisk_generate(ctx, 0, tok, &c.ids[19], 1, &gp, collect, &c2, &st) == BRISK_OK);
    CHECK(brisk_context_seq_len(ctx, 0) == 24 + 1 + 4);

    /* A greedy run that reaches an extra EOS id itself: it stops there, and the step launched
     * for the stop token before it was seen (pipelined decoding) leaves nothing behind. */
    int j = 0;
    while (c.ids[j] != c.ids[8]) j++;
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    collected c8 = {0};
    gp = brisk_generate_default_params();
    gp.max_tokens = 20;
    gp.extra_eos = &c.ids[8];
    gp.n_extra_eos = 1;
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c8, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_EOS && st.n_generated == j && c8.n == j);
    CHECK(brisk_context_seq_len(ctx, 0) == 5 + j);
    CHECK(!memcmp(c8.ids, c.ids, (size_t)j * sizeof(int32_t)));

    /* EOS forced by a logit bias: nothing emitted, stop EOS. */
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    int32_t bias_id[1] = {2};
    float bias_val[1] = {100.0f};
    gp = brisk_generate_default_params();
    gp.sampler.bias_ids = bias_id;
    gp.sampler.bias_values = bias_val;
    gp.sampler.n_bias = 1;
    collected c3 = {0};
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c3, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_EOS && st.n_generated == 0 && c3.len == 0);

    /* An extra EOS id (token 270) stops too. */
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    bias_id[0] = 270;
    int32_t extra[1] = {270};
    gp.extra_eos = extra;
    gp.n_extra_eos = 1;
    collected c4 = {0};
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c4, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_EOS && c4.n == 0);

    /* A stop right after a UTF-8 lead byte (byte-fallback token <0xE2> = id 0xE2 + 3): the text
     * stays valid UTF-8 (the cut character shows as U+FFFD, as decode does). */
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    gp = brisk_generate_default_params();
    bias_id[0] = 0xE2 + 3;
    gp.sampler.bias_ids = bias_id;
    gp.sampler.bias_values = bias_val;
    gp.sampler.n_bias = 1;
    gp.max_tokens = 1;
    collected c5 = {0};
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c5, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_LENGTH && c5.n == 1 && valid_utf8(c5.text, c5.len));
    CHECK(c5.len == 3 && !memcmp(c5.text, "\xEF\xBF\xBD", 3));

    /* Cancellation from the callback. */
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    gp = brisk_generate_default_params();
    collected c6 = {.cancel_after = 3};
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c6, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_CANCELLED && st.n_generated == 3);

    /* The context fills up: stop CONTEXT, no error. */
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    gp.max_tokens = -1;
    collected c7 = {0};
    CHECK(brisk_generate(ctx, 0, tok, prompt, 5, &gp, collect, &c7, &st) == BRISK_OK);
    CHECK(st.stop == BRISK_STOP_CONTEXT && brisk_context_seq_len(ctx, 0) == 64);

    /* Bad arguments. */
    CHECK(brisk_generate(ctx, 0, tok, prompt, 0, &gp, collect, &c7, &st) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_context_seq_truncate(ctx, 0, 0) == BRISK_OK);
    int32_t bad = 9999;
    CHECK(brisk_generate(ctx, 0, tok, &bad, 1, &gp, collect, &c7, &st) == BRISK_ERR_INVALID_ARG);

    /* One call for every sampler. */
    brisk_model_info info;
    brisk_model_get_info(m, &info);
    const int n_vocab = info.n_vocab;
    brisk_sampler_params sp = brisk_sampler_default_params();
    eval_sample_matches(ctx, &sp, n_vocab, "greedy");
    sp.temperature = 0.9f, sp.top_k = 40, sp.top_p = 0.9f, sp.min_p = 0.05f, sp.seed = 11;
    eval_sample_matches(ctx, &sp, n_vocab, "temperature, top-k, top-p, min-p");
    sp.top_k = 0, sp.top_p = 1.0f, sp.min_p = 0.0f, sp.temperature = 1.3f;
    eval_sample_matches(ctx, &sp, n_vocab, "temperature only");
    sp.repetition_penalty = 1.3f;
    eval_sample_matches(ctx, &sp, n_vocab, "with a penalty (host)");

    brisk_context_destroy(ctx);
    brisk_tokenizer_free(tok);
    brisk_model_free(m);
    CHECK_DONE();
}
