/* cuda_sample.cu: choosing a step's tokens on the device. The greedy argmax (at the end), and the
 * sampler chain (temperature, top-k, top-p, min-p and the draw with the uniform the host's
 * generator produced), as engine/sampler.c defines it, so a sampled decode step returns (token,
 * logprob) instead of a 0.5 MB row of logits. Both put their rows where cu_chosen_dst says.
 *
 * Whatever the filters, the kept ids are a top set in the (logit desc, id asc) order, i.e. the ids
 * whose rank key (key64) is >= the key K* of the last kept one, and the draw walks them in id
 * order. Four launches of SP_SLICES blocks per row, block b on slice b of the row; the last block
 * of a row to finish a launch (device-scope counter; it merges in a fixed order) does the row's
 * serial part:
 *   1 stats   slice max / argmax / NaN / sum exp        last block: max, lse (as the host)
 *   2 hist    count (and probability, for top-p) of the ids >= max + log min_p in 1/32-nat bins
 *             of distance from the max                   last block: K* when min-p decides or no
 *             filter is on; else the bin holding the top-k or top-p edge
 *   3 gather  that bin's ids into a list                 last block: the edge in the list (by
 *             counting or a radix select) -> K*; when the bin holds more than SP_CAP ids, the
 *             edge narrowed over the row instead (row_select)
 *   4 draw    per-slice sums of exp((x - max) / T) over the kept ids
 *                                                        last block: the slice where the running
 *             sum passes u * total, then the id in it (a block scan in id order).
 * Probabilities are summed as integers (units of 2^-40) so the top-p edge does not depend on the
 * order of the atomics: every result is deterministic. Fixed launch shapes, no host sync, and the
 * per-step inputs (filters, u) are read from the scratch, which the caller refreshes before the
 * launch: a captured graph replays any step. The typical path reads the row four times with all
 * blocks; the fallback over the row (an edge bin of more than SP_CAP near-equal logits) adds one
 * block's passes over it: one when the edge's group holds a single logit (a flat row, ties: the
 * edge is then a rank in id order), else up to four histogram passes of 8 logit bits, then one
 * that lists the group once it fits SP_CAP. */
#include "cuda_internal.h"

#include <math.h>
#include <stdint.h>

#define SP_SLICES       32 /* blocks per row in each launch; = warp size (merges use one warp) */
#define SP_THREADS      512
#define SP_NBIN         1024 /* distance bins: the last one takes d >= 1023/32 nats and -inf */
#define SP_BINS_PER_NAT 32.0f
#define SP_CAP          4096            /* edge-bin ids the last block ranks in shared memory */
#define SP_UNROLL       8               /* loads in flight per thread in one block's row pass */
#define SP_FIX          1099511627776.0 /* 2^40: fixed-point unit of probabilities */

typedef unsigned long long u64;

enum { SEL_ALL = 0, SEL_KEY, SEL_RANK, SEL_MASS };

/* A row's state between the launches. */
struct sp_row {
    float mx, lse; /* max and log-sum-exp of the row at temperature 1 */
    int best;      /* first index of the max */
    int bad;       /* a NaN or +inf, or every logit -inf: nothing to draw from */
    int mode;      /* SEL_*: how K* is found */
    int bin;       /* RANK / MASS: the edge bin */
    uint32_t bin_count;
    uint32_t rank;    /* RANK: the edge's rank in the bin; MASS: the top-k / min-p edge's rank in
                         the bin when it may come before the top-p edge, else 0 */
    u64 target;       /* MASS: top_p in fixed point */
    u64 mass_before;  /* MASS: probability of the bins before the edge bin */
    u64 kstar;        /* the key of the last kept id (0: all kept) */
    u64 kand, kor;    /* AND and OR of the edge bin's keys: the radix digits that vary */
    uint32_t list_n;  /* ids gathered */
    uint32_t done[4]; /* arrival counters of the four launches, zero between launches */
};

struct sp_buf {
    sp_row r;
    float smax[SP_SLICES];
    int sidx[SP_SLICES], sbad[SP_SLICES];
    double ssum[SP_SLICES];
    double wsum[SP_SLICES];
    int wlast[SP_SLICES];
    uint32_t scnt[SP_SLICES]; /* launch 3: ids of the edge bin per slice */
    uint32_t hcnt[SP_NBIN];
    u64 hmass[SP_NBIN];
    u64 list[SP_CAP];
};

static __host__ __device__ inline size_t sp_align(size_t x) {
    return (x + 255) & ~(size_t)255;
}
static __host__ __device__ inline size_t sp_off_buf(int cap) {
    return sp_align((size_t)cap * sizeof(cu_sample_in));
}

size_t cu_sample_bytes(int cap) {
    return sp_off_buf(cap) + (size_t)cap * sizeof(sp_buf);
}

/* ---------------------------------------------------------------------------------------------
 * Pieces: keys, bins, probabilities, the host's exp, block reductions
 * ------------------------------------------------------------------------------------------- */

