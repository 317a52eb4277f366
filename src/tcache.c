/*
 * tcache.c - slow paths of the thread cache: refill, flush, set-up, teardown.
 *
 * Refill takes half a bin's bound from the slabs in one locked call; a full
 * bin sends half of its objects back in one call. A pthread key's destructor
 * returns the whole cache when the thread exits.
 * Lock: registry_lock protects the list of live caches (for statistics); it
 * is taken only at thread start and exit and by readers of statistics.
 */
#include "tcache.h"
#include "slab.h"

__thread struct tcache tc_self __attribute__((tls_model("initial-exec")));

static lock_t registry_lock = LOCK_INIT;
static struct tcache *registry;
static pthread_key_t exit_key;

#define BATCH_MAX 128

static void tcache_thread_exit(void *arg)
{
	struct tcache *tc = arg;
	tcache_flush(tc);
	for (unsigned c = 1; c <= NCLASSES; c++)
		tc->bins[c].max = tc->bins[c].room = 0;   /* later frees take the slow path */
	lock_acquire(&registry_lock);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		registry = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	lock_release(&registry_lock);
	tc->state = TC_DEAD;
}

void tcache_global_init(void)
{
	pthread_key_create(&exit_key, tcache_thread_exit);
}

static void tcache_start(struct tcache *tc)
{
	for (unsigned c = 1; c <= NCLASSES; c++)
		tc->bins[c].max = tc->bins[c].room = class_tcache_max[c];
	lock_acquire(&registry_lock);
	tc->prev = NULL;
	tc->next = registry;
	if (registry)
		registry->prev = tc;
	registry = tc;
	lock_release(&registry_lock);
	tc->state = TC_LIVE;
	pthread_setspecific(exit_key, tc);
}

void *tcache_alloc_slow(unsigned c)
{
	struct tcache *tc = &tc_self;
	if (tc->state == TC_NEW)
		tcache_start(tc);
	void *objs[BATCH_MAX];
	unsigned want = tc->state == TC_LIVE ? (tc->bins[c].max + 1) / 2 : 1;
	unsigned got = slab_alloc_bulk(c, objs, want);
	if (!got)
		return NULL;
	struct tcache_bin *b = &tc->bins[c];
	for (unsigned i = 1; i < got; i++) {
		*(void **)objs[i] = b->head;
		b->head = objs[i];
	}
	b->room -= got - 1;
	return objs[0];
}

/* Move n objects from bin b to the slabs. */
static void bin_flush(struct tcache_bin *b, unsigned n)
{
	void *objs[BATCH_MAX];
	while (n) {
		unsigned k = 0;
		while (k < n && k < BATCH_MAX && b->head) {
			objs[k++] = b->head;
			b->head = *(void **)b->head;
		}
		if (!k)
			break;
		b->room += k;
		n -= k;
		slab_free_bulk(objs, k);
	}
}

void tcache_free_slow(void *p, unsigned c)
{
	struct tcache *tc = &tc_self;
	if (tc->state == TC_NEW)
		tcache_start(tc);
	if (tc->state == TC_DEAD) {
		slab_free_bulk(&p, 1);
		return;
	}
	struct tcache_bin *b = &tc->bins[c];
	if (b->room == 0)
		bin_flush(b, (b->max + 1) / 2);
	tcache_push(b, p);
}

void tcache_flush(struct tcache *tc)
{
	for (unsigned c = 1; c <= NCLASSES; c++)
		bin_flush(&tc->bins[c], tc->bins[c].max - tc->bins[c].room);
}

bool tcache_holds(const void *p, unsigned c)
{
	for (void *q = tc_self.bins[c].head; q; q = *(void **)q)
		if (q == p)
			return true;
	return false;
}

void tcache_totals(size_t *nbytes, size_t *ncaches)
{
	size_t bytes = 0, n = 0;
	lock_acquire(&registry_lock);
	for (struct tcache *tc = registry; tc; tc = tc->next, n++)
		for (unsigned c = 1; c <= NCLASSES; c++)
			bytes += (size_t)(__atomic_load_n(&tc->bins[c].max, __ATOMIC_RELAXED) -
					  __atomic_load_n(&tc->bins[c].room, __ATOMIC_RELAXED)) *
				 class_info[c].size;
	lock_release(&registry_lock);
	*nbytes = bytes;
	*ncaches = n;
}

void tcache_lock_all(void)
{
	lock_acquire(&registry_lock);
}

void tcache_unlock_all(void)
{
	lock_release(&registry_lock);
}

/* In the child only the forking thread lives: forget the other caches (their
 * objects stay allocated in the child; the threads that owned them are gone). */
void tcache_after_fork_child(void)
{
	struct tcache *self = &tc_self;
	bool live = self->state == TC_LIVE;
	registry = NULL;
	if (live) {
		self->next = self->prev = NULL;
		registry = self;
	}
	lock_init(&registry_lock);
}
