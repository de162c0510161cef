// Run queues: each P's local ring and runnext (Go's runqput, runqget,
// runqgrab, runqsteal), and the global queue. See proc.c for how the
// scheduler uses them.
//
// The local queue is a ring of RUNQ_SIZE slots with a head and a tail.
// Only the P's owner puts (it writes the slot, then publishes the tail with
// a release store); anyone takes, by advancing head with a CAS after
// reading the slots. A thief copies half of the ring into its own P's ring
// before its CAS, so a failed CAS costs only the copy. A full ring moves
// half of itself to the global queue (runq_put_slow), which bounds the
// ring and lets other Ps see work that one P produces in bursts.
//
// The global queue is a ring of G pointers, not a list linked through the
// Gs as Go's: when a G lived at the top of its own 256 KiB stack (until
// stacks were bound at first run, stack.c), a walk of a list of them
// touched a page, and missed the TLB, per G. Taking a batch from the list
// (globrunq_get walks up to 128) was 40% of skynet's time; from the ring
// it is a copy of pointers, and no G is touched. The ring
// grows by doubling (fresh address space, the old ring copied and
// unmapped), under the scheduler's lock, and never shrinks.
//
// runnext is one slot that the owner fills and empties at nearly every
// switch between a pair of goroutines that wake each other (a channel's
// partner, a spawn), and that a thief empties only when the owner has left
// it there for a while (runq_grab). Go takes it with a CAS on both sides.
// Here a locked instruction costs 7-8 ns, and the owner's CAS was a sixth
// of an unbuffered round trip (perf, ping-pong at 1 P: 16% of samples, on
// the cmpxchg alone). So the owner swaps it with plain loads and stores,
// and a thief, which comes at most once per 3 us sleep, pays instead, with
// an asymmetric Dekker handshake (the pattern of liburcu and folly's
// asymmetric fence):
//   owner: runnext_owner = 1; [compiler barrier] if runnext_thief == 0:
//          swap runnext with plain accesses; runnext_owner = 0.
//          Else runnext_owner = 0 and swap with a locked exchange.
//   thief: runnext_thief 0 -> 1 by CAS (one thief at a time); membarrier()
//          (every thread of the process that runs passes a full barrier);
//          if runnext_owner == 0: CAS runnext; runnext_thief = 0.
// Without the barrier both could miss the other (x86 lets the owner's
// load of runnext_thief pass its store of runnext_owner). membarrier
// interrupts the owner's CPU at an instruction boundary: if its store of
// runnext_owner retired before that point, it is visible when membarrier
// returns, and the thief backs off; if not, the owner's load comes after
// the interrupt, and sees the thief's flag, made visible before it. An
// owner that is not on a CPU passed the kernel's barrier when it left
// it. So the owner's plain swap and a thief's CAS never overlap, and
// the owner's exchange and the thief's CAS are each atomic. membarrier
// costs the thief 5-20 us here (an interrupt to the other CPU); a thief
// reaches it only if runnext still holds the G it saw, after its sleep
// when the owner runs (a P whose owner is in a system call is taken at
// once, at most one membarrier per victim and round). Where the kernel or
// a seccomp filter refuses membarrier (registered once, at the first
// goroutine: runq_fence_init), or with GORT_DEBUG=schedfence=0, both
// sides use locked instructions, as Go's. A refusal after registration
// cannot go back (fence_refused). A fork child clears both flags, which a
// thief on a thread the child lacks may have held (a review's find: such
// a child never stole that P's runnext again).
//
// Invariants: tail - head <= RUNQ_SIZE; slots [head, tail) hold Gs; only
// the owner writes tail and the slots at or after it. runnext becomes
// non-NULL only by its owner's store; with sched.runnext_fenced, its
// plain swap (runnext_owner set, runnext_thief read as 0) and a thief's
// CAS (runnext_thief set, runnext_owner read as 0 after membarrier) never
// overlap.

#include "../base/options.h"
#include "../gc/gc.h"
#include "../os/os.h"
#include "proc.h"

