/* test_hub.c: the hub module against a mock hub (libmicrohttpd on 127.0.0.1): file list, CDN
 * redirect, a cut transfer resumed with Range, cache layout, offline mode, errors and tokens. */
#define _GNU_SOURCE /* nftw */
#include "brisk.h"
#include "check.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHA      "0123456789abcdef0123456789abcdef01234567"
#define ST_ETAG  "5a1d3c0ffee00000000000000000000000000000000000000000000000000b0b"
#define ST_SIZE  (300 * 1024 + 17)
#define TINY_DIR "models--brisk-test--tiny"

/* ---- the mock hub ------------------------------------------------------------------------ */

static unsigned char g_st[ST_SIZE]; /* model.safetensors (content need not parse) */
static const char g_config[] = "{\"model_type\": \"llama\"}\n";
static const char g_tok[] = "{\"version\": \"1.0\", \"model\": {}}\n";
static const char g_notes[] = "nested notes\n";
static const char g_bin[] = "weights that must not be downloaded";

typedef struct mock_file {
    const char *name, *data, *etag;
    size_t len;
    bool ranges; /* honours Range (notes.txt does not: the client must restart) */
} mock_file;

static const mock_file g_files[] = {
    {"config.json", g_config, "\"cfgetag0001\"", sizeof g_config - 1, true},
    {"tokenizer.json", g_tok, "W/\"tokEtag02\"", sizeof g_tok - 1, true},
    {"nested/notes.txt", g_notes, "\"notesetag3\"", sizeof g_notes - 1, false},
    {"weights.bin", g_bin, "\"binetag4\"", sizeof g_bin - 1, true},
};

static const char g_tiny_json[] =
    "{\"id\": \"brisk-test/tiny\", \"sha\": \"" SHA "\", \"siblings\": ["
    "{\"rfilename\": \".gitattributes\"}, {\"rfilename\": \"README.md\"},"
    "{\"rfilename\": \"config.json\"}, {\"rfilename\": \"model.safetensors\"},"
    "{\"rfilename\": \"nested/notes.txt\"}, {\"rfilename\": \"tokenizer.json\"},"
    "{\"rfilename\": \"weights.bin\"}]}";
static const char g_evil_json[] = "{\"sha\": \"" SHA "\", \"siblings\": ["
                                  "{\"rfilename\": \"config.json\"},"
                                  "{\"rfilename\": \"../evil.json\"}]}";

static struct {
    int port;
    atomic_int cut_armed, n_api, n_resolve, n_cdn, n_range, cdn_auth;
    char last_range[64], auth_api[128], auth_resolve[128];
} g;

typedef struct cut_state {
    const unsigned char *data;
    size_t limit;
} cut_state;

