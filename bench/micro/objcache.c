/*
 * objcache.c - named object caches (bsl_cache_*, issue 13) against
 * malloc+memset+init on the same work: batches of 64 objects of 192 bytes,
 * each initialised (a mutex, a self-linked list node, a reference count, a
 * zeroed payload), used (reference taken and dropped, fields checked) and
 * freed.
 *   objcache_malloc/192  malloc + memset + init per object, free: every allocator
 *   objcache_ctor/192    bsl_cache_alloc of a cache whose constructor does the
 *                        init once per object; bsl_cache_free. Only buddyslab
 *                        has the calls (weak references): under any other
 *                        allocator this row runs the malloc variant, so its
 *                        ratio is "buddyslab's cache against the peer's best
 *                        way to do the same work".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "micro.h"

typedef struct bsl_cache bsl_cache_t;
extern bsl_cache_t *bsl_cache_create(const char *, size_t, size_t, int (*)(void *, void *, int),
				     void (*)(void *, void *), void *) __attribute__((weak));
extern void *bsl_cache_alloc(bsl_cache_t *, int) __attribute__((weak));
extern void bsl_cache_free(bsl_cache_t *, void *) __attribute__((weak));
extern void bsl_cache_destroy(bsl_cache_t *) __attribute__((weak));

#define OBJS 64
#define OBJ_MAGIC 0x6f626a63u

struct obj {
	pthread_mutex_t lock;              /* 40 bytes */
	struct obj *next, *prev;           /* a list node, self-linked when alone */
	uint32_t magic, refs;
	char payload[192 - 40 - 16 - 8];
};
_Static_assert(sizeof(struct obj) == 192, "192-byte objects");

static void obj_init(struct obj *o)
{
	pthread_mutex_init(&o->lock, NULL);
	o->next = o->prev = o;
	o->magic = OBJ_MAGIC;
	o->refs = 0;
}

static int obj_ctor(void *p, void *arg, int flags)
{
	memset(p, 0, sizeof(struct obj));
	obj_init(p);
	return 0;
}

static void obj_dtor(void *p, void *arg)
{
	pthread_mutex_destroy(&((struct obj *)p)->lock);
}

/* Use an object as a program would: take a reference, check, drop it. */
static int obj_use(struct obj *o, int i)
{
	o->refs++;
	o->payload[i % sizeof o->payload] = (char)i;
	escape(o);
	int ok = o->magic == OBJ_MAGIC && o->next == o && o->refs == 1;
	o->payload[i % sizeof o->payload] = 0;
	o->refs--;
	return ok;
}

long objcache_malloc_run(void *st, long size)
{
	struct obj *v[OBJS];
	for (int i = 0; i < OBJS; i++) {
		struct obj *o = malloc(sizeof *o);
		if (!o) return -1;
		memset(o, 0, sizeof *o);
		obj_init(o);
		v[i] = o;
	}
	for (int i = 0; i < OBJS; i++)
		if (!obj_use(v[i], i)) return -1;
	for (int i = 0; i < OBJS; i++) {
		pthread_mutex_destroy(&v[i]->lock);
		free(v[i]);
	}
	return OBJS;
}

void *objcache_setup(long size)
{
	if (!bsl_cache_create)
		return NULL;     /* not buddyslab: the malloc variant */
	return bsl_cache_create("bench-obj192", sizeof(struct obj), 0, obj_ctor, obj_dtor, NULL);
}

long objcache_ctor_run(void *st, long size)
{
	bsl_cache_t *c = st;
	if (!c)
		return objcache_malloc_run(NULL, size);
	struct obj *v[OBJS];
	for (int i = 0; i < OBJS; i++)
		if (!(v[i] = bsl_cache_alloc(c, 0))) return -1;
	for (int i = 0; i < OBJS; i++)
		if (!obj_use(v[i], i)) return -1;
	for (int i = 0; i < OBJS; i++)
		bsl_cache_free(c, v[i]);
	return OBJS;
}

long objcache_teardown(void *st)
{
	if (st)
		bsl_cache_destroy(st);
	return 0;
}
