/* safetensors.h: a validated, mmapped view of one safetensors file or a folder of shards.
 * Everything is checked at open (header, JSON, dtypes, shapes vs byte ranges, overlaps). */
#ifndef BRISK_FORMAT_SAFETENSORS_H
#define BRISK_FORMAT_SAFETENSORS_H

#include "brisk.h"

#include <stdint.h>

/* Every dtype name of the safetensors spec. Recognised at open; the weight binder decides which
 * ones it can use and names the others as unsupported. */
typedef enum brisk_dtype {
    BRISK_DT_BOOL,
    BRISK_DT_U8,
    BRISK_DT_I8,
    BRISK_DT_I16,
    BRISK_DT_U16,
    BRISK_DT_F16,
    BRISK_DT_BF16,
    BRISK_DT_I32,
    BRISK_DT_U32,
    BRISK_DT_F32,
    BRISK_DT_F64,
    BRISK_DT_I64,
    BRISK_DT_U64,
    BRISK_DT_C64,
    BRISK_DT_F8_E5M2,
    BRISK_DT_F8_E4M3,
    BRISK_DT_F8_E8M0,
    BRISK_DT_F8_E4M3FNUZ,
    BRISK_DT_F8_E5M2FNUZ,
    BRISK_DT_F4,
    BRISK_DT_F6_E2M3,
    BRISK_DT_F6_E3M2,
    BRISK_DT_COUNT
} brisk_dtype;

#define BRISK_ST_MAX_DIMS   8
#define BRISK_ST_MAX_HEADER 100000000u /* as the reference reader: larger headers are rejected */

typedef struct brisk_st_tensor {
    const char *name; /* owned by the set */
    brisk_dtype dtype;
    int ndim;
    int64_t shape[BRISK_ST_MAX_DIMS];
    const uint8_t *data; /* into the read-only mapping; NOT aligned (MLX files) */
    uint64_t nbytes;
    int file; /* index into the set's files */
} brisk_st_tensor;

typedef struct brisk_st_set brisk_st_set;

/* Name ("F32") and bits per element (F4 = 4) of a dtype. */
const char *brisk_dtype_name(brisk_dtype dt);
int brisk_dtype_bits(brisk_dtype dt);

/* Opens a model folder: model.safetensors.index.json when present (every shard it names), else
 * every model*.safetensors file (as mlx-lm does), else a single *.safetensors. */
brisk_status brisk_st_open_dir(const char *dir, brisk_st_set **out);
/* Opens one file. */
brisk_status brisk_st_open_file(const char *path, brisk_st_set **out);
void brisk_st_close(brisk_st_set *set);

/* Looks a tensor up by name (NULL when absent). */
const brisk_st_tensor *brisk_st_find(const brisk_st_set *set, const char *name);
int brisk_st_count(const brisk_st_set *set);
const brisk_st_tensor *brisk_st_at(const brisk_st_set *set, int i);
const char *brisk_st_file_path(const brisk_st_set *set, int file);
uint64_t brisk_st_total_bytes(const brisk_st_set *set);

/* Validates a whole file image held in memory (header + data) and returns the tensor count.
 * Used by open and by the fuzz target; `fname` only labels error messages. */
brisk_status brisk_st_validate_buffer(const uint8_t *buf, uint64_t size, const char *fname,
                                      int *n_tensors);

#endif
