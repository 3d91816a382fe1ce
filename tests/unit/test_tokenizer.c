/* test_tokenizer.c: tokenizer parity with Hugging Face: llama.cpp's 46 reference strings x 3
 * tokenizers, our HF goldens (tests/golden/tok) for encode/decode/streaming, stories260K BOS.
 * Usage: test_tokenizer SHARED_DIR GOLDEN_DIR */
#include "check.h"
#include "testutil.h"

#include "brisk.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static brisk_tokenizer *load(const char *dir, const char *sub) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    brisk_tokenizer *t = NULL;
    brisk_status st = brisk_tokenizer_load(path, &t);
    CHECK_MSG(st == BRISK_OK, "load %s: %s", path, brisk_last_error());
    return t;
}

/* Encodes into a malloc'd array (the two-call buffer idiom). */
static int32_t *encode(const brisk_tokenizer *t, const char *s, size_t len, bool sp, size_t *n) {
    brisk_status st = brisk_tokenizer_encode(t, s, len, sp, NULL, 0, n);
    if (st != BRISK_OK && st != BRISK_ERR_BUFFER_TOO_SMALL) {
        fprintf(stderr, "encode failed: %s\n", brisk_last_error());
        return NULL;
    }
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    st = brisk_tokenizer_encode(t, s, len, sp, ids, *n, n);
    if (st) {
        free(ids);
        return NULL;
    }
    return ids;
}

static char *decode(const brisk_tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    size_t len = 0;
    brisk_status st = brisk_tokenizer_decode(t, ids, n, skip, NULL, 0, &len);
    if (st != BRISK_OK && st != BRISK_ERR_BUFFER_TOO_SMALL) return NULL;
    char *b = malloc(len + 1);
    st = brisk_tokenizer_decode(t, ids, n, skip, b, len + 1, &len);
    if (st) {
        free(b);
        return NULL;
    }
    return b;
}

/* Streams ids through a detokenizer, checking each chunk is valid UTF-8 on its own. */
static char *stream(const brisk_tokenizer *t, const int32_t *ids, size_t n, bool skip,
                    bool *chunks_valid) {
    brisk_detok *d;
    if (brisk_detok_create(t, skip, &d)) return NULL;
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    char buf[8];
    *chunks_valid = true;
    for (size_t i = 0; i <= n; i++) {
        size_t got;
        brisk_status st = i < n ? brisk_detok_push(d, ids[i], buf, sizeof buf, &got)
                                : brisk_detok_flush(d, buf, sizeof buf, &got);
        char *chunk = buf, *big = NULL;
        if (st == BRISK_ERR_BUFFER_TOO_SMALL) { /* retry with room: exercises the idiom */
            big = malloc(got + 1);
            st = i < n ? brisk_detok_push(d, ids[i], big, got + 1, &got)
                       : brisk_detok_flush(d, big, got + 1, &got);
            chunk = big;
        }
        if (st) {
            fprintf(stderr, "stream: %s\n", brisk_last_error());
            free(big);
            free(out);
            brisk_detok_destroy(d);
            return NULL;
        }
        /* a chunk never ends inside a character (lead byte without its continuation) */
        for (size_t k = 0; k < got;) {
            unsigned char c = (unsigned char)chunk[k];
            size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (k + l > got) *chunks_valid = false;
            k += l;
        }
        while (len + got + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + len, chunk, got);
        len += got;
        free(big);
    }
    out[len] = 0;
    brisk_detok_destroy(d);
    return out;
}

static bool ids_equal(const int32_t *a, size_t na, const cJSON *arr) {
    if ((size_t)cJSON_GetArraySize(arr) != na) return false;
    size_t i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++)
        if (a[i] != (int32_t)x->valuedouble) return false;
    return true;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

