/* pretokenize.c: the tokenizer.json "pre_tokenizer" (Sequence, Split with PCRE2/literal patterns
 * and every behavior, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's pattern, used by ByteLevel when use_regex is true. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* HF's Whitespace pattern \w+|[^\w\s]+ with the Unicode \w of Oniguruma/UTS#18 (letters,
 * marks, decimal digits, connector punctuation, joiners); PCRE2's \w lacks marks and joiners. */
#define WORD_CLASS "\\p{L}\\p{Nl}\\p{Nd}\\p{M}\\p{Pc}\\x{200C}\\x{200D}"
static const char WORD_RE[] = "[" WORD_CLASS "]+|[^" WORD_CLASS "\\s]+";

static brisk_status fmt_err(const char *what) {
    return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: pre_tokenizer %s", what);
}

static int parse_behavior(const char *b) {
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (b && strcmp(b, names[i]) == 0) return i;
    return -1;
}

static brisk_status parse_metaspace(const cJSON *j, char rep[5], int *rep_len, int *scheme,
                                    bool *split) {
    const char *r = tok_json_str(j, "replacement");
    if (!r) r = "\xE2\x96\x81"; /* U+2581 */
    int l;
    size_t rl = strlen(r);
    if (rl == 0 || rl > 4 || (tok_utf8_decode(r, rl, &l), (size_t)l != rl))
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_tokenizer_load: Metaspace replacement must be one character");
    memcpy(rep, r, rl);
    rep[rl] = 0;
    *rep_len = (int)rl;
    const char *ps = tok_json_str(j, "prepend_scheme");
    if (ps) {
        if (strcmp(ps, "always") == 0)
            *scheme = TOK_PREPEND_ALWAYS;
        else if (strcmp(ps, "first") == 0)
            *scheme = TOK_PREPEND_FIRST;
        else if (strcmp(ps, "never") == 0)
            *scheme = TOK_PREPEND_NEVER;
        else
            return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                "brisk_tokenizer_load: Metaspace prepend_scheme \"%s\" unknown",
                                ps);
    } else { /* older files: add_prefix_space */
        *scheme =
            tok_json_bool(j, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    }
    if (split) *split = tok_json_bool(j, "split", true);
    return BRISK_OK;
}

brisk_status tok_metaspace_parse(const cJSON *j, char rep[5], int *rep_len, int *scheme,
                                 bool *split);
brisk_status tok_metaspace_parse(const cJSON *j, char rep[5], int *rep_len, int *scheme,
                                 bool *split) {
    return parse_metaspace(j, rep, rep_len, scheme, split);
}

