/*
 * test_views.c - the introspection views and their agreement with the state:
 * bsl_buddyinfo / bsl_slabinfo / bsl_config_print (format and figures),
 * bsl_stats invariants, mallinfo2, malloc_info, the report at exit
 * (stats:1), BUDDYSLAB_CONF warnings and values in effect, and
 * mallopt(M_MMAP_THRESHOLD).
 *
 * The views are written into a memfd (no allocation on our side), then parsed.
 * Cases that need a BUDDYSLAB_CONF run this program again as a child:
 *     test_views --child   (allocates a little, prints "child ok" and the
 *                           bsl_config_print output on stdout, exits 0)
 * The buddyinfo figures are compared with the zones themselves (internal
 * headers: the test links the static library).
 */
#define _GNU_SOURCE
#include "t.h"
#include "buddyslab.h"
#include "buddy.h"
#include "sizeclass.h"
#include "large.h"
#include <malloc.h>
#include <sched.h>
#include <sys/mman.h>
#include <ctype.h>
#include <errno.h>

static const char *self_exe;

/* ------------------------------------------------------------------ helpers */

/* Output of fn(fd) (static buffer, NUL-terminated). */
static char *capture(void (*fn)(int))
{
	static char buf[1 << 18];
	int fd = memfd_create("view", 0);
	if (fd < 0)
		return NULL;
	fn(fd);
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* Split s at whitespace into at most max tokens (s is modified). */
static int tokens(char *s, char **tok, int max)
{
	int n = 0;
	for (char *t = strtok(s, " \t"); t; t = strtok(NULL, " \t"))
		if (n < max)
			tok[n++] = t;
		else
			return max + 1;
	return n;
}

static int is_uint(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* Line i (0-based) of text, copied into a static buffer; NULL past the end. */
static char *line_at(const char *text, int i)
{
	static char l[1024];
	const char *p = text;
	while (i-- > 0) {
		p = strchr(p, '\n');
		if (!p)
			return NULL;
		p++;
	}
	if (!*p)
		return NULL;
	size_t n = strcspn(p, "\n");
	if (n >= sizeof l)
		n = sizeof l - 1;
	memcpy(l, p, n);
	l[n] = 0;
	return l;
}

static int count_lines(const char *text)
{
	int n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The slabinfo line of `name`: its 6 numbers. 1 when found. */
static int slab_line(const char *name, unsigned long v[6])
{
	char *out = capture(bsl_slabinfo);
	if (!out)
		return 0;
	for (int i = 1;; i++) {
		char *l = line_at(out, i), *tok[16];
		if (!l)
			return 0;
		if (tokens(l, tok, 16) == 7 && strcmp(tok[0], name) == 0) {
			for (int k = 0; k < 6; k++)
				v[k] = strtoul(tok[k + 1], NULL, 10);
			return 1;
		}
	}
}

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

/* Run this program as `mode` (--child, --adopt-child) with BUDDYSLAB_CONF=conf
 * (NULL: unset); collect stdout and stderr. Returns the wait status, -1 on error. */
static char child_out[1 << 16], child_err[1 << 16];
static pid_t child_pid;     /* of the last run_child */
static int run_child_as(const char *mode, const char *conf)
{
	int fo = memfd_create("out", 0), fe = memfd_create("err", 0);
	if (fo < 0 || fe < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		if (conf)
			setenv("BUDDYSLAB_CONF", conf, 1);
		else
			unsetenv("BUDDYSLAB_CONF");
		alarm(60);
		execl(self_exe, self_exe, mode, (char *)NULL);
		_exit(127);
	}
	int st = -1;
	child_pid = pid;
	waitpid(pid, &st, 0);
	ssize_t n = pread(fo, child_out, sizeof child_out - 1, 0);
	child_out[n > 0 ? n : 0] = 0;
	n = pread(fe, child_err, sizeof child_err - 1, 0);
	child_err[n > 0 ? n : 0] = 0;
	close(fo);
	close(fe);
	return st;
}

static int run_child(const char *conf) { return run_child_as("--child", conf); }

/* NULL when CPUs 0 and 1 are both online and allowed, else why not. */
static const char *cpus_0_and_1_missing(void)
{
	cpu_set_t set;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return "one CPU online";
	if (sched_getaffinity(0, sizeof set, &set) != 0 || !CPU_ISSET(0, &set) || !CPU_ISSET(1, &set))
		return "CPUs 0 and 1 not both allowed";
	return NULL;
}

static int child_main(void)
{
	/* a little of every tier, contents checked */
	static const size_t sz[] = { 1, 16, 64, 1000, 5000, 16384, 40000, 131072, 300000, 3 << 20 };
	enum { N = sizeof sz / sizeof sz[0] };
	for (int round = 0; round < 20; round++) {
		unsigned char *p[N];
		for (int i = 0; i < N; i++) {
			p[i] = malloc(sz[i]);
			if (!p[i])
				return 1;
			memset(p[i], i + round, sz[i]);
		}
		for (int i = 0; i < N; i++) {
			for (size_t k = 0; k < sz[i]; k += 997)
				if (p[i][k] != (unsigned char)(i + round))
					return 1;
			free(p[i]);
		}
	}
	printf("child ok\n");
	fflush(stdout);
	bsl_config_print(1);
	return 0;
}

/* The value bsl_config_print shows for key in text ("key:value\t# doc"). */
static const char *config_value(const char *text, const char *key)
{
	static char v[128];
	size_t klen = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, klen) && l[klen] == ':') {
			size_t n = strcspn(l + klen + 1, "\t\n");
			if (n >= sizeof v) n = sizeof v - 1;
			memcpy(v, l + klen + 1, n);
			v[n] = 0;
			return v;
		}
	return NULL;
}

static int count_substr(const char *text, const char *s)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
		n++;
	return n;
}

