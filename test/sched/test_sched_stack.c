// Stacks: an overflow dies with the goroutine's id from the alternate
// signal stack; other faults reach the program's own handler or the
// default action; deep recursion inside the reservation works;
// GORT_STACKSIZE sets the reservation.

#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schedtest.h"

static NOINLINE int recurse(int depth, int max) {
  volatile char frame[1000];
  frame[0] = (char)depth;
  if (depth >= max) return frame[0];
  return recurse(depth + 1, max) + frame[0];
}

static int depth_kib;

static void recurse_1k(void) { recurse(0, depth_kib); }  // about 1 KiB per frame

// Runs the recursion named by arg (a void (*)(void)) in a goroutine.
static void deep(void *arg) {
  void **a = arg;
  ((void (*)(void))a[0])();
  gort_waitgroup_done(a[1]);
}

static void run_deep(void *recursion) {
  gort_waitgroup_t wg = {0};
  void *a[2] = {recursion != NULL ? recursion : (void *)recurse_1k, &wg};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(deep, a) == 0);
  gort_waitgroup_wait(&wg);
}

TEST(stack_overflow_reports_the_goroutine) {
  depth_kib = 1 << 20;  // far past 256 KiB
  EXPECT(harness_expect_fatal(run_deep, NULL, "gort: fatal error: goroutine 1 stack overflow"));
}

TEST(recursion_within_the_stack_works) {
  depth_kib = 200;  // of 256 KiB
  run_deep(NULL);
  fprintf(stderr, "  guard mode %d (0: MADV_GUARD_INSTALL, 1: mprotect, 2: canary)\n",
          gort__stack_guard_mode);
}

// Frames of 8 KiB, each written at its lowest byte first: over a one-page
// guard, the first frame past the stack's end landed in the neighbour
// goroutine's stack and nothing faulted (a helper's hunt: a crash
// elsewhere, no message). The guard is an eighth of the stack now.
static NOINLINE int recurse_8k(int depth) {
  volatile char frame[8192];
  frame[0] = (char)depth;  // the lowest byte first
  frame[sizeof frame - 1] = (char)depth;
  if (depth > 1 << 20) return frame[0];  // never: 8 GiB of frames
  return recurse_8k(depth + 1) + frame[0];
}

static void deep_8k(void) { recurse_8k(0); }

TEST(an_overflow_by_frames_larger_than_a_page_is_reported) {
  EXPECT(harness_expect_fatal(run_deep, (void *)deep_8k, "gort: fatal error: goroutine 1 stack overflow"));
}

INNER_TEST(stacksize_inner) {
  EXPECT(gort__stack_size == 64 * 1024, "%zu", gort__stack_size);
  depth_kib = 100;  // first: fork (harness_expect_fatal) before any thread starts
  EXPECT(harness_expect_fatal(run_deep, NULL, "gort: fatal error: goroutine 1 stack overflow"));
  depth_kib = 40;
  run_deep(NULL);  // fits in 64 KiB
}

TEST(gort_stacksize_sets_the_reservation) {
  EXPECT(harness_run_inner("stacksize_inner", "GORT_STACKSIZE=64KiB"));
}

// ---- faults that are not overflows ------------------------------------------------------------

// Exits 42 if the fault is blocked inside the handler, as the kernel
// blocks it (no SA_NODEFER), 43 if not.
static void own_handler(int sig) {
  sigset_t now;
  sigprocmask(SIG_BLOCK, NULL, &now);
  _exit(sigismember(&now, sig) == 1 ? 42 : 43);
}

static void null_store(void *arg) {
  (void)arg;
  *(volatile int *)(uintptr_t)16 = 1;
}

// Runs a goroutine that faults, in a child; returns its wait status.
static int fault_in_child(bool handler) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    if (handler) signal(SIGSEGV, own_handler);  // before gort installs its own
    gort_waitgroup_t wg = {0};
    gort_waitgroup_add(&wg, 1);
    gort_go(null_store, NULL);
    gort_waitgroup_wait(&wg);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

TEST(a_fault_that_is_no_overflow_reaches_the_programs_handler) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer handles SIGSEGV itself and reports it");
  int st = fault_in_child(true);
  EXPECT(WIFEXITED(st) && (WEXITSTATUS(st) == 42 || WEXITSTATUS(st) == 43), "status %#x", st);
}

