// Roots: an object reachable from only one kind of root survives every
// cycle while that root holds it, with its contents intact, and is
// collected by the first cycle after the root lets go.
//
// Kinds: a global, a static local, a TLS variable (of the main thread and
// of another thread), callee-saved registers only (of the collecting thread
// across gort_gc_collect, and of another thread spinning with the pointers
// in registers), another thread's stack while it is blocked in read() or in
// pthread_cond_wait, the stack of a thread gort did not start that called
// gort_gc_register_thread, a range registered with gort_gc_add_roots, an
// uncollectable object, and a global of a library dlopen'ed after the
// first cycle. Memory from gort_malloc is not a root.
//
// Collection is seen through weak pointers: gort_gc_weak_get reads NULL
// right after the cycle that found the object unreachable. Each case uses
// K objects; where a stale copy of an address may stay in a register or a
// dead stack slot that the collector scans (see gctest.h), it requires
// most of them (K - SLACK), not all, to be collected.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gc/gc.h"
#include "gctest.h"
#include "gort/alloc.h"
#include "gort/metrics.h"

enum { K = 16, SLACK = 4, OBJ_SIZE = 200 };

static gort_weak_t *weak[K];  // the handles are reachable; their targets are not through them
static void *handoff[K];      // objects on their way to the root under test

typedef void (*store_fn)(int i, void *obj);
typedef void *(*load_fn)(int i);

static uint64_t tag_of(int i) { return 0x5150 + (uint64_t)i; }

// Allocates the K objects, fills them and makes their weak handles; store
// puts object i where the case wants it (handoff when store is NULL).
static GCTEST_NOINLINE void make_objects(store_fn store) {
  for (int i = 0; i < K; i++) {
    void *p = gort_gc_alloc(OBJ_SIZE);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc(%d) failed", OBJ_SIZE);
    gctest_fill(p, OBJ_SIZE, tag_of(i));
    weak[i] = gort_gc_weak_make(p);
    if (store != NULL)
      store(i, p);
    else
      handoff[i] = p;
  }
}

// Whether object i is alive, reachable through load(i) when load is not
// NULL, and intact. Prints what is wrong.
static GCTEST_NOINLINE bool alive_and_intact(int i, load_fn load) {
  void *w = gort_gc_weak_get(weak[i]);
  if (w == NULL) {
    fprintf(stderr, "  object %d was collected while its root held it\n", i);
    return false;
  }
  if (load != NULL && load(i) != w) {
    fprintf(stderr, "  root %d holds %p, its weak pointer reads %p\n", i, load(i), w);
    return false;
  }
  if (!gctest_check(w, OBJ_SIZE, tag_of(i))) {
    fprintf(stderr, "  object %d at %p lost its contents\n", i, w);
    return false;
  }
  return true;
}

static GCTEST_NOINLINE int count_alive_and_intact(load_fn load) {
  int n = 0;
  for (int i = 0; i < K; i++) n += alive_and_intact(i, load);
  return n;
}

static void expect_survives_cycles(load_fn load, const char *root) {
  for (int round = 0; round < 3; round++) {
    gctest_collect();
    int alive = count_alive_and_intact(load);
    EXPECT_EQ_U64(alive, K, "objects alive and intact after cycle %d, held by %s", round + 1, root);
  }
}

// One cycle after `when`: most of the K objects must be gone.
static void expect_collected(const char *when) {
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d objects collected after %s", cleared, K, when);
}

static void expect_collected_once_cleared(const char *root) {
  char when[128];
  snprintf(when, sizeof when, "%s let go of them", root);
  expect_collected(when);
}

// The whole story for a root that store and load reach from this thread.
static void check_root(store_fn store, load_fn load, const char *root) {
  make_objects(store);
  expect_survives_cycles(load, root);
  for (int i = 0; i < K; i++) store(i, NULL);
  expect_collected_once_cleared(root);
}

// ---- globals, static locals, TLS -------------------------------------------------

static void *global_slot[K];
static void store_global(int i, void *p) { global_slot[i] = p; }
static void *load_global(int i) { return global_slot[i]; }

TEST(a_global_keeps_an_object_alive_until_cleared) {
  check_root(store_global, load_global, "a global");
}

// Two 32-bit ints side by side read as one word. Pairs {x, 64} are common
// (sizes, counts), and while the heap started at 64 << 32 every such pair
// whose x matched an object's low half kept that object (glibc's own data
// holds some). The heap now starts where the second int would have to be
// 1475 (src/alloc/mheap.c), so the same pairs keep nothing.
static volatile uint32_t int_pairs[K][2] __attribute__((aligned(8)));  // aligned as a struct of two ints
static void store_int_pair(int i, void *p) {
  int_pairs[i][0] = (uint32_t)(uintptr_t)p;
  int_pairs[i][1] = 64;
}

TEST(pairs_of_small_ints_do_not_keep_objects_alive) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer's frames leave the objects' addresses on the stack");
  make_objects(store_int_pair);
  expect_collected("only pairs of ints {low half, 64} match them");
}

static void **static_local_slots(void) {
  static void *slots[K];
  return slots;
}
static void store_static_local(int i, void *p) { static_local_slots()[i] = p; }
static void *load_static_local(int i) { return static_local_slots()[i]; }

TEST(a_static_local_keeps_an_object_alive_until_cleared) {
  check_root(store_static_local, load_static_local, "a static local");
}

static __thread void *volatile tls_slot[K];
static void store_tls(int i, void *p) { tls_slot[i] = p; }
static void *load_tls(int i) { return tls_slot[i]; }

TEST(a_tls_variable_of_the_main_thread_keeps_an_object_alive_until_cleared) {
  check_root(store_tls, load_tls, "a TLS variable");
}

// ---- another thread's stack, TLS, registered or not ------------------------------

enum { HOLD_STACK, HOLD_TLS };
enum { BLOCK_PIPE, BLOCK_CONDVAR };
enum { CMD_NONE, CMD_TAKE, CMD_VERIFY, CMD_CLEAR, CMD_EXIT };

// A thread that holds the objects on its stack or in its TLS and, between
// commands, is blocked in read() on a pipe or in pthread_cond_wait.
typedef struct {
  int where, block;
  bool self_register;  // started behind gort's back: registers itself
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int cmd, reply;  // guarded by lock
  bool replied;
  int wake[2];  // BLOCK_PIPE: the thread sleeps in read(wake[0])
} holder_t;

