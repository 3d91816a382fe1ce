/* cuda_backend.cu: the CUDA backend's registration: probes the driver and the card. The op
 * kernels themselves are not written yet (issue 7), so the backend reports itself unavailable. */
#include <cuda_runtime.h>

#include <stdio.h>

extern "C" {
#include "backend/backend.h"
#include "util/error.h"
}

static char g_why[256];

extern "C" bool brisk_backend_cuda_available(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "no usable CUDA driver or card (%s: %s)",
                 cudaGetErrorName(err), cudaGetErrorString(err));
        return false;
    }
    if (n == 0) {
        snprintf(g_why, sizeof g_why, "no CUDA card found");
        return false;
    }
    snprintf(g_why, sizeof g_why, "the CUDA kernels are not implemented yet (issue 7)");
    return false;
}

extern "C" const char *brisk_backend_cuda_unavailable(void) {
    if (!g_why[0]) brisk_backend_cuda_available();
    return g_why;
}

extern "C" brisk_status brisk_backend_cuda_create(const brisk_backend_init *init,
                                                  brisk_backend **out) {
    (void)init;
    *out = NULL;
    return brisk_errorf(BRISK_ERR_UNSUPPORTED, "brisk_backend_cuda_create: %s",
                        brisk_backend_cuda_unavailable());
}
