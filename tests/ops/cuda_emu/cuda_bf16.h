/* cuda_bf16.h (emulated): the kernels run here decode bf16 from its bits (cuda_mma.cuh,
 * bf16_bits); the type only for declarations. */
#ifndef BRISK_EMU_CUDA_BF16_H
#define BRISK_EMU_CUDA_BF16_H

#include "emu_cuda.h"

struct __nv_bfloat16 {
    unsigned short x;
};

#endif
