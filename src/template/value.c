/* value.c: the template interpreter's memory and values: arena, error unwinding, buffers,
 * lists/dicts, Python truthiness/equality/ordering, str()/repr()/json.dumps() and JSON input. */
#include "template/tmpl.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------------------------- */

struct tp_chunk {
    tp_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

#define TP_CHUNK_SIZE (64u << 10)

void *tp_arena_alloc(tp_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->total > a->limit - n)) return NULL;
    tp_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > TP_CHUNK_SIZE / 4 ? n : TP_CHUNK_SIZE;
        tp_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (cap == n && c) { /* a big block: keep filling the current chunk afterwards */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void tp_arena_free(tp_arena *a) {
    tp_chunk *c = a->head;
    while (c) {
        tp_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- errors --------------------------------------------------------------------------------- */

void tp_fail(tp_err *e, brisk_status st, int line, int col, const char *fmt, ...) {
    int k = snprintf(e->msg, sizeof e->msg, "%d:%d: ", line, col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + k, sizeof e->msg - (size_t)k, fmt, ap);
    va_end(ap);
    e->st = st;
    longjmp(e->jb, 1);
}

void tp_rt_fail(tp_rt *rt, brisk_status st, const char *fmt, ...) {
    int k = snprintf(rt->err.msg, sizeof rt->err.msg, "%d:%d: ", rt->line, rt->col);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rt->err.msg + k, sizeof rt->err.msg - (size_t)k, fmt, ap);
    va_end(ap);
    rt->err.st = st;
    longjmp(rt->err.jb, 1);
}

void *tp_rt_alloc(tp_rt *rt, size_t n) {
    void *p = tp_arena_alloc(&rt->arena, n);
    if (!p && rt->arena.limit && n + rt->arena.total + 16 > rt->arena.limit)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "render needs more than the %u MiB memory limit",
                   TP_MAX_ARENA >> 20);
    if (!p) tp_rt_fail(rt, BRISK_ERR_OOM, "out of memory");
    return p;
}

const char *tp_rt_strdup(tp_rt *rt, const char *s, size_t n) {
    char *p = tp_rt_alloc(rt, n + 1);
    if (n) memcpy(p, s, n);
    return p;
}

/* ---- buffers, lists, dicts ------------------------------------------------------------------ */

void tp_buf_put(tp_rt *rt, tp_buf *b, const char *s, size_t n) {
    if (n == 0) return;
    if (n > TP_MAX_OUTPUT || b->n > TP_MAX_OUTPUT - n)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "text longer than the %u MiB output limit",
                   TP_MAX_OUTPUT >> 20);
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap - b->n < n) cap *= 2;
        char *p = tp_rt_alloc(rt, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void tp_buf_printf(tp_rt *rt, tp_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    BRISK_ASSERT(k >= 0 && (size_t)k < sizeof tmp);
    tp_buf_put(rt, b, tmp, (size_t)k);
}

tp_list *tp_list_new(tp_rt *rt, size_t n) {
    if (n > TP_MAX_ARENA / sizeof(tp_value))
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "list of %zu items is too long", n);
    tp_list *l = tp_rt_alloc(rt, sizeof *l);
    l->n = n;
    l->items = n ? tp_rt_alloc(rt, n * sizeof(tp_value)) : NULL;
    return l;
}

tp_dict *tp_dict_new(tp_rt *rt, size_t cap) {
    tp_dict *d = tp_rt_alloc(rt, sizeof *d);
    d->cap = cap ? cap : 4;
    d->keys = tp_rt_alloc(rt, d->cap * sizeof(tp_value));
    d->vals = tp_rt_alloc(rt, d->cap * sizeof(tp_value));
    return d;
}

long tp_dict_find(const tp_dict *d, tp_value key) {
    for (size_t i = 0; i < d->n; i++)
        if (tp_equal(d->keys[i], key)) return (long)i;
    return -1;
}

long tp_dict_find_str(const tp_dict *d, const char *s, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].kind == TV_STR && d->keys[i].n == n && memcmp(d->keys[i].u.s, s, n) == 0)
            return (long)i;
    return -1;
}

