// Configuration: environment variables read once at start, Go's names with
// a GORT_ prefix. One table in options.c drives parsing, warnings and the
// docs; see DESIGN.md, "Configuration".

#ifndef GORT_BASE_OPTIONS_H
#define GORT_BASE_OPTIONS_H

#include "base.h"

typedef struct {
  int64_t gc_percent;       // GORT_GC: percent, or -1 for off
  int64_t memlimit;         // GORT_MEMLIMIT: bytes; INT64_MAX for none
  bool memlimit_set;        // given explicitly (else the cgroup's may apply)
  int64_t maxprocs;         // GORT_MAXPROCS: 0 for the CPUs we may use
  int64_t memprofilerate;   // GORT_MEMPROFILERATE: bytes per sample; 0 off
  const char *heapprofile;  // GORT_HEAPPROFILE: path written at exit, or NULL
  const char *leakcheck;    // GORT_LEAKCHECK: 1, or items key=value (obs/leakcheck.c), or NULL
  const char *leakcheck_file;     // GORT_LEAKCHECK_FILE: the report's file, instead of stderr
  const char *leakcheck_profile;  // GORT_LEAKCHECK_PROFILE: the leaks as a pprof profile
  int64_t stats;            // GORT_STATS: print stats at exit
  const char *stats_file;   // GORT_STATS_FILE: where, instead of stderr
  int64_t stacksize;        // GORT_STACKSIZE: goroutine stack reservation
  // GORT_DEBUG=k=v,...
  int64_t madvdontneed;     // 1: MADV_DONTNEED; 0: MADV_FREE
  int64_t scavtrace;        // one line per scavenger cycle
  int64_t gctrace;          // one line per GC cycle
  int64_t gccheckmark;      // re-mark with the world stopped and compare
  int64_t gcstress;         // a cycle at every collector slow path
  int64_t gcdirty;          // GCDIRTY_*: dirty-page tracking for concurrent marking
  int64_t gcsignal;         // the stop signal (0: SIGPWR)
  int64_t harden;           // canaries, free-fill checks, encoded free lists
  int64_t profsignal;       // SIGUSR2 writes the heap profile
  int64_t scavenge;         // 0 disables the background scavenger
  int64_t scavdelay_ms;     // how long free pages stay before release
  int64_t hugepages;        // 1: big reservations ask for transparent huge pages (mheap.c)
  int64_t sigquit;          // SIGQUIT dumps the goroutines and exits 2
  int64_t stackguard;       // goroutine stack guards: 0 auto, 1 mprotect, 2 canaries
  int64_t mutexlostwake;    // tests: 1 in N plain mutex unlocks miss their waiter (0 off)
  int64_t gcscanwindow;     // tests: 1 in N scans pause inside their span reads (gc/mgcmark.c; 0 off)
  int64_t schedfence;       // runnext's owner without locked instructions (sched/runq.c)
} gort_options_t;

enum { GCDIRTY_AUTO, GCDIRTY_UFFD, GCDIRTY_NONE, GCDIRTY_MPROTECT };

extern gort_options_t gort__opts GORT_HIDDEN;

// Parses the environment into gort__opts; warns about unknown names and
// bad values, keeping the defaults. Idempotent; no allocation.
void gort__options_init(void);
// Parses a size: bytes, with Go's GOMEMLIMIT units (B, KiB ... TiB) or decimal
// ones (KB ... TB, which Go rejects): "512MiB", "2GB", "1048576".
bool gort__parse_bytes(const char *s, int64_t *out);
// Row i of the option table, for the docs generators (tools/); false past
// the last. debug: a GORT_DEBUG key rather than a variable.
bool gort__options_doc(size_t i, const char **name, const char **doc, bool *debug);
// Writes the option table as Markdown (docs generator).
void gort__options_write_doc(int fd);

#endif  // GORT_BASE_OPTIONS_H
