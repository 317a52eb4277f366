/*
 * buddy.h - per-CPU buddy zones: the page allocator under slabs and runs.
 *
 * A zone owns the chunks it took from the arena (page_desc.zone). Pages are
 * always freed back to the zone that owns their chunk, whichever thread or
 * CPU frees them. Orders 0..MAX_ORDER; a chunk is one order-MAX_ORDER block.
 */
#ifndef BSL_BUDDY_H
#define BSL_BUDDY_H
#include "arena.h"
#pragma GCC visibility push(hidden)

#define PCP_HIGH  64   /* order-0 pages a zone keeps unmerged */
#define PCP_BATCH 32   /* pages moved between pcp and free lists at once */

struct zone {
	lock_t lock;
	uint16_t id;                                /* index in zones[]; set once */
	struct page_desc *free_list[MAX_ORDER + 1]; /* heads of doubly linked lists */
	struct page_desc *free_tail[MAX_ORDER + 1]; /* and their tails */
	size_t nfree[MAX_ORDER + 1];                /* blocks on each list */
	size_t free_pages;      /* pages on free lists and in pcp */
	size_t dirty_pages;     /* of free_pages, the ones that may be resident */
	size_t chunks;          /* chunks this zone owns */
	size_t run_pages;       /* pages handed out as runs (stats; atomic) */
	uint64_t nrun_alloc, nrun_free;   /* runs made and freed (stats; atomic) */
	size_t slab_pages;      /* pages handed out to slabs (stats) */
	uint64_t npurge;        /* madvise calls made */
	uint64_t purged_bytes;  /* bytes returned to the OS, ever */
	uint64_t last_use_ms;   /* last free into this zone (ms): the pcp's age */
	uint64_t ndebug_checks; /* debug builds: full check every 64 frees */
	unsigned pcp_count;
	struct page_desc *pcp[PCP_HIGH];            /* order-0 pages, PD_PCP */
	/* Where new chunks come from; NULL means arena_chunk_alloc. Tests set it. */
	struct page_desc *(*chunk_source)(uint16_t zone_id);
} __attribute__((aligned(64)));   /* one cache line apart: no false sharing between CPUs */

extern struct zone zones[MAX_CPUS];

/* The zone of CPU index cpu (os_cpu_index's numbering, which the slab
 * cpus share: slab cpu i takes its slabs from zone i). */
static inline struct zone *buddy_zone_at(unsigned cpu)
{
	return &zones[cpu];
}

/* The zone of the calling CPU. */
struct zone *buddy_zone_here(void);

/* A free block of exactly 2^order pages, from z (taking over another zone's
 * whole free chunk, or growing by a new one, when needed) or, when memory is
 * exhausted, from any other zone's lists (buddy.c). Returns the head
 * descriptor (kind PD_NONE) or NULL. *dirty says whether it may hold old data. */
struct page_desc *buddy_alloc(struct zone *z, unsigned order, bool *dirty);
void buddy_free(struct page_desc *head, unsigned order);
/* The same for a block that has been free (unused) since idle_ms, an
 * earlier time: the decay sees it as idle since then (0: now). */
void buddy_free_idle(struct page_desc *head, unsigned order, uint64_t idle_ms);

/* An exact run of npages (<= CHUNK_PAGES) whose address is a multiple of
 * align_pages (a power of two): the smallest fitting block, with the pages
 * past npages given straight back. */
struct page_desc *buddy_alloc_pages(struct zone *z, size_t npages, size_t align_pages,
				    bool *dirty);
/* Free npages starting at head (any page-aligned range of one chunk). */
void buddy_free_pages(struct page_desc *head, size_t npages);
/* Extend the npages in use from head to new_npages: true when the pages
 * between were all free in head's zone (and in its chunk) and are now taken
 * (PD_NONE, the caller's); false, with nothing changed, otherwise. */
bool buddy_grow_pages(struct page_desc *head, size_t npages, size_t new_npages);

/* Move z's pcp pages back onto the free lists (merging them). */
void buddy_drain_pcp(struct zone *z);
/* Rate-limited decay, in two steps: due claims the tick (at most one per
 * decay_ms/4; cheap when it is not time yet: a clock read and a load; call
 * it from slow paths) and gives its time; purge then returns the free pages
 * idle for longer than decay_ms at that time. */
bool buddy_decay_due(uint64_t *now);   /* true when this call claimed the tick */
void buddy_decay_purge(uint64_t now);

/* Return every dirty free page of every zone to the OS. Returns bytes. */
size_t buddy_purge_all(void);

/* Debug: walk all free lists of z and check every invariant. */
void buddy_check(struct zone *z);

void buddy_lock_all(void);
void buddy_unlock_all(void);
unsigned buddy_nzones(void);    /* zones that were ever used: [0, n) */
#pragma GCC visibility pop
#endif
