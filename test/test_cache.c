/*
 * test_cache.c - named object caches (bsl_cache_*, issue 13).
 *
 * Linked against libbuddyslab.a. Covers: constructor and destructor counts
 * (ctor once per object of a slab, not per allocation; a working set that
 * empties its slabs keeps them and is not constructed again; dtor when the
 * slab goes back, at a purge, shrink and destroy); constructed state kept across reuse;
 * a failing ctor gives NULL + ENOMEM and the object is constructed again
 * later; alignment; bad arguments (size 0, huge size, bad align) rejected
 * with EINVAL; frees from other threads; thread exit flushing the thread's
 * bins; a fork child using a cache made by its parent; destroy with live
 * objects reported; slabinfo lines and the stats:1 report naming the cache;
 * misuse aborts in a child (free() or realloc() of a cache object,
 * bsl_cache_free of a malloc block, of another cache's object, of an
 * interior pointer, twice; a destroyed cache used); bsl_stats counting cache
 * objects; prof:1 sampling cache allocations and forgetting them at
 * bsl_cache_free (only the sampled objects' frees call the profiler);
 * bsl_owns of cache objects (live, freed, interior, never handed out);
 * another live thread's bin at destroy and shrink (not reported, given back
 * at that thread's next call, the destroy completed there); the table's
 * bound (32 caches) and slot reuse.
 * Secure fill, in children re-executed under secure:fill and secure:1: a
 * write after free into a cache object (its first word, or one in the middle)
 * caught by its checksum when it is handed out again (from the bin, after the
 * quarantine) or its slab goes back (shrink, destroy), naming the object and
 * the cache; a workload with a constructor (objects reused across threads,
 * threads exiting with full bins, shrink, purge, destroy) that keeps every
 * object's constructed state and raises no false report, then catches a
 * write after free at destroy.
 * Re-executed under secure:1 when run with no argument, then under
 * secure:fill (the bins' checked handouts without the quarantine): guard
 * pages; the quarantine delaying a freed object's reuse (it comes back
 * constructed, with what the program left in it) and a second free of a
 * waiting object; the canaries catching, in a child, a write past an object
 * (its pad or canary word), before one (the end of the slot before it, or
 * for a slab's first slot the slab's front word), and past one after its free
 * (found as it leaves the quarantine), naming the object and the cache.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buddyslab.h"
#include "t.h"

struct obj {
	uint64_t magic;
	uint64_t id;
	char payload[176];     /* 192 bytes */
};
#define MAGIC 0x0b7ec7ed0b7ec7edull

static long nctor, ndtor;
static int fail_after = -1;   /* ctor fails when nctor reaches it */

static int obj_ctor(void *p, void *arg, int flags)
{
	struct obj *o = p;
	if (fail_after >= 0 && __atomic_load_n(&nctor, __ATOMIC_RELAXED) >= fail_after)
		return -1;
	o->magic = MAGIC;
	o->id = (uint64_t)__atomic_add_fetch(&nctor, 1, __ATOMIC_RELAXED);
	memset(o->payload, 0x5a, sizeof o->payload);
	CHECK(arg == (void *)&nctor);
	return 0;
}

static void obj_dtor(void *p, void *arg)
{
	struct obj *o = p;
	CHECK(o->magic == MAGIC);
	o->magic = 0;
	__atomic_add_fetch(&ndtor, 1, __ATOMIC_RELAXED);
}

/* Is secure mode's feature on (secure:1, the re-executed pass, has them all:
 * secure.h), as BUDDYSLAB_CONF says? */
static bool secure_has(const char *feature)
{
	const char *conf = getenv("BUDDYSLAB_CONF"), *sec = conf ? strstr(conf, "secure:") : NULL;
	return sec && (strncmp(sec, "secure:1", 8) == 0 || strstr(sec, feature));
}

/* Allocate and free other objects of c until a comes back (a was freed):
 * how many allocations that took (limit: a did not come back). With the
 * quarantine, a freed object waits there while later frees queue behind it. */
static int allocs_until(bsl_cache_t *c, void *a, int limit)
{
	int n = 0;
	for (void *x; n < limit; n++) {
		if ((x = bsl_cache_alloc(c, 0)) == a)
			break;
		bsl_cache_free(c, x);
	}
	return n;
}

static bsl_cache_t *make(const char *name)
{
	nctor = ndtor = 0;
	fail_after = -1;
	return bsl_cache_create(name, sizeof(struct obj), 0, obj_ctor, obj_dtor, &nctor);
}

/* Run fn with stderr (fd 2) read back into buf. */
static void capture_fd(int fd, void (*fn)(void *), void *arg, char *buf, size_t len)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return;
	int saved = dup(fd);
	dup2(pipefd[1], fd);
	close(pipefd[1]);
	fn(arg);
	dup2(saved, fd);
	close(saved);
	ssize_t n = read(pipefd[0], buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	close(pipefd[0]);
}

static void do_slabinfo(void *unused) { bsl_slabinfo(1); }

/* The slabinfo line of the cache name: its objects per slab (0: no line),
 * its slabs and its objects out of the slab layer (active). */
static unsigned long cache_geometry(const char *name, unsigned long *nslabs, unsigned long *active)
{
	char buf[16384], key[64];
	fflush(stdout);
	capture_fd(1, do_slabinfo, NULL, buf, sizeof buf);
	snprintf(key, sizeof key, "\n%s ", name);
	char *line = strstr(buf, key);
	unsigned long total, size, perslab = 0, pages;
	if (!line || sscanf(line + strlen(key), "%lu %lu %lu %lu %lu %lu", active, &total, &size,
			    &perslab, &pages, nslabs) != 6)
		return 0;
	return perslab;
}

/* Pin the calling thread to the CPU it runs on, so that one CPU's slab lists
 * serve it (saved: the mask to restore); the CPUs it may still run on. */
static int pin_here(cpu_set_t *saved)
{
	cpu_set_t one;
	if (sched_getaffinity(0, sizeof *saved, saved) != 0)
		return CPU_SETSIZE;
	CPU_ZERO(&one);
	int cpu = sched_getcpu();
	if (cpu >= 0)
		CPU_SET(cpu, &one);
	if (cpu < 0 || sched_setaffinity(0, sizeof one, &one) != 0)
		return CPU_COUNT(saved);
	return 1;
}

#define WORKSET 1000
#define BIN_OBJS 64           /* a thread's bin of a cache holds at most this (cache.c) */
#define QUAR_OBJS 256         /* a cache's quarantine, at most (cachecheck.c) */

