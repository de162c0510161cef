// Deadlock detection: a program whose goroutines and threads are all
// blocked in gort with nothing left to wake them dies with Go's message and
// the goroutine dump; a pending timer or a goroutine in a blocking system
// call is something that can wake them, and then nothing is reported.

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chantest.h"
#include "gort/gc.h"
#include "gort/sync.h"

#define DEADLOCK "gort: fatal error: all goroutines are asleep - deadlock!"
// ThreadSanitizer runs a thread of its own that the detector cannot tell
// from a program thread that might still wake someone, so it (rightly)
// reports nothing there; the no-false-report cases still run.
#define SKIP_UNDER_TSAN() \
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer's own thread counts as a running program thread")

static void main_receives_from_a_channel_nobody_sends_on(void *arg) {
  (void)arg;
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  int v;
  gort_chan_recv(c, &v);
}

TEST(a_lone_main_blocked_on_a_receive_is_a_deadlock) {
  SKIP_UNDER_TSAN();
  EXPECT(harness_expect_fatal(main_receives_from_a_channel_nobody_sends_on, NULL, DEADLOCK));
}

void deadlocked_receiver(void *arg);  // not static: the dump names it
void deadlocked_receiver(void *arg) {
  int v;
  gort_chan_recv(arg, &v);
}

static void goroutine_and_main_both_blocked(void *arg) {
  (void)arg;
  gort_chan_t *a = gort_chan_make(sizeof(int), 0), *b = gort_chan_make(sizeof(int), 0);
  gort_go(deadlocked_receiver, a);
  gort_go(deadlocked_receiver, a);
  int v;
  gort_select_case_t cs[1] = {{.chan = b, .dir = GORT_SELECT_RECV, .elem = &v}};
  gort_select(cs, 1, -1);
}

TEST(goroutines_and_main_all_blocked_is_a_deadlock_with_the_dump) {
  SKIP_UNDER_TSAN();
  EXPECT(harness_expect_fatal(goroutine_and_main_both_blocked, NULL, DEADLOCK));
  EXPECT(harness_expect_fatal(goroutine_and_main_both_blocked, NULL,
                              "[chan receive, "), "the dump follows");
  EXPECT(harness_expect_fatal(goroutine_and_main_both_blocked, NULL, "deadlocked_receiver"));
}

static void main_waits_on_a_waitgroup_nobody_completes(void *arg) {
  (void)arg;
  static gort_waitgroup_t wg;
  static gort_mutex_t m;
  gort_waitgroup_add(&wg, 1);
  gort_mutex_lock(&m);
  gort_go((void (*)(void *))gort_mutex_lock, &m);  // blocks for ever
  gort_waitgroup_wait(&wg);
}

TEST(a_waitgroup_and_a_mutex_nobody_releases_are_a_deadlock) {
  SKIP_UNDER_TSAN();
  EXPECT(harness_expect_fatal(main_waits_on_a_waitgroup_nobody_completes, NULL, DEADLOCK));
}

// ---- no false report ----

static void send_after_sleep(void *arg) {
  gort_sleep(400 * 1000000);  // a timer: longer than several checks
  int v = 1;
  gort_chan_send(arg, &v);
}

TEST(no_report_while_a_goroutine_sleeps_on_a_timer) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  EXPECT(gort_go(send_after_sleep, c) == 0);
  int v = 0;
  EXPECT(gort_chan_recv(c, &v) && v == 1);
}

static void send_after_syscall(void *arg) {
  gort_syscall_enter();
  usleep(400 * 1000);  // blocks in the kernel, outside gort
  gort_syscall_exit();
  int v = 2;
  gort_chan_send(arg, &v);
}

TEST(no_report_while_a_goroutine_is_in_a_blocking_system_call) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  EXPECT(gort_go(send_after_syscall, c) == 0);
  int v = 0;
  EXPECT(gort_chan_recv(c, &v) && v == 2);
}

static void *thread_sends_later(void *arg) {
  usleep(400 * 1000);  // a plain thread gort knows nothing of: it runs
  int v = 3;
  gort_chan_send(arg, &v);
  return NULL;
}

