/* decode.c: the tokenizer.json "decoder" (Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip,
 * Metaspace) applied to the token strings of an id list, and brisk_tokenizer_decode. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

brisk_status tok_metaspace_parse(const cJSON *j, char rep[5], int *rep_len, int *scheme,
                                 bool *split);

static brisk_status dec_err(const char *what) {
    return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: decoder %s", what);
}

static brisk_status add_dec(brisk_tokenizer *t, const cJSON *j, int depth) {
    if (depth > 16) return dec_err("nested too deeply");
    const char *type = tok_json_str(j, "type");
    if (!type) return dec_err("without \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItem(j, "decoders");
        if (!cJSON_IsArray(arr)) return dec_err("Sequence needs \"decoders\"");
        for (const cJSON *c = arr->child; c; c = c->next) {
            brisk_status s = add_dec(t, c, depth + 1);
            if (s) return s;
        }
        return BRISK_OK;
    }
    tok_dec_step st = {0};
    brisk_status s = BRISK_OK;
    if (strcmp(type, "ByteLevel") == 0) {
        st.kind = TOK_DEC_BYTELEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        st.kind = TOK_DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        st.kind = TOK_DEC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        const char *c = tok_json_str(j, "content");
        if (!c) return dec_err("Replace needs \"content\"");
        st.kind = TOK_DEC_REPLACE;
        s = tok_pattern_parse(cJSON_GetObjectItem(j, "pattern"), "decoder Replace", &st.pat);
        if (!s && !(st.str = strdup(c)))
            s = brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
        st.str_len = strlen(c);
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = tok_json_str(j, "content");
        const cJSON *a = cJSON_GetObjectItem(j, "start"), *b = cJSON_GetObjectItem(j, "stop");
        if (!c || !*c || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 ||
            b->valuedouble < 0)
            return dec_err("Strip needs \"content\" (one character), \"start\" and \"stop\"");
        int l;
        st.kind = TOK_DEC_STRIP;
        st.strip_cp = tok_utf8_decode(c, strlen(c), &l);
        st.start = a->valuedouble > 1e6 ? 1000000 : (int)a->valuedouble;
        st.stop = b->valuedouble > 1e6 ? 1000000 : (int)b->valuedouble;
    } else if (strcmp(type, "Metaspace") == 0) {
        st.kind = TOK_DEC_METASPACE;
        s = tok_metaspace_parse(j, st.rep, &st.rep_len, &st.prepend_scheme, NULL);
    } else {
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: decoder type \"%s\" is not supported", type);
    }
    tok_dec_step *n = s ? NULL : realloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *n);
    if (!n) {
        free(st.str);
        tok_pattern_free(&st.pat);
        return s ? s : brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    }
    t->dec = n;
    t->dec[t->n_dec++] = st;
    return BRISK_OK;
}

brisk_status tok_dec_parse(brisk_tokenizer *t, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return BRISK_OK;
    t->has_decoder = true;
    return add_dec(t, j, 0);
}

/* ---- applying ---- */

static brisk_status oom(void) {
    return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_decode: out of memory");
}

static const char FFFD[] = "\xEF\xBF\xBD";

/* Appends s as UTF-8, replacing each maximal invalid subpart with U+FFFD (as Rust's
 * String::from_utf8_lossy and Python's errors="replace" do). */
static int put_lossy(tok_buf *out, const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need = 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            size_t k = i;
            while (k < n && s[k] < 0x80) k++;
            if (tok_buf_put(out, s + i, k - i)) return -1;
            i = k;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c == 0xE0)
            need = 2, lo = 0xA0;
        else if (c == 0xED)
            need = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF)
            need = 2;
        else if (c == 0xF0)
            need = 3, lo = 0x90;
        else if (c == 0xF4)
            need = 3, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3)
            need = 3;
        size_t k = 1;
        while (k <= need && i + k < n && s[i + k] >= lo && s[i + k] <= hi) {
            lo = 0x80, hi = 0xBF;
            k++;
        }
        if (need && k == need + 1) {
            if (tok_buf_put(out, s + i, k)) return -1;
        } else if (tok_buf_put(out, FFFD, 3)) {
            return -1;
        }
        i += k;
    }
    return 0;
}

