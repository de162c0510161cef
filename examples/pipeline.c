// gort pipeline demo: a producer, a pool of workers and a collector joined
// by channels, stopped early by a context (Go's pipelines-and-cancellation
// pattern, https://go.dev/blog/pipelines, in C).
//
// 1. The producer sends the numbers 1..N on `jobs` (buffered).
// 2. WORKERS goroutines each receive a number, compute its digit sum (work
//    small enough that the figure measures the channels, not the work) and
//    send it on `results`.
// 3. The collector (main, a plain thread) adds them up and checks the total.
// 4. Every stage selects on the context's done channel beside its channel
//    operation, so cancelling the context (here: a timeout on the second
//    run) stops all of them at once, and nobody is left blocked; the
//    program then checks that every goroutine ended.
// The throughput (numbers through the pipeline per second) is printed.

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "gort/chan.h"
#include "gort/context.h"
#include "gort/sched.h"
#include "gort/sync.h"

enum { WORKERS = 8 };

typedef struct {
  gort_ctx_t *ctx;
  gort_chan_t *jobs, *results;
  int64_t n;
  gort_waitgroup_t workers;
} pipeline_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// Sends *v on c unless ctx is done first; returns whether it sent.
static bool send_or_done(gort_ctx_t *ctx, gort_chan_t *c, void *v) {
  gort_select_case_t cs[2] = {{.chan = c, .dir = GORT_SELECT_SEND, .elem = v},
                              {.chan = gort_ctx_done(ctx), .dir = GORT_SELECT_RECV}};
  return gort_select(cs, 2, -1) == 0;
}

static void producer(void *arg) {
  pipeline_t *p = arg;
  for (int64_t i = 1; i <= p->n; i++)
    if (!send_or_done(p->ctx, p->jobs, &i)) break;
  gort_chan_close(p->jobs);
}

static int64_t digit_sum(int64_t n) {
  int64_t s = 0;
  for (; n > 0; n /= 10) s += n % 10;
  return s;
}

static void worker(void *arg) {
  pipeline_t *p = arg;
  int64_t n;
  while (gort_chan_recv(p->jobs, &n)) {
    int64_t d = digit_sum(n);
    if (!send_or_done(p->ctx, p->results, &d)) break;
  }
  gort_waitgroup_done(&p->workers);
}

static void close_results(void *arg) {
  pipeline_t *p = arg;
  gort_waitgroup_wait(&p->workers);
  gort_chan_close(p->results);
}

static void run(int64_t n, int64_t timeout_ns) {
  static pipeline_t p;
  p = (pipeline_t){.n = n};
  p.ctx = timeout_ns > 0 ? gort_ctx_with_timeout(gort_ctx_background(), timeout_ns)
                         : gort_ctx_with_cancel(gort_ctx_background());
  p.jobs = gort_chan_make(sizeof(int64_t), 256);
  p.results = gort_chan_make(sizeof(int64_t), 256);
  double t0 = now_s();
  gort_waitgroup_add(&p.workers, WORKERS);
  gort_go(producer, &p);
  for (int i = 0; i < WORKERS; i++) gort_go(worker, &p);
  gort_go(close_results, &p);
  int64_t seen = 0, total = 0, d;
  while (gort_chan_recv(p.results, &d)) {
    seen++;
    total += d;
  }
  int64_t want = 0;
  for (int64_t i = 1; i <= n && seen == n; i++) want += digit_sum(i);
  double dt = now_s() - t0;
  int err = gort_ctx_err(p.ctx);
  gort_ctx_cancel(p.ctx);
  for (int i = 0; i < 1000 && gort_num_goroutine() > 0; i++) gort_sleep(1000000);
  printf("pipeline: %lld of %lld numbers through 1 producer, %d workers, 1 collector in %.3f s: "
         "%.2f M numbers/s, digit sums %s%s%s; goroutines left: %lld\n",
         (long long)seen, (long long)n, WORKERS, dt, (double)seen / dt / 1e6,
         seen < n ? "not all in" : total == want ? "all correct" : "WRONG",
         err ? ", stopped: " : "", err ? gort_ctx_err_string(err) : "",
         (long long)gort_num_goroutine());
}

int main(void) {
  run(2000000, 0);               // to the end
  run(1000000000, 100 * 1000000);  // cancelled by its deadline after 100 ms
  return 0;
}
