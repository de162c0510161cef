// The leak check (#14): at exit, every malloc block that nothing reachable
// points to, with the stack that allocated it (LeakSanitizer's report, on
// gort's heap, with one environment variable and no rebuild).
//
//     GORT_LEAKCHECK=1 LD_PRELOAD=libgort.so ./prog
//
// A C program that leaks today reaches for valgrind (20-50x slower) or
// LeakSanitizer (its own runtime and allocator). gort already has what a
// leak checker is made of: the allocator knows every block, the collector
// marks conservatively from every root, and the profiler captures stacks
// cheaply. This file joins them:
//
//   1. Recording. With GORT_LEAKCHECK set at start-up, every allocation
//      records its stack. The hook is the heap profiler's countdown
//      (alloc/malloc.c, sample()): leak mode keeps each thread's countdown
//      at GORT_SAMPLE_RECORD (alloc_init.h), far below zero. malloc_fast
//      (malloc, calloc, C++ new), seeing that value once its common
//      case's test failed, pops its block as usual and calls the
//      record_alloc hook itself; realloc that moves, aligned and large
//      allocations take the slow path and reach the hook through
//      sample(), as hardened mode's do. The fast path's common case is
//      unchanged, and costs nothing when the check is off. (Hardened and
//      leak mode together keep -1: everything goes the slow way.) The
//      paths reach the hook by tail calls where they can (malloc's do),
//      so that the hook's return address is in the program's frame;
//      where they cannot (calloc zeroes after it), the allocator's frames
//      are left out of the stack (below). The hook's entry stub passes
//      that frame's state on (return address, rsp after the return, rbp:
//      gort__leak_record_stub), and the stack starts there. The walk
//      (obs/unwind.c: cached CFI rules, ~7 ns a frame, no lock) drops
//      frames inside libgort.so, keeps at most depth frames (default 30,
//      LeakSanitizer's), and puts the stack in the stack depot
//      (stackdepot.c), which returns a 32-bit id. Most allocations repeat
//      the stack the thread recorded last: the thread's memo keeps its
//      last few walks under their ids (unwind.c, kept walks), and the
//      hook checks the one found last inline (gort__unwind_kept_last:
//      the same first frame, and every stack word that walk read still in
//      place, or'ed into one test), taking its id with no walk, no call
//      and no depot lookup; the hook's common case is a leaf. Else the
//      other kept walks are tried, and then the walk. If the heap
//      profiler is on too, the hook counts down for it (in the memo) and
//      calls its hook when due.
//   2. Ids per block, beside the heap (the blocks have no header to hold
//      them): per arena, a table of 64-bit words {requested size, stack id}
//      reserved when the arena first holds a recorded block. A span's
//      blocks use the words from its first granule's index on, one per
//      element (base granule + element index), so a span never reaches
//      into the words of the next, and a span of 16-byte blocks uses a
//      quarter of its range: 8 bytes of table per live block, touched only
//      where blocks are. Words of freed blocks are left stale: the next
//      allocation of the slot overwrites them, and only live blocks are
//      ever read.
//   3. The check (gc/leakcheck.c): the world stopped, a mark from every
//      root scanning every reached malloc block; each live block left
//      unmarked is leaked, direct or indirect. Still stopped, each is
//      looked up in the table and counted in its group {stack id, kind}
//      (leakreport.c), so no block freed after the restart can lend its
//      slot's word to the report.
//   4. The report, after the restart (leakreport.c): groups sorted direct
//      first, then by bytes; stacks symbolized (symbolize.c); groups whose
//      stack matches a suppression left out and counted; text in
//      LeakSanitizer's layout to stderr or GORT_LEAKCHECK_FILE, and a pprof
//      profile to GORT_LEAKCHECK_PROFILE.
//   5. At exit: a destructor of libgort itself. libgort.so is loaded
//      before every library that uses malloc (preloaded, or a dependency
//      of the program), so the loader runs its destructors after theirs,
//      and exit runs them after the atexit handlers and C++ static
//      destructors: everything the program frees on its way out is freed
//      before the check (LeakSanitizer checks from an atexit handler,
//      before the libraries' destructors). If leaks remain, stdio is
//      flushed and the process exits with status exitcode (23, as
//      LeakSanitizer; exitcode=0 keeps the program's own).
//
// Bad input and odd exits:
//   - killed by a signal, _exit, abort: no destructor runs, so no report
//     and no hang.
//   - fork: the child inherits the recording and checks its own heap when
//     it exits normally; a child that execs or _exits does not. (Blocks
//     the child sees only through the parent's other threads' stacks are
//     reported in the child: those threads do not exist there.)
//   - threads that exited: their stacks are gone, so what only they held
//     is leaked, with the stack that allocated it in the dead thread.
//   - frees during the check: other threads are stopped; the check sees
//     each block either live or free (gc/leakcheck.c).
//   - an unwritable GORT_LEAKCHECK_FILE: one warning at start-up, and the
//     report goes to stderr. A bad GORT_LEAKCHECK item or suppression line:
//     one warning naming it; the rest applies.
//   - gort_leak_check from a signal handler that interrupted the allocator:
//     a fatal error (the heap is mid-change; the check would deadlock).
//
// Cost (bench/leak/run.sh measures it): on a repeated stack, the fast
// path's pop, the entry stub, a check of one or two words per frame of
// the program's stack, and the table's word (a span lookup and a store:
// word_of_fresh skips the checks a block just handed out needs not);
// a new stack costs the walk (or the memo's part of it) and a depot
// lookup. Frees are untouched. The table adds 8 bytes per live block, the
// memo about 20 KiB per thread.
//
// Rejected: a header in every block for the id (LeakSanitizer's chunk
// header): it moves every block off its size class and breaks
// malloc_usable_size; a side table indexed by granule with no span
// arithmetic (simpler, but a quarter more RSS for every heap, not only for
// 16-byte blocks); recording only sampled allocations (the issue asks for
// every leak's stack, and a leak of one block would go unnamed); a
// cheaper key for a repeated stack, such as a hash of the first few
// return addresses or the caller's return address and sp alone (two
// stacks that agree there and differ further out, e.g. the same helper
// called from two places at the same depth, would share an id: a stale
// stack, which test/leak/memo.c provokes); checking
// from an atexit handler (libraries' destructors free after it: false
// leaks).

