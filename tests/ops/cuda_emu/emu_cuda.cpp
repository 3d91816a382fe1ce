/* emu_cuda.cpp: the fiber scheduler of emu_cuda.h: a block's threads run as fibers (a hand-written
 * x86-64 stack switch: glibc's swapcontext makes a system call per switch) until each waits at a
 * barrier, spins (yields) or has returned; then a warp whose 32 lanes all wait at the same warp
 * intrinsic (line, how many they have passed, full mask) is released, a named barrier when its
 * count of threads waits at it (same line and how many they have passed), and the block barrier
 * when every thread of the block waits at the same one (line, how many it has passed); spinning
 * threads run again next round. Anything else -- a collective some lanes or threads of the block
 * reach after others returned, or at another call -- is undefined on a GPU (an H100 may raise "an
 * illegal instruction" or hang): the run aborts and says where. Bulk copies land at a random later
 * round, and a block where only spinning is left for EMU_HANG_ROUNDS rounds (no barrier released,
 * no mbarrier changed, no copy landed) aborts as a hang with the lines the threads spin at. */
#include "emu_cuda.h"

#include "cuda_fp16.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#if !defined(__x86_64__)
#error "emu_cuda.cpp switches stacks with x86-64 assembly"
#endif

dim3 threadIdx, blockIdx, blockDim, gridDim;

/* emu_swap(&save_sp, next_sp): pushes the callee-saved registers, saves the stack pointer, loads
 * the other fiber's and pops its registers. */
extern "C" void emu_swap(void **save, void *next);
asm(R"(
.text
.globl emu_swap
.type emu_swap, @function
emu_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_swap, .-emu_swap
)");

enum { F_RUN = 0, F_BAR = EMU_BAR, F_WARP = EMU_WARP, F_YIELD = EMU_YIELD, F_NAMED = EMU_NAMED };
enum { F_DONE = 5 };
enum { STACK = 256 * 1024, MAX_T = 1024, MAX_NAMED = 16 };
/* A bulk copy lands 1-COPY_DELAY rounds after its issue, one in 8 within COPY_LATE rounds (a
 * consumer that reads a stage without waiting then sees random bytes even when it got there late).
 * Rounds with nothing but spinning before a block counts as hung: far more than a copy takes. */
enum { COPY_DELAY = 4, COPY_LATE = 256, EMU_HANG_ROUNDS = 4096 };

static void *g_sched_sp;
static void *g_sp[MAX_T];
static int g_state[MAX_T];
static char *g_stacks;
static uint64_t g_slots[MAX_T];
static int g_line[MAX_T];      /* the line of the collective each waiting thread is at */
static unsigned g_mask[MAX_T]; /* its mask (warp intrinsics) */
static unsigned g_seq[MAX_T];  /* how many waits of that kind it has done: barriers / warp ones */
static unsigned g_wseq[MAX_T];
static unsigned g_nseq[MAX_T];            /* named barriers passed (all ids) */
static int g_nid[MAX_T], g_ncount[MAX_T]; /* the named barrier waited at: id, thread count */
static uint64_t g_events; /* mbarrier changes and returns: progress for the hang check */
static uint64_t g_round;
static int g_cur;
static const std::function<void()> *g_body;
static uint64_t g_rng = 0x2545F4914F6CDD1DULL;

uint64_t *emu_slots(void) {
    return g_slots;
}

void emu_wait(int kind, int line, unsigned mask) {
    g_state[g_cur] = kind;
    g_line[g_cur] = line, g_mask[g_cur] = mask;
    /* the n-th barrier or warp collective of this thread (a spinning thread's yields count as
     * neither: lanes that spun a different number of times still meet at the same collective) */
    if (kind == EMU_BAR)
        g_seq[g_cur]++;
    else if (kind == EMU_WARP)
        g_wseq[g_cur]++;
    emu_swap(&g_sp[g_cur], g_sched_sp);
}

