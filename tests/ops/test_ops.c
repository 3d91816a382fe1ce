/* test_ops.c: every op of the CPU backend on every ISA this machine runs, against ops_ref.c, on
 * fresh random inputs (seed printed; argv[1] repeats one): error thresholds, NaN/Inf, guard bytes.
 * ISAs the CPU or the build lacks are reported as skipped. avx512 is also compared with avx2 on the
 * same inputs: the same functions everywhere but the decode matvec, whose integer sums are the
 * same and whose float accumulation order differs. */
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "check.h"
#include "testutil.h"
#include "util/error.h"
#include "util/fp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng;
static uint32_t rnd(void) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng >> 33);
}
static float frand(void) {
    return (float)rnd() / 2147483648.0f - 1.0f;
} /* [-1, 1) */

/* Per-op thresholds on the relative L2 error vs the reference. matmul: the decode path uses
 * int16 activations (~3e-5 measured here; make_weight's codes have a positive mean, so each
 * output carries a common term; 3-5e-4 on 4-bit weights with x zero-sum per group, which
 * removes it), the GEMM f32 (~1e-7). */
static const double TOL_MATMUL = 1e-3, TOL_NORM = 1e-5, TOL_ROPE = 1e-6, TOL_ATTN = 1e-5,
                    TOL_SWIGLU = 1e-5;
static double worst_matmul;

/* Output buffers carry GUARD floats of a sentinel pattern before and after. */
enum { GUARD = 16 };
/* Blocks of 4 positions per sequence in the attention test (its max_ctx). */
enum { ATTN_BLOCKS = 80 };
static const uint32_t SENTINEL = 0x7fbadbadu;

/* Out of line, so that GCC's range analysis of the callers' sizes does not trip -Werror. */
__attribute__((noinline)) static float *floats(size_t n) {
    return malloc((n + 1) * sizeof(float));
}

static float *guarded(size_t n) {
    float *p = malloc((n + 2 * GUARD) * sizeof *p);
    for (size_t i = 0; i < n + 2 * GUARD; i++) memcpy(&p[i], &SENTINEL, 4);
    return p + GUARD;
}
static int guards_ok(const float *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++)
        if (memcmp(p - GUARD + i, &SENTINEL, 4) || memcmp(p + n + i, &SENTINEL, 4)) return 0;
    return 1;
}
static void unguard(float *p) {
    free(p - GUARD);
}

