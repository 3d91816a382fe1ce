/* membw.h: host memory read-bandwidth measurement (the denominator of "fraction of the floor"). */
#ifndef BRISK_UTIL_MEMBW_H
#define BRISK_UTIL_MEMBW_H

/* Streams a 1 GiB buffer on the calling thread (after a warm-up pass that faults the pages in)
 * and returns the best of four read passes in GB/s. */
double brisk_measure_read_bandwidth(void);

#endif
