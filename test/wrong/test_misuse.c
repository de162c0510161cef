// Misuse: each case runs in a child that must abort with gort's one-line
// fatal error naming the misuse (DESIGN.md, "Error policy").

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "gort/alloc.h"
#include "test.h"

static int a_global;

static void double_free_small(void *arg) {
  (void)arg;
  void *p = gort_malloc(40);
  gort_free(p);
  gort_free(p);
}

static void double_free_small_after_others(void *arg) {
  (void)arg;
  void *p = gort_malloc(40);
  void *q = gort_malloc(40);
  gort_free(p);
  gort_free(q);
  gort_free(p);
}

static void double_free_large(void *arg) {
  (void)arg;
  void *p = gort_malloc(1 << 20);
  gort_free(p);
  gort_free(p);
}

static void free_stack(void *arg) {
  (void)arg;
  char buf[64];
  gort_free(buf);
}

static void free_global(void *arg) {
  (void)arg;
  gort_free(&a_global);
}

static void free_foreign_mapping(void *arg) {
  (void)arg;
  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  gort_free(m);
}

static void free_unmapped(void *arg) {
  (void)arg;
  gort_free((void *)(uintptr_t)0x10);
}

// Not even a user-space address: the free path prefetches the block for
// writing before it looks the pointer up (malloc.c), and a prefetch must
// not fault where the lookup would name the misuse.
static void free_noncanonical(void *arg) {
  (void)arg;
  gort_free((void *)(uintptr_t)0xdead000000000000ULL);
}

static void free_interior_small(void *arg) {
  (void)arg;
  char *p = gort_malloc(100);
  gort_free(p + 16);
}

static void free_interior_large(void *arg) {
  (void)arg;
  char *p = gort_malloc(100000);
  gort_free(p + 8192);
}

static void realloc_freed(void *arg) {
  (void)arg;
  void *p = gort_malloc(64);
  gort_free(p);
  void *volatile q = gort_realloc(p, 128);  // fatal before it returns
  (void)q;
}

// realloc decides a block that stays in place from the page info alone
// (malloc.c, "Realloc"): these sizes would stay, so each must still die.
// (A large block freed back to the heap is not among them: its first pages
// may serve the next small span, so the address may be live again.)
static void realloc_in_place_freed_small(void *arg) {
  (void)arg;
  void *p = gort_malloc(64);
  gort_free(p);
  void *volatile q = gort_realloc(p, 60);
  (void)q;
}

static void realloc_in_place_kept_large(void *arg) {
  (void)arg;
  void *p = gort_malloc(40000);
  gort_free(p);
  void *volatile q = gort_realloc(p, 39000);
  (void)q;
}

static void realloc_in_place_large_interior(void *arg) {
  (void)arg;
  char *p = gort_malloc(1 << 20);
  void *volatile q = gort_realloc(p + 8192, 100000);
  (void)q;
}

static void realloc_stack(void *arg) {
  (void)arg;
  char buf[32];
  void *volatile q = gort_realloc(buf, 128);
  (void)q;
}

static void *free_it(void *p) {
  gort_free(p);
  return NULL;
}

static void double_free_across_threads(void *arg) {
  (void)arg;
  void *keep = gort_malloc(48);  // keeps the span in use
  void *p = gort_malloc(48);
  pthread_t t;
  pthread_create(&t, NULL, free_it, p);
  pthread_join(t, NULL);
  pthread_create(&t, NULL, free_it, p);
  pthread_join(t, NULL);
  gort_free(keep);
}

static void free_in_freed_large_pages(void *arg) {
  (void)arg;
  char *p = gort_malloc(1 << 20);
  gort_free(p);
  gort_free(p + (64 << 10));
}

// The block's pages merged with its freed neighbour's: its span is gone.
static void double_free_large_after_merge(void *arg) {
  (void)arg;
  char *a = gort_malloc(1 << 20), *b = gort_malloc(1 << 20);
  gort_free(b);
  gort_free(a);
  gort_free(b);
}

