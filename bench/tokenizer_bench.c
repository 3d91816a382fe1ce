/* tokenizer_bench.c: tokenizer load time and single-thread encode throughput on a text file
 * (bench/tokenizer_bench.py writes the mixed text and measures HF tokenizers on the same file).
 * Usage: tokenizer_bench TOKENIZER(.json|DIR) TEXT_FILE [ROUNDS] */
#include "brisk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER TEXT_FILE [ROUNDS]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(len + 1);
    if (fread(text, 1, len, f) != len) return 1;
    fclose(f);

    double best_load = 1e9;
    brisk_tokenizer *tok = NULL;
    for (int r = 0; r < 3; r++) {
        brisk_tokenizer_free(tok);
        double t0 = now();
        if (brisk_tokenizer_load(argv[1], &tok)) {
            fprintf(stderr, "load: %s\n", brisk_last_error());
            return 1;
        }
        double dt = now() - t0;
        if (dt < best_load) best_load = dt;
    }
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        if (brisk_tokenizer_encode(tok, text, len, false, ids, cap, &n)) {
            fprintf(stderr, "encode: %s\n", brisk_last_error());
            return 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("brisk: %s: load %.1f ms; encode %.2f MB in %.1f ms = %.2f MB/s (%zu ids)\n", argv[1],
           best_load * 1e3, (double)len / 1e6, best * 1e3, (double)len / 1e6 / best, n);
    /* the same text one line at a time (many short calls, as a server sees prompts) */
    best = 1e9;
    size_t total = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        total = 0;
        for (size_t a = 0; a < len;) {
            const char *nl = memchr(text + a, '\n', len - a);
            size_t b = nl ? (size_t)(nl - text) + 1 : len;
            if (brisk_tokenizer_encode(tok, text + a, b - a, false, ids, cap, &n)) return 1;
            total += n;
            a = b;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("brisk: per line: %.1f ms = %.2f MB/s (%zu ids)\n", best * 1e3, (double)len / 1e6 / best,
           total);
    free(ids);
    free(text);
    brisk_tokenizer_free(tok);
    return 0;
}
