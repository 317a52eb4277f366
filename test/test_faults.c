/*
 * test_faults.c - the OS refusing memory: mmap, mprotect, madvise and mremap
 * failing at the Nth call (os_fail_at, src/os.c).
 *
 * Every API must return NULL + ENOMEM (posix_memalign: ENOMEM, *p untouched,
 * errno kept), keep the blocks the program already has intact, leak nothing
 * (bsl_stats allocated back to where it was) and work again once the fault
 * stops. Each scenario runs in a forked child (alarm(20) against hangs), so a
 * broken heap cannot poison the next one; after its own checks every child
 * runs a 10k-operation random malloc/free/realloc stress with pattern checks.
 * A few scenarios need a process whose heap is still empty (the arena
 * reservation itself failing): this program re-executes itself for those.
 * T_ONLY=<case> runs a single case.
 *
 * What is asserted where the API leaves a choice:
 *  - malloc/calloc of 128 KiB < n <= 4 MiB with mmap refused: either a block
 *    from free arena pages (buddyslab's fallback) or NULL + ENOMEM; above
 *    4 MiB, or with an alignment above 4 MiB: NULL + ENOMEM.
 *  - realloc of a large (mmap'd) block is mremap: with mmap refused but
 *    mremap working it may succeed (contents kept) or fail cleanly; with
 *    mremap refused, a grow returns NULL + ENOMEM and the old block is intact
 *    (buddyslab does not fall back to malloc + copy; asserted exactly).
 *  - a shrinking realloc of a large block with mremap refused: either the
 *    block (contents kept) or NULL + ENOMEM with the old block intact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buddyslab.h"
#include "os.h"
#include "arena.h"
#include "large.h"
#include "config.h"
#include "t.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static const char *self_exe = "/proc/self/exe";

/* Called through volatile pointers so gcc's -Wuse-after-free does not fire on
 * the (correct) use of a block after a realloc that failed. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;

/* ------------------------------------------------------------ helpers */

static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)(i * 131u + (i >> 8) * 7u + (i >> 16) * 13u + seed * 29u + 1u);
}

/* Bytes checked of a block of n bytes: all of it up to 64 KiB, else the first
 * and last 4 KiB and every 509th byte (keeps big blocks cheap). */
/* The index of the next probed byte after i. */
static size_t step(size_t i, size_t n)
{
	if (n <= 64 * KiB || i + 1 < 4 * KiB || i + 1 >= n - 4 * KiB)
		return i + 1;
	size_t next = (i / 509 + 1) * 509;
	return next > n - 4 * KiB ? n - 4 * KiB : next;
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i = step(i, n))
		c[i] = pat(i, seed);
}

/* 1 when the probed bytes of p hold fill(p, n, seed); prints the first mismatch. */
static int intact(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i = step(i, n))
		if (c[i] != pat(i, seed)) {
			fprintf(stderr, "  block %p (%zu bytes, seed %u): byte %zu is %#x, expected %#x\n",
				p, n, seed, i, c[i], pat(i, seed));
			return 0;
		}
	return 1;
}

/* The probed bytes of fill(p, n, seed) that lie below keep are still there. */
static int intact_prefix(const void *p, size_t n, size_t keep, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n && i < keep; i = step(i, n))
		if (c[i] != pat(i, seed)) {
			fprintf(stderr, "  block %p (first %zu of %zu bytes, seed %u): byte %zu is %#x, "
				"expected %#x\n", p, keep, n, seed, i, c[i], pat(i, seed));
			return 0;
		}
	return 1;
}

static int all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i]) {
			fprintf(stderr, "  calloc block %p (%zu bytes): byte %zu is %#x, not 0\n",
				p, n, i, c[i]);
			return 0;
		}
	return 1;
}

/* Arrays of our own that never come from the allocator under test. */
static void *map_array(size_t nbytes)
{
	void *p = mmap(NULL, nbytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static size_t allocated_now(void)
{
	struct bsl_stats s;
	bsl_stats(&s);
	return s.allocated;
}

/* The expression must give NULL with errno ENOMEM; a block it gives anyway is freed. */
#define EXPECT_NOMEM(expr) do { \
	errno = 0; \
	void *q_ = (expr); \
	int e_ = errno; \
	if (q_ != NULL || e_ != ENOMEM) { \
		fprintf(stderr, "  %s:%d: %s gave %p, errno %d (%s); expected NULL, ENOMEM\n", \
			__FILE__, __LINE__, #expr, q_, e_, strerror(e_)); \
		t_failed_case = 1; \
	} \
	free(q_); \
} while (0)

/* Is the failure injection of op disarmed (its next call goes to the kernel)?
 * Probed with one real call of our own: only used where that is harmless. */
static bool mprotect_disarmed(void)
{
	void *pg = mmap(NULL, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pg == MAP_FAILED)
		return false;
	bool ok = os_commit(pg, PAGE_SIZE);
	munmap(pg, PAGE_SIZE);
	return ok;
}

static void disarm_all(void)
{
	for (int op = 0; op < OS_NOPS; op++)
		os_fail_at((enum os_op)op, 0, false);
}

/* --------------------------------------------- random stress, run after each scenario */

#define NSLOTS 512

static size_t stress_size(unsigned r)
{
	unsigned k = r % 100;
	unsigned x = r >> 8;
	if (k < 60) return 1 + x % 1024;
	if (k < 85) return 1025 + x % (16 * KiB - 1024);
	if (k < 95) return 16 * KiB + 1 + x % (112 * KiB);
	return 128 * KiB + 1 + x % (2 * MiB);
}

/* 10k random malloc/calloc/free/realloc/memalign with pattern checks; the
 * bytes allocated come back to where they started. */
static void stress(unsigned seed)
{
	static void *p[NSLOTS];
	static size_t n[NSLOTS];
	static unsigned sd[NSLOTS];
	unsigned r = seed * 2654435761u + 12345;
	size_t start = allocated_now();
	int bad = 0, nulls = 0;
	for (int op = 0; op < 10000 && bad < 5; op++) {
		r = r * 1103515245u + 12345u;
		unsigned i = (r >> 7) % NSLOTS;
		unsigned r2 = r * 2891336453u + 1;
		if (p[i]) {
			if (!intact(p[i], n[i], sd[i])) bad++;
			if (malloc_usable_size(p[i]) < n[i]) {
				fprintf(stderr, "  stress: usable size of %p is %zu < %zu\n",
					p[i], malloc_usable_size(p[i]), n[i]);
				bad++;
			}
			if ((r >> 20) % 3 == 0) {   /* realloc, keeps the common prefix */
				size_t m = stress_size(r2);
				void *q = realloc_v(p[i], m);
				if (!q) { nulls++; continue; }
				size_t keep = m < n[i] ? m : n[i];
				unsigned s2 = sd[i];
				/* the old pattern must survive in the prefix */
				if (!intact_prefix(q, n[i], keep, s2)) {
					fprintf(stderr, "  stress: realloc %zu -> %zu lost data\n", n[i], m);
					bad++;
				}
				p[i] = q; n[i] = m; sd[i] = op;
				fill(q, m, sd[i]);
			} else {
				free(p[i]);
				p[i] = NULL;
			}
		} else {
			size_t m = stress_size(r2);
			void *q;
			unsigned kind = (r >> 24) % 8;
			if (kind == 0) {
				q = calloc(1, m);
				if (q && !all_zero(q, m < 64 * KiB ? m : 64 * KiB)) bad++;
			} else if (kind == 1) {
				size_t al = (size_t)16 << ((r >> 12) % 9);   /* 16 .. 4096 */
				q = memalign(al, m);
				if (q && ((uintptr_t)q & (al - 1))) {
					fprintf(stderr, "  stress: memalign(%zu) gave %p\n", al, q);
					bad++;
				}
			} else {
				q = malloc(m);
			}
			if (!q) { nulls++; continue; }
			if ((uintptr_t)q & 15) { fprintf(stderr, "  stress: %p misaligned\n", q); bad++; }
			p[i] = q; n[i] = m; sd[i] = op;
			fill(q, m, sd[i]);
		}
	}
	for (unsigned i = 0; i < NSLOTS; i++)
		if (p[i]) {
			if (!intact(p[i], n[i], sd[i])) bad++;
			free(p[i]);
			p[i] = NULL;
		}
	size_t end = allocated_now();
	if (nulls)
		fprintf(stderr, "  stress: %d allocations failed with the faults off\n", nulls);
	if (end != start)
		fprintf(stderr, "  stress: allocated %zu before, %zu after\n", start, end);
	CHECK(bad == 0);
	CHECK(nulls == 0);
	CHECK(end == start);
}

/* ------------------------------------------------------------- the fork wrapper */

/* Run body in a child: faults armed in there stay in there. The child then
 * disarms everything and runs the stress. The case fails when the child
 * reports a failure, crashes or hangs. */
static void in_child(void (*body)(void), unsigned seed)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "  fork: %s\n", strerror(errno));
		t_failed_case = 1;
		return;
	}
	if (pid == 0) {
		alarm(20);
		t_failed_case = 0;
		body();
		int body_failed = t_failed_case;
		disarm_all();
		t_failed_case = 0;
		stress(seed);
		if (t_failed_case)
			fprintf(stderr, "  the stress after the scenario failed\n");
		_exit(body_failed || t_failed_case ? 1 : 0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "  child died of signal %d (%s)%s\n", WTERMSIG(st),
			strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? ": hung for 20 s" : "");
		t_failed_case = 1;
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		t_failed_case = 1;
	}
}

