/* sampler.c: the sampler chain (bias, penalties, greedy / top-k / top-p / min-p / temperature)
 * with a seeded xoshiro256** generator; all scratch is allocated at create. */
#include "engine/sampler.h"
#include "util/error.h"
#include "util/vmath.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct brisk_sampler {
    brisk_sampler_params p;
    int n_vocab;
    int32_t *bias_ids;
    float *bias_values;
    int32_t *window; /* ring of the last penalty_window tokens */
    int n_window, head;
    uint32_t *counts; /* [n_vocab] occurrences inside the window */
    int32_t *idx;     /* [n_vocab] candidate ids */
    float *lp;        /* [n_vocab] scratch: the candidates' logits, then their weights */
    uint64_t rng[4];
};

brisk_sampler_params brisk_sampler_default_params(void) {
    brisk_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.0f;
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    p.penalty_window = 64;
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64
 * ------------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4]) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) {
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */

void brisk_sampler_destroy(brisk_sampler *s) {
    if (!s) return;
    free(s->bias_ids);
    free(s->bias_values);
    free(s->window);
    free(s->counts);
    free(s->idx);
    free(s->lp);
    free(s);
}

void brisk_sampler_reset(brisk_sampler *s, uint64_t seed) {
    s->n_window = s->head = 0;
    memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

brisk_status brisk_sampler_create(const brisk_sampler_params *params, int n_vocab,
                                  brisk_sampler **out) {
    if (!out) return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_sampler_create: out is NULL");
    *out = NULL;
    brisk_sampler_params p = params ? *params : brisk_sampler_default_params();
    if (n_vocab <= 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_sampler_create: n_vocab %d", n_vocab);
    if (!(p.temperature >= 0) || !isfinite(p.temperature) || p.top_k < 0 || !(p.top_p >= 0) ||
        p.top_p > 1 || !(p.min_p >= 0) || p.min_p > 1 || !(p.repetition_penalty > 0) ||
        !isfinite(p.presence_penalty) || !isfinite(p.frequency_penalty) || p.penalty_window < 0 ||
        p.n_bias < 0)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_sampler_create: parameters out of range (temperature >= 0, "
                            "top_k >= 0, top_p and min_p in [0, 1], repetition_penalty > 0)");
    for (int i = 0; i < p.n_bias; i++)
        if (!p.bias_ids || !p.bias_values || p.bias_ids[i] < 0 || p.bias_ids[i] >= n_vocab ||
            isnan(p.bias_values[i]))
            return brisk_errorf(BRISK_ERR_INVALID_ARG,
                                "brisk_sampler_create: logit bias entry %d (token %d) is not a "
                                "valid token id and number",
                                i, p.bias_ids ? p.bias_ids[i] : -1);
    brisk_sampler *s = calloc(1, sizeof *s);
    if (!s) return brisk_errorf(BRISK_ERR_OOM, "brisk_sampler_create: out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->window = malloc((size_t)(p.penalty_window > 0 ? p.penalty_window : 1) * sizeof *s->window);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
    s->lp = malloc((size_t)n_vocab * sizeof *s->lp);
    if (p.n_bias > 0) {
        s->bias_ids = malloc((size_t)p.n_bias * sizeof *s->bias_ids);
        s->bias_values = malloc((size_t)p.n_bias * sizeof *s->bias_values);
    }
    if (!s->window || !s->counts || !s->idx || !s->lp ||
        (p.n_bias > 0 && (!s->bias_ids || !s->bias_values))) {
        brisk_sampler_destroy(s);
        return brisk_errorf(BRISK_ERR_OOM, "brisk_sampler_create: out of memory");
    }
    if (p.n_bias > 0) {
        memcpy(s->bias_ids, p.bias_ids, (size_t)p.n_bias * sizeof *s->bias_ids);
        memcpy(s->bias_values, p.bias_values, (size_t)p.n_bias * sizeof *s->bias_values);
    }
    s->p.bias_ids = s->bias_ids;
    s->p.bias_values = s->bias_values;
    brisk_sampler_reset(s, p.seed);
    *out = s;
    return BRISK_OK;
}

void brisk_sampler_accept(brisk_sampler *s, int32_t token) {
    if (!s || s->p.penalty_window == 0 || token < 0 || token >= s->n_vocab) return;
    if (s->n_window == s->p.penalty_window) {
        s->counts[s->window[s->head]]--; /* the oldest leaves the window */
    } else {
        s->n_window++;
    }
    s->window[s->head] = token;
    s->counts[token]++;
    s->head = (s->head + 1) % s->p.penalty_window;
}

/* ---------------------------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------------------------- */

bool brisk_sampler_is_greedy(const brisk_sampler *s) {
    const brisk_sampler_params *p = &s->p;
    return p->temperature == 0.0f && p->n_bias == 0 && p->repetition_penalty == 1.0f &&
           p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f;
}

static void apply_penalties(brisk_sampler *s, float *logits) {
    const brisk_sampler_params *p = &s->p;
    for (int i = 0; i < p->n_bias; i++) logits[p->bias_ids[i]] += p->bias_values[i];
    if (p->repetition_penalty == 1.0f && p->presence_penalty == 0.0f &&
        p->frequency_penalty == 0.0f)
        return;
    /* Each distinct token in the window once (counts[] > 0), walking the ring. */
    for (int k = 0; k < s->n_window; k++) {
        const int32_t t = s->window[k];
        const uint32_t c = s->counts[t];
        if (c == 0 || (c & 0x80000000u)) continue; /* absent, or already penalised */
        float l = logits[t];
        if (p->repetition_penalty != 1.0f)
            l = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
        l -= p->presence_penalty + p->frequency_penalty * (float)c;
        logits[t] = l;
        s->counts[t] = c | 0x80000000u; /* mark done for this call */
    }
    for (int k = 0; k < s->n_window; k++) s->counts[s->window[k]] &= 0x7fffffffu;
}

/* Whether id a ranks below id b: a smaller value, or the same value and a larger id. */
static inline bool ranks_below(const float *v, int32_t a, int32_t b) {
    return v[a] < v[b] || (v[a] == v[b] && a > b);
}

static void sift_down(int32_t *h, int k, int i, const float *v) {
    for (;;) {
        int m = i;
        const int l = 2 * i + 1, r = l + 1;
        if (l < k && ranks_below(v, h[l], h[m])) m = l;
        if (r < k && ranks_below(v, h[r], h[m])) m = r;
        if (m == i) return;
        const int32_t t = h[i];
        h[i] = h[m], h[m] = t;
        i = m;
    }
}

/* The k best of idx[0..n) by quickselect on the (value desc, id asc) order, so ties at the edge
 * go to the lower id as with the heap below (several passes, but no heap work when k is a large
 * share of n). */
static void quickselect_top(int32_t *idx, const float *v, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const int32_t pivot = idx[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (ranks_below(v, pivot, idx[i])) i++;
            while (ranks_below(v, idx[j], pivot)) j--;
            if (i <= j) {
                int32_t t = idx[i];
                idx[i++] = idx[j];
                idx[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

/* Moves the k best of idx[0..n) by v[] to the front (unordered; ties to the lower id), keeping
 * the rest after them: a min-heap of the k best in idx[0..k) that each later id is compared with
 * once (one pass over a 128k vocabulary instead of a quickselect's several). */
static void select_top(int32_t *idx, const float *v, int n, int k) {
    if (k <= 0 || k >= n) return;
    if (k > 4096 || k > n / 16) {
        quickselect_top(idx, v, n, k);
        return;
    }
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(idx, k, i, v);
    for (int j = k; j < n; j++)
        if (ranks_below(v, idx[0], idx[j])) {
            const int32_t t = idx[0];
            idx[0] = idx[j], idx[j] = t;
            sift_down(idx, k, 0, v);
        }
}

static int cmp_id(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Lists the kept ids idx[0..n) in ascending id order, the order the draw walks them (and the
 * device op's, so one uniform picks the same token on both). The filters keep a top set in the
 * (value desc, id asc) order, so a large set is rebuilt in one pass over the vocabulary against
 * its lowest-ranked member instead of sorted. Returns the count (n). */
static int order_by_id(int32_t *idx, const float *v, int V, int n) {
    bool sorted = true;
    for (int i = 1; i < n && sorted; i++) sorted = idx[i - 1] < idx[i];
    if (sorted) return n;
    if ((int64_t)n * 64 < V) {
        qsort(idx, (size_t)n, sizeof *idx, cmp_id);
        return n;
    }
    int32_t last = idx[0];
    for (int i = 1; i < n; i++)
        if (ranks_below(v, idx[i], last)) last = idx[i];
    int k = 0;
    for (int32_t i = 0; i < V; i++)
        if (!ranks_below(v, i, last)) idx[k++] = i;
    return k;
}

static _Thread_local const float *g_sort_lp;
static int cmp_desc(const void *a, const void *b) {
    const float x = g_sort_lp[*(const int32_t *)a], y = g_sort_lp[*(const int32_t *)b];
    return x < y ? 1 : x > y ? -1 : (*(const int32_t *)a - *(const int32_t *)b);
}

/* brisk_sampler_sample with the draw's uniform given (u >= 0) or taken from the generator (u < 0,
 * and only when the chain draws). */
static brisk_status sample(brisk_sampler *s, float *logits, double u, int32_t *token,
                           float *logprob) {
    if (!s || !logits || !token)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_sampler_sample: NULL argument");
    const int V = s->n_vocab;
    apply_penalties(s, logits);
    int best = 0;
    float mx = logits[0];
    for (int i = 0; i < V; i++) {
        if (isnan(logits[i]))
            return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_sampler_sample: logit %d is NaN", i);
        if (logits[i] > mx) mx = logits[i], best = i;
    }
    /* log-softmax at temperature 1 (the distribution the filters and the reported logprob use) is
     * logits - lse; the filters compare logits directly, which orders the same. */
    const float lse = mx + (float)log(brisk_sum_exp(logits, V, mx));
    if (s->p.temperature == 0.0f) {
        *token = best;
        if (logprob) *logprob = logits[best] - lse;
        return BRISK_OK;
    }
    if (!(mx > -INFINITY) || mx == INFINITY)
        return brisk_errorf(BRISK_ERR_INVALID_ARG,
                            "brisk_sampler_sample: the logits are all -inf or hold +inf: no "
                            "distribution to draw from");
    int32_t *idx = s->idx;
    int n = V;
    bool all = true; /* every id is a candidate, in id order (idx not filled) */
    if ((s->p.top_k > 0 && s->p.top_k < n) || (s->p.top_p > 0.0f && s->p.top_p < 1.0f) ||
        s->p.min_p > 0.0f) {
        for (int i = 0; i < V; i++) idx[i] = i;
        all = false;
    }
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(idx, logits, n, s->p.top_k);
        n = s->p.top_k;
    }
    if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
        if (n == V) {
            /* Every id outside C = {logit >= max - d} is less likely than every id in C, so when
             * C already holds top_p of the mass the nucleus lies in C: work on C alone (d = 8,
             * then 20, then everything). */
            static const float D[2] = {8.0f, 20.0f};
            for (int r = 0; r < 2 && n == V; r++) {
                int c = 0;
                double mass = 0;
                for (int i = 0; i < V; i++)
                    if (logits[i] >= mx - D[r]) idx[c++] = i;
                for (int i = 0; i < c; i++) mass += exp((double)logits[idx[i]] - lse);
                if (mass >= s->p.top_p) n = c;
            }
            if (n == V)
                for (int i = 0; i < V; i++) idx[i] = i;
        }
        /* Sort only a head of candidates when it already holds top_p of the mass. */
        int head = n < 1024 ? n : 1024;
        for (;;) {
            if (head < n) select_top(idx, logits, n, head);
            double mass = 0;
            for (int i = 0; i < head; i++) mass += exp((double)logits[idx[i]] - lse);
            if (mass >= s->p.top_p || head == n) break;
            head = head * 8 < n ? head * 8 : n;
        }
        g_sort_lp = logits; /* qsort has no context argument: a thread-local carries it */
        qsort(idx, (size_t)head, sizeof *idx, cmp_desc);
        double cum = 0;
        int keep = 0;
        while (keep < head) {
            cum += exp((double)logits[idx[keep]] - lse);
            keep++;
            if (cum >= s->p.top_p) break;
        }
        n = keep;
    }
    if (s->p.min_p > 0.0f) {
        const float thresh = mx + logf(s->p.min_p);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (logits[idx[i]] >= thresh) idx[k++] = idx[i];
        n = k > 0 ? k : 1;
        if (k == 0) idx[0] = best;
    }
    if (!all) n = order_by_id(idx, logits, V, n);
    /* Draw from softmax(logits / temperature) over the candidates in id order; the best is always
     * one of them, so mx is their maximum and every exponent is <= 0. */
    const float inv_t = 1.0f / s->p.temperature;
    float *w = s->lp;
    if (!all)
        for (int i = 0; i < n; i++) w[i] = logits[idx[i]];
    const double total = brisk_exp_scaled(all ? logits : w, n, mx, inv_t, w);
    double r = (u >= 0 ? u : rng_uniform(s->rng)) * total;
    int pick = n - 1;
    for (int i = 0; i < n; i++) {
        r -= w[i];
        if (r < 0) {
            pick = i;
            break;
        }
    }
    *token = all ? pick : idx[pick];
    if (logprob) *logprob = logits[*token] - lse;
    return BRISK_OK;
}

brisk_status brisk_sampler_sample(brisk_sampler *s, float *logits, int32_t *token, float *logprob) {
    return sample(s, logits, -1.0, token, logprob);
}

/* ---------------------------------------------------------------------------------------------
 * What the engine needs to run the chain elsewhere (sampler.h)
 * ------------------------------------------------------------------------------------------- */

bool brisk_sampler_device_params(const brisk_sampler *s, brisk_sample_params *out) {
    const brisk_sampler_params *p = &s->p;
    const bool penalties =
        p->penalty_window > 0 && (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                                  p->frequency_penalty != 0.0f);
    if (p->temperature == 0.0f || p->n_bias > 0 || penalties) return false;
    out->inv_temp = 1.0f / p->temperature; /* the bits sample() computes */
    out->top_k = p->top_k > 0 && p->top_k < s->n_vocab ? p->top_k : 0;
    out->top_p = p->top_p > 0.0f && p->top_p < 1.0f ? p->top_p : 1.0f;
    out->log_min_p = p->min_p > 0.0f ? logf(p->min_p) : -INFINITY;
    return true;
}

bool brisk_sampler_can_pipeline(const brisk_sampler *s) {
    brisk_sample_params p;
    return s && (brisk_sampler_is_greedy(s) || brisk_sampler_device_params(s, &p));
}

double brisk_sampler_peek_uniform(const brisk_sampler *s) {
    uint64_t r[4];
    memcpy(r, s->rng, sizeof r);
    return rng_uniform(r);
}

void brisk_sampler_skip_uniform(brisk_sampler *s) {
    (void)rng_next(s->rng);
}

bool brisk_sampler_draws(const brisk_sampler *s) {
    return s->p.temperature != 0.0f;
}

int brisk_sampler_n_vocab(const brisk_sampler *s) {
    return s->n_vocab;
}

brisk_status brisk_sampler_sample_u(brisk_sampler *s, float *logits, double u, int32_t *token,
                                    float *logprob) {
    if (!(u >= 0.0 && u < 1.0))
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_sampler_sample_u: u %g is not in [0, 1)",
                            u);
    return sample(s, logits, u, token, logprob);
}
