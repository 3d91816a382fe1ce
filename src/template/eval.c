/* eval.c: walks the AST: statements write to an output buffer, expressions produce values with
 * Python semantics; scopes follow Jinja (for bodies and macros get their own, if does not). */
#include "template/tmpl.h"

#include <math.h>
#include <string.h>

typedef struct tp_var {
    const char *name;
    size_t len;
    tp_value v;
} tp_var;

struct tp_scope {
    tp_scope *parent;
    tp_var *vars;
    size_t n, cap;
};

typedef struct tp_ctx {
    tp_rt *rt;
    tp_dict *globals;
} tp_ctx;

typedef enum flow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE } flow;

static tp_value eval(tp_ctx *C, const tp_node *n, tp_scope *sc);
static flow exec(tp_ctx *C, const tp_node *n, tp_scope *sc, tp_buf *out);

static const struct {
    const char *name;
    int func;
} BUILTINS[] = {{"range", TF_RANGE},
                {"raise_exception", TF_RAISE},
                {"strftime_now", TF_STRFTIME},
                {"namespace", TF_NAMESPACE},
                {"dict", TF_DICT}};

/* ---- scopes --------------------------------------------------------------------------------- */

static tp_scope *scope_new(tp_rt *rt, tp_scope *parent) {
    tp_scope *s = tp_rt_alloc(rt, sizeof *s);
    s->parent = parent;
    return s;
}

static void scope_set(tp_rt *rt, tp_scope *s, const char *name, size_t len, tp_value v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->vars[i].len == len && memcmp(s->vars[i].name, name, len) == 0) {
            s->vars[i].v = v;
            return;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        tp_var *vars = tp_rt_alloc(rt, cap * sizeof *vars);
        if (s->n) memcpy(vars, s->vars, s->n * sizeof *vars);
        s->vars = vars, s->cap = cap;
    }
    s->vars[s->n++] = (tp_var){name, len, v};
}

static tp_value lookup(tp_ctx *C, tp_scope *s, const char *name, size_t len) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->vars[i].len == len && memcmp(s->vars[i].name, name, len) == 0)
                return s->vars[i].v;
    long g = tp_dict_find_str(C->globals, name, len);
    if (g >= 0) return C->globals->vals[g];
    for (size_t i = 0; i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        if (strlen(BUILTINS[i].name) == len && memcmp(BUILTINS[i].name, name, len) == 0)
            return (tp_value){.kind = TV_FUNC, .u.func = BUILTINS[i].func};
    tp_value u = tp_undef(name);
    u.n = len;
    return u;
}

_Noreturn static void fail_undefined(tp_rt *rt, tp_value u) {
    if (u.u.s) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "'%.*s' is undefined", (int)u.n, u.u.s);
    tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "a value is undefined");
}

/* ---- lookups -------------------------------------------------------------------------------- */

static tp_value loop_attr(tp_rt *rt, const tp_loop *l, const char *name, size_t len) {
    size_t i = l->index0, n = l->items->n;
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
    if (IS("index")) return tp_int((int64_t)i + 1);
    if (IS("index0")) return tp_int((int64_t)i);
    if (IS("revindex")) return tp_int((int64_t)(n - i));
    if (IS("revindex0")) return tp_int((int64_t)(n - i - 1));
    if (IS("first")) return tp_bool(i == 0);
    if (IS("last")) return tp_bool(i + 1 == n);
    if (IS("length")) return tp_int((int64_t)n);
    if (IS("depth")) return tp_int(1);
    if (IS("depth0")) return tp_int(0);
    if (IS("previtem")) return i > 0 ? l->items->items[i - 1] : tp_undef("previtem");
    if (IS("nextitem")) return i + 1 < n ? l->items->items[i + 1] : tp_undef("nextitem");
#undef IS
    (void)rt;
    tp_value u = tp_undef(name);
    u.n = len;
    return u;
}

tp_value tp_get_attr(tp_rt *rt, tp_value obj, const char *name, size_t len) {
    if (obj.kind == TV_UNDEF) fail_undefined(rt, obj);
    if (obj.kind == TV_DICT || obj.kind == TV_NS) {
        long i = tp_dict_find_str(obj.u.dict, name, len);
        if (i >= 0) return obj.u.dict->vals[i];
    } else if (obj.kind == TV_LOOP) {
        return loop_attr(rt, obj.u.loop, name, len);
    }
    tp_value u = tp_undef(name);
    u.n = len;
    return u;
}

