// The scheduler's half of deadlock detection (Go: proc.go's checkdead).
// See chan/deadlock.c for the whole.
//
// Go declares a deadlock when no M is running goroutine code and no timer
// is pending: then nothing inside the runtime can ever ready a goroutine
// again. The scheduler half here answers the same question for the Ms and
// goroutines; the threads outside the scheduler are the other half.
//
// An M that parks a goroutine is not idle until its park's unlock step has
// run (which may add a timer: a select's timeout), so "every M idle" also
// closes the window in which a goroutine is WAITING but its timer is not
// yet in a heap.

#include "proc.h"

int gort__sched_mlive(void) { return atomic_load(&gort__sched.mlive); }

bool gort__sched_quiescent(int64_t *ngoroutine) {
  sched_t *s = &gort__sched;
  *ngoroutine = 0;
  if (!atomic_load(&s->started)) return true;  // no goroutine ever ran
  lock(&s->lock);
  bool idle = s->nmidle == atomic_load(&s->mlive) && atomic_load(&s->runq_size) == 0 &&
              atomic_load(&s->nmspinning) == 0;
  unlock(&s->lock);
  if (!idle) return false;
  int n = atomic_load_explicit(&s->nallp, memory_order_acquire);
  for (int i = 0; i < n; i++) {
    p_t *p = s->allp[i];
    if (atomic_load_explicit(&p->timers.next, memory_order_acquire) != INT64_MAX) return false;
    if (!gort__runq_empty(p)) return false;
  }
  for (g_t *g = gort__sched_allgs(); g != NULL; g = g->alllink) {
    uint32_t st = atomic_load_explicit(&g->status, memory_order_acquire);
    if (st == G_DEAD || st == G_IDLE) continue;
    if (st != G_WAITING) return false;
    (*ngoroutine)++;
  }
  return true;
}