/* Monotone map of a float to uint32 (a < b => ord(a) < ord(b)); -0 maps as +0, as they compare. */
__device__ __forceinline__ uint32_t ord32(float x) {
    const uint32_t b = __float_as_uint(x == 0.0f ? 0.0f : x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float unord32(uint32_t u) {
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

/* Rank key: a larger key ranks first in the (logit desc, id asc) order. */
__device__ __forceinline__ u64 key64(float x, int i) {
    return ((u64)ord32(x) << 32) | (u64)(0xffffffffu - (uint32_t)i);
}

/* Distance bin of x below the max (the same float operations in every launch). */
__device__ __forceinline__ int bin_of(float x, float mx) {
    const float d = __fmul_rn(__fsub_rn(mx, x), SP_BINS_PER_NAT);
    return d < (float)(SP_NBIN - 1) ? (int)d : SP_NBIN - 1;
}

/* exp(x - lse) in units of 2^-40, as the host's exp((double)x - lse). */
__device__ __forceinline__ u64 pfix(float x, float lse) {
    return __double2ull_rn(exp((double)x - (double)lse) * SP_FIX);
}

/* m added to a sum of probabilities in shared memory, as 32-bit atomics on its two words with the
 * carry: a 64-bit atomic add there is a CAS loop, which lanes on one address (a flat row's 32 on
 * one bin) serialise retry by retry; the sum is the same integer. */
__device__ __forceinline__ void add_fix(u64 *sum, u64 m) {
    uint32_t *w = reinterpret_cast<uint32_t *>(sum); /* little-endian: w[0] the low word */
    const uint32_t lo = (uint32_t)m, old = atomicAdd(&w[0], lo);
    const uint32_t hi = (uint32_t)(m >> 32) + (uint32_t)(old + lo < old);
    if (hi) atomicAdd(&w[1], hi);
}

/* util/vmath.h brisk_exp_nonpos, operation for operation (no contraction): the draw's weights. */
__device__ __forceinline__ float exp_nonpos(float x) {
    uint32_t xu = __float_as_uint(x);
    const uint32_t in = 0u - (uint32_t)(xu <= 0xC2AE0000u);
    xu = (xu & in) | (0xC2AE0000u & ~in);
    const float t = __fmul_rn(__uint_as_float(xu), 1.44269504088896341f);
    const float z = __fadd_rn(t, 12582912.0f);
    const float f = __fsub_rn(t, __fsub_rn(z, 12582912.0f));
    float p = 1.5403530e-4f;
    p = __fadd_rn(__fmul_rn(p, f), 1.3333558e-3f);
    p = __fadd_rn(__fmul_rn(p, f), 9.6181291e-3f);
    p = __fadd_rn(__fmul_rn(p, f), 5.5504109e-2f);
    p = __fadd_rn(__fmul_rn(p, f), 2.4022651e-1f);
    p = __fadd_rn(__fmul_rn(p, f), 6.9314718e-1f);
    p = __fadd_rn(__fmul_rn(p, f), 1.0f);
    uint32_t pu = __float_as_uint(p);
    pu += (__float_as_uint(z) - 0x4B400000u) << 23;
    return __uint_as_float(pu & in);
}

__device__ __forceinline__ float weight(float x, float mx, float inv_t) {
    return exp_nonpos(__fmul_rn(__fsub_rn(x, mx), inv_t));
}

struct sp_filters {
    bool k, p, m;
    float thresh; /* max + log min_p, or -inf */
};

__device__ __forceinline__ sp_filters filters_of(const brisk_sample_params &p, int V, float mx) {
    sp_filters f;
    f.k = p.top_k > 0 && p.top_k < V;
    f.p = p.top_p > 0.0f && p.top_p < 1.0f;
    f.m = p.log_min_p > -INFINITY;
    f.thresh = f.m ? __fadd_rn(mx, p.log_min_p) : -INFINITY;
    return f;
}

struct op_add {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct op_max {
    __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};
struct op_and {
    __device__ u64 operator()(u64 a, u64 b) const { return a & b; }
};
struct op_or {
    __device__ u64 operator()(u64 a, u64 b) const { return a | b; }
};

/* Block-wide reduction in a fixed order (deterministic); every thread gets the result. sh: 32
 * entries of shared memory, free on entry. */
template <typename T, typename Op> __device__ T block_reduce(T v, Op op, T *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = sh[0];
    for (int k = 1; k < nw; k++) v = op(v, sh[k]);
    return v;
}

/* Inclusive prefix sum over the block in thread order (fixed order); *total gets the block's
 * sum. sh: 32 entries of shared memory, free on entry. */
template <typename T> __device__ T block_scan(T v, T *sh, T *total) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        const T t = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += t;
    }
    __syncthreads();
    if (lane == 31) sh[w] = v;
    __syncthreads();
    T off = 0, tot = 0;
    for (int k = 0; k < nw; k++) {
        if (k < w) off += sh[k];
        tot += sh[k];
    }
    *total = tot;
    return v + off;
}

/* True in every thread of the last block of this row to get here. Each block's global writes are
 * fenced before it counts itself; the last one resets the counter for the next launch. Data the
 * other blocks wrote is then read with __ldcg (from L2). */
__device__ bool arrive_last(uint32_t *counter) {
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counter, 1u) == SP_SLICES - 1;
        if (last) *counter = 0;
        __threadfence();
    }
    __syncthreads();
    return last != 0;
}

/* A chosen row's result to dst's token slot and host slot (cu_chosen_dst). */
__device__ __forceinline__ void put_chosen(const cu_chosen_dst &d, int row, int id, float lp) {
    if (d.tok) d.tok[row] = id;
    if (d.host) {
        cu_sample_out o;
        o.id = id, o.lp = lp;
        d.host[(size_t)*d.slot * d.cap + row] = o;
    }
}

/* One warp: positions j = 0..nb-1 (nb a multiple of 32) stand for bins (desc ? nb-1-j : j) of
 * cnt[] / mass[]. Finds the first non-empty position where the running sum, counting it, reaches
 * target: of counts, or of masses when by_mass. pos -1 when none; the sums are over the positions
 * before pos (c_total / m_total over all). Every lane gets the result. */
struct wfind {
    int pos;
    u64 c_before, m_before, c_total, m_total;
};

