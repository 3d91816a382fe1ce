/* safetensors.c: open, mmap and validate safetensors files and sharded folders.
 * No tensor is handed out before its file passed every check; errors name file, tensor, problem. */
#include "format/safetensors.h"
#include "util/error.h"
#include "util/fsutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct st_file {
    char *path;
    const uint8_t *map; /* whole file, read-only */
    uint64_t size;
} st_file;

struct brisk_st_set {
    st_file *files;
    int n_files;
    brisk_st_tensor *tensors; /* sorted by name for bsearch */
    int n_tensors;
    uint64_t total_bytes;
};

static const struct {
    const char *name;
    int bits;
} DTYPES[BRISK_DT_COUNT] = {
    [BRISK_DT_BOOL] = {"BOOL", 8},
    [BRISK_DT_U8] = {"U8", 8},
    [BRISK_DT_I8] = {"I8", 8},
    [BRISK_DT_I16] = {"I16", 16},
    [BRISK_DT_U16] = {"U16", 16},
    [BRISK_DT_F16] = {"F16", 16},
    [BRISK_DT_BF16] = {"BF16", 16},
    [BRISK_DT_I32] = {"I32", 32},
    [BRISK_DT_U32] = {"U32", 32},
    [BRISK_DT_F32] = {"F32", 32},
    [BRISK_DT_F64] = {"F64", 64},
    [BRISK_DT_I64] = {"I64", 64},
    [BRISK_DT_U64] = {"U64", 64},
    [BRISK_DT_C64] = {"C64", 64},
    [BRISK_DT_F8_E5M2] = {"F8_E5M2", 8},
    [BRISK_DT_F8_E4M3] = {"F8_E4M3", 8},
    [BRISK_DT_F8_E8M0] = {"F8_E8M0", 8},
    [BRISK_DT_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [BRISK_DT_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [BRISK_DT_F4] = {"F4", 4},
    [BRISK_DT_F6_E2M3] = {"F6_E2M3", 6},
    [BRISK_DT_F6_E3M2] = {"F6_E3M2", 6},
};

const char *brisk_dtype_name(brisk_dtype dt) {
    return (unsigned)dt < BRISK_DT_COUNT ? DTYPES[dt].name : "?";
}
int brisk_dtype_bits(brisk_dtype dt) {
    return (unsigned)dt < BRISK_DT_COUNT ? DTYPES[dt].bits : 0;
}

static int dtype_from_name(const char *s) {
    for (int i = 0; i < BRISK_DT_COUNT; i++)
        if (strcmp(DTYPES[i].name, s) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Header parsing and validation of one file image
 * ------------------------------------------------------------------------------------------- */

static int cmp_offset(const void *a, const void *b) {
    const brisk_st_tensor *x = a, *y = b;
    uintptr_t xo = (uintptr_t)x->data, yo = (uintptr_t)y->data;
    return xo < yo ? -1 : xo > yo ? 1 : (x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const brisk_st_tensor *)a)->name, ((const brisk_st_tensor *)b)->name);
}

/* A JSON number that is a non-negative integer exactly representable in 53 bits. */
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Parses and validates one file image. On success *out holds n tensors whose `data` are pointers
 * into buf and whose names are malloc'd (owned by the caller). */
static brisk_status parse_file(const uint8_t *buf, uint64_t size, const char *fname, int file_idx,
                               brisk_st_tensor **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (size < 8)
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: file is %llu bytes, shorter than the 8-byte header "
                            "length (truncated file?)",
                            fname, (unsigned long long)size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > BRISK_ST_MAX_HEADER)
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: header length %llu exceeds the %u-byte limit",
                            fname, (unsigned long long)n, BRISK_ST_MAX_HEADER);
    if (n > size - 8)
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: header length %llu runs past the end of the file "
                            "(%llu bytes; truncated file?)",
                            fname, (unsigned long long)n, (unsigned long long)size);
    if (n < 2 || buf[8] != '{')
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: header does not start with '{' (not a safetensors "
                            "file?)",
                            fname);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)n, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        long at = end ? (long)(end - (const char *)buf) : 8;
        cJSON_Delete(root);
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: header is not a valid JSON object (near byte %ld)",
                            fname, at);
    }
    /* Anything after the JSON value must be the spaces the writers pad with. */
    if (end)
        for (const char *p = end; p < (const char *)buf + 8 + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
                cJSON_Delete(root);
                return brisk_errorf(BRISK_ERR_FORMAT,
                                    "brisk_st_open: %s: unexpected bytes after the JSON header at "
                                    "byte %ld",
                                    fname, (long)(p - (const char *)buf));
            }
    const uint64_t data_start = 8 + n, data_size = size - data_start;
    int count = cJSON_GetArraySize(root);
    brisk_st_tensor *ts = calloc(count ? (size_t)count : 1, sizeof *ts);
    if (!ts) {
        cJSON_Delete(root);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: %s: out of memory", fname);
    }
    int nt = 0;
    brisk_status st = BRISK_OK;
    for (cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                st = brisk_errorf(BRISK_ERR_FORMAT,
                                  "brisk_st_open: %s: __metadata__ is not an object", fname);
                goto fail;
            }
            for (cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    st = brisk_errorf(BRISK_ERR_FORMAT,
                                      "brisk_st_open: %s: __metadata__ value '%s' is not a string",
                                      fname, m->string ? m->string : "");
                    goto fail;
                }
            continue;
        }
        if (!cJSON_IsObject(e)) {
            st =
                brisk_errorf(BRISK_ERR_FORMAT,
                             "brisk_st_open: %s: tensor '%s': entry is not an object", fname, name);
            goto fail;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) ||
            cJSON_GetArraySize(jo) != 2) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s': needs string 'dtype', array 'shape' "
                              "and a 2-element 'data_offsets'",
                              fname, name);
            goto fail;
        }
        int dt = dtype_from_name(jd->valuestring);
        if (dt < 0) {
            st =
                brisk_errorf(BRISK_ERR_FORMAT, "brisk_st_open: %s: tensor '%s': unknown dtype '%s'",
                             fname, name, jd->valuestring);
            goto fail;
        }
        brisk_st_tensor *t = &ts[nt];
        t->dtype = (brisk_dtype)dt;
        t->file = file_idx;
        t->ndim = cJSON_GetArraySize(js);
        if (t->ndim > BRISK_ST_MAX_DIMS) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s': %d dimensions (max %d)", fname, name,
                              t->ndim, BRISK_ST_MAX_DIMS);
            goto fail;
        }
        /* elements * bits, with overflow checks (sizes are bounded by the file anyway). */
        unsigned __int128 nbits = (unsigned __int128)DTYPES[dt].bits;
        int d = 0;
        for (cJSON *x = js->child; x; x = x->next, d++) {
            uint64_t v;
            if (!json_u64(x, &v)) {
                st = brisk_errorf(BRISK_ERR_FORMAT,
                                  "brisk_st_open: %s: tensor '%s': shape[%d] is not a non-negative "
                                  "integer",
                                  fname, name, d);
                goto fail;
            }
            t->shape[d] = (int64_t)v;
            nbits *= v;
            if (nbits > ((unsigned __int128)size << 3)) nbits = ((unsigned __int128)size << 3) + 8;
        }
        uint64_t b0, b1;
        if (!json_u64(jo->child, &b0) || !json_u64(jo->child->next, &b1)) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s': data_offsets are not non-negative "
                              "integers",
                              fname, name);
            goto fail;
        }
        if (b1 < b0) {
            st =
                brisk_errorf(BRISK_ERR_FORMAT,
                             "brisk_st_open: %s: tensor '%s': data_offsets [%llu, %llu] end before "
                             "they begin",
                             fname, name, (unsigned long long)b0, (unsigned long long)b1);
            goto fail;
        }
        if (b1 > data_size) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s': data_offsets [%llu, %llu] run past "
                              "the end of the data (%llu bytes; truncated file?)",
                              fname, name, (unsigned long long)b0, (unsigned long long)b1,
                              (unsigned long long)data_size);
            goto fail;
        }
        uint64_t want = (uint64_t)((nbits + 7) / 8);
        if (want != b1 - b0) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s': dtype %s with shape of %llu bytes "
                              "does not match its byte range of %llu bytes",
                              fname, name, DTYPES[dt].name, (unsigned long long)want,
                              (unsigned long long)(b1 - b0));
            goto fail;
        }
        t->name = strdup(name);
        if (!t->name) {
            st = brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: %s: out of memory", fname);
            goto fail;
        }
        t->data = buf + data_start + b0;
        t->nbytes = b1 - b0;
        nt++;
    }
    /* Names must be unique (JSON objects may repeat keys; the format forbids it). */
    qsort(ts, (size_t)nt, sizeof *ts, cmp_name);
    for (int i = 1; i < nt; i++)
        if (strcmp(ts[i - 1].name, ts[i].name) == 0) {
            st = brisk_errorf(BRISK_ERR_FORMAT, "brisk_st_open: %s: tensor '%s' appears twice",
                              fname, ts[i].name);
            goto fail;
        }
    /* Byte ranges: sorted by offset they must neither overlap nor leave holes, and the last one
     * must end at the end of the file (the reference reader's rules). */
    brisk_st_tensor *by_off = malloc((nt ? (size_t)nt : 1) * sizeof *by_off);
    if (!by_off) {
        st = brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: %s: out of memory", fname);
        goto fail;
    }
    memcpy(by_off, ts, (size_t)nt * sizeof *ts);
    qsort(by_off, (size_t)nt, sizeof *by_off, cmp_offset);
    uint64_t pos = 0;
    for (int i = 0; i < nt && st == BRISK_OK; i++) {
        uint64_t b0 = (uint64_t)(by_off[i].data - (buf + data_start));
        if (b0 < pos) {
            st =
                brisk_errorf(BRISK_ERR_FORMAT,
                             "brisk_st_open: %s: tensor '%s' at bytes [%llu, %llu) overlaps tensor "
                             "'%s'",
                             fname, by_off[i].name, (unsigned long long)b0,
                             (unsigned long long)(b0 + by_off[i].nbytes), by_off[i - 1].name);
        } else if (b0 > pos) {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s' starts at data byte %llu, leaving a "
                              "hole after byte %llu",
                              fname, by_off[i].name, (unsigned long long)b0,
                              (unsigned long long)pos);
        }
        pos = b0 + by_off[i].nbytes;
    }
    free(by_off);
    if (st != BRISK_OK) goto fail;
    if (pos != data_size) {
        st =
            brisk_errorf(BRISK_ERR_FORMAT,
                         "brisk_st_open: %s: tensors cover %llu data bytes but the file holds %llu "
                         "(trailing garbage or a truncated header?)",
                         fname, (unsigned long long)pos, (unsigned long long)data_size);
        goto fail;
    }
    cJSON_Delete(root);
    *out = ts;
    *n_out = nt;
    return BRISK_OK;
