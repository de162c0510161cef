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

// errno across a plain thread's channel operations: its waits are futex
// waits, whose EAGAIN (the word changed before the wait) leaked into the
// thread's errno from the untimed wait. New threads come every round, as
// their first calls contend on gort's locks, with a select's timeout
// beside the plain operations.
static _Atomic int errno_bad, errno_bad_value;
static gort_chan_t *pumped;
static _Atomic bool pump_stop;

static void pump(void *arg) {
  (void)arg;
  int v = 0;
  while (!atomic_load(&pump_stop)) {
    gort_select_case_t c[1] = {{.chan = pumped, .dir = GORT_SELECT_SEND, .elem = &v}};
    if (gort_select(c, 1, 1000000) == 0) v++;
  }
}

static void errno_check(int want) {
  int e = errno;
  if (e != want) atomic_store(&errno_bad_value, e), atomic_fetch_add(&errno_bad, 1);
}

static void *errno_keeper(void *arg) {
  int base = (int)(intptr_t)arg * 1000;
  for (int k = 0; k < 300; k++) {
    int v = k, w, want = base + k % 1000 + 1;
    errno = want;
    if (k % 3 == 2) {
      gort_select_case_t c[1] = {{.chan = pumped, .dir = GORT_SELECT_RECV, .elem = &w}};
      gort_select(c, 1, 500000);
      errno_check(want);
      continue;
    }
    gort_chan_send(ping, &v);
    errno_check(want);
    gort_chan_recv(pong, &w);
    errno_check(want);
  }
  return NULL;
}

TEST(a_plain_threads_channel_operations_keep_its_errno) {
  gort_maxprocs(2);
  ping = gort_chan_make(sizeof(int), 0);
  pong = gort_chan_make(sizeof(int), 0);
  pumped = gort_chan_make(sizeof(int), 4);
  for (int i = 0; i < 6; i++) EXPECT(gort_go(echo, NULL) == 0);
  for (int i = 0; i < 2; i++) EXPECT(gort_go(pump, NULL) == 0);
  for (int r = 0; r < 40; r++) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, errno_keeper, (void *)(intptr_t)(r * 4 + i + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  }
  atomic_store(&pump_stop, true);
  EXPECT(atomic_load(&errno_bad) == 0, "%d operations changed errno (last to %d)", atomic_load(&errno_bad),
         atomic_load(&errno_bad_value));
  gort_chan_close(ping);
}
