// Hardened mode: catching heap corruption where it happens.
//
// GORT_DEBUG=harden=1 adds three checks to the default ones (malloc.c):
//   1. Overflow: every block carries, right after the bytes asked for, an
//      8-byte canary derived from a secret key and the block's address, and
//      in its last 8 bytes the size asked for. free() checks the canary: a
//      write past the end of a block is fatal, naming the block.
//   2. Use after free: free() fills the block (past the free list's two
//      words) with 0xdf; allocation checks that the fill is intact, so a
//      write into a freed small block is fatal when the block is reused.
//   3. Randomized reuse: a fresh span's free list is shuffled, so the order
//      blocks come out in cannot be predicted by an attacker.
//   4. Encoded links: free-list links are stored xor'd with a secret key and
//      the block's address (mspan.h, block_next), and a popped link that
//      does not decode to a block of the same span is fatal, so a write
//      after free into a link cannot steer malloc to an address of the
//      attacker's choosing.
//
// Cost when off: none on the fast paths. Hardened mode forces every malloc
// into the slow path by keeping the thread's profiling countdown below
// zero, and every free by setting PINFO_SLOW in the page info of each
// small span (pagemap.h), the two tests the fast paths make anyway. (So a
// hardened free takes no global lock: the profiler is consulted only for
// sampled blocks.)

#include "harden.h"

#include <string.h>

#include "../base/base.h"
#include "mcache.h"
#include "pagemap.h"

bool gort__harden;
uintptr_t gort__link_key;

static uint64_t canary_of(const void *p) {
  return (gort__tag_key ^ ((uintptr_t)p * 0x9E3779B97F4A7C15ULL)) | 1;  // never all zero
}

void *gort__harden_on_alloc(void *p, size_t n, size_t usable, bool small) {
  unsigned char *b = p;
  // A reused small block must still hold the fill free() left in it
  // (block sizes are multiples of 16, so whole words). Large spans are
  // never filled: an over-aligned one may be as small as a small block.
  if (small) {
    const uint64_t fill = 0x0101010101010101ULL * HARDEN_FILL;
    for (size_t i = 2 * sizeof(uintptr_t); i < usable; i += 8) {
      uint64_t w;
      memcpy(&w, b + i, sizeof w);
      if (w != fill) gort__fatal("malloc(): write after free detected in block", p);
    }
  }
  uint64_t c = canary_of(p);
  memcpy(b + n, &c, sizeof c);
  uint64_t req = n;
  memcpy(b + usable - sizeof req, &req, sizeof req);
  return p;
}

size_t gort__harden_requested(const void *p, size_t usable) {
  uint64_t req;
  memcpy(&req, (const unsigned char *)p + usable - sizeof req, sizeof req);
  return req;
}

void gort__harden_check(const void *p, size_t usable, const char *what_size, const char *what_canary) {
  const unsigned char *b = p;
  uint64_t req = gort__harden_requested(p, usable), c;
  if (req > usable - HARDEN_EXTRA) gort__fatal(what_size, p);
  memcpy(&c, b + req, sizeof c);
  if (c != canary_of(p)) gort__fatal(what_canary, p);
}

void gort__harden_on_free(void *p, size_t usable, bool small) {
  gort__harden_check(p, usable, "free(): heap overflow (block size word overwritten) in block",
                     "free(): heap overflow (write past the end of the block) in block");
  if (small) memset((unsigned char *)p + 2 * sizeof(uintptr_t), HARDEN_FILL, usable - 2 * sizeof(uintptr_t));
}

bool gort__harden_resize(void *p, size_t usable, size_t n) {
  gort__harden_check(p, usable, "realloc(): heap overflow (block size word overwritten) in block",
                     "realloc(): heap overflow (write past the end of the block) in block");
  if (n > usable - HARDEN_EXTRA) return false;
  uint64_t c = canary_of(p), req = n;
  memcpy((unsigned char *)p + n, &c, sizeof c);
  memcpy((unsigned char *)p + usable - sizeof req, &req, sizeof req);
  return true;
}

block_t *gort__harden_checked_next(const block_t *b) {
  block_t *n = block_next(b);
  if (n != NULL) {
    // A thread's list may hold blocks of several spans of one class.
    mspan_t *s = span_of((uintptr_t)b), *t = span_of((uintptr_t)n);
    if (s == NULL || t == NULL || span_state(t) != SPAN_SMALL || t->sizeclass != s->sizeclass ||
        ((uintptr_t)n - t->base) % t->elemsize != 0)
      gort__fatal("malloc(): free list corrupted (write after free?) at block", b);
  }
  return n;
}

void gort__harden_span_init(mspan_t *s) {
  uint16_t order[GORT_MAX_SPAN_ELEMS];
  uint32_t n = s->nelems;
  for (uint32_t i = 0; i < n; i++) order[i] = (uint16_t)i;
  uint64_t r = gort__tag_key ^ s->base;
  for (uint32_t i = n - 1; i > 0; i--) {  // Fisher-Yates
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    uint32_t j = (uint32_t)(r % (i + 1));
    uint16_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  block_t *head = NULL;
  for (uint32_t k = 0; k < n; k++) {
    block_t *b = (block_t *)(s->base + (uintptr_t)order[k] * s->elemsize);
    memset((char *)b + 2 * sizeof(uintptr_t), HARDEN_FILL, s->elemsize - 2 * sizeof(uintptr_t));
    block_set_next(b, head);
    b->tag = block_tag_fresh((uintptr_t)b);
    head = b;
  }
  s->free = head;
  __atomic_store_n(&s->fresh, n, __ATOMIC_RELAXED);
}
