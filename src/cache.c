#define _GNU_SOURCE
/*
 * cache.c - named object caches (cache.h): bsl_cache_create, _alloc, _free,
 * _shrink, _destroy. cachecheck.c, of the same module, holds their misuse
 * messages, slabinfo lines, and secure mode's canaries, checksums and
 * quarantine.
 *
 * Slot layout. A cache of size-byte objects aligned to align (a power of two,
 * at most a page; default 16) cuts its slabs into slots of
 *     slot = align_up(align_up(size, 8) + 24, align)
 * bytes (more under secure canary, fill and memcheck: below): the program's object
 * at the slot's start, then a 24-byte trailer at
 * first_off = align_up(size, 8): words 0 and 1 are the free-list link and
 * check of slab.h (so a free object is recognised and a double free caught
 * as for malloc's objects), word 2 the constructed mark (with CONS_SAMPLED
 * flipped while the object is a heap-profile sample: see Profiling). The slab layer's
 * "object" of the slot is the trailer (slab.h, struct slab_named): lists and
 * links never write into the program's object, which keeps its constructed
 * state while free (SLUB puts the free pointer after the object for caches
 * with a constructor for the same reason).
 *
 * Constructed state. A slot is constructed exactly when word 2 equals
 * cons_mark(trailer) (its address mixed with a per-process key). The
 * constructor runs lazily, when a slot that is not constructed leaves the
 * slab layer (a new slab's slots, or a slot whose constructor failed before);
 * that is once per object of a slab, not on every allocation. A constructor
 * that fails leaves the slot unconstructed (mark cleared) on its slab's free
 * list and the allocation returns NULL with ENOMEM. The destructor runs on
 * every constructed slot when its slab goes back to the buddy layer (slab.c
 * calls cache_slab_hook with no lock held), which also clears every mark, so a
 * stale mark never survives into memory reused for a new slab.
 *
 * Secure canary: first_off grows by a canary word C_o (between the object's
 * pad and the trailer) and the slot by a word C_e at its end, and a slab's
 * first slot starts align bytes into it (slab_named.front, below a page)
 * after a front word; all written for every slot when its slab is made and
 * checked at bsl_cache_free (cachecheck.c). Secure quarantine: a freed
 * object waits in its cache's ring before it goes to the bin (cachecheck.c).
 * Secure fill: zeroing would destroy the constructed state; instead the slot
 * grows by a word after the trailer (CACHE_SUM_OFF; never with memcheck's
 * V-bits) for a keyed checksum of the free object, taken as it becomes free
 * and checked as it is handed out or its slab goes back (cachecheck.c); the
 * fast paths always miss (bin_gen), so every handout passes the slow path.
 *
 * Memcheck (vg_active). A constructed object keeps which of its bytes are
 * defined across its frees: the slot grows by size bytes after the trailer
 * (at vbits_off) that hold the object's V-bits from its bsl_cache_free to its
 * next handout (vg_vbits_save, vg_vbits_restore). A new slot is handed to its
 * constructor undefined, so the fields the constructor leaves unset stay
 * undefined in every later life of the object (memcheck reports their reads),
 * and the fields it set, and whatever the program left in the object at its
 * free, read as defined; the destructor sees the object the same way.
 *
 * Profiling (prof:1). A sampled object's mark is cons_mark ^ CONS_SAMPLED
 * from its prof_record to its bsl_cache_free, which restores the mark and
 * calls prof_forget; a free of any other object reads the mark it already has
 * in cache and takes no lock (the role PDF_SAMPLED plays for malloc's runs).
 * Only the thread that allocates or frees the object writes the flag; a free
 * object never carries it.
 *
 * Fast path: one tcache_bin per cache per thread (cache_tls), holding free
 * constructed objects through their trailers, bounded by bin_max. Bins are
 * off while the thread cache is (memcheck, tcache:0); under secure fill they
 * serve the slow paths only (bin_gen).
 *
 * Bins and generations. A table slot's gen moves at create, shrink and
 * destroy (and caches_epoch with every shrink and destroy). A thread's bin of
 * slot i is attached (max != 0) from its first slow path until its owner
 * detaches it (every object back to its slab); nbins counts the attached bins
 * of all threads. A bin whose gen is not its slot's is stale: its owner
 * detaches it at its next bsl_cache_alloc or bsl_cache_free of any cache
 * (cache_seen != caches_epoch: bins_refresh), at the next slow path of that
 * slot, or at its exit. Only the owner touches a bin.
 *
 * INVARIANT: a slot is FREE (reusable: its slab_named geometry and
 * destructor may be rewritten) only when nbins == 0 and it owns no slab. So
 * every object in any bin belongs to a slab of its slot's current life, and
 * a stale bin, flushed whenever its owner comes to it, goes back to the
 * geometry and destructor it was made with.
 *
 * Destroy: LIVE -> DYING (the handle is refused from now on), gen and epoch
 * move, the calling thread's bins are refreshed, -> DRAINING. The detach that
 * finds nbins at 0 after that (destroy's own check, or the last other owner
 * flushing its stale bin) claims the slot (DRAINING -> RETIRED, by one
 * compare-and-swap: one winner) and finishes it: every empty slab back
 * (destructors run), then FREE, or RETIRED with a report of the objects the
 * program still holds. Objects parked in bins are never reported: they are
 * in their slabs again before the count. Destroy waits for no thread; a
 * thread that never calls again keeps the slot DRAINING (not reused).
 *
 * Lock: caches_lock protects the table's states and the creation of a cache;
 * a leaf, never held while calling another layer (LAYERS.md); each cache's
 * quarantine ring has a leaf lock of its own (cachecheck.c). Destroy marks
 * the cache dying under it and does the work outside it; gen, epoch, nbins
 * and the later state changes are atomics.
 */