void tp_dict_set(tp_rt *rt, tp_dict *d, tp_value key, tp_value val) {
    long i = tp_dict_find(d, key);
    if (i >= 0) {
        d->vals[i] = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap * 2;
        tp_value *k = tp_rt_alloc(rt, cap * sizeof(tp_value));
        tp_value *v = tp_rt_alloc(rt, cap * sizeof(tp_value));
        memcpy(k, d->keys, d->n * sizeof(tp_value));
        memcpy(v, d->vals, d->n * sizeof(tp_value));
        d->keys = k, d->vals = v, d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = val;
}

/* ---- Python semantics ----------------------------------------------------------------------- */

bool tp_truthy(tp_value v) {
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return false;
    case TV_BOOL:
        return v.u.b;
    case TV_INT:
        return v.u.i != 0;
    case TV_FLOAT:
        return v.u.f != 0.0;
    case TV_STR:
        return v.n != 0;
    case TV_LIST:
        return v.u.list->n != 0;
    case TV_DICT:
        return v.u.dict->n != 0;
    default:
        return true;
    }
}

static bool is_num(tp_value v) {
    return v.kind == TV_INT || v.kind == TV_BOOL || v.kind == TV_FLOAT;
}
static double num_f(tp_value v) {
    return v.kind == TV_FLOAT ? v.u.f : v.kind == TV_INT ? (double)v.u.i : (double)v.u.b;
}

_Thread_local tp_rt *tp_current_rt;

/* Values built in a loop (`set ns.x = [ns.x]`) can nest without bound: recursion over them is
 * capped and fails the render that is running on this thread. */
static void check_depth(int depth) {
    if (depth > TP_MAX_DEPTH && tp_current_rt)
        tp_rt_fail(tp_current_rt, BRISK_ERR_UNSUPPORTED, "a value nests deeper than %d levels",
                   TP_MAX_DEPTH);
}

static bool equal_rec(tp_value a, tp_value b, int depth);
bool tp_equal(tp_value a, tp_value b) {
    return equal_rec(a, b, 0);
}

static bool equal_rec(tp_value a, tp_value b, int depth) {
    check_depth(depth);
    if (is_num(a) && is_num(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT)
            return (a.kind == TV_INT ? a.u.i : a.u.b) == (b.kind == TV_INT ? b.u.i : b.u.b);
        return num_f(a) == num_f(b);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE:
        return true;
    case TV_STR:
        return a.n == b.n && memcmp(a.u.s, b.u.s, a.n) == 0;
    case TV_LIST:
        if (a.u.list->n != b.u.list->n) return false;
        for (size_t i = 0; i < a.u.list->n; i++)
            if (!equal_rec(a.u.list->items[i], b.u.list->items[i], depth + 1)) return false;
        return true;
    case TV_DICT:
        if (a.u.dict->n != b.u.dict->n) return false;
        for (size_t i = 0; i < a.u.dict->n; i++) {
            long j = tp_dict_find(b.u.dict, a.u.dict->keys[i]);
            if (j < 0 || !equal_rec(a.u.dict->vals[i], b.u.dict->vals[j], depth + 1)) return false;
        }
        return true;
    case TV_NS:
        return a.u.dict == b.u.dict;
    case TV_MACRO:
        return a.u.macro == b.u.macro;
    case TV_FUNC:
        return a.u.func == b.u.func;
    case TV_LOOP:
        return a.u.loop == b.u.loop;
    default:
        return false;
    }
}

const char *tp_type_name(tp_value v) {
    switch (v.kind) {
    case TV_UNDEF:
        return "Undefined";
    case TV_NONE:
        return "NoneType";
    case TV_BOOL:
        return "bool";
    case TV_INT:
        return "int";
    case TV_FLOAT:
        return "float";
    case TV_STR:
        return "str";
    case TV_LIST:
        return v.u.list->tuple ? "tuple" : "list";
    case TV_DICT:
        return "dict";
    case TV_NS:
        return "Namespace";
    case TV_MACRO:
        return "Macro";
    case TV_FUNC:
        return "function";
    case TV_LOOP:
        return "LoopContext";
    }
    return "?";
}

static int compare_rec(tp_rt *rt, tp_value a, tp_value b, int depth);
int tp_compare(tp_rt *rt, tp_value a, tp_value b) {
    return compare_rec(rt, a, b, 0);
}

