/* cuda_ops.cu: the non-matmul kernels: embedding rows, RMSNorm, RoPE fused with the KV store,
 * and element-wise ops (attention lives in cuda_attn.cu). Index arrays (positions, slots) are read
 * from device memory so a captured decode graph stays valid from step to step. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

extern "C" {
#include "backend/backend.h"
}

cudaError_t cu_smem_optin(const void *k, size_t smem) {
    static const void *kern[64];
    static size_t size[64];
    int i = 0;
    while (i < 64 && kern[i] && kern[i] != k) i++;
    if (i < 64 && kern[i] == k && size[i] >= smem) return cudaSuccess;
    const cudaError_t e =
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e == cudaSuccess && i < 64) kern[i] = k, size[i] = smem; /* a full table: set every time */
    return e;
}

static unsigned blocks_for(size_t n, int threads) {
    return (unsigned)((n + threads - 1) / threads);
}

/* ---------------------------------------------------------------------------------------------
 * Embedding: the generic dequantizer of cuda_gemv.cu is not visible here, so rows are read with
 * a small local copy of its logic (both layouts).
 * ------------------------------------------------------------------------------------------- */

struct emb_desc {
    const uint8_t *data;
    const void *sb;
    int64_t rows, cols, row_bytes;
    int type, stype, bits, gs, fast;
};

__device__ __forceinline__ float load_half_bits(uint32_t h, int type) {
    return type == BRISK_W_BF16 ? __uint_as_float(h << 16)
                                : __half2float(__ushort_as_half((unsigned short)h));
}

/* An id outside the table (a chosen id of -1, NaN logits, fed to the next pipelined step, which
 * is dropped when the step before it is collected) reads row 0: nothing out of bounds. */
__global__ void k_embed(const emb_desc w, const int32_t *ids, float *out) {
    pdl_launch();
    pdl_wait();
    int64_t r = ids[blockIdx.x];
    if (r < 0 || r >= w.rows) r = 0;
    const uint8_t *row = w.data + r * w.row_bytes;
    float *o = out + (int64_t)blockIdx.x * w.cols;
    for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < w.cols;
         c += (int64_t)gridDim.y * blockDim.x) {
        float v;
        if (w.type == BRISK_W_F32)
            v = ((const float *)row)[c];
        else if (w.type != BRISK_W_QAFFINE)
            v = load_half_bits(((const uint16_t *)row)[c], w.type);
        else {
            uint32_t q;
            if (w.fast == 2) {
                const int64_t T = r >> 4, ch = c >> 6, nch = w.cols >> 6;
                const int rr = (int)(r & 15), cc = (int)(c & 63);
                const int lane = 4 * (rr & 7) + (cc >> 4), s = (cc & 15) >> 2, e = cc & 3;
                const uint32_t wd =
                    ((const uint32_t *)w.data)[((T * nch + ch) * 32 + lane) * 4 + s];
                q = (wd >> (4 * ((e & 1) * 4 + (e >> 1) * 2 + (rr >> 3)))) & 15u;
            } else if (w.fast) {
                const int cpw = 32 / w.bits;
                const int64_t wi = c / cpw, nfull = w.row_bytes / 512;
                int64_t p = wi;
                if (wi < nfull * 128) {
                    const int64_t k = wi % 128;
                    p = wi - k + 4 * (k % 32) + k / 32;
                }
                q = (((const uint32_t *)row)[p] >> ((c % cpw) * w.bits)) & ((1u << w.bits) - 1u);
            } else {
                const int64_t bit = c * w.bits, byte = bit >> 3;
                uint32_t two = row[byte];
                if (byte + 1 < w.row_bytes) two |= (uint32_t)row[byte + 1] << 8;
                q = (two >> (bit & 7)) & ((1u << w.bits) - 1u);
            }
            const int64_t gi = w.fast == 2 ? mma_sb_index(r, c / w.gs, w.cols / w.gs)
                                           : r * (w.cols / w.gs) + c / w.gs;
            float s, b;
            if (w.stype == BRISK_W_F32) {
                const float2 p = ((const float2 *)w.sb)[gi];
                s = p.x, b = p.y;
            } else {
                const uint32_t p = ((const uint32_t *)w.sb)[gi];
                s = load_half_bits(p & 0xffff, w.stype), b = load_half_bits(p >> 16, w.stype);
            }
            v = s * (float)q + b;
        }
        o[c] = v;
    }
}

