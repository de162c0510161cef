// Output paths (obs/outpath.c): %p, %e and %% expanded, other % sequences
// kept, ".<pid>" added for a descendant only when the pattern has no %p,
// and a result that does not fit refused rather than cut.
// test/preload/output_files.sh runs process trees end to end.

#include <string.h>

#include "obs/outpath.h"
#include "test.h"

static const char *expand(const char *pattern, bool add_pid) {
  static char out[128];
  size_t n = gort__outpath_expand(pattern, 4242, "app", add_pid, out, sizeof out);
  return n == 0 ? "(too long)" : out;
}

TEST(outpath_expands_pid_program_and_percent) {
  EXPECT(strcmp(expand("heap.pb.gz", false), "heap.pb.gz") == 0, "%s", expand("heap.pb.gz", false));
  EXPECT(strcmp(expand("/tmp/%e.%p.pb.gz", false), "/tmp/app.4242.pb.gz") == 0);
  EXPECT(strcmp(expand("a%%p%e", false), "a%papp") == 0, "%%%% is a %%: %s",
         expand("a%%p%e", false));
  EXPECT(strcmp(expand("%p-%p", false), "4242-4242") == 0);
}

TEST(outpath_keeps_unknown_sequences_and_a_trailing_percent) {
  EXPECT(strcmp(expand("x%zy%", false), "x%zy%") == 0, "%s", expand("x%zy%", false));
}

TEST(outpath_adds_the_pid_for_descendants_without_percent_p) {
  EXPECT(strcmp(expand("stats.txt", true), "stats.txt.4242") == 0, "%s", expand("stats.txt", true));
  EXPECT(strcmp(expand("s.%p.txt", true), "s.4242.txt") == 0, "%%p makes it unique already");
  EXPECT(strcmp(expand("s%%p.txt", true), "s%p.txt.4242") == 0, "%%%%p is no %%p");
}

TEST(outpath_refuses_a_result_that_does_not_fit) {
  char big[200];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  EXPECT(strcmp(expand(big, false), "(too long)") == 0);
  char out[8];
  EXPECT_EQ_U64(gort__outpath_expand("1234567", 1, "p", false, out, sizeof out), 7);
  EXPECT_EQ_U64(gort__outpath_expand("12345678", 1, "p", false, out, sizeof out), 0);
}
