// Stack capture: a small x86-64 unwinder that takes no lock and never allocates.
//
// The heap profiler records the stack of every sampled allocation, from
// inside malloc. glibc's backtrace() costs 1-2 us a call: libgcc finds the
// module, searches its FDE table and interprets the whole CFA program again
// for every frame of every call. It can also allocate and take the loader
// lock (its first call dlopens libgcc_s). This file does the same walk from
// cached per-PC rules, about 7 ns a frame: 15-20 times faster.
//
// The walk (x86-64 Linux):
//   1. gort__unwind_capture is a four-instruction assembly stub: it reads
//      its return address, the caller's rsp once returned (its own rsp + 8)
//      and rbp, and tail-jumps to gort__unwind_walk. No frame of ours is on
//      the stack, so pcs[0] is the return address into the caller, as with
//      backtrace().
//   2. For each frame, the rule that gives the caller's registers is looked
//      up in a per-PC cache; on a miss it is computed from the module's
//      .eh_frame_hdr / .eh_frame (binary search, then the CIE's and FDE's
//      CFA programs run up to the PC) and stored.
//   3. The rule gives the CFA (rsp or rbp plus an offset); the return
//      address is at CFA-8, the caller's rsp is the CFA and its rbp was
//      saved at CFA-k or left alone. Other registers are not tracked: the
//      CFA never depends on them in code GCC and glibc emit, except in the
//      cases of 5.
//   4. A return address points after its call, which may be the first byte
//      of the next function (a call to a noreturn function ends its
//      caller), so rules are those of pc-1. The PC after a signal frame is
//      exact and uses its own rule. The innermost frame is a return
//      address too (the stub's), so it also uses pc-1.
//   5. Rules that do not fit step 3 fall back:
//        - signal frames (CIE augmentation "S", or glibc's __restore_rt
//          bytes where no FDE covers them): read rip, rsp and rbp from the
//          ucontext_t the kernel left at the CFA, and go on only if the
//          interrupted rsp is above it on the same stack (a handler on a
//          sigaltstack ends the walk at __restore_rt);
//        - no FDE covers the PC (assembly without CFI), the CFA is an
//          expression (DW_CFA_def_cfa_expression: stack realignment, PLT),
//          is based on another register, or rbp or the return address is
//          saved in a way not tracked: follow rbp as a frame pointer
//          (return address at rbp+8, caller's rbp at rbp); the checks of 6
//          stop the walk if rbp is not one;
//        - the return address column is undefined (_start, clone3): the
//          outermost frame; record it and stop.
//   6. Every step is checked before it reads: the new CFA (or frame
//      pointer) must be 8-aligned, strictly above the previous rsp and at
//      most the stack's top, and a saved rbp must lie between rsp and the
//      CFA. The top is the thread pointer for glibc threads (struct pthread
//      and the static TLS sit above the stack in the same mapping); on the
//      main thread it is the exec file name string (AT_EXECFN, which the
//      kernel puts at the top of the initial stack, above argv); on any
//      other stack (coroutines, sigaltstack) 16 MiB above the starting rsp.
//      So a wrong rule or a frame pointer that is not one ends the walk,
//      and reads stay inside the thread's stack whenever its bounds are
//      known. A PC of 0 or in no known executable segment ends the walk
//      without being recorded. A thread started by gort's pthread_create
//      has a lower top, its trampoline's frame (gort__unwind_set_root):
//      the walk ends there, before glibc's start_thread and clone3, whose
//      unwind tables were the only ones of libc a thread's walks read
//      (libc's read-only pages mapped by the profiler's walks in a
//      threaded program: about 136 KiB of its RSS, the kernel mapping
//      64 KiB around each page read).
//
// The rule cache is a 16K-entry open-addressing table of 64-bit words
// (128 KiB, mmap'd once by gort__unwind_init, touched lazily). A word holds
// the rule (28 bits), the high 34 bits of the key and the probe distance
// (2 bits); the slot's home index is the low 14 bits of the key xor a hash
// of the high bits, so a word whose stored high bits and distance match
// can only belong to this key: validation is exact. Words are written and
// read with single relaxed atomic stores and loads, so a racing writer
// leaves either the old word or the new one, never a mix; a lost update is
// only a later miss. Keys above 2^48 and rules that do not fit 28 bits
// (frames over 128 KiB, rbp saved over 504 bytes below the CFA) are
// recomputed on every walk instead.
//
// Modules. gort__unwind_init snapshots every loaded module's executable
// PT_LOAD ranges and PT_GNU_EH_FRAME with dl_iterate_phdr (the loader lock
// is fine there, at start-up). The walk itself never calls
// dl_iterate_phdr: inside malloc the thread may already hold locks that a
// thread in dlopen, holding the loader lock, is waiting for. On a miss it
// asks glibc's _dl_find_object (2.35+), which is lock-free and
// async-signal-safe: a PC in no loaded object ends the walk (this also
// catches a stale range left by dlclose, before anything of it is read), a
// module loaded after the snapshot is added to the table (its ranges read
// from the ELF header at its map start), and a range whose module was
// replaced is retired. The table is append-only with release/acquire
// publication; retired slots are not reused, and once its 512 slots are
// taken, PCs in further modules end the walk. Without _dl_find_object, PCs
// in modules loaded after the last gort__unwind_init end the walk.
// A fully static program (no ld.so) has no _dl_find_object to ask and no
// .eh_frame_hdr: its table is built from .eh_frame once libc has started
// (add_static_program, below).
//
// Memo and kept walks (unwind.h), for the leak check, which walks on every
// allocation. A walk is a function of its first frame's state (pc, sp,
// and bp where a rule reads it before a frame reloads it) and of the
// stack words it read (return addresses, saved rbps); each thread's memo
// records them. A walk that reaches a frame of the last one in the same
// state, with those words still in place, copies the rest
// (gort__unwind_capture_memo). The leak check wants less: only the name
// of a stack it saw lately. It keeps the last UNWIND_MEMO_KEPT walks under
// their depot ids as flat lists of {address, word}, and a capture whose
// first frame's state matches one and finds every listed word in place
// is that walk again, word for word: no rule, no copy, no depot lookup
// (gort__unwind_capture_tagged, or gort__unwind_walk_tagged from a frame
// state the caller has). The kept walk found last (or kept last: a new
// stack is often repeated at once) is checked first, and that check is
// inline in unwind.h (gort__unwind_kept_last), so that the leak check's
// record does it with no call. Its frame 0 state and the address of its
// list are copied to the head of the memo (m->hot, pc 0 when stale: the
// slot was rebuilt or the walks forgotten), so the check reads one line
// and the list, with no slot index to scale: frame 0's pc and sp, then
// every listed word and frame 0's bp where it counts, or'ed into one
// test, two loads at a time (the list is padded to an even length with
// words that check themselves, and ends with an address of 0). Sound
// for the same reason as the memo;
// what the list leaves out (a frame's saved rbp that no later rule reads,
// the words of frames past the walk's end) decides nothing. Signal frames
// are never kept (the interrupted registers are no stack word), and the
// memo is "busy" while a walk reads or writes it, so a signal handler's
// walk inside the thread's own does without it. A memo serves one thread
// only: the stack's top (step 6) comes from the thread pointer, so the
// same words on another thread's stack need not give the same walk.
//
// Nothing on the capture path locks, allocates, uses stdio or waits: threads share the cache and the table through atomics alone, a
// forked child inherits both as they were, and a signal handler may
// capture while the thread it interrupted was capturing.
//
// Rejected: frame pointers only (libc and most distribution code are built
// without them, so walks would stop at the first libc frame, e.g. a qsort
// comparator); caching whole stacks (the profiler's buckets already do
// that, and the walk is what costs); sampling the loader state with a
// trylock (glibc exports none).
//
// Known limits: a module dlclosed while a walk reads its tables faults (as
// in libgcc). Cached rules of a dlclosed module are not flushed: code loaded
// later at the same address may be walked with them, within the checks of 6.
// Frames below a frame-pointer fallback are only as good as the rbp chain.
// The remember_state stack is 8 deep; deeper CFA programs fall back.

