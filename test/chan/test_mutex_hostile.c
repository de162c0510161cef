// Hostile cases for the mutex's plain-store unlock and its 1 ms rescue
// (sync/mutex.c, sync/sema.c): every case ends by checking that the mutex
// is back to its zero state (no waiter count left over or gone below zero,
// no woken or starving bit stuck, no count or waiter left in its sema), as
// well as mutual exclusion and progress. Most run twice: as they are, and
// with GORT_DEBUG=mutexlostwake=N, which makes unlocks miss waiters that
// count themselves while they release, so that the rescue has to do the
// waking (each such miss costs 1 ms).
//
//   - goroutines, plain threads and trylock spinners on one mutex, with
//     critical sections of about RESCUE_NS, so that rescue timers fire
//     while releases take waiters off the queue (the claim word's race);
//   - waiters whose one rescue fired (uselessly) while the mutex was held,
//     and who then depend on the next unlock alone;
//   - several waiters arriving at staggered points around a release;
//   - starvation mode under lost wakes (the hand-off done by the unlock or
//     by a waiter's rescue, never both), and a newcomer whose lock lands
//     between an unlock and its hand-off;
//   - rwmutex and cond on top of the mutex, under lost wakes;
//   - rescue timers pending while gort_maxprocs removes and adds Ps, and
//     on one P whose only goroutine waits on a thread;
//   - fork while a mutex is contended: the child's own mutexes work;
//   - the deadlock detector still reports a deadlock made of mutexes only
//     (goroutines, a plain thread), and nothing while a holder sleeps.

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chantest.h"
#include "gort/sync.h"

#define DEADLOCK "gort: fatal error: all goroutines are asleep - deadlock!"
#define LOCKED_BIT 1ull
#define STARVING_BIT (1ull << 33)

// The mutex back at rest: exactly its zero value.
static void expect_idle(gort_mutex_t *m, const char *what) {
  uint64_t s = __atomic_load_n(&m->state_, __ATOMIC_ACQUIRE);
  EXPECT(s == 0, "%s: state %#llx at rest (waiters %llu)", what, (unsigned long long)s,
         (unsigned long long)(s >> 34));
  EXPECT(m->sema_.count_ == 0, "%s: sema count %u at rest", what, m->sema_.count_);
  EXPECT(m->sema_.head_ == NULL && m->sema_.tail_ == NULL, "%s: sema queue not empty at rest", what);
}

static void pause_any(bool goroutine) {
  if (goroutine) gort_yield();
  else sched_yield();
}

// ---- a mixed crowd with critical sections about as long as the rescue ---------------------

enum { CROWD_G = 8, CROWD_T = 3, CROWD_ITERS = 400 };
static gort_mutex_t crowd;
static _Atomic int crowd_inside, crowd_max_inside;
static int64_t crowd_count;  // guarded by crowd
static gort_waitgroup_t crowd_wg;

static void crowd_body(uintptr_t id) {
  bool goroutine = id < CROWD_G;
  uint64_t seed = id * 0x9E3779B97F4A7C15ull + 1;
  for (int i = 0; i < CROWD_ITERS; i++) {
    uint64_t r = test_rand(&seed);
    if (r % 5 == 0) {
      while (!gort_mutex_trylock(&crowd)) pause_any(goroutine);
    } else {
      gort_mutex_lock(&crowd);
    }
    int in = atomic_fetch_add(&crowd_inside, 1) + 1;
    if (in > atomic_load(&crowd_max_inside)) atomic_store(&crowd_max_inside, in);
    int64_t v = crowd_count;
    switch ((r >> 8) % 16) {
      case 0: busy_ns(900 * 1000 + (int64_t)((r >> 16) % 200) * 1000); break;  // ~ RESCUE_NS
      case 1: case 2: busy_ns((int64_t)((r >> 16) % 20) * 1000); break;
      case 3: if (goroutine) gort_yield(); break;  // hold it across a switch
      default: break;
    }
    crowd_count = v + 1;
    atomic_fetch_sub(&crowd_inside, 1);
    gort_mutex_unlock(&crowd);
    if ((r >> 24) % 8 == 0) pause_any(goroutine);
  }
  gort_waitgroup_done(&crowd_wg);
}

static void crowd_g(void *arg) { crowd_body((uintptr_t)arg); }
static void *crowd_t(void *arg) {
  crowd_body((uintptr_t)arg);
  return NULL;
}

