/* sample_cases.h: the cases and the oracle of the device sampling op (end_step_sample): rows of
 * logits of many shapes (V from 1 to 128256: LM-like, one huge max, flat, ties, -inf, near-flat,
 * plateaus, one finite id) under many (temperature, top_k, top_p, min_p, u), in batches of rows
 * with their own filters, checked against engine/sampler.c drawing with the same uniform
 * (brisk_sampler_sample_u). Shared by tests/ops/test_sample_cuda.c (the CUDA op) and
 * tests/ops/cuda_emu (the same kernels run on the CPU). Header-only, static. */
#ifndef BRISK_SAMPLE_CASES_H
#define BRISK_SAMPLE_CASES_H

#include "backend/backend.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The op under test: logits are host rows [n, V]; returns the op's status. */
typedef brisk_status (*sc_device_fn)(void *ctx, const float *logits, int n, int V,
                                     const brisk_sample_params *p, const double *u, int32_t *ids,
                                     float *lp);

static uint64_t sc_rng = 0x853C49E6748FEA9BULL;

static inline uint64_t sc_next(void) {
    sc_rng ^= sc_rng << 13, sc_rng ^= sc_rng >> 7, sc_rng ^= sc_rng << 17;
    return sc_rng;
}

/* Uniform in [0, 1) with 53 bits, like the sampler's generator. */
static inline double sc_unit(void) {
    return (double)(sc_next() >> 11) * 0x1.0p-53;
}

/* Roughly normal (sum of four uniforms, variance 1). */
static inline float sc_gauss(void) {
    return (float)((sc_unit() + sc_unit() + sc_unit() + sc_unit() - 2.0) * 1.7320508);
}

enum {
    SC_LM,        /* N(0, 2) plus ~20 ids lifted by up to 18 nats: a language model's shape */
    SC_PEAK,      /* one id at 1000, the rest N(0, 1) */
    SC_FLAT,      /* every id equal */
    SC_TIES,      /* values on a 0.25 grid in [-2, 2]: ties everywhere, at every edge */
    SC_NEGINF,    /* half the ids -inf (at least one finite) */
    SC_NEARFLAT,  /* N(0, 0.01): thousands of ids within one 1/32-nat bin */
    SC_PLATEAUS,  /* four levels (10, 9.9, 5, 0) with many ids each */
    SC_ONEFINITE, /* every id -inf but one */
    SC_NSHAPES
};
static const char *const sc_shape_name[SC_NSHAPES] = {
    "lm", "peak", "flat", "ties", "-inf", "near-flat", "plateaus", "one-finite"};

static void sc_fill(float *x, int V, int shape) {
    for (int i = 0; i < V; i++) {
        switch (shape) {
        case SC_LM:
            x[i] = 2.0f * sc_gauss();
            break;
        case SC_PEAK:
            x[i] = sc_gauss();
            break;
        case SC_FLAT:
            x[i] = 0.5f;
            break;
        case SC_TIES:
            x[i] = (float)((int)(sc_next() % 17) - 8) * 0.25f;
            break;
        case SC_NEGINF:
            x[i] = sc_next() % 2 ? -INFINITY : 3.0f * sc_gauss();
            break;
        case SC_NEARFLAT:
            x[i] = 0.01f * sc_gauss();
            break;
        case SC_PLATEAUS: {
            static const float lv[4] = {10.0f, 9.9f, 5.0f, 0.0f};
            const uint64_t r = sc_next() % 100;
            x[i] = lv[r < 3 ? 0 : r < 10 ? 1 : r < 40 ? 2 : 3];
            break;
        }
        default:
            x[i] = -INFINITY;
            break;
        }
    }
    if (shape == SC_LM)
        for (int j = 0; j < 20; j++) x[sc_next() % (uint64_t)V] += (float)(18.0 * sc_unit());
    if (shape == SC_PEAK) x[sc_next() % (uint64_t)V] = 1000.0f;
    /* at least one finite logit: a row of only -inf is the op's error case (sc_run tests it on
     * its own), which the -inf shape drew with probability 2^-V (V = 7: twice in the GPU test's
     * 100 batches, reported as the op failing) */
    int finite = 0;
    for (int i = 0; i < V && !finite; i++) finite = x[i] > -INFINITY;
    if (shape == SC_ONEFINITE || (shape == SC_NEGINF && (V < 4 || !finite)))
        x[sc_next() % (uint64_t)V] = -3.0f;
}

