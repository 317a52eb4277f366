/* rss.c - per-benchmark peak RSS: Linux lets a process reset its VmHWM. */
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include "micro.h"

void rss_reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);   /* "5": reset peak RSS */
	if (fd >= 0) { if (write(fd, "5", 1) < 0) { /* old kernel: peak is per process */ } close(fd); }
}

long rss_peak_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld", &kb) == 1) break;
	fclose(f);
	return kb;
}
