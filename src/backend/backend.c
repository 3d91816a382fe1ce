/* backend.c: picks and creates a backend instance by kind. CPU is always present; CUDA comes from
 * backend/cuda/ or its stub. */
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
