/* bench/kvread.cu: what the decode attention's K/V reads achieve on this card by cache layout,
 * with the attention kernel's copy pattern and nothing else: blocks (kv head, sequence) of 4
 * warps, each warp copying 32-position tiles (K and V rows of head_dim 128 halves) with cp.async
 * into its shared-memory buffers, tiles w, w + 4, ... of the sequence. Layouts:
 *   0 interleaved: [position][kv head][head_dim] (the engine's paged cache: a position's heads
 *     side by side, so one head's rows lie 2 KB apart at 8 kv heads);
 *   1 per head:    [sequence][kv head][position][head_dim] (a head's rows contiguous);
 *   2 paged per head: [block of 16 positions][kv head][16][head_dim] (a paged cache whose block
 *     keeps each head's 16 rows together: 4 KB runs), a sequence's blocks in order.
 * Buffers: 1 (two blocks an SM, ~81 KB each), 2 (one block an SM, the next tile's copy in
 * flight while this one is waited for) or "1 split" (one buffer whose K and V refill apart), and
 * a stand-in for the compute a tile (a spin of so many cycles); then the real kernel's other costs
 * one by one (the block table's loads, a q prologue and the output) at 4 and 2 warps a block, and
 * the decode kernel's own tile compute in place of the spin, with the kernel's remaining parts
 * added one at a time (the position mask, the warps' merge and float + half output, the fused
 * RoPE prologue with its cache store: extras.parts). Not part of the build:
 *   nvcc -O3 -Isrc -gencode=arch=compute_90a,code=sm_90a -o kvread bench/kvread.cu && ./kvread
 * Prints GB/s per layout and buffer count, and a plain streaming read of the same bytes.
 * `./kvread real`: only the first shape's real-tile rows (few launches: for ncu beside the engine's
 * attention). */
#include "backend/cuda/cuda_ptx.cuh"
#include "backend/cuda/cuda_tc.cuh"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HD    128 /* halves a row: 16 uint4 */
#define ROWU4 (HD / 8)

/* NB 3: one buffer whose K and V refill apart (K after the scores' half of the compute, V after
 * the rest); spin: cycles of stand-in compute a tile (half of it for NB 3's each half) */
__device__ __forceinline__ void spin_for(int cycles) {
    const long long t = clock64();
    while (clock64() - t < cycles) {
    }
}

/* The parts of the real kernel's work other than the copies, each optional: */
struct extras {
    int spin;         /* cycles of stand-in compute a tile (NB 3: half after K, half after V) */
    const int *table; /* a block table [sequence][npos / 16] of 16-position blocks: the tile's
                       * addresses come from a load of it (as the attention's), not arithmetic */
    const float *q;   /* a prologue: the block's q (4 heads x 128 floats) into shared memory
                       * before its tiles, and its output written after them */
    float *o;
    /* REAL, the engine's other parts (bits): 1 the position mask a tile; 2 the warps' merge
     * through shared memory and the output as floats and halves (oh); 4 the fused RoPE
     * prologue (angles by sincosf from inv, the new k and v rows kn [2][seqs][heads][128] loaded,
     * rotated and stored to the cache, q rotated into shared memory and its A fragments built
     * from it), after the first tile's copies as there */
    int parts;
    const float *kn, *inv;
    __half *oh;
};

/* REAL: the decode kernel's own tile compute (cuda_tc.cuh's tc_attn_tile, as cuda_attn.cu runs it:
 * S = q K^T for 4 heads by mma.sync from ldmatrix, the online softmax, P V) on rows padded to 136
 * halves as there, in place of a spin; 2: the same at three blocks an SM (registers capped for it,
 * 72 KB). */
