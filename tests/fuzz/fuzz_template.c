/* fuzz_template.c: libFuzzer target for the chat-template lexer, parser and evaluator. Input:
 * template source, optionally followed by a NUL byte and the messages JSON to render with. */
#include "brisk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char DEFAULT_MESSAGES[] =
    "[{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi "
    "\\u00e9\"},"
    " {\"role\": \"assistant\", \"content\": \"<think>r</think>ok\", \"tool_calls\": [{\"id\": "
    "\"abcdefghi\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1.5}}}]}, {\"role\": \"tool\", "
    "\"content\": \"x\"}]";
static const char VARS[] =
    "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], "
    "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    char *messages = NULL;
    if (nul) { /* the rest, NUL-terminated, is the conversation */
        size_t n = size - src_len - 1;
        messages = malloc(n + 1);
        if (!messages) return 0;
        memcpy(messages, nul + 1, n);
        messages[n] = 0;
    }
    brisk_chat_template *t = NULL;
    if (brisk_chat_template_create((const char *)data, src_len, &t) == BRISK_OK) {
        char *out = NULL;
        size_t len = 0;
        brisk_chat_template_render(t, messages ? messages : DEFAULT_MESSAGES, VARS, true, &out,
                                   &len);
        brisk_free(out);
        brisk_chat_template_free(t);
    }
    free(messages);
    return 0;
}
