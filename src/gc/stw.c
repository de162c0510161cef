// Threads and the stop of the world (bdwgc's pthread_stop_world, Go's
// stopTheWorld).
//
// See mgc.c for the collector's design. The collector must see every
// thread's stack and registers, and must look at the heap while no thread
// changes it. C code has no safe points, so threads are stopped where they
// are, with a signal (SIGPWR by default, as bdwgc; GORT_DEBUG=gcsignal=N
// for programs that use it), as bdwgc does:
//   1. Threads are known from gort's own pthread_create (exported, so every
//      thread of a program that links or preloads gort starts through it),
//      from gort_gc_register_thread, and lazily when a thread first calls
//      the collector. Each has a record: its stack, its static TLS block.
//   2. The collector takes the world lock and the registry lock (so no
//      thread registers or leaves meanwhile) and asks every other
//      registered thread to stop where it next leaves a no-stop region (4),
//      which a thread that calls gort does within microseconds; it sends
//      the signal to those that have not after a while ("Asking first",
//      below).
//   3. The handler records the stack pointer (the interrupted registers are
//      on the stack already: the kernel saved them in the signal frame),
//      counts itself stopped, and waits on a futex until the collector
//      restarts the world. A thread blocked in a system call is stopped the
//      same way (SA_RESTART resumes the call), but for the blocking calls
//      that say so beforehand ("Blocked threads", below): no signal.
//   4. A thread inside a no-stop region (holding a gort lock, or midway
//      through its cache: base/lock.h) only notes the request; it stops
//      itself when it leaves the region (gort__stop_deferred, after
//      spilling its registers), so the collector never finds a gort lock
//      held or a cache half-written.
//   5. The collector waits until every signalled thread has stopped.
// Restarting is a futex broadcast.
//
// Blocked threads (Go's threads in system calls, HotSpot's threads in
// native code, bdwgc's GC_do_blocking). A signal to a thread asleep in
// the kernel costs the stop a wake-up: on GCBench's 2 cores, with the
// program and the collector each on one, the two threads that sleep in
// nanosleep took 30-120 us each to park, the largest part of every stop;
// and their sleeps ended early with EINTR. So a registered thread that is
// about to block (gort's own waits: a plain thread's channel or sync
// wait, an idle M; and the sleeps and descriptor waits the program
// calls, blocking.c) first
// publishes the lowest address of its stack that it still uses and holds
// its callee-saved registers in that frame (gort__stw_blocking), then
// sets blocked = IN. The collector takes such a thread as stopped by
// moving blocked from IN to HELD, with no signal: everything it holds is
// above that address, and it touches nothing of the heap's until the call
// returns (but for what the kernel, or libc after it, writes as the call
// ends, which may be during a stop: revents, descriptor sets, epoll
// events, a time left; flags, or values the program gave the kernel,
// never the only copy of a pointer). A call that returns while the world is stopped finds HELD and
// waits for the restart, which sets IN back; otherwise the thread moves
// IN to NO itself. One compare-and-swap decides each race: the thread
// either leaves before the stop took it (and then gets the signal like
// any running thread) or waits. A signal handler on a held thread would
// run while the world is stopped, below the stack that is scanned, and
// could siglongjmp out of the call: so the program's sleeps and waits are
// blocking calls only while it has no handler of its own (blocking.c),
// and a thread cancelled in one leaves the call before its cleanup
// handlers run (gort__stw_block_abandon).
//
// The collector scans each stopped thread's stack from its recorded stack
// pointer to the top (of the goroutine stack it was on, if it was running
// one), and its static TLS
// block (below the thread pointer on x86-64). Goroutines that are not on a
// thread are only memory: mgcmark.c scans their saved stacks.
//
// Locks taken here are raw futex locks that do not count as no-stop
// regions: a thread waiting for one must stay stoppable.

#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/options.h"
#include "../base/vg.h"
#include "../base/persistent.h"
#include "../obs/unwind.h"
#include "../os/os.h"
#include "../sched/sched.h"
#include "gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"

// A mutex that a waiting thread can be stopped in (no no-stop count).
typedef struct {
  _Atomic uint32_t state;
} rawlock_t;

static void raw_lock(rawlock_t *l) {
  uint32_t z = 0;
  if (atomic_compare_exchange_strong(&l->state, &z, 1)) return;
  while (atomic_exchange(&l->state, 2) != 0) gort__os_futex_wait(&l->state, 2);
}

static void raw_unlock(rawlock_t *l) {
  if (atomic_exchange(&l->state, 0) == 2) gort__os_futex_wake(&l->state, 1);
}

static struct {
  rawlock_t lock;          // guards threads, pool, and holds through a stop
  gthread_t *threads;      // registered
  gthread_t *pool;         // records of unregistered threads, for reuse
  int nthreads;
  int signal;              // the stop signal
  uintptr_t static_tls;    // bytes of static TLS below the thread pointer
  _Atomic uint32_t epoch;  // bumped at every stop
  _Atomic uint32_t released;  // == epoch once the world may run
  _Atomic uint32_t nstopped;
  _Atomic uint64_t n_asked, n_signalled;  // threads stopped so (gort__stw_stop_counts)
  bool inited;
} stw = {.signal = SIGPWR};

// The calling thread's record; NULL until it registers. Read inline by the
// allocation fast path (gc.h, gort__stw_registered).
GORT_TLS gthread_t *gort__stw_self;