static void crowd_run(void) {
  gort_maxprocs(2);
  gort_waitgroup_add(&crowd_wg, CROWD_G + CROWD_T);
  for (uintptr_t i = 0; i < CROWD_G; i++) EXPECT(gort_go(crowd_g, (void *)i) == 0);
  pthread_t th[CROWD_T];
  for (uintptr_t i = 0; i < CROWD_T; i++)
    EXPECT(pthread_create(&th[i], NULL, crowd_t, (void *)(CROWD_G + i)) == 0);
  gort_waitgroup_wait(&crowd_wg);
  for (int i = 0; i < CROWD_T; i++) pthread_join(th[i], NULL);
  EXPECT(atomic_load(&crowd_max_inside) == 1, "%d parties inside at once", atomic_load(&crowd_max_inside));
  EXPECT_EQ_U64(crowd_count, (uint64_t)(CROWD_G + CROWD_T) * CROWD_ITERS);
  expect_idle(&crowd, "crowd");
}

TEST(a_crowd_with_rescue_length_sections_stays_exclusive_and_ends_at_rest) { crowd_run(); }
INNER_TEST(crowd_inner) { crowd_run(); }
TEST(a_crowd_whose_unlocks_lose_every_wake_stays_exclusive_and_ends_at_rest) {
  EXPECT(harness_run_inner("crowd_inner", "GORT_DEBUG=mutexlostwake=1"));
}
TEST(a_crowd_whose_unlocks_lose_some_wakes_stays_exclusive_and_ends_at_rest) {
  EXPECT(harness_run_inner("crowd_inner", "GORT_DEBUG=mutexlostwake=2"));
}

// ---- waiters whose rescue was spent while the mutex was held --------------------------------
//
// The holder keeps the mutex 3 ms while goroutines and threads queue: each
// waiter's only rescue fires then, finds the mutex locked and does
// nothing. From then on only unlocks can wake them; the holder unlocks
// once and does not come back. Every waiter must get the mutex, quickly.

enum { SPENT_G = 4, SPENT_T = 2, SPENT_ROUNDS = 40 };
static gort_mutex_t spent;
static _Atomic int spent_round, spent_queued, spent_got, spent_inside;
static gort_waitgroup_t spent_wg;

static void spent_waiter(uintptr_t id) {
  bool goroutine = id < SPENT_G;
  for (int r = 1; r <= SPENT_ROUNDS; r++) {
    while (atomic_load(&spent_round) < r) pause_any(goroutine);
    atomic_fetch_add(&spent_queued, 1);
    gort_mutex_lock(&spent);
    EXPECT(atomic_fetch_add(&spent_inside, 1) == 0, "two parties inside");
    busy_ns(2 * 1000);
    atomic_fetch_sub(&spent_inside, 1);
    gort_mutex_unlock(&spent);
    atomic_fetch_add(&spent_got, 1);
  }
  gort_waitgroup_done(&spent_wg);
}

static void spent_g(void *arg) { spent_waiter((uintptr_t)arg); }
static void *spent_t(void *arg) {
  spent_waiter((uintptr_t)arg);
  return NULL;
}

static void spent_run(void) {
  gort_maxprocs(2);
  gort_waitgroup_add(&spent_wg, SPENT_G + SPENT_T);
  for (uintptr_t i = 0; i < SPENT_G; i++) EXPECT(gort_go(spent_g, (void *)i) == 0);
  pthread_t th[SPENT_T];
  for (uintptr_t i = 0; i < SPENT_T; i++)
    EXPECT(pthread_create(&th[i], NULL, spent_t, (void *)(SPENT_G + i)) == 0);
  for (int r = 1; r <= SPENT_ROUNDS; r++) {
    gort_mutex_lock(&spent);
    atomic_store(&spent_queued, 0);
    atomic_store(&spent_got, 0);
    atomic_store(&spent_round, r);
    while (atomic_load(&spent_queued) < SPENT_G + SPENT_T) sched_yield();
    busy_ns(3 * 1000 * 1000);  // past every waiter's rescue
    int64_t t0 = now_ns();
    gort_mutex_unlock(&spent);
    while (atomic_load(&spent_got) < SPENT_G + SPENT_T) {
      EXPECT(now_ns() - t0 < 3LL * 1000 * 1000 * 1000, "round %d: %d of %d waiters got the mutex", r,
             atomic_load(&spent_got), SPENT_G + SPENT_T);
      usleep(50);  // off the CPU: 2 CPUs serve 2 Ps and the waiting threads
    }
  }
  gort_waitgroup_wait(&spent_wg);
  for (int i = 0; i < SPENT_T; i++) pthread_join(th[i], NULL);
  expect_idle(&spent, "spent");
}

