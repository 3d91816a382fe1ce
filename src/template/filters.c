/* filters.c: Jinja filters and tests, Python str/dict methods, and the global functions
 * (range, raise_exception, strftime_now, namespace, dict) that real chat templates use. */
#include "template/tmpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#define NAME_IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)

/* ---- arguments ------------------------------------------------------------------------------ */

/* Argument `idx` (positional) or `kw` (keyword); `def` when absent. */
static tp_value arg(const tp_args *a, size_t idx, const char *kw, tp_value def) {
    if (idx < a->n_pos) return a->pos[idx];
    if (kw && a->kw) {
        long i = tp_dict_find_str(a->kw, kw, strlen(kw));
        if (i >= 0) return a->kw->vals[i];
    }
    return def;
}

static int64_t int_arg(tp_rt *rt, const tp_args *a, size_t idx, const char *kw, int64_t def) {
    tp_value v = arg(a, idx, kw, tp_int(def));
    if (v.kind == TV_BOOL) return v.u.b;
    if (v.kind != TV_INT)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "'%s' must be an integer, not %s", kw,
                   tp_type_name(v));
    return v.u.i;
}

static tp_value str_arg(tp_rt *rt, const tp_args *a, size_t idx, const char *kw) {
    tp_value v = arg(a, idx, kw, tp_undef(NULL));
    if (v.kind != TV_STR)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "argument '%s' must be a string, not %s", kw,
                   tp_type_name(v));
    return v;
}

static tp_value list_value(tp_list *l) {
    return (tp_value){.kind = TV_LIST, .u.list = l};
}

static tp_value need_str(tp_rt *rt, tp_value v, const char *what) {
    if (v.kind == TV_UNDEF) return tp_str("", 0);
    if (v.kind != TV_STR) {
        if (what)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "%s: expected a string, got %s", what,
                       tp_type_name(v));
        return tp_to_str(rt, v);
    }
    return v;
}

/* ---- sequences ------------------------------------------------------------------------------ */

static size_t py_len(tp_rt *rt, tp_value v) {
    switch (v.kind) {
    case TV_UNDEF:
        return 0;
    case TV_STR:
        return tp_utf8_len(v.u.s, v.n);
    case TV_LIST:
        return v.u.list->n;
    case TV_DICT:
    case TV_NS:
        return v.u.dict->n;
    default:
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "object of type '%s' has no len()", tp_type_name(v));
    }
}

/* Jinja's attribute getter: "a.b" and "0" walk into nested values. */
static tp_value get_path(tp_rt *rt, tp_value v, tp_value path) {
    if (path.kind == TV_INT) return tp_get_item(rt, v, path);
    if (path.kind != TV_STR) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "attribute must be a string");
    const char *p = path.u.s, *end = p + path.n;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++) digits &= *q >= '0' && *q <= '9';
        v = digits ? tp_get_item(rt, v, tp_int(strtoll(p, NULL, 10)))
                   : tp_get_item(rt, v, tp_str(p, (size_t)(dot - p)));
        p = dot + 1;
    }
    return v;
}

static tp_value sort_key(tp_rt *rt, tp_value v, tp_value attr, bool case_sensitive) {
    if (attr.kind != TV_UNDEF && attr.kind != TV_NONE) v = get_path(rt, v, attr);
    if (!case_sensitive && v.kind == TV_STR) return tp_str_case(rt, v, TP_CASE_LOWER);
    return v;
}

/* Stable merge sort by precomputed keys (Python's sort is stable). */
static void merge_sort(tp_rt *rt, tp_value *items, tp_value *keys, size_t n, bool reverse,
                       tp_value *ti, tp_value *tk) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(rt, items, keys, h, reverse, ti, tk);
    merge_sort(rt, items + h, keys + h, n - h, reverse, ti, tk);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c = tp_compare(rt, keys[j], keys[i]);
        bool take_right = reverse ? c > 0 : c < 0;
        if (take_right)
            ti[k] = items[j], tk[k++] = keys[j++];
        else
            ti[k] = items[i], tk[k++] = keys[i++];
    }
    while (i < h) ti[k] = items[i], tk[k++] = keys[i++];
    while (j < n) ti[k] = items[j], tk[k++] = keys[j++];
    memcpy(items, ti, n * sizeof *ti);
    memcpy(keys, tk, n * sizeof *tk);
}