#define _GNU_SOURCE
#include "unwind.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "../base/base.h"
#include "../base/noscan.h"

#include <link.h>

#if defined(__x86_64__) && defined(__linux__)

#include <dlfcn.h>
#include <link.h>
#include <sys/auxv.h>
#include <ucontext.h>

#include "../os/os.h"
#include "symbolize.h"

#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 35)
#define HAVE_DL_FIND_OBJECT 1
#endif

enum {
  MAX_RANGES = 512,        // executable segments of all modules, retired ones included
  CACHE_BITS = 14,         // 16K words, 128 KiB
  MAX_PROBE = 4,
  MAX_REMEMBER = 8,        // DW_CFA_remember_state depth
  RULE_BITS = 28,
  DWARF_RBP = 6,
  DWARF_RSP = 7,
  DWARF_RA = 16,
};
#define CACHE_SIZE ((size_t)1 << CACHE_BITS)
#define CACHE_MASK (CACHE_SIZE - 1)
#define KEY_BITS 48
#define MAX_THREAD_STACK ((uintptr_t)1 << 30)   // rsp this close below a bound: that stack
#define OTHER_STACK_SPAN ((uintptr_t)16 << 20)  // unknown stacks: at most this far above rsp

// ---- rules -------------------------------------------------------------------

enum { R_EMPTY, R_CFA, R_FP, R_STOP, R_SIGNAL };

// How to find the caller's rip, rsp and rbp from a frame's.
typedef struct {
  uint32_t kind;      // R_*
  bool cfa_rbp;       // R_CFA: CFA = rbp + cfa_off, else rsp + cfa_off
  bool rbp_saved;     // R_CFA: the caller's rbp is at CFA - rbp_off, else unchanged
  uint32_t rbp_off;
  uint32_t cfa_off;
} rule_t;

// Packs r into RULE_BITS: kind 3, cfa_rbp 1, rbp_saved 1, rbp_off/8 6,
// cfa_off 17. Returns 0 (R_EMPTY) if it does not fit.
static uint64_t rule_pack(const rule_t *r) {
  if (r->rbp_off % 8 != 0 || r->rbp_off / 8 >= 64 || r->cfa_off >= (1u << 17)) return 0;
  return r->kind | (uint64_t)r->cfa_rbp << 3 | (uint64_t)r->rbp_saved << 4 |
         (uint64_t)(r->rbp_off / 8) << 5 | (uint64_t)r->cfa_off << 11;
}

static rule_t rule_unpack(uint64_t w) {
  return (rule_t){
      .kind = (uint32_t)(w & 7),
      .cfa_rbp = (w >> 3) & 1,
      .rbp_saved = (w >> 4) & 1,
      .rbp_off = (uint32_t)((w >> 5) & 63) * 8,
      .cfa_off = (uint32_t)((w >> 11) & ((1u << 17) - 1)),
  };
}

// ---- module table and cache --------------------------------------------------

typedef struct {
  _Atomic uintptr_t hi;     // end of the range; 0 while being filled and once retired
  uintptr_t lo;             // immutable once hi is published, like the rest
  const uint8_t *eh_hdr;    // the module's .eh_frame_hdr (.eh_frame for a table built here), NULL if none
  const uint8_t *table;     // its search table (datarel sdata4 pairs), NULL if unusable
  uint32_t nfde;
} range_t;

static struct {
  range_t ranges[MAX_RANGES];
  _Atomic uint32_t nranges;        // slots claimed; a claimed slot is usable once its hi is set
  _Atomic(_Atomic uint64_t *) cache;  // CACHE_SIZE words; NULL before gort__unwind_init
  _Atomic uintptr_t main_stack_top;   // AT_EXECFN; 0 before gort__unwind_init
} unw;
GORT_NOSCAN(unw)

static range_t *range_of(uintptr_t q) {
  uint32_t n = atomic_load_explicit(&unw.nranges, memory_order_acquire);
  if (n > MAX_RANGES) n = MAX_RANGES;
  for (uint32_t i = 0; i < n; i++) {
    range_t *r = &unw.ranges[i];
    uintptr_t hi = atomic_load_explicit(&r->hi, memory_order_acquire);
    if (q < hi && q >= r->lo) return r;  // lo only once hi says it is written
  }
  return NULL;
}

static size_t cache_home(uintptr_t key) {
  uint64_t hi = key >> CACHE_BITS;
  return (size_t)((key ^ ((hi * 0x9E3779B97F4A7C15ULL) >> (64 - CACHE_BITS))) & CACHE_MASK);
}

static inline bool cache_get(_Atomic uint64_t *cache, uintptr_t key, rule_t *r) {
  uint64_t hi = key >> CACHE_BITS;
  size_t home = cache_home(key);
  for (uint64_t d = 0; d < MAX_PROBE; d++) {
    uint64_t w = atomic_load_explicit(&cache[(home + d) & CACHE_MASK], memory_order_relaxed);
    if (w >> RULE_BITS == (hi << 2 | d) && (w & 7) != R_EMPTY) {
      *r = rule_unpack(w);
      return true;
    }
    if (w == 0) return false;
  }
  return false;
}

// Stores into the first empty probe slot, else over the home slot.
static void cache_put(_Atomic uint64_t *cache, uintptr_t key, const rule_t *r) {
  uint64_t packed = rule_pack(r), hi = key >> CACHE_BITS;
  if (packed == 0) return;
  size_t home = cache_home(key);
  uint64_t d = 0;
  for (; d < MAX_PROBE; d++)
    if (atomic_load_explicit(&cache[(home + d) & CACHE_MASK], memory_order_relaxed) == 0) break;
  if (d == MAX_PROBE) d = 0;
  uint64_t w = (hi << 2 | d) << RULE_BITS | packed;
  atomic_store_explicit(&cache[(home + d) & CACHE_MASK], w, memory_order_relaxed);
}

// ---- reading DWARF -----------------------------------------------------------

typedef struct {
  const uint8_t *p, *end;
  bool bad;  // read past end or an unsupported encoding; later reads return 0
} rd_t;

#define DW_EH_PE_omit 0xff

static uint64_t rd_fixed(rd_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return 0;
  }
  uint64_t v = 0;
  memcpy(&v, r->p, n);  // little-endian
  r->p += n;
  return v;
}

static uint64_t rd_uleb(rd_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; !r->bad; shift += 7) {
    if (r->p >= r->end || shift > 63) break;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}

static int64_t rd_sleb(rd_t *r) {
  uint64_t v = 0;
  for (unsigned shift = 0; !r->bad; shift += 7) {
    if (r->p >= r->end || shift > 63) break;
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (shift + 7 < 64 && (b & 0x40)) v |= ~(uint64_t)0 << (shift + 7);
      return (int64_t)v;
    }
  }
  r->bad = true;
  return 0;
}

