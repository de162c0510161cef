// The goroutine scheduler (Go: proc.go, runtime2.go).
//
// Goroutines are cheap threads of control multiplexed onto a few OS
// threads, so that a program may block one of them per request, connection
// or subtask without paying a thread's stack and a kernel switch for each.
// The design is Go's, for the reasons Go gives, in C:
//
//   G  a goroutine: its function, its saved context and its stack (stack.c)
//   M  an OS thread that runs goroutines, with its own scheduler stack (g0)
//   P  a processor: the right to run goroutines, and the resources that go
//      with it (a run queue, pools of dead Gs and free stacks, a timer heap). GORT_MAXPROCS
//      of them, so that at most that many goroutines run at once whatever
//      the number of Ms (some are blocked in system calls).
//
// Why Ps and not a run queue per M or one global queue: a global queue is a
// lock every spawn and every switch takes (Go before 1.1, and it did not
// scale); per-M queues strand work on an M blocked in a system call. A P
// detaches from an M that blocks (gort_syscall_enter, sysmon.c) and goes on
// with another M, taking its queue with it.
//
// Scheduling, in the order an M looks for work (findrunnable):
//   1. Every 61st schedule, the due timers of every P and then one G from
//      the global queue first, so that goroutines that keep this P busy
//      (yielding, or readying each other through runnext) cannot starve
//      sleepers or the global queue (61: prime, and not too often; Go's
//      constant). Go checks timers on every schedule; a clock read per
//      schedule would be a sixth of a yield here. Every schedule counts
//      (p->nsched), those that inherit a time slice too: counted in time
//      slices (schedtick), a pair handing a token back and forth through
//      runnext advanced the count once per 10 ms slice, and a sleeper on
//      its P woke after 61 of them; with one P, 200 sleeps of 100 us
//      beside such a pair did not end within a minute.
//   2. runnext, then the local queue: a 256-slot ring, lock-free for one
//      producer (the P's M) and many consumers (thieves), as Go's runq.
//      runnext holds the goroutine the running one just readied or spawned,
//      so that a producer/consumer pair keeps running on one P, warm in its
//      cache. It inherits the time slice (schedtick does not advance), so
//      to sysmon the pair is one long runner: once the slice (10 ms) is
//      used up, the P readies to the back of its ring instead, and the
//      rest of the ring gets its turn.
//   3. The global queue, in a batch (its share per P), under sched.lock.
//   4. Expired timers of any P (timer.c); they ready sleepers onto this P.
//   5. Stealing: half of a victim's queue, victims in a random order, four
//      rounds (the last may take runnext too, after waiting about 50 us
//      for a running owner to run it itself: runq.c), as a "spinning" M. At most
//      half of the busy Ps' worth of Ms spin at once: spinning burns CPU, and
//      on a 2-core machine shared with others, wasted spins cost real time.
//   6. Nothing: the P goes idle, the M parks on its own futex, with a
//      timeout at the earliest timer of any P.
// When work appears (a spawn, a ready), wakep starts one spinning M if there
// is an idle P and no M spinning already: the spinning M wakes the next one
// when it finds work (resetspinning), so wake-ups are never lost and never
// come in a herd.
//
// Switching. A goroutine gives up its M only in the runtime's own calls
// (gort_yield, gort_sleep, parking, exit, gort_syscall_exit): never from a
// signal handler, because the interrupted C code may hold libc's locks or be
// midway through anything (DESIGN.md). It switches to its M's scheduler
// context (g0) with gort__ctx_switch_ontop, which runs the "after" step of
// the switch (put the G on a queue, release the lock that its waker takes)
// on g0's stack once the G's registers are saved: a waker on another M can
// then resume the G at once. Go's mcall does the same. The g0 context is the
// M's own thread stack. When the G's own P has another G queued, the switch
// goes straight to it instead, and the "after" step runs on that G's stack,
// below its saved frame ("switching straight to the next goroutine"
// below): one switch instead of two, and a yield between two goroutines
// went from 38 to 17 ns. The rest of the scheduler (findrunnable, parking
// an M) runs on g0 only, so a goroutine's stack holds its own frames and,
// for the moment of a switch, one small "after" step, or the binding of a
// stack to the goroutine it switches to (bind_stack). The G's status
// changes before the switch that takes it off its thread and after the one
// that puts it on, so the collector, which scans running goroutines through
// their threads and the others through their saved sp, never misses one
// (stack.c, gort__sched_foreach_stack).
//
// Per-thread state. A goroutine may resume on another thread. The compiler
// treats the address of a TLS variable as constant within a function, so a
// function that switches must not touch TLS directly on both sides of the
// switch: it reads the M through getm() (sched_m, proc.h: one load through
// %fs at a measured offset, in an asm the compiler may not cache; a call
// of gort__sched_getm, never inlined, where that is not available), and
// errno is saved and restored the same way (errno is TLS too). The
// allocator's thread cache is read inside gort_malloc, at each call, so it
// is always the current thread's. The program's own code cannot be helped
// so: glibc declares __errno_location const, so a function may read the
// old thread's errno after a switch; sched.h tells programs what to do.
//
// Preemption is cooperative: the monitor (sysmon.c) sets g->preempt on a
// goroutine that has run for 10 ms and the goroutine yields at its next
// safe point (gort_go, gort_yield, gort_sleep and the park calls). A loop
// that calls none of them runs until it ends: C has no safe points we
// could insert, and a switch from a signal is rejected above. The
// collector does not need goroutines to stop: it stops the threads, and
// every goroutine that is not on a thread is only memory (its saved stack).
//
// Rejected: ucontext (swapcontext saves the signal mask with a system call:
// 35x slower); going through g0 on every switch, as Go does (it was a
// second switch and a pass through findrunnable on each yield and park; an
// M with nothing to run still goes to g0, which has a stack of its own).
//
// Invariants:
//   - A G is on at most one of: a local run queue or runnext, the global
//     queue, a free list, a wait list (channels and sync, timer heap). Its
//     schedlink is owned by that list.
//   - m->p != NULL while the M runs a goroutine, except between
//     gort_syscall_enter and gort_syscall_exit.
//   - nmspinning counts the Ms with m->spinning set.
//   - A P is idle (on sched.pidle, P_IDLE) or owned by exactly one M
//     (P_RUNNING, or P_SYSCALL while its M is in a system call).

#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../base/options.h"
#include "../base/persistent.h"
#include "../base/start.h"
#include "../gc/gc.h"
#include "../os/os.h"
#include "gort/sched.h"

sched_t gort__sched = {.lock = LOCK_INIT};
#define sched gort__sched

static GORT_TLS m_t *tls_m;

// Not inlined, nor analysed across: see "Per-thread state" above.
GORT_NOINLINE __attribute__((noipa)) m_t *gort__sched_getm(void) {
  m_t *m = tls_m;
  __asm__ volatile("" : "+r"(m));
  return m;
}

GORT_NOINLINE __attribute__((noipa)) g_t *gort__sched_getg(void) { return sched_g(); }

#define getm sched_m

_Atomic intptr_t gort__tls_m_off, gort__tls_errno_off;

