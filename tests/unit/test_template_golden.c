/* test_template_golden.c: renders every conversation of tests/golden/templates/<template>.json
 * with the matching ../shared/chat-templates/<template>.jinja and compares byte for byte with the
 * transformers renders committed there (or the template's own raise_exception message). */
#include "brisk.h"
#include "check.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

static void run_file(const char *golden_dir, const char *templates_dir, const char *file) {
    char path[4096], stem[1024];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(file) - 5), file);
    snprintf(path, sizeof path, "%s/%s.jinja", templates_dir, stem);
    size_t src_len = 0;
    char *src = test_read_file(path, &src_len);
    CHECK_MSG(src != NULL, "cannot read %s", path);
    if (!src) return;
    brisk_chat_template *t = NULL;
    brisk_status st = brisk_chat_template_create(src, src_len, &t);
    CHECK_MSG(st == BRISK_OK, "%s: %s", stem, brisk_last_error());
    free(src);
    if (st != BRISK_OK) return;
    snprintf(path, sizeof path, "%s/%s", golden_dir, file);
    char *text = test_read_file(path, NULL);
    cJSON *cases = cJSON_Parse(text);
    free(text);
    CHECK_MSG(cJSON_IsArray(cases), "%s is not a JSON array", path);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "messages"));
        char *vars = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "vars"));
        bool agp = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        const cJSON *expected = cJSON_GetObjectItem(c, "expected");
        const cJSON *error = cJSON_GetObjectItem(c, "error");
        char *out = NULL;
        size_t len = 0;
        st = brisk_chat_template_render(t, msgs, vars, agp, &out, &len);
        if (expected) {
            CHECK_MSG(st == BRISK_OK, "%s/%s: %s", stem, name, brisk_last_error());
            if (st == BRISK_OK) {
                bool same = len == strlen(expected->valuestring) &&
                            !memcmp(out, expected->valuestring, len);
                CHECK_MSG(same, "%s/%s differs:\n--- got\n%s\n--- expected\n%s\n---", stem, name,
                          out, expected->valuestring);
            }
        } else {
            CHECK_MSG(st != BRISK_OK, "%s/%s: rendered but transformers failed with: %s", stem,
                      name, error->valuestring);
            if (cJSON_IsTrue(cJSON_GetObjectItem(c, "raised"))) {
                /* the template's own message, after our "raise_exception: " prefix */
                const char *e = brisk_last_error(), *m = strstr(e, "raise_exception: ");
                CHECK_MSG(m && !strcmp(m + 17, error->valuestring),
                          "%s/%s: error '%s', expected '%s'", stem, name, e, error->valuestring);
            }
        }
        brisk_free(out);
        free(msgs);
        free(vars);
        n++;
    }
    CHECK_MSG(n >= 6, "%s: only %d conversations", stem, n);
    cJSON_Delete(cases);
    brisk_chat_template_free(t);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s GOLDEN_TEMPLATES_DIR SHARED_CHAT_TEMPLATES_DIR\n", argv[0]);
        return 2;
    }
    setenv("BRISK_TEMPLATE_NOW", "1700000000", 1); /* the instant the goldens were made with */
    DIR *d = opendir(argv[1]);
    CHECK_MSG(d != NULL, "cannot open %s", argv[1]);
    struct dirent *e;
    int files = 0;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
        run_file(argv[1], argv[2], e->d_name);
        files++;
    }
    if (d) closedir(d);
    CHECK_MSG(files >= 9, "only %d golden files", files);
    CHECK_DONE();
}
