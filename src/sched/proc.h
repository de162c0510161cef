// M, P and the scheduler's global state, shared by proc.c, sysmon.c,
// timer.c and dump.c. See proc.c for the design.

#ifndef GORT_SCHED_PROC_H
#define GORT_SCHED_PROC_H

#include "../os/os.h"
#include "gort/sched.h"
#include "sched.h"

enum { RUNQ_SIZE = 256, MAXPROCS = 256 };
enum { P_IDLE, P_RUNNING, P_SYSCALL, P_DEAD };

#define GORT_PFREE_MAX 64  // dead Gs, and free stacks, a P keeps (proc.c)

// Pools of dead Gs and free stacks (proc.c, "spawning and exiting", says
// why stacks of pointers and not lists through their members), oldest at
// the bottom. A P's own: owner only.
typedef struct {
  void *a[GORT_PFREE_MAX];
  int32_t n;
} ppool_t;

// The global ones: guarded by sched.lock; n is read without it.
typedef struct {
  void **a;
  _Atomic int n;
  uint32_t cap;
} ptrstack_t;

typedef struct p {
  int32_t id;
  _Atomic uint32_t status;       // P_*; CAS by sysmon (retake) and gort_syscall_exit
  struct m *_Atomic m;           // the owning M; atomic: read by sysmon
  struct p *link;                // sched.pidle; guarded by sched.lock
  uint32_t schedtick;            // time slices begun on this P; owner only
  // Every schedule on this P, a time slice's inherited ones too (runnext);
  // owner only. Every 61st looks at the timers and the global queue.
  uint32_t nsched;
  _Atomic uint32_t tick;         // schedtick published for sysmon
  _Atomic bool slice_over;       // set by sysmon: the time slice (10 ms) is used up
  _Atomic uint32_t syscalltick;  // gort_syscall_enter count, for sysmon
  // Go's runq: the owner writes tail and the slots; anyone advances head
  // with a CAS. Slots are atomics so that a thief's racy copy is defined.
  _Atomic uint32_t runqhead, runqtail;
  g_t *_Atomic runq[RUNQ_SIZE];
  g_t *_Atomic runnext;          // owner puts; owner or thief takes (runq.c)
  _Atomic uint32_t runnext_owner; // 1 while the owner swaps runnext with plain stores (runq.c)
  _Atomic uint32_t runnext_thief; // 1 while a thief takes runnext (runq.c)
  ppool_t gfree;                 // dead Gs, without stacks
  ppool_t sfree;                 // free stacks
  char *gchunk;                  // fresh Gs (proc.c, g_alloc); owner only
  uint32_t gchunk_left;
  timers_t timers;
  // Goroutine ids in batches and the live count in halves, so that a spawn
  // and an exit write no line that another P writes (proc.c, "Counting
  // goroutines"). Owner only; the counts are read by anyone.
  int64_t goidcache, goidend;
  _Atomic int64_t nspawned, nexited;
  _Atomic uint64_t lathist[32];  // scheduling latency samples (proc.c); owner writes
  // sysmon's own view (sysmon thread only).
  uint32_t sm_tick, sm_syscalltick;
  int64_t sm_when;
} __attribute__((aligned(GORT_CACHELINE))) p_t;

typedef struct m {
  ctx_t g0ctx;                   // the scheduler loop's context while a G runs
  g_t *_Atomic curg;             // the G it runs; read by sysmon and dumps
  p_t *p;                        // owned P, or NULL (idle, or in a system call)
  p_t *nextp;                    // handed over by startm; read after the note
  p_t *oldp;                     // the P it had at gort_syscall_enter
  g_t *resume;                   // a G whose park was refused: run it next
  _Atomic uint32_t note;         // futex word: 1 once woken
  bool spinning;                 // looking for work (counted in nmspinning)
  struct m *schedlink;           // sched.midle; guarded by sched.lock
  uint64_t rand;
  int id;
  void *tsan_g0;                 // ThreadSanitizer's fiber of the thread itself
} __attribute__((aligned(GORT_CACHELINE))) m_t;

typedef struct {
  lock_t lock;                   // rank LOCK_SCHED; guards the fields up to allp
  // The global run queue: a ring of G pointers (runq.c says why not a
  // list through the Gs), runq_cap a power of two, grown by doubling.
  g_t **runq;
  uint32_t runq_cap, runq_first;
  _Atomic int runq_size;         // written under lock, read without
  m_t *midle;                    // idle Ms
  int nmidle;
  p_t *pidle;                    // idle Ps
  _Atomic int npidle;            // written under lock, read without
  ptrstack_t gfree;              // dead Gs beyond the Ps' lists
  ptrstack_t sfree;              // free stacks beyond the Ps' lists
  gstack_t *scold;               // free stacks whose pages went back to the OS
  _Atomic int nscold;
  int want_procs;                // GORT_MAXPROCS or gort_maxprocs, before start; 0: not yet known
  int affinity_cpus;             // the starting thread's affinity, for want_procs
  _Atomic int gomaxprocs;        // Ps in service: allp[0 .. gomaxprocs)
  p_t *allp[MAXPROCS];           // every P made (set once each, then read freely)
  _Atomic int nallp;
  _Atomic int nmspinning;
  _Atomic int mcount;
  _Atomic int mlive;             // Ms running (mcount survives fork; this does not)
  _Atomic bool started;
  bool runnext_fenced;           // membarrier registered: runnext's owner swaps it without a locked instruction (runq.c)
  _Atomic bool sysmon_started;   // false again in a forked child (fork.c)
  _Atomic int64_t ngoroutine;    // live goroutines spawned or ended without a P
  _Atomic int64_t goidgen;       // ids handed out, to Ps in batches
  g_t *_Atomic allgs;            // every G ever made; grows at its head
  _Atomic int64_t nowish;        // the monotonic clock as sysmon last read it (0: not yet)
  g_t *forked_in_syscall;        // a fork child's goroutine that forked inside a system-call section
  bool sysmon_wait;              // sysmon sleeps until a P leaves the idle list; sched.lock
  _Atomic uint32_t sysmon_note;  // its futex word: 1 once woken
} sched_t;