/* A working set allocated and freed 11 times. The constructed objects are
 * slots handed out of the slabs the cache owns, and an empty slab stays on
 * its CPU's list while the CPU's empty slabs fit SLAB_KEEP_BYTES (4 MiB; here
 * 56 slabs of a page), so the rounds after the first reuse them and construct
 * nothing. Bound: a CPU makes a new slab only when every slab it has is full,
 * so with at most W objects out of the slab layer at once (the working set,
 * the bin, the quarantine) it owns at most W / perslab + 1 slabs, and never
 * more than (W / perslab + 1) * perslab slots are constructed, per CPU the
 * thread ran on. Before empty named slabs were kept (a free that emptied one
 * beyond the one-slab reserve destroyed it) this loop ran 9726 constructors. */
static void ctor_dtor_counts(void)
{
	cpu_set_t saved;
	int ncpus = pin_here(&saved);
	bsl_cache_t *c = make("test-counts");
	REQUIRE(c);
	struct obj *o[WORKSET];
	for (int i = 0; i < WORKSET; i++) {
		o[i] = bsl_cache_alloc(c, 0);
		REQUIRE(o[i]);
		CHECK(o[i]->magic == MAGIC);
	}
	long built = nctor;
	CHECK(built >= WORKSET);
	for (int i = 0; i < WORKSET; i++)
		bsl_cache_free(c, o[i]);
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < WORKSET; i++)
			o[i] = bsl_cache_alloc(c, 0);
		for (int i = 0; i < WORKSET; i++)
			bsl_cache_free(c, o[i]);
	}
	unsigned long nslabs = 0, active, perslab = cache_geometry("test-counts", &nslabs, &active);
	REQUIRE(perslab > 0);
	long w = WORKSET + BIN_OBJS + (secure_has("quarantine") ? QUAR_OBJS : 0);
	long bound = ncpus * (long)(w / (long)perslab + 1) * (long)perslab;
	CHECK(nctor - ndtor <= (long)(nslabs * perslab));   /* only slots of slabs it owns */
	CHECK(nctor - ndtor <= bound);
	/* every round after the first constructed nothing new: the constructors
	 * are the slots of the slabs held, not one per allocation (11000). A
	 * decay tick takes back only slabs that went unneeded for a whole tick
	 * interval (decay_ms / 4), and every round needs them all again at once. */
	CHECK(nctor <= bound);
	bsl_cache_destroy(c);
	CHECK(ndtor == nctor);             /* every constructed object destructed */
	fprintf(stderr, "  ctor %ld dtor %ld for 11000 allocations (bound %ld, %lu per slab)\n",
		nctor, ndtor, bound, perslab);
	sched_setaffinity(0, sizeof saved, &saved);
}

/* The kept empty slabs go back at a purge (malloc_trim: the decay tick's
 * function with every slab stale), destructors run, but for each CPU's
 * reserve (at most 4 slabs, in secure guard mode); bsl_cache_shrink then
 * returns the reserve too. The objects are freed by a thread that exits, so
 * that no bin holds any. */
static void *workset_thread(void *cp)
{
	bsl_cache_t *c = cp;
	static void *o[WORKSET];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < WORKSET; i++)
			o[i] = bsl_cache_alloc(c, 0);
		for (int i = 0; i < WORKSET; i++)
			bsl_cache_free(c, o[i]);
	}
	return NULL;
}

static void kept_slabs_purged(void)
{
	cpu_set_t saved;
	int ncpus = pin_here(&saved);    /* the thread inherits it */
	bsl_cache_t *c = make("test-purge");
	REQUIRE(c);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, workset_thread, c) == 0);
	pthread_join(t, NULL);
	unsigned long nslabs = 0, active, perslab = cache_geometry("test-purge", &nslabs, &active);
	REQUIRE(perslab > 0);
	CHECK(nctor >= WORKSET && nctor - ndtor >= WORKSET);     /* kept, constructed */
	malloc_trim(0);
	cache_geometry("test-purge", &nslabs, &active);
	/* left: the reserves and the slabs of objects still out (none, or those
	 * waiting in secure mode's quarantine) */
	CHECK(nslabs <= 4ul * (unsigned long)ncpus + active);
	CHECK(nctor - ndtor <= (long)(nslabs * perslab));
	bsl_cache_shrink(c);      /* drains the quarantine too */
	cache_geometry("test-purge", &nslabs, &active);
	CHECK(nslabs == 0 && ndtor == nctor);
	bsl_cache_destroy(c);
	sched_setaffinity(0, sizeof saved, &saved);
}

static void constructed_state_kept(void)
{
	bsl_cache_t *c = make("test-state");
	REQUIRE(c);
	struct obj *a = bsl_cache_alloc(c, 0);
	REQUIRE(a);
	uint64_t id = a->id;
	strcpy(a->payload, "kept");    /* the program's changes stay, as with libumem */
	bsl_cache_free(c, a);
	struct obj *b = a;
	if (secure_has("quarantine"))       /* a waits in the quarantine first */
		CHECK(allocs_until(c, a, 100000) < 100000);
	else
		b = bsl_cache_alloc(c, 0);
	CHECK(b == a);
	CHECK(b->magic == MAGIC && b->id == id && strcmp(b->payload, "kept") == 0);
	bsl_cache_free(c, b);
	bsl_cache_shrink(c);             /* the bin and the empty slab back: dtor runs */
	CHECK(ndtor == nctor && nctor > 0);
	struct obj *d = bsl_cache_alloc(c, 0);   /* a new slab, constructed again */
	CHECK(d && d->magic == MAGIC && strcmp(d->payload, "kept") != 0);
	bsl_cache_free(c, d);
	bsl_cache_destroy(c);
}

static void ctor_failure_enomem(void)
{
	bsl_cache_t *c = make("test-fail");
	REQUIRE(c);
	fail_after = 0;
	errno = 0;
	CHECK(bsl_cache_alloc(c, 0) == NULL && errno == ENOMEM);
	fail_after = -1;
	struct obj *o = bsl_cache_alloc(c, 0);      /* constructed this time */
	REQUIRE(o);
	CHECK(o->magic == MAGIC);
	bsl_cache_free(c, o);
	bsl_cache_destroy(c);
	CHECK(ndtor == nctor);
}