typedef struct sc_case {
    float temp, top_p, min_p;
    int top_k;
    double u;
} sc_case;

/* Case c of a stream that goes through every (temperature, top_k, top_p, min_p) combination once
 * per 576 cases; u random, or the ends of [0, 1). */
static const float sc_temps[4] = {0.25f, 0.7f, 1.0f, 1.7f};
static const float sc_top_ps[6] = {1.0f, 0.95f, 0.5f, 0.1f, 0.999f, 0.9999f};
static const float sc_min_ps[4] = {0.0f, 0.05f, 0.3f, 1.0f};

static sc_case sc_make(int c, int V) {
    const int K[6] = {0, 1, 2, 40, 5000, V};
    sc_case k;
    k.temp = sc_temps[c % 4];
    k.top_k = K[(c / 4) % 6];
    k.top_p = sc_top_ps[(c / 24) % 6];
    k.min_p = sc_min_ps[(c / 144) % 4];
    k.u = c % 16 == 5 ? 0.0 : c % 16 == 11 ? 1.0 - 0x1.0p-53 : sc_unit();
    return k;
}

static brisk_sampler *sc_sampler(const sc_case *k, int V) {
    brisk_sampler_params sp = brisk_sampler_default_params();
    sp.temperature = k->temp, sp.top_k = k->top_k, sp.top_p = k->top_p, sp.min_p = k->min_p;
    brisk_sampler *s = NULL;
    if (brisk_sampler_create(&sp, V, &s) != BRISK_OK) return NULL;
    return s;
}

static const float *sc_sort_x;
static int sc_by_rank(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    const float x = sc_sort_x[i], y = sc_sort_x[j];
    return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}

/* Whether a device token that differs from the host's is a rounding edge: the top-p prefix sum
 * passes within 1e-5 of top_p somewhere, or u lies within 1e-5 of every edge of the draw's
 * cumulative distribution (kept ids in id order) between the two picks. Recomputed here in
 * double from scratch. */
static int sc_explained(const float *x, int V, const sc_case *k, int32_t hid, int32_t did,
                        const char **why) {
    int32_t *ord = malloc(sizeof *ord * (size_t)V);
    double *cw = malloc(sizeof *cw * (size_t)V);
    char *kept = calloc((size_t)V, 1);
    int ok = 0;
    float mx = x[0];
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)x[i] - mx), ord[i] = i;
    const double lse = mx + log(z);
    sc_sort_x = x;
    qsort(ord, (size_t)V, sizeof *ord, sc_by_rank);
    int m = V;
    if (k->top_k > 0 && k->top_k < m) m = k->top_k;
    if (k->top_p > 0.0f && k->top_p < 1.0f) {
        double cum = 0;
        for (int j = 0; j < V; j++) {
            cum += exp((double)x[ord[j]] - lse);
            if (fabs(cum - k->top_p) < 1e-5) {
                *why = "top-p edge";
                ok = 1;
                goto done;
            }
            if (cum >= k->top_p && j + 1 < m) {
                m = j + 1;
                break;
            }
        }
    }
    if (k->min_p > 0.0f) {
        const float th = mx + logf(k->min_p);
        int c = 0;
        while (c < m && x[ord[c]] >= th) c++;
        m = c > 0 ? c : 1;
    }
    for (int j = 0; j < m; j++) kept[ord[j]] = 1;
    double tot = 0;
    int ph = -1, pd = -1, n = 0;
    for (int i = 0; i < V; i++) {
        if (!kept[i]) continue;
        tot += exp(((double)x[i] - mx) / k->temp);
        cw[n] = tot;
        if (i == hid) ph = n;
        if (i == did) pd = n;
        n++;
    }
    if (ph >= 0 && pd >= 0) {
        const int lo = ph < pd ? ph : pd, hi = ph < pd ? pd : ph;
        ok = 1;
        for (int j = lo; j < hi; j++) ok &= fabs(cw[j] / tot - k->u) < 1e-5;
        *why = "draw edge";
    }
done:
    free(ord), free(cw), free(kept);
    return ok;
}

typedef struct sc_stats {
    int cases, equal, edges, failed;
    double worst_lp;
} sc_stats;

