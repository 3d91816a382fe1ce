/* test_tokenizer_api.c: tokenizer API contracts: invalid UTF-8, the buffer idiom, error messages
 * for bad/unsupported tokenizer.json files, vocabulary queries, streaming reset, and encode from
 * several threads at once. Usage: test_tokenizer_api SHARED_DIR */
#include "check.h"

#include "brisk.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_shared;

static brisk_tokenizer *load_sub(const char *sub) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_shared, sub);
    brisk_tokenizer *t = NULL;
    brisk_status st = brisk_tokenizer_load(path, &t);
    CHECK_MSG(st == BRISK_OK, "load %s: %s", path, brisk_last_error());
    return t;
}

/* Writes json to a temp file and loads it; returns the status. */
static brisk_status load_text(const char *json, brisk_tokenizer **out) {
    char path[] = "/tmp/brisk_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return BRISK_ERR_IO;
    size_t n = strlen(json);
    CHECK(write(fd, json, n) == (ssize_t)n);
    close(fd);
    brisk_status st = brisk_tokenizer_load(path, out);
    unlink(path);
    return st;
}

#define MINI_MODEL                                                                                 \
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

static void test_bad_files(void) {
    brisk_tokenizer *t = (brisk_tokenizer *)1;
    CHECK(brisk_tokenizer_load("/nonexistent/tokenizer.json", &t) == BRISK_ERR_IO && t == NULL);
    CHECK(strstr(brisk_last_error(), "brisk_tokenizer_load") != NULL);
    CHECK(brisk_tokenizer_load("/tmp", &t) == BRISK_ERR_IO); /* folder without tokenizer.json */
    CHECK(load_text("{\"model\": ", &t) == BRISK_ERR_FORMAT);
    CHECK(strstr(brisk_last_error(), "invalid JSON") != NULL);
    CHECK(load_text("[1,2]", &t) == BRISK_ERR_FORMAT);
    CHECK(load_text("{" MINI_MODEL "}", &t) == BRISK_OK);
    brisk_tokenizer_free(t);
    static const struct {
        const char *json, *needle;
        brisk_status st;
    } bad[] = {
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", "\"Unigram\"", BRISK_ERR_UNSUPPORTED},
        {"{" MINI_MODEL ",\"normalizer\":{\"type\":\"Precompiled\"}}", "\"Precompiled\"",
         BRISK_ERR_UNSUPPORTED},
        {"{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}}",
         "\"BertPreTokenizer\"", BRISK_ERR_UNSUPPORTED},
        {"{" MINI_MODEL ",\"decoder\":{\"type\":\"WordPiece\"}}", "\"WordPiece\"",
         BRISK_ERR_UNSUPPORTED},
        {"{" MINI_MODEL ",\"post_processor\":{\"type\":\"Foo\"}}", "\"Foo\"",
         BRISK_ERR_UNSUPPORTED},
        {"{" MINI_MODEL ",\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
         "\"behavior\":\"Isolated\"}}",
         "regex error", BRISK_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a c\"]}}", "merges[0]",
         BRISK_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", "model.vocab",
         BRISK_ERR_FORMAT},
        {"{" MINI_MODEL ",\"added_tokens\":[{\"id\":5}]}", "added_tokens[0]", BRISK_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[],\"dropout\":0.1}}", "dropout",
         BRISK_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = (brisk_tokenizer *)1;
        brisk_status st = load_text(bad[i].json, &t);
        CHECK_MSG(st == bad[i].st && t == NULL, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strstr(brisk_last_error(), bad[i].needle) != NULL, "case %zu: message '%s'", i,
                  brisk_last_error());
    }
}