static bool is_byte_token(const char *s, size_t n, uint8_t *b) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return false;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'                 ? c - '0'
                : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10
                                                     : -1;
        if (d < 0) return false;
        v = v * 16 + d;
    }
    *b = (uint8_t)v;
    return true;
}

static int flush_bytes(tok_pieces *out, tok_buf *bytes) {
    if (bytes->n == 0) return 0;
    int rc;
    if (tok_utf8_valid_prefix(bytes->p, bytes->n) == bytes->n) {
        rc = tok_pieces_add(out, bytes->p, bytes->n, false);
    } else {
        rc = 0;
        for (size_t i = 0; i < bytes->n && !rc; i++) rc = tok_pieces_add(out, FFFD, 3, false);
    }
    bytes->n = 0;
    return rc;
}

static brisk_status dec_step(const brisk_tokenizer *t, const tok_dec_step *st, const tok_pieces *in,
                             tok_pieces *out, pcre2_match_data *md) {
    out->n = 0;
    out->text.n = 0;
    tok_buf tmp = {0};
    int rc = 0;
    switch (st->kind) {
    case TOK_DEC_BYTELEVEL: /* every token back to bytes, then one lossy UTF-8 string */
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->text.p + in->sp[k].off;
            size_t n = in->sp[k].len, mark = tmp.n;
            bool all = true;
            for (size_t i = 0; i < n && all && !rc;) {
                int l;
                uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
                all = cp < 512 && t->u2b[cp] >= 0;
                if (all) rc = tok_buf_putc(&tmp, (char)t->u2b[cp]);
                i += (size_t)l;
            }
            if (!all) {
                tmp.n = mark; /* a token outside the alphabet passes through as its bytes */
                rc = tok_buf_put(&tmp, s, n);
            }
        }
        if (!rc) rc = tok_pieces_add(out, "", 0, false);
        if (!rc) rc = put_lossy(&out->text, (const uint8_t *)tmp.p, tmp.n);
        if (!rc) out->sp[0].len = out->text.n;
        break;
    case TOK_DEC_BYTEFALLBACK:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->text.p + in->sp[k].off;
            uint8_t b;
            if (is_byte_token(s, in->sp[k].len, &b)) {
                rc = tok_buf_putc(&tmp, (char)b);
                continue;
            }
            rc = flush_bytes(out, &tmp);
            if (!rc) rc = tok_pieces_add(out, s, in->sp[k].len, false);
        }
        if (!rc) rc = flush_bytes(out, &tmp);
        break;
    case TOK_DEC_FUSE:
        rc = tok_pieces_add(out, in->text.p, 0, false);
        for (size_t k = 0; k < in->n && !rc; k++)
            rc = tok_buf_put(&out->text, in->text.p + in->sp[k].off, in->sp[k].len);
        if (!rc) out->sp[0].len = out->text.n;
        break;
    case TOK_DEC_REPLACE:
    case TOK_DEC_STRIP:
    case TOK_DEC_METASPACE:
        for (size_t k = 0; k < in->n && !rc; k++) {
            const char *s = in->text.p + in->sp[k].off;
            size_t n = in->sp[k].len;
            tmp.n = 0;
            if (st->kind == TOK_DEC_REPLACE) {
                size_t pos = 0, ms, me;
                int m;
                while (!rc && (m = tok_pattern_next(&st->pat, s, n, pos, md, &ms, &me)) == 1) {
                    rc = tok_buf_put(&tmp, s + pos, ms - pos) ||
                         tok_buf_put(&tmp, st->str, st->str_len);
                    pos = me;
                }
                if (!rc) rc = tok_buf_put(&tmp, s + pos, n - pos);
            } else if (st->kind == TOK_DEC_STRIP) {
                size_t a = 0, b = n;
                int l;
                for (int c = 0;
                     c < st->start && a < b && tok_utf8_decode(s + a, b - a, &l) == st->strip_cp;
                     c++)
                    a += (size_t)l;
                for (int c = 0; c < st->stop && b > a; c++) {
                    size_t q = b - 1;
                    while (q > a && ((uint8_t)s[q] & 0xC0) == 0x80) q--;
                    if (tok_utf8_decode(s + q, b - q, &l) != st->strip_cp) break;
                    b = q;
                }
                rc = tok_buf_put(&tmp, s + a, b - a);
            } else { /* Metaspace: replacement -> ' ', dropped in the first token when prepending */
                bool drop = k == 0 && st->prepend_scheme != TOK_PREPEND_NEVER;
                for (size_t i = 0; i < n && !rc;) {
                    if (i + (size_t)st->rep_len <= n &&
                        memcmp(s + i, st->rep, (size_t)st->rep_len) == 0) {
                        if (!drop) rc = tok_buf_putc(&tmp, ' ');
                        i += (size_t)st->rep_len;
                    } else {
                        rc = tok_buf_putc(&tmp, s[i++]);
                    }
                }
            }
            if (!rc) rc = tok_pieces_add(out, tmp.p ? tmp.p : "", tmp.n, false);
        }
        break;
    }
    tok_buf_free(&tmp);
    return rc ? oom() : BRISK_OK;
}

