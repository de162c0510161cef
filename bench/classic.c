// Classic allocator workloads: xmalloc-test, rptest and glibc's malloc benchtests.
//
// The shapes of the public allocator benchmarks that allocbench.c does not
// have (mimalloc-bench runs most of them). The code is ours, and every
// workload does a fixed amount of work rather than running for a fixed time,
// so that its figure is a time. Each calls the process's malloc, so the
// allocator under test is chosen with LD_PRELOAD (bench/classic.sh). Prints
// "<workload> <seconds> <peak RSS KiB>", as allocbench does. Larson with
// sized delete is C++ and lives in classic_cxx.cc.
//
//   xmalloc    xmalloc-test (Lever and Boreham, USENIX 2000): NCPU producer
//              threads malloc small blocks (16..128 B) in batches of 1024 and
//              pass each batch through one mutex-protected queue to NCPU
//              consumer threads, which free them. Every free is remote, and
//              the producers' heaps drain only through the consumers.
//   rptest     rpmalloc's benchmark: NCPU threads each fill a working set of
//              1000 blocks of 16 B..16 KiB (log-uniform, so skewed to small),
//              replace blocks at random, then free it all. One free in four
//              goes through a slot array shared by all threads: the block is
//              parked there and the block it displaces, most often another
//              thread's, is freed instead.
//   simple-1t  glibc benchtests bench-malloc-simple: malloc a batch of N
//   simple-2t  blocks of one size, then free the batch, for every size 16,
//              32, ..., 4096 and N = 25, 100, 400, 1600; one thread, or two
//              threads each doing the same work at once. The memory is never
//              touched: this is the cost of malloc and free alone.
//   thread-1t  glibc benchtests bench-malloc-thread: each thread replaces
//   thread-2t  random blocks of a 1024-block working set with blocks of
//              4 B..32 KiB, the probability of a size proportional to 1/size;
//              one thread, or two threads each doing the same work at once.
//
// NCPU is the number of online CPUs (at least 2, at most 32), as the classic
// runs use.
// Under the -2t shapes the ideal time equals the -1t time on two cores.

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

// Keeps the compiler from proving a block unused and deleting its malloc and
// free: GCC removes such pairs, and then the benchmark measures nothing.
static inline void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

// The thread count of the NCPU shapes: the online CPUs, at least 2 and at
// most 32 (run_threads starts at most 64 threads, and xmalloc needs 2*NCPU).
static int ncpu(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 32 ? 32 : (int)n;
}

// Runs fn on n threads (n <= 64), the i-th given args + i * arg_size, and
// waits for them all.
static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t t[64];
  for (int i = 0; i < n; i++)
    if (pthread_create(&t[i], NULL, fn, args ? (char *)args + (size_t)i * arg_size : NULL) != 0) {
      perror("classic: pthread_create");
      exit(1);
    }
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

// A table of sizes from lo to hi with log-uniform probability (density
// proportional to 1/size), as glibc's bench-malloc-thread draws them: every
// power-of-two range is equally likely, so most blocks are small and a few
// are large. Drawing from a table keeps exp() out of the timed loop.
enum { SIZE_TABLE = 4096 };
static void fill_log_uniform(uint32_t *t, double lo, double hi, uint64_t seed) {
  for (int i = 0; i < SIZE_TABLE; i++) {
    double u = (double)(bench_rand(&seed) >> 11) / 9007199254740992.0;  // [0, 1)
    t[i] = (uint32_t)(lo * exp(u * log(hi / lo)));
  }
}

// ---- xmalloc-test ------------------------------------------------------------------
enum { XM_BATCH = 1024, XM_QUEUE_MAX = 16 };
typedef struct xm_batch {
  struct xm_batch *next;
  void *obj[XM_BATCH];
} xm_batch_t;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t nonempty;  // signalled on a push and when the last producer ends
  pthread_cond_t nonfull;   // signalled on a pop
  xm_batch_t *head, *tail;  // the queue; guarded by lock
  int len;                  // batches queued; guarded by lock
  int producing;            // producers not yet done; guarded by lock
  long nbatch;              // batches per producer; set before the threads start
} xm = {.lock = PTHREAD_MUTEX_INITIALIZER,
      .nonempty = PTHREAD_COND_INITIALIZER,
      .nonfull = PTHREAD_COND_INITIALIZER};

