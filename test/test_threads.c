/*
 * test_threads.c - buddyslab under many threads.
 *
 *  producer_consumer: 8 producer threads allocate blocks of random sizes (8 B ..
 *    256 KiB, skewed small), fill each with a cookie pattern derived from its address
 *    and size, and pass them through lock-protected queues to 8 consumer threads,
 *    which check every byte and free them (cross-thread frees), while an observer
 *    thread calls bsl_owns/bsl_stats/mallinfo2 on pointers being freed and keeps
 *    purging (bsl_purge, malloc_trim) while blocks are handed out. Afterwards
 *    bsl_stats().allocated and .nthreads are exactly what they were before.
 *  thread_churn: 2,000 short-lived threads in batches of 50; each allocates ~100
 *    blocks, frees them all; one in five also leaves 10 blocks behind when it exits,
 *    freed by a thread of the next batch; the observer thread reads the statistics
 *    (which walk every thread cache) and purges meanwhile. Afterwards allocated/
 *    nthreads are exactly back (thread exit must hand the thread cache back).
 *  key_destructors: pthread_key destructors (one key created before the thread's
 *    first malloc, one after) free the thread's blocks and allocate new ones after
 *    buddyslab's own per-thread teardown may have run; allocated/nthreads come back.
 *  key_destructor_last_round_first_malloc: a thread's first malloc happens in the
 *    last round of key destructors; its cache must still be handed back.
 *
 * Note on exactness: glibc callocs each new thread's DTV and keeps it with the cached
 * stack, so every case first runs a warm-up batch of the same width (small stacks,
 * so all fit in glibc's 40 MiB stack cache) before it takes its baseline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include "buddyslab.h"
#include "t.h"

#define STACK_SIZE (256 * 1024)

static const char *current_case = "?";
static void on_alarm(int sig)
{
	char msg[200];
	int n = snprintf(msg, sizeof msg, "FAIL %s (timed out: hang)\n", current_case);
	(void)sig;
	if (write(1, msg, (size_t)n) < 0) {}
	_exit(1);
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return *s = x;
}

/* 8 B .. 256 KiB, skewed small */
static size_t rand_size(uint64_t *s)
{
	uint64_t r = rng_next(s);
	unsigned pick = (unsigned)(r % 100);
	r >>= 8;
	if (pick < 75) return 8 + r % 249;               /* 8 .. 256 */
	if (pick < 92) return 257 + r % (4096 - 256);     /* .. 4 KiB */
	if (pick < 98) return 4097 + r % (65536 - 4096);  /* .. 64 KiB */
	return 65537 + r % (262144 - 65536);              /* .. 256 KiB */
}

/* Cookie pattern: derived from the block address and size. */
static uint64_t cookie_of(const void *p, size_t n)
{
	return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ (n * 0xC2B2AE3D27D4EB4Full) ^ 0x5bd1e995;
}
static void fill(void *p, size_t n)
{
	uint64_t c = cookie_of(p, n);
	uint64_t *w = p;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++) w[i] = c + i * 0x100000001B3ull;
	unsigned char *b = p;
	for (size_t i = nw * 8; i < n; i++) b[i] = (unsigned char)(c >> (i % 8 * 8)) ^ (unsigned char)i;
}
/* 1 when intact (c: the cookie it was filled with) */
static int verify_cookie(const void *p, size_t n, uint64_t c)
{
	const uint64_t *w = p;
	size_t nw = n / 8;
	for (size_t i = 0; i < nw; i++)
		if (w[i] != c + i * 0x100000001B3ull) {
			fprintf(stderr, "  block %p size %zu: word %zu corrupt (%#llx)\n", p, n, i, (unsigned long long)w[i]);
			return 0;
		}
	const unsigned char *b = p;
	for (size_t i = nw * 8; i < n; i++)
		if (b[i] != ((unsigned char)(c >> (i % 8 * 8)) ^ (unsigned char)i)) {
			fprintf(stderr, "  block %p size %zu: tail byte %zu corrupt\n", p, n, i);
			return 0;
		}
	return 1;
}
static int verify(const void *p, size_t n) { return verify_cookie(p, n, cookie_of(p, n)); }

