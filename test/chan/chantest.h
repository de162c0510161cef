// What the channel tests share: the scheduler tests' helpers (time, waits,
// whether this is the ThreadSanitizer build) and a way to run a function
// as a goroutine and wait for it from the plain thread that runs the case.

#ifndef GORT_CHANTEST_H
#define GORT_CHANTEST_H

#include "../sched/schedtest.h"
#include "gort/chan.h"

typedef struct {
  void (*fn)(void *);
  void *arg;
  gort__wg_t done;
} chantest_go_t;

static void chantest_trampoline(void *p) {
  chantest_go_t *t = p;
  t->fn(t->arg);
  gort__wg_done(&t->done);
}

// Runs fn(arg) in a goroutine and waits for it (the case's code then runs
// as a goroutine, not on the plain thread).
static __attribute__((unused)) void run_in_goroutine(void (*fn)(void *), void *arg) {
  static chantest_go_t t;
  memset(&t, 0, sizeof t);
  t.fn = fn;
  t.arg = arg;
  gort__wg_add(&t.done, 1);
  EXPECT(gort_go(chantest_trampoline, &t) == 0);
  gort__wg_wait(&t.done);
}

#endif
