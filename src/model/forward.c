/* forward.c: the one forward pass of the Llama family (Llama, Mistral, Qwen2, Qwen3), written
 * like the math over backend ops. Shapes: T tokens in the step, D = n_embd, H heads of size hd. */
#include "model/model.h"
#include "util/error.h"
#include "util/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

brisk_status brisk_fwd_scratch_create(brisk_backend *be, const brisk_config *c, int T, int n_seqs,
                                      brisk_fwd_scratch *s) {
    memset(s, 0, sizeof *s);
    s->max_tokens = T;
    const int rows = n_seqs < T ? n_seqs : T;
    s->logit_rows = rows < BRISK_LOGIT_ROWS       ? BRISK_LOGIT_ROWS
                    : rows > BRISK_LOGIT_ROWS_MAX ? BRISK_LOGIT_ROWS_MAX
                                                  : rows;
    const size_t D = (size_t)c->n_embd, Q = (size_t)c->n_head * c->head_dim,
                 KV = (size_t)c->n_head_kv * c->head_dim, F = (size_t)c->n_ff;
    float **bufs[] = {&s->x,   &s->xb,   &s->q,    &s->k,  &s->v,
                      &s->att, &s->proj, &s->gate, &s->up, &s->logits};
    const size_t sizes[] = {
        T * D, T * D, T * Q, T * KV, T * KV,
        T * Q, T * D, T * F, T * F,  (size_t)s->logit_rows * (size_t)c->n_vocab};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(bufs); i++) {
        *bufs[i] = be->ops->alloc(be, sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            brisk_fwd_scratch_free(be, s);
            return brisk_errorf(BRISK_ERR_OOM,
                                "brisk_context_create: out of memory for activations of %d tokens",
                                T);
        }
    }
    return BRISK_OK;
}

void brisk_fwd_scratch_free(brisk_backend *be, brisk_fwd_scratch *s) {
    float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->proj, s->gate, s->up, s->logits};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(bufs); i++)
        if (bufs[i]) be->ops->free(be, bufs[i]);
    memset(s, 0, sizeof *s);
}

brisk_status brisk_greedy_row(const float *logits, int V, int32_t *id, float *lp) {
    int best = 0;
    float mx = logits[0];
    for (int i = 0; i < V; i++) {
        if (isnan(logits[i])) return brisk_errorf(BRISK_ERR_BACKEND, "forward: logit %d is NaN", i);
        if (logits[i] > mx) mx = logits[i], best = i;
    }
    *id = best;
    *lp = -(float)log(brisk_sum_exp(logits, V, mx));
    return BRISK_OK;
}

