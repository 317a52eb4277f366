/*
 * micro.h - the C side of the microbenchmarks.
 *
 * Each benchmark body is plain C. The C++ shim (shim.cc) turns every entry of
 * micro_table[] into one Google Benchmark per argument value and calls run()
 * inside the keep-running loop. Nothing here knows about C++.
 */
#ifndef MICRO_H
#define MICRO_H
#include <stddef.h>

struct micro {
	const char *name;              /* family, e.g. "malloc_free" -> "malloc_free/64" */
	const long *args;              /* argument values, 0-terminated; NULL: no argument */
	void *(*setup)(long arg);      /* optional, untimed; returns state for run() */
	long (*run)(void *st, long arg);   /* one timed iteration: items done, < 0 on a wrong result */
	long (*teardown)(void *st);    /* optional, untimed; < 0 on a wrong result */
	int bytes;                     /* 1: also report bytes processed = items * arg */
};

extern const struct micro micro_table[];

/* Keep the compiler from eliding an allocation or the stores into it. */
static inline void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* Small deterministic PRNG, so every allocator gets the same sequence. */
static inline unsigned long xorshift(unsigned long *s)
{
	unsigned long x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	return *s = x;
}

/* Peak-RSS bookkeeping (rss.c): reset VmHWM to the current RSS, read VmHWM. */
void rss_reset_peak(void);
long rss_peak_kb(void);

#endif
