/*
 * t.h - the tiny test harness every C test in test/ uses.
 *
 * A test program runs cases with T_RUN(fn). Each case prints one line:
 *   PASS name | FAIL name | SKIP name: reason
 * scripts/run-tests counts those lines; a program that crashes or exits
 * non-zero without a FAIL line counts as one failure. CHECK() records a
 * failure with file:line and carries on; REQUIRE() also ends the case.
 * t_expect_abort() runs a function in a forked child and checks that it dies
 * by SIGABRT with a given message on stderr.
 */
#ifndef T_H
#define T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

static int t_failed_case, t_failures, t_skipped_case;
static char t_skip_reason[256];

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
	t_failed_case = 1; } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { \
	fprintf(stderr, "  %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
	t_failed_case = 1; return; } } while (0)
#define SKIP(...) do { snprintf(t_skip_reason, sizeof t_skip_reason, __VA_ARGS__); \
	t_skipped_case = 1; return; } while (0)

#define T_RUN(fn) t_run(#fn, fn)
static inline void t_run(const char *name, void (*fn)(void))
{
	t_failed_case = 0;
	t_skipped_case = 0;
	fn();
	if (t_failed_case) { t_failures++; printf("FAIL %s\n", name); }
	else if (t_skipped_case) printf("SKIP %s: %s\n", name, t_skip_reason);
	else printf("PASS %s\n", name);
	fflush(stdout);
}
static inline int t_done(void) { return t_failures ? 1 : 0; }

/* Run fn in a child; 1 when it died of SIGABRT and its stderr holds msg. */
static inline int t_expect_abort(void (*fn)(void *), void *arg, const char *msg)
{
	int pipefd[2];
	if (pipe(pipefd) != 0) return 0;
	fflush(stdout); fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		signal(SIGABRT, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	close(pipefd[1]);
	static char buf[4096];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof buf - 1 && (r = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(pipefd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	int ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, msg) != NULL;
	if (!ok)
		fprintf(stderr, "  expected abort with \"%s\"; status 0x%x, stderr: %s\n", msg, status, buf);
	return ok;
}
#endif
