// Timers: a heap per P (Go 1.14+'s time.go), for gort_sleep now and the
// channel timeouts of the next issue.
//
// See proc.c for the scheduler. One global heap would be one lock for every
// sleep of every thread, which Go measured as a bottleneck and replaced
// with a heap per P in 1.14. Here, as there, a timer is added to the heap
// of the P whose goroutine sleeps, and any M that looks for work runs the
// due timers of every P (proc.c, check_timers): a P's own M may be busy in
// a long computation, and its sleepers must not wait for it. An M with
// nothing to run parks with a timeout at the earliest timer of all Ps, and
// sysmon wakes an idle M if a timer is overdue anyway.
//
// A timer's function is always "ready this goroutine": the goroutine parks
// first and is added to the heap by the park's unlock step (proc.c), so it
// cannot be readied before its context is saved.
//
// Invariants: heap[i]->idx == i; heap[(i-1)/2]->when <= heap[i]->when;
// next == heap[0]->when, or INT64_MAX when empty.

#include "proc.h"

#include <string.h>

#include "../base/persistent.h"
#include "../os/os.h"
#include "gort/sched.h"

static void swap(timers_t *ts, int32_t i, int32_t j) {
  timer_t_ *t = ts->heap[i];
  ts->heap[i] = ts->heap[j];
  ts->heap[j] = t;
  ts->heap[i]->idx = i;
  ts->heap[j]->idx = j;
}

static void sift_up(timers_t *ts, int32_t i) {
  while (i > 0) {
    int32_t parent = (i - 1) / 2;
    if (ts->heap[parent]->when <= ts->heap[i]->when) break;
    swap(ts, i, parent);
    i = parent;
  }
}

static void sift_down(timers_t *ts, int32_t i) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < ts->n && ts->heap[l]->when < ts->heap[m]->when) m = l;
    if (r < ts->n && ts->heap[r]->when < ts->heap[m]->when) m = r;
    if (m == i) return;
    swap(ts, i, m);
    i = m;
  }
}

// The heap's array grows by doubling from persistent memory; the old array
// is not reused (at most as much again as the largest heap, once).
static bool grow(timers_t *ts) {
  int32_t cap = ts->cap ? ts->cap * 2 : 64;
  timer_t_ **h = gort__persistent_alloc((size_t)cap * sizeof *h, 64);
  if (h == NULL) return false;
  if (ts->n > 0) memcpy(h, ts->heap, (size_t)ts->n * sizeof *h);
  ts->heap = h;
  ts->cap = cap;
  return true;
}

void gort__timers_add(timers_t *ts, timer_t_ *t) {
  lock(&ts->lock);
  if (ts->n == ts->cap && !grow(ts)) {
    unlock(&ts->lock);
    gort__throw("sched: out of memory for a timer");
  }
  t->ts = ts;
  t->idx = ts->n;
  ts->heap[ts->n++] = t;
  sift_up(ts, t->idx);
  atomic_store_explicit(&ts->next, ts->heap[0]->when, memory_order_release);
  unlock(&ts->lock);
}

int64_t gort__timers_run(timers_t *ts, int64_t now) {
  g_t *ready = NULL;
  lock(&ts->lock);
  while (ts->n > 0 && ts->heap[0]->when <= now) {
    timer_t_ *t = ts->heap[0];
    swap(ts, 0, ts->n - 1);
    ts->n--;
    sift_down(ts, 0);
    t->idx = -1;
    if (t->f != NULL) {
      t->f(t);  // under the lock: see timer_t_ in sched.h
      continue;
    }
    t->g->schedlink = ready;  // a sleeping G is on no other list
    ready = t->g;
  }
  int64_t next = ts->n > 0 ? ts->heap[0]->when : INT64_MAX;
  atomic_store_explicit(&ts->next, next, memory_order_release);
  unlock(&ts->lock);
  while (ready != NULL) {
    g_t *g = ready;
    ready = g->schedlink;
    gort__sched_ready(g);
  }
  return next;
}

void gort__timers_add_here(timer_t_ *t) {
  m_t *m = gort__sched_getm();
  gort_assert(m != NULL && m->p != NULL);
  gort__timers_add(&m->p->timers, t);
}

bool gort__timers_del(timer_t_ *t) {
  timers_t *ts = t->ts;
  if (ts == NULL) return false;
  lock(&ts->lock);
  bool was = t->idx >= 0;
  if (was) {
    int32_t i = t->idx, last = ts->n - 1;
    if (i != last) {
      swap(ts, i, last);
      ts->n--;
      sift_down(ts, i);
      sift_up(ts, i);
    } else {
      ts->n--;
    }
    t->idx = -1;
    atomic_store_explicit(&ts->next, ts->n > 0 ? ts->heap[0]->when : INT64_MAX, memory_order_release);
  }
  unlock(&ts->lock);
  return was;
}

// ---- gort_sleep ------------------------------------------------------------------------------

static bool add_sleep_timer(g_t *g, void *arg) {
  (void)arg;
  m_t *m = gort__sched_getm();
  gort__timers_add(&m->p->timers, &g->sleep);
  return true;
}

void gort_sleep(int64_t ns) {
  if (ns <= 0) return;
  g_t *g = gort__sched_getg();
  if (g == NULL) {
    gort__os_sleep_ns(ns);
    return;
  }
  gort__sched_not_in_syscall(g, "gort_sleep");
  gort__sched_safepoint();
  int64_t when = gort__nanotime() + ns;
  g->sleep.when = when < 0 ? INT64_MAX : when;  // overflow: forever
  g->sleep.g = g;
  g->sleep.f = NULL;
  gort__sched_park(add_sleep_timer, NULL, "sleep");
}
