/* context.c: brisk_context: the KV block pool and its per-layer storage, per-sequence block
 * tables, activation scratch, and brisk_context_eval (chunked prefill / decode of one sequence). */
#include "engine/kv_pool.h"
#include "engine/sampler.h"
#include "model/model.h"
#include "util/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A launched decode step not yet collected (brisk_context_decode_launch). Without pipelined
 * steps in the backend it ran inside the launch: its result (or error) waits here. */
#define MAX_LAUNCHED 2
typedef struct launched {
    int seq, pos; /* the token it appended sits at pos */
    bool queued;  /* on the backend (end_step_launch), else run inside the launch */
    int32_t id;
    float lp;
    brisk_status st;
    char err[256];
} launched;

typedef struct seq_state {
    int32_t *blocks; /* [max_blocks] block ids; the first ceil(len/block_size) are valid */
    int len;         /* tokens held */
} seq_state;

struct brisk_context {
    brisk_model *model;
    brisk_context_params p;
    brisk_backend *be;
    brisk_kv_pool pool;
    int kv_dim;
    void **kcache, **vcache; /* [n_layer] -> [n_blocks*block_size, kv_dim] in backend memory */
    seq_state *seqs;         /* [n_seq_max] */
    int max_blocks;          /* per sequence */
    brisk_fwd_scratch scratch;
    int32_t *pos, *slot, *seq_ids, *out_rows; /* [n_batch] step arrays */
    const int32_t **tables;                   /* [n_seq_max] */
    float *greedy_logits; /* [scratch.logit_rows, n_vocab] host rows when the backend cannot
                             argmax or sample, or the sampler's chain cannot run on it */
    /* brisk_context_decode_batch_sample's rows: chains, uniforms and unasked-for logprobs
     * [n_batch]; every row's logits [min(n_batch, n_seq_max), n_vocab] when a chain runs on the
     * host (lazily: a step has one row per sequence) */
    brisk_sample_params *b_sp;
    double *b_u;
    float *b_lp, *b_logits;
    launched fl[MAX_LAUNCHED]; /* uncollected launches, oldest first */
    int n_fl;
};

static void drop_launched(brisk_context *ctx, int k0);

/* While launched steps are uncollected the context takes nothing else (a step outside the
 * pipeline would end, and a truncation free, what they still compute on). */
