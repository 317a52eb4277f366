/*
 * quarantine.c - secure mode's quarantine (secure.h): the object ring, split
 * into shards by CPU, each thread's stage in front of it, and the page ring.
 * Part of module secure (secure.c has the other features). A ring holds
 * what was freed, oldest first, and gives back its oldest when it is full;
 * harden.c frees what comes back. Waiting blocks are memory only: this file
 * knows no slab, run or large block.
 * Invariant: the object ring's shards and the stages hold only blocks that
 * are in the arena and stay readable (sec_obj, 16 bytes: harden.c's slab
 * objects); a shard holds at most QOBJ_CAP of them and QOBJ_MAX_BYTES.
 * Locks: each ring's lock is a leaf (src/LAYERS.md); a stage is its thread's
 * own, touched by no other thread.
 */
#define _GNU_SOURCE
#include "secure.h"
#include "os.h"
#include <string.h>

/* The object ring is sharded by CPU (one lock each: a single lock made two
 * threads freeing small objects 15x slower, futex waits); the page ring is one.
 * The object ring holds slab objects only (in the arena, readable, no pages
 * counted), as sec_obj: 16 bytes, one load and one store each as a stage
 * goes in and its oldest come out (sec_held's 24 were most of a flush). */
struct ring {                      /* the page ring */
	lock_t lock;
	struct sec_held *e;
	unsigned head, n, cap;      /* oldest at head */
	size_t bytes, max_bytes;
} __attribute__((aligned(64)));   /* one cache line each: shards on two CPUs shared one */
struct obj_ring {                  /* a shard of the object ring */
	lock_t lock;
	struct sec_obj *e;
	unsigned head, n;           /* oldest at head; n <= QOBJ_CAP */
	size_t bytes;               /* <= QOBJ_MAX_BYTES */
} __attribute__((aligned(64)));
#define QOBJ_CAP (SEC_QOBJS / SEC_QSHARDS)
#define QOBJ_MAX_BYTES (SEC_QOBJ_BYTES / SEC_QSHARDS)
_Static_assert((QOBJ_CAP & (QOBJ_CAP - 1)) == 0 && (SEC_QPAGES & (SEC_QPAGES - 1)) == 0,
	       "ring capacities are powers of two (index masks)");
static struct sec_obj qobj_slots[SEC_QSHARDS][QOBJ_CAP];
static struct sec_held qpage_slots[SEC_QPAGES];
static struct obj_ring qobj[SEC_QSHARDS];
static struct ring qpage;
static size_t qpage_resident;     /* bytes of waiting page blocks that kept their pages */
static size_t qlarge_bytes, qlarge_n;   /* waiting large blocks (still in large.c's table); atomic */

void secure_rings_init(void)
{
	for (unsigned i = 0; i < SEC_QSHARDS; i++)
		qobj[i] = (struct obj_ring){ LOCK_INIT, qobj_slots[i], 0, 0, 0 };
	qpage = (struct ring){ LOCK_INIT, qpage_slots, 0, 0, SEC_QPAGES, 0, SIZE_MAX };
}

static struct obj_ring *obj_ring_here(void)
{
	return &qobj[os_cpu_index() % SEC_QSHARDS];
}

/* The oldest object of r, out of it. */
static void obj_pop_locked(struct obj_ring *r, struct sec_held *out)
{
	lock_assert_held(&r->lock);
	const struct sec_obj *o = &r->e[r->head];
	*out = (struct sec_held){ o->p, o->len, o->tag, false, true, false };
	r->head = (r->head + 1) & (QOBJ_CAP - 1);
	r->n--;
	__atomic_store_n(&r->bytes, r->bytes - o->len, __ATOMIC_RELAXED);
}

/* secure_hold of a slab object: one in, at most one out. */
static bool obj_hold(void *p, size_t len, unsigned tag, struct sec_held *out)
{
	struct obj_ring *r = obj_ring_here();
	bool any = false;
	lock_acquire(&r->lock);
	if (r->n == QOBJ_CAP || r->bytes + len > QOBJ_MAX_BYTES) {
		obj_pop_locked(r, out);
		any = true;
	}
	r->e[(r->head + r->n) & (QOBJ_CAP - 1)] = (struct sec_obj){ p, (uint32_t)len, tag };
	r->n++;
	__atomic_store_n(&r->bytes, r->bytes + len, __ATOMIC_RELAXED);
	lock_release(&r->lock);
	return any;
}