#define sched gort__sched

bool gort__runq_empty(p_t *p) {
  // runnext after head and tail, as Go's: a G moving from runnext to the
  // ring cannot be missed by both reads.
  for (;;) {
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
    g_t *next = atomic_load_explicit(&p->runnext, memory_order_acquire);
    if (atomic_load_explicit(&p->runqtail, memory_order_acquire) == t) return h == t && next == NULL;
  }
}

// Makes room for n more Gs in the global ring. Under sched.lock.
static void globrunq_reserve(uint32_t n) {
  uint32_t size = (uint32_t)atomic_load_explicit(&sched.runq_size, memory_order_relaxed);
  if (size + n <= sched.runq_cap) return;
  uint32_t cap = sched.runq_cap != 0 ? sched.runq_cap : 4096;
  while (cap < size + n) cap *= 2;
  int err;
  g_t **ring = gort__os_reserve(0, (size_t)cap * sizeof *ring, 4096, &err);
  if (ring == NULL) gort__throw("sched: out of memory for the global run queue");
  for (uint32_t i = 0; i < size; i++)
    ring[i] = sched.runq[(sched.runq_first + i) & (sched.runq_cap - 1)];
  if (sched.runq != NULL) gort__os_unmap(sched.runq, (size_t)sched.runq_cap * sizeof *ring);
  sched.runq = ring;
  sched.runq_cap = cap;
  sched.runq_first = 0;
}

// Appends gs[0..n) to the global queue. Under sched.lock.
static void globrunq_put_batch(g_t *const *gs, uint32_t n) {
  globrunq_reserve(n);
  uint32_t size = (uint32_t)atomic_load_explicit(&sched.runq_size, memory_order_relaxed);
  for (uint32_t i = 0; i < n; i++) sched.runq[(sched.runq_first + size + i) & (sched.runq_cap - 1)] = gs[i];
  atomic_fetch_add_explicit(&sched.runq_size, (int)n, memory_order_relaxed);
}

// Moves half of p's full queue and g to the global queue; false if a thief
// took some meanwhile (the caller retries the fast path).
static bool runq_put_slow(p_t *p, g_t *g, uint32_t h, uint32_t t) {
  g_t *batch[RUNQ_SIZE / 2 + 1];
  uint32_t n = (t - h) / 2;
  if (n != RUNQ_SIZE / 2) gort__throw("sched: runq_put_slow on a queue that is not full");
  for (uint32_t i = 0; i < n; i++)
    batch[i] = atomic_load_explicit(&p->runq[(h + i) % RUNQ_SIZE], memory_order_relaxed);
  if (!atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n, memory_order_release,
                                               memory_order_relaxed))
    return false;
  batch[n] = g;
  lock(&sched.lock);
  globrunq_put_batch(batch, n + 1);
  unlock(&sched.lock);
  return true;
}

void gort__runq_fence_init(void) {
  sched.runnext_fenced = gort__opts.schedfence && gort__os_membarrier_register() == 0;
}

// membarrier refused after it was registered (a seccomp filter installed
// since the first goroutine): owners may be mid-swap without a fence, so
// there is no going back to locked instructions; runnext is then never
// stolen, and a goroutine readied there waits for its P's running one to
// reach a safe point. Said once.
static void fence_refused(int err) {
  static _Atomic bool said;
  if (!atomic_exchange(&said, true))
    gort__print("gort: warning: membarrier refused (error %d) after the scheduler registered it: goroutines in "
                "runnext are no longer stolen by idle Ps (GORT_DEBUG=schedfence=0 avoids membarrier)\n", -err);
}

