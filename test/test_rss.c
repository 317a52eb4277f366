/*
 * test_rss.c - memory return, measured with VmRSS.
 *
 * Every case runs in a child (this program re-executed as
 *     test_rss --child NAME
 * with BUDDYSLAB_CONF set, since the configuration is read once at the first
 * allocation), so each starts from a fresh heap and its own RSS baseline.
 * `test_rss NAME` runs only the case NAME; the reproduction command of a
 * failing case is printed with its failure.
 *
 * Figures: each case prints "info:" lines on stderr with start / peak / after
 * RSS in MiB, so they can be quoted. The arrays of pointers are mmap'd and
 * touched before the start figure is taken, so they are part of the baseline.
 *
 * What the decay cases rely on: without background_thread the decay of free
 * pages is ticked only from slow paths (bsl_maintenance in alloc_slow and
 * free_slow). The small-object fast paths (malloc <= 1 KiB popping from the
 * thread cache, free pushing to it) never tick it, so after the idle wait the
 * cases make one malloc(200000)/free, which is above the mmap threshold and
 * always takes the slow path.
 */
#define _GNU_SOURCE
#include "t.h"
#include "buddyslab.h"
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <time.h>
#include <stdint.h>
#include <errno.h>

#define KIB 1024L
#define MIB (1024L * 1024L)
#define TOL_KB (16 * 1024L)          /* "within 16 MiB of the start" */
#define GIB_BYTES ((size_t)1 << 30)
#define N1K (1000 * 1000)            /* 1 million 1 KiB objects */
#define DECAY_MS 200
/* 1e6 x 1 KiB = 976.6 MiB: the peak must show nearly all of it (the test measured something) */
#define MIN_GROWTH_KB (960 * 1024L)

static const char *self_exe;
static const char *case_name = "?";

/* ------------------------------------------------------------------ probes */

/* A /proc/self/status field in kB; -1 if absent. Uses no malloc (open/read
 * into a static buffer), so it can be called while waiting for decay without
 * ticking it. */
static long status_kb(const char *key)
{
	static char buf[8192];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n, len = 0;
	while (len < (ssize_t)sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	size_t klen = strlen(key);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, klen) && l[klen] == ':')
			return atol(l + klen + 1);
	return -1;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

static double mib(long kb) { return kb / 1024.0; }

static void info3(const char *what, long start, long peak, long after)
{
	fprintf(stderr, "  info: %s: %s: start %.1f MiB, peak %.1f MiB, after %.1f MiB "
		"(after - start = %+.1f MiB)\n", case_name, what, mib(start), mib(peak), mib(after),
		mib(after - start));
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A pointer array outside the heap, touched now so it is in the baseline. */
static void **ptr_array(size_t n)
{
	void **v = mmap(NULL, n * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return NULL;
	memset(v, 0, n * sizeof *v);
	return v;
}

/* One malloc/free that takes the slow path (above the mmap threshold), which
 * ticks the decay; see the file comment. */
static void slow_path_tick(void)
{
	volatile char *p = malloc(200000);
	if (p) {
		p[0] = 1;
		free((void *)p);
	}
}

static unsigned long rng_state = 0x9E3779B97F4A7C15ul;
static unsigned long rnd(void)
{
	unsigned long x = rng_state;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return rng_state = x;
}

/* ---------------------------------------------------------------- workloads */

/* 1 million 1 KiB objects, each written over its whole length. */
static int alloc_1k(void **v)
{
	for (size_t i = 0; i < N1K; i++) {
		v[i] = malloc(1024);
		if (!v[i]) {
			fprintf(stderr, "  malloc(1024) #%zu = NULL\n", i);
			return 0;
		}
		memset(v[i], (int)(i & 0xff), 1024);
	}
	return 1;
}

static void free_all(void **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]);
		v[i] = NULL;
	}
}

/* Mixed sizes 8 B .. 1 MiB: octave k in [3, 20) with probability
 * proportional to 2^(-k/2), uniform inside the octave. About 12% of the bytes
 * go to slab objects, 23% to page runs, 65% to mmap'd blocks, ~350,000 blocks
 * per GiB. */
