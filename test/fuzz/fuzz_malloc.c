/*
 * fuzz_malloc.c - libFuzzer harness: input bytes become a sequence of
 * allocation calls into buddyslab, every block carries a pattern that is
 * checked before it is freed or resized.
 *
 * buddyslab is linked in renamed (test/fuzz/prefix.h: fz_malloc, fz_free,
 * ...), so ASan's allocator stays the process's malloc; libFuzzer, ASan and
 * this file's own bookkeeping use it, and only the calls below reach
 * buddyslab. buddyslab's own files are built with ASan and UBSan too (its
 * globals, stack and undefined behaviour are checked), but ASan never saw
 * buddyslab's blocks being allocated and leaves them unpoisoned, so what
 * happens inside them is for the harness to check:
 *   - every block is 16-byte aligned and aligned as asked;
 *   - malloc_usable_size >= the request, within the tier's rounding (a
 *     large block: up to a quarter more than whole pages), and
 *     stable while the block lives;
 *   - a new block overlaps no live block (whole usable ranges compared);
 *   - calloc blocks read zero; every block is filled with a pattern of its
 *     own (seed and offset) over its request, or over its whole usable size
 *     after OP_USABLE (those bytes are the program's, see test_api.c), checked
 *     before free and realloc; realloc keeps the prefix;
 *   - free preserves errno; failures give NULL and ENOMEM (EINVAL for bad
 *     alignments); a failed realloc leaves the block intact; after a system
 *     call was made to fail (os_fail_at), everything above still holds;
 *   - bsl_stats().allocated equals the usable bytes of the live blocks.
 * A failed check prints what it saw and aborts (libFuzzer saves the input).
 * Everything still live is checked and freed at the end of each input.
 *
 * Input format (read until the bytes run out; a missing byte reads as 0):
 * each op is a byte `op` (low 4 bits: the operation, high 4 bits: its
 * variant `v`) followed by its arguments:
 *   0 MALLOC    idx size              v&1: __libc_malloc
 *   1 CALLOC    idx size nmemb        nmemb = 1 + byte % 16, elements of size/nmemb;
 *                                     v&1: arguments swapped, v&2: __libc_calloc
 *   2 REALLOC   idx size              empty slot: realloc(NULL, n); v&1: __libc_realloc
 *   3 MEMALIGN  idx align size        v&1: __libc_memalign
 *   4 ALIGNED   idx align size        aligned_alloc
 *   5 POSIX     idx align size        posix_memalign; v&1: __posix_memalign
 *   6 VALLOC    idx size              v&1: pvalloc; v&2: the __libc_ name
 *   7 FREE      idx                   v%5: free cfree free_sized free_aligned_sized __libc_free
 *   8 USABLE    idx                   check the pattern and the usable size, fill the slack
 *   9 REALLOC_BY idx delta            old size + (int8)delta bytes (v&1: pages);
 *                                     v&2: __libc_realloc
 *  10 REALLOCARRAY idx nmemb size     nmemb = 1 + byte; v&1: an overflowing product
 *  11 BURST     start count size      count = 1 + u16 % 1024 blocks of one size in the
 *                                     slots from `start` on; v%4: malloc calloc
 *                                     memalign(64) aligned_alloc(4096)
 *  12 BURST_FREE start count          v%4: forward, backward, even then odd, every third
 *  13 FREE      (as 7)
 *  14 FAIL      idx sel               v%8: a request that must fail (table in op_fail)
 *  15 MISC      sel                   v%8: malloc_trim, mallopt(M_MMAP_THRESHOLD), free
 *                                     all, NULL arguments, stats check, mallinfo2,
 *                                     check the ends of every live block, arm a
 *                                     failure of mmap/mprotect/madvise/mremap
 *                                     (os_fail_at; NULL + ENOMEM is then accepted)
 * idx is one byte: slot idx (0..255) of NSLOTS; BURST/BURST_FREE use start*4.
 * size is a mode byte m and its arguments (draw_size below); align is one
 * byte (draw_align). Multi-byte numbers are little-endian.
 * Caps: LIVE_CAP bytes requested live at once and INPUT_CAP bytes requested
 * per input; a request over a cap is cut to its low 16 bits.
 * FUZZ_TRACE=1 in the environment prints every op to stderr;
 * FUZZ_KNOWN_BUGS=1 stops steering around known bugs (avoid_known_bugs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sanitizer/allocator_interface.h>
#include "buddyslab.h"

/* buddyslab's API as prefix.h renames it */
void *fz_malloc(size_t n);
void *fz_calloc(size_t nmemb, size_t size);
void *fz_realloc(void *p, size_t n);
void *fz_reallocarray(void *p, size_t nmemb, size_t size);
void *fz_memalign(size_t align, size_t n);
void *fz_aligned_alloc(size_t align, size_t n);
int fz_posix_memalign(void **out, size_t align, size_t n);
void *fz_valloc(size_t n);
void *fz_pvalloc(size_t n);
void fz_free(void *p);
void fz_cfree(void *p);
void fz_free_sized(void *p, size_t n);
void fz_free_aligned_sized(void *p, size_t align, size_t n);
size_t fz_malloc_usable_size(void *p);
void *fz___libc_malloc(size_t n);
void *fz___libc_calloc(size_t nmemb, size_t size);
void *fz___libc_realloc(void *p, size_t n);
void *fz___libc_memalign(size_t align, size_t n);
void *fz___libc_valloc(size_t n);
void *fz___libc_pvalloc(size_t n);
void fz___libc_free(void *p);
int fz___posix_memalign(void **out, size_t align, size_t n);
int fz_malloc_trim(size_t pad);
/* src/os.h's failure injection (hidden, but linked into this program) */
void os_fail_at(int op, long n, bool persist);
int fz_mallopt(int param, int value);
struct mallinfo2 fz_mallinfo2(void);

