/*
 * test_stackwalk.c - the profiler's stack walker (src/stackwalk.c) gives the
 * stack libgcc's _Unwind_Backtrace gives, frame for frame, or says it cannot:
 * nested calls, frames whose CFA is rbp-based (a variable-length array),
 * more frames than the depth, a thread's stack down to clone, a signal
 * handler's stack; a stack seen before is walked from the rule cache
 * without decoding any table, unless its rules came from another object (a
 * dlclose and a dlopen at the same addresses).
 */
#define _GNU_SOURCE
#include "t.h"
#include "stackwalk.h"
#include <unwind.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define DEPTH 64

struct walk { uintptr_t skip; unsigned n; uintptr_t pc[DEPTH]; };

static _Unwind_Reason_Code frame(struct _Unwind_Context *ctx, void *arg)
{
	struct walk *w = arg;
	if (_Unwind_GetCFA(ctx) < w->skip)
		return _URC_NO_REASON;
	uintptr_t pc = _Unwind_GetIP(ctx);
	if (!pc)
		return _URC_END_OF_STACK;
	w->pc[w->n++] = pc;
	return w->n == DEPTH ? _URC_END_OF_STACK : _URC_NO_REASON;
}

/* Both walks from here, leaving this function out. 1: complete and equal;
 * 0: the walker said it cannot; -1: complete but different (a bug). */
static int last_n;
static __attribute__((noinline)) int compare_here(void)
{
	uintptr_t skip = (uintptr_t)__builtin_dwarf_cfa();
	struct walk fast = { skip, 0, { 0 } }, ref = { skip, 0, { 0 } };
	bool complete;
	fast.n = stackwalk(skip, fast.pc, DEPTH, &complete);
	_Unwind_Backtrace(frame, &ref);
	last_n = (int)ref.n;
	if (!complete)
		return 0;
	if (fast.n != ref.n || memcmp(fast.pc, ref.pc, ref.n * sizeof ref.pc[0])) {
		fprintf(stderr, "  stackwalk %u frames, libgcc %u\n", fast.n, ref.n);
		for (unsigned i = 0; i < fast.n || i < ref.n; i++)
			fprintf(stderr, "    %2u %p %p\n", i, (void *)(i < fast.n ? fast.pc[i] : 0),
				(void *)(i < ref.n ? ref.pc[i] : 0));
		return -1;
	}
	return 1;
}

static __attribute__((noinline)) int nest(int k)
{
	int r = k ? nest(k - 1) : compare_here();
	__asm__ volatile("" ::: "memory");      /* not a tail call */
	return r;
}

/* A variable-length array makes the compiler address the frame from rbp. */
static __attribute__((noinline)) int with_vla(int n)
{
	volatile char buf[n];
	buf[0] = 1;
	int r = nest(2);
	__asm__ volatile("" ::: "memory");
	return r + buf[0] - 1;
}

static void t_nested_calls(void)
{
	CHECK(nest(5) == 1);
	CHECK(last_n >= 7);          /* compare_here's caller, 6 nest frames, main */
}

static void t_rbp_based_frames(void)
{
	CHECK(with_vla(100) == 1);
	CHECK(with_vla(5000) == 1);
}

static void t_deeper_than_the_depth(void)
{
	CHECK(nest(100) == 1);
	CHECK(last_n == DEPTH);
}

static void *thread_main(void *arg)
{
	*(int *)arg = with_vla(64);
	return NULL;
}

static void t_thread_stack(void)
{
	int r = 7;
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, thread_main, &r) == 0);
	pthread_join(t, NULL);
	CHECK(r == 1);
}

static volatile int in_handler = 2;
static void handler(int sig)
{
	in_handler = nest(1);
}

/* Through a signal frame the walker stops and libgcc answers: never a
 * different stack. */
static void t_signal_handler(void)
{
	signal(SIGUSR1, handler);
	raise(SIGUSR1);
	signal(SIGUSR1, SIG_DFL);
	CHECK(in_handler == 0);
}

static void t_cached_second_walk(void)
{
	uint64_t decoded = 0, cached = 0;
	for (volatile int i = 0; i < 2; i++) {   /* the same call site twice (not unrolled) */
		if (i == 1) {
			decoded = stackwalk_stats.decoded;
			cached = stackwalk_stats.cached;
		}
		REQUIRE(nest(3) == 1);
	}
	CHECK(stackwalk_stats.decoded == decoded);
	CHECK(stackwalk_stats.cached >= cached + 6);   /* compare_here, 4 nest, this, main... */
}

/* A cached rule whose object is not the one at its address now (a dlclose,
 * then other code loaded there) is decoded again, and the walk stays right. */
static void t_rules_of_another_object_are_redone(void)
{
	for (volatile int i = 0; i < 2; i++) {
		if (i == 1)
			stackwalk_test_forge();
		uint64_t replaced = stackwalk_stats.replaced, decoded = stackwalk_stats.decoded;
		REQUIRE(nest(2) == 1);
		if (i == 0)
			continue;
		CHECK(stackwalk_stats.replaced >= replaced + 4);   /* compare_here, nest x3, ... */
		CHECK(stackwalk_stats.decoded >= decoded + 4);
	}
}

/* Objects are looked up once per object a walk enters, not once per frame:
 * the nested frames here are all in this program. */
static void t_one_lookup_per_object(void)
{
	uint64_t objects = stackwalk_stats.objects, walks = stackwalk_stats.walks;
	REQUIRE(nest(20) == 1);
	REQUIRE(stackwalk_stats.walks == walks + 1);
	CHECK(stackwalk_stats.objects - objects < 8);    /* 25 frames in 3 or 4 objects */
}

int main(void)
{
	T_RUN(t_nested_calls);
	T_RUN(t_rbp_based_frames);
	T_RUN(t_deeper_than_the_depth);
	T_RUN(t_thread_stack);
	T_RUN(t_signal_handler);
	T_RUN(t_cached_second_walk);
	T_RUN(t_rules_of_another_object_are_redone);
	T_RUN(t_one_lookup_per_object);
	return t_done();
}
