/* encode.c: the encode pipeline (added-token split -> normalize -> pre-tokenize -> BPE ->
 * post-processor) and the tokenizer.json "post_processor" (TemplateProcessing, Bert/Roberta). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- post-processor parsing ---- */

static brisk_status post_err(const char *what) {
    return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: post_processor %s", what);
}

static int add_item(tok_post_step *st, const int32_t *ids, int n_ids) {
    tok_post_item *it = realloc(st->items, (size_t)(st->n_items + 1) * sizeof *it);
    if (!it) return -1;
    st->items = it;
    tok_post_item *x = &st->items[st->n_items++];
    x->n_ids = n_ids;
    x->ids = NULL;
    if (n_ids > 0) {
        x->ids = malloc((size_t)n_ids * sizeof *x->ids);
        if (!x->ids) return -1;
        memcpy(x->ids, ids, (size_t)n_ids * sizeof *ids);
    }
    return 0;
}

static brisk_status parse_template(const brisk_tokenizer *t, const cJSON *j, tok_post_step *st) {
    const cJSON *single = cJSON_GetObjectItem(j, "single");
    const cJSON *specials = cJSON_GetObjectItem(j, "special_tokens");
    if (!cJSON_IsArray(single)) return post_err("TemplateProcessing needs a \"single\" array");
    for (const cJSON *it = single->child; it; it = it->next) {
        const cJSON *seq = cJSON_GetObjectItem(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItem(it, "SpecialToken");
        if (seq) {
            const char *id = tok_json_str(seq, "id");
            if (!id || strcmp(id, "A") != 0)
                return post_err("TemplateProcessing single may only use sequence $A");
            if (add_item(st, NULL, -1))
                return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: OOM");
            continue;
        }
        const char *name = tok_json_str(sp, "id");
        const cJSON *def = name ? cJSON_GetObjectItem(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItem(def, "ids");
        if (!cJSON_IsArray(ids))
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_tokenizer_load: post_processor TemplateProcessing: special "
                                "token \"%.40s\" has no ids in special_tokens",
                                name ? name : "?");
        int n = cJSON_GetArraySize(ids), k = 0;
        int32_t *v = malloc((size_t)(n + 1) * sizeof *v);
        if (!v) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
        for (const cJSON *x = ids->child; x; x = x->next, k++) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= t->n_vocab) {
                free(v);
                return post_err("TemplateProcessing special token id out of range");
            }
            v[k] = (int32_t)x->valuedouble;
        }
        int rc = add_item(st, v, n);
        free(v);
        if (rc) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    }
    return BRISK_OK;
}

/* BertProcessing / RobertaProcessing: [cls] $A [sep], with cls/sep as ["text", id]. */
static brisk_status parse_cls_sep(const brisk_tokenizer *t, const cJSON *j, tok_post_step *st) {
    const cJSON *cls = cJSON_GetObjectItem(j, "cls"), *sep = cJSON_GetObjectItem(j, "sep");
    const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
    if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si) || ci->valuedouble < 0 || si->valuedouble < 0 ||
        ci->valuedouble >= t->n_vocab || si->valuedouble >= t->n_vocab)
        return post_err("cls/sep must be [\"text\", id] with a valid id");
    int32_t c = (int32_t)ci->valuedouble, s = (int32_t)si->valuedouble;
    if (add_item(st, &c, 1) || add_item(st, NULL, -1) || add_item(st, &s, 1))
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    return BRISK_OK;
}

static brisk_status add_post(brisk_tokenizer *t, const cJSON *j, int depth) {
    if (depth > 16) return post_err("nested too deeply");
    const char *type = tok_json_str(j, "type");
    if (!type) return post_err("without \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItem(j, "processors");
        if (!cJSON_IsArray(arr)) return post_err("Sequence needs \"processors\"");
        for (const cJSON *c = arr->child; c; c = c->next) {
            brisk_status s = add_post(t, c, depth + 1);
            if (s) return s;
        }
        return BRISK_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return BRISK_OK; /* only trims offsets: no effect on ids */
    bool tmpl = strcmp(type, "TemplateProcessing") == 0;
    if (!tmpl && strcmp(type, "BertProcessing") != 0 && strcmp(type, "RobertaProcessing") != 0)
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: post_processor type \"%s\" is not supported",
                            type);
    tok_post_step *n = realloc(t->post, (size_t)(t->n_post + 1) * sizeof *n);
    if (!n) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    t->post = n;
    tok_post_step *st = &t->post[t->n_post++];
    memset(st, 0, sizeof *st);
    return tmpl ? parse_template(t, j, st) : parse_cls_sep(t, j, st);
}

brisk_status tok_post_parse(brisk_tokenizer *t, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return BRISK_OK;
    return add_post(t, j, 0);
}

