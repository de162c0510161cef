// Goroutine stacks.
//
// See proc.c for the scheduler. C frames hold raw addresses of stack
// slots, so a C stack cannot move and cannot grow by copying as Go's do.
// Each goroutine therefore gets a fixed reservation (GORT_STACKSIZE, 256 KiB
// by default) whose cost is the pages it touches: an idle goroutine is
// about one page.
//
// 1. Stacks are slots of slabs of SLAB_SLOTS reservations, mapped once with
//    MAP_NORESERVE (lazily committed, not counted against overcommit).
//    100k goroutines of 256 KiB are 25 GiB of address space in 1563
//    mappings: cheap on a 47-bit address space, and far below
//    vm.max_map_count (65530).
// 2. A goroutine holds a stack only from its first run to its exit
//    (proc.c binds one in begin_run and unbinds it in the exit's after
//    step); a goroutine that waits in a run queue to start holds none.
//    skynet spawns ten children before any of them runs: at its peak about
//    70,000 goroutines waited to start while 13,000 had started. When the
//    G lived at the top of its own stack (until December 2026), all 70,000
//    had one; the first writes to 56,000 freshly carved stacks were half of
//    skynet's time (1.2 us a goroutine; 0.42 us since). Stacks and Gs are
//    pooled apart (proc.c), both hot first, so a steady stream of spawns
//    still reuses a warm stack. Rejected: binding lazily only the Gs made
//    fresh while dead Gs keep their stacks (a spawn from the pool, nearly
//    every spawn, would queue a stack again). A G made is promised a slot
//    (gort__stack_promise), so that gort_go, not the first run, reports
//    the address space running out. A stack's header (gstack_t: the G
//    bound to it, its bounds) is at the top of its slot, below the slot's
//    end by a colour of up to 2 KiB (see hdr_addr) so that headers and
//    first frames do not all share a few cache sets; an address finds its
//    goroutine through the slot's header (the overflow handler, the
//    collector). A slot is carved from a slab only when the binding P's
//    pool and the global pool are empty; a new slab (an mmap) once per
//    SLAB_SLOTS carvings. A carved slot's top page (its header and first
//    frames) is written at once,
//    so the top pages of POPULATE_BATCH slots are committed together, one
//    system call (MADV_POPULATE_WRITE through process_madvise) instead of
//    a page fault each. On our VMs a first write to a fresh page costs
//    10-12 us; populated in batches a page costs 1.2-2.5 us, and its first
//    write then about 4.4 us (the hypervisor's own mapping, which no call
//    can batch). The cost: up to POPULATE_BATCH - 1 pages committed before
//    their goroutines exist (60 KiB at most).
// 3. The lowest pages of each slot are a guard (an eighth of it, 4 to 64
//    KiB: see guard_bytes). With MADV_GUARD_INSTALL
//    (Linux 6.13+) a guard adds no mapping; where process_madvise takes it
//    too (6.15+), a new slab's 64 guards are one system call, not 64.
//    Without it, mprotect guards split the slab's mapping (two more
//    entries each), so they are made for the first MPROTECT_BUDGET stacks
//    only, which keeps 100k goroutines well inside vm.max_map_count; later stacks get a canary word at their
//    lowest address instead, checked when their goroutine switches out
//    (proc.c) and as it returns, which catches an overflow late, but catches
//    it, unless the overflow ran past the unprotected guard into the
//    neighbour's stack before either: that goroutine may then fail first,
//    with whatever its corrupted frames do (a canary is a check, not a
//    protection; only a kernel guard is both). Rejected: no
//    guard at all (an overflow silently corrupts the neighbour stack), and
//    a guard per slab only (same, inside a slab).
// 4. An overflow into a guard faults; the SIGSEGV handler runs on a
//    per-thread alternate stack (the faulting one is full), finds the
//    goroutine from the address (slabs are few; a slot's header names it)
//    and prints "goroutine N stack overflow". Other faults go to gort's
//    other hooks and then to the program's handler (os/fault.c).
// 5. A pooled stack's touched pages go back to the OS when it has stayed
//    in the global pool beyond a bound (sysmon trims it once a second:
//    proc.c, gort__sched_trim_stacks), not when its goroutine dies: a
//    pooled hot stack is the reason pooling pays, and madvise costs every
//    CPU a TLB shootdown.

