// The option table's promises (base/options.c): an unknown name or a bad
// value prints one warning naming it alone and keeps the default; empty
// values and empty GORT_DEBUG items count as unset; sizes take Go's
// GOMEMLIMIT units and decimal ones. Start-up warnings are read from this
// program run again (with --list, which runs no case) under the variables.

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/options.h"
#include "gort/alloc.h"
#include "test.h"

// Links the allocator, and with it start-up, which reads the variables:
// this file calls nothing else that starts gort.
__attribute__((used)) static void *(*const link_gort)(size_t) = gort_malloc;

// Runs this program with env prepended and returns its stderr in out.
static void run_with(const char *env, char *out, size_t size) {
  char self[256] = "", cmd[512];
  EXPECT(readlink("/proc/self/exe", self, sizeof self - 1) > 0);
  snprintf(cmd, sizeof cmd, "env %s '%s' --list 2>&1 >/dev/null", env, self);
  EXPECT_EQ_U64(harness_run(cmd, out, size), 0, "%s: %s", cmd, out);
}

static int count(const char *s, const char *what) {
  int n = 0;
  for (; (s = strstr(s, what)) != NULL; s += strlen(what)) n++;
  return n;
}

TEST(empty_gort_debug_items_are_skipped_silently) {
  char out[2048];
  run_with("GORT_DEBUG=,,,", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 0, "%s", out);
  run_with("GORT_DEBUG=scavdelay=300,,", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 0, "%s", out);
}

TEST(a_bad_gort_debug_item_is_named_alone_in_one_warning) {
  char out[2048];
  run_with("GORT_DEBUG=nosuchkey=1,scavtrace=1", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 1, "%s", out);
  EXPECT(strstr(out, "unknown key in 'nosuchkey=1'; that item is ignored") != NULL, "%s", out);
  EXPECT(strstr(out, "scavtrace") == NULL, "the valid key is not in the warning: %s", out);
  run_with("GORT_DEBUG=scavtrace=1,harden,madvdontneed=7", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 2, "%s", out);
  EXPECT(strstr(out, "malformed item 'harden' (want key=value)") != NULL, "%s", out);
  EXPECT(strstr(out, "bad value '7' for madvdontneed") != NULL, "%s", out);
}

TEST(empty_values_count_as_unset) {
  char out[2048];
  run_with("GORT_MEMLIMIT= GORT_STATS= GORT_MEMPROFILERATE= GORT_DEBUG=", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 0, "%s", out);
}

TEST(unknown_variables_and_bad_values_warn_once_each) {
  char out[2048];
  run_with("GORT_NOSUCH=1 GORT_MEMLIMIT=1GiBs", out, sizeof out);
  EXPECT(count(out, "gort: warning") == 2, "%s", out);
  EXPECT(strstr(out, "unknown variable GORT_NOSUCH; ignored") != NULL, "%s", out);
  EXPECT(strstr(out, "bad value '1GiBs' for GORT_MEMLIMIT; keeping the default") != NULL, "%s",
         out);
}

TEST(sizes_take_gos_units_and_decimal_ones) {
  static const struct {
    const char *s;
    int64_t v;
    bool ok;
  } cases[] = {
      {"123", 123, true},       {"123B", 123, true},         {"4KiB", 4096, true},
      {"2MiB", 2 << 20, true},  {"3GiB", 3LL << 30, true},   {"1TiB", 1LL << 40, true},
      {"1KB", 1000, true},      {"2MB", 2000000, true},      {"1GB", 1000000000, true},
      {"1TB", 1000000000000LL, true}, {"", 0, false},       {"1 GiB", 0, false},
      {"1gib", 0, false},       {"-1", 0, false},            {"1.5GiB", 0, false},
      {"99999999999999999999", 0, false}, {"9000000TiB", 0, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t v = -1;
    bool ok = gort__parse_bytes(cases[i].s, &v);
    EXPECT(ok == cases[i].ok, "'%s' parsed %s", cases[i].s, ok ? "ok" : "as bad");
    if (ok) EXPECT_EQ_U64(v, cases[i].v, "'%s'", cases[i].s);
  }
}
