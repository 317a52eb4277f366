/*
 * secure.c - the hardening features of BUDDYSLAB_CONF=secure (see secure.h).
 *
 * Every function here runs on a slow path, and only when its feature is on:
 * the callers test opt.secure (or a slab's PDF_GUARD flag) first. This file
 * knows memory, not slabs: slab.c owns what a slab holds and calls the slab
 * hooks with the slab's pages; malloc.c and harden.c call the block hooks
 * with a block's address and length, and harden.c frees what leaves a
 * quarantine ring (the rings are in quarantine.c, size0's slots in sizezero.c).
 * The block hooks run on every malloc and free of a small block under
 * canary or fill, so their common cases are written out inline. The large
 * block guards (secure_large_map/unmap) also serve memcheck runs (large.c).
 */
#define _GNU_SOURCE
#include "secure.h"
#include "sizeclass.h"
#include "os.h"
#include "vg.h"
#include <sys/auxv.h>
#include <string.h>
#include <emmintrin.h>

unsigned sec_canary_bytes, sec_front_objs, sec_run_front;
static uint64_t canary_key, free_key;
/* The pad between a request and its trailer: the byte at offset i of a block
 * is pad_tab[i % 128], 0x80..0xff (never 0 nor ASCII, the usual overflows),
 * each value once per 128 bytes, so a run of 2 or more equal bytes never
 * matches it. The table holds the 128 values PAD_RUN / 128 + 1 times, so
 * that the pad of any PAD_RUN bytes is one memcpy from it (pad_fill,
 * pad_intact: a big class's pad of a few KiB is a few calls, not dozens). */
#define PAD_RUN 1024
static uint8_t pad_tab[PAD_RUN + 128];
static uint64_t shuffle_state;     /* splitmix64 counter; atomic */
static bool use_avx2;            /* check_zero's wide loop (or_vectors); set once */
static long guard_budget;         /* slab guard pages that may still be made; atomic */

static uint64_t splitmix_next(uint64_t *s);

void secure_init(void)
{
	if (vg_active)       /* memcheck checks objects itself, and owns their bytes */
		config_secure_keep(SEC_GUARD | SEC_SHUFFLE);
	if (!opt.secure)
		return;
	secure_rings_init();
	const void *rnd = (const void *)getauxval(AT_RANDOM);
	uint64_t r[2] = { 0, 0 };
	if (rnd)
		memcpy(r, rnd, sizeof r);
	canary_key = (r[0] * 0xBF58476D1CE4E5B9ull) ^ (r[1] >> 7) ^ (uintptr_t)&canary_key;
	shuffle_state = r[1] ^ (r[0] << 17) ^ (uintptr_t)&shuffle_state;
	free_key = splitmix_next(&r[0]) | 1;    /* never 0: t[0] == t[1] would do */
	for (unsigned i = 0; i < sizeof pad_tab; i++)
		pad_tab[i] = (uint8_t)(0x80 | ((r[0] >> 56) + (i % 128) * 5) % 128);
	__builtin_cpu_init();
	use_avx2 = __builtin_cpu_supports("avx2");
	if (opt.secure & SEC_SIZE0)
		sizeclass_zero_to_slow_path();   /* malloc(0) misses the thread cache */
	if (opt.secure & SEC_CANARY) {
		sec_canary_bytes = SEC_TRAILER;
		sec_run_front = SEC_RUN_FRONT;
		sec_front_objs = 1;
	}
	if (opt.secure & SEC_GUARD) {
		sizeclass_reserve_guard_page();
		/* each guard page inside the heap splits a mapping in three: keep
		 * them to a quarter of vm.max_map_count, leaving the rest to the
		 * program and to the heap's own growth */
		guard_budget = os_max_map_count() / 4;
	}
}

/* splitmix64 steps on a caller's own state: one atomic add per call of
 * random_u64, none per step (a shared counter bumped for every element of a
 * shuffle bounced its cache line between CPUs). */
