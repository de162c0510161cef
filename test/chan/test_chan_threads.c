// Plain threads and goroutines on the same channels: a thread's send
// readies a goroutine through the global run queue, with the Ms idle or
// spinning, and none of those wake-ups may be lost.

#define _GNU_SOURCE
#include <pthread.h>

#include "chantest.h"

static gort_chan_t *ping, *pong;

static void echo(void *arg) {
  (void)arg;
  int v;
  while (gort_chan_recv(ping, &v)) gort_chan_send(pong, &v);
}

// The bug: the last spinning M rechecked the local run queues but not the
// global one, so a G a plain thread readied while that M was still counted
// as spinning stayed queued with every M asleep (found as a hang of
// test_chan_stress in the debug build).
TEST(a_plain_thread_ping_pong_with_goroutines_never_loses_a_wakeup) {
  gort_maxprocs(2);
  ping = gort_chan_make(sizeof(int), 0);
  pong = gort_chan_make(sizeof(int), 0);
  for (int i = 0; i < 3; i++) EXPECT(gort_go(echo, NULL) == 0);
  // Two seconds, or until the thousand rounds asked for below if a loaded
  // machine makes each wake-up slow (a lost wake-up hangs the case).
  int64_t end = now_ns() + 2000LL * 1000000, hard_end = end + 18000LL * 1000000;
  int rounds = 0;
  for (; rounds < 200000 && (now_ns() < end || (rounds < 1000 && now_ns() < hard_end)); rounds++) {
    int v;
    gort_chan_send(ping, &rounds);
    EXPECT(gort_chan_recv(pong, &v) && v == rounds);
  }
  EXPECT(rounds >= 1000, "only %d rounds in 20 s", rounds);
  gort_chan_close(ping);
}
