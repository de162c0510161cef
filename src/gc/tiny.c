// The tiny allocator (Go: mallocgc's tiny blocks): noscan objects under
// 16 bytes, packed into 16-byte blocks.
//
// Programs of short strings allocate mostly objects of a few bytes; a
// 16-byte slot each would waste half the heap. So, as in Go, a thread
// keeps one current 16-byte block (mcache.tiny) and places each noscan
// object under 16 bytes in it at the next offset aligned to the object's
// size (2, 4 or 8 bytes), taking a new block when the object does not
// fit. (Unlike Go, offsets are even and odd sizes are rounded up: see
// below.) The collector sees only the block: any pointer into it keeps
// the whole block, and it is freed once none of its objects is reachable.
//
// Go stops there, because Go never frees by hand and never asks an
// object's size. C does both: gort_free, gort_usable_size, gort_gc_size,
// gort_gc_base, finalizers and weak pointers all take one object. So every
// block has two bytes of metadata (tiny_meta_t) that name its objects:
//   starts  a bit per even offset (bit k: offset 2k, up to 12) that begins
//           a region: an object, or the free tail of the block. A region
//           ends where the next begins (or at 16). Alignment padding joins
//           the object before it (whose usable size then grows: a size
//           only ever grows, so a size the program was told stays true).
//           Written by the owner only.
//   gone    a bit per offset whose region is not a live object: freed, or
//           once the block is released, every offset that starts no object
//           (the tail's included). Bit 7, RELEASED: the owner will place
//           nothing more in the block. Changed by atomic ORs only.
// Even offsets halve the metadata: a bit per byte offset took four bytes a
// block, and tiny objects 25% more memory than Go's; two bytes cost 12.5%,
// and rounding odd sizes up costs less than the difference (the padding
// after an odd-sized object often took that byte anyway). The bytes live
// at the end of the block's span (so a tiny span holds 910 blocks, not
// 1024): they come and go with the span's pages, and no other structure
// has to follow the span. An object never starts at 14 (only one of two
// bytes would fit), so a block whose objects end at 14 or later is full.
//
// Releasing a block. While its owner may still place objects in it, a
// block is not freed, however many of its objects are. The owner releases
// it when it fills, or when the next object does not fit (it leaves the
// tail), with one OR of RELEASED and of every offset's bit that names no
// object: so all of gone's bits are set exactly when the block is released
// and all its objects are freed, and exactly one OR, a free's or the
// release's, sees all of them in its result. That thread frees the block,
// as one collected object (gort__gc_free_block), and no thread reads the
// block's metadata after its OR: a free that decided from a read of starts
// after its OR (first versions, a reviewer's finds) could read the starts
// of the block's next life, once the last free had freed it and another
// thread had taken it, and free it again with a live object in it.
// So a loop of tiny allocations pays a locked instruction per block and
// nothing more per object: 19.3 ns an object (1 to 15 bytes, a cycle
// every 280,000 objects, one CPU; medians of 9) against 13.7 before
// per-object frees (the metadata's stores and cache lines, and that lock),
// and 17.3 for Go 1.19 on the same loop. (Versions that released a filled
// block with a plain store cost 1.29 times the old loop, not 1.41, and
// were wrong.)
//
// The owner keeps its current block across collections: the stop marks
// each cache's block as a root (gort__gc_tiny_roots), as Go's
// gcMarkTinyAllocs does, so that the sweep never frees a block whose
// metadata the owner will still write. (It used to forget its block at
// each stop instead, which left no one to release it.) A thread that
// exits releases its block and frees it if it is dead; a forked child's
// quarantined caches release theirs and leave a dead one to the next
// cycle's sweep (with the collector off, 16 bytes a thread the fork left
// behind).
//
// Misuse: gort_free of a pointer that is not a live object's start (the
// middle of one, an object freed already, a block's free tail) is a fatal
// error naming it.

#include "tiny.h"

#include <errno.h>

#include "../alloc/malloc_fast.h"
#include "../base/vg.h"
#include "gc.h"

typedef struct {
  _Atomic uint8_t starts;
  _Atomic uint8_t gone;
} tiny_meta_t;

#define TINY_RELEASED ((uint8_t)0x80)  // in gone
#define TINY_OBJECTS ((uint8_t)0x7f)   // the bits that can name a region
#define TINY_FULL 14                  // a tail from here on is no tail

static uint8_t bit_at(unsigned off) { return (uint8_t)(1u << (off >> 1)); }