static void test_llamacpp_refs(const char *shared) {
    static const char *pairs[][2] = {{"llama3-instruct", "ggml-vocab-llama-bpe"},
                                     {"qwen3", "ggml-vocab-qwen2"},
                                     {"llama2-spm", "ggml-vocab-llama-spm"}};
    for (size_t p = 0; p < 3; p++) {
        char dir[512], path[1024];
        snprintf(dir, sizeof dir, "tokenizers/%s", pairs[p][0]);
        brisk_tokenizer *t = load(shared, dir);
        if (!t) continue;
        snprintf(path, sizeof path, "%s/tokenizer-tests/%s.gguf.inp", shared, pairs[p][1]);
        char *inp = test_read_file(path, NULL);
        snprintf(path, sizeof path, "%s/tokenizer-tests/%s.gguf.out", shared, pairs[p][1]);
        char *out = test_read_file(path, NULL);
        CHECK(inp && out);
        int ok = 0, n = 0;
        char *s = inp, *o = out;
        const char *sep = "\n__ggml_vocab_test__\n";
        for (char *e; s && (e = strstr(s, sep)); s = e + strlen(sep), n++) {
            char *eol = strchr(o, '\n');
            size_t got_n;
            int32_t *ids = encode(t, s, (size_t)(e - s), false, &got_n);
            /* expected ids from the .out line */
            int32_t exp[4096];
            size_t ne = 0;
            for (char *q = o; q < eol;) {
                char *end;
                long v = strtol(q, &end, 10);
                if (end == q) break;
                exp[ne++] = (int32_t)v;
                q = end;
            }
            bool eq = ids && got_n == ne && memcmp(ids, exp, ne * sizeof *exp) == 0;
            ok += eq;
            CHECK_MSG(eq, "%s test %d: \"%.*s\"", pairs[p][0], n, (int)(e - s > 40 ? 40 : e - s),
                      s);
            if (!eq && ids) print_ids("got", ids, got_n), print_ids("exp", exp, ne);
            free(ids);
            o = eol + 1;
        }
        CHECK_MSG(n == 46, "%s: %d strings", pairs[p][1], n);
        printf("%s: %d/%d llama.cpp reference strings\n", pairs[p][0], ok, n);
        free(inp);
        free(out);
        brisk_tokenizer_free(t);
    }
}

static void check_decode(const brisk_tokenizer *t, const char *name, int i, const int32_t *ids,
                         size_t n, const cJSON *c) {
    for (int skip = 0; skip < 2; skip++) {
        const char *exp = cJSON_GetObjectItem(c, skip ? "decoded_skip" : "decoded")->valuestring;
        char *got = decode(t, ids, n, skip);
        CHECK_MSG(got && strcmp(got, exp) == 0, "%s case %d decode(skip=%d)\n  got: %s\n  exp: %s",
                  name, i, skip, got ? got : "(error)", exp);
        bool valid = false;
        char *st = stream(t, ids, n, skip, &valid);
        CHECK_MSG(st && strcmp(st, exp) == 0, "%s case %d stream(skip=%d)\n  got: %s\n  exp: %s",
                  name, i, skip, st ? st : "(error)", exp);
        CHECK_MSG(valid, "%s case %d: a streamed chunk split a UTF-8 character", name, i);
        free(got);
        free(st);
    }
}

static void test_goldens(const char *shared, const char *golden) {
    static const char *names[] = {"llama3-instruct", "qwen3", "mistral-7b-v0.1-spm", "llama2-spm"};
    char path[1024];
    snprintf(path, sizeof path, "%s/tok/corpus.json", golden);
    char *ctext = test_read_file(path, NULL);
    cJSON *corpus = ctext ? cJSON_Parse(ctext) : NULL;
    free(ctext);
    CHECK_MSG(cJSON_IsArray(corpus), "corpus %s", path);
    if (!corpus) return;
    for (size_t k = 0; k < 4; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tokenizers/%s", names[k]);
        brisk_tokenizer *t = load(shared, dir);
        snprintf(path, sizeof path, "%s/tok/%s.json", golden, names[k]);
        char *gtext = test_read_file(path, NULL);
        cJSON *g = gtext ? cJSON_Parse(gtext) : NULL;
        free(gtext);
        CHECK_MSG(g != NULL, "golden %s", path);
        if (!t || !g) {
            cJSON_Delete(g);
            brisk_tokenizer_free(t);
            continue;
        }
        const cJSON *cases = cJSON_GetObjectItem(g, "cases");
        int i = 0, ok = 0;
        const cJSON *c = cases->child;
        for (const cJSON *txt = corpus->child; txt && c; txt = txt->next, c = c->next, i++) {
            const char *s = txt->valuestring;
            bool good = true;
            for (int sp = 0; sp < 2; sp++) {
                size_t n;
                int32_t *ids = encode(t, s, strlen(s), sp, &n);
                const cJSON *exp = cJSON_GetObjectItem(c, sp ? "ids_special" : "ids");
                bool eq = ids && ids_equal(ids, n, exp);
                good = good && eq;
                CHECK_MSG(eq, "%s case %d special=%d: \"%.60s\"", names[k], i, sp, s);
                if (!eq && ids) {
                    print_ids("got", ids, n);
                    int32_t e[64];
                    size_t ne = 0;
                    for (const cJSON *x = exp->child; x && ne < 64; x = x->next)
                        e[ne++] = (int32_t)x->valuedouble;
                    print_ids("exp", e, ne);
                }
                if (sp && ids) check_decode(t, names[k], i, ids, n, c);
                free(ids);
            }
            ok += good;
        }
        printf("%s: %d/%d golden strings encode exactly\n", names[k], ok, i);
        i = 0;
        for (const cJSON *r = cJSON_GetObjectItem(g, "random_decode")->child; r; r = r->next, i++) {
            const cJSON *arr = cJSON_GetObjectItem(r, "ids");
            int32_t ids[64];
            size_t n = 0;
            for (const cJSON *x = arr->child; x && n < 64; x = x->next)
                ids[n++] = (int32_t)x->valuedouble;
            check_decode(t, names[k], 1000 + i, ids, n, r);
        }
        cJSON_Delete(g);
        brisk_tokenizer_free(t);
    }
    cJSON_Delete(corpus);
}