#define NSLOTS     1024
#define PAGE       4096u
#define SLAB_MAX   16384u
#define THRESHOLD  (128u << 10)          /* default mmap_threshold */
#define CHUNK      (4u << 20)
#define MAX_SIZE   (8u << 20)            /* largest request drawn */
#define LIVE_CAP   ((size_t)8 << 20)
#define INPUT_CAP  ((size_t)32 << 20)

struct slot {
	unsigned char *p;      /* NULL: empty */
	size_t req;            /* bytes requested */
	size_t usable;         /* malloc_usable_size when it was allocated */
	size_t filled;         /* bytes [0, filled) hold the pattern */
	uint64_t seed;
};

static struct slot slots[NSLOTS];
static size_t live_bytes, input_bytes, live_usable;
static unsigned slots_used;    /* slots [slots_used, NSLOTS) are empty */
static uint64_t next_seed;
static int trace;
static bool faults_armed;      /* os_fail_at armed: NULL + ENOMEM is a valid outcome */
static unsigned long op_no;

struct input { const uint8_t *d; size_t n, i; };

static unsigned u8(struct input *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static unsigned u16(struct input *in) { unsigned lo = u8(in); return lo | u8(in) << 8; }
static uint32_t u32(struct input *in) { uint32_t lo = u16(in); return lo | (uint32_t)u16(in) << 16; }

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_malloc: op %lu: ", op_no);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	if (!trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "op %lu: ", op_no);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ------------------------------------------------------------ patterns */

/* The pattern of byte i of a block with this seed. Fill and check are not
 * instrumented (ASan has nothing to check in buddyslab's memory, and
 * coverage of these loops would only slow the fuzzer down). */
#define NOINSTR __attribute__((no_sanitize("address", "undefined", "coverage"), noinline))

#define PAT_K 0x9E3779B97F4A7C15ull
/* a macro: a function with sanitizers on would not be inlined into these */
#define pat_byte(seed, i) ((unsigned char)((((seed) + ((i) >> 3)) * PAT_K) >> (8 * ((i) & 7))))

NOINSTR static void pat_fill(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		p[i] = pat_byte(seed, i);
	uint64_t w = (seed + (i >> 3)) * PAT_K;     /* word i/8 is (seed + i/8) * K */
	for (; i + 8 <= to; i += 8, w += PAT_K)
		*(uint64_t *)(p + i) = w;
	for (; i < to; i++)
		p[i] = pat_byte(seed, i);
}

/* Offset of the first byte in [from, to) that is not the pattern, or SIZE_MAX. */
NOINSTR static size_t pat_check_range(const unsigned char *p, size_t from, size_t to,
				      uint64_t seed)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	for (uint64_t w = (seed + (i >> 3)) * PAT_K; i + 8 <= to; i += 8, w += PAT_K)
		if (*(const uint64_t *)(p + i) != w)
			break;
	for (; i < to; i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	return SIZE_MAX;
}

static size_t pat_check(const unsigned char *p, size_t to, uint64_t seed)
{
	return pat_check_range(p, 0, to, seed);
}

NOINSTR static size_t zero_check(const unsigned char *p, size_t to)
{
	size_t i = 0;
	for (; i + 8 <= to; i += 8)
		if (*(const uint64_t *)(p + i))
			break;
	for (; i < to; i++)
		if (p[i])
			return i;
	return SIZE_MAX;
}

/* Check the pattern of slot idx; quick: only its first and last 256 bytes. */
static void verify_part(unsigned idx, const char *why, bool quick)
{
	struct slot *s = &slots[idx];
	size_t bad;
	if (quick && s->filled > 512) {
		bad = pat_check_range(s->p, 0, 256, s->seed);
		if (bad == SIZE_MAX)
			bad = pat_check_range(s->p, s->filled - 256, s->filled, s->seed);
	} else {
		bad = pat_check(s->p, s->filled, s->seed);
	}
	if (bad != SIZE_MAX)
		fail("slot %u: block %p (request %zu, usable %zu) byte %zu changed (0x%02x) before %s",
		     idx, (void *)s->p, s->req, s->usable, bad, s->p[bad], why);
}

static void verify(unsigned idx, const char *why)
{
	verify_part(idx, why, false);
}

/* ------------------------------------------------------------ requests */

static size_t class_size(unsigned c)      /* c in 1..36, as sizeclass.h lists them */
{
	if (c <= 8)
		return 16 * c;
	unsigned k = 7 + (c - 9) / 4, step = (c - 9) % 4 + 1;
	return ((size_t)1 << k) + step * ((size_t)1 << (k - 2));
}

/* A request size, biased to the tiers' edges. */
static size_t draw_size(struct input *in)
{
	static const int edge[] = { -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097 };
	unsigned m = u8(in), mode = m & 15, hi = m >> 4;
	int d3 = (int)(hi % 3) - 1;
	switch (mode) {
	case 0:  return u8(in);
	case 1:  return u16(in) % 1025;
	case 2:  return class_size(1 + u8(in) % 36) + (size_t)d3;
	case 3:  return u16(in) % (SLAB_MAX + 1);
	case 4:  return SLAB_MAX + (size_t)d3;
	case 5:  return (1 + u8(in) % 32) * (size_t)PAGE + (size_t)d3;
	case 6:  return SLAB_MAX + 1 + u32(in) % (THRESHOLD - SLAB_MAX);
	case 7:  return THRESHOLD + (size_t)(long)edge[hi % 9];
	case 8:  return THRESHOLD + 1 + u32(in) % ((1u << 20) - THRESHOLD);
	case 9:  return (33 + u16(in) % 480) * (size_t)PAGE + (size_t)d3;   /* to 2 MiB */
	case 10: return CHUNK + (size_t)(long)edge[hi % 9];
	case 11: return CHUNK / 2 + (size_t)(long)edge[hi % 9];
	case 12: return 0;
	case 13: { size_t b = (size_t)u8(in) * 16;           /* multiples of 16 up to 4080, +-1 */
		  return b ? b + (size_t)d3 : (size_t)(d3 > 0); }
	case 14: return (size_t)u16(in) * 16;          /* up to 1 MiB */
	default: return u32(in) & ((MAX_SIZE >> (15 - hi)) - 1);   /* below 256 B .. 8 MiB */
	}
}

/* An alignment: mostly powers of two (1 B .. 8 MiB), some that are not. */
static size_t draw_align(struct input *in)
{
	unsigned a = u8(in);
	if (a == 0xFF)
		return 0;
	if (a >= 0xE0)
		return (size_t)3 << (a % 12);
	if (a >= 0xC0)
		return (size_t)1 << (12 + a % 12);
	return (size_t)1 << (a % 16);
}

/* Keep one input's memory bounded: over a cap, the request is cut down. */
static size_t capped(size_t n)
{
	if (live_bytes + n > LIVE_CAP || input_bytes + n > INPUT_CAP) {
		say("cap: %zu cut to %zu", n, n & 0xFFFF);
		n &= 0xFFFF;
	}
	input_bytes += n;
	return n;
}

static bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

/* The most a block of this request may take: a slab object is the smallest
 * class that holds it and is a multiple of the alignment (malloc.c), runs and
 * mappings are whole pages. */
static size_t usable_bound(size_t n, size_t align)
{
	if (n <= SLAB_MAX && align <= PAGE) {
		for (unsigned c = 1; c <= 36; c++)
			if (class_size(c) >= n && class_size(c) >= align && class_size(c) % (align ? align : 1) == 0)
				return class_size(c);
	}
	/* page runs and large blocks: whole pages; a large block reused from a
	 * cached mapping may keep up to a quarter more (large.c, cache_take) */
	size_t r = round_up(n ? n : 1, PAGE);
	return r + r / 4 / PAGE * PAGE;
}

/* -------------------------------------------------------------- slots */

static void slot_release(unsigned idx)
{
	struct slot *s = &slots[idx];
	live_bytes -= s->req;
	live_usable -= s->usable;
	s->p = NULL;
}

/* Check and free the block in slot idx, if any, with free variant v. */
static void slot_free(unsigned idx, unsigned v)
{
	struct slot *s = &slots[idx];
	if (!s->p)
		return;
	verify(idx, "free");
	say("free#%u slot %u %p (%zu)", v % 5, idx, (void *)s->p, s->req);
	errno = 4242;
	switch (v % 5) {
	case 0: fz_free(s->p); break;
	case 1: fz_cfree(s->p); break;
	case 2: fz_free_sized(s->p, s->req); break;
	case 3: fz_free_aligned_sized(s->p, 16, s->req); break;
	default: fz___libc_free(s->p); break;
	}
	if (errno != 4242)
		fail("free(%p) changed errno to %d", (void *)s->p, errno);
	slot_release(idx);
}

/* The first live slot other than skip whose usable range meets [p, p + u), or -1. */
NOINSTR static int overlap(const unsigned char *p, size_t u, int skip)
{
	uintptr_t a = (uintptr_t)p, b = a + u;
	for (int i = 0; i < (int)slots_used; i++) {
		uintptr_t c = (uintptr_t)slots[i].p, d = c + slots[i].usable;
		if (c && i != skip && a < d && c < b)
			return i;
	}
	return -1;
}

/* A NULL that failure injection explains: say so and tell the caller to go on. */
static bool injected_nomem(const void *p, const char *api, size_t n)
{
	if (p || !faults_armed || errno != ENOMEM)
		return false;
	say("%s(%zu): NULL, ENOMEM (failure injected)", api, n);
	return true;
}

/* The checks every block gets when it is handed out. skip: the slot whose
 * block this one replaces (realloc), not an overlap; was_usable: its usable
 * size when it stayed in place (a shrink the OS refused keeps the mapping
 * whole, large.c), else 0. */
static size_t check_new(unsigned char *p, size_t n, size_t align, const char *api, int skip,
			size_t was_usable)
{
	if (!p)
		fail("%s(%zu, align %zu) returned NULL (errno %d) with %zu bytes live",
		     api, n, align, errno, live_bytes);
	if ((uintptr_t)p % 16 || (align && (uintptr_t)p % align))
		fail("%s(%zu, align %zu) returned %p: misaligned", api, n, align, (void *)p);
	size_t u = fz_malloc_usable_size(p);
	size_t bound = usable_bound(n, align);
	if (u < n || u > (was_usable > bound ? was_usable : bound))
		fail("%s(%zu, align %zu) returned %p: usable size %zu", api, n, align, (void *)p, u);
	int i = overlap(p, u, skip);
	if (i >= 0)
		fail("%s(%zu) returned [%p, +%zu) overlapping slot %d [%p, +%zu)", api, n,
		     (void *)p, u, i, (void *)slots[i].p, slots[i].usable);
	return u;
}

/* Record a new block in slot idx (empty) and fill it. */
static void slot_put(unsigned idx, unsigned char *p, size_t n, size_t align, bool zeroed,
		     const char *api)
{
	if (injected_nomem(p, api, n))
		return;
	size_t u = check_new(p, n, align, api, -1, 0);
	if (zeroed) {
		size_t bad = zero_check(p, n);
		if (bad != SIZE_MAX)
			fail("%s(%zu) = %p: byte %zu is 0x%02x, not zero", api, n, (void *)p, bad, p[bad]);
	}
	struct slot *s = &slots[idx];
	*s = (struct slot){ p, n, u, n, ++next_seed * 0x100000001b3ull };
	if (idx >= slots_used)
		slots_used = idx + 1;
	pat_fill(p, 0, n, s->seed);
	live_bytes += n;
	live_usable += u;
	say("%s slot %u = %p (%zu, align %zu, usable %zu)", api, idx, (void *)p, n, align, u);
}

/* ----------------------------------------------------------------- ops */

static void op_malloc(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	size_t n = capped(draw_size(in));
	slot_free(idx, 0);
	void *p = v & 1 ? fz___libc_malloc(n) : fz_malloc(n);
	slot_put(idx, p, n, 16, false, "malloc");
}

static void op_calloc(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	size_t total = capped(draw_size(in)), nmemb = 1 + u8(in) % 16, size = total / nmemb;
	slot_free(idx, 0);
	if (v & 1) {
		size_t t = nmemb;
		nmemb = size;
		size = t;
	}
	void *p = v & 2 ? fz___libc_calloc(nmemb, size) : fz_calloc(nmemb, size);
	slot_put(idx, p, nmemb * size, 16, true, "calloc");
}

enum { RS_REALLOC, RS_LIBC_REALLOC, RS_REALLOCARRAY };

/* Resize slot idx to nmemb * size bytes with realloc, __libc_realloc or
 * reallocarray: an empty slot gets a new block, size 0 frees (buddyslab
 * returns NULL then, as glibc does; a block, were it to return one, is
 * checked like any other). The caller has applied the caps. */
static void resize(unsigned idx, size_t nmemb, size_t size, int how)
{
	static const char *const names[] = { "realloc", "__libc_realloc", "reallocarray" };
	const char *api = names[how];
	struct slot *s = &slots[idx];
	unsigned char *old = s->p, *q;
	size_t n = nmemb * size;
	if (old)
		verify(idx, api);
	say("%s slot %u %p (%zu) to %zu", api, idx, (void *)old, old ? s->req : 0, n);
	switch (how) {
	case RS_REALLOC:      q = fz_realloc(old, n); break;
	case RS_LIBC_REALLOC: q = fz___libc_realloc(old, n); break;
	default:              q = fz_reallocarray(old, nmemb, size); break;
	}
	if (!old) {
		slot_put(idx, q, n, 16, false, api);
		return;
	}
	if (n == 0 && !q) {
		slot_release(idx);
		return;
	}
	if (injected_nomem(q, api, n)) {
		verify(idx, "after a failed realloc");
		return;
	}
	size_t u = check_new(q, n, 16, api, (int)idx, q == old ? s->usable : 0);
	size_t keep = s->filled < n ? s->filled : n;
	size_t bad = pat_check(q, keep, s->seed);
	if (bad != SIZE_MAX)
		fail("%s(%p, %zu) = %p: byte %zu of the old %zu not kept", api, (void *)old, n,
		     (void *)q, bad, s->filled);
	pat_fill(q, keep, n, s->seed);
	say("%s slot %u = %p (usable %zu)", api, idx, (void *)q, u);
	live_bytes += n - s->req;
	live_usable += u - s->usable;
	*s = (struct slot){ q, n, u, n, s->seed };
}

/* A new size for slot idx, with the growth over its current size capped. */
static size_t capped_resize(unsigned idx, size_t n)
{
	const struct slot *s = &slots[idx];
	size_t cur = s->p ? s->req : 0;
	return n > cur ? cur + capped(n - cur) : n;
}

static void op_realloc(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	size_t n = capped_resize(idx, draw_size(in));
	resize(idx, 1, n, v & 1 ? RS_LIBC_REALLOC : RS_REALLOC);
}

static void op_realloc_by(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	int delta = (int8_t)u8(in);
	const struct slot *s = &slots[idx];
	if (!s->p)
		return;
	long n = (long)s->req + delta * (v & 1 ? (long)PAGE : 1);
	n = (long)capped_resize(idx, n < 0 ? 0 : (size_t)n);
	resize(idx, 1, (size_t)n, v & 2 ? RS_LIBC_REALLOC : RS_REALLOC);
}

static void op_reallocarray(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	size_t nmemb = 1 + u8(in), total = draw_size(in);
	struct slot *s = &slots[idx];
	if (v & 1) {               /* nmemb * size overflows: ENOMEM, the block stays */
		if (nmemb == 1)
			nmemb = 2;
		size_t size = SIZE_MAX / nmemb + 1 + (total & 0xFF);
		errno = 0;
		void *q = fz_reallocarray(s->p, nmemb, size);
		say("reallocarray(%p, %zu, %zu) = %p", (void *)s->p, nmemb, size, q);
		if (q || errno != ENOMEM)
			fail("reallocarray(%p, %zu, %zu) = %p, errno %d", (void *)s->p, nmemb,
			     size, q, errno);
		if (s->p)
			verify(idx, "after a failed reallocarray");
		return;
	}
	resize(idx, nmemb, capped_resize(idx, total) / nmemb, RS_REALLOCARRAY);
}

/* Known bugs of buddyslab that the fuzzer would otherwise find again and
 * again, each with its reproducer in test/fuzz/crashes/ or test/fuzz/slow/.
 * Steered around unless FUZZ_KNOWN_BUGS=1; remove an entry once the bug is
 * fixed. */
static int known_bugs;

/* None at the moment. Fixed, their reproducers now seeds in corpus/:
 * aligned-alloc-8mib-align-size-0 (an alignment above 4 MiB with size 0 came
 * back unmapped) and purge-retries-failed-madvise* (purge_zone retook blocks
 * whose madvise failed, up to 4096 passes per call). */
static size_t avoid_known_bugs(size_t align, size_t n)
{
	(void)align;
	return n;
}

static bool fault_persists(unsigned sysop, bool persist)
{
	(void)sysop;
	return persist;
}

/* memalign (0), aligned_alloc (1), posix_memalign (2). */
static void op_aligned(struct input *in, unsigned v, int api)
{
	static const char *names[] = { "memalign", "aligned_alloc", "posix_memalign" };
	unsigned idx = u8(in);
	size_t align = draw_align(in), n = capped(draw_size(in));
	n = avoid_known_bugs(align, n);
	slot_free(idx, 3);
	void *p = NULL;
	size_t want = align;
	errno = 0;
	switch (api) {
	case 0:
		p = v & 1 ? fz___libc_memalign(align, n) : fz_memalign(align, n);
		want = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(align - 1));
		break;
	case 1:
		p = fz_aligned_alloc(align, n);
		if (!is_pow2(align)) {
			if (p || errno != EINVAL)
				fail("aligned_alloc(%zu, %zu) = %p, errno %d", align, n, p, errno);
			return;
		}
		break;
	case 2: {
		void *out = (void *)0x1234;
		int rc = v & 1 ? fz___posix_memalign(&out, align, n) : fz_posix_memalign(&out, align, n);
		if (!is_pow2(align) || align % sizeof(void *)) {
			if (rc != EINVAL || out != (void *)0x1234)
				fail("posix_memalign(%zu, %zu) = %d, %p", align, n, rc, out);
			return;
		}
		if (rc == ENOMEM && faults_armed) {
			say("posix_memalign(%zu): ENOMEM (failure injected)", n);
			return;
		}
		if (rc != 0 || errno != 0)
			fail("posix_memalign(%zu, %zu) = %d, errno %d", align, n, rc, errno);
		p = out;
		break;
	}
	}
	slot_put(idx, p, n, want, false, names[api]);
}

