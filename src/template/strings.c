/* strings.c: Python str semantics the templates rely on: Unicode case mapping, strip, split,
 * replace and format, over UTF-8 byte strings (code points decoded with utf8proc). */
#include "template/tmpl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static tp_value list_value(tp_list *l) {
    return (tp_value){.kind = TV_LIST, .u.list = l};
}

/* ---- Unicode helpers ------------------------------------------------------------------------ */

size_t tp_utf8_decode(const char *s, size_t n, size_t i, int32_t *cp) {
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), cp);
    if (k <= 0) {
        *cp = (unsigned char)s[i];
        return 1;
    }
    return (size_t)k;
}

bool tp_py_space(int32_t c) { /* Python's str.isspace() */
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool is_cased(int32_t c) {
    return utf8proc_toupper(c) != c || utf8proc_tolower(c) != c ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_LT;
}

static void put_cp(tp_rt *rt, tp_buf *b, int32_t c) {
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char(c, tmp);
    tp_buf_put(rt, b, (const char *)tmp, (size_t)k);
}

tp_value tp_str_case(tp_rt *rt, tp_value s, int mode) {
    tp_buf b = {0};
    bool prev_cased = false, word_start = true, first = true;
    for (size_t i = 0; i < s.n;) {
        int32_t c;
        i += tp_utf8_decode(s.u.s, s.n, i, &c);
        int32_t o = c;
        switch (mode) {
        case TP_CASE_UPPER:
            o = utf8proc_toupper(c);
            break;
        case TP_CASE_LOWER:
            o = utf8proc_tolower(c);
            break;
        case TP_CASE_TITLE:
            o = prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c);
            break;
        case TP_CASE_CAPITALIZE:
            o = first ? utf8proc_totitle(c) : utf8proc_tolower(c);
            break;
        case TP_CASE_JINJA_TITLE: { /* words begin after runs of - whitespace ( { [ < */
            bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || tp_py_space(c);
            o = sep ? c : word_start ? utf8proc_toupper(c) : utf8proc_tolower(c);
            word_start = sep;
            break;
        }
        }
        prev_cased = is_cased(c);
        first = false;
        if (c == 0xDF && o != c) { /* ß: Python's full case mapping makes two letters */
            tp_buf_put(rt, &b, mode == TP_CASE_TITLE || mode == TP_CASE_CAPITALIZE ? "Ss" : "SS",
                       2);
            continue;
        }
        put_cp(rt, &b, o);
    }
    return tp_buf_value(&b);
}

/* strip with Python semantics: chars NULL = whitespace; which: 1 left, 2 right, 3 both. */
tp_value tp_str_strip(tp_rt *rt, tp_value s, tp_value chars, int which) {
    bool ws = chars.kind == TV_UNDEF || chars.kind == TV_NONE;
    if (!ws && chars.kind != TV_STR)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "strip arg must be None or str");
    const tp_list *set = ws ? NULL : tp_iterate(rt, chars);
    size_t a = 0, b = s.n;
    while ((which & 1) && a < b) {
        int32_t c;
        size_t k = tp_utf8_decode(s.u.s, s.n, a, &c);
        bool hit = ws ? tp_py_space(c) : tp_contains(rt, chars, tp_str(s.u.s + a, k));
        if (!hit) break;
        a += k;
    }
    while ((which & 2) && b > a) {
        size_t k = 1;
        while (k < b - a && ((unsigned char)s.u.s[b - k] & 0xC0) == 0x80) k++;
        int32_t c;
        tp_utf8_decode(s.u.s, s.n, b - k, &c);
        bool hit = ws ? tp_py_space(c) : tp_contains(rt, chars, tp_str(s.u.s + b - k, k));
        if (!hit) break;
        b -= k;
    }
    (void)set;
    return tp_str(s.u.s + a, b - a);
}

const char *tp_str_find(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0) return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0) return h + i;
    return NULL;
}

