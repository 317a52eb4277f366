/*
 * large.h - blocks above mmap_threshold, mapped straight from the OS.
 *
 * Every live large block is recorded in a hash table (sharded by address,
 * one lock per shard), so that free() can tell a large block from a foreign
 * pointer without reading memory the pointer points at.
 */
#ifndef BSL_LARGE_H
#define BSL_LARGE_H
#include "common.h"
#pragma GCC visibility push(hidden)

void *large_alloc(size_t nbytes, size_t align_bytes);
/* Size of the mapping when p is a live large block, else 0. */
size_t large_usable_size(const void *p);
/* Unmap p; false when p is not a live large block. */
bool large_free(void *p);
/* Resize with mremap; NULL (errno ENOMEM) when that fails; p stays valid. */
void *large_realloc(void *p, size_t nbytes);
void large_totals(size_t *nbytes, size_t *nblocks);
void large_lock_all(void);
void large_unlock_all(void);
#pragma GCC visibility pop
#endif