TEST(no_report_while_another_plain_thread_runs) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  pthread_t t;
  pthread_create(&t, NULL, thread_sends_later, c);
  int v = 0;
  EXPECT(gort_chan_recv(c, &v) && v == 3);
  pthread_join(t, NULL);
}

TEST(no_report_while_a_select_waits_with_a_timeout) {
  gort_chan_t *c = gort_chan_make(sizeof(int), 0);
  int v;
  gort_select_case_t cs[1] = {{.chan = c, .dir = GORT_SELECT_RECV, .elem = &v}};
  EXPECT(gort_select(cs, 1, 300 * 1000000) == -1);
}

// ---- gort's own threads running the program's code; fork --------------------------
//
// A helper's hunt: the finalizer thread is gort's, left out of the threads
// the blocked ones are compared with, yet counted among the blocked when a
// finalizer waited on a channel (a report while main computed), and not
// counted as running while a finalizer ran (a report while it was about to
// wake main). And a forked child inherited the parent's count of blocked
// threads, which do not exist in it.

static void spin_ms(long ms) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do clock_gettime(CLOCK_MONOTONIC, &b);
  while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
}

static gort_chan_t *fin_chan, *thread_chan;

static void fin_sends_after_work(void *obj, void *arg) {
  (void)obj, (void)arg;
  spin_ms(300);
  int v = 7;
  gort_chan_send(fin_chan, &v);
}

static void fin_waits(void *obj, void *arg) {
  (void)obj, (void)arg;
  gort_chan_recv(fin_chan, NULL);
}

static __attribute__((noinline)) void garbage_with_finalizer(void (*fn)(void *, void *)) {
  void *o = gort_gc_alloc(64);
  gort_gc_set_finalizer(o, fn, NULL);
}

TEST(no_report_while_a_finalizer_runs) {
  fin_chan = gort_chan_make(sizeof(int), 1);
  garbage_with_finalizer(fin_sends_after_work);
  gort_gc_collect();
  int v = 0;
  EXPECT(gort_chan_recv(fin_chan, &v) && v == 7);
}

static void *waits_for_main(void *arg) {
  (void)arg;
  gort_chan_recv(thread_chan, NULL);
  return NULL;
}

TEST(no_report_while_main_computes_beside_a_blocked_finalizer) {
  fin_chan = gort_chan_make(0, 0);
  thread_chan = gort_chan_make(0, 0);
  garbage_with_finalizer(fin_waits);
  for (int i = 0; i < 3; i++) gort_gc_collect();  // the finalizer runs, and blocks
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, waits_for_main, NULL) == 0);
  spin_ms(600);  // main computes
  gort_chan_send(fin_chan, NULL);
  gort_chan_send(thread_chan, NULL);
  pthread_join(t, NULL);
}

static gort_chan_t *parent_chan;

static void *parent_blocker(void *arg) {
  (void)arg;
  gort_chan_recv(parent_chan, NULL);
  return NULL;
}

// Forks while a thread of the parent is blocked in gort; the child either
// computes beside a blocked thread of its own and then wakes it (exits 0),
// or deadlocks (must be reported: abort). Returns the child's status.
static int fork_with_a_blocked_thread(bool child_deadlocks) {
  parent_chan = gort_chan_make(0, 0);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, parent_blocker, NULL) == 0);
  usleep(100 * 1000);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    thread_chan = gort_chan_make(0, 0);
    pthread_t c;
    pthread_create(&c, NULL, waits_for_main, NULL);
    if (child_deadlocks) {
      gort_chan_recv(gort_chan_make(0, 0), NULL);  // nobody sends: a deadlock
      _exit(0);
    }
    spin_ms(500);
    gort_chan_send(thread_chan, NULL);
    pthread_join(c, NULL);
    _exit(0);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  gort_chan_send(parent_chan, NULL);
  pthread_join(t, NULL);
  return st;
}

TEST(a_forked_child_does_not_inherit_the_parents_blocked_threads) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer ends a multi-threaded fork's child that starts a thread (status 66)");
  int st = fork_with_a_blocked_thread(false);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
}

TEST(a_forked_childs_deadlock_is_reported) {
  SKIP_UNDER_TSAN();
  int st = fork_with_a_blocked_thread(true);
  EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "the child ended with status %#x (SIGALRM: never reported)", st);
}
