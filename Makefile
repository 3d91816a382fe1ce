# Thin wrapper over CMake. `make` builds build/ (CUDA when nvcc is found); `make test` installs
# what is missing, then builds and runs the whole suite three ways: plain, ASan+UBSan, and the
# libFuzzer targets for a short bounded run.
JOBS ?= $(shell nproc)
CMAKE ?= cmake

.PHONY: all setup test test-plain test-asan test-fuzz format clean cpu

all:
	$(CMAKE) -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	$(CMAKE) --build build -j$(JOBS)

cpu:
	$(CMAKE) -S . -B build-cpu -DBRISK_CUDA=OFF >/dev/null
	$(CMAKE) --build build-cpu -j$(JOBS)

setup:
	./scripts/setup.sh

test: setup test-plain test-asan test-fuzz

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf build build-cpu build-asan build-fuzz
