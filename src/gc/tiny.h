// The tiny allocator: noscan objects under 16 bytes packed into 16-byte
// blocks, each object still freeable and measurable one by one (tiny.c).

#ifndef GORT_GC_TINY_H
#define GORT_GC_TINY_H

#include "../alloc/mcache.h"

// A zeroed noscan object of 1 to 15 bytes.
void *gort__gc_tiny_alloc(size_t size);
// gort_free of p, an address in a live block of s.
void gort__gc_tiny_free(void *p, mspan_t *s);
// The live object holding p (in block blk of s), or 0; its size in *size
// (bytes it may use: padding after it included) unless size is NULL.
uintptr_t gort__gc_tiny_object(uintptr_t p, const mspan_t *s, uintptr_t blk, size_t *size);
// A fresh span of the tiny kind: its blocks end where their words begin.
void gort__gc_tiny_span_init(mspan_t *s);
// The cache leaves its current block (thread exit, a forked child's
// orphaned caches), in a no-stop region. Returns the block if every object
// in it was freed (the caller frees it, outside the region), else 0.
uintptr_t gort__gc_tiny_leave(mcache_t *c);
// With the world stopped: fn on each cache's word that holds its block.
void gort__gc_tiny_roots(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg);

#endif
