/* larson - a server in the style of Larson and Krishnan's benchmark: 4 lanes
 * (threads, -t) each own 5,000 blocks of 8-1,000 B (uniform sizes). A lane's
 * worker thread frees a random block and allocates a replacement 10,000 times,
 * then exits, and a new thread takes over the lane's blocks: every block a
 * worker frees was allocated by another thread (the main thread, which fills
 * the lanes, or the worker before it, which has exited). 200 workers per lane
 * in turn; the lanes run side by side. Final RSS after everything is freed. */
#include "work.h"

#define BLOCKS 5000
#define OPS 10000
#define MINSIZE 8
#define MAXSIZE 1000

static struct w_blk *blocks;     /* lane l owns blocks[l * BLOCKS ...] */
static long workers;             /* per lane, one after the other */

static size_t pick_size(unsigned long *seed) { return MINSIZE + w_rand(seed) % (MAXSIZE - MINSIZE + 1); }

static void *worker(void *arg)
{
	const long *lane_gen = arg;
	struct w_blk *own = blocks + lane_gen[0] * BLOCKS;
	unsigned long seed = 0xBF58476D1CE4E5B9UL * (lane_gen[0] * workers + lane_gen[1] + 1);
	for (long op = 0; op < OPS; op++) {
		struct w_blk *b = &own[w_rand(&seed) % BLOCKS];
		w_blk_free(b);
		*b = w_blk_new(pick_size(&seed));
	}
	return NULL;
}

static void *lane(void *arg)
{
	long lane_gen[2] = { (long)arg, 0 };
	pthread_t t;
	for (; lane_gen[1] < workers; lane_gen[1]++) {
		if (pthread_create(&t, NULL, worker, lane_gen)) w_fail("pthread_create");
		pthread_join(t, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long seed = 0x2545F4914F6CDD1DUL;
	w_args(argc, argv, "larson", 4);
	workers = w_scaled(200, 2);
	double t0 = w_now();
	long n = (long)w_threads * BLOCKS;
	blocks = w_malloc(n * sizeof *blocks);
	for (long i = 0; i < n; i++) blocks[i] = w_blk_new(pick_size(&seed));
	w_run_threads(lane);
	for (long i = 0; i < n; i++) w_blk_free(&blocks[i]);
	free(blocks);
	w_result(w_now() - t0, "");
	return 0;
}
