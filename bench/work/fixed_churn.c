/* fixed_churn - each thread repeatedly builds a linked list of 4,096 fixed-size
 * objects (thread i uses 32, 64, 128 or 256 B), walks it checking every node,
 * and frees it front to back. Final RSS is measured after everything is freed. */
#include "work.h"

#define NODES 4096

struct node { struct node *next; long id; };

static long rounds;

static void *run(void *arg)
{
	long me = (long)arg;
	size_t size = 32UL << (me % 4);
	for (long r = 0; r < rounds; r++) {
		struct node *head = NULL, **tail = &head;
		for (long i = 0; i < NODES; i++) {
			struct node *n = w_malloc(size);
			n->next = NULL;
			n->id = i ^ r;
			memset(n + 1, (int)i, size - sizeof *n);
			*tail = n;
			tail = &n->next;
		}
		long i = 0;
		while (head) {
			struct node *n = head;
			if (n->id != (i ^ r) || ((unsigned char *)n)[size - 1] != (unsigned char)i)
				w_fail("node contents changed");
			head = n->next;
			free(n);
			i++;
		}
		if (i != NODES) w_fail("list lost nodes");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	w_args(argc, argv, "fixed_churn", 2);
	rounds = w_scaled(4000, 2);
	double t0 = w_now();
	w_run_threads(run);
	w_result(w_now() - t0, "");
	return 0;
}
