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
 * Growing a range in place (buddy_grow_pages, for realloc of a page run): the
 * pages right after a range in use can only be covered by free blocks (or
 * pcp pages) each starting where the one before ends, because a free block
 * that began earlier would hold a page in use. So the range is taken block by
 * block under the zone lock: each free block leaves its list whole, and its
 * part past the range goes back as the largest aligned blocks that tile it,
 * as the leftover of an allocation does; a pcp page leaves the pcp. Either
 * every page is taken or none. No rule above changes: what goes back is
 * freed through free_block_locked, and never crosses the chunk's end.
 *
 * Dirty accounting and decay: a free block is dirty when any of its pages may
 * still be resident; its head records since when (dirty_ms, 0 = clean).
 * Merging keeps the newest stamp, so a block is purged only once all of it
 * has been idle for decay_ms. zone->dirty_pages sums the dirty blocks and the
 * pcp pages. buddy_decay_tick(), called from slow paths (or the background
 * thread), at most every decay_ms/4, returns blocks idle longer than decay_ms:
 * it unlinks a batch under the zone lock, calls madvise without it, and
 * frees the batch back as clean blocks. Chunk-sized blocks go first, and a
 * whole free chunk also gives back its descriptor pages but the first (the
 * others are set again, arena_desc_init, when the chunk is next split).
 *
 * Locks: one zone lock at a time; the order is in src/LAYERS.md.
 */
#define _GNU_SOURCE
#include "buddy.h"
#include "os.h"
#include <time.h>
#include "config.h"

struct zone zones[MAX_CPUS];
static unsigned nzones_used;   /* 1 + highest index of a zone that ever held a chunk; atomic */

unsigned buddy_nzones(void)
{
	return __atomic_load_n(&nzones_used, __ATOMIC_ACQUIRE);
}

struct zone *buddy_zone_here(void)
{
	return buddy_zone_at(os_cpu_index());
}

static struct page_desc *page_at(struct page_desc *d, size_t idx)
{
	return &arenas[d->arena].desc[idx];
}

/* --- free lists: every change of a list goes through these two --- */

/* Allocation takes list heads; a block put at the tail is used last, which
 * gives it time to merge with its buddy (the kernel's "merge likely" idea). */
static void list_add_locked(struct zone *z, struct page_desc *d, unsigned order, uint64_t dirty_ms,
			    bool to_tail)
{
	lock_assert_held(&z->lock);
	bool dirty = dirty_ms != 0;
	d->kind = PD_FREE;
	d->order = (uint8_t)order;
	d->flags = 0;
	d->dirty_ms = dirty_ms;
	if (to_tail && z->free_tail[order]) {
		d->next = NULL;
		d->prev = z->free_tail[order];
		d->prev->next = d;
		z->free_tail[order] = d;
	} else {
		d->prev = NULL;
		d->next = z->free_list[order];
		if (d->next)
			d->next->prev = d;
		else
			z->free_tail[order] = d;
		z->free_list[order] = d;
	}
	z->nfree[order]++;
	z->free_pages += (size_t)1 << order;
	if (dirty)
		z->dirty_pages += (size_t)1 << order;
}

static void list_del_locked(struct zone *z, struct page_desc *d)
{
	lock_assert_held(&z->lock);
	unsigned order = d->order;
	if (d->prev)
		d->prev->next = d->next;
	else
		z->free_list[order] = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		z->free_tail[order] = d->prev;
	d->next = d->prev = NULL;
	z->nfree[order]--;
	z->free_pages -= (size_t)1 << order;
	if (d->dirty_ms)
		z->dirty_pages -= (size_t)1 << order;
	d->kind = PD_NONE;
}