tp_value tp_get_item(tp_rt *rt, tp_value obj, tp_value key) {
    if (obj.kind == TV_UNDEF) fail_undefined(rt, obj);
    if (obj.kind == TV_DICT || obj.kind == TV_NS) {
        long i = tp_dict_find(obj.u.dict, key);
        if (i >= 0) return obj.u.dict->vals[i];
    } else if ((obj.kind == TV_LIST || obj.kind == TV_STR) &&
               (key.kind == TV_INT || key.kind == TV_BOOL)) {
        int64_t i = key.kind == TV_INT ? key.u.i : key.u.b;
        if (obj.kind == TV_LIST) {
            int64_t n = (int64_t)obj.u.list->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return obj.u.list->items[i];
        } else {
            int64_t n = (int64_t)tp_utf8_len(obj.u.s, obj.n);
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t a = tp_utf8_offset(obj.u.s, obj.n, (size_t)i);
                size_t b = a + tp_utf8_offset(obj.u.s + a, obj.n - a, 1);
                return tp_str(obj.u.s + a, b - a);
            }
        }
    } else if (key.kind == TV_STR) {
        return tp_get_attr(rt, obj, key.u.s, key.n);
    }
    return tp_undef(NULL);
}

const tp_list *tp_iterate(tp_rt *rt, tp_value v) {
    static const tp_list empty = {0};
    switch (v.kind) {
    case TV_UNDEF:
        return &empty;
    case TV_LIST:
        return v.u.list;
    case TV_DICT:
    case TV_NS: {
        tp_list *l = tp_list_new(rt, v.u.dict->n);
        if (v.u.dict->n) memcpy(l->items, v.u.dict->keys, v.u.dict->n * sizeof(tp_value));
        return l;
    }
    case TV_STR: {
        tp_list *l = tp_list_new(rt, tp_utf8_len(v.u.s, v.n));
        for (size_t i = 0, a = 0; i < l->n; i++) {
            size_t b = a + tp_utf8_offset(v.u.s + a, v.n - a, 1);
            l->items[i] = tp_str(v.u.s + a, b - a);
            a = b;
        }
        return l;
    }
    default:
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "'%s' object is not iterable", tp_type_name(v));
    }
}

bool tp_contains(tp_rt *rt, tp_value c, tp_value item) {
    if (c.kind == TV_STR) {
        if (item.kind != TV_STR)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG,
                       "'in <string>' requires string as left operand, not %s", tp_type_name(item));
        if (item.n == 0) return true;
        for (size_t i = 0; i + item.n <= c.n; i++)
            if (memcmp(c.u.s + i, item.u.s, item.n) == 0) return true;
        return false;
    }
    if (c.kind == TV_DICT || c.kind == TV_NS) return tp_dict_find(c.u.dict, item) >= 0;
    const tp_list *l = tp_iterate(rt, c);
    for (size_t i = 0; i < l->n; i++)
        if (tp_equal(l->items[i], item)) return true;
    return false;
}

