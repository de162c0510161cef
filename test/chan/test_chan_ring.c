// Adversarial tests of the lock-free ring (chan.c, "The ring"): operations
// in flight (between the CAS of a position and the store of seq) met by
// close, by a receiver about to wait and by a sender on a full ring; the
// laps' wraparound; pointers in slots under a running collector; received
// slots zeroed. A large element makes the in-flight window milliseconds
// long (the memcpy), so the races are hit by construction, not by luck.

#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "chantest.h"
#include "../gc/gctest.h"
#include "chan/chan.h"
#include "gort/alloc.h"

enum { BIG = 48 << 20 };  // bytes per element: a memcpy of several ms

static unsigned char *big_src, *big_dst;

static void big_fill(unsigned char *p, unsigned char tag) {
  for (size_t i = 0; i < BIG; i += 4096) p[i] = (unsigned char)(tag + i / 4096);
  p[BIG - 1] = tag;
}
static bool big_check(const unsigned char *p, unsigned char tag) {
  for (size_t i = 0; i < BIG; i += 4096)
    if (p[i] != (unsigned char)(tag + i / 4096)) return false;
  return p[BIG - 1] == tag;
}

static gort_chan_t *bigc;

static void *big_send_thread(void *arg) {
  (void)arg;
  gort_chan_send(bigc, big_src);
  return NULL;
}

static uint32_t slot_seq(gort_chan_t *c, size_t i) {
  return atomic_load(&((slot_t *)(void *)(c->buf + i * c->stride))->seq);
}

static void big_setup(size_t cap) {
  if (big_src == NULL) {
    big_src = gort_malloc(BIG);
    big_dst = gort_malloc(BIG);
  }
  big_fill(big_src, 0x5a);
  memset(big_dst, 0, BIG);
  bigc = gort_chan_make(BIG, cap);
  EXPECT(bigc != NULL);
}

// A send whose CAS came before the close is received before any receive
// reports the close, even when it is still copying at the close.
TEST(a_send_in_flight_at_the_close_is_received_before_closed) {
  int hit = 0;
  for (int round = 0; round < 5; round++) {
    big_setup(4);
    pthread_t th;
    pthread_create(&th, NULL, big_send_thread, NULL);
    while (gort_chan_len(bigc) == 0) gort__cpu_relax();  // the CAS is done
    gort_chan_close(bigc);
    hit += slot_seq(bigc, 0) == 0;  // still unpublished at the close
    EXPECT(gort_chan_recv(bigc, big_dst), "the element sent before the close was lost");
    EXPECT(big_check(big_dst, 0x5a), "torn element");
    EXPECT(!gort_chan_recv(bigc, big_dst), "closed after the drain");
    pthread_join(th, NULL);
    gort_chan_free(bigc);
  }
  EXPECT(hit > 0, "never closed during the copy (window missed)");
}

// A receiver that finds the ring empty by seq, while a send is in flight,
// must not wait (it would wait with the element in the ring: nobody wakes it).
TEST(a_receive_meeting_a_send_in_flight_does_not_wait_for_ever) {
  for (int round = 0; round < 5; round++) {
    big_setup(4);
    pthread_t th;
    pthread_create(&th, NULL, big_send_thread, NULL);
    while (gort_chan_len(bigc) == 0) gort__cpu_relax();
    EXPECT(gort_chan_recv(bigc, big_dst));
    EXPECT(big_check(big_dst, 0x5a), "torn element");
    pthread_join(th, NULL);
    gort_chan_free(bigc);
  }
}

// Same through select with default: the send is in flight, so the select
// may take it or see none ready, but must not block or tear it.
TEST(a_select_with_default_meeting_a_send_in_flight) {
  for (int round = 0; round < 5; round++) {
    big_setup(4);
    pthread_t th;
    pthread_create(&th, NULL, big_send_thread, NULL);
    while (gort_chan_len(bigc) == 0) gort__cpu_relax();
    gort_select_case_t cs[1] = {{.chan = bigc, .dir = GORT_SELECT_RECV, .elem = big_dst}};
    int k = gort_select(cs, 1, 0);
    if (k < 0) EXPECT(gort_chan_recv(bigc, big_dst));
    EXPECT(big_check(big_dst, 0x5a), "torn element");
    pthread_join(th, NULL);
    gort_chan_free(bigc);
  }
}

