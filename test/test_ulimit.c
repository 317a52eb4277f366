/*
 * test_ulimit.c - out of address space with threads: under RLIMIT_AS = 200 MiB
 * (set before this program re-executes itself, so buddyslab starts under it),
 * 8 threads allocate through every API until every size fails, check each
 * failure is NULL with ENOMEM (EINVAL never, posix_memalign's *p untouched)
 * and each block is aligned and writable, then free everything; afterwards
 * the same amount can be allocated again. No crash, no hang (alarm), no abort.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include "t.h"

#define LIMIT_MB   200
#define NTHREADS   8
#define MAXBLOCKS  200000

struct worker {
	int id;
	void **blocks;
	size_t n, bytes, bad;
	char msg[256];
};

static size_t pick_size(unsigned *x)
{
	static const size_t base[] = { 1, 24, 100, 700, 3000, 16384, 40000, 131072, 300000,
		1 << 20, 5 << 20 };
	*x = *x * 1103515245 + 12345;
	return base[(*x >> 8) % (sizeof base / sizeof base[0])] + ((*x >> 16) & 63);
}

/* One allocation through API number api; NULL on failure (errno checked). */
static void *alloc_one(struct worker *w, int api, size_t n, size_t *align)
{
	void *p = NULL;
	*align = 16;
	errno = 0;
	switch (api) {
	case 0: p = malloc(n); break;
	case 1: p = calloc(1, n); break;
	case 2: p = realloc(NULL, n); break;
	case 3: { void *q = (void *)0x1; int e = posix_memalign(&q, *align = 4096, n);
		if (e) { if (e != ENOMEM || q != (void *)0x1) w->bad++; return NULL; }
		p = q; break; }
	case 4: p = aligned_alloc(*align = 64, (n + 63) & ~(size_t)63); break;
	case 5: p = memalign(*align = 1 << 16, n); break;
	case 6: p = valloc(n); *align = 4096; break;
	case 7: p = pvalloc(n); *align = 4096; break;
	case 8: p = reallocarray(NULL, n, 1); break;
	}
	if (!p && api != 3 && errno != ENOMEM) {
		snprintf(w->msg, sizeof w->msg, "api %d size %zu: NULL with errno %d", api, n, errno);
		w->bad++;
	}
	return p;
}

static pthread_barrier_t start;   /* all threads exist before any allocates */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(&start);
	unsigned x = (unsigned)w->id * 2654435761u + 1;
	int fails_in_a_row = 0;
	while (w->n < MAXBLOCKS && fails_in_a_row < 400) {
		size_t n = pick_size(&x), align;
		int api = (int)((x >> 4) % 9);
		char *p = alloc_one(w, api, n, &align);
		if (!p) {
			fails_in_a_row++;
			continue;
		}
		fails_in_a_row = 0;
		if ((uintptr_t)p & (align - 1)) {
			snprintf(w->msg, sizeof w->msg, "api %d: %p not aligned to %zu", api, (void *)p, align);
			w->bad++;
		}
		p[0] = (char)w->id;
		p[n - 1] = (char)w->id;
		if ((x & 7) == 0) {     /* grow some in place or by moving */
			char *q = realloc(p, n * 2);
			if (q) {
				if (q[0] != (char)w->id) w->bad++;
				p = q;
				n *= 2;
				p[n - 1] = (char)w->id;
			} else if (errno != ENOMEM) {
				w->bad++;
			}
		}
		w->blocks[w->n++] = p;
		w->bytes += n;
	}
	return NULL;
}

static size_t round_all(const char *label)
{
	static struct worker w[NTHREADS];
	static void *blocks[NTHREADS][MAXBLOCKS];
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 << 10);    /* 8 stacks must fit under the limit */
	pthread_t t[NTHREADS];
	pthread_barrier_init(&start, NULL, NTHREADS + 1);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .id = i + 1, .blocks = blocks[i] };
		if (pthread_create(&t[i], &at, worker_main, &w[i]) != 0) {
			printf("FAIL %s: pthread_create %d under the limit\n", label, i);
			return 0;
		}
	}
	pthread_barrier_wait(&start);
	size_t total = 0, bad = 0, nblocks = 0;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		total += w[i].bytes;
		nblocks += w[i].n;
		bad += w[i].bad;
		if (w[i].bad)
			fprintf(stderr, "  thread %d: %zu bad, last: %s\n", i, w[i].bad, w[i].msg);
	}
	pthread_barrier_destroy(&start);
	for (int i = 0; i < NTHREADS; i++)       /* free in another thread's order */
		for (size_t k = 0; k < w[i].n; k++) {
			char *p = w[i].blocks[k];
			if (p[0] != (char)w[i].id)
				bad++;
			free(p);
		}
	fprintf(stderr, "  info: %s: %zu blocks, %zu MiB, before every size failed\n",
		label, nblocks, total >> 20);
	if (bad)
		printf("FAIL %s: %zu bad results\n", label, bad);
	else if (total < (LIMIT_MB / 4) << 20)
		printf("FAIL %s: only %zu MiB under a %d MiB limit\n", label, total >> 20, LIMIT_MB);
	else
		printf("PASS %s\n", label);
	fflush(stdout);
	return total;
}

static int child_main(void)
{
	alarm(240);
	size_t first = round_all("rlimit_as_8_threads_every_api");
	size_t second = round_all("rlimit_as_again_after_free");
	/* the memory came back: the second round got most of what the first did */
	if (!first || second * 4 < first * 3)
		printf("FAIL rlimit_as_memory_came_back: %zu MiB then %zu MiB\n", first >> 20, second >> 20);
	else
		printf("PASS rlimit_as_memory_came_back\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_main();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = { (rlim_t)LIMIT_MB << 20, (rlim_t)LIMIT_MB << 20 };
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		execl("/proc/self/exe", argv[0], "--child", (char *)NULL);
		_exit(4);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("FAIL rlimit_as_child (status %#x: crashed, aborted or hung)\n", st);
		return 1;
	}
	return 0;
}
