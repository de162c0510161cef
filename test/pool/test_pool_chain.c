// The shared store's chain of rings (src/pool/chain.c), driven directly:
// one owner pushing and popping at the head, thieves popping at the tail,
// every value pushed once and taken exactly once.
//
// The owner links rings of 2 to 16 slots only (not doubling), so that
// rings wrap around and slots are reused all the time: a slot refilled
// before its thief read it (the ABA case chain.c guards against) shows as
// a value taken twice and another never taken. Values are distinct fake
// pointers (no pool, no collector, nothing is dereferenced).

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "../gc/gctest.h"
#include "pool/chain.h"

enum { THIEVES = 3, MAXVALS = 1 << 22, BACKLOG = 48 };

static chain_t chain;
static _Atomic uint8_t taken[MAXVALS];
static _Atomic uint64_t ntaken;
static _Atomic bool stop;
static _Atomic int failures;

static void *val_of(uint64_t v) { return (void *)(uintptr_t)(v << 4 | 8); }

static void take(void *x, const char *who) {
  uintptr_t u = (uintptr_t)x;
  uint64_t v = u >> 4;
  if ((u & 15) != 8 || v >= MAXVALS) {
    if (atomic_fetch_add(&failures, 1) < 5)
      fprintf(stderr, "  %s: took a value never pushed: %p\n", who, x);
    return;
  }
  if (atomic_exchange(&taken[v], 1) != 0 && atomic_fetch_add(&failures, 1) < 5)
    fprintf(stderr, "  %s: value %llu taken twice\n", who, (unsigned long long)v);
  atomic_fetch_add(&ntaken, 1);
}

static void *thief(void *arg) {
  (void)arg;
  uint64_t n = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    void *x = gort__chain_pop_tail(&chain);
    if (x != NULL)
      take(x, "thief");
    else if (++n % 64 == 0)
      sched_yield();
  }
  return NULL;
}

// The owner's push, linking a small ring when the chain is full.
static void push(uint64_t v, uint64_t *seed) {
  void *x = val_of(v);
  if (chain_push(&chain, x)) return;
  ring_t *r = gort__chain_ring_make(2u << (test_rand(seed) % 4));
  ASSERT_NOT_NULL(r);
  chain_add(&chain, r);
  EXPECT(chain_push(&chain, x), "a push into a fresh ring failed");
}

TEST(every_value_pushed_is_taken_exactly_once_by_the_owner_or_a_thief) {
  pthread_t t[THIEVES];
  for (int i = 0; i < THIEVES; i++) EXPECT(pthread_create(&t[i], NULL, thief, NULL) == 0);
  uint64_t seed = harness_seed(), pushed = 0;
  double deadline = gctest_now() + 0.5 * harness_scale();
  while (pushed < MAXVALS && atomic_load(&failures) == 0) {
    if (pushed % 1024 == 0 && gctest_now() > deadline) break;
    uint64_t r = test_rand(&seed) % 16, backlog = pushed - atomic_load(&ntaken);
    if (r < 9 && backlog < BACKLOG) {
      push(pushed++, &seed);
    } else if (r < 15) {
      void *x = chain_pop_head(&chain);
      if (x != NULL) take(x, "owner");
    } else {  // empty the chain from the head, racing the thieves for the last values
      void *x;
      while ((x = chain_pop_head(&chain)) != NULL) take(x, "owner");
    }
  }
  atomic_store(&stop, true);
  for (int i = 0; i < THIEVES; i++) pthread_join(t[i], NULL);
  EXPECT_EQ_U64(atomic_load(&failures), 0, "see the lines above");
  EXPECT(gort__chain_is_valid(&chain), "the chain at rest breaks chain.c's invariants");
  void *x;
  while ((x = gort__chain_pop_tail(&chain)) != NULL) take(x, "drain");
  EXPECT(chain_pop_head(&chain) == NULL, "the head has a value the tail did not reach");
  EXPECT_EQ_U64(atomic_load(&failures), 0, "see the lines above");
  EXPECT_EQ_U64(atomic_load(&ntaken), pushed, "values pushed but never taken");
  for (uint64_t v = 0; v < pushed; v++)
    if (atomic_load(&taken[v]) != 1) EXPECT(false, "value %llu of %llu lost", (unsigned long long)v,
                                            (unsigned long long)pushed);
  EXPECT(pushed > 10000, "only %llu values pushed", (unsigned long long)pushed);
}

