/* cmd_generate.c: `brisk generate`, with mlx_lm.generate's flags and defaults: applies the
 * model's chat template, streams the text to stdout, statistics to stderr. */
#include "cli.h"
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: brisk generate [--model DIR|REPO] [-p PROMPT] [-m N] [--temp T] [--top-p P]\n"
    "                      [--top-k K] [--min-p P] [--seed S] [--system-prompt TEXT]\n"
    "                      [--ignore-chat-template] [--chat-template-config JSON]\n"
    "                      [--extra-eos-token TOKEN ...] [--verbose true|false]\n"
    "                      [--backend auto|cpu|ref|cuda] [--max-kv-size N]\n"
    "  --model M              local folder or Hugging Face repo id\n"
    "                         (default mlx-community/Llama-3.2-3B-Instruct-4bit)\n"
    "  -p, --prompt TEXT      the prompt; '-' reads stdin (default \"hello\")\n"
    "  -m, --max-tokens N     tokens to generate at most (default 100)\n"
    "  --temp T               sampling temperature; 0 = greedy (default 0)\n"
    "  --top-p P, --top-k K, --min-p P   sampling filters (default off)\n"
    "  --repetition-penalty R penalise tokens of the last 64 (default 1 = off)\n"
    "  --seed S               random seed (default 0)\n"
    "  --system-prompt TEXT   a system message before the prompt\n"
    "  --ignore-chat-template tokenize the prompt as is (with BOS)\n"
    "  --chat-template-config JSON   extra template variables, e.g. '{\"enable_thinking\":false}'\n"
    "  --extra-eos-token T    also stop at this token (repeatable)\n"
    "  --verbose B            statistics on stderr (default true)\n";

typedef struct gen_out {
    int wrote;
} gen_out;

static bool on_token(void *user, const char *text, size_t len, int32_t token, float logprob) {
    (void)token, (void)logprob;
    gen_out *o = user;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        o->wrote = 1;
    }
    return true;
}