static void alignment_and_args(void)
{
	static const size_t aligns[] = { 0, 8, 16, 32, 64, 128, 256, 512, 4096 };
	for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
		bsl_cache_t *c = bsl_cache_create("test-align", 100, aligns[i], NULL, NULL, NULL);
		REQUIRE(c);
		size_t a = aligns[i] ? aligns[i] : 16;
		void *p[50];
		for (int k = 0; k < 50; k++) {
			p[k] = bsl_cache_alloc(c, 0);
			REQUIRE(p[k]);
			CHECK((uintptr_t)p[k] % a == 0);
			memset(p[k], k, 100);
		}
		for (int k = 0; k < 50; k++)
			bsl_cache_free(c, p[k]);
		bsl_cache_destroy(c);
	}
	errno = 0;
	CHECK(bsl_cache_create("zero", 0, 0, NULL, NULL, NULL) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(bsl_cache_create("huge", (size_t)1 << 40, 0, NULL, NULL, NULL) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(bsl_cache_create("huge", 16385, 0, NULL, NULL, NULL) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(bsl_cache_create("align", 64, 24, NULL, NULL, NULL) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(bsl_cache_create("align", 64, 8192, NULL, NULL, NULL) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(bsl_cache_create(NULL, 64, 0, NULL, NULL, NULL) == NULL && errno == EINVAL);
	bsl_cache_t *big = bsl_cache_create("test-16k", 16384, 0, NULL, NULL, NULL);
	REQUIRE(big);
	void *p = bsl_cache_alloc(big, 0);
	CHECK(p != NULL);
	memset(p, 1, 16384);
	bsl_cache_free(big, p);
	bsl_cache_destroy(big);
}

/* Is the page at addr mapped PROT_NONE (a guard)? */
static int page_is_guard(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], perms[8];
	unsigned long lo, hi;
	int guard = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && addr >= lo && addr < hi)
			guard = strcmp(perms, "---p") == 0;
	if (f)
		fclose(f);
	return guard;
}

static int cmp_uintptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* secure:1 (the re-executed run): a cache's slab ends in a guard page. */
static void secure_guard_page(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	if (!conf || !strstr(conf, "secure:1"))
		SKIP("runs in the secure:1 pass");
	bsl_cache_t *c = bsl_cache_create("test-guard", 192, 0, NULL, NULL, NULL);
	REQUIRE(c);
	/* Enough objects to fill the slab of the lowest many times over, in any
	 * order (shuffle, the thread's bin): the first page above the lowest
	 * object that holds none of them is the end of that slab, its guard (a
	 * page of 18 slots all parked in the thread's bin would end the walk early,
	 * which the shuffled order makes vanishingly rare). */
	enum { N = 1000 };
	static uintptr_t obj[N];
	for (int i = 0; i < N; i++)
		REQUIRE((obj[i] = (uintptr_t)bsl_cache_alloc(c, 0)));
	qsort(obj, N, sizeof obj[0], cmp_uintptr);
	uintptr_t first = obj[0] & ~(uintptr_t)4095, guard = first;
	for (int i = 0; i < N && (obj[i] & ~(uintptr_t)4095) <= guard + 4096; i++)
		guard = obj[i] & ~(uintptr_t)4095;
	guard += 4096;
	CHECK(page_is_guard(guard));
	CHECK(!page_is_guard(first));
	/* the cache and its objects are left as they are (this pass ends soon) */
}

/* secure:1: a freed object is not reused at once: it waits in its cache's
 * quarantine while at least 16 later frees queue behind it, then comes back
 * in its constructed state with what the program left in it. */
static void secure_quarantine_delays_reuse(void)
{
	if (!secure_has("quarantine"))
		SKIP("runs in the secure:1 pass");
	bsl_cache_t *c = make("test-quarantine");
	REQUIRE(c);
	struct obj *a = bsl_cache_alloc(c, 0);
	REQUIRE(a);
	strcpy(a->payload, "waited");
	bsl_cache_free(c, a);
	CHECK(bsl_owns(a) == 0);               /* freed, though in no bin or slab list */
	int n = allocs_until(c, a, 100000);
	fprintf(stderr, "  the freed object came back after %d allocations\n", n);
	CHECK(n >= 16 && n < 100000);
	CHECK(a->magic == MAGIC && strcmp(a->payload, "waited") == 0);
	bsl_cache_free(c, a);
	bsl_cache_destroy(c);                  /* the quarantine drained: nothing reported */
	CHECK(ndtor == nctor);
}

/* secure:1 misuse (each in a child, on objects the parent allocated, so the
 * expected message can name them): a write past an object (into the pad of a
 * 100-byte object, or the canary after a 192-byte one), a write before one,
 * a write past an object after its free (found as it leaves the quarantine),
 * a second free of an object waiting in the quarantine. */
static bsl_cache_t *cc192, *cc100;
static char *cobj[4];

static void over_192(void *unused) { cobj[0][192] ^= 1; bsl_cache_free(cc192, cobj[0]); }
static void over_pad(void *unused) { cobj[1][100] ^= 1; bsl_cache_free(cc100, cobj[1]); }
static void under_192(void *unused) { cobj[2][-1] ^= 1; bsl_cache_free(cc192, cobj[2]); }
static void over_after_free(void *unused)
{
	bsl_cache_free(cc192, cobj[3]);
	cobj[3][195] ^= 0x40;
	allocs_until(cc192, cobj[3], 100000);
}
static void free_waiting_twice(void *unused)
{
	bsl_cache_free(cc192, cobj[3]);
	bsl_cache_free(cc192, cobj[3]);
}

static void secure_canary_aborts(void)
{
	if (!secure_has("canary") || !secure_has("quarantine"))
		SKIP("runs in the secure:1 pass");
	cc192 = bsl_cache_create("canary-192", 192, 0, NULL, NULL, NULL);
	cc100 = bsl_cache_create("canary-100", 100, 0, NULL, NULL, NULL);
	REQUIRE(cc192 && cc100);
	char *v[3];
	for (int i = 0; i < 3; i++)
		REQUIRE((v[i] = bsl_cache_alloc(cc192, 0)));
	cobj[0] = v[0];
	cobj[2] = v[1] > v[2] ? v[1] : v[2];    /* not a slab's first slot: one is before it */
	cobj[1] = bsl_cache_alloc(cc100, 0);
	cobj[3] = bsl_cache_alloc(cc192, 0);
	REQUIRE(cobj[1] && cobj[3]);
	char msg[256];
	snprintf(msg, sizeof msg, "heap overflow: the bytes after the 192-byte object %p of the "
		 "cache \"canary-192\"", (void *)cobj[0]);
	CHECK(t_expect_abort(over_192, NULL, msg));
	snprintf(msg, sizeof msg, "the 100-byte object %p of the cache \"canary-100\"",
		 (void *)cobj[1]);
	CHECK(t_expect_abort(over_pad, NULL, msg));
	snprintf(msg, sizeof msg, "heap underflow: the canary before the object %p of the cache "
		 "\"canary-192\"", (void *)cobj[2]);
	CHECK(t_expect_abort(under_192, NULL, msg));
	snprintf(msg, sizeof msg, "object %p of the cache \"canary-192\" (its pad and canary) are "
		 "overwritten (found as the object left the quarantine)", (void *)cobj[3]);
	CHECK(t_expect_abort(over_after_free, NULL, msg));
	snprintf(msg, sizeof msg, "double free %p (bsl_cache_free of the cache \"canary-192\"",
		 (void *)cobj[3]);
	CHECK(t_expect_abort(free_waiting_twice, NULL, msg));
	/* the objects written up to their last byte free cleanly */
	memset(cobj[0], 0xff, 192);
	memset(cobj[1], 0xff, 100);
	for (int i = 0; i < 3; i++)
		bsl_cache_free(cc192, v[i]);
	bsl_cache_free(cc192, cobj[3]);
	bsl_cache_free(cc100, cobj[1]);
	bsl_cache_destroy(cc192);
	bsl_cache_destroy(cc100);
}

/* secure:1: the first slot of every slab has an underflow check too: it
 * starts the cache's alignment (16 bytes by default, here also 64) into the
 * slab, after a canary word of its own. The first object of a new cache is the first slot
 * of a new slab; a write just before it (into the page before the slab, on
 * the old layout) is caught at its bsl_cache_free, or as it leaves the
 * quarantine when written after the free. Also (secure:1's geometry): a
 * cache whose slots fill a guarded slab exactly (208 bytes: 256-byte slots,
 * 112 to the 7 usable pages) loses its last slot to the front, every slot
 * writable up to its end and its canaries clear of the guard page. */
static char *first_obj[2];
static bsl_cache_t *first_cache[2];

static void under_first(void *i)
{
	int k = (int)(intptr_t)i;
	first_obj[k][-1] ^= 1;
	bsl_cache_free(first_cache[k], first_obj[k]);
}

static void under_first_after_free(void *i)
{
	int k = (int)(intptr_t)i;
	bsl_cache_free(first_cache[k], first_obj[k]);
	first_obj[k][-8] ^= 0x40;
	allocs_until(first_cache[k], first_obj[k], 100000);
}

static void secure_first_slot_underflow(void)
{
	if (!secure_has("canary") || !secure_has("quarantine"))
		SKIP("runs in the secure:1 pass");
	static const char *names[2] = { "first-slot-16", "first-slot-64" };
	static const size_t aligns[2] = { 0, 64 };
	for (int k = 0; k < 2; k++) {
		first_cache[k] = bsl_cache_create(names[k], 192, aligns[k], NULL, NULL, NULL);
		REQUIRE(first_cache[k]);
		first_obj[k] = bsl_cache_alloc(first_cache[k], 0);   /* a new slab's first slot */
		REQUIRE(first_obj[k]);
		CHECK((uintptr_t)first_obj[k] % 4096 == (aligns[k] ? aligns[k] : 16));
		char msg[256];
		snprintf(msg, sizeof msg, "heap underflow: the canary before the object %p of the "
			 "cache \"%s\" (its slab's front word, at %p) is overwritten (found at "
			 "bsl_cache_free)", (void *)first_obj[k], names[k], (void *)(first_obj[k] - 8));
		CHECK(t_expect_abort(under_first, (void *)(intptr_t)k, msg));
		snprintf(msg, sizeof msg, "heap underflow: the canary before the object %p of the "
			 "cache \"%s\" (its slab's front word", (void *)first_obj[k], names[k]);
		CHECK(t_expect_abort(under_first_after_free, (void *)(intptr_t)k, msg));
		memset(first_obj[k], 0xff, 192);       /* up to its last byte: frees cleanly */
		bsl_cache_free(first_cache[k], first_obj[k]);
		bsl_cache_destroy(first_cache[k]);
	}
	if (!secure_has("guard") || !secure_has("fill"))
		return;          /* the geometry below is secure:1's */
	bsl_cache_t *c = bsl_cache_create("first-slot-exact", 208, 0, NULL, NULL, NULL);
	REQUIRE(c);
	enum { N = 1000 };
	static char *v[N];
	for (int i = 0; i < N; i++) {
		REQUIRE((v[i] = bsl_cache_alloc(c, 0)));
		memset(v[i], 0xa5, 208);
	}
	for (int i = 0; i < N; i++)
		bsl_cache_free(c, v[i]);
	unsigned long nslabs = 0, active;
	CHECK(cache_geometry("first-slot-exact", &nslabs, &active) == 111);
	bsl_cache_destroy(c);
}

/* ------------------------------------------------------------ threads */

static bsl_cache_t *shared;
static struct obj *handoff[4000];

static void *producer(void *arg)
{
	for (int i = 0; i < 4000; i++)
		handoff[i] = bsl_cache_alloc(shared, 0);
	return arg;
}

static void *consumer(void *arg)
{
	for (int i = 0; i < 4000; i++) {
		CHECK(handoff[i] && handoff[i]->magic == MAGIC);
		bsl_cache_free(shared, handoff[i]);
	}
	return arg;
}

static void *churner(void *arg)
{
	struct obj *o[300];
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 300; i++) {
			o[i] = bsl_cache_alloc(shared, 0);
			if (o[i])
				CHECK(o[i]->magic == MAGIC);
		}
		for (int i = 0; i < 300; i++)
			bsl_cache_free(shared, o[i]);
	}
	return arg;     /* exits with objects in its bin: the exit flush returns them */
}

