/* oversubscribed - the server churn on 16 threads (default) on a 2-core
 * machine: threads are preempted while holding allocator state. The total
 * work equals server_churn's at 2 threads, split across the threads. */
#include "churn.h"

int main(int argc, char **argv)
{
	w_args(argc, argv, "oversubscribed", 16);
	return churn_main(8e6 / w_threads, 8);
}
