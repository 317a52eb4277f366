/*
 * test_secure.c - BUDDYSLAB_CONF=secure: each hardening feature catches the
 * bug it is for, with the exact outcome (signal, message), and leaves correct
 * programs alone.
 *
 * The options are read once at start-up, so the program re-executes itself
 * with BUDDYSLAB_CONF=secure:1 unless the variable is already set (run it by
 * hand with secure:canary etc. to try one feature; cases that need a feature
 * that is off report SKIP). Misuse cases run in forked children.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include "t.h"
#include "buddyslab.h"
#include "config.h"
#include "secure.h"
#include "slab.h"

static void pin_cpu0(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	sched_setaffinity(0, sizeof set, &set);
}

/* Run fn in a child; 1 when it died of signal sig (and, for SIGABRT, its
 * stderr holds msg). */
/* SIGSEGV expected: the child's fn names the guard page it must fault in
 * (expect_fault_in) before the access; the handler exits FAULT_OK for a fault
 * there and FAULT_ELSEWHERE (after printing the address) for any other, e.g.
 * one inside the allocator. */
enum { FAULT_OK = 42, FAULT_ELSEWHERE = 43 };
static volatile uintptr_t fault_page;

static void expect_fault_in(const volatile void *addr)
{
	fault_page = (uintptr_t)addr & ~(uintptr_t)4095;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	if (fault_page && a - fault_page < 4096)
		_exit(FAULT_OK);
	char msg[] = "  SIGSEGV at 0x0000000000000000, not in the expected guard page\n";
	for (int i = 0; i < 16; i++)
		msg[15 + 15 - i] = "0123456789abcdef"[(a >> (4 * i)) & 15];
	write(2, msg, sizeof msg - 1);
	_exit(FAULT_ELSEWHERE);
}

static int expect_signal(void (*fn)(void *), void *arg, int sig, const char *msg)
{
	if (sig == SIGABRT)
		return t_expect_abort(fn, arg, msg);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSEGV, &sa, NULL);
		fault_page = 0;
		fn(arg);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	int ok = sig == SIGSEGV ? WIFEXITED(st) && WEXITSTATUS(st) == FAULT_OK
				: WIFSIGNALED(st) && WTERMSIG(st) == sig;
	if (!ok)
		fprintf(stderr, "  expected signal %d%s; status 0x%x\n", sig,
			sig == SIGSEGV ? " in the guard page" : "", st);
	return ok;
}

#define NEED(feature) do { if (!(opt.secure & (feature))) SKIP("secure feature " #feature " is off"); } while (0)

/* ------------------------------------------------------------- correctness */

/* Every size and alignment: usable bytes are writable in full (canaries sit
 * past them), contents survive realloc, calloc is zero, nothing aborts. */
static void correct_programs_run(void)
{
	static const size_t sz[] = { 0, 1, 8, 9, 15, 16, 17, 24, 100, 1000, 4088, 4096, 8184,
		16376, 16377, 16384, 20000, 100000, 131072, 200000, 3 << 20 };
	enum { N = sizeof sz / sizeof sz[0] };
	for (int round = 0; round < 50; round++) {
		unsigned char *p[N];
		for (int i = 0; i < N; i++) {
			p[i] = round & 1 ? calloc(1, sz[i]) : malloc(sz[i]);
			REQUIRE(p[i]);
			size_t u = malloc_usable_size(p[i]);
			CHECK(u >= sz[i]);
			if (round & 1)
				for (size_t k = 0; k < sz[i]; k++)
					if (p[i][k]) { CHECK(!"calloc memory is zero"); break; }
			memset(p[i], (int)(i + round), u);
		}
		for (int i = 0; i < N; i++) {
			size_t u = malloc_usable_size(p[i]);
			p[i] = realloc(p[i], sz[(i + round) % N] + 1);
			REQUIRE(p[i]);
			size_t keep = u < sz[(i + round) % N] + 1 ? u : sz[(i + round) % N] + 1;
			for (size_t k = 0; k < keep; k += 61)
				if (p[i][k] != (unsigned char)(i + round)) { CHECK(!"realloc kept the bytes"); break; }
			memset(p[i], 1, malloc_usable_size(p[i]));
		}
		for (int i = 0; i < N; i++)
			free(p[i]);
	}
	for (size_t align = 16; align <= (1 << 22); align <<= 1)
		for (size_t n = 1; n < (1 << 20); n = n * 7 + 3) {
			void *q = NULL;
			REQUIRE(posix_memalign(&q, align, n) == 0);
			CHECK(((uintptr_t)q & (align - 1)) == 0);
			memset(q, 3, malloc_usable_size(q));
			free(q);
		}
	errno = 0;
	volatile size_t huge = SIZE_MAX;
	CHECK(malloc(huge) == NULL && errno == ENOMEM);
}

