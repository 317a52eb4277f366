/*
 * tcache.h - the per-thread cache in front of the slabs.
 *
 * One bin per size class: a LIFO list of free objects linked through their
 * first word, with a bound (class_tcache_max) and the room left under it
 * (room = max - objects held, never negative; the free fast path takes one
 * with a decrement and tests its sign, and sets a room of -1 back to 0).
 * Only the owning thread touches its bins, so the fast paths in malloc.c need
 * no lock and no atomic. Bins have room = 0 and head = NULL until the cache is
 * live, so every malloc and free of a thread whose cache is not live falls to
 * the slow path.
 *
 * Lifecycle (tc->state; only the owning thread writes it):
 *   TC_NEW  -> TC_WARM   at the thread's first slow-path call: the exit key is
 *                        set now, so every thread that used the allocator gets
 *                        the destructor in its TSD teardown. A thread whose
 *                        first call comes in glibc's last exit stage (after its
 *                        teardown, signals blocked) goes to TC_DEAD instead.
 *   TC_WARM -> TC_LIVE   after TCACHE_WARMUP slow-path calls: bins get their
 *                        bounds and a statistics record. No pthread call here.
 *   any     -> TC_DEAD   in the exit key's destructor: the cache is flushed, the
 *                        record returned. Final: later destructors,
 *                        __libc_thread_freeres and glibc's stack-cache eviction
 *                        go straight to the slabs and leave nothing behind.
 * The destructor ignores its argument and acts on the calling thread's own
 * cache: a key value left in a reused thread descriptor (set after a
 * teardown) is harmless. A thread that caches nothing (fewer than
 * TCACHE_WARMUP slow calls) can leave nothing behind.
 *
 * Statistics never read another thread's TLS (it may be gone): each live
 * cache owns a record in memory of our own, where every 16th slow path publishes the
 * bytes it holds; a reader refreshes its own record first.
 */
#ifndef BSL_TCACHE_H
#define BSL_TCACHE_H
#include "sizeclass.h"
#include "slab.h"
#include "run.h"
#pragma GCC visibility push(hidden)

struct tcache_bin {
	void    *head;
	int32_t  room;     /* objects the bin may still take; 0 while not live */
	int32_t  max;      /* objects held + room; 0 while the cache is not live */
};

enum tcache_state { TC_NEW = 0, TC_WARM, TC_LIVE, TC_DEAD };
#define TCACHE_WARMUP 32
/* Bounds grow with demand (sizeclass.h); the growth of all of a thread's bins
 * together stays under this, and malloc_trim (tcache_flush) resets it. A full
 * bin does not grow: a consumer thread would only return objects in bigger,
 * later batches. */
#define TCACHE_GROW_BUDGET (1024 * 1024)
/* ... and the growth of all threads' bins together stays under this: a
 * thousand threads take no more than a few. */
#define TCACHE_GROW_TOTAL (8u << 20)

struct tcache_record;

/* Freed page runs of SLAB_MAX + 1 page .. RUN_CACHE_MAX_PAGES pages, kept per
 * page count (at most RUN_CACHE_BYTES per thread) so that a program that
 * allocates and frees 32 KiB buffers does not take its zone lock each time.
 * A list links the runs' head descriptors through their next field (unused
 * by a PD_RUN head), not the runs' memory, so a write after free into a
 * parked run cannot reach the list; the run's first two words still hold a
 * free object's mark (slab.h) with no successor, checked when it is taken:
 * such a write aborts then, as it does for the bins. */
#define RUN_CACHE_MIN_PAGES (SLAB_MAX / PAGE_SIZE + 1)
#define RUN_CACHE_MAX_PAGES 32
#define RUN_CACHE_BYTES     (256 * 1024)

struct tcache {
	struct tcache_bin bins[NCLASSES + 1];    /* the fast paths' */
	struct tcache_bin sbins[NCLASSES + 1];   /* the slow paths' instead, when tcache_slow_only */
	struct page_desc *runs[RUN_CACHE_MAX_PAGES + 1];   /* by page count; heads, by next */
	size_t run_room, run_max;   /* bytes runs[] may still take, and held + room: as a bin's
	                             * room and max, 0 while the cache is not live (and with
	                             * tcache:0), RUN_CACHE_BYTES from then on */
	size_t bin_bytes;                        /* the bins' bytes at the last publish */
	size_t grown_bytes;      /* bytes the bins' bounds grew by, at most TCACHE_GROW_BUDGET */
	uint64_t refilled;       /* bit c: bin c ran empty since it last overflowed */
	int state;                       /* enum tcache_state */
	uint32_t warmup;                 /* slow-path calls made while TC_WARM */
	uint32_t nslow;                  /* slow-path calls; publish at the 1st, 17th, ... */
	uint64_t nrun_take, nrun_park;   /* runs taken from / parked in runs[] (stats, via rec) */
	uint64_t slow_ms;                /* time of the bins' last slow path (0: none since a return) */
	struct tcache_record *rec;       /* TC_LIVE: this cache's published totals */
};

extern __thread struct tcache tc_self __attribute__((tls_model("initial-exec")));

/* Secure canary, fill and quarantine check every block on the slow paths, so
 * the fast paths must always miss: with tcache_slow_only (set once by
 * secure_init, before the first allocation) the fast paths' bins stay dead
 * (room 0, head NULL) and the slow paths cache in sbins[] instead, through
 * the same refill, flush, bounds and lifecycle. */