// Any thread may measure (each finds the same offsets): relaxed stores and
// loads, which are plain moves on x86-64.
void gort__sched_tls_init(void) {
#if defined(__x86_64__)
  char *tp = __builtin_thread_pointer();
  atomic_store_explicit(&gort__tls_errno_off, (char *)&errno - tp, memory_order_relaxed);
  atomic_store_explicit(&gort__tls_m_off, (char *)&tls_m - tp, memory_order_relaxed);
#endif
}

static GORT_NOINLINE __attribute__((noipa)) void save_errno_call(g_t *g) { g->saved_errno = errno; }
static GORT_NOINLINE __attribute__((noipa)) void restore_errno_call(g_t *g) { errno = g->saved_errno; }

// errno is saved with the goroutine and restored on whichever thread
// resumes it (sched_m's offsets, proc.h).
GORT_INLINE void save_errno(g_t *g) {
#if defined(__x86_64__)
  intptr_t off = atomic_load_explicit(&gort__tls_errno_off, memory_order_relaxed);
  if (gort_likely(off != 0)) {
    __asm__ volatile("movl %%fs:(%1), %0" : "=r"(g->saved_errno) : "r"(off) : "memory");
    return;
  }
#endif
  save_errno_call(g);
}
GORT_INLINE void restore_errno(g_t *g) {
#if defined(__x86_64__)
  intptr_t off = atomic_load_explicit(&gort__tls_errno_off, memory_order_relaxed);
  if (gort_likely(off != 0)) {
    __asm__ volatile("movl %0, %%fs:(%1)" : : "r"(g->saved_errno), "r"(off) : "memory");
    return;
  }
#endif
  restore_errno_call(g);
}

static uint32_t fastrand(m_t *m) {
  m->rand ^= m->rand << 13;
  m->rand ^= m->rand >> 7;
  m->rand ^= m->rand << 17;
  return (uint32_t)(m->rand >> 32);
}

// ---- ThreadSanitizer fibers ----------------------------------------------------------------

#if defined(__SANITIZE_THREAD__)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#define TSAN_CURRENT() __tsan_get_current_fiber()
#define TSAN_CREATE() __tsan_create_fiber(0)
#define TSAN_DESTROY(f) __tsan_destroy_fiber(f)
#define TSAN_SWITCH(f) __tsan_switch_to_fiber((f), 0)
#else
#define TSAN_CURRENT() NULL
#define TSAN_CREATE() NULL
#define TSAN_DESTROY(f) ((void)(f))
#define TSAN_SWITCH(f) ((void)(f))
#endif

// The validator of a P (debug builds, at each execute): its queue holds at
// most RUNQ_SIZE runnable Gs, its G pool dead ones without a stack, its
// stack pool stacks bound to no G.
static bool p_is_valid(p_t *p) {
  uint32_t h = atomic_load(&p->runqhead), t = atomic_load(&p->runqtail);
  if (t - h > RUNQ_SIZE) return false;
  if (p->gfree.n < 0 || p->gfree.n > GORT_PFREE_MAX) return false;
  for (int i = 0; i < p->gfree.n; i++) {
    g_t *g = p->gfree.a[i];
    if (atomic_load(&g->status) != G_DEAD || g->stack_lo != 0) return false;
  }
  if (p->sfree.n < 0 || p->sfree.n > GORT_PFREE_MAX) return false;
  for (int i = 0; i < p->sfree.n; i++)
    if (atomic_load(&((gstack_t *)p->sfree.a[i])->g) != NULL) return false;
  return true;
}

// ---- idle Ps and Ms (sched.lock held) ----------------------------------------------------------

static void pidle_put(p_t *p) {
  atomic_store_explicit(&p->status, P_IDLE, memory_order_release);
  p->m = NULL;
  p->link = sched.pidle;
  sched.pidle = p;
  atomic_fetch_add_explicit(&sched.npidle, 1, memory_order_relaxed);
}

static p_t *pidle_get(void) {
  p_t *p = sched.pidle;
  if (p != NULL) {
    sched.pidle = p->link;
    atomic_fetch_sub_explicit(&sched.npidle, 1, memory_order_relaxed);
    if (gort_unlikely(sched.sysmon_wait)) {  // the program is busy again (sysmon.c)
      sched.sysmon_wait = false;
      atomic_store_explicit(&sched.sysmon_note, 1, memory_order_release);
      gort__os_futex_wake(&sched.sysmon_note, 1);
    }
  }
  return p;
}

static void acquirep(m_t *m, p_t *p) {
  m->p = p;
  p->m = m;
  atomic_store_explicit(&p->status, P_RUNNING, memory_order_release);
}

// ---- parking and waking Ms ---------------------------------------------------------------------

static void note_wakeup(m_t *m) {
  atomic_store_explicit(&m->note, 1, memory_order_release);
  gort__os_futex_wake(&m->note, 1);
}

// Waits for the note; ns < 0: no limit. Returns whether it was woken.
static bool note_sleep(m_t *m, int64_t ns) {
  int64_t deadline = ns >= 0 ? gort__nanotime() + ns : 0;
  while (atomic_load_explicit(&m->note, memory_order_acquire) == 0) {
    int64_t left = -1;
    if (ns >= 0) {
      left = deadline - gort__nanotime();
      if (left <= 0) return false;
    }
    gort__stw_futex_wait_ns(&m->note, 0, left);  // a stop need not wake it: gc/stw.c
  }
  atomic_store_explicit(&m->note, 0, memory_order_relaxed);
  return true;
}

// Parks m (it holds no P) until startm hands it one, or for at most ns;
// returns with m->p set if it was handed a P.
static void stopm(m_t *m, int64_t ns) {
  lock(&sched.lock);
  m->schedlink = sched.midle;
  sched.midle = m;
  sched.nmidle++;
  unlock(&sched.lock);
  if (!note_sleep(m, ns)) {
    // Timed out: leave the idle list, unless a waker took us off it
    // already, in which case its wakeup is on the way.
    lock(&sched.lock);
    bool listed = false;
    for (m_t **pm = &sched.midle; *pm != NULL; pm = &(*pm)->schedlink)
      if (*pm == m) {
        *pm = m->schedlink;
        sched.nmidle--;
        listed = true;
        break;
      }
    unlock(&sched.lock);
    if (listed) return;
    note_sleep(m, -1);
  }
  if (m->nextp != NULL) {
    acquirep(m, m->nextp);
    m->nextp = NULL;
  }
}

static void *mstart(void *arg);

static void newm(p_t *p, bool spinning) {
  m_t *m = gort__persistent_alloc(sizeof *m, GORT_CACHELINE);
  if (m != NULL) {
    m->nextp = p;
    m->spinning = spinning;
    m->id = atomic_fetch_add(&sched.mcount, 1);
    m->rand = gort__os_random64() | 1;
    // Through gort's own pthread_create: the collector knows every M.
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, mstart, m);
    pthread_attr_destroy(&attr);
    if (r == 0) return;
    gort__warn("sched: cannot start a thread (error %d); goroutines may wait", r);
  }
  lock(&sched.lock);
  pidle_put(p);
  unlock(&sched.lock);
  if (spinning) atomic_fetch_sub(&sched.nmspinning, 1);
}