static tp_value select_items(tp_rt *rt, tp_value seq, tp_args *a, bool by_attr, bool keep) {
    const tp_list *l = tp_iterate(rt, seq);
    tp_list *out = tp_list_new(rt, l->n);
    out->n = 0;
    size_t first = by_attr ? 1 : 0;
    tp_value test = arg(a, first, NULL, tp_undef(NULL));
    tp_args rest = {a->pos + (a->n_pos > first + 1 ? first + 1 : a->n_pos),
                    a->n_pos > first + 1 ? a->n_pos - first - 1 : 0, a->kw};
    for (size_t i = 0; i < l->n; i++) {
        tp_value v = l->items[i];
        if (by_attr) v = get_path(rt, v, arg(a, 0, NULL, tp_undef(NULL)));
        bool ok;
        if (test.kind == TV_UNDEF)
            ok = tp_truthy(v);
        else if (test.kind == TV_STR)
            ok = tp_apply_test(rt, test.u.s, test.n, v, &rest);
        else
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "test name must be a string");
        if (ok == keep) out->items[out->n++] = l->items[i];
    }
    return list_value(out);
}

static tp_value do_indent(tp_rt *rt, tp_value s, tp_args *a) {
    tp_value w = arg(a, 0, "width", tp_int(4));
    bool first = tp_truthy(arg(a, 1, "first", tp_bool(false)));
    bool blank = tp_truthy(arg(a, 2, "blank", tp_bool(false)));
    tp_buf ind = {0};
    if (w.kind == TV_STR)
        tp_buf_put(rt, &ind, w.u.s, w.n);
    else
        for (int64_t i = 0; i < int_arg(rt, a, 0, "width", 4) && i < 1000; i++)
            tp_buf_put(rt, &ind, " ", 1);
    /* Jinja appends "\n" then splits lines; each line but the first gets the indent */
    tp_buf b = {0};
    if (first) tp_buf_put(rt, &b, ind.p, ind.n);
    size_t start = 0;
    bool first_line = true;
    for (size_t i = 0; i <= s.n; i++) {
        if (i < s.n && s.u.s[i] != '\n' && s.u.s[i] != '\r') continue;
        if (i == s.n && start == s.n && !first_line) break;
        size_t len = i - start;
        if (!first_line) {
            tp_buf_put(rt, &b, "\n", 1);
            if (len || blank) tp_buf_put(rt, &b, ind.p, ind.n);
        }
        tp_buf_put(rt, &b, s.u.s + start, len);
        first_line = false;
        if (i < s.n && s.u.s[i] == '\r' && i + 1 < s.n && s.u.s[i + 1] == '\n') i++;
        start = i + 1;
    }
    return tp_buf_value(&b);
}

static tp_value do_round(tp_rt *rt, tp_value v, tp_args *a) {
    if (v.kind != TV_INT && v.kind != TV_FLOAT && v.kind != TV_BOOL)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "round: expected a number, got %s", tp_type_name(v));
    int64_t prec = int_arg(rt, a, 0, "precision", 0);
    tp_value method = arg(a, 1, "method", tp_str("common", 6));
    double x = v.kind == TV_FLOAT ? v.u.f : (double)(v.kind == TV_INT ? v.u.i : v.u.b);
    double scale = pow(10.0, (double)prec);
    if (method.kind == TV_STR && method.n == 5 && !memcmp(method.u.s, "floor", 5))
        return tp_float(floor(x * scale) / scale);
    if (method.kind == TV_STR && method.n == 4 && !memcmp(method.u.s, "ceil", 4))
        return tp_float(ceil(x * scale) / scale);
    return tp_float(prec == 0 ? nearbyint(x)
                              : nearbyint(x * scale) / scale); /* round half to even */
}

