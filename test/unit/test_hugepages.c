// Transparent huge pages for big heaps (GORT_DEBUG=hugepages=1; alloc/
// mheap.c, "Huge pages"): a reservation of 64 MiB or more asks for them,
// smaller ones never do, the first release from an advised range withdraws
// the ask (so that khugepaged cannot refill released memory), and without
// the option nothing asks. The kernel's own view (/proc/self/smaps: the
// mapping's VmFlags "hg" for MADV_HUGEPAGE, "nh" for MADV_NOHUGEPAGE) is
// what is checked, not gort's bookkeeping alone.

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc/mheap.h"
#include "gort/alloc.h"
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
