// Select: ready cases chosen uniformly, default, timeouts, nil channels,
// close seen by a waiting select, sends and receives mixed; gort_after and
// tickers.

#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "chantest.h"

TEST(each_ready_case_is_chosen_about_one_time_in_n) {
  enum { N = 4, ROUNDS = 20000 };
  gort_chan_t *c[N];
  int count[N] = {0};
  for (int i = 0; i < N; i++) c[i] = gort_chan_make(sizeof(int), 1);
  for (int r = 0; r < ROUNDS; r++) {
    gort_select_case_t cs[N];
    int v[N];
    for (int i = 0; i < N; i++) {
      if (gort_chan_len(c[i]) == 0) gort_chan_send(c[i], &i);
      cs[i] = (gort_select_case_t){.chan = c[i], .dir = GORT_SELECT_RECV, .elem = &v[i]};
    }
    int k = gort_select(cs, N, -1);
    EXPECT(k >= 0 && k < N, "k %d", k);
    EXPECT(cs[k].ok && v[k] == k, "ok %d v %d", cs[k].ok, v[k]);
    count[k]++;
  }
  // Expected 5000 each; binomial sd about 61: 4500..5500 is ~8 sd.
  for (int i = 0; i < N; i++)
    EXPECT(count[i] > ROUNDS / N * 9 / 10 && count[i] < ROUNDS / N * 11 / 10, "case %d chosen %d", i,
           count[i]);
}

TEST(a_zero_timeout_is_default_and_nil_channels_are_never_ready) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 1);
  int v = 0;
  gort_select_case_t cs[2] = {{.chan = NULL, .dir = GORT_SELECT_SEND, .elem = &v},
                              {.chan = c, .dir = GORT_SELECT_RECV, .elem = &v}};
  EXPECT(gort_select(cs, 2, 0) == -1);
  cs[1].dir = GORT_SELECT_SEND;
  v = 9;
  EXPECT(gort_select(cs, 2, 0) == 1, "room in the buffer");
  EXPECT(gort_select(cs, 2, 0) == -1, "full now");
  EXPECT_EQ_U64(gort_chan_len(c), 1);
}

static void select_timeout_body(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  int v;
  gort_select_case_t cs[1] = {{.chan = c, .dir = GORT_SELECT_RECV, .elem = &v}};
  int64_t t0 = now_ns();
  EXPECT(gort_select(cs, 1, 20 * 1000000) == -1);
  int64_t took = now_ns() - t0;
  EXPECT(took >= 20 * 1000000 && took < 2000 * 1000000LL, "took %lld ns", (long long)took);
  EXPECT(gort_chan_try_send(c, &v) == false, "the timed-out waiter left the queue");
}

TEST(a_select_times_out_on_a_goroutine) { run_in_goroutine(select_timeout_body, NULL); }

TEST(a_select_times_out_on_a_plain_thread) { select_timeout_body(NULL); }

typedef struct {
  gort_chan_t *c;
  int delay_ms;
  int value;
} late_t;

static void late_sender(void *arg) {
  late_t *l = arg;
  gort_sleep((int64_t)l->delay_ms * 1000000);
  gort_chan_send(l->c, &l->value);
}

static void select_wakes_body(void *arg) {
  (void)arg;
  gort_chan_t *a = gort_chan_make(sizeof(int), 0), *b = gort_chan_make(sizeof(int), 0);
  static late_t l;
  l = (late_t){.c = b, .delay_ms = 10, .value = 31};
  EXPECT(gort_go(late_sender, &l) == 0);
  int va = -1, vb = -1;
  gort_select_case_t cs[2] = {{.chan = a, .dir = GORT_SELECT_RECV, .elem = &va},
                              {.chan = b, .dir = GORT_SELECT_RECV, .elem = &vb}};
  EXPECT(gort_select(cs, 2, 5000LL * 1000000) == 1);
  EXPECT(cs[1].ok && vb == 31 && va == -1, "ok %d vb %d va %d", cs[1].ok, vb, va);
  int x = 1;
  EXPECT(!gort_chan_try_send(a, &x), "the other case's waiter was taken off a");
}

TEST(a_blocked_select_is_woken_by_a_send_on_a_goroutine) { run_in_goroutine(select_wakes_body, NULL); }
TEST(a_blocked_select_is_woken_by_a_send_on_a_plain_thread) { select_wakes_body(NULL); }

static void closer(void *arg) {
  gort_sleep(10 * 1000000);
  gort_chan_close(arg);
}

TEST(a_blocked_select_sees_a_close_as_a_receive_with_ok_false) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  EXPECT(gort_go(closer, c) == 0);
  int v = 5;
  gort_select_case_t cs[1] = {{.chan = c, .dir = GORT_SELECT_RECV, .elem = &v}};
  EXPECT(gort_select(cs, 1, -1) == 0);
  EXPECT(!cs[0].ok && v == 0, "ok %d v %d", cs[0].ok, v);
}

static void recv_print(void *arg) {
  int v;
  gort_chan_recv(arg, &v);
}

