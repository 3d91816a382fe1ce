/* forward.c: the one forward pass of the Llama family (Llama, Mistral, Qwen2, Qwen3), written
 * like the math over backend ops. Shapes: T tokens in the step, D = n_embd, H heads of size hd. */
#include "model/model.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

brisk_status brisk_fwd_scratch_create(const brisk_config *c, int T, brisk_fwd_scratch *s) {
    memset(s, 0, sizeof *s);
    s->max_tokens = T;
    const size_t D = (size_t)c->n_embd, Q = (size_t)c->n_head * c->head_dim,
                 KV = (size_t)c->n_head_kv * c->head_dim, F = (size_t)c->n_ff;
    float **bufs[] = {&s->x, &s->xb, &s->q, &s->k, &s->v, &s->att, &s->proj, &s->gate, &s->up};
    const size_t sizes[] = {D, D, Q, KV, KV, Q, D, F, F};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(bufs); i++) {
        *bufs[i] = malloc((size_t)T * sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            brisk_fwd_scratch_free(s);
            return brisk_errorf(BRISK_ERR_OOM,
                                "brisk_context_create: out of memory for activations of %d tokens", T);
        }
    }
    return BRISK_OK;
}

void brisk_fwd_scratch_free(brisk_fwd_scratch *s) {
    float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->proj, s->gate, s->up};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(bufs); i++) free(bufs[i]);
    memset(s, 0, sizeof *s);
}

void brisk_forward(const brisk_model *m, brisk_backend *be, brisk_fwd_scratch *s,
                   float *const *kcache, float *const *vcache, const brisk_fwd_batch *b,
                   float *logits) {
    const brisk_config *c = &m->cfg;
    const brisk_backend_ops *op = be->ops;
    const int T = b->attn.n_tokens, D = c->n_embd, H = c->n_head, HKV = c->n_head_kv,
              hd = c->head_dim;
    const size_t TD = (size_t)T * D, TF = (size_t)T * c->n_ff;
    BRISK_ASSERT(T <= s->max_tokens);

    op->embed(be, &m->w.tok_embd, b->tokens, T, s->x); /* x = embed_tokens[ids]  [T, D] */
    for (int l = 0; l < c->n_layer; l++) {
        const brisk_layer_weights *L = &m->w.layers[l];
        /* attention block: x += o_proj(attn(rope(q), rope(k), v)) over input_layernorm(x) */
        op->rmsnorm(be, s->x, L->attn_norm, T, D, c->norm_eps, s->xb);
        op->matmul(be, &L->wq, L->bq, s->xb, T, s->q); /* [T, H*hd] */
        op->matmul(be, &L->wk, L->bk, s->xb, T, s->k); /* [T, HKV*hd] */
        op->matmul(be, &L->wv, L->bv, s->xb, T, s->v); /* [T, HKV*hd] */
        if (L->q_norm) { /* Qwen3: RMSNorm over each head, before RoPE */
            op->rmsnorm(be, s->q, L->q_norm, T * H, hd, c->norm_eps, s->q);
            op->rmsnorm(be, s->k, L->k_norm, T * HKV, hd, c->norm_eps, s->k);
        }
        op->rope(be, s->q, b->attn.pos, T, H, hd, m->inv_freq);
        op->rope(be, s->k, b->attn.pos, T, HKV, hd, m->inv_freq);
        op->kv_store(be, kcache[l], vcache[l], s->k, s->v, b->attn.slot, T, HKV * hd);
        op->attention(be, s->q, kcache[l], vcache[l], &b->attn, H, HKV, hd, s->att);
        op->matmul(be, &L->wo, NULL, s->att, T, s->proj);
        op->add(be, s->x, s->proj, TD);
        /* MLP block: x += down(silu(gate(h)) * up(h)), h = post_attention_layernorm(x) */
        op->rmsnorm(be, s->x, L->ffn_norm, T, D, c->norm_eps, s->xb);
        op->matmul(be, &L->w_gate, NULL, s->xb, T, s->gate);
        op->matmul(be, &L->w_up, NULL, s->xb, T, s->up);
        op->swiglu(be, s->gate, s->up, TF, s->gate);
        op->matmul(be, &L->w_down, NULL, s->gate, T, s->proj);
        op->add(be, s->x, s->proj, TD);
    }
    if (b->n_out == 0) return;
    /* Final norm and the output projection, only for the rows that want logits. */
    for (int i = 0; i < b->n_out; i++)
        memcpy(s->proj + (size_t)i * D, s->x + (size_t)b->out_rows[i] * D, (size_t)D * sizeof(float));
    op->rmsnorm(be, s->proj, m->w.out_norm, b->n_out, D, c->norm_eps, s->xb);
    op->matmul(be, &m->w.output, NULL, s->xb, b->n_out, logits);
}
