/* bench/bench_cuda.h: what the single-file CUDA measuring aids in bench/ share (readbw.cu,
 * megastep.cu): CK(call) prints the file, line and CUDA error of a failed runtime call and exits.
 */
#ifndef BRISK_BENCH_CUDA_H
#define BRISK_BENCH_CUDA_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
