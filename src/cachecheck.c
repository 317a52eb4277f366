#define _GNU_SOURCE
/*
 * cachecheck.c - the named caches' checks (part of module cache, cache.h):
 * the misuse messages, which cache a pointer belongs to, the slabinfo lines,
 * and secure mode's canaries, checksums and quarantine for cache objects.
 *
 * Secure mode cannot treat a cache object as malloc's objects: a freed object
 * must keep its constructed state, so fill (zeroing freed objects and checking
 * the zeros), the canary slot at a slab's front and the shuffled free order of
 * slab.c do not apply (slab.c gives named slabs the guard page only). What
 * applies is added here, outside the program's bytes:
 *
 * Canary (secure canary). The slot grows by two words (cache.c's layout):
 *     object | pad to 8 | C_o | trailer (link, check, mark) | ... | C_e
 * and each slab's first slot starts cp->align bytes into it (slab_named.front,
 * cache_canary_front), its last word the slab's front word C_f. The pad bytes
 * hold pad_byte(), C_o, C_e and C_f canary_at(their address), a value keyed
 * per process (obj_keys). They are written for every slot when the slab is
 * made (cache_canary_arm from slab.c's slab_named_hook, under the slab lock,
 * before any slot leaves) and never again while the slab lives.
 * INVARIANT: every slot of a live slab has its pad, C_o and C_e intact, and
 * the slab its C_f, unless the program wrote past or before an object.
 * (Arming a slot as it was first constructed raced: a thread freeing slot k
 * could check slot k-1's C_e before the thread that took k-1 had armed it.)
 * So bsl_cache_free of p checks p's pad and C_o (a write past the object:
 * "heap overflow") and the word before p: the C_e that ends the slot before
 * it, or the C_f of its slab for the first slot (a write before the object:
 * "heap underflow"). A cache aligned to a page has no C_f (the front would
 * be a page, and a slab's first slot starts within its first page): there
 * the first slot is not checked for underflow.
 *
 * Fill (secure fill). The slot grows by one more word after the trailer, S
 * (CACHE_SUM_OFF). A free constructed object carries in S a checksum of its
 * bytes (fill_sum: keyed per process and by the object's address), and only
 * the trailer's words (never the object's) are written by the allocator
 * while it is free, so the sum stays true until the program writes into it.
 * INVARIANT: every constructed slot that is free (in the quarantine, a
 * thread's bin or on its slab's free list) has S == fill_sum of its bytes,
 * unless the program wrote into it after its free. S is written as the
 * object becomes free: at bsl_cache_free (cache_secure_free, after the
 * double-free and canary checks, before the quarantine) and when cache.c
 * constructs a slot straight into a bin; a slot that is not constructed has
 * no S to check. S is checked as the object is handed out (cache.c: from a
 * bin, which under fill only the slow path pops, or from its slab) and, for
 * every constructed slot, before its destructor runs as its slab goes back
 * (shrink, destroy, purge, decay). A mismatch aborts: "write after free".
 * The quarantine does not check S as an object leaves (that would read each
 * object cold a third time; it is checked at its handout or its slab's
 * release, whichever comes first).
 *
 * Quarantine (secure quarantine). A freed object waits in its cache's FIFO
 * ring (qmax objects: CACHE_QBYTES of slots, between CACHE_QMIN and
 * CACHE_QOBJS) before it goes to the bins and slabs, so it is not handed out
 * again at once; its trailer is marked free meanwhile (obj_set_next), so a
 * second bsl_cache_free of it is a double free, and bsl_owns answers 0. The
 * ring holds hidden addresses (DESIGN.md 12). When an object leaves, its
 * trailer and canaries are checked again. Shrink and destroy drain the ring
 * first, so an object waiting there is never counted as live.
 *
 * Lock: each ring's lock (quars[i].lock) is a leaf: taken with no other lock
 * held, nothing called under it (objects leaving are freed after the
 * release). The fork handlers take them after caches_lock (src/LAYERS.md).
 */
#include <string.h>
#include "cache.h"
#include "slab.h"
#include "buddyslab.h"

