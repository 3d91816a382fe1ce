/* cpu_backend.h: the fast CPU backend's shared state (thread pool, chosen ISA table, per-thread
 * and activation scratch) and its constructor with an explicit ISA for the op tests. */
#ifndef BRISK_CPU_BACKEND_H
#define BRISK_CPU_BACKEND_H

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/pool.h"

/* One thread's contiguous share of a decode matmul's rows: its owner takes chunks from the front,
 * and a thread that has finished its own takes chunks from the same front (cache-line sized so
 * the owners do not share a line). */
typedef struct brisk_cpu_cursor {
    _Alignas(64) atomic_int_fast64_t next;
    int64_t end;
} brisk_cpu_cursor;

typedef struct brisk_cpu_state {
    brisk_pool *pool;
    int nth;
    const brisk_cpu_isa *isa;
    brisk_cpu_scratch *scr; /* [nth] */
    brisk_qact qa;          /* activations of one matmul, [max_tokens, max_cols] */
    int max_tokens, max_ctx;
    int64_t max_cols;
    float *tmp; /* [tmp_cap]: the fused ops' second output (see brisk_backend_cpu_create) */
    int64_t tmp_cap;
    struct brisk_cpu_cursor *cur; /* [nth]: the decode matmul's per-thread row ranges */
    char name[32];                /* "cpu-avx2" ... */
    brisk_backend_ops ops;        /* CPU_OPS under that name */
} brisk_cpu_state;

/* Creates the CPU backend on the named ISA ("avx512", "avx2", "neon", "generic"); NULL picks the
 * best this CPU has (or the BRISK_CPU_ISA environment variable, when set). Fails with
 * BRISK_ERR_UNSUPPORTED when the CPU or the build lacks that ISA. */
brisk_status brisk_backend_cpu_create_isa(const brisk_backend_init *init, const char *isa,
                                          brisk_backend **out);
/* The ISAs usable here, best first, comma separated (static string). */
const char *brisk_cpu_isas_available(void);

/* The elementwise ops and attention (cpu_ops.c), threaded over the state's pool. */
void brisk_cpu_embed(brisk_backend *be, const brisk_tensor *E, const int32_t *ids, int n,
                     float *out);
void brisk_cpu_rmsnorm(brisk_backend *be, const float *x, const float *w, int n, int dim, float eps,
                       float *out);
void brisk_cpu_rope(brisk_backend *be, float *x, const int32_t *pos, int n, int n_heads,
                    int head_dim, const float *inv_freq);
void brisk_cpu_kv_store(brisk_backend *be, void *kcache, void *vcache, const float *k,
                        const float *v, const int32_t *slot, int n, int kv_dim);
void brisk_cpu_attention(brisk_backend *be, const float *q, const void *kcache, const void *vcache,
                         const brisk_attn_batch *b, int n_head, int n_head_kv, int head_dim,
                         float *out);
void brisk_cpu_swiglu(brisk_backend *be, const float *gate, const float *up, size_t n, float *out);
void brisk_cpu_add(brisk_backend *be, float *x, const float *y, size_t n);
void brisk_cpu_get_rows(brisk_backend *be, const float *src, const int32_t *rows, int n, int dim,
                        float *dst);

#endif