void emu_named_bar(int id, int n, int line) {
    if (id < 0 || id >= MAX_NAMED || n <= 0 || n % 32 || n > (int)blockDim.x) {
        fprintf(stderr, "emu: line %d: bar.sync %d, %d: bad id or thread count\n", line, id, n);
        abort();
    }
    g_nid[g_cur] = id, g_ncount[g_cur] = n;
    g_nseq[g_cur]++;
    g_state[g_cur] = F_NAMED, g_line[g_cur] = line;
    emu_swap(&g_sp[g_cur], g_sched_sp);
}

static void wg_check_done(void);
static void fiber_main(void) {
    (*g_body)();
    wg_check_done();
    g_events++;
    g_state[g_cur] = F_DONE;
    emu_swap(&g_sp[g_cur], g_sched_sp);
    abort(); /* never resumed */
}

/* A fresh fiber's stack: six zero registers under a return into fiber_main, 16-byte aligned as at
 * a function's entry. */
static void *fiber_init(int t) {
    uintptr_t top = (uintptr_t)(g_stacks + (size_t)(t + 1) * STACK) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = NULL;               /* alignment: fiber_main starts with rsp % 16 == 8 */
    *--sp = (void *)fiber_main; /* ret target */
    for (int i = 0; i < 6; i++) *--sp = NULL;
    return sp;
}

static const char *state_name(int st) {
    return st == F_BAR     ? "bar"
           : st == F_WARP  ? "warp"
           : st == F_YIELD ? "spin"
           : st == F_NAMED ? "named"
                           : "run";
}

/* Prints the state of the block's threads that are not at `line` (all when line is 0) and
 * aborts. */
[[noreturn]] static void diverged(int nt, const char *what, int line) {
    fprintf(stderr, "emu: block (%u,%u): %s", blockIdx.x, blockIdx.y, what);
    if (line) fprintf(stderr, " (the collective on line %d)", line);
    fprintf(stderr, "; threads elsewhere:");
    int shown = 0;
    for (int t = 0; t < nt && shown < 24; t++) {
        if (line && g_state[t] != F_DONE && g_line[t] == line) continue;
        shown++;
        if (g_state[t] == F_DONE)
            fprintf(stderr, " t%d:returned", t);
        else
            fprintf(stderr, " t%d:%s@%d#%u", t, state_name(g_state[t]), g_line[t],
                    g_state[t] == F_BAR     ? g_seq[t]
                    : g_state[t] == F_NAMED ? g_nseq[t]
                                            : g_wseq[t]);
    }
    fprintf(stderr, "\n");
    abort();
}

/* A hang: the block's threads in runs of equal state and line (spin@L: an mbarrier wait). */
[[noreturn]] static void hang(int nt, uint64_t rounds) {
    fprintf(stderr,
            "emu: block (%u,%u): hang: %llu rounds with threads spinning and no barrier released, "
            "no mbarrier changed, no copy landed; threads:",
            blockIdx.x, blockIdx.y, (unsigned long long)rounds);
    for (int t = 0; t < nt;) {
        int e = t + 1;
        while (e < nt && g_state[e] == g_state[t] &&
               (g_state[t] == F_DONE || g_line[e] == g_line[t]))
            e++;
        if (g_state[t] == F_DONE)
            fprintf(stderr, " t%d-%d:returned", t, e - 1);
        else
            fprintf(stderr, " t%d-%d:%s@%d", t, e - 1, state_name(g_state[t]), g_line[t]);
        t = e;
    }
    fprintf(stderr, "\n");
    abort();
}

/* The __shared__ variables (emu_cuda.h); weak: none when no kernel declares one. */
extern "C" char __start_emu_shared[] __attribute__((weak));
extern "C" char __stop_emu_shared[] __attribute__((weak));

void (*emu_block_hook)(void);

uint64_t emu_random(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}

void emu_poison(void *p, size_t n) {
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(emu_random() >> 32);
}

