/*
 * run.c - page runs (see run.h). Runs come from the calling CPU's zone and
 * go back to the zone owning their chunk. zone->run_pages counts their pages
 * and nrun_alloc / nrun_free the runs handed out and freed (parked ones
 * count as freed); this file is their only writer (atomic adds on the zone's
 * own counters; no lock is held here). The thread caches' parks and takes
 * are counted by tcache.c instead (stats.c adds both).
 */
#include "run.h"
#include "buddy.h"

void *run_alloc(size_t nbytes, size_t align_bytes, bool *dirty)
{
	size_t npages = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT;
	size_t align_pages = align_bytes > PAGE_SIZE ? align_bytes >> PAGE_SHIFT : 1;
	ASSERT(npages <= CHUNK_PAGES && align_pages <= CHUNK_PAGES);
	struct page_desc *d = buddy_alloc_pages(buddy_zone_here(), npages, align_pages, dirty);
	if (!d)
		return NULL;
	d->kind = PD_RUN;
	d->npages = (uint32_t)npages;
	for (size_t i = 0; i < npages; i++)
		d[i].freed = 0;
	__atomic_fetch_add(&zones[d->zone].run_pages, npages, __ATOMIC_RELAXED);
	__atomic_fetch_add(&zones[d->zone].nrun_alloc, 1, __ATOMIC_RELAXED);
	return desc_addr(d);
}

/* The pages go back to the buddy layer (the free was counted by the caller). */
static void run_release(struct page_desc *head)
{
	size_t npages = head->npages;
	ASSERT(head->kind == PD_RUN);
	head->kind = PD_NONE;
	head->npages = 0;
	for (size_t i = 0; i < npages; i++)
		head[i].freed = 1;
	__atomic_fetch_sub(&zones[head->zone].run_pages, npages, __ATOMIC_RELAXED);
	buddy_free_pages(head, npages);
}

void run_free(struct page_desc *head)
{
	__atomic_fetch_add(&zones[head->zone].nrun_free, 1, __ATOMIC_RELAXED);
	run_release(head);
}

void run_park(struct page_desc *head)
{
	head->flags |= PDF_CACHED;
	__atomic_fetch_add(&zones[head->zone].nrun_free, 1, __ATOMIC_RELAXED);
}

void run_unpark(struct page_desc *head)
{
	head->flags &= (uint8_t)~PDF_CACHED;
	__atomic_fetch_add(&zones[head->zone].nrun_alloc, 1, __ATOMIC_RELAXED);
}

void run_free_parked(struct page_desc *head)
{
	head->flags &= (uint8_t)~PDF_CACHED;
	run_release(head);
}

void run_shrink(struct page_desc *head, size_t new_npages)
{
	size_t old = head->npages;
	ASSERT(new_npages >= 1 && new_npages < old);
	head->npages = (uint32_t)new_npages;
	__atomic_fetch_sub(&zones[head->zone].run_pages, old - new_npages, __ATOMIC_RELAXED);
	buddy_free_pages(head + new_npages, old - new_npages);
}

bool run_grow(struct page_desc *head, size_t new_npages)
{
	size_t old = head->npages;
	ASSERT(new_npages > old && new_npages <= CHUNK_PAGES);
	if (!buddy_grow_pages(head, old, new_npages))
		return false;
	for (size_t i = old; i < new_npages; i++)
		head[i].freed = 0;
	head->npages = (uint32_t)new_npages;
	__atomic_fetch_add(&zones[head->zone].run_pages, new_npages - old, __ATOMIC_RELAXED);
	return true;
}
