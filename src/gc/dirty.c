// Dirty-page tracking: which pages of the heap the program wrote while the
// collector marked (see mgc.c, "Concurrent marking").
//
// C has no compiler to insert a write barrier, so the collector asks the
// kernel instead. The backend (GORT_DEBUG=gcdirty=uffd|mprotect|none,
// probed at the first cycle, in this order; dirty.h is their interface):
//   uffd      userfaultfd write-protect in asynchronous mode (Linux 6.7+): a
//             write to a protected page takes a minor fault that the kernel
//             resolves by itself (about 1.7 us on our machines, no signal, no
//             thread), and the PAGEMAP_SCAN ioctl on /proc/self/pagemap lists
//             the pages written since and protects them again in one atomic
//             step, so the collector can clean pages while the program runs.
//             Writes by the kernel (read(2) into the heap) are caught the same
//             way. Unprivileged (UFFD_USER_MODE_ONLY).
//   mprotect  the heap write-protected in 16 KiB granules, and a SIGSEGV
//             handler that unprotects the granule written first and records
//             it (dirty_mprotect.c, which has the invariants). For kernels
//             without userfaultfd, or a seccomp filter that refuses it.
//   none      no tracking: the whole mark runs with the world stopped.
// Soft-dirty bits are absent from our kernels and not built (gcdirty=
// softdirty says so). A backend that refuses, or fails in a cycle, falls
// back to the next (or to none) with one gctrace line, never a crash or a
// lost object: a cycle whose tracking failed rescans every marked object
// in its final stop.
//
// What is tracked: only the page heap's tracked zone (mheap.c lists its
// reservations), never the whole process, and there only the collected
// objects that a mark scans from the heap and that have no barrier
// (conservatively scanned and typed ones). malloc's memory, noscan, tiny
// and barriered objects live in the main zone, where a write can never
// hide a pointer from the mark, and so do uncollectable ones, which the
// final stop rescans whole. Every cost here grows with the tracked pages,
// not with the pages written: arming walks and protects them, every
// collect walks their page entries (about 2 ns each, 1 ms for 2 GiB, in
// every pre-cleaning round and in the final stop), and a first write
// faults. The 1 GiB cache (bench/gc) keeps its values noscan: with them
// tracked its pre-cleaning rounds each spent a millisecond walking, so
// never converged (250-300 pages left for the final stop, 1.7-4.4 ms);
// without, the final stop rescans 30-70 pages, and its CPU fell by a
// third. Goroutine stacks are not tracked: the final stop rescans them.
// A reservation made while a cycle marks is registered at the next
// collect; registering leaves its pages "written", so that first collect
// reports every page it has, which is what the mark needs (objects there
// were allocated black and may hold any pointer).
// A run the kernel reports may be longer than a page (a huge page).
//
// The final stop's collect does not protect what it reports again: no
// write after it matters to the cycle, and the pages stay "written" until
// the next arm protects them with the rest (or the disarm leaves them as
// they are). Protecting them again rewrote their entries and shot down the
// other CPU's TLB inside the stop: GCBench and binary-trees (3 runs each,
// 640 cycles, gctrace) had a median stop of 0.205 ms with it and 0.170
// without, the final stop's page step falling from 0.05-0.13 to 0.02-0.03
// ms at the median (gctrace=2), and GCBench's CPU by about 8%.
//
// Between cycles: the heap is unprotected after a cycle (disarm), so that
// the program pays a fault only for pages it writes while a mark runs,
// unless the program writes few of its pages between cycles. Leaving a
// page protected is always correct: the next arm protects again only the
// pages written meanwhile (PAGEMAP_SCAN matches written pages), and the
// first collect reports only what was written after the arm. It is a
// matter of cost: unprotecting a page and protecting it again costs
// about 0.3 us each way here (the kernel rewrites the entry and shoots
// down the other CPU's TLB), a first write to a protected page about 1.7.
// GCBench writes new objects into a small part of its heap between
// cycles, and leaving the heap protected cut its collector's system time
// by half (0.42 -> 0.20 s, 14% of its CPU); the 1 GiB cache writes at
// random all over its heap, and the same change cost it 22% more CPU.
// So each arm first counts, in a sample of the heap that the last disarm
// left protected (every 16th MiB, a different 16th each cycle),
// the present pages and those written since, and weighs what the
// written ones cost in faults against what unprotecting every present
// page and protecting it again would have cost: if the faults are
// cheaper, this cycle's disarm leaves everything protected; otherwise it
// unprotects all but the next sample. (Counting walks the sample's page
// entries and changes none.) The prices are this machine's, not fixed:
// the uffd backend measures a first write (the best of 4) and the bulk
// pair on 64 pages of its own when it starts, and each disarm that
// unprotects times itself and the arm before it and moves the pair's
// price towards what they paid a page (uffd_measure, reprice). Here a
// write costs 12-19 us and the pair 1-6 us a page (more in a process with
// threads on both CPUs: TLB shootdowns), so the heap stays protected
// below about a sixth written; on the machines that chose the old fixed
// quarter, 1.7 and 0.6 us, below a third. With the quarter here,
// binary-trees (20-27% written, depending on how far its heap grew) left
// the heap protected in up to 47 of its 128 cycles and took 86,000-148,000
// faults in two runs of six, against 40,000-45,000 in the others; with
// the measured prices, 38,000-42,000 in all six (interleaved runs; CPU
// 6.6 s against 6.9 on average, within this host's noise).
// Since 2026-12-06 the sample is every 16th MiB, not every 16th 64 KiB
// chunk, and the decision weighs the last 16 samples (one sweep over the
// heap), not the last one alone; and a fault is priced at FAULT_WEIGHT
// times what the probe measured. Each unprotecting call, whatever its
// length, shoots down the other CPU's TLB: on this VM, with a thread
// running on the other CPU, 4096 pages took 93 us in one call and 740 in
// 64. Unprotecting around 64 KiB samples took about 30 calls on
// GCBench's 16 MiB heap, 1-2 ms of IPIs a cycle, so unprotecting lost to
// faulting; around 1 MiB ones it is a few calls. But one 1 MiB sample is
// one place in the heap (GCBench's long-lived tree is written by no one,
// its young trees by everyone), hence the 16. And the probe's fault, 0.6
// us on 64 pages in a row, is about half of what a fault costs the
// program (its TLB and cache refills after the kernel's entry): GCBench,
// each way forced, 4 runs, 386-406 ms of CPU unprotecting and 416-455
// leaving protected, at 40% of the sampled pages written and 0.3 us a
// page to unprotect and protect again. GCBench now unprotects, with a
// fifth of the faults (24,000 against 120,000 a run) and 4-10% less CPU
// than before (6 and 4 interleaved runs, medians); binary-trees and the
// 256 MiB cache did not move.
// The price of unprotecting in pieces: where
// the kernel backs the heap with transparent huge pages (enabled=always,
// or GORT_DEBUG=hugepages=1 on a big heap; our machines' default is
// madvise), a
// huge page that was not written during the mark is split by the partial
// unprotect, and khugepaged does not merge protected ranges again. The
// mprotect backend always unprotects everything: between cycles a
// protected page would cost the program a signal, and a system call
// writing into it would fail with EFAULT.
//
// On a host whose hypervisor shadows the guest's page tables (the VM of
// 2026-12-02, where a first write to a fresh page costs 10-12 us and the
// kernel's samples sit in pvm_* functions), every page-table entry the
// kernel rewrites traps to the hypervisor, and the costs above grow about
// tenfold. GCBench there (bench/gc, 3 runs): 2.2-2.6 s of CPU with uffd
// against 0.84-0.91 with the write barrier and 0.53 with the world
// stopped (bdwgc 0.57). About 21 ms of each cycle went to tracking, for a
// mark that takes 2.2 ms stopped: arming and disarming rewrite the
// entries of its 3,700 heap pages, and about 300 pages fault during each
// mark (50,000 faults a run; 26,000 with the heap never left protected
// between cycles, for the same CPU; 127,000 and 30% more CPU with it
// always left protected). Part of it shows as user time on the first
// write to a protected page (link_run's memset in malloc_gc.c, a fifth of
// the run's samples). Nothing here makes a rewritten entry cheaper: on
// such a host the choice is gcdirty=none (a stop as long as the mark) or
// barriered objects (gort_gc_write_ptr), and the pause and CPU figures
// (gctrace, MemStats) show which one a program pays for. Tried there and
// dropped: unprotecting a span with one ioctl when a cache takes it to
// carve or refill, before zeroing it (nine in ten of the faults were
// that zeroing): GCBench's faults fell from 45,000 to 13,000 and its CPU
// did not move, since the ioctl rewrites the same entries the faults did.
// The prices, measured there on 2026-12-05 (a 16-128 MiB anonymous range,
// one thread): protecting with PAGEMAP_SCAN 0.07-0.14 us a page, in bulk;
// unprotecting with UFFDIO_WRITEPROTECT 1.2-1.8 us a page in bulk, but
// 6-28 us for a call on one page (28 when another thread of the process
// runs on the other CPU and takes the TLB shootdown); a first write to a
// protected page 15-16 us. Inside GCBench a fault costs more than that
// (0.42 s of its user time sits on the faulting memset, against 5 ms with
// the world stopped): the hypervisor's part is charged to the instruction.
// Transparent huge pages do not help: the first asynchronous write-protect
// fault in a huge page splits it (256 MiB of huge pages, protected, one
// write per 2 MiB: none left), so the tracked zone is back to 4 KiB entries
// after its first cycle; and gort leaves them to the system there anyway
// (alloc/mheap.c, "Huge pages"). Tried there too and dropped: a disarm
// that left protected the small spans whose every slot survived the mark
// (14% of GCBench's pages, 28% of binary-trees'), since the program
// allocates in the others: within the noise of three runs each.
//
// The mprotect backend, and why it is only the fallback:
//   1. Granules of 16 KiB, two of the heap's pages (dirty.h). A first
//      write costs a signal and the handler's mprotect, 3.7-4.2 us here
//      (5.1-5.3 where the protected mapping must split), against uffd's
//      1.7; a collect's protect again costs 2.5-2.6 us a granule (test_gc_
//      dirty_mprotect prints them). Both grow with the
//      granule (the kernel rewrites each present page's entry: 6-8 us a
//      first write at 64 KiB), and so does the final stop's rescan of the
//      last written granules: on the large-heap benchmark (1 GiB,
//      random writes, bench/gc) 16, 32 and 64 KiB granules cost 9.2-10.4,
//      11.3-14.5 and 15.8-17.2 s of CPU and stopped for at most 2-8.5,
//      7-20 and 24-33 ms (uffd: 9.9-10.8 s, 6-9 ms); on GCBench and
//      binary-trees, whose writes are to new objects, the three are
//      within 5% of each other and of uffd. Smaller granules split the
//      heap's mapping into more pieces (each protected run between
//      writable ones is a mapping, and vm.max_map_count is 65530): the
//      large-heap run peaks at about 1150 mappings, but a 1 GiB heap
//      written in a checkerboard would need 65536. A split the kernel
//      refuses unprotects the whole reservation and fails the cycle's
//      tracking, as above. Reservations start and end on 64 KiB
//      (mheap.h), so a granule is all heap or none.
//   2. The kernel does not fault when it writes into a protected page for
//      a system call: the call fails with EFAULT. gort wraps read, pread,
//      readv, recv, recvfrom and recvmsg, and fread (with fread_unlocked
//      and their _FORTIFY_SOURCE forms: a large fread reads straight into
//      the caller's buffer through libc's internal read, which no wrapper
//      sees; dirty_mprotect.c says more), so that, while a cycle is armed,
//      the heap part of their buffers is unprotected for the rest of the
//      cycle (rescanned at every collect) and
//      pinned until the call returns, so that the next cycle's arm cannot
//      protect it under a call that blocks; they cost one load when no
//      cycle is armed. A call that began before the arm
//      and failed with EFAULT is made once more with its buffer opened:
//      right for pipes, stream sockets and files, which write nothing when
//      they fail; a datagram socket drops its datagram.
//   3. Not covered (they fail with EFAULT if their output is in a scanned
//      collected object while a cycle marks): preadv, recvmmsg, io_uring
//      and aio, splice into the heap, and every call with an output
//      structure (stat, getsockopt, accept's address, epoll_wait, poll's
//      revents, waitpid's status, pipe's descriptors). Keep such output in
//      malloc'd memory, in a noscan object or on the stack: those are
//      never tracked (libc writes into malloc's blocks itself, through
//      names no wrapper sees: a stdio buffer, a directory stream). A
//      program that mprotects scanned collected objects must not use this
//      backend (malloc'd memory, a JIT's code say, is never touched).
//   4. A program's own SIGSEGV handler keeps working: os/fault.c chains
//      the faults that are not gort's to it, whether it was installed
//      before gort's or after.
//   5. Threads that block SIGSEGV would die at their first write to the
//      heap: gort's wrappers of the signal-mask calls never block it, and
//      gort's own threads do not.

