/*
 * os.c - every system call that touches the address space (see os.h for the
 * contract), plus failure injection for tests.
 *
 * Failure injection: os_fail_at(op, n, persist) arms a per-op countdown; the
 * countdown is an atomic so threads may race on it, and an armed op costs
 * one relaxed load per system call, which is already a slow path.
 */
#define _GNU_SOURCE
#include "os.h"
#include <sys/mman.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>

static long fail_countdown[OS_NOPS];  /* 0 = disarmed; atomic */
static bool fail_persist[OS_NOPS];

void os_fail_at(enum os_op op, long n, bool persist)
{
	fail_persist[op] = persist;
	__atomic_store_n(&fail_countdown[op], n, __ATOMIC_SEQ_CST);
}

static bool injected_failure(enum os_op op)
{
	long n = __atomic_load_n(&fail_countdown[op], __ATOMIC_RELAXED);
	if (likely(n == 0))
		return false;
	if (n == 1) {
		if (!fail_persist[op])
			__atomic_store_n(&fail_countdown[op], 0, __ATOMIC_RELAXED);
		errno = ENOMEM;
		return true;
	}
	__atomic_compare_exchange_n(&fail_countdown[op], &n, n - 1, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return false;
}

void *os_reserve(size_t nbytes)
{
	if (injected_failure(OS_MMAP))
		return NULL;
	void *p = mmap(NULL, nbytes, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

bool os_commit(void *addr, size_t nbytes)
{
	if (injected_failure(OS_MPROTECT))
		return false;
	return mprotect(addr, nbytes, PROT_READ | PROT_WRITE) == 0;
}

long os_max_map_count(void)
{
	char buf[32];
	long v = 0;
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 65530;           /* the kernel's default */
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (buf[i] - '0');
	return v > 0 ? v : 65530;
}

bool os_guard(void *addr, size_t nbytes)
{
	if (injected_failure(OS_MPROTECT))
		return false;
	return mprotect(addr, nbytes, PROT_NONE) == 0;
}

void *os_map(size_t nbytes, size_t align_bytes)
{
	ASSERT(is_pow2(align_bytes) && align_bytes >= PAGE_SIZE);
	if (injected_failure(OS_MMAP))
		return NULL;
	size_t span = nbytes + (align_bytes - PAGE_SIZE);
	if (span < nbytes) {
		errno = ENOMEM;
		return NULL;
	}
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	char *aligned = (char *)align_up((uintptr_t)p, align_bytes);
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	size_t tail = (size_t)(p + span - (aligned + nbytes));
	if (tail)
		munmap(aligned + nbytes, tail);
	return aligned;
}

void os_unmap(void *addr, size_t nbytes)
{
	munmap(addr, nbytes);
}

bool os_is_mapped(const void *addr)
{
	void *page = (void *)((uintptr_t)addr & ~(uintptr_t)(PAGE_SIZE - 1));
	int saved = errno;
	bool mapped = msync(page, PAGE_SIZE, MS_ASYNC) == 0 || errno != ENOMEM;
	errno = saved;
	return mapped;
}

void *os_remap(void *addr, size_t old_nbytes, size_t new_nbytes)
{
	if (injected_failure(OS_MREMAP))
		return NULL;
	void *p = mremap(addr, old_nbytes, new_nbytes, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
}

bool os_remap_to(void *addr, size_t old_nbytes, size_t new_nbytes, void *to)
{
	return mremap(addr, old_nbytes, new_nbytes, MREMAP_MAYMOVE | MREMAP_FIXED, to) == to;
}

bool os_move_pages(void *from, size_t nbytes, void *to)
{
	if (injected_failure(OS_MREMAP))
		return false;
	if (mremap(from, nbytes, nbytes, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
		   to) != to) {
		/* a refused move may have unmapped the target already: map it
		 * again (MAP_FIXED over a range that is ours either way) */
		if (mmap(to, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0) != to)
			bsl_fatalf("aborting", "mremap refused to move pages to %p, and the range "
				   "could not be mapped again", to);
		return false;
	}
	if (mprotect(to, nbytes, PROT_READ | PROT_WRITE) == 0)
		return true;
	if (mmap(to, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != to)     /* the moved pages kept from's protection: fresh ones */
		bsl_fatalf("aborting", "mprotect refused to open the pages moved to %p, and the "
			   "range could not be mapped again", to);
	return false;
}

bool os_purge(void *addr, size_t nbytes, bool use_madv_free)
{
	if (injected_failure(OS_MADVISE))
		return false;
	return madvise(addr, nbytes, use_madv_free ? MADV_FREE : MADV_DONTNEED) == 0;
}

/* Zero a page range by dropping it (DONTNEED), or by writing zeros if that fails. */
static void drop_or_write(char *p, size_t n)
{
	if (!os_purge(p, n, false))
		memset(p, 0, n);
}

/*
 * With /proc/self/pagemap, a page's entry says whether it is present (bit 63)
 * or swapped out (bit 62). A page of a private anonymous range that is
 * neither was never touched or was dropped: it reads as zero already and is
 * left alone, so a reused block keeps its resident pages (written with zeros,
 * no fault when the program touches them again) and nothing else becomes
 * resident; swapped pages are dropped. Returns the bytes done from p: less
 * than nbytes when the map cannot be read (no /proc, a sandbox), and the
 * caller goes on with mincore. Raw syscalls: no cancellation point (open,
 * pread and close are ones in libc), no errno change visible to the caller
 * beyond what malloc may change. The descriptor lives for this call only: one
 * kept open could be closed, or replaced by dup2, under our feet.
 */
#define PM_PRESENT ((uint64_t)1 << 63)
#define PM_SWAPPED ((uint64_t)1 << 62)
#define ZERO_BY_PAGEMAP ((size_t)1 << 20)   /* below, mincore's one syscall is cheaper */
/* Up to here, writing every page beats the mincore call: a page run freed by
 * the program (secure fill, the quarantine) is mostly resident, and a page
 * that was not costs one fault (one such range: 16 pages at most). */
#define ZERO_BY_MEMSET ((size_t)64 << 10)

static size_t zero_by_pagemap(char *p, size_t nbytes)
{
	enum { BATCH = 512 };                /* pages per read: 4 KiB of entries on the stack */
	uint64_t ent[BATCH];
	size_t done = 0;
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (done < nbytes) {
		size_t n = nbytes - done < (size_t)BATCH << PAGE_SHIFT ? nbytes - done : (size_t)BATCH << PAGE_SHIFT;
		size_t np = n >> PAGE_SHIFT;
		char *q = p + done;
		off_t at = (off_t)(((uintptr_t)q >> PAGE_SHIFT) * sizeof ent[0]);
		if (syscall(SYS_pread64, fd, ent, np * sizeof ent[0], at) != (long)(np * sizeof ent[0]))
			break;
		for (size_t i = 0, j; i < np; i = j) {     /* runs of like pages */
			uint64_t kind = ent[i] & (PM_PRESENT | PM_SWAPPED);
			for (j = i + 1; j < np && (ent[j] & (PM_PRESENT | PM_SWAPPED)) == kind; j++)
				;
			size_t off = i << PAGE_SHIFT, len = (j - i) << PAGE_SHIFT;
			if (kind & PM_PRESENT)
				memset(q + off, 0, len);
			else if (kind & PM_SWAPPED)
				drop_or_write(q + off, len);
		}
		done += n;
	}
	syscall(SYS_close, fd);
	return done;
}

void os_zero(void *addr, size_t nbytes)
{
	enum { BATCH = 4096, MAX_RUNS = 64 };    /* pages per mincore call (16 MiB) */
	if (nbytes <= ZERO_BY_MEMSET) {
		memset(addr, 0, nbytes);
		return;
	}
	if (nbytes >= ZERO_BY_PAGEMAP && !injected_failure(OS_PAGEMAP)) {
		size_t done = zero_by_pagemap(addr, nbytes);
		addr = (char *)addr + done;
		nbytes -= done;
	}
	unsigned char vec[BATCH];
	char *p = addr;
	while (nbytes) {
		size_t n = nbytes < (size_t)BATCH << PAGE_SHIFT ? nbytes : (size_t)BATCH << PAGE_SHIFT;
		size_t np = n >> PAGE_SHIFT, resident = 0, runs = 0;
		bool ok = mincore(p, n, vec) == 0;
		for (size_t i = 0; ok && i < np; i++) {
			resident += vec[i] & 1;
			runs += !(vec[i] & 1) && (i == 0 || (vec[i - 1] & 1));
		}
		if (!ok || resident * 2 < np || runs > MAX_RUNS) {
			drop_or_write(p, n);
		} else {
			for (size_t i = 0, j; i < np; i = j) {     /* runs of like pages */
				for (j = i + 1; j < np && (vec[j] & 1) == (vec[i] & 1); j++)
					;
				size_t off = i << PAGE_SHIFT, len = (j - i) << PAGE_SHIFT;
				if (vec[i] & 1)
					memset(p + off, 0, len);
				else
					drop_or_write(p + off, len);
			}
		}
		p += n;
		nbytes -= n;
	}
}

void os_hugepage_advise(void *addr, size_t nbytes, bool huge)
{
	if (injected_failure(OS_MADVISE))
		return;
	madvise(addr, nbytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

uint64_t os_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;   /* never 0 */
}

unsigned os_cpu_index(void)
{
	int cpu = sched_getcpu();
	return cpu < 0 ? 0 : (unsigned)cpu % MAX_CPUS;
}
