#define _GNU_SOURCE
/*
 * slab.c - carve buddy blocks into objects of one size class.
 *
 * A slab is a 2^order-page buddy block. Every page's descriptor has kind
 * PD_SLAB, the class and the address of the slab's first object, hidden
 * (common.h: memcheck must not see the first object as reachable through its
 * descriptors); the head descriptor holds the slab's state:
 *   freelist   objects freed back to the slab (linked through their first word)
 *   fresh      index of the first object never handed out (bump allocation,
 *              so a new slab is not written to before it is used)
 *   inuse      objects out of the slab (in the program or a thread cache)
 * Invariant: inuse + (objects on freelist) + (nobjs - fresh) == nobjs - front,
 * where front (sec_front_objs, 0 or 1: secure canary mode) counts the slots at
 * the start of the slab that are never handed out. A slab is on its cpu's
 * partial list (PDF_PARTIAL) exactly when 0 < inuse < nobjs - front, on its
 * empty list (PDF_EMPTY) exactly when inuse == 0, and on no list when full.
 * Allocation takes partial slabs first, then empty ones, then a new one.
 *
 * A slab that becomes empty stays on the empty list while its class (or
 * named cache) keeps its reserve (SLAB_RESERVE) or the cpu's empty slabs
 * total at most SLAB_KEEP_BYTES; otherwise its pages go back to the buddy
 * layer at once. The decay tick returns those a class did not need (slab.h,
 * slab_decay), dated by when they became free, so that the buddy layer's
 * decay sees how long their pages have been idle.
 *
 * Named caches (cache.c) are more slab indexes (slab.h): the same lists,
 * counts and release, with their own geometry; their slabs take no secure
 * fill, canary front slot or shuffle (constructed objects must not be
 * rewritten, and a slot's constructed state is known by its trailer), only
 * the guard page and a front (slab.h); their release runs the hook (destructors) with no
 * lock held, then gives the pages back, so a decay tick or purge runs them in
 * whichever thread ticks; slab_shrink waits for those in flight
 * (named_releasing), so a destroyed cache's slot is reused only after.
 *
 * Locks: never two slab cpu locks at once; a zone lock may be taken under
 * one to get pages, never to free them (released slabs are chained and
 * freed after the unlock). The order is in src/LAYERS.md.
 */
#include "slab.h"
#include "buddy.h"
#include "vg.h"
#include "secure.h"
#include "config.h"
#include <sys/auxv.h>
#include <sched.h>
#include <string.h>
#include "os.h"

struct slab_cpu slab_cpus[MAX_CPUS];
struct obj_keys obj_keys;
struct slab_named slab_named[NCACHES_MAX];
void (*slab_named_hook)(unsigned sidx, char *base, unsigned n, bool made);
/* Named slabs off their lists whose hook has not returned, by cache (atomic). */
static uint32_t named_releasing[NCACHES_MAX];

/* Bytes from a slot's start to the slab layer's object: a named cache's
 * trailer (slab.h); 0 for kmalloc-N. */
static inline uintptr_t slab_first_off(unsigned c)
{
	return c <= NCLASSES ? 0 : slab_named[c - NCLASSES - 1].first_off;
}

void slab_keys_init(void)
{
	const void *rnd = (const void *)getauxval(AT_RANDOM);   /* 16 bytes, not aligned */
	uint64_t r[2] = { 0, 0 };
	if (rnd)
		memcpy(r, rnd, sizeof r);
	/* mixed with an address so that a missing AT_RANDOM still varies with ASLR */
	uint64_t a = (uintptr_t)&obj_keys * 0x9E3779B97F4A7C15ull;
	obj_keys.link = r[0] ^ a;
	obj_keys.check = (r[1] ^ (a >> 29) ^ 0xD6E8FEB86659FD93ull) | 1;   /* never 0 */
}

void obj_link_corrupt(const void *p)
{
	bsl_fatalf("aborting on heap corruption", "corrupted free list: the free object %p was "
		   "overwritten (a write after free, or an overflow from the block before it)", p);
}

/* Empty slabs a CPU keeps per class beyond the byte budget and the decay: one
 * for slabs of up to two pages, four in secure guard mode (a new slab costs an
 * mprotect there, its release another and a fill: four instead of one made
 * cache_mix and server_churn 1.3x faster under secure:1, same peak RSS). */
