/*
 * rss_phases.c - a workload in phases, for watching RSS over time
 * (scripts/rss-timeline samples it every 50 ms under each allocator).
 *
 *   alloc    ~512 MiB in mixed sizes (16 B .. 64 KiB, log-uniform), touched,
 *            paced over 2 s (40 steps of 50 ms)
 *   free90   free a random 90% of the blocks; the other 10% stay, scattered
 *   idle1    3 s without any allocator call
 *   realloc  allocate 100 MiB more (same mix), touched
 *   freeall  free everything (the survivors too)
 *   idle2    3 s without any allocator call
 *
 * -s SCALE scales the sizes and the durations (the smoke test uses 0.01).
 * Prints one line per phase start, "PHASE name seconds", then the RESULT line
 * (work.h); final_rss_kb is VmRSS after idle2, when nothing is allocated.
 * The first and last byte of every block are checked before it is freed.
 */
#include "work.h"

struct blk { unsigned char *p; size_t n; };

static struct blk *blocks;
static size_t nblocks, cap;
static unsigned long rng = 88172645463325252ul;
static double t0;

static void phase(const char *name)
{
	printf("PHASE %s %.3f\n", name, w_now() - t0);
	fflush(stdout);
}

static unsigned char tag(size_t i) { return (unsigned char)(i * 2654435761u >> 13); }

static void alloc_bytes(size_t total)
{
	size_t sum = 0;
	while (sum < total) {
		if (nblocks == cap) {
			cap = cap ? cap * 2 : 65536;
			blocks = realloc(blocks, cap * sizeof *blocks);
			if (!blocks) w_fail("realloc of the block table");
		}
		size_t n = w_logsize(&rng, 4, 16);
		unsigned char *p = w_malloc(n);
		memset(p, tag(nblocks), n);
		blocks[nblocks++] = (struct blk){ p, n };
		sum += n;
	}
}

static void check_free(size_t i)
{
	struct blk *b = &blocks[i];
	if (!b->p) return;
	if (b->p[0] != tag(i) || b->p[b->n - 1] != tag(i)) w_fail("block contents changed");
	free(b->p);
	b->p = NULL;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(int argc, char **argv)
{
	w_args(argc, argv, "rss_phases", 1);
	(void)w_run_threads;     /* single-threaded; keeps -Wunused-function quiet */
	t0 = w_now();
	size_t big = (size_t)w_scaled(512.0 * 1024 * 1024, 1 << 20);
	size_t more = (size_t)w_scaled(100.0 * 1024 * 1024, 1 << 20);
	double step = 0.05 * w_scale, idle = 3.0 * w_scale;

	phase("alloc");
	for (int s = 0; s < 40; s++) {
		alloc_bytes(big / 40);
		double wait = t0 + step * (s + 1) - w_now();
		if (wait > 0) sleep_s(wait);
	}
	phase("free90");
	size_t kept = 0;
	for (size_t i = 0; i < nblocks; i++)
		if (w_rand(&rng) % 10)
			check_free(i);
		else
			kept++;
	phase("idle1");
	sleep_s(idle);
	phase("alloc100");
	size_t first_more = nblocks;
	alloc_bytes(more);
	phase("freeall");
	for (size_t i = 0; i < nblocks; i++)
		check_free(i);
	size_t nmore = nblocks - first_more;
	free(blocks);
	phase("idle2");
	sleep_s(idle);
	phase("end");
	char extra[128];
	snprintf(extra, sizeof extra, " blocks=%zu kept=%zu more=%zu", first_more, kept, nmore);
	w_result(w_now() - t0, extra);
	return 0;
}
