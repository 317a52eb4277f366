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
#include "cache.h"

enum tier { TIER_SLAB, TIER_RUN, TIER_LARGE, TIER_SIZE0 };

struct block {
	enum tier tier;
	size_t usable;            /* bytes the program may use */
	struct page_desc *desc;   /* slab page or run head */
	unsigned class_idx;
	bool was_freed;           /* lookup failed: p lies in a block already freed */
	size_t slot;              /* the block's bytes: class size, run or mapping length */
	unsigned kind;            /* secure canary: enum sec_kind from the trailer */
};

/* ---------------------------------------------------------------- lookup */

/* Classify p; false when p is not the start of a live block, and then
 * b->tier says nothing and b->was_freed whether p lies in a freed block. */
static bool lookup_tier(const void *p, struct block *b)
{
	struct page_desc *d = arena_desc_of(p);
	if (d) {
		unsigned c = d->class_idx;
		if (d->kind == PD_SLAB && c) {
			size_t off = (uintptr_t)p + d->slab_base_hidden;
			size_t i = class_obj_index(&class_info[c], off);
			if (i >= class_info[c].nobjs || i < sec_front_objs)
				return false;
			*b = (struct block){ TIER_SLAB, 0, d, c, false, class_info[c].size, 0 };
			return true;
		}
		size_t in_page = (uintptr_t)p & (PAGE_SIZE - 1);  /* secure: after a front canary */
		if (d->kind == PD_RUN && (in_page == 0 || in_page == sec_run_front) &&
		    !(d->flags & PDF_CACHED)) {
			*b = (struct block){ TIER_RUN, 0, d, 0, false, run_usable(d) - in_page, 0 };
			return true;
		}
		b->was_freed = (d->freed && d->kind != PD_SLAB && d->kind != PD_RUN) ||
			       (d->kind == PD_RUN && (d->flags & PDF_CACHED));
		return false;
	}
	if (unlikely(opt.secure & SEC_SIZE0)) {
		int st = secure_size0_state(p);
		if (st == SIZE0_LIVE) {
			*b = (struct block){ TIER_SIZE0, 0, NULL, 0, false, 0, 0 };
			return true;
		}
		b->was_freed = st == SIZE0_FREED;
		if (st != SIZE0_NOT)
			return false;
	}
	size_t n = large_usable_size(p, &b->was_freed);
	if (!n)
		return false;
	if (unlikely(opt.secure & SEC_QUARANTINE) && secure_holds(p)) {
		b->was_freed = true;      /* freed, waiting in the quarantine */
		return false;
	}
	*b = (struct block){ TIER_LARGE, 0, NULL, 0, false, n, 0 };
	return true;
}

static bool block_lookup(const void *p, struct block *b)
{
	b->was_freed = false;
	if (!lookup_tier(p, b))
		return false;
	b->usable = b->slot;
	if (unlikely(opt.secure & SEC_CANARY) && b->tier != TIER_SIZE0) {
		bool front;
		b->usable = secure_requested(p, b->slot, &b->kind, &front);
		if (front != (b->tier == TIER_RUN && ((uintptr_t)p & (PAGE_SIZE - 1))))
			return false;     /* a run's page start, or inside its first page */
	}
	return true;
}

COLD __attribute__((noreturn)) static void invalid_pointer(const void *p, const char *api,
							  const struct block *b)
{
	cache_check_not_named(p, api);   /* a named cache's object: say which cache */
	/* A freed large block's address may since have been mapped by the program
	 * itself: then p is a foreign pointer, not a double free. */
	bool was_freed = b->was_freed &&
			 (arena_desc_of(p) || large_cache_holds(p) || !os_is_mapped(p) ||
			  ((opt.secure & SEC_QUARANTINE) && secure_holds(p)));
	if (was_freed)   /* in a slab, run or mapping that was freed: most likely a double free */
		bsl_fatalf("aborting on an invalid pointer", "double free %p (free(): invalid pointer "
			   "%p, passed to %s: its memory was already freed)", p, p, api);
	bsl_fatalf("aborting on an invalid pointer", "free(): invalid pointer %p (passed to %s)", p, api);
}

