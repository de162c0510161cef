// Unit tests of the stack capture (obs/unwind.c): it must return the same
// frames as glibc's backtrace() from the same place, through code with and
// without frame pointers, inside libc, in threads, in a forked child, in a
// signal handler and in a library loaded after start-up; and stop without
// faulting where a frame cannot be unwound. The last case prints ns per
// capture against backtrace() (printed, not asserted).
//
// Alignment: backtrace()'s first entry is the call site of backtrace() and
// ours is the call site of gort__unwind_capture, both in snap(); from the
// second entry on the lists must be equal. Under ThreadSanitizer, which
// intercepts backtrace(), its list starts one frame deeper, in the
// interceptor; compare() finds the offset instead of assuming 1. TSan also
// replaces qsort with its own, so no libc frame is on that stack there.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "obs/unwind.h"
#include "test.h"

#define MAXF 64

typedef struct {
  uintptr_t ours[MAXF];
  uint32_t nours;
  void *bt[MAXF];
  int nbt;
} snap_t;

static __thread volatile int sink;  // keeps calls from being tail calls

// Both captures from one frame, so every frame above is shared.
static __attribute__((noinline)) void snap(snap_t *s) {
  s->nours = gort__unwind_capture(s->ours, MAXF);
  s->nbt = backtrace(s->bt, MAXF);
  sink++;
}

static void dump(const snap_t *s, char *buf, size_t size) {
  size_t k = 0;
  uint32_t n = s->nours > (uint32_t)s->nbt ? s->nours : (uint32_t)s->nbt;
  for (uint32_t i = 0; i < n && k + 64 < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "\n    %2u  ours %#14lx  bt %#14lx", i,
                          i < s->nours ? (unsigned long)s->ours[i] : 0UL,
                          i < (uint32_t)s->nbt ? (unsigned long)s->bt[i] : 0UL);
}

// Returns the offset of ours[1] in bt, or -1 if the lists do not line up.
// prefix: ours may stop early (or go on) where backtrace() does not; only
// the frames both have must agree.
static int compare(const snap_t *s, bool prefix) {
  if (s->nours < 2) return -1;
  int j = 1;
  while (j < s->nbt && j <= 2 && (uintptr_t)s->bt[j] != s->ours[1]) j++;
  if (j >= s->nbt || j > 2) return -1;
  // Both first entries are call sites in snap(): a few instructions apart.
  uintptr_t a = s->ours[0], b = (uintptr_t)s->bt[j - 1];
  if ((a > b ? a - b : b - a) > 64) return -1;
  uint32_t nbt = (uint32_t)(s->nbt - j + 1);
  if (!prefix && s->nours != nbt) return -1;
  for (uint32_t i = 1; i < s->nours && i < nbt; i++)
    if (s->ours[i] != (uintptr_t)s->bt[j - 1 + i]) return -1;
  return j;
}

static void check(const snap_t *s, bool prefix, const char *what) {
  if (compare(s, prefix) >= 0) return;
  char buf[4096];
  dump(s, buf, sizeof buf);
  harness_fail(__FILE__, __LINE__, "%s: ours (%u frames) != backtrace (%d frames):%s", what,
               s->nours, s->nbt, buf);
}

// ---- chains of distinct functions, with and without frame pointers -----------

typedef void (*leaf_fn)(void *arg);
typedef void (*link_fn)(int n, leaf_fn leaf, void *arg);
static inline __attribute__((always_inline)) void chain(int n, leaf_fn leaf, void *arg);

#define FP __attribute__((noinline, optimize("no-omit-frame-pointer")))
#define NOFP __attribute__((noinline, optimize("omit-frame-pointer")))

static FP void link_fp(int n, leaf_fn leaf, void *arg) {
  if (n == 0) leaf(arg);
  else chain(n - 1, leaf, arg);
  sink++;  // no tail call: keep this frame
}

static NOFP void link_nofp(int n, leaf_fn leaf, void *arg) {
  if (n == 0) leaf(arg);
  else chain(n - 1, leaf, arg);
  sink += 2;
}

// A frame of several KiB addressed from rbp.
static FP void link_fp_big(int n, leaf_fn leaf, void *arg) {
  volatile char buf[6000];
  buf[n] = 1;
  if (n == 0) leaf(arg);
  else chain(n - 1, leaf, arg);
  sink += buf[n];
}

// A 200 KiB frame addressed from rsp: too big for a cache word, so its rule
// is recomputed on every walk.
static NOFP void link_nofp_huge(int n, leaf_fn leaf, void *arg) {
  volatile char buf[200 << 10];
  buf[n] = 1;
  if (n == 0) leaf(arg);
  else chain(n - 1, leaf, arg);
  sink += buf[n];
}