static uint64_t splitmix_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t random_u64(void)
{
	uint64_t s = __atomic_add_fetch(&shuffle_state, 0x9E3779B97F4A7C15ull, __ATOMIC_RELAXED);
	return splitmix_next(&s);
}

/* ------------------------------------------------------------------ slabs */

bool secure_guard_slab(void *last_page)
{
	if (__atomic_sub_fetch(&guard_budget, 1, __ATOMIC_RELAXED) >= 0 && os_guard(last_page, PAGE_SIZE))
		return true;
	/* out of budget (or mprotect refused): this slab goes without */
	__atomic_add_fetch(&guard_budget, 1, __ATOMIC_RELAXED);
	return false;
}

bool secure_unguard_slab(void *last_page)
{
	if (!os_commit(last_page, PAGE_SIZE))
		return false;
	__atomic_add_fetch(&guard_budget, 1, __ATOMIC_RELAXED);
	return true;
}


void secure_shuffle(uint16_t *perm, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		perm[i] = (uint16_t)i;
	uint64_t st = random_u64();
	for (unsigned i = n ? n - 1 : 0; i > 0; i--) {
		/* uniform in [0, i] by a multiply (Lemire), not a division */
		unsigned j = (unsigned)(((unsigned __int128)splitmix_next(&st) * (i + 1)) >> 64);
		uint16_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

/* ---------------------------------------------------------------- trailers */

/* A trailer is two words at the end of a block:
 *   t[0]  the size word: bits 0-39 the requested size, 40-41 the kind, 42 the
 *         front-canary flag, 43-63 a hash of t[1] (so of the key and t's
 *         address: t[1] is checked first) and bits 0-42;
 *         in a free block (kind free) t[1] ^ free_key instead: no multiply to
 *         write it at free nor to check it as the block leaves the quarantine
 *         (without the key it is as unguessable as t[1]);
 *   t[1]  a hash of the key and its own address alone: it never changes, so
 *         the block after it can check it (underflow) while another thread
 *         frees or allocates the block it belongs to.
 * Only the owner of a block reads or writes its t[0]. */
#define REQ_MASK  (SEC_REQ_MAX - 1)
#define KIND_SHIFT 40
#define FRONT_BIT ((uint64_t)1 << 42)
#define LOW_MASK  (((uint64_t)1 << 43) - 1)

/* One multiply: the words only have to be unguessable without the key (a
 * blind overwrite matches with odds 2^-21 for t[0], 2^-64 for t[1]), and the
 * high bits of the product depend on every bit of h. A program that can read
 * a trailer can forge any hash of this kind; two rounds (the earlier mix)
 * cost 6 more instructions per word, 7 words per small block's life. */
static uint64_t mix(uint64_t h)
{
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 29);
}

/* t[1] stands for the key and the address here: it is as unguessable, and
 * already loaded (and checked) wherever t[0] is read or written. */
static uint64_t size_word(const uint64_t *t, uint64_t low)
{
	uint64_t h = mix(t[1] ^ (low * 0xC2B2AE3D27D4EB4Full));
	return (h & ~LOW_MASK) | low;
}

/* The multiply spreads every bit of the address into the high bits. */
static uint64_t fixed_word(const uint64_t *w)
{
	return mix(canary_key ^ (uintptr_t)w);
}

static uint64_t *trailer_of(const void *p, size_t slot)
{
	return (uint64_t *)((char *)p + slot - SEC_TRAILER);
}

/* t[0] of a trailer whose t[1] is in place (and checked when t[0] is read) */
static void trailer_set(uint64_t *t, uint64_t req_front, unsigned kind)
{
	t[0] = kind == SEC_KIND_FREE ? t[1] ^ free_key
				     : size_word(t, req_front | (uint64_t)kind << KIND_SHIFT);
}

/* both words: a slab slot's when its slab is new, a run's or large block's */
static void trailer_init(uint64_t *t, uint64_t req_front, unsigned kind)
{
	t[1] = fixed_word(t + 1);
	trailer_set(t, req_front, kind);
}

/* false: the trailer was overwritten; *req has the front bit */
static ALWAYS_INLINE bool trailer_get(const uint64_t *t, size_t room, size_t *req, unsigned *kind)
{
	if (t[1] != fixed_word(t + 1))
		return false;
	if (t[0] == (t[1] ^ free_key)) {
		*req = 0;
		*kind = SEC_KIND_FREE;
		return true;
	}
	uint64_t low = t[0] & LOW_MASK;
	if (t[0] != size_word(t, low) || (low & REQ_MASK) > room || (low >> KIND_SHIFT & 3) == SEC_KIND_FREE)
		return false;
	*req = (size_t)(low & (REQ_MASK | FRONT_BIT));
	*kind = (unsigned)(low >> KIND_SHIFT) & 3;
	return true;
}

COLD __attribute__((noreturn)) static void overflow(const void *p, size_t req)
{
	bsl_fatalf("aborting on heap corruption", "heap overflow: the bytes after the %zu "
		   "bytes asked for at %p were overwritten", req, p);
}

COLD __attribute__((noreturn)) static void broken_trailer(const void *p)
{
	bsl_fatalf("aborting on heap corruption", "heap overflow: the canary at the end of the "
		   "block %p was overwritten (a write past its end)", p);
}

/* The request of a block whose trailer is checked, with the front bit; inline
 * in secure_close, which needs it on every free. */
static ALWAYS_INLINE size_t request_of(const void *p, size_t slot, unsigned *kind)
{
	size_t req;
	if (unlikely(!trailer_get(trailer_of(p, slot), slot - SEC_TRAILER, &req, kind)))
		broken_trailer(p);
	return req;
}

size_t secure_requested(const void *p, size_t slot, unsigned *kind, bool *front)
{
	size_t req = request_of(p, slot, kind);
	*front = req & FRONT_BIT;
	return req & ~FRONT_BIT;
}

void secure_set_kind(void *p, size_t slot, unsigned kind)
{
	uint64_t *t = trailer_of(p, slot);
	trailer_set(t, t[0] & (REQ_MASK | FRONT_BIT), kind);
}

void secure_slab_prepare(void *base, size_t size, unsigned n, bool dirty)
{
	if ((opt.secure & SEC_FILL) && dirty)
		memset(base, 0, size * n);
	if (opt.secure & SEC_CANARY)
		for (unsigned i = 0; i < n; i++)
			trailer_init(trailer_of((char *)base + i * size, size), 0, SEC_KIND_FREE);
}

/* ----------------------------------------------------------------- blocks */

/* Every malloc and free of a small block under canary or fill passes here,
 * so the short cases are written out inline: a slab object's fill of a few
 * vectors, a pad of up to 16 bytes. Longer ones take the loops below. */
typedef uint64_t v2 __attribute__((vector_size(16), may_alias));

COLD __attribute__((noreturn)) static void written_after_free(const void *p, size_t from)
{
	const uint64_t *w = p;     /* some word from `from` on is not 0: find it */
	for (size_t i = from / sizeof *w;; i++)
		if (w[i] != 0)
			bsl_fatalf("aborting on heap corruption", "write after free: the free "
				   "object %p was modified at offset %zu", p, i * sizeof *w);
}

/* The OR of n > 4 vectors: four chains, 64 bytes a step, or 128 with AVX2
 * (on freed memory that has left the caches, half as fast again: a bigger
 * object's check is most of what secure:1 adds to its malloc). */
typedef uint64_t v4 __attribute__((vector_size(32), may_alias, aligned(16)));

__attribute__((target("avx2"))) static NOINLINE uint64_t or_vectors_avx2(const v2 *v, size_t n)
{
	const v4 *w = (const v4 *)v;
	size_t m = n / 2, i = 0;
	v4 a = { 0, 0, 0, 0 }, b = a, c = a, d = a;
	for (; i + 4 <= m; i += 4) {
		a |= w[i];
		b |= w[i + 1];
		c |= w[i + 2];
		d |= w[i + 3];
	}
	for (; i < m; i++)
		a |= w[i];
	a |= b | c | d;
	uint64_t r = a[0] | a[1] | a[2] | a[3];
	if (n & 1)
		r |= v[n - 1][0] | v[n - 1][1];
	return r;
}

static NOINLINE uint64_t or_vectors(const v2 *v, size_t n)
{
	if (use_avx2)
		return or_vectors_avx2(v, n);
	v2 a = { 0, 0 }, b = a, c = a, d = a;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		a |= v[i];
		b |= v[i + 1];
		c |= v[i + 2];
		d |= v[i + 3];
	}
	for (; i < n; i++)
		a |= v[i];
	a |= b | c | d;
	return a[0] | a[1];
}

