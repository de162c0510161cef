// Metadata allocators: gort's metadata never comes from the heap it
// describes, nor from libc malloc.
//
// persistent_alloc bump-allocates from 256 KiB chunks reserved from the OS;
// its memory is never returned (Go's persistentalloc). fixalloc hands out
// objects of one size from persistent memory and recycles them through a
// free list (Go's fixalloc): spans and thread caches come from it.

#ifndef GORT_BASE_PERSISTENT_H
#define GORT_BASE_PERSISTENT_H

#include "base.h"
#include "lock.h"

// Returns zeroed memory of size bytes aligned to align (a power of two up
// to 4096), or NULL if the OS refused. Thread-safe (rank LOCK_PERSIST).
void *gort__persistent_alloc(size_t size, size_t align);
// Bytes reserved from the OS for metadata so far (for Sys / MemStats).
uint64_t gort__persistent_sys_bytes(void);
void gort__persistent_lock_for_fork(void);
void gort__persistent_unlock_after_fork(int child);

typedef struct fixalloc_link {
  struct fixalloc_link *next;
} fixalloc_link_t;

#define FIXALLOC_RELEASED_MAX 4096

// Not thread-safe: each fixalloc is guarded by a lock of its owner's.
// Objects of at most a page never straddle one (4 KiB pages, each holding
// 4096 / size objects), so that a page whose objects are all free can be
// returned to the OS (gort__fixalloc_release).
typedef struct {
  size_t size;               // object size, a multiple of 16
  fixalloc_link_t *free;     // recycled objects
  uint64_t nfree;            // length of free
  char *chunk;               // current chunk
  size_t chunk_left;         // bytes left in chunk
  uint64_t inuse;            // objects handed out and not returned
  uint64_t sys;              // bytes obtained for chunks
  uint64_t released_bytes;   // bytes of pages now returned to the OS
  // Pages returned to the OS, reused (refaulted) before new chunks are
  // taken; a stack of addresses in persistent memory, made on first use.
  uintptr_t *released;
  uint32_t nreleased;
} fixalloc_t;

void gort__fixalloc_init(fixalloc_t *f, size_t size);
// Returns a zeroed object, or NULL if the OS refused memory.
void *gort__fixalloc_alloc(fixalloc_t *f);
void gort__fixalloc_free(fixalloc_t *f, void *p);
// Returns to the OS every page whose objects are all free (they stay
// mapped and read as zero: a lock-free reader of a stale object pointer
// reads zeros, never faults). dontneed as for gort__os_release. Returns
// the bytes released.
uint64_t gort__fixalloc_release(fixalloc_t *f, int dontneed);

#endif  // GORT_BASE_PERSISTENT_H
