/*
 * init.c - start-up, fork handlers, and the report at exit.
 *
 * bsl_init_slow runs once, from whichever allocation comes first (it may be
 * inside the dynamic loader's dlsym or a constructor), and allocates nothing:
 * it parses BUDDYSLAB_CONF, builds the class table, creates the thread-exit
 * key and registers the fork handlers.
 *
 * Fork: prepare takes every allocator lock in the global order
 *   tcache registry -> slab cpu locks -> zone locks -> large shards -> arena
 * so the child inherits a consistent heap; parent and child release them.
 */
#include "init.h"
#include "config.h"
#include "sizeclass.h"
#include "tcache.h"
#include "slab.h"
#include "buddy.h"
#include "large.h"
#include "stats.h"

int bsl_ready;
static lock_t init_lock = LOCK_INIT;

static void fork_prepare(void)
{
	tcache_lock_all();
	slab_lock_all();
	buddy_lock_all();
	large_lock_all();
	arena_lock_all();
}

static void fork_parent(void)
{
	arena_unlock_all();
	large_unlock_all();
	buddy_unlock_all();
	slab_unlock_all();
	tcache_unlock_all();
}

static void fork_child(void)
{
	arena_unlock_all();
	large_unlock_all();
	buddy_unlock_all();
	slab_unlock_all();
	tcache_after_fork_child();
}

void bsl_init_slow(void)
{
	lock_acquire(&init_lock);
	if (!bsl_ready) {
		sizeclass_init();
		config_init();
		arena_thp_advise((int)opt.thp);
		tcache_global_init();
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		__atomic_store_n(&bsl_ready, 1, __ATOMIC_RELEASE);
	}
	lock_release(&init_lock);
}

__attribute__((constructor)) static void bsl_constructor(void)
{
	bsl_ensure_init();
}

__attribute__((destructor)) static void bsl_destructor(void)
{
	if (bsl_ready && opt.stats)
		stats_print_all(2);
}
