#define _GNU_SOURCE /* memmem */
/* test_loader_errors.c: every bad input the loader must reject, each with its own message and no
 * crash (run under ASan in CI): broken safetensors files, broken folders, configs that are
 * unsupported or contradict the tensors. Fixtures are written to a temp folder from the
 * stories260K MLX model. */
#include "brisk.h"
#include "check.h"
#include "format/safetensors.h"
#include "model/config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char TMP[256];
static char SRC[1024]; /* stories260K-mlx-4bit */

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *s) {
    write_bytes(path, s, strlen(s));
}

/* A file made of a raw header string and `data_len` zero bytes of data. */
static void write_st(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header);
    uint8_t *buf = calloc(8 + hl + data_len + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
}

/* Expects opening `path` as a single file to fail with `st` and a message holding `needle`. */
static void expect_file(const char *what, brisk_status want, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", TMP);
    brisk_st_set *set = NULL;
    brisk_status st = brisk_st_open_file(path, &set);
    CHECK_MSG(st == want && strstr(brisk_last_error(), needle) && strstr(brisk_last_error(), path),
              "%s: status %d, message '%s' (wanted '%s')", what, st, brisk_last_error(), needle);
    brisk_st_close(set);
}

static void test_safetensors_files(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", TMP);

    write_bytes(path, "\x05\0\0", 3);
    expect_file("truncated", BRISK_ERR_FORMAT, "shorter than the 8-byte header");

    write_st(path, "{}", 0);
    uint8_t big[10] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, big, sizeof big);
    expect_file("header past end", BRISK_ERR_FORMAT, "runs past the end");

    uint8_t huge[10] = {0, 0, 0, 0, 1, 0, 0, 0, '{', '}'};
    write_bytes(path, huge, sizeof huge);
    expect_file("header over limit", BRISK_ERR_FORMAT, "exceeds");

    write_st(path, "[1,2,3]", 0);
    expect_file("not an object", BRISK_ERR_FORMAT, "does not start with '{'");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", ", 0);
    expect_file("not JSON", BRISK_ERR_FORMAT, "not a valid JSON object");

    write_st(path, "{\"a\": {\"dtype\": \"F33\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_file("unknown dtype", BRISK_ERR_FORMAT, "unknown dtype 'F33'");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4);
    expect_file("dtype/shape mismatch", BRISK_ERR_FORMAT, "does not match its byte range");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 4);
    expect_file("offset out of range", BRISK_ERR_FORMAT, "run past the end of the data");

    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
             8);
    expect_file("overlap", BRISK_ERR_FORMAT, "overlaps");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
    expect_file("hole", BRISK_ERR_FORMAT, "hole");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 12);
    expect_file("trailing bytes", BRISK_ERR_FORMAT, "trailing garbage");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4);
    expect_file("negative dim", BRISK_ERR_FORMAT, "shape[0]");

    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
             8);
    expect_file("duplicate name", BRISK_ERR_FORMAT, "appears twice");

    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8);
    expect_file("reversed offsets", BRISK_ERR_FORMAT, "end before");

    /* Valid: MLX-style unpadded header, metadata first, an F4 and a scalar and empty tensor. */
    write_st(
        path,
        "{\"__metadata__\":{\"format\":\"mlx\"},\"s\":{\"dtype\":\"BF16\",\"shape\":[],"
        "\"data_offsets\":[0,2]},\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[2,2]},"
        "\"f\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[2,4]}}   ",
        4);
    brisk_st_set *set = NULL;
    CHECK_MSG(brisk_st_open_file(path, &set) == BRISK_OK, "%s", brisk_last_error());
    if (set) {
        CHECK(brisk_st_count(set) == 3);
        const brisk_st_tensor *t = brisk_st_find(set, "f");
        CHECK(t && t->dtype == BRISK_DT_F4 && t->nbytes == 2);
        brisk_st_close(set);
    }

    unlink(path);
    expect_file("missing file", BRISK_ERR_IO, "cannot open");
}

