// The monitor (Go's sysmon): a thread of gort's own that never runs
// goroutines and holds no P. See proc.c for the scheduler.
//
// It does three things that no M can do for itself, because the M that
// should is blocked or busy:
//   1. A P whose M has been in a system call (gort_syscall_enter) since the
//      last look is taken back and handed to another M (proc.c, handoffp),
//      so that one blocked read does not stop the goroutines queued behind
//      it. "Since the last look" (an unchanged syscall count), so a call
//      that returns in microseconds costs no handoff.
//   2. A goroutine that has run for 10 ms or more without a schedule on its
//      P is asked to yield at its next safe point (g->preempt), and the P's
//      time slice ends (p->slice_over: what it readies next goes to the back
//      of its queue, not to runnext). Never a switch from here or from a
//      signal: see proc.c.
//   3. A timer that is due while every M is busy or parked past it wakes an
//      idle M (wakep), which runs it.
//   4. Once a second, the global pool of free stacks beyond its bound
//      gives its pages back to the OS (proc.c, gort__sched_trim_stacks).
// It looks every 20 us while that finds work and backs off to every 10 ms
// when it does not. A request to yield (2) counts as work, unlike in Go's
// retake, so the monitor looks every 20 us for a millisecond after each
// 10 ms slice ends (2,200 wake-ups a second beside a ping-pong). Go's rule
// was tried: 5 interleaved runs each, the 4-way select got 13% slower
// (median 115 -> 131 ns) and the worker pool 7%, the round trip no
// faster; why is not established (a busier second vCPU may answer the
// scheduler's futex wakes sooner on this VM). When every P is idle there is nothing for it to do (no
// goroutine runs or sits in a system call, and each parked M sleeps only
// until the earliest timer, which it runs itself), so, as Go's sysmon, it
// trims the stacks once more and sleeps until a P leaves the idle list
// (pidle_get wakes it), or a second at most: an idle program then costs
// two wake-ups a second (the timeout, and one 10 ms look), not a hundred.

#include "proc.h"

#include "../os/os.h"

enum { PREEMPT_NS = 10 * 1000 * 1000 };

bool gort__sched_retake(int64_t now) {
  bool did = false;
  int n = atomic_load_explicit(&gort__sched.nallp, memory_order_acquire);
  for (int i = 0; i < n; i++) {
    p_t *p = gort__sched.allp[i];
    uint32_t st = atomic_load_explicit(&p->status, memory_order_acquire);
    if (st == P_SYSCALL) {
      uint32_t t = atomic_load_explicit(&p->syscalltick, memory_order_relaxed);
      if (p->sm_syscalltick != t) {
        p->sm_syscalltick = t;  // entered since the last look: give it one tick
        continue;
      }
      if (atomic_compare_exchange_strong(&p->status, &st, P_IDLE)) {
        gort__sched_handoffp(p);
        did = true;
      }
    } else if (st == P_RUNNING) {
      uint32_t t = atomic_load_explicit(&p->tick, memory_order_relaxed);
      if (p->sm_tick != t) {
        p->sm_tick = t;
        p->sm_when = now;
      } else if (now - p->sm_when >= PREEMPT_NS) {
        atomic_store_explicit(&p->slice_over, true, memory_order_relaxed);
        m_t *m = p->m;
        g_t *g = m != NULL ? atomic_load_explicit(&m->curg, memory_order_acquire) : NULL;
        if (g != NULL) atomic_store_explicit(&g->preempt, true, memory_order_relaxed);
        p->sm_when = now;  // ask again in another 10 ms
        did = true;
      }
    }
  }
  return did;
}

void gort__sched_wakep_for_timers(int64_t now) {
  int n = atomic_load_explicit(&gort__sched.nallp, memory_order_acquire);
  for (int i = 0; i < n; i++)
    if (atomic_load_explicit(&gort__sched.allp[i]->timers.next, memory_order_acquire) <= now) {
      gort__sched_wakep();
      return;
    }
}

enum { IDLE_NO, IDLE_WOKEN, IDLE_TIMEOUT };

// Sleeps while every P is idle: IDLE_NO if one is not, IDLE_WOKEN once a P
// left the idle list (pidle_get's wake), IDLE_TIMEOUT after a second.
static int sleep_while_idle(void) {
  sched_t *s = &gort__sched;
  if (atomic_load_explicit(&s->npidle, memory_order_relaxed) != procs()) return IDLE_NO;
  gort__sched_trim_stacks();
  lock(&s->lock);
  if (atomic_load_explicit(&s->npidle, memory_order_relaxed) != procs()) {
    unlock(&s->lock);
    return IDLE_NO;
  }
  atomic_store_explicit(&s->sysmon_note, 0, memory_order_relaxed);
  s->sysmon_wait = true;
  unlock(&s->lock);
  gort__os_futex_wait_ns(&s->sysmon_note, 0, 1000 * 1000 * 1000);
  lock(&s->lock);
  s->sysmon_wait = false;
  bool woken = atomic_load_explicit(&s->sysmon_note, memory_order_relaxed) != 0;
  unlock(&s->lock);
  return woken ? IDLE_WOKEN : IDLE_TIMEOUT;
}

static void *sysmon(void *arg) {
  (void)arg;
  int64_t delay = 20 * 1000, last_trim = 0;
  int quiet = 0;
  for (;;) {
    gort__os_sleep_ns(delay);
    int64_t now = gort__nanotime();
    atomic_store_explicit(&gort__sched.nowish, now, memory_order_relaxed);
    bool did = gort__sched_retake(now);
    gort__sched_wakep_for_timers(now - 1000 * 1000);  // overdue by 1 ms
    if (now - last_trim > 1000 * 1000 * 1000) {
      last_trim = now;
      gort__sched_trim_stacks();
    }
    quiet = did ? 0 : quiet + 1;
    if (quiet > 50) delay = delay * 2 > 10 * 1000 * 1000 ? 10 * 1000 * 1000 : delay * 2;
    else delay = 20 * 1000;
    // Woken: work again, looked at closely. A timeout with nothing
    // running keeps the long delay, so that one pass of the checks above
    // leads straight back to sleep (restarting the back-off from 20 us
    // cost an idle program some 60 wake-ups a second).
    if (delay == 10 * 1000 * 1000 && sleep_while_idle() == IDLE_WOKEN) {
      delay = 20 * 1000;
      quiet = 0;
    }
  }
  return NULL;
}

void gort__sysmon_start(void) {
  int r = gort__os_internal_thread(sysmon, NULL, 64 * 1024);
  if (r != 0) gort__warn("sched: cannot start the monitor thread (error %d)", r);
}
