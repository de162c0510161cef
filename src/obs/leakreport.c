// The leak report: groups, suppressions, text and pprof. See leakcheck.c.
//
// Leaked blocks are grouped by {allocation stack, direct or indirect}
// while the world is stopped (a hash table of groups, reserved from the
// OS: the heap is stopped). After the restart the groups are sorted as
// LeakSanitizer sorts them (direct first, then by bytes, largest first),
// their stacks symbolized, and the groups matching a suppression set
// aside and counted. The text follows LeakSanitizer's layout, so that
// people and tools that read its reports read these:
//
//   =================================================================
//   ==1234==ERROR: gort: detected memory leaks
//
//   Direct leak of 48 byte(s) in 1 object(s) allocated from:
//       #0 0x55d0c8a1b1c9 in make_list /src/list.c:12
//       #1 0x55d0c8a1b2f0 in main /src/list.c:30
//
//   SUMMARY: gort: 48 byte(s) leaked in 1 allocation(s).
//
// Frame #0 is the allocation function's caller: the frames of gort's own
// allocator are left out when the stack is recorded (obs/leakcheck.c), and
// any allocator frame left at the top by name here.

#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../base/base.h"
#include "../os/os.h"
#include "leakcheck.h"
#include "pprof.h"
#include "stackdepot.h"

static struct {
  leak_group_t *tab;  // open addressing; a slot with count 0 is empty
  size_t cap, n;
  uint64_t lost_blocks, lost_bytes;  // the table could not grow: counted here
} gt;

static size_t tab_bytes(size_t cap) { return GORT_ALIGN_UP(cap * sizeof(leak_group_t), (size_t)4096); }

int gort__leakreport_begin(void) {
  int err;
  gt.cap = 4096;
  gt.n = 0;
  gt.lost_blocks = gt.lost_bytes = 0;
  gt.tab = gort__os_reserve(0, tab_bytes(gt.cap), 4096, &err);
  return gt.tab != NULL ? 0 : err;
}

static size_t slot(uint32_t stack, bool direct, size_t cap) {
  uint64_t k = ((uint64_t)stack << 1 | direct) * 0x9E3779B97F4A7C15ULL;
  return (size_t)(k >> 20) & (cap - 1);
}

static leak_group_t *find(leak_group_t *tab, size_t cap, uint32_t stack, bool direct) {
  for (size_t j = slot(stack, direct, cap);; j = (j + 1) & (cap - 1))
    if (tab[j].count == 0 || (tab[j].stack == stack && tab[j].direct == direct)) return &tab[j];
}

static bool grow(void) {
  int err;
  size_t cap = gt.cap * 2;
  leak_group_t *t = gort__os_reserve(0, tab_bytes(cap), 4096, &err);
  if (t == NULL) return false;
  for (size_t i = 0; i < gt.cap; i++)
    if (gt.tab[i].count != 0) *find(t, cap, gt.tab[i].stack, gt.tab[i].direct) = gt.tab[i];
  gort__os_unmap(gt.tab, tab_bytes(gt.cap));
  gt.tab = t;
  gt.cap = cap;
  return true;
}

void gort__leakreport_add(uint32_t stack, uint64_t bytes, bool direct) {
  if (gt.tab == NULL || (gt.n * 2 >= gt.cap && !grow() && gt.n + 1 >= gt.cap)) {
    gt.lost_blocks++;
    gt.lost_bytes += bytes;
    return;
  }
  leak_group_t *g = find(gt.tab, gt.cap, stack, direct);
  if (g->count == 0) {
    g->stack = stack;
    g->direct = direct;
    g->suppressed = -1;
    gt.n++;
  }
  g->count++;
  g->bytes += bytes;
}

static int group_cmp(const void *a, const void *b) {
  const leak_group_t *x = a, *y = b;
  if (x->direct != y->direct) return x->direct ? -1 : 1;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return x->stack < y->stack ? -1 : x->stack > y->stack;
}

