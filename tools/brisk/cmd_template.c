/* cmd_template.c: `brisk template`: renders a model's chat template over a JSON conversation and
 * prints the text exactly as rendered (no newline added). Uses only brisk.h. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: brisk template --model DIR [--template FILE] --messages FILE.json\n"
    "                      [--no-generation-prompt] [--var KEY=JSON]...\n"
    "  --model DIR            model folder (chat template, bos/eos from tokenizer_config.json)\n"
    "  --template FILE        use this Jinja file instead of the folder's template\n"
    "  --messages FILE.json   JSON array of {role, content, ...} messages (\"-\" = stdin)\n"
    "  --no-generation-prompt render without add_generation_prompt\n"
    "  --var KEY=JSON         an extra template variable, e.g. --var 'tools=[...]'\n";

/* Appends `s` as a JSON string body (the CLI passes JSON text to the library, it parses none). */
static void json_escape(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

int brisk_cmd_template(int argc, char **argv) {
    const char *model = NULL, *tmpl_file = NULL, *messages = NULL;
    bool gen_prompt = true;
    char *vars = NULL;
    size_t vars_len = 0;
    FILE *vf = open_memstream(&vars, &vars_len);
    if (!vf) return brisk_cli_usage("template", USAGE, "out of memory");
    int n_vars = 0;
    fputc('{', vf);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fclose(vf);
            free(vars);
            fputs(USAGE, stdout);
            return BRISK_EXIT_OK;
        } else if (!strcmp(a, "--model") && has_val)
            model = argv[++i];
        else if (!strcmp(a, "--template") && has_val)
            tmpl_file = argv[++i];
        else if (!strcmp(a, "--messages") && has_val)
            messages = argv[++i];
        else if (!strcmp(a, "--no-generation-prompt"))
            gen_prompt = false;
        else if (!strcmp(a, "--var") && has_val) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                fclose(vf);
                free(vars);
                return brisk_cli_usage("template", USAGE, "--var needs KEY=JSON, got '%s'", kv);
            }
            fputs(n_vars++ ? ",\"" : "\"", vf);
            json_escape(vf, kv, (size_t)(eq - kv));
            fprintf(vf, "\":%s", eq + 1);
        } else {
            fclose(vf);
            free(vars);
            return brisk_cli_usage("template", USAGE, "unknown or incomplete option '%s'", a);
        }
    }
    fputc('}', vf);
    fclose(vf);
    if (!messages || (!model && !tmpl_file)) {
        free(vars);
        return brisk_cli_usage("template", USAGE,
                               "--messages and --model (or --template) are required");
    }
    char *msgs = brisk_cli_read_file(messages, NULL);
    if (!msgs) {
        fprintf(stderr, "brisk template: cannot read %s: %s\n", messages, strerror(errno));
        free(vars);
        return BRISK_EXIT_FAIL;
    }
    brisk_chat_template *t = NULL;
    brisk_status st = tmpl_file ? brisk_chat_template_load_file(tmpl_file, model, &t)
                                : brisk_chat_template_load(model, NULL, &t);
    int rc = BRISK_EXIT_OK;
    if (st != BRISK_OK) {
        rc = brisk_cli_fail("template", "loading the template", st);
    } else {
        char *text = NULL;
        size_t len = 0;
        st = brisk_chat_template_render(t, msgs, n_vars ? vars : NULL, gen_prompt, &text, &len);
        if (st != BRISK_OK)
            rc = brisk_cli_fail("template", "rendering", st);
        else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
            rc = BRISK_EXIT_FAIL;
        brisk_free(text);
    }
    brisk_chat_template_free(t);
    free(msgs);
    free(vars);
    return rc;
}
