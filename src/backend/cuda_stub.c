/* cuda_stub.c: the CUDA backend's entry points when brisk is built without CUDA. Linking this
 * file instead of src/backend/cuda/ keeps every other file free of CUDA #ifdefs. */
#include "backend/backend.h"
#include "util/error.h"

bool brisk_backend_cuda_available(void) {
    return false;
}

const char *brisk_backend_cuda_unavailable(void) {
    return "brisk was built without CUDA (nvcc was not found at configure time)";
}

brisk_status brisk_backend_cuda_create(const brisk_backend_init *init, brisk_backend **out) {
    (void)init;
    *out = NULL;
    return brisk_errorf(BRISK_ERR_UNSUPPORTED, "brisk_backend_cuda_create: %s",
                        brisk_backend_cuda_unavailable());
}
