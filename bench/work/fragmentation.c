/* fragmentation - the threads fill 1 GiB (times -s) with blocks of mixed sizes
 * (16 B .. 16 KiB), free 90% of them at random, then allocate again with larger
 * sizes (256 B .. 64 KiB) until each thread's live data is back to half of what
 * it filled. final_rss_kb is measured with that half still live (live_kb), so
 * final_rss_kb / live_kb shows how much the freed holes cost. */
#include "work.h"

static size_t share;                /* bytes each thread fills */
static pthread_barrier_t bar;
static long live_bytes[1024];

struct blk { char *p; size_t n; };

static char *fill(size_t n, unsigned char tag)
{
	char *p = w_malloc(n);
	memset(p, tag, n);
	return p;
}

static void check_free(struct blk *b)
{
	unsigned char tag = (unsigned char)(b->n * 7);
	if ((unsigned char)b->p[0] != tag || (unsigned char)b->p[b->n - 1] != tag)
		w_fail("block contents changed");
	free(b->p);
	b->p = NULL;
}

static void *run(void *arg)
{
	long me = (long)arg;
	unsigned long seed = 0x9E3779B97F4A7C15UL * (me + 3);
	size_t cap = share / 16 + 16, nb = 0, live = 0;
	struct blk *b = w_malloc(cap * sizeof *b);
	while (live < share && nb < cap) {            /* 1: fill */
		size_t n = w_logsize(&seed, 4, 14);
		b[nb].p = fill(n, (unsigned char)(n * 7));
		b[nb++].n = n;
		live += n;
	}
	pthread_barrier_wait(&bar);
	for (size_t i = 0; i < nb; i++)               /* 2: free 90% at random */
		if (w_rand(&seed) % 10) { live -= b[i].n; check_free(&b[i]); }
	pthread_barrier_wait(&bar);
	for (size_t i = 0; i < nb && live < share / 2; i++) {   /* 3: refill holes */
		if (b[i].p) continue;
		size_t n = w_logsize(&seed, 8, 16);
		b[i].p = fill(n, (unsigned char)(n * 7));
		b[i].n = n;
		live += n;
	}
	live_bytes[me] = (long)live;
	pthread_barrier_wait(&bar);   /* main measures final RSS here */
	pthread_barrier_wait(&bar);
	for (size_t i = 0; i < nb; i++)
		if (b[i].p) check_free(&b[i]);
	free(b);
	return NULL;
}

static void *measure(void *arg)
{
	static char extra[64];
	long live = 0;
	double t0 = *(double *)arg;
	pthread_barrier_wait(&bar); pthread_barrier_wait(&bar); pthread_barrier_wait(&bar);
	for (int i = 0; i < w_threads; i++) live += live_bytes[i];
	snprintf(extra, sizeof extra, " live_kb=%ld", live / 1024);
	w_result(w_now() - t0, extra);
	pthread_barrier_wait(&bar);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t m;
	double t0;
	w_args(argc, argv, "fragmentation", 2);
	share = (size_t)w_scaled(1024.0 * 1024 * 1024, 1 << 20) / w_threads;
	pthread_barrier_init(&bar, NULL, w_threads + 1);
	t0 = w_now();
	pthread_create(&m, NULL, measure, &t0);
	w_run_threads(run);
	pthread_join(m, NULL);
	return 0;
}
