/* simple.c: the smallest complete use of the brisk C API: load a model folder, apply its chat
 * template (when it has one), and stream a greedy answer to stdout.
 * usage: simple MODEL_DIR "prompt" */
#include "brisk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool print_piece(void *user, const char *text, size_t len, int32_t token, float logprob) {
    (void)user, (void)token, (void)logprob;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true; /* false would stop generation */
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT\n", argv[0]);
        return 2;
    }
    brisk_model *model = NULL;
    brisk_tokenizer *tok = NULL;
    brisk_chat_template *tmpl = NULL;
    brisk_context *ctx = NULL;
    char *prompt = NULL;
    int32_t ids[4096];
    size_t n_ids = 0;
    int rc = 1;
    if (brisk_model_load(argv[1], NULL, &model) != BRISK_OK ||
        brisk_tokenizer_load(argv[1], &tok) != BRISK_OK ||
        brisk_context_create(model, NULL, &ctx) != BRISK_OK)
        goto fail;
    bool chat = brisk_chat_template_load(argv[1], NULL, &tmpl) == BRISK_OK;
    if (chat) {
        /* A real program would escape the prompt as a JSON string. */
        char messages[2048];
        snprintf(messages, sizeof messages, "[{\"role\": \"user\", \"content\": \"%s\"}]", argv[2]);
        if (brisk_chat_template_render(tmpl, messages, NULL, true, &prompt, NULL) != BRISK_OK)
            goto fail;
    }
    const char *text = chat ? prompt : argv[2];
    if (brisk_tokenizer_encode(tok, text, strlen(text), !chat, ids, 4096, &n_ids) != BRISK_OK)
        goto fail;
    brisk_generate_params gp = brisk_generate_default_params();
    gp.max_tokens = 64;
    if (brisk_generate(ctx, 0, tok, ids, (int)n_ids, &gp, print_piece, NULL, NULL) != BRISK_OK)
        goto fail;
    printf("\n");
    rc = 0;
fail:
    if (rc) fprintf(stderr, "error: %s\n", brisk_last_error());
    brisk_free(prompt);
    brisk_context_destroy(ctx);
    brisk_chat_template_free(tmpl);
    brisk_tokenizer_free(tok);
    brisk_model_free(model);
    return rc;
}
