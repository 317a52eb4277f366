/*
 * test_sizeclass.c - the kmalloc class table: every request maps to the
 * smallest class that holds it, waste stays under 25% above 64 bytes, slab
 * tail waste stays under 1/8, and the division-free object-index test agrees
 * with real division at every offset.
 */
#include "t.h"
#include "sizeclass.h"

static void t_every_size_maps_to_smallest_fitting_class(void)
{
	for (size_t n = 0; n <= SLAB_MAX; n++) {
		unsigned c = size_to_class(n);
		REQUIRE(c >= 1 && c <= NCLASSES);
		CHECK(class_info[c].size >= n);
		if (c > 1)
			CHECK(class_info[c - 1].size < n);
		if (n > 64)
			CHECK((class_info[c].size - n) * 4 <= class_info[c].size);
	}
}

static void t_classes_are_16_aligned_and_increasing(void)
{
	for (unsigned c = 1; c <= NCLASSES; c++) {
		CHECK(class_info[c].size % 16 == 0);
		if (c > 1)
			CHECK(class_info[c].size > class_info[c - 1].size);
	}
	CHECK(class_info[1].size == 16);
	CHECK(class_info[NCLASSES].size == SLAB_MAX);
	CHECK(class_info[0].nobjs == 0);
}

static void t_slab_tail_waste_under_one_eighth(void)
{
	for (unsigned c = 1; c <= NCLASSES; c++) {
		const struct class_info *ci = &class_info[c];
		size_t slab = PAGE_SIZE << ci->order;
		CHECK(ci->nobjs == slab / ci->size);
		CHECK((slab - (size_t)ci->nobjs * ci->size) * 8 < slab);
	}
}

static void t_object_index_without_division(void)
{
	for (unsigned c = 1; c <= NCLASSES; c++) {
		const struct class_info *ci = &class_info[c];
		size_t slab = PAGE_SIZE << ci->order;
		for (size_t off = 0; off < slab; off++) {
			size_t idx = obj_index(ci->inv, ci->shift, off);
			bool start = off % ci->size == 0 && off / ci->size < ci->nobjs;
			if (start)
				CHECK(idx == off / ci->size);
			else
				CHECK(idx >= ci->nobjs);
		}
	}
}

static void t_kernel_style_names(void)
{
	char name[32];
	class_name(1, name, sizeof name);
	CHECK(strcmp(name, "kmalloc-16") == 0);
	class_name(size_to_class(192), name, sizeof name);
	CHECK(strcmp(name, "kmalloc-192") == 0);
	class_name(NCLASSES, name, sizeof name);
	CHECK(strcmp(name, "kmalloc-16k") == 0);
}

int main(void)
{
	sizeclass_init();
	T_RUN(t_every_size_maps_to_smallest_fitting_class);
	T_RUN(t_classes_are_16_aligned_and_increasing);
	T_RUN(t_slab_tail_waste_under_one_eighth);
	T_RUN(t_object_index_without_division);
	T_RUN(t_kernel_style_names);
	return t_done();
}