static pthread_attr_t small_stack;

static int start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(t, &small_stack, fn, arg);
	if (rc) fprintf(stderr, "  pthread_create: %s\n", strerror(rc));
	return rc == 0;
}

static void *idle_thread(void *arg)
{
	void *p = malloc(100 + (size_t)(uintptr_t)arg);
	free(p);
	return NULL;
}

/* Run n threads that malloc+free once, so glibc's stack cache holds n stacks with
 * their DTVs before a baseline is taken. */
static void warm_up(int n)
{
	pthread_t t[64];
	for (int i = 0; i < n; i++) if (!start(&t[i], idle_thread, (void *)(uintptr_t)i)) t[i] = 0;
	for (int i = 0; i < n; i++) if (t[i]) pthread_join(t[i], NULL);
}

static int stats_back(const struct bsl_stats *before, const char *what)
{
	struct bsl_stats now;
	bsl_stats(&now);
	int ok = 1;
	if (now.allocated != before->allocated) {
		fprintf(stderr, "  %s: allocated %zu before, %zu after (diff %+lld)\n", what,
			before->allocated, now.allocated, (long long)now.allocated - (long long)before->allocated);
		ok = 0;
	}
	if (now.nthreads != before->nthreads) {
		fprintf(stderr, "  %s: nthreads %llu before, %llu after\n", what,
			(unsigned long long)before->nthreads, (unsigned long long)now.nthreads);
		ok = 0;
	}
	return ok;
}

/* ------------------------------------------------------------ producer / consumer */

#define NPROD 8
#define NCONS 8
#define PER_PRODUCER 32000
#define QCAP 512

struct item { void *p; size_t n; };
struct queue {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct item buf[QCAP];
	unsigned head, count;
};
static struct queue queues[NCONS];
static long corrupt_blocks, unowned_blocks, consumed;
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static void q_push(struct queue *q, struct item it)
{
	pthread_mutex_lock(&q->mu);
	while (q->count == QCAP) pthread_cond_wait(&q->not_full, &q->mu);
	q->buf[(q->head + q->count) % QCAP] = it;
	q->count++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
}
static struct item q_pop(struct queue *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->mu);
	struct item it = q->buf[q->head];
	q->head = (q->head + 1) % QCAP;
	q->count--;
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->mu);
	return it;
}

static long alloc_failures;

/* Pointers recently handed out, read racily by the observer thread. */
#define NRECENT 256
static void *recent[NRECENT];
static volatile int observer_stop;
static long observer_calls;

/* Calls the read-only API on pointers other threads are freeing (and unmapping)
 * right now: bsl_owns "never aborts, whatever p is", bsl_stats reads everything. */
static void *observer(void *arg)
{
	unsigned i = 0;
	long calls = 0;
	while (!__atomic_load_n(&observer_stop, __ATOMIC_RELAXED)) {
		void *p = __atomic_load_n(&recent[i++ % NRECENT], __ATOMIC_RELAXED);
		if (p) {
			(void)bsl_owns(p);
			(void)bsl_owns((char *)p + 16);
			(void)bsl_owns((char *)p + 4096);
		}
		if ((i & 63) == 0) {
			struct bsl_stats st;
			bsl_stats(&st);
			struct mallinfo2 mi = mallinfo2();
			(void)mi;
		}
		/* purging races with allocation: a page handed out meanwhile must not be
		 * given back (the consumers would see its contents vanish) */
		if ((i & 255) == 128) bsl_purge();
		if ((i & 1023) == 512) malloc_trim(0);
		calls++;
	}
	__atomic_store_n(&observer_calls, calls, __ATOMIC_RELAXED);
	return arg;
}

