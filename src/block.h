/*
 * block.h - what a pointer given to the API is: the tier of the live block it
 * starts, that block's bytes, and the messages for one that is not a live
 * block (malloc.c, harden.c and cxx.c's checks ask here).
 */
#ifndef BSL_BLOCK_H
#define BSL_BLOCK_H
#include "common.h"
#include "arena.h"
#pragma GCC visibility push(hidden)

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

/* Classify p by its memory alone (no canary read: p may be another thread's
 * block being freed); false when p is not the start of a live block, and then
 * b->tier says nothing and b->was_freed whether p lies in a freed block. */
bool block_classify(const void *p, struct block *b);
/* block_classify, then the usable bytes: the slot, or with secure canaries
 * the request the trailer records (and b->kind its form); false also when
 * the front canary does not sit where the tier puts it. */
bool block_lookup(const void *p, struct block *b);
/* free's lookup: block_lookup without reading a slab object's trailer (the
 * canary check of free reads it), so b->usable is the slot for every tier. */
bool block_lookup_free(const void *p, struct block *b);
/* Abort naming p and api: a double free when p lies in freed memory that is
 * still ours, else an invalid pointer. */
COLD __attribute__((noreturn)) void block_invalid(const void *p, const char *api,
						 const struct block *b);
COLD __attribute__((noreturn)) void block_double_free(const void *p);
/* Abort: p, freed, was passed to api (malloc_usable_size). */
COLD __attribute__((noreturn)) void block_used_freed(const void *p, const char *api);

#pragma GCC visibility pop
#endif