#define _GNU_SOURCE
#include "leakcheck.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../alloc/alloc_init.h"
#include "../alloc/mcache.h"
#include "../alloc/pagemap.h"
#include "../base/options.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "gort/gc.h"
#include "gort/prof.h"
#include "memopool.h"
#include "mprof.h"
#include "obs.h"
#include "outpath.h"
#include "ownframes.h"
#include "stackdepot.h"
#include "unwind.h"

#define MAX_DEPTH 64
#define MAX_SUPPRESSIONS 256
#define SUPP_FILE_BYTES ((size_t)1 << 20)
#define TABLE_BYTES ((GORT_ARENA_SIZE >> 4) * sizeof(uint64_t))  // one word per granule

// Built-in suppressions (defaults=0 turns them off). The check scans
// glibc's thread descriptors and every loaded object's data, so glibc's
// one-time allocations (stdio buffers, the DTV, thread-specific data,
// locale and NSS state) are reachable and need no entry here; what
// remains are blocks glibc itself drops on purpose.
static const char *const default_suppressions[] = {
    // A thread's exit value lives in its descriptor until pthread_join;
    // a detached thread's is dropped by design (LeakSanitizer's default).
    "leak:*pthread_exit*",
    // The DTV and the dynamic TLS blocks of a thread that ended stay in
    // its descriptor, on a stack glibc caches for the next thread (in
    // memory it mapped itself, which the check does not scan); glibc
    // frees or reuses them then.
    "leak:_dl_allocate_tls",
    "leak:*tls_get_addr*",
};

static struct {
  bool on;                 // recording: GORT_LEAKCHECK was set at start-up
  bool verbose;            // a summary even with no leaks
  int64_t exitcode;
  uint32_t depth;
  bool defaults;
  const char *suppress_path;
  uintptr_t self_lo, self_hi;   // libgort.so's code (shared builds), left out of stacks
  _Atomic(uint64_t *) *tables;  // per arena index: its table of {size, id} words
  gort_mprof_hooks_t prof;      // the heap profiler's hooks, chained
  const char *supp[MAX_SUPPRESSIONS];
  int nsupp;
  char *supp_text;              // the suppression file, mapped
  // gort's first malloc block, kept for ever, at the base of the first
  // arena (its first kilobyte): gort's own data held that address (the
  // heap's bounds, the collector's mark range: both skipped now, as
  // base/noscan.h says), and other data may by chance (a pair of ints
  // {n, 1475} reads as an address in the heap's first 4 GiB: mheap.c,
  // ARENA_HINT_START). Without the pin they would keep whatever block of
  // the program came first.
  void *pin;
  // Return addresses inside gort's allocator, learned at start-up when
  // gort is linked statically (learn_own_frames): left out of stacks.
  own_frames_t own;
} lk = {.exitcode = 23, .depth = 30, .defaults = true};