// ---- the thread's own record ---------------------------------------------------------

static uintptr_t thread_pointer(void) {
#if defined(__x86_64__)
  uintptr_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#else
  return (uintptr_t)__builtin_thread_pointer();
#endif
}

static int sum_tls(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t *total = arg;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS)
      *total += GORT_ALIGN_UP(info->dlpi_phdr[i].p_memsz, (uintptr_t)64) + 64;
  return 0;
}

// A thread leaves the registry when it exits, however it exits (return,
// pthread_exit, cancellation): a key destructor, not a cleanup handler
// (which in C with exceptions would pull in libgcc_s).
static pthread_key_t leave_key;
static pthread_once_t leave_once = PTHREAD_ONCE_INIT;

static void leave(void *arg) {
  (void)arg;
  gort__stw_unregister_self();
  gort__gc_thread_ended();
}

static void make_leave_key(void) { pthread_key_create(&leave_key, leave); }

// Main is registered at start-up without the key (no pthread call there).
// glibc runs main's key destructors too when main calls pthread_exit; a
// main left registered then was a zombie that every later stop signalled
// and waited for, for ever.
void gort__stw_leave_at_exit(void) {
  if (gort__stw_self == NULL) return;
  pthread_once(&leave_once, make_leave_key);
  pthread_setspecific(leave_key, (void *)1);
}

void gort__stw_register_self(void) {
  if (gort_likely(gort__stw_self != NULL)) return;
  uintptr_t lo = 0, hi = 0;
  if (gort__os_stack_bounds(&lo, &hi) != 0) {
    // Unknown bounds: from here up to a page past the frame (only the
    // part of the stack below this call is then seen).
    lo = (uintptr_t)__builtin_frame_address(0);
    hi = GORT_ALIGN_UP(lo, (uintptr_t)4096) + 4096;
  }
  // The loader's lock before stw.lock, never inside it: a cycle stops the
  // world holding the loader's lock (mgcmark.c, gort__gc_stop_the_world).
  uintptr_t tls_total = 0;
  if (__atomic_load_n(&stw.static_tls, __ATOMIC_RELAXED) == 0)
    dl_iterate_phdr(sum_tls, &tls_total);
  raw_lock(&stw.lock);
  gthread_t *t = stw.pool;
  if (t != NULL) {
    stw.pool = t->next;
  } else {
    t = gort__persistent_alloc(sizeof *t, 64);
    if (t == NULL) {
      raw_unlock(&stw.lock);
      gort__throw("gc: out of memory for a thread record");
    }
  }
  if (stw.static_tls == 0) __atomic_store_n(&stw.static_tls, tls_total, __ATOMIC_RELAXED);
  t->tid = gort__os_gettid();
  t->stack_lo = lo;
  t->stack_hi = hi;
  uintptr_t tp = thread_pointer();
  t->tls_hi = tp;
  t->tls_lo = tp - stw.static_tls;
  atomic_store(&t->stopped_sp, 0);
  t->wbuf = NULL;
  // A pooled record may come from a thread that was blocked, or held by a
  // stop, when it exited or forked away: this thread is neither.
  atomic_store(&t->blocked, BLOCKED_NO);
  t->blocked_sp = 0;
  t->claimed = false;
  t->asked = false;
  t->ask_skip = 0;
  t->ask_backoff = 0;
  t->stop_pending = &gort__stop_pending;
  t->nostop = &gort__nostop;
  t->next = stw.threads;
  stw.threads = t;
  __atomic_store_n(&stw.nthreads, stw.nthreads + 1, __ATOMIC_RELAXED);  // read unlocked: nthreads()
  gort__stw_self = t;
  raw_unlock(&stw.lock);
  // Leave the registry when the thread exits, however it was registered.
  pthread_once(&leave_once, make_leave_key);
  pthread_setspecific(leave_key, (void *)1);
}

static uintptr_t main_stack_max;  // main's RLIMIT_STACK (0: unknown): guest_room, below

void gort__stw_register_main(void) {
  if (gort__stw_self != NULL || gort__os_gettid() != getpid()) return;
  // Above the start of the stack are only argv, the environment and auxv.
  uintptr_t hi = gort__os_main_stack_top();
  if (hi == 0) return;  // registered lazily then, when it first calls us
  uintptr_t total = 0;
  if (__atomic_load_n(&stw.static_tls, __ATOMIC_RELAXED) == 0) dl_iterate_phdr(sum_tls, &total);  // see register_self
  raw_lock(&stw.lock);
  gthread_t *t = gort__persistent_alloc(sizeof *t, 64);
  if (t == NULL) {
    raw_unlock(&stw.lock);
    return;
  }
  t->tid = gort__os_gettid();
  t->stack_lo = 0;
  t->stack_hi = hi;
  main_stack_max = gort__os_main_stack_limit();
  if (stw.static_tls == 0) __atomic_store_n(&stw.static_tls, total, __ATOMIC_RELAXED);
  uintptr_t tp = thread_pointer();
  t->tls_hi = tp;
  t->tls_lo = tp - stw.static_tls;
  t->stop_pending = &gort__stop_pending;
  t->nostop = &gort__nostop;
  t->next = stw.threads;
  stw.threads = t;
  __atomic_store_n(&stw.nthreads, stw.nthreads + 1, __ATOMIC_RELAXED);  // read unlocked: nthreads()
  gort__stw_self = t;
  raw_unlock(&stw.lock);
}