__device__ wfind warp_find(const uint32_t *cnt, const u64 *mass, int nb, bool desc, bool by_mass,
                           u64 target) {
    const int lane = threadIdx.x & 31, per = nb / 32, j0 = lane * per;
    u64 c = 0, m = 0;
    for (int j = j0; j < j0 + per; j++) {
        const int b = desc ? nb - 1 - j : j;
        c += cnt[b];
        if (mass) m += mass[b];
    }
    u64 ic = c, im = m;
    for (int o = 1; o < 32; o <<= 1) {
        const u64 tc = __shfl_up_sync(0xffffffffu, ic, o), tm = __shfl_up_sync(0xffffffffu, im, o);
        if (lane >= o) ic += tc, im += tm;
    }
    wfind r;
    r.c_total = __shfl_sync(0xffffffffu, ic, 31);
    r.m_total = __shfl_sync(0xffffffffu, im, 31);
    u64 rc = ic - c, rm = im - m, fc = 0, fm = 0;
    int found = -1;
    for (int j = j0; j < j0 + per; j++) {
        const int b = desc ? nb - 1 - j : j;
        const u64 cj = cnt[b], mj = mass ? mass[b] : 0;
        if (found < 0 && cj > 0 && (by_mass ? rm + mj : rc + cj) >= target)
            found = j, fc = rc, fm = rm;
        rc += cj, rm += mj;
    }
    const unsigned bal = __ballot_sync(0xffffffffu, found >= 0);
    if (!bal) {
        r.pos = -1, r.c_before = r.c_total, r.m_before = r.m_total;
        return r;
    }
    const int src = __ffs(bal) - 1;
    r.pos = __shfl_sync(0xffffffffu, found, src);
    r.c_before = __shfl_sync(0xffffffffu, fc, src);
    r.m_before = __shfl_sync(0xffffffffu, fm, src);
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Selection of the edge (one block): in a set of distinct keys, the element at rank `target` (1 =
 * the largest key), or with by_mass the first element at which mass0 plus the probabilities of the
 * elements from the largest key down to it reaches `target` (the last element when it never does);
 * with a cap (a top-k / min-p edge in the same set) the element at the smaller of that rank and
 * the cap. A list of up to SP_CAP keys in shared memory is ranked by counting (up to SP_THREADS
 * keys) or by a radix select; a larger set is narrowed over the row (row_select).
 * ------------------------------------------------------------------------------------------- */

struct rsel {
    u64 key;   /* the element */
    u64 above; /* elements of the set before it */
};

/* A digit histogram of the selection's passes. */
struct sel_hist {
    uint32_t bc[256];             /* elements per digit */
    u64 bm[256];                  /* their probability (by mass) */
    uint32_t band[256], bor[256]; /* AND / OR of their ord32 logits: the logit bits that vary */
};

__device__ void hist_clear(sel_hist &h) {
    for (int j = threadIdx.x; j < 256; j += blockDim.x) h.bc[j] = 0, h.bm[j] = 0, h.band[j] = ~0u;
    for (int j = threadIdx.x; j < 256; j += blockDim.x) h.bor[j] = 0;
}

/* One step of a warp (all 32 lanes, a match): the lanes with ok count their element in digit d;
 * o = ord32 of its logit. Lanes with the same logit and digit add as one: one exp and one set of
 * atomics per group, so a pass over a bin of a few tied logits costs a few exps per step. */
__device__ __forceinline__ void hist_step(sel_hist &h, bool ok, uint32_t o, int d, bool by_mass,
                                          float lse) {
    if (!__ballot_sync(0xffffffffu, ok)) return; /* (most steps of a narrowed group's pass) */
    /* ~0 is a NaN's (o, d): no element of a sampled row has it */
    const unsigned same = __match_any_sync(0xffffffffu, ok ? ((u64)o << 32) | (u64)d : ~0ull);
    if (!ok || (int)(threadIdx.x & 31) != __ffs(same) - 1) return;
    const uint32_t c = (uint32_t)__popc(same);
    atomicAdd(&h.bc[d], c);
    if (by_mass) add_fix(&h.bm[d], (u64)c * pfix(unord32(o), lse));
    atomicAnd(&h.band[d], o);
    atomicOr(&h.bor[d], o);
}

/* Radix select in a list (each_list): 8-bit digits from the top, skipping the digits all keys
 * share (kand/kor). */
template <class Each>
__device__ rsel radix_select(const Each &each, u64 kand, u64 kor, bool by_mass, u64 target,
                             u64 mass0, float lse, sel_hist &h) {
    __shared__ u64 prefix, mask, above, mass_above, rank;
    __shared__ int use_mass;
    const u64 vary = kand ^ kor;
    if (threadIdx.x == 0) {
        prefix = kand & ~vary, mask = ~vary, above = 0, mass_above = mass0;
        use_mass = by_mass, rank = target;
    }
    __syncthreads();
    for (int sh = 56; sh >= 0; sh -= 8) {
        if (((vary >> sh) & 255) == 0) continue;
        hist_clear(h);
        __syncthreads();
        const u64 pf = prefix, mk = mask;
        const bool bym = use_mass != 0;
        each([&](u64 k, bool in) {
            hist_step(h, in && (k & mk) == pf, (uint32_t)(k >> 32), (int)((k >> sh) & 255), bym,
                      lse);
        });
        __syncthreads();
        if (threadIdx.x < 32) {
            wfind f;
            if (bym) {
                f = warp_find(h.bc, h.bm, 256, true, true,
                              target > mass_above ? target - mass_above : 0);
                if (f.pos < 0) /* the set's mass stays below: its last element, by rank */
                    f = warp_find(h.bc, h.bm, 256, true, false, f.c_total);
            } else {
                f = warp_find(h.bc, h.bm, 256, true, false, rank - above);
            }
            /* every lane has read rank / above / mass_above before lane 0 updates them (the
             * shuffles order the lanes' steps, not their shared-memory accesses) */
            __syncwarp();
            if (threadIdx.x == 0) {
                const int d = f.pos < 0 ? 0 : 255 - f.pos; /* (never < 0: the set is not empty) */
                if (bym && f.m_before + mass_above + h.bm[d] < target) {
                    use_mass = 0; /* from here on: the last element of the group */
                    rank = above + f.c_before + h.bc[d];
                }
                prefix |= (u64)d << sh;
                mask |= (u64)255 << sh;
                above += f.c_before;
                mass_above += f.m_before;
            }
        }
        __syncthreads();
    }
    rsel r;
    r.key = prefix, r.above = above;
    __syncthreads(); /* the shared state may be reused by the next call */
    return r;
}

/* The same selection over n <= blockDim.x keys in shared memory, by counting: a key's rank is the
 * number of larger keys; the keys go to their rank's place and a block scan sums their
 * probabilities in that order (a few barriers instead of a radix pass per varying digit). */
__device__ rsel small_select(const u64 *keys, int n, bool by_mass, u64 target, u64 mass0,
                             float lse) {
    __shared__ u64 sorted[SP_THREADS], sh[32];
    __shared__ int first;
    const int t = threadIdx.x;
    if (t == 0) first = n - 1; /* the last element when the mass never reaches the target */
    if (t < n) {
        const u64 k = keys[t];
        int rank = 0;
        for (int j = 0; j < n; j++) rank += keys[j] > k;
        sorted[rank] = k;
    }
    __syncthreads();
    if (by_mass) {
        const u64 m = t < n ? pfix(unord32((uint32_t)(sorted[t] >> 32)), lse) : 0;
        u64 tot;
        const u64 inc = block_scan(m, sh, &tot);
        if (t < n && mass0 + inc >= target) atomicMin(&first, t);
    } else if (t == 0) {
        first = (int)target - 1;
    }
    __syncthreads();
    rsel r;
    r.key = sorted[first], r.above = (u64)first;
    __syncthreads(); /* the shared state may be reused by the next call */
    return r;
}

/* The keys of a list in shared memory, in steps of whole warps (hist_step's match). */
struct each_list {
    const u64 *keys;
    int n;
    template <class F> __device__ void operator()(F f) const {
        for (int b = 0; b < n; b += blockDim.x) {
            const int j = b + threadIdx.x;
            f(j < n ? keys[j] : 0, j < n);
        }
    }
};

/* The selection in n keys of shared memory (ka / ko: their AND and OR); cap 0: none. */
__device__ rsel list_select(const u64 *keys, int n, u64 ka, u64 ko, bool by_mass, u64 target,
                            u64 mass0, u64 cap, float lse, sel_hist &h) {
    rsel s = {0, 0}; /* K* 0 keeps every id: only logits that changed under the chain get here */
    if (n == 0) return s;
    if (n <= SP_THREADS) {
        s = small_select(keys, n, by_mass, target, mass0, lse);
        if (by_mass && cap > 0 && cap < s.above + 1) s = small_select(keys, n, false, cap, 0, 0);
    } else {
        const each_list src = {keys, n};
        s = radix_select(src, ka, ko, by_mass, target, mass0, lse, h);
        if (by_mass && cap > 0 && cap < s.above + 1)
            s = radix_select(src, ka, ko, false, cap, 0, 0, h);
    }
    return s;
}

/* The edge bin in the row: ids with x >= thresh in distance bin `bin`. */
struct each_row {
    const float *x;
    int V, bin;
    float mx, thresh;
    __device__ bool has(float v) const { return v >= thresh && bin_of(v, mx) == bin; }
    /* f(i, x[i], i < V) for every id in steps of whole warps over 32 consecutive ids, SP_UNROLL
     * loads issued per thread before any is used: one block alone reads the row, so its pace is
     * the bytes it has in flight (16 KB, not 2 KB) per L2 round trip. */
    template <class F> __device__ void steps(F f) const {
        for (int b = 0; b < V; b += SP_THREADS * SP_UNROLL) {
            float v[SP_UNROLL];
            for (int u = 0; u < SP_UNROLL; u++) {
                const int i = b + u * SP_THREADS + (int)threadIdx.x;
                v[u] = i < V ? x[i] : 0.0f;
            }
            for (int u = 0; u < SP_UNROLL; u++) {
                const int i = b + u * SP_THREADS + (int)threadIdx.x;
                f(i, v[u], i < V);
            }
        }
    }
};

/* The r-th lowest id (r >= 1) in [lo, hi) whose logit's ord32 is o, or -1 when there are fewer.
 * The range is cut into at most SP_THREADS segments of L ids (a multiple of 32); each warp counts
 * a contiguous run of them (SP_UNROLL loads in flight per lane), a block scan of the counts finds
 * the segment, and one warp walks it. */
__device__ int id_select(const float *x, int lo, int hi, uint32_t o, u64 r, uint32_t *seg) {
    __shared__ u64 sh[32], seg_r;
    __shared__ int seg_at, id;
    const int t = threadIdx.x, lane = t & 31, w = t >> 5, nw = SP_THREADS / 32;
    const int L = ((hi - lo + SP_THREADS - 1) / SP_THREADS + 31) & ~31, ns = (hi - lo + L - 1) / L;
    const int per = (ns + nw - 1) / nw;              /* segments per warp */
    const int run = min(hi, lo + (w + 1) * per * L); /* the end of this warp's segments */
    for (int s = w * per; s < min(ns, (w + 1) * per); s++)
        if (lane == 0) seg[s] = 0;
    for (int b = lo + w * per * L; b < run; b += 32 * SP_UNROLL) {
        float v[SP_UNROLL];
        for (int u = 0; u < SP_UNROLL; u++) {
            const int i = b + 32 * u + lane;
            v[u] = i < run ? x[i] : 0.0f;
        }
        for (int u = 0; u < SP_UNROLL; u++) {
            const int i = b + 32 * u;
            const unsigned m = __ballot_sync(0xffffffffu, i + lane < run && ord32(v[u]) == o);
            if (lane == 0 && m) seg[(i - lo) / L] += (uint32_t)__popc(m); /* (L: whole steps) */
        }
    }
    if (t == 0) seg_at = -1, id = -1;
    __syncthreads();
    u64 tot;
    const u64 own = t < ns ? seg[t] : 0, inc = block_scan(own, sh, &tot);
    if (own > 0 && inc >= r && inc - own < r) seg_at = t, seg_r = r - (inc - own);
    __syncthreads();
    if (w == 0 && seg_at >= 0) {
        const int a = lo + seg_at * L, e = min(hi, a + L);
        u64 need = seg_r;
        for (int b = a; b < e; b += 32 * SP_UNROLL) {
            float v[SP_UNROLL];
            for (int u = 0; u < SP_UNROLL; u++) {
                const int i = b + 32 * u + lane;
                v[u] = i < e ? x[i] : 0.0f;
            }
            bool found = false;
            for (int u = 0; u < SP_UNROLL && !found; u++) {
                const int i = b + 32 * u + lane;
                const bool m = i < e && ord32(v[u]) == o;
                const unsigned bal = __ballot_sync(0xffffffffu, m);
                if ((u64)__popc(bal) >= need) { /* the need-th match of this step */
                    const unsigned lt = bal & ((1u << lane) - 1);
                    const unsigned at =
                        __ballot_sync(0xffffffffu, m && (u64)__popc(lt) == need - 1);
                    if (lane == 0) id = i - lane + __ffs(at) - 1;
                    found = true;
                }
                need -= (u64)__popc(bal);
            }
            if (found) break;
        }
    }
    __syncthreads();
    return id;
}

/* The selection in the edge bin when it holds more than SP_CAP ids, one block over the row. The
 * candidates are a group of the bin: its ids whose ord32 logit & mask == prefix (vary: the bits
 * in which they differ), n of them after `above` of the bin. Each pass histograms the next 8
 * varying logit bits from the top (with probabilities while the mass decides) and keeps the digit
 * that holds the edge, until the group
 *   - holds one logit: its ids rank by id, and by mass the edge is the first j with mass_above +
 *     j p >= target (p the logit's probability): id_select finds the j-th id (one pass). A flat
 *     row or a bin of ties goes here at once (kand / kor), and then launch 3's per-slice counts
 *     of the bin leave one slice to search;
 *   - or fits SP_CAP ids: one pass lists them in shared memory, then list_select.
 * At most four histogram passes; the cap is carried along (dropped once the mass edge's group
 * ends before it; the selection turns into a rank one when it comes first). */
struct row_sel {
    uint32_t prefix, mask, vary;
    int use_mass;
    u64 n, above, mass_above, rank, cap;
};

/* Warp 0, after a histogram pass: the digit holding the edge; S becomes its group. */
__device__ void row_pick(const sel_hist &h, row_sel &S, u64 target) {
    const u64 above = S.above, mass_above = S.mass_above, cap = S.cap;
    bool bym = S.use_mass != 0;
    u64 rank = S.rank;
    wfind f;
    if (bym) {
        f = warp_find(h.bc, h.bm, 256, true, true, target > mass_above ? target - mass_above : 0);
        u64 to = 0;
        if (f.pos < 0) /* the group's mass stays below: its last element */
            to = above + f.c_total;
        else if (cap > 0 && cap <= above + f.c_before) /* the cap comes before the mass edge */
            to = cap;
        if (to > 0) bym = false, rank = cap > 0 && cap < to ? cap : to;
    }
    if (!bym) f = warp_find(h.bc, h.bm, 256, true, false, rank - above);
    __syncwarp(); /* every lane has read S before lane 0 writes it */
    if ((threadIdx.x & 31) == 0) {
        const int d = f.pos < 0 ? 0 : 255 - f.pos; /* (never < 0: the group is not empty) */
        const uint32_t vary = h.band[d] ^ h.bor[d];
        S.use_mass = bym, S.rank = rank;
        /* a cap past the group comes after the mass edge: no longer needed */
        S.cap = bym && cap > 0 && cap <= above + f.c_before + h.bc[d] ? cap : 0;
        S.above = above + f.c_before, S.mass_above = mass_above + f.m_before;
        S.n = h.bc[d], S.vary = vary, S.mask = ~vary, S.prefix = h.band[d] & ~vary;
    }
}

__device__ u64 row_select(const each_row &row, const uint32_t *scnt, u64 ka, u64 ko, u64 n,
                          bool by_mass, u64 target, u64 mass0, u64 cap, float lse, sel_hist &h,
                          u64 *keys, uint32_t *seg) {
    __shared__ row_sel S;
    __shared__ uint32_t got;
    __shared__ u64 red[32];
    const int t = threadIdx.x, lane = t & 31;
    int passes = 0;
    if (t == 0) {
        const uint32_t vary = (uint32_t)((ka ^ ko) >> 32);
        S.vary = vary, S.mask = ~vary, S.prefix = (uint32_t)(ka >> 32) & ~vary;
        S.use_mass = by_mass, S.n = n, S.above = 0, S.mass_above = mass0;
        S.rank = by_mass ? 0 : target, S.cap = by_mass ? cap : 0;
    }
    __syncthreads();
    while (S.vary != 0 && S.n > SP_CAP) {
        const uint32_t mask = S.mask, prefix = S.prefix;
        const int sh = max(0, 31 - __clz(S.vary) - 7); /* the top 8 bits from the highest varying */
        const bool bym = S.use_mass != 0;
        hist_clear(h);
        __syncthreads();
        row.steps([&](int, float v, bool in) {
            const uint32_t o = ord32(v);
            hist_step(h, in && row.has(v) && (o & mask) == prefix, o, (int)((o >> sh) & 255), bym,
                      lse);
        });
        __syncthreads();
        if (t < 32) row_pick(h, S, target);
        __syncthreads();
        passes++;
    }
    const uint32_t mask = S.mask, prefix = S.prefix;
    if (S.vary == 0) { /* one logit: the edge's rank in the group, then its id */
        __shared__ u64 r;
        __shared__ int lo, hi;
        if (t == 0) {
            u64 pos = S.rank;
            if (S.use_mass) {
                const u64 p = pfix(unord32(prefix), lse), ma = S.mass_above;
                const u64 need = target > ma ? target - ma : 0;
                u64 j = need == 0 ? 1 : p == 0 ? S.n : (need + p - 1) / p;
                if (j > S.n) j = S.n; /* the group's mass stays below: its last element */
                pos = S.above + j;
                if (S.cap > 0 && S.cap < pos) pos = S.cap;
            }
            r = pos - S.above, lo = 0, hi = row.V;
        }
        __syncthreads();
        if (passes == 0 && t < 32) { /* the whole bin: launch 3 counted its ids per slice */
            const u64 rr = r, c = __ldcg(&scnt[t]);
            u64 inc = c;
            for (int k = 1; k < 32; k <<= 1) {
                const u64 u = __shfl_up_sync(0xffffffffu, inc, k);
                if (t >= k) inc += u;
            }
            const unsigned bal = __ballot_sync(0xffffffffu, inc >= rr);
            if (bal && t == __ffs(bal) - 1) {
                const int per = (row.V + SP_SLICES - 1) / SP_SLICES;
                lo = min(row.V, t * per), hi = min(row.V, lo + per), r = rr - (inc - c);
            }
        }
        __syncthreads();
        const int id = id_select(row.x, lo, hi, prefix, r, seg);
        return (u64)prefix << 32 | (u64)(0xffffffffu - (uint32_t)id);
    }
    /* at most SP_CAP ids: list them, then select among them */
    if (t == 0) got = 0;
    __syncthreads();
    row.steps([&](int i, float v, bool in) {
        const bool ok = in && row.has(v) && (ord32(v) & mask) == prefix;
        const unsigned bal = __ballot_sync(0xffffffffu, ok);
        if (!bal) return;
        uint32_t at = 0;
        if (lane == __ffs(bal) - 1) at = atomicAdd(&got, (uint32_t)__popc(bal));
        at = __shfl_sync(0xffffffffu, at, __ffs(bal) - 1) + __popc(bal & ((1u << lane) - 1));
        if (ok && at < SP_CAP) keys[at] = key64(v, i);
    });
    __syncthreads();
    const int m = got < SP_CAP ? (int)got : SP_CAP;
    u64 a = ~0ull, o = 0;
    for (int j = t; j < m; j += blockDim.x) a &= keys[j], o |= keys[j];
    a = block_reduce(a, op_and(), red);
    o = block_reduce(o, op_or(), red);
    const bool bym = S.use_mass != 0;
    const u64 above = S.above;
    return list_select(keys, m, a, o, bym, bym ? target : S.rank - above, S.mass_above,
                       S.cap > 0 ? S.cap - above : 0, lse, h)
        .key;
}

/* ---------------------------------------------------------------------------------------------
 * The four launches
 * ------------------------------------------------------------------------------------------- */

__device__ __forceinline__ sp_buf *buf_of(char *scr, int cap, int row) {
    return (sp_buf *)(scr + sp_off_buf(cap)) + row;
}
__device__ __forceinline__ const cu_sample_in *in_of(const char *scr, int row) {
    return (const cu_sample_in *)scr + row;
}

/* 1: slice statistics; the last block: max, first argmax, lse, NaN/+inf. Also clears the
 * histogram and list that launches 2 and 3 fill with atomics. */
__global__ void __launch_bounds__(SP_THREADS)
    k_sp_stats(const float *logits, int V, char *scr, int cap) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.y, b = blockIdx.x, t = threadIdx.x;
    sp_buf *B = buf_of(scr, cap, row);
    const float *x = logits + (size_t)row * V;
    const int per = (V + SP_SLICES - 1) / SP_SLICES, lo = min(V, b * per), hi = min(V, lo + per);
    if (t < SP_NBIN / SP_SLICES) {
        const int j = b * (SP_NBIN / SP_SLICES) + t;
        B->hcnt[j] = 0, B->hmass[j] = 0;
    }
    if (b == 0 && t == 0) B->r.list_n = 0, B->r.kand = ~0ull, B->r.kor = 0;
    float m = -INFINITY;
    int mi = 0x7fffffff, bad = 0;
    for (int i = lo + t; i < hi; i += SP_THREADS) {
        const float v = x[i];
        bad |= (v != v) | (v == INFINITY);
        if (v > m || (v == m && i < mi)) m = v, mi = i;
    }
    __shared__ float sm[32];
    __shared__ int si[32];
    __shared__ double sd[32];
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, mi, o);
        if (m2 > m || (m2 == m && i2 < mi)) m = m2, mi = i2;
        bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if ((t & 31) == 0) sm[t >> 5] = m, si[t >> 5] = mi;
    bad = __syncthreads_or(bad);
    m = sm[0], mi = si[0];
    for (int k = 1; k < SP_THREADS / 32; k++)
        if (sm[k] > m || (sm[k] == m && si[k] < mi)) m = sm[k], mi = si[k];
    float s = 0.0f;
    if (m > -INFINITY && !bad)
        for (int i = lo + t; i < hi; i += SP_THREADS) s += expf(x[i] - m);
    const double sum = block_reduce((double)s, op_add(), sd);
    if (t == 0) B->smax[b] = m, B->sidx[b] = mi, B->sbad[b] = bad, B->ssum[b] = sum;
    if (!arrive_last(&B->r.done[0]) || t >= 32) return;
    /* one warp merges the 32 slices in lane order */
    float M = __ldcg(&B->smax[t]);
    int I = __ldcg(&B->sidx[t]), bd = __ldcg(&B->sbad[t]);
    const float ml = M;
    const double sl = __ldcg(&B->ssum[t]);
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, M, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, I, o);
        if (m2 > M || (m2 == M && i2 < I)) M = m2, I = i2;
        bd |= __shfl_xor_sync(0xffffffffu, bd, o);
    }
    double z = ml > -INFINITY && M > -INFINITY ? sl * exp((double)ml - (double)M) : 0.0;
    for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
    if (t == 0) {
        B->r.mx = M, B->r.best = I;
        B->r.bad = bd || M == -INFINITY;
        B->r.lse = B->r.bad ? 0.0f : M + (float)log(z);
    }
}