static GORT_TLS int64_t prof_left;  // the heap profiler's countdown, in leak mode
// learn_own_frames' probe: the next recorded stack goes here, whole.
static GORT_TLS uintptr_t *probe_stack;
static GORT_TLS uint32_t probe_n;

// ---- recording --------------------------------------------------------------------

// The word of block p (a live small or large malloc block), creating its
// arena's table if create; NULL if there is none.
// Maps arena ai's table; NULL if the OS refused.
static GORT_NOINLINE uint64_t *table_create(uintptr_t ai) {
  int err;
  uint64_t *mine = gort__os_reserve(0, TABLE_BYTES, 4096, &err), *none = NULL;
  if (mine == NULL) return NULL;
  if (atomic_compare_exchange_strong(&lk.tables[ai], &none, mine)) return mine;
  gort__os_unmap(mine, TABLE_BYTES);
  return none;
}

// The word of block p (a live small or large malloc block), creating its
// arena's table if create; NULL if there is none. On every allocation:
// the creation stays out of line, so this is a leaf.
static inline _Atomic uint64_t *word_of(uintptr_t p, bool create) {
  mspan_t *s = span_of(p);
  if (s == NULL || lk.tables == NULL) return NULL;
  uintptr_t ai = p >> GORT_ARENA_SHIFT;
  uint64_t *t = atomic_load_explicit(&lk.tables[ai], memory_order_acquire);
  if (gort_unlikely(t == NULL)) {
    if (!create || (t = table_create(ai)) == NULL) return NULL;
  }
  uintptr_t base = s->base, idx = (base & (GORT_ARENA_SIZE - 1)) >> 4;
  if (span_state(s) == SPAN_SMALL) idx += span_elem_index(s, p - base);
  return (_Atomic uint64_t *)&t[idx];
}

// The word of block p just handed out for recording: its arena and span
// exist, and lk.tables does (the hooks are not installed without it).
// NULL if the arena has no table yet. The record's common case.
static inline _Atomic uint64_t *word_of_fresh(uintptr_t p) {
  uintptr_t ai = p >> GORT_ARENA_SHIFT;
  uint64_t *t = atomic_load_explicit(&lk.tables[ai], memory_order_acquire);
  if (gort_unlikely(t == NULL)) return NULL;
  arena_t *a = __atomic_load_n(&gort__arenas[ai], __ATOMIC_RELAXED);
  mspan_t *s = __atomic_load_n(&a->spans[arena_page_index(p)], __ATOMIC_RELAXED);
  uintptr_t base = s->base, idx = (base & (GORT_ARENA_SIZE - 1)) >> 4;
  if (span_state(s) == SPAN_SMALL) idx += span_elem_index(s, p - base);
  return (_Atomic uint64_t *)&t[idx];
}

// ---- per-thread walk memos ---------------------------------------------------------

// Each thread's memo of its last stack walk and of the last few stacks it
// recorded, kept under their depot ids (unwind.h), so that an allocation
// from a stack seen lately costs a check of its words instead of a walk
// and a depot lookup; from a pool (memopool.c) that takes them back when
// their thread exits.
typedef struct memo {
  unwind_memo_t u;   // its kept walks are tagged with their depot ids
  int64_t prof_left; // the heap profiler's countdown (prof_left below when there is no memo)
} memo_t;

static GORT_TLS void *my_memo;  // a memo_t (memopool.h)
static memo_pool_t memos;

static void memo_exit(void *arg) { gort__memo_pool_exited(&memos, &my_memo, arg); }
static memo_t *memo_get(void) { return gort__memo_pool_get(&memos, &my_memo); }

static bool own_pc(uintptr_t pc) { return own_frames_has(&lk.own, pc); }

// The depot id of a walked stack raw[0..n) (0: the depot is full), gort's
// own frames left out: raw[0] is the frame the walk started in.
static uint32_t stack_id(const uintptr_t *raw, uint32_t n) {
  uint32_t i = 0;
  if (lk.self_hi != 0) {
    while (i < n && raw[i] >= lk.self_lo && raw[i] < lk.self_hi) i++;
  } else {
    while (i < n && own_pc(raw[i])) i++;  // the allocator's frames, learned
  }
  uint32_t depth = n - i < lk.depth ? n - i : lk.depth;
  return gort__stackdepot_put(raw + i, depth);
}

static inline void put_word(void *p, size_t size, uint32_t id) {
  _Atomic uint64_t *w = word_of((uintptr_t)p, true);
  if (w != NULL)
    atomic_store_explicit(w, (uint64_t)(size > UINT32_MAX ? UINT32_MAX : size) << 32 | id,
                          memory_order_relaxed);
}