cudaError_t cu_embed(cudaStream_t st, const cu_weight *E, const int32_t *ids, int n, float *out) {
    emb_desc d = {E->data, E->sb,    E->rows, E->cols, E->row_bytes,
                  E->type, E->stype, E->bits, E->gs,   E->fast};
    /* a row over (cols + 255) / 256 blocks, one column a thread: one block walking a 4096-wide
     * row took ~18 us at the head of every decode step (16 rounds of dependent HBM misses) */
    const unsigned parts = (unsigned)((E->cols + 255) / 256);
    return cu_launch(k_embed, dim3((unsigned)n, parts), 256, 0, st, d, ids, out);
}

/* ---------------------------------------------------------------------------------------------
 * RMSNorm: rows of up to 512 go one warp per row (8 rows per block: per-head q/k norms); wider
 * rows one 1024-thread block per row, so a decode step's single row is not one warp walking 4096
 * values serially (measured: that cost ~20 us per norm). Sum of squares in float32.
 * ------------------------------------------------------------------------------------------- */

__global__ void k_rmsnorm_warp(const float *x, const float *w, int n, int dim, float eps,
                               float *out) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n) return;
    const float *xi = x + (int64_t)row * dim;
    float ss = 0.f;
    for (int j = lane; j < dim; j += 32) ss = fmaf(xi[j], xi[j], ss);
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / dim + eps);
    float *oi = out + (int64_t)row * dim;
    for (int j = lane; j < dim; j += 32) oi[j] = w[j] * (xi[j] * inv);
}

__global__ void __launch_bounds__(1024)
    k_rmsnorm_block(const float *x, const float *w, int dim, float eps, float *out) {
    pdl_launch();
    pdl_wait();
    __shared__ float part[32];
    const float *xi = x + (int64_t)blockIdx.x * dim;
    float ss = 0.f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss = fmaf(xi[j], xi[j], ss);
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.f;
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    const float inv = rsqrtf(part[0] / dim + eps);
    float *oi = out + (int64_t)blockIdx.x * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) oi[j] = w[j] * (xi[j] * inv);
}

cudaError_t cu_rmsnorm(cudaStream_t st, const float *x, const float *w, int n, int dim, float eps,
                       float *out) {
    if (dim <= 512)
        return cu_launch(k_rmsnorm_warp, blocks_for(n, 8), 256, 0, st, x, w, n, dim, eps, out);
    return cu_launch(k_rmsnorm_block, n, 1024, 0, st, x, w, dim, eps, out);
}

/* ---------------------------------------------------------------------------------------------
 * RoPE (rotate_half pairs, angle pos * inv_freq in float32 as transformers does) of q and k, and
 * the float16 KV store of k (rotated) and v. One block per token.
 * ------------------------------------------------------------------------------------------- */

__global__ void k_rope_store(float *q, int nh, float *k, int nkv, const float *v,
                             const int32_t *pos, int hd, const float *inv_freq, __half *kc,
                             __half *vc, const int32_t *slot) {
    pdl_launch();
    pdl_wait();
    const int i = blockIdx.x, half = hd / 2;
    const float p = (float)pos[i];
    const int pairs = (nh + nkv) * half;
    const int t0 = blockIdx.y * blockDim.x, tstep = gridDim.y * blockDim.x;
    for (int e = t0 + threadIdx.x; e < pairs; e += tstep) {
        const int h = e / half, j = e % half;
        float *base =
            h < nh ? q + ((int64_t)i * nh + h) * hd : k + ((int64_t)i * nkv + h - nh) * hd;
        float sn, cs;
        sincosf(p * inv_freq[j], &sn, &cs);
        const float a = base[j], b = base[j + half];
        const float ra = a * cs - b * sn, rb = b * cs + a * sn;
        base[j] = ra, base[j + half] = rb;
        if (kc && h >= nh) {
            __half *kd = kc + (int64_t)slot[i] * nkv * hd + (h - nh) * hd;
            kd[j] = __float2half_rn(ra), kd[j + half] = __float2half_rn(rb);
        }
    }
    if (vc) {
        const int kvd = nkv * hd;
        for (int e = t0 + threadIdx.x; e < kvd; e += tstep)
            vc[(int64_t)slot[i] * kvd + e] = __float2half_rn(v[(int64_t)i * kvd + e]);
    }
}

