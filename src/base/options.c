// The option table. Every GORT_* environment variable and every GORT_DEBUG
// key is one row here: its parser, its default and its description; the
// docs (docs/METRICS.md, gort(7)) are generated from it. An unknown name or
// a bad value prints one warning line naming it alone and keeps the
// default (DESIGN.md, "Configuration"). An empty value, and an empty
// GORT_DEBUG item, count as unset, as in Go.

#include "options.h"

#include <stdlib.h>
#include <string.h>

gort_options_t gort__opts = {
    .gc_percent = 100,
    .memlimit = INT64_MAX,
    .memprofilerate = 512 * 1024,
    .stacksize = 256 * 1024,
    .madvdontneed = 1,
    .scavenge = 1,
    .scavdelay_ms = 500,
    .schedfence = 1,
};

typedef enum { OPT_INT, OPT_BOOL, OPT_BYTES, OPT_PERCENT_OR_OFF, OPT_STRING, OPT_GCDIRTY } opt_type_t;

typedef struct {
  const char *name;
  opt_type_t type;
  size_t offset;  // into gort_options_t
  bool debug;     // a GORT_DEBUG key rather than a variable
  const char *doc;
  bool reserved;  // parsed, but nothing uses it until its subsystem lands
} option_t;

#define OFF(f) offsetof(gort_options_t, f)

static const option_t options[] = {
    {"GORT_GC", OPT_PERCENT_OR_OFF, OFF(gc_percent), false,
     "GC target (Go's GOGC): collect when the collected heap grows by this percent over what the last cycle found live; `off` disables (default 100)", false},
    {"GORT_MEMLIMIT", OPT_BYTES, OFF(memlimit), false,
     "soft memory limit: bytes, with an optional unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (as Go's "
     "GOMEMLIMIT) or `KB`, `MB`, `GB`, `TB` (powers of 1000, which Go rejects), or `off`; "
     "default: the limit of the process's cgroup, if any", false},
    {"GORT_MAXPROCS", OPT_INT, OFF(maxprocs), false, "goroutines that run at once (Go's GOMAXPROCS; default: the CPUs the process may use, its cgroup's CPU quota included; at most 256)", false},
    {"GORT_MEMPROFILERATE", OPT_BYTES, OFF(memprofilerate), false,
     "heap profile: one sample per this many bytes allocated, on average (default 512KiB; 0 off)", false},
    {"GORT_HEAPPROFILE", OPT_STRING, OFF(heapprofile), false,
     "write a pprof heap profile (gzipped profile.proto) to this path at exit: `%p` is the "
     "process id, `%e` the program's name; without `%p`, the processes the first one starts "
     "write `path.<pid>`", false},
    {"GORT_LEAKCHECK", OPT_STRING, OFF(leakcheck), false,
     "report the malloc blocks nothing reachable points to, at exit, with the stacks that allocated "
     "them, and exit with status 23 if there are any: `1`, or comma-separated items "
     "`suppress=FILE` (lines `leak:PATTERN` naming a function, file or module), `exitcode=N` "
     "(0 keeps the program's status), `depth=N` (frames kept per allocation, default 30), "
     "`defaults=0` (no built-in suppressions), `verbose=1` (a summary even without leaks); `0` off", false},
    {"GORT_LEAKCHECK_FILE", OPT_STRING, OFF(leakcheck_file), false,
     "write the GORT_LEAKCHECK report to this file instead of stderr (`%p`, `%e` and one file per "
     "process, as for GORT_HEAPPROFILE)", false},
    {"GORT_LEAKCHECK_PROFILE", OPT_STRING, OFF(leakcheck_profile), false,
     "write the leaks found at exit as a pprof profile (gzipped profile.proto; sample types "
     "leaked_objects and leaked_space, label `leak` direct or indirect) to this path", false},
    {"GORT_STATS", OPT_BOOL, OFF(stats), false, "print a memory summary at exit", false},
    {"GORT_STATS_FILE", OPT_STRING, OFF(stats_file), false,
     "write the GORT_STATS summary to this file instead of stderr (`%p`, `%e` and one file "
     "per process, as for GORT_HEAPPROFILE)", false},
    {"GORT_STACKSIZE", OPT_BYTES, OFF(stacksize), false, "goroutine stack reservation, its guard included (an eighth, 4 to 64KiB; default 256KiB; at least 16KiB)", false},
    {"madvdontneed", OPT_BOOL, OFF(madvdontneed), true,
     "1 (default): release with MADV_DONTNEED, RSS drops at once; 0: MADV_FREE, cheaper, RSS drops under pressure", false},
    {"scavtrace", OPT_BOOL, OFF(scavtrace), true, "print one line per scavenger cycle", false},
    {"gctrace", OPT_INT, OFF(gctrace), true,
     "1: print one line per GC cycle, in Go's format; 2: and a second line on the concurrent mark "
     "(pre-cleaning rounds, written pages rescanned, the final stop's parts)", false},
    {"gccheckmark", OPT_BOOL, OFF(gccheckmark), true,
     "after each mark, mark again single-threaded and die if an object the first mark missed is found (Go's gccheckmark); every mark then defers its words as on large heaps", false},
    {"gcdirty", OPT_GCDIRTY, OFF(gcdirty), true,
     "how the collector learns which heap pages the program wrote while it marked: uffd "
     "(userfaultfd write-protect with PAGEMAP_SCAN, Linux 6.7+; the default where it works), "
     "mprotect (write-protected 16 KiB granules and a SIGSEGV handler; the fallback) or "
     "none (mark with the world stopped); softdirty is not built", false},
    {"gcstress", OPT_BOOL, OFF(gcstress), true, "run a cycle every 16 KiB of small collected objects a thread allocates, while the collector is on", false},
    {"gcsignal", OPT_INT, OFF(gcsignal), true, "the signal that stops threads for the collector (default SIGPWR, 30)", false},
    {"harden", OPT_BOOL, OFF(harden), true,
     "catch overflows (canaries), use after free (fill and check), forged free-list links (encoded), and shuffle fresh spans", false},
    {"profsignal", OPT_BOOL, OFF(profsignal), true, "SIGUSR2 writes the heap profile (GORT_HEAPPROFILE)", false},
    {"scavenge", OPT_BOOL, OFF(scavenge), true, "0 disables the background scavenger", false},
    {"sigquit", OPT_BOOL, OFF(sigquit), true, "SIGQUIT prints every goroutine (gort_goroutines_dump) and exits with status 2, as Go does", false},
    {"stackguard", OPT_INT, OFF(stackguard), true,
     "goroutine stack guards: 0 (default) MADV_GUARD_INSTALL where the kernel has it, else as 1; 1 mprotect guards for the first 8192 stacks, then canaries; 2 canaries only (the fallbacks, for tests)", false},
    {"mutexlostwake", OPT_INT, OFF(mutexlostwake), true,
     "for tests: 1 in N mutex unlocks read the waiter count 2 us before they release the lock, as a store buffer may make any unlock do in a shorter window, so that waiters that queue meanwhile need the rescue (sync/mutex.c; 0, the default, off)", false},
    {"gcscanwindow", OPT_INT, OFF(gcscanwindow), true,
     "for tests: 1 in N scans of a queued object sleep 20 us between reading its span's state and its size, "
     "as a preempted marker may, so that the program's frees land in between (gc/mgcmark.c; 0, the default, off)", false},
    {"schedfence", OPT_BOOL, OFF(schedfence), true,
     "1 (default): a P's owner takes and fills its runnext slot with plain stores, and a thief that takes it pays with membarrier(2) (sched/runq.c); 0: both sides use locked instructions, as Go's (for a program that forbids membarrier, by seccomp say, after its first goroutine)", false},
    {"scavdelay", OPT_INT, OFF(scavdelay_ms), true,
     "milliseconds a free page stays before the scavenger releases it (default 500)", false},
    {"hugepages", OPT_BOOL, OFF(hugepages), true,
     "1: reservations of 64 MiB and more (a heap past 64 MiB, or a request that big) ask for "
     "transparent huge pages, each until pages are first released from it; fewer page faults and TLB misses, "
     "but a first touch faults in 2 MiB at once, which a stop of the world waits for "
     "(0, the default: the system's setting decides)", false},
};