/* 2: the distance histogram; the last block decides how K* is found (select_edge). */
__device__ void select_edge(sp_buf *B, const brisk_sample_params &p, const sp_filters &f, int V,
                            uint32_t *hc, u64 *hm) {
    sp_row *R = &B->r;
    for (int j = threadIdx.x; j < SP_NBIN; j += blockDim.x) {
        hc[j] = __ldcg(&B->hcnt[j]);
        hm[j] = f.p ? __ldcg(&B->hmass[j]) : 0;
    }
    __syncthreads();
    if (threadIdx.x >= 32) return;
    /* kept = the top m ids, m = min(top_k, ids >= thresh, the top-p prefix) */
    const wfind all = warp_find(hc, hm, SP_NBIN, false, false, ~0ull);
    const u64 total = all.c_total; /* ids >= thresh (every id when min-p is off) */
    u64 m_fix = (u64)V;
    if (f.k && (u64)p.top_k < m_fix) m_fix = (u64)p.top_k;
    if (f.m && total < m_fix) m_fix = total;
    int mode = SEL_ALL, bin = 0;
    u64 rank = 0, target = 0, mass_before = 0, kstar = 0;
    bool decided = false;
    if (f.p) {
        target = __double2ull_rn((double)p.top_p * SP_FIX);
        const wfind w = warp_find(hc, hm, SP_NBIN, false, true, target);
        if (w.pos >= 0 && m_fix > w.c_before) {
            /* the top-p edge is in bin w.pos, and top-k / min-p do not stop before that bin */
            mode = SEL_MASS, bin = w.pos, mass_before = w.m_before;
            rank = m_fix <= w.c_before + hc[w.pos] ? m_fix - w.c_before : 0;
            decided = true;
        }
    }
    if (!decided) {
        if (f.m && m_fix == total) {
            mode = SEL_KEY, kstar = (u64)ord32(f.thresh) << 32;
        } else if (m_fix < (u64)V) {
            const wfind w = warp_find(hc, hm, SP_NBIN, false, false, m_fix);
            if (w.pos >= 0) mode = SEL_RANK, bin = w.pos, rank = m_fix - w.c_before;
        }
    }
    if (threadIdx.x == 0) {
        R->mode = mode, R->bin = bin, R->bin_count = mode >= SEL_RANK ? hc[bin] : 0;
        R->rank = (uint32_t)rank, R->target = target, R->mass_before = mass_before;
        R->kstar = kstar;
    }
}

