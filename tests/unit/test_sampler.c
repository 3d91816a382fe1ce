/* test_sampler.c: the sampler chain: greedy, seeded reproducibility, top-k/top-p/min-p support
 * sets, temperature, penalties and bias, the empirical distribution, and bad parameters. */
#include "brisk.h"
#include "check.h"
#include "engine/sampler.h"
#include "util/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *l, int n, const float *v) {
    memcpy(l, v, (size_t)n * sizeof *l);
}

static void test_greedy_and_seed(void) {
    brisk_sampler *s;
    brisk_sampler_params p = brisk_sampler_default_params();
    CHECK(brisk_sampler_create(&p, 5, &s) == BRISK_OK);
    const float v[5] = {0.1f, 3.0f, 2.0f, -1.0f, 2.9f};
    float l[5], lp;
    int32_t t;
    fill(l, 5, v);
    CHECK(brisk_sampler_sample(s, l, &t, &lp) == BRISK_OK && t == 1);
    double z = exp(0.1) + exp(3.0) + exp(2.0) + exp(-1.0) + exp(2.9);
    CHECK(fabs(lp - (3.0 - log(z))) < 1e-5);
    brisk_sampler_destroy(s);

    /* Same seed -> same sequence; another seed -> (almost surely) another. */
    p.temperature = 1.0f;
    p.seed = 42;
    int32_t a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 43 : 42;
        CHECK(brisk_sampler_create(&p, 5, &s) == BRISK_OK);
        for (int i = 0; i < 64; i++) {
            fill(l, 5, v);
            brisk_sampler_sample(s, l, run == 0 ? &a[i] : run == 1 ? &b[i] : &c[i], NULL);
        }
        brisk_sampler_destroy(s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

/* Counts draws over many samples and compares with the expected softmax(lp/T) over the kept set. */
static void test_distribution(void) {
    const float v[6] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f};
    struct {
        float temp, top_p, min_p;
        int top_k;
        int allowed[6];
    } cases[] = {
        {1.0f, 1.0f, 0.0f, 0, {1, 1, 1, 1, 1, 1}}, {0.5f, 1.0f, 0.0f, 0, {1, 1, 1, 1, 1, 1}},
        {1.0f, 1.0f, 0.0f, 2, {1, 0, 0, 0, 1, 0}}, {1.0f, 0.7f, 0.0f, 0, {1, 0, 0, 0, 1, 0}},
        {1.0f, 1.0f, 0.3f, 0, {1, 0, 0, 0, 1, 0}}, /* keeps lp >= max + ln 0.3 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        brisk_sampler_params p = brisk_sampler_default_params();
        p.temperature = cases[k].temp;
        p.top_p = cases[k].top_p;
        p.min_p = cases[k].min_p;
        p.top_k = cases[k].top_k;
        p.seed = 7 + k;
        brisk_sampler *s;
        CHECK(brisk_sampler_create(&p, 6, &s) == BRISK_OK);
        int hist[6] = {0};
        const int N = 40000;
        for (int i = 0; i < N; i++) {
            float l[6];
            int32_t t;
            fill(l, 6, v);
            brisk_sampler_sample(s, l, &t, NULL);
            hist[t]++;
        }
        double z = 0, e[6];
        for (int i = 0; i < 6; i++) z += cases[k].allowed[i] ? exp(v[i] / cases[k].temp) : 0;
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            e[i] = cases[k].allowed[i] ? exp(v[i] / cases[k].temp) / z : 0;
            double got = hist[i] / (double)N, sd = sqrt(e[i] * (1 - e[i]) / N) + 1e-9;
            if (!cases[k].allowed[i] ? hist[i] != 0 : fabs(got - e[i]) > 5 * sd) ok = 0;
        }
        CHECK_MSG(ok, "case %zu: histogram %d %d %d %d %d %d", k, hist[0], hist[1], hist[2],
                  hist[3], hist[4], hist[5]);
        brisk_sampler_destroy(s);
    }
}

static void test_penalties_and_bias(void) {
    brisk_sampler_params p = brisk_sampler_default_params();
    int32_t ids[1] = {0};
    float vals[1] = {10.0f};
    p.bias_ids = ids;
    p.bias_values = vals;
    p.n_bias = 1;
    brisk_sampler *s;
    CHECK(brisk_sampler_create(&p, 3, &s) == BRISK_OK);
    float l[3] = {0.0f, 5.0f, 1.0f};
    int32_t t;
    CHECK(brisk_sampler_sample(s, l, &t, NULL) == BRISK_OK && t == 0 && l[0] == 10.0f);
    brisk_sampler_destroy(s);

    p = brisk_sampler_default_params();
    p.repetition_penalty = 2.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.penalty_window = 3;
    CHECK(brisk_sampler_create(&p, 4, &s) == BRISK_OK);
    brisk_sampler_accept(s, 1);
    brisk_sampler_accept(s, 1);
    brisk_sampler_accept(s, 2);
    float m[4] = {1.0f, 4.0f, -2.0f, 0.0f};
    CHECK(brisk_sampler_sample(s, m, &t, NULL) == BRISK_OK);
    CHECK(fabsf(m[1] - (4.0f / 2 - 0.5f - 0.5f)) < 1e-6); /* seen twice */
    CHECK(fabsf(m[2] - (-2.0f * 2 - 0.5f - 0.25f)) < 1e-6);
    CHECK(m[0] == 1.0f && m[3] == 0.0f);
    /* The window slides: after 3 more tokens, 1 and 2 are gone. */
    brisk_sampler_accept(s, 3);
    brisk_sampler_accept(s, 3);
    brisk_sampler_accept(s, 3);
    float q[4] = {1.0f, 4.0f, -2.0f, 0.0f};
    CHECK(brisk_sampler_sample(s, q, &t, NULL) == BRISK_OK && q[1] == 4.0f && q[2] == -2.0f);
    brisk_sampler_destroy(s);
}

static void test_errors(void) {
    brisk_sampler *s = NULL;
    brisk_sampler_params p = brisk_sampler_default_params();
    p.top_p = 1.5f;
    CHECK(brisk_sampler_create(&p, 3, &s) == BRISK_ERR_INVALID_ARG && !s);
    p = brisk_sampler_default_params();
    p.temperature = -1;
    CHECK(brisk_sampler_create(&p, 3, &s) == BRISK_ERR_INVALID_ARG);
    int32_t bad[1] = {7};
    float bv[1] = {1};
    p = brisk_sampler_default_params();
    p.bias_ids = bad;
    p.bias_values = bv;
    p.n_bias = 1;
    CHECK(brisk_sampler_create(&p, 3, &s) == BRISK_ERR_INVALID_ARG);
    p = brisk_sampler_default_params();
    CHECK(brisk_sampler_create(&p, 3, &s) == BRISK_OK);
    float l[3] = {0, NAN, 1};
    int32_t t;
    CHECK(brisk_sampler_sample(s, l, &t, NULL) == BRISK_ERR_INVALID_ARG);
    brisk_sampler_destroy(s);
}

/* A large vocabulary exercises the partial-selection paths of top-k and top-p. */
static void test_large_vocab(void) {
    const int V = 50000;
    float *l = malloc(sizeof(float) * V), *base = malloc(sizeof(float) * V);
    for (int i = 0; i < V; i++) base[i] = (float)((i * 7919) % 1000) / 100.0f;
    brisk_sampler_params p = brisk_sampler_default_params();
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.9f;
    brisk_sampler *s;
    CHECK(brisk_sampler_create(&p, V, &s) == BRISK_OK);
    int ok = 1;
    for (int i = 0; i < 200; i++) {
        memcpy(l, base, sizeof(float) * V);
        int32_t t;
        brisk_sampler_sample(s, l, &t, NULL);
        ok &= base[t] >= 9.95f; /* the 40 best all have the top value 9.99 - 9.95 region */
    }
    CHECK(ok);
    brisk_sampler_destroy(s);
    free(l);
    free(base);
}

/* The vectorised exp sums against libm, and -inf terms are exactly zero. */
static void test_vmath(void) {
    enum { N = 1000 };
    float x[N], y[N];
    double worst = 0;
    for (int r = 0; r < 20; r++) {
        double ref = 0, ref2 = 0;
        for (int i = 0; i < N; i++) {
            x[i] = -(float)((i * 7919 + r * 104729) % 100000) / 1000.0f * (r % 3 + 1);
            if (i % 97 == 5) x[i] = -INFINITY;
            ref += exp((double)x[i]);
            ref2 += exp((double)x[i] * 0.7);
        }
        const double a = brisk_sum_exp(x, N, 0.0f), b = brisk_exp_scaled(x, N, 0.0f, 0.7f, y);
        worst = fmax(worst, fmax(fabs(a - ref) / ref, fabs(b - ref2) / ref2));
        for (int i = 0; i < N; i++)
            if (x[i] == -INFINITY) CHECK(y[i] == 0.0f);
    }
    CHECK_MSG(worst < 1e-6, "exp sums: rel error %.3g", worst);
}

static const float *g_base;
static int by_value_desc(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return g_base[i] > g_base[j] ? -1 : g_base[i] < g_base[j] ? 1 : (i > j) - (i < j);
}

/* Top-p over a large vocabulary without top-k: draws stay in the exact nucleus (sorted
 * brute force), for a peaked distribution (candidates within a few nats of the max) and a flat
 * one (the fallback over every id); a -inf bias never comes out. */
static void test_top_p_large(void) {
    const int V = 40000;
    float *l = malloc(sizeof(float) * V), *base = malloc(sizeof(float) * V);
    int32_t *order = malloc(sizeof(int32_t) * V);
    char *in = malloc((size_t)V);
    for (int shape = 0; shape < 2; shape++) {
        for (int i = 0; i < V; i++)
            base[i] = shape == 0 ? (float)((i * 7919) % 1000) / 300.0f + (i % 4001 == 7 ? 9 : 0)
                                 : (float)((i * 7919) % 1000) / 1000.0f;
        /* brute-force nucleus at temperature 1 */
        double mx = -INFINITY, z = 0;
        for (int i = 0; i < V; i++) mx = fmax(mx, base[i]);
        for (int i = 0; i < V; i++) z += exp(base[i] - mx), order[i] = i;
        g_base = base;
        qsort(order, (size_t)V, sizeof *order, by_value_desc);
        memset(in, 0, (size_t)V);
        double cum = 0;
        int k = 0;
        while (k < V && cum < 0.8) cum += exp(base[order[k]] - mx) / z, in[order[k++]] = 1;
        /* ids tied with the last kept one may be kept instead of it */
        const float edge = base[order[k - 1]];
        for (int i = 0; i < V; i++)
            if (base[i] == edge) in[i] = 1;
        brisk_sampler_params p = brisk_sampler_default_params();
        p.temperature = 1.0f;
        p.top_p = 0.8f;
        const int32_t ban = order[0];
        const float minus_inf = -INFINITY;
        p.n_bias = 1, p.bias_ids = &ban, p.bias_values = &minus_inf;
        brisk_sampler *s;
        CHECK(brisk_sampler_create(&p, V, &s) == BRISK_OK);
        int ok = 1;
        const int draws = shape == 0 ? 300 : 40; /* the flat shape sorts most of V per draw */
        for (int i = 0; i < draws; i++) {
            memcpy(l, base, sizeof(float) * V);
            int32_t t = -1;
            CHECK(brisk_sampler_sample(s, l, &t, NULL) == BRISK_OK);
            ok &= t >= 0 && t < V && t != ban;
        }
        CHECK_MSG(ok, "shape %d: a banned or invalid id was drawn", shape);
        brisk_sampler_destroy(s);
        p.n_bias = 0; /* nucleus membership without the ban */
        CHECK(brisk_sampler_create(&p, V, &s) == BRISK_OK);
        ok = 1;
        for (int i = 0; i < draws; i++) {
            memcpy(l, base, sizeof(float) * V);
            int32_t t = -1;
            brisk_sampler_sample(s, l, &t, NULL);
            ok &= t >= 0 && t < V && in[t];
        }
        CHECK_MSG(ok, "shape %d: a draw outside the nucleus (%d ids)", shape, k);
        brisk_sampler_destroy(s);
    }
    free(l), free(base), free(order), free(in);
}

/* The engine's view of a sampler (engine/sampler.h): which chains a device may run and the
 * parameters it gets, the uniform the generator draws next, and brisk_sampler_sample_u. */
static void test_device_params(void) {
    brisk_sampler_params p = brisk_sampler_default_params();
    brisk_sampler *s;
    brisk_sample_params dp;
    CHECK(brisk_sampler_create(&p, 100, &s) == BRISK_OK);
    CHECK(!brisk_sampler_device_params(s, &dp)); /* greedy: the argmax op's job */
    brisk_sampler_destroy(s);
    p.temperature = 0.7f, p.top_k = 100, p.top_p = 1.0f, p.min_p = 0.0f;
    CHECK(brisk_sampler_create(&p, 100, &s) == BRISK_OK);
    CHECK(brisk_sampler_device_params(s, &dp));
    CHECK(dp.inv_temp == 1.0f / 0.7f && dp.top_k == 0 && !(dp.top_p < 1.0f) &&
          dp.log_min_p == -INFINITY && brisk_sampler_n_vocab(s) == 100);
    brisk_sampler_destroy(s);
    p.top_k = 40, p.top_p = 0.9f, p.min_p = 0.05f;
    p.repetition_penalty = 1.3f, p.penalty_window = 0; /* a penalty that never applies */
    CHECK(brisk_sampler_create(&p, 100, &s) == BRISK_OK);
    CHECK(brisk_sampler_device_params(s, &dp));
    CHECK(dp.top_k == 40 && dp.top_p == 0.9f && dp.log_min_p == logf(0.05f));
    brisk_sampler_destroy(s);
    p.penalty_window = 8;
    CHECK(brisk_sampler_create(&p, 100, &s) == BRISK_OK);
    CHECK(!brisk_sampler_device_params(s, &dp));
    brisk_sampler_destroy(s);
    p.repetition_penalty = 1.0f;
    int32_t id = 3;
    float bias = 2.0f;
    p.bias_ids = &id, p.bias_values = &bias, p.n_bias = 1;
    CHECK(brisk_sampler_create(&p, 100, &s) == BRISK_OK);
    CHECK(!brisk_sampler_device_params(s, &dp));
    brisk_sampler_destroy(s);

    /* peek + skip consume the generator exactly as brisk_sampler_sample does */
    p = brisk_sampler_default_params();
    p.temperature = 1.0f, p.seed = 99;
    brisk_sampler *a, *b;
    CHECK(brisk_sampler_create(&p, 5, &a) == BRISK_OK &&
          brisk_sampler_create(&p, 5, &b) == BRISK_OK);
    const float v[5] = {0.1f, 1.0f, 0.5f, 0.2f, 0.9f};
    int same = 1;
    for (int i = 0; i < 200; i++) {
        float la[5], lb[5];
        int32_t ta, tb;
        fill(la, 5, v), fill(lb, 5, v);
        const double u = brisk_sampler_peek_uniform(a);
        same &= u >= 0 && u < 1 && brisk_sampler_peek_uniform(a) == u;
        same &= brisk_sampler_sample_u(a, la, u, &ta, NULL) == BRISK_OK;
        brisk_sampler_skip_uniform(a);
        same &= brisk_sampler_sample(b, lb, &tb, NULL) == BRISK_OK && ta == tb;
    }
    CHECK(same);
    CHECK(brisk_sampler_peek_uniform(a) == brisk_sampler_peek_uniform(b));
    float l[5];
    int32_t t;
    fill(l, 5, v);
    CHECK(brisk_sampler_sample_u(a, l, 1.0, &t, NULL) == BRISK_ERR_INVALID_ARG);
    /* nothing to draw from: only -inf, or +inf (greedy still takes the first maximum) */
    for (int i = 0; i < 5; i++) l[i] = -INFINITY;
    CHECK(brisk_sampler_sample(a, l, &t, NULL) == BRISK_ERR_INVALID_ARG);
    fill(l, 5, v);
    l[2] = INFINITY;
    CHECK(brisk_sampler_sample(a, l, &t, NULL) == BRISK_ERR_INVALID_ARG);
    brisk_sampler_destroy(a), brisk_sampler_destroy(b);
}

/* The draw walks the kept ids in id order, whatever the filters (so a device that keeps them in
 * another order still picks the same token), and a top-k / top-p edge inside a run of equal
 * logits keeps the lower ids, by the heap and by the quickselect alike. */
static void test_draw_order_and_ties(void) {
    /* 64 ids, every 4th at 1 and the rest at 0: top-k 8 keeps ids 0, 4, ..., 28 (quickselect: k >
     * n / 16), top-k 3 keeps 0, 4, 8 (heap); equal weights, so u in the j-th of k equal parts
     * picks the j-th kept id in id order. */
    enum { V = 64 };
    float base[V], l[V];
    for (int i = 0; i < V; i++) base[i] = i % 4 == 0 ? 1.0f : 0.0f;
    const struct {
        int top_k;
        float top_p, min_p;
        int kept;
    } c[] = {{8, 1.0f, 0.0f, 8},
             {3, 1.0f, 0.0f, 3},
             {0, 1.0f, 0.5f, 16},
             {40, 1.0f, 0.9f, 16},
             /* top-p: each of the 16 ids at 1 holds e / (16 e + 48) = 0.0297: 0.2 needs 7 */
             {0, 0.2f, 0.0f, 7},
             {5, 0.2f, 0.0f, 5}};
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        brisk_sampler_params p = brisk_sampler_default_params();
        p.temperature = 1.0f, p.top_k = c[k].top_k, p.top_p = c[k].top_p, p.min_p = c[k].min_p;
        brisk_sampler *s;
        CHECK(brisk_sampler_create(&p, V, &s) == BRISK_OK);
        int ok = 1;
        for (int j = 0; j < c[k].kept; j++) {
            int32_t t = -1;
            fill(l, V, base);
            ok &= brisk_sampler_sample_u(s, l, (j + 0.5) / c[k].kept, &t, NULL) == BRISK_OK;
            ok &= t == 4 * j;
        }
        CHECK_MSG(ok, "case %zu: the kept ids are not 0, 4, 8, ... in id order", k);
        brisk_sampler_destroy(s);
    }
    /* unequal weights: {3, 1, 3, 2} with top-k 3 keeps ids 0, 2, 3 with weights 1, 1, 1/e; u =
     * 0.5 lands in id 2's share in id order (0 | 2 | 3) */
    const float w[4] = {3.0f, 1.0f, 3.0f, 2.0f};
    brisk_sampler_params p = brisk_sampler_default_params();
    p.temperature = 1.0f, p.top_k = 3;
    brisk_sampler *s;
    CHECK(brisk_sampler_create(&p, 4, &s) == BRISK_OK);
    const double tot = 2 + exp(-1.0);
    const double us[3] = {0.5 / tot, 1.5 / tot, (2 + 0.5 * exp(-1.0)) / tot};
    const int32_t want[3] = {0, 2, 3};
    for (int j = 0; j < 3; j++) {
        float x[4];
        int32_t t = -1;
        fill(x, 4, w);
        CHECK(brisk_sampler_sample_u(s, x, us[j], &t, NULL) == BRISK_OK && t == want[j]);
    }
    brisk_sampler_destroy(s);
}

int main(void) {
    test_device_params();
    test_draw_order_and_ties();
    test_vmath();
    test_top_p_large();
    test_greedy_and_seed();
    test_distribution();
    test_penalties_and_bias();
    test_errors();
    test_large_vocab();
    CHECK_DONE();
}
