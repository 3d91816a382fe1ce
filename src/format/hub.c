/* hub.c: resolves a model reference (a folder or a Hugging Face repo id) to a local folder in the
 * HF cache layout shared with Python tools, downloading missing files with libcurl. */
#include "brisk.h"
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

/* Every message of the download path names the public entry point the caller used. */
#define HUB_FN         "brisk_hub_resolve"
#define HUB_MAX_HOPS   8                  /* redirects followed per file */
#define HUB_LIST_MAX   ((size_t)64 << 20) /* cap on the file-list JSON */
#define HUB_DEFAULT_EP "https://huggingface.co"

/* ---- small string and environment helpers ---------------------------------------------------- */

static char *hub_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *hub_fmt(const char *fmt, ...) {
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
    if (p[0] == '~' && (p[1] == 0 || p[1] == '/') && home) return hub_fmt("%s%s", home, p + 1);
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
static void hub_url_for_msg(const char *url, char *out, size_t cap) {
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
    char *tmp = hub_fmt("%s.brisk-tmp-%ld", path, (long)getpid());
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
        p = hub_fmt("%s/.cache/huggingface", v);
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

/* ---- HTTP --------------------------------------------------------------------------------- */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc;
static void hub_curl_global_init(void) {
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One resolve: the curl handle (reused so connections are kept alive) and what every request
 * needs to know. */
typedef struct hub_ctx {
    CURL *curl;
    char *endpoint; /* no trailing '/' */
    char *origin;   /* "scheme://host:port" of the endpoint: the only place the token goes */
    char *auth;     /* "Authorization: Bearer ..." or NULL */
    const char *repo;
    bool progress;
    char errbuf[CURL_ERROR_SIZE];
} hub_ctx;

/* What one response said, from its headers. */
typedef struct hub_resp {
    long status;
    char etag[256], linked_etag[256], error_msg[256];
    int64_t content_length, linked_size, range_start, range_total;
    bool body_started;
} hub_resp;

/* One request's sinks: memory (file list) or the .incomplete file. */
typedef struct hub_xfer {
    hub_resp resp;
    char *mem; /* memory sink, NUL-terminated */
    size_t mem_len, mem_cap;
    bool mem_overflow;
    int fd; /* file sink (-1 for memory) */
    int64_t have;
    bool range_mismatch;
    int write_errno;
    const char *name; /* progress bar */
    double t0, last_print;
    curl_off_t last_now;
    bool printed;
} hub_xfer;

static double hub_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "scheme://host:port" of a URL, lower-cased; NULL when it does not parse. */
static char *hub_origin(const char *url) {
    CURLU *u = curl_url();
    if (!u) return NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = hub_fmt("%s://%s:%s", scheme, host, port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    if (out)
        for (char *p = out; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return out;
}

/* Copies a header value, trimmed; for ETags also drops a W/ prefix and the quotes. */
static void hub_copy_value(char *dst, size_t cap, const char *v, size_t n, bool etag) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n')) n--;
    if (etag) {
        if (n >= 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    }
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static bool hub_header_is(const char *buf, size_t n, const char *name) {
    return strlen(name) == n && strncasecmp(buf, name, n) == 0;
}

static size_t hub_on_header(char *buf, size_t size, size_t nitems, void *ud) {
    hub_xfer *x = ud;
    size_t len = size * nitems;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response starts */
        memset(&x->resp, 0, sizeof x->resp);
        x->resp.content_length = x->resp.linked_size = -1;
        x->resp.range_start = x->resp.range_total = -1;
        const char *sp = memchr(buf, ' ', len);
        if (sp) x->resp.status = strtol(sp + 1, NULL, 10);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t nl = (size_t)(colon - buf), vl = len - nl - 1;
    const char *v = colon + 1;
    char tmp[256];
    hub_resp *r = &x->resp;
    if (hub_header_is(buf, nl, "etag")) {
        hub_copy_value(r->etag, sizeof r->etag, v, vl, true);
    } else if (hub_header_is(buf, nl, "x-linked-etag")) {
        hub_copy_value(r->linked_etag, sizeof r->linked_etag, v, vl, true);
    } else if (hub_header_is(buf, nl, "x-error-message")) {
        hub_copy_value(r->error_msg, sizeof r->error_msg, v, vl, false);
    } else if (hub_header_is(buf, nl, "content-length")) {
        hub_copy_value(tmp, sizeof tmp, v, vl, false);
        r->content_length = strtoll(tmp, NULL, 10);
    } else if (hub_header_is(buf, nl, "x-linked-size")) {
        hub_copy_value(tmp, sizeof tmp, v, vl, false);
        r->linked_size = strtoll(tmp, NULL, 10);
    } else if (hub_header_is(buf, nl, "content-range")) {
        hub_copy_value(tmp, sizeof tmp, v, vl, false);
        long long a, b, t;
        if (sscanf(tmp, "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            r->range_start = a;
            r->range_total = t;
        } else if (sscanf(tmp, "bytes %lld-%lld/*", &a, &b) == 2) {
            r->range_start = a;
        }
    }
    return len;
}

static size_t hub_on_body(char *buf, size_t size, size_t nitems, void *ud) {
    hub_xfer *x = ud;
    size_t len = size * nitems;
    long st = x->resp.status;
    if (x->fd < 0) { /* memory sink: keep only a successful answer, within the cap */
        if (st != 200) return len;
        if (x->mem_len + len + 1 > HUB_LIST_MAX) {
            x->mem_overflow = true;
            return 0;
        }
        if (x->mem_len + len + 1 > x->mem_cap) {
            size_t cap = x->mem_cap ? x->mem_cap : 4096;
            while (cap < x->mem_len + len + 1) cap *= 2;
            char *m = realloc(x->mem, cap);
            if (!m) {
                x->write_errno = ENOMEM;
                return 0;
            }
            x->mem = m;
            x->mem_cap = cap;
        }
        memcpy(x->mem + x->mem_len, buf, len);
        x->mem_len += len;
        x->mem[x->mem_len] = 0;
        return len;
    }
    if (st != 200 && st != 206) return len; /* redirect or error page: not the file */
    if (!x->resp.body_started) {
        x->resp.body_started = true;
        if (st == 206 && x->resp.range_start != x->have) {
            x->range_mismatch = true;
            return 0;
        }
        if (st == 200) x->have = 0; /* the server ignored Range (or none was sent): restart */
        if (ftruncate(x->fd, x->have) != 0 || lseek(x->fd, x->have, SEEK_SET) < 0) {
            x->write_errno = errno;
            return 0;
        }
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(x->fd, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            x->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        off += (size_t)w;
    }
    return len;
}

static int hub_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow) {
    hub_xfer *x = ud;
    if (x->resp.status != 200 && x->resp.status != 206) return 0;
    double now = hub_now();
    bool last = dltotal > 0 && dlnow == dltotal; /* the full line once, then at most 10 Hz */
    if (last ? dlnow == x->last_now : now - x->last_print < 0.1) return 0;
    x->last_print = now;
    x->last_now = dlnow;
    int64_t base = x->resp.status == 206 ? x->have : 0;
    double done = (double)(base + dlnow) / 1e6;
    double total = dltotal > 0 ? (double)(base + dltotal) / 1e6 : 0;
    double rate = (double)dlnow / 1e6 / (now - x->t0 > 1e-3 ? now - x->t0 : 1e-3);
    fprintf(stderr, "\r%-40.40s %9.1f / %.1f MB %8.1f MB/s ", x->name, done, total, rate);
    x->printed = true;
    return 0;
}

/* One GET, redirects not followed: the caller decides where to go next and whether the token
 * goes along (only to the endpoint's own origin). */
static CURLcode hub_get(hub_ctx *h, const char *url, hub_xfer *x, int64_t range_from,
                        long timeout_s) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    memset(&x->resp, 0, sizeof x->resp);
    x->resp.content_length = x->resp.linked_size = -1;
    x->resp.range_start = x->resp.range_total = -1;
    h->errbuf[0] = 0;
    /* Only http(s), also where curl predates CURLOPT_PROTOCOLS_STR: a redirect must not reach
     * file:// or other schemes. */
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return CURLE_UNSUPPORTED_PROTOCOL;
    char range[32];
    struct curl_slist *hdrs = NULL;
    char *origin = hub_origin(url);
    if (h->auth && origin && h->origin && strcmp(origin, h->origin) == 0) {
        hdrs = curl_slist_append(NULL, h->auth);
        if (!hdrs) {
            free(origin);
            return CURLE_OUT_OF_MEMORY;
        }
    }
    free(origin);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c, CURLOPT_USERAGENT, "brisk/0.1");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
    /* A stalled transfer fails (and resumes on the next call) instead of hanging. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hub_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hub_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    if (range_from > 0) {
        snprintf(range, sizeof range, "%lld-", (long long)range_from);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    if (h->progress && x->fd >= 0) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, hub_on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    }
    x->t0 = hub_now();
    x->last_now = -1;
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    long code = 0;
    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code)
        x->resp.status = code;
    return rc;
}

static brisk_status hub_curl_fail(hub_ctx *h, CURLcode rc, const char *what, const char *url) {
    char u[512];
    hub_url_for_msg(url, u, sizeof u);
    if (rc == CURLE_OUT_OF_MEMORY) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
    return brisk_errorf(BRISK_ERR_IO, "%s: %s: GET %s failed: %s%s%s", HUB_FN, what, u,
                        curl_easy_strerror(rc), h->errbuf[0] ? ": " : "", h->errbuf);
}

/* The message for an HTTP error status; `what` names the repo or file asked for. */
static brisk_status hub_http_fail(hub_ctx *h, const hub_resp *r, const char *what,
                                  const char *url) {
    char u[512], srv[300] = "";
    hub_url_for_msg(url, u, sizeof u);
    if (r->error_msg[0]) snprintf(srv, sizeof srv, " (server: %s)", r->error_msg);
    if (r->status == 401 || r->status == 403)
        return brisk_errorf(BRISK_ERR_NOT_FOUND,
                            "%s: %s: HTTP %ld from %s: the repo is gated, private or missing; %s%s",
                            HUB_FN, what, r->status, u,
                            h->auth ? "the token sent (HF_TOKEN or the token file) has no access "
                                      "to it (accept the model's terms on its page?)"
                                    : "set HF_TOKEN to a token that can read it",
                            srv);
    if (r->status == 404)
        return brisk_errorf(BRISK_ERR_NOT_FOUND, "%s: %s not found (HTTP 404 from %s)%s", HUB_FN,
                            what, u, srv);
    return brisk_errorf(BRISK_ERR_IO, "%s: %s: HTTP %ld from %s%s", HUB_FN, what, r->status, u,
                        srv);
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
    char *url = erev ? hub_fmt("%s/api/models/%s/revision/%s", h->endpoint, h->repo, erev) : NULL;
    char *what = hub_fmt("repo %s at revision %s", h->repo, rev);
    free(erev);
    hub_xfer x = {.fd = -1};
    brisk_status st = BRISK_OK;
    cJSON *j = NULL;
    if (!url || !what) {
        st = brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
        goto done;
    }
    CURLcode rc = hub_get(h, url, &x, 0, 120);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && (x.mem_overflow || x.write_errno))) {
        *unreachable = rc != CURLE_OUT_OF_MEMORY;
        st = hub_curl_fail(h, rc, what, url);
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
        st = hub_http_fail(h, &x.resp, what, url);
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
    char *tmp = link ? hub_fmt("%s.brisk-tmp-%ld", link, (long)getpid()) : NULL;
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
    char *what = hub_fmt("file %s of %s at %s", file, h->repo, P->sha);
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
        CURLcode rc = hub_get(h, url, &x, x.have, 0);
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
            st = hub_curl_fail(h, rc, what, url);
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
                char *blob = hub_fmt("%s/blobs/%s", P->model_dir, etag);
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
            st = hub_http_fail(h, &x.resp, what, url);
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
        flat ? hub_fmt("%s/.locks/%s/%s-%s.lock", P->cache, P->folder, P->sha, flat) : NULL;
    char *inc = flat ? hub_fmt("%s/blobs/%s-%s.incomplete", P->model_dir, P->sha, flat) : NULL;
    char *efile = hub_url_escape(file, true);
    char *url = efile ? hub_fmt("%s/%s/resolve/%s/%s", h->endpoint, h->repo, P->sha, efile) : NULL;
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
    if (!(blob = hub_fmt("%s/blobs/%s", P->model_dir, etag))) {
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
        char *ref = hub_fmt("%s/refs/%s", model_dir, rev);
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
        char *snap = hub_fmt("%s/snapshots/%s", model_dir, commit);
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
    pthread_once(&g_curl_once, hub_curl_global_init);
    if (g_curl_init_rc != CURLE_OK)
        return brisk_errorf(BRISK_ERR_IO, "%s: curl_global_init failed: %s", HUB_FN,
                            curl_easy_strerror(g_curl_init_rc));
    const char *ep = hub_env("HF_ENDPOINT");
    h.endpoint = strdup(ep ? ep : HUB_DEFAULT_EP);
    if (!h.endpoint) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
    for (size_t n = strlen(h.endpoint); n && h.endpoint[n - 1] == '/';) h.endpoint[--n] = 0;
    h.origin = hub_origin(h.endpoint);
    h.progress = progress && isatty(STDERR_FILENO) && !hub_env_true("HF_HUB_DISABLE_PROGRESS_BARS");
    char *tok = hub_token();
    if (tok) {
        h.auth = hub_fmt("Authorization: Bearer %s", tok);
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
    snap_dir = hub_fmt("%s/snapshots/%s", model_dir, list.sha);
    char *blobs = hub_fmt("%s/blobs", model_dir);
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
        char *ref = hub_fmt("%s/refs/%s", model_dir, rev);
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
    char *folder = hub_fmt("models--%.*s--%s", (int)(slash - ref), ref, slash + 1);
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
