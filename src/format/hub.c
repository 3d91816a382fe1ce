/* hub.c: resolves a model reference (a folder or a Hugging Face repo id) to a local folder in the
 * HF cache layout shared with Python tools, downloading missing files with libcurl. */
#include "format/hub_internal.h"
#include "util/error.h"
#include "util/fsutil.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- small string and environment helpers ---------------------------------------------------- */

char *brisk_hub_fmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* An environment variable, with "" treated as unset. */
static const char *hub_env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* huggingface_hub's truth test for flags such as HF_HUB_OFFLINE. */
static bool hub_env_true(const char *name) {
    const char *v = getenv(name);
    return v && (!strcasecmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "true"));
}

/* "~" and "~/x" expanded with $HOME, as Python's expanduser does for these variables. */
static char *hub_expand_user(const char *p) {
    const char *home = hub_env("HOME");
    if (p[0] == '~' && (p[1] == 0 || p[1] == '/') && home)
        return brisk_hub_fmt("%s%s", home, p + 1);
    return strdup(p);
}

static bool hub_is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool hub_is_commit(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
    return n == 40;
}

/* "org/name": one '/', [A-Za-z0-9._-], no "..", no part starting with '.', and no "--" (the hub
 * forbids it, and it would make models--{org}--{name} ambiguous). */
static bool hub_valid_repo_id(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/') || slash == s || !slash[1]) return false;
    if (s[0] == '.' || slash[1] == '.' || strstr(s, "..") || strstr(s, "--")) return false;
    if (strlen(s) > 200) return false;
    for (const char *p = s; *p; p++)
        if (!hub_is_alnum(*p) && !strchr("._-/", *p)) return false;
    return true;
}

/* Branch or tag names ("main", "v1.0", "refs/pr/3"): they name a file under refs/. */
static bool hub_valid_revision(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255 || s[0] == '.' || s[0] == '/' || s[n - 1] == '/') return false;
    if (strstr(s, "..") || strstr(s, "//") || strstr(s, "/.")) return false;
    for (const char *p = s; *p; p++)
        if (!hub_is_alnum(*p) && !strchr("._-/", *p)) return false;
    return true;
}

/* A server-provided rfilename becomes a path under snapshots/: relative, '/'-separated, no
 * empty, "." or ".." component, no backslash or control character. */
static bool hub_safe_rfilename(const char *s) {
    if (!*s || s[0] == '/' || strlen(s) > 1024) return false;
    for (const char *p = s; *p; p++)
        if (*p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) return false;
    for (const char *p = s;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!e) return true;
        p = e + 1;
    }
}

/* An ETag becomes a file name under blobs/. Hub ETags are hex digests; allow a little more. */
static bool hub_safe_blob_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.') return false;
    for (const char *p = s; *p; p++)
        if (!hub_is_alnum(*p) && !strchr("._-+=", *p)) return false;
    return true;
}

/* Percent-encodes everything but unreserved characters (and '/' when keep_slash). */
static char *hub_url_escape(const char *s, bool keep_slash) {
    char *out = malloc(strlen(s) * 3 + 1);
    if (!out) return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (hub_is_alnum((char)*p) || strchr("-._~", *p) || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            o += sprintf(o, "%%%02X", *p);
        }
    }
    *o = 0;
    return out;
}

/* A one-file name for a repo path (for .incomplete and .lock names): '%' and '/' escaped, so
 * distinct paths never share a name. */
static char *hub_flat_name(const char *file) {
    char *out = malloc(strlen(file) * 3 + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = file; *p; p++) {
        if (*p == '/')
            o += sprintf(o, "%%2F");
        else if (*p == '%')
            o += sprintf(o, "%%25");
        else
            *o++ = *p;
    }
    *o = 0;
    return out;
}

/* A URL without its query string, for messages (signed CDN URLs carry credentials there). */
void brisk_hub_url_for_msg(const char *url, char *out, size_t cap) {
    size_t n = strcspn(url, "?#");
    if (n >= cap) n = cap - 1;
    memcpy(out, url, n);
    out[n] = 0;
}

