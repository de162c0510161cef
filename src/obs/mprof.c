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
// A thread's samples come from a few stacks over and over: each thread
// keeps the last few it sampled, word for word, with their buckets (see
// "walk memos"), and a sample from one of them costs a check of the
// stack's words (about 100 instructions), not a walk, a hash and a chain
// lookup (about 650). With the counters' locked adds gone (see
// "Counters"), a sample and its free cost about 850 instructions instead
// of 1,380 (callgrind, glibc's bench-malloc-thread shape); with the
// sampled block's free put on the thread's list by a short path of its
// own (malloc.c, gort__free_owned_unlive), about 600; with the
// registry's hash fixed (addr_hash) and the interval drawn from a table
// (next_interval), about 550, and 575 with deletions that leave no
// tombstone (reg_delete: 25 instructions more, but no table mapped anew
// and unmapped every 40 samples): 3.1% of that shape's instructions at
// the default rate, against the 2% asked. What is left: the stack's memo
// check (about 150), the two hooks' records and locks (about 200), the
// draw (50) and the detours through the slow paths (about 110).
// Instructions are not the whole cost: at one sample per 140 allocations
// everything a sample touches is cold. A sample and its free cost that
// shape about 85 ns, 4% of its time (0.7% at GORT_MEMPROFILERATE=2 MiB,
// 15% at 128 KiB: linear in the samples). Two of their misses are gone:
// the span table and the span, for the shard (now in the page info:
// pagemap.h, PINFO_SHARD), and, at the free, the bucket (an entry points
// at its stripe); with every 32 KiB sampled that took 12% off the
// profiler's cost, at the default rate less than the runs' noise.
// Measured and left out: shards biased to the thread that uses them
// (entered without the lock, the bias revoked by any other thread with
// membarrier, as sched/runq.c's runnext) took away the four locked
// instructions of a sample and its free, and perf's share of the
// profiler's own functions in that shape from 4.0% to 2.9% of the run,
// but not its time (13 interleaved runs: 1.040 of the profiler-off time
// without, 1.049 with); at 32 KiB it saved 5%. Not worth 150 lines of
// handshake.
//
// No global lock. Buckets are never freed and never move: a lookup walks
// its chain with no lock (a new bucket is published with a release store
// at the chain's head, under buckets_lock, which only a stack seen for
// the first time takes), and the counters are written under the locks
// of the registry's shards (below), one stripe per shard. The registry is
// split in NSHARDS shards, each with its own lock and table, by the
// thread that allocates from the block's span (its cache's id, kept in
// the span while any of its blocks is sampled: mspan.h, prof_shard), so
// that a thread's samples and their frees find their shard's lines in
// their own core's cache (sharded by address, two threads of glibc's
// thread shape missed on the other core's lock and slots half the time);
// a shard's first table (REG_FIRST slots) lives in the shard itself and
// the OS is asked for one only when more than half that many blocks are
// live. A small span's shard is also in its pages' info (pagemap.h,
// PINFO_SHARD), where a sample and its free read it without the span.
// (With one lock over both, two threads of glibc's bench-malloc-thread
// shape, blocks of 4 B..32 KiB, one sample per 140 allocations, spent a
// fifth of their time in the profiler; one thread a tenth.)
// Counters. A bucket's counters live in NSHARDS stripes of a cache line
// each, away from the bucket's key (hash, depth, stack), and a sample or
// its free counts in the stripe of the registry shard it locks, so that
// threads count apart, and with plain loads and stores: only the holder
// of that shard's lock writes the stripe. (Locked adds, four a sample
// and its free, were a third of the profiler's time on a VM where a
// locked instruction costs 5-6 ns.) With one set beside the key, two threads of glibc's
// bench-malloc-thread shape, whose samples share their few stacks, moved
// the line between their cores at every sample: the counters' locked adds
// and the next lookup's read of the key were each a miss on the other
// core's line (a third of the profiler's samples), and the profiler cost
// the pair 19% of its time against 10% for one thread.
// A reader takes no lock: it sums every stripe's frees before any
// stripe's allocations, with acquire (counts are stored with release),
// and a free is counted after its allocation, in the same stripe (the
// block's span keeps its shard while it holds samples) and under the same
// lock, which orders them: a free it sees was counted before that read,
// its allocation before that, and so before the later read of its
// stripe's allocations. So a reader never sees more frees than
// allocations.
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
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../alloc/mcache.h"
#include "../alloc/pagemap.h"
#include "../alloc/alloc_init.h"
#include "../base/lock.h"
#include "../base/options.h"
#include "../base/noscan.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "memopool.h"
#include "ownframes.h"
#include "unwind.h"

