// Garbage collector (Go: mgc.go, mgcpacer.go; bdwgc for what C needs).
//
// gort's collector is a tri-color mark-sweep collector with conservative
// roots, in the page heap that malloc uses, on spans of its own span
// classes (the scanned ones in pages of their own: dirty.c).
// It marks concurrently with the program where the kernel can tell which
// pages the program wrote (dirty.c), else with the world stopped, in
// parallel on every usable CPU; it sweeps concurrently with the program.
// Its parts:
//   malloc_gc.c  allocation: span classes, thread caches, typed layouts,
//                the central lists, black allocation during a mark
//   tiny.c       the tiny allocator: noscan objects under 16 bytes, several
//                to a block, each still freed and measured on its own
//   stw.c        threads: registration, the stop signal, no-stop regions
//   mgcmark.c    roots, the gray queue, parallel marking, assists, the
//                rescan of written pages, checkmark
//   dirty.c      which heap pages the program wrote (userfaultfd, or
//                mprotect and a SIGSEGV handler: dirty_mprotect.c)
//   barrier.c    the explicit write barrier and barriered objects, whose
//                pages are never tracked
//   mgcsweep.c   lazy and background sweeping
//   mgclimit.c   the collector's CPU limit: past half of the program's
//                time, assists and hard-goal waits are skipped
//   finalizer.c  finalizers and weak pointers
//
// Concurrent marking (Boehm, Demers and Shenker's "mostly parallel" mark;
// C has no compiler to insert Go's write barrier, so the kernel's record
// of written pages stands in for it):
//   1. The thread whose allocation reached the trigger takes the cycle
//      lock and, if the last cycle's part before its first stop took over
//      a millisecond, wakes the background worker for it (else, and in
//      gort_gc_collect, it does it itself; the first cycle starts the
//      collector's threads on a thread of its own: first_cycle_main),
//      which reads the loaded
//      objects' segments, finishes the last sweep and protects the heap's
//      pages (dirty.c: arming before the stop is only conservative), the
//      program still running.
//   2. First stop: sweep the few spans left, take every thread's spans
//      back (caches refill afterwards, so everything they hand out from
//      now on is allocated black: malloc_gc.c marks a span's free slots
//      when a cache takes it), rotate the pools, mark the roots into the
//      gray queue. Restart; wake the background worker.
//   3. The worker drains the queue while the program runs (alone: on 2
//      cores a second marker would leave the program none). Allocating
//      threads past the trigger assist, scanning a bounded number of
//      objects for at most 0.25 ms in a no-stop region; past the goal by
//      a tenth they help or wait in slices of 0.5 ms, and past it by a
//      sixteenth more they wait for the cycle's end (Go's hard goal;
//      "assist", below).
//   4. Pre-cleaning: the worker collects the pages written so far (one
//      ioctl gets and re-protects them), rescans the marked objects on
//      them (only their words on those pages; typed ones through their
//      layouts), drains, and repeats until a round finds few pages and is
//      quick, so that few pages can have been written since.
//   5. Final stop (by the worker): take the caches' spans back, rescan
//      every root (stacks and registers of every thread, every goroutine
//      stack, segments, registered ranges, uncollectable objects, the
//      finalizer queue), take the objects the write barrier shaded
//      (barrier.c) and rescan the last written pages, drain with every
//      worker, the overflow pass, gccheckmark; finalizers and weak
//      pointers; a new sweep generation; the next goal and trigger.
//      Restart; unprotect the heap; wake the sweeper and the finalizers.
// Why it is enough: at the final stop every marked object was scanned
// after its last write, or its page is written and rescanned now, or it
// is barriered and what was stored into it was shaded then; the
// roots are all rescanned; so the drain that follows closes the marked
// set over everything reachable. The stops last about the roots plus the
// last written pages: 0.1-0.7 ms on GCBench and binary-trees.
//
// Without tracking (GORT_DEBUG=gcdirty=none, or a kernel that refuses) a
// cycle is one stop (gort__gc_collect, on the allocating thread or in
// gort_gc_collect):
//   1. Take the cycle lock; read the loaded objects' segments (the loader's
//      lock is taken here, never with the world stopped); pause the
//      background sweeper and finish the last cycle's sweep, the program
//      still running.
//   2. Stop the world (stw.c). No stopped thread holds a gort lock or is
//      midway through its cache.
//   3. Sweep the few spans left unswept (the mark bits must be clear) and
//      take every thread's collected spans back (malloc_gc.c), so that no
//      span is cached. (A thread's tiny blocks stay, as roots: tiny.c.)
//   4. Mark from the roots, in parallel (mgcmark.c); gccheckmark marks
//      again alone and compares.
//   5. Finalizers and weak pointers (finalizer.c).
//   6. Every collected span becomes unswept (a new sweep generation); set
//      the next goal; restart the world; wake the sweeper and the
//      finalizer thread.
// MemStats' PauseNs and gctrace report the stops' sum per cycle.
//
// Invariants:
//   - A collected slot is allocated iff its live bit is set (live bits are
//     the allocation bits); mark bits are clear outside a cycle's mark and
//     on every swept span, but for the slots of small objects gort_free'd
//     and not yet taken back from their span's remote list (see "The live
//     count" below). During a concurrent mark a free slot of a span a cache
//     took may be marked (allocation black): the sweep keeps live & mark,
//     so such a slot stays free.
//   - gort__gc_marking changes only with the world stopped, so a no-stop
//     region sees one value throughout.
//   - Between cycles no collected span is written by two threads: a cached
//     span by its cache's thread only, an uncached one by whoever took it
//     off its central list.
//   - Nothing reachable is freed: the roots are every registered thread's
//     stack and static TLS, the writable segments of loaded objects,
//     registered ranges, uncollectable objects and the finalizer queue;
//     memory from malloc is not scanned (include/gort/gc.h says so).
//
// Pacing (Go's GOGC): the next cycle starts when the live count
// (gort__gc_heap_live, below) reaches marked x (1 + GORT_GC/100), at least
// 4 MiB, and below the soft memory limit less what malloc uses. The check
// is on the allocation slow path, before any no-stop region, so a cycle
// never starts with a gort lock held or inside a signal handler.
//
// The live count: the bytes of the collected objects that survived the
// last mark or were allocated since, and of the free blocks caches hold
// (a cache's refill adds the blocks it takes, a flush subtracts those it
// did not hand out; a large object is added when made). Every free
// subtracts what an allocation added, so the count must hold every object
// a free can reach; it is exact, and never goes below zero:
//   1. A cycle's mark counts each object whose mark bit it sets, once (an
//      atomic OR decides who counts it): what the roots reach, every live
//      uncollectable object (a root, never reached by a pointer, so the
//      roots' scan sets and counts its bit), and what the finalizers keep
//      for one more cycle (counted after finalizer.c marked it). With the
//      world stopped for the whole mark, the count becomes that sum.
//   2. An explicit free (gort_free, realloc; gort__gc_freed) subtracts the
//      object's bytes and sets its mark bit, in one no-stop region. The
//      bit stops a later mark from counting a small object that is freed
//      but still on its span's remote list, live bit set (a stale pointer
//      on a stack reaches it); the slot's bit is cleared when it is taken
//      back outside a mark (gort__gc_collect_frees).
//   3. A concurrent cycle ends with the count at marked + (count now -
//      count at the first stop) + the bytes freed during the mark whose
//      mark bit was still clear. The difference is what was allocated
//      black less what was freed meanwhile: an object freed after the mark
//      counted it cancels out, and one freed before (its free set the bit,
//      so the mark never counts it) took its bytes from the difference
//      only, so they are added back.
// Where the count can be off, it is high, never low: a free that sets a
// small object's bit just before the sweep of its span clears the bits,
// with the push onto the span's remote list just after the sweep took
// that list, leaves a freed object with a clear bit, which the next mark
// counts if a stale pointer reaches it (too much by one object, until the
// cycle after). A program that frees an object the collector found
// unreachable (its only pointer hidden from the collector) is using freed
// memory; that the count cannot hold.
// Each of the three once went missing (uncollectable objects, the
// finalizers' objects counted a cycle late, frees during a mark taken
// from the black bytes), and freeing such objects later wrapped the count
// below zero: gctrace printed 17592186044415 MB and every allocation
// started a cycle.
//
// Pacing in a concurrent cycle: the trigger is part of the way from the
// marked bytes to the goal (85% at first, then between 85% and 95% as the
// pacer finds how late the marks allow: "pace", below), so that the mark
// runs while the program allocates the rest. The bytes allocated black during the mark count in
// the heap's live bytes but not in the next goal. Go counts them in both,
// and so did gort on 2026-12-03, for a day: GCBench ran 54 cycles instead
// of 61, binary-trees 115 instead of 130, GCBench's CPU 11% lower; but a
// churning program's black bytes are mostly garbage by the next cycle,
// and the goal grew with how long its marks took. A thread allocating
// 1.7 GB/s beside 200 MiB of list nodes peaked at 530 MiB of HeapInuse
// instead of 434, test_gc_pacing's 8 MiB live heap passed three times
// its size, and a reviewer's programs with large noscan garbage reached
// 3.7-4.5x their live heap instead of 2.4x. A goal that follows what the
// program keeps is worth more here than a tenth of GCBench's CPU.
//
// Where a concurrent cycle's CPU goes (gctrace's cpu parts: the first
// stop, assists/background, the final stop). On the allocation-bound
// benchmarks the program, not the worker, marks most. A trigger at 85%
// leaves 15% of the growth for a mark that the worker alone finishes only after
// the program has allocated more than that, so the assists are what keeps
// the heap at its goal. Until 2026-12-02 an assist scanned one cold object
// at a time, without the worker's prefetching (mgcmark.c, inflight_t):
// GCBench's program assisted about 8 ms a cycle, binary-trees' 15. Now,
// with the write barrier (no page faults), GCBench's assists take 3 ms
// and its worker 2 of a mark that takes 2.2 ms stopped; binary-trees'
// 9.5-10 and 4-7 ms of one that takes 12. What the mark costs above its
// stopped time is two threads on one graph with atomic marks (a locked
// OR per object on a word the other core may hold: half of mark_value's
// samples), and with uffd the tracking's faults (dirty.c). Tried and dropped:
// assists charged only the mark's debt (the work due for the heap's
// growth so far less what everyone scanned, Go's credit): no gain on
// GCBench and binary-trees, and the 1 GiB cache's heap then reached its
// goal during pre-cleaning, whose rounds stopped early, leaving 800-2300
// pages and 9-11 ms to its final stop; the worker at idle priority
// (SCHED_IDLE) during the mark: the 100 us ticker's longest gap went from
// 3.7-6.0 to 3.1-3.5 ms on GCBench, inside this machine's noise (the same
// ticker beside plain malloc sees 0.7-3.4 ms), at the risk of a worker
// starved by a program with more running threads than CPUs.
//
// Giving way. The collector's threads that work beside the program (the
// worker's concurrent drain, its pre-cleaning rescans and its disarm, the
// background sweeper) give their CPU to any thread the kernel has waiting
// for it every GC_GIVE_WAY_NS of their work (gort__gc_give_way: one clock
// read, and a sched_yield, which returns at once when nothing waits). The
// kernel does not do it for them: its scheduler (EEVDF, Linux 6.6 and
// later) lets a running thread finish its slice before a thread it wakes
// runs, and on 2 cores with the program's thread on one, a program thread
// that wakes (the 100 us ticker of bench/gc) waited 3-5 ms behind the
// worker or the sweeper (perf sched timehist on the 256 MiB cache: the
// worker scanning the cache's table, one object of megabytes, in one go;
// the sweeper sweeping half a gigabyte after a cycle; the worker's disarm
// unprotecting it, 2 ms of system calls). A large object is scanned in
// SCAN_PIECE pieces for that (mgcmark.c); stops never give way (their
// drains have give_way 0), nor do helpers and assists, which run in
// stops or for the program. Measured on that cache, 6 interleaved runs:
// the ticker's longest gap, median 6.3 ms before (4.6-8.8) and 2.7 after
// (1.1-6.0); binary-trees' 2.4-3.7 ms before, 0.5-1.8 after (3 runs).
// What is left, traced again: the ticker queued on the CPU of the
// program's own thread, which the kernel lets finish its slice (up to 4
// ms; a thread of the collector that yields on the other CPU does not
// pull it over), and the host (its kdamond thread, a vCPU idle for 2-4 ms
// with the ticker queued on it). SCHED_IDLE for the collector's threads
// would let the kernel place a waking thread on their CPU, but an
// unprivileged thread cannot leave SCHED_IDLE again (RLIMIT_NICE), and a
// worker starved for good would leave every cycle to the assists. The
// CPU cost is a system call per quarter millisecond of the collector's
// background work, within the runs' noise (GCBench 0.433 s before, 0.430
// after, 7 interleaved runs, medians). What giving way changes besides:
// a pre-cleaning round slowed by it is likelier to be followed by another
// (a round's length, which decides, is wall time, given away or not: it is
// the program's time to write pages that the final stop must rescan, and
// the stop's length is the target); the CPU limiter still charges the mark a quarter of the CPUs for its wall time
// (mgclimit.c), given away or not, so it errs towards limiting; and each
// yield puts the worker behind the threads waiting for its CPU for a
// slice, so with more running threads than CPUs the worker marks less
// and the program's assists more, as Go's would with its Ps busy. A
// disarm does not give way while a thread spins for dirty.c's lock, nor
// the sweeper once a cycle has asked it to pause.
//
// Rejected: a mark that runs in the page heap's lock (simpler, but every
// thread's malloc would wait for the mark); owners sweeping their own
// cached spans (a thread that stops allocating would never sweep; see
// malloc_gc.c); mprotect-based dirty bits as the default (a signal per
// first write, and system calls that write into the heap fail with EFAULT
// instead of faulting: dirty.c keeps them as the fallback to userfaultfd);
// rescanning whole objects on a written page (a large array would be
// rescanned whole for one store).