#include <errno.h>
#include <string.h>
#include "cache.h"
#include "slab.h"
#include "tcache.h"
#include "prof.h"
#include "config.h"
#include "init.h"
#include "vg.h"
#include "buddyslab.h"

#define CACHE_OBJ_MAX  SLAB_MAX      /* bigger objects: use malloc */
#define BIN_BYTES      (16 * 1024)
#define BIN_MAX        64
#define TRAILER        CACHE_TRAILER
#define NAME_LEN       CACHE_NAME_LEN

_Static_assert(sizeof(struct bsl_cache) == 128, "struct bsl_cache is 128 bytes");

struct cache_tbin {
	struct tcache_bin bin;
	uint32_t gen;
};

struct bsl_cache caches[NCACHES_MAX];
static lock_t caches_lock = LOCK_INIT;
static uint32_t caches_epoch;     /* moves with every shrink and destroy */
static __thread uint32_t cache_seen __attribute__((tls_model("initial-exec")));
static __thread struct cache_tbin cache_tls[NCACHES_MAX] __attribute__((tls_model("initial-exec")));
/* Set when the thread's bins were flushed at its exit: a destructor that runs
 * during or after the flush must not start a bin again. */
static __thread bool cache_exiting __attribute__((tls_model("initial-exec")));

#define CONS_SAMPLED 1u

static inline uint64_t cons_mark(const void *trailer)
{
	return (uintptr_t)trailer ^ obj_keys.link ^ 0xC0457C7EDC0457ull;
}

/* The slot whose trailer is q is constructed (sampled or not). */
static inline bool cons_built(const void *q)
{
	return (((const uint64_t *)q)[2] ^ cons_mark(q)) <= CONS_SAMPLED;
}

/* ------------------------------------------------------------ handles */

static struct bsl_cache *cache_live(bsl_cache_t *cp, const char *api)
{
	uintptr_t off = (uintptr_t)cp - (uintptr_t)caches;
	if (unlikely(off >= sizeof caches || off % sizeof caches[0] ||
		     __atomic_load_n(&cp->state, __ATOMIC_ACQUIRE) != CACHE_LIVE))
		cache_not_a_cache(cp, api);
	return cp;
}

