/*
 * test_fork.c - malloc across fork().
 *
 *  fork_single_threaded: plain fork; the child allocates in every tier, frees blocks
 *    the parent made before the fork (checking their contents), forks a grandchild
 *    that does the same, and _exit(0)s.
 *  fork_while_threads_allocate: 8 threads allocate and free continuously while 4
 *    threads fork 100 children in all. Each child allocates and frees, frees a
 *    slice of the blocks the parent made before the fork (kept in a global array),
 *    checks their contents, sometimes starts a thread that allocates, calls every
 *    statistics view (which walk all zones/caches/tables: no lock may be left
 *    held), then _exit(0). Meanwhile 2 more threads keep creating short-lived
 *    threads, so forks also hit thread-cache set-up and teardown.
 *  system_and_popen: system("true") and popen()/pclose(), also while threads allocate.
 *  fork_from_signal_handler(_bg): a single-threaded program (in _bg with
 *    buddyslab's background thread) forks from a SIGALRM handler that lands
 *    every 100 us in its allocation loop; every signal that lands inside a
 *    slab or zone lock forks, one in 8 of the others does; each child returns from the handler, goes on allocating and
 *    checking, and verifies the heap (details above the cases). At least 150
 *    forks, of which at least 30 with a lock held at the fork (counted by
 *    bsl_fork_stats); all children must exit 0.
 *  fork_with_lock_held: the same deterministically, layer by layer: the test
 *    holds the registry, a slab cpu, a zone, the arena lock (and slab + zone +
 *    arena together) and calls fork(); both processes release them and work.
 *  lock_taken_twice_aborts: malloc while the thread holds the zone locks
 *    aborts with "lock taken twice by one thread" instead of hanging.
 *
 * Hangs are failures: the parent runs under alarm() (a handler prints FAIL and
 * exits), every child under alarm(10) with the default action (dies by SIGALRM,
 * which the parent reports); the signal-handler cases run in a child that the
 * test kills (FAIL, with the fork count reached) when it makes no progress
 * for SIG_STALL_S. `test_fork NAME` runs only the case NAME (see main).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include "buddyslab.h"
#include "slab.h"
#include "buddy.h"
#include "init.h"
#include "config.h"
#include "tcache.h"
#include "t.h"

static const char *current_case = "?";
static void on_alarm(int sig)
{
	char msg[200];
	int n = snprintf(msg, sizeof msg, "FAIL %s (timed out: hang in the parent)\n", current_case);
	(void)sig;
	if (write(1, msg, (size_t)n) < 0) {}
	_exit(1);
}

/* In a child: message to stderr without stdio locks. */
static void child_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void child_say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0 && write(2, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1)) < 0) {}
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return *s = x;
}
static size_t rand_size(uint64_t *s)
{
	uint64_t r = rng_next(s);
	unsigned pick = (unsigned)(r % 100);
	r >>= 8;
	if (pick < 70) return 1 + r % 256;
	if (pick < 90) return 257 + r % 4000;
	if (pick < 97) return 4097 + r % 60000;
	return 65537 + r % 400000;
}

static void fill(void *p, size_t n, uint64_t tag)
{
	unsigned char *b = p;
	for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(tag + i * 31 + (i >> 9));
}
static int intact(const void *p, size_t n, uint64_t tag)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)(tag + i * 31 + (i >> 9))) return 0;
	return 1;
}

/* Blocks made by the parent before forking; children free (a slice of) them. */
#define NPRE 512
static void *pre[NPRE];
static size_t pre_n[NPRE];

static void make_pre(void)
{
	uint64_t s = 99;
	for (int i = 0; i < NPRE; i++) {
		pre_n[i] = (i % 64 == 63) ? 200000 + (size_t)i : rand_size(&s);
		pre[i] = malloc(pre_n[i]);
		if (pre[i]) fill(pre[i], pre_n[i], (uint64_t)i);
	}
}
static void free_pre(void)
{
	for (int i = 0; i < NPRE; i++) { free(pre[i]); pre[i] = NULL; }
}

static void *child_thread(void *arg)
{
	int *bad = arg;
	for (int i = 0; i < 200; i++) {
		size_t n = 16 + (size_t)i * 97;
		void *p = malloc(n);
		if (!p) { (*bad)++; continue; }
		fill(p, n, 5);
		if (!intact(p, n, 5)) (*bad)++;
		free(p);
	}
	return NULL;
}

