// Dirty tracking with mprotect and a SIGSEGV handler: the backend for
// kernels without userfaultfd (see dirty.c for the design and the figures;
// gcdirty=mprotect forces it).
//
// The heap is write-protected in 16 KiB granules while a cycle marks; the
// first write to a granule faults, and the handler unprotects it, records
// it in a bitmap and returns, so the write runs again and succeeds. A
// collect clears a granule's bit, protects it again, and only then reports
// it (dirty.h), so a write made after its rescan faults again.
//
// Invariants (on each granule of the registered heap, while active):
//   - A granule is writable only if its dirty bit or its sticky bit is set,
//     or a fault handler that unprotected it is about to set its dirty bit:
//     the handler unprotects first and sets the bit second, so a collect
//     that clears the bit in between protects the granule again after it.
//     (Not the converse: that collect leaves the bit set on a protected
//     granule, reported once more for nothing.)
//   - A sticky granule is writable and never protected until the next arm:
//     it was registered in the middle of a cycle, or a wrapped system call
//     wrote into it. It is reported by every collect, written or not.
//     (malloc's blocks, where the kernel writes for libc itself, a stdio
//     buffer, a directory stream, are never in the tracked heap: mheap.c,
//     zones.)
//   - A granule under a kernel write in progress (pinned by a wrapper
//     below) is not protected by an arm until the call returns.
// mp.lock orders the collector's protects against the wrappers' pins (a
// granule must not be protected between a wrapper's unprotect and its
// system call). The fault handler takes no
// lock: it only unprotects and sets a bit, both of which commute with the
// others' steps as the first invariant says. The lock is a spin lock taken
// in no-stop regions: the final stop collects with the world stopped.
//
// The fault handler runs with the collector's stop signal blocked
// (os/fault.c), so a thread is never stopped between its unprotect and
// its bit: at the final stop such a granule would be writable, another
// thread's store into it unreported, and the object it points to freed.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "../alloc/alloc_init.h"
#include "../alloc/mheap.h"
#include "../alloc/pagemap.h"
#include "../base/lock.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "dirty.h"
#include "gc.h"

#define GRANULE_SHIFT GORT_DIRTY_GRANULE_SHIFT
#define GRANULE ((uintptr_t)1 << GRANULE_SHIFT)
#define GPA ((uintptr_t)1 << (GORT_ARENA_SHIFT - GRANULE_SHIFT))  // granules per arena
#define WPA (GPA / 64)                                           // words per arena and bitmap
#define NGRANULES (GORT_ARENA_L1 * GPA)
#define NPINS 64

_Static_assert(GORT_RESERVE_ALIGN % GRANULE == 0, "reservations must be whole granules");
_Static_assert(GPA % 64 == 0, "an arena's bitmaps must be whole words");

// An arena's three bitmaps, one bit per granule: heap (registered), dirty
// (written since protected), sticky (never protected this cycle).
enum { HEAP, DIRTY, STICKY };
typedef struct {
  uint64_t w[3][WPA];
} abits_t;

static struct {
  // Per arena of the page map's window (pagemap.h), its bitmaps, made at
  // registration and never freed (1 MiB of pointers reserved at the first
  // open, touched only where the heap is; 1.5 KiB of bits per arena). The
  // bits change with atomic ORs and ANDs.
  abits_t *_Atomic *arenas;
  _Atomic uint32_t lock;
  _Atomic bool opened;   // the backend is in use: the handler claims heap faults
  _Atomic bool active;   // from arming to the end of the disarm
  _Atomic bool failed;   // a granule could not be unprotected alone
  // Kernel writes in progress (the wrappers): [lo, hi), lo 0 when free.
  // Claimed and searched under the lock, freed without it.
  _Atomic uintptr_t pin_lo[NPINS], pin_hi[NPINS];
  _Atomic uint32_t npins;    // slots in use at most (a high-water mark)
  _Atomic uint32_t pin_all;  // wrappers without a slot: nothing is protected
} mp;

static void mlock(void) {
  nostop_enter();
  while (atomic_exchange_explicit(&mp.lock, 1, memory_order_acquire) != 0) gort__cpu_relax();
}
static void munlock(void) {
  atomic_store_explicit(&mp.lock, 0, memory_order_release);
  nostop_exit();
}