static tp_value to_int(tp_rt *rt, tp_value v, tp_value def) {
    switch (v.kind) {
    case TV_INT:
        return v;
    case TV_BOOL:
        return tp_int(v.u.b);
    case TV_FLOAT:
        if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18) return def;
        return tp_int((int64_t)v.u.f);
    case TV_STR: {
        char tmp[64];
        tp_value t = tp_str_strip(rt, v, tp_undef(NULL), 3);
        if (t.n == 0 || t.n >= sizeof tmp) return def;
        memcpy(tmp, t.u.s, t.n);
        tmp[t.n] = 0;
        char *end;
        long long i = strtoll(tmp, &end, 10);
        if (*end == 0) return tp_int(i);
        double f = strtod(tmp, &end);
        if (*end == 0 && isfinite(f) && fabs(f) < 9.2e18) return tp_int((int64_t)f);
        return def;
    }
    default:
        return def;
    }
}

static tp_value to_float(tp_rt *rt, tp_value v, tp_value def) {
    switch (v.kind) {
    case TV_INT:
        return tp_float((double)v.u.i);
    case TV_BOOL:
        return tp_float(v.u.b);
    case TV_FLOAT:
        return v;
    case TV_STR: {
        char tmp[64];
        tp_value t = tp_str_strip(rt, v, tp_undef(NULL), 3);
        if (t.n == 0 || t.n >= sizeof tmp) return def;
        memcpy(tmp, t.u.s, t.n);
        tmp[t.n] = 0;
        char *end;
        double f = strtod(tmp, &end);
        return *end == 0 ? tp_float(f) : def;
    }
    default:
        return def;
    }
}

/* ---- filters -------------------------------------------------------------------------------- */