/* ---------------------------------------------------------------- buddyinfo */

/* Check one buddyinfo output against the zones; returns the zone lines seen. */
static int check_buddyinfo(const char *out, int *bad)
{
	char *h = line_at(out, 0);
	if (!h || strncmp(h, "buddyinfo:", 10) != 0) {
		fprintf(stderr, "  buddyinfo header: %s\n", h ? h : "(none)");
		(*bad)++;
	}
	int nlines = count_lines(out), zlines = 0, last_id = -1;
	size_t sum_dirty = 0, sum_clean = 0;
	for (int i = 1; i < nlines; i++) {
		char *l = line_at(out, i), *tok[32];
		char copy[1024];
		snprintf(copy, sizeof copy, "%s", l);
		int n = tokens(l, tok, 32);
		/* buddyslab zone ID o0..o10 pcp N dirty N clean N */
		if (n != 3 + (MAX_ORDER + 1) + 6 || strcmp(tok[0], "buddyslab") || strcmp(tok[1], "zone") ||
		    strcmp(tok[14], "pcp") || strcmp(tok[16], "dirty") || strcmp(tok[18], "clean")) {
			fprintf(stderr, "  bad zone line (%d tokens): %s\n", n, copy);
			(*bad)++;
			continue;
		}
		for (int k = 2; k < n; k++)
			if (k != 14 && k != 16 && k != 18 && !is_uint(tok[k])) {
				fprintf(stderr, "  not a number in: %s\n", copy);
				(*bad)++;
			}
		int id = atoi(tok[2]);
		if (id <= last_id || id >= (int)buddy_nzones()) {
			fprintf(stderr, "  zone id %d out of order or range (nzones %u)\n", id, buddy_nzones());
			(*bad)++;
			continue;
		}
		last_id = id;
		zlines++;
		struct zone *z = &zones[id];
		size_t pages = 0;
		for (int o = 0; o <= MAX_ORDER; o++) {
			size_t v = strtoul(tok[3 + o], NULL, 10);
			if (v != z->nfree[o]) {
				fprintf(stderr, "  zone %d order %d: view %zu, zone %zu\n", id, o, v, z->nfree[o]);
				(*bad)++;
			}
			pages += v << o;
		}
		size_t pcp = strtoul(tok[15], NULL, 10), dirty = strtoul(tok[17], NULL, 10),
		       clean = strtoul(tok[19], NULL, 10);
		if (pages + pcp != dirty + clean || pcp != z->pcp_count) {
			fprintf(stderr, "  zone %d: blocks hold %zu pages + pcp %zu, dirty %zu + clean %zu "
				"(pcp_count %u)\n", id, pages, pcp, dirty, clean, z->pcp_count);
			(*bad)++;
		}
		sum_dirty += dirty;
		sum_clean += clean;
	}
	int used = 0;
	for (unsigned i = 0; i < buddy_nzones(); i++)
		used += zones[i].chunks > 0;
	if (zlines != used) {
		fprintf(stderr, "  %d zone lines, %d zones with chunks\n", zlines, used);
		(*bad)++;
	}
	struct bsl_stats s;
	bsl_stats(&s);
	if ((sum_dirty << 12) + large_cached_bytes() != s.dirty || (sum_clean << 12) != s.returned) {
		fprintf(stderr, "  buddyinfo dirty %zu clean %zu pages (+ large cache %zu B); bsl_stats "
			"dirty %zu returned %zu\n", sum_dirty, sum_clean, large_cached_bytes(), s.dirty,
			s.returned);
		(*bad)++;
	}
	return zlines;
}