static const size_t xm_sizes[] = {16, 24, 32, 48, 64, 80, 96, 112, 128};

static void *xm_producer(void *arg) {
  uint64_t r = (uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
  for (long b = 0; b < xm.nbatch; b++) {
    // The batch itself is a malloc'd 8 KiB block freed by the consumer too.
    xm_batch_t *batch = malloc(sizeof *batch);
    for (int i = 0; i < XM_BATCH; i++) {
      char *p = malloc(xm_sizes[bench_rand(&r) % (sizeof xm_sizes / sizeof xm_sizes[0])]);
      p[0] = (char)i;
      batch->obj[i] = p;
    }
    batch->next = NULL;
    // Bounded, so that producers faster than the consumers cannot turn the
    // workload into "malloc everything, then free everything".
    pthread_mutex_lock(&xm.lock);
    while (xm.len >= XM_QUEUE_MAX) pthread_cond_wait(&xm.nonfull, &xm.lock);
    if (xm.tail != NULL)
      xm.tail->next = batch;
    else
      xm.head = batch;
    xm.tail = batch;
    xm.len++;
    pthread_cond_signal(&xm.nonempty);
    pthread_mutex_unlock(&xm.lock);
  }
  pthread_mutex_lock(&xm.lock);
  if (--xm.producing == 0) pthread_cond_broadcast(&xm.nonempty);
  pthread_mutex_unlock(&xm.lock);
  return NULL;
}

static void *xm_consumer(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&xm.lock);
    while (xm.head == NULL && xm.producing > 0) pthread_cond_wait(&xm.nonempty, &xm.lock);
    xm_batch_t *batch = xm.head;
    if (batch != NULL) {
      xm.head = batch->next;
      if (xm.head == NULL) xm.tail = NULL;
      xm.len--;
      pthread_cond_signal(&xm.nonfull);
    }
    pthread_mutex_unlock(&xm.lock);
    if (batch == NULL) return NULL;  // empty and no producer left
    for (int i = 0; i < XM_BATCH; i++) free(batch->obj[i]);
    free(batch);
  }
}

static void *xm_thread(void *arg) {
  intptr_t i = *(intptr_t *)arg;
  return i % 2 == 0 ? xm_producer((void *)(i / 2 + 1)) : xm_consumer(NULL);
}

static void xmalloc_test(long ops) {
  int w = ncpu();
  xm.nbatch = ops / XM_BATCH / w;
  xm.producing = w;
  intptr_t role[64];
  for (int i = 0; i < 2 * w; i++) role[i] = i;
  run_threads(2 * w, xm_thread, role, sizeof role[0]);
}

// ---- rptest --------------------------------------------------------------------------
enum { RP_WORKING_SET = 1000, RP_SHARED = 4096, RP_CROSS = 4 };
static uint32_t rp_size[SIZE_TABLE];     // 16 B..16 KiB, log-uniform; set before the threads
static _Atomic(void *) rp_shared[RP_SHARED];  // blocks parked for any thread to free
static long rp_loops;                    // per thread; set before the threads start

typedef struct {
  uint64_t rng;
  char pad[56];  // one cache line per thread's state
} rp_arg_t;

static void *rp_alloc(uint64_t *r) {
  uint32_t n = rp_size[bench_rand(r) % SIZE_TABLE];
  char *p = malloc(n);
  p[0] = 1;
  p[n - 1] = 1;
  return p;
}

// Frees p, or, one time in RP_CROSS, parks p in a random shared slot and
// frees the block it displaces: with T threads that block is another
// thread's (T-1)/T of the time.
static void rp_free(void *p, uint64_t *r) {
  uint64_t x = bench_rand(r);
  if (x % RP_CROSS == 0) p = atomic_exchange(&rp_shared[(x >> 8) % RP_SHARED], p);
  free(p);
}

