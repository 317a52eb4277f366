/*
 * prof.c - heap profiling: sampled allocations with their call stacks
 * (BUDDYSLAB_CONF=prof:1, see prof.h), dumped in the text format of
 * gperftools' heap profiler ("heap_v2"), which google-pprof and pprof read.
 *
 * Invariants
 *  - Nothing here allocates through malloc. Stacks come from stackwalk.c
 *    (a walker over the unwind tables with a cache of each frame's rule,
 *    called under prof_lock, which serialises its cache); a stack it does
 *    not read comes from libgcc's unwinder, linked into the library
 *    (-static-libgcc), run with no allocator lock held. Both find unwind
 *    tables with glibc's lock-free _dl_find_object. Should libgcc ever call
 *    malloc, prof_busy keeps that allocation from being sampled. Debug
 *    builds check every stackwalk.c stack against libgcc's.
 *  - prof_lock guards both tables and the counters; it is a leaf: no other
 *    allocator lock is taken while it is held, and it is taken with none
 *    held. A dump holds it while it writes (system calls only).
 *  - The tables live in memory mapped here, from the first sample on, and
 *    double when half full (a new mapping, filled, the old one unmapped):
 *    stacks (deduplicated, up to PROF_DEPTH return addresses, leaf first)
 *    and the live samples, keyed by the block's address stored hidden
 *    (common.h), so memcheck's leak check finds no pointer to a program's
 *    block in them. At their bounds (or when no memory can be mapped), a new
 *    stack is counted in the "overflow" stack and a new live sample is not
 *    recorded (prof_dropped counts both).
 *  - Counts are raw: samples and the requested bytes of sampled blocks;
 *    pprof scales them back with the rate in the header (heap_v2/RATE).
 */
#define _GNU_SOURCE
#include "prof.h"
#include "config.h"
#include "os.h"
#include "stackwalk.h"
#include <unwind.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#define PROF_DEPTH   64
#define STACKS_MIN   256u              /* stack records at first; index 0: overflow */
#define STACKS_MAX   (1u << 16)
#define LIVE_MIN     4096u             /* live-sample slots at first (powers of two) */
#define LIVE_MAX     (1u << 20)

struct prof_stack {
	uint64_t hash;
	uint32_t depth;
	uint64_t live_n, live_bytes, alloc_n, alloc_bytes;
	uintptr_t pc[PROF_DEPTH];
};

struct prof_live {
	uintptr_t hkey;        /* hide_addr(block); 0 = empty slot */
	uint32_t stack;
	size_t size;
};

__thread int64_t prof_left;
static __thread uint64_t prof_rng;       /* 0 until the thread's first tick */
static __thread int prof_busy;

static lock_t prof_lock = LOCK_INIT;
static struct prof_stack *stacks;        /* stack_cap records; NULL until the first sample */
static uint32_t *stack_index;            /* 2 * stack_cap slots: record number + 1, 0 = empty */
static struct prof_live *live;           /* live_cap slots */
static uint32_t nstacks, stack_cap, nlive, live_cap;
static uint64_t prof_dropped;
static uint64_t dump_seq;                /* atomic */
static int dump_pending;                 /* a signal asked while the lock was busy */
static uint64_t interval_bytes, interval_next;   /* estimated bytes allocated, next dump */

/* ------------------------------------------------------------- sampling */

static uint64_t rng_next(void)
{
	uint64_t x = prof_rng;       /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	prof_rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* ln(x) for x in (0, 1], without libm: x = m * 2^e with m in [1, 2), and
 * ln(m) = 2 atanh((m-1)/(m+1)) by its series (error below 1e-6). */
static double ln(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof bits);
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & ((1ULL << 52) - 1)) | (1023ULL << 52);
	double m;
	memcpy(&m, &bits, sizeof m);
	double t = (m - 1) / (m + 1), t2 = t * t;
	double s = t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 / 11)))));
	return e * 0.69314718055994531 + 2 * s;
}

/* Bytes until the next sample: exponential with mean opt.prof_sample. */
static int64_t next_distance(void)
{
	double u = (double)((rng_next() >> 11) + 1) / (double)(1ULL << 53);   /* (0, 1] */
	double d = -ln(u) * (double)opt.prof_sample;
	return d >= 9e18 ? INT64_MAX : (int64_t)d + 1;
}

