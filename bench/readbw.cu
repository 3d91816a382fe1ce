/* bench/readbw.cu: what a pure streaming read achieves on this card for the sizes of one decode
 * layer's matrices, alone and as a chain of kernels (the shape of a decode step), so the GEMV
 * kernels have a measured ceiling rather than the copy bandwidth. Not part of the build:
 *   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o readbw bench/readbw.cu && ./readbw
 * Prints, per size and launch shape, the time per kernel and the bytes/s, then the chains. */
#include "bench_cuda.h"

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__device__ __forceinline__ void pdl_launch() {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
__device__ __forceinline__ void pdl_wait() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

/* Each thread reads U uint4 per round, grid-stride; PDL: loads issued before the wait. */
template <int U> __global__ void k_read(const uint4 *__restrict__ p, size_t n, unsigned *out) {
    pdl_launch();
    unsigned acc = 0;
    const size_t stride = (size_t)gridDim.x * blockDim.x * U;
    bool waited = false;
    for (size_t i = (size_t)blockIdx.x * blockDim.x * U + threadIdx.x; i < n; i += stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const size_t j = i + (size_t)u * blockDim.x;
            v[u] = j < n ? __ldg(p + j) : make_uint4(0, 0, 0, 0);
        }
        if (!waited) {
            pdl_wait();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < U; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (!waited) pdl_wait();
    if (acc == 0x12345678u) out[0] = acc;
}

/* The v6 GEMV's pattern without its math: a block bulk-copies its own `per` bytes (in stages of
 * 4 KB on one mbarrier each) into shared memory, waits for them, reads them, exits. */
__device__ __forceinline__ uint32_t saddr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
__global__ void k_tma_slice(const uint8_t *src, int per, unsigned *out) {
    extern __shared__ __align__(128) uint8_t sm[];
    uint64_t *bar = (uint64_t *)(sm + per);
    const int nst = per / 4096;
    pdl_launch();
    if (threadIdx.x == 0) {
        for (int s = 0; s < nst; s++)
            asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(saddr(&bar[s])));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        for (int s = 0; s < nst; s++) {
            asm volatile(
                "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(saddr(&bar[s])),
                "r"(4096)
                : "memory");
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
                         "[%1], %2, [%3];" ::"r"(saddr(sm + s * 4096)),
                         "l"(src + (size_t)blockIdx.x * per + s * 4096), "r"(4096),
                         "r"(saddr(&bar[s]))
                         : "memory");
        }
    }
    __syncthreads();
    pdl_wait();
    unsigned acc = 0;
    for (int s = 0; s < nst; s++) {
        uint32_t done;
        do {
            asm volatile(
                "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n"
                " selp.u32 %0, 1, 0, p;\n}\n"
                : "=r"(done)
                : "r"(saddr(&bar[s]))
                : "memory");
        } while (!done);
        const uint4 v = ((const uint4 *)(sm + s * 4096))[threadIdx.x & 255];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) out[0] = acc;
}

typedef void (*kfn)(const uint4 *, size_t, unsigned *);

static void launch(kfn k, int grid, int block, cudaStream_t st, const uint4 *p, size_t n,
                   unsigned *out, int pdl) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at, cfg.numAttrs = pdl;
    CK(cudaLaunchKernelEx(&cfg, k, p, n, out));
}