static int wait_command(holder_t *h) {
  if (h->block == BLOCK_PIPE) {
    char c;
    ssize_t r;
    while ((r = read(h->wake[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (r != 1) harness_fail(__FILE__, __LINE__, "holder: read: %s", strerror(errno));
  }
  pthread_mutex_lock(&h->lock);
  while (h->cmd == CMD_NONE) pthread_cond_wait(&h->cond, &h->lock);
  int cmd = h->cmd;
  h->cmd = CMD_NONE;
  pthread_mutex_unlock(&h->lock);
  return cmd;
}

static void reply(holder_t *h, int v) {
  pthread_mutex_lock(&h->lock);
  h->reply = v;
  h->replied = true;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

static GCTEST_NOINLINE int verify_slots(void *volatile *slots) {
  int ok = 0;
  for (int i = 0; i < K; i++) ok += slots[i] != NULL && gctest_check(slots[i], OBJ_SIZE, tag_of(i));
  return ok;
}

static void *holder_main(void *arg) {
  holder_t *h = arg;
  if (h->self_register) gort_gc_register_thread();
  void *volatile stack_slots[K] = {0};
  void *volatile *slots = h->where == HOLD_STACK ? stack_slots : tls_slot;
  for (;;) {
    int cmd = wait_command(h);
    if (cmd == CMD_EXIT) break;
    int result = 1;
    switch (cmd) {
      case CMD_TAKE:
        for (int i = 0; i < K; i++)
          slots[i] = __atomic_exchange_n(&handoff[i], NULL, __ATOMIC_SEQ_CST);
        break;
      case CMD_VERIFY:
        result = verify_slots(slots);
        break;
      case CMD_CLEAR:
        for (int i = 0; i < K; i++) slots[i] = NULL;
        break;
    }
    gctest_clobber_stack();  // no stale copies below the frame that blocks
    reply(h, result);
  }
  if (h->self_register) gort_gc_unregister_thread();
  return NULL;
}

static int command(holder_t *h, int cmd) {
  pthread_mutex_lock(&h->lock);
  h->cmd = cmd;
  h->replied = false;
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
  if (h->block == BLOCK_PIPE && write(h->wake[1], "x", 1) != 1)
    harness_fail(__FILE__, __LINE__, "write: %s", strerror(errno));
  if (cmd == CMD_EXIT) return 0;
  pthread_mutex_lock(&h->lock);
  while (!h->replied) pthread_cond_wait(&h->cond, &h->lock);
  int r = h->reply;
  pthread_mutex_unlock(&h->lock);
  return r;
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static void check_holder_thread(int where, int block, create_fn create, const char *root) {
  holder_t h = {.where = where, .block = block, .self_register = create != pthread_create};
  pthread_mutex_init(&h.lock, NULL);
  pthread_cond_init(&h.cond, NULL);
  if (pipe(h.wake) != 0) harness_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
  pthread_t t;
  if (create(&t, NULL, holder_main, &h) != 0)
    harness_fail(__FILE__, __LINE__, "thread creation failed");
  make_objects(NULL);
  command(&h, CMD_TAKE);
  expect_survives_cycles(NULL, root);
  EXPECT_EQ_U64(command(&h, CMD_VERIFY), K, "objects intact as %s sees them", root);
  command(&h, CMD_CLEAR);
  expect_collected_once_cleared(root);
  command(&h, CMD_EXIT);
  pthread_join(t, NULL);
}

TEST(another_threads_stack_keeps_objects_alive_while_it_blocks_in_read) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  check_holder_thread(HOLD_STACK, BLOCK_PIPE, pthread_create, "a thread blocked in read()");
}

TEST(another_threads_stack_keeps_objects_alive_while_it_waits_on_a_condition) {
  check_holder_thread(HOLD_STACK, BLOCK_CONDVAR, pthread_create, "a thread in pthread_cond_wait");
}

TEST(another_threads_tls_keeps_objects_alive_while_it_blocks) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  check_holder_thread(HOLD_TLS, BLOCK_PIPE, pthread_create, "another thread's TLS");
}

// pthread_create as libc (or the sanitizer) has it, bypassing gort's: the
// thread is one gort did not see start, and registers itself.
// A thread whose signal handlers run on an alternate stack, for long
// enough that the collector's stop signal lands inside one. It parked
// there, publishing a stack pointer on the alternate stack, and the root
// scan read from it up to the thread's own stack's top, across unmapped
// memory: every run of a hostile test crashed. It now stops once back on
// its stack (the stop signals it again), and what only its stack holds
// survives.
static _Atomic bool alt_stop, alt_in_handler;
static _Atomic long alt_handled;

static void alt_handler(int sig) {
  (void)sig;
  atomic_store(&alt_in_handler, true);
  double until = gctest_now() + 1e-3;  // a long handler, on the alternate stack
  while (gctest_now() < until) {
  }
  atomic_fetch_add(&alt_handled, 1);
  atomic_store(&alt_in_handler, false);
}

static void *alt_thread(void *arg) {
  (void)arg;
  size_t size = 64 << 10;
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return (void *)"mmap";
  stack_t ss = {.ss_sp = mem, .ss_size = size}, off = {.ss_flags = SS_DISABLE};
  if (sigaltstack(&ss, NULL) != 0) return (void *)"sigaltstack";
  uint64_t *volatile only = gort_gc_alloc_noscan(64);  // only on this stack
  for (int i = 0; i < 8; i++) only[i] = 0x5a17000000000000ull + (uint64_t)i;
  while (!atomic_load(&alt_stop)) {
  }
  const char *bad = NULL;
  for (int i = 0; i < 8; i++)
    if (only[i] != 0x5a17000000000000ull + (uint64_t)i) bad = "the object only its stack held was freed";
  sigaltstack(&off, NULL);
  munmap(mem, size);
  return (void *)bad;
}

TEST(a_stop_signal_inside_a_handler_on_an_alternate_stack_waits_for_the_handler) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds signals back from a thread that spins outside its interceptors");
  struct sigaction sa = {.sa_handler = alt_handler, .sa_flags = SA_ONSTACK | SA_RESTART}, old;
  sigemptyset(&sa.sa_mask);
  EXPECT(sigaction(SIGUSR1, &sa, &old) == 0, "sigaction");
  atomic_store(&alt_stop, false);
  atomic_store(&alt_handled, 0);
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, alt_thread, NULL) == 0, "pthread_create");
  int collections = 0;
  double until = gctest_now() + 0.5;
  while (gctest_now() < until) {
    pthread_kill(th, SIGUSR1);
    double t = gctest_now() + 0.1;
    while (!atomic_load(&alt_in_handler) && gctest_now() < t) {
    }
    gort_gc_collect();  // its stop signal lands in the handler
    collections++;
    while (atomic_load(&alt_in_handler) && gctest_now() < t) {
    }
  }
  atomic_store(&alt_stop, true);
  void *bad = NULL;
  pthread_join(th, &bad);
  sigaction(SIGUSR1, &old, NULL);
  printf("  %d collections, %ld handlers run\n", collections, atomic_load(&alt_handled));
  EXPECT(bad == NULL, "%s", bad ? (const char *)bad : "");
  EXPECT(collections >= 10, "collections ran");
}

TEST(a_thread_gort_did_not_start_is_scanned_once_registered) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  create_fn real_create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
  SKIP_IF(real_create == NULL, "no pthread_create after the program's own");
  check_holder_thread(HOLD_STACK, BLOCK_PIPE, real_create, "a self-registered thread");
}

// ---- registers only --------------------------------------------------------------

// Five callee-saved registers, each holding one object; nothing else holds
// them. The objects come straight from handoff with an atomic exchange, so
// no call leaves a copy on the stack.
#if defined(__x86_64__)
#define REG0 "rbx"
#define REG1 "r12"
#define REG2 "r13"
#define REG3 "r14"
#define REG4 "r15"
#elif defined(__aarch64__)
#define REG0 "x19"
#define REG1 "x20"
#define REG2 "x21"
#define REG3 "x22"
#define REG4 "x23"
#endif
enum { NREGS = 5, REG_SLACK = 2 };

#ifdef REG0
#define TAKE_INTO_REGISTERS()                                                                 \
  register void *r0 __asm__(REG0) = __atomic_exchange_n(&handoff[0], NULL, __ATOMIC_SEQ_CST); \
  register void *r1 __asm__(REG1) = __atomic_exchange_n(&handoff[1], NULL, __ATOMIC_SEQ_CST); \
  register void *r2 __asm__(REG2) = __atomic_exchange_n(&handoff[2], NULL, __ATOMIC_SEQ_CST); \
  register void *r3 __asm__(REG3) = __atomic_exchange_n(&handoff[3], NULL, __ATOMIC_SEQ_CST); \
  register void *r4 __asm__(REG4) = __atomic_exchange_n(&handoff[4], NULL, __ATOMIC_SEQ_CST)
#define KEEP_REGISTERS() __asm__ volatile("" : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4))
#define CLEAR_REGISTERS() (r0 = r1 = r2 = r3 = r4 = NULL)
#endif

