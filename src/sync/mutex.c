// Mutexes (Go: sync/mutex.go).
//
// The state is one 64-bit word in two halves:
//   bits 0-31   the lock word: 1 while locked
//   bit 32      woken: a waiter is awake (spinning or just woken), so unlock
//               need not wake another
//   bit 33      starving
//   bits 34-63  the number of blocked waiters
// Go packs the same fields into 32 bits; the lock has a word of its own
// here so that lock is one test-and-set of it, whatever the other half
// says.
//
// The lock word. Go's Lock is a CAS from 0 to locked, which fails whenever
// the state is not 0: as soon as one waiter is blocked, every lock by the
// running goroutines (the waiter's count stays in the state until it is
// woken) fails it, reloads and CASes again, and every unlock runs the slow
// half: three locked instructions a pair where two would do. With 8
// goroutines on 2 Ps (bench/chan mutex_8) 3.9 million of 4 million locks
// took that path. On x86 the lock here is a locked bts on the lock word:
// it takes a free lock in one instruction, waiters or not (mutex_8: 33-39
// ns an operation before, 12-15 after, against Go's 38-47). Starvation
// mode hands the mutex over by setting the lock word again for the waiter
// after the unlock cleared it, and a newcomer's bts can land between the
// two: the hand-off's CAS then sees the lock held and leaves it
// (wake_waiter). So a bts that wins reads the high half (the line it just
// took) and, if it says starving, gives the lock back at once, before
// its caller runs: that unlock is the hand-off, and the newcomer queues
// in lock_slow, as Go's would. Without the give-back every unlock's
// window could admit one newcomer, and newcomers on other CPUs could
// keep a starving waiter out for as long as they kept landing there. The
// ThreadSanitizer build, which does not model one word accessed at two
// sizes, and other architectures keep Go's CAS on the whole state.
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
//      Go's unlock clears the locked bit and the waiter it hands the mutex
//      to sets it; here the hand-off sets it again, on the waiter's behalf,
//      in the CAS that takes the waiter off the count, so that a second
//      party that tries the same hand-off (the rescue, below) finds the
//      mutex locked and leaves it. Between the unlock and the hand-off the
//      state says "unlocked, starving": newcomers queue, as in Go (one
//      whose bts lands there gives the lock back first: "The lock word").
// A waiter woken in normal mode that loses to a newcomer queues again at the
// head (lifo), so it keeps its place.
//
// Unlock by a plain store. A locked instruction costs 5-6 ns on our
// machines (chan/chanlock.c), and with 2 goroutines on 2 Ps the mutex
// benchmark spends most of its time uncontended, in lock's CAS and unlock's
// locked add (perf annotate: 93% of unlock's samples on the xadd), so the
// add was a third of each lock-unlock pair. Unlock now loads the lock word
// (only to catch an unlock of an unlocked mutex), stores 0 into it, then
// loads the high half, and if that shows waiters or a mode, does the rest
// of Go's unlockSlow (wake_waiter). A waiter counts itself by a CAS on the
// whole word that must see the lock word at 1, and a 32-bit store cannot
// undo that count. The race that remains is chanlock.c's: x86 lets the
// load of the high half pass the store, so an unlock can read "no waiters"
// while a waiter counts itself against a lock word still 1 in memory; the
// store then lands and nobody wakes the waiter (in Go there is no such
// window: the unlock's add returns the count). The rescue: every blocked
// waiter, once it has been blocked RESCUE_NS, runs wake_waiter itself
// (sema.c wakes it for that, then puts it back to sleep in its place in
// the queue). By then the store that raced with its count has long left
// its core's store buffer, so either the lock word reads 0 and wake_waiter
// does what the unlock missed, or it reads 1: a later locker holds the
// mutex, and its unlock, which comes after its bts or CAS (a full
// barrier) read the count, sees the waiter. A lost wake costs at most
// RESCUE_NS, never a hang; a test widens the race
// (GORT_DEBUG=mutexlostwake=N). Rejected:
// membarrier() on the waiter's path (exact, but a system call and an IPI
// per blocking lock); a fence in unlock (it is the cost we remove); the
// check "locked and nothing else" before the store, to keep other states
// on a CAS (a load before the store, with its branch, cost 2-4 ns more a
// pair than one after it, in a loop of lock, increment, unlock). The
// ThreadSanitizer build releases with a locked subtract (TSan does not
// model one object accessed at two sizes); the rest is the same.
//
// Off since 2026-12-01 (the plain release's code is removed; the knob's
// unlock_reordered shows its order): every build releases with the locked subtract,
// Go's unlock, and waiters block with no rescue timer. The plain release
// reads the high half after its store, even with no waiters, and by then
// the mutex may be gone: a thread that locks it in that window, unlocks it
// and frees it (lock; last = --refs == 0; unlock; if (last) free) is right
// by POSIX's rules for pthread mutexes (glibc bug 13690 is the same
// class), and the late load then reads freed memory and, if the word
// there is nonzero, runs wake_waiter on whatever lives there now. A
// reviewer found it by sending the unlocking thread signals and, when one
// landed in the two-instruction window, locking, unlocking and unmapping
// the mutex from the handler: the resumed load faulted in 6 runs of 6. Loading the high half
// before the store touches nothing after the release, but then the lost
// wake's window is in program order, not only in the store buffer: an
// unlocker preempted between its load and its store for longer than
// RESCUE_NS defeats the one-shot rescue (it finds the lock word still 1
// and sleeps for good). That needs a rescue that repeats, with backoff,
// while the waiter stays queued; not built. The cost of being off:
// mutex_2 is back at about Go's figure (the locked add is a third of an
// uncontended pair).
//
// Blocking goes through gort_syncsema_t (sema.c), parked goroutines show
// "sync.Mutex.Lock" and the mutex's address in the goroutine dump.

