// The shared store of a pool local: a chain of rings. See chain.c for the
// protocol and pool.c for where it fits.

#ifndef GORT_POOL_CHAIN_H
#define GORT_POOL_CHAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"

// The first ring of a chain, and the most slots a ring may have: a full
// ring is followed by one twice its size, up to RING_MAX_SLOTS. (Any size
// up to 2^31 would do: head - tail must fit in 32 bits.)
#define RING_MIN_SLOTS 8u
#define RING_MAX_SLOTS (1u << 20)

// A single-producer, multi-consumer ring of object pointers, in an
// uncollectable block (a root: it keeps the objects it holds alive).
//
// Synchronization:
//   headtail  head in the high 32 bits (the next slot the owner fills),
//             tail in the low 32 (the oldest object). The owner adds to
//             head (release) and takes from head by CAS; thieves take
//             from tail by CAS (acquire). Indices run freely and wrap at
//             2^32; a slot is slot[index & mask].
//   mask      set before the ring is published (release), then constant.
//   next      the newer ring: NULL until the owner links one (release),
//             then constant.
//   prev      the older ring: set by the owner before publishing; cleared
//             by the thief that unlinks the older ring from the tail.
//   slot      an object or NULL. Only the owner stores objects, and only
//             into a slot it saw NULL (acquire); whoever takes an object
//             stores NULL after reading it (release, for a thief).
typedef struct ring {
  _Atomic uint64_t headtail;
  uint32_t mask;
  struct ring *_Atomic next;
  struct ring *_Atomic prev;
  void *_Atomic slot[];
} ring_t;

// A doubly-linked chain of rings, oldest to newest: first, ..., tail, ...,
// head. Rings before tail are drained for good; they stay allocated (and
// linked through next from first) until a rotation takes the whole chain,
// because a thread inside a pool operation may still be reading them.
//
// Synchronization:
//   head, first  the owner's (the local's thread, inside a no-stop region);
//                rotation's with the world stopped.
//   tail         loaded by everyone (acquire); advanced by thieves (CAS);
//                set by the owner when it links the first ring (release).
// Invariant: head, first and tail are all NULL or none is.
typedef struct {
  ring_t *head;
  ring_t *first;
  ring_t *_Atomic tail;
} chain_t;

GORT_INLINE uint32_t ht_head(uint64_t ht) { return (uint32_t)(ht >> 32); }
GORT_INLINE uint32_t ht_tail(uint64_t ht) { return (uint32_t)ht; }
GORT_INLINE uint64_t ht_pack(uint32_t head, uint32_t tail) { return (uint64_t)head << 32 | tail; }

// The owner's push; false if the ring has no free slot (full, or a thief
// that took the slot's last object has not cleared it yet).
GORT_INLINE bool ring_push(ring_t *r, void *x) {
  // Only the owner moves head; a stale tail only makes the ring look fuller.
  uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
  uint32_t head = ht_head(ht), tail = ht_tail(ht);
  if (head - tail > r->mask) return false;
  void *_Atomic *s = &r->slot[head & r->mask];
  // Acquire: the thief that emptied the slot has read its object.
  if (atomic_load_explicit(s, memory_order_acquire) != NULL) return false;
  atomic_store_explicit(s, x, memory_order_relaxed);
  // Release: the slot (and the object's contents) before the new head.
  atomic_fetch_add_explicit(&r->headtail, (uint64_t)1 << 32, memory_order_release);
  return true;
}

// The owner's pop of its newest object; NULL if the ring is empty.
GORT_INLINE void *ring_pop_head(ring_t *r) {
  uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_relaxed);
  uint32_t head;
  do {
    head = ht_head(ht);
    if (head == ht_tail(ht)) return NULL;
  } while (!atomic_compare_exchange_weak_explicit(&r->headtail, &ht, ht_pack(head - 1, ht_tail(ht)),
                                                  memory_order_acquire, memory_order_relaxed));
  // The slot is ours now: no thief can take it, and the owner wrote it.
  void *_Atomic *s = &r->slot[(head - 1) & r->mask];
  void *x = atomic_load_explicit(s, memory_order_relaxed);
  atomic_store_explicit(s, NULL, memory_order_relaxed);
  return x;
}

