/* fuzz_config.c: libFuzzer target for config.json parsing (model traits, rope, quantization). */
#include "model/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    brisk_config cfg;
    if (brisk_config_parse(text, size, "fuzz", &cfg) == BRISK_OK) {
        float inv[2048];
        if (cfg.head_dim / 2 <= 2048) brisk_rope_inv_freq(&cfg.rope, cfg.head_dim, inv);
        brisk_config_quant_override(&cfg, "model.embed_tokens");
        brisk_config_free(&cfg);
    }
    free(text);
    return 0;
}