// The owner's swap of runnext for g (NULL: take it); returns the old one.
GORT_INLINE g_t *runnext_swap(p_t *p, g_t *g) {
  if (gort_likely(sched.runnext_fenced)) {
    atomic_store_explicit(&p->runnext_owner, 1, memory_order_relaxed);
    // Neither this store nor the loads below may move across (the CPU's
    // reordering is the thief's membarrier's to undo, not the compiler's).
    atomic_signal_fence(memory_order_seq_cst);
    // Acquire: a thief's CAS on runnext, before its flag's release, is seen.
    if (gort_likely(atomic_load_explicit(&p->runnext_thief, memory_order_acquire) == 0)) {
      g_t *old = atomic_load_explicit(&p->runnext, memory_order_relaxed);
      atomic_store_explicit(&p->runnext, g, memory_order_release);
      atomic_store_explicit(&p->runnext_owner, 0, memory_order_release);
      return old;
    }
    atomic_store_explicit(&p->runnext_owner, 0, memory_order_relaxed);
  } else if (g != NULL && atomic_load_explicit(&p->runnext, memory_order_relaxed) == NULL) {
    // Unfenced, an empty runnext still takes a plain store: only the owner
    // makes it non-NULL, and a thief's CAS expects a G it saw there.
    atomic_store_explicit(&p->runnext, g, memory_order_release);
    return NULL;
  }
  return atomic_exchange_explicit(&p->runnext, g, memory_order_acq_rel);
}

// A thief's take of runnext if it still holds next (the thief-side half
// of the handshake above).
static bool runnext_steal(p_t *p, g_t *next) {
  if (!sched.runnext_fenced)
    return atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL, memory_order_acq_rel,
                                                   memory_order_relaxed);
  uint32_t zero = 0;
  if (!atomic_compare_exchange_strong_explicit(&p->runnext_thief, &zero, 1, memory_order_acquire,
                                               memory_order_relaxed))
    return false;  // another thief is at it
  bool ok = false;
  if (atomic_load_explicit(&p->runnext, memory_order_relaxed) == next) {
    int err = gort__os_membarrier();
    if (gort_unlikely(err != 0)) fence_refused(err);
    else if (atomic_load_explicit(&p->runnext_owner, memory_order_acquire) == 0)
      ok = atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL, memory_order_acq_rel,
                                                   memory_order_relaxed);
  }
  atomic_store_explicit(&p->runnext_thief, 0, memory_order_release);
  return ok;
}

// Called by p's owner only.
void gort__runq_put(p_t *p, g_t *g, bool next) {
  if (next) {
    g = runnext_swap(p, g);
    if (g == NULL) return;  // the old runnext goes to the ring
  }
  for (;;) {
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    if (t - h < RUNQ_SIZE) {
      atomic_store_explicit(&p->runq[t % RUNQ_SIZE], g, memory_order_relaxed);
      atomic_store_explicit(&p->runqtail, t + 1, memory_order_release);
      return;
    }
    if (runq_put_slow(p, g, h, t)) return;
  }
}

// Called by p's owner only. *inherit: the G came from runnext, and runs in
// the time slice of the G that readied it (schedtick does not advance), so
// that a pair readying each other is one long runner to sysmon.
g_t *gort__runq_get(p_t *p, bool *inherit) {
  *inherit = false;
  if (atomic_load_explicit(&p->runnext, memory_order_relaxed) != NULL) {
    g_t *next = runnext_swap(p, NULL);  // NULL: a thief took it meanwhile
    if (next != NULL) {
      *inherit = true;
      return next;
    }
  }
  for (;;) {
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    if (t == h) return NULL;
    g_t *g = atomic_load_explicit(&p->runq[h % RUNQ_SIZE], memory_order_relaxed);
    if (atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + 1, memory_order_release,
                                                memory_order_relaxed)) {
      // The G after it in the ring probably runs next but one: its first
      // line (what a switch touches, sched.h) is cold when goroutines wait
      // long in the ring (skynet's 70,000), and begin_run's miss on it was
      // a seventh of skynet's samples. Racy (a thief may take it): a
      // prefetch of a G that runs elsewhere costs nothing but the fetch.
      if (t - h > 1) __builtin_prefetch(atomic_load_explicit(&p->runq[(h + 1) % RUNQ_SIZE], memory_order_relaxed), 1);
      return g;
    }
  }
}