void gort__stw_unregister_self(void) {
  gthread_t *t = gort__stw_self;
  if (t == NULL) return;
  if (t->wbuf != NULL) {  // gray objects of a mark in progress
    nostop_enter();
    gort__gc_barrier_release(t);
    nostop_exit();
  }
  raw_lock(&stw.lock);
  for (gthread_t **p = &stw.threads; *p != NULL; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  __atomic_store_n(&stw.nthreads, stw.nthreads - 1, __ATOMIC_RELAXED);
  t->next = stw.pool;
  stw.pool = t;
  gort__stw_self = NULL;
  // Under the lock, so no stop asks it meanwhile; an ask left by a stop
  // that held it in a blocking call must not outlive the registration.
  __atomic_store_n(&gort__stop_pending, 0, __ATOMIC_RELAXED);
  raw_unlock(&stw.lock);
}

void gort_gc_register_thread(void) {
  gort__start_ensure();
  gort__stw_register_self();
}

void gort_gc_unregister_thread(void) { gort__stw_unregister_self(); }

int gort__stw_nthreads(void) { return __atomic_load_n(&stw.nthreads, __ATOMIC_RELAXED); }

void gort__stw_register_internal_self(void) {
  sigset_t none;
  sigemptyset(&none);
  gort__os_sigmask(SIG_SETMASK, &none, NULL);
  gort__stw_register_self();
}

int gort__stw_signal(void) { return gort__opts.gcsignal > 0 ? (int)gort__opts.gcsignal : stw.signal; }

// Nested holds take the lock once: a thread that exits unregistered frees
// its tiny block while it holds the stop off, and the free holds it off too.
static GORT_TLS int hold_depth;

void gort__stw_hold_off(void) {
  if (hold_depth == 0) raw_lock(&stw.lock);
  hold_depth++;
}

bool gort__stw_holds(uint32_t e) {
  return (int32_t)(atomic_load_explicit(&stw.released, memory_order_acquire) - e) < 0;
}

bool gort__stw_hold_off_contended(void) { return atomic_load_explicit(&stw.lock.state, memory_order_relaxed) == 2; }

void gort__stw_allow(void) {
  if (--hold_depth == 0) raw_unlock(&stw.lock);
}

void gort__stw_lock_for_fork(void) { raw_lock(&stw.lock); }

void gort__stw_unlock_after_fork(int child) {
  if (!child) {
    raw_unlock(&stw.lock);
    return;
  }
  // Only the forking thread survives; every other record goes to the pool.
  gthread_t *keep = NULL;
  while (stw.threads != NULL) {
    gthread_t *t = stw.threads;
    stw.threads = t->next;
    if (t == gort__stw_self) {
      keep = t;
    } else {
      t->next = stw.pool;
      stw.pool = t;
    }
  }
  stw.threads = keep;
  __atomic_store_n(&stw.nthreads, keep != NULL, __ATOMIC_RELAXED);
  if (keep != NULL) {
    keep->next = NULL;
    keep->tid = gort__os_gettid();
    atomic_store(&keep->blocked, BLOCKED_NO);  // it forked: not blocked
    keep->claimed = false;
  }
  atomic_store(&stw.released, atomic_load(&stw.epoch));
  atomic_store(&stw.lock.state, 0);
}

// ---- pthread_create ------------------------------------------------------------------

// The start record is a root until the new thread has registered: its
// argument (often a collected object the creator has already dropped) is
// held by nothing else the collector sees meanwhile. The copy on the new
// thread's stack holds it after that. (A root range, not an uncollectable
// object: the record stays plain malloc memory, so the hardened and
// counting paths of gort_free see what they expect.)
typedef struct {
  void *(*fn)(void *);
  void *arg;
} start_t;

// Threads between pthread_create and their registration: their blocks in
// flight (the start record, glibc's DTV and attribute buffers) are on no
// stack the collector sees yet. The leak check waits for none (leakcheck.c).
static _Atomic int starting;

int gort__stw_starting(void) { return atomic_load_explicit(&starting, memory_order_acquire); }

static void *trampoline(void *arg) {
  // The heap profiler's walks end here (obs/unwind.h): the frames below
  // are glibc's, the same in every thread.
  gort__unwind_set_root((uintptr_t)__builtin_frame_address(0));
  start_t st = *(start_t *)arg;
  gort__stw_register_self();
  atomic_fetch_sub_explicit(&starting, 1, memory_order_release);
  gort_gc_remove_roots(arg, (start_t *)arg + 1);
  gort_free(arg);
  return gort__gc_thread_exit_value(st.fn(st.arg));  // a root until joined: pthread_wrap.c
}

// Exported: every thread a gort program starts is known to the collector.
__attribute__((visibility("default"))) int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                                                          void *(*fn)(void *), void *arg);
int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  start_t *st = gort_malloc(sizeof *st);
  if (st == NULL) return EAGAIN;
  st->fn = fn;
  st->arg = arg;
  gort_gc_add_roots(st, st + 1);
  atomic_fetch_add_explicit(&starting, 1, memory_order_acq_rel);
  int r = gort__os_pthread_create(t, attr, trampoline, st);
  if (r != 0) {
    atomic_fetch_sub_explicit(&starting, 1, memory_order_release);
    gort_gc_remove_roots(st, st + 1);
    gort_free(st);
  }
  return r;
}

