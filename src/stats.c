/*
 * stats.c - see stats.h: the views (bsl_stats, buddyinfo, slabinfo, the report
 * at exit or on a signal) and glibc's introspection calls (mallinfo2,
 * malloc_stats, malloc_info).
 *
 * The views are built into a buffer (struct text) and written with one
 * write() per buffer-full, cut at line ends. The public views use 2 KiB on
 * the caller's stack. The report (stats_report) uses report_buf, 8 KiB, which
 * holds it whole up to about 48 zones (a 2-zone report is about 2.7 KB), so
 * reports of processes that exit together do not interleave; it is static
 * because the report may run in a signal handler on a thread with a small
 * stack. report_owner (atomic) is the thread using it, or 0; a report that
 * finds it taken (another thread's report, or a signal report interrupting
 * one) uses 1 KiB of stack instead, in more writes.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <limits.h>
#include <errno.h>
#include "buddyslab.h"
#include "init.h"
#include "config.h"
#include "buddy.h"
#include "slab.h"
#include "tcache.h"
#include "large.h"
#include "secure.h"
#include "output.h"
#include "stats.h"
#include "cache.h"
#include <unistd.h>

EXPORT int bsl_stats(struct bsl_stats *out)
{
	struct bsl_stats s = { 0 };
	size_t slab_obj_bytes = 0, slab_pages = 0;
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		struct slab_cpu *sc = &slab_cpus[i];
		for (unsigned c = 1; c < NSLAB_IDX; c++) {     /* named caches too (slab.h) */
			uint64_t out_objs = __atomic_load_n(&sc->nobjs_out[c], __ATOMIC_RELAXED);
			slab_obj_bytes += out_objs * slab_geom(c)->size;
			slab_pages += (size_t)__atomic_load_n(&sc->nslabs[c], __ATOMIC_RELAXED)
				      << slab_geom(c)->order;
			s.nmalloc_slab += __atomic_load_n(&sc->nalloc[c], __ATOMIC_RELAXED);
			s.nfree_slab += __atomic_load_n(&sc->nfree[c], __ATOMIC_RELAXED);
		}
	}
	size_t run_pages = 0, free_pages = 0, dirty_pages = 0;
	for (unsigned i = 0; i < buddy_nzones(); i++) {
		struct zone *z = &zones[i];
		run_pages += __atomic_load_n(&z->run_pages, __ATOMIC_RELAXED);
		free_pages += __atomic_load_n(&z->free_pages, __ATOMIC_RELAXED);
		dirty_pages += __atomic_load_n(&z->dirty_pages, __ATOMIC_RELAXED);
		s.npurge += __atomic_load_n(&z->npurge, __ATOMIC_RELAXED);
		s.nmalloc_run += __atomic_load_n(&z->nrun_alloc, __ATOMIC_RELAXED);
		s.nfree_run += __atomic_load_n(&z->nrun_free, __ATOMIC_RELAXED);
	}
	size_t large_bytes, large_blocks, tc_bytes, ncaches;
	uint64_t ntake, npark;
	large_totals(&large_bytes, &large_blocks);
	tcache_totals(&tc_bytes, &ncaches, &ntake, &npark);
	s.nmalloc_run += ntake;     /* the run caches' hits and parks */
	s.nfree_run += npark;
	size_t arena_bytes = arena_committed_bytes();
	s.tcache = tc_bytes;
	size_t held = slab_obj_bytes + (run_pages << PAGE_SHIFT) + large_bytes;
	size_t parked = tc_bytes + secure_held_bytes();    /* freed, not yet reusable */
	s.allocated = held > parked ? held - parked : 0;   /* racy readers may see more parked */
	s.active = ((slab_pages + run_pages) << PAGE_SHIFT) + large_bytes;
	size_t cached = large_cached_bytes();
	s.mapped = arena_bytes + large_bytes + cached;
	s.dirty = (dirty_pages << PAGE_SHIFT) + cached;
	s.returned = (free_pages - dirty_pages) << PAGE_SHIFT;
	s.resident = s.mapped - s.returned;
	large_counts(&s.nmalloc_large, &s.nfree_large);
	size_t qbytes, qn;
	secure_held_large(&qbytes, &qn);
	s.nfree_large += qn;       /* waiting in the quarantine: freed for the program */
	s.nthreads = ncaches;
	*out = s;
	return 0;
}

