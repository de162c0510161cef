// Spawning and joining: gort_go from plain threads and from goroutines,
// many at once, 100k alive at once; errors; ids; errno across switches;
// GORT_MAXPROCS and gort_maxprocs.

#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schedtest.h"

static void nop(void *arg) { (void)arg; }

TEST(go_with_a_null_function_gives_einval) {
  EXPECT(gort_go(NULL, NULL) == EINVAL);
  EXPECT((gort_go)(NULL, NULL) == EINVAL);
  EXPECT(gort_num_goroutine() == 0, "got %lld", (long long)gort_num_goroutine());
}

TEST(plain_thread_has_goroutine_id_zero) { EXPECT(gort_goroutine_id() == 0); }

// ---- many spawners -------------------------------------------------------------------------

enum { SPAWNERS = 4, PER_SPAWNER = 20000 };
static _Atomic int64_t ran;
static _Atomic int64_t id_sum;

static void count(void *arg) {
  gort_waitgroup_t *wg = arg;
  atomic_fetch_add(&ran, 1);
  atomic_fetch_add(&id_sum, gort_goroutine_id());
  gort_waitgroup_done(wg);
}

static void *spawner(void *arg) {
  (void)arg;
  gort_waitgroup_t wg = {0};
  int n = SCHEDTEST_TSAN ? PER_SPAWNER / 10 : PER_SPAWNER;
  for (int i = 0; i < n; i++) {
    gort_waitgroup_add(&wg, 1);
    if (gort_go(count, &wg) != 0) harness_fail(__FILE__, __LINE__, "gort_go failed at %d", i);
  }
  gort_waitgroup_wait(&wg);  // a plain thread: blocks on a futex
  return NULL;
}

TEST(spawn_and_join_many_goroutines_from_many_threads) {
  pthread_t t[SPAWNERS];
  for (int i = 0; i < SPAWNERS; i++) pthread_create(&t[i], NULL, spawner, NULL);
  for (int i = 0; i < SPAWNERS; i++) pthread_join(t[i], NULL);
  int64_t n = (int64_t)SPAWNERS * (SCHEDTEST_TSAN ? PER_SPAWNER / 10 : PER_SPAWNER);
  EXPECT(atomic_load(&ran) == n, "ran %lld of %lld", (long long)atomic_load(&ran), (long long)n);
  // Ids are 1..n, each once.
  EXPECT(atomic_load(&id_sum) == n * (n + 1) / 2, "sum of ids %lld", (long long)atomic_load(&id_sum));
  // Each goroutine says done just before it returns: the count drains soon.
  for (int i = 0; i < 5000 && gort_num_goroutine() != 0; i++) usleep(1000);
  EXPECT(gort_num_goroutine() == 0, "%lld goroutines left", (long long)gort_num_goroutine());
}

// ---- goroutines that spawn goroutines (a small skynet) ------------------------------------

typedef struct {
  int64_t num, size;
  _Atomic int64_t *sum;
  gort_waitgroup_t *wg;
} node_t;

static void skynet(void *arg) {
  node_t *n = arg;
  if (n->size == 1) {
    atomic_fetch_add(n->sum, n->num);
  } else {
    gort_waitgroup_t wg = {0};
    node_t kids[10];
    for (int i = 0; i < 10; i++) {
      kids[i] = (node_t){n->num + i * (n->size / 10), n->size / 10, n->sum, &wg};
      gort_waitgroup_add(&wg, 1);
      EXPECT(gort_go(skynet, &kids[i]) == 0);
    }
    gort_waitgroup_wait(&wg);  // a goroutine: parks; kids[] stays on this stack
  }
  gort_waitgroup_done(n->wg);
}

TEST(goroutines_spawn_and_join_goroutines) {
  _Atomic int64_t sum = 0;
  gort_waitgroup_t wg = {0};
  int64_t size = SCHEDTEST_TSAN ? 10000 : 100000;
  node_t root = {0, size, &sum, &wg};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(skynet, &root) == 0);
  gort_waitgroup_wait(&wg);
  EXPECT(atomic_load(&sum) == size * (size - 1) / 2, "sum %lld", (long long)atomic_load(&sum));
}

