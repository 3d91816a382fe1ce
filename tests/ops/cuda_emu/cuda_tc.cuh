/* cuda_tc.cuh (emulated): the cp.async pieces of src/backend/cuda/cuda_tc.cuh that
 * cuda_attn_tail.cuh uses, on the CPU: a 16-byte copy (zeros when !ok) lands at once, so the
 * commit and the wait are no-ops. (ldmatrix and the packing are not emulated.) */
#ifndef BRISK_CUDA_TC_CUH
#define BRISK_CUDA_TC_CUH

#include "emu_cuda.h"

#include <string.h>

static inline void tc_cp16(void *dst, const void *src, bool ok) {
    if (ok)
        memcpy(dst, src, 16);
    else
        memset(dst, 0, 16);
}
static inline void tc_commit() {}
template <int N> static inline void tc_wait() {}

#endif