// Runs p (or an idle P if p is NULL) on an idle or new M. spinning: the
// caller counted the M in nmspinning already.
void gort__sched_startm(p_t *p, bool spinning) {
  lock(&sched.lock);
  if (p == NULL) {
    p = pidle_get();
    if (p == NULL) {
      unlock(&sched.lock);
      if (spinning) atomic_fetch_sub(&sched.nmspinning, 1);
      return;
    }
  }
  m_t *m = sched.midle;
  if (m != NULL) {
    sched.midle = m->schedlink;
    sched.nmidle--;
  }
  unlock(&sched.lock);
  if (m == NULL) {
    newm(p, spinning);
    return;
  }
  m->spinning = spinning;
  m->nextp = p;
  note_wakeup(m);
}

// One more M looks for work, if a P is idle and no M is looking already.
static GORT_NOINLINE void wakep_slow(void) {
  int zero = 0;
  if (atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) != 0 ||
      !atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
    return;
  gort__sched_startm(NULL, true);
}

// Inline where a ready calls it: most readies find no idle P.
static inline void wakep(void) {
  if (atomic_load_explicit(&sched.npidle, memory_order_relaxed) != 0) wakep_slow();
}

void gort__sched_wakep(void) { wakep(); }

static void reset_spinning(m_t *m) {
  m->spinning = false;
  if (atomic_fetch_sub(&sched.nmspinning, 1) == 1) gort__sched_wakep();
}

// Gives p away (its M blocks in a system call, or retires): to a new M if
// it has work, else to the idle list.
void gort__sched_handoffp(p_t *p) {
  if (!gort__runq_empty(p) || atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0 ||
      atomic_load_explicit(&p->timers.next, memory_order_relaxed) != INT64_MAX) {
    gort__sched_startm(p, false);
    return;
  }
  int zero = 0;
  if (atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) == 0 &&
      atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1)) {
    gort__sched_startm(p, true);
    return;
  }
  lock(&sched.lock);
  if (atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0) {
    unlock(&sched.lock);
    gort__sched_startm(p, false);
    return;
  }
  pidle_put(p);
  unlock(&sched.lock);
}

// ---- finding work ------------------------------------------------------------------------------

// Runs the due timers of every P (they ready goroutines onto the caller's
// P); returns the earliest timer left.
// The clock is read only if some P has a timer (a clock read costs ~20 ns,
// and most schedules have no timer to look at).
static int64_t check_timers(void) {
  int64_t next = INT64_MAX, now = 0;
  int n = atomic_load_explicit(&sched.nallp, memory_order_acquire);
  for (int i = 0; i < n; i++) {
    timers_t *ts = &sched.allp[i]->timers;
    int64_t w = atomic_load_explicit(&ts->next, memory_order_acquire);
    if (w == INT64_MAX) continue;
    if (now == 0) now = gort__nanotime();
    if (w <= now) w = gort__timers_run(ts, now);
    if (w < next) next = w;
  }
  return next;
}

// Whether any P has a timer (no clock read).
static bool timers_waiting(void) {
  int n = atomic_load_explicit(&sched.nallp, memory_order_acquire);
  for (int i = 0; i < n; i++)
    if (atomic_load_explicit(&sched.allp[i]->timers.next, memory_order_relaxed) != INT64_MAX) return true;
  return false;
}

static g_t *steal_work(m_t *m, p_t *p) {
  int n = procs();
  for (int round = 0; round < 4; round++) {
    uint32_t start = fastrand(m);
    for (int i = 0; i < n; i++) {
      p_t *victim = sched.allp[(start + (uint32_t)i) % (uint32_t)n];
      if (victim == p || gort__runq_empty(victim)) continue;
      g_t *g = gort__runq_steal(p, victim, round == 3);
      if (g != NULL) return g;
    }
  }
  return NULL;
}

// P p moved past gomaxprocs (gort_maxprocs lowered it): its goroutines go to
// the global queue and it leaves service. Its timers stay (check_timers
// reads every P ever made).
static void retire_p(m_t *m, p_t *p) {
  lock(&sched.lock);
  if (p->id < procs()) {  // gort_maxprocs raised it again meanwhile
    unlock(&sched.lock);
    return;
  }
  g_t *g;
  bool inherit;
  while ((g = gort__runq_get(p, &inherit)) != NULL) gort__globrunq_put(g);
  atomic_store_explicit(&p->status, P_DEAD, memory_order_release);
  p->m = NULL;
  m->p = NULL;
  // Without a P it spins no more: counted still, it made every wakep
  // (the one below too) a no-op, and it then slept in stopm, every G
  // runnable and every M parked (a helper's hunt: 12 of 20 runs that
  // lowered gort_maxprocs while goroutines ran hung).
  bool spinning = m->spinning;
  m->spinning = false;
  unlock(&sched.lock);
  if (spinning) atomic_fetch_sub(&sched.nmspinning, 1);
  gort__sched_wakep();
}

// Returns a runnable G, with m->p set; blocks until there is one.
static g_t *findrunnable(m_t *m, bool *inherit) {
  *inherit = false;
  for (;;) {
    p_t *p = m->p;
    if (p == NULL) {
      lock(&sched.lock);
      p = pidle_get();
      unlock(&sched.lock);
      if (p == NULL) {
        if (m->spinning) {  // as in retire_p: a spinner without a P parks as no spinner
          reset_spinning(m);
          continue;
        }
        stopm(m, -1);
        continue;
      }
      acquirep(m, p);
    }
    if (p->id >= procs()) {
      retire_p(m, p);
      continue;
    }
    g_t *g;
    // Every 61st schedule, due timers first: below they are run only once
    // the local queue is empty, which goroutines that keep yielding (or
    // readying each other) on every P would never let happen, and sysmon's
    // rescue needs an idle P. A sleeper then waited as long as they ran.
    if (p->nsched % 61 == 0 && timers_waiting()) check_timers();
    if (p->nsched % 61 == 0 && atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0) {
      lock(&sched.lock);
      g = gort__globrunq_get(p, 1);
      unlock(&sched.lock);
      if (g != NULL) return g;
    }
    if ((g = gort__runq_get(p, inherit)) != NULL) return g;
    if (atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0) {
      lock(&sched.lock);
      g = gort__globrunq_get(p, 0);
      unlock(&sched.lock);
      if (g != NULL) return g;
    }
    int64_t next_timer = check_timers();
    if ((g = gort__runq_get(p, inherit)) != NULL) return g;
    int busy = procs() - atomic_load_explicit(&sched.npidle, memory_order_relaxed);
    if (m->spinning || 2 * atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) < busy) {
      if (!m->spinning) {
        m->spinning = true;
        atomic_fetch_add(&sched.nmspinning, 1);
      }
      if ((g = steal_work(m, p)) != NULL) return g;
    }
    // Nothing: give the P up. The global queue is checked again under the
    // lock that gort_go's global path takes, so a G put there is seen.
    lock(&sched.lock);
    if (atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0) {
      g = gort__globrunq_get(p, 0);
      unlock(&sched.lock);
      return g;
    }
    m->p = NULL;
    pidle_put(p);
    unlock(&sched.lock);
    if (m->spinning) {
      // The last spinning M to stop must look once more at every queue: a
      // spawn that saw it spinning did not wake anyone (Go's "delicate
      // dance" in findrunnable).
      m->spinning = false;
      atomic_fetch_sub(&sched.nmspinning, 1);
      // The global queue too: a plain thread's ready or spawn puts its G
      // there and, seeing this M still spinning, wakes nobody.
      bool global = atomic_load(&sched.runq_size) > 0;
      for (int i = 0; i < procs(); i++) {
        if (!global && gort__runq_empty(sched.allp[i])) continue;
        lock(&sched.lock);
        p = pidle_get();
        unlock(&sched.lock);
        if (p != NULL) {
          acquirep(m, p);
          m->spinning = true;
          atomic_fetch_add(&sched.nmspinning, 1);
        }
        break;
      }
      if (m->p != NULL) continue;
    }
    int64_t wait = -1;
    if (next_timer != INT64_MAX) {
      wait = next_timer - gort__nanotime();
      if (wait < 0) wait = 0;
    }
    stopm(m, wait);
  }
}