static brisk_status add_step(brisk_tokenizer *t, const cJSON *j, int depth) {
    if (depth > 16) return fmt_err("nested too deeply");
    const char *type = tok_json_str(j, "type");
    if (!type) return fmt_err("without \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItem(j, "pretokenizers");
        if (!cJSON_IsArray(arr)) return fmt_err("Sequence needs \"pretokenizers\"");
        for (const cJSON *c = arr->child; c; c = c->next) {
            brisk_status s = add_step(t, c, depth + 1);
            if (s) return s;
        }
        return BRISK_OK;
    }
    tok_pre_step st = {0};
    brisk_status s = BRISK_OK;
    st.behavior = TOK_SPLIT_ISOLATED;
    if (strcmp(type, "Split") == 0) {
        st.kind = TOK_PRE_SPLIT;
        st.behavior = parse_behavior(tok_json_str(j, "behavior"));
        if (st.behavior < 0)
            return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                                "brisk_tokenizer_load: Split behavior \"%s\" is not supported",
                                tok_json_str(j, "behavior") ? tok_json_str(j, "behavior") : "");
        st.invert = tok_json_bool(j, "invert", false);
        s = tok_pattern_parse(cJSON_GetObjectItem(j, "pattern"), "pre_tokenizer Split", &st.pat);
    } else if (strcmp(type, "ByteLevel") == 0) {
        st.kind = TOK_PRE_BYTELEVEL;
        st.add_prefix_space = tok_json_bool(j, "add_prefix_space", true);
        if (tok_json_bool(j, "use_regex", true))
            s = tok_pattern_compile(GPT2_RE, "pre_tokenizer ByteLevel", &st.pat);
    } else if (strcmp(type, "Metaspace") == 0) {
        st.kind = TOK_PRE_METASPACE;
        s = parse_metaspace(j, st.rep, &st.rep_len, &st.prepend_scheme, &st.split);
    } else if (strcmp(type, "Digits") == 0) {
        st.kind = TOK_PRE_DIGITS;
        st.individual_digits = tok_json_bool(j, "individual_digits", false);
    } else if (strcmp(type, "Whitespace") == 0) {
        st.kind = TOK_PRE_WHITESPACE;
        s = tok_pattern_compile(WORD_RE, "pre_tokenizer Whitespace", &st.pat);
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        st.kind = TOK_PRE_WHITESPACE_SPLIT;
    } else if (strcmp(type, "Punctuation") == 0) {
        st.kind = TOK_PRE_PUNCTUATION;
        const char *b = tok_json_str(j, "behavior");
        st.behavior = b ? parse_behavior(b) : TOK_SPLIT_ISOLATED;
        if (st.behavior < 0)
            return brisk_errorf(
                BRISK_ERR_UNSUPPORTED,
                "brisk_tokenizer_load: Punctuation behavior \"%s\" is not supported", b);
    } else {
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: pre_tokenizer type \"%s\" is not supported",
                            type);
    }
    if (s) return s;
    tok_pre_step *n = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *n);
    if (!n) {
        tok_pattern_free(&st.pat);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    }
    t->pre = n;
    t->pre[t->n_pre++] = st;
    return BRISK_OK;
}

brisk_status tok_pre_parse(brisk_tokenizer *t, const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return BRISK_OK;
    return add_step(t, j, 0);
}

/* ---- splitting ---- */

static brisk_status oom(void) {
    return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_encode: out of memory");
}

typedef struct interval {
    size_t a, b;
    bool match;
} interval;

typedef struct ivec {
    interval *p;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *v, size_t a, size_t b, bool match) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        interval *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (interval){a, b, match};
    return 0;
}

typedef bool (*char_pred)(uint32_t cp, const tok_pre_step *st);

static bool pred_numeric(uint32_t cp, const tok_pre_step *st) {
    return tok_is_numeric(cp);
}
static bool pred_punct(uint32_t cp, const tok_pre_step *st) {
    return tok_is_punct(cp);
}
static bool pred_space(uint32_t cp, const tok_pre_step *st) {
    return tok_is_whitespace(cp);
}
static bool pred_rep(uint32_t cp, const tok_pre_step *st) {
    int l;
    return cp == tok_utf8_decode(st->rep, (size_t)st->rep_len, &l);
}

/* Lists the matches of a pattern or of a character predicate (each matching character is one
 * match) together with the gaps, covering s[0..n). */
static brisk_status find_intervals(const tok_pattern *pat, char_pred pred, const tok_pre_step *st,
                                   const char *s, size_t n, pcre2_match_data *md, ivec *v) {
    v->n = 0;
    size_t prev = 0;
    if (pat) {
        size_t ms, me;
        int rc;
        while ((rc = tok_pattern_next(pat, s, n, prev, md, &ms, &me)) == 1) {
            if (ms > prev && ivec_push(v, prev, ms, false)) return oom();
            if (ivec_push(v, ms, me, true)) return oom();
            prev = me;
        }
        if (rc < 0)
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "brisk_tokenizer_encode: pre_tokenizer regex failed (%d)", rc);
    } else {
        for (size_t i = 0; i < n;) {
            int l;
            uint32_t cp = tok_utf8_decode(s + i, n - i, &l);
            if (pred(cp, st)) {
                if (i > prev && ivec_push(v, prev, i, false)) return oom();
                if (ivec_push(v, i, i + (size_t)l, true)) return oom();
                prev = i + (size_t)l;
            }
            i += (size_t)l;
        }
    }
    if (prev < n && ivec_push(v, prev, n, false)) return oom();
    return BRISK_OK;
}