#define NOPTIONS (sizeof options / sizeof options[0])

bool gort__parse_bytes(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0') return false;
  uint64_t v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9') return false;
  while (*p >= '0' && *p <= '9') {
    uint64_t d = (uint64_t)(*p++ - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  static const struct {
    const char *suffix;
    uint64_t mult;
  } units[] = {{"", 1},        {"B", 1},           {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20},
               {"GiB", 1ULL << 30}, {"TiB", 1ULL << 40}, {"KB", 1000},        {"MB", 1000000},
               {"GB", 1000000000ULL}, {"TB", 1000000000000ULL}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].suffix) == 0) {
      if (v > (uint64_t)INT64_MAX / units[i].mult) return false;
      *out = (int64_t)(v * units[i].mult);
      return true;
    }
  }
  return false;
}

static bool parse_int(const char *s, int64_t *out) {
  bool neg = *s == '-';
  if (neg) s++;
  if (*s == '\0') return false;
  int64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (*s - '0');
  }
  *out = neg ? -v : v;
  return true;
}

static bool parse_value(const option_t *o, const char *v) {
  if (o->reserved) gort__warn("%s is accepted but has no effect yet in this version of gort", o->name);
  void *field = (char *)&gort__opts + o->offset;
  int64_t n = 0;
  switch (o->type) {
    case OPT_STRING:
      if (*v == '\0') return false;
      *(const char **)field = v;
      return true;
    case OPT_BOOL:
      if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) n = 1;
      else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) n = 0;
      else return false;
      break;
    case OPT_PERCENT_OR_OFF:
      if (strcmp(v, "off") == 0) n = -1;
      else if (!parse_int(v, &n) || n < 0) return false;
      break;
    case OPT_BYTES:
      if (strcmp(v, "off") == 0) n = INT64_MAX;
      else if (!gort__parse_bytes(v, &n)) return false;
      break;
    case OPT_INT:
      if (!parse_int(v, &n) || n < 0) return false;
      break;
    case OPT_GCDIRTY:
      if (strcmp(v, "uffd") == 0) n = GCDIRTY_UFFD;
      else if (strcmp(v, "none") == 0) n = GCDIRTY_NONE;
      else if (strcmp(v, "mprotect") == 0) n = GCDIRTY_MPROTECT;
      else if (strcmp(v, "softdirty") == 0) {
        gort__warn("GORT_DEBUG: gcdirty=%s is not built in this version; using the default", v);
        return true;
      } else return false;
      break;
  }
  *(int64_t *)field = n;
  return true;
}

