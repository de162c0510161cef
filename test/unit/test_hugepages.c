// Transparent huge pages for big heaps (GORT_DEBUG=hugepages=1; alloc/
// mheap.c, "Huge pages"): a reservation of 64 MiB or more asks for them,
// smaller ones never do, the first release from an advised range withdraws
// the ask (so that khugepaged cannot refill released memory), and without
// the option nothing asks. The kernel's own view (/proc/self/smaps: the
// mapping's VmFlags "hg" for MADV_HUGEPAGE, "nh" for MADV_NOHUGEPAGE) is
// what is checked, not gort's bookkeeping alone.

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc/mheap.h"
#include "gort/alloc.h"
#include "gort/metrics.h"
#include "os/os.h"
#include "test.h"

#define MiB ((size_t)1 << 20)
// ThreadSanitizer's shadow memory dominates RSS (test_scavenger.c).
#ifdef GORT_NO_SHIM
#define CHECK_RSS 0
#else
#define CHECK_RSS 1
#endif
enum { NBLOCKS = 48 };         // 48 large objects of 8 MiB: the heap passes 64 MiB
static const size_t BLOCK = 8 * MiB;

// A kernel built without transparent huge pages refuses the advice.
static bool thp_built(void) { return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0; }

typedef struct {
  bool found, hg, nh;
  long anon_huge_kb;
} vma_t;

// The mapping that holds p, as /proc/self/smaps describes it.
static vma_t vma_of(const void *p) {
  vma_t v = {0};
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return v;
  char line[512];
  bool in = false;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
      if (in) break;  // past the mapping
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      v.found |= in;
      continue;
    }
    if (!in) continue;
    long kb;
    if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) v.anon_huge_kb = kb;
    if (strncmp(line, "VmFlags:", 8) == 0) {
      v.hg = strstr(line, " hg") != NULL;
      v.nh = strstr(line, " nh") != NULL;
    }
  }
  fclose(f);
  return v;
}

static char *blocks[NBLOCKS];

// Allocates and writes the blocks (each a large object, straight from the
// page heap); returns how many of them lie in mappings that ask for huge
// pages.
static int alloc_blocks(void) {
  int asking = 0;
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = gort_malloc(BLOCK);
    EXPECT(blocks[i] != NULL, "block %d", i);
    for (size_t off = 0; off < BLOCK; off += 4096) blocks[i][off] = (char)(i + 1);  // every page touched
    blocks[i][BLOCK - 1] = (char)(i + 1);
  }
  for (int i = 0; i < NBLOCKS; i++) {
    vma_t v = vma_of(blocks[i]);
    EXPECT(v.found, "block %d at %p in no mapping", i, (void *)blocks[i]);
    asking += v.hg;
  }
  for (int i = 0; i < NBLOCKS; i++)
    EXPECT(blocks[i][0] == i + 1 && blocks[i][BLOCK - 1] == i + 1, "block %d kept its bytes", i);
  return asking;
}

INNER_TEST(big_reservations_ask_for_huge_pages_inner) {
  int asking = alloc_blocks();
  // The first blocks land in the heap's first, small reservations (4 to
  // 32 MiB), which never ask; the later ones in 64 MiB ones, which do.
  EXPECT(!vma_of(blocks[0]).hg, "the first block's small reservation asks for huge pages");
  EXPECT(asking >= NBLOCKS / 2, "only %d of %d blocks in mappings that ask for huge pages", asking, NBLOCKS);
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  EXPECT(hs.huge_bytes >= 64 * MiB, "heap asking for huge pages: %llu bytes", (unsigned long long)hs.huge_bytes);
  vma_t last = vma_of(blocks[NBLOCKS - 1]);
  printf("    (the last block's mapping: %ld kB in huge pages)\n", last.anon_huge_kb);
}

TEST(big_reservations_ask_for_huge_pages) {
  SKIP_IF(!thp_built(), "the kernel has no transparent huge pages");
  EXPECT(harness_run_inner("big_reservations_ask_for_huge_pages_inner", "GORT_DEBUG=hugepages=1"));
}

