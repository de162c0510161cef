// The collector's internal interface. See mgc.c for the design.

#ifndef GORT_GC_GC_H
#define GORT_GC_GC_H

#include <pthread.h>
#include <stdatomic.h>

#include "../alloc/mcache.h"
#include "../alloc/pagemap.h"
#include "../alloc/alloc_init.h"
#include "../base/lock.h"

// ---- mgc.c: the cycle, the pacer, the figures ------------------------------------

typedef struct {
  uint32_t num_gc, num_forced_gc;
  uint64_t pause_total_ns;
  uint64_t pause_ns[256];      // ring, by num_gc % 256
  uint64_t last_gc_unix_ns;
  uint64_t next_gc;            // the heap goal, bytes
  uint64_t heap_live;          // collected bytes allocated (pacer's figure)
  uint64_t heap_marked;        // bytes the last mark found live
  uint32_t limiter_last;       // the last cycle during which the CPU limit was on (0: never)
  double cpu_fraction;
  uint64_t objects_alloc, objects_freed, bytes_alloc, bytes_freed;  // small objects
  uint64_t dirty_pages, last_dirty_pages;  // pages rescanned by concurrent marks: all, the last
  uint64_t pause_hist[32];     // every stop of the world, by log2 of its microseconds
  bool concurrent;             // cycles mark concurrently
} gc_figures_t;

void gort__gc_init(void);         // start-up step 3 (base/start.c)
// The collector's CPU limit (mgclimit.c). charge: a thread's wall time in
// the collector's work, a piece now over (an assist, the part before a
// first stop); charge_stop: a stop's length (every CPU counted); update:
// refreshes at most every 0.1 ms and says whether the limit is on (assists
// and hard-goal waits skipped); mark: the background mark starts or ends;
// cycle_reset: whether the limit was on since the last reset (at each
// cycle's end).
void gort__gc_limiter_charge(int64_t ns);
void gort__gc_limiter_charge_stop(int64_t ns);
bool gort__gc_limiter_update(int64_t now);
void gort__gc_limiter_mark(bool running, int64_t now);
bool gort__gc_limiter_cycle_reset(void);
void gort__gc_limiter_after_fork(void);
// The allocator's trigger check: runs a cycle if the heap reached its goal.
// Call outside every no-stop region (it may stop the world).
void gort__gc_maybe_collect(size_t bytes);  // bytes: what the caller is about to allocate
void gort__gc_read_figures(gc_figures_t *out);
bool gort__gc_enabled(void);
// Pools (pool/rotate.c, Go's clearpools): stopped runs at the start of
// every cycle with the world stopped, before the mark; restarted after the
// world restarts, outside the cycle lock. Set once, at start-up.
void gort__gc_set_pool_hooks(void (*stopped)(void), void (*restarted)(void));
// Runs fn with the world stopped, outside any cycle (the pool thread's
// rotation when no collection rotated the pools for scavdelay). The caller
// must be a registered thread or one the stop need not reach, outside
// every no-stop region.
void gort__gc_run_stopped(void (*fn)(void));
// The same, for a walk of the roots: the world is stopped from inside the
// loader's walk of its objects (gort__gc_stop_the_world), so that fn may
// scan the segments gort__gc_foreach_segment lists, all mapped until the
// restart. The caller must hold no loader lock.
void gort__gc_run_stopped_with_segments(void (*fn)(void));
// The writable segments of the loaded objects at the stop (the world
// stopped by one of the two above or by a cycle); libgort.so's own only
// if with_gort (the collector's roots leave them out, the leak check's
// include them).
void gort__gc_foreach_segment(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, bool with_gort);

// The live count, the pacer's figure (atomic; mgc.c's essay, "The live
// count", says what it holds).
extern _Atomic uint64_t gort__gc_heap_live GORT_HIDDEN;
// An explicit free of the object at block obj (its header included) of
// bytes: takes them from the live count and sets obj's mark bit, so that
// no mark counts it. Call in a no-stop region, with obj's live bit still
// set or just cleared by the caller.
void gort__gc_freed(uintptr_t obj, uint64_t bytes);
extern _Atomic uint64_t gort__gc_trigger GORT_HIDDEN;
// The current sweep generation (Go's mheap_.sweepgen): +2 per cycle.
extern _Atomic uint32_t gort__gc_sweepgen GORT_HIDDEN;
extern bool gort__gc_stress, gort__gc_checkmark GORT_HIDDEN;

