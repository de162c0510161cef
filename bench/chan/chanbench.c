// Channel, select and mutex benchmarks for gort; bench/chan/go/main.go is
// the same workloads in Go, and run.sh prints both side by side (#11).
//
// Each workload prints one line: "<name> <figure> <unit>", ns per
// operation (lower is better) or M items per second (higher is better).
// GORT_MAXPROCS defaults to 2 here, as GOMAXPROCS=2 for Go. Usage:
// chanbench [scale [workload...]], scale (default 1) multiplying the
// operation counts; the names (pingpong, buffered_cap1, ...) run only those
// workloads, for profiling one at a time.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gort/chan.h"
#include "gort/sched.h"
#include "gort/sync.h"

static long scale = 1;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// ---- ping-pong: an unbuffered round trip between two goroutines ----

typedef struct {
  gort_chan_t *ping, *pong;
  long n;
  gort_waitgroup_t wg;
} pp_t;

static void pp_echo(void *arg) {
  pp_t *p = arg;
  long v;
  for (long i = 0; i < p->n; i++) {
    gort_chan_recv(p->ping, &v);
    gort_chan_send(p->pong, &v);
  }
  gort_waitgroup_done(&p->wg);
}

static void pp_main(void *arg) {
  pp_t *p = arg;
  for (long i = 0; i < p->n; i++) {
    long v = i;
    gort_chan_send(p->ping, &v);
    gort_chan_recv(p->pong, &v);
  }
  gort_waitgroup_done(&p->wg);
}

static void pingpong(void) {
  static pp_t p;
  p.n = 1000000 * scale;
  p.ping = gort_chan_make(sizeof(long), 0);
  p.pong = gort_chan_make(sizeof(long), 0);
  gort_waitgroup_add(&p.wg, 2);
  double t0 = now_s();
  gort_go(pp_echo, &p);
  gort_go(pp_main, &p);
  gort_waitgroup_wait(&p.wg);
  printf("pingpong %.1f ns/roundtrip\n", (now_s() - t0) * 1e9 / (double)p.n);
}

// ---- buffered throughput: one producer, one consumer ----

typedef struct {
  gort_chan_t *c;
  long n;
  gort_waitgroup_t wg;
} buf_t;

static void buf_prod(void *arg) {
  buf_t *b = arg;
  for (long i = 0; i < b->n; i++) gort_chan_send(b->c, &i);
  gort_waitgroup_done(&b->wg);
}

static void buf_cons(void *arg) {
  buf_t *b = arg;
  long v;
  for (long i = 0; i < b->n; i++) gort_chan_recv(b->c, &v);
  gort_waitgroup_done(&b->wg);
}

static void buffered(size_t cap) {
  static buf_t b;
  b.n = 4000000 * scale;
  b.c = gort_chan_make(sizeof(long), cap);
  gort_waitgroup_add(&b.wg, 2);
  double t0 = now_s();
  gort_go(buf_prod, &b);
  gort_go(buf_cons, &b);
  gort_waitgroup_wait(&b.wg);
  printf("buffered_cap%zu %.2f Mitems/s\n", cap, (double)b.n / (now_s() - t0) / 1e6);
}

// ---- a 4-way select: 4 producers on buffered channels, one selecting consumer ----

typedef struct {
  gort_chan_t *c[4];
  long n;  // per producer
  gort_waitgroup_t wg;
} sel_t;

static sel_t sel;

static void sel_prod(void *arg) {
  gort_chan_t *c = arg;
  for (long i = 0; i < sel.n; i++) gort_chan_send(c, &i);
  gort_waitgroup_done(&sel.wg);
}

static void sel_cons(void *arg) {
  (void)arg;
  long v;
  gort_select_case_t cs[4];
  for (int k = 0; k < 4; k++) cs[k] = (gort_select_case_t){.chan = sel.c[k], .dir = GORT_SELECT_RECV, .elem = &v};
  for (long i = 0; i < 4 * sel.n; i++) gort_select(cs, 4, -1);
  gort_waitgroup_done(&sel.wg);
}

static void select4(void) {
  sel.n = 500000 * scale;
  for (int k = 0; k < 4; k++) sel.c[k] = gort_chan_make(sizeof(long), 128);
  gort_waitgroup_add(&sel.wg, 5);
  double t0 = now_s();
  for (int k = 0; k < 4; k++) gort_go(sel_prod, sel.c[k]);
  gort_go(sel_cons, NULL);
  gort_waitgroup_wait(&sel.wg);
  printf("select4 %.1f ns/select\n", (now_s() - t0) * 1e9 / (double)(4 * sel.n));
}

// ---- mutex contention: g goroutines incrementing one counter ----

static gort_mutex_t mu;
static long counter;
static long mu_n;
static gort_waitgroup_t mu_wg;

static void mu_worker(void *arg) {
  (void)arg;
  for (long i = 0; i < mu_n; i++) {
    gort_mutex_lock(&mu);
    counter++;
    gort_mutex_unlock(&mu);
  }
  gort_waitgroup_done(&mu_wg);
}