static brisk_status idle(const brisk_context *ctx, const char *fn) {
    if (ctx && ctx->n_fl > 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: %d launched decode step(s) are not collected (collect or drop "
                            "them first)",
                            fn, ctx->n_fl);
    return BRISK_OK;
}

brisk_context_params brisk_context_default_params(void) {
    brisk_context_params p = {
        .n_ctx = 0, .n_seq_max = 1, .n_batch = 0, .kv_block = 16, .n_kv_blocks = 0};
    return p;
}

void brisk_context_destroy(brisk_context *ctx) {
    if (!ctx) return;
    brisk_backend *be = ctx->be;
    if (be) drop_launched(ctx, 0);
    for (int l = 0; be && ctx->kcache && l < ctx->model->cfg.n_layer; l++) {
        if (ctx->kcache[l]) be->ops->free(be, ctx->kcache[l]);
        if (ctx->vcache[l]) be->ops->free(be, ctx->vcache[l]);
    }
    free(ctx->kcache);
    free(ctx->vcache);
    for (int s = 0; ctx->seqs && s < ctx->p.n_seq_max; s++) free(ctx->seqs[s].blocks);
    free(ctx->seqs);
    brisk_kv_pool_free(&ctx->pool);
    if (be) brisk_fwd_scratch_free(be, &ctx->scratch);
    if (be) be->ops->destroy(be);
    free(ctx->pos);
    free(ctx->slot);
    free(ctx->seq_ids);
    free(ctx->out_rows);
    free(ctx->greedy_logits);
    free(ctx->b_sp), free(ctx->b_u), free(ctx->b_lp), free(ctx->b_logits);
    free(ctx->tables);
    free(ctx);
}

brisk_status brisk_context_create(brisk_model *model, const brisk_context_params *params,
                                  brisk_context **out) {
    if (!out || !model)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_create: model and out must be set");
    *out = NULL;
    brisk_context_params p = params ? *params : brisk_context_default_params();
    const brisk_config *c = &model->cfg;
    if (p.n_ctx <= 0) p.n_ctx = c->max_position < 4096 ? c->max_position : 4096;
    if (p.n_seq_max <= 0) p.n_seq_max = 1;
    if (p.kv_block <= 0) p.kv_block = 16;
    if (p.n_batch <= 0 || p.n_batch > p.n_ctx * p.n_seq_max)
        p.n_batch = p.n_ctx < 512 ? p.n_ctx : 512;
    if (p.n_ctx > (1 << 24) || p.n_seq_max > (1 << 16) || p.kv_block > (1 << 16))
        return brisk_errorf(
            BRISK_ERR_INVALID_ARG,
            "brisk_context_create: n_ctx %d, n_seq_max %d or kv_block %d is too large", p.n_ctx,
            p.n_seq_max, p.kv_block);
    const int max_blocks = (p.n_ctx + p.kv_block - 1) / p.kv_block;
    if (p.n_kv_blocks <= 0) p.n_kv_blocks = max_blocks * p.n_seq_max;

    brisk_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return brisk_errorf(BRISK_ERR_OOM, "brisk_context_create: out of memory");
    ctx->model = model;
    ctx->p = p;
    ctx->max_blocks = max_blocks;
    ctx->kv_dim = c->n_head_kv * c->head_dim;
    brisk_status st = BRISK_OK;
    int64_t max_cols = c->n_embd > c->n_ff ? c->n_embd : c->n_ff;
    if (c->n_head * c->head_dim > max_cols) max_cols = (int64_t)c->n_head * c->head_dim;
    const brisk_backend_init init = {
        .tensors = model->w.all,
        .n_tensors = model->w.n_all,
        .small = model->w.small,
        .n_small = model->w.n_small,
        .max_tokens = p.n_batch,
        .max_ctx = p.n_ctx,
        .max_cols = max_cols,
        .n_threads = model->n_threads,
    };
    st = brisk_backend_create(model->backend, &init, &ctx->be);
    if (st == BRISK_OK) st = brisk_kv_pool_init(&ctx->pool, p.n_kv_blocks, p.kv_block);
    if (st == BRISK_OK)
        st = brisk_fwd_scratch_create(ctx->be, c, p.n_batch, p.n_seq_max, &ctx->scratch);
    if (st != BRISK_OK) {
        brisk_context_destroy(ctx);
        return st;
    }
    const size_t slots = (size_t)p.n_kv_blocks * p.kv_block;
    ctx->kcache = calloc((size_t)c->n_layer, sizeof *ctx->kcache);
    ctx->vcache = calloc((size_t)c->n_layer, sizeof *ctx->vcache);
    ctx->seqs = calloc((size_t)p.n_seq_max, sizeof *ctx->seqs);
    ctx->tables = calloc((size_t)p.n_seq_max, sizeof *ctx->tables);
    ctx->pos = malloc((size_t)p.n_batch * sizeof *ctx->pos);
    ctx->slot = malloc((size_t)p.n_batch * sizeof *ctx->slot);
    ctx->seq_ids = malloc((size_t)p.n_batch * sizeof *ctx->seq_ids);
    ctx->out_rows = malloc((size_t)p.n_batch * sizeof *ctx->out_rows);
    ctx->b_sp = malloc((size_t)p.n_batch * sizeof *ctx->b_sp);
    ctx->b_u = malloc((size_t)p.n_batch * sizeof *ctx->b_u);
    ctx->b_lp = malloc((size_t)p.n_batch * sizeof *ctx->b_lp);
    int ok = ctx->kcache && ctx->vcache && ctx->seqs && ctx->tables && ctx->pos && ctx->slot &&
             ctx->seq_ids && ctx->out_rows && ctx->b_sp && ctx->b_u && ctx->b_lp;
    for (int l = 0; ok && l < c->n_layer; l++) {
        const size_t bytes = slots * (size_t)ctx->kv_dim * ctx->be->ops->kv_elem_size;
        ctx->kcache[l] = ctx->be->ops->alloc(ctx->be, bytes);
        ctx->vcache[l] = ctx->be->ops->alloc(ctx->be, bytes);
        ok = ctx->kcache[l] && ctx->vcache[l];
    }
    for (int s = 0; ok && s < p.n_seq_max; s++) {
        ctx->seqs[s].blocks = malloc((size_t)max_blocks * sizeof(int32_t));
        ctx->tables[s] = ctx->seqs[s].blocks;
        ok = ctx->seqs[s].blocks != NULL;
    }
    if (!ok) {
        brisk_context_destroy(ctx);
        return brisk_errorf(BRISK_ERR_OOM,
                            "brisk_context_create: out of memory for a KV cache of %d blocks x %d "
                            "tokens",
                            p.n_kv_blocks, p.kv_block);
    }
    *out = ctx;
    return BRISK_OK;
}

int brisk_context_seq_len(const brisk_context *ctx, int seq) {
    return ctx && seq >= 0 && seq < ctx->p.n_seq_max ? ctx->seqs[seq].len : 0;
}

static int blocks_for(const brisk_context *ctx, int len) {
    return (len + ctx->p.kv_block - 1) / ctx->p.kv_block;
}

static void truncate_to(brisk_context *ctx, seq_state *s, int keep) {
    for (int b = blocks_for(ctx, keep); b < blocks_for(ctx, s->len); b++)
        brisk_kv_unref(&ctx->pool, s->blocks[b]);
    s->len = keep;
}

brisk_status brisk_context_seq_truncate(brisk_context *ctx, int seq, int keep) {
    if (!ctx || seq < 0 || seq >= ctx->p.n_seq_max)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_context_seq_truncate: no sequence %d",
                            seq);
    brisk_status st = idle(ctx, "brisk_context_seq_truncate");
    if (st != BRISK_OK) return st;
    seq_state *s = &ctx->seqs[seq];
    if (keep < 0 || keep > s->len)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_seq_truncate: keep %d is outside [0, %d]", keep, s->len);
    truncate_to(ctx, s, keep);
    return BRISK_OK;
}

