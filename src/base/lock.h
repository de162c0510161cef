// Internal locks: a futex-based mutex that never allocates.
//
// gort cannot use pthread_mutex_t everywhere: the page heap's lock is taken
// inside malloc, before libc may be ready, and around fork. lock_t is one
// 32-bit word: 0 unlocked, 1 locked, 2 locked with waiters (Drepper's
// "Futexes are tricky", mutex 3). Acquire spins briefly first, since most
// critical sections in the allocator are a few hundred nanoseconds.
//
// Lock ranks (take only in ascending order; never call out of gort holding
// one). The numbers also order the fork hooks (base/start.h).
//   LOCK_START    start-up (base/start.c)
//   LOCK_CHAN     one channel (chan/chan.c); several only in address order (select.c)
//   LOCK_SYNC     one sync semaphore's wait list (sync/sema.c)
//   LOCK_TIMERS   one P's timer heap (sched/timer.c); never two at once
//   LOCK_SCHED    the scheduler: global run queue, idle Ms and Ps (sched/proc.c)
//   LOCK_STACKS   stack slabs, their carving and promises (sched/stack.c)
//   LOCK_PROF     heap profiler records (obs/mprof.c)
//   LOCK_LATE     the late cache of exiting threads (mcache.c)
//   LOCK_CACHES   mcache registry (mcache.c)
//   LOCK_CENTRAL  one mcentral (mcentral.c); never two at once
//   LOCK_RELEASE  page heap: one release to the OS in flight (mheap.c)
//   LOCK_HEAP     page heap (mheap.c)
//   LOCK_PERSIST  persistent metadata allocator (persistent.c)

#ifndef GORT_BASE_LOCK_H
#define GORT_BASE_LOCK_H

#include <stdatomic.h>

#include "base.h"

enum { LOCK_START = 10, LOCK_CHAN = 11, LOCK_SYNC = 13, LOCK_TIMERS = 14, LOCK_SCHED = 16, LOCK_STACKS = 18,
       LOCK_PROF = 20, LOCK_LATE = 25, LOCK_CACHES = 30, LOCK_CENTRAL = 40, LOCK_RELEASE = 50,
       LOCK_HEAP = 60, LOCK_PERSIST = 70 };

typedef struct {
  _Atomic uint32_t state;
} lock_t;

#define LOCK_INIT {0}

// One turn of a wait for a spin lock held by another thread (the few
// flag-word locks that are not lock_t: the collector's figures, the memo
// pools'; not the dirty tracker's, whose waiters may hold the heap's
// lock: gc/dirty.c, dlock): a pause, and after SPIN_YIELD_AFTER turns a
// yield. On our 2-CPU VMs a woken thread preempts the one running on its
// CPU, which may hold the lock: bench/gc's monitor thread, reading
// MemStats every 10 ms, was seen spinning 1.25 ms on the figures' lock
// that the background worker it had preempted held, and binary-trees'
// probe thread waited behind both (its 100 us sleeps overslept by up to
// 5.8 ms). The yield lets the holder run.
void gort__spin_turn(unsigned *turns);

void gort__lock_slow(lock_t *l);
void gort__unlock_slow(lock_t *l);

// No-stop regions. The collector stops threads with a signal (gc/
// stoptheworld.c) and then uses the allocator's structures, so a thread
// must never be stopped while it holds a gort lock or is midway through a
// change the collector reads. Such regions count in gort__nostop (every
// lock holds one); a stop signal that arrives inside one only sets
// gort__stop_pending, and the thread stops itself when it leaves the
// region (gort__stop_deferred, filled in by the collector). The counter
// is the thread's own, and the signal handler runs on the same thread, so
// plain accesses with signal fences suffice. The collector also sets
// gort__stop_pending of a running thread from its own thread before it
// signals it (gc/stw.c, "Asking first"), so that flag is read and written
// with atomics: the region's end is then where the thread stops, without
// a signal.
extern GORT_TLS uint32_t gort__nostop GORT_HIDDEN;
extern GORT_TLS volatile uint32_t gort__stop_pending GORT_HIDDEN;
extern void (*gort__stop_deferred)(void) GORT_HIDDEN;

// The count is written with relaxed atomics (plain moves) because a stop
// reads it from another thread (gc/stw.c, "Asking first").
GORT_INLINE void nostop_enter(void) {
  __atomic_store_n(&gort__nostop, gort__nostop + 1, __ATOMIC_RELAXED);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

// Leaves a region; true if a stop is pending and the caller, out of every
// region now, must call gort__stop_deferred (nostop_exit does; a fast path
// that keeps no frame makes it a tail call instead).
GORT_INLINE bool nostop_leave(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint32_t depth = gort__nostop - 1;
  __atomic_store_n(&gort__nostop, depth, __ATOMIC_RELAXED);
  if (depth != 0) return false;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  return gort_unlikely(__atomic_load_n(&gort__stop_pending, __ATOMIC_ACQUIRE) != 0);
}

GORT_INLINE void nostop_exit(void) {
  if (nostop_leave()) gort__stop_deferred();
}

GORT_INLINE void lock(lock_t *l) {
  nostop_enter();
  uint32_t expected = 0;
  if (gort_likely(atomic_compare_exchange_strong_explicit(&l->state, &expected, 1,
                                                          memory_order_acquire,
                                                          memory_order_relaxed)))
    return;
  gort__lock_slow(l);
}

GORT_INLINE void unlock(lock_t *l) {
  if (gort_unlikely(atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2))
    gort__unlock_slow(l);
  nostop_exit();
}

GORT_INLINE bool try_lock(lock_t *l) {
  nostop_enter();
  uint32_t expected = 0;
  if (atomic_compare_exchange_strong_explicit(&l->state, &expected, 1, memory_order_acquire,
                                              memory_order_relaxed))
    return true;
  nostop_exit();
  return false;
}

// After fork, the child owns every lock the parent held at the fork; the
// child re-initializes the ones its atfork handler took (and drops their
// no-stop counts: lock_reinit does, once per lock the handler took).
GORT_INLINE void lock_reinit(lock_t *l) {
  atomic_store_explicit(&l->state, 0, memory_order_relaxed);
  if (gort__nostop > 0) __atomic_store_n(&gort__nostop, gort__nostop - 1, __ATOMIC_RELAXED);
}

#endif  // GORT_BASE_LOCK_H