__global__ void __launch_bounds__(SP_THREADS)
    k_sp_hist(const float *logits, int V, char *scr, int cap) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.y, b = blockIdx.x;
    sp_buf *B = buf_of(scr, cap, row);
    const brisk_sample_params p = in_of(scr, row)->p;
    const float mx = B->r.mx, lse = B->r.lse;
    const sp_filters f = filters_of(p, V, mx);
    __shared__ uint32_t hc[SP_NBIN];
    __shared__ u64 hm[SP_NBIN];
    if (!B->r.bad && (f.k || f.p || f.m)) {
        const float *x = logits + (size_t)row * V;
        const int per = (V + SP_SLICES - 1) / SP_SLICES, lo = min(V, b * per),
                  hi = min(V, lo + per);
        for (int j = threadIdx.x; j < SP_NBIN; j += SP_THREADS) hc[j] = 0, hm[j] = 0;
        __syncthreads();
        for (int i = lo + threadIdx.x; i < hi; i += SP_THREADS) {
            const float v = x[i];
            if (!(v >= f.thresh)) continue;
            const int k = bin_of(v, mx);
            atomicAdd(&hc[k], 1u);
            if (f.p) add_fix(&hm[k], pfix(v, lse));
        }
        __syncthreads();
        for (int j = threadIdx.x; j < SP_NBIN; j += SP_THREADS) {
            if (hc[j]) atomicAdd(&B->hcnt[j], hc[j]);
            if (hm[j]) atomicAdd(&B->hmass[j], hm[j]);
        }
    }
    if (!arrive_last(&B->r.done[1])) return;
    if (B->r.bad || !(f.k || f.p || f.m)) {
        if (threadIdx.x == 0) B->r.mode = SEL_ALL, B->r.kstar = 0;
        return;
    }
    select_edge(B, p, f, V, hc, hm);
}

