/* generate.c: the generation loop: prefill, sample, stream text through the detokenizer, stop on
 * EOS / length / context / cancellation. Built only on the public context, sampler and tokenizer.
 */
#include "brisk.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

brisk_generate_params brisk_generate_default_params(void) {
    brisk_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 100;
    p.sampler = brisk_sampler_default_params();
    p.skip_special = true;
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define MAX_STOP 64

typedef struct gen_state {
    int32_t stop_ids[MAX_STOP];
    int n_stop;
    brisk_detok *detok;
    char *text; /* detokenizer output buffer, grown on demand (rarely: pieces are short) */
    size_t text_cap;
} gen_state;

static void add_stop(gen_state *g, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < g->n_stop; i++)
        if (g->stop_ids[i] == id) return;
    if (g->n_stop < MAX_STOP) g->stop_ids[g->n_stop++] = id;
}

static bool is_stop(const gen_state *g, int32_t id) {
    for (int i = 0; i < g->n_stop; i++)
        if (g->stop_ids[i] == id) return true;
    return false;
}

/* Runs push (or flush when id < 0), growing the buffer when the text does not fit. */
static brisk_status detok_text(gen_state *g, int32_t id, size_t *len) {
    for (;;) {
        brisk_status st = id >= 0 ? brisk_detok_push(g->detok, id, g->text, g->text_cap, len)
                                  : brisk_detok_flush(g->detok, g->text, g->text_cap, len);
        if (st != BRISK_ERR_BUFFER_TOO_SMALL) return st;
        char *nb = realloc(g->text, *len + 1);
        if (!nb) return brisk_errorf(BRISK_ERR_OOM, "brisk_generate: out of memory");
        g->text = nb;
        g->text_cap = *len + 1;
    }
}

brisk_status brisk_generate(brisk_context *ctx, int seq, const brisk_tokenizer *tok,
                            const int32_t *tokens, int n_tokens,
                            const brisk_generate_params *params, brisk_token_callback cb,
                            void *user, brisk_generate_stats *stats) {
    brisk_generate_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!ctx || !tok || (!tokens && n_tokens > 0) || n_tokens <= 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_generate: a context, a tokenizer and at least one prompt token "
                            "are required");
    brisk_generate_params p = params ? *params : brisk_generate_default_params();
    brisk_model_info info;
    brisk_model_get_info(brisk_context_model(ctx), &info);
    gen_state g = {.n_stop = 0};
    if (!p.ignore_eos) {
        for (int i = 0; i < info.n_eos; i++) add_stop(&g, info.eos_ids[i]);
        add_stop(&g, brisk_tokenizer_eos_id(tok));
        for (int i = 0; i < p.n_extra_eos; i++) add_stop(&g, p.extra_eos[i]);
    }
    brisk_sampler *sampler = NULL;
    g.text_cap = 256;
    g.text = malloc(g.text_cap);
    brisk_status st =
        !g.text ? brisk_errorf(BRISK_ERR_OOM, "brisk_generate: out of memory") : BRISK_OK;
    if (st == BRISK_OK) st = brisk_sampler_create(&p.sampler, info.n_vocab, &sampler);
    if (st == BRISK_OK) st = brisk_detok_create(tok, p.skip_special, &g.detok);
    /* Prime the detokenizer and the penalties with the prompt: generated text continues it. */
    size_t len = 0;
    for (int i = 0; st == BRISK_OK && i < n_tokens; i++) {
        brisk_sampler_accept(sampler, tokens[i]);
        if (tokens[i] >= 0 && tokens[i] < brisk_tokenizer_n_vocab(tok))
            st = detok_text(&g, tokens[i], &len);
    }
    /* Each eval returns the next token, sampled where the logits are when the backend can (on a
     * GPU, greedy or temperature/top-k/top-p/min-p: only the token crosses to the host). */
    int32_t next = -1;
    float next_lp = 0;
    double t0 = now_s();
    if (st == BRISK_OK) {
        stats->n_prompt = n_tokens;
        st = brisk_context_eval_sample(ctx, seq, tokens, n_tokens, sampler, &next, &next_lp);
    }
    double t1 = now_s();
    stats->prompt_seconds = t1 - t0;
    /* Pipelined when the sampler allows (no bias or penalties, which need each token first): the
     * step for a token is launched before the host has that token, fed from the step before on
     * the device, so the host's work here runs while the card computes. `ahead`: the step for
     * `next` is launched. A step launched for a token that then stops is dropped at the end. */
    const bool pipe = st == BRISK_OK && brisk_sampler_can_pipeline(sampler);
    bool ahead = false;
    if (pipe && (p.max_tokens < 0 || 1 < p.max_tokens) &&
        brisk_context_seq_len(ctx, seq) < brisk_context_n_ctx(ctx)) {
        st = brisk_context_decode_launch(ctx, seq, &next, sampler);
        ahead = st == BRISK_OK;
    }
    int32_t token = -1;
    for (int step = 0; st == BRISK_OK; step++) {
        if (p.max_tokens >= 0 && stats->n_generated >= p.max_tokens) {
            stats->stop = BRISK_STOP_LENGTH;
            break;
        }
        const float logprob = next_lp;
        token = next;
        if (is_stop(&g, token)) {
            stats->stop = BRISK_STOP_EOS;
            break;
        }
        brisk_sampler_accept(sampler, token);
        if ((st = detok_text(&g, token, &len)) != BRISK_OK) break;
        stats->n_generated++;
        if (cb && !cb(user, g.text, len, token, logprob)) {
            stats->stop = BRISK_STOP_CANCELLED;
            break;
        }
        if (p.max_tokens >= 0 && stats->n_generated >= p.max_tokens) {
            stats->stop = BRISK_STOP_LENGTH;
            break;
        }
        if (brisk_context_seq_len(ctx, seq) - ahead >= brisk_context_n_ctx(ctx)) {
            stats->stop = BRISK_STOP_CONTEXT;
            break;
        }
        if (!pipe) {
            st = brisk_context_eval_sample(ctx, seq, &token, 1, sampler, &next, &next_lp);
            continue;
        }
        if (!ahead && (st = brisk_context_decode_launch(ctx, seq, &token, sampler)) != BRISK_OK)
            break;
        /* the step after it, for a token not known yet, when it can be needed */
        ahead = (p.max_tokens < 0 || stats->n_generated + 1 < p.max_tokens) &&
                brisk_context_seq_len(ctx, seq) < brisk_context_n_ctx(ctx);
        if (ahead && (st = brisk_context_decode_launch(ctx, seq, NULL, sampler)) != BRISK_OK) break;
        st = brisk_context_decode_collect(ctx, &next, &next_lp);
    }
    brisk_context_decode_drop(ctx); /* a step launched for a token that stopped */
    stats->gen_seconds = now_s() - t1;
    /* Whatever the detokenizer still holds (a character cut by the stop shows as U+FFFD, as
     * decode does) goes out with a final callback carrying no token. */
    if (g.detok && (stats->stop == BRISK_STOP_EOS || stats->stop == BRISK_STOP_LENGTH ||
                    stats->stop == BRISK_STOP_CONTEXT)) {
        brisk_status fs = detok_text(&g, -1, &len);
        if (fs == BRISK_OK && len > 0 && cb) cb(user, g.text, len, -1, 0.0f);
        if (st == BRISK_OK) st = fs;
    }
    brisk_detok_destroy(g.detok);
    brisk_sampler_destroy(sampler);
    free(g.text);
    return st;
}