void gort__leakreport_end(leak_result_t *r) {
  size_t k = 0;
  for (size_t i = 0; i < gt.cap && gt.tab != NULL; i++)
    if (gt.tab[i].count != 0) gt.tab[k++] = gt.tab[i];
  gort__heapsort(gt.tab, k, sizeof *gt.tab, group_cmp);
  r->groups = gt.tab;
  r->ngroups = k;
}

// ---- symbols and suppressions ------------------------------------------------------

// gort's allocation entry points and internals, and glibc's allocation
// names (which gort exports): a run of these at the top of a stack is the
// allocator's, not the program's. Recording leaves gort's frames out
// already (by address); this catches what it could not learn.
static bool allocator_frame(const char *f) {
  static const char *const names[] = {
      "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign", "aligned_alloc",
      "valloc", "pvalloc", "cfree", "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign",
      "__libc_valloc", "__libc_pvalloc", "__posix_memalign"};
  if (f == NULL) return false;
  if (strncmp(f, "gort_", 5) == 0 || strncmp(f, "_Znw", 4) == 0 || strncmp(f, "_Zna", 4) == 0) return true;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(f, names[i]) == 0) return true;
  return false;
}

// A frame is the allocator's if the function holding its code is, or
// the function inlined innermost there (malloc_fast inlined into malloc).
static bool allocator_sym(const sym_t *s) {
  return allocator_frame(s->func) || (s->ninl > 0 && allocator_frame(s->inl[s->ninl - 1].func));
}

static int16_t suppressed_by(const sym_t *s, uint32_t n) {
  for (int i = 0; gort__leak_suppression(i) != NULL && i < 256; i++) {
    const char *t = gort__leak_suppression(i);
    for (uint32_t k = 0; k < n; k++) {
      if (gort__leak_template_match(t, s[k].func) || gort__leak_template_match(t, s[k].file) ||
          gort__leak_template_match(t, s[k].module))
        return (int16_t)i;
      for (uint32_t j = 0; j < s[k].ninl; j++)  // inlined frames are frames too
        if (gort__leak_template_match(t, s[k].inl[j].func) || gort__leak_template_match(t, s[k].inl[j].file))
          return (int16_t)i;
    }
  }
  return -1;
}

void gort__leakreport_resolve(leak_result_t *r) {
  size_t total = 0;
  for (size_t g = 0; g < r->ngroups; g++) {
    uint32_t depth;
    gort__stackdepot_get(r->groups[g].stack, &depth);
    total += depth;
  }
  int err;
  r->syms_bytes = GORT_ALIGN_UP(total * sizeof(sym_t) + 1, (size_t)4096);
  r->syms = gort__os_reserve(0, r->syms_bytes, 4096, &err);
  size_t k = 0;
  for (size_t g = 0; g < r->ngroups && r->syms != NULL; g++) {
    uint32_t depth;
    const uintptr_t *pcs = gort__stackdepot_get(r->groups[g].stack, &depth);
    r->groups[g].sym0 = (uint32_t)k;
    r->groups[g].nsyms = depth;
    for (uint32_t i = 0; i < depth; i++) r->syms[k++].pc = pcs[i];
  }
  r->nsyms = k;
  if (r->syms != NULL) gort__sym_resolve(r->syms, k);
  for (size_t g = 0; g < r->ngroups; g++) {
    leak_group_t *grp = &r->groups[g];
    if (r->syms == NULL) grp->nsyms = 0;
    const sym_t *s = r->syms + grp->sym0;
    uint32_t skip = 0;
    while (skip < grp->nsyms && allocator_sym(&s[skip])) skip++;
    grp->skip = skip;
    grp->sym0 += skip;
    grp->nsyms -= skip;
    grp->suppressed = suppressed_by(r->syms + grp->sym0, grp->nsyms);
    if (grp->suppressed >= 0) {
      r->suppressed_blocks += grp->count;
      r->suppressed_bytes += grp->bytes;
      r->supp_count[grp->suppressed] += grp->count;
      r->supp_bytes[grp->suppressed] += grp->bytes;
      continue;
    }
    r->blocks += grp->count;
    r->bytes += grp->bytes;
    if (grp->direct) r->direct_blocks += grp->count; else r->indirect_blocks += grp->count;
  }
  // Blocks the table had no room for: reported as one group of unknown stack.
  r->blocks += gt.lost_blocks;
  r->bytes += gt.lost_bytes;
}