// ---- running goroutines --------------------------------------------------------------------------

// ---- scheduling latency ----------------------------------------------------------------------
//
// /sched/latencies:seconds, as Go's: how long goroutines wait runnable
// before they run (queueing behind others, a wake-up's delay). Reading the
// clock twice per transition would cost a yield more than a third of its
// time, so, as Go samples one transition in 8 per goroutine, gort samples
// one in LAT_PERIOD (a goroutine's first sample falls at a point set by
// its id). Each P keeps its own histogram, by log2 of nanoseconds, written
// only by its owner; a reader sums them.
enum { LAT_PERIOD = 64 };

static inline void lat_runnable(g_t *g) {
  if (gort_unlikely((++g->latseq & (LAT_PERIOD - 1)) == 0)) g->runnable_at = gort__nanotime();
}

static inline void lat_running(p_t *p, g_t *g) {
  if (gort_likely(g->runnable_at == 0)) return;
  int64_t ns = gort__nanotime() - g->runnable_at;
  g->runnable_at = 0;
  int b = ns <= 0 ? 0 : 64 - __builtin_clzll((uint64_t)ns);
  if (b > 31) b = 31;
  uint64_t n = atomic_load_explicit(&p->lathist[b], memory_order_relaxed);
  atomic_store_explicit(&p->lathist[b], n + 1, memory_order_relaxed);
}

void gort__sched_latencies(uint64_t counts[32]) {
  for (int b = 0; b < 32; b++) counts[b] = 0;
  int n = atomic_load_explicit(&sched.nallp, memory_order_acquire);
  for (int i = 0; i < n; i++)
    for (int b = 0; b < 32; b++) counts[b] += atomic_load_explicit(&sched.allp[i]->lathist[b], memory_order_relaxed);
}

// What every path that puts g on m does before the switch (execute from
// g0, switch_direct from another goroutine). inherit: g runs in the time
// slice of the goroutine that readied it (runnext). The ThreadSanitizer
// fiber switch stays in the caller, just before the context switch: a
// function that returns after it would pop the new fiber's shadow stack.
static void bind_stack(p_t *p, g_t *g);

static void begin_run(m_t *m, g_t *g, bool inherit) {
  p_t *p = m->p;
  p->nsched++;
  if (!inherit) {  // a new time slice
    p->schedtick++;
    atomic_store_explicit(&p->tick, p->schedtick, memory_order_relaxed);
    atomic_store_explicit(&p->slice_over, false, memory_order_relaxed);
  }
  atomic_store_explicit(&g->preempt, false, memory_order_relaxed);
  atomic_store_explicit(&g->gcdirty, true, memory_order_relaxed);
  if (gort_unlikely(g->stack_lo == 0)) bind_stack(p, g);
  lat_running(p, g);
  g->m = m;
  // Release: sysmon reaches g through curg alone and writes its preempt
  // flag; g may be fresh metadata made on another thread (a plain mov on
  // x86, but the order ThreadSanitizer checks).
  atomic_store_explicit(&m->curg, g, memory_order_release);
}

static void execute(m_t *m, g_t *g, bool inherit) {
  gort_assert_internal(atomic_load(&g->status) == G_RUNNABLE);
  gort_assert_internal(m->p != NULL && m->p->m == m && atomic_load(&m->p->status) == P_RUNNING);
  gort_assert_expensive(p_is_valid(m->p));
  if (m->spinning) reset_spinning(m);
  begin_run(m, g, inherit);
  TSAN_SWITCH(g->tsan_fiber);
  gort__ctx_switch(&m->g0ctx, &g->ctx);
}

static void schedule_loop(m_t *m) {
  for (;;) {
    g_t *g = m->resume;
    bool inherit = true;
    if (g != NULL) m->resume = NULL;
    else g = findrunnable(m, &inherit);
    execute(m, g, inherit);
  }
}

static void *mstart(void *arg) {
  m_t *m = arg;
  // Whatever the creator blocked (sysmon blocks everything): an M runs the
  // program's code, and must take the collector's stop signal and faults.
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  tls_m = m;
  atomic_fetch_add(&sched.mlive, 1);
  m->tsan_g0 = TSAN_CURRENT();
  gort__stack_thread_init();
  acquirep(m, m->nextp);
  m->nextp = NULL;
  schedule_loop(m);
  return NULL;
}

// Leaves the running goroutine for its M's scheduler, running after(arg) on
// the scheduler's stack once the goroutine's context is saved; returns when
// the goroutine is resumed (perhaps on another M). The caller set g's status.
static GORT_NOINLINE void switch_to_g0(g_t *g, void (*after)(void *), void *arg) {
  m_t *m = getm();
  save_errno(g);
  if (gort_unlikely(!gort__stack_canary_ok(g))) gort__stack_overflow(g, g->stack_lo);
  TSAN_SWITCH(m->tsan_g0);
  gort__ctx_switch_ontop(&g->ctx, &m->g0ctx, after, arg);
  // Resumed.
  atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
  restore_errno(g);
}

// The "after" steps, on g0. Each clears the M's current G first.
static g_t *drop_curg(void) {
  m_t *m = getm();
  g_t *g = atomic_load_explicit(&m->curg, memory_order_relaxed);
  atomic_store_explicit(&m->curg, NULL, memory_order_relaxed);
  g->m = NULL;
  return g;
}

// The back of the local queue: Go's Gosched uses the global one, which is
// a lock per yield; the local ring is as fair to this P's goroutines, and
// the others see the global queue every 61st schedule anyway.
static void yield_after(void *arg) {
  (void)arg;
  g_t *g = drop_curg();
  p_t *p = gort__sched_getm()->p;
  if (p != NULL) {
    gort__runq_put(p, g, false);
    return;
  }
  lock(&sched.lock);  // yielding between gort_syscall_enter and _exit: no P
  gort__globrunq_put(g);
  unlock(&sched.lock);
}

static void park_after(void *arg) {
  (void)arg;
  m_t *m = getm();
  g_t *g = drop_curg();
  if (g->unlockf != NULL && !g->unlockf(g, g->unlock_arg)) {
    atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
    m->resume = g;
  }
}

