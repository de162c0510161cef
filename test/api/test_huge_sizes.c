// Huge requests: malloc, calloc, realloc, gort_aligned_alloc and
// posix_memalign of sizes from 1 TiB to SIZE_MAX, and alignments from 1 MiB
// to 2^47. Each call must either fail cleanly (NULL with errno ENOMEM, or
// EINVAL for an alignment that is not a power of two; posix_memalign
// returns the code and leaves errno alone) or succeed cheaply: a pointer
// with at least the size asked for, aligned as asked, errno unchanged, the
// process's RSS grown by less than 8 MiB, and free() taking it back.
//
// DANGER. A heap that writes metadata in proportion to a request's size
// can consume the machine's memory for one call (malloc(16 TiB) did, until
// the kernel's OOM killer took other processes with it). So every call runs
// in a child process that guards itself: a watchdog thread reads
// /proc/self/statm every millisecond and exits the child with status 99
// once RSS has grown by 256 MiB; the child also has a CPU limit, an alarm,
// the highest OOM score, and dies with its parent. The parent reports such
// a call as "RSS ran away". Nothing here runs a huge call unguarded.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

#define MiB ((int64_t)1 << 20)
#define RUNAWAY_BYTES (256 * MiB)  // the watchdog's limit, over the child's start
#define CHEAP_BYTES (8 * MiB)      // what a successful call may add to RSS
#define ERRNO_SENTINEL 12345
#define P2(k) ((size_t)1 << (k))

// TSan's build has no libc shim: malloc there is TSan's, so call gort's own
// names (and skip posix_memalign, which only the shim provides).
#ifdef GORT_NO_SHIM
#define MALLOC gort_malloc
#define CALLOC gort_calloc
#define REALLOC gort_realloc
#define FREE gort_free
#else
#define MALLOC malloc
#define CALLOC calloc
#define REALLOC realloc
#define FREE free
#endif

#ifdef __SANITIZE_THREAD__
// Each guarded child exits with its watchdog thread running, and TSan
// would wait a second at every such exit.
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "atexit_sleep_ms=0"; }
#endif

// ---- the guarded child -----------------------------------------------------------

static int report_fd = -1;  // in the child: the pipe to the parent
static int64_t runaway_at;  // in the child: the RSS the watchdog stops at

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  if (write(report_fd, buf, (size_t)n) < 0) _exit(98);
}

static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    int64_t rss = harness_rss_bytes();
    if (rss > runaway_at) {
      say("RSS ran away: child killed at 256 MiB over its start (RSS %lld MiB)",
          (long long)(rss / MiB));
      _exit(99);
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  return NULL;
}

// Everything a child does before the call: limits and the watchdog.
static void guard_self(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "1000", 4) < 0) {
    }
    close(fd);
  }
  struct rlimit cpu = {20, 20};
  setrlimit(RLIMIT_CPU, &cpu);
  alarm(25);
  FREE(MALLOC(100));  // warm up: this thread's cache exists before we measure
  FREE(MALLOC(100000));
  int64_t start = harness_rss_bytes();
  if (start < 0) {
    say("cannot read /proc/self/statm");
    _exit(97);
  }
  runaway_at = start + RUNAWAY_BYTES;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 << 10);
  pthread_t t;
  if (pthread_create(&t, &attr, watchdog, NULL) != 0) {
    say("cannot start the watchdog thread");
    _exit(97);
  }
  pthread_attr_destroy(&attr);
}

