# test/fuzz/fuzz.mk - the libFuzzer harness, included by the top Makefile (uses B, SRCS).
#   make fuzz                  build $(B)/fuzz/fuzzer, fuzz for FUZZ_SECONDS (300) from a
#                              scratch copy of test/fuzz/corpus; crashes land in $(B)/fuzz/artifacts/
#   make DEBUG=1 fuzz          the same with buddyslab's assertions and invariant checkers
#   make fuzz-build            only build (test/fuzz_smoke.sh: make B=<build dir> fuzz-build)
#   make fuzz FUZZ_ARGS=...    extra libFuzzer flags (-jobs=2 -workers=2, -max_len=8192, ...)
# buddyslab's sources are compiled by clang with test/fuzz/prefix.h forced in
# (malloc -> fz_malloc, ...), with coverage, ASan and UBSan; the harness with
# -fsanitize=fuzzer,address,undefined. ASan keeps the process's malloc.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_ARGS    ?=
FUZZ_DIR     := $(B)/fuzz
# a build directory named .../debug gets the debug flavour (BSL_DEBUG=1)
FUZZ_OPT     := -O1 -g $(if $(filter %debug,$(B)),-DBSL_DEBUG=1,-DBSL_DEBUG=0)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# CFLAGS_LIB for clang: without gcc's -Wno-missing-attributes
FUZZ_CFLAGS_LIB := -std=gnu11 $(FUZZ_OPT) $(WARN) -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
	-fno-stack-protector -fno-plt -Iinclude -Isrc \
	-include test/fuzz/prefix.h -fsanitize=fuzzer-no-link $(FUZZ_SAN)
FUZZ_CFLAGS  := -std=gnu11 -O1 -g $(WARN) -Iinclude -fsanitize=fuzzer $(FUZZ_SAN)
# not src/cxx.c: libFuzzer's own operator new must stay on ASan's malloc
FUZZ_OBJS    := $(patsubst src/%.c,$(FUZZ_DIR)/obj/%.o,$(filter-out src/cxx.c,$(SRCS)))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_DIR)/fuzzer

$(FUZZ_DIR)/obj/%.o: src/%.c $(wildcard src/*.h) include/buddyslab.h test/fuzz/prefix.h test/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS_LIB) -c $< -o $@

$(FUZZ_DIR)/obj/fuzz_malloc.o: test/fuzz/fuzz_malloc.c include/buddyslab.h test/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzzer: $(FUZZ_DIR)/obj/fuzz_malloc.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ -lpthread

fuzz: $(FUZZ_DIR)/fuzzer
	rm -rf $(FUZZ_DIR)/corpus-run
	mkdir -p $(FUZZ_DIR)/corpus-run $(FUZZ_DIR)/artifacts
	cp test/fuzz/corpus/* $(FUZZ_DIR)/corpus-run/
	$(FUZZ_DIR)/fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_DIR)/artifacts/ $(FUZZ_ARGS) $(FUZZ_DIR)/corpus-run