// Only the mprotect dirty tracker needs the fault open in the program's
// handler (os/fault.c, chain): without it the handler ran with SIGSEGV
// unblocked, and a handler that reset the action and raised it died in
// raise, not at its return as under the kernel's rules.
INNER_TEST(handler_mask_inner) {
  int st = fault_in_child(true);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 42, "status %#x (43: SIGSEGV open in the handler)", st);
}

TEST(the_programs_handler_runs_with_the_fault_blocked_as_the_kernel_would) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer handles SIGSEGV itself and reports it");
  EXPECT(harness_run_inner("handler_mask_inner", "GORT_DEBUG=gcdirty=none"));
}

TEST(a_fault_that_is_no_overflow_gets_the_default_action) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer handles SIGSEGV itself and reports it");
  int st = fault_in_child(false);
  EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
}

// ---- pooled stacks go back to the OS ------------------------------------------------------------

enum { POOLED = 6000, TOUCH = 32 * 1024 };
static gort_waitgroup_t touched, release_gate, gone;

static NOINLINE void touch_stack(void) {
  volatile char buf[TOUCH];
  for (size_t i = 0; i < sizeof buf; i += 4096) buf[i] = 1;
}

static void toucher(void *arg) {
  (void)arg;
  touch_stack();
  gort_waitgroup_done(&touched);
  gort_waitgroup_wait(&release_gate);
  gort_waitgroup_done(&gone);
}

TEST(stacks_pooled_beyond_the_bound_give_their_pages_back) {
  gort_waitgroup_add(&touched, POOLED);
  gort_waitgroup_add(&release_gate, 1);
  gort_waitgroup_add(&gone, POOLED);
  for (int i = 0; i < POOLED; i++) EXPECT(gort_go(toucher, NULL) == 0);
  gort_waitgroup_wait(&touched);
  int64_t peak = harness_rss_bytes();
  gort_waitgroup_done(&release_gate);
  gort_waitgroup_wait(&gone);
  // About 1900 stacks beyond the 4096 kept, 36 KiB each: ~65 MiB, within
  // a second or two (sysmon trims once a second).
  int64_t after = peak;
  for (int i = 0; i < 50 && peak - after < 40 * 1024 * 1024; i++) {
    usleep(100 * 1000);
    after = harness_rss_bytes();
  }
  fprintf(stderr, "  RSS %lld MiB with the stacks in use, %lld MiB after\n", (long long)(peak >> 20),
          (long long)(after >> 20));
  EXPECT(peak - after >= 40 * 1024 * 1024, "RSS fell by %lld MiB only", (long long)((peak - after) >> 20));
  // The pooled stacks, cold or not, are reused.
  depth_kib = 100;
  run_deep(NULL);
}

static gort_waitgroup_t gate, started, finished;

static void wait_gate(void *arg) {
  (void)arg;
  gort_waitgroup_done(&started);
  gort_waitgroup_wait(&gate);
  gort_waitgroup_done(&finished);
}

// ---- the fallback guards ------------------------------------------------------------------------
//
// Kernels before 6.13 have no MADV_GUARD_INSTALL: the first 8192 stacks get
// mprotect guards, later ones a canary at their lowest word, checked when
// their goroutine switches out. GORT_DEBUG=stackguard=1 and 2 force these.

// Writes from 1.5 KiB below the stack's lowest usable byte up to here: past
// the canary, inside the slot's guard page (never into the next slot).
static NOINLINE void overrun_by_1500(void) {
  g_t *g = gort__sched_getg();
  char here;
  size_t n = (size_t)((uintptr_t)&here - g->stack_lo) + 1500;
  volatile char *p = __builtin_alloca(n);
  for (size_t i = 0; i + 256 < n; i += 64) p[i] = 1;
}

static void overrun_then_yield(void *arg) {
  overrun_by_1500();
  gort_yield();  // the canary is checked here
  gort_waitgroup_done(arg);
}

static void run_overrun(void *arg) {
  (void)arg;
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(overrun_then_yield, &wg) == 0);
  gort_waitgroup_wait(&wg);
}

static void nothing(void *arg) { gort_waitgroup_done(arg); }

