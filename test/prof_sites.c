/*
 * prof_sites.c - a program whose allocation sites are known, for prof.sh.
 *
 * Four threads each call site_sixty, site_thirty and site_ten in turn with
 * 600, 300 and 100 bytes: 60%, 30% and 10% of the bytes allocated. Every
 * block is freed at once except the last KEEP blocks of site_thirty per
 * thread, which stay live until exit: in use, only site_thirty holds memory.
 *   prof_sites            run, then dump to the path in $PROF_OUT (if set)
 *   prof_sites fork       the same, then a forked child allocates and dumps
 *                         to $PROF_OUT.child with bsl_prof_dump
 *   prof_sites signal     the same, then raise(SIGUSR1) (prof_signal:10 dumps)
 *   prof_sites off        bsl_prof_dump must fail with EINVAL (profiling off)
 * Prints "allocated N bytes, kept N bytes" for the script to compare.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buddyslab.h"

#define NTHREADS 4
#define ROUNDS   25000
#define KEEP     1000
#define NOI __attribute__((noinline))

static void *kept[NTHREADS][KEEP];

NOI void *site_sixty(size_t n) { char *p = malloc(n); memset(p, 6, n); return p; }
NOI void *site_thirty(size_t n) { char *p = malloc(n); memset(p, 3, n); return p; }
NOI void *site_ten(size_t n) { char *p = malloc(n); memset(p, 1, n); return p; }

static void *worker(void *arg)
{
	long t = (long)arg;
	for (int r = 0; r < ROUNDS; r++) {
		free(site_sixty(600));
		void *q = site_thirty(300);
		if (r >= ROUNDS - KEEP)
			kept[t][r - (ROUNDS - KEEP)] = q;
		else
			free(q);
		free(site_ten(100));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *out = getenv("PROF_OUT");
	if (strcmp(mode, "off") == 0) {
		int r = bsl_prof_dump("/dev/null");
		printf("%s\n", r == -1 && errno == EINVAL ? "refused" : "not refused");
		return 0;
	}
	pthread_t th[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	printf("allocated %ld bytes, kept %ld bytes\n", (long)NTHREADS * ROUNDS * 1000,
	       (long)NTHREADS * KEEP * 300);
	if (out && bsl_prof_dump(out) != 0) {
		perror("bsl_prof_dump");
		return 1;
	}
	if (strcmp(mode, "signal") == 0)
		raise(SIGUSR1);
	if (strcmp(mode, "fork") == 0) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			char path[4096];
			snprintf(path, sizeof path, "%s.child", out);
			worker((void *)0);
			_exit(bsl_prof_dump(path) == 0 ? 0 : 1);
		}
		int st;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("child failed\n");
			return 1;
		}
	}
	return 0;
}