/* Run this program again with args (a fresh heap), expect exit status 0
 * (77 = skip). */
static void in_fresh_process(const char *mode)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self_exe, self_exe, "--fresh", mode, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		SKIP("the re-executed program had allocated before main");
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "  fresh process (%s) died of signal %d (%s)\n", mode, WTERMSIG(st),
			strsignal(WTERMSIG(st)));
		t_failed_case = 1;
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "  fresh process (%s) exited with status %d\n", mode,
			WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		t_failed_case = 1;
	}
}

/* ============================================================ 1. mmap refused */

static void mmap_persistent_body(void)
{
	size_t base = allocated_now();
	large_cache_release(UINT64_MAX);   /* no cached mapping can serve a request */

	/* blocks the program holds through the fault */
	void *large = malloc(MiB);        /* mmap tier */
	void *run = malloc(64 * KiB);     /* page run */
	void *small[100];
	REQUIRE(large && run);
	fill(large, MiB, 1);
	fill(run, 64 * KiB, 2);
	for (int i = 0; i < 100; i++) {
		small[i] = malloc(64);
		REQUIRE(small[i]);
		fill(small[i], 64, 100 + i);
	}
	/* dirty arena pages, so a fallback block may come back with old bytes */
	void *dirt[128];
	for (int i = 0; i < 128; i++) {
		dirt[i] = malloc(64 * KiB);
		REQUIRE(dirt[i]);
		memset(dirt[i], 0xAB, 64 * KiB);
	}
	for (int i = 0; i < 128; i++)
		free(dirt[i]);
	size_t held = allocated_now();

	os_fail_at(OS_MMAP, 1, true);

	/* the large tier needs mmap; above 4 MiB there is no fallback */
	EXPECT_NOMEM(malloc(64 * MiB));
	EXPECT_NOMEM(malloc(4 * MiB + 1));
	EXPECT_NOMEM(calloc(1, 64 * MiB));
	EXPECT_NOMEM(calloc(64, MiB));
	EXPECT_NOMEM(realloc_v(NULL, 64 * MiB));
	EXPECT_NOMEM(reallocarray_v(NULL, 64, MiB));
	EXPECT_NOMEM(aligned_alloc(4096, 64 * MiB));
	EXPECT_NOMEM(aligned_alloc(8 * MiB, 8 * MiB));
	EXPECT_NOMEM(memalign(64, 64 * MiB));
	EXPECT_NOMEM(memalign(16 * MiB, 100));      /* alignment above a chunk: mmap only */
	EXPECT_NOMEM(valloc(64 * MiB));
	EXPECT_NOMEM(pvalloc(64 * MiB - 1));

	/* posix_memalign: ENOMEM returned, *p untouched, errno kept */
	void *sentinel = (void *)(uintptr_t)0x5a5a5a5a;
	void *pm = sentinel;
	errno = 1234;
	int rc = posix_memalign(&pm, 64, 64 * MiB);
	CHECK(rc == ENOMEM);
	CHECK(pm == sentinel);
	CHECK(errno == 1234);
	pm = sentinel;
	errno = 1234;
	rc = posix_memalign(&pm, 8 * MiB, 4096);
	CHECK(rc == ENOMEM);
	CHECK(pm == sentinel);
	CHECK(errno == 1234);

	/* realloc of a page run to 64 MiB needs a new mapping */
	errno = 0;
	void *q = realloc_v(run, 64 * MiB);
	CHECK(q == NULL);
	CHECK(errno == ENOMEM);
	if (q) { run = q; fill(run, 64 * KiB, 2); }
	CHECK(intact(run, 64 * KiB, 2));
	CHECK(malloc_usable_size(run) >= 64 * KiB);

	/* 1 MiB: from free arena pages, or NULL + ENOMEM */
	errno = 0;
	void *mid = malloc(MiB);
	if (mid) {
		fprintf(stderr, "  note: malloc(1 MiB) with mmap refused was served from arena pages\n");
		CHECK(arena_desc_of(mid) != NULL);
		CHECK(((uintptr_t)mid & 15) == 0);
		CHECK(malloc_usable_size(mid) >= MiB);
		CHECK(bsl_owns(mid));
		fill(mid, MiB, 3);
	} else {
		CHECK(errno == ENOMEM);
	}
	/* calloc of a fallback block over dirty pages must be zero */
	errno = 0;
	void *cz = calloc(1, 3 * MiB);
	if (cz) {
		CHECK(arena_desc_of(cz) != NULL);
		CHECK(all_zero(cz, 3 * MiB));
		fill(cz, 3 * MiB, 4);
	} else {
		CHECK(errno == ENOMEM);
	}
	/* 4 MiB aligned to 4 MiB: a whole chunk, or NULL */
	void *pm4 = sentinel;
	rc = posix_memalign(&pm4, 4 * MiB, 4 * MiB);
	if (rc == 0) {
		CHECK(((uintptr_t)pm4 & (4 * MiB - 1)) == 0);
		fill(pm4, 4 * MiB, 5);
	} else {
		CHECK(rc == ENOMEM);
		CHECK(pm4 == sentinel);
		pm4 = NULL;
	}

	/* small allocations from arena memory keep working (mprotect is fine) */
	void *more[1000];
	for (int i = 0; i < 1000; i++) {
		more[i] = malloc(16 + (size_t)(i % 64) * 16);
		REQUIRE(more[i]);
		fill(more[i], 16 + (size_t)(i % 64) * 16, 7 + i);
	}
	void *runs[20];
	for (int i = 0; i < 20; i++) {
		runs[i] = malloc(20 * KiB + (size_t)i * 4096);   /* page runs need no mmap */
		REQUIRE(runs[i]);
		fill(runs[i], 20 * KiB + (size_t)i * 4096, 40 + i);
	}
	for (int i = 0; i < 1000; i++) {
		CHECK(intact(more[i], 16 + (size_t)(i % 64) * 16, 7 + i));
		free(more[i]);
	}
	for (int i = 0; i < 20; i++) {
		CHECK(intact(runs[i], 20 * KiB + (size_t)i * 4096, 40 + i));
		free(runs[i]);
	}
	if (mid) { CHECK(intact(mid, MiB, 3)); free(mid); }
	if (cz) { CHECK(intact(cz, 3 * MiB, 4)); free(cz); }
	if (pm4) { CHECK(intact(pm4, 4 * MiB, 5)); free(pm4); }
	/* nothing allocated under the fault is left behind */
	size_t held2 = allocated_now();
	if (held2 != held)
		fprintf(stderr, "  allocated %zu before arming, %zu after the frees under mmap failure\n",
			held, held2);
	CHECK(held2 == held);

	/* the fault stops: the same calls succeed */
	os_fail_at(OS_MMAP, 0, false);
	void *b[12];
	int nb = 0;
	b[nb++] = malloc(64 * MiB);
	b[nb++] = malloc(4 * MiB + 1);
	b[nb++] = calloc(1, 64 * MiB);
	b[nb++] = aligned_alloc(4096, 64 * MiB);
	b[nb++] = aligned_alloc(8 * MiB, 8 * MiB);
	b[nb++] = memalign(16 * MiB, 100);
	b[nb++] = valloc(64 * MiB);
	b[nb++] = pvalloc(64 * MiB - 1);
	b[nb++] = reallocarray_v(NULL, 64, MiB);
	for (int i = 0; i < nb; i++)
		if (!b[i])
			fprintf(stderr, "  call %d still fails after the fault stopped\n", i);
	for (int i = 0; i < nb; i++)
		CHECK(b[i] != NULL);
	CHECK(!b[2] || all_zero((char *)b[2] + 32 * MiB, 64 * KiB));
	CHECK(!b[4] || ((uintptr_t)b[4] & (8 * MiB - 1)) == 0);
	CHECK(!b[5] || ((uintptr_t)b[5] & (16 * MiB - 1)) == 0);
	pm = NULL;
	CHECK(posix_memalign(&pm, 8 * MiB, 4096) == 0 && pm && ((uintptr_t)pm & (8 * MiB - 1)) == 0);
	b[nb++] = pm;
	q = realloc_v(run, 64 * MiB);
	CHECK(q != NULL);
	if (q) { CHECK(intact(q, 64 * KiB, 2)); run = q; }
	for (int i = 0; i < nb; i++)
		free(b[i]);

	CHECK(intact(large, MiB, 1));
	free(large);
	free(run);
	for (int i = 0; i < 100; i++) {
		CHECK(intact(small[i], 64, 100 + i));
		free(small[i]);
	}
	size_t end = allocated_now();
	if (end != base)
		fprintf(stderr, "  allocated %zu at the start, %zu at the end\n", base, end);
	CHECK(end == base);
}