/* Sends half of the promised bytes, then fails: the client sees a short body. */
static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    cut_state *cs = cls;
    if (pos >= cs->limit) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = cs->limit - (size_t)pos < max ? cs->limit - (size_t)pos : max;
    memcpy(buf, cs->data + pos, n);
    return (ssize_t)n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *hname, const char *hval) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (hname) MHD_add_response_header(r, hname, hval);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve(struct MHD_Connection *c, const void *data, size_t len,
                             const char *etag, bool ranges, bool cut) {
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    size_t start = 0;
    unsigned status = MHD_HTTP_OK;
    char cr[96];
    if (range && ranges && sscanf(range, "bytes=%zu-", &start) == 1) {
        atomic_fetch_add(&g.n_range, 1);
        snprintf(g.last_range, sizeof g.last_range, "%s", range);
        if (start >= len) {
            snprintf(cr, sizeof cr, "bytes */%zu", len);
            return reply(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, "", "Content-Range", cr);
        }
        status = MHD_HTTP_PARTIAL_CONTENT;
    } else {
        start = 0;
    }
    struct MHD_Response *r;
    const char *p = (const char *)data + start;
    if (cut) {
        cut_state *cs = malloc(sizeof *cs);
        cs->data = (const unsigned char *)p;
        cs->limit = (len - start) / 2;
        r = MHD_create_response_from_callback(len - start, 16 * 1024, cut_reader, cs, free);
    } else {
        r = MHD_create_response_from_buffer(len - start, (void *)p, MHD_RESPMEM_PERSISTENT);
    }
    if (status == MHD_HTTP_PARTIAL_CONTENT) {
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", start, len - 1, len);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    MHD_add_response_header(r, "ETag", etag);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void copy_auth(struct MHD_Connection *c, char *dst, size_t cap) {
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(dst, cap, "%s", a ? a : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    if (strcmp(method, "GET") != 0) return reply(c, 405, "", NULL, NULL);
    static const char api[] = "/api/models/", res[] = "/brisk-test/tiny/resolve/" SHA "/";
    if (strncmp(url, api, sizeof api - 1) == 0) {
        atomic_fetch_add(&g.n_api, 1);
        copy_auth(c, g.auth_api, sizeof g.auth_api);
        const char *rest = url + sizeof api - 1;
        if (!strcmp(rest, "brisk-test/tiny/revision/main") ||
            !strcmp(rest, "brisk-test/tiny/revision/" SHA))
            return reply(c, 200, g_tiny_json, "Content-Type", "application/json");
        if (!strcmp(rest, "brisk-test/fileredir/revision/main"))
            return reply(c, 200,
                         "{\"sha\": \"" SHA "\", \"siblings\": [{\"rfilename\": "
                         "\"config.json\"}]}",
                         NULL, NULL);
        if (!strcmp(rest, "brisk-test/evil/revision/main"))
            return reply(c, 200, g_evil_json, "Content-Type", "application/json");
        if (!strncmp(rest, "brisk-test/gated/", 17))
            return reply(c, 401, "{\"error\":\"gated\"}", "X-Error-Code", "GatedRepo");
        if (!strncmp(rest, "brisk-test/broken/", 18)) return reply(c, 500, "oops", NULL, NULL);
        return reply(c, 404, "{}", "X-Error-Message", "Repository not found");
    }
    if (strncmp(url, res, sizeof res - 1) == 0) {
        atomic_fetch_add(&g.n_resolve, 1);
        copy_auth(c, g.auth_resolve, sizeof g.auth_resolve);
        const char *file = url + sizeof res - 1;
        if (!strcmp(file, "model.safetensors")) {
            /* Like the hub: 302 to a CDN on another host, the content hash in X-Linked-Etag
             * and an ETag of its own that must not be used. */
            char loc[128], size[32];
            snprintf(loc, sizeof loc, "http://localhost:%d/cdn/blob-7?sig=secret", g.port);
            snprintf(size, sizeof size, "%d", ST_SIZE);
            struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            MHD_add_response_header(r, "Location", loc);
            MHD_add_response_header(r, "X-Linked-Etag", "\"" ST_ETAG "\"");
            MHD_add_response_header(r, "X-Linked-Size", size);
            MHD_add_response_header(r, "ETag", "\"pointer-etag\"");
            enum MHD_Result ret = MHD_queue_response(c, 302, r);
            MHD_destroy_response(r);
            return ret;
        }
        for (size_t i = 0; i < sizeof g_files / sizeof g_files[0]; i++)
            if (!strcmp(file, g_files[i].name))
                return serve(c, g_files[i].data, g_files[i].len, g_files[i].etag, g_files[i].ranges,
                             false);
        return reply(c, 404, "", "X-Error-Message", "Entry not found");
    }
    if (!strcmp(url, "/brisk-test/fileredir/resolve/" SHA "/config.json"))
        return reply(c, 302, "", "Location", "file:///etc/passwd");
    if (!strcmp(url, "/cdn/blob-7")) {
        atomic_fetch_add(&g.n_cdn, 1);
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))
            atomic_fetch_add(&g.cdn_auth, 1);
        bool cut = atomic_exchange(&g.cut_armed, 0) != 0;
        return serve(c, g_st, ST_SIZE, "\"cdn-etag-not-this\"", true, cut);
    }
    return reply(c, 404, "", NULL, NULL);
}

static struct MHD_Daemon *mock_start(void) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!d) return NULL;
    g.port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return d;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char g_root[64];

static char *pathf(const char *fmt, const char *a) {
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    char tmp[512];
    snprintf(tmp, sizeof tmp, fmt, a);
    snprintf(b, 1024, "%s/%s", g_root, tmp);
    return b;
}

static bool file_equals(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char *buf = malloc(len + 1);
    size_t got = fread(buf, 1, len + 1, f);
    fclose(f);
    bool ok = got == len && memcmp(buf, data, len) == 0;
    free(buf);
    return ok;
}

static bool link_is(const char *path, const char *target) {
    char buf[512];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return false;
    buf[n] = 0;
    if (strcmp(buf, target) != 0) fprintf(stderr, "  link %s -> %s (want %s)\n", path, buf, target);
    return strcmp(buf, target) == 0;
}