static int registers_collected(void) {
  int n = 0;
  for (int i = 0; i < NREGS; i++) n += gort_gc_weak_get(weak[i]) == NULL;
  return n;
}

static GCTEST_NOINLINE int count_registers_alive(void) {
  int n = 0;
  for (int i = 0; i < NREGS; i++) n += alive_and_intact(i, NULL);
  return n;
}

#ifdef REG0
// Whether the registers hold the very objects (a call, so that no copy
// stays in the holder's own frame).
static GCTEST_NOINLINE bool registers_hold(void *p0, void *p4) {
  return gort_gc_weak_get(weak[0]) == p0 && gort_gc_weak_get(weak[4]) == p4;
}

// Holds the objects in callee-saved registers across three calls of
// gort_gc_collect, then clears them and collects once more. Returns how
// many were alive after each cycle (at least) and sets *collected.
static GCTEST_NOINLINE int hold_in_own_registers(int *collected) {
  int alive = NREGS;
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  for (int round = 0; round < 3; round++) {
    gctest_collect();
    KEEP_REGISTERS();
    int n = count_registers_alive();
    KEEP_REGISTERS();
    if (n < alive) alive = n;
    if (!registers_hold(r0, r4)) alive = 0;
    KEEP_REGISTERS();
  }
  CLEAR_REGISTERS();
  KEEP_REGISTERS();
  // Copies linger in vector registers too (gctest.h); under the mprotect
  // backend a fault inside the collect saves them in a signal frame below
  // the caller, where the cycle's scan of this thread's stack finds them.
  gctest_clear_vector_registers();
  gctest_collect();
  *collected = registers_collected();
  KEEP_REGISTERS();
  return alive;
}
#endif

TEST(callee_saved_registers_of_the_collecting_thread_are_roots) {
#ifndef REG0
  SKIP_IF(true, "no register names for this architecture");
#else
  make_objects(NULL);
  gctest_clobber_stack();
  int collected;
  int alive = hold_in_own_registers(&collected);
  EXPECT_EQ_U64(alive, NREGS, "objects held only in registers across gort_gc_collect");
  EXPECT(collected >= NREGS - REG_SLACK, "only %d of %d collected after the registers were cleared",
         collected, NREGS);
#endif
}

#ifdef REG0
static _Atomic int spin_state;  // 0 take, 1 holding, 2 please clear, 3 cleared, 4 exit

// Spins with the objects in registers and no call at all, so that the only
// copies are in the registers the stop signal saves.
static GCTEST_NOINLINE void *spin_with_registers(void *arg) {
  (void)arg;
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&spin_state, 1);
  while (atomic_load(&spin_state) == 1) KEEP_REGISTERS();
  CLEAR_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&spin_state, 3);
  while (atomic_load(&spin_state) != 4) KEEP_REGISTERS();
  return NULL;
}
#endif

#ifdef REG0
// Runs a thread that takes the objects into its registers (fn, stepping
// through *state as spin_with_registers does), checks them alive after
// each of rounds cycles, then has it clear them and checks most go.
static void check_registers_of_thread(void *(*fn)(void *), _Atomic int *state, int rounds, const char *who) {
  make_objects(NULL);
  pthread_t t;
  pthread_create(&t, NULL, fn, NULL);
  while (atomic_load(state) != 1) gctest_sleep_ms(1);
  for (int round = 0; round < rounds; round++) {
    gctest_collect();
    EXPECT_EQ_U64(count_registers_alive(), NREGS, "objects held only in %s's registers, cycle %d", who,
                  round + 1);
  }
  atomic_store(state, 2);
  while (atomic_load(state) != 3) gctest_sleep_ms(1);
  gctest_collect();
  int collected = registers_collected();
  atomic_store(state, 4);
  pthread_join(t, NULL);
  EXPECT(collected >= NREGS - REG_SLACK, "only %d of %d collected after the registers were cleared",
         collected, NREGS);
}
#endif

TEST(registers_of_a_running_thread_are_roots) {
#ifndef REG0
  SKIP_IF(true, "no register names for this architecture");
#else
  check_registers_of_thread(spin_with_registers, &spin_state, 3, "a running thread");
#endif
}

#ifdef REG0
static _Atomic int alloc_state;  // as spin_state

// As spin_with_registers, but allocating between looks: a stop asks the
// thread first (gc/stw.c, "Asking first"), and it parks at the end of its
// next allocation, where the registers are spilled by the deferred stop,
// not by a signal.
static GCTEST_NOINLINE void *alloc_with_registers(void *arg) {
  (void)arg;
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&alloc_state, 1);
  while (atomic_load(&alloc_state) == 1) {
    void *volatile p = gort_gc_alloc_noscan(48);
    (void)p;
    KEEP_REGISTERS();
  }
  CLEAR_REGISTERS();
  KEEP_REGISTERS();
  gctest_clobber_stack();
  atomic_store(&alloc_state, 3);
  while (atomic_load(&alloc_state) != 4) {
    void *volatile p = gort_gc_alloc_noscan(48);
    (void)p;
    KEEP_REGISTERS();
  }
  return NULL;
}
#endif

// The thread parks when asked, so most of its stops cost it no signal
// (before asking, every one did); a stop that finds it descheduled for
// long signals it, and the next few then do too, hence the bound.
TEST(registers_of_a_thread_that_allocates_are_roots_and_it_stops_without_a_signal) {
#ifndef REG0
  SKIP_IF(true, "no register names for this architecture");
#else
  uint64_t asked0 = gctest_metric_u64("/gort/gc/stops/asked:threads");
  uint64_t signalled0 = gctest_metric_u64("/gort/gc/stops/signalled:threads");
  check_registers_of_thread(alloc_with_registers, &alloc_state, 20, "an allocating thread");
  uint64_t asked = gctest_metric_u64("/gort/gc/stops/asked:threads") - asked0;
  uint64_t signalled = gctest_metric_u64("/gort/gc/stops/signalled:threads") - signalled0;
  printf("  threads stopped when asked %llu, signalled %llu\n", (unsigned long long)asked,
         (unsigned long long)signalled);
  // Under gcstress the thread runs a cycle at each of its refills, and
  // is the collector, or waits for its cycle, more often than it is asked.
  if (!gctest_gcstress())
    EXPECT(asked >= 5, "only %llu stops took the allocating thread when asked (%llu signalled it)",
           (unsigned long long)asked, (unsigned long long)signalled);
#endif
}

#ifdef REG0
static _Atomic int sleep_state;  // as spin_state
static _Atomic int sleep_eintr;  // sleeps a collection cut short

// As spin_with_registers, but asleep in nanosleep between looks: a stop
// takes the thread as blocked, without a signal (gc/stw.c), so the
// registers are the ones the sleep's wrapper saved in its frame.
static GCTEST_NOINLINE void *sleep_with_registers(void *arg) {
  (void)arg;
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&sleep_state, 1);
  while (atomic_load(&sleep_state) == 1) {
    struct timespec ts = {0, 200 * 1000};
    if (nanosleep(&ts, NULL) != 0) atomic_fetch_add(&sleep_eintr, 1);
    KEEP_REGISTERS();
  }
  CLEAR_REGISTERS();
  KEEP_REGISTERS();
  gctest_clobber_stack();  // the sleeps' frames, and a stop signal's, below this one
  atomic_store(&sleep_state, 3);
  while (atomic_load(&sleep_state) != 4) {
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
    KEEP_REGISTERS();
  }
  return NULL;
}
#endif