static void mmap_persistent(void) { in_child(mmap_persistent_body, 1); }

/* mmap refused, mremap working: growing a large block is an mremap, which may
 * move the block; the table of large blocks must still take the new address
 * (its shard may have no slots yet, and those are mmap'd). */
static void mmap_fail_large_realloc_body(void)
{
	size_t base = allocated_now();
	large_cache_release(UINT64_MAX);
	enum { N = 6 };
	void *b[N];
	size_t sz[N];
	for (int i = 0; i < N; i++) {
		sz[i] = MiB + (size_t)i * 64 * KiB;
		b[i] = malloc(sz[i]);
		REQUIRE(b[i]);
		fill(b[i], sz[i], 10 + i);
	}
	os_fail_at(OS_MMAP, 1, true);
	int grew = 0, failed = 0;
	for (int i = 0; i < N; i++) {
		size_t m = (size_t)(8 + 8 * i) * MiB;
		errno = 0;
		void *q = realloc_v(b[i], m);
		if (q) {
			grew++;
			CHECK(intact(q, sz[i], 10 + i));
			CHECK(malloc_usable_size(q) >= m);
			memset((char *)q + m - 4096, 0x77, 4096);   /* the new end is writable */
			b[i] = q;
		} else {
			failed++;
			CHECK(errno == ENOMEM);
			CHECK(intact(b[i], sz[i], 10 + i));
			CHECK(malloc_usable_size(b[i]) >= sz[i]);
		}
	}
	fprintf(stderr, "  note: with mmap refused, %d large reallocs grew by mremap, %d failed\n",
		grew, failed);
	/* mremap refused too: every grow must fail cleanly */
	os_fail_at(OS_MREMAP, 1, true);
	for (int i = 0; i < N; i++) {
		size_t cur = malloc_usable_size(b[i]);
		errno = 0;
		void *q = realloc_v(b[i], cur + 64 * MiB);
		CHECK(q == NULL);
		CHECK(errno == ENOMEM);
		if (q) b[i] = q;
		CHECK(intact(b[i], sz[i], 10 + i));
		CHECK(malloc_usable_size(b[i]) == cur);
	}
	for (int i = 0; i < N; i++)
		free(b[i]);
	CHECK(allocated_now() == base);
}