/* 3: the edge bin's ids; the last block selects the edge among them (K*). Held to 64 registers
 * (the selection's inlined passes would take ~100): two blocks per SM, so a batch's rows need
 * half the waves. */
__global__ void __launch_bounds__(SP_THREADS, 2)
    k_sp_gather(const float *logits, int V, char *scr, int cap) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.y, b = blockIdx.x, lane = threadIdx.x & 31;
    sp_buf *B = buf_of(scr, cap, row);
    const sp_row R = B->r;
    const float *x = logits + (size_t)row * V;
    const sp_filters f = filters_of(in_of(scr, row)->p, V, R.mx);
    const bool edge = !R.bad && (R.mode == SEL_RANK || R.mode == SEL_MASS);
    const bool listed = edge && R.bin_count <= SP_CAP;
    __shared__ u64 red[32];
    if (edge) {
        const int per = (V + SP_SLICES - 1) / SP_SLICES, lo = min(V, b * per),
                  hi = min(V, lo + per);
        u64 ka = ~0ull, ko = 0, cnt = 0;
        for (int base = lo; base < hi; base += SP_THREADS) { /* whole warps: the ballot below */
            const int i = base + threadIdx.x;
            const float v = i < hi ? x[i] : -INFINITY;
            const bool hit = i < hi && v >= f.thresh && bin_of(v, R.mx) == R.bin;
            const u64 k = hit ? key64(v, i) : 0;
            if (hit) ka &= k, ko |= k;
            const unsigned bal = __ballot_sync(0xffffffffu, hit);
            cnt += (u64)__popc(bal);
            if (!listed || !bal) continue;
            uint32_t at = 0;
            if (lane == __ffs(bal) - 1) at = atomicAdd(&B->r.list_n, (uint32_t)__popc(bal));
            at = __shfl_sync(0xffffffffu, at, __ffs(bal) - 1);
            if (hit) B->list[at + __popc(bal & ((1u << lane) - 1))] = k;
        }
        ka = block_reduce(ka, op_and(), red);
        ko = block_reduce(ko, op_or(), red);
        cnt = block_reduce(lane == 0 ? cnt : 0, op_add(), red); /* (each lane has its warp's) */
        if (threadIdx.x == 0) atomicAnd(&B->r.kand, ka), atomicOr(&B->r.kor, ko);
        if (threadIdx.x == 0) B->scnt[b] = (uint32_t)cnt;
    }
    if (!arrive_last(&B->r.done[2]) || !edge) return;
    __shared__ sel_hist hist;
    __shared__ union { /* the list, or id_select's segment counts (the row's one-logit group) */
        u64 keys[SP_CAP];
        uint32_t seg[SP_THREADS];
    } sm;
    const u64 ka = __ldcg(&B->r.kand), ko = __ldcg(&B->r.kor);
    /* MASS: the top-p edge, or the top-k / min-p edge (the cap) when it comes first in this bin */
    const bool mass = R.mode == SEL_MASS;
    const u64 target = mass ? R.target : R.rank, kcap = mass ? R.rank : 0;
    u64 kstar;
    if (listed) {
        const uint32_t n = __ldcg(&B->r.list_n);
        const int m = n < SP_CAP ? (int)n : SP_CAP;
        for (int j = threadIdx.x; j < m; j += SP_THREADS) sm.keys[j] = __ldcg(&B->list[j]);
        __syncthreads();
        kstar = list_select(sm.keys, m, ka, ko, mass, target, R.mass_before, kcap, R.lse, hist).key;
    } else { /* more than SP_CAP ids within 1/32 nat: narrowed over the row */
        const each_row src = {x, V, R.bin, R.mx, f.thresh};
        kstar = row_select(src, B->scnt, ka, ko, R.bin_count, mass, target, R.mass_before, kcap,
                           R.lse, hist, sm.keys, sm.seg);
    }
    if (threadIdx.x == 0) B->r.kstar = kstar;
}

