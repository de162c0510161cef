// pthread_exit from main: the process must end, with status 0, when the
// last of the program's threads ends, as glibc ends it; the collector's
// own threads (the sweeper, the mark worker, the finalizer thread, started
// by the first cycle) must not keep it alive. They did: glibc counts every
// thread it started, gort's too, and the process waited for them for
// ever, a zombie main and gort's threads blocking every signal, so that
// only SIGKILL ended it. And a cycle that began after main's pthread_exit
// waited for ever for main, still registered, to stop.
//
// Each case runs the program in a forked child, whose only thread is its
// main thread, and gives it 5 s to end.

#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gctest.h"
#include "gort/alloc.h"

static int done_pipe[2];

// Runs child_main (which ends with pthread_exit) in a child; returns its
// wait status, or -1 if it was still alive after 5 s (it is killed then).
static int run_child(void (*child_main)(void)) {
  EXPECT(pipe(done_pipe) == 0);
  fflush(NULL);
  pid_t pid = fork();
  EXPECT(pid >= 0);
  if (pid == 0) {
    close(done_pipe[0]);
    child_main();
    _exit(99);  // child_main does not return
  }
  close(done_pipe[1]);
  int st = 0;
  for (double deadline = gctest_now() + 5.0; waitpid(pid, &st, WNOHANG) == 0;) {
    if (gctest_now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    gctest_sleep_ms(5);
  }
  return st;
}

// What the child's threads wrote to the pipe before the end.
static int child_said(char *buf, int size) {
  int n = 0;
  for (ssize_t r; n < size - 1 && (r = read(done_pipe[0], buf + n, (size_t)(size - 1 - n))) > 0;)
    n += (int)r;
  buf[n] = '\0';
  close(done_pipe[0]);
  return n;
}

static void say(const char *s) {
  if (write(done_pipe[1], s, strlen(s)) < 0) _exit(98);
}

static void expect_ended_with_status_0(int st, const char *want_said) {
  char said[64];
  child_said(said, sizeof said);
  EXPECT(st != -1, "the process was still alive 5 s after its last thread ended (it said \"%s\")",
         said);
  EXPECT(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x, said \"%s\"", st,
         said);
  EXPECT(strcmp(said, want_said) == 0, "the threads said \"%s\", not \"%s\"", said, want_said);
}

static void *exit_soon(void *arg) {
  (void)arg;
  gctest_sleep_ms(100);  // after main's pthread_exit
  say("worker ");
  return NULL;
}

static void collect_then_main_exits(void) {
  void *p = gort_gc_alloc(100);
  gort_free(p);
  gort_gc_collect();  // starts the collector's threads
  pthread_t t;
  if (pthread_create(&t, NULL, exit_soon, NULL) != 0) _exit(97);
  say("main ");
  pthread_exit(NULL);
}

TEST(pthread_exit_from_main_after_a_collection_ends_the_process_with_the_last_thread) {
  SKIP_IF(GCTEST_TSAN, "under ThreadSanitizer the process outlives its last thread");
  expect_ended_with_status_0(run_child(collect_then_main_exits), "main worker ");
}

static void *collect_soon(void *arg) {
  (void)arg;
  gctest_sleep_ms(100);  // main has called pthread_exit
  gort_gc_collect();
  for (int i = 0; i < 1000; i++) gort_free(gort_gc_alloc(64));
  gort_gc_collect();
  say("collected ");
  return NULL;
}

static void main_exits_then_a_thread_collects(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, collect_soon, NULL) != 0) _exit(97);
  say("main ");
  pthread_exit(NULL);
}

TEST(a_collection_after_main_called_pthread_exit_does_not_wait_for_main) {
  SKIP_IF(GCTEST_TSAN, "under ThreadSanitizer the process outlives its last thread");
  expect_ended_with_status_0(run_child(main_exits_then_a_thread_collects), "main collected ");
}