static int nlinks = 5;  // 4: leave out link_nofp_huge

// Inlined into each link, so a chain of n links is n + 1 frames.
static inline __attribute__((always_inline)) void chain(int n, leaf_fn leaf, void *arg) {
  static const link_fn links[] = {link_fp, link_nofp, link_fp_big, link_nofp, link_nofp_huge};
  links[n % nlinks](n, leaf, arg);
}

static void leaf_snap(void *arg) { snap(arg); }

TEST(capture_matches_backtrace_with_and_without_frame_pointers) {
  gort__unwind_init();
  for (int round = 0; round < 2; round++) {  // cold cache, then warm
    for (int depth = 0; depth < 30; depth++) {
      snap_t s;
      chain(depth, leaf_snap, &s);
      char what[64];
      snprintf(what, sizeof what, "depth %d round %d", depth, round);
      check(&s, false, what);
      EXPECT(s.nours >= (uint32_t)depth + 5, "%s: only %u frames", what, s.nours);
    }
  }
}

TEST(capture_works_before_init) {
  // No cache and no module snapshot: every rule is computed, and modules
  // come from _dl_find_object.
  snap_t s;
  chain(7, leaf_snap, &s);
  check(&s, false, "before init");
}

TEST(capture_stops_at_max) {
  gort__unwind_init();
  snap_t s;
  chain(10, leaf_snap, &s);
  for (uint32_t max = 0; max < 6; max++) {
    uintptr_t pcs[8] = {0};
    uint32_t n = gort__unwind_capture(pcs, max);
    EXPECT_EQ_U64(n, max, "max %u", max);
  }
  EXPECT(s.nours > 15);
}

// ---- through libc ---------------------------------------------------------------

static snap_t qsort_snap;
static int qsort_calls;

static int compare_ints(const void *a, const void *b) {
  if (qsort_calls++ == 0) snap(&qsort_snap);
  return *(const int *)a - *(const int *)b;
}

static void leaf_qsort(void *arg) {
  (void)arg;
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
  qsort_calls = 0;
  qsort(v, 64, sizeof v[0], compare_ints);
}

TEST(capture_matches_backtrace_from_a_qsort_comparator) {
  gort__unwind_init();
  for (int depth = 0; depth < 8; depth += 3) {
    chain(depth, leaf_qsort, NULL);
    check(&qsort_snap, false, "qsort comparator");
#ifndef __SANITIZE_THREAD__
    // The comparator's caller is in libc, which has no frame pointers.
    Dl_info info;
    EXPECT(dladdr((void *)qsort_snap.ours[2], &info) && strstr(info.dli_fname, "libc.so"),
           "frame 2 is not in libc");
#endif
  }
}

// ---- threads, fork, signals ----------------------------------------------------

static _Atomic int thread_failures;

static void *thread_main(void *arg);
#define thread_root_fn thread_main

// Each thread's walks end at a root frame (obs/unwind.h,
// gort__unwind_set_root, which gort's own pthread_create trampoline sets
// too; a binary that does not link gc/stw.c, as this one in the
// ThreadSanitizer build, starts its threads without it): the capture is
// backtrace's list up to the return address into thread_main, without
// the frames below it (glibc's start_thread and clone3 at least).
static __attribute__((noinline)) void thread_body(uint64_t seed) {
  for (int i = 0; i < 300; i++) {
    snap_t s;
    int depth = (int)(test_rand(&seed) % 24);
    chain(depth, leaf_snap, &s);
    int j = compare(&s, true);
    uintptr_t last = s.nours > 0 ? s.ours[s.nours - 1] : 0;
    if (j < 0 || (int)s.nours + 2 > s.nbt - j + 1 || last < (uintptr_t)thread_root_fn ||
        last >= (uintptr_t)thread_root_fn + 256)
      atomic_fetch_add(&thread_failures, 1);
  }
}

static FP void *thread_main(void *arg) {
  gort__unwind_set_root((uintptr_t)__builtin_frame_address(0));
  thread_body((uintptr_t)arg);
  sink++;  // no tail call: this frame stays the root
  return NULL;
}

TEST(capture_matches_backtrace_in_many_threads_at_once) {
  gort__unwind_init();
  enum { N = 6 };
  pthread_t t[N];
  for (uintptr_t i = 0; i < N; i++)
    EXPECT(pthread_create(&t[i], NULL, thread_main, (void *)(harness_seed() + i)) == 0);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  EXPECT_EQ_U64(atomic_load(&thread_failures), 0, "of %d captures", N * 300);
}

