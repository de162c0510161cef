// The leak check's parts inside obs/: recording (leakcheck.c) and the
// report (leakreport.c). See leakcheck.c for the design.

#ifndef GORT_OBS_LEAKCHECK_H
#define GORT_OBS_LEAKCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gc/leakcheck.h"
#include "symbolize.h"

// Leaked blocks of one allocation stack and kind.
typedef struct {
  uint64_t count, bytes;  // blocks, requested bytes
  uint32_t stack;         // stack depot id; 0: unknown
  bool direct;
  int16_t suppressed;     // index of the suppression that matched, -1 none
  uint32_t sym0, nsyms;   // its frames in leak_result_t.syms, allocator frames left out
  uint32_t skip;          // allocator frames left out at the top of the recorded stack
} leak_group_t;

// One check's groups and figures, for the writers.
typedef struct {
  leak_group_t *groups;   // sorted: direct first, then by bytes, largest first
  size_t ngroups;
  gc_leak_stats_t st;
  uint64_t blocks, bytes;            // leaked and not suppressed
  uint64_t direct_blocks, indirect_blocks;
  uint64_t suppressed_blocks, suppressed_bytes;
  bool recorded;                     // stacks were recorded (GORT_LEAKCHECK at start)
  sym_t *syms;                       // every group's frames, symbolized
  size_t nsyms, syms_bytes;
  uint64_t supp_count[256], supp_bytes[256];  // per suppression: blocks and bytes it hid
} leak_result_t;

// Start-up (obs init, after the heap profiler's): with GORT_LEAKCHECK set,
// every allocation from now on records its stack.
void gort__leak_init(void);

// leakreport.c: the groups, filled in with the world stopped. begin maps
// the table (before the stop); add counts one block; end sorts.
int gort__leakreport_begin(void);
void gort__leakreport_add(uint32_t stack, uint64_t bytes, bool direct);
void gort__leakreport_end(leak_result_t *r);
// Symbolizes the groups' stacks and applies the suppressions (after the
// world restarted); fills in r's totals.
void gort__leakreport_resolve(leak_result_t *r);
// The text report (LeakSanitizer's layout) to fd; 0 or -errno.
int gort__leakreport_write_text(int fd, const leak_result_t *r, bool verbose);
// The pprof profile of the leaks not suppressed; 0 or -errno.
int gort__leakreport_write_profile(int fd, const leak_result_t *r);
// Frees what begin and resolve mapped.
void gort__leakreport_release(leak_result_t *r);

// The suppressions (leakcheck.c): the templates, in order; NULL past the end.
const char *gort__leak_suppression(int i);
// Whether template t matches s (LeakSanitizer's rules: `*` any run of
// characters, `^` and `$` anchor, otherwise a match anywhere in s).
bool gort__leak_template_match(const char *t, const char *s);

#endif  // GORT_OBS_LEAKCHECK_H
