/* cuda_desc.h: the plain descriptors of the CUDA backend that the CPU emulator
 * (tests/ops/cuda_emu) compiles too, so that both build from one copy: the device weight and
 * matmul descriptors, the batched GEMV's scratch, the mma layout's (scale, bias) index and the
 * timeline's slot fields. The includer provides __host__/__device__/__forceinline__
 * (cuda_runtime.h, or emu_cuda.h). */
#ifndef BRISK_CUDA_DESC_H
#define BRISK_CUDA_DESC_H

#include <stddef.h>
#include <stdint.h>

/* Device copy of one weight matrix [rows, cols].
 *
 * Dense (F32/F16/BF16): the file's row-major elements, unchanged.
 *
 * QAFFINE: codes keep MLX's little-endian bit stream per row (row_bytes = cols*bits/8), and
 * `sb` holds the group's (scale, bias) as one interleaved pair [rows][cols/gs] in the file's
 * scale type (so one 4-byte load per group for f16/bf16). When `fast` (bits 4 or 8, row_bytes a
 * multiple of 16) the 32-bit words of each full 512-byte chunk of a row are permuted so that a
 * warp reads a chunk with one 16-byte load per lane and lane l's uint4 holds the original words
 * l, l+32, l+64, l+96: stored word 4*l+j <- original word 32*j+l. Then a lane's four words cover
 * columns 32 bytes of x apart from its neighbours', so x loads coalesce too. A partial last
 * chunk (row_bytes % 512) stays in file order and lane l reads words 4l..4l+3.
 * fast == 2 ("mma", 4-bit, cols % 64 == 0, gs a power of two >= 64; the default for those unless
 * BRISK_CUDA_GEMV=2/3 picks an older kernel): 16-row x 64-column tiles of 512 bytes in the
 * m16n8k16 A-fragment order (cuda_gemv.cu, k_gemv_mma), rows padded to a multiple of 16, the tiles
 * of a row band contiguous ([tile][chunk]). Its (scale, bias) pairs are tile-major too:
 * [tile][group][8][2] = rows g and g+8 of the tile side by side (mma_sb_index), so the pairs a lane
 * needs for a chunk are one 8-byte load and a tile's slice of K is one contiguous copy. */
typedef struct cu_weight {
    int type;  /* brisk_wtype */
    int stype; /* scale type (QAFFINE) */
    int bits, gs;
    int fast;
    int64_t rows, cols, row_bytes;
    uint8_t *data;
    void *sb;
} cu_weight;

enum { CU_EPI_STORE = 0, CU_EPI_ADD = 1, CU_EPI_SWIGLU = 2 };

/* One launch of the matrix-vector kernels: up to 3 matrices of the same format and width that
 * read the same x (q, k, v), or 2 matrices combined row by row (SwiGLU: out = silu(m0) * m1). */
typedef struct cu_gemv_mat {
    const cu_weight *w;
    const float *bias; /* device, or NULL */
    float *y;          /* [n, rows] */
    void *yq; /* or NULL: the one-token SwiGLU GEMV (v7) also writes y as half here (cu_gemv_tma) */
} cu_gemv_mat;

/* Byte ranges (a later kernel's weights) a kernel prefetches into L2, split evenly over its blocks;
 * late: only after the kernel's own input is staged. A captured step's one-token GEMV (v7) also
 * gets ctr: the counter its blocks draw tile groups from after their first two (NULL: round-robin;
 * cu_group_plan). */
typedef struct cu_pf {
    const uint8_t *p[4];
    uint32_t bytes[4];
    int n, late;
    unsigned long long *ctr;
} cu_pf;

/* Scratch of the batched GEMV (cuda_gemv_batch.cu), owned by the backend: x prepared as half
 * (cu_gemv_batch_xq_bytes) and its chunk sums (cu_gemv_batch_xs_floats) for K <= max_cols,
 * partial sums of K-split work items (part_cap floats) and their arrival counters (count_cap,
 * zero between launches). */
typedef struct cu_batch_scratch {
    void *xq;
    float *xs, *part;
    size_t part_cap;
    int *count;
    int count_cap;
    int64_t max_cols;
} cu_batch_scratch;

/* Index of the (scale, bias) pair of row r, group grp (of ngroups per row) in the fast == 2
 * layout. */
__host__ __device__ __forceinline__ int64_t mma_sb_index(int64_t r, int64_t grp, int64_t ngroups) {
    return (((r >> 4) * ngroups + grp) * 8 + (r & 7)) * 2 + ((r >> 3) & 1);
}
enum { TL_NPART = 5 }; /* the timeline's points of a block's staging (TL_PART) */
/* Measuring aid (env BRISK_CUDA_TL=1): the timeline of one step's kernels. Each traced launch
 * takes a slot of TL_N counters (cu_tl_take); thread 0 of every block stamps the globaltimer with
 * atomicMax (earliest-of stamps stored inverted), so a slot holds the first and last block's
 * entry, PDL wait release and finish, the last block's x staged, and the shortest and longest
 * time a block took from its own wait release to x staged (and to points on the way: TL_PART). The
 * host clears the slots before every step and prints the last step at destroy. */
enum {
    TL_ENTRY,
    TL_ENTRY_MAX,
    TL_WAIT,
    TL_WAIT_MAX,
    TL_STAGED,
    TL_DONE,
    TL_DONE_MAX,
    TL_SOWN,
    TL_SOWN_MAX,
    /* from a block's own wait release to points of its thread 0's staging (shortest, longest):
     * its first load of x back, its first of the norm's weights (issued before the wait), all its
     * loads back, the norm's scale summed over the warps, its halves stored (before the barrier) */
    TL_PART,
    TL_N = TL_PART + 2 * TL_NPART
};

#endif