int gort__stw_internal_thread(void *(*fn)(void *), void *arg) {
  return gort__os_internal_thread(fn, arg, 0);
}

// ---- stopping ------------------------------------------------------------------------

// Parks the calling thread until the world restarts. Its registers are on
// its stack already (the signal frame, or the spill in stop_deferred).
static uintptr_t stack_pointer(void) {
  uintptr_t sp;
#if defined(__x86_64__)
  __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
  __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
  volatile char here;
  sp = (uintptr_t)&here;
#endif
  return sp;
}

// Parks the calling thread for stop e (read by the caller, which saw that
// stop in progress) until the world restarts. Its registers are on its
// stack already (the signal frame, or the spill in stop_deferred). It
// records the stack pointer itself, not a local's address: the compiler
// may save the caller's registers anywhere in this frame, below any local.
// The collector counts a thread stopped only when its stopped_epoch equals
// the stop's: a park for an older stop (a thread that checked just before
// a restart) can never pass for this one.
// A parked thread's turn as a guest of the stop's mark (mgcmark.c,
// "Guests"), below a pad: the root scan reads the 128 bytes below the
// stack pointer the thread published (the red zone), and the guest's own
// frames, written while the roots are scanned, stay below those.
static GORT_NOINLINE void park_guest(uint32_t e) {
  volatile char pad[256];
  pad[0] = 0;
  gort__gc_mark_guest(e);
  __asm__ volatile("" : : "r"(pad) : "memory");
}

static GORT_NOINLINE void park(uint32_t e, bool guest) {
  gthread_t *t = gort__stw_self;
  __atomic_store_n(&gort__stop_pending, 0, __ATOMIC_RELAXED);
  atomic_store_explicit(&t->stopped_sp, stack_pointer(), memory_order_relaxed);
  atomic_store_explicit(&t->stopped_epoch, e, memory_order_release);
  atomic_fetch_add_explicit(&stw.nstopped, 1, memory_order_acq_rel);
  gort__os_futex_wake(&stw.nstopped, 1);
  // The CPU this thread leaves may mark for the stop (mgcmark.c, "Guests").
  if (guest) park_guest(e);
  // Until the world restarts: released reaches e. (Reaches, not equals: a
  // thread parked from stop_deferred may take the next stop's signal while
  // it waits, park again inside the handler, and come back here only after
  // released has moved past e.)
  for (;;) {
    uint32_t r = atomic_load_explicit(&stw.released, memory_order_acquire);
    if ((int32_t)(r - e) >= 0) break;
    gort__os_futex_wait(&stw.released, r);
  }
}

// Whether sp is off t's own stack and off every goroutine's: t runs a
// handler on an alternate signal stack. A park there would publish a
// stack pointer that the scan cannot use: from it up to t's stack top
// lies memory that may not be mapped (a hostile test: the stop signal
// landing in a handler that ran on a sigaltstack crashed the collector's
// root scan every time), and t's own stack, with the interrupted frames,
// would go unscanned.
static bool off_own_stack(const gthread_t *t, uintptr_t sp) {
  return (sp < t->stack_lo || sp >= t->stack_hi) && gort__sched_stack_top(sp) == 0;
}

// Whether a thread parking at sp may be a guest of the stop's mark: on
// its own stack (not a goroutine's), with GUEST_STACK left below sp for
// the mark's frames (a worker, the drain's ring, a scan: a few KiB). In
// the stop signal's handler too: it parks only outside every no-stop
// region, so the interrupted code holds no gort lock, and the mark takes
// no other.
// Main's stack has no low bound in its record (it grows on demand): its
// limit is RLIMIT_STACK's, read when main registered.
#define GUEST_STACK (64 << 10)
static bool guest_room(const gthread_t *t, uintptr_t sp) {
  if (sp >= t->stack_hi) return false;
  if (t->stack_lo == 0) return main_stack_max != 0 && t->stack_hi - sp + GUEST_STACK <= main_stack_max;
  return sp >= t->stack_lo + GUEST_STACK;
}

static void on_stop_signal(int sig, siginfo_t *info, void *uctx) {
  (void)sig, (void)info, (void)uctx;
  int saved = errno;
  VG_ENTER();
  uint32_t e = atomic_load_explicit(&stw.epoch, memory_order_acquire);
  gthread_t *t = gort__stw_self;
  if (t != NULL && atomic_load_explicit(&stw.released, memory_order_acquire) != e) {
    // Inside a region, or off its stack: it stops when it leaves a region
    // back on its stack, or at a later signal (the stop signals again
    // every RESIGNAL_NS).
    uintptr_t sp = stack_pointer();
    if (gort__nostop > 0 || off_own_stack(t, sp))
      __atomic_store_n(&gort__stop_pending, 1, __ATOMIC_RELAXED);
    else
      park(e, guest_room(t, sp));  // outside every region: it holds no lock a guest's mark takes
  }
  VG_LEAVE();
  errno = saved;
}