brisk_status tok_decode_to(const brisk_tokenizer *t, const int32_t *ids, size_t n,
                           bool skip_special, tok_buf *out) {
    out->n = 0;
    if (tok_buf_reserve(out, 1)) return oom();
    out->p[0] = 0;
    tok_pieces a = {0}, b = {0};
    brisk_status st = BRISK_OK;
    for (size_t i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        const char *text = id >= 0 && id < t->n_vocab ? brisk_tokenizer_token_text(t, id) : NULL;
        if (!text) {
            st = brisk_errorf(BRISK_ERR_INVALID_ARG,
                              "brisk_tokenizer_decode: id %d at index %zu is not in the vocabulary "
                              "(size %d)",
                              (int)id, i, (int)t->n_vocab);
            break;
        }
        if (skip_special && brisk_tokenizer_is_special(t, id)) continue;
        if (tok_pieces_add(&a, text, strlen(text), false)) st = oom();
    }
    pcre2_match_data *md = NULL;
    if (!st && t->n_dec && !(md = pcre2_match_data_create(16, NULL))) st = oom();
    tok_pieces *cur = &a, *nxt = &b;
    for (int i = 0; i < t->n_dec && !st; i++) {
        st = dec_step(t, &t->dec[i], cur, nxt, md);
        tok_pieces *x = cur;
        cur = nxt;
        nxt = x;
    }
    /* without a decoder HF joins the tokens with spaces */
    for (size_t k = 0; k < cur->n && !st; k++)
        if ((k && !t->has_decoder && tok_buf_putc(out, ' ')) ||
            tok_buf_put(out, cur->text.p + cur->sp[k].off, cur->sp[k].len))
            st = oom();
    if (md) pcre2_match_data_free(md);
    tok_pieces_free(&a);
    tok_pieces_free(&b);
    return st;
}

brisk_status brisk_tokenizer_decode(const brisk_tokenizer *t, const int32_t *ids, size_t n,
                                    bool skip_special, char *buf, size_t cap, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!t || (!ids && n) || (!buf && cap) || !len_out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_tokenizer_decode: tokenizer, ids (when n > 0) and len_out are "
                            "required");
    tok_buf out = {0};
    brisk_status st = tok_decode_to(t, ids, n, skip_special, &out);
    if (!st) {
        *len_out = out.n;
        if (out.n > cap)
            st = brisk_errorf(BRISK_ERR_BUFFER_TOO_SMALL,
                              "brisk_tokenizer_decode: %zu bytes of text do not fit in %zu", out.n,
                              cap);
        else {
            if (out.n) memcpy(buf, out.p, out.n);
            if (out.n < cap) buf[out.n] = 0;
        }
    }
    tok_buf_free(&out);
    return st;
}