/* Python slicing of a list or string: a[start:stop:step]. */
static tp_value slice(tp_ctx *C, const tp_node *n, tp_value obj, tp_scope *sc) {
    tp_rt *rt = C->rt;
    int64_t v[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    const tp_node *parts[3] = {n->b, n->c, n->d};
    for (int k = 0; k < 3; k++) {
        if (!parts[k]) continue;
        tp_value x = eval(C, parts[k], sc);
        if (x.kind == TV_NONE) continue;
        if (x.kind != TV_INT && x.kind != TV_BOOL)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "slice indices must be integers, not %s",
                       tp_type_name(x));
        v[k] = x.kind == TV_INT ? x.u.i : x.u.b;
        given[k] = true;
    }
    if (obj.kind == TV_UNDEF) fail_undefined(rt, obj);
    if (obj.kind != TV_LIST && obj.kind != TV_STR)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "'%s' object is not subscriptable",
                   tp_type_name(obj));
    int64_t step = v[2];
    if (step == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "slice step cannot be zero");
    int64_t len =
        obj.kind == TV_LIST ? (int64_t)obj.u.list->n : (int64_t)tp_utf8_len(obj.u.s, obj.n);
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    int64_t start = given[0] ? v[0] : (step < 0 ? hi : lo);
    int64_t stop = given[1] ? v[1] : (step < 0 ? lo : hi);
    if (given[0])
        start = start < 0 ? (start + len < lo ? lo : start + len) : (start > hi ? hi : start);
    if (given[1]) stop = stop < 0 ? (stop + len < lo ? lo : stop + len) : (stop > hi ? hi : stop);
    size_t count = 0;
    if (step > 0 && start < stop) count = (size_t)((stop - start + step - 1) / step);
    if (step < 0 && start > stop) count = (size_t)((start - stop + (-step) - 1) / (-step));
    if (obj.kind == TV_LIST) {
        tp_list *l = tp_list_new(rt, count);
        l->tuple = obj.u.list->tuple;
        for (size_t i = 0; i < count; i++)
            l->items[i] = obj.u.list->items[start + (int64_t)i * step];
        return (tp_value){.kind = TV_LIST, .u.list = l};
    }
    const tp_list *chars = tp_iterate(rt, obj);
    tp_buf b = {0};
    for (size_t i = 0; i < count; i++) {
        tp_value ch = chars->items[start + (int64_t)i * step];
        tp_buf_put(rt, &b, ch.u.s, ch.n);
    }
    return tp_buf_value(&b);
}

/* ---- arithmetic ----------------------------------------------------------------------------- */

static bool is_intlike(tp_value v) {
    return v.kind == TV_INT || v.kind == TV_BOOL;
}
static int64_t as_int(tp_value v) {
    return v.kind == TV_INT ? v.u.i : v.u.b;
}
static bool is_number(tp_value v) {
    return is_intlike(v) || v.kind == TV_FLOAT;
}
static double as_float(tp_value v) {
    return v.kind == TV_FLOAT ? v.u.f : (double)as_int(v);
}

_Noreturn static void bad_operands(tp_rt *rt, const char *op, tp_value a, tp_value b) {
    if (a.kind == TV_UNDEF) fail_undefined(rt, a);
    if (b.kind == TV_UNDEF) fail_undefined(rt, b);
    tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "unsupported operand type(s) for %s: '%s' and '%s'", op,
               tp_type_name(a), tp_type_name(b));
}

static tp_value repeat(tp_rt *rt, tp_value seq, int64_t times) {
    if (times < 0) times = 0;
    size_t unit = seq.kind == TV_STR ? seq.n : seq.u.list->n;
    if (unit && (uint64_t)times > TP_MAX_OUTPUT / unit)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "repetition result is too large");
    if (seq.kind == TV_STR) {
        tp_buf b = {0};
        for (int64_t i = 0; i < times; i++) tp_buf_put(rt, &b, seq.u.s, seq.n);
        return tp_buf_value(&b);
    }
    tp_list *l = tp_list_new(rt, unit * (size_t)times);
    l->tuple = seq.u.list->tuple;
    for (int64_t i = 0; i < times; i++)
        if (unit) memcpy(l->items + (size_t)i * unit, seq.u.list->items, unit * sizeof(tp_value));
    return (tp_value){.kind = TV_LIST, .u.list = l};
}

