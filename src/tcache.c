/*
 * tcache.c - slow paths of the thread cache: refill, flush, set-up, teardown.
 *
 * Refill takes half a bin's bound from the slabs in one locked call; a full
 * bin sends half of its objects back in one call. Both move chains (slab.h):
 * the bin's links are the slabs' links, so nothing is copied to an array.
 * Bounds grow with demand within a thread's and an overall budget (tcache.h);
 * a thread idle for a tick returns its bins at its next slow path. A pthread
 * key's destructor returns the whole cache when the thread exits.
 * Lock: registry_lock protects the records of live caches (for statistics);
 * it is taken at cache start and exit and by readers of statistics.
 */
#include "tcache.h"
#include "slab.h"
#include "run.h"
#include "os.h"
#include "config.h"
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

__thread struct tcache tc_self __attribute__((tls_model("initial-exec")));
__thread int stats_in_signal __attribute__((tls_model("initial-exec")));
bool tcache_slow_only;
_Static_assert(sizeof(struct tcache_bin) == 16, "bins are 16 bytes");

/* Lives in memory of our own (never freed), so it outlives its thread. */
struct tcache_record {
	size_t cached_bytes;             /* published by the owner at its slow paths */
	uint64_t nrun_take, nrun_park;   /* published with it: runs taken from / parked in the cache */
	struct tcache_record *next, *prev;
};

#define RECORDS_PER_MAP (16 * PAGE_SIZE / sizeof(struct tcache_record))

static lock_t registry_lock = LOCK_INIT;
static struct tcache_record *registry;     /* live records */
static struct tcache_record *spare;        /* free records, linked by next */
static size_t nlive;
static uint64_t gone_take, gone_park;      /* the counts of records put back */
static pthread_key_t exit_key;

static struct tcache_record *record_get_locked(void)
{
	lock_assert_held(&registry_lock);
	if (!spare) {
		struct tcache_record *r = os_map(RECORDS_PER_MAP * sizeof *r, PAGE_SIZE);
		if (!r)
			return NULL;
		for (size_t i = 0; i < RECORDS_PER_MAP; i++) {
			r[i].next = spare;
			spare = &r[i];
		}
	}
	struct tcache_record *r = spare;
	spare = r->next;
	r->cached_bytes = 0;
	r->nrun_take = r->nrun_park = 0;
	r->prev = NULL;
	r->next = registry;
	if (registry)
		registry->prev = r;
	registry = r;
	nlive++;
	return r;
}

static void record_put_locked(struct tcache_record *r)
{
	lock_assert_held(&registry_lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		registry = r->next;
	if (r->next)
		r->next->prev = r->prev;
	gone_take += r->nrun_take;
	gone_park += r->nrun_park;
	r->next = spare;
	spare = r;
	nlive--;
}

/* The run cache's part (and the bins' bytes as last counted): the runs'
 * own publishing, which does not walk the bins. */
static void publish_runs(struct tcache *tc)
{
	size_t bytes = tc->bin_bytes + (tc->run_max - tc->run_room);
	__atomic_store_n(&tc->rec->cached_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->rec->nrun_take, tc->nrun_take, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->rec->nrun_park, tc->nrun_park, __ATOMIC_RELAXED);
}

static void publish(struct tcache *tc)
{
	size_t bytes = 0;
	const struct tcache_bin *bins = tcache_bins(tc);
	for (unsigned c = 1; c <= NCLASSES; c++)
		bytes += (size_t)(bins[c].max - bins[c].room) * class_info[c].size;
	tc->bin_bytes = bytes;
	publish_runs(tc);
}

/* The exit key's destructor. Its argument may be a stale value left in a
 * reused thread descriptor: only the calling thread's own cache counts. */
static void tcache_thread_exit(void *unused)
{
	struct tcache *tc = &tc_self;
	for (unsigned i = 0; i < TCACHE_EXIT_HOOKS; i++) {   /* before the bins: they may fill them */
		void (*hook)(void) = __atomic_load_n(&tcache_exit_hooks[i], __ATOMIC_RELAXED);
		if (hook)
			hook();
	}
	if (tc->state == TC_LIVE) {
		tcache_flush(tc);
		struct tcache_bin *bins = tcache_bins(tc);
		for (unsigned c = 1; c <= NCLASSES; c++)
			bins[c].max = bins[c].room = 0;   /* later frees take the slow path */
		tc->run_max = tc->run_room = 0;      /* runs[] was emptied */
		lock_acquire(&registry_lock);
		record_put_locked(tc->rec);
		lock_release(&registry_lock);
		tc->rec = NULL;
	}
	tc->state = TC_DEAD;
}

void (*tcache_exit_hooks[TCACHE_EXIT_HOOKS])(void);

void tcache_global_init(void)
{
	slab_keys_init();
	pthread_key_create(&exit_key, tcache_thread_exit);
}

/* True when the calling thread is in glibc's last exit stage: its TSD teardown
 * is over and start_thread has blocked every signal but SIGSETXID with a raw
 * sigprocmask. SIGCANCEL (32) blocked is the mark: pthread_sigmask and
 * sigprocmask never block it for a program. (glibc's SIGEV_THREAD timer helper
 * runs with it blocked too, and so runs uncached.) */
static bool thread_in_final_exit(void)
{
	uint64_t mask = 0;
	if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &mask, sizeof mask) != 0)
		return false;
	return (mask >> (32 - 1)) & 1;
}

