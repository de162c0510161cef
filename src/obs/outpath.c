// Output files: where each process's reports go.
//
// GORT_STATS_FILE and GORT_HEAPPROFILE (and the profile paths to come) name
// a file that a process writes at exit. Every process of a tree inherits
// them - a shell script, make, a server that forks workers - and when each
// wrote the same file, the last one to exit won: `sh -c './app; true'`
// left the profile of true (#15). So:
//   1. In a path, %p is the process id, %e the program's name (argv[0]'s
//      last component) and %% a %. They are expanded each time a file is
//      written, so a child forked without exec writes its own.
//   2. Without %p, the first process writes the path as given and every
//      process it starts, and theirs, write path.<pid>. The first process
//      marks the variable its children inherit by renaming it in place,
//      GORT_HEAPPROFILE to gORT_HEAPPROFILE; a process that finds only the
//      marked name is a descendant. (gperftools marks its variables for
//      the same reason by setting the top bit of the value's first byte;
//      the rename keeps the value readable and cannot be mistaken for a
//      path that starts with a non-ASCII byte.) A child forked without
//      exec shares the parent's memory, so it knows by its pid instead.
//      A variable set afresh below a marked one starts a new tree.
//   3. Each path is checked at start-up, so that a server learns at once,
//      not hours later at exit, that its report would be lost: one warning
//      naming the path and the error's text. A profile whose path cannot be
//      written is not written; a summary goes to stderr instead.
//   4. Combinations that would do nothing say so, once: GORT_STATS_FILE
//      without GORT_STATS, GORT_HEAPPROFILE with GORT_MEMPROFILERATE=0.
// Write errors at exit are reported by the writers (report.c).
//
// Nothing here allocates: start-up may run inside the first malloc.

#include "outpath.h"

#include <string.h>
#include <unistd.h>

#include "../base/options.h"
#include "../os/os.h"

extern char **environ;

// Written once, by start-up (before any report can be written); read after.
static struct {
  int start_pid;               // getpid() at start-up; another pid is a fork child
  bool descendant[OUT_KINDS];  // the path came marked from a parent gort process
  bool unusable[OUT_KINDS];    // the start-up check failed (and said so)
} outp;

static const char *const var_names[OUT_KINDS] = {"GORT_STATS_FILE", "GORT_HEAPPROFILE",
                                                  "GORT_LEAKCHECK_FILE", "GORT_LEAKCHECK_PROFILE"};

const char *gort__outpath_var(out_kind_t k) { return var_names[k]; }

static const char **pattern_of(out_kind_t k) {
  static const char **const patterns[OUT_KINDS] = {&gort__opts.stats_file, &gort__opts.heapprofile,
                                                   &gort__opts.leakcheck_file,
                                                   &gort__opts.leakcheck_profile};
  return patterns[k];
}

static void put(char *out, size_t size, size_t *n, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++, (*n)++)
    if (*n < size) out[*n] = s[i];
}

size_t gort__outpath_expand(const char *pattern, int pid, const char *prog, bool add_pid, char *out,
                            size_t size) {
  char pidbuf[24];
  size_t pidlen = gort__snprint(pidbuf, sizeof pidbuf, "%d", pid), n = 0;
  bool has_pid = false;
  for (const char *p = pattern; *p; p++) {
    if (p[0] == '%' && p[1] == 'p') {
      put(out, size, &n, pidbuf, pidlen);
      has_pid = true;
      p++;
    } else if (p[0] == '%' && p[1] == 'e') {
      put(out, size, &n, prog, strlen(prog));
      p++;
    } else if (p[0] == '%' && p[1] == '%') {
      put(out, size, &n, "%", 1);
      p++;
    } else {
      put(out, size, &n, p, 1);
    }
  }
  if (add_pid && !has_pid) {
    put(out, size, &n, ".", 1);
    put(out, size, &n, pidbuf, pidlen);
  }
  if (n >= size) return 0;
  out[n] = '\0';
  return n;
}

const char *gort__outpath_get(out_kind_t k, char *buf) {
  const char *pattern = *pattern_of(k);
  if (pattern == NULL || outp.unusable[k]) return NULL;
  char prog[256];
  gort__os_program_name(prog, sizeof prog);
  int pid = getpid();
  bool add_pid = outp.descendant[k] || pid != outp.start_pid;
  if (gort__outpath_expand(pattern, pid, prog, add_pid, buf, OUTPATH_MAX) == 0) return NULL;
  return buf;
}