/* mkdir -p; true when `path` is a directory afterwards. */
static bool hub_mkdirs(const char *path) {
    char *p = strdup(path);
    if (!p) return false;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) break;
        *s = '/';
    }
    (void)mkdir(p, 0755); /* EEXIST is fine: the check below decides */
    bool ok = brisk_is_dir(p);
    free(p);
    return ok;
}

/* Creates the parent folder of `path`. */
static bool hub_mkdirs_parent(const char *path) {
    char *p = strdup(path);
    if (!p) return false;
    char *slash = strrchr(p, '/');
    bool ok = true;
    if (slash && slash != p) {
        *slash = 0;
        ok = hub_mkdirs(p);
    }
    free(p);
    return ok;
}

/* Writes `text` to `path` through a temporary name and rename(), so readers see old or new. */
static bool hub_write_atomic(const char *path, const char *text) {
    char *tmp = brisk_hub_fmt("%s.brisk-tmp-%ld", path, (long)getpid());
    if (!tmp) return false;
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(text, 1, strlen(text), f) == strlen(text);
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) unlink(tmp);
    free(tmp);
    return ok;
}

/* ---- cache location and token ---------------------------------------------------------------- */

brisk_hub_params brisk_hub_default_params(void) {
    brisk_hub_params p = {NULL, false, false};
    return p;
}

/* $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
static brisk_status hub_home_dir(const char *fn, char **out) {
    const char *v;
    char *p = NULL;
    if ((v = hub_env("HF_HOME"))) {
        p = hub_expand_user(v);
    } else if ((v = hub_env("XDG_CACHE_HOME"))) {
        char *x = hub_expand_user(v);
        if (x) p = brisk_path_join(x, "huggingface");
        free(x);
    } else if ((v = hub_env("HOME"))) {
        p = brisk_hub_fmt("%s/.cache/huggingface", v);
    } else {
        return brisk_errorf(BRISK_ERR_NOT_FOUND,
                            "%s: cannot place the Hugging Face cache: none of HF_HUB_CACHE, "
                            "HF_HOME, XDG_CACHE_HOME or HOME is set",
                            fn);
    }
    if (!p) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", fn);
    *out = p;
    return BRISK_OK;
}

brisk_status brisk_hub_cache_dir(char **path_out) {
    if (!path_out) return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: path_out is NULL", __func__);
    *path_out = NULL;
    const char *v = hub_env("HF_HUB_CACHE");
    if (!v) v = hub_env("HUGGINGFACE_HUB_CACHE"); /* the older name, still honoured upstream */
    char *p = NULL;
    if (v) {
        p = hub_expand_user(v);
    } else {
        char *home;
        brisk_status st = hub_home_dir(__func__, &home);
        if (st != BRISK_OK) return st;
        p = brisk_path_join(home, "hub");
        free(home);
    }
    if (!p) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
    *path_out = p;
    return BRISK_OK;
}

/* The access token: $HF_TOKEN, else the file `huggingface-cli login` writes ($HF_TOKEN_PATH or
 * $HF_HOME/token). NULL when there is none or it holds characters unfit for a header. */
static char *hub_token(void) {
    const char *v = hub_env("HF_TOKEN");
    if (!v) v = hub_env("HUGGING_FACE_HUB_TOKEN");
    char *tok = NULL;
    if (v) {
        tok = strdup(v);
    } else {
        char *path = NULL, *home = NULL;
        if ((v = hub_env("HF_TOKEN_PATH")))
            path = hub_expand_user(v);
        else if (hub_home_dir(HUB_FN, &home) == BRISK_OK)
            path = brisk_path_join(home, "token");
        free(home);
        if (path) tok = brisk_read_file(path, NULL);
        free(path);
    }
    if (!tok) return NULL;
    char *b = tok, *e = tok + strlen(tok);
    while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n') b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) e--;
    *e = 0;
    bool ok = b < e;
    for (char *p = b; p < e; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f) ok = false;
    if (ok)
        memmove(tok, b, (size_t)(e - b) + 1);
    else {
        free(tok);
        tok = NULL;
    }
    return tok;
}

/* ---- file list --------------------------------------------------------------------------- */

typedef struct hub_list {
    char *sha;
    char **files;
    size_t n;
} hub_list;