bool prof_tick(size_t n)
{
	if (!opt.prof) {
		prof_left = INT64_MAX;
		return false;
	}
	if (unlikely(!prof_rng)) {      /* the thread's first tick: arm the count */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		prof_rng = ((uint64_t)(uintptr_t)&prof_rng * 0x9E3779B97F4A7C15ULL) ^
			   ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ 1;
		prof_left = next_distance();
		return false;
	}
	prof_left = next_distance();
	return !prof_busy;
}

/* -------------------------------------------------------------- stacks */

struct walk { uintptr_t skip_cfa; uint32_t n; uintptr_t pc[PROF_DEPTH]; };

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg)
{
	struct walk *w = arg;
	/* The context of a frame carries the CFA of the frame it called (the
	 * callback runs before the unwinder steps past it): the first frame out
	 * of the allocator is the one that called the sampling function. */
	if (_Unwind_GetCFA(ctx) < w->skip_cfa)
		return _URC_NO_REASON;
	uintptr_t pc = _Unwind_GetIP(ctx);
	if (!pc)
		return _URC_END_OF_STACK;
	w->pc[w->n++] = pc;
	return w->n == PROF_DEPTH ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static uint64_t stack_hash(const struct walk *w)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ w->n;
	for (uint32_t i = 0; i < w->n; i++)
		h = (h ^ w->pc[i]) * 0x100000001b3ULL;
	return h | 1;
}

static size_t map_len(size_t n, size_t each)
{
	return align_up(n * each, PAGE_SIZE);
}

static uint32_t *index_slot(uint32_t *index, uint32_t nslots, uint64_t h)
{
	uint32_t i = (uint32_t)h & (nslots - 1);
	while (index[i])
		i = (i + 1) & (nslots - 1);
	return &index[i];
}

/* Room for one more stack record: false at STACKS_MAX or when mapping fails. */
static bool stacks_room_locked(void)
{
	lock_assert_held(&prof_lock);
	if (nstacks < stack_cap)
		return true;
	uint32_t cap = stack_cap ? stack_cap * 2 : STACKS_MIN;
	if (cap > STACKS_MAX)
		return false;
	struct prof_stack *s = os_map(map_len(cap, sizeof *s), PAGE_SIZE);
	uint32_t *x = os_map(map_len(2 * cap, sizeof *x), PAGE_SIZE);
	if (!s || !x) {
		if (s) os_unmap(s, map_len(cap, sizeof *s));
		if (x) os_unmap(x, map_len(2 * cap, sizeof *x));
		return false;
	}
	if (stacks) {
		memcpy(s, stacks, nstacks * sizeof *s);
		os_unmap(stacks, map_len(stack_cap, sizeof *stacks));
		os_unmap(stack_index, map_len(2 * stack_cap, sizeof *stack_index));
	} else {
		nstacks = 1;        /* record 0: the overflow stack, depth 0, in no slot */
	}
	for (uint32_t k = 1; k < nstacks; k++)
		*index_slot(x, 2 * cap, s[k].hash) = k + 1;
	stacks = s;
	stack_index = x;
	stack_cap = cap;
	return true;
}

/* The record of w's stack, added when new (the overflow stack when full). */
static uint32_t stack_find_locked(const struct walk *w)
{
	lock_assert_held(&prof_lock);
	uint64_t h = stack_hash(w);
	uint32_t nslots = 2 * stack_cap;
	for (uint32_t i = (uint32_t)h & (nslots - 1); nslots; i = (i + 1) & (nslots - 1)) {
		uint32_t k = stack_index[i];
		if (!k)
			break;
		struct prof_stack *s = &stacks[k - 1];
		if (s->hash == h && s->depth == w->n && !memcmp(s->pc, w->pc, w->n * sizeof w->pc[0]))
			return k - 1;
	}
	if (!stacks_room_locked()) {
		prof_dropped++;
		return 0;
	}
	struct prof_stack *s = &stacks[nstacks];
	memset(s, 0, sizeof *s);
	s->hash = h;
	s->depth = w->n;
	memcpy(s->pc, w->pc, w->n * sizeof w->pc[0]);
	*index_slot(stack_index, 2 * stack_cap, h) = ++nstacks;
	return nstacks - 1;
}

/* ------------------------------------------------------- live samples */

static uint32_t live_slot(uintptr_t hkey)
{
	return (uint32_t)((hkey * 0x9E3779B97F4A7C15ULL) >> 40) & (live_cap - 1);
}