static void *big_recv_thread(void *arg) {
  (void)arg;
  EXPECT(gort_chan_recv(bigc, big_dst));
  return NULL;
}

// Mirror: a full 1-slot ring, a receive in flight (copying out), a sender
// arrives: it must neither overwrite the slot being read nor wait for ever.
TEST(a_send_on_a_full_ring_meeting_a_receive_in_flight) {
  static unsigned char *second;
  if (second == NULL) second = gort_malloc(BIG);
  for (int round = 0; round < 5; round++) {
    big_setup(1);
    gort_chan_send(bigc, big_src);  // full
    big_fill(second, 0x33);
    pthread_t th;
    pthread_create(&th, NULL, big_recv_thread, NULL);
    while (gort_chan_len(bigc) != 0) gort__cpu_relax();  // its CAS is done
    gort_chan_send(bigc, second);
    pthread_join(th, NULL);
    EXPECT(big_check(big_dst, 0x5a), "the first element torn by the second send");
    EXPECT(gort_chan_recv(bigc, big_dst));
    EXPECT(big_check(big_dst, 0x33), "the second element torn");
    gort_chan_free(bigc);
  }
}

// ---- laps ------------------------------------------------------------------------------------

// Puts an empty ring at lap `lap`, index 0 (each slot waiting for that lap's send).
static void set_lap(gort_chan_t *c, uint32_t lap) {
  atomic_store(&c->sendpos, (uint64_t)lap << 32);
  atomic_store(&c->recvpos, (uint64_t)lap << 32);
  for (size_t i = 0; i < c->cap; i++) atomic_store(&((slot_t *)(void *)(c->buf + i * c->stride))->seq, 2 * lap);
}

typedef struct {
  gort_chan_t *c;
  int n;
  gort_waitgroup_t *wg;
} lapw_t;

static void lap_produce(void *arg) {
  lapw_t *w = arg;
  for (int i = 0; i < w->n; i++) {
    gort_chan_send(w->c, &i);
    size_t l = gort_chan_len(w->c);
    EXPECT(l <= gort_chan_cap(w->c), "len %zu", l);
  }
  gort_chan_close(w->c);
  gort_waitgroup_done(w->wg);
}

static void lap_consume(void *arg) {
  lapw_t *w = arg;
  int v, want = 0;
  while (gort_chan_recv(w->c, &v)) {
    if (v != want) {
      EXPECT_EQ_U64(v, want);
      break;
    }
    want++;
  }
  EXPECT_EQ_U64(want, w->n);
  gort_waitgroup_done(w->wg);
}

static void *lap_consume_thread(void *arg) {
  lap_consume(arg);
  return NULL;
}

// Through the wrap of the 31-bit lap (and of the 32-bit seq), with the
// lock-free path, freezing and thawing at each end.
TEST(fifo_across_the_lap_wraparound) {
  gort_maxprocs(2);
  size_t caps[] = {1, 2, 3, 7};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
    static gort_waitgroup_t wg;
    memset(&wg, 0, sizeof wg);
    static lapw_t w;
    w = (lapw_t){.c = gort_chan_make(sizeof(int), caps[k]), .n = 200000, .wg = &wg};
    set_lap(w.c, POS_LAPMASK - 20);
    gort_waitgroup_add(&wg, 2);
    pthread_t th;
    pthread_create(&th, NULL, lap_consume_thread, &w);
    EXPECT(gort_go(lap_produce, &w) == 0);
    gort_waitgroup_wait(&wg);
    pthread_join(th, NULL);
    EXPECT_EQ_U64(gort_chan_len(w.c), 0);
    gort_chan_free(w.c);
  }
}

// len when the two positions straddle the wrap.
TEST(len_across_the_lap_wraparound) {
  for (size_t cap = 1; cap <= 5; cap++) {
    gort_chan_t *c = gort_chan_make(sizeof(int), cap);
    set_lap(c, POS_LAPMASK);
    for (int round = 0; round < 3; round++) {
      for (size_t i = 0; i < cap; i++) {
        int v = (int)i;
        EXPECT(gort_chan_try_send(c, &v));
        EXPECT_EQ_U64(gort_chan_len(c), i + 1);
      }
      int v = 0;
      EXPECT(!gort_chan_try_send(c, &v), "full at cap %zu", cap);
      for (size_t i = 0; i < cap; i++) {
        EXPECT(gort_chan_try_recv(c, &v));
        EXPECT_EQ_U64(v, i);
        EXPECT_EQ_U64(gort_chan_len(c), cap - i - 1);
      }
      EXPECT(!gort_chan_try_recv(c, &v));
    }
    gort_chan_free(c);
  }
}