#define SLAB_RESERVE(c) ((opt.secure & SEC_GUARD) ? 4u : slab_geom(c)->order <= 1 ? 1u : 0u)

/* Debug builds: the full check (slab_check) runs again after as many calls as
 * it visited slabs and free objects the last time (at least 64), so that it
 * costs O(1) per call amortised however many free objects the partial slabs
 * hold (every 64 calls was quadratic: 150 s for test_cxx in secure mode). */
static void debug_check_locked(struct slab_cpu *sc)
{
	lock_assert_held(&sc->lock);
	if (BSL_DEBUG && sc->ndebug_checks-- == 0)
		sc->ndebug_checks = 64 + slab_check(sc);
}

/* The slab lists: partial[c] (PDF_PARTIAL) holds the slabs with objects both
 * out and free, empty[c] (PDF_EMPTY) those with every object free; a full
 * slab is on neither. nempty, empty_bytes and the low-water mark follow the
 * empty lists. */
static struct page_desc **slab_list(struct slab_cpu *sc, unsigned c, uint8_t flag)
{
	return flag == PDF_EMPTY ? &sc->empty[c] : &sc->partial[c];
}

static void list_add_locked(struct slab_cpu *sc, struct page_desc *s, unsigned c, uint8_t flag)
{
	lock_assert_held(&sc->lock);
	struct page_desc **list = slab_list(sc, c, flag);
	s->flags |= flag;
	s->prev = NULL;
	s->next = *list;
	if (s->next)
		s->next->prev = s;
	*list = s;
	if (flag == PDF_EMPTY) {
		sc->nempty[c]++;
		__atomic_store_n(&sc->empty_bytes, sc->empty_bytes + (PAGE_SIZE << s->order),
				 __ATOMIC_RELAXED);
	}
}

static void list_del_locked(struct slab_cpu *sc, struct page_desc *s, unsigned c)
{
	lock_assert_held(&sc->lock);
	uint8_t flag = s->flags & (PDF_PARTIAL | PDF_EMPTY);
	ASSERT(flag == PDF_PARTIAL || flag == PDF_EMPTY);
	if (s->prev)
		s->prev->next = s->next;
	else
		*slab_list(sc, c, flag) = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	s->flags &= (uint8_t)~flag;
	if (flag == PDF_EMPTY) {
		if (--sc->nempty[c] < sc->lowater[c])
			sc->lowater[c] = sc->nempty[c];
		__atomic_store_n(&sc->empty_bytes, sc->empty_bytes - (PAGE_SIZE << s->order),
				 __ATOMIC_RELAXED);
	}
}

/* After s's inuse changed: s onto the list its count says. */
static void slab_relist_locked(struct slab_cpu *sc, struct page_desc *s, unsigned c)
{
	uint8_t want = s->inuse == 0 ? PDF_EMPTY :
		       s->inuse + slab_front(c) < s->nobjs ? PDF_PARTIAL : 0;
	uint8_t have = s->flags & (PDF_PARTIAL | PDF_EMPTY);
	if (want == have)
		return;
	if (have)
		list_del_locked(sc, s, c);
	if (want)
		list_add_locked(sc, s, c, want);
}

/* Secure mode on a new slab (secure.h): a guard on its last page, the fill
 * and trailers, and a free list of every object in random order. */
static void *slab_last_page(struct page_desc *s)
{
	return (char *)desc_addr(s) + ((((size_t)1 << s->order) - 1) << PAGE_SHIFT);
}

static void slab_secure_new(struct page_desc *s, unsigned c, bool dirty)
{
	if ((opt.secure & SEC_GUARD) && secure_guard_slab(slab_last_page(s)))
		s->flags |= PDF_GUARD;
	if (c > NCLASSES)
		return;      /* named cache: the guard only */
	const struct class_info *ci = &class_info[c];
	char *base = desc_addr(s);
	secure_slab_prepare(base, ci->size, s->nobjs, dirty);
	s->fresh = (uint16_t)sec_front_objs;
	if (opt.secure & SEC_SHUFFLE) {
		uint16_t perm[2048];
		unsigned n = s->nobjs - sec_front_objs;
		VERIFY(n <= sizeof perm / sizeof perm[0]);
		secure_shuffle(perm, n);
		void *next = NULL;
		for (unsigned i = n; i-- > 0;) {
			void *p = base + (size_t)(perm[i] + sec_front_objs) * ci->size;
			obj_set_next(p, next);
			next = p;
		}
		s->freelist = next;
		s->fresh = s->nobjs;
	}
}

