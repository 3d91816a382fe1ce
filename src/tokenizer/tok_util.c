/* tok_util.c: the tokenizer's building blocks: growable buffers, open-addressing hash maps for
 * vocab and merges, UTF-8 coding, Unicode character classes, and literal/PCRE2 patterns. */
#define _GNU_SOURCE /* memmem */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- buffers ---- */

int tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_put(tok_buf *b, const void *s, size_t n) {
    if (tok_buf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0; /* always NUL-terminated for convenience */
    return 0;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tok_ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return 0;
}

void tok_ids_free(tok_ids *v) {
    free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

int tok_pieces_add(tok_pieces *p, const char *s, size_t len, bool first) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        tok_span *sp = realloc(p->sp, cap * sizeof *sp);
        if (!sp) return -1;
        p->sp = sp;
        p->cap = cap;
    }
    size_t off = p->text.n;
    if (tok_buf_put(&p->text, s, len)) return -1;
    p->sp[p->n++] = (tok_span){off, len, first};
    return 0;
}

void tok_pieces_free(tok_pieces *p) {
    tok_buf_free(&p->text);
    free(p->sp);
    p->sp = NULL;
    p->n = p->cap = 0;
}

/* ---- hash maps ---- */

uint32_t tok_hash(const char *s, size_t n) {
    /* FNV-1a with a final avalanche: keys are short vocab pieces. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h;
}

static size_t table_size(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    return cap;
}

int tok_strmap_init(tok_strmap *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].value = UINT32_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

void tok_strmap_put(tok_strmap *m, const char *arena, uint32_t off, uint32_t len, uint32_t value) {
    uint32_t h = tok_hash(arena + off, len);
    size_t i = h & m->mask;
    while (m->slots[i].value != UINT32_MAX) {
        tok_strmap_ent *e = &m->slots[i];
        if (e->hash == h && e->len == len && memcmp(arena + e->off, arena + off, len) == 0) {
            e->value = value;
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (tok_strmap_ent){h, value, off, len};
    m->n++;
}

int64_t tok_strmap_get(const tok_strmap *m, const char *arena, const char *s, size_t n) {
    if (!m->slots) return -1;
    uint32_t h = tok_hash(s, n);
    size_t i = h & m->mask;
    while (m->slots[i].value != UINT32_MAX) {
        const tok_strmap_ent *e = &m->slots[i];
        if (e->hash == h && e->len == n && memcmp(arena + e->off, s, n) == 0) return e->value;
        i = (i + 1) & m->mask;
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    m->slots = NULL;
}

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

int tok_pairmap_init(tok_pairmap *m, size_t expected) {
    size_t cap = table_size(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

void tok_pairmap_put(tok_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged) {
    uint64_t key = (uint64_t)a << 32 | b;
    size_t i = pair_slot(key, m->mask);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX) m->n++;
    m->slots[i] = (tok_pairmap_ent){key, rank, merged};
}

const tok_pairmap_ent *tok_pairmap_get(const tok_pairmap *m, uint32_t a, uint32_t b) {
    if (!m->slots) return NULL;
    uint64_t key = (uint64_t)a << 32 | b;
    size_t i = pair_slot(key, m->mask);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return &m->slots[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
}

/* ---- UTF-8 ---- */

uint32_t tok_utf8_decode(const char *s, size_t n, int *len) {
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80 || n < 2) {
        *len = 1;
        return u[0];
    }
    if (u[0] < 0xE0) {
        *len = 2;
        return (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
    }
    if (u[0] < 0xF0 || n < 4) {
        *len = n < 3 ? (int)n : 3;
        return n < 3 ? 0xFFFD
                     : (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
           (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
}

int tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tok_utf8_valid_prefix(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t min;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, min = 0x10000;
        else
            return i;
        if (i + need >= n) return i; /* truncated sequence */
        uint32_t cp = c & (0x3F >> need);
        for (size_t k = 1; k <= need; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += need + 1;
    }
    return n;
}

/* ---- Unicode classes ---- */

bool tok_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int category(uint32_t c) {
    return utf8proc_category((utf8proc_int32_t)c);
}

bool tok_is_numeric(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int k = category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool tok_is_alnum(uint32_t c) {
    if (c < 0x80) return (c | 32) - 'a' < 26 || c - '0' < 10;
    int k = category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

bool tok_is_punct(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    int k = category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* ---- patterns ---- */

brisk_status tok_pattern_compile(const char *regex, const char *where, tok_pattern *out) {
    int err;
    PCRE2_SIZE at;
    memset(out, 0, sizeof *out);
    out->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                            &at, NULL);
    if (!out->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: %s: regex error at %zu: %s", where, (size_t)at,
                            (const char *)msg);
    }
    /* JIT is an optimisation: when unavailable the interpreter still gives the same matches. */
    (void)pcre2_jit_compile(out->re, PCRE2_JIT_COMPLETE);
    return BRISK_OK;
}

brisk_status tok_pattern_parse(const cJSON *pat, const char *where, tok_pattern *out) {
    memset(out, 0, sizeof *out);
    const char *s = tok_json_str(pat, "String");
    if (s) {
        out->lit_len = strlen(s);
        out->lit = malloc(out->lit_len + 1);
        if (!out->lit) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
        memcpy(out->lit, s, out->lit_len + 1);
        return BRISK_OK;
    }
    const char *r = tok_json_str(pat, "Regex");
    if (r) return tok_pattern_compile(r, where, out);
    return brisk_errorf(
        BRISK_ERR_FORMAT,
        "brisk_tokenizer_load: %s: pattern must be {\"String\":..} or {\"Regex\":..}", where);
}

void tok_pattern_free(tok_pattern *p) {
    free(p->lit);
    if (p->re) pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

int tok_pattern_next(const tok_pattern *p, const char *s, size_t n, size_t from,
                     pcre2_match_data *md, size_t *ms, size_t *me) {
    if (!p->re) {
        if (p->lit_len == 0 || from >= n) return 0;
        const char *f = memmem(s + from, n - from, p->lit, p->lit_len);
        if (!f) return 0;
        *ms = (size_t)(f - s);
        *me = *ms + p->lit_len;
        return 1;
    }
    while (from <= n) {
        /* The JIT uses a small machine stack; on exhaustion fall back to the interpreter,
         * which keeps its backtracking state on the heap. */
        /* Every subject is valid UTF-8 (input is checked by encode, tokenizer.json at load):
         * without NO_UTF_CHECK PCRE2 re-validates the whole subject on every call, which is
         * quadratic over a long segment. */
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return rc;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* an empty match: skip one character and look again */
        if (ov[0] >= n) return 0;
        int len;
        tok_utf8_decode(s + ov[0], n - ov[0], &len);
        from = ov[0] + (size_t)len;
    }
    return 0;
}
