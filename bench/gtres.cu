/* bench/gtres.cu: the resolution of %globaltimer on this card, which the timeline
 * (BRISK_CUDA_TL) and the attention trace stamp. If it moves in steps of ~1 us, a span between
 * two stamps is right on average but the shortest and longest over a launch's blocks are widened
 * by up to a step each. One thread per block reads the timer until it has changed 256 times and
 * reports the smallest, largest and mean step, and the SM cycles per step (clock64). Measuring
 * aid, not part of the build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o gtres
 * bench/gtres.cu && ./gtres */
#include <cuda_runtime.h>
#include <stdio.h>

__device__ __forceinline__ unsigned long long gtime() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void k_res(unsigned long long *out) {
    if (threadIdx.x != 0) return;
    unsigned long long prev = gtime(), first = prev, mind = ~0ull, maxd = 0;
    const long long c0 = clock64();
    int n = 0;
    for (long i = 0; i < 50000000 && n < 256; i++) {
        const unsigned long long t = gtime();
        if (t != prev) {
            const unsigned long long d = t - prev;
            mind = d < mind ? d : mind, maxd = d > maxd ? d : maxd;
            prev = t, n++;
        }
    }
    const long long c1 = clock64();
    /* the cost of one read: 1024 back to back */
    const long long r0 = clock64();
    unsigned long long s = 0;
    for (int i = 0; i < 1024; i++) s += gtime();
    const long long r1 = clock64();
    unsigned long long *o = out + 6 * blockIdx.x;
    o[0] = n, o[1] = mind, o[2] = maxd, o[3] = n ? (prev - first) / n : 0;
    o[4] = n ? (unsigned long long)(c1 - c0) / n : 0, o[5] = (unsigned long long)(r1 - r0) / 1024;
    if (s == 0) o[0] = 0; /* keeps the reads */
}

int main(void) {
    const int B = 4;
    unsigned long long *d, h[6 * B];
    cudaMalloc(&d, sizeof h);
    k_res<<<B, 32>>>(d);
    if (cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        fprintf(stderr, "gtres: %s\n", cudaGetErrorString(cudaGetLastError()));
        return 1;
    }
    for (int b = 0; b < B; b++)
        printf("block %d: %llu changes, step ns min %llu max %llu mean %llu, cycles/step %llu, "
               "cycles/read %llu\n",
               b, h[6 * b], h[6 * b + 1], h[6 * b + 2], h[6 * b + 3], h[6 * b + 4], h[6 * b + 5]);
    return 0;
}
