// Dirty-page tracking: which pages of the heap the program wrote while the
// collector marked (see mgc.c, "Concurrent marking").
//
// C has no compiler to insert a write barrier, so the collector asks the
// kernel instead. The backend (GORT_DEBUG=gcdirty=uffd|none, probed at the
// first cycle, in this order):
//   uffd  userfaultfd write-protect in asynchronous mode (Linux 6.7+): a
//         write to a protected page takes a minor fault that the kernel
//         resolves by itself (about 1.7 us on our machines, no signal, no
//         thread), and the PAGEMAP_SCAN ioctl on /proc/self/pagemap lists
//         the pages written since and protects them again in one atomic
//         step, so the collector can clean pages while the program runs.
//         Writes by the kernel (read(2) into the heap) are caught the same
//         way. Unprivileged (UFFD_USER_MODE_ONLY).
//   none  no tracking: the whole mark runs with the world stopped.
// Soft-dirty bits (absent from our kernels) and mprotect with a SIGSEGV
// handler (about 15 us a first write, and every system call that writes
// into the heap must be handled) are not built: see the closing notes of
// the concurrent-marking issue. A kernel or seccomp filter that refuses
// userfaultfd, or a register that fails, falls back to none with one
// gctrace line, never a crash or a lost object.
//
// What is tracked: only the heap's reservations (mheap.c lists them),
// never the whole process. Goroutine stacks are not tracked:
// the final stop rescans them. A reservation made while a cycle marks is
// registered at the next collect; registering leaves its pages "written",
// so that first collect reports every page it has, which is what the mark
// needs (objects there were allocated black and may hold any pointer).
// A run the kernel reports may be longer than a page (a huge page).
//
// Between cycles the heap is unprotected (disarm), so that a program pays
// the fault only for pages it writes while a mark runs.

#include <string.h>

#include "../alloc/mheap.h"
#include "../base/options.h"
#include "../os/os.h"
#include "gc.h"

static struct {
  _Atomic uint32_t lock;     // guards the registration (the worker, and heap_grew)
  int backend;               // DIRTY_*
  bool probed;
  int uffd, pagemap;         // descriptors (uffd backend)
  // The heap's reservations (mheap.c), as far as they are registered.
  uintptr_t lo[GORT_MAX_RESERVATIONS], reg_hi[GORT_MAX_RESERVATIONS];
  uint32_t registered;       // ranges [0, registered) are registered
  _Atomic bool armed;
  uint32_t gen;              // armings so far (under the lock)
} dirty = {.uffd = -1, .pagemap = -1};

// A spin lock: held only around a few system calls, never across a stop
// (the heap_grew hook runs in a no-stop region and the worker is never
// stopped).
static void dlock(void) {
  while (atomic_exchange_explicit(&dirty.lock, 1, memory_order_acquire) != 0) gort__cpu_relax();
}
static void dunlock(void) { atomic_store_explicit(&dirty.lock, 0, memory_order_release); }

enum { DIRTY_NONE, DIRTY_UFFD };

static void fall_back(const char *why, int err) {
  if (gort__opts.gctrace || gort__opts.gcdirty != 0)
    gort__print("gc: dirty tracking: %s (error %d); marking with the world stopped\n", why, -err);
  if (dirty.uffd >= 0) gort__os_close(dirty.uffd);
  if (dirty.pagemap >= 0) gort__os_close(dirty.pagemap);
  dirty.uffd = dirty.pagemap = -1;
  dirty.backend = DIRTY_NONE;
}

// Chooses the backend (once; the collector's thread, under the cycle lock).
static void probe(void) {
  if (dirty.probed) return;
  dirty.probed = true;
  dirty.backend = DIRTY_NONE;
  if (gort__opts.gcdirty == GCDIRTY_NONE) return;
  int fd = gort__os_uffd_open();
  if (fd < 0) {
    fall_back("userfaultfd refused", fd);
    return;
  }
  dirty.uffd = fd;
  int pm = gort__os_pagemap_open();
  if (pm < 0) {
    fall_back("cannot open /proc/self/pagemap", pm);
    return;
  }
  dirty.pagemap = pm;
  dirty.backend = DIRTY_UFFD;
}

bool gort__dirty_enabled(void) {
  probe();
  return dirty.backend != DIRTY_NONE;
}

const char *gort__dirty_name(void) { return dirty.backend == DIRTY_UFFD ? "uffd" : "none"; }