static struct prof_live *live_find_locked(uintptr_t hkey)
{
	lock_assert_held(&prof_lock);
	for (uint32_t i = live_slot(hkey); live_cap; i = (i + 1) & (live_cap - 1)) {
		if (live[i].hkey == hkey)
			return &live[i];
		if (!live[i].hkey)
			return NULL;
	}
	return NULL;
}

static void live_put_locked(struct prof_live e)
{
	lock_assert_held(&prof_lock);
	uint32_t i = live_slot(e.hkey);
	while (live[i].hkey)
		i = (i + 1) & (live_cap - 1);
	live[i] = e;
	nlive++;
}

/* Room for one more live sample, keeping the table at most half full. */
static bool live_room_locked(void)
{
	lock_assert_held(&prof_lock);
	if (nlive + 1 <= live_cap / 2)
		return true;
	uint32_t cap = live_cap ? live_cap * 2 : LIVE_MIN;
	if (cap > LIVE_MAX)
		return false;
	struct prof_live *l = os_map(map_len(cap, sizeof *l), PAGE_SIZE);
	if (!l)
		return false;
	struct prof_live *old = live;
	uint32_t old_cap = live_cap;
	live = l;
	live_cap = cap;
	nlive = 0;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].hkey)
			live_put_locked(old[i]);
	if (old)
		os_unmap(old, map_len(old_cap, sizeof *old));
	return true;
}

/* Remove slot e, shifting later entries of its probe run back (no tombstones). */
static void live_remove_locked(struct prof_live *e)
{
	lock_assert_held(&prof_lock);
	uint32_t i = (uint32_t)(e - live);
	uint32_t mask = live_cap - 1;
	for (uint32_t j = (i + 1) & mask; live[j].hkey; j = (j + 1) & mask) {
		uint32_t home = live_slot(live[j].hkey);
		/* j's entry may move to i when its home is not in (i, j] (cyclically) */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			live[i] = live[j];
			i = j;
		}
	}
	live[i].hkey = 0;
	nlive--;
}

static void maybe_dump(void);

/* libgcc's walk, for the stacks stackwalk.c does not read. Outside prof_lock:
 * should it allocate, prof_busy keeps that block from being sampled. */
static void walk_libgcc(struct walk *w)
{
	w->n = 0;
	prof_busy = 1;
	_Unwind_Backtrace(walk_frame, w);
	prof_busy = 0;
}

/* Debug builds: every stack stackwalk.c gives must be libgcc's. */
static void walk_check(const struct walk *w)
{
	struct walk g = { .skip_cfa = w->skip_cfa };
	walk_libgcc(&g);
	uint32_t i = 0;
	while (i < w->n && i < g.n && w->pc[i] == g.pc[i])
		i++;
	if (i < w->n || i < g.n)
		bsl_fatalf("aborting on a profiler bug", "stackwalk.c's stack differs from libgcc's at "
			   "frame %u of %u/%u: %p, libgcc %p", i, w->n, g.n,
			   (void *)(i < w->n ? w->pc[i] : 0), (void *)(i < g.n ? g.pc[i] : 0));
}

void prof_record(void *p, size_t n, uintptr_t skip_cfa)
{
	struct walk w = { .skip_cfa = skip_cfa };
	bool complete;
	lock_acquire(&prof_lock);
	w.n = stackwalk(skip_cfa, w.pc, PROF_DEPTH, &complete);   /* its cache: under the lock */
	if (!complete || BSL_DEBUG) {
		lock_release(&prof_lock);
		if (complete)
			walk_check(&w);
		else
			walk_libgcc(&w);
		lock_acquire(&prof_lock);
	}
	uint32_t k = stack_find_locked(&w);
	if (stacks) {      /* NULL only when not even the first table could be mapped */
		struct prof_stack *s = &stacks[k];
		s->alloc_n++;
		s->alloc_bytes += n;
		if (live_room_locked()) {
			live_put_locked((struct prof_live){ hide_addr((uintptr_t)p), k, n });
			s->live_n++;
			s->live_bytes += n;
		} else {
			prof_dropped++;
		}
	}
	interval_bytes += (uint64_t)opt.prof_sample;
	lock_release(&prof_lock);
	maybe_dump();
}

