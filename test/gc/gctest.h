// What the collector's tests share: deciding that an object was collected
// without keeping it alive by looking, waiting for finalizers, and the
// collector's figures from MemStats.
//
// Scanning is conservative, so a test that wants to see an object collected
// must leave no copy of its address in a root: the stack of a function that
// has returned keeps what it held until something overwrites it, and a
// register may keep a value after its last use. The tests therefore
// allocate, look at and drop objects in noinline helpers that return no
// pointer, wipe the dead part of the stack (gctest_clobber_stack) before
// each cycle, and where a stray copy remains possible use several objects
// and require most of them, not all, to go.

#ifndef GORT_GCTEST_H
#define GORT_GCTEST_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "gort/gc.h"
#include "gort/metrics.h"
#include "test.h"

#define GCTEST_NOINLINE __attribute__((noinline, noclone))

#if defined(__SANITIZE_THREAD__)
#define GCTEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GCTEST_TSAN 1
#endif
#endif
#ifndef GCTEST_TSAN
#define GCTEST_TSAN 0
#endif

#define MiB ((uint64_t)1 << 20)

// The dirty-tracking backend in use (gc/dirty.c): "uffd", "mprotect" or "none".
const char *gort__dirty_name(void);
uint64_t gort__gc_mark_guests_came(void);
int gort__gc_mark_workers(void);

// Guests (gc/mgcmark.c): a final stop after a mark of 64 MiB or more
// takes the threads that park for it as mark workers. Holding 80 MiB of
// noscan ballast makes every cycle's final stop such a one; whether any
// thread came to one since guests0 (gort__gc_mark_guests_came), where the
// process has helpers and tracks dirty pages.
static void *volatile gctest_ballast[80];  // volatile: only written, but it must stay a root

static __attribute__((unused)) void gctest_hold_ballast(bool hold) {
  for (int i = 0; i < 80; i++) {
    gctest_ballast[i] = hold ? gort_gc_alloc_noscan(1 << 20) : NULL;
    EXPECT(!hold || gctest_ballast[i] != NULL, "ballast");
  }
}

static __attribute__((unused)) void gctest_expect_guests_since(uint64_t guests0) {
  if (gort__gc_mark_workers() > 1 && strcmp(gort__dirty_name(), "none") != 0)
    EXPECT(gort__gc_mark_guests_came() > guests0, "no thread parked for a final stop came to mark in it");
}

// A case run with GORT_DEBUG=gcdirty=X must have run with X: a backend
// that refused would leave the case marking some other way.
static __attribute__((unused)) void gctest_expect_forced_backend(void) {
  const char *d = getenv("GORT_DEBUG"), *f = d != NULL ? strstr(d, "gcdirty=") : NULL;
  if (f == NULL) return;
  f += 8;
  size_t n = strcspn(f, ",");
  EXPECT(strlen(gort__dirty_name()) == n && strncmp(gort__dirty_name(), f, n) == 0,
         "GORT_DEBUG=%s, but the backend is %s", d, gort__dirty_name());
}

// Overwrites the dead stack below the caller with zeros, so that addresses
// left there by returned helpers do not act as roots.
static GCTEST_NOINLINE __attribute__((unused)) void gctest_clobber_stack(void) {
  volatile char buf[32 * 1024];
  memset((char *)buf, 0, sizeof buf);
  __asm__ volatile("" : : "r"(buf) : "memory");
}

