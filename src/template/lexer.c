/* lexer.c: template source -> tokens. Splits text from {{ }}, {% %} and {# #} tags, applies
 * whitespace control (-/+) plus trim_blocks and lstrip_blocks as transformers configures Jinja. */
#include "template/tmpl.h"

#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    tp_arena *arena;
    tp_err *err;
    const char *src, *end;
    tp_tokens *out;
    /* incremental position tracking: tokens are produced in source order */
    const char *pos_p, *line_start;
    int line;
} lexer;

static void where(lexer *L, const char *p, int *line, int *col) {
    if (p < L->pos_p) { /* rare (error reporting behind the cursor): rescan from the start */
        L->pos_p = L->line_start = L->src;
        L->line = 1;
    }
    for (; L->pos_p < p; L->pos_p++)
        if (*L->pos_p == '\n') L->line++, L->line_start = L->pos_p + 1;
    *line = L->line;
    *col = (int)tp_utf8_len(L->line_start, (size_t)(p - L->line_start)) + 1;
}

_Noreturn static void lex_fail(lexer *L, const char *p, const char *fmt, const char *arg) {
    int line, col;
    where(L, p, &line, &col);
    tp_fail(L->err, BRISK_ERR_FORMAT, line, col, fmt, arg);
}

static void *lex_alloc(lexer *L, size_t n) {
    void *p = tp_arena_alloc(L->arena, n);
    if (!p) tp_fail(L->err, BRISK_ERR_OOM, 0, 0, "out of memory while parsing the template");
    return p;
}