static void test_utf8_and_buffers(brisk_tokenizer *t) {
    int32_t ids[64];
    size_t n = 99;
    /* invalid UTF-8: rejected with the byte offset; nothing written */
    static const char *bad[] = {"ab\xff",       "\xc3",     "a\xe2\x82",
                                "\xed\xa0\x80", "\xc0\xaf", "ok \xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        brisk_status st = brisk_tokenizer_encode(t, bad[i], strlen(bad[i]), false, ids, 64, &n);
        CHECK_MSG(st == BRISK_ERR_INVALID_ARG && n == 0, "bad utf8 %zu: %d", i, (int)st);
        CHECK(strstr(brisk_last_error(), "not valid UTF-8 at byte") != NULL);
    }
    CHECK(brisk_tokenizer_encode(t, "a\0b", 3, false, ids, 64, &n) == BRISK_OK && n == 3);
    /* the buffer idiom: too small reports the needed count */
    const char *s = "Hello world, this is brisk.";
    CHECK(brisk_tokenizer_encode(t, s, strlen(s), true, ids, 2, &n) == BRISK_ERR_BUFFER_TOO_SMALL);
    size_t need = n;
    CHECK(need == 8);
    CHECK(brisk_tokenizer_encode(t, s, strlen(s), true, ids, need, &n) == BRISK_OK && n == need);
    CHECK(ids[0] == 128000);
    CHECK(brisk_tokenizer_encode(t, "", 0, false, NULL, 0, &n) == BRISK_OK && n == 0);
    CHECK(brisk_tokenizer_encode(t, NULL, 0, true, ids, 4, &n) == BRISK_OK && n == 1);
    CHECK(brisk_tokenizer_encode(NULL, "x", 1, true, ids, 4, &n) == BRISK_ERR_INVALID_ARG);
    char buf[64];
    size_t len;
    CHECK(brisk_tokenizer_decode(t, ids, need, false, buf, 4, &len) == BRISK_ERR_BUFFER_TOO_SMALL);
    CHECK(len == strlen("<|begin_of_text|>") + strlen(s));
    CHECK(brisk_tokenizer_decode(t, ids, need, true, buf, sizeof buf, &len) == BRISK_OK);
    CHECK_STREQ(buf, s);
    int32_t oob[] = {9906, 999999};
    CHECK(brisk_tokenizer_decode(t, oob, 2, false, buf, sizeof buf, &len) == BRISK_ERR_INVALID_ARG);
    CHECK(strstr(brisk_last_error(), "index 1") != NULL);
}

static void test_queries(brisk_tokenizer *t) {
    CHECK(brisk_tokenizer_n_vocab(t) == 128256);
    CHECK_STREQ(brisk_tokenizer_token_text(t, 9906), "Hello");
    CHECK_STREQ(brisk_tokenizer_token_text(t, 1917), "\xc4\xa0world"); /* "Ġworld" */
    CHECK_STREQ(brisk_tokenizer_token_text(t, 128009), "<|eot_id|>");
    CHECK(brisk_tokenizer_token_text(t, -1) == NULL &&
          brisk_tokenizer_token_text(t, 128256) == NULL);
    CHECK(brisk_tokenizer_token_id(t, "<|eot_id|>") == 128009);
    CHECK(brisk_tokenizer_token_id(t, "Hello") == 9906);
    CHECK(brisk_tokenizer_token_id(t, "no such piece xyz") == -1);
    CHECK(brisk_tokenizer_is_special(t, 128000) && !brisk_tokenizer_is_special(t, 9906));
    CHECK(brisk_tokenizer_bos_id(t) == 128000 && brisk_tokenizer_eos_id(t) == 128009);
}