/* launch: a one-token step queued on the backend (end_step_launch); tokens NULL then means the
 * id the previous step chose (begin_step). */
static brisk_status eval(brisk_context *ctx, int seq, const int32_t *tokens, int n_tokens,
                         float *logits, bool last_only, int32_t *greedy_id, float *greedy_lp,
                         const brisk_sample_params *sample, const double *sample_u, bool launch) {
    if (!ctx || seq < 0 || seq >= ctx->p.n_seq_max)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_context_eval: no sequence %d", seq);
    if (n_tokens <= 0 || (!tokens && !launch))
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_context_eval: no tokens given");
    if (!launch) {
        brisk_status st = idle(ctx, "brisk_context_eval");
        if (st != BRISK_OK) return st;
    }
    const brisk_config *c = &ctx->model->cfg;
    seq_state *s = &ctx->seqs[seq];
    for (int i = 0; tokens && i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab)
            return brisk_errorf(
                BRISK_ERR_INVALID_ARG,
                "brisk_context_eval: token %d at index %d is outside the vocabulary "
                "[0, %d)",
                tokens[i], i, c->n_vocab);
    if (n_tokens > ctx->p.n_ctx - s->len)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_eval: %d tokens do not fit: sequence %d holds %d of %d "
                            "positions",
                            n_tokens, seq, s->len, ctx->p.n_ctx);
    /* Reserve every block the new tokens need up front, so a full pool fails cleanly. */
    const int have = blocks_for(ctx, s->len), need = blocks_for(ctx, s->len + n_tokens);
    for (int b = have; b < need; b++) {
        int32_t id = brisk_kv_alloc(&ctx->pool);
        if (id < 0) {
            for (int k = have; k < b; k++) brisk_kv_unref(&ctx->pool, s->blocks[k]);
            return brisk_errorf(BRISK_ERR_KV_FULL,
                                "brisk_context_eval: the KV cache has no free block (%d blocks of "
                                "%d tokens in use)",
                                ctx->pool.n_blocks, ctx->pool.block_size);
        }
        s->blocks[b] = id;
    }
    const int bs = ctx->p.kv_block, V = c->n_vocab;
    for (int start = 0; start < n_tokens; start += ctx->p.n_batch) {
        const int T = n_tokens - start < ctx->p.n_batch ? n_tokens - start : ctx->p.n_batch;
        for (int i = 0; i < T; i++) {
            const int p = s->len + start + i;
            ctx->pos[i] = p;
            ctx->seq_ids[i] = seq;
            ctx->slot[i] = s->blocks[p / bs] * bs + p % bs;
        }
        int n_out = 0;
        float *dst = NULL;
        if (logits && !last_only) {
            for (int i = 0; i < T; i++) ctx->out_rows[n_out++] = i;
            dst = logits + (size_t)start * V;
        } else if ((logits || greedy_id) && start + T == n_tokens) {
            ctx->out_rows[n_out++] = T - 1;
            dst = logits ? logits : ctx->greedy_logits;
        }
        brisk_fwd_batch fb = {
            .tokens = tokens ? tokens + start : NULL,
            .attn = {.n_tokens = T,
                     .pos = ctx->pos,
                     .seq = ctx->seq_ids,
                     .slot = ctx->slot,
                     .block_tables = ctx->tables,
                     .block_size = bs,
                     .sliding_window = c->sliding_window},
            .n_out = n_out,
            .out_rows = ctx->out_rows,
            .greedy_ids = n_out ? greedy_id : NULL,
            .greedy_lp = n_out ? greedy_lp : NULL,
            .sample = sample,
            .sample_u = sample_u,
            .launch = launch,
        };
        brisk_status st = brisk_forward(ctx->model, ctx->be, &ctx->scratch, ctx->kcache,
                                        ctx->vcache, &fb, ctx->max_blocks, ctx->p.n_seq_max, dst);
        if (st != BRISK_OK) {
            /* Drop what this call added; the blocks already written are simply reused. */
            for (int b = have; b < need; b++) brisk_kv_unref(&ctx->pool, s->blocks[b]);
            return st;
        }
    }
    s->len += n_tokens;
    return BRISK_OK;
}