int main(void) {
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const size_t total = (size_t)1 << 30;
    uint4 *buf;
    unsigned *out;
    CK(cudaMalloc(&buf, total));
    CK(cudaMalloc(&out, 64));
    CK(cudaMemset(buf, 1, total));
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    /* one 8B decode layer's matrices (codes + scales, MB) and the 1B's */
    const double sizes_mb[] = {9.5, 14.2, 33.1, 66.1, 2.2, 3.3, 8.4, 16.8, 1024};
    kfn ks[] = {k_read<1>, k_read<2>, k_read<4>, k_read<8>};
    const int us[] = {1, 2, 4, 8};
    printf(
        "single kernels, 200 back-to-back launches with PDL (rotating over 1 GB so L2 misses)\n");
    for (double mb : sizes_mb) {
        const size_t bytes = (size_t)(mb * 1e6) & ~(size_t)15, n = bytes / 16;
        const int rot = (int)(total / bytes) < 1 ? 1 : (int)(total / bytes);
        double best = 0;
        char bestcfg[64] = "";
        for (int ki = 0; ki < 4; ki++)
            for (int bps : {1, 2, 4, 8})
                for (int threads : {256, 512}) {
                    const int grid = sms * bps;
                    if (bps * threads > 2048) continue;
                    for (int w = 0; w < 3; w++) launch(ks[ki], grid, threads, st, buf, n, out, 1);
                    CK(cudaEventRecord(e0, st));
                    for (int i = 0; i < 200; i++)
                        launch(ks[ki], grid, threads, st, buf + (size_t)(i % rot) * n, n, out, 1);
                    CK(cudaEventRecord(e1, st));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    const double us_per = ms * 1e3 / 200, tbs = bytes / (us_per * 1e-6) / 1e12;
                    if (tbs > best) {
                        best = tbs;
                        snprintf(bestcfg, sizeof bestcfg, "U=%d %dx%d: %.2f us", us[ki], bps,
                                 threads, us_per);
                    }
                }
        printf("  %7.1f MB: best %.2f TB/s (%s)\n", mb, best, bestcfg);
    }
    printf("bulk-copy slices (the v6 GEMV's loads alone), 200 launches, 128 threads\n");
    for (double mb : {9.5, 33.1, 66.1}) {
        for (int per : {8192, 16384, 32768}) {
            const size_t bytes = (size_t)(mb * 1e6) / per * per;
            const int blocks = (int)(bytes / per), rot = (int)(total / bytes);
            const int smem = per + 64 * 8;
            CK(cudaFuncSetAttribute(k_tma_slice, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    smem));
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = blocks, cfg.blockDim = 128, cfg.dynamicSmemBytes = smem, cfg.stream = st;
            cudaLaunchAttribute at[1];
            at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
            at[0].val.programmaticStreamSerializationAllowed = 1;
            cfg.attrs = at, cfg.numAttrs = 1;
            for (int w = 0; w < 3; w++)
                CK(cudaLaunchKernelEx(&cfg, k_tma_slice, (const uint8_t *)buf, per, out));
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < 200; i++)
                CK(cudaLaunchKernelEx(&cfg, k_tma_slice,
                                      (const uint8_t *)buf + (size_t)(i % rot) * bytes, per, out));
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            const double us_per = ms * 1e3 / 200;
            printf("  %6.1f MB in %d blocks of %d KB: %.2f us = %.2f TB/s\n", mb, blocks,
                   per / 1024, us_per, bytes / (us_per * 1e-6) / 1e12);
        }
    }
    /* chains: the 8B layer (qkv, o, gate+up, down) x 32 and the 1B layer x 16, as one graph,
     * U=4 2x512 launches, so the gaps between kernels count */
    const double l8[] = {14.2, 9.5, 66.1, 33.1}, l1[] = {3.3, 2.2, 16.8, 8.4};
    const double *ls[] = {l8, l1};
    const int nl[] = {32, 16};
    const char *names[] = {"8B layer x32", "1B layer x16"};
    for (int c = 0; c < 2; c++)
        for (int bps : {1, 2, 4}) {
            cudaGraph_t g;
            cudaGraphExec_t ex;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
            size_t off = 0, sum = 0;
            for (int l = 0; l < nl[c]; l++)
                for (int m = 0; m < 4; m++) {
                    const size_t bytes = (size_t)(ls[c][m] * 1e6) & ~(size_t)15;
                    if (off + bytes > total) off = 0;
                    launch(k_read<4>, sms * bps, 2048 / bps / 2 > 512 ? 512 : 2048 / bps / 2, st,
                           buf + off / 16, bytes / 16, out, 1);
                    off += bytes, sum += bytes;
                }
            CK(cudaStreamEndCapture(st, &g));
            CK(cudaGraphInstantiate(&ex, g, 0));
            for (int w = 0; w < 3; w++) CK(cudaGraphLaunch(ex, st));
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < 20; i++) CK(cudaGraphLaunch(ex, st));
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            const double us_per = ms * 1e3 / 20;
            printf("chain %s (%d kernels, %.1f MB, %d blocks/SM): %.1f us = %.2f TB/s\n", names[c],
                   4 * nl[c], sum / 1e6, bps, us_per, sum / (us_per * 1e-6) / 1e12);
            CK(cudaGraphExecDestroy(ex));
            CK(cudaGraphDestroy(g));
        }
    return 0;
}