tp_value tp_apply_filter(tp_rt *rt, const char *name, size_t len, tp_value v, tp_args *a) {
    tp_value none = tp_undef(NULL);
    if (NAME_IS("default") || NAME_IS("d")) {
        bool boolean = tp_truthy(arg(a, 1, "boolean", tp_bool(false)));
        if (v.kind == TV_UNDEF || (boolean && !tp_truthy(v)))
            return arg(a, 0, "default_value", tp_str("", 0));
        return v;
    }
    if (NAME_IS("length") || NAME_IS("count")) return tp_int((int64_t)py_len(rt, v));
    if (NAME_IS("string")) return tp_to_str(rt, v);
    if (NAME_IS("safe")) return v;
    if (NAME_IS("tojson")) {
        tp_value ind = arg(a, 0, "indent", tp_none());
        if (tp_truthy(arg(a, 2, "ensure_ascii", tp_bool(false))))
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "tojson: ensure_ascii=True is not supported");
        if (ind.kind != TV_NONE && ind.kind != TV_INT)
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "tojson: indent must be an integer");
        tp_buf b = {0};
        int indent = ind.kind == TV_INT ? (int)(ind.u.i < 0 ? 0 : ind.u.i > 64 ? 64 : ind.u.i) : -1;
        tp_write_json(rt, &b, v, indent, tp_truthy(arg(a, 3, "sort_keys", tp_bool(false))));
        return tp_buf_value(&b);
    }
    if (NAME_IS("int")) return to_int(rt, v, arg(a, 0, "default", tp_int(0)));
    if (NAME_IS("float")) return to_float(rt, v, arg(a, 0, "default", tp_float(0.0)));
    if (NAME_IS("abs")) {
        if (v.kind == TV_INT) return v.u.i == INT64_MIN ? v : tp_int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.kind == TV_BOOL) return tp_int(v.u.b);
        if (v.kind == TV_FLOAT) return tp_float(fabs(v.u.f));
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "bad operand type for abs(): '%s'", tp_type_name(v));
    }
    if (NAME_IS("round")) return do_round(rt, v, a);
    if (NAME_IS("list")) {
        const tp_list *l = tp_iterate(rt, v);
        tp_list *c = tp_list_new(rt, l->n);
        if (l->n) memcpy(c->items, l->items, l->n * sizeof(tp_value));
        return list_value(c);
    }
    if (NAME_IS("items")) {
        if (v.kind == TV_UNDEF) return list_value(tp_list_new(rt, 0));
        if (v.kind != TV_DICT && v.kind != TV_NS)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "Can only get item pairs from a mapping.");
        bool f = false;
        return tp_call_method(rt, (tp_value){.kind = TV_DICT, .u.dict = v.u.dict}, "items", 5,
                              &(tp_args){0}, &f);
    }
    if (NAME_IS("first") || NAME_IS("last")) {
        const tp_list *l = tp_iterate(rt, v);
        if (l->n == 0) return none;
        return l->items[name[0] == 'f' ? 0 : l->n - 1];
    }
    if (NAME_IS("reverse")) {
        if (v.kind == TV_STR) {
            const tp_list *l = tp_iterate(rt, v);
            tp_buf b = {0};
            for (size_t i = l->n; i-- > 0;) tp_buf_put(rt, &b, l->items[i].u.s, l->items[i].n);
            return tp_buf_value(&b);
        }
        const tp_list *l = tp_iterate(rt, v);
        tp_list *c = tp_list_new(rt, l->n);
        for (size_t i = 0; i < l->n; i++) c->items[i] = l->items[l->n - 1 - i];
        return list_value(c);
    }
    if (NAME_IS("join")) {
        tp_value sep = arg(a, 0, "d", tp_str("", 0));
        tp_value attr = arg(a, 1, "attribute", none);
        const tp_list *l = tp_iterate(rt, v);
        tp_buf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (i) tp_write_str(rt, &b, sep);
            tp_write_str(rt, &b,
                         attr.kind == TV_UNDEF || attr.kind == TV_NONE
                             ? l->items[i]
                             : get_path(rt, l->items[i], attr));
        }
        return tp_buf_value(&b);
    }
    if (NAME_IS("map")) {
        const tp_list *l = tp_iterate(rt, v);
        tp_list *out = tp_list_new(rt, l->n);
        tp_value attr = arg(a, SIZE_MAX, "attribute", none);
        tp_value def = arg(a, SIZE_MAX, "default", none);
        tp_value fname = arg(a, 0, NULL, none);
        if (attr.kind == TV_UNDEF && fname.kind != TV_STR)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "map: needs attribute= or a filter name");
        tp_args rest = {a->n_pos > 1 ? a->pos + 1 : NULL, a->n_pos > 1 ? a->n_pos - 1 : 0, NULL};
        for (size_t i = 0; i < l->n; i++) {
            if (attr.kind != TV_UNDEF) {
                tp_value x = get_path(rt, l->items[i], attr);
                out->items[i] = x.kind == TV_UNDEF && def.kind != TV_UNDEF ? def : x;
            } else {
                out->items[i] = tp_apply_filter(rt, fname.u.s, fname.n, l->items[i], &rest);
            }
        }
        return list_value(out);
    }
    if (NAME_IS("select") || NAME_IS("reject"))
        return select_items(rt, v, a, false, name[0] == 's');
    if (NAME_IS("selectattr") || NAME_IS("rejectattr"))
        return select_items(rt, v, a, true, name[0] == 's');
    if (NAME_IS("unique") || NAME_IS("sort")) {
        bool is_sort = name[0] == 's';
        bool cs = tp_truthy(arg(a, is_sort ? 1 : 0, "case_sensitive", tp_bool(false)));
        tp_value attr = arg(a, is_sort ? 2 : 1, "attribute", none);
        const tp_list *l = tp_iterate(rt, v);
        tp_list *out = tp_list_new(rt, l->n);
        tp_value *keys = tp_rt_alloc(rt, (l->n + 1) * sizeof(tp_value));
        out->n = 0;
        for (size_t i = 0; i < l->n; i++) {
            tp_value k = sort_key(rt, l->items[i], attr, cs);
            bool seen = false;
            for (size_t j = 0; !is_sort && j < out->n && !seen; j++) seen = tp_equal(keys[j], k);
            if (seen) continue;
            keys[out->n] = k;
            out->items[out->n++] = l->items[i];
        }
        if (is_sort) {
            tp_value *ti = tp_rt_alloc(rt, (l->n + 1) * sizeof(tp_value));
            tp_value *tk = tp_rt_alloc(rt, (l->n + 1) * sizeof(tp_value));
            merge_sort(rt, out->items, keys, out->n,
                       tp_truthy(arg(a, 0, "reverse", tp_bool(false))), ti, tk);
        }
        return list_value(out);
    }
    if (NAME_IS("min") || NAME_IS("max") || NAME_IS("sum")) {
        const tp_list *l = tp_iterate(rt, v);
        if (name[1] == 'u') {
            tp_value attr = arg(a, 0, "attribute", none), acc = arg(a, 1, "start", tp_int(0));
            for (size_t i = 0; i < l->n; i++) {
                tp_value x = attr.kind == TV_UNDEF ? l->items[i] : get_path(rt, l->items[i], attr);
                if ((acc.kind != TV_INT && acc.kind != TV_FLOAT) ||
                    (x.kind != TV_INT && x.kind != TV_FLOAT && x.kind != TV_BOOL))
                    tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "sum: values must be numbers");
                if (acc.kind == TV_INT && x.kind != TV_FLOAT)
                    acc = tp_int(acc.u.i + (x.kind == TV_INT ? x.u.i : x.u.b));
                else
                    acc = tp_float(
                        (acc.kind == TV_INT ? (double)acc.u.i : acc.u.f) +
                        (x.kind == TV_FLOAT ? x.u.f : (double)(x.kind == TV_INT ? x.u.i : x.u.b)));
            }
            return acc;
        }
        if (l->n == 0) return none;
        tp_value best = l->items[0];
        bool cs = tp_truthy(arg(a, 0, "case_sensitive", tp_bool(false)));
        tp_value attr = arg(a, 1, "attribute", none);
        for (size_t i = 1; i < l->n; i++) {
            int c =
                tp_compare(rt, sort_key(rt, l->items[i], attr, cs), sort_key(rt, best, attr, cs));
            if (name[1] == 'i' ? c < 0 : c > 0) best = l->items[i];
        }
        return best;
    }
    if (NAME_IS("wordcount")) {
        tp_value s = need_str(rt, v, NULL);
        int64_t n = 0;
        bool in_word = false;
        for (size_t i = 0; i < s.n;) {
            int32_t c;
            i += tp_utf8_decode(s.u.s, s.n, i, &c);
            utf8proc_category_t cat = utf8proc_category(c);
            bool w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                     (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) ||
                     cat == UTF8PROC_CATEGORY_MN;
            if (w && !in_word) n++;
            in_word = w;
        }
        return tp_int(n);
    }
    /* the rest take a string (Jinja converts the value with str() first) */
    tp_value s = need_str(rt, v, NULL);
    if (NAME_IS("trim")) return tp_str_strip(rt, s, arg(a, 0, "chars", none), 3);
    if (NAME_IS("upper")) return tp_str_case(rt, s, TP_CASE_UPPER);
    if (NAME_IS("lower")) return tp_str_case(rt, s, TP_CASE_LOWER);
    if (NAME_IS("title")) return tp_str_case(rt, s, TP_CASE_JINJA_TITLE);
    if (NAME_IS("capitalize")) return tp_str_case(rt, s, TP_CASE_CAPITALIZE);
    if (NAME_IS("replace"))
        return tp_str_replace(
            rt, s, tp_to_str(rt, arg(a, 0, "old", none)), tp_to_str(rt, arg(a, 1, "new", none)),
            arg(a, 2, "count", tp_none()).kind == TV_INT ? arg(a, 2, "count", none).u.i : -1);
    if (NAME_IS("indent")) return do_indent(rt, s, a);
    tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "no filter named '%.*s'", (int)len, name);
}

