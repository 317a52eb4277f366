/*
 * churn.h - the server-like churn kernel shared by server_churn.c and
 * oversubscribed.c. Each thread keeps SLOTS live blocks of random sizes; every
 * operation replaces one: the old block is checked and either freed or, one
 * time in HANDOFF, handed to another thread, which frees it later (a request
 * buffer passed to a worker). Blocks are filled completely when allocated.
 */
#include "work.h"

#define SLOTS 4096
#define MAILBOX 1024

struct mailbox {
	pthread_mutex_t lock;
	int n;
	char *blk[MAILBOX];
	char pad[64];
};

static struct mailbox *boxes;
static long churn_ops;      /* operations per thread */
static int churn_handoff;   /* 1 in churn_handoff old blocks goes to another thread */

static char *churn_new(unsigned long *seed)
{
	/* 3 in 4: 16 B .. 512 B, else 512 B .. 32 KiB */
	size_t n = (w_rand(seed) & 3) ? w_logsize(seed, 4, 9) : w_logsize(seed, 9, 15);
	char *p = w_malloc(n);
	memset(p, (int)(n & 0x7f) | 1, n);
	memcpy(p, &n, sizeof n);
	return p;
}

static void churn_check_free(char *p)
{
	size_t n;
	memcpy(&n, p, sizeof n);
	if (n < 16 || n >= 32768 || p[n - 1] != ((int)(n & 0x7f) | 1) || p[n / 2 | 8] != p[n - 1])
		w_fail("block contents changed");
	free(p);
}

static void churn_drain(struct mailbox *b)
{
	char *local[MAILBOX];
	int n;
	pthread_mutex_lock(&b->lock);
	n = b->n;
	memcpy(local, b->blk, n * sizeof *local);
	b->n = 0;
	pthread_mutex_unlock(&b->lock);
	for (int i = 0; i < n; i++) churn_check_free(local[i]);
}

static void *churn_thread(void *arg)
{
	long me = (long)arg;
	unsigned long seed = 0x2545F4914F6CDD1DUL * (me + 1);
	char **slot = w_malloc(SLOTS * sizeof *slot);
	for (int i = 0; i < SLOTS; i++) slot[i] = churn_new(&seed);
	for (long op = 0; op < churn_ops; op++) {
		int i = (int)(w_rand(&seed) % SLOTS);
		char *old = slot[i];
		slot[i] = churn_new(&seed);
		if (w_threads > 1 && w_rand(&seed) % churn_handoff == 0) {
			struct mailbox *b = &boxes[(me + 1 + w_rand(&seed) % (w_threads - 1)) % w_threads];
			pthread_mutex_lock(&b->lock);
			if (b->n < MAILBOX) { b->blk[b->n++] = old; old = NULL; }
			pthread_mutex_unlock(&b->lock);
		}
		if (old) churn_check_free(old);
		if ((op & 63) == 0) churn_drain(&boxes[me]);
	}
	for (int i = 0; i < SLOTS; i++) churn_check_free(slot[i]);
	free(slot);
	return NULL;
}

/* Run the churn; final RSS is measured after every block has been freed. */
static int churn_main(double ops_per_thread, int handoff)
{
	double t0;
	churn_ops = w_scaled(ops_per_thread, 1000);
	churn_handoff = handoff;
	boxes = calloc(w_threads, sizeof *boxes);
	if (!boxes) w_fail("calloc");
	for (int i = 0; i < w_threads; i++) pthread_mutex_init(&boxes[i].lock, NULL);
	t0 = w_now();
	w_run_threads(churn_thread);
	for (int i = 0; i < w_threads; i++) churn_drain(&boxes[i]);
	w_result(w_now() - t0, "");
	free(boxes);
	return 0;
}
