/*
 * valgrind_leaks.c - the program that test/valgrind_leaks.bash runs under
 * memcheck's leak check, one case per run (argv[1]). Each case leaves a known
 * set of blocks "definitely lost" (no pointer to them survives) and "still
 * reachable" (a global points at their start); the script checks memcheck's
 * numbers against the table in valgrind_leaks.bash.
 *
 *   slab_first    the first object of a fresh slab (class 2560: three objects
 *                 in two pages, so only the first is page aligned) is lost
 *   slab_middle   the second of three neighbours is lost, the others freed
 *   slab_last     objects are taken until the next one is no neighbour (a new
 *                 slab); the last of the full slab is lost, the rest freed
 *   run_40k       a 40 KiB page run is lost
 *   large_3x300k  three 300000-byte large blocks are lost
 *   global_kept   a slab object, a page run and a large block are kept in
 *                 globals: still reachable, nothing lost
 *   one_past_end  "vectors" filled to the brim keep their begin and their
 *                 one-past-the-end pointer; the blocks allocated around them
 *                 (where an allocator without gaps puts the next block, at
 *                 the end pointer) are lost: a slab object of exactly its
 *                 class size, a 32 KiB run (a buddy block of its own), a large
 *                 block of exactly 73 pages (with one lost on each side, as
 *                 mappings may be placed upwards or downwards)
 *
 * Only write(2), no stdio: stdio's buffers would be blocks of libc's own.
 * Every case runs in a noinline function that returns before the leak check,
 * so no lost pointer is left in a live stack frame or a callee-saved register
 * (main clobbers them after each case). The lines "layout NAME yes|no" tell
 * whether the blocks lay where the case means them to (asserted for
 * buddyslab only: memcheck's own malloc puts red zones between blocks).
 *
 * With LEAKS_WHO=1 in the environment, every lost block's address is kept
 * (negated, so that memcheck does not count it as a pointer) and an atexit
 * handler asks memcheck who still points at it (monitor command
 * who_points_at): what to look at when a block is not "definitely lost".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#define SLAB_N 2500         /* class kmalloc-2560 */
#define CLASS_N 2560        /* exactly a class size */
#define RUN_N (40 * 1024)
#define RUN_POW2_N (32 * 1024)
#define LARGE_N 300000
#define LARGE_PAGES_N (73 * 4096)

static void *kept_slab, *kept_run, *kept_large;
static struct vec { char *begin, *end; } vec_slab, vec_run, vec_large;

static uintptr_t lost_hidden[8];     /* 0 - address of each lost block */
static size_t lost_len[8];
static unsigned nlost;

/* One write per line, so that no memcheck report lands inside it. */
static void say(const char *a, const char *b, const char *c)
{
	char line[256];
	size_t n = 0;
	for (const char *s[3] = { a, b, c }, **q = s; q < s + 3; q++)
		for (const char *t = *q; *t && n < sizeof line; t++)
			line[n++] = *t;
	if (write(1, line, n) != (ssize_t)n)
		_exit(2);
}

static void layout(const char *name, int ok)
{
	say("layout ", name, ok ? " yes\n" : " no\n");
}

