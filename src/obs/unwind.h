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
// a frame it cannot unwind safely. On a thread that set a root
// (gort__unwind_set_root) it stops at the frame that set it.
//
// Takes no lock, never allocates and never blocks: callable inside malloc,
// from several threads at once, in a forked child, in a signal handler.
uint32_t gort__unwind_capture(uintptr_t *pcs, uint32_t max);

// The calling thread's walks end at the frame whose frame pointer is
// root: the frame of a function that called __builtin_frame_address(0)
// (so keeps rbp as one) and passed it here, and that stays on the stack
// while the thread runs (gc/stw.c's thread trampoline). Its own pc is the
// last one recorded; the frames below it (glibc's start_thread, clone3)
// are not walked, so their modules' unwind tables are never read.
void gort__unwind_set_root(uintptr_t root);

// A thread's memo of its last walk (gort__unwind_capture_memo): each
// frame's state and the stack words the walk read from it. The walk is a
// function of a frame's state (pc, sp, rbp where a later rule reads it)
// and of those words, so a walk that reaches a frame of the last one, in
// the same state and with the same words in place, would repeat the rest
// of it: the memo copies it instead, checking one or two words a frame
// (independent loads) in place of a rule lookup each. Allocation-heavy
// code calls malloc from the same few stacks over and over: their walks
// cost a check of the words. Owned by one thread; zeroed is empty.
#define UNWIND_MEMO_FRAMES 48
typedef struct {
  uintptr_t pc, sp, bp;
  uintptr_t at[2], word[2];  // the words read (at 0: none)
  uint8_t exact;             // pc was interrupted (after a signal frame), not a return address
  uint8_t bp_read;           // this frame's bp (or a later one's, not reloaded) is read
  uint8_t reloads_bp;        // the frame's rule reads the caller's rbp from the stack
} unwind_memo_frame_t;
// A walk kept under a caller's tag (gort__unwind_capture_tagged): frame
// 0's state and the words that decided the rest, flat, for a check with
// no rule lookup (gort__unwind_kept_last).
#define UNWIND_MEMO_KEPT 8
typedef struct {
  uintptr_t at, word;
} unwind_check_t;
typedef struct {
  uintptr_t pc, sp, bp;       // frame 0
  uintptr_t bp_mask;          // all ones if frame 0's bp decides something, else 0
  uint32_t tag;               // the caller's; 0: empty
  uint32_t n, max;            // the walk's frames, and its max
  uint32_t nchk;              // even, at least 2 (padded with words that check themselves)
  unwind_check_t chk[2 * UNWIND_MEMO_FRAMES + 1];  // and then one with at 0
} unwind_kept_t;
// The kept walk found last, copied where gort__unwind_kept_last reads it
// first (pc 0: none): no index to scale, and one line for all but the words.
typedef struct {
  uintptr_t pc, sp, bp, bp_mask;
  const unwind_check_t *chk;  // its checks, ended by one with at 0
  uint32_t max, tag;
} unwind_kept_hot_t;
typedef struct {
  unwind_kept_hot_t hot;
  uint32_t n[2];              // frames in each buffer
  uint32_t max[2];            // the max of the walk that filled it
  uint8_t complete[2];        // that walk ended by itself, not at max
  uint8_t cur;                // the buffer of the last walk
  uint8_t busy;               // a walk is using the memo (a signal handler's walk does without)
  uint32_t reused;            // out: see gort__unwind_capture_memo
  uint32_t rng;               // picks the kept slot to replace
  uint32_t last;              // the kept slot found last
  unwind_memo_frame_t f[2][UNWIND_MEMO_FRAMES];
  unwind_kept_t kept[UNWIND_MEMO_KEPT];
} unwind_memo_t;

// As gort__unwind_capture, using and updating m. Sets m->reused to the
// index of the first frame copied from the memo (max if none was): 0 means
// the whole stack is the last walk's.
uint32_t gort__unwind_capture_memo(uintptr_t *pcs, uint32_t max, unwind_memo_t *m);

