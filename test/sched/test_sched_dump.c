// Goroutine dumps: every live goroutine with its id, state, wait reason and
// time, and where it was created; SIGQUIT with GORT_DEBUG=sigquit=1; the
// /sched/goroutines:goroutines metric.

#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort/metrics.h"
#include "schedtest.h"

static gort_waitgroup_t gate, started, finished;

void dump_test_waiter(void *arg);  // not static: dladdr finds it (-rdynamic)
void dump_test_waiter(void *arg) {
  (void)arg;
  gort_waitgroup_done(&started);
  gort_waitgroup_wait(&gate);
  gort_waitgroup_done(&finished);
}

void dump_test_sleeper(void *arg);
void dump_test_sleeper(void *arg) {
  (void)arg;
  gort_waitgroup_done(&started);
  gort_sleep(30LL * 1000000000);
}

static size_t dump_to(char *buf, size_t size) {
  FILE *f = tmpfile();
  gort_goroutines_dump(fileno(f));
  rewind(f);
  size_t n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
  return n;
}

static int site_line;

TEST(dump_shows_each_goroutine_its_wait_and_where_it_was_created) {
  gort_waitgroup_add(&gate, 1);
  gort_waitgroup_add(&started, 2);
  gort_waitgroup_add(&finished, 1);
  site_line = __LINE__ + 1;
  EXPECT(gort_go(dump_test_waiter, NULL) == 0);  // the macro: file and line
  EXPECT((gort_go)(dump_test_sleeper, NULL) == 0);  // the function: its symbol
  gort_waitgroup_wait(&started);
  static char buf[8192];
  for (int i = 0; i < 500; i++) {  // until both have parked, on a loaded machine too
    dump_to(buf, sizeof buf);
    if (strstr(buf, "goroutine 1 [sync.WaitGroup.Wait, ") && strstr(buf, "goroutine 2 [sleep, ")) break;
    usleep(10000);
  }
  fprintf(stderr, "%s", buf);
  EXPECT(strstr(buf, "goroutine 1 [sync.WaitGroup.Wait, ") != NULL);
  EXPECT(strstr(buf, "goroutine 2 [sleep, ") != NULL);
  char want[128];
  snprintf(want, sizeof want, "dump_test_waiter(0x0)\n\tcreated at %s:%d\n", __FILE__, site_line);
  EXPECT(strstr(buf, want) != NULL, "want '%s'", want);
  // (gort_go)(...): no call site, only the function.
  EXPECT(strstr(buf, "dump_test_sleeper(0x0)\n\n") != NULL);
  gort_metric_sample_t s = {.name = "/sched/goroutines:goroutines"};
  gort_metrics_read(&s, 1);
  EXPECT(s.kind == GORT_METRIC_UINT64 && s.value.u64 == 2, "kind %d value %llu", (int)s.kind,
         (unsigned long long)s.value.u64);
  gort_waitgroup_done(&gate);
  gort_waitgroup_wait(&finished);
  for (int i = 0; i < 5000 && gort_num_goroutine() != 1; i++) usleep(1000);
  dump_to(buf, sizeof buf);
  EXPECT(strstr(buf, "goroutine 1 ") == NULL, "an ended goroutine is not shown:\n%s", buf);
  EXPECT(strstr(buf, "goroutine 2 [sleep") != NULL);
}

// The inner program's output on one line, so that its own PASS/FAIL lines
// never reach the test runner as ours.
static void flatten(char *s) {
  for (; *s; s++)
    if (*s == '\n') *s = '|';
}

// Run as its own program with GORT_DEBUG=sigquit=1 (harness_run: the
// option is read at start): dies of its own SIGQUIT, printing the dump.
INNER_TEST(sigquit_inner) {
  gort_waitgroup_add(&started, 1);
  EXPECT(gort_go(dump_test_sleeper, NULL) == 0);
  gort_waitgroup_wait(&started);
  // Until it sleeps: the dump the signal prints must show it asleep, and
  // a loaded machine may take longer than a fixed pause to get it there.
  static char buf[8192];
  for (int i = 0; i < 500; i++) {
    dump_to(buf, sizeof buf);
    if (strstr(buf, "goroutine 1 [sleep, ") != NULL) break;
    usleep(10000);
  }
  raise(SIGQUIT);
}

