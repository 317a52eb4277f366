#define _GNU_SOURCE
/*
 * cachecheck.c - the named caches' checks (part of module cache, cache.h):
 * the misuse messages, which cache a pointer belongs to, the slabinfo lines,
 * and secure mode's canaries and quarantine for cache objects.
 *
 * Secure mode cannot treat a cache object as malloc's objects: a freed object
 * must keep its constructed state, so fill (zeroing freed objects and checking
 * the zeros), the canary slot at a slab's front and the shuffled free order of
 * slab.c do not apply (slab.c gives named slabs the guard page only). What
 * applies is added here, outside the program's bytes:
 *
 * Canary (secure canary). The slot grows by two words (cache.c's layout):
 *     object | pad to 8 | C_o | trailer (link, check, mark) | ... | C_e
 * The pad bytes hold pad_byte(), C_o and C_e canary_at(their address), a
 * value keyed per process (obj_keys). They are written for every slot when
 * the slab is made (cache_canary_arm from slab.c's slab_named_hook, under the
 * slab lock, before any slot leaves) and never again while the slab lives.
 * INVARIANT: every slot of a live slab has its pad, C_o and C_e intact,
 * unless the program wrote past or before an object. (Arming a slot as it
 * was first constructed raced: a thread freeing slot k could check slot k-1's
 * C_e before the thread that took k-1 had armed it.) So
 * bsl_cache_free of p checks p's pad and C_o (a write past the object: "heap
 * overflow") and, unless p is its slab's first slot, the C_e that ends the
 * slot before p (a write before the object: "heap underflow"). The first slot
 * of a slab has no slot before it and is not checked for underflow.
 *
 * Quarantine (secure quarantine). A freed object waits in its cache's FIFO
 * ring (qmax objects: CACHE_QBYTES of slots, between CACHE_QMIN and
 * CACHE_QOBJS) before it goes to the bins and slabs, so it is not handed out
 * again at once; its trailer is marked free meanwhile (obj_set_next), so a
 * second bsl_cache_free of it is a double free, and bsl_owns answers 0. The
 * ring holds hidden addresses (DESIGN.md 12). When an object leaves, its
 * trailer and canaries are checked again. Shrink and destroy drain the ring
 * first, so an object waiting there is never counted as live. A write after
 * free into the object itself is not detected (no fill: see above).
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

void cache_canary_arm(const struct bsl_cache *cp, char *p)
{
	char *co = p + cp->first_off - sizeof(uint64_t), *ce = p + cp->slot - sizeof(uint64_t);
	memset(p + cp->size, pad_byte(), (size_t)(co - p) - cp->size);
	*(uint64_t *)co = canary_at(co);
	*(uint64_t *)ce = canary_at(ce);
}

COLD __attribute__((noreturn)) static void canary_broken(const struct bsl_cache *cp,
							 const char *p, bool under, bool waited)
{
	if (under)
		bsl_fatalf("aborting on heap corruption", "heap underflow: the canary before the "
			   "object %p of the cache \"%s\" (the end of the slot at %p before it) is "
			   "overwritten%s", p, cp->name, p - cp->slot, waited ?
			   " (found as the object left the quarantine)" : " (found at bsl_cache_free)");
	bsl_fatalf("aborting on heap corruption", "heap overflow: the bytes after the %u-byte "
		   "object %p of the cache \"%s\" (its pad and canary) are overwritten%s", cp->size,
		   p, cp->name, waited ? " (found as the object left the quarantine)" :
		   " (found at bsl_cache_free)");
}

/* p's pad and C_o, and the C_e before p (unless p starts its slab). */
static void canary_check(const struct bsl_cache *cp, const char *p, const struct page_desc *d,
			 bool waited)
{
	const char *co = p + cp->first_off - sizeof(uint64_t);
	bool ok = *(const uint64_t *)co == canary_at(co);
	for (const char *b = p + cp->size; ok && b < co; b++)
		ok = (uint8_t)*b == pad_byte();
	if (!ok)
		canary_broken(cp, p, false, waited);
	const char *ce = p - sizeof(uint64_t);
	if ((uintptr_t)p + d->slab_base_hidden >= cp->slot && *(const uint64_t *)ce != canary_at(ce))
		canary_broken(cp, p, true, waited);
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
