// Allocator workloads, modelled on the classic benchmarks. Each calls the
// process's malloc, so the allocator under test is chosen with LD_PRELOAD
// (bench/run.sh). Prints "<workload> <seconds> <peak RSS KiB>".
//
//   churn     one thread, random sizes (mostly small, a tail to 64 KiB),
//             a live set of 20000 blocks replaced at random (mstress-like)
//   prodcons  2 producers allocate, 2 consumers free: every free is remote
//   larson    4 threads replace random blocks in their own slot arrays;
//             threads are retired and their slots handed to successors
//   falseshare 2 threads each allocate small objects and hammer them
//             (cache-thrash): an allocator that puts two threads' objects
//             in one cache line makes this slow
//   realloc   buffers grown by small appends (string builders, vectors)
//   pair      malloc + immediate free of one size, the fast path's latency

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static size_t churn_size(uint64_t *r) {
  uint64_t x = bench_rand(r);
  unsigned k = (unsigned)(x % 100);
  if (k < 60) return 8 + (x >> 8) % 120;
  if (k < 90) return 128 + (x >> 8) % 900;
  if (k < 99) return 1024 + (x >> 8) % 8192;
  return 8192 + (x >> 8) % 57344;
}

static void churn(long ops) {
  enum { LIVE = 20000 };
  static char *slot[LIVE];
  uint64_t r = 42;
  for (long i = 0; i < ops; i++) {
    unsigned j = (unsigned)(bench_rand(&r) % LIVE);
    free(slot[j]);
    size_t n = churn_size(&r);
    slot[j] = malloc(n);
    slot[j][0] = (char)i;
    slot[j][n - 1] = (char)i;
  }
  for (int j = 0; j < LIVE; j++) free(slot[j]);
}

// ---- producer/consumer -----------------------------------------------------
enum { RING = 4096 };
typedef struct {
  _Atomic(void *) ring[RING];
  _Atomic long head, tail;
} queue_t;
static queue_t queues[2];
static long pc_items;

static void *producer(void *arg) {
  queue_t *q = arg;
  uint64_t r = (uintptr_t)arg;
  for (long i = 0; i < pc_items; i++) {
    void *p = malloc(16 + bench_rand(&r) % 240);
    ((char *)p)[0] = 1;
    long h = atomic_load_explicit(&q->head, memory_order_relaxed);
    while (h - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING) sched_yield();
    atomic_store_explicit(&q->ring[h % RING], p, memory_order_relaxed);
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
  }
  return NULL;
}

static void *consumer(void *arg) {
  queue_t *q = arg;
  for (long i = 0; i < pc_items; i++) {
    long t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    while (atomic_load_explicit(&q->head, memory_order_acquire) <= t) sched_yield();
    void *p = atomic_load_explicit(&q->ring[t % RING], memory_order_relaxed);
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    free(p);
  }
  return NULL;
}

static void prodcons(long ops) {
  pc_items = ops / 2;
  pthread_t t[4];
  for (int i = 0; i < 2; i++) {
    pthread_create(&t[2 * i], NULL, producer, &queues[i]);
    pthread_create(&t[2 * i + 1], NULL, consumer, &queues[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
}

// ---- larson ------------------------------------------------------------------
enum { LARSON_THREADS = 4, LARSON_SLOTS = 1000 };
typedef struct {
  char *slot[LARSON_SLOTS];
  long ops;
  uint64_t seed;
} larson_arg_t;

static void *larson_worker(void *argp) {
  larson_arg_t *a = argp;
  for (long i = 0; i < a->ops; i++) {
    unsigned j = (unsigned)(bench_rand(&a->seed) % LARSON_SLOTS);
    free(a->slot[j]);
    size_t n = 16 + bench_rand(&a->seed) % 500;
    a->slot[j] = malloc(n);
    memset(a->slot[j], 1, 16);
  }
  return NULL;
}

static void larson(long ops) {
  static larson_arg_t args[LARSON_THREADS];
  int rounds = 10;
  for (int t = 0; t < LARSON_THREADS; t++) args[t].seed = (uint64_t)t * 977 + 1;
  for (int round = 0; round < rounds; round++) {
    pthread_t th[LARSON_THREADS];
    // Each round's threads inherit the previous round's blocks: most of
    // their frees are of blocks another (now exited) thread allocated.
    for (int t = 0; t < LARSON_THREADS; t++) {
      args[t].ops = ops / rounds / LARSON_THREADS;
      pthread_create(&th[t], NULL, larson_worker, &args[t]);
    }
    for (int t = 0; t < LARSON_THREADS; t++) pthread_join(th[t], NULL);
  }
  for (int t = 0; t < LARSON_THREADS; t++)
    for (int j = 0; j < LARSON_SLOTS; j++) free(args[t].slot[j]);
}

// ---- false sharing -------------------------------------------------------------
static long fs_ops;
static void *fs_worker(void *arg) {
  (void)arg;
  for (long i = 0; i < fs_ops / 1000; i++) {
    volatile char *p = malloc(8);
    for (int k = 0; k < 1000; k++) p[k & 7]++;
    free((void *)p);
  }
  return NULL;
}

static void falseshare(long ops) {
  fs_ops = ops;
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, fs_worker, NULL);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
}

// ---- realloc growth ---------------------------------------------------------------
static void realloc_growth(long ops) {
  enum { BUFS = 64 };
  char *buf[BUFS] = {0};
  size_t len[BUFS] = {0};
  uint64_t r = 7;
  for (long i = 0; i < ops; i++) {
    int b = (int)(bench_rand(&r) % BUFS);
    size_t add = 1 + bench_rand(&r) % 64;
    if (len[b] > (1 << 20)) {  // a finished buffer: start over
      free(buf[b]);
      buf[b] = NULL;
      len[b] = 0;
    }
    buf[b] = realloc(buf[b], len[b] + add);
    memset(buf[b] + len[b], 'x', add);
    len[b] += add;
  }
  for (int b = 0; b < BUFS; b++) free(buf[b]);
}

// ---- malloc+free pair ---------------------------------------------------------------
static void pair(long ops) {
  static const size_t sizes[] = {16, 64, 256, 1024};
  for (int s = 0; s < 4; s++)
    for (long i = 0; i < ops / 4; i++) {
      void *volatile p = malloc(sizes[s]);
      free(p);
    }
}

int main(int argc, char **argv) {
  static const bench_workload w[] = {
      {"churn", churn, 6000000},       {"prodcons", prodcons, 8000000},
      {"larson", larson, 16000000},    {"falseshare", falseshare, 200000000},
      {"realloc", realloc_growth, 8000000}, {"pair", pair, 80000000}};
  return bench_main("allocbench", w, sizeof w / sizeof w[0], argc, argv);
}