/* colour:1: where a new slab's first object starts, in bytes from the slab's
 * first byte: the next multiple of the colour step that the slab's tail room
 * (the bytes its objects leave, below a page) allows, cycling per class and
 * CPU, so that objects at the same index of successive slabs fall in
 * different cache sets (the kernel's slab colouring). The step is the cache
 * line or, when larger, the alignment the class's objects have from a page
 * boundary (the largest power of two dividing the size, up to a page), which
 * aligned_alloc's choice of class relies on. 0 otherwise, and in secure mode,
 * whose guard pages and front canaries fix the layout. */
static size_t slab_colour_locked(struct slab_cpu *sc, unsigned c, const struct class_info *ci)
{
	lock_assert_held(&sc->lock);
	if (!opt.colour || opt.secure)
		return 0;
	size_t room = (PAGE_SIZE << ci->order) - (size_t)ci->nobjs * ci->size;
	size_t natural = (size_t)1 << (ci->shift < PAGE_SHIFT ? ci->shift : PAGE_SHIFT);
	size_t step = natural > CACHE_LINE ? natural : CACHE_LINE;
	size_t ncolours = (room < PAGE_SIZE ? room : PAGE_SIZE - 1) / step + 1;
	unsigned k = sc->colour[c];
	sc->colour[c] = (uint8_t)(k + 1 < ncolours ? k + 1 : 0);
	return (size_t)k * step;
}

static struct page_desc *slab_new_locked(struct slab_cpu *sc, unsigned c)
{
	lock_assert_held(&sc->lock);
	const struct class_info *ci = slab_geom(c);
	bool dirty;
	struct page_desc *s = buddy_alloc(buddy_zone_at(slab_cpu_index(sc)), ci->order, &dirty);
	if (!s)
		return NULL;
	size_t npages = (size_t)1 << ci->order;
	bool named = c > NCLASSES;
	uintptr_t base = (uintptr_t)desc_addr(s) + (named ? slab_named_front(c) : slab_colour_locked(sc, c, ci));
	for (size_t i = 0; i < npages; i++) {
		s[i].kind = PD_SLAB;
		s[i].class_idx = named ? 0 : (uint8_t)c;
		s[i].cache_id = named ? (uint8_t)(c - NCLASSES) : 0;
		s[i].slab_base_hidden = hide_addr(base);
		s[i].freed = 0;
		s[i].obj_inv = named ? 0 : ci->inv;
		s[i].obj_shift = named ? 0 : ci->shift;
		s[i].obj_nobjs = named ? 0 : ci->nobjs;
	}
	s->order = ci->order;
	s->nobjs = ci->nobjs;
	s->fresh = 0;
	s->inuse = 0;
	s->freelist = NULL;
	s->slab_cpu = (uint16_t)slab_cpu_index(sc);
	if (opt.secure)
		slab_secure_new(s, c, dirty);
	if (named && (opt.secure & SEC_CANARY))   /* every slot's canaries, before any leaves */
		slab_named_hook(c, (char *)base, s->nobjs, true);
	sc->nslabs[c]++;
	list_add_locked(sc, s, c, PDF_EMPTY);
	return s;
}

/* The pages of a slab taken off every list, back to the buddy layer, free
 * (unused) since idle_ms (0: now); a named cache's hook runs first (no lock
 * held: destructors may call malloc). */
static void slab_pages_free(struct page_desc *s, uint64_t idle_ms)
{
	unsigned c = slab_sidx(s), order = s->order;
	if (c > NCLASSES) {      /* the hook is set before a named slab exists */
		slab_named_hook(c, slab_first_obj(s), s->fresh, false);
		__atomic_sub_fetch(&named_releasing[c - NCLASSES - 1], 1, __ATOMIC_RELEASE);
	}
	for (size_t i = 0, n = (size_t)1 << order; i < n; i++) {
		s[i].kind = PD_NONE;
		s[i].class_idx = 0;
		s[i].cache_id = 0;
		s[i].slab_base_hidden = 0;
		s[i].obj_nobjs = 0;
		s[i].freed = 1;
	}
	s->inuse = s->nobjs = s->fresh = s->slab_cpu = 0;
	buddy_free_idle(s, order, idle_ms);
}