#include "sync.h"

#include <sched.h>

#include "../base/options.h"
#include "../os/os.h"

#define LOCKED ((uint64_t)1)
#define WOKEN ((uint64_t)1 << 32)
#define STARVING ((uint64_t)1 << 33)
#define WAITER_SHIFT 34
#define WAITER ((uint64_t)1 << WAITER_SHIFT)
#define STARVATION_NS 1000000
#define RESCUE_NS (1000 * 1000)

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the lock word is the state's low half");
_Static_assert(sizeof(((gort_mutex_t *)0)->state_) == 8, "a 64-bit state");

static inline _Atomic uint64_t *state(gort_mutex_t *m) { return (_Atomic uint64_t *)&m->state_; }
static inline _Atomic uint32_t *lockword(gort_mutex_t *m) { return (_Atomic uint32_t *)&m->state_; }
static inline _Atomic uint32_t *waitword(gort_mutex_t *m) { return (_Atomic uint32_t *)&m->state_ + 1; }
static inline uint64_t waiters(uint64_t s) { return s >> WAITER_SHIFT; }

bool gort_mutex_trylock(gort_mutex_t *m) {
  uint64_t old = atomic_load_explicit(state(m), memory_order_relaxed);
  if (old & (LOCKED | STARVING)) return false;
  return atomic_compare_exchange_strong_explicit(state(m), &old, old | LOCKED, memory_order_acquire,
                                                 memory_order_relaxed);
}

// Spinning pays only with another CPU to release the lock meanwhile, and
// only briefly (Go's runtime_canSpin: 4 rounds of 30 pauses), and only
// while the scheduler says the holder may be running and nothing else
// waits for this P (gort__sched_can_spin).
static bool can_spin(int iter) {
  static _Atomic int ncpu;
  int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (n == 0) atomic_store_explicit(&ncpu, n = gort__os_ncpu(), memory_order_relaxed);
  return iter < 4 && n > 1 && gort__sched_can_spin();
}

static void do_spin(void) {
  for (int i = 0; i < 30; i++) __builtin_ia32_pause();
}

// The lock released: wakes a waiter if some wait, none is awake and nobody
// took the lock (Go's unlockSlow loop); in starvation mode, hands the mutex
// to the first waiter instead, locking it again on its behalf. Safe to call
// at any time, by anyone: the CAS makes one caller do each wake.
// old: the state as last seen (the unlock's subtract returns it, which
// saves a load of the contended line; it is only a first guess).
static void wake_waiter(gort_mutex_t *m, uint64_t old) {
  for (;;) {
    if (waiters(old) == 0 || (old & (LOCKED | WOKEN))) return;
    uint64_t new = (old - WAITER) | ((old & STARVING) ? LOCKED : WOKEN);
    if (atomic_compare_exchange_weak_explicit(state(m), &old, new, memory_order_acq_rel,
                                              memory_order_relaxed)) {
      gort__sync_release(&m->sema_);
      return;
    }
  }
}

static void rescue(void *m) { wake_waiter(m, atomic_load_explicit(state(m), memory_order_relaxed)); }

