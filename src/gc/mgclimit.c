// The collector's CPU limit (Go: mgclimit.go, the GC CPU limiter).
//
// A memory limit near the live heap makes every cycle start as soon as the
// last one ends, with little room to allocate in between: the program
// spends its time helping the mark and waiting at the hard goal, and the
// next cycle finds the same heap (a "death spiral"). Go 1.19 bounds the
// collector's share of the CPUs at half, over about a second, and past it
// lets the heap pass the limit: running out of memory a little later
// beats not running at all. gort does the same. Measured (2026-12-03, 2
// CPUs, /tmp probe: 200 MiB of scanned list nodes, two threads allocating
// 64-byte garbage for 6 s, GORT_MEMLIMIT=240MiB, 2 runs each): without
// the limit 2.4-2.8 M allocations a second (16-21 with no memory limit)
// and a peak HeapInuse of 227-235 MiB; with it 3.2-3.6, the limit on in
// most cycles, and 243-246 MiB. One thread, 10 s: 2.1 -> 2.5, 228 -> 246
// MiB. With no memory limit it never turned on, there or on GCBench,
// binary-trees and the 1 GiB cache (bench/gc).
//
// What counts as the collector's time: the stops (every CPU, for as long as
// a stop lasts), the part of a cycle before its first stop (the last
// sweep, protecting the heap: on the thread that starts the cycle, often
// the program's), the background worker while a mark runs (a quarter of
// the CPUs, as Go counts its dedicated workers; the worker is one thread,
// a full CPU on our 2-CPU machines, but counted whole it would fill the
// bucket's half by itself and leave nothing for the program's assists and
// waits: a limit that, once on, stays on for the whole of every mark let a
// 200 MiB heap under a 240 MiB limit reach 414 MiB), and a
// program thread's assists and waits at the hard goal (mgc.c, assist): a
// thread that waits uses no CPU, but it is held by the collector all the
// same, and waits are how a spiral shows here (Go's assists do the work
// instead, and burn the CPU). What counts as the program's: the rest of
// the CPUs it could use, the fewer of the CPUs and of its threads plus the
// worker (Go leaves idle Ps out the same way): a single-threaded program
// on 64 CPUs held 90% of the time is in a spiral too.
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
// goal, since past memory.max the kernel's OOM killer answers.
//
// Updates: the assists of a running cycle refresh the bucket at most every
// 0.1 ms (a try-lock; a refresh that finds it held skips), and the cycle's
// ends refresh it; between cycles nothing is charged and the next refresh
// drains by the whole interval. So the limit is never on for long after
// the collector stops needing it.

#include "../base/base.h"
#include "../os/os.h"
#include "gc.h"

#define LIMIT_WINDOW_NS 1000000000LL  // the bucket: a second of each CPU counted
#define LIMIT_UPDATE_NS 100000LL      // the assists refresh it at most this often

static struct {
  _Atomic uint32_t lock;     // a try-lock around a refresh
  int64_t fill, last;        // under the lock: collector ns in the bucket; the last refresh (0: none)
  int64_t mark_since;        // under the lock: the background mark's start, 0 when none runs
  _Atomic int64_t pending;   // collector ns charged since the last refresh
  _Atomic int64_t last_try;  // the last refresh's time, for the assists' cheap skip
  _Atomic bool on;
  _Atomic bool was_on;       // on at some time since gort__gc_limiter_cycle_reset
} lim;

static bool lim_try_lock(void) { return atomic_exchange_explicit(&lim.lock, 1, memory_order_acquire) == 0; }
static void lim_unlock(void) { atomic_store_explicit(&lim.lock, 0, memory_order_release); }
static void lim_spin_lock(void) {
  while (!lim_try_lock()) gort__cpu_relax();
}

// The CPUs the program could use: see the top. The count of its own (the
// collector's is set when its first cycle starts, and assists may come
// first).
static int64_t cpus_counted(void) {
  static _Atomic int ncpu;
  int64_t cpus = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (cpus == 0) {
    cpus = gort__os_ncpu_affinity();
    atomic_store_explicit(&ncpu, (int)cpus, memory_order_relaxed);
  }
  int64_t threads = (int64_t)gort__stw_nthreads() + 1;
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
  if (ns > 0) atomic_fetch_add_explicit(&lim.pending, ns, memory_order_relaxed);
}

bool gort__gc_limiter_update(int64_t now) {
  if (now - atomic_load_explicit(&lim.last_try, memory_order_relaxed) >= LIMIT_UPDATE_NS && lim_try_lock()) {
    atomic_store_explicit(&lim.last_try, now, memory_order_relaxed);
    refresh(now);
    lim_unlock();
  }
  return atomic_load_explicit(&lim.on, memory_order_relaxed);
}

void gort__gc_limiter_mark(bool running, int64_t now) {
  lim_spin_lock();
  refresh(now);  // the time before belongs to the old state
  lim.mark_since = running ? now : 0;
  lim_unlock();
}

bool gort__gc_limiter_cycle_reset(void) {
  lim_spin_lock();
  refresh(gort__nanotime());
  bool was = atomic_load_explicit(&lim.was_on, memory_order_relaxed);
  atomic_store_explicit(&lim.was_on, atomic_load_explicit(&lim.on, memory_order_relaxed), memory_order_relaxed);
  lim_unlock();
  return was;
}

void gort__gc_limiter_after_fork(void) {
  lim.lock = 0;
  lim.fill = lim.last = lim.mark_since = 0;
  lim.pending = lim.last_try = 0;
  lim.on = lim.was_on = false;
}

void gort__gc_limiter_charge_stop(int64_t ns) {
  if (ns > 0) atomic_fetch_add_explicit(&lim.pending, ns * cpus_counted(), memory_order_relaxed);
}
