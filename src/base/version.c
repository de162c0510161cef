// The library's version, for gort_version(). A program compiled against
// one version of the headers may run with a newer libgort.so.0; the macros
// in include/gort/version.h say which headers it saw, this says which
// library it got. The Makefile reads the same macros for the SONAME, the
// file names and gort.pc, so the number is written in one place.

#include "gort/version.h"

const char *gort_version(void) { return GORT_VERSION; }
