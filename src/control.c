/*
 * control.c - the calls that change the allocator's state at a program's
 * request: bsl_purge (everything that can go back to the OS, now),
 * malloc_trim (the same, glibc's name) and mallopt (the mmap threshold; the
 * rest of glibc's parameters are accepted and ignored).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include "buddyslab.h"
#include "init.h"
#include "config.h"
#include "buddy.h"
#include "slab.h"
#include "tcache.h"
#include "large.h"

EXPORT size_t bsl_purge(void)
{
	if (!bsl_ready)
		return 0;
	if (tc_self.state == TC_LIVE)
		tcache_flush(&tc_self);
	slab_purge();
	return buddy_purge_all() + large_cache_release(UINT64_MAX);
}

EXPORT int malloc_trim(size_t pad)
{
	return bsl_purge() > 0;
}

EXPORT int mallopt(int param, int value)
{
	bsl_ensure_init();
	switch (param) {
	case M_MMAP_THRESHOLD:
		if (value < 0)
			return 0;
		config_set_mmap_threshold((size_t)value);
		return 1;
	default:    /* M_TRIM_THRESHOLD, M_ARENA_MAX, M_TOP_PAD, ...: accepted, ignored */
		return 1;
	}
}