void gort__leakreport_release(leak_result_t *r) {
  if (r->syms != NULL) gort__os_unmap(r->syms, r->syms_bytes);
  r->syms = NULL;
  gort__sym_release();
  if (gt.tab != NULL) gort__os_unmap(gt.tab, tab_bytes(gt.cap));
  gt.tab = NULL;
  r->groups = NULL;
}

// ---- text -----------------------------------------------------------------------------

// A symbol's name without its version (__libc_start_main@GLIBC_2.2.5).
static int name_len(const char *f) {
  const char *at = strchr(f, '@');
  return (int)(at != NULL && at != f ? (size_t)(at - f) : strlen(f));
}

static int put_line(int fd, int i, unsigned long pc, const char *f, const char *file, uint32_t line,
                    const sym_t *s) {
  unsigned long off = (unsigned long)s->module_off;
  char func[256];
  if (f != NULL) gort__snprint(func, sizeof func, "%s", f), func[name_len(f) < 255 ? name_len(f) : 255] = '\0';
  if (f != NULL && file != NULL) return gort__print_fd(fd, "    #%d 0x%lx in %s %s:%u\n", i, pc, func, file, line);
  if (f != NULL) return gort__print_fd(fd, "    #%d 0x%lx in %s (%s+0x%lx)\n", i, pc, func, s->module, off);
  return gort__print_fd(fd, "    #%d 0x%lx (%s+0x%lx)\n", i, pc, s->module, off);
}

// The lines of one recorded frame from number *i on: one per function
// inlined at its pc (innermost first, as LeakSanitizer shows them), then
// the function that holds the code.
static int put_frame(int fd, int *i, const sym_t *s) {
  unsigned long pc = (unsigned long)s->pc;
  if (s->module == NULL) return gort__print_fd(fd, "    #%d 0x%lx (<unknown module>)\n", (*i)++, pc);
  int err = put_line(fd, (*i)++, pc, s->func, s->file, s->line, s);
  for (uint32_t k = 0; k < s->ninl; k++)
    err |= put_line(fd, (*i)++, pc, s->inl[k].func, s->inl[k].file, s->inl[k].line, s);
  return err;
}

