/*
 * init.h - process-wide start-up (first allocation, before main, inside
 * dlsym) and fork handling.
 */
#ifndef BSL_INIT_H
#define BSL_INIT_H
#include "common.h"
#pragma GCC visibility push(hidden)

extern int bsl_ready;          /* 1 once bsl_init has run; acquire load */
void bsl_init_slow(void);

static inline void bsl_ensure_init(void)
{
	if (unlikely(!__atomic_load_n(&bsl_ready, __ATOMIC_ACQUIRE)))
		bsl_init_slow();
}
#pragma GCC visibility pop
#endif
