// The shared store: a lock-free chain of rings (Go: sync/poolqueue.go).
//
// See pool.c for the pool's design and why its shared store is this chain.
// Each pool local has one chain (and its victim generation another). Its
// owner, the local's thread, pushes and pops at the head, newest first;
// other threads steal at the tail, oldest first. Three layers:
//
//   1. A ring (ring_t) is a power-of-two array of slots and one 64-bit
//      word packing head (the next index the owner fills) and tail (the
//      oldest object's index). The owner pushes by writing slot[head] and
//      then adding 1 to head, so that a thief that sees the new head sees
//      the slot; the owner pops by a CAS of head down; a thief pops by a
//      CAS of tail up. Both pops are CASes on the same word, so when one
//      object is left exactly one of them gets it. Only the owner ever
//      writes head upwards, so a push needs no CAS.
//   2. Slot reuse (the ABA problem). A thief's CAS on tail makes the slot
//      its own, but it reads the object after the CAS; meanwhile the owner
//      may have pushed around the ring and come back to that very slot. So
//      a thief clears the slot after reading it (a release store), and the
//      owner fills a slot only when it sees it NULL (an acquire load): a
//      slow thief makes the ring look full for a moment, it can neither
//      lose an object nor be handed one that was pushed after its CAS.
//      Objects are never NULL (a put of NULL is ignored), so NULL can mean
//      "free" with no tagging. A stale head/tail word is harmless as well:
//      the CAS compares the whole word, the owner moves head both ways, and
//      whatever the word says when the CAS succeeds is the queue's state at
//      that instant; the slot is read only after it.
//   3. A chain (chain_t) links rings so that it never fills: when the
//      newest ring is full the owner links a new one, twice the size (up to
//      RING_MAX_SLOTS), and pushes there. The owner's pop walks from the
//      newest ring back through prev; a thief starts at tail and, when the
//      tail ring is empty and was already followed by a newer one when it
//      looked (next loaded before the pop: no push ever goes into a ring
//      that has a successor, so empty then means empty for good), moves
//      tail to the next ring by CAS and clears that ring's prev, so that
//      neither thieves nor the owner look at the drained ring again.
//
// Memory. Rings are uncollectable blocks (gort_gc_alloc_uncollectable,
// zeroed): the collector scans them as roots, which is what keeps a pooled
// collected object alive, and every emptied slot is NULL, so only objects
// in the pool are kept alive, never one taken out. A ring unlinked from the
// tail is not freed there: a thread inside a pool operation may still be
// reading it, and C has no collector to tell when it stops. Instead
// unlinked rings stay on the chain (first..tail, linked through next)
// until rotation (rotate.c) takes the whole chain with the world stopped.
// Every pool operation runs inside a no-stop region, so a stopped world is
// a grace period: no thread holds a pointer into a chain it could only
// have found before the stop. The primary chain becomes the victim one
// (thieves keep taking from its tail), the old victim chain is dropped,
// and its rings are freed afterwards on the pool thread (the world stopped
// cannot allocate or free), or one small ring is kept as the local's
// spare, for the owner's next push to link without allocating.
//
// A ring is allocated outside every no-stop region (allocation may stop
// for a collection), so a push that finds the newest ring full leaves the
// region, allocates, enters again and links the ring only if the chain
// still needs it (pool.c's put_slow): a rotation may have run meanwhile.
//
// Go's poolChain is the design we follow; what differs is memory: Go's
// collector frees a drained ring once no one points to it, here the
// rotation's stop frees it. Rejected: freeing a drained ring at once with
// hazard pointers or reference counts, which would put a store and a fence
// on every steal to save a few small blocks until the next rotation.

#include "chain.h"

#include "gort/alloc.h"
#include "gort/gc.h"

void *gort__chain_pop_tail(chain_t *c) {
  ring_t *r = atomic_load_explicit(&c->tail, memory_order_acquire);
  while (r != NULL) {
    // next before the pop: if it was set then, an empty r stays empty.
    ring_t *next = atomic_load_explicit(&r->next, memory_order_acquire);
    void *x = ring_pop_tail(r);
    if (x != NULL) return x;
    if (next == NULL) return NULL;
    ring_t *expected = r;
    if (atomic_compare_exchange_strong_explicit(&c->tail, &expected, next, memory_order_acq_rel,
                                                memory_order_acquire))
      atomic_store_explicit(&next->prev, NULL, memory_order_relaxed);
    r = next;
  }
  return NULL;
}

ring_t *gort__chain_ring_make(uint32_t nslots) {
  gort_assert_internal(nslots != 0 && (nslots & (nslots - 1)) == 0);
  // Zeroed: head == tail, NULL links, every slot NULL.
  ring_t *r = gort_gc_alloc_uncollectable(sizeof *r + nslots * sizeof r->slot[0]);
  if (r != NULL) r->mask = nslots - 1;
  return r;
}

void gort__chain_free_rings(ring_t *list) {
  while (list != NULL) {
    ring_t *next = atomic_load_explicit(&list->next, memory_order_relaxed);
    gort_free(list);
    list = next;
  }
}

uint32_t gort__chain_count(const chain_t *c) {
  uint32_t n = 0;
  for (ring_t *r = atomic_load_explicit(&c->tail, memory_order_relaxed); r != NULL;
       r = atomic_load_explicit(&r->next, memory_order_relaxed)) {
    uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
    n += ht_head(ht) - ht_tail(ht);
  }
  return n;
}

