/*
 * prefix.h - force-included (-include) into every buddyslab source compiled
 * for the fuzzer: renames the exported allocation API to fz_*, so that the
 * fuzzer binary keeps ASan's malloc for itself and for libFuzzer, and the
 * harness calls buddyslab as fz_malloc, fz_free, ...
 *
 * Renamed: every standard name in src/exports.map (the bsl_* extensions
 * cannot clash with anything and keep their names). The macros are
 * function-like, so only a name followed by "(" changes: the declarations in
 * <stdlib.h> and <malloc.h>, buddyslab's definitions and its own calls are
 * renamed alike, while `struct mallinfo` and `__attribute__((malloc))` are
 * not. reallocarray is the exception, object-like, because glibc's
 * <stdlib.h> names it without a "(" for gcc >= 11 (__attr_dealloc
 * (reallocarray, 1)). The __libc_* aliases in src/malloc.c name their target
 * as a string (alias("malloc")), which no macro reaches; the alias macro
 * below prefixes that string, so fz___libc_malloc aliases fz_malloc.
 * test/fuzz_smoke.sh checks with nm that no unprefixed name is defined.
 */
#ifndef BSL_FUZZ_PREFIX_H
#define BSL_FUZZ_PREFIX_H

#define malloc(...)             fz_malloc(__VA_ARGS__)
#define free(...)               fz_free(__VA_ARGS__)
#define calloc(...)             fz_calloc(__VA_ARGS__)
#define realloc(...)            fz_realloc(__VA_ARGS__)
#define reallocarray            fz_reallocarray   /* object-like: see above */
#define posix_memalign(...)     fz_posix_memalign(__VA_ARGS__)
#define aligned_alloc(...)      fz_aligned_alloc(__VA_ARGS__)
#define memalign(...)           fz_memalign(__VA_ARGS__)
#define valloc(...)             fz_valloc(__VA_ARGS__)
#define pvalloc(...)            fz_pvalloc(__VA_ARGS__)
#define malloc_usable_size(...) fz_malloc_usable_size(__VA_ARGS__)
#define free_sized(...)         fz_free_sized(__VA_ARGS__)
#define free_aligned_sized(...) fz_free_aligned_sized(__VA_ARGS__)
#define cfree(...)              fz_cfree(__VA_ARGS__)
#define __libc_malloc(...)      fz___libc_malloc(__VA_ARGS__)
#define __libc_free(...)        fz___libc_free(__VA_ARGS__)
#define __libc_calloc(...)      fz___libc_calloc(__VA_ARGS__)
#define __libc_realloc(...)     fz___libc_realloc(__VA_ARGS__)
#define __libc_memalign(...)    fz___libc_memalign(__VA_ARGS__)
#define __libc_valloc(...)      fz___libc_valloc(__VA_ARGS__)
#define __libc_pvalloc(...)     fz___libc_pvalloc(__VA_ARGS__)
#define __posix_memalign(...)   fz___posix_memalign(__VA_ARGS__)
#define mallinfo(...)           fz_mallinfo(__VA_ARGS__)
#define mallinfo2(...)          fz_mallinfo2(__VA_ARGS__)
#define malloc_stats(...)       fz_malloc_stats(__VA_ARGS__)
#define malloc_trim(...)        fz_malloc_trim(__VA_ARGS__)
#define mallopt(...)            fz_mallopt(__VA_ARGS__)
#define malloc_info(...)        fz_malloc_info(__VA_ARGS__)

/* __attribute__((alias("malloc"))) -> alias("fz_" "malloc") */
#define alias(target)           alias("fz_" target)

#endif