TEST(registers_of_a_sleeping_thread_are_roots) {
#ifndef REG0
  SKIP_IF(true, "no register names for this architecture");
#else
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the sleeps to its interceptors");
  check_registers_of_thread(sleep_with_registers, &sleep_state, 20, "a sleeping thread");
  // A stop that finds the thread between two sleeps signals it, and the
  // signal may land in the next sleep: a few, never one per cycle.
  EXPECT(atomic_load(&sleep_eintr) <= 3, "%d sleeps cut short (EINTR) by 21 collections",
         atomic_load(&sleep_eintr));
#endif
}

// A sleep outlasts the collections that run meanwhile: a stop takes the
// sleeper without the signal that used to end its nanosleep with EINTR.
static _Atomic int long_sleep_started, long_sleep_done;
static int long_sleep_result, long_sleep_errno;
static int64_t long_sleep_ns;

static void *sleep_long(void *arg) {
  (void)arg;
  struct timespec a, b, ts = {0, 300 * 1000 * 1000};
  atomic_store(&long_sleep_started, 1);
  clock_gettime(CLOCK_MONOTONIC, &a);
  long_sleep_result = nanosleep(&ts, NULL);
  long_sleep_errno = errno;
  clock_gettime(CLOCK_MONOTONIC, &b);
  long_sleep_ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  atomic_store(&long_sleep_done, 1);
  return NULL;
}

// Starts sleep_long and collects until it ends; returns the cycles run.
static int collect_through_a_long_sleep(void) {
  atomic_store(&long_sleep_started, 0);
  atomic_store(&long_sleep_done, 0);
  pthread_t t;
  pthread_create(&t, NULL, sleep_long, NULL);
  // Until it is in its sleep: on a loaded machine the new thread may not
  // even have started by the end of a fixed pause, and the collections
  // could all be over before it sleeps.
  for (int ms = 0; !atomic_load(&long_sleep_started) && ms < 5000; ms++) gctest_sleep_ms(1);
  gctest_sleep_ms(20);
  int cycles = 0;
  while (!atomic_load(&long_sleep_done) && cycles < 200) {
    gort_gc_collect();
    cycles++;
  }
  pthread_join(t, NULL);
  return cycles;
}

TEST(collections_do_not_cut_a_sleep_short) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the sleeps to its interceptors");
  int cycles = collect_through_a_long_sleep();
  EXPECT(cycles > 0, "no collection ran during the sleep");
  EXPECT(long_sleep_result == 0, "nanosleep returned %d (%s) after %d collections", long_sleep_result,
         strerror(long_sleep_errno), cycles);
  EXPECT(long_sleep_ns >= 300 * 1000 * 1000LL, "slept %lld ns of 300 ms", (long long)long_sleep_ns);
}

// The waits for descriptors the program calls are blocking calls as its
// sleeps are (gc/blocking.c): a thread waiting in epoll_wait holds its
// objects in the registers its wrapper saved, and no collection ends a
// wait with EINTR (none of poll, select and epoll_wait is restarted after
// a signal's handler).
#ifdef REG0
static _Atomic int epoll_state;  // as spin_state
static _Atomic int epoll_eintr;

static GCTEST_NOINLINE void *epoll_with_registers(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  struct epoll_event ev[2];
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&epoll_state, 1);
  while (atomic_load(&epoll_state) == 1) {
    if (epoll_wait(ep, ev, 2, 1) < 0) atomic_fetch_add(&epoll_eintr, 1);
    KEEP_REGISTERS();
  }
  CLEAR_REGISTERS();
  KEEP_REGISTERS();
  gctest_clobber_stack();  // the waits' frames, and a stop signal's, below this one
  atomic_store(&epoll_state, 3);
  while (atomic_load(&epoll_state) != 4) {
    epoll_wait(ep, ev, 2, 1);
    KEEP_REGISTERS();
  }
  close(ep);
  return NULL;
}
#endif

TEST(registers_of_a_thread_waiting_in_epoll_wait_are_roots) {
#ifndef REG0
  SKIP_IF(true, "no register names for this architecture");
#else
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  check_registers_of_thread(epoll_with_registers, &epoll_state, 20, "a thread in epoll_wait");
  EXPECT(atomic_load(&epoll_eintr) <= 3, "%d waits ended with EINTR by 21 collections",
         atomic_load(&epoll_eintr));
#endif
}

// One thread waits 300 ms in each call on a pipe nothing writes to
// (__poll_chk is poll under _FORTIFY_SOURCE, where the array's size is
// known and its count is not).
extern int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
enum { WAIT_POLL, WAIT_POLL_CHK, WAIT_SELECT, WAIT_EPOLL, WAITS };
static const char *const wait_names[WAITS] = {"poll", "__poll_chk", "select", "epoll_wait"};
static int wait_pipe[2];
static _Atomic int waits_started, waits_done;
static int wait_result[WAITS], wait_errno[WAITS];
static int64_t wait_ns[WAITS];

static void *wait_long(void *arg) {
  int kind = (int)(intptr_t)arg, r = -1;
  struct timespec a, b;
  atomic_fetch_add(&waits_started, 1);
  clock_gettime(CLOCK_MONOTONIC, &a);
  if (kind == WAIT_POLL) {
    struct pollfd p = {.fd = wait_pipe[0], .events = POLLIN};
    r = poll(&p, 1, 300);
  } else if (kind == WAIT_POLL_CHK) {
    struct pollfd p = {.fd = wait_pipe[0], .events = POLLIN};
    r = __poll_chk(&p, 1, 300, sizeof p);
  } else if (kind == WAIT_SELECT) {
    fd_set set;
    FD_ZERO(&set);
    FD_SET(wait_pipe[0], &set);
    struct timeval tv = {0, 300 * 1000};
    r = select(wait_pipe[0] + 1, &set, NULL, NULL, &tv);
  } else {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, wait_pipe[0], &ev);
    r = epoll_wait(ep, &ev, 1, 300);
    close(ep);
  }
  wait_errno[kind] = errno;
  clock_gettime(CLOCK_MONOTONIC, &b);
  wait_result[kind] = r;
  wait_ns[kind] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  atomic_fetch_add(&waits_done, 1);
  return NULL;
}

// Starts the waits and collects until they end; returns the cycles run.
static int collect_through_waits(void) {
  EXPECT(pipe(wait_pipe) == 0, "pipe: %s", strerror(errno));
  atomic_store(&waits_started, 0);
  atomic_store(&waits_done, 0);
  pthread_t t[WAITS];
  for (int k = 0; k < WAITS; k++) pthread_create(&t[k], NULL, wait_long, (void *)(intptr_t)k);
  // Until each is in its wait (as collect_through_a_long_sleep).
  for (int ms = 0; atomic_load(&waits_started) < WAITS && ms < 5000; ms++) gctest_sleep_ms(1);
  gctest_sleep_ms(20);
  int cycles = 0;
  while (atomic_load(&waits_done) < WAITS && cycles < 200) {
    gort_gc_collect();
    cycles++;
  }
  for (int k = 0; k < WAITS; k++) pthread_join(t[k], NULL);
  close(wait_pipe[0]);
  close(wait_pipe[1]);
  return cycles;
}

TEST(collections_do_not_end_waits_in_poll_select_or_epoll_wait) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  int cycles = collect_through_waits();
  EXPECT(cycles > 0, "no collection ran during the waits");
  for (int k = 0; k < WAITS; k++) {
    EXPECT(wait_result[k] == 0, "%s returned %d (%s) after %d collections", wait_names[k], wait_result[k],
           strerror(wait_errno[k]), cycles);
    EXPECT(wait_ns[k] >= 299 * 1000 * 1000LL, "%s waited %lld ns of 300 ms", wait_names[k], (long long)wait_ns[k]);
  }
}

// sem_timedwait as a blocking call (gc/blocking.c): a wait of 300 ms runs
// its whole time through collections (each one ended it with EINTR
// before), and a post still wakes it with 0.
static sem_t test_sem;
static _Atomic int sem_started, sem_done;
static int sem_result[2], sem_errno[2];
static int64_t sem_ns;