INNER_TEST(a_release_withdraws_the_ask_inner) {
  long base_kb = (long)(gort__os_rss() >> 10);
  EXPECT(alloc_blocks() > 0, "no block asks for huge pages");
  for (int i = 0; i < NBLOCKS; i++) gort_free(blocks[i]);
  gort_free_os_memory();
  long after_kb = (long)(gort__os_rss() >> 10);
  int asking = 0, refusing = 0;
  for (int i = 0; i < NBLOCKS; i++) {
    vma_t v = vma_of(blocks[i]);  // the addresses stay reserved
    asking += v.hg;
    refusing += v.nh;
  }
  EXPECT(asking == 0, "%d blocks' mappings still ask for huge pages after their release", asking);
  EXPECT(refusing >= NBLOCKS / 2, "only %d blocks' mappings refuse huge pages (khugepaged may refill them)", refusing);
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  EXPECT(hs.huge_bytes == 0 && hs.huge_withdrawn > 0, "asking %llu bytes, %llu ranges withdrawn",
         (unsigned long long)hs.huge_bytes, (unsigned long long)hs.huge_withdrawn);
  if (CHECK_RSS) EXPECT(after_kb - base_kb < 16 * 1024, "RSS %ld KiB above the start after the release", after_kb - base_kb);
}

TEST(a_release_withdraws_the_ask) {
  SKIP_IF(!thp_built(), "the kernel has no transparent huge pages");
  EXPECT(harness_run_inner("a_release_withdraws_the_ask_inner", "GORT_DEBUG=hugepages=1"));
}

INNER_TEST(nothing_asks_by_default_inner) {
  EXPECT(alloc_blocks() == 0, "a mapping asks for huge pages without GORT_DEBUG=hugepages=1");
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  EXPECT_EQ_U64(hs.huge_bytes, 0, "heap asking for huge pages");
}

TEST(nothing_asks_by_default) {
  // GORT_DEBUG empty: unset, whatever the suite runs with.
  EXPECT(harness_run_inner("nothing_asks_by_default_inner", "GORT_DEBUG="));
}

// ---- fork while threads allocate, with huge pages asked for ----------------------

// A heap of FORK_BLOCKS blocks of 8 MiB (past 64 MiB: advised reservations,
// with huge pages in them, touched) while two threads malloc, realloc and
// free blocks of 16 B to 1 MiB; the main thread forks NFORKS times. Each
// child frees its copies of the blocks, allocates, reallocates and frees
// across sizes, returns everything free to the OS (the first release in an
// advised range withdraws the advice: a madvise in the child, on ranges it
// shares copy-on-write with its parent) and checks that nothing asks any
// more, in gort's table and in the kernel's mappings. Every child must
// exit 0 within CHILD_TIMEOUT_MS; the parent's blocks must be intact.
enum { FORK_BLOCKS = 14, NFORKS = 32, WSLOTS = 64, CHILD_TIMEOUT_MS = 10000 };
static _Atomic bool workers_stop;
static _Atomic long worker_ops;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t worker_size(uint64_t *r) {
  uint64_t x = test_rand(r);
  switch (x % 8) {
    case 0: return 64 * 1024 + (size_t)(x >> 8) % (MiB - 64 * 1024);  // large: pages of the heap
    case 1:
    case 2: return 1024 + (size_t)(x >> 8) % (64 * 1024);
    default: return 16 + (size_t)(x >> 8) % 1024;
  }
}

static void *hp_worker(void *arg) {
  uint64_t r = harness_seed() ^ (uint64_t)(uintptr_t)arg;
  unsigned char *slot[WSLOTS] = {0};
  size_t size[WSLOTS] = {0};
  while (!atomic_load_explicit(&workers_stop, memory_order_relaxed)) {
    int i = (int)(test_rand(&r) % WSLOTS);
    unsigned char *p = slot[i];
    if (p != NULL && (p[0] != (unsigned char)size[i] || p[size[i] - 1] != (unsigned char)i))
      harness_fail(__FILE__, __LINE__, "worker block %p of %zu bytes corrupted", (void *)p, size[i]);
    switch (test_rand(&r) % 3) {
      case 0:
        gort_free(p);
        p = gort_malloc(size[i] = worker_size(&r));
        break;
      case 1:
        p = gort_realloc(p, size[i] = worker_size(&r));
        break;
      default:
        gort_free(p);
        slot[i] = NULL;
        continue;
    }
    if (p == NULL) harness_fail(__FILE__, __LINE__, "worker: allocation of %zu bytes failed", size[i]);
    p[0] = (unsigned char)size[i];
    p[size[i] - 1] = (unsigned char)i;
    slot[i] = p;
    // A pause now and then: two threads that never stop starve the
    // children of the 2-CPU machines the tests run on.
    if (atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed) % 4 == 0) usleep(100);
  }
  for (int i = 0; i < WSLOTS; i++) gort_free(slot[i]);
  return NULL;
}

// Writes byte v at p's first and last bytes and every 256 KiB between: a
// page fault here costs tens of microseconds, and the children must be
// quick.
static void touch(unsigned char *p, size_t n, unsigned char v) {
  for (size_t off = 0; off < n; off += 256 * 1024) p[off] = v;
  p[n - 1] = v;
}