#define CACHE_QOBJS  256           /* at most, per cache */
#define CACHE_QMIN   16
#define CACHE_QBYTES (256u << 10)  /* slots' bytes per ring */

/* ------------------------------------------------------------ messages */

void cache_not_a_cache(const void *cp, const char *api)
{
	bsl_fatalf("aborting on an invalid cache", "%s(): %p is not a live cache "
		   "(never created, or destroyed)", api, cp);
}

struct bsl_cache *cache_holding(const void *p)
{
	struct page_desc *d = arena_desc_of(p);
	if (!d || d->kind != PD_SLAB || !d->cache_id || d->cache_id > NCACHES_MAX)
		return NULL;
	return &caches[d->cache_id - 1];
}

bool cache_slot_start(const struct bsl_cache *cp, const void *p, const struct page_desc *d)
{
	const struct class_info *ci = &slab_named[cp - caches].geom;
	return obj_index(ci->inv, ci->shift, (uintptr_t)p + d->slab_base_hidden) < ci->nobjs;
}

void cache_check_not_named(const void *p, const char *api)
{
	struct bsl_cache *owner = cache_holding(p);
	if (owner)
		bsl_fatalf("aborting on an invalid pointer", "%s(): invalid pointer %p: it is an "
			   "object of the named cache \"%s\" (free it with bsl_cache_free)",
			   api, p, owner->name);
}

void cache_not_ours(const struct bsl_cache *cp, const void *p)
{
	const struct bsl_cache *owner = cache_holding(p);
	struct page_desc *d = arena_desc_of(p);
	const char *what = owner && owner != cp ? "an object of another cache, \"" :
			   owner ? "not the start of an object" :
			   d && d->kind == PD_SLAB ? "a malloc block" : "not an object of any cache";
	bsl_fatalf("aborting on an invalid pointer", "bsl_cache_free(): invalid pointer %p for "
		   "the cache \"%s\": %s%s%s", p, cp->name, what,
		   owner && owner != cp ? owner->name : "", owner && owner != cp ? "\"" : "");
}

void cache_double_free(const struct bsl_cache *cp, const void *p)
{
	bsl_fatalf("aborting on a double free", "double free %p (bsl_cache_free of the cache "
		   "\"%s\": the object is already free)", p, cp->name);
}

/* ------------------------------------------------------------ views */

void cache_text_slabinfo(struct text *t)
{
	for (unsigned i = 0; i < NCACHES_MAX; i++) {
		const struct bsl_cache *cp = &caches[i];
		if (__atomic_load_n(&cp->state, __ATOMIC_ACQUIRE) != CACHE_LIVE)
			continue;
		uint64_t slabs, active = slab_objs_out(cp->sidx, &slabs);
		const struct class_info *ci = &slab_named[i].geom;
		text_printf(t, "%-16s %10lu %10lu %6u %5u %4u %8lu\n", cp->name, (unsigned long)active,
			    (unsigned long)(slabs * ci->nobjs), cp->size, ci->nobjs, 1u << ci->order,
			    (unsigned long)slabs);
	}
}

/* ------------------------------------------------------------ canaries */

static inline uint64_t canary_at(const void *w)
{
	return ((uintptr_t)w ^ obj_keys.check ^ 0xCA4A21E5C0FFEEull) * 0x9E3779B97F4A7C15ull;
}

/* Never 0 nor ASCII (the usual overflows write those). */
static inline uint8_t pad_byte(void)
{
	return (uint8_t)(0x80 | (obj_keys.link >> 57));
}

void cache_canary_arm(const struct bsl_cache *cp, char *p, bool first)
{
	char *co = p + cp->first_off - sizeof(uint64_t), *ce = p + cp->slot - sizeof(uint64_t);
	memset(p + cp->size, pad_byte(), (size_t)(co - p) - cp->size);
	*(uint64_t *)co = canary_at(co);
	*(uint64_t *)ce = canary_at(ce);
	if (first && slab_named_front(cp->sidx))     /* the slab's front word */
		*(uint64_t *)(p - sizeof(uint64_t)) = canary_at(p - sizeof(uint64_t));
}

