/*
 * test_api.c - the malloc API contract, as a drop-in glibc replacement must keep it.
 *
 * Linked against libbuddyslab.a, so every malloc/free here is buddyslab's.
 * Covers: malloc(0) and alignment of every block; sizes above PTRDIFF_MAX and
 * overflowing products (NULL + ENOMEM); bad alignments (EINVAL); every power-of-two
 * alignment up to 2^27 in the slab, page-run and mmap tiers (and 2^28..2^63: aligned
 * or ENOMEM); calloc zeroing of reused dirty memory, also after purges and under
 * BUDDYSLAB_CONF=purge:free etc. (re-executed copies of this program); realloc
 * keeping contents across every tier; realloc(NULL)/realloc(p, 0); free(NULL); free
 * preserving errno; C23 free_sized/free_aligned_sized (when the library has them);
 * mallinfo2/malloc_trim/mallopt/malloc_stats/malloc_info, malloc_trim giving memory
 * back; bsl_owns/bsl_stats contracts; random operations; running out of memory
 * under RLIMIT_AS (ENOMEM, no crash, memory comes back); the buddyslab-specific
 * abort on invalid pointers passed to free/realloc and on run/large double frees;
 * no threads of its own.
 *
 * The behaviours asserted are glibc's (2.36, and 2.38+ for aligned_alloc; see the
 * comments at each case). The invalid-pointer aborts are buddyslab's messages.
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
#include <pthread.h>
#include <unistd.h>
#include <fcntl.h>
#include <sched.h>
#include "buddyslab.h"
#include "t.h"

/* C23; glibc 2.36 has neither, buddyslab may. A weak reference stays NULL when no
 * object defines it (note: a weak reference does not pull a member out of a .a). */
extern void free_sized(void *, size_t) __attribute__((weak));
extern void free_aligned_sized(void *, size_t, size_t) __attribute__((weak));

/* Hide constants from the compiler so it does not fold or warn about huge sizes. */
static volatile size_t vz;
static size_t hide(size_t x) { return x + vz; }
/* Called through volatile pointers so gcc's -Wuse-after-free does not fire on the
 * (correct) use of a block after a realloc that failed. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;
static void *launder(void *p) { __asm__("" : "+r"(p)); return p; }

static const size_t tier_sizes[] = {
	1, 24, 100, 1000,              /* slab tier */
	20 * 1024, 100 * 1024,         /* page-run tier */
	200 * 1024, 3 * 1024 * 1024,   /* mmap tier */
};
#define NTIER (sizeof tier_sizes / sizeof tier_sizes[0])

static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)(i * 131u + (i >> 8) * 7u + (i >> 16) * 13u + seed);
}

/* ---------------------------------------------------------------- malloc(0), alignment */

static void malloc_zero(void)
{
	enum { N = 1000 };
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = malloc(hide(0));
		REQUIRE(p[i] != NULL);
		CHECK(((uintptr_t)p[i] & 15) == 0);
		CHECK(bsl_owns(p[i]) == 1);
	}
	/* distinct: sort-free O(n^2) is fine for 1000 */
	int dup = 0;
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			if (p[i] == p[j]) dup++;
	CHECK(dup == 0);
	for (int i = 0; i < N; i++) free(p[i]);
	/* also calloc(0, x) / calloc(x, 0) */
	void *a = calloc(hide(0), 16), *b = calloc(16, hide(0));
	CHECK(a != NULL && b != NULL && a != b);
	free(a);
	free(b);
}

static void check_block(void *p, size_t n, int *bad)
{
	if (!p) { (*bad)++; return; }
	if ((uintptr_t)p & 15) { fprintf(stderr, "  size %zu: %p not 16-aligned\n", n, p); (*bad)++; }
	if (malloc_usable_size(p) < n) { fprintf(stderr, "  size %zu: usable %zu\n", n, malloc_usable_size(p)); (*bad)++; }
	if (n) { ((char *)p)[0] = 1; ((char *)p)[n - 1] = 2; }
}

static void alignment_every_size_to_4096(void)
{
	int bad = 0;
	static void *keep[4097];
	for (size_t n = 0; n <= 4096; n++) {
		keep[n] = malloc(hide(n));
		check_block(keep[n], n, &bad);
	}
	/* the whole usable size of every block is ours: fill them all, then check that
	 * no fill ran into a neighbour */
	for (size_t n = 0; n <= 4096; n++)
		if (keep[n]) memset(keep[n], (int)(n * 7 + 1) & 0xff, malloc_usable_size(keep[n]));
	for (size_t n = 0; n <= 4096; n++) {
		unsigned char *b = keep[n];
		size_t u = b ? malloc_usable_size(b) : 0;
		for (size_t k = 0; k < u; k++)
			if (b[k] != ((n * 7 + 1) & 0xff)) {
				fprintf(stderr, "  block of size %zu (usable %zu): byte %zu overwritten\n", n, u, k);
				bad++;
				break;
			}
	}
	for (size_t n = 0; n <= 4096; n++) free(keep[n]);
	CHECK(bad == 0);
}

static void alignment_sampled_to_70000(void)
{
	int bad = 0;
	for (size_t n = 4097; n <= 70000; n += (n < 20000 ? 7 : 61)) {
		void *p = malloc(hide(n));
		void *q = malloc(hide(n));
		check_block(p, n, &bad);
		check_block(q, n, &bad);
		CHECK(p != q);
		free(p);
		free(q);
	}
	CHECK(bad == 0);
}

/* ---------------------------------------------------------------- huge sizes */

static const size_t huge[] = {
	(size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 2, SIZE_MAX, SIZE_MAX - 1,
	SIZE_MAX - 4095, SIZE_MAX - 4096, SIZE_MAX - (1u << 20), SIZE_MAX / 2 + 4096,
	(size_t)PTRDIFF_MAX,        /* not above PTRDIFF_MAX but unsatisfiable */
	(size_t)1 << 62, (size_t)1 << 48,
};
#define NHUGE (sizeof huge / sizeof huge[0])

#define EXPECT_ENOMEM(expr, label, n) do { \
	errno = 0; void *r_ = (expr); int e_ = errno; \
	if (r_ != NULL || e_ != ENOMEM) { \
		fprintf(stderr, "  %s(%#zx): got %p errno %d, want NULL/ENOMEM\n", label, (size_t)(n), r_, e_); \
		t_failed_case = 1; if (r_) free(r_); } } while (0)

static void huge_sizes_enomem(void)
{
	for (size_t i = 0; i < NHUGE; i++) {
		size_t n = hide(huge[i]);
		EXPECT_ENOMEM(malloc(n), "malloc", n);
		EXPECT_ENOMEM(calloc(n, 1), "calloc(n,1)", n);
		EXPECT_ENOMEM(calloc(1, n), "calloc(1,n)", n);
		EXPECT_ENOMEM(memalign(64, n), "memalign(64)", n);
		EXPECT_ENOMEM(memalign(1 << 20, n), "memalign(1M)", n);
		EXPECT_ENOMEM(aligned_alloc(64, n), "aligned_alloc(64)", n);
		EXPECT_ENOMEM(aligned_alloc(4096, n), "aligned_alloc(4096)", n);
		EXPECT_ENOMEM(valloc(n), "valloc", n);
		EXPECT_ENOMEM(pvalloc(n), "pvalloc", n);
		EXPECT_ENOMEM(realloc(NULL, n), "realloc(NULL)", n);
		EXPECT_ENOMEM(reallocarray(NULL, n, 1), "reallocarray(NULL,n,1)", n);

		void *sentinel = (void *)0x5ca1ab1e;
		void *out = sentinel;
		int rc = posix_memalign(&out, 64, n);
		CHECK(rc == ENOMEM);
		CHECK(out == sentinel);
		rc = posix_memalign(&out, 1 << 16, n);
		CHECK(rc == ENOMEM);
		CHECK(out == sentinel);

		/* realloc of a live block: NULL/ENOMEM, old block untouched and still usable */
		for (size_t t = 0; t < NTIER; t++) {
			size_t sz = tier_sizes[t];
			unsigned char *p = malloc(sz);
			REQUIRE(p);
			for (size_t k = 0; k < sz; k++) p[k] = pat(k, 3);
			EXPECT_ENOMEM(realloc_v(p, n), "realloc(p)", n);
			EXPECT_ENOMEM(reallocarray_v(p, n, 1), "reallocarray(p,n,1)", n);
			size_t badb = 0;
			for (size_t k = 0; k < sz; k++) badb += p[k] != pat(k, 3);
			CHECK(badb == 0);
			CHECK(bsl_owns(p) == 1);
			free(p);
		}
	}
	/* overflowing products */
	EXPECT_ENOMEM(calloc(hide(SIZE_MAX), 2), "calloc(SIZE_MAX,2)", SIZE_MAX);
	EXPECT_ENOMEM(calloc(2, hide(SIZE_MAX)), "calloc(2,SIZE_MAX)", SIZE_MAX);
	EXPECT_ENOMEM(calloc(hide((size_t)1 << 32), (size_t)1 << 32), "calloc(2^32,2^32)", 0);
	EXPECT_ENOMEM(calloc(hide(((size_t)1 << 32) + 1), ((size_t)1 << 32) - 1), "calloc(2^32+1,2^32-1)", 0);
	EXPECT_ENOMEM(reallocarray(NULL, hide(SIZE_MAX), 2), "reallocarray(NULL,SIZE_MAX,2)", SIZE_MAX);
	char *p = malloc(100);
	REQUIRE(p);
	memset(p, 0x5a, 100);
	EXPECT_ENOMEM(reallocarray_v(p, hide(SIZE_MAX), 2), "reallocarray(p,SIZE_MAX,2)", SIZE_MAX);
	EXPECT_ENOMEM(reallocarray_v(p, hide((size_t)1 << 33), (size_t)1 << 33), "reallocarray(p,2^33,2^33)", 0);
	int ok = 1;
	for (int k = 0; k < 100; k++) ok &= p[k] == 0x5a;
	CHECK(ok);
	free(p);
	/* and the allocator still works afterwards */
	p = malloc(1000);
	CHECK(p != NULL);
	free(p);
}

