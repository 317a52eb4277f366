/*
 * basic.c - malloc+free pairs, batches of 1,000 (LIFO and random free order),
 * calloc. Every block is written (first and last byte) and read back.
 */
#include <stdlib.h>
#include <string.h>
#include "micro.h"

#define PAIRS 100      /* malloc+free pairs per iteration */
#define BATCH 1000     /* blocks per batch */

long malloc_free_run(void *st, long size)
{
	for (int i = 0; i < PAIRS; i++) {
		char *p = malloc(size);
		if (!p) return -1;
		p[0] = (char)i; p[size - 1] = (char)i;
		escape(p);
		if (p[0] != (char)i || p[size - 1] != (char)i) return -1;
		free(p);
	}
	return PAIRS;
}

struct batch { void *blk[BATCH]; int order[BATCH]; };

static void *batch_alloc_state(int shuffle)
{
	struct batch *b = malloc(sizeof *b);
	unsigned long seed = 0x9e3779b97f4a7c15ul;
	if (!b) return NULL;
	for (int i = 0; i < BATCH; i++) b->order[i] = BATCH - 1 - i;   /* LIFO */
	for (int i = BATCH - 1; shuffle && i > 0; i--) {              /* Fisher-Yates */
		int j = (int)(xorshift(&seed) % (unsigned long)(i + 1));
		int t = b->order[i]; b->order[i] = b->order[j]; b->order[j] = t;
	}
	return b;
}
void *batch_lifo_setup(long size) { return batch_alloc_state(0); }
void *batch_random_setup(long size) { return batch_alloc_state(1); }
long batch_teardown(void *st) { free(st); return 0; }

long batch_run(void *st, long size)
{
	struct batch *b = st;
	if (!b) return -1;
	for (int i = 0; i < BATCH; i++) {
		char *p = malloc(size);
		if (!p) return -1;
		p[0] = (char)i; p[size - 1] = (char)i;
		b->blk[i] = p;
	}
	escape(b->blk);
	for (int k = 0; k < BATCH; k++) {
		int i = b->order[k];
		char *p = b->blk[i];
		if (p[0] != (char)i || p[size - 1] != (char)i) return -1;
		free(p);
	}
	return BATCH;   /* items: one malloc+free pair each */
}

long calloc_run(void *st, long size)
{
	int n = size >= 65536 ? 4 : PAIRS;
	for (int i = 0; i < n; i++) {
		char *p = calloc(1, size);
		if (!p) return -1;
		escape(p);
		if (p[0] != 0 || p[size / 2] != 0 || p[size - 1] != 0) return -1;
		p[0] = 1; p[size / 2] = 1; p[size - 1] = 1;   /* dirty it for the next calloc */
		escape(p);
		free(p);
	}
	return n;
}