// Reads a pointer in DW_EH_PE encoding enc. datarel is the base for
// DW_EH_PE_datarel (0: not allowed). Never dereferences DW_EH_PE_indirect:
// the one indirect field (the personality routine) is only skipped, by its
// format alone.
static uintptr_t rd_encoded(rd_t *r, uint8_t enc, uintptr_t datarel) {
  uintptr_t at = (uintptr_t)r->p, v;
  switch (enc & 0x0f) {
    case 0x00: case 0x04: case 0x0c: v = (uintptr_t)rd_fixed(r, 8); break;
    case 0x01: v = (uintptr_t)rd_uleb(r); break;
    case 0x02: v = (uintptr_t)rd_fixed(r, 2); break;
    case 0x03: v = (uintptr_t)rd_fixed(r, 4); break;
    case 0x09: v = (uintptr_t)rd_sleb(r); break;
    case 0x0a: v = (uintptr_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
    case 0x0b: v = (uintptr_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
    default: r->bad = true; return 0;
  }
  switch (enc & 0x70) {
    case 0x00: return v;                // absptr
    case 0x10: return v + at;           // pcrel
    case 0x30:                          // datarel
      if (datarel != 0) return v + datarel;
      break;
  }
  r->bad = true;  // textrel, funcrel, aligned: not produced for x86-64 Linux
  return 0;
}

// ---- CIE and FDE --------------------------------------------------------------

typedef struct {
  rd_t insns;          // initial instructions
  uint64_t caf;        // code alignment factor
  int64_t daf;         // data alignment factor
  uint64_t ra_reg;
  uint8_t fde_enc;
  bool aug_z, signal;
} cie_t;

// Reads a CIE or FDE length; sets *end. Returns false for the terminator.
static bool rd_length(rd_t *r, const uint8_t **end) {
  uint64_t len = rd_fixed(r, 4);
  if (len == 0xffffffff) len = rd_fixed(r, 8);
  if (r->bad || len == 0 || len > (uint64_t)1 << 32) return false;
  *end = r->p + len;
  r->end = *end;
  return true;
}

static bool parse_cie(const uint8_t *at, cie_t *c) {
  rd_t r = {at, at + 12, false};
  const uint8_t *end;
  if (!rd_length(&r, &end) || rd_fixed(&r, 4) != 0) return false;  // id 0: a CIE
  uint64_t version = rd_fixed(&r, 1);
  if (version != 1 && version != 3) return false;
  const uint8_t *aug = r.p;
  while (r.p < r.end && *r.p != 0) r.p++;
  r.p++;
  if (r.p > r.end || (aug[0] != 0 && aug[0] != 'z')) return false;
  c->caf = rd_uleb(&r);
  c->daf = rd_sleb(&r);
  c->ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
  c->fde_enc = 0;  // absptr unless 'R' says otherwise
  c->aug_z = aug[0] == 'z';
  c->signal = false;
  if (c->aug_z) {
    uint64_t alen = rd_uleb(&r);
    if (r.bad || alen > (uint64_t)(r.end - r.p)) return false;
    const uint8_t *data_end = r.p + alen;
    for (const uint8_t *a = aug + 1; *a != 0; a++) {
      if (*a == 'R') c->fde_enc = (uint8_t)rd_fixed(&r, 1);
      else if (*a == 'L') rd_fixed(&r, 1);
      else if (*a == 'P') rd_encoded(&r, (uint8_t)rd_fixed(&r, 1) & 0x0f, 0);  // only skipped
      else if (*a == 'S') c->signal = true;
      else if (*a != 'B') break;  // unknown: the 'z' length lets us skip the rest
    }
    r.p = data_end;
  }
  if (r.bad) return false;
  c->insns = (rd_t){r.p, end, false};
  return true;
}

// The FDE that the module's search table gives for q, or NULL.
static const uint8_t *find_fde(const range_t *m, uintptr_t q) {
  if (m->table == NULL || m->nfde == 0) return NULL;
  uintptr_t base = (uintptr_t)m->eh_hdr;
  size_t lo = 0, hi = m->nfde;
  while (hi - lo > 1) {  // the last entry whose start is <= q
    size_t mid = lo + (hi - lo) / 2;
    int32_t start;
    memcpy(&start, m->table + mid * 8, 4);
    if (base + (uintptr_t)(intptr_t)start <= q) lo = mid;
    else hi = mid;
  }
  int32_t e[2];
  memcpy(e, m->table + lo * 8, 8);
  if (base + (uintptr_t)(intptr_t)e[0] > q) return NULL;
  return (const uint8_t *)(base + (uintptr_t)(intptr_t)e[1]);
}

// ---- the CFA program ------------------------------------------------------------

enum { REG_SAME, REG_OFFSET, REG_UNDEF, REG_OTHER };

typedef struct {
  uint8_t how;   // REG_*
  int64_t off;   // REG_OFFSET: saved at CFA + off
} reg_rule_t;

typedef struct {
  uint64_t cfa_reg;
  int64_t cfa_off;
  bool cfa_expr;
  reg_rule_t rbp, ra;
} cfa_state_t;

static void set_reg(cfa_state_t *s, uint64_t reg, uint64_t ra_reg, uint8_t how, int64_t off) {
  if (reg == DWARF_RBP) s->rbp = (reg_rule_t){how, off};
  else if (reg == ra_reg) s->ra = (reg_rule_t){how, off};
}

static void restore_reg(cfa_state_t *s, const cfa_state_t *init, uint64_t reg, uint64_t ra_reg) {
  if (reg == DWARF_RBP) s->rbp = init != NULL ? init->rbp : (reg_rule_t){REG_SAME, 0};
  else if (reg == ra_reg) s->ra = init != NULL ? init->ra : (reg_rule_t){REG_SAME, 0};
}

static void skip_block(rd_t *r) {
  uint64_t len = rd_uleb(r);
  if (r->bad || len > (uint64_t)(r->end - r->p)) r->bad = true;
  else r->p += len;
}

// Runs CFA instructions from loc while the row they build covers target.
// init is the state after the CIE's instructions (for DW_CFA_restore), NULL
// while running those. Returns false on anything it does not understand.
static bool run_cfa(rd_t *r, const cie_t *c, uintptr_t loc, uintptr_t target, cfa_state_t *s,
                    const cfa_state_t *init) {
  cfa_state_t saved[MAX_REMEMBER];
  unsigned nsaved = 0;
  uint64_t reg, ra = c->ra_reg;
  while (r->p < r->end && !r->bad) {
    uint8_t op = *r->p++;
    uint64_t delta = 0;
    switch (op >> 6) {
      case 1: delta = op & 0x3f; goto advance;  // DW_CFA_advance_loc
      case 2:                                   // DW_CFA_offset
        reg = op & 0x3f;
        set_reg(s, reg, ra, REG_OFFSET, (int64_t)rd_uleb(r) * c->daf);
        continue;
      case 3: restore_reg(s, init, op & 0x3f, ra); continue;  // DW_CFA_restore
    }
    switch (op) {
      case 0x00: break;  // nop
      case 0x01:         // set_loc
        loc = rd_encoded(r, c->fde_enc, 0);
        if (loc > target) return !r->bad;
        break;
      case 0x02: delta = rd_fixed(r, 1); goto advance;
      case 0x03: delta = rd_fixed(r, 2); goto advance;
      case 0x04: delta = rd_fixed(r, 4); goto advance;
      case 0x05:  // offset_extended
        reg = rd_uleb(r);
        set_reg(s, reg, ra, REG_OFFSET, (int64_t)rd_uleb(r) * c->daf);
        break;
      case 0x06: restore_reg(s, init, rd_uleb(r), ra); break;    // restore_extended
      case 0x07: set_reg(s, rd_uleb(r), ra, REG_UNDEF, 0); break;  // undefined
      case 0x08: set_reg(s, rd_uleb(r), ra, REG_SAME, 0); break;   // same_value
      case 0x09:                                                  // register
        reg = rd_uleb(r);
        rd_uleb(r);
        set_reg(s, reg, ra, REG_OTHER, 0);
        break;
      case 0x0a:  // remember_state
        if (nsaved == MAX_REMEMBER) return false;
        saved[nsaved++] = *s;
        break;
      case 0x0b:  // restore_state: the CFA comes back too, as in libgcc
        if (nsaved == 0) return false;
        *s = saved[--nsaved];
        break;
      case 0x0c:  // def_cfa
        s->cfa_reg = rd_uleb(r);
        s->cfa_off = (int64_t)rd_uleb(r);
        s->cfa_expr = false;
        break;
      case 0x0d: s->cfa_reg = rd_uleb(r), s->cfa_expr = false; break;  // def_cfa_register
      case 0x0e: s->cfa_off = (int64_t)rd_uleb(r); break;             // def_cfa_offset
      case 0x0f: skip_block(r), s->cfa_expr = true; break;            // def_cfa_expression
      case 0x10:                                                      // expression
      case 0x16:                                                      // val_expression
        reg = rd_uleb(r);
        skip_block(r);
        set_reg(s, reg, ra, REG_OTHER, 0);
        break;
      case 0x11:  // offset_extended_sf
        reg = rd_uleb(r);
        set_reg(s, reg, ra, REG_OFFSET, rd_sleb(r) * c->daf);
        break;
      case 0x12:  // def_cfa_sf
        s->cfa_reg = rd_uleb(r);
        s->cfa_off = rd_sleb(r) * c->daf;
        s->cfa_expr = false;
        break;
      case 0x13: s->cfa_off = rd_sleb(r) * c->daf; break;  // def_cfa_offset_sf
      case 0x14:                                           // val_offset
        reg = rd_uleb(r);
        rd_uleb(r);
        set_reg(s, reg, ra, REG_OTHER, 0);
        break;
      case 0x15:  // val_offset_sf
        reg = rd_uleb(r);
        rd_sleb(r);
        set_reg(s, reg, ra, REG_OTHER, 0);
        break;
      case 0x2e: rd_uleb(r); break;  // GNU_args_size
      case 0x2f:                     // GNU_negative_offset_extended
        reg = rd_uleb(r);
        set_reg(s, reg, ra, REG_OFFSET, -(int64_t)rd_uleb(r) * c->daf);
        break;
      default: return false;
    }
    continue;
  advance:
    loc += delta * c->caf;
    if (loc > target) return !r->bad;  // the next row starts past target
  }
  return !r->bad;
}

// Turns the row for a PC into a rule (step 5 of the file comment).
static rule_t to_rule(const cfa_state_t *s, const cie_t *c) {
  rule_t fp = {.kind = R_FP};
  if (s->ra.how == REG_UNDEF) return (rule_t){.kind = R_STOP};
  if (c->signal) return (rule_t){.kind = R_SIGNAL};
  if (s->cfa_expr || (s->cfa_reg != DWARF_RSP && s->cfa_reg != DWARF_RBP)) return fp;
  if (s->cfa_off < 8 || s->cfa_off > UINT32_MAX) return fp;
  if (s->ra.how != REG_OFFSET || s->ra.off != -8) return fp;
  rule_t r = {.kind = R_CFA, .cfa_rbp = s->cfa_reg == DWARF_RBP, .cfa_off = (uint32_t)s->cfa_off};
  if (s->rbp.how == REG_OFFSET) {
    if (s->rbp.off > -8 || s->rbp.off < -(int64_t)UINT32_MAX) return fp;
    r.rbp_saved = true;
    r.rbp_off = (uint32_t)-s->rbp.off;
  } else if (s->rbp.how != REG_SAME) {
    return fp;
  }
  return r;
}

// The rule for address q from the FDE covering it. Returns false if no FDE does.
static bool fde_rule(const range_t *m, uintptr_t q, rule_t *out) {
  const uint8_t *fde = find_fde(m, q), *end;
  if (fde == NULL) return false;
  rd_t r = {fde, fde + 12, false};
  if (!rd_length(&r, &end)) return false;
  const uint8_t *id_at = r.p;
  uint32_t cie_off = (uint32_t)rd_fixed(&r, 4);
  cie_t c;
  if (r.bad || cie_off == 0 || !parse_cie(id_at - cie_off, &c)) return false;
  uintptr_t begin = rd_encoded(&r, c.fde_enc, 0);
  uintptr_t len = rd_encoded(&r, c.fde_enc & 0x0f, 0);
  if (c.aug_z) skip_block(&r);
  if (r.bad || q < begin || q - begin >= len) return false;
  *out = (rule_t){.kind = R_FP};  // unless both CFA programs run cleanly
  cfa_state_t init = {.cfa_reg = DWARF_RSP, .cfa_off = 8, .ra = {REG_SAME, 0}};
  rd_t ci = c.insns;
  if (c.ra_reg != DWARF_RA || !run_cfa(&ci, &c, 0, UINTPTR_MAX, &init, NULL)) return true;
  cfa_state_t s = init;
  if (run_cfa(&r, &c, begin, q, &s, &init)) *out = to_rule(&s, &c);
  return true;
}

// ---- modules --------------------------------------------------------------------

static void parse_eh_hdr(range_t *m, const uint8_t *hdr) {
  m->eh_hdr = hdr;
  m->table = NULL;
  m->nfde = 0;
  if (hdr == NULL || hdr[0] != 1) return;
  uint8_t ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
  rd_t r = {hdr + 4, hdr + 4 + 16, false};
  if (ptr_enc != DW_EH_PE_omit) rd_encoded(&r, ptr_enc, (uintptr_t)hdr);
  if (count_enc == DW_EH_PE_omit) return;
  uintptr_t n = rd_encoded(&r, count_enc, (uintptr_t)hdr);
  // The table Debian's (and every current) linker writes: datarel | sdata4.
  if (r.bad || table_enc != 0x3b || n == 0 || n > UINT32_MAX) return;
  m->table = r.p;
  m->nfde = (uint32_t)n;
}

// Claims a slot and publishes [lo, hi) with the module's unwind tables.
// Concurrent adders may duplicate a range; lookups take the first.
static const range_t *add_range(uintptr_t lo, uintptr_t hi, const uint8_t *eh_hdr) {
  uint32_t i = atomic_fetch_add_explicit(&unw.nranges, 1, memory_order_relaxed);
  if (i >= MAX_RANGES) {
    atomic_store_explicit(&unw.nranges, MAX_RANGES, memory_order_relaxed);
    return NULL;
  }
  range_t *m = &unw.ranges[i];
  m->lo = lo;
  parse_eh_hdr(m, eh_hdr);
  atomic_store_explicit(&m->hi, hi, memory_order_release);
  return m;
}

static bool known(uintptr_t lo, uintptr_t hi, const uint8_t *eh_hdr) {
  const range_t *m = range_of(lo);
  return m != NULL && m->lo == lo && atomic_load_explicit(&m->hi, memory_order_relaxed) == hi &&
         m->eh_hdr == eh_hdr;
}

// Adds the executable PT_LOAD segments of one module; returns the range
// holding q, if any.
static const range_t *add_module(uintptr_t base, const ElfW(Phdr) *ph, size_t n, uintptr_t q) {
  const uint8_t *eh_hdr = NULL;
  for (size_t i = 0; i < n; i++)
    if (ph[i].p_type == PT_GNU_EH_FRAME) eh_hdr = (const uint8_t *)(base + ph[i].p_vaddr);
  const range_t *hit = NULL;
  for (size_t i = 0; i < n; i++) {
    if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X)) continue;
    uintptr_t lo = base + ph[i].p_vaddr, hi = lo + ph[i].p_memsz;
    const range_t *m = known(lo, hi, eh_hdr) ? range_of(lo) : add_range(lo, hi, eh_hdr);
    if (m != NULL && q >= lo && q < hi) hit = m;
  }
  return hit;
}