/* ---------------------------------------------------------------- bad alignments */

/*
 * What is asserted (glibc):
 *  - posix_memalign: alignment 0 or not a power-of-two multiple of sizeof(void *)
 *    (1, 2, 3, 4, 24, 48, 2^63+1, SIZE_MAX) returns EINVAL and leaves *memptr alone
 *    (all glibc versions; POSIX.1-2008 TC2).
 *  - aligned_alloc: alignment 0 or not a power of two (3, 24, 48, SIZE_MAX) returns
 *    NULL with errno EINVAL. This is glibc >= 2.38 (and what man 3 aligned_alloc
 *    documents); glibc 2.36 on this machine still treats aligned_alloc as memalign
 *    and so fails this case - it is asserted anyway as the brief requires.
 *  - memalign: glibc rounds a non-power-of-two alignment up to the next power of two
 *    (24 -> 32, 48 -> 64, 3 -> at least the 16-byte default) and treats 0 as "no
 *    constraint" (a normal malloc); only an alignment above SIZE_MAX/2+1 (which has
 *    no power of two to round up to) gives NULL with EINVAL.
 */
static void posix_memalign_bad_alignment_einval(void)
{
	static const size_t bad_pm[] = { 0, 1, 2, 3, 4, 12, 24, 48, 96, 4095, 4097,
		((size_t)1 << 63) + 1, SIZE_MAX };
	for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
		void *sentinel = (void *)0xdeadbeef, *out = sentinel;
		int rc = posix_memalign(&out, hide(bad_pm[i]), 64);
		if (rc != EINVAL || out != sentinel) {
			fprintf(stderr, "  posix_memalign(align %#zx): rc %d out %p\n", bad_pm[i], rc, out);
			t_failed_case = 1;
		}
	}
	/* valid but pointless ones still work */
	void *out = NULL;
	CHECK(posix_memalign(&out, hide(8), 64) == 0 && out && ((uintptr_t)out & 7) == 0);
	free(out);

}

/* glibc >= 2.38 / man 3 aligned_alloc; glibc 2.36 fails this one (see above). */
static void aligned_alloc_bad_alignment_einval(void)
{
	static const size_t bad_aa[] = { 0, 3, 24, 48, 96, 4095, ((size_t)1 << 63) + 1, SIZE_MAX };
	for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++) {
		errno = 0;
		void *r = aligned_alloc(hide(bad_aa[i]), 64);
		int e = errno;
		if (r != NULL || e != EINVAL) {
			fprintf(stderr, "  aligned_alloc(align %#zx, 64): got %p errno %d, want NULL/EINVAL\n", bad_aa[i], r, e);
			t_failed_case = 1;
			free(r);
		}
	}
}

static void memalign_bad_alignment(void)
{
	/* memalign: round up, 0 means malloc, > SIZE_MAX/2+1 is EINVAL */
	static const struct { size_t al, want; } ma[] = {
		{ 0, 16 }, { 1, 16 }, { 3, 16 }, { 5, 16 }, { 24, 32 }, { 48, 64 }, { 96, 128 },
		{ 4095, 4096 }, { 5000, 8192 }, { (1 << 20) + 1, 1 << 21 },
	};
	for (size_t i = 0; i < sizeof ma / sizeof ma[0]; i++) {
		errno = 0;
		void *r = memalign(hide(ma[i].al), 100);
		if (!r || ((uintptr_t)r & (ma[i].want - 1)) || malloc_usable_size(r) < 100) {
			fprintf(stderr, "  memalign(%zu, 100) = %p errno %d, want %zu-aligned\n", ma[i].al, r, errno, ma[i].want);
			t_failed_case = 1;
		}
		if (r) memset(r, 1, 100);
		free(r);
	}
	static const size_t bad_ma[] = { ((size_t)1 << 63) + 1, SIZE_MAX, SIZE_MAX - 4095 };
	for (size_t i = 0; i < sizeof bad_ma / sizeof bad_ma[0]; i++) {
		errno = 0;
		void *r = memalign(hide(bad_ma[i]), 64);
		int e = errno;
		if (r != NULL || e != EINVAL) {
			fprintf(stderr, "  memalign(%#zx, 64): got %p errno %d, want NULL/EINVAL\n", bad_ma[i], r, e);
			t_failed_case = 1;
			free(r);
		}
	}
}

/* ---------------------------------------------------------------- good alignments */

static int check_aligned(const char *fn, void *p, size_t al, size_t n)
{
	if (!p) {
		fprintf(stderr, "  %s(align %zu, size %zu) = NULL (errno %d)\n", fn, al, n, errno);
		return 0;
	}
	int ok = 1;
	if ((uintptr_t)p & (al - 1)) {
		fprintf(stderr, "  %s(align %zu, size %zu) = %p misaligned\n", fn, al, n, p);
		ok = 0;
	}
	size_t u = malloc_usable_size(p);
	if (u < n) {
		fprintf(stderr, "  %s(align %zu, size %zu): usable %zu\n", fn, al, n, u);
		ok = 0;
	}
	if (bsl_owns(p) != 1) {
		fprintf(stderr, "  %s(align %zu, size %zu) = %p: bsl_owns != 1\n", fn, al, n, p);
		ok = 0;
	}
	if (u >= n) memset(p, 0xC3, u);    /* writable in full */
	free(p);
	return ok;
}

static void aligned_all_tiers(void)
{
	int bad = 0;
	for (int lg = 0; lg <= 27; lg++) {
		size_t al = (size_t)1 << lg;
		for (size_t t = 0; t < NTIER; t++) {
			size_t n = tier_sizes[t];
			if (al >= sizeof(void *)) {
				void *p = NULL;
				int rc = posix_memalign(&p, hide(al), n);
				if (rc) { fprintf(stderr, "  posix_memalign(%zu,%zu) rc %d\n", al, n, rc); bad++; }
				else bad += !check_aligned("posix_memalign", p, al, n);
			}
			bad += !check_aligned("aligned_alloc", aligned_alloc(hide(al), n), al, n);
			bad += !check_aligned("memalign", memalign(hide(al), n), al, n);
		}
		/* several live at once so the allocator cannot just reuse one spot */
		if (lg <= 20) {
			void *v[8];
			for (int k = 0; k < 8; k++) v[k] = memalign(al, 1000 + 333 * k);
			for (int k = 0; k < 8; k++) {
				if (!v[k] || ((uintptr_t)v[k] & (al - 1))) bad++;
				else memset(v[k], k, 1000 + 333 * k);
			}
			for (int k = 0; k < 8; k++) free(v[k]);
		}
	}
	CHECK(bad == 0);
}

/* Alignments 2^28 .. 2^63: either a block that is aligned and writable, or NULL with
 * ENOMEM (posix_memalign: the ENOMEM return) - never a crash or a misaligned block. */
static void huge_alignments(void)
{
	int bad = 0;
	for (int lg = 28; lg <= 63; lg++) {
		size_t al = (size_t)1 << lg;
		for (int how = 0; how < 3; how++) {
			void *p = NULL;
			int err;
			errno = 0;
			if (how == 0) { err = posix_memalign(&p, hide(al), 100); if (err) p = NULL; }
			else { p = how == 1 ? aligned_alloc(hide(al), 100) : memalign(hide(al), 100); err = p ? 0 : errno; }
			if (!p) {
				if (err != ENOMEM) { fprintf(stderr, "  way %d align 2^%d: NULL with error %d\n", how, lg, err); bad++; }
				continue;
			}
			if ((uintptr_t)p & (al - 1)) { fprintf(stderr, "  way %d align 2^%d: %p misaligned\n", how, lg, p); bad++; }
			if (malloc_usable_size(p) < 100) bad++;
			memset(p, 1, 100);
			free(p);
		}
	}
	CHECK(bad == 0);
}

/* Size 0 with every alignment, up to beyond a chunk (the large tier): a real,
 * writable, freeable block (found by the fuzzer: 0 bytes at 8 MiB alignment
 * came back unmapped and recorded as already freed). */
static void zero_size_every_alignment(void)
{
	int bad = 0;
	for (int lg = 4; lg <= 26; lg++) {
		size_t al = (size_t)1 << lg;
		for (int how = 0; how < 3; how++) {
			void *p = NULL;
			if (how == 0) { if (posix_memalign(&p, hide(al), hide(0))) p = NULL; }
			else p = how == 1 ? aligned_alloc(hide(al), hide(0)) : memalign(hide(al), hide(0));
			if (!p || ((uintptr_t)p & (al - 1))) {
				fprintf(stderr, "  way %d align 2^%d: %p\n", how, lg, p);
				bad++;
				continue;
			}
			size_t u = malloc_usable_size(p);
			memset(p, 1, u);
			p = realloc(p, hide(100));
			if (!p) { bad++; continue; }
			free(p);
		}
	}
	CHECK(bad == 0);
}

static void valloc_pvalloc(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	static const size_t sz[] = { 1, 100, 4095, 4096, 4097, 10000, 20 * 1024, 100 * 1024, 200 * 1024, 3 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		size_t n = hide(sz[i]);
		void *v = valloc(n);
		REQUIRE(v);
		CHECK(((uintptr_t)v & (pg - 1)) == 0);
		CHECK(malloc_usable_size(v) >= n);
		memset(v, 1, malloc_usable_size(v));
		free(v);

		void *p = pvalloc(n);
		REQUIRE(p);
		size_t up = (n + pg - 1) & ~(pg - 1);
		CHECK(((uintptr_t)p & (pg - 1)) == 0);
		if (malloc_usable_size(p) < up) {
			fprintf(stderr, "  pvalloc(%zu): usable %zu < %zu\n", n, malloc_usable_size(p), up);
			t_failed_case = 1;
		} else
			memset(p, 2, up);          /* the whole rounded-up page is ours */
		free(p);
	}
}

/* ---------------------------------------------------------------- calloc */