// Only [tail, head) of each ring from the chain's tail on can hold
// objects (the others were emptied, or never filled): the walk costs what
// the chain holds, not its capacity.
void gort__chain_each(chain_t *c, void (*fn)(void *_Atomic *slot, void *arg), void *arg) {
  for (ring_t *r = atomic_load_explicit(&c->tail, memory_order_relaxed); r != NULL;
       r = atomic_load_explicit(&r->next, memory_order_relaxed)) {
    uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
    for (uint32_t i = ht_tail(ht); i != ht_head(ht); i++) {
      void *_Atomic *s = &r->slot[i & r->mask];
      if (atomic_load_explicit(s, memory_order_relaxed) != NULL) fn(s, arg);
    }
  }
}

ring_t *gort__chain_dismantle(chain_t *c, ring_t **list, uint32_t keep_max) {
  ring_t *keep = NULL;
  for (ring_t *r = c->first; r != NULL; r = atomic_load_explicit(&r->next, memory_order_relaxed))
    if (r->mask < keep_max && (keep == NULL || r->mask > keep->mask)) keep = r;
  for (ring_t *r = c->first, *next; r != NULL; r = next) {
    next = atomic_load_explicit(&r->next, memory_order_relaxed);
    if (GORT_DEBUG_LEVEL >= 3)
      for (uint32_t i = 0; i <= r->mask; i++)
        gort_assert_expensive(atomic_load_explicit(&r->slot[i], memory_order_relaxed) == NULL);
    atomic_store_explicit(&r->headtail, 0, memory_order_relaxed);
    atomic_store_explicit(&r->prev, NULL, memory_order_relaxed);
    atomic_store_explicit(&r->next, r == keep ? NULL : *list, memory_order_relaxed);
    if (r != keep) *list = r;
  }
  *c = (chain_t){0};
  return keep;
}

// Checks one ring of a chain at rest: head - tail within the ring, the
// slots in [tail, head) full and the others NULL (an emptied slot is
// cleared before its pop returns; a filled one is counted in head first).
static bool ring_is_valid(const ring_t *r, bool drained) {
  uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
  uint32_t head = ht_head(ht), tail = ht_tail(ht);
  if ((r->mask & (r->mask + 1)) != 0) return false;
  if (head - tail > r->mask + 1 || (drained && head != tail)) return false;
  for (uint32_t i = 0; i <= r->mask; i++) {  // i objects after tail
    bool full = atomic_load_explicit(&r->slot[(tail + i) & r->mask], memory_order_relaxed) != NULL;
    if (full != (i < head - tail)) return false;
  }
  return true;
}

// A chain at rest (no operation in flight): first reaches tail and then
// head through next; the rings before tail are drained; prev links each
// ring after tail to the one before it, and is NULL up to tail (the first
// ring has none, and a thief that moves tail clears the new tail's).
bool gort__chain_is_valid(const chain_t *c) {
  ring_t *tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
  if (c->first == NULL || c->head == NULL || tail == NULL)
    return c->first == NULL && c->head == NULL && tail == NULL;
  bool seen_tail = false;
  ring_t *last = NULL;
  for (ring_t *r = c->first; r != NULL; r = atomic_load_explicit(&r->next, memory_order_relaxed)) {
    bool before = !seen_tail && r != tail;
    seen_tail |= r == tail;
    ring_t *prev = atomic_load_explicit(&r->prev, memory_order_relaxed);
    if (prev != (seen_tail && r != tail ? last : NULL)) return false;
    if (!ring_is_valid(r, before)) return false;
    last = r;
  }
  return seen_tail && last == c->head;
}

// fork(): only the forking thread crosses into the child, and it may have
// forked while other threads were midway through operations on a chain.
// Each step of an operation is one store or one CAS, so what can be half
// done is a sequence: a push that filled its slot but did not move head, a
// pop that moved its index but did not clear its slot (both leave a slot
// filled outside [tail, head); its object was entering or leaving the pool
// with the vanished thread, and is dropped from it: cleared, not
// released), a ring made head but not yet linked from the ring before it
// (or, for a chain's first ring, not yet made first and tail), and a tail
// moved on without clearing the new tail's prev. Each is finished or
// undone here; on a chain at rest this changes nothing.
void gort__chain_after_fork(chain_t *c) {
  ring_t *head = c->head;
  if (head == NULL) return;  // chain_add makes head first: nothing else is set
  if (c->first == NULL) c->first = head;
  if (atomic_load_explicit(&c->tail, memory_order_relaxed) == NULL)
    atomic_store_explicit(&c->tail, c->first, memory_order_relaxed);
  ring_t *prev = atomic_load_explicit(&head->prev, memory_order_relaxed);
  if (prev != NULL && atomic_load_explicit(&prev->next, memory_order_relaxed) == NULL)
    atomic_store_explicit(&prev->next, head, memory_order_relaxed);
  ring_t *tail = atomic_load_explicit(&c->tail, memory_order_relaxed);
  bool upto_tail = true;
  for (ring_t *r = c->first; r != NULL; r = atomic_load_explicit(&r->next, memory_order_relaxed)) {
    if (upto_tail) atomic_store_explicit(&r->prev, NULL, memory_order_relaxed);
    upto_tail &= r != tail;
    uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
    for (uint32_t i = ht_head(ht) - ht_tail(ht); i <= r->mask; i++)
      atomic_store_explicit(&r->slot[(ht_tail(ht) + i) & r->mask], NULL, memory_order_relaxed);
  }
}
