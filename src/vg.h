/*
 * vg.h - cooperation with Valgrind's memcheck.
 *
 * Run as `valgrind --soname-synonyms=somalloc=nouserintercepts` (memcheck
 * otherwise replaces every malloc it finds), buddyslab stays the allocator and
 * tells memcheck about its blocks with client requests, so leaks, invalid
 * reads and writes and uses after free are reported in blocks it hands out.
 * Under memcheck (seen once at start-up) the thread caches are off, so every
 * call takes the slow paths, which are the only places that issue requests:
 * the fast paths carry no client-request code at all. Outside Valgrind each
 * request below is one test of vg_active.
 *
 * Leaks are classified as with memcheck's own malloc (DESIGN.md 12): no
 * metadata memcheck scans holds a plain heap address (common.h, hide_addr);
 * under memcheck each block takes one byte more than asked (malloc.c,
 * alloc_slow) and each large block a guard page on each side (large.c), so
 * that no one-past-the-end pointer, the program's or ld.so's, points at the
 * start of another block.
 */
#ifndef BSL_VG_H
#define BSL_VG_H
#include "common.h"
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#pragma GCC visibility push(hidden)

extern int vg_active;     /* 1 when running under memcheck; set once by bsl_init */

/* Memcheck, not just any Valgrind tool (callgrind must see the real fast
 * paths): only memcheck answers GET_VBITS, with 1. */
static inline int vg_memcheck_running(void)
{
	char byte = 0, vbits;
	return RUNNING_ON_VALGRIND && VALGRIND_GET_VBITS(&byte, &vbits, 1) == 1;
}

/* A new block of n bytes in a slot of usable bytes: the slot's tail past n
 * is no-access, so a write past the request is reported. */
static inline void vg_malloclike(void *p, size_t n, size_t usable, bool zeroed)
{
	if (unlikely(vg_active)) {
		VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zeroed);
		if (usable > n)
			VALGRIND_MAKE_MEM_NOACCESS((char *)p + n, usable - n);
	}
}
/* Under memcheck, the size the program asked for (what memcheck's own
 * malloc_usable_size answers): the addressable prefix of the slot, found by
 * probing one byte at a time (GET_VBITS reports nothing, it answers 3 for a
 * byte that is not addressable). */
static inline size_t vg_requested_size(const void *p, size_t usable)
{
	size_t lo = 0, hi = usable;      /* [p, p+lo) addressable, [p+hi, ...) not */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		char vbits;
		if (VALGRIND_GET_VBITS((const char *)p + mid, &vbits, 1) == 3)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}
static inline void vg_freelike(const void *p)
{
	if (unlikely(vg_active))
		VALGRIND_FREELIKE_BLOCK(p, 0);
}
/* A block's V-bits (memcheck's record of which of its bits are defined),
 * kept in n bytes of our own while the block is free: save them before the
 * FREELIKE request (which forgets them), put them back after MALLOCLIKE. So a
 * block that keeps its contents while free (a named cache's constructed
 * object) keeps which of them are defined too. */
static inline void vg_vbits_save(const void *p, void *saved, size_t n)
{
	if (unlikely(vg_active)) {
		VALGRIND_MAKE_MEM_UNDEFINED(saved, n);
		(void)VALGRIND_GET_VBITS(p, saved, n);
		VALGRIND_MAKE_MEM_NOACCESS(saved, n);
	}
}
static inline void vg_vbits_restore(void *p, void *saved, size_t n)
{
	if (unlikely(vg_active)) {
		VALGRIND_MAKE_MEM_DEFINED(saved, n);
		(void)VALGRIND_SET_VBITS(p, saved, n);
		VALGRIND_MAKE_MEM_NOACCESS(saved, n);
	}
}
/* Our own words inside a free object (link and tag) are ours to touch. */
static inline void vg_open(void *p, size_t n)
{
	if (unlikely(vg_active))
		VALGRIND_MAKE_MEM_DEFINED(p, n);
}
static inline void vg_close(void *p, size_t n)
{
	if (unlikely(vg_active))
		VALGRIND_MAKE_MEM_NOACCESS(p, n);
}
#pragma GCC visibility pop
#endif