#define NBUCKETS 16384
#define NSHARDS 8  // registry shards, and counter stripes per bucket
#define REG_FIRST 16   // slots in each shard's first table (in the shard)
#define REG_MAPPED 128 // the smallest table mmap'd (3 KiB: one page)

typedef struct {
  uintptr_t addr;  // 0: empty
  // The sample's counters in its bucket's stripe for this shard: the free
  // counts there without loading the bucket (one miss fewer in a chain of
  // dependent ones: entry, bucket, stripe).
  bucket_counts_t *counts;
  uint64_t size;
} sampled_t;

static struct {
  lock_t buckets_lock;  // rank LOCK_PROF; guards adding buckets
  bucket_t *_Atomic *table;  // NBUCKETS chains; heads stored with release
  bucket_t *_Atomic all;
  uintptr_t self_lo, self_hi;  // gort's own code (libgort.so), skipped in stacks
  int64_t rate;
} prof = {.buckets_lock = LOCK_INIT};

// One shard of the registry of sampled blocks.
typedef struct {
  lock_t lock;  // rank LOCK_PROF; guards the rest; never two shards' at once
  sampled_t *reg;
  size_t reg_cap, reg_used;  // slots, and how many hold a block
  // The first table, until more than REG_FIRST / 2 blocks are live: most
  // programs keep few sampled blocks per shard, and a page per shard was
  // 64-128 KiB of RSS in small programs.
  sampled_t first[REG_FIRST];
} __attribute__((aligned(GORT_CACHELINE))) shard_t;

static shard_t shards[NSHARDS];
// Holds the addresses of sampled blocks: never a root (base/noscan.h).
GORT_NOSCAN(shards)

// The product's high half: its low bits depend only on the address's low
// bits, which blocks of a large size class share (blocks of 1 KiB, their
// low 6 bits 0 after the shift, fell in one slot of 64 and made probe
// chains of 8-10 slots).
static uint64_t addr_hash(uintptr_t addr) { return ((addr >> 4) * 0x9E3779B97F4A7C15ULL) >> 32; }
// The shard of a block of span s (see the top).
static shard_t *shard_of(const mspan_t *s) { return &shards[s->prof_shard % NSHARDS]; }
_Static_assert(NSHARDS == PINFO_SHARDS, "a small span's shard is kept in its page info");
// The page info of p's page: 0 if p is not in an arena.
GORT_INLINE uint32_t info_of(uintptr_t p) {
  arena_t *a = arena_of(p);
  return a == NULL ? 0 : atomic_load_explicit(&a->pinfo[arena_page_index(p)], memory_order_relaxed);
}
// The shard of block p: for a block of a small span, from its page info
// (pagemap.h, PINFO_SHARD) without a load of the span table or the span,
// and *sp = NULL; else from its span (*sp; NULL if p has none, and then
// so is the shard).
GORT_INLINE shard_t *block_shard(uintptr_t p, uint32_t info, mspan_t **sp) {
  if (pinfo_is_small(info)) {
    *sp = NULL;
    return &shards[pinfo_shard(info)];
  }
  *sp = span_of(p);
  return *sp == NULL ? NULL : shard_of(*sp);
}
// b's counters that shard sh's lock guards (see "Counters").
static bucket_counts_t *stripe_of(const bucket_t *b, const shard_t *sh) { return &b->counts[sh - shards]; }

static GORT_TLS bool in_profiler;
static GORT_TLS uint64_t rng;

// ---- the sampling interval -----------------------------------------------------

// The draw, -ln(v) * rate for v uniform in (0, 1), without libm and
// without a division (about 50 instructions with the generator; with the
// atanh series it replaced, 66 and a division): -ln(v) is
// ln 2 * -log2(v), and log2 of a 64-bit integer is its bit length plus
// log2 of its mantissa, read from a table of log2(1 + i/64) with a linear
// step between entries. The step's error, at most 5e-5 (in log2 units,
// the curve being concave), is a few bytes at the default rate of 512 KiB,
// far under the draw's own spread.
#define LOG2_BITS 6
static double log2_mant[(1 << LOG2_BITS) + 1];  // log2(1 + i / 2^LOG2_BITS)