// Zeroes the vector registers. Copies of object addresses linger in them
// (memcpy and memmove use them), and a thread stopped by a signal has them
// saved in its signal frame, where a conservative collector sees them.
static __attribute__((unused)) void gctest_clear_vector_registers(void) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx")) {
    __asm__ volatile("vzeroall" ::
                         : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                           "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  } else {
    __asm__ volatile(
        "pxor %%xmm0,%%xmm0; pxor %%xmm1,%%xmm1; pxor %%xmm2,%%xmm2; pxor %%xmm3,%%xmm3\n"
        "pxor %%xmm4,%%xmm4; pxor %%xmm5,%%xmm5; pxor %%xmm6,%%xmm6; pxor %%xmm7,%%xmm7\n"
        "pxor %%xmm8,%%xmm8; pxor %%xmm9,%%xmm9; pxor %%xmm10,%%xmm10; pxor %%xmm11,%%xmm11\n"
        "pxor %%xmm12,%%xmm12; pxor %%xmm13,%%xmm13; pxor %%xmm14,%%xmm14; pxor %%xmm15,%%xmm15" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
              "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  }
#elif defined(__aarch64__)
  __asm__ volatile(
      "movi v0.16b, #0; movi v1.16b, #0; movi v2.16b, #0; movi v3.16b, #0\n"
      "movi v4.16b, #0; movi v5.16b, #0; movi v6.16b, #0; movi v7.16b, #0\n"
      "movi v16.16b, #0; movi v17.16b, #0; movi v18.16b, #0; movi v19.16b, #0\n"
      "movi v20.16b, #0; movi v21.16b, #0; movi v22.16b, #0; movi v23.16b, #0" ::
          : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20",
            "v21", "v22", "v23");
#endif
}

// One full cycle with a clean stack below the caller.
static GCTEST_NOINLINE __attribute__((unused)) void gctest_collect(void) {
  gctest_clobber_stack();
  gort_gc_collect();
}

static __attribute__((unused)) double gctest_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// Sends stderr to a fresh unlinked file until gctest_stderr_end, which
// returns what was written there (up to cap - 1 bytes, NUL-terminated in
// buf): how the tests read gctrace lines.
typedef struct {
  int fd, saved;
} gctest_stderr_t;

static __attribute__((unused)) gctest_stderr_t gctest_stderr_begin(void) {
  char path[] = "/tmp/gort-gctest-XXXXXX";
  int fd = mkstemp(path);
  EXPECT(fd >= 0, "mkstemp: %s", strerror(errno));
  unlink(path);
  fflush(stderr);
  gctest_stderr_t c = {fd, dup(2)};
  dup2(fd, 2);
  return c;
}

static __attribute__((unused)) const char *gctest_stderr_end(gctest_stderr_t c, char *buf, size_t cap) {
  fflush(stderr);
  dup2(c.saved, 2);
  close(c.saved);
  ssize_t n = pread(c.fd, buf, cap - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  close(c.fd);
  return buf;
}

static __attribute__((unused)) void gctest_sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

// Finalizers run on their own thread, some time after the cycle that found
// their object: polls *counter until it reaches want, for up to 5 s.
// Returns whether it did.
// The checking modes are slow by design: gcstress runs a full cycle at
// every refill, so a finalizer that allocates a few MiB runs hundreds of
// them (a_finalizer_may_allocate_... needs 7-8 s for its 16, here). Waits
// for what a finalizer does are then longer, not looser.
// The collector's checking modes as gort parsed them (any spelling of
// GORT_DEBUG=gcstress=1), once it started.
extern bool gort__gc_stress, gort__gc_checkmark;
static __attribute__((unused)) bool gctest_gcstress(void) {
  gort_free(gort_malloc(1));  // starts gort if nothing did yet
  return gort__gc_stress;
}

static __attribute__((unused)) bool gctest_checking_mode(void) { return gctest_gcstress() || gort__gc_checkmark; }

// Under the case's 60 s alarm, so that a lost finalizer fails with the
// wait's message, not the alarm's.
static __attribute__((unused)) double gctest_wait_s(void) {
  return gctest_checking_mode() ? 40.0 : 5.0;
}

static __attribute__((unused)) bool gctest_wait_count(_Atomic int *counter, int want) {
  double deadline = gctest_now() + gctest_wait_s();
  while (atomic_load(counter) < want) {
    if (gctest_now() > deadline) return false;
    gctest_sleep_ms(1);
  }
  return true;
}

static __attribute__((unused)) gort_memstats_t *gctest_memstats(void) {
  static __thread gort_memstats_t m;  // 2 KiB of pause ring: not on the stack
  gort_read_memstats(&m);
  return &m;
}

static __attribute__((unused)) uint32_t gctest_num_gc(void) { return gctest_memstats()->num_gc; }

// A uint64 metric's value (gort/metrics.h).
static __attribute__((unused)) uint64_t gctest_metric_u64(const char *name) {
  gort_metric_sample_t s = {.name = name};
  gort_metrics_read(&s, 1);
  EXPECT(s.kind == GORT_METRIC_UINT64, "%s: kind %d", name, (int)s.kind);
  return s.value.u64;
}

// How many threads the stops of `cycles` cycles run by this thread had to
// ask or signal, each cycle after pause_ms of quiet, so that every other
// thread of gort's is idle: an idle thread of gort's waits as a blocking
// call, where a stop takes it at once.
static __attribute__((unused)) uint64_t gctest_threads_asked_in(int cycles, int pause_ms) {
  uint64_t asked0 = gctest_metric_u64("/gort/gc/stops/asked:threads");
  uint64_t signalled0 = gctest_metric_u64("/gort/gc/stops/signalled:threads");
  for (int i = 0; i < cycles; i++) {
    gctest_sleep_ms(pause_ms);
    gort_gc_collect();
  }
  return gctest_metric_u64("/gort/gc/stops/asked:threads") - asked0 +
         gctest_metric_u64("/gort/gc/stops/signalled:threads") - signalled0;
}

// Waits (up to 5 s) until a cycle after pause_ms of quiet asks or signals
// no thread: the threads of gort's that the last cycles woke (the
// finalizer thread, the pool thread) have finished and are idle again,
// which on a loaded machine can take longer than any fixed pause. A case
// then counts with gctest_threads_asked_in: if idle threads are wrongly
// asked, this gives up and the count shows it.
static __attribute__((unused)) void gctest_wait_threads_idle(int pause_ms) {
  double deadline = gctest_now() + 5.0;
  while (gctest_threads_asked_in(1, pause_ms) != 0 && gctest_now() < deadline) gctest_sleep_ms(5);
}

// How many of the n weak handles read NULL (their targets were collected).
static GCTEST_NOINLINE __attribute__((unused)) int gctest_count_cleared(gort_weak_t *const *w,
                                                                        int n) {
  int cleared = 0;
  for (int i = 0; i < n; i++) cleared += gort_gc_weak_get(w[i]) == NULL;
  return cleared;
}

// A byte pattern for object contents that never looks like a heap address
// (the top byte of every word is 0xA5).
static __attribute__((unused)) void gctest_fill(void *p, size_t n, uint64_t tag) {
  uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++)
    w[i] = 0xA500000000000000ULL | ((tag * 1000003 + i) & 0xFFFFFFFFFFFFULL);
  for (size_t i = n / 8 * 8; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)(tag + i);
}

static __attribute__((unused)) bool gctest_check(const void *p, size_t n, uint64_t tag) {
  const uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++)
    if (w[i] != (0xA500000000000000ULL | ((tag * 1000003 + i) & 0xFFFFFFFFFFFFULL))) return false;
  for (size_t i = n / 8 * 8; i < n; i++)
    if (((const unsigned char *)p)[i] != (unsigned char)(tag + i)) return false;
  return true;
}

#endif
