/* error.c: thread-local last-error message, status names and the version string. */
#include "util/error.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_last_error[1024];

brisk_status brisk_errorf(brisk_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    /* Messages are one line: fold any newline that slipped in through user data. */
    for (char *p = g_last_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return st;
}

void brisk_error_clear(void) {
    g_last_error[0] = 0;
}

const char *brisk_last_error(void) {
    return g_last_error;
}

const char *brisk_status_str(brisk_status st) {
    switch (st) {
    case BRISK_OK:
        return "ok";
    case BRISK_ERR_INVALID_ARG:
        return "invalid argument";
    case BRISK_ERR_IO:
        return "i/o error";
    case BRISK_ERR_FORMAT:
        return "format error";
    case BRISK_ERR_UNSUPPORTED:
        return "unsupported";
    case BRISK_ERR_OOM:
        return "out of memory";
    case BRISK_ERR_BUFFER_TOO_SMALL:
        return "buffer too small";
    case BRISK_ERR_KV_FULL:
        return "kv cache full";
    case BRISK_ERR_BACKEND:
        return "backend error";
    case BRISK_ERR_CANCELLED:
        return "cancelled";
    case BRISK_ERR_NOT_FOUND:
        return "not found";
    }
    return "unknown status";
}

const char *brisk_version(void) {
    return "0.1.0";
}

void brisk_free(void *p) {
    free(p);
}