static void test_stream_reset(brisk_tokenizer *spm) {
    /* SentencePiece: the leading space of the first piece is stripped once per stream */
    brisk_detok *d;
    CHECK(brisk_detok_create(spm, true, &d) == BRISK_OK);
    char buf[64];
    size_t n;
    int32_t hello = brisk_tokenizer_token_id(spm, "\xe2\x96\x81Hello"); /* "▁Hello" */
    CHECK(hello > 0);
    CHECK(brisk_detok_push(d, 1, buf, sizeof buf, &n) == BRISK_OK && n == 0); /* <s> skipped */
    CHECK(brisk_detok_push(d, hello, buf, sizeof buf, &n) == BRISK_OK);
    CHECK(n == 5 && memcmp(buf, "Hello", 5) == 0);
    CHECK(brisk_detok_push(d, hello, buf, sizeof buf, &n) == BRISK_OK);
    CHECK(n == 6 && memcmp(buf, " Hello", 6) == 0);
    CHECK(brisk_detok_push(d, hello, buf, 2, &n) == BRISK_ERR_BUFFER_TOO_SMALL && n == 6);
    CHECK(brisk_detok_push(d, hello, buf, 7, &n) == BRISK_OK && n == 6);
    brisk_detok_reset(d);
    CHECK(brisk_detok_push(d, hello, buf, sizeof buf, &n) == BRISK_OK);
    CHECK(n == 5 && memcmp(buf, "Hello", 5) == 0);
    /* byte-fallback pieces of one character are held until the character is complete */
    int32_t e4 = brisk_tokenizer_token_id(spm, "<0xE4>"),
            bd = brisk_tokenizer_token_id(spm, "<0xBD>"),
            a0 = brisk_tokenizer_token_id(spm, "<0xA0>");
    CHECK(brisk_detok_push(d, e4, buf, sizeof buf, &n) == BRISK_OK && n == 0);
    CHECK(brisk_detok_push(d, bd, buf, sizeof buf, &n) == BRISK_OK && n == 0);
    CHECK(brisk_detok_push(d, a0, buf, sizeof buf, &n) == BRISK_OK && n == 0);
    CHECK(brisk_detok_push(d, hello, buf, sizeof buf, &n) == BRISK_OK);
    CHECK(n == 9 && memcmp(buf, "\xe4\xbd\xa0 Hello", 9) == 0);
    CHECK(brisk_detok_push(d, 999999, buf, sizeof buf, &n) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_detok_flush(d, buf, sizeof buf, &n) == BRISK_OK && n == 0);
    brisk_detok_destroy(d);
}

typedef struct job {
    const brisk_tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    int rounds;
    int mismatches;
} job;

static void *worker(void *arg) {
    job *j = arg;
    int32_t *ids = malloc(j->n * sizeof *ids);
    for (int r = 0; r < j->rounds; r++) {
        size_t n;
        brisk_status st = brisk_tokenizer_encode(j->t, j->text, j->len, true, ids, j->n, &n);
        if (st || n != j->n || memcmp(ids, j->ids, n * sizeof *ids) != 0) j->mismatches++;
    }
    free(ids);
    return NULL;
}

static void test_threads(brisk_tokenizer *t) {
    /* a mixed text of ~20 KB, encoded by 4 threads at once, 5 times each */
    size_t cap = 1 << 15, len = 0;
    char *text = malloc(cap);
    static const char *parts[] = {"Hello world! ", "Привет, мир. ", "你好世界 ",          "12345 ",
                                  "<|eot_id|> ",   "  spaces\n\n",  "emoji 👩‍💻 ", "café "};
    for (int i = 0; len + 32 < 20000; i++) {
        const char *p = parts[(i * 7) % 8];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    size_t n;
    brisk_tokenizer_encode(t, text, len, true, NULL, 0, &n);
    int32_t *ref = malloc(n * sizeof *ref);
    CHECK(brisk_tokenizer_encode(t, text, len, true, ref, n, &n) == BRISK_OK);
    pthread_t th[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){t, text, len, ref, n, 5, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].mismatches == 0, "thread %d: %d mismatches", i, jobs[i].mismatches);
    }
    free(ref);
    free(text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SHARED_DIR\n", argv[0]);
        return 2;
    }
    g_shared = argv[1];
    test_bad_files();
    brisk_tokenizer *l3 = load_sub("tokenizers/llama3-instruct");
    brisk_tokenizer *spm = load_sub("tokenizers/llama2-spm");
    if (l3 && spm) {
        test_utf8_and_buffers(l3);
        test_queries(l3);
        test_stream_reset(spm);
        test_threads(l3);
    }
    brisk_tokenizer_free(l3);
    brisk_tokenizer_free(spm);
    CHECK_DONE();
}
