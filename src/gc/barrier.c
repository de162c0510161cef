// The explicit write barrier and barriered objects (Go: mbarrier.go,
// mwbbuf.go).
//
// See mgc.c for the collector's design. A concurrent mark learns of the
// program's pointer stores from the pages the kernel saw written (dirty.c):
// every page a mark finds written is rescanned, the last ones in the final
// stop, and a first write to a protected page costs a fault (1.7 us with
// uffd, 4 us with mprotect). Code that wants the shortest stops can take
// its objects out of that scheme: an object from gort_gc_alloc_barriered
// lives in pages that dirty tracking never protects (the page heap's
// main zone, mheap.c), and every pointer store into it goes through
// gort_gc_write_ptr. Its writes then cost no fault and its pages are never
// rescanned; the stop shrinks to the roots and the other pages.
//
// The barrier, while a mark runs: shade the pointer being overwritten and
// the one being stored, then store, all in one no-stop region (Go's hybrid
// barrier shades both; gort rescans every stack in the final stop, so the
// deletion half is not needed for correctness today, but it keeps the
// semantics Go programmers know and lets a later collector stop rescanning
// stacks). To shade is to set the object's mark bit and, if it is to be
// scanned, queue it; the queue is a work buffer of the thread's own
// (gthread_t.wbuf, mgcmark.c), handed to the shared queue when full, when
// the thread leaves the registry, and in the final stop.
//
// Why it is enough: a barriered object is marked (scanned once) or
// allocated black during the mark. Its pointers at its scan were traced;
// every pointer stored into it since was shaded at the store; so whatever
// it holds at the final stop is marked or queued, and the final drain
// finishes it. Without a mark (the usual case) the barrier is two loads
// and the store: gort__gc_marking changes only with the world stopped,
// and a store racing that change is safe because the value stored is in
// the thread's registers or stack when the world stops, so the roots'
// scan of the first stop marks it. That holds for registered threads
// only: a thread that is not (it left with gort_gc_unregister_thread, or
// gort never saw it) takes the slow path, which registers it.
//
// The final stop traces what the buffers hold, with the world stopped; so
// from the first pre-cleaning round on, a barrier that shades a new object
// hands its buffer to the queue at once (gort__gc_barrier_flush_now), and
// the concurrent rounds trace it instead. A thread the final stop could
// not stop (it died registered) may hold a buffer of marked, unscanned
// objects: that cycle then rescans every marked object (mgcmark.c).
//
// Not async-signal-safe (a handler's barrier would share the interrupted
// one's buffer), as allocation is not.
//
// The contract (include/gort/gc.h): every store of a pointer to a
// collected object into a barriered object goes through gort_gc_write_ptr
// (memcpy, a plain assignment or read(2) into one are not seen, and what
// they stored may be freed: gccheckmark reports it). realloc of a
// barriered object shades what it copies.

#include "../base/lock.h"
#include "gc.h"
#include "gort/gc.h"

static GORT_NOINLINE void write_marking(void **slot, void *val) {
  gort_gc_register_thread();  // a no-op once registered
  nostop_enter();
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) {
    gthread_t *t = gort__stw_self;
    gort__gc_barrier_shade(t, (uintptr_t)__atomic_load_n(slot, __ATOMIC_RELAXED));
    gort__gc_barrier_shade(t, (uintptr_t)val);
  }
  __atomic_store_n(slot, val, __ATOMIC_RELAXED);
  nostop_exit();
}

void gort_gc_write_ptr(void **slot, void *val) {
  if (gort_unlikely(atomic_load_explicit(&gort__gc_marking, memory_order_relaxed) || !gort__stw_registered())) {
    write_marking(slot, val);
    return;
  }
  __atomic_store_n(slot, val, __ATOMIC_RELAXED);
}

void gort__gc_barrier_copied(void *dst, size_t n) {
  if (!atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) return;
  gort_gc_register_thread();  // a no-op once registered
  nostop_enter();
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) {
    const uintptr_t *w = dst;
    for (size_t i = 0; i < n / sizeof *w; i++) gort__gc_barrier_shade(gort__stw_self, w[i]);
  }
  nostop_exit();
}
