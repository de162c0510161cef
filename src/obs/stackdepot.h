// The stack depot: each distinct call stack stored once, named by a 32-bit
// id. See stackdepot.c.

#ifndef GORT_OBS_STACKDEPOT_H
#define GORT_OBS_STACKDEPOT_H

#include <stdbool.h>
#include <stdint.h>

// Maps the depot's memory (address space only; pages are touched as stacks
// arrive). Idempotent; false if the OS refused. Call from normal context.
bool gort__stackdepot_init(void);
// The id of the stack pcs[0..depth) (innermost first), storing it if new;
// 0 if the depot is full or not mapped. Lock-free, never allocates: safe
// inside malloc and from any number of threads at once.
uint32_t gort__stackdepot_put(const uintptr_t *pcs, uint32_t depth);
// The stack of id (from put), its depth in *depth; NULL for 0 or an id
// never handed out.
const uintptr_t *gort__stackdepot_get(uint32_t id, uint32_t *depth);
// Distinct stacks stored, and the bytes they take.
void gort__stackdepot_stats(uint64_t *stacks, uint64_t *bytes);

#endif  // GORT_OBS_STACKDEPOT_H