/* What every child does. Returns the exit status (0 = all good). */
static int child_work(int seed, int with_thread)
{
	int bad = 0;
	uint64_t s = (uint64_t)seed * 0x9E3779B97F4A7C15ull | 1;
	enum { N = 300 };
	void *v[N];
	size_t n[N];
	for (int i = 0; i < N; i++) {
		n[i] = rand_size(&s);
		v[i] = (i & 3) == 0 ? calloc(1, n[i]) : malloc(n[i]);
		if (!v[i]) { bad++; child_say("  child: malloc(%zu) failed\n", n[i]); continue; }
		fill(v[i], n[i], (uint64_t)i + 1000);
	}
	/* free the parent's pre-fork blocks of one slice, after checking them */
	int from = (seed * 61) % NPRE, cnt = NPRE / 4;
	for (int k = 0; k < cnt; k++) {
		int i = (from + k) % NPRE;
		if (!pre[i]) continue;
		if (!intact(pre[i], pre_n[i], (uint64_t)i)) { bad++; child_say("  child: pre-fork block %d corrupt\n", i); }
		if (bsl_owns(pre[i]) != 1) { bad++; child_say("  child: bsl_owns(pre-fork block %d) != 1\n", i); }
		free(pre[i]);
		pre[i] = NULL;
	}
	/* realloc some pre-fork blocks of another slice */
	for (int k = 0; k < 16; k++) {
		int i = (from + cnt + k) % NPRE;
		if (!pre[i]) continue;
		size_t m = pre_n[i] * 2 + 1;
		void *q = realloc(pre[i], m);
		if (!q) { bad++; continue; }
		if (!intact(q, pre_n[i], (uint64_t)i)) { bad++; child_say("  child: realloc lost pre-fork block %d\n", i); }
		free(q);
		pre[i] = NULL;
	}
	if (with_thread) {
		pthread_t t;
		int tbad = 0;
		if (pthread_create(&t, NULL, child_thread, &tbad) == 0) pthread_join(t, NULL);
		else bad++;
		bad += tbad;
	}
	for (int i = 0; i < N; i++)
		if (v[i]) {
			if (!intact(v[i], n[i], (uint64_t)i + 1000)) { bad++; child_say("  child: block %d corrupt\n", i); }
			free(v[i]);
		}
	/* the views walk every zone, cache and table: no lock may be left held */
	int devnull = open("/dev/null", O_WRONLY);
	if (devnull >= 0) {
		struct bsl_stats st;
		bsl_stats(&st);
		bsl_buddyinfo(devnull);
		bsl_slabinfo(devnull);
		struct mallinfo2 mi = mallinfo2();
		(void)mi;
		int saved = dup(2);
		dup2(devnull, 2);
		malloc_stats();
		dup2(saved, 2);
		close(saved);
		FILE *f = fdopen(devnull, "w");
		if (f) { malloc_info(0, f); fclose(f); } else close(devnull);
		bsl_purge();
		malloc_trim(0);
	}
	return bad ? 1 : 0;
}

static int check_status(pid_t pid, int st, const char *what)
{
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
	if (WIFSIGNALED(st))
		fprintf(stderr, "  %s: child %d killed by signal %d%s\n", what, (int)pid, WTERMSIG(st),
			WTERMSIG(st) == SIGALRM ? " (hung: alarm(10) expired)" : "");
	else
		fprintf(stderr, "  %s: child %d exited with %d\n", what, (int)pid, WEXITSTATUS(st));
	return 0;
}

static pid_t fork_child(int seed, int with_thread)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(10);
		_exit(child_work(seed, with_thread));
	}
	return pid;
}

/* ------------------------------------------------------------ single-threaded */

static void fork_single_threaded(void)
{
	current_case = "fork_single_threaded";
	alarm(120);
	make_pre();
	for (int round = 0; round < 10; round++) {
		fflush(NULL);
		pid_t pid = fork_child(round, round & 1);
		REQUIRE(pid > 0);
		int st;
		REQUIRE(waitpid(pid, &st, 0) == pid);
		CHECK(check_status(pid, st, "fork"));
		/* the parent's blocks are still its own */
		void *p = malloc(1000);
		CHECK(p != NULL);
		free(p);
	}
	/* nested: the child forks a grandchild, both allocate */
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(10);
		void *keep = malloc(5000);
		if (keep) fill(keep, 5000, 7);
		pid_t g = fork_child(777, 1);
		int st, ok = g > 0 && waitpid(g, &st, 0) == g && WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (!ok) child_say("  grandchild failed\n");
		int r = child_work(778, 0);
		if (!keep || !intact(keep, 5000, 7)) r = 1;
		free(keep);
		_exit(ok ? r : 1);
	}
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(check_status(pid, st, "nested fork"));
	/* pre-fork blocks are intact in the parent whatever the children did */
	int bad = 0;
	for (int i = 0; i < NPRE; i++) if (pre[i] && !intact(pre[i], pre_n[i], (uint64_t)i)) bad++;
	CHECK(bad == 0);
	free_pre();
	alarm(0);
}

/* ------------------------------------------------------------ with threads */

#define NALLOC 8
#define NFORKER 4
#define FORKS_PER_THREAD 25    /* 100 forks */

static volatile int stop_alloc;
static long alloc_bad, fork_bad, forks_done;