static void leaf_fork(void *arg) {
  int *status = arg;
  pid_t pid = fork();
  if (pid == 0) {
    snap_t s;
    chain(9, leaf_snap, &s);
    _exit(compare(&s, false) >= 0 && s.nours > 12 ? 0 : 1);
  }
  waitpid(pid, status, 0);
}

TEST(capture_matches_backtrace_in_a_forked_child) {
  gort__unwind_init();
  int status = -1;
  chain(4, leaf_fork, &status);
  EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

static snap_t signal_snap;

static void on_signal(int sig) {
  (void)sig;
  snap(&signal_snap);
}

static void leaf_raise(void *arg) {
  (void)arg;
  raise(SIGUSR1);
}

// backtrace()'s first call loads libgcc_s, which allocates: not in a handler.
static void prime_backtrace(void) {
  void *tmp[2];
  backtrace(tmp, 2);
}

TEST(capture_matches_backtrace_in_a_signal_handler) {
  gort__unwind_init();
  prime_backtrace();
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGUSR1, &sa, NULL);
  chain(6, leaf_raise, NULL);
  // Through the signal frame (glibc's __restore_rt) into raise() and on.
  check(&signal_snap, false, "in a signal handler");
  EXPECT(signal_snap.nours > 12, "stopped at the signal frame: %u frames", signal_snap.nours);
}

TEST(capture_in_a_handler_on_an_alternate_stack_stops_at_the_signal_frame) {
  gort__unwind_init();
  prime_backtrace();
  stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
  ASSERT_NOT_NULL(ss.ss_sp);
  sigaltstack(&ss, NULL);
  struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_ONSTACK};
  sigaction(SIGUSR1, &sa, NULL);
  chain(6, leaf_raise, NULL);
  // Frames on the other stack are not followed (see unwind.c): a prefix.
  check(&signal_snap, true, "on an alternate stack");
  EXPECT(signal_snap.nours >= 3 && (int)signal_snap.nours < signal_snap.nbt, "ours %u, backtrace %d",
         signal_snap.nours, signal_snap.nbt);
}

// ---- frames outside the compact rules ----------------------------------------------

// Assembly without CFI: call fn(arg) with rbp set to bp, or, if bp is 0, as
// an ordinary frame-pointer frame.
void call_without_cfi(leaf_fn fn, void *arg, uintptr_t bp);
__asm__(".text\n"
        ".globl call_without_cfi\n"
        ".type call_without_cfi, @function\n"
        "call_without_cfi:\n"
        "  pushq %rbp\n"
        "  movq %rsp, %rbp\n"
        "  testq %rdx, %rdx\n"
        "  cmovnzq %rdx, %rbp\n"
        "  movq %rdi, %rax\n"
        "  movq %rsi, %rdi\n"
        "  call *%rax\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size call_without_cfi, .-call_without_cfi\n");

// The same frame with CFI whose CFA is an expression (DW_OP_breg6 16:
// rbp + 16), as in stack-realigning functions: libgcc evaluates it, and
// unwind.c follows rbp instead.
void call_with_cfa_expression(leaf_fn fn, void *arg);
__asm__(".text\n"
        ".globl call_with_cfa_expression\n"
        ".type call_with_cfa_expression, @function\n"
        "call_with_cfa_expression:\n"
        "  .cfi_startproc\n"
        "  pushq %rbp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset %rbp, -16\n"
        "  movq %rsp, %rbp\n"
        "  .cfi_escape 0x0f, 0x02, 0x76, 0x10\n"
        "  movq %rdi, %rax\n"
        "  movq %rsi, %rdi\n"
        "  call *%rax\n"
        "  popq %rbp\n"
        "  .cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size call_with_cfa_expression, .-call_with_cfa_expression\n");

static NOFP void leaf_cfa_expression(void *arg) {
  call_with_cfa_expression(leaf_snap, arg);
  sink++;
}

TEST(capture_follows_rbp_where_the_cfa_is_an_expression) {
  gort__unwind_init();
  snap_t s;
  chain(5, leaf_cfa_expression, &s);
  check(&s, false, "cfa expression");
  EXPECT(s.nours > 12, "%u frames", s.nours);
}

typedef struct {
  uintptr_t bp;
  snap_t s, outer;
} nocfi_t;

static FP void leaf_nocfi(void *arg) {
  nocfi_t *t = arg;
  snap(&t->outer);
  call_without_cfi(leaf_snap, &t->s, t->bp);
  sink++;
}

