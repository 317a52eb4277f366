/*
 * work.h - shared helpers for the workload programs in bench/work/.
 *
 * Every workload is run as   prog [-t THREADS] [-s SCALE]
 * (SCALE 1.0 is the full-size run; smoke tests use 0.01 or less), touches the
 * memory it allocates, checks bytes it wrote earlier (exit 1 with an ERROR line
 * on a mismatch) and ends with one line:
 *   RESULT name=N threads=T scale=S seconds=W peak_rss_kb=H final_rss_kb=R [extra]
 * peak_rss_kb is VmHWM, final_rss_kb is VmRSS when the workload has finished
 * (each program says what is still live at that point).
 */
#ifndef WORK_H
#define WORK_H
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int w_threads;
static double w_scale = 1.0;
static const char *w_name;

static void w_args(int argc, char **argv, const char *name, int def_threads)
{
	int c;
	w_name = name;
	w_threads = def_threads;
	while ((c = getopt(argc, argv, "t:s:")) != -1) {
		if (c == 't') w_threads = atoi(optarg);
		else if (c == 's') w_scale = atof(optarg);
		else { fprintf(stderr, "usage: %s [-t THREADS] [-s SCALE]\n", argv[0]); exit(2); }
	}
	if (w_threads < 1 || w_threads > 1024 || !(w_scale > 0)) {
		fprintf(stderr, "%s: bad -t or -s\n", name);
		exit(2);
	}
}

/* n scaled by -s, at least lo */
static long w_scaled(double n, long lo) { long v = (long)(n * w_scale); return v < lo ? lo : v; }

static double w_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long w_status_kb(const char *key)
{
	char line[256];
	long kb = -1;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ':') { kb = atol(line + n + 1); break; }
	fclose(f);
	return kb;
}

static void w_fail(const char *what)
{
	fprintf(stderr, "ERROR name=%s: %s\n", w_name, what);
	fflush(stderr);
	exit(1);
}

static void *w_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p) w_fail("malloc returned NULL");
	return p;
}

/* extra: "" or " key=value ..." appended to the RESULT line */
static void w_result(double seconds, const char *extra)
{
	printf("RESULT name=%s threads=%d scale=%g seconds=%.4f peak_rss_kb=%ld final_rss_kb=%ld%s\n",
	       w_name, w_threads, w_scale, seconds, w_status_kb("VmHWM"), w_status_kb("VmRSS"), extra);
	fflush(stdout);
}

/* Run fn(i) on w_threads threads and wait for all of them. */
static void w_run_threads(void *(*fn)(void *))
{
	pthread_t *t = w_malloc(sizeof *t * w_threads);
	for (long i = 0; i < w_threads; i++)
		if (pthread_create(&t[i], NULL, fn, (void *)i)) w_fail("pthread_create");
	for (int i = 0; i < w_threads; i++) pthread_join(t[i], NULL);
	free(t);
}

static inline unsigned long w_rand(unsigned long *s)
{
	unsigned long x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return *s = x;
}

/* Size in [2^lo, 2^hi): uniform power of two, then uniform inside it, so there
 * are as many blocks of 16-31 B as of 8-16 KiB (small blocks dominate by count). */
static inline size_t w_logsize(unsigned long *s, int lo, int hi)
{
	unsigned long r = w_rand(s);
	size_t base = 1UL << (lo + (int)(r % (unsigned long)(hi - lo)));
	return base + ((r >> 24) & (base - 1));
}

/* A block filled with a tag of its size; w_blk_free checks its first, middle
 * and last byte against the tag before it frees it. */
struct w_blk { char *p; size_t n; };

static inline unsigned char w_tag(size_t n) { return (unsigned char)(n * 7 >> 2) | 1; }

static inline struct w_blk w_blk_new(size_t n)
{
	struct w_blk b = { w_malloc(n), n };
	memset(b.p, w_tag(n), n);
	return b;
}

static inline void w_blk_free(struct w_blk *b)
{
	unsigned char t = w_tag(b->n);
	if ((unsigned char)b->p[0] != t || (unsigned char)b->p[b->n / 2] != t || (unsigned char)b->p[b->n - 1] != t)
		w_fail("block contents changed");
	free(b->p);
	b->p = NULL;
}
#endif
