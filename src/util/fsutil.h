/* fsutil.h: small file-system helpers shared by the loaders (whole-file reads, path joins). */
#ifndef BRISK_UTIL_FSUTIL_H
#define BRISK_UTIL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Reads a whole file into a malloc'd, NUL-terminated buffer; NULL with errno set on failure. */
char *brisk_read_file(const char *path, size_t *len);

/* "dir/name" in a malloc'd string (NULL when out of memory). */
char *brisk_path_join(const char *dir, const char *name);

bool brisk_is_dir(const char *path);
bool brisk_is_file(const char *path);

#endif
