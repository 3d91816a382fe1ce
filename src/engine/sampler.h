/* sampler.h: what the engine needs from the sampler beyond brisk.h to run its chain where the
 * logits are: whether the chain can (no bias or penalties), its filters as a backend takes them,
 * and the uniform its generator draws next. */
#ifndef BRISK_ENGINE_SAMPLER_H
#define BRISK_ENGINE_SAMPLER_H

#include "backend/backend.h"
#include "brisk.h"

#include <stdbool.h>

/* True when s draws (temperature > 0) with nothing but temperature, top-k, top-p and min-p (no
 * logit bias, no penalty that can apply); then *p holds the chain as end_step_sample takes it. */
bool brisk_sampler_device_params(const brisk_sampler *s, brisk_sample_params *p);

/* The uniform in [0, 1) brisk_sampler_sample would draw next, without drawing it. */
double brisk_sampler_peek_uniform(const brisk_sampler *s);

/* Draws that uniform (after a device sampled with it), so the stream stays the host's. */
void brisk_sampler_skip_uniform(brisk_sampler *s);

/* True when s draws (temperature > 0): a step it chose a token for used one uniform. */
bool brisk_sampler_draws(const brisk_sampler *s);

int brisk_sampler_n_vocab(const brisk_sampler *s);

/* brisk_sampler_sample with the draw's uniform u in [0, 1) given instead of drawn (the generator
 * does not move): the oracle of the device op's tests. */
brisk_status brisk_sampler_sample_u(brisk_sampler *s, float *logits, double u, int32_t *token,
                                    float *logprob);

#endif