tp_value tp_str_split(tp_rt *rt, tp_value s, tp_value sep, int64_t maxsplit) {
    tp_list *l = tp_list_new(rt, 8);
    size_t cap = 8;
    l->n = 0;
#define PUSH(v)                                                                                    \
    do {                                                                                           \
        if (l->n == cap) {                                                                         \
            tp_value *nv = tp_rt_alloc(rt, cap * 2 * sizeof(tp_value));                            \
            memcpy(nv, l->items, l->n * sizeof(tp_value));                                         \
            l->items = nv, cap *= 2;                                                               \
        }                                                                                          \
        l->items[l->n++] = (v);                                                                    \
    } while (0)
    if (sep.kind == TV_UNDEF || sep.kind == TV_NONE) { /* runs of whitespace, no empty parts */
        size_t i = 0;
        for (;;) {
            int32_t c;
            while (i < s.n && (tp_utf8_decode(s.u.s, s.n, i, &c), tp_py_space(c)))
                i += tp_utf8_decode(s.u.s, s.n, i, &c);
            if (i >= s.n) break;
            size_t start = i;
            if (maxsplit >= 0 && (int64_t)l->n == maxsplit) {
                size_t e = s.n;
                PUSH(tp_str_strip(rt, tp_str(s.u.s + start, e - start), tp_undef(NULL), 2));
                break;
            }
            while (i < s.n && !(tp_utf8_decode(s.u.s, s.n, i, &c), tp_py_space(c)))
                i += tp_utf8_decode(s.u.s, s.n, i, &c);
            PUSH(tp_str(s.u.s + start, i - start));
        }
        return list_value(l);
    }
    if (sep.kind != TV_STR) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "split: separator must be str");
    if (sep.n == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "empty separator");
    const char *p = s.u.s, *end = s.u.s + s.n;
    for (;;) {
        const char *q = (maxsplit < 0 || (int64_t)l->n < maxsplit)
                            ? tp_str_find(p, (size_t)(end - p), sep.u.s, sep.n)
                            : NULL;
        if (!q) {
            PUSH(tp_str(p, (size_t)(end - p)));
            break;
        }
        PUSH(tp_str(p, (size_t)(q - p)));
        p = q + sep.n;
    }
#undef PUSH
    return list_value(l);
}

tp_value tp_str_replace(tp_rt *rt, tp_value s, tp_value old, tp_value new, int64_t count) {
    if (old.kind != TV_STR || new.kind != TV_STR)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "replace: arguments must be strings");
    tp_buf b = {0};
    if (old.n == 0) { /* Python inserts `new` around every character */
        const tp_list *chars = tp_iterate(rt, s);
        for (size_t i = 0; i <= chars->n; i++) {
            if (count < 0 || (int64_t)i < count) tp_buf_put(rt, &b, new.u.s, new.n);
            if (i < chars->n) tp_buf_put(rt, &b, chars->items[i].u.s, chars->items[i].n);
        }
        return tp_buf_value(&b);
    }
    const char *p = s.u.s, *end = s.u.s + s.n;
    for (int64_t k = 0; count < 0 || k < count; k++) {
        const char *q = tp_str_find(p, (size_t)(end - p), old.u.s, old.n);
        if (!q) break;
        tp_buf_put(rt, &b, p, (size_t)(q - p));
        tp_buf_put(rt, &b, new.u.s, new.n);
        p = q + old.n;
    }
    tp_buf_put(rt, &b, p, (size_t)(end - p));
    return tp_buf_value(&b);
}

/* str.format: {} {0} {name} and {{ }}; format specs are not supported. */
tp_value tp_str_format(tp_rt *rt, tp_value s, tp_args *a) {
    tp_buf b = {0};
    size_t auto_idx = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.u.s[i];
        if ((c == '{' || c == '}') && i + 1 < s.n && s.u.s[i + 1] == c) {
            tp_buf_put(rt, &b, &c, 1);
            i++;
            continue;
        }
        if (c == '}') tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "format: single '}' encountered");
        if (c != '{') {
            tp_buf_put(rt, &b, &c, 1);
            continue;
        }
        size_t j = i + 1;
        while (j < s.n && s.u.s[j] != '}') j++;
        if (j >= s.n) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "format: single '{' encountered");
        const char *f = s.u.s + i + 1;
        size_t fn = j - i - 1;
        if (memchr(f, ':', fn) || memchr(f, '!', fn))
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "format specs are not supported");
        tp_value v;
        if (fn == 0 || (f[0] >= '0' && f[0] <= '9')) {
            size_t idx = fn == 0 ? auto_idx++ : (size_t)strtoul(f, NULL, 10);
            if (idx >= a->n_pos)
                tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "format: index %zu out of range", idx);
            v = a->pos[idx];
        } else {
            long k = a->kw ? tp_dict_find_str(a->kw, f, fn) : -1;
            if (k < 0)
                tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "format: missing key '%.*s'", (int)fn, f);
            v = a->kw->vals[k];
        }
        tp_write_str(rt, &b, v);
        i = j;
    }
    return tp_buf_value(&b);
}
