// The scheduler's internal interface: G, M, P, parking, timers, stacks.
// See proc.c for the design.

#ifndef GORT_SCHED_SCHED_H
#define GORT_SCHED_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../base/lock.h"

// A saved context: the stack pointer at which switch_amd64.S left the
// registers. Valid only while its goroutine (or M's scheduler) is not running.
typedef struct {
  void *sp;
} ctx_t;

void gort__ctx_switch(ctx_t *from, ctx_t *to) GORT_HIDDEN;
void gort__ctx_switch_ontop(ctx_t *from, ctx_t *to, void (*fn)(void *), void *arg) GORT_HIDDEN;
void gort__ctx_entry(void) GORT_HIDDEN;

// Goroutine states (Go's _Gidle ... _Gdead, fewer). Transitions:
//   IDLE -> RUNNABLE (gort_go) -> RUNNING (an M switches to it)
//   RUNNING -> RUNNABLE (yield, preempted), -> WAITING (parked),
//           -> SYSCALL (gort_syscall_enter), -> DEAD (its function returned)
//   WAITING -> RUNNABLE (readied); SYSCALL -> RUNNING (gort_syscall_exit)
//   DEAD -> RUNNABLE (the G reused by a new gort_go; a stack is bound at its first run)
enum { G_IDLE, G_RUNNABLE, G_RUNNING, G_SYSCALL, G_WAITING, G_DEAD };

struct m;
struct p;

typedef struct timer {
  int64_t when;        // nanotime at which it fires; guarded by its P's timer lock
  struct g *g;         // readied when it fires, if f is NULL
  int32_t idx;         // in the heap, -1 when not in one
  // If not NULL, called instead of readying g, with the heap's lock held,
  // so that once gort__timers_del returns f has run or never will (a
  // select's timeout, whose timer lives on the waiting goroutine's stack).
  // f may call gort__sched_ready and take locks above LOCK_TIMERS only.
  void (*f)(struct timer *t);
  void *arg;
  struct timers *ts;   // the heap it was added to; set by gort__timers_add
} timer_t_;

// A goroutine. Gs are made once (from per-P chunks, proc.c), reused by
// later goroutines, never freed. A G has a stack only from its first run to
// its exit (stack.c, "binding"): one that waits in a run queue to start
// holds none. Fields are written by the goroutine's own M unless noted.
typedef struct g {
  // The first line: what switching the goroutine in and out touches
  // (begin_run, the context switch, the canary check, parking's after
  // step). A G at rest is cold (skynet keeps 70,000 of them), and these
  // fields were spread over all four of its lines: perf put begin_run at
  // 15% of skynet's samples, on two misses. The G is 64-byte aligned
  // (proc.c, g_alloc).
  ctx_t ctx;                   // saved registers' sp while not running
  _Atomic uint32_t status;     // G_*; atomic: read by dumps, the collector, sysmon
  int saved_errno;             // errno of the goroutine while switched out
  struct m *m;                 // the M running it, or NULL
  uintptr_t stack_lo;          // usable stack: lo above the guard; 0 while no stack is bound
  bool (*unlockf)(struct g *, void *);  // park: run on g0 after the switch
  void *unlock_arg;
  // /sched/latencies:seconds (proc.c, "Scheduling latency"): every
  // LAT_PERIOD-th time it becomes runnable, when (0: not sampled).
  int64_t runnable_at;
  _Atomic bool preempt;        // a yield is requested at the next safe point (sysmon)
  // Ran (or was made) since the collector last scanned its stack: a
  // concurrent mark's final stop rescans only these (mgcmark.c).
  _Atomic bool gcdirty;
  bool canary;                 // unguarded stack: a canary word at stack_lo (stack.c)
  uint8_t latseq;
  // The second line: parking, queues, spawning.
  struct g *schedlink;         // global run queue, free lists, wait lists
  const char *waitreason;      // while WAITING: why (a string constant)
  const void *waitobj;         // while WAITING: on what (a channel, a mutex), or NULL
  int64_t waitsince;           // nanotime it last stopped running
  void (*fn)(void *);
  void *arg;
  uintptr_t stack_hi;          // usable stack's top: its gstack_t header (stack.c)
  struct g *alllink;           // allgs; set once, before publication
  // The rest: dumps, sleeps, the ThreadSanitizer build.
  int64_t id;                  // goid, 1...; 0 while dead
  int64_t created;             // nanotime of gort_go
  const char *file;            // creation site, or NULL (then fn's symbol)
  int line;
  void *tsan_fiber;            // ThreadSanitizer's fiber (tsan build only)
  timer_t_ sleep;              // gort_sleep's timer
} g_t;

