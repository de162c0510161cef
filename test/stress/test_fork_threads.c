// fork() while other threads allocate: every child must get a working heap.
//
// Two threads malloc, realloc and free blocks of 16 B to 64 KiB in a loop,
// and trade blocks through shared slots, so that each frees the other's
// (remote frees, alloc/mcache.c), while the main thread forks again and
// again; each child frees the traded blocks it finds (their owners do not
// exist in the child), allocates, reallocates and frees a few small and
// large blocks and exits with _exit(0). The parent waits for each child with a time limit: a child
// that hangs (a lock held at the fork, a list left mid-update) is killed
// and the case fails, as does one that crashes or exits non-zero.
//
// gort reads GORT_* once, at start-up, so each case runs this program again
// with its setting (harness_run_inner): the heap profiler sampling every
// allocation, the profiler off, and hardened mode. The forks happen in the
// inner case, inner_fork_while_threads_allocate.
//
// 1000 forks per case in make test (a few seconds), 30000 (or four minutes)
// in make stress.

#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

#define CHILD_TIMEOUT_MS 10000

static _Atomic bool stop;
static _Atomic long worker_ops;

enum { WORKER_SLOTS = 64 };

static size_t worker_size(uint64_t *r) {
  uint64_t x = test_rand(r);
  if (x % 4 == 0) return 16 + (size_t)(x >> 8) % (64 * 1024 - 16 + 1);  // up to 64 KiB
  return 16 + (size_t)(x >> 8) % 1024;
}

// Blocks traded between the workers: each holds its size in its first
// word and the size's low byte in its last.
static _Atomic(unsigned char *) traded[WORKER_SLOTS];

static unsigned char *trade_block(uint64_t *r) {
  size_t n = worker_size(r);
  unsigned char *p = malloc(n);
  if (p == NULL) return NULL;
  memcpy(p, &n, sizeof n);
  p[n - 1] = (unsigned char)n;
  return p;
}

// Frees a traded block after checking it; false if it was corrupted.
static bool free_traded(unsigned char *p) {
  if (p == NULL) return true;
  size_t n;
  memcpy(&n, p, sizeof n);
  if (n < 16 || n > 64 * 1024 || p[n - 1] != (unsigned char)n) return false;
  free(p);
  return true;
}

static void *worker(void *arg) {
  uint64_t r = harness_seed() ^ (uint64_t)(uintptr_t)arg;
  void *slot[WORKER_SLOTS] = {0};
  size_t size[WORKER_SLOTS] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    int i = (int)(test_rand(&r) % WORKER_SLOTS);
    unsigned char *p = slot[i];
    if (p != NULL && (p[0] != (unsigned char)size[i] || p[size[i] - 1] != (unsigned char)i))
      harness_fail(__FILE__, __LINE__, "worker block %p of %zu bytes corrupted", (void *)p, size[i]);
    if (test_rand(&r) % 4 == 0) {  // trade: the block we take back is most likely the other's
      unsigned char *mine = trade_block(&r);
      if (mine == NULL) harness_fail(__FILE__, __LINE__, "worker: allocation for a trade failed");
      unsigned char *theirs = atomic_exchange(&traded[test_rand(&r) % WORKER_SLOTS], mine);
      if (!free_traded(theirs)) harness_fail(__FILE__, __LINE__, "traded block %p corrupted", (void *)theirs);
      continue;
    }
    switch (test_rand(&r) % 3) {
      case 0:
        free(p);
        p = malloc(size[i] = worker_size(&r));
        break;
      case 1:
        p = realloc(p, size[i] = worker_size(&r));
        break;
      default:
        free(p);
        slot[i] = NULL;
        continue;
    }
    if (p == NULL) harness_fail(__FILE__, __LINE__, "worker: allocation of %zu bytes failed", size[i]);
    p[0] = (unsigned char)size[i];
    p[size[i] - 1] = (unsigned char)i;
    slot[i] = p;
    atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
  }
  for (int i = 0; i < WORKER_SLOTS; i++) free(slot[i]);
  return NULL;
}