static void *alloc_thread(void *arg)
{
	uint64_t s = (uint64_t)(uintptr_t)arg * 0x2545F4914F6CDD1Dull | 1;
	enum { K = 64 };
	void *v[K] = { 0 };
	size_t n[K] = { 0 };
	uint64_t tag[K] = { 0 };
	long bad = 0;
	while (!__atomic_load_n(&stop_alloc, __ATOMIC_RELAXED)) {
		int i = (int)(rng_next(&s) % K);
		if (v[i]) {
			if (!intact(v[i], n[i], tag[i])) bad++;
			free(v[i]);
		}
		n[i] = rand_size(&s) % 20000 + 1;
		v[i] = (i & 7) == 0 ? calloc(1, n[i]) : malloc(n[i]);
		if (!v[i]) { bad++; continue; }
		tag[i] = rng_next(&s);
		fill(v[i], n[i], tag[i]);
		/* thread 1 also purges, so forks land inside purges too */
		if ((uintptr_t)arg == 1 && (tag[i] & 255) == 0) { if (tag[i] & 256) bsl_purge(); else malloc_trim(0); }
	}
	for (int i = 0; i < K; i++)
		if (v[i]) {
			if (!intact(v[i], n[i], tag[i])) bad++;
			free(v[i]);
		}
	__atomic_add_fetch(&alloc_bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

/* Creates short-lived threads that allocate and exit, so forks happen while
 * caches are being set up and torn down. */
static void *spawn_child_thread(void *arg)
{
	void *v[20];
	for (int i = 0; i < 20; i++) { v[i] = malloc(16 + (size_t)i * 100); if (v[i]) memset(v[i], i, 16); }
	for (int i = 0; i < 20; i++) free(v[i]);
	return arg;
}
static void *spawner_thread(void *arg)
{
	while (!__atomic_load_n(&stop_alloc, __ATOMIC_RELAXED)) {
		pthread_t t;
		if (pthread_create(&t, NULL, spawn_child_thread, NULL) == 0) pthread_join(t, NULL);
		else __atomic_add_fetch(&alloc_bad, 1, __ATOMIC_RELAXED);
	}
	return arg;
}

static void *forker_thread(void *arg)
{
	int id = (int)(uintptr_t)arg;
	for (int k = 0; k < FORKS_PER_THREAD; k++) {
		pid_t pid = fork_child(id * 1000 + k, k % 5 == 0);
		if (pid < 0) { __atomic_add_fetch(&fork_bad, 1, __ATOMIC_RELAXED); continue; }
		int st;
		pid_t w;
		while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {}
		if (w != pid || !check_status(pid, st, "fork from thread"))
			__atomic_add_fetch(&fork_bad, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&forks_done, 1, __ATOMIC_RELAXED);
		/* the forker allocates between forks too */
		void *p = malloc(100 + (size_t)k * 10);
		free(p);
	}
	return NULL;
}

static void fork_while_threads_allocate(void)
{
	current_case = "fork_while_threads_allocate";
	alarm(200);
	make_pre();
	fflush(NULL);
	pthread_t a[NALLOC], f[NFORKER];
	stop_alloc = 0;
	for (int i = 0; i < NALLOC; i++) REQUIRE(pthread_create(&a[i], NULL, alloc_thread, (void *)(uintptr_t)(i + 1)) == 0);
	pthread_t sp[2];
	for (int i = 0; i < 2; i++) REQUIRE(pthread_create(&sp[i], NULL, spawner_thread, NULL) == 0);
	for (int i = 0; i < NFORKER; i++) REQUIRE(pthread_create(&f[i], NULL, forker_thread, (void *)(uintptr_t)i) == 0);
	for (int i = 0; i < NFORKER; i++) pthread_join(f[i], NULL);
	__atomic_store_n(&stop_alloc, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NALLOC; i++) pthread_join(a[i], NULL);
	for (int i = 0; i < 2; i++) pthread_join(sp[i], NULL);
	CHECK(forks_done == NFORKER * FORKS_PER_THREAD);
	CHECK(fork_bad == 0);
	CHECK(alloc_bad == 0);
	int bad = 0;
	for (int i = 0; i < NPRE; i++) if (pre[i] && !intact(pre[i], pre_n[i], (uint64_t)i)) bad++;
	CHECK(bad == 0);
	free_pre();
	alarm(0);
}

/* ------------------------------------------------------------ system / popen */

static int run_system_popen(void)
{
	int ok = 1;
	int r = system("true");
	if (!(WIFEXITED(r) && WEXITSTATUS(r) == 0)) { fprintf(stderr, "  system(true) = %#x\n", r); ok = 0; }
	r = system("exit 3");
	if (!(WIFEXITED(r) && WEXITSTATUS(r) == 3)) { fprintf(stderr, "  system(exit 3) = %#x\n", r); ok = 0; }
	FILE *p = popen("echo hello; echo world", "r");
	if (!p) { fprintf(stderr, "  popen: %s\n", strerror(errno)); return 0; }
	char *line = NULL;
	size_t cap = 0;
	ssize_t n1 = getline(&line, &cap, p);
	int l1 = n1 == 6 && strcmp(line, "hello\n") == 0;
	ssize_t n2 = getline(&line, &cap, p);
	int l2 = n2 == 6 && strcmp(line, "world\n") == 0;
	if (!l1 || !l2) { fprintf(stderr, "  popen read wrong lines\n"); ok = 0; }
	free(line);
	r = pclose(p);
	if (!(WIFEXITED(r) && WEXITSTATUS(r) == 0)) { fprintf(stderr, "  pclose = %#x\n", r); ok = 0; }
	p = popen("cat > /dev/null", "w");
	if (!p) return 0;
	for (int i = 0; i < 1000; i++) fprintf(p, "line %d\n", i);
	r = pclose(p);
	if (!(WIFEXITED(r) && WEXITSTATUS(r) == 0)) { fprintf(stderr, "  pclose(w) = %#x\n", r); ok = 0; }
	return ok;
}

static void system_and_popen(void)
{
	current_case = "system_and_popen";
	alarm(120);
	for (int i = 0; i < 5; i++) CHECK(run_system_popen());
	/* again while threads allocate */
	pthread_t a[4];
	stop_alloc = 0;
	for (int i = 0; i < 4; i++) REQUIRE(pthread_create(&a[i], NULL, alloc_thread, (void *)(uintptr_t)(i + 50)) == 0);
	for (int i = 0; i < 10; i++) CHECK(run_system_popen());
	__atomic_store_n(&stop_alloc, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++) pthread_join(a[i], NULL);
	CHECK(alloc_bad == 0);
	alarm(0);
}

/* ------------------------------------------------------------ fork from a signal handler */

/*
 * A single-threaded program takes SIGALRM every SIG_INTERVAL_US (ITIMER_REAL)
 * while it allocates, reallocates and frees in every tier, in bursts that
 * fill and empty slabs and overflow the thread and run caches, so signals
 * often land inside slow paths that hold a lock. The handler forks (at most
 * SIG_LIVE_MAX children alive). The child returns from the handler, so the
 * interrupted call finishes in the child, then goes on with the same loop for
 * SIG_CHILD_OPS operations, checking every block's contents, frees
 * everything and checks: bsl_stats allocated back to where the loop started,
 * every slab cpu and zone lock free and every slab and zone consistent
 * (slab_check, buddy_check), and an ordinary fork of a grandchild finds no
 * lock held by itself and works; then _exit(0). The parent reaps children in
 * its loop (never in the handler) and does the same checks at the end.
 *
 * The whole experiment runs in a child of the test (the "driver"), so that a
 * deadlock is a FAIL with a message, not a hung suite: the test polls it and
 * kills it when it makes no progress for SIG_STALL_S. Each child of the driver runs under
 * alarm(60) (dies by SIGALRM if it hangs; the driver reports that).
 * Proof that the case under test happened: bsl_fork_stats (init.h) counts the
 * forks at which the forking thread already held allocator locks, per layer.
 * The loop goes on until SIG_FORKS_MIN forks of which SIG_HELD_MIN with a lock
 * held, or SIG_FORKS_MAX forks (then FAIL: the case was not exercised).
 * The _bg variant also runs buddyslab's background thread (decay_ms 20).
 */
#define SIG_INTERVAL_US 100
#define SIG_LIVE_MAX    4
#define SIG_FORKS_MIN   150
#define SIG_HELD_MIN    30
#define SIG_FORKS_MAX   3000
#define SIG_CHILD_OPS   150
#define SIG_SLOTS       128
#define SIG_PLAIN_EVERY 8
#define SIG_STALL_S     60
#define SIG_LIMIT_S     900
#define SIG_STR_(x)     #x
#define STR(x)          SIG_STR_(x)

struct sig_result {            /* in a shared mapping: the driver fills it as it goes */
	long forks, fork_errors, signals, children_ok, children_bad, ops;
	uint64_t nfork_held, held[FORK_LAYERS];
	int driver_bad, finished;
};

static struct sig_result *sig_res;
static volatile sig_atomic_t sig_in_child, sig_stop;
static volatile sig_atomic_t sig_born_held;   /* child: a lock was held when we were forked */
static long sig_live;          /* children alive; atomic (the handler adds, the loop subtracts) */
static long sig_forks;         /* only the handler writes it */
static void *sig_slot[SIG_SLOTS];
static size_t sig_slot_n[SIG_SLOTS];
static uint64_t sig_slot_tag[SIG_SLOTS];

/* The handler interrupted a slab cpu or zone critical section (the thread
 * holds that lock). Reads lock words only: async-signal-safe. */
static int sig_interrupted_lock(void)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		if (lock_held_by_me(&slab_cpus[i].lock))
			return 1;
	for (unsigned i = 0; i < buddy_nzones(); i++)
		if (lock_held_by_me(&zones[i].lock))
			return 1;
	return 0;
}

static void sig_fork_handler(int sig)
{
	static unsigned tick;
	int saved_errno = errno;
	(void)sig;
	__atomic_add_fetch(&sig_res->signals, 1, __ATOMIC_RELAXED);
	/* Every signal that lands inside a slab or zone lock forks; of the
	 * others one in SIG_PLAIN_EVERY does (they still cover the registry,
	 * large and arena locks, and forks outside any lock). */
	int want = sig_interrupted_lock() || ++tick % SIG_PLAIN_EVERY == 0;
	if (want && !sig_in_child && !sig_stop && __atomic_load_n(&sig_live, __ATOMIC_RELAXED) < SIG_LIVE_MAX) {
		uint64_t held = __atomic_load_n(&bsl_fork_stats.nfork_held, __ATOMIC_RELAXED);
		pid_t pid = fork();
		if (pid == 0) {
			sig_in_child = 1;          /* the interval timer did not follow us */
			sig_born_held = __atomic_load_n(&bsl_fork_stats.nfork_held, __ATOMIC_RELAXED) != held;
			signal(SIGALRM, SIG_DFL);
			alarm(60);
		} else if (pid > 0) {
			sig_forks++;
			__atomic_add_fetch(&sig_live, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&sig_res->fork_errors, 1, __ATOMIC_RELAXED);
		}
	}
	errno = saved_errno;
}

/* Contents: every byte of a block up to 4 KiB; of a bigger one the first and
 * last 512 bytes and one byte per page. Positions from `limit` on are not
 * checked (realloc keeps only a prefix). */
static unsigned char sig_byte(uint64_t tag, size_t i) { return (unsigned char)(tag + i * 131 + (i >> 12)); }
static void sig_fill(unsigned char *p, size_t n, uint64_t tag)
{
	if (n <= 4096) {
		for (size_t i = 0; i < n; i++) p[i] = sig_byte(tag, i);
		return;
	}
	for (size_t i = 0; i < 512; i++) { p[i] = sig_byte(tag, i); p[n - 1 - i] = sig_byte(tag, n - 1 - i); }
	for (size_t i = 4096; i < n; i += 4096) p[i] = sig_byte(tag, i);
}
static int sig_intact(const unsigned char *p, size_t n, uint64_t tag, size_t limit)
{
	size_t lim = limit < n ? limit : n;
	if (n <= 4096) {
		for (size_t i = 0; i < lim; i++) if (p[i] != sig_byte(tag, i)) return 0;
		return 1;
	}
	for (size_t i = 0; i < 512; i++) {
		if (i < lim && p[i] != sig_byte(tag, i)) return 0;
		if (n - 1 - i < lim && p[n - 1 - i] != sig_byte(tag, n - 1 - i)) return 0;
	}
	for (size_t i = 4096; i < lim; i += 4096) if (p[i] != sig_byte(tag, i)) return 0;
	return 1;
}

static size_t sig_size(uint64_t r)
{
	unsigned pick = (unsigned)(r % 100);
	r >>= 8;
	if (pick < 55) return 1 + r % 1024;                      /* small classes */
	if (pick < 80) return 1025 + r % (16384 - 1024);          /* up to kmalloc-16k */
	if (pick < 95) return 16385 + r % (112 * 1024);          /* page runs */
	return 131073 + r % (384 * 1024);                        /* large blocks */
}

/* One operation; returns the number of corrupt blocks it found. */
static int sig_op(uint64_t *s)
{
	uint64_t r = rng_next(s);
	unsigned pick = (unsigned)(r % 1000), i = (unsigned)((r >> 10) % SIG_SLOTS);
	int bad = 0;
	if (pick < 600) {                 /* replace a slot */
		if (sig_slot[i] && !sig_intact(sig_slot[i], sig_slot_n[i], sig_slot_tag[i], SIZE_MAX)) bad++;
		free(sig_slot[i]);
		size_t n = sig_size(rng_next(s));
		sig_slot[i] = (r >> 20) & 1 ? malloc(n) : calloc(1, n);
		sig_slot_n[i] = n;
		sig_slot_tag[i] = rng_next(s);
		if (!sig_slot[i]) return bad + 1;
		sig_fill(sig_slot[i], n, sig_slot_tag[i]);
	} else if (pick < 750) {          /* realloc a slot, maybe to another tier */
		size_t n = sig_size(rng_next(s));
		void *q = realloc(sig_slot[i], n);
		if (!q) return bad + 1;
		if (sig_slot[i] && !sig_intact(q, sig_slot_n[i], sig_slot_tag[i], n)) bad++;
		sig_slot[i] = q;
		sig_slot_n[i] = n;
		sig_slot_tag[i] = rng_next(s);
		sig_fill(q, n, sig_slot_tag[i]);
	} else if (pick < 900) {          /* a burst of one class: refills, flushes, empty slabs */
		enum { BURST_MAX = 1024 };
		void *v[BURST_MAX];
		size_t cs = (size_t)16 << (rng_next(s) % 11);        /* 16 .. 16 KiB */
		cs -= (cs / 4) * (r >> 30 & 1);                       /* and the classes between */
		size_t cnt = (96 * 1024) / cs;
		cnt = cnt < 8 ? 8 : cnt > BURST_MAX ? BURST_MAX : cnt;
		size_t head = cs < 16 ? cs : 16;    /* cs is 12 at the smallest */
		for (size_t k = 0; k < cnt; k++) {
			v[k] = malloc(cs);
			if (v[k]) { memset(v[k], (int)(k & 255), head); } else bad++;
		}
		for (size_t k = 0; k < cnt; k++) {
			size_t j = (r >> 31) & 1 ? cnt - 1 - k : k;
			if (v[j] && ((unsigned char *)v[j])[head - 1] != (unsigned char)(j & 255)) bad++;
			free(v[j]);
		}
	} else if (pick < 960) {          /* page runs past the run cache */
		void *v[8];
		size_t n[8];
		for (int k = 0; k < 8; k++) {
			n[k] = 16385 + rng_next(s) % (112 * 1024);
			v[k] = malloc(n[k]);
			if (v[k]) sig_fill(v[k], n[k], (uint64_t)k); else bad++;
		}
		for (int k = 0; k < 8; k++) {
			if (v[k] && !sig_intact(v[k], n[k], (uint64_t)k, SIZE_MAX)) bad++;
			free(v[k]);
		}
	} else if (pick < 990) {          /* statistics (registry lock) and bsl_owns (slab, shard locks) */
		struct bsl_stats st;
		bsl_stats(&st);
		if (sig_slot[i] && bsl_owns(sig_slot[i]) != 1) bad++;
	} else if (pick < 995) {
		malloc_trim(0);
	} else {
		bsl_purge();
	}
	return bad;
}

static int sig_free_all(void)
{
	int bad = 0;
	for (int i = 0; i < SIG_SLOTS; i++) {
		if (sig_slot[i] && !sig_intact(sig_slot[i], sig_slot_n[i], sig_slot_tag[i], SIZE_MAX)) bad++;
		free(sig_slot[i]);
		sig_slot[i] = NULL;
	}
	return bad;
}

static size_t allocated_now(void)
{
	struct bsl_stats st;
	bsl_stats(&st);
	return st.allocated;
}

/* Every slab cpu and zone lock is free and every slab list and zone passes
 * its checker (which aborts on an inconsistency). Without the background
 * thread the caller is the only thread, so a lock that lock_try cannot take
 * was left held: counted and reported. With it, the lock is waited for (a lock
 * left held then hangs the process, which its alarm reports). */
static int sig_with_bg;
static int sig_take(lock_t *l)
{
	if (sig_with_bg) { lock_acquire(l); return 1; }
	return lock_try(l);
}
static int sig_heap_check(const char *who)
{
	int bad = 0;
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		if (!sig_take(&slab_cpus[i].lock)) { child_say("  %s: slab cpu %u lock held\n", who, i); bad++; continue; }
		slab_check(&slab_cpus[i]);
		lock_release(&slab_cpus[i].lock);
	}
	for (unsigned i = 0; i < buddy_nzones(); i++) {
		if (!sig_take(&zones[i].lock)) { child_say("  %s: zone %u lock held\n", who, i); bad++; continue; }
		buddy_check(&zones[i]);
		lock_release(&zones[i].lock);
	}
	return bad;
}

