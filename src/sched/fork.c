// fork(): the child has one thread, the one that forked. See proc.c for the
// scheduler.
//
// POSIX gives the child only the calling thread; the scheduler's Ms are
// threads, so in the child they are gone, with every goroutine they ran or
// had queued. As with threads, those goroutines do not exist in the child:
// their Gs are marked dead and left out of every list (their stacks stay
// mapped and unused; a child usually execs or exits). What the child keeps:
//   - the forking goroutine, if a goroutine forked, with its M (the thread
//     itself) and its P;
//   - every other P, idle, with an empty run queue and no timers;
//   - no idle M and no monitor: the next gort_go starts them again.
// Before the fork the scheduler's and the stacks' locks are taken (base/
// start.c runs the hooks in rank order), so the child finds no list half
// changed; the per-P timer locks are not (a heap's lock is held only
// briefly, and the child empties every heap anyway).

#include "../base/start.h"
#include "proc.h"

static void prepare(void) {
  lock(&gort__sched.lock);
  gort__stack_fork(0);
}

static void parent(void) {
  gort__stack_fork(1);
  unlock(&gort__sched.lock);
}

static void child(void) {
  gort__stack_fork(2);
  sched_t *s = &gort__sched;
  lock_reinit(&s->lock);
  m_t *m = gort__sched_getm();
  g_t *self = gort__sched_getg();
  int64_t live = 0;
  // A goroutine that forked between gort_syscall_enter and _exit goes on
  // in the child as it always did, gort calls and all (gort__sched_not_in_syscall).
  s->forked_in_syscall = self != NULL && atomic_load(&self->status) == G_SYSCALL ? self : NULL;
  for (g_t *g = gort__sched_allgs(); g != NULL; g = g->alllink) {
    uint32_t st = atomic_load(&g->status);
    if (g == self) live++;
    else if (st != G_DEAD && st != G_IDLE) atomic_store(&g->status, G_DEAD);
  }
  atomic_store(&s->ngoroutine, live);
  s->runq_first = 0;  // the ring's memory is kept
  atomic_store(&s->runq_size, 0);
  s->midle = NULL;
  s->nmidle = 0;
  s->pidle = NULL;
  atomic_store(&s->npidle, 0);
  atomic_store(&s->nmspinning, 0);
  atomic_store(&s->mlive, m != NULL);  // only the forking thread survives
  if (m != NULL) m->spinning = false;
  p_t *mine = m != NULL ? (m->p != NULL ? m->p : m->oldp) : NULL;
  int n = atomic_load(&s->nallp);
  for (int i = 0; i < n; i++) {
    p_t *p = s->allp[i];
    atomic_store(&p->runqhead, 0);
    atomic_store(&p->runqtail, 0);
    atomic_store(&p->runnext, NULL);
    // A thief of a thread the child does not have may have held its flag.
    atomic_store(&p->runnext_owner, 0);
    atomic_store(&p->runnext_thief, 0);
    atomic_store(&p->timers.lock.state, 0);
    p->timers.n = 0;
    atomic_store(&p->timers.next, INT64_MAX);
    atomic_store(&p->nspawned, 0);  // the live count is all in ngoroutine
    atomic_store(&p->nexited, 0);
    if (p == mine) continue;
    if (p->id < procs()) {
      p->link = s->pidle;
      s->pidle = p;
      atomic_store(&p->status, P_IDLE);
      p->m = NULL;
      atomic_fetch_add(&s->npidle, 1);
    } else {
      atomic_store(&p->status, P_DEAD);
    }
  }
  atomic_store(&s->sysmon_started, false);
  s->sysmon_wait = false;
  atomic_store(&s->nowish, 0);  // no sysmon to keep it: read the clock until one starts
}

static fork_hook_t sched_fork = {
    .name = "sched", .rank = LOCK_SCHED, .prepare = prepare, .parent = parent, .child = child};

void gort__sched_fork_init(void) { gort__start_add_fork_hook(&sched_fork); }
