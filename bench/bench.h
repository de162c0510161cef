// Shared helpers for gort's benchmarks: time and peak RSS.
#ifndef GORT_BENCH_H
#define GORT_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline long bench_peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// The current RSS, from /proc/self/statm (0 if unreadable).
static inline double bench_rss_mib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (double)res * 4096 / (1 << 20);
}

static inline uint64_t bench_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

// One named workload of a benchmark program; ops is its size at scale 1.0.
typedef struct {
  const char *name;
  void (*fn)(long ops);
  long ops;
} bench_workload;

// The main of a benchmark program: `prog WORKLOAD [scale]` runs that
// workload once and prints "name seconds peak_rss_kib", the line the
// bench scripts read.
static inline int bench_main(const char *prog, const bench_workload *w, size_t nw, int argc,
                             char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s WORKLOAD [scale]; workloads:", prog);
    for (size_t i = 0; i < nw; i++) fprintf(stderr, " %s", w[i].name);
    fprintf(stderr, "\n");
    return 2;
  }
  double scale = argc > 2 ? atof(argv[2]) : 1.0;
  for (size_t i = 0; i < nw; i++) {
    if (strcmp(argv[1], w[i].name) != 0) continue;
    double t0 = bench_now();
    w[i].fn((long)((double)w[i].ops * scale));
    double t1 = bench_now();
    printf("%s %.4f %ld\n", w[i].name, t1 - t0, bench_peak_rss_kib());
    return 0;
  }
  fprintf(stderr, "%s: unknown workload %s\n", prog, argv[1]);
  return 2;
}

#endif