/* Take the empty slab s off its lists and chain it on *later (through next)
 * for slab_free_later once the lock is dropped. */
static bool slab_release_locked(struct slab_cpu *sc, struct page_desc *s, unsigned c,
				struct page_desc **later)
{
	lock_assert_held(&sc->lock);
	if ((opt.secure & SEC_FILL) && c <= NCLASSES)  /* a write after free must not leave with the pages */
		secure_check_slab(desc_addr(s), class_info[c].size, s->nobjs);
	if ((s->flags & PDF_GUARD) && !secure_unguard_slab(slab_last_page(s)))
		return false;  /* the slab stays, empty, rather than a trap page going free */
	s->flags &= (uint8_t)~PDF_GUARD;
	list_del_locked(sc, s, c);
	sc->nslabs[c]--;
	if (c > NCLASSES)
		__atomic_add_fetch(&named_releasing[c - NCLASSES - 1], 1, __ATOMIC_RELAXED);
	s->next = *later;
	*later = s;
	return true;
}

/* Slab s of c is now empty, its objects unused since *idle_ms (0: now, then
 * read once): back to the buddy layer (true), unless the class keeps its
 * reserve or (kmalloc) the CPU's empty slabs stay within SLAB_KEEP_BYTES; a
 * kept one dates the class's last emptying. */
static bool slab_emptied_locked(struct slab_cpu *sc, struct page_desc *s, unsigned c,
				struct page_desc **later, uint64_t *idle_ms)
{
	if (sc->nempty[c] > SLAB_RESERVE(c) && sc->empty_bytes > SLAB_KEEP_BYTES)
		return slab_release_locked(sc, s, c, later);
	if (!*idle_ms)
		*idle_ms = os_now_ms();
	if (*idle_ms > sc->emptied_ms[c])
		sc->emptied_ms[c] = *idle_ms;
	return false;
}

static void slab_free_later(struct page_desc *later, uint64_t idle_ms)
{
	while (later) {
		struct page_desc *s = later;
		later = s->next;
		s->next = NULL;
		slab_pages_free(s, idle_ms);
	}
}

unsigned slab_alloc_bulk(unsigned c, void **objs, unsigned n)
{
	struct slab_cpu *sc = &slab_cpus[os_cpu_index()];
	const struct class_info *ci = slab_geom(c);
	unsigned got = 0;
	lock_acquire(&sc->lock);
	while (got < n) {
		struct page_desc *s = sc->partial[c] ? sc->partial[c] : sc->empty[c];  /* partial first */
		if (!s && !(s = slab_new_locked(sc, c)))
			break;
		char *base = slab_first_obj(s) + slab_first_off(c);   /* the first object */
		while (got < n && s->freelist) {
			void *p = s->freelist;
			vg_open(p, 2 * sizeof(void *));
			s->freelist = obj_next(p);
			obj_mark_used(p);
			objs[got++] = p;
			s->inuse++;
		}
		while (got < n && s->fresh < s->nobjs) {
			void *p = base + (size_t)s->fresh++ * ci->size;
			vg_open(p, 2 * sizeof(void *));   /* may be pages memcheck saw freed */
			obj_mark_used(p);
			objs[got++] = p;
			s->inuse++;
		}
		slab_relist_locked(sc, s, c);
	}
	sc->nobjs_out[c] += got;
	sc->nalloc[c] += got;
	debug_check_locked(sc);
	lock_release(&sc->lock);
	return got;
}

