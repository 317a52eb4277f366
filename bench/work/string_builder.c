/* string_builder - each thread builds strings of 64 B .. 64 KiB by appending
 * 1-32 byte pieces, calling realloc for every append with the exact new length
 * (no capacity doubling: the allocator's in-place growth is what is measured).
 * The last 32 strings stay alive, so reallocs run among other live blocks.
 * Final RSS is measured after everything is freed. */
#include "work.h"

#define KEEP 32

static long strings;

static char expect(long i) { return (char)('a' + i % 26); }

static void check_free(char *s, long len)
{
	if (!s) return;
	for (long i = 0; i < len; i += 997)
		if (s[i] != expect(i)) w_fail("string contents changed");
	if (s[len - 1] != expect(len - 1)) w_fail("string tail changed");
	free(s);
}

static void *run(void *arg)
{
	long me = (long)arg;
	unsigned long seed = 0xD1B54A32D192ED03UL * (me + 1);
	char *keep[KEEP] = { 0 };
	long keep_len[KEEP] = { 0 };
	for (long k = 0; k < strings; k++) {
		long target = (long)w_logsize(&seed, 6, 16), len = 0;
		char *s = NULL;
		while (len < target) {
			long piece = 1 + (long)(w_rand(&seed) % 32);
			char *t = realloc(s, len + piece);
			if (!t) w_fail("realloc returned NULL");
			s = t;
			for (long i = len; i < len + piece; i++) s[i] = expect(i);
			len += piece;
		}
		check_free(keep[k % KEEP], keep_len[k % KEEP]);
		keep[k % KEEP] = s;
		keep_len[k % KEEP] = len;
	}
	for (int i = 0; i < KEEP; i++) check_free(keep[i], keep_len[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	w_args(argc, argv, "string_builder", 2);
	strings = w_scaled(20000, 40);
	double t0 = w_now();
	w_run_threads(run);
	w_result(w_now() - t0, "");
	return 0;
}
