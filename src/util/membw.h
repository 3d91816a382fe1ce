/* membw.h: host memory read-bandwidth measurement (the denominator of "fraction of the floor"). */
#ifndef BRISK_UTIL_MEMBW_H
#define BRISK_UTIL_MEMBW_H

/* Streams a 1 GiB buffer on the calling thread (after a warm-up pass that faults the pages in)
 * and returns the best of four read passes in GB/s. */
double brisk_measure_read_bandwidth(void);

/* The same with several threads reading disjoint slices at once (what a threaded decode gets):
 * run(runner, job, arg) must call job(arg, ith, nth) on nth threads and return when all are
 * done (a thread pool's run). Each thread faults in its own slice first. */
typedef void (*brisk_par_job)(void *arg, int ith, int nth);
typedef void (*brisk_par_run)(void *runner, brisk_par_job job, void *arg);
double brisk_measure_read_bandwidth_mt(brisk_par_run run, void *runner);

#endif