/* ---- tests ---------------------------------------------------------------------------------- */

bool tp_apply_test(tp_rt *rt, const char *name, size_t len, tp_value v, tp_args *a) {
    tp_value x = arg(a, 0, NULL, tp_undef(NULL));
    if (NAME_IS("defined")) return v.kind != TV_UNDEF;
    if (NAME_IS("undefined")) return v.kind == TV_UNDEF;
    if (NAME_IS("none")) return v.kind == TV_NONE;
    if (NAME_IS("string")) return v.kind == TV_STR;
    if (NAME_IS("number")) return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL;
    if (NAME_IS("integer")) return v.kind == TV_INT;
    if (NAME_IS("float")) return v.kind == TV_FLOAT;
    if (NAME_IS("boolean")) return v.kind == TV_BOOL;
    if (NAME_IS("true")) return v.kind == TV_BOOL && v.u.b;
    if (NAME_IS("false")) return v.kind == TV_BOOL && !v.u.b;
    if (NAME_IS("mapping")) return v.kind == TV_DICT;
    if (NAME_IS("iterable"))
        return v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_DICT || v.kind == TV_UNDEF;
    if (NAME_IS("sequence")) return v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_DICT;
    if (NAME_IS("callable")) return v.kind == TV_MACRO || v.kind == TV_FUNC;
    if (NAME_IS("lower") || NAME_IS("upper")) {
        if (v.kind != TV_STR) return false;
        return tp_equal(v, tp_str_case(rt, v, name[0] == 'l' ? TP_CASE_LOWER : TP_CASE_UPPER));
    }
    if (NAME_IS("even") || NAME_IS("odd") || NAME_IS("divisibleby")) {
        if (v.kind != TV_INT && v.kind != TV_BOOL)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "test '%.*s' needs an integer", (int)len, name);
        int64_t i = v.kind == TV_INT ? v.u.i : v.u.b;
        if (NAME_IS("even")) return i % 2 == 0;
        if (NAME_IS("odd")) return i % 2 != 0;
        int64_t d = int_arg(rt, a, 0, "num", 1);
        if (d == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "integer division or modulo by zero");
        return d == -1 || i % d == 0;
    }
    if (NAME_IS("equalto") || NAME_IS("eq") || NAME_IS("==") || NAME_IS("sameas")) {
        if (NAME_IS("sameas") && (v.kind == TV_LIST || v.kind == TV_DICT))
            return v.kind == x.kind && v.u.list == x.u.list;
        return tp_equal(v, x) && (!NAME_IS("sameas") || v.kind == x.kind);
    }
    if (NAME_IS("ne")) return !tp_equal(v, x);
    if (NAME_IS("lt")) return tp_compare(rt, v, x) < 0;
    if (NAME_IS("le")) return tp_compare(rt, v, x) <= 0;
    if (NAME_IS("gt") || NAME_IS("greaterthan")) return tp_compare(rt, v, x) > 0;
    if (NAME_IS("ge")) return tp_compare(rt, v, x) >= 0;
    if (NAME_IS("in")) return tp_contains(rt, x, v);
    tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "no test named '%.*s'", (int)len, name);
}

