/* hub_http.c: the hub's HTTP side over libcurl: one GET with redirects followed by hand (the
 * token only ever goes to the endpoint's origin), resumable file transfers, progress, errors. */
#include "format/hub_internal.h"
#include "util/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- HTTP --------------------------------------------------------------------------------- */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc;
static void hub_curl_global_init(void) {
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode brisk_hub_curl_init(void) {
    pthread_once(&g_curl_once, hub_curl_global_init);
    return g_curl_init_rc;
}

static double hub_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "scheme://host:port" of a URL, lower-cased; NULL when it does not parse. */
char *brisk_hub_origin(const char *url) {
    CURLU *u = curl_url();
    if (!u) return NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        out = brisk_hub_fmt("%s://%s:%s", scheme, host, port);
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
CURLcode brisk_hub_get(hub_ctx *h, const char *url, hub_xfer *x, int64_t range_from,
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
    char *origin = brisk_hub_origin(url);
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

brisk_status brisk_hub_curl_fail(hub_ctx *h, CURLcode rc, const char *what, const char *url) {
    char u[512];
    brisk_hub_url_for_msg(url, u, sizeof u);
    if (rc == CURLE_OUT_OF_MEMORY) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", HUB_FN);
    return brisk_errorf(BRISK_ERR_IO, "%s: %s: GET %s failed: %s%s%s", HUB_FN, what, u,
                        curl_easy_strerror(rc), h->errbuf[0] ? ": " : "", h->errbuf);
}

/* The message for an HTTP error status; `what` names the repo or file asked for. */
brisk_status brisk_hub_http_fail(hub_ctx *h, const hub_resp *r, const char *what, const char *url) {
    char u[512], srv[300] = "";
    brisk_hub_url_for_msg(url, u, sizeof u);
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
