// The thread calls gort wraps for the collector, beside pthread_create
// (stw.c): a thread's exit value, and signal masks.
//
// Exit values. A thread's return value (or pthread_exit's argument) lives,
// between the thread's end and pthread_join, only in glibc's thread
// descriptor, which the collector does not scan: the thread has left the
// registry, so its stack is not scanned either. A worker that returns a
// collected object it just made, nothing else pointing at it, lost it to
// any cycle in that window. So an exiting thread whose value is a
// collected object (gort_gc_base says so; anything else cannot be freed by
// the collector) records it as a root, keyed by its pthread_t, and
// pthread_join drops the record once the value is in the joiner's hands.
// A detached thread is never joined: it records nothing. (bdwgc keeps the
// value in its thread record until GC_pthread_join, the same idea.)
// Records are only ever extra roots: a thread joined another way
// (pthread_tryjoin_np, pthread_timedjoin_np), or detached after it ended,
// leaves its record, and with it its value alive, until a later join of
// the same pthread_t or the process's end. Retention, never a premature
// free.
//
// Signal masks. Stopping the world sends each registered thread the stop
// signal (stw.c) and waits until it parks; a thread that blocks the signal
// never parks, and the collection waits for ever. Programs do block
// signals in threads, often all of them (a server that takes its signals
// in one thread with sigwait), so pthread_sigmask and sigprocmask here
// never block the stop signal, as bdwgc's wrappers do, nor SIGSEGV and
// SIGBUS (a first write to the heap faults while gcdirty=mprotect tracks
// it, and a fault with its signal blocked kills the thread). What they cannot
// cover: masks set by other calls for their duration (sigsuspend, ppoll,
// pselect, epoll_pwait, signalfd users' sigwaitinfo with every signal
// blocked); a collection waits for such a call to return.
//
// Main's pthread_exit. glibc ends the process, with exit(0), when the
// last of the threads it started ends (it counts them, main included).
// gort's own threads count too and never end (the sweeper, the mark
// worker and the finalizer thread from the first cycle on; the scavenger,
// sysmon, the Ms), so after main's pthread_exit the process outlived the
// program's last thread for ever: a zombie main, and gort's threads, which
// block every signal, so that not even SIGTERM ended it. Main's
// pthread_exit therefore starts a thread of gort's, the reaper, which
// calls exit(0) once the kernel says main's exit is over and counts no
// thread but main and gort's (its helpers, its Ms), and the scheduler has
// no goroutine left (the program's work, as a thread is). It looks each
// time a registered thread leaves (gort__gc_thread_ended), again after 1,
// 2, 4 ... ms while that thread finishes dying, and at least every second
// or so for threads gort never saw (C11's thrd_create bypasses gort's
// pthread_create). A thread the kernel counts is never cut short, known to
// gort or not; rejected for that reason: a count of the program's threads
// kept by gort's pthread_create, as glibc keeps its own. (Main must also
// leave the registry, or every later stop would wait for it: stw.c.)
//
// Static programs reach libc's pthread_join and pthread_exit as they reach
// its pthread_create (os/thread.c).

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/lock.h"
#include "../os/os.h"
#include "../sched/sched.h"
#include "gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"

typedef struct exit_record {
  struct exit_record *next;
  pthread_t thread;
  void *value;  // the root
} exit_record_t;

static struct {
  _Atomic uint32_t lock;  // a spin lock: held for a list push or unlink
  exit_record_t *list;
} exits;

static void exits_lock(void) {
  while (atomic_exchange_explicit(&exits.lock, 1, memory_order_acquire) != 0) {
    while (atomic_load_explicit(&exits.lock, memory_order_relaxed) != 0) __builtin_ia32_pause();
  }
}
static void exits_unlock(void) { atomic_store_explicit(&exits.lock, 0, memory_order_release); }

static bool detached(void) {
  pthread_attr_t attr;
  int state = PTHREAD_CREATE_JOINABLE;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return false;  // keep it: only retention
  pthread_attr_getdetachstate(&attr, &state);
  pthread_attr_destroy(&attr);
  return state == PTHREAD_CREATE_DETACHED;
}

