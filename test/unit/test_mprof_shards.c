// The heap profiler's registry shards (obs/mprof.c): a sampled block's
// record lives in the shard of the thread its span was made for, named in
// the span's page info (pagemap.h, PINFO_SHARD), whichever thread frees
// it. Every allocation is sampled (GORT_MEMPROFILERATE=1), so that each
// malloc and free goes through a shard. A record lost, duplicated or
// looked for in the wrong shard shows as counts that differ from what was
// done, or as a false "double free" at a free.

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "obs/mprof.h"
#include "test.h"

extern const char __start_gort_test_shards[], __stop_gort_test_shards[];
static _Atomic int sink;  // written by every thread

__attribute__((noinline, used, section("gort_test_shards"))) static void *site_alloc(size_t n) {
  void *p = gort_malloc(n);
  atomic_fetch_add_explicit(&sink, 1, memory_order_relaxed);  // no tail call: this frame stays on the sample's stack
  return p;
}

static uint64_t got_allocs, got_frees;
static void count_site(const bucket_t *b, void *arg) {
  (void)arg;
  for (uint32_t i = 0; i < b->depth; i++)
    if (b->pcs[i] >= (uintptr_t)__start_gort_test_shards && b->pcs[i] < (uintptr_t)__stop_gort_test_shards) {
      got_allocs += b->allocs;
      got_frees += b->frees;
      return;
    }
}
static void count_now(void) {
  got_allocs = got_frees = 0;
  gort__mprof_foreach(count_site, NULL);
}

static uint32_t next_rand(uint32_t *x) {
  *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
  return *x;
}

// Frees a random one of a thread's n live blocks and puts a new one of
// 16 .. 16 + spread - 1 bytes in its place.
static void replace_one(void **live, int n, uint32_t r, uint32_t spread) {
  int k = (int)(r % (uint32_t)n);
  gort_free(live[k]);
  live[k] = site_alloc(16 + r % spread);
}

// ---- one owner, one thread that frees some of its blocks meanwhile ----------------
//
// The owner mallocs and frees its own blocks, and passes every eighth
// block through a ring to the other thread, which frees it at once, while
// the owner records and forgets samples in the same shard.

#define RING 256
#define OWNER_OPS 400000
static _Atomic(void *) ring[RING];
static _Atomic uint64_t handed, freed_remote;
static _Atomic bool owner_done;

static void *remote_freer(void *arg) {
  (void)arg;
  uint32_t i = 0;
  for (;;) {
    void *p = atomic_exchange(&ring[i % RING], NULL);
    if (p != NULL) {
      gort_free(p);
      atomic_fetch_add(&freed_remote, 1);
    } else if (atomic_load(&owner_done) && atomic_load(&freed_remote) == atomic_load(&handed)) {
      return NULL;
    }
    i++;
  }
}

INNER_TEST(an_owner_and_a_thread_freeing_its_blocks_keep_every_record_inner) {
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, remote_freer, NULL) == 0);
  enum { LIVE = 512 };
  void *live[LIVE] = {0};
  uint64_t mallocs = 0;
  uint32_t x = 0xB1A5u;
  uint32_t slot = 0;
  for (int i = 0; i < OWNER_OPS; i++) {
    uint32_t r = next_rand(&x);
    replace_one(live, LIVE, r, 2000);
    mallocs++;
    if (r % 8 == 0) {  // hand one over, to be freed by the other thread
      void *p = site_alloc(16 + (r >> 8) % 500);
      mallocs++;
      void *expected = NULL;
      while (!atomic_compare_exchange_weak(&ring[slot % RING], &expected, p)) expected = NULL;
      slot++;
      atomic_fetch_add(&handed, 1);
    }
  }
  atomic_store(&owner_done, true);
  pthread_join(th, NULL);
  for (int k = 0; k < LIVE; k++) gort_free(live[k]);
  count_now();
  EXPECT_EQ_U64(got_allocs, mallocs, "sampled allocations");
  EXPECT_EQ_U64(got_frees, mallocs, "sampled frees");
}

TEST(an_owner_and_a_thread_freeing_its_blocks_keep_every_record) {
  EXPECT(harness_run_inner("an_owner_and_a_thread_freeing_its_blocks_keep_every_record_inner",
                           "GORT_MEMPROFILERATE=1"));
}

// ---- more threads than shards, each also freeing its neighbour's blocks -------------

#define MANY 12
#define MANY_OPS 60000
static _Atomic(void *) mailbox[MANY][64];
static _Atomic uint64_t many_mallocs;

