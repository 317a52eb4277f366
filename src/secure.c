/*
 * secure.c - the hardening features of BUDDYSLAB_CONF=secure (see secure.h).
 *
 * Every function here runs on a slow path, and only when its feature is on:
 * the callers test opt.secure (or a slab's PDF_GUARD flag) first. This file
 * knows memory, not slabs: slab.c owns what a slab holds and calls the slab
 * hooks with the slab's pages. The large
 * block guards (secure_large_map/unmap) also serve memcheck runs (large.c).
 */
#include "secure.h"
#include "sizeclass.h"
#include "os.h"
#include <sys/auxv.h>
#include <string.h>

unsigned sec_canary_bytes;
static uint64_t canary_key;
static uint64_t shuffle_state;     /* splitmix64 counter; atomic */
static long guard_budget;         /* slab guard pages that may still be made; atomic */

#define FILL_WORD (0x0101010101010101ull * SEC_FILL_BYTE)

void secure_init(void)
{
	if (!opt.secure)
		return;
	const void *rnd = (const void *)getauxval(AT_RANDOM);
	uint64_t r[2] = { 0, 0 };
	if (rnd)
		memcpy(r, rnd, sizeof r);
	canary_key = (r[0] * 0xBF58476D1CE4E5B9ull) ^ (r[1] >> 7) ^ (uintptr_t)&canary_key;
	shuffle_state = r[1] ^ (r[0] << 17) ^ (uintptr_t)&shuffle_state;
	if (opt.secure & (SEC_CANARY | SEC_FILL))
		opt.tcache = 0;            /* their checks live on the slow paths */
	if (opt.secure & SEC_CANARY)
		sec_canary_bytes = sizeof(uint64_t);
	if (opt.secure & SEC_GUARD) {
		sizeclass_reserve_guard_page();
		/* each guard page inside the heap splits a mapping in three: keep
		 * them to a quarter of vm.max_map_count, leaving the rest to the
		 * program and to the heap's own growth */
		guard_budget = os_max_map_count() / 4;
	}
}

static uint64_t random_u64(void)
{
	uint64_t z = __atomic_add_fetch(&shuffle_state, 0x9E3779B97F4A7C15ull, __ATOMIC_RELAXED);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
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

void secure_fill(void *p, size_t n)
{
	memset(p, SEC_FILL_BYTE, n);
}

void secure_shuffle(uint16_t *perm, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		perm[i] = (uint16_t)i;
	for (unsigned i = n ? n - 1 : 0; i > 0; i--) {
		unsigned j = (unsigned)(random_u64() % (i + 1));
		uint16_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

/* ---------------------------------------------------------------- objects */

static uint64_t *canary_of(void *p, unsigned c)
{
	return (uint64_t *)((char *)p + class_info[c].size - sizeof(uint64_t));
}

static uint64_t canary_value(const uint64_t *where)
{
	return canary_key ^ ((uintptr_t)where * 0x9E3779B97F4A7C15ull);
}

void secure_on_alloc(void *p, unsigned c)
{
	if (opt.secure & SEC_FILL) {
		/* words 0 and 1 held the free-list link; the rest must be untouched */
		const uint64_t *w = p;
		for (size_t i = 2, n = class_info[c].size / sizeof *w; i < n; i++)
			if (unlikely(w[i] != FILL_WORD)) {
				bsl_fatalf("aborting on heap corruption", "write after free: the free "
					   "object %p was modified at offset %zu", p, i * sizeof *w);
			}
	}
	if (opt.secure & SEC_CANARY) {
		uint64_t *k = canary_of(p, c);
		*k = canary_value(k);
	}
}

void secure_on_free(void *p, unsigned c)
{
	if (opt.secure & SEC_CANARY) {
		uint64_t *k = canary_of(p, c);
		if (unlikely(*k != canary_value(k))) {
			bsl_fatalf("aborting on heap corruption", "heap overflow: the canary after the %zu "
				   "usable bytes of %p was overwritten",
				   (size_t)class_info[c].size - sec_canary_bytes, p);
		}
	}
	if (opt.secure & SEC_FILL)
		memset((char *)p + 2 * sizeof(uint64_t), SEC_FILL_BYTE,
		       class_info[c].size - 2 * sizeof(uint64_t));
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