// ---- 100k alive at once --------------------------------------------------------------------

enum { LIVE = 100000 };
static gort_waitgroup_t started, gate, finished;

static void wait_at_gate(void *arg) {
  (void)arg;
  gort_waitgroup_done(&started);
  gort_waitgroup_wait(&gate);
  gort_waitgroup_done(&finished);
}

TEST(hundred_thousand_live_goroutines) {
  // ThreadSanitizer counts each goroutine's fiber as a thread, and allows
  // 8128: it runs 5000.
  int live = SCHEDTEST_TSAN ? 5000 : LIVE;
  int64_t rss0 = harness_rss_bytes();
  gort_waitgroup_add(&gate, 1);
  gort_waitgroup_add(&started, live);
  gort_waitgroup_add(&finished, live);
  for (int i = 0; i < live; i++)
    if (gort_go(wait_at_gate, NULL) != 0) harness_fail(__FILE__, __LINE__, "gort_go failed at %d", i);
  gort_waitgroup_wait(&started);
  EXPECT(gort_num_goroutine() == live, "%lld alive", (long long)gort_num_goroutine());
  int64_t per = (harness_rss_bytes() - rss0) / live;
  fprintf(stderr, "  %lld bytes of RSS per parked goroutine\n", (long long)per);
  // One page of stack and the G; the bound leaves room for the allocator
  // and the sanitizer's shadow.
  // (Not under ThreadSanitizer, whose fiber per goroutine costs ~1 MiB.)
  EXPECT(SCHEDTEST_TSAN || per < 12 * 1024, "%lld bytes each", (long long)per);
  gort_waitgroup_done(&gate);
  gort_waitgroup_wait(&finished);
}

// ---- goroutines waiting to start --------------------------------------------------------------
//
// A goroutine holds a stack from its first run only (stack.c): 50,000
// spawned on one P by a goroutine that does not yield cost their Gs (256
// bytes each), not 50,000 stack pages (200 MB when each held one).

enum { QUEUED = 50000 };
static int64_t queued_rss_delta;

static void spawn_queued(void *arg) {
  gort_waitgroup_t *wg = arg;
  int64_t rss0 = harness_rss_bytes();
  for (int i = 0; i < QUEUED; i++)
    if (gort_go(nop, NULL) != 0) harness_fail(__FILE__, __LINE__, "gort_go failed at %d", i);
  queued_rss_delta = harness_rss_bytes() - rss0;
  gort_waitgroup_done(wg);
}

TEST(goroutines_waiting_to_start_hold_no_stack) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer's fiber per goroutine costs about 1 MiB of its own");
  int procs = gort_maxprocs(1);
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(spawn_queued, &wg) == 0);
  gort_waitgroup_wait(&wg);
  gort_maxprocs(procs);
  for (int i = 0; i < 5000 && gort_num_goroutine() != 0; i++) usleep(1000);
  EXPECT(gort_num_goroutine() == 0);
  fprintf(stderr, "  %lld bytes of RSS per goroutine waiting to start\n", (long long)(queued_rss_delta / QUEUED));
  EXPECT(queued_rss_delta < (int64_t)QUEUED * 1024, "%lld bytes for %d queued goroutines",
         (long long)queued_rss_delta, QUEUED);
}

// ---- errno --------------------------------------------------------------------------------

enum { ERRNO_GS = 64 };
static _Atomic int64_t errno_bad;

// errno read and written afresh (sched.h says why: glibc's
// __errno_location is a const function, so within one function the
// compiler may reuse the address it returned before a switch).
static NOINLINE int get_errno(void) { return errno; }
static NOINLINE void set_errno(int e) { errno = e; }

static void keep_errno(void *arg) {
  gort_waitgroup_t *wg = arg;
  int mine = 1000 + (int)gort_goroutine_id();
  set_errno(mine);
  for (int i = 0; i < 200; i++) {
    if (i % 3 == 0) gort_sleep(10000);
    else gort_yield();  // resumes on either thread, after others set theirs
    if (get_errno() != mine) atomic_fetch_add(&errno_bad, 1);
    set_errno(mine);
  }
  gort_waitgroup_done(wg);
}