/* Debug builds: every bin holds max - room objects, each a free object (its
 * link checked by obj_next) in a slab page of the bin's class; every parked
 * run is a marked run head of its list's length, and they add up to
 * run_max - run_room. */
static void tcache_check(struct tcache *tc)
{
	if (!BSL_DEBUG)
		return;
	for (unsigned c = 1; c <= NCLASSES; c++) {
		const struct tcache_bin *b = &tcache_bins(tc)[c];
		int32_t n = 0;
		for (void *q = b->head; q; q = obj_next(q), n++) {
			const struct page_desc *d = arena_desc_of(q);
			VERIFY(d && d->kind == PD_SLAB && d->class_idx == c && n < b->max);
		}
		VERIFY(n == b->max - b->room);
	}
	size_t bytes = 0;
	for (size_t np = RUN_CACHE_MIN_PAGES; np <= RUN_CACHE_MAX_PAGES; np++)
		for (const struct page_desc *d = tc->runs[np]; d; d = d->next) {
			VERIFY(d->kind == PD_RUN && (d->flags & PDF_CACHED) && d->npages == np);
			bytes += np << PAGE_SHIFT;
		}
	VERIFY(bytes == tc->run_max - tc->run_room && tc->run_max <= RUN_CACHE_BYTES);
}

/* The growth of every live thread's bins together (bytes), at most
 * TCACHE_GROW_TOTAL: many threads do not each get a thread's budget. Atomic. */
static size_t grown_total;

/* Every bin back to its starting bound (the bins must be empty). */
static void bins_reset(struct tcache *tc)
{
	struct tcache_bin *bins = tcache_bins(tc);
	for (unsigned c = 1; c <= NCLASSES; c++)
		bins[c].max = bins[c].room = (int32_t)class_tcache_max[c];
	if (tc->grown_bytes)
		__atomic_sub_fetch(&grown_total, tc->grown_bytes, __ATOMIC_RELAXED);
	tc->grown_bytes = 0;
	tc->refilled = 0;
}

/* A bin that ran empty doubles its bound, within its cap, the thread's budget
 * and what is left of the total; so does one that overflows after it ran
 * empty (tcache_free_slow): its working set, a list built and freed whole, is
 * bigger than the bound. A bin that only overflows (a thread freeing what
 * others allocated) does not grow. */
static void bin_grow(struct tcache *tc, unsigned c)
{
	struct tcache_bin *b = &tcache_bins(tc)[c];
	int32_t add = b->max;
	if (b->max + add > (int32_t)class_tcache_cap[c])
		add = (int32_t)class_tcache_cap[c] - b->max;
	size_t bytes = (size_t)add * class_info[c].size;
	if (add <= 0 || tc->grown_bytes + bytes > TCACHE_GROW_BUDGET)
		return;
	if (__atomic_add_fetch(&grown_total, bytes, __ATOMIC_RELAXED) > TCACHE_GROW_TOTAL) {
		__atomic_sub_fetch(&grown_total, bytes, __ATOMIC_RELAXED);
		return;
	}
	b->max += add;
	b->room += add;
	tc->grown_bytes += bytes;
}

/* Count a slow-path call and move the cache along its lifecycle (tcache.h).
 * False while the calling thread should bypass its cache. */
