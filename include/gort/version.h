/* gort: the version.
 *
 * The macros give the version of the headers a program was compiled with;
 * gort_version() gives the one of the library it runs with, which may be
 * newer (the shared library's SONAME, libgort.so.<MAJOR>, changes only
 * with GORT_VERSION_MAJOR). */
#ifndef GORT_VERSION_H
#define GORT_VERSION_H

#include "api.h"

#define GORT_VERSION_MAJOR 0
#define GORT_VERSION_MINOR 1
#define GORT_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH", a string literal made from the three numbers. */
#define GORT__STR(x) #x
#define GORT__XSTR(x) GORT__STR(x)
#define GORT_VERSION                                                            \
  GORT__XSTR(GORT_VERSION_MAJOR) "." GORT__XSTR(GORT_VERSION_MINOR) "."          \
  GORT__XSTR(GORT_VERSION_PATCH)

GORT_BEGIN_DECLS

/* The library's version, "MAJOR.MINOR.PATCH" (a static string). */
GORT_API const char *gort_version(void);

GORT_END_DECLS

#endif /* GORT_VERSION_H */
