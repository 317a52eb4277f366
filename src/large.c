/*
 * large.c - mmap'd blocks and the table of live ones.
 *
 * The table: LARGE_SHARDS open-addressing hash tables keyed by block address
 * (linear probing, tombstones, grown x2 at half load). Each shard's slots are
 * themselves mapped with os_map, never taken from the heap. A block's usable
 * size is its mapping's length (a page multiple).
 * Lock: one per shard; innermost (nothing is called with it held but os_*).
 * The mapping cache has its own lock, never held with a shard lock; munmap
 * of evicted mappings happens after it is released.
 *
 * Invariant: neither the table nor the cache holds a plain block address:
 * both store hide_addr(addr) (common.h), so that memcheck's leak check does
 * not find every large block "still reachable" through them. Under memcheck
 * every block also gets a PROT_NONE page on each side (as secure guard mode
 * does): a one-past-the-end pointer of a neighbouring mapping (ld.so's
 * alloc_end, say) then points at a guard, not at the block.
 */
#include "large.h"
#include "secure.h"
#include "os.h"
#include "config.h"
#include "vg.h"
#include <errno.h>
#include <string.h>

#define LARGE_SHARDS 16
struct large_slot {
	uintptr_t addr_hidden;   /* hide_addr(block address); 0: empty */
	size_t    nbytes;    /* 0: removed (a tombstone that remembers the address,
	                        so a second free of it can be named a double free) */
};

struct large_shard {
	lock_t lock;
	struct large_slot *slots;
	size_t cap;          /* a power of two, 0 before first use */
	size_t used;         /* live + tombstones */
	size_t live;
	size_t live_bytes;
	uint64_t nalloc, nfree;     /* blocks made and freed (realloc moves not counted) */
	uint32_t ndebug;     /* debug builds: calls until the next shard_check */
} __attribute__((aligned(64)));

/* Each shard starts with a small table of its own, so recording a block never
 * needs a mapping until the shard holds many. */
#define LARGE_SLOTS0 64
static struct large_slot slots0[LARGE_SHARDS][LARGE_SLOTS0];
static struct large_shard shards[LARGE_SHARDS];

static void shard_init_locked(struct large_shard *sh)
{
	lock_assert_held(&sh->lock);
	if (!sh->cap) {
		sh->slots = slots0[sh - shards];
		sh->cap = LARGE_SLOTS0;
	}
}

static size_t hash_addr(uintptr_t a)
{
	return (size_t)((a >> PAGE_SHIFT) * 0x9E3779B97F4A7C15ull);
}

static struct large_shard *shard_of(uintptr_t a)
{
	return &shards[hash_addr(a) >> 60];
}

/* Blocks with a guard page on each side: secure guard mode, and memcheck. */
static bool guarded(void)
{
	return (opt.secure & SEC_GUARD) || vg_active;
}

/* The live slot of a, or NULL; *was_freed tells whether a tombstone of a
 * was seen on the way. */
static struct large_slot *find_locked(struct large_shard *sh, uintptr_t a, bool *was_freed)
{
	lock_assert_held(&sh->lock);
	*was_freed = false;
	if (!sh->cap || a == 0)
		return NULL;
	uintptr_t h = hide_addr(a);
	for (size_t i = hash_addr(a) & (sh->cap - 1);; i = (i + 1) & (sh->cap - 1)) {
		if (sh->slots[i].addr_hidden == 0)
			return NULL;
		if (sh->slots[i].addr_hidden == h) {
			if (sh->slots[i].nbytes)
				return &sh->slots[i];
			*was_freed = true;
		}
	}
}

/* Insert into a slot array: a shard's (its lock held) or a new one being
 * filled. True when it took an empty slot (used grows), false when it took a
 * tombstone's: a block freed and mapped again at one address, over and over,
 * reuses its slot instead of filling the table (which rehashed every ~30
 * blocks: large/262144 made an mmap and a munmap for each). */