// ---- switching straight to the next goroutine ----------------------------------------------
//
// A goroutine that yields or parks while its own P has another one queued
// switches to that one directly: one switch instead of two, and no pass
// through findrunnable. The "after" step (queue the yielder, release the
// waker's lock) runs on the next goroutine's stack, below its saved frame,
// once the old goroutine's registers are saved, exactly as it would on
// g0's: a thief or a waker on another M may resume the old goroutine at
// once. The order is findrunnable's: runnext, then the ring; not when the
// P is due to look at the global queue (every 61st schedule) or must
// retire, which the g0 path does. execute's bookkeeping for the next
// goroutine is done before the switch; its status becomes running on its
// own side, after the switch, as on every path (the collector's rule,
// above). The ThreadSanitizer build switches fibers the same way.

static g_t *next_local(p_t *p, bool *inherit) {
  if (p == NULL || p->id >= procs()) return NULL;
  if (p->nsched % 61 == 0 &&
      (atomic_load_explicit(&sched.runq_size, memory_order_relaxed) > 0 || timers_waiting()))
    return NULL;
  return gort__runq_get(p, inherit);
}

// Leaves g (its status set by the caller) for next, running after(g) on
// next's stack first; returns when g is resumed.
static GORT_NOINLINE void switch_direct(m_t *m, g_t *g, g_t *next, bool inherit, void (*after)(void *)) {
  save_errno(g);
  if (gort_unlikely(!gort__stack_canary_ok(g))) gort__stack_overflow(g, g->stack_lo);
  g->m = NULL;
  begin_run(m, next, inherit);
  TSAN_SWITCH(next->tsan_fiber);
  gort__ctx_switch_ontop(&g->ctx, &next->ctx, after, g);
  // Resumed.
  atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
  restore_errno(g);
}

// Leaves g (its status set by the caller): straight to the next goroutine
// of its P with direct_after, else through g0 with g0_after.
GORT_INLINE void switch_away(g_t *g, void (*direct_after)(void *), void (*g0_after)(void *)) {
  m_t *m = getm();
  bool inherit;
  g_t *next = next_local(m->p, &inherit);
  if (next != NULL) switch_direct(m, g, next, inherit, direct_after);
  else switch_to_g0(g, g0_after, NULL);
}

static void yield_direct_after(void *arg) { gort__runq_put(getm()->p, arg, false); }

// A refused park (the condition came true meanwhile) makes g the next to
// run, after the goroutine this M switched to: on the g0 path it runs at
// once.
static void park_direct_after(void *arg) {
  g_t *g = arg;
  if (g->unlockf != NULL && !g->unlockf(g, g->unlock_arg)) {
    atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
    gort__runq_put(getm()->p, g, true);
  }
}

// A goroutine between gort_syscall_enter and gort_syscall_exit has no P:
// a call that parks, yields, spawns or ends it there crashed on the
// missing P (a helper's hunt: gort_sleep in timers_add, a return in
// gfput) or named the wrong misuse (a channel receive: "gort_syscall_exit
// without gort_syscall_enter"). Now it is one clear fatal error.
void gort__sched_not_in_syscall(g_t *g, const char *what) {
  if (g != NULL && gort_unlikely(atomic_load_explicit(&g->status, memory_order_relaxed) == G_SYSCALL) &&
      g != sched.forked_in_syscall) {
    char msg[160];
    gort__snprint(msg, sizeof msg, "%s between gort_syscall_enter and gort_syscall_exit (goroutine)", what);
    gort__fatal(msg, g);
  }
}

void gort__sched_park(bool (*unlockf)(g_t *, void *), void *arg, const char *reason) {
  gort__sched_park_on(unlockf, arg, reason, NULL);
}

void gort__sched_park_on(bool (*unlockf)(g_t *, void *), void *arg, const char *reason,
                         const void *obj) {
  g_t *g = sched_g();
  if (g == NULL) gort__fatal("sched: park outside a goroutine", NULL);
  gort__sched_not_in_syscall(g, reason);
  g->unlockf = unlockf;
  g->unlock_arg = arg;
  g->waitreason = reason;
  g->waitsince = sched_nowish();  // for dumps: sysmon's resolution will do
  g->waitobj = obj;
  atomic_store_explicit(&g->status, G_WAITING, memory_order_relaxed);
  switch_away(g, park_direct_after, park_after);
}

void gort__sched_ready(g_t *g) {
  uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
  if (st != G_WAITING) gort__fatal("sched: ready of a goroutine that is not waiting", g);
  // Whoever readies it may just have written into its stack (a channel's
  // direct hand-off): the collector's final stop must rescan it.
  atomic_store_explicit(&g->gcdirty, true, memory_order_relaxed);
  lat_runnable(g);
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
  m_t *m = getm();
  if (m != NULL && m->p != NULL) {
    // runnext, unless this P's time slice is used up (sysmon says so): then
    // the back of the queue, so that a pair that readies each other, and
    // so inherits one time slice for ever, cannot starve the rest of the
    // queue (Go gets the same from preempting the pair). A flag on the P,
    // not on the goroutine: sysmon cannot tell which of the pair runs.
    bool over = atomic_load_explicit(&m->p->slice_over, memory_order_relaxed);
    if (over) atomic_store_explicit(&m->p->slice_over, false, memory_order_relaxed);
    gort__runq_put(m->p, g, !over);
  } else {
    lock(&sched.lock);
    gort__globrunq_put(g);
    unlock(&sched.lock);
  }
  wakep();
}

void gort__sched_safepoint(void) { sched_safepoint(); }

// Spinning on a lock pays only while its holder runs on another CPU. With
// every other P idle or itself looking for work, the holder is parked or
// preempted and nothing releases the lock during the spin; with goroutines
// queued on the spinner's own P, blocking hands the CPU to them, where a
// spin keeps them off it and keeps the lock's line bouncing between CPUs
// (8 goroutines on 2 Ps all spinning on one mutex: bench/chan mutex_8).
bool gort__sched_can_spin(void) {
  m_t *m = getm();
  if (m == NULL || m->p == NULL) return true;
  int busy = procs() - atomic_load_explicit(&sched.npidle, memory_order_relaxed) -
             atomic_load_explicit(&sched.nmspinning, memory_order_relaxed);
  return busy > 1 && gort__runq_empty(m->p);
}

// ---- spawning and exiting ------------------------------------------------------------------------
//
// Dead Gs and free stacks are pooled apart (stack.c says why a G holds a
// stack only while it has run and not ended): each P keeps a stack of
// each, spilling its older half to the global one past a bound and taking
// a batch back when empty, so that spawn, first run and exit take no lock.
// Both are hot first: a goroutine that ends leaves its stack on top of its
// P's pool, where the next goroutine to start there finds it warm.
// Returning a pooled stack's pages to the OS is not done here: madvise on a
// multi-threaded process shoots down TLB entries on every CPU (40% of
// skynet's time when every exit past the bound released its stack); sysmon
// trims the global stack pool once a second instead
// (gort__sched_trim_stacks), and the trimmed, cold stacks are reused last.
// The pools are stacks of pointers, not lists through their members: when
// a G lived at the top of its stack, moving a batch along a list touched a
// page, and missed the TLB, per G (a fifth of the spawn benchmark's
// samples, in the walks).
enum { PFREE_MAX = GORT_PFREE_MAX, GFREE_KEEP = 4096, GCHUNK = 64 };

