/* tokenizer_json.c: loads tokenizer.json (model BPE: vocab, merges, options) and the optional
 * tokenizer_config.json (bos/eos), and answers the vocabulary queries of the public API. */
#include "tok_internal.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_VOCAB (1 << 24) /* ids above this are treated as a malformed file */

const char *tok_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool tok_json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsTrue(v)) return true;
    if (cJSON_IsFalse(v)) return false;
    return dflt;
}

static brisk_status read_file(const char *path, char **out, size_t *len) {
    *out = brisk_read_file(path, len);
    if (*out) return BRISK_OK;
    if (errno == ENOMEM)
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory reading %s", path);
    return brisk_errorf(BRISK_ERR_IO, "brisk_tokenizer_load: cannot read %s: %s", path,
                        strerror(errno));
}

static bool json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= MAX_VOCAB ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return false;
    *id = (int32_t)v->valuedouble;
    return true;
}

static char *dup_nonempty(const char *s, size_t *len) {
    if (!s || !*s) return NULL;
    *len = strlen(s);
    return strdup(s);
}

int32_t tok_lookup(const brisk_tokenizer *t, const char *s, size_t n) {
    int64_t a = tok_strmap_get(&t->added_map, t->added_arena.p, s, n);
    if (a >= 0) return t->added[a].id;
    int64_t v = tok_strmap_get(&t->vocab, t->arena.p, s, n);
    return v >= 0 ? (int32_t)v : -1;
}

static brisk_status load_merges(brisk_tokenizer *t, const cJSON *merges) {
    int n = cJSON_GetArraySize(merges);
    if (tok_pairmap_init(&t->merges, (size_t)n))
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory for merges");
    tok_buf cat = {0};
    brisk_status st = BRISK_OK;
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp) {
                st = brisk_errorf(BRISK_ERR_FORMAT,
                                  "brisk_tokenizer_load: model.merges[%u] \"%.40s\" has no space",
                                  rank, m->valuestring);
                break;
            }
            a = m->valuestring, la = (size_t)(sp - a), b = sp + 1, lb = strlen(b);
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, la = strlen(a);
            b = m->child->next->valuestring, lb = strlen(b);
        } else {
            st = brisk_errorf(
                BRISK_ERR_FORMAT,
                "brisk_tokenizer_load: model.merges[%u] is neither \"a b\" nor [a, b]", rank);
            break;
        }
        int64_t ia = tok_strmap_get(&t->vocab, t->arena.p, a, la);
        int64_t ib = tok_strmap_get(&t->vocab, t->arena.p, b, lb);
        size_t skip = t->cont_prefix_len < lb ? t->cont_prefix_len : lb;
        cat.n = 0;
        if (tok_buf_put(&cat, a, la) || tok_buf_put(&cat, b + skip, lb - skip)) {
            st = brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
            break;
        }
        int64_t im = tok_strmap_get(&t->vocab, t->arena.p, cat.p, cat.n);
        if (ia < 0 || ib < 0 || im < 0) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_tokenizer_load: model.merges[%u] (\"%.*s\" \"%.*s\") uses a "
                              "token that is not in the vocab",
                              rank, (int)(la > 40 ? 40 : la), a, (int)(lb > 40 ? 40 : lb), b);
            break;
        }
        tok_pairmap_put(&t->merges, (uint32_t)ia, (uint32_t)ib, rank, (uint32_t)im);
    }
    tok_buf_free(&cat);
    return st;
}

