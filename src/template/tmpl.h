/* tmpl.h: internal types of the chat-template interpreter: arena, values, tokens, AST nodes,
 * and the entry points the lexer, parser, evaluator, filters and chat.c share. */
#ifndef BRISK_TEMPLATE_TMPL_H
#define BRISK_TEMPLATE_TMPL_H

#include "brisk.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits that keep hostile templates from hanging or exhausting the machine. Each one that is
 * hit ends the parse or render with a status and a message naming the limit. */
#define TP_MAX_NEST       200          /* parser nesting (expressions + statements) */
#define TP_MAX_CALL_DEPTH 100          /* macro / caller() recursion */
#define TP_MAX_DEPTH      1000         /* evaluator recursion (expressions, statements, calls) */
#define TP_MAX_OUTPUT     (64u << 20)  /* bytes of rendered text */
#define TP_MAX_ARENA      (256u << 20) /* bytes of values allocated during one render */
#define TP_MAX_STEPS      50000000ull  /* evaluation steps (loop iterations + node visits) */
#define TP_MAX_RANGE      1000000      /* elements of range() */

/* ---- arena: every AST node and every render-time value lives in one; freed at once ---------- */

typedef struct tp_chunk tp_chunk;
typedef struct tp_arena {
    tp_chunk *head;
    size_t total, limit; /* bytes handed out so far; the cap (0 = none) */
} tp_arena;

/* Returns zeroed memory, or NULL when the limit is hit or malloc fails. */
void *tp_arena_alloc(tp_arena *a, size_t n);
void tp_arena_free(tp_arena *a);

/* ---- errors: parse and render unwind by longjmp to one handler; the arena owns all memory --- */

typedef struct tp_err {
    jmp_buf jb;
    brisk_status st;
    char msg[512];
} tp_err;

