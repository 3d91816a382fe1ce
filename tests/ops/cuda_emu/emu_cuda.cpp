/* emu_cuda.cpp: the fiber scheduler of emu_cuda.h: a block's threads run as fibers (a hand-written
 * x86-64 stack switch: glibc's swapcontext makes a system call per switch) until each waits at a
 * barrier or has returned; then a warp whose 32 lanes all wait at the same warp intrinsic (line,
 * how many they have passed, full mask) is released, else the block barrier when every thread of
 * the block waits at the same one (line, how many it has passed). Anything else -- a collective
 * some lanes or threads of the block reach after others returned, or at another call -- is
 * undefined on a GPU (an H100 may raise "an illegal instruction" or hang): the run aborts and says
 * where. */
#include "emu_cuda.h"

#include <stdio.h>
#include <stdlib.h>

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

enum { F_RUN = 0, F_BAR = EMU_BAR, F_WARP = EMU_WARP, F_DONE = 3 };
enum { STACK = 256 * 1024, MAX_T = 1024 };

static void *g_sched_sp;
static void *g_sp[MAX_T];
static int g_state[MAX_T];
static char *g_stacks;
static uint64_t g_slots[MAX_T];
static int g_line[MAX_T];      /* the line of the collective each waiting thread is at */
static unsigned g_mask[MAX_T]; /* its mask (warp intrinsics) */
static unsigned g_seq[MAX_T];  /* how many waits of that kind it has done: barriers / warp ones */
static unsigned g_wseq[MAX_T];
static int g_cur;
static const std::function<void()> *g_body;
static uint64_t g_rng = 0x2545F4914F6CDD1DULL;

uint64_t *emu_slots(void) {
    return g_slots;
}

void emu_wait(int kind, int line, unsigned mask) {
    g_state[g_cur] = kind;
    g_line[g_cur] = line, g_mask[g_cur] = mask;
    (kind == EMU_BAR ? g_seq : g_wseq)[g_cur]++;
    emu_swap(&g_sp[g_cur], g_sched_sp);
}

static void fiber_main(void) {
    (*g_body)();
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
            fprintf(stderr, " t%d:%s@%d#%u", t, g_state[t] == F_BAR ? "bar" : "warp", g_line[t],
                    g_state[t] == F_BAR ? g_seq[t] : g_wseq[t]);
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

static void run_block(int nt) {
    char *s0 = __start_emu_shared, *s1 = __stop_emu_shared;
    if (s0 && s1 > s0) emu_poison(s0, (size_t)(s1 - s0));
    for (int t = 0; t < nt; t++)
        g_sp[t] = fiber_init(t), g_state[t] = F_RUN, g_seq[t] = 0, g_wseq[t] = 0;
    std::vector<int> order((size_t)nt);
    for (int t = 0; t < nt; t++) order[(size_t)t] = t;
    for (;;) {
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
        /* every thread now waits or has returned */
        int live = 0, bar = 0;
        bool released = false;
        for (int w = 0; w * 32 < nt; w++) {
            const int t0 = w * 32;
            int ww = 0, done = 0;
            for (int t = t0; t < t0 + 32; t++)
                ww += g_state[t] == F_WARP, done += g_state[t] == F_DONE;
            if (!ww) continue;
            if (done) diverged(nt, "a warp intrinsic with lanes that returned", g_line[t0]);
            if (ww < 32) continue; /* lanes at a barrier: stuck, unless released below */
            for (int t = t0; t < t0 + 32; t++)
                if (g_line[t] != g_line[t0] || g_wseq[t] != g_wseq[t0] || g_mask[t] != 0xffffffffu)
                    diverged(nt,
                             "the lanes of a warp at different warp intrinsics (or a mask not "
                             "full)",
                             g_line[t0]);
            for (int t = t0; t < t0 + 32; t++) g_state[t] = F_RUN;
            released = true;
        }
        if (released) continue;
        for (int t = 0; t < nt; t++) live += g_state[t] != F_DONE, bar += g_state[t] == F_BAR;
        if (!live) return;
        if (bar == live) {
            int l0 = 0;
            while (g_state[l0] != F_BAR) l0++;
            if (live < nt)
                diverged(nt, "a barrier after threads of the block returned", g_line[l0]);
            for (int t = 0; t < nt; t++)
                if (g_line[t] != g_line[l0] || g_seq[t] != g_seq[l0])
                    diverged(nt, "threads of the block at different barriers", g_line[l0]);
            for (int t = 0; t < nt; t++) g_state[t] = F_RUN;
            continue;
        }
        diverged(nt, "stuck: a warp split between a warp intrinsic and a barrier", 0);
    }
}

void emu_run(dim3 grid, dim3 block, const std::function<void()> &body) {
    if (block.x > MAX_T || block.x % 32 || block.y != 1 || block.z != 1 || grid.z != 1) {
        fprintf(stderr, "emu: unsupported launch shape\n");
        abort();
    }
    if (!g_stacks) {
        g_stacks = (char *)malloc((size_t)MAX_T * STACK);
        const char *seed = getenv("EMU_SEED"); /* another resume order */
        if (seed && strtoull(seed, NULL, 10)) g_rng = strtoull(seed, NULL, 10);
    }
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