#include <stdio.h>
#include <time.h>

#include "../alloc/mheap.h"
#include "../alloc/scavenger.h"
#include "../base/options.h"
#include "../base/vg.h"
#include "../os/os.h"
#include "gc.h"
#include "gort/gc.h"
#include "gort/alloc.h"

void gort__gc_give_way(int64_t *next) {
  if (*next == 0 || gort__nanotime() < *next) return;
  gort__os_yield();
  *next = gort__nanotime() + GC_GIVE_WAY_NS;
}

_Atomic uint64_t gort__gc_heap_live;
_Atomic uint64_t gort__gc_trigger = 4 << 20;
_Atomic uint32_t gort__gc_sweepgen = 2;
bool gort__gc_stress, gort__gc_checkmark;

#define MIN_HEAP (4ULL << 20)

static bool active;  // the first cycle started the collector's threads; under the cycle lock
static bool fork_stopped;  // fork_prepare stopped the world (under the cycle lock)

static struct {
  _Atomic int percent;
  gc_figures_t fig;
  int64_t start_ns;       // process start, for gctrace's @T
  uint64_t cpu_ns_total;  // time spent in stops, for the CPU fraction
  bool inited;
} gc = {.percent = 100};

static _Atomic uint32_t cycle_lock;

// Guards gc.fig against torn reads: readers (MemStats, metrics) must not
// wait for a concurrent cycle, which holds the cycle lock for its whole
// length (seconds with a large heap). Held inside a no-stop region, as
// every gort lock is: the cycle writes the figures with the world stopped,
// and a reader stopped while holding the lock hung it for ever.
static _Atomic uint32_t fig_lock;
static void fig_take(void) {
  nostop_enter();
  for (unsigned k = 0; atomic_exchange_explicit(&fig_lock, 1, memory_order_acquire) != 0;) gort__spin_turn(&k);
}
static void fig_drop(void) {
  atomic_store_explicit(&fig_lock, 0, memory_order_release);
  nostop_exit();
}