static bool register_new(void) {
  uint32_t n = gort__mheap_nreservations();
  // The last range may have grown since it was registered: register its
  // new part (registering an already registered part again is harmless).
  uint32_t from = dirty.registered > 0 ? dirty.registered - 1 : 0;
  for (uint32_t i = from; i < n; i++) {
    uintptr_t lo, hi;
    gort__mheap_reservation(i, &lo, &hi);
    dirty.lo[i] = lo;
    if (dirty.reg_hi[i] == hi) continue;
    int r = gort__os_uffd_register_wp(dirty.uffd, dirty.lo[i], hi - dirty.lo[i]);
    if (r < 0) {
      fall_back("userfaultfd register failed", r);
      return false;
    }
    __atomic_store_n(&dirty.reg_hi[i], hi, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&dirty.registered, n, __ATOMIC_RELEASE);
  return true;
}

// Protects every page of the heap: from now on a write marks its page.
// Returns the arming's generation (0: no tracking), which the matching
// disarm names. Arming and disarming hold the lock throughout, so a late
// disarm of the last cycle can never undo this cycle's protection.
uint32_t gort__dirty_arm(void) {
  if (dirty.backend == DIRTY_NONE) return 0;
  dlock();
  bool ok = register_new();
  for (uint32_t i = 0; ok && i < dirty.registered; i++) {
    uintptr_t walk, (*none)[2] = NULL;
    int64_t r = gort__os_pagemap_written(dirty.pagemap, dirty.lo[i], dirty.reg_hi[i], none, 0, &walk);
    if (r < 0) {
      fall_back("PAGEMAP_SCAN failed", (int)r);
      ok = false;
    }
  }
  uint32_t gen = 0;
  if (ok) {
    gen = ++dirty.gen ? dirty.gen : ++dirty.gen;  // never 0
    atomic_store(&dirty.armed, true);
  }
  dunlock();
  return gen;
}

void gort__dirty_heap_grew(uintptr_t base, uintptr_t bytes) {
  if (!atomic_load(&dirty.armed)) return;  // the next arm registers it
  dlock();
  if (dirty.backend == DIRTY_UFFD && register_new()) {
    uintptr_t walk, (*none)[2] = NULL;
    int64_t r = gort__os_pagemap_written(dirty.pagemap, base, base + bytes, none, 0, &walk);
    if (r < 0) fall_back("PAGEMAP_SCAN failed", (int)r);
  }
  dunlock();
}

// Reports the runs of pages written since the last arm or collect,
// protecting them again; false if tracking failed (the caller must then
// treat every marked object as written). A reservation registered only
// now has all its touched pages reported: registering protects nothing.
bool gort__dirty_collect(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, uint64_t *pages) {
  *pages = 0;
  if (dirty.backend == DIRTY_NONE || !dirty.armed) return false;
  dlock();
  bool ok = register_new();
  uint32_t n = dirty.registered;
  dunlock();
  if (!ok) return false;
  // Ranges heap_grew registers from here on are protected as they come.
  for (uint32_t i = 0; i < n; i++) {
    uintptr_t lo = dirty.lo[i], hi = __atomic_load_n(&dirty.reg_hi[i], __ATOMIC_ACQUIRE);
    while (lo < hi) {
      uintptr_t runs[64][2], walk;
      int64_t r = gort__os_pagemap_written(dirty.pagemap, lo, hi, runs, 64, &walk);
      if (r < 0) {
        fall_back("PAGEMAP_SCAN failed", (int)r);
        return false;
      }
      for (int64_t k = 0; k < r; k++) {
        fn(runs[k][0], runs[k][1], arg);
        *pages += (runs[k][1] - runs[k][0]) >> 12;
      }
      if (walk <= lo) break;  // no progress: cannot happen, but never spin
      lo = walk;
    }
  }
  return true;
}

// Unprotects the heap after the final stop, the program running, unless
// a later cycle armed it again meanwhile (gen is the arm's).
void gort__dirty_disarm(uint32_t gen) {
  dlock();
  if (gen != 0 && dirty.gen == gen && dirty.armed) {
    atomic_store(&dirty.armed, false);
    for (uint32_t i = 0; i < dirty.registered; i++)
      gort__os_uffd_unprotect(dirty.uffd, dirty.lo[i], dirty.reg_hi[i] - dirty.lo[i]);
  }
  dunlock();
}

// fork: the child's mappings lose their registration (the kernel drops it
// without UFFD_FEATURE_EVENT_FORK) and no cycle runs across a fork (the
// cycle lock is held through it); the child probes again at its first cycle.
void gort__dirty_fork_child(void) {
  if (dirty.uffd >= 0) gort__os_close(dirty.uffd);
  if (dirty.pagemap >= 0) gort__os_close(dirty.pagemap);
  dirty.uffd = dirty.pagemap = -1;
  dirty.registered = 0;
  memset(dirty.reg_hi, 0, sizeof dirty.reg_hi);
  atomic_store(&dirty.armed, false);
  atomic_store(&dirty.lock, 0);
  dirty.probed = false;
}
