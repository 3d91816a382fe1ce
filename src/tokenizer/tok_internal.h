/* tok_internal.h: the tokenizer module's private types: the loaded tokenizer (vocab, merges,
 * added tokens, flattened pipeline steps), per-call scratch, and the helpers shared by its files.
 */
#ifndef BRISK_TOK_INTERNAL_H
#define BRISK_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "brisk.h"
#include "util/error.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer and id vector (every append reports OOM as -1) ---- */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_put(tok_buf *b, const void *s, size_t n);
static inline int tok_buf_putc(tok_buf *b, char c) {
    return tok_buf_put(b, &c, 1);
}
void tok_buf_free(tok_buf *b);

typedef struct tok_ids {
    int32_t *p;
    size_t n, cap;
} tok_ids;
int tok_ids_push(tok_ids *v, int32_t id);
void tok_ids_free(tok_ids *v);

/* ---- hash maps. Strings live in an arena (tok_buf) and are referenced by offset. ---- */
typedef struct tok_strmap_ent {
    uint32_t hash, value, off, len; /* value UINT32_MAX = empty slot */
} tok_strmap_ent;
typedef struct tok_strmap {
    tok_strmap_ent *slots;
    size_t mask, n;
} tok_strmap;
uint32_t tok_hash(const char *s, size_t n);
int tok_strmap_init(tok_strmap *m, size_t expected);
/* Inserts (or overwrites) key arena[off..off+len) -> value. */
void tok_strmap_put(tok_strmap *m, const char *arena, uint32_t off, uint32_t len, uint32_t value);
/* Returns the value or -1. */
int64_t tok_strmap_get(const tok_strmap *m, const char *arena, const char *s, size_t n);
void tok_strmap_free(tok_strmap *m);

typedef struct tok_pairmap_ent {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX = empty */
    uint32_t rank, merged;
} tok_pairmap_ent;
typedef struct tok_pairmap {
    tok_pairmap_ent *slots;
    size_t mask, n;
} tok_pairmap;
int tok_pairmap_init(tok_pairmap *m, size_t expected);
void tok_pairmap_put(tok_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t merged);
const tok_pairmap_ent *tok_pairmap_get(const tok_pairmap *m, uint32_t a, uint32_t b);
void tok_pairmap_free(tok_pairmap *m);

/* ---- UTF-8 and Unicode predicates (input is validated UTF-8 before any of these run) ---- */
/* Decodes one code point at s (n bytes left, n >= 1); stores its length in *len. */
uint32_t tok_utf8_decode(const char *s, size_t n, int *len);
int tok_utf8_encode(uint32_t cp, char out[4]);
/* Length of the leading valid UTF-8 prefix (== n when all valid). */
size_t tok_utf8_valid_prefix(const char *s, size_t n);
bool tok_is_whitespace(uint32_t cp); /* Unicode White_Space, as Rust char::is_whitespace */
bool tok_is_alnum(uint32_t cp);      /* letters and numbers (L*, N*) */
bool tok_is_numeric(uint32_t cp);    /* N* */
bool tok_is_punct(uint32_t cp);      /* ASCII punctuation or P* */

/* ---- patterns (Split, Replace): a literal string or a PCRE2 regex (UTF+UCP, JIT) ---- */
typedef struct tok_pattern {
    char *lit; /* literal when re == NULL */
    size_t lit_len;
    pcre2_code *re;
} tok_pattern;
brisk_status tok_pattern_parse(const cJSON *pat, const char *where, tok_pattern *out);
brisk_status tok_pattern_compile(const char *regex, const char *where, tok_pattern *out);
void tok_pattern_free(tok_pattern *p);
/* Finds the next match at or after `from` in s[0..n). Returns 1 with [*ms,*me), 0 when none,
 * or a negative PCRE2 error. md is the caller's per-call match data. */
int tok_pattern_next(const tok_pattern *p, const char *s, size_t n, size_t from,
                     pcre2_match_data *md, size_t *ms, size_t *me);

/* ---- pipeline steps (Sequence nodes are flattened at load) ---- */
enum tok_norm_kind {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_STRIP,
    TOK_NORM_PREPEND,
    TOK_NORM_REPLACE,
    TOK_NORM_STRIP_ACCENTS
};
typedef struct tok_norm_step {
    int kind;
    bool left, right; /* Strip */
    char *str;        /* Prepend text, Replace content */
    size_t str_len;
    tok_pattern pat; /* Replace */
} tok_norm_step;

enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS
};
enum tok_pre_kind {
    TOK_PRE_SPLIT,
    TOK_PRE_BYTELEVEL,
    TOK_PRE_METASPACE,
    TOK_PRE_DIGITS,
    TOK_PRE_WHITESPACE,
    TOK_PRE_WHITESPACE_SPLIT,
    TOK_PRE_PUNCTUATION
};
enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
typedef struct tok_pre_step {
    int kind;
    tok_pattern pat; /* Split; ByteLevel with use_regex; Whitespace */
    int behavior;
    bool invert;
    bool add_prefix_space;  /* ByteLevel */
    bool individual_digits; /* Digits */
    char rep[5];            /* Metaspace replacement (UTF-8) */
    int rep_len, prepend_scheme;
    bool split;
} tok_pre_step;

enum tok_dec_kind {
    TOK_DEC_BYTELEVEL,
    TOK_DEC_REPLACE,
    TOK_DEC_BYTEFALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_METASPACE
};
typedef struct tok_dec_step {
    int kind;
    tok_pattern pat; /* Replace */
    char *str;       /* Replace content */
    size_t str_len;
    uint32_t strip_cp; /* Strip content char */
    int start, stop;   /* Strip counts */
    char rep[5];       /* Metaspace */
    int rep_len, prepend_scheme;
} tok_dec_step;