/* Dynamic shared memory: one mapping whose buffer ends (128-byte rounded) at an unmapped page, so a
 * read or write past the launch's bytes faults. */
static uint8_t *g_dyn, *g_map;
static size_t g_dyn_n, g_map_n;

uint8_t *emu_dyn_smem(void) {
    return g_dyn;
}

static void dyn_smem_set(size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), need = (n + 127) & ~(size_t)127;
    const size_t span = (need + page - 1) / page * page + page;
    if (span > g_map_n) {
        if (g_map) munmap(g_map, g_map_n);
        void *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect((uint8_t *)m + span - page, page, PROT_NONE)) {
            fprintf(stderr, "emu: cannot map %zu bytes of dynamic shared memory\n", n);
            abort();
        }
        g_map = (uint8_t *)m, g_map_n = span;
    }
    g_dyn = g_map + g_map_n - page - need, g_dyn_n = n;
}

static bool in_shared(const void *p, size_t n) {
    const char *c = (const char *)p, *s0 = __start_emu_shared, *s1 = __stop_emu_shared;
    if (g_dyn_n && c >= (const char *)g_dyn && c + n <= (const char *)g_dyn + g_dyn_n) return true;
    return s0 && c >= s0 && c + n <= s1;
}

/* mbarriers: the 64-bit word holds pending arrivals (bits 0-19), the expected count (20-39), the
 * transaction bytes still to land (40-61, signed: bytes may land before they are expected) and the
 * phase (63). The phase completes when pending arrivals and bytes are both zero: it flips and the
 * count starts again. Barriers are checked to be in shared memory and initialised by this block
 * (shared memory holds random bytes before that). */
static std::vector<const uint64_t *> g_mbars;

struct mbar {
    uint32_t pending, expected;
    int32_t tx;
    uint32_t phase;
};
static mbar mbar_get(const uint64_t *b) {
    const uint64_t v = *b;
    int32_t tx = (int32_t)((v >> 40) & 0x3fffff);
    if (tx & 0x200000) tx -= 0x400000;
    return mbar{(uint32_t)(v & 0xfffff), (uint32_t)((v >> 20) & 0xfffff), tx, (uint32_t)(v >> 63)};
}
static void mbar_put(uint64_t *b, mbar m) {
    *b = (uint64_t)m.pending | (uint64_t)m.expected << 20 |
         (uint64_t)((uint32_t)m.tx & 0x3fffff) << 40 | (uint64_t)m.phase << 63;
    g_events++;
}
static void mbar_check(const uint64_t *b, const char *what, int line) {
    if (std::find(g_mbars.begin(), g_mbars.end(), b) != g_mbars.end()) return;
    fprintf(stderr,
            "emu: block (%u,%u) thread %u: %s (line %d) on %p: not an mbarrier this block "
            "initialised\n",
            blockIdx.x, blockIdx.y, threadIdx.x, what, line, (const void *)b);
    abort();
}
/* pending arrivals and bytes both done: the phase completes */
static void mbar_step(uint64_t *b, mbar m) {
    if (m.tx <= -0x200000 || m.tx >= 0x200000) {
        fprintf(stderr, "emu: mbarrier %p: transaction count out of range\n", (void *)b);
        abort();
    }
    if (m.pending == 0 && m.tx == 0) m.phase ^= 1, m.pending = m.expected;
    mbar_put(b, m);
}

void emu_mbar_init(uint64_t *b, int count) {
    if (!in_shared(b, 8) || ((uintptr_t)b & 7) || count < 1 || count >= (1 << 20)) {
        fprintf(stderr,
                "emu: mbarrier init %p (count %d): not 8 aligned shared memory or bad "
                "count\n",
                (void *)b, count);
        abort();
    }
    if (std::find(g_mbars.begin(), g_mbars.end(), b) == g_mbars.end()) g_mbars.push_back(b);
    mbar_put(b, mbar{(uint32_t)count, (uint32_t)count, 0, 0});
}

