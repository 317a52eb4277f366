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
/* Called from the slow paths: decay purging (unless a background thread does
 * it) and starting that thread when asked for. */
void bsl_maintenance(void);

static inline void bsl_ensure_init(void)
{
	if (unlikely(!__atomic_load_n(&bsl_ready, __ATOMIC_ACQUIRE)))
		bsl_init_slow();
}
#pragma GCC visibility pop
#endif