void prof_forget(const void *p, const void *q)
{
	lock_acquire(&prof_lock);
	struct prof_live *e = live_find_locked(hide_addr((uintptr_t)p));
	if (e && q) {
		struct prof_live moved = *e;
		live_remove_locked(e);
		moved.hkey = hide_addr((uintptr_t)q);
		live_put_locked(moved);
	} else if (e) {
		struct prof_stack *s = &stacks[e->stack];
		s->live_n--;
		s->live_bytes -= e->size;
		live_remove_locked(e);
	}
	lock_release(&prof_lock);
}

/* --------------------------------------------------------------- dumps */

/* Append /proc/self/maps to the dump. */
static void copy_maps(struct text *t)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		text_printf(t, "%.*s", (int)r, buf);
	close(fd);
}

static int dump_locked(const char *path)
{
	lock_assert_held(&prof_lock);
	char name[BSL_PATH_MAX + 64];
	if (!path) {
		struct text nt = { name, sizeof name - 1, 0, -1 };
		text_printf(&nt, "%s.%d.%lu.heap", opt.prof_prefix, (int)getpid(),
			    (unsigned long)__atomic_fetch_add(&dump_seq, 1, __ATOMIC_RELAXED));
		name[nt.len] = 0;
		path = name;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	char buf[8192];
	struct text t = TEXT_INIT(buf, fd);
	uint64_t tot[4] = { 0, 0, 0, 0 };
	for (uint32_t k = 0; stacks && k < nstacks; k++) {
		tot[0] += stacks[k].live_n;
		tot[1] += stacks[k].live_bytes;
		tot[2] += stacks[k].alloc_n;
		tot[3] += stacks[k].alloc_bytes;
	}
	text_printf(&t, "heap profile: %lu: %lu [%lu: %lu] @ heap_v2/%lu\n",
		    (unsigned long)tot[0], (unsigned long)tot[1], (unsigned long)tot[2],
		    (unsigned long)tot[3], (unsigned long)opt.prof_sample);
	for (uint32_t k = 0; stacks && k < nstacks; k++) {
		const struct prof_stack *s = &stacks[k];
		if (!s->alloc_n)
			continue;
		text_printf(&t, "%lu: %lu [%lu: %lu] @", (unsigned long)s->live_n,
			    (unsigned long)s->live_bytes, (unsigned long)s->alloc_n,
			    (unsigned long)s->alloc_bytes);
		for (uint32_t i = 0; i < s->depth; i++)
			text_printf(&t, " %p", (void *)s->pc[i]);
		text_printf(&t, s->depth ? "\n" : " 0x0\n");   /* the overflow stack */
	}
	text_printf(&t, "\nMAPPED_LIBRARIES:\n");
	copy_maps(&t);
	text_flush(&t);
	int ok = close(fd);
	return ok == 0 ? 0 : -1;
}

int prof_dump(const char *path)
{
	if (!opt.prof) {
		errno = EINVAL;
		return -1;
	}
	int saved = errno;
	lock_acquire(&prof_lock);
	int r = dump_locked(path);
	dump_pending = 0;
	lock_release(&prof_lock);
	if (r == 0)
		errno = saved;
	return r;
}

void prof_dump_from_signal(void)
{
	if (!lock_try(&prof_lock)) {       /* busy, maybe by the thread we interrupted */
		__atomic_store_n(&dump_pending, 1, __ATOMIC_RELAXED);
		return;
	}
	dump_locked(NULL);
	lock_release(&prof_lock);
}

/* After a sample: a dump asked for by a signal that found the lock busy, or
 * one every prof_interval bytes (estimated: each sample stands for
 * prof_sample bytes). */
static void maybe_dump(void)
{
	bool due = __atomic_exchange_n(&dump_pending, 0, __ATOMIC_RELAXED);
	if (opt.prof_interval) {
		lock_acquire(&prof_lock);
		if (!interval_next)
			interval_next = (uint64_t)opt.prof_interval;
		if (interval_bytes >= interval_next) {
			interval_next = interval_bytes + (uint64_t)opt.prof_interval;
			due = true;
		}
		lock_release(&prof_lock);
	}
	if (due)
		prof_dump(NULL);
}

void prof_lock_all(void)
{
	lock_fork_acquire(&prof_lock);
}

void prof_unlock_all(void)
{
	lock_fork_release(&prof_lock);
}

EXPORT int bsl_prof_dump(const char *path)
{
	return prof_dump(path);
}
