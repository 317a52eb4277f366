/*
 * tcache.h - the per-thread cache in front of the slabs.
 *
 * One bin per size class: a LIFO list of free objects linked through their
 * first word, with a bound (class_tcache_max) and the room left under it
 * (room = max - objects held; the free fast path tests it with one compare).
 * Only the owning thread touches its bins, so the fast paths in malloc.c need
 * no lock and no atomic. Bins start with room = 0 and head = NULL, so the first malloc
 * and the first free of a thread fall to the slow path, which sets the cache
 * up; after the thread's exit the bins go back to that state and the cache is
 * marked dead, so late frees (from other TLS destructors) go straight to the
 * slabs.
 */
#ifndef BSL_TCACHE_H
#define BSL_TCACHE_H
#include "sizeclass.h"
#pragma GCC visibility push(hidden)

struct tcache_bin {
	void    *head;
	uint32_t room;     /* objects the bin may still take; 0 while not live */
	uint32_t max;      /* objects held + room; 0 while the cache is not live */
};

enum tcache_state { TC_NEW = 0, TC_LIVE, TC_DEAD };

struct tcache {
	struct tcache_bin bins[NCLASSES + 1];
	int state;                       /* enum tcache_state */
	struct tcache *next, *prev;      /* registry of live caches, under registry lock */
};

extern __thread struct tcache tc_self __attribute__((tls_model("initial-exec")));

/* The two fast-path operations. pop: NULL when the bin is empty. push: the
 * caller has checked b->room. */
static inline void *tcache_pop(struct tcache_bin *b)
{
	void *p = b->head;
	if (likely(p)) {
		b->head = *(void **)p;
		b->room++;
	}
	return p;
}

static inline void tcache_push(struct tcache_bin *b, void *p)
{
	*(void **)p = b->head;
	b->head = p;
	b->room--;
}

void tcache_global_init(void);                   /* once, from bsl_init */
void *tcache_alloc_slow(unsigned class_idx);     /* bin empty */
void tcache_free_slow(void *p, unsigned class_idx);  /* bin full or cache not live */
void tcache_flush(struct tcache *tc);            /* everything back to the slabs */
/* Diagnostic: is p parked in the calling thread's bin for class c? */
bool tcache_holds(const void *p, unsigned class_idx);
/* Sum of cached objects' bytes and the number of live caches. */
void tcache_totals(size_t *nbytes, size_t *ncaches);
void tcache_lock_all(void);
void tcache_unlock_all(void);
void tcache_after_fork_child(void);
#pragma GCC visibility pop
#endif