static bool slot_put(struct large_slot *slots, size_t cap, uintptr_t a, size_t nbytes)
{
	size_t i = hash_addr(a) & (cap - 1);
	while (slots[i].addr_hidden && slots[i].nbytes)
		i = (i + 1) & (cap - 1);
	bool was_empty = !slots[i].addr_hidden;
	slots[i].addr_hidden = hide_addr(a);
	slots[i].nbytes = nbytes;
	return was_empty;
}

static bool grow_locked(struct large_shard *sh)
{
	lock_assert_held(&sh->lock);
	size_t cap = sh->cap ? sh->cap * 2 : 256;
	if (sh->live * 4 < sh->cap)   /* mostly tombstones: rehash at same size */
		cap = sh->cap;
	struct large_slot *slots = os_map(cap * sizeof *slots, PAGE_SIZE);
	if (!slots)
		return false;
	for (size_t i = 0; i < sh->cap; i++)
		if (sh->slots[i].addr_hidden && sh->slots[i].nbytes)
			slot_put(slots, cap, unhide_addr(sh->slots[i].addr_hidden), sh->slots[i].nbytes);
	if (sh->slots && sh->slots != slots0[sh - shards])
		os_unmap(sh->slots, sh->cap * sizeof *slots);
	sh->slots = slots;
	sh->cap = cap;
	sh->used = sh->live;
	return true;
}

/* Debug builds, every 64th change of a shard: its counts match its slots (live
 * blocks and their bytes; used covers every slot that is not empty), and each
 * live slot is reachable from its hash position (no empty slot on the way). */
static void shard_check_locked(struct large_shard *sh)
{
	lock_assert_held(&sh->lock);
	if (!BSL_DEBUG || sh->ndebug++ % 64)
		return;
	size_t live = 0, bytes = 0, nonempty = 0;
	for (size_t i = 0; i < sh->cap; i++) {
		const struct large_slot *s = &sh->slots[i];
		if (!s->addr_hidden)
			continue;
		nonempty++;
		if (!s->nbytes)
			continue;
		live++;
		bytes += s->nbytes;
		for (size_t j = hash_addr(unhide_addr(s->addr_hidden)) & (sh->cap - 1); j != i;
		     j = (j + 1) & (sh->cap - 1))
			VERIFY(sh->slots[j].addr_hidden);
	}
	VERIFY(live == sh->live && bytes == sh->live_bytes && nonempty <= sh->used);
	VERIFY(sh->used < sh->cap || !sh->cap);
}

/* Record a block. The table grows at half load; `force` skips growing (it
 * cannot fail then, as a half-full table always has an empty slot), which is
 * what realloc needs after mremap has already moved the block. */
static bool record(void *p, size_t nbytes, bool force)
{
	struct large_shard *sh = shard_of((uintptr_t)p);
	lock_acquire(&sh->lock);
	shard_init_locked(sh);
	bool ok = (sh->used + 1) * 2 <= sh->cap || grow_locked(sh) ||
		  (force && sh->used + 1 < sh->cap);
	if (ok) {
		sh->used += slot_put(sh->slots, sh->cap, (uintptr_t)p, nbytes);
		sh->live++;
		sh->live_bytes += nbytes;
	}
	shard_check_locked(sh);
	lock_release(&sh->lock);
	return ok;
}

/* The calling thread's last block that large_realloc left in place or made,
 * hidden (as the table's), and the count of removals from the table then.
 * While that count has not moved, the block is still live with that length,
 * so a realloc to the same page count needs no lookup (a buffer grown a byte
 * at a time makes 4,096 reallocs per page). Every unrecord moves the count. */
static uint64_t removals;     /* atomic */
static __thread struct { uintptr_t addr_hidden; size_t nbytes; uint64_t removals; }
	last_resized __attribute__((tls_model("initial-exec")));