/* An ordinary fork: prepare takes every lock (a lock left held by a dead
 * process's thread would hang here, and one left held by us would be counted
 * as held at fork); the grandchild allocates in every tier and checks. */
static int sig_plain_fork_check(const char *who)
{
	uint64_t held_before = __atomic_load_n(&bsl_fork_stats.nfork_held, __ATOMIC_RELAXED);
	pid_t g = fork();
	if (g < 0) { child_say("  %s: fork: %s\n", who, strerror(errno)); return 1; }
	if (g == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(60);
		uint64_t s = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull | 1;
		int bad = 0;
		for (int k = 0; k < 200; k++) bad += sig_op(&s);
		bad += sig_free_all();
		bad += sig_heap_check("grandchild");
		_exit(bad ? 1 : 0);
	}
	int st, bad = 0;
	pid_t w;
	while ((w = waitpid(g, &st, 0)) < 0 && errno == EINTR) {}
	if (w != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		child_say("  %s: grandchild (plain fork) failed, status 0x%x\n", who, w == g ? st : -1);
		bad++;
	}
	if (__atomic_load_n(&bsl_fork_stats.nfork_held, __ATOMIC_RELAXED) != held_before) {
		child_say("  %s: a plain fork found a lock held by the forking thread\n", who);
		bad++;
	}
	return bad;
}

