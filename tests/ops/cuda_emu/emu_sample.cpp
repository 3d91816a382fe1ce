/* emu_sample.cpp: the device sampling op of the CUDA backend (cu_op_end_step_sample) over the
 * emulated kernels of cuda_sample.cu (compiled into this file, so it can also count which path
 * each row took): host memory stands for device memory. */
#include "cuda_sample_emu.cpp"

#include <stdio.h>
#include <stdlib.h>

#include <vector>

static int g_paths[4][2]; /* [mode][edge bin listed 0 / over the row 1] */
static int g_second;      /* top-p edge bin that also holds the top-k / min-p edge */

/* EMU_LAG=bytes: the test's logits reach the kernels the way a plain cudaMemcpy from pageable
 * memory on another stream than the op's may deliver them: the last `bytes` of the buffer still
 * hold the previous call's logits when the chain starts and change to the new ones before a
 * random block of the four launches (the DMA landing). A harness fault, not the kernels': it
 * shows what the kernels make of logits that change under them. */
static float *g_dev;
static size_t g_dev_n, g_lag_from;
static const float *g_new;
static long g_land_at, g_blocks;

static void land(void) {
    if (g_new && g_blocks++ >= g_land_at) {
        memcpy(g_dev + g_lag_from, g_new + g_lag_from, (g_dev_n - g_lag_from) * sizeof(float));
        g_new = NULL;
    }
}

static const float *device_logits(const float *logits, size_t count) {
    const char *e = getenv("EMU_LAG");
    const size_t lag = e ? (size_t)strtoull(e, NULL, 10) / sizeof(float) : 0;
    if (!lag) return logits;
    if (count != g_dev_n) { /* a new shape: nothing stale */
        free(g_dev);
        g_dev = (float *)malloc(count * sizeof(float));
        g_dev_n = count;
        memcpy(g_dev, logits, count * sizeof(float));
        return g_dev;
    }
    g_lag_from = lag < count ? count - lag : 0;
    memcpy(g_dev, logits, g_lag_from * sizeof(float));
    g_new = logits, g_blocks = 0;
    g_land_at = (long)(emu_random() % 1024);
    emu_block_hook = land;
    return g_dev;
}

/* An op's scratch for n rows, zeroed when (re)allocated, as the backend allocates it (the
 * kernels leave their arrival counters zero). */
static void grow_zeroed(void **scratch, int *cap, int n, size_t (*bytes)(int)) {
    if (n <= *cap) return;
    free(*scratch);
    *scratch = calloc(1, bytes(n));
    *cap = n;
}

/* The slot word of the next op (file scope: an inline function's static would sit in the emulated
 * shared memory, emu_shared.ld, and turn random at every block) */
static int g_slot;

/* Where the choosing kernel also puts its rows (cu_chosen_dst): a token slot and the host slot of
 * a slot word that alternates between calls, as launched steps do; both poisoned, with a few rows
 * more than written. check: the rows landed there, equal to `want`, and no other byte changed. */
struct chosen_dst {
    int n, cap, slot;
    std::vector<int32_t> tok, tok0;
    std::vector<cu_sample_out> host, host0;
    cu_chosen_dst d;
    explicit chosen_dst(int rows) : n(rows), cap(rows + 3), tok(cap), host(2 * (size_t)cap) {
        emu_poison(tok.data(), tok.size() * sizeof tok[0]);
        emu_poison(host.data(), host.size() * sizeof host[0]);
        tok0 = tok, host0 = host;
        slot = g_slot ^= 1;
        d.tok = tok.data(), d.host = host.data(), d.slot = &slot, d.cap = cap;
    }
    bool check(const cu_sample_out *want) const {
        bool ok = true;
        for (int i = 0; i < cap; i++) {
            const cu_sample_out &h = host[(size_t)slot * cap + i],
                                &o = host[(size_t)(slot ^ 1) * cap + i];
            const bool row = i < n;
            const bool good =
                row ? h.id == want[i].id && !memcmp(&h.lp, &want[i].lp, 4) && tok[i] == want[i].id
                    : !memcmp(&h, &host0[(size_t)slot * cap + i], sizeof h) && tok[i] == tok0[i];
            if (!good || memcmp(&o, &host0[(size_t)(slot ^ 1) * cap + i], sizeof o)) {
                fprintf(stderr, "emu: chosen row %d of %d: token slot %d, host slot (%d, %g)%s\n",
                        i, n, tok[i], h.id, h.lp, row ? "" : " written past the rows");
                ok = false;
            }
        }
        return ok;
    }
};