// The word of bitmap b that holds granule g's bit; NULL outside the
// registered arenas.
static inline uint64_t *word(int b, uintptr_t g) {
  if (g >= NGRANULES || mp.arenas == NULL) return NULL;
  abits_t *ab = atomic_load_explicit(&mp.arenas[g / GPA], memory_order_acquire);
  return ab != NULL ? &ab->w[b][(g % GPA) >> 6] : NULL;
}
static inline bool test(int b, uintptr_t g) {
  uint64_t *w = word(b, g);
  return w != NULL && (__atomic_load_n(w, __ATOMIC_RELAXED) >> (g & 63)) & 1;
}
static inline void set(int b, uintptr_t g) {
  uint64_t *w = word(b, g);
  if (w != NULL) __atomic_fetch_or(w, 1ULL << (g & 63), __ATOMIC_SEQ_CST);
}
static inline void clear(int b, uintptr_t g) {
  uint64_t *w = word(b, g);
  if (w != NULL) __atomic_fetch_and(w, ~(1ULL << (g & 63)), __ATOMIC_SEQ_CST);
}
static inline bool in_heap(uintptr_t a) { return test(HEAP, a >> GRANULE_SHIFT); }
// In the tracked zone, registered with this backend (in_heap) or not yet:
// a reservation made between cycles is registered, and protected, by the
// next arm, and a kernel write into it must be pinned too (unpinned, it
// failed with EFAULT when an arm came while it waited: about one run in
// four of test_gc_dirty_mprotect's back-to-back receives). The zones never
// share an arena (mheap.h), so the arena's zone says it.
static inline bool tracked(uintptr_t a) {
  arena_t *ar = arena_of(a);
  return ar != NULL && ar->zone == MHEAP_ZONE_TRACKED;
}

// ---- the fault ------------------------------------------------------------------------------

// The granule could not be unprotected alone (the split would pass
// vm.max_map_count): unprotect the whole run of heap around it, which
// merges mappings, and fail the cycle's tracking (every marked object is
// rescanned at the final stop: dirty.c falls back to none).
static void unprotect_wide(uintptr_t g) {
  atomic_store(&mp.failed, true);
  uintptr_t lo = g, hi = g + 1;
  while (lo > 0 && test(HEAP, lo - 1)) lo--;
  while (hi < NGRANULES && test(HEAP, hi)) hi++;
  if (gort__os_protect((void *)(lo << GRANULE_SHIFT), (hi - lo) << GRANULE_SHIFT, 1) != 0) {
    gort__print("gort: fatal error: cannot unprotect heap granule %p (vm.max_map_count?)\n",
                (void *)(g << GRANULE_SHIFT));
    gort__throw("dirty: the heap stays write-protected");
  }
}

static bool on_fault(int sig, siginfo_t *info, void *uctx) {
  (void)uctx;
  if (sig != SIGSEGV || info->si_code != SEGV_ACCERR || !atomic_load_explicit(&mp.opened, memory_order_relaxed))
    return false;
  uintptr_t a = (uintptr_t)info->si_addr;
  if (!in_heap(a)) return false;
#if defined(__x86_64__)
  // Our protection leaves reads and instruction fetches alone (bit 1 of
  // the page fault's error code: a write).
  if (!(((ucontext_t *)uctx)->uc_mcontext.gregs[REG_ERR] & 2)) return false;
#endif
  uintptr_t g = a >> GRANULE_SHIFT;
  if (gort__os_protect((void *)(g << GRANULE_SHIFT), GRANULE, 1) != 0) unprotect_wide(g);
  set(DIRTY, g);  // after the unprotect: the first invariant
  return true;
}

// ---- classification ----------------------------------------------------------------------

// Whether a kernel write in progress covers granule g (lock held).
static bool pinned(uintptr_t g) {
  if (atomic_load(&mp.pin_all) != 0) return true;
  uintptr_t lo = g << GRANULE_SHIFT, hi = lo + GRANULE;
  uint32_t n = atomic_load(&mp.npins);
  for (uint32_t i = 0; i < n; i++) {
    uintptr_t plo = atomic_load(&mp.pin_lo[i]);
    if (plo != 0 && plo < hi && atomic_load(&mp.pin_hi[i]) > lo) return true;
  }
  return false;
}

// Runs of granules to protect (or, with writable set, to unprotect), one
// mprotect each.
typedef struct {
  uintptr_t lo, hi;
  int err;
  bool writable;
} run_t;

