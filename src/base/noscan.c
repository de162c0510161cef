// See noscan.h. Registration runs in constructors, before any thread of
// the program's exists; the collector reads the table with the world
// stopped, or before, with the cycle lock held.
#include "noscan.h"

static struct {
  uintptr_t lo[GORT_NOSCAN_MAX], hi[GORT_NOSCAN_MAX];
  int n;
} ns;

void gort__noscan_register(const void *p, size_t n) {
  uintptr_t lo = (uintptr_t)p, hi = lo + n;
  if (ns.n == GORT_NOSCAN_MAX) return;  // only scanned, then: slower, never wrong
  int i = ns.n++;
  for (; i > 0 && ns.lo[i - 1] > lo; i--) ns.lo[i] = ns.lo[i - 1], ns.hi[i] = ns.hi[i - 1];
  ns.lo[i] = lo, ns.hi[i] = hi;
}

void gort__noscan_foreach_gap(uintptr_t lo, uintptr_t hi, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                              void *arg) {
  for (int i = 0; i < ns.n && lo < hi; i++) {  // sorted by address
    if (ns.hi[i] <= lo || ns.lo[i] >= hi) continue;
    if (ns.lo[i] > lo) fn(lo, ns.lo[i], arg);
    lo = ns.hi[i];
  }
  if (lo < hi) fn(lo, hi, arg);
}