static void *producer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t s = 0x1234567ull * (id + 1) | 1;
	for (unsigned j = 0; j < PER_PRODUCER; j++) {
		size_t n = rand_size(&s);
		void *p = malloc(n);
		if (!p) { __atomic_add_fetch(&alloc_failures, 1, __ATOMIC_RELAXED); continue; }
		fill(p, n);
		__atomic_store_n(&recent[(id * 31 + j) % NRECENT], p, __ATOMIC_RELAXED);
		q_push(&queues[(id + j) % NCONS], (struct item){ p, n });
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct queue *q = &queues[(uintptr_t)arg];
	long bad = 0, notown = 0, n = 0;
	for (;;) {
		struct item it = q_pop(q);
		if (!it.p) break;
		if (!verify(it.p, it.n)) bad++;
		if ((n & 15) == 0 && bsl_owns(it.p) != 1) notown++;
		if ((n & 15) == 5) {
			/* realloc a block another thread allocated: grow, then shrink */
			uint64_t c = cookie_of(it.p, it.n);
			void *g = realloc(it.p, it.n * 2 + 1);
			if (!g) { bad++; continue; }
			if (!verify_cookie(g, it.n, c)) bad++;
			void *r = realloc(g, it.n / 2 + 1);
			if (!r) { free(g); bad++; continue; }
			if (!verify_cookie(r, it.n / 2 + 1 >= 8 ? (it.n / 2 + 1) / 8 * 8 : 0, c)) bad++;
			it.p = r;
		}
		/* the consumer allocates a little too, so its cache holds both kinds */
		if ((n & 7) == 0) { void *x = malloc(it.n / 2 + 1); if (x) { fill(x, it.n / 2 + 1); if (!verify(x, it.n / 2 + 1)) bad++; free(x); } }
		free(it.p);
		n++;
	}
	pthread_mutex_lock(&count_mu);
	corrupt_blocks += bad;
	unowned_blocks += notown;
	consumed += n;
	pthread_mutex_unlock(&count_mu);
	return NULL;
}

static void producer_consumer(void)
{
	current_case = "producer_consumer";
	for (int i = 0; i < NCONS; i++) {
		pthread_mutex_init(&queues[i].mu, NULL);
		pthread_cond_init(&queues[i].not_empty, NULL);
		pthread_cond_init(&queues[i].not_full, NULL);
	}
	warm_up(NPROD + NCONS + 1);     /* + the observer */
	struct bsl_stats before;
	bsl_stats(&before);

	pthread_t prod[NPROD], cons[NCONS], obs;
	int started = start(&obs, observer, NULL);
	for (int i = 0; i < NCONS; i++) started &= start(&cons[i], consumer, (void *)(uintptr_t)i);
	for (int i = 0; i < NPROD; i++) started &= start(&prod[i], producer, (void *)(uintptr_t)i);
	REQUIRE(started);
	for (int i = 0; i < NPROD; i++) pthread_join(prod[i], NULL);
	for (int i = 0; i < NCONS; i++) q_push(&queues[i], (struct item){ NULL, 0 });
	for (int i = 0; i < NCONS; i++) pthread_join(cons[i], NULL);
	__atomic_store_n(&observer_stop, 1, __ATOMIC_RELAXED);
	pthread_join(obs, NULL);

	CHECK(alloc_failures == 0);
	CHECK(observer_calls > 0);
	CHECK(consumed == (long)NPROD * PER_PRODUCER);
	CHECK(corrupt_blocks == 0);
	CHECK(unowned_blocks == 0);
	CHECK(stats_back(&before, "producer_consumer"));
}

/* ------------------------------------------------------------ 2,000 thread churn */

#define BATCH 50
#define NBATCH 40           /* 2,000 threads */
#define HOLD 10             /* blocks a "holder" thread leaves behind */

struct held { void *p[HOLD]; size_t n[HOLD]; };
static struct held handoff[2][BATCH];     /* [batch parity][thread] */
static long churn_bad;

