/* threads_memory.c - the per-CPU promise: the same live data and the same
 * work split over T threads. usage: threads_memory THREADS [LIVE_MIB=64] [ROUNDS=40]
 * Each thread keeps LIVE_MIB/THREADS MiB live in blocks of random sizes
 * 16..4096 bytes and replaces the whole set ROUNDS times, so the live data
 * and the bytes allocated are the same for any THREADS. Prints seconds and
 * peak RSS (VmHWM); run it preloaded with each allocator at 2 and at 16
 * threads on a 2-core machine and compare. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t share;      /* bytes each thread keeps live */
static int rounds;

static void *run(void *arg)
{
	unsigned long long x = 88172645463325252ull ^ (unsigned long long)(size_t)arg * 0x9E3779B97F4A7C15ull;
	size_t cap = share / 16 + 1, n = 0, bytes = 0;
	void **blk = malloc(cap * sizeof *blk);
	size_t *len = malloc(cap * sizeof *len);
	if (!blk || !len)
		abort();
	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++)        /* free this round's set */
			free(blk[i]);
		n = bytes = 0;
		while (bytes < share && n < cap) {   /* and allocate a new one */
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			size_t sz = 16 + (size_t)(x % 4081);
			char *p = malloc(sz);
			if (!p)
				abort();
			p[0] = p[sz - 1] = (char)r;
			blk[n] = p;
			len[n++] = sz;
			bytes += sz;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(blk[i]);
	free(blk);
	free(len);
	return NULL;
}

static long hwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	int t = argc > 1 ? atoi(argv[1]) : 2;
	size_t live = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
	rounds = argc > 3 ? atoi(argv[3]) : 40;
	if (t < 1 || t > 256 || rounds < 1)
		return 2;
	share = live / (size_t)t;
	pthread_t th[256];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < t; i++)
		pthread_create(&th[i], NULL, run, (void *)i);
	for (int i = 0; i < t; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("threads=%d live_mib=%zu seconds=%.3f peak_rss_mib=%.1f\n", t, live >> 20,
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9, hwm_kb() / 1024.0);
	return 0;
}
