/* cuda_gemv_pipe.cu: the v5 GEMV (opt-in, BRISK_CUDA_GEMV=5; measured slower than v4, see
 * bench/cuda-notes.md "Round 4"), split from cuda_gemv.cu. */
#include "cuda_mma.cuh"

/* ---------------------------------------------------------------------------------------------
 * v5 GEMV ("pipe"): the v4 tensor-core math on the same mma layout, restructured for bytes in
 * flight. Round 3 measured v4 at 0.9-1.7 TB/s with the instruction count already halved: each
 * warp loaded U chunks, waited a full DRAM latency, computed, and only then loaded again, and
 * blocks of 1-2 tiles ran in 1.9-3.4 waves with tails. Here:
 *  - the grid is persistent (one block of PIPE_W warps per SM) and deals units (a 16-row tile, or
 *    the gate and up tiles of the same rows for SwiGLU) round-robin, so every SM gets the same
 *    work within one unit and there are no waves;
 *  - each warp streams its chunks (chunk c of a unit goes to warp c % PIPE_W) through a private
 *    ring of S stages in shared memory with cp.async: a lane copies its own 16 bytes of codes and
 *    its two (scale, bias) words and later reads back only what it copied, so no barrier is
 *    needed; S - 1 chunks stay in flight per warp across unit boundaries without registers;
 *  - x is converted to half once per block into shared memory (XS; the global-float path stays
 *    for inputs too wide for it), optionally normalised on the way (NORM: RMSNorm of the input
 *    fused, r = rsqrt(mean(x^2) + eps) computed per block from x, deterministic order);
 *  - units end with the v4 cross-warp reduction and epilogue (store + bias, residual add,
 *    SwiGLU).
 * ------------------------------------------------------------------------------------------- */

#define PIPE_W      8
#define PIPE_XS_MAX (64 * 1024) /* bytes of half x a block keeps in shared memory */

struct pipe_args {
    mma_mat_d m[3];
    int nmat, K, gshift, nt;
    int units; /* NM 1: tiles summed over the matrices; NM 2: tiles of one of the pair */
    const float *x;
    const float *nw; /* RMSNorm weight [K] (NORM) */
    float eps;
};

__device__ __forceinline__ void cp_async16(void *smem, const void *g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(g) : "memory");
#else
    *(uint4 *)smem = *(const uint4 *)g;
#endif
}
template <int N> __device__ __forceinline__ void cp_async_small(void *smem, const void *g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(sa), "l"(g), "n"(N)
                 : "memory");
#else
    if constexpr (N == 8)
        *(uint2 *)smem = *(const uint2 *)g;
    else
        *(uint32_t *)smem = *(const uint32_t *)g;
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

template <int ST, int NM> struct pipe_traits {
    typedef typename sb_raw<ST>::T SBT;
    enum {
        NTL = NM == 2 ? 2 : 1,
        S = NM == 2 ? 6 : 12,                                     /* ring stages per warp */
        ITEM = (NM == 2 ? 2 : 1) * (512 + 64 * (int)sizeof(SBT)), /* bytes per stage per warp */
        RING = PIPE_W * S * ITEM,
        RED = PIPE_W * NTL * 4 * 32 * 4, /* cross-warp reduction, bytes */
    };
};

/* Shared memory of one launch (bytes): ring, reduction, norm scales, x sums per (token, chunk),
 * x as half. */
template <int ST, int NM> static size_t pipe_smem(int nt, int K, int xs) {
    typedef pipe_traits<ST, NM> P;
    const size_t xsum = xs ? (size_t)nt * (K / 64) * 4 : 0;
    return (size_t)P::RING + P::RED + 16 * sizeof(float) + ((xsum + 15) & ~(size_t)15) +
           (xs ? (size_t)nt * K * 2 : 0);
}

