/*
 * init.c - start-up, fork handlers, and the report at exit.
 *
 * bsl_init_slow runs once, from whichever allocation comes first (it may be
 * inside the dynamic loader's dlsym or a constructor), and allocates nothing:
 * it parses BUDDYSLAB_CONF, builds the class table, creates the thread-exit
 * key and registers the fork handlers.
 *
 * Maintenance: without a background thread, every slow path calls
 * bsl_maintenance(), which runs the rate-limited decay of the buddy zones and
 * the large-mapping cache. With background_thread:1, a thread started from
 * the first slow path after start-up (never from inside bsl_init, since
 * pthread_create allocates) sleeps decay_ms/4 between ticks; a child of fork
 * starts its own again.
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
#include "vg.h"
#include "secure.h"

#include <time.h>
#include <signal.h>
#include <errno.h>
#include <string.h>

int bsl_ready;
int vg_active;
static lock_t init_lock = LOCK_INIT;
static int bg_state;          /* 0 none, 1 starting or running; atomic */

static void decay_all(void)
{
	if (buddy_decay_tick()) {
		uint64_t now = buddy_now_ms(), decay = (uint64_t)opt.decay_ms;
		large_cache_release(now > decay ? now - decay : 0);
	}
}

static void *background_main(void *arg)
{
	long ms = opt.decay_ms > 4 ? opt.decay_ms / 4 : 1;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	for (;;) {
		nanosleep(&ts, NULL);
		decay_all();
	}
	return arg;
}

static COLD void background_start(void)
{
	int expected = 0;
	if (!__atomic_compare_exchange_n(&bg_state, &expected, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);   /* the thread takes no signals */
	pthread_t t;
	if (pthread_create(&t, NULL, background_main, NULL) == 0) {
		pthread_detach(t);
	} else {
		bsl_warn("could not start the background thread;", "slow paths purge instead");
		opt.background_thread = 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void bsl_maintenance(void)
{
	if (!opt.background_thread) {
		decay_all();
		return;
	}
	if (unlikely(!__atomic_load_n(&bg_state, __ATOMIC_RELAXED)))
		background_start();
}

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
	bg_state = 0;      /* the thread did not follow us; start another on demand */
	arena_unlock_all();
	large_unlock_all();
	buddy_unlock_all();
	slab_unlock_all();
	tcache_after_fork_child();
}

/* The views on a signal: they only read counters (no lock is waited for), and
 * print with write(2), so the handler is safe wherever it interrupts. */
static void stats_signal_handler(int sig)
{
	int saved_errno = errno;
	stats_in_signal = 1;
	stats_print_all(2);
	stats_in_signal = 0;
	errno = saved_errno;
}

static void stats_signal_install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = stats_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		bsl_warn("BUDDYSLAB_CONF: cannot handle stats_signal", NULL);
}

void bsl_init_slow(void)
{
	lock_acquire(&init_lock);
	if (!bsl_ready) {
		sizeclass_init();
		config_init();
		secure_init();
		vg_active = vg_memcheck_running();
		if (vg_active)
			opt.tcache = 0;     /* every call takes a slow path, where memcheck is told */
		arena_thp_advise((int)opt.thp);
		tcache_global_init();
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		if (opt.stats_signal)
			stats_signal_install((int)opt.stats_signal);
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