/* The rest of a child's life, after the handler returned into the loop. */
static int sig_child_finish(size_t base)
{
	int bad = sig_free_all();
	if (bad) child_say("  child %d: %d corrupt blocks\n", (int)getpid(), bad);
	size_t now = allocated_now();
	if (now != base) { child_say("  child %d: allocated %zu after freeing all, %zu before the loop\n", (int)getpid(), now, base); bad++; }
	bad += sig_heap_check("child");
	if (sig_born_held || getpid() % 8 == 0)
		bad += sig_plain_fork_check("child");
	return bad;
}

static void sig_reap(int flags)
{
	int st;
	pid_t pid;
	while (__atomic_load_n(&sig_live, __ATOMIC_RELAXED) > 0 && (pid = waitpid(-1, &st, flags)) != 0) {
		if (pid < 0) {
			if (errno == EINTR) continue;
			child_say("  driver: waitpid: %s with %ld children alive\n", strerror(errno), sig_live);
			sig_res->driver_bad++;
			__atomic_store_n(&sig_live, 0, __ATOMIC_RELAXED);
			return;
		}
		__atomic_sub_fetch(&sig_live, 1, __ATOMIC_RELAXED);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			sig_res->children_ok++;
		} else {
			sig_res->children_bad++;
			check_status(pid, st, "child of a fork from a signal handler");
		}
	}
}