static tp_token *emit(lexer *L, tp_tok_kind kind, const char *at) {
    tp_tokens *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        tp_token *v = lex_alloc(L, cap * sizeof *v);
        if (t->n) memcpy(v, t->v, t->n * sizeof *v);
        t->v = v, t->cap = cap;
    }
    tp_token *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    where(L, at, &k->line, &k->col);
    return k;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static void put_utf8(char *out, size_t *n, uint32_t cp) {
    if (cp < 0x80)
        out[(*n)++] = (char)cp;
    else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A quoted string literal with Python's escapes (\n \t \xhh \uXXXX \UXXXXXXXX \ooo ...). */
static const char *lex_string(lexer *L, const char *p) {
    char q = *p;
    const char *start = p++;
    const char *body = p;
    while (p < L->end && *p != q) p += (*p == '\\' && p + 1 < L->end) ? 2 : 1;
    if (p >= L->end) lex_fail(L, start, "unterminated string literal%s", "");
    size_t raw = (size_t)(p - body);
    char *out = lex_alloc(L, raw + 1);
    size_t n = 0;
    for (const char *s = body; s < p; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        char c = *++s;
        uint32_t cp = 0;
        int digits = 0;
        switch (c) {
        case 'n':
            out[n++] = '\n';
            continue;
        case 't':
            out[n++] = '\t';
            continue;
        case 'r':
            out[n++] = '\r';
            continue;
        case '\\':
            out[n++] = '\\';
            continue;
        case '\'':
            out[n++] = '\'';
            continue;
        case '"':
            out[n++] = '"';
            continue;
        case 'a':
            out[n++] = '\a';
            continue;
        case 'b':
            out[n++] = '\b';
            continue;
        case 'f':
            out[n++] = '\f';
            continue;
        case 'v':
            out[n++] = '\v';
            continue;
        case '\n':
            continue; /* line continuation */
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            if (c >= '0' && c <= '7') {
                int k = 0;
                while (k < 3 && s < p && *s >= '0' && *s <= '7')
                    cp = cp * 8 + (uint32_t)(*s++ - '0'), k++;
                s--;
                put_utf8(out, &n, cp);
            } else { /* unknown escapes stay as written */
                out[n++] = '\\';
                out[n++] = c;
            }
            continue;
        }
        for (int k = 0; k < digits; k++) {
            int h = s + 1 < p ? hexval(s[1]) : -1;
            if (h < 0)
                lex_fail(L, s - 1, "truncated \\%c escape in string literal", (char[]){c, 0});
            cp = cp * 16 + (uint32_t)h;
            s++;
        }
        if (cp > 0x10FFFF) lex_fail(L, s, "escape beyond U+10FFFF in string literal%s", "");
        /* a \uD8xx\uDCxx surrogate pair is one character */
        if (cp >= 0xD800 && cp < 0xDC00 && p - s > 6 && s[1] == '\\' && s[2] == 'u') {
            uint32_t lo = 0;
            int ok = 1;
            for (int k = 3; k < 7; k++)
                ok &= hexval(s[k]) >= 0, lo = lo * 16 + (uint32_t)(ok ? hexval(s[k]) : 0);
            if (ok && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
        }
        put_utf8(out, &n, cp);
    }
    tp_token *t = emit(L, TK_STRING, start);
    t->s = out, t->n = n;
    return p + 1;
}

static const char *lex_number(lexer *L, const char *p) {
    const char *start = p;
    char buf[64];
    size_t n = 0;
    bool is_float = false;
    while (p < L->end && (is_digit(*p) || *p == '_')) {
        if (*p != '_' && n < sizeof buf - 1) buf[n++] = *p;
        p++;
    }
    if (p + 1 < L->end && *p == '.' && is_digit(p[1])) {
        is_float = true;
        if (n < sizeof buf - 1) buf[n++] = '.';
        for (p++; p < L->end && (is_digit(*p) || *p == '_'); p++)
            if (*p != '_' && n < sizeof buf - 1) buf[n++] = *p;
    }
    if (p < L->end && (*p == 'e' || *p == 'E')) {
        const char *e = p + 1;
        if (e < L->end && (*e == '+' || *e == '-')) e++;
        if (e < L->end && is_digit(*e)) {
            is_float = true;
            for (; p < e; p++)
                if (n < sizeof buf - 1) buf[n++] = *p;
            for (; p < L->end && (is_digit(*p) || *p == '_'); p++)
                if (*p != '_' && n < sizeof buf - 1) buf[n++] = *p;
        }
    }
    if (n >= sizeof buf - 1) lex_fail(L, start, "number literal too long%s", "");
    buf[n] = 0;
    tp_token *t = emit(L, is_float ? TK_FLOAT : TK_INT, start);
    if (is_float) {
        t->f = strtod(buf, NULL);
    } else {
        if (n > 18) lex_fail(L, start, "integer literal too large%s", "");
        t->i = strtoll(buf, NULL, 10);
    }
    return p;
}

/* Tokenizes the inside of a {{ }} or {% %} tag; returns the position after the end tag and
 * whether the end tag asked to strip ('-') or keep ('+') the following whitespace. */
static const char *lex_tag(lexer *L, const char *p, bool is_var, char *end_sign) {
    int depth = 0; /* open ( [ { : an end tag inside brackets is not an end tag */
    const char close = is_var ? '}' : '%';
    for (;;) {
        while (p < L->end && is_space(*p)) p++;
        if (p >= L->end)
            lex_fail(L, p, "unexpected end of template, expected '%s'", is_var ? "}}" : "%}");
        if (depth == 0) {
            const char *q = p;
            char sign = 0;
            if ((*q == '-' || (*q == '+' && !is_var)) && q + 2 < L->end && q[1] == close &&
                q[2] == '}')
                sign = *q++;
            if (q + 1 < L->end && q[0] == close && q[1] == '}') {
                emit(L, is_var ? TK_VAR_END : TK_BLOCK_END, p);
                *end_sign = sign;
                return q + 2;
            }
        }
        char c = *p;
        if (is_alpha(c)) {
            const char *s = p;
            while (p < L->end && (is_alpha(*p) || is_digit(*p))) p++;
            tp_token *t = emit(L, TK_NAME, s);
            t->s = s, t->n = (size_t)(p - s);
        } else if (is_digit(c)) {
            p = lex_number(L, p);
        } else if (c == '\'' || c == '"') {
            p = lex_string(L, p);
        } else {
            static const struct {
                const char *s;
                int op;
            } two[] = {{"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ},
                       {"!=", OP_NE},       {"<=", OP_LE},  {">=", OP_GE}};
            int op = 0;
            for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
                if (p + 1 < L->end && p[0] == two[i].s[0] && p[1] == two[i].s[1]) op = two[i].op;
            if (op) {
                emit(L, TK_OP, p)->op = op;
                p += 2;
                continue;
            }
            if (!strchr("+-*/%~<>=.,:|()[]{}", c) || c == 0)
                lex_fail(L, p, "unexpected character '%s'", (char[]){c, 0});
            if (c == '(' || c == '[' || c == '{') depth++;
            if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
            emit(L, TK_OP, p)->op = c;
            p++;
        }
    }
}

void tp_lex(tp_arena *a, tp_err *e, const char *src, size_t len, tp_tokens *out) {
    lexer L = {a, e, src, src + len, out, src, src, 1};
    const char *p = src;
    bool line_starting = true; /* jinja2: the text starts a line (lstrip_blocks may apply) */
    while (p < L.end) {
        /* text up to the next tag opener */
        const char *t = p;
        while (t + 1 < L.end && !(t[0] == '{' && (t[1] == '{' || t[1] == '%' || t[1] == '#'))) t++;
        if (t + 1 >= L.end) t = L.end;
        const char *ts = p, *te = t;
        char kind = t < L.end ? t[1] : 0;
        char sign = t < L.end && t + 2 < L.end && (t[2] == '-' || t[2] == '+') ? t[2] : 0;
        if (kind && sign == '-') {
            while (te > ts && is_space(te[-1])) te--;
        } else if (kind && kind != '{' && sign != '+') { /* lstrip_blocks */
            const char *l = te;
            while (l > ts && l[-1] != '\n') l--;
            bool blank = l < te;
            for (const char *q = l; q < te; q++) blank &= is_space(*q) && *q != '\n';
            if (blank && (l > ts || line_starting)) te = l;
        }
        if (te > ts) {
            tp_token *tk = emit(&L, TK_TEXT, ts);
            tk->s = ts, tk->n = (size_t)(te - ts);
        }
        if (!kind) break;
        p = t + 2 + (sign ? 1 : 0);
        char end_sign = 0;
        if (kind == '#') {
            const char *c = p;
            while (c + 1 < L.end && !(c[0] == '#' && c[1] == '}')) c++;
            if (c + 1 >= L.end) lex_fail(&L, t, "unterminated comment%s", "");
            end_sign = c > p && c[-1] == '-' ? '-' : 0;
            p = c + 2;
        } else {
            emit(&L, kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, t);
            p = lex_tag(&L, p, kind == '{', &end_sign);
        }
        line_starting = false;
        if (end_sign == '-') { /* `-%}` eats the whitespace; note whether it ended a line */
            const char *q = p;
            while (q < L.end && is_space(*q)) q++;
            line_starting = q > p && q[-1] == '\n';
            p = q;
        } else if (kind != '{' && end_sign != '+' && p < L.end && *p == '\n') {
            p++; /* trim_blocks */
            line_starting = true;
        }
    }
    emit(&L, TK_EOF, L.end);
}