// Runs body(arg) in a guarded child. It reports through say() and exits 0
// if all was well. Returns true if so; otherwise prints what the child
// said, prefixed with what, and returns false.
static bool guarded(const char *what, void (*body)(const void *), const void *arg) {
  int fds[2];
  if (pipe(fds) != 0) harness_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) harness_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    report_fd = fds[1];
    guard_self();
    body(arg);
    _exit(0);
  }
  close(fds[1]);
  char out[1024];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof out - 1 && ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;
  out[n] = '\0';
  close(fds[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
  if (WIFSIGNALED(st))
    fprintf(stderr, "  %s: child died of signal %d (%s)%s%s\n", what, WTERMSIG(st), strsignal(WTERMSIG(st)),
            n ? " after: " : "", out);
  else
    fprintf(stderr, "  %s: %s\n", what, n ? out : "failed without a word");
  return false;
}

// ---- the calls -------------------------------------------------------------------

typedef enum {
  OP_MALLOC,         // malloc(a)
  OP_CALLOC,         // calloc(a, b)
  OP_REALLOC_NULL,   // realloc(NULL, a)
  OP_REALLOC_SMALL,  // realloc(a live 100-byte block, a)
  OP_REALLOC_LARGE,  // realloc(a live 1 MiB block, a)
  OP_ALIGNED,        // gort_aligned_alloc(b, a)
  OP_POSIX_MEMALIGN  // posix_memalign(&p, b, a)
} op_t;

typedef struct {
  op_t op;
  size_t a, b;
  size_t count;  // calls with a, a + 1, ..., a + count - 1 (0 means 1)
} call_t;

static int fmt_size(char *buf, size_t n, size_t v) {
  if (v >= P2(20) && (v & (v - 1)) == 0) return snprintf(buf, n, "2^%d", __builtin_ctzl(v));
  if (v >= SIZE_MAX - 65536) return snprintf(buf, n, "SIZE_MAX-%zu", SIZE_MAX - v);
  return snprintf(buf, n, "%zu", v);
}

static void describe(const call_t *c, size_t a, char *buf, size_t n) {
  char sa[32], sb[32];
  fmt_size(sa, sizeof sa, a);
  fmt_size(sb, sizeof sb, c->b);
  switch (c->op) {
    case OP_MALLOC: snprintf(buf, n, "malloc(%s)", sa); break;
    case OP_CALLOC: snprintf(buf, n, "calloc(%s, %s)", sa, sb); break;
    case OP_REALLOC_NULL: snprintf(buf, n, "realloc(NULL, %s)", sa); break;
    case OP_REALLOC_SMALL: snprintf(buf, n, "realloc(a 100 B block, %s)", sa); break;
    case OP_REALLOC_LARGE: snprintf(buf, n, "realloc(a 1 MiB block, %s)", sa); break;
    case OP_ALIGNED: snprintf(buf, n, "gort_aligned_alloc(%s, %s)", sb, sa); break;
    case OP_POSIX_MEMALIGN: snprintf(buf, n, "posix_memalign(&p, %s, %s)", sb, sa); break;
  }
}

// Makes one call in the guarded child and judges it; returns false (after
// say()ing why) if it misbehaved.
// The messages name the call only for a range (check_calls names the rest).
static bool one_call(const call_t *c, size_t a) {
  char what[128] = "";
  if (c->count > 1) {
    describe(c, a, what, sizeof what);
    strcat(what, " ");
  }
  void *old = NULL;
  size_t old_size = 0;
  if (c->op == OP_REALLOC_SMALL || c->op == OP_REALLOC_LARGE) {
    old_size = c->op == OP_REALLOC_SMALL ? 100 : (size_t)MiB;
    old = MALLOC(old_size);
    memset(old, 0x5a, old_size);
  }
  bool posix = c->op == OP_POSIX_MEMALIGN;
  bool bad_alignment = (c->op == OP_ALIGNED || posix) && (c->b == 0 || (c->b & (c->b - 1)) != 0 ||
                                                         (posix && c->b < sizeof(void *)));
  size_t align = c->op == OP_ALIGNED || posix ? c->b : 16;
  int64_t before = harness_rss_bytes();
  void *p = NULL;
  int ret = 0;
  errno = ERRNO_SENTINEL;
  switch (c->op) {
    case OP_MALLOC: p = MALLOC(a); break;
    case OP_CALLOC: p = CALLOC(a, c->b); break;
    case OP_REALLOC_NULL: p = REALLOC(NULL, a); break;
    case OP_REALLOC_SMALL:
    case OP_REALLOC_LARGE: p = REALLOC(old, a); break;
    case OP_ALIGNED: p = gort_aligned_alloc(c->b, a); break;
    case OP_POSIX_MEMALIGN:
#ifdef GORT_NO_SHIM
      return true;
#else
      ret = posix_memalign(&p, c->b, a);
      break;
#endif
  }
  int err = errno;
  int64_t grown = harness_rss_bytes() - before;
  int want = bad_alignment ? EINVAL : ENOMEM;
  size_t total = a;
  if (c->op == OP_CALLOC && __builtin_mul_overflow(a, c->b, &total)) total = SIZE_MAX;
  if (posix) {
    if (ret != 0 && ret != want) return say("%sreturned %d, want %d or 0", what, ret, want), false;
    if (err != ERRNO_SENTINEL) return say("%schanged errno to %d", what, err), false;
    if (ret != 0) return true;
    if (bad_alignment) return say("%ssucceeded with an invalid alignment", what), false;
  } else if (p == NULL) {
    if (err != want) return say("%sreturned NULL with errno %d, want %d", what, err, want), false;
    if (old != NULL) {  // a failed realloc leaves the block as it was
      const unsigned char *o = old;
      if (o[0] != 0x5a || o[old_size - 1] != 0x5a) return say("%sfailed and lost the old block", what), false;
      FREE(old);
    }
    return true;
  } else {
    if (bad_alignment) return say("%ssucceeded with an invalid alignment", what), false;
    if (err != ERRNO_SENTINEL) return say("%ssucceeded but changed errno to %d", what, err), false;
  }
  if (grown >= CHEAP_BYTES)
    return say("%ssucceeded but RSS grew by %lld MiB", what, (long long)(grown / MiB)), false;
  if ((uintptr_t)p % align != 0) return say("%sreturned %p, not aligned", what, p), false;
  size_t usable = gort_usable_size(p);
  if (usable < total) return say("%sreturned %p with only %zu usable bytes", what, p, usable), false;
  FREE(p);
  return true;
}

static void call_body(const void *arg) {
  const call_t *c = arg;
  size_t count = c->count ? c->count : 1;
  for (size_t i = 0; i < count; i++)
    if (!one_call(c, c->a + i)) _exit(1);
}

// Runs every call in its own guarded child; fails the case naming each call
// that misbehaved.
static void check_calls(const call_t *calls, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char what[128];
    describe(&calls[i], calls[i].a, what, sizeof what);
    if (calls[i].count > 1) {
      char last[32];
      fmt_size(last, sizeof last, calls[i].a + calls[i].count - 1);
      snprintf(what + strlen(what), sizeof what - strlen(what), " .. %s", last);
    }
    if (!guarded(what, call_body, &calls[i])) bad++;
  }
  EXPECT(bad == 0, "%d of %zu calls misbehaved (listed above)", bad, n);
}