static void run_flush(run_t *r) {
  if (r->hi > r->lo) {
    int e = gort__os_protect((void *)r->lo, r->hi - r->lo, r->writable);
    if (e < 0 && r->writable) unprotect_wide(r->lo >> GRANULE_SHIFT);
    if (e < 0 && r->err == 0) r->err = e;
  }
  r->lo = r->hi = 0;
}

static void run_add(run_t *r, uintptr_t g) {
  uintptr_t a = g << GRANULE_SHIFT;
  if (r->hi != a) {
    run_flush(r);
    r->lo = a;
  }
  r->hi = a + GRANULE;
}

// ---- the backend --------------------------------------------------------------------------

static int mp_open(void) {
#ifdef GORT_NO_SHIM
  // Without gort's read and sigaction wrappers (the ThreadSanitizer build)
  // a read(2) into the heap would fail with EFAULT.
  return -ENOSYS;
#endif
  if (mp.arenas == NULL) {
    int err;
    void *p = gort__os_reserve(0, GORT_ARENA_L1 * sizeof(abits_t *), 4096, &err);
    if (p == NULL) return err;
    mp.arenas = p;
  }
  int r = gort__os_fault_hook(GORT_FAULT_HOOK_DIRTY, on_fault, gort__stw_signal());
  if (r < 0) return r;
  atomic_store(&mp.opened, true);
  return 0;
}

static void mp_close(void) { atomic_store(&mp.opened, false); }

// Ranges registered while a cycle is armed are sticky until the next arm:
// the writes made there before they were registered were not seen.
static int mp_add(uintptr_t lo, uintptr_t hi) {
  for (uintptr_t a = lo >> GORT_ARENA_SHIFT; a <= (hi - 1) >> GORT_ARENA_SHIFT; a++) {
    if (atomic_load(&mp.arenas[a]) != NULL) continue;
    abits_t *ab = gort__persistent_alloc(sizeof(abits_t), 64);
    if (ab == NULL) return -ENOMEM;
    atomic_store_explicit(&mp.arenas[a], ab, memory_order_release);
  }
  bool active = atomic_load(&mp.active);
  for (uintptr_t g = lo >> GRANULE_SHIFT; g < hi >> GRANULE_SHIFT; g++) {
    if (active) set(STICKY, g);
    set(HEAP, g);
  }
  return 0;
}

// The wrappers read mp.active without the lock: one that reads it clear
// makes its call unpinned, and retries if the call found its buffer
// protected (EFAULT).
static void mp_arming(bool on) { atomic_store(&mp.active, on); }

// Protects every granule of [lo, hi) but those under a kernel write in
// progress, which become sticky (mp.active is set) and are made writable:
// the heap is unprotected between cycles, but not always yet when the
// next cycle arms (a disarm that finds a newer arming leaves the heap as
// it is: dirty.c), and a pinned call that then faulted in a granule
// taken for writable failed with EFAULT, and again at its retry, which
// opens only granules that are not sticky (a reviewer's probe: 5-12
// EFAULTs from receives with timeouts in 5 s of back-to-back cycles).
static int mp_protect(uintptr_t lo, uintptr_t hi) {
  run_t run = {0}, open = {.writable = true};
  mlock();
  for (uintptr_t g = lo >> GRANULE_SHIFT; g < hi >> GRANULE_SHIFT; g++) {
    clear(DIRTY, g);
    if (pinned(g)) {
      set(STICKY, g);
      run_add(&open, g);
      continue;
    }
    clear(STICKY, g);
    run_add(&run, g);
  }
  run_flush(&run);
  run_flush(&open);
  munlock();
  return run.err;
}

