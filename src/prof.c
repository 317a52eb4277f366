/*
 * prof.c - heap profiling: sampled allocations with their call stacks
 * (BUDDYSLAB_CONF=prof:1, see prof.h), dumped in the text format of
 * gperftools' heap profiler ("heap_v2"), which google-pprof and pprof read.
 *
 * Invariants
 *  - Nothing here allocates through malloc, and the unwinder runs with no
 *    allocator lock held: it is libgcc's, linked into the library
 *    (-static-libgcc), which finds unwind tables with glibc's lock-free
 *    _dl_find_object. Should it ever call malloc, prof_busy keeps that
 *    allocation from being sampled (no recursion).
 *  - prof_lock guards both tables and the counters; it is a leaf: no other
 *    allocator lock is taken while it is held, and it is taken with none
 *    held. A dump holds it while it writes (system calls only).
 *  - The tables live in memory mapped here on the first sample: stacks
 *    (deduplicated, up to PROF_DEPTH return addresses, leaf first) and the
 *    live samples, keyed by the block's address stored hidden (common.h), so
 *    memcheck's leak check finds no pointer to a program's block in them.
 *    When a table is full, a new stack is counted in the "overflow" stack
 *    and a new live sample is not recorded (prof_dropped counts both).
 *  - Counts are raw: samples and the requested bytes of sampled blocks;
 *    pprof scales them back with the rate in the header (heap_v2/RATE).
 */
#define _GNU_SOURCE
#include "prof.h"
#include "config.h"
#include "os.h"
#include <unwind.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#define PROF_DEPTH   64
#define NSTACKS      (1u << 16)        /* stack records; index 0 is the overflow stack */
#define STACK_SLOTS  (NSTACKS * 2)     /* hash slots of the stack index */
#define NLIVE        (1u << 20)        /* live samples (power of two) */

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
static struct prof_stack *stacks;        /* NSTACKS; NULL until the first sample */
static uint32_t *stack_index;            /* STACK_SLOTS: stack number + 1, 0 = empty */
static struct prof_live *live;           /* NLIVE */
static uint32_t nstacks, nlive;
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

static bool tables_ready_locked(void)
{
	lock_assert_held(&prof_lock);
	if (stacks)
		return true;
	void *s = os_map(align_up(NSTACKS * sizeof *stacks, PAGE_SIZE), PAGE_SIZE);
	void *x = os_map(align_up(STACK_SLOTS * sizeof *stack_index, PAGE_SIZE), PAGE_SIZE);
	void *l = os_map(align_up(NLIVE * sizeof *live, PAGE_SIZE), PAGE_SIZE);
	if (!s || !x || !l) {
		if (s) os_unmap(s, align_up(NSTACKS * sizeof *stacks, PAGE_SIZE));
		if (x) os_unmap(x, align_up(STACK_SLOTS * sizeof *stack_index, PAGE_SIZE));
		if (l) os_unmap(l, align_up(NLIVE * sizeof *live, PAGE_SIZE));
		return false;
	}
	stack_index = x;
	live = l;
	stacks = s;
	nstacks = 1;        /* stacks[0]: the overflow stack, depth 0 */
	return true;
}

/* The record of w's stack, added when new (the overflow stack when full). */
static uint32_t stack_find_locked(const struct walk *w)
{
	uint64_t h = stack_hash(w);
	for (uint32_t i = (uint32_t)h & (STACK_SLOTS - 1);; i = (i + 1) & (STACK_SLOTS - 1)) {
		uint32_t k = stack_index[i];
		if (!k) {
			if (nstacks == NSTACKS) {
				prof_dropped++;
				return 0;
			}
			struct prof_stack *s = &stacks[nstacks];
			s->hash = h;
			s->depth = w->n;
			memcpy(s->pc, w->pc, w->n * sizeof w->pc[0]);
			stack_index[i] = ++nstacks;
			return nstacks - 1;
		}
		struct prof_stack *s = &stacks[k - 1];
		if (s->hash == h && s->depth == w->n && !memcmp(s->pc, w->pc, w->n * sizeof w->pc[0]))
			return k - 1;
	}
}

/* ------------------------------------------------------- live samples */

static uint32_t live_slot(uintptr_t hkey)
{
	return (uint32_t)((hkey * 0x9E3779B97F4A7C15ULL) >> 44) & (NLIVE - 1);
}

static struct prof_live *live_find_locked(uintptr_t hkey)
{
	for (uint32_t i = live_slot(hkey);; i = (i + 1) & (NLIVE - 1)) {
		if (live[i].hkey == hkey)
			return &live[i];
		if (!live[i].hkey)
			return NULL;
	}
}

/* Remove slot e, shifting later entries of its probe run back (no tombstones). */
static void live_remove_locked(struct prof_live *e)
{
	uint32_t i = (uint32_t)(e - live);
	for (uint32_t j = (i + 1) & (NLIVE - 1); live[j].hkey; j = (j + 1) & (NLIVE - 1)) {
		uint32_t home = live_slot(live[j].hkey);
		/* j's entry may move to i when its home is not in (i, j] (cyclically) */
		if (((j - home) & (NLIVE - 1)) >= ((j - i) & (NLIVE - 1))) {
			live[i] = live[j];
			i = j;
		}
	}
	live[i].hkey = 0;
	nlive--;
}

static void maybe_dump(void);

void prof_record(void *p, size_t n, uintptr_t skip_cfa)
{
	struct walk w;
	w.skip_cfa = skip_cfa;
	w.n = 0;
	prof_busy = 1;
	_Unwind_Backtrace(walk_frame, &w);
	prof_busy = 0;
	lock_acquire(&prof_lock);
	if (tables_ready_locked()) {
		uint32_t k = stack_find_locked(&w);
		struct prof_stack *s = &stacks[k];
		s->alloc_n++;
		s->alloc_bytes += n;
		if (nlive < NLIVE / 2) {        /* keep probe runs short */
			uintptr_t hkey = hide_addr((uintptr_t)p);
			uint32_t i = live_slot(hkey);
			while (live[i].hkey)
				i = (i + 1) & (NLIVE - 1);
			live[i] = (struct prof_live){ hkey, k, n };
			nlive++;
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
	struct prof_live *e = stacks ? live_find_locked(hide_addr((uintptr_t)p)) : NULL;
	if (e && q) {
		struct prof_live moved = *e;
		live_remove_locked(e);
		moved.hkey = hide_addr((uintptr_t)q);
		uint32_t i = live_slot(moved.hkey);
		while (live[i].hkey)
			i = (i + 1) & (NLIVE - 1);
		live[i] = moved;
		nlive++;
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
