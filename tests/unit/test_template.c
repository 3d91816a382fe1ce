/* test_template.c: the Jinja interpreter feature by feature: snippets rendered by transformers'
 * Jinja setup (tests/golden/template-snippets.json), syntax errors with line:column, limits on
 * hostile templates, loading from model folders, and the 20-turn render time. */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Renders `src` with `vars` (messages empty); returns the status, *out the text or the error. */
static brisk_status render(const char *src, const char *vars, char **out) {
    brisk_chat_template *t = NULL;
    *out = NULL;
    brisk_status st = brisk_chat_template_create(src, strlen(src), &t);
    if (st == BRISK_OK) st = brisk_chat_template_render(t, "[]", vars, false, out, NULL);
    if (st != BRISK_OK) *out = strdup(brisk_last_error());
    brisk_chat_template_free(t);
    return st;
}

static void test_snippets(const char *path) {
    char *text = test_read_file(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *src = cJSON_GetObjectItem(c, "template")->valuestring;
        char *vars = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "vars"));
        const cJSON *expected = cJSON_GetObjectItem(c, "expected");
        char *out = NULL;
        brisk_status st = render(src, vars, &out);
        if (expected) {
            CHECK_MSG(st == BRISK_OK && !strcmp(out, expected->valuestring),
                      "template %s\n  got:      '%s'\n  expected: '%s'", src, out,
                      expected->valuestring);
        } else {
            CHECK_MSG(st != BRISK_OK, "template %s rendered '%s' but Jinja failed: %s", src, out,
                      cJSON_GetObjectItem(c, "error")->valuestring);
            if (cJSON_IsTrue(cJSON_GetObjectItem(c, "raised")))
                CHECK_MSG(strstr(out, cJSON_GetObjectItem(c, "error")->valuestring) != NULL, "%s",
                          out);
        }
        free(out);
        free(vars);
    }
    cJSON_Delete(cases);
}

static void expect_error(const char *src, brisk_status want, const char *needle) {
    char *out = NULL;
    brisk_status st = render(src, NULL, &out);
    CHECK_MSG(st == want && strstr(out, needle),
              "template '%.60s': status %d, message '%s', wanted '%s'", src, st, out, needle);
    free(out);
}