TEST(errno_survives_a_switch) {
  gort_maxprocs(2);
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, ERRNO_GS);
  for (int i = 0; i < ERRNO_GS; i++) EXPECT(gort_go(keep_errno, &wg) == 0);
  gort_waitgroup_wait(&wg);
  EXPECT(atomic_load(&errno_bad) == 0, "%lld switches lost errno", (long long)atomic_load(&errno_bad));
}

// ---- counting ------------------------------------------------------------------------------
//
// Each P counts its own spawns and exits (proc.c, "Counting goroutines"):
// goroutines spawned on one P or by a plain thread and ended on another
// still add up exactly.

enum { COUNT_GS = 500 };
static gort_waitgroup_t count_gate, count_started;

static void count_blocker(void *arg) {
  (void)arg;
  gort_waitgroup_done(&count_started);
  gort_waitgroup_wait(&count_gate);
}

static void count_spawner(void *arg) {
  for (int i = 0; i < COUNT_GS; i++) gort_go(count_blocker, NULL);
  gort_waitgroup_done(arg);
}

TEST(num_goroutine_counts_exactly_across_ps_and_plain_threads) {
  gort_maxprocs(2);
  gort_waitgroup_add(&count_gate, 1);
  gort_waitgroup_add(&count_started, 3 * COUNT_GS);
  gort_waitgroup_t spawned = {0};
  gort_waitgroup_add(&spawned, 2);
  gort_go(count_spawner, &spawned);  // from goroutines: their Ps' counts
  gort_go(count_spawner, &spawned);
  for (int i = 0; i < COUNT_GS; i++) gort_go(count_blocker, NULL);  // a plain thread: the global count
  gort_waitgroup_wait(&spawned);
  gort_waitgroup_wait(&count_started);
  int64_t n = 0;
  for (int i = 0; i < 5000 && (n = gort_num_goroutine()) != 3 * COUNT_GS; i++) usleep(1000);
  EXPECT(n == 3 * COUNT_GS, "%lld live, want %d", (long long)n, 3 * COUNT_GS);
  gort_waitgroup_done(&count_gate);
  for (int i = 0; i < 5000 && (n = gort_num_goroutine()) != 0; i++) usleep(1000);
  EXPECT(n == 0, "%lld live after every goroutine returned", (long long)n);
}

// ---- floating-point modes ------------------------------------------------------------------
//
// The switch loads MXCSR and the x87 control word only when they differ
// from the current ones (switch_amd64.S): each goroutine's rounding mode
// and x87 precision must still be its own after any switch. The sticky
// exception flags are the M's and are not checked.

#if defined(__x86_64__)
enum { FP_GS = 16 };
static _Atomic int64_t fp_bad;

static NOINLINE uint32_t get_mxcsr(void) {
  uint32_t v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}
static NOINLINE void set_mxcsr(uint32_t v) { __asm__ volatile("ldmxcsr %0" : : "m"(v)); }
static NOINLINE uint16_t get_x87cw(void) {
  uint16_t v;
  __asm__ volatile("fnstcw %0" : "=m"(v));
  return v;
}
static NOINLINE void set_x87cw(uint16_t v) { __asm__ volatile("fldcw %0" : : "m"(v)); }

static void keep_fp_modes(void *arg) {
  gort_waitgroup_t *wg = arg;
  int k = (int)(gort_goroutine_id() % 4);
  // Rounding (bits 13-14) and flush-to-zero (bit 15) by k; x87 rounding
  // (bits 10-11) and precision (bits 8-9) by k.
  uint32_t mx = (0x1f80 & ~0x6000u) | ((uint32_t)k << 13) | (k == 3 ? 0x8000u : 0);
  uint16_t cw = (uint16_t)((0x037f & ~0x0f00) | (k << 10) | ((k & 1) << 9));
  set_mxcsr(mx);
  set_x87cw(cw);
  for (int i = 0; i < 200; i++) {
    if (i % 5 == 0) gort_sleep(10000);
    else gort_yield();
    if ((get_mxcsr() & ~0x3fu) != mx || get_x87cw() != cw) atomic_fetch_add(&fp_bad, 1);
  }
  set_mxcsr(0x1f80);
  set_x87cw(0x037f);
  gort_waitgroup_done(wg);
}

