/* cmd_logits.c: placeholder for `brisk logits`. */
#include "cli.h"

#include <stdio.h>

int brisk_cmd_logits(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "brisk logits: not built yet\n");
    return BRISK_EXIT_FAIL;
}
