// gort's own frames, where no module range tells them apart.
//
// Linked with libgort.a (and in a fully static program), gort's code is
// the program's own: a stack walked from inside the allocator begins with
// the allocator's frames, and nothing but their return addresses says so.
// The heap profiler (mprof.c) and the leak check (leakcheck.c) learn them
// the same way at start-up: one allocation of each kind the allocator has,
// its stack captured whole by their own hook, compared with a capture made
// in the probing function itself. The frames above the probing function's
// are gort's; their return addresses are "own" from then on.

#ifndef GORT_OBS_OWNFRAMES_H
#define GORT_OBS_OWNFRAMES_H

#include <stdbool.h>
#include <stdint.h>

#define OWN_PROBE_KINDS 14  // malloc, calloc, realloc, aligned, new, gort_* ...
#define OWN_MAX_PCS 64

typedef struct {
  uintptr_t pcs[OWN_MAX_PCS];
  int n;
} own_frames_t;

// Before arming the hook: what a kind needs allocated first (realloc's
// block), not probed. Then the probed allocation of that kind, and its
// release.
void gort__own_probe_prepare(int kind, void **p);
void gort__own_probe_alloc(int kind, void **p, void **q);
void gort__own_probe_release(int kind, void *p, void *q);

// Adds the return addresses of got[from..k) to o, where got[k] is the
// probing function's frame: the one where got's tail matches direct (a
// capture made in the probing function, direct[0] its own call site).
void gort__own_learn(own_frames_t *o, const uintptr_t *direct, uint32_t nd, const uintptr_t *got, uint32_t ngot,
                     uint32_t from);

static inline bool own_frames_has(const own_frames_t *o, uintptr_t pc) {
  for (int k = 0, n = __atomic_load_n(&o->n, __ATOMIC_ACQUIRE); k < n; k++)
    if (o->pcs[k] == pc) return true;
  return false;
}

#endif  // GORT_OBS_OWNFRAMES_H