static void mmap_fail_large_realloc(void) { in_child(mmap_fail_large_realloc_body, 2); }

/* Non-persistent: exactly the nth mmap fails. Large allocations in a row: at
 * most one of them may fail (ENOMEM), all later ones succeed. */
static long nth_param;

static void mmap_nth_once_body(void)
{
	size_t base = allocated_now();
	large_cache_release(UINT64_MAX);
	enum { N = 40 };
	void *b[N];
	int nulls = 0;
	os_fail_at(OS_MMAP, nth_param, false);
	for (int i = 0; i < N; i++) {
		size_t m = 5 * MiB + (size_t)i * 4096;   /* above the 4 MiB fallback */
		errno = 0;
		b[i] = malloc(m);
		if (!b[i]) {
			nulls++;
			CHECK(errno == ENOMEM);
		} else {
			fill(b[i], m, 20 + i);
		}
	}
	/* 40 fresh mappings were asked for, so the nth mmap happened and failed */
	if (nulls != 1)
		fprintf(stderr, "  n=%ld: %d of %d large mallocs failed, expected exactly 1\n",
			nth_param, nulls, N);
	CHECK(nulls == 1);
	for (int i = 0; i < N; i++)
		if (b[i]) {
			CHECK(intact(b[i], 5 * MiB + (size_t)i * 4096, 20 + i));
			free(b[i]);
		}
	CHECK(allocated_now() == base);
}

/* One large block freed and allocated again at the same address (the mapping
 * cache hands it back) needs no mapping at all: its record reuses its own
 * tombstone in the block table, which therefore never grows or rehashes (a
 * rehash maps a new table: with mmap refused, the allocation failed after
 * about 30 rounds). */
static void mmap_refused_large_reuse_body(void)
{
	void *p = malloc(256 * KiB);
	REQUIRE(p);
	free(p);
	os_fail_at(OS_MMAP, 1, true);
	for (int i = 0; i < 1000; i++) {
		void *q = malloc(256 * KiB);
		if (!q) {
			fprintf(stderr, "  round %d: malloc(256 KiB) failed with mmap refused\n", i);
			t_failed_case = 1;
			return;
		}
		if (q != p) {       /* not the cached mapping: a fallback (arena pages) */
			fprintf(stderr, "  round %d: %p is not the cached mapping %p\n", i, q, p);
			t_failed_case = 1;
			free(q);
			return;
		}
		fill(q, 256 * KiB, (unsigned)i);
		CHECK(intact(q, 256 * KiB, (unsigned)i));
		free(q);
	}
}

static void mmap_refused_large_reuse(void) { in_child(mmap_refused_large_reuse_body, 7); }

/* A mapping the address-space limit (ulimit -v) refuses while freed mappings
 * sit in the cache: the cache is given back and the mapping tried again
 * (release_idle, malloc.c). 24 MiB cached, 40 MiB asked with room for 24 MiB
 * more: fails unless the cache goes back first. */
static size_t vm_size_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb << 10;
}

static void rlimit_as_releases_cache_body(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "large_cache:0") || strstr(conf, "decay_ms:0") || strstr(conf, "secure")))
		return;              /* nothing cached (secure: the quarantine holds it) */
	const size_t cached = 24 * MiB, want = 40 * MiB;
	large_cache_release(UINT64_MAX);
	char *p = malloc(cached);
	REQUIRE(p);
	fill(p, cached, 3);
	free(p);
	CHECK(large_cached_bytes() >= cached);
	struct rlimit old, lim;
	REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
	lim = (struct rlimit){ vm_size_now() + (want - cached) + 8 * MiB, old.rlim_max };
	REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);
	char *q = malloc(want);
	int e = errno;
	size_t left = large_cached_bytes();
	if (q) {
		fill(q, want, 4);
		CHECK(intact(q, want, 4));
		free(q);
	}
	REQUIRE(setrlimit(RLIMIT_AS, &old) == 0);
	if (!q)
		fprintf(stderr, "  malloc(40 MiB) under the limit: NULL (%s), %zu bytes cached\n",
			strerror(e), left);
	CHECK(q != NULL);
	CHECK(left == 0);
}

static void rlimit_as_releases_cache(void) { in_child(rlimit_as_releases_cache_body, 9); }

static void mmap_nth_once(void)
{
	for (nth_param = 1; nth_param <= 5; nth_param++)
		in_child(mmap_nth_once_body, 3 + (unsigned)nth_param);
}

/* ====================================================== 2. mprotect refused */

#define EXHAUST_CAP 200000000UL

static void mprotect_persistent_body(void)
{
	/* commit some chunks and free them again, so there is free arena memory */
	{
		void **w = map_array(300000 * sizeof(void *));
		REQUIRE(w);
		for (int i = 0; i < 300000; i++) { w[i] = malloc(64); REQUIRE(w[i]); }
		for (int i = 0; i < 300000; i++) free(w[i]);
		munmap(w, 300000 * sizeof(void *));
	}
	size_t base = allocated_now();
	size_t committed = arena_committed_bytes();
	void **v = map_array(EXHAUST_CAP * sizeof(void *));
	REQUIRE(v);

	os_fail_at(OS_MPROTECT, 1, true);
	size_t n = 0;
	errno = 0;
	while (n < EXHAUST_CAP) {
		void *p = malloc(64);
		if (!p)
			break;
		fill(p, 64, (unsigned)n);
		v[n++] = p;
	}
	int e = errno;
	fprintf(stderr, "  mprotect refused: %zu blocks of 64 bytes (%zu MiB) before NULL; "
		"arena committed %zu MiB\n", n, n * 64 >> 20, committed >> 20);
	CHECK(n < EXHAUST_CAP);
	CHECK(n > 0);
	CHECK(e == ENOMEM);
	CHECK(n * 64 <= committed);
	CHECK(arena_committed_bytes() == committed);   /* no chunk was committed */
	/* it stays out of memory, cleanly */
	for (int i = 0; i < 3; i++)
		EXPECT_NOMEM(malloc(64));
	EXPECT_NOMEM(calloc(1, 64));
	EXPECT_NOMEM(calloc(2, 32));
	/* a realloc within the same class needs no memory */
	if (n) CHECK(realloc_v(v[0], 60) == v[0]);
	/* the mmap tier does not need mprotect */
	void *big = malloc(MiB);
	CHECK(big != NULL);
	if (big) { fill(big, MiB, 9); CHECK(intact(big, MiB, 9)); free(big); }
	void *pm = NULL;
	CHECK(posix_memalign(&pm, 4096, 2 * MiB) == 0);
	free(pm);

	/* every block intact; free them all */
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (!intact(v[i], 64, (unsigned)i) && ++bad > 3)
			break;
	}
	CHECK(bad == 0);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	size_t after = allocated_now();
	if (after != base)
		fprintf(stderr, "  allocated %zu before, %zu after freeing everything\n", base, after);
	CHECK(after == base);

	/* still armed: the freed memory is usable again, to the same count */
	size_t n2 = 0;
	while (n2 < n + 1000) {
		void *p = malloc(64);
		if (!p)
			break;
		v[n2++] = p;
	}
	if (n2 != n)
		fprintf(stderr, "  second round under the fault: %zu blocks, first round %zu\n", n2, n);
	CHECK(n2 >= n - n / 100 && n2 <= n + n / 100 + 64);   /* within 1% (thread caches) */
	for (size_t i = 0; i < n2; i++)
		free(v[i]);

	/* the fault stops: more than before fits */
	os_fail_at(OS_MPROTECT, 0, false);
	size_t want = n + 200000;
	size_t got = 0;
	for (; got < want; got++) {
		void *p = malloc(64);
		if (!p)
			break;
		fill(p, 64, (unsigned)got * 3u);
		v[got] = p;
	}
	CHECK(got == want);
	CHECK(arena_committed_bytes() > committed);
	for (size_t i = 0; i < got; i++) {
		if (!intact(v[i], 64, (unsigned)i * 3u)) { CHECK(0); break; }
	}
	for (size_t i = 0; i < got; i++)
		free(v[i]);
	CHECK(allocated_now() == base);
	munmap(v, EXHAUST_CAP * sizeof(void *));
}

