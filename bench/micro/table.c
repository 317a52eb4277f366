/* table.c - the list of microbenchmarks and their arguments. */
#include "micro.h"

long malloc_free_run(void *, long);
void *batch_lifo_setup(long), *batch_random_setup(long);
long batch_run(void *, long), batch_teardown(void *);
long calloc_run(void *, long);
long realloc_chain_run(void *, long);
long aligned_run(void *, long);
long large_run(void *, long);
void *prodcons_setup(long);
long prodcons_run(void *, long), prodcons_teardown(void *);
long objcache_malloc_run(void *, long), objcache_ctor_run(void *, long);
void *objcache_setup(long);
long objcache_teardown(void *);

#define K 1024L
#define M (1024L * 1024L)
static const long size_classes[] = { 8, 16, 32, 48, 64, 96, 128, 256, 512, 1024, 2048,
	4096, 8192, 16384, 32768, 65536, 131072, 0 };
static const long batch_sizes[] = { 16, 64, 512, 4096, 0 };
static const long calloc_sizes[] = { 64, 4 * K, 64 * K, 1 * M, 0 };
static const long alignments[] = { 64, 4 * K, 2 * M, 0 };
static const long large_sizes[] = { 256 * K, 1 * M, 4 * M, 16 * M, 64 * M, 0 };
static const long pc_sizes[] = { 64, 1024, 0 };
static const long obj_sizes[] = { 192, 0 };

const struct micro micro_table[] = {
	{ "malloc_free", size_classes, 0, malloc_free_run, 0, 0 },
	{ "batch_lifo", batch_sizes, batch_lifo_setup, batch_run, batch_teardown, 0 },
	{ "batch_random", batch_sizes, batch_random_setup, batch_run, batch_teardown, 0 },
	{ "calloc", calloc_sizes, 0, calloc_run, 0, 0 },
	{ "realloc_chain", 0, 0, realloc_chain_run, 0, 0 },
	{ "aligned", alignments, 0, aligned_run, 0, 0 },
	{ "large", large_sizes, 0, large_run, 0, 1 },
	{ "prodcons", pc_sizes, prodcons_setup, prodcons_run, prodcons_teardown, 0 },
	{ "objcache_malloc", obj_sizes, 0, objcache_malloc_run, 0, 0 },
	{ "objcache_ctor", obj_sizes, objcache_setup, objcache_ctor_run, objcache_teardown, 0 },
	{ 0, 0, 0, 0, 0, 0 }
};
