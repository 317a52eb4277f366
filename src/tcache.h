/*
 * tcache.h - the per-thread cache in front of the slabs.
 *
 * One bin per size class: a LIFO list of free objects linked through their
 * first word, with a count and a bound (class_tcache_max). Only the
 * owning thread touches its bins, so the fast paths in malloc.c need no lock
 * and no atomic. Bins start with max = 0 and head = NULL, so the first malloc
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
	uint32_t count;
	uint32_t max;      /* 0 while the cache is not live */
};

enum tcache_state { TC_NEW = 0, TC_LIVE, TC_DEAD };

struct tcache {
	struct tcache_bin bins[NCLASSES + 1];
	int state;                       /* enum tcache_state */
	struct tcache *next, *prev;      /* registry of live caches, under registry lock */
};

extern __thread struct tcache tc_self __attribute__((tls_model("initial-exec")));

void tcache_global_init(void);                   /* once, from bsl_init */
void *tcache_alloc_slow(unsigned class_idx);     /* bin empty */
void tcache_free_slow(void *p, unsigned class_idx);  /* bin full or cache not live */
void tcache_flush(struct tcache *tc);            /* everything back to the slabs */
/* Sum of cached objects' bytes and the number of live caches. */
void tcache_totals(size_t *nbytes, size_t *ncaches);
void tcache_lock_all(void);
void tcache_unlock_all(void);
void tcache_after_fork_child(void);
#pragma GCC visibility pop
#endif