#include <errno.h>
#include <string.h>

#include "../alloc/mheap.h"
#include "../base/noscan.h"
#include "../base/options.h"
#include "../base/vg.h"
#include "../os/os.h"
#include "dirty.h"
#include "gc.h"

// ---- uffd ----------------------------------------------------------------------------------

static struct {
  int uffd, pagemap;  // descriptors; under dirty.lock
} uf = {-1, -1};

static void uffd_close(void) {
  if (uf.uffd >= 0) gort__os_close(uf.uffd);
  if (uf.pagemap >= 0) gort__os_close(uf.pagemap);
  uf.uffd = uf.pagemap = -1;
}

// Every step a cycle takes, once, on a page of its own: registering it,
// protecting it with PAGEMAP_SCAN, a write, the scan that finds it, and
// unprotecting. A kernel or a seccomp filter that refuses any of them (a
// helper's hunt: PAGEMAP_SCAN refused with EPERM) then sends the probe to
// the next backend, instead of every cycle to a failed arm and the world
// stopped.
static int uffd_try_page(void) {
  int err;
  uint8_t *page = gort__os_reserve(0, 4096, 4096, &err);
  if (page == NULL) return err;
  uintptr_t lo = (uintptr_t)page, hi = lo + 4096, walk, runs[1][2];
  page[0] = 1;  // present: the kernel protects present pages
  int r = gort__os_uffd_register_wp(uf.uffd, lo, 4096);
  int64_t n = r < 0 ? r : gort__os_pagemap_written(uf.pagemap, lo, hi, runs, 0, &walk, true);
  if (n >= 0) {
    page[1] = 1;  // a first write: the kernel resolves it and marks the page written
    n = gort__os_pagemap_written(uf.pagemap, lo, hi, runs, 1, &walk, false);
    if (n == 0) n = -EIO;  // the write went unseen: no use for tracking
  }
  if (n >= 0) n = gort__os_uffd_unprotect(uf.uffd, lo, 4096);
  gort__os_unmap(page, 4096);  // the registration goes with the mapping
  return n < 0 ? (int)n : 0;
}