static tiny_meta_t *meta_of(const mspan_t *s, uintptr_t blk) {
  return (tiny_meta_t *)(s->base + (uintptr_t)s->nelems * 16) + ((blk - s->base) >> 4);
}

void gort__gc_tiny_span_init(mspan_t *s) {
  s->nelems = (uint32_t)(span_bytes(s) / (16 + sizeof(tiny_meta_t)));
  // Hardened mode carved the whole span into blocks: the metadata is not.
  if (__atomic_load_n(&s->fresh, __ATOMIC_RELAXED) > s->nelems) __atomic_store_n(&s->fresh, s->nelems, __ATOMIC_RELAXED);
  VG_DEFINED(meta_of(s, s->base), (uintptr_t)s->nelems * sizeof(tiny_meta_t));
}

static unsigned highest(unsigned bits) { return 31u - (unsigned)__builtin_clz(bits); }

// The region of a block holding offset off: its start and end, as offsets.
static void region_of(uint8_t starts, unsigned off, unsigned *lo, unsigned *hi) {
  unsigned k = highest((starts & TINY_OBJECTS & ((2u << (off >> 1)) - 1)) | 1);
  unsigned above = starts & ~((2u << k) - 1) & TINY_OBJECTS;
  *lo = 2 * k;
  *hi = above != 0 ? 2 * (unsigned)__builtin_ctz(above) : 16;
}

// Whether the region at offset lo is a live object: not gone, and not the
// tail of a block still being filled (its highest region).
static bool region_live(uint8_t starts, uint8_t gone, unsigned lo) {
  if (gone & bit_at(lo)) return false;
  return (gone & TINY_RELEASED) || lo != 2 * highest(starts & TINY_OBJECTS);
}

// ---- the owner ------------------------------------------------------------------

static GORT_NOINLINE void tail_freed(uintptr_t p) {
  gort__fatal("free(): invalid pointer (a tiny block's free space, never handed out)", (void *)p);
}

// Releases the cache's block, whose starts are starts and whose tail is at
// end (none from TINY_FULL on). Returns whether every object in it was
// freed already; nothing of the block may be read after the OR.
static bool release(mcache_t *c, uint8_t starts, unsigned end) {
  uint8_t tail = end < TINY_FULL ? bit_at(end) : 0;
  uint8_t mask = (uint8_t)(TINY_RELEASED | ((~starts | tail) & TINY_OBJECTS));
  uintptr_t blk = c->tiny;
  c->tiny = 0;
  uint8_t old = atomic_fetch_or_explicit(&((tiny_meta_t *)c->tiny_meta)->gone, mask, memory_order_acq_rel);
  if (old & tail) tail_freed(blk + end);
  return (uint8_t)(old | mask) == 0xff;
}

uintptr_t gort__gc_tiny_leave(mcache_t *c) {
  uintptr_t blk = c->tiny;
  if (blk == 0) return 0;
  tiny_meta_t *m = c->tiny_meta;
  return release(c, atomic_load_explicit(&m->starts, memory_order_relaxed), c->tiny_off) ? blk : 0;
}

// Places an object of size bytes (even) at off in the cache's block (it
// fits). In a no-stop region.
static void *place(mcache_t *c, unsigned off, unsigned size) {
  tiny_meta_t *m = c->tiny_meta;
  unsigned end = c->tiny_off;
  uint8_t starts = atomic_load_explicit(&m->starts, memory_order_relaxed);
  starts = (uint8_t)((starts & ~bit_at(end)) | bit_at(off));  // padding joins the object before
  unsigned e = off + size;
  if (e < TINY_FULL) starts |= bit_at(e);
  atomic_store_explicit(&m->starts, starts, memory_order_release);
  c->tiny_off = e;
  void *p = (void *)(c->tiny + off);
  if (e >= TINY_FULL) (void)release(c, starts, e);  // p is live: the block is not dead
  return p;
}

// A fresh block b becomes the cache's, with an object of size bytes at 0.
// It came from the cache's tiny span, unless a stop took that back since.
static void adopt(mcache_t *c, uintptr_t b, unsigned size) {
  const mspan_t *s = c->gc[KIND_GC_TINY - 1][1].span;
  if (s == NULL || b - s->base >= span_bytes(s)) s = span_of(b);
  tiny_meta_t *m = meta_of(s, b);
  atomic_store_explicit(&m->gone, 0, memory_order_relaxed);
  atomic_store_explicit(&m->starts, 1, memory_order_relaxed);
  c->tiny = b;
  c->tiny_meta = m;
  c->tiny_off = 0;
  (void)place(c, 0, size);
}

