/* bench/stepgap.cu: what the copies between two decode steps cost on the card's timeline. A "step"
 * is a captured graph of one small kernel; each variant queues 2,000 steps on one stream with the
 * copies a step used to carry (the index upload, the fed-token copy, the chosen rows' copy to the
 * host) and reports microseconds per step beyond the kernel's 20 us of spinning. Measuring aid, not
 * part of the build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o stepgap bench/stepgap.cu &&
 * ./stepgap */
#include <cuda_runtime.h>
#include <stdio.h>

/* ~20 us of spinning, so the host's submissions stay ahead and the card's own gaps show */
__global__ void k_step(int *tok, int *out, int *host) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    while (t - t0 < 20000);
    if (threadIdx.x == 0) {
        const int v = tok[0] + 1;
        out[0] = v;
        if (host) host[0] = v;
    }
}

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                               \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void) {
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    int *d, *h, *hm, *dm;
    CK(cudaMalloc(&d, 1 << 20));
    CK(cudaMallocHost(&h, 1 << 20));
    CK(cudaHostAlloc(&hm, 4096, cudaHostAllocMapped));
    CK(cudaHostGetDevicePointer(&dm, hm, 0));
    cudaGraphExec_t g[2];
    for (int m = 0; m < 2; m++) {
        cudaGraph_t gr;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        k_step<<<1, 32, 0, st>>>(d, d + 64, m ? dm : nullptr);
        CK(cudaStreamEndCapture(st, &gr));
        CK(cudaGraphInstantiate(&g[m], gr, 0));
        cudaGraphDestroy(gr);
    }
    const char *names[] = {"graph only",
                           "upload 1 KB + graph",
                           "graph + rows to host (D2H 1 KB)",
                           "upload + fed copy (D2D 4 B) + graph + D2H (round 13's step)",
                           "upload + graph writing mapped memory (this round's step)",
                           "graph writing mapped memory"};
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int v = 0; v < 6; v++) {
        for (int rep = 0; rep < 2; rep++) { /* the first round warms up */
            const int n = 2000;
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < n; i++) {
                if (v == 1 || v == 3 || v == 4)
                    CK(cudaMemcpyAsync(d + 1024, h, 1024, cudaMemcpyHostToDevice, st));
                if (v == 3) CK(cudaMemcpyAsync(d, d + 64, 4, cudaMemcpyDeviceToDevice, st));
                CK(cudaGraphLaunch(g[v >= 4], st));
                if (v == 2 || v == 3)
                    CK(cudaMemcpyAsync(h + 4096, d + 64, 1024, cudaMemcpyDeviceToHost, st));
            }
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            float ms = 0;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (rep) printf("%-62s %7.2f us a step\n", names[v], ms * 1e3 / n - 20.0);
        }
    }
    return 0;
}
