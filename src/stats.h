/*
 * stats.h - the views: bsl_stats, buddyinfo, slabinfo, and glibc's formats
 * (mallinfo2, malloc_stats, malloc_info). Figures are folded from the
 * per-zone, per-CPU and per-thread counters when read, so keeping them costs
 * the fast paths nothing; they are exact only while no thread allocates.
 */
#ifndef BSL_STATS_H
#define BSL_STATS_H
#pragma GCC visibility push(hidden)
/* The report (stats line with the pid, buddyinfo, slabinfo) to OUT_REPORT
 * (output.h), built in a static buffer and written in one write(): at exit
 * with stats:1 and on stats_signal. Async-signal-safe. */
void stats_report(void);
void stats_after_fork_child(void);   /* init.c's fork child handler */
#pragma GCC visibility pop
#endif
