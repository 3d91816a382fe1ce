/* cmd_template.c: placeholder for `brisk template` until its module lands. */
#include "cli.h"

#include <stdio.h>

int brisk_cmd_template(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "brisk template: not built yet\n");
    return BRISK_EXIT_FAIL;
}