static unsigned align_of(size_t size) { return size >= 8 ? 8 : size >= 4 ? 4 : 2; }
static unsigned even_size(size_t size) { return ((unsigned)size + 1) & ~1u; }

// The object in the cache's current block if it fits there, else NULL.
// In a no-stop region.
GORT_INLINE void *place_in_current(mcache_t *c, size_t size) {
  if (c->tiny == 0) return NULL;
  unsigned align = align_of(size), even = even_size(size);
  unsigned off = (c->tiny_off + align - 1) & ~(align - 1);
  return off + even <= 16 ? place(c, off, even) : NULL;
}

// A new block (or the thread's first; c is NULL if the thread has no
// cache or is not registered).
static GORT_NOINLINE void *tiny_alloc_slow(mcache_t *c, size_t size) {
  if (c == NULL && (c = gort__gc_my_cache()) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  nostop_enter();
  void *p = place_in_current(c, size);
  nostop_exit();
  if (p != NULL) return p;
  void *b = gort__gc_alloc_small(16, KIND_GC_TINY);
  if (b == NULL) return NULL;
  nostop_enter();
  uintptr_t dead_block = gort__gc_tiny_leave(c);
  adopt(c, (uintptr_t)b, even_size(size));
  nostop_exit();
  if (dead_block != 0) gort__gc_free_block(dead_block, span_of(dead_block));
  return b;
}

void *gort__gc_tiny_alloc(size_t size) {
  mcache_t *c = gort__tls_cache;
  if (gort_unlikely(c == &gort__empty_cache || !gort__stw_registered())) return tiny_alloc_slow(NULL, size);
  nostop_enter();
  void *p = place_in_current(c, size);
  nostop_exit();
  return gort_likely(p != NULL) ? p : tiny_alloc_slow(c, size);
}

// ---- everyone else ----------------------------------------------------------------

void gort__gc_tiny_free(void *p, mspan_t *s) {
  uintptr_t a = (uintptr_t)p, blk = a & ~(uintptr_t)15;
  unsigned off = (unsigned)(a & 15);
  tiny_meta_t *m = meta_of(s, blk);
  uint8_t starts = atomic_load_explicit(&m->starts, memory_order_acquire);
  uint8_t gone = atomic_load_explicit(&m->gone, memory_order_relaxed);
  unsigned lo, hi;
  region_of(starts, off, &lo, &hi);
  if (lo != off) gort__fatal("free(): invalid pointer (not the start of a tiny object)", p);
  uint8_t bit = bit_at(off);
  if (gone & bit) gort__fatal("free(): double free of a tiny object", p);
  if (!region_live(starts, gone, lo)) tail_freed(a);
  uint8_t old = atomic_fetch_or_explicit(&m->gone, bit, memory_order_acq_rel);
  if (old & bit) gort__fatal("free(): double free of a tiny object", p);
  if ((uint8_t)(old | bit) == 0xff) gort__gc_free_block(blk, s);  // nothing else of the block is read
}

uintptr_t gort__gc_tiny_object(uintptr_t p, const mspan_t *s, uintptr_t blk, size_t *size) {
  tiny_meta_t *m = meta_of(s, blk);
  uint8_t starts = atomic_load_explicit(&m->starts, memory_order_acquire);
  uint8_t gone = atomic_load_explicit(&m->gone, memory_order_relaxed);
  unsigned lo, hi;
  region_of(starts, (unsigned)(p - blk), &lo, &hi);
  if (!region_live(starts, gone, lo)) return 0;
  if (size != NULL) *size = hi - lo;
  return blk + lo;
}

// The word of each cache that holds its current block, as a root: the
// owner will write the block's metadata, so the block must survive
// whatever the mark finds.
struct roots_arg {
  void (*fn)(uintptr_t lo, uintptr_t hi, void *arg);
  void *arg;
};

static void cache_root(mcache_t *c, void *arg) {
  struct roots_arg *r = arg;
  if (c->tiny != 0) r->fn((uintptr_t)&c->tiny, (uintptr_t)(&c->tiny + 1), r->arg);
}

void gort__gc_tiny_roots(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  struct roots_arg r = {fn, arg};
  gort__mcache_foreach(cache_root, &r);
}
