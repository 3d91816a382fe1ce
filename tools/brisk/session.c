/* session.c: model folder + tokenizer + template + context set-up shared by generate and chat,
 * plus small string helpers (the CLI sees only brisk.h, so it builds its JSON by hand). */
#include "session.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

int cli_parse_backend(const char *name, brisk_backend_kind *out) {
    if (!strcmp(name, "auto"))
        *out = BRISK_BACKEND_AUTO;
    else if (!strcmp(name, "cpu"))
        *out = BRISK_BACKEND_CPU;
    else if (!strcmp(name, "ref"))
        *out = BRISK_BACKEND_CPU_REF;
    else if (!strcmp(name, "cuda"))
        *out = BRISK_BACKEND_CUDA;
    else
        return 0;
    return 1;
}

int cli_session_open(cli_session *s, const char *cmd, const char *ref, brisk_backend_kind backend,
                     int n_ctx) {
    memset(s, 0, sizeof *s);
    brisk_hub_params hp = brisk_hub_default_params();
    hp.progress = isatty(2);
    brisk_status st = brisk_hub_resolve(ref, &hp, &s->dir);
    if (st != BRISK_OK) return brisk_cli_fail(cmd, "cannot find model", st);
    brisk_model_params mp = brisk_model_default_params();
    mp.backend = backend;
    if ((st = brisk_model_load(s->dir, &mp, &s->model)) != BRISK_OK)
        return brisk_cli_fail(cmd, "cannot load model", st);
    brisk_model_get_info(s->model, &s->info);
    if ((st = brisk_tokenizer_load(s->dir, &s->tok)) != BRISK_OK)
        return brisk_cli_fail(cmd, "cannot load tokenizer", st);
    st = brisk_chat_template_load(s->dir, NULL, &s->tmpl);
    if (st != BRISK_OK && st != BRISK_ERR_NOT_FOUND)
        return brisk_cli_fail(cmd, "cannot load chat template", st);
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = n_ctx > 0 ? n_ctx : s->info.max_position < 8192 ? s->info.max_position : 8192;
    if ((st = brisk_context_create(s->model, &cp, &s->ctx)) != BRISK_OK)
        return brisk_cli_fail(cmd, "cannot create context", st);
    return 0;
}

void cli_session_close(cli_session *s) {
    brisk_context_destroy(s->ctx);
    brisk_chat_template_free(s->tmpl);
    brisk_tokenizer_free(s->tok);
    brisk_model_free(s->model);
    brisk_free(s->dir);
    memset(s, 0, sizeof *s);
}

void cli_buf_add(cli_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            fprintf(stderr, "brisk: out of memory\n");
            exit(BRISK_EXIT_FAIL);
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void cli_buf_adds(cli_buf *b, const char *s) {
    cli_buf_add(b, s, strlen(s));
}

void cli_buf_add_json_string(cli_buf *b, const char *s, size_t n) {
    cli_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            cli_buf_add(b, esc, 2);
        } else if (c == '\n')
            cli_buf_adds(b, "\\n");
        else if (c == '\r')
            cli_buf_adds(b, "\\r");
        else if (c == '\t')
            cli_buf_adds(b, "\\t");
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            cli_buf_adds(b, esc);
        } else
            cli_buf_add(b, (const char *)&s[i], 1);
    }
    cli_buf_add(b, "\"", 1);
}

void cli_buf_free(cli_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

int32_t *cli_encode(const char *cmd, const brisk_tokenizer *tok, const char *text, size_t len,
                    bool add_special, size_t *n) {
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return NULL;
    brisk_status st = brisk_tokenizer_encode(tok, text, len, add_special, ids, cap, n);
    if (st == BRISK_ERR_BUFFER_TOO_SMALL) {
        int32_t *nb = realloc(ids, (*n + 1) * sizeof *ids);
        if (!nb) {
            free(ids);
            return NULL;
        }
        ids = nb;
        st = brisk_tokenizer_encode(tok, text, len, add_special, ids, *n + 1, n);
    }
    if (st != BRISK_OK) {
        brisk_cli_fail(cmd, "cannot tokenize the prompt", st);
        free(ids);
        return NULL;
    }
    return ids;
}

static const struct {
    const char *name, *alias;
    double lo, hi;
} GEN_OPTIONS[] = {
    {"--max-tokens", "-m", -1, 1e9},
    {"--temp", NULL, 0, 100},
    {"--top-p", NULL, 0, 1},
    {"--top-k", NULL, 0, 1e9},
    {"--min-p", NULL, 0, 1},
    {"--seed", NULL, 0, 1.8e19},
    {"--repetition-penalty", NULL, 1e-3, 100},
    {"--max-kv-size", NULL, 0, 1 << 24},
};

static int gen_option_index(const char *opt) {
    for (size_t i = 0; i < sizeof GEN_OPTIONS / sizeof GEN_OPTIONS[0]; i++)
        if (!strcmp(opt, GEN_OPTIONS[i].name) ||
            (GEN_OPTIONS[i].alias && !strcmp(opt, GEN_OPTIONS[i].alias)))
            return (int)i;
    return -1;
}

bool cli_is_gen_option(const char *opt) {
    return gen_option_index(opt) >= 0;
}

int cli_gen_option(const char *cmd, const char *usage, const char *opt, const char *val,
                   brisk_generate_params *gp, int *max_kv) {
    const int k = gen_option_index(opt);
    char *end;
    errno = 0;
    const double d = strtod(val, &end);
    if (k < 0 || end == val || *end || errno || !(d >= GEN_OPTIONS[k].lo && d <= GEN_OPTIONS[k].hi))
        return brisk_cli_usage(cmd, usage, "%s expects a number in [%g, %g], got '%s'", opt,
                               k < 0 ? 0 : GEN_OPTIONS[k].lo, k < 0 ? 0 : GEN_OPTIONS[k].hi, val);
    switch (k) {
    case 0:
        gp->max_tokens = (int)d;
        break;
    case 1:
        gp->sampler.temperature = (float)d;
        break;
    case 2:
        gp->sampler.top_p = (float)d;
        break;
    case 3:
        gp->sampler.top_k = (int)d;
        break;
    case 4:
        gp->sampler.min_p = (float)d;
        break;
    case 5:
        gp->sampler.seed = (uint64_t)d;
        break;
    case 6:
        gp->sampler.repetition_penalty = (float)d;
        break;
    default:
        *max_kv = (int)d;
        break;
    }
    return 0;
}

bool cli_parse_bool(const char *v) {
    return strcasecmp(v, "false") && strcasecmp(v, "f") && strcmp(v, "0");
}

void cli_print_stats(const brisk_generate_stats *st) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr, "==========\n");
    fprintf(stderr, "Prompt: %d tokens, %.3f tokens-per-sec\n", st->n_prompt,
            st->prompt_seconds > 0 ? st->n_prompt / st->prompt_seconds : 0.0);
    fprintf(stderr, "Generation: %d tokens, %.3f tokens-per-sec\n", st->n_generated,
            st->gen_seconds > 0 ? st->n_generated / st->gen_seconds : 0.0);
    fprintf(stderr, "Peak memory: %.3f GB\n", ru.ru_maxrss / 1e6);
}
