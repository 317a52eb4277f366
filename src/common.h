/*
 * common.h - what every layer shares: page constants, assertions, the lock
 * type, and the no-allocation message helpers.
 *
 * Glossary
 *   page      4 KiB, the unit of the buddy layer and of page descriptors.
 *   chunk     4 MiB = one order-10 buddy block; the arena grows by chunks.
 *   order     log2 of a buddy block's page count (0..10).
 *   zone      one CPU's buddy allocator (free lists per order, pcp cache).
 *   class     a kmalloc-N slab size class; class_idx 0 means "not a slab".
 *   run       a block of an exact page count (> slab max), cut from a buddy block.
 *   large     a block above mmap_threshold, mapped straight from the OS.
 *
 * ASSERT(x) is checked in debug builds (BSL_DEBUG=1) only; VERIFY(x) always.
 * Switches are 0/1 constants tested with `if`, so both branches compile.
 */
#ifndef BSL_COMMON_H
#define BSL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

/* Everything declared from here on is internal to the library: calls and
 * data references go direct, not through the GOT. Exported functions say
 * EXPORT (default visibility) on their definition. */
#pragma GCC visibility push(hidden)

#ifndef BSL_DEBUG
#define BSL_DEBUG 0
#endif

#define PAGE_SHIFT   12
#define PAGE_SIZE    ((size_t)1 << PAGE_SHIFT)
#define MAX_ORDER    10                                  /* orders 0..MAX_ORDER */
#define CHUNK_PAGES  ((size_t)1 << MAX_ORDER)
#define CHUNK_SIZE   (CHUNK_PAGES << PAGE_SHIFT)         /* 4 MiB */
#define MAX_CPUS     256
#define MIN_ALIGN    16

#define likely(x)    __builtin_expect(!!(x), 1)
#define unlikely(x)  __builtin_expect(!!(x), 0)
#define NOINLINE     __attribute__((noinline))
#define COLD         __attribute__((noinline, cold))
#define EXPORT       __attribute__((visibility("default")))

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline unsigned ceil_log2(size_t x) { return x <= 1 ? 0 : 64 - __builtin_clzl(x - 1); }

/* Messages and aborts: no allocation, no stdio. */
COLD __attribute__((noreturn)) void bsl_fatal(const char *what, const void *ptr);
void bsl_write_str(int fd, const char *s);
/* printf subset: %s %d %u %zu %lu %llu %x %p and a width for numbers (%8zu). */
void bsl_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bsl_warn(const char *msg, const char *detail);

#define ASSERT(x) do { if (BSL_DEBUG && unlikely(!(x))) \
	bsl_fatal("assertion failed: " #x " at " __FILE__, NULL); } while (0)
#define VERIFY(x) do { if (unlikely(!(x))) \
	bsl_fatal("internal check failed: " #x " at " __FILE__, NULL); } while (0)

/* Locks: pthread mutexes (futex based, fork-friendly, no allocation).
 * In debug builds lock_assert_held() checks ownership through the owner field. */
typedef struct { pthread_mutex_t m; } lock_t;
#define LOCK_INIT { PTHREAD_MUTEX_INITIALIZER }
static inline void lock_acquire(lock_t *l) { pthread_mutex_lock(&l->m); }
static inline void lock_release(lock_t *l) { pthread_mutex_unlock(&l->m); }
static inline void lock_init(lock_t *l) { pthread_mutex_init(&l->m, NULL); }
static inline void lock_assert_held(lock_t *l)
{
	ASSERT(l->m.__data.__lock != 0);
	(void)l;
}

#pragma GCC visibility pop
#endif
