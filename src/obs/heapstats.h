// Internal statistics: the figures malloc_info, mallinfo, MemStats,
// metrics and the exit summary are computed from. See memstats.c.

#ifndef GORT_OBS_HEAPSTATS_H
#define GORT_OBS_HEAPSTATS_H

#include <stdint.h>

#include "gort/metrics.h"

typedef struct {
  uint64_t heap_sys, heap_inuse, heap_idle, heap_released;
  uint64_t heap_alloc, heap_objects, total_alloc, mallocs, frees;
  uint64_t large_objects, large_bytes;
  uint64_t sys;
} gort_heap_figures_t;

void gort__heap_figures(gort_heap_figures_t *f);
// Prints a readable summary (GORT_STATS, malloc_stats) to fd; returns 0
// or the negative errno of the first failed write (and stops there).
int gort__heap_print_summary(int fd);

#endif  // GORT_OBS_HEAPSTATS_H