// Anyone's pop of the oldest object; NULL if the ring is empty.
GORT_INLINE void *ring_pop_tail(ring_t *r) {
  uint64_t ht = atomic_load_explicit(&r->headtail, memory_order_acquire);
  uint32_t tail;
  do {
    tail = ht_tail(ht);
    if (ht_head(ht) == tail) return NULL;
  } while (!atomic_compare_exchange_weak_explicit(&r->headtail, &ht, ht_pack(ht_head(ht), tail + 1),
                                                  memory_order_acquire, memory_order_acquire));
  void *_Atomic *s = &r->slot[tail & r->mask];
  void *x = atomic_load_explicit(s, memory_order_relaxed);
  // Hands the slot back to the owner, who will not fill it before seeing
  // this NULL (ring_push): a slow thief makes the ring look full, it never
  // loses an object or takes one twice.
  atomic_store_explicit(s, NULL, memory_order_release);
  return x;
}

// The owner's push; false if the chain has no ring or its newest is full
// (then link a ring with chain_add).
GORT_INLINE bool chain_push(chain_t *c, void *x) {
  return c->head != NULL && ring_push(c->head, x);
}

// The owner links r, empty and not in any chain, as the newest ring.
GORT_INLINE void chain_add(chain_t *c, ring_t *r) {
  ring_t *h = c->head;
  atomic_store_explicit(&r->prev, h, memory_order_relaxed);
  c->head = r;
  if (h == NULL) {
    c->first = r;
    atomic_store_explicit(&c->tail, r, memory_order_release);
  } else {
    atomic_store_explicit(&h->next, r, memory_order_release);
  }
}

// The owner's pop of its newest object: from the newest ring back to the
// older ones that thieves have not drained yet.
GORT_INLINE void *chain_pop_head(chain_t *c) {
  for (ring_t *r = c->head; r != NULL; r = atomic_load_explicit(&r->prev, memory_order_acquire)) {
    void *x = ring_pop_head(r);
    if (x != NULL) return x;
  }
  return NULL;
}

// Anyone's pop of the oldest object (stealing, or taking from a victim
// chain); defined in chain.c.
void *gort__chain_pop_tail(chain_t *c);

// The size of the next ring the owner links (twice its newest, bounded).
GORT_INLINE uint32_t chain_next_slots(const chain_t *c) {
  if (c->head == NULL) return RING_MIN_SLOTS;
  uint32_t n = (c->head->mask + 1) * 2;
  return n < RING_MAX_SLOTS ? n : RING_MAX_SLOTS;
}

// ---- chain.c: rings' memory, and walks of a chain no one else uses -----------------

// A fresh ring of nslots (a power of two: chains start at RING_MIN_SLOTS,
// tests use smaller ones), or NULL if memory ran out.
// Outside every no-stop region: it allocates.
ring_t *gort__chain_ring_make(uint32_t nslots);
// Frees a list of rings linked through next. Outside every no-stop region.
void gort__chain_free_rings(ring_t *list);
// The following take a chain that no thread can be using: the world is
// stopped, or the chain was handed over whole (a dropped generation).
//
// Objects held.
uint32_t gort__chain_count(const chain_t *c);
// Calls fn on every slot that holds an object (fn may clear it).
void gort__chain_each(chain_t *c, void (*fn)(void *_Atomic *slot, void *arg), void *arg);
// Empties c, whose slots must all be NULL: its rings are pushed on *list
// (linked through next), except the largest of at most keep_max slots,
// which is returned reset (empty, unlinked), or NULL if there is none.
ring_t *gort__chain_dismantle(chain_t *c, ring_t **list, uint32_t keep_max);
// The invariants of chain.c's essay.
bool gort__chain_is_valid(const chain_t *c);
// In a forked child, before any other use: finishes or undoes what threads
// that did not cross the fork left half done in c.
void gort__chain_after_fork(chain_t *c);

#endif  // GORT_POOL_CHAIN_H