void tok_steps_free(brisk_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].str);
        tok_pattern_free(&t->norm[i].pat);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) tok_pattern_free(&t->pre[i].pat);
    free(t->pre);
    for (int i = 0; i < t->n_post; i++) {
        for (int k = 0; k < t->post[i].n_items; k++) free(t->post[i].items[k].ids);
        free(t->post[i].items);
    }
    free(t->post);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].str);
        tok_pattern_free(&t->dec[i].pat);
    }
    free(t->dec);
    free(t->search);
}

/* ---- the pipeline ---- */

typedef struct enc_ctx {
    const brisk_tokenizer *t;
    tok_buf norm;
    tok_pieces p1, p2;
    tok_bpe_scratch sc;
    tok_ids ids;
    pcre2_match_data *md;
    bool seg_first; /* the raw segment being handled starts at offset 0 of the input */
} enc_ctx;

static brisk_status oom(void) {
    return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_encode: out of memory");
}

/* A segment of normalized text without added tokens: pre-tokenize, then BPE each piece. */
static brisk_status model_segment(enc_ctx *c, const char *s, size_t n, bool first) {
    brisk_status st = tok_pretokenize(c->t, s, n, first, &c->p1, &c->p2, c->md);
    for (size_t i = 0; i < c->p1.n && !st; i++)
        st = tok_bpe_word(c->t, c->p1.text.p + c->p1.sp[i].off, c->p1.sp[i].len, &c->sc, &c->ids);
    return st;
}

static brisk_status on_norm_segment(void *ctx, const char *s, size_t off, size_t len, int added) {
    enc_ctx *c = ctx;
    if (added >= 0) return tok_ids_push(&c->ids, c->t->added[added].id) ? oom() : BRISK_OK;
    return model_segment(c, s + off, len, c->seg_first && off == 0);
}

static brisk_status on_raw_segment(void *ctx, const char *s, size_t off, size_t len, int added) {
    enc_ctx *c = ctx;
    if (added >= 0) return tok_ids_push(&c->ids, c->t->added[added].id) ? oom() : BRISK_OK;
    bool origin = true;
    brisk_status st = tok_normalize(c->t, s + off, len, &c->norm, c->md, &origin);
    if (st) return st;
    c->seg_first = off == 0 && origin;
    if (c->t->has_normalized_added)
        return tok_added_split(c->t, c->norm.p, c->norm.n, true, on_norm_segment, c);
    return model_segment(c, c->norm.p, c->norm.n, c->seg_first);
}

static brisk_status post_process(const brisk_tokenizer *t, tok_ids *ids) {
    for (int i = 0; i < t->n_post; i++) {
        tok_ids out = {0};
        const tok_post_step *st = &t->post[i];
        for (int k = 0; k < st->n_items; k++) {
            const tok_post_item *it = &st->items[k];
            const int32_t *src = it->n_ids < 0 ? ids->p : it->ids;
            size_t n = it->n_ids < 0 ? ids->n : (size_t)it->n_ids;
            for (size_t j = 0; j < n; j++)
                if (tok_ids_push(&out, src[j])) {
                    tok_ids_free(&out);
                    return oom();
                }
        }
        tok_ids_free(ids);
        *ids = out;
    }
    return BRISK_OK;
}

brisk_status brisk_tokenizer_encode(const brisk_tokenizer *t, const char *text, size_t len,
                                    bool add_special, int32_t *ids, size_t cap, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!t || (!text && len) || (!ids && cap) || !n_out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_tokenizer_encode: tokenizer, text (when len > 0) and n_out are "
                            "required");
    size_t valid = tok_utf8_valid_prefix(text, len);
    if (valid != len)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_tokenizer_encode: input is not valid UTF-8 at byte %zu", valid);
    enc_ctx c = {.t = t};
    c.md = pcre2_match_data_create(16, NULL);
    if (!c.md) return oom();
    brisk_status st = tok_added_split(t, text, len, false, on_raw_segment, &c);
    if (!st && add_special) st = post_process(t, &c.ids);
    if (!st) {
        *n_out = c.ids.n;
        if (c.ids.n > cap)
            st = brisk_errorf(BRISK_ERR_BUFFER_TOO_SMALL,
                              "brisk_tokenizer_encode: %zu ids do not fit in %zu", c.ids.n, cap);
        else if (c.ids.n)
            memcpy(ids, c.ids.p, c.ids.n * sizeof *ids);
    }
    pcre2_match_data_free(c.md);
    tok_buf_free(&c.norm);
    tok_pieces_free(&c.p1);
    tok_pieces_free(&c.p2);
    tok_bpe_scratch_free(&c.sc);
    tok_ids_free(&c.ids);
    return st;
}
