// Wait groups (Go: sync/waitgroup.go). See mutex.c.
//
// One 64-bit word: the counter in the high half, the number of waiters in
// the low half, so that add can tell, in the same atomic step that brings
// the counter to zero, how many waiters to release.

#include "sync.h"

static inline _Atomic uint64_t *st(gort_waitgroup_t *wg) { return (_Atomic uint64_t *)&wg->state_; }

void gort_waitgroup_add(gort_waitgroup_t *wg, int64_t delta) {
  uint64_t v = atomic_fetch_add_explicit(st(wg), (uint64_t)delta << 32, memory_order_acq_rel) +
               ((uint64_t)delta << 32);
  int32_t counter = (int32_t)(v >> 32);
  uint32_t waiters = (uint32_t)v;
  if (counter < 0) gort__fatal("sync: negative WaitGroup counter", wg);
  if (waiters != 0 && delta > 0 && counter == delta)
    gort__fatal("sync: WaitGroup misuse: Add called concurrently with Wait", wg);
  if (counter > 0 || waiters == 0) return;
  // Counter zero with waiters: nobody may add now (that is the misuse
  // above), so reset the word and release every waiter.
  if (atomic_load_explicit(st(wg), memory_order_relaxed) != v)
    gort__fatal("sync: WaitGroup misuse: Add called concurrently with Wait", wg);
  atomic_store_explicit(st(wg), 0, memory_order_relaxed);
  for (; waiters > 0; waiters--) gort__sync_release(&wg->sema_);
}

void gort_waitgroup_done(gort_waitgroup_t *wg) { gort_waitgroup_add(wg, -1); }

void gort_waitgroup_wait(gort_waitgroup_t *wg) {
  uint64_t v = atomic_load_explicit(st(wg), memory_order_acquire);
  for (;;) {
    if ((v >> 32) == 0) return;
    if (atomic_compare_exchange_weak_explicit(st(wg), &v, v + 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
      gort__sync_acquire(&wg->sema_, false, "sync.WaitGroup.Wait", wg);
      return;
    }
  }
}