/*
 * Freed large mappings serve later requests of other sizes without a fresh
 * mapping (whose every page would fault again): a 1 MiB block, freed, serves
 * a 300 KiB block from its head and a 600 KiB one from the rest. Proof of reuse:
 * the addresses, and the old contents still there (plain malloc), and the
 * page faults counted while touching them. calloc of such memory is zero.
 * Only with the mapping cache on and unguarded (secure guard mode keeps a
 * guard page right after each block and never splits).
 */
static long minflt_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}
static void large_reuse_other_sizes(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "large_cache:0") || strstr(conf, "secure") || strstr(conf, "decay_ms:0"))) {
		SKIP("the mapping cache is off or guarded in this configuration");
	}
	const size_t K = 1024, head = 300 * K, tail = 600 * K;
	malloc_trim(0);                                   /* the cache starts empty */
	unsigned char *p = malloc(1024 * K);
	REQUIRE(p);
	memset(p, 0xAB, 1024 * K);
	free(p);
	long f0 = minflt_now();
	unsigned char *q = malloc(head), *r = malloc(tail);
	REQUIRE(q && r);
	CHECK(q == p);
	CHECK(r == p + head);                             /* 300 KiB is a page multiple */
	size_t stale = 0;
	for (size_t i = 0; i < tail; i += 4096) stale += r[i] == 0xAB;
	CHECK(stale == tail / 4096);
	memset(q, 1, head);
	memset(r, 2, tail);
	long faults = minflt_now() - f0;
	printf("  info: 300 KiB + 600 KiB from a freed 1 MiB block: %ld page faults (a fresh mapping: %zu)\n",
	       faults, (head + tail) / 4096);
	CHECK(faults < 32);
	free(r);
	unsigned char *z = calloc(1, tail);               /* the same pages, dirty: zeroed */
	REQUIRE(z);
	size_t nonzero = 0;
	for (size_t i = 0; i < tail; i++) nonzero += z[i] != 0;
	CHECK(nonzero == 0);
	free(z);
	free(q);

	malloc_trim(0);
}

/* A freed block above half of large_cache (64 MiB by default) is cached
 * alone: a 48 MiB buffer freed and allocated again comes back with its pages
 * resident; a second one freed while the first is cached replaces it (the
 * cache's bytes, part of bsl_stats' dirty, grow by one block, not two). */
static void large_alone_above_half_cap(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "large_cache") || strstr(conf, "secure") || strstr(conf, "decay_ms:0"))) {
		SKIP("the mapping cache is sized, off or guarded in this configuration");
	}
	const size_t n = 48u << 20;
	malloc_trim(0);
	char *p = malloc(n);
	REQUIRE(p);
	memset(p, 1, n);
	free(p);
	long f0 = minflt_now();
	char *q = malloc(n);
	REQUIRE(q);
	memset(q, 2, n);
	long faults = minflt_now() - f0;
	printf("  info: a freed 48 MiB block allocated and written again: %ld page faults (fresh: %zu)\n",
	       faults, n / 4096);
	CHECK(q == p);
	CHECK(faults < 64);
	char *r = malloc(n);
	REQUIRE(r);
	memset(r, 3, n);
	struct bsl_stats s0, s1;
	REQUIRE(bsl_stats(&s0) == 0);
	free(q);                              /* kept */
	free(r);                              /* kept, q unmapped */
	REQUIRE(bsl_stats(&s1) == 0);
	CHECK(s1.dirty >= s0.dirty + n && s1.dirty < s0.dirty + 2 * n);
	char *again = malloc(n);
	CHECK(again == r);
	free(again);
	malloc_trim(0);
}

/* calloc of a reused mapping of 1 MiB or more is zeroed by os_zero: resident
 * pages written, the others dropped. Every pattern of written pages (all,
 * none, every 8th, every other, one run in the middle) must come back zero,
 * from the same mapping, and the untouched pages must not be faulted in. */
static void large_calloc_zero_patterns(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "large_cache:0") || strstr(conf, "secure") || strstr(conf, "decay_ms:0"))) {
		SKIP("the mapping cache is off or guarded in this configuration");
	}
	const size_t n = 4u << 20, np = n / 4096;
	for (int pat = 0; pat < 5; pat++) {
		malloc_trim(0);
		unsigned char *p = malloc(n);
		REQUIRE(p);
		size_t written = 0;
		for (size_t i = 0; i < np; i++) {
			int w = pat == 0 || (pat == 2 && i % 8 == 0) || (pat == 3 && i % 2 == 0) ||
				 (pat == 4 && i >= np / 3 && i < np / 2);
			if (w) { memset(p + i * 4096, 0xCD, 4096); written++; }
		}
		free(p);
		long f0 = minflt_now();
		unsigned char *z = calloc(1, n);
		long faults = minflt_now() - f0;
		REQUIRE(z);
		CHECK(z == p);
		size_t nonzero = 0;
		for (size_t i = 0; i < n; i += 64)
			nonzero += z[i] != 0 || z[i + 63] != 0;
		if (nonzero || faults > (long)written + 16)
			printf("  pattern %d: %zu pages written, %zu nonzero lines, %ld faults in calloc\n",
			       pat, written, nonzero, faults);
		CHECK(nonzero == 0);
		CHECK(faults <= (long)written + 16);   /* no page faulted in just to be zeroed */
		free(z);
	}
	malloc_trim(0);
}

static void calloc_zero_after_dirty_reuse(void)
{
	static const size_t sz[] = {
		1, 8, 16, 24, 32, 48, 64, 96, 100, 128, 200, 256, 500, 512, 1000, 1024, 2048,
		3000, 4096, 6000, 8192, 12000, 16384, 20000, 32768, 65536, 100000, 131072,
		140000, 200000, 262144, 500000, 1 << 20, 3 << 20,
	};
	enum { NS = sizeof sz / sizeof sz[0], REP = 8 };
	static void *blk[NS][REP];
	size_t bad = 0;
	for (int round = 0; round < 6; round++) {
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) {
				blk[i][r] = malloc(sz[i]);
				REQUIRE(blk[i][r]);
				memset(blk[i][r], 0xAB, malloc_usable_size(blk[i][r]));
			}
		/* free in a different order than allocation */
		for (int r = REP - 1; r >= 0; r--)
			for (int i = 0; i < NS; i++) free(blk[i][r]);
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) {
				size_t n = sz[i];
				/* vary the nmemb/size split */
				unsigned char *c = (r & 1) && n % 8 == 0 ? calloc(n / 8, 8) : calloc(1, n);
				REQUIRE(c);
				for (size_t k = 0; k < n; k++)
					if (c[k]) { bad++; if (bad < 5) fprintf(stderr, "  calloc(%zu) byte %zu = %#x\n", n, k, c[k]); break; }
				blk[i][r] = c;
			}
		/* dirty the calloc'd blocks too, so the next round reuses them dirty */
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) {
				memset(blk[i][r], 0xAB, malloc_usable_size(blk[i][r]));
				free(blk[i][r]);
			}
	}
	CHECK(bad == 0);
	/* and calloc after realloc shrink/grow leftovers */
	for (int i = 0; i < 200; i++) {
		unsigned char *p = malloc(5000 + i * 37);
		REQUIRE(p);
		memset(p, 0xAB, 5000 + i * 37);
		p = realloc(p, 100 + i);
		REQUIRE(p);
		free(p);
		unsigned char *c = calloc(1, 5000 + i * 37);
		REQUIRE(c);
		for (size_t k = 0; k < 5000u + i * 37; k++) if (c[k]) { bad++; break; }
		free(c);
	}
	CHECK(bad == 0);
}

/*
 * calloc after the free memory was given back to the OS. With the default advice
 * (MADV_DONTNEED) purged pages read as zero; with BUDDYSLAB_CONF=purge:free
 * (MADV_FREE) they keep their old contents until the kernel reclaims them, so the
 * allocator must not treat them as clean. The scenario runs here and in copies of
 * this program re-executed under several BUDDYSLAB_CONF settings.
 */
static int calloc_purge_scenario(void)
{
	static const size_t sz[] = { 16, 100, 1000, 5000, 16384, 20000, 60000, 100000, 130000,
		200000, 1 << 20, 3 << 20 };
	enum { NS = sizeof sz / sizeof sz[0], REP = 8 };
	static void *v[NS][REP];
	int bad = 0;
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) {
				v[i][r] = malloc(sz[i]);
				if (!v[i][r]) return 1;
				memset(v[i][r], 0xAB, malloc_usable_size(v[i][r]));
			}
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) free(v[i][r]);
		size_t purged = round & 1 ? bsl_purge() : (malloc_trim(0), 0);
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) {
				unsigned char *c = calloc(1, sz[i]);
				if (!c) return 1;
				for (size_t k = 0; k < sz[i]; k++)
					if (c[k]) {
						if (bad++ < 3)
							fprintf(stderr, "  [BUDDYSLAB_CONF=%s] round %d: calloc(%zu) byte %zu = %#x (bsl_purge gave back %zu)\n",
								getenv("BUDDYSLAB_CONF") ? getenv("BUDDYSLAB_CONF") : "",
								round, sz[i], k, c[k], purged);
						break;
					}
				v[i][r] = c;
			}
		for (int i = 0; i < NS; i++)
			for (int r = 0; r < REP; r++) free(v[i][r]);
	}
	return bad ? 1 : 0;
}

static char *self_exe;

static void calloc_zero_after_purge(void)
{
	CHECK(calloc_purge_scenario() == 0);
	static const char *const confs[] = { "purge:free", "purge:free,decay_ms:0", "decay_ms:0", "tcache:0" };
	for (size_t i = 0; i < sizeof confs / sizeof confs[0]; i++) {
		fflush(NULL);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			alarm(60);
			setenv("BUDDYSLAB_CONF", confs[i], 1);
			execl(self_exe, self_exe, "--calloc-purge-child", (char *)NULL);
			_exit(4);
		}
		int st;
		REQUIRE(waitpid(pid, &st, 0) == pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "  BUDDYSLAB_CONF=%s: calloc scenario failed (status %#x)\n", confs[i], st);
			t_failed_case = 1;
		}
	}
}

