// gort's own globals that the collector's root scan skips (base/noscan.c).
//
// A program linked with libgort.a has gort's data and bss in its own
// writable segment, which the collector scans as a root at both stops of
// every cycle (with libgort.so, gort's segments are skipped whole, which
// is why no collected object may be kept alive only by a gort global).
// Most of that is a few large tables that hold addresses, not objects: the
// heap's reservations, the dirty tracker's copy of them, the unwinder's
// and the symbolizer's caches, the leak check's state: 370 KiB of 480, a
// third of each stop of binary-trees' cycles. Worse, a reservation's start
// is a heap address, so scanning those tables kept the object there alive.
// A file registers such a table with GORT_NOSCAN(var) at file scope.
#ifndef GORT_BASE_NOSCAN_H
#define GORT_BASE_NOSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define GORT_NOSCAN_MAX 16

void gort__noscan_register(const void *p, size_t n);
// Calls fn on each part of [lo, hi) outside every registered range, in
// address order: how a root scan (the collector's, the leak check's)
// reads a writable segment.
void gort__noscan_foreach_gap(uintptr_t lo, uintptr_t hi, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                              void *arg);

#define GORT_NOSCAN_CAT2(a, b) a##b
#define GORT_NOSCAN_CAT(a, b) GORT_NOSCAN_CAT2(a, b)
#define GORT_NOSCAN(var)                                                                    \
  __attribute__((constructor)) static void GORT_NOSCAN_CAT(gort__noscan_ctor_, __LINE__)(void) { \
    gort__noscan_register(&(var), sizeof(var));                                            \
  }

#endif  // GORT_BASE_NOSCAN_H