static void *sem_waiter(void *arg) {
  (void)arg;
  struct timespec a, b, deadline;
  clock_gettime(CLOCK_MONOTONIC, &a);
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += 300 * 1000 * 1000;
  if (deadline.tv_nsec >= 1000000000) deadline.tv_sec++, deadline.tv_nsec -= 1000000000;
  atomic_store(&sem_started, 1);
  sem_result[0] = sem_timedwait(&test_sem, &deadline);
  sem_errno[0] = errno;
  clock_gettime(CLOCK_MONOTONIC, &b);
  sem_ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  atomic_store(&sem_started, 2);
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  sem_result[1] = sem_timedwait(&test_sem, &deadline);  // posted during collections
  sem_errno[1] = errno;
  atomic_store(&sem_done, 1);
  return NULL;
}

TEST(collections_do_not_end_a_wait_in_sem_timedwait) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  EXPECT(sem_init(&test_sem, 0, 0) == 0);
  atomic_store(&sem_started, 0);
  atomic_store(&sem_done, 0);
  pthread_t t;
  pthread_create(&t, NULL, sem_waiter, NULL);
  for (int ms = 0; atomic_load(&sem_started) == 0 && ms < 5000; ms++) gctest_sleep_ms(1);
  gctest_sleep_ms(20);
  int cycles = 0;
  double give_up = gctest_now() + 10;
  while (atomic_load(&sem_started) == 1 && gctest_now() < give_up) {
    gort_gc_collect();
    cycles++;
  }
  for (int k = 0; k < 20; k++) gort_gc_collect();  // the second wait's
  sem_post(&test_sem);
  pthread_join(t, NULL);
  sem_destroy(&test_sem);
  EXPECT(cycles > 0, "no collection ran during the wait");
  EXPECT(sem_result[0] == -1 && sem_errno[0] == ETIMEDOUT, "sem_timedwait returned %d (%s) after %d collections",
         sem_result[0], strerror(sem_errno[0]), cycles);
  EXPECT(sem_ns >= 299 * 1000 * 1000LL, "waited %lld ns of 300 ms", (long long)sem_ns);
  EXPECT(sem_result[1] == 0, "the posted wait returned %d (%s)", sem_result[1], strerror(sem_errno[1]));
}

// The socket receives as blocking calls (gc/blocking.c, dirty_mprotect.c):
// with a receive timeout (SO_RCVTIMEO) the kernel ends recv, recvfrom and
// recvmsg with EINTR after any signal handler, SA_RESTART or not, so every
// collection's stop ended them early. Each waits out its 300 ms through
// collections and ends with EAGAIN; then a byte sent during collections
// wakes it.
#define RECVS 3
static const char *const recv_names[RECVS] = {"recv", "recvfrom", "recvmsg"};
static int recv_fd[RECVS][2];
static _Atomic int recv_started, recv_phase_done;
static ssize_t recv_result[RECVS][2];
static int recv_errno[RECVS][2];
static int64_t recv_ns[RECVS];

static ssize_t receive(int k, char *c) {
  struct iovec v = {c, 1};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  if (k == 0) return recv(recv_fd[k][0], c, 1, 0);
  if (k == 1) return recvfrom(recv_fd[k][0], c, 1, 0, NULL, NULL);
  return recvmsg(recv_fd[k][0], &m, 0);
}

static void *receiver(void *arg) {
  int k = (int)(intptr_t)arg;
  char c;
  struct timespec a, b;
  atomic_fetch_add(&recv_started, 1);
  clock_gettime(CLOCK_MONOTONIC, &a);
  recv_result[k][0] = receive(k, &c);
  recv_errno[k][0] = errno;
  clock_gettime(CLOCK_MONOTONIC, &b);
  recv_ns[k] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
  atomic_fetch_add(&recv_phase_done, 1);
  struct timeval tv = {10, 0};
  setsockopt(recv_fd[k][0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  recv_result[k][1] = receive(k, &c);  // sent to during collections
  recv_errno[k][1] = errno;
  return NULL;
}

TEST(collections_do_not_end_a_socket_receive_that_has_a_timeout) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the receives to its interceptors");
  atomic_store(&recv_started, 0);
  atomic_store(&recv_phase_done, 0);
  pthread_t t[RECVS];
  for (int k = 0; k < RECVS; k++) {
    EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, recv_fd[k]) == 0);
    struct timeval tv = {0, 300 * 1000};
    EXPECT(setsockopt(recv_fd[k][0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    pthread_create(&t[k], NULL, receiver, (void *)(intptr_t)k);
  }
  for (int ms = 0; atomic_load(&recv_started) < RECVS && ms < 5000; ms++) gctest_sleep_ms(1);
  gctest_sleep_ms(20);
  int cycles = 0;
  double give_up = gctest_now() + 10;
  while (atomic_load(&recv_phase_done) < RECVS && gctest_now() < give_up) {
    gort_gc_collect();
    cycles++;
  }
  gctest_sleep_ms(20);
  for (int k = 0; k < 20; k++) gort_gc_collect();  // the second receives'
  for (int k = 0; k < RECVS; k++) EXPECT(write(recv_fd[k][1], "x", 1) == 1);
  for (int k = 0; k < RECVS; k++) pthread_join(t[k], NULL);
  EXPECT(cycles > 0, "no collection ran during the receives");
  for (int k = 0; k < RECVS; k++) {
    EXPECT(recv_result[k][0] == -1 && (recv_errno[k][0] == EAGAIN || recv_errno[k][0] == EWOULDBLOCK),
           "%s returned %zd (%s) after %d collections", recv_names[k], recv_result[k][0],
           strerror(recv_errno[k][0]), cycles);
    EXPECT(recv_ns[k] >= 299 * 1000 * 1000LL, "%s waited %lld ns of 300 ms", recv_names[k], (long long)recv_ns[k]);
    EXPECT(recv_result[k][1] == 1, "%s, sent to: %zd (%s)", recv_names[k], recv_result[k][1],
           strerror(recv_errno[k][1]));
    close(recv_fd[k][0]);
    close(recv_fd[k][1]);
  }
}

// Once the program has a signal handler of its own, a stop signals its
// sleepers as it signals any thread (a handler could run, or siglongjmp,
// in a sleep the stop took as blocked: gc/blocking.c). The signal ends
// the sleep with EINTR, which is how this test sees the signal.
static void on_usr1(int sig) { (void)sig; }

TEST(sleeps_are_signalled_once_the_program_has_a_signal_handler) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the sleeps to its interceptors");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  collect_through_a_long_sleep();
  EXPECT(long_sleep_result == -1 && long_sleep_errno == EINTR,
         "nanosleep returned %d (%s): the stop did not signal the sleeper", long_sleep_result,
         strerror(long_sleep_errno));
  signal(SIGUSR1, SIG_DFL);
}

// The same for the waits, with the handler installed through sigset, which
// glibc implements with its own sigaction, past gort's wrapper: gort's
// sigset must see it (os/fault.c).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // sigset: System V's, still in glibc
TEST(waits_are_signalled_once_the_program_installs_a_handler_with_sigset) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  EXPECT(sigset(SIGUSR1, on_usr1) != SIG_ERR, "sigset: %s", strerror(errno));
  collect_through_waits();
  for (int k = 0; k < WAITS; k++)
    EXPECT(wait_result[k] == -1 && wait_errno[k] == EINTR, "%s returned %d (%s): the stop did not signal it",
           wait_names[k], wait_result[k], strerror(wait_errno[k]));
  sigset(SIGUSR1, SIG_DFL);
}
#pragma GCC diagnostic pop

