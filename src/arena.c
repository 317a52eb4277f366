/*
 * arena.c - reserve address space, advance the break chunk by chunk, and keep
 * the page-descriptor array beside it. See arena.h for the invariants.
 */
#include "arena.h"
#include "os.h"
#include <sys/resource.h>

struct arena arenas[MAX_ARENAS];
unsigned narenas;
static lock_t arena_lock = LOCK_INIT;
static int thp_mode = -1;

#define ARENA_MAX_BYTES ((size_t)64 << 30)   /* first reservation: 64 GiB */

_Static_assert((CHUNK_PAGES * sizeof(struct page_desc)) % PAGE_SIZE == 0,
	       "descriptors of a chunk fill whole pages");

static size_t desc_bytes(size_t npages)
{
	return npages * sizeof(struct page_desc);
}

/* The first size to try: 64 GiB, or an eighth of RLIMIT_AS when that is
 * set (reserved address space counts against it, and the program needs room
 * for its own mappings and our large blocks). */
static size_t arena_first_size(void)
{
	struct rlimit rl;
	size_t nbytes = ARENA_MAX_BYTES;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t eighth = (size_t)rl.rlim_cur / 8;
		while (nbytes > CHUNK_SIZE && nbytes > eighth)
			nbytes /= 2;
	}
	return nbytes;
}

/* Reserve a new arena of the largest size that the OS grants. */
static bool arena_reserve_locked(void)
{
	lock_assert_held(&arena_lock);
	if (narenas == MAX_ARENAS)
		return false;
	for (size_t nbytes = arena_first_size(); nbytes >= CHUNK_SIZE; nbytes /= 2) {
		size_t npages = nbytes >> PAGE_SHIFT;
		size_t total = nbytes + CHUNK_SIZE + desc_bytes(npages);
		char *raw = os_reserve(total);
		if (!raw)
			continue;
		struct arena *a = &arenas[narenas];
		char *base = (char *)align_up((uintptr_t)raw, CHUNK_SIZE);
		/* give back the alignment slop: under ulimit -v every byte counts */
		size_t head = (size_t)(base - raw), used = nbytes + desc_bytes(npages);
		if (head)
			os_unmap(raw, head);
		if (CHUNK_SIZE - head)
			os_unmap(base + used, CHUNK_SIZE - head);
		a->base_hidden = hide_addr((uintptr_t)base);
		a->desc = (struct page_desc *)(base + nbytes);
		a->npages = npages;
		a->nchunks = 0;
		__atomic_store_n(&narenas, narenas + 1, __ATOMIC_RELEASE);
		return true;
	}
	return false;
}

void arena_desc_init(struct page_desc *chunk, size_t from, uint8_t arena_idx, uint16_t zone)
{
	for (size_t i = from; i < CHUNK_PAGES; i++) {
		chunk[i].zone = zone;
		chunk[i].arena = arena_idx;
		chunk[i].ready = 1;
	}
}

struct page_desc *arena_chunk_alloc(uint16_t zone)
{
	struct page_desc *first = NULL;
	lock_acquire(&arena_lock);
	struct arena *a = narenas ? &arenas[narenas - 1] : NULL;
	if (!a || (a->nchunks + 1) * CHUNK_PAGES > a->npages) {
		if (!arena_reserve_locked())
			goto out;
		a = &arenas[narenas - 1];
	}
	size_t page = a->nchunks * CHUNK_PAGES;
	char *data = (char *)(unhide_addr(a->base_hidden) + (page << PAGE_SHIFT));
	struct page_desc *d = &a->desc[page];
	if (!os_commit(d, desc_bytes(CHUNK_PAGES)))
		goto out;
	if (!os_commit(data, CHUNK_SIZE))
		goto out;   /* the descriptor pages stay committed; harmless */
	if (thp_mode >= 0)
		os_hugepage_advise(data, CHUNK_SIZE, thp_mode == 1);
	uint8_t arena_idx = (uint8_t)(a - arenas);
	arena_desc_init(d, 0, arena_idx, zone);
	first = d;
	__atomic_store_n(&a->nchunks, a->nchunks + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&a->limit, a->nchunks * CHUNK_SIZE, __ATOMIC_RELEASE);
out:
	lock_release(&arena_lock);
	return first;
}

size_t arena_committed_bytes(void)
{
	size_t total = 0;
	unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++)
		total += __atomic_load_n(&arenas[i].nchunks, __ATOMIC_RELAXED) * CHUNK_SIZE;
	return total;
}

void arena_thp_advise(int mode)
{
	thp_mode = mode;
}

void arena_lock_all(void)
{
	lock_fork_acquire(&arena_lock);
}

void arena_unlock_all(void)
{
	lock_fork_release(&arena_lock);
}