static void sig_publish(void)
{
	sig_res->forks = sig_forks;
	sig_res->nfork_held = __atomic_load_n(&bsl_fork_stats.nfork_held, __ATOMIC_RELAXED);
	for (int k = 0; k < FORK_LAYERS; k++)
		sig_res->held[k] = __atomic_load_n(&bsl_fork_stats.held[k], __ATOMIC_RELAXED);
}

static void sig_driver(int with_bg, pid_t parent)
{
	/* Die with the test: a driver orphaned by a killed test would go on
	 * forking from its timer for ever. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	memset(&bsl_fork_stats, 0, sizeof bsl_fork_stats);
	sig_with_bg = with_bg;
	if (with_bg) {
		opt.decay_ms = 20;
		opt.background_thread = 1;
	}
	uint64_t s = 0x1234567 | 1;
	for (int k = 0; k < 300; k++) sig_op(&s);     /* warm up caches; starts the background thread */
	sig_free_all();
	size_t base = allocated_now();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sig_fork_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, SIG_INTERVAL_US }, { 0, SIG_INTERVAL_US } };
	setitimer(ITIMER_REAL, &it, NULL);
	long child_ops = 0, bad = 0, ops = 0;
	for (;;) {
		if (sig_in_child) {
			if (child_ops++ == 0) s ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull;
			if (child_ops > SIG_CHILD_OPS) {
				if (bad) child_say("  child %d: %ld corrupt blocks in the loop\n", (int)getpid(), bad);
				_exit(sig_child_finish(base) || bad ? 1 : 0);
			}
		} else if ((++ops & 15) == 0) {
			/* bookkeeping with SIGALRM blocked: a child resumes where the
			 * handler interrupted the parent, and must not find itself in
			 * the middle of reaping the parent's children */
			sigset_t alrm, old;
			sigemptyset(&alrm);
			sigaddset(&alrm, SIGALRM);
			sigprocmask(SIG_BLOCK, &alrm, &old);
			if (sig_in_child) {
				/* forked between the test above and the block */
				sigprocmask(SIG_SETMASK, &old, NULL);
				continue;
			}
			sig_reap(WNOHANG);
			sig_publish();
			sig_res->ops = ops;
			int done = (sig_forks >= SIG_FORKS_MIN && sig_res->nfork_held >= SIG_HELD_MIN) ||
				   sig_forks >= SIG_FORKS_MAX;
			if (done) {
				/* stop forking before SIGALRM is let in again: a
				 * child forked between this test and the break would
				 * run the driver's end (reaping, checks) as its own */
				sig_stop = 1;
				memset(&it, 0, sizeof it);
				setitimer(ITIMER_REAL, &it, NULL);
				signal(SIGALRM, SIG_IGN);
				sigprocmask(SIG_SETMASK, &old, NULL);
				break;
			}
			sigprocmask(SIG_SETMASK, &old, NULL);
		}
		bad += sig_op(&s);
	}
	if (bad) { child_say("  driver: %ld corrupt blocks in the loop\n", bad); sig_res->driver_bad++; }
	if (sig_free_all()) { child_say("  driver: corrupt blocks at the end\n"); sig_res->driver_bad++; }
	sig_reap(0);
	sig_publish();
	size_t now = allocated_now();
	if (now != base) { child_say("  driver: allocated %zu at the end, %zu before the loop\n", now, base); sig_res->driver_bad++; }
	sig_res->driver_bad += sig_heap_check("driver");
	sig_res->driver_bad += sig_plain_fork_check("driver");
	sig_res->finished = 1;
	_exit(0);
}

