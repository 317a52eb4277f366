/*
 * buddyslab.h - the extensions buddyslab exports beside the standard malloc API.
 *
 * Every symbol here starts with bsl_. They are safe to call from any thread,
 * and before or after any allocation. None of them allocates but bsl_cache_alloc.
 */
#ifndef BUDDYSLAB_H
#define BUDDYSLAB_H

#include <stddef.h>
#include <stdint.h>

/* The version, defined here only: the Makefile reads these three lines (soname,
 * buddyslab.pc, the launcher, the man page), bsl_version() returns
 * "buddyslab " BUDDYSLAB_VERSION. */
#define BUDDYSLAB_VERSION_MAJOR 0
#define BUDDYSLAB_VERSION_MINOR 1
#define BUDDYSLAB_VERSION_PATCH 0
#define BUDDYSLAB_VERSION_STR_(x) #x
#define BUDDYSLAB_VERSION_STR(x) BUDDYSLAB_VERSION_STR_(x)
#define BUDDYSLAB_VERSION BUDDYSLAB_VERSION_STR(BUDDYSLAB_VERSION_MAJOR) "." \
	BUDDYSLAB_VERSION_STR(BUDDYSLAB_VERSION_MINOR) "." BUDDYSLAB_VERSION_STR(BUDDYSLAB_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* Counters, folded from per-CPU and per-thread state when read. Byte figures. */
struct bsl_stats {
	size_t allocated;     /* bytes in blocks handed to the program (slab objects by
	                         class size, page runs by page, large blocks by mapping),
	                         objects parked in thread caches excluded; named caches'
	                         objects count here by slot, those in their per-thread
	                         bins included; active, nmalloc_slab and nfree_slab count
	                         them too */
	size_t active;        /* bytes of pages in use by slabs, runs and large blocks */
	size_t mapped;        /* bytes committed from the OS: arena chunks + large maps */
	size_t resident;      /* estimate: mapped minus pages returned with madvise */
	size_t returned;      /* bytes of free arena pages currently given back (clean) */
	size_t dirty;         /* bytes of free arena pages not yet given back */
	size_t tcache;        /* bytes parked in thread caches */
	uint64_t nmalloc_slab, nmalloc_run, nmalloc_large;   /* blocks made per tier, ever */
	uint64_t nfree_slab, nfree_run, nfree_large;         /* blocks freed per tier, ever */
	                      /* slab figures count objects leaving and re-entering the
	                         slabs: thread caches move them in batches */
	uint64_t npurge;      /* madvise calls made to return memory */
	uint64_t nthreads;    /* thread caches alive now */
};

/* Fill *out. Returns 0. */
int bsl_stats(struct bsl_stats *out);

/* /proc/buddyinfo-style view: one line per zone (CPU), free blocks per order. */
void bsl_buddyinfo(int fd);

/* /proc/slabinfo-style view: one line per kmalloc-N cache, then one per named
 * cache (bsl_cache_create), by its name. */
void bsl_slabinfo(int fd);

/* Print the BUDDYSLAB_CONF values in effect. */
void bsl_config_print(int fd);

/* Return every free dirty page to the OS now. Returns the bytes returned. */
size_t bsl_purge(void);

/* 1 when p is the start of a live block that buddyslab handed out, else 0.
 * Never aborts, whatever p is. A diagnostic: it takes locks and walks free
 * lists. An object of a named cache (bsl_cache_alloc) counts as a block. A
 * small block freed by another thread and still parked in that thread's
 * cache is reported as owned. */
int bsl_owns(const void *p);

/* "buddyslab X.Y.Z": "buddyslab " BUDDYSLAB_VERSION. */
const char *bsl_version(void);

/* Write a heap profile (BUDDYSLAB_CONF=prof:1) in the format google-pprof
 * reads: to path, or, when path is NULL, to PREFIX.PID.SEQ.heap (prof_prefix).
 * Returns 0, or -1 with errno set (EINVAL: profiling is off). */
int bsl_prof_dump(const char *path);

/*
 * Named object caches (libumem's umem_cache_*, the kernel's kmem_cache_*).
 * A cache hands out objects of one size and alignment from slabs of its own,
 * already constructed: ctor (may be NULL) runs when an object first leaves a
 * slab (once per object of a slab, not per allocation), and an object given
 * back with bsl_cache_free keeps its constructed state for the next
 * bsl_cache_alloc; dtor (may be NULL) runs when the object's slab goes back
 * to the page allocator (at any free that empties a slab beyond the reserve,
 * at bsl_cache_shrink and at bsl_cache_destroy). A ctor returning non-zero
 * makes that allocation return NULL with errno ENOMEM (the object stays
 * unconstructed, and is constructed again when next handed out). flags are
 * passed to ctor and otherwise ignored. Constructors and destructors may call
 * malloc and free, and the allocation calls of other caches, but not
 * bsl_cache_create or bsl_cache_destroy.
 * create: size 1..16384, align 0 (16) or a power of two up to 4096, at most
 * 32 caches at once; else NULL with errno EINVAL (bad arguments) or ENOMEM.
 * An object of a cache is freed only with bsl_cache_free of that cache:
 * free(), realloc() or malloc_usable_size() of it, and bsl_cache_free of
 * anything else (or twice), abort with a message naming the pointer and cache.
 * destroy with live objects reports them on stderr and leaks their slabs.
 * Objects merely cached by other running threads are not live: those
 * threads give them back at their next bsl_cache_alloc or bsl_cache_free (of
 * any cache) or at their exit, and the destroy completes there (its
 * destructors run, and live objects are reported, in that thread).
 */
typedef struct bsl_cache bsl_cache_t;
bsl_cache_t *bsl_cache_create(const char *name, size_t size, size_t align,
			      int (*ctor)(void *obj, void *arg, int flags),
			      void (*dtor)(void *obj, void *arg), void *arg);
void *bsl_cache_alloc(bsl_cache_t *cache, int flags);
void bsl_cache_free(bsl_cache_t *cache, void *obj);
/* Give the calling thread's cached objects and every empty slab back (dtor
 * runs); other threads give theirs back at their next cache call or exit. */
void bsl_cache_shrink(bsl_cache_t *cache);
void bsl_cache_destroy(bsl_cache_t *cache);

#ifdef __cplusplus
}
#endif
#endif