/* For bsl_owns: the slab layer answers for the slot's trailer (its object),
 * and the calling thread's bin is walked as tcache_holds walks a kmalloc bin.
 * An object parked in another thread's bin counts as owned. */
int cache_owns(const void *p)
{
	struct bsl_cache *cp = cache_holding(p);
	if (!cp)
		return -1;
	if (__atomic_load_n(&cp->state, __ATOMIC_ACQUIRE) != CACHE_LIVE ||
	    !cache_slot_start(cp, p, arena_desc_of(p)))
		return 0;
	char *q = (char *)p + cp->first_off;
	if (cp->qmax && obj_is_free(q))     /* waiting in the quarantine (or free anyway) */
		return 0;
	const struct cache_tbin *t = &cache_tls[cp - caches];
	for (void *o = t->bin.head; o; o = obj_next(o))     /* stale too: the same life */
		if (o == q)
			return 0;
	struct page_desc *dq = arena_desc_of(q);
	return dq && !slab_obj_is_free(dq, q);
}

/* ------------------------------------------------ construct and destruct */

/* The slot whose trailer is q leaves the slab layer: constructed if it is
 * not. handout: it goes to the program (memcheck is told). */
static bool cache_construct(struct bsl_cache *cp, char *q, int flags, bool handout)
{
	char *p = q - cp->first_off;
	uint64_t *w = (uint64_t *)q;
	vg_open(q, TRAILER);
	bool built = cons_built(q);
	if (built && handout && (cp->secure & CACHE_SEC_FILL))     /* sealed at its last free */
		cache_fill_check(cp, p, CACHE_FOUND_ALLOC);
	if (handout)
		vg_malloclike(p, cp->size, cp->slot, built);
	if (handout && built && cp->vbits_off)    /* memcheck: defined as it was freed */
		vg_vbits_restore(p, p + cp->vbits_off, cp->size);
	vg_open(q, TRAILER);
	if (!built && cp->ctor) {
		if (cp->ctor(p, cp->arg, flags) != 0) {
			w[2] = 0;
			if (handout)
				vg_freelike(p);
			return false;
		}
	}
	w[2] = cons_mark(q);
	if (!built && !handout && (cp->secure & CACHE_SEC_FILL))   /* free, into the bin */
		cache_fill_seal(cp, p);
	if (handout)
		vg_close(q, TRAILER);
	return true;
}

/* slab.c (slab_named_hook): a new slab of n slots at base gets its canaries
 * (made); or the slab, with n slots ever handed out, leaves. */
static void cache_slab_hook(unsigned sidx, char *base, unsigned n, bool made)
{
	struct bsl_cache *cp = &caches[sidx - NCLASSES - 1];
	if (made) {
		for (unsigned i = 0; i < n && (cp->secure & CACHE_SEC_CANARY); i++)
			cache_canary_arm(cp, base + (size_t)i * cp->slot, i == 0);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		char *p = base + (size_t)i * cp->slot, *q = p + cp->first_off;
		uint64_t *w = (uint64_t *)q;
		vg_open(q, TRAILER);
		if (cons_built(q) && (cp->secure & CACHE_SEC_FILL))   /* every such slot is free, sealed */
			cache_fill_check(cp, p, CACHE_FOUND_SLAB);
		if (cons_built(q) && cp->dtor) {
			vg_open(p, cp->size);
			if (cp->vbits_off)     /* the fields the ctor left unset: undefined */
				vg_vbits_restore(p, p + cp->vbits_off, cp->size);
			cp->dtor(p, cp->arg);
			vg_close(p, cp->size);
		}
		w[2] = 0;
		vg_close(q, TRAILER);
	}
}

/* ------------------------------------------------------------ bins */

static void bin_flush(struct bsl_cache *cp, struct cache_tbin *t, int32_t keep)
{
	void *objs[BIN_MAX];
	unsigned n = 0;
	while (t->bin.max - t->bin.room > keep && n < BIN_MAX) {
		void *q = tcache_pop(&t->bin);
		if (!q)
			break;
		objs[n++] = q;
	}
	slab_free_bulk(objs, n);
}