// Takes half of p's queue into batch (a ring of RUNQ_SIZE) at batch_head;
// returns how many. With steal_next, an empty ring gives up its runnext.
static uint32_t runq_grab(p_t *p, g_t *_Atomic *batch, uint32_t batch_head, bool steal_next) {
  for (;;) {
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
    uint32_t n = t - h;
    n -= n / 2;
    if (n == 0) {
      if (!steal_next) return 0;
      g_t *next = atomic_load_explicit(&p->runnext, memory_order_acquire);
      if (next == NULL) return 0;
      // The owner is probably about to run it (it was just readied): give it
      // a moment, as Go does (usleep(3)), rather than bounce it between
      // Ps. A sleep, not sched_yield: with the timer slack it lasts about
      // 50 us, long enough for a producer to fill a buffered channel and
      // park, so that its consumer drains it on the same P instead of each
      // element crossing cores. Side by side (2 Ps, 3 runs each): cap-1024
      // channel 7-19 -> 34-40 Mitems/s, 4-way select 151-209 -> 95-101
      // ns; round trip and skynet unchanged; spawn 96 -> 104 ns. The
      // sleeping thief stays counted as spinning, so readies meanwhile
      // wake no other M, and a collection's stop takes it without a
      // signal. One sleep per grab: a P whose runnext refills faster than
      // that (a chain of goroutines handing a token on) would otherwise
      // hold the only spinning M here, away from the other queues and the
      // timers.
      bool owner_running = atomic_load_explicit(&p->status, memory_order_relaxed) == P_RUNNING;
      if (owner_running) gort__stw_sleep_ns(3000);
      if (!runnext_steal(p, next)) {
        // The owner ran it meanwhile (or is taking it, or another thief
        // is): leave it. A P whose owner is away may have a new one.
        if (owner_running || atomic_load_explicit(&p->runnext, memory_order_relaxed) == next) return 0;
        continue;
      }
      atomic_store_explicit(&batch[batch_head % RUNQ_SIZE], next, memory_order_relaxed);
      return 1;
    }
    if (n > RUNQ_SIZE / 2) continue;  // h and t read at different times
    for (uint32_t i = 0; i < n; i++) {
      g_t *g = atomic_load_explicit(&p->runq[(h + i) % RUNQ_SIZE], memory_order_relaxed);
      atomic_store_explicit(&batch[(batch_head + i) % RUNQ_SIZE], g, memory_order_relaxed);
    }
    if (atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n, memory_order_release,
                                                memory_order_relaxed))
      return n;
  }
}

// Steals half of victim's queue into p's (p's owner calls); returns one G.
g_t *gort__runq_steal(p_t *p, p_t *victim, bool steal_next) {
  uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
  uint32_t n = runq_grab(victim, p->runq, t, steal_next);
  if (n == 0) return NULL;
  n--;
  g_t *g = atomic_load_explicit(&p->runq[(t + n) % RUNQ_SIZE], memory_order_relaxed);
  if (n > 0) atomic_store_explicit(&p->runqtail, t + n, memory_order_release);
  return g;
}

// ---- the global queue (sched.lock held) -------------------------------------------------------

void gort__globrunq_put(g_t *g) { globrunq_put_batch(&g, 1); }

// A G from the global queue and, into p's queue, up to its fair share more.
g_t *gort__globrunq_get(p_t *p, int max) {
  int size = atomic_load_explicit(&sched.runq_size, memory_order_relaxed);
  if (size == 0) return NULL;
  int n = size / procs() + 1;
  if (n > size) n = size;
  if (max > 0 && n > max) n = max;
  if (n > RUNQ_SIZE / 2) n = RUNQ_SIZE / 2;
  atomic_fetch_sub_explicit(&sched.runq_size, n, memory_order_relaxed);
  uint32_t mask = sched.runq_cap - 1, first = sched.runq_first;
  sched.runq_first = (first + (uint32_t)n) & mask;
  g_t *g = sched.runq[first];
  for (int i = 1; i < n; i++) gort__runq_put(p, sched.runq[(first + (uint32_t)i) & mask], false);
  return g;
}

