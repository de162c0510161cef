// Test harness: see test.h. Usage: <test> [--seed=N] [--list] [case ...]

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 256

static struct {
  const char *name;
  test_fn fn;
} tests[MAX_TESTS];
static int ntests;
static uint64_t seed = 0x9e3779b97f4a7c15ULL;
static const char *prog;
static const char *argv0;
static int case_timeout;

void harness_register(const char *name, test_fn fn) {
  if (ntests < MAX_TESTS) tests[ntests++] = (typeof(tests[0])){name, fn};
}

void harness_fail(const char *file, int line, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "  %s:%d: %s\n", file, line, buf);
  fflush(stderr);
  _exit(1);
}

#define SKIP_STATUS 77

void harness_skip(const char *reason) {
  printf("  skipped: %s\n", reason);
  fflush(NULL);
  _exit(SKIP_STATUS);
}

int harness_scale(void) {
  const char *s = getenv("TEST_STRESS");
  return s != NULL && strcmp(s, "long") == 0 ? 30 : 1;
}

uint64_t harness_seed(void) { return seed; }

int64_t harness_rss_bytes(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  long long size = 0, resident = 0;
  if (sscanf(buf, "%lld %lld", &size, &resident) != 2) return -1;
  return resident * sysconf(_SC_PAGESIZE);
}

int harness_wait_child(int pid, int timeout_ms) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int st;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return -2;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms) break;
    usleep(1000);
  }
  fprintf(stderr, "  child %d hung; killing it\n", pid);
  kill(pid, SIGKILL);
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return -1;
}

int harness_run(const char *cmd, char *out, size_t outsize) {
  FILE *f = popen(cmd, "r");
  if (f == NULL) return -1;
  size_t n = 0;
  if (out != NULL && outsize > 0) {
    n = fread(out, 1, outsize - 1, f);
    out[n] = '\0';
  } else {
    char tmp[4096];
    while (fread(tmp, 1, sizeof tmp, f) > 0) {
    }
  }
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

bool harness_expect_fatal(void (*fn)(void *), void *arg, const char *want) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    alarm(20);
    fn(arg);
    fprintf(stderr, "(returned normally)\n");
    _exit(0);
  }
  close(fds[1]);
  char out[4096];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
  out[n] = '\0';
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  bool said = strstr(out, want) != NULL;
  if (!aborted || !said)
    fprintf(stderr, "  expected abort with \"%s\"; got %s, stderr: %s\n", want,
            aborted ? "abort" : WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit", out);
  return aborted && said;
}

bool harness_run_inner(const char *name, const char *env) {
  int fds[2];
  if (pipe(fds) != 0) {
    fprintf(stderr, "  harness_run_inner: pipe: %s\n", strerror(errno));
    return false;
  }
  char seedarg[64];
  snprintf(seedarg, sizeof seedarg, "--seed=%" PRIu64, seed);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "  harness_run_inner: fork: %s\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    if (env != NULL) {  // NAME=VALUE, or several separated by spaces
      char vars[512];
      snprintf(vars, sizeof vars, "%s", env);
      char *save = NULL;
      for (char *var = strtok_r(vars, " ", &save); var != NULL; var = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(var, '=');
        if (eq != NULL) {
          *eq = '\0';
          setenv(var, eq + 1, 1);
        }
      }
    }
    execl("/proc/self/exe", argv0, seedarg, name, (char *)NULL);
    fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  // The inner run has the same time limit as this case: give it room to
  // report its own timeout before ours fires.
  alarm((unsigned)case_timeout + 15);
  static char out[65536];
  size_t n = 0;
  char sink[4096];  // output past out's end is read and dropped
  for (;;) {
    bool room = n < sizeof out - 1;
    ssize_t r = read(fds[0], room ? out + n : sink, room ? sizeof out - 1 - n : sizeof sink);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (room) n += (size_t)r;
  }
  out[n] = '\0';
  close(fds[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "PASS ") != NULL;
  if (!ok) {
    fprintf(stderr, "  inner run of %s with %s: %s %d; its output:\n", name, env ? env : "(no env)",
            WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    for (char *line = out; *line != '\0';) {
      char *end = strchr(line, '\n');
      if (end != NULL) *end = '\0';
      fprintf(stderr, "    %s\n", line);
      if (end == NULL) break;
      line = end + 1;
    }
  }
  return ok;
}

static int run_case(int i, int timeout) {
  fflush(NULL);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid == 0) {
    alarm((unsigned)timeout);
    tests[i].fn();
    fflush(NULL);
    _exit(0);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP_STATUS) {
    printf("SKIP %s/%s\n", prog, tests[i].name);
    fflush(stdout);
    return 0;
  }
  if (ok) {
    printf("PASS %s/%s (%.0f ms)\n", prog, tests[i].name, ms);
  } else if (WIFSIGNALED(st)) {
    printf("FAIL %s/%s (%s%s)\n", prog, tests[i].name, strsignal(WTERMSIG(st)),
           WTERMSIG(st) == SIGALRM ? ": timed out" : "");
  } else {
    printf("FAIL %s/%s (exit %d)\n", prog, tests[i].name, WEXITSTATUS(st));
  }
  fflush(stdout);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  argv0 = argv[0];
  prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  int timeout = 60 * harness_scale();
  case_timeout = timeout;
  bool list = false;
  const char *only[MAX_TESTS];
  int nonly = 0;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--seed=", 7) == 0)
      seed = strtoull(argv[i] + 7, NULL, 0);
    else if (strcmp(argv[i], "--list") == 0)
      list = true;
    else if (nonly < MAX_TESTS)
      only[nonly++] = argv[i];
  }
  int failed = 0;
  for (int i = 0; i < ntests; i++) {
    bool selected = nonly == 0;
    for (int j = 0; j < nonly; j++) selected |= strcmp(only[j], tests[i].name) == 0;
    if (!selected) continue;
    if (list)
      printf("%s\n", tests[i].name);
    else
      failed += run_case(i, timeout);
  }
  return failed ? 1 : 0;
}