template <int ST, int NM, int EPI, int NORM, int XS>
__global__ void __launch_bounds__(PIPE_W * 32, 2) k_gemv_pipe(const __grid_constant__ pipe_args a) {
    typedef pipe_traits<ST, NM> P;
    typedef typename P::SBT SBT;
    constexpr int NTL = P::NTL, S = P::S, ITEM = P::ITEM;
    pdl_launch();
    extern __shared__ __align__(16) uint8_t smem[];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int K = a.K, nch = K >> 6, ngroups = K >> a.gshift;
    uint8_t *ring = smem + wid * S * ITEM;
    float *red = (float *)(smem + P::RING); /* [PIPE_W][NTL][4][32] */
    float *rs = red + P::RED / 4;           /* [8] norm scale per token */
    float *xsum = rs + 16;                  /* [nt][nch] sum of the half x of each chunk (XS) */
    __half *xs = (__half *)(xsum + (((XS ? a.nt * nch : 0) + 3) & ~3)); /* [nt][K] (XS) */
    const int cpw = wid < nch ? (nch - 1 - wid) / PIPE_W + 1 : 0; /* this warp's chunks per unit */
    const int my_units =
        (int)blockIdx.x < a.units ? (a.units - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;

    /* Issue state: the next item to copy is chunk wid + ikk * PIPE_W of this block's unit ik;
     * cw/c0/c1 point at its codes and its rows' scale pairs for chunk wid. */
    int ik = 0, ikk = 0;
    const uint8_t *cw[NTL];
    const SBT *c0[NTL], *c1[NTL];
    auto unit_of = [&](int k, int &m, int &tile) {
        int u = (int)blockIdx.x + k * (int)gridDim.x;
        m = 0;
        if constexpr (NM == 1)
            while (m < a.nmat - 1 && u >= a.m[m].tiles) u -= a.m[m++].tiles;
        tile = u;
    };
    auto set_unit = [&](int k) {
        int m, tile;
        unit_of(k < my_units ? k : 0, m, tile);
#pragma unroll
        for (int i = 0; i < NTL; i++) {
            const mma_mat_d &MM = a.m[NM == 2 ? i : m];
            cw[i] = MM.w + ((int64_t)tile * nch + wid) * 512 + lane * 16;
            const int r0 = min(tile * 16 + g, MM.rows - 1),
                      r1 = min(tile * 16 + g + 8, MM.rows - 1);
            c0[i] = (const SBT *)MM.sb + (int64_t)r0 * ngroups;
            c1[i] = (const SBT *)MM.sb + (int64_t)r1 * ngroups;
        }
    };
    set_unit(0);
    int slot_w = 0; /* ring slot of the next issue */
    auto issue = [&]() {
        if (ik < my_units && cpw > 0) {
            uint8_t *st = ring + slot_w * ITEM;
            const int c = wid + ikk * PIPE_W;
            const int grp = (c * 64) >> a.gshift;
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                cp_async16(st + i * 512 + lane * 16, cw[i] + (int64_t)ikk * (PIPE_W * 512));
                SBT *sbs = (SBT *)(st + NTL * 512) + i * 64;
                cp_async_small<sizeof(SBT)>(sbs + lane, c0[i] + grp);
                cp_async_small<sizeof(SBT)>(sbs + 32 + lane, c1[i] + grp);
            }
            if (++ikk == cpw) {
                ikk = 0;
                if (++ik < my_units) set_unit(ik);
            }
        }
        slot_w = slot_w + 1 == S ? 0 : slot_w + 1;
        cp_async_commit(); /* one group per item, empty ones too: the wait counts groups */
    };
#pragma unroll 1
    for (int j = 0; j < S - 1; j++) issue(); /* weights never depend on the previous kernel */
    pdl_wait();

    /* norm scale of each token, then x (normalised) as half in shared memory with its chunk sums */
    if constexpr (NORM) {
#pragma unroll
        for (int tk = 0; tk < 8; tk++) {
            float part = 0.f;
            if (tk < a.nt) {
                const float4 *xr = (const float4 *)(a.x + (int64_t)tk * K);
                for (int i = threadIdx.x; i < (K >> 2); i += PIPE_W * 32) {
                    const float4 v = __ldg(xr + i);
                    part = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, part))));
                }
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
                if (lane == 0) red[wid * 8 + tk] = part;
            }
        }
        __syncthreads();
        if ((int)threadIdx.x < a.nt) {
            float ss = 0.f;
            for (int w = 0; w < PIPE_W; w++) ss += red[w * 8 + threadIdx.x];
            rs[threadIdx.x] = rsqrtf(ss / (float)K + a.eps);
        }
        __syncthreads();
    }
    if constexpr (XS) {
        /* a warp converts whole chunks (64 values: 2 per lane) and sums them as half */
        for (int e = wid; e < a.nt * nch; e += PIPE_W) {
            const int tk = e / nch, c = e - tk * nch;
            const float r = NORM ? rs[tk] : 1.f;
            float2 v = __ldg((const float2 *)(a.x + (int64_t)tk * K + c * 64) + lane);
            if constexpr (NORM) {
                const float2 w = __ldg((const float2 *)(a.nw + c * 64) + lane);
                v.x = v.x * r * w.x, v.y = v.y * r * w.y;
            }
            const __half2 h = __floats2half2_rn(v.x, v.y);
            *(__half2 *)(xs + (int64_t)tk * K + c * 64 + 2 * lane) = h;
            const float2 hf = __half22float2(h);
            float sum = hf.x + hf.y;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            if (lane == 0) xsum[e] = sum;
        }
        __syncthreads();
    }
    const int tok = min(g, a.nt - 1);
    const int tk0 = min(2 * t, a.nt - 1), tk1 = min(2 * t + 1, a.nt - 1); /* C columns */
    const float rtok = NORM && !XS ? rs[tok] : 1.f;

    float acc[NTL][4];