int gort__leakreport_write_text(int fd, const leak_result_t *r, bool verbose) {
  int err = 0, pid = getpid();
  if (r->blocks > 0) {
    err |= gort__print_fd(fd, "\n=================================================================\n"
                              "==%d==ERROR: gort: detected memory leaks\n", pid);
    for (size_t g = 0; g < r->ngroups; g++) {
      const leak_group_t *grp = &r->groups[g];
      if (grp->suppressed >= 0) continue;
      err |= gort__print_fd(fd, "\n%s leak of %llu byte(s) in %llu object(s) allocated from:\n",
                            grp->direct ? "Direct" : "Indirect", (unsigned long long)grp->bytes,
                            (unsigned long long)grp->count);
      if (grp->nsyms == 0)
        err |= gort__print_fd(fd, "    #0 (stack not recorded: %s)\n",
                              r->recorded ? "allocated before the check started recording"
                                          : "GORT_LEAKCHECK was not set when the program started");
      int line = 0;
      for (uint32_t i = 0; i < grp->nsyms; i++) err |= put_frame(fd, &line, &r->syms[grp->sym0 + i]);
    }
    if (gt.lost_blocks > 0)
      err |= gort__print_fd(fd, "\nLeak of %llu byte(s) in %llu object(s) whose stacks did not fit in the "
                                "report's table\n", (unsigned long long)gt.lost_bytes,
                            (unsigned long long)gt.lost_blocks);
    err |= gort__print_fd(fd, "\n");
  }
  if (r->suppressed_blocks > 0 && (r->blocks > 0 || verbose)) {
    err |= gort__print_fd(fd, "-----------------------------------------------------\n"
                              "Suppressions used:\n  count      bytes template\n");
    for (int i = 0; i < 256 && gort__leak_suppression(i) != NULL; i++)
      if (r->supp_count[i] > 0)
        err |= gort__print_fd(fd, "%7llu %10llu %s\n", (unsigned long long)r->supp_count[i],
                              (unsigned long long)r->supp_bytes[i], gort__leak_suppression(i));
    err |= gort__print_fd(fd, "-----------------------------------------------------\n\n");
  }
  if (r->st.interior_blocks > 0 && (r->blocks > 0 || verbose))
    err |= gort__print_fd(fd, "gort: %llu block(s) of %llu byte(s) were reached only through pointers into "
                              "their middle and counted as reachable, not leaked\n",
                          (unsigned long long)r->st.interior_blocks, (unsigned long long)r->st.interior_bytes);
  if (r->st.starting_threads > 0)
    err |= gort__print_fd(fd, "gort: %llu thread(s) were still starting after a second; blocks they were "
                              "handed may be reported above\n", (unsigned long long)r->st.starting_threads);
  if (r->st.unlisted_blocks > 0)
    err |= gort__print_fd(fd, "gort: %llu more leaked block(s) past the check's list of 64M were not "
                              "reported\n", (unsigned long long)r->st.unlisted_blocks);
  if (r->blocks > 0)
    err |= gort__print_fd(fd, "SUMMARY: gort: %llu byte(s) leaked in %llu allocation(s).\n",
                          (unsigned long long)r->bytes, (unsigned long long)r->blocks);
  else if (verbose)
    err |= gort__print_fd(fd, "gort: leak check: no leaks in %llu live block(s) of %llu byte(s)%s\n",
                          (unsigned long long)r->st.live_blocks, (unsigned long long)r->st.live_bytes,
                          r->suppressed_blocks > 0 ? " (some suppressed)" : "");
  return err < 0 ? err : 0;
}

// ---- pprof ----------------------------------------------------------------------------

enum { P_EMPTY, P_OBJECTS, P_COUNT, P_SPACE, P_BYTES, P_PERIOD, P_LEAK, P_DIRECT, P_INDIRECT, P_N };
static const char *const profile_strings[P_N] = {"",      "leaked_objects", "count",  "leaked_space", "bytes",
                                                 "space", "leak",           "direct", "indirect"};

static void profile_samples(pprof_writer_t *w, void *arg) {
  const leak_result_t *r = arg;
  for (size_t g = 0; g < r->ngroups; g++) {
    const leak_group_t *grp = &r->groups[g];
    if (grp->suppressed >= 0) continue;
    uint32_t depth;
    const uintptr_t *pcs = gort__stackdepot_get(grp->stack, &depth);
    uint32_t skip = grp->skip;
    if (pcs == NULL || skip > depth) depth = skip = 0;
    int64_t v[2] = {(int64_t)grp->count, (int64_t)grp->bytes};
    gort__pprof_sample(w, pcs == NULL ? NULL : pcs + skip, depth - skip, v, 2, P_LEAK,
                       grp->direct ? P_DIRECT : P_INDIRECT);
  }
}

int gort__leakreport_write_profile(int fd, const leak_result_t *r) {
  static const int types[2][2] = {{P_OBJECTS, P_COUNT}, {P_SPACE, P_BYTES}};
  pprof_spec_t spec = {.strings = profile_strings, .nstrings = P_N, .types = types, .ntypes = 2,
                       .period_type = P_PERIOD, .period_unit = P_BYTES, .period = 1,
                       .default_type = P_SPACE, .samples = profile_samples, .arg = (void *)r};
  return gort__pprof_write(fd, &spec);
}
