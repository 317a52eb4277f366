/*
 * block.c - from a pointer to its block: the lookup every slow path and check
 * uses, the invalid-pointer and double-free messages, and the two API calls
 * that are lookups (malloc_usable_size, bsl_owns).
 *
 * A pointer is a live block when it is
 *   - in the arena, on a slab page, the start of an object of that slab
 *     (slab_obj_index) past the secure front objects;
 *   - in the arena, the start of a page run (or, with secure canaries, just
 *     past its front canary) that is not parked in a thread cache;
 *   - a secure size-0 slot that is not freed;
 *   - the start of a live large block that is not waiting in the quarantine.
 * Whether a slab object is itself free is the caller's question (its tag,
 * slab.h), because only the caller knows which thread may be freeing it.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <malloc.h>
#include "block.h"
#include "init.h"
#include "config.h"
#include "tcache.h"
#include "slab.h"
#include "run.h"
#include "large.h"
#include "os.h"
#include "secure.h"
#include "vg.h"
#include "cache.h"

bool block_classify(const void *p, struct block *b)
{
	struct page_desc *d = arena_desc_of(p);
	if (d) {
		unsigned c = d->class_idx;
		if (d->kind == PD_SLAB && c) {
			size_t i = slab_obj_index(d, p);
			if (i >= d->obj_nobjs || i < sec_front_objs)
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

/* With secure canaries: the request the trailer records, and the front
 * canary where p's tier puts it. */
static bool trailer_agrees(const void *p, struct block *b)
{
	bool front;
	b->usable = secure_requested(p, b->slot, &b->kind, &front);
	return front == (b->tier == TIER_RUN && ((uintptr_t)p & (PAGE_SIZE - 1)));
}

bool block_lookup(const void *p, struct block *b)
{
	b->was_freed = false;
	if (!block_classify(p, b))
		return false;
	b->usable = b->slot;
	if (unlikely(opt.secure & SEC_CANARY) && b->tier != TIER_SIZE0)
		return trailer_agrees(p, b);    /* false: a run's page start, or inside its first page */
	return true;
}

bool block_lookup_free(const void *p, struct block *b)
{
	b->was_freed = false;
	if (!block_classify(p, b))
		return false;
	b->usable = b->slot;
	if (unlikely(opt.secure & SEC_CANARY) && b->tier != TIER_SIZE0 && b->tier != TIER_SLAB)
		return trailer_agrees(p, b);
	return true;
}

void block_invalid(const void *p, const char *api, const struct block *b)
{
	cache_check_not_named(p, api);   /* a named cache's object: say which cache */
	/* A freed large block's address may since have been mapped by the program
	 * itself: then p is a foreign pointer, not a double free. */
	bool was_freed = b->was_freed &&
			 (arena_desc_of(p) || large_cache_holds(p) || !os_is_mapped(p) ||
			  ((opt.secure & SEC_QUARANTINE) && secure_holds(p)));
	if (was_freed && !strcmp(api, "malloc_usable_size"))
		block_used_freed(p, api);
	if (was_freed)   /* in a slab, run or mapping that was freed: most likely a double free */
		bsl_fatalf("aborting on an invalid pointer", "double free %p (free(): invalid pointer "
			   "%p, passed to %s: its memory was already freed)", p, p, api);
	bsl_fatalf("aborting on an invalid pointer", "free(): invalid pointer %p (passed to %s)", p, api);
}

void block_double_free(const void *p)
{
	bsl_fatalf("aborting on a double free", "double free %p", p);
}

void block_used_freed(const void *p, const char *api)
{
	bsl_fatalf("aborting on a use after free", "use after free: %p passed to %s after it "
		   "was freed", p, api);
}

/* ------------------------------------------------------- lookups in the API */

EXPORT size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	struct block b;
	if (!block_lookup(p, &b))
		block_invalid(p, "malloc_usable_size", &b);
	if (b.tier == TIER_SLAB && !vg_active && obj_is_free(p))
		block_used_freed(p, "malloc_usable_size");    /* in a cache, a slab or the quarantine */
	if (unlikely(vg_active))
		return vg_requested_size(p, b.usable);
	return b.usable;
}

/* A diagnostic, not a fast path: for a slab object it walks the slab's free
 * list and the calling thread's cache (a named cache's object: cache.c does,
 * with the slab's free list and the thread's bin of that cache). An object
 * parked in another thread's cache still counts as owned (reading that cache
 * would race its owner). */
EXPORT int bsl_owns(const void *p)
{
	struct block b = { .was_freed = false };
	if (!p || !bsl_ready)
		return 0;
	int named = cache_owns(p);
	if (named >= 0)
		return named;
	/* lookup_tier: no canary read, p may be another thread's (being freed) */
	if (!block_classify(p, &b))
		return 0;
	if (b.tier == TIER_SLAB && (opt.secure & SEC_QUARANTINE) && obj_is_free(p))
		return 0;           /* waiting in the quarantine */
	if (b.tier == TIER_SLAB &&
	    (tcache_holds(p, b.class_idx) || slab_obj_is_free(b.desc, p)))
		return 0;
	return 1;
}