static void text_buddyinfo(struct text *t)
{
	text_printf(t, "buddyinfo: zone  free blocks of order 0..%u  (pcp, dirty pages, clean pages)\n",
		    MAX_ORDER);
	for (unsigned i = 0; i < buddy_nzones(); i++) {
		struct zone *z = &zones[i];
		if (!z->chunks)
			continue;
		/* no lock: a view may be asked for from a signal handler; the figures
		 * of a zone in use are a moment's snapshot either way */
		text_printf(t, "buddyslab zone %3u ", i);
		for (unsigned o = 0; o <= MAX_ORDER; o++)
			text_printf(t, "%6zu ", __atomic_load_n(&z->nfree[o], __ATOMIC_RELAXED));
		size_t free_pages = __atomic_load_n(&z->free_pages, __ATOMIC_RELAXED);
		size_t dirty = __atomic_load_n(&z->dirty_pages, __ATOMIC_RELAXED);
		text_printf(t, " pcp %u dirty %zu clean %zu\n",
			   __atomic_load_n(&z->pcp_count, __ATOMIC_RELAXED), dirty,
			   free_pages > dirty ? free_pages - dirty : 0);
	}
}

EXPORT void bsl_buddyinfo(int fd)
{
	char buf[2048];
	struct text t = TEXT_INIT(buf, fd);
	text_buddyinfo(&t);
	text_flush(&t);
}

static void text_slabinfo(struct text *t)
{
	text_printf(t, "slabinfo: # name  <active_objs> <num_objs> <objsize> <objperslab> "
		    "<pagesperslab> <slabs>\n");
	for (unsigned c = 1; c <= NCLASSES; c++) {
		uint64_t active = 0, slabs = 0;
		for (unsigned i = 0; i < MAX_CPUS; i++) {
			active += __atomic_load_n(&slab_cpus[i].nobjs_out[c], __ATOMIC_RELAXED);
			slabs += __atomic_load_n(&slab_cpus[i].nslabs[c], __ATOMIC_RELAXED);
		}
		char name[32];
		class_name(c, name, sizeof name);
		const struct class_info *ci = &class_info[c];
		text_printf(t, "%-16s %10lu %10lu %6u %5u %4u %8lu\n", name, (unsigned long)active,
			    (unsigned long)(slabs * ci->nobjs), ci->size, ci->nobjs, 1u << ci->order,
			    (unsigned long)slabs);
	}
	cache_text_slabinfo(t);     /* the named caches, by name */
}

EXPORT void bsl_slabinfo(int fd)
{
	char buf[2048];
	struct text t = TEXT_INIT(buf, fd);
	text_slabinfo(&t);
	text_flush(&t);
}

EXPORT void bsl_config_print(int fd)
{
	bsl_ensure_init();
	config_print(fd);
}

EXPORT const char *bsl_version(void)
{
	return "buddyslab " BUDDYSLAB_VERSION;
}

/* The report's header line names the process (reports of several processes
 * may share a stderr); malloc_stats' copy of the line does not. */
static void text_stats_line(struct text *t, bool with_pid)
{
	struct bsl_stats s;
	bsl_stats(&s);
	text_printf(t, "buddyslab stats: ");
	if (with_pid)
		text_printf(t, "pid %ld ", (long)getpid());
	text_printf(t, "allocated %zu active %zu mapped %zu resident %zu dirty %zu returned %zu "
		    "tcache %zu threads %zu purges %zu\n", s.allocated, s.active, s.mapped, s.resident,
		    s.dirty, s.returned, s.tcache, (size_t)s.nthreads, (size_t)s.npurge);
}

