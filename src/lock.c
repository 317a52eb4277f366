/*
 * lock.c - the slow half of lock_t (common.h): sleeping on a contended lock,
 * waking a sleeper, and the bookkeeping of fork's handlers.
 *
 * The futex calls are raw system calls: no errno is touched (free() keeps
 * errno) and they are async-signal-safe.
 *
 * Fork: the forking thread's prepare handler calls lock_fork_acquire on every
 * lock. A lock that thread already holds (a signal handler that forks
 * interrupted the allocator inside a critical section) is not taken again but
 * written down in the thread's own list, fork_skip; the parent and child
 * handlers release every lock except those. The list is per thread because
 * two threads may fork at once (each takes or skips locks for itself). A
 * thread holds at most three allocator locks at a time (slab cpu, zone,
 * arena), so FORK_SKIP_MAX is never reached except by a fork from a handler
 * that interrupted the fork handlers themselves (every lock is then held):
 * that aborts with a message, as does a second lock_fork_begin.
 */
#include "common.h"
#include <sys/syscall.h>
#include <linux/futex.h>

static long futex_raw(uint64_t *word, int op, uint32_t val)
{
	/* the low half of the word (x86-64 is little-endian): it holds the flags */
	long ret;
	register long r10 __asm__("r10") = 0;     /* no timeout */
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"((long)SYS_futex), "D"(word), "S"((long)op), "d"((long)val), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

void lock_acquire_slow(lock_t *l)
{
	uint64_t me = lock_self();
	uint64_t c = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
	if ((c & ~LOCK_FLAGS) == me)
		bsl_fatal("lock taken twice by one thread (malloc called from a signal handler "
			  "that interrupted malloc?); lock", l);
	for (;;) {
		if (c == 0) {
			/* we may have slept: others may sleep too, so keep WAITERS */
			if (__atomic_compare_exchange_n(&l->word, &c, me | LOCK_HELD | LOCK_WAITERS, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return;
			continue;
		}
		if (!(c & LOCK_WAITERS) &&
		    !__atomic_compare_exchange_n(&l->word, &c, c | LOCK_WAITERS, false,
						 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		/* sleeps only while the low half is still what we saw, WAITERS set:
		 * the holder's release then wakes one sleeper */
		futex_raw(&l->word, FUTEX_WAIT_PRIVATE, (uint32_t)(c | LOCK_WAITERS));
		c = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
	}
}

void lock_wake(lock_t *l)
{
	futex_raw(&l->word, FUTEX_WAKE_PRIVATE, 1);
}

/* ------------------------------------------------------------------ fork */

#define FORK_SKIP_MAX 8

static __thread struct {
	int active;                      /* between lock_fork_begin and lock_fork_end */
	unsigned n;
	lock_t *skipped[FORK_SKIP_MAX];  /* held by this thread when prepare ran */
} fork_skip;

void lock_fork_begin(void)
{
	if (fork_skip.active)
		bsl_fatal("fork() from a signal handler that interrupted fork()", NULL);
	fork_skip.active = 1;
	fork_skip.n = 0;
}

void lock_fork_acquire(lock_t *l)
{
	if (!lock_held_by_me(l)) {
		lock_acquire(l);
		return;
	}
	if (fork_skip.n == FORK_SKIP_MAX)
		bsl_fatal("fork(): the forking thread holds too many allocator locks", NULL);
	fork_skip.skipped[fork_skip.n++] = l;
}

bool lock_fork_skipped(const lock_t *l)
{
	for (unsigned i = 0; i < fork_skip.n; i++)
		if (fork_skip.skipped[i] == l)
			return true;
	return false;
}

void lock_fork_release(lock_t *l)
{
	if (!lock_fork_skipped(l))
		lock_release(l);
}

unsigned lock_fork_nskipped(void)
{
	return fork_skip.n;
}

void lock_fork_end(void)
{
	fork_skip.n = 0;
	fork_skip.active = 0;
}
