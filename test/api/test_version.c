// include/gort/version.h: gort_version() is the library's version, the
// macros the headers', and both spell GORT_VERSION_MAJOR.MINOR.PATCH. The
// SONAME that follows the major number is checked by
// test/preload/install_and_link.sh.

#include <stdio.h>
#include <string.h>

#include "gort.h"
#include "test.h"

TEST(gort_version_is_the_headers_version) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", GORT_VERSION_MAJOR, GORT_VERSION_MINOR,
           GORT_VERSION_PATCH);
  EXPECT(strcmp(GORT_VERSION, want) == 0, "GORT_VERSION \"%s\", the numbers say %s",
         GORT_VERSION, want);
  EXPECT(strcmp(gort_version(), GORT_VERSION) == 0, "gort_version() \"%s\"", gort_version());
  EXPECT(gort_version() == gort_version(), "a static string");
}