void slab_free_bulk(void *const *objs, unsigned n)
{
	struct slab_cpu *held = NULL;
	struct page_desc *s = NULL, *later = NULL;
	uintptr_t last_page = 0;     /* objects of one page often come in a row */
	uint64_t now = 0;
	for (unsigned i = 0; i < n; i++) {
		void *p = objs[i];
		if ((uintptr_t)p >> PAGE_SHIFT != last_page) {
			s = slab_head(arena_desc_of(p), p);
			last_page = (uintptr_t)p >> PAGE_SHIFT;
		}
		struct slab_cpu *sc = &slab_cpus[s->slab_cpu];
		if (sc != held) {
			if (held)
				lock_release(&held->lock);
			lock_acquire(&sc->lock);
			held = sc;
		}
		unsigned c = slab_sidx(s);
		ASSERT(s->kind == PD_SLAB && s->inuse > 0);
		vg_open(p, 2 * sizeof(void *));
		obj_set_next(p, s->freelist);
		vg_close(p, 2 * sizeof(void *));
		s->freelist = p;
		sc->nobjs_out[c]--;
		sc->nfree[c]++;
		s->inuse--;
		slab_relist_locked(sc, s, c);
		if (s->inuse == 0 && slab_emptied_locked(sc, s, c, &later, &now))
			last_page = 0;
	}
	if (held) {
		debug_check_locked(held);
		lock_release(&held->lock);
	}
	slab_free_later(later, 0);
}

/* The thread cache's transfers move chains, not arrays: objects linked by
 * obj_set_next, as in a bin and on a slab's free list (the same encoding),
 * so a run of a slab's free list goes to a bin, or a run of a bin's objects
 * from one slab back to it, by relinking its last object only. Memcheck runs
 * without thread caches, so these never open links for it. */

/* Up to want objects off slab s for a chain: first..last, still linked
 * among themselves (last's link is the caller's to set); how many. */
static unsigned slab_take_run_locked(struct page_desc *s, unsigned c, unsigned want,
				     void **first, void **last)
{
	unsigned k = 0;
	void *head = NULL, *tail = NULL;
	if (s->freelist) {
		unsigned avail = s->fresh - slab_front(c) - s->inuse;   /* on the free list */
		head = tail = s->freelist;
		for (k = 1; k < want && k < avail; k++)
			tail = obj_next(tail);
		s->freelist = obj_next(tail);      /* checks the run's last link too */
		ASSERT(k < avail || !s->freelist);
	}
	const struct class_info *ci = &class_info[c];
	char *p = slab_first_obj(s) + (size_t)s->fresh * ci->size;
	for (; k < want && s->fresh < s->nobjs; k++, s->fresh++, p += ci->size) {
		if (tail)
			obj_set_next(tail, p);
		else
			head = p;
		tail = p;
	}
	s->inuse = (uint16_t)(s->inuse + k);
	*first = head;
	*last = tail;
	return k;
}

unsigned slab_alloc_chain(unsigned c, unsigned n, void **chain)
{
	ASSERT(c >= 1 && c <= NCLASSES && n > 0);
	struct slab_cpu *sc = &slab_cpus[os_cpu_index()];
	void *head = NULL, *tail = NULL;
	unsigned got = 0;
	lock_acquire(&sc->lock);
	while (got < n) {
		struct page_desc *s = sc->partial[c] ? sc->partial[c] : sc->empty[c];  /* partial first */
		if (!s && !(s = slab_new_locked(sc, c)))
			break;
		void *first, *last;
		unsigned k = slab_take_run_locked(s, c, n - got, &first, &last);
		if (tail)
			obj_set_next(tail, first);
		else
			head = first;
		tail = last;
		got += k;
		slab_relist_locked(sc, s, c);
	}
	if (tail)
		obj_set_next(tail, NULL);
	sc->nobjs_out[c] += got;
	sc->nalloc[c] += got;
	debug_check_locked(sc);
	lock_release(&sc->lock);
	*chain = head;
	return got;
}

/* Counts for the k objects of class c that came back to sc. */
static void slab_count_frees_locked(struct slab_cpu *sc, unsigned c, unsigned k)
{
	lock_assert_held(&sc->lock);
	sc->nobjs_out[c] -= k;
	sc->nfree[c] += k;
}