brisk_status brisk_context_eval(brisk_context *ctx, int seq, const int32_t *tokens, int n_tokens,
                                float *logits, bool last_only) {
    return eval(ctx, seq, tokens, n_tokens, logits, last_only, NULL, NULL, NULL, NULL, false);
}

/* The host buffer for a last row of logits that stays on the host (greedy without a device
 * argmax, or a sampler chain the backend cannot run). */
static brisk_status host_rows(brisk_context *ctx, const char *fn) {
    if (ctx->greedy_logits) return BRISK_OK;
    ctx->greedy_logits =
        malloc(sizeof(float) * (size_t)ctx->scratch.logit_rows * (size_t)ctx->model->cfg.n_vocab);
    return ctx->greedy_logits ? BRISK_OK : brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", fn);
}

brisk_status brisk_context_eval_greedy(brisk_context *ctx, int seq, const int32_t *tokens,
                                       int n_tokens, int32_t *next, float *logprob) {
    if (!next)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_context_eval_greedy: next is NULL");
    if (ctx && !ctx->be->ops->end_step_argmax) {
        brisk_status st = host_rows(ctx, "brisk_context_eval_greedy");
        if (st != BRISK_OK) return st;
    }
    float lp = 0;
    brisk_status st = eval(ctx, seq, tokens, n_tokens, NULL, true, next, &lp, NULL, NULL, false);
    if (st == BRISK_OK && logprob) *logprob = lp;
    return st;
}

