/*
 * sizeclass.h - the kmalloc-N size classes and their slab geometry.
 *
 * Classes (class_idx 1..NCLASSES; 0 means "not a slab object"):
 *   16, 32, ..., 128                 steps of 16 (8 classes)
 *   then 4 classes per doubling      160 192 224 256, 320 ... 512, ..., 14336 16384
 * For a request n in (2^k, 2^(k+1)] with k >= 7 the step is 2^(k-2), so the
 * object is at most 2^(k-2) - 1 bytes bigger than n and n > 2^k: the waste is
 * below 2^(k-2) / (2^k + 2^(k-2)) = 20%. From 65 to 128 bytes the step of 16
 * wastes at most 15/80 < 19%. Every class is a multiple of 16, so every object
 * is 16-byte aligned; a class that is a power of two up to 4096 gives objects
 * aligned to their size (slabs start on a page boundary).
 *
 * Slab order: the smallest order (<= SLAB_MAX_ORDER) whose tail waste, the
 * bytes left after the last whole object, is under 1/8 of the slab. With
 * secure guard pages the slab's last page holds no object (so order >= 1).
 *
 * Free-time check without division: with size = odd << shift, inv the inverse
 * of odd modulo 2^64, an offset off is a multiple of size exactly when
 * rotr(off * inv, shift) is at most (2^64-1)/size, and then it equals
 * off / size. Comparing it with nobjs checks "object start inside the slab"
 * in one compare.
 */
#ifndef BSL_SIZECLASS_H
#define BSL_SIZECLASS_H
#include "common.h"
#pragma GCC visibility push(hidden)

#define NCLASSES       36
#define SLAB_MAX       16384
#define SMALL_LOOKUP   1024          /* sizes up to this use one table load */
#define SLAB_MAX_ORDER 5

/* 16 bytes, so the free fast path indexes it with one shift. Entry 0 (not a
 * slab) has nobjs 0: every offset fails the object-index test. */
struct class_info {
	uint64_t inv;         /* inverse of (size >> shift) modulo 2^64 */
	uint32_t size;        /* object bytes */
	uint16_t nobjs;       /* objects per slab */
	uint8_t  shift;       /* trailing zero bits of size */
	uint8_t  order;       /* slab order */
};
_Static_assert(sizeof(struct class_info) == 16, "class_info is 16 bytes");

extern struct class_info class_info[NCLASSES + 1];
/* Thread-cache bin bounds, in objects: a bin starts at class_tcache_max
 * (TCACHE_BIN_START bytes of objects, 4..TCACHE_START_OBJS) and doubles, each
 * time it runs empty (or overflows after it ran empty), up to class_tcache_cap
 * (TCACHE_BIN_CAP bytes, 4..TCACHE_CAP_OBJS), within the growth budgets of
 * tcache.h: a program that holds thousands of small objects and frees them
 * together keeps them in its cache. */
#define TCACHE_BIN_START  (16 * 1024)
#define TCACHE_BIN_CAP    (1024 * 1024)
#define TCACHE_START_OBJS 256
#define TCACHE_CAP_OBJS   8192
#define SLAB_MIN_OBJS    8
extern uint32_t class_tcache_max[NCLASSES + 1];
extern uint32_t class_tcache_cap[NCLASSES + 1];
extern uint8_t small_class[SMALL_LOOKUP / 16 + 1];   /* by (n + 15) >> 4 */
/* Above SMALL_LOOKUP every class boundary is a multiple of 256 (the spacing
 * there is 256 bytes or more), so one more table serves up to SLAB_MAX. */
extern uint8_t mid_class[SLAB_MAX / 256 + 1];         /* by (n + 255) >> 8 */

void sizeclass_init(void);
/* Secure mode, before the first slab: every slab's last page becomes a guard;
 * requests of 0 bytes map to class 0, whose thread-cache bin stays empty, so
 * malloc(0) and calloc of 0 bytes always take the slow path (size0). */
void sizeclass_reserve_guard_page(void);
void sizeclass_zero_to_slow_path(void);
/* The geometry of a class of objects of size bytes (a named cache's slot,
 * slab.h), by the same rules as the kmalloc-N classes. */
void class_info_fill(struct class_info *ci, uint32_t size, unsigned guard_pages);

/* The class of n bytes, 128 < n <= SLAB_MAX: the one formula of the class
 * spacing above 128 (4 classes per doubling), used by size_to_class and by
 * sizeclass.c to build small_class. */
static inline unsigned size_to_class_above_128(size_t n)
{
	unsigned k = 63 - (unsigned)__builtin_clzl(n - 1);      /* 2^k < n <= 2^(k+1) */
	return 9 + 4 * (k - 7) + (unsigned)((n - 1 - ((size_t)1 << k)) >> (k - 2));
}

/* n <= SLAB_MAX; one table load either way */
static inline unsigned size_to_class(size_t n)
{
	ASSERT(n <= SLAB_MAX);
	if (n <= SMALL_LOOKUP)
		return small_class[(n + 15) >> 4];
	return mid_class[(n + 255) >> 8];
}

/* Object index of byte offset off in a slab whose class has the given
 * inverse and shift; >= nobjs when off is not the start of an object. */
static inline size_t obj_index(uint64_t inv, unsigned shift, size_t off)
{
	uint64_t x = off * inv;
	return shift ? (x >> shift) | (x << (64 - shift)) : x;
}

/* Mimic the kernel's names: kmalloc-16, kmalloc-192, kmalloc-8k. */
void class_name(unsigned class_idx, char *buf, size_t len);
#pragma GCC visibility pop
#endif