static GORT_NOINLINE void stop_deferred(void) {
  __builtin_unwind_init();  // callee-saved registers onto this frame
  gthread_t *t = gort__stw_self;
  uintptr_t sp = stack_pointer();
  if (t == NULL) {
    __atomic_store_n(&gort__stop_pending, 0, __ATOMIC_RELAXED);  // no stop wants an unregistered thread
  } else if (off_own_stack(t, sp)) {
    // Off its stack (a handler on an alternate signal stack). The request
    // stays, for the first region's end back on the stack; the stop
    // signals a thread that takes too long (gort__stw_stop_within).
  } else {
    // The flag first, then the stop (a full barrier between): a stop that
    // sets the flag after this exchange leaves it set for the next
    // region's end; one that set it before has a new epoch that the load
    // below sees. (Clearing after the look lost such an ask.)
    (void)__atomic_exchange_n(&gort__stop_pending, 0, __ATOMIC_SEQ_CST);
    uint32_t e = atomic_load_explicit(&stw.epoch, memory_order_seq_cst);
    if (atomic_load_explicit(&stw.released, memory_order_acquire) != e) {
      // Parked here, the thread runs the program's handlers unless they
      // are blocked, and a handler that ran below the published stack
      // pointer while the collector marks could move the only pointer
      // to an object where the scan does not look. The stop signal's
      // handler runs with every signal blocked; so does this park.
      sigset_t all, old;
      sigfillset(&all);
      bool masked = gort__os_sigmask(SIG_BLOCK, &all, &old) == 0;
      park(e, guest_room(t, sp));
      if (masked) gort__os_sigmask(SIG_SETMASK, &old, NULL);
    }
  }
  // No tail call: it would pop the spilled registers before park runs, and
  // the caller's pointers held only in callee-saved registers would then
  // be on no stack while the world is stopped (gcc -O2 did exactly that;
  // live objects were freed).
  __asm__ volatile("" ::: "memory");
}

#define STOP_SPIN_NS 50000
#define ASK_NS 100000  // how long a stop waits for asked threads before it may signal them
#define ASK_OUT_NS 20000  // and how long one must then be seen outside gort first
#define ASK_RUN_NS 10000  // a thread that runs this long after an ask without parking is signalled
#define ASK_SPIN_NS 30000  // the stopper spins this long for asked threads, then naps
#define ASK_NAP_NS 50000
#define ASK_SKIP 8     // at most this many stops signal a thread at once after it needed one
#define RESIGNAL_NS 10000000  // a signalled thread not parked by then is signalled again

// How a stop takes a thread (see "Blocked threads").
enum { TAKE_HELD, TAKE_SIGNAL, TAKE_ASK };

// Holds t without a signal if it is in a blocking call the stop may
// hold: TAKE_HELD. A wait of the program's that began before the program
// installed a handler of its own (a pool's worker idle since start-up) is
// signalled now, as a new one would be (blocking.c), since a handler must
// not run on a thread the stop holds: TAKE_SIGNAL (asking it is no use,
// it is asleep). Else it runs: TAKE_ASK.
static int take_blocked(gthread_t *t) {
  uint32_t in = BLOCKED_IN;
  bool program_wait = atomic_load_explicit(&t->blocked, memory_order_acquire) == BLOCKED_IN &&
                      atomic_load_explicit(&t->blocked_program, memory_order_relaxed) &&
                      gort__os_program_handlers();
  if (program_wait) return TAKE_SIGNAL;
  // Acquire: if held, its blocked_sp is published.
  t->claimed = atomic_compare_exchange_strong_explicit(&t->blocked, &in, BLOCKED_HELD, memory_order_acq_rel,
                                                       memory_order_acquire);
  return t->claimed ? TAKE_HELD : TAKE_ASK;
}

static void send_stop_signal(gthread_t *t) {
  atomic_fetch_add_explicit(&stw.n_signalled, 1, memory_order_relaxed);
  int r = gort__os_tgkill(t->tid, stw.signal);
  t->unstoppable = r != 0;
  if (r != 0) gort__warn("gc: cannot stop thread %d (error %d); its stack is not scanned", t->tid, -r);
}

static bool parked_for(const gthread_t *t, uint32_t e) {
  return atomic_load_explicit(&t->stopped_epoch, memory_order_acquire) == e;
}

