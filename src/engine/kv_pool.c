/* kv_pool.c: block allocator of the paged KV cache (see kv_pool.h). O(1) alloc/free; a block is
 * reused only when its last reference is dropped. */
#include "engine/kv_pool.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

brisk_status brisk_kv_pool_init(brisk_kv_pool *p, int n_blocks, int block_size) {
    memset(p, 0, sizeof *p);
    p->free_ids = malloc((size_t)n_blocks * sizeof *p->free_ids);
    p->refs = calloc((size_t)n_blocks, sizeof *p->refs);
    if (!p->free_ids || !p->refs) {
        brisk_kv_pool_free(p);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_kv_pool_init: out of memory for %d blocks",
                            n_blocks);
    }
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    /* Hand out low ids first so a single sequence's cache is contiguous. */
    for (int i = 0; i < n_blocks; i++) p->free_ids[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    return BRISK_OK;
}

void brisk_kv_pool_free(brisk_kv_pool *p) {
    free(p->free_ids);
    free(p->refs);
    memset(p, 0, sizeof *p);
}

int32_t brisk_kv_alloc(brisk_kv_pool *p) {
    if (p->n_free == 0) return -1;
    int32_t id = p->free_ids[--p->n_free];
    BRISK_ASSERT(p->refs[id] == 0);
    p->refs[id] = 1;
    return id;
}

void brisk_kv_ref(brisk_kv_pool *p, int32_t id) {
    BRISK_ASSERT(id >= 0 && id < p->n_blocks && p->refs[id] > 0);
    p->refs[id]++;
}

void brisk_kv_unref(brisk_kv_pool *p, int32_t id) {
    BRISK_ASSERT(id >= 0 && id < p->n_blocks && p->refs[id] > 0);
    if (--p->refs[id] == 0) p->free_ids[p->n_free++] = id;
}
