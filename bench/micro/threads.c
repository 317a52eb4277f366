/*
 * threads.c - producer/consumer: the benchmark thread allocates, a second
 * thread frees. A single-producer single-consumer ring carries the blocks;
 * when it is full the producer waits, so the time per item is that of the
 * slower side (remote frees are usually the slow side).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "micro.h"

#define RING 4096          /* power of two */
#define PER_ITER 256       /* blocks handed over per iteration */

struct pc {
	_Alignas(64) atomic_ulong head;   /* written by the producer */
	_Alignas(64) atomic_ulong tail;   /* written by the consumer */
	_Alignas(64) atomic_int done;
	long size, bad;
	unsigned long seq;                /* producer's sequence number */
	pthread_t thr;
	void *slot[RING];
};

static void *consumer(void *arg)
{
	struct pc *pc = arg;
	unsigned long t = 0;
	for (;;) {
		unsigned long h = atomic_load_explicit(&pc->head, memory_order_acquire);
		if (t == h) {
			if (atomic_load(&pc->done) && t == atomic_load(&pc->head)) break;
			sched_yield();
			continue;
		}
		for (; t != h; t++) {
			char *p = pc->slot[t % RING];
			if (p[0] != (char)t || p[pc->size - 1] != (char)t) pc->bad++;
			free(p);
		}
		atomic_store_explicit(&pc->tail, t, memory_order_release);
	}
	return NULL;
}

void *prodcons_setup(long size)
{
	struct pc *pc = calloc(1, sizeof *pc);
	if (!pc) return NULL;
	pc->size = size;
	if (pthread_create(&pc->thr, NULL, consumer, pc)) { free(pc); return NULL; }
	return pc;
}

long prodcons_run(void *st, long size)
{
	struct pc *pc = st;
	if (!pc) return -1;
	for (int i = 0; i < PER_ITER; i++, pc->seq++) {
		char *p = malloc(size);
		if (!p) return -1;
		p[0] = (char)pc->seq; p[size - 1] = (char)pc->seq;
		while (pc->seq - atomic_load_explicit(&pc->tail, memory_order_acquire) >= RING)
			sched_yield();
		pc->slot[pc->seq % RING] = p;
		atomic_store_explicit(&pc->head, pc->seq + 1, memory_order_release);
	}
	return PER_ITER;
}

long prodcons_teardown(void *st)
{
	struct pc *pc = st;
	long bad;
	if (!pc) return -1;
	atomic_store(&pc->done, 1);
	pthread_join(pc->thr, NULL);
	bad = pc->bad;
	free(pc);
	return bad ? -1 : 0;
}