TEST(floating_point_modes_survive_a_switch) {
  gort_maxprocs(2);
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, FP_GS);
  for (int i = 0; i < FP_GS; i++) EXPECT(gort_go(keep_fp_modes, &wg) == 0);
  gort_waitgroup_wait(&wg);
  EXPECT(atomic_load(&fp_bad) == 0, "%lld switches lost a goroutine's modes", (long long)atomic_load(&fp_bad));
}
#endif

// ---- GORT_MAXPROCS --------------------------------------------------------------------------

TEST(maxprocs_reads_sets_and_ignores_negative) {
  int def = gort_maxprocs(0);
  EXPECT(def >= 1);
  EXPECT(gort_maxprocs(-5) == def);
  EXPECT(gort_maxprocs(3) == def);
  EXPECT(gort_maxprocs(0) == 3);
  // Lowering it while goroutines run: they still all finish.
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1000);
  for (int i = 0; i < 1000; i++) EXPECT(gort_go(count, &wg) == 0);
  EXPECT(gort_maxprocs(1) == 3);
  gort_waitgroup_wait(&wg);
  EXPECT(gort_maxprocs(2) == 1);
  EXPECT(gort_maxprocs(100000) == 2);
  EXPECT(gort_maxprocs(0) == 256, "capped at 256: %d", gort_maxprocs(0));
}

INNER_TEST(maxprocs_from_env_inner) {
  EXPECT(gort_maxprocs(0) == 3, "got %d", gort_maxprocs(0));
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(count, &wg) == 0);
  gort_waitgroup_wait(&wg);
}

TEST(gort_maxprocs_env_sets_the_procs) {
  EXPECT(harness_run_inner("maxprocs_from_env_inner", "GORT_MAXPROCS=3"));
}

TEST(default_maxprocs_is_the_usable_cpus) {
  cpu_set_t set;
  EXPECT(sched_getaffinity(0, sizeof set, &set) == 0);
  // This machine's cgroup has no CPU quota below its CPU count (if it has,
  // the default is smaller, never larger).
  EXPECT(gort_maxprocs(0) >= 1 && gort_maxprocs(0) <= CPU_COUNT(&set), "%d of %d", gort_maxprocs(0),
         CPU_COUNT(&set));
}

TEST(spawn_from_a_goroutine_after_the_spawner_exits) {
  // A goroutine whose creator has returned, started with nop: the count
  // goes up and back down to zero.
  EXPECT(gort_go(nop, NULL) == 0);
  for (int i = 0; i < 5000 && gort_num_goroutine() != 0; i++) usleep(1000);
  EXPECT(gort_num_goroutine() == 0);
}

// ---- out of memory for a stack --------------------------------------------------------------

static void block_forever(void *arg) {
  (void)arg;
  gort_waitgroup_t never = {0};
  gort_waitgroup_add(&never, 1);
  gort_waitgroup_wait(&never);
}

static long vm_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld", &size) != 1) size = 0;
    fclose(f);
  }
  return size * sysconf(_SC_PAGESIZE);
}

TEST(no_address_space_for_a_stack_gives_enomem) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer's shadow memory does not fit under an address-space limit");
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    // Start the scheduler (its threads and first slab of 64 stacks) first.
    if (gort_go(block_forever, NULL) != 0) _exit(3);
    usleep(20000);
    struct rlimit rl = {.rlim_cur = (rlim_t)vm_bytes() + 8 * 1024 * 1024,
                        .rlim_max = RLIM_INFINITY};
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
    int ok = 0, r = 0;
    for (int i = 0; i < 1000; i++) {  // the next slab (16 MiB) cannot be had
      r = gort_go(block_forever, NULL);
      if (r != 0) break;
      ok++;
    }
    if (r != ENOMEM) _exit(5);
    if (ok > 63) _exit(6);  // the first slab's other slots, no more
    // Still working: a spawn that fails leaves the scheduler as it was.
    if (gort_num_goroutine() != ok + 1) _exit(7);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
