// Start-up: one module that every entry reaches. See start.c.

#ifndef GORT_BASE_START_H
#define GORT_BASE_START_H

#include <stdatomic.h>

#include "base.h"

// 0 new, 1 starting, 2 ready (allocation works), 3 every layer started.
extern _Atomic int gort__start_state GORT_HIDDEN;

void gort__start_slow(void);

// Every entry that may be the process's first call into gort calls this
// (the allocation slow paths, the gort_* calls that read state). One load
// and a predictable branch once started.
GORT_INLINE void gort__start_ensure(void) {
  if (gort_unlikely(atomic_load_explicit(&gort__start_state, memory_order_acquire) < 2))
    gort__start_slow();
}

// Fork handlers of one layer. prepare runs before fork() in ascending rank
// (the lock order, lock.h), parent and child after it in descending rank,
// so every layer sees the layers below it still locked. The struct is the
// caller's (static storage): registration never allocates and has no limit.
typedef struct fork_hook {
  const char *name;
  int rank;
  void (*prepare)(void);
  void (*parent)(void);
  void (*child)(void);
  struct fork_hook *next, *prev;  // owned by start.c
} fork_hook_t;

// Registers h; call during start-up (from a layer's init function).
void gort__start_add_fork_hook(fork_hook_t *h);

#endif  // GORT_BASE_START_H