static void hub_list_free(hub_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->files[i]);
    free(l->files);
    free(l->sha);
    memset(l, 0, sizeof *l);
}

/* GET {endpoint}/api/models/{repo}/revision/{revision}. *unreachable is set when the hub could
 * not be reached or failed (network error, 5xx), the cases a cached snapshot may stand in for. */
static brisk_status hub_fetch_list(hub_ctx *h, const char *rev, hub_list *out, bool *unreachable) {
    *unreachable = false;
    char *erev = hub_url_escape(rev, false);
    char *url =
        erev ? brisk_hub_fmt("%s/api/models/%s/revision/%s", h->endpoint, h->repo, erev) : NULL;
    char *what = brisk_hub_fmt("repo %s at revision %s", h->repo, rev);
    free(erev);
    hub_xfer x = {.fd = -1};
    brisk_status st = BRISK_OK;
    cJSON *j = NULL;
    if (!url || !what) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    CURLcode rc = brisk_hub_get(h, url, &x, 0, 120);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && (x.mem_overflow || x.write_errno))) {
        *unreachable = rc != CURLE_OUT_OF_MEMORY;
        st = brisk_hub_curl_fail(h, rc, what, url);
        goto done;
    }
    if (x.mem_overflow || x.write_errno) {
        st = x.mem_overflow
                 ? brisk_errorf(BRISK_ERR_FORMAT, "%s: the file list of %s is larger than %zu MB",
                                HUB_FN, h->repo, HUB_LIST_MAX >> 20)
                 : brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    if (x.resp.status != 200) {
        *unreachable = x.resp.status >= 500;
        st = brisk_hub_http_fail(h, &x.resp, what, url);
        goto done;
    }
    j = x.mem ? cJSON_Parse(x.mem) : NULL;
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
    if (!cJSON_IsObject(j) || !cJSON_IsString(sha) || !cJSON_IsArray(sib)) {
        st = brisk_errorf(BRISK_ERR_FORMAT,
                          "%s: the answer of %s/api/models/%s is not a model info object with "
                          "\"sha\" and \"siblings\"",
                          HUB_FN, h->endpoint, h->repo);
        goto done;
    }
    if (!hub_is_commit(sha->valuestring)) {
        st = brisk_errorf(BRISK_ERR_FORMAT, "%s: %s: the hub's \"sha\" \"%.64s\" is not a commit",
                          HUB_FN, h->repo, sha->valuestring);
        goto done;
    }
    int n = cJSON_GetArraySize(sib);
    out->sha = strdup(sha->valuestring);
    out->files = calloc((size_t)n + 1, sizeof *out->files);
    if (!out->sha || !out->files) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        if (!cJSON_IsString(f)) {
            st = brisk_errorf(BRISK_ERR_FORMAT, "%s: %s: a sibling has no \"rfilename\" string",
                              HUB_FN, h->repo);
            goto done;
        }
        if (!hub_safe_rfilename(f->valuestring)) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "%s: %s: the hub lists an unsafe file name \"%.200s\" (absolute, "
                              "'..', backslash or control character); refusing to download",
                              HUB_FN, h->repo, f->valuestring);
            goto done;
        }
        if (!(out->files[out->n++] = strdup(f->valuestring))) {
            st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
            goto done;
        }
    }
done:
    if (st != BRISK_OK) hub_list_free(out);
    cJSON_Delete(j);
    free(x.mem);
    free(url);
    free(what);
    return st;
}

/* The files mlx_lm downloads (minus *.py: nothing here runs Python). As Python's fnmatch, '*'
 * also matches '/'. */
static bool hub_wanted(const char *f, bool any_model_st) {
    static const char *const pats[] = {"*.json", "*.jinja", "tokenizer.model", "*.tiktoken",
                                       "*.txt"};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(pats); i++)
        if (fnmatch(pats[i], f, 0) == 0) return true;
    return fnmatch(any_model_st ? "model*.safetensors" : "*.safetensors", f, 0) == 0;
}

/* ---- one file ------------------------------------------------------------------------------ */

/* snapshots/{commit}/{file} -> ../../blobs/{etag} (one more ../ per folder level of file),
 * created under a temporary name and renamed into place. */