TEST(sigquit_prints_the_goroutines_with_the_debug_option) {
  char exe[512], cmd[700];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  EXPECT(n > 0);
  exe[n] = '\0';
  snprintf(cmd, sizeof cmd, "GORT_DEBUG=sigquit=1 '%s' sigquit_inner 2>&1", exe);
  static char out[4096];
  harness_run(cmd, out, sizeof out);
  flatten(out);
  // The inner case's process exits 2 (Go's status), which its harness reports.
  EXPECT(strstr(out, "sigquit_inner (exit 2)") != NULL, "output: %s", out);
  EXPECT(strstr(out, "SIGQUIT: quit") != NULL, "%s", out);
  EXPECT(strstr(out, "goroutine 1 [sleep, ") != NULL, "%s", out);
  EXPECT(strstr(out, "dump_test_sleeper(0x0)|\tcreated at ") != NULL, "%s", out);
}

TEST(sigquit_without_the_option_is_the_programs) {
  // Default action: the inner program dies of SIGQUIT, with no dump.
  char exe[512], cmd[700];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  EXPECT(n > 0);
  exe[n] = '\0';
  snprintf(cmd, sizeof cmd, "'%s' sigquit_inner 2>&1", exe);
  static char out[4096];
  harness_run(cmd, out, sizeof out);
  flatten(out);
  EXPECT(strstr(out, "sigquit_inner (Quit)") != NULL, "output: %s", out);
  EXPECT(strstr(out, "goroutine 1") == NULL, "%s", out);
}

// ---- fork ------------------------------------------------------------------------------

TEST(a_forked_child_has_none_of_the_parents_goroutines) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer does not start threads after a multi-threaded fork");
  gort_waitgroup_add(&started, 1);
  EXPECT(gort_go(dump_test_sleeper, NULL) == 0);
  gort_waitgroup_wait(&started);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    if (gort_num_goroutine() != 0) _exit(3);
    // The scheduler works in the child: new Ms, a new monitor.
    gort_waitgroup_add(&gate, 1);
    gort_waitgroup_add(&started, 100);
    gort_waitgroup_add(&finished, 100);
    for (int i = 0; i < 100; i++) gort_go(dump_test_waiter, NULL);
    gort_waitgroup_wait(&started);
    if (gort_num_goroutine() != 100) _exit(4);
    gort_waitgroup_done(&gate);
    gort_waitgroup_wait(&finished);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
  EXPECT(gort_num_goroutine() == 1);
}

// A goroutine that forks inside a system-call section goes on in the child
// without a P (sched/fork.c); when it returns there, its G and stack go to
// the global pools (the return crashed on the P's pool, a helper's find).
// A thread of the child's own ends the child once the goroutine is gone.
static pid_t forked_child;
static gort_waitgroup_t forked_done;

static void *exit_child_soon(void *arg) {
  (void)arg;
  usleep(200 * 1000);
  _exit(0);
}

static void fork_in_a_syscall_section(void *arg) {
  (void)arg;
  gort_syscall_enter();
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    pthread_t t;
    if (pthread_create(&t, NULL, exit_child_soon, NULL) != 0) _exit(3);
    return;  // still inside the section: ends without a P
  }
  forked_child = pid;
  gort_syscall_exit();
  gort_waitgroup_done(&forked_done);
}

TEST(a_goroutine_that_forked_in_a_system_call_returns_in_the_child) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer does not start threads after a multi-threaded fork");
  gort_waitgroup_add(&forked_done, 1);
  EXPECT(gort_go(fork_in_a_syscall_section, NULL) == 0);
  gort_waitgroup_wait(&forked_done);
  int st;
  waitpid(forked_child, &st, 0);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