static void resized_remember(const void *p, size_t nbytes)
{
	last_resized.addr_hidden = hide_addr((uintptr_t)p);
	last_resized.nbytes = nbytes;
	last_resized.removals = __atomic_load_n(&removals, __ATOMIC_RELAXED);
}

bool large_realloc_stays(const void *p, size_t nbytes)
{
	size_t len = align_up(nbytes, PAGE_SIZE), old = last_resized.nbytes;
	return last_resized.addr_hidden == hide_addr((uintptr_t)p) &&
	       len <= old && len + old / 8 >= old &&     /* large_realloc's test to stay */
	       last_resized.removals == __atomic_load_n(&removals, __ATOMIC_RELAXED);
}

/* The calling thread's last block cut from the front of a cached mapping
 * whose rest stayed cached right after it (cache_take), hidden, with the
 * removal count then: while the count has not moved, the block and that rest
 * are still one mapping, so the block may grow into the rest (large_realloc).
 * Another mapping that happens to sit right after a block must not be taken:
 * the block would span two, and mremap refuses such a range. */
static __thread struct { uintptr_t block_hidden, rest_hidden; uint64_t removals; }
	last_cut __attribute__((tls_model("initial-exec")));

static void cut_remember(const void *block, const void *rest)
{
	last_cut.block_hidden = hide_addr((uintptr_t)block);
	last_cut.rest_hidden = hide_addr((uintptr_t)rest);
	last_cut.removals = __atomic_load_n(&removals, __ATOMIC_RELAXED);
}

static bool cut_from_same(const void *block, const void *rest)
{
	return last_cut.block_hidden == hide_addr((uintptr_t)block) &&
	       last_cut.rest_hidden == hide_addr((uintptr_t)rest) &&
	       last_cut.removals == __atomic_load_n(&removals, __ATOMIC_RELAXED);
}

/* Remove p's record; returns its length, or 0 when p is not recorded. */
static size_t unrecord(const void *p)
{
	struct large_shard *sh = shard_of((uintptr_t)p);
	lock_acquire(&sh->lock);
	bool was_freed;
	struct large_slot *s = find_locked(sh, (uintptr_t)p, &was_freed);
	size_t nbytes = 0;
	if (s) {
		nbytes = s->nbytes;
		s->nbytes = 0;
		sh->live--;
		sh->live_bytes -= nbytes;
		__atomic_add_fetch(&removals, 1, __ATOMIC_RELAXED);
	}
	shard_check_locked(sh);
	lock_release(&sh->lock);
	return nbytes;
}

/* p's record (live) now says nbytes: it grew in place. */
static void rerecord(const void *p, size_t nbytes)
{
	struct large_shard *sh = shard_of((uintptr_t)p);
	lock_acquire(&sh->lock);
	bool was_freed;
	struct large_slot *s = find_locked(sh, (uintptr_t)p, &was_freed);
	VERIFY(s);
	sh->live_bytes += nbytes - s->nbytes;
	s->nbytes = nbytes;
	shard_check_locked(sh);
	lock_release(&sh->lock);
}

/* A block's mapping goes away (with its guard pages when guarded). */
static void unmap_block(void *p, size_t len)
{
	if (guarded())
		secure_large_unmap(p, len);
	else
		os_unmap(p, len);
}

/* ------------------------------------------------------- mapping cache */

#define LARGE_CACHE_SLOTS 16

struct cached_map { uintptr_t addr_hidden; size_t nbytes; uint64_t freed_ms; };

static lock_t cache_lock = LOCK_INIT;
static struct cached_map cache[LARGE_CACHE_SLOTS];   /* addr_hidden 0 = empty */
static size_t cache_bytes;

static void *cached_addr(const struct cached_map *m)
{
	return (void *)unhide_addr(m->addr_hidden);
}

/* Put a mapping (or the unused tail of one) in slot i. Cache lock held. */
static void cache_set_locked(int i, void *addr, size_t nbytes, uint64_t freed_ms)
{
	lock_assert_held(&cache_lock);
	cache[i] = (struct cached_map){ hide_addr((uintptr_t)addr), nbytes, freed_ms };
	cache_bytes += nbytes;
}

