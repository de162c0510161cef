// The collector's CPU limit (Go: mgclimit.go, the GC CPU limiter).
//
// When the collector burns most of the CPUs (marks that stop the world
// for their whole length, back to back; assists that find mark work on
// every slow path), the program barely runs. Go 1.19 bounds the
// collector's share at half, over about a second, and past it lets the
// heap pass its goal, the memory limit's included: running out of memory
// a little later beats not running at all. gort does the same, counting
// what Go counts.
//
// What counts as the collector's time: CPU it burns. The stops (every
// CPU, for as long as a stop lasts), the part of a cycle before its first
// stop (the last sweep, protecting the heap: on the thread that starts
// the cycle, often the program's), the background worker while a mark
// runs (a quarter of the CPUs, Go's dedicated share; the worker is one
// thread, a full CPU on 2 CPUs, but counted whole it would fill the
// bucket's half by itself: a limit on through every mark let a 200 MiB
// heap under a 240 MiB limit reach 414 MiB in the first version), and the
// program threads' assists, including the marking a thread does while it
// waits at the hard goal. Not the waits themselves: a thread parked until
// the mark ends burns nothing, and Go does not count its parked assists
// either. What counts as the program's: the rest of the CPUs it could
// use, the fewer of the CPUs and of its threads plus the worker (Go
// leaves idle Ps out the same way).
//
// Why not the waits (measured 2026-12-04, 2 CPUs, /tmp probe: 200 MiB of
// scanned list nodes, threads allocating 64-byte garbage for 5-6 s,
// against Go 1.19 running the same program). At a memory limit of 240
// MiB, where the goal sits near the live heap and the program waits in
// every cycle: gort 2.7-2.8 M allocations a second, peak HeapInuse 251-252
// MiB, the limit never on (1, 2 and 16 threads alike); Go 2.5-2.8 M/s,
// 222-228 MiB of heap objects, its limiter never on either (gctrace: the
// collector at 38% of the CPUs; its goroutines sit parked in the assist
// queue). A draft that counted the waits while they last turned the
// limit on in every cycle there: 7-11 M/s, but 455-489 MiB of heap under
// a 240 MiB limit; counted at their end, as the first version did, 16
// threads with no memory limit at all turned it on in every cycle and
// reached 646 MiB against 461. A limit that doubles the heap where Go
// keeps it at the limit is not Go's.
// Where it does turn on: the stop-the-world mark (gcdirty=none) with 200
// MiB live, in every cycle (52 of 52 without a memory limit; 59 of 59 at
// 240 MiB, 2.3 M/s, 227 MiB).
//
// The bucket (Go's): it holds at most a second of every such CPU; the
// collector's time fills it and the program's drains it, so it stays
// full only while the collector took more than half over the last second
// or so. While it is full the limit is on: assists and hard-goal waits are
// skipped (mgc.c), so the program allocates at full speed while the
// background worker marks alone, and the heap passes its goal, the memory
// limit's included, by what the program allocates before the mark ends.
// Cycles still start at their trigger. The limit turns off as soon as
// the program's time drains the bucket below full, so it holds the
// collector's share near half rather than at none. One exception: where
// the memory limit is the cgroup's memory.max (the default without
// GORT_MEMLIMIT), the limit skips assists but not the waits past the hard
// goal, since past memory.max the kernel's OOM killer answers. Which
// limit is in force is read race-free: a limit the program sets raises a
// flag before it is stored (scavenger.c); the first version cleared a
// shared flag when its own first read of the cgroup's limit lost a race
// to another thread's, and took the cgroup's limit for the program's.
//
// Updates: time in pieces (a stop, an assist) is charged when the piece
// ends, a thread's piece at the share of a CPU a thread gets; the background mark is a rate, switched under the lock after a
// refresh that charges the time before. The assists of a running cycle
// refresh the bucket at most every 0.1 ms (a try-lock; a refresh that
// finds it held skips), and the cycle's edges refresh it; between cycles
// nothing is charged and the next refresh drains by the whole interval,
// so the limit is never on for long after the collector stops needing it.
//
// The lock is a lock_t, so its holder is in a no-stop region: a program
// thread is never stopped holding it, and the collector may take it
// inside its stops (the first version's spin lock could be held by a
// stopped thread while the final stop spun on it).

#include "../base/base.h"
#include "../base/lock.h"
#include "../os/os.h"
#include "gc.h"

#define LIMIT_WINDOW_NS 1000000000LL  // the bucket: a second of each CPU counted
#define LIMIT_UPDATE_NS 100000LL      // the assists refresh it at most this often