#define MIX_CAP 1500000
static size_t mix_size(void)
{
	static double cum[20];
	if (cum[19] == 0) {
		double t = 0;
		for (int k = 3; k < 20; k++) {
			t += 1.0 / (double)(1ul << (k / 2)) / (k & 1 ? 1.41421356 : 1.0);
			cum[k] = t;
		}
		for (int k = 3; k < 20; k++)
			cum[k] /= t;
	}
	double u = (double)(rnd() >> 11) / (double)(1ul << 53);
	int k = 3;
	while (k < 19 && u > cum[k])
		k++;
	size_t base = (size_t)1 << k;
	size_t n = base + (rnd() & (base - 1));
	return n > (size_t)MIB ? (size_t)MIB : n;
}

/* Allocate `total` bytes of mixed sizes, touched; returns the count (0 on error). */
static size_t alloc_mix(void **v, size_t total)
{
	size_t n = 0, sum = 0;
	while (sum < total) {
		if (n == MIX_CAP) {
			fprintf(stderr, "  pointer array full\n");
			return 0;
		}
		size_t sz = mix_size();
		v[n] = malloc(sz);
		if (!v[n]) {
			fprintf(stderr, "  malloc(%zu) = NULL\n", sz);
			return 0;
		}
		memset(v[n], (int)(n & 0xff), sz);
		sum += sz;
		n++;
	}
	return n;
}

/* Free in random order (so neighbours are freed at different times). */
static void free_shuffled(void **v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		void *t = v[i - 1]; v[i - 1] = v[j]; v[j] = t;
	}
	free_all(v, n);
}

/* ------------------------------------------------------------------- cases */

/* 1 GiB in 1 KiB objects, freed, malloc_trim(0): back to within 16 MiB. */
static void trim_1k(void)
{
	void **v = ptr_array(N1K);
	REQUIRE(v);
	long start = rss_kb();
	REQUIRE(alloc_1k(v));
	long peak = rss_kb();
	free_all(v, N1K);
	long freed = rss_kb();
	int r = malloc_trim(0);
	long after = rss_kb();
	info3("1M x 1 KiB, free, malloc_trim(0)", start, peak, after);
	fprintf(stderr, "  info: %s: right after the frees %.1f MiB; malloc_trim returned %d\n",
		case_name, mib(freed), r);
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(r == 1);
	CHECK(after - start <= TOL_KB);
}

/* The same without trim: decay_ms:200, idle 2*decay_ms, one slow-path call. */
static void decay_1k(void)
{
	void **v = ptr_array(N1K);
	REQUIRE(v);
	long start = rss_kb();
	REQUIRE(alloc_1k(v));
	long peak = rss_kb();
	free_all(v, N1K);
	long freed = rss_kb();
	sleep_ms(2 * DECAY_MS);
	long idle = rss_kb();
	slow_path_tick();
	long after = rss_kb();
	info3("1M x 1 KiB, free, idle 400 ms, malloc(200000)/free", start, peak, after);
	fprintf(stderr, "  info: %s: right after the frees %.1f MiB, after the idle wait %.1f MiB\n",
		case_name, mib(freed), mib(idle));
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(after - start <= TOL_KB);
}

/* background_thread:1,decay_ms:200: no allocator call at all after the frees;
 * RSS polled (without malloc) every 50 ms for up to 3 s. */
static void background_1k(void)
{
	void **v = ptr_array(N1K);
	REQUIRE(v);
	long start = rss_kb();
	REQUIRE(alloc_1k(v));
	long peak = rss_kb();
	long threads = status_kb("Threads");
	free_all(v, N1K);
	double t0 = now_s(), t = 0;
	long after = rss_kb();
	while (after - start > TOL_KB && (t = now_s() - t0) < 3.0) {
		sleep_ms(50);
		after = rss_kb();
	}
	t = now_s() - t0;
	info3("1M x 1 KiB, free, no call, background thread", start, peak, after);
	fprintf(stderr, "  info: %s: threads while allocating %ld; waited %.2f s\n", case_name, threads, t);
	CHECK(threads == 2);    /* this thread + the background thread */
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(after - start <= TOL_KB);
}

static void trim_mix(void)
{
	void **v = ptr_array(MIX_CAP);
	REQUIRE(v);
	long start = rss_kb();
	size_t n = alloc_mix(v, GIB_BYTES);
	REQUIRE(n);
	long peak = rss_kb();
	struct bsl_stats s;
	bsl_stats(&s);
	free_shuffled(v, n);
	int r = malloc_trim(0);
	long after = rss_kb();
	info3("1 GiB mixed 8 B..1 MiB, free shuffled, malloc_trim(0)", start, peak, after);
	fprintf(stderr, "  info: %s: %zu blocks (%lu slab, %lu run, %lu large made)\n", case_name, n,
		(unsigned long)s.nmalloc_slab, (unsigned long)s.nmalloc_run, (unsigned long)s.nmalloc_large);
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(r == 1);
	CHECK(after - start <= TOL_KB);
}