/*
 * A cached mapping for a block of *len bytes (a page multiple) at an address
 * that is a multiple of align; NULL when none is big enough. Reuse avoids the
 * page faults (and, in a VM, the page-table updates) of a fresh mapping, so
 * no syscall is made where it can be helped: the smallest mapping of at least
 * *len bytes is taken. An excess that could hold a large block of its own
 * (more than mmap_threshold) is split off and stays cached (an address range:
 * no syscall); a smaller excess stays with the block when it is at most a
 * quarter of *len (*len grows to the mapping's length) and is unmapped
 * otherwise. A smaller mapping is not grown with mremap: measured slower than
 * a fresh mapping (moving page tables flushes the TLB), bench/probe/large_reuse.c.
 * Guarded mappings (secure guard, memcheck) are only ever trimmed: their
 * rear guard page must sit right after the block.
 */
static void *cache_take(size_t *len, size_t align)
{
	size_t want = *len;
	int bi = -1;
	lock_acquire(&cache_lock);
	for (int i = 0; i < LARGE_CACHE_SLOTS && cache_bytes; i++) {
		const struct cached_map *m = &cache[i];
		if (m->addr_hidden && (m->addr_hidden & (align - 1)) == 0 &&   /* -a is aligned as a is */
		    m->nbytes >= want && (bi < 0 || m->nbytes < cache[bi].nbytes)) {
			bi = i;
			if (m->nbytes == want)
				break;            /* an exact fit: none is better */
		}
	}
	if (bi < 0) {
		lock_release(&cache_lock);
		return NULL;
	}
	struct cached_map m = cache[bi];
	cache[bi].addr_hidden = 0;
	cache_bytes -= m.nbytes;
	char *addr = cached_addr(&m);
	size_t excess = m.nbytes - want;
	bool split = excess > opt_mmap_threshold() && !guarded();
	if (split)   /* the slot just emptied takes the tail */
		cache_set_locked(bi, addr + want, excess, m.freed_ms);
	lock_release(&cache_lock);

	if (split)
		cut_remember(addr, addr + want);
	if (split || excess == 0)
		return addr;
	if (!guarded() && excess <= want / 4) {
		*len = m.nbytes;
		return addr;
	}
	char *end = addr + want;
	if (!guarded()) {
		os_unmap(end, excess);
	} else if (os_guard(end, PAGE_SIZE)) {   /* the new rear guard */
		os_unmap(end + PAGE_SIZE, excess);   /* and the old one */
	} else {
		unmap_block(addr, m.nbytes);
		return NULL;
	}
	return addr;
}

/* Keep a freed mapping; false when it does not fit (the caller unmaps it).
 * The oldest entries make room and are unmapped here. */
/* The first need bytes of the cached mapping that starts at addr, if there is
 * one that long (the rest of a mapping a block was cut from, cache_take):
 * true when taken; a longer one's rest stays cached. */
static bool cache_take_at(const void *addr, size_t need)
{
	bool taken = false;
	lock_acquire(&cache_lock);
	for (int i = 0; i < LARGE_CACHE_SLOTS && cache_bytes && !taken; i++) {
		struct cached_map m = cache[i];
		if (!m.addr_hidden || cached_addr(&m) != addr || m.nbytes < need)
			continue;
		cache[i].addr_hidden = 0;
		cache_bytes -= m.nbytes;
		if (m.nbytes > need)
			cache_set_locked(i, (char *)addr + need, m.nbytes - need, m.freed_ms);
		taken = true;
		if (m.nbytes > need)
			last_cut.rest_hidden = hide_addr((uintptr_t)addr + need);
	}
	lock_release(&cache_lock);
	return taken;
}

