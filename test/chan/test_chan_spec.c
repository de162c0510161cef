// Go's channel rules, one by one (the specification's "Channel types",
// "Send statements", "Receive operator", "Close", "Length and capacity"),
// on plain threads and on goroutines.

#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "chantest.h"

TEST(a_buffered_channel_keeps_fifo_order_and_len_and_cap) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 3);
  ASSERT_NOT_NULL(c);
  EXPECT_EQ_U64(gort_chan_cap(c), 3);
  EXPECT_EQ_U64(gort_chan_len(c), 0);
  for (int i = 1; i <= 3; i++) gort_chan_send(c, &i);
  EXPECT_EQ_U64(gort_chan_len(c), 3);
  int four = 4;
  EXPECT(!gort_chan_try_send(c, &four), "a full channel refuses a non-blocking send");
  for (int i = 1; i <= 3; i++) {
    int v = 0;
    EXPECT(gort_chan_recv(c, &v));
    EXPECT_EQ_U64(v, i);
  }
  int v = 7;
  EXPECT(!gort_chan_try_recv(c, &v), "an empty channel has nothing ready");
  EXPECT_EQ_U64(gort_chan_len(c), 0);
  gort_chan_free(c);
}

TEST(a_nil_channel_has_zero_len_and_cap_and_is_never_ready) {
  int v = 1;
  EXPECT_EQ_U64(gort_chan_len(NULL), 0);
  EXPECT_EQ_U64(gort_chan_cap(NULL), 0);
  EXPECT(!gort_chan_try_send(NULL, &v));
  EXPECT(!gort_chan_try_recv(NULL, &v));
  gort_chan_free(NULL);
}

static void nil_recv_forever(void *arg) {
  (void)arg;
  int v;
  gort_chan_recv(NULL, &v);
}

TEST(a_receive_from_a_nil_channel_blocks_forever) {
  _Atomic int64_t dummy = 0;
  EXPECT(gort_go(nil_recv_forever, NULL) == 0);
  EXPECT(!wait_for_i64(&dummy, 1, 50));
  EXPECT_EQ_U64(gort_num_goroutine(), 1, "the receiver is still blocked");
}

TEST(an_unbuffered_send_waits_for_its_receiver) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  int v = 5;
  EXPECT(!gort_chan_try_send(c, &v), "nobody receives");
  EXPECT_EQ_U64(gort_chan_cap(c), 0);
  gort_chan_free(c);
}

typedef struct {
  gort_chan_t *c;
  int n;
  _Atomic int64_t sent;
} prod_t;

static void producer(void *arg) {
  prod_t *p = arg;
  for (int i = 0; i < p->n; i++) {
    gort_chan_send(p->c, &i);
    atomic_fetch_add(&p->sent, 1);
  }
  gort_chan_close(p->c);
}

TEST(a_goroutine_hands_values_to_a_plain_thread_in_order_then_close_ends_it) {
  static prod_t p;
  p.c = gort_chan_make(sizeof(int), 0);
  p.n = 10000;
  EXPECT(gort_go(producer, &p) == 0);
  int v, want = 0;
  while (gort_chan_recv(p.c, &v)) {
    EXPECT_EQ_U64(v, want);
    want++;
  }
  EXPECT_EQ_U64(want, 10000);
  EXPECT_EQ_U64(v, 0, "the element is zeroed once closed");
  EXPECT(!gort_chan_recv(p.c, &v), "a closed channel stays ready");
}

TEST(a_receive_from_a_closed_buffered_channel_drains_first) {
  gort_chan_t *c = gort_chan_make(sizeof(int64_t), 4);
  for (int64_t i = 10; i < 13; i++) gort_chan_send(c, &i);
  gort_chan_close(c);
  EXPECT_EQ_U64(gort_chan_len(c), 3);
  int64_t v;
  for (int64_t i = 10; i < 13; i++) {
    EXPECT(gort_chan_recv(c, &v));
    EXPECT_EQ_U64(v, i);
  }
  v = 99;
  EXPECT(!gort_chan_recv(c, &v));
  EXPECT_EQ_U64(v, 0);
  v = 99;
  EXPECT(!gort_chan_try_recv(c, &v));
  EXPECT_EQ_U64(v, 0);
  gort_chan_free(c);
}

