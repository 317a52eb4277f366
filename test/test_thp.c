/*
 * test_thp.c - the thp option: huge-page advice on arena chunks.
 *
 * Each case runs a child (this program as `test_thp --child`, with
 * BUDDYSLAB_CONF=thp:MODE) that allocates and touches 64 MiB in 256-byte
 * objects, then reads /proc/self/smaps and prints one line
 *   heap_ahp_kb=N total_ahp_kb=N heap_kb=N vmas=N hg=N nh=N fault_alloc=N fault_fallback=N
 * where the heap is every mapping overlapping the objects' address range,
 * hg / nh count the heap mappings whose VmFlags carry "hg" (MADV_HUGEPAGE) /
 * "nh" (MADV_NOHUGEPAGE), and fault_* are the deltas of /proc/vmstat
 * thp_fault_alloc / thp_fault_fallback over the allocation.
 *
 * What is asserted:
 *  - thp:madvise: the heap mappings carry "hg" (always: this is what buddyslab
 *    controls). AnonHugePages of the heap > 0 when
 *    /sys/kernel/mm/transparent_hugepage/enabled is [madvise] or [always];
 *    SKIP when it is [never], and SKIP (not FAIL) when the heap has none
 *    because the kernel tried and fell back (thp_fault_fallback grew) or does
 *    not compact at fault time for madvised memory (defrag [never]/[defer]).
 *  - thp:never: the heap carries "nh" and has AnonHugePages 0.
 *  - thp:default: neither flag; under enabled [madvise] (or [never]) the heap
 *    has AnonHugePages 0, under [always] it is reported only.
 */
#define _GNU_SOURCE
#include "t.h"
#include "buddyslab.h"
#include <sys/mman.h>
#include <fcntl.h>
#include <stdint.h>

#define NOBJ (256 * 1024)      /* x 256 B = 64 MiB */
#define OBJ 256

static const char *self_exe;

static long vmstat(const char *key)
{
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/vmstat", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ' ')
			v = atol(line + n + 1);
	fclose(f);
	return v;
}

/* The bracketed word of a sysfs THP setting ("always [madvise] never"). */
static const char *thp_setting(const char *file, char *buf, size_t len)
{
	char path[256], raw[256];
	snprintf(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/%s", file);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *ok = fgets(raw, sizeof raw, f);
	fclose(f);
	if (!ok)
		return NULL;
	char *a = strchr(raw, '['), *b = a ? strchr(a, ']') : NULL;
	if (!a || !b)
		return NULL;
	snprintf(buf, len, "%.*s", (int)(b - a - 1), a + 1);
	return buf;
}

static int child_main(void)
{
	void **v = mmap(NULL, NOBJ * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return 1;
	long fa0 = vmstat("thp_fault_alloc"), ff0 = vmstat("thp_fault_fallback");
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < NOBJ; i++) {
		v[i] = malloc(OBJ);
		if (!v[i])
			return 1;
		memset(v[i], i, OBJ);
		uintptr_t a = (uintptr_t)v[i];
		if (a < lo) lo = a;
		if (a + OBJ > hi) hi = a + OBJ;
	}
	long fa1 = vmstat("thp_fault_alloc"), ff1 = vmstat("thp_fault_fallback");
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return 1;
	char line[1024];
	int in_heap = 0, vmas = 0, hg = 0, nh = 0;
	long heap_ahp = 0, total_ahp = 0, heap_kb = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
			in_heap = s < hi && e > lo;
			vmas += in_heap;
			continue;
		}
		long kb;
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) {
			total_ahp += kb;
			if (in_heap)
				heap_ahp += kb;
		} else if (in_heap && sscanf(line, "Rss: %ld kB", &kb) == 1) {
			heap_kb += kb;
		} else if (in_heap && strncmp(line, "VmFlags:", 8) == 0) {
			hg += strstr(line, " hg") != NULL;
			nh += strstr(line, " nh") != NULL;
		}
	}
	fclose(f);
	printf("heap_ahp_kb=%ld total_ahp_kb=%ld heap_kb=%ld vmas=%d hg=%d nh=%d fault_alloc=%ld "
	       "fault_fallback=%ld\n", heap_ahp, total_ahp, heap_kb, vmas, hg, nh, fa1 - fa0, ff1 - ff0);
	for (int i = 0; i < NOBJ; i++)
		free(v[i]);
	return 0;
}