// What each child does: allocations of every kind, checked, then _exit.
// Returns the exit status (0 when all is well; no stdio in the child).
static int child_work(unsigned n) {
  for (int i = 0; i < WORKER_SLOTS; i++)
    if (!free_traded(atomic_exchange(&traded[i], NULL))) return 40;
  size_t sizes[] = {16, 48, 200, 1000, 5000, 40000, 300000, 2 << 20};
  void *p[8];
  for (int i = 0; i < 8; i++) {
    p[i] = malloc(sizes[i]);
    if (p[i] == NULL) return 10 + i;
    memset(p[i], i + 1, sizes[i]);
  }
  // Grow a small block into a large one and back.
  unsigned char *q = realloc(p[1], 100000);
  if (q == NULL) return 20;
  if (q[0] != 2 || q[47] != 2) return 21;
  q[99999] = 7;
  q = realloc(q, 24);
  if (q == NULL || q[23] != 2) return 22;
  p[1] = q;
  unsigned char *z = calloc(n % 7 + 1, 4096);
  if (z == NULL) return 23;
  for (size_t i = 0; i < (n % 7 + 1) * 4096; i += 512)
    if (z[i] != 0) return 24;
  free(z);
  for (int i = 0; i < 8; i++) {
    unsigned char *b = p[i];
    if (i != 1 && (b[0] != i + 1 || b[sizes[i] - 1] != i + 1)) return 30 + i;
    free(b);
  }
  return 0;
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Waits for pid for up to timeout_ms; returns its wait status, or -1 if it
// did not end in time (it is then killed and reaped).
static int wait_with_timeout(pid_t pid, int timeout_ms) {
  int st;
  int fd = pidfd_open_(pid);
  if (fd >= 0) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    close(fd);
    if (r == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
  }
  // No pidfd (kernel before 5.3): poll waitpid.
  for (int waited_us = 0; waited_us < timeout_ms * 1000; waited_us += 200) {
    if (waitpid(pid, &st, WNOHANG) == pid) return st;
    usleep(200);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

// The lines of /proc/self/maps: one per mapping.
static long count_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  long n = 0;
  int c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

INNER_TEST(inner_fork_while_threads_allocate) {
  const unsigned nforks = 1000u * (unsigned)harness_scale();
  // Hardened mode, if asked for, is on: only the bytes asked for are usable.
  const char *debug = getenv("GORT_DEBUG");
  void *probe = malloc(100);
  memset(probe, 0, 100);
  if (debug != NULL && strstr(debug, "harden=1") != NULL)
    EXPECT_EQ_U64(gort_usable_size(probe), 100, "GORT_DEBUG=%s is not in effect", debug);
  free(probe);
  pthread_t t[2];
  for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
  while (atomic_load(&worker_ops) < 1000) usleep(100);  // both are allocating
  // The soak (make stress) also stops after four minutes per case: a fork
  // of a busy process costs 10 ms and more on a loaded 2-CPU machine, and
  // the three cases must end within the runner's 15-minute limit.
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned n = 0; n < nforks; n++) {
    if (harness_scale() > 1 && n % 100 == 0) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - t0.tv_sec > 240) break;
    }
    pid_t pid = fork();
    if (pid < 0) harness_fail(__FILE__, __LINE__, "fork %u: %s", n, strerror(errno));
    if (pid == 0) _exit(child_work(n));
    int st = wait_with_timeout(pid, CHILD_TIMEOUT_MS);
    if (st == -1)
      harness_fail(__FILE__, __LINE__, "child %u of %u hung: killed after %d s", n + 1, nforks,
                   CHILD_TIMEOUT_MS / 1000);
    if (WIFSIGNALED(st))
      harness_fail(__FILE__, __LINE__, "child %u of %u died of signal %d (%s)", n + 1, nforks,
                   WTERMSIG(st), strsignal(WTERMSIG(st)));
    if (WEXITSTATUS(st) != 0)
      harness_fail(__FILE__, __LINE__, "child %u of %u exited %d (see child_work)", n + 1, nforks,
                   WEXITSTATUS(st));
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < WORKER_SLOTS; i++)
    EXPECT(free_traded(atomic_exchange(&traded[i], NULL)), "traded block %d corrupted", i);
  // Each mapping costs every fork a copy: the heap profiler sampling every
  // block once left a page mapped at each rehash of its registry (29,000
  // mappings within a minute, each fork 46 ms instead of 3.5). Memory made
  // after a fork never merges with its neighbour from before, so such
  // pages stay one mapping each.
  long maps = count_mappings();
  EXPECT(maps > 0 && maps < 400, "%ld mappings after %u forks", maps, nforks);
}

TEST(fork_while_threads_allocate_with_profiler_sampling_everything) {
  EXPECT(harness_run_inner("inner_fork_while_threads_allocate", "GORT_MEMPROFILERATE=1"));
}

TEST(fork_while_threads_allocate_with_profiler_off) {
  EXPECT(harness_run_inner("inner_fork_while_threads_allocate", "GORT_MEMPROFILERATE=0"));
}

TEST(fork_while_threads_allocate_hardened) {
  EXPECT(harness_run_inner("inner_fork_while_threads_allocate", "GORT_DEBUG=harden=1"));
}