/* A page block leaving: readable again (false: it must stay out for good). */
static bool revive(struct sec_held *h)
{
	if (h->resident)
		__atomic_sub_fetch(&qpage_resident, h->len, __ATOMIC_RELAXED);
	if (!h->prot)
		return true;
	if (!os_commit(h->p, h->len))
		return false;
	return true;
}

static void pop_locked(struct ring *r, struct sec_held *out)
{
	lock_assert_held(&r->lock);
	*out = r->e[r->head];
	r->head = (r->head + 1) & (r->cap - 1);
	r->n--;
	__atomic_store_n(&r->bytes, r->bytes - out->len, __ATOMIC_RELAXED);
	if (!out->in_arena) {      /* a large block */
		__atomic_sub_fetch(&qlarge_bytes, out->len, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&qlarge_n, 1, __ATOMIC_RELAXED);
	}
}

bool secure_hold(unsigned ring, void *p, size_t len, unsigned tag, bool in_arena,
		 struct sec_held *out)
{
	bool prot = false, resident = false, any = false;
	if (ring == SEC_QOBJ)
		return obj_hold(p, len, tag, out);
	/* A page run in the arena stays readable: making it PROT_NONE and back
	 * (two mprotects, each splitting a mapping under the mmap lock) made
	 * server_churn 20x slower; with fill it is erased now and its zeros are
	 * checked as it leaves. A large block waits PROT_NONE, keeping its pages
	 * while the ring's resident bytes stay under SEC_QRESIDENT (erased with
	 * os_zero under fill: cheaper here than a madvise and faults at reuse),
	 * dropping them past it. */
	if (in_arena && (opt.secure & SEC_FILL)) {
		os_zero(p, len);
	} else if (!in_arena) {
		bool keep = __atomic_add_fetch(&qpage_resident, len, __ATOMIC_RELAXED) <= SEC_QRESIDENT;
		if (!keep)
			__atomic_sub_fetch(&qpage_resident, len, __ATOMIC_RELAXED);
		resident = keep;
		if (keep && (opt.secure & SEC_FILL))
			os_zero(p, len);
		if (keep || os_purge(p, len, false))
			prot = os_guard(p, len);
	}
	struct ring *r = &qpage;
	lock_acquire(&r->lock);
	if (r->n == r->cap || r->bytes + len > r->max_bytes) {
		pop_locked(r, out);
		any = true;
	}
	/* field by field: a struct built on the stack and copied stalled on
	 * store forwarding, a tenth of a small free's time */
	struct sec_held *e = &r->e[(r->head + r->n) & (r->cap - 1)];
	e->p = p;
	e->len = len;
	e->tag = tag;
	e->prot = prot;
	e->in_arena = in_arena;
	e->resident = resident;
	if (!in_arena) {
		__atomic_add_fetch(&qlarge_bytes, len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&qlarge_n, 1, __ATOMIC_RELAXED);
	}
	r->n++;
	__atomic_store_n(&r->bytes, r->bytes + len, __ATOMIC_RELAXED);
	lock_release(&r->lock);
	if (any && !revive(out))
		out->p = NULL;
	return any;
}

/* A thread's freed slab objects wait here first and go into the object ring
 * SEC_QSTAGE (or QSTAGE_BYTES) at a time, under one lock: a ring lock per free
 * was a sixth of secure:1's time on small-object churn. */
#define QSTAGE_BYTES (64 * 1024)
static __thread struct {
	struct sec_obj e[SEC_QSTAGE];
	unsigned n;
	size_t bytes;
} qstage __attribute__((tls_model("initial-exec")));

bool secure_stage(void *p, size_t len, unsigned tag)
{
	unsigned n = qstage.n;
	qstage.e[n] = (struct sec_obj){ p, (uint32_t)len, tag };
	qstage.n = n + 1;
	qstage.bytes += len;
	return n + 1 == SEC_QSTAGE || qstage.bytes >= QSTAGE_BYTES;
}

bool secure_staged(void)
{
	return qstage.n;
}

/* Copy k entries between a[0..k) and the ring's slots from i on (into the
 * ring when in): at most two runs of slots, as the ring wraps. */
static void ring_copy(struct sec_obj *a, struct sec_obj *e, unsigned i, unsigned k, bool in)
{
	unsigned first = QOBJ_CAP - i < k ? QOBJ_CAP - i : k;
	if (in) {
		memcpy(e + i, a, first * sizeof *a);
		memcpy(e, a + first, (k - first) * sizeof *a);
	} else {
		memcpy(a, e + i, first * sizeof *a);
		memcpy(a + first, e, (k - first) * sizeof *a);
	}
}