_Noreturn void tp_fail(tp_err *e, brisk_status st, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- values --------------------------------------------------------------------------------- */

typedef enum tp_kind {
    TV_UNDEF, /* jinja2's default Undefined: prints "", iterates empty, falsy */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST, /* list or tuple (tuple flag only changes how it prints) */
    TV_DICT, /* insertion-ordered mapping */
    TV_NS,   /* namespace(): a dict whose attributes `set` may change */
    TV_MACRO,
    TV_FUNC, /* a global function: range, raise_exception, ... */
    TV_LOOP, /* the `loop` variable of a for loop */
} tp_kind;

typedef struct tp_list tp_list;
typedef struct tp_dict tp_dict;
typedef struct tp_macro tp_macro;
typedef struct tp_loop tp_loop;

typedef struct tp_value {
    tp_kind kind;
    size_t n; /* TV_STR: bytes */
    union {
        bool b;
        int64_t i;
        double f;
        const char *s; /* TV_STR (not NUL-terminated); TV_UNDEF: the missing name or NULL */
        tp_list *list;
        tp_dict *dict;
        tp_macro *macro;
        int func;
        tp_loop *loop;
    } u;
} tp_value;

struct tp_list {
    size_t n;
    tp_value *items;
    bool tuple;
};

struct tp_dict {
    size_t n, cap;
    tp_value *keys, *vals;
};

typedef struct tp_node tp_node;
typedef struct tp_scope tp_scope;

struct tp_macro {
    const tp_node *def; /* N_MACRO or N_CALLBLOCK (its params and body) */
    tp_scope *closure;  /* scope the macro was defined in */
    tp_value caller;    /* `caller` inside the macro body, or undefined */
};

struct tp_loop {
    const tp_list *items; /* the (filtered) sequence being iterated */
    size_t index0;
};

enum tp_func { TF_RANGE, TF_RAISE, TF_STRFTIME, TF_NAMESPACE, TF_DICT };

static inline tp_value tp_undef(const char *name) {
    tp_value v = {.kind = TV_UNDEF};
    v.u.s = name;
    return v;
}
static inline tp_value tp_none(void) {
    return (tp_value){.kind = TV_NONE};
}
static inline tp_value tp_bool(bool b) {
    return (tp_value){.kind = TV_BOOL, .u.b = b};
}
static inline tp_value tp_int(int64_t i) {
    return (tp_value){.kind = TV_INT, .u.i = i};
}
static inline tp_value tp_float(double f) {
    return (tp_value){.kind = TV_FLOAT, .u.f = f};
}
static inline tp_value tp_str(const char *s, size_t n) {
    return (tp_value){.kind = TV_STR, .n = n, .u.s = s};
}

/* A growable byte buffer in an arena (render output, string building). */
typedef struct tp_buf {
    char *p;
    size_t n, cap;
} tp_buf;

/* The state of one render: arena, error handler, limits. Immutable template + this = render. */
typedef struct tp_rt {
    tp_arena arena;
    tp_err err;
    uint64_t steps;
    int depth;            /* evaluator recursion depth */
    int macro_depth;      /* macro / caller() call depth */
    bool raised;          /* err.msg is the template's own raise_exception message */
    int line, col;        /* position of the node being evaluated, for messages */
    int64_t now_override; /* strftime_now's time when >= 0 (tests), else the clock */
    tp_value placeholder; /* the body text a filter block / block set feeds into its filters */
} tp_rt;

/* The render running on this thread (set by chat.c), so value helpers without an rt argument
 * (tp_equal) can fail it when a value nests too deeply. */
extern _Thread_local tp_rt *tp_current_rt;

_Noreturn void tp_rt_fail(tp_rt *rt, brisk_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *tp_rt_alloc(tp_rt *rt, size_t n);
const char *tp_rt_strdup(tp_rt *rt, const char *s, size_t n);

void tp_buf_put(tp_rt *rt, tp_buf *b, const char *s, size_t n);
static inline void tp_buf_puts(tp_rt *rt, tp_buf *b, const char *s);
void tp_buf_printf(tp_rt *rt, tp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline tp_value tp_buf_value(const tp_buf *b) {
    return tp_str(b->p ? b->p : "", b->n);
}

tp_list *tp_list_new(tp_rt *rt, size_t n);
tp_dict *tp_dict_new(tp_rt *rt, size_t cap);
/* Inserts or replaces (Python dict semantics: a replaced key keeps its position). */
void tp_dict_set(tp_rt *rt, tp_dict *d, tp_value key, tp_value val);
/* Returns the index of key or -1. */
long tp_dict_find(const tp_dict *d, tp_value key);
long tp_dict_find_str(const tp_dict *d, const char *s, size_t n);

bool tp_truthy(tp_value v);
bool tp_equal(tp_value a, tp_value b);
/* Python ordering (<0, 0, >0); fails on types Python cannot order. */
int tp_compare(tp_rt *rt, tp_value a, tp_value b);
const char *tp_type_name(tp_value v);

/* str(v) (Python print form) and repr(v) appended to a buffer. */
void tp_write_str(tp_rt *rt, tp_buf *b, tp_value v);
void tp_write_repr(tp_rt *rt, tp_buf *b, tp_value v);
tp_value tp_to_str(tp_rt *rt, tp_value v);
/* Python's repr of a float: shortest round-trip digits, ".0" on integral values. */
void tp_write_float(tp_rt *rt, tp_buf *b, double f);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: none), sort_keys). */
void tp_write_json(tp_rt *rt, tp_buf *b, tp_value v, int indent, bool sort_keys);
/* Parses JSON text into values (ints stay ints, key order kept). BRISK_OK or an error with msg. */
brisk_status tp_parse_json(tp_rt *rt, const char *text, size_t len, tp_value *out,
                           const char *what);

/* UTF-8 helpers: code point count; byte offset of code point i (clamped). */
size_t tp_utf8_len(const char *s, size_t n);
size_t tp_utf8_offset(const char *s, size_t n, size_t cp);

/* ---- tokens --------------------------------------------------------------------------------- */

typedef enum tp_tok_kind {
    TK_EOF,
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
} tp_tok_kind;

/* Operators; two-character ones get their own codes. */
enum {
    OP_ADD = '+',
    OP_SUB = '-',
    OP_MUL = '*',
    OP_DIV = '/',
    OP_MOD = '%',
    OP_TILDE = '~',
    OP_LT = '<',
    OP_GT = '>',
    OP_ASSIGN = '=',
    OP_DOT = '.',
    OP_COMMA = ',',
    OP_COLON = ':',
    OP_PIPE = '|',
    OP_LPAREN = '(',
    OP_RPAREN = ')',
    OP_LBRACKET = '[',
    OP_RBRACKET = ']',
    OP_LBRACE = '{',
    OP_RBRACE = '}',
    OP_FLOORDIV = 256,
    OP_POW,
    OP_EQ,
    OP_NE,
    OP_LE,
    OP_GE,
    /* not tokens: comparison codes used by the AST */
    OP_IN,
    OP_NOTIN,
};

typedef struct tp_token {
    tp_tok_kind kind;
    int op;
    const char *s; /* TEXT / NAME / STRING (decoded) */
    size_t n;
    int64_t i;
    double f;
    int line, col;
} tp_token;

typedef struct tp_tokens {
    tp_token *v;
    size_t n, cap;
} tp_tokens;

/* Tokenizes a template (newlines already normalized) with trim_blocks + lstrip_blocks. */
void tp_lex(tp_arena *a, tp_err *e, const char *src, size_t len, tp_tokens *out);

/* ---- AST ------------------------------------------------------------------------------------ */

typedef enum tp_node_kind {
    /* statements */
    N_BODY,        /* items: statements */
    N_TEXT,        /* name/len: the text */
    N_OUTPUT,      /* a: expression */
    N_IF,          /* a: cond, b: body, c: else (body, or an N_IF for elif) */
    N_FOR,         /* a: target, b: iterable, c: body, d: else body, e: filter condition */
    N_SET,         /* a: target, b: value */
    N_SETBLOCK,    /* a: target, c: body, e: filter chain over N_PLACEHOLDER or NULL */
    N_MACRO,       /* name, items: N_PARAM, c: body */
    N_CALLBLOCK,   /* a: call expression, items: N_PARAM of caller, c: body */
    N_FILTERBLOCK, /* e: filter chain over N_PLACEHOLDER, c: body */
    N_BREAK,
    N_CONTINUE,
    N_PARAM, /* name, a: default or NULL */
    /* expressions */
    N_LIT,    /* lit */
    N_NAME,   /* name */
    N_ATTR,   /* a.name */
    N_ITEM,   /* a[b] */
    N_SLICE,  /* a[b:c:d], missing parts NULL */
    N_CALL,   /* a(items...), items may include N_KWARG */
    N_KWARG,  /* name=a */
    N_FILTER, /* a|name(items...) */
    N_TEST,   /* a is [not] name(items...); op = 1 when negated */
    N_BIN,    /* a op b (arithmetic, ~, comparisons, in) */
    N_NEG,    /* -a */
    N_POS,    /* +a */
    N_NOT,
    N_AND,
    N_OR,
    N_COND, /* b if a else c (c may be NULL) */
    N_LIST,
    N_TUPLE,
    N_DICT, /* items: key, value, key, value, ... */
    N_PLACEHOLDER,
} tp_node_kind;

struct tp_node {
    tp_node_kind kind;
    int op;
    int line, col;
    const char *name;
    size_t len;
    tp_value lit;
    tp_node *a, *b, *c, *d, *e;
    tp_node **items;
    size_t n_items;
};

/* Parses tokens into a statement list (N_BODY). */
tp_node *tp_parse(tp_arena *a, tp_err *e, const tp_tokens *toks);

/* ---- evaluation ----------------------------------------------------------------------------- */

/* Renders root with the global variables in `globals` into *out (arena memory). */
void tp_render(tp_rt *rt, const tp_node *root, tp_dict *globals, tp_buf *out);

/* Filters, tests, methods and global functions (filters.c). `args` are positional values,
 * kwargs a dict (or NULL). */
typedef struct tp_args {
    tp_value *pos;
    size_t n_pos;
    tp_dict *kw;
} tp_args;

tp_value tp_apply_filter(tp_rt *rt, const char *name, size_t len, tp_value v, tp_args *a);
bool tp_apply_test(tp_rt *rt, const char *name, size_t len, tp_value v, tp_args *a);
/* obj.name(args) for str and dict methods; *found false when obj has no such method. */
tp_value tp_call_method(tp_rt *rt, tp_value obj, const char *name, size_t len, tp_args *a,
                        bool *found);
tp_value tp_call_func(tp_rt *rt, int func, tp_args *a);
/* Python str operations (strings.c). `which` for strip: 1 left, 2 right, 3 both; chars undefined
 * or none = whitespace. maxsplit/count < 0 = no limit. */
enum { TP_CASE_UPPER, TP_CASE_LOWER, TP_CASE_TITLE, TP_CASE_CAPITALIZE, TP_CASE_JINJA_TITLE };
size_t tp_utf8_decode(const char *s, size_t n, size_t i, int32_t *cp);
bool tp_py_space(int32_t c);
tp_value tp_str_case(tp_rt *rt, tp_value s, int mode);
tp_value tp_str_strip(tp_rt *rt, tp_value s, tp_value chars, int which);
const char *tp_str_find(const char *h, size_t hn, const char *n, size_t nn);
tp_value tp_str_split(tp_rt *rt, tp_value s, tp_value sep, int64_t maxsplit);
tp_value tp_str_replace(tp_rt *rt, tp_value s, tp_value old, tp_value new_, int64_t count);
tp_value tp_str_format(tp_rt *rt, tp_value s, tp_args *a);

/* Jinja's attribute / item lookup (eval.c): obj.name, obj[key]; missing gives undefined, a
 * lookup on undefined fails. */
tp_value tp_get_attr(tp_rt *rt, tp_value obj, const char *name, size_t len);
tp_value tp_get_item(tp_rt *rt, tp_value obj, tp_value key);
/* The items a for loop would visit (list; dict keys; string characters; undefined: none). */
const tp_list *tp_iterate(tp_rt *rt, tp_value v);
/* Python's `a in b`. */
bool tp_contains(tp_rt *rt, tp_value container, tp_value item);

static inline void tp_buf_puts(tp_rt *rt, tp_buf *b, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    tp_buf_put(rt, b, s, n);
}

#endif
