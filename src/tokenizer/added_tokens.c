/* added_tokens.c: tokenizer.json "added_tokens": loading, and splitting input text on them
 * (leftmost-longest, with single_word, lstrip and rstrip) before normalization and the model. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sort_key {
    int normalized, first;
    size_t len;
    int32_t idx;
} sort_key;

static int search_cmp(const void *pa, const void *pb) {
    const sort_key *a = pa, *b = pb;
    if (a->normalized != b->normalized) return a->normalized - b->normalized;
    if (a->first != b->first) return a->first - b->first;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->idx - b->idx;
}

static brisk_status fmt(int i, const char *what) {
    return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: added_tokens[%d]: %s", i, what);
}

brisk_status tok_added_init(brisk_tokenizer *t, const cJSON *arr) {
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    t->added_by_id = malloc((size_t)(t->n_vocab > 0 ? t->n_vocab : 1) * sizeof *t->added_by_id);
    t->added = calloc((size_t)(n > 0 ? n : 1), sizeof *t->added);
    t->search = malloc((size_t)(n > 0 ? n : 1) * sizeof *t->search);
    if (!t->added_by_id || !t->added || !t->search || tok_strmap_init(&t->added_map, (size_t)n))
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    for (int32_t i = 0; i < t->n_vocab; i++) t->added_by_id[i] = -1;
    pcre2_match_data *md = pcre2_match_data_create(16, NULL);
    if (!md) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    brisk_status st = BRISK_OK;
    tok_buf norm = {0};
    int i = 0;
    for (const cJSON *a = n ? arr->child : NULL; a && !st; a = a->next, i++) {
        const cJSON *idj = cJSON_GetObjectItem(a, "id");
        const char *content = tok_json_str(a, "content");
        if (!cJSON_IsNumber(idj) || idj->valuedouble < 0 || idj->valuedouble >= t->n_vocab) {
            st = fmt(i, "\"id\" missing or out of range");
            break;
        }
        if (!content || !*content) {
            st = fmt(i, "\"content\" missing or empty");
            break;
        }
        tok_added *ad = &t->added[t->n_added];
        ad->id = (int32_t)idj->valuedouble;
        ad->special = tok_json_bool(a, "special", false);
        ad->lstrip = tok_json_bool(a, "lstrip", false);
        ad->rstrip = tok_json_bool(a, "rstrip", false);
        ad->single_word = tok_json_bool(a, "single_word", false);
        ad->normalized = tok_json_bool(a, "normalized", !ad->special) && t->n_norm > 0;
        size_t len = strlen(content);
        ad->off = (uint32_t)t->added_arena.n;
        ad->len = (uint32_t)len;
        if (tok_buf_put(&t->added_arena, content, len + 1)) {
            st = brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
            break;
        }
        /* normalized tokens are matched in normalized text, so match their normalized form */
        const char *m = content;
        size_t ml = len;
        if (ad->normalized) {
            bool origin = true;
            st = tok_normalize(t, content, len, &norm, md, &origin);
            if (st) break;
            if (norm.n == 0) {
                st = fmt(i, "content normalizes to nothing");
                break;
            }
            m = norm.p, ml = norm.n;
        }
        ad->match = malloc(ml + 1);
        if (!ad->match) {
            st = brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
            break;
        }
        memcpy(ad->match, m, ml);
        ad->match[ml] = 0;
        ad->match_len = ml;
        if (ad->normalized) t->has_normalized_added = true;
        t->added_by_id[ad->id] = t->n_added;
        t->n_added++;
    }
    pcre2_match_data_free(md);
    tok_buf_free(&norm);
    if (st) return st;
    sort_key *keys = malloc((size_t)(t->n_added + 1) * sizeof *keys);
    if (!keys) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    for (int k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        tok_strmap_put(&t->added_map, t->added_arena.p, a->off, a->len, (uint32_t)k);
        keys[k] = (sort_key){a->normalized, (uint8_t)a->match[0], a->match_len, k};
    }
    qsort(keys, (size_t)t->n_added, sizeof *keys, search_cmp);
    for (int k = 0; k < t->n_added; k++) t->search[k] = keys[k].idx;
    free(keys);
    /* bucket[set][b] = first search index of set `set` whose first byte is >= b */
    for (int set = 0; set < 2; set++) {
        int k = 0;
        while (k < t->n_added && (int)t->added[t->search[k]].normalized < set) k++;
        for (int b = 0; b <= 256; b++) {
            while (k < t->n_added && (int)t->added[t->search[k]].normalized == set &&
                   (uint8_t)t->added[t->search[k]].match[0] < b)
                k++;
            t->bucket[set][b] = (uint32_t)k;
        }
    }
    return BRISK_OK;
}

/* Is the character ending before s[end] (or starting at s[start]) a word character? */
static bool word_before(const char *s, size_t end) {
    if (end == 0) return false;
    size_t k = end - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    int l;
    return tok_is_alnum(tok_utf8_decode(s + k, end - k, &l));
}

static bool word_after(const char *s, size_t n, size_t start) {
    if (start >= n) return false;
    int l;
    return tok_is_alnum(tok_utf8_decode(s + start, n - start, &l));
}

/* Leftmost-longest match of the set at or after pos: returns the added index or -1. */
static int find_match(const brisk_tokenizer *t, int set, const char *s, size_t n, size_t pos,
                      size_t *at) {
    for (size_t i = pos; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        for (uint32_t k = t->bucket[set][b]; k < t->bucket[set][b + 1]; k++) {
            const tok_added *a = &t->added[t->search[k]];
            if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) {
                *at = i;
                return t->search[k];
            }
        }
    }
    return -1;
}

brisk_status tok_added_split(const brisk_tokenizer *t, const char *s, size_t n, bool normalized,
                             tok_segment_cb cb, void *ctx) {
    int set = normalized ? 1 : 0;
    size_t seg = 0, pos = 0; /* seg: start of the text not yet handed out */
    brisk_status st;
    if (t->bucket[set][0] == t->bucket[set][256]) return n ? cb(ctx, s, 0, n, -1) : BRISK_OK;
    while (pos < n) {
        size_t ms;
        int k = find_match(t, set, s, n, pos, &ms);
        if (k < 0) break;
        const tok_added *a = &t->added[k];
        size_t start = ms, stop = ms + a->match_len;
        pos = stop;
        if (a->single_word && (word_before(s, start) || word_after(s, n, stop))) continue;
        if (a->lstrip) {
            while (start > seg) {
                size_t q = start - 1;
                while (q > seg && ((uint8_t)s[q] & 0xC0) == 0x80) q--;
                int l;
                if (!tok_is_whitespace(tok_utf8_decode(s + q, start - q, &l))) break;
                start = q;
            }
        }
        if (a->rstrip) {
            while (stop < n) {
                int l;
                if (!tok_is_whitespace(tok_utf8_decode(s + stop, n - stop, &l))) break;
                stop += (size_t)l;
            }
            pos = stop;
        }
        if (start > seg && (st = cb(ctx, s, seg, start - seg, -1))) return st;
        if ((st = cb(ctx, s, start, stop - start, k))) return st;
        seg = stop;
    }
    if (seg < n) return cb(ctx, s, seg, n - seg, -1);
    return BRISK_OK;
}