static void mutex_contention(int g) {
  mu_n = 4000000 * scale / g;
  counter = 0;
  gort_waitgroup_add(&mu_wg, g);
  double t0 = now_s();
  for (int i = 0; i < g; i++) gort_go(mu_worker, NULL);
  gort_waitgroup_wait(&mu_wg);
  if (counter != mu_n * g) printf("mutex: WRONG COUNT\n");
  printf("mutex_%d %.1f ns/op\n", g, (now_s() - t0) * 1e9 / (double)(mu_n * g));
}

// ---- worker pool: a producer, 8 workers, a collector goroutine ----

typedef struct {
  gort_chan_t *jobs, *results;
  long n;
  gort_waitgroup_t workers, all;
} pool_t;

static pool_t pool;

static void pool_prod(void *arg) {
  (void)arg;
  for (long i = 0; i < pool.n; i++) gort_chan_send(pool.jobs, &i);
  gort_chan_close(pool.jobs);
  gort_waitgroup_done(&pool.all);
}

static void pool_worker(void *arg) {
  (void)arg;
  long v;
  while (gort_chan_recv(pool.jobs, &v)) {
    v = v * 2 + 1;
    gort_chan_send(pool.results, &v);
  }
  gort_waitgroup_done(&pool.workers);
}

static void pool_closer(void *arg) {
  (void)arg;
  gort_waitgroup_wait(&pool.workers);
  gort_chan_close(pool.results);
  gort_waitgroup_done(&pool.all);
}

static void pool_collect(void *arg) {
  (void)arg;
  long v, sum = 0;
  while (gort_chan_recv(pool.results, &v)) sum += v;
  if (sum != pool.n * pool.n) printf("pool: WRONG SUM\n");
  gort_waitgroup_done(&pool.all);
}

static void worker_pool(void) {
  pool.n = 2000000 * scale;
  pool.jobs = gort_chan_make(sizeof(long), 128);
  pool.results = gort_chan_make(sizeof(long), 128);
  gort_waitgroup_add(&pool.workers, 8);
  gort_waitgroup_add(&pool.all, 3);
  double t0 = now_s();
  gort_go(pool_prod, NULL);
  for (int i = 0; i < 8; i++) gort_go(pool_worker, NULL);
  gort_go(pool_closer, NULL);
  gort_go(pool_collect, NULL);
  gort_waitgroup_wait(&pool.all);
  printf("workerpool %.2f Mitems/s\n", (double)pool.n / (now_s() - t0) / 1e6);
}

// ---- skynet over channels: Go's original, a million leaves, 10 per node ----
//
// Each node makes an unbuffered channel, spawns 10 children that send their
// sums on it, and receives the 10 (the children's arguments live on the
// parent's stack, which outlives them: the parent waits for every sum).

typedef struct {
  gort_chan_t *c;
  long num, size;
} sky_t;

static void sky_node(void *arg) {
  sky_t *n = arg;
  if (n->size == 1) {
    gort_chan_send(n->c, &n->num);
    return;
  }
  gort_chan_t *rc = gort_chan_make(sizeof(long), 0);
  sky_t kids[10];
  long sz = n->size / 10, sum = 0, v;
  for (int i = 0; i < 10; i++) {
    kids[i] = (sky_t){rc, n->num + i * sz, sz};
    gort_go(sky_node, &kids[i]);
  }
  for (int i = 0; i < 10; i++) {
    gort_chan_recv(rc, &v);
    sum += v;
  }
  gort_chan_free(rc);
  gort_chan_send(n->c, &sum);
}

static void skynet_chan(void) {
  const long leaves = 1000000;
  gort_chan_t *c = gort_chan_make(sizeof(long), 0);
  sky_t root = {c, 0, leaves};
  double t0 = now_s();
  gort_go(sky_node, &root);
  long sum;
  gort_chan_recv(c, &sum);
  double t = now_s() - t0;
  gort_chan_free(c);
  if (sum != leaves * (leaves - 1) / 2) printf("skynet_chan: WRONG SUM\n");
  printf("skynet_chan %.1f ns/goroutine\n", t * 1e9 / 1111111.0);  // every node is a goroutine
}

static int nargs;
static char **args;

// Whether workload name runs: every one when no name was given.
static bool want(const char *name) {
  if (nargs == 0) return true;
  for (int i = 0; i < nargs; i++)
    if (strcmp(args[i], name) == 0) return true;
  return false;
}

int main(int argc, char **argv) {
  if (argc > 1) scale = atol(argv[1]);
  if (scale < 1) scale = 1;
  if (argc > 2) nargs = argc - 2, args = argv + 2;
  if (getenv("GORT_MAXPROCS") == NULL) gort_maxprocs(2);
  if (want("pingpong")) pingpong();
  if (want("buffered_cap1")) buffered(1);
  if (want("buffered_cap1024")) buffered(1024);
  if (want("select4")) select4();
  if (want("mutex_2")) mutex_contention(2);
  if (want("mutex_8")) mutex_contention(8);
  if (want("workerpool")) worker_pool();
  if (want("skynet_chan")) skynet_chan();
  return 0;
}
