// The scavenger: memory back to the OS (Go: mgcscavenge.go).
//
// Freed memory that stays mapped keeps a program's RSS high long after its
// live heap shrank (the "Linux memory release trap"). gort returns free
// pages to the OS in three ways:
//
//   1. In the background. When a free leaves more than WAKE_BYTES of free,
//      unreleased pages in the page heap, it wakes the scavenger thread (and
//      creates it the first time: a program that never frees much never gets
//      one). Each cycle, every RELEASE_TICK, the thread releases the free
//      runs that have stayed unused for GORT_DEBUG=scavdelay milliseconds
//      (default 500), and takes back the empty spans each thread cache
//      keeps for reuse (1 to 8 MiB: mcache.c, "Empty spans"). With nothing left to release it sleeps on a
//      futex until the next wake-up, so an idle program pays nothing.
//   2. On request: gort_free_os_memory() (Go's debug.FreeOSMemory, and
//      malloc_trim) releases every free page now, whatever its age.
//   3. At the memory limit: before the heap grows past GORT_MEMLIMIT (or
//      gort_set_memory_limit lowers it below the heap), as many free pages
//      as the limit asks are released first, the top pages of the free
//      spans with the most (mheap.c: an allocation takes a span's first
//      pages), as Go's allocSpan scavenges only what it needs. Until
//      2026-12-06 a growth past the limit, or a lower limit, released
//      every free page, and any bounded release took whole spans: 4 MiB
//      past the limit released all 32 MiB of a free span, pages the
//      program's next allocations fault in again (test_scavenger,
//      memory_limit_releases_only_the_excess). No speed gain was
//      measured: a random churn of 4 KiB-4 MiB blocks (146 MiB peak
//      alone) under a 110 MiB limit released about 900 MiB over its run
//      either way, most of it for allocations that reuse released pages
//      (below), and its times (3-5 s) are this host's noise. An
//      allocation that takes pages released before, and so brings the
//      resident bound past the limit (by over RECOMMIT_SLACK) without
//      growing the heap, releases the excess from the other free pages at
//      once (Go's allocSpan does the same; on_recommit says what it costs);
//      and a free that leaves the heap above 90% of the limit wakes the
//      scavenger to release at once rather than after the delay. Until
//      2026-12-06 only growth was checked: a program that freed and
//      allocated 96 MiB a round in sizes that could not reuse each other's
//      holes, under a 160 MiB limit, had up to 223 MiB resident, until the
//      scavenger's delay ran out (test_hugepages, memory_limit_...). Without
//      GORT_MEMLIMIT the limit is the one of the process's cgroup, if any
//      (os/cgroup.c says where it is found). Finding it takes a dozen
//      files under /proc and /sys, about 0.1 ms, which a short process
//      (git starts hundreds) should not pay at start-up: the limit is read
//      when the heap first reaches LIMIT_PROBE_BYTES, when the scavenger
//      thread starts, or when the program asks for it, whichever is first.
//      (A cgroup that holds its process under 16 MiB leaves no room for
//      a soft limit to act in anyway.)
//
// Pacing: the delay keeps pages that the program reuses soon (the common
// case in churn) from paying a release and a refault; past it, releasing
// costs in proportion to memory the program allocated and gave up, so the
// cost is a fraction of the allocation work that preceded it.
//
// What the limit counts: the heap's resident bound, HeapSys - HeapReleased
// (pages in use and free pages not yet returned), plus gort's metadata. It
// is soft: allocation never fails because of it.
//
// MADV_DONTNEED (GORT_DEBUG=madvdontneed=1, the default) drops RSS at once
// and makes reused pages read as zero; MADV_FREE (madvdontneed=0) is
// cheaper, but the kernel only takes the pages under memory pressure, so
// RSS stays high until then. docs/SCAVENGER.md has the measured figures.

#include "scavenger.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../base/options.h"
#include "../base/persistent.h"
#include "../base/vg.h"
#include "../os/os.h"
#include "gort/alloc.h"
#include "mcache.h"
#include "mheap.h"
#include "alloc_init.h"

#define WAKE_BYTES ((uint64_t)4 << 20)
#define RELEASE_TICK_NS (100 * 1000 * 1000)
#define LIMIT_PROBE_BYTES ((uint64_t)16 << 20)
#define RECOMMIT_SLACK ((uint64_t)1 << 20)
#define LIMIT_UNREAD INT64_MIN  // the cgroup's limit, not read yet

static struct {
  _Atomic uint32_t wake;      // futex word: 1 when there is work
  _Atomic int state;          // 0 no thread, 1 starting or running
  _Atomic int suspended;      // in a fork child's handler
  _Atomic int eager;          // near the limit: ignore the delay
  _Atomic int64_t limit;
  _Atomic bool limit_explicit;  // set by GORT_MEMLIMIT or gort_set_memory_limit, not the cgroup's
  _Atomic uint64_t cycles, released, forced, limit_events;
  bool enabled;
  bool (*cycle_hook)(void);  // set at start-up (the pools')
} scav = {.limit = INT64_MAX};