fail:
    for (int i = 0; i < nt; i++) free((void *)ts[i].name);
    free(ts);
    cJSON_Delete(root);
    return st;
}

brisk_status brisk_st_validate_buffer(const uint8_t *buf, uint64_t size, const char *fname,
                                      int *n_tensors) {
    brisk_st_tensor *ts;
    int n;
    brisk_status st = parse_file(buf, size, fname, 0, &ts, &n);
    if (st != BRISK_OK) return st;
    for (int i = 0; i < n; i++) free((void *)ts[i].name);
    free(ts);
    if (n_tensors) *n_tensors = n;
    return BRISK_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Sets of files
 * ------------------------------------------------------------------------------------------- */

void brisk_st_close(brisk_st_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n_files; i++) {
        if (set->files[i].map && set->files[i].size)
            munmap((void *)set->files[i].map, set->files[i].size);
        free(set->files[i].path);
    }
    for (int i = 0; i < set->n_tensors; i++) free((void *)set->tensors[i].name);
    free(set->files);
    free(set->tensors);
    free(set);
}

/* Maps `path` and appends its tensors to the set. */
static brisk_status add_file(brisk_st_set *set, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return brisk_errorf(BRISK_ERR_IO, "brisk_st_open: %s: cannot open: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return brisk_errorf(BRISK_ERR_IO, "brisk_st_open: %s: not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    const uint8_t *map = NULL;
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return brisk_errorf(BRISK_ERR_IO, "brisk_st_open: %s: mmap failed: %s", path,
                                strerror(errno));
        }
        map = m;
    }
    close(fd);
    st_file *nf = realloc(set->files, (size_t)(set->n_files + 1) * sizeof *nf);
    if (!nf) {
        if (map) munmap((void *)map, size);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    }
    set->files = nf;
    st_file *f = &set->files[set->n_files++];
    f->path = strdup(path);
    f->map = map;
    f->size = size;
    if (!f->path) return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    brisk_st_tensor *ts;
    int n;
    brisk_status st =
        parse_file(map ? map : (const uint8_t *)"", size, path, set->n_files - 1, &ts, &n);
    if (st != BRISK_OK) return st;
    brisk_st_tensor *all = realloc(set->tensors, (size_t)(set->n_tensors + n + 1) * sizeof *all);
    if (!all) {
        for (int i = 0; i < n; i++) free((void *)ts[i].name);
        free(ts);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    }
    set->tensors = all;
    memcpy(set->tensors + set->n_tensors, ts, (size_t)n * sizeof *ts);
    set->n_tensors += n;
    for (int i = 0; i < n; i++) set->total_bytes += ts[i].nbytes;
    free(ts);
    return BRISK_OK;
}

