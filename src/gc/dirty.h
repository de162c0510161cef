// The dirty-tracking backends' interface (see dirty.c for the design).
//
// dirty.c owns the registration of the tracked zone's reservations, the arming
// generations and the fallback; a backend only protects, collects and
// unprotects ranges of registered reservations. Every call but the
// mprotect backend's fault path is made by dirty.c with its lock held,
// except collect, which dirty.c makes without it (a backend that needs
// exclusion there takes its own lock).

#ifndef GORT_GC_DIRTY_H
#define GORT_GC_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"

typedef struct dirty_backend {
  const char *name;
  // Opens the backend (the probe); 0 or -errno (the next backend is tried).
  int (*open)(void);
  // Gives back what open took; the heap is left unprotected.
  void (*close)(void);
  // Registers [lo, hi), new to the backend (a reservation, or the grown
  // part of the last one): its pages count as written until protected.
  int (*add)(uintptr_t lo, uintptr_t hi);
  // A cycle arms (true, before its protects) or the heap is unprotected
  // again (false, after the unprotects).
  void (*arming)(bool on);
  // Protects [lo, hi), forgetting what was written there; 0 or -errno.
  int (*protect)(uintptr_t lo, uintptr_t hi);
  // Writes into out (at most n) the runs of [lo, hi) written since they
  // were last protected, protecting them again before it returns (so a
  // write after the return is caught again); *walk_end is where it
  // stopped. The count of runs, or -errno. reprotect false (the final
  // stop's collect: nothing written after it matters to this cycle): the
  // backend may leave the runs unprotected, still counted as written.
  int64_t (*collect)(uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], size_t n, uintptr_t *walk_end,
                     bool reprotect);
  // Unprotects [lo, hi) (disarm).
  void (*unprotect)(uintptr_t lo, uintptr_t hi);
  // Counts the present pages of [lo, hi) and those written since they
  // were protected, changing nothing; 0 or -errno. NULL: the backend must
  // be unprotected whole between cycles (dirty.c, "Between cycles").
  int (*count)(uintptr_t lo, uintptr_t hi, uint64_t *present, uint64_t *written);
  // In a forked child: forget everything, unprotect what is protected.
  void (*fork_child)(const uintptr_t *lo, const uintptr_t *hi, uint32_t n);
} dirty_backend_t;

extern const dirty_backend_t gort__dirty_mprotect GORT_HIDDEN;

// The mprotect backend's granule: what one first write unprotects and one
// written bit covers (dirty.c says why this size).
#define GORT_DIRTY_GRANULE_SHIFT 14

#endif  // GORT_GC_DIRTY_H
