/* test_cli.c: end-to-end tests of the brisk CLI as a user runs it: generate reproduces llama2.c's
 * greedy output for stories260K, stdin prompts, seeds, stats lines, usage errors, broken models,
 * and chat keeping its cache across turns. */
#define _GNU_SOURCE
#include "check.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *BRISK, *SHARED;
static char TMP[64];

typedef struct run_result {
    int rc;
    char *out, *err;
    size_t out_len, err_len;
} run_result;

static void append(char **buf, size_t *len, const char *data, size_t n) {
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
}

/* Runs argv with `input` on stdin (NULL = empty), capturing stdout and stderr. */
static run_result run(char *const argv[], const char *input) {
    int in[2], out[2], err[2];
    run_result r = {0};
    if (pipe(in) || pipe(out) || pipe(err)) return r;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(in[1]), close(out[0]), close(err[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]), close(out[1]), close(err[1]);
    if (input && write(in[1], input, strlen(input)) < 0) perror("write");
    close(in[1]);
    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    while (open_fds > 0) {
        if (poll(fds, 2, 60000) <= 0) break;
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            ssize_t n = read(fds[k].fd, buf, sizeof buf);
            if (n <= 0) {
                close(fds[k].fd);
                fds[k].fd = -1;
                open_fds--;
            } else if (k == 0)
                append(&r.out, &r.out_len, buf, (size_t)n);
            else
                append(&r.err, &r.err_len, buf, (size_t)n);
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    return r;
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

/* The four llama2.c prompts: stdout must be exactly what run.c printed after the prompt. */
static void test_rundotc(void) {
    char path[1024], model[1024], steps[32];
    snprintf(path, sizeof path, "%s/models/stories260K/rundotc_greedy.json", SHARED);
    snprintf(model, sizeof model, "%s/models/stories260K-hf-f32", SHARED);
    char *text = test_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_GetArraySize(root) == 4);
    cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *prompt = cJSON_GetObjectItem(e, "prompt")->valuestring;
        const char *output = cJSON_GetObjectItem(e, "output")->valuestring;
        snprintf(steps, sizeof steps, "%d",
                 cJSON_GetArraySize(cJSON_GetObjectItem(e, "generated_ids")));
        char *argv[] = {(char *)BRISK, "generate", "--model",
                        model,         "--prompt", (char *)prompt,
                        "--temp",      "0",        "--ignore-chat-template",
                        "-m",          steps,      NULL};
        run_result r = run(argv, NULL);
        CHECK_MSG(r.rc == 0 && !strcmp(r.out, output + strlen(prompt)), "prompt '%s': rc %d\n%s",
                  prompt, r.rc, r.out);
        /* stderr ends with mlx_lm's three lines. */
        CHECK(strstr(r.err, "Prompt: ") && strstr(r.err, "Generation: ") &&
              strstr(r.err, "Peak memory: "));
        CHECK(r.err_len > 0 && strstr(r.err, "tokens-per-sec\nPeak memory: ") != NULL);
        run_free(&r);
        /* The same prompt from stdin. */
        char *argv2[] = {(char *)BRISK, "generate", "--model",
                         model,         "-p",       "-",
                         "--temp",      "0",        "--ignore-chat-template",
                         "-m",          steps,      "--verbose",
                         "false",       NULL};
        r = run(argv2, prompt);
        CHECK_MSG(r.rc == 0 && !strcmp(r.out, output + strlen(prompt)) && r.err_len == 0,
                  "stdin prompt '%s'", prompt);
        run_free(&r);
    }
    cJSON_Delete(root);
    free(text);
}

/* BOS only, 200 greedy tokens, in every stories260K folder (f32, bf16, MLX 4-bit, mixed). */
static void test_folders(void) {
    const char *folders[] = {"stories260K-hf-f32", "stories260K-hf-bf16", "stories260K-mlx-4bit",
                             "stories260K-mlx-mixed"};
    for (int i = 0; i < 4; i++) {
        char model[1024], path[1200];
        snprintf(model, sizeof model, "%s/models/%s", SHARED, folders[i]);
        snprintf(path, sizeof path, "%s/expected_output.txt", model);
        char *want = test_read_file(path, NULL);
        char *argv[] = {(char *)BRISK, "generate", "--model",
                        model,         "--prompt", "",
                        "--temp",      "0",        "--ignore-chat-template",
                        "-m",          "200",      "--verbose",
                        "false",       NULL};
        run_result r = run(argv, NULL);
        /* expected_output.txt has no trailing newline; generate ends with one. */
        size_t wl = want ? strlen(want) : 0;
        while (wl && want[wl - 1] == '\n') want[--wl] = 0;
        CHECK_MSG(r.rc == 0 && want && r.out_len == wl + 1 && !strncmp(r.out, want, wl),
                  "%s: rc %d\n%s", folders[i], r.rc, r.out);
        run_free(&r);
        free(want);
    }
}