static void decay_mix(void)
{
	void **v = ptr_array(MIX_CAP);
	REQUIRE(v);
	long start = rss_kb();
	size_t n = alloc_mix(v, GIB_BYTES);
	REQUIRE(n);
	long peak = rss_kb();
	free_shuffled(v, n);
	long freed = rss_kb();
	sleep_ms(2 * DECAY_MS);
	slow_path_tick();
	long after = rss_kb();
	info3("1 GiB mixed, free shuffled, idle 400 ms, malloc(200000)/free", start, peak, after);
	fprintf(stderr, "  info: %s: right after the frees %.1f MiB\n", case_name, mib(freed));
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(after - start <= TOL_KB);
}

/* A second thread allocates and frees 1 GiB of 1 KiB objects, then stays
 * alive, blocked on a condition variable; the main thread reclaims. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;        /* 0 wait, 1 go, 2 done (worker), 3 exit, -1 error */
static void **worker_v;

static void *worker(void *arg)
{
	pthread_mutex_lock(&mu);
	while (phase != 1)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	int ok = alloc_1k(worker_v);
	if (ok)
		free_all(worker_v, N1K);
	pthread_mutex_lock(&mu);
	phase = ok ? 2 : -1;
	pthread_cond_broadcast(&cv);
	while (phase != 3)
		pthread_cond_wait(&cv, &mu);     /* idle, not exited */
	pthread_mutex_unlock(&mu);
	return arg;
}

static void idle_thread_case(int use_trim)
{
	worker_v = ptr_array(N1K);
	REQUIRE(worker_v);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, worker, NULL) == 0);
	sleep_ms(20);
	long start = rss_kb();
	pthread_mutex_lock(&mu);
	phase = 1;
	pthread_cond_broadcast(&cv);
	while (phase == 1)
		pthread_cond_wait(&cv, &mu);
	int ok = phase == 2;
	pthread_mutex_unlock(&mu);
	long peak = status_kb("VmHWM");
	long freed = rss_kb();
	struct bsl_stats s;
	bsl_stats(&s);
	long after;
	if (use_trim) {
		malloc_trim(0);
		after = rss_kb();
	} else {
		sleep_ms(2 * DECAY_MS);
		slow_path_tick();
		after = rss_kb();
	}
	info3(use_trim ? "other thread 1M x 1 KiB then idle; main: malloc_trim(0)"
		       : "other thread 1M x 1 KiB then idle; main: idle 400 ms, malloc(200000)/free",
	      start, peak, after);
	fprintf(stderr, "  info: %s: right after the frees %.1f MiB; thread caches alive %lu, "
		"holding %zu bytes\n", case_name, mib(freed), (unsigned long)s.nthreads, s.tcache);
	pthread_mutex_lock(&mu);
	phase = 3;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
	REQUIRE(ok);
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(after - start <= TOL_KB);
}

static void idle_thread_trim(void) { idle_thread_case(1); }
static void idle_thread_decay(void) { idle_thread_case(0); }

/* decay_ms:-1: nothing goes back on its own; malloc_trim(0) still does. */
static void decay_never(void)
{
	void **v = ptr_array(N1K);
	REQUIRE(v);
	long start = rss_kb();
	REQUIRE(alloc_1k(v));
	long peak = rss_kb();
	free_all(v, N1K);
	sleep_ms(2 * DECAY_MS);
	slow_path_tick();
	sleep_ms(2 * DECAY_MS);
	slow_path_tick();
	long idle = rss_kb();
	struct bsl_stats s;
	bsl_stats(&s);
	int r = malloc_trim(0);
	long after = rss_kb();
	info3("1M x 1 KiB, free, idle 2 x 400 ms with slow-path calls, then malloc_trim(0)",
	      start, peak, after);
	fprintf(stderr, "  info: %s: before trim %.1f MiB (npurge %lu, dirty %.1f MiB)\n", case_name,
		mib(idle), (unsigned long)s.npurge, s.dirty / (double)MIB);
	CHECK(peak - start >= MIN_GROWTH_KB);
	CHECK(idle - start >= 900 * 1024);    /* no purge happened */
	CHECK(s.npurge == 0);
	CHECK(r == 1);
	CHECK(after - start <= TOL_KB);
}

