// Multithreaded stress: threads allocate blocks of random sizes, write a
// pattern derived from the block's address and size into each, and free
// them locally or by handing them to another thread through a mailbox;
// every block's pattern is verified before it is freed. Deterministic
// given --seed. Runs about 2 s in make test, about a minute in make stress.

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

enum { NTHREADS = 6, SLOTS = 4096, MAILBOX = 1024 };

typedef struct {
  pthread_mutex_t lock;
  void *items[MAILBOX];
  size_t sizes[MAILBOX];
  int n;
} mailbox_t;

static mailbox_t boxes[NTHREADS];
static _Atomic long verified;

static uint64_t pattern_word(const void *p, size_t n) {
  return ((uintptr_t)p * 0x9E3779B97F4A7C15ULL) ^ n;
}

static void fill(void *p, size_t n) {
  uint64_t w = pattern_word(p, n);
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(w >> ((i & 7) * 8)) ^ (unsigned char)i;
}

static void verify(void *p, size_t n) {
  uint64_t w = pattern_word(p, n);
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != ((unsigned char)(w >> ((i & 7) * 8)) ^ (unsigned char)i))
      harness_fail(__FILE__, __LINE__, "block %p size %zu corrupted at byte %zu", p, n, i);
  atomic_fetch_add(&verified, 1);
}

// Checks that the first keep bytes at q hold the pattern of the block that
// was at old with size old_n (realloc may have moved it).
static void verify_moved(const void *q, const void *old, size_t old_n, size_t keep) {
  uint64_t w = pattern_word(old, old_n);
  const unsigned char *b = q;
  for (size_t i = 0; i < keep; i++)
    if (b[i] != ((unsigned char)(w >> ((i & 7) * 8)) ^ (unsigned char)i))
      harness_fail(__FILE__, __LINE__, "realloc %p -> %p lost byte %zu of %zu", old, q, i, keep);
}

static size_t random_size(uint64_t *r) {
  uint64_t x = test_rand(r);
  switch (x % 16) {
    case 0: return (size_t)(x >> 8) % 300000;         // large
    case 1: case 2: return (size_t)(x >> 8) % 32768;  // any small class
    default: return (size_t)(x >> 8) % 512;            // mostly small
  }
}

typedef struct {
  int id;
  uint64_t seed;
  double seconds;
} worker_arg_t;

static void drain_box(int id) {
  mailbox_t *mb = &boxes[id];
  pthread_mutex_lock(&mb->lock);
  for (int i = 0; i < mb->n; i++) {
    verify(mb->items[i], mb->sizes[i]);
    gort_free(mb->items[i]);
  }
  mb->n = 0;
  pthread_mutex_unlock(&mb->lock);
}

static void *worker(void *argp) {
  worker_arg_t *arg = argp;
  uint64_t r = arg->seed;
  static __thread void *slot[SLOTS];
  static __thread size_t slot_size[SLOTS];
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long iter = 0;; iter++) {
    if ((iter & 1023) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > arg->seconds) break;
      drain_box(arg->id);
    }
    int i = (int)(test_rand(&r) % SLOTS);
    if (slot[i] != NULL) {
      verify(slot[i], slot_size[i]);
      uint64_t how = test_rand(&r) % 8;
      if (how < 3) {  // hand it to another thread to free
        int to = (int)(test_rand(&r) % NTHREADS);
        mailbox_t *mb = &boxes[to];
        pthread_mutex_lock(&mb->lock);
        if (mb->n < MAILBOX) {
          mb->items[mb->n] = slot[i];
          mb->sizes[mb->n++] = slot_size[i];
          slot[i] = NULL;
        }
        pthread_mutex_unlock(&mb->lock);
      } else if (how == 3) {  // realloc it
        size_t n = random_size(&r);
        void *old = slot[i];
        size_t old_n = slot_size[i];
        void *q = gort_realloc(old, n == 0 ? 1 : n);
        if (q == NULL) harness_fail(__FILE__, __LINE__, "realloc failed");
        // The bytes both sizes share must have come across intact.
        verify_moved(q, old, old_n, old_n < n ? old_n : n);
        slot[i] = q;
        slot_size[i] = n == 0 ? 1 : n;
        fill(q, slot_size[i]);
      }
      if (slot[i] != NULL && how >= 4) {
        gort_free(slot[i]);
        slot[i] = NULL;
      }
    } else {
      size_t n = random_size(&r);
      void *p = test_rand(&r) % 16 == 0 ? gort_aligned_alloc((size_t)64 << (test_rand(&r) % 8), n)
                                        : gort_malloc(n);
      if (p == NULL) harness_fail(__FILE__, __LINE__, "allocation of %zu failed", n);
      fill(p, n);
      slot[i] = p;
      slot_size[i] = n;
    }
  }
  for (int i = 0; i < SLOTS; i++)
    if (slot[i] != NULL) {
      verify(slot[i], slot_size[i]);
      gort_free(slot[i]);
      slot[i] = NULL;
    }
  return NULL;
}

static void run(int nthreads, double seconds) {
  pthread_t t[NTHREADS];
  worker_arg_t args[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_mutex_init(&boxes[i].lock, NULL);
  for (int i = 0; i < nthreads; i++) {
    args[i] = (worker_arg_t){i, harness_seed() + (uint64_t)i * 7919, seconds};
    pthread_create(&t[i], NULL, worker, &args[i]);
  }
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < NTHREADS; i++) drain_box(i);
  EXPECT(atomic_load(&verified) > 1000, "only %ld blocks verified", atomic_load(&verified));
}

TEST(threads_allocate_verify_and_free_across_threads) { run(NTHREADS, 2.0 * harness_scale()); }

// Threads that come and go: each exit hands its spans back, and the blocks
// it leaves in mailboxes are freed by others afterwards.
TEST(threads_exit_while_others_free_their_blocks) {
  for (int round = 0; round < 4 * harness_scale(); round++) run(NTHREADS, 0.3);
}
