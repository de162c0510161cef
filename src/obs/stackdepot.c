// The stack depot: every distinct call stack stored once, named by an id.
//
// The leak check (gc/leakcheck.c) records the stack of every allocation,
// millions a second, and keeps one 32-bit id per live block. Most
// allocations come from a few thousand call sites, so a stack is hashed and
// looked up here, and stored only the first time it is seen (sanitizers
// call the same structure a stack depot).
//
// Layout. One region of address space, reserved once and never moved
// (REGION_BYTES, lazily backed), holds the stacks back to back:
//   { next id in the bucket's chain; hash; depth; pcs[depth] }
// An id is the record's offset in the region in 8-byte words, so it names
// the record with no table between (ids start at 1: offset 0 is unused),
// and 2^32 words bound the region far above what it ever holds. A bucket
// array (NBUCKETS heads, 1 MiB) starts the chains.
//
// Concurrency, lock-free throughout, since put runs inside malloc:
//   1. Readers walk a chain with acquire loads of the heads and plain reads
//      of records, which are immutable once published.
//   2. A writer that finds no match takes room with one atomic add on the
//      region's top, fills the record, and publishes it with a CAS of the
//      bucket head (release). If the CAS fails, another thread published
//      meanwhile: it looks through the records added in front of the head
//      it had (the same stack may be among them) and tries again. A record
//      that loses that race stays in the region unused (a few bytes, rare).
//   3. A full region makes put return 0, the id of "no stack": reports say
//      so; nothing fails.
// No lock means nothing to reset in a forked child, and a signal handler
// may put while the thread it interrupted was putting.
//
// Rejected: a lock around inserts (simpler, but a thread stopped for the
// collector while holding it would stall every allocating thread); a hash
// table of fixed-size slots (stacks vary from 1 to 64 frames).

#include "stackdepot.h"

#include <stdatomic.h>
#include <string.h>

#include "../base/base.h"
#include "../os/os.h"

#define REGION_BYTES ((size_t)1 << 30)  // address space only: 8M stacks of 16 frames
#define NBUCKETS ((size_t)1 << 18)

typedef struct {
  uint32_t next;   // the next record of the bucket, 0 at the end
  uint32_t hash;
  uint32_t depth;
  uint32_t pad;
  uintptr_t pcs[];
} record_t;

static struct {
  uint64_t *words;              // the region; NULL until init
  _Atomic uint32_t *buckets;    // NBUCKETS chain heads (ids)
  _Atomic uint64_t top;         // words handed out (the first one is never used)
  _Atomic uint64_t nstacks;
} depot;

static _Atomic int init_state;  // 0 not yet, 1 mapping, 2 mapped, 3 refused

bool gort__stackdepot_init(void) {
  int st = 0;
  if (atomic_compare_exchange_strong(&init_state, &st, 1)) {
    int err;
    uint64_t *w = gort__os_reserve(0, REGION_BYTES, 4096, &err);
    _Atomic uint32_t *b = w ? gort__os_reserve(0, NBUCKETS * sizeof *b, 4096, &err) : NULL;
    if (b == NULL) {
      if (w != NULL) gort__os_unmap(w, REGION_BYTES);
      atomic_store(&init_state, 3);
      return false;
    }
    depot.buckets = b;
    atomic_store(&depot.top, 1);
    __atomic_store_n(&depot.words, w, __ATOMIC_RELEASE);
    atomic_store(&init_state, 2);
    return true;
  }
  while ((st = atomic_load(&init_state)) == 1) gort__cpu_relax();
  return st == 2;
}

static uint32_t hash_stack(const uintptr_t *pcs, uint32_t depth) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ depth;
  for (uint32_t i = 0; i < depth; i++) {
    h ^= pcs[i];
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return (uint32_t)h;
}

static record_t *record(uint64_t *words, uint32_t id) { return (record_t *)(words + id); }

// Looks for the stack in the chain from id head down to (not including) stop.
static uint32_t find(uint64_t *words, uint32_t head, uint32_t stop, uint32_t h, const uintptr_t *pcs,
                     uint32_t depth) {
  for (uint32_t id = head; id != 0 && id != stop; id = record(words, id)->next) {
    const record_t *r = record(words, id);
    if (r->hash == h && r->depth == depth && memcmp(r->pcs, pcs, depth * sizeof *pcs) == 0) return id;
  }
  return 0;
}

uint32_t gort__stackdepot_put(const uintptr_t *pcs, uint32_t depth) {
  uint64_t *words = __atomic_load_n(&depot.words, __ATOMIC_ACQUIRE);
  if (gort_unlikely(words == NULL)) return 0;
  uint32_t h = hash_stack(pcs, depth);
  _Atomic uint32_t *bucket = &depot.buckets[h & (NBUCKETS - 1)];
  uint32_t head = atomic_load_explicit(bucket, memory_order_acquire);
  uint32_t id = find(words, head, 0, h, pcs, depth);
  if (id != 0) return id;
  uint64_t need = 2 + depth;  // the header is two words
  uint64_t at = atomic_fetch_add_explicit(&depot.top, need, memory_order_relaxed);
  if (at + need > REGION_BYTES / 8 || at + need > UINT32_MAX) return 0;  // full
  record_t *r = record(words, (uint32_t)at);
  r->hash = h;
  r->depth = depth;
  memcpy(r->pcs, pcs, depth * sizeof *pcs);
  for (;;) {
    r->next = head;
    if (atomic_compare_exchange_weak_explicit(bucket, &head, (uint32_t)at, memory_order_release,
                                              memory_order_acquire)) {
      atomic_fetch_add_explicit(&depot.nstacks, 1, memory_order_relaxed);
      return (uint32_t)at;
    }
    // head now holds the new first record: did someone publish our stack?
    if ((id = find(words, head, r->next, h, pcs, depth)) != 0) return id;
  }
}

const uintptr_t *gort__stackdepot_get(uint32_t id, uint32_t *depth) {
  uint64_t *words = __atomic_load_n(&depot.words, __ATOMIC_ACQUIRE);
  if (words == NULL || id == 0 || id >= atomic_load_explicit(&depot.top, memory_order_relaxed)) {
    *depth = 0;
    return NULL;
  }
  const record_t *r = record(words, id);
  *depth = r->depth;
  return r->pcs;
}

void gort__stackdepot_stats(uint64_t *stacks, uint64_t *bytes) {
  *stacks = atomic_load_explicit(&depot.nstacks, memory_order_relaxed);
  uint64_t top = atomic_load_explicit(&depot.top, memory_order_relaxed);
  *bytes = top * 8 + NBUCKETS * sizeof(uint32_t);
}