static void buddyinfo_format(void)
{
	void *p = malloc(100000);     /* a run: at least one zone has a chunk */
	REQUIRE(p);
	int bad = 0;
	char *out = capture(bsl_buddyinfo);
	REQUIRE(out);
	int z = check_buddyinfo(out, &bad);
	CHECK(z >= 1);
	CHECK(bad == 0);
	free(p);
	if (bad)
		fprintf(stderr, "  buddyinfo was:\n%s", out);
}

/* A second CPU's zone appears once it grows: run on a CPU whose zone has no
 * chunk yet (0 or 1, whichever the process has not grown) until the other
 * zones have no free pages left and its own zone takes a chunk. */
static void buddyinfo_second_zone(void)
{
	const char *why = cpus_0_and_1_missing();
	if (why)
		SKIP("%s", why);
	cpu_set_t old;
	REQUIRE(sched_getaffinity(0, sizeof old, &old) == 0);
	void *warm = malloc(65536);     /* some zone has a chunk */
	REQUIRE(warm);
	int cpu = zones[0].chunks ? 1 : 0;
	pin_to_cpu(cpu);
	REQUIRE(sched_getcpu() == cpu);
	enum { N = 4096 };     /* up to 256 MiB of 64 KiB runs */
	static void *v[N];
	int i;
	for (i = 0; i < N && !zones[cpu].chunks; i++) {
		v[i] = malloc(65536);
		REQUIRE(v[i]);
	}
	int bad = 0;
	char *out = capture(bsl_buddyinfo);
	REQUIRE(out);
	int z = check_buddyinfo(out, &bad);
	CHECK(zones[0].chunks > 0 && zones[1].chunks > 0);
	CHECK(z >= 2);
	CHECK(strstr(out, "buddyslab zone   0 ") != NULL);
	CHECK(strstr(out, "buddyslab zone   1 ") != NULL);
	CHECK(bad == 0);
	if (bad || z < 2)
		fprintf(stderr, "  buddyinfo was (after %d runs on CPU %d):\n%s", i, cpu, out);
	while (i-- > 0)
		free(v[i]);
	free(warm);
	sched_setaffinity(0, sizeof old, &old);
}

/*
 * A zone that first gets a chunk by adopting another zone's whole free chunk
 * (not by growing) must still be seen by bsl_stats, bsl_buddyinfo and purge.
 * Runs in a fresh process (--adopt-child), started pinned to CPU 0 so that
 * every allocation before main lands in zone 0 too: fill two chunks' worth of
 * runs and free them, so zone 0 holds a whole free chunk; then pinned to
 * CPU 1, whose zone never grew, allocate runs: they must adopt that chunk (no
 * new chunk is committed). Any other outcome fails, with the reason.
 */
static int adopt_child(void)
{
	pin_to_cpu(0);
	if (sched_getcpu() != 0) {
		printf("not running on CPU 0 after pinning to it\n");
		return 1;
	}
	enum { N = 160 };     /* 10 MiB of 64 KiB runs: more than two chunks */
	static void *v[N];
	for (int i = 0; i < N; i++)
		if (!(v[i] = malloc(65536)))
			return 1;
	for (int i = 0; i < N; i++)
		free(v[i]);
	if (zones[1].chunks) {
		printf("zone 1 has a chunk before the test (the process did not start on CPU 0?)\n");
		return 1;
	}
	if (!zones[0].nfree[MAX_ORDER]) {
		printf("zone 0 has no whole free chunk after freeing 10 MiB of runs\n");
		return 1;
	}
	pin_to_cpu(1);
	if (sched_getcpu() != 1) {
		printf("not running on CPU 1 after pinning to it\n");
		return 1;
	}
	struct bsl_stats a, b;
	bsl_stats(&a);
	for (int i = 0; i < 8; i++)
		if (!(v[i] = malloc(65536)))
			return 1;
	bsl_stats(&b);
	int ok = 1;
	if (!zones[1].chunks) {
		printf("zone 1 has no chunk: nothing was adopted\n");
		return 1;
	}
	if (b.mapped > a.mapped) {
		printf("mapped %zu -> %zu: zone 1 grew a chunk instead of adopting zone 0's\n",
		       a.mapped, b.mapped);
		ok = 0;
	}
	if (b.allocated < a.allocated + 8 * 65536) {
		printf("allocated %zu -> %zu after 512 KiB of runs on CPU 1\n", a.allocated, b.allocated);
		ok = 0;
	}
	char *out = capture(bsl_buddyinfo);
	if (!out || !strstr(out, "buddyslab zone   1 ")) {
		printf("buddyinfo has no zone 1:\n%s", out ? out : "(none)\n");
		ok = 0;
	}
	for (int i = 0; i < 8; i++)
		free(v[i]);
	malloc_trim(0);
	bsl_stats(&b);
	if (b.dirty > (1 << 20)) {     /* zone 1's free pages were purged too */
		printf("dirty %zu bytes after malloc_trim(0)\n", b.dirty);
		ok = 0;
	}
	return ok ? 0 : 1;
}