static void mprotect_persistent(void) { in_child(mprotect_persistent_body, 10); }

/* Non-persistent: exactly the nth commit fails (n = 1..5). Allocation goes on
 * past at least 6 new chunks (12 commits); at most one malloc may fail. */
static void mprotect_nth_once_body(void)
{
	size_t base = allocated_now();
	size_t committed = arena_committed_bytes();
	size_t want = (committed + 24 * MiB) / 64;
	void **v = map_array(want * sizeof(void *));
	REQUIRE(v);
	os_fail_at(OS_MPROTECT, nth_param, false);
	size_t got = 0, nulls = 0, first_null = 0;
	for (size_t i = 0; i < want; i++) {
		errno = 0;
		void *p = malloc(64);
		if (!p) {
			if (!nulls++) first_null = i;
			CHECK(errno == ENOMEM);
			continue;
		}
		fill(p, 64, (unsigned)i);
		v[got++] = p;
	}
	size_t grown = arena_committed_bytes() - committed;
	fprintf(stderr, "  n=%ld: %zu NULLs (first at %zu) in %zu mallocs; arena grew %zu MiB\n",
		nth_param, nulls, first_null, want, grown >> 20);
	CHECK(nulls <= 1);
	CHECK(grown >= 6 * CHUNK_SIZE);   /* so the nth commit happened */
	CHECK(mprotect_disarmed());        /* it failed once, and only once */
	size_t bad = 0;
	/* blocks were stored in order; their seeds are their call indices, which
	 * skip the NULL one */
	for (size_t k = 0, i = 0; k < got; k++, i++) {
		if (nulls && i == first_null) i++;
		if (!intact(v[k], 64, (unsigned)i) && ++bad > 3)
			break;
	}
	CHECK(bad == 0);
	for (size_t k = 0; k < got; k++)
		free(v[k]);
	CHECK(allocated_now() == base);
	munmap(v, want * sizeof(void *));
}

static void mprotect_nth_once(void)
{
	for (nth_param = 1; nth_param <= 5; nth_param++)
		in_child(mprotect_nth_once_body, 20 + (unsigned)nth_param);
}

/* Page runs and aligned runs under a commit that fails once: the run tier
 * needs whole free blocks and therefore new chunks. */
static void mprotect_nth_runs_body(void)
{
	size_t base = allocated_now();
	enum { N = 64 };
	void *b[N];
	int nulls = 0;
	os_fail_at(OS_MPROTECT, nth_param, false);
	for (int i = 0; i < N; i++) {
		void *p = NULL;
		errno = 0;
		int rc = posix_memalign(&p, 2 * MiB, 2 * MiB);   /* 2 MiB aligned: arena only via fallback */
		(void)rc;
		b[i] = malloc(100 * KiB + (size_t)(i % 7) * 4096);
		if (!b[i]) { nulls++; CHECK(errno == ENOMEM); }
		else fill(b[i], 100 * KiB + (size_t)(i % 7) * 4096, 50 + i);
		free(p);
	}
	/* fill the arena chunk by chunk with 64 KiB runs held, so commits happen */
	void **h = map_array(1024 * sizeof(void *));
	REQUIRE(h);
	int nh = 0;
	for (int i = 0; i < 1024; i++) {
		errno = 0;
		h[nh] = malloc(64 * KiB);
		if (!h[nh]) { nulls++; CHECK(errno == ENOMEM); continue; }
		memset(h[nh], (unsigned char)i, 64);
		nh++;
	}
	CHECK(nulls <= 1);
	CHECK(mprotect_disarmed());
	for (int i = 0; i < N; i++)
		if (b[i]) { CHECK(intact(b[i], 100 * KiB + (size_t)(i % 7) * 4096, 50 + i)); free(b[i]); }
	for (int i = 0; i < nh; i++)
		free(h[i]);
	munmap(h, 1024 * sizeof(void *));
	CHECK(allocated_now() == base);
}

static void mprotect_nth_runs(void)
{
	for (nth_param = 1; nth_param <= 5; nth_param++)
		in_child(mprotect_nth_runs_body, 30 + (unsigned)nth_param);
}

/* ======================================================== 3. madvise refused */

enum { NDIRTY = 600 };
static void *dirty_p[NDIRTY];
static size_t dirty_n[NDIRTY];

static size_t dirty_size(int i)
{
	if (i % 3 == 0) return 1 + (size_t)(i * 37 % 16384);           /* slab */
	return 16 * KiB + 1 + (size_t)(i * 7919 % (112 * KiB));        /* page run */
}

/* Allocate, dirty with 0xAB, free: the pages are free and dirty. */
static void make_dirty(void)
{
	for (int i = 0; i < NDIRTY; i++) {
		dirty_n[i] = dirty_size(i);
		dirty_p[i] = malloc(dirty_n[i]);
		if (!dirty_p[i]) { CHECK(0); return; }
		memset(dirty_p[i], 0xAB, dirty_n[i]);
	}
	for (int i = 0; i < NDIRTY; i++)
		free(dirty_p[i]);
}

/* calloc the same sizes back; every byte must be zero. Returns how many
 * blocks came back at an address that held 0xAB. */
