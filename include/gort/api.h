/* gort: what every public header shares: symbol visibility and C++ linkage. */
#ifndef GORT_API_H
#define GORT_API_H

#ifndef GORT_API
#define GORT_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
#define GORT_BEGIN_DECLS extern "C" {
#define GORT_END_DECLS }
#else
#define GORT_BEGIN_DECLS
#define GORT_END_DECLS
#endif

#endif /* GORT_API_H */