static void op_valloc(struct input *in, unsigned v)
{
	unsigned idx = u8(in);
	size_t n = capped(draw_size(in));
	slot_free(idx, 1);
	void *p;
	if (v & 1) {
		p = v & 2 ? fz___libc_pvalloc(n) : fz_pvalloc(n);
		n = round_up(n ? n : 1, PAGE);   /* pvalloc's block is all the program's */
	} else {
		p = v & 2 ? fz___libc_valloc(n) : fz_valloc(n);
	}
	slot_put(idx, p, n, PAGE, false, v & 1 ? "pvalloc" : "valloc");
}

static void op_usable(struct input *in)
{
	unsigned idx = u8(in);
	struct slot *s = &slots[idx];
	if (!s->p)
		return;
	verify(idx, "usable");
	size_t u = fz_malloc_usable_size(s->p);
	if (u != s->usable)
		fail("slot %u: usable size of %p went from %zu to %zu", idx, (void *)s->p, s->usable, u);
	pat_fill(s->p, s->filled, u, s->seed);
	s->filled = u;
	say("usable slot %u %p: %zu", idx, (void *)s->p, u);
}

static void op_burst(struct input *in, unsigned v)
{
	unsigned start = u8(in) * 4, count = 1 + u16(in) % 1024;
	size_t n = draw_size(in);
	say("burst %u x %zu from slot %u (api %u)", count, n, start, v % 4);
	for (unsigned k = 0; k < count; k++) {
		unsigned idx = (start + k) % NSLOTS;
		slot_free(idx, k);
		size_t m = capped(n);
		switch (v % 4) {
		case 0: slot_put(idx, fz_malloc(m), m, 16, false, "malloc"); break;
		case 1: slot_put(idx, fz_calloc(1, m), m, 16, true, "calloc"); break;
		case 2: slot_put(idx, fz_memalign(64, m), m, 64, false, "memalign"); break;
		default: slot_put(idx, fz_aligned_alloc(PAGE, m), m, PAGE, false, "aligned_alloc"); break;
		}
	}
}

