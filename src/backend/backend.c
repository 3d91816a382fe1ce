/* backend.c: what every backend shares: picks and creates an instance by kind (CPU is always
 * present; CUDA comes from backend/cuda/ or its stub) and the stored size of a weight tensor. */
#include "backend/backend.h"
#include "util/error.h"

brisk_status brisk_backend_create(brisk_backend_kind kind, const brisk_backend_init *init,
                                  brisk_backend **out) {
    switch (kind) {
    case BRISK_BACKEND_AUTO:
        if (brisk_backend_cuda_available()) return brisk_backend_cuda_create(init, out);
        return brisk_backend_cpu_create(init, out);
    case BRISK_BACKEND_CUDA:
        return brisk_backend_cuda_create(init, out);
    case BRISK_BACKEND_CPU:
        return brisk_backend_cpu_create(init, out);
    case BRISK_BACKEND_CPU_REF:
        return brisk_backend_ref_create(init, out);
    }
    *out = NULL;
    return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_backend_create: unknown backend kind %d",
                        (int)kind);
}

uint64_t brisk_tensor_bytes(const brisk_tensor *t) {
    switch (t->type) {
    case BRISK_W_F32:
        return (uint64_t)(t->rows * t->cols * 4);
    case BRISK_W_F16:
    case BRISK_W_BF16:
        return (uint64_t)(t->rows * t->cols * 2);
    case BRISK_W_QAFFINE: {
        uint64_t codes = (uint64_t)(t->rows * t->cols * t->bits / 8);
        uint64_t sb =
            (uint64_t)(t->rows * (t->cols / t->group_size)) * (t->stype == BRISK_W_F32 ? 4 : 2);
        return codes + 2 * sb;
    }
    }
    return 0;
}
