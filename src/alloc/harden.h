// Hardened mode (GORT_DEBUG=harden=1). See harden.c.

#ifndef GORT_ALLOC_HARDEN_H
#define GORT_ALLOC_HARDEN_H

#include "mspan.h"

extern bool gort__harden GORT_HIDDEN;

// Bytes hardened mode adds to every request: the canary and the size.
#define HARDEN_EXTRA 16
#define HARDEN_FILL 0xdf

// Lays out a fresh block of at least n + HARDEN_EXTRA bytes: checks the
// free fill of a small block (use after free), writes the canary after n and n at the end.
void *gort__harden_on_alloc(void *p, size_t n, size_t usable, bool small);
// Checks the canary of a block about to be freed and fills it.
void gort__harden_on_free(void *p, size_t usable, bool small);
// Checks a live block's canary and size word; fatal with the messages given.
void gort__harden_check(const void *p, size_t usable, const char *what_size, const char *what_canary);
// realloc in place: checks the block, then moves the canary to a new size
// n if the block has room for it. Returns false if it has not.
bool gort__harden_resize(void *p, size_t usable, size_t n);
// The size the program asked for (what malloc_usable_size reports).
size_t gort__harden_requested(const void *p, size_t usable);
// The next block after b on a free list, checked: fatal if the decoded
// link is not a block of b's size class (hardened mode only).
block_t *gort__harden_checked_next(const block_t *b);
// Shuffles a fresh span's free list and fills its blocks.
void gort__harden_span_init(mspan_t *s);

#endif  // GORT_ALLOC_HARDEN_H
