// Span validation. See mspan.h for the span's design and invariants.

#include "mspan.h"

#include "../base/lock.h"

#include "mcache.h"
#include "pagemap.h"

bool gort__mspan_is_valid(const mspan_t *s) {
  if (s->npages == 0 || (s->base & (GORT_PAGE_SIZE - 1)) != 0) return false;
  if (s->state == SPAN_SMALL) {
    int cls = s->sizeclass;
    if (cls <= 0 || cls >= GORT_NUM_CLASSES) return false;
    if (s->elemsize != gort__class_size[cls] || s->nelems != gort__class_nelems[cls]) return false;
    if (s->npages != gort__class_npages[cls] || s->used > s->nelems) return false;
    uint32_t nfree = 0;
    for (const block_t *b = s->free; b != NULL; b = block_next(b)) {
      uintptr_t a = (uintptr_t)b;
      if (a < s->base || a >= s->base + span_bytes(s) || !span_is_elem_start(s, a)) return false;  // and carved
      if (live_test(a)) return false;  // a free block is never live
      if (++nfree > s->nelems) return false;  // a cycle
    }
    if (s->fresh > s->nelems || nfree + s->used != s->fresh) return false;
  } else if (s->state != SPAN_LARGE) {
    return false;
  }
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE)
    if (span_of(p) != s) return false;
  return true;
}

// ---- page info (pagemap.h) ---------------------------------------------------------

void gort__span_pinfo_init(const mspan_t *s, unsigned cls, uint32_t flags) {
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE)
    atomic_store_explicit(pinfo_word(p), (uint32_t)cls << 8 | flags, memory_order_relaxed);
}

void gort__span_pinfo_set_owner(const mspan_t *s, uint32_t id) {
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE) {
    _Atomic uint32_t *w = pinfo_word(p);
    uint32_t old = atomic_load_explicit(w, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        w, &old, (old & ((1u << PINFO_OWNER_SHIFT) - 1)) | id << PINFO_OWNER_SHIFT,
        memory_order_release, memory_order_relaxed)) {
    }
  }
}

void gort__span_pinfo_clear(const mspan_t *s) {
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE)
    atomic_store_explicit(pinfo_word(p), 0, memory_order_relaxed);
}

bool gort__span_pinfo_take_pending(const mspan_t *s) {
  bool any = false;
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE) {
    _Atomic uint32_t *w = pinfo_word(p);
    // Sequentially consistent, before the caller collects: see note_pending.
    if (atomic_load_explicit(w, memory_order_relaxed) & PINFO_PENDING)
      any |= (atomic_fetch_and_explicit(w, ~PINFO_PENDING, memory_order_seq_cst) & PINFO_PENDING) != 0;
  }
  return any;
}

// ---- remote frees (pagemap.h, remote bits) ------------------------------------------

// In a no-stop region: between a word's exchange and the clearing of its
// blocks' live bits, the blocks are neither pending remote frees nor free
// to a stop that looks (the leak check took such a block, unreachable as
// a free block is, for a leak: once in a clean-clone CI run of
// test/leak/churn.c).
uint32_t gort__span_take_remote(mspan_t *s) {
  uint32_t n = 0;
  block_t *head = NULL, *last = NULL;
  nostop_enter();
  // A span starts on a page, so its k-th KiB is its k-th bitmap word.
  for (uintptr_t at = s->base, end = s->base + span_bytes(s); at < end; at += 1024) {
    uint64_t bit;
    _Atomic uint64_t *w = remote_word(at, &bit);
    // Sequentially consistent, as the freeing thread's OR, after the
    // caller took HAS or PINFO_PENDING (mcache.c, "Frees").
    if (atomic_load_explicit(w, memory_order_seq_cst) == 0) continue;
    uint64_t bits = atomic_exchange_explicit(w, 0, memory_order_seq_cst);
    uint64_t *lw = live_word(at, &bit);
    __atomic_store_n(lw, __atomic_load_n(lw, __ATOMIC_RELAXED) & ~bits, __ATOMIC_RELAXED);
    // In address order, so that the blocks go out in the order they lie.
    for (; bits != 0; bits &= bits - 1) {
      block_t *b = (block_t *)(at + ((uintptr_t)__builtin_ctzll(bits) << 4));
      b->tag = 0;
      if (last != NULL) block_set_next(last, b);
      else head = b;
      last = b;
      n++;
    }
  }
  if (n != 0) {
    block_set_next(last, s->free);
    s->free = head;
    s->used -= n;
  }
  nostop_exit();
  return n;
}
