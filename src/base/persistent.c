// Persistent metadata memory and fixed-size allocators. See persistent.h.

#include "persistent.h"

#include <string.h>

#include "../os/os.h"

#define CHUNK_BYTES (256 << 10)

static struct {
  lock_t lock;       // rank LOCK_PERSIST; guards everything below
  char *next;        // bump pointer into the current chunk
  char *end;
  uint64_t sys_bytes;  // written under lock; read racily by stats
} persist = {LOCK_INIT, NULL, NULL, 0};

void *gort__persistent_alloc(size_t size, size_t align) {
  if (size >= CHUNK_BYTES / 4) {
    // Big metadata (arena span tables) gets its own mapping.
    int err;
    size_t rounded = GORT_ALIGN_UP(size, (size_t)4096);
    void *p = gort__os_reserve(0, rounded, 4096, &err);
    if (p != NULL) __atomic_fetch_add(&persist.sys_bytes, rounded, __ATOMIC_RELAXED);
    return p;
  }
  lock(&persist.lock);
  char *p = (char *)GORT_ALIGN_UP((uintptr_t)persist.next, align);
  if (persist.next == NULL || p + size > persist.end) {
    int err;
    char *chunk = gort__os_reserve(0, CHUNK_BYTES, 4096, &err);
    if (chunk == NULL) {
      unlock(&persist.lock);
      return NULL;
    }
    __atomic_fetch_add(&persist.sys_bytes, CHUNK_BYTES, __ATOMIC_RELAXED);
    persist.next = chunk;
    persist.end = chunk + CHUNK_BYTES;
    p = (char *)GORT_ALIGN_UP((uintptr_t)persist.next, align);
  }
  persist.next = p + size;
  unlock(&persist.lock);
  return p;  // fresh anonymous memory is zero
}

uint64_t gort__persistent_sys_bytes(void) {
  return __atomic_load_n(&persist.sys_bytes, __ATOMIC_RELAXED);
}

void gort__persistent_lock_for_fork(void) { lock(&persist.lock); }

void gort__persistent_unlock_after_fork(int child) {
  if (child)
    lock_reinit(&persist.lock);
  else
    unlock(&persist.lock);
}

void gort__fixalloc_init(fixalloc_t *f, size_t size) {
  memset(f, 0, sizeof *f);
  f->size = GORT_ALIGN_UP(size, (size_t)16);
}

void *gort__fixalloc_alloc(fixalloc_t *f) {
  void *p;
  if (f->free != NULL) {
    p = f->free;
    f->free = f->free->next;
    memset(p, 0, f->size);
  } else {
    if (f->chunk_left < f->size) {
      size_t bytes = f->size * 64 > 16384 ? f->size * 64 : 16384;
      f->chunk = gort__persistent_alloc(bytes, 64);
      if (f->chunk == NULL) return NULL;
      f->chunk_left = bytes;
      f->sys += bytes;
    }
    p = f->chunk;
    f->chunk += f->size;
    f->chunk_left -= f->size;
  }
  f->inuse++;
  return p;
}

void gort__fixalloc_free(fixalloc_t *f, void *p) {
  fixalloc_link_t *l = p;
  l->next = f->free;
  f->free = l;
  f->inuse--;
}
