/*
 * arena.h - the sbrk-style heap and its page descriptors (the kernel's mem_map).
 *
 * An arena is one large virtual range reserved once (PROT_NONE, NORESERVE);
 * its break advances one 4 MiB chunk at a time (committed with mprotect).
 * Beside the data range lies an array with one struct page_desc per page,
 * committed together with the chunk it describes, so that
 *     desc = arena->desc + ((p - base) >> PAGE_SHIFT)
 * maps any pointer to its page's metadata in O(1) with no lock. Addresses of
 * heap memory are kept hidden (common.h: the arena's base, every slab page's
 * slab base), so that memcheck never finds a block through them; p - base is
 * p + base_hidden.
 * When an arena is full another is reserved (up to MAX_ARENAS); a reservation
 * that fails (ulimit -v) is retried at half the size down to one chunk. Under
 * a finite RLIMIT_AS the first try is an eighth of the limit.
 *
 * Invariants
 *  - an arena's base is CHUNK_SIZE aligned; chunk i covers pages [i*1024, i*1024+1024).
 *  - no descriptor or arena field holds a plain address of heap memory.
 *  - arenas[0..narenas) never move or shrink; narenas only grows (release store).
 *  - a descriptor beyond the break is never read.
 * Lock: arena_lock protects growth (the break, narenas); it is the innermost lock.
 */
#ifndef BSL_ARENA_H
#define BSL_ARENA_H
#include "common.h"
#pragma GCC visibility push(hidden)

#define MAX_ARENAS 64

enum page_kind {
	PD_NONE = 0,   /* inside a block whose head describes it, or unused */
	PD_FREE,       /* head of a free buddy block of `order` */
	PD_PCP,        /* an order-0 page parked in a zone's pcp cache */
	PD_SLAB,       /* a page of a slab (every page carries class_idx or cache_id, slab_base_hidden) */
	PD_RUN,        /* head of a page run of `npages` handed to the program */
};

#define PDF_PARTIAL  0x02  /* slab head: on its cpu's partial list */
#define PDF_EMPTY    0x20  /* slab head: on its cpu's empty list (every object free) */
#define PDF_CACHED   0x04  /* PD_RUN head: freed, parked in a thread's run cache */
#define PDF_GUARD    0x08  /* slab head: its last page is a guard (secure mode) */
#define PDF_SAMPLED  0x10  /* PD_RUN head: a heap-profile sample (prof.h); written by
			    * the thread that allocates or frees the run */

/* One per page. Who writes each field is stated beside it. */
struct page_desc {
	uint8_t  kind;        /* enum page_kind; owner zone lock (free/run) or slab lock */
	uint8_t  order;       /* PD_FREE: block order; PD_SLAB head: slab order */
	uint8_t  class_idx;   /* PD_SLAB, every page: size class; 0 otherwise */
	uint8_t  flags;       /* PDF_*; same lock as kind */
	uint16_t zone;        /* zone owning this page's chunk; set once per chunk */
	uint8_t  arena;       /* index of the arena holding this page; set once */
	uint8_t  cache_id;    /* PD_SLAB, every page: 0 for kmalloc-N; else 1 + the named
	                         cache's slot (slab.h: class_idx and obj_nobjs are 0 then,
	                         so free()'s fast path and lookup refuse it); slab lock */
	union {
		uintptr_t slab_base_hidden;  /* PD_SLAB, every page: hide_addr(the slab's
		                                first object) */
		uint64_t dirty_ms;    /* PD_FREE head: when it became dirty (ms); 0 = clean */
	};
	union {
		uint32_t npages;      /* PD_RUN head: length in pages */
		struct {
			uint16_t inuse;   /* slab head: objects taken out (under slab lock) */
			uint16_t nobjs;   /* slab head: objects in the slab */
			uint16_t fresh;   /* slab head: objects never handed out start here */
			uint16_t slab_cpu;/* slab head: the slab cache lists it lives on */
		};
	};
	void    *freelist;    /* slab head: free objects, linked through their first word */
	struct page_desc *next, *prev;  /* free list (zone lock) or partial list (slab lock) */
	/* PD_SLAB, every page: the class's object-start test (sizeclass.h), copied
	 * here so that free() reads one descriptor and no table; obj_nobjs is 0 on
	 * every other page, which fails the test. Written under the slab lock. */
	uint64_t obj_inv;
	uint16_t obj_nobjs;
	uint8_t  obj_shift;
	uint8_t  ready;       /* 1 once zone and arena are set; 0 again when the page of
	                         descriptors holding it was given back (buddy.c) */
	uint8_t  freed;       /* 1 when the page was last part of a slab or run that was
	                         freed (names a double free in messages) */
	uint8_t  spare[3];
};
_Static_assert(sizeof(struct page_desc) == 64, "a page descriptor is 64 bytes");

struct arena {
	uintptr_t base_hidden; /* hide_addr(first data page), which is CHUNK_SIZE aligned */
	struct page_desc *desc;/* npages descriptors */
	size_t  npages;        /* pages reserved */
	size_t  nchunks;       /* chunks committed so far (the break), under arena_lock */
	size_t  limit;         /* nchunks * CHUNK_SIZE: bytes valid from base (release) */
};

extern struct arena arenas[MAX_ARENAS];
extern unsigned narenas;         /* read with acquire; written under arena_lock */

/* Commit one more chunk; returns the descriptor of its first page (zone and
 * arena fields set, all else zero), or NULL when no memory is left. */
struct page_desc *arena_chunk_alloc(uint16_t zone);

/* The descriptor of the page holding p, or NULL when p lies in no arena's
 * committed range. Lock-free. */
static inline struct page_desc *arena_desc_of(const void *p)
{
	unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		struct arena *a = &arenas[i];
		size_t off = (uintptr_t)p + a->base_hidden;
		if (off < __atomic_load_n(&a->limit, __ATOMIC_ACQUIRE))
			return &a->desc[off >> PAGE_SHIFT];
	}
	return NULL;
}

static inline size_t desc_index(const struct page_desc *d)
{
	return (size_t)(d - arenas[d->arena].desc);
}
static inline char *desc_addr(const struct page_desc *d)
{
	return (char *)((desc_index(d) << PAGE_SHIFT) - arenas[d->arena].base_hidden);
}

/* Set zone and arena in the descriptors [from, CHUNK_PAGES) of a chunk. */
void arena_desc_init(struct page_desc *chunk, size_t from, uint8_t arena_idx, uint16_t zone);

/* A whole free chunk needs only its first descriptor page; the rest can be
 * given back (buddy.c does) and set again when the chunk is split. */
#define CHUNK_DESC_PAGES   (CHUNK_PAGES * sizeof(struct page_desc) / PAGE_SIZE)
#define DESCS_PER_PAGE     (PAGE_SIZE / sizeof(struct page_desc))

void arena_lock_all(void);     /* fork: prepare */
void arena_unlock_all(void);   /* fork: parent and child */
size_t arena_committed_bytes(void);
void arena_thp_advise(int mode);   /* 1 = hugepage, 0 = nohugepage, -1 = leave */
#pragma GCC visibility pop
#endif
