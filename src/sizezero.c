/*
 * sizezero.c - secure size0's slots for malloc(0) (secure.h): distinct
 * addresses, 16 bytes apart, in a PROT_NONE region reserved at the first
 * request, and a bit per slot for the live ones. Part of module secure, with
 * the fork handlers' entry for all of its locks.
 * Invariant: a slot's bit is set exactly while the slot is handed out; the
 * region and its map never go away once set (size0_base is published last).
 * Locks: sec_lock (the map and the cursor) is a leaf (src/LAYERS.md); the
 * state of a slot is read without it (a relaxed load of its word).
 */
#define _GNU_SOURCE
#include "secure.h"
#include "os.h"

static lock_t sec_lock = LOCK_INIT;   /* the size-0 map; a leaf */

#define SIZE0_SLOTS  ((size_t)1 << 20)      /* 16 MiB of PROT_NONE address space */
#define SIZE0_STRIDE 16
static char *size0_base;              /* set once, under sec_lock */
static uint64_t *size0_live;          /* one bit per slot */
static size_t size0_next;             /* next-fit cursor, in words */

void *secure_size0_alloc(void)
{
	void *p = NULL;
	lock_acquire(&sec_lock);
	if (!size0_base) {
		char *b = os_reserve(SIZE0_SLOTS * SIZE0_STRIDE);
		uint64_t *m = b ? os_map(SIZE0_SLOTS / 8, PAGE_SIZE) : NULL;
		if (m) {
			size0_live = m;
			__atomic_store_n(&size0_base, b, __ATOMIC_RELEASE);
		} else if (b) {
			os_unmap(b, SIZE0_SLOTS * SIZE0_STRIDE);
		}
	}
	for (size_t k = 0, nw = SIZE0_SLOTS / 64; size0_base && k < nw; k++) {
		size_t w = (size0_next + k) % nw;
		uint64_t v = size0_live[w];
		if (v != ~(uint64_t)0) {
			unsigned bit = (unsigned)__builtin_ctzll(~v);
			__atomic_store_n(&size0_live[w], v | (uint64_t)1 << bit, __ATOMIC_RELAXED);
			size0_next = w;
			p = size0_base + (w * 64 + bit) * SIZE0_STRIDE;
			break;
		}
	}
	lock_release(&sec_lock);
	return p;
}

int secure_size0_state(const void *p)
{
	const char *b = __atomic_load_n(&size0_base, __ATOMIC_ACQUIRE);
	size_t off = (uintptr_t)p - (uintptr_t)b;
	if (!b || off >= SIZE0_SLOTS * SIZE0_STRIDE)
		return SIZE0_NOT;
	if (off % SIZE0_STRIDE)
		return SIZE0_BAD;
	size_t i = off / SIZE0_STRIDE;
	uint64_t v = __atomic_load_n(&size0_live[i / 64], __ATOMIC_RELAXED);
	return (v >> (i % 64)) & 1 ? SIZE0_LIVE : SIZE0_FREED;
}

void secure_size0_free(void *p)
{
	size_t i = (size_t)((char *)p - size0_base) / SIZE0_STRIDE;
	lock_acquire(&sec_lock);
	__atomic_store_n(&size0_live[i / 64], size0_live[i / 64] & ~((uint64_t)1 << (i % 64)),
			 __ATOMIC_RELAXED);
	lock_release(&sec_lock);
}

void secure_lock_all(void)
{
	secure_rings_lock_all();
	lock_fork_acquire(&sec_lock);
}

void secure_unlock_all(void)
{
	lock_fork_release(&sec_lock);
	secure_rings_unlock_all();
}
