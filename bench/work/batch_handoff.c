/* batch_handoff - 2 threads (default); each keeps 1,000 live blocks of 8 B ..
 * 16,000 B (log-uniform) and replaces all of them in every round. In odd rounds
 * a thread frees its old blocks itself; in even rounds it hands them, as one
 * batch, to the next thread, which frees them once both have met at a barrier
 * (a producer passing finished requests to a consumer in bulk: cross-thread
 * frees in batches of 1,000). Final RSS after everything is freed. */
#include "work.h"

#define LIVE 1000
#define MAXSIZE 16000

/* batch[t][k]: thread t's batches, used in turn (k = round / 2 % 2), freed by
 * thread t + 1. A thread refills batch k two handoffs later, after the next
 * barrier, which its receiver reaches only once it has freed batch k. */
static struct w_blk (*batch)[2][LIVE];
static long rounds;
static pthread_barrier_t bar;

static size_t pick_size(unsigned long *seed)
{
	size_t n;
	do n = w_logsize(seed, 3, 14); while (n > MAXSIZE);
	return n;
}

static void *run(void *arg)
{
	long me = (long)arg, from = (me + w_threads - 1) % w_threads;
	unsigned long seed = 0xD6E8FEB86659FD93UL * (me + 1);
	struct w_blk live[LIVE];
	for (int i = 0; i < LIVE; i++) live[i] = w_blk_new(pick_size(&seed));
	for (long r = 0; r < rounds; r++) {
		int k = r / 2 % 2, handoff = r % 2 == 0;
		for (int i = 0; i < LIVE; i++) {
			if (handoff) batch[me][k][i] = live[i];
			else w_blk_free(&live[i]);
			live[i] = w_blk_new(pick_size(&seed));
		}
		if (!handoff) continue;
		pthread_barrier_wait(&bar);      /* every thread has handed its batch over */
		for (int i = 0; i < LIVE; i++) w_blk_free(&batch[from][k][i]);
	}
	for (int i = 0; i < LIVE; i++) w_blk_free(&live[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	w_args(argc, argv, "batch_handoff", 2);
	rounds = w_scaled(3000, 4);
	batch = w_malloc(sizeof *batch * w_threads);
	pthread_barrier_init(&bar, NULL, w_threads);
	double t0 = w_now();
	w_run_threads(run);
	w_result(w_now() - t0, "");
	free(batch);
	return 0;
}