static bool tcache_ready(struct tcache *tc)
{
	if (likely(tc->state == TC_LIVE))
		return true;
	if (tc->state == TC_DEAD)
		return false;
	if (tc->state == TC_NEW) {
		/* State first: pthread_setspecific may itself allocate. */
		tc->state = thread_in_final_exit() ? TC_DEAD : TC_WARM;
		if (tc->state == TC_DEAD)
			return false;
		pthread_setspecific(exit_key, tc);
	}
	if (++tc->warmup < TCACHE_WARMUP)
		return false;
	lock_acquire(&registry_lock);
	tc->rec = record_get_locked();
	lock_release(&registry_lock);
	if (!tc->rec) {
		tc->warmup = 0;   /* no memory for the record: try again later */
		return false;
	}
	bins_reset(tc);
	tc->run_max = tc->run_room = opt.tcache ? RUN_CACHE_BYTES : 0;   /* runs[] is empty */
	tc->state = TC_LIVE;
	return true;
}

bool tcache_thread_ready(void)
{
	return tcache_ready(&tc_self);
}

void *tcache_alloc_slow(unsigned c)
{
	struct tcache *tc = &tc_self;
	void *p;
	if (!tcache_ready(tc))
		return slab_alloc_bulk(c, &p, 1) ? p : NULL;
	bin_grow(tc, c);
	tc->refilled |= 1ull << c;
	struct tcache_bin *b = &tcache_bins(tc)[c];
	ASSERT(!b->head && b->room == b->max);     /* a refill comes when the bin is empty */
	unsigned got = slab_alloc_chain(c, (unsigned)(b->max + 1) / 2, &p);
	if (!got)
		return NULL;
	tc->slow_ms = os_now_ms();
	b->head = obj_next(p);
	b->room -= (int32_t)(got - 1);
	obj_mark_used(p);
	if ((++tc->nslow & 15) == 1)      /* the first after going live, then every 16th */
		publish(tc);
	if ((tc->nslow & 63) == 0)
		tcache_check(tc);
	return p;
}

/* Move n objects (at most those it holds) from bin b of class c to the
 * slabs; they have been unused since idle_ms (0: now). */
static void bin_flush(struct tcache_bin *b, unsigned c, unsigned n, uint64_t idle_ms)
{
	unsigned held = (unsigned)(b->max - b->room);
	if (n > held)
		n = held;
	if (!n)
		return;
	b->head = slab_free_chain(c, b->head, n, idle_ms);
	b->room += (int32_t)n;
}

void tcache_free_slow(void *p, unsigned c)
{
	struct tcache *tc = &tc_self;
	if (!tcache_ready(tc)) {
		slab_free_bulk(&p, 1);
		return;
	}
	struct tcache_bin *b = &tcache_bins(tc)[c];
	if (b->room > 0) {       /* another arena's object, or secure mode: no flush */
		tcache_push(b, p);
		return;
	}
	if (tc->refilled >> c & 1) {
		tc->refilled &= ~(1ull << c);
		bin_grow(tc, c);
	}
	if (b->room == 0)
		bin_flush(b, c, (unsigned)(b->max + 1) / 2, 0);
	tcache_push(b, p);
	tc->slow_ms = os_now_ms();
	if ((++tc->nslow & 15) == 1)      /* the first after going live, then every 16th */
		publish(tc);
	if ((tc->nslow & 63) == 0)
		tcache_check(tc);
}

void *tcache_run_take(size_t npages)
{
	struct tcache *tc = &tc_self;
	if (npages > RUN_CACHE_MAX_PAGES || !tc->runs[npages])
		return NULL;
	void *p = desc_addr(tc->runs[npages]);
	if (obj_next(p) != NULL)   /* the mark of tcache_run_park broken */
		obj_link_corrupt(p);
	p = tcache_run_take_live(npages);
	ASSERT(p);
	return p;
}

/* The first parked run of npages (the list is not empty), still marked
 * PDF_CACHED, for the buddy layer (its words are not checked: it is not
 * handed out). */
static struct page_desc *runs_pop(struct tcache *tc, size_t npages)
{
	struct page_desc *d = tc->runs[npages];
	tc->runs[npages] = d->next;
	tc->run_room += npages << PAGE_SHIFT;
	return d;
}

void tcache_run_publish(void)
{
	publish_runs(&tc_self);
}

/* The full park (tcache_run_park_live is its short path): the warm-up of a
 * cache that is not live yet, and the statistics every 64th park. */
