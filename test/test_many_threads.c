/*
 * test_many_threads.c - 100,000 threads that each allocate and exit: bytes in
 * use, live thread caches, mapped/resident bytes and RSS stay bounded (issue 4).
 *
 *  hundred_thousand_threads: 100,000 threads in batches of BATCH, each joined.
 *    A thread warms its cache (more than TCACHE_WARMUP = 32 slow calls), fills
 *    the bins of three size classes past their bound (class_tcache_max + 2
 *    objects, so a bin fills and flushes), stops at a census (the main thread
 *    reads bsl_stats while every thread of the batch is alive: nthreads is the
 *    baseline plus the batch's cache-owning threads, never more), then takes a
 *    page run (twice, so the second comes from its run cache), sometimes a
 *    large block, frees blocks other threads left on a global FIFO (their owner
 *    may have exited: late, remote frees) and leaves some of its own there, and
 *    exits with objects and a run still parked in its cache. One thread in ten
 *    makes fewer than 32 calls and never gets a cache. Every block carries a
 *    cookie (head, tail, one byte per page) checked before it is freed.
 *    After each 10,000 threads the main thread drains the FIFO and checks that
 *    bsl_stats().allocated is back within ALLOC_SLACK of the baseline and
 *    nthreads exactly back; after every batch that mapped, resident and VmRSS
 *    stay under baseline + BOUND (and VmHWM, reset when the kernel lets us, at
 *    the end), and that after malloc_trim, resident and VmRSS at 100,000
 *    threads are within HALF_SLACK of what they were at 50,000 (no growth
 *    with the number of threads). Figures are printed as "info:" lines on stderr.
 *  exit_while_freed: 20,000 threads, at most WINDOW alive (thread i is joined
 *    before thread i + WINDOW starts); each allocates across the tiers, frees
 *    half into its own cache and hands the other half to two reaper threads
 *    through a bounded queue, then exits at once: its cache is flushed into
 *    the same slabs while the reapers free its other objects. Afterwards
 *    allocated and nthreads are back and the memory figures stay bounded.
 *
 * No timing is asserted. glibc keeps a calloc'd DTV with each cached stack, so
 * the baseline is taken after warm-up threads of the same width (small stacks:
 * all fit in glibc's stack cache) have come and gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buddyslab.h"
#include "sizeclass.h"      /* class_tcache_max: the bin bounds to fill */
#include "t.h"

#define STACK_SIZE   (64 * 1024)
#define NTHREADS     100000
#define BATCH        100                     /* threads alive at once */
#define CHECKPOINT   10000                   /* threads between full checks */
#define MIB          ((size_t)1 << 20)
#define BOUND        (64 * MIB)              /* growth allowed over the baseline */
#define ALLOC_SLACK  ((size_t)64 * 1024)     /* allocated vs baseline at checkpoints */
#define HALF_SLACK   (8 * MIB)               /* trimmed, the second half over the first */

static const char *current_case = "?";
static void on_alarm(int sig)
{
	char msg[200];
	int n = snprintf(msg, sizeof msg, "FAIL %s (timed out: hang)\n", current_case);
	(void)sig;
	if (write(1, msg, (size_t)n) < 0) {}
	_exit(1);
}

static pthread_attr_t small_stack;

static int start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(t, &small_stack, fn, arg);
	if (rc) fprintf(stderr, "  pthread_create: %s\n", strerror(rc));
	return rc == 0;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return *s = x;
}

/* ------------------------------------------------------------ cookies */

#define PAGE 4096
static uint64_t cookie_of(const void *p, size_t n)
{
	return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ (n * 0xC2B2AE3D27D4EB4Full) ^ 0x5bd1e995;
}
/* n >= 16: the first and last 8 bytes, and one byte in every page between. */
static void touch(void *p, size_t n)
{
	uint64_t c = cookie_of(p, n);
	unsigned char *b = p;
	memcpy(b, &c, 8);
	for (size_t off = PAGE; off + 8 < n; off += PAGE) b[off] = (unsigned char)(c >> 8) ^ (unsigned char)(off >> 12);
	uint64_t t = ~c;
	memcpy(b + n - 8, &t, 8);
}
static int intact(const void *p, size_t n)
{
	uint64_t c = cookie_of(p, n), h, t;
	const unsigned char *b = p;
	memcpy(&h, b, 8);
	memcpy(&t, b + n - 8, 8);
	int ok = h == c && t == ~c;
	for (size_t off = PAGE; ok && off + 8 < n; off += PAGE)
		ok = b[off] == ((unsigned char)(c >> 8) ^ (unsigned char)(off >> 12));
	if (!ok) fprintf(stderr, "  block %p size %zu: cookie damaged\n", p, n);
	return ok;
}
/* Free after checking; counts damage in *bad. */
static void check_free(void *p, size_t n, long *bad)
{
	if (!intact(p, n)) (*bad)++;
	free(p);
}

