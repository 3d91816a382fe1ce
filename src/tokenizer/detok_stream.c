/* detok_stream.c: the streaming detokenizer: decodes a short window of recent ids and emits the
 * part of the text that became stable, so the concatenation equals decode(all ids). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Window invariant: ids[p..r) decode (as a window) to text whose continuation was emitted up to
 * r; ids[r..n) are pushed but not yet emitted (held because their text ended in an incomplete
 * UTF-8 sequence, which the decoders show as U+FFFD). The window start p only moves past text
 * that was non-empty, so decoder rules that look at the start of the text (SentencePiece's
 * Strip of one leading space, Metaspace's first token) act the same in the window as in the
 * whole sequence. */
struct brisk_detok {
    const brisk_tokenizer *tok;
    bool skip_special;
    bool hold_bytes; /* the decoder has ByteFallback: a run of <0xHH> pieces decodes as a whole
                        (one U+FFFD per byte when the run is invalid UTF-8), so text is held
                        until the run ends */
    tok_ids ids;
    size_t p, r;
    tok_buf prefix, full;
};

brisk_status brisk_detok_create(const brisk_tokenizer *tok, bool skip_special, brisk_detok **out) {
    if (out) *out = NULL;
    if (!tok || !out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_detok_create: tokenizer and out required");
    brisk_detok *d = calloc(1, sizeof *d);
    if (!d) return brisk_errorf(BRISK_ERR_OOM, "brisk_detok_create: out of memory");
    d->tok = tok;
    d->skip_special = skip_special;
    for (int i = 0; i < tok->n_dec; i++) d->hold_bytes |= tok->dec[i].kind == TOK_DEC_BYTEFALLBACK;
    *out = d;
    return BRISK_OK;
}

void brisk_detok_destroy(brisk_detok *d) {
    if (!d) return;
    tok_ids_free(&d->ids);
    tok_buf_free(&d->prefix);
    tok_buf_free(&d->full);
    free(d);
}

void brisk_detok_reset(brisk_detok *d) {
    if (!d) return;
    d->ids.n = 0;
    d->p = d->r = 0;
}

static bool ends_incomplete(const tok_buf *b) {
    return b->n >= 3 && memcmp(b->p + b->n - 3, "\xEF\xBF\xBD", 3) == 0;
}

/* Computes the not-yet-emitted text of the window; *stable says whether it may be emitted. */
static brisk_status pending(brisk_detok *d, const char **text, size_t *len, bool *stable) {
    const int32_t *ids = d->ids.p;
    brisk_status st = tok_decode_to(d->tok, ids + d->p, d->r - d->p, d->skip_special, &d->prefix);
    if (!st) st = tok_decode_to(d->tok, ids + d->p, d->ids.n - d->p, d->skip_special, &d->full);
    if (st) return st;
    if (d->full.n < d->prefix.n || memcmp(d->full.p, d->prefix.p, d->prefix.n) != 0) {
        *text = "", *len = 0, *stable = false; /* the window text changed: wait for more ids */
        return BRISK_OK;
    }
    *text = d->full.p + d->prefix.n;
    *len = d->full.n - d->prefix.n;
    *stable = !ends_incomplete(&d->full);
    if (d->hold_bytes && d->ids.n > 0) {
        const char *piece = brisk_tokenizer_token_text(d->tok, ids[d->ids.n - 1]);
        if (strlen(piece) == 6 && memcmp(piece, "<0x", 3) == 0 && piece[5] == '>') *stable = false;
    }
    return BRISK_OK;
}

static brisk_status emit(brisk_detok *d, const char *fn, const char *text, size_t len, char *buf,
                         size_t cap, size_t *len_out) {
    *len_out = len;
    if (len > cap)
        return brisk_errorf(BRISK_ERR_BUFFER_TOO_SMALL, "%s: %zu bytes of text do not fit in %zu",
                            fn, len, cap);
    if (len) memcpy(buf, text, len);
    if (len < cap) buf[len] = 0;
    if (len) d->p = d->r;
    d->r = d->ids.n;
    return BRISK_OK;
}

brisk_status brisk_detok_push(brisk_detok *d, int32_t id, char *buf, size_t cap, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!d || (!buf && cap) || !len_out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_detok_push: detok and len_out required");
    if (id < 0 || id >= d->tok->n_vocab || !brisk_tokenizer_token_text(d->tok, id))
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_detok_push: id %d is not in the vocabulary (size %d)", (int)id,
                            (int)d->tok->n_vocab);
    if (tok_ids_push(&d->ids, id))
        return brisk_errorf(BRISK_ERR_OOM, "brisk_detok_push: out of memory");
    const char *text;
    size_t len;
    bool stable;
    brisk_status st = pending(d, &text, &len, &stable);
    if (!st && !stable) {
        if (cap) buf[0] = 0;
        return BRISK_OK; /* held until the character completes */
    }
    if (!st) st = emit(d, "brisk_detok_push", text, len, buf, cap, len_out);
    if (st) d->ids.n--; /* the id was not consumed: the caller may retry */
    return st;
}

brisk_status brisk_detok_flush(brisk_detok *d, char *buf, size_t cap, size_t *len_out) {
    if (len_out) *len_out = 0;
    if (!d || (!buf && cap) || !len_out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_detok_flush: detok and len_out required");
    const char *text;
    size_t len;
    bool stable;
    brisk_status st = pending(d, &text, &len, &stable);
    if (st) return st;
    return emit(d, "brisk_detok_flush", text, len, buf, cap, len_out);
}