struct result { long heap_ahp, total_ahp, heap_kb, fault_alloc, fault_fallback; int vmas, hg, nh; };

static int run_mode(const char *mode, struct result *r)
{
	int pfd[2];
	if (pipe(pfd) != 0)
		return 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		char conf[64];
		snprintf(conf, sizeof conf, "thp:%s", mode);
		setenv("BUDDYSLAB_CONF", conf, 1);
		alarm(60);
		execl(self_exe, self_exe, "--child", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char out[512];
	ssize_t n = 0, k;
	while (n < (ssize_t)sizeof out - 1 && (k = read(pfd[0], out + n, sizeof out - 1 - n)) > 0)
		n += k;
	out[n] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "  child (thp:%s) status %#x; reproduce: BUDDYSLAB_CONF=thp:%s %s --child\n",
			mode, st, mode, self_exe);
		return 0;
	}
	if (sscanf(out, "heap_ahp_kb=%ld total_ahp_kb=%ld heap_kb=%ld vmas=%d hg=%d nh=%d fault_alloc=%ld "
		   "fault_fallback=%ld", &r->heap_ahp, &r->total_ahp, &r->heap_kb, &r->vmas, &r->hg, &r->nh,
		   &r->fault_alloc, &r->fault_fallback) != 8) {
		fprintf(stderr, "  child (thp:%s) printed: %s\n", mode, out);
		return 0;
	}
	fprintf(stderr, "  info: thp:%s: heap AnonHugePages %ld kB of %ld kB resident in %d mapping(s) "
		"(hg %d, nh %d); process AnonHugePages %ld kB; thp_fault_alloc +%ld, "
		"thp_fault_fallback +%ld\n", mode, r->heap_ahp, r->heap_kb, r->vmas, r->hg, r->nh,
		r->total_ahp, r->fault_alloc, r->fault_fallback);
	return 1;
}

static char enabled[32], defrag[32];
static int have_thp;

static void thp_madvise(void)
{
	struct result r;
	REQUIRE(run_mode("madvise", &r));
	REQUIRE(r.vmas >= 1 && r.heap_kb >= 60 * 1024);
	CHECK(r.hg == r.vmas);      /* every heap mapping advised MADV_HUGEPAGE */
	CHECK(r.nh == 0);
	if (!have_thp)
		SKIP("no /sys/kernel/mm/transparent_hugepage/enabled: kernel without THP");
	if (strcmp(enabled, "never") == 0)
		SKIP("transparent_hugepage/enabled is [never]");
	if (r.heap_ahp == 0 && !t_failed_case) {
		if (r.fault_fallback > 0)
			SKIP("the kernel tried huge pages at fault time and fell back %ld times "
			     "(no free 2 MiB pages; defrag [%s])", r.fault_fallback, defrag);
		if (strcmp(defrag, "never") == 0 || strcmp(defrag, "defer") == 0)
			SKIP("transparent_hugepage/defrag is [%s]: no fault-time huge pages for madvised "
			     "memory, and khugepaged has not collapsed the heap yet", defrag);
	}
	CHECK(r.heap_ahp > 0);
}

static void thp_never(void)
{
	struct result r;
	REQUIRE(run_mode("never", &r));
	REQUIRE(r.vmas >= 1 && r.heap_kb >= 60 * 1024);
	CHECK(r.nh == r.vmas);      /* every heap mapping advised MADV_NOHUGEPAGE */
	CHECK(r.hg == 0);
	CHECK(r.heap_ahp == 0);
}

static void thp_default(void)
{
	struct result r;
	REQUIRE(run_mode("default", &r));
	REQUIRE(r.vmas >= 1 && r.heap_kb >= 60 * 1024);
	CHECK(r.hg == 0 && r.nh == 0);   /* no advice: the system setting rules */
	if (have_thp && strcmp(enabled, "always") != 0)
		CHECK(r.heap_ahp == 0);
}

int main(int argc, char **argv)
{
	self_exe = argv[0];
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child_main();
	have_thp = thp_setting("enabled", enabled, sizeof enabled) != NULL;
	if (!thp_setting("defrag", defrag, sizeof defrag))
		strcpy(defrag, "?");
	fprintf(stderr, "  info: transparent_hugepage enabled [%s] defrag [%s]\n",
		have_thp ? enabled : "-", defrag);
	T_RUN(thp_madvise);
	T_RUN(thp_never);
	T_RUN(thp_default);
	return t_done();
}