// A collected span's sweep state is its sweepgen against gort__gc_sweepgen
// (sg), as Go's mspan.sweepgen: sg - 2, not swept since the last mark (on
// an unswept list); sg - 1, taken off that list by a sweeper, which owns
// it until it lets it go; sg, swept. sg advances only with the world
// stopped and no span being swept (mgcsweep.c), so it is stable to a
// thread in a no-stop region.
GORT_INLINE void span_sweep_take(mspan_t *s) {
  __atomic_store_n(&s->sweepgen, atomic_load_explicit(&gort__gc_sweepgen, memory_order_relaxed) - 1,
                   __ATOMIC_RELAXED);
}
// Release: whoever sees the span swept sees the sweep's writes.
GORT_INLINE void span_sweep_done(mspan_t *s) {
  __atomic_store_n(&s->sweepgen, atomic_load_explicit(&gort__gc_sweepgen, memory_order_relaxed),
                   __ATOMIC_RELEASE);
}
GORT_INLINE bool span_swept(const mspan_t *s) {
  return __atomic_load_n(&s->sweepgen, __ATOMIC_RELAXED) == atomic_load_explicit(&gort__gc_sweepgen, memory_order_relaxed);
}
GORT_INLINE bool span_being_swept(const mspan_t *s) {
  return __atomic_load_n(&s->sweepgen, __ATOMIC_ACQUIRE) ==
         atomic_load_explicit(&gort__gc_sweepgen, memory_order_relaxed) - 1;
}

// ---- malloc_gc.c: allocation, the central lists of collected spans ------------

typedef struct {
  lock_t lock;          // rank LOCK_CENTRAL; guards the lists
  span_link_t partial;  // swept, with free slots
  span_link_t full;     // swept, without
  span_link_t unswept;  // not swept since the last mark
} __attribute__((aligned(GORT_CACHELINE))) gcentral_t;

extern gcentral_t gort__gcentral[GORT_NUM_GC_KINDS][GORT_NUM_CLASSES] GORT_HIDDEN;

typedef struct {
  lock_t lock;          // rank LOCK_CENTRAL; guards the lists
  span_link_t swept;
  span_link_t unswept;
} gclarge_t;
extern gclarge_t gort__gclarge GORT_HIDDEN;

// The header word of a typed object holds its layout.
struct gort_gc_layout {
  uintptr_t check;              // its own address ^ GORT_LAYOUT_KEY (mgcmark.c, layout_valid)
  struct gort_gc_layout *next;  // intern table chain
  uint64_t nwords;
  uint64_t bits[];
};

#define GORT_LAYOUT_KEY 0x6c61796f75742121ULL

// Layouts live in one reservation of their own ([lo, hi), set once before
// the first layout is handed out; 0 while none is, or if the OS refused).
extern _Atomic uintptr_t gort__gc_layouts_lo GORT_HIDDEN, gort__gc_layouts_hi GORT_HIDDEN;


// With the world stopped: every cache gives its collected spans back to
// the central lists (its tiny block stays: tiny.c).
void gort__gc_flush_caches(void);
// In a forked child whose fork stopped the world: the other threads'
// quarantined caches give their collected spans back, so that they are
// swept (their mark bits cleared) and marked like every other span.
void gort__gc_flush_orphaned_caches(void);
// Puts an uncached collected span back on its central list (caller holds
// nothing; the span is the caller's).
void gort__gc_span_relist(mspan_t *s);
// Returns the blocks gort_free'd into s (its remote list) to s->free,
// clearing their live bits. The caller owns s (or the world is stopped).
void gort__gc_collect_frees(mspan_t *s);
// The same for a span on a central list, the world stopped (malloc_gc.c).
void gort__gc_collect_frees_listed(mspan_t *s);
void gort__gc_install_hooks(void);
// For the tiny allocator (tiny.c): the calling thread's cache (registered;
// NULL if none can be made), alloc_small, and the free of a small
// collected object's block.
struct mcache *gort__gc_my_cache(void);
void *gort__gc_alloc_small(size_t size, int kind);
void gort__gc_free_block(uintptr_t obj, mspan_t *s);
// fork: phase 0 takes the collector's list locks, 1 releases them (parent),
// 2 re-initializes them (child). Likewise for the roots', the finalizers'
// and the mark queue's locks.
void gort__gc_malloc_fork(int phase, bool centrals);
// fork, before the stop decision: true if a thread cache may hold collected
// spans (the fork must then stop the world); false with a lock held that
// keeps every cache from taking its first one until
// gort__gc_fork_caches_release (parent: 0, child: 1).
bool gort__gc_fork_caches_used(void);
void gort__gc_fork_caches_release(int child);
void gort__gc_mark_fork(int phase);
void gort__gc_finalizers_fork(int phase);

