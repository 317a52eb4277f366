/*
 * secure.h - BUDDYSLAB_CONF=secure: hardening checks, each with its own cost.
 *
 *   guard      the last page of every slab and a page on each side of every
 *              large block are PROT_NONE: a linear overflow out of a slab or a
 *              large block, or an underflow before a large block, faults.
 *              Slabs lose a page (and are 8 pages or more); large blocks are
 *              never resized with mremap, and keep their guards in the mapping
 *              cache (a reused one gets a new rear guard).
 *   canary     every block (slab object, page run, large block) ends in a
 *              16-byte trailer: the requested size, and a tag derived from a
 *              per-process key, the trailer's address, the size and the kind
 *              (malloc, new, new[], free). The bytes between the request and
 *              the trailer hold a pad byte. free checks both: a write past the
 *              requested size aborts ("heap overflow"). Slab objects also check
 *              the trailer of the slot before them ("heap underflow"); the first
 *              slot of every slab is never handed out, so each object has one.
 *              A page run starts SEC_RUN_FRONT bytes into its first page, after
 *              a front canary checked the same way (unless it is aligned to
 *              more). malloc_usable_size returns the requested size.
 *   fill       freed slab objects are zeroed past their two link words, and the
 *              zeros are checked when the object is handed out again: a write
 *              after free aborts ("write after free"); a new slab is zeroed
 *              whole, so a fresh object never shows an earlier owner's data.
 *              Freed page runs and large blocks are zeroed (os_zero: up to
 *              64 KiB written whole, above it resident pages written, the
 *              others dropped).
 *   shuffle    a new slab's objects go on its free list in random order, so
 *              the address of the next object is not predictable from the last.
 *   quarantine a freed block is not reused at once: slab objects wait in a
 *              FIFO (SEC_QOBJS objects, SEC_QOBJ_BYTES bytes, split into
 *              SEC_QSHARDS by the freeing CPU); page runs and large blocks
 *              wait in another (SEC_QPAGES blocks). Large blocks wait
 *              PROT_NONE (their pages kept up to SEC_QRESIDENT bytes, dropped
 *              past it), so a read or write after free faults; runs stay
 *              readable and, with fill, their zeros are checked as they
 *              leave. A second free of a waiting block is a double free.
 *   size0      malloc(0) returns a distinct address in a PROT_NONE region: any
 *              read or write through it, before or after free, faults.
 *   sized      free_sized, free_aligned_sized and C++ sized delete check the
 *              size (the requested size exactly when canary is on, else at
 *              most the usable size) and the alignment; with canary on, delete
 *              and delete[] check that new, resp. new[], made the block.
 * canary, fill and quarantine keep the thread cache for the slow paths only
 * (their checks live there: tcache_slow_only, tcache.h; a small block takes
 * harden.c's short paths, before the tiers' dispatch), and quarantine stages
 * a thread's freed objects before they enter the object ring (SEC_QSTAGE at a
 * time, one ring lock each); guard, shuffle, sized and size0 keep the fast
 * paths (size0 sends requests of 0 bytes to the slow path:
 * sizeclass_zero_to_slow_path). The default build's fast paths do not test
 * opt.secure at all. Under memcheck only guard and shuffle stay (memcheck
 * checks the objects itself).
 *
 * Invariant: the set is fixed by secure_init, before the first allocation,
 * and never changes (class geometry and block layouts depend on it). With
 * canary, every slot of every slab, free or not, ends in a valid trailer.
 * Locks: each quarantine ring's lock and sec_lock (the size-0 map) are
 * leaves: taken one at a time with no other lock held (src/LAYERS.md).
 */
#ifndef BSL_SECURE_H
#define BSL_SECURE_H
#include "config.h"
#pragma GCC visibility push(hidden)

#define SEC_TRAILER    16          /* canary bytes at the end of each block */
#define SEC_REQ_MAX    ((size_t)1 << 40)   /* with canary: larger requests fail */
#define SEC_QOBJS      4096
#define SEC_QOBJ_BYTES (4u << 20)
#define SEC_QPAGES     64
#define SEC_QSHARDS    8           /* the object quarantine, split by CPU */
#define SEC_QRESIDENT  ((size_t)32 << 20)   /* waiting page blocks that keep their pages */

/* The kinds a trailer records (sized: delete vs delete[]). */
enum sec_kind { SEC_KIND_MALLOC, SEC_KIND_NEW, SEC_KIND_NEW_ARRAY, SEC_KIND_FREE };

/* Bytes of each block kept for the trailer (0 or SEC_TRAILER), the slots at
 * the start of each slab that are never handed out (0 or 1), and where in its
 * first page a page run's block starts (0, or SEC_RUN_FRONT: after a front
 * canary; runs aligned to more than that start at 0 and have none). */
#define SEC_RUN_FRONT 64
extern unsigned sec_canary_bytes, sec_front_objs, sec_run_front;
/* The bytes a block of n takes with its trailer. A block of 0 takes one more:
 * its trailer alone would fill a 16-byte slot, whose first two words are the
 * free mark and link of slab.h, rewritten at every malloc and free. */
static inline size_t sec_need(size_t n)
{
	return n + sec_canary_bytes + (sec_canary_bytes && !n);
}

void secure_init(void);     /* after config_init and vg detection, before any slab */

/* Slab hooks (slab.c, under the slab cpu lock): make a new slab's last page
 * a guard (false: out of budget or refused, the slab goes without), and undo
 * it before the slab goes back (false: keep the slab); prepare a new slab's
 * n slots of size bytes at base (zeroed when dirty and fill is on, trailers);
 * a random order of n objects for a new slab's free list (n <= 2048). */