// A thread cancelled in its sleep runs its cleanup handler while the
// stops that come meanwhile must see it as running: its registers are
// roots (the sleep must have ended its blocking call: gc/blocking.c;
// else a stop takes it as blocked and scans only its stack).
static _Atomic int cancel_state;  // 1 handler holds the objects, 2 main has collected

#ifdef REG0
static GCTEST_NOINLINE void hold_in_handler(void *arg) {
  (void)arg;
  TAKE_INTO_REGISTERS();
  KEEP_REGISTERS();
  atomic_store(&cancel_state, 1);
  while (atomic_load(&cancel_state) != 2) KEEP_REGISTERS();
  KEEP_REGISTERS();
}
#endif

#ifdef REG0
static void *sleep_until_cancelled(void *arg) {
  (void)arg;
  pthread_cleanup_push(hold_in_handler, NULL);
  for (;;) sleep(10);
  pthread_cleanup_pop(0);
  return NULL;
}
#endif

#ifdef REG0
static pthread_mutex_t cancel_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cv = PTHREAD_COND_INITIALIZER;

static void unlock_cancel_mu(void *arg) {
  (void)arg;
  pthread_mutex_unlock(&cancel_mu);
}

// A cancelled condition wait takes its mutex back before the handlers run.
static void *cond_wait_until_cancelled(void *arg) {
  (void)arg;
  pthread_mutex_lock(&cancel_mu);
  pthread_cleanup_push(unlock_cancel_mu, NULL);
  pthread_cleanup_push(hold_in_handler, NULL);
  for (;;) pthread_cond_wait(&cancel_cv, &cancel_mu);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

static void check_cancelled_cleanup(void *(*fn)(void *), const char *who) {
  atomic_store(&cancel_state, 0);
  make_objects(NULL);
  pthread_t t;
  pthread_create(&t, NULL, fn, NULL);
  gctest_sleep_ms(20);
  gctest_collect();  // the sleeper is held: the objects are only in handoff
  pthread_cancel(t);
  while (atomic_load(&cancel_state) != 1) gctest_sleep_ms(1);
  gctest_clobber_stack();
  int alive = NREGS;
  for (int round = 0; round < 3; round++) {
    gctest_collect();
    int n = count_registers_alive();
    if (n < alive) alive = n;
  }
  atomic_store(&cancel_state, 2);
  pthread_join(t, NULL);
  EXPECT_EQ_U64(alive, NREGS, "objects held in the registers of the cleanup handler of %s", who);
}

TEST(a_thread_cancelled_in_its_sleep_is_stopped_while_its_cleanup_runs) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the sleeps to its interceptors");
  check_cancelled_cleanup(sleep_until_cancelled, "a sleeper cancelled");
}

TEST(a_thread_cancelled_in_a_condition_wait_is_stopped_while_its_cleanup_runs) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  check_cancelled_cleanup(cond_wait_until_cancelled, "a condition waiter cancelled");
}
#endif

// A thread waiting on a condition variable (a pool's idle worker) is taken
// as stopped without a signal: collections do not wake it (the wait hides
// the EINTR a signal causes, so the test counts the thread's context
// switches instead; each signal costs it at least one).
static _Atomic int waiter_tid, waiter_go, waiter_in;
static pthread_mutex_t waiter_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waiter_cv = PTHREAD_COND_INITIALIZER;

static void *cond_waiter(void *arg) {
  (void)arg;
  atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
  pthread_mutex_lock(&waiter_mu);
  atomic_store(&waiter_in, 1);
  while (!atomic_load(&waiter_go)) pthread_cond_wait(&waiter_cv, &waiter_mu);
  pthread_mutex_unlock(&waiter_mu);
  return NULL;
}

static long context_switches(int tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long n = 0, v;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 || sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
      n += v;
  fclose(f);
  return n;
}

// Starts cond_waiter and returns once it waits: it set waiter_in holding
// the mutex, which it releases only inside the wait.
static pthread_t start_cond_waiter(void) {
  pthread_t t;
  pthread_create(&t, NULL, cond_waiter, NULL);
  while (atomic_load(&waiter_in) == 0) gctest_sleep_ms(1);
  pthread_mutex_lock(&waiter_mu);
  pthread_mutex_unlock(&waiter_mu);
  return t;
}

// Its context switches over 50 collections; then lets it end.
static long waiter_runs_during_collections(pthread_t t) {
  long before = context_switches(atomic_load(&waiter_tid));
  for (int i = 0; i < 50; i++) gort_gc_collect();
  long after = context_switches(atomic_load(&waiter_tid));
  pthread_mutex_lock(&waiter_mu);
  atomic_store(&waiter_go, 1);
  pthread_cond_broadcast(&waiter_cv);
  pthread_mutex_unlock(&waiter_mu);
  pthread_join(t, NULL);
  EXPECT(before >= 0 && after >= 0, "no /proc/self/task/N/status");
  return after - before;
}

TEST(collections_do_not_wake_a_thread_waiting_on_a_condition) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  long runs = waiter_runs_during_collections(start_cond_waiter());
  EXPECT(runs < 10, "the waiter ran %ld times during 50 collections", runs);
}

// A handler installed while a wait of the program's goes on (a pool's
// worker idle since start-up) must not run on a thread a stop holds: from
// then on the stops signal that wait too (gc/stw.c).
TEST(a_wait_begun_before_the_program_installs_a_handler_is_signalled_after) {
  SKIP_IF(GCTEST_TSAN, "the ThreadSanitizer build leaves the waits to its interceptors");
  pthread_t t = start_cond_waiter();
  gort_gc_collect();  // held, without a signal
  signal(SIGUSR1, on_usr1);
  long runs = waiter_runs_during_collections(t);
  signal(SIGUSR1, SIG_DFL);
  EXPECT(runs >= 40, "the waiter ran only %ld times during 50 collections: the stops held it", runs);
}

// ---- registered ranges and malloc'd memory -----------------------------------------

static void **block;  // a gort_malloc'd block of K slots
static void store_block(int i, void *p) { block[i] = p; }
static void *load_block(int i) { return block[i]; }

static void new_block(void) {
  block = gort_calloc(K, sizeof(void *));
  if (block == NULL) harness_fail(__FILE__, __LINE__, "gort_calloc failed");
}

TEST(malloc_memory_is_not_a_root) {
  new_block();
  make_objects(store_block);
  expect_collected("a cycle with only a gort_malloc'd block holding them");
  gort_free(block);
}

TEST(a_registered_range_keeps_objects_alive_until_removed) {
  new_block();
  gort_gc_add_roots(block, block + K);
  make_objects(store_block);
  expect_survives_cycles(load_block, "a registered range");
  gort_gc_remove_roots(block, block + K);
  expect_collected("the range was removed (the block still holds them)");
  gort_free(block);
}

TEST(removing_part_of_a_range_leaves_the_rest_a_root) {
  new_block();
  gort_gc_add_roots(block, block + K);
  make_objects(store_block);
  gort_gc_remove_roots(block + 4, block + 8);
  gctest_collect();
  int alive = 0, gone = 0;
  for (int i = 0; i < K; i++) {
    bool cleared = gort_gc_weak_get(weak[i]) == NULL;
    if (i >= 4 && i < 8)
      gone += cleared;
    else
      alive += !cleared;
  }
  EXPECT_EQ_U64(alive, K - 4, "objects in what is left of the range");
  EXPECT(gone >= 2, "only %d of 4 objects collected after their part of the range was removed",
         gone);
  gort_gc_remove_roots(block, block + K);
  expect_collected("the rest of the range was removed");
  gort_free(block);
}