/* 4: the draw. Per slice the sum of the kept weights; the last block finds the slice where the
 * running sum passes u * total and walks it in id order. */
__global__ void __launch_bounds__(SP_THREADS)
    k_sp_draw(const float *logits, int V, char *scr, int cap, cu_chosen_dst dst) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.y, b = blockIdx.x, t = threadIdx.x;
    sp_buf *B = buf_of(scr, cap, row);
    const cu_sample_in in = *in_of(scr, row);
    const sp_row R = B->r;
    const float *x = logits + (size_t)row * V;
    const u64 kstar = R.mode == SEL_ALL ? 0 : R.kstar;
    const float inv_t = in.p.inv_temp;
    const int per = (V + SP_SLICES - 1) / SP_SLICES;
    __shared__ double sd[32];
    __shared__ int si[32];
    __shared__ int pick;
    __shared__ double r_in;
    {
        const int lo = min(V, b * per), hi = min(V, lo + per);
        float s = 0.0f;
        int last = -1;
        if (!R.bad)
            for (int i = lo + t; i < hi; i += SP_THREADS) {
                const float v = x[i];
                if (key64(v, i) >= kstar) s += weight(v, R.mx, inv_t), last = i;
            }
        const double sum = block_reduce((double)s, op_add(), sd);
        last = block_reduce(last, op_max(), si);
        if (t == 0) B->wsum[b] = sum, B->wlast[b] = last;
    }
    if (!arrive_last(&B->r.done[3])) return;
    if (R.bad) {
        if (t == 0) put_chosen(dst, row, -1, NAN);
        return;
    }
    if (t < 32) { /* the slice: first whose inclusive running sum exceeds r (the host's r -= w) */
        const double w = __ldcg(&B->wsum[t]);
        double inc = w;
        for (int o = 1; o < 32; o <<= 1) {
            const double u = __shfl_up_sync(0xffffffffu, inc, o);
            if (t >= o) inc += u;
        }
        const double r = in.u * __shfl_sync(0xffffffffu, inc, 31);
        const unsigned bal = __ballot_sync(0xffffffffu, inc > r);
        int wl = __ldcg(&B->wlast[t]); /* the last kept id: rounding left r >= total */
        for (int o = 16; o > 0; o >>= 1) wl = max(wl, __shfl_xor_sync(0xffffffffu, wl, o));
        if (t == 0) pick = bal ? -1 - (__ffs(bal) - 1) : wl; /* -1-s: walk slice s */
        if (bal && t == __ffs(bal) - 1) r_in = r - (inc - w);
    }
    __syncthreads();
    if (pick < 0) {
        const int s = -1 - pick, lo = min(V, s * per), hi = min(V, lo + per);
        const double r = r_in;
        double run = 0;
        __syncthreads();
        if (t == 0) pick = 0x7fffffff;
        __syncthreads();
        for (int base = lo; base < hi; base += SP_THREADS) {
            const int i = base + t;
            float w = 0.0f;
            if (i < hi) {
                const float v = x[i];
                if (key64(v, i) >= kstar) w = weight(v, R.mx, inv_t);
            }
            double tile;
            const double inc = block_scan((double)w, sd, &tile);
            if (i < hi && w > 0.0f && run + inc > r) atomicMin(&pick, i);
            __syncthreads();
            if (pick != 0x7fffffff) break;
            run += tile;
        }
        __syncthreads(); /* every thread has read pick */
        if (t == 0 && pick == 0x7fffffff) pick = __ldcg(&B->wlast[s]);
        __syncthreads();
    }
    if (t == 0) put_chosen(dst, row, pick, x[pick] - R.lse);
}