static void cross_thread_and_exit(void)
{
	shared = make("test-threads");
	REQUIRE(shared);
	pthread_t t[4];
	for (int round = 0; round < 3; round++) {
		pthread_create(&t[0], NULL, producer, NULL);
		pthread_join(t[0], NULL);
		pthread_create(&t[1], NULL, consumer, NULL);
		pthread_join(t[1], NULL);
	}
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, churner, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* every thread has exited: their bins were flushed, nothing is live
	 * (destroy would report live objects otherwise) */
	bsl_cache_destroy(shared);
	CHECK(ndtor == nctor);
}

static void fork_child_uses_cache(void)
{
	bsl_cache_t *c = make("test-fork");
	REQUIRE(c);
	struct obj *o = bsl_cache_alloc(c, 0);
	REQUIRE(o);
	pid_t pid = fork();
	if (pid == 0) {
		int ok = o->magic == MAGIC;
		struct obj *v[500];
		for (int i = 0; i < 500; i++)
			ok &= (v[i] = bsl_cache_alloc(c, 0)) != NULL && v[i]->magic == MAGIC;
		for (int i = 0; i < 500; i++)
			bsl_cache_free(c, v[i]);
		bsl_cache_free(c, o);
		bsl_cache_destroy(c);
		_exit(ok && ndtor == nctor ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	bsl_cache_free(c, o);
	bsl_cache_destroy(c);
}

/* ------------------------------------------------------------ reports */

static void do_destroy(void *c) { bsl_cache_destroy(c); }

/* The child's part (re-executed: warnings go to the stderr of start-up). */
static void leaky_child(void)
{
	bsl_cache_t *c = make("test-leaky");
	for (int i = 0; i < 3; i++)
		(void)bsl_cache_alloc(c, 0);
	bsl_cache_destroy(c);
}

/* Re-execute this program as `test_cache mode` with BUDDYSLAB_CONF=conf
 * (NULL: none), its stderr (the stderr of its start-up) read into buf;
 * returns its wait status. */
static int run_child(const char *mode, const char *conf, char *buf, size_t len)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		if (conf)
			setenv("BUDDYSLAB_CONF", conf, 1);
		else
			unsetenv("BUDDYSLAB_CONF");
		execl("/proc/self/exe", "test_cache", mode, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	size_t got = 0;
	ssize_t r;
	while (got < len - 1 && (r = read(pipefd[0], buf + got, len - 1 - got)) > 0)
		got += (size_t)r;
	buf[got] = 0;
	close(pipefd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

static void destroy_with_live_objects_reported(void)
{
	char buf[4096];
	int status = run_child("leaky", NULL, buf, sizeof buf);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);     /* reported, not aborted */
	CHECK(strstr(buf, "buddyslab: warning: bsl_cache_destroy(): the cache \"test-leaky\" "
		      "still has 3 live objects") != NULL);
	if (!strstr(buf, "test-leaky"))
		fprintf(stderr, "  got: %s\n", buf);
}

/* stats:1: the report at exit lists the cache by name (child: "report"). */
static int report_child(void)
{
	bsl_cache_t *c = bsl_cache_create("report-objs", 100, 64, NULL, NULL, NULL);
	return c && bsl_cache_alloc(c, 0) ? 0 : 1;    /* left live: in the report */
}

static void stats_report_names_cache(void)
{
	char buf[16384];
	int status = run_child("report", "stats:1", buf, sizeof buf);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* 100 bytes aligned to 64: slots of 128 bytes, 32 per page */
	CHECK(strstr(buf, "\nreport-objs               1         32    100    32    1        1\n") != NULL);
}

static void slabinfo_names_cache(void)
{
	bsl_cache_t *c = make("my-objects");
	REQUIRE(c);
	void *p[10];
	for (int i = 0; i < 10; i++)
		p[i] = bsl_cache_alloc(c, 0);
	char buf[16384];
	fflush(stdout);
	capture_fd(1, do_slabinfo, NULL, buf, sizeof buf);
	char *line = strstr(buf, "\nmy-objects ");
	CHECK(line != NULL && strstr(buf, "kmalloc-192") != NULL);
	if (line) {
		unsigned long active = 0, total = 0, size = 0;
		CHECK(sscanf(line + 1, "my-objects %lu %lu %lu", &active, &total, &size) == 3);
		CHECK(active >= 10 && total >= active && size == sizeof(struct obj));
	}
	struct bsl_stats s;
	bsl_stats(&s);
	CHECK(s.allocated >= 10 * sizeof(struct obj) && s.nmalloc_slab >= 10);
	for (int i = 0; i < 10; i++)
		bsl_cache_free(c, p[i]);
	bsl_cache_destroy(c);
	capture_fd(1, do_slabinfo, NULL, buf, sizeof buf);
	CHECK(strstr(buf, "my-objects") == NULL);    /* destroyed: no line */
}

/* prof:1 (re-executed child): cache allocations are sampled, frees forget them.
 * The Makefile links this test with --wrap=prof_forget: the library's calls
 * of it (each takes the profiler's lock) are counted here. */
void __real_prof_forget(const void *p, const void *q);
void __wrap_prof_forget(const void *p, const void *q);
static long nforget;
void __wrap_prof_forget(const void *p, const void *q)
{
	__atomic_add_fetch(&nforget, 1, __ATOMIC_RELAXED);
	__real_prof_forget(p, q);
}

/* The live samples and their bytes in the header of the heap profile at path. */
static long heap_live(const char *path, long *nsamples)
{
	FILE *f = fopen(path, "r");
	long n = -1, bytes = -1;
	if (f && fscanf(f, "heap profile: %ld: %ld", &n, &bytes) != 2)
		bytes = -1;
	if (f)
		fclose(f);
	if (nsamples)
		*nsamples = n;
	return bytes;
}

static int prof_child(void)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/test_cache.%d.heap", (int)getpid());
	bsl_cache_t *c = bsl_cache_create("prof-objs", 192, 0, NULL, NULL, NULL);
	static void *v[20000];
	for (int i = 0; i < 20000; i++)
		v[i] = bsl_cache_alloc(c, 0);
	long nsamples = -1, live = bsl_prof_dump(path) == 0 ? heap_live(path, &nsamples) : -1;
	long forgets = __atomic_load_n(&nforget, __ATOMIC_RELAXED);
	for (int i = 0; i < 20000; i++)
		bsl_cache_free(c, v[i]);
	forgets = __atomic_load_n(&nforget, __ATOMIC_RELAXED) - forgets;
	long after = bsl_prof_dump(path) == 0 ? heap_live(path, NULL) : -1;
	unlink(path);
	bsl_cache_destroy(c);
	fprintf(stderr, "  sampled live bytes %ld (%ld samples), after the frees %ld; "
		"%ld of 20000 frees asked the profiler\n", live, nsamples, after, forgets);
	/* 3.84 MB live, a sample every 4 KiB on average: about 940 samples of 192
	 * bytes in the header (unscaled), well within 2x; only the sampled
	 * objects' frees take the profiler's lock */
	long expect = 20000L * 192 / 4096 * 192;
	return live > expect / 2 && live < expect * 2 && after == 0 && forgets == nsamples ? 0 : 1;
}

static void prof_samples_cache_objects(void)
{
	char buf[4096];
	int status = run_child("prof", "prof:1,prof_sample:4096", buf, sizeof buf);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fputs(buf, stderr);
}

/* ------------------------------------------------------------ bsl_owns */

static void *free_in_thread(void *o)
{
	bsl_cache_free(shared, o);
	return NULL;     /* exits: its bin goes back to the slab */
}

/* bsl_owns: 1 for a live cache object, 0 once freed (in this thread's bin, on
 * its slab's free list, freed by a thread that has exited), 0 for a pointer
 * into an object or its trailer and for a slot never handed out. */
static void owns_cache_objects(void)
{
	shared = make("test-owns");
	REQUIRE(shared);
	struct obj *a = bsl_cache_alloc(shared, 0), *b = bsl_cache_alloc(shared, 0);
	struct obj *c = bsl_cache_alloc(shared, 0);
	REQUIRE(a && b && c);
	CHECK(bsl_owns(a) == 1 && bsl_owns(b) == 1 && bsl_owns(c) == 1);
	CHECK(bsl_owns((char *)a + 8) == 0);
	CHECK(bsl_owns((char *)a + sizeof(struct obj)) == 0);    /* a's trailer */
	bsl_cache_free(shared, a);       /* parked in this thread's bin */
	CHECK(bsl_owns(a) == 0 && bsl_owns(b) == 1);
	bsl_cache_shrink(shared);        /* the bin back: a on its slab's free list */
	CHECK(bsl_owns(a) == 0 && bsl_owns(b) == 1);
	pthread_t t;
	pthread_create(&t, NULL, free_in_thread, b);
	pthread_join(t, NULL);
	CHECK(bsl_owns(b) == 0 && bsl_owns(c) == 1);
	struct obj *d = bsl_cache_alloc(shared, 0);     /* a slot again: live */
	REQUIRE(d);
	CHECK(bsl_owns(d) == 1);
	/* when a, b, c are a fresh slab's first slots (tcache:0), the slot after
	 * c (224 bytes: 192, the trailer, 16-byte alignment; 240 under secure:1,
	 * with the two canary words) was never handed out */
	size_t slot = secure_has("canary") ? 240 : 224;
	if ((char *)c == (char *)a + 2 * slot)
		CHECK(bsl_owns((char *)c + slot) == 0);
	bsl_cache_free(shared, c);
	bsl_cache_free(shared, d);
	CHECK(bsl_owns(c) == 0 && bsl_owns(d) == 0);
	void *m = malloc(192);
	CHECK(bsl_owns(m) == 1);
	free(m);
	bsl_cache_destroy(shared);
}

/* ------------------------------------------- other threads' bins (stale) */

struct counts { long ctor, dtor; };

static int cnt_ctor(void *p, void *arg, int flags)
{
	((struct obj *)p)->magic = MAGIC;
	__atomic_add_fetch(&((struct counts *)arg)->ctor, 1, __ATOMIC_RELAXED);
	return 0;
}

static void cnt_dtor(void *p, void *arg)
{
	CHECK(((struct obj *)p)->magic == MAGIC);
	__atomic_add_fetch(&((struct counts *)arg)->dtor, 1, __ATOMIC_RELAXED);
}

/* Thread B: runs a job on the cache it is given, then waits, alive. */
static sem_t b_go, b_done;
static bsl_cache_t *b_cache;      /* NULL: quit */

static void *b_thread(void *arg)
{
	struct obj *o[300];
	for (;;) {
		sem_wait(&b_go);
		if (!b_cache)
			return arg;      /* exits: its bins go back */
		for (int round = 0; round < 3; round++) {
			for (int i = 0; i < 300; i++)
				CHECK((o[i] = bsl_cache_alloc(b_cache, 0)) && o[i]->magic == MAGIC);
			for (int i = 0; i < 300; i++)
				bsl_cache_free(b_cache, o[i]);
		}
		sem_post(&b_done);     /* its bin of b_cache holds objects now */
	}
}

static pthread_t b_tid;

/* B runs its job on c and waits again; c NULL: B exits (joined). */
static void b_run(void *c)
{
	b_cache = c;
	sem_post(&b_go);
	if (c)
		sem_wait(&b_done);
	else
		pthread_join(b_tid, NULL);
}

/* The child's part ("bins": warnings go to the stderr of its start-up, the
 * parent's pipe). B parks objects in its bin and stays alive; main destroys
 * or shrinks the cache; B's next call of any cache gives the stale bin back
 * (the destroy then completes: every object destructed). 0: all went well. */
static int bins_child(void)
{
	static struct counts k1, k2, k3;
	sem_init(&b_go, 0, 0);
	sem_init(&b_done, 0, 0);
	pthread_create(&b_tid, NULL, b_thread, NULL);
	bsl_cache_t *c1 = bsl_cache_create("parked-1", 192, 0, cnt_ctor, cnt_dtor, &k1);
	if (!c1)
		return 1;
	b_run(c1);
	bsl_cache_destroy(c1);     /* B's bin holds objects of c1: not live */
	fputs("== c1 destroyed\n", stderr);
	bsl_cache_t *c2 = bsl_cache_create("parked-2", 192, 0, cnt_ctor, cnt_dtor, &k2);
	bsl_cache_t *c3 = bsl_cache_create("parked-3", 192, 0, cnt_ctor, cnt_dtor, &k3);
	if (!c2 || !c3)
		return 1;
	b_run(c2);       /* its first call flushes its bin of c1: c1's destroy completes */
	CHECK(k1.ctor >= 300 && k1.dtor == k1.ctor);
	bsl_cache_shrink(c2);       /* B's bin of c2 is stale now */
	b_run(c3);                  /* and given back at B's first call (of c3) */
	bsl_cache_shrink(c2);       /* every slab of c2 is empty: all back */
	CHECK(k2.ctor >= 300 && k2.dtor == k2.ctor);
	bsl_cache_destroy(c2);
	struct obj *held = bsl_cache_alloc(c3, 0);      /* really live at destroy */
	if (!held || held->magic != MAGIC)
		return 1;
	bsl_cache_destroy(c3);      /* reported now, or (B's bin) at B's exit */
	fputs("== c3 destroyed\n", stderr);
	b_run(NULL);                /* B exits: its bin of c3 back */
	fprintf(stderr, "== B exited; ctor/dtor: %ld/%ld %ld/%ld %ld/%ld\n", k1.ctor, k1.dtor,
		k2.ctor, k2.dtor, k3.ctor, k3.dtor);
	return t_failed_case;
}

static void other_threads_bins(void)
{
	char buf[8192];
	int status = run_child("bins", getenv("BUDDYSLAB_CONF"), buf, sizeof buf);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(strstr(buf, "== B exited") != NULL);
	CHECK(strstr(buf, "\"parked-1\" still has") == NULL);    /* only parked: not reported */
	CHECK(strstr(buf, "\"parked-2\" still has") == NULL);
	const char *w = strstr(buf, "the cache \"parked-3\" still has 1 live objects");
	CHECK(w != NULL);              /* really held: reported, once */
	CHECK(w && !strstr(w + 20, "\"parked-3\" still has"));
	fputs(buf, stderr);
}

/* ------------------------------------------------------- secure fill */

/* Secure fill (secure:fill, part of secure:1): a freed cache object is
 * sealed with a keyed checksum of its bytes, checked when it is handed out
 * again or its slab goes back (a write while it waits in the quarantine is
 * found at its handout after it: uaf-alloc under secure:1). The children run
 * re-executed ("test_cache uaf-KIND", under the conf given) and print the
 * object's address before writing into it after its free. */
#define STAMP 0x57a3b5c0ffee1234ull

static int uaf_child(const char *kind)
{
	bsl_cache_t *c = make("fill-uaf");
	struct obj *a = c ? bsl_cache_alloc(c, 0) : NULL, *v[400];
	if (!a)
		return 1;
	fprintf(stderr, "== object %p\n", (void *)a);
	bool bin = strcmp(kind, "uaf-bin") == 0;
	for (int i = 0; i < 300; i++)
		v[i] = bsl_cache_alloc(c, 0);
	for (int i = 0; i < 300 && !bin; i++)    /* before a: its slabs can go back */
		bsl_cache_free(c, v[i]);
	bsl_cache_free(c, a);
	if (bin) {
		/* 300 frees after it: a is out of the quarantine (secure:1), in the
		 * bin or on its slab; written there, caught as it is handed out */
		for (int i = 0; i < 300; i++)
			bsl_cache_free(c, v[i]);
		a->id ^= 0x100;
		for (int i = 0; i < 400; i++)
			v[i] = bsl_cache_alloc(c, 0);
		fputs("== not caught\n", stderr);
		return 0;
	}
	if (strcmp(kind, "uaf-word0") == 0)
		a->magic ^= 1;         /* its first word: the allocator's links are in the trailer */
	else
		a->payload[100] ^= 0x10;
	if (strcmp(kind, "uaf-shrink") == 0)
		bsl_cache_shrink(c);
	else if (strcmp(kind, "uaf-destroy") == 0)
		bsl_cache_destroy(c);
	else
		allocs_until(c, a, 100000);
	fputs("== not caught\n", stderr);
	return 0;
}

/* The address a child printed ("== object %p"), or NULL. */
static void *child_object(const char *buf)
{
	const char *at = strstr(buf, "== object ");
	void *p = NULL;
	return at && sscanf(at, "== object %p", &p) == 1 ? p : NULL;
}

static void fill_write_after_free(void)
{
	static const char *confs[2] = { "secure:fill", "secure:1" };
	static const char *kinds[5] = { "uaf-alloc", "uaf-word0", "uaf-bin", "uaf-shrink",
					"uaf-destroy" };
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 5; k++) {
			char buf[4096], msg[320];
			int status = run_child(kinds[k], confs[i], buf, sizeof buf);
			bool at_alloc = k < 3;
			snprintf(msg, sizeof msg, "buddyslab: write after free: the free object %p of "
				 "the cache \"fill-uaf\" was modified while free (its 192 bytes no longer "
				 "match the checksum taken when it was freed; found %s)", child_object(buf),
				 at_alloc ? "as it was handed out again" : "as its slab was given back");
			bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
				  child_object(buf) && strstr(buf, msg);
			CHECK(ok);
			if (!ok)
				fprintf(stderr, "  %s under %s: status 0x%x, expected \"%s\", got: %s\n",
					kinds[k], confs[i], status, msg, buf);
		}
}

/* The child's workload ("fillwork"): objects that a constructor set up,
 * stamped by the program while live, reused through other threads' frees,
 * threads exiting with objects in their bins, shrink, a purge and destroy,
 * each object found as the constructor or the program last left it; no
 * false report from any of those paths. Then a write after free that the
 * destroy of its cache must catch (its object freed by a thread that exited). */
static bsl_cache_t *fw_cache;
static struct obj *fw_handoff[2000];

static bool fw_state_ok(const struct obj *o)
{
	uint64_t stamp;
	memcpy(&stamp, o->payload, sizeof stamp);
	return o->magic == MAGIC && (stamp == 0x5a5a5a5a5a5a5a5aull || stamp == (o->id ^ STAMP));
}

static struct obj *fw_alloc(void)
{
	struct obj *o = bsl_cache_alloc(fw_cache, 0);
	if (!o)
		return NULL;
	CHECK(fw_state_ok(o));
	uint64_t stamp = o->id ^ STAMP;      /* the program's change: kept across its frees */
	memcpy(o->payload, &stamp, sizeof stamp);
	return o;
}

static void *fw_producer(void *arg)
{
	for (int i = 0; i < 2000; i++)
		fw_handoff[i] = fw_alloc();
	return arg;
}

static void *fw_consumer(void *arg)
{
	for (int i = 0; i < 2000; i++)
		bsl_cache_free(fw_cache, fw_handoff[i]);
	return arg;
}

static void *fw_churner(void *arg)
{
	struct obj *o[300];
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 300; i++)
			o[i] = fw_alloc();
		for (int i = 0; i < 300; i++)
			bsl_cache_free(fw_cache, o[i]);
	}
	return arg;     /* exits with objects in its bin */
}

