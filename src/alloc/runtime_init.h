// Start-up: gort initializes itself on its first allocation, whenever that
// is (before main, inside dlsym, in another library's constructor). See
// malloc.c, "start-up". Upper layers register hooks that run once the heap
// works, such as the scavenger and the exit-time reports.

#ifndef GORT_ALLOC_RUNTIME_INIT_H
#define GORT_ALLOC_RUNTIME_INIT_H

#include <stdatomic.h>

#include "../base/base.h"

typedef void (*init_hook_t)(void);

// 0 new, 1 starting, 2 ready.
extern _Atomic int gort__runtime_state GORT_HIDDEN;

void gort__runtime_init_slow(void);
// Registers fn to run once the runtime is ready (at once if it already is).
// Hooks may allocate. Call from a constructor.
void gort__runtime_add_init_hook(init_hook_t fn);

// Registers the fork handlers (fork.c).
void gort__fork_init(void);

GORT_INLINE void gort__runtime_ensure_init(void) {
  if (gort_unlikely(atomic_load_explicit(&gort__runtime_state, memory_order_acquire) != 2))
    gort__runtime_init_slow();
}

#endif  // GORT_ALLOC_RUNTIME_INIT_H
