/* fuzz_tokenizer_encode.c: libFuzzer target for encode/decode/streaming: the first byte picks a
 * tokenizer (real and synthetic files from the repo) and the flags, the rest is the text. Checks
 * that valid UTF-8 always encodes, and that streaming equals decode. */
#include "brisk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Paths are found from this file's location: tests/fuzz/ -> tests/golden/tok and ../shared. */
static const char *FILES[] = {"../golden/tok/synth-metaspace.tokenizer.json",
                              "../golden/tok/synth-pieces.tokenizer.json",
                              "../golden/tok/synth-splits.tokenizer.json",
                              "../../../shared/models/stories260K-hf-f32/tokenizer.json"};
#define N_TOK (sizeof FILES / sizeof FILES[0])
static brisk_tokenizer *g_tok[N_TOK];
static int g_loaded;

static void load_all(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    for (size_t i = 0; i < N_TOK; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s%s", dir, FILES[i]);
        if (brisk_tokenizer_load(path, &g_tok[i]) != BRISK_OK)
            fprintf(stderr, "fuzz_tokenizer_encode: skipping %s: %s\n", path, brisk_last_error());
    }
    g_loaded = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_loaded) load_all();
    if (size < 1) return 0;
    brisk_tokenizer *t = g_tok[data[0] % N_TOK];
    bool special = data[0] & 0x10, skip = data[0] & 0x20;
    if (!t) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1, n = 0;
    brisk_status st = brisk_tokenizer_encode(t, text, len, special, NULL, 0, &n);
    if (st == BRISK_ERR_INVALID_ARG) return 0; /* invalid UTF-8 */
    if (st != BRISK_OK && st != BRISK_ERR_BUFFER_TOO_SMALL) __builtin_trap();
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    if (brisk_tokenizer_encode(t, text, len, special, ids, n, &n) != BRISK_OK) __builtin_trap();
    size_t dl = 0;
    brisk_tokenizer_decode(t, ids, n, skip, NULL, 0, &dl);
    char *dec = malloc(dl + 1);
    if (brisk_tokenizer_decode(t, ids, n, skip, dec, dl + 1, &dl) != BRISK_OK) __builtin_trap();
    brisk_detok *d;
    if (brisk_detok_create(t, skip, &d) != BRISK_OK) __builtin_trap();
    char *acc = malloc(dl + 1);
    size_t al = 0;
    for (size_t i = 0; i <= n; i++) {
        char buf[256];
        size_t got;
        brisk_status s = i < n ? brisk_detok_push(d, ids[i], buf, sizeof buf, &got)
                               : brisk_detok_flush(d, buf, sizeof buf, &got);
        if (s != BRISK_OK || al + got > dl) __builtin_trap(); /* output beyond decode */
        memcpy(acc + al, buf, got);
        al += got;
    }
    if (al != dl || memcmp(acc, dec, dl) != 0) __builtin_trap(); /* stream == decode */
    brisk_detok_destroy(d);
    free(acc);
    free(dec);
    free(ids);
    return 0;
}