// One stop of the world into the pause histogram (fig_lock held).
static void record_pause(int64_t ns) {
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  int b = us == 0 ? 0 : 64 - __builtin_clzll(us);  // [2^(b-1), 2^b) us
  if (b > 31) b = 31;
  gc.fig.pause_hist[b]++;
  gort__gc_limiter_charge_stop(ns);
}

_Atomic bool gort__gc_marking;
static _Atomic uint64_t goal_now;    // gc.fig.next_gc, for the assists' lock-free read
static _Atomic uint64_t scan_now;    // of gc.fig.heap_marked, the bytes the mark scanned (the assists' work)
static _Atomic uint32_t trigger_permille = 850;  // the pacer's (pace, trigger_for)

// The concurrent cycle's state, handed from the thread that runs the first
// stop to the background worker, which runs the rest and drops the cycle
// lock.
static struct {
  _Atomic bool on;            // dirty tracking works: cycles are concurrent
  _Atomic uint32_t request;   // bumped to start the worker on a cycle
  _Atomic bool start_pending; // the worker runs the first stop too (the pacer's cycles)
  _Atomic int64_t prestop_ns; // the last cycle's time before its first stop (sweep, protect)
  _Atomic uint32_t finished;  // cycles finished (futex for gort_gc_collect)
  uint32_t started;           // cycles started (under the cycle lock)
  bool forced;
  uint64_t before, live_at_start;
  _Atomic uint64_t freed_unmarked;  // freed during the mark, their bits clear (gort__gc_freed)
  int64_t t0, t_restart1, stw1_ns;
  int64_t stw1_parts[3];  // the first stop's: stopping, sweep and flush, roots (gctrace=2)
  uint64_t root_objects;      // marked from the roots in the first stop
  uint32_t dirty_gen;         // this cycle's arming of the dirty tracking
  int64_t t_swept;            // the first stop's thread finished the last sweep
  _Atomic uint32_t waits;     // slow paths that waited past the hard goal (gctrace=2)
  _Atomic int64_t longest_wait;
  _Atomic uint64_t past_hard; // bytes allocated past the hard goal in this cycle
  _Atomic bool waited;        // a slow path waited past the hard goal in this cycle (the pacer's)
  _Atomic int64_t assist_ns;  // time allocating threads spent assisting this cycle's mark
} conc;

// The pools' rotation (gort__gc_set_pool_hooks); NULL until pools start.
static void (*pool_stopped)(void), (*pool_restarted)(void);

// A program thread's waits for a cycle are blocking calls
// (gort__stw_program_wait_ns): the running cycle's stops hold it there
// without a signal while the program has no signal handlers of its own.

static void cycle_lock_take(void) {
  uint32_t z = 0;
  if (atomic_compare_exchange_strong(&cycle_lock, &z, 1)) return;
  while (atomic_exchange(&cycle_lock, 2) != 0) gort__stw_program_wait_ns(&cycle_lock, 2, -1);
}

static bool cycle_lock_try(void) {
  uint32_t z = 0;
  return atomic_compare_exchange_strong(&cycle_lock, &z, 1);
}

static void cycle_lock_drop(void) {
  if (atomic_exchange(&cycle_lock, 0) == 2) gort__os_futex_wake(&cycle_lock, 1);
}

bool gort__gc_enabled(void) { return atomic_load_explicit(&gc.percent, memory_order_relaxed) >= 0; }

// The calling thread's CPU time: the background worker's share of a cycle.
static int64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t unix_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// The goal GORT_GC alone sets.
static uint64_t goal_unlimited(uint64_t marked) {
  int pct = atomic_load(&gc.percent);
  uint64_t goal = marked + marked / 100 * (uint64_t)(pct < 0 ? 0 : pct);
  return goal < MIN_HEAP ? MIN_HEAP : goal;
}

// The next goal from what the mark found live: GORT_GC's, or less if
// the memory limit leaves less.
static uint64_t goal_after(uint64_t marked) {
  uint64_t goal = goal_unlimited(marked);
  int64_t limit = gort__scavenger_memory_limit();
  if (limit != INT64_MAX) {
    heap_stats_t hs;
    gort__mheap_read_stats(&hs);
    // What the limit leaves to collected objects: below it, with what the
    // heap holds besides them.
    uint64_t other = hs.inuse_bytes > marked ? hs.inuse_bytes - marked : 0;
    uint64_t room = (uint64_t)limit / 20 * 19 > other ? (uint64_t)limit / 20 * 19 - other : 0;
    if (room < goal) goal = room > marked + (1 << 20) ? room : marked + (1 << 20);
  }
  return goal;
}


static uint64_t trigger_for(uint64_t marked, uint64_t goal);

// Milliseconds as "M.mmm" into buf.
static const char *ms3(char *buf, size_t n, int64_t ns) {
  if (ns < 0) ns = 0;
  gort__snprint(buf, n, "%lld.%03lld", (long long)(ns / 1000000), (long long)(ns / 1000 % 1000));
  return buf;
}

// Go's gctrace line. clock: the first stop (with the sweep's termination),
// the concurrent mark, the final stop; cpu: the same, the concurrent part
// split as Go's (assist/background/idle), idle always 0 here.
// A finished cycle into the figures (fig_lock held), all but NumGC, which
// each caller advances when the cycle may count as done. cpu_ns: the CPU
// the cycle used; ncpu: the CPUs GCCPUFraction is a fraction of.
static void record_cycle(uint64_t pause, bool forced, uint64_t goal, uint64_t marked, uint64_t cpu_ns,
                         int64_t t_end, long ncpu) {
  gc.fig.pause_ns[gc.fig.num_gc % 256] = pause;
  if (forced) gc.fig.num_forced_gc++;
  gc.fig.pause_total_ns += pause;
  gc.fig.last_gc_unix_ns = (uint64_t)unix_ns();
  gc.fig.next_gc = goal;
  atomic_store_explicit(&goal_now, goal, memory_order_relaxed);
  gc.fig.heap_marked = marked;
  atomic_store_explicit(&scan_now, gort__gc_mark_scan_bytes(), memory_order_relaxed);
  gc.cpu_ns_total += cpu_ns;
  int64_t wall = t_end - gc.start_ns;
  gc.fig.cpu_fraction = wall > 0 ? (double)gc.cpu_ns_total / ((double)wall * (double)ncpu) : 0;
}

static void trace_line(uint32_t n, uint64_t before, uint64_t after, uint64_t marked, int64_t stw1,
                       int64_t concurrent, int64_t stw2, int procs2, int64_t assist_ns, int64_t bg_ns) {
  char a[32], b[32], c[32], d[32], e[32], f[32];
  int64_t since = gort__nanotime() - gc.start_ns;
  gort__print("gc %u @%lld.%03llds %d%%: %s+%s+%s ms clock, %s+%s/%s/0+%s ms cpu, "
              "%llu->%llu->%llu MB, %llu MB goal, %d P%s\n",
              n, (long long)(since / 1000000000), (long long)(since / 1000000 % 1000),
              (int)(gc.fig.cpu_fraction * 100), ms3(a, sizeof a, stw1), ms3(b, sizeof b, concurrent),
              ms3(c, sizeof c, stw2), a, ms3(e, sizeof e, assist_ns), ms3(f, sizeof f, bg_ns),
              ms3(d, sizeof d, stw2 * procs2),
              (unsigned long long)(before >> 20), (unsigned long long)(after >> 20),
              (unsigned long long)(marked >> 20), (unsigned long long)(gc.fig.next_gc >> 20),
              gort__gc_mark_workers(), conc.forced ? " (forced)" : "");
}