// Asking first. A running thread is asked to stop before it is signalled:
// the stop sets its gort__stop_pending, as the signal handler would inside
// a no-stop region, and the thread parks where it next leaves one (every
// gort lock's release, every collected allocation, gort's channel and
// scheduler calls), through the same gort__stop_deferred. On our VMs the
// tgkill alone takes 30-40 us of the stopping thread and the signal
// reaches a running thread 60-90 us after it is sent (median; 160 us at
// worst), while a thread asked through its flag sees it in 0.3 us: the
// signal's delivery was the largest part of every stop of GCBench and
// binary-trees.
//
// Only a thread that runs outside gort needs the signal, and only the
// thread knows where it is: a thread inside a no-stop region (its
// gort__nostop, which the stop reads through t->nostop, is not 0) will
// park when it leaves, as a signal would have had it do, so it is never
// signalled; one that has not parked within ASK_NS, and then has been
// seen outside every region for ASK_OUT_NS (more than the few hundred
// nanoseconds from a region's end to its park; a count read from
// another core may be stale for less than that), is signalled, and so is
// it at once for the next 1, 2, 4, then ASK_SKIP stops while that goes on:
// a thread that computes without calling gort costs a stop ASK_NS only
// once in ASK_SKIP + 1, and one that was only descheduled for a while
// (outside a region, it looks the same) is soon asked again. A thread
// that enters a blocking call meanwhile is held as any blocked thread.
// GCBench's and binary-trees' mutators, asked, park within 7 and 21 us
// (medians), 50-70 us at the 90th percentile: they are often inside a
// region whose writes fault (a fresh page's first write, a protected
// page's), and a fault is tens of microseconds here, which a signal
// could not shorten. Side by side, interleaved, each stop of a cycle
// counted alone (3 runs of GCBench, 2 of binary-trees, signal only ->
// asking first): GCBench's median stop 0.210 -> 0.128 ms, 90th
// percentile 0.302 -> 0.246, 99th 0.403 -> 0.358; binary-trees' 0.171 ->
// 0.099, 0.246 -> 0.179 and 0.335 -> 0.287. The stopper spins only
// ASK_SPIN_NS, then naps: spinning on kept a core from the very thread
// it waited for, which was then signalled for nothing (in
// test_gc_roots' allocating thread, up to 34 of 42 stops; now 0-4).
//
// Running outside gort. Waiting ASK_NS before a signal is right for a
// thread that has no CPU (a signal would not reach it sooner), but a
// thread that computes outside gort (GCBench filling its array of
// doubles, binary-trees walking a tree) was seen to run all along, and
// its stop paid ASK_NS + ASK_OUT_NS for nothing before the signal's own
// 0.1-0.2 ms: such stops were GCBench's longest, 0.31-0.37 ms, in about
// half its runs. So from ASK_RUN_NS after the ask the stopper also reads
// the asked thread's CPU clock (a system call, about a microsecond, and
// only for a thread that has neither parked nor entered a region by
// then); a thread that ran for at least three quarters of the time
// between two such readings and is outside every region cannot have left
// one since the ask (it would have parked there), so it is signalled at
// once. A thread the clock shows idle keeps the wait above. Side by side,
// 15 interleaved runs of GCBench each (about 920 final stops; gctrace=2):
// the signalled stops took 0.31-0.34 ms before, at most 0.20 after.
static void signal_asked(gthread_t *t) {
  t->asked = false;
  int backoff = t->ask_backoff == 0 ? 1 : 2 * t->ask_backoff;
  t->ask_backoff = t->ask_skip = (uint8_t)(backoff < ASK_SKIP ? backoff : ASK_SKIP);
  send_stop_signal(t);  // the wait for it is the caller's
}

// Whether asked thread t, not parked, has been running outside every
// region ("Running outside gort", above).
static bool running_outside(gthread_t *t, int64_t t0, int64_t now) {
  if (now - t0 < ASK_RUN_NS || t->run_at < 0) return false;
  if (__atomic_load_n(t->nostop, __ATOMIC_ACQUIRE) != 0) {
    t->run_at = 0;  // a long region (a fault, a lock's wait): it parks when it leaves
    return false;
  }
  if (t->run_at != 0 && now - t->run_at < ASK_RUN_NS) return false;
  int64_t cpu = gort__os_tid_cpu_ns(t->tid);
  now = gort__nanotime();  // the reading's own time: with many threads asked, the pass's is stale
  if (cpu < 0) {
    t->run_at = -1;  // no clock: the ask's other way (ASK_NS) only
    return false;
  }
  if (t->run_at != 0 && cpu - t->run_cpu >= (now - t->run_at) * 3 / 4) return true;
  t->run_at = now, t->run_cpu = cpu;
  return false;
}

static bool await_asked(uint32_t e, int64_t t0, int64_t deadline) {
  int64_t ask_until = t0 + ASK_NS, spin_until = t0 + ASK_SPIN_NS;
  for (unsigned k = 0;; k++) {
    int64_t now = (k & 15) == 15 ? gort__nanotime() : 0;
    bool waiting = false;
    for (gthread_t *t = stw.threads; t != NULL; t = t->next) {
      if (!t->asked) continue;
      if (parked_for(t, e)) {
        atomic_fetch_add_explicit(&stw.n_asked, 1, memory_order_relaxed);
        t->asked = false;
        t->ask_backoff = 0;
        continue;
      }
      int how = take_blocked(t);  // it may have gone into a blocking call instead
      if (how != TAKE_ASK) {
        t->asked = false;
        if (how == TAKE_SIGNAL) send_stop_signal(t);  // the wait for it is the caller's
        // Held, it reads the flag only after the restart: withdrawn, so that
        // it cannot park later for nothing (or for its own stop).
        if (how == TAKE_HELD) __atomic_store_n(t->stop_pending, 0, __ATOMIC_RELAXED);
        continue;
      }
      if (now != 0 && running_outside(t, t0, now)) {
        signal_asked(t);
        continue;
      }
      if (now >= ask_until) {
        if (__atomic_load_n(t->nostop, __ATOMIC_ACQUIRE) != 0) {
          t->out_since = 0;  // parks when it leaves the region
        } else if (t->out_since == 0) {
          t->out_since = now;
        } else if (now - t->out_since >= ASK_OUT_NS) {
          signal_asked(t);
          continue;
        }
      }
      waiting = true;
    }
    if (!waiting) return true;
    if (now >= deadline) return false;
    if (now >= spin_until) {
      // A long region (faults, a lock's wait) or a thread without a CPU:
      // sleep until a thread parks (park wakes nstopped) or for a while,
      // then look again. Spinning on would keep a core from the threads
      // the stop waits for (2 cores: the stopper, a mark helper and the
      // program's thread).
      uint32_t n = atomic_load_explicit(&stw.nstopped, memory_order_acquire);
      int64_t nap = deadline - now < ASK_NAP_NS ? deadline - now : ASK_NAP_NS;
      gort__os_futex_wait_ns(&stw.nstopped, n, nap);
    } else {
      gort__cpu_relax();
    }
  }
}

