/* cmd_logits.c: `brisk logits`: runs a token sequence through a model in one prefill pass and
 * writes every position's logits as little-endian float32 [n_tokens, n_vocab]. The parity tool. */
#include "cli.h"
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: brisk logits --model DIR --tokens \"ID ID ...\" [--out FILE] [--top N]\n"
    "                    [--backend auto|cpu|ref|cuda] [--batch N]\n"
    "  --model DIR      model folder (config.json + *.safetensors)\n"
    "  --tokens IDS     token ids separated by spaces or commas\n"
    "  --out FILE       write logits as little-endian float32 [n_tokens, n_vocab]\n"
    "  --top N          print the N highest logits of the last position (default 5)\n"
    "  --backend B      compute backend (default auto)\n"
    "  --batch N        tokens per forward step (default: all at once)\n";

/* Parses "1 2, 3" into a malloc'd array. Returns -1 with a message on a bad id. */
static int parse_ids(const char *s, int32_t **out, int *n) {
    size_t cap = 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    *n = 0;
    if (!ids) return -1;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff) {
            fprintf(stderr, "brisk logits: --tokens: '%.20s' is not a token id (at offset %d)\n", p,
                    (int)(p - s));
            free(ids);
            return -1;
        }
        if ((size_t)*n == cap) {
            int32_t *nb = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!nb) {
                free(ids);
                return -1;
            }
            ids = nb;
        }
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    return 0;
}

int brisk_cmd_logits(int argc, char **argv) {
    const char *model_dir = NULL, *tokens = NULL, *out_path = NULL, *backend = "auto";
    int top = 5, batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return BRISK_EXIT_OK;
        }
        if (i + 1 >= argc)
            return brisk_cli_usage("logits", USAGE, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--tokens"))
            tokens = v;
        else if (!strcmp(a, "--out"))
            out_path = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--top") || !strcmp(a, "--batch")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 1 << 20)
                return brisk_cli_usage("logits", USAGE,
                                       "%s expects a non-negative integer, got '%s'", a, v);
            *(!strcmp(a, "--top") ? &top : &batch) = (int)n;
        } else
            return brisk_cli_usage("logits", USAGE, "unknown option '%s'", a);
    }
    if (!model_dir || !tokens)
        return brisk_cli_usage("logits", USAGE, "--model and --tokens are required");
    brisk_model_params mp = brisk_model_default_params();
    if (!cli_parse_backend(backend, &mp.backend))
        return brisk_cli_usage("logits", USAGE, "unknown backend '%s'", backend);

    int32_t *ids;
    int n;
    if (parse_ids(tokens, &ids, &n) != 0) return BRISK_EXIT_USAGE;
    if (n == 0) {
        free(ids);
        return brisk_cli_usage("logits", USAGE, "--tokens holds no token id");
    }
    int rc = BRISK_EXIT_FAIL;
    brisk_model *model = NULL;
    brisk_context *ctx = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    brisk_status st = brisk_model_load(model_dir, &mp, &model);
    if (st != BRISK_OK) {
        rc = brisk_cli_fail("logits", "cannot load model", st);
        goto done;
    }
    brisk_model_info info;
    brisk_model_get_info(model, &info);
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = batch > 0 ? batch : n;
    if ((st = brisk_context_create(model, &cp, &ctx)) != BRISK_OK) {
        rc = brisk_cli_fail("logits", "cannot create context", st);
        goto done;
    }
    logits = malloc((size_t)n * (size_t)info.n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "brisk logits: out of memory for %d x %d logits\n", n, info.n_vocab);
        goto done;
    }
    if ((st = brisk_context_eval(ctx, 0, ids, n, logits, false)) != BRISK_OK) {
        rc = brisk_cli_fail("logits", "forward failed", st);
        goto done;
    }
    if (out_path) {
        f = fopen(out_path, "wb");
        size_t want = (size_t)n * (size_t)info.n_vocab;
        if (!f || fwrite(logits, sizeof *logits, want, f) != want || fclose(f) != 0) {
            fprintf(stderr, "brisk logits: cannot write %s: %s\n", out_path, strerror(errno));
            f = NULL;
            goto done;
        }
        f = NULL;
    }
    printf("logits: [%d, %d] float32%s%s\n", n, info.n_vocab, out_path ? " -> " : "",
           out_path ? out_path : "");
    if (top > 0) {
        const float *last = logits + (size_t)(n - 1) * info.n_vocab;
        if (top > info.n_vocab) top = info.n_vocab;
        printf("top %d at position %d:\n", top, n - 1);
        /* Selection by repeated scans: top is small. */
        char *taken = calloc((size_t)info.n_vocab, 1);
        for (int k = 0; taken && k < top; k++) {
            int best = -1;
            for (int v = 0; v < info.n_vocab; v++)
                if (!taken[v] && (best < 0 || last[v] > last[best])) best = v;
            taken[best] = 1;
            printf("  %6d  %10.5f\n", best, last[best]);
        }
        free(taken);
    }
    rc = BRISK_EXIT_OK;
done:
    if (f) fclose(f);
    free(logits);
    free(ids);
    brisk_context_destroy(ctx);
    brisk_model_free(model);
    return rc;
}