static void blocked_receiver(void *arg) {
  gort_chan_t *c = arg;
  int v = 42;
  bool ok = gort_chan_recv(c, &v);
  EXPECT(!ok && v == 0, "ok %d v %d", ok, v);
}

TEST(close_wakes_every_blocked_receiver_with_false) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  for (int i = 0; i < 8; i++) EXPECT(gort_go(blocked_receiver, c) == 0);
  usleep(20000);
  gort_chan_close(c);
  for (int i = 0; i < 5000 && gort_num_goroutine() > 0; i++) usleep(1000);
  EXPECT_EQ_U64(gort_num_goroutine(), 0);
}

static void *thread_receiver(void *arg) {
  int v = 0;
  EXPECT(gort_chan_recv(arg, &v));
  return (void *)(intptr_t)v;
}

static void send_to(void *arg) {
  int v = 77;
  gort_chan_send(arg, &v);
}

TEST(a_plain_thread_blocks_until_a_goroutine_sends) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  pthread_t t;
  pthread_create(&t, NULL, thread_receiver, c);
  usleep(10000);
  EXPECT(gort_go(send_to, c) == 0);
  void *r;
  pthread_join(t, &r);
  EXPECT_EQ_U64((intptr_t)r, 77);
}

typedef struct {
  gort_chan_t *c;
  int got;
} recv_t;

static void recv_one(void *arg) {
  recv_t *r = arg;
  gort_chan_recv(r->c, &r->got);
}

TEST(an_element_is_copied_not_shared) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 1);
  int v = 1;
  gort_chan_send(c, &v);
  v = 2;
  static recv_t r;
  r.c = c;
  run_in_goroutine(recv_one, &r);
  EXPECT_EQ_U64(r.got, 1);
}

TEST(zero_size_elements_signal) {
  gort_chan_t *c = gort_chan_make(0, 2);
  gort_chan_send(c, NULL);
  gort_chan_send(c, NULL);
  EXPECT_EQ_U64(gort_chan_len(c), 2);
  EXPECT(gort_chan_recv(c, NULL));
  EXPECT(gort_chan_try_recv(c, NULL));
  EXPECT(!gort_chan_try_recv(c, NULL));
}

TEST(an_overflowing_size_is_enomem) {
  errno = 0;
  EXPECT(gort_chan_make(SIZE_MAX / 2, 4) == NULL);
  EXPECT_EQ_U64(errno, ENOMEM);
}

// ---- misuse: Go's words ----

static void send_closed(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 1);
  gort_chan_close(c);
  int v = 1;
  gort_chan_send(c, &v);
}

static void close_closed(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 1);
  gort_chan_close(c);
  gort_chan_close(c);
}

static void close_nil(void *arg) {
  (void)arg;
  gort_chan_close(NULL);
}

static void sender_then_close(void *arg) {
  int v = 3;
  gort_chan_send(arg, &v);
}

static void close_with_blocked_sender(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  gort_go(sender_then_close, c);
  usleep(20000);
  gort_chan_close(c);
  // The sender's fatal error ends this process: wait for it, however
  // late a loaded machine runs it (harness_expect_fatal's alarm bounds
  // this; a return counts as no abort).
  for (int i = 0; i < 1000; i++) usleep(10000);
}

TEST(send_on_a_closed_channel_is_fatal) {
  EXPECT(harness_expect_fatal(send_closed, NULL, "gort: fatal error: send on closed channel"));
}

TEST(a_blocked_sender_dies_when_its_channel_is_closed) {
  EXPECT(harness_expect_fatal(close_with_blocked_sender, NULL,
                              "gort: fatal error: send on closed channel"));
}

TEST(close_of_a_closed_channel_is_fatal) {
  EXPECT(harness_expect_fatal(close_closed, NULL, "gort: fatal error: close of closed channel"));
}

TEST(close_of_a_nil_channel_is_fatal) {
  EXPECT(harness_expect_fatal(close_nil, NULL, "gort: fatal error: close of nil channel"));
}
