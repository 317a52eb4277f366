/*
 * slabcheck.c - the slab layer's read-only questions: objects out per slab
 * index, whether an object is free (bsl_owns), and the debug check of a CPU's
 * lists and counts.
 *
 * Nothing here changes a slab. slab_obj_is_free (for a named cache, of a
 * slot's trailer, the slab layer's object) may race with a slab being
 * released, so it validates the head before taking that slab's cpu lock and
 * again under it; slab_check runs with the cpu lock held by its caller. The
 * invariants it checks are slab.c's.
 */
#include "slab.h"

uint64_t slab_objs_out(unsigned c, uint64_t *nslabs)
{
	uint64_t out = 0, slabs = 0;
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		out += __atomic_load_n(&slab_cpus[i].nobjs_out[c], __ATOMIC_RELAXED);
		slabs += __atomic_load_n(&slab_cpus[i].nslabs[c], __ATOMIC_RELAXED);
	}
	if (nslabs)
		*nslabs = slabs;
	return out;
}

/* The index of the object at p in the slab of page d (slab_obj_index); for a
 * named cache's page, p is a slot's trailer (slab.h, struct slab_named). */
static size_t obj_index_at(const struct page_desc *d, const void *p)
{
	if (!d->cache_id)
		return slab_obj_index(d, p);
	const struct slab_named *n = &slab_named[d->cache_id - 1];
	size_t i = obj_index(n->geom.inv, n->geom.shift,
			     (uintptr_t)p - n->first_off + d->slab_base_hidden);
	return i < n->geom.nobjs ? i : SIZE_MAX;
}

bool slab_obj_is_free(struct page_desc *d, const void *p)
{
	/* Read without a lock first: the slab may be released under our feet (the
	 * caller may be asking about a block another thread frees), so check that
	 * the head is plausible, take its cpu's lock, and check again. */
	struct page_desc *s = slab_head(d, p);
	size_t back = (size_t)(d - s);
	if (d->kind != PD_SLAB || d->cache_id > NCACHES_MAX || back >= ((size_t)1 << SLAB_MAX_ORDER) ||
	    back > desc_index(d))
		return true;
	unsigned cpu = __atomic_load_n(&s->slab_cpu, __ATOMIC_RELAXED);
	if (cpu >= MAX_CPUS)
		return true;
	struct slab_cpu *sc = &slab_cpus[cpu];
	bool is_free = false;
	lock_acquire(&sc->lock);
	if (d->kind != PD_SLAB || slab_head(d, p) != s || s->slab_cpu != cpu ||
	    obj_index_at(d, p) >= s->fresh)
		is_free = true;
	for (void *q = s->freelist; q && !is_free; q = slab_next_free(q))
		is_free = q == p;
	lock_release(&sc->lock);
	return is_free;
}

/* Debug check of one slab on list flag of sc; the objects it visited. */
static size_t slab_check_one(const struct page_desc *s, unsigned c, uint8_t flag)
{
	VERIFY(s->kind == PD_SLAB && slab_sidx(s) == c &&
	       unhide_addr(s->slab_base_hidden) - (uintptr_t)desc_addr(s) < PAGE_SIZE);
	VERIFY((s->flags & (PDF_PARTIAL | PDF_EMPTY)) == flag);
	VERIFY(flag == PDF_EMPTY ? s->inuse == 0 : s->inuse > 0 && s->inuse + slab_front(c) < s->nobjs);
	size_t nfree = 0;
	for (void *p = s->freelist; p; p = slab_next_free(p))
		VERIFY(++nfree <= s->nobjs);
	VERIFY(s->inuse + nfree + (size_t)(s->nobjs - s->fresh) + slab_front(c) == s->nobjs);
	return 1 + nfree;
}

size_t slab_check(struct slab_cpu *sc)
{
	size_t visited = 0, empty_bytes = 0;
	for (unsigned c = 1; c < NSLAB_IDX; c++) {
		uint32_t nempty = 0;
		for (struct page_desc *s = sc->partial[c]; s; s = s->next)
			visited += slab_check_one(s, c, PDF_PARTIAL);
		for (struct page_desc *s = sc->empty[c]; s; s = s->next, nempty++) {
			visited += slab_check_one(s, c, PDF_EMPTY);
			empty_bytes += PAGE_SIZE << s->order;
		}
		VERIFY(nempty == sc->nempty[c] && sc->lowater[c] <= nempty);
	}
	VERIFY(empty_bytes == sc->empty_bytes);
	return visited;
}
