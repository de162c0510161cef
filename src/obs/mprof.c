// Heap profiling: sampled allocations and their call stacks (Go: mprof.go;
// tcmalloc's sampler).
//
// Sampling. Each thread cache counts down the bytes until its next sample
// (malloc_fast.h); the allocation that crosses zero is sampled, and the next
// interval is drawn from an exponential distribution with mean
// GORT_MEMPROFILERATE, so samples form a Poisson process over bytes and
// every byte has the same chance to be sampled whatever the sizes.
//
// Records. A sample's stack (unwind.c's capture, frames inside gort
// skipped) is looked up in a hash table of buckets, one per distinct stack,
// counting sampled allocations and frees. The sampled block's address goes
// into a registry (open addressing), and the block is marked: a small
// block's live bit is cleared (pagemap.h), a large span's nsampled set.
// Either sends the block's free, and no other, to the allocator's slow
// path, which asks here (is_sampled) before calling the bit a double free.
//
// No recursion, no deadlock, never the heap it samples: buckets come from
// persistent metadata memory and the registry from the OS; nothing here
// runs with an allocator lock held; the stack capture neither allocates nor
// locks, and a per-thread flag makes any allocation made while recording
// count down without being sampled.

#define _GNU_SOURCE
#include "mprof.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "../alloc/mcache.h"
#include "../alloc/pagemap.h"
#include "../alloc/alloc_init.h"
#include "../base/lock.h"
#include "../base/options.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "unwind.h"

#define NBUCKETS 16384

typedef struct {
  uintptr_t addr;  // 0 empty, 1 deleted
  bucket_t *b;
  uint64_t size;
} sampled_t;

static struct {
  lock_t lock;  // rank LOCK_PROF; guards everything below
  bucket_t **table;  // NBUCKETS chains
  bucket_t *all;
  sampled_t *reg;
  size_t reg_cap, reg_used;  // used counts live and deleted slots
  uintptr_t self_lo, self_hi;  // gort's own code (libgort.so), skipped in stacks
  int64_t rate;
} prof = {.lock = LOCK_INIT};

static GORT_TLS bool in_profiler;
static GORT_TLS uint64_t rng;

// ---- the sampling interval -----------------------------------------------------

// ln(x) for x in (0, 1], without libm: split off the binary exponent and
// use the atanh series on the mantissa (error < 1e-7, plenty here).
static double ln(double x) {
  union {
    double d;
    uint64_t u;
  } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff) - 1023;
  v.u = (v.u & ((1ULL << 52) - 1)) | (1023ULL << 52);  // mantissa in [1, 2)
  double t = (v.d - 1) / (v.d + 1), t2 = t * t;
  double s = t * (2 + t2 * (2.0 / 3 + t2 * (2.0 / 5 + t2 * (2.0 / 7 + t2 * (2.0 / 9 + t2 * 2.0 / 11)))));
  return e * 0.6931471805599453 + s;
}

