/* gort: allocation.
 *
 * Manual allocation with malloc's contract. Blocks are 16-byte aligned
 * (max_align_t on x86-64 and aarch64) and must be freed by gort_free or
 * gort_realloc. These functions are also what the process's malloc, free,
 * calloc, realloc, aligned_alloc and friends call when gort is linked or
 * preloaded (docs/MALLOC.md lists the whole glibc surface). The compiler
 * knows each block's size and alignment (api.h), so _FORTIFY_SOURCE and
 * -Wstringop-overflow check writes into gort's blocks as into malloc's.
 *
 * Errors: a function that returns NULL sets errno to ENOMEM (size overflow,
 * OS refusal) or EINVAL (alignment not a power of two). Misuse - a double
 * free, a free of a pointer gort never returned, of an interior pointer -
 * prints one "gort: fatal error: ..." line naming it and the address, then
 * aborts.
 */
#ifndef GORT_ALLOC_H
#define GORT_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

/* A block of at least size bytes; malloc(0) returns a unique pointer. */
GORT_API void *gort_malloc(size_t size) GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;
/* n * size zeroed bytes; NULL with ENOMEM if n * size overflows. */
GORT_API void *gort_calloc(size_t n, size_t size)
    GORT_MALLOC_LIKE GORT_ALLOC_SIZE2(1, 2) GORT_WARN_UNUSED;
/* Resizes p (keeping its contents up to the smaller size). p == NULL acts
 * as gort_malloc; size == 0 frees p and returns NULL (glibc's choice). On
 * failure returns NULL and leaves p intact. */
GORT_API void *gort_realloc(void *p, size_t size) GORT_ALLOC_SIZE(2) GORT_WARN_UNUSED;
/* Frees p; gort_free(NULL) does nothing. */
GORT_API void gort_free(void *p);
/* A block of size bytes aligned to alignment, a power of two (any size,
 * not only multiples of alignment). EINVAL for a bad alignment. */
GORT_API void *gort_aligned_alloc(size_t alignment, size_t size)
    GORT_MALLOC_LIKE GORT_ALLOC_ALIGN(1) GORT_ALLOC_SIZE(2) GORT_WARN_UNUSED;
/* The bytes usable at p (at least what was asked); 0 for NULL. */
GORT_API size_t gort_usable_size(const void *p);

/* Returns every free page to the OS now (Go's debug.FreeOSMemory); the
 * background scavenger does the same for pages idle for a while. */
GORT_API void gort_free_os_memory(void);
/* Sets the soft memory limit in bytes (Go's debug.SetMemoryLimit) and
 * returns the previous one; a negative argument only reads it. INT64_MAX
 * means no limit. What counts: the heap's pages not returned to the OS plus
 * gort's metadata. Near the limit free pages are returned eagerly; it never
 * makes an allocation fail. Initial value: GORT_MEMLIMIT, else the limit of
 * the process's cgroup (gort(7) says which), else none. */
GORT_API int64_t gort_set_memory_limit(int64_t bytes);

GORT_END_DECLS

#endif /* GORT_ALLOC_H */
