/*
 * large.h - blocks above mmap_threshold, mapped straight from the OS.
 *
 * Every live large block is recorded in a hash table (sharded by address,
 * one lock per shard), so that free() can tell a large block from a foreign
 * pointer without reading memory the pointer points at.
 *
 * Freed mappings are kept in a small cache (LARGE_CACHE_SLOTS entries, at most
 * opt.large_cache bytes) and reused by later large allocations of any size,
 * so that a program that allocates and frees big buffers does not page-fault
 * every 4 KiB each time: a bigger mapping is split and its tail stays cached
 * (cache_take in large.c). They age out after
 * decay_ms (large_decay) and malloc_trim empties the cache. Cached mappings
 * are never handed to the buddy layer.
 */
#ifndef BSL_LARGE_H
#define BSL_LARGE_H
#include "common.h"
#pragma GCC visibility push(hidden)

/* *dirty is set when the block is a reused mapping (not known to be zero). */
void *large_alloc(size_t nbytes, size_t align_bytes, bool *dirty);
/* Unmap cached mappings freed before `before_ms` (UINT64_MAX: all). Returns bytes. */
size_t large_cache_release(uint64_t before_ms);
/* Size of the mapping when p is a live large block, else 0; then *was_freed
 * tells whether p was a large block that has been freed. */
size_t large_usable_size(const void *p, bool *was_freed);
/* Unmap p; false when p is not a live large block. */
bool large_free(void *p);
/* Resize live block p, whose mapping is old bytes (large_usable_size), to
 * hold nbytes, with mremap; NULL (errno ENOMEM) when that fails; p stays valid. */
void *large_realloc(void *p, size_t old, size_t nbytes);
/* true when p is the calling thread's last block large_realloc resized or left
 * in place, no block has been freed since, and nbytes needs its page count:
 * realloc returns p without a lookup (not under secure mode or memcheck). */
bool large_realloc_stays(const void *p, size_t nbytes);
void large_totals(size_t *nbytes, size_t *nblocks);
void large_counts(uint64_t *nalloc, uint64_t *nfree);
size_t large_cached_bytes(void);
/* Whether p lies in a freed mapping the cache keeps (error reports only). */
bool large_cache_holds(const void *p);
void large_lock_all(void);
void large_unlock_all(void);
#pragma GCC visibility pop
#endif
