/*
 * slab.h - kmalloc-N slab caches, per CPU (SLUB's kmem_cache_cpu, simplified).
 *
 * Each CPU has, per class, a list of partial slabs (some objects free) and a
 * list of empty slabs (every object free) under that CPU's slab lock. Full
 * slabs are on no list. An object always returns to the slab it came from,
 * and so to the owning CPU's lists, whichever thread frees it. Empty slabs go
 * back to the buddy layer beyond a small reserve and a per-CPU byte budget,
 * or at the decay tick once unneeded (slab.c).
 */
#ifndef BSL_SLAB_H
#define BSL_SLAB_H
#include "sizeclass.h"
#include "arena.h"
#include "secure.h"
#include "vg.h"
#pragma GCC visibility push(hidden)

/*
 * Slab index (sidx): 1..NCLASSES are the kmalloc-N classes; NCLASSES + id,
 * id = 1..NCACHES_MAX, are the named caches (cache.c), each a class with its
 * own geometry (slab_named[id - 1]) and a release hook. Their pages have
 * class_idx 0, obj_nobjs 0 and cache_id = id, so free()'s fast path (bin 0,
 * which never has room, and an object test that always fails) and
 * malloc.c's lookup never take them for kmalloc objects.
 */
#define NCACHES_MAX 32
#define NSLAB_IDX   (NCLASSES + 1 + NCACHES_MAX)

/* A named cache's geometry. geom.size is the slot (object, then the three
 * words of its link trailer, rounded up to the alignment); the slab layer's
 * "object" of a slot is its trailer, first_off bytes into the slot, so the
 * free-list words never overlap the program's (constructed) object. The
 * slab's slab_base_hidden is still its first slot: the slab's start, or
 * front bytes (under a page) into it, so slab_head works for any address in
 * it; geom.nobjs leaves room for the front. */
struct slab_named {
	struct class_info geom;
	uint32_t first_off;     /* slot start to trailer */
	uint32_t front;         /* slab start to its first slot (secure canary: its front word) */
};
extern struct slab_named slab_named[NCACHES_MAX];
/* A named slab's hook, set once by cache.c (base is the first slot):
 *  - made (secure canary only): a new slab of n slots, called under the
 *    slab cpu lock before any slot leaves (no lock, no malloc in it);
 *  - !made: the slab leaves for the buddy layer (every object free), n the
 *    slots ever handed out; called with no lock held. */
extern void (*slab_named_hook)(unsigned sidx, char *base, unsigned n, bool made);

static inline unsigned slab_sidx(const struct page_desc *d)
{
	return d->cache_id ? NCLASSES + d->cache_id : d->class_idx;
}
static inline const struct class_info *slab_geom(unsigned sidx)
{
	return sidx <= NCLASSES ? &class_info[sidx] : &slab_named[sidx - NCLASSES - 1].geom;
}
/* Bytes before a named slab's first slot (struct slab_named). */
static inline uintptr_t slab_named_front(unsigned sidx)
{
	return slab_named[sidx - NCLASSES - 1].front;
}

struct slab_cpu {
	lock_t lock;
	struct page_desc *partial[NSLAB_IDX];   /* slabs with objects out and free */
	struct page_desc *empty[NSLAB_IDX];     /* slabs with every object free */
	uint32_t nempty[NSLAB_IDX];              /* slabs on empty[] */
	uint32_t lowater[NSLAB_IDX];             /* fewest on empty[] since the last decay */
	uint64_t emptied_ms[NSLAB_IDX];          /* when a kept slab last became empty */
	size_t empty_bytes;                      /* bytes of the slabs on every empty[] */
	uint32_t nslabs[NSLAB_IDX];              /* slabs owned */
	uint64_t nobjs_out[NSLAB_IDX];           /* objects taken out */
	uint64_t nalloc[NSLAB_IDX];              /* objects handed out, ever */
	uint64_t nfree[NSLAB_IDX];               /* objects given back */
	uint64_t ndebug_checks;                     /* debug builds: calls until the next full check */
	uint8_t colour[NCLASSES + 1];               /* colour:1: the next slab's colour, per class */
} __attribute__((aligned(64)));   /* one cache line apart: no false sharing between CPUs */

extern struct slab_cpu slab_cpus[MAX_CPUS];   /* by os_cpu_index() */

static inline unsigned slab_cpu_index(const struct slab_cpu *sc)
{
	return (unsigned)(sc - slab_cpus);
}

/* The one object-start test: the index of the object at p in the slab that
 * d (the descriptor of p's page) belongs to; >= d->obj_nobjs when p is not
 * the start of an object or d is not a slab page (obj_nobjs 0). free()'s
 * fast path, the block lookup and slab.c all ask it. */
static inline size_t slab_obj_index(const struct page_desc *d, const void *p)
{
	return obj_index(d->obj_inv, d->obj_shift, (uintptr_t)p + d->slab_base_hidden);
}

/* Take up to n objects of slab index c for the calling CPU; returns how many (0
 * only when memory is exhausted). */
unsigned slab_alloc_bulk(unsigned class_idx, void **objs, unsigned n);
/* Give objects back to their slabs. Each must be a live object start
 * (checked by the caller); a double free is detected here. */