// The environment entry "<name>=<value>" (name's first letter either case).
static char *env_entry(const char *name, char first) {
  if (environ == NULL) return NULL;
  size_t len = strlen(name);
  for (char **e = environ; *e != NULL; e++)
    if ((*e)[0] == first && strncmp(*e + 1, name + 1, len - 1) == 0 && (*e)[len] == '=')
      return *e;
  return NULL;
}

// Step 2: take an inherited path, or mark ours for the children.
static void inherit_or_mark(out_kind_t k) {
  const char *name = var_names[k], **pattern = pattern_of(k);
  char *marked = env_entry(name, 'g');
  if (*pattern == NULL) {
    size_t len = strlen(name);
    if (marked != NULL && marked[len + 1] != '\0') {
      *pattern = marked + len + 1;
      outp.descendant[k] = true;
    }
    return;
  }
  if (strstr(*pattern, "%p") != NULL) return;  // every process has its own already
  char *mine = env_entry(name, 'G');
  if (mine == NULL) return;
  if (marked != NULL) marked[0] = 'x';  // a marked one from above would shadow ours
  mine[0] = 'g';
}

static void warn_unknown_escapes(out_kind_t k) {
  const char *pattern = *pattern_of(k);
  for (const char *p = pattern; *p; p++) {
    if (p[0] != '%') continue;
    if (p[1] == 'p' || p[1] == 'e' || p[1] == '%') {
      p++;
      continue;
    }
    gort__warn("%s: '%%%c' in %s is kept as it is (gort expands %%p, %%e and %%%%)", var_names[k],
               p[1] ? p[1] : ' ', pattern);
    return;
  }
}

// Step 3.
static void check(out_kind_t k, const char *consequence) {
  char path[OUTPATH_MAX], ebuf[32];
  if (gort__outpath_get(k, path) == NULL) {
    gort__warn("%s: the path is too long once expanded; %s", var_names[k], consequence);
    outp.unusable[k] = true;
    return;
  }
  warn_unknown_escapes(k);
  int err = gort__os_check_writable(path);
  if (err != 0) {
    gort__warn("%s: cannot write %s: %s; %s", var_names[k], path,
               gort__strerror(err, ebuf, sizeof ebuf), consequence);
    outp.unusable[k] = true;
  }
}

void gort__outpath_init(void) {
  outp.start_pid = getpid();
  if (gort__opts.stats) inherit_or_mark(OUT_STATS);
  inherit_or_mark(OUT_HEAPPROFILE);
  if (gort__opts.stats_file != NULL) {
    if (!gort__opts.stats)
      gort__warn("GORT_STATS_FILE is set but GORT_STATS is not: no summary is written "
                 "(set GORT_STATS=1)");
    else
      check(OUT_STATS, "the summary will go to stderr");
  }
  // The leak check's files: obs/leakcheck.c decides whether the check is on.
  bool leak = gort__opts.leakcheck != NULL && strcmp(gort__opts.leakcheck, "0") != 0 &&
              strcmp(gort__opts.leakcheck, "false") != 0;
  if (leak) {
    inherit_or_mark(OUT_LEAKCHECK);
    inherit_or_mark(OUT_LEAKPROFILE);
  }
  for (out_kind_t k = OUT_LEAKCHECK; k <= OUT_LEAKPROFILE; k++) {
    if (*pattern_of(k) == NULL) continue;
    if (!leak)
      gort__warn("%s is set but GORT_LEAKCHECK is not: no leak check runs at exit (set GORT_LEAKCHECK=1)",
                 var_names[k]);
    else
      check(k, k == OUT_LEAKCHECK ? "the report will go to stderr" : "no leak profile will be written");
  }
  if (gort__opts.heapprofile != NULL) {
    if (gort__opts.memprofilerate <= 0 || gort__opts.memprofilerate == INT64_MAX)
      gort__warn("GORT_HEAPPROFILE is set but GORT_MEMPROFILERATE turns sampling off: "
                 "the profile will have no samples");
    check(OUT_HEAPPROFILE, "no profile will be written");
  }
}