// The parts a program that never collects should not pay for: the stop
// signal's handler, the mark workers, the sweeper. At the first cycle.
static void *worker_main(void *arg);

static void activate(void) {
  if (active) return;
  active = true;
  // The memory limit, which goal_after reads in the stops: read from the
  // cgroup now, the first time, rather than in a stop.
  gort__scavenger_memory_limit();
  gort__stw_init();
  gort__gc_mark_init();
  gort__gc_sweep_init();
  conc.on = gort__dirty_enabled() &&
            gort__stw_internal_thread(worker_main, (void *)(uintptr_t)atomic_load(&conc.request)) == 0;
  if (gort__opts.gctrace) {
    uint64_t fault, reprotect;
    gort__dirty_prices(&fault, &reprotect);
    if (fault != 0)
      gort__print("gc: %s marking, dirty pages from %s (a first write to a protected page %llu.%llu us, "
                  "unprotecting and protecting again %llu.%llu us a page)\n",
                  conc.on ? "concurrent" : "stop-the-world", gort__dirty_name(),
                  (unsigned long long)(fault / 1000), (unsigned long long)(fault % 1000 / 100),
                  (unsigned long long)(reprotect / 1000), (unsigned long long)(reprotect % 1000 / 100));
    else
      gort__print("gc: %s marking, dirty pages from %s\n", conc.on ? "concurrent" : "stop-the-world",
                  gort__dirty_name());
  }
}

static void cycle(void *arg);
static void cycle_start(void *arg);

// A new concurrent cycle's counts of what its program did past the hard
// goal, zeroed as soon as its thread holds the cycle lock: a program that
// waits before the first stop (the worker runs it late on a loaded
// machine) waits for this cycle, and the pacer must see it (zeroed in the
// first stop, such a wait of 140-700 ms was erased and the trigger rose).
static void cycle_counts_reset(void) {
  atomic_store(&conc.past_hard, 0);
  atomic_store(&conc.waited, false);
}

// The pacer's first cycle, on a thread of its own: activate() starts the
// collector's threads and opens the dirty tracking, 2.5-3.7 ms on our VMs
// (thread creations are slow there), which on the allocating thread was
// the longest gap GCBench's and binary-trees' programs saw in a whole run
// (bench/gc, GCB_GAPS=1). The program allocates on meanwhile: before the
// first cycle there is no goal to hold it at. The cycle lock, taken by the
// thread that reached the trigger, is this thread's to hand on: to cycle()
// without dirty tracking; with it, back to the program, whose next
// allocation slow path (past the trigger already) starts the cycle as every
// later one starts, on that thread. Until 2026-12-06 the worker started
// it, protecting the heap while the program faulted on the pages it
// protected, then asking a thread inside such a fault to stop: GCBench's
// first stop took 0.2-0.9 ms in 3 of 40 runs (0.02-0.11 in the others).
// A program that allocates no more (one that waits for a finalizer) would
// then never see its first cycle (a helper's hostile test found it), so
// after FIRST_CYCLE_WAIT_NS without one this thread has the worker start it,
// as before: the program is not allocating then, and not faulting either.
#define FIRST_CYCLE_WAIT_NS 1000000
static void start_on_worker(void);

static void *first_cycle_main(void *arg) {
  (void)arg;
  activate();
  bool forced = false;
  if (!conc.on) {
    VG_ENTER();  // memcheck builds: base/vg.h
    cycle(&forced);  // as the worker's: this thread is not registered, its stack no root
    VG_LEAVE();
    return NULL;
  }
  uint32_t started = conc.started;
  cycle_lock_drop();
  gort__os_sleep_ns(FIRST_CYCLE_WAIT_NS);
  if (!cycle_lock_try()) return NULL;  // the program's cycle runs
  if (conc.started != started) {
    cycle_lock_drop();
    return NULL;
  }
  ++conc.started;
  cycle_counts_reset();
  start_on_worker();  // the worker drops the cycle lock at the cycle's end
  return NULL;
}

// The cycle's first stop, and the rest, on the worker (the cycle lock
// held, handed on to it).
static void start_on_worker(void) {
  atomic_store(&conc.start_pending, true);
  atomic_fetch_add(&conc.request, 1);
  gort__os_futex_wake(&conc.request, 1);
}

// Past this, the worker starts the pacer's next cycle (collect, below).
#define START_INLINE_MAX_NS 1000000

// Runs a cycle, or (the pacer's call, a cycle already running) helps it.
static void collect(bool forced) {
  gort__stw_register_self();
  if (forced) {
    cycle_lock_take();
  } else if (!cycle_lock_try()) {
    return;  // a cycle runs: the pacer's assist (gort__gc_maybe_collect) helps it
  }
  if (!forced && !active && gort__stw_internal_thread(first_cycle_main, NULL) == 0) return;
  activate();
  if (!conc.on) {
    gort__stw_run_recorded(cycle, &forced);
    return;
  }
  uint32_t mine = ++conc.started;
  cycle_counts_reset();
  if (!forced && atomic_load_explicit(&conc.prestop_ns, memory_order_relaxed) > START_INLINE_MAX_NS) {
    // The pacer's cycle, when what comes before its first stop (the last
    // sweep, protecting the heap) took long last time: the worker runs it,
    // and the first stop too. On this thread it is a gap in the program
    // (12-17 ms with 2 GiB); on the worker it is not, and the program
    // allocates on towards the goal meanwhile, with the trigger's
    // headroom. Not always: protecting pages that a running thread writes
    // costs that thread's core an IPI per flush, and binary-trees (a 35
    // MiB heap, 0.1 ms to protect) used 15% more CPU with every start on
    // the worker.
    start_on_worker();
    return;
  }
  gort__stw_run_recorded(cycle_start, &forced);
  if (forced)
    for (uint32_t f; (int32_t)((f = atomic_load(&conc.finished)) - mine) < 0;)
      gort__stw_program_wait_ns(&conc.finished, f, -1);
}

// The stop-the-world cycle (no dirty tracking). Called with the cycle lock
// held; drops it.
static void cycle(void *arg) {
  bool forced = *(bool *)arg;
  int64_t t0 = gort__nanotime();
  uint64_t before = atomic_load(&gort__gc_heap_live);
  gort__gc_sweep_pause();
  // Sweep what the background sweeper left while the program runs: only
  // spans swept since (none, or a few) remain for the stop.
  gort__gc_sweep_finish();
  gort__gc_mark_prepare();  // the loaded objects' segments: before the stop, not in its figures
  // The stop starts here: the sweep before it ran beside the program (as
  // a concurrent cycle's first stop counts it; counted in the stop, it
  // was every CPU's time for the CPU limit, a reviewer's find).
  int64_t t_stop = gort__nanotime();
  gort__gc_limiter_charge(t_stop - t0);
  gort__gc_stop_the_world();
  int64_t t_stopped = gort__nanotime();
  gort__gc_sweep_finish();
  gort__gc_flush_caches();
  // Before the mark: the objects the pools drop now are no longer roots,
  // so this cycle frees them (Go clears its pools at the same point).
  if (pool_stopped != NULL) pool_stopped();
  int64_t t_mark = gort__nanotime();
  gort__gc_mark(gc.fig.heap_marked);
  gort__gc_finalizers_mark();
  uint64_t marked = gort__gc_mark_bytes();  // the finalizers' objects included
  atomic_fetch_add(&gort__gc_sweepgen, 2);
  gort__gc_sweep_begin();
  atomic_store(&gort__gc_heap_live, marked);
  uint64_t goal = goal_after(marked);
  atomic_store(&gort__gc_trigger, trigger_for(marked, goal));
  int64_t t_end = gort__nanotime();
  // Figures, with the world still stopped.
  uint64_t pause = (uint64_t)(t_end - t_stop);
  fig_take();
  record_pause(t_end - t_stop);
  record_cycle(pause, forced, goal, marked,
               (uint64_t)(t_end - t_mark) * (uint64_t)gort__gc_mark_workers() + (uint64_t)(t_mark - t0), t_end,
               gort__gc_mark_workers());
  gc.fig.num_gc++;
  if (gort__gc_limiter_cycle_reset()) gc.fig.limiter_last = gc.fig.num_gc;
  fig_drop();
  gort__stw_start();
  (void)t_stopped;
  gort__gc_sweep_resume();
  gort__gc_finalizers_wake();
  // Under the cycle lock: the next cycle may run on another thread (the
  // first one on its own, first_cycle_main).
  conc.forced = forced;
  if (gort__opts.gctrace)
    trace_line(gc.fig.num_gc, before, before, marked, t_mark - t0, 0, t_end - t_mark, gort__gc_mark_workers(), 0, 0);
  cycle_lock_drop();
  if (pool_restarted != NULL) pool_restarted();
}