static bool exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Every message: one line starting with the function name. */
static bool msg_ok(const char *needle) {
    const char *m = brisk_last_error();
    bool ok = strncmp(m, "brisk_hub_resolve: ", 19) == 0 && !strchr(m, '\n') &&
              (!needle || strstr(m, needle));
    if (!ok) fprintf(stderr, "  message: %s (want \"%s\")\n", m, needle ? needle : "");
    return ok;
}

static brisk_status resolve(const char *ref, const char *rev, bool offline, char **out) {
    brisk_hub_params p = brisk_hub_default_params();
    p.revision = rev;
    p.offline = offline;
    return brisk_hub_resolve(ref, &p, out);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_cache_dir(void) {
    char *p;
    unsetenv("HUGGINGFACE_HUB_CACHE");
    setenv("HF_HUB_CACHE", "/x/hub-cache", 1);
    CHECK(brisk_hub_cache_dir(&p) == BRISK_OK && !strcmp(p, "/x/hub-cache"));
    brisk_free(p);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", "/y/hf", 1);
    CHECK(brisk_hub_cache_dir(&p) == BRISK_OK && !strcmp(p, "/y/hf/hub"));
    brisk_free(p);
    unsetenv("HF_HOME");
    setenv("XDG_CACHE_HOME", "/z", 1);
    CHECK(brisk_hub_cache_dir(&p) == BRISK_OK && !strcmp(p, "/z/huggingface/hub"));
    brisk_free(p);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/h", 1);
    CHECK(brisk_hub_cache_dir(&p) == BRISK_OK && !strcmp(p, "/h/.cache/huggingface/hub"));
    brisk_free(p);
    setenv("HF_HOME", "~/hfh", 1);
    CHECK(brisk_hub_cache_dir(&p) == BRISK_OK && !strcmp(p, "/h/hfh/hub"));
    brisk_free(p);
    CHECK(brisk_hub_cache_dir(NULL) == BRISK_ERR_INVALID_ARG);
}

static void test_refs(void) {
    char *p = (char *)1;
    CHECK(brisk_hub_resolve(g_root, NULL, &p) == BRISK_OK && p && !strcmp(p, g_root));
    brisk_free(p);
    CHECK(brisk_hub_resolve(NULL, NULL, &p) == BRISK_ERR_INVALID_ARG && !p);
    CHECK(brisk_hub_resolve("", NULL, &p) == BRISK_ERR_INVALID_ARG && !p);
    CHECK(brisk_hub_resolve("a/b", NULL, NULL) == BRISK_ERR_INVALID_ARG);
    static const char *const bad[] = {
        "noslash-model", "a/b/c",      "../x",         "a/..b", ".a/b", "a/.b",   "a b/c",
        "a/b?",          "org/na--me", "/no/such/dir", "a/",    "/a",   "a\\b/c", "a/b\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (char *)1;
        brisk_status st = brisk_hub_resolve(bad[i], NULL, &p);
        CHECK_MSG(st == BRISK_ERR_NOT_FOUND && !p && msg_ok("neither a folder nor"), "ref '%s'",
                  bad[i]);
    }
    CHECK(resolve("brisk-test/tiny", "../main", false, &p) == BRISK_ERR_INVALID_ARG);
}

static void test_download_resume(void) {
    char *p = NULL;
    char inc[1024], snap[1024]; /* pathf's buffers rotate */
    snprintf(inc, sizeof inc, "%s", pathf(TINY_DIR "/blobs/%s-model.safetensors.incomplete", SHA));
    snprintf(snap, sizeof snap, "%s", pathf(TINY_DIR "/snapshots/%s", SHA));

    /* 1: the CDN cuts the safetensors in the middle: a clean failure, only .incomplete left. */
    atomic_store(&g.cut_armed, 1);
    brisk_status st = resolve("brisk-test/tiny", NULL, false, &p);
    CHECK(st == BRISK_ERR_IO && !p && msg_ok("model.safetensors"));
    long long part = file_size(inc);
    CHECK_MSG(part > 0 && part < ST_SIZE, "partial size %lld", part);
    CHECK(!exists(pathf(TINY_DIR "/snapshots/%s/model.safetensors", SHA)));
    CHECK(!exists(pathf(TINY_DIR "/snapshots/%s/config.json", SHA))); /* config.json comes last */
    CHECK(!exists(pathf(TINY_DIR "/blobs/%s", ST_ETAG)));
    CHECK(!exists(pathf(TINY_DIR "/refs/%s", "main")));

    /* 2: resumes with Range from the partial size and completes. */
    atomic_store(&g.n_range, 0);
    st = resolve("brisk-test/tiny", NULL, false, &p);
    CHECK_MSG(st == BRISK_OK, "%s", brisk_last_error());
    CHECK(p && !strcmp(p, snap));
    char want_range[64];
    snprintf(want_range, sizeof want_range, "bytes=%lld-", part);
    CHECK(atomic_load(&g.n_range) == 1);
    CHECK_STREQ(g.last_range, want_range);
    CHECK(!exists(inc));
    CHECK(file_equals(pathf(TINY_DIR "/snapshots/%s/model.safetensors", SHA), g_st, ST_SIZE));
    CHECK(file_equals(pathf(TINY_DIR "/snapshots/%s/config.json", SHA), g_config,
                      sizeof g_config - 1));
    CHECK(
        file_equals(pathf(TINY_DIR "/snapshots/%s/tokenizer.json", SHA), g_tok, sizeof g_tok - 1));
    CHECK(file_equals(pathf(TINY_DIR "/snapshots/%s/nested/notes.txt", SHA), g_notes,
                      sizeof g_notes - 1));
    CHECK(!exists(pathf(TINY_DIR "/snapshots/%s/weights.bin", SHA)));
    CHECK(!exists(pathf(TINY_DIR "/snapshots/%s/README.md", SHA)));
    CHECK(!exists(pathf(TINY_DIR "/snapshots/%s/.gitattributes", SHA)));
    CHECK(link_is(pathf(TINY_DIR "/snapshots/%s/config.json", SHA), "../../blobs/cfgetag0001"));
    CHECK(link_is(pathf(TINY_DIR "/snapshots/%s/tokenizer.json", SHA), "../../blobs/tokEtag02"));
    CHECK(link_is(pathf(TINY_DIR "/snapshots/%s/model.safetensors", SHA), "../../blobs/" ST_ETAG));
    CHECK(link_is(pathf(TINY_DIR "/snapshots/%s/nested/notes.txt", SHA),
                  "../../../blobs/notesetag3"));
    CHECK(file_equals(pathf(TINY_DIR "/refs/%s", "main"), SHA, 40));
    /* The token went to the hub, never to the CDN on another host. */
    CHECK_STREQ(g.auth_api, "Bearer hf_test_token");
    CHECK_STREQ(g.auth_resolve, "Bearer hf_test_token");
    CHECK(atomic_load(&g.n_cdn) == 2 && atomic_load(&g.cdn_auth) == 0);
    brisk_free(p);

    /* 3: everything present: the file list is read, nothing downloaded. */
    int nres = atomic_load(&g.n_resolve), napi = atomic_load(&g.n_api);
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK && !strcmp(p, snap));
    brisk_free(p);
    CHECK(atomic_load(&g.n_resolve) == nres && atomic_load(&g.n_api) == napi + 1);
    CHECK(resolve("brisk-test/tiny", SHA, false, &p) == BRISK_OK && !strcmp(p, snap));
    brisk_free(p);
    CHECK(!exists(pathf(TINY_DIR "/refs/%s", SHA))); /* a commit needs no ref */

    /* 4: a complete .incomplete (server answers 416) and a garbage one for a file whose server
     * ignores Range (answers 200): both start over and end right. */
    unlink(pathf(TINY_DIR "/snapshots/%s/tokenizer.json", SHA));
    unlink(pathf(TINY_DIR "/snapshots/%s/nested/notes.txt", SHA));
    write_file(pathf(TINY_DIR "/blobs/%s-tokenizer.json.incomplete", SHA), g_tok);
    write_file(pathf(TINY_DIR "/blobs/%s-nested%%2Fnotes.txt.incomplete", SHA), "GARBAGE");
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK);
    brisk_free(p);
    CHECK(
        file_equals(pathf(TINY_DIR "/snapshots/%s/tokenizer.json", SHA), g_tok, sizeof g_tok - 1));
    CHECK(file_equals(pathf(TINY_DIR "/snapshots/%s/nested/notes.txt", SHA), g_notes,
                      sizeof g_notes - 1));
    CHECK(!exists(pathf(TINY_DIR "/blobs/%s-tokenizer.json.incomplete", SHA)));
}

