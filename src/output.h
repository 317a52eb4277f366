/*
 * output.h - where buddyslab's own text goes (output.c).
 *
 * A destination is a descriptor the caller names (>= 0: the public views,
 * bsl_config_print, malloc_stats) or one of the streams below, which
 * output.c resolves at each write so that buddyslab never writes into a file
 * the program owns:
 *   OUT_REPORT  the stats report (stats:1 at exit, stats_signal): the file
 *               stats_file names, else the stderr of start-up
 *   OUT_WARN    warnings: fd 2 during start-up, then the stderr of start-up
 *   OUT_FATAL   the message before an abort: the stderr of start-up if it
 *               can still be reached, else fd 2 whatever it is now
 * "The stderr of start-up" is the private descriptor (a duplicate of fd 2
 * taken at start-up when a report may be written), else fd 2 while it is the
 * same file (st_dev, st_ino) as at start-up; if neither, the text is dropped.
 */
#ifndef BSL_OUTPUT_H
#define BSL_OUTPUT_H
#include "common.h"
#pragma GCC visibility push(hidden)

#define OUT_REPORT  (-1)
#define OUT_WARN    (-2)
#define OUT_FATAL   (-3)

/* Once, in bsl_init_slow after config_init: note what fd 2 is and, when
 * stats or stats_signal is set without stats_file, take the private
 * descriptor. Before it runs, every stream is fd 2. */
void out_init(void);

/* Write n bytes to dest in one write() (more only if the kernel takes a part
 * of it); a failure is dropped. Async-signal-safe, allocates nothing, takes
 * no lock; OUT_REPORT with stats_file opens, appends and closes the file. */
void out_write(int dest, const char *p, size_t n);
#pragma GCC visibility pop
#endif
