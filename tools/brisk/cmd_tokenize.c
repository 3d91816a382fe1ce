/* cmd_tokenize.c: `brisk tokenize` (text -> JSON array of ids on one line) and
 * `brisk detokenize` (ids -> text), both through the public tokenizer API. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char TOK_USAGE[] =
    "usage: brisk tokenize (--model DIR | --tokenizer FILE) (--text TEXT | --file F) "
    "[--no-special]\n"
    "  prints the token ids as a JSON array on one line; special tokens (e.g. BOS) are added\n"
    "  unless --no-special; special-token text in the input always maps to its id.\n";

static const char DETOK_USAGE[] =
    "usage: brisk detokenize (--model DIR | --tokenizer FILE) --ids \"1 2 3\" [--skip-special]\n"
    "  prints the decoded text (ids separated by spaces, commas or brackets).\n";

/* Parses --model/--tokenizer shared by both commands; returns 1 when argv[*i] was one. */
static int path_opt(int argc, char **argv, int *i, const char **path) {
    if ((strcmp(argv[*i], "--model") == 0 || strcmp(argv[*i], "--tokenizer") == 0) &&
        *i + 1 < argc) {
        *path = argv[++*i];
        return 1;
    }
    return 0;
}

int brisk_cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL, *file = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if (path_opt(argc, argv, &i, &path)) continue;
        if (strcmp(argv[i], "--text") == 0 && i + 1 < argc)
            text = argv[++i];
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--no-special") == 0)
            special = false;
        else if (strcmp(argv[i], "--help") == 0) {
            fputs(TOK_USAGE, stdout);
            return BRISK_EXIT_OK;
        } else
            return brisk_cli_usage("tokenize", TOK_USAGE, "unknown option '%s'", argv[i]);
    }
    if (!path) return brisk_cli_usage("tokenize", TOK_USAGE, "--model or --tokenizer is required");
    if (!text == !file)
        return brisk_cli_usage("tokenize", TOK_USAGE, "exactly one of --text and --file is needed");
    char *owned = NULL;
    size_t len = text ? strlen(text) : 0;
    if (file) {
        owned = brisk_cli_read_file(file, &len);
        if (!owned) {
            fprintf(stderr, "brisk tokenize: cannot read %s\n", file);
            return BRISK_EXIT_FAIL;
        }
        text = owned;
    }
    brisk_tokenizer *tok;
    brisk_status st = brisk_tokenizer_load(path, &tok);
    if (st) {
        free(owned);
        return brisk_cli_fail("tokenize", path, st);
    }
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    st = ids ? brisk_tokenizer_encode(tok, text, len, special, ids, cap, &n) : BRISK_ERR_OOM;
    if (st == BRISK_ERR_BUFFER_TOO_SMALL) {
        free(ids);
        cap = n;
        ids = malloc(cap * sizeof *ids);
        st = ids ? brisk_tokenizer_encode(tok, text, len, special, ids, cap, &n) : BRISK_ERR_OOM;
    }
    int rc = BRISK_EXIT_OK;
    if (st) {
        rc = brisk_cli_fail("tokenize", "encode", st);
    } else {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
        puts("]");
    }
    free(ids);
    free(owned);
    brisk_tokenizer_free(tok);
    return rc;
}

int brisk_cmd_detokenize(int argc, char **argv) {
    const char *path = NULL, *list = NULL;
    bool skip = false;
    for (int i = 1; i < argc; i++) {
        if (path_opt(argc, argv, &i, &path)) continue;
        if (strcmp(argv[i], "--ids") == 0 && i + 1 < argc)
            list = argv[++i];
        else if (strcmp(argv[i], "--skip-special") == 0)
            skip = true;
        else if (strcmp(argv[i], "--help") == 0) {
            fputs(DETOK_USAGE, stdout);
            return BRISK_EXIT_OK;
        } else
            return brisk_cli_usage("detokenize", DETOK_USAGE, "unknown option '%s'", argv[i]);
    }
    if (!path)
        return brisk_cli_usage("detokenize", DETOK_USAGE, "--model or --tokenizer is required");
    if (!list) return brisk_cli_usage("detokenize", DETOK_USAGE, "--ids is required");
    size_t n = 0, cap = strlen(list) / 2 + 1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return BRISK_EXIT_FAIL;
    for (const char *p = list; *p;) {
        if (strchr(" \t\n,[]", *p)) {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < -2147483647L || v > 2147483647L) {
            free(ids);
            return brisk_cli_usage("detokenize", DETOK_USAGE, "bad id near '%.20s'", p);
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    brisk_tokenizer *tok;
    brisk_status st = brisk_tokenizer_load(path, &tok);
    if (st) {
        free(ids);
        return brisk_cli_fail("detokenize", path, st);
    }
    size_t len = 0;
    char *buf = NULL;
    st = brisk_tokenizer_decode(tok, ids, n, skip, NULL, 0, &len);
    if (st == BRISK_ERR_BUFFER_TOO_SMALL || (st == BRISK_OK && len == 0)) {
        buf = malloc(len + 1);
        st = buf ? brisk_tokenizer_decode(tok, ids, n, skip, buf, len + 1, &len) : BRISK_ERR_OOM;
    }
    int rc = BRISK_EXIT_OK;
    if (st)
        rc = brisk_cli_fail("detokenize", "decode", st);
    else {
        fwrite(buf, 1, len, stdout);
        putchar('\n');
    }
    free(buf);
    free(ids);
    brisk_tokenizer_free(tok);
    return rc;
}