// reprotect is ignored: an unprotected granule costs the program nothing
// between cycles, but its bit must stay right for the handler's protocol.
static int64_t mp_collect(uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], size_t n, uintptr_t *walk,
                          bool reprotect) {
  (void)reprotect;
  run_t run = {0};
  size_t nout = 0;
  *walk = hi;
  mlock();
  if (atomic_load(&mp.failed)) {
    munlock();
    return -ENOMEM;
  }
  uintptr_t ghi = hi >> GRANULE_SHIFT;
  for (uintptr_t g = lo >> GRANULE_SHIFT; g < ghi; g++) {
    if ((g & 63) == 0 && g + 64 <= ghi && __atomic_load_n(word(DIRTY, g), __ATOMIC_RELAXED) == 0 &&
        __atomic_load_n(word(STICKY, g), __ATOMIC_RELAXED) == 0) {
      g += 63;
      continue;
    }
    bool d = test(DIRTY, g), st = test(STICKY, g);
    if (!d && !st) continue;
    uintptr_t a = g << GRANULE_SHIFT;
    if (nout > 0 && out[nout - 1][1] == a) {
      out[nout - 1][1] = a + GRANULE;
    } else {
      if (nout == n) {
        *walk = a;
        break;
      }
      out[nout][0] = a, out[nout][1] = a + GRANULE;
      nout++;
    }
    if (d && !st && !pinned(g)) {
      clear(DIRTY, g);  // before the protect: the first invariant
      run_add(&run, g);
    }
  }
  run_flush(&run);
  munlock();
  return run.err < 0 ? run.err : (int64_t)nout;
}

static void mp_unprotect(uintptr_t lo, uintptr_t hi) {
  mlock();
  gort__os_protect((void *)lo, hi - lo, 1);
  munlock();
}

// The child inherits the protection (the last cycle's disarm may not have
// run yet at the fork) and none of the threads that held the lock.
static void mp_fork_child(const uintptr_t *lo, const uintptr_t *hi, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) gort__os_protect((void *)lo[i], hi[i] - lo[i], 1);
  atomic_store(&mp.lock, 0);
  atomic_store(&mp.active, false);
  atomic_store(&mp.failed, false);
  for (uint32_t i = 0; i < NPINS; i++) atomic_store(&mp.pin_lo[i], 0);
  atomic_store(&mp.pin_all, 0);
  mp_close();
}

const dirty_backend_t gort__dirty_mprotect = {
    .name = "mprotect",
    .open = mp_open,
    .close = mp_close,
    .add = mp_add,
    .arming = mp_arming,
    .protect = mp_protect,
    .collect = mp_collect,
    .unprotect = mp_unprotect,
    .fork_child = mp_fork_child,
};

// ---- system calls that write into the heap ----------------------------------------------------

#ifndef GORT_NO_SHIM

// Makes the heap's part of [p, p + len) sticky and writable (lock held),
// so that a buffer read into again and again costs one mprotect a cycle.
// Only a sticky bit says a granule is writable: a dirty one may have been
// protected again by a collect that ran between a handler's unprotect and
// its bit (the read then failed with EFAULT).
static void open_range(const void *p, size_t len) {
  if (p == NULL || len == 0) return;
  uintptr_t lo = (uintptr_t)p, hi = lo + len;
  if (hi < lo || lo >= ((uintptr_t)1 << GORT_ADDR_BITS)) return;
  for (uintptr_t g = lo >> GRANULE_SHIFT; g <= (hi - 1) >> GRANULE_SHIFT && g < NGRANULES; g++) {
    if (!test(HEAP, g) || test(STICKY, g)) continue;
    set(STICKY, g);
    if (gort__os_protect((void *)(g << GRANULE_SHIFT), GRANULE, 1) != 0) unprotect_wide(g);
  }
}

// Before a kernel write into the buffers v[0..n): pins their hull and
// opens their heap parts. Returns the pin's slot, -1 (no slot free:
// pin_all counts it), or -2 (no buffer is in the heap: nothing to undo).
static int kwrite_begin(const struct iovec *v, size_t n) {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    uintptr_t a = (uintptr_t)v[i].iov_base, e = a + v[i].iov_len;
    if (a == 0 || e <= a) continue;
    if (a < lo) lo = a;
    if (e > hi) hi = e;
    for (uintptr_t x = a & ~(GRANULE - 1); x < e && !any; x += GRANULE) any = tracked(x);
  }
  if (!any) return -2;
  mlock();
  int slot = -1;
  uint32_t used = atomic_load(&mp.npins);
  for (uint32_t i = 0; i < NPINS; i++) {
    if (atomic_load(&mp.pin_lo[i]) != 0) continue;
    atomic_store(&mp.pin_hi[i], hi);
    atomic_store(&mp.pin_lo[i], lo);
    if (i >= used) atomic_store(&mp.npins, i + 1);
    slot = (int)i;
    break;
  }
  if (slot == -1) atomic_fetch_add(&mp.pin_all, 1);
  // Between cycles the heap is writable (disarmed after the unprotect) and
  // the pin alone keeps it so: mp_protect makes pinned granules sticky.
  if (atomic_load(&mp.active))
    for (size_t i = 0; i < n; i++) open_range(v[i].iov_base, v[i].iov_len);
  munlock();
  return slot;
}

