/* normalize.c: the tokenizer.json "normalizer" (Sequence, NFC/NFD/NFKC/NFKD via utf8proc,
 * Lowercase, Strip, StripAccents, Prepend, Replace): parsed into flat steps, applied per segment.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static brisk_status add_step(brisk_tokenizer *t, const cJSON *j, int depth) {
    if (depth > 16)
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: normalizer nested too deeply");
    const char *type = tok_json_str(j, "type");
    if (!type)
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: normalizer without \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItem(j, "normalizers");
        if (!cJSON_IsArray(arr))
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_tokenizer_load: normalizer Sequence needs \"normalizers\"");
        for (const cJSON *c = arr->child; c; c = c->next) {
            brisk_status s = add_step(t, c, depth + 1);
            if (s) return s;
        }
        return BRISK_OK;
    }
    tok_norm_step st = {0};
    static const struct {
        const char *name;
        int kind;
    } simple[] = {{"NFC", TOK_NORM_NFC},
                  {"NFD", TOK_NORM_NFD},
                  {"NFKC", TOK_NORM_NFKC},
                  {"NFKD", TOK_NORM_NFKD},
                  {"Lowercase", TOK_NORM_LOWERCASE},
                  {"StripAccents", TOK_NORM_STRIP_ACCENTS}};
    st.kind = -1;
    for (size_t i = 0; i < BRISK_ARRAY_LEN(simple); i++)
        if (strcmp(type, simple[i].name) == 0) st.kind = simple[i].kind;
    if (strcmp(type, "Strip") == 0) {
        st.kind = TOK_NORM_STRIP;
        st.left = tok_json_bool(j, "strip_left", true);
        st.right = tok_json_bool(j, "strip_right", true);
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p = tok_json_str(j, "prepend");
        if (!p)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_tokenizer_load: normalizer Prepend needs \"prepend\"");
        st.kind = TOK_NORM_PREPEND;
        st.str_len = strlen(p);
        st.str = strdup(p);
    } else if (strcmp(type, "Replace") == 0) {
        const char *c = tok_json_str(j, "content");
        if (!c)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_tokenizer_load: normalizer Replace needs \"content\"");
        brisk_status s =
            tok_pattern_parse(cJSON_GetObjectItem(j, "pattern"), "normalizer Replace", &st.pat);
        if (s) return s;
        st.kind = TOK_NORM_REPLACE;
        st.str_len = strlen(c);
        st.str = strdup(c);
    }
    if (st.kind < 0)
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: normalizer type \"%s\" is not supported", type);
    tok_norm_step *n = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *n);
    if (!n || ((st.kind == TOK_NORM_PREPEND || st.kind == TOK_NORM_REPLACE) && !st.str)) {
        free(st.str);
        tok_pattern_free(&st.pat);
        if (n) t->norm = n;
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    }
    t->norm = n;
    t->norm[t->n_norm++] = st;
    return BRISK_OK;
}

brisk_status tok_norm_parse(brisk_tokenizer *t, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return BRISK_OK;
    return add_step(t, j, 0);
}

static brisk_status oom(void) {
    return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_encode: out of memory");
}

static brisk_status unicode_norm(int kind, const char *s, size_t n, tok_buf *out) {
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) ascii = (uint8_t)s[i] < 0x80;
    if (ascii) return tok_buf_put(out, s, n) ? oom() : BRISK_OK; /* ASCII is invariant */
    int opt = UTF8PROC_STABLE;
    if (kind == TOK_NORM_NFC) opt |= UTF8PROC_COMPOSE;
    if (kind == TOK_NORM_NFD) opt |= UTF8PROC_DECOMPOSE;
    if (kind == TOK_NORM_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    if (kind == TOK_NORM_NFKD) opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                        (utf8proc_option_t)opt);
    if (len < 0)
        return brisk_errorf(len == UTF8PROC_ERROR_NOMEM ? BRISK_ERR_OOM : BRISK_ERR_INVALID_ARG,
                            "brisk_tokenizer_encode: normalization failed: %s",
                            utf8proc_errmsg(len));
    int rc = tok_buf_put(out, res, (size_t)len);
    free(res);
    return rc ? oom() : BRISK_OK;
}