#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/options.h"
#include "../base/persistent.h"
#include "../base/vg.h"
#include "../os/os.h"

enum {
  SLAB_SLOTS = 64,
  MPROTECT_BUDGET = 8192,
  ALTSTACK_BYTES = 64 * 1024,
  POPULATE_BATCH = 16,
};
_Static_assert(SLAB_SLOTS % POPULATE_BATCH == 0, "a batch never runs past its slab");

typedef struct slab {
  uintptr_t base;              // SLAB_SLOTS * stack_size bytes
  _Atomic uint32_t carved;     // slots handed out (a prefix; their headers may be being written)
  bool guarded;                // every slot's guard installed with the slab
  struct slab *_Atomic next;   // set before publication
  struct slab *newer;          // the next to carve after this one; stk.lock
} slab_t;

size_t gort__stack_size;
int gort__stack_guard_mode;

static struct {
  lock_t lock;                 // rank LOCK_STACKS; guards the slabs' carving and the promise
  slab_t *_Atomic slabs;       // every slab, newest first; read without the lock
  slab_t *cur;                 // the slab being carved (the oldest not full)
  slab_t *newest;              // the last mapped: slabs are carved in order
  uint64_t promised;           // Gs ever made: each may hold a stack at once
  uint64_t capacity;           // slots in every slab
  _Atomic int nmprotect;       // mprotect guards made
  bool installed;
  _Atomic bool no_batch;       // the kernel refused a guard batch: one call per slot
  _Atomic bool no_populate;    // the kernel cannot populate: first writes fault
} stk = {.lock = LOCK_INIT};

// The guard: an eighth of the slot, 4 to 64 KiB (32 KiB of the default
// 256). A frame larger than the guard steps over it into the stack below,
// the neighbour goroutine's, and nothing faults (a helper's hunt: 8 KiB
// frames over a one-page guard crashed elsewhere, silently); C keeps
// arrays of a few KiB on its stacks. Larger frames need the compiler's
// -fstack-clash-protection, which touches every page a frame spans.
static size_t guard_bytes = 4096;
#define GUARD_BYTES guard_bytes

void gort__stack_init(void) {
  int64_t want = gort__opts.stacksize;
  if (want < 16 * 1024) want = 16 * 1024;
  if (want > (int64_t)1 << 30) want = (int64_t)1 << 30;
  gort__stack_size = GORT_ALIGN_UP((size_t)want, (size_t)4096);
  size_t g = gort__stack_size / 8 & ~(size_t)4095;
  guard_bytes = g < 4096 ? 4096 : g > 65536 ? 65536 : g;
  // GORT_DEBUG=stackguard=1 or 2 forces a fallback, so that the tests run
  // them on kernels that have MADV_GUARD_INSTALL too.
  if (gort__opts.stackguard == 1 || gort__opts.stackguard == 2)
    gort__stack_guard_mode = (int)gort__opts.stackguard;
}

static slab_t *new_slab(void) {
  int err;
  void *p = gort__os_reserve(0, SLAB_SLOTS * gort__stack_size, 4096, &err);
  if (p == NULL) return NULL;
  slab_t *s = gort__persistent_alloc(sizeof *s, 64);
  if (s == NULL) {
    gort__os_unmap(p, SLAB_SLOTS * gort__stack_size);
    return NULL;
  }
  s->base = (uintptr_t)p;
  // Where transparent huge pages are "always", a goroutine's first touch
  // of its top page would fault in 2 MiB: eight whole stacks of RSS for
  // one goroutine. A stack grows a page at a time, so never huge.
  (void)gort__os_no_huge_pages(p, SLAB_SLOTS * gort__stack_size);
  // All the slab's guards in one call where the kernel can (most of a
  // fresh goroutine's cost was its guard's madvise, one per stack).
  if (__atomic_load_n(&gort__stack_guard_mode, __ATOMIC_RELAXED) == 0 &&
      !atomic_load_explicit(&stk.no_batch, memory_order_relaxed)) {
    if (gort__os_guard_strided(s->base, gort__stack_size, SLAB_SLOTS, GUARD_BYTES) == 0) s->guarded = true;
    else atomic_store_explicit(&stk.no_batch, true, memory_order_relaxed);
  }
  atomic_store_explicit(&s->next, atomic_load(&stk.slabs), memory_order_relaxed);
  atomic_store_explicit(&stk.slabs, s, memory_order_release);
  if (stk.newest != NULL) stk.newest->newer = s;
  if (stk.cur == NULL) stk.cur = s;
  stk.newest = s;
  stk.capacity += SLAB_SLOTS;
  return s;
}

