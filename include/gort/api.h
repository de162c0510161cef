/* gort: what every public header shares: symbol visibility, C++ linkage and
 * the allocation attributes. */
#ifndef GORT_API_H
#define GORT_API_H

#ifndef GORT_API
#define GORT_API __attribute__((visibility("default")))
#endif

/* What the allocating functions promise the compiler, as glibc's malloc
 * does: the block is fresh memory (malloc), of the size in argument n
 * (alloc_size: __builtin_object_size, _FORTIFY_SOURCE and
 * -Wstringop-overflow check writes into it), aligned to argument n
 * (alloc_align), and dropping the result is a leak (warn_unused_result). */
#if defined(__GNUC__) || defined(__clang__)
#define GORT_MALLOC_LIKE __attribute__((__malloc__))
#define GORT_ALLOC_SIZE(n) __attribute__((__alloc_size__(n)))
#define GORT_ALLOC_SIZE2(n, m) __attribute__((__alloc_size__(n, m)))
#define GORT_WARN_UNUSED __attribute__((__warn_unused_result__))
#else
#define GORT_MALLOC_LIKE
#define GORT_ALLOC_SIZE(n)
#define GORT_ALLOC_SIZE2(n, m)
#define GORT_WARN_UNUSED
#endif
#if defined(__has_attribute)
#if __has_attribute(__alloc_align__)
#define GORT_ALLOC_ALIGN(n) __attribute__((__alloc_align__(n)))
#endif
#endif
#ifndef GORT_ALLOC_ALIGN
#define GORT_ALLOC_ALIGN(n)
#endif

#ifdef __cplusplus
#define GORT_BEGIN_DECLS extern "C" {
#define GORT_END_DECLS }
#else
#define GORT_BEGIN_DECLS
#define GORT_END_DECLS
#endif

#endif /* GORT_API_H */