static void kwrite_end(int slot) {
  // Both ends cleared (hi first: a claimer writes hi, then lo): a stale end
  // is a heap address, which a statically linked program's root scan of
  // gort's data would take for a pointer to the next object.
  if (slot >= 0) atomic_store(&mp.pin_hi[slot], 0), atomic_store(&mp.pin_lo[slot], 0);
  else if (slot == -1) atomic_fetch_sub(&mp.pin_all, 1);
}

// The wrappers: one load when no cycle is armed. A call that began before
// a cycle armed and found its data buffer protected fails with EFAULT
// having written nothing (pipes, stream sockets, files): it is made once
// more with the buffer opened. (A datagram socket drops the datagram: see
// dirty.c.) Not so a field written back after the data (heap_meta).
#define ARMED() gort_unlikely(atomic_load_explicit(&mp.active, memory_order_relaxed))
#define OPENED() atomic_load_explicit(&mp.opened, memory_order_relaxed)
#define RETRY(r) gort_unlikely((r) < 0 && errno == EFAULT && OPENED())
// An EFAULT with no buffer in the heap is the program's own: not retried.
#define NOT_OURS() (errno = EFAULT, -1)
// Whether [p, p + len) (len small: an address, a header) touches the
// tracked heap (the caller checked OPENED() first, before reading any of
// the program's fields: a bad pointer must still be the kernel's EFAULT
// wherever this backend is not in use). A receive writes such fields
// back after it has taken the data (recvfrom's address and its length,
// recvmsg's header, name and control data): an EFAULT there comes with the
// data gone from the socket, so a retry would lose it (a reviewer's probe
// lost about 1% of a stream's bytes). Calls with one in the heap are
// always pinned, never retried.
static bool heap_meta(const void *p, size_t len) {
  if (p == NULL) return false;
  uintptr_t a = (uintptr_t)p;
  return tracked(a) || (len > 1 && tracked(a + len - 1));
}

// libc's own: __read and __pread64 are public names in the shared and the
// static libc; the rest are found with dlsym (a static program has none:
// the system call itself, which is not a cancellation point).
extern ssize_t __read(int, void *, size_t);
extern ssize_t __pread64(int, void *, size_t, off_t);

static void *next_fn(const char *name, _Atomic(void *) *cache) {
  void *f = atomic_load_explicit(cache, memory_order_acquire);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, name);
    if (f == NULL) f = (void *)1;  // none: the system call
    atomic_store_explicit(cache, f, memory_order_release);
  }
  return f == (void *)1 ? NULL : f;
}

static ssize_t real_readv(int fd, const struct iovec *iov, int cnt) {
  static _Atomic(void *) fn;
  ssize_t (*f)(int, const struct iovec *, int) = (ssize_t(*)(int, const struct iovec *, int))next_fn("readv", &fn);
  return f != NULL ? f(fd, iov, cnt) : syscall(SYS_readv, fd, iov, cnt);
}

static ssize_t real_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen) {
  static _Atomic(void *) fn;
  ssize_t (*f)(int, void *, size_t, int, struct sockaddr *, socklen_t *) =
      (ssize_t(*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))next_fn("recvfrom", &fn);
  return f != NULL ? f(fd, buf, n, flags, addr, alen) : syscall(SYS_recvfrom, fd, buf, n, flags, addr, alen);
}

static ssize_t real_recvmsg(int fd, struct msghdr *msg, int flags) {
  static _Atomic(void *) fn;
  ssize_t (*f)(int, struct msghdr *, int) = (ssize_t(*)(int, struct msghdr *, int))next_fn("recvmsg", &fn);
  return f != NULL ? f(fd, msg, flags) : syscall(SYS_recvmsg, fd, msg, flags);
}

#define EXPORT __attribute__((visibility("default")))