// Each G, when first made (proc.c, g_alloc: a chunk of them at once), is
// promised a slot, so that gort_go, not a first run where no caller could
// be told, reports the address space running out (ENOMEM). Every stack is
// bound to at most one G, so the slots carved exceed the Gs made only by
// the free stacks a binding could not reach: those in other Ps' pools (up
// to 64 each), and those sysmon is trimming. The promise does not cover
// these: mapped ahead for every P, they cost 1.5 slabs of address space a
// P at the first spawn (24 MiB; 768 MiB a P with GORT_STACKSIZE=8M), and
// a program under ulimit -v with 8 Ps then failed its first gort_go. A
// carving past every promise maps a slab itself (gort__stack_new); only
// if that too is refused does a first run fail, fatally.
bool gort__stack_promise(uint32_t n) {
  lock(&stk.lock);
  bool ok = true;
  while (ok && stk.promised + n > stk.capacity) ok = new_slab() != NULL;
  if (ok) stk.promised += n;
  unlock(&stk.lock);
  return ok;
}

// Guards the slot at base; returns whether it needs a canary. Without the
// lock: two threads may both find MADV_GUARD_INSTALL missing, or both
// take the mprotect budget's last guard (one goes over by a guard).
static bool guard(uintptr_t base) {
  int mode = __atomic_load_n(&gort__stack_guard_mode, __ATOMIC_RELAXED);
  if (mode == 0) {
    if (gort__os_guard((void *)base, GUARD_BYTES, 0) == 0) return false;
    mode = 1;  // the kernel has no MADV_GUARD_INSTALL
    __atomic_store_n(&gort__stack_guard_mode, 1, __ATOMIC_RELAXED);
  }
  if (mode == 1) {
    if (atomic_load_explicit(&stk.nmprotect, memory_order_relaxed) < MPROTECT_BUDGET &&
        gort__os_guard((void *)base, GUARD_BYTES, 1) == 1) {
      atomic_fetch_add_explicit(&stk.nmprotect, 1, memory_order_relaxed);
      return false;
    }
    __atomic_store_n(&gort__stack_guard_mode, 2, __ATOMIC_RELAXED);
  }
  return true;
}

// Where slot i's header is: below the slot's top by its size and a
// colour. Slots are a power of two apart, so without the colour every
// header, and every goroutine's first frames, would sit at the same offset
// in its page: the same few sets of the caches, which hold only 8 to 16
// lines each. 1000 goroutines spawned before any runs (a batch) then
// missed every cache level to the last, and cost 2.5 times what a batch of
// 100 did per goroutine. COLOURS offsets, 64 bytes apart, spread them over
// that many sets; the largest (2 KiB) still leaves the rest of the top
// page for the first frames, so an idle goroutine still touches one page.
enum { COLOURS = 32, HDR_BYTES = 64 };
_Static_assert(sizeof(gstack_t) <= HDR_BYTES, "a stack's header is one line");

static uintptr_t hdr_addr(uintptr_t base, uint32_t i) {
  return base + gort__stack_size - HDR_BYTES - (uintptr_t)(i % COLOURS) * 64;
}

#define CANARY GORT_STACK_CANARY