brisk_status brisk_context_eval_sample(brisk_context *ctx, int seq, const int32_t *tokens,
                                       int n_tokens, brisk_sampler *s, int32_t *next,
                                       float *logprob) {
    if (!next || !s)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_eval_sample: next and the sampler must be set");
    if (ctx && brisk_sampler_n_vocab(s) != ctx->model->cfg.n_vocab)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_eval_sample: the sampler is for %d tokens, the model "
                            "has %d",
                            brisk_sampler_n_vocab(s), ctx->model->cfg.n_vocab);
    if (brisk_sampler_is_greedy(s))
        return brisk_context_eval_greedy(ctx, seq, tokens, n_tokens, next, logprob);
    brisk_sample_params sp;
    float lp = 0;
    brisk_status st;
    if (ctx && ctx->be->ops->end_step_sample && brisk_sampler_device_params(s, &sp)) {
        /* drawn where the logits are; the generator moves only when a token came back */
        const double u = brisk_sampler_peek_uniform(s);
        st = eval(ctx, seq, tokens, n_tokens, NULL, true, next, &lp, &sp, &u, false);
        if (st != BRISK_OK) return st;
        brisk_sampler_skip_uniform(s);
    } else {
        if (!ctx)
            return eval(ctx, seq, tokens, n_tokens, NULL, true, NULL, NULL, NULL, NULL, false);
        if ((st = host_rows(ctx, "brisk_context_eval_sample")) != BRISK_OK) return st;
        st = eval(ctx, seq, tokens, n_tokens, ctx->greedy_logits, true, NULL, NULL, NULL, NULL,
                  false);
        if (st != BRISK_OK) return st;
        st = brisk_sampler_sample(s, ctx->greedy_logits, next, &lp);
        if (st != BRISK_OK) { /* the model's logits, not the caller's input, were bad */
            char msg[256];
            snprintf(msg, sizeof msg, "%s", brisk_last_error());
            return brisk_errorf(BRISK_ERR_BACKEND, "brisk_context_eval_sample: %s", msg);
        }
    }
    if (logprob) *logprob = lp;
    return BRISK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Pipelined decoding: a launch appends its token and queues the step; the backend's
 * end_step_launch/step_collect pair keeps it on the device, otherwise it runs in the launch.
 * ------------------------------------------------------------------------------------------- */

/* Can the backend queue a step choosing with this sampler? */
static bool queues(const brisk_context *ctx, bool greedy) {
    const brisk_backend_ops *op = ctx->be->ops;
    return op->end_step_launch && op->step_collect && (greedy || op->end_step_sample);
}

/* Waits for the uncollected launches from index k0 on (their results go unread) and ends the
 * sequence before the first launch's token. */
static void drop_launched(brisk_context *ctx, int k0) {
    if (ctx->n_fl == 0) return;
    for (int k = k0; k < ctx->n_fl; k++) {
        int32_t id;
        float lp;
        if (ctx->fl[k].queued) (void)ctx->be->ops->step_collect(ctx->be, 1, &id, &lp);
    }
    seq_state *s = &ctx->seqs[ctx->fl[0].seq];
    if (ctx->fl[0].pos < s->len) truncate_to(ctx, s, ctx->fl[0].pos);
    ctx->n_fl = 0;
}

