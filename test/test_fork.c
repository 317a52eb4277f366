/*
 * test_fork.c - malloc across fork().
 *
 *  fork_single_threaded: plain fork; the child allocates in every tier, frees blocks
 *    the parent made before the fork (checking their contents), forks a grandchild
 *    that does the same, and _exit(0)s.
 *  fork_while_threads_allocate: 8 threads allocate and free continuously while 4
 *    threads fork ~200 children in all. Each child allocates and frees, frees a
 *    slice of the blocks the parent made before the fork (kept in a global array),
 *    checks their contents, sometimes starts a thread that allocates, calls every
 *    statistics view (which walk all zones/caches/tables: no lock may be left
 *    held), then _exit(0). Meanwhile 2 more threads keep creating short-lived
 *    threads, so forks also hit thread-cache set-up and teardown.
 *  system_and_popen: system("true") and popen()/pclose(), also while threads allocate.
 *
 * Hangs are failures: the parent runs under alarm() (a handler prints FAIL and
 * exits), every child under alarm(10) with the default action (dies by SIGALRM,
 * which the parent reports).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <malloc.h>
#include "buddyslab.h"
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
#define FORKS_PER_THREAD 50    /* 200 forks */

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

int main(void)
{
	signal(SIGALRM, on_alarm);
	T_RUN(fork_single_threaded);
	T_RUN(fork_while_threads_allocate);
	T_RUN(system_and_popen);
	return t_done();
}
