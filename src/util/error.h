/* error.h: the library's error channel: a thread-local one-line message plus a status code.
 * Every failing function sets it with brisk_errorf() and returns the status. */
#ifndef BRISK_UTIL_ERROR_H
#define BRISK_UTIL_ERROR_H

#include "brisk.h"
#include <stdio.h>
#include <stdlib.h>

/* Sets the thread's last error to the formatted one-line message and returns st, so callers can
 * write `return brisk_errorf(BRISK_ERR_FORMAT, "%s: ...", __func__, ...)`. */
brisk_status brisk_errorf(brisk_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the thread's last error. */
void brisk_error_clear(void);

/* Internal invariant check: aborts with file:line. Never used for bad input. */
#define BRISK_ASSERT(x)                                                                            \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "brisk: internal error %s:%d: assertion '%s' failed\n", __FILE__,      \
                    __LINE__, #x);                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define BRISK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