brisk_status brisk_context_decode_launch(brisk_context *ctx, int seq, const int32_t *token,
                                         brisk_sampler *smp) {
    const char *fn = "brisk_context_decode_launch";
    if (!ctx || !smp)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: the context and the sampler must be set",
                            fn);
    if (seq < 0 || seq >= ctx->p.n_seq_max)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: no sequence %d", fn, seq);
    if (brisk_sampler_n_vocab(smp) != ctx->model->cfg.n_vocab)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: the sampler is for %d tokens, the model has %d", fn,
                            brisk_sampler_n_vocab(smp), ctx->model->cfg.n_vocab);
    if (ctx->n_fl == MAX_LAUNCHED)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: %d launched steps are not collected (the most there can be)", fn,
                            MAX_LAUNCHED);
    if (ctx->n_fl > 0 && ctx->fl[0].seq != seq)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: launched steps of sequence %d are not collected (one sequence "
                            "at a time)",
                            fn, ctx->fl[0].seq);
    if (!token && ctx->n_fl == 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: no token given and no uncollected launch to take it from", fn);
    const bool greedy = brisk_sampler_is_greedy(smp);
    brisk_sample_params sp;
    if (!greedy && !brisk_sampler_device_params(smp, &sp))
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: the sampler has a logit bias or penalties, which need each token "
                            "before the next step starts (use brisk_context_eval_sample)",
                            fn);
    const launched *P = ctx->n_fl ? &ctx->fl[ctx->n_fl - 1] : NULL;
    const bool queue = queues(ctx, greedy);
    if (!token && P->queued && !queue)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: this sampler's chain runs on the host, which does not have the "
                            "token of the launch before (collect it first)",
                            fn);
    if (!token && !P->queued && P->st == BRISK_OK) token = &P->id; /* known here */
    launched *L = &ctx->fl[ctx->n_fl];
    memset(L, 0, sizeof *L);
    L->seq = seq, L->pos = ctx->seqs[seq].len, L->queued = queue;
    if (queue) {
        const double u = greedy ? 0.0 : brisk_sampler_peek_uniform(smp);
        int32_t id; /* written by the collect, not here */
        float lp;
        brisk_status st = eval(ctx, seq, token, 1, NULL, true, &id, &lp, greedy ? NULL : &sp,
                               greedy ? NULL : &u, true);
        if (st != BRISK_OK) return st; /* nothing queued, the sequence unchanged */
        if (!greedy) brisk_sampler_skip_uniform(smp);
        ctx->n_fl++;
        return BRISK_OK;
    }
    /* No pipelined steps: the step runs now and its result waits for the collect. */
    if (!token) { /* P failed inside its launch: this one's input never existed */
        L->st = P->st;
        snprintf(L->err, sizeof L->err, "%s", P->err);
    } else {
        const int32_t t = *token;
        const int n_fl = ctx->n_fl;
        ctx->n_fl = 0; /* nothing of the earlier launches is still computing */
        brisk_status st = brisk_context_eval_sample(ctx, seq, &t, 1, smp, &L->id, &L->lp);
        ctx->n_fl = n_fl;
        if (st == BRISK_ERR_BACKEND) { /* reported by the collect, as a pipelined step's is */
            L->st = st;
            snprintf(L->err, sizeof L->err, "%s", brisk_last_error());
            if (!greedy) brisk_sampler_skip_uniform(smp);
        } else if (st != BRISK_OK) {
            return st;
        }
    }
    ctx->n_fl++;
    return BRISK_OK;
}

brisk_status brisk_context_decode_collect(brisk_context *ctx, int32_t *next, float *logprob) {
    if (!ctx || !next)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_decode_collect: the context and next must be set");
    if (ctx->n_fl == 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_decode_collect: no launched decode step to collect");
    launched *L = &ctx->fl[0];
    brisk_status st = L->st;
    char err[256];
    if (L->queued) st = ctx->be->ops->step_collect(ctx->be, 1, &L->id, &L->lp);
    if (st != BRISK_OK) {
        snprintf(err, sizeof err, "%s", L->queued ? brisk_last_error() : L->err);
        drop_launched(ctx, 1); /* the later ones started from this one's token */
        return brisk_errorf(st, "brisk_context_decode_collect: %s", err);
    }
    *next = L->id;
    if (logprob) *logprob = L->lp;
    memmove(ctx->fl, ctx->fl + 1, (size_t)(ctx->n_fl - 1) * sizeof *ctx->fl);
    ctx->n_fl--;
    return BRISK_OK;
}

void brisk_context_decode_drop(brisk_context *ctx) {
    if (ctx) drop_launched(ctx, 0);
}

/* The start of a step of several sequences, one token each (brisk_context_decode_batch and
 * _sample): checks the arguments, reserves the blocks the tokens need (all or none) and fills the
 * step arrays and *fb (no output rows yet). */
static brisk_status batch_begin(brisk_context *ctx, const char *fn, const int *seqs,
                                const int32_t *tokens, int n, brisk_fwd_batch *fb) {
    if (!ctx || !seqs || !tokens || n <= 0 || n > ctx->p.n_batch)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: need 1..%d sequences with a token each", fn,
                            ctx ? ctx->p.n_batch : 0);
    brisk_status ist = idle(ctx, fn);
    if (ist != BRISK_OK) return ist;
    const brisk_config *c = &ctx->model->cfg;
    for (int i = 0; i < n; i++) {
        if (seqs[i] < 0 || seqs[i] >= ctx->p.n_seq_max)
            return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: no sequence %d", fn, seqs[i]);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: sequence %d appears twice", fn,
                                    seqs[i]);
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab)
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "%s: token %d at index %d is outside the vocabulary [0, %d)", fn,
                                tokens[i], i, c->n_vocab);
        if (ctx->seqs[seqs[i]].len >= ctx->p.n_ctx)
            return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: sequence %d is full (%d positions)", fn,
                                seqs[i], ctx->p.n_ctx);
    }
    /* A sequence needs a new block exactly when its length is a multiple of the block size. */
    const int bs = ctx->p.kv_block;
    int got = 0;
    for (; got < n; got++) {
        seq_state *s = &ctx->seqs[seqs[got]];
        if (s->len % bs) continue;
        int32_t id = brisk_kv_alloc(&ctx->pool);
        if (id < 0) break;
        s->blocks[s->len / bs] = id;
    }
    if (got < n) {
        for (int k = 0; k < got; k++) {
            seq_state *s = &ctx->seqs[seqs[k]];
            if (s->len % bs == 0) brisk_kv_unref(&ctx->pool, s->blocks[s->len / bs]);
        }
        return brisk_errorf(BRISK_ERR_KV_FULL,
                            "%s: the KV cache has no free block (%d blocks of %d tokens in use)",
                            fn, ctx->pool.n_blocks, bs);
    }
    for (int i = 0; i < n; i++) {
        const seq_state *s = &ctx->seqs[seqs[i]];
        ctx->pos[i] = s->len;
        ctx->seq_ids[i] = seqs[i];
        ctx->slot[i] = s->blocks[s->len / bs] * bs + s->len % bs;
        ctx->out_rows[i] = i;
    }
    *fb = (brisk_fwd_batch){
        .tokens = tokens,
        .attn = {.n_tokens = n,
                 .pos = ctx->pos,
                 .seq = ctx->seq_ids,
                 .slot = ctx->slot,
                 .block_tables = ctx->tables,
                 .block_size = bs,
                 .sliding_window = c->sliding_window},
        .out_rows = ctx->out_rows,
    };
    return BRISK_OK;
}