// ---- stw.c: threads and the stop of the world -----------------------------------

typedef struct gthread {
  struct gthread *next;
  pid_t tid;
  uintptr_t stack_lo, stack_hi;  // the stack; hi is its top (exclusive)
  uintptr_t tls_lo, tls_hi;      // the static TLS block below the thread pointer
  _Atomic uintptr_t stopped_sp;  // where its stack ended when it last parked
  _Atomic uint32_t stopped_epoch;  // the stop it last parked for
  bool unstoppable;                 // the stop signal could not be sent (this stop)
  uintptr_t own_sp;              // the collecting thread's, during its cycle
  void *wbuf;                    // the write barrier's gray objects in a mark (barrier.c)
  _Atomic uint32_t blocked;      // BLOCKED_*: in a blocking call, and whether a stop holds it
  uintptr_t blocked_sp;          // where its stack ended when it blocked
  _Atomic bool blocked_program;  // the blocking call is the program's (blocking.c), not gort's own wait
  bool claimed;                  // held by this stop without a signal (the stopper's own)
  bool asked;                    // asked to stop at its next safe point, not parked yet (this stop)
  uint8_t ask_skip;              // stops that signal it at once: the last ask ended in a signal
  uint8_t ask_backoff;           // the last ask_skip given (doubles while asks end in signals)
  int64_t out_since;             // asked: when it was first seen outside every no-stop region
  int64_t run_at, run_cpu;       // asked: when the stop first read its CPU clock, and what it read
  volatile uint32_t *stop_pending;  // its gort__stop_pending (thread-local)
  uint32_t *nostop;              // its gort__nostop (thread-local)
} gthread_t;

// A registered thread in a blocking call (stw.c, "Blocked threads").
enum { BLOCKED_NO = 0, BLOCKED_IN = 1, BLOCKED_HELD = 2 };
// Calls fn(arg) as a blocking call: a stop that finds the calling thread
// inside takes it as stopped, without a signal, and the thread waits for
// the restart only if the call returns before it. fn must not touch the
// collected heap nor hold the only copy of a pointer into it: arg (on the
// caller's stack, which stays a root) holds what it needs.
long gort__stw_blocking(long (*fn)(void *), void *arg);
// A socket receive of the program's (recv, recvfrom, recvmsg) as a
// blocking call, as blocking.c runs the sleeps and waits (and as plainly
// as they are while the program has signal handlers of its own): with a
// receive timeout (SO_RCVTIMEO) the kernel ends the call with EINTR after
// any handler, SA_RESTART or not, so every collection's stop signal ended
// such a wait early. read and readv, which files use far more than
// sockets, are not: a blocking call costs a read about 100 ns more.
long gort__blocking_receive(long (*fn)(void *), void *arg) GORT_HIDDEN;
// Set around gort__stw_blocking by the program's sleeps and waits
// (blocking.c): a stop signals such a call instead of holding it once the
// program has a signal handler of its own.
extern GORT_TLS bool gort__stw_program_call GORT_HIDDEN;
// For a blocking call left by unwinding (a cancellation): ends it, as its
// return would have.
void gort__stw_block_abandon(void);
// gort__os_futex_wait_ns as a blocking call: gort's own waits of a
// registered thread (a plain thread's channel and sync waits, an idle M).
void gort__stw_futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
// As gort__stw_futex_wait_ns, for a thread on which the program's signal
// handlers may run (a program thread, or gort's own threads that run the
// program's code with every signal open: the finalizer and pool threads).
// A stop holds it there without a signal while the program has no handlers
// of its own, and signals it once it has (blocking.c says why). An idle
// thread of gort's that waited with a plain futex looked running to a stop,
// which asked it and, after ASK_NS, signalled it: 0.1 ms of every stop.
void gort__stw_program_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
// gort__os_sleep_ns as a blocking call (a thief's wait for a runnext).
void gort__stw_sleep_ns(int64_t ns);