/* LC_ROUNDS rounds of malloc, touch, free of 5..25 MiB blocks. */
#define LC_ROUNDS 60
#define LC_MAX (25 * MIB)
struct lc_result { long start, peak, max_after_free, last_after_free, after_trim; int ok; };

static struct lc_result large_loop(struct bsl_stats *s0, struct bsl_stats *s1)
{
	struct lc_result r = { 0 };
	bsl_stats(s0);
	r.start = rss_kb();
	r.peak = r.start;
	for (int i = 0; i < LC_ROUNDS; i++) {
		size_t sz = 5 * MIB + (rnd() % (20 * MIB + 1));
		char *p = malloc(sz);
		if (!p) {
			fprintf(stderr, "  malloc(%zu) = NULL in round %d\n", sz, i);
			return r;
		}
		memset(p, i, sz);
		long k = rss_kb();
		if (k > r.peak) r.peak = k;
		free(p);
		k = rss_kb();
		if (k > r.max_after_free) r.max_after_free = k;
		r.last_after_free = k;
	}
	bsl_stats(s1);
	malloc_trim(0);
	r.after_trim = rss_kb();
	r.ok = 1;
	return r;
}

static void large_cache_default(void)
{
	struct bsl_stats s0, s1, s2;
	struct lc_result r = large_loop(&s0, &s1);
	REQUIRE(r.ok);
	bsl_stats(&s2);
	info3("60 x malloc/touch/free of 5..25 MiB, default large cache", r.start, r.peak, r.after_trim);
	fprintf(stderr, "  info: %s: after each free: max %.1f MiB, last %.1f MiB; cached+dirty %.1f MiB "
		"before trim; nmalloc_large +%lu nfree_large +%lu\n", case_name, mib(r.max_after_free),
		mib(r.last_after_free), s1.dirty / (double)MIB,
		(unsigned long)(s1.nmalloc_large - s0.nmalloc_large),
		(unsigned long)(s1.nfree_large - s0.nfree_large));
	CHECK(s1.nmalloc_large - s0.nmalloc_large == LC_ROUNDS);
	CHECK(s1.nfree_large - s0.nfree_large == LC_ROUNDS);
	CHECK(r.peak - r.start <= (2 * LC_MAX + 64 * MIB) / KIB);
	/* the cache is used: a freed block stays mapped and resident until trim */
	CHECK(s1.dirty >= (size_t)5 * MIB);
	CHECK(r.last_after_free - r.start >= 4 * 1024);
	CHECK(r.after_trim - r.start <= TOL_KB);
	CHECK(s2.dirty < (size_t)MIB);
}

static void large_cache_off(void)
{
	struct bsl_stats s0, s1;
	struct lc_result r = large_loop(&s0, &s1);
	REQUIRE(r.ok);
	info3("60 x malloc/touch/free of 5..25 MiB, large_cache:0", r.start, r.peak, r.after_trim);
	fprintf(stderr, "  info: %s: after each free: max %.1f MiB (start + %.1f); cached+dirty %.1f MiB; "
		"nmalloc_large +%lu\n", case_name, mib(r.max_after_free), mib(r.max_after_free - r.start),
		s1.dirty / (double)MIB, (unsigned long)(s1.nmalloc_large - s0.nmalloc_large));
	CHECK(s1.nmalloc_large - s0.nmalloc_large == LC_ROUNDS);
	CHECK(s1.nfree_large - s0.nfree_large == LC_ROUNDS);
	CHECK(r.peak - r.start <= (LC_MAX + 8 * MIB) / KIB);
	CHECK(r.max_after_free - r.start <= 4 * 1024);    /* every free unmapped */
	CHECK(s1.dirty < (size_t)MIB);
}

/* purge:free (MADV_FREE): no crash, and calloc memory is zero after reuse,
 * after malloc_trim and after a decay purge. RSS is reported, not checked:
 * MADV_FREE pages stay in RSS until the kernel needs them. */
#define PF_N 40000
static int calloc_round(void **v, const size_t *sz, const char *when)
{
	int bad = 0;
	for (int i = 0; i < PF_N; i++) {
		unsigned char *c = calloc(1, sz[i]);
		if (!c) {
			fprintf(stderr, "  %s: calloc(%zu) = NULL\n", when, sz[i]);
			return 0;
		}
		for (size_t k = 0; k < sz[i]; k++)
			if (c[k]) {
				if (bad++ < 3)
					fprintf(stderr, "  %s: calloc(1, %zu) byte %zu = %#x\n", when, sz[i], k, c[k]);
				break;
			}
		v[i] = c;
	}
	for (int i = 0; i < PF_N; i++)
		memset(v[i], 0xA5, sz[i]);
	free_all(v, PF_N);
	return bad == 0;
}