static brisk_status hub_link(const char *snap_dir, const char *file, const char *etag) {
    int depth = 2;
    for (const char *p = file; *p; p++) depth += *p == '/';
    size_t tl = (size_t)depth * 3 + strlen("blobs/") + strlen(etag) + 1;
    char *target = malloc(tl);
    char *link = brisk_path_join(snap_dir, file);
    char *tmp = link ? brisk_hub_fmt("%s.brisk-tmp-%ld", link, (long)getpid()) : NULL;
    brisk_status st = BRISK_OK;
    if (!target || !link || !tmp) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    target[0] = 0;
    for (int i = 0; i < depth; i++) strcat(target, "../");
    strcat(target, "blobs/");
    strcat(target, etag);
    unlink(tmp);
    if (!hub_mkdirs_parent(link) || symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: cannot create the link %s -> %s: %s", HUB_FN, link,
                          target, strerror(errno));
        unlink(tmp);
    }
done:
    free(target);
    free(link);
    free(tmp);
    return st;
}

typedef struct hub_paths {
    const char *cache, *model_dir, *folder, *sha, *snap_dir;
} hub_paths;

/* Downloads the body of `url` (following redirects by hand) into the open .incomplete fd,
 * resuming from its current size. On success *etag holds the blob name. */
static brisk_status hub_download(hub_ctx *h, const char *file, const char *url0, int fd, char *etag,
                                 size_t etag_cap, const hub_paths *P, bool *have_blob) {
    char *what = brisk_hub_fmt("file %s of %s at %s", file, h->repo, P->sha);
    char *url = strdup(url0);
    hub_xfer x = {.fd = fd, .name = file};
    brisk_status st = BRISK_OK;
    int64_t linked_size = -1;
    bool restarted = false;
    etag[0] = 0;
    *have_blob = false;
    if (!what || !url) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    struct stat sb;
    for (int hop = 0;; hop++) {
        if (hop > HUB_MAX_HOPS) {
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: more than %d redirects", HUB_FN, what,
                              HUB_MAX_HOPS);
            goto done;
        }
        if (fstat(fd, &sb) != 0) {
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: %s", HUB_FN, file, strerror(errno));
            goto done;
        }
        x.have = sb.st_size;
        x.range_mismatch = false;
        x.write_errno = 0;
        CURLcode rc = brisk_hub_get(h, url, &x, x.have, 0);
        if (x.printed) {
            fputc('\n', stderr);
            x.printed = false;
        }
        /* The blob name: X-Linked-Etag, else ETag, of the first response that has one (the
         * hub's own answer before the CDN redirect carries the content hash). */
        if (!etag[0]) {
            const char *e = x.resp.linked_etag[0] ? x.resp.linked_etag : x.resp.etag;
            snprintf(etag, etag_cap, "%s", e);
        }
        if (linked_size < 0) linked_size = x.resp.linked_size;
        if (x.range_mismatch || (x.resp.status == 416 && x.have > 0)) {
            if (restarted) {
                st = brisk_errorf(BRISK_ERR_IO, "%s: %s: the server does not honour Range", HUB_FN,
                                  what);
                goto done;
            }
            restarted = true; /* start over from byte 0 on the same URL */
            if (ftruncate(fd, 0) != 0) {
                st = brisk_errorf(BRISK_ERR_IO, "%s: %s: %s", HUB_FN, file, strerror(errno));
                goto done;
            }
            continue;
        }
        if (x.write_errno) {
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: writing the download failed: %s", HUB_FN, what,
                              strerror(x.write_errno));
            goto done;
        }
        if (rc != CURLE_OK) {
            st = brisk_hub_curl_fail(h, rc, what, url);
            goto done;
        }
        long s = x.resp.status;
        if (s >= 300 && s < 400) {
            char *next = NULL;
            if (curl_easy_getinfo(h->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next) {
                st = brisk_errorf(BRISK_ERR_FORMAT, "%s: %s: HTTP %ld without a Location", HUB_FN,
                                  what, s);
                goto done;
            }
            char *n2 = strdup(next);
            if (!n2) {
                st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
                goto done;
            }
            free(url);
            url = n2;
            /* The same content is already a blob (another file, another commit): link it. */
            if (etag[0] && hub_safe_blob_name(etag)) {
                char *blob = brisk_hub_fmt("%s/blobs/%s", P->model_dir, etag);
                bool have = blob && stat(blob, &sb) == 0 && S_ISREG(sb.st_mode) &&
                            (linked_size < 0 || sb.st_size == linked_size);
                free(blob);
                if (have) {
                    *have_blob = true;
                    goto done;
                }
            }
            continue;
        }
        if (s != 200 && s != 206) {
            st = brisk_hub_http_fail(h, &x.resp, what, url);
            goto done;
        }
        if (s == 200 && !x.resp.body_started && ftruncate(fd, 0) != 0) { /* empty file */
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: %s", HUB_FN, file, strerror(errno));
            goto done;
        }
        int64_t total = s == 206 ? x.resp.range_total : x.resp.content_length;
        if (s == 206 && total < 0 && x.resp.content_length >= 0)
            total = x.have + x.resp.content_length;
        if (total < 0) total = linked_size;
        if (fstat(fd, &sb) != 0) {
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: %s", HUB_FN, file, strerror(errno));
            goto done;
        }
        if ((total >= 0 && sb.st_size != total) ||
            (linked_size >= 0 && sb.st_size != linked_size)) {
            long long want = total >= 0 ? total : linked_size;
            if (sb.st_size > want) (void)!ftruncate(fd, 0); /* garbage: never resume it */
            st = brisk_errorf(BRISK_ERR_IO, "%s: %s: received %lld bytes, expected %lld", HUB_FN,
                              what, (long long)sb.st_size, want);
            goto done;
        }
        break;
    }
    if (!etag[0]) {
        st = brisk_errorf(BRISK_ERR_FORMAT, "%s: %s: the server sent no ETag", HUB_FN, what);
    } else if (!hub_safe_blob_name(etag)) {
        st = brisk_errorf(BRISK_ERR_FORMAT, "%s: %s: unusable ETag \"%.64s\"", HUB_FN, what, etag);
    }