/* The ring takes the whole stage; as many of its oldest leave first as keep
 * it within its count and bytes, never more than come in (as secure_hold:
 * one out per one in). */
unsigned secure_stage_flush(struct sec_obj *out)
{
	unsigned k = qstage.n;
	if (!k)
		return 0;
	struct obj_ring *r = obj_ring_here();
	unsigned nout = 0, mask = QOBJ_CAP - 1;
	size_t in_bytes = qstage.bytes;
	lock_acquire(&r->lock);
	unsigned head = r->head, n = r->n;
	size_t bytes = r->bytes;
	while (nout < n && nout < k &&
	       (n - nout + k > QOBJ_CAP || bytes + in_bytes > QOBJ_MAX_BYTES))
		bytes -= r->e[(head + nout++) & mask].len;
	ring_copy(out, r->e, head, nout, false);
	head = (head + nout) & mask;
	n -= nout;
	ring_copy(qstage.e, r->e, (head + n) & mask, k, true);
	r->head = head;
	r->n = n + k;
	__atomic_store_n(&r->bytes, bytes + in_bytes, __ATOMIC_RELAXED);
	lock_release(&r->lock);
	qstage.n = 0;
	qstage.bytes = 0;
	return nout;
}

bool secure_recyclable(size_t len)
{
	return __atomic_load_n(&qpage_resident, __ATOMIC_RELAXED) >= len;
}

/* The pages of a large block leaving the quarantine would be faulted in
 * again by the program (a block freed and another of about its size made,
 * a new char[n]() replaced in a loop): a kept block hands them over at once
 * instead, while its addresses still wait. */
bool secure_recycle(void *dst, size_t len)
{
	struct ring *r = &qpage;
	struct sec_held *best = NULL;
	bool moved = false;
	lock_acquire(&r->lock);
	for (unsigned i = 0; i < r->n; i++) {
		struct sec_held *e = &r->e[(r->head + i) & (r->cap - 1)];
		if (!e->in_arena && e->resident && e->prot && e->len >= len &&
		    (!best || e->len < best->len))
			best = e;
	}
	if (best && os_move_pages(best->p, len, dst)) {
		if (best->len > len)      /* the rest is dropped: the block no longer counts as kept */
			os_purge((char *)best->p + len, best->len - len, false);
		best->resident = false;
		__atomic_sub_fetch(&qpage_resident, best->len, __ATOMIC_RELAXED);
		moved = true;
	}
	lock_release(&r->lock);
	return moved;
}

bool secure_holds(const void *p)
{
	struct ring *r = &qpage;
	bool found = false;
	lock_acquire(&r->lock);
	for (unsigned i = 0; i < r->n && !found; i++)
		found = r->e[(r->head + i) & (r->cap - 1)].p == p;
	lock_release(&r->lock);
	return found;
}

size_t secure_held_bytes(void)
{
	size_t n = __atomic_load_n(&qpage.bytes, __ATOMIC_RELAXED) + qstage.bytes;   /* other threads' stages: not seen */
	for (unsigned i = 0; i < SEC_QSHARDS; i++)
		n += __atomic_load_n(&qobj[i].bytes, __ATOMIC_RELAXED);
	return n;
}

void secure_held_large(size_t *bytes, size_t *n)
{
	*bytes = __atomic_load_n(&qlarge_bytes, __ATOMIC_RELAXED);
	*n = __atomic_load_n(&qlarge_n, __ATOMIC_RELAXED);
}

bool secure_unhold(unsigned ring, struct sec_held *out)
{
	bool any = false;
	if (ring == SEC_QOBJ) {
		for (unsigned i = 0; i < SEC_QSHARDS && !any; i++) {
			struct obj_ring *r = &qobj[i];
			lock_acquire(&r->lock);
			if (r->n) {
				obj_pop_locked(r, out);
				any = true;
			}
			lock_release(&r->lock);
		}
		return any;
	}
	lock_acquire(&qpage.lock);
	if (qpage.n) {
		pop_locked(&qpage, out);
		any = true;
	}
	lock_release(&qpage.lock);
	if (any && !revive(out))
		out->p = NULL;       /* left out for good */
	return any;
}

void secure_rings_lock_all(void)
{
	for (unsigned i = 0; i < SEC_QSHARDS; i++)
		lock_fork_acquire(&qobj[i].lock);
	lock_fork_acquire(&qpage.lock);
}

void secure_rings_unlock_all(void)
{
	lock_fork_release(&qpage.lock);
	for (unsigned i = SEC_QSHARDS; i-- > 0;)
		lock_fork_release(&qobj[i].lock);
}