static bool t_valid(int64_t t) { return t > 0 && t < INT64_MAX; }

// What protection costs on this machine, per page, measured once at the
// probe (0: not measured): a first write to a protected page, and
// unprotecting then protecting again in bulk. Between cycles (measure,
// below) they decide whether leaving the heap protected is cheaper than
// unprotecting it: the prices differ tenfold between machines (a host
// that shadows the guest's page tables: a write 15 us, the pair 1.6 us a
// page; our first machines: 1.7 and 0.6), so no fixed share of written
// pages is right on both.
// All in the measuring thread's CPU time (the kernel's work in the calls
// included, a preemption not), so that a loaded machine does not inflate
// them. Under dirty.lock, or at the probe.
static struct {
  uint64_t fault_ns, reprotect_ns;
  uint64_t probe_reprotect_ns;  // the probe's pair, which lazy cycles drift back to
  uint64_t arm_ns;              // the last arm's protecting, if it followed a full unprotect; else 0
  uint32_t registered;          // the ranges the last arm counted (reprice skips a grown heap)
} cost;


// 64 pages of their own, present: the best of 4 first writes to protected
// ones, and the best of 3 bulk protects and unprotects of all 64. About
// 0.1 ms (1-2 ms on the shadowing host), once, at the first cycle's
// start, never in a stop.
static void uffd_measure(void) {
  enum { PAGES = 64, WRITES = 4, PAIRS = 3 };
  int err;
  uint8_t *m = gort__os_reserve(0, PAGES * 4096, 4096, &err);
  if (m == NULL) return;
  uintptr_t lo = (uintptr_t)m, hi = lo + PAGES * 4096, walk, (*none)[2] = NULL;
  for (int i = 0; i < PAGES; i++) m[i * 4096] = 1;  // present: the kernel protects present pages
  int64_t fault = INT64_MAX, pair = INT64_MAX;
  bool ok = gort__os_uffd_register_wp(uf.uffd, lo, hi - lo) == 0;
  for (int k = 0; ok && k < PAIRS; k++) {
    int64_t t0 = gort__os_thread_cpu_ns();
    ok = gort__os_pagemap_written(uf.pagemap, lo, hi, none, 0, &walk, true) >= 0;
    int64_t t1 = gort__os_thread_cpu_ns();
    for (int i = 0; ok && k == 0 && i < WRITES; i++) {
      volatile uint8_t *p = m + (size_t)i * (PAGES / WRITES) * 4096;
      int64_t t = gort__os_thread_cpu_ns();
      *p = 2;
      t = gort__os_thread_cpu_ns() - t;
      if (t < fault) fault = t;
    }
    int64_t t2 = gort__os_thread_cpu_ns();
    ok = ok && gort__os_uffd_unprotect(uf.uffd, lo, hi - lo) == 0;
    int64_t t3 = gort__os_thread_cpu_ns();
    if ((t1 - t0) + (t3 - t2) < pair) pair = (t1 - t0) + (t3 - t2);
  }
  if (ok && t_valid(fault) && t_valid(pair)) {
    cost.fault_ns = (uint64_t)fault;
    cost.reprotect_ns = cost.probe_reprotect_ns = (uint64_t)pair / PAGES;
  }
  gort__os_unmap(m, PAGES * 4096);  // the registration goes with the mapping
}

