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
 *
 * Locks (lock_t below) know their holder: a thread never takes a lock it
 * already holds, except through the fork handlers, which skip the locks the
 * forking thread holds (fork from a signal handler that interrupted the
 * allocator) and release only the ones they took.
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
#define CACHE_LINE   64         /* bytes; slab colouring steps by it */
#define MIN_ALIGN    16

#define likely(x)    __builtin_expect(!!(x), 1)
#define unlikely(x)  __builtin_expect(!!(x), 0)
#define NOINLINE     __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define COLD         __attribute__((noinline, cold))
#define EXPORT       __attribute__((visibility("default")))

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline unsigned ceil_log2(size_t x) { return x <= 1 ? 0 : 64 - __builtin_clzl(x - 1); }

/* Addresses of the program's memory kept in metadata that memcheck's leak
 * check scans (page descriptors, arena bases, the large-block table and
 * cache) are stored hidden: negated, a user address becomes a kernel-half
 * value that points into nothing, so no block is "still reachable" through
 * the allocator (DESIGN.md 12). hide_addr(0) == 0, and p - base is computed
 * as p + hidden base at the same cost. */
static inline uintptr_t hide_addr(uintptr_t a) { return (uintptr_t)0 - a; }
static inline uintptr_t unhide_addr(uintptr_t h) { return (uintptr_t)0 - h; }

/* Messages and aborts (message.c): no allocation, no stdio, no lock. A
 * destination `dest` is a descriptor, or a stream of output.h (OUT_REPORT,
 * OUT_WARN, OUT_FATAL) that output.c resolves so that buddyslab never writes
 * into a file the program owns. The printf subset: %s %.*s %c %d %u %x %p
 * with l/z, a width (%8zu) and '-' (left-aligned). */
#define BSL_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* A text built in a caller's buffer: written to dest in one write() when
 * flushed, or, when the buffer fills up, its complete lines first. */
struct text {
	char *buf;
	size_t cap, len;
	int dest;
};
#define TEXT_INIT(array, to) { (array), sizeof (array), 0, (to) }
void text_printf(struct text *t, const char *fmt, ...) BSL_PRINTF(2, 3);
void text_flush(struct text *t);

/* One message, one write (a 1 KiB buffer). */
void bsl_printf(int dest, const char *fmt, ...) BSL_PRINTF(2, 3);
/* "buddyslab: warning: ...\n" to OUT_WARN. */
void bsl_warnf(const char *fmt, ...) BSL_PRINTF(1, 2);
void bsl_warn(const char *msg, const char *detail);
/* "buddyslab: what [ptr]\n", or "buddyslab: <fmt...>\nbuddyslab: what\n",
 * to OUT_FATAL in one write, then abort(). */
COLD __attribute__((noreturn)) void bsl_fatal(const char *what, const void *ptr);
COLD __attribute__((noreturn)) void bsl_fatalf(const char *what, const char *fmt, ...)
	BSL_PRINTF(2, 3);

#define ASSERT(x) do { if (BSL_DEBUG && unlikely(!(x))) \
	bsl_fatal("assertion failed: " #x " at " __FILE__, NULL); } while (0)
#define VERIFY(x) do { if (unlikely(!(x))) \
	bsl_fatal("internal check failed: " #x " at " __FILE__, NULL); } while (0)

/* Locks: a futex word that names its holder (Drepper's "mutex 3" with the
 * holder in it; no allocation, no errno, async-signal-safe).
 *   word == 0                                  free
 *   word == holder | LOCK_HELD [| LOCK_WAITERS] held; WAITERS: someone may sleep
 * holder is the holding thread's thread pointer (%fs:0, its TCB address, 64-byte
 * aligned so the low bits are free): unique among the live threads, and the
 * same for the forking thread in a fork child. Taking a lock and naming its
 * holder is one compare-and-swap, releasing it and clearing the holder one
 * exchange, so "held by this thread" (lock_held_by_me) is exact at every
 * instruction, even from a signal handler that interrupted lock_acquire or
 * lock_release halfway. The futex waits on the word's low half, which holds
 * the flags. Uncontended: one CAS to take, one XCHG to give back, no call.
 *
 * Invariants
 *  - A thread never takes a lock it holds: lock_acquire aborts with a message
 *    instead of deadlocking (e.g. malloc from a signal handler that
 *    interrupted malloc while it held this lock).
 *  - Only fork's handlers (init.c) take a lock that the calling thread may
 *    already hold, through lock_fork_acquire: a lock the forking thread holds
 *    (fork from a signal handler that interrupted the allocator) is skipped
 *    and remembered, and lock_fork_release then leaves it alone, in the
 *    parent and in the child: the interrupted code finishes its update and
 *    releases it itself, in both processes. Never lock_init a lock in a fork
 *    child: the interrupted code may still hold it.
 */
typedef struct { uint64_t word; } lock_t;
#define LOCK_INIT     { 0 }
#define LOCK_HELD     ((uint64_t)1)
#define LOCK_WAITERS  ((uint64_t)2)
#define LOCK_FLAGS    ((uint64_t)63)

static inline uint64_t lock_self(void)
{
	return (uint64_t)(uintptr_t)__builtin_thread_pointer();
}
void lock_acquire_slow(lock_t *l);   /* lock.c: contended, or held by the caller */
void lock_wake(lock_t *l);           /* lock.c: wake one sleeper */

static inline void lock_acquire(lock_t *l)
{
	uint64_t expected = 0;
	if (unlikely(!__atomic_compare_exchange_n(&l->word, &expected, lock_self() | LOCK_HELD, false,
						  __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
		lock_acquire_slow(l);
}
static inline bool lock_try(lock_t *l)
{
	uint64_t expected = 0;
	return __atomic_compare_exchange_n(&l->word, &expected, lock_self() | LOCK_HELD, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static inline bool lock_held_by_me(lock_t *l)
{
	return (__atomic_load_n(&l->word, __ATOMIC_RELAXED) & ~LOCK_FLAGS) == lock_self();
}
static inline void lock_release(lock_t *l)
{
	uint64_t old = __atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE);
	ASSERT((old & ~LOCK_FLAGS) == lock_self());
	if (unlikely(old & LOCK_WAITERS))
		lock_wake(l);
}
static inline void lock_init(lock_t *l) { __atomic_store_n(&l->word, 0, __ATOMIC_RELAXED); }
static inline void lock_assert_held(lock_t *l)
{
	ASSERT(lock_held_by_me(l));
	(void)l;
}

/* Fork (init.c's handlers only; lock.c). lock_fork_begin() in prepare, then
 * lock_fork_acquire() on every lock in the global order: takes l, or skips it
 * when the calling thread already holds it. lock_fork_release() in the parent
 * and child handlers releases l only if lock_fork_acquire took it;
 * lock_fork_end() closes the fork. lock_fork_skipped(l): l was skipped (the
 * interrupted code holds it and is halfway through an update under it). */
void lock_fork_begin(void);
void lock_fork_acquire(lock_t *l);
void lock_fork_release(lock_t *l);
bool lock_fork_skipped(const lock_t *l);
unsigned lock_fork_nskipped(void);
void lock_fork_end(void);

#pragma GCC visibility pop
#endif
