/* pool.h: the CPU backend's thread pool: n-1 pthreads plus the caller run one job at a time.
 * Workers spin briefly between jobs (decode issues hundreds a token), then sleep on a condvar. */
#ifndef BRISK_CPU_POOL_H
#define BRISK_CPU_POOL_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct brisk_pool brisk_pool;

/* A job: called once on every thread of the pool as fn(arg, ith, nth), ith = 0 on the caller. */
typedef void (*brisk_pool_fn)(void *arg, int ith, int nth);

/* Starts n_threads - 1 workers (n_threads >= 1). NULL when out of memory or threads. */
brisk_pool *brisk_pool_create(int n_threads);
/* Joins the workers. NULL is a no-op. */
void brisk_pool_destroy(brisk_pool *p);
int brisk_pool_size(const brisk_pool *p);
/* Runs fn on all threads and returns when every one has finished. Not reentrant. */
void brisk_pool_run(brisk_pool *p, brisk_pool_fn fn, void *arg);

/* Dynamic work split: threads take chunks of `step` items from a shared counter so that a
 * thread that loses its core to another process does not hold the others up. */
static inline int64_t brisk_pool_next(atomic_int_fast64_t *next, int64_t step) {
    return atomic_fetch_add_explicit(next, step, memory_order_relaxed);
}

#endif