/* The greedy op (cu_op_end_step_argmax) over the emulated one-launch argmax: ids and
 * log-probabilities from the host slot; its arrival counters must be zero again after. */
extern "C" brisk_status emu_end_step_argmax(const float *logits, int n, int V, int32_t *ids,
                                            float *lp) {
    static void *scratch;
    static int cap;
    grow_zeroed(&scratch, &cap, n, cu_argmax_bytes);
    /* the slices' results are rewritten before they are read: poison them */
    emu_poison(scratch, am_off_count(cap));
    chosen_dst cd(n);
    if (cu_argmax(NULL, logits, n, V, scratch, cap, &cd.d) != cudaSuccess) return BRISK_ERR_BACKEND;
    /* the host slot is the op's result: check() then asks the token slot and the bytes around */
    const cu_sample_out *h = cd.host.data() + (size_t)cd.slot * cd.cap;
    brisk_status st = cd.check(h) ? BRISK_OK : BRISK_ERR_BACKEND;
    const uint32_t *count = (const uint32_t *)((char *)scratch + am_off_count(cap));
    for (int i = 0; i < n; i++) {
        ids[i] = h[i].id, lp[i] = h[i].lp;
        if (count[i]) {
            fprintf(stderr, "emu: argmax row %d left its counter at %u\n", i, count[i]);
            st = BRISK_ERR_BACKEND;
        }
    }
    return st;
}

extern "C" brisk_status emu_end_step_sample(const float *logits, int n, int V,
                                            const brisk_sample_params *p, const double *u,
                                            int32_t *ids, float *lp) {
    static void *scratch;
    static int cap;
    grow_zeroed(&scratch, &cap, n, cu_sample_bytes);
    cu_sample_in *in = (cu_sample_in *)scratch;
    for (int i = 0; i < n; i++) in[i].p = p[i], in[i].u = u[i];
    /* every row's state but the arrival counters (zero between launches) is rewritten before it
     * is read: random bytes there catch a read of the previous call's state */
    for (int i = 0; i < n; i++) {
        sp_buf *B = buf_of((char *)scratch, cap, i);
        uint32_t done[4];
        memcpy(done, B->r.done, sizeof done);
        emu_poison(B, sizeof *B);
        memcpy(B->r.done, done, sizeof done);
    }
    const float *dl = device_logits(logits, (size_t)n * V);
    chosen_dst cd(n);
    const cudaError_t ce = cu_sample(NULL, dl, n, V, scratch, cap, &cd.d);
    if (g_new) g_blocks = g_land_at, land();
    emu_block_hook = NULL;
    if (ce != cudaSuccess) return BRISK_ERR_BACKEND;
    /* the host slot is the op's result: check() then asks the token slot and the bytes around */
    const cu_sample_out *out = cd.host.data() + (size_t)cd.slot * cd.cap;
    brisk_status st = cd.check(out) ? BRISK_OK : BRISK_ERR_BACKEND;
    for (int i = 0; i < n; i++) {
        ids[i] = out[i].id, lp[i] = out[i].lp;
        if (ids[i] < 0 || ids[i] >= V) st = BRISK_ERR_BACKEND;
        const sp_row *R = &buf_of((char *)scratch, cap, i)->r;
        for (int k = 0; k < 4; k++)
            if (R->done[k]) {
                fprintf(stderr, "emu: row %d: launch %d left its counter at %u\n", i, k,
                        R->done[k]);
                st = BRISK_ERR_BACKEND;
            }
        if (R->bad) continue;
        g_paths[R->mode][R->mode >= SEL_RANK && R->bin_count > SP_CAP]++;
        g_second += R->mode == SEL_MASS && R->rank > 0;
    }
    return st;
}

/* Rows so far whose edge bin held more than SP_CAP ids (the selection over the row). */
extern "C" int emu_sample_row_paths(void) {
    return g_paths[SEL_RANK][1] + g_paths[SEL_MASS][1];
}

extern "C" void emu_sample_paths(void) {
    printf("paths: all %d, min-p key %d, top-k rank %d (+%d over the row), top-p mass %d (+%d "
           "over the row; %d with the top-k / min-p edge in the same bin)\n",
           g_paths[SEL_ALL][0], g_paths[SEL_KEY][0], g_paths[SEL_RANK][0], g_paths[SEL_RANK][1],
           g_paths[SEL_MASS][0], g_paths[SEL_MASS][1], g_second);
}