#define NCALLS(a) (sizeof(a) / sizeof((a)[0]))

// 1 TiB to 2^62, then the last 4097 sizes below SIZE_MAX (one child for them).
#define HUGE_SIZES(OP, B)                                                                  \
  {OP, P2(40), B, 0}, {OP, P2(44), B, 0}, {OP, P2(45), B, 0}, {OP, P2(47), B, 0},          \
      {OP, P2(62), B, 0}, { OP, SIZE_MAX - 4096, B, 4097 }

TEST(malloc_of_a_huge_size_fails_or_costs_no_memory) {
  static const call_t calls[] = {HUGE_SIZES(OP_MALLOC, 0)};
  check_calls(calls, NCALLS(calls));
}

TEST(calloc_of_a_huge_size_fails_or_costs_no_memory) {
  static const call_t calls[] = {
      HUGE_SIZES(OP_CALLOC, 1),
      {OP_CALLOC, P2(20), P2(20), 0},  // 1 TiB as n * size
      {OP_CALLOC, P2(22), P2(22), 0},  // 16 TiB
  };
  check_calls(calls, NCALLS(calls));
}

TEST(calloc_whose_n_times_size_overflows_fails_with_enomem) {
  static const call_t calls[] = {
      {OP_CALLOC, P2(32), P2(32), 0}, {OP_CALLOC, SIZE_MAX, 2, 0},
      {OP_CALLOC, 2, SIZE_MAX / 2 + 1, 0}, {OP_CALLOC, SIZE_MAX, SIZE_MAX, 0},
      {OP_CALLOC, P2(33), P2(31) + 1, 0},
  };
  check_calls(calls, NCALLS(calls));
}