static bool touched(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t off = 0; off < n; off += 256 * 1024)
    if (p[off] != v) return false;
  return p[n - 1] == v;
}

// What each child does; its exit status (0: all well, CHILD_NONE_ADVISED:
// all well, but no range was advised at the fork; no stdio but the smaps
// reads).
#define CHILD_NONE_ADVISED 3
static int hp_child_work(unsigned n) {
  // The counts are the parent's until this child withdraws a range
  // itself. The parent's own releases (its scavenger, behind its workers'
  // frees) may have withdrawn every range before this fork: then this
  // child has none to withdraw (the parent counts the forks that had).
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  uint64_t withdrawn_at_fork = hs.huge_withdrawn, advised_at_fork = hs.huge_bytes;
  for (int i = 0; i < FORK_BLOCKS; i++) {
    if (blocks[i][0] != i + 1 || blocks[i][BLOCK - 1] != i + 1) return 10;
    gort_free(blocks[i]);
  }
  static const size_t sizes[] = {16, 48, 200, 1000, 5000, 40000, 300000, 2 * MiB, 5 * MiB, 12 * MiB};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  unsigned char *p[NS];
  for (int i = 0; i < NS; i++) {
    p[i] = gort_malloc(sizes[i]);
    if (p[i] == NULL) return 11;
    touch(p[i], sizes[i], (unsigned char)(i + 1));
  }
  // Small to large and back, large to larger.
  unsigned char *q = gort_realloc(p[1], 3 * MiB + n * 4096);
  if (q == NULL || q[0] != 2 || q[47] != 2) return 12;
  q[3 * MiB - 1] = 7;
  q = gort_realloc(q, 24);
  if (q == NULL || q[0] != 2) return 13;
  p[1] = q;
  q = gort_realloc(p[7], 7 * MiB);
  if (q == NULL || !touched(q, 2 * MiB, 8)) return 14;
  touch(q + 2 * MiB, 5 * MiB, 8);
  p[7] = q;
  for (int i = 0; i < NS; i++) {
    if (i != 1 && !touched(p[i], i == 7 ? 7 * MiB : sizes[i], (unsigned char)(i + 1))) return 20 + i;
    gort_free(p[i]);
  }
  // Pages the blocks' frees and the release give back must read zero in
  // a calloc'ed block (one page in 16 read).
  gort_free_os_memory();
  unsigned char *z = gort_calloc(1, 24 * MiB);
  if (z == NULL) return 15;
  for (size_t off = 0; off < 24 * MiB; off += 16 * 4096)
    if (z[off] != 0) return 16;
  gort_free(z);
  gort_free_os_memory();
  gort__mheap_read_stats(&hs);
  if (hs.huge_withdraw_failures != 0) return 40;
  if (hs.huge_bytes != 0) return 41;  // every advised range had free pages to release
  if (advised_at_fork != 0 && hs.huge_withdrawn == withdrawn_at_fork) return 42;
  // The kernel's view: the blocks' ranges no longer ask (every tenth
  // child: a read of smaps walks every mapping).
  if (n % 10 == 0)
    for (int i = 0; i < FORK_BLOCKS; i++)
      if (vma_of(blocks[i]).hg) return 43;
  return advised_at_fork != 0 ? 0 : CHILD_NONE_ADVISED;
}