_Static_assert(offsetof(g_t, latseq) < 64 && offsetof(g_t, schedlink) == 64 && offsetof(g_t, alllink) < 128,
               "a switch touches the G's first line; parking its second");

// The running goroutine of the calling thread, NULL on a plain thread or on
// an M's scheduler stack. Never inlined: a goroutine may resume on another
// thread, and a cached TLS address would then be the old thread's.
g_t *gort__sched_getg(void) GORT_HIDDEN;

// ---- parking (proc.c) --------------------------------------------------------------------

// Parks the current goroutine (Go's gopark). unlockf(g, arg), if not NULL,
// runs on the M's scheduler stack once g's context is saved; if it returns
// false, g runs again at once. Call from a goroutine, holding no lock that
// unlockf does not release.
// Fatal if g is between gort_syscall_enter and gort_syscall_exit: what
// names the call that needs a P.
void gort__sched_not_in_syscall(g_t *g, const char *what) GORT_HIDDEN;
void gort__sched_park(bool (*unlockf)(g_t *, void *), void *arg, const char *reason) GORT_HIDDEN;
// As gort__sched_park, naming the object waited on (a channel, a mutex) for
// the goroutine dump.
void gort__sched_park_on(bool (*unlockf)(g_t *, void *), void *arg, const char *reason,
                         const void *obj) GORT_HIDDEN;
// Makes a parked goroutine runnable (Go's goready). Any thread may call it.
void gort__sched_ready(g_t *g) GORT_HIDDEN;
// Whether a locker that found a lock held should spin rather than block
// (Go's sync_runtime_canSpin, less its iteration count): another P runs
// something that may release it, and, for a goroutine, its own P has no
// other goroutine waiting to run. A plain thread may always spin.
bool gort__sched_can_spin(void) GORT_HIDDEN;

// ---- stacks (stack.c) ---------------------------------------------------------------------

// A goroutine stack's header, at its top (stack.c). Pooled while no G
// uses it.
typedef struct gstack {
  struct g *_Atomic g;         // the goroutine it is bound to, or NULL
  uintptr_t lo;                // usable stack: above the guard
  struct gstack *link;         // the cold list (proc.c)
  bool canary;                 // unguarded: a canary word at lo
} gstack_t;

// A fresh stack (a slot carved from a slab), or NULL with the OS out of
// memory.
gstack_t *gort__stack_new(void) GORT_HIDDEN;
// Promises n newly made Gs a slot each (stack.c); false with no address
// space.
bool gort__stack_promise(uint32_t n) GORT_HIDDEN;
// If addr is inside a carved stack slot: the top of its stack (its
// header's address) and, through gp, the G bound to it (NULL if none);
// 0 otherwise. guard: whether it is in the guard. Safe in a signal handler.
uintptr_t gort__stack_lookup(uintptr_t addr, g_t **gp, bool *guard) GORT_HIDDEN;
// Returns the touched pages of a pooled stack below its header to the OS.
void gort__stack_release(gstack_t *s) GORT_HIDDEN;
// The word at an unguarded stack's lowest address (stack.c).
#define GORT_STACK_CANARY 0x6f7665726c6f7721ULL  // "overflow!"
// False if an unguarded stack's canary was overwritten (an overflow).
// Inline: every switch away from a goroutine checks it.
static inline bool gort__stack_canary_ok(const g_t *g) {
  return !g->canary || *(const uint64_t *)g->stack_lo == GORT_STACK_CANARY;
}
// A G's footprint in its chunk (proc.c): whole cache lines.
#define GORT_G_BYTES GORT_ALIGN_UP(sizeof(g_t), (size_t)64)
void gort__stack_init(void) GORT_HIDDEN;
// Per-thread alternate signal stack and the overflow handler.
void gort__stack_thread_init(void) GORT_HIDDEN;
extern size_t gort__stack_size GORT_HIDDEN;
// How guards are made: 0 MADV_GUARD_INSTALL, 1 mprotect (budgeted), 2 none.
extern int gort__stack_guard_mode GORT_HIDDEN;