brisk_status tok_norm_step_apply(const tok_norm_step *st, const char *s, size_t n, tok_buf *out,
                                 pcre2_match_data *md, bool *origin) {
    out->n = 0;
    if (tok_buf_reserve(out, n + 1)) return oom();
    out->p[0] = 0;
    switch (st->kind) {
    case TOK_NORM_NFC:
    case TOK_NORM_NFD:
    case TOK_NORM_NFKC:
    case TOK_NORM_NFKD:
        return unicode_norm(st->kind, s, n, out);
    case TOK_NORM_STRIP_ACCENTS:
        /* HF StripAccents drops combining marks (M*) from the string as given. */
        {
            for (size_t i = 0; i < n;) {
                int l;
                uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
                int k = cp < 0x80 ? 0 : utf8proc_category((utf8proc_int32_t)cp);
                if (k != UTF8PROC_CATEGORY_MN && k != UTF8PROC_CATEGORY_MC &&
                    k != UTF8PROC_CATEGORY_ME) {
                    if (tok_buf_put(out, s + i, (size_t)l)) return oom();
                } else if (i == 0) {
                    *origin = false;
                }
                i += (size_t)l;
            }
            return BRISK_OK;
        }
    case TOK_NORM_LOWERCASE:
        for (size_t i = 0; i < n;) {
            int l;
            uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
            i += (size_t)l;
            char u[8];
            int ul;
            if (cp == 0x130) { /* the one lowercase mapping to two code points: i + U+0307 */
                memcpy(u, "i\xCC\x87", 3);
                ul = 3;
            } else {
                ul = tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u);
            }
            if (tok_buf_put(out, u, (size_t)ul)) return oom();
        }
        return BRISK_OK;
    case TOK_NORM_STRIP: {
        size_t a = 0, b = n;
        while (st->left && a < b) {
            int l;
            if (!tok_is_whitespace(tok_utf8_decode(s + a, b - a, &l))) break;
            a += (size_t)l;
        }
        while (st->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
            int l;
            if (!tok_is_whitespace(tok_utf8_decode(s + k, b - k, &l))) break;
            b = k;
        }
        if (a > 0) *origin = false;
        return tok_buf_put(out, s + a, b - a) ? oom() : BRISK_OK;
    }
    case TOK_NORM_PREPEND:
        if (n && tok_buf_put(out, st->str, st->str_len)) return oom();
        return tok_buf_put(out, s, n) ? oom() : BRISK_OK;
    case TOK_NORM_REPLACE: {
        size_t pos = 0, ms, me;
        int rc;
        while ((rc = tok_pattern_next(&st->pat, s, n, pos, md, &ms, &me)) == 1) {
            if (tok_buf_put(out, s + pos, ms - pos) || tok_buf_put(out, st->str, st->str_len))
                return oom();
            if (ms == 0 && st->str_len == 0) *origin = false;
            pos = me;
        }
        if (rc < 0)
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "brisk_tokenizer_encode: normalizer Replace regex failed (%d)", rc);
        return tok_buf_put(out, s + pos, n - pos) ? oom() : BRISK_OK;
    }
    }
    return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_tokenizer_encode: bad normalizer step");
}

brisk_status tok_normalize(const brisk_tokenizer *t, const char *s, size_t n, tok_buf *out,
                           pcre2_match_data *md, bool *origin) {
    out->n = 0;
    if (t->n_norm == 0) return tok_buf_put(out, s, n) ? oom() : BRISK_OK;
    tok_buf tmp = {0};
    brisk_status st = BRISK_OK;
    /* ping-pong between out and tmp; the first step reads the caller's text */
    const char *src = s;
    size_t src_n = n;
    tok_buf *dst = (t->n_norm % 2) ? out : &tmp;
    for (int i = 0; i < t->n_norm && !st; i++) {
        st = tok_norm_step_apply(&t->norm[i], src, src_n, dst, md, origin);
        src = dst->p;
        src_n = dst->n;
        dst = dst == out ? &tmp : out;
    }
    tok_buf_free(&tmp);
    return st;
}