done:
    free(what);
    free(url);
    return st;
}

/* Makes snapshots/{sha}/{file} exist: download into blobs/{sha}-{file}.incomplete (resuming),
 * rename to blobs/{etag}, link. A per-file lock keeps concurrent processes off the same
 * .incomplete. */
static brisk_status hub_fetch_file(hub_ctx *h, const hub_paths *P, const char *file) {
    char *snap_path = brisk_path_join(P->snap_dir, file);
    char *flat = hub_flat_name(file);
    char *lock_path =
        flat ? brisk_hub_fmt("%s/.locks/%s/%s-%s.lock", P->cache, P->folder, P->sha, flat) : NULL;
    char *inc =
        flat ? brisk_hub_fmt("%s/blobs/%s-%s.incomplete", P->model_dir, P->sha, flat) : NULL;
    char *efile = hub_url_escape(file, true);
    char *url =
        efile ? brisk_hub_fmt("%s/%s/resolve/%s/%s", h->endpoint, h->repo, P->sha, efile) : NULL;
    char *blob = NULL;
    char etag[256];
    int lock_fd = -1, fd = -1;
    brisk_status st = BRISK_OK;
    if (!snap_path || !lock_path || !inc || !url) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    if (brisk_is_file(snap_path)) goto done;
    if (!hub_mkdirs_parent(lock_path) ||
        (lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: cannot create the lock %s: %s", HUB_FN, lock_path,
                          strerror(errno));
        goto done;
    }
    while (flock(lock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            st = brisk_errorf(BRISK_ERR_IO, "%s: cannot lock %s: %s", HUB_FN, lock_path,
                              strerror(errno));
            goto done;
        }
    }
    if (brisk_is_file(snap_path)) goto done; /* another process finished it meanwhile */
    if ((fd = open(inc, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: cannot open %s: %s", HUB_FN, inc, strerror(errno));
        goto done;
    }
    bool have_blob;
    st = hub_download(h, file, url, fd, etag, sizeof etag, P, &have_blob);
    if (st != BRISK_OK) goto done;
    close(fd);
    fd = -1;
    if (!(blob = brisk_hub_fmt("%s/blobs/%s", P->model_dir, etag))) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    if (have_blob) {
        unlink(inc);
    } else if (rename(inc, blob) != 0) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: cannot rename %s to %s: %s", HUB_FN, inc, blob,
                          strerror(errno));
        goto done;
    }
    st = hub_link(P->snap_dir, file, etag);
done:
    if (fd >= 0) close(fd);
    if (lock_fd >= 0) close(lock_fd); /* releases the flock */
    free(snap_path);
    free(flat);
    free(lock_path);
    free(inc);
    free(efile);
    free(url);
    free(blob);
    return st;
}