/* colour:1 (run as a child with it set): the first objects of successive
 * slabs of kmalloc-1536 (5 objects in a 2-page slab, 512 bytes of room)
 * start at different offsets; aligned blocks stay aligned; frees, usable
 * sizes and invalid pointers in the colour pad behave. 0 on success. */
static int colour_child(void)
{
	enum { N = 200 };
	static char *p[N];
	uintptr_t offsets = 0;            /* bit k: a slab whose objects start k * 64 B in */
	for (int i = 0; i < N; i++)
		if (!(p[i] = malloc(1536)))
			return 1;
	for (int i = 0; i < N; i++) {
		uintptr_t slab = (uintptr_t)p[i] & ~(uintptr_t)8191, low = (uintptr_t)p[i];
		for (int j = 0; j < N; j++)
			if (((uintptr_t)p[j] & ~(uintptr_t)8191) == slab && (uintptr_t)p[j] < low)
				low = (uintptr_t)p[j];
		offsets |= (uintptr_t)1 << ((((low - slab) % 1536) >> 6) & 63);   /* its colour */
		if (malloc_usable_size(p[i]) < 1536)
			return 2;
	}
	int bad = 0;
	for (size_t align = 16; align <= 4096; align *= 2)
		for (int i = 0; i < 64; i++) {
			void *q;
			if (posix_memalign(&q, align, align * 3 / 2 + 8) || (uintptr_t)q % align)
				bad++;
			else
				free(q);
		}
	for (int i = 0; i < N; i++)
		free(p[i]);
	if (bad)
		return 3;
	return __builtin_popcountl(offsets) >= 2 ? 0 : 4;   /* colours 0 and 512 */
}

static void colour_offsets_and_alignment(void)
{
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		alarm(60);
		setenv("BUDDYSLAB_CONF", "colour:1", 1);
		execl(self_exe, self_exe, "--colour-child", (char *)NULL);
		_exit(5);
	}
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "  colour:1 child failed (status %#x: 1 malloc, 2 usable size, "
			"3 alignment, 4 one colour only)\n", st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---------------------------------------------------------------- realloc */

static unsigned char *ref;   /* pattern reference, 8 MiB + slack */
#define REFSZ ((8u << 20) + 65536)

static int realloc_step(unsigned char **pp, size_t *cur, size_t n)
{
	unsigned char *q = realloc(*pp, n);
	if (!q) { fprintf(stderr, "  realloc(%zu -> %zu) = NULL\n", *cur, n); return 0; }
	size_t keep = *cur < n ? *cur : n;
	if (memcmp(q, ref, keep) != 0) {
		size_t k = 0;
		while (q[k] == ref[k]) k++;
		fprintf(stderr, "  realloc(%zu -> %zu): byte %zu lost (%#x want %#x)\n", *cur, n, k, q[k], ref[k]);
		*pp = q; *cur = keep;
		return 0;
	}
	if (malloc_usable_size(q) < n) { fprintf(stderr, "  realloc -> %zu: usable %zu\n", n, malloc_usable_size(q)); *pp = q; return 0; }
	if (n > *cur) memcpy(q + *cur, ref + *cur, n - *cur);
	*pp = q; *cur = n;
	return 1;
}

static void realloc_keeps_contents(void)
{
	ref = mmap(NULL, REFSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(ref != MAP_FAILED);
	for (size_t i = 0; i < REFSZ; i++) ref[i] = pat(i, 77);
	static const size_t edges[] = { 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1 << 20 };
	int ok = 1;
	unsigned char *p = NULL;
	size_t cur = 0;
	ok &= realloc_step(&p, &cur, 16);
	/* up by ~1.3 */
	while (ok && cur < (8u << 20)) {
		size_t n = cur + cur * 3 / 10 + 1;
		if (n > (8u << 20)) n = 8u << 20;
		ok &= realloc_step(&p, &cur, n);
	}
	/* down by ~1.3 */
	while (ok && cur > 16) {
		size_t n = cur * 10 / 13;
		if (n < 16) n = 16;
		ok &= realloc_step(&p, &cur, n);
	}
	/* +1 / -1 byte steps across each boundary, up then down */
	for (size_t e = 0; ok && e < sizeof edges / sizeof edges[0]; e++) {
		size_t lo = edges[e] - 48, hi = edges[e] + 48;
		ok &= realloc_step(&p, &cur, lo);
		for (size_t n = lo + 1; ok && n <= hi; n++) ok &= realloc_step(&p, &cur, n);
		for (size_t n = hi - 1; ok && n >= lo; n--) ok &= realloc_step(&p, &cur, n);
		/* jump straight over the boundary and back */
		ok &= realloc_step(&p, &cur, edges[e] * 3);
		ok &= realloc_step(&p, &cur, edges[e] / 3);
	}
	/* interleave other allocations so in-place growth is not always possible */
	for (int round = 0; ok && round < 40; round++) {
		void *other = malloc((size_t)(round * 997) % 300000 + 1);
		ok &= realloc_step(&p, &cur, (size_t)(round * 7919 * 13) % (3u << 20) + 1);
		free(other);
	}
	CHECK(ok);
	free(p);
	munmap(ref, REFSZ);
}

/* Large blocks grown a little at a time: realloc stays in place without a
 * table lookup while no large block was freed (large.c's last_resized), and
 * grows the mapping by an eighth at least. A block freed and its address
 * reused by a smaller one must not be taken for the old one. */
static void realloc_large_steps(void)
{
	/* secure mode moves or stays by its own rule (the canary trailer) */
	const char *conf = getenv("BUDDYSLAB_CONF");
	int plain = !conf || !strstr(conf, "secure");
	size_t n = 300 * 1024;
	unsigned char *p = malloc(n);
	REQUIRE(p);
	memset(p, 0xA5, n);
	size_t grows = 0, prev = malloc_usable_size(p);
	for (size_t len = n + 1; len <= 2 * n; len += 512) {
		unsigned char *q = realloc(p, len);
		REQUIRE(q);
		p = q;
		CHECK(malloc_usable_size(p) >= len);
		p[len - 1] = (unsigned char)len;
		if (malloc_usable_size(p) != prev) {
			grows++;
			CHECK(!plain || malloc_usable_size(p) >= prev + prev / 8);
			prev = malloc_usable_size(p);
		}
	}
	CHECK(!plain || grows <= 8);           /* 300 KiB -> 600 KiB by eighths: 6 */
	for (size_t i = 0; i < n; i += 4096)
		CHECK(p[i] == 0xA5);
	/* free it, reuse its address for a smaller block if the mapping cache
	 * allows, and grow that one: every byte asked for must be there */
	void *keep = p;
	free(p);
	for (int i = 0; i < 4; i++) {
		unsigned char *q = malloc(n / 2 + (size_t)i * 8192);
		REQUIRE(q);
		if (q == keep)
			fprintf(stderr, "  (info) a freed block's address was reused\n");
		unsigned char *r = realloc(q, n / 2 + (size_t)i * 8192 + 100);
		REQUIRE(r);
		CHECK(malloc_usable_size(r) >= n / 2 + (size_t)i * 8192 + 100);
		memset(r, 1, n / 2 + (size_t)i * 8192 + 100);
		free(r);
	}
}

/* A page run grows in place when the pages right after it are free (the
 * buddy layer gives them to it), and moves when they are in use; its bytes
 * survive either way, and so do the neighbour's. */
static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

static int pattern_intact(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + seed))
			return 0;
	return 1;
}

/* A large block cut from the front of a cached mapping grows into the rest
 * of that mapping where it is (the rest's pages are resident: moving away
 * from them, as mremap must with the rest in the way, faults in new ones). */
static void realloc_large_grows_into_cached_rest(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "secure") || strstr(conf, "large_cache")))
		SKIP("secure mode and large_cache settings decide by their own rules");
	malloc_trim(0);                 /* an empty mapping cache */
	size_t big = 8u << 20, n = 1u << 20;
	unsigned char *p = malloc(big);
	REQUIRE(p);
	memset(p, 3, big);
	free(p);                        /* cached */
	unsigned char *q = malloc(n);   /* the cached mapping's front; its rest stays cached */
	REQUIRE(q);
	CHECK(q == p);
	fill_pattern(q, n, 9);
	unsigned char *r = realloc(q, 2 * n);
	REQUIRE(r);
	CHECK(r == q);
	CHECK(pattern_intact(r, n, 9));
	memset(r + n, 4, n);
	unsigned char *s = realloc(r, 4 * n + 100);
	REQUIRE(s);
	CHECK(s == r);
	CHECK(pattern_intact(s, n, 9) && s[2 * n - 1] == 4);
	CHECK(malloc_usable_size(s) >= 4 * n + 100);
	memset(s, 5, 4 * n + 100);
	free(s);
}

static void realloc_run_grows_in_place(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && strstr(conf, "secure"))
		SKIP("secure canaries resize by their own rule");
	/* a 16-page run shrunk in place to 5 pages: pages 5-15 of its block are
	 * free, and nothing is allocated before the realloc that grows it */
	unsigned char *p = malloc(16 * 4096);
	REQUIRE(p);
	REQUIRE(realloc(p, 5 * 4096) == p);
	fill_pattern(p, 5 * 4096, 1);
	unsigned char *q = realloc(p, 12 * 4096 + 100);      /* 13 pages */
	REQUIRE(q);
	CHECK(q == p);
	CHECK(pattern_intact(q, 5 * 4096, 1));
	CHECK(malloc_usable_size(q) >= 12 * 4096 + 100);
	fill_pattern(q, 12 * 4096 + 100, 2);
	for (size_t n = 12 * 4096 + 101; n <= 16 * 4096; n += 1000) {   /* the rest, step by step */
		unsigned char *r = realloc(q, n);
		REQUIRE(r);
		CHECK(r == q);
		q = r;
	}
	CHECK(pattern_intact(q, 12 * 4096 + 100, 2));
	free(q);

	/* two 16-page runs side by side (a block split for the first gives its
	 * other half to the next): the first must move to grow */
	enum { N = 64 };
	unsigned char *r[N], *a = NULL, *b = NULL;
	int n = 0;
	for (; n < N && !a; n++) {
		r[n] = malloc(16 * 4096);
		REQUIRE(r[n]);
		for (int j = 0; j < n && !a; j++) {
			if (r[n] == r[j] + 16 * 4096)
				a = r[j], b = r[n];
			else if (r[j] == r[n] + 16 * 4096)
				a = r[n], b = r[j];
		}
	}
	if (a) {
		fill_pattern(a, 16 * 4096, 3);
		fill_pattern(b, 16 * 4096, 4);
		q = realloc(a, 17 * 4096);
		REQUIRE(q);
		CHECK(q != a);
		CHECK(pattern_intact(q, 16 * 4096, 3));
		CHECK(pattern_intact(b, 16 * 4096, 4));
		for (int j = 0; j < n; j++)
			if (r[j] == a)
				r[j] = q;
	}
	for (int j = 0; j < n; j++)
		free(r[j]);
	if (!a)
		SKIP("no two runs side by side in %d allocations", N);
}