// Commits the top pages of slots i .. i + POPULATE_BATCH - 1 of s (i a
// multiple of POPULATE_BATCH). Racing with those slots' own first writes
// (other threads carve them meanwhile) is harmless: a page already there is
// left as it is. Where memory is short it costs what the first writes
// would (reclaim, a cgroup's OOM killer), for up to 15 pages not in use yet.
static void populate(slab_t *s, uint32_t i) {
  if (atomic_load_explicit(&stk.no_populate, memory_order_relaxed)) return;
  uintptr_t top = s->base + i * gort__stack_size + gort__stack_size - 4096;
  int r = gort__os_populate_strided(top, gort__stack_size, POPULATE_BATCH, 4096);
  if (r == -EINVAL || r == -ENOSYS || r == -EPERM || r == -EBADF)
    atomic_store_explicit(&stk.no_populate, true, memory_order_relaxed);
}

// The lock covers only the choice of a slot: the guard's system call and
// the first write to the fresh page (a page fault) are outside it. Two Ms
// making goroutines at once (skynet) used to queue on this lock behind
// each other's faults, and then sleep on its futex: 99% of skynet's futex
// calls. A slot is published (carved) before its header is written;
// lookups come from a goroutine's own stack (the overflow handler, the
// collector asking about a thread's sp), which is in use only once a G
// is bound to it.
gstack_t *gort__stack_new(void) {
  lock(&stk.lock);
  slab_t *s = stk.cur;
  if (s != NULL && atomic_load_explicit(&s->carved, memory_order_relaxed) == SLAB_SLOTS) s = stk.cur = s->newer;
  if (s == NULL && (s = new_slab()) == NULL) {  // past every promise (gort__stack_promise)
    unlock(&stk.lock);
    return NULL;
  }
  uint32_t i = atomic_load_explicit(&s->carved, memory_order_relaxed);
  atomic_store_explicit(&s->carved, i + 1, memory_order_release);
  unlock(&stk.lock);
  if (i % POPULATE_BATCH == 0) populate(s, i);
  uintptr_t base = s->base + i * gort__stack_size;
  bool canary = !s->guarded && guard(base);
  gstack_t *st = (gstack_t *)hdr_addr(base, i);  // zero: fresh pages
  st->lo = base + GUARD_BYTES;
  st->canary = canary;
  if (canary) *(uint64_t *)st->lo = CANARY;
  // Under memcheck: a switch onto it is a stack switch (base/vg.h). Its
  // slab is never unmapped, so it is never deregistered.
  (void)VG_STACK_REGISTER(st->lo, (uintptr_t)st);
  return st;
}

uintptr_t gort__stack_lookup(uintptr_t addr, g_t **gp, bool *guardp) {
  size_t bytes = SLAB_SLOTS * gort__stack_size;
  for (slab_t *s = atomic_load_explicit(&stk.slabs, memory_order_acquire); s != NULL;
       s = atomic_load_explicit(&s->next, memory_order_relaxed)) {
    if (addr < s->base || addr >= s->base + bytes) continue;
    uintptr_t i = (addr - s->base) / gort__stack_size;
    if (i >= atomic_load_explicit(&s->carved, memory_order_acquire)) return 0;
    uintptr_t base = s->base + i * gort__stack_size, hdr = hdr_addr(base, (uint32_t)i);
    if (gp != NULL) *gp = atomic_load_explicit(&((gstack_t *)hdr)->g, memory_order_acquire);
    if (guardp != NULL) *guardp = addr - base < GUARD_BYTES;
    return hdr;
  }
  return 0;
}

void gort__stack_release(gstack_t *st) {
  uintptr_t lo = GORT_ALIGN_UP(st->lo, (uintptr_t)4096);
  uintptr_t hi = GORT_ALIGN_DOWN((uintptr_t)st, (uintptr_t)4096);
  if (hi > lo) gort__os_release((void *)lo, hi - lo, 1);
  if (st->canary) *(uint64_t *)st->lo = CANARY;  // its page reads as zero now
}