// One buffer.
#define KWRITE(buf, n, call)                                           \
  do {                                                                 \
    bool armed_ = ARMED();                                             \
    if (!armed_) {                                                     \
      ssize_t r_ = (call);                                             \
      if (!RETRY(r_)) return r_;                                       \
    }                                                                  \
    struct iovec v_ = {(buf), (n)};                                    \
    int slot_ = kwrite_begin(&v_, 1);                                  \
    if (!armed_ && slot_ == -2) return NOT_OURS();                     \
    ssize_t r_ = (call);                                               \
    kwrite_end(slot_);                                                 \
    return r_;                                                         \
  } while (0)

EXPORT ssize_t read(int fd, void *buf, size_t n);
ssize_t read(int fd, void *buf, size_t n) { KWRITE(buf, n, __read(fd, buf, n)); }

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off);
ssize_t pread(int fd, void *buf, size_t n, off_t off) { KWRITE(buf, n, __pread64(fd, buf, n, off)); }

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off);
ssize_t pread64(int fd, void *buf, size_t n, off_t off) { KWRITE(buf, n, __pread64(fd, buf, n, off)); }

// The receives run as blocking calls (gc.h, gort__blocking_receive).
typedef struct {
  int fd, flags;
  void *buf;
  size_t n;
  struct sockaddr *addr;
  socklen_t *alen;
  struct msghdr *msg;
} recv_call_t;

static long recvfrom_call(void *arg) {
  recv_call_t *c = arg;
  return real_recvfrom(c->fd, c->buf, c->n, c->flags, c->addr, c->alen);
}
static ssize_t blocking_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen) {
  recv_call_t c = {.fd = fd, .flags = flags, .buf = buf, .n = n, .addr = addr, .alen = alen};
  return gort__blocking_receive(recvfrom_call, &c);
}

static long recvmsg_call(void *arg) {
  recv_call_t *c = arg;
  return real_recvmsg(c->fd, c->msg, c->flags);
}
static ssize_t blocking_recvmsg(int fd, struct msghdr *msg, int flags) {
  recv_call_t c = {.fd = fd, .flags = flags, .msg = msg};
  return gort__blocking_receive(recvmsg_call, &c);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags);
ssize_t recv(int fd, void *buf, size_t n, int flags) {
  KWRITE(buf, n, blocking_recvfrom(fd, buf, n, flags, NULL, NULL));
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen);
ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen) {
  bool pin = ARMED() || (OPENED() && alen != NULL && (heap_meta(alen, sizeof *alen) || heap_meta(addr, *alen)));
  if (!pin) {
    ssize_t r = blocking_recvfrom(fd, buf, n, flags, addr, alen);
    if (!RETRY(r)) return r;
  }
  struct iovec v[3] = {{buf, n}, {addr, alen != NULL ? *alen : 0}, {alen, alen != NULL ? sizeof *alen : 0}};
  int slot = kwrite_begin(v, 3);
  if (!pin && slot == -2) return NOT_OURS();
  ssize_t r = blocking_recvfrom(fd, buf, n, flags, addr, alen);
  kwrite_end(slot);
  return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt);
ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  bool armed = ARMED();
  if (!armed) {
    ssize_t r = real_readv(fd, iov, cnt);
    if (!RETRY(r)) return r;
  }
  int slot = kwrite_begin(iov, cnt > 0 ? (size_t)cnt : 0);
  if (!armed && slot == -2) return NOT_OURS();
  ssize_t r = real_readv(fd, iov, cnt);
  kwrite_end(slot);
  return r;
}

// The kernel writes the message's buffers, its name and control data, and
// three of its own fields (msg_namelen, msg_controllen, msg_flags).
EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  bool pin = ARMED() || (OPENED() && (heap_meta(msg, sizeof *msg) || heap_meta(msg->msg_name, msg->msg_namelen) ||
                                      heap_meta(msg->msg_control, msg->msg_controllen)));
  if (!pin) {
    ssize_t r = blocking_recvmsg(fd, msg, flags);
    if (!RETRY(r)) return r;
  }
  struct iovec v[3] = {{msg, sizeof *msg}, {msg->msg_name, msg->msg_namelen}, {msg->msg_control, msg->msg_controllen}};
  int s1 = kwrite_begin(v, 3);
  int s2 = kwrite_begin(msg->msg_iov, msg->msg_iovlen);
  if (!pin && s1 == -2 && s2 == -2) return NOT_OURS();
  ssize_t r = blocking_recvmsg(fd, msg, flags);
  kwrite_end(s2);
  kwrite_end(s1);
  return r;
}

