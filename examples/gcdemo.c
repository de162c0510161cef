// gort collector demo: a program that allocates graphs and never frees them.
//
// 1. Builds a binary tree of 2^20 nodes that stays live, on the collector
//    (gort_gc_alloc), while a second thread builds and drops thousands of
//    short-lived trees: nothing is freed by hand.
// 2. The collector runs by itself (GORT_GC=100 pacing); the demo turns on
//    gctrace, so each cycle prints Go's gctrace line on stderr.
// 3. Prints the figures a Go program would read in runtime.MemStats (the
//    number of cycles, the longest pause) and the RSS, which stays near
//    twice the live heap, as GOGC=100 intends.

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "gort/gc.h"
#include "gort/metrics.h"

typedef struct node {
  struct node *left, *right;
  long value;
} node_t;

static node_t *tree(int depth) {
  node_t *n = gort_gc_alloc(sizeof *n);
  n->value = depth;
  if (depth > 0) {
    n->left = tree(depth - 1);
    n->right = tree(depth - 1);
  }
  return n;
}

static long check(const node_t *n) { return n == NULL ? 0 : n->value + check(n->left) + check(n->right); }

static double rss_mib(void) {
  gort_memstats_t m;
  gort_read_memstats(&m);
  return (double)m.rss / (1 << 20);
}

static void *churn(void *arg) {
  long *sum = arg;
  for (int i = 0; i < 3000; i++) *sum += check(tree(10));  // 2047 nodes, dropped at once
  return NULL;
}

// Builds the live tree, runs the churn beside it and reports; in its own
// frame, so that no stale copy of the tree's address outlives it.
static __attribute__((noinline)) void run(void) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  node_t *live = tree(19);
  long before = check(live), dropped = 0;
  pthread_t t;
  pthread_create(&t, NULL, churn, &dropped);
  pthread_join(t, NULL);
  gort_gc_collect();
  clock_gettime(CLOCK_MONOTONIC, &t1);
  gort_memstats_t m;
  gort_read_memstats(&m);
  uint64_t longest = 0;
  for (int i = 0; i < 256; i++)
    if (m.pause_ns[i] > longest) longest = m.pause_ns[i];
  printf("\nlive tree intact: %s (checksum %ld)\n", check(live) == before ? "yes" : "NO", before);
  printf("cycles: %u, longest pause %.2f ms, all pauses %.1f ms of %.0f ms\n", m.num_gc,
         (double)longest / 1e6, (double)m.pause_total_ns / 1e6,
         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
  printf("heap: %.1f MiB live, %llu objects, next cycle at %.1f MiB; RSS %.1f MiB\n",
         (double)m.heap_alloc / (1 << 20), (unsigned long long)m.heap_objects,
         (double)m.next_gc / (1 << 20), rss_mib());
}

// Overwrites the stack below the caller's frame, where run()'s dead
// frames left copies of the tree's address (the collector is
// conservative: any word that looks like a pointer keeps its object).
static __attribute__((noinline)) void clear_stack(void) {
  volatile char junk[16384];
  memset((char *)junk, 0, sizeof junk);
}

int main(void) {
  printf("gort collector demo: a live tree of 2^20 nodes, and 3000 dropped trees on another thread\n");
  printf("(each cycle prints Go's gctrace line on stderr)\n");
  run();
  clear_stack();
  gort_gc_collect();
  gort_free_os_memory();
  gort_memstats_t m;
  gort_read_memstats(&m);
  printf("after the tree is dropped, a cycle and gort_free_os_memory(): %.1f MiB live, RSS %.1f MiB\n",
         (double)m.heap_alloc / (1 << 20), rss_mib());
  return 0;
}
