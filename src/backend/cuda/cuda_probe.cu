/* cuda_probe.cu: whether this machine has a CUDA driver and card that can run this build's device
 * code (brisk_backend_cuda_available, with the reason when not), and which code of the build the
 * card loads (the backend picks its sm_80 / sm_90 paths by it). */
#include "cuda_internal.h"

#include <stdio.h>

static char g_why[256];

__global__ void k_probe(int *p) {
    if (p) *p = 1;
}

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
    cudaFuncAttributes fa;
    err = cudaFuncGetAttributes(&fa, k_probe);
    if (err != cudaSuccess) {
        cudaDeviceProp p;
        cudaGetDeviceProperties(&p, 0);
        snprintf(g_why, sizeof g_why,
                 "the CUDA card %s (sm_%d%d) cannot run this build's code (built for sm_90a "
                 "and PTX 9.0): %s",
                 p.name, p.major, p.minor, cudaGetErrorString(err));
        cudaGetLastError();
        return false;
    }
    g_why[0] = 0;
    return true;
}

extern "C" const char *brisk_backend_cuda_unavailable(void) {
    if (!g_why[0] && brisk_backend_cuda_available()) return "CUDA is available";
    return g_why;
}

__global__ void k_probe_wgmma(int *p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *p = 1;
#else
    *p = 0;
#endif
}

bool cu_code_wgmma(void) {
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    k_probe_wgmma<<<1, 1>>>(d);
    const bool ok = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(d);
    cudaGetLastError();
    return ok && h == 1;
}

bool cu_code_version(int *binary, int *ptx) {
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, k_probe) != cudaSuccess) {
        cudaGetLastError();
        *binary = *ptx = 0;
        return false;
    }
    *binary = fa.binaryVersion, *ptx = fa.ptxVersion;
    return true;
}