// The leak check's capture: most allocations repeat one of a few whole
// stacks, and what it needs of a repeat is the name it gave the stack
// last time (its depot id), not the frames. t->m is the thread's memo.
// If the calling stack is, word for word, one of the walks kept in the
// memo (the last UNWIND_MEMO_KEPT tagged ones), sets t->tag to that
// walk's tag and returns its frame count, leaving pcs unwritten; else
// walks as gort__unwind_capture_memo (a hit leaves m->reused alone),
// sets t->tag to 0, and the caller must then call
// gort__unwind_memo_keep(t, tag) to name the walk (tag 0:
// keep nothing), which also releases the memo (a signal handler's walk
// meanwhile does without it).
typedef struct {
  unwind_memo_t *m;
  uint32_t tag;   // out
  uint8_t held;   // out: the memo waits for gort__unwind_memo_keep
  int8_t slot;    // the kept slot the walk was written to, -1 none
} unwind_tag_t;
uint32_t gort__unwind_capture_tagged(uintptr_t *pcs, uint32_t max, unwind_tag_t *t);
// The same walks from a frame state the caller has: pc a return address
// into the frame's function, sp the frame's rsp once that call returned
// (the callee's CFA), bp its rbp then. An entry stub that reads its own
// return address, rsp + 8 and rbp passes exactly this (as the capture
// stubs do), so the walk starts in the stub's caller: pcs[0] is pc.
uint32_t gort__unwind_walk(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp);
uint32_t gort__unwind_walk_tagged(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                                  unwind_tag_t *t);
void gort__unwind_memo_keep(unwind_tag_t *t, uint32_t tag);
// The hit of gort__unwind_walk_tagged on the kept walk found (or kept)
// last, read from its copy m->hot, inline for the leak check's every
// allocation: the tag of that walk if a walk
// from (pc, sp, bp) with this max would repeat it word for word, else 0
// (then call gort__unwind_walk_tagged, which looks at every kept walk and
// walks). Frame 0's state and every word the kept walk read decide the
// whole walk (unwind.c, kept walks); the words are checked only on the
// stack they were read from (same pc and sp), and all of them, or'ed
// into one test. The memo is held meanwhile: a signal handler's walk
// inside this one does without it, so cannot rewrite what is read.
static inline uint32_t gort__unwind_kept_last(unwind_memo_t *m, uint32_t max, uintptr_t pc, uintptr_t sp,
                                              uintptr_t bp) {
  if (m->busy) return 0;
  m->busy = 1;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint32_t tag = 0;
  if (m->hot.pc == pc && m->hot.sp == sp) {
    uintptr_t diff = (uintptr_t)(m->hot.max ^ max) | ((m->hot.bp ^ bp) & m->hot.bp_mask), v0, v1;
    const unwind_check_t *c = m->hot.chk;
    do {  // pairs, up to the entry with at 0
      __builtin_memcpy(&v0, (const void *)c[0].at, sizeof v0);
      __builtin_memcpy(&v1, (const void *)c[1].at, sizeof v1);
      diff |= (v0 ^ c[0].word) | (v1 ^ c[1].word);
      c += 2;
    } while (c->at != 0);
    if (diff == 0) tag = m->hot.tag;
  }
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  m->busy = 0;
  return tag;
}

// Drops the kept walks (their tags no longer name what a walk would give).
void gort__unwind_memo_forget(unwind_memo_t *m);

// Snapshots the loaded modules and maps the rule cache. Call at start-up
// from normal context: it takes the loader lock (dl_iterate_phdr) and maps
// memory. Calling it again later picks up modules loaded since; capture
// also works before it, only slower (nothing is cached).
void gort__unwind_init(void);

// libgort.so's executable segment [lo, hi), so that stacks can leave
// gort's frames out; both 0 when gort is linked statically (its code is
// then the program's). Takes the loader lock: normal context only.
void gort__unwind_self_text(uintptr_t *lo, uintptr_t *hi);

#endif  // GORT_OBS_UNWIND_H