// The heap profiler, chained (its own countdown): out of line, so that
// the record's common case stays a leaf.
static GORT_NOINLINE void *prof_sample(void *p, size_t size, int64_t *left) {
  *left = lk.prof.sample_alloc(p, size);
  return p;
}
static void prof_count(void *p, size_t size) {
  memo_t *m = my_memo;
  int64_t *left = m != NULL && m != MEMO_POOL_DEAD ? &m->prof_left : &prof_left;
  if ((*left -= (int64_t)size) < 0) prof_sample(p, size, left);
}

#if defined(__x86_64__) && defined(__linux__)

// An allocation whose stack is not the kept walk found last: the tagged
// walk (the other kept walks, else a walk and a depot lookup).
static GORT_NOINLINE void *record_walk(void *p, size_t size, uintptr_t pc, uintptr_t sp, uintptr_t bp) {
  uintptr_t raw[MAX_DEPTH + 8];
  uint32_t max = lk.depth + 8, n, id;
  memo_t *m = memo_get();
  if (gort_unlikely(m == NULL)) {  // a thread past its memo's destructor
    n = gort__unwind_walk(raw, max, pc, sp, bp);
    id = stack_id(raw, n);
  } else {
    unwind_tag_t t = {.m = &m->u};
    n = gort__unwind_walk_tagged(raw, max, pc, sp, bp, &t);
    id = t.tag;  // one of the other kept walks, or 0
    if (id == 0) {
      id = stack_id(raw, n);
      gort__unwind_memo_keep(&t, id);
    }
  }
  put_word(p, size, id);
  if (gort_unlikely(lk.prof.sample_alloc != NULL)) prof_count(p, size);
  return p;
}

// The record of an allocation whose word may need its arena's table made.
static GORT_NOINLINE void *record_put(void *p, size_t size, uint32_t id) {
  put_word(p, size, id);
  if (gort_unlikely(lk.prof.sample_alloc != NULL)) prof_count(p, size);
  return p;
}

// The record_alloc hook, entered through its stub (below) with the state
// of the hook's caller's frame: pc the hook's return address, sp the rsp
// after it, bp the rbp at entry (unwind.h, gort__unwind_walk). The hook
// is tail-called (alloc_init.h), so that frame is the program's: the
// stack starts there. A repeat of the stack recorded last is the common
// case, checked inline (gort__unwind_kept_last): no walk, no depot
// lookup, and no call (the rest are tail calls), so no frame either.
void *gort__leak_on_record(void *p, size_t size, uintptr_t pc, uintptr_t sp, uintptr_t bp) GORT_HIDDEN;
void *gort__leak_on_record(void *p, size_t size, uintptr_t pc, uintptr_t sp, uintptr_t bp) {
  memo_t *m = my_memo;
  uint32_t id;
  if (gort_unlikely(m == NULL || m == MEMO_POOL_DEAD) ||
      gort_unlikely((id = gort__unwind_kept_last(&m->u, lk.depth + 8, pc, sp, bp)) == 0))
    return record_walk(p, size, pc, sp, bp);
  _Atomic uint64_t *w = word_of_fresh((uintptr_t)p);
  if (gort_unlikely(w == NULL)) return record_put(p, size, id);  // the arena's first record
  atomic_store_explicit(w, (uint64_t)(size > UINT32_MAX ? UINT32_MAX : size) << 32 | id, memory_order_relaxed);
  if (gort_unlikely(lk.prof.sample_alloc != NULL) && (m->prof_left -= (int64_t)size) < 0)
    return prof_sample(p, size, &m->prof_left);
  return p;
}

// learn_own_frames' hook: the probe's stack, whole, to probe_stack, and
// no word (the probe frees its block at once); other allocations meanwhile
// record as usual.
void *gort__leak_on_probe(void *p, size_t size, uintptr_t pc, uintptr_t sp, uintptr_t bp) GORT_HIDDEN;
void *gort__leak_on_probe(void *p, size_t size, uintptr_t pc, uintptr_t sp, uintptr_t bp) {
  if (probe_stack == NULL) return gort__leak_on_record(p, size, pc, sp, bp);
  probe_n = gort__unwind_walk(probe_stack, MAX_DEPTH + 8, pc, sp, bp);
  return p;
}

// The stubs: as unwind.c's capture stubs, they read the return address,
// the caller's rsp and rbp, and tail-jump, so that the C functions above
// get the caller's frame as it was (their own code may move rbp).
#define ENTRY_STUB(name, target)                      \
  __asm__(".pushsection .text\n"                      \
          ".type " name ", @function\n"               \
          ".p2align 4\n" name ":\n"                   \
          "  .cfi_startproc\n"                        \
          "  movq (%rsp), %rdx\n"                     \
          "  leaq 8(%rsp), %rcx\n"                    \
          "  movq %rbp, %r8\n"                        \
          "  jmp " target "\n"                        \
          "  .cfi_endproc\n"                          \
          ".size " name ", .-" name "\n"              \
          ".popsection\n")
