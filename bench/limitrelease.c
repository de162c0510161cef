// The cost of a release the memory limit bounds, on a fragmented heap:
// 80,000 blocks of 40,000 bytes (5 pages each under gort), every other one
// freed, then the limit lowered 1 MiB at a time, 64 times, through
// gort_set_memory_limit (found with dlsym: run it with LD_PRELOAD of gort).
// Each lowering releases about 1 MiB of the free runs while the page
// heap's lock keeps every other span allocation waiting (mheap.c,
// take_release_candidate).
//   LD_PRELOAD=build/libgort.so GORT_DEBUG=scavenge=0 build/bench/limitrelease
// Prints "limitrelease <ms per release> <RSS MiB before> <after>".

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int main(void) {
  enum { N = 80000, SIZE = 40000, STEPS = 64 };
  int64_t (*set_limit)(int64_t) = (int64_t(*)(int64_t))dlsym(RTLD_DEFAULT, "gort_set_memory_limit");
  if (set_limit == NULL) {
    fprintf(stderr, "limitrelease: no gort_set_memory_limit (run with LD_PRELOAD=build/libgort.so)\n");
    return 2;
  }
  static char *b[N];
  for (int i = 0; i < N; i++) {
    if ((b[i] = malloc(SIZE)) == NULL) return 1;
    memset(b[i], 1, SIZE);
  }
  for (int i = 0; i < N; i += 2) free(b[i]);
  // The limit counts the heap's resident pages and gort's metadata, about
  // what RSS is here: the first lowering releases whatever lies between.
  double before = bench_rss_mib();
  int64_t base = (int64_t)(before * 1048576.0);
  set_limit(base);
  double t0 = bench_now();
  for (int k = 1; k <= STEPS; k++) set_limit(base - (int64_t)k * 1048576);
  double t1 = bench_now();
  printf("limitrelease %.3f %.0f %.0f\n", (t1 - t0) * 1e3 / STEPS, before, bench_rss_mib());
  return 0;
}
