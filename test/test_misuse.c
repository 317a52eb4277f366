/*
 * test_misuse.c - what buddyslab does with a program's memory bugs: each case
 * runs in a child and must die by SIGABRT with the exact message.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include "t.h"

static void df_immediate(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void *p = malloc(n);
	free(p);
	free(p);
}

static void df_delayed(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void *p = malloc(n), *q = malloc(n);
	free(p);
	free(q);
	free(p);
}

/* p goes back to the slab (many frees flush the thread cache), then again */
static void df_after_flush(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void *p = malloc(n);
	static void *many[4096];
	for (int i = 0; i < 4096; i++)
		many[i] = malloc(n);
	free(p);
	for (int i = 0; i < 4096; i++)
		free(many[i]);
	free(p);
}

/* the slot is reused: the stale free releases the new block (undetectable),
 * the owner's later free of that block is the double free */
static void df_after_reuse(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	char *p = malloc(n);
	free(p);
	char *p2 = malloc(n);
	if (p2 != p)
		abort();      /* LIFO reuse expected; abort without the message */
	free(p);
	free(p2);
}

/* The thread exists before the block does, so that pthread_create's own
 * allocations cannot take the freed slot in between. */
static void *volatile handoff;
static void *free_in_thread(void *unused)
{
	void *p;
	while (!(p = __atomic_load_n(&handoff, __ATOMIC_ACQUIRE)))
		sched_yield();
	free(p);
	return NULL;
}