/* A mapping joins the cache, the oldest going out until it fits in the cap.
 * One bigger than half the cap is kept alone: everything else goes out. A
 * program that frees and again allocates one big buffer (64 MiB, above the
 * default cap) then does not fault in every page of it each time, and what is
 * held beyond the cap is only the block the program just had resident, for
 * decay_ms at most. */
static bool cache_put(void *addr, size_t nbytes)
{
	size_t room = nbytes > (size_t)opt.large_cache / 2 ? nbytes : (size_t)opt.large_cache;
	struct cached_map evicted[LARGE_CACHE_SLOTS];
	int nev = 0;
	lock_acquire(&cache_lock);
	for (;;) {
		int oldest = -1, empty = -1;
		for (int i = 0; i < LARGE_CACHE_SLOTS; i++) {
			if (!cache[i].addr_hidden)
				empty = i;
			else if (oldest < 0 || cache[i].freed_ms < cache[oldest].freed_ms)
				oldest = i;
		}
		if (empty >= 0 && cache_bytes + nbytes <= room) {
			cache_set_locked(empty, addr, nbytes, os_now_ms());
			break;
		}
		evicted[nev++] = cache[oldest];
		cache_bytes -= cache[oldest].nbytes;
		cache[oldest].addr_hidden = 0;
	}
	lock_release(&cache_lock);
	for (int i = 0; i < nev; i++)
		unmap_block(cached_addr(&evicted[i]), evicted[i].nbytes);
	return true;
}

size_t large_cache_release(uint64_t before_ms)
{
	struct cached_map out[LARGE_CACHE_SLOTS];
	int n = 0;
	size_t nbytes = 0;
	lock_acquire(&cache_lock);
	for (int i = 0; i < LARGE_CACHE_SLOTS; i++)
		if (cache[i].addr_hidden && cache[i].freed_ms <= before_ms) {
			out[n++] = cache[i];
			cache_bytes -= cache[i].nbytes;
			cache[i].addr_hidden = 0;
		}
	lock_release(&cache_lock);
	for (int i = 0; i < n; i++) {
		unmap_block(cached_addr(&out[i]), out[i].nbytes);
		nbytes += out[i].nbytes;
	}
	return nbytes;
}

bool large_cache_holds(const void *p)
{
	bool held = false;
	lock_acquire(&cache_lock);
	for (int i = 0; i < LARGE_CACHE_SLOTS; i++)
		if (cache[i].addr_hidden && (uintptr_t)p + cache[i].addr_hidden < cache[i].nbytes)
			held = true;
	lock_release(&cache_lock);
	return held;
}