// ---- the collector -------------------------------------------------------------------------

enum { GCP = 3, GCN = 20000, OBJ = 48 };

typedef struct {
  gort_chan_t *c;
  int id;
  gort_waitgroup_t *pd, *cd;
  _Atomic int *bad, *got;
} gcw_t;

static void gc_produce(void *arg) {
  gcw_t *w = arg;
  for (int i = 0; i < GCN; i++) {
    void *o = gort_gc_alloc(OBJ);
    gctest_fill(o, OBJ, (uint64_t)(w->id * GCN + i));
    ((uint64_t *)o)[0] = (uint64_t)(w->id * GCN + i);  // the tag, for the check
    gort_chan_send(w->c, &o);
    o = NULL;
  }
  gort_waitgroup_done(w->pd);
}

static void gc_consume(void *arg) {
  gcw_t *w = arg;
  void *o;
  while (gort_chan_recv(w->c, &o)) {
    uint64_t tag = ((uint64_t *)o)[0];
    ((uint64_t *)o)[0] = 0xA500000000000000ULL | ((tag * 1000003) & 0xFFFFFFFFFFFFULL);
    if (!gctest_check(o, OBJ, tag)) atomic_fetch_add(w->bad, 1);
    atomic_fetch_add(w->got, 1);
    // Churn: allocate so that freed objects get reused and a missed one shows.
    void *junk = gort_gc_alloc(OBJ);
    memset(junk, 0xEE, OBJ);
  }
  gort_waitgroup_done(w->cd);
}

static _Atomic bool gc_stop;
static void *collector_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&gc_stop)) {
    gort_gc_collect();
    usleep(200);
  }
  return NULL;
}

// Pointers held only by a slot (or in flight through one) survive cycles
// that run while the producers and consumers go lock-free.
TEST(pointers_in_the_ring_survive_concurrent_collections) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (see test/run.sh)");
  gort_maxprocs(2);
  size_t caps[] = {1, 16, 256};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
    static gort_waitgroup_t pd, cd;
    memset(&pd, 0, sizeof pd);
    memset(&cd, 0, sizeof cd);
    static _Atomic int bad, got;
    atomic_store(&bad, 0);
    atomic_store(&got, 0);
    gort_chan_t *c = gort_chan_make(sizeof(void *), caps[k]);
    static gcw_t ws[2 * GCP];
    gort_waitgroup_add(&pd, GCP);
    gort_waitgroup_add(&cd, GCP);
    pthread_t th[2], col;
    atomic_store(&gc_stop, false);
    pthread_create(&col, NULL, collector_thread, NULL);
    for (int i = 0; i < 2 * GCP; i++) {
      ws[i] = (gcw_t){.c = c, .id = i % GCP, .pd = &pd, .cd = &cd, .bad = &bad, .got = &got};
      bool prod = i < GCP;
      if (i % GCP == 0) pthread_create(&th[prod ? 0 : 1], NULL, prod ? (void *(*)(void *))(void *)gc_produce : (void *(*)(void *))(void *)gc_consume, &ws[i]);
      else EXPECT(gort_go(prod ? gc_produce : gc_consume, &ws[i]) == 0);
    }
    gort_waitgroup_wait(&pd);
    gort_chan_close(c);
    gort_waitgroup_wait(&cd);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    atomic_store(&gc_stop, true);
    pthread_join(col, NULL);
    EXPECT_EQ_U64(atomic_load(&got), GCP * GCN);
    EXPECT_EQ_U64(atomic_load(&bad), 0, "objects freed while in the ring (cap %zu)", caps[k]);
  }
}

static gort_chan_t *zc;
static gort_weak_t *zweak[8];

static GCTEST_NOINLINE void send_recv_objects(void) {
  for (int i = 0; i < 8; i++) {
    void *o = gort_gc_alloc(64);
    zweak[i] = gort_gc_weak_make(o);
    gort_chan_send(zc, &o);
  }
  for (int i = 0; i < 8; i++) {
    void *o;
    EXPECT(gort_chan_recv(zc, &o));
  }
}

