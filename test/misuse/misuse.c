/*
 * misuse.c - one heap misuse per run, for test/misuse.sh.
 *
 *   misuse CASE     do CASE's one misuse; if the program survives it, print a
 *                   one-word observation and exit 0
 *   misuse --list   the case names, one a line
 *
 * Built without buddyslab (-O0 -fno-builtin, no library): misuse.sh runs it
 * under glibc, preloaded with buddyslab, and preloaded with secure:1, and
 * compares the outcome with test/misuse/expect.tsv. A case name is KIND_TIER;
 * the tiers are one block size each:
 *   small   40 bytes        a slab object (kmalloc-48)
 *   medium  40000 bytes     a page run from the buddy zones (10 pages)
 *   large   1 MiB           an mmap'd block (above mmap_threshold, 128 KiB)
 * Observations: missed (the misuse went unnoticed), stale / clean (freed
 * data seen again or not), reused / fresh (the freed address handed out
 * again at once or not), ok (a correct use worked), na (not applicable here).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN 0x5a     /* written into a block before it is freed */
#define NEIGHBOURS 4     /* blocks allocated before an underflow's victim */
#define REFILLS 200      /* uaf_write: allocations after the write, per round */
#define ROUNDS  30       /* rounds of them: more frees than a quarantine holds (4096) */
#define TRIES 100        /* stale_new: allocations that may show the pattern */

typedef char *volatile vptr;   /* the compiler may not drop the misuse */

static void say(const char *word)
{
	puts(word);
	fflush(stdout);
}

/* ------------------------------------------------------------ overflows */

/* The bytes written differ from the first one there (a pad or canary byte):
 * an overflow that changes nothing is invisible to any check. */
static void overflow(size_t n, size_t len)
{
	vptr p = malloc(n);
	memset(p + n, (unsigned char)~p[n], len);        /* bytes n .. n+len-1 */
	free(p);
	say("missed");
}

/* A victim with NEIGHBOURS blocks of its size allocated before it, so that
 * the bytes before it belong to the heap, not to nothing; the victim is
 * freed first, then the neighbours. The last byte written differs from the
 * one that was there, as in overflow(). */
static void underflow(size_t n, size_t len)
{
	void *before[NEIGHBOURS];
	for (int i = 0; i < NEIGHBOURS; i++)
		before[i] = malloc(n);
	vptr p = malloc(n);
	memset(p - len, (unsigned char)~p[-1], len);      /* bytes -len .. -1 */
	free(p);
	for (int i = 0; i < NEIGHBOURS; i++)
		free(before[i]);
	say("missed");
}

/* ------------------------------------------------------- use after free */

static void uaf_write(size_t n)
{
	vptr p = malloc(n);
	free(p);
	memset(p + 16, 1, 8);
	static void *again[REFILLS];
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < REFILLS; i++)
			again[i] = malloc(n);
		for (int i = 0; i < REFILLS; i++)
			free(again[i]);
	}
	say("missed");
}

static void uaf_read(size_t n)
{
	vptr p = malloc(n);
	memset(p, PATTERN, n);
	free(p);
	say(p[24] == PATTERN ? "stale" : "clean");
}

/* Offset 24, not 0 or 8: free lists may keep their links in the first words. */
static void stale_new(size_t n)
{
	vptr p = malloc(n);
	memset(p, PATTERN, n);
	free(p);
	static char *again[TRIES];
	int k = 0;
	bool stale = false;
	while (k < TRIES && !stale) {
		again[k] = malloc(n);
		stale = ((volatile char *)again[k])[24] == PATTERN;
		k++;
	}
	while (k > 0)
		free(again[--k]);
	say(stale ? "stale" : "clean");
}

static void reuse(size_t n)
{
	vptr p = malloc(n);
	free(p);
	vptr q = malloc(n);
	say(q == p ? "reused" : "fresh");
	free(q);
}

/* ------------------------------------------------------------ bad frees */

static void double_free(size_t n)
{
	vptr p = malloc(n);
	free(p);
	free(p);
	say("missed");
}

/* realloc of a freed block to a size it could grow to in place */
static void realloc_freed(size_t n)
{
	vptr p = malloc(n);
	free(p);
	vptr q = realloc(p, n + 8);
	say(q == p ? "missed" : "moved");
}

static void invalid_free(size_t n)
{
	vptr p = malloc(n);
	free(p + 16);
	say("missed");
}

/* malloc_usable_size of a freed block: its old size (missed), or an abort */
static void usable_freed(size_t n)
{
	vptr p = malloc(n);
	free(p);
	size_t u = malloc_usable_size(p);
	(void)u;
	say("missed");
}

/* free_sized is C23 (glibc 2.36 lacks it): looked up, not linked. */
static void free_sized_wrong(size_t n)
{
	void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
	if (!fs) {
		say("na");
		return;
	}
	vptr p = malloc(n);
	fs(p, n + 4096);
	say("missed");
}

/* -------------------------------------------------------------- malloc(0) */

static void zero_write(size_t n)
{
	vptr p = malloc(0);
	p[0] = 1;
	say("missed");
}

static void zero_read(size_t n)
{
	vptr p = malloc(0);
	volatile char c = p[0];
	(void)c;
	say("missed");
}

static void zero_after_free(size_t n)
{
	vptr p = malloc(0);
	free(p);
	p[0] = 1;
	say("missed");
}

/* Correct use: two size-0 blocks are distinct, non-NULL, and free fine. */
static void zero_distinct(size_t n)
{
	vptr p = malloc(0), q = malloc(0);
	bool good = p && q && p != q;
	free(p);
	free(q);
	say(good ? "ok" : "bad");
}

/* ----------------------------------------------------------------- table */

static void overflow1(size_t n)   { overflow(n, 1); }
static void overflow32(size_t n)  { overflow(n, 32); }
static void underflow1(size_t n)  { underflow(n, 1); }
static void underflow32(size_t n) { underflow(n, 32); }

#define SMALL  40
#define MEDIUM 40000
#define LARGE  ((size_t)1 << 20)
#define TIERS(kind) \
	{ #kind "_small", kind, SMALL }, { #kind "_medium", kind, MEDIUM }, { #kind "_large", kind, LARGE }
#define UNTIERED(kind) { #kind, kind, 0 }

static const struct { const char *name; void (*fn)(size_t n); size_t n; } cases[] = {
	TIERS(overflow1), TIERS(overflow32), TIERS(underflow1), TIERS(underflow32),
	TIERS(uaf_write), TIERS(uaf_read), TIERS(stale_new), TIERS(reuse),
	TIERS(double_free), TIERS(realloc_freed), TIERS(invalid_free), TIERS(usable_freed),
	TIERS(free_sized_wrong),
	UNTIERED(zero_write), UNTIERED(zero_read), UNTIERED(zero_after_free), UNTIERED(zero_distinct),
};

int main(int argc, char **argv)
{
	size_t ncases = sizeof cases / sizeof cases[0];
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < ncases; i++)
			puts(cases[i].name);
		return 0;
	}
	for (size_t i = 0; argc == 2 && i < ncases; i++)
		if (!strcmp(argv[1], cases[i].name)) {
			cases[i].fn(cases[i].n);
			return 0;
		}
	fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
	return 2;
}
