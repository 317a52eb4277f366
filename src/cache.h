/*
 * cache.h - named object caches (libumem's umem_cache, the kernel's
 * kmem_cache) on the slab layer: the bsl_cache_* API of include/buddyslab.h.
 *
 * A named cache is a slab index of its own (slab.h: NCLASSES + id) with its
 * own geometry, so it shares slab.c's per-CPU partial lists, slab sizing,
 * release of empty slabs to the buddy layer and reserve, and a per-thread bin
 * per cache (struct tcache_bin, the thread cache's pop and push) as its fast
 * path. See cache.c for the slot layout, the constructed-state rule and the
 * lock.
 */
#ifndef BSL_CACHE_H
#define BSL_CACHE_H
#include "common.h"
#include "output.h"
#pragma GCC visibility push(hidden)

/* free(), realloc() or malloc_usable_size() was given p: if p lies in a named
 * cache's slab, abort with a message naming the cache; else return. */
void cache_check_not_named(const void *p, const char *api);
/* bsl_owns(p) when p lies in a named cache's slab: 1 for a live object of a
 * live cache, 0 otherwise (free, in the calling thread's bin, not an object
 * start, its cache destroyed); -1 when p is in no named cache's slab. */
int cache_owns(const void *p);
/* One slabinfo line per live named cache. */
void cache_text_slabinfo(struct text *t);
void cache_lock_all(void);
/* fork child: the other threads' bins are gone (cache.c's count of bins). */
void cache_after_fork_child(void);
void cache_unlock_all(void);
#pragma GCC visibility pop
#endif
