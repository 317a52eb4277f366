/*
 * harden.h - secure mode's part of the API (secure.h holds the primitives on
 * plain memory): what free does under fill and quarantine, what leaves the
 * quarantine, and the checks of the sized frees and of the C++ operators.
 * Every entry is called only when its feature is on.
 */
#ifndef BSL_HARDEN_H
#define BSL_HARDEN_H
#include "block.h"
#pragma GCC visibility push(hidden)

/* Free p (looked up as b) the secure way: canary check, then the fill or the
 * quarantine. true: dealt with (p waits in the quarantine, or is a size-0
 * slot); false: the caller frees it as usual. */
bool harden_free(void *p, const struct block *b);
/* The short paths for a small block under tcache_slow_only (canary, fill,
 * quarantine: tcache.h), from malloc's and free's slow paths, before their
 * general dispatch: a slab object of the slow paths' bins, opened, resp.
 * closed and quarantined or cached, exactly as the tiers would (NULL, resp.
 * false: not that case, or the bin is empty, resp. full; the caller goes on). */
void *harden_alloc_small(size_t n, size_t align, bool zero);
bool harden_free_small(void *p);
/* Memory is short: free every block waiting in the quarantine. true if any. */
bool harden_drain(void);
/* The thread exits (its tcache exit hook, with quarantine): its staged objects
 * go to the quarantine's ring. */
void harden_thread_exit(void);

/* `sized` with C++ (cxx.c): new records its form in the canary trailer;
 * delete checks the size (UNSIZED: none given), alignment (0: none) and form. */
#define UNSIZED SIZE_MAX
void bsl_secure_new(void *p, unsigned kind);
void bsl_secure_delete(void *p, size_t n, size_t align, unsigned kind);
#pragma GCC visibility pop
#endif
