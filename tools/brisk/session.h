/* session.h: what `brisk generate` and `brisk chat` share: resolving and loading a model folder
 * with its tokenizer and chat template, JSON string building, and the verbose statistics lines. */
#ifndef BRISK_CLI_SESSION_H
#define BRISK_CLI_SESSION_H

#include "brisk.h"

#include <stddef.h>

typedef struct cli_session {
    char *dir; /* the resolved local folder (brisk_free) */
    brisk_model *model;
    brisk_tokenizer *tok;
    brisk_chat_template *tmpl; /* NULL when the model has none */
    brisk_context *ctx;
    brisk_model_info info;
} cli_session;

/* Resolves `ref` (folder or HF repo id, downloading when needed), loads model, tokenizer and
 * template, and creates a context of n_ctx positions (0 = the model's maximum, capped at 8192).
 * Prints one line and returns non-zero on failure. */
int cli_session_open(cli_session *s, const char *cmd, const char *ref, brisk_backend_kind backend,
                     int n_ctx);
void cli_session_close(cli_session *s);

/* Parses "auto|cpu|ref|cuda". Returns 0 on an unknown name. */
int cli_parse_backend(const char *name, brisk_backend_kind *out);

/* A growable string. */
typedef struct cli_buf {
    char *s;
    size_t len, cap;
} cli_buf;
void cli_buf_add(cli_buf *b, const char *s, size_t n);
void cli_buf_adds(cli_buf *b, const char *s);
/* Appends s as a JSON string literal (quotes and escapes). */
void cli_buf_add_json_string(cli_buf *b, const char *s, size_t n);
void cli_buf_free(cli_buf *b);

/* Encodes text with the tokenizer into a malloc'd array (*n ids). Prints and returns NULL on
 * failure. */
int32_t *cli_encode(const char *cmd, const brisk_tokenizer *tok, const char *text, size_t len,
                    bool add_special, size_t *n);

/* The options generate and chat share: -m/--max-tokens, --temp, --top-p, --top-k, --min-p,
 * --seed, --repetition-penalty and --max-kv-size. cli_is_gen_option says whether `opt` is one;
 * cli_gen_option applies its value to gp (or *max_kv) and returns 0, or prints a usage error and
 * returns BRISK_EXIT_USAGE for a value out of range. */
bool cli_is_gen_option(const char *opt);
int cli_gen_option(const char *cmd, const char *usage, const char *opt, const char *val,
                   brisk_generate_params *gp, int *max_kv);

/* mlx_lm's str2bool: false for "false", "f" (any case) and "0", true otherwise. */
bool cli_parse_bool(const char *v);

/* mlx_lm's closing lines, on stderr. */
void cli_print_stats(const brisk_generate_stats *st);

#endif