// ---- the concurrent cycle -----------------------------------------------------------

// The trigger for the next cycle, from its goal: marking runs while the
// program allocates, so it starts before the goal (Go's trigger), at
// trigger_permille thousandths of the way from the marked bytes to the
// goal (pace, below); assists keep the heap near the goal if the program
// outruns the worker, and past the goal by a tenth it waits ("assist",
// below).
static uint64_t trigger_for(uint64_t marked, uint64_t goal) {
  if (!conc.on || goal <= marked) return goal;
  uint64_t permille = atomic_load_explicit(&trigger_permille, memory_order_relaxed);
  return marked + (goal - marked) / 1000 * permille;
}

// The pacer: where the next cycle starts, from how the last one ended.
// A program allocates about trigger/goal of the growth per cycle (the
// rest comes during the mark, black), so the later the trigger, the fewer
// cycles: at 95% of the way instead of 85%, binary-trees used 15% less
// CPU and GCBench 7% (at 30%, GCBench ran 84 cycles instead of 68 and
// used 13% more). Go aims its trigger so that the mark ends at the goal
// with the background workers alone; here the program's assists, which
// mark as fast as the worker, keep the heap at the goal whatever the
// trigger, and the cost of starting late is paid only when a mark cannot
// end before the hard goal (a tenth past the goal), where the program
// waits (slow marks: a large heap on a loaded machine, the gcstress
// mode, whose mutators stalled with the trigger fixed at 95%). So the
// trigger moves late while marks end without any allocation past the hard
// goal, a step of 2.5% a cycle, up to 95%; a cycle whose program
// allocated past the hard goal moves it back to 85%, where it was fixed
// before. Not earlier: with a floor of 60%, the 1 GiB cache under
// GORT_MEMLIMIT=1350MiB, whose heap sits at its goal and waits in every
// cycle wherever the trigger is, ran 204-225 cycles instead of 87-88 and
// used twice the CPU. And while the memory limit sets the goal, the
// trigger stays at 85%: moving, it made that run's cycles 56-114 and its
// mutator's longest gap 12-29 ms (9-10 fixed). Only cycles the trigger
// started count (not gort_gc_collect's).
#define TRIGGER_MIN 850
#define TRIGGER_MAX 950
#define TRIGGER_UP 25
static void pace(bool waited, bool limited) {
  uint32_t t = atomic_load_explicit(&trigger_permille, memory_order_relaxed);
  if (limited || waited) t = TRIGGER_MIN;
  else t = t + TRIGGER_UP < TRIGGER_MAX ? t + TRIGGER_UP : TRIGGER_MAX;
  atomic_store_explicit(&trigger_permille, t, memory_order_relaxed);
}

// The first stop, on the thread that starts the cycle (the cycle lock held;
// the worker drops it at the end).
static void cycle_start(void *arg) {
  conc.forced = *(bool *)arg;
  atomic_store(&conc.assist_ns, 0);
  conc.t0 = gort__nanotime();
  conc.before = atomic_load(&gort__gc_heap_live);
  gort__gc_sweep_pause();
  gort__gc_sweep_finish();
  conc.t_swept = gort__nanotime();
  // Protecting the heap before the stop is early, so only conservative: a
  // page written between here and the stop is rescanned for nothing.
  conc.dirty_gen = gort__dirty_arm();
  bool tracked = conc.dirty_gen != 0;
  gort__gc_mark_prepare();  // the loaded objects' segments: before the stop, not in its figures
  int64_t t_stop = gort__nanotime();
  atomic_store_explicit(&conc.prestop_ns, t_stop - conc.t0, memory_order_relaxed);
  gort__gc_limiter_charge(t_stop - conc.t0);
  gort__gc_stop_the_world();
  int64_t t_stopped = gort__nanotime();
  gort__gc_sweep_finish();
  gort__gc_flush_caches();
  if (pool_stopped != NULL) pool_stopped();
  conc.live_at_start = atomic_load(&gort__gc_heap_live);
  atomic_store(&conc.freed_unmarked, 0);
  atomic_store(&gort__gc_marking, true);
  int64_t t_flushed = gort__nanotime();
  conc.root_objects = gort__gc_mark_begin(gc.fig.heap_marked);
  int64_t t_end = gort__nanotime();
  conc.stw1_ns = t_end - t_stop;
  conc.stw1_parts[0] = t_stopped - t_stop;
  conc.stw1_parts[1] = t_flushed - t_stopped;
  conc.stw1_parts[2] = t_end - t_flushed;
  fig_take();
  record_pause(conc.stw1_ns);
  fig_drop();
  gort__stw_start();
  conc.t_restart1 = t_end;
  gort__gc_limiter_mark(true, t_end);
  if (!tracked && (gort__opts.gctrace || gort__opts.gcdirty != 0))
    gort__print("gc: dirty tracking failed; this cycle rescans every marked object in its final stop, and the next "
                "ones mark with the world stopped\n");
  atomic_fetch_add(&conc.request, 1);
  gort__os_futex_wake(&conc.request, 1);
  if (pool_restarted != NULL) pool_restarted();
}

// Pre-cleaning rounds stop when a round found this few written pages and
// took this little time (so that few pages were written since: the final
// stop rescans them, about 2 us a page), or after this many rounds (a
// program that writes faster than the worker cleans would otherwise keep
// it forever; the final stop then pays), or when the heap reached its goal
// (the program would soon wait for the cycle) and the last round was short.
// A large heap's page costs the final stop more (its words' mark bits are
// cold: 2-4 us a page on the 256 MiB cache with both workers, against
// under 1 on GCBench), so from PRECLEAN_LARGE_HEAP of live heap on the
// rounds go on down to PRECLEAN_PAGES_LARGE: the cache's final stop went
// from 42-72 pages (0.26-0.37 ms) to 24-36 (0.18-0.23); GCBench and
// binary-trees, where the lower bound cost binary-trees 3% of its CPU for
// no shorter stop, keep 128.
#define PRECLEAN_PAGES 128
#define PRECLEAN_PAGES_LARGE 32
#define PRECLEAN_LARGE_HEAP (64ULL << 20)
#define PRECLEAN_NS 500000
#define PRECLEAN_ROUNDS 32
#define PRECLEAN_GOAL_NS 1000000