// A received slot holds no pointer: the objects go once their receivers drop them.
TEST(a_received_slot_keeps_nothing_alive) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (see test/run.sh)");
  gort_gc_add_roots(zweak, zweak + 8);
  zc = gort_chan_make(sizeof(void *), 16);
  gort_gc_add_roots(&zc, &zc + 1);
  send_recv_objects();
  gctest_clobber_stack();
  gctest_clear_vector_registers();
  gctest_collect();
  gctest_collect();
  int cleared = gctest_count_cleared(zweak, 8);
  EXPECT(cleared >= 6, "only %d of 8 received objects collected", cleared);
}

// ---- select with default over several rings ---------------------------------------------------

enum { SP = 4, SC = 4, SN = 20000, SCH = 3 };

typedef struct {
  gort_chan_t **c;
  int id;
  uint8_t *seen;
  gort_waitgroup_t *pd, *cd;
  _Atomic int *got;
} selw_t;

static void sel_produce(void *arg) {
  selw_t *w = arg;
  for (int i = 0; i < SN; i++) {
    int v = w->id * SN + i;
    gort_select_case_t cs[SCH + 1];
    for (int k = 0; k < SCH; k++) cs[k] = (gort_select_case_t){.chan = w->c[k], .dir = GORT_SELECT_SEND, .elem = &v};
    cs[SCH] = (gort_select_case_t){.chan = NULL};  // a NULL case is never chosen
    while (gort_select(cs, SCH + 1, (i & 7) == 0 ? 1000 : 0) < 0) {
      if ((i & 3) == 0) gort_yield();
    }
  }
  gort_waitgroup_done(w->pd);
}

static void sel_consume(void *arg) {
  selw_t *w = arg;
  int v;
  int open = SCH;
  bool closed[SCH] = {false};
  unsigned spins = 0;
  while (open > 0) {
    gort_select_case_t cs[SCH];
    for (int k = 0; k < SCH; k++)
      cs[k] = (gort_select_case_t){.chan = closed[k] ? NULL : w->c[k], .dir = GORT_SELECT_RECV, .elem = &v};
    int k = gort_select(cs, SCH, (spins++ & 15) == 0 ? -1 : 0);
    if (k < 0) continue;
    EXPECT(k < SCH && !closed[k]);
    if (!cs[k].ok) {
      closed[k] = true;
      open--;
      continue;
    }
    EXPECT(v >= 0 && v < SP * SN, "v %d", v);
    __atomic_fetch_add(&w->seen[v], 1, __ATOMIC_RELAXED);
    atomic_fetch_add(w->got, 1);
  }
  gort_waitgroup_done(w->cd);
}

static void *sel_consume_thread(void *arg) {
  sel_consume(arg);
  return NULL;
}
static void *sel_produce_thread(void *arg) {
  sel_produce(arg);
  return NULL;
}

TEST(select_with_default_over_rings_loses_and_repeats_nothing) {
  gort_maxprocs(2);
  size_t caps[] = {1, 2, 64};
  for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
    static uint8_t seen[SP * SN];
    memset(seen, 0, sizeof seen);
    static gort_waitgroup_t pd, cd;
    memset(&pd, 0, sizeof pd);
    memset(&cd, 0, sizeof cd);
    static _Atomic int got;
    atomic_store(&got, 0);
    static gort_chan_t *c[SCH];
    for (int k = 0; k < SCH; k++) c[k] = gort_chan_make(sizeof(int), caps[ci]);
    static selw_t ws[SP + SC];
    gort_waitgroup_add(&pd, SP);
    gort_waitgroup_add(&cd, SC);
    pthread_t th[2];
    for (int i = 0; i < SP + SC; i++) {
      ws[i] = (selw_t){.c = c, .id = i < SP ? i : 0, .seen = seen, .pd = &pd, .cd = &cd, .got = &got};
      if (i == 0) pthread_create(&th[0], NULL, sel_produce_thread, &ws[i]);
      else if (i == SP) pthread_create(&th[1], NULL, sel_consume_thread, &ws[i]);
      else EXPECT(gort_go(i < SP ? sel_produce : sel_consume, &ws[i]) == 0);
    }
    gort_waitgroup_wait(&pd);
    for (int k = 0; k < SCH; k++) gort_chan_close(c[k]);
    gort_waitgroup_wait(&cd);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    EXPECT_EQ_U64(atomic_load(&got), SP * SN);
    for (int v = 0; v < SP * SN; v++)
      if (seen[v] != 1) EXPECT(false, "cap %zu: value %d received %d times", caps[ci], v, seen[v]);
  }
}
