// Threads that exit after libc allocated on their behalf must give all
// their memory back.
//
// glibc keeps some buffers per thread and frees them as the thread exits,
// after the pthread key destructors have run, so after gort's own exit
// hook has retired the thread's cache: strerror() of an unknown error and
// strsignal() of an unknown signal format into a malloc'd buffer, and a
// failed dlopen() leaves its message for dlerror() in one. Such a late free
// must not leave anything behind (a fresh cache that no exit hook will
// ever retire, say). Each case runs 10,000 short threads, four at a time,
// after 200 to warm up, and requires RSS to grow by less than 8 MiB.
//
// The libc calls must reach gort's malloc: this needs the libc shim, so the
// Makefile leaves this file out of the TSan build.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

#define MiB ((int64_t)1 << 20)

static void *call_strerror(void *arg) {
  (void)arg;
  const char *s = strerror(123456);
  if (strstr(s, "123456") == NULL) harness_fail(__FILE__, __LINE__, "strerror(123456) = \"%s\"", s);
  return NULL;
}

static void *call_strsignal(void *arg) {
  (void)arg;
  const char *s = strsignal(77777);
  if (strstr(s, "77777") == NULL) harness_fail(__FILE__, __LINE__, "strsignal(77777) = \"%s\"", s);
  return NULL;
}

static void *call_failing_dlopen(void *arg) {
  (void)arg;
  void *h = dlopen("/nonexistent.so", RTLD_NOW);
  if (h != NULL) harness_fail(__FILE__, __LINE__, "dlopen(\"/nonexistent.so\") succeeded");
  const char *e = dlerror();
  if (e == NULL || strstr(e, "nonexistent") == NULL)
    harness_fail(__FILE__, __LINE__, "dlerror() = \"%s\"", e ? e : "(null)");
  return NULL;
}

static void run_threads(void *(*fn)(void *), int n) {
  enum { AT_ONCE = 4 };
  for (int i = 0; i < n; i += AT_ONCE) {
    pthread_t t[AT_ONCE];
    for (int j = 0; j < AT_ONCE; j++)
      if (pthread_create(&t[j], NULL, fn, NULL) != 0) harness_fail(__FILE__, __LINE__, "pthread_create");
    for (int j = 0; j < AT_ONCE; j++) pthread_join(t[j], NULL);
  }
}

static void expect_threads_leave_nothing(void *(*fn)(void *), const char *what) {
  // This also makes the program reference malloc, which links the shim.
  char *p = malloc(16);
  memset(p, 0, 16);
  EXPECT(gort_usable_size(p) >= 16, "malloc is gort's");
  free(p);
  run_threads(fn, 200);
  int64_t before = harness_rss_bytes();
  const int n = 10000 * harness_scale();
  run_threads(fn, n);
  int64_t grown = harness_rss_bytes() - before;
  EXPECT(grown < 8 * MiB, "RSS grew by %lld KiB over %d threads calling %s (before: %lld KiB)",
         (long long)(grown >> 10), n, what, (long long)(before >> 10));
}

TEST(threads_that_called_strerror_of_an_unknown_error_leave_nothing_behind) {
  expect_threads_leave_nothing(call_strerror, "strerror(123456)");
}

TEST(threads_that_called_strsignal_of_an_unknown_signal_leave_nothing_behind) {
  expect_threads_leave_nothing(call_strsignal, "strsignal(77777)");
}

TEST(threads_whose_dlopen_failed_leave_nothing_behind) {
  expect_threads_leave_nothing(call_failing_dlopen, "dlopen(\"/nonexistent.so\") and dlerror()");
}
