/* cuda_gemv_tma.cu: the v6 tensor-core GEMV for 4-bit weights in the mma layout (fast == 2),
 * batches of 1..64 tokens (decode, batched decode).
 *
 * Why: the v4 kernel (cuda_gemv.cu) keeps each warp's next chunks in registers, loads them in
 * dependent rounds, and runs at 16 warps per SM, so an SM has at most ~32 KB of weights in flight
 * and on average about half of it; ncu (H100, 8B decode) showed its blocks issuing in only 26-34%
 * of cycles with no eligible warp ~70% of the time, and 0.9-2.0 TB/s against the 3.0-3.1 TB/s a
 * plain streaming read of the same sizes reaches in a chain of kernels (bench/readbw.cu).
 *
 * Here a block's whole share of the weights is requested up front by one thread with bulk copies
 * (cp.async.bulk, the copy engine: no registers, no per-lane instructions) into shared memory,
 * before griddepcontrol.wait, so the reads overlap the previous kernel's tail and an SM holds
 * ~5 blocks x ~36 KB in flight. Unit = (tile of 16 rows [and the same tile of `up` for SwiGLU],
 * slice of K): the codes of a tile's slice are contiguous (512-byte chunks) and so are its
 * (scale, bias) pairs (tile-major layout, mma_sb_index). The copies complete on one mbarrier per
 * 8 chunks, so warps start on the first chunks while the rest arrive. Long rows are cut into
 * `ks` slices handled by the blocks of one thread-block cluster, whose partial sums the first
 * block adds in rank order through distributed shared memory (deterministic). The per-chunk math
 * is v4's: codes -> half by LOP3 (1024 + q), x as half B operand (8 tokens per MMA), one
 * ones-MMA for the chunk sum of x, scale/bias applied per chunk in f32. Tokens beyond 8 reuse the
 * weights already in shared memory (one read of the weights per step for batches up to 64). */
#include "cuda_mma.cuh"

#include <cooperative_groups.h>

namespace cg = cooperative_groups;

#define TMA_W          4          /* warps per block */
#define TMA_STAGE      8          /* chunks per mbarrier */
#define TMA_MAX_STAGES 16         /* so <= 128 chunks per block and tile */
#define TMA_SLICE      (36 << 10) /* codes per block (all its tiles), at most */
#define TMA_U          4          /* chunks per warp whose x loads are issued together */

struct tma_args {
    mma_mat_d m[3];
    int nmat;           /* matrices enumerated by the grid (1 for SwiGLU: m[1] is `up`) */
    int K, nch, gshift; /* nch = K / 64 */
    int nt;             /* tokens, 1..64 */
    int ks, cps, gmax;  /* K-slices per unit (cluster size), chunks per slice, groups per slice */
    const float *x;
};

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void mbar_init(uint64_t *b) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(b)) : "memory");
}

__device__ __forceinline__ void mbar_expect(uint64_t *b, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(b)),
                 "r"(bytes)
                 : "memory");
}

/* Waits for phase 0 of the barrier (each is used once per launch). */
__device__ __forceinline__ void mbar_wait(uint64_t *b) {
    uint32_t done;
    do {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(smem_addr(b))
                     : "memory");
    } while (!done);
}

/* Global -> shared bulk copy (16-byte aligned, size a multiple of 16) completing on barrier b;
 * the weights are read once per step: evict them first from L2. */
__device__ __forceinline__ void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *b,
                                          uint64_t policy) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                 " [%0], [%1], %2, [%3], %4;" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(smem_addr(b)), "l"(policy)
                 : "memory");
}

__host__ __device__ __forceinline__ int align16(int v) {
    return (v + 15) & ~15;
}

/* Shared memory of a block: codes [NTL][cps][512] | pairs [NTL][gmax][16] | red [W][NTL][4][32]
 * floats | part [NTL][4][32] floats | barriers [TMA_MAX_STAGES]. */
__host__ __device__ __forceinline__ int tma_smem(int ntl, int cps, int gmax, int ps) {
    return align16(ntl * cps * 512) + align16(ntl * gmax * 16 * ps) +
           (TMA_W + 1) * ntl * 4 * 32 * 4 + TMA_MAX_STAGES * 8;
}