static void *many_worker(void *arg) {
  int me = (int)(intptr_t)arg;
  uint32_t x = 0x9E3779B9u ^ (uint32_t)me;
  enum { LIVE = 64 };
  void *live[LIVE] = {0};
  uint64_t n = 0;
  for (int i = 0; i < MANY_OPS; i++) {
    uint32_t r = next_rand(&x);
    replace_one(live, LIVE, r, 700);
    n++;
    if (r % 16 == 0) {  // post one to the next thread; free whatever was there
      void *p = site_alloc(32);
      n++;
      void *old = atomic_exchange(&mailbox[(me + 1) % MANY][(r >> 8) % 64], p);
      if (old != NULL) gort_free(old);
    }
  }
  for (int k = 0; k < LIVE; k++) gort_free(live[k]);
  atomic_fetch_add(&many_mallocs, n);
  return NULL;
}

INNER_TEST(more_threads_than_shards_keep_every_record_inner) {
  pthread_t th[MANY];
  for (int i = 0; i < MANY; i++) EXPECT(pthread_create(&th[i], NULL, many_worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < MANY; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < MANY; i++)
    for (int j = 0; j < 64; j++) gort_free(atomic_exchange(&mailbox[i][j], NULL));
  count_now();
  EXPECT_EQ_U64(got_allocs, atomic_load(&many_mallocs), "sampled allocations");
  EXPECT_EQ_U64(got_frees, atomic_load(&many_mallocs), "sampled frees");
}

TEST(more_threads_than_shards_keep_every_record) {
  EXPECT(harness_run_inner("more_threads_than_shards_keep_every_record_inner", "GORT_MEMPROFILERATE=1"));
}

// ---- fork while another thread records samples -------------------------------------
//
// The fork takes every shard's lock, so no record is copied mid-change;
// the child then samples and frees on its own, and exits 0.

static _Atomic bool stop_sampler;
static void *sampler(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_sampler)) gort_free(site_alloc(48));
  return NULL;
}

INNER_TEST(a_fork_while_a_thread_samples_leaves_a_working_child_inner) {
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, sampler, NULL) == 0);
  int bad = 0;
  for (int i = 0; i < 60; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      // (The parent's sampler may have been between a malloc and its free:
      // the child counts its own records only.)
      count_now();
      uint64_t allocs0 = got_allocs, frees0 = got_frees;
      void *keep[100];
      for (int r = 0; r < 20; r++) {
        for (int j = 0; j < 100; j++) keep[j] = site_alloc(16 + (size_t)j * 8);
        for (int j = 0; j < 100; j++) gort_free(keep[j]);
      }
      count_now();
      _exit(got_allocs - allocs0 == 2000 && got_frees - frees0 == 2000 ? 0 : 3);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  }
  atomic_store(&stop_sampler, true);
  pthread_join(th, NULL);
  EXPECT(bad == 0, "%d of 60 children failed", bad);
  count_now();
  EXPECT_EQ_U64(got_allocs, got_frees, "the parent's records balance");
}

TEST(a_fork_while_a_thread_samples_leaves_a_working_child) {
  EXPECT(harness_run_inner("a_fork_while_a_thread_samples_leaves_a_working_child_inner",
                           "GORT_MEMPROFILERATE=1"));
}

// ---- a large block on pages a collected span left ------------------------------------
//
// Collected spans are small spans too, with a class in their pages' info.
// A large block made on such pages after the collector freed them must
// not read as a block of a small span: in hardened mode a large block's
// first page has no PINFO_LARGE, and a freed span's info was left as it
// was (a review's find: every sampled large block's record then stayed in
// the registry after its free, and a later double free at that address
// was taken for a sampled block's free).

#include "gort/gc.h"

#define GC_OBJS 20000
static void *volatile gc_objs[GC_OBJS];

__attribute__((noinline)) static void gc_fill(void) {
  for (int i = 0; i < GC_OBJS; i++) gc_objs[i] = gort_gc_alloc_noscan(2048);
}
__attribute__((noinline)) static void gc_drop(void) {
  for (int i = 0; i < GC_OBJS; i++) gc_objs[i] = NULL;
}

INNER_TEST(large_blocks_on_pages_of_freed_collected_spans_keep_their_records_inner) {
  gc_fill();
  gc_drop();
  gort_gc_collect();
  gort_gc_collect();
  count_now();
  uint64_t allocs0 = got_allocs, frees0 = got_frees;
  enum { L = 200 };
  void *big[L];
  for (int i = 0; i < L; i++) big[i] = site_alloc(40000 + (size_t)i);
  for (int i = 0; i < L; i++) gort_free(big[i]);
  count_now();
  EXPECT_EQ_U64(got_allocs - allocs0, L, "sampled large allocations");
  EXPECT_EQ_U64(got_frees - frees0, L, "sampled large frees");
}

TEST(large_blocks_on_pages_of_freed_collected_spans_keep_their_records) {
  EXPECT(harness_run_inner("large_blocks_on_pages_of_freed_collected_spans_keep_their_records_inner",
                           "GORT_MEMPROFILERATE=1 GORT_DEBUG=harden=1"));
  EXPECT(harness_run_inner("large_blocks_on_pages_of_freed_collected_spans_keep_their_records_inner",
                           "GORT_MEMPROFILERATE=1"));
}