template <int LAYOUT, int NB, int W, int REAL = 0>
__global__ void __launch_bounds__(W * 32, REAL == 2 ? 3 : 1)
    k_tiles(const uint4 *K, const uint4 *V, int npos, int nh, unsigned *out, extras x) {
    extern __shared__ uint4 sm[];
    constexpr int NBUF = NB == 2 ? 2 : 1;
    constexpr int RS = REAL ? ROWU4 + 1 : ROWU4, TLD = RS * 8; /* a row's stride: uint4, halves */
    const int h = blockIdx.x, seq = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    uint4 *buf = sm + warp * NBUF * 2 * 32 * RS; /* [NBUF][K, V][32][RS] */
    float *qs = (float *)(sm + W * NBUF * 2 * 32 * RS);
    /* REAL: q's A fragments (heads 0-3 in rows 0-3), the running (m, l) and o */
    const int g = lane >> 2;
    uint32_t qf[8][2];
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        qf[kk][0] = g < 4 ? tc_pack(0.01f * (kk + 1), 0.02f) : 0u;
        qf[kk][1] = g < 4 ? tc_pack(0.03f, -0.01f * kk) : 0u;
    }
    float o[16][4] = {}, mr = -INFINITY, lr = 0.f;
    const int ntile = npos / 32;
    unsigned acc = 0;
    /* parts 2 and 4: the angles [128], (m, l) [W][4][2] and the warps' o [W][4][128] (raw q
     * before the tiles) after q */
    float *ang = qs + 512, *wml = ang + 128, *wo = wml + W * 8;
    if (x.q && !(x.parts & 4)) { /* two dependent rounds, as the real prologue's q load and RoPE */
        for (int e = threadIdx.x; e < 512; e += W * 32)
            qs[e] = x.q[((size_t)seq * nh + h) * 512 + e];
        __syncthreads();
        for (int e = threadIdx.x; e < 512; e += W * 32) qs[e] = qs[e] * 0.5f + qs[511 - e];
        __syncthreads();
    }
    auto row = [&](int pos) -> size_t {
        if (LAYOUT == 0 && x.table) /* a paged interleaved cache through the table */
            return ((size_t)x.table[seq * (npos / 16) + pos / 16] * 16 + pos % 16) * nh + h;
        return LAYOUT == 0   ? ((size_t)seq * npos + pos) * nh + h
               : LAYOUT == 1 ? ((size_t)seq * nh + h) * npos + pos
                             : (((size_t)seq * npos + (pos & ~15)) * nh + h * 16) + (pos & 15);
    };
    auto issue = [&](int tile, int b, int parts) {
        uint4 *kd = buf + b * 2 * 32 * RS, *vd = kd + 32 * RS;
        /* each lane the row of its position, then shuffled (the attention's form) */
        const size_t mine = row(tile * 32 + lane);
#pragma unroll
        for (int u = 0; u < ROWU4; u++) {
            const int c = u * 32 + lane, j = c / ROWU4, col = c % ROWU4;
            const size_t r = __shfl_sync(0xffffffffu, mine, j) * ROWU4 + col;
            if (parts & 1) tc_cp16((__half *)(kd + j * RS + col), (const __half *)(K + r), true);
            if (parts & 2) tc_cp16((__half *)(vd + j * RS + col), (const __half *)(V + r), true);
        }
        tc_commit();
    };
    int b = 0;
    if (warp < ntile) {
        if (NB == 3)
            issue(warp, 0, 1), issue(warp, 0, 2);
        else
            issue(warp, 0, 3);
    }
    if (REAL && (x.parts & 4)) { /* cuda_attn.cu's fused prologue, every block the owner */
        const int p = npos - 1, tid = threadIdx.x;
        for (int j = tid; j < 64; j += W * 32)
            sincosf((float)p * x.inv[j], &ang[2 * j + 1], &ang[2 * j]);
        float *raw = wo + 128;
        const size_t hb = ((size_t)seq * nh + h) * 128;
        const float *kg = x.kn + hb, *vg = x.kn + (size_t)gridDim.y * nh * 128 + hb;
        float kx = 0.f, ky = 0.f, vx = 0.f;
        if (tid < 128) kx = kg[tid], ky = kg[tid < 64 ? tid + 64 : tid - 64], vx = vg[tid];
        for (int e0 = tid; e0 < 512; e0 += 8 * W * 32) {
            float qr[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int e = e0 + u * W * 32;
                qr[u] = e < 512 ? x.q[((size_t)seq * nh + h) * 512 + e] : 0.f;
            }
            __threadfence_block();
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (e0 + u * W * 32 < 512) raw[e0 + u * W * 32] = qr[u];
        }
        __syncthreads();
        const float qscale = rsqrtf(128.f) * 1.4426950408889634f;
        for (int e = tid; e < 512; e += W * 32) {
            const int d = e % 128, lo = d < 64, j = lo ? d : d - 64;
            const float cs = ang[2 * j], sn = ang[2 * j + 1];
            const float xx = raw[e], yy = raw[lo ? e + 64 : e - 64];
            qs[e] = (lo ? xx * cs - yy * sn : xx * cs + yy * sn) * qscale;
        }
        if (tid < 128) { /* the new row into the cache (as halves) */
            const int lo = tid < 64, j = lo ? tid : tid - 64;
            const float cs = ang[2 * j], sn = ang[2 * j + 1];
            const size_t r = row(p) * ROWU4;
            ((__half *)(K + r))[tid] = __float2half_rn(lo ? kx * cs - ky * sn : kx * cs + ky * sn);
            ((__half *)(V + r))[tid] = __float2half_rn(vx);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 8; kk++) {
            const int d = kk * 16 + 2 * (lane & 3);
            float2 lo = make_float2(0.f, 0.f), hi = lo;
            if (g < 4)
                lo = *(const float2 *)(qs + g * 128 + d),
                hi = *(const float2 *)(qs + g * 128 + d + 8);
            qf[kk][0] = tc_pack(lo.x, lo.y), qf[kk][1] = tc_pack(hi.x, hi.y);
        }
    }
    for (int tile = warp; tile < ntile; tile += W, b ^= NBUF - 1) {
        const bool more = tile + W < ntile;
        if (NB == 3) { /* part 1 K, then 2 V: wait for it, compute, refill it */
#pragma unroll
            for (int part = 1; part <= 2; part++) {
                tc_wait<1>();
                __syncwarp();
                acc += buf[(part - 1) * 32 * RS + lane].x;
                spin_for(x.spin / 2);
                __syncwarp();
                if (more)
                    issue(tile + W, 0, part);
                else
                    tc_commit(); /* an empty group keeps the count the waits assume */
            }
            continue;
        }
        if (NB == 2 && more) {
            issue(tile + W, b ^ 1, 3);
            tc_wait<1>();
        } else {
            tc_wait<0>();
        }
        __syncwarp();
        if constexpr (REAL) {
            const __half *Kb = (const __half *)(buf + b * 2 * 32 * RS), *Vb = Kb + 32 * TLD;
            if (x.parts & 1) /* the position mask, against the context's end */
                tc_attn_tile<8, 16, true>(o, mr, lr, qf, Kb, Vb, TLD, lane, tile * 32, npos);
            else
                tc_attn_tile<8, 16, false>(o, mr, lr, qf, Kb, Vb, TLD, lane, tile * 32, npos);
        } else {
            acc += buf[b * 2 * 32 * RS + lane].x ^ buf[b * 2 * 32 * RS + 32 * RS + lane].y;
        }
        spin_for(x.spin);
        __syncwarp();
        if (NB == 1 && more) issue(tile + W, 0, 3);
    }
    if (REAL && (x.parts & 2)) { /* cuda_attn.cu's warp merge and float + half output */
        lr += __shfl_xor_sync(0xffffffffu, lr, 1);
        lr += __shfl_xor_sync(0xffffffffu, lr, 2);
        if (g < 4) {
            const int tq = lane & 3;
            if (tq == 0) wml[(warp * 4 + g) * 2] = mr, wml[(warp * 4 + g) * 2 + 1] = lr;
            float *dst = wo + (warp * 4 + g) * 128 + 2 * tq;
#pragma unroll
            for (int jd = 0; jd < 16; jd++)
                *(float2 *)(dst + jd * 8) = make_float2(o[jd][0], o[jd][1]);
        }
        __syncthreads();
        for (int e = threadIdx.x; e < 512; e += W * 32) {
            const int gg = e / 128, d = e - gg * 128;
            float M = -INFINITY;
#pragma unroll
            for (int w = 0; w < W; w++) M = fmaxf(M, wml[(w * 4 + gg) * 2]);
            float a = 0.f, den = 0.f;
#pragma unroll
            for (int w = 0; w < W; w++) {
                const float f = exp2f(wml[(w * 4 + gg) * 2] - M);
                den = fmaf(wml[(w * 4 + gg) * 2 + 1], f, den);
                a = fmaf(wo[(w * 4 + gg) * 128 + d], f, a);
            }
            const size_t oe = ((size_t)seq * nh + h) * 512 + e;
            x.o[oe] = a / den, x.oh[oe] = __float2half_rn(a / den);
        }
    } else if (x.q) { /* the warps' merge and the output */
        __syncthreads();
        for (int e = threadIdx.x; e < 512; e += W * 32)
            x.o[((size_t)seq * nh + h) * 512 + e] = qs[e] + (float)(acc & 1);
    }
    if (REAL && !(x.parts & 2)) {
        float t = lr;
#pragma unroll
        for (int jd = 0; jd < 16; jd++) t += o[jd][0] + o[jd][1] + o[jd][2] + o[jd][3];
        acc += __float_as_uint(t);
    }
    if (acc == 0x12345678u) out[0] = acc;
}