template <int ST, int NM, int EPI>
__global__ void __launch_bounds__(TMA_W * 32) k_gemv_tma(const __grid_constant__ tma_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int NTL = NM == 2 ? 2 : 1;
    constexpr int PS = sizeof(SBT);
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int rank = a.ks > 1 ? (int)cg::this_cluster().block_rank() : 0;
    int u = blockIdx.x / a.ks, m = 0;
    while (m < a.nmat - 1 && u >= a.m[m].blocks) u -= a.m[m++].blocks;
    const mma_mat_d &M = a.m[m];
    const int tile = u;
    const int d = a.gshift - 6, ngroups = a.nch >> d;
    const int c0 = rank * a.cps, cps = min(a.cps, a.nch - c0);
    const int g0 = c0 >> d, gps = ((c0 + cps - 1) >> d) - g0 + 1;

    uint8_t *codes = sm;
    SBT *pairs = (SBT *)(sm + align16(NTL * a.cps * 512));
    float *red = (float *)((uint8_t *)pairs + align16(NTL * a.gmax * 16 * PS));
    float *part = red + TMA_W * NTL * 4 * 32;
    uint64_t *bar = (uint64_t *)(part + NTL * 4 * 32);
    const int nst = (cps + TMA_STAGE - 1) / TMA_STAGE;

    if (threadIdx.x == 0) {
        for (int s = 0; s < nst; s++) mbar_init(&bar[s]);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        uint64_t pol;
        asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
        for (int s = 0; s < nst; s++) {
            const int ca = s * TMA_STAGE, cb = min(cps, ca + TMA_STAGE);
            mbar_expect(&bar[s], NTL * ((cb - ca) * 512 + (s == 0 ? gps * 16 * PS : 0)));
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                const mma_mat_d &MM = NM == 2 ? a.m[i] : M;
                bulk_copy(codes + (i * a.cps + ca) * 512,
                          MM.w + ((int64_t)tile * a.nch + c0 + ca) * 512, (cb - ca) * 512, &bar[s],
                          pol);
                if (s == 0)
                    bulk_copy(pairs + i * a.gmax * 16,
                              (const SBT *)MM.sb + mma_sb_index((int64_t)tile * 16, g0, ngroups),
                              gps * 16 * PS, &bar[0], pol);
            }
        }
    }
    __syncthreads();    /* the barriers are initialised before anyone waits on them */
    pdl_wait();         /* x is the previous kernel's output; the weights never are */
    mbar_wait(&bar[0]); /* stage 0 holds every chunk's (scale, bias) pairs */

    for (int t0 = 0; t0 < a.nt; t0 += 8) {
        const int ntk = min(8, a.nt - t0);
        const float *xrow = a.x + (int64_t)(t0 + min(g, ntk - 1)) * a.K + (int64_t)c0 * 64 + 16 * t;
        float acc[NTL][4];
#pragma unroll
        for (int i = 0; i < NTL; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
        int ws = 1; /* stages this warp has waited for (stage 0 by everyone above) */
        for (int cw = wid; cw < cps; cw += TMA_W * TMA_U) {
            uint32_t bx0[TMA_U][4], bx1[TMA_U][4];
#pragma unroll
            for (int v = 0; v < TMA_U; v++) {
                const int c = cw + v * TMA_W;
#pragma unroll
                for (int s = 0; s < 4; s++) {
                    const float4 x4 = c < cps ? __ldg((const float4 *)(xrow + c * 64 + 4 * s))
                                              : make_float4(0.f, 0.f, 0.f, 0.f);
                    bx0[v][s] = h2_bits(x4.x, x4.y), bx1[v][s] = h2_bits(x4.z, x4.w);
                }
            }
            /* the stages of this group's chunks, before any of their math: no wait inside the
             * unrolled chunks, so their MMA chains interleave */
            const int last = min(cw + (TMA_U - 1) * TMA_W, cps - 1) / TMA_STAGE;
            while (ws <= last) mbar_wait(&bar[ws++]);
#pragma unroll
            for (int v = 0; v < TMA_U; v++) {
                const int c = cw + v * TMA_W;
                if (c >= cps) break;
                float X[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int s = 0; s < 4; s++)
                    mma16816(X, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u, bx0[v][s],
                             bx1[v][s]);
                const int gl = ((c0 + c) >> d) - g0;
#pragma unroll
                for (int i = 0; i < NTL; i++) {
                    const uint4 q = *(const uint4 *)(codes + (i * a.cps + c) * 512 + lane * 16);
                    SBT r0, r1;
                    ld_pair2<ST, false>(pairs + (i * a.gmax + gl) * 16 + 2 * g, r0, r1);
                    float C[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                    for (int s = 0; s < 4; s++) {
                        const uint32_t w = s == 0 ? q.x : s == 1 ? q.y : s == 2 ? q.z : q.w;
                        const uint32_t w8 = w >> 8;
                        mma16816(C, lop_or(w, 0x000F000Fu), lop_or(w, 0x00F000F0u),
                                 lop_or(w8, 0x000F000Fu), lop_or(w8, 0x00F000F0u), bx0[v][s],
                                 bx1[v][s]);
                    }
                    const float2 p0 = sb_dec<ST>(r0), p1 = sb_dec<ST>(r1);
                    const float bb0 = fmaf(-1024.f, p0.x, p0.y), sc1 = 0.0625f * p1.x;
                    const float bb1 = fmaf(-64.f, p1.x, p1.y);
                    acc[i][0] = fmaf(p0.x, C[0], fmaf(bb0, X[0], acc[i][0]));
                    acc[i][1] = fmaf(p0.x, C[1], fmaf(bb0, X[1], acc[i][1]));
                    acc[i][2] = fmaf(sc1, C[2], fmaf(bb1, X[2], acc[i][2]));
                    acc[i][3] = fmaf(sc1, C[3], fmaf(bb1, X[3], acc[i][3]));
                }
            }
        }
        /* warps -> part (fixed order), then the cluster's slices -> rank 0 (rank order) */
#pragma unroll
        for (int i = 0; i < NTL; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) red[((wid * NTL + i) * 4 + j) * 32 + lane] = acc[i][j];
        __syncthreads();
        for (int slot = wid; slot < NTL * 4; slot += TMA_W) {
            float v = 0.f;
#pragma unroll
            for (int w = 0; w < TMA_W; w++) v += red[(w * NTL * 4 + slot) * 32 + lane];
            part[slot * 32 + lane] = v;
        }
        if (a.ks > 1)
            cg::this_cluster().sync();
        else
            __syncthreads();
        if (rank == 0) {
            /* warp wid finishes slots wid (and wid + 4: `up` of the same rows for SwiGLU) */
            float v[NTL];
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                const int slot = i * 4 + wid;
                v[i] = part[slot * 32 + lane];
                for (int r = 1; r < a.ks; r++)
                    v[i] += cg::this_cluster().map_shared_rank(part, r)[slot * 32 + lane];
            }
            const int row = tile * 16 + g + 8 * (wid >> 1), tk = t0 + 2 * t + (wid & 1);
            if (tk < a.nt && row < M.rows) {
                float *y = M.y + (int64_t)tk * M.ystride + row;
                if constexpr (EPI == CU_EPI_SWIGLU)
                    *y = v[0] / (1.0f + expf(-v[0])) * v[NTL - 1];
                else if constexpr (EPI == CU_EPI_ADD)
                    *y += v[0];
                else
                    *y = v[0] + (M.bias ? M.bias[row] : 0.f);
            }
        }
        /* rank 0 has read every block's part (and red may be rewritten) before the next pass or
         * before any block of the cluster exits */
        if (a.ks > 1)
            cg::this_cluster().sync();
        else
            __syncthreads();
    }
}

