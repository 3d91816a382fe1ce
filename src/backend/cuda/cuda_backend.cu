/* cuda_backend.cu: the CUDA backend's registration: probes the driver and the card. The op
 * kernels themselves are not written yet (issue 7), so the backend reports itself unavailable. */
#include <cuda_runtime.h>

#include <stdio.h>

extern "C" {
#include "backend/backend.h"
}

static char g_why[256];

extern "C" const brisk_backend_ops *brisk_backend_cuda(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "no usable CUDA driver or card (%s: %s)",
                 cudaGetErrorName(err), cudaGetErrorString(err));
        return NULL;
    }
    if (n == 0) {
        snprintf(g_why, sizeof g_why, "no CUDA card found");
        return NULL;
    }
    snprintf(g_why, sizeof g_why, "the CUDA kernels are not implemented yet (issue 7)");
    return NULL;
}

extern "C" const char *brisk_backend_cuda_unavailable(void) {
    if (!g_why[0]) brisk_backend_cuda();
    return g_why;
}
