/* fastpath_loop N: N pairs of malloc(16) + free, for the instruction-count
 * test (test/fastpath.sh). Linked with libbuddyslab.a. */
#include <stdlib.h>
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	void *volatile sink;
	for (long i = 0; i < n; i++) {
		void *p = malloc(16);
		sink = p;
		free(p);
	}
	(void)sink;
	return 0;
}
