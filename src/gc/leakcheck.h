// The leak check's mark: which malloc blocks nothing reachable points to.
// See gc/leakcheck.c; the leak check as a whole is obs/leakcheck.c's.

#ifndef GORT_GC_LEAKCHECK_H
#define GORT_GC_LEAKCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t live_blocks, live_bytes;          // malloc blocks (usable bytes) at the check
  uint64_t interior_blocks, interior_bytes;  // reached only through pointers into their middle
  uint64_t leaked_blocks, leaked_bytes;      // unreachable (usable bytes)
  uint64_t direct_blocks;                    // of those, not pointed to by another leaked block
  uint64_t cycle_blocks;                     // of the direct, the ones a cycle of leaks led to
  uint64_t unlisted_blocks;                  // leaked past the list's cap (64M): not reported
  uint64_t starting_threads;                 // threads still starting after a second's wait
  int64_t stopped_ns;                        // how long the world was stopped
} gc_leak_stats_t;

// What the caller does inside the stop. Both run with the world stopped:
// they must not allocate, lock anything a stopped thread may hold, or wait.
typedef struct {
  // Before the mark: calls add(addr, ctx) for each small malloc block that
  // is live though its live bit is clear (the heap profiler's samples,
  // obs/mprof.c). May be NULL.
  void (*extra_live)(void (*add)(uintptr_t addr, void *ctx), void *ctx, void *arg);
  // The bytes of malloc block addr (usable bytes) to scan for pointers:
  // what the program asked for, when it is known (LeakSanitizer scans the
  // same; the slack past it holds stale words of the slot's earlier
  // blocks). May be NULL: the usable bytes.
  size_t (*scan_bytes)(uintptr_t addr, size_t usable, void *arg);
  // After the mark, for every leaked block in address order: its start,
  // its usable bytes, and whether it is a direct leak.
  void (*leaked)(uintptr_t addr, size_t usable, bool direct, void *arg);
  void *arg;
} gc_leak_visitor_t;

// Registers the calling thread and runs fn(arg) with the thread's stack
// end recorded here: gort__gc_leak_scan, called inside fn, scans this
// thread's stack from the caller's frame up, and its registers as they
// were here, so that the check's own frames (whose slots and registers
// hold stale words of the program's earlier calls, and the heap's bounds)
// are never roots. Call at the check's entry, with no gort lock held and
// outside every no-stop region (a fatal error otherwise: the check was
// called from a signal handler that interrupted the allocator).
void gort__gc_leak_enter(void (*fn)(void *), void *arg);

// Inside gort__gc_leak_enter: stops the world, marks from every root (threads' stacks, registers,
// static TLS and thread descriptors; goroutine stacks; the loaded objects'
// writable segments; registered ranges; uncollectable objects; the
// finalizer queue), scanning every reached malloc block and collected
// object conservatively, and calls v->leaked for each malloc block left
// unmarked; then restarts the world. Returns 0, or -ENOMEM if the OS
// refused the mark's memory (nothing was reported then).
int gort__gc_leak_scan(const gc_leak_visitor_t *v, gc_leak_stats_t *stats);

// In a forked child: forgets a check that another thread of the parent
// was running (the child would otherwise wait for it at exit, for ever).
void gort__gc_leak_after_fork_child(void);

#endif  // GORT_GC_LEAKCHECK_H