static char report_buf[8192];
static uint64_t report_owner;

void stats_report(void)
{
	char small[1024];
	uint64_t none = 0;
	bool own = __atomic_compare_exchange_n(&report_owner, &none, lock_self(), false,
					       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
	struct text t = TEXT_INIT(small, OUT_REPORT);
	if (own)
		t = (struct text)TEXT_INIT(report_buf, OUT_REPORT);
	text_stats_line(&t, true);
	text_buddyinfo(&t);
	text_slabinfo(&t);
	text_flush(&t);
	if (own)
		__atomic_store_n(&report_owner, 0, __ATOMIC_RELEASE);
}

void stats_after_fork_child(void)
{
	/* another thread's report did not follow us; our own (a handler that
	 * forks interrupted it) finishes in the child too */
	if (__atomic_load_n(&report_owner, __ATOMIC_RELAXED) != lock_self())
		__atomic_store_n(&report_owner, 0, __ATOMIC_RELAXED);
}

/* ------------------------------------------------ glibc's introspection */

EXPORT struct mallinfo2 mallinfo2(void)
{
	struct bsl_stats s;
	bsl_stats(&s);
	size_t large_bytes, large_blocks, qbytes, qn;
	large_totals(&large_bytes, &large_blocks);
	secure_held_large(&qbytes, &qn);     /* waiting in the quarantine: mapped, not in use */
	size_t live_bytes = large_bytes > qbytes ? large_bytes - qbytes : 0;
	struct mallinfo2 m = { 0 };
	m.arena = s.mapped - large_bytes;          /* arena bytes committed */
	m.ordblks = 0;
	m.hblks = large_blocks > qn ? large_blocks - qn : 0;
	m.hblkhd = live_bytes;
	m.uordblks = s.allocated > live_bytes ? s.allocated - live_bytes : 0;   /* outside large blocks */
	m.fordblks = m.arena > m.uordblks ? m.arena - m.uordblks : 0;
	m.keepcost = s.dirty;
	return m;
}

static int clamp_int(size_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v;
}

EXPORT struct mallinfo mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo m = { 0 };
	m.arena = clamp_int(m2.arena);
	m.hblks = clamp_int(m2.hblks);
	m.hblkhd = clamp_int(m2.hblkhd);
	m.uordblks = clamp_int(m2.uordblks);
	m.fordblks = clamp_int(m2.fordblks);
	m.keepcost = clamp_int(m2.keepcost);
	return m;
}

EXPORT void malloc_stats(void)
{
	struct bsl_stats s;
	bsl_stats(&s);
	char buf[1024];
	struct text t = TEXT_INIT(buf, 2);    /* glibc's malloc_stats writes to stderr too */
	text_printf(&t, "Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
		    "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n",
		    s.mapped, s.allocated, s.mapped, s.allocated);
	text_stats_line(&t, false);
	text_flush(&t);
}

EXPORT int malloc_info(int options, FILE *fp)
{
	if (options != 0) {
		errno = EINVAL;
		return -1;
	}
	struct bsl_stats s;
	bsl_stats(&s);
	fprintf(fp, "<malloc version=\"buddyslab-1\">\n");
	for (unsigned c = 1; c <= NCLASSES; c++) {
		uint64_t active = 0;
		for (unsigned i = 0; i < MAX_CPUS; i++)
			active += __atomic_load_n(&slab_cpus[i].nobjs_out[c], __ATOMIC_RELAXED);
		if (active)
			fprintf(fp, "<size from=\"%u\" to=\"%u\" active=\"%lu\"/>\n",
				c > 1 ? class_info[c - 1].size + 1 : 1, class_info[c].size,
				(unsigned long)active);
	}
	fprintf(fp, "<total type=\"mmap\" size=\"%zu\"/>\n<system type=\"current\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n<inuse size=\"%zu\"/>\n</malloc>\n",
		s.mapped - arena_committed_bytes(), s.mapped, s.mapped, s.allocated);
	return 0;
}
