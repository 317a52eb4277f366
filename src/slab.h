/*
 * slab.h - kmalloc-N slab caches, per CPU (SLUB's kmem_cache_cpu, simplified).
 *
 * Each CPU has, per class, a list of partial slabs (slabs with free objects)
 * under that CPU's slab lock. Full slabs are on no list. An object always
 * returns to the slab it came from, and so to the owning CPU's lists, whichever
 * thread frees it. A slab whose objects are all free goes back to the buddy
 * layer, except a small reserve (slab.c, SLAB_RESERVE).
 */
#ifndef BSL_SLAB_H
#define BSL_SLAB_H
#include "sizeclass.h"
#include "arena.h"
#pragma GCC visibility push(hidden)

struct slab_cpu {
	lock_t lock;
	struct page_desc *partial[NCLASSES + 1];   /* slabs with a free object */
	uint32_t nempty[NCLASSES + 1];              /* of those, fully free */
	uint32_t nslabs[NCLASSES + 1];              /* slabs owned */
	uint64_t nobjs_out[NCLASSES + 1];           /* objects taken out */
	uint64_t nalloc[NCLASSES + 1];              /* objects handed out, ever */
	uint64_t nfree[NCLASSES + 1];               /* objects given back */
	uint64_t ndebug_checks;                     /* debug builds: full check every 64 calls */
} __attribute__((aligned(64)));   /* one cache line apart: no false sharing between CPUs */

extern struct slab_cpu slab_cpus[MAX_CPUS];

/* Take up to n objects of class c for the calling CPU; returns how many (0
 * only when memory is exhausted). */
unsigned slab_alloc_bulk(unsigned class_idx, void **objs, unsigned n);
/* Give objects back to their slabs. Each must be a live object start
 * (checked by the caller); a double free is detected here. */
void slab_free_bulk(void *const *objs, unsigned n);

/* Double-free tag: every free object (in a thread cache or a slab) holds
 * this random per-process value in its second word, and handing an object
 * out clears it. Finding it in a block being freed means the block is
 * already free: no program writes a secret it never saw (short of copying
 * freed memory). Set once by slab_tag_init. */
extern uint64_t free_tag;
static inline uint64_t *obj_tag(void *p) { return (uint64_t *)p + 1; }
void slab_tag_init(void);

/* The head descriptor of the slab holding p, whose page is described by d. */
static inline struct page_desc *slab_head(struct page_desc *d, const void *p)
{
	return d - ((((uintptr_t)p & ~(PAGE_SIZE - 1)) - d->slab_base) >> PAGE_SHIFT);
}

/* Diagnostic (bsl_owns): is the object at p, in the slab page d, free in its
 * slab (never handed out, or on the slab's free list)? Takes the slab lock. */
bool slab_obj_is_free(struct page_desc *d, const void *p);

void slab_lock_all(void);
void slab_unlock_all(void);
void slab_check(struct slab_cpu *sc);
#pragma GCC visibility pop
#endif
