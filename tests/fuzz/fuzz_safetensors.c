/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser and validator: any byte
 * string is a candidate file image; it must be rejected or accepted without a crash or leak. */
#include "format/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy so out-of-bounds reads past `size` are caught by ASan. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    int n = 0;
    brisk_st_validate_buffer(buf, size, "fuzz", &n);
    free(buf);
    return 0;
}