static void *fw_free_one(void *o)
{
	bsl_cache_free(fw_cache, o);
	return NULL;    /* exits: its bin goes back to the slab */
}

static int fillwork_child(void)
{
	pthread_t t[4];
	if (!(fw_cache = make("fill-work")))
		return 1;
	for (int round = 0; round < 3; round++) {
		pthread_create(&t[0], NULL, fw_producer, NULL);
		pthread_join(t[0], NULL);
		pthread_create(&t[1], NULL, fw_consumer, NULL);
		pthread_join(t[1], NULL);
	}
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, fw_churner, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	bsl_cache_shrink(fw_cache);          /* destructors over checked, sealed objects */
	CHECK(ndtor == nctor);
	static struct obj *o[1000];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 1000; i++)
			o[i] = fw_alloc();
		for (int i = 0; i < 1000; i++)
			bsl_cache_free(fw_cache, o[i]);
		malloc_trim(0);                  /* the purge gives back kept empty slabs */
	}
	bsl_cache_destroy(fw_cache);
	CHECK(nctor > 0 && ndtor == nctor);
	fprintf(stderr, "== workload %s (ctor %ld dtor %ld)\n", t_failed_case ? "failed" : "clean",
		nctor, ndtor);
	if (!(fw_cache = make("fill-work-2")) || !(o[0] = fw_alloc()))
		return 1;
	fprintf(stderr, "== object %p\n", (void *)o[0]);
	pthread_create(&t[0], NULL, fw_free_one, o[0]);
	pthread_join(t[0], NULL);
	o[0]->id ^= 1;
	bsl_cache_destroy(fw_cache);
	fputs("== not caught\n", stderr);
	return 0;
}

