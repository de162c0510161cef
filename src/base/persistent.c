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

#define FIX_PAGE ((uintptr_t)4096)

static size_t per_page(const fixalloc_t *f) { return f->size <= FIX_PAGE ? FIX_PAGE / f->size : 0; }

// Puts the objects of one page (4 KiB, page-aligned) on the free list.
static void carve_page(fixalloc_t *f, uintptr_t page) {
  size_t n = per_page(f);
  for (size_t i = n; i-- > 0;) {
    fixalloc_link_t *l = (fixalloc_link_t *)(page + i * f->size);
    l->next = f->free;
    f->free = l;
  }
  f->nfree += n;
}

void *gort__fixalloc_alloc(fixalloc_t *f) {
  if (f->free == NULL && f->nreleased > 0) carve_page(f, f->released[--f->nreleased]);
  void *p;
  if (f->free != NULL) {
    p = f->free;
    f->free = f->free->next;
    f->nfree--;
    memset(p, 0, f->size);
  } else {
    if (f->chunk_left < f->size) {
      size_t bytes = f->size * 64 > 16384 ? GORT_ALIGN_UP(f->size * 64, FIX_PAGE) : 16384;
      f->chunk = gort__persistent_alloc(bytes, FIX_PAGE);
      if (f->chunk == NULL) return NULL;
      f->chunk_left = bytes;
      f->sys += bytes;
    }
    // Keep objects within pages: skip a page's tail that cannot hold one.
    uintptr_t c = (uintptr_t)f->chunk, room = FIX_PAGE - (c & (FIX_PAGE - 1));
    if (f->size <= FIX_PAGE && room < f->size) {
      if (f->chunk_left < room + f->size) {
        f->chunk_left = 0;
        return gort__fixalloc_alloc(f);
      }
      f->chunk += room;
      f->chunk_left -= room;
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
  f->nfree++;
  f->inuse--;
}

// Sorts a list by address: merge sort, in place, no memory.
static fixalloc_link_t *sort_list(fixalloc_link_t *l, uint64_t n) {
  if (n < 2) return l;
  fixalloc_link_t *mid = l;
  for (uint64_t i = 1; i < n / 2; i++) mid = mid->next;
  fixalloc_link_t *r = mid->next;
  mid->next = NULL;
  l = sort_list(l, n / 2);
  r = sort_list(r, n - n / 2);
  fixalloc_link_t head, *t = &head;
  while (l != NULL && r != NULL) {
    if ((uintptr_t)l < (uintptr_t)r)
      t->next = l, l = l->next;
    else
      t->next = r, r = r->next;
    t = t->next;
  }
  t->next = l != NULL ? l : r;
  return head.next;
}

uint64_t gort__fixalloc_release(fixalloc_t *f, int dontneed) {
  size_t n = per_page(f);
  if (n == 0 || f->nfree < n) return 0;
  if (f->released == NULL) {
    f->released = gort__persistent_alloc(FIXALLOC_RELEASED_MAX * sizeof(uintptr_t), 64);
    if (f->released == NULL) return 0;
  }
  // In address order, the objects of one page are adjacent; a run of n of
  // them is a page with nothing in use.
  f->free = sort_list(f->free, f->nfree);
  fixalloc_link_t **keep = &f->free, *l = f->free;
  uint64_t bytes = 0;
  while (l != NULL) {
    uintptr_t page = (uintptr_t)l & ~(FIX_PAGE - 1);
    fixalloc_link_t *end = l;
    size_t k = 0;
    while (end != NULL && ((uintptr_t)end & ~(FIX_PAGE - 1)) == page) end = end->next, k++;
    if (k == n && f->nreleased < FIXALLOC_RELEASED_MAX &&
        gort__os_release((void *)page, FIX_PAGE, dontneed) == 0) {
      f->released[f->nreleased++] = page;
      f->nfree -= n;
      bytes += FIX_PAGE;
      *keep = end;  // drop the page's objects from the list
    } else {
      while (l != end) keep = &l->next, l = l->next;
    }
    l = end;
  }
  f->released_bytes += bytes;
  return bytes;
}