static int add_phdr_info(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size, (void)arg;
  add_module(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, 0);
  return 0;
}

#ifdef HAVE_DL_FIND_OBJECT
// The module of a PC found by _dl_find_object, from its ELF header in
// memory (the first PT_LOAD maps it at dlfo_map_start in every object
// ld.so loads). An object without a readable header is one range.
static const range_t *add_found(const struct dl_find_object *fo, uintptr_t q) {
  uintptr_t start = (uintptr_t)fo->dlfo_map_start, end = (uintptr_t)fo->dlfo_map_end;
  const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)start;
  if (end - start >= sizeof *eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
      eh->e_phentsize == sizeof(ElfW(Phdr)) && eh->e_phoff < end - start &&
      eh->e_phnum <= (end - start - eh->e_phoff) / sizeof(ElfW(Phdr)))
    return add_module(fo->dlfo_link_map->l_addr, (const ElfW(Phdr) *)(start + eh->e_phoff),
                      eh->e_phnum, q);
  return add_range(start, end, fo->dlfo_eh_frame);
}
#endif

#ifdef HAVE_DL_FIND_OBJECT
// Only where ld.so loaded the program (os/loader.c). In a fully static
// program _dl_find_object reads tables that libc's start-up
// (_dl_non_dynamic_init) fills, and that start-up mallocs before it has:
// walking that malloc's stack (the leak check records every allocation, the
// profiler at GORT_MEMPROFILERATE=1 too) crashed inside _dl_find_object.
// Once ready, it still answers worse than the program headers: the text
// segment without its ELF header, and no eh_frame (glibc 2.36), so each
// walk stopped at its first frame. A static program's code never moves, and
// dl_iterate_phdr's ranges serve alone.
static bool dlfo_usable(void) {
  static _Atomic int usable;  // 0 unknown, 1 yes, -1 no
  int u = atomic_load_explicit(&usable, memory_order_relaxed);
  if (gort_unlikely(u == 0)) {
    u = gort__os_loaded_by_ld_so() ? 1 : -1;
    atomic_store_explicit(&usable, u, memory_order_relaxed);
  }
  return u > 0;
}
#endif

