/* colour.c - objects at the same index of many slabs, hot together: the case
 * slab colouring (BUDDYSLAB_CONF=colour:1) is for.
 * usage: colour [SIZE=1536] [PER_SLAB=5] [NSLABS=48] [ROUNDS=2000000]
 * Allocates NSLABS * PER_SLAB blocks of SIZE bytes in a row (a fresh slab is
 * handed out in address order, so every PER_SLAB-th block is the first of its
 * slab), then reads and writes the first word of those NSLABS blocks ROUNDS
 * times. Without colouring they all sit at the same offset of slab-aligned
 * blocks, so they share one set of the L1 cache (and of L2); with it, their
 * offsets step by a cache line. Prints the nanoseconds per access. For
 * kmalloc-1536 (5 objects in a 2-page slab, 512 bytes of tail room) run it
 * with colour:0 and colour:1 and compare. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoul(argv[1], 0, 10) : 1536;
	int per = argc > 2 ? atoi(argv[2]) : 5, nslabs = argc > 3 ? atoi(argv[3]) : 48;
	long rounds = argc > 4 ? atol(argv[4]) : 2000000;
	if (size < 8 || per < 1 || nslabs < 1 || nslabs > 4096 || rounds < 1)
		return 2;
	char **all = malloc(sizeof *all * (size_t)(per * nslabs));
	uint64_t **hot = malloc(sizeof *hot * (size_t)nslabs);
	if (!all || !hot)
		return 1;
	for (int i = 0; i < per * nslabs; i++)
		if (!(all[i] = malloc(size)))
			return 1;
	unsigned long sets = 0;
	for (int i = 0; i < nslabs; i++) {
		hot[i] = (uint64_t *)(void *)all[i * per];
		*hot[i] = (uint64_t)i;
		sets |= 1ul << (((uintptr_t)hot[i] >> 6) & 63);   /* the L1 sets they map to */
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	uint64_t sum = 0;
	for (long r = 0; r < rounds; r++)
		for (int i = 0; i < nslabs; i++)
			sum += (*hot[i])++;
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
		    ((double)rounds * nslabs);
	printf("size=%zu slabs=%d distinct_l1_sets=%d ns_per_access=%.2f (%llu)\n", size, nslabs,
	       __builtin_popcountl(sets), ns, (unsigned long long)(sum & 1));
	for (int i = 0; i < per * nslabs; i++)
		free(all[i]);
	free(all);
	free(hot);
	return 0;
}
