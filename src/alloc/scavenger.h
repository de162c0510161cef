// The scavenger: returning free memory to the OS. See scavenger.c.

#ifndef GORT_ALLOC_SCAVENGER_H
#define GORT_ALLOC_SCAVENGER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  uint64_t cycles;          // background cycles run
  uint64_t released_bytes;  // released by the scavenger, ever (all paths)
  uint64_t forced;          // gort_free_os_memory / malloc_trim calls
  uint64_t limit_events;    // growths, and reuses of released pages, that found the heap past the memory limit
  int64_t memory_limit;     // in force; INT64_MAX for none
  int running;              // the background thread exists
} gort_scavenger_stats_t;

void gort__scavenger_init(void);
// gort_free_os_memory, returning the bytes released (malloc_trim).
uint64_t gort__scavenger_free_os_memory(void);
void gort__scavenger_stats(gort_scavenger_stats_t *out);
// The soft memory limit (INT64_MAX: none), the cgroup's read the first time.
int64_t gort__scavenger_memory_limit(void);
// Whether the limit in force is the cgroup's memory.max (the kernel's OOM
// killer answers past it), not one GORT_MEMLIMIT or the program set.
bool gort__scavenger_limit_is_cgroups(void);
// Fork: the child has no scavenger thread; the next need starts one.
void gort__scavenger_after_fork_child(void);
void gort__scavenger_suspend(int on);
// A hook run once per background cycle (the pools' rotation with the
// collector off, pool/rotate.c); while it returns true the scavenger keeps
// cycling even with nothing to release. Set once, at start-up.
void gort__scavenger_set_cycle_hook(bool (*fn)(void));
// Starts or wakes the background thread (it runs the cycle hook).
void gort__scavenger_wake(void);

#endif  // GORT_ALLOC_SCAVENGER_H