/* Applies a split behavior to the intervals (in place) so that each remaining interval is one
 * output piece; removed intervals get a == b. */
static void apply_behavior(ivec *v, int behavior, bool invert) {
    if (invert)
        for (size_t i = 0; i < v->n; i++) v->p[i].match = !v->p[i].match;
    interval *p = v->p;
    size_t n = v->n, w = 0;
    bool prev_match = false;
    switch (behavior) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!p[i].match) p[w++] = p[i];
        break;
    case TOK_SPLIT_ISOLATED:
        w = n;
        break;
    case TOK_SPLIT_MERGED_PREV: /* a match joins the piece before it unless that was a match */
        for (size_t i = 0; i < n; i++) {
            if (p[i].match && !prev_match && w > 0)
                p[w - 1].b = p[i].b;
            else
                p[w++] = p[i];
            prev_match = p[i].match;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT: { /* mirror image: walk backwards, join the piece after */
        size_t r = n;             /* output grows downward from the end */
        for (size_t i = n; i-- > 0;) {
            interval cur = p[i];
            if (cur.match && !prev_match && r < n)
                p[r].a = cur.a;
            else
                p[--r] = cur;
            prev_match = cur.match;
        }
        memmove(p, p + r, (n - r) * sizeof *p);
        w = n - r;
        break;
    }
    case TOK_SPLIT_CONTIGUOUS: /* runs of matches (and of non-matches) become one piece */
        for (size_t i = 0; i < n; i++) {
            if (p[i].match == prev_match && w > 0)
                p[w - 1].b = p[i].b;
            else
                p[w++] = p[i];
            prev_match = p[i].match;
        }
        break;
    }
    v->n = w;
}

static brisk_status emit(const ivec *v, const char *s, bool first, tok_pieces *out) {
    for (size_t i = 0; i < v->n; i++) {
        const interval *iv = &v->p[i];
        if (iv->b > iv->a && tok_pieces_add(out, s + iv->a, iv->b - iv->a, first && iv->a == 0))
            return oom();
    }
    return BRISK_OK;
}

static brisk_status split_one(const tok_pattern *pat, char_pred pred, const tok_pre_step *st,
                              int behavior, bool invert, const char *s, size_t n, bool first,
                              pcre2_match_data *md, ivec *v, tok_pieces *out) {
    brisk_status e = find_intervals(pat, pred, st, s, n, md, v);
    if (e) return e;
    apply_behavior(v, behavior, invert);
    return emit(v, s, first, out);
}

/* Maps s[0..n) through the byte-level alphabet into one new piece of out. */
static brisk_status bytelevel_map(const brisk_tokenizer *t, const char *s, size_t n, bool first,
                                  tok_pieces *out) {
    if (tok_buf_reserve(&out->text, 2 * n + 1) || tok_pieces_add(out, "", 0, first)) return oom();
    tok_span *sp = &out->sp[out->n - 1];
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        memcpy(out->text.p + out->text.n, t->b2u[b], t->b2u_len[b]);
        out->text.n += t->b2u_len[b];
    }
    out->text.p[out->text.n] = 0;
    sp->len = out->text.n - sp->off;
    return BRISK_OK;
}