INNER_TEST(fork_while_threads_allocate_inner) {
  for (int i = 0; i < FORK_BLOCKS; i++) {
    blocks[i] = gort_malloc(BLOCK);
    EXPECT(blocks[i] != NULL, "block %d", i);
    for (size_t off = 0; off < BLOCK; off += 4096) blocks[i][off] = (char)(i + 1);
    blocks[i][BLOCK - 1] = (char)(i + 1);
  }
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  EXPECT(hs.huge_bytes >= 32 * MiB, "heap asking for huge pages: %llu bytes: the case proves nothing",
         (unsigned long long)hs.huge_bytes);
  EXPECT(vma_of(blocks[FORK_BLOCKS - 1]).hg, "the last block's mapping does not ask for huge pages");
  printf("    (the last block's mapping: %ld kB in huge pages)\n", vma_of(blocks[FORK_BLOCKS - 1]).anon_huge_kb);
  pthread_t t[2];
  for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, hp_worker, (void *)(i + 1));
  while (atomic_load(&worker_ops) < 1000) usleep(100);
  double t0 = now_s(), slowest = 0;
  unsigned advised_forks = 0;
  for (unsigned n = 0; n < NFORKS; n++) {
    fflush(NULL);
    double f0 = now_s();
    pid_t pid = fork();
    if (pid < 0) harness_fail(__FILE__, __LINE__, "fork %u: %s", n, strerror(errno));
    if (pid == 0) _exit(hp_child_work(n));
    int st = harness_wait_child(pid, CHILD_TIMEOUT_MS);
    if (now_s() - f0 > slowest) slowest = now_s() - f0;
    if (st == -1)
      harness_fail(__FILE__, __LINE__, "child %u hung: killed after %d s", n, CHILD_TIMEOUT_MS / 1000);
    if (st == -2) harness_fail(__FILE__, __LINE__, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(st))
      harness_fail(__FILE__, __LINE__, "child %u died of signal %d (%s)", n, WTERMSIG(st), strsignal(WTERMSIG(st)));
    if (WEXITSTATUS(st) == 0) advised_forks++;
    else if (WEXITSTATUS(st) != CHILD_NONE_ADVISED)
      harness_fail(__FILE__, __LINE__, "child %u exited %d (see hp_child_work)", n, WEXITSTATUS(st));
  }
  long ops = atomic_load(&worker_ops);
  atomic_store(&workers_stop, true);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  printf("    (%d forks in %.0f ms, the slowest %.0f ms, %u with advised ranges; %ld worker operations)\n",
         NFORKS, (now_s() - t0) * 1e3, slowest * 1e3, advised_forks, ops);
  EXPECT(advised_forks > 0, "no child was forked with an advised range: its withdrawal went untested");
  for (int i = 0; i < FORK_BLOCKS; i++)
    for (size_t off = 0; off < BLOCK; off += 4096)
      if (blocks[i][off] != i + 1) harness_fail(__FILE__, __LINE__, "block %d changed at %zu", i, off);
  gort__mheap_read_stats(&hs);
  EXPECT_EQ_U64(hs.huge_withdraw_failures, 0, "withdrawals the kernel refused in the parent");
}

TEST(fork_while_threads_allocate_with_huge_pages) {
  SKIP_IF(!thp_built(), "the kernel has no transparent huge pages");
  SKIP_IF(!CHECK_RSS, "ThreadSanitizer ends a multi-threaded fork's child that starts a thread (status 66)");
  EXPECT(harness_run_inner("fork_while_threads_allocate_inner", "GORT_DEBUG=hugepages=1"));
}

// ---- the soft memory limit ------------------------------------------------------

// Rounds under a soft limit of LIMIT_MIB: each allocates ROUND_MIB in
// blocks of a size the last round's cannot hold, while every other block
// of the last round stays live (the others freed: holes of the old size
// between them). Without releases the heap would keep live, holes and the
// new blocks resident, 192 MiB; the limit must return the holes first, in
// ranges that asked for huge pages (the heap passes 64 MiB: they do), so
// that the withdrawal of the ask runs under the limit's releases as well.
// After each round the heap's resident pages must be near the limit; at
// the end, with KEEP blocks of 8 MiB live and everything else free and
// released, RSS must be near them, nothing may ask for huge pages any
// more, in gort's table or the kernel's mappings, and no withdrawal may
// have been refused.
enum { ROUNDS = 7, ROUND_MIB = 96, LIMIT_MIB = 160, KEEP = 3 };
static const size_t round_size[ROUNDS] = {64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 40 << 10, 2 << 20};