static int calloc_back_zero(void)
{
	static void *c[NDIRTY];
	int reused = 0, bad = 0;
	for (int i = 0; i < NDIRTY; i++) {
		c[i] = calloc(1, dirty_n[i]);
		if (!c[i]) { CHECK(0); break; }
		for (int j = 0; j < NDIRTY; j++)
			if ((char *)c[i] < (char *)dirty_p[j] + dirty_n[j] &&
			    (char *)dirty_p[j] < (char *)c[i] + dirty_n[i]) { reused++; break; }
		if (!all_zero(c[i], dirty_n[i]) && ++bad > 3)
			break;
		memset(c[i], 0xCD, dirty_n[i]);
	}
	CHECK(bad == 0);
	for (int i = 0; i < NDIRTY; i++)
		free(c[i]);
	return reused;
}

/* How many freed runs still hold their 0xAB bytes (after the first 16, which
 * free lists may have written)? Arena memory stays mapped, so this reads. */
static int still_dirty(void)
{
	int n = 0;
	for (int i = 0; i < NDIRTY; i++) {
		if (dirty_n[i] <= 16 * KiB || !arena_desc_of(dirty_p[i]))
			continue;
		const unsigned char *c = dirty_p[i];
		if (c[4096] == 0xAB && c[dirty_n[i] - 1] == 0xAB)
			n++;
	}
	return n;
}

static void madvise_persistent_body(void)
{
	opt.decay_ms = -1;       /* only the explicit purges call madvise */
	large_cache_release(UINT64_MAX);
	size_t base = allocated_now();
	make_dirty();
	bsl_purge();             /* flush the thread cache too: everything is in the zones */
	/* dirty it again after the purge */
	make_dirty();
	struct bsl_stats s0, s1;
	bsl_stats(&s0);
	int d0 = still_dirty();

	os_fail_at(OS_MADVISE, 1, true);
	size_t r1 = bsl_purge();
	int t1 = malloc_trim(0);
	bsl_stats(&s1);
	fprintf(stderr, "  madvise refused: bsl_purge %zu, malloc_trim %d; dirty %zu -> %zu, "
		"returned %zu -> %zu; %d of the freed runs hold 0xAB (%d before)\n",
		r1, t1, s0.dirty, s1.dirty, s0.returned, s1.returned, still_dirty(), d0);
	CHECK(r1 == 0);
	CHECK(t1 == 0);
	CHECK(s1.dirty >= s0.dirty);
	CHECK(s1.returned <= s0.returned);
	CHECK(s1.allocated == s0.allocated);
	CHECK(still_dirty() > 0);   /* the injected failure did keep the pages */
	/* a refused batch ends the call: the same blocks are not taken again pass after
	 * pass (found by the fuzzer: up to 4096 passes of 32 blocks per call) */
	fprintf(stderr, "  madvise calls tried while refused: %llu\n",
		(unsigned long long)(s1.npurge - s0.npurge));
	CHECK(s1.npurge - s0.npurge < 1000);
	int reused = calloc_back_zero();
	fprintf(stderr, "  %d calloc blocks reused dirty memory\n", reused);
	CHECK(reused > 0);

	/* a new chunk's huge-page advice failing does not stop growth */
	arena_thp_advise(1);
	size_t committed = arena_committed_bytes();
	size_t nv = (committed + 16 * MiB) / 128;   /* more than all free arena memory */
	void **v = map_array(nv * sizeof(void *));
	REQUIRE(v);
	for (size_t i = 0; i < nv; i++) { v[i] = malloc(128); REQUIRE(v[i]); fill(v[i], 128, (unsigned)i); }
	CHECK(arena_committed_bytes() > committed);
	for (size_t i = 0; i < nv; i++) { if (!intact(v[i], 128, (unsigned)i)) { CHECK(0); break; } }
	for (size_t i = 0; i < nv; i++) free(v[i]);
	munmap(v, nv * sizeof(void *));
	arena_thp_advise(-1);

	/* the fault stops: purging works, calloc still zero */
	os_fail_at(OS_MADVISE, 0, false);
	make_dirty();
	size_t r2 = bsl_purge();
	CHECK(r2 > 0);
	CHECK(still_dirty() == 0);
	calloc_back_zero();
	CHECK(allocated_now() == base);
}

static void madvise_persistent(void) { in_child(madvise_persistent_body, 40); }

/* Non-persistent: the nth madvise of a purge fails (k = 1..8); the page it
 * concerned stays dirty and calloc zeroes it. */
static void madvise_nth_once_body(void)
{
	opt.decay_ms = -1;
	large_cache_release(UINT64_MAX);
	size_t base = allocated_now();
	make_dirty();
	bsl_purge();
	make_dirty();
	os_fail_at(OS_MADVISE, nth_param, false);
	bsl_purge();
	calloc_back_zero();
	/* the next purge gives back what was left */
	make_dirty();
	CHECK(bsl_purge() > 0);
	CHECK(still_dirty() == 0);
	calloc_back_zero();
	CHECK(allocated_now() == base);
}

static void madvise_nth_once(void)
{
	for (nth_param = 1; nth_param <= 8; nth_param++)
		in_child(madvise_nth_once_body, 50 + (unsigned)nth_param);
}

/* ========================================================= 4. mremap refused */

static void mremap_persistent_body(void)
{
	large_cache_release(UINT64_MAX);
	size_t base = allocated_now();
	void *l = malloc(MiB);
	REQUIRE(l);
	fill(l, MiB, 60);
	size_t us = malloc_usable_size(l);
	os_fail_at(OS_MREMAP, 1, true);

	/* grow: NULL, ENOMEM, old block intact (no malloc + copy fallback) */
	errno = 0;
	void *q = realloc_v(l, 8 * MiB);
	CHECK(q == NULL);
	CHECK(errno == ENOMEM);
	if (q) l = q;
	CHECK(intact(l, MiB, 60));
	CHECK(malloc_usable_size(l) == us);
	errno = 0;
	q = realloc_v(l, MiB + 100);          /* one page more: a remap */
	CHECK(q == NULL);
	CHECK(errno == ENOMEM);
	if (q) l = q;
	CHECK(intact(l, MiB, 60));
	/* same page count: no remap needed */
	q = realloc_v(l, MiB - 100);
	CHECK(q == l);
	if (q) l = q;
	CHECK(intact_prefix(l, MiB, MiB - 100, 60));
	fill(l, MiB, 60);
	/* shrink within the large tier: the block, or NULL with the block intact */
	errno = 0;
	q = realloc_v(l, 512 * KiB);
	if (q) {
		fprintf(stderr, "  note: shrinking realloc with mremap refused succeeded\n");
		l = q;
		CHECK(intact_prefix(l, MiB, 512 * KiB, 60));
		fill(l, MiB / 2, 61);
	} else {
		fprintf(stderr, "  note: shrinking realloc 1 MiB -> 512 KiB with mremap refused "
			"returned NULL (ENOMEM); glibc returns the block\n");
		CHECK(errno == ENOMEM);
		CHECK(intact(l, MiB, 60));
		fill(l, MiB / 2, 61);
	}
	/* to the page-run tier: malloc + copy, no mremap */
	q = realloc_v(l, 64 * KiB);
	CHECK(q != NULL);
	if (q) {
		CHECK(arena_desc_of(q) != NULL);
		CHECK(intact_prefix(q, MiB / 2, 64 * KiB, 61));
		l = q;
	}
	/* from the page-run tier to large: a fresh mapping, no mremap */
	q = realloc_v(l, 3 * MiB);
	CHECK(q != NULL);
	if (q) { CHECK(intact_prefix(q, MiB / 2, 64 * KiB, 61)); l = q; }
	free(l);

	/* many failed reallocs of one block: each NULL, the block stays live */
	void *m = malloc(2 * MiB);
	REQUIRE(m);
	fill(m, 2 * MiB, 62);
	int fails = 0;
	for (int i = 0; i < 2000; i++) {
		errno = 0;
		q = realloc_v(m, 4 * MiB + (size_t)(i % 3) * 4096);
		if (q || errno != ENOMEM) { fails++; if (q) m = q; }
	}
	CHECK(fails == 0);
	CHECK(malloc_usable_size(m) == 2 * MiB);
	CHECK(intact(m, 2 * MiB, 62));
	free(m);
	CHECK(allocated_now() == base);

	/* the fault stops: the grow works and keeps the contents */
	os_fail_at(OS_MREMAP, 0, false);
	l = malloc(MiB);
	REQUIRE(l);
	fill(l, MiB, 63);
	q = realloc_v(l, 8 * MiB);
	CHECK(q != NULL);
	if (q) { CHECK(intact(q, MiB, 63)); l = q; }
	free(l);
	CHECK(allocated_now() == base);
}