static const option_t *find(const char *name, size_t len, bool debug) {
  for (size_t i = 0; i < NOPTIONS; i++)
    if (options[i].debug == debug && strlen(options[i].name) == len &&
        strncmp(options[i].name, name, len) == 0)
      return &options[i];
  return NULL;
}

// Items are separated by commas; empty ones (",," or a trailing comma) are
// skipped, as Go's GODEBUG does. A bad item is named alone in its warning,
// so that it never reads as if the items beside it were dropped too.
static void parse_debug(const char *s) {
  while (*s) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    const char *eq = memchr(s, '=', len);
    char item[64], val[64];
    size_t ilen = len < sizeof item - 1 ? len : sizeof item - 1;
    memcpy(item, s, ilen);
    item[ilen] = '\0';
    if (len == 0) {
      // nothing to say
    } else if (eq == NULL || (size_t)(s + len - eq - 1) >= sizeof val) {
      gort__warn("GORT_DEBUG: ignoring malformed item '%s' (want key=value)", item);
    } else {
      const option_t *o = find(s, (size_t)(eq - s), true);
      size_t vlen = (size_t)(s + len - eq - 1);
      memcpy(val, eq + 1, vlen);
      val[vlen] = '\0';
      if (o == NULL)
        gort__warn("GORT_DEBUG: unknown key in '%s'; that item is ignored", item);
      else if (!parse_value(o, val))
        gort__warn("GORT_DEBUG: bad value '%s' for %s; keeping the default", val, o->name);
    }
    if (end == NULL) break;
    s = end + 1;
  }
}

extern char **environ;

void gort__options_init(void) {
  static bool done;
  if (done) return;
  done = true;
  if (environ == NULL) return;
  for (char **e = environ; *e != NULL; e++) {
    const char *kv = *e;
    if (strncmp(kv, "GORT_", 5) != 0) continue;
    const char *eq = strchr(kv, '=');
    if (eq == NULL) continue;
    size_t nlen = (size_t)(eq - kv);
    if (eq[1] == '\0') continue;  // empty: unset, as in Go (GOMEMLIMIT=, GOGC=)
    if (nlen == 10 && strncmp(kv, "GORT_DEBUG", 10) == 0) {
      parse_debug(eq + 1);
      continue;
    }
    const option_t *o = find(kv, nlen, false);
    if (o == NULL) {
      char name[64];
      size_t n = nlen < sizeof name - 1 ? nlen : sizeof name - 1;
      memcpy(name, kv, n);
      name[n] = '\0';
      gort__warn("unknown variable %s; ignored", name);
    } else if (!parse_value(o, eq + 1))
      gort__warn("bad value '%s' for %s; keeping the default", eq + 1, o->name);
    else if (o->offset == OFF(memlimit))
      gort__opts.memlimit_set = true;
  }
}

bool gort__options_doc(size_t i, const char **name, const char **doc, bool *debug) {
  if (i >= NOPTIONS) return false;
  *name = options[i].name;
  *doc = options[i].doc;
  *debug = options[i].debug;
  return true;
}

void gort__options_write_doc(int fd) {
  const char *name, *doc;
  bool debug;
  gort__print_fd(fd, "| variable | meaning |\n|---|---|\n");
  for (size_t i = 0; gort__options_doc(i, &name, &doc, &debug); i++)
    if (!debug) gort__print_fd(fd, "| `%s` | %s |\n", name, doc);
  gort__print_fd(fd, "\n`GORT_DEBUG=key=value,...` keys:\n\n| key | meaning |\n|---|---|\n");
  for (size_t i = 0; gort__options_doc(i, &name, &doc, &debug); i++)
    if (debug) gort__print_fd(fd, "| `%s` | %s |\n", name, doc);
}