/* ---- resolve ----------------------------------------------------------------------------------
 */

/* The cached snapshot of `rev` (a commit, or a name looked up in refs/); with need_config only
 * one holding config.json, which this module downloads last. */
static bool hub_cached_snapshot(const char *model_dir, const char *rev, bool need_config,
                                char **out) {
    char *commit = NULL;
    *out = NULL;
    if (hub_is_commit(rev)) {
        commit = strdup(rev);
    } else {
        char *ref = brisk_hub_fmt("%s/refs/%s", model_dir, rev);
        commit = ref ? brisk_read_file(ref, NULL) : NULL;
        free(ref);
        if (commit) { /* huggingface_hub writes no newline; tolerate one */
            size_t n = strlen(commit);
            while (n && (commit[n - 1] == '\n' || commit[n - 1] == '\r' || commit[n - 1] == ' '))
                commit[--n] = 0;
        }
    }
    bool ok = false;
    if (commit && hub_is_commit(commit)) {
        char *snap = brisk_hub_fmt("%s/snapshots/%s", model_dir, commit);
        char *cfg = snap ? brisk_path_join(snap, "config.json") : NULL;
        ok = snap && brisk_is_dir(snap) && (!need_config || (cfg && brisk_is_file(cfg)));
        if (ok)
            *out = snap;
        else
            free(snap);
        free(cfg);
    }
    free(commit);
    return ok;
}

/* config.json last (a snapshot holding it had every other file fetched first), the rest in
 * name order so that runs are repeatable. */
static int hub_config_last(const void *a, const void *b) {
    int ca = strcmp(*(char *const *)a, "config.json") == 0;
    int cb = strcmp(*(char *const *)b, "config.json") == 0;
    return ca != cb ? ca - cb : strcmp(*(char *const *)a, *(char *const *)b);
}