// ln(x) for x in [1, 2], by the atanh series (error < 1e-7): only to fill
// log2_mant, once.
static double ln_1_2(double x) {
  double t = (x - 1) / (x + 1), t2 = t * t;
  return t * (2 + t2 * (2.0 / 3 + t2 * (2.0 / 5 + t2 * (2.0 / 7 + t2 * (2.0 / 9 + t2 * 2.0 / 11)))));
}
static void log2_mant_init(void) {
  for (int i = 0; i <= 1 << LOG2_BITS; i++)
    log2_mant[i] = ln_1_2(1.0 + (double)i / (1 << LOG2_BITS)) / 0.6931471805599453;
}

// -log2(q / 2^64) for q > 0.
static double neg_log2_frac(uint64_t q) {
  int z = __builtin_clzll(q);
  uint64_t m = q << z;  // the leading 1 at bit 63
  uint32_t i = (uint32_t)(m >> (63 - LOG2_BITS)) & ((1u << LOG2_BITS) - 1);
  double f = (double)((m << (1 + LOG2_BITS)) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  double l = log2_mant[i] + (log2_mant[i + 1] - log2_mant[i]) * f;
  return (double)z + 1.0 - l;  // 64 - (63 - z) - l
}

static int64_t next_interval(void) {
  if (prof.rate <= 0) return INT64_MAX;
  // Rate 1 samples every allocation, as Go's MemProfileRate=1 does: drawn
  // with mean 1 byte, an interval past 8 bytes (one draw in 3,000) let an
  // 8-byte allocation go unsampled (test_mprof_stacks lost one in 12 runs).
  if (prof.rate == 1) return 0;
  if (rng == 0) rng = gort__os_random64() | 1;
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  uint64_t q = rng * 0x2545F4914F6CDD1DULL;  // uniform on [1, 2^64): never 0
  double x = neg_log2_frac(q) * 0.6931471805599453 * (double)prof.rate;
  return x > 1e15 ? (int64_t)1e15 : (int64_t)x;
}

int64_t gort__mprof_rate(void) { return prof.rate; }

// ---- stacks and buckets --------------------------------------------------------

// Return addresses inside gort's allocator, where gort is linked into the
// program (no libgort.so range to skip): learned at start-up (learn_own).
static own_frames_t own;

// raw[0..n), a walk from inside the profiler (raw[0] in stack_bucket),
// without gort's own frames (the walk's first ones), into pcs; returns
// the depth.
static uint32_t skip_self(const uintptr_t *raw, uint32_t n, uintptr_t *pcs) {
  uint32_t depth = 0, i = 0;
  if (prof.self_hi != 0) {
    while (i < n && raw[i] >= prof.self_lo && raw[i] < prof.self_hi) i++;
  } else if (__atomic_load_n(&own.n, __ATOMIC_ACQUIRE) != 0) {
    i = 1;
    while (i < n && own_frames_has(&own, raw[i])) i++;
  }
  for (; i < n && depth < MPROF_MAX_DEPTH; i++) pcs[depth++] = raw[i];
  return depth;
}

static uint64_t hash_stack(const uintptr_t *pcs, uint32_t depth) {
  uint64_t h = 1469598103934665603ULL;
  for (uint32_t i = 0; i < depth; i++) h = (h ^ pcs[i]) * 1099511628211ULL;
  return h ^ depth;
}

static bucket_t *chain_find(bucket_t *b, uint64_t h, const uintptr_t *pcs, uint32_t depth) {
  for (; b != NULL; b = b->next)
    if (b->hash == h && b->depth == depth && memcmp(b->pcs, pcs, depth * sizeof *pcs) == 0) return b;
  return NULL;
}

static bucket_t *bucket_for(const uintptr_t *pcs, uint32_t depth) {
  uint64_t h = hash_stack(pcs, depth);
  bucket_t *_Atomic *chain = &prof.table[h % NBUCKETS];
  bucket_t *b = chain_find(atomic_load_explicit(chain, memory_order_acquire), h, pcs, depth);
  if (gort_likely(b != NULL)) return b;
  lock(&prof.buckets_lock);
  bucket_t *head = atomic_load_explicit(chain, memory_order_relaxed);
  b = chain_find(head, h, pcs, depth);  // added meanwhile?
  bucket_counts_t *counts = NULL;
  if (b == NULL && (counts = gort__persistent_alloc(NSHARDS * sizeof *counts, 64)) != NULL &&
      (b = gort__persistent_alloc(sizeof *b + depth * sizeof *pcs, 64)) != NULL) {
    b->counts = counts;  // zeroed, as persistent memory is
    b->hash = h;
    b->depth = depth;
    memcpy(b->pcs, pcs, depth * sizeof *pcs);
    b->next = head;
    b->all_next = atomic_load_explicit(&prof.all, memory_order_relaxed);
    atomic_store_explicit(chain, b, memory_order_release);
    atomic_store_explicit(&prof.all, b, memory_order_release);
  }
  unlock(&prof.buckets_lock);
  return b;
}

// ---- walk memos --------------------------------------------------------------

// Each thread's memo of its last walk and of the last few stacks it
// sampled (unwind.h, memopool.c): a sample from a stack seen lately costs
// a check of the stack's words, not a walk, a hash and a chain lookup.
// A kept walk's tag is its slot + 1, and the memo keeps each slot's
// bucket beside it; a slot is rebuilt untagged before it is tagged again,
// so a tag never names the bucket of the slot's previous walk.
typedef struct {
  unwind_memo_t u;
  bucket_t *bucket[UNWIND_MEMO_KEPT];  // of the walk kept in each slot
} prof_memo_t;

static GORT_TLS void *my_memo;  // a prof_memo_t (memopool.h)
static memo_pool_t memos;
// A memo is about 19 KiB, kept for the next thread when this one exits:
// a thread takes one only at its MEMO_AFTER'th sample, so that a program
// of many short or quiet threads keeps none (1000 threads of 2 MiB each
// kept 17 MiB of memos).
#define MEMO_AFTER 8
static GORT_TLS uint32_t samples_walked;

static void memo_exit(void *arg) { gort__memo_pool_exited(&memos, &my_memo, arg); }
static prof_memo_t *memo_get(void) {
  if (my_memo == NULL && ++samples_walked < MEMO_AFTER) return NULL;
  return gort__memo_pool_get(&memos, &my_memo);
}

// learn_own's probe: the next sample's stack goes here, whole. While it
// learns, no sample makes a bucket (a profile at rate 1 would show them).
static GORT_TLS bool learning;
static GORT_TLS uintptr_t *probe_raw;
static GORT_TLS uint32_t probe_n;

// The bucket of the calling stack (NULL if none could be made).
static GORT_NOINLINE bucket_t *stack_bucket(void) {
  uintptr_t raw[MPROF_MAX_DEPTH + 8], pcs[MPROF_MAX_DEPTH];
  if (gort_unlikely(learning)) {
    if (probe_raw != NULL) probe_n = gort__unwind_capture(probe_raw, MPROF_MAX_DEPTH + 8);
    return NULL;
  }
  prof_memo_t *m = memo_get();
  if (gort_unlikely(m == NULL)) {  // a new thread, no memory, or a thread past its memo's destructor
    uint32_t n = gort__unwind_capture(raw, MPROF_MAX_DEPTH + 8);
    return bucket_for(pcs, skip_self(raw, n, pcs));
  }
  unwind_tag_t t = {.m = &m->u};
  uint32_t n = gort__unwind_capture_tagged(raw, MPROF_MAX_DEPTH + 8, &t);
  if (gort_likely(t.tag != 0)) return m->bucket[t.tag - 1];
  bucket_t *b = bucket_for(pcs, skip_self(raw, n, pcs));
  if (b != NULL && t.slot >= 0) m->bucket[t.slot] = b;
  gort__unwind_memo_keep(&t, b != NULL && t.slot >= 0 ? (uint32_t)t.slot + 1 : 0);
  return b;
}

// ---- the registry of sampled blocks -------------------------------------------

static size_t reg_slot(uintptr_t addr, size_t cap) { return (size_t)addr_hash(addr) & (cap - 1); }

// Linear probing, kept at most half full (an insert then probes 2.5 slots
// on average, at three quarters 8.5), and deletion by shifting back the
// entries after the freed slot (reg_delete), so that no tombstone is left:
// with tombstones, every few dozen frees of sampled blocks rehashed the
// table, and a mapped table was mapped anew and unmapped each time (two
// system calls per about 40 samples in glibc's thread shape).

// Grows the table: the first is the shard's own (REG_FIRST slots), the
// next is mapped (REG_MAPPED), and each after doubles. Under sh->lock.
static bool reg_grow(shard_t *sh) {
  size_t cap = sh->reg_cap == 0 ? REG_FIRST : sh->reg_cap * 2;
  if (cap > REG_FIRST && cap < REG_MAPPED) cap = REG_MAPPED;
  sampled_t *t = sh->first;
  if (cap > REG_FIRST) {
    int err;
    t = gort__os_reserve(0, cap * sizeof *t, 4096, &err);
    if (t == NULL) return false;
  }
  for (size_t i = 0; i < sh->reg_cap; i++) {
    if (sh->reg[i].addr == 0) continue;
    size_t j = reg_slot(sh->reg[i].addr, cap);
    while (t[j].addr != 0) j = (j + 1) & (cap - 1);
    t[j] = sh->reg[i];
  }
  if (sh->reg != NULL && sh->reg != sh->first) gort__os_unmap(sh->reg, sh->reg_cap * sizeof *sh->reg);
  sh->reg = t;
  sh->reg_cap = cap;
  return true;
}

// False if the registry could not grow: the block then stays unsampled
// (unmarked, so that its free is an ordinary one, not a "double free").
static bool reg_insert(shard_t *sh, uintptr_t addr, bucket_counts_t *counts, uint64_t size) {
  if ((sh->reg_used + 1) * 2 > sh->reg_cap && !reg_grow(sh)) return false;
  size_t j = reg_slot(addr, sh->reg_cap);
  while (sh->reg[j].addr != 0) j = (j + 1) & (sh->reg_cap - 1);
  sh->reg_used++;
  sh->reg[j] = (sampled_t){addr, counts, size};
  return true;
}

// The slot of addr's entry, or SIZE_MAX if it has none.
static size_t reg_find(const shard_t *sh, uintptr_t addr) {
  if (sh->reg_cap == 0) return SIZE_MAX;
  for (size_t j = reg_slot(addr, sh->reg_cap);; j = (j + 1) & (sh->reg_cap - 1)) {
    if (sh->reg[j].addr == addr) return j;
    if (sh->reg[j].addr == 0) return SIZE_MAX;
  }
}

// Empties slot hole and moves back each later entry of its run that the
// hole would cut off from its home slot.
static void reg_delete(shard_t *sh, size_t hole) {
  size_t mask = sh->reg_cap - 1;
  for (size_t j = (hole + 1) & mask; sh->reg[j].addr != 0; j = (j + 1) & mask) {
    size_t home = reg_slot(sh->reg[j].addr, sh->reg_cap);
    // Movable unless its home lies cyclically in (hole, j].
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      sh->reg[hole] = sh->reg[j];
      hole = j;
    }
  }
  sh->reg[hole].addr = 0;
  sh->reg_used--;
}

