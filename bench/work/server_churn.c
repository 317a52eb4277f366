/* server_churn - 2 threads (default) churn random-size blocks and hand one in 8
 * to another thread, like a server passing requests between workers. */
#include "churn.h"

int main(int argc, char **argv)
{
	w_args(argc, argv, "server_churn", 2);
	return churn_main(4e6, 8);
}