template <int ST, int NM, int EPI>
static cudaError_t launch_tma(cudaStream_t st, const tma_args &a, unsigned blocks, int smem) {
    static int smem_set = 0; /* per instantiation: the largest opt-in set so far */
    void (*k)(tma_args) = k_gemv_tma<ST, NM, EPI>;
    if (smem > 48 * 1024 && smem > smem_set) {
        const cudaError_t e =
            cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if (e != cudaSuccess) return e;
        smem_set = smem;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = blocks, cfg.blockDim = TMA_W * 32, cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = st;
    cudaLaunchAttribute at[2];
    int na = 0;
    if (cu_pdl) {
        at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[na++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (a.ks > 1) {
        at[na].id = cudaLaunchAttributeClusterDimension;
        at[na].val.clusterDim.x = (unsigned)a.ks;
        at[na].val.clusterDim.y = 1, at[na++].val.clusterDim.z = 1;
    }
    cfg.attrs = at, cfg.numAttrs = na;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, k, a);
    return e != cudaSuccess ? e : cudaGetLastError();
}

template <int ST>
static cudaError_t launch_tma_epi(cudaStream_t st, const tma_args &a, unsigned blocks, int smem,
                                  int epi) {
    if (epi == CU_EPI_SWIGLU) return launch_tma<ST, 2, CU_EPI_SWIGLU>(st, a, blocks, smem);
    if (epi == CU_EPI_ADD) return launch_tma<ST, 1, CU_EPI_ADD>(st, a, blocks, smem);
    return launch_tma<ST, 1, CU_EPI_STORE>(st, a, blocks, smem);
}

cudaError_t cu_gemv_tma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                        int n) {
    static int ok = -1; /* sm_90+: bulk copies, clusters */
    if (ok < 0) {
        int dev = 0, major = 0;
        ok =
            cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
            major >= 9;
        cudaGetLastError();
    }
    const int ntl = epi == CU_EPI_SWIGLU ? 2 : 1;
    const cu_weight *w0 = m[0].w;
    if (!ok || n < 1 || n > 64 || w0->fast != 2 || w0->cols % 64 || w0->gs < 64)
        return cudaErrorNotSupported;
    tma_args a = {};
    a.nmat = ntl == 2 ? 1 : nmat;
    a.K = (int)w0->cols, a.nch = a.K / 64, a.nt = n, a.x = x;
    while ((1 << a.gshift) < w0->gs) a.gshift++;
    const int d = a.gshift - 6;
    /* slices: a block's codes within TMA_SLICE, and at least ~4 blocks per SM while a slice
     * keeps >= 16 chunks (measured: 256 one-tile blocks of the 8B o projection left each SM 8
     * warps walking 16 chunks in dependent MMA chains: 12.6 us for 9.5 MB); every slice
     * non-empty */
    int units = 0;
    for (int i = 0; i < a.nmat; i++) units += (int)((m[i].w->rows + 15) / 16);
    a.ks = 0;
    for (int ks = 1; ks <= 8; ks *= 2) {
        const int cps = (a.nch + ks - 1) / ks;
        if ((ks - 1) * cps >= a.nch || ntl * cps * 512 > TMA_SLICE) continue;
        a.ks = ks, a.cps = cps;
        if (units * ks >= 4 * sm_count() || cps <= 16) break;
    }
    if (!a.ks || a.cps > TMA_STAGE * TMA_MAX_STAGES) return cudaErrorNotSupported;
    a.gmax = 0;
    for (int r = 0; r < a.ks; r++) {
        const int c0 = r * a.cps, c1 = c0 + a.cps < a.nch ? c0 + a.cps : a.nch;
        const int gps = ((c1 - 1) >> d) - (c0 >> d) + 1;
        if (gps > a.gmax) a.gmax = gps;
    }
    unsigned blocks = 0;
    for (int i = 0; i < nmat; i++) {
        const cu_weight *w = m[i].w;
        a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias, a.m[i].y = m[i].y;
        a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
        a.m[i].tiles = a.m[i].blocks = (int)((w->rows + 15) / 16);
        if (i < a.nmat) blocks += (unsigned)(a.m[i].blocks * a.ks);
    }
    const int ps = w0->stype == BRISK_W_F32 ? 8 : 4;
    const int smem = tma_smem(ntl, a.cps, a.gmax, ps);
    if (w0->stype == BRISK_W_BF16) return launch_tma_epi<BRISK_W_BF16>(st, a, blocks, smem, epi);
    if (w0->stype == BRISK_W_F32) return launch_tma_epi<BRISK_W_F32>(st, a, blocks, smem, epi);
    return launch_tma_epi<BRISK_W_F16>(st, a, blocks, smem, epi);
}