static void test_errors(void) {
    /* syntax errors name line:column and what was expected */
    expect_error("{% if x %}\nno end", BRISK_ERR_FORMAT,
                 "2:7: expected '{% elif %}' or '{% else %}' or '{% endif %}' for the tag at 1:4");
    expect_error("a\n  {{ 1 + }}", BRISK_ERR_FORMAT, "2:10: expected an expression, found '}}'");
    expect_error("{{ 'abc }}", BRISK_ERR_FORMAT, "1:4: unterminated string literal");
    expect_error("{% for x y %}{% endfor %}", BRISK_ERR_FORMAT, "1:10: expected 'in'");
    expect_error("{% frob %}", BRISK_ERR_FORMAT, "1:4: expected a known tag");
    expect_error("{{ x $ y }}", BRISK_ERR_FORMAT, "1:6: unexpected character '$'");
    expect_error("{% break %}", BRISK_ERR_FORMAT,
                 "expected 'break' or 'continue' only inside a for loop");
    expect_error("{{ (1, 2 }}", BRISK_ERR_FORMAT,
                 "1:12: unexpected end of template, expected '}}'");
    expect_error("{# never closed", BRISK_ERR_FORMAT, "1:1: unterminated comment");
    expect_error("{{ a < b < c }}", BRISK_ERR_FORMAT, "chained comparisons are not supported");
    expect_error("{% for x in y recursive %}{% endfor %}", BRISK_ERR_FORMAT,
                 "recursive loops are not supported");
    /* runtime errors */
    expect_error("{{ x | nosuchfilter }}", BRISK_ERR_UNSUPPORTED, "no filter named 'nosuchfilter'");
    expect_error("\n {{ x.y }}", BRISK_ERR_INVALID_ARG, "2:5: 'x' is undefined");
    expect_error("{{ 'a' + 1 }}", BRISK_ERR_INVALID_ARG,
                 "unsupported operand type(s) for +: 'str' and 'int'");
    expect_error("{{ raise_exception('nope') }}", BRISK_ERR_INVALID_ARG,
                 "brisk_chat_template_render: raise_exception: nope");
    expect_error("{% set x = 1 %}{% set x.y = 2 %}", BRISK_ERR_INVALID_ARG, "non-namespace");
    /* limits: hostile templates end with a status, not a hang or a crash */
    char deep[8192];
    size_t k = 0;
    k += (size_t)sprintf(deep + k, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 1000; i++) deep[k++] = ')';
    sprintf(deep + k, " }}");
    expect_error(deep, BRISK_ERR_UNSUPPORTED, "nests deeper");
    k = 0;
    for (int i = 0; i < 600; i++) k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
    expect_error(deep, BRISK_ERR_UNSUPPORTED, "nests deeper");
    expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", BRISK_ERR_UNSUPPORTED,
                 "nest deeper");
    expect_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 BRISK_ERR_UNSUPPORTED, "memory limit");
    expect_error("{% set l = range(100000) %}{% for i in l %}{% for j in l %}{{ i + j > 1 and '' "
                 "}}{% endfor %}"
                 "{% endfor %}",
                 BRISK_ERR_UNSUPPORTED, "limit");
    expect_error("{{ 'x' * 1000000000 }}", BRISK_ERR_UNSUPPORTED, "too large");
    expect_error("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set "
                 "ns.s = ns.s ~ ns.s %}{% endfor %}",
                 BRISK_ERR_UNSUPPORTED, "limit");
    expect_error("{{ range(10000000) }}", BRISK_ERR_UNSUPPORTED, "range()");
    expect_error("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] "
                 "%}{% endfor %}"
                 "{{ ns.x }}",
                 BRISK_ERR_UNSUPPORTED, "value nests deeper");
    expect_error("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] "
                 "%}{% endfor %}"
                 "{{ ns.x == ns.x }}",
                 BRISK_ERR_UNSUPPORTED, "value nests deeper");
    expect_error("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] "
                 "%}{% endfor %}"
                 "{{ ns.x | tojson }}",
                 BRISK_ERR_UNSUPPORTED, "nesting too deep");
    /* a namespace inside itself (fuzz_template found the printing recursing without bound) */
    expect_error("{% set ns = namespace(n=0) %}{% set ns.n = (ns, 1) %}{{ ns }}",
                 BRISK_ERR_UNSUPPORTED, "value nests deeper");
    expect_error("{% set ns = namespace(n=0) %}{% set ns.n = [ns] %}{{ ns.n }}",
                 BRISK_ERR_UNSUPPORTED, "value nests deeper");
    expect_error("{% set ns = namespace(n=0) %}{% set ns.n = {'a': ns} %}{{ ns.n | tojson }}",
                 BRISK_ERR_INVALID_ARG, "Object of type Namespace is not JSON serializable");
    { /* as Python: the same object compares equal without looking inside */
        char *out = NULL;
        const brisk_status st = render(
            "{% set ns = namespace(n=0) %}{% set ns.n = [ns] %}{{ ns.n == ns.n }}", NULL, &out);
        CHECK_MSG(st == BRISK_OK && strcmp(out, "True") == 0, "self-containing ==: %d '%s'", st,
                  out);
        free(out);
    }
    /* bad inputs to the API */
    brisk_chat_template *t = NULL;
    CHECK(brisk_chat_template_create("{{ 1 }}", 7, &t) == BRISK_OK);
    char *out = NULL;
    CHECK(brisk_chat_template_render(t, "{\"role\": 1}", NULL, true, &out, NULL) ==
          BRISK_ERR_INVALID_ARG);
    CHECK(out == NULL);
    CHECK(brisk_chat_template_render(t, "[1,", NULL, true, &out, NULL) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_chat_template_render(t, "[]", "[]", true, &out, NULL) == BRISK_ERR_INVALID_ARG);
    CHECK(brisk_chat_template_render(t, "[{\"role\": \"user\"}]", "{\"a\": 1}", true, &out, NULL) ==
          BRISK_OK);
    CHECK_STREQ(out, "1");
    brisk_free(out);
    brisk_chat_template_free(t);
    CHECK(brisk_chat_template_create(NULL, 1, &t) == BRISK_ERR_INVALID_ARG);
}

