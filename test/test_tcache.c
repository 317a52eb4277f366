/*
 * test_tcache.c - thread-cache bins adapt their bounds to demand (tcache.c):
 *
 *  - a list one object longer than a bin's grown bound, built and freed whole
 *    in rounds, makes the bin run empty and overflow in turn; it grows on the
 *    overflow too, until a whole round takes no slow path at all;
 *  - a thread that only frees what another thread allocated (its bins never
 *    run empty) keeps its bins at their starting bounds: freeing alone is no
 *    demand for cached objects.
 *
 * Each scenario runs in a thread of its own, so its cache starts fresh.
 * White box: reads the calling thread's tcache (tc_self). Skipped where the
 * bins are off or hold objects by other rules (tcache:0, secure mode,
 * memcheck).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "t.h"
#include "sizeclass.h"
#include "tcache.h"
#include "vg.h"

#define LIST 4097            /* one more than the 32 B bin reaches by refills alone */
#define ROUNDS 40

static bool bins_apply(void)
{
	const char *conf = getenv("BUDDYSLAB_CONF");
	return !vg_active && !(conf && (strstr(conf, "tcache:0") || strstr(conf, "secure")));
}

struct list_result { int32_t max; uint32_t slow_last_rounds; };

static void *list_rounds(void *arg)
{
	struct list_result *res = arg;
	static __thread void *v[LIST];
	unsigned c = size_to_class(32);
	uint32_t slow_before = 0;
	for (int r = 0; r < ROUNDS; r++) {
		if (r == ROUNDS - 5)
			slow_before = tc_self.nslow;
		for (int i = 0; i < LIST; i++) {
			v[i] = malloc(32);
			memset(v[i], r, 32);
		}
		for (int i = 0; i < LIST; i++)
			free(v[i]);
	}
	res->slow_last_rounds = tc_self.nslow - slow_before;
	res->max = tcache_bins(&tc_self)[c].max;
	return NULL;
}

static void list_longer_than_bin(void)
{
	if (!bins_apply())
		SKIP("no thread-cache bins in this configuration");
	struct list_result res = { 0, 0 };
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, list_rounds, &res) == 0);
	pthread_join(t, NULL);
	unsigned c = size_to_class(32);
	printf("  info: 32 B bin bound %d after %d rounds of a %d-object list (start %u, cap %u); "
	       "slow paths in the last 5 rounds: %u\n", res.max, ROUNDS, LIST,
	       class_tcache_max[c], class_tcache_cap[c], res.slow_last_rounds);
	CHECK(res.max >= LIST);
	CHECK(res.slow_last_rounds == 0);
}

#define HANDED 20000
static void *handed[HANDED];

static void *free_only(void *arg)
{
	int32_t *max = arg;
	for (int i = 0; i < HANDED; i++)
		free(handed[i]);
	*max = tcache_bins(&tc_self)[size_to_class(48)].max;
	return NULL;
}

static void freeing_alone_does_not_grow(void)
{
	if (!bins_apply())
		SKIP("no thread-cache bins in this configuration");
	for (int i = 0; i < HANDED; i++)
		REQUIRE((handed[i] = malloc(48)));
	int32_t max = -1;
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, free_only, &max) == 0);
	pthread_join(t, NULL);
	unsigned c = size_to_class(48);
	printf("  info: 48 B bin bound %d after freeing %d objects another thread allocated "
	       "(start %u)\n", max, HANDED, class_tcache_max[c]);
	CHECK(max == (int32_t)class_tcache_max[c]);
}

int main(void)
{
	T_RUN(list_longer_than_bin);
	T_RUN(freeing_alone_does_not_grow);
	return t_done();
}