// Registers the calling thread if it is not yet (lazily, for threads gort
// did not see start).
void gort__stw_register_self(void);
// Whether the calling thread is registered (stops with the world).
extern GORT_TLS struct gthread *gort__stw_self GORT_HIDDEN;
GORT_INLINE bool gort__stw_registered(void) { return gort__stw_self != NULL; }

// For a thread that is not registered, so never stopped, about to change
// what a stop takes to be still (its cache, as it exits: malloc_gc.c):
// waits out a stop in progress and holds the next one off until allowed
// (nested pairs hold it once).
void gort__stw_hold_off(void);
void gort__stw_allow(void);
// While holding the stop off: whether a stop (or a registration) waits.
bool gort__stw_hold_off_contended(void);
// At start-up, on the main thread: registers it (its stack top from the
// loader; no /proc read, no allocation of its own).
void gort__stw_register_main(void);
void gort__stw_unregister_self(void);
// The calling thread (main, which leaves no other way) leaves the registry
// when it exits, after its cleanup handlers, as every thread gort started
// does.
void gort__stw_leave_at_exit(void);
// Stops every registered thread but the caller; on return they are parked
// with their registers on their stacks. Call with no gort lock held.
void gort__stw_stop(void);
// As gort__stw_stop, giving up after limit_ns (< 0: never): false if some
// thread has not parked by then, and the caller must call gort__stw_start
// (a thread that parks late, or not at all, then runs on).
bool gort__stw_stop_within(int64_t limit_ns);
void gort__stw_start(void);
// Threads that stops took ever: parked when asked at a safe point, and
// signalled (stw.c, "Asking first"); held in blocking calls are neither.
void gort__stw_stop_counts(uint64_t *asked, uint64_t *signalled);
// With the world stopped: calls fn on each registered thread's stack and
// TLS ranges (the caller's own from its current stack pointer).
// Runs fn(arg) with the calling thread's stack end recorded (its
// registers spilled above it): the collector runs its cycle in this.
void gort__stw_run_recorded(void (*fn)(void *), void *arg);
void gort__stw_foreach_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
int gort__stw_nthreads(void);
// For a thread of gort's own that runs the program's code (finalizers, a
// pool's release_fn): created with every signal blocked (os/thread.c), it
// takes signals back and registers, so that a collection stops it and
// scans its stack like any thread's.
void gort__stw_register_internal_self(void);
// The signal that stops threads (SIGPWR, or GORT_DEBUG=gcsignal=N).
int gort__stw_signal(void);
// Called by an exiting thread with its value (its start routine's result,
// or pthread_exit's argument): a collected object stays a root until
// pthread_join returns it (pthread_wrap.c). Returns value.
void *gort__gc_thread_exit_value(void *value);
// Called by every registered thread as it leaves the registry at its exit:
// after main's pthread_exit, the process may be left to gort's threads.
void gort__gc_thread_ended(void);
void gort__stw_lock_for_fork(void);
// In the child the registry holds the forking thread alone (its new tid).
void gort__stw_unlock_after_fork(int child);
void gort__gc_mark_after_fork_child(void);
void gort__gc_sweep_after_fork_child(void);
void gort__gc_finalizers_after_fork_child(void);
void gort__stw_init(void);
// Creates a thread of gort's own (not registered, its signals blocked).
int gort__stw_internal_thread(void *(*fn)(void *), void *arg);
// Threads created through gort's pthread_create that have not registered yet.
int gort__stw_starting(void);
// With the world stopped: fn(tp) for each registered thread's thread pointer.
void gort__stw_foreach_thread(void (*fn)(gthread_t *t));  // world stopped; unstoppable ones too
void gort__stw_foreach_thread_pointer(void (*fn)(uintptr_t tp, void *arg), void *arg);

// ---- mgcmark.c ---------------------------------------------------------------------