TEST(a_select_send_completes_with_a_waiting_receiver) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  EXPECT(gort_go(recv_print, c) == 0);
  int v = 3;
  gort_select_case_t cs[1] = {{.chan = c, .dir = GORT_SELECT_SEND, .elem = &v}};
  EXPECT(gort_select(cs, 1, -1) == 0);
  for (int i = 0; i < 5000 && gort_num_goroutine() > 0; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), 0);
}

// Two goroutines select over the same two channels in opposite case order,
// sending to each other: address-ordered locking means no deadlock.
typedef struct {
  gort_chan_t *a, *b;
  int rounds;
  gort_waitgroup_t *wg;
} pair_t;

static void pair_side(void *arg) {
  pair_t *p = arg;
  for (int i = 0; i < p->rounds; i++) {
    int out = i, in;
    gort_select_case_t cs[2] = {{.chan = p->a, .dir = GORT_SELECT_SEND, .elem = &out},
                                {.chan = p->b, .dir = GORT_SELECT_RECV, .elem = &in}};
    EXPECT(gort_select(cs, 2, -1) >= 0);
  }
  gort_waitgroup_done(p->wg);
}

TEST(selects_over_the_same_channels_in_opposite_orders_do_not_deadlock) {
  gort_maxprocs(2);
  static gort_waitgroup_t wg;
  gort_waitgroup_add(&wg, 2);
  gort_chan_t *a = gort_chan_make(sizeof(int), 0), *b = gort_chan_make(sizeof(int), 0);
  static pair_t x, y;
  x = (pair_t){.a = a, .b = b, .rounds = 20000, .wg = &wg};
  y = (pair_t){.a = b, .b = a, .rounds = 20000, .wg = &wg};
  EXPECT(gort_go(pair_side, &x) == 0);
  EXPECT(gort_go(pair_side, &y) == 0);
  gort_waitgroup_wait(&wg);
}

static void select_send_closed(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 1);
  gort_chan_close(c);
  int v = 0;
  gort_select_case_t cs[1] = {{.chan = c, .dir = GORT_SELECT_SEND, .elem = &v}};
  gort_select(cs, 1, 0);
}

TEST(a_select_send_on_a_closed_channel_is_fatal) {
  EXPECT(harness_expect_fatal(select_send_closed, NULL, "gort: fatal error: send on closed channel"));
}

TEST(gort_after_delivers_the_time_once_after_the_delay) {
  int64_t t0 = now_ns();
  gort_chan_t *c = gort_after(15 * 1000000);
  int64_t when = 0;
  EXPECT(gort_chan_recv(c, &when));
  int64_t took = now_ns() - t0;
  EXPECT(took >= 15 * 1000000 && when >= t0 + 15 * 1000000, "took %lld", (long long)took);
  EXPECT(!gort_chan_try_recv(c, &when));
}

TEST(gort_after_works_as_a_select_case) {
  gort_chan_t *never = gort_chan_make(sizeof(int), 0), *after = gort_after(10 * 1000000);
  int v;
  int64_t t;
  gort_select_case_t cs[2] = {{.chan = never, .dir = GORT_SELECT_RECV, .elem = &v},
                              {.chan = after, .dir = GORT_SELECT_RECV, .elem = &t}};
  EXPECT(gort_select(cs, 2, -1) == 1);
}

// The usual select with a timeout: another case wins, and the program is
// done with the After's channel before it fires. Freed then, it must not be
// written when its time comes (it was: the goroutine sent into the freed
// memory, here a new channel of the same size); the goroutine frees it.
TEST(an_after_channel_freed_before_it_fires_is_never_written_after) {
  int64_t before = gort_num_goroutine();
  gort_chan_t *after = gort_after(20 * 1000000);
  ASSERT_NOT_NULL(after);
  gort_chan_free(after);
  gort_chan_t *fresh[16];  // the freed block's size class: one of these is likely in it
  for (int i = 0; i < 16; i++) ASSERT_NOT_NULL(fresh[i] = gort_chan_make(sizeof(int64_t), 1));
  usleep(60 * 1000);
  for (int i = 0; i < 16; i++) {
    EXPECT_EQ_U64(gort_chan_len(fresh[i]), 0, "channel %d, made after the free", i);
    gort_chan_free(fresh[i]);
  }
  for (int i = 0; i < 5000 && gort_num_goroutine() > before; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), before, "the After's goroutine ended");
}

static void free_after_twice(void *arg) {
  (void)arg;
  gort_chan_t *after = gort_after(1000 * 1000000LL);
  gort_chan_free(after);
  gort_chan_free(after);
}

TEST(freeing_an_after_channel_twice_is_fatal) {
  EXPECT(harness_expect_fatal(free_after_twice, NULL, "gort: fatal error: double free of a channel"));
}

static void free_ticker_chan(void *arg) {
  (void)arg;
  gort_ticker_t *t = gort_ticker_make(1000000);
  gort_chan_free(gort_ticker_chan(t));
}

TEST(freeing_a_tickers_channel_is_fatal) {
  EXPECT(harness_expect_fatal(free_ticker_chan, NULL, "gort: fatal error: free of a ticker's channel"));
}

