// The clock-named sleeps and waits beside collections (gc/blocking.c):
// clock_nanosleep (relative and absolute), C11's thrd_sleep and
// pthread_cond_clockwait (sem_clockwait is not wrapped: blocking.c says
// why). A stop of the world used to signal a thread
// blocked in one of them, and none of them is restarted after a handler:
// each collection ended the sleep or wait early, with EINTR (or, for the
// condition wait, a wake-up with nothing to wake for). A program that did
// not install a handler has no reason to expect EINTR, and a sleep that
// returns early is a sleep cut short. Each waits 300 ms through
// back-to-back collections and must take its whole time, with the result
// a timeout gives; a wait that is then woken must still see its wake.

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <threads.h>
#include <time.h>

#include "gctest.h"

#define WAIT_NS (300 * 1000 * 1000LL)

static int64_t now_ns(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static struct timespec ts_of(int64_t ns) { return (struct timespec){ns / 1000000000, ns % 1000000000}; }

enum { REL_SLEEP, ABS_SLEEP, THRD_SLEEP, COND_WAIT, WAITS };
static const char *const names[WAITS] = {"clock_nanosleep (relative)", "clock_nanosleep (TIMER_ABSTIME)",
                                         "thrd_sleep", "pthread_cond_clockwait"};
static _Atomic int running;
static int result[WAITS];
static int64_t waited[WAITS];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool woken;

// The wait k; its result as an error number (thrd_sleep's -1 as EINTR).
static int wait_once(int k) {
  int64_t t0 = now_ns(CLOCK_MONOTONIC);
  struct timespec rel = ts_of(WAIT_NS), abs = ts_of(t0 + WAIT_NS), rem;
  int r = 0;
  switch (k) {
    case REL_SLEEP:
      r = clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, &rem);
      break;
    case ABS_SLEEP:
      r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
      break;
    case THRD_SLEEP:
      r = thrd_sleep(&rel, &rem);
      if (r == -1) r = EINTR;
      break;
    case COND_WAIT:
      pthread_mutex_lock(&mu);
      // One call, not a loop: a collection that woke it early is what
      // this case looks for.
      r = pthread_cond_clockwait(&cv, &mu, CLOCK_MONOTONIC, &abs);
      if (r == 0 && !woken) r = -1;  // woken for nothing
      pthread_mutex_unlock(&mu);
      break;
  }
  waited[k] = now_ns(CLOCK_MONOTONIC) - t0;
  return r;
}

static void *waiter(void *arg) {
  int k = (int)(intptr_t)arg;
  result[k] = wait_once(k);
  atomic_fetch_sub(&running, 1);
  return NULL;
}

// Runs every wait at once on its own thread, collecting until all end.
static int collect_through_waits(void) {
  pthread_t t[WAITS];
  atomic_store(&running, WAITS);
  for (intptr_t k = 0; k < WAITS; k++) pthread_create(&t[k], NULL, waiter, (void *)k);
  gctest_sleep_ms(20);  // all are waiting
  int cycles = 0;
  double give_up = gctest_now() + 10;
  while (atomic_load(&running) > 0 && gctest_now() < give_up) {
    gort_gc_collect();
    cycles++;
  }
  for (int k = 0; k < WAITS; k++) pthread_join(t[k], NULL);
  return cycles;
}

TEST(collections_do_not_cut_clock_sleeps_and_waits_short) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  int cycles = collect_through_waits();
  EXPECT(cycles > 0, "no collection ran during the waits");
  const int timeout[WAITS] = {0, 0, 0, ETIMEDOUT};
  for (int k = 0; k < WAITS; k++) {
    EXPECT(result[k] == timeout[k], "%s returned %d (%s) after %d collections", names[k], result[k],
           result[k] > 0 ? strerror(result[k]) : result[k] < 0 ? "woken for nothing" : "no error", cycles);
    EXPECT(waited[k] >= WAIT_NS - 1000000, "%s waited %lld ms of %lld", names[k], (long long)(waited[k] / 1000000),
           (long long)(WAIT_NS / 1000000));
  }
}

// A wait woken during collections sees its wake: the signal reaches a
// wait that collections have been taking as blocked.
static void *wake_after(void *arg) {
  (void)arg;
  gctest_sleep_ms(150);
  pthread_mutex_lock(&mu);
  woken = true;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

TEST(a_clock_wait_woken_during_collections_sees_its_wake) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  woken = false;
  pthread_t w, t;
  atomic_store(&running, 1);
  pthread_create(&t, NULL, waiter, (void *)(intptr_t)COND_WAIT);
  pthread_create(&w, NULL, wake_after, NULL);
  double give_up = gctest_now() + 10;
  while (atomic_load(&running) > 0 && gctest_now() < give_up) gort_gc_collect();
  pthread_join(w, NULL);
  pthread_join(t, NULL);
  EXPECT(result[COND_WAIT] == 0, "pthread_cond_clockwait returned %d", result[COND_WAIT]);
  EXPECT(waited[COND_WAIT] < WAIT_NS, "the woken wait took %lld ms", (long long)(waited[COND_WAIT] / 1000000));
}
