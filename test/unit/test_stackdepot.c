// The stack depot (obs/stackdepot.c) and the leak check's pieces that need
// no process of their own: suppression templates (obs/leakcheck.c) and
// the symbolizer (obs/symbolize.c). test/preload/leakcheck.sh runs the
// leak check end to end.

#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "obs/leakcheck.h"
#include "obs/stackdepot.h"
#include "obs/symbolize.h"
#include "test.h"

TEST(depot_gives_one_id_per_distinct_stack) {
  EXPECT(gort__stackdepot_init());
  uintptr_t a[3] = {0x1000, 0x2000, 0x3000}, b[3] = {0x1000, 0x2000, 0x3001};
  uint32_t ia = gort__stackdepot_put(a, 3), ib = gort__stackdepot_put(b, 3);
  EXPECT(ia != 0 && ib != 0 && ia != ib, "ids %u %u", ia, ib);
  EXPECT_EQ_U64(gort__stackdepot_put(a, 3), ia);
  EXPECT(gort__stackdepot_put(a, 2) != ia, "a prefix is another stack");
  uint32_t depth;
  const uintptr_t *got = gort__stackdepot_get(ib, &depth);
  EXPECT(got != NULL && depth == 3 && memcmp(got, b, sizeof b) == 0);
  EXPECT(gort__stackdepot_get(0, &depth) == NULL && depth == 0, "id 0 is no stack");
  uint32_t empty = gort__stackdepot_put(a, 0);
  EXPECT(empty != 0 && gort__stackdepot_get(empty, &depth) != NULL && depth == 0);
}

#define NTHREADS 4
#define NSTACKS 2000

static uint32_t ids[NTHREADS][NSTACKS];

static void *put_many(void *arg) {
  uint32_t *out = arg;
  for (uint32_t i = 0; i < NSTACKS; i++) {
    uintptr_t pcs[4] = {0x400000, i, i * 7, 42};
    out[i] = gort__stackdepot_put(pcs, 4);
  }
  return NULL;
}

TEST(depot_threads_putting_the_same_stacks_agree_on_their_ids) {
  EXPECT(gort__stackdepot_init());
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&t[i], NULL, put_many, ids[i]);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  for (uint32_t i = 0; i < NSTACKS; i++)
    for (int k = 1; k < NTHREADS; k++) EXPECT_EQ_U64(ids[k][i], ids[0][i], "stack %u", i);
  uint64_t stacks, bytes;
  gort__stackdepot_stats(&stacks, &bytes);
  EXPECT(stacks >= NSTACKS, "%llu stacks", (unsigned long long)stacks);
}

TEST(suppression_templates_match_as_leaksanitizers) {
  EXPECT(gort__leak_template_match("make_list", "make_list"));
  EXPECT(gort__leak_template_match("list", "make_list"), "a match anywhere");
  EXPECT(!gort__leak_template_match("^list", "make_list"), "^ anchors the start");
  EXPECT(gort__leak_template_match("^make", "make_list"));
  EXPECT(!gort__leak_template_match("make$", "make_list"), "$ anchors the end");
  EXPECT(gort__leak_template_match("list$", "make_list"));
  EXPECT(gort__leak_template_match("^m*_l*t$", "make_list"));
  EXPECT(!gort__leak_template_match("^m*_x*t$", "make_list"));
  EXPECT(gort__leak_template_match("libleaky.so", "/tmp/x/libleaky.so"));
  EXPECT(gort__leak_template_match("*", ""));
  EXPECT(!gort__leak_template_match("a", NULL), "no name, no match");
}

__attribute__((noinline)) int symbolize_me(void) { return 7; }

TEST(symbolizer_names_function_file_and_line) {
  sym_t s = {.pc = (uintptr_t)&symbolize_me + 1};
  gort__sym_resolve(&s, 1);
  EXPECT(s.module != NULL, "module");
  EXPECT(s.func != NULL && strcmp(s.func, "symbolize_me") == 0, "func %s", s.func ? s.func : "(none)");
  EXPECT(s.file != NULL && strstr(s.file, "test_stackdepot.c") != NULL, "file %s", s.file ? s.file : "(none)");
  EXPECT(s.line > 0, "line %u", s.line);
  sym_t none = {.pc = 16};
  gort__sym_resolve(&none, 1);
  EXPECT(none.module == NULL && none.func == NULL, "an address in no module");
  gort__sym_release();
}
