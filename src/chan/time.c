// gort_after and tickers (Go: time.After, time.Ticker). See chan.c.
//
// Go drives both from runtime timers whose function sends on the channel.
// Here a goroutine sleeps and sends: a timer heap entry cannot keep a
// collected channel alive (the heaps are not roots), while a sleeping
// goroutine's stack is one. The price is a goroutine per pending After (a
// few KiB of stack; it shows in gort_num_goroutine and in dumps, as
// "sleep", created by after_main or ticker_main).
//
// An After's channel is freed by the program whenever it is done with it,
// in C typically right after a select in which another case won: before it
// fires, that is, while its goroutine still holds it. The channel's timer
// state (chan.h, CHAN_TIMER_*) then passes the free to the goroutine, which
// frees it when it wakes instead of sending (or once it has sent, if the
// free came meanwhile); before, it sent into the freed memory (a new
// channel made meanwhile received the time). A sleeping
// goroutine cannot be woken early, so the memory comes back only at the
// After's time, as a Go program's time.After did before Go 1.23.
//
// The records that hold a collected channel for its goroutine (after_t,
// the ticker) are uncollectable objects, scanned and freed by hand: from
// malloc'd memory, which the collector does not scan, the channel would be
// reachable only while the program holds it, and a ticker's is held only
// through the ticker, so a cycle between two receives freed it under its
// goroutine. With the collector off the channel is malloc'd, and so is
// its record (no collector state is touched).

#include "chan.h"

#include <errno.h>

#include "gort/alloc.h"
#include "gort/gc.h"
#include "gort/sched.h"

// See the file comment: the record of a channel's goroutine.
static void *record_alloc(const gort_chan_t *c, size_t size) {
  return c->collected ? gort_gc_alloc_uncollectable(size) : gort_malloc(size);
}

typedef struct {
  gort_chan_t *c;
  int64_t when;
} after_t;

static void after_main(void *arg) {
  after_t a = *(after_t *)arg;
  gort_free(arg);
  gort_sleep(a.when - gort__nanotime());
  int64_t now = gort__nanotime();
  uint8_t t = CHAN_TIMER_PENDING;
  if (!atomic_compare_exchange_strong_explicit(&a.c->timer, &t, CHAN_TIMER_FIRING, memory_order_acq_rel,
                                               memory_order_acquire)) {
    gort__chan_free_now(a.c);  // freed by the program meanwhile (gort_chan_free)
    return;
  }
  gort_chan_try_send(a.c, &now);  // cap 1, sent once: never full
  t = CHAN_TIMER_FIRING;
  if (!atomic_compare_exchange_strong_explicit(&a.c->timer, &t, CHAN_TIMER_NONE, memory_order_acq_rel,
                                               memory_order_acquire))
    gort__chan_free_now(a.c);  // freed by the program while it sent
}

gort_chan_t *gort_after(int64_t ns) {
  gort_chan_t *c = gort_chan_make(sizeof(int64_t), 1);
  if (c == NULL) return NULL;
  after_t *a = record_alloc(c, sizeof *a);
  if (a == NULL) {
    gort_chan_free(c);  // no one has seen it yet
    errno = ENOMEM;
    return NULL;
  }
  a->c = c;
  a->when = gort__nanotime() + (ns > 0 ? ns : 0);
  atomic_store_explicit(&c->timer, CHAN_TIMER_PENDING, memory_order_relaxed);  // published by gort_go
  int e = gort_go(after_main, a);
  if (e != 0) {
    atomic_store_explicit(&c->timer, CHAN_TIMER_NONE, memory_order_relaxed);
    gort_free(a);
    gort_chan_free(c);
    errno = e;
    return NULL;
  }
  return c;
}

// Stopping closes stopc, which the ticker's goroutine waits on beside its
// period: it ends at once. (It slept the period out, checking a flag when
// it woke: a stopped hour-long ticker kept its goroutine for the hour, and
// a program blocked otherwise was never reported as deadlocked: a
// helper's hunt.) The stopper and the goroutine each drop a reference
// when done with stopc; the last one frees the ticker and its channels.
struct gort_ticker {
  gort_chan_t *c;
  gort_chan_t *stopc;
  int64_t period;
  _Atomic int refs;
};

static void ticker_release(gort_ticker_t *t) {
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
  gort_chan_free(t->stopc);
  gort__chan_free_now(t->c);
  gort_free(t);
}

// Waits until next or a stop; false once stopped.
static bool ticker_wait(gort_ticker_t *t, int64_t next) {
  gort_select_case_t stop = {.chan = t->stopc, .dir = GORT_SELECT_RECV, .elem = NULL};
  int64_t wait = next - gort__nanotime();
  if (wait <= 0) gort_yield();  // a period shorter than a tick's cost must not hold the P
  return gort_select(&stop, 1, wait > 0 ? wait : 0) != 0;  // 0: closed
}

static void ticker_main(void *arg) {
  gort_ticker_t *t = arg;
  int64_t next = gort__nanotime() + t->period;
  while (ticker_wait(t, next)) {
    int64_t now = gort__nanotime();
    gort_chan_try_send(t->c, &now);  // a slow receiver: the tick is dropped
    next += t->period;
    if (next < now) next = now + t->period;  // fell behind: do not burst
  }
  ticker_release(t);
}

gort_ticker_t *gort_ticker_make(int64_t period_ns) {
  if (period_ns <= 0) {
    errno = EINVAL;
    return NULL;
  }
  gort_chan_t *c = gort_chan_make(sizeof(int64_t), 1);
  if (c == NULL) return NULL;
  gort_ticker_t *t = record_alloc(c, sizeof *t);
  if (t == NULL) {
    gort_chan_free(c);
    errno = ENOMEM;
    return NULL;
  }
  t->c = c;
  atomic_store_explicit(&c->timer, CHAN_TIMER_TICKER, memory_order_relaxed);
  t->stopc = gort_chan_make(0, 0);
  t->period = period_ns;
  atomic_store(&t->refs, 2);
  int e = t->stopc != NULL ? gort_go(ticker_main, t) : ENOMEM;
  if (e != 0) {
    if (t->stopc != NULL) gort_chan_free(t->stopc);
    gort__chan_free_now(t->c);
    gort_free(t);
    errno = e;
    return NULL;
  }
  return t;
}

gort_chan_t *gort_ticker_chan(gort_ticker_t *t) { return t->c; }

void gort_ticker_stop(gort_ticker_t *t) {
  if (t == NULL) return;
  gort_chan_close(t->stopc);
  ticker_release(t);
}
