/*
 * grow.c - realloc growth chains, aligned allocation, large blocks.
 */
#include <stdint.h>
#include <stdlib.h>
#include "micro.h"

#define CHAIN (1L << 20)   /* realloc chain: grow one byte at a time to 1 MiB */

long realloc_chain_run(void *st, long arg)
{
	char *p = NULL;
	for (long len = 1; len <= CHAIN; len++) {
		char *q = realloc(p, len);
		if (!q) { free(p); return -1; }
		p = q;
		p[len - 1] = (char)len;
	}
	escape(p);
	for (long len = 1; len <= CHAIN; len += 4093)   /* old bytes survived every move */
		if (p[len - 1] != (char)len) { free(p); return -1; }
	free(p);
	return CHAIN;
}

/* posix_memalign(align, size = align): small alignments 100 times, 2 MiB once. */
long aligned_run(void *st, long align)
{
	int n = align >= (1L << 20) ? 1 : 100;
	for (int i = 0; i < n; i++) {
		char *p;
		if (posix_memalign((void **)&p, align, align) != 0) return -1;
		if ((uintptr_t)p % align) return -1;
		p[0] = (char)i; p[align - 1] = (char)i;
		escape(p);
		if (p[0] != (char)i || p[align - 1] != (char)i) return -1;
		free(p);
	}
	return n;
}

/* One large block per iteration; every 4 KiB page is written, some read back. */
long large_run(void *st, long size)
{
	char *p = malloc(size);
	if (!p) return -1;
	for (long off = 0; off < size; off += 4096) p[off] = (char)(off >> 12);
	p[size - 1] = 7;
	escape(p);
	if (p[0] != 0 || p[size - 1] != 7 || p[size / 2 & ~4095L] != (char)((size / 2) >> 12)) {
		free(p);
		return -1;
	}
	free(p);
	return 1;
}