brisk_status brisk_forward(const brisk_model *m, brisk_backend *be, brisk_fwd_scratch *s,
                           void *const *kcache, void *const *vcache, const brisk_fwd_batch *b,
                           int max_blocks_per_seq, int n_seqs, float *logits) {
    const brisk_config *c = &m->cfg;
    const brisk_backend_ops *op = be->ops;
    const int T = b->attn.n_tokens, D = c->n_embd, H = c->n_head, HKV = c->n_head_kv,
              hd = c->head_dim, V = c->n_vocab;
    const size_t TD = (size_t)T * D, TF = (size_t)T * c->n_ff;
    BRISK_ASSERT(T <= s->max_tokens);
    brisk_status st = op->begin_step(be, b->tokens, &b->attn, max_blocks_per_seq, n_seqs);
    if (st != BRISK_OK) return st;

    op->embed(be, &m->w.tok_embd, b->tokens, T, s->x); /* x = embed_tokens[ids]  [T, D] */
    for (int l = 0; l < c->n_layer; l++) {
        const brisk_layer_weights *L = &m->w.layers[l];
        /* attention block: x += o_proj(attn(rope(q), rope(k), v)) over input_layernorm(x) */
        if (op->rmsnorm_matmul) {
            const brisk_tensor *W[3] = {&L->wq, &L->wk, &L->wv};
            const float *B[3] = {L->bq, L->bk, L->bv};
            float *Y[3] = {s->q, s->k, s->v};
            op->rmsnorm_matmul(be, s->x, L->attn_norm, c->norm_eps, T, 3, W, B, Y, false, s->xb);
        } else if (op->matmul_qkv) {
            op->rmsnorm(be, s->x, L->attn_norm, T, D, c->norm_eps, s->xb);
            op->matmul_qkv(be, &L->wq, &L->wk, &L->wv, L->bq, L->bk, L->bv, s->xb, T, s->q, s->k,
                           s->v);
        } else {
            op->rmsnorm(be, s->x, L->attn_norm, T, D, c->norm_eps, s->xb);
            op->matmul(be, &L->wq, L->bq, s->xb, T, s->q); /* [T, H*hd] */
            op->matmul(be, &L->wk, L->bk, s->xb, T, s->k); /* [T, HKV*hd] */
            op->matmul(be, &L->wv, L->bv, s->xb, T, s->v); /* [T, HKV*hd] */
        }
        if (L->q_norm) { /* Qwen3: RMSNorm over each head, before RoPE */
            op->rmsnorm(be, s->q, L->q_norm, T * H, hd, c->norm_eps, s->q);
            op->rmsnorm(be, s->k, L->k_norm, T * HKV, hd, c->norm_eps, s->k);
        }
        if (op->rope_kv_store) {
            op->rope_kv_store(be, s->q, s->k, s->v, b->attn.pos, T, H, HKV, hd, m->w.inv_freq,
                              kcache[l], vcache[l], b->attn.slot);
        } else {
            op->rope(be, s->q, b->attn.pos, T, H, hd, m->w.inv_freq);
            op->rope(be, s->k, b->attn.pos, T, HKV, hd, m->w.inv_freq);
            op->kv_store(be, kcache[l], vcache[l], s->k, s->v, b->attn.slot, T, HKV * hd);
        }
        op->attention(be, s->q, kcache[l], vcache[l], &b->attn, H, HKV, hd, s->att);
        if (op->matmul_add) {
            op->matmul_add(be, &L->wo, s->att, T, s->x);
        } else {
            op->matmul(be, &L->wo, NULL, s->att, T, s->proj);
            op->add(be, s->x, s->proj, TD);
        }
        /* MLP block: x += down(silu(gate(h)) * up(h)), h = post_attention_layernorm(x) */
        if (op->rmsnorm_matmul) {
            const brisk_tensor *W[2] = {&L->w_gate, &L->w_up};
            float *Y[2] = {s->gate, s->up};
            op->rmsnorm_matmul(be, s->x, L->ffn_norm, c->norm_eps, T, 2, W, NULL, Y, true, s->xb);
        } else if (op->matmul_swiglu) {
            op->rmsnorm(be, s->x, L->ffn_norm, T, D, c->norm_eps, s->xb);
            op->matmul_swiglu(be, &L->w_gate, &L->w_up, s->xb, T, s->gate);
        } else {
            op->rmsnorm(be, s->x, L->ffn_norm, T, D, c->norm_eps, s->xb);
            op->matmul(be, &L->w_gate, NULL, s->xb, T, s->gate);
            op->matmul(be, &L->w_up, NULL, s->xb, T, s->up);
            op->swiglu(be, s->gate, s->up, TF, s->gate);
        }
        if (op->matmul_add) {
            op->matmul_add(be, &L->w_down, s->gate, T, s->x);
        } else {
            op->matmul(be, &L->w_down, NULL, s->gate, T, s->proj);
            op->add(be, s->x, s->proj, TD);
        }
    }
    /* Final norm and the output projection, only for the rows that want logits, in chunks that
     * bound the logits scratch. */
    for (int r0 = 0; r0 < b->n_out && st == BRISK_OK; r0 += s->logit_rows) {
        const int nr = b->n_out - r0 < s->logit_rows ? b->n_out - r0 : s->logit_rows;
        /* rows r0.. of x in order (a decode step: every token's) need no gather: one kernel less
         * in the chain of every step */
        bool same = true;
        for (int i = 0; i < nr && same; i++) same = b->out_rows[r0 + i] == r0 + i;
        const float *xo = same ? s->x + (size_t)r0 * D : s->proj;
        if (!same) op->get_rows(be, s->x, b->out_rows + r0, nr, D, s->proj);
        if (op->rmsnorm_matmul) {
            const brisk_tensor *W = &m->w.output;
            op->rmsnorm_matmul(be, xo, m->w.out_norm, c->norm_eps, nr, 1, &W, NULL, &s->logits,
                               false, s->xb);
        } else {
            op->rmsnorm(be, xo, m->w.out_norm, nr, D, c->norm_eps, s->xb);
            op->matmul(be, &m->w.output, NULL, s->xb, nr, s->logits);
        }
        if (b->launch) { /* queued: brisk_context_decode_collect picks the ids up */
            BRISK_ASSERT(op->end_step_launch && nr == b->n_out);
            st = op->end_step_launch(be, s->logits, nr, V, b->sample ? b->sample + r0 : NULL,
                                     b->sample ? b->sample_u + r0 : NULL);
        } else if (b->greedy_ids && b->sample) {
            BRISK_ASSERT(op->end_step_sample); /* the caller samples on the host otherwise */
            st = op->end_step_sample(be, s->logits, nr, V, b->sample + r0, b->sample_u + r0,
                                     b->greedy_ids + r0, b->greedy_lp + r0);
        } else if (b->greedy_ids && op->end_step_argmax) {
            st = op->end_step_argmax(be, s->logits, nr, V, b->greedy_ids + r0, b->greedy_lp + r0);
        } else if (b->greedy_ids) {
            st = op->end_step(be, s->logits, nr, V, logits);
            for (int i = 0; i < nr && st == BRISK_OK; i++)
                st = brisk_greedy_row(logits + (size_t)i * V, V, &b->greedy_ids[r0 + i],
                                      &b->greedy_lp[r0 + i]);
        } else {
            st = op->end_step(be, s->logits, nr, V, logits + (size_t)r0 * V);
        }
    }
    if (b->n_out == 0) st = op->end_step(be, NULL, 0, V, NULL);
    return st;
}
