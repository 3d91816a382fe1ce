/* cmd_bench.c: `brisk bench`: prompt and generation speed of a model folder or of a named real
 * shape with random weights, reported as tok/s and as a fraction of the measured bandwidth floor.
 */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Clock of core 0 in GHz from /proc/cpuinfo (0 when unknown): the FMA-peak estimate's clock. */
static double cpu_ghz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7) && sscanf(strchr(line, ':') + 1, "%lf", &mhz) == 1) break;
    if (f) fclose(f);
    return mhz / 1000.0;
}

static const char USAGE[] =
    "usage: brisk bench (--model DIR | --shape NAME [--quant Q]) [-p N] [-n N] [-r N]\n"
    "                   [-b N [--ctx N] [--logits]] [--backend auto|cpu|ref|cuda] [--threads N]\n"
    "                   [--json]\n"
    "                   [--temp T [--top-k K] [--top-p P] [--min-p P] [--seed S]] [--no-pipeline]\n"
    "  --shape NAME   random weights of a real shape: see brisk_synthetic_shapes()\n"
    "  --quant Q      weight format of --shape: q4g64 (default), q8g32, q<bits>g<group>, bf16, "
    "f16, f32\n"
    "  -p N           prompt tokens to prefill (default 512; 0 skips)\n"
    "  -n N           tokens to generate one at a time (default 128; 0 skips)\n"
    "  -r N           repetitions; the best run is reported (default 3)\n"
    "  -b N           decode N sequences together in one step (continuous batching), each with\n"
    "                 its own sampler (--seed plus its index); gen tok/s is summed over them\n"
    "                 and the floor counts the weights and every sequence's K/V (default 1)\n"
    "  --ctx N        with -b: tokens each sequence holds before the timed steps (default -p)\n"
    "  --logits       with -b: each step returns every sequence's logits to the host instead of\n"
    "                 the tokens its samplers pick (and is fed random tokens)\n"
    "  --json         one JSON object per line instead of the table\n"
    "  --temp T       decode steps sample with this temperature and the filters below, as\n"
    "                 generate does (default 0: greedy); --top-k 0, --top-p 1, --min-p 0 = off\n"
    "  --no-pipeline  decode steps (-b 1) one at a time, each waited for before the next starts\n"
    "                 (default: each queued behind the one before, feeding it the token that one\n"
    "                 picks, as generate does)\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_float(const char *v, float lo, float hi, float *out) {
    char *end;
    double d = strtod(v, &end);
    if (*end || end == v || !(d >= lo && d <= hi)) return 0;
    *out = (float)d;
    return 1;
}

static int parse_int(const char *v, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || end == v || n < 0 || n > 1 << 24) return 0;
    *out = (int)n;
    return 1;
}

