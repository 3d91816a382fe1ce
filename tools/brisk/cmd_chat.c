/* cmd_chat.c: `brisk chat`, an interactive conversation that keeps its KV cache across turns:
 * each turn re-renders the template and prefills only what differs from the cached tokens. */
#include "cli.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: brisk chat [--model DIR|REPO] [--system-prompt TEXT] [-m N] [--temp T] [--top-p P]\n"
    "                  [--top-k K] [--min-p P] [--seed S] [--backend B] [--max-kv-size N]\n"
    "                  [--chat-template-config JSON] [--verbose true|false]\n"
    "Type a message and press enter; /reset starts over, /exit (or end of input) quits.\n";

typedef struct chat_turn {
    cli_buf reply; /* the assistant's text of this turn */
    int32_t *gen;  /* generated ids of this turn */
    size_t n_gen, cap_gen;
} chat_turn;

static bool on_token(void *user, const char *text, size_t len, int32_t token, float logprob) {
    (void)logprob;
    chat_turn *t = user;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        cli_buf_add(&t->reply, text, len);
    }
    if (token >= 0) {
        if (t->n_gen == t->cap_gen) {
            size_t cap = t->cap_gen ? t->cap_gen * 2 : 256;
            int32_t *ng = realloc(t->gen, cap * sizeof *ng);
            if (!ng) return false;
            t->gen = ng;
            t->cap_gen = cap;
        }
        t->gen[t->n_gen++] = token;
    }
    return true;
}

/* Reads one line from stdin into a malloc'd string without its newline; NULL at end of input. */
static char *read_line(void) {
    cli_buf b = {0};
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        char ch = (char)c;
        cli_buf_add(&b, &ch, 1);
    }
    if (c == EOF && b.len == 0) {
        cli_buf_free(&b);
        return NULL;
    }
    if (!b.s) cli_buf_add(&b, "", 0);
    if (b.len && b.s[b.len - 1] == '\r') b.s[--b.len] = 0;
    return b.s;
}

int brisk_cmd_chat(int argc, char **argv) {
    const char *model = "mlx-community/Llama-3.2-3B-Instruct-4bit", *system = NULL;
    const char *tmpl_cfg = NULL, *backend = "auto";
    int verbose = 0, max_kv = 0;
    brisk_generate_params gp = brisk_generate_default_params();
    gp.max_tokens = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return BRISK_EXIT_OK;
        }
        if (i + 1 >= argc)
            return brisk_cli_usage("chat", USAGE, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--system-prompt"))
            system = v;
        else if (!strcmp(a, "--chat-template-config"))
            tmpl_cfg = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--verbose"))
            verbose = cli_parse_bool(v);
        else if (!cli_is_gen_option(a))
            return brisk_cli_usage("chat", USAGE, "unknown option '%s'", a);
        else if (cli_gen_option("chat", USAGE, a, v, &gp, &max_kv) != 0)
            return BRISK_EXIT_USAGE;
    }
    brisk_backend_kind bk;
    if (!cli_parse_backend(backend, &bk))
        return brisk_cli_usage("chat", USAGE, "unknown backend '%s'", backend);
    cli_session s;
    if (cli_session_open(&s, "chat", model, bk, max_kv) != 0) {
        cli_session_close(&s);
        return BRISK_EXIT_FAIL;
    }
    if (!s.tmpl) {
        fprintf(stderr, "brisk chat: %s has no chat template; use brisk generate\n", model);
        cli_session_close(&s);
        return BRISK_EXIT_FAIL;
    }
    const int tty = isatty(0);
    int rc = BRISK_EXIT_OK;
    cli_buf msgs = {0};     /* the conversation as a JSON array (without the closing bracket) */
    int32_t *cached = NULL; /* the tokens sequence 0 holds */
    size_t n_cached = 0;
    for (;;) {
        if (msgs.len == 0) {
            cli_buf_adds(&msgs, "[");
            if (system) {
                cli_buf_adds(&msgs, "{\"role\": \"system\", \"content\": ");
                cli_buf_add_json_string(&msgs, system, strlen(system));
                cli_buf_adds(&msgs, "}");
            }
        }
        if (tty) {
            fputs(">> ", stdout);
            fflush(stdout);
        }
        char *line = read_line();
        if (!line || !strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/reset")) {
            free(line);
            msgs.len = 0;
            n_cached = 0;
            brisk_context_seq_truncate(s.ctx, 0, 0);
            continue;
        }
        if (!*line) {
            free(line);
            continue;
        }
        const size_t undo = msgs.len;
        cli_buf_adds(&msgs, msgs.len > 1 ? ", {\"role\": \"user\", \"content\": "
                                         : "{\"role\": \"user\", \"content\": ");
        cli_buf_add_json_string(&msgs, line, strlen(line));
        cli_buf_adds(&msgs, "}]");
        free(line);
        char *text = NULL;
        size_t len = 0, n = 0;
        brisk_status st = brisk_chat_template_render(s.tmpl, msgs.s, tmpl_cfg, true, &text, &len);
        msgs.len -= 1; /* drop "]" again: more messages follow */
        msgs.s[msgs.len] = 0;
        int32_t *ids = st == BRISK_OK ? cli_encode("chat", s.tok, text, len, false, &n) : NULL;
        brisk_free(text);
        if (!ids) {
            if (st != BRISK_OK) brisk_cli_fail("chat", "cannot apply the chat template", st);
            msgs.len = undo;
            msgs.s[undo] = 0;
            continue;
        }
        /* Reuse the cached prefix; prefill only the rest (at least one token). */
        size_t keep = 0;
        while (keep < n_cached && keep < n && cached[keep] == ids[keep]) keep++;
        if (keep == n) keep--;
        brisk_context_seq_truncate(s.ctx, 0, (int)keep);
        chat_turn turn = {0};
        brisk_generate_stats stats;
        st = brisk_generate(s.ctx, 0, s.tok, ids + keep, (int)(n - keep), &gp, on_token, &turn,
                            &stats);
        fputc('\n', stdout);
        fflush(stdout);
        if (st != BRISK_OK) {
            brisk_cli_fail("chat", "generation failed", st);
            rc = BRISK_EXIT_FAIL;
        }
        /* What the sequence now holds: the prompt and the generated tokens that were fed. */
        const int held = brisk_context_seq_len(s.ctx, 0);
        int32_t *nc = realloc(cached, (size_t)(held > 0 ? held : 1) * sizeof *nc);
        if (nc) {
            cached = nc;
            memcpy(cached, ids, n * sizeof *ids);
            for (int i = (int)n; i < held; i++) cached[i] = turn.gen[i - (int)n];
            n_cached = (size_t)held;
        } else {
            n_cached = 0;
            brisk_context_seq_truncate(s.ctx, 0, 0);
        }
        cli_buf_adds(&msgs, ", {\"role\": \"assistant\", \"content\": ");
        cli_buf_add_json_string(&msgs, turn.reply.s ? turn.reply.s : "", turn.reply.len);
        cli_buf_adds(&msgs, "}");
        if (verbose) cli_print_stats(&stats);
        cli_buf_free(&turn.reply);
        free(turn.gen);
        free(ids);
        if (rc != BRISK_EXIT_OK) break;
    }
    free(cached);
    cli_buf_free(&msgs);
    cli_session_close(&s);
    return rc;
}
