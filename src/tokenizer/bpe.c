/* bpe.c: the BPE model on one pre-token: initial symbols (with continuing-subword prefix,
 * end-of-word suffix, byte fallback, unk fusing), then heap-ordered merges in O(n log n). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct tok_sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len; /* bytes of the word it covers; 0 = merged away */
} tok_sym;

/* A candidate merge of the symbol at pos with its right neighbour. The heap is a min-heap on
 * (rank, pos): lowest merge rank first, leftmost among equal ranks. */
typedef struct tok_heap_ent {
    uint32_t rank, pos;
    int32_t merged;
} tok_heap_ent;

static brisk_status oom(void) {
    return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_encode: out of memory");
}

static inline bool heap_less(const tok_heap_ent *a, const tok_heap_ent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tok_heap_ent *h, size_t *n, tok_heap_ent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static tok_heap_ent heap_pop(tok_heap_ent *h, size_t *n) {
    tok_heap_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

void tok_bpe_scratch_free(tok_bpe_scratch *sc) {
    free(sc->sym);
    free(sc->heap);
    memset(sc, 0, sizeof *sc);
}

static int add_sym(tok_bpe_scratch *sc, size_t *n, int32_t id, uint32_t len) {
    if (grow((void **)&sc->sym, &sc->sym_cap, *n + 1, sizeof(tok_sym))) return -1;
    sc->sym[*n] = (tok_sym){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
    return 0;
}

/* Looks up one character of the word with the prefix/suffix decoration HF applies. */
static int64_t lookup_char(const brisk_tokenizer *t, const char *c, size_t cl, bool not_first,
                           bool last, char *tmp, size_t *tl) {
    size_t n = 0;
    if (not_first && t->cont_prefix)
        memcpy(tmp, t->cont_prefix, t->cont_prefix_len), n = t->cont_prefix_len;
    memcpy(tmp + n, c, cl);
    n += cl;
    if (last && t->eow_suffix)
        memcpy(tmp + n, t->eow_suffix, t->eow_suffix_len), n += t->eow_suffix_len;
    *tl = n;
    return tok_strmap_get(&t->vocab, t->arena.p, tmp, n);
}

brisk_status tok_bpe_word(const brisk_tokenizer *t, const char *w, size_t n, tok_bpe_scratch *sc,
                          tok_ids *out) {
    if (n == 0) return BRISK_OK;
    if (t->ignore_merges) {
        int64_t id = tok_strmap_get(&t->vocab, t->arena.p, w, n);
        if (id >= 0) return tok_ids_push(out, (int32_t)id) ? oom() : BRISK_OK;
    }
    size_t ns = 0;
    int32_t unk_pending = -1; /* byte length of a pending (maybe fused) unk symbol */
    size_t deco = t->cont_prefix_len + t->eow_suffix_len;
    char stackbuf[64];
    char *tmp = deco + 4 <= sizeof stackbuf ? stackbuf : malloc(deco + 4);
    if (!tmp) return oom();
    brisk_status e = BRISK_OK;
    for (size_t i = 0; i < n && !e;) {
        int cl;
        tok_utf8_decode(w + i, n - i, &cl);
        size_t tl;
        int64_t id = lookup_char(t, w + i, (size_t)cl, i > 0, i + (size_t)cl == n, tmp, &tl);
        if (id >= 0) {
            if (unk_pending >= 0 && add_sym(sc, &ns, t->unk_id, (uint32_t)unk_pending)) e = oom();
            unk_pending = -1;
            if (add_sym(sc, &ns, (int32_t)id, (uint32_t)cl)) e = oom();
            i += (size_t)cl;
            continue;
        }
        bool done = false;
        if (t->byte_fallback) {
            done = true;
            for (size_t k = 0; k < tl; k++) done = done && t->byte_ids[(uint8_t)tmp[k]] >= 0;
            for (size_t k = 0; k < tl && done && !e; k++)
                if (add_sym(sc, &ns, t->byte_ids[(uint8_t)tmp[k]], 1)) e = oom();
        }
        if (!done && t->unk_id >= 0) {
            if (unk_pending >= 0 && t->fuse_unk) {
                unk_pending += cl;
            } else {
                if (unk_pending >= 0 && add_sym(sc, &ns, t->unk_id, (uint32_t)unk_pending))
                    e = oom();
                unk_pending = cl;
            }
        }
        /* no unk token: HF drops the character */
        i += (size_t)cl;
    }
    if (tmp != stackbuf) free(tmp);
    if (!e && unk_pending >= 0 && add_sym(sc, &ns, t->unk_id, (uint32_t)unk_pending)) e = oom();
    if (e) return e;
    if (ns == 0) return BRISK_OK;
    sc->sym[ns - 1].next = -1;

    /* every adjacent pair that has a merge is a candidate; at most one new pair per side is
     * added per merge, so 3n entries bound the heap */
    if (grow((void **)&sc->heap, &sc->heap_cap, 3 * ns + 1, sizeof(tok_heap_ent))) return oom();
    size_t nh = 0;
    tok_sym *s = sc->sym;
    for (size_t i = 0; i + 1 < ns; i++) {
        const tok_pairmap_ent *m =
            tok_pairmap_get(&t->merges, (uint32_t)s[i].id, (uint32_t)s[i + 1].id);
        if (m) heap_push(sc->heap, &nh, (tok_heap_ent){m->rank, (uint32_t)i, (int32_t)m->merged});
    }
    while (nh) {
        tok_heap_ent top = heap_pop(sc->heap, &nh);
        tok_sym *a = &s[top.pos];
        if (a->len == 0 || a->next < 0) continue;
        tok_sym *b = &s[a->next];
        const tok_pairmap_ent *m = tok_pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)b->id);
        if (!m || (int32_t)m->merged != top.merged) continue; /* stale entry */
        a->id = top.merged;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) s[b->next].prev = (int32_t)top.pos;
        b->len = 0;
        if (a->prev >= 0) {
            m = tok_pairmap_get(&t->merges, (uint32_t)s[a->prev].id, (uint32_t)a->id);
            if (m)
                heap_push(sc->heap, &nh,
                          (tok_heap_ent){m->rank, (uint32_t)a->prev, (int32_t)m->merged});
        }
        if (a->next >= 0) {
            m = tok_pairmap_get(&t->merges, (uint32_t)a->id, (uint32_t)s[a->next].id);
            if (m) heap_push(sc->heap, &nh, (tok_heap_ent){m->rank, top.pos, (int32_t)m->merged});
        }
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (tok_ids_push(out, s[i].id)) return oom();
    return BRISK_OK;
}
