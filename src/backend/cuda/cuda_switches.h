/* cuda_switches.h: the CUDA backend's process-wide switches, read once from the environment at
 * backend creation (cuda_switches.cu): what the loaded device code can run, and the env knobs
 * for A/B measurements and tuning (bench/cuda-notes.md). The kernel files define their own
 * (cu_gemv_v7 ...); this header declares them for the reader. C++ (nvcc) only. */
#ifndef BRISK_CUDA_SWITCHES_H
#define BRISK_CUDA_SWITCHES_H

/* Tokens per step up to which matmuls stay on the GEMV kernels (v8 reads the weights once for up
 * to 64 tokens). Measured on H100 (8B q4, ctx 1024): at 32 and 64 sequences the dequantize +
 * cuBLAS path ran 1,160 and 1,790 tok/s, i.e. 27.6 and 35.7 ms per step, while a GEMV pass over
 * the weights took ~3.5 ms (v4). Env BRISK_CUDA_GEMV_MAX_N overrides (A/B). */
extern int cu_gemv_max_n;
extern int cu_batch_prefill;  /* env BRISK_CUDA_BATCH_PREFILL=1 (A/B) */
extern int cu_attn_min_tiles; /* env BRISK_CUDA_ATTN_MINT (tuning) */
/* The one-token step's L2 prefetch of the MLP's weights (cuda_prefetch.cu, mlp_pf): MB shares of
 * the q, k, v GEMV (env BRISK_CUDA_V7_PF; unset: 2/5 of the L2, at most twice its own weights;
 * negative: after its x is staged), the attention (env BRISK_CUDA_ATTN_PF; unset: the o
 * projection's bytes) and the o GEMV (env BRISK_CUDA_V7_OPF; default 0; negative: from the start
 * of down) */
extern int cu_attn_pf, cu_attn_pf_auto, cu_v7_pf, cu_v7_pf_auto, cu_v7_opf;
extern int cu_v8_one; /* env BRISK_CUDA_V8_ONE=1: one-token steps on v8 too (A/B) */
/* env BRISK_CUDA_WG=0: v8 at 25-64 tokens on mma.sync, not wgmma (cuda_gemv_batch.cu) */
extern int cu_v8_wg;
extern int cu_v8_cw; /* env BRISK_CUDA_V8_CW (mma.sync): v8 at 33-64 tokens on 8 warps: 0 SwiGLU, 8
                        all, 16 none */
/* env BRISK_CUDA_V8_S=p,s: chunks a stage of v8's mma.sync launches at 33-64 tokens, plain and
 * SwiGLU (1-8; 0: b_s's) */
extern int cu_v8_s[2];
/* env BRISK_CUDA_V8_KS=k: v8's K splits forced to k (1-8, within the scratch; tuning) */
extern int cu_v8_ks;
/* env BRISK_CUDA_V8_KSM=m: the merge cost (chunks) in v8's K split model (tuning; default 8,
 * -1 the older model) */
extern int cu_v8_ksm;
/* Captured one-token steps: the v7 GEMV's blocks draw their tile groups after the first from a
 * counter (env BRISK_CUDA_V7_DYN: 1 every launch; 2, the default: SwiGLU's only; 0: round-robin).
 * Round 11 (before the v7 launches issued 2 stages before x): 8B -0.4..+0.3%, 1B -1.2%; round 16,
 * H100, four pairs in two calls: 8B -0.5..+0.6%, 1B +1.0..+2.8% (bench/cuda-notes.md). */
extern int cu_v7_dyn;
/* Tokens of a decode step captured as a graph (env BRISK_CUDA_GRAPH_T; 1: one-token steps only,
 * for A/B). */
extern int cu_graph_max_t;
extern int cu_mma_ok;     /* the loaded device code is sm_80+ (mma.sync m16n8k16) */
extern int cu_gemv_v3;    /* BRISK_CUDA_GEMV=3: round-2 layout and v3 kernel for 4-bit (A/B) */
extern int cu_attn_split; /* BRISK_CUDA_ATTN=split: the round-2 split-K attention (A/B) */
/* BRISK_CUDA_SKIP=norm,rope,attn,qkv,add,swiglu,head,attnbody,hbm,oproj,math,copy: a measuring aid,
 * never for use: the records of those kinds do not run (results are garbage), so `brisk bench`
 * shows what each stage costs inside the replayed graph (ncu times kernels one at a time). */
enum {
    SKIP_NORM = 1,
    SKIP_ROPE = 2,
    SKIP_ATTN = 4,
    SKIP_QKV = 8,
    SKIP_ADD = 16,
    SKIP_SWIGLU = 32,
    SKIP_HEAD = 64,
    SKIP_ATTNBODY = 128, /* the attention kernel runs but returns after its PDL wait */
    SKIP_HBM = 256,      /* the one-token GEMV (v7) copies its first tile's slices for every
                          * item: they stay in L2, so the step shows the GEMVs without HBM */
    SKIP_OPROJ = 512,    /* the attention's output projection alone: the square matmul + add */
    SKIP_MATH = 1024,    /* the one-token GEMV's (v7) consumers wait for each stage and free it
                          * without its math: the step with the copies and handoffs alone */
    SKIP_COPY = 2048,    /* the v7 and v8 GEMVs' producers free each stage without copying the
                          * weights: the consumers compute on stale shared memory (the math and
                          * handoffs alone) */
    SKIP_XCOPY = 4096    /* v8's producer copies no x into the stages (stale x: its traffic) */
};
extern int cu_skip;
/* RoPE + KV store inside the decode attention kernel (BRISK_CUDA_ROPEFUSE=0: a kernel of its own,
 * for A/B) */
extern int cu_rope_fuse;
/* decode attention pieces merged inside a cluster (BRISK_CUDA_ATTN=counter: the last block to
 * arrive merges them from global memory, for A/B) */
extern int cu_attn_cluster, cu_attn_cl_max; /* cl_max: env BRISK_CUDA_ATTN_CL (A/B) */
/* defined by the kernel files */
extern int cu_attn_tc, cu_attn_slice, cu_attn_outq, cu_attn_slim;
/* the decode attention's tensor-core tile buffers a warp: 0 (the default) chosen by the launch
 * (fd_launch), env BRISK_CUDA_ATTN_NB=1 or 2 forces single or double (A/B) */
extern int cu_attn_nb;
extern int cu_gemv_v2, cu_gemv_v7, cu_gemv_v8, cu_v7_ring, cu_v7_cw, cu_v7_fit, cu_v7_pre,
    cu_v7_preq, cu_v7_pref, cu_v7_pace, cu_v7_actq, cu_v7_slim, cu_v7_norm, cu_norm_fuse, cu_mma_u,
    cu_mma_tt;

/* Reads the loaded code's version and every switch above from the environment. */
void cu_switches_read(void);

#endif
