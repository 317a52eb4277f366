// shim.cc - adapts the C benchmark bodies in micro_table[] to Google Benchmark.
// One benchmark per (family, argument); items processed = what run() returned;
// counter peak_rss_kb = VmHWM while that benchmark ran (reset before it).
// BENCH_ITERS=N in the environment fixes the iteration count (smoke tests).
// Exit status 1 when any body reported a wrong result.
#include <benchmark/benchmark.h>
#include <cstdlib>
extern "C" {
#include "micro.h"
}

static int wrong_result;

static void run_micro(benchmark::State &state, const micro *m)
{
	long arg = m->args ? (long)state.range(0) : 0;
	rss_reset_peak();
	void *st = m->setup ? m->setup(arg) : nullptr;
	long items = 0;
	for (auto _ : state) {
		long n = m->run(st, arg);
		if (n < 0) { state.SkipWithError("wrong result or allocation failure"); break; }
		items += n;
	}
	if (m->teardown && m->teardown(st) < 0 && !state.error_occurred())
		state.SkipWithError("wrong result in teardown");
	if (state.error_occurred()) wrong_result = 1;
	state.SetItemsProcessed(items);
	if (m->bytes) state.SetBytesProcessed(items * arg);
	state.counters["peak_rss_kb"] = (double)rss_peak_kb();
}

int main(int argc, char **argv)
{
	const char *it = getenv("BENCH_ITERS");
	for (const micro *m = micro_table; m->name; m++) {
		auto *b = benchmark::RegisterBenchmark(m->name,
			[m](benchmark::State &s) { run_micro(s, m); });
		b->UseRealTime();
		for (const long *a = m->args; a && *a; a++) b->Arg(*a);
		if (it && atol(it) > 0) b->Iterations(atol(it));
	}
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return wrong_result;
}