static void run_fork_from_signal_handler(const char *name, int with_bg)
{
	current_case = name;
	alarm(SIG_LIMIT_S + 60);
	sig_res = mmap(NULL, sizeof *sig_res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(sig_res != MAP_FAILED);
	memset(sig_res, 0, sizeof *sig_res);
	fflush(NULL);
	pid_t self = getpid();
	pid_t d = fork();
	REQUIRE(d >= 0);
	if (d == 0)
		sig_driver(with_bg, self);
	/* A hang is no progress (the driver's operation count and the children
	 * it reaped stand still) for SIG_STALL_S, not a slow machine;
	 * SIG_LIMIT_S only bounds a driver that progresses for ever. */
	int st = 0, polls = 0, still = 0;
	long seen = -1;
	pid_t w;
	while ((w = waitpid(d, &st, WNOHANG)) == 0 && still < SIG_STALL_S * 50 && polls++ < SIG_LIMIT_S * 50) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		long now = __atomic_load_n(&sig_res->ops, __ATOMIC_RELAXED) +
			   __atomic_load_n(&sig_res->children_ok, __ATOMIC_RELAXED) +
			   __atomic_load_n(&sig_res->children_bad, __ATOMIC_RELAXED);
		still = now == seen ? still + 1 : 0;
		seen = now;
	}
	if (w == 0) {
		fprintf(stderr, "  driver %s after %ld forks from the handler, %llu with a lock held; killed\n",
			still >= SIG_STALL_S * 50 ? "made no progress for " STR(SIG_STALL_S) " s (deadlock?)"
						  : "still running after " STR(SIG_LIMIT_S) " s",
			sig_res->forks, (unsigned long long)sig_res->nfork_held);
		kill(d, SIGKILL);
		waitpid(d, &st, 0);
		CHECK(!"driver finished");
	} else {
		CHECK(check_status(d, st, "driver"));
	}
	struct sig_result r = *sig_res;
	printf("  info: %s: %ld forks from the handler (%ld signals), %llu with a lock held "
	       "(registry %llu, slab %llu, zone %llu, large %llu, arena %llu locks); children ok %ld, failed %ld\n",
	       name, r.forks, r.signals, (unsigned long long)r.nfork_held,
	       (unsigned long long)r.held[0], (unsigned long long)r.held[1], (unsigned long long)r.held[2],
	       (unsigned long long)r.held[3], (unsigned long long)r.held[4], r.children_ok, r.children_bad);
	fflush(stdout);
	CHECK(r.finished);
	CHECK(r.fork_errors == 0);
	CHECK(r.driver_bad == 0);
	CHECK(r.children_bad == 0);
	CHECK(r.children_ok == r.forks);
	CHECK(r.forks >= SIG_FORKS_MIN);
	if (r.nfork_held < SIG_HELD_MIN)
		fprintf(stderr, "  only %llu of %ld forks landed while a lock was held: the case was not exercised\n",
			(unsigned long long)r.nfork_held, r.forks);
	CHECK(r.nfork_held >= SIG_HELD_MIN);
	munmap(sig_res, sizeof *sig_res);
	alarm(0);
}

static void fork_from_signal_handler(void) { run_fork_from_signal_handler("fork_from_signal_handler", 0); }
static void fork_from_signal_handler_bg(void) { run_fork_from_signal_handler("fork_from_signal_handler_bg", 1); }

/* ------------------------------------------------------------ fork with a lock held */

/*
 * The same situation without a signal, deterministic and for every layer:
 * the forking thread holds allocator locks when it calls fork() (as when a
 * handler that forks interrupted a critical section). Prepare must skip them
 * (bsl_fork_stats counts them in their layer), take the others, and leave
 * them held in both processes, where their holder (here the test) releases
 * them; then both processes allocate in every tier, pass the heap checks,
 * and an ordinary fork works. Each layer runs in a child under alarm(30), so
 * a deadlock (what happened before: prepare took the held lock again) is a
 * FAIL naming the layer.
 */
enum { HOLD_REGISTRY = 1, HOLD_SLAB = 2, HOLD_ZONE = 4, HOLD_ARENA = 8 };