/* ------------------------------------------------------------ memory figures */

/* VmRSS or VmHWM of this process, bytes (0 when unreadable). */
static size_t proc_status_kb(const char *key)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0) return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) return 0;
	buf[n] = 0;
	char *l = strstr(buf, key);
	return l ? strtoull(l + strlen(key) + 1, NULL, 10) * 1024 : 0;
}
static size_t rss(void) { return proc_status_kb("VmRSS"); }
static size_t hwm(void) { return proc_status_kb("VmHWM"); }
/* Reset VmHWM to the current RSS (Linux >= 4.0); 0 when not allowed. */
static int reset_hwm(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd < 0) return 0;
	int ok = write(fd, "5", 1) == 1;
	close(fd);
	return ok;
}

struct figures { size_t mapped, resident, rss; };
struct peaks { struct figures max; int over; };

/* Sample now; count (and describe once) any figure above base + BOUND. */
static void sample(struct peaks *pk, const struct figures *base, const char *where, long nthreads_done)
{
	struct bsl_stats st;
	bsl_stats(&st);
	struct figures f = { st.mapped, st.resident, rss() };
	if (f.mapped > pk->max.mapped) pk->max.mapped = f.mapped;
	if (f.resident > pk->max.resident) pk->max.resident = f.resident;
	if (f.rss > pk->max.rss) pk->max.rss = f.rss;
	if (f.mapped > base->mapped + BOUND || f.resident > base->resident + BOUND ||
	    f.rss > base->rss + BOUND) {
		if (!pk->over++)
			fprintf(stderr, "  %s after %ld threads: mapped %zu resident %zu rss %zu; "
				"baseline + %zu MiB allows %zu / %zu / %zu\n", where, nthreads_done,
				f.mapped, f.resident, f.rss, BOUND / MIB, base->mapped + BOUND,
				base->resident + BOUND, base->rss + BOUND);
	}
}

static struct figures figures_now(void)
{
	struct bsl_stats st;
	bsl_stats(&st);
	return (struct figures){ st.mapped, st.resident, rss() };
}

static double mib(size_t n) { return (double)n / (double)MIB; }

/* ------------------------------------------------------------ warm-up */

static void *idle_thread(void *arg)
{
	void *p = malloc(100 + (size_t)(uintptr_t)arg);
	free(p);
	return NULL;
}

/* n threads at once that malloc+free once, so glibc's stack cache holds n
 * stacks with their DTVs before a baseline is taken. */
static void warm_up(int n)
{
	pthread_t t[BATCH + 8];
	for (int i = 0; i < n; i++) if (!start(&t[i], idle_thread, (void *)(uintptr_t)i)) t[i] = 0;
	for (int i = 0; i < n; i++) if (t[i]) pthread_join(t[i], NULL);
}

/* ------------------------------------------------------------ the global FIFO */

struct hand { void *p; size_t n; };
#define FIFO_CAP 4096
static struct hand fifo[FIFO_CAP];
static unsigned fifo_head, fifo_count;
static long fifo_overflow;
static pthread_mutex_t fifo_mu = PTHREAD_MUTEX_INITIALIZER;

static void fifo_put(void *p, size_t n, long *bad)
{
	pthread_mutex_lock(&fifo_mu);
	if (fifo_count < FIFO_CAP) {
		fifo[(fifo_head + fifo_count++) % FIFO_CAP] = (struct hand){ p, n };
		p = NULL;
	} else {
		fifo_overflow++;
	}
	pthread_mutex_unlock(&fifo_mu);
	if (p) check_free(p, n, bad);
}
static int fifo_take(struct hand *h)
{
	pthread_mutex_lock(&fifo_mu);
	int ok = fifo_count > 0;
	if (ok) {
		*h = fifo[fifo_head];
		fifo_head = (fifo_head + 1) % FIFO_CAP;
		fifo_count--;
	}
	pthread_mutex_unlock(&fifo_mu);
	return ok;
}
static long fifo_drain(void)
{
	long bad = 0;
	struct hand h;
	while (fifo_take(&h)) check_free(h.p, h.n, &bad);
	return bad;
}