COLD __attribute__((noreturn)) static void double_free(const void *p)
{
	bsl_fatalf("aborting on a double free", "double free %p", p);
}

/* ------------------------------------------------------------ allocation */

static void *slab_alloc(unsigned c)
{
	void *p = tcache_pop(&tc_self.bins[c]);
	if (likely(p))
		return p;
	bsl_maintenance();
	return tcache_alloc_slow(c);
}

static void *alloc_tiers(size_t n, size_t align, bool zero);
static bool quarantine_drain(void);

/* Zero a block before it is handed out (memcheck may still see it as freed). */
static void zero_block(void *p, size_t n)
{
	vg_open(p, n);
	memset(p, 0, n);
}

/* Allocate n bytes aligned to align (a power of two), zeroed when asked.
 * Sets errno on failure. When the OS refuses memory, the cached large
 * mappings (which hold address space under ulimit -v) are given back and
 * the allocation is tried once more.
 * Under memcheck a block takes one byte more than asked (no-access, as all
 * of its slot past n): its one-past-the-end pointer, which a program may
 * keep (a full vector's end), then points into its own slot, not at the
 * start of the next block, which would look reachable through it. */
static NOINLINE void *alloc_slow(size_t n, size_t align, bool zero)
{
	bsl_ensure_init();
	if (unlikely(n > PTRDIFF_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	size_t slot = n + (unlikely(vg_active) ? 1 : 0);
	void *p = alloc_tiers(slot, align, zero);
	if (unlikely(!p) && (large_cache_release(UINT64_MAX) | quarantine_drain()))
		p = alloc_tiers(slot, align, zero);
	if (unlikely(vg_active) && p) {
		struct block b;
		VERIFY(block_lookup(p, &b));
		vg_malloclike(p, n, b.usable, zero);
	}
	return p;
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

/* Allocation entry points other than malloc's and calloc's fast paths count
 * their bytes down here. */
static inline void *alloc_counted(size_t n, size_t align, bool zero)
{
	if (unlikely(prof_count(n)))
		return alloc_sampled(n, align, zero);
	return alloc_slow(n, align, zero);
}

#define ZERO_BY_OS ((size_t)4 << 20)   /* below, writing zeros beats the syscalls and faults */

static void *alloc_tiers(size_t n, size_t align, bool zero)
{
	void *p;
	if (unlikely(opt.secure & SEC_SIZE0) && n == 0 && align <= MIN_ALIGN &&
	    (p = secure_size0_alloc()))
		return p;
	if (unlikely(sec_canary_bytes) && n >= SEC_REQ_MAX)
		goto nomem;
	size_t need = n + sec_canary_bytes;      /* secure canary: the trailer */
	if (need <= SLAB_MAX && align <= PAGE_SIZE) {
		unsigned c = size_to_class(need > align ? need : align);
		while (c <= NCLASSES && class_info[c].size % align)
			c++;     /* a class whose objects are all aligned */
		if (c <= NCLASSES) {
			p = opt.tcache ? slab_alloc(c) : (slab_alloc_bulk(c, &p, 1) ? p : NULL);
			if (!p)
				goto nomem;
			if (opt.secure)
				secure_open(p, n, class_info[c].size, SEC_OPEN_SLAB);
			if (zero && !(opt.secure & SEC_FILL))   /* fill: zero already */
				zero_block(p, n);
			return p;
		}
	}
	bsl_maintenance();
	size_t front = align <= sec_run_front ? sec_run_front : 0;   /* secure canary */
	size_t padded = align_up(need + front ? need + front : 1, PAGE_SIZE);
	if (padded <= opt_mmap_threshold() && align <= CHUNK_SIZE) {
		bool dirty = true;
		p = align <= PAGE_SIZE ? tcache_run_take(padded >> PAGE_SHIFT) : NULL;
		if (!p)
			p = run_alloc(padded, align, &dirty);
		if (!p)
			goto nomem;
		p = (char *)p + front;
		if (zero && dirty)
			zero_block(p, n);
		if (opt.secure)
			secure_open(p, n, padded - front, front ? SEC_OPEN_FRONT : 0);
		return p;
	}
	padded = align_up(need ? need : 1, PAGE_SIZE);
	bool dirty;
	p = large_alloc(need, align, &dirty);   /* fresh mappings are zero */
	if (!p && padded <= CHUNK_SIZE && align <= CHUNK_SIZE)
		p = run_alloc(padded, align, &dirty);   /* mmap refused: use free arena pages */
	if (!p)
		goto nomem;
	/* A reused mapping from ZERO_BY_OS up: os_zero writes only the pages
	 * that are resident, so the pages the program never touched are not
	 * faulted in to be written with zeros. */
	if (zero && dirty && n >= ZERO_BY_OS && !vg_active)
		os_zero(p, padded);
	else if (zero && dirty)
		zero_block(p, n);
	if (opt.secure & SEC_CANARY) {   /* a large block, or a run when mmap was refused */
		struct block b;
		VERIFY(lookup_tier(p, &b));
		secure_open(p, n, b.slot, 0);
	}
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

/* Secure quarantine (secure.h): what leaves a ring is freed for real here. */
enum { QTAG_SLAB, QTAG_RUN, QTAG_LARGE };

static void release_held(const struct sec_held *h)
{
	void *p = h->p;
	if (!p)
		return;                /* could not be made readable again: stays out */
	bsl_maintenance();
	if (h->tag == QTAG_SLAB) {
		/* a write while it waited: the mark (and, with fill, the zeros) broken */
		if (!obj_is_free(p))
			bsl_fatalf("aborting on heap corruption", "write after free: the free object %p "
				   "was modified at offset 0 while in quarantine", p);
		secure_check_free(p, h->len);
		slab_free_bulk(&p, 1);     /* quarantine turns the thread cache off */
	} else if (h->tag == QTAG_RUN) {
		secure_check_run(p, h->len);
		run_free_parked(arena_desc_of(p));
	} else {
		large_free(p);
	}
}

static void quarantine_put(unsigned ring, void *p, size_t len, unsigned tag, bool in_arena)
{
	struct sec_held out;
	if (secure_hold(ring, p, len, tag, in_arena, &out))
		release_held(&out);
}

/* Memory is short: free every block waiting in the quarantine. */
static bool quarantine_drain(void)
{
	bool any = false;
	struct sec_held h;
	for (unsigned r = SEC_QOBJ; (opt.secure & SEC_QUARANTINE) && r <= SEC_QPAGE; r++)
		while (secure_unhold(r, &h)) {
			release_held(&h);
			any = true;
		}
	return any;
}

/* Secure mode's part of a free: the checks, then the fill or the quarantine.
 * true: the block is dealt with (waits in the quarantine). */
static bool secure_free(void *p, const struct block *b)
{
	if (b->tier == TIER_SIZE0) {
		secure_size0_free(p);
		return true;
	}
	bool slab = b->tier == TIER_SLAB, run = b->tier == TIER_RUN;
	secure_close(p, b->slot, slab ? SEC_OPEN_SLAB : 0);
	void *pages = run ? desc_addr(b->desc) : p;      /* a run's block may not start its pages */
	size_t len = run ? run_usable(b->desc) : b->slot;
	if (opt.secure & SEC_QUARANTINE) {
		if (slab) {
			obj_set_next(p, NULL);   /* reads as free: a second free is a double free */
			quarantine_put(SEC_QOBJ, p, b->slot, QTAG_SLAB, true);
		} else if (run) {
			run_park(b->desc);       /* counts as freed; a second free is a double free */
			quarantine_put(SEC_QPAGE, pages, len, QTAG_RUN, true);
		} else {
			quarantine_put(SEC_QPAGE, p, len, QTAG_LARGE, false);
		}
		return true;
	}
	if ((opt.secure & SEC_FILL) && !slab)
		os_zero(pages, len);     /* erased; resident pages stay, for the next block */
	return false;
}

static NOINLINE void free_slow(void *p, const char *api)
{
	if (!p)
		return;
	int saved_errno = errno;
	struct block b;
	if (!block_lookup(p, &b))
		invalid_pointer(p, api, &b);
	vg_freelike(p);    /* memcheck reports its own double frees: no tag read then */
	switch (b.tier) {
	case TIER_SLAB:
		if (!vg_active && obj_is_free(p))
			double_free(p);
		if (opt.secure && secure_free(p, &b))
			break;
		bsl_maintenance();
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
		if (opt.secure && secure_free(p, &b))
			break;
		if (tcache_run_park(b.desc))
			break;
		bsl_maintenance();
		run_free(b.desc);
		break;
	case TIER_LARGE:
		if (unlikely(opt.prof))
			prof_forget(p, NULL);
		if (opt.secure && secure_free(p, &b))
			break;
		bsl_maintenance();
		large_free(p);
		break;
	case TIER_SIZE0:
		secure_free(p, &b);
		break;
	}
	errno = saved_errno;
}

EXPORT void free(void *p)
{
	struct arena *a = &arenas[0];
	size_t off = (uintptr_t)p + a->base_hidden;       /* p - base (arena.h) */
	if (likely(off < a->limit)) {
		/* a page that is not a slab has obj_nobjs 0, so it fails the test */
		struct page_desc *d = &a->desc[off >> PAGE_SHIFT];
		size_t obj_off = (uintptr_t)p + d->slab_base_hidden;
		struct tcache_bin *b = &tc_self.bins[(size_t)d->class_idx];
		if (likely(obj_index(d->obj_inv, d->obj_shift, obj_off) < d->obj_nobjs &&
			   b->room > 0)) {
			if (unlikely(obj_is_free(p)))
				double_free(p);
			tcache_push(b, p);
			return;
		}
	}
	free_slow(p, "free");
}

/* Secure sized (secure.h): the size and alignment a sized free names, and for
 * C++ the form of delete, must match the block. */
#define UNSIZED SIZE_MAX

static const char *const kind_name[] = { "malloc", "operator new", "operator new[]", "free" };

static NOINLINE void sized_check(const void *p, size_t n, size_t align, const char *api,
				 unsigned kind)
{
	struct block b;
	if (!p || !block_lookup(p, &b))
		return;                      /* free reports it, or not ours (interposed) */
	bool exact = opt.secure & SEC_CANARY;
	if (n != UNSIZED && (exact ? n != b.usable : n > b.usable)) {
		bsl_fatalf("aborting on a size mismatch", "size mismatch: %s(%p, %zu), but the "
			   "block %s %zu bytes", api, p, n, exact ? "was allocated with" : "has",
			   b.usable);
	}
	if (align > MIN_ALIGN && (uintptr_t)p % align)
		bsl_fatalf("aborting on an alignment mismatch", "alignment mismatch: %s(%p) with "
			   "alignment %zu, which the block does not have", api, p, align);
	if (exact && kind != SEC_KIND_MALLOC && b.kind != SEC_KIND_MALLOC && b.kind != kind &&
	    b.kind != SEC_KIND_FREE) {
		bsl_fatalf("aborting on a mismatched delete", "mismatched delete: %s on %p, which %s "
			   "allocated", api, p, kind_name[b.kind]);
	}
}

EXPORT void free_sized(void *p, size_t n)
{
	if (unlikely(opt.secure & SEC_SIZED))
		sized_check(p, n, 0, "free_sized", SEC_KIND_MALLOC);
	free(p);
}

EXPORT void free_aligned_sized(void *p, size_t align, size_t n)
{
	if (unlikely(opt.secure & SEC_SIZED))
		sized_check(p, n, align, "free_aligned_sized", SEC_KIND_MALLOC);
	free(p);
}

/* The C++ operators' part (cxx.c), with SEC_SIZED on: new records its form
 * in the trailer (canary), delete checks the size, alignment and form. */
void bsl_secure_new(void *p, unsigned kind)
{
	struct block b;
	if ((opt.secure & SEC_CANARY) && p && block_lookup(p, &b) && b.tier != TIER_SIZE0)
		secure_set_kind(p, b.slot, kind);
}

void bsl_secure_delete(void *p, size_t n, size_t align, unsigned kind)
{
	sized_check(p, n, align, kind == SEC_KIND_NEW ? "operator delete" : "operator delete[]", kind);
}
EXPORT void cfree(void *p) { free(p); }

/* --------------------------------------------------------------- realloc */

/* Can p (described by b) hold n bytes where it is, at the tier n belongs to? */
static bool resize_in_place(void *p, struct block *b, size_t n)
{
	switch (b->tier) {
	case TIER_SLAB:
		return n + sec_canary_bytes <= SLAB_MAX &&
		       size_to_class(n + sec_canary_bytes) == b->class_idx;
	case TIER_RUN: {
		size_t npages = (n + PAGE_SIZE - 1) >> PAGE_SHIFT;
		if (n <= SLAB_MAX || (npages << PAGE_SHIFT) > opt_mmap_threshold() ||
		    npages > b->desc->npages)
			return false;
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

EXPORT void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {               /* glibc's choice: free and return NULL */
		free(p);
		return NULL;
	}
	bsl_ensure_init();
	struct block b;
	if (!block_lookup(p, &b))
		invalid_pointer(p, "realloc", &b);
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
				void *q = large_realloc(p, n);
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
	void *q = alloc_counted(n, MIN_ALIGN, false);
	if (!q)
		return NULL;
	vg_open(p, b.usable);   /* the copy may read past the old request; p is freed next */
	memcpy(q, p, n < b.usable ? n : b.usable);
	free_slow(p, "realloc");
	return q;
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

static void *aligned_alloc_checked(size_t align, size_t n)
{
	if (align < MIN_ALIGN)
		align = MIN_ALIGN;
	return alloc_counted(n, align, false);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	if (align % sizeof(void *) || !is_pow2(align))
		return EINVAL;
	int saved_errno = errno;
	void *p = aligned_alloc_checked(align, n);
	errno = saved_errno;
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
	return aligned_alloc_checked(align, n);
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (!is_pow2(align))        /* glibc rounds up to a power of two */
		align = align ? (size_t)1 << ceil_log2(align) : 1;
	return aligned_alloc_checked(align, n);
}

EXPORT void *valloc(size_t n)
{
	return aligned_alloc_checked(PAGE_SIZE, n);
}

EXPORT void *pvalloc(size_t n)
{
	size_t rounded = align_up(n ? n : 1, PAGE_SIZE);
	if (rounded < n || n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned_alloc_checked(PAGE_SIZE, rounded);
}

EXPORT size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	struct block b;
	if (!block_lookup(p, &b))
		invalid_pointer(p, "malloc_usable_size", &b);
	if (unlikely(vg_active))
		return vg_requested_size(p, b.usable);
	return b.usable;
}

/* A diagnostic, not a fast path: for a slab object it walks the slab's free
 * list and the calling thread's cache. An object parked in another thread's
 * cache still counts as owned (reading that cache would race its owner). */
EXPORT int bsl_owns(const void *p)
{
	struct block b = { .was_freed = false };
	/* lookup_tier: no canary read, p may be another thread's (being freed) */
	if (!p || !bsl_ready || !lookup_tier(p, &b))
		return 0;
	if (b.tier == TIER_SLAB && (opt.secure & SEC_QUARANTINE) && obj_is_free(p))
		return 0;           /* waiting in the quarantine */
	if (b.tier == TIER_SLAB &&
	    (tcache_holds(p, b.class_idx) || slab_obj_is_free(b.desc, p)))
		return 0;
	return 1;
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