static void test_load(const char *shared) {
    char dir[4096];
    brisk_chat_template *t = NULL;
    char *out = NULL;
    const char *msgs = "[{\"role\": \"user\", \"content\": \"Hello!\"}]";
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen3", shared);
    CHECK_MSG(brisk_chat_template_load(dir, NULL, &t) == BRISK_OK, "%s", brisk_last_error());
    CHECK(brisk_chat_template_bos(t) == NULL);
    CHECK(brisk_chat_template_eos(t) && !strcmp(brisk_chat_template_eos(t), "<|im_end|>"));
    CHECK(brisk_chat_template_render(t, msgs, NULL, true, &out, NULL) == BRISK_OK);
    CHECK_STREQ(out, "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
    brisk_free(out);
    brisk_chat_template_free(t);

    snprintf(dir, sizeof dir, "%s/tokenizers/llama3-instruct", shared);
    CHECK_MSG(brisk_chat_template_load(dir, NULL, &t) == BRISK_OK, "%s", brisk_last_error());
    CHECK(brisk_chat_template_render(t, msgs, NULL, false, &out, NULL) == BRISK_OK);
    CHECK_STREQ(out,
                "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>");
    brisk_free(out);
    brisk_chat_template_free(t);

    snprintf(dir, sizeof dir, "%s/tokenizers/llama2-spm", shared); /* no chat_template there */
    CHECK(brisk_chat_template_load(dir, NULL, &t) == BRISK_ERR_NOT_FOUND && t == NULL);
    CHECK(brisk_chat_template_load("/nonexistent-dir", NULL, &t) == BRISK_ERR_NOT_FOUND);
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen3", shared);
    CHECK(brisk_chat_template_load(dir, "tool_use", &t) == BRISK_ERR_NOT_FOUND);
}

/* A named-template list and AddedToken-style bos/eos, written to a temporary folder. */
static void test_load_named(void) {
    char dir[] = "/tmp/brisk-tmpl-XXXXXX";
    if (!mkdtemp(dir)) return;
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\", "
          "\"chat_template\": [{\"name\": \"default\", \"template\": \"D{{ bos_token }}{{ "
          "eos_token }}\"}, "
          "{\"name\": \"tool_use\", \"template\": \"T{{ tools | length }}\"}]}",
          f);
    fclose(f);
    brisk_chat_template *t = NULL;
    char *out = NULL;
    CHECK(brisk_chat_template_load(dir, NULL, &t) == BRISK_OK);
    CHECK(brisk_chat_template_render(t, "[]", NULL, true, &out, NULL) == BRISK_OK);
    CHECK_STREQ(out, "D<s></s>");
    brisk_free(out);
    brisk_chat_template_free(t);
    CHECK(brisk_chat_template_load(dir, "tool_use", &t) == BRISK_OK);
    CHECK(brisk_chat_template_render(t, "[]", "{\"tools\": [1, 2]}", true, &out, NULL) == BRISK_OK);
    CHECK_STREQ(out, "T2");
    brisk_free(out);
    brisk_chat_template_free(t);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir); /* takes precedence */
    f = fopen(path, "w");
    fputs("J{{ messages | length }}\n", f);
    fclose(f);
    CHECK(brisk_chat_template_load(dir, NULL, &t) == BRISK_OK);
    CHECK(brisk_chat_template_render(t, "[{}]", NULL, true, &out, NULL) == BRISK_OK);
    CHECK_STREQ(out, "J1");
    brisk_free(out);
    brisk_chat_template_free(t);
    remove(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    remove(path);
    remove(dir);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 20 turns through the Qwen3 template (the longest real one): prints the time per render. */
static void test_speed(const char *shared) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen3", shared);
    brisk_chat_template *t = NULL;
    if (brisk_chat_template_load(dir, NULL, &t) != BRISK_OK) return;
    char msgs[8192];
    size_t k = (size_t)sprintf(msgs, "[");
    for (int i = 0; i < 20; i++)
        k += (size_t)sprintf(msgs + k,
                             "%s{\"role\": \"%s\", \"content\": \"Turn %d: some words of the "
                             "conversation, about a sentence long.\"}",
                             i ? ", " : "", i % 2 ? "assistant" : "user", i);
    sprintf(msgs + k, "]");
    int iters = 1000;
    char *out = NULL;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        brisk_chat_template_render(t, msgs, NULL, true, &out, NULL);
        brisk_free(out);
    }
    double us = (now_s() - t0) / iters * 1e6;
    printf("qwen3 template, 20-turn conversation: %.1f us per render\n", us);
    /* Release builds take ~50 us (bench/RESULTS.md); the bound only catches pathologies, so
     * sanitizer builds on a loaded machine do not flake. */
    CHECK_MSG(us < 20000.0, "render took %.1f us", us);
    brisk_chat_template_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SNIPPETS.json SHARED_DIR\n", argv[0]);
        return 2;
    }
    setenv("BRISK_TEMPLATE_NOW", "1700000000", 1);
    test_snippets(argv[1]);
    test_errors();
    test_load(argv[2]);
    test_load_named();
    test_speed(argv[2]);
    CHECK_DONE();
}
