/*
 * test_static.c - a program statically linked with libbuddyslab.a really uses it,
 * including for the allocations glibc makes on the program's behalf.
 *
 * libbuddyslab.a is built with -fvisibility=hidden; malloc & co must still be
 * exported from the executable so that libc.so's internal calls (strdup, getline,
 * fopen, asprintf, ...) bind to buddyslab and not to glibc's own malloc. If they did
 * not, bsl_owns() of those blocks would be 0 and free() of them would abort.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>
#include <regex.h>
#include <search.h>
#include "buddyslab.h"
#include "t.h"

static void program_malloc_is_buddyslab(void)
{
	void *p = malloc(100);
	REQUIRE(p);
	CHECK(bsl_owns(p) == 1);
	free(p);
	void *c = calloc(10, 10), *r = realloc(NULL, 5000), *m = memalign(64, 100);
	CHECK(bsl_owns(c) == 1 && bsl_owns(r) == 1 && bsl_owns(m) == 1);
	free(c); free(r); free(m);
	/* bsl_owns says no to what is not a live buddyslab block */
	static char not_heap[64];
	CHECK(bsl_owns(not_heap) == 0);
	CHECK(bsl_owns(NULL) == 0);
	const char *v = bsl_version();
	CHECK(v && strncmp(v, "buddyslab ", 10) == 0);
}

/* The dynamic linker's view: the malloc libc.so binds to is the executable's. */
extern char _DYNAMIC[] __attribute__((weak));

static void libc_binds_to_buddyslab(void)
{
	if (!_DYNAMIC)
		SKIP("a fully static program (-static) has no dynamic symbols; the link itself binds libc to buddyslab");
	void *dm = dlsym(RTLD_DEFAULT, "malloc");
	void *df = dlsym(RTLD_DEFAULT, "free");
	if (dm != (void *)malloc || df != (void *)free) {
		Dl_info di;
		fprintf(stderr, "  dlsym(malloc) = %p (%s), program's malloc = %p\n", dm,
			dm && dladdr(dm, &di) && di.dli_fname ? di.dli_fname : "?", (void *)malloc);
		t_failed_case = 1;
	}
	static const char *const names[] = { "calloc", "realloc", "posix_memalign", "aligned_alloc",
		"memalign", "valloc", "pvalloc", "malloc_usable_size", "reallocarray" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		void *sym = dlsym(RTLD_DEFAULT, names[i]);
		Dl_info di;
		if (!sym || !dladdr(sym, &di) || !di.dli_fname || strstr(di.dli_fname, "libc.so")) {
			fprintf(stderr, "  %s resolves to %s\n", names[i], sym && dladdr(sym, &di) ? di.dli_fname : "(nothing)");
			t_failed_case = 1;
		}
	}
}

static void libc_internal_allocations(void)
{
	char *s = strdup("hello, buddyslab");
	REQUIRE(s);
	CHECK(bsl_owns(s) == 1);
	free(s);
	s = strndup("abcdefghijklmnop", 5);
	CHECK(s && bsl_owns(s) == 1 && strcmp(s, "abcde") == 0);
	free(s);

	char *a = NULL;
	CHECK(asprintf(&a, "%d-%s-%0500d", 42, "x", 7) > 500);
	CHECK(a && bsl_owns(a) == 1);
	free(a);

	/* getline/getdelim on a real file; and the FILE and its stdio buffer */
	char path[] = "/tmp/bsl_static_XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	for (int i = 0; i < 100; i++) dprintf(fd, "line %d %0*d\n", i, i * 50, i);
	close(fd);
	FILE *f = fopen(path, "r");
	REQUIRE(f);
	CHECK(bsl_owns(f) == 1);                /* glibc mallocs the FILE itself */
	char *line = NULL;
	size_t cap = 0;
	int lines = 0;
	while (getline(&line, &cap, f) > 0) lines++;
	CHECK(lines == 100);
	CHECK(line && bsl_owns(line) == 1);
	/* the stdio buffer, allocated on the first read (glibc uses malloc for it) */
	CHECK(f->_IO_buf_base && bsl_owns(f->_IO_buf_base) == 1);
	free(line);
	rewind(f);
	char *tok = NULL;
	cap = 0;
	CHECK(getdelim(&tok, &cap, ' ', f) > 0 && tok && bsl_owns(tok) == 1);
	free(tok);
	CHECK(fclose(f) == 0);
	unlink(path);

	char *buf = NULL;
	size_t len = 0;
	FILE *ms = open_memstream(&buf, &len);
	REQUIRE(ms);
	for (int i = 0; i < 10000; i++) fprintf(ms, "%d,", i);
	fclose(ms);
	CHECK(buf && bsl_owns(buf) == 1 && len > 10000);
	free(buf);

	char *cwd = getcwd(NULL, 0);
	CHECK(cwd && bsl_owns(cwd) == 1);
	free(cwd);
	char *rp = realpath("/tmp/../tmp/.", NULL);
	CHECK(rp && bsl_owns(rp) == 1 && strcmp(rp, "/tmp") == 0);
	free(rp);

	DIR *d = opendir("/");
	REQUIRE(d);
	CHECK(bsl_owns(d) == 1);
	int n = 0;
	while (readdir(d)) n++;
	CHECK(n > 2);
	closedir(d);

	struct dirent **list = NULL;
	int k = scandir("/", &list, NULL, alphasort);
	CHECK(k > 2 && list && bsl_owns(list) == 1 && bsl_owns(list[0]) == 1);
	for (int i = 0; i < k; i++) free(list[i]);
	free(list);

	regex_t re;
	CHECK(regcomp(&re, "^([a-z]+)-([0-9]+)$", REG_EXTENDED) == 0);
	regmatch_t mt[3];
	CHECK(regexec(&re, "abc-123", 3, mt, 0) == 0 && mt[2].rm_so == 4);
	regfree(&re);

	wchar_t *w = wcsdup(L"wide");
	CHECK(w && bsl_owns(w) == 1);
	free(w);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void libc_frees_buddyslab_blocks(void)
{
	/* blocks we malloc and libc reallocs/frees */
	char *line = malloc(4);
	size_t cap = 4;
	REQUIRE(line);
	FILE *f = fmemopen("a fairly long line that will not fit in four bytes\n", 51, "r");
	REQUIRE(f);
	CHECK(getline(&line, &cap, f) == 51);
	CHECK(bsl_owns(line) == 1 && cap >= 52);
	fclose(f);
	free(line);

	/* setvbuf with a malloc'd buffer, closed by fclose (which must not free it) */
	char *b = malloc(8192);
	FILE *t = tmpfile();
	REQUIRE(t && b);
	setvbuf(t, b, _IOFBF, 8192);
	for (int i = 0; i < 5000; i++) fprintf(t, "%d\n", i);
	fclose(t);
	CHECK(bsl_owns(b) == 1);
	free(b);

	void *root = NULL;
	static int keys[1000];
	for (int i = 0; i < 1000; i++) { keys[i] = (i * 7919) % 1000; CHECK(tsearch(&keys[i], &root, cmp_int) != NULL); }
	for (int i = 0; i < 1000; i++) tdelete(&keys[i], &root, cmp_int);
	CHECK(root == NULL);
}

int main(void)
{
	T_RUN(program_malloc_is_buddyslab);
	T_RUN(libc_binds_to_buddyslab);
	T_RUN(libc_internal_allocations);
	T_RUN(libc_frees_buddyslab_blocks);
	return t_done();
}