static void adopted_zone_is_seen(void)
{
	const char *why = cpus_0_and_1_missing();
	if (why)
		SKIP("%s", why);
	/* started on CPU 0 (the affinity is inherited across fork and exec);
	 * decay_ms:-1: nothing is purged behind the test's back */
	cpu_set_t old;
	REQUIRE(sched_getaffinity(0, sizeof old, &old) == 0);
	pin_to_cpu(0);
	int st = run_child_as("--adopt-child", "decay_ms:-1");
	sched_setaffinity(0, sizeof old, &old);
	REQUIRE(st != -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		fprintf(stderr, "  child status %d:\n%s", st, child_out);
}

/* ----------------------------------------------------------------- slabinfo */

static void slabinfo_format(void)
{
	void *p = malloc(16), *q = malloc(16384);
	REQUIRE(p && q);
	char *out = capture(bsl_slabinfo);
	REQUIRE(out);
	char *h = line_at(out, 0);
	CHECK(h && strncmp(h, "slabinfo:", 9) == 0);
	int nlines = count_lines(out), found16 = 0, found16k = 0, bad = 0;
	CHECK(nlines == 1 + NCLASSES);
	unsigned long prev_size = 0;
	for (int i = 1; i < nlines; i++) {
		char *l = line_at(out, i), *tok[16], copy[1024];
		snprintf(copy, sizeof copy, "%s", l);
		int n = tokens(l, tok, 16);
		if (n != 7 || strncmp(tok[0], "kmalloc-", 8) != 0) {
			fprintf(stderr, "  bad slabinfo line: %s\n", copy);
			bad++;
			continue;
		}
		for (int k = 1; k < 7; k++)
			if (!is_uint(tok[k])) {
				fprintf(stderr, "  not a number: %s\n", copy);
				bad++;
			}
		unsigned long active = strtoul(tok[1], NULL, 10), num = strtoul(tok[2], NULL, 10),
			      size = strtoul(tok[3], NULL, 10), per = strtoul(tok[4], NULL, 10),
			      pages = strtoul(tok[5], NULL, 10), slabs = strtoul(tok[6], NULL, 10);
		/* the name says the size: kmalloc-N or kmalloc-Nk */
		char *end;
		unsigned long named = strtoul(tok[0] + 8, &end, 10);
		if (*end == 'k')
			named *= 1024, end++;
		if (*end || named != size || size <= prev_size || size % 16 ||
		    active > num || num != per * slabs || per == 0 || (pages & (pages - 1)) ||
		    size * per > pages * 4096) {
			fprintf(stderr, "  inconsistent slabinfo line: %s\n", copy);
			bad++;
		}
		prev_size = size;
		found16 += strcmp(tok[0], "kmalloc-16") == 0 && size == 16 && active >= 1;
		found16k += strcmp(tok[0], "kmalloc-16k") == 0 && size == 16384 && active >= 1;
	}
	CHECK(found16 == 1);
	CHECK(found16k == 1);
	CHECK(bad == 0);
	if (bad || !found16 || !found16k)
		fprintf(stderr, "  slabinfo was:\n%s", out);
	free(p);
	free(q);
}

/* active objects of kmalloc-64 follow 1000 malloc(64): about +1000 at once
 * (thread-cache refills move objects in batches), exactly +1000 once the
 * thread cache is flushed (malloc_trim flushes the caller's cache). */
static void slabinfo_active_tracks(void)
{
	enum { N = 1000 };
	static void *v[N];
	unsigned long a0[6], a1[6], a2[6], a3[6];
	malloc_trim(0);
	REQUIRE(slab_line("kmalloc-64", a0));
	for (int i = 0; i < N; i++) {
		v[i] = malloc(64);
		REQUIRE(v[i]);
		memset(v[i], 1, 64);
	}
	REQUIRE(slab_line("kmalloc-64", a1));
	malloc_trim(0);
	REQUIRE(slab_line("kmalloc-64", a2));
	for (int i = 0; i < N; i++)
		free(v[i]);
	malloc_trim(0);
	REQUIRE(slab_line("kmalloc-64", a3));
	unsigned long tmax = class_tcache_cap[size_to_class(64)];   /* a bin grows up to its cap */
	fprintf(stderr, "  info: kmalloc-64 active %lu -> %lu (after 1000 malloc) -> %lu (trim) -> %lu "
		"(freed, trim); thread cache bound %lu\n", a0[0], a1[0], a2[0], a3[0], tmax);
	CHECK(a1[0] + tmax >= a0[0] + N && a1[0] <= a0[0] + N + tmax);
	CHECK(a2[0] == a0[0] + N);
	CHECK(a3[0] == a0[0]);
	CHECK(a2[1] >= a2[0]);
}

/* -------------------------------------------------------------- bsl_stats */

static int stats_ok(const struct bsl_stats *s, const char *when)
{
	/* pages in use are never returned: resident >= active */
	int ok = s->mapped >= s->active && s->active >= s->allocated && s->resident <= s->mapped &&
		 s->resident >= s->active &&
		 s->dirty + s->returned <= s->mapped && s->nthreads >= 1 &&
		 s->nfree_large <= s->nmalloc_large && s->nfree_run <= s->nmalloc_run &&
		 s->nfree_slab <= s->nmalloc_slab;
	if (!ok)
		fprintf(stderr, "  %s: allocated %zu active %zu mapped %zu resident %zu dirty %zu returned %zu "
			"tcache %zu threads %lu\n", when, s->allocated, s->active, s->mapped, s->resident,
			s->dirty, s->returned, s->tcache, (unsigned long)s->nthreads);
	return ok;
}

static void stats_consistency(void)
{
	struct bsl_stats s0, s1, s2, s3;
	malloc_trim(0);
	bsl_stats(&s0);
	CHECK(stats_ok(&s0, "start"));
	CHECK(s0.dirty == 0);       /* malloc_trim returned every free dirty page */
	CHECK(s0.tcache == 0);      /* and flushed this thread's cache */
	enum { N = 3000 };
	static void *v[N];
	size_t want = 0;
	for (int i = 0; i < N; i++) {
		size_t sz = (size_t)(i % 7 == 0 ? 20000 + i * 31 : 8 + i * 5);
		v[i] = malloc(sz);
		REQUIRE(v[i]);
		memset(v[i], 2, sz);
		want += malloc_usable_size(v[i]);
	}
	char *big = malloc(10 << 20);
	REQUIRE(big);
	memset(big, 3, 10 << 20);
	want += malloc_usable_size(big);
	malloc_trim(0);
	bsl_stats(&s1);
	CHECK(stats_ok(&s1, "allocated"));
	CHECK(s1.allocated - s0.allocated == want);
	/* free arena pages are reused, so mapped need not grow by `want` */
	CHECK(s1.mapped >= s0.allocated + want);
	CHECK(s1.nmalloc_large == s0.nmalloc_large + 1);
	CHECK(s1.nmalloc_run >= s0.nmalloc_run + N / 7);
	for (int i = 0; i < N; i++)
		free(v[i]);
	bsl_stats(&s2);
	CHECK(stats_ok(&s2, "small freed, before trim"));
	CHECK(s2.tcache > 0);       /* freed objects parked in this thread's cache */
	free(big);
	malloc_trim(0);
	bsl_stats(&s3);
	CHECK(stats_ok(&s3, "all freed, trimmed"));
	CHECK(s3.allocated == s0.allocated);
	CHECK(s3.nfree_large == s0.nfree_large + 1);
	CHECK(s3.nfree_run - s0.nfree_run == s3.nmalloc_run - s0.nmalloc_run);
	CHECK(s3.dirty == 0);
	CHECK(s3.tcache == 0);
	CHECK(s3.npurge > s0.npurge);
	fprintf(stderr, "  info: allocated %zu -> %zu -> %zu, mapped %zu -> %zu -> %zu, "
		"resident %zu -> %zu -> %zu\n", s0.allocated, s1.allocated, s3.allocated,
		s0.mapped, s1.mapped, s3.mapped, s0.resident, s1.resident, s3.resident);
}

static void mallinfo2_tracks(void)
{
	enum { NR = 64, NS = 1000 };
	static void *r[NR], *sm[NS];
	malloc_trim(0);
	struct mallinfo2 m0 = mallinfo2();
	for (int i = 0; i < NR; i++) {
		r[i] = malloc(65536);    /* page runs: counted by page, exact */
		REQUIRE(r[i]);
		memset(r[i], 1, 65536);
	}
	struct mallinfo2 m1 = mallinfo2();
	for (int i = 0; i < NS; i++) {
		sm[i] = malloc(1000);
		REQUIRE(sm[i]);
	}
	size_t usable = malloc_usable_size(sm[0]);
	malloc_trim(0);                  /* flush the thread cache: exact figures */
	struct mallinfo2 m2 = mallinfo2();
	void *big = malloc(1 << 20);
	REQUIRE(big);
	struct mallinfo2 m3 = mallinfo2();
	free(big);
	for (int i = 0; i < NR; i++)
		free(r[i]);
	for (int i = 0; i < NS; i++)
		free(sm[i]);
	malloc_trim(0);
	struct mallinfo2 m4 = mallinfo2();
	fprintf(stderr, "  info: uordblks %zu -> %zu (+64 runs) -> %zu (+1000 x %zu) -> %zu (freed); "
		"hblkhd %zu -> %zu\n", m0.uordblks, m1.uordblks, m2.uordblks, usable, m4.uordblks,
		m2.hblkhd, m3.hblkhd);
	CHECK(m1.uordblks - m0.uordblks == (size_t)NR * 65536);
	CHECK(m2.uordblks - m1.uordblks == (size_t)NS * usable);
	CHECK(m3.hblks == m2.hblks + 1);
	CHECK(m3.hblkhd == m2.hblkhd + (1 << 20));
	CHECK(m3.uordblks == m2.uordblks);      /* mmap'd blocks are in hblkhd, not uordblks */
	CHECK(m4.uordblks == m0.uordblks);
	CHECK(m4.hblks == m0.hblks);
	CHECK(m2.arena >= m2.uordblks);
}

/* --------------------------------------------------------------- malloc_info */

static void malloc_info_xml(void)
{
	enum { N = 1000 };
	static void *v[N];
	for (int i = 0; i < N; i++) {
		v[i] = malloc(64);
		REQUIRE(v[i]);
	}
	void *big = malloc(1 << 20);
	REQUIRE(big);
	static char mem[1 << 16], iobuf[1 << 16];
	memset(mem, 0, sizeof mem);
	FILE *f = fmemopen(mem, sizeof mem - 1, "w");
	REQUIRE(f);
	setvbuf(f, iobuf, _IOFBF, sizeof iobuf);    /* no allocation while it writes */
	struct bsl_stats s;
	bsl_stats(&s);
	int r = malloc_info(0, f);
	fclose(f);
	CHECK(r == 0);
	/* one element per line: the opening <malloc ...>, self-closing elements,
	 * and </malloc> last; every attribute name="digits" (but version) */
	int nlines = count_lines(mem), bad = 0, saw64 = 0, saw_inuse = 0, saw_mmap = 0;
	char *first = line_at(mem, 0);
	CHECK(first && strcmp(first, "<malloc version=\"buddyslab-1\">") == 0);
	char *last = line_at(mem, nlines - 1);
	CHECK(last && strcmp(last, "</malloc>") == 0);
	for (int i = 1; i < nlines - 1; i++) {
		char *l = line_at(mem, i);
		size_t len = strlen(l);
		if (len < 4 || l[0] != '<' || !isalpha((unsigned char)l[1]) || strcmp(l + len - 2, "/>") ||
		    count_substr(l, "<") != 1 || count_substr(l, ">") != 1 || count_substr(l, "\"") % 2) {
			fprintf(stderr, "  not a self-closing element: %s\n", l);
			bad++;
			continue;
		}
		for (char *q = strchr(l, '='); q; q = strchr(q + 1, '=')) {
			char *e;
			if (q[1] != '"' || (strtoul(q + 2, &e, 10), e == q + 2) || *e != '"') {
				if (strncmp(l, "<total type=", 12) && strncmp(l, "<system type=", 13) &&
				    strncmp(l, "<aspace type=", 13)) {
					fprintf(stderr, "  attribute not numeric: %s\n", l);
					bad++;
				}
			}
		}
		unsigned long from, to, active, size;
		if (sscanf(l, "<size from=\"%lu\" to=\"%lu\" active=\"%lu\"/>", &from, &to, &active) == 3 &&
		    from <= 64 && to >= 64)
			saw64 = active >= N;
		if (sscanf(l, "<inuse size=\"%lu\"/>", &size) == 1)
			saw_inuse = size == s.allocated;
		if (sscanf(l, "<total type=\"mmap\" size=\"%lu\"/>", &size) == 1)
			saw_mmap = size >= (1 << 20);
	}
	CHECK(bad == 0);
	CHECK(saw64);
	CHECK(saw_inuse);
	CHECK(saw_mmap);
	if (bad || !saw64 || !saw_inuse || !saw_mmap)
		fprintf(stderr, "  malloc_info wrote (allocated %zu):\n%s", s.allocated, mem);
	for (int i = 0; i < N; i++)
		free(v[i]);
	free(big);
}

/* ------------------------------------------------------- stats:1 at exit */

static void stats_report_at_exit(void)
{
	int st = run_child("stats:1");
	REQUIRE(st != -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(strstr(child_out, "child ok\n") != NULL);
	char head[64];
	snprintf(head, sizeof head, "buddyslab stats: pid %d allocated ", (int)child_pid);
	const char *a = strstr(child_err, head);
	const char *b = strstr(child_err, "buddyinfo:");
	const char *z = strstr(child_err, "\nbuddyslab zone ");
	const char *c = strstr(child_err, "slabinfo:");
	const char *k16 = strstr(child_err, "\nkmalloc-16 ");
	const char *k16k = strstr(child_err, "\nkmalloc-16k ");
	CHECK(a && b && z && c && k16 && k16k);
	CHECK(a && b && c && a < b && b < z && z < c);   /* stats line, buddyinfo, slabinfo */
	CHECK(count_substr(child_err, "\nkmalloc-") == NCLASSES);
	CHECK(count_substr(child_err, "buddyslab: warning") == 0);
	if (!(a && b && z && c && k16 && k16k))
		fprintf(stderr, "  child stderr:\n%s", child_err);
	/* and nothing at all without it */
	st = run_child(NULL);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(child_err[0] == 0);
	if (child_err[0])
		fprintf(stderr, "  stderr without stats:1:\n%s", child_err);
}

/* ------------------------------------------------------ BUDDYSLAB_CONF */

static void conf_warnings(void)
{
	static const struct { const char *conf; int nwarn; const char *key, *value; } cases[] = {
		{ "nosuchkey:1", 1, "decay_ms", "1000" },
		{ "decay_ms:abc", 1, "decay_ms", "1000" },
		{ "thp:sometimes", 1, "thp", "default" },
		{ "mmap_threshold:1k", 1, "mmap_threshold", "131072" },     /* below the range */
		{ "mmap_threshold:12q", 1, "mmap_threshold", "131072" },
		{ "tcache:2", 1, "tcache", "1" },
		{ "decay_ms:", 1, "decay_ms", "1000" },
		{ "decay_ms:99999999999999999999", 1, "decay_ms", "1000" },
		{ "stats", 1, "stats", "0" },
		{ "nosuchkey:1,decay_ms:200", 1, "decay_ms", "200" },
		{ "nosuchkey:1,thp:sometimes,tcache:0", 2, "tcache", "0" },
		{ "decay_ms:200", 0, "decay_ms", "200" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int st = run_child(cases[i].conf);
		int nwarn = count_substr(child_err, "buddyslab: warning:");
		int nlines = count_lines(child_err);
		const char *v = config_value(child_out, cases[i].key);
		int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(child_out, "child ok\n") &&
			 nwarn == cases[i].nwarn && nlines == cases[i].nwarn &&
			 v && strcmp(v, cases[i].value) == 0;
		if (!ok) {
			fprintf(stderr, "  BUDDYSLAB_CONF=%s: status %#x, %d warning lines (want %d), %d stderr "
				"lines, %s:%s (want %s)\n  stderr: %s", cases[i].conf, st, nwarn, cases[i].nwarn,
				nlines, cases[i].key, v ? v : "(missing)", cases[i].value, child_err);
			t_failed_case = 1;
		}
	}
}

static void config_print_values(void)
{
	/* in this process: every key, documented defaults */
	char *out = capture(bsl_config_print);
	REQUIRE(out);
	static const char *const keys[] = { "mmap_threshold", "stats", "thp", "tcache", "decay_ms",
					     "purge", "background_thread", "large_cache" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!config_value(out, keys[i])) {
			fprintf(stderr, "  bsl_config_print lacks %s:\n%s", keys[i], out);
			t_failed_case = 1;
		}
	const char *v;
	CHECK((v = config_value(out, "mmap_threshold")) && strcmp(v, "131072") == 0);
	CHECK((v = config_value(out, "stats")) && strcmp(v, "0") == 0);
	CHECK((v = config_value(out, "thp")) && strcmp(v, "default") == 0);
	CHECK((v = config_value(out, "tcache")) && strcmp(v, "1") == 0);

	static const struct { const char *conf; const char *kv[8][2]; } cases[] = {
		{ "mmap_threshold:256k", { { "mmap_threshold", "262144" } } },
		{ "mmap_threshold:1m,decay_ms:200,purge:free,thp:never,large_cache:0,tcache:0",
		  { { "mmap_threshold", "1048576" }, { "decay_ms", "200" }, { "purge", "free" },
		    { "thp", "never" }, { "large_cache", "0" }, { "tcache", "0" } } },
		{ "large_cache:1g,decay_ms:-1,thp:madvise,background_thread:1",
		  { { "large_cache", "1073741824" }, { "decay_ms", "-1" }, { "thp", "madvise" },
		    { "background_thread", "1" } } },
		{ "MMAP_THRESHOLD:256K", { { "mmap_threshold", "131072" } } },  /* keys are case-sensitive */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int st = run_child(cases[i].conf);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		for (int k = 0; k < 8 && cases[i].kv[k][0]; k++) {
			v = config_value(child_out, cases[i].kv[k][0]);
			if (!v || strcmp(v, cases[i].kv[k][1]) != 0) {
				fprintf(stderr, "  BUDDYSLAB_CONF=%s: bsl_config_print shows %s:%s, want %s\n",
					cases[i].conf, cases[i].kv[k][0], v ? v : "(missing)", cases[i].kv[k][1]);
				t_failed_case = 1;
			}
		}
	}
}

/* ----------------------------------------------------------------- mallopt */

static void mallopt_mmap_threshold(void)
{
	struct bsl_stats s0, s1, s2, s3;
	bsl_stats(&s0);
	char *p = malloc(512 << 10);
	REQUIRE(p);
	memset(p, 1, 512 << 10);
	bsl_stats(&s1);
	free(p);
	CHECK(s1.nmalloc_large == s0.nmalloc_large + 1);    /* default: 512 KiB is mmap'd */

	CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
	char *out = capture(bsl_config_print);
	const char *v = out ? config_value(out, "mmap_threshold") : NULL;
	CHECK(v && strcmp(v, "1048576") == 0);
	bsl_stats(&s1);
	p = malloc(512 << 10);
	REQUIRE(p);
	memset(p, 2, 512 << 10);
	bsl_stats(&s2);
	CHECK(s2.nmalloc_large == s1.nmalloc_large);         /* from the arena now */
	CHECK(s2.nmalloc_run == s1.nmalloc_run + 1);
	CHECK(bsl_owns(p) == 1);
	CHECK(malloc_usable_size(p) >= 512 << 10);
	char *q = malloc(2 << 20);                          /* still above: mmap'd */
	REQUIRE(q);
	bsl_stats(&s3);
	CHECK(s3.nmalloc_large == s2.nmalloc_large + 1);
	free(q);
	free(p);
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	out = capture(bsl_config_print);
	v = out ? config_value(out, "mmap_threshold") : NULL;
	CHECK(v && strcmp(v, "131072") == 0);
}

int main(int argc, char **argv)
{
	self_exe = argv[0];
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_main();
	if (argc > 1 && strcmp(argv[1], "--adopt-child") == 0)
		return adopt_child();
	T_RUN(buddyinfo_format);
	T_RUN(buddyinfo_second_zone);
	T_RUN(adopted_zone_is_seen);
	T_RUN(slabinfo_format);
	T_RUN(slabinfo_active_tracks);
	T_RUN(stats_consistency);
	T_RUN(mallinfo2_tracks);
	T_RUN(malloc_info_xml);
	T_RUN(stats_report_at_exit);
	T_RUN(conf_warnings);
	T_RUN(config_print_values);
	T_RUN(mallopt_mmap_threshold);
	return t_done();
}
