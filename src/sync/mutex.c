// Mutexes (Go: sync/mutex.go).
//
// The state word packs what Go's does:
//   bit 0  locked
//   bit 1  woken: a waiter is awake (spinning or just woken), so unlock
//          need not wake another
//   bit 2  starving
//   bits 3-31  the number of blocked waiters
//
// Two modes, as Go's, for Go's reasons:
//   1. Normal: waiters queue FIFO, but a woken waiter competes with newly
//      arriving lockers, which are already on a CPU and usually win. That
//      keeps throughput high (the lock rarely idles while a sleeper wakes).
//      A locker first spins a few times (only with other CPUs to make
//      progress on) before it blocks: a short critical section ends while
//      it spins.
//   2. Starvation: a waiter that fails to get the lock for over 1 ms sets
//      the starving bit. Unlock then hands the mutex straight to the first
//      waiter; newcomers do not spin or take it, but queue at the tail. The
//      mutex leaves starvation mode when the waiter that receives it is the
//      last one, or has waited under 1 ms. This bounds the tail latency.
// A waiter woken in normal mode that loses to a newcomer queues again at the
// head (lifo), so it keeps its place.
//
// Blocking goes through gort_syncsema_t (sema.c), parked goroutines show
// "sync.Mutex.Lock" and the mutex's address in the goroutine dump.

#include "sync.h"

#include <sched.h>

#include "../os/os.h"

enum { LOCKED = 1, WOKEN = 2, STARVING = 4, WAITER_SHIFT = 3 };
#define STARVATION_NS 1000000

static inline _Atomic int32_t *state(gort_mutex_t *m) { return (_Atomic int32_t *)&m->state_; }

bool gort_mutex_trylock(gort_mutex_t *m) {
  int32_t old = atomic_load_explicit(state(m), memory_order_relaxed);
  if (old & (LOCKED | STARVING)) return false;
  return atomic_compare_exchange_strong_explicit(state(m), &old, old | LOCKED, memory_order_acquire,
                                                 memory_order_relaxed);
}

// Spinning pays only with another CPU to release the lock meanwhile, and
// only briefly (Go's runtime_canSpin: 4 rounds of 30 pauses).
static bool can_spin(int iter) {
  static _Atomic int ncpu;
  int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (n == 0) atomic_store_explicit(&ncpu, n = gort__os_ncpu(), memory_order_relaxed);
  return iter < 4 && n > 1;
}

static void do_spin(void) {
  for (int i = 0; i < 30; i++) __builtin_ia32_pause();
}

static GORT_NOINLINE void lock_slow(gort_mutex_t *m) {
  int64_t wait_start = 0;
  bool starving = false, awoke = false;
  int iter = 0;
  int32_t old = atomic_load_explicit(state(m), memory_order_relaxed);
  for (;;) {
    if ((old & (LOCKED | STARVING)) == LOCKED && can_spin(iter)) {
      // Tell unlock not to wake anyone: we are awake and will take it.
      if (!awoke && !(old & WOKEN) && (old >> WAITER_SHIFT) != 0 &&
          atomic_compare_exchange_strong(state(m), &old, old | WOKEN))
        awoke = true;
      do_spin();
      iter++;
      old = atomic_load_explicit(state(m), memory_order_relaxed);
      continue;
    }
    int32_t new = old;
    if (!(old & STARVING)) new |= LOCKED;  // in starvation mode, newcomers queue
    if (old & (LOCKED | STARVING)) new += 1 << WAITER_SHIFT;
    if (starving && (old & LOCKED)) new |= STARVING;
    if (awoke) {
      if (!(new & WOKEN)) gort__fatal("sync: inconsistent mutex state", m);
      new &= ~WOKEN;
    }
    if (!atomic_compare_exchange_strong_explicit(state(m), &old, new, memory_order_acquire,
                                                 memory_order_relaxed))
      continue;  // old was reloaded
    if (!(old & (LOCKED | STARVING))) return;  // locked it
    bool lifo = wait_start != 0;
    if (wait_start == 0) wait_start = gort__nanotime();
    gort__sync_acquire(&m->sema_, lifo, "sync.Mutex.Lock", m);
    starving = starving || gort__nanotime() - wait_start > STARVATION_NS;
    old = atomic_load_explicit(state(m), memory_order_relaxed);
    if (old & STARVING) {
      // Handed to us: we own it; the state says locked-by-nobody yet.
      if ((old & (LOCKED | WOKEN)) || (old >> WAITER_SHIFT) == 0)
        gort__fatal("sync: inconsistent mutex state", m);
      int32_t delta = LOCKED - (1 << WAITER_SHIFT);
      if (!starving || (old >> WAITER_SHIFT) == 1) delta -= STARVING;  // leave starvation mode
      atomic_fetch_add_explicit(state(m), delta, memory_order_acquire);
      return;
    }
    awoke = true;
    iter = 0;
  }
}

void gort_mutex_lock(gort_mutex_t *m) {
  int32_t zero = 0;
  if (gort_likely(atomic_compare_exchange_strong_explicit(state(m), &zero, LOCKED,
                                                          memory_order_acquire, memory_order_relaxed)))
    return;
  lock_slow(m);
}

static GORT_NOINLINE void unlock_slow(gort_mutex_t *m, int32_t new) {
  if (!((new + LOCKED) & LOCKED)) gort__fatal("sync: unlock of unlocked mutex", m);
  if (new & STARVING) {
    gort__sync_release(&m->sema_);  // hand it to the first waiter
    return;
  }
  int32_t old = new;
  for (;;) {
    // Nobody to wake, or someone is awake already or took the lock.
    if ((old >> WAITER_SHIFT) == 0 || (old & (LOCKED | WOKEN | STARVING))) return;
    new = (old - (1 << WAITER_SHIFT)) | WOKEN;
    if (atomic_compare_exchange_strong(state(m), &old, new)) {
      gort__sync_release(&m->sema_);
      return;
    }
  }
}

void gort_mutex_unlock(gort_mutex_t *m) {
  int32_t new = atomic_fetch_sub_explicit(state(m), LOCKED, memory_order_release) - LOCKED;
  if (gort_unlikely(new != 0)) unlock_slow(m, new);
}