void *slab_free_chain(unsigned c, void *chain, unsigned n, uint64_t idle_ms)
{
	struct slab_cpu *held = NULL;
	struct page_desc *later = NULL;
	unsigned held_count = 0;
	void *p = chain;
	while (n) {
		/* the run of the chain that lies in p's slab */
		ASSERT(p);
		struct page_desc *s = slab_head(arena_desc_of(p), p);
		uintptr_t lo = (uintptr_t)desc_addr(s), len = PAGE_SIZE << s->order;
		ASSERT(s->kind == PD_SLAB && slab_sidx(s) == c);
		void *first = p, *last;
		unsigned k = 0;
		do {
			last = p;
			p = obj_next(p);
			k++;
		} while (--n && (uintptr_t)p - lo < len);
		struct slab_cpu *sc = &slab_cpus[s->slab_cpu];
		if (sc != held) {
			if (held) {
				slab_count_frees_locked(held, c, held_count);
				lock_release(&held->lock);
			}
			lock_acquire(&sc->lock);
			held = sc;
			held_count = 0;
		}
		ASSERT(s->inuse >= k);
		obj_set_next(last, s->freelist);
		s->freelist = first;
		held_count += k;
		s->inuse = (uint16_t)(s->inuse - k);
		slab_relist_locked(sc, s, c);
		if (s->inuse == 0)
			slab_emptied_locked(sc, s, c, &later, &idle_ms);
	}
	if (held) {
		slab_count_frees_locked(held, c, held_count);
		debug_check_locked(held);
		lock_release(&held->lock);
	}
	slab_free_later(later, idle_ms);
	return p;
}

/* Up to n of class c's empty slabs beyond its reserve taken off for
 * slab_free_later; then the low-water mark starts again. */
static void slab_trim_locked(struct slab_cpu *sc, unsigned c, uint32_t n, struct page_desc **later)
{
	while (n-- && sc->nempty[c] > SLAB_RESERVE(c) &&
	       slab_release_locked(sc, sc->empty[c], c, later))
		;
	sc->lowater[c] = sc->nempty[c];
}

/* A decay tick at now (the last one was at prev), or every empty slab beyond
 * the reserves when all is set (idle since now then); true if any went. One
 * class at a time, the pages to the buddy layer with no slab lock held: the
 * background thread must not hold one while it waits for a zone lock (a thread
 * that forks in a signal handler may hold it, its fork handlers the slab lock). */
static bool slab_trim_all(bool all, uint64_t now, uint64_t prev)
{
	uint64_t decay = (uint64_t)opt.decay_ms;
	bool any = false;
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		struct slab_cpu *sc = &slab_cpus[i];
		for (unsigned c = 1; c < NSLAB_IDX; c++) {
			if (!__atomic_load_n(&sc->nempty[c], __ATOMIC_RELAXED))
				continue;
			struct page_desc *later = NULL;
			lock_acquire(&sc->lock);
			bool stale = all || sc->emptied_ms[c] + decay <= now;
			uint64_t idle = all ? 0 : stale ? sc->emptied_ms[c] : prev;
			slab_trim_locked(sc, c, stale ? UINT32_MAX : sc->lowater[c], &later);
			debug_check_locked(sc);
			lock_release(&sc->lock);
			any |= later != NULL;
			slab_free_later(later, idle);
		}
	}
	return any;
}

static uint64_t slab_last_decay_ms;     /* atomic */

void slab_decay(uint64_t now)
{
	uint64_t prev = __atomic_exchange_n(&slab_last_decay_ms, now, __ATOMIC_RELAXED);
	slab_trim_all(false, now, prev);
}

bool slab_purge(void)
{
	return slab_trim_all(true, 0, 0);
}

void slab_shrink(unsigned c)
{
	for (unsigned i = 0; i < MAX_CPUS; i++) {
		struct slab_cpu *sc = &slab_cpus[i];
		if (!__atomic_load_n(&sc->nempty[c], __ATOMIC_RELAXED))
			continue;
		struct page_desc *later = NULL;
		lock_acquire(&sc->lock);
		for (struct page_desc *s = sc->empty[c], *next; s; s = next) {
			next = s->next;
			slab_release_locked(sc, s, c, &later);
		}
		lock_release(&sc->lock);
		slab_free_later(later, 0);
	}
	/* and those a decay tick or purge took first: their destructors done */
	while (__atomic_load_n(&named_releasing[c - NCLASSES - 1], __ATOMIC_ACQUIRE))
		sched_yield();
}

void slab_lock_all(void)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		lock_fork_acquire(&slab_cpus[i].lock);
}

void slab_unlock_all(bool child)
{
	for (unsigned i = 0; i < MAX_CPUS; i++)
		lock_fork_release(&slab_cpus[i].lock);
	if (child)     /* the threads whose hooks were running did not follow */
		memset(named_releasing, 0, sizeof named_releasing);
}
