/*
 * sizeclass.c - build the class table once at start-up (see sizeclass.h).
 */
#include "sizeclass.h"

struct class_info class_info[NCLASSES + 1];
uint32_t class_tcache_max[NCLASSES + 1];
uint32_t class_tcache_cap[NCLASSES + 1];
uint8_t small_class[SMALL_LOOKUP / 16 + 1];
uint8_t mid_class[SLAB_MAX / 256 + 1];

static uint64_t inverse_mod_2_64(uint64_t odd)
{
	uint64_t x = odd;             /* correct to 3 bits; Newton doubles them */
	for (int i = 0; i < 5; i++)
		x *= 2 - odd * x;
	return x;
}

static uint32_t nth_class_size(unsigned idx)
{
	if (idx <= 8)
		return 16 * idx;
	unsigned k = 7 + (idx - 9) / 4, step = (idx - 9) % 4 + 1;
	return (1u << k) + step * (1u << (k - 2));
}

/* Objects of this size in `bytes` of a bin, 4..most. */
static uint32_t tcache_max_for(uint32_t size, uint32_t bytes, uint32_t most)
{
	uint32_t n = bytes / size;
	return n < 4 ? 4 : n > most ? most : n;
}

static unsigned size_to_class_slow(size_t n)
{
	if (n <= 128)
		return n <= 16 ? 1 : (unsigned)((n + 15) >> 4);
	return size_to_class_above_128(n);
}

/* The smallest slab order that holds SLAB_MIN_OBJS objects (with one object
 * per slab, every allocation of a 4 KiB..16 KiB class would be a buddy call)
 * and whose objects fill all but under 1/8 of the slab
 * (at most 1/8 when the slab's last guard_pages pages are guards, secure
 * mode: the guard counts as waste, so guarded slabs are 8 pages or more). */
static void slab_geometry(struct class_info *ci, unsigned guard_pages)
{
	unsigned order = 0;
	for (;; order++) {
		size_t slab = PAGE_SIZE << order, guard = (size_t)guard_pages << PAGE_SHIFT;
		if (slab <= guard)
			continue;
		size_t waste = (slab - guard) % ci->size + guard;
		if (order == SLAB_MAX_ORDER ||
		    (slab - guard >= SLAB_MIN_OBJS * (size_t)ci->size &&
		     (guard ? waste * 8 <= slab : waste * 8 < slab)))
			break;
	}
	ci->order = (uint8_t)order;
	ci->nobjs = (uint16_t)(((PAGE_SIZE << order) - ((size_t)guard_pages << PAGE_SHIFT)) / ci->size);
}

void class_info_fill(struct class_info *ci, uint32_t size, unsigned guard_pages)
{
	ci->size = size;
	ci->shift = (uint8_t)__builtin_ctz(size);
	ci->inv = inverse_mod_2_64(size >> ci->shift);
	slab_geometry(ci, guard_pages);
}

void sizeclass_reserve_guard_page(void)
{
	for (unsigned c = 1; c <= NCLASSES; c++)
		slab_geometry(&class_info[c], 1);
}

void sizeclass_zero_to_slow_path(void)
{
	small_class[0] = 0;
}

void sizeclass_init(void)
{
	for (unsigned c = 1; c <= NCLASSES; c++) {
		struct class_info *ci = &class_info[c];
		ci->size = nth_class_size(c);
		ci->shift = (uint8_t)__builtin_ctz(ci->size);
		ci->inv = inverse_mod_2_64(ci->size >> ci->shift);
		slab_geometry(ci, 0);
		class_tcache_max[c] = tcache_max_for(ci->size, TCACHE_BIN_START, TCACHE_START_OBJS);
		class_tcache_cap[c] = tcache_max_for(ci->size, TCACHE_BIN_CAP, TCACHE_CAP_OBJS);
	}
	small_class[0] = 1;
	for (unsigned i = 1; i <= SMALL_LOOKUP / 16; i++)
		small_class[i] = (uint8_t)size_to_class_slow(i * 16);
	for (unsigned i = SMALL_LOOKUP / 256 + 1; i <= SLAB_MAX / 256; i++) {
		mid_class[i] = (uint8_t)size_to_class_above_128(i * 256);
		/* every size of the 256 bytes it stands for is of that class */
		VERIFY(size_to_class_above_128(i * 256 - 255) == mid_class[i]);
	}
}

void class_name(unsigned class_idx, char *buf, size_t len)
{
	static const char digits[] = "0123456789";
	uint32_t size = class_info[class_idx].size;
	char tmp[16];
	int n = 0;
	bool kilo = size >= 8192 && size % 1024 == 0;
	uint32_t v = kilo ? size / 1024 : size;
	do { tmp[n++] = digits[v % 10]; v /= 10; } while (v);
	size_t i = 0;
	const char *prefix = "kmalloc-";
	while (*prefix && i + 1 < len) buf[i++] = *prefix++;
	while (n && i + 1 < len) buf[i++] = tmp[--n];
	if (kilo && i + 1 < len) buf[i++] = 'k';
	buf[i] = 0;
}
