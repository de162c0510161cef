// Start-up: gort initializes itself on its first allocation, whenever that
// is (before main, inside dlsym, in another library's constructor). See
// malloc.c, "start-up". Upper layers register hooks that run once the heap
// works, such as the scavenger and the exit-time reports.

#ifndef GORT_ALLOC_RUNTIME_INIT_H
#define GORT_ALLOC_RUNTIME_INIT_H

#include <stdatomic.h>

#include <stddef.h>

#include "../base/base.h"

typedef void (*init_hook_t)(void);

// 0 new, 1 starting, 2 ready.
extern _Atomic int gort__runtime_state GORT_HIDDEN;

void gort__runtime_init_slow(void);
// Registers fn to run once the runtime is ready (at once if it already is).
// Hooks may allocate. Call from a constructor.
void gort__runtime_add_init_hook(init_hook_t fn);

// The heap profiler's hooks, filled in by obs/mprof.c (an upward call
// through a hook this layer declares). sample_alloc runs after a sampled
// allocation, outside every allocator lock, and returns the bytes until
// the next sample; sample_free runs before a block of a span with
// nsampled > 0 is freed. Both may be NULL (no profiler linked).
typedef struct {
  int64_t (*sample_alloc)(void *p, size_t size);
  void (*sample_free)(void *p);
  int64_t (*first_interval)(void);
} gort_mprof_hooks_t;
extern gort_mprof_hooks_t gort__mprof_hooks GORT_HIDDEN;

// Registers the fork handlers (fork.c).
void gort__fork_init(void);

GORT_INLINE void gort__runtime_ensure_init(void) {
  if (gort_unlikely(atomic_load_explicit(&gort__runtime_state, memory_order_acquire) != 2))
    gort__runtime_init_slow();
}

#endif  // GORT_ALLOC_RUNTIME_INIT_H
