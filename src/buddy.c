/*
 * buddy.c - the binary buddy allocator, one zone per CPU.
 *
 * The rules (as in the kernel's mm/page_alloc.c):
 *  - a free block of order k is 2^k pages whose first page index (relative to
 *    its arena's base) is a multiple of 2^k;
 *  - its buddy is the block at index ^ (1 << k); two free buddies of the same
 *    order always merge into one block of order k+1 (up to MAX_ORDER), so
 *    neighbours that are not buddies (pages 1 and 2) never merge;
 *  - allocation takes the smallest free order that fits and splits it,
 *    putting the upper halves back on the lower lists.
 * Invariant: a free block's head descriptor has kind PD_FREE and its order,
 * every other page of it has kind PD_NONE, and it is on exactly one free list
 * (that of its order, in its zone). A chunk never merges across its border,
 * because arena bases are chunk aligned and MAX_ORDER is one chunk.
 *
 * The pcp cache keeps up to PCP_HIGH order-0 pages unmerged so that slabs of
 * one page come and go without splitting and merging.
 *
 * Dirty accounting: a free block is dirty (PDF_DIRTY) when any of its pages
 * may still be resident; merging a dirty and a clean block gives a dirty
 * block. zone->dirty_pages sums the dirty blocks and the pcp pages.
 *
 * Lock order: slab cpu lock -> zone lock -> arena lock. One zone lock at a time.
 */
#define _GNU_SOURCE
#include "buddy.h"
#include "os.h"
#include <sched.h>

struct zone zones[MAX_CPUS];
static unsigned nzones_used;       /* highest zone index used + 1; atomic */

unsigned buddy_nzones(void)
{
	return __atomic_load_n(&nzones_used, __ATOMIC_ACQUIRE);
}

struct zone *buddy_zone_here(void)
{
	int cpu = sched_getcpu();
	unsigned id = cpu < 0 ? 0 : (unsigned)cpu % MAX_CPUS;
	return &zones[id];
}

static struct page_desc *page_at(struct page_desc *d, size_t idx)
{
	return &arenas[d->arena].desc[idx];
}

/* --- free lists: every change of a list goes through these two --- */

static void list_add_locked(struct zone *z, struct page_desc *d, unsigned order, bool dirty)
{
	d->kind = PD_FREE;
	d->order = (uint8_t)order;
	d->flags = dirty ? PDF_DIRTY : 0;
	d->prev = NULL;
	d->next = z->free_list[order];
	if (d->next)
		d->next->prev = d;
	z->free_list[order] = d;
	z->nfree[order]++;
	z->free_pages += (size_t)1 << order;
	if (dirty)
		z->dirty_pages += (size_t)1 << order;
}

static void list_del_locked(struct zone *z, struct page_desc *d)
{
	unsigned order = d->order;
	if (d->prev)
		d->prev->next = d->next;
	else
		z->free_list[order] = d->next;
	if (d->next)
		d->next->prev = d->prev;
	d->next = d->prev = NULL;
	z->nfree[order]--;
	z->free_pages -= (size_t)1 << order;
	if (d->flags & PDF_DIRTY)
		z->dirty_pages -= (size_t)1 << order;
	d->kind = PD_NONE;
	d->flags = 0;
}

/* Free one aligned block, merging with its buddy while the buddy is free. */
static void free_block_locked(struct zone *z, struct page_desc *d, unsigned order, bool dirty)
{
	lock_assert_held(&z->lock);
	size_t idx = desc_index(d);
	ASSERT((idx & (((size_t)1 << order) - 1)) == 0);
	while (order < MAX_ORDER) {
		struct page_desc *b = page_at(d, idx ^ ((size_t)1 << order));
		if (b->kind != PD_FREE || b->order != order)
			break;
		ASSERT(b->zone == z->id);
		dirty |= (b->flags & PDF_DIRTY) != 0;
		list_del_locked(z, b);
		idx &= ~((size_t)1 << order);
		order++;
	}
	d = page_at(d, idx);
	list_add_locked(z, d, order, dirty);
}