static void test_offline(void) {
    char *p, snap[1024];
    snprintf(snap, sizeof snap, "%s", pathf(TINY_DIR "/snapshots/%s", SHA));
    int napi = atomic_load(&g.n_api);
    setenv("HF_HUB_OFFLINE", "1", 1);
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK && !strcmp(p, snap));
    brisk_free(p);
    CHECK(resolve("brisk-test/tiny", SHA, false, &p) == BRISK_OK && !strcmp(p, snap));
    brisk_free(p);
    p = (char *)1;
    CHECK(resolve("brisk-test/uncached", NULL, false, &p) == BRISK_ERR_NOT_FOUND && !p);
    CHECK(msg_ok("HF_HUB_OFFLINE=1") && msg_ok("not in the cache"));
    CHECK(resolve("brisk-test/tiny", "v9", false, &p) == BRISK_ERR_NOT_FOUND);
    setenv("HF_HUB_OFFLINE", "0", 1);
    CHECK(resolve("brisk-test/tiny", NULL, true, &p) == BRISK_OK && !strcmp(p, snap));
    brisk_free(p);
    CHECK(resolve("brisk-test/uncached", NULL, true, &p) == BRISK_ERR_NOT_FOUND);
    unsetenv("HF_HUB_OFFLINE");
    CHECK(atomic_load(&g.n_api) == napi);
}