// stdio. fread and its variants read straight into the caller's buffer,
// through libc's internal read that no wrapper sees, once a request is at
// least as large as the stream's buffer (an unbuffered stream's: one
// byte): with the buffer in a protected granule that read failed with
// EFAULT and fread came back short with the stream's error set (a
// helper's hunt: 60 of 60 rounds of 64-192 KiB freads into a collected
// buffer). Smaller requests are copied out of the stream's own buffer by
// ordinary stores, whose faults the handler takes. So the buffer is pinned
// and opened while a cycle is armed, and when none is, for requests that
// may go straight to the kernel (a cycle may arm during the read): a page
// or more, or at least the stream's buffer (1 KiB for /proc files), or any
// before the stream has one. (A stream whose buffer the program gave it
// with setvbuf, in a collected object, is not covered: stdio's own reads
// into it may fail so.) Without the mprotect backend there is nothing to pin.
#define FREAD_PIN_MIN 4096
#undef fread_unlocked  // a macro of <stdio.h>'s inline extensions

// glibc's public names for what fread and fread_unlocked run, in libc.so
// and libc.a alike (dlsym finds nothing in a static program, and a weak
// reference to libc.a's __fread_unlocked pulls nothing in).
extern size_t _IO_fread(void *, size_t, size_t, FILE *);
extern size_t _IO_sgetn(FILE *, void *, size_t);
extern void __chk_fail(void) __attribute__((noreturn));

// fread_unlocked as glibc's: the stream's read of every byte, no lock,
// and the count of whole elements read (size * n wraps, as there).
static size_t real_fread_unlocked(void *buf, size_t size, size_t n, FILE *fp) {
  size_t want = size * n;
  if (want == 0) return 0;
  size_t got = _IO_sgetn(fp, buf, want);
  return got == want ? n : got / size;
}

static bool fread_may_go_direct(size_t total, const FILE *fp) {
  if (total >= FREAD_PIN_MIN || fp->_IO_buf_base == NULL) return true;
  return total >= (size_t)(fp->_IO_buf_end - fp->_IO_buf_base);
}

static size_t fread_pinned(void *buf, size_t size, size_t n, FILE *fp, bool unlocked) {
  size_t total;
  if (__builtin_mul_overflow(size, n, &total)) total = SIZE_MAX;
  int slot = -2;
  if (atomic_load_explicit(&mp.opened, memory_order_relaxed) && (ARMED() || fread_may_go_direct(total, fp))) {
    struct iovec v = {buf, total};
    slot = kwrite_begin(&v, 1);
  }
  size_t r = unlocked ? real_fread_unlocked(buf, size, n, fp) : _IO_fread(buf, size, n, fp);
  kwrite_end(slot);
  return r;
}

EXPORT size_t fread(void *buf, size_t size, size_t n, FILE *fp);
size_t fread(void *buf, size_t size, size_t n, FILE *fp) { return fread_pinned(buf, size, n, fp, false); }

EXPORT size_t fread_unlocked(void *buf, size_t size, size_t n, FILE *fp);
size_t fread_unlocked(void *buf, size_t size, size_t n, FILE *fp) { return fread_pinned(buf, size, n, fp, true); }

// _FORTIFY_SOURCE's checked forms (Debian builds with it): glibc's check,
// then the read.
static void fread_check(size_t ptrlen, size_t size, size_t n) {
  size_t total;
  if (__builtin_mul_overflow(size, n, &total) || total > ptrlen) __chk_fail();
}

EXPORT size_t __fread_chk(void *buf, size_t ptrlen, size_t size, size_t n, FILE *fp);
size_t __fread_chk(void *buf, size_t ptrlen, size_t size, size_t n, FILE *fp) {
  fread_check(ptrlen, size, n);
  return fread_pinned(buf, size, n, fp, false);
}

EXPORT size_t __fread_unlocked_chk(void *buf, size_t ptrlen, size_t size, size_t n, FILE *fp);
size_t __fread_unlocked_chk(void *buf, size_t ptrlen, size_t size, size_t n, FILE *fp) {
  fread_check(ptrlen, size, n);
  return fread_pinned(buf, size, n, fp, true);
}

#endif  // GORT_NO_SHIM
