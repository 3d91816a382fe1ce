/* parser.c: tokens -> AST by recursive descent, following Jinja's grammar and operator
 * precedence. Nesting is bounded (TP_MAX_NEST); every error names line:column and what was
 * expected. */
#include "template/tmpl.h"

#include <stdio.h>
#include <string.h>

typedef struct parser {
    tp_arena *arena;
    tp_err *err;
    const tp_tokens *toks;
    size_t i;
    int depth, loops; /* nesting; enclosing for loops (break/continue are legal inside) */
} parser;

static const tp_token *peek(parser *P) {
    return &P->toks->v[P->i];
}
static const tp_token *peek2(parser *P) {
    return P->i + 1 < P->toks->n ? &P->toks->v[P->i + 1] : &P->toks->v[P->i];
}
static const tp_token *next(parser *P) {
    const tp_token *t = &P->toks->v[P->i];
    if (t->kind != TK_EOF) P->i++;
    return t;
}

static void describe(const tp_token *t, char *buf, size_t n) {
    switch (t->kind) {
    case TK_EOF:
        snprintf(buf, n, "end of template");
        break;
    case TK_TEXT:
        snprintf(buf, n, "template text");
        break;
    case TK_VAR_BEGIN:
        snprintf(buf, n, "'{{'");
        break;
    case TK_VAR_END:
        snprintf(buf, n, "'}}'");
        break;
    case TK_BLOCK_BEGIN:
        snprintf(buf, n, "'{%%'");
        break;
    case TK_BLOCK_END:
        snprintf(buf, n, "'%%}'");
        break;
    case TK_NAME:
        snprintf(buf, n, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
        break;
    case TK_STRING:
        snprintf(buf, n, "a string");
        break;
    case TK_INT:
    case TK_FLOAT:
        snprintf(buf, n, "a number");
        break;
    case TK_OP: {
        static const char *two[] = {"//", "**", "==", "!=", "<=", ">="};
        if (t->op >= OP_FLOORDIV && t->op <= OP_GE)
            snprintf(buf, n, "'%s'", two[t->op - OP_FLOORDIV]);
        else
            snprintf(buf, n, "'%c'", t->op);
        break;
    }
    }
}

_Noreturn static void expected(parser *P, const char *what) {
    const tp_token *t = peek(P);
    char found[64];
    describe(t, found, sizeof found);
    tp_fail(P->err, BRISK_ERR_FORMAT, t->line, t->col, "expected %s, found %s", what, found);
}

static bool is_op(parser *P, int op) {
    return peek(P)->kind == TK_OP && peek(P)->op == op;
}
static bool tok_is_name(const tp_token *t, const char *s) {
    return t->kind == TK_NAME && t->n == strlen(s) && memcmp(t->s, s, t->n) == 0;
}
static bool is_name(parser *P, const char *s) {
    return tok_is_name(peek(P), s);
}
static bool accept_op(parser *P, int op) {
    if (!is_op(P, op)) return false;
    next(P);
    return true;
}
static bool accept_name(parser *P, const char *s) {
    if (!is_name(P, s)) return false;
    next(P);
    return true;
}
static void expect_op(parser *P, int op, const char *what) {
    if (!accept_op(P, op)) expected(P, what);
}
static void expect_end(parser *P) {
    if (peek(P)->kind != TK_BLOCK_END) expected(P, "'%}'");
    next(P);
}

static tp_node *node(parser *P, tp_node_kind kind, const tp_token *at) {
    tp_node *n = tp_arena_alloc(P->arena, sizeof *n);
    if (!n) tp_fail(P->err, BRISK_ERR_OOM, at->line, at->col, "out of memory while parsing");
    n->kind = kind;
    n->line = at->line, n->col = at->col;
    return n;
}

/* Appends to a node's item list (doubling an arena array). */
static void push(parser *P, tp_node *n, tp_node *item) {
    if (n->n_items == 0 || (n->n_items >= 4 && (n->n_items & (n->n_items - 1)) == 0)) {
        size_t ncap = n->n_items < 4 ? 4 : n->n_items * 2;
        tp_node **v = tp_arena_alloc(P->arena, ncap * sizeof *v);
        if (!v) tp_fail(P->err, BRISK_ERR_OOM, n->line, n->col, "out of memory while parsing");
        if (n->n_items) memcpy(v, n->items, n->n_items * sizeof *v);
        n->items = v;
    }
    n->items[n->n_items++] = item;
}

static void enter(parser *P) {
    if (++P->depth > TP_MAX_NEST) {
        const tp_token *t = peek(P);
        tp_fail(P->err, BRISK_ERR_UNSUPPORTED, t->line, t->col,
                "template nests deeper than %d levels", TP_MAX_NEST);
    }
}

static tp_node *parse_expr(parser *P, bool with_cond);
static tp_node *parse_unary(parser *P, bool with_filter);
static tp_node *parse_or(parser *P);

/* ---- expressions ---------------------------------------------------------------------------- */

/* Call arguments after '(' up to ')': positional and name=value. */
static void parse_args(parser *P, tp_node *call) {
    while (!accept_op(P, ')')) {
        if (call->n_items) expect_op(P, ',', "',' or ')'");
        if (accept_op(P, ')')) break;
        const tp_token *t = peek(P);
        if (t->kind == TK_NAME && peek2(P)->kind == TK_OP && peek2(P)->op == '=') {
            next(P), next(P);
            tp_node *kw = node(P, N_KWARG, t);
            kw->name = t->s, kw->len = t->n;
            kw->a = parse_expr(P, true);
            push(P, call, kw);
        } else {
            push(P, call, parse_expr(P, true));
        }
    }
}

static tp_node *parse_primary(parser *P) {
    const tp_token *t = next(P);
    tp_node *n;
    switch (t->kind) {
    case TK_NAME:
        n = node(P, N_LIT, t);
        if (tok_is_name(t, "true") || tok_is_name(t, "True"))
            n->lit = tp_bool(true);
        else if (tok_is_name(t, "false") || tok_is_name(t, "False"))
            n->lit = tp_bool(false);
        else if (tok_is_name(t, "none") || tok_is_name(t, "None"))
            n->lit = tp_none();
        else
            n->kind = N_NAME, n->name = t->s, n->len = t->n;
        return n;
    case TK_STRING: { /* adjacent literals concatenate: 'a' "b" == 'ab' */
        n = node(P, N_LIT, t);
        if (peek(P)->kind != TK_STRING) {
            n->lit = tp_str(t->s, t->n);
            return n;
        }
        size_t len = t->n;
        for (size_t j = P->i; P->toks->v[j].kind == TK_STRING; j++) len += P->toks->v[j].n;
        char *s = tp_arena_alloc(P->arena, len + 1);
        if (!s) tp_fail(P->err, BRISK_ERR_OOM, t->line, t->col, "out of memory while parsing");
        memcpy(s, t->s, t->n);
        size_t k = t->n;
        while (peek(P)->kind == TK_STRING) {
            const tp_token *u = next(P);
            memcpy(s + k, u->s, u->n);
            k += u->n;
        }
        n->lit = tp_str(s, k);
        return n;
    }
    case TK_INT:
        n = node(P, N_LIT, t), n->lit = tp_int(t->i);
        return n;
    case TK_FLOAT:
        n = node(P, N_LIT, t), n->lit = tp_float(t->f);
        return n;
    case TK_OP:
        if (t->op == '(') {
            if (accept_op(P, ')')) return node(P, N_TUPLE, t);
            tp_node *e = parse_expr(P, true);
            if (!is_op(P, ',')) {
                expect_op(P, ')', "')'");
                return e;
            }
            n = node(P, N_TUPLE, t);
            push(P, n, e);
            while (accept_op(P, ',') && !is_op(P, ')')) push(P, n, parse_expr(P, true));
            expect_op(P, ')', "',' or ')'");
            return n;
        }
        if (t->op == '[') {
            n = node(P, N_LIST, t);
            while (!accept_op(P, ']')) {
                if (n->n_items) expect_op(P, ',', "',' or ']'");
                if (accept_op(P, ']')) break;
                push(P, n, parse_expr(P, true));
            }
            return n;
        }
        if (t->op == '{') {
            n = node(P, N_DICT, t);
            while (!accept_op(P, '}')) {
                if (n->n_items) expect_op(P, ',', "',' or '}'");
                if (accept_op(P, '}')) break;
                push(P, n, parse_expr(P, true));
                expect_op(P, ':', "':'");
                push(P, n, parse_expr(P, true));
            }
            return n;
        }
        break;
    default:
        break;
    }
    P->i--;
    expected(P, "an expression");
}

static tp_node *parse_postfix(parser *P, tp_node *n) {
    for (;;) {
        const tp_token *t = peek(P);
        if (accept_op(P, '.')) {
            const tp_token *a = next(P);
            if (a->kind == TK_NAME) {
                tp_node *m = node(P, N_ATTR, t);
                m->a = n, m->name = a->s, m->len = a->n;
                n = m;
            } else if (a->kind == TK_INT) {
                tp_node *m = node(P, N_ITEM, t), *k = node(P, N_LIT, a);
                k->lit = tp_int(a->i);
                m->a = n, m->b = k;
                n = m;
            } else {
                P->i--;
                expected(P, "an attribute name after '.'");
            }
        } else if (accept_op(P, '[')) {
            tp_node *parts[3] = {0};
            int k = 0;
            bool slice = false;
            for (;;) {
                if (!is_op(P, ':') && !is_op(P, ']')) parts[k] = parse_expr(P, true);
                if (k < 2 && accept_op(P, ':')) {
                    slice = true;
                    k++;
                    continue;
                }
                break;
            }
            expect_op(P, ']', "']'");
            tp_node *m = node(P, slice ? N_SLICE : N_ITEM, t);
            if (!slice && !parts[0]) {
                P->i--;
                expected(P, "a subscript");
            }
            m->a = n, m->b = parts[0], m->c = parts[1], m->d = parts[2];
            n = m;
        } else if (accept_op(P, '(')) {
            tp_node *m = node(P, N_CALL, t);
            m->a = n;
            parse_args(P, m);
            n = m;
        } else {
            return n;
        }
    }
}

static tp_node *parse_filter(parser *P, tp_node *n, bool need_pipe) {
    if (need_pipe) next(P);
    const tp_token *t = next(P);
    if (t->kind != TK_NAME) {
        P->i--;
        expected(P, "a filter name");
    }
    tp_node *f = node(P, N_FILTER, t);
    f->a = n, f->name = t->s, f->len = t->n;
    if (accept_op(P, '(')) parse_args(P, f);
    return f;
}

static tp_node *parse_filter_expr(parser *P, tp_node *n) {
    for (;;) {
        const tp_token *t = peek(P);
        if (is_op(P, '|')) {
            n = parse_filter(P, n, true);
        } else if (tok_is_name(t, "is")) {
            next(P);
            tp_node *m = node(P, N_TEST, t);
            m->op = accept_name(P, "not");
            const tp_token *name = next(P);
            if (name->kind != TK_NAME) {
                P->i--;
                expected(P, "a test name after 'is'");
            }
            m->a = n, m->name = name->s, m->len = name->n;
            const tp_token *u = peek(P);
            if (accept_op(P, '(')) {
                parse_args(P, m);
            } else if ((u->kind == TK_NAME || u->kind == TK_STRING || u->kind == TK_INT ||
                        u->kind == TK_FLOAT ||
                        (u->kind == TK_OP && (u->op == '[' || u->op == '{'))) &&
                       !tok_is_name(u, "else") && !tok_is_name(u, "or") && !tok_is_name(u, "and")) {
                if (tok_is_name(u, "is")) expected(P, "one test per 'is'");
                push(P, m, parse_postfix(P, parse_primary(P)));
            }
            n = m;
        } else if (is_op(P, '(')) {
            next(P);
            tp_node *m = node(P, N_CALL, t);
            m->a = n;
            parse_args(P, m);
            n = m;
        } else {
            return n;
        }
    }
}

static tp_node *parse_unary(parser *P, bool with_filter) {
    enter(P);
    const tp_token *t = peek(P);
    tp_node *n;
    if (accept_op(P, '-') || accept_op(P, '+')) {
        n = node(P, t->op == '-' ? N_NEG : N_POS, t);
        n->a = parse_unary(P, false);
    } else {
        n = parse_postfix(P, parse_primary(P));
    }
    if (with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static tp_node *binop(parser *P, const tp_token *t, int op, tp_node *a, tp_node *b) {
    tp_node *n = node(P, N_BIN, t);
    n->op = op, n->a = a, n->b = b;
    return n;
}

static tp_node *parse_pow(parser *P) {
    tp_node *n = parse_unary(P, true);
    while (is_op(P, OP_POW)) {
        const tp_token *t = next(P);
        n = binop(P, t, OP_POW, n, parse_unary(P, true));
    }
    return n;
}

static tp_node *parse_math2(parser *P) {
    tp_node *n = parse_pow(P);
    while (is_op(P, '*') || is_op(P, '/') || is_op(P, OP_FLOORDIV) || is_op(P, '%')) {
        const tp_token *t = next(P);
        n = binop(P, t, t->op, n, parse_pow(P));
    }
    return n;
}

static tp_node *parse_concat(parser *P) {
    tp_node *n = parse_math2(P);
    while (is_op(P, '~')) {
        const tp_token *t = next(P);
        n = binop(P, t, '~', n, parse_math2(P));
    }
    return n;
}

static tp_node *parse_math1(parser *P) {
    tp_node *n = parse_concat(P);
    while (is_op(P, '+') || is_op(P, '-')) {
        const tp_token *t = next(P);
        n = binop(P, t, t->op, n, parse_concat(P));
    }
    return n;
}

static int compare_op(parser *P) {
    const tp_token *t = peek(P);
    if (t->kind == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == '<' || t->op == '>' ||
                             t->op == OP_LE || t->op == OP_GE))
        return t->op;
    if (tok_is_name(t, "in")) return OP_IN;
    if (tok_is_name(t, "not") && tok_is_name(peek2(P), "in")) return OP_NOTIN;
    return 0;
}

static tp_node *parse_compare(parser *P) {
    tp_node *n = parse_math1(P);
    int op = compare_op(P);
    if (!op) return n;
    const tp_token *t = next(P);
    if (op == OP_NOTIN) next(P);
    n = binop(P, t, op, n, parse_math1(P));
    if (compare_op(P)) expected(P, "one comparison (chained comparisons are not supported)");
    return n;
}

static tp_node *parse_not(parser *P) {
    const tp_token *t = peek(P);
    if (!accept_name(P, "not")) return parse_compare(P);
    enter(P);
    tp_node *n = node(P, N_NOT, t);
    n->a = parse_not(P);
    P->depth--;
    return n;
}

static tp_node *parse_and(parser *P) {
    tp_node *n = parse_not(P);
    while (is_name(P, "and")) {
        tp_node *m = node(P, N_AND, next(P));
        m->a = n, m->b = parse_not(P);
        n = m;
    }
    return n;
}

static tp_node *parse_or(parser *P) {
    tp_node *n = parse_and(P);
    while (is_name(P, "or")) {
        tp_node *m = node(P, N_OR, next(P));
        m->a = n, m->b = parse_and(P);
        n = m;
    }
    return n;
}

static tp_node *parse_expr(parser *P, bool with_cond) {
    enter(P);
    tp_node *n = parse_or(P);
    while (with_cond && is_name(P, "if")) {
        tp_node *m = node(P, N_COND, next(P));
        m->b = n;
        m->a = parse_or(P);
        if (accept_name(P, "else")) m->c = parse_expr(P, true);
        n = m;
    }
    P->depth--;
    return n;
}

/* An expression, or a bare tuple `a, b` (in {{ }} and on the right of `set`). */
static tp_node *parse_tuple_expr(parser *P) {
    const tp_token *t = peek(P);
    tp_node *n = parse_expr(P, true);
    if (!is_op(P, ',')) return n;
    tp_node *tup = node(P, N_TUPLE, t);
    push(P, tup, n);
    while (accept_op(P, ',')) {
        if (peek(P)->kind == TK_VAR_END || peek(P)->kind == TK_BLOCK_END) break;
        push(P, tup, parse_expr(P, true));
    }
    return tup;
}

/* An assignment target: name, name.attr (set only), or names separated by commas. */
static tp_node *parse_target(parser *P, bool allow_attr) {
    const tp_token *t = peek(P);
    tp_node *first = NULL, *tup = NULL;
    for (;;) {
        const tp_token *nm = next(P);
        if (nm->kind != TK_NAME) {
            P->i--;
            expected(P, "a variable name");
        }
        tp_node *n = node(P, N_NAME, nm);
        n->name = nm->s, n->len = nm->n;
        if (allow_attr && !tup && accept_op(P, '.')) {
            const tp_token *a = next(P);
            if (a->kind != TK_NAME) {
                P->i--;
                expected(P, "an attribute name");
            }
            tp_node *m = node(P, N_ATTR, a);
            m->a = n, m->name = a->s, m->len = a->n;
            return m;
        }
        if (!first)
            first = n;
        else {
            if (!tup) {
                tup = node(P, N_TUPLE, t);
                push(P, tup, first);
            }
            push(P, tup, n);
        }
        if (!accept_op(P, ',')) break;
    }
    return tup ? tup : first;
}

/* ---- statements ----------------------------------------------------------------------------- */

static tp_node *parse_body(parser *P, const char *const *ends, const tp_token *opener);

static void parse_params(parser *P, tp_node *owner) {
    if (!accept_op(P, '(')) return;
    while (!accept_op(P, ')')) {
        if (owner->n_items) expect_op(P, ',', "',' or ')'");
        const tp_token *nm = next(P);
        if (nm->kind != TK_NAME) {
            P->i--;
            expected(P, "a parameter name");
        }
        tp_node *p = node(P, N_PARAM, nm);
        p->name = nm->s, p->len = nm->n;
        if (accept_op(P, '=')) p->a = parse_expr(P, true);
        push(P, owner, p);
    }
}

/* Which end tag closed the body just parsed (the parser stands on its name). */
static const tp_token *end_tag(parser *P) {
    return next(P);
}

static tp_node *parse_if(parser *P, const tp_token *t) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    tp_node *n = node(P, N_IF, t);
    n->a = parse_expr(P, true);
    expect_end(P);
    n->b = parse_body(P, ends, t);
    const tp_token *e = end_tag(P);
    if (tok_is_name(e, "elif")) {
        n->c = parse_if(P, e);
    } else if (tok_is_name(e, "else")) {
        static const char *const endif[] = {"endif", NULL};
        expect_end(P);
        n->c = parse_body(P, endif, t);
        end_tag(P);
        expect_end(P);
    } else {
        expect_end(P);
    }
    return n;
}

static tp_node *parse_for(parser *P, const tp_token *t) {
    static const char *const ends[] = {"else", "endfor", NULL}, *const endfor[] = {"endfor", NULL};
    tp_node *n = node(P, N_FOR, t);
    n->a = parse_target(P, false);
    if (!accept_name(P, "in")) expected(P, "'in'");
    n->b = parse_expr(P, false);
    if (is_op(P, ',')) { /* for x in a, b */
        tp_node *tup = node(P, N_TUPLE, peek(P));
        push(P, tup, n->b);
        while (accept_op(P, ',')) push(P, tup, parse_expr(P, false));
        n->b = tup;
    }
    if (accept_name(P, "if")) n->e = parse_expr(P, true);
    if (is_name(P, "recursive")) expected(P, "'%}' (recursive loops are not supported)");
    expect_end(P);
    P->loops++;
    n->c = parse_body(P, ends, t);
    P->loops--;
    if (tok_is_name(end_tag(P), "else")) {
        expect_end(P);
        n->d = parse_body(P, endfor, t);
        end_tag(P);
    }
    expect_end(P);
    return n;
}

static tp_node *parse_statement(parser *P) {
    const tp_token *t = next(P);
    if (t->kind != TK_NAME) {
        P->i--;
        expected(P, "a tag name");
    }
    if (tok_is_name(t, "if")) return parse_if(P, t);
    if (tok_is_name(t, "for")) return parse_for(P, t);
    if (tok_is_name(t, "set")) {
        tp_node *target = parse_target(P, true);
        if (accept_op(P, '=')) {
            tp_node *n = node(P, N_SET, t);
            n->a = target, n->b = parse_tuple_expr(P);
            expect_end(P);
            return n;
        }
        static const char *const ends[] = {"endset", NULL};
        tp_node *n = node(P, N_SETBLOCK, t);
        if (target->kind != N_NAME) expected(P, "'=' (a block set assigns one name)");
        n->a = target;
        if (is_op(P, '|')) {
            n->e = node(P, N_PLACEHOLDER, t);
            while (is_op(P, '|')) n->e = parse_filter(P, n->e, true);
        }
        expect_end(P);
        n->c = parse_body(P, ends, t);
        end_tag(P);
        expect_end(P);
        return n;
    }
    if (tok_is_name(t, "macro") || tok_is_name(t, "call")) {
        bool is_macro = t->s[0] == 'm';
        tp_node *n = node(P, is_macro ? N_MACRO : N_CALLBLOCK, t);
        if (is_macro) {
            const tp_token *nm = next(P);
            if (nm->kind != TK_NAME) {
                P->i--;
                expected(P, "a macro name");
            }
            n->name = nm->s, n->len = nm->n;
            if (!is_op(P, '(')) expected(P, "'('");
        }
        parse_params(P, n);
        if (!is_macro) {
            n->a = parse_expr(P, true);
            if (n->a->kind != N_CALL) expected(P, "a macro call after 'call'");
        }
        expect_end(P);
        static const char *const endm[] = {"endmacro", NULL}, *const endc[] = {"endcall", NULL};
        int loops = P->loops;
        P->loops = 0; /* break/continue do not cross a macro body */
        n->c = parse_body(P, is_macro ? endm : endc, t);
        P->loops = loops;
        end_tag(P);
        expect_end(P);
        return n;
    }
    if (tok_is_name(t, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        tp_node *n = node(P, N_FILTERBLOCK, t);
        n->e = parse_filter(P, node(P, N_PLACEHOLDER, t), false);
        while (is_op(P, '|')) n->e = parse_filter(P, n->e, true);
        expect_end(P);
        n->c = parse_body(P, ends, t);
        end_tag(P);
        expect_end(P);
        return n;
    }
    if (tok_is_name(t, "break") || tok_is_name(t, "continue")) {
        if (!P->loops) {
            P->i--;
            expected(P, "'break' or 'continue' only inside a for loop, not this tag");
        }
        tp_node *n = node(P, t->s[0] == 'b' ? N_BREAK : N_CONTINUE, t);
        expect_end(P);
        return n;
    }
    if (tok_is_name(t, "generation")) { /* transformers' tag: marks assistant text; renders as is */
        static const char *const ends[] = {"endgeneration", NULL};
        expect_end(P);
        tp_node *n = parse_body(P, ends, t);
        end_tag(P);
        expect_end(P);
        return n;
    }
    P->i--;
    expected(P, "a known tag (if, for, set, macro, call, filter, break, continue, generation)");
}

static tp_node *parse_body(parser *P, const char *const *ends, const tp_token *opener) {
    enter(P);
    tp_node *body = node(P, N_BODY, peek(P));
    for (;;) {
        const tp_token *t = peek(P);
        if (t->kind == TK_TEXT) {
            tp_node *n = node(P, N_TEXT, next(P));
            n->name = t->s, n->len = t->n;
            push(P, body, n);
        } else if (t->kind == TK_VAR_BEGIN) {
            next(P);
            tp_node *n = node(P, N_OUTPUT, t);
            n->a = parse_tuple_expr(P);
            if (peek(P)->kind != TK_VAR_END) expected(P, "'}}'");
            next(P);
            push(P, body, n);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            const tp_token *nm = peek2(P);
            for (const char *const *e = ends; e && *e; e++)
                if (tok_is_name(nm, *e)) {
                    next(P);
                    P->depth--;
                    return body;
                }
            next(P);
            push(P, body, parse_statement(P));
        } else if (t->kind == TK_EOF) {
            if (ends) {
                char what[160];
                int k = snprintf(what, sizeof what, "'{%% %s %%}'", ends[0]);
                for (const char *const *e = ends + 1; *e && k < 120; e++)
                    k += snprintf(what + k, sizeof what - (size_t)k, " or '{%% %s %%}'", *e);
                snprintf(what + k, sizeof what - (size_t)k, " for the tag at %d:%d", opener->line,
                         opener->col);
                expected(P, what);
            }
            P->depth--;
            return body;
        } else {
            expected(P, "text, '{{' or '{%'");
        }
    }
}

tp_node *tp_parse(tp_arena *a, tp_err *e, const tp_tokens *toks) {
    parser P = {a, e, toks, 0, 0, 0};
    return parse_body(&P, NULL, NULL);
}