/* The end of a batch_begin step: every sequence holds its token (ok), or none does and the
 * blocks reserved for them go back. */
static void batch_end(brisk_context *ctx, const int *seqs, int n, bool ok) {
    const int bs = ctx->p.kv_block;
    for (int i = 0; i < n; i++) {
        seq_state *s = &ctx->seqs[seqs[i]];
        if (ok)
            s->len++;
        else if (s->len % bs == 0)
            brisk_kv_unref(&ctx->pool, s->blocks[s->len / bs]);
    }
}

static brisk_status batch_forward(brisk_context *ctx, const brisk_fwd_batch *fb, float *logits) {
    return brisk_forward(ctx->model, ctx->be, &ctx->scratch, ctx->kcache, ctx->vcache, fb,
                         ctx->max_blocks, ctx->p.n_seq_max, logits);
}

brisk_status brisk_context_decode_batch(brisk_context *ctx, const int *seqs, const int32_t *tokens,
                                        int n, float *logits) {
    brisk_fwd_batch fb;
    brisk_status st = batch_begin(ctx, "brisk_context_decode_batch", seqs, tokens, n, &fb);
    if (st != BRISK_OK) return st;
    fb.n_out = logits ? n : 0;
    st = batch_forward(ctx, &fb, logits);
    batch_end(ctx, seqs, n, st == BRISK_OK);
    return st;
}

/* A greedy row inside a step whose other rows draw: the chain that keeps only the best id (ties:
 * the lower one) picks the argmax whatever the uniform, and reports the same log-probability. */
static const brisk_sample_params argmax_chain = {
    .inv_temp = 1.0f, .top_k = 1, .top_p = 1.0f, .log_min_p = -INFINITY};