void emu_mbar_arrive(uint64_t *b, uint32_t tx) {
    mbar_check(b, "mbarrier arrive", 0);
    mbar m = mbar_get(b);
    if (m.pending == 0) { /* the phase waits only for bytes: on a GPU, undefined */
        fprintf(stderr,
                "emu: block (%u,%u) thread %u: mbarrier %p: an arrival beyond its count %u in "
                "this phase (%d bytes still to land)\n",
                blockIdx.x, blockIdx.y, threadIdx.x, (void *)b, m.expected, m.tx);
        abort();
    }
    m.tx += (int32_t)tx, m.pending--;
    mbar_step(b, m);
}

void emu_mbar_complete_tx(uint64_t *b, uint32_t bytes) {
    mbar_check(b, "bulk copy completion", 0);
    mbar m = mbar_get(b);
    m.tx -= (int32_t)bytes;
    mbar_step(b, m);
}

bool emu_mbar_test(uint64_t *b, uint32_t parity, int line) {
    mbar_check(b, "mbarrier wait", line);
    return mbar_get(b).phase != (parity & 1);
}

/* Bulk copies in flight: each lands (memcpy + complete_tx) at its round. */
struct copy {
    uint8_t *dst;
    const uint8_t *src;
    uint32_t bytes;
    uint64_t *bar;
    uint64_t due;
};
static std::vector<copy> g_copies;

void emu_bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *b) {
    if (((uintptr_t)dst | (uintptr_t)src | bytes) & 15 || !bytes || !in_shared(dst, bytes)) {
        fprintf(stderr,
                "emu: block (%u,%u) thread %u: bulk copy of %u bytes %p -> %p: not 16-byte "
                "aligned, empty or not into shared memory\n",
                blockIdx.x, blockIdx.y, threadIdx.x, bytes, src, dst);
        abort();
    }
    mbar_check(b, "bulk copy", 0);
    emu_poison(dst, bytes); /* what a reader sees before the copy completes */
    const uint64_t r = emu_random();
    g_copies.push_back(copy{(uint8_t *)dst, (const uint8_t *)src, bytes, b,
                            g_round + 1 + (r >> 32) % ((r & 7) ? COPY_DELAY : COPY_LATE)});
}

/* Lands the copies due by round r (all: r = ~0); true if any did. */
static bool land_copies(uint64_t r) {
    bool any = false;
    for (size_t i = 0; i < g_copies.size();) {
        const copy c = g_copies[i];
        if (c.due > r) {
            i++;
            continue;
        }
        g_copies.erase(g_copies.begin() + (long)i);
        memcpy(c.dst, c.src, c.bytes);
        emu_mbar_complete_tx(c.bar, c.bytes);
        any = true;
    }
    return any;
}

/* mma.m16n8k16: every lane leaves its fragments (a0..a3, b0, b1) in the buffer of its warp
 * collective's parity (the next mma of any lane is at least one collective later, which every lane
 * reaches only after reading this one), waits for the warp, then computes its own four outputs:
 * c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g + 8, same cols), g = lane / 4, t = lane % 4.
 * A (16x16, row) a0: (g, 2t..2t+1), a1: (g+8, 2t..), a2: (g, 2t+8..), a3: (g+8, 2t+8..);
 * B (16x8, col) b0: (rows 2t..2t+1, col g), b1: (rows 2t+8.., col g); the lower half of each
 * register is the lower index. Products of halves are exact in float; sums in float. */
static uint32_t g_mma[2][MAX_T][6];
static float g_h2f[65536];

/* The collective's start: this lane leaves its nw fragment words in the buffer of the parity, waits
 * for the warp and gets the warp's 32 rows of words. */
