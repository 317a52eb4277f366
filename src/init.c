/*
 * init.c - start-up, fork handlers, and the report at exit.
 *
 * bsl_init_slow runs once, from whichever allocation comes first (it may be
 * inside the dynamic loader's dlsym or a constructor), and allocates nothing:
 * it parses BUDDYSLAB_CONF, notes the stderr of start-up (out_init, right
 * after the parse, so that the descriptor is taken "when the option is
 * read"), builds the class table, creates the thread-exit key and registers
 * the fork handlers. The report (stats_report) is written at exit from the
 * destructor and on stats_signal; output.c decides where it goes. A heap
 * profile (prof.c) is dumped there too, with prof_final, and on prof_signal.
 *
 * Maintenance: without a background thread, every slow path calls
 * bsl_maintenance(), which runs the rate-limited decay of the buddy zones and
 * the large-mapping cache. With background_thread:1, a thread started from
 * the first slow path after start-up (never from inside bsl_init, since
 * pthread_create allocates) sleeps decay_ms/4 between ticks; a child of fork
 * starts its own again.
 *
 * Fork: prepare takes every allocator lock in the global order (the table in
 * src/LAYERS.md) so the child inherits a consistent heap; parent and child
 * release them.
 *
 * Fork from a signal handler (the rule): a lock the forking thread already
 * holds - the handler interrupted the allocator inside a critical section -
 * is skipped by prepare, not taken twice (lock_fork_acquire, common.h); the
 * parent and child handlers release only the locks prepare took. When the
 * handler returns, the interrupted code finishes its half-done update and
 * releases its locks itself, in the parent and in the child's copy, so both
 * heaps are consistent. Child-side clean-up must therefore not touch what a
 * skipped lock protects (tcache_after_fork_child leaves the registry alone
 * then) and must not re-initialise a lock. Supported: a program whose only
 * thread forks in a handler (buddyslab's background thread may run: it
 * holds one lock at a time and waits for none while holding it). With other
 * threads it can deadlock: prepare then takes locks that come earlier in the
 * order than the held ones while holding them, e.g. the handler interrupted a
 * zone or the arena lock while another thread, holding a slab cpu lock,
 * waits for that lock; or another thread forks at the same time. Calling
 * malloc from a handler that interrupted malloc stays unsupported; when it
 * meets a lock its own thread holds it aborts with a message.
 */
#include "init.h"
#include "config.h"
#include "sizeclass.h"
#include "tcache.h"
#include "slab.h"
#include "buddy.h"
#include "large.h"
#include "stats.h"
#include "output.h"
#include "vg.h"
#include "secure.h"
#include "prof.h"
#include "os.h"
#include "cache.h"
#include "harden.h"

#include <time.h>
#include <signal.h>
#include <errno.h>
#include <string.h>

int bsl_ready;
int vg_active;
struct bsl_fork_stats bsl_fork_stats;
static lock_t init_lock = LOCK_INIT;
/* The background thread: 0 none, BG_RUNNING once created (or given up on), else
 * lock_self() of the thread creating it. Atomic. */
#define BG_RUNNING 1
static uint64_t bg_state;

/* One decay tick: the slabs that stayed empty go to the buddy layer first,
 * so that the purge that follows can return their pages. */