static void mremap_persistent(void) { in_child(mremap_persistent_body, 70); }

/* mremap and mmap both refused: repeated failing reallocs of a large block
 * must not lose it (the large-block table may need to grow to take the block
 * back, and its slots are mmap'd). */
static void mremap_and_mmap_fail_body(void)
{
	large_cache_release(UINT64_MAX);
	size_t base = allocated_now();
	void *m = malloc(2 * MiB);
	REQUIRE(m);
	fill(m, 2 * MiB, 64);
	os_fail_at(OS_MREMAP, 1, true);
	os_fail_at(OS_MMAP, 1, true);
	int bad = 0;
	for (int i = 0; i < 1000 && !bad; i++) {
		errno = 0;
		void *q = realloc_v(m, 8 * MiB);
		if (q || errno != ENOMEM) {
			fprintf(stderr, "  failed realloc #%d gave %p, errno %d\n", i, q, errno);
			bad++;
			if (q) m = q;
		}
		if (!bsl_owns(m)) {
			fprintf(stderr, "  after %d failed reallocs the block %p is no longer live\n",
				i + 1, m);
			bad++;
		}
	}
	CHECK(bad == 0);
	CHECK(intact(m, 2 * MiB, 64));
	if (bad)
		return;   /* freeing a block buddyslab forgot would abort */
	CHECK(malloc_usable_size(m) == 2 * MiB);
	free(m);
	CHECK(allocated_now() == base);
}

static void mremap_and_mmap_fail(void) { in_child(mremap_and_mmap_fail_body, 80); }

/* ==================================================== everything refused at once */

static void all_ops_fail_body(void)
{
	large_cache_release(UINT64_MAX);
	size_t base = allocated_now();
	void *keep[64];
	for (int i = 0; i < 64; i++) {
		keep[i] = malloc((size_t)1 << (4 + i % 18));   /* 16 B .. 2 MiB */
		REQUIRE(keep[i]);
		fill(keep[i], (size_t)1 << (4 + i % 18), 90 + i);
	}
	for (int op = 0; op < OS_NOPS; op++)
		os_fail_at((enum os_op)op, 1, true);
	/* exhaust: every size up to the point where nothing more is given */
	size_t nsmall = 0;
	void **v = map_array(EXHAUST_CAP / 4 * sizeof(void *));
	REQUIRE(v);
	static const size_t sizes[] = { 16, 64, 1000, 4096, 16384, 20 * KiB, 128 * KiB, MiB, 4 * MiB };
	for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		for (;;) {
			if (nsmall >= EXHAUST_CAP / 4) { CHECK(0); break; }
			errno = 0;
			void *p = malloc(sizes[k]);
			if (!p) { CHECK(errno == ENOMEM); break; }
			memset(p, 0x5C, sizes[k] < 256 ? sizes[k] : 256);
			v[nsmall++] = p;
		}
	}
	fprintf(stderr, "  all ops refused: %zu blocks before every size failed\n", nsmall);
	EXPECT_NOMEM(malloc(16));
	EXPECT_NOMEM(malloc(20 * KiB));
	EXPECT_NOMEM(malloc(MiB));
	EXPECT_NOMEM(calloc(1, 16));
	EXPECT_NOMEM(memalign(4096, 4096));
	void *pm = (void *)1;
	CHECK(posix_memalign(&pm, 64, 64) == ENOMEM && pm == (void *)1);
	EXPECT_NOMEM(realloc_v(keep[21 % 64], 8 * MiB));   /* a 2 MiB large block can't grow */
	bsl_purge();                                       /* madvise fails too: no crash */
	for (size_t i = 0; i < nsmall; i++)
		free(v[i]);
	munmap(v, EXHAUST_CAP / 4 * sizeof(void *));
	for (int i = 0; i < 64; i++) {
		CHECK(intact(keep[i], (size_t)1 << (4 + i % 18), 90 + i));
		free(keep[i]);
	}
	CHECK(allocated_now() == base);
	disarm_all();
	void *p = malloc(64 * MiB);
	CHECK(p != NULL);
	free(p);
}

static void all_ops_fail(void) { in_child(all_ops_fail_body, 95); }

/* ======================================== fresh process: the arena cannot be reserved */