/* ---- methods -------------------------------------------------------------------------------- */

static bool affix(tp_rt *rt, tp_value s, tp_value p, bool suffix) {
    if (p.kind == TV_LIST) {
        for (size_t i = 0; i < p.u.list->n; i++)
            if (affix(rt, s, p.u.list->items[i], suffix)) return true;
        return false;
    }
    if (p.kind != TV_STR)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "%swith arg must be str or a tuple of str",
                   suffix ? "ends" : "starts");
    if (p.n > s.n) return false;
    return memcmp(s.u.s + (suffix ? s.n - p.n : 0), p.u.s, p.n) == 0;
}

static tp_value str_method(tp_rt *rt, tp_value s, const char *name, size_t len, tp_args *a,
                           bool *found) {
    tp_value none = tp_undef(NULL);
    *found = true;
    if (NAME_IS("strip")) return tp_str_strip(rt, s, arg(a, 0, "chars", none), 3);
    if (NAME_IS("lstrip")) return tp_str_strip(rt, s, arg(a, 0, "chars", none), 1);
    if (NAME_IS("rstrip")) return tp_str_strip(rt, s, arg(a, 0, "chars", none), 2);
    if (NAME_IS("split"))
        return tp_str_split(rt, s, arg(a, 0, "sep", none), int_arg(rt, a, 1, "maxsplit", -1));
    if (NAME_IS("startswith")) return tp_bool(affix(rt, s, arg(a, 0, "prefix", none), false));
    if (NAME_IS("endswith")) return tp_bool(affix(rt, s, arg(a, 0, "suffix", none), true));
    if (NAME_IS("upper")) return tp_str_case(rt, s, TP_CASE_UPPER);
    if (NAME_IS("lower")) return tp_str_case(rt, s, TP_CASE_LOWER);
    if (NAME_IS("title")) return tp_str_case(rt, s, TP_CASE_TITLE);
    if (NAME_IS("capitalize")) return tp_str_case(rt, s, TP_CASE_CAPITALIZE);
    if (NAME_IS("replace"))
        return tp_str_replace(rt, s, str_arg(rt, a, 0, "old"), str_arg(rt, a, 1, "new"),
                              int_arg(rt, a, 2, "count", -1));
    if (NAME_IS("format")) return tp_str_format(rt, s, a);
    if (NAME_IS("join")) {
        const tp_list *l = tp_iterate(rt, arg(a, 0, "iterable", none));
        tp_buf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (l->items[i].kind != TV_STR)
                tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "join: sequence item %zu: expected str", i);
            if (i) tp_buf_put(rt, &b, s.u.s, s.n);
            tp_buf_put(rt, &b, l->items[i].u.s, l->items[i].n);
        }
        return tp_buf_value(&b);
    }
    if (NAME_IS("find") || NAME_IS("count")) {
        tp_value sub = str_arg(rt, a, 0, "sub");
        if (name[0] == 'f') {
            const char *q = tp_str_find(s.u.s, s.n, sub.u.s, sub.n);
            return tp_int(q ? (int64_t)tp_utf8_len(s.u.s, (size_t)(q - s.u.s)) : -1);
        }
        if (sub.n == 0) return tp_int((int64_t)tp_utf8_len(s.u.s, s.n) + 1);
        int64_t k = 0;
        for (const char *p = s.u.s, *q;
             (q = tp_str_find(p, s.n - (size_t)(p - s.u.s), sub.u.s, sub.n)); p = q + sub.n)
            k++;
        return tp_int(k);
    }
    *found = false;
    return none;
}