void slab_free_bulk(void *const *objs, unsigned n);
/* The thread cache's transfers (kmalloc classes only; chains as below):
 * alloc_chain takes up to n objects of class c for the calling CPU as one
 * NULL-terminated chain in *chain and returns how many (0 only when memory
 * is exhausted); free_chain gives the first n objects of chain back to
 * their slabs and returns the rest of the chain (the (n+1)th object); the
 * objects have been unused since idle_ms (0: now), which dates the slabs
 * they empty for the decay. */
unsigned slab_alloc_chain(unsigned c, unsigned n, void **chain);
void *slab_free_chain(unsigned c, void *chain, unsigned n, uint64_t idle_ms);
/* Empty slabs a CPU keeps beyond the reserve (slab.c), in bytes of all
 * classes and named caches together: a program that frees a batch and allocates it again
 * reuses its slabs without the buddy layer. The decay returns those that go
 * unused: slab_decay (each tick, before the buddy purge) gives back, per
 * class, every empty slab when none has become empty for decay_ms (stamped
 * idle since the last one did), else as many as the class never needed since
 * the last tick (the low-water mark of its empty list; stamped idle since
 * that tick); slab_purge (bsl_purge, malloc_trim) gives back every one beyond the reserve. */
#define SLAB_KEEP_BYTES ((size_t)4 << 20)
void slab_decay(uint64_t now);
bool slab_purge(void);     /* true: some slab went back */
/* Named caches: every empty slab of sidx, on every CPU, back to the buddy
 * layer (the release hook runs first), and those a decay tick or purge in
 * another thread took off first waited for (their hooks returned): not to be
 * called from a release hook. slab_objs_out: the objects of sidx still out. */
void slab_shrink(unsigned sidx);
uint64_t slab_objs_out(unsigned sidx, uint64_t *nslabs);

/*
 * Free-object links. Every free object (on a slab's free list, in a thread
 * cache bin, or a parked run) starts with two words:
 *   word 0  link = next ^ (its own address) ^ obj_keys.link
 *   word 1  check = link ^ obj_keys.check
 * with both keys random per process (AT_RANDOM). Handing an object out
 * clears word 1. So:
 *  - a free object is recognised by word1 == word0 ^ check key: freeing a
 *    block that satisfies it is a double free (a live block satisfies it only
 *    if the program stored a secret it never saw, short of copying freed memory);
 *  - a use-after-free write of a chosen value over word 0 breaks the check and
 *    is caught when the object is next taken from its list (obj_next aborts),
 *    and even with the check forged the decoded pointer is not the value
 *    written unless the program knows both keys and the slot's address.
 * Set once by slab_keys_init.
 */
struct obj_keys { uint64_t link, check; };
extern struct obj_keys obj_keys;
void slab_keys_init(void);
COLD __attribute__((noreturn)) void obj_link_corrupt(const void *p);

static inline bool obj_is_free(const void *p)
{
	const uint64_t *w = p;
	return (w[0] ^ w[1]) == obj_keys.check;
}

/* Make p a free object whose successor is next. */
static inline void obj_set_next(void *p, void *next)
{
	uint64_t *w = p;
	uint64_t link = (uintptr_t)next ^ (uintptr_t)p ^ obj_keys.link;
	w[0] = link;
	w[1] = link ^ obj_keys.check;
}

/* The successor of free object p, after checking its words. */
static inline void *obj_next(const void *p)
{
	const uint64_t *w = p;
	if (unlikely((w[0] ^ w[1]) != obj_keys.check))
		obj_link_corrupt(p);
	return (void *)(uintptr_t)(w[0] ^ (uintptr_t)p ^ obj_keys.link);
}

/* p leaves its list for the program: it no longer looks free. */
static inline void obj_mark_used(void *p) { ((uint64_t *)p)[1] = 0; }

/* The head descriptor of the slab holding p, whose page is described by d. */
static inline struct page_desc *slab_head(struct page_desc *d, const void *p)
{
	/* the first object may start up to a page into the slab (colour:1):
	 * round the distance from it up to whole pages */
	return d - ((((uintptr_t)p & ~(PAGE_SIZE - 1)) + d->slab_base_hidden + PAGE_SIZE - 1) >>
		    PAGE_SHIFT);
}

/* The first object of slab s (its head): the slab's first byte, or with
 * colour:1 a multiple of the cache line into it, below a page. */
static inline char *slab_first_obj(const struct page_desc *s)
{
	return (char *)unhide_addr(s->slab_base_hidden);
}

/* Slots at a slab's start never handed out (secure canary; kmalloc only). */
static inline unsigned slab_front(unsigned c)
{
	return c <= NCLASSES ? sec_front_objs : 0;
}

/* The next object on a slab's free list (read under memcheck's eyes). */
static inline void *slab_next_free(void *p)
{
	vg_open(p, 2 * sizeof(void *));
	void *next = obj_next(p);
	vg_close(p, 2 * sizeof(void *));
	return next;
}

/* Diagnostic (bsl_owns): is the object at p, in the slab page d, free in its
 * slab (never handed out, or on the slab's free list)? Takes the slab lock. */
bool slab_obj_is_free(struct page_desc *d, const void *p);

void slab_lock_all(void);
void slab_unlock_all(bool child);    /* child: after fork, in the child */
/* Debug and tests (slabcheck.c): abort if a list or count of sc is
 * inconsistent. Caller holds sc->lock. Returns the slabs and free objects it
 * visited. */
size_t slab_check(struct slab_cpu *sc);
#pragma GCC visibility pop
#endif