// Blocks of 40000 bytes: a freed one's span is kept by its thread for
// reuse (alloc/mcache.c, "Large blocks").
static void double_free_kept_large(void *arg) {
  (void)arg;
  void *p = gort_malloc(40000);
  gort_free(p);
  gort_free(p);
}

static void free_inside_kept_large(void *arg) {
  (void)arg;
  char *p = gort_malloc(40000);
  gort_free(p);
  gort_free(p + 8192);
}

static void realloc_kept_large(void *arg) {
  (void)arg;
  void *p = gort_malloc(40000);
  gort_free(p);
  void *volatile q = gort_realloc(p, 50000);
  (void)q;
}

// Two threads free one kept-size block at once: exactly one wins.
static void double_free_kept_large_racing(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    void *p = gort_malloc(40000);
    pthread_t t;
    pthread_create(&t, NULL, free_it, p);
    gort_free(p);
    pthread_join(t, NULL);
  }
}

#define MISUSE(name, fn, msg) \
  TEST(name) { EXPECT(harness_expect_fatal(fn, NULL, msg)); }

MISUSE(double_free_of_a_small_block_is_fatal, double_free_small, "gort: fatal error: free(): double free 0x")
MISUSE(double_free_after_other_frees_is_fatal, double_free_small_after_others, "free(): double free")
MISUSE(double_free_of_a_large_block_is_fatal, double_free_large, "gort: fatal error: free(): double free 0x")
MISUSE(double_free_from_other_threads_is_fatal, double_free_across_threads, "free(): double free")
MISUSE(free_of_a_stack_address_is_fatal, free_stack, "free(): invalid pointer (not allocated by gort)")
MISUSE(free_of_a_global_is_fatal, free_global, "free(): invalid pointer (not allocated by gort)")
MISUSE(free_of_a_foreign_mapping_is_fatal, free_foreign_mapping, "free(): invalid pointer (not allocated by gort)")
MISUSE(free_of_an_unmapped_address_is_fatal, free_unmapped, "free(): invalid pointer (not allocated by gort) 0x10")
MISUSE(free_of_a_noncanonical_address_is_fatal, free_noncanonical,
       "free(): invalid pointer (not allocated by gort) 0xdead000000000000")
MISUSE(free_of_an_interior_pointer_is_fatal, free_interior_small, "free(): invalid pointer (not the start of a block)")
MISUSE(free_of_a_large_interior_pointer_is_fatal, free_interior_large, "free(): invalid pointer (not the start of a block)")
MISUSE(free_inside_freed_large_pages_is_fatal, free_in_freed_large_pages, "gort: fatal error: free(): ")
MISUSE(double_free_of_a_merged_large_block_is_fatal, double_free_large_after_merge,
       "free(): double free or invalid pointer (the pages are free)")
MISUSE(double_free_of_a_kept_large_block_is_fatal, double_free_kept_large, "gort: fatal error: free(): double free 0x")
MISUSE(free_inside_a_kept_large_block_is_fatal, free_inside_kept_large,
       "free(): double free or invalid pointer (the pages are free)")
MISUSE(realloc_of_a_kept_large_block_is_fatal, realloc_kept_large, "realloc(): double free")
MISUSE(racing_double_free_of_a_large_block_is_fatal, double_free_kept_large_racing, "free(): double free")
MISUSE(realloc_of_a_freed_block_is_fatal, realloc_freed, "realloc(): double free")
MISUSE(realloc_in_place_of_a_freed_small_block_is_fatal, realloc_in_place_freed_small, "realloc(): double free")
MISUSE(realloc_in_place_of_a_kept_large_block_is_fatal, realloc_in_place_kept_large, "realloc(): double free")
MISUSE(realloc_in_place_inside_a_large_block_is_fatal, realloc_in_place_large_interior,
       "realloc(): invalid pointer (not the start of a block)")
MISUSE(realloc_of_a_stack_address_is_fatal, realloc_stack, "realloc(): invalid pointer (not allocated by gort)")