int brisk_cmd_bench(int argc, char **argv) {
    const char *model_dir = NULL, *shape = NULL, *quant = "q4g64", *backend = "auto";
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0, json = 0, batch = 1, ctx_len = -1;
    int seed = 0, pipeline = 1, logits_mode = 0;
    brisk_sampler_params sp = brisk_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(USAGE);
            printf("  shapes: %s\n", brisk_synthetic_shapes());
            return BRISK_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--no-pipeline")) {
            pipeline = 0;
            continue;
        }
        if (!strcmp(a, "--logits")) {
            logits_mode = 1;
            continue;
        }
        if (i + 1 >= argc)
            return brisk_cli_usage("bench", USAGE, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        int *num = !strcmp(a, "-p") || !strcmp(a, "--n-prompt")      ? &n_prompt
                   : !strcmp(a, "-n") || !strcmp(a, "--n-gen")       ? &n_gen
                   : !strcmp(a, "-r") || !strcmp(a, "--repetitions") ? &reps
                   : !strcmp(a, "--threads") || !strcmp(a, "-t")     ? &threads
                   : !strcmp(a, "-b") || !strcmp(a, "--batch")       ? &batch
                   : !strcmp(a, "--ctx")                             ? &ctx_len
                   : !strcmp(a, "--top-k")                           ? &sp.top_k
                   : !strcmp(a, "--seed")                            ? &seed
                                                                     : NULL;
        float *fnum = !strcmp(a, "--temp")    ? &sp.temperature
                      : !strcmp(a, "--top-p") ? &sp.top_p
                      : !strcmp(a, "--min-p") ? &sp.min_p
                                              : NULL;
        if (num) {
            if (!parse_int(v, num))
                return brisk_cli_usage("bench", USAGE,
                                       "%s expects a non-negative integer, got '%s'", a, v);
        } else if (fnum) {
            if (!parse_float(v, 0.0f, fnum == &sp.temperature ? 100.0f : 1.0f, fnum))
                return brisk_cli_usage("bench", USAGE, "%s expects a number in [0, %s], got '%s'",
                                       a, fnum == &sp.temperature ? "100" : "1", v);
        } else if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--shape"))
            shape = v;
        else if (!strcmp(a, "--quant"))
            quant = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else
            return brisk_cli_usage("bench", USAGE, "unknown option '%s'", a);
    }
    if (!model_dir == !shape)
        return brisk_cli_usage("bench", USAGE, "give exactly one of --model and --shape");
    if (reps < 1) reps = 1;
    if (threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (n_prompt + n_gen == 0) return brisk_cli_usage("bench", USAGE, "-p and -n are both 0");
    if (batch < 1 || batch > 1024) return brisk_cli_usage("bench", USAGE, "-b must be in 1..1024");
    if (logits_mode && (batch == 1 || sp.temperature > 0))
        return brisk_cli_usage("bench", USAGE, "--logits applies to -b N > 1 without --temp");
    if (ctx_len < 0) ctx_len = n_prompt;
    brisk_model_params mp = brisk_model_default_params();
    mp.n_threads = threads;
    if (!strcmp(backend, "auto"))
        mp.backend = BRISK_BACKEND_AUTO;
    else if (!strcmp(backend, "cpu"))
        mp.backend = BRISK_BACKEND_CPU;
    else if (!strcmp(backend, "ref"))
        mp.backend = BRISK_BACKEND_CPU_REF;
    else if (!strcmp(backend, "cuda"))
        mp.backend = BRISK_BACKEND_CUDA;
    else
        return brisk_cli_usage("bench", USAGE, "unknown backend '%s'", backend);

    sp.seed = (uint64_t)seed;
    brisk_model *model = NULL;
    brisk_context *ctx = NULL;
    brisk_sampler *sampler = NULL;
    int32_t *toks = NULL;
    int rc = BRISK_EXIT_FAIL;
    double t0 = now_s();
    brisk_status st = model_dir ? brisk_model_load(model_dir, &mp, &model)
                                : brisk_model_create_synthetic(shape, quant, &mp, &model);
    if (st != BRISK_OK) return brisk_cli_fail("bench", "cannot load model", st);
    double t_load = now_s() - t0;
    brisk_model_info info;
    brisk_model_get_info(model, &info);
    brisk_context_params cp = brisk_context_default_params();
    cp.n_ctx = (batch > 1 ? (ctx_len > n_prompt ? ctx_len : n_prompt) : n_prompt) + n_gen + 1;
    cp.n_seq_max = batch;
    cp.n_batch = n_prompt > batch ? n_prompt : batch;
    if ((st = brisk_context_create(model, &cp, &ctx)) != BRISK_OK) {
        rc = brisk_cli_fail("bench", "cannot create context", st);
        goto done;
    }
    double bw = 0;
    if ((st = brisk_context_measure_bandwidth(ctx, &bw)) != BRISK_OK) {
        rc = brisk_cli_fail("bench", "cannot measure bandwidth", st);
        goto done;
    }
    if ((st = brisk_sampler_create(&sp, info.n_vocab, &sampler)) != BRISK_OK) {
        rc = brisk_cli_fail("bench", "bad sampling options", st);
        goto done;
    }
    const int n_toks = cp.n_ctx + batch;
    toks = malloc(sizeof *toks * (size_t)n_toks);
    if (!toks) goto done;
    uint64_t rng = 12345;
    for (int i = 0; i < n_toks; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        toks[i] = (int32_t)((rng >> 33) % (uint64_t)info.n_vocab);
    }
    double best_pp = 0, best_tg = 0;
    /* the last run's greedy ids: its first few and a hash of all (FNV-1a's constants, one step
     * per id), to compare backends and kernel variants on the same shape */
    const uint64_t ids_basis = 1469598103934665603ULL;
    int32_t first_ids[8];
    int n_ids = 0;
    uint64_t ids_hash = ids_basis;
    for (int r = 0; r < reps; r++) {
        brisk_context_seq_truncate(ctx, 0, 0);
        if (n_prompt > 0) {
            t0 = now_s();
            if ((st = brisk_context_eval(ctx, 0, toks, n_prompt, NULL, true)) != BRISK_OK) {
                rc = brisk_cli_fail("bench", "prefill failed", st);
                goto done;
            }
            double tps = n_prompt / (now_s() - t0);
            if (tps > best_pp) best_pp = tps;
        }
        if (n_gen > 0 && batch == 1) {
            /* Decode steps pick the next token as generation does (greedy by default; on a GPU the
             * chain runs there and only the token comes back). Pipelined, as brisk_generate runs
             * them: each step is queued before the one ahead of it finishes and takes the token
             * that one picks. --no-pipeline: each step waits for its token and is fed a random
             * one. Either way every run decodes the same sequence. */
            int32_t next = 0;
            n_ids = 0, ids_hash = ids_basis;
            brisk_sampler_reset(sampler, sp.seed);
            t0 = now_s();
            if (pipeline) st = brisk_context_decode_launch(ctx, 0, &toks[n_prompt], sampler);
            for (int i = 0; i < n_gen && st == BRISK_OK; i++) {
                if (!pipeline) {
                    st = brisk_context_eval_sample(ctx, 0, &toks[n_prompt + i], 1, sampler, &next,
                                                   NULL);
                } else {
                    if (i + 1 < n_gen) st = brisk_context_decode_launch(ctx, 0, NULL, sampler);
                    if (st == BRISK_OK) st = brisk_context_decode_collect(ctx, &next, NULL);
                }
                if (n_ids < 8) first_ids[n_ids] = next;
                n_ids++;
                ids_hash = (ids_hash ^ (uint32_t)next) * 1099511628211ULL;
            }
            brisk_context_decode_drop(ctx);
            double tps = n_gen / (now_s() - t0);
            if (st != BRISK_OK) {
                rc = brisk_cli_fail("bench", "decode failed", st);
                goto done;
            }
            if (tps > best_tg) best_tg = tps;
        } else if (n_gen > 0) {
            /* Continuous batching: every sequence holds ctx_len tokens, then all step together,
             * each step feeding every sequence the token its own sampler (seed + its index) picked
             * the step before, as a server steps its requests: only the tokens come back.
             * --logits: each step returns every sequence's logits instead and takes random
             * tokens. */
            int *seqs = malloc(sizeof *seqs * (size_t)batch);
            int32_t *next = malloc(sizeof *next * (size_t)batch);
            brisk_sampler **smp = calloc((size_t)batch, sizeof *smp);
            float *logits =
                logits_mode ? malloc(sizeof(float) * (size_t)info.n_vocab * (size_t)batch) : NULL;
            const int oom = !seqs || !next || !smp || (logits_mode && !logits);
            n_ids = 0, ids_hash = ids_basis;
            for (int b = 0; b < batch && !oom && st == BRISK_OK; b++) {
                seqs[b] = b, next[b] = toks[ctx_len + b];
                brisk_sampler_params sb = sp;
                sb.seed = sp.seed + (uint64_t)b;
                st = brisk_sampler_create(&sb, info.n_vocab, &smp[b]);
                brisk_context_seq_truncate(ctx, b, 0);
                if (st == BRISK_OK && ctx_len > 0)
                    st = brisk_context_eval(ctx, b, toks + b, ctx_len, NULL, true);
            }
            t0 = now_s();
            for (int i = 0; i < n_gen && !oom && st == BRISK_OK; i++) {
                if (logits_mode) {
                    st = brisk_context_decode_batch(ctx, seqs, toks + ctx_len + i, batch, logits);
                    continue;
                }
                st = brisk_context_decode_batch_sample(ctx, seqs, next, batch, smp, next, NULL);
                for (int b = 0; b < batch && st == BRISK_OK; b++) {
                    brisk_sampler_accept(smp[b], next[b]);
                    if (n_ids < 8) first_ids[n_ids] = next[b];
                    n_ids++;
                    ids_hash = (ids_hash ^ (uint32_t)next[b]) * 1099511628211ULL;
                }
            }
            double tps = (double)batch * n_gen / (now_s() - t0);
            for (int b = 0; smp && b < batch; b++) brisk_sampler_destroy(smp[b]);
            free(seqs), free(next), free(smp), free(logits);
            if (oom || st != BRISK_OK) {
                rc = oom ? BRISK_EXIT_FAIL : brisk_cli_fail("bench", "batched decode failed", st);
                goto done;
            }
            if (tps > best_tg) best_tg = tps;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double peak_gb = ru.ru_maxrss / 1048576.0;
    /* Weight bytes per step; a batched step reads them once for all its sequences. */
    const double bpt = (double)info.decode_bytes, gbps = best_tg / batch * bpt / 1e9;
    /* A batched step also reads every sequence's K/V (at ctx_len + (n_gen + 1) / 2 tokens on
     * average over the timed steps): its floor counts both. */
    const double kv_step = batch > 1 ? (double)batch * (ctx_len + (n_gen + 1) / 2.0) *
                                           (double)brisk_context_kv_bytes_per_token(ctx)
                                     : 0,
                 step_gbps = best_tg / batch * (bpt + kv_step) / 1e9;
    /* Prefill FLOPs: 2 per weight of the layers per token, one logits row, and attention
     * (q.k and p.v over p+1 positions: 4 * n_head * head_dim * (p+1) per layer). */
    const double embd = (double)info.n_vocab * info.n_embd;
    const double layer_w = (double)info.n_params - embd * (info.tied_embeddings ? 1 : 2);
    const double attn =
        2.0 * info.n_layer * info.n_head * info.head_dim * (double)n_prompt * (n_prompt + 1);
    const double pp_flop = 2 * layer_w * n_prompt + 2 * embd + attn;
    const double pp_gflops = best_pp > 0 ? pp_flop * best_pp / n_prompt / 1e9 : 0;
    /* AVX2 peak: 2 FMA pipes x 8 floats x 2 flops per cycle per core. */
    const char *be = brisk_context_backend_name(ctx);
    const int on_cpu = !strncmp(be, "cpu", 3);
    const double ghz = on_cpu ? cpu_ghz() : 0, peak = threads * 32.0 * ghz;
    const char *name = model_dir ? model_dir : shape;
    const char *q = model_dir ? "file" : quant;
    char samp[96] = "greedy";
    if (sp.temperature > 0)
        snprintf(samp, sizeof samp, "temp %g top-k %d top-p %g min-p %g", sp.temperature, sp.top_k,
                 sp.top_p, sp.min_p);
    if (json) {
        printf(
            "{\"shape\": \"%s\", \"quant\": \"%s\", \"backend\": \"%s\", \"threads\": %d, "
            "\"n_prompt\": %d, \"n_gen\": %d, \"batch\": %d, \"ctx\": %d, \"prompt_tps\": %.2f, "
            "\"gen_tps\": %.2f, "
            "\"bytes_per_token\": %.0f, \"gbps\": %.2f, \"measured_gbps\": %.2f, "
            "\"floor_fraction\": %.4f, \"params\": %llu, \"load_s\": %.3f, \"peak_rss_gb\": %.3f, "
            "\"prompt_gflops\": %.1f, \"fma_peak_gflops\": %.1f, \"sampler\": \"%s\", "
            "\"kv_bytes_per_step\": %.0f, \"step_floor_fraction\": %.4f}\n",
            name, q, be, threads, n_prompt, n_gen, batch, ctx_len, best_pp, best_tg, bpt, gbps, bw,
            bw > 0 ? gbps / bw : 0, (unsigned long long)info.n_params, t_load, peak_gb, pp_gflops,
            peak, samp, kv_step, bw > 0 ? step_gbps / bw : 0);
    } else {
        printf("model        %s (%s, %.2fB params, %.3f GB read per token)\n", name, q,
               info.n_params / 1e9, bpt / 1e9);
        printf("backend      %s, threads %d\n", be, threads);
        if (n_prompt && on_cpu)
            printf("prompt       %d tokens: %.2f tok/s = %.1f GFLOP/s (%.0f%% of the %.0f GFLOP/s "
                   "FMA peak of %d cores at %.2f GHz)\n",
                   n_prompt, best_pp, pp_gflops, peak > 0 ? 100 * pp_gflops / peak : 0, peak,
                   threads, ghz);
        else if (n_prompt)
            printf("prompt       %d tokens: %.2f tok/s = %.1f GFLOP/s\n", n_prompt, best_pp,
                   pp_gflops);
        if (n_gen && batch > 1)
            printf("generation   %d steps x %d sequences at context %d: %.2f tok/s summed "
                   "(%.2f steps/s = %.2f GB/s of weights)\n",
                   n_gen, batch, ctx_len, best_tg, best_tg / batch, gbps);
        else if (n_gen)
            printf("generation   %d tokens (%s): %.2f tok/s = %.2f GB/s\n", n_gen, samp, best_tg,
                   gbps);
        if (n_gen && n_ids) {
            printf("tokens       %d decoded, hash %016llx, first", n_ids,
                   (unsigned long long)ids_hash);
            for (int i = 0; i < n_ids && i < 8; i++) printf(" %d", first_ids[i]);
            printf("\n");
        }
        if (n_gen && batch > 1)
            printf("bandwidth    %.2f GB/s measured read -> weights alone %.1f%% of the floor; "
                   "weights + K/V (%.3f GB a step) %.1f%% (floor %.2f tok/s)\n",
                   bw, 100 * gbps / bw, (bpt + kv_step) / 1e9, 100 * step_gbps / bw,
                   batch * bw * 1e9 / (bpt + kv_step));
        else if (n_gen)
            printf("bandwidth    %.2f GB/s measured read -> %.1f%% of the floor (%.2f tok/s)\n", bw,
                   100 * gbps / bw, bw * 1e9 / bpt);
        printf("memory       peak RSS %.2f GB, load %.2f s\n", peak_gb, t_load);
    }
    rc = BRISK_EXIT_OK;
done:
    free(toks);
    brisk_sampler_destroy(sampler);
    brisk_context_destroy(ctx);
    brisk_model_free(model);
    return rc;
}