static void *rp_worker(void *argp) {
  rp_arg_t *a = argp;
  void *ws[RP_WORKING_SET];
  for (long loop = 0; loop < rp_loops; loop++) {
    for (int i = 0; i < RP_WORKING_SET; i++) ws[i] = rp_alloc(&a->rng);
    for (int op = 0; op < RP_WORKING_SET; op++) {
      unsigned j = (unsigned)(bench_rand(&a->rng) % RP_WORKING_SET);
      rp_free(ws[j], &a->rng);
      ws[j] = rp_alloc(&a->rng);
    }
    for (int i = 0; i < RP_WORKING_SET; i++) rp_free(ws[i], &a->rng);
  }
  return NULL;
}

static void rptest(long ops) {
  int t = ncpu();
  fill_log_uniform(rp_size, 16, 16384, 0x5eed);
  rp_loops = ops / (2 * RP_WORKING_SET) / t;
  rp_arg_t args[64];
  for (int i = 0; i < t && i < 64; i++) args[i].rng = (uint64_t)i * 7919 + 17;
  run_threads(t, rp_worker, args, sizeof args[0]);
  for (int i = 0; i < RP_SHARED; i++) free(atomic_exchange(&rp_shared[i], NULL));
}

// ---- glibc bench-malloc-simple ------------------------------------------------------------
static const size_t simple_sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
static const int simple_batches[] = {25, 100, 400, 1600};
static long simple_ops;  // malloc+free pairs per (size, batch); set before the threads

static void *simple_worker(void *arg) {
  (void)arg;
  void **batch = malloc(1600 * sizeof *batch);
  for (size_t s = 0; s < sizeof simple_sizes / sizeof simple_sizes[0]; s++)
    for (size_t b = 0; b < sizeof simple_batches / sizeof simple_batches[0]; b++) {
      int n = simple_batches[b];
      for (long it = 0; it < simple_ops / n; it++) {
        for (int i = 0; i < n; i++) batch[i] = malloc(simple_sizes[s]);
        escape(batch);
        for (int i = 0; i < n; i++) free(batch[i]);
      }
    }
  free(batch);
  return NULL;
}

static void simple(long ops, int threads) {
  simple_ops = ops / (long)(sizeof simple_sizes / sizeof simple_sizes[0]) /
               (long)(sizeof simple_batches / sizeof simple_batches[0]);
  run_threads(threads, simple_worker, NULL, 0);
}
static void simple_1t(long ops) { simple(ops, 1); }
static void simple_2t(long ops) { simple(ops, 2); }

// ---- glibc bench-malloc-thread ------------------------------------------------------------
enum { TH_WORKING_SET = 1024 };
static uint32_t th_size[SIZE_TABLE];  // 4 B..32 KiB, log-uniform; set before the threads
static long th_iters;                 // per thread; set before the threads start

typedef struct {
  uint64_t rng;
  char pad[56];
} th_arg_t;

static void *th_worker(void *argp) {
  th_arg_t *a = argp;
  void *ws[TH_WORKING_SET] = {0};
  for (long i = 0; i < th_iters; i++) {
    uint64_t x = bench_rand(&a->rng);
    unsigned j = (unsigned)(x % TH_WORKING_SET);
    free(ws[j]);
    ws[j] = malloc(th_size[(x >> 16) % SIZE_TABLE]);
    escape(ws[j]);
  }
  for (int j = 0; j < TH_WORKING_SET; j++) free(ws[j]);
  return NULL;
}

static void thread(long ops, int threads) {
  fill_log_uniform(th_size, 4, 32768, 0x7ead);
  th_iters = ops;
  th_arg_t args[2] = {{.rng = 101}, {.rng = 202}};
  run_threads(threads, th_worker, args, sizeof args[0]);
}
static void thread_1t(long ops) { thread(ops, 1); }
static void thread_2t(long ops) { thread(ops, 2); }

int main(int argc, char **argv) {
  // ops per thread for the -1t/-2t shapes
  static const bench_workload w[] = {
      {"xmalloc", xmalloc_test, 16000000}, {"rptest", rptest, 5000000},
      {"simple-1t", simple_1t, 8000000},   {"simple-2t", simple_2t, 8000000},
      {"thread-1t", thread_1t, 12000000},  {"thread-2t", thread_2t, 12000000}};
  return bench_main("classic", w, sizeof w / sizeof w[0], argc, argv);
}