// The limit, reading the cgroup's the first time (see the top).
static int64_t limit_now(void) {
  int64_t limit = atomic_load_explicit(&scav.limit, memory_order_relaxed);
  if (gort_likely(limit != LIMIT_UNREAD)) return limit;
  int64_t cg = gort__os_cgroup_memory_limit(NULL);
  // A limit set meanwhile (gort_set_memory_limit) wins.
  if (atomic_compare_exchange_strong(&scav.limit, &limit, cg)) return cg;
  return limit;
}

static uint64_t heap_resident_bound(void) {
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  return hs.sys_bytes - hs.released_bytes + gort__persistent_sys_bytes();
}

static void trace(const char *how, uint64_t bytes) {
  if (!gort__opts.scavtrace) return;
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  uint64_t retained = hs.sys_bytes - hs.released_bytes;
  gort__print("gort: scav %llu KiB work (%s), %llu KiB total, %llu%% util, %llu KiB retained\n",
              (unsigned long long)(bytes >> 10), how,
              (unsigned long long)(atomic_load(&scav.released) >> 10),
              (unsigned long long)(retained ? hs.inuse_bytes * 100 / retained : 100),
              (unsigned long long)(retained >> 10));
}

static uint64_t release_up_to(uint64_t max_bytes, int64_t min_age_ns) {
  uint64_t bytes = gort__mheap_release(max_bytes, min_age_ns);
  atomic_fetch_add(&scav.released, bytes);
  return bytes;
}

static uint64_t release_now(int64_t min_age_ns) { return release_up_to(UINT64_MAX, min_age_ns); }

static void *scavenger_main(void *arg) {
  (void)arg;
  limit_now();
  for (;;) {
    while (atomic_exchange(&scav.wake, 0) == 0) gort__os_futex_wait(&scav.wake, 0);
    // Work until nothing is left to release; new frees re-arm wake.
    for (;;) {
      struct timespec ts = {0, RELEASE_TICK_NS};
      if (!atomic_load(&scav.eager)) nanosleep(&ts, NULL);
      bool eager = atomic_exchange(&scav.eager, 0);
      gort__mcache_flush_empty(false);
      uint64_t bytes = release_now(eager ? -1 : gort__opts.scavdelay_ms * 1000000);
      atomic_fetch_add(&scav.cycles, 1);
      if (bytes != 0) trace("bg", bytes);
      bool more = scav.cycle_hook != NULL && scav.cycle_hook();
      VG_ENTER();  // the walk reads freed blocks' links: base/vg.h
      if (gort__gc_hooks.idle != NULL && gort__gc_hooks.idle()) more = true;
      VG_LEAVE();
      if (gort__mheap_unreleased_free_bytes() == 0 && !more) break;
    }
  }
  return NULL;
}

static void start_thread(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&scav.state, &expected, 1)) return;
  int err = gort__os_internal_thread(scavenger_main, NULL, 64 << 10);
  if (err != 0) atomic_store(&scav.state, 0);  // try again at the next wake-up
}

// Called by the page heap after every free, without its lock.
static void on_free(void) {
  if (!scav.enabled || atomic_load_explicit(&scav.suspended, memory_order_relaxed)) return;
  uint64_t idle = gort__mheap_unreleased_free_bytes();
  if (idle < WAKE_BYTES) return;
  int64_t limit = atomic_load_explicit(&scav.limit, memory_order_relaxed);
  if (limit != INT64_MAX && limit != LIMIT_UNREAD && heap_resident_bound() > (uint64_t)limit / 10 * 9)
    atomic_store(&scav.eager, 1);
  if (atomic_load_explicit(&scav.state, memory_order_relaxed) == 0) start_thread();
  if (atomic_exchange(&scav.wake, 1) == 0) gort__os_futex_wake(&scav.wake, 1);
}

// Called by the page heap before it grows, without its lock.
static void on_grow(uint64_t bytes) {
  int64_t limit = atomic_load_explicit(&scav.limit, memory_order_relaxed);
  if (limit == INT64_MAX || atomic_load_explicit(&scav.suspended, memory_order_relaxed)) return;
  uint64_t bound = heap_resident_bound() + bytes;
  if (limit == LIMIT_UNREAD) {
    if (bound < LIMIT_PROBE_BYTES) return;
    limit = limit_now();
    if (limit == INT64_MAX) return;
  }
  if (bound <= (uint64_t)limit) return;
  atomic_fetch_add(&scav.limit_events, 1);
  gort__mcache_flush_empty(false);
  uint64_t got = release_up_to(bound - (uint64_t)limit, -1);
  if (got != 0) trace("limit", got);
}