static void fill_no_false_reports(void)
{
	static const char *confs[2] = { "secure:fill", "secure:1" };
	for (int i = 0; i < 2; i++) {
		char buf[8192], msg[256];
		int status = run_child("fillwork", confs[i], buf, sizeof buf);
		snprintf(msg, sizeof msg, "write after free: the free object %p of the cache "
			 "\"fill-work-2\" was modified while free", child_object(buf));
		bool ok = strstr(buf, "== workload clean") && WIFSIGNALED(status) &&
			  WTERMSIG(status) == SIGABRT && child_object(buf) && strstr(buf, msg) &&
			  strstr(buf, "found as its slab was given back");
		CHECK(ok);
		fprintf(stderr, "  %s: %s", confs[i], ok ? strstr(buf, "== workload") : buf);
	}
}

/* ------------------------------------------------------------ misuse */

static bsl_cache_t *mc, *mc2;

static void free_cache_object(void *unused) { free(bsl_cache_alloc(mc, 0)); }
static void realloc_cache_object(void *unused) { (void)!realloc(bsl_cache_alloc(mc, 0), 10); }
static void cache_free_malloc_block(void *unused) { bsl_cache_free(mc, malloc(192)); }
static void cache_free_other_cache(void *unused) { bsl_cache_free(mc, bsl_cache_alloc(mc2, 0)); }
static void cache_free_twice(void *unused)
{
	void *p = bsl_cache_alloc(mc, 0);
	bsl_cache_free(mc, p);
	bsl_cache_free(mc, p);
}
static void cache_free_interior(void *unused) { bsl_cache_free(mc, (char *)bsl_cache_alloc(mc, 0) + 16); }
static void alloc_destroyed(void *unused)
{
	bsl_cache_t *c = bsl_cache_create("gone", 32, 0, NULL, NULL, NULL);
	bsl_cache_destroy(c);
	bsl_cache_alloc(c, 0);
}