static GORT_NOINLINE void lock_slow(gort_mutex_t *m) {
  int64_t wait_start = 0;
  bool starving = false, awoke = false;
  int iter = 0;
  uint64_t old = atomic_load_explicit(state(m), memory_order_relaxed);
  for (;;) {
    if ((old & (LOCKED | STARVING)) == LOCKED && can_spin(iter)) {
      // Tell unlock not to wake anyone: we are awake and will take it.
      if (!awoke && !(old & WOKEN) && waiters(old) != 0 &&
          atomic_compare_exchange_strong(state(m), &old, old | WOKEN))
        awoke = true;
      do_spin();
      iter++;
      old = atomic_load_explicit(state(m), memory_order_relaxed);
      continue;
    }
    uint64_t new = old;
    if (!(old & STARVING)) new |= LOCKED;  // in starvation mode, newcomers queue
    if (old & (LOCKED | STARVING)) new += WAITER;
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
    // The rescue runs only under the test knob, whose reordered unlock
    // needs it ("Off since 2026-12-01" above), so that it stays tested.
    if (gort__opts.mutexlostwake > 0)
      gort__sync_acquire_rescued(&m->sema_, lifo, RESCUE_NS, rescue, m, "sync.Mutex.Lock", m);
    else
      gort__sync_acquire(&m->sema_, lifo, "sync.Mutex.Lock", m);
    starving = starving || gort__nanotime() - wait_start > STARVATION_NS;
    old = atomic_load_explicit(state(m), memory_order_acquire);
    if (old & STARVING) {
      // Handed to us: the unlock left LOCKED set for us and took us off
      // the count.
      if (!(old & LOCKED) || (old & WOKEN)) gort__fatal("sync: inconsistent mutex state", m);
      if (!starving || waiters(old) == 0)  // leave starvation mode
        atomic_fetch_sub_explicit(state(m), STARVING, memory_order_relaxed);
      return;
    }
    awoke = true;
    iter = 0;
  }
}

void gort_mutex_lock(gort_mutex_t *m) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  // Test-and-set of the lock word alone ("The lock word" above). One
  // locked bts: GCC makes the fetch_or a load and a CAS loop.
  bool was;
  __asm__ volatile("lock btsl $0, %0" : "+m"(*(uint32_t *)lockword(m)), "=@ccc"(was) : : "memory");
  if (gort_likely(!was)) {
    if (gort_likely(!(atomic_load_explicit(waitword(m), memory_order_relaxed) & (uint32_t)(STARVING >> 32))))
      return;
    gort_mutex_unlock(m);  // taken between an unlock and its hand-off: give it back
  }
#else
  uint64_t zero = 0;
  if (gort_likely(atomic_compare_exchange_strong_explicit(state(m), &zero, LOCKED,
                                                          memory_order_acquire, memory_order_relaxed)))
    return;
#endif
  lock_slow(m);
}

// The lock word was was (1 unless misused) and the high half showed
// waiters or a mode: after the release, the rest of Go's unlockSlow.
static GORT_NOINLINE void unlock_slow(gort_mutex_t *m, uint32_t was, uint64_t now) {
  if (was != 1) gort__fatal("sync: unlock of unlocked mutex", m);
  wake_waiter(m, now);
}

// A test's knob (GORT_DEBUG=mutexlostwake=N): one in N unlocks does what
// the store buffer may do to any of them, and wider: it loads the high half
// before it releases the lock, and pauses in between (2 us), so that
// waiters that count themselves meanwhile are missed and need the rescue.
// A store buffer drains when its thread is interrupted, so if this thread
// lost its CPU in the window (it took over 100 us), the unlock loads the
// high half again after its store, as a real one would see it.
static GORT_NOINLINE void unlock_reordered(gort_mutex_t *m) {
  static _Atomic uint32_t n;
  uint32_t l = atomic_load_explicit(lockword(m), memory_order_relaxed);
  bool early = atomic_fetch_add_explicit(&n, 1, memory_order_relaxed) % (uint32_t)gort__opts.mutexlostwake == 0;
  int64_t t0 = gort__nanotime();
  uint32_t h = atomic_load_explicit(waitword(m), memory_order_relaxed);
  if (early)
    for (int i = 0; i < 200; i++) gort__cpu_relax();
  atomic_store_explicit(lockword(m), 0, memory_order_release);
  if (!early || gort__nanotime() - t0 > 100 * 1000) h = atomic_load_explicit(waitword(m), memory_order_relaxed);
  if (((l ^ 1) | h) != 0) unlock_slow(m, l, (uint64_t)h << 32);
}

void gort_mutex_unlock(gort_mutex_t *m) {
  if (gort_unlikely(gort__opts.mutexlostwake > 0)) {
    unlock_reordered(m);
    return;
  }
  uint64_t old = atomic_fetch_sub_explicit(state(m), LOCKED, memory_order_release);
  uint32_t l = (uint32_t)old, h = (uint32_t)(old >> 32);
  if (gort_unlikely(((l ^ 1) | h) != 0)) unlock_slow(m, l, (uint64_t)h << 32);
}