brisk_status brisk_context_decode_batch_sample(brisk_context *ctx, const int *seqs,
                                               const int32_t *tokens, int n,
                                               brisk_sampler *const *samplers, int32_t *next,
                                               float *logprob) {
    const char *fn = "brisk_context_decode_batch_sample";
    if (!ctx || !samplers || !next)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "%s: the context, the samplers and next must be set", fn);
    const int V = ctx->model->cfg.n_vocab;
    bool all_greedy = true, device = ctx->be->ops->end_step_sample != NULL;
    for (int i = 0; i < n && i < ctx->p.n_batch; i++) {
        if (!samplers[i] || brisk_sampler_n_vocab(samplers[i]) != V)
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "%s: sampler %d is %s, the model has %d tokens", fn, i,
                                samplers[i] ? "for another vocabulary" : "NULL", V);
        const bool greedy = brisk_sampler_is_greedy(samplers[i]);
        for (int j = 0; j < i && brisk_sampler_draws(samplers[i]); j++)
            if (samplers[j] == samplers[i])
                return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                    "%s: rows %d and %d share a drawing sampler (one each)", fn, j,
                                    i);
        all_greedy &= greedy;
        if (!greedy && !brisk_sampler_device_params(samplers[i], &ctx->b_sp[i])) device = false;
        if (greedy) ctx->b_sp[i] = argmax_chain;
    }
    brisk_fwd_batch fb;
    brisk_status st = batch_begin(ctx, fn, seqs, tokens, n, &fb);
    if (st != BRISK_OK) return st;
    float *lp = logprob ? logprob : ctx->b_lp;
    fb.n_out = n;
    if (all_greedy) { /* the argmax where the logits are (host rows when the backend has none) */
        if (!ctx->be->ops->end_step_argmax) st = host_rows(ctx, fn);
        fb.greedy_ids = next, fb.greedy_lp = lp;
        if (st == BRISK_OK) st = batch_forward(ctx, &fb, ctx->greedy_logits);
    } else if (device) { /* every chain on the backend; the generators move once it succeeded */
        for (int i = 0; i < n; i++)
            ctx->b_u[i] = brisk_sampler_is_greedy(samplers[i])
                              ? 0.0
                              : brisk_sampler_peek_uniform(samplers[i]);
        fb.greedy_ids = next, fb.greedy_lp = lp, fb.sample = ctx->b_sp, fb.sample_u = ctx->b_u;
        st = batch_forward(ctx, &fb, NULL);
    } else { /* some chain needs the host (logit bias, penalties): every row's logits come back */
        const int rows = ctx->p.n_batch < ctx->p.n_seq_max ? ctx->p.n_batch : ctx->p.n_seq_max;
        if (!ctx->b_logits) ctx->b_logits = malloc(sizeof(float) * (size_t)rows * V);
        st = ctx->b_logits ? batch_forward(ctx, &fb, ctx->b_logits)
                           : brisk_errorf(BRISK_ERR_OOM, "%s: out of memory for logits", fn);
        for (int i = 0; i < n && st == BRISK_OK; i++) {
            st = brisk_sampler_sample_u(samplers[i], ctx->b_logits + (size_t)i * V,
                                        brisk_sampler_peek_uniform(samplers[i]), &next[i], &lp[i]);
            if (st != BRISK_OK) { /* the model's logits, not the caller's input, were bad */
                char msg[256];
                snprintf(msg, sizeof msg, "%s", brisk_last_error());
                st = brisk_errorf(BRISK_ERR_BACKEND, "%s: row %d: %s", fn, i, msg);
            }
        }
    }
    if (st == BRISK_OK)
        for (int i = 0; i < n; i++)
            if (brisk_sampler_draws(samplers[i])) brisk_sampler_skip_uniform(samplers[i]);
    batch_end(ctx, seqs, n, st == BRISK_OK);
    return st;
}

brisk_status brisk_context_measure_bandwidth(brisk_context *ctx, double *gbps) {
    if (!ctx || !gbps)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_context_measure_bandwidth: NULL argument");
    *gbps = ctx->be->ops->measure_bandwidth(ctx->be);
    if (!(*gbps > 0))
        return brisk_errorf(BRISK_ERR_BACKEND,
                            "brisk_context_measure_bandwidth: measurement failed");
    return BRISK_OK;
}

const char *brisk_context_backend_name(const brisk_context *ctx) {
    return ctx ? ctx->be->ops->name : "";
}

brisk_model *brisk_context_model(const brisk_context *ctx) {
    return ctx ? ctx->model : NULL;
}

size_t brisk_context_kv_bytes_per_token(const brisk_context *ctx) {
    return ctx ? 2 * (size_t)ctx->model->cfg.n_layer * (size_t)ctx->kv_dim *
                     ctx->be->ops->kv_elem_size
               : 0;
}

int brisk_context_n_ctx(const brisk_context *ctx) {
    return ctx ? ctx->p.n_ctx : 0;
}
