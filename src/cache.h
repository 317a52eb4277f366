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
#include "arena.h"
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

/* ------------------------------------------------ inside the module only
 * (cache.c and cachecheck.c: cache.c for the layout and the rules). */
#define CACHE_TRAILER  (3 * sizeof(uint64_t))   /* link, check, constructed mark */
#define CACHE_NAME_LEN 32
enum cache_state { CACHE_FREE = 0, CACHE_LIVE, CACHE_DYING, CACHE_DRAINING, CACHE_RETIRED };
enum { CACHE_SEC_CANARY = 1, CACHE_SEC_QUARANTINE = 2, CACHE_SEC_FILL = 4 };   /* bsl_cache.secure */
/* Secure fill: the word after the trailer holds the free object's checksum. */
#define CACHE_SUM_OFF  CACHE_TRAILER

struct bsl_cache {
	char name[CACHE_NAME_LEN];
	uint32_t size;          /* object bytes asked for */
	uint32_t align;
	uint32_t first_off;     /* slot start to trailer */
	uint32_t slot;          /* slab_named[id].geom.size */
	uint32_t gen;           /* moves at create, shrink, destroy; bins of other gens are stale */
	int32_t bin_max;        /* objects a thread's bin holds */
	int32_t nbins;          /* threads' bins attached to this slot (atomic) */
	int state;              /* enum cache_state; written under caches_lock */
	unsigned sidx;          /* slab index: NCLASSES + 1 + id */
	uint16_t secure;        /* CACHE_SEC_*: secure mode's checks on this cache (fixed) */
	uint16_t qmax;          /* quarantine: objects its ring holds (0: none) */
	uint32_t vbits_off;     /* memcheck: slot start to the saved V-bits (0: none) */
	int (*ctor)(void *obj, void *arg, int flags);
	void (*dtor)(void *obj, void *arg);
	void *arg;
} __attribute__((aligned(128)));   /* a power of two: handle checks and indexes by shift */

extern struct bsl_cache caches[];      /* NCACHES_MAX (slab.h) */

/* cachecheck.c. The messages (all abort): */
COLD __attribute__((noreturn)) void cache_not_a_cache(const void *cp, const char *api);
COLD __attribute__((noreturn)) void cache_not_ours(const struct bsl_cache *cp, const void *p);
COLD __attribute__((noreturn)) void cache_double_free(const struct bsl_cache *cp,
						      const void *p);
/* The named cache whose slab holds p, or NULL. */
struct bsl_cache *cache_holding(const void *p);
/* Is p the start of a slot of cp (page descriptor d)? */
bool cache_slot_start(const struct bsl_cache *cp, const void *p, const struct page_desc *d);
/* Secure canary: write the pad and canary words of the slot of object p (a
 * new slab's, first: its front word too); at bsl_cache_free, check them
 * (abort naming p and the cache). */
void cache_canary_arm(const struct bsl_cache *cp, char *p, bool first);
/* Secure canary, at cache_setup: the first slot of each of cp's slabs starts
 * cp->align bytes into it, after its front word (n->front; none when aligned
 * to a page), and n->geom.nobjs leaves room for it. */
struct slab_named;
void cache_canary_front(const struct bsl_cache *cp, struct slab_named *n, unsigned guard_pages);
/* Secure fill: seal the free object p (its checksum into its trailer's next
 * word), or check that it still matches (else abort, "write after free",
 * saying where it was found: as it was handed out, or its slab went back). */
enum cache_found { CACHE_FOUND_ALLOC, CACHE_FOUND_SLAB };
void cache_fill_seal(const struct bsl_cache *cp, const char *p);
void cache_fill_check(const struct bsl_cache *cp, const char *p, enum cache_found where);
/* Secure mode's part of bsl_cache_free of p (page descriptor d), trailer q,
 * after the double-free check: the canaries, the seal, then the quarantine
 * (the canaries of what leaves it are checked again). Returns the
 * trailer of the object to free now (q, or the oldest one leaving the
 * quarantine), or NULL when none leaves. */
char *cache_secure_free(struct bsl_cache *cp, char *p, const struct page_desc *d);
/* The quarantine ring's length for slots of slot bytes (cache_setup). */
unsigned cache_quarantine_len(uint32_t slot);
/* Every object of cp's quarantine back to its slab (shrink, destroy). */
void cache_quarantine_drain(struct bsl_cache *cp);
void cache_quarantine_lock_all(void);       /* fork, after caches_lock */
void cache_quarantine_unlock_all(void);
#pragma GCC visibility pop
#endif