void cache_canary_front(const struct bsl_cache *cp, struct slab_named *n, unsigned guard_pages)
{
	struct class_info *ci = &n->geom;
	if (cp->align >= PAGE_SIZE)
		return;          /* no room below a page (slab_head): no front word */
	size_t room = (PAGE_SIZE << ci->order) - ((size_t)guard_pages << PAGE_SHIFT) -
		      (size_t)ci->nobjs * cp->slot;
	if (cp->align > room)
		ci->nobjs--;     /* the last slot clear of the slab's end (its guard page) */
	VERIFY(ci->nobjs > 0);
	n->front = cp->align;
}

COLD __attribute__((noreturn)) static void canary_broken(const struct bsl_cache *cp,
							 const char *p, bool under, bool first, bool waited)
{
	if (under)
		bsl_fatalf("aborting on heap corruption", "heap underflow: the canary before the "
			   "object %p of the cache \"%s\" (%s %p%s) is overwritten%s", p, cp->name,
			   first ? "its slab's front word, at" : "the end of the slot at",
			   first ? p - sizeof(uint64_t) : p - cp->slot, first ? "" : " before it",
			   waited ? " (found as the object left the quarantine)" :
			   " (found at bsl_cache_free)");
	bsl_fatalf("aborting on heap corruption", "heap overflow: the bytes after the %u-byte "
		   "object %p of the cache \"%s\" (its pad and canary) are overwritten%s", cp->size,
		   p, cp->name, waited ? " (found as the object left the quarantine)" :
		   " (found at bsl_cache_free)");
}

/* p's pad and C_o, and the word before p: the C_e of the slot before it or,
 * for the first slot, its slab's front word (none when the cache is aligned
 * to a page: then the first slot has no underflow check). */
static void canary_check(const struct bsl_cache *cp, const char *p, const struct page_desc *d,
			 bool waited)
{
	const char *co = p + cp->first_off - sizeof(uint64_t);
	bool ok = *(const uint64_t *)co == canary_at(co);
	for (const char *b = p + cp->size; ok && b < co; b++)
		ok = (uint8_t)*b == pad_byte();
	if (!ok)
		canary_broken(cp, p, false, false, waited);
	const char *ce = p - sizeof(uint64_t);
	bool first = (uintptr_t)p + d->slab_base_hidden < cp->slot;
	if ((!first || slab_named_front(cp->sidx)) && *(const uint64_t *)ce != canary_at(ce))
		canary_broken(cp, p, true, first, waited);
}

/* ------------------------------------------------------------ fill */

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
	return x << r | x >> (64 - r);
}

/* The checksum of the free object p: its bytes up to the next word (the
 * object and, under canary, its pad) in four lanes of multiply-xor-rotate
 * steps, seeded with a per-process key and p's address. Each step is a
 * bijection of its lane for a given word and of the word for a given lane,
 * so a change of any one word always changes the sum; the allocator's own
 * words (the trailer) are not in it. */
static uint64_t fill_sum(const struct bsl_cache *cp, const char *p)
{
	const uint64_t M = 0x9E3779B97F4A7C15ull, *w = (const uint64_t *)p;
	size_t n = align_up(cp->size, sizeof(uint64_t)) / sizeof(uint64_t), i = 0;
	uint64_t k = ((uintptr_t)p ^ obj_keys.check ^ 0xF111ED5A1ull) * 0xBF58476D1CE4E5B9ull ^
		     obj_keys.link;
	uint64_t l[4] = { k, k ^ 0x243F6A8885A308D3ull, k ^ 0x13198A2E03707344ull,
			  k ^ 0xA4093822299F31D0ull };
#define FILL_STEP(x, v) ((x) = rotl64(((x) ^ (v)) * M, 29))
	for (; i + 4 <= n; i += 4) {
		FILL_STEP(l[0], w[i]);
		FILL_STEP(l[1], w[i + 1]);
		FILL_STEP(l[2], w[i + 2]);
		FILL_STEP(l[3], w[i + 3]);
	}
	for (; i < n; i++)
		FILL_STEP(l[0], w[i]);
#undef FILL_STEP
	uint64_t h = l[0] ^ rotl64(l[1], 16) ^ rotl64(l[2], 32) ^ rotl64(l[3], 48);
	h *= M;
	return h ^ (h >> 32);
}