bool tcache_run_park(struct page_desc *head)
{
	struct tcache *tc = &tc_self;
	size_t npages = head->npages, nbytes = npages << PAGE_SHIFT;
	if (npages < RUN_CACHE_MIN_PAGES || npages > RUN_CACHE_MAX_PAGES)
		return false;
	if (!opt.tcache)            /* tcache:0, memcheck */
		return false;
	if (tc->state != TC_LIVE) {      /* a thread of runs only warms up too */
		int saved_errno = errno;     /* free() leaves errno alone; the warm-up may map */
		bool ready = tcache_ready(tc);
		errno = saved_errno;
		if (!ready)
			return false;
	}
	if (nbytes > tc->run_room)
		return false;
	run_mark_parked(head);
	obj_set_next(desc_addr(head), NULL);
	head->next = tc->runs[npages];
	tc->runs[npages] = head;
	tc->run_room -= nbytes;
	if ((++tc->nrun_park & 63) == 0)
		publish_runs(tc);      /* a thread of runs only has no other slow path */
	return true;
}

/* Cached runs go back to the buddy layer; the counters saw their frees already. */
static void runs_flush(struct tcache *tc)
{
	for (size_t n = RUN_CACHE_MIN_PAGES; n <= RUN_CACHE_MAX_PAGES; n++)
		while (tc->runs[n])
			run_free_parked(runs_pop(tc, n));
}

static void bins_flush(struct tcache *tc, uint64_t idle_ms)
{
	struct tcache_bin *bins = tcache_bins(tc);
	for (unsigned c = 1; c <= NCLASSES; c++)
		bin_flush(&bins[c], c, (unsigned)(bins[c].max - bins[c].room), idle_ms);
	if (tc->state == TC_LIVE)
		bins_reset(tc);
	if (tc->rec)
		publish(tc);
}

void tcache_flush(struct tcache *tc)
{
	tcache_check(tc);
	runs_flush(tc);
	bins_flush(tc, 0);
}

/* The bins of a thread that went a tick interval (decay_ms/4) without a
 * slow path hold objects it has not needed since: they go back dated by
 * that last slow path, so that the decay can return the slabs they pinned
 * (objects freed in random order hold one slab each) in the same tick. */
void tcache_idle_return(uint64_t now)
{
	struct tcache *tc = &tc_self;
	if (tc->state != TC_LIVE || opt.decay_ms < 0 || !tc->slow_ms ||
	    now - tc->slow_ms <= (uint64_t)opt.decay_ms / 4)
		return;
	bins_flush(tc, tc->slow_ms);
	tc->slow_ms = 0;      /* nothing more to return until a slow path */
}

bool tcache_holds(const void *p, unsigned c)
{
	for (void *q = tcache_bins(&tc_self)[c].head; q; q = obj_next(q))
		if (q == p)
			return true;
	return false;
}

void tcache_totals(size_t *nbytes, size_t *ncaches, uint64_t *ntake, uint64_t *npark)
{
	size_t bytes = 0;
	*ncaches = 0;
	*ntake = *npark = 0;
	if (tc_self.state == TC_LIVE)
		publish(&tc_self);
	if (stats_in_signal) {   /* the interrupted code may hold the lock: do not wait */
		if (!lock_try(&registry_lock))
			goto out;
	} else {
		lock_acquire(&registry_lock);
	}
	*ntake = gone_take;
	*npark = gone_park;
	for (struct tcache_record *r = registry; r; r = r->next) {
		bytes += __atomic_load_n(&r->cached_bytes, __ATOMIC_RELAXED);
		*ntake += __atomic_load_n(&r->nrun_take, __ATOMIC_RELAXED);
		*npark += __atomic_load_n(&r->nrun_park, __ATOMIC_RELAXED);
	}
	*ncaches = nlive;
	lock_release(&registry_lock);
out:
	*nbytes = bytes;
}

void tcache_lock_all(void)
{
	lock_fork_acquire(&registry_lock);
}

void tcache_unlock_all(void)
{
	lock_fork_release(&registry_lock);
}

/* In the child only the forking thread lives: drop the other records (their
 * threads' cached objects stay allocated in the child). Our own record is
 * tc_self.rec even before the cache is live (a signal handler that forks may
 * have interrupted tcache_ready between taking the record and going live).
 * When the forking thread holds registry_lock itself (the handler interrupted
 * an update of the registry), the list is half-changed: leave it and the lock
 * to the interrupted code; in a single-threaded program there are no other
 * records to drop anyway. */
void tcache_after_fork_child(void)
{
	__atomic_store_n(&grown_total, tc_self.grown_bytes, __ATOMIC_RELAXED);   /* the others' went */
	if (lock_fork_skipped(&registry_lock))
		return;
	struct tcache_record *self = tc_self.rec;
	struct tcache_record *r = registry;
	while (r) {
		struct tcache_record *next = r->next;
		if (r != self)
			record_put_locked(r);
		r = next;
	}
	lock_fork_release(&registry_lock);
}
