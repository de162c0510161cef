/* gort: channels and select (Go: chan, select, time.After, time.Ticker).
 *
 * A channel carries elements of one size, copied in and out. An unbuffered
 * channel (cap 0) hands each element from a sender straight to a receiver:
 * both wait until the other arrives. A buffered one holds up to cap
 * elements. Goroutines and plain threads (main, any pthread) may use the
 * same channel: a goroutine that waits parks and its thread runs other
 * goroutines; a plain thread that waits sleeps in the kernel.
 *
 * Go's rules, as the language specification gives them:
 *   - A send on a closed channel is fatal: "gort: fatal error: send on
 *     closed channel" (Go panics). So are closing a closed channel ("close
 *     of closed channel") and closing a NULL one ("close of nil channel").
 *   - A receive from a closed channel first drains what is buffered, then
 *     returns false at once with the element zeroed (Go's v, ok := <-c).
 *   - A NULL channel is never ready: a send or receive on it blocks for
 *     ever; in gort_select its case is never chosen.
 *   - len is the number of buffered elements, cap the buffer's size; both
 *     are 0 for a NULL channel.
 *
 * Memory: when the collector is on (the default; GORT_GC), a channel is a
 * collected object: once unreachable, it and its buffer are reclaimed, and
 * buffered elements that point at collected objects keep them alive. With
 * the collector off it is plain memory. Either way gort_chan_free frees it
 * at once; freeing a channel that a goroutine or thread waits on is fatal.
 *
 * A goroutine that blocks for ever on a channel while every other goroutine
 * and every thread waiting in gort is blocked too ends the program with
 * "gort: fatal error: all goroutines are asleep - deadlock!" and the
 * goroutine dump (see gort/sched.h).
 */
#ifndef GORT_CHAN_H
#define GORT_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

typedef struct gort_chan gort_chan_t;

/* A channel of elements of elem_size bytes (0 is allowed: a signal
 * channel) with a buffer of cap elements. NULL with errno ENOMEM if memory
 * is short or elem_size * cap overflows. */
GORT_API gort_chan_t *gort_chan_make(size_t elem_size, size_t cap);
/* Sends a copy of *elem (elem_size bytes), waiting for room or a receiver. */
GORT_API void gort_chan_send(gort_chan_t *c, const void *elem);
/* Receives into *elem (if elem is not NULL), waiting for a sender. Returns
 * true with a sent element, false once the channel is closed and drained
 * (then *elem is zeroed). */
GORT_API bool gort_chan_recv(gort_chan_t *c, void *elem);
/* Sends only if a receiver waits or the buffer has room; returns whether
 * it sent. On a closed channel: fatal, as gort_chan_send. */
GORT_API bool gort_chan_try_send(gort_chan_t *c, const void *elem);
/* Receives only if an element is ready; returns true with it. False when
 * none is ready, and also when the channel is closed and drained (then
 * *elem is zeroed); gort_select tells the two apart. */
GORT_API bool gort_chan_try_recv(gort_chan_t *c, void *elem);
/* Closes c: waiting receivers get false, waiting senders fail as a send
 * on a closed channel does. */
GORT_API void gort_chan_close(gort_chan_t *c);
GORT_API size_t gort_chan_len(gort_chan_t *c);
GORT_API size_t gort_chan_cap(gort_chan_t *c);
/* Frees c now (NULL: nothing). Nobody may use c afterwards. An unfired
 * gort_after channel is freed when it would have fired; a ticker's channel
 * is freed by gort_ticker_stop (freeing it here is fatal). */
GORT_API void gort_chan_free(gort_chan_t *c);

/* One case of gort_select. */
typedef enum { GORT_SELECT_SEND = 1, GORT_SELECT_RECV = 2 } gort_select_dir_t;
typedef struct {
  gort_chan_t *chan;       /* NULL: the case is never ready */
  gort_select_dir_t dir;
  void *elem;              /* send: the element to send; receive: where to put it, or NULL */
  bool ok;                 /* receive, once chosen: true if a value came, false if closed */
} gort_select_case_t;

/* Waits until one of the n cases can proceed, performs it and returns its
 * index. If several are ready, one is chosen uniformly at random. timeout_ns
 * < 0 waits for ever; 0 returns -1 at once if no case is ready (Go's
 * default); > 0 returns -1 after that long. n == 0 with a negative timeout
 * blocks for ever (Go's empty select). A chosen send on a closed channel is
 * fatal, as gort_chan_send. */
GORT_API int gort_select(gort_select_case_t *cases, int n, int64_t timeout_ns);

/* A channel of int64_t that receives one element, the monotonic time in
 * nanoseconds, ns nanoseconds from now (Go's time.After). A goroutine
 * sleeps meanwhile and counts in gort_num_goroutine until it sends. Leave
 * the channel to the collector, or gort_chan_free it when done with it:
 * freed before it fires (another select case won), it is never written and
 * is freed by its goroutine when its time comes. */
GORT_API gort_chan_t *gort_after(int64_t ns);

/* A ticker (Go's time.Ticker): its channel (cap 1, int64_t elements)
 * receives the monotonic time every period_ns; ticks a slow receiver
 * misses are dropped. A goroutine drives it. gort_ticker_stop stops it and
 * frees both the ticker and its channel, soon after: nobody may use either
 * once it is called. NULL with errno EINVAL if period_ns <= 0, ENOMEM. */
typedef struct gort_ticker gort_ticker_t;
GORT_API gort_ticker_t *gort_ticker_make(int64_t period_ns);
GORT_API gort_chan_t *gort_ticker_chan(gort_ticker_t *t);
GORT_API void gort_ticker_stop(gort_ticker_t *t);

GORT_END_DECLS

#endif /* GORT_CHAN_H */