tp_value tp_call_method(tp_rt *rt, tp_value obj, const char *name, size_t len, tp_args *a,
                        bool *found) {
    *found = false;
    if (obj.kind == TV_STR) return str_method(rt, obj, name, len, a, found);
    if (obj.kind == TV_LOOP && NAME_IS("cycle")) {
        *found = true;
        if (a->n_pos == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "no items for cycling given");
        return a->pos[obj.u.loop->index0 % a->n_pos];
    }
    if (obj.kind != TV_DICT) return tp_undef(NULL);
    const tp_dict *d = obj.u.dict;
    *found = true;
    if (NAME_IS("items") || NAME_IS("keys") || NAME_IS("values")) {
        tp_list *l = tp_list_new(rt, d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (name[0] == 'k')
                l->items[i] = d->keys[i];
            else if (name[0] == 'v')
                l->items[i] = d->vals[i];
            else {
                tp_list *pair = tp_list_new(rt, 2);
                pair->tuple = true;
                pair->items[0] = d->keys[i], pair->items[1] = d->vals[i];
                l->items[i] = list_value(pair);
            }
        }
        return list_value(l);
    }
    if (NAME_IS("get")) {
        long i = tp_dict_find(d, arg(a, 0, "key", tp_none()));
        return i >= 0 ? d->vals[i] : arg(a, 1, "default", tp_none());
    }
    *found = false;
    return tp_undef(NULL);
}

