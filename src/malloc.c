/*
 * malloc.c - the public API: size dispatch, errno, overflow checks, and the
 * two fast paths.
 *
 * Tiers by request size n (after alignment needs):
 *   n <= SLAB_MAX (16 KiB)          slab object, through the thread cache
 *   n <= opt.mmap_threshold         page run from the buddy zones (freed runs of
 *                                   up to 128 KiB are parked in the thread cache)
 *   larger                          large block, mmap'd (freed ones cached, large.c)
 * Fast paths: malloc and calloc of n <= 16 KiB and free of a slab object in
 * the first arena touch only the thread cache: no lock, no atomic, no
 * syscall, no division (1 KiB and below: one table load for the class).
 * Everything else is in noinline slow paths below them.
 *
 * Misuse: a pointer that is not the start of a live block aborts with
 * "buddyslab: free(): invalid pointer 0x..."; a block freed twice with
 * "buddyslab: double free 0x..." (the tag in slab.h). free() preserves errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <malloc.h>
#include "block.h"
#include "harden.h"
#include "init.h"
#include "config.h"
#include "tcache.h"
#include "slab.h"
#include "run.h"
#include "large.h"
#include "buddy.h"
#include "os.h"
#include "secure.h"
#include "prof.h"
#include "vg.h"

/* ------------------------------------------------------------ allocation */

static void *slab_alloc(unsigned c)
{
	void *p = tcache_pop(&tcache_bins(&tc_self)[c]);   /* secure: sbins */
	if (likely(p))
		return p;
	bsl_maintenance_sometimes();    /* a refill: batch programs make many */
	return tcache_alloc_slow(c);
}

static void *alloc_tiers(size_t n, size_t align, bool zero);

/* Zero a block before it is handed out (memcheck may still see it as freed). */
static void zero_block(void *p, size_t n)
{
	vg_open(p, n);
	memset(p, 0, n);
}

/* The page runs' short path, for the common case above the slabs (a 16-128
 * KiB buffer allocated and freed again): a run of n's page count parked in
 * the thread's run cache, when nothing else applies (secure mode, an
 * alignment, a lowered mmap threshold). NULL: the tiers. Without a thread
 * cache (tcache:0, and memcheck, which turns it off) nothing is parked. */
static inline void *run_cache_alloc(size_t n, size_t align, bool zero)
{
	if (n - (SLAB_MAX + 1) >= ((size_t)RUN_CACHE_MAX_PAGES << PAGE_SHIFT) - SLAB_MAX ||
	    align != MIN_ALIGN || opt.secure)      /* (no caller passes less) */
		return NULL;
	size_t npages = (n + PAGE_SIZE - 1) >> PAGE_SHIFT;
	if ((npages << PAGE_SHIFT) > opt_mmap_threshold())
		return NULL;
	void *p = tcache_run_take_live(npages);
	return p && zero ? memset(p, 0, n) : p;   /* (a tail call) */
}

/* free's side: true when p, a run head that is not cached or sampled, was
 * parked in the run cache (the checks are block_classify's for a run); a
 * park that needs more (tcache_run_park_live) is left to the tiers' path.
 * (With tcache:0 and under memcheck the run cache has no room.) */
static inline bool run_cache_free(void *p)
{
	if (opt.secure || ((uintptr_t)p & (PAGE_SIZE - 1)))
		return false;        /* (a slab object rarely starts a page) */
	struct arena *a = &arenas[0];            /* the first arena's test, as free()'s */
	size_t off = (uintptr_t)p + a->base_hidden;
	struct page_desc *d = &a->desc[off >> PAGE_SHIFT];
	if (off >= a->limit && !(d = arena_desc_of(p)))
		return false;
	return d->kind == PD_RUN && !(d->flags & (PDF_CACHED | PDF_SAMPLED)) &&
	       tcache_run_park_live(d, p);
}

/* The OS refused memory: give back what the process holds idle (cached large
 * mappings, which hold address space under ulimit -v; the quarantine; the
 * calling thread's cache; every CPU's empty slabs) for one more try. True
 * when anything went back. */
static COLD bool release_idle(void)
{
	bool any = large_cache_release(UINT64_MAX);
	any |= (opt.secure & SEC_QUARANTINE) && harden_drain();
	if (tc_self.state == TC_LIVE)
		tcache_flush(&tc_self);
	return slab_purge() | any;
}

/* Allocate n bytes aligned to align (a power of two), zeroed when asked.
 * Sets errno on failure. When the OS refuses memory, what the process holds
 * idle is given back and the allocation is tried once more.
 * Under memcheck a block takes one byte more than asked (no-access, as all
 * of its slot past n): its one-past-the-end pointer, which a program may
 * keep (a full vector's end), then points into its own slot, not at the
 * start of the next block, which would look reachable through it. */