// Marks everything reachable (world stopped). last_marked (what the last
// cycle found live) decides on helpers.
void gort__gc_mark(uint64_t last_marked);
// The bytes of the objects this cycle's mark set the mark bits of, each
// counted once (uncollectable objects included), and resets the count.
// Call with the world stopped after gort__gc_finalizers_mark, whose
// objects count too: they survive the cycle.
uint64_t gort__gc_mark_bytes(void);
uint64_t gort__gc_mark_scan_bytes(void);  // of the last gort__gc_mark_bytes, those of objects that were scanned
// Marks what obj points at (not obj): finalizer support (world stopped).
void gort__gc_mark_children(uintptr_t obj);
// Marks obj itself (world stopped, after its children were marked).
void gort__gc_mark_object(uintptr_t obj);
// Drains the mark queue (world stopped).
void gort__gc_mark_drain(void);
// Reads what the mark needs before the world stops (the loaded objects).
void gort__gc_mark_prepare(void);
// gort__stw_stop for a cycle, after gort__gc_mark_prepare: the loaded
// objects' segments as they are when the world stops.
void gort__gc_stop_the_world(void);
bool gort__gc_is_marked(uintptr_t obj);
// Concurrent marking (mgc.c says how the cycle uses them).
uint64_t gort__gc_mark_begin(uint64_t last_marked);  // first stop: the roots; returns objects marked
void gort__gc_mark_drain_concurrent(void);      // the background worker
// The write barrier (barrier.c), during a concurrent mark: t's (the
// caller's own record) gray objects; in a no-stop region.
void gort__gc_barrier_shade(gthread_t *t, uintptr_t v);
void gort__gc_barrier_copied(void *dst, size_t n);  // shades what a copy wrote
void gort__gc_barrier_release(gthread_t *t);  // its buffer to the queue (t leaving, or world stopped)
void gort__gc_barrier_flush_now(void);  // from now to the final stop, buffers go to the queue at once
uint64_t gort__gc_mark_assist(uint64_t budget);  // an allocating thread (bytes to scan), in a no-stop region; bytes scanned
bool gort__gc_mark_rescan_dirty(uint64_t *pages, bool concurrent);  // a pre-cleaning round
bool gort__gc_mark_assist_pages(uint64_t budget);  // an allocating thread's share of one
// The final stop; t: ns spent on the roots, the written pages, the drain.
void gort__gc_mark_finish(uint64_t last_marked, uint64_t *dirty_pages, int64_t t[3]);
// Whether stop e still holds the world (not restarted yet).
bool gort__stw_holds(uint32_t e);
// Before a final stop: whether its drain will take the threads that
// park for it as guests (mgcmark.c, "Guests"); gort__gc_mark_guest is a
// parked thread's part (stw.c).
void gort__gc_mark_guest_arm(uint64_t last_marked);
void gort__gc_mark_guest(uint32_t stop);
// Drains that guests joined since start-up, and places they claimed
// (a guest that came finds the drain over when the collector was quicker).
uint64_t gort__gc_mark_guests(void);
uint64_t gort__gc_mark_guests_came(void);
// Allocation black: marks every free slot of s (its cache's thread, in a
// no-stop region, while gort__gc_marking).
void gort__gc_premark_span(mspan_t *s);
void gort__gc_clear_span_marks(mspan_t *s);
// True from the first stop of a concurrent cycle to its final stop: set and
// cleared only with the world stopped, so stable inside a no-stop region.
extern _Atomic bool gort__gc_marking GORT_HIDDEN;
int gort__gc_mark_workers(void);
int gort__gc_cpus(void);  // the CPUs the collector may use
void gort__gc_mark_init(void);
// With the world stopped and the cycle lock held: fn on every root range
// but the stacks and segments (registered ranges, uncollectable objects,
// the finalizer queue). For the leak check (leakcheck.c).
void gort__gc_foreach_root_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);

// Resolves a word to the collected object it points into: its start
// (the block, header included) and span; 0 if it points into none.
uintptr_t gort__gc_find_object(uintptr_t v, mspan_t **sp);
// The bytes an object occupies (elemsize, or the large span's bytes), for
// s in state st. A racy reader passes the state it already tested: read
// again, a span freed meanwhile reads as free, and a large object then
// takes the span's elemsize, 0 (mgcmark.c, scan_typed_x).
GORT_INLINE uintptr_t gc_object_bytes_in(const mspan_t *s, span_state_t st) {
  return st == SPAN_LARGE ? span_npages(s) << GORT_PAGE_SHIFT : span_elemsize(s);
}
GORT_INLINE uintptr_t gc_object_bytes(const mspan_t *s) { return gc_object_bytes_in(s, span_state(s)); }

// Background work of the collector that runs beside the program (the
// worker's concurrent drain, pre-cleaning and disarm, the sweeper) gives its CPU
// to a waiting thread every GC_GIVE_WAY_NS: next is when, 0 for never
// (mgc.c, "Giving way").
#define GC_GIVE_WAY_NS 250000
void gort__gc_give_way(int64_t *next) GORT_HIDDEN;

