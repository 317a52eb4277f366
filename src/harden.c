/*
 * harden.c - secure mode's part of the API, on top of secure.c's primitives:
 *  - free: the canary trailer is checked; with fill a run or large block is
 *    erased (slab objects are zeroed by secure_close); with quarantine the
 *    block waits in a ring (a slab object marked free, so a second free is a
 *    double free; a run counted as freed) and what the ring pushes out is
 *    checked (the mark, the trailer) and freed for real (its zeros are
 *    checked when it is reused, as every freed object's);
 *  - free_sized, free_aligned_sized and the C++ deletes: the size, alignment
 *    and form must match the block.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "harden.h"
#include "init.h"
#include "config.h"
#include "slab.h"
#include "tcache.h"
#include "run.h"
#include "large.h"
#include "os.h"
#include "secure.h"

/* ------------------------------------------------------------ the quarantine */

/* What leaves a ring (secure.h) is freed for real here. A tag says what it
 * is and, for a slab object, its class (no descriptor lookup as it leaves). */
enum { QTAG_SLAB, QTAG_RUN, QTAG_LARGE };
#define QTAG_KIND(tag)   ((tag) & 3)
#define QTAG_CLASS(tag)  ((tag) >> 2)
#define QTAG_OBJ(c)      ((unsigned)(c) << 2 | QTAG_SLAB)

COLD __attribute__((noreturn)) static void modified_in_quarantine(const void *p)
{
	bsl_fatalf("aborting on heap corruption", "write after free: the free object %p "
		   "was modified at offset 0 while in quarantine", p);
}

/* A slab object of class c out of the quarantine, checked: to its bin (the
 * slow paths' bins, tcache.h: room > 0 while the cache is live), or on. */
static void slab_release(void *p, unsigned c)
{
	struct tcache_bin *bin = &tc_self.sbins[c];
	if (tcache_slow_only && bin->room > 0)
		tcache_push(bin, p);
	else if (opt.tcache)
		tcache_free_slow(p, c);
	else
		slab_free_bulk(&p, 1);
}

static void release_held(const struct sec_held *h)
{
	void *p = h->p;
	if (!p)
		return;                /* could not be made readable again: stays out */
	if (QTAG_KIND(h->tag) == QTAG_SLAB) {
		bsl_maintenance_sometimes();
		if (!obj_is_free(p))   /* a write while it waited: the mark broken */
			modified_in_quarantine(p);
		secure_check_free(p, h->len);
		slab_release(p, QTAG_CLASS(h->tag));
		return;
	}
	bsl_maintenance();
	if (QTAG_KIND(h->tag) == QTAG_RUN) {
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

/* Freed slab objects of a thread with a live thread cache wait first in its
 * stage (secure.h), which goes into the object ring under one lock; what
 * leaves the ring then is released as release_held would, one object after
 * another, with the trailers' loop and the clock's tick taken once. */
static void stage_flush(void)
{
	struct sec_obj out[SEC_QSTAGE];
	unsigned nout = secure_stage_flush(out);
	if (!nout)
		return;
	unsigned bad = secure_first_unfree(out, nout);
	bsl_maintenance_sometimes_n(nout);
	for (unsigned i = 0; i < nout; i++) {
		void *p = out[i].p;
		if (unlikely(!obj_is_free(p)))
			modified_in_quarantine(p);
		if (unlikely(i == bad))
			secure_check_free(p, out[i].len);    /* aborts */
		/* slab_release, for a thread whose cache is live (it stages) */
		unsigned c = QTAG_CLASS(out[i].tag);
		struct tcache_bin *bin = &tc_self.sbins[c];
		if (likely(bin->room > 0))
			tcache_push(bin, p);
		else
			tcache_free_slow(p, c);
	}
}

void harden_thread_exit(void)
{
	stage_flush();
}

bool harden_drain(void)
{
	bool any = secure_staged();
	struct sec_held h;
	if (any)
		stage_flush();
	for (unsigned r = SEC_QOBJ; (opt.secure & SEC_QUARANTINE) && r <= SEC_QPAGE; r++)
		while (secure_unhold(r, &h)) {
			release_held(&h);
			any = true;
		}
	return any;
}

bool harden_free(void *p, const struct block *b)
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
			if (tc_self.state == TC_LIVE) {   /* it has an exit hook */
				if (secure_stage(p, b->slot, QTAG_OBJ(b->class_idx)))
					stage_flush();
			} else
				quarantine_put(SEC_QOBJ, p, b->slot, QTAG_OBJ(b->class_idx), true);
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

/* ---------------------------------------------------------- the short paths */

/* These skip what a small block does not need of the tiers (the run cache,
 * memcheck, alignment, the size-0 slots, the general lookup): a third of a
 * small malloc+free pair's instructions under secure:1 before them. */
void *harden_alloc_small(size_t n, size_t align, bool zero)
{
	if (n > SLAB_MAX - sec_canary_bytes || align > MIN_ALIGN ||
	    (n == 0 && (opt.secure & SEC_SIZE0)))
		return NULL;
	unsigned c = size_to_class(sec_need(n));
	void *p = tcache_pop(&tc_self.sbins[c]);    /* empty while the cache is not live */
	if (!p)
		return NULL;
	secure_open_slab(p, n, class_info[c].size);
	if (zero && !(opt.secure & SEC_FILL))      /* fill: zero already */
		memset(p, 0, n);
	return p;
}

/* harden_free's work for a slab object, without its tests of the tier. Only
 * a flush of the stage may make a syscall (the clock's tick, a slab going
 * back): errno is saved around that alone. */
bool harden_free_small(void *p)
{
	/* block_classify's test for a slab object (named caches' pages have
	 * obj_nobjs 0 and fail it), the first arena's first as in free(); and
	 * the bin's room (0 while not live) */
	struct arena *a = &arenas[0];
	size_t off = (uintptr_t)p + a->base_hidden;
	struct page_desc *d = off < a->limit ? &a->desc[off >> PAGE_SHIFT] : arena_desc_of(p);
	if (!d)
		return false;
	size_t i = slab_obj_index(d, p);
	unsigned c = d->class_idx;
	struct tcache_bin *bin = &tc_self.sbins[c];
	if (i >= d->obj_nobjs || i < sec_front_objs || bin->room <= 0)
		return false;
	if (obj_is_free(p))
		block_double_free(p);
	size_t slot = class_info[c].size;
	secure_close_slab(p, slot);
	if (!(opt.secure & SEC_QUARANTINE)) {
		tcache_push(bin, p);   /* room is left */
		return true;
	}
	obj_set_next(p, NULL);     /* reads as free: a second free is a double free */
	if (secure_stage(p, slot, QTAG_OBJ(c))) {   /* room > 0: live, with its exit hook */
		int saved_errno = errno;
		stage_flush();
		errno = saved_errno;
	}
	return true;
}

/* -------------------------------------------------------------- sized frees */

/* The size and alignment a sized free names, and for C++ the form of
 * delete, must match the block. */
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