/* ------------------------------------------------------------ census gate */

/* Every thread of a batch stops here until the main thread has read the
 * statistics with the whole batch alive. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER, gate_arrived = PTHREAD_COND_INITIALIZER;
static int gate_count;
static unsigned gate_gen;

static void gate_wait(void)
{
	pthread_mutex_lock(&gate_mu);
	unsigned g = gate_gen;
	gate_count++;
	pthread_cond_signal(&gate_arrived);
	while (gate_gen == g) pthread_cond_wait(&gate_open, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}
/* Main: wait for n threads at the gate. */
static void gate_collect(int n)
{
	pthread_mutex_lock(&gate_mu);
	while (gate_count < n) pthread_cond_wait(&gate_arrived, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}
static void gate_release(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_count = 0;
	gate_gen++;
	pthread_cond_broadcast(&gate_open);
	pthread_mutex_unlock(&gate_mu);
}

/* ------------------------------------------------------------ 100,000 threads */

static const size_t fill_sizes[] = { 16, 64, 256, 1024, 4096, 16384 };
#define NFILL (sizeof fill_sizes / sizeof fill_sizes[0])
#define FILL_MAX (256 + 2)
static long many_bad;

static int is_light(unsigned id) { return id % 10 == 9; }

/* A thread that makes fewer than TCACHE_WARMUP slow calls: no cache ever. */
static void light_thread(unsigned id, long *bad)
{
	void *p[8];
	size_t n[8];
	for (int i = 0; i < 8; i++) {
		n[i] = 24 + (size_t)i * 40 + id % 7;
		p[i] = malloc(n[i]);
		if (!p[i]) { (*bad)++; continue; }
		touch(p[i], n[i]);
	}
	gate_wait();
	struct hand h;
	if (fifo_take(&h)) check_free(h.p, h.n, bad);
	if (p[0]) fifo_put(p[0], n[0], bad);
	for (int i = 1; i < 8; i++) if (p[i]) check_free(p[i], n[i], bad);
}

static void *many_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t s = ((uint64_t)id + 1) * 0x9E3779B97F4A7C15ull | 1;
	long bad = 0;
	if (is_light(id)) {
		light_thread(id, &bad);
		goto out;
	}
	/* warm-up: 40 small blocks of mixed sizes, kept while the bins fill */
	enum { NWARM = 40 };
	void *w[NWARM];
	size_t wn[NWARM];
	for (int i = 0; i < NWARM; i++) {
		wn[i] = 16 + rng_next(&s) % 1000;
		w[i] = malloc(wn[i]);
		if (!w[i]) { bad++; continue; }
		touch(w[i], wn[i]);
	}
	/* fill the bins of three classes past their bound: allocate max + 2, free all */
	void *f[FILL_MAX];
	for (unsigned k = 0; k < 3; k++) {
		size_t sz = fill_sizes[(id + k * 2) % NFILL];
		unsigned cnt = class_tcache_max[size_to_class(sz)] + 2;
		if (cnt > FILL_MAX) cnt = FILL_MAX;
		for (unsigned i = 0; i < cnt; i++) {
			f[i] = malloc(sz);
			if (f[i]) touch(f[i], sz);
			else bad++;
		}
		for (unsigned i = cnt; i-- > 0;) if (f[i]) check_free(f[i], sz, &bad);
	}
	gate_wait();
	/* a page run, freed into the run cache, taken back from it, freed again
	 * (so the thread usually exits with it parked) */
	size_t rn = 16384 + 1 + rng_next(&s) % (128 * 1024 - 16384);
	for (int i = 0; i < 2; i++) {
		void *r = malloc(rn);
		if (!r) { bad++; break; }
		touch(r, rn);
		if (i == 1 && id % 4 == 0) fifo_put(r, rn, &bad);    /* or someone else frees it */
		else check_free(r, rn, &bad);
	}
	/* sometimes a large block */
	if (id % 16 == 0) {
		size_t ln = 128 * 1024 + 1 + rng_next(&s) % (384 * 1024);
		void *l = malloc(ln);
		if (!l) bad++;
		else {
			touch(l, ln);
			if (id % 64 == 0) fifo_put(l, ln, &bad);
			else check_free(l, ln, &bad);
		}
	}
	/* remote frees of blocks earlier threads left (their owners may be gone) */
	struct hand h;
	for (int i = 0; i < 3 && fifo_take(&h); i++) check_free(h.p, h.n, &bad);
	/* leave two warm-up blocks for a later thread, free the rest */
	if (w[0]) fifo_put(w[0], wn[0], &bad);
	if (w[1]) fifo_put(w[1], wn[1], &bad);
	for (int i = 2; i < NWARM; i++) if (w[i]) check_free(w[i], wn[i], &bad);
	/* exit with objects in the bins: these sit in the cache, not in the slabs */
	for (int i = 0; i < 8; i++) free(malloc(32 + (size_t)i * 48));
out:
	if (bad) __atomic_add_fetch(&many_bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void hundred_thousand_threads(void)
{
	current_case = "hundred_thousand_threads";
	warm_up(BATCH);
	fifo_drain();
	bsl_purge();
	struct bsl_stats base;
	bsl_stats(&base);
	struct figures b = { base.mapped, base.resident, rss() };
	int hwm_reset = reset_hwm();
	fprintf(stderr, "info: baseline: allocated %zu nthreads %llu mapped %.1f MiB resident %.1f MiB "
		"VmRSS %.1f MiB (VmHWM reset: %s)\n", base.allocated, (unsigned long long)base.nthreads,
		mib(b.mapped), mib(b.resident), mib(b.rss), hwm_reset ? "yes" : "no");

	struct peaks pk = { b, 0 };
	pthread_t t[BATCH];
	long created = 0, failed_create = 0, census_bad = 0, census_no_cache = 0;
	uint64_t census_max = 0;
	long alloc_off = 0, nthreads_off = 0;
	size_t first_cp_rss = 0, first_cp_resident = 0, last_rss = 0, last_resident = 0;
	/* after malloc_trim at the half and at the end: what the threads left behind
	 * (free pages and cached large mappings, bounded by settings, are gone) */
	size_t half_resident = 0, half_rss = 0, end_resident = 0, end_rss = 0;
	for (long done = 0; done < NTHREADS; done += BATCH) {
		int n = 0, heavy = 0;
		for (int i = 0; i < BATCH; i++) {
			unsigned id = (unsigned)(done + i);
			if (start(&t[n], many_thread, (void *)(uintptr_t)id)) {
				n++;
				heavy += !is_light(id);
			} else {
				failed_create++;
			}
		}
		created += n;
		/* the whole batch is alive, each heavy thread with a live cache */
		gate_collect(n);
		struct bsl_stats st;
		bsl_stats(&st);
		if (st.nthreads > census_max) census_max = st.nthreads;
		if (st.nthreads != base.nthreads + (uint64_t)heavy) {
			if (!census_bad++)
				fprintf(stderr, "  census after %ld threads: nthreads %llu, expected %llu + %d\n",
					done, (unsigned long long)st.nthreads,
					(unsigned long long)base.nthreads, heavy);
		}
		if (st.tcache == 0) census_no_cache++;
		gate_release();
		for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
		sample(&pk, &b, "batch", done + BATCH);

		if ((done + BATCH) % CHECKPOINT == 0) {
			long bad = fifo_drain();
			if (bad) __atomic_add_fetch(&many_bad, bad, __ATOMIC_RELAXED);
			bsl_stats(&st);
			size_t r = rss();
			long long d = (long long)st.allocated - (long long)base.allocated;
			fprintf(stderr, "info: %6ld threads: allocated %+lld B vs baseline, nthreads %llu "
				"(census max %llu), mapped %.1f MiB, resident %.1f MiB, VmRSS %.1f MiB, "
				"tcache %zu B\n", done + BATCH, d, (unsigned long long)st.nthreads,
				(unsigned long long)census_max, mib(st.mapped), mib(st.resident), mib(r), st.tcache);
			if ((d < 0 ? -d : d) > (long long)ALLOC_SLACK) alloc_off++;
			if (st.nthreads != base.nthreads) nthreads_off++;
			if (alloc_off || nthreads_off || pk.over || census_bad) {
				fprintf(stderr, "  stopping after %ld threads\n", done + BATCH);
				break;     /* a leak would only grow from here */
			}
			if (!first_cp_rss) { first_cp_rss = r; first_cp_resident = st.resident; }
			last_rss = r;
			last_resident = st.resident;
			if (done + BATCH == NTHREADS / 2 || done + BATCH == NTHREADS) {
				malloc_trim(0);
				bsl_stats(&st);
				size_t *res = done + BATCH == NTHREADS ? &end_resident : &half_resident;
				size_t *rs = done + BATCH == NTHREADS ? &end_rss : &half_rss;
				*res = st.resident;
				*rs = rss();
			}
		}
	}
	size_t peak_hwm = hwm();
	fprintf(stderr, "info: peaks over the run: mapped %.1f MiB, resident %.1f MiB, VmRSS %.1f MiB "
		"(sampled per batch), VmHWM %.1f MiB; allowed baseline + %zu MiB\n",
		mib(pk.max.mapped), mib(pk.max.resident), mib(pk.max.rss), mib(peak_hwm), BOUND / MIB);
	fprintf(stderr, "info: from the first checkpoint to the last: VmRSS %+.1f MiB, resident %+.1f MiB; "
		"FIFO overflows %ld\n", (mib(last_rss) - mib(first_cp_rss)),
		(mib(last_resident) - mib(first_cp_resident)), fifo_overflow);
	CHECK(failed_create == 0);
	CHECK(created == NTHREADS);   /* also false when stopped early */
	CHECK(many_bad == 0);
	CHECK(census_bad == 0);
	CHECK(census_no_cache == 0);
	CHECK(census_max <= base.nthreads + BATCH);
	CHECK(alloc_off == 0);
	CHECK(nthreads_off == 0);
	CHECK(pk.over == 0);
	if (hwm_reset) CHECK(peak_hwm <= b.rss + BOUND);
	/* no growth with the number of threads: after a trim, what is left at
	 * 100,000 threads is what was left at 50,000 (HALF_SLACK is about 170 bytes
	 * per thread of the second half). Peaks between trims are not compared:
	 * the large-mapping cache (up to large_cache, 64 MiB) fills at its own pace. */
	fprintf(stderr, "info: after malloc_trim: resident %.1f MiB, VmRSS %.1f MiB at %d threads; "
		"%.1f / %.1f MiB at %d\n", mib(half_resident), mib(half_rss), NTHREADS / 2,
		mib(end_resident), mib(end_rss), NTHREADS);
	if (created == NTHREADS) {
		CHECK(end_resident <= half_resident + HALF_SLACK);
		CHECK(end_rss <= half_rss + HALF_SLACK);
	}
}

/* ------------------------------------------------------------ exit while freed */

#define EXIT_THREADS 20000
#define WINDOW       64
#define NREAPERS     2
#define QCAP         1024

static struct hand q[QCAP];
static unsigned q_head, q_count;
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER, q_not_full = PTHREAD_COND_INITIALIZER;
static long exit_bad, reaped;

static void q_push(struct hand h)
{
	pthread_mutex_lock(&q_mu);
	while (q_count == QCAP) pthread_cond_wait(&q_not_full, &q_mu);
	q[(q_head + q_count++) % QCAP] = h;
	pthread_cond_signal(&q_not_empty);
	pthread_mutex_unlock(&q_mu);
}
static struct hand q_pop(void)
{
	pthread_mutex_lock(&q_mu);
	while (q_count == 0) pthread_cond_wait(&q_not_empty, &q_mu);
	struct hand h = q[q_head];
	q_head = (q_head + 1) % QCAP;
	q_count--;
	pthread_cond_signal(&q_not_full);
	pthread_mutex_unlock(&q_mu);
	return h;
}

static void *reaper(void *arg)
{
	long bad = 0, n = 0;
	for (;;) {
		struct hand h = q_pop();
		if (!h.p) break;
		check_free(h.p, h.n, &bad);
		n++;
	}
	__atomic_add_fetch(&exit_bad, bad, __ATOMIC_RELAXED);
	__atomic_add_fetch(&reaped, n, __ATOMIC_RELAXED);
	return arg;
}

static long handed;

static void *exiting_thread(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t s = ((uint64_t)id + 7) * 0xD1B54A32D192ED03ull | 1;
	long bad = 0, nhand = 0;
	enum { N = 64 };
	void *p[N];
	size_t n[N];
	for (int i = 0; i < N; i++) {
		uint64_t r = rng_next(&s);
		n[i] = (i == 63 && id % 8 == 0) ? 16384 + 1 + r % (100 * 1024)     /* a run */
		     : (i == 62 && id % 64 == 0) ? 200 * 1024 + r % 4096          /* a large block */
		     : 16 + r % (i < 48 ? 512 : 8192);
		p[i] = malloc(n[i]);
		if (!p[i]) { bad++; continue; }
		touch(p[i], n[i]);
	}
	/* half into this thread's cache, half to the reapers, interleaved */
	for (int i = 0; i < N; i++) {
		if (!p[i]) continue;
		if (i % 2) { q_push((struct hand){ p[i], n[i] }); nhand++; }
		else check_free(p[i], n[i], &bad);
	}
	/* and exit at once: the cache is flushed while the reapers free the rest */
	if (bad) __atomic_add_fetch(&exit_bad, bad, __ATOMIC_RELAXED);
	__atomic_add_fetch(&handed, nhand, __ATOMIC_RELAXED);
	return NULL;
}

static void exit_while_freed(void)
{
	current_case = "exit_while_freed";
	warm_up(WINDOW + NREAPERS);
	bsl_purge();
	struct bsl_stats base;
	bsl_stats(&base);
	struct figures b = { base.mapped, base.resident, rss() };
	struct peaks pk = { b, 0 };
	pthread_t reapers[NREAPERS], t[WINDOW];
	for (int i = 0; i < NREAPERS; i++) REQUIRE(start(&reapers[i], reaper, NULL));
	long failed_create = 0;
	uint64_t nthreads_max = 0;
	for (long i = 0; i < EXIT_THREADS; i++) {
		int slot = (int)(i % WINDOW);
		if (i >= WINDOW && t[slot]) pthread_join(t[slot], NULL);
		if (!start(&t[slot], exiting_thread, (void *)(uintptr_t)i)) { t[slot] = 0; failed_create++; }
		if (i % 1000 == 999) {
			struct bsl_stats st;
			bsl_stats(&st);
			if (st.nthreads > nthreads_max) nthreads_max = st.nthreads;
			sample(&pk, &b, "exit_while_freed", i + 1);
		}
	}
	for (int i = 0; i < WINDOW; i++) if (t[i]) pthread_join(t[i], NULL);
	for (int i = 0; i < NREAPERS; i++) q_push((struct hand){ NULL, 0 });
	for (int i = 0; i < NREAPERS; i++) pthread_join(reapers[i], NULL);
	sample(&pk, &b, "exit_while_freed end", EXIT_THREADS);
	struct bsl_stats st;
	bsl_stats(&st);
	long long d = (long long)st.allocated - (long long)base.allocated;
	fprintf(stderr, "info: exit_while_freed: %d threads, %ld blocks freed by the reapers; allocated %+lld B "
		"vs baseline, nthreads %llu (baseline %llu, max seen %llu), peaks mapped %.1f MiB resident %.1f MiB "
		"VmRSS %.1f MiB (baseline %.1f / %.1f / %.1f)\n", EXIT_THREADS, reaped, d,
		(unsigned long long)st.nthreads, (unsigned long long)base.nthreads,
		(unsigned long long)nthreads_max, mib(pk.max.mapped), mib(pk.max.resident), mib(pk.max.rss),
		mib(b.mapped), mib(b.resident), mib(b.rss));
	CHECK(failed_create == 0);
	CHECK(exit_bad == 0);
	CHECK(reaped == handed);
	CHECK((d < 0 ? -d : d) <= (long long)ALLOC_SLACK);
	CHECK(st.nthreads == base.nthreads);
	/* the two reapers and the main thread may own caches beside the window */
	CHECK(nthreads_max <= base.nthreads + WINDOW + NREAPERS);
	CHECK(pk.over == 0);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	pthread_attr_init(&small_stack);
	pthread_attr_setstacksize(&small_stack, STACK_SIZE);
	free(malloc(1));     /* buddyslab initialised: class_tcache_max is filled */
	alarm(240);
	T_RUN(hundred_thousand_threads);
	alarm(120);
	T_RUN(exit_while_freed);
	alarm(0);
	return t_done();
}
