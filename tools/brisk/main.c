/* main.c: the brisk CLI entry point: dispatches `brisk <command> ...` to cmd_*.c.
 * Only brisk.h is used; every failure is one line on stderr and a non-zero exit. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command COMMANDS[] = {
    {"generate", brisk_cmd_generate, "generate text from a prompt (mlx_lm.generate's flags)"},
    {"chat", brisk_cmd_chat, "interactive chat that keeps its cache across turns"},
    {"logits", brisk_cmd_logits, "write the logits of every position of a token sequence"},
    {"tokenize", brisk_cmd_tokenize, "text -> token ids (JSON array)"},
    {"detokenize", brisk_cmd_detokenize, "token ids -> text"},
    {"template", brisk_cmd_template, "render the model's chat template"},
    {"bench", brisk_cmd_bench, "prompt/generation speed and fraction of the bandwidth floor"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: brisk <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n`brisk <command> --help` shows a command's options.\n");
}

int brisk_cli_fail(const char *cmd, const char *what, brisk_status st) {
    const char *msg = brisk_last_error();
    fprintf(stderr, "brisk %s: %s: %s\n", cmd, what, msg && *msg ? msg : brisk_status_str(st));
    return BRISK_EXIT_FAIL;
}

int brisk_cli_usage(const char *cmd, const char *usage_text, const char *fmt, ...) {
    fprintf(stderr, "brisk %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return BRISK_EXIT_USAGE;
}

char *brisk_cli_read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f) ? EIO : 0;
    if (f != stdin) fclose(f);
    if (buf && err) {
        free(buf);
        errno = err;
        return NULL;
    }
    if (buf) {
        buf[n] = 0;
        if (len) *len = n;
    }
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return BRISK_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return BRISK_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("brisk %s\n", brisk_version());
        return BRISK_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "brisk: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return BRISK_EXIT_USAGE;
}