/* Small tokenizers trained by the golden script to cover the components the real files do not
 * use (Metaspace, Digits, Punctuation, Whitespace, every Split behavior, lstrip/rstrip/
 * single_word/normalized added tokens, Lowercase, Strip, NFKC/NFD/NFKD, StripAccents, ...). */
static void test_synthetic(const char *golden) {
    static const char *names[] = {"synth-metaspace", "synth-pieces", "synth-splits"};
    for (size_t k = 0; k < 3; k++) {
        char path[1024];
        snprintf(path, sizeof path, "tok/%s.tokenizer.json", names[k]);
        brisk_tokenizer *t = load(golden, path);
        snprintf(path, sizeof path, "%s/tok/%s.json", golden, names[k]);
        char *gtext = test_read_file(path, NULL);
        cJSON *g = gtext ? cJSON_Parse(gtext) : NULL;
        free(gtext);
        CHECK_MSG(g != NULL, "golden %s", path);
        if (!t || !g) {
            cJSON_Delete(g);
            brisk_tokenizer_free(t);
            continue;
        }
        int i = 0, ok = 0;
        for (const cJSON *c = cJSON_GetObjectItem(g, "cases")->child; c; c = c->next, i++) {
            const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
            bool good = true;
            for (int sp = 0; sp < 2; sp++) {
                size_t n;
                int32_t *ids = encode(t, s, strlen(s), sp, &n);
                bool eq =
                    ids && ids_equal(ids, n, cJSON_GetObjectItem(c, sp ? "ids_special" : "ids"));
                good = good && eq;
                CHECK_MSG(eq, "%s case %d special=%d: \"%.60s\"", names[k], i, sp, s);
                if (!eq && ids) print_ids("got", ids, n);
                if (sp && ids) check_decode(t, names[k], i, ids, n, c);
                free(ids);
            }
            ok += good;
        }
        printf("%s: %d/%d golden strings encode exactly\n", names[k], ok, i);
        cJSON_Delete(g);
        brisk_tokenizer_free(t);
    }
}

static void test_stories(const char *shared) {
    brisk_tokenizer *t = load(shared, "models/stories260K-hf-f32");
    if (!t) return;
    size_t n;
    int32_t *ids = encode(t, "Once upon a time", 16, true, &n);
    const int32_t exp[] = {1, 403, 407, 261, 378};
    CHECK(ids && n == 5 && memcmp(ids, exp, sizeof exp) == 0);
    CHECK(brisk_tokenizer_bos_id(t) == 1 && brisk_tokenizer_eos_id(t) == 2);
    char *s = decode(t, ids, n, true);
    CHECK(s && strcmp(s, "Once upon a time") == 0);
    free(s);
    free(ids);
    brisk_tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SHARED_DIR GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    test_stories(argv[1]);
    test_llamacpp_refs(argv[1]);
    test_goldens(argv[1], argv[2]);
    test_synthetic(argv[2]);
    CHECK_DONE();
}