/* The block is filled (so it is no accident of zero pages) and forgotten. */
static void lose(void *p, size_t n)
{
	if (!p)
		_exit(3);
	memset(p, 0x5a, n);
	if (nlost < 8) {
		lost_hidden[nlost] = (uintptr_t)0 - (uintptr_t)p;
		lost_len[nlost++] = n;
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		_exit(3);
	memset(p, 0x11, n);
	return p;
}

static void who_points_at_lost(void)
{
	char cmd[64];
	for (unsigned i = 0; i < nlost; i++) {
		uintptr_t a = (uintptr_t)0 - lost_hidden[i];
		char hex[17];
		for (int k = 15; k >= 0; k--, a >>= 4)
			hex[k] = "0123456789abcdef"[a & 15];
		hex[16] = 0;
		strcpy(cmd, "who_points_at 0x");
		strcat(cmd, hex);
		strcat(cmd, lost_len[i] > 1 ? " 2" : " 1");   /* the start and one byte in */
		VALGRIND_MONITOR_COMMAND(cmd);
	}
}

__attribute__((noinline)) static void slab_first(void)
{
	char *p = malloc(SLAB_N);
	layout("slab_first", ((uintptr_t)p & 4095) == 0);
	lose(p, SLAB_N);
}

__attribute__((noinline)) static void slab_middle(void)
{
	char *a = xmalloc(SLAB_N), *b = xmalloc(SLAB_N), *c = xmalloc(SLAB_N);
	layout("slab_middle", b - a == c - b && b - a > 0 && b - a < 2 * SLAB_N);
	lose(b, SLAB_N);
	free(a);
	free(c);
}

__attribute__((noinline)) static void slab_last(void)
{
	char *p[64];
	int n = 0, found = 0;
	p[n++] = xmalloc(SLAB_N);
	p[n++] = xmalloc(SLAB_N);
	long step = p[1] - p[0];
	while (n < 64) {
		p[n] = xmalloc(SLAB_N);
		n++;
		if (p[n - 1] - p[n - 2] != step) {
			found = 1;
			break;
		}
	}
	/* p[n-2] is the last object of the full slab when a new one began */
	layout("slab_last", found && step > 0 && step < 2 * SLAB_N);
	lose(p[n - 2], SLAB_N);
	for (int i = 0; i < n; i++)
		if (i != n - 2)
			free(p[i]);
}

__attribute__((noinline)) static void run_40k(void)
{
	lose(malloc(RUN_N), RUN_N);
}

__attribute__((noinline)) static void large_3x300k(void)
{
	for (int i = 0; i < 3; i++)
		lose(malloc(LARGE_N), LARGE_N);
}

__attribute__((noinline)) static void global_kept(void)
{
	kept_slab = xmalloc(SLAB_N);
	kept_run = xmalloc(RUN_N);
	kept_large = xmalloc(LARGE_N);
}

static void vec_fill(struct vec *v, size_t n)
{
	v->begin = xmalloc(n);
	v->end = v->begin + n;
}

__attribute__((noinline)) static void one_past_end(void)
{
	vec_fill(&vec_slab, CLASS_N);
	char *next_slab = xmalloc(CLASS_N);
	vec_fill(&vec_run, RUN_POW2_N);
	char *next_run = xmalloc(RUN_POW2_N);
	char *before_large = xmalloc(LARGE_PAGES_N);
	vec_fill(&vec_large, LARGE_PAGES_N);
	char *after_large = xmalloc(LARGE_PAGES_N);
	/* "yes" when some lost block starts where a vector ends (what the case
	 * is about; an allocator that leaves a gap after every block says no) */
	layout("one_past_end", next_slab == vec_slab.end || next_run == vec_run.end ||
			       before_large == vec_large.end || after_large == vec_large.end);
	lose(next_slab, CLASS_N);
	lose(next_run, RUN_POW2_N);
	lose(before_large, LARGE_PAGES_N);
	lose(after_large, LARGE_PAGES_N);
}

/* Overwrite the caller-saved and callee-saved registers and the stack below
 * with values that point nowhere. */
__attribute__((noinline)) static void scrub(void)
{
	volatile char junk[4096];
	memset((char *)junk, 0, sizeof junk);
	__asm__ volatile("" ::: "rbx", "r12", "r13", "r14", "r15", "memory");
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*run)(void); } cases[] = {
		{ "slab_first", slab_first }, { "slab_middle", slab_middle },
		{ "slab_last", slab_last }, { "run_40k", run_40k },
		{ "large_3x300k", large_3x300k }, { "global_kept", global_kept },
		{ "one_past_end", one_past_end },
	};
	if (argc != 2) {
		say("usage: valgrind_leaks CASE\n", "", "");
		return 2;
	}
	const char *who = getenv("LEAKS_WHO");
	if (who && *who == '1')
		atexit(who_points_at_lost);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (strcmp(argv[1], cases[i].name) == 0) {
			cases[i].run();
			scrub();
			say("done ", argv[1], "\n");
			return 0;
		}
	say("unknown case ", argv[1], "\n");
	return 2;
}