static tp_value arith(tp_rt *rt, int op, tp_value a, tp_value b) {
    char opname[3] = {(char)op, 0, 0};
    if (op == OP_FLOORDIV) opname[0] = opname[1] = '/';
    if (op == OP_POW) opname[0] = opname[1] = '*';
    if (is_intlike(a) && is_intlike(b)) {
        int64_t x = as_int(a), y = as_int(b), r = 0;
        bool ovf = false;
        switch (op) {
        case '+':
            ovf = __builtin_add_overflow(x, y, &r);
            break;
        case '-':
            ovf = __builtin_sub_overflow(x, y, &r);
            break;
        case '*':
            ovf = __builtin_mul_overflow(x, y, &r);
            break;
        case '/':
            if (y == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "division by zero");
            return tp_float((double)x / (double)y);
        case OP_FLOORDIV:
        case '%':
            if (y == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                ovf = op == OP_FLOORDIV;
                break;
            }
            r = op == '%' ? x % y : x / y;
            if (op == '%' && r != 0 && ((r < 0) != (y < 0))) r += y;
            if (op == OP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r -= 1;
            break;
        case OP_POW:
            if (y < 0) return tp_float(pow((double)x, (double)y));
            r = 1;
            for (int64_t i = 0; i < y && !ovf; i++) {
                ovf = __builtin_mul_overflow(r, x, &r);
                if (r == 0 || r == 1) break;
            }
            if (x == -1) r = (y % 2) ? -1 : 1;
            break;
        }
        if (ovf) tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "integer overflow in '%s'", opname);
        return tp_int(r);
    }
    if (is_number(a) && is_number(b)) {
        double x = as_float(a), y = as_float(b);
        switch (op) {
        case '+':
            return tp_float(x + y);
        case '-':
            return tp_float(x - y);
        case '*':
            return tp_float(x * y);
        case '/':
            if (y == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "float division by zero");
            return tp_float(x / y);
        case OP_FLOORDIV:
            if (y == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "float floor division by zero");
            return tp_float(floor(x / y));
        case '%': {
            if (y == 0) tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "float modulo");
            double r = fmod(x, y);
            if (r != 0 && ((r < 0) != (y < 0))) r += y;
            return tp_float(r);
        }
        case OP_POW:
            return tp_float(pow(x, y));
        }
    }
    if (op == '+' && a.kind == TV_STR && b.kind == TV_STR) {
        tp_buf buf = {0};
        tp_buf_put(rt, &buf, a.u.s, a.n);
        tp_buf_put(rt, &buf, b.u.s, b.n);
        return tp_buf_value(&buf);
    }
    if (op == '+' && a.kind == TV_LIST && b.kind == TV_LIST && a.u.list->tuple == b.u.list->tuple) {
        tp_list *l = tp_list_new(rt, a.u.list->n + b.u.list->n);
        l->tuple = a.u.list->tuple;
        if (a.u.list->n) memcpy(l->items, a.u.list->items, a.u.list->n * sizeof(tp_value));
        if (b.u.list->n)
            memcpy(l->items + a.u.list->n, b.u.list->items, b.u.list->n * sizeof(tp_value));
        return (tp_value){.kind = TV_LIST, .u.list = l};
    }
    if (op == '*' && (a.kind == TV_STR || a.kind == TV_LIST) && is_intlike(b))
        return repeat(rt, a, as_int(b));
    if (op == '*' && (b.kind == TV_STR || b.kind == TV_LIST) && is_intlike(a))
        return repeat(rt, b, as_int(a));
    bad_operands(rt, opname, a, b);
}

/* ---- calls ---------------------------------------------------------------------------------- */

static void eval_args(tp_ctx *C, const tp_node *call, tp_scope *sc, tp_args *a) {
    a->pos = call->n_items ? tp_rt_alloc(C->rt, call->n_items * sizeof(tp_value)) : NULL;
    a->n_pos = 0;
    a->kw = NULL;
    for (size_t i = 0; i < call->n_items; i++) {
        const tp_node *arg = call->items[i];
        if (arg->kind == N_KWARG) {
            if (!a->kw) a->kw = tp_dict_new(C->rt, 4);
            tp_dict_set(C->rt, a->kw, tp_str(arg->name, arg->len), eval(C, arg->a, sc));
        } else {
            if (a->kw)
                tp_rt_fail(C->rt, BRISK_ERR_INVALID_ARG,
                           "positional argument follows keyword argument");
            a->pos[a->n_pos++] = eval(C, arg, sc);
        }
    }
}

static tp_value call_macro(tp_ctx *C, const tp_macro *m, tp_args *a, tp_value caller) {
    tp_rt *rt = C->rt;
    const tp_node *def = m->def;
    if (rt->depth > TP_MAX_DEPTH - 50 || ++rt->macro_depth > TP_MAX_CALL_DEPTH)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "macro calls nest deeper than %d", TP_MAX_CALL_DEPTH);
    const char *mname = def->kind == N_MACRO ? def->name : "caller";
    int mlen = def->kind == N_MACRO ? (int)def->len : 6;
    if (a->n_pos > def->n_items)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "macro '%.*s' takes not more than %zu argument(s)",
                   mlen, mname, def->n_items);
    tp_scope *s = scope_new(rt, m->closure);
    size_t used_kw = 0;
    for (size_t i = 0; i < def->n_items; i++) {
        const tp_node *p = def->items[i];
        long k = a->kw ? tp_dict_find_str(a->kw, p->name, p->len) : -1;
        tp_value v;
        if (i < a->n_pos)
            v = a->pos[i];
        else if (k >= 0)
            v = a->kw->vals[k], used_kw++;
        else if (p->a)
            v = eval(C, p->a, s);
        else
            v = tp_undef(p->name), v.n = p->len;
        scope_set(rt, s, p->name, p->len, v);
    }
    if (a->kw && used_kw < a->kw->n)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "macro '%.*s' got an unexpected keyword argument",
                   mlen, mname);
    if (caller.kind != TV_UNDEF) scope_set(rt, s, "caller", 6, caller);
    tp_buf out = {0};
    exec(C, def->c, s, &out);
    rt->macro_depth--;
    return tp_buf_value(&out);
}