/* A post-processing step: a template of items; an item is $A (n_ids == -1) or a run of ids. */
typedef struct tok_post_item {
    int32_t *ids;
    int n_ids;
} tok_post_item;
typedef struct tok_post_step {
    tok_post_item *items;
    int n_items;
} tok_post_step;

typedef struct tok_added {
    uint32_t off, len; /* content in tok->added_arena */
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
    char *match; /* text to match: content, normalized when `normalized` */
    size_t match_len;
} tok_added;

struct brisk_tokenizer {
    /* model vocab: piece text by id (offsets into arena); ids not in the model have len 0 and
     * off UINT32_MAX */
    tok_buf arena;
    uint32_t *piece_off, *piece_len;
    int32_t n_vocab; /* max id + 1 over model vocab and added tokens */
    tok_strmap vocab;
    tok_pairmap merges;
    int32_t unk_id; /* -1 when none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix, *eow_suffix; /* NULL when absent or empty */
    size_t cont_prefix_len, eow_suffix_len;
    int32_t byte_ids[256]; /* <0xHH> ids for byte fallback, -1 when absent */

    /* added tokens, sorted by first byte then length descending for leftmost-longest search */
    tok_added *added;
    int n_added;
    tok_buf added_arena;
    tok_strmap added_map; /* content -> index into added */
    int32_t *added_by_id; /* id -> index into added, -1 */
    /* search order: indices into added sorted by (normalized, first byte, length descending);
     * bucket[set][b]..bucket[set][b+1] are the candidates of set (0 raw, 1 normalized) that
     * start with byte b */
    int32_t *search;
    uint32_t bucket[2][257];
    bool has_normalized_added;

    tok_norm_step *norm;
    int n_norm;
    tok_pre_step *pre;
    int n_pre;
    tok_post_step *post;
    int n_post;
    tok_dec_step *dec;
    int n_dec;
    bool has_decoder;

    /* byte-level alphabet (GPT-2 bytes_to_unicode) */
    char b2u[256][3];
    uint8_t b2u_len[256];
    int16_t u2b[512]; /* code point -> byte, -1 */

    int32_t bos_id, eos_id;
};

/* ---- per-file entry points ---- */
brisk_status tok_norm_parse(brisk_tokenizer *t, const cJSON *j);
/* Applies the normalizer steps to s[0..n) into out (cleared first). *origin is cleared when
 * the first character of the result no longer aligns with the first one of the input (a
 * leading part was removed): HF's Metaspace prepend_scheme "first" looks at that alignment. */
brisk_status tok_normalize(const brisk_tokenizer *t, const char *s, size_t n, tok_buf *out,
                           pcre2_match_data *md, bool *origin);
brisk_status tok_norm_step_apply(const tok_norm_step *st, const char *s, size_t n, tok_buf *out,
                                 pcre2_match_data *md, bool *origin);

typedef struct tok_span {
    size_t off, len;
    bool first; /* starts at offset 0 of the original input (Metaspace prepend_scheme first) */
} tok_span;
typedef struct tok_pieces {
    tok_buf text;
    tok_span *sp;
    size_t n, cap;
} tok_pieces;
int tok_pieces_add(tok_pieces *p, const char *s, size_t len, bool first);
void tok_pieces_free(tok_pieces *p);

brisk_status tok_pre_parse(brisk_tokenizer *t, const cJSON *j);
/* Splits one normalized segment into pre-tokens (out is cleared first; tmp is scratch). */
brisk_status tok_pretokenize(const brisk_tokenizer *t, const char *s, size_t n, bool first,
                             tok_pieces *out, tok_pieces *tmp, pcre2_match_data *md);

/* Per-call BPE scratch. */
typedef struct tok_bpe_scratch {
    struct tok_sym *sym;
    size_t sym_cap;
    struct tok_heap_ent *heap;
    size_t heap_cap;
} tok_bpe_scratch;
/* Encodes one pre-token with the BPE model, appending ids to out. */
brisk_status tok_bpe_word(const brisk_tokenizer *t, const char *w, size_t n, tok_bpe_scratch *sc,
                          tok_ids *out);
void tok_bpe_scratch_free(tok_bpe_scratch *sc);

brisk_status tok_added_init(brisk_tokenizer *t, const cJSON *arr);
/* Finds added-token matches in s[0..n) (normalized == which set to match). Calls back
 * cb(ctx, seg_start, seg_len, added_index or -1) for every segment in order. */
typedef brisk_status (*tok_segment_cb)(void *ctx, const char *s, size_t off, size_t len, int added);
brisk_status tok_added_split(const brisk_tokenizer *t, const char *s, size_t n, bool normalized,
                             tok_segment_cb cb, void *ctx);

brisk_status tok_post_parse(brisk_tokenizer *t, const cJSON *j);
brisk_status tok_dec_parse(brisk_tokenizer *t, const cJSON *j);
void tok_steps_free(brisk_tokenizer *t);

/* Decodes ids to text in out (cleared first). Unknown ids are an error. */
brisk_status tok_decode_to(const brisk_tokenizer *t, const int32_t *ids, size_t n,
                           bool skip_special, tok_buf *out);

/* Loads a tokenizer.json held in memory (the fuzz target's entry; no tokenizer_config). */
brisk_status tok_load_buffer(const char *json, size_t len, brisk_tokenizer **out);

/* JSON helpers for the loader files. */
const char *tok_json_str(const cJSON *o, const char *key);
bool tok_json_bool(const cJSON *o, const char *key, bool dflt);
/* Looks an added token or vocab piece up by text; -1 when none. */
int32_t tok_lookup(const brisk_tokenizer *t, const char *s, size_t n);

#endif