/* Copies stories260K-mlx-4bit into TMP/m with config text `cfg` (NULL = original) and the
 * safetensors file rewritten through `edit` (NULL = original bytes). */
typedef void (*st_edit)(char *header);

static const char *make_model(const char *cfg_find, const char *cfg_repl) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/m", TMP);
    mkdir(dir, 0755);
    char src[1200], dst[1200];
    snprintf(src, sizeof src, "%s/config.json", SRC);
    FILE *f = fopen(src, "rb");
    char cfg[8192] = {0};
    size_t n = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f) fclose(f);
    cfg[n] = 0;
    if (cfg_find) {
        char *at = strstr(cfg, cfg_find);
        if (at) {
            char out[8192];
            snprintf(out, sizeof out, "%.*s%s%s", (int)(at - cfg), cfg, cfg_repl,
                     at + strlen(cfg_find));
            strcpy(cfg, out);
        } else {
            fprintf(stderr, "make_model: '%s' not in config\n", cfg_find);
        }
    }
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    write_text(dst, cfg);
    snprintf(src, sizeof src, "%s/model.safetensors", SRC);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    size_t len;
    f = fopen(src, "rb");
    char *buf = malloc(1 << 21);
    len = f ? fread(buf, 1, 1 << 21, f) : 0;
    if (f) fclose(f);
    write_bytes(dst, buf, len);
    free(buf);
    return dir;
}

/* Rewrites TMP/m/model.safetensors renaming tensor `from` to `to` (same length keeps offsets). */
static void rename_tensor(const char *from, const char *to) {
    char path[600];
    snprintf(path, sizeof path, "%s/m/model.safetensors", TMP);
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 21);
    size_t len = f ? fread(buf, 1, 1 << 21, f) : 0;
    if (f) fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)buf[i];
    char *hit = memmem(buf + 8, hl, from, strlen(from));
    if (hit && strlen(from) == strlen(to))
        memcpy(hit, to, strlen(to));
    else
        fprintf(stderr, "rename_tensor: cannot rename %s\n", from);
    write_bytes(path, buf, len);
    free(buf);
}

static void expect_model(const char *what, brisk_status want, const char *needle) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/m", TMP);
    brisk_model *m = NULL;
    brisk_status st = brisk_model_load(dir, NULL, &m);
    CHECK_MSG(st == want && strstr(brisk_last_error(), needle), "%s: status %d, message '%s'", what,
              st, brisk_last_error());
    CHECK(m == NULL);
    brisk_model_free(m);
}