// Under the lock of the counter's shard (see "Counters").
static void count(uint64_t *c, uint64_t v) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELEASE);
}

// ---- the hooks -----------------------------------------------------------------

static int64_t sample_alloc(void *p, size_t size) {
  if (in_profiler) return next_interval();
  in_profiler = true;
  bucket_t *b = stack_bucket();
  mspan_t *s;  // NULL for a small block found by its page info
  shard_t *sh = block_shard((uintptr_t)p, info_of((uintptr_t)p), &s);
  if (b != NULL && s != NULL && span_state(s) != SPAN_SMALL) {
    // A large block is ours alone: its records go to this thread's shard.
    s->prof_shard = (uint8_t)gort__tls_cache->id;
    sh = shard_of(s);
  }
  if (b == NULL || sh == NULL) {
    in_profiler = false;
    return next_interval();
  }
  lock(&sh->lock);
  bucket_counts_t *c = stripe_of(b, sh);
  if (reg_insert(sh, (uintptr_t)p, c, size)) {
    count(&c->alloc_bytes, size);
    count(&c->allocs, 1);
    // Mark the block so that its free (and only its free) comes here.
    if (s == NULL || span_state(s) == SPAN_SMALL)
      live_clear((uintptr_t)p);  // the caller owns s (see alloc_init.h)
    else
      atomic_fetch_add_explicit(&s->nsampled, 1, memory_order_relaxed);
  }
  unlock(&sh->lock);
  in_profiler = false;
  return next_interval();
}