// The executable range holding q, checked against the loader's current
// view where glibc offers a lock-free one; NULL if q is not code.
static const range_t *module_of(uintptr_t q) {
  range_t *m = range_of(q);
#ifdef HAVE_DL_FIND_OBJECT
  if (gort_unlikely(!dlfo_usable())) return m;
  struct dl_find_object fo;
  if (_dl_find_object((void *)q, &fo) != 0) return NULL;
  if (m != NULL && m->eh_hdr == fo.dlfo_eh_frame) return m;
  if (m != NULL) atomic_store_explicit(&m->hi, 0, memory_order_release);  // retired
  return add_found(&fo, q);
#endif
  return m;
}

#ifdef HAVE_DL_FIND_OBJECT
// ---- fully static programs ------------------------------------------------------
//
// A fully static program has no .eh_frame_hdr: GCC asks the linker for one
// only in dynamic links (libgcc's unwinder finds a static program's
// .eh_frame through crtbeginT's registration instead), so every walk
// stopped at its first frame where frame pointers were omitted. Its
// search table is built here, once, from .eh_frame itself, found through
// the executable's section headers: (start, FDE) pairs as sdata4 offsets
// from .eh_frame's start, sorted, the layout find_fde reads.

static _Atomic bool libc_started;  // libc's start-up is done (see after_libc_start)

// .eh_frame of the executable, in memory: its address and size.
static bool exe_eh_frame(uintptr_t bias, uintptr_t *at, size_t *size) {
  size_t fsize;
  int err;
  const uint8_t *f = gort__os_map_file("/proc/self/exe", &fsize, &err);
  if (f == NULL) return false;
  const Elf64_Shdr *sh = gort__elf_section(f, fsize, ".eh_frame");
  bool found = sh != NULL && sh->sh_addr != 0 && sh->sh_size != 0;
  if (found) *at = bias + sh->sh_addr, *size = sh->sh_size;
  gort__os_unmap_file((void *)f, fsize);
  return found;
}

// One pass over .eh_frame: counts the FDEs, and stores them where out is set.
static size_t eh_frame_fdes(uintptr_t eh, size_t size, int32_t *out) {
  size_t n = 0;
  const uint8_t *p = (const uint8_t *)eh, *stop = p + size;
  while (p + 8 <= stop) {
    rd_t r = {p, stop, false};
    const uint8_t *end;
    if (!rd_length(&r, &end) || end > stop) break;
    const uint8_t *id_at = r.p;
    uint32_t cie_off = (uint32_t)rd_fixed(&r, 4);
    cie_t c;
    if (!r.bad && cie_off != 0 && (uintptr_t)(id_at - (const uint8_t *)eh) >= cie_off &&
        parse_cie(id_at - cie_off, &c)) {
      uintptr_t begin = rd_encoded(&r, c.fde_enc, 0);
      intptr_t off = (intptr_t)(begin - eh), at = (intptr_t)((uintptr_t)p - eh);
      if (!r.bad && begin != 0 && off >= INT32_MIN && off <= INT32_MAX && at <= INT32_MAX) {
        if (out != NULL) out[2 * n] = (int32_t)off, out[2 * n + 1] = (int32_t)at;
        n++;
      }
    }
    p = end;
  }
  return n;
}

static int fde_entry_cmp(const void *a, const void *b) {
  int32_t x, y;
  memcpy(&x, a, 4);
  memcpy(&y, b, 4);
  return x < y ? -1 : x > y;
}

// Claims a slot for [lo, hi) with a table built here (see add_range).
// The same range untabled, if the snapshot has it, is retired after the
// new one is published: range_of takes the first live match, so a walk
// meanwhile finds one or the other, never neither.
static void add_range_table(uintptr_t lo, uintptr_t hi, uintptr_t eh, const int32_t *table, uint32_t n) {
  uint32_t i = atomic_fetch_add_explicit(&unw.nranges, 1, memory_order_relaxed);
  if (i >= MAX_RANGES) {
    atomic_store_explicit(&unw.nranges, MAX_RANGES, memory_order_relaxed);
    return;
  }
  range_t *m = &unw.ranges[i];
  m->lo = lo;
  m->eh_hdr = (const uint8_t *)eh;  // the offsets' base
  m->table = (const uint8_t *)table;
  m->nfde = n;
  atomic_store_explicit(&m->hi, hi, memory_order_release);
  for (uint32_t k = 0; k < i; k++)
    if (unw.ranges[k].lo == lo && unw.ranges[k].table == NULL)
      atomic_store_explicit(&unw.ranges[k].hi, 0, memory_order_release);
}

static int add_static_info(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  bool *main_done = arg;
  const ElfW(Phdr) *ph = info->dlpi_phdr;
  bool has_hdr = false;
  for (size_t i = 0; i < info->dlpi_phnum; i++) has_hdr |= ph[i].p_type == PT_GNU_EH_FRAME;
  // The program itself comes first, and is the one without a header (the
  // vDSO has its own).
  if (*main_done || has_hdr) {
    add_module(info->dlpi_addr, ph, info->dlpi_phnum, 0);
    *main_done = true;
    return 0;
  }
  *main_done = true;
  uintptr_t eh;
  size_t ehsize, n;
  int32_t *table = NULL;
  if (exe_eh_frame(info->dlpi_addr, &eh, &ehsize) && (n = eh_frame_fdes(eh, ehsize, NULL)) != 0 && n <= UINT32_MAX) {
    int err;
    table = gort__os_reserve(0, GORT_ALIGN_UP(n * 8, (size_t)4096), 4096, &err);
    if (table != NULL) {
      n = eh_frame_fdes(eh, ehsize, table);
      gort__heapsort(table, n, 8, fde_entry_cmp);
    }
  }
  for (size_t i = 0; i < info->dlpi_phnum; i++) {
    if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph[i].p_vaddr;
    if (table != NULL) add_range_table(lo, lo + ph[i].p_memsz, eh, table, (uint32_t)n);
    else if (range_of(lo) == NULL) add_range(lo, lo + ph[i].p_memsz, NULL);
  }
  return 0;
}

// Once libc has started and the unwinder is set up, whichever comes last.
static void add_static_program(void) {
  static _Atomic bool done;
  if (dlfo_usable() || !atomic_load(&libc_started) || atomic_load(&unw.cache) == NULL || atomic_exchange(&done, true))
    return;
  bool main_done = false;
  dl_iterate_phdr(add_static_info, &main_done);
  // Rules a walk cached for the program's code before its table existed
  // (frame-pointer guesses) would stay: forget every rule (only misses).
  _Atomic uint64_t *cache = atomic_load_explicit(&unw.cache, memory_order_acquire);
  // (Only words in use are written: the untouched pages stay unmapped.)
  for (size_t i = 0; i < CACHE_SIZE; i++)
    if (atomic_load_explicit(&cache[i], memory_order_relaxed) != 0)
      atomic_store_explicit(&cache[i], 0, memory_order_relaxed);
}
#endif