void cache_fill_seal(const struct bsl_cache *cp, const char *p)
{
	*(uint64_t *)(p + cp->first_off + CACHE_SUM_OFF) = fill_sum(cp, p);
}

void cache_fill_check(const struct bsl_cache *cp, const char *p, enum cache_found where)
{
	if (likely(*(const uint64_t *)(p + cp->first_off + CACHE_SUM_OFF) == fill_sum(cp, p)))
		return;
	bsl_fatalf("aborting on heap corruption", "write after free: the free object %p of the "
		   "cache \"%s\" was modified while free (its %u bytes no longer match the "
		   "checksum taken when it was freed; found %s)", p, cp->name, cp->size,
		   where == CACHE_FOUND_ALLOC ? "as it was handed out again" :
		   "as its slab was given back");
}

/* ------------------------------------------------------------ quarantine */

struct cache_quar {
	lock_t lock;
	uint32_t head, n;                  /* the oldest at held[head], n waiting */
	uintptr_t held[CACHE_QOBJS];       /* hidden trailer addresses */
};
static struct cache_quar quars[NCACHES_MAX];

/* For cache_setup: the ring length for slots of slot bytes. */
unsigned cache_quarantine_len(uint32_t slot)
{
	uint32_t n = CACHE_QBYTES / slot;
	return n < CACHE_QMIN ? CACHE_QMIN : n > CACHE_QOBJS ? CACHE_QOBJS : n;
}

COLD __attribute__((noreturn)) static void quar_corrupt(const struct bsl_cache *cp, const char *p)
{
	bsl_fatalf("aborting on heap corruption", "write after free: the words after the freed "
		   "object %p of the cache \"%s\" changed while it waited in the quarantine", p,
		   cp->name);
}

char *cache_secure_free(struct bsl_cache *cp, char *p, const struct page_desc *d)
{
	char *q = p + cp->first_off;
	if (cp->secure & CACHE_SEC_CANARY)
		canary_check(cp, p, d, false);
	if (cp->secure & CACHE_SEC_FILL)
		cache_fill_seal(cp, p);
	if (!(cp->secure & CACHE_SEC_QUARANTINE))
		return q;
	struct cache_quar *r = &quars[cp - caches];
	char *out = NULL;
	obj_set_next(q, NULL);      /* looks free: a second free is a double free */
	lock_acquire(&r->lock);
	if (r->n == cp->qmax) {
		out = (char *)unhide_addr(r->held[r->head]);
		r->head = r->head + 1 == cp->qmax ? 0 : r->head + 1;
		r->n--;
	}
	uint32_t tail = r->head + r->n;
	r->held[tail >= cp->qmax ? tail - cp->qmax : tail] = hide_addr((uintptr_t)q);
	r->n++;
	lock_release(&r->lock);
	if (out) {
		char *po = out - cp->first_off;
		if (!obj_is_free(out))
			quar_corrupt(cp, po);
		if (cp->secure & CACHE_SEC_CANARY)
			canary_check(cp, po, arena_desc_of(po), true);
	}
	return out;
}

void cache_quarantine_drain(struct bsl_cache *cp)
{
	struct cache_quar *r = &quars[cp - caches];
	void *objs[64];
	for (;;) {
		unsigned k = 0;
		lock_acquire(&r->lock);
		for (; k < 64 && r->n; k++, r->n--) {
			objs[k] = (void *)unhide_addr(r->held[r->head]);
			r->head = r->head + 1 == cp->qmax ? 0 : r->head + 1;
		}
		if (!r->n)
			r->head = 0;        /* the next life of the slot may have a shorter ring */
		lock_release(&r->lock);
		if (!k)
			return;
		slab_free_bulk(objs, k);
	}
}

void cache_quarantine_lock_all(void)
{
	for (unsigned i = 0; i < NCACHES_MAX; i++)
		lock_fork_acquire(&quars[i].lock);
}

void cache_quarantine_unlock_all(void)
{
	for (unsigned i = NCACHES_MAX; i-- > 0;)
		lock_fork_release(&quars[i].lock);
}
