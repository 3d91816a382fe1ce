/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json loader: any bytes must load or
 * fail with a status and message (never crash, leak or hang); a loaded one must encode/decode. */
#include "tokenizer/tok_internal.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    brisk_tokenizer *t = NULL;
    if (tok_load_buffer((const char *)data, size, &t) != BRISK_OK) {
        if (t || !*brisk_last_error())
            __builtin_trap(); /* failure leaves no object, has a message */
        return 0;
    }
    static const char text[] = "Hello world <s> 123 caf\xc3\xa9 \xf0\x9f\x98\x80\n\tx";
    int32_t ids[256];
    size_t n = 0, len;
    if (brisk_tokenizer_encode(t, text, sizeof text - 1, true, ids, 256, &n) == BRISK_OK) {
        char buf[1024];
        brisk_tokenizer_decode(t, ids, n, false, buf, sizeof buf, &len);
    }
    for (int32_t id = 0; id < brisk_tokenizer_n_vocab(t) && id < 64; id++)
        brisk_tokenizer_token_text(t, id);
    brisk_tokenizer_free(t);
    return 0;
}