void *gort__leak_record_stub(void *p, size_t size) GORT_HIDDEN;
void *gort__leak_probe_stub(void *p, size_t size) GORT_HIDDEN;
ENTRY_STUB("gort__leak_record_stub", "gort__leak_on_record");
ENTRY_STUB("gort__leak_probe_stub", "gort__leak_on_probe");

#else  // glibc's unwinder (unwind.c): no kept walks, no stubs

static GORT_NOINLINE void *record_here(void *p, size_t size) {
  uintptr_t raw[MAX_DEPTH + 9];
  uint32_t n = gort__unwind_capture(raw, MAX_DEPTH + 9);  // raw[0] is in this function
  if (probe_stack != NULL) {
    probe_n = n > 0 ? n - 1 : 0;
    memcpy(probe_stack, raw + 1, probe_n * sizeof raw[0]);
    return p;
  }
  put_word(p, size, n > 0 ? stack_id(raw + 1, n - 1) : 0);
  if (lk.prof.sample_alloc != NULL) prof_count(p, size);
  return p;
}
static void *gort__leak_record_stub(void *p, size_t size) { return record_here(p, size); }
static void *gort__leak_probe_stub(void *p, size_t size) { return record_here(p, size); }

#endif

// The allocator's sample hook in leak mode. sample() hands every
// allocation to record_alloc (the stub above) first, so nothing in the
// allocator calls this today; it stays registered so that a caller of
// sample_alloc that skips sample() still records (with this frame on top,
// left out).
static GORT_NOINLINE int64_t on_alloc(void *p, size_t size) {
  if (p != NULL) {
    uintptr_t raw[MAX_DEPTH + 9];
    uint32_t n = gort__unwind_capture(raw, MAX_DEPTH + 9);
    put_word(p, size, n > 0 ? stack_id(raw + 1, n - 1) : 0);
    if (lk.prof.sample_alloc != NULL) prof_count(p, size);
  }
  return -1;  // and the next one
}

static int64_t first_interval(void) { return GORT_SAMPLE_RECORD; }  // mcache.c keeps -1 when hardened

// realloc kept the block: its new size (the stack stays the first one's).
static void on_resize(void *p, size_t size) {
  _Atomic uint64_t *w = word_of((uintptr_t)p, false);
  if (w == NULL) return;
  uint64_t v = atomic_load_explicit(w, memory_order_relaxed);
  if ((uint32_t)v != 0)
    atomic_store_explicit(w, (uint64_t)(size > UINT32_MAX ? UINT32_MAX : size) << 32 | (uint32_t)v,
                          memory_order_relaxed);
}

// ---- options ----------------------------------------------------------------------

static bool parse_uint(const char *s, size_t len, int64_t max, int64_t *out) {
  int64_t v = 0;
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9' || v > max / 10) return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// GORT_LEAKCHECK: "1", "true", or items key=value separated by commas.
// The value stays in the environment, so suppress= keeps pointing into it.
static void parse_items(const char *s) {
  if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) return;
  while (*s) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    const char *eq = memchr(s, '=', len);
    size_t klen = eq ? (size_t)(eq - s) : len, vlen = eq ? len - klen - 1 : 0;
    const char *v = eq ? eq + 1 : NULL;
    int64_t n;
    bool ok = true;
    if (len == 0 || (len == 1 && s[0] == '1')) {
      // an empty item, or "1" beside others
    } else if (klen == 8 && strncmp(s, "suppress", 8) == 0 && vlen > 0) {
      static char path[4096];
      if (vlen < sizeof path) {
        memcpy(path, v, vlen);
        path[vlen] = '\0';
        lk.suppress_path = path;
      } else {
        ok = false;
      }
    } else if (klen == 8 && strncmp(s, "exitcode", 8) == 0) {
      ok = eq && parse_uint(v, vlen, 255, &n);
      if (ok) lk.exitcode = n;
    } else if (klen == 5 && strncmp(s, "depth", 5) == 0) {
      ok = eq && parse_uint(v, vlen, MAX_DEPTH, &n) && n >= 1;
      if (ok) lk.depth = (uint32_t)n;
    } else if (klen == 8 && strncmp(s, "defaults", 8) == 0) {
      ok = eq && parse_uint(v, vlen, 1, &n);
      if (ok) lk.defaults = n != 0;
    } else if (klen == 7 && strncmp(s, "verbose", 7) == 0) {
      ok = eq && parse_uint(v, vlen, 1, &n);
      if (ok) lk.verbose = n != 0;
    } else {
      ok = false;
    }
    if (!ok) {
      char item[80];
      gort__snprint(item, sizeof item, "%s", s);
      if (len < sizeof item) item[len] = '\0';
      gort__warn("GORT_LEAKCHECK: ignoring bad item '%s' (want 1, suppress=FILE, exitcode=0..255, "
                 "depth=1..64, defaults=0|1, verbose=0|1)", item);
    }
    if (end == NULL) break;
    s = end + 1;
  }
}