__global__ void k_stream(const uint4 *p, size_t n, unsigned *out) {
    unsigned acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = __ldcg(p + i);
        acc ^= v.x ^ v.w;
    }
    if (acc == 0x12345678u) out[0] = acc;
}

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));            \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

template <int LAYOUT, int NB, int W = 4, int REAL = 0>
static int run(const uint4 *K, const uint4 *V, int nseq, int npos, int nh, unsigned *out, extras x,
               const char *what = "") {
    /* the attention kernel's footprints: two blocks of 4 warps an SM with one buffer, one with
     * two; at 2 warps a block, four blocks */
    const int smem = REAL == 2 ? 72 * 1024 /* three an SM */
                     : W == 2  ? 55 * 1024
                     : NB != 2 ? 81 * 1024
                               : 147 * 1024;
    CK(cudaFuncSetAttribute(k_tiles<LAYOUT, NB, W, REAL>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    for (int w = 0; w < 3; w++)
        k_tiles<LAYOUT, NB, W, REAL><<<dim3(nh, nseq), W * 32, smem>>>(K, V, npos, nh, out, x);
    const int reps = 20;
    cudaEventRecord(a);
    for (int r = 0; r < reps; r++)
        k_tiles<LAYOUT, NB, W, REAL><<<dim3(nh, nseq), W * 32, smem>>>(K, V, npos, nh, out, x);
    cudaEventRecord(b);
    CK(cudaEventSynchronize(b));
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    const double bytes = 2.0 * nseq * npos * nh * HD * 2;
    printf("layout %s buffers %s warps %d spin %5d%s  seqs %3d ctx %5d: %7.1f us  %6.0f GB/s\n",
           LAYOUT == 2 ? "paged/head "
           : LAYOUT    ? "per-head   "
                       : "interleaved",
           NB == 3   ? "1 split"
           : NB == 2 ? "2      "
                     : "1      ",
           W, x.spin, what, nseq, npos, ms * 1e3 / reps, bytes * reps / (ms * 1e-3) / 1e9);
    return 0;
}

int main(int argc, char **argv) {
    /* "real": only the first shape's rows with the real tile compute (few launches, for ncu) */
    const bool only_real = argc > 1 && !strcmp(argv[1], "real");
    const int nh = 8;
    const int shapes[][2] = {{64, 1024}, {32, 1024}, {64, 4096}};
    for (const auto &sh : shapes) {
        const int nseq = sh[0], npos = sh[1];
        const size_t n = (size_t)nseq * npos * nh * ROWU4; /* uint4 per cache */
        uint4 *K, *V;
        unsigned *out;
        CK(cudaMalloc(&K, n * 16));
        CK(cudaMalloc(&V, n * 16));
        CK(cudaMalloc(&out, 4));
        cudaMemset(K, 1, n * 16), cudaMemset(V, 2, n * 16);
        int *table;
        float *q, *o;
        const int nblk = nseq * npos / 16;
        CK(cudaMalloc(&table, nblk * sizeof(int)));
        CK(cudaMalloc(&q, (size_t)nseq * nh * 512 * sizeof(float)));
        CK(cudaMalloc(&o, (size_t)nseq * nh * 512 * sizeof(float)));
        { /* block i of the sequence's table: the cache's block i (a fresh pool's order) */
            int *t = new int[nblk];
            for (int i = 0; i < nblk; i++) t[i] = i;
            cudaMemcpy(table, t, nblk * sizeof(int), cudaMemcpyHostToDevice);
            delete[] t;
        }
        cudaMemset(q, 0, (size_t)nseq * nh * 512 * sizeof(float));
        float *kn, *inv;
        __half *oh;
        CK(cudaMalloc(&kn, (size_t)2 * nseq * nh * 128 * sizeof(float)));
        CK(cudaMalloc(&inv, 64 * sizeof(float)));
        CK(cudaMalloc(&oh, (size_t)nseq * nh * 512 * sizeof(__half)));
        cudaMemset(kn, 0, (size_t)2 * nseq * nh * 128 * sizeof(float));
        { /* Llama's angles, base 500,000 */
            float f[64];
            for (int j = 0; j < 64; j++) f[j] = (float)pow(500000.0, -j / 64.0);
            cudaMemcpy(inv, f, sizeof f, cudaMemcpyHostToDevice);
        }
        auto with = [&](extras e, int parts) {
            e.parts = parts, e.kn = kn, e.inv = inv, e.oh = oh;
            return e;
        };
        const extras e0 = {0, nullptr, nullptr, nullptr};
        if (!only_real &&
            (run<0, 1>(K, V, nseq, npos, nh, out, e0) || run<1, 1>(K, V, nseq, npos, nh, out, e0) ||
             run<2, 1>(K, V, nseq, npos, nh, out, e0) || run<0, 2>(K, V, nseq, npos, nh, out, e0)))
            return 1;
        /* the tiles with stand-in compute: what overlap each buffering buys */
        for (int spin : {1000, 2000, 4000, 8000}) {
            if (only_real) break;
            const extras e = {spin, nullptr, nullptr, nullptr};
            if (run<0, 1>(K, V, nseq, npos, nh, out, e) ||
                run<0, 3>(K, V, nseq, npos, nh, out, e) || run<0, 2>(K, V, nseq, npos, nh, out, e))
                return 1;
        }
        /* the real kernel's other costs one by one, at 4 warps a block (two blocks an SM: two
         * waves at 64 x 1,024) and at 2 (four an SM: one wave) */
        for (int spin : {0, 1000, 2000}) {
            if (only_real) break;
            const extras et = {spin, table, nullptr, nullptr}, ep = {spin, table, q, o};
            if (run<0, 1>(K, V, nseq, npos, nh, out, {spin, nullptr, nullptr, nullptr}) ||
                run<0, 1>(K, V, nseq, npos, nh, out, et, " +table") ||
                run<0, 1>(K, V, nseq, npos, nh, out, ep, " +table +q/out") ||
                run<0, 1, 2>(K, V, nseq, npos, nh, out, {spin, nullptr, nullptr, nullptr}) ||
                run<0, 1, 2>(K, V, nseq, npos, nh, out, ep, " +table +q/out"))
                return 1;
        }
        /* the real tile compute in place of the spin (one buffer, 4 warps) */
        {
            const extras e = {0, nullptr, nullptr, nullptr}, ep = {0, table, q, o};
            if (run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, e, " real tiles") ||
                run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, ep, " real tiles +table +q/out") ||
                run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, with(ep, 1), " ... +mask") ||
                run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, with(ep, 2), " ... +merge/out") ||
                run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, with(ep, 4), " ... +rope/store") ||
                run<0, 1, 4, 1>(K, V, nseq, npos, nh, out, with(ep, 7), " ... all three") ||
                run<0, 1, 4, 2>(K, V, nseq, npos, nh, out, e, " real tiles, 3 blocks an SM") ||
                run<0, 1, 4, 2>(K, V, nseq, npos, nh, out, ep,
                                " real tiles +table +q/out, 3 an SM"))
                return 1;
        }
        if (only_real) return 0;
        cudaFree(table), cudaFree(q), cudaFree(o), cudaFree(kn), cudaFree(inv), cudaFree(oh);
        cudaEvent_t a, b;
        cudaEventCreate(&a), cudaEventCreate(&b);
        k_stream<<<132 * 8, 256>>>(K, n, out);
        cudaEventRecord(a);
        for (int r = 0; r < 20; r++) {
            k_stream<<<132 * 8, 256>>>(K, n, out);
            k_stream<<<132 * 8, 256>>>(V, n, out);
        }
        cudaEventRecord(b);
        CK(cudaEventSynchronize(b));
        float ms;
        cudaEventElapsedTime(&ms, a, b);
        printf("stream read of the same bytes            : %7.1f us  %6.0f GB/s\n", ms * 1e3 / 20,
               2.0 * n * 16 * 20 / (ms * 1e-3) / 1e9);
        cudaFree(K), cudaFree(V), cudaFree(out);
    }
    return 0;
}