static brisk_status load_model(brisk_tokenizer *t, const cJSON *model, int32_t max_added) {
    if (!cJSON_IsObject(model))
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: missing \"model\" object");
    const char *type = tok_json_str(model, "type");
    if (!type) type = cJSON_GetObjectItem(model, "merges") ? "BPE" : "(none)";
    if (strcmp(type, "BPE") != 0)
        return brisk_errorf(BRISK_ERR_UNSUPPORTED,
                            "brisk_tokenizer_load: model type \"%s\" is not supported (only BPE)",
                            type);
    const cJSON *dropout = cJSON_GetObjectItem(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return brisk_errorf(
            BRISK_ERR_UNSUPPORTED,
            "brisk_tokenizer_load: model.dropout %g is not supported (training only)",
            dropout->valuedouble);
    const cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_tokenizer_load: model needs a \"vocab\" object and a \"merges\" "
                            "array");
    t->cont_prefix =
        dup_nonempty(tok_json_str(model, "continuing_subword_prefix"), &t->cont_prefix_len);
    t->eow_suffix = dup_nonempty(tok_json_str(model, "end_of_word_suffix"), &t->eow_suffix_len);
    t->fuse_unk = tok_json_bool(model, "fuse_unk", false);
    t->byte_fallback = tok_json_bool(model, "byte_fallback", false);
    t->ignore_merges = tok_json_bool(model, "ignore_merges", false);

    int nv = cJSON_GetArraySize(vocab);
    int32_t max_id = max_added;
    if (tok_strmap_init(&t->vocab, (size_t)nv))
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory for vocab");
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!json_id(e, &id))
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_tokenizer_load: model.vocab[\"%.40s\"] is not an id in "
                                "[0, %d)",
                                e->string, MAX_VOCAB);
        if (id > max_id) max_id = id;
        size_t len = strlen(e->string);
        uint32_t off = (uint32_t)t->arena.n;
        if (tok_buf_put(&t->arena, e->string, len + 1))
            return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory for vocab");
        tok_strmap_put(&t->vocab, t->arena.p, off, (uint32_t)len, (uint32_t)id);
    }
    t->n_vocab = max_id + 1;
    t->piece_off = malloc((size_t)t->n_vocab * sizeof *t->piece_off);
    t->piece_len = calloc((size_t)t->n_vocab, sizeof *t->piece_len);
    if (!t->piece_off || !t->piece_len)
        return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory for vocab");
    for (int32_t i = 0; i < t->n_vocab; i++) t->piece_off[i] = UINT32_MAX;
    for (size_t i = 0; i <= t->vocab.mask; i++) {
        const tok_strmap_ent *e = &t->vocab.slots[i];
        if (e->value == UINT32_MAX) continue;
        t->piece_off[e->value] = e->off;
        t->piece_len[e->value] = e->len;
    }

    const char *unk = tok_json_str(model, "unk_token");
    t->unk_id = -1;
    if (unk) {
        int64_t u = tok_strmap_get(&t->vocab, t->arena.p, unk, strlen(unk));
        if (u < 0)
            return brisk_errorf(
                BRISK_ERR_FORMAT,
                "brisk_tokenizer_load: model.unk_token \"%.40s\" is not in the vocab", unk);
        t->unk_id = (int32_t)u;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int64_t id = tok_strmap_get(&t->vocab, t->arena.p, name, 6);
        t->byte_ids[b] = (int32_t)id;
    }
    return load_merges(t, merges);
}

static void init_bytelevel(brisk_tokenizer *t) {
    int n = 0;
    for (int i = 0; i < 512; i++) t->u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool same = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = same ? (uint32_t)b : 256u + (uint32_t)n++;
        char u[4];
        t->b2u_len[b] = (uint8_t)tok_utf8_encode(cp, u);
        memcpy(t->b2u[b], u, t->b2u_len[b]);
        t->u2b[cp] = (int16_t)b;
    }
}

/* bos_token/eos_token in tokenizer_config.json: a string or an AddedToken object. */
static int32_t config_token(const brisk_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : tok_json_str(v, "content");
    return s ? tok_lookup(t, s, strlen(s)) : -1;
}

static brisk_status load_config(brisk_tokenizer *t, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return BRISK_OK; /* optional */
    char *text;
    size_t len;
    brisk_status s = read_file(path, &text, &len);
    if (s) return s;
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: %s is not a JSON object",
                            path);
    }
    t->bos_id = config_token(t, cfg, "bos_token");
    t->eos_id = config_token(t, cfg, "eos_token");
    cJSON_Delete(cfg);
    return BRISK_OK;
}

