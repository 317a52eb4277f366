# buddyslab - see README.md.
#   make            build/libbuddyslab.so and build/libbuddyslab.a (optimised)
#   make DEBUG=1    the same with assertions and invariant checkers, in build/debug
#   make SAN=ubsan  the same built with UBSan (abort on undefined behaviour), in build/ubsan
#   make test       all three builds, every test, summary "N passed, N failed, N skipped"
#   make test-programs  real programs and their own test suites on buddyslab (CPython's
#                   regression suite, PostgreSQL, Redis, node, java, a static server);
#                   BSL_GLIBC=1 runs them on glibc for comparison
#   make bench      the side-by-side comparison with glibc, jemalloc, tcmalloc and mimalloc
#   make fuzz       the libFuzzer harness (clang), run for FUZZ_SECONDS
#   make install    into PREFIX (/usr/local), under DESTDIR if set; make uninstall (dist/install.mk)
CC      ?= cc
CXX     ?= c++
ifeq ($(DEBUG),1)
B       := build/debug
OPT     := -O1 -g -DBSL_DEBUG=1
else ifeq ($(SAN),ubsan)
B       := build/ubsan
OPT     := -O1 -g -DBSL_DEBUG=0
SANFLAGS := -fsanitize=undefined -fno-sanitize-recover=undefined
else
B       := build
OPT     := -O2 -g -DBSL_DEBUG=0
endif
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS_LIB := -std=gnu11 $(OPT) $(WARN) -Wno-missing-attributes -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
	-fno-stack-protector -fno-plt -Iinclude -Isrc $(SANFLAGS) $(EXTRA_CFLAGS)
CFLAGS_TEST := -std=gnu11 -O1 -g $(WARN) -Wno-unused-function -fno-builtin -Iinclude -Isrc -Itest
LDLIBS_TEST := -lpthread -ldl -lm

# The version: include/buddyslab.h only.
version_part = $(shell sed -n 's/^\#define BUDDYSLAB_VERSION_$(1) *\([0-9][0-9]*\).*/\1/p' include/buddyslab.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION       := $(VERSION_MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME        := libbuddyslab.so.$(VERSION_MAJOR)

SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(SRCS))
# The archive holds cxx-archive.o (src/cxx.c with strong references to
# libstdc++, for static C++ links) in place of the shared library's cxx.o.
ARCHIVE_OBJS := $(filter-out $(B)/obj/cxx.o,$(OBJS)) $(B)/obj/cxx-archive.o
TESTS_C  := $(patsubst test/%.c,$(B)/test/%,$(wildcard test/test_*.c))
TESTS_CC := $(patsubst test/%.cc,$(B)/test/%,$(wildcard test/test_*.cc))

.PHONY: all lib tests test test-build test-programs bench bench-quick clean deps-test deps-programs
all: lib
lib: $(B)/libbuddyslab.so $(B)/libbuddyslab.a $(B)/$(SONAME)

$(B)/obj/%.o: src/%.c $(wildcard src/*.h) include/buddyslab.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -c $< -o $@

# C++ operators: an exception thrown by a new-handler passes through them
$(B)/obj/cxx.o: CFLAGS_LIB += -fexceptions
$(B)/obj/cxx-archive.o: src/cxx.c $(wildcard src/*.h) include/buddyslab.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_LIB) -fexceptions -DBSL_CXX_ARCHIVE=1 -c $< -o $@

$(B)/libbuddyslab.so: $(OBJS) src/exports.map
	$(CC) -shared -static-libgcc $(SANFLAGS) -o $@ $(OBJS) -Wl,-soname,$(SONAME) -Wl,-z,now \
		-Wl,--version-script=src/exports.map -lpthread

# the soname beside it, for programs linked with -Lbuild -lbuddyslab
$(B)/$(SONAME): | $(B)/libbuddyslab.so
	ln -sf libbuddyslab.so $@

$(B)/libbuddyslab.a: $(ARCHIVE_OBJS)
	rm -f $@; ar rcs $@ $(ARCHIVE_OBJS)

# test_cache counts the library's calls of prof_forget (its own wrapper)
TEST_CFLAGS_test_cache := -Wl,--wrap=prof_forget
$(B)/test/%: test/%.c test/t.h $(B)/libbuddyslab.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) $(SANFLAGS) $(TEST_CFLAGS_$*) -o $@ $< $(B)/libbuddyslab.a $(LDLIBS_TEST)

$(B)/test/%: test/%.cc test/t.h $(B)/libbuddyslab.a
	@mkdir -p $(dir $@)
	$(CXX) -std=gnu++17 -O1 -g -Wall -Iinclude -Itest -fno-builtin $(SANFLAGS) -o $@ $< $(B)/libbuddyslab.a $(LDLIBS_TEST)

# test/misuse.sh's drivers: not linked with buddyslab (they run under glibc and
# preloaded), and not in $(B)/test/, whose every program run-tests runs
MISUSE := $(B)/misuse/misuse $(B)/misuse/misuse_cxx
$(B)/misuse/misuse: test/misuse/misuse.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O0 -g -Wall -Wextra -Wno-unused-parameter -fno-builtin -o $@ $< -ldl
$(B)/misuse/misuse_cxx: test/misuse/misuse_cxx.cc
	@mkdir -p $(dir $@)
	$(CXX) -std=gnu++17 -O0 -g -Wall -Wextra -Wno-unused-parameter -fno-builtin -fsized-deallocation -o $@ $<

tests: lib $(TESTS_C) $(TESTS_CC) $(MISUSE)

-include bench/bench.mk
-include test/fuzz/fuzz.mk
include dist/install.mk

# make test: the optimised, debug and UBSan builds, then every test against
# them (shell tests against the first two; the C tests against all three).
test: deps-test
	$(MAKE) tests
	$(MAKE) DEBUG=1 tests
	$(MAKE) SAN=ubsan tests
	scripts/run-tests build build/debug build/ubsan

deps-test:
	@scripts/install-deps test

# make test-programs: the optimised build under real programs (test/programs/, ~20 min)
test-programs: deps-programs
	$(MAKE) lib
	scripts/run-programs build

deps-programs:
	@scripts/install-deps programs

clean:
	rm -rf build
