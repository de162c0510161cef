// The scheduler's benchmarks (issue #10), gort's side; go/sched.go is the
// same workloads in Go 1.19, and run.sh runs both and prints them side by
// side. Each workload prints "workload figure value unit" lines.
//
//   spawn N      spawn and join N goroutines in batches of 1000 (ns each)
//   yield N      two goroutines on one P yield to each other N times (ns per yield)
//   skynet N     Go's skynet: a tree of N leaves, 10 children per node (time, peak RSS)
//   idle N       N goroutines blocked at once (RSS bytes each)
//   sleepers N S N goroutines sleeping 100 ms in a loop for S seconds (CPU used)
//
// Goroutines are joined with the public wait group (gort/sync.h).

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gort/sched.h"
#include "gort/sync.h"

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * sysconf(_SC_PAGESIZE);
}

// ---- spawn ----------------------------------------------------------------------------------

static void done(void *arg) { gort_waitgroup_done(arg); }

static void spawn(long n) {
  int64_t t0 = now_ns();
  for (long i = 0; i < n; i += 1000) {
    gort_waitgroup_t wg = {0};
    gort_waitgroup_add(&wg, 1000);
    for (int j = 0; j < 1000; j++) gort_go(done, &wg);
    gort_waitgroup_wait(&wg);
  }
  printf("spawn ns_per_goroutine %.1f ns\n", (double)(now_ns() - t0) / (double)n);
}

// ---- yield ----------------------------------------------------------------------------------

static long yields;

static void yielder(void *arg) {
  for (long i = 0; i < yields; i++) gort_yield();
  gort_waitgroup_done(arg);
}

static void yield(long n) {
  gort_maxprocs(1);
  yields = n;
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 2);
  int64_t t0 = now_ns();
  gort_go(yielder, &wg);
  gort_go(yielder, &wg);
  gort_waitgroup_wait(&wg);
  printf("yield ns_per_yield %.1f ns\n", (double)(now_ns() - t0) / (double)(2 * n));
}

// ---- skynet ---------------------------------------------------------------------------------

typedef struct {
  long num, size;
  _Atomic long *sum;
  gort_waitgroup_t *wg;
} node_t;

static void skynet_node(void *arg) {
  node_t *n = arg;
  if (n->size == 1) {
    atomic_fetch_add_explicit(n->sum, n->num, memory_order_relaxed);
  } else {
    gort_waitgroup_t wg = {0};
    node_t kids[10];
    long sz = n->size / 10;
    gort_waitgroup_add(&wg, 10);
    for (int i = 0; i < 10; i++) {
      kids[i] = (node_t){n->num + i * sz, sz, n->sum, &wg};
      gort_go(skynet_node, &kids[i]);
    }
    gort_waitgroup_wait(&wg);
  }
  gort_waitgroup_done(n->wg);
}

static void skynet(long n) {
  _Atomic long sum = 0;
  gort_waitgroup_t wg = {0};
  node_t root = {0, n, &sum, &wg};
  gort_waitgroup_add(&wg, 1);
  int64_t t0 = now_ns();
  gort_go(skynet_node, &root);
  gort_waitgroup_wait(&wg);
  double s = (double)(now_ns() - t0) / 1e9;
  if (atomic_load(&sum) != n * (n - 1) / 2) {
    fprintf(stderr, "skynet: wrong sum %ld\n", atomic_load(&sum));
    exit(1);
  }
  printf("skynet time %.3f s\nskynet peak_rss %.1f MiB\n", s, (double)peak_rss_kib() / 1024);
}

// ---- idle -----------------------------------------------------------------------------------

static gort_waitgroup_t gate, started, finished;

static void idler(void *arg) {
  (void)arg;
  gort_waitgroup_done(&started);
  gort_waitgroup_wait(&gate);
  gort_waitgroup_done(&finished);
}

static void idle(long n) {
  long rss0 = rss_bytes();
  gort_waitgroup_add(&gate, 1);
  gort_waitgroup_add(&started, n);
  gort_waitgroup_add(&finished, n);
  for (long i = 0; i < n; i++) gort_go(idler, NULL);
  gort_waitgroup_wait(&started);
  printf("idle rss_per_goroutine %.0f bytes\n", (double)(rss_bytes() - rss0) / (double)n);
  gort_waitgroup_done(&gate);
  gort_waitgroup_wait(&finished);
}

// ---- sleepers -------------------------------------------------------------------------------

static _Atomic int stop;

static void sleeper(void *arg) {
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) gort_sleep(100 * 1000 * 1000);
  gort_waitgroup_done(arg);
}

static void sleepers(long n, long secs) {
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, n);
  for (long i = 0; i < n; i++) gort_go(sleeper, &wg);
  gort_sleep(200 * 1000 * 1000);  // all asleep
  double c0 = cpu_s();
  gort_sleep(secs * 1000 * 1000 * 1000);
  double used = cpu_s() - c0;
  atomic_store(&stop, 1);
  gort_waitgroup_wait(&wg);
  printf("sleepers cpu_per_second %.3f s\n", used / (double)secs);
}

static int argc_;
static char **argv_;
static int status;

// The workload runs on a goroutine, as a Go program's main does: spawns
// from it go to its P's run queue, not through the global queue that a
// plain thread's spawns take.
static void main_goroutine(void *arg) {
  long n = atol(argv_[2]);
  if (strcmp(argv_[1], "spawn") == 0) spawn(n);
  else if (strcmp(argv_[1], "yield") == 0) yield(n);
  else if (strcmp(argv_[1], "skynet") == 0) skynet(n);
  else if (strcmp(argv_[1], "idle") == 0) idle(n);
  else if (strcmp(argv_[1], "sleepers") == 0) sleepers(n, argc_ > 3 ? atol(argv_[3]) : 2);
  else status = 2;
  gort_waitgroup_done(arg);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s spawn|yield|skynet|idle|sleepers N [S]\n", argv[0]);
    return 2;
  }
  argc_ = argc, argv_ = argv;
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  gort_go(main_goroutine, &wg);
  gort_waitgroup_wait(&wg);
  return status;
}