// A shard's lock held by a thread that a signal interrupts: a malloc in
// the handler must not sample (it would wait for the lock for ever), so
// in_profiler is set while any shard is locked, not only in sample_alloc.
// A reviewer's program (every allocation sampled, a 100 us profiling timer
// whose handler mallocs and frees) hung 3 runs of 4 here, none after. It
// is not made safe: malloc is not async-signal-safe in gort any more than
// in glibc (a handler that interrupts its thread's cache in mid-update
// may corrupt it: with this change the same program still stopped on a
// "double free" twice and hung once in 40 runs, and with the profiler off
// hung once in 40), and a handler that frees a sampled block still waits.
static void shard_lock(shard_t *sh, bool *was) {
  *was = in_profiler;
  in_profiler = true;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock(&sh->lock);
}
static void shard_unlock(shard_t *sh, bool was) {
  unlock(&sh->lock);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  in_profiler = was;
}

static bool is_sampled(const void *p) {
  mspan_t *s;
  shard_t *sh = block_shard((uintptr_t)p, info_of((uintptr_t)p), &s);
  if (sh == NULL) return false;
  bool was;
  shard_lock(sh, &was);
  bool found = reg_find(sh, (uintptr_t)p) != SIZE_MAX;
  shard_unlock(sh, was);
  return found;
}