// The concurrent part and the final stop, on the background worker.
static void cycle_finish(void) {
  int64_t cpu0 = thread_cpu_ns();
  gort__gc_mark_drain_concurrent();
  gort__gc_barrier_flush_now();  // what barriers shade now is traced by the rounds, not the stop
  uint64_t rescanned = 0, pages = 0;
  uint64_t few = gc.fig.heap_marked >= PRECLEAN_LARGE_HEAP ? PRECLEAN_PAGES_LARGE : PRECLEAN_PAGES;
  int rounds = 0;
  while (rounds < PRECLEAN_ROUNDS) {
    rounds++;
    int64_t t = gort__nanotime();
    if (!gort__gc_mark_rescan_dirty(&pages, true)) break;
    rescanned += pages;
    gort__gc_mark_drain_concurrent();
    // Wall time, what this worker gave away included ("Giving way"): it is
    // the program's time to write the pages the final stop must rescan.
    int64_t round_ns = gort__nanotime() - t;
    if (pages <= few && round_ns < PRECLEAN_NS) break;
    // Out of headroom: the program is about to wait for the cycle, and
    // another round costs it more than a final stop of about this round's
    // length would. Not when the round was long: its pages are about what
    // the final stop would find, and a stop holds every thread, where the
    // hard goal holds only the allocating ones, in slices until they pass
    // it by a sixteenth of the goal (assist, below). The 1 GiB cache
    // under GORT_MEMLIMIT=1350MiB, at its goal all the time, went to its
    // final stop after one round with 630 pages: a 59 ms stop.
    uint64_t goal = atomic_load_explicit(&goal_now, memory_order_relaxed);
    if (goal != 0 && atomic_load_explicit(&gort__gc_heap_live, memory_order_relaxed) >= goal &&
        round_ns < PRECLEAN_GOAL_NS)
      break;
  }
  gort__gc_mark_prepare();  // again: libraries loaded or unloaded during the mark
  int64_t bg_ns = thread_cpu_ns() - cpu0;
  uint64_t asked0, signalled0, asked1, signalled1, guests0 = gort__gc_mark_guests();
  gort__stw_stop_counts(&asked0, &signalled0);
  int64_t t_stop = gort__nanotime();
  gort__gc_limiter_mark(false, t_stop);
  gort__gc_mark_guest_arm(gc.fig.heap_marked);
  gort__gc_stop_the_world();
  int64_t t_stopped = gort__nanotime();
  gort__stw_stop_counts(&asked1, &signalled1);
  gort__gc_flush_caches();
  uint64_t now_live = atomic_load(&gort__gc_heap_live);
  uint64_t last_pages = 0;
  int64_t parts[3];
  int64_t t_flushed = gort__nanotime();
  gort__gc_mark_finish(gc.fig.heap_marked, &last_pages, parts);
  int64_t t_marked = gort__nanotime();
  atomic_store(&gort__gc_marking, false);
  gort__gc_finalizers_mark();
  uint64_t marked = gort__gc_mark_bytes();  // the finalizers' objects included
  atomic_fetch_add(&gort__gc_sweepgen, 2);
  gort__gc_sweep_begin();
  // What the caches took during the mark was allocated black: it counts as
  // live, as Go counts its black allocation in the marked bytes. The
  // difference may be "negative" (frees of objects the mark counted), so
  // it is added modulo 2^64: the sum is exact ("The live count", step 3).
  uint64_t live = marked + (now_live - conc.live_at_start) + atomic_load(&conc.freed_unmarked);
  if (GORT_DEBUG_LEVEL >= 2 && live > marked + now_live + atomic_load(&conc.freed_unmarked)) {
    gort__print("gc: live %llu = marked %llu + now %llu - at the first stop %llu + freed unmarked %llu\n",
                (unsigned long long)live, (unsigned long long)marked, (unsigned long long)now_live,
                (unsigned long long)conc.live_at_start, (unsigned long long)atomic_load(&conc.freed_unmarked));
    gort__throw("gc: the live count went below zero");
  }
  atomic_store(&gort__gc_heap_live, live);
  // The goal comes from what the mark traced: most of what was allocated
  // black in a churning program is already garbage, and counting it would
  // let the heap grow past GORT_GC's bound.
  uint64_t goal = goal_after(marked);
  if (!conc.forced)
    pace(atomic_load(&conc.waited) || atomic_load(&conc.past_hard) != 0, goal < goal_unlimited(marked));
  atomic_store(&gort__gc_trigger, trigger_for(marked, goal));
  int64_t t_end = gort__nanotime();
  int64_t stw2 = t_end - t_stop, concurrent = t_stop - conc.t_restart1;
  uint64_t pause = (uint64_t)(conc.stw1_ns + stw2);
  // The cycle counts as done (NumGC) only after its gctrace line: a
  // program that reads NumGC then finds the line written.
  fig_take();
  record_pause(stw2);
  uint32_t n = gc.fig.num_gc + 1;
  int procs2 = gort__gc_mark_workers();
  int64_t assist_ns = atomic_load(&conc.assist_ns);
  record_cycle(pause, conc.forced, goal, marked,
               (uint64_t)(conc.stw1_ns + assist_ns + bg_ns) + (uint64_t)stw2 * (uint64_t)procs2, t_end,
               gort__gc_cpus());
  gc.fig.dirty_pages += rescanned + last_pages;
  gc.fig.last_dirty_pages = rescanned + last_pages;
  bool limited = gort__gc_limiter_cycle_reset();
  if (limited) gc.fig.limiter_last = n;
  fig_drop();
  // In the stop, whose flush left every cache empty: the program's first
  // allocation after it takes the disarm before it writes a slot
  // (dirty.c, "Who unprotects"). A stopped thread never holds the
  // tracker's lock (the take runs in a no-stop region), as for the
  // collect above.
  uint32_t gen = conc.dirty_gen;
  bool handed = gort__dirty_disarm_hand_over(gen);
  gort__stw_start();
  gort__gc_sweep_resume();
  gort__gc_finalizers_wake();
  if (gort__opts.gctrace) trace_line(n, conc.before, now_live, live, conc.stw1_ns, concurrent, stw2, procs2, assist_ns, bg_ns);
  if (gort__opts.gctrace >= 2) {
    char a[32], b[32], c[32], d[32], e[32], f[32];
    char g1[32], g2[32], h[32];
    uint64_t s_present, s_written;
    const char *after = gort__dirty_sample(&s_present, &s_written);
    uint64_t p_fault, p_reprotect;
    gort__dirty_prices(&p_fault, &p_reprotect);
    gort__print("gc %u: before the first stop: the last sweep %s ms, counting and protecting the heap %s ms; since the last cycle "
                "%llu of %llu sampled pages written, so the heap stays %s after this one "
                "(a write fault %llu ns, unprotecting and protecting a page %llu ns)\n",
                n, ms3(g1, sizeof g1, conc.t_swept - conc.t0), ms3(g2, sizeof g2, conc.t_restart1 - conc.stw1_ns - conc.t_swept),
                (unsigned long long)s_written, (unsigned long long)s_present, after, (unsigned long long)p_fault,
                (unsigned long long)p_reprotect);
    gort__print("gc %u: %u slow paths waited past the hard goal, the longest %s ms (stops and descheduling included); "
                "the next cycle starts %u.%u%% of the way to its goal%s\n",
                n, atomic_exchange(&conc.waits, 0), ms3(a, sizeof a, atomic_exchange(&conc.longest_wait, 0)),
                atomic_load(&trigger_permille) / 10, atomic_load(&trigger_permille) % 10,
                limited ? "; the collector's CPU limit was on (assists and waits skipped)" : "");
    // The stop's part says how the threads were stopped: asked ones park
    // at their next safe point, signalled ones ran outside gort too long
    // (stw.c, "Asking first"); the others were held in blocking calls.
    gort__print("gc %u: the first stop (stop %s ms, sweep and flush %s ms, roots %s ms) marked %llu objects from the roots; %d pre-cleaning rounds rescanned %llu written pages (%s); the final stop rescanned "
                "%llu: stop %s ms (%llu asked, %llu signalled), flush %s ms, roots %s ms, pages %s ms, drain %s ms (%llu guests), rest %s ms\n",
                n, ms3(g1, sizeof g1, conc.stw1_parts[0]), ms3(g2, sizeof g2, conc.stw1_parts[1]),
                ms3(h, sizeof h, conc.stw1_parts[2]), (unsigned long long)conc.root_objects, rounds, (unsigned long long)rescanned, gort__dirty_name(),
                (unsigned long long)last_pages, ms3(d, sizeof d, t_stopped - t_stop),
                (unsigned long long)(asked1 - asked0), (unsigned long long)(signalled1 - signalled0),
                ms3(e, sizeof e, t_flushed - t_stopped), ms3(a, sizeof a, parts[0]), ms3(b, sizeof b, parts[1]),
                ms3(c, sizeof c, parts[2]), (unsigned long long)(gort__gc_mark_guests() - guests0),
                ms3(f, sizeof f, t_end - t_marked));
  }
  fig_take();
  gc.fig.num_gc = n;
  fig_drop();
  // Tracking given up (dirty.c, fall_back: this cycle's arm, or the heap's
  // growth during it): the next cycles mark with the world stopped, as
  // the fallback says, rather than mark beside the program and then
  // rescan every marked object in the final stop (a helper's hunt: 86-90
  // such cycles in 4 s, a line on stderr each).
  if (!gort__dirty_enabled()) conc.on = false;
  atomic_fetch_add(&conc.finished, 1);
  gort__os_futex_wake(&conc.finished, INT32_MAX);
  cycle_lock_drop();
  // After the cycle lock: unprotecting takes milliseconds with a large
  // heap, and the next cycle must be able to start meanwhile (its arm
  // waits for this, or makes it a no-op). A next cycle the worker is to
  // start waits for this instead, this being the worker. A small heap's
  // is the program's (dirty.c, "Who unprotects").
  if (!handed) gort__dirty_disarm(gen);
}