/* Checks one row's device result against the host sampler with the same u. */
static void sc_check(const float *x, int V, const sc_case *k, int32_t did, float dlp,
                     const char *what, sc_stats *st) {
    float *tmp = malloc(sizeof *tmp * (size_t)V);
    memcpy(tmp, x, sizeof *tmp * (size_t)V);
    brisk_sampler *s = sc_sampler(k, V);
    int32_t hid = -2;
    float hlp = 0;
    if (!s || brisk_sampler_sample_u(s, tmp, k->u, &hid, &hlp) != BRISK_OK) hid = -2;
    brisk_sampler_destroy(s);
    free(tmp);
    st->cases++;
    const char *why = "";
    if (hid == did) {
        st->equal++;
        const double e = fabs((double)hlp - dlp);
        if (e > st->worst_lp || e != e) st->worst_lp = e != e ? INFINITY : e;
        if (!(e <= 1e-4)) {
            st->failed++;
            fprintf(stderr, "  FAIL %s: token %d logprob device %.7g host %.7g\n", what, did, dlp,
                    hlp);
        }
    } else if (hid >= 0 && did >= 0 && did < V && sc_explained(x, V, k, hid, did, &why)) {
        st->edges++;
        printf("  edge %s: device %d host %d (%s)\n", what, did, hid, why);
    } else {
        st->failed++;
        fprintf(stderr, "  FAIL %s: device %d host %d (T %g top_k %d top_p %g min_p %g u %.17g)\n",
                what, did, hid, k->temp, k->top_k, k->top_p, k->min_p, k->u);
    }
}

/* One batch of n rows (at most SC_MAXROWS) through dev twice: both runs must succeed with the
 * same bits, and each row's token must be one the host sampler explains (sc_check, counted in
 * st). tag names the batch in messages (V and its kind), names[r] row r's shape. Returns the
 * failures sc_check does not count. */
#define SC_MAXROWS 16
static int sc_batch(sc_device_fn dev, void *ctx, const float *x, int n, int V,
                    const brisk_sample_params *p, const double *u, const sc_case *k,
                    const char *const *names, const char *tag, sc_stats *st) {
    int32_t ids[SC_MAXROWS], ids2[SC_MAXROWS];
    float lp[SC_MAXROWS], lp2[SC_MAXROWS];
    const brisk_status a = dev(ctx, x, n, V, p, u, ids, lp);
    const brisk_status b = dev(ctx, x, n, V, p, u, ids2, lp2);
    if (a != BRISK_OK || b != BRISK_OK) {
        fprintf(stderr, "  FAIL %s: the op failed: %s\n", tag, brisk_last_error());
        return 1;
    }
    int failed = 0;
    if (memcmp(ids, ids2, sizeof *ids * (size_t)n) || memcmp(lp, lp2, sizeof *lp * (size_t)n)) {
        fprintf(stderr, "  FAIL %s: a rerun gave other bits\n", tag);
        failed++;
    }
    for (int r = 0; r < n; r++) {
        char what[160];
        snprintf(what, sizeof what, "%s %s T %g k %d p %g minp %g", tag, names[r], k[r].temp,
                 k[r].top_k, k[r].top_p, k[r].min_p);
        sc_check(x + (size_t)r * V, V, &k[r], ids[r], lp[r], what, st);
    }
    return failed;
}

/* Runs `reps` batches per V of SC_NSHAPES rows (one of each shape, each with its own case) through
 * dev twice, checking bit-identical reruns and every token against the host; then a NaN row and
 * a +inf row (the op must fail). Returns the number of failures. */