// A single thread: newest first at the head, oldest first at the tail,
// across ring boundaries, and a drained chain is empty from both ends.
TEST(the_head_is_newest_first_and_the_tail_oldest_first) {
  uint64_t seed = 1;
  for (uint64_t v = 0; v < 40; v++) push(v, &seed);
  EXPECT(gort__chain_is_valid(&chain));
  EXPECT(gort__chain_pop_tail(&chain) == val_of(0));
  EXPECT(gort__chain_pop_tail(&chain) == val_of(1));
  EXPECT(chain_pop_head(&chain) == val_of(39));
  EXPECT(chain_pop_head(&chain) == val_of(38));
  for (uint64_t v = 2; v < 38; v++)
    EXPECT(gort__chain_pop_tail(&chain) == val_of(v), "value %llu", (unsigned long long)v);
  EXPECT(gort__chain_pop_tail(&chain) == NULL);
  EXPECT(chain_pop_head(&chain) == NULL);
  EXPECT(gort__chain_is_valid(&chain));
  EXPECT_EQ_U64(gort__chain_count(&chain), 0);
}

// The slot-reuse guard, step by step: a thief wins the CAS on tail and
// stalls before reading the slot; the owner, which sees room by the
// indices, must not refill that slot until the thief has read and cleared
// it, or the thief would take the new value and the old one would be lost.
TEST(a_slot_a_thief_took_is_not_refilled_before_the_thief_reads_it) {
  ring_t *r = gort__chain_ring_make(4);
  ASSERT_NOT_NULL(r);
  chain_add(&chain, r);
  for (uint64_t v = 0; v < 4; v++)
    EXPECT(chain_push(&chain, val_of(v)), "value %llu", (unsigned long long)v);
  EXPECT(!chain_push(&chain, val_of(4)), "a full ring took a fifth value");
  uint64_t ht = atomic_load(&r->headtail);  // the thief's CAS, and nothing more
  EXPECT(atomic_compare_exchange_strong(&r->headtail, &ht, ht_pack(ht_head(ht), ht_tail(ht) + 1)));
  EXPECT(!chain_push(&chain, val_of(4)), "the owner refilled the slot its thief has not read");
  EXPECT(atomic_load(&r->slot[ht_tail(ht) & r->mask]) == val_of(0),
         "the thief's value was overwritten");
  atomic_store(&r->slot[ht_tail(ht) & r->mask], NULL);  // the thief reads and clears
  EXPECT(chain_push(&chain, val_of(4)), "the slot stays taken after the thief cleared it");
  for (uint64_t v = 1; v <= 4; v++)
    EXPECT(gort__chain_pop_tail(&chain) == val_of(v), "value %llu", (unsigned long long)v);
  EXPECT(gort__chain_pop_tail(&chain) == NULL);
}

// What a fork can leave (chain.c, gort__chain_after_fork): operations of
// threads that did not cross it, stopped between two of their steps.
TEST(a_forked_child_puts_right_what_vanished_threads_left_half_done) {
  // A chain's first ring made head but not yet first and tail.
  ring_t *a = gort__chain_ring_make(4), *b = gort__chain_ring_make(4);
  ASSERT_NOT_NULL(a);
  ASSERT_NOT_NULL(b);
  chain.head = a;
  EXPECT(!gort__chain_is_valid(&chain));
  gort__chain_after_fork(&chain);
  EXPECT(gort__chain_is_valid(&chain), "the first ring was not made first and tail");
  // A thief that moved tail but did not clear its slot; an owner that
  // filled a slot but did not move head.
  EXPECT(chain_push(&chain, val_of(0)) && chain_push(&chain, val_of(1)));
  uint64_t ht = atomic_load(&a->headtail);
  EXPECT(atomic_compare_exchange_strong(&a->headtail, &ht, ht_pack(ht_head(ht), ht_tail(ht) + 1)));
  atomic_store(&a->slot[ht_head(ht) & a->mask], val_of(9));
  EXPECT(!gort__chain_is_valid(&chain));
  gort__chain_after_fork(&chain);
  EXPECT(gort__chain_is_valid(&chain), "slots outside [tail, head) were left filled");
  // The owner made b head but did not link it from a.
  atomic_store(&b->prev, a);
  chain.head = b;
  EXPECT(!gort__chain_is_valid(&chain));
  gort__chain_after_fork(&chain);
  EXPECT(gort__chain_is_valid(&chain), "the new head was not linked");
  EXPECT(chain_push(&chain, val_of(2)));
  // A thief moved tail from a to b but did not clear b's prev.
  EXPECT(gort__chain_pop_tail(&chain) == val_of(1));
  ring_t *expected = a;
  EXPECT(atomic_compare_exchange_strong(&chain.tail, &expected, b));
  EXPECT(!gort__chain_is_valid(&chain));
  gort__chain_after_fork(&chain);
  EXPECT(gort__chain_is_valid(&chain), "the new tail's prev was not cleared");
  EXPECT(gort__chain_pop_tail(&chain) == val_of(2));
  EXPECT(gort__chain_pop_tail(&chain) == NULL);
  EXPECT(chain_pop_head(&chain) == NULL);
}