TEST(realloc_to_a_huge_size_fails_or_costs_no_memory) {
  static const call_t calls[] = {HUGE_SIZES(OP_REALLOC_NULL, 0), HUGE_SIZES(OP_REALLOC_SMALL, 0),
                                 HUGE_SIZES(OP_REALLOC_LARGE, 0)};
  check_calls(calls, NCALLS(calls));
}

TEST(aligned_allocation_of_a_huge_size_fails_or_costs_no_memory) {
  static const call_t calls[] = {
      HUGE_SIZES(OP_ALIGNED, 64),
      HUGE_SIZES(OP_ALIGNED, P2(20)),
      HUGE_SIZES(OP_POSIX_MEMALIGN, 64),
      HUGE_SIZES(OP_POSIX_MEMALIGN, P2(20)),
  };
  check_calls(calls, NCALLS(calls));
}

TEST(aligned_allocation_with_a_huge_alignment_fails_or_costs_no_memory) {
  call_t calls[2 * 28 + 8];
  size_t n = 0;
  for (int k = 20; k <= 47; k++) {
    calls[n++] = (call_t){OP_ALIGNED, 16, P2(k), 0};
    calls[n++] = (call_t){OP_POSIX_MEMALIGN, 16, P2(k), 0};
  }
  // Powers of two past the address space, and alignments that are not
  // powers of two (EINVAL).
  calls[n++] = (call_t){OP_ALIGNED, 16, P2(48), 0};
  calls[n++] = (call_t){OP_ALIGNED, 16, P2(63), 0};
  calls[n++] = (call_t){OP_POSIX_MEMALIGN, 16, P2(63), 0};
  calls[n++] = (call_t){OP_ALIGNED, 16, 3 * P2(20), 0};
  calls[n++] = (call_t){OP_ALIGNED, 16, 0, 0};
  calls[n++] = (call_t){OP_ALIGNED, 16, SIZE_MAX, 0};
  calls[n++] = (call_t){OP_POSIX_MEMALIGN, 16, 3 * P2(20), 0};
  calls[n++] = (call_t){OP_POSIX_MEMALIGN, 16, 4, 0};
  check_calls(calls, n);
}

static void malloc_free_loop(const void *arg) {
  (void)arg;
  int64_t before = harness_rss_bytes();
  int got = 0;
  for (int i = 0; i < 10000; i++) {
    errno = ERRNO_SENTINEL;
    void *p = MALLOC(P2(40));
    if (p == NULL) {
      if (errno != ENOMEM) say("malloc(2^40) #%d returned NULL with errno %d", i + 1, errno), _exit(1);
      continue;
    }
    got++;
    FREE(p);
  }
  int64_t grown = harness_rss_bytes() - before;
  if (grown >= CHEAP_BYTES)
    say("RSS grew by %lld MiB over 10000 malloc(2^40)/free (%d returned a block)",
        (long long)(grown / MiB), got), _exit(1);
}

TEST(malloc_and_free_of_1_tib_10000_times_keeps_rss_flat) {
  EXPECT(guarded("10000 x malloc(2^40)/free", malloc_free_loop, NULL));
}