static void realloc_null_and_zero(void)
{
	/* realloc(NULL, n) behaves as malloc(n) */
	static const size_t sz[] = { 0, 1, 100, 5000, 20000, 100000, 300000, 3 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		void *p = realloc(NULL, hide(sz[i]));
		REQUIRE(p);
		CHECK(((uintptr_t)p & 15) == 0);
		CHECK(malloc_usable_size(p) >= sz[i]);
		CHECK(bsl_owns(p) == 1);
		memset(p, 1, sz[i]);
		free(p);
	}
	/*
	 * realloc(p, 0) with p != NULL: glibc (REALLOC_ZERO_BYTES_FREES) frees p and
	 * returns NULL. That is what is asserted, for every tier; for the 1 MiB block the
	 * bsl_stats allocated counter must drop by at least 1 MiB (proof it was freed).
	 */
	for (size_t i = 1; i < sizeof sz / sizeof sz[0]; i++) {
		void *p = malloc(sz[i]);
		REQUIRE(p);
		errno = 0;
		void *q = realloc(p, hide(0));
		CHECK(q == NULL);
		if (q) free(q);
	}
	void *big = malloc(1 << 20);
	REQUIRE(big);
	struct bsl_stats a, b;
	bsl_stats(&a);
	void *q = realloc(big, hide(0));
	bsl_stats(&b);
	CHECK(q == NULL);
	if (!(a.allocated >= b.allocated + (1 << 20))) {
		fprintf(stderr, "  realloc(1MiB block, 0): allocated %zu -> %zu\n", a.allocated, b.allocated);
		t_failed_case = 1;
	}
	/* reallocarray(NULL, n, m) = malloc(n*m) */
	void *r = reallocarray(NULL, 10, 100);
	REQUIRE(r);
	CHECK(malloc_usable_size(r) >= 1000);
	memset(r, 0, 1000);
	r = reallocarray(r, 100, 100);
	REQUIRE(r);
	CHECK(malloc_usable_size(r) >= 10000);
	free(r);
}

static void free_null_usable_null_errno(void)
{
	free(NULL);
	CHECK(malloc_usable_size(NULL) == 0);
	static const size_t sz[] = { 1, 16, 100, 1000, 4000, 20000, 100000, 200000, 1 << 20, 3 << 20, 16 << 20 };
	/* many of each so frees spill thread caches, empty slabs, unmap */
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		enum { K = 300 };
		static void *v[K];
		int k_n = sz[i] >= (1 << 20) ? 8 : K;
		for (int k = 0; k < k_n; k++) { v[k] = malloc(sz[i]); REQUIRE(v[k]); memset(v[k], 7, sz[i] < 4096 ? sz[i] : 4096); }
		for (int k = 0; k < k_n; k++) {
			errno = 1234;
			free(v[k]);
			if (errno != 1234) {
				fprintf(stderr, "  free(size %zu, #%d) changed errno to %d\n", sz[i], k, errno);
				t_failed_case = 1;
				break;
			}
		}
	}
	errno = 1234;
	free(NULL);
	CHECK(errno == 1234);
	errno = 1234;
	bsl_purge();
	malloc_trim(0);
	void *p = malloc(10);
	free(p);
	CHECK(errno == 1234);
}

/* ---------------------------------------------------------------- C23 sized frees */

static void c23_free_sized(void)
{
	if (!free_sized && !free_aligned_sized)
		SKIP("free_sized/free_aligned_sized not defined (glibc 2.36 lacks them; "
		     "a weak reference does not pull them out of libbuddyslab.a)");
	struct bsl_stats a, b;
	static const size_t sz[] = { 1, 24, 100, 1000, 5000, 20000, 100000, 200000, 3 << 20 };
	enum { NS = sizeof sz / sizeof sz[0] };
	void *v[NS][16];
	bsl_stats(&a);
	if (free_sized) {
		for (int i = 0; i < NS; i++)
			for (int k = 0; k < 16; k++) { v[i][k] = malloc(sz[i]); REQUIRE(v[i][k]); memset(v[i][k], 1, sz[i]); }
		for (int i = 0; i < NS; i++)
			for (int k = 0; k < 16; k++) free_sized(v[i][k], sz[i]);
		free_sized(NULL, 0);
		/* calloc'd blocks too: the size is nmemb*size */
		void *c = calloc(10, 30);
		REQUIRE(c);
		free_sized(c, 300);
	}
	if (free_aligned_sized) {
		for (int i = 0; i < NS; i++)
			for (int k = 0; k < 16; k++) {
				size_t al = (size_t)1 << (4 + k % 10);
				v[i][k] = aligned_alloc(al, sz[i]);
				REQUIRE(v[i][k]);
				memset(v[i][k], 2, sz[i]);
			}
		for (int i = 0; i < NS; i++)
			for (int k = 0; k < 16; k++) free_aligned_sized(v[i][k], (size_t)1 << (4 + k % 10), sz[i]);
		free_aligned_sized(NULL, 64, 0);
	}
	bsl_stats(&b);
	if (b.allocated != a.allocated) {
		fprintf(stderr, "  allocated %zu before, %zu after free_sized\n", a.allocated, b.allocated);
		t_failed_case = 1;
	}
}

/* ---------------------------------------------------------------- glibc extras */

static void mallinfo2_tracks_usage(void)
{
	enum { N = 100000, SZ = 100 };   /* 10 MB in small blocks */
	void **v = malloc(N * sizeof *v);
	REQUIRE(v);
	struct mallinfo2 m0 = mallinfo2();
	for (int i = 0; i < N; i++) { v[i] = malloc(SZ); REQUIRE(v[i]); memset(v[i], 9, SZ); }
	struct mallinfo2 m1 = mallinfo2();
	for (int i = 0; i < N; i++) free(v[i]);
	struct mallinfo2 m2 = mallinfo2();
	free(v);
	fprintf(stderr, "  (info) uordblks %zu -> %zu -> %zu, arena %zu -> %zu -> %zu\n",
		m0.uordblks, m1.uordblks, m2.uordblks, m0.arena, m1.arena, m2.arena);
	CHECK(m1.uordblks >= m0.uordblks + (size_t)N * SZ);
	/* arena (bytes taken from the OS for the heap) need not grow when the
	 * allocator already holds enough free memory, but it covers what is in use */
	CHECK(m1.arena >= (size_t)N * SZ);
	CHECK(m1.arena >= m1.uordblks);
	CHECK(m2.uordblks + (size_t)N * SZ * 9 / 10 <= m1.uordblks);
	/* mallinfo() (deprecated, int fields) must at least not crash */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
	(void)mi;
}

static void trim_mallopt(void)
{
	void *v[1000];
	for (int i = 0; i < 1000; i++) v[i] = malloc(i * 300 + 1);
	for (int i = 0; i < 1000; i += 2) free(v[i]);
	int r = malloc_trim(0);
	CHECK(r == 0 || r == 1);
	for (int i = 1; i < 1000; i += 2) {
		CHECK(v[i] != NULL && bsl_owns(v[i]) == 1);
		memset(v[i], 3, i * 300 + 1);
		free(v[i]);
	}
	r = malloc_trim(1 << 20);
	CHECK(r == 0 || r == 1);
	/* the parameters programs commonly set (e.g. M_ARENA_MAX from launchers) are
	 * accepted (glibc returns 1), and allocation keeps working after each */
	static const int params[][2] = { { M_MMAP_THRESHOLD, 0 }, { M_MMAP_THRESHOLD, 4096 },
		{ M_MMAP_THRESHOLD, 32 << 20 }, { M_TRIM_THRESHOLD, 1 << 20 }, { M_TOP_PAD, 1 << 20 },
		{ M_MMAP_MAX, 0 }, { M_MMAP_MAX, 65536 }, { M_ARENA_MAX, 1 }, { M_ARENA_TEST, 1 },
		{ M_PERTURB, 0 }, { M_CHECK_ACTION, 3 } };
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
		if (mallopt(params[i][0], params[i][1]) != 1) {
			fprintf(stderr, "  mallopt(%d, %d) != 1\n", params[i][0], params[i][1]);
			t_failed_case = 1;
		}
		static const size_t sz[] = { 10, 5000, 40000, 300000, 2 << 20 };
		for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
			char *q = malloc(sz[k]);
			CHECK(q != NULL);
			if (q) { memset(q, 1, sz[k]); q = realloc(q, sz[k] * 3); CHECK(q != NULL); free(q); }
		}
	}
	CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
	void *p = malloc(300 * 1024);
	CHECK(p != NULL);
	memset(p, 1, 300 * 1024);
	free(p);
	p = malloc(10);
	CHECK(p != NULL);
	free(p);
}