static int sc_run(sc_device_fn dev, void *ctx, const int *Vs, int nV, int reps) {
    sc_stats st = {0, 0, 0, 0, 0.0};
    int failed = 0, c = 0;
    for (int vi = 0; vi < nV; vi++) {
        const int V = Vs[vi], n = SC_NSHAPES;
        float *x = malloc(sizeof *x * (size_t)V * n);
        brisk_sample_params p[SC_NSHAPES];
        sc_case k[SC_NSHAPES];
        double u[SC_NSHAPES];
        int32_t ids[SC_NSHAPES]; /* the failing rows' check below */
        float lp[SC_NSHAPES];
        const sc_stats before = st;
        for (int rep = 0; rep < reps; rep++) {
            for (int r = 0; r < n; r++) {
                sc_fill(x + (size_t)r * V, V, r);
                k[r] = sc_make(c++ * 7 + r, V);
                brisk_sampler *s = sc_sampler(&k[r], V);
                if (!s || !brisk_sampler_device_params(s, &p[r])) {
                    fprintf(stderr, "  FAIL: case %d is not device-eligible\n", c);
                    failed++;
                }
                brisk_sampler_destroy(s);
                u[r] = k[r].u;
            }
            char tag[32];
            snprintf(tag, sizeof tag, "V %d", V);
            failed += sc_batch(dev, ctx, x, n, V, p, u, k, sc_shape_name, tag, &st);
        }
        printf("V %-6d %4d rows: %d equal, %d rounding edges, %d failed\n", V,
               st.cases - before.cases, st.equal - before.equal, st.edges - before.edges,
               st.failed - before.failed);
        /* NaN, +inf or only -inf in one row: the op fails and says which (so does the host) */
        static const char *const bad_name[3] = {"NaN", "+inf", "only -inf"};
        for (int bad = 0; bad < 3; bad++) {
            sc_fill(x, V, SC_LM);
            sc_fill(x + V, V, SC_LM);
            if (bad < 2)
                x[V + sc_next() % (uint64_t)V] = bad ? INFINITY : NAN;
            else
                for (int i = 0; i < V; i++) x[V + i] = -INFINITY;
            if (dev(ctx, x, 2, V, p, u, ids, lp) != BRISK_ERR_BACKEND || ids[0] < 0 ||
                ids[1] != -1) {
                fprintf(stderr, "  FAIL V %d: rows (fine, %s) gave %d %d\n", V, bad_name[bad],
                        ids[0], ids[1]);
                failed++;
            }
        }
        free(x);
    }
    printf("%d rows: %d equal to the host sampler, %d at rounding edges, %d failed; worst logprob "
           "error %.2g\n",
           st.cases, st.equal, st.edges, st.failed, st.worst_lp);
    if (st.edges > 3 + st.cases / 100) {
        fprintf(stderr, "  FAIL: %d rounding edges in %d rows is too many\n", st.edges, st.cases);
        failed++;
    }
    return failed + st.failed;
}

/* Rows whose top-k / top-p edge falls in a 1/32-nat bin of more than 4096 ids (the device's
 * SP_CAP), which the device narrows over the row: a flat row, ties at the top or in the middle,
 * two adjacent floats, a few quantised levels, thousands of distinct logits packed in one bin, a
 * bin straddling 0 (sign bits differ), +0 / -0, and -inf ties under the edge. */
enum {
    SC_H_FLAT,    /* every id 0.5 */
    SC_H_TOPTIES, /* N(0, 1), 10,000 ids at 5 */
    SC_H_MIDTIES, /* N(0, 1) - 2, 1,000 ids at 6 above 20,000 at 5 */
    SC_H_TWOVAL,  /* 0.5 or the next float up, half each */
    SC_H_QUANT,   /* N(0, 1) / 32 rounded to 1/128: a few levels of thousands of ids each */
    SC_H_RAMP,    /* (i mod 7919) 1e-6: thousands of distinct logits within 0.008 nats */
    SC_H_TINY,    /* N(0, 1e-6): one bin across 0 */
    SC_H_ZEROS,   /* +0, and -0 for a third of the ids */
    SC_H_NEGINF,  /* -inf, 6,000 ids at 0 */
    SC_H_NSHAPES
};
static const char *const sc_h_name[SC_H_NSHAPES] = {
    "flat", "top ties", "mid ties", "2 floats", "levels", "ramp", "tiny", "+0 -0", "-inf ties"};

static void sc_fill_huge(float *x, int V, int shape) {
    for (int i = 0; i < V; i++) {
        switch (shape) {
        case SC_H_FLAT:
            x[i] = 0.5f;
            break;
        case SC_H_TOPTIES:
            x[i] = sc_gauss();
            break;
        case SC_H_MIDTIES:
            x[i] = sc_gauss() - 2.0f;
            break;
        case SC_H_TWOVAL:
            x[i] = sc_next() % 2 ? 0.5f : nextafterf(0.5f, 1.0f);
            break;
        case SC_H_QUANT:
            x[i] = roundf(sc_gauss() * 4.0f) / 128.0f;
            break;
        case SC_H_RAMP:
            x[i] = (float)(i % 7919) * 1e-6f;
            break;
        case SC_H_TINY:
            x[i] = 1e-6f * sc_gauss();
            break;
        case SC_H_ZEROS:
            x[i] = sc_next() % 3 ? 0.0f : -0.0f;
            break;
        default:
            x[i] = -INFINITY;
            break;
        }
    }
    const int half = V / 2;
    if (shape == SC_H_TOPTIES)
        for (int j = 0; j < 10000 && j < half; j++) x[sc_next() % (uint64_t)V] = 5.0f;
    if (shape == SC_H_MIDTIES) {
        for (int j = 0; j < 20000 && j < half; j++) x[sc_next() % (uint64_t)V] = 5.0f;
        for (int j = 0; j < 1000 && j < half / 8; j++) x[sc_next() % (uint64_t)V] = 6.0f;
    }
    if (shape == SC_H_NEGINF)
        for (int j = 0; j < 6000 && j < half; j++) x[sc_next() % (uint64_t)V] = 0.0f;
}