static brisk_status hub_resolve_online(const char *repo, const char *rev, const char *cache,
                                       const char *folder, const char *model_dir, bool progress,
                                       char **path_out) {
    hub_ctx h = {.repo = repo};
    hub_list list = {0};
    char **todo = NULL;
    char *snap_dir = NULL;
    brisk_status st = BRISK_OK;
    const CURLcode init_rc = brisk_hub_curl_init();
    if (init_rc != CURLE_OK)
        return brisk_errorf(BRISK_ERR_IO, "%s: curl_global_init failed: %s", HUB_FN,
                            curl_easy_strerror(init_rc));
    const char *ep = hub_env("HF_ENDPOINT");
    h.endpoint = strdup(ep ? ep : HUB_DEFAULT_EP);
    if (!h.endpoint) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
    for (size_t n = strlen(h.endpoint); n && h.endpoint[n - 1] == '/';) h.endpoint[--n] = 0;
    h.origin = brisk_hub_origin(h.endpoint);
    h.progress = progress && isatty(STDERR_FILENO) && !hub_env_true("HF_HUB_DISABLE_PROGRESS_BARS");
    char *tok = hub_token();
    if (tok) {
        h.auth = brisk_hub_fmt("Authorization: Bearer %s", tok);
        free(tok);
    }
    if (!(h.curl = curl_easy_init())) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: curl_easy_init failed", HUB_FN);
        goto done;
    }
    bool unreachable;
    st = hub_fetch_list(&h, rev, &list, &unreachable);
    if (st != BRISK_OK) {
        char *snap;
        if (unreachable && hub_cached_snapshot(model_dir, rev, true, &snap)) {
            if (progress)
                fprintf(stderr, "brisk: warning: %s; using the cached snapshot %s\n",
                        brisk_last_error(), snap);
            brisk_error_clear();
            *path_out = snap;
            st = BRISK_OK;
        }
        goto done;
    }
    bool any_model_st = false;
    for (size_t i = 0; i < list.n; i++)
        any_model_st |= fnmatch("model*.safetensors", list.files[i], 0) == 0;
    todo = calloc(list.n + 1, sizeof *todo);
    snap_dir = brisk_hub_fmt("%s/snapshots/%s", model_dir, list.sha);
    char *blobs = brisk_hub_fmt("%s/blobs", model_dir);
    bool dirs = blobs && snap_dir && hub_mkdirs(blobs) && hub_mkdirs(snap_dir);
    int err = errno;
    free(blobs);
    if (!todo || !snap_dir) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    if (!dirs) {
        st = brisk_errorf(BRISK_ERR_IO, "%s: cannot create %s/{blobs,snapshots}: %s", HUB_FN,
                          model_dir, strerror(err));
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < list.n; i++)
        if (hub_wanted(list.files[i], any_model_st)) todo[n++] = list.files[i];
    qsort(todo, n, sizeof *todo, hub_config_last);
    hub_paths P = {cache, model_dir, folder, list.sha, snap_dir};
    for (size_t i = 0; i < n && st == BRISK_OK; i++) st = hub_fetch_file(&h, &P, todo[i]);
    if (st != BRISK_OK) goto done;
    /* refs/{revision} last: it is what offline lookups follow. */
    if (strcmp(rev, list.sha) != 0) {
        char *ref = brisk_hub_fmt("%s/refs/%s", model_dir, rev);
        bool ok = ref && hub_mkdirs_parent(ref) && hub_write_atomic(ref, list.sha);
        if (!ok)
            st = brisk_errorf(BRISK_ERR_IO, "%s: cannot write %s/refs/%s: %s", HUB_FN, model_dir,
                              rev, strerror(errno));
        free(ref);
        if (st != BRISK_OK) goto done;
    }
    *path_out = snap_dir;
    snap_dir = NULL;
done:
    if (h.curl) curl_easy_cleanup(h.curl);
    free(h.endpoint);
    free(h.origin);
    free(h.auth);
    free(todo);
    free(snap_dir);
    hub_list_free(&list);
    return st;
}

brisk_status brisk_hub_resolve(const char *ref, const brisk_hub_params *params, char **path_out) {
    if (!path_out) return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: path_out is NULL", __func__);
    *path_out = NULL;
    if (!ref || !*ref) return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: ref is empty", __func__);
    brisk_hub_params p = params ? *params : brisk_hub_default_params();
    if (brisk_is_dir(ref)) {
        if (!(*path_out = strdup(ref)))
            return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
        return BRISK_OK;
    }
    if (!hub_valid_repo_id(ref))
        return brisk_errorf(BRISK_ERR_NOT_FOUND,
                            "%s: '%.300s' is neither a folder nor a Hugging Face repo id "
                            "(org/name of letters, digits, '.', '_' and '-')",
                            __func__, ref);
    const char *rev = p.revision ? p.revision : "main";
    if (!hub_is_commit(rev) && !hub_valid_revision(rev))
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: bad revision '%.100s'", __func__, rev);
    char *cache = NULL;
    brisk_status st = brisk_hub_cache_dir(&cache);
    if (st != BRISK_OK) return st;
    const char *slash = strchr(ref, '/');
    char *folder = brisk_hub_fmt("models--%.*s--%s", (int)(slash - ref), ref, slash + 1);
    char *model_dir = folder ? brisk_path_join(cache, folder) : NULL;
    if (!model_dir) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
    } else if (p.offline || hub_env_true("HF_HUB_OFFLINE")) {
        if (!hub_cached_snapshot(model_dir, rev, false, path_out))
            st = brisk_errorf(BRISK_ERR_NOT_FOUND,
                              "%s: %s (revision %s) is not in the cache %s and HF_HUB_OFFLINE=1 "
                              "(offline mode) forbids downloading it",
                              __func__, ref, rev, cache);
    } else {
        st = hub_resolve_online(ref, rev, cache, folder, model_dir, p.progress, path_out);
    }
    free(cache);
    free(folder);
    free(model_dir);
    return st;
}