static void test_models(void) {
    brisk_model *m = NULL;
    make_model(NULL, NULL);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/m", TMP);
    CHECK_MSG(brisk_model_load(dir, NULL, &m) == BRISK_OK, "copy loads: %s", brisk_last_error());
    brisk_model_free(m);

    make_model("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"");
    expect_model("unsupported model_type", BRISK_ERR_UNSUPPORTED,
                 "supported: llama, mistral, qwen2, qwen3");

    make_model("\"bits\": 4", "\"bits\": 7");
    expect_model("bits not allowed", BRISK_ERR_UNSUPPORTED, "7-bit quantization is not supported");

    make_model("\"group_size\": 64", "\"group_size\": 48");
    expect_model("group size not allowed", BRISK_ERR_UNSUPPORTED, "group size 48");

    make_model("\"mode\": \"affine\"", "\"mode\": \"mxfp4\"");
    expect_model("mode", BRISK_ERR_UNSUPPORTED, "quantization mode 'mxfp4'");

    make_model("\"hidden_size\": 64", "\"hidden_size\": 128");
    expect_model("config contradicts tensors", BRISK_ERR_FORMAT, "but the config implies");

    make_model("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 4");
    expect_model("fewer layers than stored", BRISK_ERR_FORMAT,
                 "unexpected tensor 'model.layers.4.");

    make_model("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 6");
    expect_model("missing layer", BRISK_ERR_NOT_FOUND,
                 "'model.layers.5.input_layernorm.weight' is missing");

    make_model("\"bits\": 4,\n    \"group_size\": 64", "\"bits\": 8,\n    \"group_size\": 64");
    expect_model("bits contradict packing", BRISK_ERR_FORMAT, "8-bit");

    make_model("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3");
    expect_model("heads not divisible", BRISK_ERR_FORMAT, "not a multiple");

    make_model("\"rope_scaling\": null",
               "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2}");
    expect_model("rope type", BRISK_ERR_UNSUPPORTED, "rope type 'yarn'");

    make_model("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"");
    expect_model("activation", BRISK_ERR_UNSUPPORTED, "hidden_act 'gelu'");

    make_model("{", "[");
    expect_model("config not JSON", BRISK_ERR_FORMAT, "not valid JSON");

    make_model(NULL, NULL);
    rename_tensor("model.norm.weight", "model.norm.wXight");
    expect_model("missing tensor", BRISK_ERR_NOT_FOUND, "'model.norm.weight' is missing");

    make_model(NULL, NULL);
    rename_tensor("model.layers.0.self_attn.q_proj.scales",
                  "model.layers.0.self_attn.q_proj.scXles");
    expect_model("missing scales", BRISK_ERR_NOT_FOUND, "q_proj.scales");

    make_model(NULL, NULL);
    char cfgp[600];
    snprintf(cfgp, sizeof cfgp, "%s/m/config.json", TMP);
    unlink(cfgp);
    expect_model("no config", BRISK_ERR_NOT_FOUND, "config.json");

    make_model(NULL, NULL);
    char stp[600];
    snprintf(stp, sizeof stp, "%s/m/model.safetensors", TMP);
    FILE *f = fopen(stp, "r+b");
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fclose(f);
        CHECK(truncate(stp, n - 100) == 0);
    }
    expect_model("truncated weights", BRISK_ERR_FORMAT, "truncated file?");

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/m' && touch '%s/m'", TMP, TMP);
    CHECK(system(cmd) == 0);
    expect_model("not a folder", BRISK_ERR_NOT_FOUND, "not a folder");
    unlink(dir);
}

/* A sharded folder whose index names a tensor that is not in its shard. */
static void test_sharded_index(void) {
    char dir[512], p[700];
    snprintf(dir, sizeof dir, "%s/s", TMP);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    write_st(p, "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    write_st(p, "{\"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"weight_map\": {\"x\": \"a.safetensors\", \"y\": \"b.safetensors\"}}");
    brisk_st_set *set = NULL;
    CHECK_MSG(brisk_st_open_dir(dir, &set) == BRISK_OK, "%s", brisk_last_error());
    CHECK(set && brisk_st_find(set, "y") && brisk_st_find(set, "x"));
    brisk_st_close(set);
    write_text(p, "{\"weight_map\": {\"x\": \"b.safetensors\", \"y\": \"b.safetensors\"}}");
    CHECK(brisk_st_open_dir(dir, &set) == BRISK_ERR_FORMAT);
    CHECK_MSG(
        strstr(brisk_last_error(), "'x' is listed in the index but missing from b.safetensors"),
        "%s", brisk_last_error());
    write_text(p, "{\"weight_map\": {\"x\": \"a.safetensors\", \"z\": \"c.safetensors\"}}");
    CHECK(brisk_st_open_dir(dir, &set) == BRISK_ERR_IO);
    CHECK(strstr(brisk_last_error(), "c.safetensors"));
    write_text(p, "{\"weight_map\": {\"x\": \"../a.safetensors\"}}");
    CHECK(brisk_st_open_dir(dir, &set) == BRISK_ERR_FORMAT);
    snprintf(p, sizeof p, "%s/b.safetensors", dir);
    write_st(p, "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    unlink(p);
    CHECK(brisk_st_open_dir(dir, &set) == BRISK_ERR_FORMAT);
    CHECK(strstr(brisk_last_error(), "stored in both"));
}

/* Config variants: eos lists, generation_config, rope key spellings, text_config. */
static void test_config(void) {
    brisk_config c;
    const char *base =
        "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128, "
        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 10";
    char buf[2048];
    snprintf(buf, sizeof buf, "%s, \"eos_token_id\": [5, 7, 5]}", base);
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_OK);
    CHECK(c.n_eos == 2 && c.eos_ids[0] == 5 && c.eos_ids[1] == 7 && c.n_head_kv == 4 &&
          c.head_dim == 16);
    brisk_config_free(&c);
    snprintf(buf, sizeof buf, "%s, \"eos_token_id\": \"x\"}", base);
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_ERR_FORMAT);
    snprintf(buf, sizeof buf,
             "%s, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}, \"rope_theta\": 100}",
             base);
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_OK);
    CHECK(c.rope.type == BRISK_ROPE_LINEAR && c.rope.factor == 4.0 && c.rope.theta == 100);
    brisk_config_free(&c);
    snprintf(buf, sizeof buf,
             "%s, \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, "
             "\"factor\": 32.0, \"original_max_position_embeddings\": 8192}}",
             base);
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_OK);
    CHECK(c.rope.type == BRISK_ROPE_LLAMA3 && c.rope.theta == 500000.0 && c.rope.factor == 32.0 &&
          c.rope.high_freq_factor == 4.0);
    brisk_config_free(&c);
    snprintf(buf, sizeof buf,
             "{\"model_type\": \"llava\", \"text_config\": {\"model_type\": \"qwen2\", "
             "\"hidden_size\": 64, \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
             "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 5}}");
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_OK);
    CHECK(c.arch && !strcmp(c.arch->model_type, "qwen2") && c.n_head_kv == 1);
    brisk_config_free(&c);
    snprintf(buf, sizeof buf, "{\"model_type\": \"llama\", \"hidden_size\": 1e300}");
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_ERR_FORMAT);
    snprintf(buf, sizeof buf, "%s, \"quantization_config\": {\"quant_method\": \"awq\"}}", base);
    CHECK(brisk_config_parse(buf, strlen(buf), "c", &c) == BRISK_ERR_UNSUPPORTED);
    CHECK(strstr(brisk_last_error(), "awq") != NULL);
}

