/* cuda_switches.cu: the CUDA backend's process-wide switches (cuda_switches.h) and their one
 * reading from the environment at backend creation. */
#include "cuda_internal.h"
#include "cuda_switches.h"

#include <stdlib.h>
#include <string.h>

int cu_pdl = 1;
/* the loaded device code is sm_90+ (clusters, bulk copies, mbarrier transactions) */
int cu_sm90 = 0;
int cu_mma_ok = 0;
int cu_gemv_v3 = 0;
int cu_attn_split = 0;
int cu_skip = 0;
int cu_rope_fuse = 1;
int cu_attn_cluster = 1, cu_attn_cl_max = 8;
int cu_gemv_max_n = 64;
int cu_batch_prefill = 0;
int cu_attn_min_tiles = 1;
int cu_v8_one = 0;
int cu_wgmma_ok = 0;
/* tile groups drawn from a counter: 0 none (round-robin), 1 every one-token launch's, 2 SwiGLU's.
 * The default was 2 with a 160 KB ring (rounds 11-20); with the slim kernels 0 and 128 KB
 * (P_RING) measured better: H100, round 21, one call, three interleaved rounds, 8B +1.2%, 1B
 * +0.3% */
int cu_v7_dyn = 0;
int cu_graph_max_t = 64;
int cu_attn_pf = 0, cu_attn_pf_auto = 1, cu_v7_pf = 0, cu_v7_pf_auto = 1, cu_v7_opf = 0;

