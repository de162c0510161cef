// Stack capture without locks or allocation, for the heap profiler. See unwind.c.

#ifndef GORT_OBS_UNWIND_H
#define GORT_OBS_UNWIND_H

#include <stdint.h>

// Fills pcs with up to max program counters of the calling thread's stack,
// innermost first, and returns how many it wrote. pcs[0] is the return
// address of this call, so a PC inside the function that called
// gort__unwind_capture; pcs[1] is the return address into that function's
// caller, and so on: the same list as glibc's backtrace() called from the
// same place (it differs only in pcs[0], the call site). Every entry is a
// return address except the one after a signal frame, which is the exact
// interrupted PC, also as backtrace() reports it. The walk stops early at
// the outermost frame (_start, clone3), at a PC in no loaded module, or at
// a frame it cannot unwind safely.
//
// Takes no lock, never allocates and never blocks: callable inside malloc,
// from several threads at once, in a forked child, in a signal handler.
uint32_t gort__unwind_capture(uintptr_t *pcs, uint32_t max);

// Snapshots the loaded modules and maps the rule cache. Call at start-up
// from normal context: it takes the loader lock (dl_iterate_phdr) and maps
// memory. Calling it again later picks up modules loaded since; capture
// also works before it, only slower (nothing is cached).
void gort__unwind_init(void);

#endif  // GORT_OBS_UNWIND_H