static void misuse_aborts(void)
{
	mc = bsl_cache_create("misuse-a", 192, 0, NULL, NULL, NULL);
	mc2 = bsl_cache_create("misuse-b", 192, 0, NULL, NULL, NULL);
	REQUIRE(mc && mc2);
	CHECK(t_expect_abort(free_cache_object, NULL, "free(): invalid pointer 0x"));
	CHECK(t_expect_abort(free_cache_object, NULL, "object of the named cache \"misuse-a\""));
	CHECK(t_expect_abort(realloc_cache_object, NULL, "realloc(): invalid pointer"));
	CHECK(t_expect_abort(cache_free_malloc_block, NULL,
			     "for the cache \"misuse-a\": a malloc block"));
	CHECK(t_expect_abort(cache_free_other_cache, NULL,
			     "an object of another cache, \"misuse-b\""));
	CHECK(t_expect_abort(cache_free_twice, NULL, "(bsl_cache_free of the cache \"misuse-a\""));
	CHECK(t_expect_abort(cache_free_interior, NULL, "not the start of an object"));
	CHECK(t_expect_abort(alloc_destroyed, NULL, "bsl_cache_alloc(): 0x"));
	bsl_cache_destroy(mc);
	bsl_cache_destroy(mc2);
}

static void many_caches(void)
{
	bsl_cache_t *c[40];
	int n = 0;
	while (n < 40 && (c[n] = bsl_cache_create("many", 24 + n, 0, NULL, NULL, NULL)))
		n++;
	CHECK(n >= 16 && n < 40 && errno == ENOMEM);     /* the table has a bound (warned) */
	for (int i = 0; i < n; i++) {
		void *p = bsl_cache_alloc(c[i], 0);
		CHECK(p != NULL);
		bsl_cache_free(c[i], p);
		bsl_cache_destroy(c[i]);
	}
	bsl_cache_t *again = bsl_cache_create("again", 40, 0, NULL, NULL, NULL);
	CHECK(again != NULL);     /* freed slots are reused */
	if (again)
		bsl_cache_destroy(again);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "leaky") == 0) {
		leaky_child();
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "prof") == 0)
		return prof_child();
	if (argc > 1 && strcmp(argv[1], "report") == 0)
		return report_child();
	if (argc > 1 && strcmp(argv[1], "bins") == 0)
		return bins_child();
	if (argc > 1 && strncmp(argv[1], "uaf-", 4) == 0)
		return uaf_child(argv[1]);
	if (argc > 1 && strcmp(argv[1], "fillwork") == 0)
		return fillwork_child();
	T_RUN(ctor_dtor_counts);
	T_RUN(kept_slabs_purged);
	T_RUN(constructed_state_kept);
	T_RUN(ctor_failure_enomem);
	T_RUN(alignment_and_args);
	T_RUN(secure_guard_page);
	T_RUN(secure_quarantine_delays_reuse);
	T_RUN(secure_canary_aborts);
	T_RUN(secure_first_slot_underflow);
	T_RUN(cross_thread_and_exit);
	T_RUN(fork_child_uses_cache);
	T_RUN(destroy_with_live_objects_reported);
	T_RUN(slabinfo_names_cache);
	T_RUN(stats_report_names_cache);
	T_RUN(prof_samples_cache_objects);
	T_RUN(owns_cache_objects);
	T_RUN(other_threads_bins);
	T_RUN(fill_write_after_free);
	T_RUN(fill_no_false_reports);
	T_RUN(misuse_aborts);
	T_RUN(many_caches);
	/* again under secure:1 (guard pages, canaries, quarantine, fill), then
	 * under secure:fill alone (the thread bins' checked handouts, no quarantine) */
	const char *conf = getenv("BUDDYSLAB_CONF");
	const char *next = !conf ? "secure:1" : strcmp(conf, "secure:1") == 0 ? "secure:fill" : NULL;
	if (argc == 1 && next && !t_failures) {
		fflush(stdout);
		setenv("BUDDYSLAB_CONF", next, 1);
		execv("/proc/self/exe", argv);
	}
	return t_done();
}