// Before the free of a block that may be sampled (malloc.c decides from
// its mark): takes its record; false if it had none.
static bool sample_free(void *p) {
  mspan_t *s;
  shard_t *sh = block_shard((uintptr_t)p, info_of((uintptr_t)p), &s);
  if (sh == NULL) return false;
  bool was;
  shard_lock(sh, &was);
  size_t j = reg_find(sh, (uintptr_t)p);
  if (j != SIZE_MAX) {
    bucket_counts_t *c = sh->reg[j].counts;
    count(&c->free_bytes, sh->reg[j].size);
    count(&c->frees, 1);
    reg_delete(sh, j);
    if (s != NULL && span_state(s) == SPAN_LARGE)
      atomic_fetch_sub_explicit(&s->nsampled, 1, memory_order_relaxed);
  }
  shard_unlock(sh, was);
  return j != SIZE_MAX;
}

static uint64_t read_count(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_ACQUIRE); }

void gort__mprof_foreach(void (*fn)(const bucket_t *b, void *arg), void *arg) {
  union {
    bucket_t b;
    char bytes[sizeof(bucket_t) + MPROF_MAX_DEPTH * sizeof(uintptr_t)];
  } copy;
  for (bucket_t *b = atomic_load_explicit(&prof.all, memory_order_acquire); b != NULL; b = b->all_next) {
    memcpy(&copy.b, b, offsetof(bucket_t, allocs));
    copy.b.allocs = copy.b.alloc_bytes = copy.b.frees = copy.b.free_bytes = 0;
    copy.b.counts = NULL;
    for (int i = 0; i < NSHARDS; i++) {  // frees first: see the top
      copy.b.frees += read_count(&b->counts[i].frees);
      copy.b.free_bytes += read_count(&b->counts[i].free_bytes);
    }
    for (int i = 0; i < NSHARDS; i++) {
      copy.b.allocs += read_count(&b->counts[i].allocs);
      copy.b.alloc_bytes += read_count(&b->counts[i].alloc_bytes);
    }
    copy.b.depth = b->depth;
    memcpy(copy.b.pcs, b->pcs, b->depth * sizeof *b->pcs);
    fn(&copy.b, arg);
  }
}

// A fork while another thread records a sample must not leave the child
// with a lock held (it then hung in its first sampled malloc or free).
// (in_profiler meanwhile, as in shard_lock: a signal handler's malloc must
// not sample on this thread while it holds every lock.)
static GORT_TLS bool fork_was_in_profiler;
static void prof_prepare(void) {
  fork_was_in_profiler = in_profiler;
  in_profiler = true;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  lock(&prof.buckets_lock);
  for (int i = 0; i < NSHARDS; i++) lock(&shards[i].lock);
}
static void prof_parent(void) {
  for (int i = NSHARDS; i-- > 0;) unlock(&shards[i].lock);
  unlock(&prof.buckets_lock);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  in_profiler = fork_was_in_profiler;
}
static void prof_child(void) {
  gort__memo_pool_after_fork(&memos);
  for (int i = 0; i < NSHARDS; i++) lock_reinit(&shards[i].lock);
  lock_reinit(&prof.buckets_lock);
  in_profiler = fork_was_in_profiler;
}
static fork_hook_t prof_fork = {
    .name = "mprof", .rank = LOCK_PROF, .prepare = prof_prepare, .parent = prof_parent, .child = prof_child};