static void *worker_main(void *arg) {
  // The requests made before this thread ran are its own too: the first
  // cycle may ask before it first runs (thread creation is slow here).
  uint32_t seen = (uint32_t)(uintptr_t)arg;
  for (;;) {
    uint32_t now;
    while ((now = atomic_load(&conc.request)) == seen) gort__os_futex_wait(&conc.request, seen);
    seen = now;
    VG_ENTER();  // memcheck builds: base/vg.h
    if (atomic_exchange(&conc.start_pending, false)) {
      // Not through gort__stw_run_recorded: this thread is not registered
      // (its stack holds no pointer of the program's), and cycle_start's
      // own request for the rest is this thread's.
      bool forced = false;
      cycle_start(&forced);
      seen = atomic_load(&conc.request);
    }
    cycle_finish();
    VG_LEAVE();
  }
  return NULL;
}

// "The live count", step 2. obj is the object's block (its header
// included), bytes what its allocation added. In a no-stop region, so
// that a stop never falls between the bit and the count: a free split by
// a cycle's end would take its bytes from the next cycle's count, which
// never held them.
void gort__gc_freed(uintptr_t obj, uint64_t bytes) {
  gort_assert_internal(gort__nostop > 0);
  uint64_t bit, *mw = mark_word(obj, &bit);
  bool counted = (__atomic_fetch_or(mw, bit, __ATOMIC_RELAXED) & bit) != 0;
  if (!counted && atomic_load_explicit(&gort__gc_marking, memory_order_relaxed))
    atomic_fetch_add_explicit(&conc.freed_unmarked, bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&gort__gc_heap_live, bytes, memory_order_relaxed);
}

// The pacer's check during a concurrent mark: an allocating thread that
// has passed the trigger while the mark runs helps it, more past the goal;
// past the goal by a tenth it stops allocating for a while (Go's hard
// goal): it helps with larger budgets, or sleeps when there is nothing to
// take, for at most HARD_WAIT_NS, then goes on to its next slow path
// (about a span's worth of allocation later) and comes back. Waiting once
// for the whole cycle left binary-trees' mutator 12-19 ms gaps (the cycle
// runs 10-20 ms there, the heap past the hard goal for most of it). The
// slices are paid for in bytes: what the program allocates past the hard
// goal is counted, and past a sixteenth of the goal more (about 35
// refills on binary-trees, the first large object of a program
// allocating 4 MiB ones) every slow path waits for the cycle's end, as
// before: in slices alone, a thread allocating large objects took its
// whole object after each 0.5 ms and grew the heap to 1.6-2.1x its goal.
// A quarter instead of a tenth kept the program waiting less but let
// HeapInuse pass 3x the live heap.
#define HARD_WAIT_NS 500000
#define HARD_NAP_NS 50000

static void record_wait(int64_t ns) {
  atomic_fetch_add(&conc.waits, 1);
  if (ns > atomic_load(&conc.longest_wait)) atomic_store(&conc.longest_wait, ns);
}

static void wait_for_cycle(void) {
  int64_t t = gort__nanotime();
  // Until the running cycle ends (the cycle lock is its whole length).
  cycle_lock_take();
  cycle_lock_drop();
  record_wait(gort__nanotime() - t);
}

// limitable: the CPU limit may end the wait (not at the cgroup's memory.max).
static void hard_wait(bool limitable) {
  int64_t t = gort__nanotime(), now = t;
  uint32_t f = atomic_load(&conc.finished);
  while (atomic_load(&cycle_lock) != 0 && atomic_load(&conc.finished) == f) {
    bool helped = false;
    nostop_enter();
    if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed))
      helped = gort__gc_mark_assist_pages(32) || gort__gc_mark_assist(512 << 10) > 0;
    nostop_exit();
    int64_t was = now;
    now = gort__nanotime();
    if (helped) {
      atomic_fetch_add_explicit(&conc.assist_ns, now - was, memory_order_relaxed);
      gort__gc_limiter_charge(now - was);
    }
    if (now - t >= HARD_WAIT_NS) break;
    if (limitable && gort__gc_limiter_update(now)) break;
    if (!helped) {
      int64_t left = HARD_WAIT_NS - (now - t);
      gort__stw_program_wait_ns(&conc.finished, f, left < HARD_NAP_NS ? left : HARD_NAP_NS);
      now = gort__nanotime();
    }
  }
  record_wait(now - t);
}

static void assist(size_t bytes) {
  uint64_t live = atomic_load_explicit(&gort__gc_heap_live, memory_order_relaxed);
  uint64_t goal = atomic_load_explicit(&goal_now, memory_order_relaxed);
  bool past_hard = goal != 0 && live > goal + goal / 10;
  // Past the collector's CPU limit the program runs on, and the heap
  // passes its goal (mgclimit.c); not its hard goal when the memory limit
  // is the cgroup's, past which the kernel's OOM killer answers.
  bool limitable = !(past_hard && gort__scavenger_limit_is_cgroups());
  bool limited = limitable && gort__gc_limiter_update(gort__nanotime());
  if (past_hard) {
    // For the pacer, now: a wait that ends with the cycle is over only
    // after the cycle's pace, and would count for the next cycle. Also
    // when the limit skips the wait: the heap passed its hard goal all
    // the same, and the next trigger must come earlier (a reviewer's find:
    // unseen, the trigger moved later while the limit was on).
    atomic_store_explicit(&conc.waited, true, memory_order_relaxed);
    bool far = atomic_fetch_add_explicit(&conc.past_hard, bytes, memory_order_relaxed) + bytes > goal / 16;
    if (limited) return;
    if (far)
      wait_for_cycle();
    else
      hard_wait(limitable);
    return;
  }
  if (limited) return;
  if (bytes == 0) return;
  // Go's assist ratio: the scan work the mark still has (about the bytes
  // the last mark scanned: noscan objects are marked but never scanned,
  // and counting them had the large-heap benchmark's program, whose live
  // heap is nine tenths noscan values, assist ten times too much) over the
  // heap growth left before the goal, plus one, for the bytes this thread
  // allocated since its last assist; bounded so that one assist stays
  // well under a millisecond (mgcmark.c bounds its time too).
  uint64_t work = atomic_load_explicit(&scan_now, memory_order_relaxed);
  uint64_t dist = goal > live ? goal - live : 0;
  if (dist < (256 << 10)) dist = 256 << 10;
  double ratio = (double)work / (double)dist + 1;
  uint64_t budget = (double)bytes * ratio > (double)(512 << 10) ? 512 << 10 : (uint64_t)((double)bytes * ratio);
  int64_t t = gort__nanotime();
  nostop_enter();
  // During a pre-cleaning round, a share of its pages instead (32 for a
  // span's worth of allocation, 16 KiB: about 0.1-0.2 ms; at 16 a
  // random-writing 1 GiB cache still outran 16 rounds): the writes the
  // program makes are what the round must keep up with.
  uint64_t pages = bytes >> 9;
  if (pages < 1) pages = 1;
  if (pages > 32) pages = 32;
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed) && !gort__gc_mark_assist_pages(pages))
    gort__gc_mark_assist(budget);
  nostop_exit();
  int64_t took = gort__nanotime() - t;
  atomic_fetch_add_explicit(&conc.assist_ns, took, memory_order_relaxed);
  gort__gc_limiter_charge(took);
}

