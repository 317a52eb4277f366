/*
 * test_thread_exit.c - the thread-exit path, stage by stage.
 *
 * A thread's teardown in glibc: __call_tls_dtors (C++ thread_local
 * destructors), up to four rounds of pthread key destructors (ours among
 * them), __libc_thread_freeres, then, with every signal blocked, the stack
 * cache: a detached thread queues its own stack and, when the cache is over
 * its limit, frees the DTVs of *other* cached stacks. Each case below makes
 * the allocator run at one of those stages and checks that no thread cache is
 * left behind (bsl_stats().nthreads back to its baseline), that nothing
 * crashes, and that memory handed out there is intact.
 */
#define _GNU_SOURCE
#include "t.h"
#include <buddyslab.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

static uint64_t nthreads_now(void)
{
	struct bsl_stats s;
	bsl_stats(&s);
	return s.nthreads;
}

/* Threads of this process, from /proc/self/task. */
static int tasks_now(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Detached threads are gone (and done freeing) when only this one is left.
 * Bounded: about 20 s at most, then the caller's checks report what is left. */
static void wait_alone(void)
{
	for (int i = 0; i < 20000 && tasks_now() > 1; i++) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Exactly 31 slow-path calls: a thread's cache is not live yet, so each
 * malloc and free of a fresh thread goes to the slow path (warm-up is 32). */
static void *thirty_one_calls(void *arg)
{
	void *p[16];
	for (int i = 0; i < 16; i++) {
		p[i] = malloc(24);
		if (p[i])
			memset(p[i], i, 24);
	}
	for (int i = 0; i < 15; i++)
		free(p[i]);
	sleep_ms(1);
	(void)arg;
	return p[15];   /* the 16th block is kept: freed by nobody, a tiny leak per thread */
}

static int start_detached(void *(*fn)(void *), void *arg, size_t stack)
{
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (stack)
		pthread_attr_setstacksize(&a, stack);
	int rc = pthread_create(&t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}

/* The reproducer: 12 detached threads per round, 31 slow calls each.
 * Stacks of two sizes push glibc's stack cache over its 40 MiB limit, so
 * exiting threads evict other stacks and free their DTVs after their own
 * teardown; the old code made the cache live there and set the key value on
 * a descriptor the next thread inherited (SIGSEGV in its destructor). */
static void detached_31_slow_calls(void)
{
	uint64_t base = nthreads_now();
	for (int round = 0; round < 120; round++) {
		for (int i = 0; i < 12; i++)
			REQUIRE(start_detached(thirty_one_calls, NULL,
			                       (round & 1) ? 0x100000 : 8u << 20) == 0);
		sleep_ms(3);
	}
	wait_alone();
	CHECK(tasks_now() == 1);
	uint64_t now = nthreads_now();
	if (now != base)
		fprintf(stderr, "  caches alive: %llu, expected %llu\n",
		        (unsigned long long)now, (unsigned long long)base);
	CHECK(now == base);
}

/* A thread that never allocated exits while the stack cache is over its
 * limit: its first allocator calls are the DTV frees of other stacks, made
 * with every signal blocked after its teardown. It must not start a cache
 * (the old code did after 32 of them and no destructor ever returned it). */
static void *idle(void *arg)
{
	(void)arg;
	sleep_ms(2);
	return NULL;
}

static void *dtv_heavy(void *arg)
{
	(void)arg;
	return NULL;
}

static void evicting_thread_never_allocated(void)
{
	uint64_t base = nthreads_now();
	for (int round = 0; round < 20; round++) {
		/* Joinable threads fill the stack cache (40 MiB) with ~160 small
		 * stacks, each with a DTV from malloc. */
		enum { N = 192 };
		static pthread_t t[N];
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 256u << 10);
		int n = 0;
		for (; n < N; n++)
			if (pthread_create(&t[n], &a, dtv_heavy, NULL) != 0)
				break;
		pthread_attr_destroy(&a);
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		/* A big detached thread that never allocates: when it exits, its
		 * stack alone is over the limit, so it frees every small stack's
		 * DTV (well over the warm-up's 32 calls). */
		REQUIRE(start_detached(idle, NULL, 64u << 20) == 0);
		wait_alone();
	}
	CHECK(tasks_now() == 1);
	uint64_t now = nthreads_now();
	if (now != base)
		fprintf(stderr, "  caches alive: %llu, expected %llu\n",
		        (unsigned long long)now, (unsigned long long)base);
	CHECK(now == base);
}

/* A key created by the program after the allocator's own: its destructor runs
 * after ours and allocates a lot (more than the warm-up), in every round. */
static pthread_key_t late_key;
static volatile int late_bad;

static void churn(int n)
{
	void *p[64];
	for (int r = 0; r < n; r++) {
		for (int i = 0; i < 64; i++) {
			p[i] = malloc(16 + (size_t)i * 40);
			if (p[i])
				memset(p[i], 0x5a, 16 + (size_t)i * 40);
		}
		for (int i = 0; i < 64; i++) {
			if (p[i] && ((unsigned char *)p[i])[15 + i * 40] != 0x5a)
				late_bad = 1;
			free(p[i]);
		}
	}
}

static void late_dtor(void *v)
{
	churn(4);
	static __thread int rounds;
	if (++rounds < 4)
		pthread_setspecific(late_key, v);   /* come back next round */
}

static void *use_late_key(void *arg)
{
	churn(2);
	pthread_setspecific(late_key, (void *)1);
	return arg;
}

static void key_dtor_allocates_every_round(void)
{
	uint64_t base = nthreads_now();
	REQUIRE(pthread_key_create(&late_key, late_dtor) == 0);
	for (int round = 0; round < 50; round++) {
		pthread_t t[8];
		for (int i = 0; i < 8; i++)
			REQUIRE(pthread_create(&t[i], NULL, use_late_key, NULL) == 0);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
	}
	CHECK(!late_bad);
	CHECK(nthreads_now() == base);
}

/* C++ thread_local destructors run before the key destructors; one that
 * allocates must find a working cache or the slabs, and leave nothing. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;

static void tls_dtor(void *obj)
{
	churn(3);
	free(obj);
}

static void *register_tls_dtor(void *arg)
{
	void *obj = malloc(100);
	__cxa_thread_atexit_impl(tls_dtor, obj, &__dso_handle);
	return arg;
}

static void tls_dtor_allocates(void)
{
	uint64_t base = nthreads_now();
	for (int round = 0; round < 50; round++) {
		pthread_t t[8];
		for (int i = 0; i < 8; i++)
			REQUIRE(pthread_create(&t[i], NULL, register_tls_dtor, NULL) == 0);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
	}
	CHECK(!late_bad);
	CHECK(nthreads_now() == base);
}

/* pthread_exit called from inside a key destructor: glibc unwinds back into
 * start_thread and runs the exit path again. */
static pthread_key_t exit_key2;

static void exiting_dtor(void *v)
{
	churn(2);
	free(v);
	pthread_exit(NULL);
}

static void *use_exit_key(void *arg)
{
	churn(1);
	pthread_setspecific(exit_key2, malloc(64));
	return arg;
}

static void pthread_exit_from_key_dtor(void)
{
	uint64_t base = nthreads_now();
	REQUIRE(pthread_key_create(&exit_key2, exiting_dtor) == 0);
	for (int round = 0; round < 50; round++) {
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			REQUIRE(pthread_create(&t[i], NULL, use_exit_key, NULL) == 0);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	}
	CHECK(!late_bad);
	CHECK(nthreads_now() == base);
}

/* A thread created (and joined) by a thread that is already in its teardown. */
static pthread_key_t spawn_key;

static void *child_of_exiting(void *arg)
{
	churn(2);
	return arg;
}

static void spawning_dtor(void *v)
{
	pthread_t t;
	if (pthread_create(&t, NULL, child_of_exiting, v) == 0)
		pthread_join(t, NULL);
	churn(1);
}

static void *use_spawn_key(void *arg)
{
	churn(1);
	pthread_setspecific(spawn_key, (void *)1);
	return arg;
}

static void thread_created_by_exiting_thread(void)
{
	uint64_t base = nthreads_now();
	REQUIRE(pthread_key_create(&spawn_key, spawning_dtor) == 0);
	for (int round = 0; round < 30; round++) {
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			REQUIRE(pthread_create(&t[i], NULL, use_spawn_key, NULL) == 0);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	}
	CHECK(!late_bad);
	CHECK(nthreads_now() == base);
}

/* libc's per-thread state (here dlerror's message buffer) is freed by
 * __libc_thread_freeres, after the key destructors. */
static void *dlerror_state(void *arg)
{
	churn(1);
	void *h = dlopen("/nonexistent/libbuddyslab-test.so", RTLD_NOW);
	if (h)
		dlclose(h);
	return arg;
}

static void libc_freeres(void)
{
	uint64_t base = nthreads_now();
	for (int round = 0; round < 50; round++) {
		pthread_t t[8];
		for (int i = 0; i < 8; i++)
			REQUIRE(pthread_create(&t[i], NULL, dlerror_state, NULL) == 0);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
	}
	CHECK(nthreads_now() == base);
}

/* With an argument, only the case of that name runs (to try one case alone). */
static const char *only;
#define RUN(fn) do { if (!only || strcmp(only, #fn) == 0) T_RUN(fn); } while (0)

int main(int argc, char **argv)
{
	only = argc > 1 ? argv[1] : NULL;
	/* The allocator (and its exit key) first, and this thread's cache live
	 * (past its warm-up), so that the baselines below count it already. */
	for (int i = 0; i < 64; i++)
		free(malloc(24));
	RUN(detached_31_slow_calls);
	RUN(evicting_thread_never_allocated);
	RUN(key_dtor_allocates_every_round);
	RUN(tls_dtor_allocates);
	RUN(pthread_exit_from_key_dtor);
	RUN(thread_created_by_exiting_thread);
	RUN(libc_freeres);
	return t_done();
}