static int fresh_main(const char *mode)
{
	if (narenas != 0 || arena_committed_bytes() != 0) {
		fprintf(stderr, "  fresh process: the heap was in use before main\n");
		return 77;
	}
	alarm(20);
	t_failed_case = 0;
	if (strcmp(mode, "mmap-persistent") == 0) {
		os_fail_at(OS_MMAP, 1, true);
		for (int i = 0; i < 100; i++)   /* past the thread cache's warm-up too */
			EXPECT_NOMEM(malloc(16));
		EXPECT_NOMEM(malloc(20 * KiB));
		EXPECT_NOMEM(malloc(MiB));
		EXPECT_NOMEM(calloc(4, 4));
		EXPECT_NOMEM(realloc_v(NULL, 100));
		void *pm = (void *)1;
		CHECK(posix_memalign(&pm, 16, 16) == ENOMEM && pm == (void *)1);
		CHECK(narenas == 0);
		os_fail_at(OS_MMAP, 0, false);
	} else if (strcmp(mode, "mmap-first") == 0) {
		/* the 64 GiB reservation fails once: the next try is half the size */
		os_fail_at(OS_MMAP, 1, false);
		void *p = malloc(16);
		CHECK(p != NULL);
		CHECK(narenas == 1);
		if (narenas == 1 && (arenas[0].npages << PAGE_SHIFT) != ((size_t)32 << 30))
			fprintf(stderr, "  arena 0 has %zu MiB, expected 32 GiB\n",
				(arenas[0].npages << PAGE_SHIFT) >> 20);
		CHECK(narenas == 1 && (arenas[0].npages << PAGE_SHIFT) == ((size_t)32 << 30));
		free(p);
	} else if (strcmp(mode, "mprotect-persistent") == 0) {
		os_fail_at(OS_MPROTECT, 1, true);
		for (int i = 0; i < 100; i++)
			EXPECT_NOMEM(malloc(16));
		EXPECT_NOMEM(malloc(20 * KiB));
		EXPECT_NOMEM(calloc(1, 100 * KiB));
		void *l = malloc(MiB);          /* mmap works */
		CHECK(l != NULL);
		free(l);
		CHECK(arena_committed_bytes() == 0);
		CHECK(narenas <= 1);
		os_fail_at(OS_MPROTECT, 0, false);
	} else if (strcmp(mode, "mprotect-first") == 0) {
		/* the first chunk's descriptor commit fails: that malloc may fail, the next must not */
		os_fail_at(OS_MPROTECT, 1, false);
		errno = 0;
		void *p = malloc(16);
		if (!p) CHECK(errno == ENOMEM);
		void *p2 = malloc(16);
		CHECK(p2 != NULL);
		CHECK(mprotect_disarmed());
		free(p);
		free(p2);
	} else if (strcmp(mode, "mprotect-second") == 0) {
		/* the first chunk's data commit fails (its descriptors were committed) */
		os_fail_at(OS_MPROTECT, 2, false);
		errno = 0;
		void *p = malloc(16);
		if (!p) CHECK(errno == ENOMEM);
		void *p2 = malloc(16);
		CHECK(p2 != NULL);
		if (p2) memset(p2, 1, 16);
		CHECK(mprotect_disarmed());
		free(p);
		free(p2);
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	int failed = t_failed_case;
	t_failed_case = 0;
	/* recovered: a normal life from here on */
	void *b = malloc(16), *r = malloc(20 * KiB), *l = malloc(MiB);
	CHECK(b && r && l);
	free(b); free(r); free(l);
	stress(99);
	return failed || t_failed_case ? 1 : 0;
}

static void fresh_mmap_persistent(void) { in_fresh_process("mmap-persistent"); }
static void fresh_mmap_first_reserve(void) { in_fresh_process("mmap-first"); }
static void fresh_mprotect_persistent(void) { in_fresh_process("mprotect-persistent"); }
static void fresh_mprotect_first(void) { in_fresh_process("mprotect-first"); }
static void fresh_mprotect_second(void) { in_fresh_process("mprotect-second"); }

/* ------------------------------------------------ os_zero, with and without a page map */

/* os_zero on a private anonymous range with pages written in patterns (all,
 * none, every 8th, every other, a run in the middle; some pages dropped after
 * being written): all of it reads zero afterwards, and a page that was not
 * resident before is not resident after (nothing faulted in to be zeroed).
 * Once through /proc/self/pagemap, once with it refused (the mincore path). */
static void os_zero_patterns(void)
{
	const size_t n = 4u << 20, np = n / PAGE_SIZE;
	unsigned char *vec = malloc(np);
	REQUIRE(vec);
	for (int nomap = 0; nomap < 2; nomap++) {
		os_fail_at(OS_PAGEMAP, nomap, true);
		for (int pat = 0; pat < 6; pat++) {
			unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			REQUIRE(p != MAP_FAILED);
			for (size_t i = 0; i < np; i++)
				if (pat == 0 || (pat == 2 && i % 8 == 0) || (pat == 3 && i % 2 == 0) ||
				    (pat == 4 && i >= np / 3 && i < np / 2) || pat == 5)
					memset(p + i * PAGE_SIZE, 0xCD, PAGE_SIZE);
			if (pat == 5)     /* written, then every third page dropped */
				for (size_t i = 0; i < np; i += 3)
					madvise(p + i * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
			REQUIRE(mincore(p, n, vec) == 0);
			size_t before = 0, grew = 0, nonzero = 0;
			for (size_t i = 0; i < np; i++)
				before += vec[i] & 1;
			unsigned char was[(4u << 20) / PAGE_SIZE];
			for (size_t i = 0; i < np; i++)
				was[i] = vec[i] & 1;
			os_zero(p, n);
			REQUIRE(mincore(p, n, vec) == 0);
			for (size_t i = 0; i < np; i++)
				grew += (vec[i] & 1) && !was[i];
			for (size_t i = 0; i < n; i += 64)
				nonzero += p[i] != 0 || p[i + 63] != 0;
			if (nonzero || grew)
				printf("  %s, pattern %d: %zu of %zu pages resident, %zu nonzero lines, "
				       "%zu pages faulted in\n", nomap ? "mincore" : "pagemap", pat, before, np,
				       nonzero, grew);
			CHECK(nonzero == 0);
			CHECK(grew == 0);
			munmap(p, n);
		}
	}
	disarm_all();
	free(vec);
}

/* ====================================================================== main */

/* T_ONLY=name runs one case (to reproduce it, or to debug it under gdb). */
#define RUN(fn) do { const char *only_ = getenv("T_ONLY"); \
	if (!only_ || strcmp(only_, #fn) == 0) T_RUN(fn); } while (0)

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--fresh") == 0)
		return fresh_main(argv[2]);
	/* warm the thread cache up (its record is mmap'd once, after 32 slow
	 * paths) so that no scenario's injected mmap failure lands there */
	for (int i = 0; i < 200; i++) {
		void *p = malloc((size_t)16 << (i % 11));
		free(p);
	}
	RUN(mmap_persistent);
	RUN(mmap_fail_large_realloc);
	RUN(mmap_nth_once);
	RUN(mmap_refused_large_reuse);
	RUN(rlimit_as_releases_cache);
	RUN(mprotect_persistent);
	RUN(mprotect_nth_once);
	RUN(mprotect_nth_runs);
	RUN(madvise_persistent);
	RUN(madvise_nth_once);
	RUN(mremap_persistent);
	RUN(mremap_and_mmap_fail);
	RUN(all_ops_fail);
	RUN(fresh_mmap_persistent);
	RUN(fresh_mmap_first_reserve);
	RUN(fresh_mprotect_persistent);
	RUN(fresh_mprotect_first);
	RUN(fresh_mprotect_second);
	RUN(os_zero_patterns);
	return t_done();
}
