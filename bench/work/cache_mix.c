/* cache_mix - a cache server: a shared table of long-lived values (32 B .. 4 KiB)
 * that threads read (80%) and replace (20%, the old value is freed by whichever
 * thread replaces it), while every request also allocates a short-lived buffer
 * (256 B .. 16 KiB), fills it and frees it. Final RSS is measured with the
 * cache still full (live_kb = bytes of values held). */
#include "work.h"

#define STRIPES 64

struct val { size_t n; long key; char data[]; };

static struct val **table;
static long keys, requests;
static pthread_mutex_t lock[STRIPES];

static struct val *make(long key, unsigned long *seed)
{
	size_t n = w_logsize(seed, 5, 12);
	struct val *v = w_malloc(sizeof *v + n);
	v->n = n;
	v->key = key;
	memset(v->data, (int)(key & 0xff), n);
	return v;
}

static void check(const struct val *v, long key)
{
	if (v->key != key || v->data[0] != (char)(key & 0xff) || v->data[v->n - 1] != (char)(key & 0xff))
		w_fail("cached value changed");
}

static void *run(void *arg)
{
	long me = (long)arg;
	unsigned long seed = 0xA0761D6478BD642FUL * (me + 1);
	for (long k = me; k < keys; k += w_threads) table[k] = make(k, &seed);   /* warm up */
	for (long r = 0; r < requests; r++) {
		size_t bn = w_logsize(&seed, 8, 14);
		char *buf = w_malloc(bn);                 /* the request: short-lived */
		memset(buf, (int)r, bn);
		long key = (long)((w_rand(&seed) ^ (unsigned char)buf[bn / 2]) % (unsigned long)keys);
		if (w_rand(&seed) % 5 == 0) {
			struct val *v = make(key, &seed), *old;
			pthread_mutex_lock(&lock[key % STRIPES]);
			old = table[key];
			table[key] = v;
			pthread_mutex_unlock(&lock[key % STRIPES]);
			if (old) { check(old, key); free(old); }
		} else {
			pthread_mutex_lock(&lock[key % STRIPES]);
			if (table[key]) check(table[key], key);
			pthread_mutex_unlock(&lock[key % STRIPES]);
		}
		if (buf[bn - 1] != (char)r) w_fail("request buffer changed");
		free(buf);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char extra[64];
	long live = 0;
	w_args(argc, argv, "cache_mix", 2);
	keys = w_scaled(400000, 1000);
	requests = w_scaled(3e6, 1000) / w_threads;
	table = calloc(keys, sizeof *table);
	if (!table) w_fail("calloc");
	for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&lock[i], NULL);
	double t0 = w_now();
	w_run_threads(run);
	double t = w_now() - t0;
	for (long k = 0; k < keys; k++) live += table[k] ? (long)table[k]->n : 0;
	snprintf(extra, sizeof extra, " live_kb=%ld", live / 1024);
	w_result(t, extra);
	for (long k = 0; k < keys; k++) if (table[k]) { check(table[k], k); free(table[k]); }
	free(table);
	return 0;
}