static int uffd_open(void) {
  int fd = gort__os_uffd_open();
  if (fd < 0) return fd;
  uf.uffd = fd;
  int pm = gort__os_pagemap_open();
  if (pm < 0) {
    uffd_close();
    return pm;
  }
  uf.pagemap = pm;
  int r = uffd_try_page();
  if (r < 0) uffd_close();
  else uffd_measure();
  return r;
}

static int uffd_add(uintptr_t lo, uintptr_t hi) { return gort__os_uffd_register_wp(uf.uffd, lo, hi - lo); }

static void uffd_arming(bool on) { (void)on; }

static int uffd_protect(uintptr_t lo, uintptr_t hi) {
  uintptr_t walk, (*none)[2] = NULL;
  int64_t r = gort__os_pagemap_written(uf.pagemap, lo, hi, none, 0, &walk, true);
  return r < 0 ? (int)r : 0;
}

static int64_t uffd_collect(uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], size_t n, uintptr_t *walk,
                            bool reprotect) {
  return gort__os_pagemap_written(uf.pagemap, lo, hi, out, n, walk, reprotect);
}

static void uffd_unprotect(uintptr_t lo, uintptr_t hi) { gort__os_uffd_unprotect(uf.uffd, lo, hi - lo); }

static int uffd_count(uintptr_t lo, uintptr_t hi, uint64_t *present, uint64_t *written) {
  return gort__os_pagemap_count(uf.pagemap, lo, hi, present, written);
}

// The child's mappings lose their registration (the kernel drops it
// without UFFD_FEATURE_EVENT_FORK), and their protection with it.
static void uffd_fork_child(const uintptr_t *lo, const uintptr_t *hi, uint32_t n) {
  (void)lo, (void)hi, (void)n;
  uffd_close();
}

static const dirty_backend_t uffd_backend = {
    .name = "uffd",
    .open = uffd_open,
    .close = uffd_close,
    .add = uffd_add,
    .arming = uffd_arming,
    .protect = uffd_protect,
    .collect = uffd_collect,
    .unprotect = uffd_unprotect,
    .count = uffd_count,
    .fork_child = uffd_fork_child,
};

// ---- what every backend shares -----------------------------------------------------------

// Between cycles: see "Between cycles" above.
enum { SAMPLE_CHUNK_SHIFT = 20, SAMPLE_STRIDE = 16, SAMPLE_MIN_PAGES = 32, FAULT_WEIGHT = 2 };