static void test_seeds_and_errors(void) {
    char model[1024];
    snprintf(model, sizeof model, "%s/models/stories260K-mlx-4bit", SHARED);
    char *outs[3];
    const char *seeds[3] = {"5", "5", "6"};
    for (int i = 0; i < 3; i++) {
        char *argv[] = {
            (char *)BRISK, "generate",       "--model", model,     "-p",
            "The dog",     "--temp",         "1.0",     "--top-p", "0.95",
            "--seed",      (char *)seeds[i], "-m",      "40",      "--ignore-chat-template",
            NULL};
        run_result r = run(argv, NULL);
        CHECK(r.rc == 0 && r.out_len > 10);
        outs[i] = r.out;
        free(r.err);
    }
    CHECK(!strcmp(outs[0], outs[1]));
    CHECK(strcmp(outs[0], outs[2]) != 0);
    for (int i = 0; i < 3; i++) free(outs[i]);

    char *bad_flag[] = {(char *)BRISK, "generate", "--model", model, "--frobnicate", NULL};
    run_result r = run(bad_flag, NULL);
    CHECK(r.rc == 2 && strstr(r.err, "unknown option '--frobnicate'") && strstr(r.err, "usage:") &&
          r.out_len == 0);
    run_free(&r);

    char *bad_num[] = {(char *)BRISK, "generate", "--model", model, "--temp", "hot", NULL};
    r = run(bad_num, NULL);
    CHECK(r.rc == 2 && strstr(r.err, "--temp"));
    run_free(&r);

    char missing[256];
    snprintf(missing, sizeof missing, "%s/no-such-model", TMP);
    char *no_model[] = {(char *)BRISK, "generate", "--model", missing, NULL};
    r = run(no_model, NULL);
    /* One clear line, exit 1, nothing on stdout. */
    CHECK_MSG(r.rc == 1 && r.out_len == 0 && strchr(r.err, '\n') == r.err + r.err_len - 1,
              "missing model: rc %d err '%s'", r.rc, r.err);
    run_free(&r);

    char broken[256], cmd[4096];
    snprintf(broken, sizeof broken, "%s/broken", TMP);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && printf '{\"model_type\": ' > '%s/config.json'",
             model, broken, broken);
    CHECK(system(cmd) == 0);
    char *broken_model[] = {(char *)BRISK, "generate", "--model", broken, NULL};
    r = run(broken_model, NULL);
    CHECK_MSG(r.rc == 1 && r.out_len == 0 && strstr(r.err, "config.json") &&
                  strchr(r.err, '\n') == r.err + r.err_len - 1,
              "broken model: rc %d err '%s'", r.rc, r.err);
    run_free(&r);

    char *unknown_cmd[] = {(char *)BRISK, "frob", NULL};
    r = run(unknown_cmd, NULL);
    CHECK(r.rc == 2);
    run_free(&r);
}

/* chat over a copy of stories260K given a simple template: two turns from a pipe; the second
 * turn prefills only the new part. */
static void test_chat(void) {
    char dir[256], cmd[4096], model[1024];
    snprintf(model, sizeof model, "%s/models/stories260K-hf-f32", SHARED);
    snprintf(dir, sizeof dir, "%s/chatmodel", TMP);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", model, dir);
    CHECK(system(cmd) == 0);
    char tpath[300];
    snprintf(tpath, sizeof tpath, "%s/chat_template.jinja", dir);
    FILE *f = fopen(tpath, "w");
    /* Turns end in a newline so the cached reply re-tokenizes identically, as real templates'
     * special tokens ensure. */
    fputs("{{ bos_token }}{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
          "{% if add_generation_prompt %}assistant:\n{% endif %}",
          f);
    fclose(f);
    char *argv[] = {(char *)BRISK, "chat", "--model", dir, "-m", "8", "--verbose", "true", NULL};
    run_result r = run(argv, "Once upon a time\n/reset\nThe cat\nand the dog\n/exit\n");
    CHECK_MSG(r.rc == 0, "chat rc %d: %s", r.rc, r.err);
    /* Three turns ran; the third prefilled fewer tokens than its whole prompt. */
    int prompts[3] = {0}, n = 0;
    for (const char *p = r.err; (p = strstr(p, "Prompt: ")) && n < 3; p++)
        prompts[n++] = atoi(p + 8);
    CHECK_MSG(n == 3, "chat turns: %d\n%s", n, r.err);
    /* Turn 3's prompt is turn 2's prompt + its reply + the new turn ("user:\nand the dog\n
     * assistant:\n" = 20 tokens). Without reuse it would prefill all of that; with reuse only
     * the reply (as re-tokenized) and the new turn. */
    CHECK_MSG(n == 3 && prompts[2] > 0 && prompts[2] < prompts[1] + 20, "prefilled %d %d %d",
              prompts[0], prompts[1], prompts[2]);
    run_free(&r);

    char *no_tmpl[] = {(char *)BRISK, "chat", "--model", model, NULL};
    r = run(no_tmpl, "hi\n");
    CHECK(r.rc == 1 && strstr(r.err, "no chat template"));
    run_free(&r);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_cli BRISK SHARED\n");
        return 2;
    }
    BRISK = argv[1];
    SHARED = argv[2];
    snprintf(TMP, sizeof TMP, "/tmp/brisk-cli-XXXXXX");
    if (!mkdtemp(TMP)) return 1;
    test_rundotc();
    test_folders();
    test_seeds_and_errors();
    test_chat();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", TMP);
    CHECK_DONE();
}