size_t large_cached_bytes(void)
{
	return __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ the tier */

void *large_alloc(size_t nbytes, size_t align_bytes, bool *dirty)
{
	size_t len = align_up(nbytes ? nbytes : 1, PAGE_SIZE);   /* 0 bytes (big alignment): a page */
	if (len < nbytes)
		goto nomem;
	void *p = NULL;
	*dirty = false;
	if (align_bytes < PAGE_SIZE)
		align_bytes = PAGE_SIZE;
	/* secure quarantine: a fresh mapping takes a waiting block's pages */
	bool recycle = (opt.secure & SEC_QUARANTINE) && secure_recyclable(len);
	if (!recycle && opt.large_cache && (p = cache_take(&len, align_bytes)))
		*dirty = true;
	if (!p)
		p = guarded() ? secure_large_map(len, align_bytes) : os_map(len, align_bytes);
	if (!p)
		goto nomem;
	if (recycle && secure_recycle(p, len))
		*dirty = !(opt.secure & SEC_FILL);
	if (!record(p, len, false)) {
		unmap_block(p, len);
		goto nomem;
	}
	__atomic_fetch_add(&shard_of((uintptr_t)p)->nalloc, 1, __ATOMIC_RELAXED);
	return p;
nomem:
	errno = ENOMEM;
	return NULL;
}

size_t large_usable_size(const void *p, bool *was_freed)
{
	struct large_shard *sh = shard_of((uintptr_t)p);
	lock_acquire(&sh->lock);
	struct large_slot *s = find_locked(sh, (uintptr_t)p, was_freed);
	size_t nbytes = s ? s->nbytes : 0;
	lock_release(&sh->lock);
	return nbytes;
}

bool large_free(void *p)
{
	size_t nbytes = unrecord(p);
	if (!nbytes)
		return false;
	__atomic_fetch_add(&shard_of((uintptr_t)p)->nfree, 1, __ATOMIC_RELAXED);
	if (!opt.large_cache || opt.decay_ms == 0 || !cache_put(p, nbytes))
		unmap_block(p, nbytes);
	return true;
}

/* The record of p stays until the mapping has moved, so a refused mremap
 * changes nothing. If the new address cannot be recorded (its shard is full
 * and cannot grow), the mapping is moved back where it was. */
void *large_realloc(void *p, size_t old, size_t nbytes)
{
	size_t len = align_up(nbytes, PAGE_SIZE);
	ASSERT(old && old == large_usable_size(p, &(bool){ false }));
	if (len <= old && len + old / 8 >= old) {   /* the slack growth leaves (below) */
		resized_remember(p, old);
		return p;
	}
	/* growing into the cached rest of the mapping p was cut from: its pages
	 * are there (a fresh mapping, or mremap moving away from them, faults
	 * every page in again); unguarded only (a guard sits after a guarded
	 * block), and only the rest of p's own mapping (cut_from_same) */
	size_t grown = len > old && len < old + old / 8 ? align_up(old + old / 8, PAGE_SIZE) : len;
	if (len > old && !guarded() && cut_from_same(p, (char *)p + old) &&
	    cache_take_at((char *)p + old, grown - old)) {
		rerecord(p, grown);
		resized_remember(p, grown);
		return p;
	}
	void *q = NULL;
	if (len > old && len < old + old / 8)     /* growing: by an eighth at least, so */
		q = os_remap(p, old, align_up(old + old / 8, PAGE_SIZE));   /* a chain of small */
	if (q)                                  /* steps does not mremap at every page */
		len = align_up(old + old / 8, PAGE_SIZE);
	else
		q = os_remap(p, old, len);
	if (!q && len < old)
		return p;         /* a shrink that the OS refused: the block still fits */
	if (!q)
		goto nomem;
	unrecord(p);
	if (record(q, len, true)) {
		resized_remember(q, len);
		return q;
	}
	VERIFY(os_remap_to(q, len, old, p));   /* p's range is free: it was just moved away */
	VERIFY(record(p, old, true));          /* the slot p left is there again */
nomem:
	errno = ENOMEM;
	return NULL;
}

void large_counts(uint64_t *nalloc, uint64_t *nfree)
{
	uint64_t a = 0, f = 0;
	for (int i = 0; i < LARGE_SHARDS; i++) {
		a += __atomic_load_n(&shards[i].nalloc, __ATOMIC_RELAXED);
		f += __atomic_load_n(&shards[i].nfree, __ATOMIC_RELAXED);
	}
	*nalloc = a;
	*nfree = f;
}

void large_totals(size_t *nbytes, size_t *nblocks)
{
	size_t b = 0, n = 0;
	for (int i = 0; i < LARGE_SHARDS; i++) {
		b += __atomic_load_n(&shards[i].live_bytes, __ATOMIC_RELAXED);
		n += __atomic_load_n(&shards[i].live, __ATOMIC_RELAXED);
	}
	*nbytes = b;
	*nblocks = n;
}

void large_lock_all(void)
{
	for (int i = 0; i < LARGE_SHARDS; i++)
		lock_fork_acquire(&shards[i].lock);
	lock_fork_acquire(&cache_lock);
}

void large_unlock_all(void)
{
	lock_fork_release(&cache_lock);
	for (int i = 0; i < LARGE_SHARDS; i++)
		lock_fork_release(&shards[i].lock);
}