INNER_TEST(memory_limit_with_huge_pages_inner) {
  gort_set_memory_limit((int64_t)LIMIT_MIB * (int64_t)MiB);
  EXPECT_EQ_U64(gort_set_memory_limit(-1), (uint64_t)LIMIT_MIB * MiB, "the limit in force");
  long base_kb = (long)(gort__os_rss() >> 10);
  static char *held[2][ROUND_MIB * 32];  // 40 KiB blocks: 2458
  size_t held_n[2] = {0, 0}, held_size[2] = {0, 0};
  uint64_t most_asked = 0, most_resident = 0;
  long most_rss_kb = 0;
  int over_round = -1, rss_over_round = -1;  // the first round past the limit (checked last)
  for (int round = 0; round < ROUNDS; round++) {
    int cur = round % 2, prev = 1 - cur;
    size_t size = round_size[round], n = (size_t)ROUND_MIB * MiB / size;
    held_size[cur] = size;
    held_n[cur] = n;
    for (size_t i = 0; i < n; i++) {
      held[cur][i] = gort_malloc(size);
      EXPECT(held[cur][i] != NULL, "round %d: block %zu of %zu bytes", round, i, size);
      for (size_t off = 0; off < size; off += 4096) held[cur][i][off] = (char)(round + 1);
    }
    heap_stats_t hs;
    gort__mheap_read_stats(&hs);
    if (hs.huge_bytes > most_asked) most_asked = hs.huge_bytes;
    gort_memstats_t m;
    gort_read_memstats(&m);
    uint64_t resident = m.heap_sys - m.heap_released;
    if (resident > most_resident) most_resident = resident;
    long rss_kb = (long)(gort__os_rss() >> 10);
    if (rss_kb > most_rss_kb) most_rss_kb = rss_kb;
    if (resident > (uint64_t)(LIMIT_MIB + 16) * MiB && over_round < 0) over_round = round;
    if (rss_kb - base_kb >= (LIMIT_MIB + 32) * 1024 && rss_over_round < 0) rss_over_round = round;
    // The last round's live half goes; this round's every other block.
    for (size_t i = 0; i < held_n[prev]; i += 2) {
      char *b = held[prev][i];
      EXPECT(b[0] == round && b[(held_size[prev] - 1) / 4096 * 4096] == round, "round %d: block %zu changed",
             round - 1, i);
      gort_free(b);
    }
    held_n[prev] = 0;
    for (size_t i = 1; i < n; i += 2) gort_free(held[cur][i]);
  }
  int last = (ROUNDS - 1) % 2;
  for (size_t i = 0; i < held_n[last]; i += 2) gort_free(held[last][i]);
  char *keep[KEEP];
  for (int i = 0; i < KEEP; i++) {
    keep[i] = gort_malloc(8 * MiB);
    EXPECT(keep[i] != NULL, "kept block %d", i);
    memset(keep[i], 0x5a, 8 * MiB);
  }
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  uint64_t withdrawn_by_limit = hs.huge_withdrawn;
  gort_free_os_memory();
  long after_kb = (long)(gort__os_rss() >> 10);
  gort__mheap_read_stats(&hs);
  printf("    (most asking %llu MiB, most resident %llu MiB, RSS at most %ld MiB above the start, %ld MiB after; "
         "%llu ranges withdrawn before the final release, %llu after)\n",
         (unsigned long long)(most_asked / MiB), (unsigned long long)(most_resident / MiB),
         (most_rss_kb - base_kb) / 1024, (after_kb - base_kb) / 1024, (unsigned long long)withdrawn_by_limit,
         (unsigned long long)hs.huge_withdrawn);
  fflush(stdout);  // a failure below exits at once
  EXPECT(most_asked >= 32 * MiB, "the heap asked for huge pages for at most %llu bytes: the case proves nothing",
         (unsigned long long)most_asked);
  EXPECT_EQ_U64(hs.huge_withdraw_failures, 0, "withdrawals the kernel refused");
  EXPECT(hs.huge_withdrawn > 0, "no advised range was withdrawn");
  EXPECT(hs.huge_bytes == 0, "%llu bytes still ask for huge pages after a release of every free page",
         (unsigned long long)hs.huge_bytes);
  for (int i = 0; i < KEEP; i++) {
    EXPECT(!vma_of(keep[i]).hg, "kept block %d's mapping still asks for huge pages", i);
    EXPECT(keep[i][0] == 0x5a && keep[i][8 * MiB - 1] == 0x5a, "kept block %d changed", i);
  }
  if (CHECK_RSS)
    EXPECT(after_kb - base_kb < (KEEP * 8 + 16) * 1024, "RSS %ld MiB above the start with %d MiB live",
           (after_kb - base_kb) / 1024, KEEP * 8);
  // At most 144 MiB is in use at any time. (Failed until 2026-12-06, with
  // hugepages=1 or without: 184-223 MiB resident under the 160 MiB limit
  // at the end of a round. The round's allocations refaulted released
  // pages without growing the heap, so the limit's check before growth
  // never ran, while the pages freed just before, below the eager
  // threshold, waited out scavdelay. alloc/scavenger.c, on_recommit.)
  EXPECT(over_round < 0, "from round %d: up to %llu MiB of heap resident under a %d MiB limit", over_round,
         (unsigned long long)(most_resident / MiB), LIMIT_MIB);
  if (CHECK_RSS)
    EXPECT(rss_over_round < 0, "from round %d: RSS up to %ld MiB above the start under a %d MiB limit", rss_over_round,
           (most_rss_kb - base_kb) / 1024, LIMIT_MIB);
}

TEST(memory_limit_with_huge_pages) {
  SKIP_IF(!thp_built(), "the kernel has no transparent huge pages");
  EXPECT(harness_run_inner("memory_limit_with_huge_pages_inner", "GORT_DEBUG=hugepages=1"));
}
