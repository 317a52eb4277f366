/*
 * run.h - page runs: blocks above the slab sizes and up to mmap_threshold,
 * an exact number of pages of one chunk, cut from one buddy block (3 pages:
 * take a 4-page block, give 1 back) and grown in place by realloc over the
 * free blocks right after it (run_grow), so that it may span several blocks;
 * it goes back as any range of a chunk does (buddy_free_pages). The head
 * page's descriptor has kind PD_RUN and the length; the other pages stay
 * PD_NONE, so an interior pointer is rejected.
 */
#ifndef BSL_RUN_H
#define BSL_RUN_H
#include "arena.h"
#pragma GCC visibility push(hidden)

/* A run of at least nbytes aligned to align_bytes (<= CHUNK_SIZE). *dirty
 * is false when every page is known to be zero. */
void *run_alloc(size_t nbytes, size_t align_bytes, bool *dirty);
void run_free(struct page_desc *head);
/* A parked run (a thread's run cache, tcache.c, or the quarantine) counts as
 * freed while it waits: run_park marks (PDF_CACHED) and counts it, run_unpark
 * hands it out again, run_free_parked gives a parked run back to the buddy
 * layer. The thread cache counts its own parks and takes (without an atomic,
 * in its statistics record) and only marks: run_mark_parked, run_mark_unparked. */
void run_park(struct page_desc *head);
void run_unpark(struct page_desc *head);
static inline void run_mark_parked(struct page_desc *head) { head->flags |= PDF_CACHED; }
static inline void run_mark_unparked(struct page_desc *head)
{
	head->flags &= (uint8_t)~PDF_CACHED;
}
void run_free_parked(struct page_desc *head);
/* Give back the pages past new_npages (< head->npages). */
void run_shrink(struct page_desc *head, size_t new_npages);
/* Grow the run to new_npages (<= CHUNK_PAGES) where it is: true when the
 * pages after it were free in the buddy layer and are its own now (realloc
 * then keeps the address); false, with the run unchanged, when any is in use. */
bool run_grow(struct page_desc *head, size_t new_npages);
static inline size_t run_usable(const struct page_desc *head)
{
	return (size_t)head->npages << PAGE_SHIFT;
}
#pragma GCC visibility pop
#endif
