// The probes that learn gort's own frames (ownframes.h says why).

#include "ownframes.h"

#include <stddef.h>
#include <stdlib.h>

#include "gort/alloc.h"

// operator new and new[], from the shim (absent in builds without it).
extern void *_Znwm(size_t) __attribute__((weak));
extern void *_Znam(size_t) __attribute__((weak));
extern void _ZdlPv(void *) __attribute__((weak));
extern void _ZdaPv(void *) __attribute__((weak));

void gort__own_probe_prepare(int kind, void **p) {
  *p = NULL;
  if (kind == 10 || kind == 11) *p = malloc(24);  // realloc's block, grown in place or moved
}

void gort__own_probe_alloc(int kind, void **p, void **q) {
  *q = NULL;
  switch (kind) {
    case 0: *p = malloc(24); break;
    case 1: *p = malloc(40000); break;
    case 2: *p = calloc(1, 24); break;
    case 3: *p = calloc(1, 40000); break;
    case 4: *p = realloc(NULL, 24); break;
    case 5: if (posix_memalign(p, 64, 24) != 0) *p = NULL; break;
    case 6: if (posix_memalign(p, 64, 40000) != 0) *p = NULL; break;
    case 7: *p = aligned_alloc(64, 64); break;
    case 8: if (_Znwm != NULL) *q = _Znwm(24); break;
    case 9: if (_Znam != NULL) *q = _Znam(24); break;
    case 10: *p = realloc(*p, 200); break;
    case 11: *p = realloc(*p, 100000); break;
    case 12: *p = gort_malloc(24); break;
    case 13: *p = gort_calloc(1, 24); break;
    default: break;
  }
  // GCC takes malloc and the like for builtins that write no memory the
  // program sees: without this, a caller may keep what the hook wrote
  // during the call in registers from before it.
  __asm__ volatile("" ::: "memory");
}

void gort__own_probe_release(int kind, void *p, void *q) {
  if (q != NULL) kind == 8 ? _ZdlPv(q) : _ZdaPv(q);
  // gort_free for gort_malloc's: free may be another allocator's (the
  // ThreadSanitizer build has no shim).
  kind >= 12 ? gort_free(p) : free(p);
}

void gort__own_learn(own_frames_t *o, const uintptr_t *direct, uint32_t nd, const uintptr_t *got, uint32_t ngot,
                     uint32_t from) {
  if (ngot <= nd) return;
  uint32_t k = ngot - nd;  // got[k] is the return address into the probing function
  for (uint32_t i = 1; i < nd; i++)
    if (got[k + i] != direct[i]) return;  // the walks disagree: learn nothing
  // got[k - 1] returns into gort__own_probe_alloc, no caller of which is
  // the program's: not learned, it would only take a slot.
  for (uint32_t i = from; i + 1 < k; i++) {
    int n = __atomic_load_n(&o->n, __ATOMIC_RELAXED);
    if (own_frames_has(o, got[i]) || n >= OWN_MAX_PCS) continue;
    o->pcs[n] = got[i];
    __atomic_store_n(&o->n, n + 1, __ATOMIC_RELEASE);  // readers walk on other threads
  }
}