bool secure_guard_slab(void *last_page);
bool secure_unguard_slab(void *last_page);
void secure_slab_prepare(void *base, size_t size, unsigned n, bool dirty);
void secure_shuffle(uint16_t *perm, unsigned n);
/* With fill, an empty slab about to go back: every object still zero past
 * its link words (a write after free aborts). */
void secure_check_slab(const void *base, size_t size, unsigned n);

/* Block hooks (malloc.c, harden.c). slot is the block's bytes: the class size, the
 * run's pages, the mapping's length. open: after taking a block for a request
 * of req bytes (slab: checks the fill first); close: before freeing it
 * (checks the trailer and pad, slab: the trailer before it; fills); both
 * abort with a message naming the block on corruption. */
enum { SEC_OPEN_SLAB = 1, SEC_OPEN_FRONT = 2 };   /* how: a slab object; a run with a front canary */
void secure_open(void *p, size_t req, size_t slot, unsigned how);
void secure_close(void *p, size_t slot, unsigned how);
/* The same with how SEC_OPEN_SLAB, for the short paths of harden.c. */
void secure_open_slab(void *p, size_t req, size_t slot);
void secure_close_slab(void *p, size_t slot);
/* realloc in place: the block (checked) now holds n bytes, n + SEC_TRAILER <= slot. */
void secure_resize(void *p, size_t slot, size_t n);
/* A free slab object leaving the quarantine: its free trailer intact (its
 * fill is checked when it is handed out again, or its slab goes back). */
void secure_check_free(const void *p, size_t slot);
/* The same for n objects leaving together, without aborting: the index of
 * the first whose free trailer was modified (n: none; the caller then calls
 * secure_check_free on it, after its own checks of the objects before it). */
struct sec_obj;
unsigned secure_first_unfree(const struct sec_obj *h, unsigned n);
/* A page run leaving the quarantine: with fill, still all zero. */
void secure_check_run(const void *p, size_t len);
/* The trailer of a block: its requested size, kind, and whether it has a
 * front canary (aborts if the trailer is broken). */
size_t secure_requested(const void *p, size_t slot, unsigned *kind, bool *front);
void secure_set_kind(void *p, size_t slot, unsigned kind);

/* Quarantine. A block handed in comes back later, as *out, to be freed for
 * real; false: nothing leaves now (true with out->p NULL: the one leaving
 * could not be made readable and stays out for good). Large blocks wait
 * PROT_NONE, page runs readable (zeroed under fill). */
struct sec_held { void *p; size_t len; unsigned tag; bool prot, in_arena, resident; };
/* A slab object in the object ring or a stage: its slot bytes (<= SLAB_MAX)
 * and the caller's tag; the rest of a sec_held is the same for all of them
 * (in the arena, readable, no pages counted). */
struct sec_obj { void *p; uint32_t len, tag; };
enum { SEC_QOBJ, SEC_QPAGE };
bool secure_hold(unsigned ring, void *p, size_t len, unsigned tag, bool in_arena,
		 struct sec_held *out);
/* The calling thread's stage in front of the object ring (a thread that
 * stages must flush at its exit): stage a slab object with the caller's tag,
 * true when the stage is full and must be flushed; flush it into the ring
 * under one lock, what leaves going to out (room for SEC_QSTAGE), oldest
 * first, the count returned. */
#define SEC_QSTAGE 16
bool secure_stage(void *p, size_t len, unsigned tag);
bool secure_staged(void);
unsigned secure_stage_flush(struct sec_obj *out);
bool secure_holds(const void *p);    /* p waits in the page ring */
size_t secure_held_bytes(void);     /* in both rings and this thread's stage (a statistic: racy) */
/* Large blocks waiting (they stay in the large-block table until they leave). */
void secure_held_large(size_t *bytes, size_t *n);
/* The oldest into *out (out->p NULL: it could not be made readable and stays
 * out for good); false when the ring is empty. */
bool secure_unhold(unsigned ring, struct sec_held *out);
/* A new large block at dst, len bytes of one fresh read-write mapping: may a
 * waiting large block give it its pages (a racy hint), and take them: the
 * best-fitting waiting block that kept its pages moves its first len bytes'
 * pages to dst (os_move_pages) and keeps its addresses, PROT_NONE, without
 * pages. True when dst has them: zero under fill (erased as they entered),
 * else the old owner's bytes. The page ring's lock is held over the move. */
bool secure_recyclable(size_t len);
bool secure_recycle(void *dst, size_t len);

/* Size-0 blocks: NULL when the region is full (use an ordinary block). */
void *secure_size0_alloc(void);
enum { SIZE0_NOT, SIZE0_LIVE, SIZE0_FREED, SIZE0_BAD };   /* BAD: inside a slot */
int secure_size0_state(const void *p);
void secure_size0_free(void *p);

/* Large blocks with a guard page on each side; unmap takes the block's
 * address and length, guards included implicitly. */
void *secure_large_map(size_t len, size_t align_bytes);
void secure_large_unmap(void *p, size_t len);

/* Between secure.c and quarantine.c: the rings' set-up and fork locks. */
void secure_rings_init(void);
void secure_rings_lock_all(void);
void secure_rings_unlock_all(void);
void secure_lock_all(void);      /* fork */
void secure_unlock_all(void);
#pragma GCC visibility pop
#endif