TEST(overlapping_ranges_and_repeated_removals_are_handled) {
  new_block();
  gort_gc_add_roots(block, block + 10);
  gort_gc_add_roots(block + 6, block + K);  // overlaps [6, 10)
  make_objects(store_block);
  expect_survives_cycles(load_block, "two overlapping ranges");
  gort_gc_remove_roots(block, block + K);  // covers both
  expect_collected("both ranges were removed");
  gort_gc_remove_roots(block, block + K);      // again
  gort_gc_remove_roots(block + 2, block + 5);  // part of what is gone
  static char never_added[64];
  gort_gc_remove_roots(never_added, never_added + sizeof never_added);
  // The registry still works.
  gort_gc_add_roots(block, block + K);
  make_objects(store_block);
  expect_survives_cycles(load_block, "a range added after the removals");
  gort_gc_remove_roots(block, block + K);
  gort_free(block);
}

// ---- uncollectable objects ---------------------------------------------------------

static uintptr_t hidden_holder;  // the holder's address, disguised: no root points at it
#define DISGUISE 0x5A5A5A5A5A5A5A5AULL

static void **holder(void) { return (void **)(hidden_holder ^ DISGUISE); }
static void store_holder(int i, void *p) { holder()[i] = p; }
static void *load_holder(int i) { return holder()[i]; }

static GCTEST_NOINLINE void make_holder(void) {
  void **h = gort_gc_alloc_uncollectable(K * sizeof(void *));
  if (h == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_uncollectable failed");
  hidden_holder = (uintptr_t)h ^ DISGUISE;
}

TEST(an_uncollectable_object_keeps_objects_alive_until_freed) {
  make_holder();
  make_objects(store_holder);
  // Nothing points at the holder: it is neither collected nor unscanned.
  expect_survives_cycles(load_holder, "an unreferenced uncollectable object");
  gort_free(holder());
  expect_collected("the uncollectable holder was freed");
}

// ---- a dlopen'ed library -----------------------------------------------------------

// Builds dir/lib.so from the one line of C source in a new directory made
// from dir (a mkdtemp template); path gets the library's name.
static void build_library(char *dir, const char *source, char *path, size_t size) {
  EXPECT(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
  char src[256], cmd[1024], out[4096];
  snprintf(src, sizeof src, "%s/lib.c", dir);
  FILE *f = fopen(src, "w");
  EXPECT(f != NULL, "%s: %s", src, strerror(errno));
  fprintf(f, "%s\n", source);
  fclose(f);
  snprintf(path, size, "%s/lib.so", dir);
  snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o %s %s 2>&1", path, src);
  EXPECT_EQ_U64(harness_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
}

TEST(a_global_of_a_dlopened_library_is_a_root) {
  SKIP_IF(harness_run("command -v cc >/dev/null 2>&1", NULL, 0) != 0,
          "no C compiler to build the library");
  char dir[] = "/tmp/gort-gc-dl-XXXXXX", path[256], cmd[1024], decl[64];
  snprintf(decl, sizeof decl, "void *gctest_dl_slots[%d];", K);
  build_library(dir, decl, path, sizeof path);
  gctest_collect();  // a cycle before the library exists: the list of segments is re-read
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  EXPECT(lib != NULL, "dlopen: %s", dlerror());
  block = dlsym(lib, "gctest_dl_slots");
  EXPECT(block != NULL, "dlsym: %s", dlerror());
  check_root(store_block, load_block, "a dlopen'ed library's global");
  dlclose(lib);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  harness_run(cmd, NULL, 0);
}

// Libraries loaded and unloaded while cycles run: each stop must scan the
// segments mapped at that stop (a segment read before and unmapped by a
// dlclose since crashed the collector in every run).
static _Atomic int dl_churn_stop;
static char dl_churn_path[256];

static void *dl_churn(void *arg) {
  _Atomic long *n = arg;
  while (!atomic_load(&dl_churn_stop)) {
    void *h = dlopen(dl_churn_path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) break;
    char *big = dlsym(h, "gctest_dl_big");
    if (big != NULL) memset(big, 1, 4096);
    dlclose(h);
    (*n)++;
  }
  return NULL;
}

TEST(collections_beside_dlopen_and_dlclose_scan_only_mapped_segments) {
  // ThreadSanitizer holds the stop signal back from a thread waiting for
  // the loader's lock inside dlclose, so the stop is made without it (the
  // fallback), and a thread may park holding it: TSan's own report
  // printer then waits for that lock with the world stopped.
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the stop signal of a thread inside dlopen or dlclose");
  SKIP_IF(harness_run("command -v cc >/dev/null 2>&1", NULL, 0) != 0, "no C compiler to build the library");
  char dir[] = "/tmp/gort-gc-dlc-XXXXXX", cmd[1024];
  build_library(dir, "char gctest_dl_big[4 << 20];", dl_churn_path, sizeof dl_churn_path);  // a bss of its own mapping
  _Atomic long loads = 0;
  pthread_t t;
  pthread_create(&t, NULL, dl_churn, &loads);
  void *keep = NULL;
  // At least 300 rounds, and on until the loader thread has made 20 round
  // trips (or 20 s pass): a stop-the-world mark (gcdirty=none) holds the
  // loader's lock for most of a round, and 300 rounds then ended after as
  // few as 4 of them.
  double deadline = gctest_now() + 20;
  for (int i = 0; i < 300 || (atomic_load(&loads) < 20 && gctest_now() < deadline); i++) {
    for (int k = 0; k < 200; k++) {
      void **p = gort_gc_alloc(64);
      p[0] = keep;
      keep = k % 50 == 0 ? NULL : p;
    }
    if (i % 3 == 0) gort_gc_collect();
  }
  atomic_store(&dl_churn_stop, 1);
  pthread_join(t, NULL);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  harness_run(cmd, NULL, 0);
  EXPECT(loads > 10, "only %ld dlopen/dlclose rounds beside the collections", (long)loads);
}

// A thread whose signal handler walks the loaded objects with every signal
// blocked (gort's own SIGQUIT dump does, through dladdr) waits for the
// loader's lock that a stop holds and cannot take the stop signal: the
// stop must give way instead of waiting for it for ever.
static _Atomic int walker_stop;
static _Atomic long walker_walks;

static int count_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info, (void)size;
  (*(long *)arg)++;
  return 0;
}

static void walk_in_handler(int sig) {
  (void)sig;
  long n = 0;
  for (int i = 0; i < 20; i++) dl_iterate_phdr(count_object, &n);
  atomic_fetch_add(&walker_walks, 1);
}

static void *walker(void *arg) {
  (void)arg;
  while (!atomic_load(&walker_stop)) pthread_kill(pthread_self(), SIGUSR2);
  return NULL;
}

TEST(a_stop_gives_way_to_a_handler_that_waits_for_the_loader_with_signals_blocked) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = walk_in_handler;
  sigfillset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  pthread_t t;
  pthread_create(&t, NULL, walker, NULL);
  for (int i = 0; i < 30; i++) gort_gc_collect();
  atomic_store(&walker_stop, 1);
  pthread_join(t, NULL);
  signal(SIGUSR2, SIG_DFL);
  EXPECT(atomic_load(&walker_walks) > 0, "the handler never ran");
}

// ---- a new thread's argument -------------------------------------------------------

// The usual hand-off: a collected object passed to pthread_create and
// dropped by its creator at once. Until the new thread runs, only gort's
// start record holds it; collections run all the while.
#define ARG_SIZE 64
#define ARG_TAG 0xa4a4
static atomic_bool arg_stop;
static atomic_int arg_lost;

static void *arg_collector(void *unused) {
  (void)unused;
  while (!atomic_load(&arg_stop)) {
    gctest_collect();
    for (int i = 0; i < 64; i++) memset(gort_gc_alloc(ARG_SIZE), 0xee, ARG_SIZE);
  }
  return NULL;
}

static void *arg_reader(void *p) {
  usleep(200);
  if (!gctest_check(p, ARG_SIZE, ARG_TAG)) atomic_fetch_add(&arg_lost, 1);
  return NULL;
}

static GCTEST_NOINLINE void start_reader(pthread_t *t) {
  void *p = gort_gc_alloc(ARG_SIZE);
  gctest_fill(p, ARG_SIZE, ARG_TAG);
  EXPECT_EQ_U64(pthread_create(t, NULL, arg_reader, p), 0);
}

TEST(a_new_threads_argument_is_a_root_until_the_thread_runs) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  pthread_t collector;
  atomic_store(&arg_stop, false);
  EXPECT_EQ_U64(pthread_create(&collector, NULL, arg_collector, NULL), 0);
  int rounds = 60 * harness_scale();
  for (int r = 0; r < rounds; r++) {
    pthread_t t[16];
    for (int i = 0; i < 16; i++) {
      start_reader(&t[i]);
      gctest_clobber_stack();
    }
    for (int i = 0; i < 16; i++) pthread_join(t[i], NULL);
  }
  atomic_store(&arg_stop, true);
  pthread_join(collector, NULL);
  EXPECT_EQ_U64(atomic_load(&arg_lost), 0, "of %d threads' arguments", rounds * 16);
}