static struct {
  lock_t lock;
  int64_t fill, last;        // under the lock: collector ns in the bucket; the last refresh (0: none)
  int64_t mark_since;        // under the lock: the background mark's start, 0 when none runs
  _Atomic int64_t pending;   // collector CPU ns charged since the last refresh (stops: every CPU's)
  _Atomic int64_t pending_thread;  // threads' wall ns in the collector's work since then
  _Atomic int64_t last_try;  // the last refresh's time, for the assists' cheap skip
  _Atomic bool on;
  _Atomic bool was_on;       // on at some time since gort__gc_limiter_cycle_reset
} lim = {.lock = LOCK_INIT};

static int64_t ncpu(void) {
  static _Atomic int n;
  int64_t cpus = atomic_load_explicit(&n, memory_order_relaxed);
  if (cpus == 0) {
    cpus = gort__os_ncpu_affinity();
    atomic_store_explicit(&n, (int)cpus, memory_order_relaxed);
  }
  return cpus;
}

// The CPUs the program could use (see the top).
static int64_t cpus_counted(void) {
  int64_t cpus = ncpu(), threads = (int64_t)gort__stw_nthreads() + 1;
  return threads < cpus ? threads : cpus;
}

// The lock held.
static void refresh(int64_t now) {
  if (lim.last == 0 || now <= lim.last) {
    if (lim.last == 0) lim.last = now;
    return;
  }
  int64_t elapsed = now - lim.last, cpus = cpus_counted();
  int64_t total = elapsed * cpus, cap = LIMIT_WINDOW_NS * cpus;
  int64_t gc = atomic_exchange_explicit(&lim.pending, 0, memory_order_relaxed);
  // A thread's wall time is a CPU's only while threads do not outnumber
  // the CPUs; past that, its share (a reviewer's find: 16 threads on 2
  // CPUs charged assists of more than twice the wall time).
  int64_t thread = atomic_exchange_explicit(&lim.pending_thread, 0, memory_order_relaxed);
  int64_t threads = gort__stw_nthreads(), n = ncpu();
  gc += threads > n ? thread * n / threads : thread;
  if (lim.mark_since != 0) gc += (now - (lim.mark_since > lim.last ? lim.mark_since : lim.last)) * cpus / 4;
  if (gc > total) gc = total;
  int64_t fill = lim.fill + gc - (total - gc);
  lim.fill = fill < 0 ? 0 : fill > cap ? cap : fill;
  lim.last = now;
  bool on = lim.fill >= cap;
  atomic_store_explicit(&lim.on, on, memory_order_relaxed);
  if (on) atomic_store_explicit(&lim.was_on, true, memory_order_relaxed);
}

void gort__gc_limiter_charge(int64_t ns) {
  if (ns > 0) atomic_fetch_add_explicit(&lim.pending_thread, ns, memory_order_relaxed);
}

bool gort__gc_limiter_update(int64_t now) {
  if (now - atomic_load_explicit(&lim.last_try, memory_order_relaxed) >= LIMIT_UPDATE_NS && try_lock(&lim.lock)) {
    atomic_store_explicit(&lim.last_try, now, memory_order_relaxed);
    refresh(now);
    unlock(&lim.lock);
  }
  return atomic_load_explicit(&lim.on, memory_order_relaxed);
}

void gort__gc_limiter_mark(bool running, int64_t now) {
  lock(&lim.lock);
  refresh(now);  // the time before belongs to the old state
  lim.mark_since = running ? now : 0;
  unlock(&lim.lock);
}

bool gort__gc_limiter_cycle_reset(void) {
  lock(&lim.lock);
  refresh(gort__nanotime());
  bool was = atomic_load_explicit(&lim.was_on, memory_order_relaxed);
  atomic_store_explicit(&lim.was_on, atomic_load_explicit(&lim.on, memory_order_relaxed), memory_order_relaxed);
  unlock(&lim.lock);
  return was;
}

void gort__gc_limiter_after_fork(void) {
  // Only the forking thread runs on. Not lock_reinit: no fork handler took
  // this lock, and the child's no-stop count must stay as they left it.
  atomic_store_explicit(&lim.lock.state, 0, memory_order_relaxed);
  lim.fill = lim.last = lim.mark_since = 0;
  lim.pending = lim.pending_thread = lim.last_try = 0;
  lim.on = lim.was_on = false;
}

void gort__gc_limiter_charge_stop(int64_t ns) {
  if (ns > 0) atomic_fetch_add_explicit(&lim.pending, ns * cpus_counted(), memory_order_relaxed);
}
