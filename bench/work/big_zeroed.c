/* big_zeroed - 20 live zero-initialised blocks of 5-25 MiB; 500 times one of
 * them, at random, is freed and replaced by a new calloc'd one. In every new
 * block the first 64 bytes of every 8th page (by address: pages whose number is
 * a multiple of 8) are checked to be zero and then written with a tag, so a
 * block made of reused memory must really have been zeroed again; the tags are
 * checked before the block is freed. Only those pages are touched (1 in 8), so
 * an allocator that clears a reused block with memset makes all of its pages
 * resident. Final RSS after everything is freed. */
#include <stdint.h>
#include "work.h"

#define LIVE 20
#define STRIDE (8 * 4096)
#define LINE 64

static const char zero[LINE];

/* the sampled lines of b: from the first STRIDE-aligned address in it */
#define for_each_line(q, b) \
	for (char *q = (char *)(((uintptr_t)(b)->p + STRIDE - 1) & ~(uintptr_t)(STRIDE - 1)); \
	     q + LINE <= (b)->p + (b)->n; q += STRIDE)

static struct w_blk big_new(unsigned long *seed)
{
	size_t n = (5UL << 20) + w_rand(seed) % ((20UL << 20) + 1);
	struct w_blk b = { calloc(1, n), n };
	if (!b.p) w_fail("calloc returned NULL");
	for_each_line(q, &b) {
		if (memcmp(q, zero, LINE)) w_fail("calloc block not zero");
		memset(q, w_tag(n), LINE);
	}
	return b;
}

static void big_free(struct w_blk *b)
{
	for_each_line(q, b)
		if ((unsigned char)q[0] != w_tag(b->n) || (unsigned char)q[LINE - 1] != w_tag(b->n))
			w_fail("block contents changed");
	free(b->p);
}

int main(int argc, char **argv)
{
	struct w_blk live[LIVE];
	unsigned long seed = 0x94D049BB133111EBUL;
	w_args(argc, argv, "big_zeroed", 1);
	(void)w_run_threads;     /* single-threaded; keeps -Wunused-function quiet */
	long replace = w_scaled(500, 20);   /* 2,000 made make bench take 30 min (mimalloc) */
	double t0 = w_now();
	for (int i = 0; i < LIVE; i++) live[i] = big_new(&seed);
	for (long r = 0; r < replace; r++) {
		struct w_blk *b = &live[w_rand(&seed) % LIVE];
		big_free(b);
		*b = big_new(&seed);
	}
	for (int i = 0; i < LIVE; i++) big_free(&live[i]);
	w_result(w_now() - t0, "");
	return 0;
}
