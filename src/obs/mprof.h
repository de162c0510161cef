// The heap profiler's records. See mprof.c.

#ifndef GORT_OBS_MPROF_H
#define GORT_OBS_MPROF_H

#include <stdint.h>

#define MPROF_MAX_DEPTH 64

typedef struct bucket {
  struct bucket *next;     // hash chain; immutable once published
  struct bucket *all_next; // every bucket, for the writer
  uint64_t hash;
  uint64_t allocs, alloc_bytes, frees, free_bytes;  // sampled; atomic (mprof.c)
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
