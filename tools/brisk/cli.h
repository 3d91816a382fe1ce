/* cli.h: the brisk command-line tool's subcommands and shared argument helpers.
 * Every subcommand lives in its own cmd_*.c and uses only the public brisk.h. */
#ifndef BRISK_CLI_H
#define BRISK_CLI_H

#include "brisk.h"

/* Exit codes shared by all subcommands. */
enum { BRISK_EXIT_OK = 0, BRISK_EXIT_FAIL = 1, BRISK_EXIT_USAGE = 2 };

int brisk_cmd_logits(int argc, char **argv);
int brisk_cmd_tokenize(int argc, char **argv);
int brisk_cmd_detokenize(int argc, char **argv);
int brisk_cmd_template(int argc, char **argv);
int brisk_cmd_bench(int argc, char **argv);
int brisk_cmd_generate(int argc, char **argv);
int brisk_cmd_chat(int argc, char **argv);

/* Prints "brisk <cmd>: <what>: <brisk_last_error()>" to stderr and returns BRISK_EXIT_FAIL. */
int brisk_cli_fail(const char *cmd, const char *what, brisk_status st);

/* Prints "brisk <cmd>: <msg>" plus the usage text to stderr and returns BRISK_EXIT_USAGE. */
int brisk_cli_usage(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads a whole file into a NUL-terminated malloc'd buffer ("-" = stdin). NULL on error with
 * errno set; *len receives the byte count when not NULL. */
char *brisk_cli_read_file(const char *path, size_t *len);

#endif