// Room for n more on a global pool (sched.lock held).
static void ptrstack_reserve(ptrstack_t *ps, uint32_t n) {
  uint32_t size = (uint32_t)atomic_load_explicit(&ps->n, memory_order_relaxed);
  if (size + n <= ps->cap) return;
  uint32_t cap = ps->cap != 0 ? ps->cap : 4096;
  while (cap < size + n) cap *= 2;
  int err;
  void **a = gort__os_reserve(0, (size_t)cap * sizeof *a, 4096, &err);
  if (a == NULL) gort__throw("sched: out of memory for the pools of dead goroutines and free stacks");
  if (size != 0) memcpy(a, ps->a, size * sizeof *a);
  if (ps->a != NULL) gort__os_unmap(ps->a, (size_t)ps->cap * sizeof *a);
  ps->a = a;
  ps->cap = cap;
}

// Pushes x on a P's pool (local; NULL without a P: then on the global
// one); the older half goes to the global one when it fills, all under the
// lock, so that a fork's child finds no entry in both.
static void pool_put(ppool_t *local, ptrstack_t *global, void *x) {
  if (local != NULL) {
    local->a[local->n++] = x;
    if (local->n < PFREE_MAX) return;
  }
  uint32_t k = local != NULL ? PFREE_MAX / 2 : 1;
  lock(&sched.lock);
  ptrstack_reserve(global, k);
  uint32_t size = (uint32_t)atomic_load_explicit(&global->n, memory_order_relaxed);
  if (local != NULL) {
    memcpy(global->a + size, local->a, k * sizeof local->a[0]);
    memmove(local->a, local->a + k, (PFREE_MAX - k) * sizeof local->a[0]);
    local->n -= (int32_t)k;
  } else {
    global->a[size] = x;
  }
  atomic_store_explicit(&global->n, (int)(size + k), memory_order_relaxed);
  unlock(&sched.lock);
}

// One from a global pool, hot first; for stacks, the cold ones last
// (sched.lock held).
static void *global_pop(ptrstack_t *global) {
  int n = atomic_load_explicit(&global->n, memory_order_relaxed);
  if (n > 0) {
    atomic_store_explicit(&global->n, n - 1, memory_order_relaxed);
    return global->a[n - 1];
  }
  gstack_t *st = global == &sched.sfree ? sched.scold : NULL;
  if (st != NULL) {
    sched.scold = st->link;
    atomic_fetch_sub_explicit(&sched.nscold, 1, memory_order_relaxed);
  }
  return st;
}

static bool global_has(ptrstack_t *global) {
  return atomic_load_explicit(&global->n, memory_order_relaxed) > 0 ||
         (global == &sched.sfree && atomic_load_explicit(&sched.nscold, memory_order_relaxed) > 0);
}

// One from a P's pool (local; NULL without a P: then from the global
// one), or from the global one, which also refills half of the P's pool in
// the same visit; NULL if both are empty.
static void *pool_get(ppool_t *local, ptrstack_t *global) {
  if (local != NULL && local->n > 0) return local->a[--local->n];
  if (!global_has(global)) return NULL;
  lock(&sched.lock);
  void *x = global_pop(global);
  if (local != NULL)
    for (void *y; local->n < PFREE_MAX / 2 && (y = global_pop(global)) != NULL;) local->a[local->n++] = y;
  unlock(&sched.lock);
  return x;
}

static void gfput(p_t *p, g_t *g) {
  gort_assert_internal(atomic_load(&g->status) == G_DEAD);
  pool_put(p != NULL ? &p->gfree : NULL, &sched.gfree, g);
}

static g_t *gfget(p_t *p) { return pool_get(p != NULL ? &p->gfree : NULL, &sched.gfree); }

// A G never used before, zeroed: from the P's chunk of GCHUNK (one
// metadata allocation, and one promise of stack slots, per 64 Gs; their
// lines are adjacent, so a burst of spawns writes whole pages), or alone
// without a P. NULL if the Gs or their promised slots cannot be had (a
// promise made for a chunk that then cannot be had stays made: address
// space only).
static g_t *g_alloc(p_t *p) {
  if (p == NULL) return gort__stack_promise(1) ? gort__persistent_alloc(GORT_G_BYTES, 64) : NULL;
  if (p->gchunk_left == 0) {
    if (!gort__stack_promise(GCHUNK)) return NULL;
    p->gchunk = gort__persistent_alloc(GCHUNK * GORT_G_BYTES, 64);
    if (p->gchunk == NULL) return NULL;
    p->gchunk_left = GCHUNK;
  }
  g_t *g = (g_t *)p->gchunk;
  p->gchunk += GORT_G_BYTES;
  p->gchunk_left--;
  return g;
}

// ---- binding a stack ---------------------------------------------------------------------

// The frame gort__ctx_switch pops for a G that has not run yet
// (switch_amd64.S): MXCSR and x87 control word at their defaults, r12 = g,
// return address gort__ctx_entry.
static void ctx_init(g_t *g) {
  uintptr_t top = GORT_ALIGN_DOWN(g->stack_hi, (uintptr_t)16);
  uint64_t *f = (uint64_t *)(top - 64);
  f[0] = 0x1f80 | ((uint64_t)0x037f << 32);
  f[1] = f[2] = f[3] = 0;          // r15 r14 r13
  f[4] = (uint64_t)(uintptr_t)g;   // r12
  f[5] = f[6] = 0;                 // rbx rbp
  f[7] = (uint64_t)(uintptr_t)gort__ctx_entry;
  g->ctx.sp = f;
}

// At a G's first run, on the M that runs it (begin_run): a stack from its
// P's pool, else a fresh slot, which the promise made at the G's making
// covers (stack.c). On the direct path this runs on the leaving
// goroutine's stack, before the switch, with whatever lock its park's
// unlock step releases still held (a channel's, a semaphore's): a refill
// takes sched.lock and a carving may map a slab, both ranked above those.
// stack_lo is published last: the collector, stopping this thread
// anywhere, takes a G with stack_lo set to have a valid saved sp.
static GORT_NOINLINE void bind_stack(p_t *p, g_t *g) {
  gstack_t *st = pool_get(&p->sfree, &sched.sfree);
  if (st == NULL) st = gort__stack_new();
  if (st == NULL) gort__throw("sched: out of memory for a goroutine's stack");
  atomic_store_explicit(&st->g, g, memory_order_release);
  g->stack_hi = (uintptr_t)st;
  g->canary = st->canary;
  ctx_init(g);
  __atomic_store_n(&g->stack_lo, st->lo, __ATOMIC_RELEASE);
}

// At a G's exit, on the next goroutine's stack or g0's: the stack goes to
// the P's pool (the global one without a P: a fork's child whose
// goroutine forked inside a system-call section returns there).
static void unbind_stack(p_t *p, g_t *g) {
  gstack_t *st = (gstack_t *)g->stack_hi;
  __atomic_store_n(&g->stack_lo, 0, __ATOMIC_RELAXED);
  g->stack_hi = 0;
  g->canary = false;
  atomic_store_explicit(&st->g, NULL, memory_order_relaxed);
  pool_put(p != NULL ? &p->sfree : NULL, &sched.sfree, st);
}