static bool zone_grow_locked(struct zone *z)
{
	lock_assert_held(&z->lock);
	struct page_desc *c = z->chunk_source ? z->chunk_source(z->id) : arena_chunk_alloc(z->id);
	if (!c)
		return false;
	z->chunks++;
	list_add_locked(z, c, MAX_ORDER, false);   /* freshly committed: clean */
	return true;
}

static struct page_desc *alloc_block_locked(struct zone *z, unsigned order, bool *dirty)
{
	lock_assert_held(&z->lock);
	if (order == 0 && z->pcp_count) {
		struct page_desc *d = z->pcp[--z->pcp_count];
		d->kind = PD_NONE;
		z->free_pages--;
		z->dirty_pages--;
		*dirty = true;
		return d;
	}
	unsigned o = order;
	while (o <= MAX_ORDER && !z->free_list[o])
		o++;
	if (o > MAX_ORDER) {
		if (!zone_grow_locked(z))
			return NULL;
		o = MAX_ORDER;
	}
	struct page_desc *d = z->free_list[o];
	bool is_dirty = d->flags & PDF_DIRTY;
	list_del_locked(z, d);
	size_t idx = desc_index(d);
	while (o > order) {           /* split: the upper half goes back */
		o--;
		list_add_locked(z, page_at(d, idx + ((size_t)1 << o)), o, is_dirty);
	}
	*dirty = is_dirty;
	return d;
}

static void pcp_drain_locked(struct zone *z, unsigned npages)
{
	while (npages-- && z->pcp_count) {
		struct page_desc *d = z->pcp[0];
		z->pcp[0] = z->pcp[--z->pcp_count];
		z->free_pages--;
		z->dirty_pages--;
		d->kind = PD_NONE;
		free_block_locked(z, d, 0, true);
	}
}

static void free_order0_locked(struct zone *z, struct page_desc *d)
{
	if (z->pcp_count == PCP_HIGH)
		pcp_drain_locked(z, PCP_BATCH);
	d->kind = PD_PCP;
	d->flags = 0;
	z->pcp[z->pcp_count++] = d;
	z->free_pages++;
	z->dirty_pages++;
}