static void test_http_errors(void) {
    char *p = (char *)1;
    int nres = atomic_load(&g.n_resolve);
    CHECK(resolve("brisk-test/missing", NULL, false, &p) == BRISK_ERR_NOT_FOUND && !p);
    CHECK(msg_ok("brisk-test/missing") && msg_ok("not found") && msg_ok("Repository not found"));
    CHECK(resolve("brisk-test/gated", NULL, false, &p) == BRISK_ERR_NOT_FOUND);
    CHECK(msg_ok("HTTP 401") && msg_ok("HF_TOKEN"));
    CHECK(resolve("brisk-test/broken", NULL, false, &p) == BRISK_ERR_IO);
    CHECK(msg_ok("HTTP 500"));
    CHECK(resolve("brisk-test/evil", NULL, false, &p) == BRISK_ERR_FORMAT);
    CHECK(msg_ok("unsafe file name"));
    CHECK(!exists(pathf("models--brisk-test--evil/snapshots/%s", "evil.json")));
    CHECK(atomic_load(&g.n_resolve) == nres);
    /* A redirect may only lead to http(s). */
    CHECK(resolve("brisk-test/fileredir", NULL, false, &p) == BRISK_ERR_IO);
    CHECK(msg_ok("Unsupported protocol"));
    CHECK(!exists(pathf("models--brisk-test--fileredir/snapshots/%s/config.json", SHA)));
}

static void test_token_file(void) {
    char *p;
    unsetenv("HF_TOKEN");
    write_file(pathf("%s/token", "home"), "hf_file_token\n");
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK);
    brisk_free(p);
    CHECK_STREQ(g.auth_api, "Bearer hf_file_token");
    unlink(pathf("%s/token", "home"));
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK);
    brisk_free(p);
    CHECK_STREQ(g.auth_api, "");
    CHECK(resolve("brisk-test/gated", NULL, false, &p) == BRISK_ERR_NOT_FOUND);
    CHECK(msg_ok("set HF_TOKEN"));
}

/* The hub is gone: a complete cached snapshot stands in; an uncached repo fails clearly. */
static void test_unreachable(int dead_port) {
    char ep[64], *p;
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", dead_port);
    setenv("HF_ENDPOINT", ep, 1);
    CHECK(resolve("brisk-test/tiny", NULL, false, &p) == BRISK_OK &&
          !strcmp(p, pathf(TINY_DIR "/snapshots/%s", SHA)));
    brisk_free(p);
    CHECK(resolve("brisk-test/uncached", NULL, false, &p) == BRISK_ERR_IO);
    CHECK(msg_ok("connect"));
}

int main(void) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < ST_SIZE; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        g_st[i] = (unsigned char)(s >> 24);
    }
    snprintf(g_root, sizeof g_root, "/tmp/brisk-hub-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    test_cache_dir();
    test_refs();

    struct MHD_Daemon *d = mock_start();
    CHECK(d != NULL);
    if (d) {
        char ep[64];
        snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", g.port); /* trailing '/' is dropped */
        setenv("HF_ENDPOINT", ep, 1);
        setenv("HF_HUB_CACHE", g_root, 1);
        setenv("HF_HOME", pathf("%s", "home"), 1);
        mkdir(pathf("%s", "home"), 0755);
        setenv("HF_TOKEN", "hf_test_token", 1);
        unsetenv("HF_TOKEN_PATH");
        unsetenv("HUGGING_FACE_HUB_TOKEN");
        unsetenv("HF_HUB_OFFLINE");
        test_download_resume();
        test_offline();
        test_http_errors();
        test_token_file();
        MHD_stop_daemon(d);
        test_unreachable(g.port);
    }
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK_DONE();
}
