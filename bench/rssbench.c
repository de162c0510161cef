// RSS over time after a program frees most of its heap (issue: the Linux
// memory release trap). Allocates about 1 GiB in small objects, frees all
// of it (or all but every tenth object with "keep10"), then reads RSS
// right after, after 1 s, after 5 s, and after the allocator's own
// release call, found with dlsym so one binary serves every allocator:
//   gort gort_free_os_memory, glibc malloc_trim(0), mimalloc mi_collect(true),
//   jemalloc mallctl("arena.<all>.purge"), tcmalloc MallocExtension_ReleaseFreeMemory.
// Prints: <rss after MiB> <1 s> <5 s> <after call> <call name>

#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *release_call(void) {
  void (*gort)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gort_free_os_memory");
  if (gort) return gort(), "gort_free_os_memory";
  void (*mi)(bool) = (void (*)(bool))dlsym(RTLD_DEFAULT, "mi_collect");
  if (mi) return mi(true), "mi_collect";
  int (*je)(const char *, void *, size_t *, void *, size_t) =
      (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
  if (je) return je("arena.4096.purge", NULL, NULL, NULL, 0), "mallctl arena.purge";
  void (*tc)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory");
  if (tc) return tc(), "ReleaseFreeMemory";
  malloc_trim(0);
  return "malloc_trim";
}

int main(int argc, char **argv) {
  bool keep10 = argc > 1 && strcmp(argv[1], "keep10") == 0;
  enum { N = 1 << 24 };  // 16 Mi objects of 16..112 bytes: about 1 GiB
  char **objs = malloc(N * sizeof *objs);
  uint64_t r = 1;
  for (long i = 0; i < N; i++) {
    size_t n = 16 + (bench_rand(&r) % 7) * 16;
    objs[i] = malloc(n);
    memset(objs[i], 1, n);
  }
  double peak = bench_rss_mib();
  for (long i = 0; i < N; i++)
    if (!keep10 || (i / 65536) % 10 != 0) free(objs[i]);  // keep10: every tenth run of 64Ki objects
  if (!keep10) free(objs);  // the 128 MiB pointer array too: nothing stays live
  double t0 = bench_rss_mib();
  sleep(1);
  double t1 = bench_rss_mib();
  sleep(4);
  double t5 = bench_rss_mib();
  const char *how = release_call();
  double tc = bench_rss_mib();
  printf("%.0f %.0f %.0f %.0f %.0f %s\n", peak, t0, t1, t5, tc, how);
  return 0;
}