static brisk_status parse_json(brisk_tokenizer *t, const char *path, const char *text, size_t len) {
    brisk_status s;
    /* every string taken from the file must be valid UTF-8 (regexes run without re-checking) */
    size_t valid = tok_utf8_valid_prefix(text, len);
    if (valid != len)
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_tokenizer_load: %s: not valid UTF-8 at byte %zu", path, valid);
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_tokenizer_load: %s: invalid JSON near byte %zu", path, off);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return brisk_errorf(BRISK_ERR_FORMAT, "brisk_tokenizer_load: %s is not a JSON object",
                            path);
    }
    const cJSON *added = cJSON_GetObjectItem(j, "added_tokens");
    int32_t max_added = -1;
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        int32_t id;
        if (json_id(cJSON_GetObjectItem(a, "id"), &id) && id > max_added) max_added = id;
    }
    s = load_model(t, cJSON_GetObjectItem(j, "model"), max_added);
    if (!s) s = tok_norm_parse(t, cJSON_GetObjectItem(j, "normalizer"));
    if (!s) s = tok_pre_parse(t, cJSON_GetObjectItem(j, "pre_tokenizer"));
    if (!s) s = tok_post_parse(t, cJSON_GetObjectItem(j, "post_processor"));
    if (!s) s = tok_dec_parse(t, cJSON_GetObjectItem(j, "decoder"));
    if (!s) s = tok_added_init(t, added);
    cJSON_Delete(j);
    return s;
}

static brisk_status load_json(brisk_tokenizer *t, const char *path) {
    char *text;
    size_t len;
    brisk_status s = read_file(path, &text, &len);
    if (s) return s;
    s = parse_json(t, path, text, len);
    free(text);
    return s;
}

static brisk_tokenizer *tok_new(void) {
    brisk_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bos_id = t->eos_id = t->unk_id = -1;
    init_bytelevel(t);
    return t;
}

brisk_status tok_load_buffer(const char *json, size_t len, brisk_tokenizer **out) {
    *out = NULL;
    brisk_tokenizer *t = tok_new();
    if (!t) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    brisk_status s = parse_json(t, "(buffer)", json, len);
    if (s)
        brisk_tokenizer_free(t);
    else
        *out = t;
    return s;
}

brisk_status brisk_tokenizer_load(const char *path, brisk_tokenizer **out) {
    if (out) *out = NULL;
    if (!path || !out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_tokenizer_load: path and out are required");
    brisk_tokenizer *t = tok_new();
    if (!t) return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
    struct stat st;
    brisk_status s;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t n = strlen(path) + 32;
        char *p = malloc(n);
        if (!p) {
            brisk_tokenizer_free(t);
            return brisk_errorf(BRISK_ERR_OOM, "brisk_tokenizer_load: out of memory");
        }
        snprintf(p, n, "%s/tokenizer.json", path);
        s = load_json(t, p);
        if (!s) {
            snprintf(p, n, "%s/tokenizer_config.json", path);
            s = load_config(t, p);
        }
        free(p);
    } else {
        s = load_json(t, path);
        if (!s) {
            /* a tokenizer_config.json next to the file counts too */
            const char *slash = strrchr(path, '/');
            size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
            char *p = malloc(dl + 32);
            if (p) {
                memcpy(p, path, dl);
                strcpy(p + dl, "tokenizer_config.json");
                s = load_config(t, p);
                free(p);
            }
        }
    }
    if (s) {
        brisk_tokenizer_free(t);
        return s;
    }
    *out = t;
    return BRISK_OK;
}

void brisk_tokenizer_free(brisk_tokenizer *t) {
    if (!t) return;
    tok_buf_free(&t->arena);
    free(t->piece_off);
    free(t->piece_len);
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->merges);
    free(t->cont_prefix);
    free(t->eow_suffix);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].match);
    free(t->added);
    tok_buf_free(&t->added_arena);
    tok_strmap_free(&t->added_map);
    free(t->added_by_id);
    tok_steps_free(t);
    free(t);
}

int brisk_tokenizer_n_vocab(const brisk_tokenizer *t) {
    return t ? t->n_vocab : 0;
}

const char *brisk_tokenizer_token_text(const brisk_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    if (t->added_by_id[id] >= 0) return t->added_arena.p + t->added[t->added_by_id[id]].off;
    if (t->piece_off[id] == UINT32_MAX) return NULL;
    return t->arena.p + t->piece_off[id];
}

int32_t brisk_tokenizer_token_id(const brisk_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    return tok_lookup(t, piece, strlen(piece));
}

bool brisk_tokenizer_is_special(const brisk_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab || t->added_by_id[id] < 0) return false;
    return t->added[t->added_by_id[id]].special;
}

int32_t brisk_tokenizer_bos_id(const brisk_tokenizer *t) {
    return t ? t->bos_id : -1;
}
int32_t brisk_tokenizer_eos_id(const brisk_tokenizer *t) {
    return t ? t->eos_id : -1;
}