// ---- mgcsweep.c ---------------------------------------------------------------------

// Sweeps s (the caller took it off its unswept list, span_sweep_take).
// Returns true if s still holds live objects (relist it); false if it went
// back to the page heap. A large span it keeps stays "being swept" until
// the caller relists it: gort_free of its object waits for that.
bool gort__gc_sweep_span(mspan_t *s);
// With the world stopped, after the mark: every collected span becomes
// unswept (the new sweep generation begins).
void gort__gc_sweep_begin(void);
// Sweeps every unswept span now (finishes the cycle's sweep).
void gort__gc_sweep_finish(void);
// Sweeps unswept large spans until npages pages of zone (mheap.h) were
// freed or none is left; the caller is a registered thread.
void gort__gc_sweep_reclaim_large(uintptr_t npages, int zone);
// Takes one unswept span of a span class and sweeps it; false if none.
bool gort__gc_sweep_one(int kind, int cls);
// Waits until the background sweeper holds no span (before a stop).
void gort__gc_sweep_pause(void);
void gort__gc_sweep_resume(void);
void gort__gc_sweep_init(void);
extern _Atomic uint64_t gort__gc_swept_objects, gort__gc_swept_bytes GORT_HIDDEN;

// ---- dirty.c: pages written during a mark -------------------------------------------

// Probes the backend once (GORT_DEBUG=gcdirty); true if there is tracking.
bool gort__dirty_enabled(void);
const char *gort__dirty_name(void);
// What a first write to a protected page and unprotecting then protecting
// a page cost here, in ns, as the uffd backend measured them (0: not).
void gort__dirty_prices(uint64_t *fault_ns, uint64_t *reprotect_ns);
// Protects the whole heap (before the first stop); returns the arming's
// generation, 0 if tracking failed.
uint32_t gort__dirty_arm(void);
// Calls fn on each run of pages written since the last arm or collect and
// protects them again (unless !reprotect: the final stop's collect, after
// which no write matters to the cycle); *pages counts them. False if
// tracking failed.
bool gort__dirty_collect(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, uint64_t *pages,
                         bool reprotect);
// Unprotects the heap (after the final stop) if arming gen is the last.
void gort__dirty_disarm(uint32_t gen);
// Or leaves that to the program's next allocation slow path, if the heap
// is small (dirty.c, "Who unprotects"): true if it did. The slow path
// calls gort__dirty_disarm_take when gort__dirty_disarm_waiting is set.
bool gort__dirty_disarm_hand_over(uint32_t gen);
void gort__dirty_disarm_take(void);
// Disarms handed over so far, and those a program thread took (tests).
void gort__dirty_handovers(uint64_t *handed, uint64_t *taken);
extern _Atomic uint32_t gort__dirty_disarm_waiting GORT_HIDDEN;
// What the last arm found in its sample of the heap (dirty.c, "Between
// cycles"): present pages and those written since the cycle before; the
// result says what this cycle's disarm leaves ("protected", "unprotected
// but a sample", "unprotected", "untracked").
const char *gort__dirty_sample(uint64_t *present, uint64_t *written);
void gort__dirty_fork_child(void);
// mheap.c's hook (the heap lock held): during a mark, a new reservation is
// registered and protected at once, so that its pages are cleaned as they
// are written instead of all at the next collect.
void gort__dirty_heap_grew(uintptr_t base, uintptr_t bytes);

// ---- finalizer.c -------------------------------------------------------------------

// With the world stopped, after the mark from the roots: keeps alive what
// finalizable objects reach, clears weak pointers to unmarked objects and
// queues the finalizers of unmarked objects (marking those objects).
void gort__gc_finalizers_mark(void);
// Before gc_free frees p, whose span has had finalizers or weak pointers:
// drops p's finalizer (or moves it to moved_to, realloc's new object),
// clears p's weak pointers and, if p is a weak handle (maybe_handle: p's
// block is a handle's size), its record.
void gort__gc_specials_free(uintptr_t p, bool maybe_handle, uintptr_t moved_to);
// Scans the queue of finalizers not yet run (a root).
void gort__gc_finalizers_roots(void (*scan)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
// After the world restarts: wakes the finalizer thread if there is work.
void gort__gc_finalizers_wake(void);

#endif  // GORT_GC_GC_H