static struct {
  _Atomic uint32_t lock;     // guards the registration (the worker, and heap_grew)
  _Atomic uint32_t waiting;  // threads spinning for the lock (the disarm then does not give way)
  const dirty_backend_t *be; // the backend; NULL: none (marking with the world stopped)
  bool probed;
  // The tracked zone's reservations (mheap.c), as far as they are registered.
  uintptr_t lo[GORT_MAX_RESERVATIONS], reg_hi[GORT_MAX_RESERVATIONS];
  uint32_t registered;       // ranges [0, registered) are registered
  _Atomic bool armed;
  uint32_t gen;              // armings so far (under the lock)
  // Between cycles (under the lock): the 16th of the heap left protected
  // by the last disarm, what the last arm counted there, and whether this
  // cycle's disarm leaves the whole heap protected.
  uint32_t phase;
  uint64_t sample_present, sample_written;
  // The last SAMPLE_STRIDE samples, by phase: the decision weighs them
  // all, one sweep over the heap ("Between cycles").
  uint64_t seen_present[SAMPLE_STRIDE], seen_written[SAMPLE_STRIDE];
  bool lazy;
} dirty;
GORT_NOSCAN(dirty)

// A spin lock: held only around a few system calls, never across a stop
// (the heap_grew hook runs in a no-stop region and the worker is never
// stopped).
static void dlock(void) {
  if (atomic_exchange_explicit(&dirty.lock, 1, memory_order_acquire) == 0) return;
  atomic_fetch_add_explicit(&dirty.waiting, 1, memory_order_relaxed);
  // A pause only, never a yield (base/lock.h, gort__spin_turn): a waiter
  // may hold the heap's lock (heap_grew), and yielding let another thread
  // have its CPU for a slice while every allocation waited for that lock
  // (test_gc_concurrent's gccheckmark churn under ThreadSanitizer: 27 s
  // with pauses, 48-50 s with yields). The holder makes system calls and
  // never waits for anyone.
  while (atomic_exchange_explicit(&dirty.lock, 1, memory_order_acquire) != 0) gort__cpu_relax();
  atomic_fetch_sub_explicit(&dirty.waiting, 1, memory_order_relaxed);
}
static void dunlock(void) { atomic_store_explicit(&dirty.lock, 0, memory_order_release); }

// Gives up tracking (the lock held, or the collector alone): every later
// cycle marks with the world stopped.
static void fall_back(const char *why, int err) {
  if (gort__opts.gctrace || gort__opts.gcdirty != 0)
    gort__print("gc: dirty tracking (%s): %s (error %d); marking with the world stopped\n",
                dirty.be != NULL ? dirty.be->name : "none", why, -err);
  if (dirty.be != NULL) {
    for (uint32_t i = 0; i < dirty.registered; i++) dirty.be->unprotect(dirty.lo[i], dirty.reg_hi[i]);
    dirty.be->arming(false);
    dirty.be->close();
  }
  dirty.be = NULL;
  atomic_store(&dirty.armed, false);
}

// Tries one backend at the probe; false (with one gctrace line) if it
// refused.
static bool try_backend(const dirty_backend_t *be, bool last) {
  int r = be->open();
  if (r == 0) {
    dirty.be = be;
    return true;
  }
  if (gort__opts.gctrace || gort__opts.gcdirty != 0)
    gort__print("gc: dirty tracking: %s refused (error %d)%s\n", be->name, -r,
                last ? "; marking with the world stopped" : "; trying the next backend");
  return false;
}

// Chooses the backend (once; the collector's thread, under the cycle
// lock): the one forced by GORT_DEBUG=gcdirty, else uffd, then mprotect.
static void probe(void) {
  if (dirty.probed) return;
  dirty.probed = true;
  dirty.be = NULL;
  if (VG_RUNNING()) {  // the memcheck build under valgrind: base/vg.h
    if (gort__opts.gctrace || gort__opts.gcdirty != 0)
      gort__print("gc: dirty tracking: none under valgrind; marking with the world stopped\n");
    return;
  }
  switch (gort__opts.gcdirty) {
    case GCDIRTY_NONE: return;
    case GCDIRTY_UFFD: try_backend(&uffd_backend, true); return;
    case GCDIRTY_MPROTECT: try_backend(&gort__dirty_mprotect, true); return;
    default:
      if (!try_backend(&uffd_backend, false)) try_backend(&gort__dirty_mprotect, true);
  }
}

bool gort__dirty_enabled(void) {
  probe();
  return dirty.be != NULL;
}

const char *gort__dirty_name(void) { return dirty.be != NULL ? dirty.be->name : "none"; }

// The prices the decision uses: their ratio kept within 1/64 and 1/2,
// against a measurement gone wrong; unmeasured (0, 0): the old rule, a
// quarter of the pages written.
void gort__dirty_prices(uint64_t *fault_ns, uint64_t *reprotect_ns) {
  uint64_t fault = cost.fault_ns, reprotect = cost.reprotect_ns;
  if (fault == 0) {
    *fault_ns = *reprotect_ns = 0;
    return;
  }
  if (reprotect * 64 < fault) reprotect = fault / 64;
  if (reprotect * 2 > fault) reprotect = fault / 2;
  *fault_ns = fault;
  *reprotect_ns = reprotect;
}