// ---- suppressions -----------------------------------------------------------------

const char *gort__leak_suppression(int i) { return i >= 0 && i < lk.nsupp ? lk.supp[i] : NULL; }

static bool match_here(const char *t, const char *s, bool anchored_end) {
  for (; *t != '\0' && !(anchored_end && t[0] == '$' && t[1] == '\0'); t++, s++) {
    if (*t == '*') {
      while (*t == '*') t++;
      if (*t == '\0') return true;
      for (; *s != '\0'; s++)
        if (match_here(t, s, anchored_end)) return true;
      return match_here(t, s, anchored_end);
    }
    if (*s != *t) return false;
  }
  return !anchored_end || *s == '\0';
}

bool gort__leak_template_match(const char *t, const char *s) {
  if (t == NULL || s == NULL) return false;
  size_t n = strlen(t);
  bool end = n > 0 && t[n - 1] == '$';
  if (t[0] == '^') return match_here(t + 1, s, end);
  for (const char *p = s;; p++) {
    if (match_here(t, p, end)) return true;
    if (*p == '\0') return false;
  }
}

static void add_suppression(const char *t) {
  if (lk.nsupp < MAX_SUPPRESSIONS) lk.supp[lk.nsupp++] = t;
}

// LeakSanitizer's format: one "leak:TEMPLATE" per line; # starts a comment.
static void read_suppressions(const char *path) {
  int err;
  lk.supp_text = gort__os_reserve(0, SUPP_FILE_BYTES, 4096, &err);
  if (lk.supp_text == NULL) return;
  int64_t n = gort__os_read_file(path, lk.supp_text, SUPP_FILE_BYTES);
  char ebuf[32];
  if (n < 0) {
    gort__warn("GORT_LEAKCHECK: cannot read the suppressions in %s: %s; none applied", path,
               gort__strerror((int)n, ebuf, sizeof ebuf));
    return;
  }
  int lineno = 0, bad = 0;
  for (char *line = lk.supp_text; line != NULL && *line != '\0';) {
    char *next = strchr(line, '\n');
    if (next != NULL) *next++ = '\0';
    lineno++;
    while (*line == ' ' || *line == '\t') line++;
    char *e = line + strlen(line);
    while (e > line && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    if (*line != '\0' && *line != '#') {
      if (strncmp(line, "leak:", 5) == 0 && line[5] != '\0') {
        if (lk.nsupp == MAX_SUPPRESSIONS)
          gort__warn("GORT_LEAKCHECK: %s: more than %d suppressions; line %d on ignored", path,
                     MAX_SUPPRESSIONS, lineno);
        add_suppression(line + 5);
      } else if (bad++ == 0) {
        gort__warn("GORT_LEAKCHECK: %s:%d: '%s' is not a suppression (want leak:TEMPLATE); "
                   "such lines are ignored", path, lineno, line);
      }
    }
    line = next;
  }
}

// ---- start-up ---------------------------------------------------------------------

static void leak_at_exit(void);

// A fork while another thread checks or takes a memo must not leave the
// child waiting for that thread.
static void fork_child(void) {
  gort__gc_leak_after_fork_child();
  gort__memo_pool_after_fork(&memos);
}
static fork_hook_t leak_fork = {.name = "leakcheck", .rank = LOCK_PROF, .child = fork_child};

// One allocation of each kind (ownframes.h), its stack captured whole; the
// frames above this function's own are gort's allocator.
static GORT_NOINLINE void probe(int kind) {
  uintptr_t direct[MAX_DEPTH + 8], got[MAX_DEPTH + 8];
  uint32_t nd = gort__unwind_capture(direct, MAX_DEPTH + 8);
  void *p, *q;
  gort__own_probe_prepare(kind, &p);
  probe_n = 0;
  probe_stack = got;
  gort__own_probe_alloc(kind, &p, &q);
  probe_stack = NULL;
  if (probe_n < MAX_DEPTH + 8) gort__own_learn(&lk.own, direct, nd, got, probe_n, 0);
  gort__own_probe_release(kind, p, q);
  __asm__ volatile("" ::: "memory");  // no tail call: this frame must stay
}

static void learn_own_frames(void) {
  for (int kind = 0; kind < OWN_PROBE_KINDS; kind++) probe(kind);
}

void gort__leak_init(void) {
  const char *v = gort__opts.leakcheck;
  if (v == NULL || strcmp(v, "0") == 0 || strcmp(v, "false") == 0) return;
  parse_items(v);
  if (lk.defaults)
    for (size_t i = 0; i < sizeof default_suppressions / sizeof default_suppressions[0]; i++)
      add_suppression(default_suppressions[i] + 5);  // past "leak:"
  if (lk.suppress_path != NULL) read_suppressions(lk.suppress_path);
  int err;
  lk.tables = gort__os_reserve(0, GORT_ARENA_L1 * sizeof *lk.tables, 4096, &err);
  if (lk.tables == NULL || !gort__stackdepot_init()) {
    gort__warn("GORT_LEAKCHECK: out of memory for the allocation stacks; leaks will be reported "
               "without them");
  }
  gort__unwind_self_text(&lk.self_lo, &lk.self_hi);
  gort__unwind_init();
  gort__memo_pool_init(&memos, sizeof(memo_t), memo_exit);
  gort__start_add_fork_hook(&leak_fork);
  // Chain the heap profiler's hooks (obs/mprof.c ran first; all NULL if
  // GORT_MEMPROFILERATE=0): its sampling goes on, on its own countdown.
  // Without the tables there is nowhere to put the ids: no recording
  // (and the record's common case need not test for them).
  bool record = lk.tables != NULL;
  if (record) {
    lk.prof = gort__mprof_hooks;
    gort__mprof_hooks.resized = on_resize;
    gort__mprof_hooks.sample_alloc = on_alloc;
    // Every allocation that reaches sample() comes here from now on.
    // Static builds probe their own frames first (learn_own_frames,
    // through the probe's hook).
    gort__mprof_hooks.record_alloc = lk.self_hi == 0 ? gort__leak_probe_stub : gort__leak_record_stub;
    // And then every one: a countdown of GORT_SAMPLE_RECORD calls
    // record_alloc without testing it, so this comes after it.
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    gort__mprof_hooks.first_interval = first_interval;
    if (gort__tls_cache != &gort__empty_cache) gort__tls_cache->sample_left = gort__harden ? -1 : GORT_SAMPLE_RECORD;
  }
  lk.on = true;
  // The heap's first block (see pin in the struct above), before any other.
  lk.pin = malloc(1024);
  gort_gc_add_roots(&lk.pin, &lk.pin + 1);
  if (record && lk.self_hi == 0) {
    learn_own_frames();
    gort__mprof_hooks.record_alloc = gort__leak_record_stub;
  }
  // Ids kept before the own frames were known would name stacks with
  // some of gort's frames in them.
  memo_t *m = memo_get();
  if (m != NULL) gort__unwind_memo_forget(&m->u);
}

// In a fully static program gort starts inside libc's start-up, where no
// stack can be walked yet (unwind.c, whose constructor runs before this
// one): the probes learned nothing there, and in a build without tail
// calls (MODE=debug) every report then began in the allocator. They run
// again once libc has started; what they learned before stays.
__attribute__((constructor(120))) static void learn_after_libc_start(void) {
  if (!lk.on || lk.self_hi != 0 || gort__mprof_hooks.record_alloc != gort__leak_record_stub) return;
  gort__mprof_hooks.record_alloc = gort__leak_probe_stub;  // records as usual when not probing
  learn_own_frames();
  gort__mprof_hooks.record_alloc = gort__leak_record_stub;
  memo_t *m = memo_get();
  if (m != NULL) gort__unwind_memo_forget(&m->u);
}

// ---- the check --------------------------------------------------------------------

static void extra_live(void (*add)(uintptr_t addr, void *ctx), void *ctx, void *arg) {
  (void)arg;
  if (gort__mprof_hooks.is_sampled != NULL) gort__mprof_foreach_sampled(add, ctx);
}

// The bytes of a block that may hold pointers: those the program asked
// for, when the block's allocation was recorded.
static size_t scan_bytes(uintptr_t addr, size_t usable, void *arg) {
  (void)arg;
  _Atomic uint64_t *w = word_of(addr, false);
  uint64_t v = w != NULL ? atomic_load_explicit(w, memory_order_relaxed) : 0;
  return (uint32_t)v != 0 && (v >> 32) < UINT32_MAX ? (size_t)(v >> 32) : usable;
}

static void on_leaked(uintptr_t addr, size_t usable, bool direct, void *arg) {
  (void)arg;
  _Atomic uint64_t *w = word_of(addr, false);
  uint64_t v = w != NULL ? atomic_load_explicit(w, memory_order_relaxed) : 0;
  uint32_t id = (uint32_t)v;
  uint64_t size = v >> 32;
  if (id == 0 || size > usable) size = usable;  // not recorded: its usable size
  gort__leakreport_add(id, size, direct);
}

// Runs the check into r; 0 or -errno.
static int check(leak_result_t *r) {
  memset(r, 0, sizeof *r);
  int err = gort__leakreport_begin();
  if (err != 0) return err;
  gc_leak_visitor_t v = {.extra_live = extra_live, .scan_bytes = lk.on ? scan_bytes : NULL, .leaked = on_leaked};
  err = gort__gc_leak_scan(&v, &r->st);
  gort__leakreport_end(r);
  r->recorded = lk.on;
  if (err == 0) gort__leakreport_resolve(r);
  return err;
}

typedef struct {
  int fd;  // gort_leak_check's, or -1 at exit
  int ret;
} entry_t;

static void at_exit_body(void);

static void api_body(void *arg) {
  entry_t *e = arg;
  if (e->fd < 0) {
    at_exit_body();
    return;
  }
  leak_result_t r;
  int err = check(&r);
  if (err == 0) err = gort__leakreport_write_text(e->fd, &r, true);
  int64_t leaks = (int64_t)r.blocks;
  gort__leakreport_release(&r);
  e->ret = err != 0 ? err : (int)(leaks > INT32_MAX ? INT32_MAX : leaks);
}

int gort_leak_check(int fd) {
  if (fd < 0) return -EBADF;
  entry_t e = {fd, 0};
  gort__gc_leak_enter(api_body, &e);
  return e.ret;
}

static void write_profile(const leak_result_t *r) {
  char path[OUTPATH_MAX], ebuf[32];
  if (gort__outpath_get(OUT_LEAKPROFILE, path) == NULL) return;
  int fd = gort__os_open_write(path);
  if (fd < 0) {
    gort__warn("GORT_LEAKCHECK_PROFILE: cannot open %s: %s; no leak profile written", path,
               gort__strerror(fd, ebuf, sizeof ebuf));
    return;
  }
  int err = gort__leakreport_write_profile(fd, r);
  int cerr = gort__os_close(fd);
  if (err == 0) err = cerr;
  if (err != 0)
    gort__warn("GORT_LEAKCHECK_PROFILE: writing %s failed: %s", path, gort__strerror(err, ebuf, sizeof ebuf));
}

static void write_text(const leak_result_t *r) {
  char path[OUTPATH_MAX], ebuf[32];
  const char *file = gort__outpath_get(OUT_LEAKCHECK, path);
  int fd = file != NULL ? gort__os_open_write(file) : 2;
  if (fd < 0) {
    gort__warn("GORT_LEAKCHECK_FILE: cannot open %s: %s; the report goes to stderr", file,
               gort__strerror(fd, ebuf, sizeof ebuf));
    fd = 2;
  }
  int err = gort__leakreport_write_text(fd, r, lk.verbose);
  if (fd != 2) {
    int cerr = gort__os_close(fd);
    if (err == 0) err = cerr;
    if (err != 0)
      gort__warn("GORT_LEAKCHECK_FILE: writing %s failed: %s", file, gort__strerror(err, ebuf, sizeof ebuf));
  }
}

static void at_exit_body(void) {
  leak_result_t r;
  int err = check(&r);
  char ebuf[32];
  if (err != 0) {
    gort__warn("GORT_LEAKCHECK: the leak check could not run: %s", gort__strerror(err, ebuf, sizeof ebuf));
  } else {
    if (r.blocks > 0 || lk.verbose) write_text(&r);
    write_profile(&r);
  }
  bool leaked = err == 0 && r.blocks > 0;
  gort__leakreport_release(&r);
  if (leaked && lk.exitcode != 0) {
    gort__obs_write_at_exit();  // the stats and the heap profile, which may wait for exit's end
    fflush(NULL);  // exit's own flush runs after the destructors: it would be skipped
    _exit((int)lk.exitcode);
  }
}

// Step 5 of the file comment. Priority 101: in a static program, after
// the program's own destructors too.
__attribute__((destructor(101))) static void leak_at_exit(void) {
  if (!lk.on) return;
  entry_t e = {-1, 0};
  gort__gc_leak_enter(api_body, &e);
}