static inline uint32_t gen_of(const struct bsl_cache *cp)
{
	return __atomic_load_n(&cp->gen, __ATOMIC_ACQUIRE);
}

/* Under secure fill a gen moves by 2 (it stays even) and a current bin
 * carries gen + 1, so the fast paths (which compare a bin's gen with
 * cp->gen) always miss, whatever the bin's age, and every object a bin
 * hands out is checked in cache_alloc_slow. */
static inline uint32_t gen_step(const struct bsl_cache *cp)
{
	return cp->secure & CACHE_SEC_FILL ? 2 : 1;
}

static inline uint32_t bin_gen(const struct bsl_cache *cp)
{
	return gen_of(cp) | (cp->secure & CACHE_SEC_FILL ? 1 : 0);
}

/* Every attached bin of cp is stale from now on (shrink, destroy). */
static void cache_new_gen(struct bsl_cache *cp)
{
	__atomic_add_fetch(&cp->gen, gen_step(cp), __ATOMIC_RELEASE);
	__atomic_add_fetch(&caches_epoch, 1, __ATOMIC_SEQ_CST);
}

/* The destroy of cp completes, when its claim wins: every empty slab back
 * (destructors run), then the slot FREE, or RETIRED with a report.
 * deferred: this is the last other thread's bin flush, after the destroy. */