TEST(waiters_whose_rescue_fired_while_the_mutex_was_held_all_get_it) { spent_run(); }
INNER_TEST(spent_inner) { spent_run(); }
TEST(waiters_whose_rescue_fired_while_held_all_get_it_under_lost_wakes) {
  EXPECT(harness_run_inner("spent_inner", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- staggered arrivals around one release ---------------------------------------------------
//
// The holder releases once per round and waits, not touching the mutex,
// until every waiter has had it. The waiters arrive at staggered points
// (before, during and after the release, some spinning first, some after
// the first waiter's rescue was armed), each locking once per round.

enum { STAG_G = 3, STAG_T = 2, STAG_ROUNDS = 150 };
static gort_mutex_t stag;
static _Atomic int stag_round, stag_got, stag_inside;
static gort_waitgroup_t stag_wg;

static void stag_waiter(uintptr_t id) {
  bool goroutine = id < STAG_G;
  for (int r = 1; r <= STAG_ROUNDS; r++) {
    while (atomic_load(&stag_round) < r) pause_any(goroutine);
    busy_ns((int64_t)((id * 7 + (uintptr_t)r * 3) % 12) * 250);  // 0..2.75 us
    if ((r + (int)id) % 9 == 0) busy_ns(1200 * 1000);  // after the others' rescues were armed
    gort_mutex_lock(&stag);
    EXPECT(atomic_fetch_add(&stag_inside, 1) == 0, "two parties inside");
    atomic_fetch_sub(&stag_inside, 1);
    gort_mutex_unlock(&stag);
    atomic_fetch_add(&stag_got, 1);
  }
  gort_waitgroup_done(&stag_wg);
}

static void stag_g(void *arg) { stag_waiter((uintptr_t)arg); }
static void *stag_t(void *arg) {
  stag_waiter((uintptr_t)arg);
  return NULL;
}

static void stag_run(int procs) {
  gort_maxprocs(procs);
  gort_waitgroup_add(&stag_wg, STAG_G + STAG_T);
  for (uintptr_t i = 0; i < STAG_G; i++) EXPECT(gort_go(stag_g, (void *)i) == 0);
  pthread_t th[STAG_T];
  for (uintptr_t i = 0; i < STAG_T; i++)
    EXPECT(pthread_create(&th[i], NULL, stag_t, (void *)(STAG_G + i)) == 0);
  for (int r = 1; r <= STAG_ROUNDS; r++) {
    gort_mutex_lock(&stag);
    atomic_store(&stag_got, 0);
    atomic_store(&stag_round, r);
    busy_ns((r % 5) * 1000);
    gort_mutex_unlock(&stag);
    int64_t t0 = now_ns();
    while (atomic_load(&stag_got) < STAG_G + STAG_T) {
      EXPECT(now_ns() - t0 < 3LL * 1000 * 1000 * 1000, "round %d: %d of %d got it", r,
             atomic_load(&stag_got), STAG_G + STAG_T);
      usleep(20);
    }
  }
  gort_waitgroup_wait(&stag_wg);
  for (int i = 0; i < STAG_T; i++) pthread_join(th[i], NULL);
  expect_idle(&stag, "staggered");
}

TEST(staggered_arrivals_around_each_release_all_get_the_mutex) { stag_run(2); }
INNER_TEST(stag_inner) { stag_run(2); }
INNER_TEST(stag_inner_one_p) { stag_run(1); }
TEST(staggered_arrivals_all_get_the_mutex_under_lost_wakes) {
  EXPECT(harness_run_inner("stag_inner", "GORT_DEBUG=mutexlostwake=1"));
}
TEST(staggered_arrivals_all_get_the_mutex_under_lost_wakes_on_one_p) {
  EXPECT(harness_run_inner("stag_inner_one_p", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- starvation mode under lost wakes --------------------------------------------------------
//
// Holders keep the mutex past 1 ms, so waiters starve and the mutex runs
// in starvation mode, where the unlock (or a waiter's rescue) hands it to
// the first waiter by setting the locked bit for it: two parties must
// never both succeed, and the mode must end once the crowd is gone.

enum { STARVE_G = 6, STARVE_T = 2, STARVE_ITERS = 60 };
static gort_mutex_t starve;
static _Atomic int starve_inside, starve_max_inside;
static _Atomic bool starve_saw;
static int64_t starve_count;  // guarded by starve
static gort_waitgroup_t starve_wg;

static void starve_body(uintptr_t id) {
  bool goroutine = id < STARVE_G;
  for (int i = 0; i < STARVE_ITERS; i++) {
    gort_mutex_lock(&starve);
    int in = atomic_fetch_add(&starve_inside, 1) + 1;
    if (in > atomic_load(&starve_max_inside)) atomic_store(&starve_max_inside, in);
    if (__atomic_load_n(&starve.state_, __ATOMIC_RELAXED) & STARVING_BIT) atomic_store(&starve_saw, true);
    int64_t v = starve_count;
    if ((i + (int)id) % 4 == 0) busy_ns(1100 * 1000);
    else if (goroutine && i % 3 == 0) gort_yield();
    starve_count = v + 1;
    atomic_fetch_sub(&starve_inside, 1);
    gort_mutex_unlock(&starve);
    // Come straight back (a barging newcomer) or stay away a while.
    if (i % 5 == 0) busy_ns(50 * 1000);
  }
  gort_waitgroup_done(&starve_wg);
}

static void starve_g(void *arg) { starve_body((uintptr_t)arg); }
static void *starve_t(void *arg) {
  starve_body((uintptr_t)arg);
  return NULL;
}

static void starve_run(void) {
  gort_maxprocs(2);
  gort_waitgroup_add(&starve_wg, STARVE_G + STARVE_T);
  for (uintptr_t i = 0; i < STARVE_G; i++) EXPECT(gort_go(starve_g, (void *)i) == 0);
  pthread_t th[STARVE_T];
  for (uintptr_t i = 0; i < STARVE_T; i++)
    EXPECT(pthread_create(&th[i], NULL, starve_t, (void *)(STARVE_G + i)) == 0);
  gort_waitgroup_wait(&starve_wg);
  for (int i = 0; i < STARVE_T; i++) pthread_join(th[i], NULL);
  EXPECT(atomic_load(&starve_max_inside) == 1, "%d parties inside at once", atomic_load(&starve_max_inside));
  EXPECT_EQ_U64(starve_count, (uint64_t)(STARVE_G + STARVE_T) * STARVE_ITERS);
  EXPECT(atomic_load(&starve_saw), "starvation mode never ran");
  expect_idle(&starve, "starvation");
}

TEST(starvation_hand_offs_stay_exclusive_and_the_mode_ends) { starve_run(); }
INNER_TEST(starve_inner) { starve_run(); }
TEST(starvation_hand_offs_stay_exclusive_and_the_mode_ends_under_lost_wakes) {
  EXPECT(harness_run_inner("starve_inner", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- a newcomer in the window between an unlock and its hand-off ----------------------------
//
// In starvation mode the unlock clears the lock word and then hands the
// mutex to the first waiter by setting it again. The lock's fast path on
// x86 is a bts of the lock word, which can land in between: it must give
// the mutex back (that unlock is the hand-off) and queue, so the starving
// waiter runs first. The window is a few instructions wide, so the test
// builds it: a waiter blocks, then the state is set to what an unlock
// leaves there in starvation mode (lock word clear, starving, one waiter
// counted), and a newcomer locks.

static gort_mutex_t window;
static _Atomic int window_waiter_in;  // 1 once the waiter holds the mutex

static void *window_waiter(void *arg) {
  (void)arg;
  gort_mutex_lock(&window);
  atomic_store(&window_waiter_in, 1);
  usleep(2000);
  gort_mutex_unlock(&window);
  return NULL;
}

TEST(a_newcomer_between_an_unlock_and_its_starvation_hand_off_queues_behind_the_waiter) {
  // The state written stands for an unlock stopped before its hand-off;
  // only a newcomer's give-back hands over then. Go's CAS lock (the
  // ThreadSanitizer build, other architectures) never takes the mutex in
  // that state, and would wait for a hand-off that never comes.
#if defined(__x86_64__)
  SKIP_IF(SCHEDTEST_TSAN, "the lock's fast path is Go's CAS there, which cannot land in the window");
#else
  SKIP_IF(true, "the lock's fast path is Go's CAS there, which cannot land in the window");
#endif
  gort_mutex_lock(&window);
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, window_waiter, NULL) == 0);
  uint64_t held_one_waiter = LOCKED_BIT | (1ull << 34);
  for (int i = 0; i < 5000 && __atomic_load_n(&window.state_, __ATOMIC_ACQUIRE) != held_one_waiter; i++)
    usleep(1000);
  uint64_t want = held_one_waiter;
  if (!__atomic_compare_exchange_n(&window.state_, &want, STARVING_BIT | (1ull << 34), false,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    EXPECT(false, "the waiter never counted itself: state %#llx", (unsigned long long)want);
    gort_mutex_unlock(&window);  // so the waiter can finish
    pthread_join(th, NULL);
    return;
  }
  // This thread's lock is now the newcomer's; the one above was released
  // by the state written, as an unlock would have.
  gort_mutex_lock(&window);
  EXPECT(atomic_load(&window_waiter_in) == 1, "the newcomer took the mutex before the starving waiter");
  gort_mutex_unlock(&window);
  pthread_join(th, NULL);
  expect_idle(&window, "window");
}

// ---- rwmutex and cond on top of the mutex ----------------------------------------------------

enum { RW_G = 6, RW_T = 2, RW_ITERS = 300 };
static gort_rwmutex_t rwm;
static _Atomic int rw_readers, rw_writers;
static int64_t rw_value;  // guarded by rwm
static gort_waitgroup_t rw_wg;

static void rw_body(uintptr_t id) {
  bool goroutine = id < RW_G;
  for (int i = 0; i < RW_ITERS; i++) {
    if ((i + (int)id) % 3 == 0) {
      gort_rwmutex_lock(&rwm);
      EXPECT(atomic_fetch_add(&rw_writers, 1) == 0 && atomic_load(&rw_readers) == 0, "writer not alone");
      int64_t v = rw_value;
      if (i % 50 == 0) busy_ns(1100 * 1000);
      else if (goroutine && i % 7 == 0) gort_yield();
      rw_value = v + 1;
      atomic_fetch_sub(&rw_writers, 1);
      gort_rwmutex_unlock(&rwm);
    } else {
      gort_rwmutex_rlock(&rwm);
      atomic_fetch_add(&rw_readers, 1);
      EXPECT(atomic_load(&rw_writers) == 0, "reader beside a writer");
      if (goroutine && i % 11 == 0) gort_yield();
      atomic_fetch_sub(&rw_readers, 1);
      gort_rwmutex_runlock(&rwm);
    }
  }
  gort_waitgroup_done(&rw_wg);
}

static void rw_g(void *arg) { rw_body((uintptr_t)arg); }
static void *rw_t(void *arg) {
  rw_body((uintptr_t)arg);
  return NULL;
}

// A bounded queue with a mutex and two conds, goroutines and threads on
// both sides.
enum { Q_CAP = 4, Q_PROD = 3, Q_CONS = 3, Q_ITEMS = 3000 };
static gort_mutex_t qm;
static gort_cond_t q_notfull, q_notempty;
static int q_len, q_produced, q_consumed;  // guarded by qm
static int64_t q_sum;                        // guarded by qm
static gort_waitgroup_t q_wg;

static void q_producer(uintptr_t id) {
  for (;;) {
    gort_mutex_lock(&qm);
    while (q_len == Q_CAP && q_produced < Q_ITEMS) gort_cond_wait(&q_notfull, &qm);
    if (q_produced == Q_ITEMS) {
      gort_mutex_unlock(&qm);
      break;
    }
    q_len++;
    q_sum += ++q_produced;
    gort_cond_signal(&q_notempty);
    gort_mutex_unlock(&qm);
    if (id % 2 == 0) sched_yield();
  }
  gort_mutex_lock(&qm);
  gort_cond_broadcast(&q_notempty);
  gort_mutex_unlock(&qm);
  gort_waitgroup_done(&q_wg);
}

static void q_consumer(uintptr_t id) {
  (void)id;
  for (;;) {
    gort_mutex_lock(&qm);
    while (q_len == 0 && q_consumed < Q_ITEMS) gort_cond_wait(&q_notempty, &qm);
    if (q_len == 0) {
      gort_mutex_unlock(&qm);
      break;
    }
    q_len--;
    q_consumed++;
    gort_cond_signal(&q_notfull);
    gort_mutex_unlock(&qm);
  }
  gort_mutex_lock(&qm);
  gort_cond_broadcast(&q_notempty);
  gort_cond_broadcast(&q_notfull);
  gort_mutex_unlock(&qm);
  gort_waitgroup_done(&q_wg);
}

static void q_prod_g(void *arg) { q_producer((uintptr_t)arg); }
static void q_cons_g(void *arg) { q_consumer((uintptr_t)arg); }
static void *q_prod_t(void *arg) {
  q_producer((uintptr_t)arg);
  return NULL;
}
static void *q_cons_t(void *arg) {
  q_consumer((uintptr_t)arg);
  return NULL;
}

static void rw_cond_run(void) {
  gort_maxprocs(2);
  gort_waitgroup_add(&rw_wg, RW_G + RW_T);
  for (uintptr_t i = 0; i < RW_G; i++) EXPECT(gort_go(rw_g, (void *)i) == 0);
  pthread_t th[RW_T];
  for (uintptr_t i = 0; i < RW_T; i++) EXPECT(pthread_create(&th[i], NULL, rw_t, (void *)(RW_G + i)) == 0);
  gort_waitgroup_wait(&rw_wg);
  for (int i = 0; i < RW_T; i++) pthread_join(th[i], NULL);
  int writes = 0;
  for (int id = 0; id < RW_G + RW_T; id++)
    for (int i = 0; i < RW_ITERS; i++) writes += (i + id) % 3 == 0;
  EXPECT_EQ_U64(rw_value, (uint64_t)writes);
  expect_idle(&rwm.w_, "rwmutex's writer mutex");

  gort_waitgroup_add(&q_wg, Q_PROD + Q_CONS);
  pthread_t qt[2];
  EXPECT(pthread_create(&qt[0], NULL, q_prod_t, (void *)0) == 0);
  EXPECT(pthread_create(&qt[1], NULL, q_cons_t, (void *)0) == 0);
  for (uintptr_t i = 1; i < Q_PROD; i++) EXPECT(gort_go(q_prod_g, (void *)i) == 0);
  for (uintptr_t i = 1; i < Q_CONS; i++) EXPECT(gort_go(q_cons_g, (void *)i) == 0);
  gort_waitgroup_wait(&q_wg);
  pthread_join(qt[0], NULL);
  pthread_join(qt[1], NULL);
  EXPECT(q_consumed == Q_ITEMS && q_len == 0, "consumed %d, %d left", q_consumed, q_len);
  EXPECT_EQ_U64(q_sum, (uint64_t)Q_ITEMS * (Q_ITEMS + 1) / 2);
  expect_idle(&qm, "the queue's mutex");
}

TEST(rwmutex_and_cond_on_the_mutex_work_with_goroutines_and_threads) { rw_cond_run(); }
INNER_TEST(rw_cond_inner) { rw_cond_run(); }
TEST(rwmutex_and_cond_on_the_mutex_work_under_lost_wakes) {
  EXPECT(harness_run_inner("rw_cond_inner", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- rescue timers and changing Ps -----------------------------------------------------------
//
// Goroutines block with rescue timers on their Ps' heaps while the plain
// thread shrinks and grows the set of Ps; every timer must still fire (or
// be deleted) and every waiter be woken.

enum { PROCS_G = 10, PROCS_ITERS = 200 };
static gort_mutex_t procs_mu;
static _Atomic int procs_inside;
static int64_t procs_count;  // guarded by procs_mu
static gort_waitgroup_t procs_wg;
static _Atomic int procs_left;

static void procs_body(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  for (int i = 0; i < PROCS_ITERS; i++) {
    gort_mutex_lock(&procs_mu);
    EXPECT(atomic_fetch_add(&procs_inside, 1) == 0, "two parties inside");
    int64_t v = procs_count;
    if ((i + (int)id) % 25 == 0) busy_ns(1100 * 1000);
    else if (i % 4 == 0) gort_yield();
    procs_count = v + 1;
    atomic_fetch_sub(&procs_inside, 1);
    gort_mutex_unlock(&procs_mu);
  }
  atomic_fetch_sub(&procs_left, 1);
  gort_waitgroup_done(&procs_wg);
}

static void procs_run(void) {
  gort_maxprocs(4);
  atomic_store(&procs_left, PROCS_G);
  gort_waitgroup_add(&procs_wg, PROCS_G);
  for (uintptr_t i = 0; i < PROCS_G; i++) EXPECT(gort_go(procs_body, (void *)i) == 0);
  int64_t end = now_ns() + 8LL * 1000 * 1000 * 1000;
  for (int k = 0; atomic_load(&procs_left) > 0 && now_ns() < end; k++) {
    gort_maxprocs(1 + k % 4);
    usleep(700);
  }
  gort_maxprocs(2);
  gort_waitgroup_wait(&procs_wg);
  EXPECT_EQ_U64(procs_count, (uint64_t)PROCS_G * PROCS_ITERS);
  expect_idle(&procs_mu, "changing Ps");
}

TEST(rescue_timers_survive_ps_coming_and_going) { procs_run(); }
INNER_TEST(procs_inner) { procs_run(); }
TEST(rescue_timers_survive_ps_coming_and_going_under_lost_wakes) {
  EXPECT(harness_run_inner("procs_inner", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- fork while contended ---------------------------------------------------------------------
//
// The parent's goroutines and a thread contend for one mutex (rescue
// timers armed, waiters queued) while the plain thread forks. The child
// cannot use that mutex (its waiters are gone with their threads, as with
// pthread mutexes), but its own mutexes must work: goroutines and a thread
// contend for a fresh one, with the same lost-wake setting.

static gort_mutex_t fk_parent_mu;
static _Atomic bool fk_stop;
static gort_waitgroup_t fk_wg;

static void fk_parent_body(bool goroutine) {
  for (int i = 0; !atomic_load(&fk_stop); i++) {
    gort_mutex_lock(&fk_parent_mu);
    if (i % 10 == 0) busy_ns(300 * 1000);
    gort_mutex_unlock(&fk_parent_mu);
    if (i % 3 == 0) pause_any(goroutine);
  }
}

static void fk_parent_g(void *arg) {
  (void)arg;
  fk_parent_body(true);
  gort_waitgroup_done(&fk_wg);
}
static void *fk_parent_t(void *arg) {
  (void)arg;
  fk_parent_body(false);
  return NULL;
}

enum { FKC_G = 4, FKC_ITERS = 300 };
static gort_mutex_t fk_child_mu;
static int64_t fk_child_count;  // guarded by fk_child_mu
static _Atomic int fk_child_inside;
static gort_waitgroup_t fk_child_wg;

static void fk_child_body(bool goroutine) {
  for (int i = 0; i < FKC_ITERS; i++) {
    gort_mutex_lock(&fk_child_mu);
    if (atomic_fetch_add(&fk_child_inside, 1) != 0) _exit(5);
    int64_t v = fk_child_count;
    if (i % 40 == 0) busy_ns(1100 * 1000);
    else if (goroutine && i % 5 == 0) gort_yield();
    fk_child_count = v + 1;
    atomic_fetch_sub(&fk_child_inside, 1);
    gort_mutex_unlock(&fk_child_mu);
  }
}

static void fk_child_g(void *arg) {
  (void)arg;
  fk_child_body(true);
  gort_waitgroup_done(&fk_child_wg);
}
static void *fk_child_t(void *arg) {
  (void)arg;
  fk_child_body(false);
  return NULL;
}

static int fk_child_main(void) {
  gort_waitgroup_add(&fk_child_wg, FKC_G);
  for (int i = 0; i < FKC_G; i++)
    if (gort_go(fk_child_g, NULL) != 0) return 3;
  pthread_t t;
  if (pthread_create(&t, NULL, fk_child_t, NULL) != 0) return 4;
  gort_waitgroup_wait(&fk_child_wg);
  pthread_join(t, NULL);
  if (fk_child_count != (FKC_G + 1) * FKC_ITERS) return 6;
  if (__atomic_load_n(&fk_child_mu.state_, __ATOMIC_ACQUIRE) != 0) return 7;
  return 0;
}

static void fork_run(void) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer dies when a multi-threaded fork's child starts threads");
  gort_maxprocs(2);
  gort_waitgroup_add(&fk_wg, 4);
  for (int i = 0; i < 4; i++) EXPECT(gort_go(fk_parent_g, NULL) == 0);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, fk_parent_t, NULL) == 0);
  for (int k = 0; k < 6; k++) {
    usleep(20 * 1000);
    fflush(NULL);
    memset(&fk_child_mu, 0, sizeof fk_child_mu);
    fk_child_count = 0;
    pid_t pid = fork();
    if (pid == 0) _exit(fk_child_main());
    EXPECT(pid > 0);
    int st = 0;
    int64_t end = now_ns() + 8LL * 1000 * 1000 * 1000;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now_ns() < end) usleep(1000);
    if (r == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      EXPECT(false, "fork %d: the child hung", k);
    }
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork %d: child status %#x", k, st);
  }
  atomic_store(&fk_stop, true);
  gort_waitgroup_wait(&fk_wg);
  pthread_join(t, NULL);
  expect_idle(&fk_parent_mu, "the parent's mutex");
}

TEST(fork_while_a_mutex_is_contended_leaves_the_childs_mutexes_working) { fork_run(); }
INNER_TEST(fork_inner) { fork_run(); }
TEST(fork_while_contended_under_lost_wakes) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer dies when a multi-threaded fork's child starts threads");
  EXPECT(harness_run_inner("fork_inner", "GORT_DEBUG=mutexlostwake=1"));
}

// ---- the deadlock detector ----------------------------------------------------------------------

#define SKIP_UNDER_TSAN() \
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer's own thread counts as a running program thread")

static gort_mutex_t dl_a, dl_b;
static gort_waitgroup_t dl_wg, dl_ready;

void dl_ab(void *arg);  // not static: the dump names them
void dl_ab(void *arg) {
  (void)arg;
  gort_mutex_lock(&dl_a);
  gort_waitgroup_done(&dl_ready);
  gort_waitgroup_wait(&dl_ready);
  gort_mutex_lock(&dl_b);
}

void dl_ba(void *arg);
void dl_ba(void *arg) {
  (void)arg;
  gort_mutex_lock(&dl_b);
  gort_waitgroup_done(&dl_ready);
  gort_waitgroup_wait(&dl_ready);
  gort_mutex_lock(&dl_a);
}

// Two goroutines lock two mutexes in opposite orders; the plain thread
// waits for them. Each blocked goroutine's rescue fires once, finds its
// mutex held, and the goroutine sleeps for good: a deadlock.
static void two_goroutines_lock_in_opposite_orders(void *arg) {
  (void)arg;
  gort_maxprocs(2);
  gort_waitgroup_add(&dl_ready, 2);
  gort_waitgroup_add(&dl_wg, 1);
  gort_go(dl_ab, NULL);
  gort_go(dl_ba, NULL);
  gort_waitgroup_wait(&dl_wg);
}

TEST(goroutines_deadlocked_on_two_mutexes_are_reported) {
  SKIP_UNDER_TSAN();
  EXPECT(harness_expect_fatal(two_goroutines_lock_in_opposite_orders, NULL, DEADLOCK));
  EXPECT(harness_expect_fatal(two_goroutines_lock_in_opposite_orders, NULL, "[sync.Mutex.Lock"),
         "the dump shows the mutex waits");
}

// A plain thread locks a mutex it holds (its timed wait for the rescue,
// then a wait for ever), while a goroutine waits on the same mutex.
static void dl_lock(void *arg) { gort_mutex_lock(arg); }
static void a_thread_relocks_its_mutex(void *arg) {
  (void)arg;
  static gort_mutex_t m;
  gort_mutex_lock(&m);
  gort_go(dl_lock, &m);
  usleep(5 * 1000);
  gort_mutex_lock(&m);
}

TEST(a_thread_and_a_goroutine_blocked_on_a_mutex_nobody_unlocks_are_reported) {
  SKIP_UNDER_TSAN();
  EXPECT(harness_expect_fatal(a_thread_relocks_its_mutex, NULL, DEADLOCK));
}

// No false report: the mutex's holder sleeps on a timer (longer than
// several checks) while a thread and goroutines wait on the mutex, their
// rescues long spent.
static gort_mutex_t nf_mu;
static gort_waitgroup_t nf_wg;
static void nf_holder(void *arg) {
  (void)arg;
  gort_mutex_lock(&nf_mu);
  gort_waitgroup_done(&nf_wg);
  gort_sleep(400 * 1000 * 1000);
  gort_mutex_unlock(&nf_mu);
}
static void nf_waiter(void *arg) {
  gort_mutex_lock(&nf_mu);
  gort_mutex_unlock(&nf_mu);
  gort_waitgroup_done(arg);
}

TEST(no_report_while_a_mutex_holder_sleeps_on_a_timer) {
  gort_maxprocs(2);
  gort_waitgroup_add(&nf_wg, 1);
  gort_go(nf_holder, NULL);
  gort_waitgroup_wait(&nf_wg);
  static gort_waitgroup_t done;
  gort_waitgroup_add(&done, 3);
  for (int i = 0; i < 3; i++) gort_go(nf_waiter, &done);
  gort_mutex_lock(&nf_mu);  // the plain thread waits too
  gort_mutex_unlock(&nf_mu);
  gort_waitgroup_wait(&done);
  expect_idle(&nf_mu, "after the sleep");
}