void *gort__gc_thread_exit_value(void *value) {
  if (value == NULL || gort_gc_base(value) == NULL || detached()) return value;
  exit_record_t *r = gort_malloc(sizeof *r);
  if (r == NULL) {
    gort__warn("gc: out of memory keeping an exiting thread's value; it is not a root");
    return value;
  }
  r->thread = pthread_self();
  r->value = value;
  // A root before the thread leaves the registry: no window.
  gort_gc_add_roots(&r->value, &r->value + 1);
  exits_lock();
  r->next = exits.list;
  exits.list = r;
  exits_unlock();
  return value;
}

// Drops the oldest record of t, if any (the newest is the one a join of a
// reused pthread_t most likely meant; dropping the oldest only retains).
static void forget(pthread_t t) {
  exit_record_t *found = NULL, **at = NULL;
  exits_lock();
  for (exit_record_t **p = &exits.list; *p != NULL; p = &(*p)->next)
    if (pthread_equal((*p)->thread, t)) at = p;
  if (at != NULL) {
    found = *at;
    *at = found->next;
  }
  exits_unlock();
  if (found == NULL) return;
  gort_gc_remove_roots(&found->value, &found->value + 1);
  gort_free(found);
}

// ---- main's pthread_exit ----------------------------------------------------------

static struct {
  _Atomic uint32_t ended;  // registered threads that left; the reaper waits on it
  _Atomic int pid;         // the process whose main started the reaper (not a forked child)
} reap;

void gort__gc_thread_ended(void) {
  atomic_fetch_add(&reap.ended, 1);
  if (atomic_load_explicit(&reap.pid, memory_order_relaxed) != 0)
    gort__os_futex_wake(&reap.ended, 1);
}

static bool only_gort_left(void) {
  if (gort__os_main_thread_exited() != 1) return false;
  // Main counts: the kernel keeps a leader that exited until the process ends.
  int n = gort__os_nthreads();
  if (n < 0 || n != 1 + gort__os_internal_threads() + gort__sched_mlive()) return false;
  int64_t ngoroutine;
  return gort__sched_quiescent(&ngoroutine) && ngoroutine == 0;
}

static void *reaper(void *arg) {
  (void)arg;
  for (;;) {
    uint32_t seen = atomic_load(&reap.ended);
    for (int64_t ns = 1000000; atomic_load(&reap.ended) == seen;) {
      if (only_gort_left()) exit(0);  // what glibc does after the last thread it counts
      gort__os_futex_wait_ns(&reap.ended, seen, ns);
      if (ns < 1000000000) ns *= 2;
    }
  }
  return NULL;
}

static void main_exits(void) {
  gort__stw_leave_at_exit();
  int pid = getpid(), was = atomic_load(&reap.pid);
  if (was == pid || !atomic_compare_exchange_strong(&reap.pid, &was, pid)) return;
  if (gort__stw_internal_thread(reaper, NULL) != 0) {
    gort__warn("gc: cannot start a thread; the process may not end after main's pthread_exit");
    atomic_store(&reap.pid, 0);
  }
}

#define EXPORT __attribute__((visibility("default")))

EXPORT int pthread_join(pthread_t t, void **ret);
int pthread_join(pthread_t t, void **ret) {
  int e = gort__os_pthread_join(t, ret);
  if (e == 0) forget(t);
  return e;
}

EXPORT _Noreturn void pthread_exit(void *ret);
void pthread_exit(void *ret) {
  void *value = gort__gc_thread_exit_value(ret);
  if (gort__os_gettid() == getpid()) main_exits();
  gort__os_pthread_exit(value);
}

// ---- signal masks ---------------------------------------------------------------------

#ifndef GORT_NO_SHIM  // ThreadSanitizer tracks masks through its own interceptors

static int without_stop_signal(int how, const sigset_t *set, sigset_t *old) {
  if (set == NULL || how == SIG_UNBLOCK) return gort__os_sigmask(how, set, old);
  sigset_t s = *set;
  sigdelset(&s, gort__stw_signal());
  // Nor faults: with gcdirty=mprotect a write to the heap faults, and the
  // kernel kills a thread that faults with SIGSEGV blocked.
  sigdelset(&s, SIGSEGV);
  sigdelset(&s, SIGBUS);
  return gort__os_sigmask(how, &s, old);
}

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  return without_stop_signal(how, set, old);
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old);
int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  int e = without_stop_signal(how, set, old);
  if (e == 0) return 0;
  errno = e;
  return -1;
}

#endif