void gort__stack_overflow(const g_t *g, uintptr_t addr) {
  gort__print("gort: fatal error: goroutine %lld stack overflow (at %p, stack [%p, %p))\n",
              (long long)g->id, (void *)addr, (void *)g->stack_lo, (void *)g->stack_hi);
  signal(SIGABRT, SIG_DFL);
  abort();
}

void gort__stack_fork(int phase) {
  if (phase == 0) lock(&stk.lock);
  else if (phase == 1) unlock(&stk.lock);
  else lock_reinit(&stk.lock);
}

// ---- overflow --------------------------------------------------------------------------

// A fault in a guard page is an overflow; anything else is not ours (the
// other hooks', or the program's: os/fault.c chains it).
static bool on_fault(int sig, siginfo_t *info, void *uctx) {
  (void)sig, (void)uctx;
  uintptr_t addr = (uintptr_t)info->si_addr;
  g_t *g = NULL;
  bool in_guard = false;
  if (gort__stack_lookup(addr, &g, &in_guard) != 0 && in_guard && g != NULL) gort__stack_overflow(g, addr);
  return false;
}

// Once per M (a thread that runs goroutines): the alternate stack the
// fault handler runs on. From persistent memory: Ms are never freed.
void gort__stack_thread_init(void) {
  lock(&stk.lock);
  if (!stk.installed) {
    stk.installed = true;
    if (gort__os_fault_hook(GORT_FAULT_HOOK_STACK, on_fault, 0) != 0)
      gort__warn("sched: cannot install the fault handler; a stack overflow will not be reported");
  }
  unlock(&stk.lock);
  void *alt = gort__persistent_alloc(ALTSTACK_BYTES, 4096);
  if (alt == NULL || gort__os_sigaltstack(alt, ALTSTACK_BYTES) != 0)
    gort__warn("sched: no alternate signal stack; a stack overflow will not be reported");
}

// ---- the collector's view -------------------------------------------------------------------

// A running goroutine's thread is scanned from its sp to the top of its
// stack; the G's argument is scanned with the Gs (below).
uintptr_t gort__sched_stack_top(uintptr_t sp) { return gort__stack_lookup(sp, NULL, NULL); }

// With the world stopped. A G that is RUNNING or in a SYSCALL is on a
// thread, which the collector scans (stw.c); every status change that takes
// a G off its thread is made before its switch (proc.c), so a G is never
// on neither. A RUNNABLE or WAITING G's saved sp is current: it was stored
// before its M left its stack, or by ctx_init before the G's stack was
// published in stack_lo (proc.c, bind_stack), in program order on the
// binding thread, which is what the stopping signal sees. A G not yet
// bound has only its argument: before its first run, that is held nowhere
// else, so every live G's argument is a root.
enum { SCAN_ALL, SCAN_ALL_CLEAR, SCAN_RAN };

// SCAN_ALL: every G's stack; SCAN_ALL_CLEAR: the same, clearing each G's
// dirty flag; SCAN_RAN: only the stacks of Gs that ran since the last
// clear. Every live G's argument in each mode.
static void foreach_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, int mode) {
  for (g_t *g = gort__sched_allgs(); g != NULL; g = g->alllink) {
    uint32_t st = atomic_load_explicit(&g->status, memory_order_acquire);
    if (st == G_DEAD || st == G_IDLE) continue;
    fn((uintptr_t)&g->arg, (uintptr_t)(&g->arg + 1), arg);
    if (st != G_RUNNABLE && st != G_WAITING) continue;
    bool ran = mode == SCAN_ALL || atomic_exchange_explicit(&g->gcdirty, false, memory_order_relaxed);
    if (!ran && mode == SCAN_RAN) continue;
    if (__atomic_load_n(&g->stack_lo, __ATOMIC_ACQUIRE) == 0) continue;
    fn((uintptr_t)g->ctx.sp, g->stack_hi, arg);
  }
}

void gort__sched_foreach_stack_ran(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, bool only_ran) {
  foreach_stack(fn, arg, only_ran ? SCAN_RAN : SCAN_ALL_CLEAR);
}

void gort__sched_foreach_stack(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  foreach_stack(fn, arg, SCAN_ALL);
}
