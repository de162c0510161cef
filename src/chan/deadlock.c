// Deadlock detection: "all goroutines are asleep - deadlock!" (Go:
// proc.go's checkdead). See chan.c for channels.
//
// Go's rule: when no M runs goroutine code and no timer is pending, nothing
// can ever wake a goroutine again, and the program is dead. gort has one
// more kind of party, the plain thread (main, any pthread), which may wake
// goroutines at any time, so the rule here is: every goroutine is blocked,
// every M is idle, no timer is pending (sched/checkdead.c), and every thread
// of the program that is not gort's own is blocked in gort for ever (a
// channel, a select without timeout, a sync type: counted here).
//
// The program's threads are counted as the kernel's count minus gort's
// Ms and gort's helper threads (except while a helper runs the program's
// code, a finalizer or a pool's release function: it is the program's
// then, running or blocked like any other): a thread gort never heard of (computing, in
// a system call, waiting on something else) is running as far as we know,
// and then no deadlock is reported. So under ThreadSanitizer, whose own
// background thread looks like one of the program's, nothing is ever
// reported. A goroutine in gort_syscall_enter is running too. A report is
// thus never false; a deadlock among goroutines while main waits elsewhere
// (pthread_join) goes unreported.
//
// Who checks: a plain thread blocked for ever wakes every CHECK_NS to
// check (goroutines are not needed for a check, and a program that blocks
// no plain thread for ever cannot be reported as dead anyway: its main
// still runs). A positive check is repeated a moment later, and counts only
// if nothing was woken meanwhile, so that a wake in flight is never missed.
//
// Wakes are counted only while a check runs (gort__deadlock_checking, read
// inline by every wake: chan.h): the count was a
// locked add on one global line at every wake, 7% of the unbuffered
// round trip on 2 Ps (perf), and nobody reads it between checks. A wake
// whose read of checking saw 0 began before the check did, so its waker
// was running then; only the second snapshot decides, 2 ms later, and a
// wake in flight while it is taken read checking long after it was set,
// so it is counted (its waker counts before it readies anyone, and until
// it has, it is itself running and no snapshot sees all asleep).

#include "chan.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../os/os.h"

// Threads inside gort__deadlock_check, on a line of its own: every wake
// reads it, and it is written only when a check starts or ends.
gort_deadlock_checking_t gort__deadlock_checking;

static struct {
  // Plain threads blocked for ever in gort (low half), and the process
  // they were counted in (high half): see blocked_add.
  _Atomic uint64_t blocked;
  _Atomic bool reported;
  // gort__park_wake calls while checking != 0; a line of its own, so that
  // the wakers' reads of checking stay hits while a check counts.
  _Alignas(GORT_CACHELINE) _Atomic uint64_t wakes;
} dl;

// The count belongs to one process: a forked child, where the threads the
// parent had blocked do not exist, starts again from zero (it inherited
// them: a thread blocked in the child beside a computing main was then
// "all asleep", and a real deadlock in a child went unreported). The pid
// and the count change in one step, so that no thread's count is lost to
// another's reset.
static int blocked_now(void) {
  uint64_t v = atomic_load(&dl.blocked);
  return (uint32_t)(v >> 32) == (uint32_t)getpid() ? (int)(int32_t)(uint32_t)v : 0;
}

void gort__deadlock_block(int delta) {
  uint64_t pid = (uint32_t)getpid(), v = atomic_load(&dl.blocked), next;
  do {
    uint32_t count = (v >> 32) == pid ? (uint32_t)v : 0;
    next = pid << 32 | (uint32_t)(count + (uint32_t)delta);
  } while (!atomic_compare_exchange_weak(&dl.blocked, &v, next));
}

void gort__deadlock_count_wake(void) { atomic_fetch_add_explicit(&dl.wakes, 1, memory_order_relaxed); }

// All quiet: every program thread blocked for ever, the scheduler idle.
static bool all_asleep(int64_t *ngoroutine) {
  int n = gort__os_nthreads();
  if (n < 0) return false;
  int program = n - gort__sched_mlive() - gort__os_internal_threads();
  if (blocked_now() != program) return false;
  return gort__sched_quiescent(ngoroutine);
}

// Both snapshots asleep, and no wake between them.
static bool dead(int64_t *ng) {
  uint64_t w0 = atomic_load(&dl.wakes);
  if (!all_asleep(ng)) return false;
  gort__os_sleep_ns(2 * 1000 * 1000);
  return all_asleep(ng) && atomic_load(&dl.wakes) == w0;
}

void gort__deadlock_check(void) {
  int64_t ng;
  atomic_fetch_add(&gort__deadlock_checking.n, 1);  // before w0 is read: wakes count from here
  bool d = dead(&ng);
  atomic_fetch_sub(&gort__deadlock_checking.n, 1);
  if (!d) return;
  if (atomic_exchange(&dl.reported, true)) return;  // another thread reports it
  gort__print("gort: fatal error: all goroutines are asleep - deadlock!\n\n");
  gort__print("%d goroutines and %d threads blocked in gort\n\n", (int)ng, blocked_now());
  gort__sched_dump_fd(2);
  signal(SIGABRT, SIG_DFL);
  abort();
}
