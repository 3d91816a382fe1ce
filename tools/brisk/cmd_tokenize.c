/* cmd_tokenize.c: placeholder for `brisk tokenize` until its module lands. */
#include "cli.h"

#include <stdio.h>

int brisk_cmd_tokenize(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "brisk tokenize: not built yet\n");
    return BRISK_EXIT_FAIL;
}

int brisk_cmd_detokenize(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "brisk detokenize: not built yet\n");
    return BRISK_EXIT_FAIL;
}
