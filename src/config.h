/*
 * config.h - the options table, filled once from BUDDYSLAB_CONF.
 *
 * Writers: config_init fills opt; after it, opt changes only through the
 * config_* setters below (test/layers.sh fails on any other write in src/):
 * start-up decisions taken under init_lock before the first allocation
 * (memcheck turning the thread cache off), and two run-time
 * changes, made atomically because other threads read the fields meanwhile:
 * a background thread that could not start, and mallopt's mmap threshold.
 * Run-time readers of those two use opt_background_thread and
 * opt_mmap_threshold.
 *
 * BUDDYSLAB_CONF="key:value,key:value", white space around keys and values
 * ignored. Parsed without allocating; an unknown key or a bad value prints
 * one warning line (the key, the value, what is allowed) and keeps the
 * default. Every key is documented in LD_PRELOAD.md.
 */
#ifndef BSL_CONFIG_H
#define BSL_CONFIG_H
#include "common.h"
#pragma GCC visibility push(hidden)

#define BSL_PATH_MAX 4096

struct bsl_options {
	size_t mmap_threshold;  /* bytes; larger requests are mmap'd (SLAB_MAX..4 MiB) */
	long   stats;           /* 1: print the views to stderr at exit */
	long   thp;             /* -1 leave the system setting, 0 never, 1 madvise */
	long   tcache;          /* 0 disables the thread caches */
	long   colour;          /* 1: slab colouring, the first object of each slab offset
				 * by a cycling multiple of the cache line (slab.c) */
	long   decay_ms;        /* free pages idle this long go back; 0 at once, -1 never */
	long   purge_free;      /* 1: MADV_FREE instead of MADV_DONTNEED */
	long   background_thread;  /* 1: a thread does the decay purging */
	long   large_cache;     /* bytes of freed large mappings kept for reuse */
	long   stats_signal;    /* 0, or a signal that prints the report (config.c refuses
				 * the ones whose handler must not return) */
	char   stats_file[BSL_PATH_MAX];   /* "" or an absolute path: the report goes there */
	long   secure;          /* SEC_* hardening features (secure.h) */
	long   prof;            /* 1: sample allocations for heap profiles (prof.h) */
	long   prof_sample;     /* mean bytes between samples */
	long   prof_final;      /* 1: dump a profile at exit (when prof is on) */
	long   prof_signal;     /* 0, or a signal that dumps a profile */
	long   prof_interval;   /* 0, or dump every this many bytes allocated (estimated) */
	char   prof_prefix[BSL_PATH_MAX];  /* dumps go to PREFIX.PID.SEQ.heap; absolute */
};

/* The features of opt.secure (secure.h says what each does). */
enum {
	SEC_GUARD = 1, SEC_CANARY = 2, SEC_FILL = 4, SEC_SHUFFLE = 8, SEC_QUARANTINE = 16,
	SEC_SIZE0 = 32, SEC_SIZED = 64, SEC_ALL = 127
};

extern struct bsl_options opt;

void config_init(void);        /* parse the environment once */

/* Start-up only (init_lock held, no allocation made yet). */
void config_tcache_off(void);
void config_secure_keep(long features);     /* opt.secure &= features */
/* Run time. */
void config_background_off(void);
void config_set_mmap_threshold(size_t bytes);    /* clamped to SLAB_MAX..CHUNK_SIZE */

static inline long opt_background_thread(void)
{
	return __atomic_load_n(&opt.background_thread, __ATOMIC_RELAXED);
}

static inline size_t opt_mmap_threshold(void)
{
	return __atomic_load_n(&opt.mmap_threshold, __ATOMIC_RELAXED);
}
void config_print(int fd);
#pragma GCC visibility pop
#endif
