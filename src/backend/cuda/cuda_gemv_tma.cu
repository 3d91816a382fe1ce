/* cuda_gemv_tma.cu: a persistent, warp-specialised tensor-core GEMV for one-token steps over
 * 4-bit weights in the mma layout (fast == 2): the default for those (bench/cuda-notes.md,
 * round 5); steps of 2-64 tokens go to the batched v8 (cuda_gemv_batch.cu), built on the same
 * pipeline.
 *
 * Why: v4 (cuda_gemv.cu) keeps its next chunks in registers and loads them in dependent rounds:
 * ncu on an H100 (8B decode) showed ~26-34% of issue slots used, 0.9-2.0 TB/s, against the
 * 3.0-3.1 TB/s a plain streaming read of the same sizes reaches in a chain of kernels
 * (bench/readbw.cu), and a bulk-copy (cp.async.bulk) read of the same slices alone 2.7-3.1 TB/s.
 * A first bulk-copy GEMV (v6: one short-lived block per tile slice, x read from global per
 * chunk, slices merged across a cluster) lost to v4 (266 vs 334 tok/s): per-block set-up,
 * cluster barriers and x loads after every block's weights made the SMs idle a third of the time.
 *
 * Here one block per SM lives for the whole launch. A producer warp streams the block's work
 * items (tile group x slice of K: 32 chunks of 512 bytes per tile, plus their (scale, bias)
 * pairs, contiguous in the layout) with bulk copies into a ring of stages, each with a `full`
 * mbarrier (transaction bytes) and an `empty` one (one arrival per consumer warp); it starts
 * before griddepcontrol.wait, so the ring fills while the previous kernel ends. Eight consumer
 * warps first stage x as half in shared memory (once per launch), then per stage take 4 chunks
 * each: the v4 math (LOP3 codes -> half, 4 MMAs per chunk and tile, a ones-MMA for the chunk sum
 * of x, scale/bias per chunk in f32), accumulating in registers across the slices of a tile
 * group, so K needs no cross-block merge; after its last slice the consumers reduce over warps
 * in shared memory (fixed order: deterministic) and write the epilogue (store + bias, residual
 * add, or SwiGLU of the gate and up tiles). Tile groups go to blocks round-robin. */
#include "cuda_bulk.cuh"
#include "cuda_mma.cuh"

#define P_CW      8                 /* consumer warps */
#define P_THREADS ((P_CW + 1) * 32) /* + the producer warp */
#define P_CPS     32                /* chunks per stage and tile */
#define P_MAXST   8                 /* stages at most */
#define P_RING    (160 << 10)       /* bytes of the ring */
#define P_MAXK    (16 << 10)        /* x staged as half: K <= 16384 */
#define P_BAR     1                 /* named barrier of the consumer warps */
#define P_XU      8                 /* float4 of x per consumer thread in flight (staging) */

struct p_args {
    mma_mat_d m[3];
    int nmat;           /* matrices enumerated (1 for SwiGLU: m[1] is `up`) */
    int K, nch, gshift; /* nch = K / 64 */
    int groups;         /* tile groups over the enumerated matrices */
    int nsl, stages;    /* slices per tile group, ring stages */
    int stage_bytes, gmax;
    const float *x;
    const float *nw; /* the RMSNorm of x (weight nw, eps) folded into the staging; NULL: none */
    float eps;
    unsigned long long *tl; /* measuring aid (BRISK_CUDA_TL): this launch's timeline slot */
};

__device__ __forceinline__ void consumers_sync() {
    named_sync(P_BAR, P_CW * 32);
}

__host__ __device__ __forceinline__ int p_align(int v) {
    return (v + 127) & ~127;
}

/* Shared memory: ring [stages][stage_bytes] | x as half [K] | red [P_CW][NTL][4][32] floats |
 * full[P_MAXST], empty[P_MAXST] barriers. A stage: codes [NTL][P_CPS][512] | pairs [NTL][gmax][16].
 */
__host__ __device__ __forceinline__ int p_smem(int stages, int stage_bytes, int K, int ntl) {
    return stages * stage_bytes + p_align(K * 2) + p_align(P_CW * ntl * 4 * 32 * 4) +
           2 * P_MAXST * 8;
}