// A worker that returns a collected object it just made: after the thread
// has ended and until pthread_join hands the value over, only glibc's
// thread descriptor holds it. Collections run in that window, and fresh
// objects of the same size would reuse a freed one. Both ways out of a
// thread: returning, and pthread_exit.
#define RESULT_SIZE 96
#define RESULT_TAG 0xd4d4

static void *result_by_return(void *unused) {
  (void)unused;
  void *p = gort_gc_alloc(RESULT_SIZE);
  gctest_fill(p, RESULT_SIZE, RESULT_TAG);
  return p;
}

static void *result_by_exit(void *unused) {
  (void)unused;
  void *p = gort_gc_alloc(RESULT_SIZE);
  gctest_fill(p, RESULT_SIZE, RESULT_TAG);
  pthread_exit(p);
}

static int results_lost(void *(*fn)(void *), int rounds) {
  int lost = 0;
  for (int r = 0; r < rounds; r++) {
    pthread_t t;
    EXPECT_EQ_U64(pthread_create(&t, NULL, fn, NULL), 0);
    usleep(2000);  // the thread has ended; nobody has joined it
    gctest_clobber_stack();
    gctest_collect();
    for (int i = 0; i < 500; i++) memset(gort_gc_alloc(RESULT_SIZE), 0xee, RESULT_SIZE);
    void *res = NULL;
    EXPECT_EQ_U64(pthread_join(t, &res), 0);
    if (res == NULL || !gctest_check(res, RESULT_SIZE, RESULT_TAG)) lost++;
  }
  return lost;
}

TEST(a_threads_result_is_a_root_until_it_is_joined) {
  int rounds = 30 * harness_scale();
  EXPECT_EQ_U64(results_lost(result_by_return, rounds), 0, "returned values, of %d", rounds);
  EXPECT_EQ_U64(results_lost(result_by_exit, rounds), 0, "pthread_exit values, of %d", rounds);
}

// A thread that blocks every signal (a server's signal thread, waiting in
// sigwait) must still stop for a collection: gort's pthread_sigmask and
// sigprocmask leave the stop signal unblocked. Before, the collection
// waited for it for ever.
static atomic_bool masked_stop;
static atomic_int masked_ready;

static void *block_everything(void *use_sigprocmask) {
  sigset_t all, now;
  sigfillset(&all);
  if (use_sigprocmask != NULL)
    sigprocmask(SIG_BLOCK, &all, NULL);
  else
    pthread_sigmask(SIG_SETMASK, &all, NULL);
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  atomic_fetch_add(&masked_ready, sigismember(&now, SIGTERM) && !sigismember(&now, SIGPWR) ? 1 : 100);
  while (!atomic_load(&masked_stop)) usleep(1000);
  return NULL;
}

TEST(threads_that_block_every_signal_still_stop_for_collections) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer intercepts the signal-mask calls gort's wrappers rely on");
  pthread_t t[2];
  atomic_store(&masked_stop, false);
  atomic_store(&masked_ready, 0);
  EXPECT_EQ_U64(pthread_create(&t[0], NULL, block_everything, NULL), 0);
  EXPECT_EQ_U64(pthread_create(&t[1], NULL, block_everything, (void *)1), 0);
  while (atomic_load(&masked_ready) < 2) usleep(1000);
  EXPECT_EQ_U64(atomic_load(&masked_ready), 2, "each mask blocks SIGTERM but not SIGPWR");
  alarm(20);  // a hang fails here, not at the harness's timeout
  for (int i = 0; i < 5; i++) gctest_collect();
  alarm(0);
  atomic_store(&masked_stop, true);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
}

// ---- a thread cancelled while a stop holds it -----------------------------------------

// glibc's cancellation signal once reached threads inside the stop
// handler (sigfillset leaves it out of the handler's mask): a reader
// cancelled in read(2) unwound out of the handler, ran on while counted
// as stopped, and ran its cleanup handler and exit with every signal
// blocked, so the next stop waited for it for ever when that handler took
// a lock another thread held (a helper's hunt: 3 hangs in 3 runs; about
// a quarter of the cancels ran their cleanup so masked). Readers are
// cancelled while another thread collects back to back; no cleanup may
// run with the stop signal blocked, and the objects they store survive.
static int cancel_pipe[2];
static _Atomic int cancel_stop, cancel_masked;
static void **cancel_box;

static void *collect_loop(void *arg) {
  (void)arg;
  while (!atomic_load(&cancel_stop)) gort_gc_collect();
  return NULL;
}

static void reader_cleanup(void *arg) {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  if (sigismember(&now, gort__stw_signal()) == 1 || sigismember(&now, SIGSEGV) == 1) atomic_fetch_add(&cancel_masked, 1);
  uint64_t *x = gort_gc_alloc(32);
  x[0] = (uintptr_t)arg;
  cancel_box[(uintptr_t)arg % 64] = x;  // a write into the heap, as a cleanup handler may make
}

static void *cancelled_reader(void *arg) {
  char c;
  pthread_cleanup_push(reader_cleanup, arg);
  for (;;)
    if (read(cancel_pipe[0], &c, 1) < 0) {
    }
  pthread_cleanup_pop(0);
  return NULL;
}

TEST(threads_cancelled_in_read_during_collections_run_their_cleanup_with_signals_open) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  EXPECT(pipe(cancel_pipe) == 0);
  cancel_box = gort_gc_alloc(64 * sizeof(void *));
  pthread_t collector;
  EXPECT(pthread_create(&collector, NULL, collect_loop, NULL) == 0);
  uint64_t rng = harness_seed() | 1;
  int n = 400 * harness_scale();
  for (int i = 0; i < n; i++) {
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, cancelled_reader, (void *)(uintptr_t)i) == 0);
    usleep((unsigned)(test_rand(&rng) % 300));
    pthread_cancel(t);
    pthread_join(t, NULL);
  }
  atomic_store(&cancel_stop, 1);
  pthread_join(collector, NULL);
  EXPECT(atomic_load(&cancel_masked) == 0, "%d of %d cleanups ran with the stop signal or SIGSEGV blocked",
         atomic_load(&cancel_masked), n);
  gctest_collect();
  for (int i = 0; i < 64 && i < n; i++) {
    uint64_t *x = cancel_box[i];
    EXPECT(x != NULL && x[0] % 64 == (uint64_t)i, "box slot %d", i);
  }
  close(cancel_pipe[0]);
  close(cancel_pipe[1]);
}