static int64_t next_interval(void) {
  if (prof.rate <= 0) return INT64_MAX;
  if (rng == 0) rng = gort__os_random64() | 1;
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  double u = (double)((rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;  // [0, 1)
  double x = -ln(1.0 - u) * (double)prof.rate;
  return x > 1e15 ? (int64_t)1e15 : (int64_t)x;
}

int64_t gort__mprof_rate(void) { return prof.rate; }

// ---- stacks and buckets --------------------------------------------------------

static uint32_t capture(uintptr_t *pcs) {
  uintptr_t raw[MPROF_MAX_DEPTH + 8];
  uint32_t n = gort__unwind_capture(raw, MPROF_MAX_DEPTH + 8);
  uint32_t depth = 0, i = 0;
  if (prof.self_hi != 0)
    while (i < n && raw[i] >= prof.self_lo && raw[i] < prof.self_hi) i++;
  for (; i < n && depth < MPROF_MAX_DEPTH; i++) pcs[depth++] = raw[i];
  return depth;
}

static uint64_t hash_stack(const uintptr_t *pcs, uint32_t depth) {
  uint64_t h = 1469598103934665603ULL;
  for (uint32_t i = 0; i < depth; i++) h = (h ^ pcs[i]) * 1099511628211ULL;
  return h ^ depth;
}

// Under prof.lock.
static bucket_t *bucket_for(const uintptr_t *pcs, uint32_t depth) {
  uint64_t h = hash_stack(pcs, depth);
  bucket_t **chain = &prof.table[h % NBUCKETS];
  for (bucket_t *b = *chain; b != NULL; b = b->next)
    if (b->hash == h && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof *pcs) == 0) return b;
  bucket_t *b = gort__persistent_alloc(sizeof *b + depth * sizeof *pcs, 16);
  if (b == NULL) return NULL;
  b->hash = h;
  b->depth = depth;
  memcpy(b->pcs, pcs, depth * sizeof *pcs);
  b->next = *chain;
  *chain = b;
  b->all_next = prof.all;
  prof.all = b;
  return b;
}

// ---- the registry of sampled blocks -------------------------------------------

static size_t reg_slot(uintptr_t addr, size_t cap) { return (size_t)((addr >> 4) * 0x9E3779B97F4A7C15ULL) & (cap - 1); }

// Rehashes into a table sized for the live entries: double when more than
// a quarter of the slots are live, else the same size (dropping the
// tombstones that frees of sampled blocks leave behind).
static bool reg_grow(void) {
  size_t live = 0;
  for (size_t i = 0; i < prof.reg_cap; i++) live += prof.reg[i].addr > 1;
  size_t cap = prof.reg_cap == 0 ? 512 : live * 4 > prof.reg_cap ? prof.reg_cap * 2 : prof.reg_cap;
  int err;
  sampled_t *t = gort__os_reserve(0, cap * sizeof *t, 4096, &err);
  if (t == NULL) return false;
  for (size_t i = 0; i < prof.reg_cap; i++) {
    if (prof.reg[i].addr <= 1) continue;
    size_t j = reg_slot(prof.reg[i].addr, cap);
    while (t[j].addr != 0) j = (j + 1) & (cap - 1);
    t[j] = prof.reg[i];
  }
  if (prof.reg != NULL) gort__os_unmap(prof.reg, prof.reg_cap * sizeof *prof.reg);
  prof.reg = t;
  prof.reg_cap = cap;
  prof.reg_used = live;
  return true;
}

static void reg_insert(uintptr_t addr, bucket_t *b, uint64_t size) {
  if ((prof.reg_used + 1) * 4 > prof.reg_cap * 3 && !reg_grow()) return;
  size_t j = reg_slot(addr, prof.reg_cap);
  while (prof.reg[j].addr > 1) j = (j + 1) & (prof.reg_cap - 1);
  if (prof.reg[j].addr == 0) prof.reg_used++;
  prof.reg[j] = (sampled_t){addr, b, size};
}

static sampled_t *reg_find(uintptr_t addr) {
  if (prof.reg_cap == 0) return NULL;
  for (size_t j = reg_slot(addr, prof.reg_cap);; j = (j + 1) & (prof.reg_cap - 1)) {
    if (prof.reg[j].addr == addr) return &prof.reg[j];
    if (prof.reg[j].addr == 0) return NULL;
  }
}

// ---- the hooks -----------------------------------------------------------------

static int64_t sample_alloc(void *p, size_t size) {
  if (in_profiler) return next_interval();
  in_profiler = true;
  uintptr_t pcs[MPROF_MAX_DEPTH];
  uint32_t depth = capture(pcs);
  mspan_t *s = span_of((uintptr_t)p);
  lock(&prof.lock);
  bucket_t *b = bucket_for(pcs, depth);
  if (b != NULL && s != NULL) {
    b->allocs++;
    b->alloc_bytes += size;
    reg_insert((uintptr_t)p, b, size);
    // Mark the block so that its free (and only its free) comes here.
    if (span_state(s) == SPAN_SMALL)
      live_clear((uintptr_t)p);  // the caller owns s (see alloc_init.h)
    else
      atomic_fetch_add_explicit(&s->nsampled, 1, memory_order_relaxed);
  }
  unlock(&prof.lock);
  in_profiler = false;
  return next_interval();
}

static bool is_sampled(const void *p) {
  lock(&prof.lock);
  bool found = reg_find((uintptr_t)p) != NULL;
  unlock(&prof.lock);
  return found;
}

// Before the free of a sampled block (malloc.c decides from its mark).
static void sample_free(void *p) {
  mspan_t *s = span_of((uintptr_t)p);
  lock(&prof.lock);
  sampled_t *e = reg_find((uintptr_t)p);
  if (e != NULL) {
    e->b->frees++;
    e->b->free_bytes += e->size;
    e->addr = 1;  // deleted
    if (s != NULL && span_state(s) == SPAN_LARGE)
      atomic_fetch_sub_explicit(&s->nsampled, 1, memory_order_relaxed);
  }
  unlock(&prof.lock);
}

void gort__mprof_foreach(void (*fn)(const bucket_t *b, void *arg), void *arg) {
  lock(&prof.lock);
  for (bucket_t *b = prof.all; b != NULL; b = b->all_next) fn(b, arg);
  unlock(&prof.lock);
}

// A fork while another thread records a sample must not leave the child
// with the lock held (it then hung in its first sampled malloc or free).
static void prof_prepare(void) { lock(&prof.lock); }
static void prof_parent(void) { unlock(&prof.lock); }
static void prof_child(void) { lock_reinit(&prof.lock); }
static fork_hook_t prof_fork = {
    .name = "mprof", .rank = LOCK_PROF, .prepare = prof_prepare, .parent = prof_parent, .child = prof_child};

void gort__mprof_init(void) {
  prof.rate = gort__opts.memprofilerate;
  if (prof.rate <= 0 || prof.rate == INT64_MAX) return;
  prof.table = gort__persistent_alloc(NBUCKETS * sizeof *prof.table, 4096);
  if (prof.table == NULL) return;
  gort__unwind_self_text(&prof.self_lo, &prof.self_hi);
  gort__start_add_fork_hook(&prof_fork);
  gort__unwind_init();
  gort__mprof_hooks.sample_free = sample_free;
  gort__mprof_hooks.is_sampled = is_sampled;
  gort__mprof_hooks.first_interval = next_interval;
  gort__mprof_hooks.sample_alloc = sample_alloc;  // last: enables sampling
  // A cache made before this (the first malloc can precede any constructor)
  // started with no countdown; give this thread's one now.
  // (Not in hardened mode, whose countdown must stay negative: harden.c.)
  if (gort__tls_cache != &gort__empty_cache && !gort__harden) gort__tls_cache->sample_left = next_interval();
}

void gort__mprof_foreach_sampled(void (*fn)(uintptr_t addr, void *arg), void *arg) {
  lock(&prof.lock);
  for (size_t i = 0; i < prof.reg_cap; i++)
    if (prof.reg[i].addr > 1) fn(prof.reg[i].addr, arg);
  unlock(&prof.lock);
}
