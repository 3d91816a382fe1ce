# Thin wrapper over CMake. `make` builds build/ (CUDA when nvcc is found); `make test` installs
# what is missing, then builds and runs the whole suite three ways: plain, ASan+UBSan, and the
# libFuzzer targets for a short bounded run.
JOBS ?= $(shell nproc)
CMAKE ?= cmake

.PHONY: all setup test test-plain test-asan test-fuzz test-arm format clean cpu

all:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build build -j$(JOBS)

cpu:
	$(CMAKE) -S . -B build-cpu -DBRISK_CUDA=OFF >/dev/null
	$(CMAKE) --build build-cpu -j$(JOBS)

setup:
	./scripts/setup.sh

ARM_CC ?= aarch64-linux-gnu-gcc
QEMU_ARM ?= qemu-aarch64

# setup first, in its own step, so what it installs (the ARM cross compiler) is there for the rest.
test:
	./scripts/setup.sh
	$(MAKE) test-plain test-asan test-fuzz test-arm

test-plain: all
	cd build && ctest --output-on-failure -j$(JOBS) -LE gpu

# The sanitizer build is CPU-only: CUDA is compiled (and checked) by the plain build above.
test-asan:
	$(CMAKE) -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBRISK_SANITIZE=ON -DBRISK_CUDA=OFF >/dev/null
	$(CMAKE) --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) -LE 'gpu|slow'

test-fuzz:
	CC=clang CXX=clang++ $(CMAKE) -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBRISK_FUZZ=ON -DBRISK_CUDA=OFF >/dev/null
	$(CMAKE) --build build-fuzz -j$(JOBS)
	cd build-fuzz && ctest --output-on-failure -L fuzz

# The CPU op tests (tests/ops) for ARM64: the backend sources and the op-test harness only (no
# cJSON/PCRE2/curl needed), cross-compiled and run under qemu-user twice: `-cpu max` (NEON
# dotprod kernels against ops_ref) and `-cpu cortex-a53` (no dotprod: the ISA check must fall
# back to the portable table).
ARM_FLAGS = -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests
ARM_SRC = tests/ops/test_ops.c src/backend/backend.c src/backend/cuda_stub.c \
  $(filter-out %/matmul_neon.c,$(wildcard src/backend/cpu/*.c)) src/util/error.c src/util/membw.c
test-arm:
	@command -v $(ARM_CC) >/dev/null && command -v $(QEMU_ARM) >/dev/null || \
	  { echo "test-arm: $(ARM_CC) or $(QEMU_ARM) missing (scripts/setup.sh installs them)"; exit 1; }
	mkdir -p build-arm
	$(ARM_CC) $(ARM_FLAGS) -march=armv8.2-a+dotprod+fp16 -c -o build-arm/matmul_neon.o \
	  src/backend/cpu/matmul_neon.c
	$(ARM_CC) $(ARM_FLAGS) -o build-arm/test_ops $(ARM_SRC) build-arm/matmul_neon.o -lm -lpthread
	$(QEMU_ARM) -cpu max -L /usr/aarch64-linux-gnu build-arm/test_ops > build-arm/max.log; \
	  rc=$$?; cat build-arm/max.log; exit $$rc
	@grep -q '^ISAs: neon,generic' build-arm/max.log
	$(QEMU_ARM) -cpu cortex-a53 -L /usr/aarch64-linux-gnu build-arm/test_ops > build-arm/a53.log; \
	  rc=$$?; cat build-arm/a53.log; exit $$rc
	@grep -q '^ISAs: generic' build-arm/a53.log

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf build build-cpu build-asan build-fuzz build-arm