/* Free one aligned block, merging with its buddy while the buddy is free. */
static void free_block_locked(struct zone *z, struct page_desc *d, unsigned order, uint64_t dirty_ms,
			      bool to_tail)
{
	lock_assert_held(&z->lock);
	size_t idx = desc_index(d);
	ASSERT((idx & (((size_t)1 << order) - 1)) == 0);
	while (order < MAX_ORDER) {
		struct page_desc *b = page_at(d, idx ^ ((size_t)1 << order));
		if (b->kind != PD_FREE || b->order != order)
			break;
		ASSERT(b->zone == z->id);
		if (b->dirty_ms > dirty_ms)
			dirty_ms = b->dirty_ms;
		list_del_locked(z, b);
		idx &= ~((size_t)1 << order);
		order++;
	}
	d = page_at(d, idx);
	if (!to_tail && order + 1 < MAX_ORDER) {
		/* the kernel's heuristic: if the next-larger block's buddy is free,
		 * this block's own buddy may soon be too; keep it cold */
		size_t parent = idx & ~((size_t)1 << order);
		struct page_desc *pb = page_at(d, parent ^ ((size_t)1 << (order + 1)));
		to_tail = pb->kind == PD_FREE && pb->order == order + 1;
	}
	list_add_locked(z, d, order, dirty_ms, to_tail);
}

static bool zone_grow_locked(struct zone *z)
{
	lock_assert_held(&z->lock);
	struct page_desc *c = z->chunk_source ? z->chunk_source(z->id) : arena_chunk_alloc(z->id);
	if (!c)
		return false;
	z->chunks++;
	list_add_locked(z, c, MAX_ORDER, 0, false);   /* freshly committed: clean */
	return true;
}

/* A block of 2^order pages; *dirty_ms is its dirty stamp (0 = clean). */
static struct page_desc *alloc_block_locked(struct zone *z, unsigned order, bool may_grow,
					   uint64_t *dirty_ms)
{
	lock_assert_held(&z->lock);
	if (order == 0 && z->pcp_count) {
		struct page_desc *d = z->pcp[--z->pcp_count];
		d->kind = PD_NONE;
		z->free_pages--;
		z->dirty_pages--;
		*dirty_ms = z->last_use_ms ? z->last_use_ms : 1;
		return d;
	}
	unsigned o = order;
	while (o <= MAX_ORDER && !z->free_list[o])
		o++;
	if (o > MAX_ORDER) {
		if (!may_grow || !zone_grow_locked(z))
			return NULL;
		o = MAX_ORDER;
	}
	struct page_desc *d = z->free_list[o];
	uint64_t stamp = d->dirty_ms;
	list_del_locked(z, d);
	if (o == MAX_ORDER && !d[DESCS_PER_PAGE].ready)   /* descriptors were given back */
		arena_desc_init(d, DESCS_PER_PAGE, d->arena, z->id);
	size_t idx = desc_index(d);
	while (o > order) {           /* split: the upper half goes back */
		o--;
		list_add_locked(z, page_at(d, idx + ((size_t)1 << o)), o, stamp, false);
	}
	*dirty_ms = stamp;
	return d;
}

static void pcp_drain_locked(struct zone *z, unsigned npages)
{
	lock_assert_held(&z->lock);
	while (npages-- && z->pcp_count) {
		struct page_desc *d = z->pcp[0];
		z->pcp[0] = z->pcp[--z->pcp_count];
		z->free_pages--;
		z->dirty_pages--;
		d->kind = PD_NONE;
		free_block_locked(z, d, 0, z->last_use_ms ? z->last_use_ms : 1, false);
	}
}