bool gort__stw_stop_within(int64_t limit_ns) {
  raw_lock(&stw.lock);
  // An ask of an earlier stop may still be set on this thread (that stop
  // held it in a blocking call instead, and it has left no region since):
  // the stopper must not park at its next region's end, for its own stop.
  __atomic_store_n(&gort__stop_pending, 0, __ATOMIC_RELAXED);
  uint32_t e = atomic_fetch_add_explicit(&stw.epoch, 1, memory_order_acq_rel) + 1;
  bool any_asked = false;
  for (gthread_t *t = stw.threads; t != NULL; t = t->next) {
    t->asked = false;  // (the stopper's too: it may have been asked by the last stop)
    if (t == gort__stw_self) continue;
    t->unstoppable = false;
    int how = take_blocked(t);
    if (how == TAKE_HELD) continue;
    if (how == TAKE_ASK && t->ask_skip == 0) {
      // Release: a thread that sees the flag sees the new epoch.
      __atomic_store_n(t->stop_pending, 1, __ATOMIC_RELEASE);
      t->asked = any_asked = true;
      t->out_since = t->run_at = 0;
    } else {
      if (how == TAKE_ASK) t->ask_skip--;
      send_stop_signal(t);
    }
  }
  int64_t t0 = gort__nanotime();
  int64_t deadline = limit_ns >= 0 ? t0 + limit_ns : INT64_MAX;
  if (any_asked) {
    if (!await_asked(e, t0, deadline)) {
      for (gthread_t *t = stw.threads; t != NULL; t = t->next)
        if (t->asked) {
          t->asked = false;
          __atomic_store_n(t->stop_pending, 0, __ATOMIC_RELAXED);
        }
      return false;  // the caller restarts: gort__stw_start
    }
    t0 = gort__nanotime();
  }
  // Every signalled thread has parked for this stop (nstopped only wakes
  // this loop; stopped_epoch decides).
  // Spinning first, for up to STOP_SPIN_NS in all: a running thread takes
  // its signal and parks within microseconds, and a sleep on the futex
  // then added the wake-up of this thread to every stop (binary-trees'
  // final stops spent 0.09-0.11 ms stopping, now 0.06-0.09; the rest is
  // the signal's delivery, and a sleeping thread's wake-up to take it).
  // A thread that took its signal inside a region on an alternate signal
  // stack does not park there (stop_deferred) and may not call gort again
  // for a while: it is signalled again every RESIGNAL_NS.
  int64_t spin_until = t0 + STOP_SPIN_NS;
  for (gthread_t *t = stw.threads; t != NULL; t = t->next) {
    if (t == gort__stw_self || t->unstoppable || t->claimed) continue;
    int64_t resignal = t0 + RESIGNAL_NS;
    for (unsigned k = 0;; k++) {
      uint32_t n = atomic_load_explicit(&stw.nstopped, memory_order_acquire);
      if (parked_for(t, e)) break;
      if ((k & 63) != 63) {
        gort__cpu_relax();
        continue;
      }
      int64_t now = gort__nanotime();
      if (now >= deadline) return false;  // the caller restarts: gort__stw_start
      if (now >= resignal) {
        send_stop_signal(t);
        if (t->unstoppable) break;
        resignal = now + RESIGNAL_NS;
      }
      if (now < spin_until) {
        gort__cpu_relax();
        continue;
      }
      int64_t until = deadline < resignal ? deadline : resignal;
      gort__os_futex_wait_ns(&stw.nstopped, n, until - now);
    }
  }
  return true;
}

void gort__stw_stop(void) { (void)gort__stw_stop_within(-1); }

void gort__stw_stop_counts(uint64_t *asked, uint64_t *signalled) {
  *asked = atomic_load_explicit(&stw.n_asked, memory_order_relaxed);
  *signalled = atomic_load_explicit(&stw.n_signalled, memory_order_relaxed);
}

void gort__stw_start(void) {
  // Held threads go back to IN before released moves: one that waits in
  // block_end sees its call's end only after that.
  for (gthread_t *t = stw.threads; t != NULL; t = t->next)
    if (t->claimed) {
      t->claimed = false;
      atomic_store_explicit(&t->blocked, BLOCKED_IN, memory_order_release);
    }
  atomic_store_explicit(&stw.released, atomic_load(&stw.epoch), memory_order_release);
  gort__os_futex_wake(&stw.released, INT32_MAX);
  raw_unlock(&stw.lock);
}

// ---- blocked threads -----------------------------------------------------------------

static void block_end(gthread_t *t) {
  int saved = errno;  // the call's
  for (;;) {
    uint32_t r = atomic_load_explicit(&stw.released, memory_order_acquire);
    uint32_t in = BLOCKED_IN;
    if (atomic_compare_exchange_strong_explicit(&t->blocked, &in, BLOCKED_NO, memory_order_acq_rel,
                                                memory_order_acquire) ||
        in == BLOCKED_NO)  // (a fork in a handler meanwhile: the child's record)
      break;
    // HELD: a stop took this thread while it was blocked; its restart
    // sets IN, then moves released (a wake after r's read is not lost).
    gort__os_futex_wait(&stw.released, r);
  }
  errno = saved;
}