template <int ST, int NM, int EPI>
__global__ void __launch_bounds__(P_THREADS, 1) k_gemv_persist(const __grid_constant__ p_args a) {
    typedef typename sb_raw<ST>::T SBT;
    constexpr int NTL = NM == 2 ? 2 : 1;
    constexpr int PS = sizeof(SBT);
    extern __shared__ __align__(128) uint8_t sm[];
    pdl_launch();
    tl_mark(a.tl, TL_ENTRY, true);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int d = a.gshift - 6;
    uint8_t *ring = sm;
    __half *xh = (__half *)(sm + a.stages * a.stage_bytes);
    float *red = (float *)((uint8_t *)xh + p_align(a.K * 2));
    uint64_t *full = (uint64_t *)((uint8_t *)red + p_align(P_CW * NTL * 4 * 32 * 4));
    uint64_t *empty = full + P_MAXST;
    ring_init(full, empty, a.stages, P_CW);

    /* the items of this block, in order: (tile group ug, slice sl) */
    auto locate = [&](int ug, int &m, int &tile) {
        m = 0, tile = ug;
        while (m < a.nmat - 1 && tile >= a.m[m].tiles) tile -= a.m[m++].tiles;
    };

    if (wid == P_CW) { /* producer */
        if (lane == 0) {
            const uint64_t pol = policy_evict_first();
            int k = 0;
            for (int ug = blockIdx.x; ug < a.groups; ug += gridDim.x) {
                int m, tile;
                locate(ug, m, tile);
                for (int sl = 0; sl < a.nsl; sl++, k++) {
                    const int st = k % a.stages;
                    if (k >= a.stages) mbar_wait(&empty[st], ((k / a.stages) - 1) & 1);
                    const int c0 = sl * P_CPS, nc = min(P_CPS, a.nch - c0);
                    mbar_expect(&full[st], NTL * tile_slice_bytes<ST>(c0, nc, d));
                    uint8_t *dst = ring + st * a.stage_bytes;
#pragma unroll
                    for (int i = 0; i < NTL; i++)
                        bulk_tile_slice<ST>(
                            dst + i * P_CPS * 512, dst + NTL * P_CPS * 512 + i * a.gmax * 16 * PS,
                            a.m[NM == 2 ? i : m], tile, a.nch, c0, nc, d, &full[st], pol);
                }
            }
        }
        return;
    }

    /* consumers: x as half, once; with nw the RMSNorm too (its sum of squares over the block's
     * own pass of x, warps added in a fixed order, so every block gets the same scale). Where a
     * thread's share of x fits in P_XU float4 registers (K <= 8192), the norm's weights are
     * loaded before the wait (they are not written by earlier kernels, and a miss under the
     * weight stream costs microseconds) and x is loaded once, all of a thread's loads in flight
     * together; otherwise two passes, P_XU loads in flight per round. */
    constexpr int NT = P_CW * 32;
    const int tid = threadIdx.x;
    const bool fit = a.K <= NT * 4 * P_XU;
    float4 w[P_XU], v[P_XU];
    if (a.nw && fit)
#pragma unroll
        for (int u = 0; u < P_XU; u++)
            if ((tid + u * NT) * 4 < a.K) w[u] = __ldg((const float4 *)(a.nw + (tid + u * NT) * 4));
    pdl_wait();
    tl_mark(a.tl, TL_WAIT, true);
    float rs = 1.f;
    if (fit) {
        float ss = 0.f;
#pragma unroll
        for (int u = 0; u < P_XU; u++)
            if ((tid + u * NT) * 4 < a.K) v[u] = __ldg((const float4 *)(a.x + (tid + u * NT) * 4));
        if (a.nw) {
#pragma unroll
            for (int u = 0; u < P_XU; u++)
                if ((tid + u * NT) * 4 < a.K) ss = sq4(v[u], ss);
            rs = rsqrtf(block_sum<NT>(ss, tid, red, consumers_sync) / (float)a.K + a.eps);
        }
    } else if (a.nw) {
        rs = rms_scale<NT>(a.x, a.K, a.eps, tid, red, consumers_sync);
    }
    for (int c0 = tid * 4; c0 < a.K; c0 += NT * 4 * P_XU) {
        if (!fit) {
#pragma unroll
            for (int u = 0; u < P_XU; u++) {
                const int c = c0 + u * NT * 4;
                if (c < a.K) {
                    v[u] = __ldg((const float4 *)(a.x + c));
                    if (a.nw) w[u] = __ldg((const float4 *)(a.nw + c));
                }
            }
        }
#pragma unroll
        for (int u = 0; u < P_XU; u++) {
            const int c = c0 + u * NT * 4;
            if (c >= a.K) break;
            float4 y = v[u];
            if (a.nw) {
                y.x = y.x * rs * w[u].x, y.y = y.y * rs * w[u].y, y.z = y.z * rs * w[u].z;
                y.w = y.w * rs * w[u].w;
            }
            *(uint2 *)(xh + c) = make_uint2(h2_bits(y.x, y.y), h2_bits(y.z, y.w));
        }
    }
    consumers_sync(); /* xh complete, and red read before the epilogue rewrites it */
    tl_mark(a.tl, TL_STAGED, false);

    const int g = lane >> 2, t = lane & 3;
    float acc[NTL][4];
#pragma unroll
    for (int i = 0; i < NTL; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
    int k = 0;
    for (int ug = blockIdx.x; ug < a.groups; ug += gridDim.x) {
        int m, tile;
        locate(ug, m, tile);
        for (int sl = 0; sl < a.nsl; sl++, k++) {
            const int st = k % a.stages;
            const int c0 = sl * P_CPS, nc = min(P_CPS, a.nch - c0), g0 = c0 >> d;
            const uint8_t *codes = ring + st * a.stage_bytes;
            const SBT *pairs = (const SBT *)(codes + NTL * P_CPS * 512);
            mbar_wait(&full[st], (k / a.stages) & 1);
#pragma unroll
            for (int v = 0; v < P_CPS / P_CW; v++) {
                const int c = wid + v * P_CW; /* chunk of the stage */
                if (c >= nc) break;
                const uint4 xa = *(const uint4 *)(xh + (c0 + c) * 64 + 16 * t);
                const uint4 xb = *(const uint4 *)(xh + (c0 + c) * 64 + 16 * t + 8);
                const uint32_t bx0[4] = {xa.x, xa.z, xb.x, xb.z};
                const uint32_t bx1[4] = {xa.y, xa.w, xb.y, xb.w};
                float X[4];
                mma_chunk_xsum(X, bx0, bx1);
                const int gl = ((c0 + c) >> d) - g0;
#pragma unroll
                for (int i = 0; i < NTL; i++) {
                    const uint4 q = *(const uint4 *)(codes + (i * P_CPS + c) * 512 + lane * 16);
                    SBT r0, r1;
                    ld_pair2<ST, false>(pairs + (i * a.gmax + gl) * 16 + 2 * g, r0, r1);
                    mma_chunk_acc<ST>(acc[i], q, r0, r1, bx0, bx1, X);
                }
            }
            __syncwarp();
            if (lane == 0) mbar_arrive(&empty[st]); /* this warp is done with the stage */
        }
        /* the tile group is complete: warps -> rows (fixed order), then the epilogue */
#pragma unroll
        for (int i = 0; i < NTL; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                red[((wid * NTL + i) * 4 + j) * 32 + lane] = acc[i][j];
                acc[i][j] = 0.f;
            }
        consumers_sync();
        if (wid < 4) { /* warp w: slot j = w (and w + 4: `up` for SwiGLU) */
            const mma_mat_d &M = a.m[m];
            float v[NTL];
#pragma unroll
            for (int i = 0; i < NTL; i++) {
                v[i] = 0.f;
#pragma unroll
                for (int w = 0; w < P_CW; w++) v[i] += red[((w * NTL + i) * 4 + wid) * 32 + lane];
            }
            const int row = tile * 16 + g + 8 * (wid >> 1), tk = 2 * t + (wid & 1);
            if (tk == 0 && row < M.rows) {
                float *y = M.y + row;
                if constexpr (EPI == CU_EPI_SWIGLU)
                    *y = v[0] / (1.0f + expf(-v[0])) * v[NTL - 1];
                else if constexpr (EPI == CU_EPI_ADD)
                    *y += v[0];
                else
                    *y = v[0] + (M.bias ? M.bias[row] : 0.f);
            }
        }
        consumers_sync(); /* red is rewritten by the next group */
    }
    tl_mark(a.tl, TL_DONE, true);
}

/* v7 (this file) for one-token steps: the default (env BRISK_CUDA_GEMV=4: v4, for A/B).
 * Measured on an H100 (round 5): 8B q4 decode 376.6 vs 338.7 tok/s with v4, 1B 1,396.6 vs
 * 1,330.2. */
int cu_gemv_v7 = 1;
int cu_v7_ring = P_RING; /* bytes of stages per block (env BRISK_CUDA_V7_RING, KB) */

template <int ST, int NM, int EPI>
static cudaError_t launch_p(cudaStream_t st, const p_args &a, int smem) {
    return launch_persistent(k_gemv_persist<ST, NM, EPI>, smem, P_THREADS, st, a);
}

template <int ST>
static cudaError_t launch_p_epi(cudaStream_t st, const p_args &a, int smem, int epi) {
    if (epi == CU_EPI_SWIGLU) return launch_p<ST, 2, CU_EPI_SWIGLU>(st, a, smem);
    if (epi == CU_EPI_ADD) return launch_p<ST, 1, CU_EPI_ADD>(st, a, smem);
    return launch_p<ST, 1, CU_EPI_STORE>(st, a, smem);
}

cudaError_t cu_gemv_tma(cudaStream_t st, const cu_gemv_mat *m, int nmat, int epi, const float *x,
                        int n, const float *nw, float eps) {
    const int ntl = epi == CU_EPI_SWIGLU ? 2 : 1;
    const cu_weight *w0 = m[0].w;
    /* cu_sm90: bulk copies and mbarrier transactions in the loaded code */
    if (!cu_gemv_v7 || !cu_sm90 || n != 1 || w0->fast != 2 || w0->cols % 64 || w0->gs < 64 ||
        w0->cols > P_MAXK || ((uintptr_t)x & 15))
        return cudaErrorNotSupported;
    p_args a = {};
    a.nmat = ntl == 2 ? 1 : nmat;
    a.K = (int)w0->cols, a.nch = a.K / 64, a.x = x, a.nw = nw, a.eps = eps;
    if (nw && ((uintptr_t)nw & 15)) return cudaErrorNotSupported;
    while ((1 << a.gshift) < w0->gs) a.gshift++;
    const int d = a.gshift - 6;
    a.nsl = (a.nch + P_CPS - 1) / P_CPS;
    a.gmax = ((P_CPS - 1) >> d) + 2; /* a slice's groups, at most */
    const int ps = w0->stype == BRISK_W_F32 ? 8 : 4;
    a.stage_bytes = p_align(ntl * (P_CPS * 512 + a.gmax * 16 * ps));
    a.stages = cu_v7_ring / a.stage_bytes;
    if (a.stages > P_MAXST) a.stages = P_MAXST;
    while (a.stages > 2 && p_smem(a.stages, a.stage_bytes, a.K, ntl) > 227 * 1024) a.stages--;
    if (a.stages < 2 || p_smem(a.stages, a.stage_bytes, a.K, ntl) > 227 * 1024)
        return cudaErrorNotSupported;
    for (int i = 0; i < nmat; i++) {
        const cu_weight *w = m[i].w;
        a.m[i].w = w->data, a.m[i].sb = w->sb, a.m[i].bias = m[i].bias, a.m[i].y = m[i].y;
        a.m[i].rows = (int)w->rows, a.m[i].ystride = w->rows;
        a.m[i].tiles = a.m[i].blocks = (int)((w->rows + 15) / 16);
        if (i < a.nmat) a.groups += a.m[i].tiles;
    }
    const int smem = p_smem(a.stages, a.stage_bytes, a.K, ntl);
    a.tl = cu_tl_take(epi == CU_EPI_SWIGLU ? "gate+up" : epi == CU_EPI_ADD ? "gemv+add" : "gemv");
    if (w0->stype == BRISK_W_BF16) return launch_p_epi<BRISK_W_BF16>(st, a, smem, epi);
    if (w0->stype == BRISK_W_F32) return launch_p_epi<BRISK_W_F32>(st, a, smem, epi);
    return launch_p_epi<BRISK_W_F16>(st, a, smem, epi);
}