static void free_order0_locked(struct zone *z, struct page_desc *d)
{
	lock_assert_held(&z->lock);
	if (z->pcp_count == PCP_HIGH)
		pcp_drain_locked(z, PCP_BATCH);
	d->kind = PD_PCP;
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

/* Where a block comes from, in order:
 *  1. z's own free lists;
 *  2. a whole free chunk of another zone, which changes owner (so that one
 *     CPU's zone does not grow while another's holds idle chunks, and no
 *     zone keeps allocating from another's lists under its lock);
 *  3. a new chunk for z from the arena;
 *  4. out of memory: any zone's free lists, after draining the pcps. */
typedef struct page_desc *(*zone_alloc_fn)(struct zone *, size_t, size_t, bool, bool *);

static struct page_desc *try_zone(struct zone *z, zone_alloc_fn fn, size_t a1, size_t a2,
				  bool may_grow, bool *dirty)
{
	lock_acquire(&z->lock);
	struct page_desc *d = fn(z, a1, a2, may_grow, dirty);
	lock_release(&z->lock);
	return d;
}

/* Move one whole free chunk from another zone to z; false if none has one. */
static bool adopt_chunk(struct zone *z, unsigned nzones)
{
	for (unsigned i = 0; i < nzones; i++) {
		struct zone *o = &zones[i];
		if (o == z || !__atomic_load_n(&o->nfree[MAX_ORDER], __ATOMIC_RELAXED))
			continue;
		lock_acquire(&o->lock);
		struct page_desc *c = o->free_list[MAX_ORDER];
		uint64_t stamp = 0;
		if (c) {
			stamp = c->dirty_ms;
			list_del_locked(o, c);
			o->chunks--;
		}
		lock_release(&o->lock);
		if (!c)
			continue;
		arena_desc_init(c, 0, c->arena, z->id);   /* the new owner, in every page */
		lock_acquire(&z->lock);
		z->chunks++;
		list_add_locked(z, c, MAX_ORDER, stamp, false);
		lock_release(&z->lock);
		note_zone_used(z);   /* stats, views and purge walk zones below nzones_used */
		return true;
	}
	return false;
}

static struct page_desc *alloc_any_zone(struct zone *z, zone_alloc_fn fn, size_t a1, size_t a2,
					bool *dirty)
{
	z->id = (uint16_t)(z - zones);   /* zones[] index; the same value every time */
	struct page_desc *d = try_zone(z, fn, a1, a2, false, dirty);
	if (likely(d))
		return d;
	unsigned n = z->chunk_source ? 0 : buddy_nzones();   /* test zones stay alone */
	if (adopt_chunk(z, n) && (d = try_zone(z, fn, a1, a2, false, dirty)))
		return d;
	d = try_zone(z, fn, a1, a2, true, dirty);
	if (d) {
		note_zone_used(z);
		return d;
	}
	for (unsigned i = 0; i < n && !d; i++) {   /* out of memory: whatever is free */
		buddy_drain_pcp(&zones[i]);
		d = try_zone(&zones[i], fn, a1, a2, false, dirty);
	}
	return d;
}

static struct page_desc *alloc_order_fn(struct zone *z, size_t order, size_t unused,
					bool may_grow, bool *dirty)
{
	uint64_t stamp = 0;
	struct page_desc *d = alloc_block_locked(z, (unsigned)order, may_grow, &stamp);
	*dirty = stamp != 0 || opt.purge_free;   /* MADV_FREE pages may keep old data */
	return d;
}

struct page_desc *buddy_alloc(struct zone *z, unsigned order, bool *dirty)
{
	ASSERT(order <= MAX_ORDER);
	return alloc_any_zone(z, alloc_order_fn, order, 0, dirty);
}

void buddy_free(struct page_desc *head, unsigned order)
{
	buddy_free_idle(head, order, 0);
}

void buddy_free_idle(struct page_desc *head, unsigned order, uint64_t idle_ms)
{
	struct zone *z = &zones[head->zone];
	uint64_t now = os_now_ms();
	lock_acquire(&z->lock);
	if (!idle_ms)
		z->last_use_ms = now;
	/* an idle page skips the pcp lists: drained, it would be dated now, and
	 * merging would date its old free neighbours now too */
	if (order == 0 && !idle_ms)
		free_order0_locked(z, head);
	else
		free_block_locked(z, head, order, idle_ms ? idle_ms : now, false);
	if (BSL_DEBUG && (++z->ndebug_checks & 63) == 0)
		buddy_check(z);
	lock_release(&z->lock);
}

/* Free [head, head + npages) as the largest aligned blocks that tile it.
 * Every piece goes to the free lists, never to the pcp: a page parked there
 * would keep the rest of the run from merging back. to_tail puts them at
 * the lists' cold end (the leftover of a run: keep it free to merge back). */
static void free_range_locked(struct zone *z, struct page_desc *head, size_t npages, uint64_t dirty_ms,
			      bool to_tail)
{
	lock_assert_held(&z->lock);
	size_t idx = desc_index(head);
	while (npages) {
		unsigned order = (unsigned)__builtin_ctzl(idx | CHUNK_PAGES);
		while (((size_t)1 << order) > npages)
			order--;
		struct page_desc *d = page_at(head, idx);
		free_block_locked(z, d, order, dirty_ms, to_tail);
		idx += (size_t)1 << order;
		npages -= (size_t)1 << order;
	}
}

/* The pages the free block or pcp page at d covers; 0 when d is in use. */
static size_t free_len_locked(struct zone *z, const struct page_desc *d)
{
	lock_assert_held(&z->lock);
	if (d->kind == PD_FREE)
		return (size_t)1 << d->order;
	return d->kind == PD_PCP;
}

/* Take the pcp page d out of the pcp (it is there). */
static void pcp_take_locked(struct zone *z, struct page_desc *d)
{
	lock_assert_held(&z->lock);
	unsigned i = 0;
	while (i < z->pcp_count && z->pcp[i] != d)
		i++;
	VERIFY(i < z->pcp_count);
	z->pcp[i] = z->pcp[--z->pcp_count];
	z->free_pages--;
	z->dirty_pages--;
	d->kind = PD_NONE;
}

bool buddy_grow_pages(struct page_desc *head, size_t npages, size_t new_npages)
{
	struct zone *z = &zones[head->zone];
	size_t idx = desc_index(head), from = idx + npages, to = idx + new_npages;
	ASSERT(npages >= 1 && new_npages > npages);
	if (to > (idx & ~(size_t)(CHUNK_PAGES - 1)) + CHUNK_PAGES)
		return false;           /* past the chunk: another zone's, or no pages */
	lock_acquire(&z->lock);
	size_t i = from, len = 1;
	while (i < to && (len = free_len_locked(z, page_at(head, i))))
		i += len;
	if (i < to) {
		lock_release(&z->lock);
		return false;
	}
	for (i = from; i < to; i += len) {
		struct page_desc *d = page_at(head, i);
		if (d->kind == PD_PCP) {
			pcp_take_locked(z, d);
			len = 1;
			continue;
		}
		len = (size_t)1 << d->order;
		uint64_t stamp = d->dirty_ms;
		list_del_locked(z, d);
		if (i + len > to)       /* the tail keeps the block's stamp */
			free_range_locked(z, page_at(head, to), i + len - to, stamp, true);
	}
	if (BSL_DEBUG && (++z->ndebug_checks & 63) == 0)
		buddy_check(z);
	lock_release(&z->lock);
	return true;
}

static struct page_desc *alloc_pages_fn(struct zone *z, size_t npages, size_t align_pages,
					bool may_grow, bool *dirty)
{
	size_t want = npages > align_pages ? npages : align_pages;
	unsigned order = ceil_log2(want);
	uint64_t stamp = 0;
	struct page_desc *d = alloc_block_locked(z, order, may_grow, &stamp);
	size_t rest = ((size_t)1 << order) - npages;
	if (d && rest)   /* the leftover keeps the block's stamp */
		free_range_locked(z, page_at(d, desc_index(d) + npages), rest, stamp, true);
	*dirty = stamp != 0 || opt.purge_free;   /* MADV_FREE pages may keep old data */
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
	uint64_t now = os_now_ms();
	lock_acquire(&z->lock);
	z->last_use_ms = now;
	free_range_locked(z, head, npages, now, false);
	if (BSL_DEBUG && (++z->ndebug_checks & 63) == 0)
		buddy_check(z);
	lock_release(&z->lock);
}

void buddy_drain_pcp(struct zone *z)
{
	lock_acquire(&z->lock);
	pcp_drain_locked(z, PCP_HIGH);
	lock_release(&z->lock);
}

#define PURGE_BATCH 32

/* Return the dirty blocks of z that became dirty at or before `before` (ms).
 * The pcp is drained first when it has not been used since then. */
static size_t purge_zone(struct zone *z, uint64_t before)
{
	size_t nbytes = 0;
	for (int pass = 0; pass < 4096; pass++) {
		struct page_desc *batch[PURGE_BATCH];
		unsigned orders[PURGE_BATCH], n = 0;
		lock_acquire(&z->lock);
		if (z->pcp_count && z->last_use_ms <= before)
			pcp_drain_locked(z, PCP_HIGH);
		for (int o = MAX_ORDER; o >= 0 && n < PURGE_BATCH; o--) {
			struct page_desc *d = z->free_list[o], *next;
			for (; d && n < PURGE_BATCH; d = next) {
				next = d->next;
				if (!d->dirty_ms || d->dirty_ms > before)
					continue;
				list_del_locked(z, d);
				batch[n] = d;
				orders[n++] = (unsigned)o;
			}
		}
		lock_release(&z->lock);
		if (!n)
			break;
		bool ok[PURGE_BATCH];
		size_t pass_bytes = 0;
		for (unsigned i = 0; i < n; i++) {
			size_t len = PAGE_SIZE << orders[i];
			ok[i] = os_purge(desc_addr(batch[i]), len, opt.purge_free);
			if (ok[i])
				pass_bytes += len;
			if (ok[i] && orders[i] == MAX_ORDER)   /* all but the head's page */
				os_purge(batch[i] + DESCS_PER_PAGE,
					 (CHUNK_DESC_PAGES - 1) * PAGE_SIZE, false);
		}
		uint64_t now = os_now_ms();
		lock_acquire(&z->lock);
		z->npurge += n;
		z->purged_bytes += pass_bytes;
		nbytes += pass_bytes;
		for (unsigned i = 0; i < n; i++)
			free_block_locked(z, batch[i], orders[i], ok[i] ? 0 : now, false);
		lock_release(&z->lock);
		/* a short batch was the last; a pass whose every madvise failed would
		 * only take the same blocks again (they went back stamped dirty now) */
		if (n < PURGE_BATCH || !pass_bytes)
			break;
	}
	return nbytes;
}

static uint64_t next_decay_ms;   /* when the next tick may purge; atomic */

bool buddy_decay_due(uint64_t *nowp)
{
	long decay = opt.decay_ms;
	if (decay < 0)
		return false;
	uint64_t now = os_now_ms();
	uint64_t next = __atomic_load_n(&next_decay_ms, __ATOMIC_RELAXED);
	if (now < next)
		return false;
	uint64_t interval = (uint64_t)decay / 4;
	if (!__atomic_compare_exchange_n(&next_decay_ms, &next, now + interval, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return false;     /* another thread is ticking */
	*nowp = now;
	return true;
}

void buddy_decay_purge(uint64_t now)
{
	uint64_t decay = (uint64_t)opt.decay_ms;
	uint64_t before = now > decay ? now - decay : 0;
	for (unsigned i = 0; i < buddy_nzones(); i++)
		if (__atomic_load_n(&zones[i].dirty_pages, __ATOMIC_RELAXED))
			purge_zone(&zones[i], before);
}

size_t buddy_purge_all(void)
{
	size_t nbytes = 0;
	for (unsigned i = 0; i < buddy_nzones(); i++)
		nbytes += purge_zone(&zones[i], UINT64_MAX);
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
			if (d->dirty_ms)
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
		lock_fork_acquire(&zones[i].lock);
}

void buddy_unlock_all(void)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		lock_fork_release(&zones[i].lock);
}