static int compare_rec(tp_rt *rt, tp_value a, tp_value b, int depth) {
    check_depth(depth);
    if (is_num(a) && is_num(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT) {
            int64_t x = a.kind == TV_INT ? a.u.i : a.u.b, y = b.kind == TV_INT ? b.u.i : b.u.b;
            return (x > y) - (x < y);
        }
        double x = num_f(a), y = num_f(b);
        return (x > y) - (x < y);
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        size_t n = a.n < b.n ? a.n : b.n;
        int c = memcmp(a.u.s, b.u.s, n); /* UTF-8 byte order = code point order */
        if (c) return c < 0 ? -1 : 1;
        return (a.n > b.n) - (a.n < b.n);
    }
    if (a.kind == TV_LIST && b.kind == TV_LIST) {
        size_t n = a.u.list->n < b.u.list->n ? a.u.list->n : b.u.list->n;
        for (size_t i = 0; i < n; i++) {
            if (tp_equal(a.u.list->items[i], b.u.list->items[i])) continue;
            return compare_rec(rt, a.u.list->items[i], b.u.list->items[i], depth + 1);
        }
        return (a.u.list->n > b.u.list->n) - (a.u.list->n < b.u.list->n);
    }
    tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "cannot order '%s' and '%s'", tp_type_name(a),
               tp_type_name(b));
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

size_t tp_utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t tp_utf8_offset(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    while (i < n && cp > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        cp--;
    }
    return i;
}

/* ---- str / repr ----------------------------------------------------------------------------- */

void tp_write_float(tp_rt *rt, tp_buf *b, double f) {
    if (isnan(f)) return tp_buf_puts(rt, b, "nan");
    if (isinf(f)) return tp_buf_puts(rt, b, f < 0 ? "-inf" : "inf");
    /* Shortest digits that round-trip, then Python's layout: plain for 1e-4 <= |f| < 1e16. */
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    char digits[24];
    int nd = 0, neg = tmp[0] == '-';
    const char *p = tmp + neg;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) tp_buf_put(rt, b, "-", 1);
    if (exp10 >= 16 || exp10 < -4) {
        tp_buf_put(rt, b, digits, 1);
        if (nd > 1) {
            tp_buf_put(rt, b, ".", 1);
            tp_buf_put(rt, b, digits + 1, (size_t)nd - 1);
        }
        tp_buf_printf(rt, b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        tp_buf_put(rt, b, "0.", 2);
        for (int i = 0; i < -exp10 - 1; i++) tp_buf_put(rt, b, "0", 1);
        tp_buf_put(rt, b, digits, (size_t)nd);
    } else {
        int intd = exp10 + 1;
        for (int i = 0; i < intd; i++) tp_buf_put(rt, b, i < nd ? &digits[i] : "0", 1);
        tp_buf_put(rt, b, ".", 1);
        if (nd > intd)
            tp_buf_put(rt, b, digits + intd, (size_t)(nd - intd));
        else
            tp_buf_put(rt, b, "0", 1);
    }
}

static void write_str_repr(tp_rt *rt, tp_buf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    tp_buf_put(rt, b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q || c == '\\') {
            tp_buf_put(rt, b, "\\", 1);
            tp_buf_put(rt, b, s + i, 1);
        } else if (c == '\n')
            tp_buf_put(rt, b, "\\n", 2);
        else if (c == '\r')
            tp_buf_put(rt, b, "\\r", 2);
        else if (c == '\t')
            tp_buf_put(rt, b, "\\t", 2);
        else if (c < 0x20 || c == 0x7f)
            tp_buf_printf(rt, b, "\\x%02x", c);
        else
            tp_buf_put(rt, b, s + i, 1);
    }
    tp_buf_put(rt, b, &q, 1);
}

static void repr_rec(tp_rt *rt, tp_buf *b, tp_value v, int depth);

static void write_dict_repr(tp_rt *rt, tp_buf *b, const tp_dict *d, int depth) {
    tp_buf_put(rt, b, "{", 1);
    for (size_t i = 0; i < d->n; i++) {
        if (i) tp_buf_put(rt, b, ", ", 2);
        repr_rec(rt, b, d->keys[i], depth + 1);
        tp_buf_put(rt, b, ": ", 2);
        repr_rec(rt, b, d->vals[i], depth + 1);
    }
    tp_buf_put(rt, b, "}", 1);
}

void tp_write_repr(tp_rt *rt, tp_buf *b, tp_value v) {
    repr_rec(rt, b, v, 0);
}

static void repr_rec(tp_rt *rt, tp_buf *b, tp_value v, int depth) {
    check_depth(depth);
    switch (v.kind) {
    case TV_STR:
        return write_str_repr(rt, b, v.u.s, v.n);
    case TV_UNDEF:
        return; /* str(Undefined) inside a container prints as "" too */
    case TV_LIST: {
        const tp_list *l = v.u.list;
        tp_buf_put(rt, b, l->tuple ? "(" : "[", 1);
        for (size_t i = 0; i < l->n; i++) {
            if (i) tp_buf_put(rt, b, ", ", 2);
            repr_rec(rt, b, l->items[i], depth + 1);
        }
        if (l->tuple && l->n == 1) tp_buf_put(rt, b, ",", 1);
        tp_buf_put(rt, b, l->tuple ? ")" : "]", 1);
        return;
    }
    case TV_DICT:
        return write_dict_repr(rt, b, v.u.dict, depth);
    case TV_NS: /* here, not in tp_write_str: a namespace inside itself stays bounded by depth */
        tp_buf_puts(rt, b, "<Namespace ");
        write_dict_repr(rt, b, v.u.dict, depth);
        return tp_buf_puts(rt, b, ">");
    default:
        return tp_write_str(rt, b, v);
    }
}

