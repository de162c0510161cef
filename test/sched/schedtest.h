// What the scheduler's tests share: a plain thread's or a goroutine's wait
// for a condition with a deadline, and whether this is the ThreadSanitizer
// build.

#ifndef GORT_SCHEDTEST_H
#define GORT_SCHEDTEST_H

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "gort/sched.h"
#include "gort/sync.h"
#include "sched/sched.h"
#include "sync/sync.h"
#include "test.h"

#if defined(__SANITIZE_THREAD__)
#define SCHEDTEST_TSAN 1
#else
#define SCHEDTEST_TSAN 0
#endif

#define NOINLINE __attribute__((noinline, noclone))

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Waits (on any thread) until *v reaches want or ms pass; true if it did.
static inline bool wait_for_i64(_Atomic int64_t *v, int64_t want, int ms) {
  int64_t end = now_ns() + (int64_t)ms * 1000000;
  while (atomic_load(v) < want) {
    if (now_ns() > end) return false;
    gort_sleep(100 * 1000);
  }
  return true;
}

// Spins for ns without a safe point (a goroutine that computes).
static inline void busy_ns(int64_t ns) {
  int64_t end = now_ns() + ns;
  while (now_ns() < end) {
  }
}

#endif
