/* cuda_stub.c: the CUDA backend's entry points when brisk is built without CUDA. Linking this
 * file instead of src/backend/cuda/ keeps every other file free of CUDA #ifdefs. */
#include "backend/backend.h"

#include <stddef.h>

const brisk_backend_ops *brisk_backend_cuda(void) { return NULL; }

const char *brisk_backend_cuda_unavailable(void) {
    return "brisk was built without CUDA (nvcc was not found at configure time)";
}
