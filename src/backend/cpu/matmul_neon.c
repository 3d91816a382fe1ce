/* matmul_neon.c: placeholder for the ARM64 NEON (dotprod) kernels of issue 6: not written yet,
 * so ARM runs the portable "generic" table (cpu_generic.c); this returns NULL. */
#include "backend/cpu/cpu_kernels.h"

const brisk_cpu_isa *brisk_cpu_isa_neon(void) { return NULL; }