TEST(capture_follows_rbp_through_a_frame_without_cfi) {
  gort__unwind_init();
  nocfi_t t = {.bp = 0};
  chain(3, leaf_nocfi, &t);
  // backtrace() stops at the frame without an FDE; ours goes on by rbp.
  check(&t.s, true, "without cfi");
  // ours[k] and outer.ours[1] are two call sites in leaf_nocfi; above them
  // both lists are leaf_nocfi's callers.
  uint32_t k = (uint32_t)(t.s.nbt - compare(&t.s, true) + 1);
  EXPECT(t.s.nours == k + t.outer.nours - 1, "ours %u frames, backtrace %d, outer %u", t.s.nours,
         t.s.nbt, t.outer.nours);
  for (uint32_t i = 1; i + 1 < t.outer.nours && k + i < t.s.nours; i++)
    EXPECT(t.s.ours[k + i] == t.outer.ours[i + 1], "frame %u", k + i);
}

TEST(capture_stops_safely_at_a_bad_frame_pointer) {
  gort__unwind_init();
  void *none = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uintptr_t here = (uintptr_t)&none;
  uintptr_t bad[] = {1,           8,           (uintptr_t)none + 4096, here - 4096,
                     here + (64 << 20), (uintptr_t)-16, (uintptr_t)1 << 47};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    nocfi_t t = {.bp = bad[i]};
    chain(2, leaf_nocfi, &t);
    check(&t.s, false, "bad rbp");  // both stop at the frame without CFI
  }
}

// ---- a library loaded after init ---------------------------------------------------

typedef int (*unwind_backtrace_fn)(int (*)(void *, void *), void *);
static snap_t lib_snap;

static int on_unwind_frame(void *ctx, void *arg) {
  (void)ctx, (void)arg;
  snap(&lib_snap);
  return 5;  // _URC_END_OF_STACK: one frame is enough
}

TEST(capture_unwinds_a_library_loaded_after_init) {
  bool fresh = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD) == NULL;
  gort__unwind_init();
  void *h = dlopen("libgcc_s.so.1", RTLD_NOW);
  ASSERT_NOT_NULL(h, "%s", dlerror());
  unwind_backtrace_fn ub = (unwind_backtrace_fn)dlsym(h, "_Unwind_Backtrace");
  ASSERT_NOT_NULL(ub);
  ub(on_unwind_frame, NULL);  // calls back from inside libgcc_s
  check(&lib_snap, false, "callback from libgcc_s");
  Dl_info info;
  EXPECT(dladdr((void *)lib_snap.ours[2], &info) && strstr(info.dli_fname, "libgcc_s"),
         "frame 2 is not in libgcc_s");
  if (!fresh) printf("  note: libgcc_s was loaded before init\n");
}

// ---- speed ---------------------------------------------------------------------------

typedef struct {
  int iters;
  bool bt;
  uint32_t depth;
  int64_t ns;
} timing_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void leaf_time(void *arg) {
  timing_t *t = arg;
  uintptr_t pcs[MAXF];
  void *raw[MAXF];
  int64_t t0 = now_ns();
  for (int i = 0; i < t->iters; i++) {
    if (t->bt) t->depth = (uint32_t)backtrace(raw, MAXF);
    else t->depth = gort__unwind_capture(pcs, MAXF);
  }
  t->ns = now_ns() - t0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

// Median ns per capture of 5 runs at a chain depth (warm: one run first).
static double time_capture(int chain_depth, bool bt, uint32_t *depth) {
  int64_t runs[5];
  timing_t t = {.iters = 100, .bt = bt};
  chain(chain_depth, leaf_time, &t);
  t.iters = bt ? 5000 : 50000;
  for (int r = 0; r < 5; r++) {
    chain(chain_depth, leaf_time, &t);
    runs[r] = t.ns;
  }
  qsort(runs, 5, sizeof runs[0], cmp_i64);
  *depth = t.depth;
  return (double)runs[2] / t.iters;
}

TEST(capture_speed_against_backtrace) {
  gort__unwind_init();
  static const int chains[] = {2, 12};  // 10 and 20 frames in all
  nlinks = 4;  // link_nofp_huge's rule is recomputed on every walk: keep it out
  for (int i = 0; i < 2; i++) {
    uint32_t d1, d2;
    double ours = time_capture(chains[i], false, &d1), theirs = time_capture(chains[i], true, &d2);
    printf("  unwind: depth %u: gort__unwind_capture %.0f ns, backtrace %.0f ns (%.1fx)\n", d1,
           ours, theirs, theirs / ours);
    EXPECT(d1 + 1 >= (uint32_t)d2, "ours %u frames, backtrace %u", d1, d2);
  }
}
