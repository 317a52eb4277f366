/* large_reuse.c - big blocks of varying size: NLIVE live blocks of
 * 150 KiB..1 MiB, one replaced per round, each new block written every STRIDE
 * bytes. usage: large_reuse [ROUNDS=20000] [NLIVE=8] [CALLOC=1] [STRIDE=16384]
 * Prints seconds, minor page faults and peak RSS; run it preloaded
 * (LD_PRELOAD=build/libbuddyslab.so) and without, one after the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20000, nlive = argc > 2 ? atoi(argv[2]) : 8;
	int zero = argc > 3 ? atoi(argv[3]) : 1; size_t stride = argc > 4 ? (size_t)atol(argv[4]) : 16384;
	void *live[64] = { 0 };
	unsigned long long x = 88172645463325252ull;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int r = 0; r < rounds; r++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		int i = (int)(x % (unsigned)nlive);
		size_t n = 150 * 1024 + (x >> 20) % (874 * 1024);
		free(live[i]);
		char *p = zero ? calloc(1, n) : malloc(n);
		for (size_t k = 0; k < n; k += stride) p[k] = 1;
		live[i] = p;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%.3f s, minflt %ld, maxrss %ld KiB\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, ru.ru_minflt, ru.ru_maxrss);
	return 0;
}
