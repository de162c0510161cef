// Channels and the collector: an unreachable channel (and its buffer) is
// reclaimed; a buffered pointer keeps its target alive until received;
// gort_chan_free frees at once. Weak pointers tell whether an object went.

#define _GNU_SOURCE
#include "chantest.h"
#include "../gc/gctest.h"

enum { NCHAN = 16 };
static gort_weak_t *weak[NCHAN];

static GCTEST_NOINLINE void make_and_drop_channels(void) {
  for (int i = 0; i < NCHAN; i++) {
    gort_chan_t *c = gort_chan_make(sizeof(void *), 64);
    int v = i;
    gort_chan_send(c, &v);
    weak[i] = gort_gc_weak_make(c);
  }
}

TEST(an_unreachable_channel_is_collected) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (see test/run.sh)");
  gort_gc_add_roots(weak, weak + NCHAN);
  make_and_drop_channels();
  gctest_clear_vector_registers();
  gctest_collect();
  gctest_collect();
  int cleared = gctest_count_cleared(weak, NCHAN);
  EXPECT(cleared >= NCHAN - 2, "only %d of %d channels collected", cleared, NCHAN);
}

static gort_chan_t *holder;
static gort_weak_t *target_weak;

static GCTEST_NOINLINE void send_a_fresh_object(void) {
  void *obj = gort_gc_alloc(64);
  gctest_fill(obj, 64, 7);
  target_weak = gort_gc_weak_make(obj);
  gort_chan_send(holder, &obj);
}

static GCTEST_NOINLINE bool receive_and_check(void) {
  void *obj = NULL;
  if (!gort_chan_recv(holder, &obj)) return false;
  return obj != NULL && gctest_check(obj, 64, 7);
}

TEST(a_buffered_pointer_keeps_its_target_alive) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (see test/run.sh)");
  holder = gort_chan_make(sizeof(void *), 4);
  send_a_fresh_object();
  for (int i = 0; i < 3; i++) {
    gctest_clear_vector_registers();
    gctest_collect();
  }
  EXPECT(gort_gc_weak_get(target_weak) != NULL, "collected while buffered");
  EXPECT(receive_and_check(), "the object's contents survived");
}

TEST(gort_chan_free_frees_a_collected_channel_at_once) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 1000);
  int v = 1;
  gort_chan_send(c, &v);
  gort_chan_free(c);
  // Freed memory is reused by the next allocation of its size class.
  gort_chan_t *d = gort_chan_make(sizeof(int), 1000);
  EXPECT(d != NULL);
  EXPECT_EQ_U64(gort_chan_len(d), 0);
  gort_chan_free(d);
}

// A ticker's channel is reachable only through the ticker, which the
// program holds while it runs (gort_ticker_chan at each receive): the
// ticker is scanned, so the collector keeps the channel (it once lived in
// unscanned malloc'd memory, and a cycle freed the channel under the
// ticker's goroutine).
static gort_weak_t *tick_weak[1];

static GCTEST_NOINLINE gort_ticker_t *make_ticker(void) {
  gort_ticker_t *t = gort_ticker_make(100 * 1000000);  // no tick before the cycles end
  if (t != NULL) tick_weak[0] = gort_gc_weak_make(gort_ticker_chan(t));
  return t;
}

TEST(a_tickers_channel_lives_while_the_ticker_runs) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (see test/run.sh)");
  gort_gc_add_roots(tick_weak, tick_weak + 1);
  gort_ticker_t *t = make_ticker();
  ASSERT_NOT_NULL(t);
  EXPECT(gort_gc_base(t) == t, "the ticker is not scanned by the collector");
  gctest_clobber_stack();
  gctest_clear_vector_registers();
  gctest_collect();
  gctest_collect();
  if (gort_gc_weak_get(tick_weak[0]) == NULL) {  // a receive would use freed memory
    EXPECT(false, "the ticker's channel was collected while the ticker ran");
    return;
  }
  int64_t when = 0;
  EXPECT(gort_chan_recv(gort_ticker_chan(t), &when));
  EXPECT(when > 0);
  gort_ticker_stop(t);
}