static const uint32_t (*mma_gather(int line, const uint32_t *w, int nw))[6] {
    if (g_h2f[0x3c00] != 1.0f)
        for (unsigned h = 0; h < 65536; h++) g_h2f[h] = emu_h2f((unsigned short)h);
    const unsigned buf = g_wseq[g_cur] & 1, base = threadIdx.x & ~31u;
    for (int i = 0; i < nw; i++) g_mma[buf][threadIdx.x][i] = w[i];
    emu_wait(EMU_WARP, line, 0xffffffffu);
    return g_mma[buf] + base;
}
/* element (r, k) of the 16x16 A fragment the warp left (a0..a3 in words 0-3) */
static float mma_a(const uint32_t (*f)[6], int r, int k) {
    const uint32_t av = f[(r & 7) * 4 + (k & 7) / 2][(r >> 3) + 2 * (k >> 3)];
    return g_h2f[(av >> (16 * (k & 1))) & 0xffff];
}

void emu_mma16816(int line, float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                  uint32_t b0, uint32_t b1) {
    const uint32_t w[6] = {a0, a1, a2, a3, b0, b1};
    const uint32_t(*f)[6] = mma_gather(line, w, 6);
    const unsigned lane = threadIdx.x & 31;
    const int g = (int)(lane >> 2), t = (int)(lane & 3);
    float d[4];
    for (int o = 0; o < 4; o++) {
        const int r = g + 8 * (o >> 1), n = 2 * t + (o & 1);
        float sum = 0.f;
        for (int k = 0; k < 16; k++) {
            const uint32_t bv = f[n * 4 + (k & 7) / 2][4 + (k >> 3)];
            sum += mma_a(f, r, k) * g_h2f[(bv >> (16 * (k & 1))) & 0xffff];
        }
        d[o] = c[o] + sum;
    }
    for (int o = 0; o < 4; o++) c[o] = d[o];
}

/* wgmma m64nNk16 (A in registers, B K-major in shared memory, no swizzle) as seen by one warp of
 * the warpgroup: its 16 rows of A and D, so the same collective as mma16816 over N / 8 column
 * blocks, B read where the descriptor's strides put it (cuda_ptx.cuh's comment). */
static void wgmma_run(int line, float *d, int N, const uint32_t *a, const void *b, uint32_t lbo,
                      uint32_t sbo) {
    const uint32_t(*f)[6] = mma_gather(line, a, 4);
    const unsigned lane = threadIdx.x & 31;
    const int g = (int)(lane >> 2), t = (int)(lane & 3);
    const uint8_t *bb = (const uint8_t *)b;
    for (int j = 0; j < N / 8; j++)
        for (int o = 0; o < 4; o++) {
            const int r = g + 8 * (o >> 1), n = 8 * j + 2 * t + (o & 1);
            float sum = 0.f;
            for (int k = 0; k < 16; k++) {
                unsigned short bv;
                memcpy(&bv, bb + (n >> 3) * sbo + (k >> 3) * lbo + (n & 7) * 16 + (k & 7) * 2, 2);
                sum += mma_a(f, r, k) * g_h2f[bv];
            }
            d[4 * j + o] += sum;
        }
}

/* The asynchronous model: an issued wgmma is only queued (with the addresses of its A registers,
 * D and B, not their values) and runs when a wgmma.wait_group retires its group, the latest the
 * hardware may read its operands and write D. So A or B rewritten, or D touched, between the
 * issue and the wait gives wrong sums (a test failure), as it may on a card. */
struct wg_op {
    int line, N, group;
    float *d;
    const uint32_t *a;
    const void *b;
    uint32_t lbo, sbo;
};
static std::vector<wg_op> g_wgq[MAX_T];
static int g_wgc[MAX_T]; /* groups committed by the thread */