static bool register_new(void) {
  uint32_t n = gort__mheap_nreservations();
  // The last range may have grown since it was registered: register its
  // new part.
  uint32_t from = dirty.registered > 0 ? dirty.registered - 1 : 0;
  for (uint32_t i = from; i < n; i++) {
    uintptr_t lo, hi;
    gort__mheap_reservation(i, &lo, &hi);
    if (i >= dirty.registered) __atomic_store_n(&dirty.lo[i], lo, __ATOMIC_RELAXED);  // collect reads it unlocked
    if (dirty.reg_hi[i] == hi) continue;
    int r = dirty.be->add(dirty.reg_hi[i] != 0 ? dirty.reg_hi[i] : lo, hi);
    if (r < 0) {
      fall_back("registering the heap failed", r);
      return false;
    }
    __atomic_store_n(&dirty.reg_hi[i], hi, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&dirty.registered, n, __ATOMIC_RELEASE);
  return true;
}

// ---- between cycles ---------------------------------------------------------------------

// Calls fn on each part of [lo, hi) that is (sampled) or is not in the
// chunks of the phase's sample.
static void sample_walk(uintptr_t lo, uintptr_t hi, uint32_t phase, bool sampled,
                        void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  uintptr_t k = lo >> SAMPLE_CHUNK_SHIFT;
  k += (phase - k) & (SAMPLE_STRIDE - 1);  // the first chunk of the sample at or after lo's
  uintptr_t gap = lo;
  for (; gap < hi; k += SAMPLE_STRIDE) {
    uintptr_t c_lo = k << SAMPLE_CHUNK_SHIFT, c_hi = c_lo + ((uintptr_t)1 << SAMPLE_CHUNK_SHIFT);
    if (c_lo < lo) c_lo = lo;
    if (c_lo >= hi) break;
    if (c_hi > hi) c_hi = hi;
    if (sampled) fn(c_lo, c_hi, arg);
    else if (gap < c_lo) fn(gap, c_lo, arg);
    gap = c_hi;
  }
  if (!sampled && gap < hi) fn(gap, hi, arg);
}

// A disarm's part (arg: when it gives way next; mgc.c, "Giving way"):
// unprotecting a large heap takes milliseconds, so it goes in system
// calls of up to UNPROTECT_PIECE (a few hundred microseconds each), and
// gives way between them. Not while a thread spins for the lock (the next
// cycle's arm on a program thread that called gort_gc_collect, or a
// heap_grew that read armed just before this disarm cleared it, with the
// heap's lock held): the yield could hand it this CPU to spin on.
#define UNPROTECT_PIECE ((uintptr_t)4 << 20)
static void unprotect_part(uintptr_t lo, uintptr_t hi, void *arg) {
  for (uintptr_t p = lo; p < hi; p += UNPROTECT_PIECE) {
    dirty.be->unprotect(p, hi - p > UNPROTECT_PIECE ? p + UNPROTECT_PIECE : hi);
    if (atomic_load_explicit(&dirty.waiting, memory_order_relaxed) == 0) gort__gc_give_way(arg);
  }
}

static void count_part(uintptr_t lo, uintptr_t hi, void *arg) {
  int *err = arg;
  uint64_t present, written;
  if (*err != 0 || (*err = dirty.be->count(lo, hi, &present, &written)) != 0) return;
  dirty.sample_present += present;
  dirty.sample_written += written;
}

// The probe's price of unprotecting and protecting again is for 64 pages
// in one call; the heap's calls are larger and pay their own TLB
// shootdowns. So each disarm that unprotects times itself, and the arm
// before it, and moves the price a quarter of the way to what they paid
// a page (the sample's present pages stand for a sixteenth of the heap's).
// A cycle that left the heap protected moves the price a quarter of the
// way back to the probe's, so that one dear measurement cannot keep the
// heap protected for good. Skipped when the heap grew since the arm
// counted it (the walk covered pages the count did not).
static void reprice(int64_t unprotect_ns, bool unprotected) {
  if (cost.fault_ns == 0) return;
  if (!unprotected) {
    cost.reprotect_ns = (3 * cost.reprotect_ns + cost.probe_reprotect_ns) / 4;
    return;
  }
  if (dirty.sample_present < SAMPLE_MIN_PAGES || dirty.registered != cost.registered || unprotect_ns <= 0) return;
  uint64_t present = dirty.sample_present * SAMPLE_STRIDE;
  uint64_t paid = (uint64_t)unprotect_ns / (present - dirty.sample_present) + cost.arm_ns / present;
  cost.reprotect_ns = (3 * cost.reprotect_ns + paid) / 4;
}

// Counts the last disarm's sample (the lock held, before the ranges
// registered since are added) and decides this cycle's disarm.
static void measure(void) {
  dirty.sample_present = dirty.sample_written = 0;
  dirty.lazy = false;
  if (dirty.be->count == NULL) return;
  int err = 0;
  for (uint32_t i = 0; i < dirty.registered; i++) sample_walk(dirty.lo[i], dirty.reg_hi[i], dirty.phase, true, count_part, &err);
  // Left protected, each page the program writes before the next arm
  // costs a fault; unprotected, each present page costs an unprotect now
  // and a protect at the next arm.
  uint64_t fault, reprotect;
  gort__dirty_prices(&fault, &reprotect);
  if (fault == 0) fault = 4, reprotect = 1;
  cost.registered = dirty.registered;
  uint64_t present = 0, written = 0;
  if (err == 0) {
    dirty.seen_present[dirty.phase] = dirty.sample_present;
    dirty.seen_written[dirty.phase] = dirty.sample_written;
    for (int k = 0; k < SAMPLE_STRIDE; k++) present += dirty.seen_present[k], written += dirty.seen_written[k];
  }
  // The window's count, not this sample's: on a heap of a few MiB most
  // of the sixteenths are empty.
  dirty.lazy = err == 0 && present >= SAMPLE_MIN_PAGES &&
               written * fault * FAULT_WEIGHT < present * reprotect;
}

// In a no-stop region: a test's thread reads it while cycles run, and a
// thread stopped holding the lock would hang the final stop's collect.
const char *gort__dirty_sample(uint64_t *present, uint64_t *written) {
  nostop_enter();
  dlock();
  *present = dirty.sample_present;
  *written = dirty.sample_written;
  const char *after = dirty.be == NULL ? "untracked"
                      : dirty.lazy     ? "protected"
                      : dirty.be->count == NULL ? "unprotected"
                                                : "unprotected but a sample";
  dunlock();
  nostop_exit();
  return after;
}

// ---- arming ---------------------------------------------------------------------------------

// Protects every page of the tracked zone: from now on a write marks its
// page.
// Returns the arming's generation (0: no tracking), which the matching
// disarm names. Arming and disarming hold the lock throughout, so a late
// disarm of the last cycle can never undo this cycle's protection.
uint32_t gort__dirty_arm(void) {
  if (dirty.be == NULL) return 0;
  dlock();
  dirty.be->arming(true);
  // Still armed: no disarm ran since the last arm (one handed over and
  // never taken, or one that comes too late, which the new generation
  // makes a no-op). The heap stayed protected, which is always correct; the
  // sample moves on as that disarm would have moved it.
  atomic_store(&gort__dirty_disarm_waiting, 0);
  bool undisarmed = atomic_load(&dirty.armed);
  if (undisarmed) dirty.phase = (dirty.phase + 1) & (SAMPLE_STRIDE - 1);
  bool after_unprotect = !dirty.lazy && !undisarmed;  // what this arm protects again
  measure();
  bool ok = register_new();
  int64_t t = gort__os_thread_cpu_ns();
  for (uint32_t i = 0; ok && i < dirty.registered; i++) {
    int r = dirty.be->protect(dirty.lo[i], dirty.reg_hi[i]);
    if (r < 0) {
      fall_back("protecting the heap failed", r);
      ok = false;
    }
  }
  int64_t spent = gort__os_thread_cpu_ns() - t;
  cost.arm_ns = after_unprotect && spent > 0 ? (uint64_t)spent : 0;
  uint32_t gen = 0;
  if (ok) {
    gen = ++dirty.gen ? dirty.gen : ++dirty.gen;  // never 0
    atomic_store(&dirty.armed, true);
  }
  dunlock();
  return gen;
}

void gort__dirty_heap_grew(uintptr_t base, uintptr_t bytes) {
  if (!atomic_load(&dirty.armed)) return;  // the next arm registers it
  dlock();
  if (dirty.be != NULL && atomic_load(&dirty.armed) && register_new()) {
    int r = dirty.be->protect(base, base + bytes);
    if (r < 0) fall_back("protecting the heap failed", r);
  }
  dunlock();
}

// Reports the runs of pages written since the last arm or collect,
// protecting them again before they are reported; false if tracking
// failed (the caller must then treat every marked object as written). A
// reservation registered only now has all its touched pages reported:
// registering protects nothing.
bool gort__dirty_collect(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, uint64_t *pages,
                         bool reprotect) {
  *pages = 0;
  if (dirty.be == NULL || !dirty.armed) return false;
  dlock();
  bool ok = register_new();
  uint32_t n = dirty.registered;
  const dirty_backend_t *be = dirty.be;
  dunlock();
  if (!ok) return false;
  // Ranges heap_grew registers from here on are protected as they come.
  for (uint32_t i = 0; i < n; i++) {
    uintptr_t lo = __atomic_load_n(&dirty.lo[i], __ATOMIC_RELAXED), hi = __atomic_load_n(&dirty.reg_hi[i], __ATOMIC_ACQUIRE);
    while (lo < hi) {
      uintptr_t runs[64][2], walk;
      int64_t r = be->collect(lo, hi, runs, 64, &walk, reprotect);
      if (r < 0) {
        dlock();
        if (dirty.be != NULL) fall_back("collecting the written pages failed", (int)r);
        dunlock();
        return false;
      }
      for (int64_t k = 0; k < r; k++) {
        fn(runs[k][0], runs[k][1], arg);
        *pages += (runs[k][1] - runs[k][0]) >> 12;
      }
      if (walk <= lo) break;  // no progress: cannot happen, but never spin
      lo = walk;
    }
  }
  return true;
}

// Who unprotects. The disarm runs beside the program, and on this VM the
// program's writes make it dear: a write fault while another thread's
// UFFDIO_WRITEPROTECT is in flight flushes the other CPU's TLB (the
// kernel's do_wp_page, when mm_tlb_flush_pending), and the allocating
// thread writes protected pages all through the disarm (its caches were
// flushed in the stop, and it zeroes the slots it takes). GCBench, traced
// (perf, page faults and ioctl windows): 700-1000 of its write faults a
// run fell inside the worker's unprotecting calls, which took 21-33 ms in
// all; with the disarm done while the program was stopped, 5 ms, and
// 800-980 IPIs a run instead of 2,300-4,500 (6% less CPU, but a stop
// longer by 0.08 ms). So a heap of at most DISARM_PROGRAM_MAX_PAGES present
// pages is unprotected by the first program thread that takes an
// allocation's slow path after the cycle (gort__gc_maybe_collect), before
// it writes a slot there (the hand-over is made in the final stop, whose
// flush leaves every cache empty): a pause of its own (here 20-30 ns a
// present page, about 0.1 ms on GCBench), and no write of its races the
// calls. The bound is on what may be present, the heap's in-use and
// unreleased pages (gort__mheap_present_bound), not on the sample's count,
// which is empty at the first cycle and stale while the heap grows: a
// program whose first object is 512 MiB would have unprotected it all on
// its own thread (a reviewer's find). A larger heap takes milliseconds,
// which would be a gap in the program: the worker unprotects it, giving
// way as below. On a host that shadows the guest's page tables a page
// costs about ten times more, and so would the program's pause. A disarm
// no thread took (a program that stopped allocating) leaves the heap
// protected until the next arm, which is correct, and costs a fault per
// page written meanwhile.
#define DISARM_PROGRAM_MAX_PAGES 16384
_Atomic uint32_t gort__dirty_disarm_waiting;
static _Atomic uint64_t handed_over, taken;  // gort__dirty_handovers

void gort__dirty_handovers(uint64_t *handed, uint64_t *took) {
  *handed = atomic_load(&handed_over);
  *took = atomic_load(&taken);
}

bool gort__dirty_disarm_hand_over(uint32_t gen) {
  dlock();
  uint64_t present = gort__mheap_present_bound() >> 12;
  bool handed = gen != 0 && dirty.gen == gen && dirty.armed && dirty.be != NULL && dirty.be->count != NULL &&
                !dirty.lazy && present <= DISARM_PROGRAM_MAX_PAGES;
  if (handed) {
    atomic_store(&gort__dirty_disarm_waiting, gen);
    atomic_fetch_add(&handed_over, 1);
  }
  dunlock();
  return handed;
}

static bool disarm(uint32_t gen, bool give_way);

// On the program's thread, which never gives way: a yield there handed
// its CPU to the benchmark's other threads for a slice, and GCBench's
// longest mutator gap went from 0.4-1.2 ms to 1.6-4.0. In a no-stop
// region: a program thread stopped while it held the lock would hang the
// final stop's collect, which takes it (the worker and heap_grew, the
// lock's other holders, are never stopped holding it). A stop that comes
// meanwhile waits for the disarm (about 0.1 ms here, DISARM_PROGRAM_MAX_PAGES
// at most); the next cycle's arm, which needs the lock, cannot have begun
// its stop.
void gort__dirty_disarm_take(void) {
  uint32_t gen = atomic_exchange(&gort__dirty_disarm_waiting, 0);
  if (gen == 0) return;
  nostop_enter();
  if (disarm(gen, false)) atomic_fetch_add(&taken, 1);
  nostop_exit();
}

void gort__dirty_disarm(uint32_t gen) { (void)disarm(gen, true); }

// Unprotects the heap after the final stop, the program running, unless
// a later cycle armed it again meanwhile (gen is the arm's); false if so.
static bool disarm(uint32_t gen, bool give_way) {
  dlock();
  bool now = gen != 0 && dirty.gen == gen && dirty.armed && dirty.be != NULL;
  if (now) {
    atomic_store(&dirty.armed, false);
    if (dirty.be->count == NULL) {
      for (uint32_t i = 0; i < dirty.registered; i++) dirty.be->unprotect(dirty.lo[i], dirty.reg_hi[i]);
    } else {
      // A new 16th every cycle, lazy or not (the whole heap is protected
      // after a lazy one, so any 16th is a sample): a fixed one could miss
      // a program whose writes fall with the same period.
      dirty.phase = (dirty.phase + 1) & (SAMPLE_STRIDE - 1);
      int64_t t = gort__os_thread_cpu_ns(), next_give = give_way ? gort__nanotime() + GC_GIVE_WAY_NS : 0;
      if (!dirty.lazy)
        for (uint32_t i = 0; i < dirty.registered; i++)
          sample_walk(dirty.lo[i], dirty.reg_hi[i], dirty.phase, false, unprotect_part, &next_give);
      reprice(gort__os_thread_cpu_ns() - t, !dirty.lazy);
    }
    dirty.be->arming(false);
  }
  dunlock();
  return now;
}

// fork: no cycle marks across a fork (the cycle lock is held through it),
// but the last cycle's disarm runs after that lock is dropped, so the heap
// may still be protected: the backend undoes what the child inherited.
// The child probes again at its first cycle.
void gort__dirty_fork_child(void) {
  // Nothing to undo in a process that never probed: writing the struct
  // anyway would cost the child a copy of its page.
  if (!dirty.probed && dirty.be == NULL && dirty.registered == 0) return;
  if (dirty.be != NULL) dirty.be->fork_child(dirty.lo, dirty.reg_hi, dirty.registered);
  dirty.be = NULL;
  dirty.registered = 0;
  // Only the entries ever written: clearing the whole table (64 KiB) cost
  // every fork's child 16 copy-on-write faults before it could exec.
  for (uint32_t i = 0, n = gort__mheap_nreservations(); i < n; i++)
    if (dirty.reg_hi[i] != 0) dirty.reg_hi[i] = 0;
  atomic_store(&dirty.armed, false);
  atomic_store(&dirty.lock, 0);
  atomic_store(&dirty.waiting, 0);
  atomic_store(&gort__dirty_disarm_waiting, 0);
  dirty.probed = false;
}