static tp_value call_value(tp_ctx *C, tp_value f, tp_args *a, tp_value caller) {
    if (f.kind == TV_MACRO) return call_macro(C, f.u.macro, a, caller);
    if (f.kind == TV_FUNC) return tp_call_func(C->rt, f.u.func, a);
    if (f.kind == TV_UNDEF) fail_undefined(C->rt, f);
    tp_rt_fail(C->rt, BRISK_ERR_INVALID_ARG, "'%s' object is not callable", tp_type_name(f));
}

static tp_value eval_call(tp_ctx *C, const tp_node *n, tp_scope *sc, tp_value caller) {
    tp_args a;
    if (n->a->kind == N_ATTR) { /* obj.method(...) */
        tp_value obj = eval(C, n->a->a, sc);
        if (obj.kind == TV_STR || obj.kind == TV_DICT || obj.kind == TV_LOOP ||
            obj.kind == TV_LIST) {
            eval_args(C, n, sc, &a);
            bool found = false;
            tp_value r = tp_call_method(C->rt, obj, n->a->name, n->a->len, &a, &found);
            if (found) return r;
            return call_value(C, tp_get_attr(C->rt, obj, n->a->name, n->a->len), &a, caller);
        }
        tp_value f = tp_get_attr(C->rt, obj, n->a->name, n->a->len);
        eval_args(C, n, sc, &a);
        return call_value(C, f, &a, caller);
    }
    tp_value f = eval(C, n->a, sc);
    eval_args(C, n, sc, &a);
    return call_value(C, f, &a, caller);
}

/* ---- expressions ---------------------------------------------------------------------------- */

