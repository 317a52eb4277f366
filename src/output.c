/*
 * output.c - the streams of output.h: which descriptor a text goes to, and
 * the one write() that puts it there.
 *
 * Owns the identity (st_dev, st_ino) of fd 2 at start-up and the private
 * descriptor: a duplicate of that fd 2 taken at start-up, at number 1000 or
 * above (3 or above when RLIMIT_NOFILE is lower), close-on-exec, when a
 * report may go to stderr (stats or stats_signal set, stats_file not). It is
 * what lets the report of `sort` (which closes fd 2 before exit) reach the
 * terminal, and keeps it out of a data file that took number 2.
 *
 * Invariants
 *  - After start-up, buddyslab writes to fd 2 only while fd 2 is the file it
 *    was at start-up, except for the message before an abort, which goes to
 *    fd 2 when the private descriptor is gone (it is the only account of the
 *    abort; documented in LD_PRELOAD.md).
 *  - priv_fd is -1 or a descriptor buddyslab opened. Before every write it is
 *    checked (fstat) to be the start-up file still; once it is not - the
 *    program closed it, or took the number over with open or dup2 - it is
 *    forgotten (-1) for good and never closed: the number is the program's.
 *  - buddyslab closes only a descriptor it has just opened: the stats_file
 *    one, after its one write.
 *  - A text is one write() call; the loop only continues a write the kernel
 *    took in part. A write that fails is dropped, and it never kills the
 *    process: SIGPIPE is blocked around it and a SIGPIPE it raised is taken
 *    back. errno is preserved.
 *  - Nothing here allocates or takes a lock; every call is async-signal-safe
 *    (fstat, write, open, close, the signal mask calls).
 *
 * Race: the check and the write are two system calls; a thread that closed
 * the private number and opened a file on it in between would receive the
 * text. The program cannot know the number, so only a sweep of all its
 * descriptors (closefrom, then opens up to 1000) can, and only at that instant.
 */
#define _GNU_SOURCE
#include "output.h"
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PRIVATE_FD_MIN 1000

static dev_t start_dev;        /* fd 2 at start-up, if start_ok */
static ino_t start_ino;
static bool start_ok;
static int started;            /* out_init has run; atomic */
static int priv_fd = -1;       /* atomic; see the invariants */

static bool is_start_stderr(int fd)
{
	struct stat st;
	return start_ok && fstat(fd, &st) == 0 && st.st_dev == start_dev && st.st_ino == start_ino;
}

void out_init(void)
{
	struct stat st;
	if (fstat(2, &st) == 0) {
		start_dev = st.st_dev;
		start_ino = st.st_ino;
		start_ok = true;
	}
	if (start_ok && (opt.stats || opt.stats_signal) && !opt.stats_file[0]) {
		int fd = fcntl(2, F_DUPFD_CLOEXEC, PRIVATE_FD_MIN);
		if (fd < 0)     /* EINVAL: RLIMIT_NOFILE is at most 1000 */
			fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
		__atomic_store_n(&priv_fd, fd, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&started, 1, __ATOMIC_RELEASE);
}

/* The private descriptor if it is still the start-up stderr, else -1. */
static int private_stderr(void)
{
	int fd = __atomic_load_n(&priv_fd, __ATOMIC_RELAXED);
	if (fd < 0 || is_start_stderr(fd))
		return fd;
	__atomic_compare_exchange_n(&priv_fd, &fd, -1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return -1;
}

/* The stderr of start-up: the private descriptor, else fd 2 if it is still
 * the same file, else -1. */
static int start_stderr(void)
{
	int fd = private_stderr();
	if (fd < 0 && is_start_stderr(2))
		fd = 2;
	return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	bool broken = false;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			broken = w < 0 && errno == EPIPE;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	if (broken && !was_pending) {   /* take back the SIGPIPE this write raised */
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void out_write(int dest, const char *p, size_t n)
{
	int saved_errno = errno;
	int fd = dest;
	if (dest < 0 && !__atomic_load_n(&started, __ATOMIC_ACQUIRE)) {
		fd = 2;                 /* start-up: fd 2 is the start-up file */
	} else if (dest == OUT_REPORT && opt.stats_file[0]) {
		fd = open(opt.stats_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
		if (fd >= 0) {
			write_all(fd, p, n);
			close(fd);
		}
		fd = -1;
	} else if (dest == OUT_FATAL) {
		fd = private_stderr();
		if (fd < 0)
			fd = 2;
	} else if (dest < 0) {          /* OUT_REPORT, OUT_WARN */
		fd = start_stderr();
	}
	if (fd >= 0)
		write_all(fd, p, n);
	errno = saved_errno;
}