extern sched_t gort__sched GORT_HIDDEN;

GORT_INLINE int procs(void) {
  return atomic_load_explicit(&gort__sched.gomaxprocs, memory_order_relaxed);
}

// The time for the goroutine dump's "waited" and "created" stamps: sysmon's
// last reading (at most its sleep old: 20 us to 10 ms while goroutines run;
// after an idle spell, until pidle_get's wake-up reaches it) instead of a clock
// read on every park and spawn (vDSO, 5-10 ns: a tenth of a spawn).
GORT_INLINE int64_t sched_nowish(void) {
  int64_t t = atomic_load_explicit(&gort__sched.nowish, memory_order_relaxed);
  return t != 0 ? t : gort__os_nanotime_coarse();
}

m_t *gort__sched_getm(void) GORT_HIDDEN;

// Per-thread state read inline (proc.c, "Per-thread state"). gort's TLS and
// glibc's errno are static TLS, at offsets from the thread pointer that are
// the same in every thread, so one instruction through %fs reads the
// calling thread's copy wherever the goroutine runs now: the compiler sees
// an asm it may neither cache nor move across the switch (volatile, with a
// memory clobber), where a plain TLS access would let it keep an address
// computed on the old thread. The offsets are measured at start-up (an
// offset of 0 is the thread control block itself: not measured yet, and
// the calls below go to the out-of-line readers).
extern _Atomic intptr_t gort__tls_m_off GORT_HIDDEN;
extern _Atomic intptr_t gort__tls_errno_off GORT_HIDDEN;
void gort__sched_tls_init(void) GORT_HIDDEN;

GORT_INLINE m_t *sched_m(void) {
#if defined(__x86_64__)
  intptr_t off = atomic_load_explicit(&gort__tls_m_off, memory_order_relaxed);
  if (gort_likely(off != 0)) {
    m_t *m;
    __asm__ volatile("movq %%fs:(%1), %0" : "=r"(m) : "r"(off) : "memory");
    return m;
  }
#endif
  return gort__sched_getm();
}

// The running goroutine of the calling thread (gort__sched_getg, inline).
GORT_INLINE g_t *sched_g(void) {
  m_t *m = sched_m();
  return m != NULL ? atomic_load_explicit(&m->curg, memory_order_relaxed) : NULL;
}

// The safe point: yields if sysmon asked the running goroutine to
// (gort__sched_safepoint is this, out of line).
GORT_INLINE void sched_safepoint(void) {
  g_t *g = sched_g();
  if (g != NULL && gort_unlikely(atomic_load_explicit(&g->preempt, memory_order_relaxed))) gort_yield();
}
// runq.c. The local queue's put and get are for p's owner only.
void gort__runq_put(p_t *p, g_t *g, bool next) GORT_HIDDEN;
g_t *gort__runq_get(p_t *p, bool *inherit) GORT_HIDDEN;
bool gort__runq_empty(p_t *p) GORT_HIDDEN;
// Steals half of victim's queue into p's (p's owner calls); returns one G.
g_t *gort__runq_steal(p_t *p, p_t *victim, bool steal_next) GORT_HIDDEN;
void gort__runq_fence_init(void) GORT_HIDDEN;
// The global queue: with sched.lock held.
void gort__globrunq_put(g_t *g) GORT_HIDDEN;
g_t *gort__globrunq_get(p_t *p, int max) GORT_HIDDEN;
void gort__sched_startm(p_t *p, bool spinning) GORT_HIDDEN;
void gort__sched_wakep(void) GORT_HIDDEN;
void gort__sched_handoffp(p_t *p) GORT_HIDDEN;
void gort__sched_safepoint(void) GORT_HIDDEN;
void gort__sched_trim_stacks(void) GORT_HIDDEN;
int gort__go_at(void (*fn)(void *), void *arg, const char *file, int line);
GORT_NORETURN void gort__stack_overflow(const g_t *g, uintptr_t addr) GORT_HIDDEN;
void gort__sched_signals_init(void) GORT_HIDDEN;
void gort__sched_fork_init(void) GORT_HIDDEN;
// fork: 0 takes the stacks' lock, 1 releases it, 2 re-initializes it.
void gort__stack_fork(int phase) GORT_HIDDEN;

#endif  // GORT_SCHED_PROC_H