// sysmon, about once a second: the global stack pool beyond GFREE_KEEP
// (its bottom: the longest unused) gives its touched pages back to the OS
// and becomes the cold list.
void gort__sched_trim_stacks(void) {
  ptrstack_t *ps = &sched.sfree;
  if (atomic_load_explicit(&ps->n, memory_order_relaxed) <= GFREE_KEEP) return;
  lock(&sched.lock);
  int n = atomic_load_explicit(&ps->n, memory_order_relaxed);
  if (n <= GFREE_KEEP) {
    unlock(&sched.lock);
    return;
  }
  // The bottom of the stack, the longest unused, goes cold; it is copied
  // out and linked through its headers outside the lock (their pages are
  // touched for the release anyway).
  int ncold = n - GFREE_KEEP;
  gstack_t **out = gort__os_reserve(0, GORT_ALIGN_UP((size_t)ncold * sizeof *out, (size_t)4096), 4096, &(int){0});
  if (out == NULL) {
    unlock(&sched.lock);
    return;  // nothing trimmed this time
  }
  memcpy(out, ps->a, (size_t)ncold * sizeof *out);
  memmove(ps->a, ps->a + ncold, GFREE_KEEP * sizeof *out);
  atomic_store_explicit(&ps->n, GFREE_KEEP, memory_order_relaxed);
  unlock(&sched.lock);
  gstack_t *cold = NULL, *last = NULL;
  for (int i = 0; i < ncold; i++) {
    gstack_t *st = out[i];
    gort__stack_release(st);
    st->link = cold;
    if (cold == NULL) last = st;
    cold = st;
  }
  gort__os_unmap(out, GORT_ALIGN_UP((size_t)ncold * sizeof *out, (size_t)4096));
  lock(&sched.lock);
  last->link = sched.scold;
  sched.scold = cold;
  atomic_fetch_add_explicit(&sched.nscold, ncold, memory_order_relaxed);
  unlock(&sched.lock);
}

// ---- counting goroutines ------------------------------------------------------------------------
//
// A spawn and an exit each counted with an atomic add on one global word
// cost a transfer of that word's cache line between the CPUs whenever
// goroutines were spawned and ended on different Ps: with the id counter
// beside it, a fifth of skynet's time. Each P counts its own spawns and
// exits (its owner writes them, with plain stores), and takes ids in
// batches of GOID_BATCH, as Go's goidcache does; the global words serve
// only the threads without a P. Ids stay unique, and increase per P.
//
// The count is read by summing, exits first: an exit is ordered after its
// goroutine's spawn (the spawn's store precedes the release that publishes
// the G), so any exit the reader sees has its spawn seen by the later
// reads, and the sum is never below the goroutines that were live at the
// first read. It may count a goroutine that ends during the reads, as Go's
// gcount may.

enum { GOID_BATCH = 16 };

static int64_t new_goid(p_t *p) {
  if (p == NULL) return atomic_fetch_add_explicit(&sched.goidgen, 1, memory_order_relaxed) + 1;
  if (p->goidcache == p->goidend) {
    p->goidcache = atomic_fetch_add_explicit(&sched.goidgen, GOID_BATCH, memory_order_relaxed);
    p->goidend = p->goidcache + GOID_BATCH;
  }
  return ++p->goidcache;
}

static void count_spawn(p_t *p) {
  if (p == NULL) {
    atomic_fetch_add_explicit(&sched.ngoroutine, 1, memory_order_relaxed);
    return;
  }
  int64_t n = atomic_load_explicit(&p->nspawned, memory_order_relaxed);
  atomic_store_explicit(&p->nspawned, n + 1, memory_order_release);
}

static void count_exit(p_t *p) {
  if (p == NULL) {
    atomic_fetch_sub_explicit(&sched.ngoroutine, 1, memory_order_relaxed);
    return;
  }
  int64_t n = atomic_load_explicit(&p->nexited, memory_order_relaxed);
  atomic_store_explicit(&p->nexited, n + 1, memory_order_release);
}

int64_t gort__sched_ngoroutine(void) {
  int n = atomic_load_explicit(&sched.nallp, memory_order_acquire);
  int64_t exited = 0, spawned = 0;
  for (int i = 0; i < n; i++) exited += atomic_load_explicit(&sched.allp[i]->nexited, memory_order_acquire);
  int64_t plain = atomic_load_explicit(&sched.ngoroutine, memory_order_acquire);
  for (int i = 0; i < n; i++) spawned += atomic_load_explicit(&sched.allp[i]->nspawned, memory_order_acquire);
  int64_t live = plain + spawned - exited;
  return live > 0 ? live : 0;
}

int64_t gort_num_goroutine(void) { return gort__sched_ngoroutine(); }

// On the next goroutine's stack (or g0's): the dead one's stack is free
// from here.
static void exit_direct_after(void *arg) {
  g_t *g = arg;
  TSAN_DESTROY(g->tsan_fiber);
  g->tsan_fiber = NULL;
  p_t *p = getm()->p;
  unbind_stack(p, g);
  gfput(p, g);
}

static void exit_after(void *arg) {
  (void)arg;
  exit_direct_after(drop_curg());
}

// The first frame of every goroutine (switch_amd64.S, gort__ctx_entry).
GORT_NORETURN void gort__sched_gomain(g_t *g);
void gort__sched_gomain(g_t *g) {
  atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
  errno = 0;
  g->fn(g->arg);
  gort__sched_not_in_syscall(g, "a goroutine's return");
  g->arg = NULL;  // not a root any more
  // Checked here as well as at the switch away: an overflow found there
  // named goroutine 0, the id a dead G has.
  if (gort_unlikely(!gort__stack_canary_ok(g))) gort__stack_overflow(g, g->stack_lo);
  atomic_store_explicit(&g->status, G_DEAD, memory_order_relaxed);
  g->id = 0;
  count_exit(gort__sched_getm()->p);
  switch_away(g, exit_direct_after, exit_after);
  gort__throw("sched: a dead goroutine was resumed");
}

static void sched_start(void);
static void ensure_sysmon(void);

static pthread_once_t start_once = PTHREAD_ONCE_INIT;

int gort__go_at(void (*fn)(void *), void *arg, const char *file, int line) {
  if (fn == NULL) return EINVAL;
  gort__sched_not_in_syscall(gort__sched_getg(), "gort_go");
  gort__start_ensure();
  pthread_once(&start_once, sched_start);
  ensure_sysmon();
  m_t *m = getm();
  p_t *p = m != NULL ? m->p : NULL;
  g_t *g = gfget(p);
  if (g == NULL) {
    g = g_alloc(p);
    if (g == NULL) return ENOMEM;
    g_t *head = atomic_load_explicit(&sched.allgs, memory_order_relaxed);
    do g->alllink = head;
    while (!atomic_compare_exchange_weak_explicit(&sched.allgs, &head, g, memory_order_release,
                                                  memory_order_relaxed));
  }
  g->fn = fn;
  g->arg = arg;
  atomic_store_explicit(&g->gcdirty, true, memory_order_relaxed);
  g->file = file;
  g->line = line;
  g->id = new_goid(p);
  g->created = sched_nowish();
  g->waitsince = g->created;
  g->waitreason = NULL;
  g->saved_errno = 0;
  atomic_store_explicit(&g->preempt, false, memory_order_relaxed);
  g->latseq = (uint8_t)g->id;
  g->runnable_at = 0;
  lat_runnable(g);
  g->tsan_fiber = TSAN_CREATE();
  count_spawn(p);
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_release);
  if (p != NULL) {
    gort__runq_put(p, g, true);
  } else {
    lock(&sched.lock);
    gort__globrunq_put(g);
    unlock(&sched.lock);
  }
  gort__sched_wakep();
  if (m != NULL) gort__sched_safepoint();
  return 0;
}