static brisk_status step_apply(const brisk_tokenizer *t, const tok_pre_step *st,
                               const tok_pieces *in, tok_pieces *out, pcre2_match_data *md,
                               ivec *v) {
    out->n = 0;
    out->text.n = 0;
    brisk_status e = BRISK_OK;
    tok_buf tmp = {0};
    for (size_t k = 0; k < in->n && !e; k++) {
        const char *s = in->text.p + in->sp[k].off;
        size_t n = in->sp[k].len;
        bool first = in->sp[k].first;
        switch (st->kind) {
        case TOK_PRE_SPLIT:
            e = split_one(&st->pat, NULL, st, st->behavior, st->invert, s, n, first, md, v, out);
            break;
        case TOK_PRE_WHITESPACE:
            e = split_one(&st->pat, NULL, st, TOK_SPLIT_REMOVED, true, s, n, first, md, v, out);
            break;
        case TOK_PRE_WHITESPACE_SPLIT:
            e = split_one(NULL, pred_space, st, TOK_SPLIT_REMOVED, false, s, n, first, md, v, out);
            break;
        case TOK_PRE_PUNCTUATION:
            e = split_one(NULL, pred_punct, st, st->behavior, false, s, n, first, md, v, out);
            break;
        case TOK_PRE_DIGITS:
            e = split_one(NULL, pred_numeric, st,
                          st->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, false,
                          s, n, first, md, v, out);
            break;
        case TOK_PRE_METASPACE: {
            tmp.n = 0;
            bool starts = n >= (size_t)st->rep_len && memcmp(s, st->rep, (size_t)st->rep_len) == 0;
            if (n > 0 && s[0] == ' ') starts = true; /* becomes the replacement below */
            bool prepend = st->prepend_scheme == TOK_PREPEND_ALWAYS ||
                           (st->prepend_scheme == TOK_PREPEND_FIRST && first);
            if (prepend && !starts && tok_buf_put(&tmp, st->rep, (size_t)st->rep_len)) e = oom();
            for (size_t i = 0; i < n && !e; i++)
                if (s[i] == ' ' ? tok_buf_put(&tmp, st->rep, (size_t)st->rep_len)
                                : tok_buf_putc(&tmp, s[i]))
                    e = oom();
            if (e) break;
            if (st->split)
                e = split_one(NULL, pred_rep, st, TOK_SPLIT_MERGED_NEXT, false, tmp.p, tmp.n, first,
                              md, v, out);
            else if (tmp.n && tok_pieces_add(out, tmp.p, tmp.n, first))
                e = oom();
            break;
        }
        case TOK_PRE_BYTELEVEL: {
            const char *src = s;
            size_t sn = n;
            if (st->add_prefix_space && (n == 0 || s[0] != ' ')) {
                tmp.n = 0;
                if (tok_buf_putc(&tmp, ' ') || tok_buf_put(&tmp, s, n)) {
                    e = oom();
                    break;
                }
                src = tmp.p, sn = tmp.n;
            }
            if (!st->pat.re) {
                if (sn) e = bytelevel_map(t, src, sn, first, out);
                break;
            }
            e = find_intervals(&st->pat, NULL, st, src, sn, md, v);
            for (size_t i = 0; i < v->n && !e; i++)
                e = bytelevel_map(t, src + v->p[i].a, v->p[i].b - v->p[i].a,
                                  first && v->p[i].a == 0, out);
            break;
        }
        }
    }
    tok_buf_free(&tmp);
    return e;
}

brisk_status tok_pretokenize(const brisk_tokenizer *t, const char *s, size_t n, bool first,
                             tok_pieces *out, tok_pieces *tmp, pcre2_match_data *md) {
    out->n = 0;
    out->text.n = 0;
    if (n == 0) return BRISK_OK;
    /* steps ping-pong between out and tmp so that the last one writes out */
    tok_pieces *cur = (t->n_pre % 2) ? tmp : out;
    cur->n = 0;
    cur->text.n = 0;
    if (tok_pieces_add(cur, s, n, first)) return oom();
    ivec v = {0};
    brisk_status e = BRISK_OK;
    for (int i = 0; i < t->n_pre && !e; i++) {
        tok_pieces *dst = cur == out ? tmp : out;
        e = step_apply(t, &t->pre[i], cur, dst, md, &v);
        cur = dst;
    }
    free(v.p);
    return e;
}
