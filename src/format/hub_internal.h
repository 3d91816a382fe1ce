/* hub_internal.h: what hub.c (cache layout, file list, resolve) and hub_http.c (libcurl
 * requests, redirects, resumable transfers, progress) share. */
#ifndef BRISK_FORMAT_HUB_INTERNAL_H
#define BRISK_FORMAT_HUB_INTERNAL_H

#include "brisk.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

/* Every message of the download path names the public entry point the caller used. */
#define HUB_FN         "brisk_hub_resolve"
#define HUB_MAX_HOPS   8                  /* redirects followed per file */
#define HUB_LIST_MAX   ((size_t)64 << 20) /* cap on the file-list JSON */
#define HUB_DEFAULT_EP "https://huggingface.co"

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

/* curl_global_init, once per process (thread-safe). */
CURLcode brisk_hub_curl_init(void);
/* A malloc'd printf (NULL when out of memory). */
char *brisk_hub_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void brisk_hub_url_for_msg(const char *url, char *out, size_t cap);
char *brisk_hub_origin(const char *url);
CURLcode brisk_hub_get(hub_ctx *h, const char *url, hub_xfer *x, int64_t range_from,
                       long timeout_s);
brisk_status brisk_hub_curl_fail(hub_ctx *h, CURLcode rc, const char *what, const char *url);
brisk_status brisk_hub_http_fail(hub_ctx *h, const hub_resp *r, const char *what, const char *url);

#endif