/* Sorts by name and rejects a tensor stored in two files. */
static brisk_status finish_set(brisk_st_set *set) {
    qsort(set->tensors, (size_t)set->n_tensors, sizeof *set->tensors, cmp_name);
    for (int i = 1; i < set->n_tensors; i++)
        if (strcmp(set->tensors[i - 1].name, set->tensors[i].name) == 0)
            return brisk_errorf(BRISK_ERR_FORMAT,
                                "brisk_st_open: tensor '%s' is stored in both %s and %s",
                                set->tensors[i].name, set->files[set->tensors[i - 1].file].path,
                                set->files[set->tensors[i].file].path);
    return BRISK_OK;
}

brisk_status brisk_st_open_file(const char *path, brisk_st_set **out) {
    *out = NULL;
    brisk_st_set *set = calloc(1, sizeof *set);
    if (!set) return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    brisk_status st = add_file(set, path);
    if (st == BRISK_OK) st = finish_set(set);
    if (st != BRISK_OK) {
        brisk_st_close(set);
        return st;
    }
    *out = set;
    return BRISK_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Opens every shard listed in the index and checks each listed tensor is where it says. */
static brisk_status open_index(brisk_st_set *set, const char *dir, const char *index_path) {
    size_t len;
    char *text = brisk_read_file(index_path, &len);
    if (!text)
        return brisk_errorf(BRISK_ERR_IO, "brisk_st_open: %s: cannot read: %s", index_path,
                            strerror(errno));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return brisk_errorf(BRISK_ERR_FORMAT,
                            "brisk_st_open: %s: not JSON with a 'weight_map' object", index_path);
    }
    brisk_status st = BRISK_OK;
    int n = cJSON_GetArraySize(map), nf = 0;
    char **files = calloc((size_t)n + 1, sizeof *files);
    if (!files) st = brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    for (cJSON *e = map->child; e && st == BRISK_OK; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: weight_map entry '%s' is not a plain file name",
                              index_path, e->string ? e->string : "");
            break;
        }
        files[nf++] = e->valuestring;
    }
    if (st == BRISK_OK) {
        qsort(files, (size_t)nf, sizeof *files, cmp_str);
        for (int i = 0; i < nf && st == BRISK_OK; i++) {
            if (i > 0 && strcmp(files[i], files[i - 1]) == 0) continue;
            char *path = brisk_path_join(dir, files[i]);
            st = path ? add_file(set, path)
                      : brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
            free(path);
        }
    }
    if (st == BRISK_OK) st = finish_set(set);
    for (cJSON *e = map->child; e && st == BRISK_OK; e = e->next) {
        const brisk_st_tensor *t = brisk_st_find(set, e->string);
        const char *base = t ? strrchr(set->files[t->file].path, '/') : NULL;
        base = base ? base + 1 : t ? set->files[t->file].path : NULL;
        if (!t)
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s' is listed in the index but missing "
                              "from %s",
                              index_path, e->string, e->valuestring);
        else if (strcmp(base, e->valuestring) != 0)
            st = brisk_errorf(BRISK_ERR_FORMAT,
                              "brisk_st_open: %s: tensor '%s' is listed in %s but stored in %s",
                              index_path, e->string, e->valuestring, base);
    }
    free(files);
    cJSON_Delete(root);
    return st;
}

