/* pool.c: a spin-then-sleep pthread pool: one job at a time, published by a generation counter;
 * no thread is created per op. Jobs take work with brisk_pool_next() so both cores end together. */
#include "backend/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

/* No pause/yield instruction in the spin: under KVM a PAUSE loop triggers pause-loop exits and
 * measured 160 us per job handoff instead of ~10 us (tests/ops pool timing, this 2-vCPU VM). */
#define CPU_RELAX() __asm__ __volatile__("" ::: "memory")

/* Spins before sleeping: long enough to cover the gap between two ops of a decode step (a few
 * tens of microseconds), short enough not to burn a core when the engine is idle. */
enum { SPIN_ITERS = 1 << 18 };

struct brisk_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int gen;      /* bumped per job */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleeping; /* workers waiting on cv */
    atomic_int quit;
    brisk_pool_fn fn;
    void *arg;
    struct worker_arg {
        brisk_pool *p;
        int ith;
    } * args;
};

static void *worker(void *v) {
    struct worker_arg *wa = v;
    brisk_pool *p = wa->p;
    int seen = 0;
    for (;;) {
        int g = atomic_load(&p->gen);
        for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
            CPU_RELAX();
            g = atomic_load(&p->gen);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        p->fn(p->arg, wa->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

brisk_pool *brisk_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    brisk_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->threads || !p->args) {
        p->n = 1;
        brisk_pool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->args[i] = (struct worker_arg){p, i};
        if (pthread_create(&p->threads[i], NULL, worker, &p->args[i]) != 0) {
            p->n = i; /* join the ones that started */
            brisk_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void brisk_pool_destroy(brisk_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->args);
    free(p);
}

int brisk_pool_size(const brisk_pool *p) {
    return p->n;
}

void brisk_pool_run(brisk_pool *p, brisk_pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the workers' `sleeping` increment */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    /* Yield now and then: on a loaded machine a worker may be waiting for this core. */
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        CPU_RELAX();
        if ((i & 1023) == 1023) sched_yield();
    }
}