void tp_write_str(tp_rt *rt, tp_buf *b, tp_value v) {
    switch (v.kind) {
    case TV_UNDEF:
        return;
    case TV_NONE:
        return tp_buf_puts(rt, b, "None");
    case TV_BOOL:
        return tp_buf_puts(rt, b, v.u.b ? "True" : "False");
    case TV_INT:
        return tp_buf_printf(rt, b, "%lld", (long long)v.u.i);
    case TV_FLOAT:
        return tp_write_float(rt, b, v.u.f);
    case TV_STR:
        return tp_buf_put(rt, b, v.u.s, v.n);
    case TV_LIST:
    case TV_DICT:
    case TV_NS:
        return tp_write_repr(rt, b, v);
    case TV_MACRO:
        return tp_buf_puts(rt, b, "<Macro>");
    case TV_FUNC:
        return tp_buf_puts(rt, b, "<function>");
    case TV_LOOP:
        return tp_buf_puts(rt, b, "<LoopContext>");
    }
}

tp_value tp_to_str(tp_rt *rt, tp_value v) {
    if (v.kind == TV_STR) return v;
    tp_buf b = {0};
    tp_write_str(rt, &b, v);
    return tp_buf_value(&b);
}

/* ---- JSON out: Python json.dumps(ensure_ascii=False) ---------------------------------------- */

static void write_json_str(tp_rt *rt, tp_buf *b, const char *s, size_t n) {
    tp_buf_put(rt, b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            }
        }
        if (!esc) continue;
        tp_buf_put(rt, b, s + run, i - run);
        tp_buf_puts(rt, b, esc);
        run = i + 1;
    }
    tp_buf_put(rt, b, s + run, n - run);
    tp_buf_put(rt, b, "\"", 1);
}

static void json_newline(tp_rt *rt, tp_buf *b, int indent, int level) {
    tp_buf_put(rt, b, "\n", 1);
    for (int i = 0; i < indent * level; i++) tp_buf_put(rt, b, " ", 1);
}

static void write_json(tp_rt *rt, tp_buf *b, tp_value v, int indent, bool sort, int level) {
    if (level > TP_MAX_NEST) tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "tojson: nesting too deep");
    switch (v.kind) {
    case TV_NONE:
        return tp_buf_puts(rt, b, "null");
    case TV_BOOL:
        return tp_buf_puts(rt, b, v.u.b ? "true" : "false");
    case TV_INT:
        return tp_write_str(rt, b, v);
    case TV_FLOAT:
        if (isnan(v.u.f)) return tp_buf_puts(rt, b, "NaN");
        if (isinf(v.u.f)) return tp_buf_puts(rt, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        return tp_write_float(rt, b, v.u.f);
    case TV_STR:
        return write_json_str(rt, b, v.u.s, v.n);
    case TV_LIST: {
        const tp_list *l = v.u.list;
        if (l->n == 0) return tp_buf_puts(rt, b, "[]");
        tp_buf_put(rt, b, "[", 1);
        for (size_t i = 0; i < l->n; i++) {
            if (i) tp_buf_put(rt, b, indent >= 0 ? "," : ", ", indent >= 0 ? 1 : 2);
            if (indent >= 0) json_newline(rt, b, indent, level + 1);
            write_json(rt, b, l->items[i], indent, sort, level + 1);
        }
        if (indent >= 0) json_newline(rt, b, indent, level);
        return tp_buf_put(rt, b, "]", 1);
    }
    case TV_DICT: {
        const tp_dict *d = v.u.dict;
        if (d->n == 0) return tp_buf_puts(rt, b, "{}");
        size_t *order = tp_rt_alloc(rt, d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) {
            if (d->keys[i].kind != TV_STR)
                tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "tojson: dict keys must be strings, not %s",
                           tp_type_name(d->keys[i]));
            order[i] = i;
        }
        if (sort) /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i;
                     j > 0 && tp_compare(rt, d->keys[order[j - 1]], d->keys[order[j]]) > 0; j--) {
                    size_t t = order[j];
                    order[j] = order[j - 1], order[j - 1] = t;
                }
        tp_buf_put(rt, b, "{", 1);
        for (size_t k = 0; k < d->n; k++) {
            size_t i = order[k];
            if (k) tp_buf_put(rt, b, indent >= 0 ? "," : ", ", indent >= 0 ? 1 : 2);
            if (indent >= 0) json_newline(rt, b, indent, level + 1);
            write_json_str(rt, b, d->keys[i].u.s, d->keys[i].n);
            tp_buf_put(rt, b, ": ", 2);
            write_json(rt, b, d->vals[i], indent, sort, level + 1);
        }
        if (indent >= 0) json_newline(rt, b, indent, level);
        return tp_buf_put(rt, b, "}", 1);
    }
    default:
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "tojson: Object of type %s is not JSON serializable",
                   tp_type_name(v));
    }
}