cudaError_t cu_rope_store(cudaStream_t st, float *q, int n_head, float *k, int n_head_kv,
                          const float *v, const int32_t *pos, int n, int head_dim,
                          const float *inv_freq, void *kc, void *vc, const int32_t *slot) {
    /* a token's pairs (and v row) spread over several 128-thread blocks: one block of 2,560
     * sincosf per token was 12.7 us of a 8B decode layer */
    const int work = (n_head + n_head_kv) * head_dim / 2;
    const int vw = v ? n_head_kv * head_dim : 0;
    int by = ((work > vw ? work : vw) + 127) / 128;
    if (by > 64) by = 64;
    return cu_launch(k_rope_store, dim3(n, by), 128, 0, st, q, n_head, k, n_head_kv, v, pos,
                     head_dim, inv_freq, (__half *)kc, (__half *)vc, slot);
}

__global__ void k_kv_store(__half *kc, __half *vc, const float *k, const float *v,
                           const int32_t *slot, int kv_dim) {
    pdl_launch();
    pdl_wait();
    const int i = blockIdx.x;
    for (int e = threadIdx.x; e < kv_dim; e += blockDim.x) {
        kc[(int64_t)slot[i] * kv_dim + e] = __float2half_rn(k[(int64_t)i * kv_dim + e]);
        vc[(int64_t)slot[i] * kv_dim + e] = __float2half_rn(v[(int64_t)i * kv_dim + e]);
    }
}

cudaError_t cu_kv_store(cudaStream_t st, void *kc, void *vc, const float *k, const float *v,
                        const int32_t *slot, int n, int kv_dim) {
    return cu_launch(k_kv_store, n, 256, 0, st, (__half *)kc, (__half *)vc, k, v, slot, kv_dim);
}

/* ---------------------------------------------------------------------------------------------
 * Element-wise
 * ------------------------------------------------------------------------------------------- */

__global__ void k_swiglu(const float *g, const float *u, size_t n, float *out) {
    pdl_launch();
    pdl_wait();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float x = g[i];
        out[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

cudaError_t cu_swiglu(cudaStream_t st, const float *g, const float *u, size_t n, float *out) {
    return cu_launch(k_swiglu, blocks_for(n, 256), 256, 0, st, g, u, n, out);
}

__global__ void k_add(float *x, const float *y, size_t n) {
    pdl_launch();
    pdl_wait();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

cudaError_t cu_add(cudaStream_t st, float *x, const float *y, size_t n) {
    return cu_launch(k_add, blocks_for(n, 256), 256, 0, st, x, y, n);
}

__global__ void k_fill_bias(float *y, const float *bias, int n, int rows) {
    pdl_launch();
    pdl_wait();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)n * rows) y[i] = bias ? bias[i % rows] : 0.f;
}

cudaError_t cu_add_bias(cudaStream_t st, float *y, const float *bias, int n, int rows) {
    return cu_launch(k_fill_bias, blocks_for((size_t)n * rows, 256), 256, 0, st, y, bias, n, rows);
}

#define GR_MAX 16
struct rows_arg {
    int32_t r[GR_MAX];
};

__global__ void k_get_rows(const float *src, rows_arg rows, int dim, float *dst) {
    pdl_launch();
    pdl_wait();
    const float *s = src + (int64_t)rows.r[blockIdx.x] * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) dst[(int64_t)blockIdx.x * dim + j] = s[j];
}

/* rows is a host array: its values travel as a kernel argument (n <= 16 per launch), so a
 * captured graph replays them; the decode step always gathers row 0. src and dst must not overlap
 * (the forward gathers x into another buffer). */
cudaError_t cu_get_rows(cudaStream_t st, const float *src, const int32_t *rows, int n, int dim,
                        float *dst) {
    for (int r0 = 0; r0 < n; r0 += GR_MAX) {
        rows_arg ra;
        const int nr = n - r0 < GR_MAX ? n - r0 : GR_MAX;
        for (int i = 0; i < nr; i++) ra.r[i] = rows[r0 + i];
        cudaError_t e =
            cu_launch(k_get_rows, nr, 256, 0, st, src, ra, dim, dst + (int64_t)r0 * dim);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

__global__ void k_to_half(const float *x, size_t n, __half *h, __nv_bfloat16 *b) {
    pdl_launch();
    pdl_wait();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (h)
        h[i] = __float2half_rn(x[i]);
    else
        b[i] = __float2bfloat16_rn(x[i]);
}

cudaError_t cu_f32_to_half(cudaStream_t st, const float *x, size_t n, void *dst, int bf16) {
    return cu_launch(k_to_half, blocks_for(n, 256), 256, 0, st, x, n,
                     bf16 ? nullptr : (__half *)dst, bf16 ? (__nv_bfloat16 *)dst : nullptr);
}