void cu_switches_read(void) {
    /* A/B switches for measurement: BRISK_CUDA_PDL=0, BRISK_CUDA_GEMV=2 ... */
    const char *e = getenv("BRISK_CUDA_PDL");
    cu_pdl = !(e && e[0] == '0');
    /* the tensor-core and sm_90 paths exist in the loaded code only if the PTX it came from was
     * built for them (__CUDA_ARCH__ then): compute_75 PTX JIT-compiled on an H100 loads as sm_90
     * machine code without them */
    int bin = 0, ptx = 0;
    cu_code_version(&bin, &ptx);
    cu_mma_ok = bin >= 80 && ptx >= 80;
    cu_sm90 = bin >= 90 && ptx >= 90;
    /* griddepcontrol exists only in code built for sm_90+: never launch programmatically
     * into kernels that cannot wait */
    if (!cu_sm90) cu_pdl = 0;
    e = getenv("BRISK_CUDA_GEMV");
    cu_gemv_v2 = e && e[0] == '2';
    cu_gemv_v3 = e && e[0] == '3';
    cu_gemv_v7 = !(e && e[0] == '4'); /* 4: one-token steps on v4 too (A/B) */
    e = getenv("BRISK_CUDA_BATCH");   /* 0: steps of several tokens on v4 (A/B) */
    cu_gemv_v8 = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_WG"); /* 0: v8 at 25-64 tokens on mma.sync, not wgmma (A/B) */
    if (e) cu_v8_wg = e[0] != '0';
    cu_wgmma_ok = cu_v8_wg && cu_sm90 && cu_code_wgmma(); /* a probe launch */
    e = getenv("BRISK_CUDA_V8_CW"); /* 16: v8's 8-group layout on 16 warps (A/B) */
    if (e) cu_v8_cw = atoi(e) == 16 ? 16 : atoi(e) == 8 ? 8 : 0;
    e = getenv("BRISK_CUDA_V8_S"); /* chunks a stage at 33-64 tokens: "plain,swiglu" (tuning) */
    if (e) cu_v8_s[0] = atoi(e), cu_v8_s[1] = strchr(e, ',') ? atoi(strchr(e, ',') + 1) : 0;
    e = getenv("BRISK_CUDA_V8_KS");
    if (e) cu_v8_ks = atoi(e);
    e = getenv("BRISK_CUDA_V8_KSM");
    if (e) cu_v8_ksm = atoi(e);
    e = getenv("BRISK_CUDA_V8_ONE");
    cu_v8_one = e && e[0] == '1';
    e = getenv("BRISK_CUDA_BATCH_PREFILL"); /* 1: prefills on it too, 64 tokens a pass */
    cu_batch_prefill = e && e[0] == '1';
    e = getenv("BRISK_CUDA_V7_RING"); /* KB of stages per block (tuning) */
    if (e && atoi(e) >= 16) cu_v7_ring = atoi(e) << 10;
    e = getenv("BRISK_CUDA_V7_CW");
    cu_v7_cw = !e || !strcmp(e, "mix") ? 1 : atoi(e) == 16 ? 16 : 8;
    e = getenv("BRISK_CUDA_V7_FIT");
    cu_v7_fit = e && e[0] == '1';
    e = getenv("BRISK_CUDA_V7_PRE");
    cu_v7_pre = e ? atoi(e) : 0;
    e = getenv("BRISK_CUDA_V7_PREQ");
    if (e) cu_v7_preq = atoi(e);
    e = getenv("BRISK_CUDA_V7_PREF"); /* stages before x where a block's share fits (0: off) */
    if (e) cu_v7_pref = atoi(e);
    e = getenv("BRISK_CUDA_V7_PACE"); /* stages in flight until x's loads are issued (0: any) */
    if (e) cu_v7_pace = atoi(e) > 0 && atoi(e) < 8 ? atoi(e) : 0;
    e = getenv("BRISK_CUDA_V7_ACTQ"); /* 0: the down projection stages the SwiGLU floats (A/B) */
    cu_v7_actq = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_ATTN_SLIM"); /* 0: the general decode attention kernel (A/B) */
    cu_attn_slim = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_V7_SLIM"); /* 0: the general kernel for every shape (A/B) */
    cu_v7_slim = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_V7NORM");
    cu_v7_norm = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_NORMFUSE");
    cu_norm_fuse = e && e[0] == '1';
    e = getenv("BRISK_CUDA_MMA_U");
    cu_mma_u = e && atoi(e) == 8 ? 8 : 4;
    e = getenv("BRISK_CUDA_MMA_TT");
    cu_mma_tt = e && (atoi(e) == 1 || atoi(e) == 2) ? atoi(e) : 0;
    e = getenv("BRISK_CUDA_GRAPH_T"); /* 0: no graphs (A/B) */
    if (e && atoi(e) >= 0) cu_graph_max_t = atoi(e);
    e = getenv("BRISK_CUDA_GEMV_MAX_N");
    if (e && atoi(e) >= 1) cu_gemv_max_n = atoi(e);
    e = getenv("BRISK_CUDA_ATTN");
    cu_attn_split = e && strcmp(e, "split") == 0;
    cu_attn_cluster = !(e && strcmp(e, "counter") == 0);
    e = getenv("BRISK_CUDA_ATTN_CL"); /* pieces per cluster at most (2..8, A/B) */
    cu_attn_cl_max = e && atoi(e) >= 2 && atoi(e) <= 8 ? atoi(e) : 8;
    e = getenv("BRISK_CUDA_ATTN_MINT"); /* tiles per warp a decode piece holds at least */
    cu_attn_min_tiles = e && atoi(e) >= 1 && atoi(e) <= 64 ? atoi(e) : 1;
    e = getenv("BRISK_CUDA_ATTN_PF"); /* set (0 included): that many MB for every step */
    cu_attn_pf = e ? atoi(e) : 0;
    cu_attn_pf_auto = !e;
    e = getenv("BRISK_CUDA_V7_PF"); /* MB of the MLP the q, k, v GEMV prefetches (tuning) */
    cu_v7_pf = e ? atoi(e) : 0;
    cu_v7_pf_auto = !e;
    e = getenv("BRISK_CUDA_V7_OPF"); /* MB of the MLP the o GEMV prefetches (tuning) */
    cu_v7_opf = e ? atoi(e) : 0;
    e = getenv("BRISK_CUDA_V7_DYN");
    if (e) cu_v7_dyn = atoi(e);
    cu_tl_init();
    e = getenv("BRISK_CUDA_ATTN_SLICE"); /* 0: the cluster's merge all in block 0 (A/B) */
    cu_attn_slice = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_ATTN_OUTQ"); /* 0: the o projection stages the attention's floats */
    cu_attn_outq = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_ATTN_TC"); /* 0: the decode attention's FMA tiles (A/B) */
    cu_attn_tc = cu_mma_ok && !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_ATTN_NB");
    cu_attn_nb = e && (e[0] == '1' || e[0] == '2') ? e[0] - '0' : 0;
    e = getenv("BRISK_CUDA_ROPEFUSE");
    cu_rope_fuse = !(e && e[0] == '0');
    e = getenv("BRISK_CUDA_SKIP");
    cu_skip = 0;
    if (e) {
        const char *names[] = {"norm",     "rope", "attn",  "qkv",  "add",  "swiglu", "head",
                               "attnbody", "hbm",  "oproj", "math", "copy", "xcopy"};
        for (const char *p = e; *p;) {
            const size_t len = strcspn(p, ",");
            for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
                if (strlen(names[i]) == len && !strncmp(p, names[i], len)) cu_skip |= 1 << i;
            p += len + (p[len] == ',');
        }
    }
}