// ---- gort's own frames, where gort is linked into the program -----------------
//
// Linked with libgort.a, gort's code is the program's: no range tells its
// frames apart, and every sample's stack began with the profiler's and
// the allocator's own (go tool pprof -top put all of a program's bytes in
// stack_bucket). So, as the leak check does (learn_own_frames), one
// sampled allocation of each kind is made at start-up with its stack
// captured whole; the frames above the probe's own are gort's, and their
// return addresses are left out of every stack after (the walk's first
// frame, in stack_bucket, always is).

static GORT_NOINLINE void probe_own(int kind) {
  uintptr_t direct[MPROF_MAX_DEPTH + 8], got[MPROF_MAX_DEPTH + 8];
  uint32_t nd = gort__unwind_capture(direct, MPROF_MAX_DEPTH + 8);
  void *p, *q;
  if (gort__tls_cache == &gort__empty_cache) return;
  gort__own_probe_prepare(kind, &p);
  gort__tls_cache->sample_left = 0;  // the next allocation samples (malloc.c)
  probe_n = 0;
  probe_raw = got;
  gort__own_probe_alloc(kind, &p, &q);
  probe_raw = NULL;
  if (probe_n < MPROF_MAX_DEPTH + 8) gort__own_learn(&own, direct, nd, got, probe_n, 1);
  gort__own_probe_release(kind, p, q);
  __asm__ volatile("" ::: "memory");  // no tail call: this frame must stay
}

static void learn_own(void) {
  learning = true;
  // The thread's cache, which a probe's countdown needs (probe_own);
  // volatile, or GCC drops the pair.
  void *volatile first = malloc(1);
  free(first);
  for (int kind = 0; kind < OWN_PROBE_KINDS; kind++) probe_own(kind);
  learning = false;
  // Buckets memoized before the own frames were known have some in them.
  if (my_memo != NULL && my_memo != MEMO_POOL_DEAD) gort__unwind_memo_forget(&((prof_memo_t *)my_memo)->u);
  if (gort__tls_cache != &gort__empty_cache) gort__tls_cache->sample_left = next_interval();
}

// In a fully static program gort starts inside libc's start-up, where no
// stack can be walked yet (unwind.c, add_static_program, whose
// constructor runs first): the probes learn nothing there, and run again
// here, once libc has started (and anywhere a first round missed some:
// what it learned stays).
__attribute__((constructor(120))) static void learn_own_after_libc_start(void) {
  if (gort__mprof_hooks.sample_alloc == sample_alloc && prof.self_hi == 0 && !gort__harden) learn_own();
}

void gort__mprof_init(void) {
  prof.rate = gort__opts.memprofilerate;
  if (prof.rate <= 0 || prof.rate == INT64_MAX) return;
  log2_mant_init();
  prof.table = gort__persistent_alloc(NBUCKETS * sizeof *prof.table, 4096);
  if (prof.table == NULL) return;
  gort__unwind_self_text(&prof.self_lo, &prof.self_hi);
  gort__start_add_fork_hook(&prof_fork);
  gort__unwind_init();
  gort__memo_pool_init(&memos, sizeof(prof_memo_t), memo_exit);
  gort__mprof_hooks.sample_free = sample_free;
  gort__mprof_hooks.is_sampled = is_sampled;
  gort__mprof_hooks.first_interval = next_interval;
  gort__mprof_hooks.sample_alloc = sample_alloc;  // last: enables sampling
  // A cache made before this (the first malloc can precede any constructor)
  // started with no countdown; give this thread's one now.
  // (Not in hardened mode, whose countdown must stay negative: harden.c.)
  if (gort__tls_cache != &gort__empty_cache && !gort__harden) gort__tls_cache->sample_left = next_interval();
  // (Hardened mode samples on a clock of its own, which a probe cannot
  // set: its stacks keep gort's frames where gort is linked in.)
  if (prof.self_hi == 0 && !gort__harden) learn_own();
}

void gort__mprof_foreach_sampled(void (*fn)(uintptr_t addr, void *arg), void *arg) {
  for (int k = 0; k < NSHARDS; k++) {
    shard_t *sh = &shards[k];
    bool was;
    shard_lock(sh, &was);
    for (size_t i = 0; i < sh->reg_cap; i++)
      if (sh->reg[i].addr != 0) fn(sh->reg[i].addr, arg);
    shard_unlock(sh, was);
  }
}