/* ---- global functions ----------------------------------------------------------------------- */

tp_value tp_call_func(tp_rt *rt, int func, tp_args *a) {
    switch (func) {
    case TF_RANGE: {
        int64_t start = 0, stop, stepv = 1;
        if (a->n_pos == 1)
            stop = int_arg(rt, a, 0, "stop", 0);
        else if (a->n_pos == 2 || a->n_pos == 3) {
            start = int_arg(rt, a, 0, "start", 0), stop = int_arg(rt, a, 1, "stop", 0);
            if (a->n_pos == 3) stepv = int_arg(rt, a, 2, "step", 1);
        } else
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "range expected 1 to 3 arguments, got %zu",
                       a->n_pos);
        if (stepv == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "range() arg 3 must not be zero");
        double count = ceil(((double)stop - (double)start) / (double)stepv);
        if (count < 0) count = 0;
        if (count > TP_MAX_RANGE)
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "range() of more than %d items", TP_MAX_RANGE);
        tp_list *l = tp_list_new(rt, (size_t)count);
        for (size_t i = 0; i < l->n; i++) l->items[i] = tp_int(start + (int64_t)i * stepv);
        return list_value(l);
    }
    case TF_RAISE: {
        tp_value msg = tp_to_str(rt, arg(a, 0, "message", tp_str("", 0)));
        snprintf(rt->err.msg, sizeof rt->err.msg, "%.*s", (int)msg.n, msg.u.s);
        rt->err.st = BRISK_ERR_INVALID_ARG;
        rt->raised = true;
        longjmp(rt->err.jb, 1);
    }
    case TF_STRFTIME: {
        tp_value fmt = str_arg(rt, a, 0, "format");
        char cfmt[256], out[512];
        if (fmt.n >= sizeof cfmt)
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "strftime_now: format too long");
        memcpy(cfmt, fmt.u.s, fmt.n);
        cfmt[fmt.n] = 0;
        struct tm tm;
        time_t t = rt->now_override >= 0 ? (time_t)rt->now_override : time(NULL);
        if (rt->now_override >= 0)
            gmtime_r(&t, &tm); /* tests: a fixed UTC instant */
        else
            localtime_r(&t, &tm); /* Python's datetime.now() is local time */
        size_t n = strftime(out, sizeof out, cfmt, &tm);
        return tp_str(tp_rt_strdup(rt, out, n), n);
    }
    case TF_NAMESPACE:
    case TF_DICT: {
        tp_dict *d = tp_dict_new(rt, 4);
        for (size_t i = 0; i < a->n_pos; i++) {
            if (a->pos[i].kind != TV_DICT)
                tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "%s: positional argument must be a mapping",
                           func == TF_DICT ? "dict" : "namespace");
            for (size_t k = 0; k < a->pos[i].u.dict->n; k++)
                tp_dict_set(rt, d, a->pos[i].u.dict->keys[k], a->pos[i].u.dict->vals[k]);
        }
        for (size_t k = 0; a->kw && k < a->kw->n; k++)
            tp_dict_set(rt, d, a->kw->keys[k], a->kw->vals[k]);
        return (tp_value){.kind = func == TF_DICT ? TV_DICT : TV_NS, .u.dict = d};
    }
    }
    tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "unknown function");
}