/* A free block's bytes from..end must still be 0 (a slab object's first two
 * words hold its free-list link, so from is 16 there): one pass ORs them;
 * only a block that fails is searched for the offset. */
static ALWAYS_INLINE void check_zero(const void *p, size_t from, size_t end)
{
	ASSERT(((uintptr_t)p | from | end) % 16 == 0);   /* blocks, links, trailers: 16 bytes */
	const v2 *v = (const v2 *)((const char *)p + from);
	size_t n = (end - from) / sizeof(v2);
	uint64_t any = 0;
	if (n <= 4) {      /* 0 to 4 vectors: the first and last two, overlapping */
		if (n) {
			v2 a = v[0] | v[n - 1];
			if (n > 2)
				a |= v[1] | v[n - 2];
			any = a[0] | a[1];
		}
	} else {
		any = or_vectors(v, n);
	}
	if (unlikely(any))
		written_after_free(p, from);
}

/* Zero bytes from..end of p (16-byte aligned, as check_zero). */
static ALWAYS_INLINE void fill_zero(void *p, size_t from, size_t end)
{
	v2 *v = (v2 *)((char *)p + from), z = { 0, 0 };
	size_t n = (end - from) / sizeof(v2);
	if (n > 4) {
		memset(v, 0, end - from);
	} else if (n) {    /* as check_zero (a loop here became a rep stos) */
		v[0] = v[n - 1] = z;
		if (n > 2)
			v[1] = v[n - 2] = z;
	}
}

