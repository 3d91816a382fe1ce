/* kv_pool.h: the paged KV cache's block allocator: fixed pool of blocks with reference counts
 * (so sequences can share prefix blocks later) and a free stack. Storage lives with the context. */
#ifndef BRISK_ENGINE_KV_POOL_H
#define BRISK_ENGINE_KV_POOL_H

#include "brisk.h"

#include <stdint.h>

typedef struct brisk_kv_pool {
    int n_blocks;
    int block_size;    /* tokens per block */
    int32_t *free_ids; /* stack of free block ids */
    int n_free;
    uint32_t *refs; /* [n_blocks] */
} brisk_kv_pool;

brisk_status brisk_kv_pool_init(brisk_kv_pool *p, int n_blocks, int block_size);
void brisk_kv_pool_free(brisk_kv_pool *p);
/* A free block with refcount 1, or -1 when the pool is exhausted. */
int32_t brisk_kv_alloc(brisk_kv_pool *p);
void brisk_kv_ref(brisk_kv_pool *p, int32_t id);
/* Drops one reference; the block returns to the pool at zero. */
void brisk_kv_unref(brisk_kv_pool *p, int32_t id);

#endif