/* Each block is filled with its own byte (thread, slot, round) over its whole
 * usable size and checked before it is freed; returns the count of NULLs,
 * short usable sizes and changed bytes. */
static unsigned char fill_byte(uintptr_t t, int k, int i) { return (unsigned char)(t * 61 + k * 7 + i); }

static void *thread_churn(void *arg)
{
	void *v[256] = { 0 };
	size_t vn[256];
	unsigned char vb[256];
	uintptr_t t = (uintptr_t)arg, bad = 0;
	unsigned x = (unsigned)t;
	for (int i = 0; i < 100000; i++) {
		x = x * 1103515245 + 12345;
		int k = (int)(x >> 8) % 256;
		if (v[k]) {
			const unsigned char *c = v[k];
			for (size_t j = 0; j < vn[k]; j++)
				if (c[j] != vb[k]) { bad++; break; }
			free(v[k]);
			v[k] = NULL;
		} else {
			size_t n = (x >> 16) % 3000;
			if (!(v[k] = malloc(n))) { bad++; continue; }
			vn[k] = malloc_usable_size(v[k]);
			if (vn[k] < n) bad++;
			vb[k] = fill_byte(t, k, i);
			memset(v[k], vb[k], vn[k]);
		}
	}
	for (int k = 0; k < 256; k++)
		free(v[k]);
	return (void *)bad;
}

static void threads_run(void)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, thread_churn, (void *)(uintptr_t)(i + 1)) == 0);
	uintptr_t bad = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (uintptr_t)r;
	}
	if (bad)
		fprintf(stderr, "  %lu bad blocks (NULL, short, or contents changed)\n", (unsigned long)bad);
	CHECK(bad == 0);
}

static void config_is_shown(void)
{
	char path[] = "/tmp/bsl_secure_XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	unlink(path);
	bsl_config_print(fd);
	char buf[4096] = { 0 };
	pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	CHECK(strstr(buf, "secure:") != NULL);
	if (opt.secure == SEC_ALL)
		CHECK(strstr(buf, "secure:all") != NULL);
	CHECK(opt.secure != 0);
}

/* ------------------------------------------------------------------ guards */

/* A linear overflow out of a slab's last object runs into its guard page. */
static void overflow_last_slab_object(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	pin_cpu0();
	char *p = NULL;
	for (int i = 0; i < 100000; i++) {   /* until an object is the last of its slab */
		p = malloc(n);
		struct page_desc *d = arena_desc_of(p);
		struct page_desc *s = slab_head(d, p);
		if ((uintptr_t)p + s->slab_base_hidden == (size_t)(s->nobjs - 1) * class_info[s->class_idx].size)
			break;
	}
	struct page_desc *s = slab_head(arena_desc_of(p), p);
	expect_fault_in((char *)desc_addr(s) + ((((size_t)1 << s->order) - 1) << 12));
	memset(p, 'x', 64 << 10);    /* past its end: the guard faults */
	fprintf(stderr, "overflow not stopped\n");
}