// Called by the page heap after an allocation took released pages,
// without its lock: at every span carved from fresh pages too (never
// touched counts as released), so the test costs a few loads, not the
// heap lock. Past the limit by more than RECOMMIT_SLACK, it releases
// the excess, as far as free pages allow: finding them walks the free
// spans under the heap lock, so a heap held past the limit by its live
// objects pays one walk per RECOMMIT_SLACK recommitted, not one per span;
// and nothing when no free page is left to release. Spans of any age
// since their free (min age 0; -1 would add those never used, which have
// nothing to release). The limit is not read
// here for the first time: growth reads it (on_grow), and a heap that
// never grew past LIMIT_PROBE_BYTES has little to recommit.
static void on_recommit(void) {
  int64_t limit = atomic_load_explicit(&scav.limit, memory_order_relaxed);
  if (limit == INT64_MAX || limit == LIMIT_UNREAD || atomic_load_explicit(&scav.suspended, memory_order_relaxed))
    return;
  uint64_t bound = gort__mheap_resident_hint() + gort__persistent_sys_bytes();
  if (bound <= (uint64_t)limit + RECOMMIT_SLACK) return;
  uint64_t idle = gort__mheap_unreleased_free_bytes();
  if (idle == 0) return;
  uint64_t want = bound - (uint64_t)limit;
  atomic_fetch_add(&scav.limit_events, 1);
  uint64_t got = release_up_to(want < idle ? want : idle, 0);
  if (got != 0) trace("limit", got);
}

void gort__scavenger_init(void) {
  scav.enabled = gort__opts.scavenge != 0;
  atomic_store(&scav.limit_explicit, gort__opts.memlimit_set);
  atomic_store(&scav.limit, gort__opts.memlimit_set ? gort__opts.memlimit : LIMIT_UNREAD);
  gort__mheap_set_free_hook(on_free);
  gort__mheap_set_grow_hook(on_grow);
  gort__mheap_set_recommit_hook(on_recommit);
}

uint64_t gort__scavenger_free_os_memory(void) {
  gort__start_ensure();
  atomic_fetch_add(&scav.forced, 1);
  VG_ENTER();  // links written into freed blocks: base/vg.h
  if (gort__gc_hooks.reclaim != NULL) gort__gc_hooks.reclaim();
  gort__mcache_flush_empty(true);
  VG_LEAVE();
  uint64_t got = release_now(-1);
  trace("forced", got);
  return got;
}

void gort_free_os_memory(void) { gort__scavenger_free_os_memory(); }

int64_t gort_set_memory_limit(int64_t bytes) {
  gort__start_ensure();
  int64_t old = limit_now();
  if (bytes < 0) return old;
  // The flag goes up before the limit it describes (see limit_is_cgroups).
  atomic_store(&scav.limit_explicit, true);
  old = atomic_exchange(&scav.limit, bytes);
  uint64_t bound = heap_resident_bound();
  if (bound > (uint64_t)bytes) {
    gort__mcache_flush_empty(false);
    release_up_to(bound - (uint64_t)bytes, -1);
  }
  return old;
}

void gort__scavenger_stats(gort_scavenger_stats_t *out) {
  out->cycles = atomic_load(&scav.cycles);
  out->released_bytes = atomic_load(&scav.released);
  out->forced = atomic_load(&scav.forced);
  out->limit_events = atomic_load(&scav.limit_events);
  out->memory_limit = limit_now();
  out->running = atomic_load(&scav.state);
}

int64_t gort__scavenger_memory_limit(void) { return limit_now(); }

void gort__scavenger_after_fork_child(void) {
  gort__os_cgroup_after_fork_child();  // a read may have been in flight
  atomic_store(&scav.state, 0);
  atomic_store(&scav.wake, 0);
}

void gort__scavenger_suspend(int on) { atomic_store(&scav.suspended, on); }

void gort__scavenger_set_cycle_hook(bool (*fn)(void)) { scav.cycle_hook = fn; }

void gort__scavenger_wake(void) {
  if (!scav.enabled || atomic_load_explicit(&scav.suspended, memory_order_relaxed)) return;
  if (atomic_load_explicit(&scav.state, memory_order_relaxed) == 0) start_thread();
  if (atomic_exchange(&scav.wake, 1) == 0) gort__os_futex_wake(&scav.wake, 1);
}

// The limit first, then the flag: a limit the program set is visible only
// after its flag (gort_set_memory_limit), so it is never taken for the
// cgroup's. The flag only ever goes up, so racing first reads of the
// cgroup's limit cannot lower it either.
bool gort__scavenger_limit_is_cgroups(void) {
  int64_t limit = atomic_load_explicit(&scav.limit, memory_order_acquire);  // pairs with the exchange
  if (limit == LIMIT_UNREAD) limit = limit_now();
  if (limit == INT64_MAX) return false;
  return !atomic_load(&scav.limit_explicit);
}
