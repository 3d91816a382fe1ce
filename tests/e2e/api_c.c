/* api_c.c: brisk.h compiles as strict C11 (-std=c11 -pedantic -Werror) and, through api_cpp.cpp,
 * as C++; calls a few functions so the declarations are used. */
#include "brisk.h"

#include <stdio.h>

int main(void) {
    brisk_model_params mp = brisk_model_default_params();
    brisk_context_params cp = brisk_context_default_params();
    brisk_sampler_params sp = brisk_sampler_default_params();
    brisk_generate_params gp = brisk_generate_default_params();
    brisk_model *m = NULL;
    brisk_status st = brisk_model_load("/nonexistent", &mp, &m);
    int ok = st == BRISK_ERR_NOT_FOUND && m == NULL && brisk_last_error()[0] != 0 &&
             cp.n_seq_max == 1 && sp.temperature == 0.0f && gp.max_tokens == 100;
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