#undef gort_go
int gort_go(void (*fn)(void *), void *arg) { return gort__go_at(fn, arg, NULL, 0); }

void gort_yield(void) {
  g_t *g = gort__sched_getg();
  if (g == NULL) {
    sched_yield();
    return;
  }
  gort__sched_not_in_syscall(g, "gort_yield");
  atomic_store_explicit(&g->preempt, false, memory_order_relaxed);
  g->waitreason = "yield";
  lat_runnable(g);
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
  switch_away(g, yield_direct_after, yield_after);
}


int64_t gort_goroutine_id(void) {
  g_t *g = gort__sched_getg();
  return g != NULL ? g->id : 0;
}

g_t *gort__sched_allgs(void) { return atomic_load_explicit(&sched.allgs, memory_order_acquire); }

// ---- system calls (Go's entersyscall, exitsyscall) ---------------------------------------------

void gort_syscall_enter(void) {
  g_t *g = gort__sched_getg();
  if (g == NULL) return;
  m_t *m = getm();
  p_t *p = m->p;
  if (p == NULL) gort__fatal("gort_syscall_enter: already in a system call", g);
  save_errno(g);
  g->waitsince = sched_nowish();
  g->waitreason = "syscall";
  atomic_store_explicit(&g->status, G_SYSCALL, memory_order_relaxed);
  m->oldp = p;
  m->p = NULL;
  atomic_fetch_add_explicit(&p->syscalltick, 1, memory_order_relaxed);
  atomic_store_explicit(&p->status, P_SYSCALL, memory_order_release);
  restore_errno(g);
}

static void syscall_exit_after(void *arg) {
  (void)arg;
  g_t *g = drop_curg();
  lock(&sched.lock);
  gort__globrunq_put(g);
  unlock(&sched.lock);
  // This M has no P: findrunnable finds one or parks the M.
}

void gort_syscall_exit(void) {
  g_t *g = gort__sched_getg();
  if (g == NULL) return;
  m_t *m = getm();
  if (atomic_load_explicit(&g->status, memory_order_relaxed) != G_SYSCALL)
    gort__fatal("gort_syscall_exit without gort_syscall_enter", g);
  p_t *p = m->oldp;
  m->oldp = NULL;
  save_errno(g);
  uint32_t st = P_SYSCALL;
  if (atomic_compare_exchange_strong(&p->status, &st, P_RUNNING)) {
    m->p = p;  // fast path: nobody took the P
    atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
    restore_errno(g);
    return;
  }
  lock(&sched.lock);
  p = pidle_get();
  unlock(&sched.lock);
  if (p != NULL) {
    acquirep(m, p);
    atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
    restore_errno(g);
    return;
  }
  // No P free: queue the goroutine for another M; this one parks.
  atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
  switch_to_g0(g, syscall_exit_after, NULL);
}

// ---- configuration --------------------------------------------------------------------------

static p_t *new_p(int id) {
  p_t *p = gort__persistent_alloc(sizeof *p, GORT_CACHELINE);
  if (p == NULL) gort__throw("sched: out of memory for a P");
  p->id = id;
  p->timers.lock = (lock_t)LOCK_INIT;
  atomic_store(&p->timers.next, INT64_MAX);
  return p;
}

// Makes Ps 0..n-1 exist and serve (sched.lock held).
static void set_procs(int n) {
  int have = atomic_load_explicit(&sched.nallp, memory_order_relaxed);
  for (int i = have; i < n; i++) {
    sched.allp[i] = new_p(i);
    atomic_store_explicit(&sched.nallp, i + 1, memory_order_release);
    pidle_put(sched.allp[i]);
  }
  for (int i = 0; i < n && i < have; i++)
    if (atomic_load(&sched.allp[i]->status) == P_DEAD) pidle_put(sched.allp[i]);
  atomic_store_explicit(&sched.gomaxprocs, n, memory_order_relaxed);
  // Idle Ps past n leave the idle list; running ones retire in findrunnable.
  for (p_t **pp = &sched.pidle; *pp != NULL;) {
    if ((*pp)->id >= n) {
      atomic_store(&(*pp)->status, P_DEAD);
      *pp = (*pp)->link;
      atomic_fetch_sub(&sched.npidle, 1);
    } else {
      pp = &(*pp)->link;
    }
  }
}

// The Ps wanted: GORT_MAXPROCS, or the CPUs the process may use: the
// affinity of the thread that started gort (taken at start-up: a thread
// that later pins itself does not decide), bounded by the cgroup's CPU
// quota, read the first time it is needed (a handful of files, which a
// process that never starts a goroutine should not pay). Under sched.lock.
static int want_procs(void) {
  if (sched.want_procs == 0) {
    int n = gort__os_ncpu_quota(sched.affinity_cpus);
    sched.want_procs = n > MAXPROCS ? MAXPROCS : n < 1 ? 1 : n;
  }
  return sched.want_procs;
}

static void sched_start(void) {
  gort__runq_fence_init();  // before any P runs a goroutine
  lock(&sched.lock);
  set_procs(want_procs());
  unlock(&sched.lock);
  atomic_store(&sched.started, true);
}

// The monitor starts with the first goroutine, and again in a forked child.
static void ensure_sysmon(void) {
  if (gort_likely(atomic_load_explicit(&sched.sysmon_started, memory_order_acquire))) return;
  bool no = false;
  if (atomic_compare_exchange_strong(&sched.sysmon_started, &no, true)) gort__sysmon_start();
}

int gort_maxprocs(int n) {
  gort__start_ensure();
  lock(&sched.lock);
  int old = atomic_load(&sched.started) ? procs() : want_procs();
  if (n > 0) {
    if (n > MAXPROCS) n = MAXPROCS;
    sched.want_procs = n;
    if (atomic_load(&sched.started)) set_procs(n);
  }
  unlock(&sched.lock);
  if (n > old) gort__sched_wakep();
  return old;
}

void gort__sched_init(void) {
  gort__sched_tls_init();
  gort__stack_init();
  int n = (int)gort__opts.maxprocs;  // 0 (unset): want_procs() finds it
  if (n > MAXPROCS) n = MAXPROCS;
  sched.want_procs = n > 0 ? n : 0;
  if (n <= 0) sched.affinity_cpus = gort__os_ncpu_affinity();
  gort__sched_signals_init();
  gort__sched_fork_init();
}
