/*
 * secure.h - BUDDYSLAB_CONF=secure: hardening checks, each with its own cost.
 *
 *   guard    the last page of every slab and a page on each side of every
 *            large block are PROT_NONE: a linear overflow out of a slab or a
 *            large block faults. Slabs lose a page (and are 8 pages or more);
 *            large blocks are never resized with mremap, and keep their guards
 *            in the mapping cache (a reused one gets a new rear guard).
 *   canary   the last 8 bytes of every slab object hold a value derived from
 *            a per-process key and the object's address; the program sees
 *            8 bytes less (malloc_usable_size), and free checks the value:
 *            an overflow past the usable size aborts.
 *   fill     freed slab objects are filled with SEC_FILL_BYTE past their two
 *            link words, and the fill is checked when the object is handed
 *            out again: a write after free aborts. New slabs are filled whole.
 *   shuffle  a new slab's objects go on its free list in random order, so
 *            the address of the next object is not predictable from the last.
 * canary and fill run on the slow paths only, so they turn the thread cache
 * off; guard and shuffle keep it. The default build's fast paths do not
 * test opt.secure at all.
 *
 * Invariant: the set is fixed by secure_init, before the first allocation,
 * and never changes (class geometry and block layouts depend on it).
 */
#ifndef BSL_SECURE_H
#define BSL_SECURE_H
#include "config.h"
#pragma GCC visibility push(hidden)

#define SEC_FILL_BYTE 0xdb     /* the SEC_* feature bits are in config.h */

/* Bytes at the end of each slab object kept for the canary: 0 or 8. */
extern unsigned sec_canary_bytes;

void secure_init(void);     /* after config_init, before any slab exists */

/* Slab hooks (slab.c, under the slab cpu lock): make a new slab's last page
 * a guard (false: out of budget or refused, the slab goes without), and undo
 * it before the slab goes back (false: keep the slab); fill a new slab; a
 * random order of n objects for a new slab's free list (n <= 2048). */
bool secure_guard_slab(void *last_page);
bool secure_unguard_slab(void *last_page);
void secure_fill(void *p, size_t n);
void secure_shuffle(uint16_t *perm, unsigned n);

/* Object hooks (malloc.c): after taking p from its slab / before freeing it. */
void secure_on_alloc(void *p, unsigned class_idx);
void secure_on_free(void *p, unsigned class_idx);

/* Large blocks with a guard page on each side; unmap takes the block's
 * address and length, guards included implicitly. */
void *secure_large_map(size_t len, size_t align_bytes);
void secure_large_unmap(void *p, size_t len);
#pragma GCC visibility pop
#endif