static void hold_take(int what)
{
	if (what & HOLD_REGISTRY) tcache_lock_all();          /* the registry lock */
	if (what & HOLD_SLAB) lock_acquire(&slab_cpus[1].lock);
	if (what & HOLD_ZONE) lock_acquire(&zones[0].lock);
	if (what & HOLD_ARENA) arena_lock_all();               /* the arena lock */
}
static void hold_give(int what)
{
	if (what & HOLD_ARENA) arena_unlock_all();
	if (what & HOLD_ZONE) lock_release(&zones[0].lock);
	if (what & HOLD_SLAB) lock_release(&slab_cpus[1].lock);
	if (what & HOLD_REGISTRY) tcache_unlock_all();
}
static int hold_still_held(int what)
{
	/* the registry and arena locks are private to their files: held is
	 * proved by lock_held_by_me on the ones we can see and by the stats */
	int ok = 1;
	if (what & HOLD_SLAB) ok &= lock_held_by_me(&slab_cpus[1].lock);
	if (what & HOLD_ZONE) ok &= lock_held_by_me(&zones[0].lock);
	return ok;
}

static int hold_after(const char *who, int what)
{
	int bad = 0;
	if (!hold_still_held(what)) { child_say("  %s: a held lock was released by the fork handlers\n", who); bad++; }
	hold_give(what);
	uint64_t s = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull | 1;
	for (int k = 0; k < 300; k++) bad += sig_op(&s);
	bad += sig_free_all();
	bad += sig_heap_check(who);
	bad += sig_plain_fork_check(who);
	return bad;
}

static void hold_and_fork(int what, const char *name)
{
	fflush(NULL);
	pid_t c = fork();
	if (c < 0) { CHECK(!"fork"); return; }
	if (c == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(30);
		sig_with_bg = 0;
		struct bsl_fork_stats before = bsl_fork_stats;
		hold_take(what);
		pid_t g = fork();                 /* prepare finds the locks held */
		if (g < 0) _exit(2);
		int bad = 0;
		uint64_t want[FORK_LAYERS] = { !!(what & HOLD_REGISTRY), !!(what & HOLD_SLAB), !!(what & HOLD_ZONE), 0,
					       !!(what & HOLD_ARENA) };
		if (bsl_fork_stats.nfork_held != before.nfork_held + 1) {
			child_say("  %s: fork not counted as made with a lock held\n", name);
			bad++;
		}
		for (int k = 0; k < FORK_LAYERS; k++)
			if (bsl_fork_stats.held[k] != before.held[k] + want[k]) {
				child_say("  %s: layer %d: %llu locks skipped, want %llu\n", name, k,
					  (unsigned long long)(bsl_fork_stats.held[k] - before.held[k]),
					  (unsigned long long)want[k]);
				bad++;
			}
		bad += hold_after(g == 0 ? "child" : "parent", what);
		if (g == 0) _exit(bad ? 1 : 0);
		int st;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			child_say("  %s: the child of the fork failed (status 0x%x)\n", name, st);
			bad++;
		}
		_exit(bad ? 1 : 0);
	}
	int st;
	REQUIRE(waitpid(c, &st, 0) == c);
	if (!check_status(c, st, name)) {
		fprintf(stderr, "  holding %s at fork failed\n", name);
		CHECK(0);
	}
}

static void fork_with_lock_held(void)
{
	current_case = "fork_with_lock_held";
	alarm(200);
	hold_and_fork(HOLD_REGISTRY, "registry lock");
	hold_and_fork(HOLD_SLAB, "slab cpu lock");
	hold_and_fork(HOLD_ZONE, "zone lock");
	hold_and_fork(HOLD_ARENA, "arena lock");
	hold_and_fork(HOLD_SLAB | HOLD_ZONE | HOLD_ARENA, "slab cpu, zone and arena locks");
	alarm(0);
}

/* A thread that takes an allocator lock it holds (malloc from a signal handler
 * that interrupted malloc) aborts with a message instead of hanging. */
static void malloc_under_own_lock(void *arg)
{
	(void)arg;
	buddy_lock_all();                       /* every zone lock, as if interrupted there */
	void *p = malloc(100 * 1024 + 12345);   /* a page run: needs a zone lock */
	free(p);
}
static void lock_taken_twice_aborts(void)
{
	current_case = "lock_taken_twice_aborts";
	alarm(60);
	CHECK(t_expect_abort(malloc_under_own_lock, NULL, "buddyslab: lock taken twice by one thread"));
	alarm(0);
}

/* test_fork [NAME...] [-NAME...]: every case, or only the cases named, less
 * those named with a leading '-' (secure.sh and static_full.sh leave out the
 * two signal-handler cases, which the three direct builds run). */
static int n_args;
static char **args;
static int selected(const char *name)
{
	int any_plain = 0, chosen = 0;
	for (int i = 0; i < n_args; i++) {
		if (args[i][0] == '-') {
			if (strcmp(args[i] + 1, name) == 0)
				return 0;
		} else {
			any_plain = 1;
			chosen |= strcmp(args[i], name) == 0;
		}
	}
	return !any_plain || chosen;
}
#define RUN(fn) do { if (selected(#fn)) T_RUN(fn); } while (0)

int main(int argc, char **argv)
{
	n_args = argc - 1;
	args = argv + 1;
	signal(SIGALRM, on_alarm);
	RUN(fork_single_threaded);
	RUN(fork_while_threads_allocate);
	RUN(system_and_popen);
	RUN(fork_from_signal_handler);
	RUN(fork_from_signal_handler_bg);
	RUN(fork_with_lock_held);
	RUN(lock_taken_twice_aborts);
	return t_done();
}