// ---- timers (timer.c) ---------------------------------------------------------------------

typedef struct timers {
  lock_t lock;                 // rank LOCK_TIMERS; guards heap and n
  timer_t_ **heap;             // min-heap by when
  int32_t n, cap;
  _Atomic int64_t next;        // when of heap[0], INT64_MAX if empty; read unlocked
} timers_t;

void gort__timers_add(timers_t *ts, timer_t_ *t) GORT_HIDDEN;
// Adds t to the calling M's P's heap (call on an M's scheduler stack, as
// a park's unlock step does, or from a goroutine).
void gort__timers_add_here(timer_t_ *t) GORT_HIDDEN;
// Removes t from its heap if it is still there; returns whether it was.
// After it returns, t's f is not running and will not run.
bool gort__timers_del(timer_t_ *t) GORT_HIDDEN;
// Readies the goroutines of every timer that is due; returns the next
// when (INT64_MAX if none). Call holding no timer lock.
int64_t gort__timers_run(timers_t *ts, int64_t now) GORT_HIDDEN;

// Start-up step 3 (base/start.c): options, the SIGQUIT handler; no thread.
void gort__sched_init(void);

// ---- proc.c, for the other files ------------------------------------------------------------

// Iterates every goroutine ever made (dead ones included); safe against
// concurrent spawns (allgs only grows, at its head).
g_t *gort__sched_allgs(void) GORT_HIDDEN;
int64_t gort__sched_ngoroutine(void) GORT_HIDDEN;
// /sched/latencies:seconds: sampled times from runnable to running, counts
// by log2 of nanoseconds (counts[i]: [2^(i-1), 2^i) ns; counts[0]: 0 ns;
// the last bucket open-ended), summed over the Ps.
void gort__sched_latencies(uint64_t counts[32]) GORT_HIDDEN;
void gort__sched_dump_fd(int fd) GORT_HIDDEN;
// The monitor (sysmon.c) and its view of the Ps.
void gort__sysmon_start(void) GORT_HIDDEN;
bool gort__sched_retake(int64_t now) GORT_HIDDEN;
void gort__sched_wakep_for_timers(int64_t now) GORT_HIDDEN;

// For the deadlock detector (chan/deadlock.c): true if nothing the
// scheduler runs can make progress by itself: every M idle, no goroutine
// runnable, running or in a system call, no timer pending. *ngoroutine: the
// live (blocked) goroutines. See checkdead.c.
bool gort__sched_quiescent(int64_t *ngoroutine) GORT_HIDDEN;
// Ms running; gort's own threads besides them are counted by the os layer.
int gort__sched_mlive(void) GORT_HIDDEN;

// For the collector (gc layer, above): calls fn on the live part of every
// goroutine stack that is not running on a thread the collector stops
// (from the saved sp to the top); with the world stopped.
void gort__sched_foreach_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);
// The same, for the goroutines that ran since their stack was last
// scanned (only_ran), or all; either way their "ran" mark is cleared.
void gort__sched_foreach_stack_ran(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, bool only_ran);
// The top of the goroutine stack that holds sp, or 0 if sp is on no
// goroutine stack (then it is on the thread's own).
uintptr_t gort__sched_stack_top(uintptr_t sp);

#endif  // GORT_SCHED_SCHED_H