void emu_wgmma(int line, float *d, int N, const uint32_t (&a)[4], const void *b, uint32_t lbo,
               uint32_t sbo) {
    g_wgq[g_cur].push_back({line, N, g_wgc[g_cur], d, a, b, lbo, sbo});
}
void emu_wg_commit(void) {
    g_wgc[g_cur]++;
}
void emu_wg_wait(int n) {
    std::vector<wg_op> &q = g_wgq[g_cur];
    size_t k = 0;
    while (k < q.size() && q[k].group < g_wgc[g_cur] - n) k++;
    const std::vector<wg_op> run(q.begin(), q.begin() + (long)k);
    q.erase(q.begin(), q.begin() + (long)k);
    for (const wg_op &o : run) wgmma_run(o.line, o.d, o.N, o.a, o.b, o.lbo, o.sbo);
}
static void wg_check_done(void) {
    if (!g_wgq[g_cur].empty()) {
        fprintf(stderr, "emu: thread %d exits with %zu wgmma not waited for (line %d)\n", g_cur,
                g_wgq[g_cur].size(), g_wgq[g_cur][0].line);
        abort();
    }
    g_wgc[g_cur] = 0;
}

cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev) {
    if (attr != cudaDevAttrMultiProcessorCount || dev != 0) return cudaErrorInvalidValue;
    const char *e = getenv("EMU_SMS");
    *v = e && atoi(e) > 0 ? atoi(e) : 7;
    return cudaSuccess;
}

static void run_block(int nt) {
    char *s0 = __start_emu_shared, *s1 = __stop_emu_shared;
    if (s0 && s1 > s0) emu_poison(s0, (size_t)(s1 - s0));
    if (g_dyn_n) emu_poison(g_dyn, g_dyn_n);
    g_mbars.clear();
    for (int t = 0; t < nt; t++)
        g_sp[t] = fiber_init(t), g_state[t] = F_RUN, g_seq[t] = 0, g_wseq[t] = 0, g_nseq[t] = 0;
    std::vector<int> order((size_t)nt);
    for (int t = 0; t < nt; t++) order[(size_t)t] = t;
    uint64_t idle = 0;
    for (;;) {
        g_round++;
        const uint64_t ev = g_events;
        for (int t = nt - 1; t > 0; t--) { /* a new order each round */
            g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
            const int j = (int)(g_rng % (uint64_t)(t + 1));
            const int x = order[(size_t)t];
            order[(size_t)t] = order[(size_t)j], order[(size_t)j] = x;
        }
        for (int k = 0; k < nt; k++) {
            const int t = order[(size_t)k];
            if (g_state[t] != F_RUN) continue;
            g_cur = t;
            threadIdx = dim3((unsigned)t, 0, 0);
            emu_swap(&g_sched_sp, g_sp[t]);
        }
        /* every thread now waits, spins or has returned */
        bool released = land_copies(g_round);
        for (int w = 0; w * 32 < nt; w++) {
            const int t0 = w * 32;
            int ww = 0, done = 0;
            for (int t = t0; t < t0 + 32; t++)
                ww += g_state[t] == F_WARP, done += g_state[t] == F_DONE;
            if (!ww) continue;
            if (done) diverged(nt, "a warp intrinsic with lanes that returned", g_line[t0]);
            if (ww < 32) continue; /* lanes spin or wait at a barrier: released below, or stuck */
            for (int t = t0; t < t0 + 32; t++)
                if (g_line[t] != g_line[t0] || g_wseq[t] != g_wseq[t0] ||
                    g_mask[t] != 0xffffffffu) {
                    /* which lanes: line, how many warp intrinsics before, mask */
                    fprintf(stderr, "emu: warp %d (threads %d-%d), lane: line#intrinsics/mask:", w,
                            t0, t0 + 31);
                    for (int u = t0; u < t0 + 32; u++)
                        fprintf(stderr, " %d:%d#%u/%x", u - t0, g_line[u], g_wseq[u], g_mask[u]);
                    fprintf(stderr, "\n");
                    diverged(nt,
                             "the lanes of a warp at different warp intrinsics (or a mask not "
                             "full)",
                             g_line[t0]);
                }
            for (int t = t0; t < t0 + 32; t++) g_state[t] = F_RUN;
            released = true;
        }
        for (int id = 0; id < MAX_NAMED; id++) { /* bar.sync id, n: n threads at it */
            int n = 0, first = -1;
            for (int t = 0; t < nt; t++)
                if (g_state[t] == F_NAMED && g_nid[t] == id) {
                    if (first < 0) first = t;
                    if (g_ncount[t] != g_ncount[first])
                        diverged(nt, "a named barrier with different thread counts", g_line[first]);
                    n++;
                }
            if (first < 0 || n < g_ncount[first]) continue;
            if (n > g_ncount[first])
                diverged(nt, "more threads at a named barrier than its count", g_line[first]);
            for (int t = 0; t < nt; t++)
                if (g_state[t] == F_NAMED && g_nid[t] == id &&
                    (g_line[t] != g_line[first] || g_nseq[t] != g_nseq[first]))
                    diverged(nt, "threads at different calls of a named barrier", g_line[first]);
            for (int t = 0; t < nt; t++)
                if (g_state[t] == F_NAMED && g_nid[t] == id) g_state[t] = F_RUN;
            released = true;
        }
        int live = 0, bar = 0, spin = 0;
        for (int t = 0; t < nt; t++)
            live += g_state[t] != F_DONE, bar += g_state[t] == F_BAR, spin += g_state[t] == F_YIELD;
        if (!live) {
            if (!g_copies.empty()) {
                fprintf(stderr, "emu: block (%u,%u): returned with %zu bulk copies in flight\n",
                        blockIdx.x, blockIdx.y, g_copies.size());
                abort();
            }
            return;
        }
        if (bar && bar == live) {
            int l0 = 0;
            while (g_state[l0] != F_BAR) l0++;
            if (live < nt)
                diverged(nt, "a barrier after threads of the block returned", g_line[l0]);
            for (int t = 0; t < nt; t++)
                if (g_line[t] != g_line[l0] || g_seq[t] != g_seq[l0])
                    diverged(nt, "threads of the block at different barriers", g_line[l0]);
            for (int t = 0; t < nt; t++) g_state[t] = F_RUN;
            released = true;
        }
        if (released || g_events != ev) {
            idle = 0;
        } else if (!spin) { /* nobody can go on: copies in flight land now, else stuck */
            if (!land_copies(~(uint64_t)0))
                diverged(nt,
                         "stuck: a warp split between a warp intrinsic and a barrier, or a named "
                         "barrier short of its count",
                         0);
        } else if (++idle >= EMU_HANG_ROUNDS) {
            hang(nt, idle);
        }
        for (int t = 0; t < nt; t++) /* spinning threads try again */
            if (g_state[t] == F_YIELD) g_state[t] = F_RUN;
    }
}