struct churn_arg { int batch, idx; };
static struct churn_arg churn_args[BATCH];

static void free_held(struct held *h, long *bad)
{
	for (int k = 0; k < HOLD; k++)
		if (h->p[k]) {
			if (!verify(h->p[k], h->n[k])) (*bad)++;
			free(h->p[k]);
			h->p[k] = NULL;
		}
}

static void *churn_thread(void *arg)
{
	struct churn_arg *a = arg;
	uint64_t s = (uint64_t)(a->batch * 1000 + a->idx) * 0x9E3779B97F4A7C15ull | 1;
	long bad = 0;
	enum { N = 100 };
	void *p[N];
	size_t n[N];
	for (int i = 0; i < N; i++) {
		n[i] = rand_size(&s) / 2 + 1;
		if (i % 37 == 36) n[i] = 300000 + i;      /* a few large ones */
		p[i] = (i % 11 == 0) ? calloc(1, n[i]) : malloc(n[i]);
		if (!p[i]) { bad++; continue; }
		fill(p[i], n[i]);
	}
	/* free most, in a scrambled order */
	for (int i = 0; i < N; i++) {
		int j = (i * 37) % N;
		if (j % 5 == 4 || !p[j]) continue;
		if (!verify(p[j], n[j])) bad++;
		free(p[j]);
		p[j] = NULL;
	}
	/* blocks left behind by a holder of the previous batch: free them here */
	if (a->batch > 0) free_held(&handoff[(a->batch - 1) & 1][a->idx], &bad);
	/* one thread in five exits holding blocks */
	if (a->idx % 5 == 0) {
		struct held *h = &handoff[a->batch & 1][a->idx];
		for (int k = 0; k < HOLD; k++) {
			h->n[k] = 16 + (size_t)k * 1000 + (k == HOLD - 1 ? 200000 : 0);
			h->p[k] = malloc(h->n[k]);
			if (h->p[k]) fill(h->p[k], h->n[k]);
			else bad++;
		}
	}
	/* and the rest */
	for (int i = 0; i < N; i++)
		if (p[i]) {
			if (!verify(p[i], n[i])) bad++;
			free(p[i]);
		}
	if (bad) __atomic_add_fetch(&churn_bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void thread_churn(void)
{
	current_case = "thread_churn";
	warm_up(BATCH + 1);      /* + the observer */
	struct bsl_stats before;
	bsl_stats(&before);
	/* the observer walks the thread caches (bsl_stats) while threads come and go */
	pthread_t obs;
	__atomic_store_n(&observer_stop, 0, __ATOMIC_RELAXED);
	REQUIRE(start(&obs, observer, NULL));
	pthread_t t[BATCH];
	int failed_create = 0;
	for (int b = 0; b < NBATCH; b++) {
		for (int i = 0; i < BATCH; i++) {
			churn_args[i] = (struct churn_arg){ b, i };
			if (!start(&t[i], churn_thread, &churn_args[i])) { t[i] = 0; failed_create++; }
		}
		for (int i = 0; i < BATCH; i++) if (t[i]) pthread_join(t[i], NULL);
	}
	__atomic_store_n(&observer_stop, 1, __ATOMIC_RELAXED);
	pthread_join(obs, NULL);
	/* the last batch's leftovers, freed by the main thread */
	for (int i = 0; i < BATCH; i++) free_held(&handoff[(NBATCH - 1) & 1][i], &churn_bad);
	CHECK(failed_create == 0);
	CHECK(churn_bad == 0);
	CHECK(stats_back(&before, "thread_churn"));
}

/* ------------------------------------------------------------ key destructors */

static pthread_key_t early_key, late_key;
static int early_key_ok;
static pthread_once_t late_once = PTHREAD_ONCE_INIT;
static int late_key_ok;
static long dtor_runs_early, dtor_runs_late, dtor_bad;
#define MAX_KEPT 256
static void *dtor_kept[MAX_KEPT];
static size_t dtor_kept_n[MAX_KEPT];
static int dtor_nkept;
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;

struct keyval { void *blk; size_t n; int round; };

static void dtor_common(void *v, pthread_key_t key, long *runs)
{
	struct keyval *kv = v;
	__atomic_add_fetch(runs, 1, __ATOMIC_RELAXED);
	if (!verify(kv->blk, kv->n)) __atomic_add_fetch(&dtor_bad, 1, __ATOMIC_RELAXED);
	free(kv->blk);
	/* allocate and free across all tiers */
	static const size_t sz[] = { 8, 48, 100, 1000, 5000, 20000, 100000, 300000 };
	void *tmp[8];
	for (int i = 0; i < 8; i++) {
		tmp[i] = malloc(sz[i]);
		if (!tmp[i]) { __atomic_add_fetch(&dtor_bad, 1, __ATOMIC_RELAXED); continue; }
		fill(tmp[i], sz[i]);
	}
	for (int i = 0; i < 8; i++) if (tmp[i]) { if (!verify(tmp[i], sz[i])) dtor_bad++; free(tmp[i]); }
	/* keep one block alive past thread exit; main frees it */
	size_t kn = 64 + (size_t)kv->round * 4000;
	void *k = malloc(kn);
	if (k) fill(k, kn);
	pthread_mutex_lock(&kept_mu);
	if (k && dtor_nkept < MAX_KEPT) { dtor_kept[dtor_nkept] = k; dtor_kept_n[dtor_nkept++] = kn; k = NULL; }
	pthread_mutex_unlock(&kept_mu);
	free(k);
	/* first round: set the key again so glibc calls us once more (next round) */
	if (kv->round == 0) {
		struct keyval *nv = malloc(sizeof *nv);
		if (!nv) { free(kv); dtor_bad++; return; }
		nv->round = 1;
		nv->n = 777;
		nv->blk = malloc(nv->n);
		if (!nv->blk) { free(nv); free(kv); dtor_bad++; return; }
		fill(nv->blk, nv->n);
		pthread_setspecific(key, nv);
	}
	free(kv);
}
static void early_dtor(void *v) { dtor_common(v, early_key, &dtor_runs_early); }
static void late_dtor(void *v) { dtor_common(v, late_key, &dtor_runs_late); }

/* As early as a constructor can: before main's first malloc at least. */
__attribute__((constructor(101))) static void make_early_key(void)
{
	early_key_ok = pthread_key_create(&early_key, early_dtor) == 0;
}
static void make_late_key(void)
{
	late_key_ok = pthread_key_create(&late_key, late_dtor) == 0;
}

static struct keyval *new_keyval(size_t n)
{
	struct keyval *kv = malloc(sizeof *kv);
	if (!kv) return NULL;
	kv->round = 0;
	kv->n = n;
	kv->blk = malloc(n);
	if (!kv->blk) { free(kv); return NULL; }
	fill(kv->blk, n);
	return kv;
}

static void *key_thread(void *arg)
{
	/* the first malloc of this thread, then the late key */
	void *first = malloc(100);
	pthread_once(&late_once, make_late_key);
	/* warm the thread cache */
	void *v[200];
	for (int i = 0; i < 200; i++) v[i] = malloc(16 + i * 8);
	for (int i = 0; i < 200; i++) free(v[i]);
	if (early_key_ok) pthread_setspecific(early_key, new_keyval(1000 + (size_t)(uintptr_t)arg));
	if (late_key_ok) pthread_setspecific(late_key, new_keyval(50000 + (size_t)(uintptr_t)arg));
	free(first);
	/* some blocks left in the thread cache at exit */
	for (int i = 0; i < 50; i++) free(malloc(32 + i));
	return NULL;
}

static void key_destructors(void)
{
	current_case = "key_destructors";
	REQUIRE(early_key_ok);
	warm_up(4);
	struct bsl_stats before;
	bsl_stats(&before);
	enum { NT = 16 };
	for (int i = 0; i < NT; i++) {
		pthread_t t;
		REQUIRE(start(&t, key_thread, (void *)(uintptr_t)i));
		pthread_join(t, NULL);
	}
	/* a few concurrently too */
	pthread_t t[4];
	for (int i = 0; i < 4; i++) REQUIRE(start(&t[i], key_thread, (void *)(uintptr_t)(100 + i)));
	for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
	REQUIRE(late_key_ok);
	CHECK(dtor_runs_early == 2 * (NT + 4));
	CHECK(dtor_runs_late == 2 * (NT + 4));
	CHECK(dtor_nkept == 4 * (NT + 4));
	for (int i = 0; i < dtor_nkept; i++) {
		if (!verify(dtor_kept[i], dtor_kept_n[i])) dtor_bad++;
		CHECK(bsl_owns(dtor_kept[i]) == 1);
		free(dtor_kept[i]);
	}
	CHECK(dtor_bad == 0);
	CHECK(stats_back(&before, "key_destructors"));
}

/* A thread that never allocated sets a key whose destructor re-arms itself until
 * glibc's last destructor round (PTHREAD_DESTRUCTOR_ITERATIONS = 4), and only then
 * makes the thread's first malloc/free. No later round follows, so a cache set up
 * there must still be handed back (glibc's own tcache is, by __libc_thread_freeres);
 * nthreads and allocated must come back. */
static pthread_key_t lr_key;
static int lr_key_ok;
static void *lr_kept[64];
static int lr_nkept, lr_rounds_seen;

static void lr_dtor(void *v)
{
	int round = (int)(intptr_t)v;
	__atomic_add_fetch(&lr_rounds_seen, 1, __ATOMIC_RELAXED);
	if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
		pthread_setspecific(lr_key, (void *)(intptr_t)(round + 1));
		return;
	}
	/* the last round: the first allocations of this thread */
	void *p = malloc(100);
	if (p) { memset(p, 1, 100); free(p); }
	void *q = malloc(200);
	if (q) fill(q, 200);
	pthread_mutex_lock(&kept_mu);
	if (lr_nkept < 64) lr_kept[lr_nkept++] = q;
	else free(q);
	pthread_mutex_unlock(&kept_mu);
}

static void *lr_thread(void *arg)
{
	pthread_setspecific(lr_key, (void *)(intptr_t)1);   /* not a heap pointer */
	return arg;
}

static void key_destructor_last_round_first_malloc(void)
{
	current_case = "key_destructor_last_round_first_malloc";
	if (!lr_key_ok) lr_key_ok = pthread_key_create(&lr_key, lr_dtor) == 0;
	REQUIRE(lr_key_ok);
	warm_up(4);
	struct bsl_stats before;
	bsl_stats(&before);
	enum { NT = 8 };
	for (int i = 0; i < NT; i++) {
		pthread_t t;
		REQUIRE(start(&t, lr_thread, NULL));
		pthread_join(t, NULL);
	}
	CHECK(lr_rounds_seen == NT * PTHREAD_DESTRUCTOR_ITERATIONS);
	CHECK(lr_nkept == NT);
	for (int i = 0; i < lr_nkept; i++) {
		CHECK(lr_kept[i] && verify(lr_kept[i], 200));
		free(lr_kept[i]);
	}
	CHECK(stats_back(&before, "key_destructor_last_round_first_malloc"));
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	pthread_attr_init(&small_stack);
	pthread_attr_setstacksize(&small_stack, STACK_SIZE);
	alarm(120);
	T_RUN(producer_consumer);
	alarm(120);
	T_RUN(thread_churn);
	alarm(30);
	T_RUN(key_destructors);
	alarm(30);
	T_RUN(key_destructor_last_round_first_malloc);
	alarm(0);
	return t_done();
}