/* Run fn with stderr redirected to a temp file; return what it wrote (static buffer). */
static char *capture_stderr(void (*fn)(void))
{
	static char buf[65536];
	char path[] = "/tmp/bsl_api_XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) return NULL;
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void call_malloc_stats(void) { malloc_stats(); }

static void malloc_stats_and_info(void)
{
	void *p = malloc(1000);
	char *out = capture_stderr(call_malloc_stats);
	REQUIRE(out);
	CHECK(strlen(out) > 0);
	free(p);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f);
	CHECK(malloc_info(0, f) == 0);
	fclose(f);
	REQUIRE(buf);
	CHECK(strncmp(buf, "<malloc", 7) == 0);
	if (strncmp(buf, "<malloc", 7) != 0) fprintf(stderr, "  malloc_info wrote: %.80s\n", buf);
	CHECK(strstr(buf, "</malloc>") != NULL);
	free(buf);
	/* options other than 0 are an error in glibc (it returns EINVAL) */
	f = tmpfile();
	REQUIRE(f);
	CHECK(malloc_info(1, f) != 0);
	fclose(f);
}

/* ---------------------------------------------------------------- bsl_owns / bsl_stats */

static void large_churn(void);

/* bsl_owns: 1 only for the start of a live block; never aborts, whatever p is. */
static void bsl_owns_contract(void)
{
	static const size_t sz[] = { 1, 16, 100, 1000, 4000, 20000, 100000, 200000, 1 << 20, 3 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		char *p = malloc(sz[i]);
		REQUIRE(p);
		memset(p, 1, sz[i]);
		CHECK(bsl_owns(p) == 1);
		/* offsets that are not multiples of 16 can never be another block's start
		 * (every block is 16-aligned), so these must all be 0 */
		size_t mid = (sz[i] / 2) | 8;
		if (bsl_owns(p + 1) != 0 || bsl_owns(p + 8) != 0 || (sz[i] > 16 && bsl_owns(p + mid) != 0)) {
			fprintf(stderr, "  bsl_owns of an interior pointer (+1, +8, +%zu) of a %zu B block != 0\n", mid, sz[i]);
			t_failed_case = 1;
		}
		free(p);
	}
	large_churn();      /* removals in the large-block table first */
	char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(m != MAP_FAILED);
	CHECK(bsl_owns(m) == 0);
	CHECK(bsl_owns(m + 4096 + 16) == 0);
	munmap(m, 1 << 16);
	CHECK(bsl_owns(m) == 0);                      /* unmapped now */
	long on_stack = 0;
	CHECK(bsl_owns(&on_stack) == 0);
	CHECK(bsl_owns("literal") == 0);
	CHECK(bsl_owns(NULL) == 0);
	CHECK(bsl_owns((void *)1) == 0);
	CHECK(bsl_owns((void *)4096) == 0);
	CHECK(bsl_owns((void *)(uintptr_t)0x7ffffffff000ull) == 0);
	CHECK(bsl_owns((void *)(uintptr_t)0xffff800000000000ull) == 0);
	CHECK(bsl_owns((void *)UINTPTR_MAX) == 0);
	CHECK(bsl_owns((void *)(UINTPTR_MAX & ~(uintptr_t)15)) == 0);
}

/* "1 when p is the start of a live block" (buddyslab.h): a block just freed - even
 * one parked in the thread cache - is not live, and nothing reused it in between. */
static void bsl_owns_freed_block(void)
{
	static const size_t sz[] = { 1, 16, 100, 1000, 4000, 20000, 100000, 200000, 1 << 20, 3 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		char *p = malloc(sz[i]);
		REQUIRE(p);
		memset(p, 1, sz[i]);
		REQUIRE(bsl_owns(p) == 1);
		free(p);
		if (bsl_owns(launder(p)) != 0) {
			fprintf(stderr, "  bsl_owns(just-freed %zu B block %p) = 1\n", sz[i], (void *)p);
			t_failed_case = 1;
		}
	}
}

static size_t allocated_now(void)
{
	struct bsl_stats s;
	bsl_stats(&s);
	return s.allocated;
}

/* A thread that allocates only page runs (no slab object ever) still gets a
 * run cache: its freed 64 KiB runs are parked and reused, not given back to
 * the buddy layer each time (they were, when only slab slow paths warmed the
 * cache up: 4x the time of a warm thread). */
static void *runs_only_thread(void *arg)
{
	struct bsl_stats before, after;
	bsl_stats(&before);
	for (int i = 0; i < 200; i++) {
		volatile char *p = malloc(65536);
		if (!p)
			return NULL;
		p[0] = (char)i;
		free((void *)p);
	}
	bsl_stats(&after);
	*(long *)arg = (long)after.tcache - (long)before.tcache;
	return NULL;
}

static void run_cache_for_a_runs_only_thread(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && (strstr(conf, "tcache:0") || strstr(conf, "secure")))
		SKIP("no run cache under %s", conf);
	long grew = -1;
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, runs_only_thread, &grew) == 0);
	pthread_join(t, NULL);
	if (grew < 65536)
		fprintf(stderr, "  thread cache grew by %ld bytes, want >= 65536\n", grew);
	CHECK(grew >= 65536);
}

/* allocated rises by at least the request and comes back exactly after free,
 * for every tier and every allocation function (objects parked in the thread
 * cache are excluded from it, so no slack). */
static void stats_allocated_exact(void)
{
	static const size_t sz[] = { 1, 8, 17, 100, 1000, 4000, 8192, 16384, 20000, 65536, 100000,
		131072, 200000, 1 << 20, 3 << 20 };
	int bad = 0;
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		size_t n = sz[i];
		for (int how = 0; how < 6; how++) {
			size_t a = allocated_now();
			void *p = NULL;
			switch (how) {
			case 0: p = malloc(n); break;
			case 1: p = calloc(1, n); break;
			case 2: p = memalign(4096, n); break;
			case 3: p = aligned_alloc(1 << 16, n); break;
			case 4: p = realloc(NULL, n); break;
			case 5: if (posix_memalign(&p, 1 << 20, n)) p = NULL; break;
			}
			REQUIRE(p);
			size_t b = allocated_now();
			free(p);
			size_t c = allocated_now();
			if (b < a + n || c != a) {
				fprintf(stderr, "  size %zu way %d: allocated %zu -> %zu after alloc -> %zu after free\n",
					n, how, a, b, c);
				bad++;
			}
		}
		/* realloc chains: grow/shrink/free */
		size_t a = allocated_now();
		void *p = malloc(n);
		REQUIRE(p);
		p = realloc(p, n * 3 + 5);
		REQUIRE(p);
		p = realloc(p, n / 2 + 1);
		REQUIRE(p);
		p = realloc(p, n + 70000);
		REQUIRE(p);
		size_t b = allocated_now();
		free(p);
		size_t c = allocated_now();
		if (b < a + n + 70000 || c != a) {
			fprintf(stderr, "  realloc chain from %zu: allocated %zu -> %zu -> %zu\n", n, a, b, c);
			bad++;
		}
	}
	/* many at once, freed in another order */
	size_t a = allocated_now();
	static void *v[5000];
	for (int i = 0; i < 5000; i++) v[i] = malloc((size_t)(i * 7919) % 70000 + 1);
	for (int i = 0; i < 5000; i += 2) free(v[i]);
	for (int i = 4999; i > 0; i -= 2) free(v[i]);
	CHECK(allocated_now() == a);
	CHECK(bad == 0);
}

/* The bsl_stats figures agree with each other (single-threaded, so no race):
 * allocated <= active <= mapped, returned + dirty <= mapped, resident <= mapped,
 * and the per-tier counters only grow. */
static int stats_consistent(const struct bsl_stats *s, const char *when)
{
	int ok = s->allocated <= s->active && s->active <= s->mapped &&
		 s->returned + s->dirty <= s->mapped && s->resident <= s->mapped;
	if (!ok)
		fprintf(stderr, "  %s: allocated %zu active %zu mapped %zu resident %zu returned %zu dirty %zu tcache %zu\n",
			when, s->allocated, s->active, s->mapped, s->resident, s->returned, s->dirty, s->tcache);
	return ok;
}

static void stats_invariants(void)
{
	struct bsl_stats a, b, c;
	bsl_stats(&a);
	CHECK(stats_consistent(&a, "start"));
	static void *v[3000];
	for (int i = 0; i < 3000; i++) v[i] = malloc(i % 3 == 0 ? 48 : i % 3 == 1 ? 30000 : 400000);
	bsl_stats(&b);
	CHECK(stats_consistent(&b, "after 3000 allocations"));
	CHECK(b.allocated >= a.allocated + 1000 * (48 + 30000 + 400000));
	CHECK(b.nmalloc_slab >= a.nmalloc_slab);
	CHECK(b.nmalloc_run >= a.nmalloc_run + 1000);
	for (int i = 0; i < 3000; i++) free(v[i]);
	bsl_stats(&c);
	CHECK(stats_consistent(&c, "after freeing them"));
	CHECK(c.allocated == a.allocated);
	CHECK(c.nfree_run >= b.nfree_run + 1000);
	CHECK(c.nfree_large >= b.nfree_large + 1000);
	size_t purged = bsl_purge();
	struct bsl_stats d;
	bsl_stats(&d);
	CHECK(stats_consistent(&d, "after bsl_purge"));
	/* what bsl_purge gave back shows up as returned (clean) arena memory or as
	 * mappings no longer counted in mapped (cached large mappings unmapped) */
	size_t gained = (d.returned > c.returned ? d.returned - c.returned : 0) +
			(c.mapped > d.mapped ? c.mapped - d.mapped : 0);
	if (gained < purged / 2 || d.npurge < c.npurge || d.dirty > c.dirty) {
		fprintf(stderr, "  bsl_purge returned %zu; returned %zu -> %zu, mapped %zu -> %zu, dirty %zu -> %zu, npurge %llu -> %llu\n",
			purged, c.returned, d.returned, c.mapped, d.mapped, c.dirty, d.dirty,
			(unsigned long long)c.npurge, (unsigned long long)d.npurge);
		t_failed_case = 1;
	}
	CHECK(d.allocated == a.allocated);
}

/* ---------------------------------------------------------------- random ops */