static void slab_guard_pages(void)
{
	NEED(SEC_GUARD);
	static const size_t sz[] = { 16, 100, 1000, 5000, 16000 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
		if (!expect_signal(overflow_last_slab_object, (void *)(uintptr_t)sz[i], SIGSEGV, NULL)) {
			fprintf(stderr, "  size %zu: no fault\n", sz[i]);
			t_failed_case = 1;
		}
}

/* (volatile: a store into a block that is then leaked may be optimised away) */
static void large_before(void *arg)
{
	volatile char *p = malloc((size_t)(uintptr_t)arg);
	expect_fault_in(p - 1);
	p[-1] = 1;
}
/* the first byte past the block's pages (its canary trailer included) */
static size_t rear_guard_at(size_t n)
{
	return (n + sec_canary_bytes + 4095) & ~(size_t)4095;
}
static void large_after(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	volatile char *p = malloc(n);
	expect_fault_in(p + rear_guard_at(n));
	p[rear_guard_at(n)] = 1;
}

/* a block carved from a bigger cached mapping gets a new rear guard (with
 * quarantine on, the freed mapping waits and is not reused at once) */
static void large_after_reuse(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	void *big = malloc(n + (n >> 1));
	free(big);
	volatile char *p = malloc(n);
	if ((void *)p != big)
		fprintf(stderr, "(not from the cache: %p, freed %p)\n", (void *)p, big);
	expect_fault_in(p - 1);
	p[-1] = 0;     /* the front guard */
}
static void large_after_reuse_rear(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	free(malloc(n + (n >> 1)));
	volatile char *p = malloc(n);
	expect_fault_in(p + rear_guard_at(n));
	p[rear_guard_at(n)] = 1;
}

static void large_guard_pages(void)
{
	NEED(SEC_GUARD);
	static const size_t sz[] = { 200000, 1 << 20, (3 << 20) + 5 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		CHECK(expect_signal(large_before, (void *)(uintptr_t)sz[i], SIGSEGV, NULL));
		CHECK(expect_signal(large_after, (void *)(uintptr_t)sz[i], SIGSEGV, NULL));
		CHECK(expect_signal(large_after_reuse, (void *)(uintptr_t)sz[i], SIGSEGV, NULL));
		CHECK(expect_signal(large_after_reuse_rear, (void *)(uintptr_t)sz[i], SIGSEGV, NULL));
	}
	/* aligned large blocks keep their guards and their alignment */
	void *q = NULL;
	REQUIRE(posix_memalign(&q, 1 << 21, 1 << 20) == 0);
	CHECK(((uintptr_t)q & ((1 << 21) - 1)) == 0);
	free(q);
}

/* ------------------------------------------------------------- quarantine */

static void large_use_after_free(void *arg)
{
	volatile char *p = arg;
	expect_fault_in(p);
	p[0] = 1;
}

/* A large block waiting in the quarantine with its pages hands them to the
 * next large block that fits (secure_recycle): the new block is resident
 * before it is touched, zero (calloc, and under fill erased as they entered),
 * one mapping (realloc can mremap it); the freed block's addresses still
 * fault. Run first: no other block waits then. */
static void large_pages_recycled(void)
{
	NEED(SEC_QUARANTINE);
	size_t n = (7u << 20) + 777, want = n - 8192, np = (want + 4095) / 4096;
	char *p = malloc(n);
	REQUIRE(p);
	memset(p, 0xab, n);
	free(p);
	char *q = calloc(1, want);
	REQUIRE(q && q != p);
	unsigned char *vec = malloc(np);
	REQUIRE(vec && mincore((void *)((uintptr_t)q & ~(uintptr_t)4095), np * 4096, vec) == 0);
	size_t resident = 0;
	for (size_t i = 0; i < np; i++)
		resident += vec[i] & 1;
	free(vec);
	if (resident < np - 2)
		fprintf(stderr, "  %zu of %zu pages resident before any touch\n", resident, np);
	CHECK(resident >= np - 2);
	size_t nonzero = 0;
	for (size_t i = 0; i < want; i++)
		nonzero += q[i] != 0;
	CHECK(nonzero == 0);
	memset(q, 0x5c, want);
	CHECK(expect_signal(large_use_after_free, p, SIGSEGV, NULL));
	char *r = realloc(q, 3 * want);
	REQUIRE(r);
	CHECK(r[0] == 0x5c && r[want - 1] == 0x5c);
	free(r);
}

/* ----------------------------------------------------------------- canary */

static void overflow_one_byte(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	char *p = malloc(n);
	p[malloc_usable_size(p)] = 'x';     /* one byte past what the program may use */
	free(p);
}

/* realloc in place rewrites the trailer: the new size is what is checked */
static void overflow_after_realloc(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	char *p = malloc(n);
	char *q = realloc(p, n + 4);
	if (q != p)
		fprintf(stderr, "(realloc moved %zu -> %zu)\n", n, n + 4);
	q[n + 4] = 'x';
	free(q);
}

static void canaries(void)
{
	NEED(SEC_CANARY);
	static const size_t sz[] = { 1, 8, 16, 24, 100, 1000, 4000, 16000 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		void *p = malloc(sz[i]);
		REQUIRE(p);
		CHECK(malloc_usable_size(p) >= sz[i]);
		free(p);
		if (!t_expect_abort(overflow_one_byte, (void *)(uintptr_t)sz[i],
				    "buddyslab: heap overflow: ")) {
			fprintf(stderr, "  size %zu: not caught\n", sz[i]);
			t_failed_case = 1;
		}
		if (!t_expect_abort(overflow_after_realloc, (void *)(uintptr_t)(sz[i] * 40),
				    "buddyslab: heap overflow: ")) {
			fprintf(stderr, "  size %zu after realloc: not caught\n", sz[i] * 40);
			t_failed_case = 1;
		}
	}
}

/* ------------------------------------------------------------------- fill */

static void write_after_free(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	pin_cpu0();
	volatile char *p = malloc(n);
	void *keep = malloc(n);            /* the slab stays, not given back to the pages */
	free((void *)p);
	p[n - 1] = 'x';                    /* past the two link words */
	/* with quarantine, p is checked when it leaves it, SEC_QOBJS frees later */
	for (int i = 0; i < 100000; i++) {
		void *q = malloc(n);
		if (q == p)
			break;
		free(q);
	}
	fprintf(stderr, "write after free not caught\n");
	free(keep);
}

static void fill_checks(void)
{
	NEED(SEC_FILL);
	/* sizes whose slabs hold several objects: a slab left empty goes back to
	 * the page allocator and is filled afresh, so a write into it is not seen */
	static const size_t sz[] = { 24, 100, 1000, 5000 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
		if (!t_expect_abort(write_after_free, (void *)(uintptr_t)sz[i],
				    "buddyslab: write after free: the free object 0x")) {
			fprintf(stderr, "  size %zu: not caught\n", sz[i]);
			t_failed_case = 1;
		}
}

/* The link words are checked in secure mode too. */
static void link_overwrite(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	pin_cpu0();
	void *volatile *p = malloc(n);
	void *keep = malloc(n);            /* the slab stays, not given back to the pages */
	free((void *)p);
	p[0] = &keep;
	for (int i = 0; i < 100000; i++)
		free(malloc(n));
}

static void double_free(void *arg) { void *p = malloc((size_t)(uintptr_t)arg); free(p); free(p); }

static void default_checks_stay(void)
{
	/* in quarantine a free object's link words are its mark: checked when it leaves */
	CHECK(t_expect_abort(link_overwrite, (void *)100, (opt.secure & SEC_QUARANTINE) ?
			     "buddyslab: write after free: the free object 0x" :
			     "buddyslab: corrupted free list"));
	CHECK(t_expect_abort(double_free, (void *)100, "buddyslab: double free 0x"));
	CHECK(t_expect_abort(double_free, (void *)40000, "buddyslab: double free 0x"));
	CHECK(t_expect_abort(double_free, (void *)(1 << 20), "buddyslab: double free 0x"));
}

/* ---------------------------------------------------------------- shuffle */

/* In fresh slabs, how often is the next object the neighbour of the last? */
static void shuffled_order(void)
{
	NEED(SEC_SHUFFLE);
	pin_cpu0();
	enum { K = 4000 };
	static char *v[K];
	int neighbours = 0;
	for (int i = 0; i < K; i++) {
		v[i] = malloc(48);
		REQUIRE(v[i]);
		if (i && (v[i] - v[i - 1] == 48 || v[i - 1] - v[i] == 48))
			neighbours++;
	}
	fprintf(stderr, "  info: %d of %d consecutive 48-byte objects are neighbours\n", neighbours, K - 1);
	CHECK(neighbours < K / 10);     /* bump allocation would make nearly all neighbours */
	for (int i = 0; i < K; i++)
		free(v[i]);
}

int main(int argc, char **argv)
{
	if (!getenv("BUDDYSLAB_CONF")) {
		setenv("BUDDYSLAB_CONF", "secure:1", 1);
		execv("/proc/self/exe", argv);
		printf("FAIL re-exec\n");
		return 1;
	}
	T_RUN(large_pages_recycled);
	T_RUN(config_is_shown);
	T_RUN(correct_programs_run);
	T_RUN(threads_run);
	T_RUN(slab_guard_pages);
	T_RUN(large_guard_pages);
	T_RUN(canaries);
	T_RUN(fill_checks);
	T_RUN(default_checks_stay);
	T_RUN(shuffled_order);
	return t_done();
}