static void op_burst_free(struct input *in, unsigned v)
{
	unsigned start = u8(in) * 4, count = 1 + u16(in) % 1024;
	say("burst free %u from slot %u (order %u)", count, start, v % 4);
	switch (v % 4) {
	case 0:
		for (unsigned k = 0; k < count; k++)
			slot_free((start + k) % NSLOTS, k);
		break;
	case 1:
		for (unsigned k = count; k-- > 0;)
			slot_free((start + k) % NSLOTS, k);
		break;
	case 2:
		for (unsigned k = 0; k < count; k += 2)
			slot_free((start + k) % NSLOTS, k);
		for (unsigned k = 1; k < count; k += 2)
			slot_free((start + k) % NSLOTS, k);
		break;
	default:
		for (unsigned k = 0; k < count; k += 3)
			slot_free((start + k) % NSLOTS, k);
		break;
	}
}

/* Requests that must fail: NULL (or the return code) and the errno, and a
 * live block handed to a failing realloc stays as it was. */
static void op_fail(struct input *in, unsigned v)
{
	unsigned idx = u8(in), sel = u8(in);
	static const size_t huge[] = {
		(size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 4096, SIZE_MAX, SIZE_MAX - 4095,
		SIZE_MAX - 16, (size_t)PTRDIFF_MAX + 1 + (1u << 20), SIZE_MAX / 2 + 4097, SIZE_MAX - 1,
	};
	size_t n = huge[sel % 8];
	struct slot *s = &slots[idx];
	void *p = (void *)1;
	int rc = 0, want = ENOMEM;
	const char *api = "";
	errno = 0;
	switch (v % 8) {
	case 0: api = "malloc"; p = fz_malloc(n); break;
	case 1: api = "calloc"; p = sel & 8 ? fz_calloc(1, n) :
		fz_calloc((size_t)1 << (32 + sel % 16), (size_t)1 << (32 + (sel >> 4))); break;
	case 2: api = "realloc"; p = fz_realloc(s->p, n); break;
	case 3: api = "aligned_alloc"; p = fz_aligned_alloc((size_t)1 << (sel % 24), n); break;
	case 4: {
		api = "posix_memalign";
		void *out = (void *)0x1234;
		rc = fz_posix_memalign(&out, (size_t)8 << (sel % 20), n);
		if (rc != ENOMEM || out != (void *)0x1234)
			fail("posix_memalign(%zu) = %d, %p", n, rc, out);
		return;
	}
	case 5: api = "memalign"; p = fz_memalign(sel & 1 ? SIZE_MAX / 2 + 2 + sel : 64, n);
		want = sel & 1 ? EINVAL : ENOMEM; break;
	case 6: api = "valloc/pvalloc"; p = sel & 1 ? fz_pvalloc(n) : fz_valloc(n); break;
	default: api = "realloc(NULL)"; p = fz_realloc(NULL, n); break;
	}
	say("fail %s(%zu) = %p errno %d", api, n, p, errno);
	if (p || errno != want)
		fail("%s(%zu) = %p, errno %d (want NULL and %d)", api, n, p, errno, want);
	if ((v % 8) == 2 && s->p)
		verify(idx, "after a failed realloc");
}

static int threshold_changed;

static void op_misc(struct input *in, unsigned v)
{
	unsigned sel = u8(in);
	switch (v % 8) {
	case 0:
		say("malloc_trim");
		fz_malloc_trim(0);
		break;
	case 1: {
		static const int t[] = { 16384, 65536, 131072, 1 << 20, 4 << 20, 0, 20000, 200000 };
		say("mallopt(M_MMAP_THRESHOLD, %d)", t[sel % 8]);
		if (fz_mallopt(M_MMAP_THRESHOLD, t[sel % 8]) != 1)
			fail("mallopt(M_MMAP_THRESHOLD, %d) refused", t[sel % 8]);
		threshold_changed = 1;
		break;
	}
	case 2:
		say("free all");
		for (unsigned i = 0; i < slots_used; i++)
			slot_free(i, i + sel);
		break;
	case 3:
		say("free(NULL), malloc_usable_size(NULL)");
		errno = 4242;
		fz_free(NULL);
		if (fz_malloc_usable_size(NULL) != 0 || errno != 4242)
			fail("free(NULL) / malloc_usable_size(NULL)");
		break;
	case 4: {
		struct bsl_stats st;
		bsl_stats(&st);
		say("bsl_stats: allocated %zu", st.allocated);
		if (st.allocated != live_usable)
			fail("bsl_stats: allocated %zu, the live blocks' usable sizes add up to %zu",
			     st.allocated, live_usable);
		break;
	}
	case 5: {
		struct mallinfo2 mi = fz_mallinfo2();
		say("mallinfo2: uordblks %zu hblkhd %zu", mi.uordblks, mi.hblkhd);
		if (mi.uordblks + mi.hblkhd < live_bytes)
			fail("mallinfo2: uordblks %zu + hblkhd %zu < %zu live", mi.uordblks,
			     mi.hblkhd, live_bytes);
		break;
	}
	case 7: {
		/* mmap, mprotect, madvise or mremap fails at the nth next call
		 * (and after it, when persist): disarmed at the end of the input */
		bool persist = fault_persists(sel & 3, sel & 0x40);
		say("os_fail_at(%u, %u, %d)", sel & 3, 1 + (sel >> 2 & 15), persist);
		os_fail_at((int)(sel & 3), 1 + (sel >> 2 & 15), persist);
		faults_armed = true;
		break;
	}
	default:
		say("check all");
		for (unsigned i = 0; i < slots_used; i++)
			if (slots[i].p)
				verify_part(i, "check all", true);
		break;
	}
}

/* ------------------------------------------------------------ libFuzzer */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	trace = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
	known_bugs = getenv("FUZZ_KNOWN_BUGS") && *getenv("FUZZ_KNOWN_BUGS") == '1';
	/* The renaming worked: buddyslab's blocks are not ASan's, and malloc is ASan's. */
	void *ours = fz_malloc(100), *asan = malloc(100);
	if (!ours || __sanitizer_get_ownership(ours) || !__sanitizer_get_ownership(asan)) {
		fprintf(stderr, "fuzz_malloc: fz_malloc is not buddyslab or malloc is not ASan's\n");
		abort();
	}
	fz_free(ours);
	free(asan);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	input_bytes = 0;
	op_no = 0;
	while (in.i < in.n) {
		unsigned op = u8(&in), v = op >> 4;
		op_no++;
		switch (op & 15) {
		case 0:  op_malloc(&in, v); break;
		case 1:  op_calloc(&in, v); break;
		case 2:  op_realloc(&in, v); break;
		case 3:  op_aligned(&in, v, 0); break;
		case 4:  op_aligned(&in, v, 1); break;
		case 5:  op_aligned(&in, v, 2); break;
		case 6:  op_valloc(&in, v); break;
		case 7:
		case 13: slot_free(u8(&in), v); break;
		case 8:  op_usable(&in); break;
		case 9:  op_realloc_by(&in, v); break;
		case 10: op_reallocarray(&in, v); break;
		case 11: op_burst(&in, v); break;
		case 12: op_burst_free(&in, v); break;
		case 14: op_fail(&in, v); break;
		default: op_misc(&in, v); break;
		}
	}
	op_no++;
	if (faults_armed) {
		for (int op = 0; op < 4; op++)
			os_fail_at(op, 0, false);
		faults_armed = false;
	}
	for (unsigned i = 0; i < slots_used; i++)
		slot_free(i, i);
	slots_used = 0;
	if (live_bytes || live_usable)
		fail("bookkeeping: %zu bytes live after freeing everything", live_bytes);
	if (threshold_changed) {
		fz_mallopt(M_MMAP_THRESHOLD, (int)THRESHOLD);
		threshold_changed = 0;
	}
	return 0;
}