/* Word-wise pattern (fast enough for big blocks): word k of a block with tag t. */
static uint64_t wpat(size_t k, unsigned t) { return (uint64_t)t * 0x9E3779B97F4A7C15ull + k * 0x100000001B3ull; }
static void wfill(unsigned char *p, size_t from, size_t n, unsigned t)
{
	for (size_t k = from; k < n; k++) {
		if (k % 8 == 0 && k + 8 <= n) { uint64_t w = wpat(k / 8, t); memcpy(p + k, &w, 8); k += 7; continue; }
		p[k] = (unsigned char)(wpat(k / 8, t) >> (k % 8 * 8));
	}
}
/* index of the first wrong byte in [0, n), or n */
static size_t wcheck(const unsigned char *p, size_t n, unsigned t)
{
	for (size_t k = 0; k < n; k++) {
		if (k % 8 == 0 && k + 8 <= n) {
			uint64_t w;
			memcpy(&w, p + k, 8);
			if (w == wpat(k / 8, t)) { k += 7; continue; }
		}
		if (p[k] != (unsigned char)(wpat(k / 8, t) >> (k % 8 * 8))) return k;
	}
	return n;
}

/* 150,000 random malloc/calloc/realloc/memalign/free operations over 4,000 slots,
 * each block filled with a pattern unique to it; any overlap or stray write shows
 * up as a corrupted block. */
static void random_ops_no_overlap(void)
{
	enum { SLOTS = 4000, OPS = 150000 };
	static unsigned char *blk[SLOTS];
	static size_t len[SLOTS];
	static unsigned tag[SLOTS];
	uint64_t s = 0x243F6A8885A308D3ull;
	size_t bad = 0, k;
	unsigned ntag = 0;
	for (int op = 0; op < OPS && bad < 5; op++) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		int i = (int)(s % SLOTS);
		unsigned r = (unsigned)(s >> 32);
		size_t n;
		switch (r % 32) {
		case 0: n = (r >> 5) % 1000000 + 1; break;          /* up to ~1 MB */
		case 1: case 2: case 3: n = (r >> 5) % 100000 + 1; break;
		case 4: case 5: case 6: case 7: case 8: case 9: n = (r >> 5) % 8192 + 1; break;
		default: n = (r >> 5) % 512; break;
		}
		if (blk[i]) {
			/* check the old block */
			if ((k = wcheck(blk[i], len[i], tag[i])) != len[i]) {
				fprintf(stderr, "  op %d: block %p (size %zu) byte %zu corrupt\n", op, (void *)blk[i], len[i], k);
				bad++;
			}
			if ((r >> 24) % 3 == 0) {
				/* realloc keeps the prefix */
				unsigned char *q = realloc(blk[i], n);
				if (!q && n) { fprintf(stderr, "  op %d: realloc(%zu) failed\n", op, n); bad++; continue; }
				size_t keep = len[i] < n ? len[i] : n;
				if ((k = wcheck(q, keep, tag[i])) != keep) {
					fprintf(stderr, "  op %d: realloc %zu -> %zu lost byte %zu\n", op, len[i], n, k);
					bad++;
				}
				wfill(q, keep, n, tag[i]);
				if (n) memset(q + n, 0xEE, malloc_usable_size(q) - n);   /* all usable bytes are ours */
				blk[i] = q;
				len[i] = n;
				continue;
			}
			free(blk[i]);
			blk[i] = NULL;
			if ((r >> 24) % 3 == 1) continue;
		}
		switch ((r >> 26) % 8) {
		case 0: blk[i] = calloc(1, n);
			if (blk[i]) for (k = 0; k < n; k++) if (blk[i][k]) { bad++; fprintf(stderr, "  op %d: calloc(%zu) byte %zu nonzero\n", op, n, k); break; }
			break;
		case 1: blk[i] = memalign((size_t)1 << ((r >> 8) % 14), n); break;
		default: blk[i] = malloc(n); break;
		}
		if (!blk[i]) { fprintf(stderr, "  op %d: allocation of %zu failed\n", op, n); bad++; continue; }
		len[i] = n;
		tag[i] = ++ntag;
		wfill(blk[i], 0, n, tag[i]);
		memset(blk[i] + n, 0xEE, malloc_usable_size(blk[i]) - n);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (!blk[i]) continue;
		if (wcheck(blk[i], len[i], tag[i]) != len[i]) bad++;
		free(blk[i]);
		blk[i] = NULL;
	}
	CHECK(bad == 0);
}

static long rss_mib(void)
{
	long pages_total = 0, pages_rss = -1;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f) return -1;
	if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) pages_rss = -1;
	fclose(f);
	return pages_rss < 0 ? -1 : pages_rss * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

/* 200 MiB in blocks of one size, touched, freed, then malloc_trim(0): the resident
 * set comes back to within 40 MiB of where it was (glibc: within a few MiB). */
static void trim_returns_memory(void)
{
	static const size_t sz[] = { 64, 1000, 20000, 100000, 1 << 20 };
	size_t cap = (200u << 20) / 64;
	void **v = mmap(NULL, cap * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(v != MAP_FAILED);
	for (size_t s = 0; s < sizeof sz / sizeof sz[0]; s++) {
		size_t n = (200u << 20) / sz[s];
		malloc_trim(0);
		long r0 = rss_mib();
		REQUIRE(r0 >= 0);
		for (size_t i = 0; i < n; i++) { v[i] = malloc(sz[s]); REQUIRE(v[i]); memset(v[i], 1, sz[s]); }
		long r1 = rss_mib();
		for (size_t i = 0; i < n; i++) free(v[i]);
		int t = malloc_trim(0);
		long r2 = rss_mib();
		if (r1 < r0 + 150 || r2 > r0 + 40) {
			fprintf(stderr, "  size %zu: RSS %ld MiB before, %ld with 200 MiB allocated, %ld after free + malloc_trim (returned %d)\n",
				sz[s], r0, r1, r2, t);
			t_failed_case = 1;
		}
	}
	munmap(v, cap * sizeof *v);
}

/* ---------------------------------------------------------------- invalid pointers */

#define FREE_MSG "buddyslab: free(): invalid pointer 0x"

static void do_free(void *p) { free(p); }
static void do_realloc(void *p) { void *q = realloc(p, 200); (void)q; }
static void do_realloc_big(void *p) { void *q = realloc(p, 1 << 20); (void)q; }

/* Allocate and free mmap-tier blocks, so whatever table tracks them has seen
 * removals; 1 MiB-aligned ones too, whose addresses have all-zero low bits (a table
 * keyed by address then puts them at the slot small addresses map to). */
static void large_churn(void)
{
	void *v[128];
	for (int i = 0; i < 128; i++) {
		v[i] = i & 1 ? malloc(300000 + (size_t)i * 4096) : memalign(1 << 20, 300000 + (size_t)i * 4096);
		if (v[i]) memset(v[i], 1, 64);
	}
	for (int i = 0; i < 128; i++) free(v[i]);
}

/* the pointer is computed in the child, from a selector */
static void *bad_pointer(int which)
{
	static const char literal[] = "a string literal in .rodata, clearly not heap";
	static long in_data[64];
	static void *mapped;
	switch (which) {
	case 0: { volatile long on_stack[8]; on_stack[0] = 1; return launder((void *)&on_stack[2]); }
	case 1:
		mapped = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return (char *)mapped + 4096 + 16;
	case 2:
		mapped = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return mapped;          /* page aligned, at the start of a foreign mapping */
	case 3: return (void *)literal;
	case 4: return &in_data[4];
	case 5: { char *p = malloc(64); memset(p, 1, 64); return p + 1; }
	case 6: { char *p = malloc(64); memset(p, 1, 64); return p + 8; }
	case 7: { char *p = malloc(64); memset(p, 1, 64); return p + 16; }
	case 8: { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); return p + (1 << 19); }
	case 9: { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); return p + 4096; }
	case 10: { char *p = malloc(50000); memset(p, 1, 50000); return p + 8192; }
	case 11: { char *p = malloc(50000); memset(p, 1, 50000); return p + 16; }
	case 12:        /* (void *)1, after large blocks came and went */
		large_churn();
		return (void *)1;
	case 13:        /* a small odd address, same */
		large_churn();
		return (void *)(uintptr_t)0x1011;
	case 14: {      /* the program maps the address of a freed large block */
		char *p = malloc(1 << 20);
		free(p);
		/* secure quarantine: the block waits, still mapped, until 64 more page
		 * blocks are freed after it; push it out */
		for (int i = 0; getenv("BUDDYSLAB_CONF") && strstr(getenv("BUDDYSLAB_CONF"), "secure") &&
		     i < 80; i++)
			free(malloc(40000));
		malloc_trim(0);         /* the mapping cache lets go of it too */
		mapped = mmap(p, 1 << 16, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (mapped != p) {
			fprintf(stderr, "  could not map the freed block's address %p\n", (void *)p);
			abort();
		}
		return mapped;
	}
	}
	return NULL;
}
static const char *const bad_names[] = {
	"stack address", "inside a test mmap page", "start of a test mmap page", "string literal",
	"static data", "p+1 of live 64 B block", "p+8 of live 64 B block", "p+16 of live 64 B block",
	"middle of live 1 MiB block", "p+4096 of live 1 MiB block", "p+8192 of live 50000 B block",
	"p+16 of live 50000 B block", "(void *)1 after large blocks were freed",
	"(void *)0x1011 after large blocks were freed",
	"a test mmap at a freed large block's address",
};
#define NBAD ((int)(sizeof bad_names / sizeof bad_names[0]))

static void child_free_bad(void *arg) { do_free(bad_pointer((int)(intptr_t)arg)); }
static void child_realloc_bad(void *arg) { do_realloc(bad_pointer((int)(intptr_t)arg)); }
static void child_realloc_big_bad(void *arg) { do_realloc_big(bad_pointer((int)(intptr_t)arg)); }

static void invalid_free_aborts(void)
{
	for (int i = 0; i < NBAD; i++)
		if (!t_expect_abort(child_free_bad, (void *)(intptr_t)i, FREE_MSG)) {
			fprintf(stderr, "  free(%s) did not abort as expected\n", bad_names[i]);
			t_failed_case = 1;
		}
}

