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
/* The same for the slab objects' slow paths, which batch programs (a bin
 * refilled or flushed every few objects) and runs without thread caches or
 * with slow-path ones (tcache:0; secure canary, fill, quarantine: every
 * object) take often:
 * every 16th call ticks, so the clock is not read at every one. Page runs
 * from the buddy layer and large blocks tick every time. */
extern __thread unsigned bsl_untick __attribute__((tls_model("initial-exec")));
static inline void bsl_maintenance_sometimes(void)
{
	if ((++bsl_untick & 15) == 0)
		bsl_maintenance();
}
/* The same for n such calls at once (objects leaving the quarantine
 * together): one tick when the count passes a multiple of 16. */
static inline void bsl_maintenance_sometimes_n(unsigned n)
{
	unsigned before = bsl_untick;
	bsl_untick = before + n;
	if ((before ^ (before + n)) >= 16)   /* differ above the low 4 bits */
		bsl_maintenance();
}

/* Forks seen by the prepare handler; of those, the ones where the forking
 * thread already held allocator locks (a signal handler that forks
 * interrupted the allocator), and the locks skipped per layer: tcache
 * registry, slab cpu, zone, large (shards and mapping cache), arena. For
 * tests; not exported. */
enum { FORK_LAYERS = 5 };
struct bsl_fork_stats {
	uint64_t nfork;
	uint64_t nfork_held;
	uint64_t held[FORK_LAYERS];
};
extern struct bsl_fork_stats bsl_fork_stats;

static inline void bsl_ensure_init(void)
{
	if (unlikely(!__atomic_load_n(&bsl_ready, __ATOMIC_ACQUIRE)))
		bsl_init_slow();
}
#pragma GCC visibility pop
#endif