INNER_TEST(mprotect_guard_inner) {
  EXPECT(gort__stack_guard_mode == 1, "mode %d", gort__stack_guard_mode);
  // Still mprotect once a stack was guarded: on kernels with
  // MADV_GUARD_INSTALL the forced fallback once took that guard, counted
  // it a failure and fell to canaries at the first stack.
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(nothing, &wg) == 0);
  gort_waitgroup_wait(&wg);
  EXPECT(gort__stack_guard_mode == 1, "mode %d after one stack", gort__stack_guard_mode);
  EXPECT(harness_expect_fatal(run_overrun, NULL, "gort: fatal error: goroutine 2 stack overflow"));
  // Past the budget of 8192 mprotect guards, canaries (without running out
  // of mappings: vm.max_map_count is 65530 by default).
  gort_waitgroup_add(&gate, 1);
  gort_waitgroup_add(&started, 10000);
  gort_waitgroup_add(&finished, 10000);
  for (int i = 0; i < 10000; i++) EXPECT(gort_go(wait_gate, NULL) == 0);
  gort_waitgroup_wait(&started);
  EXPECT(gort__stack_guard_mode == 2, "mode %d after 10000 stacks", gort__stack_guard_mode);
  gort_waitgroup_done(&gate);
  gort_waitgroup_wait(&finished);
  depth_kib = 40;
  run_deep(NULL);  // a canary stack that does not overflow runs as any other
}

TEST(mprotect_guards_report_an_overflow_and_give_way_to_canaries) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer allows 8128 fibers, and this needs 10000 goroutines");
  EXPECT(harness_run_inner("mprotect_guard_inner", "GORT_DEBUG=stackguard=1"));
}

static void overrun_then_return(void *arg) {
  overrun_by_1500();
  (void)arg;  // the canary is checked at the return
}

// The goroutine returns without switching: its overflow was once named
// goroutine 0, the id its G had just been given back.
static void run_overrun_to_exit(void *arg) {
  (void)arg;
  EXPECT(gort_go(overrun_then_return, NULL) == 0);
  for (;;) gort_yield();
}

INNER_TEST(canary_guard_inner) {
  EXPECT(gort__stack_guard_mode == 2, "mode %d", gort__stack_guard_mode);
  EXPECT(harness_expect_fatal(run_overrun_to_exit, NULL, "gort: fatal error: goroutine 1 stack overflow"));
  EXPECT(harness_expect_fatal(run_overrun, NULL, "gort: fatal error: goroutine 1 stack overflow"));
  depth_kib = 40;
  run_deep(NULL);
}

TEST(a_canary_reports_an_overflow_at_the_next_switch) {
  EXPECT(harness_run_inner("canary_guard_inner", "GORT_DEBUG=stackguard=2"));
}

// ---- transparent huge pages -------------------------------------------------------------------
//
// Where THP is "always", a goroutine's first touch would fault in 2 MiB
// (stack.c): every stack slab must carry MADV_NOHUGEPAGE, which smaps
// shows as the "nh" flag of the mapping that holds a goroutine's stack.

static _Atomic uintptr_t thp_sp;

static void thp_probe(void *arg) {
  volatile char here = 0;
  atomic_store(&thp_sp, (uintptr_t)&here);
  gort_waitgroup_done(arg);
}

static bool mapping_has_flag(uintptr_t addr, const char *flag) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return false;
  char line[512];
  bool in = false, found = false;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
      in = addr >= lo && addr < hi;
      continue;
    }
    if (in && strncmp(line, "VmFlags:", 8) == 0) {
      char *tok = strtok(line + 8, " \n");
      for (; tok != NULL; tok = strtok(NULL, " \n"))
        if (strcmp(tok, flag) == 0) found = true;
      break;
    }
  }
  fclose(f);
  return found;
}

TEST(goroutine_stacks_are_never_transparent_huge_pages) {
  gort_waitgroup_t wg = {0};
  gort_waitgroup_add(&wg, 1);
  EXPECT(gort_go(thp_probe, &wg) == 0);
  gort_waitgroup_wait(&wg);
  uintptr_t sp = atomic_load(&thp_sp);
  EXPECT(sp != 0);
  EXPECT(mapping_has_flag(sp, "nh"), "the stack at %#lx lacks MADV_NOHUGEPAGE", (unsigned long)sp);
}