void emu_run(dim3 grid, dim3 block, const std::function<void()> &body, size_t dyn_smem) {
    if (block.x > MAX_T || block.x % 32 || block.y != 1 || block.z != 1 || grid.z != 1) {
        fprintf(stderr, "emu: unsupported launch shape\n");
        abort();
    }
    if (!g_stacks) {
        g_stacks = (char *)malloc((size_t)MAX_T * STACK);
        const char *seed = getenv("EMU_SEED"); /* another resume order */
        if (seed && strtoull(seed, NULL, 10)) g_rng = strtoull(seed, NULL, 10);
    }
    dyn_smem_set(dyn_smem);
    g_body = &body;
    gridDim = grid, blockDim = block;
    /* blocks in a shuffled order too: any of them may be the last to arrive */
    std::vector<unsigned> blocks((size_t)grid.x * grid.y);
    for (size_t i = 0; i < blocks.size(); i++) blocks[i] = (unsigned)i;
    for (size_t i = blocks.size(); i > 1; i--) {
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        const size_t j = (size_t)(g_rng % i);
        const unsigned x = blocks[i - 1];
        blocks[i - 1] = blocks[j], blocks[j] = x;
    }
    for (unsigned b : blocks) {
        if (emu_block_hook) emu_block_hook();
        blockIdx = dim3(b % grid.x, b / grid.x, 0);
        run_block((int)block.x);
    }
}