cudaError_t cu_sample(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap,
                      const cu_chosen_dst *dst) {
    char *s = (char *)scratch;
    const dim3 grid(SP_SLICES, n);
    cudaError_t e = cu_launch(k_sp_stats, grid, SP_THREADS, 0, st, logits, V, s, cap);
    if (e == cudaSuccess) e = cu_launch(k_sp_hist, grid, SP_THREADS, 0, st, logits, V, s, cap);
    if (e == cudaSuccess) e = cu_launch(k_sp_gather, grid, SP_THREADS, 0, st, logits, V, s, cap);
    if (e == cudaSuccess)
        e = cu_launch(k_sp_draw, grid, SP_THREADS, 0, st, logits, V, s, cap, *dst);
    return e;
}

/* ---------------------------------------------------------------------------------------------
 * Greedy next token: per row the argmax (lowest index among equal maxima, as the host sampler)
 * and its log-probability -log(sum exp(x - max)); a NaN anywhere gives id -1. One launch of
 * SP_SLICES blocks per row: each reduces its slice to (max, index, sum exp(x - max), NaN); the
 * last block of the row to finish (arrive_last) merges the slices in a fixed order. (Two launches
 * before: the second one's launch was ~1-2 us of every decode step's chain.)
 * ------------------------------------------------------------------------------------------- */

#define AM_THREADS 256

/* scratch: [cap][SP_SLICES] slice results | [cap] arrival counters (at am_off_count) */
static __host__ __device__ inline size_t am_off_count(int cap) {
    return sp_align((size_t)cap * SP_SLICES * sizeof(float4));
}

size_t cu_argmax_bytes(int cap) {
    return am_off_count(cap) + (size_t)cap * sizeof(uint32_t);
}

__device__ __forceinline__ void am_better(float &m, int &i, float m2, int i2) {
    if (m2 > m || (m2 == m && i2 < i)) m = m2, i = i2;
}

/* The warp's best (max, index) and whether any lane saw a NaN, in every lane. */
__device__ __forceinline__ void am_warp_best(float &m, int &mi, int &nan) {
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, mi, o);
        am_better(m, mi, m2, i2);
        nan |= __shfl_xor_sync(0xffffffffu, nan, o);
    }
}

__global__ void __launch_bounds__(AM_THREADS)
    k_argmax(const float *logits, int V, char *scr, int cap, cu_chosen_dst dst) {
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.y, b = blockIdx.x;
    float4 *part = (float4 *)scr + (size_t)row * SP_SLICES;
    uint32_t *count = (uint32_t *)(scr + am_off_count(cap)) + row;
    const int per = (V + SP_SLICES - 1) / SP_SLICES, lo = min(V, b * per), hi = min(V, lo + per);
    const float *x = logits + (int64_t)row * V;
    float m = -INFINITY;
    int mi = 0x7fffffff, nan = 0;
    for (int i = lo + threadIdx.x; i < hi; i += AM_THREADS) {
        const float v = x[i];
        if (v != v) nan = 1;
        am_better(m, mi, v, i);
    }
    __shared__ float sm[AM_THREADS / 32];
    __shared__ int si[AM_THREADS / 32], sn[AM_THREADS / 32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    am_warp_best(m, mi, nan);
    if (lane == 0) sm[w] = m, si[w] = mi, sn[w] = nan;
    __syncthreads();
    m = sm[0], mi = si[0], nan = sn[0];
    for (int k = 1; k < AM_THREADS / 32; k++) am_better(m, mi, sm[k], si[k]), nan |= sn[k];
    float sum = 0.f;
    if (m > -INFINITY)
        for (int i = lo + threadIdx.x; i < hi; i += AM_THREADS) sum += expf(x[i] - m);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    __syncthreads();
    if (lane == 0) sm[w] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.f;
        for (int k = 0; k < AM_THREADS / 32; k++) t += sm[k];
        part[b] = make_float4(m, t, __int_as_float(mi), (float)nan);
    }
    if (!arrive_last(count) || threadIdx.x >= 32) return;
    const float4 p = __ldcg(&part[lane]); /* SP_SLICES == 32: a lane per slice */
    m = p.x, mi = __float_as_int(p.z), nan = p.w != 0.f;
    am_warp_best(m, mi, nan);
    sum = p.x > -INFINITY ? p.y * expf(p.x - m) : 0.f;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) put_chosen(dst, row, nan || mi == 0x7fffffff ? -1 : mi, -logf(sum));
}

cudaError_t cu_argmax(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap,
                      const cu_chosen_dst *dst) {
    return cu_launch(k_argmax, dim3(SP_SLICES, n), AM_THREADS, 0, st, logits, V, (char *)scratch,
                     cap, *dst);
}
