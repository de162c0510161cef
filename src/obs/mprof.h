// The heap profiler's records. See mprof.c.

#ifndef GORT_OBS_MPROF_H
#define GORT_OBS_MPROF_H

#include <stdint.h>

#define MPROF_MAX_DEPTH 64

// The counters of one bucket's stripe (mprof.c, "Counters"), a cache line.
typedef struct {
  uint64_t allocs, alloc_bytes, frees, free_bytes;  // atomic
} __attribute__((aligned(64))) bucket_counts_t;

typedef struct bucket {
  struct bucket *next;     // hash chain; immutable once published
  struct bucket *all_next; // every bucket, for the writer
  uint64_t hash;
  // In a copy from gort__mprof_foreach: the sums of the stripes' counters.
  uint64_t allocs, alloc_bytes, frees, free_bytes;
  bucket_counts_t *counts;  // a stripe per registry shard (mprof.c, "Counters")
  uint32_t depth;
  uintptr_t pcs[];         // return addresses, innermost first
} bucket_t;

void gort__mprof_init(void);
int64_t gort__mprof_rate(void);
// Calls fn for every bucket, with a copy of it whose counters were read
// after the bucket's frees (never more frees than allocations).
void gort__mprof_foreach(void (*fn)(const bucket_t *b, void *arg), void *arg);
// Calls fn with the address of every live sampled block (the leak check:
// a sampled small block keeps its live bit clear). Takes the registry's
// shard locks in turn; with the world stopped, no stopped thread holds one.
void gort__mprof_foreach_sampled(void (*fn)(uintptr_t addr, void *arg), void *arg);

#endif  // GORT_OBS_MPROF_H