// glibc's __restore_rt: mov $15, %rax (rt_sigreturn); syscall.
static bool is_sigreturn(const range_t *m, uintptr_t pc) {
  static const uint8_t code[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  uintptr_t hi = atomic_load_explicit(&m->hi, memory_order_relaxed);
  return pc >= m->lo && pc + sizeof code <= hi && memcmp((const void *)pc, code, sizeof code) == 0;
}

// A cache miss: computes the rule for the instruction at q and caches it.
// Returns false if q is in no known executable segment.
static GORT_NOINLINE bool rule_miss(_Atomic uint64_t *cache, uintptr_t q, bool exact, rule_t *r) {
  const range_t *m = module_of(q);
  if (m == NULL) return false;
  if (!fde_rule(m, q, r))  // no CFI here: a signal trampoline or assembly
    *r = (rule_t){.kind = !exact && is_sigreturn(m, q + 1) ? R_SIGNAL : R_FP};
  if (cache != NULL && (q + 1) >> KEY_BITS == 0) cache_put(cache, q + 1, r);
  return true;
}

// The rule for the instruction at q (pc - 1 for a return address). Returns
// false if q is in no known executable segment. Key k holds the rule of
// k - 1, whether it came as an exact pc or a return address. (A key over
// 2^48 never matches: its high bits do not fit in a word.)
static inline bool rule_for(_Atomic uint64_t *cache, uintptr_t q, bool exact, rule_t *r) {
  if (gort_likely(cache != NULL) && cache_get(cache, q + 1, r)) return true;
  return rule_miss(cache, q, exact, r);
}

// ---- the walk ---------------------------------------------------------------------

// The thread's root (gort__unwind_set_root), or 0.
static GORT_TLS uintptr_t thread_root;

void gort__unwind_set_root(uintptr_t root) { thread_root = root; }

// The highest address this stack's frames may reach (step 6). Under a
// thread's root, the root itself: the root's frame has its CFA at root +
// 16, so the step to it (from its callee, whose CFA is at most root) is
// taken and the step past it is not.
GORT_INLINE uintptr_t stack_top(uintptr_t sp) {
  uintptr_t root = thread_root;
  if (root != 0 && sp < root && root - sp <= MAX_THREAD_STACK) return root;
  uintptr_t tp;
  __asm__("movq %%fs:0, %0" : "=r"(tp));  // the TCB points to itself
  if (sp < tp && tp - sp <= MAX_THREAD_STACK) return tp;
  uintptr_t end = atomic_load_explicit(&unw.main_stack_top, memory_order_relaxed);
  if (sp < end && end - sp <= MAX_THREAD_STACK) return end;
  return sp > UINTPTR_MAX - OTHER_STACK_SPAN ? UINTPTR_MAX : sp + OTHER_STACK_SPAN;
}

static uintptr_t load(uintptr_t addr) {
  uintptr_t v;
  memcpy(&v, (const void *)addr, sizeof v);
  return v;
}

static bool frame_ok(uintptr_t cfa, uintptr_t sp, uintptr_t top) {
  return (cfa & 7) == 0 && cfa > sp && cfa <= top;
}

// Entered from the stub with the caller's pc, rsp and rbp (see the top).
uint32_t gort__unwind_walk(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp,
                           uintptr_t bp) {
  uintptr_t top = stack_top(sp);
  _Atomic uint64_t *cache = atomic_load_explicit(&unw.cache, memory_order_acquire);
  uint32_t n = 0;
  bool exact = false;  // pc was interrupted, not a return address
  while (n < max && pc != 0) {
    rule_t r;
    if (!rule_for(cache, exact ? pc : pc - 1, exact, &r)) break;
    pcs[n++] = pc;
    uintptr_t cfa, next_pc, next_bp = bp;
    if (r.kind == R_CFA) {
      cfa = (r.cfa_rbp ? bp : sp) + r.cfa_off;
      if (!frame_ok(cfa, sp, top)) break;
      if (r.rbp_saved) {
        if (r.rbp_off > cfa - sp) break;  // the slot must lie in this frame
        next_bp = load(cfa - r.rbp_off);
      }
      next_pc = load(cfa - 8);
      exact = false;
    } else if (r.kind == R_FP) {
      cfa = bp + 16;
      if (bp < sp || !frame_ok(cfa, sp, top)) break;
      next_pc = load(bp + 8);
      next_bp = load(bp);
      exact = false;
    } else if (r.kind == R_SIGNAL) {
      // sp is the ucontext_t: the handler's return popped the frame's pretcode.
      const size_t gregs = offsetof(ucontext_t, uc_mcontext.gregs);
      if (sp + gregs + NGREG * sizeof(greg_t) > top) break;
      next_pc = load(sp + gregs + REG_RIP * sizeof(greg_t));
      next_bp = load(sp + gregs + REG_RBP * sizeof(greg_t));
      cfa = load(sp + gregs + REG_RSP * sizeof(greg_t));
      if (cfa <= sp || cfa > top) break;  // another stack (sigaltstack): not followed
      exact = true;
    } else {
      break;  // R_STOP: the outermost frame
    }
    pc = next_pc, sp = cfa, bp = next_bp;
  }
  return n;
}

// ---- the memoized walk (unwind.h, unwind_memo_t) ----------------------------------

// Frame k of buffer b of the last walk matches state (pc, sp, bp, exact),
// and every word that walk read from frame k on is still in place.
static bool memo_valid(const unwind_memo_t *m, int b, uint32_t k, uintptr_t pc, uintptr_t bp, bool exact) {
  const unwind_memo_frame_t *f = m->f[b];
  if (f[k].pc != pc || f[k].exact != exact || (f[k].bp_read && f[k].bp != bp)) return false;
  // A saved rbp matters only where the frame above reads it (a frame
  // that keeps a loop counter in rbp saves a new value every call).
  bool same = true;
  uint32_t n = m->n[b];
  for (uint32_t j = k; j < n; j++) {
    if (f[j].at[0] != 0) same &= load(f[j].at[0]) == f[j].word[0];
    if (f[j].at[1] != 0 && j + 1 < n && f[j + 1].bp_read) same &= load(f[j].at[1]) == f[j].word[1];
  }
  return same;
}

// bp_read of frames [0, n): whether a frame's incoming bp decides anything,
// itself or through the frames above it until one reloads bp (later: the
// flag of frame n).
static void memo_mark_bp(unwind_memo_frame_t *f, uint32_t n, bool later) {
  for (uint32_t j = n; j-- > 0;) {
    f[j].bp_read = f[j].bp_read || (!f[j].reloads_bp && later);
    later = f[j].bp_read;
  }
}

// The walk of gort__unwind_walk_memo with the memo held (busy). Sets
// *kept when the memo's current buffer describes this walk's frames
// [0, n) (it may hold more, past max), so that they can be kept.
static uint32_t walk_memo_held(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                               unwind_memo_t *m, bool *kept) {
  m->reused = max;
  *kept = false;
  int old = m->cur, nb = !old;
  const unwind_memo_frame_t *of = m->f[old];
  unwind_memo_frame_t *nf = m->f[nb];
  uint32_t on = m->n[old], c = 0;
  bool use_old = on > 0 && m->max[old] == max;
  uintptr_t top = stack_top(sp);
  _Atomic uint64_t *cache = atomic_load_explicit(&unw.cache, memory_order_acquire);
  uint32_t n = 0;
  bool exact = false, memo_ok = true, complete = true;
  while (pc != 0) {
    if (n == max) {
      complete = false;
      break;
    }
    // The last walk's frame at this sp, if any (sps grow along both walks).
    while (use_old && c < on && of[c].sp < sp) c++;
    if (use_old && c < on && of[c].sp == sp && (m->complete[old] || n + (on - c) >= max) &&
        memo_valid(m, old, c, pc, bp, exact)) {
      uint32_t k = on - c;
      if (k > max - n) k = max - n;
      for (uint32_t j = 0; j < k; j++) pcs[n + j] = of[c + j].pc;
      m->reused = n;
      // The new memo: this walk's frames, then the last one's from c on
      // (the last one itself when the stacks are the same from frame 0).
      if (n == 0) {
        *kept = true;
      } else if (memo_ok && n + (on - c) <= UNWIND_MEMO_FRAMES) {
        for (uint32_t j = c; j < on; j++) nf[n + j - c] = of[j];
        memo_mark_bp(nf, n, of[c].bp_read);
        m->n[nb] = n + (on - c);
        m->max[nb] = max;
        m->complete[nb] = m->complete[old];
        m->cur = (uint8_t)nb;
        *kept = true;
      }
      return n + k;
    }
    rule_t r;
    if (!rule_for(cache, exact ? pc : pc - 1, exact, &r)) break;
    pcs[n] = pc;
    unwind_memo_frame_t *f = n < UNWIND_MEMO_FRAMES ? &nf[n] : NULL;
    if (f == NULL) memo_ok = false;
    if (f != NULL) *f = (unwind_memo_frame_t){.pc = pc, .sp = sp, .bp = bp, .exact = exact};
    n++;
    uintptr_t cfa, next_pc, next_bp = bp;
    // Whether the rule reads bp is known before any check that may end
    // the walk: a walk that stopped at a bad CFA made of bp must not be
    // reused for a bp that would pass.
    bool reads_bp = r.kind == R_FP || (r.kind == R_CFA && r.cfa_rbp);
    bool reloads_bp = r.kind == R_FP || (r.kind == R_CFA && r.rbp_saved);
    if (f != NULL) f->bp_read = reads_bp, f->reloads_bp = reloads_bp;
    if (r.kind == R_CFA) {
      cfa = (r.cfa_rbp ? bp : sp) + r.cfa_off;
      if (!frame_ok(cfa, sp, top)) break;
      if (r.rbp_saved) {
        if (r.rbp_off > cfa - sp) break;
        next_bp = load(cfa - r.rbp_off);
        if (f != NULL) f->at[1] = cfa - r.rbp_off, f->word[1] = next_bp;
      }
      next_pc = load(cfa - 8);
      if (f != NULL) f->at[0] = cfa - 8, f->word[0] = next_pc;
      exact = false;
    } else if (r.kind == R_FP) {
      cfa = bp + 16;
      if (bp < sp || !frame_ok(cfa, sp, top)) break;
      next_pc = load(bp + 8);
      next_bp = load(bp);
      if (f != NULL) f->at[0] = bp + 8, f->word[0] = next_pc, f->at[1] = bp, f->word[1] = next_bp;
      exact = false;
    } else {
      // Signal frames are not memoized (the interrupted state is no
      // function of the frame's words alone); R_STOP ends the walk.
      if (r.kind == R_SIGNAL) memo_ok = false;
      break;
    }
    pc = next_pc, sp = cfa, bp = next_bp;
  }
  if (memo_ok && n <= UNWIND_MEMO_FRAMES) {
    memo_mark_bp(nf, n, false);
    m->n[nb] = n;
    m->max[nb] = max;
    m->complete[nb] = complete;
    m->cur = (uint8_t)nb;
    *kept = true;
  }
  return n;
}

uint32_t gort__unwind_walk_memo(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                                unwind_memo_t *m);

uint32_t gort__unwind_walk_memo(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                                unwind_memo_t *m) {
  if (m->busy) {
    m->reused = max;
    return gort__unwind_walk(pcs, max, pc, sp, bp);
  }
  m->busy = 1;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  bool kept;
  uint32_t n = walk_memo_held(pcs, max, pc, sp, bp, m, &kept);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  m->busy = 0;
  return n;
}

// ---- kept walks (unwind.h, gort__unwind_capture_tagged) ----------------------------

// The kept walk that a walk from (pc, sp, bp) with this max would repeat
// word for word, or NULL. Frame 0's state and every word the kept walk
// read decide the whole walk (the argument of memo_valid, from frame 0),
// so a match needs no rule and no copy. The loads are independent and
// their differences are or'ed: one branch per kept walk.
static inline bool kept_match(const unwind_kept_t *e, uint32_t max, uintptr_t pc, uintptr_t sp,
                              uintptr_t bp) {
  // Every kept walk starts in the same function (the allocation site's),
  // often at the same sp: the first word, the return address into its
  // caller, tells most of them apart with one load.
  if (e->pc != pc || e->sp != sp || e->tag == 0 || load(e->chk[0].at) != e->chk[0].word) return false;
  uintptr_t diff = (uintptr_t)(e->max ^ max) | ((e->bp ^ bp) & e->bp_mask);
  for (uint32_t j = 1; j < e->nchk; j++) diff |= load(e->chk[j].at) ^ e->chk[j].word;
  return diff == 0;
}

// Slot i is the one found last (m->last and its copy, m->hot).
static void kept_set_last(unwind_memo_t *m, uint32_t i) {
  const unwind_kept_t *e = &m->kept[i];
  m->last = i;
  m->hot = (unwind_kept_hot_t){.pc = e->pc, .sp = e->sp, .bp = e->bp, .bp_mask = e->bp_mask,
                               .chk = e->chk, .max = e->max, .tag = e->tag};
}

static unwind_kept_t *kept_find(unwind_memo_t *m, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp) {
  // The last one found first: a loop that allocates from one stack finds
  // it at once, whatever else the slots hold (the thread's first stacks,
  // from its start-up, take the first slots).
  unwind_kept_t *e = &m->kept[m->last];
  if (kept_match(e, max, pc, sp, bp)) {
    if (m->hot.pc == 0) kept_set_last(m, m->last);
    return e;
  }
  for (uint32_t i = 0; i < UNWIND_MEMO_KEPT; i++) {
    e = &m->kept[i];
    if (i != m->last && kept_match(e, max, pc, sp, bp)) {
      kept_set_last(m, i);
      return e;
    }
  }
  return NULL;
}

// Writes the memo's current buffer, frames [0, n) of a walk with this
// max, into a kept slot, untagged; returns the slot. The slot is random:
// a program that cycles through more stacks than there are slots would
// evict each one just before its turn under LRU, and hit none.
static int kept_build(unwind_memo_t *m, uint32_t n, uint32_t max) {
  int v = -1;
  for (int i = 0; i < UNWIND_MEMO_KEPT && v < 0; i++)
    if (m->kept[i].tag == 0) v = i;
  if (v < 0) {
    uint32_t x = m->rng ? m->rng : 0x9E3779B9u;  // xorshift32
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    m->rng = x;
    v = (int)(x % UNWIND_MEMO_KEPT);
  }
  unwind_kept_t *e = &m->kept[v];
  const unwind_memo_frame_t *f = m->f[m->cur];
  if ((uint32_t)v == m->last) m->hot.pc = 0;  // its copy goes with it
  e->tag = 0;
  e->pc = f[0].pc, e->sp = f[0].sp, e->bp = f[0].bp, e->bp_mask = f[0].bp_read ? ~(uintptr_t)0 : 0;
  e->n = n, e->max = max;
  uint32_t k = 0;
  for (uint32_t j = 0; j < n; j++) {
    if (f[j].at[0] != 0) e->chk[k++] = (unwind_check_t){f[j].at[0], f[j].word[0]};
    if (f[j].at[1] != 0 && j + 1 < n && f[j + 1].bp_read) e->chk[k++] = (unwind_check_t){f[j].at[1], f[j].word[1]};
  }
  // gort__unwind_kept_last checks two at a time: pad to an even count, at
  // least 2 (room: at most 2 per frame less one, n <= UNWIND_MEMO_FRAMES).
  while (k < 2 || k % 2 != 0)
    e->chk[k] = (unwind_check_t){(uintptr_t)&e->chk[k].word, (uintptr_t)&e->chk[k].word}, k++;
  e->chk[k] = (unwind_check_t){0, 0};  // the end, for gort__unwind_kept_last
  e->nchk = k;
  return v;
}

// A walk that found no kept one to repeat (or could not take the memo).
static GORT_NOINLINE uint32_t walk_tagged_miss(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp,
                                               uintptr_t bp, unwind_tag_t *t) {
  unwind_memo_t *m = t->m;
  t->tag = 0, t->held = 0, t->slot = -1;
  if (m->busy) {  // a signal handler's walk, inside the thread's own
    m->reused = max;
    return gort__unwind_walk(pcs, max, pc, sp, bp);
  }
  m->busy = 1;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  bool kept;
  uint32_t n = walk_memo_held(pcs, max, pc, sp, bp, m, &kept);
  if (kept && n > 0) t->slot = (int8_t)kept_build(m, n, max);
  t->held = 1;  // until gort__unwind_memo_keep
  return n;
}

// Entered from the stub (as gort__unwind_walk_memo). The hit is the
// common case and stays small; the walk itself is outlined.
uint32_t gort__unwind_walk_tagged(uintptr_t *pcs, uint32_t max, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                                  unwind_tag_t *t) {
  unwind_memo_t *m = t->m;
  if (gort_likely(!m->busy)) {
    // Held while reading the kept walks: a signal handler's walk could
    // otherwise rewrite the one being read.
    m->busy = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    unwind_kept_t *e = kept_find(m, max, pc, sp, bp);
    if (e != NULL) t->tag = e->tag, t->held = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    m->busy = 0;
    if (e != NULL) return e->n;
  }
  return walk_tagged_miss(pcs, max, pc, sp, bp, t);
}

void gort__unwind_memo_keep(unwind_tag_t *t, uint32_t tag) {
  if (!t->held) return;
  if (t->slot >= 0) {
    t->m->kept[t->slot].tag = tag;
    // The newest is the one a repeat will look for first.
    if (tag != 0) kept_set_last(t->m, (uint32_t)t->slot);
  }
  t->held = 0;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  t->m->busy = 0;
}

void gort__unwind_memo_forget(unwind_memo_t *m) {
  m->hot.pc = 0;
  for (int i = 0; i < UNWIND_MEMO_KEPT; i++) m->kept[i].tag = 0;
}

// Step 1: no frame of its own; tail-jumps into the walk.
__asm__(".pushsection .text.gort__unwind_capture,\"ax\",@progbits\n"
        ".globl gort__unwind_capture\n"
        ".hidden gort__unwind_capture\n"
        ".type gort__unwind_capture, @function\n"
        ".p2align 4\n"
        "gort__unwind_capture:\n"
        "  .cfi_startproc\n"
        "  movq (%rsp), %rdx\n"   // pc: our return address, inside the caller
        "  leaq 8(%rsp), %rcx\n"  // sp: the caller's rsp once we return
        "  movq %rbp, %r8\n"      // bp: the caller's rbp
        "  jmp gort__unwind_walk\n"
        "  .cfi_endproc\n"
        ".size gort__unwind_capture, .-gort__unwind_capture\n"
        ".popsection\n");

// The same stub for the memoized walk (m moves from the 3rd argument to
// the 6th).
__asm__(".pushsection .text.gort__unwind_capture_memo,\"ax\",@progbits\n"
        ".globl gort__unwind_capture_memo\n"
        ".hidden gort__unwind_capture_memo\n"
        ".type gort__unwind_capture_memo, @function\n"
        ".p2align 4\n"
        "gort__unwind_capture_memo:\n"
        "  .cfi_startproc\n"
        "  movq %rdx, %r9\n"      // m
        "  movq (%rsp), %rdx\n"   // pc: our return address, inside the caller
        "  leaq 8(%rsp), %rcx\n"  // sp: the caller's rsp once we return
        "  movq %rbp, %r8\n"      // bp: the caller's rbp
        "  jmp gort__unwind_walk_memo\n"
        "  .cfi_endproc\n"
        ".size gort__unwind_capture_memo, .-gort__unwind_capture_memo\n"
        ".popsection\n");

// And for the tagged walk (t moves likewise).
__asm__(".pushsection .text.gort__unwind_capture_tagged,\"ax\",@progbits\n"
        ".globl gort__unwind_capture_tagged\n"
        ".hidden gort__unwind_capture_tagged\n"
        ".type gort__unwind_capture_tagged, @function\n"
        ".p2align 4\n"
        "gort__unwind_capture_tagged:\n"
        "  .cfi_startproc\n"
        "  movq %rdx, %r9\n"      // t
        "  movq (%rsp), %rdx\n"   // pc: our return address, inside the caller
        "  leaq 8(%rsp), %rcx\n"  // sp: the caller's rsp once we return
        "  movq %rbp, %r8\n"      // bp: the caller's rbp
        "  jmp gort__unwind_walk_tagged\n"
        "  .cfi_endproc\n"
        ".size gort__unwind_capture_tagged, .-gort__unwind_capture_tagged\n"
        ".popsection\n");

void gort__unwind_init(void) {
  if (atomic_load_explicit(&unw.cache, memory_order_acquire) == NULL) {
    int err;
    size_t size = CACHE_SIZE * sizeof(uint64_t);
    _Atomic uint64_t *c = gort__os_reserve(0, size, 4096, &err), *none = NULL;
    if (c != NULL &&
        !atomic_compare_exchange_strong_explicit(&unw.cache, &none, c, memory_order_release,
                                                 memory_order_acquire))
      gort__os_unmap(c, size);
  }
  atomic_store_explicit(&unw.main_stack_top, getauxval(AT_EXECFN), memory_order_relaxed);
  dl_iterate_phdr(add_phdr_info, NULL);
#ifdef HAVE_DL_FIND_OBJECT
  add_static_program();
#endif
}

// In a fully static program gort often starts inside libc's start-up (its
// first malloc, in _dl_non_dynamic_init), before dl_iterate_phdr lists the
// program itself, and nothing later adds to the snapshot (see
// dlfo_usable): constructors run once libc's start-up is done.
#ifdef HAVE_DL_FIND_OBJECT
// (Before mprof.c's, which walks stacks in its own: lower priorities first.)
__attribute__((constructor(110))) static void after_libc_start(void) {
  atomic_store(&libc_started, true);
  add_static_program();
}
#endif

#else  // not x86-64 Linux: glibc's unwinder

#include <execinfo.h>

GORT_NOINLINE uint32_t gort__unwind_capture(uintptr_t *pcs, uint32_t max) {
  void *raw[130];
  int want = max + 1 > 130 ? 130 : (int)max + 1;
  int n = backtrace(raw, want);  // raw[0] is in this function
  uint32_t out = 0;
  for (int i = 1; i < n; i++) pcs[out++] = (uintptr_t)raw[i];
  return out;
}

uint32_t gort__unwind_capture_memo(uintptr_t *pcs, uint32_t max, unwind_memo_t *m) {
  m->reused = max;
  return gort__unwind_capture(pcs, max);
}

uint32_t gort__unwind_capture_tagged(uintptr_t *pcs, uint32_t max, unwind_tag_t *t) {
  t->tag = 0, t->held = 0, t->slot = -1;
  t->m->reused = max;
  return gort__unwind_capture(pcs, max);
}

void gort__unwind_memo_keep(unwind_tag_t *t, uint32_t tag) { (void)t, (void)tag; }

void gort__unwind_memo_forget(unwind_memo_t *m) { (void)m; }

void gort__unwind_init(void) {
  void *tmp[2];
  backtrace(tmp, 2);  // loads libgcc_s now (it allocates), not inside malloc
}

#endif

// ---- gort's own code --------------------------------------------------------------

static int find_self_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t *range = arg, me = (uintptr_t)&find_self_text;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me >= lo && me < hi) {
      // Only a shared libgort: linked statically, its code is the program's.
      if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') range[0] = lo, range[1] = hi;
      return 1;
    }
  }
  return 0;
}

void gort__unwind_self_text(uintptr_t *lo, uintptr_t *hi) {
  uintptr_t range[2] = {0, 0};
  dl_iterate_phdr(find_self_text, range);
  *lo = range[0], *hi = range[1];
}