// gort_ticker_stop frees the ticker's channel: a thread still waiting on
// it is the same misuse as freeing any channel with a waiter, and fatal
// the same way (it was silent for a while: the ticker's free skipped the
// check, and the waiter stayed queued in freed memory).
static void *wait_on_ticker(void *arg) {
  int64_t when;
  gort_chan_recv(gort_ticker_chan(arg), &when);
  return NULL;
}

static void stop_ticker_with_waiter(void *arg) {
  (void)arg;
  gort_ticker_t *t = gort_ticker_make(10 * 1000 * 1000000LL);
  pthread_t th;
  pthread_create(&th, NULL, wait_on_ticker, t);
  usleep(50 * 1000);
  gort_ticker_stop(t);
  usleep(1000 * 1000);  // the ticker's goroutine frees it meanwhile
}

TEST(stopping_a_ticker_that_a_thread_waits_on_is_fatal) {
  EXPECT(harness_expect_fatal(stop_ticker_with_waiter, NULL,
                              "gort: fatal error: free of a channel that a goroutine or thread waits on"));
}

// An After's channel freed while its goroutine sends (or just before): the
// goroutine frees it, with no wait in gort_chan_free (one spun there, which
// on one P could wait for ever for a sender preempted in its send). Many
// frees at random times around the firing, none may write a later channel
// or leave a goroutine behind.
TEST(after_channels_freed_around_their_firing_are_never_written_after) {
  int64_t before = gort_num_goroutine();
  uint64_t rng = harness_seed() | 1;
  for (int round = 0; round < 200; round++) {
    gort_chan_t *after = gort_after(200 * 1000);
    ASSERT_NOT_NULL(after);
    usleep((useconds_t)(test_rand(&rng) % 400));
    gort_chan_free(after);
    gort_chan_t *fresh = gort_chan_make(sizeof(int64_t), 1);
    ASSERT_NOT_NULL(fresh);
    usleep(400);
    EXPECT_EQ_U64(gort_chan_len(fresh), 0, "round %d: a channel made after the free received", round);
    gort_chan_free(fresh);
  }
  for (int i = 0; i < 5000 && gort_num_goroutine() > before; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), before, "the Afters' goroutines ended");
}

TEST(a_ticker_ticks_periodically_until_stopped) {
  // The clock starts before the ticker does: read after, it could start
  // late (the thread descheduled) and see less than five periods.
  int64_t t0 = now_ns(), prev = 0;
  gort_ticker_t *t = gort_ticker_make(5 * 1000000);
  ASSERT_NOT_NULL(t);
  for (int i = 0; i < 5; i++) {
    int64_t when;
    EXPECT(gort_chan_recv(gort_ticker_chan(t), &when));
    EXPECT(when > prev);
    prev = when;
  }
  EXPECT(now_ns() - t0 >= 25 * 1000000);
  gort_ticker_stop(t);
  for (int i = 0; i < 5000 && gort_num_goroutine() > 0; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), 0, "the ticker's goroutine ended");
  errno = 0;
  EXPECT(gort_ticker_make(0) == NULL && errno == EINVAL);
}

// Stopping ends the ticker's goroutine at once, not a period later (a
// stopped hour-long ticker held its goroutine for the hour, and with it
// the deadlock detector's report: a helper's hunt); a period shorter than
// a tick's cost does not hold the P (with one P, a worker's yields beside
// a 1 ns ticker took milliseconds each).
static gort_chan_t *tiny_done;

static void receives_tiny_ticks(void *arg) {
  gort_ticker_t *t = arg;
  for (int i = 0; i < 200; i++) {
    int64_t when;
    gort_chan_recv(gort_ticker_chan(t), &when);
  }
  int v = 1;
  gort_chan_send(tiny_done, &v);
}

TEST(a_stopped_ticker_ends_at_once_and_a_tiny_period_does_not_hold_the_p) {
  enum { N = 200 };
  static gort_ticker_t *ts[N];
  for (int i = 0; i < N; i++) ASSERT_NOT_NULL(ts[i] = gort_ticker_make(3600LL * 1000000000));
  usleep(20 * 1000);  // their goroutines start their hour
  for (int i = 0; i < N; i++) gort_ticker_stop(ts[i]);
  for (int i = 0; i < 2000 && gort_num_goroutine() > 0; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), 0, "hour-long tickers' goroutines after their stop");
  // A goroutine receives 200 ticks of a 1 ns ticker on the one P.
  int64_t was = gort_maxprocs(1);
  tiny_done = gort_chan_make(sizeof(int), 0);
  gort_ticker_t *t = gort_ticker_make(1);
  ASSERT_NOT_NULL(t);
  int64_t t0 = now_ns();
  gort_go(receives_tiny_ticks, t);
  int v;
  gort_chan_recv(tiny_done, &v);
  int64_t took = now_ns() - t0;
  gort_ticker_stop(t);
  gort_maxprocs(was);
  EXPECT(took < 200 * 1000000, "200 ticks of a 1 ns ticker took %lld ms", (long long)(took / 1000000));
}
