/* batch.c SIZE ROUNDS - ROUNDS times: 1,000 mallocs of SIZE, then 1,000 frees. */
#include <stdlib.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	size_t n = strtoul(argv[1], 0, 10);
	int rounds = atoi(argv[2]);
	static void *p[1000];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < 1000; i++) p[i] = malloc(n);
		for (int i = 0; i < 1000; i++) free(p[i]);
	}
	return 0;
}