/* llama3 rope scaling against the shared reference tables (float32 emulation column). */
static void test_rope_tables(const char *shared) {
    const struct {
        const char *file;
        int head_dim;
        double factor;
    } cases[] = {{"llama3.1-8B_inv_freq.txt", 128, 8.0}, {"llama3.2-1B_inv_freq.txt", 64, 32.0}};
    for (size_t k = 0; k < 2; k++) {
        brisk_rope_config r = {BRISK_ROPE_LLAMA3, 500000.0, cases[k].factor, 1.0, 4.0, 8192.0};
        float inv[64];
        brisk_rope_inv_freq(&r, cases[k].head_dim, inv);
        char path[1024];
        snprintf(path, sizeof path, "%s/rope/%s", shared, cases[k].file);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL);
        if (!f) continue;
        char line[512];
        int n = 0, ok = 0;
        while (fgets(line, sizeof line, f)) {
            int i;
            double un, sc, f32;
            if (line[0] == '#' || sscanf(line, "%d %lf %lf %lf", &i, &un, &sc, &f32) != 4) continue;
            n++;
            ok += i < cases[k].head_dim / 2 && fabs(inv[i] - f32) <= 2e-7 * f32;
        }
        fclose(f);
        CHECK_MSG(n == cases[k].head_dim / 2 && ok == n, "%s: %d of %d match", cases[k].file, ok,
                  n);
    }
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared";
    snprintf(SRC, sizeof SRC, "%s/models/stories260K-mlx-4bit", shared);
    snprintf(TMP, sizeof TMP, "/tmp/brisk-loader-XXXXXX");
    if (!mkdtemp(TMP)) return 1;
    test_safetensors_files();
    test_models();
    test_sharded_index();
    test_config();
    test_rope_tables(shared);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    CHECK_DONE();
}