/* The pad over bytes from..end of block b: write it, or check it (a slab
 * object's short pad takes pad_tail_fill and pad_tail_intact instead). */
static NOINLINE void pad_fill(uint8_t *b, size_t from, size_t end)
{
	for (size_t i = from, k; i < end; i += k) {
		k = end - i < PAD_RUN ? end - i : PAD_RUN;
		memcpy(b + i, pad_tab + i % 128, k);
	}
}

static NOINLINE bool pad_intact(const uint8_t *b, size_t from, size_t end)
{
	for (size_t i = from, k; i < end; i += k) {
		k = end - i < PAD_RUN ? end - i : PAD_RUN;
		if (memcmp(b + i, pad_tab + i % 128, k))
			return false;
	}
	return true;
}

COLD __attribute__((noreturn)) static void underflow(const void *p)
{
	bsl_fatalf("aborting on heap corruption", "heap underflow: the 16 bytes before %p (the "
		   "canary before it) were overwritten", p);
}

/* A slab object's pad of k <= 16 bytes ends at end, a multiple of 16 (its
 * trailer's offset): the 16 bytes before end, compared with the table (or
 * blended with it) in one vector, the bytes before the pad masked off. The
 * load may reach back into the slot before (the front slot is never handed
 * out, so there is one): it reads, and writes back unchanged, nothing else. */
static const uint8_t tail_mask[32] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255 };

static ALWAYS_INLINE bool pad_tail_intact(const uint8_t *b, size_t k, size_t end)
{
	__m128i x = _mm_loadu_si128((const __m128i *)(b + end - 16));
	__m128i y = _mm_loadu_si128((const __m128i *)(pad_tab + ((end - 16) & 127)));
	unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y));
	unsigned need = (0xffff0000u >> k) & 0xffff;     /* the top k of 16 */
	return (eq & need) == need;
}