static void cache_finish(struct bsl_cache *cp, bool deferred)
{
	int want = CACHE_DRAINING;
	if (!__atomic_compare_exchange_n(&cp->state, &want, CACHE_RETIRED, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return;
	if (cp->qmax)
		cache_quarantine_drain(cp);
	slab_shrink(cp->sidx);
	uint64_t nslabs, live = slab_objs_out(cp->sidx, &nslabs);
	if (live || nslabs)
		bsl_warnf("bsl_cache_destroy(): the cache \"%s\" still has %lu live objects "
			  "(allocated and not freed) in %lu slabs: they are leaked, and the "
			  "cache's slot is not reused%s", cp->name, (unsigned long)live,
			  (unsigned long)nslabs, deferred ? " (counted when the last other "
			  "thread's cached objects of it were given back)" : "");
	lock_acquire(&caches_lock);
	__atomic_store_n(&cp->state, live || nslabs ? CACHE_RETIRED : CACHE_FREE, __ATOMIC_RELEASE);
	lock_release(&caches_lock);
}

/* The calling thread's bin t of cp: every object back to its slab, and the
 * bin detached; the last detach after a destroy finishes it. */
static void bin_detach(struct bsl_cache *cp, struct cache_tbin *t)
{
	while (t->bin.head)
		bin_flush(cp, t, 0);
	bool attached = t->bin.max != 0;
	t->bin = (struct tcache_bin){ NULL, 0, 0 };
	if (attached && __atomic_sub_fetch(&cp->nbins, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&cp->state, __ATOMIC_SEQ_CST) == CACHE_DRAINING)
		cache_finish(cp, true);
}

/* caches_epoch moved: detach the calling thread's stale bins. */
static NOINLINE void bins_refresh(void)
{
	cache_seen = __atomic_load_n(&caches_epoch, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < NCACHES_MAX; i++) {
		struct cache_tbin *t = &cache_tls[i];
		if (t->bin.max && t->gen != bin_gen(&caches[i]))
			bin_detach(&caches[i], t);
	}
}

static inline void bins_check_epoch(void)
{
	if (unlikely(cache_seen != __atomic_load_n(&caches_epoch, __ATOMIC_RELAXED)))
		bins_refresh();
}

/* The exit key's destructor (tcache.c): every bin back, none from now on. */
static void cache_thread_exit(void)
{
	cache_exiting = true;
	for (unsigned i = 0; i < NCACHES_MAX; i++) {
		struct cache_tbin *t = &cache_tls[i];
		if (t->bin.max)       /* stale or not: objects of the slot's current life */
			bin_detach(&caches[i], t);
		t->gen = 0;
	}
}

/* The calling thread's bin of cp, of cp's current gen, attached (with room)
 * when it may cache and cp is live. */
static struct cache_tbin *bin_of(struct bsl_cache *cp, bool caching)
{
	struct cache_tbin *t = &cache_tls[cp - caches];
	uint32_t gen = bin_gen(cp);
	if (t->gen != gen) {
		if (t->bin.max)
			bin_detach(cp, t);
		t->gen = gen;
	}
	if (caching && t->bin.max == 0) {
		__atomic_add_fetch(&cp->nbins, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&cp->state, __ATOMIC_SEQ_CST) == CACHE_LIVE)
			t->bin.max = t->bin.room = cp->bin_max;
		else      /* destroyed meanwhile (a program bug): no bin */
			__atomic_sub_fetch(&cp->nbins, 1, __ATOMIC_SEQ_CST);
	}
	return t;
}

/* ------------------------------------------------------------ alloc, free */

static NOINLINE void *cache_alloc_slow(struct bsl_cache *cp, int flags)
{
	struct cache_tbin *t = &cache_tls[cp - caches];
	void *objs[BIN_MAX / 2 + 1], *failed[BIN_MAX / 2 + 1], *ret = NULL;
	if ((cp->secure & CACHE_SEC_FILL) && t->gen == bin_gen(cp) &&
	    (ret = tcache_pop(&t->bin)) != NULL) {      /* secure fill: the fast path's pop */
		cache_fill_check(cp, (char *)ret - cp->first_off, CACHE_FOUND_ALLOC);
		return (char *)ret - cp->first_off;
	}
	bool caching = !cache_exiting && opt.tcache && tcache_thread_ready();
	t = bin_of(cp, caching);     /* empty: a bin of another gen is given back */
	unsigned want = caching && t->bin.room > 1 ? (unsigned)t->bin.room / 2 + 1 : 1, nfailed = 0;
	unsigned got = slab_alloc_bulk(cp->sidx, objs, want);
	for (unsigned i = 0; i < got; i++) {
		if (!cache_construct(cp, objs[i], flags, i == 0))
			failed[nfailed++] = objs[i];
		else if (i == 0)
			ret = objs[i];
		else
			tcache_push(&t->bin, objs[i]);
	}
	slab_free_bulk(failed, nfailed);
	if (!ret) {
		errno = ENOMEM;
		return NULL;
	}
	return (char *)ret - cp->first_off;
}

/* prof:1 picked this object: recorded like a malloc sample (cfa: the caller's
 * frame), and flagged in its mark for bsl_cache_free. */
static NOINLINE void cache_sample(struct bsl_cache *cp, void *p, uintptr_t cfa)
{
	if (prof_tick(cp->size) && !vg_active) {
		prof_record(p, cp->size, cfa);
		uint64_t *w = (uint64_t *)((char *)p + cp->first_off);
		w[2] = cons_mark(w) ^ CONS_SAMPLED;
	}
}

/* bsl_cache_free of a sample (its mark flagged): it leaves the profile. */
static NOINLINE void cache_unsample(void *p, uint64_t *w)
{
	w[2] = cons_mark(w);
	prof_forget(p, NULL);
}

EXPORT void *bsl_cache_alloc(bsl_cache_t *cache, int flags)
{
	struct bsl_cache *cp = cache_live(cache, "bsl_cache_alloc");
	bins_check_epoch();
	struct cache_tbin *t = &cache_tls[cp - caches];
	void *q, *p;
	if (likely(t->gen == __atomic_load_n(&cp->gen, __ATOMIC_RELAXED)) &&
	    (q = tcache_pop(&t->bin)) != NULL)
		p = (char *)q - cp->first_off;
	else if (!(p = cache_alloc_slow(cp, flags)))
		return NULL;
	if (unlikely(prof_count(cp->size)))
		cache_sample(cp, p, (uintptr_t)__builtin_dwarf_cfa());
	return p;
}

static NOINLINE void cache_free_slow(struct bsl_cache *cp, void *q)
{
	struct cache_tbin *t = &cache_tls[cp - caches];
	if ((cp->secure & CACHE_SEC_FILL) && t->gen == bin_gen(cp) && t->bin.room > 0) {
		tcache_push(&t->bin, q);      /* secure fill: the fast path's push */
		return;
	}
	bool caching = !cache_exiting && opt.tcache && tcache_thread_ready();
	t = bin_of(cp, caching);
	if (caching && t->bin.room <= 0)
		bin_flush(cp, t, t->bin.max / 2);
	if (caching && t->bin.room > 0)
		tcache_push(&t->bin, q);
	else
		slab_free_bulk(&q, 1);
}

EXPORT void bsl_cache_free(bsl_cache_t *cache, void *p)
{
	struct bsl_cache *cp = cache_live(cache, "bsl_cache_free");
	bins_check_epoch();
	if (!p)
		return;
	char *q = (char *)p + cp->first_off;
	struct page_desc *d = arena_desc_of(p);
	if (unlikely(!d || d->kind != PD_SLAB || d->cache_id != cp->sidx - NCLASSES ||
		     !cache_slot_start(cp, p, d)))
		cache_not_ours(cp, p);
	if (unlikely(vg_active))
		vg_open(q, TRAILER);
	if (unlikely(obj_is_free(q)))
		cache_double_free(cp, p);
	if (unlikely(vg_active)) {
		vg_vbits_save(p, (char *)p + cp->vbits_off, cp->size);
		vg_freelike(p);
	}
	if (unlikely(opt.prof) && unlikely(((uint64_t *)q)[2] != cons_mark(q)))
		cache_unsample(p, (uint64_t *)q);
	if (unlikely(cp->secure) && !(q = cache_secure_free(cp, p, d)))
		return;      /* in the quarantine; q: the one leaving it */
	struct cache_tbin *t = &cache_tls[cp - caches];
	if (likely(t->gen == __atomic_load_n(&cp->gen, __ATOMIC_RELAXED) && t->bin.room > 0)) {
		tcache_push(&t->bin, q);
		return;
	}
	cache_free_slow(cp, q);
}

/* ------------------------------------------------------- create, destroy */

static bool cache_args_ok(const char *name, size_t size, size_t align)
{
	return name && size && size <= CACHE_OBJ_MAX &&
	       (align == 0 || (is_pow2(align) && align <= PAGE_SIZE));
}

static void cache_setup(struct bsl_cache *cp, const char *name, size_t size, size_t align)
{
	size_t a = align ? align : MIN_ALIGN;
	if (a < sizeof(uint64_t))
		a = sizeof(uint64_t);
	size_t i = (size_t)(cp - caches);
	memset(cp->name, 0, NAME_LEN);
	strncpy(cp->name, name, NAME_LEN - 1);
	cp->size = (uint32_t)size;
	cp->align = (uint32_t)a;
	bool canary = opt.secure & SEC_CANARY, fill = opt.secure & SEC_FILL;   /* off under memcheck */
	cp->secure = (uint16_t)((canary ? CACHE_SEC_CANARY : 0) | (fill ? CACHE_SEC_FILL : 0) |
				(opt.secure & SEC_QUARANTINE ? CACHE_SEC_QUARANTINE : 0));
	cp->first_off = (uint32_t)(align_up(size, sizeof(uint64_t)) + (canary ? 8 : 0));
	cp->vbits_off = vg_active ? cp->first_off + (uint32_t)TRAILER : 0;
	cp->slot = (uint32_t)align_up(cp->first_off + TRAILER + (vg_active ? size : 0) +
				      (fill ? 8 : 0) + (canary ? 8 : 0), a);
	cp->qmax = (uint16_t)(cp->secure & CACHE_SEC_QUARANTINE ? cache_quarantine_len(cp->slot) : 0);
	cp->sidx = NCLASSES + 1 + (unsigned)i;
	int32_t n = (int32_t)(BIN_BYTES / cp->slot);
	cp->bin_max = n < 4 ? 4 : n > BIN_MAX ? BIN_MAX : n;
	class_info_fill(&slab_named[i].geom, cp->slot, (opt.secure & SEC_GUARD) ? 1 : 0);
	slab_named[i].first_off = cp->first_off;
	slab_named[i].front = 0;
	if (canary)
		cache_canary_front(cp, &slab_named[i], (opt.secure & SEC_GUARD) ? 1 : 0);
	ASSERT(cp->nbins == 0);      /* FREE: no bin attached (the invariant) */
	__atomic_add_fetch(&cp->gen, gen_step(cp), __ATOMIC_RELEASE);
}

EXPORT bsl_cache_t *bsl_cache_create(const char *name, size_t size, size_t align,
				     int (*ctor)(void *, void *, int),
				     void (*dtor)(void *, void *), void *arg)
{
	bsl_ensure_init();
	if (!cache_args_ok(name, size, align)) {
		errno = EINVAL;
		return NULL;
	}
	/* before the cache is published (its state's release store) */
	__atomic_store_n(&slab_named_hook, cache_slab_hook, __ATOMIC_RELAXED);
	__atomic_store_n(&tcache_exit_hooks[TCACHE_EXIT_CACHES], cache_thread_exit, __ATOMIC_RELAXED);
	struct bsl_cache *cp = NULL;
	lock_acquire(&caches_lock);
	for (unsigned i = 0; i < NCACHES_MAX && !cp; i++)
		if (caches[i].state == CACHE_FREE)
			cp = &caches[i];
	if (cp) {
		cache_setup(cp, name, size, align);
		cp->ctor = ctor;
		cp->dtor = dtor;
		cp->arg = arg;
		__atomic_store_n(&cp->state, CACHE_LIVE, __ATOMIC_RELEASE);
	}
	lock_release(&caches_lock);
	if (!cp) {
		bsl_warnf("bsl_cache_create(\"%s\"): all %u named caches are in use", name,
			  NCACHES_MAX);
		errno = ENOMEM;
	}
	return cp;
}

/* Every bin of cp stale; the calling thread's back now, other threads' at
 * their next cache call or exit; then every empty slab. */
EXPORT void bsl_cache_shrink(bsl_cache_t *cache)
{
	struct bsl_cache *cp = cache_live(cache, "bsl_cache_shrink");
	cache_new_gen(cp);
	bins_refresh();
	if (cp->qmax)
		cache_quarantine_drain(cp);
	slab_shrink(cp->sidx);
}

EXPORT void bsl_cache_destroy(bsl_cache_t *cache)
{
	struct bsl_cache *cp = cache_live(cache, "bsl_cache_destroy");
	lock_acquire(&caches_lock);
	bool mine = cp->state == CACHE_LIVE;
	if (mine)
		__atomic_store_n(&cp->state, CACHE_DYING, __ATOMIC_RELEASE);
	lock_release(&caches_lock);
	if (!mine)
		cache_not_a_cache(cp, "bsl_cache_destroy");
	cache_new_gen(cp);
	bins_refresh();          /* this thread's bin of cp (DYING: no finish yet) */
	__atomic_store_n(&cp->state, CACHE_DRAINING, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&cp->nbins, __ATOMIC_SEQ_CST) == 0)
		cache_finish(cp, false);
	/* else the last thread to give its bin of cp back finishes it */
}

/* ------------------------------------------------------------ fork */

/* The forking thread is the child's only one: only its bins stay attached
 * (other threads' cached objects stay allocated). */
void cache_after_fork_child(void)
{
	for (unsigned i = 0; i < NCACHES_MAX; i++)
		caches[i].nbins = cache_tls[i].bin.max != 0;
}

void cache_lock_all(void)
{
	lock_fork_acquire(&caches_lock);
	cache_quarantine_lock_all();
}

void cache_unlock_all(void)
{
	cache_quarantine_unlock_all();
	lock_fork_release(&caches_lock);
}