static tp_value eval_node(tp_ctx *C, const tp_node *n, tp_scope *sc) {
    tp_rt *rt = C->rt;
    switch (n->kind) {
    case N_LIT:
        return n->lit;
    case N_NAME:
        return lookup(C, sc, n->name, n->len);
    case N_PLACEHOLDER:
        return rt->placeholder;
    case N_ATTR:
        return tp_get_attr(rt, eval(C, n->a, sc), n->name, n->len);
    case N_ITEM: {
        tp_value obj = eval(C, n->a, sc);
        return tp_get_item(rt, obj, eval(C, n->b, sc));
    }
    case N_SLICE:
        return slice(C, n, eval(C, n->a, sc), sc);
    case N_CALL:
        return eval_call(C, n, sc, tp_undef(NULL));
    case N_FILTER: {
        tp_value v = eval(C, n->a, sc);
        tp_args a;
        eval_args(C, n, sc, &a);
        rt->line = n->line, rt->col = n->col;
        return tp_apply_filter(rt, n->name, n->len, v, &a);
    }
    case N_TEST: {
        tp_value v = eval(C, n->a, sc);
        tp_args a;
        eval_args(C, n, sc, &a);
        rt->line = n->line, rt->col = n->col;
        return tp_bool(tp_apply_test(rt, n->name, n->len, v, &a) != (n->op != 0));
    }
    case N_BIN: {
        tp_value a = eval(C, n->a, sc), b = eval(C, n->b, sc);
        rt->line = n->line, rt->col = n->col;
        switch (n->op) {
        case '~': {
            tp_buf buf = {0};
            tp_write_str(rt, &buf, a);
            tp_write_str(rt, &buf, b);
            return tp_buf_value(&buf);
        }
        case OP_EQ:
            return tp_bool(tp_equal(a, b));
        case OP_NE:
            return tp_bool(!tp_equal(a, b));
        case '<':
            return tp_bool(tp_compare(rt, a, b) < 0);
        case '>':
            return tp_bool(tp_compare(rt, a, b) > 0);
        case OP_LE:
            return tp_bool(tp_compare(rt, a, b) <= 0);
        case OP_GE:
            return tp_bool(tp_compare(rt, a, b) >= 0);
        case OP_IN:
            return tp_bool(tp_contains(rt, b, a));
        case OP_NOTIN:
            return tp_bool(!tp_contains(rt, b, a));
        default:
            return arith(rt, n->op, a, b);
        }
    }
    case N_NEG:
    case N_POS: {
        tp_value v = eval(C, n->a, sc);
        if (v.kind == TV_UNDEF) fail_undefined(rt, v);
        if (!is_number(v))
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "bad operand type for unary %c: '%s'",
                       n->kind == N_NEG ? '-' : '+', tp_type_name(v));
        if (n->kind == N_POS) return v.kind == TV_BOOL ? tp_int(v.u.b) : v;
        if (v.kind == TV_FLOAT) return tp_float(-v.u.f);
        if (as_int(v) == INT64_MIN)
            tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "integer overflow in '-'");
        return tp_int(-as_int(v));
    }
    case N_NOT:
        return tp_bool(!tp_truthy(eval(C, n->a, sc)));
    case N_AND: {
        tp_value a = eval(C, n->a, sc);
        return tp_truthy(a) ? eval(C, n->b, sc) : a;
    }
    case N_OR: {
        tp_value a = eval(C, n->a, sc);
        return tp_truthy(a) ? a : eval(C, n->b, sc);
    }
    case N_COND:
        if (tp_truthy(eval(C, n->a, sc))) return eval(C, n->b, sc);
        return n->c ? eval(C, n->c, sc) : tp_undef(NULL);
    case N_LIST:
    case N_TUPLE: {
        tp_list *l = tp_list_new(rt, n->n_items);
        l->tuple = n->kind == N_TUPLE;
        for (size_t i = 0; i < n->n_items; i++) l->items[i] = eval(C, n->items[i], sc);
        return (tp_value){.kind = TV_LIST, .u.list = l};
    }
    case N_DICT: {
        tp_dict *d = tp_dict_new(rt, n->n_items / 2 + 1);
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
            tp_value k = eval(C, n->items[i], sc);
            tp_dict_set(rt, d, k, eval(C, n->items[i + 1], sc));
        }
        return (tp_value){.kind = TV_DICT, .u.dict = d};
    }
    default:
        tp_rt_fail(rt, BRISK_ERR_FORMAT, "internal: statement node in expression");
    }
}

static void step(tp_rt *rt, const tp_node *n) {
    rt->line = n->line, rt->col = n->col;
    if (++rt->steps > TP_MAX_STEPS)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "render takes more than %llu steps",
                   (unsigned long long)TP_MAX_STEPS);
    if (rt->depth > TP_MAX_DEPTH)
        tp_rt_fail(rt, BRISK_ERR_UNSUPPORTED, "evaluation nests deeper than %d", TP_MAX_DEPTH);
}

static tp_value eval(tp_ctx *C, const tp_node *n, tp_scope *sc) {
    step(C->rt, n);
    C->rt->depth++;
    tp_value v = eval_node(C, n, sc);
    C->rt->depth--;
    return v;
}

/* ---- statements ----------------------------------------------------------------------------- */

static void assign(tp_ctx *C, const tp_node *target, tp_value v, tp_scope *sc) {
    tp_rt *rt = C->rt;
    if (target->kind == N_NAME) return scope_set(rt, sc, target->name, target->len, v);
    if (target->kind == N_ATTR) {
        tp_value ns = lookup(C, sc, target->a->name, target->a->len);
        if (ns.kind != TV_NS)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG,
                       "cannot assign attribute on non-namespace object");
        return tp_dict_set(rt, ns.u.dict, tp_str(target->name, target->len), v);
    }
    /* tuple unpacking */
    const tp_list *l = tp_iterate(rt, v);
    if (l->n != target->n_items)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "cannot unpack %zu values into %zu names", l->n,
                   target->n_items);
    for (size_t i = 0; i < l->n; i++) assign(C, target->items[i], l->items[i], sc);
}