static ALWAYS_INLINE void pad_tail_fill(uint8_t *b, size_t k, size_t end)
{
	__m128i *at = (__m128i *)(b + end - 16);
	__m128i x = _mm_loadu_si128(at);
	__m128i y = _mm_loadu_si128((const __m128i *)(pad_tab + ((end - 16) & 127)));
	__m128i m = _mm_loadu_si128((const __m128i *)(tail_mask + k));
	_mm_storeu_si128(at, _mm_or_si128(_mm_andnot_si128(m, x), _mm_and_si128(m, y)));
}

/* secure_open's and secure_close's work, inlined into their slab versions
 * with how a constant. */
static ALWAYS_INLINE void open_block(void *p, size_t req, size_t slot, unsigned how)
{
	long sec = opt.secure;
	bool slab = how & SEC_OPEN_SLAB;
	size_t end = slot - sec_canary_bytes;    /* where the trailer starts */
	if ((sec & SEC_FILL) && slab) {
		check_zero(p, 2 * sizeof(uint64_t), end);
		fill_zero(p, 0, 2 * sizeof(uint64_t));   /* the free-list link */
	}
	if (sec & SEC_CANARY) {
		pad_fill(p, req, end);
		bool front = how & SEC_OPEN_FRONT;
		uint64_t *t = trailer_of(p, slot);
		if (slab)     /* its slot's t[1] is in place (secure_slab_prepare) */
			trailer_set(t, req, SEC_KIND_MALLOC);
		else
			trailer_init(t, req | (front ? FRONT_BIT : 0), SEC_KIND_MALLOC);
		if (front)    /* checked as a slab object checks the slot before it */
			trailer_init((uint64_t *)p - 2, 0, SEC_KIND_FREE);
	}
}

static ALWAYS_INLINE void close_block(void *p, size_t slot, unsigned how)
{
	long sec = opt.secure;
	bool slab = how & SEC_OPEN_SLAB;
	size_t end = slot - sec_canary_bytes;
	if (sec & SEC_CANARY) {
		unsigned kind;
		size_t req_front = request_of(p, slot, &kind), req = req_front & ~FRONT_BIT;
		if (unlikely(!pad_intact(p, req, end)))
			overflow(p, req);
		/* the slot before p (or the front canary) ends right before p */
		const uint64_t *before = (const uint64_t *)p - 1;
		if ((slab || (req_front & FRONT_BIT)) && unlikely(*before != fixed_word(before)))
			underflow(p);
		trailer_set(trailer_of(p, slot), 0, SEC_KIND_FREE);
	}
	if ((sec & SEC_FILL) && slab)
		fill_zero(p, 2 * sizeof(uint64_t), end);
}

void secure_open(void *p, size_t req, size_t slot, unsigned how)
{
	open_block(p, req, slot, how);
}

/* The slab versions: open_block and close_block for a slab object whose pad
 * is at most 16 bytes (most small ones), the general ones for the rest, out
 * of line (their loops and calls made the short case save six registers). */
static NOINLINE void open_slab_general(void *p, size_t req, size_t slot)
{
	open_block(p, req, slot, SEC_OPEN_SLAB);
}

static NOINLINE void close_slab_general(void *p, size_t slot)
{
	close_block(p, slot, SEC_OPEN_SLAB);
}

void secure_open_slab(void *p, size_t req, size_t slot)
{
	long sec = opt.secure;
	size_t end = slot - sec_canary_bytes;
	if (!(sec & SEC_CANARY) || end - req > 16) {
		open_slab_general(p, req, slot);
		return;
	}
	if (sec & SEC_FILL) {
		check_zero(p, 2 * sizeof(uint64_t), end);
		fill_zero(p, 0, 2 * sizeof(uint64_t));
	}
	pad_tail_fill(p, end - req, end);
	trailer_set(trailer_of(p, slot), req, SEC_KIND_MALLOC);
}