// Not inlined, and with every callee-saved register saved in its own
// frame (__builtin_unwind_init): the caller's pointers held in registers
// are then above the stack pointer it publishes, and fn's frames, below
// it, hold only copies of what arg names.
// A call that cannot be one runs as before, stopped by the signal: on an
// unregistered thread, in a no-stop region (its stop is deferred), inside
// another blocking call (a sleep in a signal handler), or off the
// thread's own stack (an alternate signal stack) and off any goroutine's.
GORT_TLS bool gort__stw_program_call GORT_HIDDEN;

GORT_NOINLINE long gort__stw_blocking(long (*fn)(void *), void *arg) {
  __builtin_unwind_init();
  gthread_t *t = gort__stw_self;
  void *volatile keep = arg;  // in this frame, above the published address
  uintptr_t sp = stack_pointer();
  if (t == NULL || gort__nostop > 0 || atomic_load_explicit(&t->blocked, memory_order_relaxed) != BLOCKED_NO ||
      off_own_stack(t, sp))
    return fn(arg);
  t->blocked_sp = sp;
  atomic_store_explicit(&t->blocked_program, gort__stw_program_call, memory_order_relaxed);
  atomic_store_explicit(&t->blocked, BLOCKED_IN, memory_order_release);
  long r = fn(keep);
  block_end(t);
  __asm__ volatile("" ::: "memory");  // keeps the spills and keep alive across fn
  return r;
}

// The program's sleeps and waits (blocking.c), linked wherever this file is.
extern const char gort__blocking_wrappers;
__attribute__((used)) static const char *const pull_blocking_wrappers = &gort__blocking_wrappers;

void gort__stw_block_abandon(void) {
  gthread_t *t = gort__stw_self;
  if (t != NULL && atomic_load_explicit(&t->blocked, memory_order_acquire) != BLOCKED_NO) block_end(t);
}

typedef struct {
  _Atomic uint32_t *addr;
  uint32_t val;
  int64_t ns;
} futex_call_t;

static long futex_call(void *arg) {
  futex_call_t *c = arg;
  gort__os_futex_wait_ns(c->addr, c->val, c->ns);
  return 0;
}

void gort__stw_futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns) {
  futex_call_t c = {addr, val, ns};
  gort__stw_blocking(futex_call, &c);
}

void gort__stw_program_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns) {
  bool was = gort__stw_program_call;
  gort__stw_program_call = true;
  gort__stw_futex_wait_ns(addr, val, ns);
  gort__stw_program_call = was;
}

static long sleep_call(void *arg) {
  gort__os_sleep_ns(*(int64_t *)arg);
  return 0;
}

void gort__stw_sleep_ns(int64_t ns) { gort__stw_blocking(sleep_call, &ns); }

// Records where the calling thread's stack ends, its registers spilled
// above that point, and runs fn: the collector's own stack is scanned from
// there, so the collector's frames below (whose dead slots hold stale
// pointers, and which a second mark would scan deeper) are never roots.
GORT_NOINLINE void gort__stw_run_recorded(void (*fn)(void *), void *arg) {
  __builtin_unwind_init();
  gort__stw_self->own_sp = stack_pointer();
  fn(arg);
  gort__stw_self->own_sp = 0;
  __asm__ volatile("" ::: "memory");  // keeps the spills alive across fn
}

// The top of the stack sp is on: a thread that runs a goroutine is on the
// goroutine's stack, not its own (sched/proc.c). Its own stack then holds
// only the scheduler's frames, which hold no pointers into the heap.
static uintptr_t stack_top(const gthread_t *t, uintptr_t sp) {
  uintptr_t top = gort__sched_stack_top(sp);
  return top != 0 ? top : t->stack_hi;
}

void gort__stw_foreach_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  for (gthread_t *t = stw.threads; t != NULL; t = t->next) {
    if (t == gort__stw_self) {
      if (t->own_sp == 0) gort__throw("gc: the collector's stack was not recorded");
      fn(t->own_sp, stack_top(t, t->own_sp), arg);
    } else {
      if (t->unstoppable) continue;  // warned
      // A held thread may run meanwhile, below blocked_sp only: its
      // handler's park for an older signal, its call's return.
      uintptr_t sp = t->claimed ? t->blocked_sp : atomic_load_explicit(&t->stopped_sp, memory_order_acquire);
      fn(sp - 128, stack_top(t, sp), arg);  // the red zone below sp too
    }
    if (t->tls_hi > t->tls_lo) fn(t->tls_lo, t->tls_hi, arg);
  }
}

void gort__stw_init(void) {
  if (stw.inited) return;
  stw.inited = true;
  if (gort__opts.gcsignal > 0) stw.signal = (int)gort__opts.gcsignal;
  gort__os_sigaction(stw.signal, on_stop_signal);
  gort__stop_deferred = stop_deferred;
}

// With the world stopped: calls fn with each registered thread's thread
// pointer, where glibc keeps the thread's descriptor (the leak check scans
// it: the DTV and the thread-specific data hang from it; leakcheck.c).
void gort__stw_foreach_thread(void (*fn)(gthread_t *t)) {
  for (gthread_t *t = stw.threads; t != NULL; t = t->next) fn(t);
}

void gort__stw_foreach_thread_pointer(void (*fn)(uintptr_t tp, void *arg), void *arg) {
  for (gthread_t *t = stw.threads; t != NULL; t = t->next)
    if (!t->unstoppable) fn(t->tls_hi, arg);
}