static void purge_free(void)
{
	static size_t sz[PF_N];
	void **v = ptr_array(PF_N);
	REQUIRE(v);
	for (int i = 0; i < PF_N; i++)
		sz[i] = 16 + rnd() % (rnd() & 3 ? 1024 : 64 * 1024);   /* slabs and runs, ~330 MiB */
	long start = rss_kb();
	for (int i = 0; i < PF_N; i++) {
		v[i] = malloc(sz[i]);
		REQUIRE(v[i]);
		memset(v[i], 0xA5, sz[i]);
	}
	long peak = rss_kb();
	free_all(v, PF_N);
	CHECK(malloc_trim(0) == 1);
	long trimmed = rss_kb();
	CHECK(calloc_round(v, sz, "after malloc_trim"));
	sleep_ms(2 * DECAY_MS);
	slow_path_tick();
	long decayed = rss_kb();
	CHECK(calloc_round(v, sz, "after a decay purge"));
	struct bsl_stats s;
	bsl_stats(&s);
	info3("40000 blocks 16 B..128 KiB, free, trim (MADV_FREE)", start, peak, trimmed);
	fprintf(stderr, "  info: %s: after decay purge %.1f MiB; npurge %lu\n", case_name,
		mib(decayed), (unsigned long)s.npurge);
	CHECK(s.npurge > 0);
}

/* ---------------------------------------------------------------- driver */

struct tcase {
	const char *name;
	const char *conf;    /* BUDDYSLAB_CONF for the child; NULL: unset */
	void (*fn)(void);
};

static const struct tcase cases[] = {
	{ "trim_1k", NULL, trim_1k },
	{ "decay_1k", "decay_ms:200", decay_1k },
	{ "background_thread_1k", "background_thread:1,decay_ms:200", background_1k },
	{ "trim_mix", NULL, trim_mix },
	{ "decay_mix", "decay_ms:200", decay_mix },
	{ "idle_thread_trim", NULL, idle_thread_trim },
	{ "idle_thread_decay", "decay_ms:200", idle_thread_decay },
	{ "decay_never_until_trim", "decay_ms:-1", decay_never },
	{ "large_cache_default", NULL, large_cache_default },
	{ "large_cache_off", "large_cache:0", large_cache_off },
	{ "purge_free", "purge:free,decay_ms:200", purge_free },
};
#define NCASES (sizeof cases / sizeof cases[0])

static const struct tcase *cur;

/* Run cur in a child; its exit status says pass (0), fail (1) or skip (2,
 * with the reason written to fd 3). */
static void run_cur(void)
{
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		if (pfd[1] != 3) {
			dup2(pfd[1], 3);
			close(pfd[1]);
		}
		if (cur->conf)
			setenv("BUDDYSLAB_CONF", cur->conf, 1);
		else
			unsetenv("BUDDYSLAB_CONF");
		execl(self_exe, self_exe, "--child", cur->name, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	static char reason[256];
	ssize_t n = read(pfd[0], reason, sizeof reason - 1);
	reason[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
		SKIP("%s", reason);
	if (WIFSIGNALED(st))
		fprintf(stderr, "  child killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		fprintf(stderr, "  child exited with status %d\n", WEXITSTATUS(st));
	fprintf(stderr, "  reproduce: %s%s %s --child %s\n", cur->conf ? "BUDDYSLAB_CONF=" : "",
		cur->conf ? cur->conf : "", self_exe, cur->name);
	t_failed_case = 1;
}

int main(int argc, char **argv)
{
	self_exe = argv[0];
	if (argc == 3 && strcmp(argv[1], "--child") == 0) {
		for (size_t i = 0; i < NCASES; i++)
			if (strcmp(cases[i].name, argv[2]) == 0) {
				case_name = cases[i].name;
				alarm(180);
				cases[i].fn();
				if (t_skipped_case && !t_failed_case) {
					if (write(3, t_skip_reason, strlen(t_skip_reason)) < 0) {}
					return 2;
				}
				return t_failed_case ? 1 : 0;
			}
		fprintf(stderr, "no case %s\n", argv[2]);
		return 3;
	}
	for (size_t i = 0; i < NCASES; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		cur = &cases[i];
		t_run(cur->name, run_cur);
	}
	return t_done();
}