#pragma unroll
    for (int i = 0; i < NTL; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
    int slot_r = 0;
#pragma unroll 1
    for (int k = 0; k < my_units; k++) {
#pragma unroll 1
        for (int kk = 0; kk < cpw; kk++) {
            issue();
            cp_async_wait<S - 1>();
            const uint8_t *st = ring + slot_r * ITEM;
            slot_r = slot_r + 1 == S ? 0 : slot_r + 1;
            uint4 q[NTL];
            SBT s0[NTL], s1[NTL];
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                q[i] = *(const uint4 *)(st + i * 512 + lane * 16);
                s0[i] = ((const SBT *)(st + NTL * 512))[i * 64 + lane];
                s1[i] = ((const SBT *)(st + NTL * 512))[i * 64 + 32 + lane];
            }
            const int c = wid + kk * PIPE_W;
            uint32_t bx0[4], bx1[4];
            float X[4];
            if constexpr (XS) {
                const uint4 *xp = (const uint4 *)(xs + (int64_t)tok * K + c * 64 + 16 * t);
                const uint4 h0 = xp[0], h1 = xp[1];
                bx0[0] = h0.x, bx1[0] = h0.y, bx0[1] = h0.z, bx1[1] = h0.w;
                bx0[2] = h1.x, bx1[2] = h1.y, bx0[3] = h1.z, bx1[3] = h1.w;
                X[0] = X[2] = xsum[tk0 * nch + c];
                X[1] = X[3] = xsum[tk1 * nch + c];
            } else {
                const float *xrow = a.x + (int64_t)tok * K + c * 64 + 16 * t;
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    float4 v = __ldg((const float4 *)(xrow + 4 * s));
                    if constexpr (NORM) {
                        const float4 w = __ldg((const float4 *)(a.nw + c * 64 + 16 * t + 4 * s));
                        v.x = v.x * rtok * w.x, v.y = v.y * rtok * w.y, v.z = v.z * rtok * w.z,
                        v.w = v.w * rtok * w.w;
                    }
                    bx0[s] = h2_bits(v.x, v.y), bx1[s] = h2_bits(v.z, v.w);
                }
                X[0] = X[1] = X[2] = X[3] = 0.f;
#pragma unroll
                for (int s = 0; s < 4; s++)
                    mma16816(X, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, bx0[s], bx1[s]);
            }
            float C[NTL][4];
#pragma unroll
            for (int i = 0; i < NTL; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) C[i][e] = 0.f;
#pragma unroll
            for (int s = 0; s < 4; s++) {
#pragma unroll
                for (int i = 0; i < NTL; i++) {
                    const uint32_t w = s == 0 ? q[i].x : s == 1 ? q[i].y : s == 2 ? q[i].z : q[i].w;
                    const uint32_t w8 = w >> 8;
                    mma16816(C[i], lop_or(w, 0x000F000Fu), lop_or(w, 0x00F000F0u),
                             lop_or(w8, 0x000F000Fu), lop_or(w8, 0x00F000F0u), bx0[s], bx1[s]);
                }
            }
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                const float2 p0 = sb_dec<ST>(s0[i]), p1 = sb_dec<ST>(s1[i]);
                const float bb0 = fmaf(-1024.f, p0.x, p0.y), sc1 = 0.0625f * p1.x;
                const float bb1 = fmaf(-64.f, p1.x, p1.y);
                acc[i][0] = fmaf(p0.x, C[i][0], fmaf(bb0, X[0], acc[i][0]));
                acc[i][1] = fmaf(p0.x, C[i][1], fmaf(bb0, X[1], acc[i][1]));
                acc[i][2] = fmaf(sc1, C[i][2], fmaf(bb1, X[2], acc[i][2]));
                acc[i][3] = fmaf(sc1, C[i][3], fmaf(bb1, X[3], acc[i][3]));
            }
        }
        /* unit k done by every warp: reduce across warps, epilogue */
        __syncthreads(); /* the previous unit's readers of red are done */
