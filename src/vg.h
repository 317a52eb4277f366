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

static inline void vg_malloclike(const void *p, size_t n, bool zeroed)
{
	if (unlikely(vg_active))
		VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zeroed);
}
static inline void vg_freelike(const void *p)
{
	if (unlikely(vg_active))
		VALGRIND_FREELIKE_BLOCK(p, 0);
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
