# bench/bench.mk - benchmark targets, included by the top Makefile (uses B, CC, CXX).
#   make bench-build   micro + workload binaries into $(B)/bench/ (no library needed)
#   make bench         full comparison glibc / jemalloc / tcmalloc / mimalloc / buddyslab
#                      (scripts/bench-compare)
#   make bench-quick   the same, tiny and fast, results in $(B)/bench/results/
# The C bodies are built with -fno-builtin so malloc/free pairs are never elided.
BENCH_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fno-builtin -pthread
BENCH_CXXFLAGS := -std=gnu++17 -O2 -g -Wall -pthread
BENCH_MICRO_C := $(wildcard bench/micro/*.c)
BENCH_MICRO_O := $(patsubst bench/micro/%.c,$(B)/bench/obj/%.o,$(BENCH_MICRO_C))
BENCH_WORK    := $(patsubst bench/work/%.c,$(B)/bench/%,$(wildcard bench/work/*.c))

.PHONY: bench-build bench bench-quick
bench-build: $(B)/bench/micro $(BENCH_WORK)

$(B)/bench/obj/%.o: bench/micro/%.c bench/micro/micro.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@

$(B)/bench/obj/shim.o: bench/micro/shim.cc bench/micro/micro.h bench/bench.mk
	@mkdir -p $(dir $@)
	$(CXX) $(BENCH_CXXFLAGS) -c $< -o $@

$(B)/bench/micro: $(B)/bench/obj/shim.o $(BENCH_MICRO_O)
	$(CXX) -pthread -o $@ $^ -lbenchmark -lpthread

$(B)/bench/%: bench/work/%.c $(wildcard bench/work/*.h) bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lpthread -lm

bench: lib bench-build
	scripts/install-deps bench
	scripts/bench-compare --build $(B)

bench-quick: lib bench-build
	scripts/install-deps bench
	scripts/bench-compare --build $(B) --quick