static void df_cross_thread(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	pthread_t t;
	pthread_create(&t, NULL, free_in_thread, NULL);
	void *keep = malloc(n);    /* keeps the slab alive */
	void *p = malloc(n);
	free(p);
	__atomic_store_n(&handoff, p, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	free(keep);
}

static const size_t small_sizes[] = { 1, 16, 24, 100, 1000, 5000, 16384 };
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

static void check_all(void (*fn)(void *), const char *msg)
{
	for (size_t i = 0; i < NSMALL; i++)
		if (!t_expect_abort(fn, (void *)(uintptr_t)small_sizes[i], msg))
			CHECK(!"expected abort");
}

static void double_free_immediate(void) { check_all(df_immediate, "buddyslab: double free 0x"); }
static void double_free_delayed(void) { check_all(df_delayed, "buddyslab: double free 0x"); }
static void double_free_after_flush(void) { check_all(df_after_flush, "buddyslab: double free 0x"); }
static void double_free_after_reuse(void) { check_all(df_after_reuse, "buddyslab: double free 0x"); }
static void double_free_cross_thread(void) { check_all(df_cross_thread, "buddyslab: double free 0x"); }

static void df_run_large(void *arg)
{
	void *p = malloc((size_t)(uintptr_t)arg);
	free(p);
	free(p);
}

static void double_free_run_and_large(void)
{
	CHECK(t_expect_abort(df_run_large, (void *)(uintptr_t)40000, "invalid pointer 0x"));
	CHECK(t_expect_abort(df_run_large, (void *)(uintptr_t)(4u << 20), "invalid pointer 0x"));
}

static void bad_interior(void *arg)
{
	char *p = malloc(64);
	free(p + (uintptr_t)arg);
}

static void bad_foreign(void *arg)
{
	free(arg);
}

static void invalid_pointers(void)
{
	CHECK(t_expect_abort(bad_interior, (void *)16, "buddyslab: free(): invalid pointer 0x"));
	CHECK(t_expect_abort(bad_interior, (void *)1, "buddyslab: free(): invalid pointer 0x"));
	CHECK(t_expect_abort(bad_interior, (void *)32, "buddyslab: free(): invalid pointer 0x"));
	int local;
	CHECK(t_expect_abort(bad_foreign, &local, "buddyslab: free(): invalid pointer 0x"));
	CHECK(t_expect_abort(bad_foreign, (void *)1, "buddyslab: free(): invalid pointer 0x"));
	void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(t_expect_abort(bad_foreign, m, "buddyslab: free(): invalid pointer 0x"));
	munmap(m, 8192);
}

/*
 * Use after free: the program writes a value of its choosing over the first
 * word (or the first two words) of a freed block. The free-list link there is
 * encoded and checked, so the next allocation that takes the block aborts
 * instead of handing out the forged address.
 */
static long forged_target[64];
#define CORRUPT_MSG "buddyslab: corrupted free list: the free object 0x"

static void warm_up(size_t n)     /* past the thread cache's warm-up */
{
	for (int i = 0; i < 64; i++)
		free(malloc(n));
}

/* p on top of a thread-cache bin */
static void uaf_bin(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	warm_up(n);
	void **p = malloc(n), *q = malloc(n);
	free(q);
	free(p);
	p[0] = &forged_target[8];
	void *r = malloc(n);
	void *s = malloc(n);
	fprintf(stderr, "not detected: malloc gave %p then %p (forged %p)\n", r, s, (void *)&forged_target[8]);
}

/* both words written (the check word too) */
static void uaf_bin_two_words(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	warm_up(n);
	void **p = malloc(n), *q = malloc(n);
	free(q);
	free(p);
	p[0] = p[1] = &forged_target[8];
	void *r = malloc(n);
	void *s = malloc(n);
	fprintf(stderr, "not detected: malloc gave %p then %p\n", r, s);
}

/* p on a slab's own free list (the thread cache overflowed past it) */
static void uaf_slab(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	enum { K = 4096 };
	static void *many[K];
	void **p = malloc(n);
	for (int i = 0; i < K; i++)
		many[i] = malloc(n);
	free(p);
	for (int i = 0; i < K; i++)
		free(many[i]);
	p[0] = &forged_target[8];
	for (int i = 0; i < K + 1; i++)
		many[i < K ? i : 0] = malloc(n);
	fprintf(stderr, "not detected after %d allocations\n", K + 1);
}

/* a freed page run parked in the thread's run cache */
static void uaf_run_cache(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	warm_up(16);
	warm_up(n);
	void **p = malloc(n);
	free(p);
	p[0] = &forged_target[8];
	void *r = malloc(n);
	fprintf(stderr, "not detected: malloc gave %p\n", r);
}

static void use_after_free_write_bin(void) { check_all(uaf_bin, CORRUPT_MSG); }
static void use_after_free_write_two_words(void) { check_all(uaf_bin_two_words, CORRUPT_MSG); }
static void use_after_free_write_slab(void) { check_all(uaf_slab, CORRUPT_MSG); }
static void use_after_free_write_run(void)
{
	CHECK(t_expect_abort(uaf_run_cache, (void *)(uintptr_t)40000, CORRUPT_MSG));
	CHECK(t_expect_abort(uaf_run_cache, (void *)(uintptr_t)(100 << 10), CORRUPT_MSG));
}

/* A block whose second word happens to hold the value of another block's
 * word is not a double free: only the process's secret tag counts. */
/* Live objects whose first two words hold what programs store there (copies
 * of another live object's words, small numbers, pointers, all ones) are freed
 * without a report: in a child, which must exit 0 with nothing on stderr. */
static void no_false_positive(void)
{
	int fd[2];
	REQUIRE(pipe(fd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 2);
		for (int round = 0; round < 1000; round++) {
			uint64_t *a = malloc(32), *b = malloc(32);
			b[1] = a[1];
			a[0] = b[0] = (uint64_t)round;
			free(a);
			free(b);
			uint64_t *c = malloc(48), *d = malloc(48);
			uint64_t words[] = { 0, ~(uint64_t)0, (uintptr_t)c, (uintptr_t)d, (uint64_t)round };
			c[0] = words[round % 5];
			c[1] = words[(round / 5) % 5];
			memcpy(d, c, 16);
			free(c);
			free(d);
		}
		_exit(0);
	}
	close(fd[1]);
	char err[512] = { 0 };
	ssize_t n = read(fd[0], err, sizeof err - 1);
	close(fd[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	if (n > 0)
		fprintf(stderr, "  the child wrote: %s", err);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(n <= 0);
}

int main(void)
{
	T_RUN(double_free_immediate);
	T_RUN(double_free_delayed);
	T_RUN(double_free_after_flush);
	T_RUN(double_free_after_reuse);
	T_RUN(double_free_cross_thread);
	T_RUN(double_free_run_and_large);
	T_RUN(invalid_pointers);
	T_RUN(no_false_positive);
	T_RUN(use_after_free_write_bin);
	T_RUN(use_after_free_write_two_words);
	T_RUN(use_after_free_write_slab);
	T_RUN(use_after_free_write_run);
	return t_done();
}