static NOINLINE void *alloc_tiers_slow(size_t n, size_t align, bool zero)
{
	bsl_ensure_init();
	if (unlikely(n > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	size_t slot = n + (unlikely(vg_active) ? 1 : 0);
	void *p = alloc_tiers(slot, align, zero);
	if (unlikely(!p) && release_idle())
		p = alloc_tiers(slot, align, zero);
	if (unlikely(vg_active) && p) {
		struct block b;
		VERIFY(block_lookup(p, &b));
		vg_malloclike(p, n, b.usable, zero);
	}
	return p;
}

/* Everything but malloc's and calloc's fast paths comes here: the run
 * cache's short path first (or secure mode's for small blocks), in a function
 * of its own so that it does not pay the tiers' register saves. */
static NOINLINE void *alloc_slow(size_t n, size_t align, bool zero)
{
	void *p = unlikely(tcache_slow_only) ? harden_alloc_small(n, align, zero)
					     : run_cache_alloc(n, align, zero);
	return p ? p : alloc_tiers_slow(n, align, zero);
}

/* The countdown of prof.h ran out: with prof:1 this block is a sample, a page
 * run (flag PDF_SAMPLED) or a large block, recorded with its call stack. */
static NOINLINE void *alloc_sampled(size_t n, size_t align, bool zero)
{
	bsl_ensure_init();
	if (!prof_tick(n) || vg_active || n > PTRDIFF_MAX)
		return alloc_slow(n, align, zero);
	void *p = NULL;
	size_t padded = align_up(n + sec_canary_bytes ? n + sec_canary_bytes : 1, PAGE_SIZE);
	bool dirty = true;
	if (padded <= opt_mmap_threshold() && align <= CHUNK_SIZE) {
		bsl_maintenance();
		p = align <= PAGE_SIZE ? tcache_run_take(padded >> PAGE_SHIFT) : NULL;
		if (!p)
			p = run_alloc(padded, align, &dirty);
		if (p) {
			arena_desc_of(p)->flags |= PDF_SAMPLED;
			if (opt.secure)
				secure_open(p, n, padded, 0);
		}
	} else {
		p = alloc_slow(n, align, zero);
		dirty = false;
	}
	if (!p)
		return alloc_slow(n, align, zero);
	if (zero && dirty)
		zero_block(p, n);
	prof_record(p, n, (uintptr_t)__builtin_dwarf_cfa());
	return p;
}

#define ZERO_BY_OS ((size_t)4 << 20)   /* below, writing zeros beats the syscalls and faults */

/* The class for need bytes aligned to align (<= PAGE_SIZE): the first from
 * need's whose objects are all aligned; 0 when none is. */
static unsigned aligned_class(size_t need, size_t align)
{
	if (align <= MIN_ALIGN)          /* every class is */
		return size_to_class(need);
	unsigned c = size_to_class(need > align ? need : align);
	while (c <= NCLASSES && (class_info[c].size & (align - 1)))   /* align: a power of two */
		c++;
	return c <= NCLASSES ? c : 0;
}

/* The slab tier: an object of class c for n bytes. */
static void *alloc_slab_tier(unsigned c, size_t n, bool zero)
{
	void *p;
	p = opt.tcache ? slab_alloc(c) : (slab_alloc_bulk(c, &p, 1) ? p : NULL);
	if (!p)
		return NULL;
	if (opt.secure)
		secure_open(p, n, class_info[c].size, SEC_OPEN_SLAB);
	if (zero && !(opt.secure & SEC_FILL))   /* fill: zero already */
		zero_block(p, n);
	return p;
}

/* The run tier: padded bytes of pages, the block front bytes in (a secure
 * front canary). */
static void *alloc_run_tier(size_t n, size_t padded, size_t front, size_t align, bool zero)
{
	bool dirty = true;
	void *p = align <= PAGE_SIZE ? tcache_run_take(padded >> PAGE_SHIFT) : NULL;
	if (!p) {
		bsl_maintenance();     /* the buddy layer's slow path ticks the decay */
		p = run_alloc(padded, align, &dirty);
	}
	if (!p)
		return NULL;
	p = (char *)p + front;
	if (zero && dirty)
		zero_block(p, n);
	if (opt.secure)
		secure_open(p, n, padded - front, front ? SEC_OPEN_FRONT : 0);
	return p;
}

/* The large tier: an mmap'd block, or free arena pages when mmap is refused. */
static void *alloc_large_tier(size_t n, size_t need, size_t align, bool zero)
{
	size_t padded = align_up(need ? need : 1, PAGE_SIZE);
	bool dirty;
	void *p = large_alloc(need, align, &dirty);   /* fresh mappings are zero */
	if (!p && padded <= CHUNK_SIZE && align <= CHUNK_SIZE)
		p = run_alloc(padded, align, &dirty);
	if (!p)
		return NULL;
	/* A reused mapping from ZERO_BY_OS up: os_zero writes only the pages
	 * that are resident, so the pages the program never touched are not
	 * faulted in to be written with zeros. */
	if (zero && dirty && n >= ZERO_BY_OS && !vg_active)
		os_zero(p, padded);
	else if (zero && dirty)
		zero_block(p, n);
	if (opt.secure & SEC_CANARY) {   /* a large block, or a run when mmap was refused */
		struct block b;
		VERIFY(block_classify(p, &b));
		secure_open(p, n, b.slot, 0);
	}
	return p;
}

static void *alloc_tiers(size_t n, size_t align, bool zero)
{
	void *p = NULL;
	if (unlikely(opt.secure & SEC_SIZE0) && n == 0 && align <= MIN_ALIGN &&
	    (p = secure_size0_alloc()))
		return p;
	if (unlikely(sec_canary_bytes) && n >= SEC_REQ_MAX)
		goto nomem;
	size_t need = sec_need(n);      /* secure canary: the trailer */
	unsigned c = need <= SLAB_MAX && align <= PAGE_SIZE ? aligned_class(need, align) : 0;
	if (c) {
		p = alloc_slab_tier(c, n, zero);
	} else {
		size_t front = align <= sec_run_front ? sec_run_front : 0;   /* secure canary */
		size_t padded = align_up(need + front ? need + front : 1, PAGE_SIZE);
		if (padded <= opt_mmap_threshold() && align <= CHUNK_SIZE) {
			p = alloc_run_tier(n, padded, front, align, zero);
		} else {
			bsl_maintenance();
			p = alloc_large_tier(n, need, align, zero);
		}
	}
	if (p)
		return p;
nomem:
	errno = ENOMEM;
	return NULL;
}

EXPORT void *malloc(size_t n)
{
	unsigned c;
	if (unlikely(prof_count(n)))
		return alloc_sampled(n, MIN_ALIGN, false);
	if (likely(n <= SMALL_LOOKUP))
		c = small_class[(n + 15) >> 4];
	else if (n <= SLAB_MAX)
		c = size_to_class(n);
	else
		return alloc_slow(n, MIN_ALIGN, false);
	void *p = tcache_pop(&tc_self.bins[c]);
	if (likely(p))
		return p;
	return alloc_slow(n, MIN_ALIGN, false);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
	size_t n;
	if (unlikely(__builtin_mul_overflow(nmemb, size, &n))) {
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely(prof_count(n)))
		return alloc_sampled(n, MIN_ALIGN, true);
	if (likely(n <= SLAB_MAX)) {
		void *p = tcache_pop(&tc_self.bins[size_to_class(n)]);
		if (likely(p))
			return memset(p, 0, n);
	}
	return alloc_slow(n, MIN_ALIGN, true);
}

/* ------------------------------------------------------------------ free */

static NOINLINE void free_tiers_slow(void *p, const char *api)
{
	if (!p)
		return;
	int saved_errno = errno;
	struct block b;
	if (!block_lookup_free(p, &b))
		block_invalid(p, api, &b);
	vg_freelike(p);    /* memcheck reports its own double frees: no tag read then */
	switch (b.tier) {
	case TIER_SLAB:
		if (!vg_active && obj_is_free(p))
			block_double_free(p);
		if (opt.secure && harden_free(p, &b))
			break;
		bsl_maintenance_sometimes();     /* a bin's flush, or every free without caches */
		if (opt.tcache)
			tcache_free_slow(p, b.class_idx);
		else
			slab_free_bulk(&p, 1);
		break;
	case TIER_RUN:
		if (unlikely(b.desc->flags & PDF_SAMPLED)) {
			b.desc->flags &= (uint8_t)~PDF_SAMPLED;
			prof_forget(p, NULL);
		}
		if (opt.secure && harden_free(p, &b))
			break;
		if (tcache_run_park(b.desc))
			break;
		bsl_maintenance();
		run_free(b.desc);
		break;
	case TIER_LARGE:
		if (unlikely(opt.prof))
			prof_forget(p, NULL);
		if (opt.secure && harden_free(p, &b))
			break;
		bsl_maintenance();
		large_free(p);
		break;
	case TIER_SIZE0:
		harden_free(p, &b);
		break;
	}
	errno = saved_errno;
}

/* free's slow path: the run cache's short path first (it leaves errno
 * alone), or secure mode's for small blocks, as alloc_slow does. */
static NOINLINE void free_slow(void *p, const char *api)
{
	if (unlikely(tcache_slow_only) ? !harden_free_small(p) : !run_cache_free(p))
		free_tiers_slow(p, api);
}

EXPORT void free(void *p)
{
	struct arena *a = &arenas[0];
	size_t off = (uintptr_t)p + a->base_hidden;       /* p - base (arena.h) */
	if (likely(off < a->limit)) {
		/* a page that is not a slab has obj_nobjs 0, so it fails the test */
		struct page_desc *d = &a->desc[off >> PAGE_SHIFT];
		struct tcache_bin *b = &tc_self.bins[(size_t)d->class_idx];
		if (likely(slab_obj_index(d, p) < d->obj_nobjs)) {
			/* the room is taken before it is tested (a decrement
			 * and its sign: fewer instructions than a test, then a
			 * decrement); none (room is never negative) was 0 */
			if (likely(--b->room >= 0)) {
				if (unlikely(obj_is_free(p)))
					block_double_free(p);
				tcache_push_taken(b, p);
				return;
			}
			b->room = 0;
		}
	}
	free_slow(p, "free");
}

EXPORT void cfree(void *p) { free(p); }

/* --------------------------------------------------------------- realloc */

/* Can p (described by b) hold n bytes where it is, at the tier n belongs to?
 * A run shrinks in place, and grows in place when the pages after it are free. */
static bool resize_in_place(void *p, struct block *b, size_t n)
{
	switch (b->tier) {
	case TIER_SLAB:
		return n + sec_canary_bytes <= SLAB_MAX &&
		       size_to_class(n + sec_canary_bytes) == b->class_idx;
	case TIER_RUN: {
		size_t npages = (n + PAGE_SIZE - 1) >> PAGE_SHIFT;
		if (n <= SLAB_MAX || (npages << PAGE_SHIFT) > opt_mmap_threshold())
			return false;
		if (npages > b->desc->npages)
			return run_grow(b->desc, npages);
		if (npages < b->desc->npages)
			run_shrink(b->desc, npages);
		return true;
	}
	case TIER_LARGE:
	case TIER_SIZE0:
		return false;
	}
	return false;
}

/* realloc's short path: p is a block of the first arena that n fits as it
 * is, so it stays: a slab object whose class still fits n (the free fast
 * path's test; a string grown a byte at a time lives here; a freed object is
 * a double free), or a run (not parked) of n's page count at the run tier
 * (resize_in_place's test: a buffer grown a byte at a time is here for 4095
 * calls of every 4096, and the 4096th grows it in place when it can). */
static inline bool realloc_stays(void *p, size_t n)
{
	struct arena *a = &arenas[0];
	size_t off = (uintptr_t)p + a->base_hidden;
	if (off >= a->limit || opt.secure || vg_active)
		return false;
	struct page_desc *d = &a->desc[off >> PAGE_SHIFT];
	if (n > SLAB_MAX) {
		size_t npages = (n + PAGE_SIZE - 1) >> PAGE_SHIFT;
		return !(off & (PAGE_SIZE - 1)) && d->kind == PD_RUN && !(d->flags & PDF_CACHED) &&
		       npages == d->npages && (npages << PAGE_SHIFT) <= opt_mmap_threshold();
	}
	if (slab_obj_index(d, p) >= d->obj_nobjs || size_to_class(n) != d->class_idx)
		return false;
	if (unlikely(obj_is_free(p)))
		block_double_free(p);
	return true;
}

/* realloc of a live p to n > 0 bytes that does not stay by realloc_stays. */
static NOINLINE void *realloc_slow(void *p, size_t n)
{
	bsl_ensure_init();
	struct block b;
	if (!block_lookup(p, &b))
		block_invalid(p, "realloc", &b);
	if (b.tier == TIER_SLAB && !vg_active && obj_is_free(p))
		block_double_free(p);     /* freed (or quarantined): never handed back */
	if (unlikely(n > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	/* under memcheck every realloc moves, so it sees each size; with secure
	 * canaries the trailer is rewritten below */
	if (!vg_active && !(opt.secure & SEC_CANARY)) {
		if (resize_in_place(p, &b, n))
			return p;
		if (b.tier == TIER_LARGE && n > opt_mmap_threshold()) {
			if (!(opt.secure & SEC_GUARD)) {
				void *q = large_realloc(p, b.slot, n);
				if (q && q != p && unlikely(opt.prof))
					prof_forget(p, q);
				return q;
			}
			/* guarded mappings do not mremap: stay while the pages fit
			 * (and are not more than twice what is needed), else copy */
			size_t len = align_up(n, PAGE_SIZE);
			if (len <= b.usable && len >= b.usable / 2)
				return p;
		}
	}
	/* secure canary: stay while n fits the block with its trailer (a slab
	 * object of n's class; a run or large block that n fills more than half
	 * of), re-padded for n: a string grown by realloc copied every time was
	 * 470x slower */
	if (!vg_active && (opt.secure & SEC_CANARY) && b.tier != TIER_SIZE0 &&
	    n + SEC_TRAILER <= b.slot &&
	    (b.tier == TIER_SLAB ? size_to_class(n + SEC_TRAILER) == b.class_idx :
	     (n + SEC_TRAILER) * 2 > b.slot && n > SLAB_MAX)) {
		secure_resize(p, b.slot, n);
		return p;
	}
	void *q = unlikely(prof_count(n)) ? alloc_sampled(n, MIN_ALIGN, false)
					  : alloc_slow(n, MIN_ALIGN, false);
	if (!q)
		return NULL;
	vg_open(p, b.usable);   /* the copy may read past the old request; p is freed next */
	memcpy(q, p, n < b.usable ? n : b.usable);
	free_slow(p, "realloc");
	return q;
}

/* The short paths first, in a function of their own that saves no register
 * when the block stays. */
EXPORT void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {               /* glibc's choice: free and return NULL */
		free(p);
		return NULL;
	}
	if (realloc_stays(p, n))
		return p;
	if (n > SLAB_MAX && !opt.secure && !vg_active && n > opt_mmap_threshold() &&
	    large_realloc_stays(p, n))
		return p;          /* a large block that fits, found without a lookup */
	return realloc_slow(p, n);
}

EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

/* ------------------------------------------------------- aligned variants */

/* The aligned variants' slow path: posix_memalign leaves errno alone. */
static NOINLINE void *aligned_slow(size_t n, size_t align, bool sampled, bool keep_errno)
{
	int saved_errno = errno;
	void *p = sampled ? alloc_sampled(n, align, false) : alloc_slow(n, align, false);
	errno = keep_errno ? saved_errno : errno;
	return p;
}

/* A small block aligned to at most a page comes from the thread cache, as
 * malloc's does, in the first class whose objects are all aligned. */
static ALWAYS_INLINE void *aligned_alloc_checked(size_t align, size_t n, bool keep_errno)
{
	align = align < MIN_ALIGN ? MIN_ALIGN : align;
	bool sampled = prof_count(n);
	unsigned c = !sampled && n <= SLAB_MAX && align <= PAGE_SIZE ? aligned_class(n, align) : 0;
	void *p = c ? tcache_pop(&tc_self.bins[c]) : NULL;
	return likely(p) ? p : aligned_slow(n, align, sampled, keep_errno);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	if (align % sizeof(void *) || !is_pow2(align))
		return EINVAL;
	void *p = aligned_alloc_checked(align, n, true);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	if (!is_pow2(align)) {      /* C17 (DR 460) and glibc >= 2.38; 2.36 rounds up */
		errno = EINVAL;
		return NULL;
	}
	return aligned_alloc_checked(align, n, false);
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (!is_pow2(align))        /* glibc rounds up to a power of two */
		align = align ? (size_t)1 << ceil_log2(align) : 1;
	return aligned_alloc_checked(align, n, false);
}

EXPORT void *valloc(size_t n) { return aligned_alloc_checked(PAGE_SIZE, n, false); }

EXPORT void *pvalloc(size_t n)
{
	size_t rounded = align_up(n ? n : 1, PAGE_SIZE);
	if (rounded < n || n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned_alloc_checked(PAGE_SIZE, rounded, false);
}

/* The names glibc uses internally and that static links may pull in. */
EXPORT void *__libc_malloc(size_t n) __attribute__((alias("malloc")));
EXPORT void __libc_free(void *p) __attribute__((alias("free")));
EXPORT void *__libc_calloc(size_t a, size_t b) __attribute__((alias("calloc")));
EXPORT void *__libc_realloc(void *p, size_t n) __attribute__((alias("realloc")));
EXPORT void *__libc_memalign(size_t a, size_t n) __attribute__((alias("memalign")));
EXPORT void *__libc_valloc(size_t n) __attribute__((alias("valloc")));
EXPORT void *__libc_pvalloc(size_t n) __attribute__((alias("pvalloc")));
EXPORT int __posix_memalign(void **o, size_t a, size_t n) __attribute__((alias("posix_memalign")));
