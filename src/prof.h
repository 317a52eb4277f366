/*
 * prof.h - the heap profiler (prof.c): sampled allocations, their call
 * stacks, and dumps google-pprof reads.
 *
 * Sampling: every thread counts down prof_left, the bytes until its next
 * sample. The allocation fast paths subtract the request and fall to
 * prof_tick when the count goes below zero; prof_tick draws the next
 * distance from an exponential distribution of mean opt.prof_sample, so
 * every byte has the same chance of being sampled. With prof:0 the first
 * tick of a thread sets the count out of reach (INT64_MAX) and the cost is
 * that one subtraction per allocation.
 *
 * A sampled block is a page run (flag PDF_SAMPLED on its head; freed through
 * free's slow path, which calls prof_free) or a large block (prof_free is
 * asked at every large free while profiling), so the free fast path never
 * meets one.
 */
#ifndef BSL_PROF_H
#define BSL_PROF_H
#include "common.h"
#pragma GCC visibility push(hidden)

extern __thread int64_t prof_left __attribute__((tls_model("initial-exec")));

/* Count n bytes down; true when the count went below zero. The subtraction
 * wraps (unsigned) instead of overflowing: malloc(SIZE_MAX) counts as -1. */
static inline bool prof_count(size_t n)
{
	prof_left = (int64_t)((uint64_t)prof_left - n);
	return prof_left < 0;
}

/* The countdown ran out on an allocation of n bytes: true when this one is
 * to be sampled (the count is re-armed either way). */
bool prof_tick(size_t n);
/* Record a sampled block p of n requested bytes; skip_cfa is the canonical
 * frame address of the sampling function: it and the frames it called are
 * left out of the stack. */
void prof_record(void *p, size_t n, uintptr_t skip_cfa);
/* p is being freed (or moved by realloc to q, else q is NULL): forget its
 * sample, or re-key it. A p that was not sampled is ignored. */
void prof_forget(const void *p, const void *q);
/* Write a profile: to path, or (NULL) to prof_prefix.PID.SEQ.heap. 0 or -1. */
int prof_dump(const char *path);
/* From a signal handler: dump now, or, if the profile's lock is busy,
 * at the next sample. */
void prof_dump_from_signal(void);
void prof_lock_all(void);
void prof_unlock_all(void);
#pragma GCC visibility pop
#endif