static void note_zone_used(struct zone *z)
{
	unsigned want = (unsigned)(z - zones) + 1, cur = buddy_nzones();
	while (cur < want &&
	       !__atomic_compare_exchange_n(&nzones_used, &cur, want, false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

/* Try z, then (when z cannot grow) every other zone that owns memory. */
typedef struct page_desc *(*zone_alloc_fn)(struct zone *, size_t, size_t, bool *);

static struct page_desc *alloc_any_zone(struct zone *z, zone_alloc_fn fn, size_t a1, size_t a2,
					bool *dirty)
{
	z->id = (uint16_t)(z - zones);   /* zones[] index; the same value every time */
	lock_acquire(&z->lock);
	struct page_desc *d = fn(z, a1, a2, dirty);
	lock_release(&z->lock);
	if (likely(d)) {
		note_zone_used(z);
		return d;
	}
	unsigned n = buddy_nzones();
	for (unsigned i = 0; i < n && !d; i++) {
		struct zone *o = &zones[i];
		if (o == z || !__atomic_load_n(&o->chunks, __ATOMIC_RELAXED))
			continue;
		lock_acquire(&o->lock);
		d = fn(o, a1, a2, dirty);
		lock_release(&o->lock);
	}
	return d;
}

static struct page_desc *alloc_order_fn(struct zone *z, size_t order, size_t unused, bool *dirty)
{
	return alloc_block_locked(z, (unsigned)order, dirty);
}

struct page_desc *buddy_alloc(struct zone *z, unsigned order, bool *dirty)
{
	ASSERT(order <= MAX_ORDER);
	return alloc_any_zone(z, alloc_order_fn, order, 0, dirty);
}

void buddy_free(struct page_desc *head, unsigned order)
{
	struct zone *z = &zones[head->zone];
	lock_acquire(&z->lock);
	if (order == 0)
		free_order0_locked(z, head);
	else
		free_block_locked(z, head, order, true);
	if (BSL_DEBUG)
		buddy_check(z);
	lock_release(&z->lock);
}

/* Free [head, head + npages) as the largest aligned blocks that tile it.
 * Dirty order-0 pieces go to the pcp; clean ones straight to the lists. */
static void free_range_locked(struct zone *z, struct page_desc *head, size_t npages, bool dirty)
{
	size_t idx = desc_index(head);
	while (npages) {
		unsigned order = (unsigned)__builtin_ctzl(idx | CHUNK_PAGES);
		while (((size_t)1 << order) > npages)
			order--;
		struct page_desc *d = page_at(head, idx);
		if (order == 0 && dirty)
			free_order0_locked(z, d);
		else
			free_block_locked(z, d, order, dirty);
		idx += (size_t)1 << order;
		npages -= (size_t)1 << order;
	}
}

static struct page_desc *alloc_pages_fn(struct zone *z, size_t npages, size_t align_pages,
					bool *dirty)
{
	size_t want = npages > align_pages ? npages : align_pages;
	unsigned order = ceil_log2(want);
	struct page_desc *d = alloc_block_locked(z, order, dirty);
	size_t rest = ((size_t)1 << order) - npages;
	if (d && rest)   /* the leftover keeps the block's dirtiness */
		free_range_locked(z, page_at(d, desc_index(d) + npages), rest, *dirty);
	return d;
}

struct page_desc *buddy_alloc_pages(struct zone *z, size_t npages, size_t align_pages, bool *dirty)
{
	ASSERT(npages >= 1 && npages <= CHUNK_PAGES && is_pow2(align_pages));
	return alloc_any_zone(z, alloc_pages_fn, npages, align_pages, dirty);
}

void buddy_free_pages(struct page_desc *head, size_t npages)
{
	struct zone *z = &zones[head->zone];
	lock_acquire(&z->lock);
	free_range_locked(z, head, npages, true);
	if (BSL_DEBUG)
		buddy_check(z);
	lock_release(&z->lock);
}

void buddy_drain_pcp(struct zone *z)
{
	lock_acquire(&z->lock);
	pcp_drain_locked(z, PCP_HIGH);
	lock_release(&z->lock);
}

static size_t purge_zone(struct zone *z)
{
	size_t nbytes = 0;
	lock_acquire(&z->lock);
	pcp_drain_locked(z, PCP_HIGH);
	for (unsigned o = 0; o <= MAX_ORDER; o++) {
		for (struct page_desc *d = z->free_list[o]; d; d = d->next) {
			if (!(d->flags & PDF_DIRTY))
				continue;
			size_t len = (size_t)PAGE_SIZE << o;
			z->npurge++;
			if (!os_purge(desc_addr(d), len, false))
				continue;
			d->flags &= (uint8_t)~PDF_DIRTY;
			z->dirty_pages -= (size_t)1 << o;
			nbytes += len;
		}
	}
	lock_release(&z->lock);
	return nbytes;
}

size_t buddy_purge_all(void)
{
	size_t nbytes = 0;
	for (unsigned i = 0; i < buddy_nzones(); i++)
		nbytes += purge_zone(&zones[i]);
	return nbytes;
}

void buddy_check(struct zone *z)
{
	size_t free_pages = z->pcp_count, dirty = z->pcp_count;
	for (unsigned o = 0; o <= MAX_ORDER; o++) {
		size_t n = 0;
		for (struct page_desc *d = z->free_list[o]; d; d = d->next, n++) {
			size_t idx = desc_index(d);
			VERIFY(d->kind == PD_FREE && d->order == o && d->zone == z->id);
			VERIFY((idx & (((size_t)1 << o) - 1)) == 0);
			VERIFY(!d->next || d->next->prev == d);
			if (o < MAX_ORDER) {  /* the buddy is never free at the same order */
				struct page_desc *b = page_at(d, idx ^ ((size_t)1 << o));
				VERIFY(!(b->kind == PD_FREE && b->order == o));
			}
			free_pages += (size_t)1 << o;
			if (d->flags & PDF_DIRTY)
				dirty += (size_t)1 << o;
		}
		VERIFY(n == z->nfree[o]);
	}
	for (unsigned i = 0; i < z->pcp_count; i++)
		VERIFY(z->pcp[i]->kind == PD_PCP);
	VERIFY(free_pages == z->free_pages);
	VERIFY(dirty == z->dirty_pages);
}

void buddy_lock_all(void)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		lock_acquire(&zones[i].lock);
}

void buddy_unlock_all(void)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		lock_release(&zones[i].lock);
}