void gort__gc_set_pool_hooks(void (*stopped)(void), void (*restarted)(void)) {
  pool_stopped = stopped;
  pool_restarted = restarted;
}

void gort__gc_run_stopped(void (*fn)(void)) {
  cycle_lock_take();
  gort__stw_init();  // the stop signal's handler, as a cycle's activate() installs it
  gort__stw_stop();
  fn();
  gort__stw_start();
  cycle_lock_drop();
}

void gort__gc_run_stopped_with_segments(void (*fn)(void)) {
  cycle_lock_take();
  gort__stw_init();
  gort__gc_mark_prepare();  // the cycle lock guards the segment list too
  gort__gc_stop_the_world();
  fn();
  gort__stw_start();
  cycle_lock_drop();
}

void gort__gc_maybe_collect(size_t bytes) {
  if (gort_unlikely(atomic_load_explicit(&gort__dirty_disarm_waiting, memory_order_relaxed) != 0) && gort__nostop == 0)
    gort__dirty_disarm_take();
  if (gort_likely(atomic_load_explicit(&gort__gc_heap_live, memory_order_relaxed) <
                  atomic_load_explicit(&gort__gc_trigger, memory_order_relaxed)))
    return;
  if (!gort__gc_enabled() || gort__nostop > 0) return;
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed) ||
      atomic_load_explicit(&cycle_lock, memory_order_relaxed) != 0) {
    assist(bytes);  // a cycle runs (or ends): help it, or past the hard goal wait for it
    return;
  }
  collect(false);
}

void gort_gc_collect(void) {
  gort__start_ensure();
  if (gort__nostop > 0) gort__throw("gc: gort_gc_collect inside a no-stop region");
  VG_ENTER();
  collect(true);
  // A full cycle also finishes the sweep (Go's runtime.GC).
  gort__gc_sweep_pause();
  gort__gc_sweep_finish();
  gort__gc_sweep_resume();
  VG_LEAVE();
}

// As Go's SetGCPercent, the new goal holds at once: the trigger, NextGC,
// and the hard goal that a running cycle's assists check (which kept the
// old goal until the next cycle's end: a reviewer's find). A cycle that
// ends meanwhile may overwrite the trigger with its own, from the percent
// read at its end: either is a goal of this percent's or the last one's.
int gort_gc_set_percent(int percent) {
  gort__start_ensure();
  int old = atomic_exchange(&gc.percent, percent < 0 ? -1 : percent);
  fig_take();
  uint64_t marked = gc.fig.heap_marked;
  bool cycled = gc.fig.num_gc > 0;
  fig_drop();
  uint64_t goal = goal_after(marked);
  atomic_store(&gort__gc_trigger, percent < 0 ? UINT64_MAX : trigger_for(marked, goal));
  if (cycled && percent >= 0) {
    fig_take();
    gc.fig.next_gc = goal;
    fig_drop();
    atomic_store_explicit(&goal_now, goal, memory_order_relaxed);
  }
  return old;
}

void gort__gc_read_figures(gc_figures_t *out) {
  fig_take();  // a consistent copy (never blocked by a cycle)
  *out = gc.fig;
  fig_drop();
  out->concurrent = conc.on;
  out->heap_live = atomic_load(&gort__gc_heap_live);
  out->bytes_freed = atomic_load(&gort__gc_swept_bytes);
  out->objects_freed = atomic_load(&gort__gc_swept_objects);
}

// fork(): the child must not inherit a cycle in progress (the cycle lock
// is taken across the fork), nor the parent's threads: its registry keeps
// the forking thread alone, and the collector's own threads (mark workers,
// sweeper, finalizer thread) start again at its first cycle.
static void fork_prepare(void) {
  cycle_lock_take();
  // With the collector running, a thread (or the background sweeper) may
  // be midway through a span it took off its list, lazily sweeping it or
  // refilling from it: in the child that span would be on no list, its
  // mark bits half cleared, and the child's first mark would stop at
  // objects still marked from the parent's last cycle and free what they
  // point to (gccheckmark caught it in forked children). So the fork waits
  // for the sweeper and stops the world: no thread is then inside such a
  // region. Before the first cycle too, once a thread has cached a
  // collected span: the child's orphaned caches are flushed only after a
  // stop, and a span lost with them kept the mark bits of the child's
  // first mark, so that its next mark stopped short at them and freed what
  // their objects had come to point to.
  if (active || gort__gc_fork_caches_used()) {
    fork_stopped = true;
    gort__stw_init();  // the stop signal's handler, which the first cycle installs
    gort__gc_sweep_pause();
    gort__stw_stop();
  } else {
    fork_stopped = false;  // and no cache takes a collected span until after the fork
    gort__stw_lock_for_fork();
  }
  gort__gc_finalizers_fork(0);
  gort__gc_mark_fork(0);
  gort__gc_malloc_fork(0, fork_stopped);
}
static void fork_parent(void) {
  gort__gc_malloc_fork(1, fork_stopped);
  gort__gc_mark_fork(1);
  gort__gc_finalizers_fork(1);
  if (fork_stopped) {
    gort__stw_start();
    gort__gc_sweep_resume();
  } else {
    gort__stw_unlock_after_fork(0);
    gort__gc_fork_caches_release(0);
  }
  cycle_lock_drop();
}
static void fork_child(void) {
  gort__gc_malloc_fork(2, fork_stopped);
  // The other threads' caches were quarantined by the allocator's hook;
  // the spans they held would be on no list: never swept, their mark
  // bits left set, so the child's next marks would stop at them. With the
  // world stopped for the fork their state is whole: take the spans back.
  if (fork_stopped) gort__gc_flush_orphaned_caches();
  gort__gc_mark_fork(2);
  gort__gc_finalizers_fork(2);
  gort__stw_unlock_after_fork(1);
  if (!fork_stopped) gort__gc_fork_caches_release(1);
  atomic_store(&cycle_lock, 0);
  active = false;
  conc.on = false;  // the worker thread is gone; activate() starts another
  atomic_store(&conc.waits, 0);  // the parent's figures
  atomic_store(&conc.longest_wait, 0);
  gort__dirty_fork_child();
  gort__gc_limiter_after_fork();
  gort__gc_mark_after_fork_child();
  gort__gc_sweep_after_fork_child();
  gort__gc_finalizers_after_fork_child();
}
static fork_hook_t gc_fork = {
    .name = "gc", .rank = LOCK_START + 1, .prepare = fork_prepare, .parent = fork_parent, .child = fork_child};

void gort__gc_init(void) {
  if (gc.inited) return;
  gc.inited = true;
  gc.start_ns = gort__nanotime();
  int pct = (int)gort__opts.gc_percent;
  atomic_store(&gc.percent, pct);
  if (pct < 0) atomic_store(&gort__gc_trigger, UINT64_MAX);
  gort__gc_stress = gort__opts.gcstress != 0;
  gort__gc_checkmark = gort__opts.gccheckmark != 0;
  gort__gc_install_hooks();
  gort__stw_register_main();
  gort__start_add_fork_hook(&gc_fork);
}