/* Replaces the two-character sequences \n and \t with the characters, as mlx_lm does. */
static void unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && (r[1] == 'n' || r[1] == 't')) {
            *w++ = r[1] == 'n' ? '\n' : '\t';
            r++;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

int brisk_cmd_generate(int argc, char **argv) {
    const char *model = "mlx-community/Llama-3.2-3B-Instruct-4bit", *prompt_arg = "hello";
    const char *system = NULL, *tmpl_cfg = NULL, *backend = "auto";
    const char *extra[32];
    int n_extra = 0, ignore_tmpl = 0, verbose = 1, max_kv = 0;
    brisk_generate_params gp = brisk_generate_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return BRISK_EXIT_OK;
        }
        if (!strcmp(a, "--ignore-chat-template")) {
            ignore_tmpl = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        char opt[64];
        const char *v = NULL;
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof opt) {
            snprintf(opt, sizeof opt, "%.*s", (int)(eq - a), a);
            v = eq + 1;
            a = opt;
        } else if (i + 1 < argc) {
            v = argv[i + 1];
        }
        static const char *const known[] = {"--model",
                                            "-p",
                                            "--prompt",
                                            "--system-prompt",
                                            "--chat-template-config",
                                            "--extra-eos-token",
                                            "--verbose",
                                            "--backend"};
        int is_known = cli_is_gen_option(a);
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known |= !strcmp(a, known[k]);
        if (!is_known) return brisk_cli_usage("generate", USAGE, "unknown option '%s'", argv[i]);
        if (!v) return brisk_cli_usage("generate", USAGE, "option '%s' needs a value", a);
        if (!eq) i++;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            prompt_arg = v;
        else if (!strcmp(a, "--system-prompt"))
            system = v;
        else if (!strcmp(a, "--chat-template-config"))
            tmpl_cfg = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--verbose"))
            verbose = cli_parse_bool(v);
        else if (!strcmp(a, "--extra-eos-token")) {
            if (n_extra == 32)
                return brisk_cli_usage("generate", USAGE, "too many --extra-eos-token");
            extra[n_extra++] = v;
        } else if (cli_gen_option("generate", USAGE, a, v, &gp, &max_kv) != 0) {
            return BRISK_EXIT_USAGE;
        }
    }
    brisk_backend_kind bk;
    if (!cli_parse_backend(backend, &bk))
        return brisk_cli_usage("generate", USAGE, "unknown backend '%s'", backend);

    char *prompt = NULL;
    if (!strcmp(prompt_arg, "-")) {
        prompt = brisk_cli_read_file("-", NULL);
        if (!prompt) {
            fprintf(stderr, "brisk generate: cannot read the prompt from stdin: %s\n",
                    strerror(errno));
            return BRISK_EXIT_FAIL;
        }
    } else {
        prompt = strdup(prompt_arg);
        if (prompt) unescape(prompt);
    }
    if (!prompt) return BRISK_EXIT_FAIL;

    int rc = BRISK_EXIT_FAIL;
    cli_session s;
    int32_t *ids = NULL, stop_ids[32];
    char *rendered = NULL;
    cli_buf msgs = {0};
    size_t n_ids = 0;
    if (cli_session_open(&s, "generate", model, bk, max_kv) != 0) goto done;
    for (int k = 0; k < n_extra; k++) {
        stop_ids[k] = brisk_tokenizer_token_id(s.tok, extra[k]);
        if (stop_ids[k] < 0) {
            fprintf(stderr, "brisk generate: --extra-eos-token '%s' is not a token of this model\n",
                    extra[k]);
            goto done;
        }
    }
    gp.extra_eos = stop_ids;
    gp.n_extra_eos = n_extra;
    const int use_tmpl = !ignore_tmpl && s.tmpl;
    if (use_tmpl) {
        cli_buf_adds(&msgs, "[");
        if (system) {
            cli_buf_adds(&msgs, "{\"role\": \"system\", \"content\": ");
            cli_buf_add_json_string(&msgs, system, strlen(system));
            cli_buf_adds(&msgs, "}, ");
        }
        cli_buf_adds(&msgs, "{\"role\": \"user\", \"content\": ");
        cli_buf_add_json_string(&msgs, prompt, strlen(prompt));
        cli_buf_adds(&msgs, "}]");
        size_t len;
        brisk_status st =
            brisk_chat_template_render(s.tmpl, msgs.s, tmpl_cfg, true, &rendered, &len);
        if (st != BRISK_OK) {
            brisk_cli_fail("generate", "cannot apply the chat template", st);
            goto done;
        }
        ids = cli_encode("generate", s.tok, rendered, len, false, &n_ids);
    } else {
        ids = cli_encode("generate", s.tok, prompt, strlen(prompt), true, &n_ids);
    }
    if (!ids) goto done;
    if (n_ids == 0) {
        fprintf(stderr, "brisk generate: the prompt encodes to no tokens\n");
        goto done;
    }
    if ((int)n_ids >= brisk_context_n_ctx(s.ctx)) {
        fprintf(stderr, "brisk generate: the prompt has %zu tokens; the context holds %d\n", n_ids,
                brisk_context_n_ctx(s.ctx));
        goto done;
    }
    gen_out out = {0};
    brisk_generate_stats stats;
    brisk_status st = brisk_generate(s.ctx, 0, s.tok, ids, (int)n_ids, &gp, on_token, &out, &stats);
    fputc('\n', stdout);
    fflush(stdout);
    if (st != BRISK_OK) {
        brisk_cli_fail("generate", "generation failed", st);
        goto done;
    }
    if (verbose) cli_print_stats(&stats);
    rc = BRISK_EXIT_OK;
done:
    cli_buf_free(&msgs);
    brisk_free(rendered);
    free(ids);
    free(prompt);
    cli_session_close(&s);
    return rc;
}