static void invalid_realloc_aborts(void)
{
	/* the message for realloc is not pinned to "free()": require the buddyslab prefix
	 * and "invalid pointer 0x", checked in two runs */
	for (int i = 0; i < NBAD; i++) {
		int ok = t_expect_abort(child_realloc_bad, (void *)(intptr_t)i, "buddyslab: ")
		      && t_expect_abort(child_realloc_bad, (void *)(intptr_t)i, "invalid pointer 0x")
		      && t_expect_abort(child_realloc_big_bad, (void *)(intptr_t)i, "invalid pointer 0x");
		if (!ok) {
			fprintf(stderr, "  realloc(%s) did not abort as expected\n", bad_names[i]);
			t_failed_case = 1;
		}
	}
}

/* realloc of a small object freed before, to a size of its class (where
 * realloc stays in place): a double free, as free would say. */
static void child_realloc_freed(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	for (int i = 0; i < 64; i++)     /* past the thread cache's warm-up: a freed run is parked */
		free(malloc(n));
	char *volatile p = malloc(n);
	free(p);
	p = realloc(p, n + 8);
	printf("not caught %p\n", (void *)p);
}

/* a slab object, and runs parked in the thread's run cache (realloc's short
 * path must not take them for live runs), realloc'd within their size after free */
static void realloc_of_freed_object_aborts(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (conf && strstr(conf, "secure"))
		SKIP("secure mode quarantines the object: its own message");
	CHECK(t_expect_abort(child_realloc_freed, (void *)(uintptr_t)40, "double free 0x"));
	CHECK(t_expect_abort(child_realloc_freed, (void *)(uintptr_t)40000, "double free 0x"));
	CHECK(t_expect_abort(child_realloc_freed, (void *)(uintptr_t)120000, "double free 0x"));
}

/* ---------------------------------------------------------------- out of memory */

/*
 * Run in a fresh process (this program re-executed) under RLIMIT_AS = 384 MiB,
 * so the allocator's own start-up reservations must fit too. For each size:
 * allocate until NULL (errno must be ENOMEM, nothing may crash or abort), check
 * that calloc/realloc/posix_memalign then fail cleanly and leave the old block
 * intact, free everything, and do it again: the second round must get as many
 * blocks as the first, within 1% (the memory really came back). Sizes go from small to large
 * and every size must get at least half the limit: memory freed by small blocks
 * must be usable by large ones (glibc: ~350 MiB at every size).
 */
#define OOM_LIMIT ((rlim_t)384 << 20)

static int oom_child(void)
{
	static const size_t sz[] = { 1000, 5000, 50000, 300000, 1000000 };
	size_t cap = OOM_LIMIT / 1000 + 1024;
	void **v = mmap(NULL, cap * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED) { printf("oom child: no room for the pointer array\n"); return 2; }
	int bad = 0;
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		size_t got[2] = { 0, 0 };
		for (int round = 0; round < 2; round++) {
			/* the second round on another CPU: what the first left idle on its
			 * CPU's lists (empty slabs) must be found there too */
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(round % (sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1), &set);
			sched_setaffinity(0, sizeof set, &set);
			size_t n = 0;
			for (;;) {
				errno = 0;
				char *p = malloc(sz[i]);
				if (!p) {
					if (errno != ENOMEM) { printf("  size %zu: malloc NULL with errno %d\n", sz[i], errno); bad++; }
					break;
				}
				memset(p, (int)n, 64);
				v[n++] = p;
				if (n == cap) { printf("  size %zu: never ran out (%zu blocks)\n", sz[i], n); bad++; break; }
			}
			got[round] = n;
			if (n) {
				/* at the limit, the other entry points fail cleanly too */
				errno = 0;
				void *c = calloc(1, sz[i] * 4);
				if (c) free(c); else if (errno != ENOMEM) { printf("  calloc errno %d\n", errno); bad++; }
				errno = 0;
				void *r = realloc(v[0], sz[i] * 4);
				if (r) v[0] = r;
				else if (errno != ENOMEM) { printf("  realloc errno %d\n", errno); bad++; }
				if (((unsigned char *)v[0])[63] != 0) { printf("  realloc at OOM lost data\n"); bad++; }
				void *pm = NULL;
				int rc = posix_memalign(&pm, 1 << 16, sz[i] * 4);
				if (rc == 0) free(pm); else if (rc != ENOMEM) { printf("  posix_memalign rc %d\n", rc); bad++; }
			}
			for (size_t k = 0; k < n; k++) free(v[k]);
		}
		printf("  size %zu: %zu then %zu blocks\n", sz[i], got[0], got[1]);
		/* every size gets at least half the limit, whatever sizes were freed before */
		if (got[0] * sz[i] < OOM_LIMIT / 2) {
			printf("  size %zu: only %zu blocks (%zu MiB) under a %llu MiB limit after the smaller sizes were freed\n",
			       sz[i], got[0], got[0] * sz[i] >> 20, (unsigned long long)(OOM_LIMIT >> 20));
			bad++;
		}
		/* everything was freed in between: the second round gets as many blocks as
		 * the first, give or take 1% (an allocator must not answer ENOMEM while
		 * it holds idle memory, e.g. cached mappings, that would fit) */
		size_t slack = got[0] / 100 > 2 ? got[0] / 100 : 2;
		if (got[1] + slack < got[0]) {
			printf("  size %zu: %zu blocks, then only %zu after freeing everything: memory did not come back\n",
			       sz[i], got[0], got[1]);
			bad++;
		}
	}
	/* small blocks still work at the end */
	void *p = malloc(100);
	if (!p) bad++;
	free(p);
	fflush(stdout);
	return bad ? 1 : 0;
}

static void enomem_under_rlimit_as(void)
{
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	fflush(stdout);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		alarm(200);   /* a hang guard: under a loaded machine this child takes 45 s */
		struct rlimit rl = { OOM_LIMIT, OOM_LIMIT };
		if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
		execl(self_exe, self_exe, "--oom-child", (char *)NULL);
		_exit(4);
	}
	close(pfd[1]);
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof buf - 1 && (r = read(pfd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
	buf[len] = 0;
	close(pfd[0]);
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "  OOM child (RLIMIT_AS %llu MiB): status %#x; its output:\n%s",
			(unsigned long long)(OOM_LIMIT >> 20), st, buf);
		if (WIFSIGNALED(st)) fprintf(stderr, "  (killed by signal %d)\n", WTERMSIG(st));
		t_failed_case = 1;
	}
}

/* glibc never starts threads of its own; with the default configuration neither
 * may buddyslab (a multi-threaded process cannot unshare(CLONE_NEWUSER), and
 * programs count their threads). Run after every other case in this program. */
static void no_hidden_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) SKIP("no /proc/self/status");
	char line[256];
	int threads = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &threads) == 1) break;
	fclose(f);
	if (threads != 1) {
		fprintf(stderr, "  /proc/self/status says Threads: %d\n", threads);
		t_failed_case = 1;
	}
}

/* A page-run or mmap-tier block freed twice: no longer "the start of a live block",
 * so the second free aborts (src/malloc.c documents this). Slab-tier double frees
 * are not asserted: the thread-cache fast path does not look. */
static void child_double_free(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	char *p = malloc(n);
	memset(p, 1, n);
	free(p);
	free(launder(p));
}

static void double_free_run_large_aborts(void)
{
	static const size_t sz[] = { 20000, 100000, 200000, 1 << 20, 3 << 20 };
	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++)
		if (!t_expect_abort(child_double_free, (void *)(uintptr_t)sz[i], "invalid pointer 0x")) {
			fprintf(stderr, "  double free of a %zu B block did not abort\n", sz[i]);
			t_failed_case = 1;
		}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--oom-child") == 0)
		return oom_child();
	if (argc > 1 && strcmp(argv[1], "--colour-child") == 0)
		return colour_child();
	if (argc > 1 && strcmp(argv[1], "--calloc-purge-child") == 0)
		return calloc_purge_scenario();
	self_exe = argv[0];
	T_RUN(malloc_zero);
	T_RUN(alignment_every_size_to_4096);
	T_RUN(alignment_sampled_to_70000);
	T_RUN(huge_sizes_enomem);
	T_RUN(posix_memalign_bad_alignment_einval);
	T_RUN(aligned_alloc_bad_alignment_einval);
	T_RUN(memalign_bad_alignment);
	T_RUN(aligned_all_tiers);
	T_RUN(huge_alignments);
	T_RUN(zero_size_every_alignment);
	T_RUN(valloc_pvalloc);
	T_RUN(calloc_zero_after_dirty_reuse);
	T_RUN(large_reuse_other_sizes);
	T_RUN(large_calloc_zero_patterns);
	T_RUN(large_alone_above_half_cap);
	T_RUN(calloc_zero_after_purge);
	T_RUN(realloc_keeps_contents);
	T_RUN(realloc_null_and_zero);
	T_RUN(realloc_large_steps);
	T_RUN(realloc_run_grows_in_place);
	T_RUN(realloc_large_grows_into_cached_rest);
	T_RUN(free_null_usable_null_errno);
	T_RUN(c23_free_sized);
	T_RUN(mallinfo2_tracks_usage);
	T_RUN(trim_mallopt);
	T_RUN(trim_returns_memory);
	T_RUN(malloc_stats_and_info);
	T_RUN(bsl_owns_contract);
	T_RUN(bsl_owns_freed_block);
	T_RUN(run_cache_for_a_runs_only_thread);
	T_RUN(colour_offsets_and_alignment);
	T_RUN(stats_allocated_exact);
	T_RUN(stats_invariants);
	T_RUN(random_ops_no_overlap);
	T_RUN(enomem_under_rlimit_as);
	T_RUN(invalid_free_aborts);
	T_RUN(invalid_realloc_aborts);
	T_RUN(realloc_of_freed_object_aborts);
	T_RUN(double_free_run_large_aborts);
	T_RUN(no_hidden_threads);
	return t_done();
}