brisk_status brisk_st_open_dir(const char *dir, brisk_st_set **out) {
    *out = NULL;
    brisk_st_set *set = calloc(1, sizeof *set);
    if (!set) return brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    brisk_status st = BRISK_OK;
    char *index = brisk_path_join(dir, "model.safetensors.index.json");
    if (!index)
        st = brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
    else if (access(index, R_OK) == 0) {
        st = open_index(set, dir, index);
    } else {
        DIR *d = opendir(dir);
        if (!d) {
            st = brisk_errorf(BRISK_ERR_IO, "brisk_st_open: %s: cannot open folder: %s", dir,
                              strerror(errno));
        } else {
            /* model*.safetensors first (mlx-lm's rule, skips consolidated.safetensors); any
             * *.safetensors when there is no such file. */
            char **names = NULL;
            int nn = 0, any = 0;
            struct dirent *e;
            for (int pass = 0; pass < 2 && nn == 0 && st == BRISK_OK; pass++) {
                rewinddir(d);
                while ((e = readdir(d)) && st == BRISK_OK) {
                    size_t l = strlen(e->d_name);
                    if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors") != 0) continue;
                    any = 1;
                    if (pass == 0 && strncmp(e->d_name, "model", 5) != 0) continue;
                    char **nn2 = realloc(names, (size_t)(nn + 1) * sizeof *names);
                    if (!nn2 || !(nn2[nn] = strdup(e->d_name))) {
                        if (nn2) names = nn2;
                        st = brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
                        break;
                    }
                    names = nn2;
                    nn++;
                }
            }
            closedir(d);
            if (st == BRISK_OK && nn == 0)
                st = brisk_errorf(BRISK_ERR_NOT_FOUND,
                                  "brisk_st_open: %s: no *.safetensors file in the folder%s", dir,
                                  any ? "" : " (is this a model folder?)");
            if (names) qsort(names, (size_t)nn, sizeof *names, cmp_str);
            for (int i = 0; i < nn && st == BRISK_OK; i++) {
                char *path = brisk_path_join(dir, names[i]);
                st = path ? add_file(set, path)
                          : brisk_errorf(BRISK_ERR_OOM, "brisk_st_open: out of memory");
                free(path);
            }
            for (int i = 0; i < nn; i++) free(names[i]);
            free(names);
            if (st == BRISK_OK) st = finish_set(set);
        }
    }
    free(index);
    if (st != BRISK_OK) {
        brisk_st_close(set);
        return st;
    }
    *out = set;
    return BRISK_OK;
}

const brisk_st_tensor *brisk_st_find(const brisk_st_set *set, const char *name) {
    brisk_st_tensor key = {.name = name};
    return bsearch(&key, set->tensors, (size_t)set->n_tensors, sizeof key, cmp_name);
}

int brisk_st_count(const brisk_st_set *set) {
    return set->n_tensors;
}
const brisk_st_tensor *brisk_st_at(const brisk_st_set *set, int i) {
    return &set->tensors[i];
}
const char *brisk_st_file_path(const brisk_st_set *set, int file) {
    return set->files[file].path;
}
uint64_t brisk_st_total_bytes(const brisk_st_set *set) {
    return set->total_bytes;
}