static void decay_all(void)
{
	uint64_t now;
	if (buddy_decay_due(&now)) {
		uint64_t decay = (uint64_t)opt.decay_ms;
		slab_decay(now);
		buddy_decay_purge(now);
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
	uint64_t expected = 0;
	if (!__atomic_compare_exchange_n(&bg_state, &expected, lock_self(), false,
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
		config_background_off();
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	__atomic_store_n(&bg_state, BG_RUNNING, __ATOMIC_RELEASE);
}

__thread unsigned bsl_untick __attribute__((tls_model("initial-exec")));

void bsl_maintenance(void)
{
	if (tc_self.slow_ms)      /* a thread that went idle returns its cache first */
		tcache_idle_return(os_now_ms());
	if (!opt_background_thread()) {
		decay_all();
		return;
	}
	if (unlikely(!__atomic_load_n(&bg_state, __ATOMIC_RELAXED)))
		background_start();
}

static void fork_prepare(void)
{
	unsigned n[6];
	lock_fork_begin();
	secure_lock_all();
	prof_lock_all();
	cache_lock_all();
	n[0] = lock_fork_nskipped();
	tcache_lock_all();
	n[1] = lock_fork_nskipped();
	slab_lock_all();
	n[2] = lock_fork_nskipped();
	buddy_lock_all();
	n[3] = lock_fork_nskipped();
	large_lock_all();
	n[4] = lock_fork_nskipped();
	arena_lock_all();
	n[5] = lock_fork_nskipped();
	__atomic_fetch_add(&bsl_fork_stats.nfork, 1, __ATOMIC_RELAXED);
	if (n[5]) {
		__atomic_fetch_add(&bsl_fork_stats.nfork_held, 1, __ATOMIC_RELAXED);
		for (int i = 0; i < FORK_LAYERS; i++)
			__atomic_fetch_add(&bsl_fork_stats.held[i], n[i + 1] - n[i], __ATOMIC_RELAXED);
	}
}

static void fork_parent(void)
{
	arena_unlock_all();
	large_unlock_all();
	buddy_unlock_all();
	slab_unlock_all(false);
	tcache_unlock_all();
	cache_unlock_all();
	prof_unlock_all();
	secure_unlock_all();
	lock_fork_end();
}

static void fork_child(void)
{
	/* The background thread did not follow us: start another on demand,
	 * unless this very thread is creating it (a handler that interrupted
	 * background_start), which it goes on to do in the child too. */
	if (__atomic_load_n(&bg_state, __ATOMIC_RELAXED) != lock_self())
		bg_state = 0;
	arena_unlock_all();
	large_unlock_all();
	buddy_unlock_all();
	slab_unlock_all(true);
	tcache_after_fork_child();
	stats_after_fork_child();
	cache_after_fork_child();
	cache_unlock_all();
	prof_unlock_all();
	secure_unlock_all();
	lock_fork_end();
}

/* The views on a signal: they only read counters (no lock is waited for), and
 * print with one write(2), so the handler is safe wherever it interrupts.
 * config.c refuses the signals this must not handle (faults, abort, the ones
 * glibc reserves). */
static void report_signal_handler(int sig)
{
	int saved_errno = errno;
	if (sig == opt.stats_signal) {
		stats_in_signal = 1;
		stats_report();
		stats_in_signal = 0;
	}
	if (sig == opt.prof_signal && opt.prof)
		prof_dump_from_signal();
	errno = saved_errno;
}

static void signal_install(const char *key, int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = report_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		bsl_warnf("BUDDYSLAB_CONF: %s:%d: sigaction refused the signal", key, sig);
}

void bsl_init_slow(void)
{
	lock_acquire(&init_lock);
	if (!bsl_ready) {
		sizeclass_init();
		config_init();
		out_init();
		vg_active = vg_memcheck_running();
		if (vg_active)
			config_tcache_off();   /* every call takes a slow path, where memcheck is told */
		secure_init();
		/* their checks live on the slow paths: the thread caches serve those only */
		tcache_slow_only = opt.secure & (SEC_CANARY | SEC_FILL | SEC_QUARANTINE);
		if (opt.secure & SEC_QUARANTINE)
			tcache_exit_hooks[TCACHE_EXIT_QUARANTINE] = harden_thread_exit;
		arena_thp_advise((int)opt.thp);
		tcache_global_init();
		pthread_atfork(fork_prepare, fork_parent, fork_child);
		if (opt.stats_signal)
			signal_install("stats_signal", (int)opt.stats_signal);
		if (opt.prof_signal && opt.prof_signal != opt.stats_signal)
			signal_install("prof_signal", (int)opt.prof_signal);
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
		stats_report();
	if (bsl_ready && opt.prof && opt.prof_final)
		prof_dump(NULL);
}