void secure_resize(void *p, size_t slot, size_t n)
{
	unsigned kind;
	bool front;
	size_t req = secure_requested(p, slot, &kind, &front);
	/* the pad depends on the position only: growing, the bytes handed over
	 * must still be pad (the rest is checked at free); shrinking, pad them */
	if (!pad_intact(p, req, n))
		overflow(p, req);
	pad_fill(p, n, req);
	trailer_set(trailer_of(p, slot), n | (front ? FRONT_BIT : 0), kind);
}

void secure_close(void *p, size_t slot, unsigned how)
{
	close_block(p, slot, how);
}

void secure_close_slab(void *p, size_t slot)
{
	long sec = opt.secure;
	size_t end = slot - sec_canary_bytes;
	if (!(sec & SEC_CANARY)) {
		close_slab_general(p, slot);
		return;
	}
	unsigned kind;
	size_t req = request_of(p, slot, &kind) & ~FRONT_BIT;
	if (unlikely(end - req > 16)) {   /* (req <= end: request_of checks it) */
		close_slab_general(p, slot);
		return;
	}
	if (unlikely(!pad_tail_intact(p, end - req, end)))
		overflow(p, req);
	const uint64_t *before = (const uint64_t *)p - 1;
	if (unlikely(*before != fixed_word(before)))
		underflow(p);
	trailer_set(trailer_of(p, slot), 0, SEC_KIND_FREE);
	if (sec & SEC_FILL)
		fill_zero(p, 2 * sizeof(uint64_t), end);
}

unsigned secure_first_unfree(const struct sec_obj *h, unsigned n)
{
	if (!(opt.secure & SEC_CANARY))
		return n;
	for (unsigned i = 0; i < n; i++) {
		const uint64_t *t = trailer_of(h[i].p, h[i].len);
		if (unlikely(t[0] != (t[1] ^ free_key)))
			return i;
	}
	return n;
}

void secure_check_free(const void *p, size_t slot)
{
	const uint64_t *t = trailer_of(p, slot);    /* t[1]: checked when it is next freed */
	if ((opt.secure & SEC_CANARY) && t[0] != (t[1] ^ free_key)) {
		bsl_fatalf("aborting on heap corruption", "write after free: the canary at the end "
			   "of the free object %p was modified", p);
	}
}

void secure_check_slab(const void *base, size_t size, unsigned n)
{
	for (unsigned i = sec_front_objs; i < n; i++)
		check_zero((const char *)base + (size_t)i * size, 2 * sizeof(uint64_t),
			   size - sec_canary_bytes);
}

void secure_check_run(const void *p, size_t len)
{
	if (opt.secure & SEC_FILL)
		check_zero(p, 0, len);
}

/* ----------------------------------------------------------- large blocks */

void *secure_large_map(size_t len, size_t align_bytes)
{
	size_t span = len + 2 * PAGE_SIZE + (align_bytes > PAGE_SIZE ? align_bytes - PAGE_SIZE : 0);
	if (span < len)
		return NULL;
	char *m = os_reserve(span);    /* PROT_NONE: the guards are what stays so */
	if (!m)
		return NULL;
	char *p = (char *)align_up((uintptr_t)m + PAGE_SIZE, align_bytes);
	char *lo = p - PAGE_SIZE, *hi = p + len + PAGE_SIZE;
	if (lo > m)
		os_unmap(m, (size_t)(lo - m));
	if (m + span > hi)
		os_unmap(hi, (size_t)(m + span - hi));
	if (!os_commit(p, len)) {
		os_unmap(lo, len + 2 * PAGE_SIZE);
		return NULL;
	}
	return p;
}

void secure_large_unmap(void *p, size_t len)
{
	os_unmap((char *)p - PAGE_SIZE, len + 2 * PAGE_SIZE);
}