/* The filters of those rows (temperatures and min-p from sc_temps / sc_min_ps): the top-p edge
 * alone, a top-k edge before it in the same bin, top-k alone, both with the top-p edge first,
 * top-p near 1, min-p. */
#define SC_H_NFILTERS 9
static const sc_case sc_h_filters[SC_H_NFILTERS] = {
    {0.7f, 0.9f, 0.0f, 0, 0.0},     {0.7f, 0.95f, 0.05f, 40, 0.0},
    {1.0f, 1.0f, 0.0f, 5000, 0.0},  {1.0f, 1.0f, 0.0f, 70000, 0.0},
    {1.7f, 0.5f, 0.0f, 70000, 0.0}, {0.25f, 0.9f, 0.0f, 100000, 0.0},
    {1.0f, 0.9999f, 0.0f, 0, 0.0},  {0.7f, 0.999f, 0.3f, 7000, 0.0},
    {1.0f, 0.1f, 0.05f, 0, 0.0}};

/* both row families fit sc_batch's arrays */
_Static_assert(SC_NSHAPES <= SC_MAXROWS && SC_H_NSHAPES <= SC_MAXROWS, "sc_batch's arrays");

/* Runs `reps` batches per V of SC_H_NSHAPES rows (row s of batch b under filter (s + b) mod
 * SC_H_NFILTERS: SC_H_NFILTERS batches give every pair) through dev twice, checking bit-identical
 * reruns and every token against the host. Returns the number of failures. */
static int sc_run_huge(sc_device_fn dev, void *ctx, const int *Vs, int nV, int reps) {
    sc_stats st = {0, 0, 0, 0, 0.0};
    int failed = 0;
    for (int vi = 0; vi < nV; vi++) {
        const int V = Vs[vi], n = SC_H_NSHAPES;
        float *x = malloc(sizeof *x * (size_t)V * n);
        brisk_sample_params p[SC_H_NSHAPES];
        sc_case k[SC_H_NSHAPES];
        double u[SC_H_NSHAPES];
        const sc_stats before = st;
        for (int rep = 0; rep < reps; rep++) {
            for (int r = 0; r < n; r++) {
                sc_fill_huge(x + (size_t)r * V, V, r);
                k[r] = sc_h_filters[(r + rep) % SC_H_NFILTERS];
                k[r].u = (rep + r) % 7 == 3   ? 0.0
                         : (rep + r) % 7 == 5 ? 1.0 - 0x1.0p-53
                                              : sc_unit();
                brisk_sampler *s = sc_sampler(&k[r], V);
                if (!s || !brisk_sampler_device_params(s, &p[r])) {
                    fprintf(stderr, "  FAIL: huge-bin case %d is not device-eligible\n", r);
                    failed++;
                }
                brisk_sampler_destroy(s);
                u[r] = k[r].u;
            }
            char tag[32];
            snprintf(tag, sizeof tag, "V %d huge bins", V);
            failed += sc_batch(dev, ctx, x, n, V, p, u, k, sc_h_name, tag, &st);
        }
        printf("V %-6d %4d huge-bin rows: %d equal, %d rounding edges, %d failed\n", V,
               st.cases - before.cases, st.equal - before.equal, st.edges - before.edges,
               st.failed - before.failed);
        free(x);
    }
    if (st.edges > 3 + st.cases / 100) {
        fprintf(stderr, "  FAIL: %d rounding edges in %d huge-bin rows is too many\n", st.edges,
                st.cases);
        failed++;
    }
    return failed + st.failed;
}

#endif
