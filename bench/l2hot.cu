/* bench/l2hot.cu: what it costs every block of a launch to read the same activation vector from L2
 * at once (the v7 GEMV's staging of x: 132 blocks x 16 KB, just written by the kernel before),
 * against reading one of R replicas, and against one bulk copy per block. A writer kernel stores
 * the replicas, then the reader's blocks each time their own load: globaltimer at entry, and once
 * the block has its sum. Microseconds per block, averaged over blocks and 400 rounds. Measuring
 * aid, not part of the build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o l2hot
 * bench/l2hot.cu && ./l2hot */
#include "../src/backend/cuda/cuda_ptx.cuh"

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#define K 4096 /* floats: the 8B hidden size */

__device__ __forceinline__ unsigned long long gtime() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void k_write(float *x, int R, int step) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < K * R; i += gridDim.x * blockDim.x)
        x[i] = (float)((i + step) % 97);
}

/* mode 0: each thread loads K / (4 * blockDim) float4, then a block sum; mode 1: thread 0 issues
 * one bulk copy of the 16 KB into shared memory and the block waits on its mbarrier */
__global__ void k_read(const float *x, int R, int mode, unsigned long long *ns, float *out) {
    __shared__ __align__(128) float sm[K];
    __shared__ __align__(8) uint64_t bar;
    __shared__ float red[32];
    const unsigned long long t0 = gtime();
    const float *src = x + (size_t)(blockIdx.x % R) * K;
    float s = 0.f;
    if (mode == 0) {
        float4 v[8];
        const int n = K / 4 / blockDim.x;
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < n) v[u] = __ldg((const float4 *)src + threadIdx.x + u * blockDim.x);
#pragma unroll
        for (int u = 0; u < 8; u++)
            if (u < n) s += v[u].x + v[u].y + v[u].z + v[u].w;
    } else {
        if (threadIdx.x == 0) {
            mbar_init(&bar, 1);
            mbar_init_fence();
        }
        __syncthreads();
        /* inline: cuda_ptx.cuh's bulk_copy carries an evict-first hint, and x is read by all */
        if (threadIdx.x == 0) {
            mbar_expect(&bar, K * 4);
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
                         "[%1], %2, [%3];" ::"r"(smem_addr(sm)),
                         "l"(src), "r"(K * 4), "r"(smem_addr(&bar))
                         : "memory");
        }
        mbar_wait(&bar, 0);
        for (int i = threadIdx.x; i < K; i += blockDim.x) s += sm[i];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.f;
        for (int w = 0; w < (int)blockDim.x / 32; w++) t += red[w];
        out[blockIdx.x] = t;
        atomicAdd(ns, gtime() - t0);
    }
}

int main(void) {
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    float *x, *out;
    unsigned long long *ns;
    cudaMalloc(&x, sizeof(float) * K * 256);
    cudaMalloc(&out, sizeof(float) * 1024);
    cudaMalloc(&ns, sizeof *ns);
    const int reps[] = {1, 2, 4, 8, 16, 132};
    for (int mode = 0; mode < 2; mode++)
        for (int threads = 256; threads <= 512; threads *= 2) {
            if (mode == 1 && threads == 512) continue;
            for (int ri = 0; ri < 6; ri++) {
                const int R = reps[ri];
                unsigned long long h = 0;
                for (int it = 0; it < 450; it++) {
                    if (it == 50) cudaMemset(ns, 0, sizeof *ns); /* the first 50 warm up */
                    k_write<<<sms, 256>>>(x, R, it);
                    k_read<<<sms, threads>>>(x, R, mode, ns, out);
                }
                cudaMemcpy(&h, ns, sizeof h, cudaMemcpyDeviceToHost);
                printf("%s, %3d threads, %3d replicas: %.2f us a block\n",
                       mode ? "bulk copy" : "loads    ", threads, R, h / 400.0 / sms / 1e3);
            }
        }
    const cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        fprintf(stderr, "l2hot: %s\n", cudaGetErrorString(e));
        return 1;
    }
    return 0;
}