static flow exec_for(tp_ctx *C, const tp_node *n, tp_scope *sc, tp_buf *out) {
    tp_rt *rt = C->rt;
    const tp_list *items = tp_iterate(rt, eval(C, n->b, sc));
    if (n->e) { /* `for x in xs if cond`: filter first, so loop.length counts kept items */
        tp_list *kept = tp_list_new(rt, items->n);
        kept->n = 0;
        for (size_t i = 0; i < items->n; i++) {
            tp_scope *s = scope_new(rt, sc);
            assign(C, n->a, items->items[i], s);
            if (tp_truthy(eval(C, n->e, s))) kept->items[kept->n++] = items->items[i];
        }
        items = kept;
    }
    if (items->n == 0) return n->d ? exec(C, n->d, sc, out) : FLOW_NORMAL;
    tp_loop *loop = tp_rt_alloc(rt, sizeof *loop);
    loop->items = items;
    for (size_t i = 0; i < items->n; i++) {
        step(rt, n);
        loop->index0 = i;
        tp_scope *s = scope_new(rt, sc); /* a fresh scope per iteration, as in Jinja */
        scope_set(rt, s, "loop", 4, (tp_value){.kind = TV_LOOP, .u.loop = loop});
        assign(C, n->a, items->items[i], s);
        if (exec(C, n->c, s, out) == FLOW_BREAK) break;
    }
    return FLOW_NORMAL;
}

static tp_value render_block(tp_ctx *C, const tp_node *n, tp_scope *sc) {
    tp_buf body = {0};
    exec(C, n->c, sc, &body);
    tp_value v = tp_buf_value(&body);
    if (!n->e) return v;
    tp_value saved = C->rt->placeholder;
    C->rt->placeholder = v;
    v = eval(C, n->e, sc);
    C->rt->placeholder = saved;
    return v;
}

static flow exec_node(tp_ctx *C, const tp_node *n, tp_scope *sc, tp_buf *out) {
    tp_rt *rt = C->rt;
    switch (n->kind) {
    case N_BODY:
        for (size_t i = 0; i < n->n_items; i++) {
            flow f = exec(C, n->items[i], sc, out);
            if (f != FLOW_NORMAL) return f;
        }
        return FLOW_NORMAL;
    case N_TEXT:
        tp_buf_put(rt, out, n->name, n->len);
        return FLOW_NORMAL;
    case N_OUTPUT:
        tp_write_str(rt, out, eval(C, n->a, sc));
        return FLOW_NORMAL;
    case N_IF:
        if (tp_truthy(eval(C, n->a, sc))) return exec(C, n->b, sc, out);
        return n->c ? exec(C, n->c, sc, out) : FLOW_NORMAL;
    case N_FOR:
        return exec_for(C, n, sc, out);
    case N_SET:
        assign(C, n->a, eval(C, n->b, sc), sc);
        return FLOW_NORMAL;
    case N_SETBLOCK:
        assign(C, n->a, render_block(C, n, sc), sc);
        return FLOW_NORMAL;
    case N_FILTERBLOCK:
        tp_write_str(rt, out, render_block(C, n, sc));
        return FLOW_NORMAL;
    case N_MACRO: {
        tp_macro *m = tp_rt_alloc(rt, sizeof *m);
        m->def = n, m->closure = sc;
        scope_set(rt, sc, n->name, n->len, (tp_value){.kind = TV_MACRO, .u.macro = m});
        return FLOW_NORMAL;
    }
    case N_CALLBLOCK: {
        tp_macro *m = tp_rt_alloc(rt, sizeof *m);
        m->def = n, m->closure = sc;
        tp_value caller = {.kind = TV_MACRO, .u.macro = m};
        tp_write_str(rt, out, eval_call(C, n->a, sc, caller));
        return FLOW_NORMAL;
    }
    case N_BREAK:
        return FLOW_BREAK;
    case N_CONTINUE:
        return FLOW_CONTINUE;
    default:
        tp_write_str(rt, out, eval(C, n, sc));
        return FLOW_NORMAL;
    }
}

static flow exec(tp_ctx *C, const tp_node *n, tp_scope *sc, tp_buf *out) {
    step(C->rt, n);
    C->rt->depth++;
    flow f = exec_node(C, n, sc, out);
    C->rt->depth--;
    return f;
}

void tp_render(tp_rt *rt, const tp_node *root, tp_dict *globals, tp_buf *out) {
    tp_ctx C = {rt, globals};
    exec(&C, root, scope_new(rt, NULL), out);
}