static int finite_all(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

static void store(brisk_wtype t, uint8_t *p, size_t i, float v) {
    if (t == BRISK_W_F32)
        memcpy(p + 4 * i, &v, 4);
    else {
        uint16_t h = t == BRISK_W_F16 ? brisk_f32_to_f16(v) : brisk_f32_to_bf16(v);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* A random weight at an odd address (MLX files are unpadded). Buffers in owned[0..2]. */
static brisk_tensor make_weight(brisk_wtype type, int bits, int G, brisk_wtype stype, int64_t rows,
                                int64_t cols, uint8_t **owned) {
    brisk_tensor W = {.type = type,
                      .rows = rows,
                      .cols = cols,
                      .bits = bits,
                      .group_size = G,
                      .stype = stype,
                      .name = "test"};
    const size_t n = (size_t)(rows * cols);
    if (type == BRISK_W_QAFFINE) {
        const size_t cb = n * bits / 8, ng = n / G, sb = stype == BRISK_W_F32 ? 4 : 2;
        owned[0] = malloc(cb + 1);
        for (size_t i = 0; i < cb + 1; i++) owned[0][i] = (uint8_t)rnd();
        owned[1] = malloc(ng * sb + 1);
        owned[2] = malloc(ng * sb + 1);
        for (size_t g = 0; g < ng; g++) {
            store(stype, owned[1] + 1, g, 0.01f + 0.04f * (frand() + 1) / 2);
            store(stype, owned[2] + 1, g, 0.1f * frand());
        }
        W.data = owned[0] + 1, W.scales = owned[1] + 1, W.biases = owned[2] + 1;
    } else {
        const size_t es = type == BRISK_W_F32 ? 4 : 2;
        owned[0] = malloc(n * es + 1);
        for (size_t i = 0; i < n; i++) store(type, owned[0] + 1, i, 0.1f * frand());
        W.data = owned[0] + 1, owned[1] = owned[2] = NULL;
    }
    return W;
}

/* avx512's decode matvec against avx2's: the same integer group sums, summed in another order. */
static const double TOL_AVX512_VS_AVX2 = 1e-5;

/* cmp: a second ISA's backend to compare with (avx2 when testing avx512), or NULL. */
static void test_matmul(brisk_backend *be, brisk_backend *ref, brisk_backend *cmp,
                        const char *isa) {
    /* 1152 columns: more than BRISK_GEMM_KC, so the GEMM accumulates over two K blocks. */
    static const int64_t shapes[][2] = {{37, 256}, {67, 384}, {16, 128}, {5, 192}, {9, 1152}};
    static const int ns[] = {1, 3, 7};
    static const brisk_wtype stypes[] = {BRISK_W_BF16, BRISK_W_F16, BRISK_W_F32};
    for (int kind = 0; kind < 3 + 7 * 3; kind++) {
        brisk_wtype type = kind == 0   ? BRISK_W_F32
                           : kind == 1 ? BRISK_W_F16
                           : kind == 2 ? BRISK_W_BF16
                                       : BRISK_W_QAFFINE;
        const int bits = kind >= 3 ? 2 + (kind - 3) / 3 : 0;  /* 2..8 */
        const int G = kind >= 3 ? 32 << ((kind - 3) % 3) : 0; /* 32, 64, 128 */
        for (size_t si = 0; si < BRISK_ARRAY_LEN(shapes); si++) {
            const int64_t rows = shapes[si][0], cols = shapes[si][1];
            if (G && cols % G) continue;
            if (bits == 7 && (rows * cols * bits) % 32) continue; /* MLX has no 7 bits anyway */
            uint8_t *own[3];
            brisk_tensor W = make_weight(type, bits, G, stypes[rnd() % 3], rows, cols, own);
            for (size_t ni = 0; ni < BRISK_ARRAY_LEN(ns); ni++) {
                const int n = ns[ni];
                float *x = malloc(sizeof(float) * (size_t)(n * cols + 1)), *bias = NULL;
                for (int64_t i = 0; i < n * cols + 1; i++) x[i] = frand();
                const float *xu = x + (rnd() & 1); /* odd float offsets too */
                if (rnd() & 1) {
                    bias = malloc(sizeof(float) * (size_t)rows);
                    for (int64_t i = 0; i < rows; i++) bias[i] = frand();
                }
                const size_t ny = (size_t)n * (size_t)rows;
                float *y = guarded(ny), *yr = floats(ny);
                be->ops->matmul(be, &W, bias, xu, n, y);
                ref->ops->matmul(ref, &W, bias, xu, n, yr);
                const double e = test_rel_l2(y, yr, ny);
                if (e > worst_matmul) worst_matmul = e;
                CHECK_MSG(e <= TOL_MATMUL && finite_all(y, ny) && guards_ok(y, ny),
                          "%s matmul type %d bits %d G %d %lldx%lld n %d: rel L2 %.3g", isa, type,
                          bits, G, (long long)rows, (long long)cols, n, e);
                if (cmp) { /* only the integer decode path may differ, and only by rounding */
                    float *yc = floats(ny);
                    cmp->ops->matmul(cmp, &W, bias, xu, n, yc);
                    const bool qmm = brisk_qmm_supported(&W) && n < BRISK_GEMM_MIN_N;
                    const double ec = test_rel_l2(y, yc, ny);
                    CHECK_MSG(qmm ? ec <= TOL_AVX512_VS_AVX2 : !memcmp(y, yc, ny * 4),
                              "%s vs %s matmul type %d bits %d G %d %lldx%lld n %d: rel L2 %.3g",
                              isa, cmp->ops->name, type, bits, G, (long long)rows, (long long)cols,
                              n, ec);
                    free(yc);
                }
                unguard(y);
                free(yr), free(x), free(bias);
            }
            free(own[0]), free(own[1]), free(own[2]);
        }
    }
    /* Embedding rows: the same dequantization as the reference. */
    uint8_t *own[3];
    brisk_tensor E = make_weight(BRISK_W_QAFFINE, 4, 64, BRISK_W_BF16, 50, 128, own);
    int32_t ids[3] = {0, 49, 17};
    float *o = guarded(3 * 128), *orf = malloc(sizeof(float) * 3 * 128);
    be->ops->embed(be, &E, ids, 3, o);
    ref->ops->embed(ref, &E, ids, 3, orf);
    CHECK_MSG(test_rel_l2(o, orf, 3 * 128) < 1e-6 && guards_ok(o, 3 * 128), "%s embed", isa);
    unguard(o), free(orf), free(own[0]), free(own[1]), free(own[2]);
}

/* The fused ops (matmul_qkv, matmul_add, matmul_swiglu) against the composition of the basic ops:
 * bit for bit on the same backend (forward.c may take either), and within TOL_MATMUL of the
 * reference's composition. Integer-path weights (4/8 bits) and one the fused ops hand back to
 * the composition (bf16, 3 bits); decode sizes and a prefill size (the GEMM). */
static void test_fused(brisk_backend *be, brisk_backend *ref, const char *isa) {
    static const int ns[] = {1, 2, 5, 7};
    static const struct {
        brisk_wtype type;
        int bits, G;
    } kinds[] = {{BRISK_W_QAFFINE, 4, 64},  {BRISK_W_QAFFINE, 4, 32}, {BRISK_W_QAFFINE, 8, 64},
                 {BRISK_W_QAFFINE, 4, 128}, {BRISK_W_QAFFINE, 3, 64}, {BRISK_W_BF16, 0, 0}};
    static const brisk_wtype stypes[] = {BRISK_W_BF16, BRISK_W_F16, BRISK_W_F32};
    const int64_t cols = 256, rq = 68, rk = 18, rf = 131; /* rows not all multiples of 4 */
    for (size_t ki = 0; ki < BRISK_ARRAY_LEN(kinds); ki++) {
        uint8_t *own[5][3];
        brisk_tensor W[5];
        const int64_t rows[5] = {rq, rk, rk, rf, rf};
        for (int i = 0; i < 5; i++)
            W[i] = make_weight(kinds[ki].type, kinds[ki].bits, kinds[ki].G, stypes[rnd() % 3],
                               rows[i], cols, own[i]);
        for (size_t ni = 0; ni < BRISK_ARRAY_LEN(ns); ni++) {
            const int n = ns[ni];
            float *x = floats((size_t)n * cols), *b[3];
            for (int64_t i = 0; i < n * cols; i++) x[i] = frand();
            for (int i = 0; i < 3; i++) {
                b[i] = (rnd() & 1) ? floats((size_t)rows[i]) : NULL;
                for (int64_t r = 0; b[i] && r < rows[i]; r++) b[i][r] = frand();
            }
            /* qkv */
            float *f[3], *c[3], *r[3];
            for (int i = 0; i < 3; i++) {
                f[i] = guarded((size_t)n * rows[i]);
                c[i] = floats((size_t)n * rows[i]);
                r[i] = floats((size_t)n * rows[i]);
                be->ops->matmul(be, &W[i], b[i], x, n, c[i]);
                ref->ops->matmul(ref, &W[i], b[i], x, n, r[i]);
            }
            be->ops->matmul_qkv(be, &W[0], &W[1], &W[2], b[0], b[1], b[2], x, n, f[0], f[1], f[2]);
            for (int i = 0; i < 3; i++) {
                const size_t ny = (size_t)n * rows[i];
                const double e = test_rel_l2(f[i], r[i], ny);
                CHECK_MSG(!memcmp(f[i], c[i], ny * 4) && e <= TOL_MATMUL && guards_ok(f[i], ny),
                          "%s matmul_qkv %d bits %d G %d n %d out %d: rel L2 %.3g (composition "
                          "%s)",
                          isa, kinds[ki].type, kinds[ki].bits, kinds[ki].G, n, i, e,
                          memcmp(f[i], c[i], ny * 4) ? "differs" : "same");
                unguard(f[i]), free(c[i]), free(r[i]);
            }
            /* matmul_add: y += W x on a residual; swiglu: silu(x Wg^T) * (x Wu^T) */
            const size_t nf = (size_t)n * rf;
            float *xf = floats((size_t)n * cols), *y0 = floats(nf);
            for (int64_t i = 0; i < n * cols; i++) xf[i] = frand();
            for (size_t i = 0; i < nf; i++) y0[i] = frand();
            float *fy = guarded(nf), *cy = floats(nf), *ry = floats(nf), *t = floats(nf);
            memcpy(fy, y0, nf * 4), memcpy(cy, y0, nf * 4), memcpy(ry, y0, nf * 4);
            be->ops->matmul_add(be, &W[3], xf, n, fy);
            be->ops->matmul(be, &W[3], NULL, xf, n, t);
            be->ops->add(be, cy, t, nf);
            ref->ops->matmul(ref, &W[3], NULL, xf, n, t);
            ref->ops->add(ref, ry, t, nf);
            double e = test_rel_l2(fy, ry, nf);
            CHECK_MSG(!memcmp(fy, cy, nf * 4) && e <= TOL_MATMUL && guards_ok(fy, nf),
                      "%s matmul_add bits %d G %d n %d: rel L2 %.3g", isa, kinds[ki].bits,
                      kinds[ki].G, n, e);
            /* swiglu: bit for bit the backend's composition, whose two matmuls are each held to
             * TOL_MATMUL against the reference's. Not the product against the reference's
             * product: silu(g) * u turns a gate's absolute error near g = 0 times a large up
             * into a relative one several times the matmuls' (1.07e-3 seen from 1.2-1.4e-5).
             * The reference's gate and up go to matmul_add's buffers ry and t. */
            float *u = floats(nf);
            be->ops->matmul_swiglu(be, &W[3], &W[4], xf, n, fy);
            be->ops->matmul(be, &W[3], NULL, xf, n, cy);
            be->ops->matmul(be, &W[4], NULL, xf, n, u);
            ref->ops->matmul(ref, &W[3], NULL, xf, n, ry);
            ref->ops->matmul(ref, &W[4], NULL, xf, n, t);
            const double eg = test_rel_l2(cy, ry, nf), eu = test_rel_l2(u, t, nf);
            be->ops->swiglu(be, cy, u, nf, cy);
            CHECK_MSG(!memcmp(fy, cy, nf * 4) && eg <= TOL_MATMUL && eu <= TOL_MATMUL &&
                          finite_all(fy, nf) && guards_ok(fy, nf),
                      "%s matmul_swiglu bits %d G %d n %d: gate rel L2 %.3g, up %.3g (composition "
                      "%s)",
                      isa, kinds[ki].bits, kinds[ki].G, n, eg, eu,
                      memcmp(fy, cy, nf * 4) ? "differs" : "same");
            unguard(fy), free(cy), free(ry), free(t), free(u), free(xf), free(y0), free(x);
            for (int i = 0; i < 3; i++) free(b[i]);
        }
        for (int i = 0; i < 5; i++) free(own[i][0]), free(own[i][1]), free(own[i][2]);
    }
}

static void test_elementwise(brisk_backend *be, brisk_backend *ref, const char *isa) {
    const int n = 5, dim = 200, heads = 4, hd = 50;
    const size_t N = (size_t)n * dim;
    float *x = malloc(N * sizeof *x), *w = malloc(dim * sizeof *w), *u = malloc(N * sizeof *u);
    for (size_t i = 0; i < N; i++) x[i] = 3 * frand(), u[i] = frand();
    for (int i = 0; i < dim; i++) w[i] = frand();
    float *a = guarded(N), *b = guarded(N);
    be->ops->rmsnorm(be, x, w, n, dim, 1e-5f, a);
    ref->ops->rmsnorm(ref, x, w, n, dim, 1e-5f, b);
    CHECK_MSG(test_rel_l2(a, b, N) <= TOL_NORM && finite_all(a, N) && guards_ok(a, N), "%s rmsnorm",
              isa);
    /* rope in place on copies */
    int32_t pos[5] = {0, 1, 7, 100, 4000};
    float inv[25];
    for (int j = 0; j < 25; j++) inv[j] = powf(10000.0f, -2.0f * j / hd);
    memcpy(a, x, N * 4), memcpy(b, x, N * 4);
    be->ops->rope(be, a, pos, n, heads, hd, inv);
    ref->ops->rope(ref, b, pos, n, heads, hd, inv);
    CHECK_MSG(test_rel_l2(a, b, N) <= TOL_ROPE && guards_ok(a, N), "%s rope", isa);
    /* swiglu: big enough to take the vector path and the threaded split, plus a tail */
    const size_t S = 70001;
    float *g = malloc(S * 4), *up = malloc(S * 4), *o1 = guarded(S), *o2 = guarded(S);
    for (size_t i = 0; i < S; i++) g[i] = 20 * frand(), up[i] = frand();
    g[0] = -100, g[1] = 100; /* exp range ends */
    be->ops->swiglu(be, g, up, S, o1);
    ref->ops->swiglu(ref, g, up, S, o2);
    CHECK_MSG(test_rel_l2(o1, o2, S) <= TOL_SWIGLU && finite_all(o1, S) && guards_ok(o1, S),
              "%s swiglu rel L2 %.3g", isa, test_rel_l2(o1, o2, S));
    memcpy(o1, g, S * 4), memcpy(o2, g, S * 4);
    be->ops->add(be, o1, up, S);
    ref->ops->add(ref, o2, up, S);
    CHECK_MSG(memcmp(o1, o2, S * 4) == 0 && guards_ok(o1, S), "%s add", isa);
    int32_t rows[2] = {4, 1};
    be->ops->get_rows(be, x, rows, 2, dim, a);
    CHECK_MSG(!memcmp(a, x + 4 * dim, dim * 4) && !memcmp(a + dim, x + dim, dim * 4), "%s get_rows",
              isa);
    unguard(a), unguard(b), unguard(o1), unguard(o2);
    free(x), free(w), free(u), free(g), free(up);
}

/* Values exact in f16 (k/1024, |k| <= 1024): the backend's f16 cache then holds exactly the
 * reference's f32 one, so attention keeps its tight bound. */
static float f16rand(void) {
    return (float)((int)(rnd() % 2049) - 1024) / 1024.0f;
}

/* kv_store into the f16 cache: every value's bits equal util/fp.h's round-to-nearest-even
 * conversion (normals at several scales, subnormals, overflow to inf, exact ties), at scattered
 * slots; slots not stored stay zero. */
static void test_kv_store(brisk_backend *be, const char *isa) {
    enum { N = 6, KVD = 44, SLOTS = 16 };
    CHECK(be->ops->kv_elem_size == sizeof(uint16_t));
    static const float scales[] = {1, 1e-3f, 1e-6f, 3e-8f, 3e4f, 1e5f};
    float k[N * KVD], v[N * KVD];
    for (int i = 0; i < N * KVD; i++) {
        k[i] = frand() * scales[(i / 7) % 6];
        v[i] = frand() * scales[(i / 5) % 6];
    }
    k[3] = 1.0f + 1.0f / 2048, k[4] = 1.0f + 3.0f / 2048; /* ties: round down, round up */
    v[3] = -(2049.0f), v[4] = 65520.0f;                   /* tie at 2048 ulp 2; 65520 -> inf */
    const int32_t slot[N] = {7, 0, 15, 3, 9, 12};
    uint16_t *kc = be->ops->alloc(be, SLOTS * KVD * 2), *vc = be->ops->alloc(be, SLOTS * KVD * 2);
    be->ops->kv_store(be, kc, vc, k, v, slot, N, KVD);
    int bad = 0;
    for (int s = 0; s < SLOTS; s++) {
        int i = -1;
        for (int j = 0; j < N; j++)
            if (slot[j] == s) i = j;
        for (int d = 0; d < KVD; d++) {
            const uint16_t ek = i < 0 ? 0 : brisk_f32_to_f16(k[i * KVD + d]),
                           ev = i < 0 ? 0 : brisk_f32_to_f16(v[i * KVD + d]);
            bad += kc[s * KVD + d] != ek || vc[s * KVD + d] != ev;
        }
    }
    CHECK_MSG(!bad, "%s kv_store: %d values differ from round-to-nearest-even f16", isa, bad);
    be->ops->free(be, kc), be->ops->free(be, vc);
}

/* Two sequences over a shuffled block pool (block 4), with and without windows, per shape:
 * GQA 4:2 hd 24; group 4 with hd 20 (not a multiple of 8: scalar tails); group 6 hd 64 (a
 * group not a multiple of 4); MHA hd 5. Positions reach 300, past the AVX2 kernel's 128-position
 * softmax chunk, and window 200 starts mid-sequence and spans a chunk boundary. */
static void test_attention(brisk_backend *be, brisk_backend *ref, const char *isa) {
    static const int shapes[][3] = {{4, 2, 24}, {8, 2, 20}, {6, 1, 64}, {2, 2, 5}};
    enum { BS = 4, NBLK = 2 * ATTN_BLOCKS, T = 8 };
    int32_t perm[NBLK];
    for (int i = 0; i < NBLK; i++) perm[i] = i;
    for (int i = NBLK - 1; i > 0; i--) {
        const int r = (int)(rnd() % (uint64_t)(i + 1)), x = perm[i];
        perm[i] = perm[r], perm[r] = x;
    }
    const int32_t *tables[2] = {perm, perm + ATTN_BLOCKS};
    int32_t pos[T] = {0, 5, 17, 130, 300, 3, 31, 255}, seq[T] = {0, 0, 0, 0, 0, 1, 1, 1}, slot[T];
    for (int i = 0; i < T; i++) slot[i] = tables[seq[i]][pos[i] / BS] * BS + pos[i] % BS;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
        const int H = shapes[sh][0], HKV = shapes[sh][1], hd = shapes[sh][2], kv_dim = HKV * hd;
        const size_t slots = (size_t)NBLK * BS;
        /* The reference keeps f32 caches; the backend's f16 ones are filled by its kv_store. */
        float *kr = floats(slots * kv_dim), *vr = floats(slots * kv_dim);
        for (size_t i = 0; i < slots * kv_dim; i++) kr[i] = f16rand(), vr[i] = f16rand();
        int32_t *all = malloc(slots * sizeof *all);
        for (size_t i = 0; i < slots; i++) all[i] = (int32_t)i;
        void *kc = be->ops->alloc(be, slots * kv_dim * be->ops->kv_elem_size),
             *vc = be->ops->alloc(be, slots * kv_dim * be->ops->kv_elem_size);
        be->ops->kv_store(be, kc, vc, kr, vr, all, (int)slots, kv_dim);
        float *q = floats((size_t)T * H * hd);
        for (int i = 0; i < T * H * hd; i++) q[i] = 2 * frand();
        static const int wins[] = {0, 8, 200};
        for (int w = 0; w < 3; w++) {
            brisk_attn_batch b = {.n_tokens = T,
                                  .pos = pos,
                                  .seq = seq,
                                  .slot = slot,
                                  .block_tables = tables,
                                  .block_size = BS,
                                  .sliding_window = wins[w]};
            const size_t N = (size_t)T * H * hd;
            float *o = guarded(N), *orf = floats(N);
            be->ops->attention(be, q, kc, vc, &b, H, HKV, hd, o);
            ref->ops->attention(ref, q, kr, vr, &b, H, HKV, hd, orf);
            CHECK_MSG(test_rel_l2(o, orf, N) <= TOL_ATTN && finite_all(o, N) && guards_ok(o, N),
                      "%s attention H %d HKV %d hd %d window %d: rel L2 %.3g", isa, H, HKV, hd,
                      wins[w], test_rel_l2(o, orf, N));
            unguard(o), free(orf);
        }
        be->ops->free(be, kc), be->ops->free(be, vc), free(q), free(kr), free(vr), free(all);
    }
}

/* Whether name is one of the comma-separated list's entries. */
static bool isa_listed(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

int main(int argc, char **argv) {
    rng = argc > 1 ? strtoull(argv[1], NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (rerun: test_ops %llu)\n", (unsigned long long)rng, (unsigned long long)rng);
    const brisk_backend_init init = {
        .max_tokens = 8, .max_ctx = ATTN_BLOCKS * 4, .max_cols = 1152, .n_threads = 2};
    brisk_backend *ref = NULL;
    CHECK(brisk_backend_ref_create(&init, &ref) == BRISK_OK);
    char isas[64];
    snprintf(isas, sizeof isas, "%s", brisk_cpu_isas_available());
    printf("ISAs: %s\n", isas);
    static const char *const known[] = {"avx512", "avx2", "neon", "generic"};
    for (size_t i = 0; i < BRISK_ARRAY_LEN(known); i++) {
        if (isa_listed(isas, known[i])) continue;
        brisk_backend *no = NULL;
        CHECK(brisk_backend_cpu_create_isa(&init, known[i], &no) == BRISK_ERR_UNSUPPORTED && !no);
        printf("%-8s skipped (not available on this CPU or build)\n", known[i]);
    }
    const bool have_avx2 = isa_listed(isas, "avx2");
    for (char *isa = strtok(isas, ","); isa; isa = strtok(NULL, ",")) {
        brisk_backend *be = NULL, *cmp = NULL;
        CHECK(brisk_backend_cpu_create_isa(&init, isa, &be) == BRISK_OK);
        if (!be) continue;
        if (!strcmp(isa, "avx512") && have_avx2)
            CHECK(brisk_backend_cpu_create_isa(&init, "avx2", &cmp) == BRISK_OK);
        worst_matmul = 0;
        test_matmul(be, ref, cmp, isa);
        if (cmp) cmp->ops->destroy(cmp);
        test_fused(be, ref, isa);
        test_elementwise(be, ref, isa);
        test_kv_store(be, isa);
        test_attention(be, ref, isa);
        printf("%-8s worst matmul rel L2 %.3g\n", isa, worst_matmul);
        be->ops->destroy(be);
    }
    brisk_backend *none = NULL;
    CHECK(brisk_backend_cpu_create_isa(&init, "no-such-isa", &none) == BRISK_ERR_UNSUPPORTED &&
          !none);
    ref->ops->destroy(ref);
    CHECK_DONE();
}
