/*
 * os.h - the contract with the kernel. os.c is the only file that calls
 * mmap, munmap, mremap, mprotect or madvise; it also keeps the decay clock.
 *
 * Rules every primitive keeps:
 *  - addresses and lengths are page multiples; results are page aligned;
 *  - failure is reported (NULL / false), never fatal, and errno is left as
 *    the kernel set it (callers that return to the program set ENOMEM);
 *  - each call can be made to fail on purpose for tests (os_fail_at).
 */
#ifndef BSL_OS_H
#define BSL_OS_H
#include "common.h"
#pragma GCC visibility push(hidden)

enum os_op { OS_MMAP, OS_MPROTECT, OS_MADVISE, OS_MREMAP, OS_PAGEMAP, OS_NOPS };   /* PAGEMAP: os_zero reads no page map */

/* Reserve address space: PROT_NONE, MAP_NORESERVE. NULL on failure. */
void *os_reserve(size_t nbytes);
/* Make reserved pages readable and writable. */
bool os_commit(void *addr, size_t nbytes);
/* The most mappings a process may have (vm.max_map_count). */
long os_max_map_count(void);
/* Make pages inaccessible (guard pages); os_commit undoes it. */
bool os_guard(void *addr, size_t nbytes);
/* Map fresh zeroed read-write memory, aligned to align_bytes (a power of two
 * >= PAGE_SIZE); the excess is trimmed off. */
void *os_map(size_t nbytes, size_t align_bytes);
void os_unmap(void *addr, size_t nbytes);
/* Whether any mapping covers addr's page (only for error reports: a syscall). */
bool os_is_mapped(const void *addr);
/* Resize a mapping, moving it if needed. NULL on failure (old mapping intact). */
void *os_remap(void *addr, size_t old_nbytes, size_t new_nbytes);
/* Move a mapping to exactly `to` (a range the caller owns and has freed). */
bool os_remap_to(void *addr, size_t old_nbytes, size_t new_nbytes, void *to);
/* Move the pages of nbytes at from (private anonymous, one mapping) over the
 * read-write range at to (one the caller owns), which is read-write after;
 * from stays mapped, with its protection, and reads as zero when made
 * accessible again. false: nothing moved, `to` as it was (or, if the OS
 * unmapped it and refused to move, fresh zero pages). */
bool os_move_pages(void *from, size_t nbytes, void *to);
/* Give pages back: their contents become zero (DONTNEED) or undefined until
 * written (FREE). The range stays mapped. */
bool os_purge(void *addr, size_t nbytes, bool use_madv_free);
/* Make a private anonymous read-write range zero, cheaply. Up to 64 KiB
 * memset (every page then resident). From 1 MiB, with
 * /proc/self/pagemap: present pages are written, swapped ones dropped with
 * DONTNEED, the others (zero already) left alone. Otherwise, by mincore:
 * resident pages are written, the others dropped; the whole range is dropped
 * when under half of it is resident or the rest is scattered. Never fails (a
 * refused madvise falls back to writing). */
void os_zero(void *addr, size_t nbytes);
/* Transparent huge page advice for a committed range: 1 = HUGEPAGE, 0 = NOHUGEPAGE. */
void os_hugepage_advise(void *addr, size_t nbytes, bool huge);

/* Monotonic milliseconds, never 0 (CLOCK_MONOTONIC_COARSE): the decay clock. */
uint64_t os_now_ms(void);

/* The CPU the calling thread runs on, as an index below MAX_CPUS: the one
 * numbering of every per-CPU structure (buddy zones, slab cpus, quarantine
 * shards). 0 when the kernel cannot say. */
unsigned os_cpu_index(void);

/* Test hook: the nth next call of op fails (1 = the next one), and every call
 * after it while persist is true. n = 0 disarms. */
void os_fail_at(enum os_op op, long n, bool persist);
#pragma GCC visibility pop
#endif