extern bool tcache_slow_only;
static inline struct tcache_bin *tcache_bins(struct tcache *tc)
{
	return unlikely(tcache_slow_only) ? tc->sbins : tc->bins;
}

/* The two fast-path operations. pop: NULL when the bin is empty. push: the
 * caller has checked that p is not free (obj_is_free) and that b->room > 0
 * (push_taken: and has taken one from room). */
static inline void *tcache_pop(struct tcache_bin *b)
{
	void *p = b->head;
	if (likely(p)) {
		b->head = obj_next(p);
		b->room++;
		obj_mark_used(p);
	}
	return p;
}

static inline void tcache_push_taken(struct tcache_bin *b, void *p)   /* room-- done */
{
	obj_set_next(p, b->head);
	b->head = p;
}

static inline void tcache_push(struct tcache_bin *b, void *p)
{
	tcache_push_taken(b, p);
	b->room--;
}

void tcache_global_init(void);                   /* once, from bsl_init */
void *tcache_alloc_slow(unsigned class_idx);     /* bin empty */
void tcache_free_slow(void *p, unsigned class_idx);  /* bin full or cache not live */
void tcache_flush(struct tcache *tc);            /* everything back to the slabs */
/* From the calling thread's maintenance: if its bins saw no slow path for a
 * tick interval, they go back to the slabs, dated by that slow path. */
void tcache_idle_return(uint64_t now);
/* For per-thread caches beside the bins (cache.c, harden.c): count a
 * slow-path call and move the calling thread's cache along its lifecycle;
 * true once it is TC_LIVE (the exit key is set from TC_WARM on), false when it
 * must not cache. The hooks, each set once (0: the named caches' bins, 1: the
 * quarantine's stage), run first in the exit key's destructor. */
bool tcache_thread_ready(void);
enum { TCACHE_EXIT_CACHES, TCACHE_EXIT_QUARANTINE, TCACHE_EXIT_HOOKS };
extern void (*tcache_exit_hooks[TCACHE_EXIT_HOOKS])(void);
/* Run cache: take a parked run of exactly npages (NULL if none; aborts when
 * the mark in its first words was overwritten); park a freed run (false when
 * it does not fit: the caller frees it). */
void *tcache_run_take(size_t npages);
/* malloc()'s short path: tcache_run_take without a call, which leaves a run
 * whose mark is broken where it is (NULL) for tcache_run_take to report. */
static inline void *tcache_run_take_live(size_t npages)
{
	struct tcache *tc = &tc_self;
	struct page_desc *d;
	if (npages > RUN_CACHE_MAX_PAGES || !(d = tc->runs[npages]))
		return NULL;
	char *p = desc_addr(d);
	if (!p)
		__builtin_unreachable();   /* no arena starts at 0: the callers' NULL tests go */
	const uint64_t *w = (const uint64_t *)p;   /* tcache_run_park's mark: obj_next is NULL */
	if (unlikely((w[0] ^ (uintptr_t)p) != obj_keys.link ||
		     (w[1] ^ (uintptr_t)p ^ obj_keys.link) != obj_keys.check))   /* w0 ^ w1: check */
		return NULL;
	obj_mark_used(p);   /* a copy of this block must not look like a free object */
	tc->runs[npages] = d->next;   /* (a PD_RUN head's next means nothing off the list) */
	run_mark_unparked(d);
	tc->run_room += npages << PAGE_SHIFT;
	tc->nrun_take++;
	return p;
}
bool tcache_run_park(struct page_desc *head);
/* free()'s short path: tcache_run_park of p (head's run) into a live cache,
 * whose only call (every 64th park: a thread of runs only has no other slow
 * path to publish its statistics) comes last, so that it is a tail call.
 * False (the caller then takes the path through tcache_run_park) when the run
 * does not fit (no room: also while the cache is not live, and with tcache:0). */
void tcache_run_publish(void);
static inline bool tcache_run_park_live(struct page_desc *head, void *p)
{
	struct tcache *tc = &tc_self;
	size_t npages = head->npages, nbytes = npages << PAGE_SHIFT;
	if (npages - RUN_CACHE_MIN_PAGES > RUN_CACHE_MAX_PAGES - RUN_CACHE_MIN_PAGES ||
	    nbytes > tc->run_room)
		return false;
	run_mark_parked(head);
	obj_set_next(p, NULL);
	head->next = tc->runs[npages];
	tc->runs[npages] = head;
	tc->run_room -= nbytes;
	if (unlikely((++tc->nrun_park & 63) == 0))
		tcache_run_publish();
	return true;
}
/* Diagnostic: is p parked in the calling thread's bin for class c? */
bool tcache_holds(const void *p, unsigned class_idx);
/* Sum of cached objects' bytes and the number of live caches. */
void tcache_totals(size_t *nbytes, size_t *ncaches, uint64_t *ntake, uint64_t *npark);
/* Set while a stats signal handler runs on this thread: totals then skip a
 * busy lock instead of waiting for it. */
extern __thread int stats_in_signal __attribute__((tls_model("initial-exec")));
void tcache_lock_all(void);
void tcache_unlock_all(void);
void tcache_after_fork_child(void);
#pragma GCC visibility pop
#endif
