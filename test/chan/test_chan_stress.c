// Many producers and consumers on 2 Ps, goroutines and plain threads
// mixed, on unbuffered and buffered channels and through select: every
// value sent is received exactly once.

#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "chantest.h"

enum { PRODUCERS = 8, CONSUMERS = 8, PER = 20000, THREADS = 2 };

typedef struct {
  gort_chan_t *c, *c2;           // c2: a second channel for the select variant
  int id;
  bool use_select;
  uint8_t *seen;                 // one counter per value; atomic increments
  gort_waitgroup_t *prod_done, *cons_done;
  _Atomic int64_t *received;
} worker_t;

static void produce(void *arg) {
  worker_t *w = arg;
  for (int i = 0; i < PER; i++) {
    int v = w->id * PER + i;
    if (w->use_select && w->c2 != NULL) {
      gort_select_case_t cs[2] = {{.chan = w->c, .dir = GORT_SELECT_SEND, .elem = &v},
                                  {.chan = w->c2, .dir = GORT_SELECT_SEND, .elem = &v}};
      EXPECT(gort_select(cs, 2, -1) >= 0);
    } else {
      gort_chan_send(w->c, &v);
    }
  }
  gort_waitgroup_done(w->prod_done);
}

static void consume(void *arg) {
  worker_t *w = arg;
  int v;
  for (;;) {
    bool ok;
    if (w->use_select && w->c2 != NULL) {
      gort_select_case_t cs[2] = {{.chan = w->c, .dir = GORT_SELECT_RECV, .elem = &v},
                                  {.chan = w->c2, .dir = GORT_SELECT_RECV, .elem = &v}};
      int k = gort_select(cs, 2, -1);
      ok = cs[k].ok;
      if (!ok) {  // one closed: drain the other plainly
        gort_chan_t *other = k == 0 ? w->c2 : w->c;
        while (gort_chan_recv(other, &v)) {
          __atomic_fetch_add(&w->seen[v], 1, __ATOMIC_RELAXED);
          atomic_fetch_add(w->received, 1);
        }
        break;
      }
    } else {
      ok = gort_chan_recv(w->c, &v);
      if (!ok) break;
    }
    EXPECT(v >= 0 && v < PRODUCERS * PER, "v %d", v);
    __atomic_fetch_add(&w->seen[v], 1, __ATOMIC_RELAXED);
    atomic_fetch_add(w->received, 1);
  }
  gort_waitgroup_done(w->cons_done);
}

static void *thread_produce(void *arg) {
  produce(arg);
  return NULL;
}
static void *thread_consume(void *arg) {
  consume(arg);
  return NULL;
}

static void run(size_t cap, bool use_select) {
  gort_maxprocs(2);
  static uint8_t seen[PRODUCERS * PER];
  memset(seen, 0, sizeof seen);
  static gort_waitgroup_t pd, cd;
  memset(&pd, 0, sizeof pd);
  memset(&cd, 0, sizeof cd);
  static _Atomic int64_t received;
  atomic_store(&received, 0);
  gort_chan_t *c = gort_chan_make(sizeof(int), cap);
  gort_chan_t *c2 = use_select ? gort_chan_make(sizeof(int), cap) : NULL;
  static worker_t ws[PRODUCERS + CONSUMERS];
  pthread_t th[2 * THREADS];
  int nth = 0;
  gort_waitgroup_add(&pd, PRODUCERS);
  gort_waitgroup_add(&cd, CONSUMERS);
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
    ws[i] = (worker_t){.c = c, .c2 = c2, .id = i < PRODUCERS ? i : 0, .use_select = use_select,
                       .seen = seen, .prod_done = &pd, .cons_done = &cd, .received = &received};
    bool producer = i < PRODUCERS;
    // The first THREADS producers and consumers are plain threads.
    bool thread = producer ? i < THREADS : i - PRODUCERS < THREADS;
    if (thread) pthread_create(&th[nth++], NULL, producer ? thread_produce : thread_consume, &ws[i]);
    else EXPECT(gort_go(producer ? produce : consume, &ws[i]) == 0);
  }
  gort_waitgroup_wait(&pd);
  gort_chan_close(c);
  if (c2 != NULL) gort_chan_close(c2);
  gort_waitgroup_wait(&cd);
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
  EXPECT_EQ_U64(atomic_load(&received), PRODUCERS * PER);
  for (int v = 0; v < PRODUCERS * PER; v++)
    if (seen[v] != 1) EXPECT(false, "value %d received %d times", v, seen[v]);
}

TEST(every_value_is_received_exactly_once_unbuffered) { run(0, false); }
TEST(every_value_is_received_exactly_once_buffered_1) { run(1, false); }
TEST(every_value_is_received_exactly_once_buffered_64) { run(64, false); }
TEST(every_value_is_received_exactly_once_buffered_1024) { run(1024, false); }
TEST(every_value_is_received_exactly_once_through_select_unbuffered) { run(0, true); }
TEST(every_value_is_received_exactly_once_through_select_buffered) { run(16, true); }
TEST(every_value_is_received_exactly_once_through_select_buffered_1024) { run(1024, true); }

// One producer and one consumer, each a goroutine or a plain thread, on
// rings of a few sizes: the lock-free path runs while the ring is partly
// full, the locked one with parked parties at each end, and the switches
// between them must lose, repeat or reorder nothing; close comes after the
// last element; len stays within the capacity.
enum { ORDER_N = 50000 };

typedef struct {
  gort_chan_t *c;
  gort_waitgroup_t *done;
} order_t;

static void order_produce(void *arg) {
  order_t *o = arg;
  for (int i = 0; i < ORDER_N; i++) {
    gort_chan_send(o->c, &i);
    if (i % 1000 == 0) EXPECT(gort_chan_len(o->c) <= gort_chan_cap(o->c));
  }
  gort_chan_close(o->c);
  gort_waitgroup_done(o->done);
}

static void order_consume(void *arg) {
  order_t *o = arg;
  int v, want = 0;
  while (gort_chan_recv(o->c, &v)) {
    if (v != want) {
      EXPECT_EQ_U64(v, want);
      break;
    }
    want++;
  }
  EXPECT_EQ_U64(want, ORDER_N);
  EXPECT_EQ_U64(gort_chan_len(o->c), 0);
  gort_waitgroup_done(o->done);
}

static void *order_thread(void *arg) {
  order_consume(arg);
  return NULL;
}

TEST(one_producer_and_one_consumer_see_fifo_order_and_close_last) {
  gort_maxprocs(2);
  size_t caps[] = {1, 2, 7, 1024};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
    for (int thread = 0; thread < 2; thread++) {
      static gort_waitgroup_t done;
      memset(&done, 0, sizeof done);
      static order_t o;
      o = (order_t){.c = gort_chan_make(sizeof(int), caps[k]), .done = &done};
      gort_waitgroup_add(&done, 2);
      pthread_t th;
      if (thread) pthread_create(&th, NULL, order_thread, &o);
      else EXPECT(gort_go(order_consume, &o) == 0);
      EXPECT(gort_go(order_produce, &o) == 0);
      gort_waitgroup_wait(&done);
      if (thread) pthread_join(th, NULL);
      gort_chan_free(o.c);
    }
  }
}
