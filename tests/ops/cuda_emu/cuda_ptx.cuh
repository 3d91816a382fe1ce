/* cuda_ptx.cuh (emulated): the inline-PTX primitives of src/backend/cuda/cuda_ptx.cuh with CPU
 * semantics over emu_cuda.h, found through -I before the real one (the copied cuda_bulk.cuh and
 * cuda_mma.cuh include it by name; the emulator's build folder holds no copy of it). The ones that
 * wait or are warp collectives are macros, so the scheduler's checks name the caller's line. */
#ifndef BRISK_CUDA_PTX_CUH
#define BRISK_CUDA_PTX_CUH

#include "cuda_fp16.h"
#include "emu_cuda.h"

#define P_SM90 1 /* the sm_90 paths: they are the ones emulated */

static inline uint32_t smem_addr(const void *p) {
    return (uint32_t)(uintptr_t)p;
}
static inline void mbar_init(uint64_t *b, int count) {
    emu_mbar_init(b, count);
}
/* mbarrier.arrive.expect_tx: bytes more to land, then one arrival */
static inline void mbar_expect(uint64_t *b, uint32_t bytes) {
    emu_mbar_arrive(b, bytes);
}
static inline void mbar_arrive(uint64_t *b) {
    emu_mbar_arrive(b, 0);
}
/* the try_wait.parity loop: yields to the scheduler until the phase of that parity completed */
#define mbar_wait(b, parity)                                                                       \
    do {                                                                                           \
        uint64_t *emu_b_ = (b);                                                                    \
        const uint32_t emu_p_ = (parity);                                                          \
        while (!emu_mbar_test(emu_b_, emu_p_, __LINE__)) emu_wait(EMU_YIELD, __LINE__, 0);         \
    } while (0)
#define mbar_test(b, parity) emu_mbar_test(b, parity, __LINE__)
/* a spinning thread yields to the scheduler between tests */
#define spin_pause() emu_wait(EMU_YIELD, __LINE__, 0)
static inline void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *b,
                             uint64_t policy) {
    (void)policy;
    emu_bulk_copy(dst, src, bytes, b);
}
static inline void bulk_prefetch_l2(const void *src, uint32_t bytes) {
    (void)src, (void)bytes;
}
static inline void mbar_init_fence() {}
#define named_sync(id, threads) emu_named_bar(id, threads, __LINE__)
static inline uint64_t policy_evict_first() {
    return 0;
}
#define mma16816(...) emu_mma16816(__LINE__, __VA_ARGS__)
/* wgmma: queued until a wait retires its group (emu_cuda.h); the fence does nothing */
static inline void wg_fence() {}
static inline void wg_commit() {
    emu_wg_commit();
}
template <int N> static inline void wg_wait() {
    emu_wg_wait(N);
}
/* B's descriptor: the pointer itself (the card's packs address / 16, lbo and sbo) */
struct wg_bd {
    const uint8_t *b;
    uint32_t lbo, sbo;
};
static inline wg_bd wg_bdesc(const void *b, uint32_t lbo, uint32_t sbo) {
    return {(const uint8_t *)b, lbo, sbo};
}
static inline wg_bd wg_boff(wg_bd d, uint32_t bytes) {
    return {d.b + bytes, d.lbo, d.sbo};
}
struct emu_wgmma_at { /* wgmma_rs<N>(...) -> emu_wgmma_at{line}.run<N>(...) */
    int line;
    template <int N> void run(float *d, const uint32_t (&a)[4], wg_bd bd) const {
        emu_wgmma(line, d, N, a, bd.b, bd.lbo, bd.sbo);
    }
};
#define wgmma_rs emu_wgmma_at{__LINE__}.run
static inline uint32_t lop_or(uint32_t v, uint32_t mask) {
    return (v & mask) | 0x64006400u;
}

/* (h - 1024) * s + b per half of the words: the product and sum exact in double, one rounding to
 * half through float (a double rounding only at a tie of a tie) */
static inline uint32_t fold_scale(uint32_t h, uint32_t s, uint32_t b) {
    uint32_t r = 0;
    for (int i = 0; i < 2; i++) {
        const auto half = [&](uint32_t w) {
            return (double)emu_h2f((unsigned short)(w >> (16 * i)));
        };
        const double v = (half(h) - 1024.0) * half(s) + half(b);
        r |= (uint32_t)emu_f2h((float)v) << (16 * i);
    }
    return r;
}

#endif