#pragma unroll
        for (int i = 0; i < NTL; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                red[((wid * NTL + i) * 4 + e) * 32 + lane] = acc[i][e];
                acc[i][e] = 0.f;
            }
        __syncthreads();
        if (wid < NTL * 4) {
            int m, tile;
            unit_of(k, m, tile);
            const mma_mat_d &M = a.m[m];
            const int i = wid >> 2, e = wid & 3;
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < PIPE_W; w++) v += red[((w * NTL + i) * 4 + e) * 32 + lane];
            const int row = tile * 16 + g + 8 * (e >> 1), tk = 2 * t + (e & 1);
            if (tk < a.nt && row < M.rows) {
                if constexpr (EPI == CU_EPI_SWIGLU) {
                    if (i == 0) {
                        float up = 0.f;
#pragma unroll
                        for (int w = 0; w < PIPE_W; w++)
                            up += red[((w * NTL + 1) * 4 + e) * 32 + lane];
                        M.y[(int64_t)tk * M.ystride + row] = v / (1.0f + expf(-v)) * up;
                    }
                } else {
                    float *y = M.y + (int64_t)tk * M.ystride;
                    if constexpr (EPI == CU_EPI_ADD)
                        y[row] += v;
                    else
                        y[row] = v + (M.bias ? M.bias[row] : 0.f);
                }
            }
        }
    }
    cp_async_wait<0>();
}

template <int ST, int NM, int EPI, int NORM, int XS>
static cudaError_t launch_pipe_k(cudaStream_t st, const pipe_args &a, unsigned blocks,
                                 size_t smem) {
    static int attr = 0; /* one per instantiation */
    if (!attr) {
        cudaError_t e = cudaFuncSetAttribute(k_gemv_pipe<ST, NM, EPI, NORM, XS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)pipe_smem<ST, NM>(8, PIPE_XS_MAX / 16, 1));
        if (e != cudaSuccess) return e;
        attr = 1;
    }
    return cu_launch(k_gemv_pipe<ST, NM, EPI, NORM, XS>, blocks, PIPE_W * 32, smem, st, a);
}

template <int ST, int NM, int EPI, int NORM>
static cudaError_t launch_pipe_xs(cudaStream_t st, const pipe_args &a, unsigned blocks, int xs) {
    const size_t smem = pipe_smem<ST, NM>(a.nt, a.K, xs);
    return xs ? launch_pipe_k<ST, NM, EPI, NORM, 1>(st, a, blocks, smem)
              : launch_pipe_k<ST, NM, EPI, NORM, 0>(st, a, blocks, smem);
}

template <int ST>
static cudaError_t launch_pipe_epi(cudaStream_t st, const pipe_args &a, unsigned blocks, int epi,
                                   int norm, int xs) {
    if (epi == CU_EPI_SWIGLU)
        return norm ? launch_pipe_xs<ST, 2, CU_EPI_SWIGLU, 1>(st, a, blocks, xs)
                    : launch_pipe_xs<ST, 2, CU_EPI_SWIGLU, 0>(st, a, blocks, xs);
    if (epi == CU_EPI_ADD) return launch_pipe_xs<ST, 1, CU_EPI_ADD, 0>(st, a, blocks, xs);
    return norm ? launch_pipe_xs<ST, 1, CU_EPI_STORE, 1>(st, a, blocks, xs)
                : launch_pipe_xs<ST, 1, CU_EPI_STORE, 0>(st, a, blocks, xs);
}

/* v5 launcher: tokens in groups of 8 (the MMA's columns); nw != NULL fuses the RMSNorm. */
cudaError_t cu_gemv_pipe(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                         int n, const float *nw, float eps) {
    const int64_t K = m[0].w->cols;
    const int nm = epi == CU_EPI_SWIGLU ? 2 : 1;
    if (nw && epi == CU_EPI_ADD) return cudaErrorInvalidValue;
    for (int t0 = 0; t0 < n; t0 += 8) {
        pipe_args a = {};
        a.nmat = nm == 2 ? 1 : nmat;
        a.K = (int)K, a.nt = n - t0 < 8 ? n - t0 : 8;
        while ((1 << a.gshift) < m[0].w->gs) a.gshift++;
        a.x = x + (int64_t)t0 * K, a.nw = nw, a.eps = eps;
        for (int i = 0; i < nmat; i++) {
            const cu_weight *w = m[i].w;
            a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias;
            a.m[i].y = m[i].y + (int64_t)t0 * w->rows;
            a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
            a.m[i].tiles = (int)((w->rows + 15) / 16);
            if (i < a.nmat) a.units += a.m[i].tiles;
        }
        const int cap = 2 * sm_count(); /* two blocks of 8 warps per SM */
        const unsigned blocks = (unsigned)(a.units < cap ? a.units : cap);
        const int xs = (int64_t)a.nt * K * 2 <= PIPE_XS_MAX;
        cudaError_t e;
        if (m[0].w->stype == BRISK_W_BF16)
            e = launch_pipe_epi<BRISK_W_BF16>(st, a, blocks, epi, nw != NULL, xs);
        else if (m[0].w->stype == BRISK_W_F32)
            e = launch_pipe_epi<BRISK_W_F32>(st, a, blocks, epi, nw != NULL, xs);
        else
            e = launch_pipe_epi<BRISK_W_F16>(st, a, blocks, epi, nw != NULL, xs);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