void tp_write_json(tp_rt *rt, tp_buf *b, tp_value v, int indent, bool sort_keys) {
    write_json(rt, b, v, indent, sort_keys, 0);
}

/* ---- JSON in: cJSON parses; a side scan recovers int-vs-float, which cJSON does not keep ---- */

typedef struct num_scan {
    const char *p, *end;
} num_scan;

/* Advances to the next number token of the JSON text (skipping strings); returns its text. */
static bool next_number(num_scan *s, const char **start, size_t *len) {
    while (s->p < s->end) {
        char c = *s->p;
        if (c == '"') {
            for (s->p++; s->p < s->end && *s->p != '"'; s->p++)
                if (*s->p == '\\') s->p++;
            s->p++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            *start = s->p;
            while (s->p < s->end && strchr("+-0123456789.eE", *s->p)) s->p++;
            *len = (size_t)(s->p - *start);
            return true;
        } else {
            s->p++;
        }
    }
    return false;
}

static tp_value from_cjson(tp_rt *rt, const cJSON *j, num_scan *s, int depth) {
    if (depth > TP_MAX_NEST) tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "JSON nesting too deep");
    if (cJSON_IsNull(j)) return tp_none();
    if (cJSON_IsBool(j)) return tp_bool(cJSON_IsTrue(j));
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        return tp_str(tp_rt_strdup(rt, j->valuestring, n), n);
    }
    if (cJSON_IsNumber(j)) {
        const char *t = NULL;
        size_t n = 0;
        bool found = next_number(s, &t, &n);
        bool is_float = !found || memchr(t, '.', n) || memchr(t, 'e', n) || memchr(t, 'E', n);
        if (!is_float && n < 19) return tp_int(strtoll(t, NULL, 10));
        if (!is_float)
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "JSON integer %.*s is too large", (int)n, t);
        return tp_float(j->valuedouble);
    }
    if (cJSON_IsArray(j)) {
        tp_list *l = tp_list_new(rt, (size_t)cJSON_GetArraySize(j));
        size_t i = 0;
        for (const cJSON *c = j->child; c; c = c->next)
            l->items[i++] = from_cjson(rt, c, s, depth + 1);
        return (tp_value){.kind = TV_LIST, .u.list = l};
    }
    tp_dict *d = tp_dict_new(rt, (size_t)cJSON_GetArraySize(j));
    for (const cJSON *c = j->child; c; c = c->next) {
        size_t n = strlen(c->string);
        tp_value v = from_cjson(rt, c, s, depth + 1);
        tp_dict_set(rt, d, tp_str(tp_rt_strdup(rt, c->string, n), n), v);
    }
    return (tp_value){.kind = TV_DICT, .u.dict = d};
}

brisk_status tp_parse_json(tp_rt *rt, const char *text, size_t len, tp_value *out,
                           const char *what) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!j) {
        size_t off = end ? (size_t)(end - text) : 0;
        snprintf(rt->err.msg, sizeof rt->err.msg, "%s: invalid JSON near byte %zu", what, off);
        return BRISK_ERR_INVALID_ARG;
    }
    jmp_buf saved; /* conversion may unwind; catch it here so the cJSON tree is freed */
    memcpy(saved, rt->err.jb, sizeof saved);
    brisk_status st = BRISK_OK;
    if (setjmp(rt->err.jb) == 0) {
        num_scan s = {text, text + len};
        *out = from_cjson(rt, j, &s, 0);
    } else {
        st = rt->err.st;
    }
    memcpy(rt->err.jb, saved, sizeof saved);
    cJSON_Delete(j);
    return st;
}
